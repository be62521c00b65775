//! The embedded job store: one SQLite file in WAL mode with `synchronous=FULL`, so a
//! committed transition survives a killed process or a power cut. Every operation is one
//! `BEGIN IMMEDIATE` transaction, which excludes every other writer (so no row locks are
//! needed); several processes may share the file.

use std::path::Path;
use std::sync::Arc;

use rusqlite::{Connection, TransactionBehavior};
use vttiro_sql::Sqlite;

use crate::model::*;
use crate::{QueuePolicy, SqlQueue};

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS jobs (
    id TEXT PRIMARY KEY,
    tenant TEXT NOT NULL,
    state TEXT NOT NULL,
    spec TEXT NOT NULL,
    media TEXT,
    idempotency_key TEXT,
    fingerprint TEXT NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0,
    max_attempts INTEGER NOT NULL,
    run_after INTEGER NOT NULL,
    lease_id TEXT,
    worker TEXT,
    lease_expires_at INTEGER,
    cancel_requested INTEGER NOT NULL DEFAULT 0,
    progress REAL NOT NULL DEFAULT 0,
    stage TEXT,
    error_code TEXT,
    error_message TEXT,
    result TEXT,
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL,
    started_at INTEGER,
    finished_at INTEGER,
    trace_parent TEXT
);
CREATE UNIQUE INDEX IF NOT EXISTS jobs_idempotency ON jobs(tenant, idempotency_key)
    WHERE idempotency_key IS NOT NULL;
CREATE INDEX IF NOT EXISTS jobs_runnable ON jobs(state, run_after, id);
CREATE INDEX IF NOT EXISTS jobs_leases ON jobs(state, lease_expires_at);
CREATE TABLE IF NOT EXISTS checkpoints (
    job_id TEXT NOT NULL REFERENCES jobs(id) ON DELETE CASCADE,
    key TEXT NOT NULL,
    data BLOB NOT NULL,
    at INTEGER NOT NULL,
    PRIMARY KEY (job_id, key)
);
CREATE TABLE IF NOT EXISTS webhooks (
    id TEXT PRIMARY KEY,
    job_id TEXT NOT NULL REFERENCES jobs(id) ON DELETE CASCADE,
    url TEXT NOT NULL,
    event TEXT NOT NULL,
    payload TEXT NOT NULL,
    state TEXT NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0,
    next_at INTEGER NOT NULL,
    lease_until INTEGER,
    last_error TEXT,
    created_at INTEGER NOT NULL,
    delivered_at INTEGER
);
CREATE INDEX IF NOT EXISTS webhooks_due ON webhooks(state, next_at);
CREATE TABLE IF NOT EXISTS events (
    job_id TEXT NOT NULL REFERENCES jobs(id) ON DELETE CASCADE,
    seq INTEGER NOT NULL,
    at INTEGER NOT NULL,
    kind TEXT NOT NULL,
    data TEXT NOT NULL,
    PRIMARY KEY (job_id, seq)
);
";

/// The queue on one SQLite file.
pub type SqliteQueue = SqlQueue<Sqlite>;

impl SqlQueue<Sqlite> {
    pub fn open(
        path: &Path,
        clock: Arc<dyn Clock>,
        policy: QueuePolicy,
    ) -> Result<SqliteQueue, QueueError> {
        let backend = Sqlite::open(path)?;
        backend.with_connection(|connection| {
            connection.execute_batch(SCHEMA)?;
            migrate(connection)
        })?;
        Ok(SqlQueue {
            backend,
            clock,
            policy,
        })
    }

    /// Writes a consistent copy of the live database to `target` (which must not exist):
    /// `VACUUM INTO` reads one snapshot while other processes keep writing.
    pub fn snapshot(&self, target: &Path) -> Result<(), QueueError> {
        Ok(self.backend.snapshot(target)?)
    }
}

/// Brings a database made by an older version up to [`SCHEMA`]. Each step checks before
/// it alters, inside one immediate transaction, so processes opening the same old file
/// at once add each column exactly once.
fn migrate(connection: &mut Connection) -> rusqlite::Result<()> {
    let tx = connection.transaction_with_behavior(TransactionBehavior::Immediate)?;
    let has_trace_parent: bool = tx.query_row(
        "SELECT COUNT(*) > 0 FROM pragma_table_info('jobs') WHERE name = 'trace_parent'",
        [],
        |row| row.get(0),
    )?;
    if !has_trace_parent {
        tx.execute_batch("ALTER TABLE jobs ADD COLUMN trace_parent TEXT")?;
    }
    tx.commit()?;
    Ok(())
}
