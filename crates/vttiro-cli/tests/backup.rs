//! The backup drill: jobs run, the data directory is backed up while the service is up,
//! the directory is destroyed, the backup is restored, and every job, result, key and
//! audit entry comes back byte for byte. A damaged backup is refused before anything is
//! written.

mod common;

use std::path::Path;
use std::process::{Command, Output};
use std::time::Duration;

use common::service::{create_key, get_json_as, start, submit_as, wait_final_as};
use serde_json::{json, Value};

fn vttiro(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_vttiro"))
        .args(args)
        .output()
        .expect("run vttiro")
}

fn result(base: &str, token: &str, id: &str) -> Vec<u8> {
    let mut response = common::service::agent()
        .get(&format!("{base}/v1/jobs/{id}/result?format=vtt"))
        .header("authorization", &format!("Bearer {token}"))
        .call()
        .unwrap();
    assert_eq!(response.status().as_u16(), 200);
    response.body_mut().read_to_vec().unwrap()
}

fn text(path: &Path) -> String {
    path.to_string_lossy().into_owned()
}

#[test]
fn a_backup_taken_live_restores_every_job_result_and_key() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let token = create_key(&data, "acme", "submitter");
    let mut server = start(
        &["serve", "--listen", "127.0.0.1:0", "--workers", "1"],
        &data,
    );
    let jfk = vttiro_media::decode(&vttiro_fixtures::jfk_wav(), &Default::default()).unwrap();
    let clip = vttiro_media::encode_wav(&jfk.samples[..16_000 * 4]);
    let mut before = Vec::new();
    for _ in 0..3 {
        let (status, job) = submit_as(
            &server.base,
            Some(&token),
            &clip,
            &json!({"formats": ["vtt"]}),
        );
        assert_eq!(status, 202, "{job}");
        let id = job["id"].as_str().unwrap().to_string();
        let done = wait_final_as(&server.base, Some(&token), &id, Duration::from_secs(120));
        assert_eq!(done["state"], "succeeded", "{done}");
        before.push((id.clone(), done, result(&server.base, &token, &id)));
    }

    // Taken while the service runs.
    let backup = dir.path().join("backup");
    let made = vttiro(&[
        "backup",
        "--data-dir",
        &text(&data),
        "--out",
        &text(&backup),
    ]);
    assert!(
        made.status.success(),
        "{}",
        String::from_utf8_lossy(&made.stderr)
    );
    let manifest: Value =
        serde_json::from_slice(&std::fs::read(backup.join("manifest.json")).unwrap()).unwrap();
    let listed: Vec<&str> = manifest["files"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["path"].as_str().unwrap())
        .collect();
    for expected in ["jobs.db", "auth.db", "auth-secret", "webhook-secret"] {
        assert!(listed.contains(&expected), "{expected} not in {listed:?}");
    }
    assert!(listed.iter().filter(|p| p.ends_with("result.vtt")).count() == 3);
    assert_eq!(server.terminate(), Some(0));
    let audit_before = vttiro(&["audit", "export", "--data-dir", &text(&data)]).stdout;

    // Disaster, then recovery into the same place.
    std::fs::remove_dir_all(&data).unwrap();
    let restored = vttiro(&[
        "restore",
        "--from",
        &text(&backup),
        "--data-dir",
        &text(&data),
    ]);
    assert!(
        restored.status.success(),
        "{}",
        String::from_utf8_lossy(&restored.stderr)
    );
    let verify = vttiro(&["audit", "verify", "--data-dir", &text(&data)]);
    assert!(
        verify.status.success(),
        "{}",
        String::from_utf8_lossy(&verify.stderr)
    );
    let audit_after = vttiro(&["audit", "export", "--data-dir", &text(&data)]).stdout;
    assert!(
        audit_after.starts_with(&audit_before[..audit_before.len().min(audit_after.len())])
            || audit_before.starts_with(&audit_after),
        "the audit log came back as it was backed up"
    );

    let mut server = start(
        &["serve", "--listen", "127.0.0.1:0", "--workers", "1"],
        &data,
    );
    for (id, job, vtt) in &before {
        // The same key works (the server secret came back), the job is as it was, and the
        // result is the same bytes.
        let (status, now) = get_json_as(&format!("{}/v1/jobs/{id}", server.base), &token);
        assert_eq!(status, 200);
        assert_eq!(&now, job);
        assert_eq!(&result(&server.base, &token, id), vtt);
    }
    assert_eq!(server.terminate(), Some(0));

    // A damaged backup is refused, and the target is left alone.
    let result_file = manifest["files"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["path"].as_str().unwrap())
        .find(|p| p.ends_with("result.vtt"))
        .unwrap()
        .to_string();
    std::fs::write(backup.join(&result_file), b"WEBVTT\n\ntampered").unwrap();
    let elsewhere = dir.path().join("elsewhere");
    let refused = vttiro(&[
        "restore",
        "--from",
        &text(&backup),
        "--data-dir",
        &text(&elsewhere),
    ]);
    assert_eq!(refused.status.code(), Some(53));
    let message = String::from_utf8_lossy(&refused.stderr);
    assert!(
        message.contains(&result_file) && message.contains("damaged"),
        "{message}"
    );
    assert!(!elsewhere.exists());
    // And a restore never overwrites a data directory in use.
    let occupied = vttiro(&[
        "restore",
        "--from",
        &text(&backup),
        "--data-dir",
        &text(&data),
    ]);
    assert_eq!(occupied.status.code(), Some(2));
}
