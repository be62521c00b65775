//! The embedded job store: one SQLite file in WAL mode with `synchronous=FULL`, so a
//! committed transition survives a killed process or a power cut. Every operation is one
//! `BEGIN IMMEDIATE` transaction, which excludes every other writer (so no row locks are
//! needed); several processes may share the file.

use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rusqlite::{types::ValueRef, Connection, TransactionBehavior};

use crate::model::*;
use crate::sql::{Backend, Dialect, Row, Tx, Val};
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

pub struct Sqlite {
    connection: Mutex<Connection>,
}

impl SqlQueue<Sqlite> {
    pub fn open(
        path: &Path,
        clock: Arc<dyn Clock>,
        policy: QueuePolicy,
    ) -> Result<SqliteQueue, QueueError> {
        let mut connection = Connection::open(path)
            .map_err(|e| QueueError::Storage(format!("{}: {e}", path.display())))?;
        connection.busy_timeout(Duration::from_secs(10))?;
        connection.pragma_update(None, "journal_mode", "WAL")?;
        connection.pragma_update(None, "synchronous", "FULL")?;
        connection.pragma_update(None, "foreign_keys", "ON")?;
        connection.execute_batch(SCHEMA)?;
        migrate(&mut connection)?;
        Ok(SqlQueue {
            backend: Sqlite {
                connection: Mutex::new(connection),
            },
            clock,
            policy,
        })
    }

    /// Writes a consistent copy of the live database to `target` (which must not exist):
    /// `VACUUM INTO` reads one snapshot while other processes keep writing.
    pub fn snapshot(&self, target: &Path) -> Result<(), QueueError> {
        let connection = self
            .backend
            .connection
            .lock()
            .map_err(|_| QueueError::Storage("connection lock poisoned".into()))?;
        connection
            .execute("VACUUM INTO ?1", [target.to_string_lossy()])
            .map_err(|e| QueueError::Storage(format!("{}: {e}", target.display())))?;
        Ok(())
    }
}

/// Brings a database made by an older version up to [`SCHEMA`]. Each step checks before
/// it alters, inside one immediate transaction, so processes opening the same old file
/// at once add each column exactly once.
fn migrate(connection: &mut Connection) -> Result<(), QueueError> {
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

/// `$1` placeholders (the queue's) as SQLite's `?1`.
fn sqlite_placeholders(sql: &str) -> String {
    sql.replace('$', "?")
}

fn to_sqlite(value: &Val) -> rusqlite::types::Value {
    use rusqlite::types::Value;
    match value {
        Val::Null => Value::Null,
        Val::Int(v) => Value::Integer(*v),
        Val::Real(v) => Value::Real(*v),
        Val::Text(v) => Value::Text(v.clone()),
        Val::Blob(v) => Value::Blob(v.clone()),
    }
}

fn row_values(row: &rusqlite::Row<'_>, columns: usize) -> rusqlite::Result<Row> {
    (0..columns)
        .map(|i| {
            Ok(match row.get_ref(i)? {
                ValueRef::Null => Val::Null,
                ValueRef::Integer(v) => Val::Int(v),
                ValueRef::Real(v) => Val::Real(v),
                ValueRef::Text(v) => Val::Text(String::from_utf8_lossy(v).into_owned()),
                ValueRef::Blob(v) => Val::Blob(v.to_vec()),
            })
        })
        .collect()
}

struct SqliteTx<'a>(&'a rusqlite::Transaction<'a>);

impl Tx for SqliteTx<'_> {
    fn execute(&mut self, sql: &str, params: &[Val]) -> Result<u64, QueueError> {
        let params: Vec<_> = params.iter().map(to_sqlite).collect();
        Ok(self.0.execute(
            &sqlite_placeholders(sql),
            rusqlite::params_from_iter(params),
        )? as u64)
    }

    fn query(&mut self, sql: &str, params: &[Val]) -> Result<Vec<Row>, QueueError> {
        let params: Vec<_> = params.iter().map(to_sqlite).collect();
        let mut statement = self.0.prepare_cached(&sqlite_placeholders(sql))?;
        let columns = statement.column_count();
        let rows = statement.query_map(rusqlite::params_from_iter(params), |row| {
            row_values(row, columns)
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }
}

impl Backend for Sqlite {
    const DIALECT: Dialect = Dialect {
        lock_rows: "",
        skip_locked: "",
        serialize_submissions: None,
    };

    fn transaction<T>(
        &self,
        clock: &dyn Clock,
        body: &mut dyn FnMut(&mut dyn Tx, Millis) -> Result<T, QueueError>,
    ) -> Result<T, QueueError> {
        let mut connection = self
            .connection
            .lock()
            .map_err(|_| QueueError::Storage("connection lock poisoned".into()))?;
        let transaction = connection.transaction_with_behavior(TransactionBehavior::Immediate)?;
        let now = clock.now_ms();
        let value = body(&mut SqliteTx(&transaction), now)?;
        transaction.commit()?;
        Ok(value)
    }
}
