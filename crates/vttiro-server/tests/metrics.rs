//! `/metrics` over HTTP: the Prometheus text format with HELP and TYPE for every family,
//! names in the `vttiro_<noun>_<unit>[_total]` scheme, labels from route templates (not
//! raw paths), and counters that move when requests are answered and jobs run.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::json;
use vttiro_core::ErrorCode;
use vttiro_server::*;

mod common;
use common::*;

/// Reports stage timings and audio length the way the pipeline runner does; `prompt:
/// "fail"` fails on its input.
struct TimedRunner;

impl JobRunner for TimedRunner {
    fn run(
        &self,
        request: &RunRequest<'_>,
        _context: &mut dyn RunContext,
    ) -> Result<RunOutput, RunFailure> {
        if request.spec["prompt"] == "fail" {
            return Err(RunFailure {
                code: ErrorCode::CorruptMedia,
                message: "the media is damaged".into(),
            });
        }
        Ok(RunOutput {
            files: request
                .formats
                .iter()
                .map(|f| (f.clone(), b"x".to_vec()))
                .collect(),
            summary: json!({
                "engine": "ct2",
                "timings": { "decode_ms": 40, "vad_ms": 10, "transcribe_ms": 450, "total_ms": 500 },
                "audio_ms": 2000,
                "model_load_ms": 1500,
            }),
        })
    }
}

/// Each sample line as `name{labels}` → value.
fn samples(text: &str) -> BTreeMap<String, f64> {
    text.lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
        .map(|l| {
            let (key, value) = l.rsplit_once(' ').unwrap();
            (key.to_string(), value.parse().unwrap())
        })
        .collect()
}

fn scrape(service: &Service) -> (Reply, BTreeMap<String, f64>) {
    let reply = get(&service.url("/metrics"));
    let parsed = samples(&reply.text());
    (reply, parsed)
}

fn wait_state(service: &Service, id: &str, state: &str) {
    let started = Instant::now();
    while get(&service.url(&format!("/v1/jobs/{id}"))).json()["state"] != state {
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "{id} never {state}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn metrics_follow_the_naming_scheme_and_move_with_requests_and_jobs() {
    let service = Service::start(ServerConfig::default(), 2, Arc::new(TimedRunner), None);
    let (reply, before) = scrape(&service);
    assert_eq!(reply.status, 200);
    assert_eq!(reply.media_type(), Some("text/plain"));
    let text = reply.text();

    // Every family is announced with HELP and TYPE, named by the scheme.
    let mut types = BTreeMap::new();
    for line in text.lines().filter(|l| l.starts_with("# TYPE ")) {
        let mut parts = line.split_whitespace().skip(2);
        let (name, kind) = (parts.next().unwrap(), parts.next().unwrap());
        assert!(
            text.contains(&format!("# HELP {name} ")),
            "{name} has no HELP"
        );
        assert!(name.starts_with("vttiro_"), "{name}");
        match kind {
            "counter" => assert!(name.ends_with("_total"), "{name}"),
            "histogram" | "gauge" => assert!(!name.ends_with("_total"), "{name}"),
            other => panic!("{name}: unexpected type {other}"),
        }
        types.insert(name.to_string(), kind.to_string());
    }
    for (name, kind) in [
        ("vttiro_http_requests_total", "counter"),
        ("vttiro_http_request_duration_seconds", "histogram"),
        ("vttiro_queue_jobs", "gauge"),
        ("vttiro_queue_oldest_job_age_seconds", "gauge"),
        ("vttiro_jobs_finished_total", "counter"),
        ("vttiro_job_errors_total", "counter"),
        ("vttiro_job_stage_duration_seconds", "histogram"),
        ("vttiro_job_realtime_factor", "histogram"),
        ("vttiro_audio_processed_seconds_total", "counter"),
        ("vttiro_workers", "gauge"),
        ("vttiro_webhook_deliveries_total", "counter"),
        ("vttiro_model_load_seconds", "histogram"),
        ("vttiro_tls_certificate_expiry_timestamp_seconds", "gauge"),
    ] {
        assert_eq!(types.get(name).map(String::as_str), Some(kind), "{name}");
    }
    assert_eq!(before["vttiro_workers{state=\"idle\"}"], 2.0);
    assert_eq!(before["vttiro_queue_jobs{state=\"succeeded\"}"], 0.0);

    // A job that succeeds and one that fails on its input.
    let ok = upload_json(&service, json!({}));
    let bad = upload_json(&service, json!({ "prompt": "fail" }));
    wait_state(&service, &ok, "succeeded");
    wait_state(&service, &bad, "failed");
    // Two lookups of different jobs are one route, not two series.
    get(&service.url(&format!("/v1/jobs/{ok}")));
    get(&service.url(&format!("/v1/jobs/{bad}")));
    get(&service.url("/v1/nothing-here"));

    let (_, after) = scrape(&service);
    let at = |key: &str| after.get(key).copied().unwrap_or(0.0);
    assert_eq!(at("vttiro_jobs_finished_total{outcome=\"succeeded\"}"), 1.0);
    assert_eq!(at("vttiro_jobs_finished_total{outcome=\"failed\"}"), 1.0);
    assert_eq!(at("vttiro_job_errors_total{code=\"corrupt_media\"}"), 1.0);
    assert_eq!(at("vttiro_queue_jobs{state=\"succeeded\"}"), 1.0);
    assert_eq!(at("vttiro_queue_jobs{state=\"failed\"}"), 1.0);
    assert_eq!(at("vttiro_audio_processed_seconds_total"), 2.0);
    assert_eq!(
        at("vttiro_job_stage_duration_seconds_count{stage=\"transcribe\",engine=\"ct2\"}"),
        1.0
    );
    assert_eq!(
        at("vttiro_job_stage_duration_seconds_sum{stage=\"transcribe\",engine=\"ct2\"}"),
        0.45
    );
    assert_eq!(at("vttiro_model_load_seconds_sum{engine=\"ct2\"}"), 1.5);
    assert_eq!(at("vttiro_model_load_seconds_count{engine=\"ct2\"}"), 1.0);
    // 500 ms for 2 s of audio.
    assert_eq!(at("vttiro_job_realtime_factor_sum{engine=\"ct2\"}"), 0.25);
    assert_eq!(
        at("vttiro_job_realtime_factor_bucket{engine=\"ct2\",le=\"0.2\"}"),
        0.0
    );
    assert_eq!(
        at("vttiro_job_realtime_factor_bucket{engine=\"ct2\",le=\"0.3\"}"),
        1.0
    );
    assert_eq!(
        at("vttiro_http_requests_total{route=\"/v1/jobs\",method=\"POST\",status=\"202\"}"),
        2.0
    );
    assert!(
        at("vttiro_http_requests_total{route=\"/v1/jobs/{id}\",method=\"GET\",status=\"200\"}")
            >= 4.0
    );
    assert_eq!(
        at("vttiro_http_requests_total{route=\"unmatched\",method=\"GET\",status=\"404\"}"),
        1.0
    );
    assert!(
        !after.keys().any(|k| k.contains(&ok) || k.contains(&bad)),
        "job ids must never become labels"
    );
    // The histogram's buckets are cumulative and end at the count.
    let count =
        at("vttiro_http_request_duration_seconds_count{route=\"/v1/jobs\",method=\"POST\"}");
    assert_eq!(count, 2.0);
    assert_eq!(
        at("vttiro_http_request_duration_seconds_bucket{route=\"/v1/jobs\",method=\"POST\",le=\"+Inf\"}"),
        count
    );
    assert_eq!(after["vttiro_workers{state=\"busy\"}"], 0.0);
}

fn upload_json(service: &Service, options: serde_json::Value) -> String {
    let options = options.to_string();
    let (headers, body) = multipart(&[("options", options.as_str())], &wav(1));
    let reply = send("POST", &service.url("/v1/jobs"), &headers, body);
    assert_eq!(reply.status, 202, "{}", reply.text());
    reply.json()["id"].as_str().unwrap().to_string()
}
