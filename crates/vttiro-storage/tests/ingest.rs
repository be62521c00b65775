//! Uploads and URL fetches into the local store: limits, sniffing, atomic writes, and the
//! SSRF rules, against small HTTP servers on loopback addresses.

use std::io::{BufRead, BufReader, Cursor, Write};
use std::net::{IpAddr, SocketAddr, TcpListener};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use vttiro_core::ErrorCode;
use vttiro_storage::*;

/// `seconds` of silence as 16 kHz 16-bit WAV.
fn wav(seconds: usize) -> Vec<u8> {
    vttiro_media::encode_wav(&vec![0.0; seconds * 16_000])
}

/// Serves a few fixed routes on `ip` for a bounded number of connections.
struct Site {
    addr: SocketAddr,
    thread: Option<JoinHandle<()>>,
}

impl Site {
    fn start(ip: &str, redirect_to: Option<String>) -> Site {
        let listener = TcpListener::bind((ip, 0)).expect("bind loopback");
        let addr = listener.local_addr().unwrap();
        let thread = std::thread::spawn(move || {
            for _ in 0..8 {
                let Ok((stream, _)) = listener.accept() else {
                    return;
                };
                let mut reader = BufReader::new(stream.try_clone().unwrap());
                let mut line = String::new();
                if reader.read_line(&mut line).is_err() {
                    continue;
                }
                loop {
                    let mut header = String::new();
                    if reader.read_line(&mut header).is_err() || header.trim().is_empty() {
                        break;
                    }
                }
                let path = line.split_whitespace().nth(1).unwrap_or("/").to_string();
                let mut stream = stream;
                let (status, body, extra): (&str, Vec<u8>, String) = match path.as_str() {
                    "/talk.wav" => ("200 OK", wav(1), String::new()),
                    "/page.html" => (
                        "200 OK",
                        b"<!DOCTYPE html><p>hi</p>".to_vec(),
                        String::new(),
                    ),
                    "/big.wav" => ("200 OK", wav(10), String::new()),
                    "/missing" => ("404 Not Found", b"no".to_vec(), String::new()),
                    "/slow.wav" => {
                        std::thread::sleep(Duration::from_millis(1500));
                        ("200 OK", wav(1), String::new())
                    }
                    "/hop" => (
                        "302 Found",
                        Vec::new(),
                        format!("location: {}\r\n", redirect_to.clone().unwrap_or_default()),
                    ),
                    _ => ("404 Not Found", Vec::new(), String::new()),
                };
                let head = format!(
                    "HTTP/1.1 {status}\r\ncontent-length: {}\r\nconnection: close\r\n{extra}\r\n",
                    body.len()
                );
                let _ = stream.write_all(head.as_bytes());
                let _ = stream.write_all(&body);
            }
        });
        Site {
            addr,
            thread: Some(thread),
        }
    }

    fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }
}

impl Drop for Site {
    fn drop(&mut self) {
        // Wake the accept loop until it has served its bounded number of connections.
        for _ in 0..8 {
            if std::net::TcpStream::connect_timeout(&self.addr, Duration::from_millis(200)).is_err()
            {
                break;
            }
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

fn trusting(ip: &str) -> FetchPolicy {
    FetchPolicy {
        allowed_addresses: vec![ip.parse::<IpAddr>().unwrap()],
        max_bytes: 100_000,
        timeout: Duration::from_secs(5),
        ..FetchPolicy::default()
    }
}

fn files_under(dir: &std::path::Path) -> Vec<String> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap().flatten() {
        if entry.path().is_dir() {
            out.extend(files_under(&entry.path()));
        } else {
            out.push(entry.file_name().to_string_lossy().into_owned());
        }
    }
    out
}

#[test]
fn uploads_stream_in_atomically_within_the_limit_and_must_be_media() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let audio = wav(2);
    let stored = store
        .put_media("jobs/a/media", &mut Cursor::new(audio.clone()), 1_000_000)
        .unwrap();
    assert_eq!(
        (stored.size, stored.container),
        (audio.len() as u64, Some("wav"))
    );
    assert_eq!(stored.sha256.len(), 64);
    assert_eq!(
        std::fs::read(store.path("jobs/a/media").unwrap()).unwrap(),
        audio
    );

    let too_big = store
        .put_media("jobs/b/media", &mut Cursor::new(audio.clone()), 10_000)
        .unwrap_err();
    assert_eq!(too_big.code(), ErrorCode::InputTooLarge);
    assert_eq!(too_big.code().http_status(), 413);
    let not_media = store
        .put_media(
            "jobs/c/media",
            &mut Cursor::new(b"hello, world".repeat(1000)),
            1_000_000,
        )
        .unwrap_err();
    assert_eq!(not_media.code().http_status(), 415);
    // Refused writes leave nothing behind, not even their temporary files.
    assert_eq!(files_under(dir.path()), vec!["media"]);

    for bad in ["../escape", "/abs", "a//b", "a/./b", "a b", ""] {
        assert!(
            matches!(store.path(bad), Err(StorageError::InvalidKey(_))),
            "{bad}"
        );
    }
    assert!(store.delete_prefix("jobs/a").unwrap());
    assert!(!store.exists("jobs/a/media"));
    assert!(!store.delete("jobs/a/media").unwrap());
}

#[test]
fn internal_addresses_are_refused_unless_allowed() {
    let site = Site::start("127.0.0.1", None);
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let strict = FetchPolicy::default();
    for url in [
        site.url("/talk.wav"),
        format!("http://localhost:{}/talk.wav", site.addr.port()),
        "http://169.254.169.254/latest/meta-data/".to_string(),
        "http://[::1]/x".to_string(),
        "http://[::ffff:127.0.0.1]/x".to_string(),
        "http://10.0.0.1/x".to_string(),
        "http://0.0.0.0/x".to_string(),
    ] {
        let started = Instant::now();
        let error = fetch(&store, "m", &url, &strict).unwrap_err();
        assert!(
            matches!(error, StorageError::UrlRefused { .. }),
            "{url}: {error}"
        );
        assert_eq!(error.code().http_status(), 422);
        assert!(
            started.elapsed() < Duration::from_secs(2),
            "{url} was dialled"
        );
    }
    let metadata = fetch(&store, "m", "http://169.254.169.254/", &strict).unwrap_err();
    assert!(metadata.to_string().contains("metadata"), "{metadata}");
    for url in [
        "file:///etc/passwd",
        "ftp://example.org/a.wav",
        "gopher://x/",
    ] {
        let error = fetch(&store, "m", url, &strict).unwrap_err();
        assert!(error.to_string().contains("http and https only"), "{error}");
    }
    let creds = fetch(&store, "m", "http://user:pw@example.org/a.wav", &strict).unwrap_err();
    assert!(creds.to_string().contains("credentials"), "{creds}");

    let fetched = fetch(
        &store,
        "jobs/x/media",
        &site.url("/talk.wav"),
        &trusting("127.0.0.1"),
    )
    .unwrap();
    assert_eq!(
        (fetched.size, fetched.container),
        (wav(1).len() as u64, Some("wav"))
    );
}

#[test]
fn every_redirect_hop_is_checked_again() {
    // 127.0.0.2 is loopback too; only 127.0.0.1 is trusted, so the hop to it is refused.
    let inner = Site::start("127.0.0.2", None);
    let outer = Site::start("127.0.0.1", Some(inner.url("/talk.wav")));
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let error = fetch(&store, "m", &outer.url("/hop"), &trusting("127.0.0.1")).unwrap_err();
    assert!(matches!(error, StorageError::UrlRefused { .. }), "{error}");
    assert!(error.to_string().contains("127.0.0.2"), "{error}");

    let mut both = trusting("127.0.0.1");
    both.allowed_addresses.push("127.0.0.2".parse().unwrap());
    let fetched = fetch(&store, "m", &outer.url("/hop"), &both).unwrap();
    assert_eq!(fetched.container, Some("wav"));
}

#[test]
fn size_time_status_and_content_are_enforced_on_downloads() {
    let site = Site::start("127.0.0.1", None);
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let policy = trusting("127.0.0.1");

    let big = fetch(&store, "big", &site.url("/big.wav"), &policy).unwrap_err();
    assert_eq!(big.code(), ErrorCode::InputTooLarge, "{big}");
    let page = fetch(&store, "page", &site.url("/page.html"), &policy).unwrap_err();
    assert_eq!(page.code(), ErrorCode::UnsupportedMedia, "{page}");
    let missing = fetch(&store, "missing", &site.url("/missing"), &policy).unwrap_err();
    assert!(missing.to_string().contains("HTTP 404"), "{missing}");

    let mut impatient = policy.clone();
    impatient.timeout = Duration::from_millis(400);
    let started = Instant::now();
    let slow = fetch(&store, "slow", &site.url("/slow.wav"), &impatient).unwrap_err();
    assert!(slow.to_string().contains("no answer within"), "{slow}");
    assert!(started.elapsed() < Duration::from_millis(1400));
    assert!(
        files_under(dir.path()).is_empty(),
        "{:?}",
        files_under(dir.path())
    );
}

#[test]
fn partial_files_a_killed_writer_left_are_swept_once_old_enough() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    store
        .put("jobs/a/result.vtt", &mut &b"WEBVTT\n"[..], 1024)
        .unwrap();
    // What a writer killed between create and rename leaves: a hidden part file.
    let partial = dir.path().join("jobs/a/.result.srt.part-00000000deadbeef");
    std::fs::write(&partial, b"1\n00:00").unwrap();
    assert_eq!(store.sweep_partials(Duration::from_secs(3600)).unwrap(), 0);
    assert!(partial.exists(), "a young part file may be a live upload");
    assert_eq!(store.sweep_partials(Duration::ZERO).unwrap(), 1);
    assert!(!partial.exists());
    assert!(store.exists("jobs/a/result.vtt"), "finished files stay");
}
