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

use vttiro_sql::Postgres;

use crate::model::*;
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
const CHANNEL: &str = "vttiro_jobs";

/// The queue on a PostgreSQL database.
pub type PostgresQueue = SqlQueue<Postgres>;

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
        let backend = Postgres::connect(url, ca_file)?.with_channel(CHANNEL);
        backend.migrate("schema_migrations", MIGRATION_LOCK, MIGRATIONS)?;
        Ok(SqlQueue {
            backend,
            clock,
            policy,
        })
    }
}
