//! OpenTelemetry traces from the real `vttiro serve` / `vttiro worker` binaries, received
//! over OTLP/HTTP by a receiver in the test: a job submitted with a `traceparent` header
//! is one trace from the caller's span through the `request` span, the worker's `job` span
//! and a span per stage, in one process or across an API process and a worker process.

mod common;

use std::collections::HashMap;
use std::path::Path;
use std::time::Duration;

use common::service::{agent, start_with_env, Process};
use serde_json::{json, Value};
use vttiro_fixtures::otlp::{OtlpReceiver, ReceivedSpan};

const STAGES: [&str; 5] = ["decode", "vad", "asr", "layout", "store"];
/// OTLP's `SpanKind::Server`.
const SERVER: i32 = 2;

/// The exporter's settings, with any the developer's shell sets overridden.
fn otel_env<'a>(receiver: &'a OtlpReceiver, delay_ms: &'a str) -> Vec<(&'a str, &'a str)> {
    vec![
        ("OTEL_EXPORTER_OTLP_ENDPOINT", receiver.endpoint()),
        ("OTEL_EXPORTER_OTLP_PROTOCOL", "http/protobuf"),
        ("OTEL_BSP_SCHEDULE_DELAY", delay_ms),
        ("OTEL_SERVICE_NAME", ""),
        ("OTEL_RESOURCE_ATTRIBUTES", ""),
        ("OTEL_SDK_DISABLED", "false"),
        ("OTEL_TRACES_SAMPLER", "parentbased_always_on"),
    ]
}

fn traceparent(trace_id: &str, span_id: &str) -> String {
    format!("00-{trace_id}-{span_id}-01")
}

/// `POST {base}/v1/jobs` with the JFK sample, as a caller whose span is `traceparent`.
fn submit_traced(base: &str, traceparent: &str) -> (u16, Value) {
    let audio = std::fs::read(vttiro_fixtures::jfk_wav()).unwrap();
    let boundary = "vttiro-otlp-test";
    let options = json!({ "formats": ["vtt"] });
    let mut body = format!(
        "--{boundary}\r\nContent-Disposition: form-data; name=\"options\"\r\n\r\n{options}\r\n--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"audio.wav\"\r\nContent-Type: audio/wav\r\n\r\n"
    )
    .into_bytes();
    body.extend_from_slice(&audio);
    body.extend_from_slice(format!("\r\n--{boundary}--\r\n").as_bytes());
    let mut response = agent()
        .post(&format!("{base}/v1/jobs"))
        .header(
            "content-type",
            &format!("multipart/form-data; boundary={boundary}"),
        )
        .header("traceparent", traceparent)
        .send(&body[..])
        .unwrap();
    let status = response.status().as_u16();
    let text = response.body_mut().read_to_string().unwrap();
    (status, serde_json::from_str(&text).unwrap_or(Value::Null))
}

/// Polls the job, as the same caller, until it is final.
fn wait_final_traced(base: &str, id: &str, traceparent: &str) -> Value {
    let started = std::time::Instant::now();
    loop {
        let mut response = agent()
            .get(&format!("{base}/v1/jobs/{id}"))
            .header("traceparent", traceparent)
            .call()
            .unwrap();
        let job: Value =
            serde_json::from_str(&response.body_mut().read_to_string().unwrap()).unwrap();
        if matches!(
            job["state"].as_str(),
            Some("succeeded" | "failed" | "cancelled")
        ) {
            return job;
        }
        assert!(
            started.elapsed() < Duration::from_secs(180),
            "job {id} still {job}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn summary(spans: &[ReceivedSpan]) -> String {
    spans
        .iter()
        .map(|s| {
            format!(
                "{} trace={} span={} parent={:?} {}ns {:?}",
                s.name,
                s.trace_id,
                s.span_id,
                s.parent_span_id,
                s.duration_nanos(),
                s.attributes
            )
        })
        .collect::<Vec<_>>()
        .join("\n")
}

fn has_job_tree(spans: &[ReceivedSpan]) -> bool {
    let named = |name: &str| spans.iter().any(|s| s.name == name);
    named("job") && STAGES.iter().all(|s| named(s)) && submit_span(spans).is_some()
}

fn submit_span(spans: &[ReceivedSpan]) -> Option<&ReceivedSpan> {
    spans.iter().find(|s| {
        s.name == "request"
            && s.attribute("http.request.method") == Some("POST")
            && s.attribute("http.route") == Some("/v1/jobs")
    })
}

/// Checks the span tree of the one job: caller → `request` → `job` → each stage.
fn assert_job_tree(spans: &[ReceivedSpan], trace_id: &str, caller_span: &str) {
    let all = summary(spans);
    let request = submit_span(spans).unwrap_or_else(|| panic!("no submit span:\n{all}"));
    assert_eq!(request.trace_id, trace_id, "{all}");
    assert_eq!(
        request.parent_span_id.as_deref(),
        Some(caller_span),
        "the request span continues the caller's span:\n{all}"
    );
    assert_eq!(request.kind, SERVER, "{all}");
    assert_eq!(request.attribute("http.response.status_code"), Some("202"));
    assert!(request.attribute("request_id").is_some(), "{all}");

    let jobs: Vec<&ReceivedSpan> = spans.iter().filter(|s| s.name == "job").collect();
    assert_eq!(jobs.len(), 1, "{all}");
    let job = jobs[0];
    assert_eq!(job.trace_id, trace_id, "{all}");
    // The job's parent chain leads to the request span.
    let by_id: HashMap<&str, &ReceivedSpan> =
        spans.iter().map(|s| (s.span_id.as_str(), s)).collect();
    let mut at = job;
    let mut hops = 0;
    while at.span_id != request.span_id {
        let parent = at
            .parent_span_id
            .as_deref()
            .unwrap_or_else(|| panic!("{} has no parent; the chain ends:\n{all}", at.name));
        at = by_id
            .get(parent)
            .unwrap_or_else(|| panic!("{}'s parent {parent} was not received:\n{all}", at.name));
        hops += 1;
        assert!(hops < 10, "{all}");
    }

    let mut starts = Vec::new();
    for stage in STAGES {
        let found: Vec<&ReceivedSpan> = spans.iter().filter(|s| s.name == stage).collect();
        assert_eq!(found.len(), 1, "one {stage} span:\n{all}");
        let span = found[0];
        assert_eq!(span.trace_id, trace_id, "{all}");
        assert_eq!(
            span.parent_span_id.as_deref(),
            Some(job.span_id.as_str()),
            "{stage} is a child of the job span:\n{all}"
        );
        assert!(span.duration_nanos() > 0, "{stage} took no time:\n{all}");
        starts.push(span.start_unix_nano);
    }
    assert!(
        starts.windows(2).all(|p| p[0] <= p[1]),
        "stages start in order {STAGES:?}:\n{all}"
    );
    // No diarization was asked for.
    assert!(!spans.iter().any(|s| s.name == "diarize"), "{all}");
    for span in spans {
        assert_eq!(span.service_name.as_deref(), Some("vttiro"), "{all}");
        // What was said stays out of the telemetry.
        for value in span.attributes.values() {
            assert!(!value.contains("country"), "transcript text in {span:?}");
        }
    }
}

fn serve(data: &Path, extra: &[&str], env: &[(&str, &str)]) -> Process {
    let mut args = vec!["serve", "--open", "--listen", "127.0.0.1:0"];
    args.extend_from_slice(extra);
    start_with_env(&args, data, env)
}

#[test]
fn a_job_is_one_trace_from_the_callers_span_through_every_stage() {
    let receiver = OtlpReceiver::start().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let mut server = serve(
        &dir.path().join("data"),
        &["--workers", "1"],
        &otel_env(&receiver, "100"),
    );
    let trace_id = "4bf92f3577b34da6a3ce929d0e0e4736";
    let caller = "00f067aa0ba902b7";
    let parent = traceparent(trace_id, caller);
    let (status, job) = submit_traced(&server.base, &parent);
    assert_eq!(status, 202, "{job}");
    let done = wait_final_traced(&server.base, job["id"].as_str().unwrap(), &parent);
    assert_eq!(done["state"], "succeeded", "{done}");

    let spans = receiver
        .wait_for(has_job_tree, Duration::from_secs(30))
        .unwrap_or_else(|spans| panic!("spans never arrived:\n{}", summary(&spans)));
    assert_job_tree(&spans, trace_id, caller);
    // Every request this caller made, and nothing else, was traced: no stray roots.
    for span in &spans {
        assert_eq!(span.trace_id, trace_id, "{}", summary(&spans));
    }
    assert_eq!(server.terminate(), Some(0), "{}", server.log_text());
}

#[test]
fn a_separate_worker_process_continues_the_requests_trace_and_flushes_at_sigterm() {
    let receiver = OtlpReceiver::start().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let mut api = serve(&data, &["--no-workers"], &otel_env(&receiver, "100"));
    // A batch delay longer than the test: the worker's spans can only come from the flush
    // at exit.
    let mut worker = start_with_env(
        &["worker", "--workers", "1"],
        &data,
        &otel_env(&receiver, "600000"),
    );
    let trace_id = "0af7651916cd43dd8448eb211c80319c";
    let caller = "b7ad6b7169203331";
    let parent = traceparent(trace_id, caller);
    let (status, job) = submit_traced(&api.base, &parent);
    assert_eq!(status, 202, "{job}");
    let done = wait_final_traced(&api.base, job["id"].as_str().unwrap(), &parent);
    assert_eq!(done["state"], "succeeded", "{done}");
    receiver
        .wait_for(|s| submit_span(s).is_some(), Duration::from_secs(30))
        .unwrap_or_else(|spans| panic!("no request span:\n{}", summary(&spans)));
    assert!(
        !receiver.spans().iter().any(|s| s.name == "job"),
        "the worker exported before its batch delay:\n{}",
        summary(&receiver.spans())
    );

    assert_eq!(worker.terminate(), Some(0), "{}", worker.log_text());
    let spans = receiver
        .wait_for(has_job_tree, Duration::from_secs(30))
        .unwrap_or_else(|spans| panic!("the worker's spans never arrived:\n{}", summary(&spans)));
    assert_job_tree(&spans, trace_id, caller);
    assert_eq!(api.terminate(), Some(0), "{}", api.log_text());
}

#[test]
fn nothing_is_exported_when_the_sdk_is_disabled_and_grpc_is_refused() {
    let receiver = OtlpReceiver::start().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let mut env = otel_env(&receiver, "100");
    env.push(("OTEL_SDK_DISABLED", "true"));
    let mut server = serve(&dir.path().join("data"), &["--no-workers"], &env);
    let mut response = agent()
        .get(&format!("{}/healthz", server.base))
        .header(
            "traceparent",
            &traceparent(&"1".repeat(32), &"2".repeat(16)),
        )
        .call()
        .unwrap();
    assert_eq!(response.status().as_u16(), 200);
    let _ = response.body_mut().read_to_string();
    assert_eq!(server.terminate(), Some(0), "{}", server.log_text());
    assert_eq!(receiver.requests(), 0);

    let mut env = otel_env(&receiver, "100");
    env.push(("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc"));
    let output = common::vttiro_env(&["version"], dir.path(), dir.path(), &env);
    assert_eq!(output.status.code(), Some(2));
    let stderr = common::stderr(&output);
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(stderr.contains("http/protobuf"), "{stderr}");
}
