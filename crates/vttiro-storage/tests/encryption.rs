//! Encryption at rest in the local store: round trips, that nothing readable reaches the
//! disk, that every kind of tampering is caught, master key rotation, key configuration,
//! and decrypted copies for tools that need a file.

use std::collections::HashSet;
use std::io::{Cursor, Read};
use std::path::{Path, PathBuf};

use vttiro_core::ErrorCode;
use vttiro_storage::*;

const TAG: usize = 16;
mod common;

use common::{key, random_bytes, ring, LIMIT};

fn read_all(store: &Store, key: &str) -> Result<Vec<u8>, StorageError> {
    let mut reader = store.open_read(key)?;
    let mut out = Vec::new();
    reader.read_to_end(&mut out).map_err(|e| {
        // A failed segment carries the Sealed error itself, not just its text.
        match e.into_inner().map(|inner| inner.downcast::<StorageError>()) {
            Some(Ok(storage)) => *storage,
            other => panic!("read failed without a StorageError: {other:?}"),
        }
    })?;
    assert_eq!(
        reader.len(),
        out.len() as u64,
        "len() is the plaintext size"
    );
    Ok(out)
}

fn sealed_reason(err: StorageError) -> String {
    assert_eq!(err.code(), ErrorCode::StorageFailed);
    match &err {
        StorageError::Sealed { .. } => err.to_string(),
        other => panic!("expected a Sealed error, got {other:?}"),
    }
}

/// Every regular file under `dir`, partial files included.
fn files_under(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let entry = entry.unwrap();
        if entry.file_type().unwrap().is_dir() {
            out.extend(files_under(&entry.path()));
        } else {
            out.push(entry.path());
        }
    }
    out
}

fn sha256_hex(data: &[u8]) -> String {
    use sha2::{Digest, Sha256};
    Sha256::digest(data)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// A 440 Hz tone, `seconds` long, as 16 kHz WAV.
fn tone_wav(seconds: f32) -> (Vec<f32>, Vec<u8>) {
    let samples: Vec<f32> = (0..(seconds * 16_000.0) as usize)
        .map(|i| 0.5 * (i as f32 * 440.0 * std::f32::consts::TAU / 16_000.0).sin())
        .collect();
    let wav = vttiro_media::encode_wav(&samples);
    (samples, wav)
}

#[test]
fn objects_of_every_size_round_trip() {
    let dir = tempfile::tempdir().unwrap();
    let (keys, _) = key("k1");
    let store = Store::open_encrypted(dir.path(), keys).unwrap();
    assert!(store.is_encrypted());
    let cases = [
        ("a/random", random_bytes(1_000_000, 1)),
        ("a/exact", random_bytes(3 * SEGMENT_SIZE, 2)),
        ("a/one-more", random_bytes(SEGMENT_SIZE + 1, 3)),
        ("a/one-less", random_bytes(SEGMENT_SIZE - 1, 4)),
        ("a/empty", Vec::new()),
    ];
    for (name, data) in &cases {
        let stored = store.put(name, &mut Cursor::new(data), LIMIT).unwrap();
        assert_eq!(
            stored.size,
            data.len() as u64,
            "{name}: size is the plaintext's"
        );
        assert_eq!(
            stored.sha256,
            sha256_hex(data),
            "{name}: hash is the plaintext's"
        );
        let on_disk = std::fs::metadata(store.path(name).unwrap()).unwrap().len();
        let segments = data.len().div_ceil(SEGMENT_SIZE).max(1);
        assert_eq!(
            on_disk as usize,
            SEALED_HEADER_LEN + data.len() + segments * TAG,
            "{name}"
        );
        assert_eq!(&read_all(&store, name).unwrap(), data, "{name}");
    }
    // Small, odd-sized reads cross segment boundaries.
    let mut reader = store.open_read("a/one-more").unwrap();
    let mut out = Vec::new();
    let mut chunk = [0u8; 4093];
    loop {
        let n = reader.read(&mut chunk).unwrap();
        if n == 0 {
            break;
        }
        out.extend_from_slice(&chunk[..n]);
    }
    assert_eq!(out, cases[2].1);
}

#[test]
fn a_generated_wav_is_sniffed_sealed_and_decodes_from_its_local_file() {
    let dir = tempfile::tempdir().unwrap();
    let (keys, _) = key("media");
    let store = Store::open_encrypted(dir.path(), keys).unwrap();
    let (samples, wav) = tone_wav(5.0);
    let stored = store
        .put_media("jobs/j1/media", &mut Cursor::new(&wav), LIMIT)
        .unwrap();
    assert_eq!(stored.container, Some("wav"));
    assert_eq!(stored.size, wav.len() as u64);
    assert_eq!(read_all(&store, "jobs/j1/media").unwrap(), wav);
    let on_disk = std::fs::read(store.path("jobs/j1/media").unwrap()).unwrap();
    assert_ne!(&on_disk[..4], b"RIFF", "the stored file is not a WAV");

    // The same bytes, refused as media, leave nothing behind.
    let err = store
        .put_media(
            "jobs/j1/other",
            &mut Cursor::new(b"<!DOCTYPE html>".repeat(500)),
            LIMIT,
        )
        .unwrap_err();
    assert!(matches!(err, StorageError::NotMedia(_)), "{err:?}");
    assert!(!store.exists("jobs/j1/other"));

    let local = store.local_file("jobs/j1/media").unwrap();
    let decoded = vttiro_media::decode(
        local.path(),
        &vttiro_media::DecodeOptions {
            allow_ffmpeg: false,
            ..Default::default()
        },
    )
    .unwrap();
    assert_eq!(decoded.samples.len(), samples.len());
    let worst = decoded
        .samples
        .iter()
        .zip(&samples)
        .map(|(a, b)| (a - b).abs())
        .fold(0.0f32, f32::max);
    assert!(worst < 1e-3, "decoded samples differ by {worst}");
}

#[test]
fn no_plaintext_reaches_the_disk() {
    let dir = tempfile::tempdir().unwrap();
    let (keys, _) = key("k1");
    let store = Store::open_encrypted(dir.path(), keys).unwrap();
    let marker = b"TOP-SECRET-TRANSCRIPT-MARKER:";
    let mut text = Vec::new();
    for i in 0..6000 {
        text.extend_from_slice(marker);
        text.extend_from_slice(format!(" line {i} of the confidential meeting\n").as_bytes());
    }
    let (_, wav) = tone_wav(2.0);
    store
        .put("jobs/j1/result.vtt", &mut Cursor::new(&text), LIMIT)
        .unwrap();
    store
        .put_media("jobs/j1/media", &mut Cursor::new(&wav), LIMIT)
        .unwrap();

    let mut windows: HashSet<&[u8]> = HashSet::new();
    for plain in [&text, &wav] {
        windows.extend(plain.windows(16));
    }
    let files = files_under(dir.path());
    assert_eq!(files.len(), 2, "{files:?}");
    for file in files {
        let bytes = std::fs::read(&file).unwrap();
        assert!(
            !bytes.windows(marker.len()).any(|w| w == marker),
            "{}: the marker is readable",
            file.display()
        );
        let leaked = bytes.windows(16).filter(|w| windows.contains(w)).count();
        assert_eq!(
            leaked,
            0,
            "{}: {leaked} plaintext windows on disk",
            file.display()
        );
    }
    // The check itself can fail: a plaintext store leaks both.
    let plain = Store::open(&dir.path().join("plain")).unwrap();
    plain.put("x", &mut Cursor::new(&text), LIMIT).unwrap();
    let bytes = std::fs::read(plain.path("x").unwrap()).unwrap();
    assert!(bytes.windows(16).any(|w| windows.contains(w)));
}

#[test]
fn the_wrong_master_key_fails() {
    let dir = tempfile::tempdir().unwrap();
    let (right, _) = key("prod");
    let (wrong, _) = key("prod");
    Store::open_encrypted(dir.path(), right)
        .unwrap()
        .put("jobs/x/media", &mut Cursor::new(b"hello"), LIMIT)
        .unwrap();
    let store = Store::open_encrypted(dir.path(), wrong).unwrap();
    let reason = sealed_reason(store.open_read("jobs/x/media").unwrap_err());
    assert_eq!(
        reason,
        "jobs/x/media: cannot decrypt: authentication failed (wrong master key or tampered data)"
    );
    assert!(store.local_file("jobs/x/media").is_err());
}

#[test]
fn a_master_key_missing_from_the_keyring_is_named() {
    let dir = tempfile::tempdir().unwrap();
    let (old, _) = key("key-2023");
    let (new, _) = key("key-2024");
    Store::open_encrypted(dir.path(), old)
        .unwrap()
        .put("o", &mut Cursor::new(b"hello"), LIMIT)
        .unwrap();
    let store = Store::open_encrypted(dir.path(), new).unwrap();
    let reason = sealed_reason(store.open_read("o").unwrap_err());
    assert!(reason.contains("\"key-2023\""), "{reason}");
    assert!(reason.contains("key-2024"), "{reason}");
}

#[test]
fn a_store_without_keys_refuses_sealed_objects_but_reads_plaintext() {
    let dir = tempfile::tempdir().unwrap();
    let (keys, _) = key("k1");
    let encrypted = Store::open_encrypted(dir.path(), keys).unwrap();
    encrypted
        .put("jobs/x/media", &mut Cursor::new(b"content"), LIMIT)
        .unwrap();
    let plain = Store::open(dir.path()).unwrap();
    assert!(!plain.is_encrypted());
    let reason = sealed_reason(plain.open_read("jobs/x/media").unwrap_err());
    assert_eq!(
        reason,
        "jobs/x/media: cannot decrypt: encrypted; no master key configured"
    );
    assert!(matches!(
        plain.local_file("jobs/x/media"),
        Err(StorageError::Sealed { .. })
    ));

    // And the other way round: plaintext written earlier stays readable once encrypted.
    plain
        .put("legacy", &mut Cursor::new(b"WEBVTT\n\nold"), LIMIT)
        .unwrap();
    assert_eq!(read_all(&plain, "legacy").unwrap(), b"WEBVTT\n\nold");
    assert_eq!(read_all(&encrypted, "legacy").unwrap(), b"WEBVTT\n\nold");
    assert!(!encrypted.open_read("legacy").unwrap().is_sealed());
}

/// Stores `data` under `key`, then lets `damage` edit the file, and returns what reading
/// it (opening and reading to the end) says.
fn tampered(data: &[u8], damage: impl FnOnce(&mut Vec<u8>)) -> Result<Vec<u8>, StorageError> {
    let dir = tempfile::tempdir().unwrap();
    let (keys, _) = key("k1");
    let store = Store::open_encrypted(dir.path(), keys).unwrap();
    store
        .put("jobs/x/media", &mut Cursor::new(data), LIMIT)
        .unwrap();
    let path = store.path("jobs/x/media").unwrap();
    let mut bytes = std::fs::read(&path).unwrap();
    damage(&mut bytes);
    std::fs::write(&path, &bytes).unwrap();
    read_all(&store, "jobs/x/media")
}

#[test]
fn tampering_anywhere_is_caught() {
    let data = random_bytes(3 * SEGMENT_SIZE + 1000, 9);
    assert_eq!(tampered(&data, |_| {}).unwrap(), data, "undamaged control");
    let stored = SEGMENT_SIZE + TAG;
    let cases: Vec<(&str, usize)> = vec![
        ("magic", 2),
        ("version", 8),
        ("key id length", 9),
        ("key id", 10),
        ("key id padding", 30),
        ("wrap nonce", 45),
        ("wrapped data key", 70),
        ("wrap tag", SEALED_HEADER_LEN - 1),
        ("first segment", SEALED_HEADER_LEN),
        ("middle segment", SEALED_HEADER_LEN + stored + 500),
        ("middle segment tag", SEALED_HEADER_LEN + 2 * stored - 1),
        ("last segment", SEALED_HEADER_LEN + 3 * stored + 3),
    ];
    for (what, at) in cases {
        let err = tampered(&data, |b| b[at] ^= 0x40).unwrap_err();
        assert!(
            matches!(err, StorageError::Sealed { .. }),
            "{what}: {err:?}"
        );
        assert!(
            err.to_string()
                .starts_with("jobs/x/media: cannot decrypt: "),
            "{what}: {err}"
        );
    }
    let err = tampered(&data, |b| *b.last_mut().unwrap() ^= 1).unwrap_err();
    assert!(
        err.to_string().contains("authentication failed"),
        "final tag: {err}"
    );
}

type Damage = Box<dyn FnOnce(&mut Vec<u8>)>;

#[test]
fn truncation_reordering_and_appending_are_caught() {
    let data = random_bytes(3 * SEGMENT_SIZE + 1000, 10);
    let stored = SEGMENT_SIZE + TAG;
    let body = SEALED_HEADER_LEN;
    let cases: Vec<(&str, Damage)> = vec![
        (
            "last byte cut",
            Box::new(|b: &mut Vec<u8>| {
                b.pop();
            }),
        ),
        (
            "last segment cut short",
            Box::new(|b: &mut Vec<u8>| b.truncate(b.len() - 500)),
        ),
        (
            "last segment dropped",
            Box::new(move |b: &mut Vec<u8>| b.truncate(body + 3 * stored)),
        ),
        (
            "only a tag left of the last segment",
            Box::new(move |b: &mut Vec<u8>| b.truncate(body + 3 * stored + 10)),
        ),
        (
            "body gone",
            Box::new(move |b: &mut Vec<u8>| b.truncate(body)),
        ),
        ("header cut", Box::new(|b: &mut Vec<u8>| b.truncate(50))),
        (
            "segments swapped",
            Box::new(move |b: &mut Vec<u8>| {
                let first: Vec<u8> = b[body..body + stored].to_vec();
                let second: Vec<u8> = b[body + stored..body + 2 * stored].to_vec();
                b[body..body + stored].copy_from_slice(&second);
                b[body + stored..body + 2 * stored].copy_from_slice(&first);
            }),
        ),
        (
            "a segment repeated at the end",
            Box::new(move |b: &mut Vec<u8>| {
                let first: Vec<u8> = b[body..body + stored].to_vec();
                b.extend_from_slice(&first);
            }),
        ),
        (
            "junk appended",
            Box::new(|b: &mut Vec<u8>| b.extend_from_slice(&[0u8; 40])),
        ),
    ];
    for (what, damage) in cases {
        let err = tampered(&data, damage).unwrap_err();
        assert!(
            matches!(err, StorageError::Sealed { .. }),
            "{what}: {err:?}"
        );
    }
}

#[test]
fn a_damaged_segment_fails_the_read_after_the_good_ones() {
    let dir = tempfile::tempdir().unwrap();
    let (keys, _) = key("k1");
    let store = Store::open_encrypted(dir.path(), keys).unwrap();
    let data = random_bytes(3 * SEGMENT_SIZE, 11);
    store.put("o", &mut Cursor::new(&data), LIMIT).unwrap();
    let path = store.path("o").unwrap();
    let mut bytes = std::fs::read(&path).unwrap();
    bytes[SEALED_HEADER_LEN + SEGMENT_SIZE + TAG + 7] ^= 1;
    std::fs::write(&path, &bytes).unwrap();

    let mut reader = store.open_read("o").unwrap();
    let mut first = vec![0u8; SEGMENT_SIZE];
    reader.read_exact(&mut first).unwrap();
    assert_eq!(
        first,
        data[..SEGMENT_SIZE],
        "the intact first segment reads"
    );
    let err = reader.read(&mut [0u8; 10]).unwrap_err();
    assert_eq!(err.kind(), std::io::ErrorKind::InvalidData);
    assert_eq!(
        err.to_string(),
        "o: cannot decrypt: authentication failed (wrong master key or tampered data)"
    );
    // It stays failed rather than skipping ahead.
    assert!(reader.read(&mut [0u8; 10]).is_err());
}

#[test]
fn swapping_two_objects_files_is_caught() {
    let dir = tempfile::tempdir().unwrap();
    let (keys, _) = key("k1");
    let store = Store::open_encrypted(dir.path(), keys).unwrap();
    store
        .put(
            "jobs/a/result.vtt",
            &mut Cursor::new(b"WEBVTT\n\nalice"),
            LIMIT,
        )
        .unwrap();
    store
        .put(
            "jobs/b/result.vtt",
            &mut Cursor::new(b"WEBVTT\n\nbob"),
            LIMIT,
        )
        .unwrap();
    let a = store.path("jobs/a/result.vtt").unwrap();
    let b = store.path("jobs/b/result.vtt").unwrap();
    let (bytes_a, bytes_b) = (std::fs::read(&a).unwrap(), std::fs::read(&b).unwrap());
    std::fs::write(&a, &bytes_b).unwrap();
    std::fs::write(&b, &bytes_a).unwrap();
    for key in ["jobs/a/result.vtt", "jobs/b/result.vtt"] {
        let err = read_all(&store, key).unwrap_err();
        assert!(matches!(err, StorageError::Sealed { .. }), "{key}: {err:?}");
    }
    // Even with the headers put back, the bodies belong to the other object.
    let mut mixed = bytes_a[..SEALED_HEADER_LEN].to_vec();
    mixed.extend_from_slice(&bytes_b[SEALED_HEADER_LEN..]);
    std::fs::write(&a, &mixed).unwrap();
    assert!(read_all(&store, "jobs/a/result.vtt").is_err());
}

#[test]
fn rotation_rewraps_without_touching_bodies_and_seals_legacy_objects() {
    let dir = tempfile::tempdir().unwrap();
    let (a, spec_a) = key("A");
    let (_, spec_b) = key("B");
    let objects = [
        ("jobs/1/media", random_bytes(200_000, 20)),
        ("jobs/1/result.vtt", b"WEBVTT\n\nhello".to_vec()),
        ("jobs/2/empty", Vec::new()),
    ];
    // Plaintext from before encryption was turned on.
    let legacy = b"WEBVTT\n\nwritten before encryption".to_vec();
    Store::open(dir.path())
        .unwrap()
        .put("jobs/0/result.vtt", &mut Cursor::new(&legacy), LIMIT)
        .unwrap();
    let under_a = Store::open_encrypted(dir.path(), a).unwrap();
    for (name, data) in &objects {
        under_a.put(name, &mut Cursor::new(data), LIMIT).unwrap();
    }
    let before: Vec<Vec<u8>> = objects
        .iter()
        .map(|(name, _)| std::fs::read(under_a.path(name).unwrap()).unwrap())
        .collect();

    let both = Store::open_encrypted(dir.path(), ring(&format!("{spec_b},{spec_a}"))).unwrap();
    let report = both.rotate().unwrap();
    assert_eq!(
        report,
        RotationReport {
            rewrapped: 3,
            sealed: 1,
            unchanged: 0
        }
    );
    for ((name, _), old) in objects.iter().zip(&before) {
        let new = std::fs::read(both.path(name).unwrap()).unwrap();
        assert_eq!(
            new[SEALED_HEADER_LEN..],
            old[SEALED_HEADER_LEN..],
            "{name}: the body is unchanged"
        );
        assert_ne!(
            new[..SEALED_HEADER_LEN],
            old[..SEALED_HEADER_LEN],
            "{name}: new header"
        );
    }
    assert!(files_under(dir.path())
        .iter()
        .all(|p| { !p.file_name().unwrap().to_string_lossy().contains(".part-") }));

    let only_b = Store::open_encrypted(dir.path(), ring(&spec_b)).unwrap();
    for (name, data) in &objects {
        assert_eq!(&read_all(&only_b, name).unwrap(), data, "{name}");
    }
    assert_eq!(read_all(&only_b, "jobs/0/result.vtt").unwrap(), legacy);
    assert!(only_b.open_read("jobs/0/result.vtt").unwrap().is_sealed());
    let legacy_on_disk = std::fs::read(only_b.path("jobs/0/result.vtt").unwrap()).unwrap();
    assert!(!legacy_on_disk
        .windows(16)
        .any(|w| legacy.windows(16).any(|p| p == w)));

    // Key A alone no longer opens anything, and says which key it would need.
    let only_a = Store::open_encrypted(dir.path(), ring(&spec_a)).unwrap();
    let reason = sealed_reason(only_a.open_read("jobs/1/media").unwrap_err());
    assert!(reason.contains("\"B\""), "{reason}");

    // Rotating again has nothing to do.
    assert_eq!(
        only_b.rotate().unwrap(),
        RotationReport {
            rewrapped: 0,
            sealed: 0,
            unchanged: 4
        }
    );
}

#[test]
fn rotation_stops_at_an_object_it_cannot_unwrap_and_needs_keys() {
    let dir = tempfile::tempdir().unwrap();
    let (a, _) = key("A");
    let (_, spec_b) = key("B");
    Store::open_encrypted(dir.path(), a)
        .unwrap()
        .put("x", &mut Cursor::new(b"data"), LIMIT)
        .unwrap();
    let err = Store::open_encrypted(dir.path(), ring(&spec_b))
        .unwrap()
        .rotate()
        .unwrap_err();
    assert!(err.to_string().contains("\"A\""), "{err}");
    let err = Store::open(dir.path()).unwrap().rotate().unwrap_err();
    assert!(matches!(err, StorageError::MasterKey(_)), "{err:?}");
}

#[test]
fn limits_count_plaintext_and_partials_are_swept() {
    let dir = tempfile::tempdir().unwrap();
    let (keys, _) = key("k1");
    let store = Store::open_encrypted(dir.path(), keys).unwrap();
    let data = random_bytes(SEGMENT_SIZE * 2, 30);
    // The stored file is larger than the limit; the plaintext is exactly at it.
    store
        .put("fits", &mut Cursor::new(&data), data.len() as u64)
        .unwrap();
    let err = store
        .put("over", &mut Cursor::new(&data), data.len() as u64 - 1)
        .unwrap_err();
    assert!(matches!(err, StorageError::TooLarge { .. }), "{err:?}");
    assert_eq!(
        files_under(dir.path()).len(),
        1,
        "nothing left of the refused write"
    );

    let partial = dir.path().join(".fits.part-0123456789abcdef");
    std::fs::write(&partial, b"half").unwrap();
    assert_eq!(store.sweep_partials(std::time::Duration::ZERO).unwrap(), 1);
    assert!(!partial.exists());
    assert_eq!(read_all(&store, "fits").unwrap(), data);
}

#[test]
fn keyring_spec_errors_are_clear_and_never_show_key_material() {
    let (_, good) = KeyRing::generate("good").unwrap();
    let material = good.split_once(':').unwrap().1.to_string();
    let short = "c2hvcnQga2V5"; // base64 of "short key"
    let cases = [
        (
            format!("good:{material},bad:{material}!!"),
            "entry 2 (\"bad\")",
            "not valid base64",
        ),
        (
            format!("good:{material},bad:{short}"),
            "entry 2 (\"bad\")",
            "9 bytes",
        ),
        (
            format!("good:{material},good:{material}"),
            "entry 2",
            "duplicate key id \"good\"",
        ),
        (String::new(), "no keys", "no keys"),
        (" , \n".to_string(), "no keys", "no keys"),
        (material.clone(), "entry 1", "expected `id:base64-key`"),
        (format!("has space:{material}"), "entry 1", "key id must be"),
        (
            format!("{}:{material}", "x".repeat(33)),
            "entry 1",
            "key id must be",
        ),
        (format!("zero:{}=", "A".repeat(43)), "entry 1", "all zeros"),
    ];
    for (spec, names, says) in cases {
        let err = KeyRing::parse(&spec).unwrap_err();
        let message = err.to_string();
        assert!(
            matches!(err, StorageError::MasterKey(_)),
            "{spec:?}: {err:?}"
        );
        assert_eq!(err.code(), ErrorCode::InvalidArgument);
        assert!(message.contains(names), "{message}");
        assert!(message.contains(says), "{message}");
        assert!(!message.contains(&material[..12]), "{message}");
        assert!(!message.contains(short), "{message}");
        assert!(!message.contains('\n'), "one line: {message}");
    }

    let (_, other) = KeyRing::generate("old").unwrap();
    let parsed = KeyRing::parse(&format!("\n  new:{material} ,\n {other} \n")).unwrap();
    assert_eq!(parsed.current_id(), "new");
    assert_eq!(parsed.ids(), vec!["new".to_string(), "old".to_string()]);
    let shown = format!("{parsed:?}");
    assert!(!shown.contains(&material[..12]), "{shown}");
    assert!(KeyRing::generate("bad id").is_err());
}

#[cfg(unix)]
#[test]
fn key_files_must_be_private() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let (_, spec) = KeyRing::generate("filekey").unwrap();
    let path = dir.path().join("master.keys");
    std::fs::write(&path, format!("{spec}\n")).unwrap();

    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
    let err = KeyRing::load_file(&path).unwrap_err();
    let message = err.to_string();
    assert!(message.contains("master.keys"), "{message}");
    assert!(message.contains("0644"), "{message}");
    assert!(
        !message.contains(spec.split_once(':').unwrap().1),
        "{message}"
    );

    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
    assert_eq!(KeyRing::load_file(&path).unwrap().current_id(), "filekey");

    std::fs::write(&path, "filekey:not base64!").unwrap();
    let message = KeyRing::load_file(&path).unwrap_err().to_string();
    assert!(
        message.contains("master.keys") && message.contains("not valid base64"),
        "{message}"
    );
    assert!(KeyRing::load_file(&dir.path().join("missing")).is_err());
}

#[test]
fn local_file_is_a_private_decrypted_copy_removed_on_drop() {
    let dir = tempfile::tempdir().unwrap();
    let (keys, _) = key("k1");
    let store = Store::open_encrypted(dir.path(), keys).unwrap();
    let (_, wav) = tone_wav(1.0);
    store
        .put_media("jobs/j/media.wav", &mut Cursor::new(&wav), LIMIT)
        .unwrap();
    let local = store.local_file("jobs/j/media.wav").unwrap();
    assert!(local.is_temporary());
    let path = local.path().to_path_buf();
    assert!(
        !path.starts_with(dir.path()),
        "the copy is outside the store"
    );
    assert_eq!(
        path.extension().unwrap(),
        "wav",
        "tools still see the extension"
    );
    assert_eq!(std::fs::read(&path).unwrap(), wav);
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
    }
    drop(local);
    assert!(!path.exists(), "removed on drop");

    // A damaged object gives no copy at all.
    let stored = store.path("jobs/j/media.wav").unwrap();
    let mut bytes = std::fs::read(&stored).unwrap();
    let last = bytes.len() - 1;
    bytes[last] ^= 1;
    std::fs::write(&stored, &bytes).unwrap();
    let err = store.local_file("jobs/j/media.wav").unwrap_err();
    assert!(matches!(err, StorageError::Sealed { .. }), "{err:?}");

    // A plaintext store hands out the object's own file.
    let plain = Store::open(&dir.path().join("plain")).unwrap();
    plain.put("m.wav", &mut Cursor::new(&wav), LIMIT).unwrap();
    let local = plain.local_file("m.wav").unwrap();
    assert!(!local.is_temporary());
    assert_eq!(local.path(), plain.path("m.wav").unwrap());
    drop(local);
    assert!(plain.exists("m.wav"), "the object itself is never removed");
    assert!(matches!(
        plain.local_file("absent"),
        Err(StorageError::NotFound(_))
    ));
}

#[test]
fn object_readers_can_move_between_threads() {
    fn send<T: Send>(_: &T) {}
    let dir = tempfile::tempdir().unwrap();
    let (keys, _) = key("k1");
    let store = Store::open_encrypted(dir.path(), keys).unwrap();
    store.put("o", &mut Cursor::new(b"abc"), LIMIT).unwrap();
    let mut reader = store.open_read("o").unwrap();
    send(&reader);
    let out = std::thread::spawn(move || {
        let mut out = String::new();
        reader.read_to_string(&mut out).unwrap();
        out
    })
    .join()
    .unwrap();
    assert_eq!(out, "abc");
}
