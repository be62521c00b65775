//! The database behind keys, quotas, tenant policies and the audit log: `auth.db` (SQLite)
//! beside the job queue, or the queue's PostgreSQL database when the service scales out,
//! through the same statements (vttiro-sql).

use std::path::Path;

use serde::Serialize;
use vttiro_sql::{vals, Backend, Postgres, RowExt, SqlError, Sqlite, Tx};

use crate::{AuthError, Millis};

/// Serialises audit appends on PostgreSQL (SQLite's write lock already does).
pub(crate) const AUDIT_LOCK: i64 = 0x7674_7469_726f_0002;
const MIGRATION_LOCK: i64 = 0x7674_7469_726f_0003;

const SQLITE_SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS api_keys (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    tenant TEXT NOT NULL,
    role TEXT NOT NULL,
    digest BLOB NOT NULL,
    created_at INTEGER NOT NULL,
    expires_at INTEGER,
    revoked_at INTEGER,
    last_used_at INTEGER,
    requests_per_minute INTEGER,
    audio_minutes_per_day INTEGER
);
CREATE TABLE IF NOT EXISTS audio_usage (
    principal TEXT NOT NULL,
    day INTEGER NOT NULL,
    audio_ms INTEGER NOT NULL,
    PRIMARY KEY (principal, day)
);
CREATE TABLE IF NOT EXISTS tenant_policies (
    tenant TEXT PRIMARY KEY,
    media_retention_hours INTEGER,
    result_retention_days INTEGER
);
CREATE TABLE IF NOT EXISTS audit (
    seq INTEGER PRIMARY KEY,
    at INTEGER NOT NULL,
    actor TEXT NOT NULL,
    tenant TEXT,
    action TEXT NOT NULL,
    target TEXT,
    source TEXT,
    outcome TEXT NOT NULL,
    detail TEXT,
    prev_hash TEXT NOT NULL,
    hash TEXT NOT NULL
);
-- The chain makes edits detectable; these make them deliberate: nothing short of
-- dropping the triggers (or editing the file) can change or remove an entry.
CREATE TRIGGER IF NOT EXISTS audit_no_update BEFORE UPDATE ON audit
BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END;
CREATE TRIGGER IF NOT EXISTS audit_no_delete BEFORE DELETE ON audit
BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END;
";

/// The same tables on PostgreSQL, as expand-only migrations (`auth_schema_migrations`).
const POSTGRES_MIGRATIONS: &[(i64, &str)] = &[(
    1,
    "
CREATE TABLE api_keys (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    tenant TEXT NOT NULL,
    role TEXT NOT NULL,
    digest BYTEA NOT NULL,
    created_at BIGINT NOT NULL,
    expires_at BIGINT,
    revoked_at BIGINT,
    last_used_at BIGINT,
    requests_per_minute BIGINT,
    audio_minutes_per_day BIGINT
);
CREATE TABLE audio_usage (
    principal TEXT NOT NULL,
    day BIGINT NOT NULL,
    audio_ms BIGINT NOT NULL,
    PRIMARY KEY (principal, day)
);
CREATE TABLE tenant_policies (
    tenant TEXT PRIMARY KEY,
    media_retention_hours BIGINT,
    result_retention_days BIGINT
);
CREATE TABLE audit (
    seq BIGINT PRIMARY KEY,
    at BIGINT NOT NULL,
    actor TEXT NOT NULL,
    tenant TEXT,
    action TEXT NOT NULL,
    target TEXT,
    source TEXT,
    outcome TEXT NOT NULL,
    detail TEXT,
    prev_hash TEXT NOT NULL,
    hash TEXT NOT NULL
);
CREATE FUNCTION vttiro_audit_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN RAISE EXCEPTION 'the audit log is append-only'; END $$;
CREATE TRIGGER audit_no_change BEFORE UPDATE OR DELETE ON audit
    FOR EACH ROW EXECUTE FUNCTION vttiro_audit_append_only();
CREATE TRIGGER audit_no_truncate BEFORE TRUNCATE ON audit
    FOR EACH STATEMENT EXECUTE FUNCTION vttiro_audit_append_only();
",
)];

enum Db {
    Sqlite(Sqlite),
    Postgres(Box<Postgres>),
}

pub struct AuthDb {
    db: Db,
    /// The HMAC key API-key digests are made with; a stolen database without it cannot
    /// be used to check guesses offline.
    pub(crate) secret: ring::hmac::Key,
}

/// Per-tenant overrides of the server's retention; `None` keeps the server default.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct TenantPolicy {
    pub tenant: String,
    pub media_retention_hours: Option<u32>,
    pub result_retention_days: Option<u32>,
}

fn check_secret(secret: &[u8]) -> Result<ring::hmac::Key, AuthError> {
    if secret.len() < 32 {
        return Err(AuthError::Invalid {
            what: "auth secret",
            reason: format!("{} bytes; at least 32 are needed", secret.len()),
        });
    }
    Ok(ring::hmac::Key::new(ring::hmac::HMAC_SHA256, secret))
}

impl AuthDb {
    /// Opens (creating) the SQLite database at `path`; `secret` is the server's key-digest
    /// secret (at least 32 bytes).
    pub fn open(path: &Path, secret: &[u8]) -> Result<AuthDb, AuthError> {
        let secret = check_secret(secret)?;
        let sqlite = Sqlite::open(path)?;
        sqlite.with_connection(|connection| connection.execute_batch(SQLITE_SCHEMA))?;
        Ok(AuthDb {
            db: Db::Sqlite(sqlite),
            secret,
        })
    }

    /// Connects to the PostgreSQL database at `url` (TLS as for the job queue: `ca_file`
    /// or `sslmode=require`) and brings its tables up to date, so API and worker processes
    /// on any number of machines share keys, usage and one audit chain.
    pub fn connect(url: &str, ca_file: Option<&Path>, secret: &[u8]) -> Result<AuthDb, AuthError> {
        let secret = check_secret(secret)?;
        let postgres = Postgres::connect(url, ca_file)?;
        postgres.migrate(
            "auth_schema_migrations",
            MIGRATION_LOCK,
            POSTGRES_MIGRATIONS,
        )?;
        Ok(AuthDb {
            db: Db::Postgres(Box::new(postgres)),
            secret,
        })
    }

    /// Writes a consistent copy of the live SQLite database to `target` (which must not
    /// exist). PostgreSQL has its own tools (`pg_dump`, point-in-time recovery).
    pub fn snapshot(&self, target: &Path) -> Result<(), AuthError> {
        match &self.db {
            Db::Sqlite(sqlite) => Ok(sqlite.snapshot(target)?),
            Db::Postgres(_) => Err(AuthError::Db(
                "the auth tables are in PostgreSQL; back them up with pg_dump".into(),
            )),
        }
    }

    /// Runs `body` in one transaction (run again on PostgreSQL after a conflict).
    pub(crate) fn transaction<T>(
        &self,
        mut body: impl FnMut(&mut dyn Tx) -> Result<T, AuthError>,
    ) -> Result<T, AuthError> {
        // Time is the callers' argument here; the backends' clock is unused.
        let no_clock = || 0;
        match &self.db {
            Db::Sqlite(sqlite) => sqlite.transaction(&no_clock, &mut |tx, _| body(tx)),
            Db::Postgres(postgres) => postgres
                .as_ref()
                .transaction(&no_clock, &mut |tx, _| body(tx)),
        }
    }

    /// The statement that serialises transactions naming one lock id, where needed.
    pub(crate) fn serialize_sql(&self) -> Option<&'static str> {
        match &self.db {
            Db::Sqlite(_) => <Sqlite as Backend>::DIALECT.serialize,
            Db::Postgres(_) => <Postgres as Backend>::DIALECT.serialize,
        }
    }

    /// Audio milliseconds `principal` has had transcribed on UTC day `day` (days since the epoch).
    pub fn audio_used(&self, principal: &str, day: i64) -> Result<i64, AuthError> {
        self.transaction(|tx| {
            Ok(tx
                .query_one(
                    "SELECT audio_ms FROM audio_usage WHERE principal = $1 AND day = $2",
                    vals![principal, day],
                )?
                .map_or(0, |row| row.int(0)))
        })
    }

    /// Adds `audio_ms` to `principal`'s usage on `day`; returns the new total.
    pub fn add_audio(&self, principal: &str, day: i64, audio_ms: i64) -> Result<i64, AuthError> {
        self.transaction(|tx| {
            Ok(tx
                .query_one(
                    "INSERT INTO audio_usage (principal, day, audio_ms) VALUES ($1, $2, $3)
                     ON CONFLICT (principal, day)
                     DO UPDATE SET audio_ms = audio_usage.audio_ms + excluded.audio_ms
                     RETURNING audio_ms",
                    vals![principal, day, audio_ms.max(0)],
                )?
                .map_or(0, |row| row.int(0)))
        })
    }

    pub fn set_tenant_policy(&self, policy: &TenantPolicy) -> Result<(), AuthError> {
        if !crate::roles::valid_tenant(&policy.tenant) {
            return Err(AuthError::Invalid {
                what: "tenant",
                reason: format!(
                    "{:?}: use 1-64 lowercase letters, digits, '-' or '_'",
                    policy.tenant
                ),
            });
        }
        self.transaction(|tx| {
            tx.execute(
                "INSERT INTO tenant_policies (tenant, media_retention_hours, result_retention_days)
                 VALUES ($1, $2, $3)
                 ON CONFLICT (tenant) DO UPDATE SET
                     media_retention_hours = excluded.media_retention_hours,
                     result_retention_days = excluded.result_retention_days",
                vals![
                    policy.tenant.as_str(),
                    policy.media_retention_hours,
                    policy.result_retention_days
                ],
            )?;
            Ok(())
        })
    }

    pub fn tenant_policies(&self) -> Result<Vec<TenantPolicy>, AuthError> {
        self.transaction(|tx| {
            Ok(tx
                .query(
                    "SELECT tenant, media_retention_hours, result_retention_days
                     FROM tenant_policies ORDER BY tenant",
                    &[],
                )?
                .into_iter()
                .map(|row| TenantPolicy {
                    tenant: row.text(0),
                    media_retention_hours: small(row.opt_int(1)),
                    result_retention_days: small(row.opt_int(2)),
                })
                .collect())
        })
    }
}

/// A stored count that the schema only ever fills from a `u32`.
pub(crate) fn small(value: Option<i64>) -> Option<u32> {
    value.and_then(|v| u32::try_from(v).ok())
}

impl From<SqlError> for AuthError {
    fn from(e: SqlError) -> Self {
        AuthError::Db(e.0)
    }
}

/// The UTC day `at` falls on, as days since the epoch (quotas reset at midnight UTC).
pub fn utc_day(at: Millis) -> i64 {
    at.div_euclid(86_400_000)
}
