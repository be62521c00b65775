//! `vttiro serve` end to end: the real binary on 127.0.0.1 transcribes an uploaded JFK
//! sample with the local model through the jobs API, exits cleanly on SIGTERM, and finds
//! its jobs again after a restart.

mod common;

use std::path::Path;
use std::time::Duration;

use common::service::{self, agent, get_json, submit, wait_final, Process};
use serde_json::json;

fn start(data: &Path) -> Process {
    service::start(
        &[
            "serve",
            "--open",
            "--listen",
            "127.0.0.1:0",
            "--workers",
            "1",
        ],
        data,
    )
}

#[test]
fn serve_transcribes_an_upload_and_keeps_its_jobs_across_restarts() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let mut server = start(&data);

    let audio = std::fs::read(vttiro_fixtures::jfk_wav()).unwrap();
    let (status, job) = submit(
        &server.base,
        &audio,
        &json!({ "formats": ["vtt", "json"], "language": "en" }),
    );
    assert_eq!(status, 202, "{job}");
    let id = job["id"].as_str().unwrap().to_string();

    let done = wait_final(&server.base, &id, Duration::from_secs(180));
    assert_eq!(done["state"], "succeeded", "{done}");
    assert_eq!(done["result"]["formats"], json!(["vtt", "json"]));
    assert_eq!(done["result"]["summary"]["model"], "tiny.en");

    let mut vtt = agent()
        .get(&format!("{}/v1/jobs/{id}/result?format=vtt", server.base))
        .call()
        .unwrap();
    let text = vtt.body_mut().read_to_string().unwrap();
    assert!(text.starts_with("WEBVTT"), "{text}");
    assert!(text.contains("00:00:00.310 --> "), "{text}");
    assert!(text.contains("what your country can do for you"), "{text}");

    assert_eq!(server.terminate(), Some(0));

    // A restarted server on the same data directory still has the job and its result.
    let mut server2 = start(&data);
    let (status, job) = get_json(&format!("{}/v1/jobs/{id}", server2.base));
    assert_eq!((status, job["state"].as_str()), (200, Some("succeeded")));
    let (status, result) = get_json(&format!("{}/v1/jobs/{id}/result?format=json", server2.base));
    assert_eq!(status, 200);
    assert_eq!(result["model"], "tiny.en");
    assert_eq!(server2.terminate(), Some(0));
}

/// The JSON log line whose message is `message`, with its span fields merged in.
fn json_line(log: &str, message: &str, field: &str, value: &str) -> Option<serde_json::Value> {
    log.lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .find(|line| {
            line["fields"]["message"] == message
                && line["spans"]
                    .as_array()
                    .is_some_and(|spans| spans.iter().any(|s| s[field] == value))
        })
}

#[test]
fn json_logs_name_the_request_and_the_job_on_every_line() {
    let dir = tempfile::tempdir().unwrap();
    let mut server = service::start_with_env(
        &[
            "--log-format",
            "json",
            "serve",
            "--open",
            "--listen",
            "127.0.0.1:0",
            "--workers",
            "1",
        ],
        &dir.path().join("data"),
        &[("VTTIRO_LOG", "warn,vttiro_server=info,vttiro_pipeline=info")],
    );
    let refused = agent()
        .get(&format!("{}/v1/jobs/job_nope", server.base))
        .header("x-request-id", "trace-me-42")
        .call()
        .unwrap();
    assert_eq!(refused.status().as_u16(), 404);
    let audio = std::fs::read(vttiro_fixtures::jfk_wav()).unwrap();
    let (_, job) = submit(&server.base, &audio, &json!({ "formats": ["vtt"] }));
    let id = job["id"].as_str().unwrap().to_string();
    let done = wait_final(&server.base, &id, Duration::from_secs(180));
    assert_eq!(done["state"], "succeeded");
    assert_eq!(server.terminate(), Some(0));

    let log = server.log_text();
    let refusal = json_line(&log, "request refused", "request_id", "trace-me-42")
        .unwrap_or_else(|| panic!("no request line with its id:\n{log}"));
    assert_eq!(refusal["fields"]["code"], "job_not_found");
    // A line from deep inside the pipeline still names the job it belongs to.
    assert!(
        json_line(&log, "planned", "job", &id).is_some(),
        "no pipeline line names {id}:\n{log}"
    );
}

/// Settings that cannot work are usage errors (exit 2), named in one line; a database that
/// cannot be reached is a storage failure (exit 53). Nothing is started either way.
#[test]
fn unusable_settings_and_unreachable_storage_exit_with_their_own_codes() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().to_string_lossy().into_owned();
    let cases: [(&[&str], i32, &str); 4] = [
        (
            &[
                "serve",
                "--open",
                "--listen",
                "127.0.0.1:0",
                "--store",
                "ftp://host/x",
            ],
            2,
            "error: storage location ftp://host/x: unsupported scheme \"ftp\"",
        ),
        (
            &["worker", "--lease-secs", "1"],
            2,
            "error: --lease-secs 1: use at least 3",
        ),
        (
            &["worker", "--master-key", "k1:not-a-key"],
            2,
            "error: VTTIRO_MASTER_KEY:",
        ),
        (
            &[
                "worker",
                "--database-url",
                "postgres://nobody@127.0.0.1:1/x",
            ],
            53,
            "error: --database-url: job queue storage: postgres:",
        ),
    ];
    for (args, code, said) in cases {
        let opened = code == 53;
        let output = std::process::Command::new(env!("CARGO_BIN_EXE_vttiro"))
            .args(args)
            .args(["--data-dir", &data])
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(code), "{args:?}: {stderr}");
        assert!(stderr.starts_with(said), "{args:?}: {stderr}");
        assert_eq!(stderr.lines().count(), 1, "{args:?}: {stderr}");
        // Bad settings are caught before any database is created.
        if !opened {
            assert!(!dir.path().join("jobs.db").exists(), "{args:?}");
        }
    }
}
