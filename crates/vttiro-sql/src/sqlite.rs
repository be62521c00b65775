//! One SQLite file, shared by any number of processes: WAL, `synchronous=FULL`, foreign
//! keys on, a busy timeout, and every transaction `BEGIN IMMEDIATE`, so writers queue for
//! the file's lock instead of failing half-way.

use std::path::Path;
use std::sync::Mutex;
use std::time::Duration;

use rusqlite::types::ValueRef;
use rusqlite::{Connection, TransactionBehavior};

use crate::{Backend, Dialect, Millis, Row, SqlError, Tx, Val};

pub struct Sqlite {
    connection: Mutex<Connection>,
}

impl Sqlite {
    /// Opens (creating) the database file at `path`.
    pub fn open(path: &Path) -> Result<Sqlite, SqlError> {
        let connection =
            Connection::open(path).map_err(|e| SqlError(format!("{}: {e}", path.display())))?;
        connection.busy_timeout(Duration::from_secs(10))?;
        connection.pragma_update(None, "journal_mode", "WAL")?;
        connection.pragma_update(None, "synchronous", "FULL")?;
        connection.pragma_update(None, "foreign_keys", "ON")?;
        Ok(Sqlite {
            connection: Mutex::new(connection),
        })
    }

    /// The connection itself, for schema work the [`Tx`] interface does not cover.
    pub fn with_connection<T>(
        &self,
        work: impl FnOnce(&mut Connection) -> rusqlite::Result<T>,
    ) -> Result<T, SqlError> {
        let mut connection = self
            .connection
            .lock()
            .map_err(|_| SqlError("sqlite: connection lock poisoned".into()))?;
        Ok(work(&mut connection)?)
    }

    /// Writes a consistent copy of the live database to `target` (which must not exist):
    /// `VACUUM INTO` reads one snapshot while other processes keep writing.
    pub fn snapshot(&self, target: &Path) -> Result<(), SqlError> {
        self.with_connection(|connection| {
            connection.execute("VACUUM INTO ?1", [target.to_string_lossy()])
        })
        .map_err(|e| SqlError(format!("{}: {e}", target.display())))?;
        Ok(())
    }
}

/// `$1` placeholders (the stores') as SQLite's `?1`.
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
    fn execute(&mut self, sql: &str, params: &[Val]) -> Result<u64, SqlError> {
        let params: Vec<_> = params.iter().map(to_sqlite).collect();
        Ok(self.0.execute(
            &sqlite_placeholders(sql),
            rusqlite::params_from_iter(params),
        )? as u64)
    }

    fn query(&mut self, sql: &str, params: &[Val]) -> Result<Vec<Row>, SqlError> {
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
        serialize: None,
    };

    fn transaction<T, E: From<SqlError>>(
        &self,
        now: &dyn Fn() -> Millis,
        body: &mut dyn FnMut(&mut dyn Tx, Millis) -> Result<T, E>,
    ) -> Result<T, E> {
        let mut connection = self
            .connection
            .lock()
            .map_err(|_| SqlError("sqlite: connection lock poisoned".into()))?;
        let transaction = connection
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(SqlError::from)?;
        let value = body(&mut SqliteTx(&transaction), now())?;
        transaction.commit().map_err(SqlError::from)?;
        Ok(value)
    }
}
