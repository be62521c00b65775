//! Pulls from a local server that speaks the Hugging Face hub protocol.

mod support;

use std::fs;
use std::path::Path;
use std::time::Duration;

use support::fake_hub::{closed_endpoint, FakeFile, FakeHub, HubConfig};
use support::{sha256_hex, text_vocabulary, weights, ENGLISH_VOCAB};
use vttiro_core::{CancelToken, ErrorCode};
use vttiro_models::{DownloadProgress, HubClient, Manifest, ModelError, ModelStore, SourceChoice};

const REPO: &str = "Systran/faster-whisper-tiny.en";
const COMMIT: &str = "d90ca5fe260221311c53c58e660288d3deb8d356";
const MODEL_BIN_LEN: usize = 1_000_003;

fn repo_files() -> Vec<FakeFile> {
    vec![
        FakeFile::new("config.json", support::CONFIG_JSON.to_vec(), false),
        FakeFile::new("model.bin", weights(MODEL_BIN_LEN, 7), true),
        FakeFile::new("tokenizer.json", support::TOKENIZER_JSON.to_vec(), true),
        FakeFile::new("vocabulary.txt", text_vocabulary(ENGLISH_VOCAB), false),
        FakeFile::new(".gitattributes", b"*.bin filter=lfs\n".to_vec(), false),
    ]
}

fn hub_config() -> HubConfig {
    HubConfig {
        repo: REPO.into(),
        commit: COMMIT.into(),
        files: repo_files(),
        ..HubConfig::default()
    }
}

fn store_for(dir: &Path, hub: HubClient) -> ModelStore {
    ModelStore::open(dir).unwrap().with_hub(hub)
}

fn client(endpoint: String, attempts: u32) -> HubClient {
    HubClient::new(endpoint, None).with_retries(attempts, Duration::ZERO)
}

fn file_bytes(name: &str) -> Vec<u8> {
    repo_files()
        .into_iter()
        .find(|file| file.name == name)
        .unwrap()
        .bytes
}

fn assert_nothing_installed(dir: &Path) {
    assert!(
        !dir.join("tiny.en").exists(),
        "a failed pull installed tiny.en"
    );
    assert!(
        !dir.join(".staging-tiny.en").exists(),
        "a failed pull left its staging dir"
    );
}

#[derive(Default)]
struct ProgressLog(Vec<(String, u64, Option<u64>)>);

impl ProgressLog {
    fn record(&mut self) -> impl FnMut(DownloadProgress<'_>) + '_ {
        |event| {
            self.0
                .push((event.file.to_owned(), event.downloaded, event.total))
        }
    }

    fn of(&self, file: &str) -> Vec<(u64, Option<u64>)> {
        self.0
            .iter()
            .filter(|(name, _, _)| name == file)
            .map(|(_, downloaded, total)| (*downloaded, *total))
            .collect()
    }
}

#[test]
fn pull_installs_every_model_file_with_a_manifest_of_the_commit() {
    let hub = FakeHub::start(hub_config());
    let cache = tempfile::tempdir().unwrap();
    let store = store_for(cache.path(), client(hub.endpoint(), 3));

    let mut log = ProgressLog::default();
    let report = store
        .pull("tiny.en", SourceChoice::Auto, &mut log.record())
        .unwrap();

    assert!(!report.already_installed);
    assert!(report.skipped.is_empty());
    assert_eq!(
        report.source.as_deref(),
        Some("hf:Systran/faster-whisper-tiny.en@main")
    );
    let model = report.model;
    assert_eq!(model.path, cache.path().join("tiny.en"));
    assert!(model.english_only);
    assert_eq!(model.n_mels, 80);
    assert_eq!(model.revision.as_deref(), Some(COMMIT));

    let manifest = Manifest::read(&model.path).unwrap();
    let names: Vec<&str> = manifest.files.iter().map(|f| f.name.as_str()).collect();
    assert_eq!(
        names,
        [
            "config.json",
            "model.bin",
            "tokenizer.json",
            "vocabulary.txt"
        ]
    );
    for entry in &manifest.files {
        let expected = file_bytes(&entry.name);
        let on_disk = fs::read(model.path.join(&entry.name)).unwrap();
        assert_eq!(
            on_disk, expected,
            "{} differs from the served bytes",
            entry.name
        );
        assert_eq!(entry.size, expected.len() as u64);
        assert_eq!(entry.sha256, sha256_hex(&expected));
    }
    assert!(!model.path.join(".gitattributes").exists());
    assert_eq!(manifest.source, "hf:Systran/faster-whisper-tiny.en@main");
    assert_eq!(manifest.revision.as_deref(), Some(COMMIT));

    // Files are fetched at the listed commit, never at the moving branch name.
    let resolves = hub.requests_to("/resolve/");
    assert_eq!(resolves.len(), 4);
    assert!(resolves
        .iter()
        .all(|request| request.path.contains(&format!("/resolve/{COMMIT}/"))));

    let model_bin_progress = log.of("model.bin");
    assert_eq!(
        model_bin_progress.last(),
        Some(&(MODEL_BIN_LEN as u64, Some(MODEL_BIN_LEN as u64)))
    );
    assert!(model_bin_progress
        .windows(2)
        .all(|pair| pair[0].0 <= pair[1].0));

    store.verify("tiny.en").unwrap();
    assert!(!cache.path().join(".partial/tiny.en").exists());

    // Installed models are answered from disk; the server is gone.
    drop(hub);
    let again = store
        .pull("tiny.en", SourceChoice::Auto, &mut |_| {})
        .unwrap();
    assert!(again.already_installed);
    assert_eq!(again.model, model);
}

#[test]
fn a_dropped_connection_is_resumed_with_range_and_if_range() {
    let hub = FakeHub::start(HubConfig {
        cut_cdn_responses: 1,
        ..hub_config()
    });
    let cache = tempfile::tempdir().unwrap();
    let store = store_for(cache.path(), client(hub.endpoint(), 3));

    let mut log = ProgressLog::default();
    let model = store.pull_from_hub("tiny.en", &mut log.record()).unwrap();

    let half = MODEL_BIN_LEN / 2;
    let model_bin_sha = sha256_hex(&file_bytes("model.bin"));
    let cdn = hub.requests_to(&format!("/cdn/{model_bin_sha}"));
    assert_eq!(cdn.len(), 2, "one cut request and one resumed request");
    assert_eq!(cdn[0].header("range"), None);
    assert_eq!(
        cdn[1].header("range"),
        Some(format!("bytes={half}-").as_str())
    );
    assert_eq!(
        cdn[1].header("if-range"),
        Some(format!("\"cdn-{}\"", &model_bin_sha[..16]).as_str()),
        "If-Range must carry the CDN's own ETag"
    );
    // The second attempt starts from what the first one left on disk.
    assert!(log
        .of("model.bin")
        .contains(&(half as u64, Some(MODEL_BIN_LEN as u64))));
    assert_eq!(
        fs::read(model.path.join("model.bin")).unwrap(),
        file_bytes("model.bin")
    );
    store.verify("tiny.en").unwrap();
}

#[test]
fn an_interrupted_pull_installs_nothing_and_the_next_pull_resumes() {
    let hub = FakeHub::start(HubConfig {
        cut_cdn_responses: 1,
        ..hub_config()
    });
    let cache = tempfile::tempdir().unwrap();

    let impatient = store_for(cache.path(), client(hub.endpoint(), 1));
    let error = impatient.pull_from_hub("tiny.en", &mut |_| {}).unwrap_err();
    assert_eq!(error.code(), ErrorCode::ModelDownloadFailed);
    assert!(error.to_string().contains("model.bin"), "{error}");
    assert_nothing_installed(cache.path());
    let part = cache.path().join(".partial/tiny.en/model.bin.part");
    assert_eq!(
        fs::metadata(&part).unwrap().len(),
        (MODEL_BIN_LEN / 2) as u64
    );

    let patient = store_for(cache.path(), client(hub.endpoint(), 1));
    let model = patient.pull_from_hub("tiny.en", &mut |_| {}).unwrap();
    let model_bin_sha = sha256_hex(&file_bytes("model.bin"));
    let cdn = hub.requests_to(&format!("/cdn/{model_bin_sha}"));
    assert_eq!(
        cdn.last().unwrap().header("range"),
        Some(format!("bytes={}-", MODEL_BIN_LEN / 2).as_str())
    );
    assert_eq!(
        fs::read(model.path.join("model.bin")).unwrap(),
        file_bytes("model.bin")
    );
    assert!(!part.exists());
}

#[test]
fn corrupted_bytes_fail_the_checksum_and_install_nothing() {
    let hub = FakeHub::start(HubConfig {
        corrupt_cdn: true,
        ..hub_config()
    });
    let cache = tempfile::tempdir().unwrap();
    let store = store_for(cache.path(), client(hub.endpoint(), 3));

    let error = store.pull_from_hub("tiny.en", &mut |_| {}).unwrap_err();

    assert_eq!(error.code(), ErrorCode::ModelChecksumMismatch);
    assert!(
        matches!(&error, ModelError::ChecksumMismatch { subject, expected, .. }
            if subject.contains("model.bin") && *expected == sha256_hex(&file_bytes("model.bin"))),
        "{error}"
    );
    assert_nothing_installed(cache.path());
    // The bad bytes are not kept for a resume.
    assert!(!cache
        .path()
        .join(".partial/tiny.en/model.bin.part")
        .exists());
    assert!(store.list().unwrap().iter().all(|entry| !entry.installed));
}

#[test]
fn a_missing_repository_is_a_download_failure_naming_it() {
    let hub = FakeHub::start(HubConfig {
        repo: "Someone/else".into(),
        ..hub_config()
    });
    let cache = tempfile::tempdir().unwrap();
    let store = store_for(cache.path(), client(hub.endpoint(), 3));

    let error = store
        .pull("tiny.en", SourceChoice::HuggingFace, &mut |_| {})
        .unwrap_err();

    assert_eq!(error.code(), ErrorCode::ModelDownloadFailed);
    assert!(!error.is_hub_unreachable());
    let message = error.to_string();
    assert!(
        message.contains(REPO) && message.contains("404"),
        "{message}"
    );
    assert_nothing_installed(cache.path());
}

#[test]
fn redirect_chains_reach_a_separate_cdn_without_the_token() {
    let cdn = FakeHub::start(hub_config());
    let hub = FakeHub::start(HubConfig {
        cdn_base: Some(cdn.endpoint()),
        extra_hop: true,
        ..hub_config()
    });
    let cache = tempfile::tempdir().unwrap();
    let token_client =
        HubClient::new(hub.endpoint(), Some("hf_secret".into())).with_retries(3, Duration::ZERO);
    let store = store_for(cache.path(), token_client);

    let model = store.pull_from_hub("tiny.en", &mut |_| {}).unwrap();

    assert_eq!(
        fs::read(model.path.join("model.bin")).unwrap(),
        file_bytes("model.bin")
    );
    assert_eq!(
        hub.requests_to("/cdn-hop/").len(),
        2,
        "model.bin and tokenizer.json"
    );
    assert_eq!(cdn.requests_to("/cdn/").len(), 2);
    assert!(hub
        .requests()
        .iter()
        .all(|request| request.header("authorization") == Some("Bearer hf_secret")));
    assert!(cdn
        .requests()
        .iter()
        .all(|request| request.header("authorization").is_none()));
}

#[test]
fn an_unreachable_hub_is_reported_as_such_when_only_the_hub_is_allowed() {
    let cache = tempfile::tempdir().unwrap();
    let store = store_for(cache.path(), client(closed_endpoint(), 3));

    let error = store
        .pull("tiny.en", SourceChoice::HuggingFace, &mut |_| {})
        .unwrap_err();

    assert!(error.is_hub_unreachable(), "{error}");
    assert_eq!(error.code(), ErrorCode::ModelDownloadFailed);
    assert_nothing_installed(cache.path());
}

#[test]
fn a_part_completed_by_an_earlier_pull_is_accepted_on_416() {
    let hub = FakeHub::start(HubConfig {
        cut_cdn_responses: 1,
        cut_only_file: Some("tokenizer.json".into()),
        ..hub_config()
    });
    let cache = tempfile::tempdir().unwrap();
    let store = store_for(cache.path(), client(hub.endpoint(), 1));

    store.pull_from_hub("tiny.en", &mut |_| {}).unwrap_err();
    assert_nothing_installed(cache.path());
    let weights_part = cache.path().join(".partial/tiny.en/model.bin.part");
    assert_eq!(
        fs::metadata(&weights_part).unwrap().len(),
        MODEL_BIN_LEN as u64
    );

    let model = store.pull_from_hub("tiny.en", &mut |_| {}).unwrap();

    let model_bin_sha = sha256_hex(&file_bytes("model.bin"));
    let cdn = hub.requests_to(&format!("/cdn/{model_bin_sha}"));
    assert_eq!(cdn.len(), 2, "the finished part is not fetched again");
    assert_eq!(
        cdn[1].header("range"),
        Some(format!("bytes={MODEL_BIN_LEN}-").as_str())
    );
    assert_eq!(
        fs::read(model.path.join("model.bin")).unwrap(),
        file_bytes("model.bin")
    );
    store.verify("tiny.en").unwrap();
}

#[test]
fn new_upstream_content_restarts_the_part_instead_of_mixing_versions() {
    let old_hub = FakeHub::start(HubConfig {
        cut_cdn_responses: 1,
        ..hub_config()
    });
    let cache = tempfile::tempdir().unwrap();
    store_for(cache.path(), client(old_hub.endpoint(), 1))
        .pull_from_hub("tiny.en", &mut |_| {})
        .unwrap_err();
    let old_sha = sha256_hex(&file_bytes("model.bin"));

    let new_weights = weights(MODEL_BIN_LEN + 10, 99);
    let mut files = repo_files();
    files[1] = FakeFile::new("model.bin", new_weights.clone(), true);
    let new_hub = FakeHub::start(HubConfig {
        commit: "1111111111111111111111111111111111111111".into(),
        files,
        ..hub_config()
    });
    let model = store_for(cache.path(), client(new_hub.endpoint(), 2))
        .pull_from_hub("tiny.en", &mut |_| {})
        .unwrap();

    let new_cdn = new_hub.requests_to("/cdn/");
    let resumed = new_cdn
        .iter()
        .find(|request| request.header("range").is_some())
        .expect("the stale part is offered for resumption");
    assert_eq!(
        resumed.header("if-range"),
        Some(format!("\"cdn-{}\"", &old_sha[..16]).as_str()),
        "the old validator makes the new CDN answer with the whole new file"
    );
    assert_eq!(fs::read(model.path.join("model.bin")).unwrap(), new_weights);
    assert_eq!(
        model.revision.as_deref(),
        Some("1111111111111111111111111111111111111111")
    );
    store_for(cache.path(), client(new_hub.endpoint(), 1))
        .verify("tiny.en")
        .unwrap();
}

#[test]
fn a_cancelled_pull_keeps_its_part_and_the_next_pull_resumes_it() {
    let hub = FakeHub::start(hub_config());
    let cache = tempfile::tempdir().unwrap();
    let cancel = CancelToken::new();
    let cancelling = store_for(cache.path(), client(hub.endpoint(), 3)).with_cancel(cancel.clone());

    // Cancelled from the progress callback, as a host's Ctrl-C handler would, once the
    // first bytes of the large file are on disk.
    let error = cancelling
        .pull("tiny.en", SourceChoice::Auto, &mut |event| {
            if event.file == "model.bin" && event.downloaded > 0 {
                cancel.cancel();
            }
        })
        .unwrap_err();
    assert!(
        matches!(&error, ModelError::Cancelled { name } if name == "tiny.en"),
        "{error}"
    );
    assert_nothing_installed(cache.path());
    let part = cache.path().join(".partial/tiny.en/model.bin.part");
    let kept = fs::metadata(&part).unwrap().len();
    assert!(
        kept > 0 && kept < MODEL_BIN_LEN as u64,
        "the part holds {kept} of {MODEL_BIN_LEN} bytes"
    );
    let model_bin_sha = sha256_hex(&file_bytes("model.bin"));
    let cdn = format!("/cdn/{model_bin_sha}");
    assert_eq!(hub.requests_to(&cdn).len(), 1, "no retry after a cancel");
    // A set token stops the next pull before it sends anything.
    let sent = hub.requests().len();
    let error = cancelling
        .pull_from_hub("tiny.en", &mut |_| {})
        .unwrap_err();
    assert!(matches!(error, ModelError::Cancelled { .. }), "{error}");
    assert_eq!(hub.requests().len(), sent);

    let model = store_for(cache.path(), client(hub.endpoint(), 1))
        .pull_from_hub("tiny.en", &mut |_| {})
        .unwrap();
    assert_eq!(
        hub.requests_to(&cdn).last().unwrap().header("range"),
        Some(format!("bytes={kept}-").as_str())
    );
    assert_eq!(
        fs::read(model.path.join("model.bin")).unwrap(),
        file_bytes("model.bin")
    );
    assert!(!part.exists());
}
