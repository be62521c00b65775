//! Crash safety of `vttiro serve`: 50 jobs are submitted, the server is killed with
//! SIGKILL twice while it runs them and restarted on the same data directory each time.
//! Every job must end succeeded exactly once, and every result in storage must be whole:
//! the same bytes for the same input, nothing duplicated, nothing half-written.

mod common;

use std::collections::BTreeMap;
use std::path::Path;
use std::time::{Duration, Instant};

use common::service::{self, get_json, start, Process};
use serde_json::{json, Value};

const JOBS: usize = 50;

fn serve(data: &Path) -> Process {
    // Short leases so the jobs a killed server held come back within seconds.
    start(
        &[
            "serve",
            "--open",
            "--listen",
            "127.0.0.1:0",
            "--workers",
            "2",
            "--lease-secs",
            "3",
        ],
        data,
    )
}

fn states(base: &str, ids: &[String]) -> BTreeMap<String, String> {
    ids.iter()
        .map(|id| {
            let (_, job) = get_json(&format!("{base}/v1/jobs/{id}"));
            (id.clone(), job["state"].as_str().unwrap_or("?").to_string())
        })
        .collect()
}

fn count(states: &BTreeMap<String, String>, state: &str) -> usize {
    states.values().filter(|s| *s == state).count()
}

/// Waits until at least `at_least` jobs have succeeded.
fn wait_succeeded(server: &Process, ids: &[String], at_least: usize, limit: Duration) {
    let started = Instant::now();
    loop {
        let now = states(&server.base, ids);
        if count(&now, "succeeded") >= at_least {
            return;
        }
        assert!(
            count(&now, "failed") == 0,
            "a job failed: {now:?}\n{}",
            server.log_text()
        );
        assert!(
            started.elapsed() < limit,
            "only {} of {at_least} succeeded: {now:?}",
            count(&now, "succeeded")
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

#[test]
fn jobs_survive_two_sigkills_and_each_succeeds_exactly_once_with_whole_results() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let mut server = serve(&data);
    // A short clip keeps 50 real transcriptions quick on two cores.
    let jfk = vttiro_media::decode(&vttiro_fixtures::jfk_wav(), &Default::default()).unwrap();
    let clip = vttiro_media::encode_wav(&jfk.samples[..16_000 * 4]);

    let ids: Vec<String> = (0..JOBS)
        .map(|i| {
            let (status, job) = service::submit(
                &server.base,
                &clip,
                &json!({ "formats": ["vtt", "json"], "language": "en" }),
            );
            assert_eq!(status, 202, "job {i}: {job}");
            job["id"].as_str().unwrap().to_string()
        })
        .collect();

    // Kill it twice mid-run, each time with jobs running, and bring it back.
    for (round, target) in [(1, 8), (2, 25)] {
        wait_succeeded(&server, &ids, target, Duration::from_secs(300));
        let running = count(&states(&server.base, &ids), "running");
        server.kill();
        eprintln!("round {round}: killed with {running} job(s) running");
        server = serve(&data);
    }
    wait_succeeded(&server, &ids, JOBS, Duration::from_secs(600));

    // Exactly one success per job, in its durable history.
    service::assert_each_succeeded_once(&server.base, &ids);

    // Every result is whole: the same input gives the same bytes, and storage holds exactly
    // the requested files per job, with no leftovers from killed attempts.
    let store = data.join("store");
    let mut vtts = BTreeMap::new();
    for id in &ids {
        let job_dir = store.join("jobs").join(id);
        let mut names: Vec<String> = std::fs::read_dir(&job_dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|n| !n.contains(".part-"))
            .collect();
        names.sort();
        assert_eq!(names, ["result.json", "result.vtt"], "{id}");
        let vtt = std::fs::read_to_string(job_dir.join("result.vtt")).unwrap();
        let json: Value =
            serde_json::from_slice(&std::fs::read(job_dir.join("result.json")).unwrap())
                .unwrap_or_else(|e| panic!("{id}: result.json is not whole JSON: {e}"));
        assert!(
            json["text"].as_str().unwrap().contains("fellow Americans"),
            "{id}: {json}"
        );
        vtts.insert(id.clone(), vtt);
    }
    let first = vtts.values().next().unwrap().clone();
    assert!(
        first.starts_with("WEBVTT") && first.contains("fellow Americans"),
        "{first}"
    );
    for (id, vtt) in &vtts {
        assert_eq!(vtt, &first, "{id} differs");
    }
    assert_eq!(server.terminate(), Some(0));
}
