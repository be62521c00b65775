//! The service's pipeline runner through the real `vttiro serve` binary with the tiny.en
//! model: a job's event history walks through the stages in order with rising progress,
//! a second job with the same settings loads no model, and a cancelled job on a long
//! recording stops between recognition groups instead of running to the end.
//!
//! Recordings are built from real speech (the LibriVox clips and JFK, repeated with
//! pauses). Workers report progress on each heartbeat; `--lease-secs 6` makes that every
//! 2 s, so a job of some seconds leaves several progress events.

mod common;

use std::path::Path;
use std::time::{Duration, Instant};

use common::service::{agent, get_json, start_with_env, submit, wait_final, Process};
use serde_json::{json, Value};

const STAGES: [&str; 6] = ["decode", "vad", "transcribe", "diarize", "layout", "store"];

/// `vttiro serve` with one worker, logging the runner's and pipeline's info lines (model
/// loads, cancels) to stderr.
fn serve(data: &Path) -> Process {
    start_with_env(
        &[
            "serve",
            "--open",
            "--listen",
            "127.0.0.1:0",
            "--workers",
            "1",
            "--lease-secs",
            "6",
        ],
        data,
        &[("VTTIRO_LOG", "warn,vttiro=info,vttiro_pipeline=info")],
    )
}

/// At least `seconds` of real speech as WAV: the LibriVox clips and JFK in turn, 1 s of
/// silence after each, round after round.
fn speech_wav(seconds: usize) -> Vec<u8> {
    let mut clips: Vec<Vec<f32>> = vttiro_fixtures::librivox()
        .iter()
        .map(|c| c.wav.clone())
        .chain([vttiro_fixtures::jfk_wav()])
        .map(|path| {
            vttiro_media::decode(&path, &Default::default())
                .expect("decode clip")
                .samples
        })
        .collect();
    for clip in &mut clips {
        clip.extend(std::iter::repeat_n(0.0f32, 16_000));
    }
    let mut samples = Vec::new();
    for clip in clips.iter().cycle() {
        if samples.len() >= seconds * 16_000 {
            break;
        }
        samples.extend_from_slice(clip);
    }
    vttiro_media::encode_wav(&samples)
}

/// The job's whole event history as (kind, data), read from the SSE stream, which ends
/// after the job's final event.
fn events(base: &str, id: &str) -> Vec<(String, Value)> {
    let mut response = agent()
        .get(&format!("{base}/v1/jobs/{id}/events"))
        .call()
        .unwrap();
    assert_eq!(response.status().as_u16(), 200);
    let body = response.body_mut().read_to_string().unwrap();
    let mut events = Vec::new();
    let mut kind = String::new();
    for line in body.lines() {
        if let Some(k) = line.strip_prefix("event:") {
            kind = k.trim().to_string();
        } else if let Some(data) = line.strip_prefix("data:") {
            let data: Value = serde_json::from_str(data.trim()).expect("event data is JSON");
            events.push((kind.clone(), data["data"].clone()));
        }
    }
    events
}

/// The (stage, progress) of each progress event.
fn progress_of(events: &[(String, Value)]) -> Vec<(String, f64)> {
    events
        .iter()
        .filter(|(kind, _)| kind == "progress")
        .map(|(_, data)| {
            (
                data["stage"].as_str().expect("stage").to_string(),
                data["progress"].as_f64().expect("progress"),
            )
        })
        .collect()
}

fn submit_job(base: &str, audio: &[u8]) -> String {
    let (status, job) = submit(base, audio, &json!({"formats": ["vtt", "json"]}));
    assert_eq!(status, 202, "{job}");
    job["id"].as_str().unwrap().to_string()
}

#[test]
fn a_jobs_events_show_its_stages_in_order_and_the_next_job_loads_no_model() {
    let dir = tempfile::tempdir().unwrap();
    let server = serve(&dir.path().join("data"));

    // About four minutes of speech: transcription spans several heartbeats.
    let id = submit_job(&server.base, &speech_wav(240));
    let job = wait_final(&server.base, &id, Duration::from_secs(600));
    assert_eq!(job["state"], "succeeded", "{job}\n{}", server.log_text());

    let history = events(&server.base, &id);
    let progress = progress_of(&history);
    assert!(progress.len() >= 2, "{history:?}");
    let order: Vec<usize> = progress
        .iter()
        .map(|(stage, _)| {
            STAGES
                .iter()
                .position(|s| s == stage)
                .unwrap_or_else(|| panic!("unknown stage {stage}"))
        })
        .collect();
    assert!(order.windows(2).all(|p| p[0] <= p[1]), "{progress:?}");
    assert!(
        progress.iter().any(|(s, _)| s == "transcribe"),
        "{progress:?}"
    );
    assert!(
        progress.windows(2).all(|p| p[0].1 <= p[1].1),
        "{progress:?}"
    );
    assert!(
        progress.iter().all(|(_, f)| (0.0..=1.0).contains(f)),
        "{progress:?}"
    );
    assert_eq!(
        history.last().map(|(kind, _)| kind.as_str()),
        Some("succeeded")
    );
    assert_eq!(job["result"]["summary"]["model"], "tiny.en");
    assert_eq!(job["result"]["summary"]["language"], "en");

    // The same settings again: the worker's loaded model serves it.
    let jfk = std::fs::read(vttiro_fixtures::jfk_wav()).unwrap();
    let second = submit_job(&server.base, &jfk);
    let job = wait_final(&server.base, &second, Duration::from_secs(180));
    assert_eq!(job["state"], "succeeded", "{job}");
    let (status, result) = get_json(&format!(
        "{}/v1/jobs/{second}/result?format=json",
        server.base
    ));
    assert_eq!(status, 200);
    assert!(
        result["text"]
            .as_str()
            .is_some_and(|t| t.contains("what your country can do for you")),
        "{result}"
    );
    let log = server.log_text();
    let loads = log
        .lines()
        .filter(|l| l.contains("vttiro::job_runner: model loaded"))
        .count();
    assert_eq!(loads, 1, "{log}");
}

#[test]
fn cancelling_a_running_job_on_a_long_recording_stops_it_between_groups() {
    let dir = tempfile::tempdir().unwrap();
    let server = serve(&dir.path().join("data"));

    // Ten minutes: recognised in groups of three minutes of speech.
    let id = submit_job(&server.base, &speech_wav(600));
    let started = Instant::now();
    loop {
        let (_, job) = get_json(&format!("{}/v1/jobs/{id}", server.base));
        if job["stage"] == "transcribe" {
            break;
        }
        assert!(
            job["state"] == "queued" || job["state"] == "running",
            "{job}\n{}",
            server.log_text()
        );
        assert!(started.elapsed() < Duration::from_secs(300), "{job}");
        std::thread::sleep(Duration::from_millis(100));
    }
    let mut response = agent()
        .post(&format!("{}/v1/jobs/{id}/cancel", server.base))
        .send_empty()
        .unwrap();
    let status = response.status().as_u16();
    assert!(
        (200..300).contains(&status),
        "{status} {}",
        response.body_mut().read_to_string().unwrap()
    );

    let job = wait_final(&server.base, &id, Duration::from_secs(600));
    assert_eq!(job["state"], "cancelled", "{job}\n{}", server.log_text());
    // It stopped inside recognition: no later stage ever reported, and the log names
    // the group it stopped before, short of the last.
    let progress = progress_of(&events(&server.base, &id));
    assert!(
        progress
            .iter()
            .all(|(stage, f)| stage != "layout" && stage != "store" && *f < 0.95),
        "{progress:?}"
    );
    let log = server.log_text();
    let stop = log
        .lines()
        .find(|l| l.contains("cancelled between groups"))
        .unwrap_or_else(|| panic!("no cancel in the log:\n{log}"));
    let field = |name: &str| -> usize {
        stop.split_whitespace()
            .find_map(|w| w.strip_prefix(&format!("{name}=")))
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| panic!("no {name} in {stop}"))
    };
    assert!(field("group") < field("groups"), "{stop}");
    assert!(field("groups") >= 3, "{stop}");
}
