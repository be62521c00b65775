//! ggml files in the store: conversions of the real tiny.en (from its pinned PyPI wheel)
//! and whisper.cpp's own files pulled from a local server speaking the hub protocol.

mod support;

use std::fs;
use std::path::Path;
use std::sync::OnceLock;
use std::time::Duration;

use support::fake_hub::{FakeFile, FakeHub, HubConfig};
use support::sha256_hex;
use vttiro_core::ErrorCode;
use vttiro_models::{
    convert_ct2_to_ggml, inspect_ggml, GgmlModelInfo, GgmlQuant, GgmlType, HubClient, ModelError,
    ModelStore, GGML_HUB_REPO, GGML_MANIFEST_FILE, MANIFEST_FILE,
};

const COMMIT: &str = "5359861c739e955e79d9a303bcbc70fb988958b1";

/// tiny.en's dimensions (OpenAI's model card): 4 encoder and 4 decoder blocks of width
/// 384 with 6 heads, 1500 audio and 448 text positions, 80 mel bins, 51864 tokens.
const TINY_EN_HPARAMS: [i32; 10] = [51_864, 1_500, 384, 6, 4, 448, 384, 6, 4, 80];

fn tiny_en_ggml(quant: GgmlQuant) -> &'static Vec<u8> {
    static FILES: OnceLock<Vec<Vec<u8>>> = OnceLock::new();
    let files = FILES.get_or_init(|| {
        let out = tempfile::tempdir().unwrap();
        GgmlQuant::ALL
            .iter()
            .map(|quant| {
                let path = out.path().join(quant.file_name());
                convert_ct2_to_ggml(&vttiro_fixtures::tiny_en_model(), &path, *quant).unwrap();
                fs::read(path).unwrap()
            })
            .collect()
    });
    &files[GgmlQuant::ALL.iter().position(|q| *q == quant).unwrap()]
}

fn store_with_tiny_en(dir: &Path) -> ModelStore {
    let store = ModelStore::open(dir).unwrap();
    store
        .import_dir(&vttiro_fixtures::tiny_en_model(), "tiny.en")
        .unwrap();
    store
}

fn hidden_or_temporary(dir: &Path) -> Vec<String> {
    fs::read_dir(dir)
        .unwrap()
        .map(|entry| entry.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|name| name.starts_with('.'))
        .collect()
}

fn assert_tiny_en_layout(info: &GgmlModelInfo, quant: GgmlQuant) {
    let fields = [
        info.hparams.n_vocab,
        info.hparams.n_audio_ctx,
        info.hparams.n_audio_state,
        info.hparams.n_audio_head,
        info.hparams.n_audio_layer,
        info.hparams.n_text_ctx,
        info.hparams.n_text_state,
        info.hparams.n_text_head,
        info.hparams.n_text_layer,
        info.hparams.n_mels,
    ];
    assert_eq!(fields, TINY_EN_HPARAMS);
    // whisper.cpp's converter writes 1 for f16; its quantize tool 2000 + ggml_ftype.
    let ftype = match quant {
        GgmlQuant::F16 => 1,
        GgmlQuant::Q8_0 => 2007,
        GgmlQuant::Q5_0 => 2008,
    };
    assert_eq!(info.hparams.ftype, ftype);
    assert_eq!(info.mel_filter_shape, (80, 201));
    // GPT-2's byte-level vocabulary without <|endoftext|>: id 0 is "!", 220 a space.
    assert_eq!(info.vocab_tokens.len(), 50_256);
    assert_eq!(info.vocab_tokens[0], b"!");
    assert_eq!(info.vocab_tokens[220], b" ");
    assert_eq!(info.vocab_tokens[262], b" the");
    // 11 model tensors, 15 per encoder block and 24 per decoder block.
    assert_eq!(info.tensors.len(), 11 + 4 * 15 + 4 * 24);
    let matrix = info
        .tensor("decoder.blocks.3.cross_attn.value.weight")
        .unwrap();
    assert_eq!(matrix.dims, [384, 384]);
    assert_eq!(matrix.ggml_type, quant.matrix_type());
    let embedding = info.tensor("decoder.token_embedding.weight").unwrap();
    assert_eq!(embedding.dims, [384, 51_864]);
    assert_eq!(embedding.ggml_type, quant.matrix_type());
    let conv = info.tensor("encoder.conv1.weight").unwrap();
    assert_eq!(
        (conv.dims.as_slice(), conv.ggml_type),
        ([3, 80, 384].as_slice(), GgmlType::F16)
    );
    let position = info.tensor("encoder.positional_embedding").unwrap();
    assert_eq!(position.dims, [384, 1_500]);
    assert_eq!(position.ggml_type, GgmlType::F32);
}

#[test]
fn converting_tiny_en_writes_three_checked_ggml_files_beside_it() {
    let cache = tempfile::tempdir().unwrap();
    let store = store_with_tiny_en(cache.path());
    let model_dir = cache.path().join("tiny.en");
    let mut sizes = Vec::new();
    for quant in GgmlQuant::ALL {
        let path = store.convert_to_ggml("tiny.en", quant).unwrap();
        assert_eq!(path, model_dir.join(quant.file_name()));
        let info = inspect_ggml(&path).unwrap();
        assert_tiny_en_layout(&info, quant);
        sizes.push(info.file_len as f64);
    }
    // Matrices dominate: q8_0 takes 34 bytes per 32 values and q5_0 22, against f16's 64.
    let (f16, q8, q5) = (sizes[0], sizes[1], sizes[2]);
    assert!(
        (0.50..0.60).contains(&(q8 / f16)),
        "q8_0/f16 = {}",
        q8 / f16
    );
    assert!(
        (0.33..0.42).contains(&(q5 / f16)),
        "q5_0/f16 = {}",
        q5 / f16
    );
    let model_bin = fs::metadata(model_dir.join("model.bin")).unwrap().len() as f64;
    assert!(
        (f16 / model_bin - 1.0).abs() < 0.05,
        "f16 {f16} vs model.bin {model_bin}"
    );

    let files = store.ggml_files("tiny.en").unwrap();
    assert_eq!(
        files.iter().map(|f| f.quant).collect::<Vec<_>>(),
        GgmlQuant::ALL
    );
    for file in &files {
        let bytes = fs::read(model_dir.join(&file.file)).unwrap();
        assert_eq!(file.size, bytes.len() as u64);
        assert_eq!(file.sha256, sha256_hex(&bytes));
        assert!(
            file.source.starts_with("convert:import:"),
            "{}",
            file.source
        );
        assert!(file.english_only);
        assert_eq!(file.n_mels, 80);
    }
    // Converting again replaces the file with identical bytes and keeps one entry.
    let before = files[0].sha256.clone();
    store.convert_to_ggml("tiny.en", GgmlQuant::F16).unwrap();
    let again = store.ggml_files("tiny.en").unwrap();
    assert_eq!(again.len(), 3);
    assert_eq!(again[0].sha256, before);

    // The CTranslate2 install is untouched and still verifies; nothing temporary is left.
    store.verify("tiny.en").unwrap();
    assert_eq!(store.resolve("tiny.en").unwrap().path, model_dir);
    assert!(hidden_or_temporary(&model_dir).is_empty());
    let best = store.resolve_ggml("tiny.en", None).unwrap();
    assert_eq!(best.quant, GgmlQuant::F16);
    let small = store
        .resolve_ggml("tiny.en", Some(GgmlQuant::Q5_0))
        .unwrap();
    assert_eq!(small.path, model_dir.join("ggml-model-q5_0.bin"));

    store.remove("tiny.en").unwrap();
    assert!(store.ggml_files("tiny.en").unwrap().is_empty());
}

#[test]
fn failed_conversions_leave_the_install_as_it_was() {
    let cache = tempfile::tempdir().unwrap();
    let store = ModelStore::open(cache.path()).unwrap();
    let error = store
        .convert_to_ggml("tiny.en", GgmlQuant::Q8_0)
        .unwrap_err();
    assert_eq!(error.code(), ErrorCode::ModelNotInstalled);

    // A model.bin cut short: the store imports it (it only checks the file list), but
    // the converter must notice before anything is published.
    let source = tempfile::tempdir().unwrap();
    let tiny = vttiro_fixtures::tiny_en_model();
    for file in ["config.json", "tokenizer.json", "vocabulary.txt"] {
        fs::copy(tiny.join(file), source.path().join(file)).unwrap();
    }
    let weights = fs::read(tiny.join("model.bin")).unwrap();
    fs::write(
        source.path().join("model.bin"),
        &weights[..weights.len() / 3],
    )
    .unwrap();
    store.import_dir(source.path(), "tiny.en").unwrap();
    let error = store
        .convert_to_ggml("tiny.en", GgmlQuant::F16)
        .unwrap_err();
    assert!(
        matches!(error, ModelError::ConversionFailed { .. }),
        "{error}"
    );
    assert_eq!(error.code(), ErrorCode::ModelInvalid);
    assert!(error.to_string().contains("truncated"), "{error}");
    let model_dir = cache.path().join("tiny.en");
    let mut left: Vec<String> = fs::read_dir(&model_dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    left.sort();
    assert_eq!(
        left,
        [
            "config.json",
            "model.bin",
            "tokenizer.json",
            "vocabulary.txt",
            MANIFEST_FILE
        ]
    );
    let missing = store.resolve_ggml("tiny.en", None).unwrap_err();
    assert_eq!(missing.code(), ErrorCode::ModelNotInstalled);
    assert!(
        missing
            .to_string()
            .contains("vttiro models convert tiny.en"),
        "{missing}"
    );

    let unknown = "q4_0".parse::<GgmlQuant>().unwrap_err();
    assert_eq!(unknown.code(), ErrorCode::InvalidArgument);
    assert_eq!("Q8_0".parse::<GgmlQuant>().unwrap(), GgmlQuant::Q8_0);
}

fn whisper_cpp_hub(files: Vec<FakeFile>) -> FakeHub {
    FakeHub::start(HubConfig {
        repo: GGML_HUB_REPO.into(),
        commit: COMMIT.into(),
        files,
        ..HubConfig::default()
    })
}

fn store_for(dir: &Path, hub: &FakeHub) -> ModelStore {
    ModelStore::open(dir)
        .unwrap()
        .with_hub(HubClient::new(hub.endpoint(), None).with_retries(2, Duration::ZERO))
}

#[test]
fn whisper_cpp_files_pull_from_the_hub_and_survive_a_later_ctranslate2_install() {
    let served = tiny_en_ggml(GgmlQuant::F16).clone();
    let hub = whisper_cpp_hub(vec![FakeFile::new(
        "ggml-tiny.en.bin",
        served.clone(),
        true,
    )]);
    let cache = tempfile::tempdir().unwrap();
    let store = store_for(cache.path(), &hub);

    let report = store
        .pull_ggml("tiny.en", GgmlQuant::F16, &mut |_| {})
        .unwrap();
    assert!(!report.already_installed);
    let model_dir = cache.path().join("tiny.en");
    assert_eq!(report.model.path, model_dir.join("ggml-model.bin"));
    assert_eq!(fs::read(&report.model.path).unwrap(), served);
    let files = store.ggml_files("tiny.en").unwrap();
    assert_eq!(files.len(), 1);
    assert_eq!(files[0].source, "hf:ggerganov/whisper.cpp@main");
    assert_eq!(files[0].revision.as_deref(), Some(COMMIT));
    assert_eq!(files[0].sha256, sha256_hex(&served));
    assert!(hub.requests_to("/resolve/").iter().all(|r| r
        .path
        .contains(&format!("/resolve/{COMMIT}/ggml-tiny.en.bin"))));

    // Only ggml is there: the CTranslate2 model still counts as not installed.
    assert_eq!(
        store.resolve("tiny.en").unwrap_err().code(),
        ErrorCode::ModelNotInstalled
    );
    let requests = hub.requests().len();
    let again = store
        .pull_ggml("tiny.en", GgmlQuant::F16, &mut |_| {})
        .unwrap();
    assert!(again.already_installed);
    assert_eq!(
        hub.requests().len(),
        requests,
        "a second pull must not touch the hub"
    );

    // A quantisation the hub does not have fails without leaving anything behind.
    let error = store
        .pull_ggml("tiny.en", GgmlQuant::Q8_0, &mut |_| {})
        .unwrap_err();
    assert_eq!(error.code(), ErrorCode::ModelDownloadFailed);
    assert!(
        error.to_string().contains("ggml-tiny.en-q8_0.bin"),
        "{error}"
    );
    assert_eq!(store.ggml_files("tiny.en").unwrap().len(), 1);

    // Installing the CTranslate2 model afterwards adopts the ggml file.
    store
        .import_dir(&vttiro_fixtures::tiny_en_model(), "tiny.en")
        .unwrap();
    store.verify("tiny.en").unwrap();
    assert!(model_dir.join("model.bin").is_file());
    assert!(model_dir.join(GGML_MANIFEST_FILE).is_file());
    assert_eq!(fs::read(model_dir.join("ggml-model.bin")).unwrap(), served);
    assert_eq!(
        store.resolve_ggml("tiny.en", None).unwrap().source,
        "hf:ggerganov/whisper.cpp@main"
    );
    assert!(hidden_or_temporary(cache.path())
        .iter()
        .all(|name| name == ".partial"));
}

#[test]
fn a_hub_file_that_is_not_what_its_name_says_is_refused() {
    // whisper.cpp's q8_0 weights served under the f16 file name.
    let mislabelled = tiny_en_ggml(GgmlQuant::Q8_0).clone();
    let hub = whisper_cpp_hub(vec![FakeFile::new("ggml-tiny.en.bin", mislabelled, true)]);
    let cache = tempfile::tempdir().unwrap();
    let store = store_for(cache.path(), &hub);
    let error = store
        .pull_ggml("tiny.en", GgmlQuant::F16, &mut |_| {})
        .unwrap_err();
    assert!(matches!(error, ModelError::InvalidGgml { .. }), "{error}");
    assert!(error.to_string().contains("not f16"), "{error}");
    assert!(!cache.path().join("tiny.en").exists());

    // Bytes that are not a ggml file at all.
    let hub = whisper_cpp_hub(vec![FakeFile::new(
        "ggml-tiny.en.bin",
        b"<html>rate limited</html>".to_vec(),
        false,
    )]);
    let store = store_for(cache.path(), &hub);
    let error = store
        .pull_ggml("tiny.en", GgmlQuant::F16, &mut |_| {})
        .unwrap_err();
    assert_eq!(error.code(), ErrorCode::ModelInvalid);
    assert!(error.to_string().contains("magic"), "{error}");
    assert!(!cache.path().join("tiny.en").exists());
}
