//! Scale-out on PostgreSQL and S3: one API process and three worker processes share a
//! real PostgreSQL server (Debian's package, started privately on 127.0.0.1) and one S3
//! bucket (moto, an S3-compatible server, also on 127.0.0.1), sealed with a master key.
//! 200 jobs run while two workers are killed with SIGKILL (and replaced) and the database
//! server is restarted once. Every job must succeed exactly once, with whole results, no
//! object left over and no multipart upload left unfinished.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::time::{Duration, Instant};

use common::service::{self, get_json, start_with_env, Process};
use serde_json::json;

const JOBS: usize = 200;

/// Where everything is shared: the database, the bucket and the master key.
struct Shared {
    database_url: String,
    bucket: String,
    env: Vec<(String, String)>,
}

impl Shared {
    fn start(&self, args: &[&str], data: &Path) -> Process {
        let mut all = args.to_vec();
        all.extend([
            "--database-url",
            &self.database_url,
            "--store",
            &self.bucket,
        ]);
        let env: Vec<(&str, &str)> = self
            .env
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        start_with_env(&all, data, &env)
    }

    fn worker(&self, data: &Path) -> Process {
        // Short leases, so a killed worker's job comes back within seconds.
        self.start(&["worker", "--workers", "1", "--lease-secs", "3"], data)
    }
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
fn jobs_on_postgres_and_s3_survive_killed_workers_and_a_database_restart() {
    let server = vttiro_fixtures::PostgresServer::start();
    let database = server.database();
    let s3 = vttiro_fixtures::S3Server::start();
    let (_, master_key) = vttiro_storage::KeyRing::generate("chaos").unwrap();
    let mut env = s3.env();
    env.push(("VTTIRO_MASTER_KEY".into(), master_key));
    let shared = Shared {
        database_url: database.url.clone(),
        bucket: format!("{}/vttiro", s3.bucket("media")),
        env,
    };
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let api = shared.start(
        &["serve", "--open", "--no-workers", "--listen", "127.0.0.1:0"],
        &data,
    );
    assert!(
        api.log_text().contains("objects in s3://media/vttiro"),
        "{}",
        api.log_text()
    );
    let mut workers: Vec<Process> = (0..3).map(|_| shared.worker(&data)).collect();

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
    workers[0] = shared.worker(&data);
    eprintln!("killed a worker with SIGKILL");

    wait_succeeded(&api, &ids, 70, Duration::from_secs(300));
    server.restart();
    eprintln!("restarted PostgreSQL");

    wait_succeeded(&api, &ids, 120, Duration::from_secs(300));
    workers[1].kill();
    workers[1] = shared.worker(&data);
    eprintln!("killed another worker with SIGKILL");

    wait_succeeded(&api, &ids, JOBS, Duration::from_secs(900));

    // Exactly one success per job in its durable history, none failed.
    service::assert_each_succeeded_once(&api.base, &ids);
    // The bucket holds exactly each job's results and its upload: nothing orphaned by a
    // killed attempt, no multipart upload left open, nothing stored in the clear.
    let known: BTreeSet<&String> = ids.iter().collect();
    let mut results: BTreeMap<String, Vec<String>> = BTreeMap::new();
    let mut uploads = 0;
    for key in s3.keys("media") {
        let rest = key
            .strip_prefix("vttiro/")
            .unwrap_or_else(|| panic!("an object outside the store's prefix: {key}"));
        match rest.split('/').collect::<Vec<_>>()[..] {
            ["jobs", id, name] => {
                assert!(
                    known.contains(&id.to_string()),
                    "an object for no job: {key}"
                );
                results
                    .entry(id.to_string())
                    .or_default()
                    .push(name.to_string());
            }
            ["uploads", ..] => uploads += 1,
            _ => panic!("an object the service never writes: {key}"),
        }
        let stored = s3.object("media", &key);
        assert!(
            !String::from_utf8_lossy(&stored).contains("fellow Americans"),
            "{key} is stored in the clear"
        );
    }
    assert_eq!(results.len(), JOBS);
    for (id, names) in &results {
        assert_eq!(names, &["result.json", "result.vtt"], "{id}");
    }
    assert_eq!(uploads, JOBS, "one upload per job, none orphaned");
    assert_eq!(s3.pending_uploads("media"), 0);
    // Every result reads back whole through the API, and all are the same transcript.
    let mut vtts = BTreeSet::new();
    for id in &ids {
        let mut response = service::agent()
            .get(&format!("{}/v1/jobs/{id}/result?format=vtt", api.base))
            .call()
            .unwrap();
        let body = response.body_mut().read_to_string().unwrap();
        assert_eq!(response.status(), 200, "{id}: {body}");
        assert!(body.contains("fellow Americans"), "{id}: {body}");
        vtts.insert(body);
    }
    let first = vtts.iter().next().unwrap();
    let other = vtts.iter().find(|v| *v != first);
    assert!(
        other.is_none(),
        "results differ:\n{first}\n---\n{}",
        other.unwrap()
    );

    for mut process in workers.into_iter().chain([api]) {
        assert_eq!(process.terminate(), Some(0), "{}", process.log_text());
    }
}

fn vttiro(args: &[&str], env: &[(&str, &str)]) -> std::process::Output {
    std::process::Command::new(env!("CARGO_BIN_EXE_vttiro"))
        .args(args)
        .envs(env.iter().copied())
        .output()
        .expect("run vttiro")
}

/// On PostgreSQL, keys, usage and the audit chain live in the database too: a key the CLI
/// makes on another machine (another data directory, the same `VTTIRO_AUTH_SECRET`) works
/// on the API at once, its revocation too, the API's audit entries are rows in PostgreSQL
/// that `vttiro audit verify` checks, and no `auth.db` or `auth-secret` file appears.
#[test]
fn keys_usage_and_the_audit_log_live_in_postgres() {
    let database = vttiro_fixtures::postgres_database();
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let admin_data = dir.path().join("admin");
    let data_arg = admin_data.to_string_lossy().into_owned();
    let secret = vttiro_auth::new_server_secret().unwrap();
    let env = [
        ("VTTIRO_DATABASE_URL", database.url.as_str()),
        ("VTTIRO_AUTH_SECRET", secret.as_str()),
    ];
    let api = start_with_env(
        &["serve", "--workers", "1", "--listen", "127.0.0.1:0"],
        &data,
        &env,
    );
    let created = vttiro(
        &[
            "keys",
            "create",
            "--tenant",
            "acme",
            "--role",
            "submitter",
            "--data-dir",
            &data_arg,
        ],
        &env,
    );
    assert!(
        created.status.success(),
        "{}",
        String::from_utf8_lossy(&created.stderr)
    );
    let token = String::from_utf8(created.stdout)
        .unwrap()
        .trim()
        .to_string();

    let jfk = vttiro_media::decode(&vttiro_fixtures::jfk_wav(), &Default::default()).unwrap();
    let clip = vttiro_media::encode_wav(&jfk.samples[..16_000 * 4]);
    let (status, job) = service::submit_as(
        &api.base,
        Some(&token),
        &clip,
        &json!({ "formats": ["vtt"], "language": "en" }),
    );
    assert_eq!(status, 202, "{job}");
    let id = job["id"].as_str().unwrap();
    let done = service::wait_final_as(&api.base, Some(&token), id, Duration::from_secs(300));
    assert_eq!(done["state"], "succeeded", "{done}");

    for dir in [&data, &admin_data] {
        assert!(!dir.join("auth.db").exists(), "the keys went to SQLite");
        assert!(!dir.join("auth-secret").exists(), "a secret was generated");
    }
    assert_eq!(
        database
            .psql("SELECT count(*) FROM audit WHERE action = 'job.create' AND tenant = 'acme'")
            .trim(),
        "1"
    );
    // The worker counted the job's audio against the key, in the shared table.
    let used: i64 = database
        .psql("SELECT coalesce(sum(audio_ms), 0) FROM audio_usage")
        .trim()
        .parse()
        .unwrap();
    assert_eq!(used, 4_000);
    let verified = vttiro(&["audit", "verify", "--data-dir", &data_arg], &env);
    assert!(
        verified.status.success(),
        "{}",
        String::from_utf8_lossy(&verified.stderr)
    );

    let listed = vttiro(&["keys", "list", "--json", "--data-dir", &data_arg], &env);
    let keys: serde_json::Value = serde_json::from_slice(&listed.stdout).unwrap();
    let key_id = keys[0]["id"].as_str().unwrap();
    let revoked = vttiro(&["keys", "revoke", key_id, "--data-dir", &data_arg], &env);
    assert!(
        revoked.status.success(),
        "{}",
        String::from_utf8_lossy(&revoked.stderr)
    );
    let (status, _) = service::get_json_as(&format!("{}/v1/jobs/{id}", api.base), &token);
    assert_eq!(
        status, 401,
        "a key revoked in PostgreSQL is refused at once"
    );

    // Backups of a PostgreSQL deployment are PostgreSQL's business.
    let backup = vttiro(
        &[
            "backup",
            "--data-dir",
            &data_arg,
            "--out",
            &dir.path().join("b").to_string_lossy(),
        ],
        &env,
    );
    assert_eq!(
        backup.status.code(),
        Some(2),
        "{}",
        String::from_utf8_lossy(&backup.stderr)
    );
    assert!(String::from_utf8_lossy(&backup.stderr).contains("pg_dump"));
    let mut api = api;
    assert_eq!(api.terminate(), Some(0), "{}", api.log_text());
}
