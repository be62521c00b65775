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
        &["serve", "--listen", "127.0.0.1:0", "--workers", "1"],
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
