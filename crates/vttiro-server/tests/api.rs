//! The service over HTTP on 127.0.0.1: every jobs endpoint, the error envelope, request
//! ids, backpressure, SSE in order, cancel and delete (files gone from storage). Jobs run
//! on the real worker pool with a runner that reads the uploaded media and writes each
//! format from it; the pipeline runner is tested through `vttiro serve` in vttiro-cli.

use std::io::Read;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use vttiro_core::ErrorCode;
use vttiro_jobs::{QueuePolicy, SqliteQueue, SystemClock};
use vttiro_server::*;
use vttiro_storage::{FetchPolicy, LocalStore};

/// Writes each format as "<format> <bytes> <sha-less size>", after reporting three stages;
/// `prompt: "slow"` makes it take a second (checking for cancel), `prompt: "fail"` fails
/// permanently.
struct EchoRunner;

impl JobRunner for EchoRunner {
    fn run(
        &self,
        request: &RunRequest<'_>,
        context: &mut dyn RunContext,
    ) -> Result<RunOutput, RunFailure> {
        let size = std::fs::metadata(&request.media)
            .map(|m| m.len())
            .unwrap_or(0);
        let prompt = request.spec["prompt"].as_str().unwrap_or_default();
        if prompt == "fail" {
            return Err(RunFailure {
                code: ErrorCode::CorruptMedia,
                message: "the media is damaged".into(),
            });
        }
        for (i, stage) in ["decode", "transcribe", "layout"].iter().enumerate() {
            context.progress(stage, i as f32 / 3.0);
            if prompt == "slow" {
                for _ in 0..10 {
                    std::thread::sleep(Duration::from_millis(100));
                    if context.cancelled() {
                        return Err(RunFailure {
                            code: ErrorCode::Internal,
                            message: "cancelled".into(),
                        });
                    }
                }
            }
        }
        let outputs = request
            .formats
            .iter()
            .map(|f| (f.clone(), format!("{f} of {size} bytes").into_bytes()))
            .collect();
        Ok(RunOutput {
            files: outputs,
            summary: json!({ "media_bytes": size }),
        })
    }
}

struct Service {
    addr: SocketAddr,
    store_dir: std::path::PathBuf,
    _dir: tempfile::TempDir,
    runtime: Option<tokio::runtime::Runtime>,
    workers: Option<Workers>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
}

impl Service {
    fn start(config: ServerConfig, workers: usize) -> Service {
        let dir = tempfile::tempdir().unwrap();
        let policy = QueuePolicy {
            lease_ms: 2_000,
            backoff_base_ms: 100,
            ..QueuePolicy::default()
        };
        let queue: Arc<dyn vttiro_jobs::JobQueue> = Arc::new(
            SqliteQueue::open(&dir.path().join("jobs.db"), Arc::new(SystemClock), policy).unwrap(),
        );
        let store_dir = dir.path().join("store");
        let store = LocalStore::open(&store_dir).unwrap();
        let workers = (workers > 0).then(|| {
            spawn_workers(
                workers,
                "test-worker",
                queue.clone(),
                store.clone(),
                Arc::new(EchoRunner),
                FetchPolicy::default(),
                Duration::from_millis(200),
            )
        });
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        let listener = runtime
            .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
            .unwrap();
        let addr = listener.local_addr().unwrap();
        let app = router(Arc::new(AppState {
            queue,
            store,
            config,
        }));
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        runtime.spawn(async move {
            axum::serve(listener, app)
                .with_graceful_shutdown(async {
                    let _ = stopped.await;
                })
                .await
                .unwrap();
        });
        Service {
            addr,
            store_dir,
            _dir: dir,
            runtime: Some(runtime),
            workers,
            stop: Some(stop),
        }
    }

    fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }
}

impl Drop for Service {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(workers) = self.workers.take() {
            workers.shutdown();
        }
        if let Some(runtime) = self.runtime.take() {
            runtime.shutdown_timeout(Duration::from_secs(2));
        }
    }
}

fn agent() -> ureq::Agent {
    ureq::Agent::config_builder()
        .http_status_as_error(false)
        .build()
        .into()
}

struct Reply {
    status: u16,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Reply {
    fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or(Value::Null)
    }
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

fn send(request: ureq::http::Request<Vec<u8>>) -> Reply {
    let mut response = agent().run(request).unwrap();
    let status = response.status().as_u16();
    let headers = response
        .headers()
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_str().unwrap_or("").to_string()))
        .collect();
    let body = response.body_mut().read_to_vec().unwrap_or_default();
    Reply {
        status,
        headers,
        body,
    }
}

fn get(url: &str) -> Reply {
    send(ureq::http::Request::get(url).body(Vec::new()).unwrap())
}

fn method(verb: &str, url: &str) -> Reply {
    send(
        ureq::http::Request::builder()
            .method(verb)
            .uri(url)
            .body(Vec::new())
            .unwrap(),
    )
}

/// `seconds` of silence as 16 kHz 16-bit WAV.
fn wav(seconds: usize) -> Vec<u8> {
    vttiro_media::encode_wav(&vec![0.0; seconds * 16_000])
}

/// A multipart upload of `file` with `options` (JSON) and extra text fields.
fn upload(url: &str, file: &[u8], options: Value, headers: &[(&str, &str)]) -> Reply {
    let boundary = "vttiro-test-boundary-7f3a";
    let mut body = Vec::new();
    body.extend_from_slice(
        format!(
            "--{boundary}\r\nContent-Disposition: form-data; name=\"options\"\r\n\r\n{options}\r\n"
        )
        .as_bytes(),
    );
    body.extend_from_slice(
        format!("--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"talk.wav\"\r\nContent-Type: audio/wav\r\n\r\n")
            .as_bytes(),
    );
    body.extend_from_slice(file);
    body.extend_from_slice(format!("\r\n--{boundary}--\r\n").as_bytes());
    let mut builder = ureq::http::Request::post(url).header(
        "content-type",
        format!("multipart/form-data; boundary={boundary}"),
    );
    for (k, v) in headers {
        builder = builder.header(*k, *v);
    }
    send(builder.body(body).unwrap())
}

fn wait_for(service: &Service, id: &str, state: &str) -> Value {
    let started = Instant::now();
    loop {
        let job = get(&service.url(&format!("/v1/jobs/{id}"))).json();
        if job["state"] == state {
            return job;
        }
        assert!(
            started.elapsed() < Duration::from_secs(15),
            "job {id} never reached {state}: {job}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn files_under(dir: &Path) -> Vec<String> {
    let mut out = Vec::new();
    if let Ok(entries) = std::fs::read_dir(dir) {
        for entry in entries.flatten() {
            if entry.path().is_dir() {
                out.extend(files_under(&entry.path()));
            } else {
                out.push(entry.path().display().to_string());
            }
        }
    }
    out
}

#[test]
fn an_upload_runs_to_results_with_events_in_order_and_delete_erases_it() {
    let service = Service::start(ServerConfig::default(), 1);
    assert_eq!(get(&service.url("/healthz")).status, 200);
    let ready = get(&service.url("/readyz"));
    assert_eq!(
        ready.status,
        200,
        "{}",
        String::from_utf8_lossy(&ready.body)
    );

    let audio = wav(1);
    let created = upload(
        &service.url("/v1/jobs"),
        &audio,
        json!({ "formats": ["vtt", "srt"], "language": "en" }),
        &[("x-request-id", "client-chosen-id-1")],
    );
    assert_eq!(
        created.status,
        202,
        "{}",
        String::from_utf8_lossy(&created.body)
    );
    assert_eq!(created.header("x-request-id"), Some("client-chosen-id-1"));
    let job = created.json();
    let id = job["id"].as_str().unwrap().to_string();
    assert_eq!(
        created.header("location"),
        Some(format!("/v1/jobs/{id}").as_str())
    );
    assert_eq!(job["options"]["formats"], json!(["vtt", "srt"]));

    let done = wait_for(&service, &id, "succeeded");
    assert_eq!(done["result"]["formats"], json!(["vtt", "srt"]));
    assert_eq!(done["result"]["summary"]["media_bytes"], audio.len());
    let vtt = get(&service.url(&format!("/v1/jobs/{id}/result?format=vtt")));
    assert_eq!(vtt.status, 200);
    assert_eq!(vtt.header("content-type"), Some("text/vtt; charset=utf-8"));
    assert_eq!(
        vtt.body,
        format!("vtt of {} bytes", audio.len()).into_bytes()
    );
    let missing = get(&service.url(&format!("/v1/jobs/{id}/result?format=txt")));
    assert_eq!(missing.status, 404);

    // The event stream replays the history in order and ends at the final event.
    let events = get(&service.url(&format!("/v1/jobs/{id}/events")));
    assert_eq!(events.header("content-type"), Some("text/event-stream"));
    let text = String::from_utf8_lossy(&events.body).into_owned();
    let kinds: Vec<&str> = text
        .lines()
        .filter_map(|l| l.strip_prefix("event: "))
        .collect();
    assert_eq!(kinds.first(), Some(&"queued"));
    assert_eq!(kinds.get(1), Some(&"running"));
    assert_eq!(kinds.last(), Some(&"succeeded"));
    let ids: Vec<u64> = text
        .lines()
        .filter_map(|l| l.strip_prefix("id: "))
        .map(|n| n.parse().unwrap())
        .collect();
    assert!(ids.windows(2).all(|w| w[1] == w[0] + 1), "{ids:?}");
    // Resuming after the second event skips what was seen.
    let resumed = send(
        ureq::http::Request::get(service.url(&format!("/v1/jobs/{id}/events")))
            .header("last-event-id", "2")
            .body(Vec::new())
            .unwrap(),
    );
    let resumed_ids: Vec<&str> = std::str::from_utf8(&resumed.body)
        .unwrap()
        .lines()
        .filter_map(|l| l.strip_prefix("id: "))
        .collect();
    assert_eq!(resumed_ids.first(), Some(&"3"));

    let listed = get(&service.url("/v1/jobs?state=succeeded")).json();
    assert_eq!(listed["jobs"][0]["id"], id.as_str());

    assert!(!files_under(&service.store_dir).is_empty());
    let deleted = method("DELETE", &service.url(&format!("/v1/jobs/{id}")));
    assert_eq!(deleted.status, 204);
    assert!(
        files_under(&service.store_dir).is_empty(),
        "{:?}",
        files_under(&service.store_dir)
    );
    let gone = get(&service.url(&format!("/v1/jobs/{id}")));
    assert_eq!(gone.status, 404);
    let envelope = gone.json();
    assert_eq!(envelope["error"]["code"], "job_not_found");
    assert_eq!(
        envelope["error"]["request_id"].as_str(),
        gone.header("x-request-id")
    );
}

#[test]
fn every_refusal_has_its_status_and_the_error_envelope() {
    let config = ServerConfig {
        max_upload_bytes: 50_000,
        max_queued: 2,
    };
    let service = Service::start(config, 0);
    let url = service.url("/v1/jobs");
    let cases: Vec<(Reply, u16, &str)> = vec![
        (
            upload(&url, &wav(3), json!({}), &[]),
            413,
            "input_too_large",
        ),
        (
            upload(&url, &b"<html>not media</html>".repeat(10), json!({}), &[]),
            415,
            "unsupported_media",
        ),
        (
            upload(&url, &wav(1), json!({ "formats": ["docx"] }), &[]),
            400,
            "invalid_argument",
        ),
        (
            upload(&url, &wav(1), json!({ "colour": "red" }), &[]),
            400,
            "invalid_argument",
        ),
        (
            send(
                ureq::http::Request::post(&url)
                    .header("content-type", "application/json")
                    .body(br#"{"url": "ftp://example.org/a.wav"}"#.to_vec())
                    .unwrap(),
            ),
            422,
            "media_url_failed",
        ),
        (
            send(
                ureq::http::Request::post(&url)
                    .header("content-type", "text/plain")
                    .body(b"hello".to_vec())
                    .unwrap(),
            ),
            400,
            "invalid_argument",
        ),
        (get(&service.url("/v1/jobs/job_nope")), 404, "job_not_found"),
        (
            get(&service.url("/v1/jobs?state=sleeping")),
            400,
            "invalid_argument",
        ),
        (get(&service.url("/v1/nothing")), 404, "job_not_found"),
        (
            method("PUT", &service.url("/v1/jobs")),
            405,
            "invalid_argument",
        ),
    ];
    for (reply, status, code) in &cases {
        let body = reply.json();
        assert_eq!(reply.status, *status, "{body}");
        assert_eq!(body["error"]["code"], *code, "{body}");
        assert!(body["error"]["message"]
            .as_str()
            .is_some_and(|m| !m.is_empty()));
        assert!(body["error"]["request_id"]
            .as_str()
            .is_some_and(|r| r.starts_with("req_")));
    }
    // No refused upload left anything in storage.
    assert!(files_under(&service.store_dir)
        .iter()
        .all(|f| !f.contains("uploads")));

    // Idempotent resubmission, then a conflicting reuse of the key.
    let first = upload(&url, &wav(1), json!({}), &[("idempotency-key", "abc")]);
    assert_eq!(first.status, 202);
    let again = upload(&url, &wav(1), json!({}), &[("idempotency-key", "abc")]);
    assert_eq!(again.status, 200);
    assert_eq!(again.json()["id"], first.json()["id"]);
    let conflict = upload(
        &url,
        &wav(1),
        json!({ "language": "de" }),
        &[("idempotency-key", "abc")],
    );
    assert_eq!(conflict.status, 409);
    assert_eq!(conflict.json()["error"]["code"], "conflict");
    let uploads = files_under(&service.store_dir.join("uploads"));
    assert_eq!(
        uploads.len(),
        1,
        "only the first upload is kept: {uploads:?}"
    );

    // Results of an unfinished job are a conflict.
    let id = first.json()["id"].as_str().unwrap().to_string();
    let early = get(&service.url(&format!("/v1/jobs/{id}/result")));
    assert_eq!(early.status, 409);

    // Backpressure: two queued jobs fill this queue.
    assert_eq!(upload(&url, &wav(1), json!({}), &[]).status, 202);
    let full = upload(&url, &wav(1), json!({}), &[]);
    assert_eq!(full.status, 429);
    assert_eq!(full.header("retry-after"), Some("5"));
    assert_eq!(full.json()["error"]["code"], "queue_full");

    // Cancelling a queued job is immediate; cancelling it again conflicts.
    let cancelled = method("POST", &service.url(&format!("/v1/jobs/{id}/cancel")));
    assert_eq!(
        (cancelled.status, cancelled.json()["state"].clone()),
        (200, json!("cancelled"))
    );
    assert_eq!(
        method("POST", &service.url(&format!("/v1/jobs/{id}/cancel"))).status,
        409
    );
}

#[test]
fn running_jobs_cancel_at_the_next_heartbeat_and_failures_are_recorded() {
    let service = Service::start(ServerConfig::default(), 1);
    let url = service.url("/v1/jobs");
    let slow = upload(&url, &wav(1), json!({ "prompt": "slow" }), &[]).json();
    let id = slow["id"].as_str().unwrap();
    wait_for(&service, id, "running");
    let asked = method("POST", &service.url(&format!("/v1/jobs/{id}/cancel")));
    assert_eq!(asked.status, 202);
    assert_eq!(asked.json()["cancel_requested"], true);
    wait_for(&service, id, "cancelled");

    let failing = upload(&url, &wav(1), json!({ "prompt": "fail" }), &[]).json();
    let id = failing["id"].as_str().unwrap();
    let failed = wait_for(&service, id, "failed");
    assert_eq!(failed["error"]["code"], "corrupt_media");
    assert_eq!(failed["attempts"], 1, "corrupt media is not retried");

    let mut buffer = String::new();
    let mut events = agent()
        .get(&service.url(&format!("/v1/jobs/{id}/events")))
        .call()
        .unwrap();
    events
        .body_mut()
        .as_reader()
        .read_to_string(&mut buffer)
        .unwrap();
    assert!(buffer.contains("event: failed"), "{buffer}");
}
