//! The secured service as deployed: `vttiro serve` with API keys made by `vttiro keys`,
//! HTTPS from its own certificate files (a test CA made with openssl, checked by curl),
//! media and results encrypted at rest under a master key that is then rotated, and the
//! audit log checked — and found tampered — by `vttiro audit verify`.

mod common;

use std::path::Path;
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use common::service::{create_key, start, start_with_env};
use serde_json::Value;

fn vttiro(args: &[&str], env: &[(&str, &str)]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_vttiro"))
        .args(args)
        .envs(env.iter().copied())
        .env("VTTIRO_MODEL_DIR", common::asr_store())
        .output()
        .expect("run vttiro")
}

/// curl trusting only the test CA: (status, body).
fn curl(ca: &Path, args: &[&str]) -> (u16, String) {
    let output = Command::new("curl")
        .args(["-sS", "--max-time", "60", "--cacert"])
        .arg(ca)
        .args(["-w", "\n%{http_code}"])
        .args(args)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&output.stdout).into_owned();
    let (body, status) = text.rsplit_once('\n').unwrap_or(("", "0"));
    (status.trim().parse().unwrap_or(0), body.to_string())
}

fn every_file(dir: &Path, out: &mut Vec<std::path::PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap().flatten() {
        if entry.path().is_dir() {
            every_file(&entry.path(), out);
        } else {
            out.push(entry.path());
        }
    }
}

#[test]
fn https_keys_and_encryption_at_rest_work_together() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let certificates = vttiro_fixtures::test_certificates(dir.path(), "vttiro");
    let ca = certificates.ca.clone();
    let new_key = |id: &str| {
        let out = vttiro(&["storage", "new-key", "--id", id], &[]);
        assert!(out.status.success());
        String::from_utf8(out.stdout).unwrap().trim().to_string()
    };
    let k1 = new_key("k1");
    let keyfile = dir.path().join("master.keys");
    std::fs::write(&keyfile, &k1).unwrap();
    std::fs::set_permissions(
        &keyfile,
        std::os::unix::fs::PermissionsExt::from_mode(0o600),
    )
    .unwrap();
    let keyfile_text = keyfile.to_str().unwrap().to_string();
    let token = create_key(&data, "acme", "submitter");
    let (cert, key) = (certificates.server_cert, certificates.server_key);
    let args = [
        "serve",
        "--listen",
        "127.0.0.1:0",
        "--workers",
        "1",
        "--tls-cert",
        cert.to_str().unwrap(),
        "--tls-key",
        key.to_str().unwrap(),
    ];
    // Debug logging on every module, to show even that holds no transcript or token.
    let mut server = start_with_env(
        &args,
        &data,
        &[
            ("VTTIRO_MASTER_KEY_FILE", &keyfile_text),
            ("VTTIRO_LOG", "debug"),
        ],
    );
    assert!(
        server.base.starts_with("https://127.0.0.1:"),
        "{}",
        server.base
    );

    let (status, _) = curl(&ca, &[&format!("{}/healthz", server.base)]);
    assert_eq!(status, 200, "curl verified the server against the test CA");
    let (status, body) = curl(&ca, &[&format!("{}/v1/jobs", server.base)]);
    assert_eq!(status, 401, "{body}");
    // A client that does not trust the test CA cannot even connect.
    let untrusted = Command::new("curl")
        .args([
            "-sS",
            "--max-time",
            "10",
            &format!("{}/healthz", server.base),
        ])
        .output()
        .unwrap();
    assert!(!untrusted.status.success());

    let auth = format!("Authorization: Bearer {token}");
    let jfk = vttiro_fixtures::jfk_wav();
    let (status, body) = curl(
        &ca,
        &[
            "-H",
            &auth,
            "-F",
            &format!("file=@{}", jfk.display()),
            "-F",
            "formats=vtt",
            &format!("{}/v1/jobs", server.base),
        ],
    );
    assert_eq!(status, 202, "{body}");
    let id = serde_json::from_str::<Value>(&body).unwrap()["id"]
        .as_str()
        .unwrap()
        .to_string();
    let started = Instant::now();
    loop {
        let (_, body) = curl(
            &ca,
            &["-H", &auth, &format!("{}/v1/jobs/{id}", server.base)],
        );
        let job: Value = serde_json::from_str(&body).unwrap();
        if job["state"] == "succeeded" {
            break;
        }
        assert!(
            !matches!(job["state"].as_str(), Some("failed" | "cancelled")),
            "{job}"
        );
        assert!(started.elapsed() < Duration::from_secs(120), "{job}");
        std::thread::sleep(Duration::from_millis(200));
    }
    let result = |server: &common::service::Process| {
        curl(
            &ca,
            &[
                "-H",
                &auth,
                &format!("{}/v1/jobs/{id}/result?format=vtt", server.base),
            ],
        )
    };
    let (status, vtt) = result(&server);
    assert_eq!(status, 200);
    assert!(vtt.contains("what your country can do for you"), "{vtt}");

    // On disk nothing is readable: not the transcript, not the WAV upload, in the store or
    // in the databases beside it.
    let mut files = Vec::new();
    every_file(&data, &mut files);
    assert!(files.len() >= 2, "{files:?}");
    let wav = std::fs::read(&jfk).unwrap();
    for file in &files {
        let bytes = std::fs::read(file).unwrap();
        // A window from the middle of the speech (the start is silence: zero bytes).
        let middle = wav.len() / 2;
        for needle in [
            &b"country"[..],
            b"WEBVTT",
            b"RIFF",
            &wav[middle..middle + 16],
        ] {
            assert!(
                !bytes.windows(needle.len()).any(|w| w == needle),
                "{} holds plaintext {needle:?}: starts {:?}",
                file.display(),
                &bytes[..bytes.len().min(16)]
            );
        }
    }
    assert_eq!(server.terminate(), Some(0));
    let log = server.log_text();
    assert!(log.contains("request_id"), "debug logging was on: {log}");
    assert!(
        !log.contains("country"),
        "the log holds transcript text:\n{log}"
    );
    assert!(!log.contains(&token), "the log holds the API key:\n{log}");

    // Rotation: k2 becomes current, k1 stays only until the objects are re-wrapped.
    let k2 = new_key("k2");
    std::fs::write(&keyfile, format!("{k2},{k1}")).unwrap();
    let rotate = vttiro(
        &[
            "storage",
            "rotate-keys",
            "--data-dir",
            data.to_str().unwrap(),
            "--master-key-file",
            &keyfile_text,
        ],
        &[],
    );
    assert!(
        rotate.status.success(),
        "{}",
        String::from_utf8_lossy(&rotate.stderr)
    );
    assert!(String::from_utf8_lossy(&rotate.stdout).contains("re-wrapped"));
    std::fs::write(&keyfile, &k2).unwrap();
    let mut server = start_with_env(&args, &data, &[("VTTIRO_MASTER_KEY_FILE", &keyfile_text)]);
    let (status, again) = result(&server);
    assert_eq!(
        (status, again.as_str()),
        (200, vtt.as_str()),
        "readable under k2 alone"
    );
    assert_eq!(server.terminate(), Some(0));
    // Without the key the server can list the job but not read what it produced.
    let mut server = start(&args, &data);
    let (status, body) = result(&server);
    assert_eq!(status, 503, "{body}");
    assert!(body.contains("cannot decrypt"), "{body}");
    assert_eq!(server.terminate(), Some(0));
}

#[test]
fn keys_gate_the_api_and_the_audit_log_catches_tampering() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let data_text = data.to_str().unwrap().to_string();
    let mut open = start(
        &["serve", "--open", "--listen", "127.0.0.1:0", "--no-workers"],
        &data,
    );
    assert!(
        open.log_text().contains("WARNING: OPEN MODE"),
        "{}",
        open.log_text()
    );
    assert_eq!(open.terminate(), Some(0));

    let mut server = start(&["serve", "--listen", "127.0.0.1:0", "--no-workers"], &data);
    assert!(
        server.log_text().contains("no API keys yet"),
        "{}",
        server.log_text()
    );
    let get = |token: &str, path: &str| {
        let mut request = common::service::agent().get(&format!("{}{path}", server.base));
        if !token.is_empty() {
            request = request.header("authorization", &format!("Bearer {token}"));
        }
        let mut response = request.call().unwrap();
        (
            response.status().as_u16(),
            response.body_mut().read_to_string().unwrap(),
        )
    };
    assert_eq!(get("", "/v1/jobs").0, 401);
    let reader = create_key(&data, "acme", "reader");
    let admin = create_key(&data, "ops", "admin");
    assert_eq!(
        get(&reader, "/v1/jobs").0,
        200,
        "a key made while the server runs works at once"
    );
    assert_eq!(get(&reader, "/v1/keys").0, 403);

    let listed = vttiro(&["keys", "list", "--data-dir", &data_text, "--json"], &[]);
    let keys: Value = serde_json::from_slice(&listed.stdout).unwrap();
    let reader_id = keys
        .as_array()
        .unwrap()
        .iter()
        .find(|k| k["tenant"] == "acme")
        .unwrap()["id"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(
        !String::from_utf8_lossy(&listed.stdout).contains(&reader),
        "lists never show tokens"
    );
    let revoked = vttiro(
        &["keys", "revoke", "--data-dir", &data_text, &reader_id],
        &[],
    );
    assert!(revoked.status.success());
    assert_eq!(
        get(&reader, "/v1/jobs").0,
        401,
        "revoked in the running server at once"
    );
    let missing = vttiro(
        &["keys", "revoke", "--data-dir", &data_text, "key_nope"],
        &[],
    );
    assert_eq!(missing.status.code(), Some(50));
    let bad_role = vttiro(
        &[
            "keys",
            "create",
            "--data-dir",
            &data_text,
            "--tenant",
            "acme",
            "--role",
            "owner",
        ],
        &[],
    );
    assert_eq!(bad_role.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&bad_role.stderr).contains("--role owner"));
    let (status, verdict) = get(&admin, "/v1/audit/verify");
    assert_eq!(status, 200);
    assert_eq!(
        serde_json::from_str::<Value>(&verdict).unwrap()["intact"],
        true
    );
    assert_eq!(server.terminate(), Some(0));

    let verify = || vttiro(&["audit", "verify", "--data-dir", &data_text], &[]);
    let intact = verify();
    assert!(
        intact.status.success(),
        "{}",
        String::from_utf8_lossy(&intact.stderr)
    );
    let export = vttiro(&["audit", "export", "--data-dir", &data_text], &[]);
    let entries: Vec<Value> = String::from_utf8_lossy(&export.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    for action in [
        "auth.failure",
        "key.create",
        "key.revoke",
        "job.list",
        "audit.read",
    ] {
        assert!(
            entries.iter().any(|e| e["action"] == action),
            "no {action}: {entries:#?}"
        );
    }
    // Someone with the database file rewrites history: the chain says where.
    let sql = "DROP TRIGGER audit_no_update; UPDATE audit SET outcome = 'ok' WHERE action = 'auth.failure';";
    let edit = Command::new("python3")
        .args(["-c", "import sqlite3,sys; c=sqlite3.connect(sys.argv[1]); c.executescript(sys.argv[2]); c.commit()"])
        .arg(data.join("auth.db"))
        .arg(sql)
        .status()
        .unwrap();
    assert!(edit.success());
    let tampered = verify();
    assert_eq!(tampered.status.code(), Some(53));
    let message = String::from_utf8_lossy(&tampered.stderr);
    assert!(message.contains("audit log tampered: entry"), "{message}");
}

#[test]
fn a_worker_process_serves_its_metrics_to_scrapers_with_a_metrics_key() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let scraper = create_key(&data, "ops", "metrics");
    let reader = create_key(&data, "ops", "reader");
    let mut worker = start(
        &[
            "worker",
            "--workers",
            "2",
            "--metrics-listen",
            "127.0.0.1:0",
        ],
        &data,
    );
    let log = worker.log_text();
    let url = log
        .split("metrics at ")
        .nth(1)
        .and_then(|rest| rest.split_whitespace().next())
        .unwrap_or_else(|| panic!("no metrics address in {log}"))
        .to_string();
    let scrape = |token: &str| {
        let mut request = common::service::agent().get(&url);
        if !token.is_empty() {
            request = request.header("authorization", &format!("Bearer {token}"));
        }
        let mut response = request.call().unwrap();
        (
            response.status().as_u16(),
            response.body_mut().read_to_string().unwrap(),
        )
    };
    assert_eq!(scrape("").0, 401);
    assert_eq!(scrape(&reader).0, 403);
    let (status, text) = scrape(&scraper);
    assert_eq!(status, 200, "{text}");
    assert!(text.contains("vttiro_workers{state=\"idle\"} 2"), "{text}");
    assert!(
        text.contains("vttiro_queue_jobs{state=\"queued\"} 0"),
        "{text}"
    );
    assert_eq!(worker.terminate(), Some(0));
}
