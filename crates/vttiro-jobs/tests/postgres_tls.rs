//! The PostgreSQL queue over TLS (`sslmode=require`): the server's certificate is checked
//! against the CA file given, the session really is encrypted (the server says so in
//! `pg_stat_ssl`), and a server whose certificate another CA signed is refused.

use std::process::Command;
use std::sync::Arc;

use serde_json::json;
use vttiro_jobs::*;

fn new_job() -> NewJob {
    NewJob {
        tenant: "acme".into(),
        spec: json!({}),
        media: None,
        idempotency_key: None,
        fingerprint: "f".into(),
        max_attempts: None,
        trace_parent: None,
    }
}

#[test]
fn the_queue_speaks_tls_to_a_server_its_ca_vouches_for_and_refuses_others() {
    let dir = tempfile::tempdir().unwrap();
    let good = vttiro_fixtures::test_certificates(dir.path(), "good");
    let other = vttiro_fixtures::test_certificates(dir.path(), "other");
    let server = vttiro_fixtures::PostgresServer::start_tls(&good.server_cert, &good.server_key);
    let url = format!("{}/postgres?sslmode=require", server.url());
    let queue = PostgresQueue::connect_with(
        &url,
        Some(&good.ca),
        Arc::new(SystemClock),
        QueuePolicy::default(),
    )
    .unwrap();
    let job = queue.submit(new_job()).unwrap().job().clone();
    let lease = queue.claim("w").unwrap().unwrap();
    assert_eq!(lease.job.id, job.id);
    queue.succeed(&lease, json!({})).unwrap();

    // The server's own view: sessions that are encrypted (psql itself connects in the clear).
    let encrypted = Command::new("psql")
        .arg(format!(
            "host=127.0.0.1 port={} user=postgres dbname=postgres sslmode=disable",
            server.port
        ))
        .args(["-qAtc", "SELECT count(*) FROM pg_stat_ssl WHERE ssl"])
        .output()
        .unwrap();
    let count: u32 = String::from_utf8_lossy(&encrypted.stdout)
        .trim()
        .parse()
        .unwrap();
    assert!(count >= 1, "no encrypted session on the server");

    let refused = PostgresQueue::connect_with(
        &url,
        Some(&other.ca),
        Arc::new(SystemClock),
        QueuePolicy::default(),
    )
    .err()
    .expect("a certificate from another CA is refused");
    assert!(refused.to_string().contains("postgres:"), "{refused}");
    let missing = PostgresQueue::connect_with(
        &url,
        Some(&dir.path().join("nothing.pem")),
        Arc::new(SystemClock),
        QueuePolicy::default(),
    )
    .err()
    .unwrap();
    assert!(missing.to_string().contains("nothing.pem"), "{missing}");
}
