//! The SQLite file behind keys, quotas, tenant policies and the audit log.

use std::path::Path;
use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

use rusqlite::{params, Connection, OptionalExtension};
use serde::Serialize;

use crate::{AuthError, Millis};

const SCHEMA: &str = "
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

pub struct AuthDb {
    connection: Mutex<Connection>,
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

impl AuthDb {
    /// Opens (creating) the database at `path`; `secret` is the server's key-digest secret
    /// (at least 32 bytes).
    pub fn open(path: &Path, secret: &[u8]) -> Result<AuthDb, AuthError> {
        if secret.len() < 32 {
            return Err(AuthError::Invalid {
                what: "auth secret",
                reason: format!("{} bytes; at least 32 are needed", secret.len()),
            });
        }
        let connection = Connection::open(path)
            .map_err(|e| AuthError::Db(format!("{}: {e}", path.display())))?;
        connection.busy_timeout(Duration::from_secs(10))?;
        connection.pragma_update(None, "journal_mode", "WAL")?;
        connection.pragma_update(None, "synchronous", "FULL")?;
        connection.execute_batch(SCHEMA)?;
        Ok(AuthDb {
            connection: Mutex::new(connection),
            secret: ring::hmac::Key::new(ring::hmac::HMAC_SHA256, secret),
        })
    }

    /// Writes a consistent copy of the live database to `target` (which must not exist).
    pub fn snapshot(&self, target: &Path) -> Result<(), AuthError> {
        self.lock()
            .execute("VACUUM INTO ?1", [target.to_string_lossy()])
            .map_err(|e| AuthError::Db(format!("{}: {e}", target.display())))?;
        Ok(())
    }

    pub(crate) fn lock(&self) -> MutexGuard<'_, Connection> {
        self.connection
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Audio milliseconds `principal` has had transcribed on UTC day `day` (days since the epoch).
    pub fn audio_used(&self, principal: &str, day: i64) -> Result<i64, AuthError> {
        Ok(self
            .lock()
            .query_row(
                "SELECT audio_ms FROM audio_usage WHERE principal = ?1 AND day = ?2",
                params![principal, day],
                |row| row.get(0),
            )
            .optional()?
            .unwrap_or(0))
    }

    /// Adds `audio_ms` to `principal`'s usage on `day`; returns the new total.
    pub fn add_audio(&self, principal: &str, day: i64, audio_ms: i64) -> Result<i64, AuthError> {
        Ok(self.lock().query_row(
            "INSERT INTO audio_usage (principal, day, audio_ms) VALUES (?1, ?2, ?3)
             ON CONFLICT (principal, day) DO UPDATE SET audio_ms = audio_ms + excluded.audio_ms
             RETURNING audio_ms",
            params![principal, day, audio_ms.max(0)],
            |row| row.get(0),
        )?)
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
        self.lock().execute(
            "INSERT INTO tenant_policies (tenant, media_retention_hours, result_retention_days)
             VALUES (?1, ?2, ?3)
             ON CONFLICT (tenant) DO UPDATE SET
                 media_retention_hours = excluded.media_retention_hours,
                 result_retention_days = excluded.result_retention_days",
            params![
                policy.tenant,
                policy.media_retention_hours,
                policy.result_retention_days
            ],
        )?;
        Ok(())
    }

    pub fn tenant_policies(&self) -> Result<Vec<TenantPolicy>, AuthError> {
        let connection = self.lock();
        let mut statement = connection.prepare(
            "SELECT tenant, media_retention_hours, result_retention_days
             FROM tenant_policies ORDER BY tenant",
        )?;
        let rows = statement.query_map([], |row| {
            Ok(TenantPolicy {
                tenant: row.get(0)?,
                media_retention_hours: row.get(1)?,
                result_retention_days: row.get(2)?,
            })
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }
}

/// The UTC day `at` falls on, as days since the epoch (quotas reset at midnight UTC).
pub fn utc_day(at: Millis) -> i64 {
    at.div_euclid(86_400_000)
}
