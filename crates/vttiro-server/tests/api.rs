//! The service over HTTP on 127.0.0.1: every jobs endpoint, the error envelope, request
//! ids, backpressure, SSE in order, cancel and delete (files gone from storage). Jobs run
//! on the real worker pool with a runner that reads the uploaded media and writes each
//! format from it; the pipeline runner is tested through `vttiro serve` in vttiro-cli.

use std::io::Read;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use vttiro_core::ErrorCode;
use vttiro_jobs::WebhookState;
use vttiro_server::*;

mod common;
use common::*;
use vttiro_storage::FetchPolicy;

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

fn start(config: ServerConfig, workers: usize) -> Service {
    Service::start(config, workers, Arc::new(EchoRunner), None)
}

/// A multipart upload of `file` with `options` (JSON) and extra headers.
fn upload(url: &str, file: &[u8], options: Value, headers: &[(&str, &str)]) -> Reply {
    let options = options.to_string();
    let (mut all, body) = multipart(&[("options", options.as_str())], file);
    all.extend(headers.iter().map(|(k, v)| (*k, v.to_string())));
    send("POST", url, &all, body)
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
    let service = start(ServerConfig::default(), 1);
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
        "GET",
        &service.url(&format!("/v1/jobs/{id}/events")),
        &[("last-event-id", "2".into())],
        Vec::new(),
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
        ..ServerConfig::default()
    };
    let service = start(config, 0);
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
                "POST",
                &url,
                &[("content-type", "application/json".into())],
                br#"{"url": "ftp://example.org/a.wav"}"#.to_vec(),
            ),
            422,
            "media_url_failed",
        ),
        (
            send(
                "POST",
                &url,
                &[("content-type", "text/plain".into())],
                b"hello".to_vec(),
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
    let service = start(ServerConfig::default(), 1);
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

    let buffer = get(&service.url(&format!("/v1/jobs/{id}/events"))).text();
    assert!(buffer.contains("event: failed"), "{buffer}");
}

/// One request a webhook receiver got.
struct Received {
    path: String,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Received {
    fn header(&self, name: &str) -> &str {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
            .unwrap_or_else(|| panic!("no {name} header"))
    }
}

/// A webhook receiver on 127.0.0.1 answering `status_for(path, nth request on that path)`;
/// it stops after `limit` requests or 20 s, and hands back what it received.
fn receiver(
    limit: usize,
    status_for: impl Fn(&str, usize) -> u16 + Send + 'static,
) -> (u16, std::thread::JoinHandle<Vec<Received>>) {
    use std::io::{BufRead, BufReader, Write};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    listener.set_nonblocking(true).unwrap();
    let handle = std::thread::spawn(move || {
        let deadline = Instant::now() + Duration::from_secs(20);
        let mut received: Vec<Received> = Vec::new();
        while received.len() < limit && Instant::now() < deadline {
            let (stream, _) = match listener.accept() {
                Ok(pair) => pair,
                Err(_) => {
                    std::thread::sleep(Duration::from_millis(20));
                    continue;
                }
            };
            stream.set_nonblocking(false).unwrap();
            stream
                .set_read_timeout(Some(Duration::from_secs(5)))
                .unwrap();
            let mut reader = BufReader::new(stream.try_clone().unwrap());
            let mut request_line = String::new();
            reader.read_line(&mut request_line).unwrap();
            let path = request_line
                .split_whitespace()
                .nth(1)
                .unwrap_or_default()
                .to_string();
            let mut headers = Vec::new();
            loop {
                let mut line = String::new();
                reader.read_line(&mut line).unwrap();
                let line = line.trim_end();
                if line.is_empty() {
                    break;
                }
                if let Some((k, v)) = line.split_once(':') {
                    headers.push((k.trim().to_string(), v.trim().to_string()));
                }
            }
            let length: usize = headers
                .iter()
                .find(|(k, _)| k.eq_ignore_ascii_case("content-length"))
                .and_then(|(_, v)| v.parse().ok())
                .unwrap_or(0);
            let mut body = vec![0; length];
            reader.read_exact(&mut body).unwrap();
            let nth = received.iter().filter(|r| r.path == path).count();
            let status = status_for(&path, nth);
            let mut stream = stream;
            write!(
                stream,
                "HTTP/1.1 {status} X\r\ncontent-length: 0\r\nconnection: close\r\n\r\n"
            )
            .unwrap();
            received.push(Received {
                path,
                headers,
                body,
            });
        }
        received
    });
    (port, handle)
}

/// Standard Webhooks verification, written from the scheme's description.
fn verify(secret: &WebhookSecret, received: &Received) -> bool {
    use base64::Engine as _;
    use hmac::{KeyInit, Mac};
    let key = base64::engine::general_purpose::STANDARD
        .decode(secret.expose().trim_start_matches("whsec_"))
        .unwrap();
    let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(&key).unwrap();
    mac.update(
        format!(
            "{}.{}.",
            received.header("webhook-id"),
            received.header("webhook-timestamp")
        )
        .as_bytes(),
    );
    mac.update(&received.body);
    let expected = base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes());
    received
        .header("webhook-signature")
        .split(' ')
        .any(|s| s == format!("v1,{expected}"))
}

#[test]
fn webhooks_are_signed_retried_with_the_same_id_and_abandoned_when_refused() {
    // /flaky fails its first delivery; /broken always fails.
    let (port, received) = receiver(5, |path, nth| match (path, nth) {
        ("/flaky", 0) => 503,
        ("/broken", _) => 500,
        _ => 204,
    });
    let secret = WebhookSecret::generate();
    let mut config = WebhookConfig::new(
        secret.clone(),
        FetchPolicy {
            allowed_addresses: vec!["127.0.0.1".parse().unwrap()],
            ..FetchPolicy::default()
        },
    );
    config.backoff_base = Duration::from_millis(100);
    config.poll = Duration::from_millis(50);
    config.max_attempts = 2;
    let service = Service::start(
        ServerConfig::default(),
        1,
        Arc::new(EchoRunner),
        Some(config),
    );
    let hook = |path: &str| format!("http://127.0.0.1:{port}{path}");
    let submit = |options: Value| {
        let reply = upload(&service.url("/v1/jobs"), &wav(1), options, &[]);
        assert_eq!(
            reply.status,
            202,
            "{}",
            String::from_utf8_lossy(&reply.body)
        );
        reply.json()["id"].as_str().unwrap().to_string()
    };
    let succeeded = submit(json!({ "webhook_url": hook("/flaky") }));
    let failed = submit(json!({ "webhook_url": hook("/ok"), "prompt": "fail" }));
    let broken = submit(json!({ "webhook_url": hook("/broken") }));
    // A private address the policy does not allow: refused without a request.
    let private = submit(json!({ "webhook_url": "http://10.255.255.1/hook" }));
    // Bad webhook URLs are refused at submission.
    let bad = upload(
        &service.url("/v1/jobs"),
        &wav(1),
        json!({ "webhook_url": "ftp://example.com/x" }),
        &[],
    );
    assert_eq!(
        (bad.status, bad.json()["error"]["code"].clone()),
        (400, json!("invalid_argument"))
    );

    let received = received.join().unwrap();
    assert_eq!(received.len(), 5, "flaky twice, ok once, broken twice");
    for request in &received {
        assert!(
            verify(&secret, request),
            "bad signature on {}",
            request.path
        );
        let age = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs() as i64
            - request.header("webhook-timestamp").parse::<i64>().unwrap();
        assert!((0..60).contains(&age), "timestamp {age} s old");
        assert_eq!(request.header("content-type"), "application/json");
    }
    // A changed body no longer verifies.
    let mut tampered = Received {
        path: received[0].path.clone(),
        headers: received[0].headers.clone(),
        body: received[0].body.clone(),
    };
    tampered.body[0] ^= 1;
    assert!(!verify(&secret, &tampered));

    let on =
        |path: &str| -> Vec<&Received> { received.iter().filter(|r| r.path == path).collect() };
    let flaky = on("/flaky");
    assert_eq!(flaky.len(), 2);
    assert_eq!(
        flaky[0].header("webhook-id"),
        flaky[1].header("webhook-id"),
        "a retry is the same message"
    );
    let body: Value = serde_json::from_slice(&flaky[1].body).unwrap();
    assert_eq!(body["type"], "job.succeeded");
    assert_eq!(body["data"]["id"], json!(succeeded));
    assert_eq!(body["data"]["result"]["formats"], json!(["vtt", "json"]));
    let ok: Value = serde_json::from_slice(&on("/ok")[0].body).unwrap();
    assert_eq!(ok["type"], "job.failed");
    assert_eq!(ok["data"]["id"], json!(failed));
    assert_eq!(ok["data"]["error"]["code"], "corrupt_media");

    let wait_state = |id: &str, want: WebhookState| {
        let started = Instant::now();
        loop {
            let deliveries = service.queue.webhooks(id).unwrap();
            if deliveries.len() == 1 && deliveries[0].state == want {
                return deliveries[0].clone();
            }
            assert!(
                started.elapsed() < Duration::from_secs(10),
                "{id}: {deliveries:?}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    };
    assert_eq!(wait_state(&succeeded, WebhookState::Delivered).attempts, 2);
    wait_state(&failed, WebhookState::Delivered);
    let gave_up = wait_state(&broken, WebhookState::Abandoned);
    assert_eq!(gave_up.attempts, 2);
    assert_eq!(
        gave_up.last_error.as_deref(),
        Some("HTTP 500 (after 2 attempts)")
    );
    let refused = wait_state(&private, WebhookState::Abandoned);
    assert_eq!(refused.attempts, 1);
    assert!(
        refused
            .last_error
            .as_deref()
            .unwrap()
            .contains("10.255.255.1"),
        "{refused:?}"
    );
}

#[test]
fn multipart_option_fields_are_typed_like_their_json_forms() {
    let service = start(ServerConfig::default(), 0);
    let url = service.url("/v1/jobs");
    let (headers, body) = multipart(
        &[
            ("speakers", "2"),
            ("diarize", "true"),
            ("formats", "vtt,rttm"),
        ],
        &wav(1),
    );
    let reply = send("POST", &url, &headers, body);
    assert_eq!(
        reply.status,
        202,
        "{}",
        String::from_utf8_lossy(&reply.body)
    );
    let options = &reply.json()["options"];
    assert_eq!(options["speakers"], json!(2));
    assert_eq!(options["diarize"], json!(true));
    assert_eq!(options["formats"], json!(["vtt", "rttm"]));
    let zero = upload(&url, &wav(1), json!({ "speakers": 0 }), &[]);
    assert_eq!(
        (zero.status, zero.json()["error"]["code"].clone()),
        (400, json!("invalid_argument"))
    );
}
