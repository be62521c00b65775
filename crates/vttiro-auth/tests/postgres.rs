//! The same key, usage, policy and audit store on a real PostgreSQL server (Debian's
//! package, started privately on 127.0.0.1), as API and worker processes on several
//! machines share it: two handles stand for two processes.

use std::sync::Arc;

use vttiro_auth::{AuditRecord, AuthDb, AuthError, NewKey, Role, TenantPolicy};
use vttiro_fixtures::{postgres_database, PostgresDatabase};

const SECRET: [u8; 32] = [7; 32];
const NOW: i64 = 1_790_000_000_000;

fn connect(database: &PostgresDatabase) -> AuthDb {
    AuthDb::connect(&database.url, None, &SECRET).unwrap()
}

fn new_key(tenant: &str, role: Role) -> NewKey {
    NewKey {
        name: format!("{tenant} {role}"),
        tenant: tenant.into(),
        role,
        expires_at: None,
        requests_per_minute: Some(120),
        audio_minutes_per_day: None,
    }
}

fn record(actor: &str, i: usize) -> AuditRecord {
    AuditRecord {
        actor: actor.into(),
        tenant: Some("acme".into()),
        action: "job.read".into(),
        target: Some(format!("job_{i}")),
        source: Some("10.0.0.7".into()),
        outcome: "ok".into(),
        detail: None,
    }
}

#[test]
fn keys_made_by_one_process_work_and_die_in_another() {
    let database = postgres_database();
    let (api, cli) = (connect(&database), connect(&database));
    let (key, token) = cli
        .create_key(&new_key("acme", Role::Submitter), NOW)
        .unwrap();
    let principal = api.verify_key(&token, NOW).unwrap();
    assert_eq!(
        (
            principal.id.as_str(),
            principal.tenant.as_str(),
            principal.role
        ),
        (key.id.as_str(), "acme", Role::Submitter)
    );
    assert_eq!(principal.requests_per_minute, Some(120));
    // Only the digest is stored.
    // The secret is base64url, which may itself hold '_': it is all that follows the id.
    let secret_part = token
        .strip_prefix(&format!("vt_{}_", &key.id[4..]))
        .unwrap();
    assert_eq!(secret_part.len(), 43);
    let dump = database.psql("SELECT encode(digest, 'hex'), id, name FROM api_keys");
    assert!(!dump.contains(secret_part));
    // Another server secret accepts nothing.
    let other = AuthDb::connect(&database.url, None, &[9; 32]).unwrap();
    assert!(matches!(
        other.verify_key(&token, NOW),
        Err(AuthError::UnknownKey)
    ));
    cli.create_key(&new_key("globex", Role::Reader), NOW + 1)
        .unwrap();
    assert_eq!(api.list_keys(Some("acme")).unwrap().len(), 1);
    assert_eq!(api.list_keys(None).unwrap().len(), 2);
    // Revoked in one process, refused at once in the other.
    cli.revoke_key(&key.id, NOW + 5).unwrap();
    assert!(matches!(api.verify_key(&token, NOW + 6), Err(AuthError::Revoked(id)) if id == key.id));
    assert!(matches!(
        cli.revoke_key("key_nope", NOW),
        Err(AuthError::KeyNotFound(_))
    ));
    // Opening again applies no migration twice.
    drop(connect(&database));
    assert_eq!(
        database
            .psql("SELECT count(*) FROM auth_schema_migrations")
            .trim(),
        "1"
    );
}

/// Two processes, four threads each, appending to the audit chain and adding usage at
/// once: one unbroken chain, every entry numbered once, and exact usage totals.
#[test]
fn concurrent_processes_keep_one_audit_chain_and_exact_usage() {
    let database = postgres_database();
    let handles = [Arc::new(connect(&database)), Arc::new(connect(&database))];
    let day = vttiro_auth::utc_day(NOW);
    let threads: Vec<_> = (0..8)
        .map(|t| {
            let db = handles[t % 2].clone();
            std::thread::spawn(move || {
                for i in 0..25 {
                    db.append_audit(&record(&format!("key_{t}"), i), NOW + i as i64)
                        .unwrap();
                    db.add_audio("key_shared", day, 1_000).unwrap();
                }
            })
        })
        .collect();
    for thread in threads {
        thread.join().unwrap();
    }
    let report = handles[0].verify_audit().unwrap();
    assert!(report.intact(), "{report:?}");
    assert_eq!(report.entries, 200);
    assert_eq!(
        database
            .psql("SELECT min(seq), max(seq), count(DISTINCT prev_hash) FROM audit")
            .trim(),
        "1|200|200"
    );
    assert_eq!(handles[1].audio_used("key_shared", day).unwrap(), 200_000);
}

#[test]
fn the_audit_log_refuses_edits_and_the_chain_catches_what_gets_past() {
    let database = postgres_database();
    let db = connect(&database);
    for i in 0..5 {
        db.append_audit(&record("key_abc", i), NOW + i as i64)
            .unwrap();
    }
    for statement in [
        "UPDATE audit SET outcome = 'forbidden' WHERE seq = 3",
        "DELETE FROM audit WHERE seq = 3",
        "TRUNCATE audit",
    ] {
        let refused = database.try_psql(statement).unwrap_err();
        assert!(
            refused.contains("the audit log is append-only"),
            "{statement}: {refused}"
        );
    }
    // A superuser who disables the triggers is caught by the chain.
    database.psql("ALTER TABLE audit DISABLE TRIGGER audit_no_change");
    database.psql("UPDATE audit SET target = 'job_x' WHERE seq = 3");
    let report = db.verify_audit().unwrap();
    assert_eq!(report.first_broken, Some(3));
    assert!(report.reason.unwrap().contains("content"));
    // Entry 3 is the third record, job_2.
    database.psql("UPDATE audit SET target = 'job_2' WHERE seq = 3");
    assert!(db.verify_audit().unwrap().intact());
    database.psql("DELETE FROM audit WHERE seq = 2");
    let report = db.verify_audit().unwrap();
    assert_eq!(report.first_broken, Some(3));
    assert!(report.reason.unwrap().contains("missing"));
}

#[test]
fn tenant_policies_and_backups_on_postgres() {
    let database = postgres_database();
    let db = connect(&database);
    let policy = TenantPolicy {
        tenant: "acme".into(),
        media_retention_hours: Some(24),
        result_retention_days: None,
    };
    db.set_tenant_policy(&policy).unwrap();
    db.set_tenant_policy(&TenantPolicy {
        result_retention_days: Some(30),
        ..policy.clone()
    })
    .unwrap();
    assert_eq!(
        connect(&database).tenant_policies().unwrap(),
        [TenantPolicy {
            result_retention_days: Some(30),
            ..policy
        }]
    );
    let dir = tempfile::tempdir().unwrap();
    let err = db.snapshot(&dir.path().join("auth.db")).unwrap_err();
    assert!(err.to_string().contains("pg_dump"), "{err}");
    let err = AuthDb::connect("postgres://postgres@127.0.0.1:1/nowhere", None, &SECRET)
        .err()
        .expect("nothing listens on port 1");
    assert!(err.to_string().contains("postgres"), "{err}");
    assert!(
        !err.to_string().contains("postgres://"),
        "the URL stays out: {err}"
    );
}
