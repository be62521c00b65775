//! What the queue needs from a SQL database, so one implementation of the queue's logic
//! ([`crate::SqlQueue`]) runs on SQLite and PostgreSQL alike: a transaction that executes
//! statements and returns rows of plain values, and the few phrases the dialects spell
//! differently. Statements are written with `$1`-style placeholders (PostgreSQL's); the
//! SQLite backend rewrites them to `?1`.

use crate::model::{Millis, QueueError};

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
macro_rules! vals {
    ($($value:expr),* $(,)?) => { &[$($crate::sql::Val::from($value)),*][..] };
}
pub(crate) use vals;

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
    fn execute(&mut self, sql: &str, params: &[Val]) -> Result<u64, QueueError>;
    fn query(&mut self, sql: &str, params: &[Val]) -> Result<Vec<Row>, QueueError>;

    fn query_one(&mut self, sql: &str, params: &[Val]) -> Result<Option<Row>, QueueError> {
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
    /// Run first in a submission that enforces the queue limit, so concurrent submitters
    /// count one after another.
    pub serialize_submissions: Option<&'static str>,
}

/// A database the queue can run transactions on.
pub trait Backend: Send + Sync {
    const DIALECT: Dialect;

    /// Runs `body` in one transaction at time `now` (read from `clock` once the
    /// transaction holds its locks), committing when it returns `Ok`.
    fn transaction<T>(
        &self,
        clock: &dyn crate::Clock,
        body: &mut dyn FnMut(&mut dyn Tx, Millis) -> Result<T, QueueError>,
    ) -> Result<T, QueueError>;

    /// Blocks until new work may be waiting or `timeout` passes.
    fn wait_for_work(&self, timeout: std::time::Duration) {
        std::thread::sleep(timeout);
    }

    /// Tells waiting workers that work may be waiting, once the current transaction commits.
    fn notify_sql(&self) -> Option<&'static str> {
        None
    }
}
