//! vttiro-jobs owns the durable job queue behind `vttiro serve` and `vttiro worker`: job
//! states (queued → running → succeeded | failed | cancelled), leases that workers renew
//! with heartbeats, retries with exponential backoff decided by the error-code table,
//! idempotent submission, per-chunk checkpoints for resuming, and a numbered event history
//! per job for progress streams.
//!
//! [`JobQueue`] is the contract. [`SqlQueue`] implements it once, over vttiro-sql's two
//! backends: [`SqliteQueue`] (the embedded default) and [`PostgresQueue`] (scale-out: row
//! locks, `FOR UPDATE SKIP LOCKED`, `LISTEN/NOTIFY`), which pass the same test suite. Time comes
//! from a [`Clock`] so tests step leases and backoff instead of sleeping.
//!
//! It depends on vttiro-core for error codes and vttiro-sql for the databases, and must not
//! know about HTTP, engines, media files, storage of results, or async runtimes.

mod model;
mod postgres;
mod queue;
mod sqlite;

pub use model::*;
pub use postgres::PostgresQueue;
pub use queue::SqlQueue;
pub use sqlite::SqliteQueue;
pub use vttiro_sql::{Postgres, Sqlite};

/// How the queue treats attempts.
#[derive(Debug, Clone)]
pub struct QueuePolicy {
    /// Attempts per job unless the submission says otherwise.
    pub max_attempts: u32,
    /// A running job whose worker has not heartbeated for this long goes back to the queue.
    pub lease_ms: Millis,
    /// Wait before the second attempt; doubled for each further one.
    pub backoff_base_ms: Millis,
    pub backoff_max_ms: Millis,
    /// Queued jobs beyond which `submit` refuses new ones, counted in the submitting
    /// transaction so concurrent submitters cannot overshoot it.
    pub max_queued: Option<u64>,
}

impl Default for QueuePolicy {
    fn default() -> Self {
        QueuePolicy {
            max_attempts: 3,
            lease_ms: 60_000,
            backoff_base_ms: 10_000,
            backoff_max_ms: 600_000,
            max_queued: None,
        }
    }
}

impl QueuePolicy {
    /// The wait after the `attempts`-th failed attempt.
    pub fn backoff_ms(&self, attempts: u32) -> Millis {
        let exponent = attempts.saturating_sub(1).min(30);
        self.backoff_base_ms
            .saturating_mul(1i64 << exponent)
            .min(self.backoff_max_ms)
    }
}
