//! Scale-out on PostgreSQL: one API process and three worker processes share a real
//! PostgreSQL server (Debian's package, started privately on 127.0.0.1) and one store.
//! 200 jobs run while two workers are killed with SIGKILL (and replaced) and the database
//! server is restarted once. Every job must succeed exactly once, with whole results and
//! no object left over.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::time::{Duration, Instant};

use common::service::{self, get_json, start, Process};
use serde_json::{json, Value};

const JOBS: usize = 200;

fn worker(data: &Path, url: &str) -> Process {
    // Short leases, so a killed worker's job comes back within seconds.
    start(
        &[
            "worker",
            "--workers",
            "1",
            "--lease-secs",
            "3",
            "--database-url",
            url,
        ],
        data,
    )
}

fn succeeded(base: &str, ids: &[String]) -> usize {
    let (status, page) = get_json(&format!("{base}/v1/jobs?state=succeeded&limit=200"));
    if status != 200 {
        // The database may be restarting; the next poll tells.
        return 0;
    }
    let mut count = page["jobs"].as_array().map_or(0, Vec::len);
    let mut cursor = page["next_cursor"].as_str().map(str::to_string);
    while let Some(next) = cursor {
        let (_, page) = get_json(&format!(
            "{base}/v1/jobs?state=succeeded&limit=200&cursor={next}"
        ));
        count += page["jobs"].as_array().map_or(0, Vec::len);
        cursor = page["next_cursor"].as_str().map(str::to_string);
    }
    assert!(count <= ids.len());
    count
}

fn wait_succeeded(api: &Process, ids: &[String], at_least: usize, limit: Duration) {
    let started = Instant::now();
    loop {
        let done = succeeded(&api.base, ids);
        if done >= at_least {
            return;
        }
        let (_, failed) = get_json(&format!("{}/v1/jobs?state=failed", api.base));
        assert!(
            failed["jobs"].as_array().is_none_or(Vec::is_empty),
            "a job failed: {failed}"
        );
        assert!(
            started.elapsed() < limit,
            "only {done} of {at_least} succeeded"
        );
        std::thread::sleep(Duration::from_millis(300));
    }
}

#[test]
fn jobs_on_postgres_survive_killed_workers_and_a_database_restart() {
    let server = vttiro_fixtures::PostgresServer::start();
    let database = server.database();
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let api = start(
        &[
            "serve",
            "--open",
            "--no-workers",
            "--listen",
            "127.0.0.1:0",
            "--database-url",
            &database.url,
        ],
        &data,
    );
    let mut workers: Vec<Process> = (0..3).map(|_| worker(&data, &database.url)).collect();

    let jfk = vttiro_media::decode(&vttiro_fixtures::jfk_wav(), &Default::default()).unwrap();
    let clip = vttiro_media::encode_wav(&jfk.samples[..16_000 * 4]);
    let ids: Vec<String> = (0..JOBS)
        .map(|i| {
            let (status, job) = service::submit(
                &api.base,
                &clip,
                &json!({ "formats": ["vtt", "json"], "language": "en" }),
            );
            assert_eq!(status, 202, "job {i}: {job}");
            job["id"].as_str().unwrap().to_string()
        })
        .collect();

    wait_succeeded(&api, &ids, 30, Duration::from_secs(300));
    workers[0].kill();
    workers[0] = worker(&data, &database.url);
    eprintln!("killed a worker with SIGKILL");

    wait_succeeded(&api, &ids, 70, Duration::from_secs(300));
    server.restart();
    eprintln!("restarted PostgreSQL");

    wait_succeeded(&api, &ids, 120, Duration::from_secs(300));
    workers[1].kill();
    workers[1] = worker(&data, &database.url);
    eprintln!("killed another worker with SIGKILL");

    wait_succeeded(&api, &ids, JOBS, Duration::from_secs(900));

    // Exactly one success per job in its durable history, none failed.
    service::assert_each_succeeded_once(&api.base, &ids);
    // The store holds exactly each job's results and its upload: nothing orphaned by a
    // killed attempt, nothing half-written.
    let store = data.join("store");
    let known: BTreeSet<&String> = ids.iter().collect();
    let mut vtts = BTreeMap::new();
    for entry in std::fs::read_dir(store.join("jobs")).unwrap() {
        let entry = entry.unwrap();
        let id = entry.file_name().to_string_lossy().into_owned();
        assert!(known.contains(&id), "an object for no job: jobs/{id}");
        let mut names: Vec<String> = std::fs::read_dir(entry.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        assert_eq!(names, ["result.json", "result.vtt"], "{id}");
        let json: Value =
            serde_json::from_slice(&std::fs::read(entry.path().join("result.json")).unwrap())
                .unwrap_or_else(|e| panic!("{id}: result.json is not whole: {e}"));
        assert!(json["text"].as_str().unwrap().contains("fellow Americans"));
        vtts.insert(
            id,
            std::fs::read_to_string(entry.path().join("result.vtt")).unwrap(),
        );
    }
    assert_eq!(vtts.len(), JOBS);
    let first = vtts.values().next().unwrap();
    assert!(
        vtts.values().all(|v| v == first),
        "every result is the same"
    );
    let uploads = std::fs::read_dir(store.join("uploads")).unwrap().count();
    assert_eq!(uploads, JOBS, "one upload per job, none orphaned");

    for mut process in workers.into_iter().chain([api]) {
        assert_eq!(process.terminate(), Some(0), "{}", process.log_text());
    }
}
