//! A PostgreSQL server shared by every process: a small pool of synchronous connections
//! that drops ones a server restart closed, TLS with ring (`sslmode=require` or a CA
//! file), transactions rerun when PostgreSQL reports a conflict a second run can get
//! past, migrations applied once under an advisory lock, and `LISTEN/NOTIFY` for stores
//! that wake waiters.

use std::sync::Mutex;
use std::time::Duration;

use fallible_iterator::FallibleIterator;
use postgres::error::SqlState;
use postgres::types::{IsNull, ToSql, Type};
use postgres::{Client, NoTls};

use crate::{Backend, Dialect, Millis, Row, SqlError, Tx, Val};

/// Connections kept open between transactions.
const IDLE_CONNECTIONS: usize = 8;

pub struct Postgres {
    url: String,
    /// Set when the URL asks for `sslmode=require` (or a CA file is given).
    tls: Option<tokio_postgres_rustls::MakeRustlsConnect>,
    idle: Mutex<Vec<Client>>,
    /// The channel [`Backend::notify_sql`] notifies and [`Backend::wait_for_work`] listens on.
    channel: Option<&'static str>,
    /// The connection that `LISTEN`s, when a worker waits.
    listener: Mutex<Option<Client>>,
}

fn pg_error(e: postgres::Error) -> SqlError {
    // The message names the database failure; the URL (and its password) is never in it.
    SqlError(format!("postgres: {e}"))
}

impl Postgres {
    /// Connects to `url` (`postgres://user:password@host:port/db`), with TLS verified
    /// against `ca_file` (PEM; managed databases publish theirs) or, when the URL says
    /// `sslmode=require`, the system's roots. Without either the connection is plain, as
    /// for a database on the same private network.
    pub fn connect(url: &str, ca_file: Option<&std::path::Path>) -> Result<Postgres, SqlError> {
        let wants_tls = ca_file.is_some() || url.contains("sslmode=require");
        let tls = if wants_tls {
            Some(tls_connector(ca_file)?)
        } else {
            None
        };
        let backend = Postgres {
            url: url.to_string(),
            tls,
            idle: Mutex::new(Vec::new()),
            channel: None,
            listener: Mutex::new(None),
        };
        // Fails now, naming the problem, rather than on the first transaction.
        let client = backend.connect_one()?;
        backend.give_back(client);
        Ok(backend)
    }

    /// Notifies and listens on `channel` (see [`Backend::wait_for_work`]).
    pub fn with_channel(mut self, channel: &'static str) -> Postgres {
        self.channel = Some(channel);
        self
    }

    /// Applies each `(version, sql)` of `migrations` not yet recorded in `table`, all in one
    /// transaction under the advisory lock `lock`, so processes starting together apply
    /// each exactly once. Migrations must only add (expand/contract): an older version
    /// still running must keep working against the new schema.
    pub fn migrate(
        &self,
        table: &str,
        lock: i64,
        migrations: &[(i64, &str)],
    ) -> Result<(), SqlError> {
        let mut client = self.take()?;
        let result = (|| {
            let mut tx = client.transaction().map_err(pg_error)?;
            tx.execute("SELECT pg_advisory_xact_lock($1)", &[&lock])
                .map_err(pg_error)?;
            tx.batch_execute(&format!(
                "CREATE TABLE IF NOT EXISTS {table} (version BIGINT PRIMARY KEY, applied_at TIMESTAMPTZ NOT NULL DEFAULT now())"
            ))
            .map_err(pg_error)?;
            for (version, sql) in migrations {
                let done = tx
                    .query_opt(
                        &format!("SELECT 1 FROM {table} WHERE version = $1"),
                        &[version],
                    )
                    .map_err(pg_error)?
                    .is_some();
                if !done {
                    tx.batch_execute(sql).map_err(pg_error)?;
                    tx.execute(
                        &format!("INSERT INTO {table} (version) VALUES ($1)"),
                        &[version],
                    )
                    .map_err(pg_error)?;
                }
            }
            tx.commit().map_err(pg_error)
        })();
        self.give_back(client);
        result
    }

    fn connect_one(&self) -> Result<Client, SqlError> {
        match &self.tls {
            Some(tls) => Client::connect(&self.url, tls.clone()),
            None => Client::connect(&self.url, NoTls),
        }
        .map_err(pg_error)
    }

    fn take(&self) -> Result<Client, SqlError> {
        loop {
            let client = self
                .idle
                .lock()
                .map_err(|_| SqlError("postgres: connection pool lock poisoned".into()))?
                .pop();
            match client {
                // A server restart closes every pooled connection; drop those.
                Some(client) if client.is_closed() => continue,
                Some(client) => return Ok(client),
                None => return self.connect_one(),
            }
        }
    }

    fn give_back(&self, client: Client) {
        if client.is_closed() {
            return;
        }
        if let Ok(mut idle) = self.idle.lock() {
            if idle.len() < IDLE_CONNECTIONS {
                idle.push(client);
            }
        }
    }
}

/// A rustls client trusting `ca_file`, or the system's root certificates.
fn tls_connector(
    ca_file: Option<&std::path::Path>,
) -> Result<tokio_postgres_rustls::MakeRustlsConnect, SqlError> {
    use rustls_pki_types::pem::PemObject;
    use rustls_pki_types::CertificateDer;
    let mut roots = rustls::RootCertStore::empty();
    match ca_file {
        Some(path) => {
            let certificates: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(path)
                .and_then(|certs| certs.collect())
                .map_err(|e| SqlError(format!("{}: {e}", path.display())))?;
            if certificates.is_empty() {
                return Err(SqlError(format!("{}: no PEM certificates", path.display())));
            }
            for certificate in certificates {
                roots
                    .add(certificate)
                    .map_err(|e| SqlError(format!("{}: {e}", path.display())))?;
            }
        }
        None => {
            for certificate in rustls_native_certs::load_native_certs().certs {
                let _ = roots.add(certificate);
            }
        }
    }
    let config = rustls::ClientConfig::builder_with_provider(std::sync::Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .map_err(|e| SqlError(format!("TLS: {e}")))?
    .with_root_certificates(roots)
    .with_no_client_auth();
    Ok(tokio_postgres_rustls::MakeRustlsConnect::new(config))
}

impl ToSql for Val {
    fn to_sql(
        &self,
        ty: &Type,
        out: &mut bytes::BytesMut,
    ) -> Result<IsNull, Box<dyn std::error::Error + Sync + Send>> {
        match self {
            Val::Null => Ok(IsNull::Yes),
            Val::Int(v) if *ty == Type::INT4 => i32::try_from(*v)?.to_sql(ty, out),
            Val::Int(v) if *ty == Type::FLOAT8 => (*v as f64).to_sql(ty, out),
            Val::Int(v) => v.to_sql(ty, out),
            Val::Real(v) => v.to_sql(ty, out),
            Val::Text(v) => v.to_sql(ty, out),
            Val::Blob(v) => v.to_sql(ty, out),
        }
    }

    fn accepts(_: &Type) -> bool {
        true
    }

    postgres::types::to_sql_checked!();
}

fn row_values(row: &postgres::Row) -> Result<Row, postgres::Error> {
    (0..row.len())
        .map(|i| {
            let ty = row.columns()[i].type_().clone();
            Ok(match ty {
                Type::INT8 => row
                    .try_get::<_, Option<i64>>(i)?
                    .map_or(Val::Null, Val::Int),
                Type::INT4 => row
                    .try_get::<_, Option<i32>>(i)?
                    .map_or(Val::Null, |v| Val::Int(v.into())),
                Type::FLOAT8 => row
                    .try_get::<_, Option<f64>>(i)?
                    .map_or(Val::Null, Val::Real),
                Type::BYTEA => row
                    .try_get::<_, Option<Vec<u8>>>(i)?
                    .map_or(Val::Null, Val::Blob),
                // `SELECT pg_advisory_xact_lock(..)` and the like return nothing to read.
                Type::VOID => Val::Null,
                Type::BOOL => row
                    .try_get::<_, Option<bool>>(i)?
                    .map_or(Val::Null, |v| Val::Int(v.into())),
                _ => row
                    .try_get::<_, Option<String>>(i)?
                    .map_or(Val::Null, Val::Text),
            })
        })
        .collect()
}

struct PgTx<'a, 'b> {
    tx: &'a mut postgres::Transaction<'b>,
    /// The SQLSTATE of the last failed statement, to decide whether to run again.
    failed: Option<SqlState>,
}

impl PgTx<'_, '_> {
    fn params(params: &[Val]) -> Vec<&(dyn ToSql + Sync)> {
        params.iter().map(|v| v as &(dyn ToSql + Sync)).collect()
    }

    fn note(&mut self, e: postgres::Error) -> SqlError {
        self.failed = e.code().cloned();
        pg_error(e)
    }
}

impl Tx for PgTx<'_, '_> {
    fn execute(&mut self, sql: &str, params: &[Val]) -> Result<u64, SqlError> {
        let bound = Self::params(params);
        match self.tx.execute(sql, &bound) {
            Ok(n) => Ok(n),
            Err(e) => Err(self.note(e)),
        }
    }

    fn query(&mut self, sql: &str, params: &[Val]) -> Result<Vec<Row>, SqlError> {
        let bound = Self::params(params);
        let rows = match self.tx.query(sql, &bound) {
            Ok(rows) => rows,
            Err(e) => return Err(self.note(e)),
        };
        rows.iter()
            .map(row_values)
            .collect::<Result<_, _>>()
            .map_err(pg_error)
    }
}

/// Failures a second run of the same transaction can get past.
fn transient(code: Option<&SqlState>) -> bool {
    code.is_some_and(|c| {
        *c == SqlState::T_R_SERIALIZATION_FAILURE
            || *c == SqlState::T_R_DEADLOCK_DETECTED
            // Two submitters of one idempotency key: the second run finds the first job.
            || *c == SqlState::UNIQUE_VIOLATION
    })
}

impl Backend for Postgres {
    const DIALECT: Dialect = Dialect {
        lock_rows: " FOR UPDATE",
        skip_locked: " FOR UPDATE SKIP LOCKED",
        serialize: Some("SELECT pg_advisory_xact_lock($1)"),
    };

    fn transaction<T, E: From<SqlError>>(
        &self,
        now: &dyn Fn() -> Millis,
        body: &mut dyn FnMut(&mut dyn Tx, Millis) -> Result<T, E>,
    ) -> Result<T, E> {
        let mut attempt = 0;
        loop {
            attempt += 1;
            let mut client = self.take()?;
            let outcome = (|| {
                let mut tx = client
                    .transaction()
                    .map_err(|e| (E::from(pg_error(e)), None))?;
                let now = now();
                let mut pg = PgTx {
                    tx: &mut tx,
                    failed: None,
                };
                let value = body(&mut pg, now).map_err(|e| (e, pg.failed.take()))?;
                // A failed commit is not retried: it may have committed.
                tx.commit().map_err(|e| (E::from(pg_error(e)), None))?;
                Ok(value)
            })();
            let closed = client.is_closed();
            self.give_back(client);
            match outcome {
                Ok(value) => return Ok(value),
                Err((_, code)) if attempt < 4 && transient(code.as_ref()) => {
                    tracing::debug!(attempt, code = ?code, "transaction conflicted; running it again");
                }
                // The server went away before the work committed: once more on a fresh
                // connection (the pool dropped the dead one).
                Err((_, None)) if attempt < 2 && closed => {}
                Err((e, _)) => return Err(e),
            }
        }
    }

    fn notify_sql(&self) -> Option<String> {
        self.channel.map(|channel| format!("NOTIFY {channel}"))
    }

    fn wait_for_work(&self, timeout: Duration) {
        // One thread per process listens; the others nap, as on SQLite.
        let Some(channel) = self.channel else {
            std::thread::sleep(timeout);
            return;
        };
        let Ok(mut guard) = self.listener.try_lock() else {
            std::thread::sleep(timeout);
            return;
        };
        if guard.as_ref().is_none_or(Client::is_closed) {
            *guard = self.connect_one().ok().and_then(|mut client| {
                client
                    .batch_execute(&format!("LISTEN {channel}"))
                    .ok()
                    .map(|()| client)
            });
        }
        let Some(client) = guard.as_mut() else {
            std::thread::sleep(timeout);
            return;
        };
        let mut notifications = client.notifications();
        let _ = notifications.timeout_iter(timeout).next();
        // Several notifications may have piled up; one wake-up serves them all.
        while let Ok(Some(_)) = notifications.iter().next() {}
    }
}
