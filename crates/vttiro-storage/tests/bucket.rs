//! The store in an S3 bucket, against a real S3-compatible server (moto) on 127.0.0.1:
//! single and multipart uploads, ranged reads, listing, conditional create, deletion,
//! encryption layered on top, rotation in place, and that failed writes leave neither an
//! object nor an unfinished multipart upload behind. The bucket is inspected over plain S3
//! calls, not through the store under test.

use std::io::{Cursor, Read};
use std::sync::Arc;

use vttiro_fixtures::S3Server;
use vttiro_storage::*;

mod common;

use common::{key, random_bytes, ring, LIMIT};

fn open(server: &S3Server, location: &str, keys: Option<Arc<KeyRing>>) -> Store {
    Store::open_location_with(location, &server.options(), keys).unwrap()
}

fn read_all(store: &Store, key: &str) -> Result<Vec<u8>, StorageError> {
    let mut reader = store.open_read(key)?;
    let mut out = Vec::new();
    reader
        .read_to_end(&mut out)
        .map_err(|e| StorageError::Io(e.to_string()))?;
    assert_eq!(reader.len(), out.len() as u64);
    Ok(out)
}

/// Objects on both sides of the part size — empty, small, exactly one part, several parts
/// — come back byte for byte, plaintext and sealed, and the bucket holds exactly them.
#[test]
fn objects_round_trip_through_single_and_multipart_uploads() {
    let server = S3Server::start();
    let bucket = server.bucket("media");
    let plain = open(&server, &bucket, None);
    let sealed = open(&server, &format!("{bucket}/sealed"), Some(key("k1").0));
    assert!(plain.is_remote() && sealed.is_encrypted());
    let sizes = [0, 1000, PART_SIZE, 2 * PART_SIZE + 12_345];
    for (i, &size) in sizes.iter().enumerate() {
        let data = random_bytes(size, i as u64);
        let name = format!("jobs/j{i}/media.bin");
        for store in [&plain, &sealed] {
            let stored = store.put(&name, &mut Cursor::new(&data), LIMIT).unwrap();
            assert_eq!(stored.size, size as u64);
            assert_eq!(read_all(store, &name).unwrap(), data, "{size} bytes");
            assert!(store.exists(&name));
        }
        // Stored bytes: the plaintext as is; the sealed copy never contains a 4 KiB window
        // of it.
        assert_eq!(server.object("media", &name), data);
        let ciphertext = server.object("media", &format!("sealed/{name}"));
        assert!(ciphertext.len() > size);
        if size >= 4096 {
            let window = &data[size / 2..size / 2 + 4096];
            assert!(!ciphertext.windows(4096).any(|w| w == window));
        }
    }
    let mut expected: Vec<String> = (0..sizes.len())
        .flat_map(|i| {
            let name = format!("jobs/j{i}/media.bin");
            [name.clone(), format!("sealed/{name}")]
        })
        .collect();
    expected.sort();
    assert_eq!(server.keys("media"), expected);
    assert_eq!(server.pending_uploads("media"), 0);
    // The prefix is the store's root: listing and keys never show it.
    assert_eq!(
        sealed.list(None).unwrap(),
        (0..sizes.len())
            .map(|i| format!("jobs/j{i}/media.bin"))
            .collect::<Vec<_>>()
    );
}

/// Reads are ranged GETs of one window at a time, pinned to the version opened: seeking
/// reads only what it needs, and an object replaced mid-read fails the read rather than
/// splicing two versions.
#[test]
fn ranged_reads_stay_on_the_version_they_opened() {
    let server = S3Server::start();
    let bucket = server.bucket("ranges");
    let store = open(&server, &bucket, Some(key("k1").0));
    let data = random_bytes(3 * WINDOW as usize + 777, 7);
    store.put("big", &mut Cursor::new(&data), LIMIT).unwrap();

    let mut reader = store.open_read("big").unwrap();
    let mut first = vec![0u8; 1 << 20];
    reader.read_exact(&mut first).unwrap();
    assert_eq!(first, data[..1 << 20]);

    let replacement = random_bytes(data.len(), 8);
    store
        .put("big", &mut Cursor::new(&replacement), LIMIT)
        .unwrap();
    let mut rest = Vec::new();
    let err = reader.read_to_end(&mut rest).unwrap_err().to_string();
    assert!(
        err.contains("big: replaced or deleted while being read"),
        "{err}"
    );
    assert!(
        rest.len() < WINDOW as usize,
        "only the window already fetched was served: {}",
        rest.len()
    );
    assert_eq!(read_all(&store, "big").unwrap(), replacement);

    // A decrypted copy for ffmpeg is a temporary file even for plaintext objects.
    let plain = open(&server, &format!("{bucket}/plain"), None);
    plain
        .put("a.wav", &mut Cursor::new(&data[..5000]), LIMIT)
        .unwrap();
    let local = plain.local_file("a.wav").unwrap();
    assert!(local.is_temporary());
    assert_eq!(local.path().file_name().unwrap(), "a.wav");
    assert_eq!(std::fs::read(local.path()).unwrap(), data[..5000]);
    let path = local.path().to_path_buf();
    drop(local);
    assert!(!path.exists() && !path.parent().unwrap().exists());
}

/// Listing by prefix, single deletes that say whether there was anything, and prefix
/// deletes that take a job's whole folder.
#[test]
fn list_and_delete() {
    let server = S3Server::start();
    let bucket = server.bucket("jobs");
    let store = open(&server, &format!("{bucket}/tenant-a"), None);
    for name in [
        "jobs/a/media",
        "jobs/a/result.vtt",
        "jobs/ab/media",
        "jobs/b/media",
    ] {
        store.put(name, &mut Cursor::new(name), LIMIT).unwrap();
    }
    assert_eq!(
        store.list(Some("jobs/a")).unwrap(),
        ["jobs/a/media", "jobs/a/result.vtt"],
        "a prefix is a folder, not a string prefix"
    );
    assert!(store.delete("jobs/a/media").unwrap());
    assert!(!store.delete("jobs/a/media").unwrap());
    assert!(!store.exists("jobs/a/media"));
    assert!(matches!(
        store.open_read("jobs/a/media"),
        Err(StorageError::NotFound(_))
    ));
    assert!(store.delete_prefix("jobs/a").unwrap());
    assert!(!store.delete_prefix("jobs/a").unwrap());
    assert_eq!(
        server.keys("jobs"),
        ["tenant-a/jobs/ab/media", "tenant-a/jobs/b/media"]
    );
    assert!(matches!(
        store.delete("../escape"),
        Err(StorageError::InvalidKey(_))
    ));
}

/// `put_if_absent` creates once and then leaves the first object alone, for objects of
/// one part (a conditional PUT) and of several.
#[test]
fn conditional_create_never_replaces() {
    let server = S3Server::start();
    let bucket = server.bucket("create");
    let store = open(&server, &bucket, Some(key("k1").0));
    for (name, size) in [("small", 500), ("large", PART_SIZE + 10)] {
        let first = random_bytes(size, 1);
        let second = random_bytes(size, 2);
        let created = store
            .put_if_absent(name, &mut Cursor::new(&first), LIMIT)
            .unwrap()
            .expect("created");
        assert_eq!(created.size, size as u64);
        let again = store
            .put_if_absent(name, &mut Cursor::new(&second), LIMIT)
            .unwrap();
        assert!(again.is_none(), "{name}: an existing object is kept");
        assert_eq!(read_all(&store, name).unwrap(), first);
    }
    assert_eq!(server.pending_uploads("create"), 0);
}

/// A write refused part-way (too large, not media, the source failing) leaves no object
/// and no unfinished multipart upload, and never replaces what was there.
#[test]
fn failed_writes_leave_nothing_behind() {
    struct Failing(usize);
    impl Read for Failing {
        fn read(&mut self, out: &mut [u8]) -> std::io::Result<usize> {
            if self.0 == 0 {
                return Err(std::io::Error::other("connection reset by client"));
            }
            let n = out.len().min(self.0);
            out[..n].fill(7);
            self.0 -= n;
            Ok(n)
        }
    }
    let server = S3Server::start();
    let bucket = server.bucket("failures");
    let store = open(&server, &bucket, Some(key("k1").0));
    store
        .put("kept", &mut Cursor::new(b"original"), LIMIT)
        .unwrap();

    let big = random_bytes(3 * PART_SIZE, 3);
    let err = store
        .put("kept", &mut Cursor::new(&big), 2 * PART_SIZE as u64 + 1)
        .unwrap_err();
    assert!(matches!(err, StorageError::TooLarge { .. }), "{err}");
    let err = store
        .put("gone", &mut Failing(2 * PART_SIZE + 5), LIMIT)
        .unwrap_err();
    assert!(
        err.to_string().contains("connection reset by client"),
        "{err}"
    );
    let err = store
        .put_media("media", &mut Cursor::new(&big), LIMIT)
        .unwrap_err();
    assert!(matches!(err, StorageError::NotMedia(_)), "{err}");

    assert_eq!(server.keys("failures"), ["kept"]);
    assert_eq!(server.pending_uploads("failures"), 0);
    assert_eq!(read_all(&store, "kept").unwrap(), b"original");
}

/// Rotation in a bucket: data keys under the old master key are re-wrapped with the body
/// byte-identical, plaintext from before encryption is sealed, and afterwards the new key
/// alone reads everything.
#[test]
fn rotation_rewraps_objects_in_the_bucket() {
    let server = S3Server::start();
    let bucket = server.bucket("rotate");
    let (old, old_spec) = key("old");
    let (_, new_spec) = key("new");
    let small = random_bytes(3000, 1);
    let large = random_bytes(PART_SIZE + 100_000, 2);
    let legacy = b"written before encryption".to_vec();
    let under_old = open(&server, &bucket, Some(old));
    under_old
        .put("jobs/a/small", &mut Cursor::new(&small), LIMIT)
        .unwrap();
    under_old
        .put("jobs/a/large", &mut Cursor::new(&large), LIMIT)
        .unwrap();
    open(&server, &bucket, None)
        .put("jobs/b/legacy", &mut Cursor::new(&legacy), LIMIT)
        .unwrap();
    let body_before = server.object("rotate", "jobs/a/large")[SEALED_HEADER_LEN..].to_vec();

    let both = ring(&format!("{new_spec},{old_spec}"));
    let report = open(&server, &bucket, Some(both)).rotate().unwrap();
    assert_eq!(
        report,
        RotationReport {
            rewrapped: 2,
            sealed: 1,
            unchanged: 0
        }
    );
    assert_eq!(
        server.object("rotate", "jobs/a/large")[SEALED_HEADER_LEN..],
        body_before[..],
        "re-wrapping leaves the body alone"
    );
    let only_new = open(&server, &bucket, Some(ring(&new_spec)));
    assert_eq!(read_all(&only_new, "jobs/a/small").unwrap(), small);
    assert_eq!(read_all(&only_new, "jobs/a/large").unwrap(), large);
    assert_eq!(read_all(&only_new, "jobs/b/legacy").unwrap(), legacy);
    assert!(!server
        .object("rotate", "jobs/b/legacy")
        .windows(legacy.len())
        .any(|w| w == legacy));
    assert_eq!(only_new.rotate().unwrap().unchanged, 3);
    assert_eq!(server.pending_uploads("rotate"), 0);
}

/// Locations that cannot work are refused at open with the location and the reason.
#[test]
fn bad_locations_are_named() {
    let err = Store::open_location("ftp://host/x", None).unwrap_err();
    assert_eq!(
        err.to_string(),
        "storage location ftp://host/x: unsupported scheme \"ftp\" (use a directory, file://, s3://, gs:// or az://)"
    );
    assert_eq!(err.code(), vttiro_core::ErrorCode::InvalidArgument);
    let err = Store::open_location_with(
        "s3://bucket",
        &[("aws_no_such_option".into(), "1".into())],
        None,
    )
    .unwrap_err();
    assert!(
        err.to_string()
            .starts_with("storage location s3://bucket: option \"aws_no_such_option\""),
        "{err}"
    );
    // Each cloud's URL opens without touching the network (credentials are fetched, from
    // the environment or workload identity, at the first request).
    for (location, options) in [
        ("gs://vttiro-media/prod", vec![]),
        (
            "az://vttiro-media/prod",
            vec![(
                "azure_storage_account_name".to_string(),
                "vttiromedia".to_string(),
            )],
        ),
        (
            "s3://vttiro-media/prod",
            vec![("aws_region".to_string(), "eu-west-1".to_string())],
        ),
    ] {
        let store = Store::open_location_with(location, &options, None)
            .unwrap_or_else(|e| panic!("{location}: {e}"));
        assert!(store.is_remote());
        assert_eq!(store.location(), location);
    }
    // A directory path or file:// URL is a local store.
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open_location(&format!("file://{}", dir.path().display()), None).unwrap();
    assert!(!store.is_remote());
    store.put("x", &mut Cursor::new(b"1"), 8).unwrap();
    assert!(dir.path().join("x").is_file());
}
