//! A worker process killed with SIGKILL mid-job: its lease runs out, the job is retried by
//! another worker with the dead one's checkpoints, and it succeeds exactly once.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::json;
use vttiro_jobs::*;

const CHILD: &str = "VTTIRO_JOBS_TEST_CHILD_DB";

fn policy() -> QueuePolicy {
    QueuePolicy {
        max_attempts: 3,
        lease_ms: 600,
        backoff_base_ms: 200,
        backoff_max_ms: 1_000,
        max_queued: None,
    }
}

/// The doomed worker: claims, checkpoints its first chunk, reports, then keeps
/// heartbeating until it is killed (or gives up after a minute).
fn run_child(db: &Path) {
    let queue = SqliteQueue::open(db, Arc::new(SystemClock), policy()).unwrap();
    let lease = queue.claim("doomed-worker").unwrap().expect("a job");
    queue
        .save_checkpoint(&lease, "chunk-0001", b"first chunk's words")
        .unwrap();
    queue
        .heartbeat(
            &lease,
            Some(&Progress {
                fraction: 0.5,
                stage: "transcribe".into(),
            }),
        )
        .unwrap();
    // libtest has already written "test name ... " without a newline.
    println!("\nclaimed {}", lease.job.id);
    let started = Instant::now();
    while started.elapsed() < Duration::from_secs(60) {
        std::thread::sleep(Duration::from_millis(100));
        queue.heartbeat(&lease, None).unwrap();
    }
}

#[test]
fn a_killed_worker_loses_its_lease_and_the_job_completes_once_elsewhere() {
    if let Ok(db) = std::env::var(CHILD) {
        run_child(Path::new(&db));
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("jobs.db");
    let queue = SqliteQueue::open(&db, Arc::new(SystemClock), policy()).unwrap();
    let id = queue
        .submit(NewJob {
            tenant: "t".into(),
            spec: json!({}),
            media: None,
            idempotency_key: None,
            fingerprint: "f".into(),
            max_attempts: None,
            trace_parent: None,
        })
        .unwrap()
        .job()
        .id
        .clone();

    let mut child = Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "a_killed_worker_loses_its_lease_and_the_job_completes_once_elsewhere",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(CHILD, &db)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let claimed = lines
        .by_ref()
        .map_while(Result::ok)
        .find(|l| l.starts_with("claimed "))
        .expect("the child claims the job");
    assert_eq!(claimed, format!("claimed {id}"));
    assert!(
        queue.claim("survivor").unwrap().is_none(),
        "held by the child"
    );
    child.kill().unwrap(); // SIGKILL: no cleanup, no release
    child.wait().unwrap();

    let started = Instant::now();
    let lease = loop {
        if let Some(lease) = queue.claim("survivor").unwrap() {
            break lease;
        }
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "job never came back"
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    assert_eq!(lease.job.attempts, 2);
    // The retry resumes: the dead worker's checkpoint is there.
    let checkpoints = queue.checkpoints(&id).unwrap();
    assert_eq!(checkpoints.len(), 1);
    assert_eq!(checkpoints[0].data, b"first chunk's words");
    queue
        .succeed(&lease, json!({ "resumed_from": "chunk-0001" }))
        .unwrap();

    let events = queue.events(&id, 0).unwrap();
    let kinds: Vec<&str> = events.iter().map(|e| e.kind.as_str()).collect();
    assert_eq!(
        kinds,
        [
            "queued",
            "running",
            "progress",
            "retrying",
            "running",
            "succeeded"
        ]
    );
    assert_eq!(events[1].data["worker"], "doomed-worker");
    assert_eq!(events[4].data["worker"], "survivor");
    assert_eq!(queue.get(&id).unwrap().state, JobState::Succeeded);
}
