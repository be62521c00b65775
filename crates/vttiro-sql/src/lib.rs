//! vttiro-sql owns the one way vttiro's stores talk to a SQL database, so each store's
//! logic (the job queue, the key and audit store) is written once and runs on SQLite and
//! PostgreSQL alike: a transaction that executes statements and returns rows of plain
//! values ([`Tx`], [`Val`]), the few phrases the dialects spell differently ([`Dialect`]),
//! and the two backends — [`Sqlite`] (one file, WAL, immediate transactions, several
//! processes per file) and [`Postgres`] (a reconnecting pool, TLS with ring, transactions
//! rerun on serialization failures and deadlocks, versioned expand-only migrations,
//! `LISTEN/NOTIFY`). Statements are written with `$1`-style placeholders (PostgreSQL's);
//! the SQLite backend rewrites them to `?1`.
//!
//! It must not know what the stores keep: no table of theirs appears here.

mod postgres;
mod sqlite;

pub use crate::postgres::Postgres;
pub use crate::sqlite::Sqlite;

/// Milliseconds since the Unix epoch.
pub type Millis = i64;

/// A database failure, named in one line (never with the connection URL or a password).
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{0}")]
pub struct SqlError(pub String);

impl From<rusqlite::Error> for SqlError {
    fn from(e: rusqlite::Error) -> Self {
        SqlError(format!("sqlite: {e}"))
    }
}

/// One SQL value, bound as a parameter or read from a row.
#[derive(Debug, Clone, PartialEq)]
pub enum Val {
    Null,
    Int(i64),
    Real(f64),
    Text(String),
    Blob(Vec<u8>),
}

impl From<i64> for Val {
    fn from(v: i64) -> Self {
        Val::Int(v)
    }
}

impl From<u32> for Val {
    fn from(v: u32) -> Self {
        Val::Int(i64::from(v))
    }
}

impl From<f64> for Val {
    fn from(v: f64) -> Self {
        Val::Real(v)
    }
}

impl From<&str> for Val {
    fn from(v: &str) -> Self {
        Val::Text(v.to_string())
    }
}

impl From<String> for Val {
    fn from(v: String) -> Self {
        Val::Text(v)
    }
}

impl From<&String> for Val {
    fn from(v: &String) -> Self {
        Val::Text(v.clone())
    }
}

impl From<&[u8]> for Val {
    fn from(v: &[u8]) -> Self {
        Val::Blob(v.to_vec())
    }
}

impl<T: Into<Val>> From<Option<T>> for Val {
    fn from(v: Option<T>) -> Self {
        v.map_or(Val::Null, Into::into)
    }
}

/// Builds a parameter list: `vals![a, b, c]`.
#[macro_export]
macro_rules! vals {
    ($($value:expr),* $(,)?) => { &[$($crate::Val::from($value)),*][..] };
}

pub type Row = Vec<Val>;

/// Typed reads from a row; a column of an unexpected type reads as absent, which the
/// callers treat like NULL (their schemas never store one there).
pub trait RowExt {
    fn int(&self, i: usize) -> i64;
    fn opt_int(&self, i: usize) -> Option<i64>;
    fn real(&self, i: usize) -> f64;
    fn text(&self, i: usize) -> String;
    fn opt_text(&self, i: usize) -> Option<String>;
    fn blob(&self, i: usize) -> Vec<u8>;
}

impl RowExt for Row {
    fn int(&self, i: usize) -> i64 {
        self.opt_int(i).unwrap_or(0)
    }

    fn opt_int(&self, i: usize) -> Option<i64> {
        match self.get(i) {
            Some(Val::Int(v)) => Some(*v),
            Some(Val::Real(v)) => Some(*v as i64),
            _ => None,
        }
    }

    fn real(&self, i: usize) -> f64 {
        match self.get(i) {
            Some(Val::Real(v)) => *v,
            Some(Val::Int(v)) => *v as f64,
            _ => 0.0,
        }
    }

    fn text(&self, i: usize) -> String {
        self.opt_text(i).unwrap_or_default()
    }

    fn opt_text(&self, i: usize) -> Option<String> {
        match self.get(i) {
            Some(Val::Text(v)) => Some(v.clone()),
            _ => None,
        }
    }

    fn blob(&self, i: usize) -> Vec<u8> {
        match self.get(i) {
            Some(Val::Blob(v)) => v.clone(),
            Some(Val::Text(v)) => v.clone().into_bytes(),
            _ => Vec::new(),
        }
    }
}

/// An open transaction.
pub trait Tx {
    fn execute(&mut self, sql: &str, params: &[Val]) -> Result<u64, SqlError>;
    fn query(&mut self, sql: &str, params: &[Val]) -> Result<Vec<Row>, SqlError>;

    fn query_one(&mut self, sql: &str, params: &[Val]) -> Result<Option<Row>, SqlError> {
        Ok(self.query(sql, params)?.into_iter().next())
    }
}

/// Where the dialects differ.
#[derive(Debug, Clone, Copy)]
pub struct Dialect {
    /// Appended to a `SELECT` of rows the transaction is about to change. SQLite needs
    /// nothing: a write transaction there already excludes every other writer.
    pub lock_rows: &'static str,
    /// Appended to a `SELECT` that picks work, so concurrent workers skip each other's rows.
    pub skip_locked: &'static str,
    /// A statement taking one `BIGINT` lock id (`$1`) that, run first, makes transactions
    /// naming the same id run one after another. SQLite needs none: its write
    /// transactions already do.
    pub serialize: Option<&'static str>,
}

/// A database a store can run transactions on.
pub trait Backend: Send + Sync {
    const DIALECT: Dialect;

    /// Runs `body` in one transaction at the time `now` says (read once the transaction
    /// has begun), committing when it returns `Ok`. On PostgreSQL, a body that failed on
    /// a serialization failure, a deadlock or a unique violation runs again (so it must
    /// not have effects outside the transaction).
    fn transaction<T, E: From<SqlError>>(
        &self,
        now: &dyn Fn() -> Millis,
        body: &mut dyn FnMut(&mut dyn Tx, Millis) -> Result<T, E>,
    ) -> Result<T, E>;

    /// Blocks until new work may be waiting or `timeout` passes.
    fn wait_for_work(&self, timeout: std::time::Duration) {
        std::thread::sleep(timeout);
    }

    /// Tells waiting workers that work may be waiting, once the current transaction commits.
    fn notify_sql(&self) -> Option<String> {
        None
    }
}
