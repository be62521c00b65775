//! The job store for several machines: PostgreSQL. The queue's statements are the same as
//! on SQLite ([`crate::SqlQueue`]); what differs is here: row locks (`FOR UPDATE`, and
//! `FOR UPDATE SKIP LOCKED` where workers pick work), an advisory lock that makes the
//! queue limit exact under concurrent submitters, transactions retried on serialization
//! failures and deadlocks, a small connection pool that replaces connections the server
//! dropped (a restart or failover), and `LISTEN/NOTIFY` so idle workers wake as soon as a
//! job is queued.
//!
//! # Schema changes during rolling updates
//!
//! Migrations only ever expand: new tables, new nullable columns, new indexes, each
//! written to run again harmlessly, under an advisory lock so processes starting together
//! apply each step once. A version that stops using a column keeps it in the schema; the
//! column is dropped (contracted) only by a later release, once no running version reads
//! it. Old and new workers can therefore share the database throughout a rollout.

use std::sync::Mutex;
use std::time::Duration;

use fallible_iterator::FallibleIterator;
use postgres::error::SqlState;
use postgres::types::{IsNull, ToSql, Type};
use postgres::{Client, NoTls};

use crate::model::*;
use crate::sql::{Backend, Dialect, Row, Tx, Val};
use crate::{QueuePolicy, SqlQueue};

/// Each step runs once per database, in order; `schema_migrations` records which ran.
const MIGRATIONS: &[(i64, &str)] = &[
    (
        1,
        "CREATE TABLE IF NOT EXISTS jobs (
            id TEXT PRIMARY KEY,
            tenant TEXT NOT NULL,
            state TEXT NOT NULL,
            spec TEXT NOT NULL,
            media TEXT,
            idempotency_key TEXT,
            fingerprint TEXT NOT NULL,
            attempts BIGINT NOT NULL DEFAULT 0,
            max_attempts BIGINT NOT NULL,
            run_after BIGINT NOT NULL,
            lease_id TEXT,
            worker TEXT,
            lease_expires_at BIGINT,
            cancel_requested BIGINT NOT NULL DEFAULT 0,
            progress DOUBLE PRECISION NOT NULL DEFAULT 0,
            stage TEXT,
            error_code TEXT,
            error_message TEXT,
            result TEXT,
            created_at BIGINT NOT NULL,
            updated_at BIGINT NOT NULL,
            started_at BIGINT,
            finished_at BIGINT
        );
        CREATE UNIQUE INDEX IF NOT EXISTS jobs_idempotency ON jobs(tenant, idempotency_key)
            WHERE idempotency_key IS NOT NULL;
        CREATE INDEX IF NOT EXISTS jobs_runnable ON jobs(state, run_after, id);
        CREATE INDEX IF NOT EXISTS jobs_leases ON jobs(state, lease_expires_at);
        CREATE TABLE IF NOT EXISTS checkpoints (
            job_id TEXT NOT NULL REFERENCES jobs(id) ON DELETE CASCADE,
            key TEXT NOT NULL,
            data BYTEA NOT NULL,
            at BIGINT NOT NULL,
            PRIMARY KEY (job_id, key)
        );
        CREATE TABLE IF NOT EXISTS webhooks (
            id TEXT PRIMARY KEY,
            job_id TEXT NOT NULL REFERENCES jobs(id) ON DELETE CASCADE,
            url TEXT NOT NULL,
            event TEXT NOT NULL,
            payload TEXT NOT NULL,
            state TEXT NOT NULL,
            attempts BIGINT NOT NULL DEFAULT 0,
            next_at BIGINT NOT NULL,
            lease_until BIGINT,
            last_error TEXT,
            created_at BIGINT NOT NULL,
            delivered_at BIGINT
        );
        CREATE INDEX IF NOT EXISTS webhooks_due ON webhooks(state, next_at);
        CREATE TABLE IF NOT EXISTS events (
            job_id TEXT NOT NULL REFERENCES jobs(id) ON DELETE CASCADE,
            seq BIGINT NOT NULL,
            at BIGINT NOT NULL,
            kind TEXT NOT NULL,
            data TEXT NOT NULL,
            PRIMARY KEY (job_id, seq)
        );",
    ),
    (
        2,
        "ALTER TABLE jobs ADD COLUMN IF NOT EXISTS trace_parent TEXT;",
    ),
];

/// Any fixed number both sides agree on: the key of the migration advisory lock.
const MIGRATION_LOCK: i64 = 0x7674_7469_726f_0001;
const SUBMISSION_LOCK: &str = "SELECT pg_advisory_xact_lock(8536495413944041474)";
const CHANNEL: &str = "vttiro_jobs";
/// Connections kept open between transactions.
const IDLE_CONNECTIONS: usize = 8;

/// The queue on a PostgreSQL database.
pub type PostgresQueue = SqlQueue<Postgres>;

pub struct Postgres {
    url: String,
    /// Set when the URL asks for `sslmode=require` (or a CA file is given).
    tls: Option<tokio_postgres_rustls::MakeRustlsConnect>,
    idle: Mutex<Vec<Client>>,
    /// The connection that `LISTEN`s for new work, when a worker waits.
    listener: Mutex<Option<Client>>,
}

fn pg_error(e: postgres::Error) -> QueueError {
    // The message names the database failure; the URL (and its password) is never in it.
    QueueError::Storage(format!("postgres: {e}"))
}

impl SqlQueue<Postgres> {
    /// Connects to `url` (`postgres://user:password@host:port/db`) and brings the schema
    /// up to date.
    pub fn connect(
        url: &str,
        clock: std::sync::Arc<dyn Clock>,
        policy: QueuePolicy,
    ) -> Result<PostgresQueue, QueueError> {
        PostgresQueue::connect_with(url, None, clock, policy)
    }

    /// [`PostgresQueue::connect`] with TLS verified against `ca_file` (PEM; managed
    /// databases publish theirs) instead of the system's roots. TLS is used when the URL
    /// says `sslmode=require` or a CA file is given; without either, the connection is
    /// plain, as for a database on the same private network.
    pub fn connect_with(
        url: &str,
        ca_file: Option<&std::path::Path>,
        clock: std::sync::Arc<dyn Clock>,
        policy: QueuePolicy,
    ) -> Result<PostgresQueue, QueueError> {
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
            listener: Mutex::new(None),
        };
        let mut client = backend.connect()?;
        migrate(&mut client)?;
        backend.give_back(client);
        Ok(SqlQueue {
            backend,
            clock,
            policy,
        })
    }
}

/// A rustls client trusting `ca_file`, or the system's root certificates.
fn tls_connector(
    ca_file: Option<&std::path::Path>,
) -> Result<tokio_postgres_rustls::MakeRustlsConnect, QueueError> {
    use rustls_pki_types::pem::PemObject;
    use rustls_pki_types::CertificateDer;
    let mut roots = rustls::RootCertStore::empty();
    match ca_file {
        Some(path) => {
            let certificates: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(path)
                .and_then(|certs| certs.collect())
                .map_err(|e| QueueError::Storage(format!("{}: {e}", path.display())))?;
            if certificates.is_empty() {
                return Err(QueueError::Storage(format!(
                    "{}: no PEM certificates",
                    path.display()
                )));
            }
            for certificate in certificates {
                roots
                    .add(certificate)
                    .map_err(|e| QueueError::Storage(format!("{}: {e}", path.display())))?;
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
    .map_err(|e| QueueError::Storage(format!("TLS: {e}")))?
    .with_root_certificates(roots)
    .with_no_client_auth();
    Ok(tokio_postgres_rustls::MakeRustlsConnect::new(config))
}

fn migrate(client: &mut Client) -> Result<(), QueueError> {
    let mut tx = client.transaction().map_err(pg_error)?;
    tx.execute("SELECT pg_advisory_xact_lock($1)", &[&MIGRATION_LOCK])
        .map_err(pg_error)?;
    tx.batch_execute(
        "CREATE TABLE IF NOT EXISTS schema_migrations (version BIGINT PRIMARY KEY, applied_at TIMESTAMPTZ NOT NULL DEFAULT now())",
    )
    .map_err(pg_error)?;
    for (version, sql) in MIGRATIONS {
        let done = tx
            .query_opt(
                "SELECT 1 FROM schema_migrations WHERE version = $1",
                &[version],
            )
            .map_err(pg_error)?
            .is_some();
        if !done {
            tx.batch_execute(sql).map_err(pg_error)?;
            tx.execute(
                "INSERT INTO schema_migrations (version) VALUES ($1)",
                &[version],
            )
            .map_err(pg_error)?;
        }
    }
    tx.commit().map_err(pg_error)
}

impl Postgres {
    fn connect(&self) -> Result<Client, QueueError> {
        match &self.tls {
            Some(tls) => Client::connect(&self.url, tls.clone()),
            None => Client::connect(&self.url, NoTls),
        }
        .map_err(pg_error)
    }

    fn take(&self) -> Result<Client, QueueError> {
        loop {
            let client = self
                .idle
                .lock()
                .map_err(|_| QueueError::Storage("connection pool lock poisoned".into()))?
                .pop();
            match client {
                // A server restart closes every pooled connection; drop those.
                Some(client) if client.is_closed() => continue,
                Some(client) => return Ok(client),
                None => return self.connect(),
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

    fn note(&mut self, e: postgres::Error) -> QueueError {
        self.failed = e.code().cloned();
        pg_error(e)
    }
}

impl Tx for PgTx<'_, '_> {
    fn execute(&mut self, sql: &str, params: &[Val]) -> Result<u64, QueueError> {
        let bound = Self::params(params);
        match self.tx.execute(sql, &bound) {
            Ok(n) => Ok(n),
            Err(e) => Err(self.note(e)),
        }
    }

    fn query(&mut self, sql: &str, params: &[Val]) -> Result<Vec<Row>, QueueError> {
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
        serialize_submissions: Some(SUBMISSION_LOCK),
    };

    fn transaction<T>(
        &self,
        clock: &dyn Clock,
        body: &mut dyn FnMut(&mut dyn Tx, Millis) -> Result<T, QueueError>,
    ) -> Result<T, QueueError> {
        let mut attempt = 0;
        loop {
            attempt += 1;
            let mut client = self.take()?;
            let outcome = (|| {
                let mut tx = client.transaction().map_err(|e| (pg_error(e), None))?;
                let now = clock.now_ms();
                let mut pg = PgTx {
                    tx: &mut tx,
                    failed: None,
                };
                let value = body(&mut pg, now).map_err(|e| (e, pg.failed.take()))?;
                // A failed commit is not retried: it may have committed.
                tx.commit().map_err(|e| (pg_error(e), None))?;
                Ok(value)
            })();
            let closed = client.is_closed();
            self.give_back(client);
            match outcome {
                Ok(value) => return Ok(value),
                Err((e, code)) if attempt < 4 && transient(code.as_ref()) => {
                    tracing::debug!(error = %e, attempt, "transaction conflicted; running it again");
                }
                // The server went away before the work committed: once more on a fresh
                // connection (the pool dropped the dead one).
                Err((_, None)) if attempt < 2 && closed => {}
                Err((e, _)) => return Err(e),
            }
        }
    }

    fn notify_sql(&self) -> Option<&'static str> {
        Some("NOTIFY vttiro_jobs")
    }

    fn wait_for_work(&self, timeout: Duration) {
        // One thread per process listens; the others nap, as on SQLite.
        let Ok(mut guard) = self.listener.try_lock() else {
            std::thread::sleep(timeout);
            return;
        };
        if guard.as_ref().is_none_or(Client::is_closed) {
            *guard = self.connect().ok().and_then(|mut client| {
                client
                    .batch_execute(&format!("LISTEN {CHANNEL}"))
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
