//! The embedded job store: one SQLite file in WAL mode with `synchronous=FULL`, so a
//! committed transition survives a killed process or a power cut. Every operation is one
//! `BEGIN IMMEDIATE` transaction; several processes may share the file.

use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rusqlite::{params, Connection, OptionalExtension, Row, TransactionBehavior};
use serde_json::{json, Value};
use vttiro_core::ErrorCode;

use crate::model::*;
use crate::QueuePolicy;

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

const JOB_COLUMNS: &str =
    "id, tenant, state, spec, media, idempotency_key, attempts, max_attempts, \
     run_after, cancel_requested, progress, stage, error_code, error_message, result, \
     created_at, updated_at, started_at, finished_at, worker, lease_expires_at, trace_parent";

pub struct SqliteQueue {
    connection: Mutex<Connection>,
    clock: Arc<dyn Clock>,
    policy: QueuePolicy,
}

impl SqliteQueue {
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
        Ok(SqliteQueue {
            connection: Mutex::new(connection),
            clock,
            policy,
        })
    }

    fn transaction<T>(
        &self,
        body: impl FnOnce(&rusqlite::Transaction<'_>, Millis) -> Result<T, QueueError>,
    ) -> Result<T, QueueError> {
        let mut connection = self
            .connection
            .lock()
            .map_err(|_| QueueError::Storage("connection lock poisoned".into()))?;
        let transaction = connection.transaction_with_behavior(TransactionBehavior::Immediate)?;
        let now = self.clock.now_ms();
        let value = body(&transaction, now)?;
        transaction.commit()?;
        Ok(value)
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

fn job_from_row(row: &Row<'_>) -> rusqlite::Result<Job> {
    let state: String = row.get(2)?;
    let spec: String = row.get(3)?;
    let result: Option<String> = row.get(14)?;
    let error_code: Option<String> = row.get(12)?;
    let error_message: Option<String> = row.get(13)?;
    Ok(Job {
        id: row.get(0)?,
        tenant: row.get(1)?,
        state: JobState::parse(&state).unwrap_or(JobState::Failed),
        spec: serde_json::from_str(&spec).unwrap_or(Value::Null),
        media: row.get(4)?,
        idempotency_key: row.get(5)?,
        attempts: row.get(6)?,
        max_attempts: row.get(7)?,
        run_after: row.get(8)?,
        cancel_requested: row.get::<_, i64>(9)? != 0,
        progress: row.get::<_, f64>(10)? as f32,
        stage: row.get(11)?,
        error: error_code.map(|code| JobFailure {
            code,
            message: error_message.unwrap_or_default(),
        }),
        result: result.and_then(|r| serde_json::from_str(&r).ok()),
        created_at: row.get(15)?,
        updated_at: row.get(16)?,
        started_at: row.get(17)?,
        finished_at: row.get(18)?,
        worker: row.get(19)?,
        lease_expires_at: row.get(20)?,
        trace_parent: row.get(21)?,
    })
}

fn load(tx: &rusqlite::Transaction<'_>, id: &str) -> Result<Job, QueueError> {
    tx.query_row(
        &format!("SELECT {JOB_COLUMNS} FROM jobs WHERE id = ?1"),
        [id],
        job_from_row,
    )
    .optional()?
    .ok_or_else(|| QueueError::NotFound(id.to_string()))
}

fn append_event(
    tx: &rusqlite::Transaction<'_>,
    id: &str,
    now: Millis,
    kind: &str,
    data: Value,
) -> Result<(), QueueError> {
    tx.execute(
        "INSERT INTO events (job_id, seq, at, kind, data)
         VALUES (?1, COALESCE((SELECT MAX(seq) FROM events WHERE job_id = ?1), 0) + 1, ?2, ?3, ?4)",
        params![id, now, kind, data.to_string()],
    )?;
    // The outbox row commits with the final state, so a crash between the two cannot lose
    // a notification or send one for a state that never committed.
    if matches!(kind, "succeeded" | "failed" | "cancelled") {
        let job = load(tx, id)?;
        if let Some(url) = job.spec.get("webhook_url").and_then(Value::as_str) {
            let event = format!("job.{kind}");
            let payload = json!({
                "type": event,
                "timestamp": now,
                "data": {
                    "id": job.id,
                    "state": job.state,
                    "attempts": job.attempts,
                    "error": job.error,
                    "result": job.result,
                    "created_at": job.created_at,
                    "finished_at": job.finished_at,
                },
            });
            tx.execute(
                "INSERT INTO webhooks (id, job_id, url, event, payload, state, next_at, created_at)
                 VALUES (?1, ?2, ?3, ?4, ?5, 'pending', ?6, ?6)",
                params![
                    format!("msg_{}", new_id(now)),
                    id,
                    url,
                    event,
                    payload.to_string(),
                    now
                ],
            )?;
        }
    }
    Ok(())
}

const WEBHOOK_COLUMNS: &str =
    "id, job_id, url, event, payload, state, attempts, next_at, last_error, delivered_at";

fn webhook_from_row(row: &Row<'_>) -> rusqlite::Result<WebhookDelivery> {
    let payload: String = row.get(4)?;
    let state: String = row.get(5)?;
    Ok(WebhookDelivery {
        id: row.get(0)?,
        job_id: row.get(1)?,
        url: row.get(2)?,
        event: row.get(3)?,
        payload: serde_json::from_str(&payload).unwrap_or(Value::Null),
        state: WebhookState::parse(&state).unwrap_or(WebhookState::Pending),
        attempts: row.get(6)?,
        next_at: row.get(7)?,
        last_error: row.get(8)?,
        delivered_at: row.get(9)?,
    })
}

/// The job behind `lease`, if the lease still holds it.
fn held(tx: &rusqlite::Transaction<'_>, lease: &Lease, now: Millis) -> Result<Job, QueueError> {
    let owned: Option<(String, Option<Millis>)> = tx
        .query_row(
            "SELECT state, lease_expires_at FROM jobs WHERE id = ?1 AND lease_id = ?2",
            params![lease.job.id, lease.lease_id],
            |row| Ok((row.get(0)?, row.get(1)?)),
        )
        .optional()?;
    match owned {
        Some((state, Some(expires))) if state == "running" && expires > now => {
            load(tx, &lease.job.id)
        }
        _ => Err(QueueError::LeaseLost(lease.job.id.clone())),
    }
}

/// Sortable ids: 48 bits of milliseconds then 80 random bits, in Crockford base32, so
/// ids order by creation and serve as list cursors.
fn new_id(now: Millis) -> String {
    const ALPHABET: &[u8; 32] = b"0123456789abcdefghjkmnpqrstvwxyz";
    let value: u128 = ((now.max(0) as u128) << 80) | (fastrand::u128(..) & ((1u128 << 80) - 1));
    let mut out = String::with_capacity(30);
    out.push_str("job_");
    for i in (0..26).rev() {
        out.push(ALPHABET[((value >> (i * 5)) & 31) as usize] as char);
    }
    out
}

impl SqliteQueue {
    /// Jobs whose worker stopped heartbeating go back to the queue (the attempt counts)
    /// or, out of attempts, fail with the reason.
    fn reap_expired(&self, tx: &rusqlite::Transaction<'_>, now: Millis) -> Result<(), QueueError> {
        let expired: Vec<String> = {
            let mut statement = tx.prepare(
                "SELECT id FROM jobs WHERE state = 'running' AND lease_expires_at <= ?1",
            )?;
            let rows = statement.query_map([now], |row| row.get(0))?;
            rows.collect::<Result<_, _>>()?
        };
        for id in expired {
            let job = load(tx, &id)?;
            tracing::warn!(job = %id, worker = ?job.worker, "lease expired; the worker is gone");
            self.end_attempt(
                tx,
                &job,
                now,
                ErrorCode::Internal,
                "the worker stopped responding (lease expired)",
                true,
            )?;
        }
        Ok(())
    }

    /// Queues the job again after a backoff, or fails it for good.
    fn end_attempt(
        &self,
        tx: &rusqlite::Transaction<'_>,
        job: &Job,
        now: Millis,
        code: ErrorCode,
        message: &str,
        retryable: bool,
    ) -> Result<Job, QueueError> {
        let retry = retryable && job.attempts < job.max_attempts && !job.cancel_requested;
        if retry {
            let run_after = now + self.policy.backoff_ms(job.attempts);
            tx.execute(
                "UPDATE jobs SET state = 'queued', run_after = ?2, lease_id = NULL, worker = NULL,
                     lease_expires_at = NULL, progress = 0, stage = NULL, error_code = ?3,
                     error_message = ?4, updated_at = ?5 WHERE id = ?1",
                params![job.id, run_after, code.as_str(), message, now],
            )?;
            append_event(
                tx,
                &job.id,
                now,
                "retrying",
                json!({ "attempt": job.attempts, "code": code.as_str(), "message": message, "run_after": run_after }),
            )?;
        } else if job.cancel_requested {
            tx.execute(
                "UPDATE jobs SET state = 'cancelled', lease_id = NULL, lease_expires_at = NULL,
                     updated_at = ?2, finished_at = ?2 WHERE id = ?1",
                params![job.id, now],
            )?;
            append_event(tx, &job.id, now, "cancelled", json!({}))?;
        } else {
            tx.execute(
                "UPDATE jobs SET state = 'failed', lease_id = NULL, lease_expires_at = NULL,
                     error_code = ?2, error_message = ?3, updated_at = ?4, finished_at = ?4
                 WHERE id = ?1",
                params![job.id, code.as_str(), message, now],
            )?;
            append_event(
                tx,
                &job.id,
                now,
                "failed",
                json!({ "attempts": job.attempts, "code": code.as_str(), "message": message }),
            )?;
        }
        load(tx, &job.id)
    }
}

impl JobQueue for SqliteQueue {
    fn submit(&self, new: NewJob) -> Result<Submitted, QueueError> {
        self.transaction(|tx, now| {
            if let Some(key) = &new.idempotency_key {
                let existing: Option<(String, String)> = tx
                    .query_row(
                        "SELECT id, fingerprint FROM jobs WHERE tenant = ?1 AND idempotency_key = ?2",
                        params![new.tenant, key],
                        |row| Ok((row.get(0)?, row.get(1)?)),
                    )
                    .optional()?;
                if let Some((id, fingerprint)) = existing {
                    if fingerprint != new.fingerprint {
                        return Err(QueueError::IdempotencyConflict {
                            key: key.clone(),
                            job: id,
                        });
                    }
                    return Ok(Submitted::Existing(load(tx, &id)?));
                }
            }
            if let Some(limit) = self.policy.max_queued {
                let queued: i64 =
                    tx.query_row("SELECT COUNT(*) FROM jobs WHERE state = 'queued'", [], |row| {
                        row.get(0)
                    })?;
                if queued as u64 >= limit {
                    return Err(QueueError::Full {
                        queued: queued as u64,
                    });
                }
            }
            let id = new_id(now);
            tx.execute(
                "INSERT INTO jobs (id, tenant, state, spec, media, idempotency_key, fingerprint,
                     max_attempts, run_after, created_at, updated_at, trace_parent)
                 VALUES (?1, ?2, 'queued', ?3, ?4, ?5, ?6, ?7, ?8, ?8, ?8, ?9)",
                params![
                    id,
                    new.tenant,
                    new.spec.to_string(),
                    new.media,
                    new.idempotency_key,
                    new.fingerprint,
                    new.max_attempts.unwrap_or(self.policy.max_attempts).max(1),
                    now,
                    new.trace_parent
                ],
            )?;
            append_event(tx, &id, now, "queued", json!({}))?;
            Ok(Submitted::Created(load(tx, &id)?))
        })
    }

    fn get(&self, id: &str) -> Result<Job, QueueError> {
        self.transaction(|tx, _| load(tx, id))
    }

    fn list(&self, query: &ListQuery) -> Result<JobPage, QueueError> {
        let limit = query.limit.clamp(1, 1000);
        self.transaction(|tx, _| {
            let mut statement = tx.prepare(&format!(
                "SELECT {JOB_COLUMNS} FROM jobs
                 WHERE (?1 IS NULL OR tenant = ?1) AND (?2 IS NULL OR state = ?2)
                   AND (?3 IS NULL OR id < ?3)
                 ORDER BY id DESC LIMIT ?4"
            ))?;
            let rows = statement.query_map(
                params![
                    query.tenant,
                    query.state.map(JobState::as_str),
                    query.cursor,
                    limit as i64 + 1
                ],
                job_from_row,
            )?;
            let mut jobs: Vec<Job> = rows.collect::<Result<_, _>>()?;
            let next_cursor = if jobs.len() > limit {
                jobs.truncate(limit);
                jobs.last().map(|j| j.id.clone())
            } else {
                None
            };
            Ok(JobPage { jobs, next_cursor })
        })
    }

    fn claim(&self, worker: &str) -> Result<Option<Lease>, QueueError> {
        self.transaction(|tx, now| {
            self.reap_expired(tx, now)?;
            let next: Option<String> = tx
                .query_row(
                    "SELECT id FROM jobs WHERE state = 'queued' AND run_after <= ?1
                     ORDER BY run_after, id LIMIT 1",
                    [now],
                    |row| row.get(0),
                )
                .optional()?;
            let Some(id) = next else {
                return Ok(None);
            };
            let lease_id = format!("{:016x}{:016x}", fastrand::u64(..), fastrand::u64(..));
            tx.execute(
                "UPDATE jobs SET state = 'running', attempts = attempts + 1, lease_id = ?2,
                     worker = ?3, lease_expires_at = ?4, progress = 0, stage = NULL,
                     started_at = COALESCE(started_at, ?5), updated_at = ?5
                 WHERE id = ?1",
                params![id, lease_id, worker, now + self.policy.lease_ms, now],
            )?;
            let job = load(tx, &id)?;
            append_event(
                tx,
                &id,
                now,
                "running",
                json!({ "attempt": job.attempts, "worker": worker }),
            )?;
            Ok(Some(Lease {
                job,
                lease_id,
                worker: worker.to_string(),
            }))
        })
    }

    fn heartbeat(
        &self,
        lease: &Lease,
        progress: Option<&Progress>,
    ) -> Result<Heartbeat, QueueError> {
        self.transaction(|tx, now| {
            let job = held(tx, lease, now)?;
            tx.execute(
                "UPDATE jobs SET lease_expires_at = ?2, updated_at = ?3 WHERE id = ?1",
                params![job.id, now + self.policy.lease_ms, now],
            )?;
            if let Some(progress) = progress {
                let fraction = progress.fraction.clamp(0.0, 1.0);
                let changed = job.stage.as_deref() != Some(progress.stage.as_str())
                    || (fraction - job.progress).abs() >= 0.01;
                tx.execute(
                    "UPDATE jobs SET progress = ?2, stage = ?3 WHERE id = ?1",
                    params![job.id, fraction as f64, progress.stage],
                )?;
                // Events are kept for percent steps and stage changes, not every tick.
                if changed {
                    append_event(
                        tx,
                        &job.id,
                        now,
                        "progress",
                        json!({ "stage": progress.stage, "progress": (fraction * 1000.0).round() / 1000.0 }),
                    )?;
                }
            }
            Ok(Heartbeat {
                cancel_requested: job.cancel_requested,
            })
        })
    }

    fn save_checkpoint(&self, lease: &Lease, key: &str, data: &[u8]) -> Result<(), QueueError> {
        self.transaction(|tx, now| {
            held(tx, lease, now)?;
            tx.execute(
                "INSERT INTO checkpoints (job_id, key, data, at) VALUES (?1, ?2, ?3, ?4)
                 ON CONFLICT (job_id, key) DO UPDATE SET data = excluded.data, at = excluded.at",
                params![lease.job.id, key, data, now],
            )?;
            Ok(())
        })
    }

    fn checkpoints(&self, id: &str) -> Result<Vec<Checkpoint>, QueueError> {
        self.transaction(|tx, _| {
            load(tx, id)?;
            let mut statement =
                tx.prepare("SELECT key, data FROM checkpoints WHERE job_id = ?1 ORDER BY key")?;
            let rows = statement.query_map([id], |row| {
                Ok(Checkpoint {
                    key: row.get(0)?,
                    data: row.get(1)?,
                })
            })?;
            Ok(rows.collect::<Result<_, _>>()?)
        })
    }

    fn succeed(&self, lease: &Lease, result: Value) -> Result<Job, QueueError> {
        self.transaction(|tx, now| {
            let job = held(tx, lease, now)?;
            tx.execute(
                "UPDATE jobs SET state = 'succeeded', result = ?2, progress = 1, lease_id = NULL,
                     lease_expires_at = NULL, error_code = NULL, error_message = NULL,
                     updated_at = ?3, finished_at = ?3
                 WHERE id = ?1",
                params![job.id, result.to_string(), now],
            )?;
            // Checkpoints only serve a retry; a finished job does not need them.
            tx.execute("DELETE FROM checkpoints WHERE job_id = ?1", [&job.id])?;
            append_event(
                tx,
                &job.id,
                now,
                "succeeded",
                json!({ "attempts": job.attempts }),
            )?;
            load(tx, &job.id)
        })
    }

    fn fail(&self, lease: &Lease, code: ErrorCode, message: &str) -> Result<Job, QueueError> {
        self.transaction(|tx, now| {
            let job = held(tx, lease, now)?;
            self.end_attempt(tx, &job, now, code, message, code.retryable())
        })
    }

    fn release(&self, lease: &Lease) -> Result<Job, QueueError> {
        self.transaction(|tx, now| {
            let job = held(tx, lease, now)?;
            tx.execute(
                "UPDATE jobs SET state = 'queued', attempts = attempts - 1, lease_id = NULL,
                     worker = NULL, lease_expires_at = NULL, progress = 0, stage = NULL,
                     run_after = ?2, updated_at = ?2
                 WHERE id = ?1",
                params![job.id, now],
            )?;
            append_event(
                tx,
                &job.id,
                now,
                "queued",
                json!({ "released_by": lease.worker }),
            )?;
            load(tx, &job.id)
        })
    }

    fn cancel(&self, id: &str) -> Result<Job, QueueError> {
        self.transaction(|tx, now| {
            let job = load(tx, id)?;
            match job.state {
                JobState::Queued => {
                    tx.execute(
                        "UPDATE jobs SET state = 'cancelled', updated_at = ?2, finished_at = ?2
                         WHERE id = ?1",
                        params![id, now],
                    )?;
                    append_event(tx, id, now, "cancelled", json!({}))?;
                }
                JobState::Running if !job.cancel_requested => {
                    tx.execute(
                        "UPDATE jobs SET cancel_requested = 1, updated_at = ?2 WHERE id = ?1",
                        params![id, now],
                    )?;
                    append_event(tx, id, now, "cancel_requested", json!({}))?;
                }
                JobState::Running => {}
                state => {
                    return Err(QueueError::InvalidState {
                        job: id.to_string(),
                        state: state.as_str(),
                        action: "cancel",
                    })
                }
            }
            load(tx, id)
        })
    }

    fn acknowledge_cancel(&self, lease: &Lease) -> Result<Job, QueueError> {
        self.transaction(|tx, now| {
            let job = held(tx, lease, now)?;
            tx.execute(
                "UPDATE jobs SET state = 'cancelled', lease_id = NULL, lease_expires_at = NULL,
                     updated_at = ?2, finished_at = ?2 WHERE id = ?1",
                params![job.id, now],
            )?;
            append_event(tx, &job.id, now, "cancelled", json!({}))?;
            load(tx, &job.id)
        })
    }

    fn delete(&self, id: &str) -> Result<Job, QueueError> {
        self.transaction(|tx, _| {
            let job = load(tx, id)?;
            tx.execute("DELETE FROM jobs WHERE id = ?1", [id])?;
            Ok(job)
        })
    }

    fn events(&self, id: &str, after_seq: u64) -> Result<Vec<JobEvent>, QueueError> {
        self.transaction(|tx, _| {
            load(tx, id)?;
            let mut statement = tx.prepare(
                "SELECT seq, at, kind, data FROM events WHERE job_id = ?1 AND seq > ?2 ORDER BY seq",
            )?;
            let rows = statement.query_map(params![id, after_seq as i64], |row| {
                let data: String = row.get(3)?;
                Ok(JobEvent {
                    seq: row.get::<_, i64>(0)? as u64,
                    at: row.get(1)?,
                    kind: row.get(2)?,
                    data: serde_json::from_str(&data).unwrap_or(Value::Null),
                })
            })?;
            Ok(rows.collect::<Result<_, _>>()?)
        })
    }

    fn claim_webhooks(
        &self,
        limit: usize,
        lease_ms: Millis,
    ) -> Result<Vec<WebhookDelivery>, QueueError> {
        self.transaction(|tx, now| {
            let due: Vec<WebhookDelivery> = {
                let mut statement = tx.prepare(&format!(
                    "SELECT {WEBHOOK_COLUMNS} FROM webhooks
                     WHERE state = 'pending' AND next_at <= ?1
                       AND (lease_until IS NULL OR lease_until <= ?1)
                     ORDER BY next_at, id LIMIT ?2"
                ))?;
                let rows = statement.query_map(params![now, limit as i64], webhook_from_row)?;
                rows.collect::<Result<_, _>>()?
            };
            let mut claimed = Vec::with_capacity(due.len());
            for mut delivery in due {
                tx.execute(
                    "UPDATE webhooks SET attempts = attempts + 1, lease_until = ?2 WHERE id = ?1",
                    params![delivery.id, now + lease_ms],
                )?;
                delivery.attempts += 1;
                claimed.push(delivery);
            }
            Ok(claimed)
        })
    }

    fn webhook_outcome(&self, id: &str, outcome: WebhookOutcome) -> Result<(), QueueError> {
        self.transaction(|tx, now| {
            // A deleted job took its deliveries with it; updating nothing is fine.
            match &outcome {
                WebhookOutcome::Delivered => tx.execute(
                    "UPDATE webhooks SET state = 'delivered', lease_until = NULL,
                         delivered_at = ?2, last_error = NULL WHERE id = ?1",
                    params![id, now],
                )?,
                WebhookOutcome::RetryAfter { after_ms, error } => tx.execute(
                    "UPDATE webhooks SET next_at = ?2, lease_until = NULL, last_error = ?3
                     WHERE id = ?1",
                    params![id, now + after_ms, error],
                )?,
                WebhookOutcome::GaveUp { error } => tx.execute(
                    "UPDATE webhooks SET state = 'abandoned', lease_until = NULL, last_error = ?2
                     WHERE id = ?1",
                    params![id, error],
                )?,
            };
            Ok(())
        })
    }

    fn webhooks(&self, job_id: &str) -> Result<Vec<WebhookDelivery>, QueueError> {
        self.transaction(|tx, _| {
            load(tx, job_id)?;
            let mut statement = tx.prepare(&format!(
                "SELECT {WEBHOOK_COLUMNS} FROM webhooks WHERE job_id = ?1 ORDER BY created_at, id"
            ))?;
            let rows = statement.query_map([job_id], webhook_from_row)?;
            Ok(rows.collect::<Result<_, _>>()?)
        })
    }

    fn stats(&self) -> Result<QueueStats, QueueError> {
        self.transaction(|tx, now| {
            let mut stats = QueueStats::default();
            let mut statement = tx.prepare("SELECT state, COUNT(*) FROM jobs GROUP BY state")?;
            let rows = statement.query_map([], |row| {
                Ok((row.get::<_, String>(0)?, row.get::<_, i64>(1)? as u64))
            })?;
            for row in rows {
                let (state, count) = row?;
                match JobState::parse(&state) {
                    Some(JobState::Queued) => stats.queued = count,
                    Some(JobState::Running) => stats.running = count,
                    Some(JobState::Succeeded) => stats.succeeded = count,
                    Some(JobState::Failed) => stats.failed = count,
                    Some(JobState::Cancelled) => stats.cancelled = count,
                    None => {}
                }
            }
            let oldest: Option<Millis> = tx.query_row(
                "SELECT MIN(created_at) FROM jobs WHERE state = 'queued'",
                [],
                |row| row.get(0),
            )?;
            stats.oldest_queued_ms = oldest.map(|t| now - t);
            Ok(stats)
        })
    }
}
