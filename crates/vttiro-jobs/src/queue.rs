//! The queue's logic, written once over [`crate::sql::Backend`]: the same statements and
//! transitions run on the embedded SQLite file and on PostgreSQL, so both stores pass one
//! test suite. Every operation is one transaction; rows a transaction changes are locked
//! first where the dialect needs it (PostgreSQL), and workers pick work with
//! `FOR UPDATE SKIP LOCKED` so they never wait on each other's claims.

use std::sync::Arc;

use serde_json::{json, Value};
use vttiro_core::ErrorCode;

use crate::model::*;
use crate::QueuePolicy;
use vttiro_sql::{vals, Backend, Row, RowExt, Tx};

pub(crate) const JOB_COLUMNS: &str =
    "id, tenant, state, spec, media, idempotency_key, attempts, max_attempts, \
     run_after, cancel_requested, progress, stage, error_code, error_message, result, \
     created_at, updated_at, started_at, finished_at, worker, lease_expires_at, trace_parent";

const WEBHOOK_COLUMNS: &str =
    "id, job_id, url, event, payload, state, attempts, next_at, last_error, delivered_at";

/// A job queue on a SQL database: [`crate::SqliteQueue`] or [`crate::PostgresQueue`].
pub struct SqlQueue<B> {
    pub(crate) backend: B,
    pub(crate) clock: Arc<dyn Clock>,
    pub(crate) policy: QueuePolicy,
}

fn job_from_row(row: &Row) -> Job {
    let error_code = row.opt_text(12);
    Job {
        id: row.text(0),
        tenant: row.text(1),
        state: JobState::parse(&row.text(2)).unwrap_or(JobState::Failed),
        spec: serde_json::from_str(&row.text(3)).unwrap_or(Value::Null),
        media: row.opt_text(4),
        idempotency_key: row.opt_text(5),
        attempts: row.int(6) as u32,
        max_attempts: row.int(7) as u32,
        run_after: row.int(8),
        cancel_requested: row.int(9) != 0,
        progress: row.real(10) as f32,
        stage: row.opt_text(11),
        error: error_code.map(|code| JobFailure {
            code,
            message: row.opt_text(13).unwrap_or_default(),
        }),
        result: row.opt_text(14).and_then(|r| serde_json::from_str(&r).ok()),
        created_at: row.int(15),
        updated_at: row.int(16),
        started_at: row.opt_int(17),
        finished_at: row.opt_int(18),
        worker: row.opt_text(19),
        lease_expires_at: row.opt_int(20),
        trace_parent: row.opt_text(21),
    }
}

fn webhook_from_row(row: &Row) -> WebhookDelivery {
    WebhookDelivery {
        id: row.text(0),
        job_id: row.text(1),
        url: row.text(2),
        event: row.text(3),
        payload: serde_json::from_str(&row.text(4)).unwrap_or(Value::Null),
        state: WebhookState::parse(&row.text(5)).unwrap_or(WebhookState::Pending),
        attempts: row.int(6) as u32,
        next_at: row.int(7),
        last_error: row.opt_text(8),
        delivered_at: row.opt_int(9),
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

/// The lock id submissions that enforce the queue limit serialise on (PostgreSQL).
const SUBMISSION_LOCK: i64 = 8536495413944041474;

impl<B: Backend> SqlQueue<B> {
    fn transaction<T>(
        &self,
        mut body: impl FnMut(&mut dyn Tx, Millis) -> Result<T, QueueError>,
    ) -> Result<T, QueueError> {
        self.backend.transaction(&|| self.clock.now_ms(), &mut body)
    }

    fn load(&self, tx: &mut dyn Tx, id: &str) -> Result<Job, QueueError> {
        tx.query_one(
            &format!("SELECT {JOB_COLUMNS} FROM jobs WHERE id = $1"),
            vals![id],
        )?
        .map(|row| job_from_row(&row))
        .ok_or_else(|| QueueError::NotFound(id.to_string()))
    }

    /// [`Self::load`], holding the row until the transaction ends (events are numbered
    /// per job, so everything that appends one takes the job's row first).
    fn lock(&self, tx: &mut dyn Tx, id: &str) -> Result<Job, QueueError> {
        tx.query_one(
            &format!(
                "SELECT {JOB_COLUMNS} FROM jobs WHERE id = $1{}",
                B::DIALECT.lock_rows
            ),
            vals![id],
        )?
        .map(|row| job_from_row(&row))
        .ok_or_else(|| QueueError::NotFound(id.to_string()))
    }

    /// The job behind `lease`, locked, if the lease still holds it.
    fn held(&self, tx: &mut dyn Tx, lease: &Lease, now: Millis) -> Result<Job, QueueError> {
        match self.lock(tx, &lease.job.id) {
            Ok(job) => {
                let owned = tx
                    .query_one(
                        "SELECT lease_expires_at FROM jobs WHERE id = $1 AND lease_id = $2",
                        vals![lease.job.id.as_str(), lease.lease_id.as_str()],
                    )?
                    .and_then(|row| row.opt_int(0));
                match owned {
                    Some(expires) if job.state == JobState::Running && expires > now => Ok(job),
                    _ => Err(QueueError::LeaseLost(lease.job.id.clone())),
                }
            }
            Err(QueueError::NotFound(_)) => Err(QueueError::LeaseLost(lease.job.id.clone())),
            Err(e) => Err(e),
        }
    }

    fn append_event(
        &self,
        tx: &mut dyn Tx,
        id: &str,
        now: Millis,
        kind: &str,
        data: Value,
    ) -> Result<(), QueueError> {
        tx.execute(
            "INSERT INTO events (job_id, seq, at, kind, data)
             VALUES ($1, COALESCE((SELECT MAX(seq) FROM events WHERE job_id = $1), 0) + 1, $2, $3, $4)",
            vals![id, now, kind, data.to_string()],
        )?;
        // The outbox row commits with the final state, so a crash between the two cannot
        // lose a notification or send one for a state that never committed.
        if matches!(kind, "succeeded" | "failed" | "cancelled") {
            let job = self.load(tx, id)?;
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
                     VALUES ($1, $2, $3, $4, $5, 'pending', $6, $6)",
                    vals![
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

    /// Work may be waiting: wake idle workers elsewhere once this transaction commits.
    fn announce(&self, tx: &mut dyn Tx) -> Result<(), QueueError> {
        if let Some(sql) = self.backend.notify_sql() {
            tx.execute(&sql, &[])?;
        }
        Ok(())
    }

    /// Jobs whose worker stopped heartbeating go back to the queue (the attempt counts)
    /// or, out of attempts, fail with the reason.
    fn reap_expired(&self, tx: &mut dyn Tx, now: Millis) -> Result<(), QueueError> {
        let expired = tx.query(
            &format!(
                "SELECT id FROM jobs WHERE state = 'running' AND lease_expires_at <= $1{}",
                B::DIALECT.skip_locked
            ),
            vals![now],
        )?;
        for row in expired {
            let job = self.load(tx, &row.text(0))?;
            tracing::warn!(job = %job.id, worker = ?job.worker, "lease expired; the worker is gone");
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
        tx: &mut dyn Tx,
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
                "UPDATE jobs SET state = 'queued', run_after = $2, lease_id = NULL, worker = NULL,
                     lease_expires_at = NULL, progress = 0, stage = NULL, error_code = $3,
                     error_message = $4, updated_at = $5 WHERE id = $1",
                vals![job.id.as_str(), run_after, code.as_str(), message, now],
            )?;
            self.append_event(
                tx,
                &job.id,
                now,
                "retrying",
                json!({ "attempt": job.attempts, "code": code.as_str(), "message": message, "run_after": run_after }),
            )?;
            self.announce(tx)?;
        } else if job.cancel_requested {
            tx.execute(
                "UPDATE jobs SET state = 'cancelled', lease_id = NULL, lease_expires_at = NULL,
                     updated_at = $2, finished_at = $2 WHERE id = $1",
                vals![job.id.as_str(), now],
            )?;
            self.append_event(tx, &job.id, now, "cancelled", json!({}))?;
        } else {
            tx.execute(
                "UPDATE jobs SET state = 'failed', lease_id = NULL, lease_expires_at = NULL,
                     error_code = $2, error_message = $3, updated_at = $4, finished_at = $4
                 WHERE id = $1",
                vals![job.id.as_str(), code.as_str(), message, now],
            )?;
            self.append_event(
                tx,
                &job.id,
                now,
                "failed",
                json!({ "attempts": job.attempts, "code": code.as_str(), "message": message }),
            )?;
        }
        self.load(tx, &job.id)
    }
}

impl<B: Backend> JobQueue for SqlQueue<B> {
    fn submit(&self, new: NewJob) -> Result<Submitted, QueueError> {
        self.transaction(|tx, now| {
            if let Some(key) = &new.idempotency_key {
                let existing = tx.query_one(
                    "SELECT id, fingerprint FROM jobs WHERE tenant = $1 AND idempotency_key = $2",
                    vals![new.tenant.as_str(), key.as_str()],
                )?;
                if let Some(row) = existing {
                    let id = row.text(0);
                    if row.text(1) != new.fingerprint {
                        return Err(QueueError::IdempotencyConflict {
                            key: key.clone(),
                            job: id,
                        });
                    }
                    return Ok(Submitted::Existing(self.load(tx, &id)?));
                }
            }
            if let Some(limit) = self.policy.max_queued {
                // Concurrent submitters count one after another.
                if let Some(serialize) = B::DIALECT.serialize {
                    tx.execute(serialize, vals![SUBMISSION_LOCK])?;
                }
                let queued = tx
                    .query_one("SELECT COUNT(*) FROM jobs WHERE state = 'queued'", &[])?
                    .map_or(0, |row| row.int(0));
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
                 VALUES ($1, $2, 'queued', $3, $4, $5, $6, $7, $8, $8, $8, $9)",
                vals![
                    id.as_str(),
                    new.tenant.as_str(),
                    new.spec.to_string(),
                    new.media.as_deref(),
                    new.idempotency_key.as_deref(),
                    new.fingerprint.as_str(),
                    new.max_attempts.unwrap_or(self.policy.max_attempts).max(1),
                    now,
                    new.trace_parent.as_deref()
                ],
            )?;
            self.append_event(tx, &id, now, "queued", json!({}))?;
            self.announce(tx)?;
            Ok(Submitted::Created(self.load(tx, &id)?))
        })
    }

    fn get(&self, id: &str) -> Result<Job, QueueError> {
        self.transaction(|tx, _| self.load(tx, id))
    }

    fn list(&self, query: &ListQuery) -> Result<JobPage, QueueError> {
        let limit = query.limit.clamp(1, 1000);
        self.transaction(|tx, _| {
            let rows = tx.query(
                &format!(
                    "SELECT {JOB_COLUMNS} FROM jobs
                     WHERE (CAST($1 AS TEXT) IS NULL OR tenant = $1)
                       AND (CAST($2 AS TEXT) IS NULL OR state = $2)
                       AND (CAST($3 AS TEXT) IS NULL OR id < $3)
                     ORDER BY id DESC LIMIT $4"
                ),
                vals![
                    query.tenant.as_deref(),
                    query.state.map(JobState::as_str),
                    query.cursor.as_deref(),
                    limit as i64 + 1
                ],
            )?;
            let mut jobs: Vec<Job> = rows.iter().map(job_from_row).collect();
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
            let next = tx.query_one(
                &format!(
                    "SELECT id FROM jobs WHERE state = 'queued' AND run_after <= $1
                     ORDER BY run_after, id LIMIT 1{}",
                    B::DIALECT.skip_locked
                ),
                vals![now],
            )?;
            let Some(row) = next else {
                return Ok(None);
            };
            let id = row.text(0);
            let lease_id = format!("{:016x}{:016x}", fastrand::u64(..), fastrand::u64(..));
            tx.execute(
                "UPDATE jobs SET state = 'running', attempts = attempts + 1, lease_id = $2,
                     worker = $3, lease_expires_at = $4, progress = 0, stage = NULL,
                     started_at = COALESCE(started_at, $5), updated_at = $5
                 WHERE id = $1",
                vals![
                    id.as_str(),
                    lease_id.as_str(),
                    worker,
                    now + self.policy.lease_ms,
                    now
                ],
            )?;
            let job = self.load(tx, &id)?;
            self.append_event(
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
            let job = self.held(tx, lease, now)?;
            tx.execute(
                "UPDATE jobs SET lease_expires_at = $2, updated_at = $3 WHERE id = $1",
                vals![job.id.as_str(), now + self.policy.lease_ms, now],
            )?;
            if let Some(progress) = progress {
                let fraction = progress.fraction.clamp(0.0, 1.0);
                let changed = job.stage.as_deref() != Some(progress.stage.as_str())
                    || (fraction - job.progress).abs() >= 0.01;
                tx.execute(
                    "UPDATE jobs SET progress = $2, stage = $3 WHERE id = $1",
                    vals![job.id.as_str(), fraction as f64, progress.stage.as_str()],
                )?;
                // Events are kept for percent steps and stage changes, not every tick.
                if changed {
                    self.append_event(
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
            self.held(tx, lease, now)?;
            tx.execute(
                "INSERT INTO checkpoints (job_id, key, data, at) VALUES ($1, $2, $3, $4)
                 ON CONFLICT (job_id, key) DO UPDATE SET data = excluded.data, at = excluded.at",
                vals![lease.job.id.as_str(), key, data, now],
            )?;
            Ok(())
        })
    }

    fn checkpoints(&self, id: &str) -> Result<Vec<Checkpoint>, QueueError> {
        self.transaction(|tx, _| {
            self.load(tx, id)?;
            let rows = tx.query(
                "SELECT key, data FROM checkpoints WHERE job_id = $1 ORDER BY key",
                vals![id],
            )?;
            Ok(rows
                .iter()
                .map(|row| Checkpoint {
                    key: row.text(0),
                    data: row.blob(1),
                })
                .collect())
        })
    }

    fn succeed(&self, lease: &Lease, result: Value) -> Result<Job, QueueError> {
        self.transaction(|tx, now| {
            let job = self.held(tx, lease, now)?;
            tx.execute(
                "UPDATE jobs SET state = 'succeeded', result = $2, progress = 1, lease_id = NULL,
                     lease_expires_at = NULL, error_code = NULL, error_message = NULL,
                     updated_at = $3, finished_at = $3
                 WHERE id = $1",
                vals![job.id.as_str(), result.to_string(), now],
            )?;
            // Checkpoints only serve a retry; a finished job does not need them.
            tx.execute(
                "DELETE FROM checkpoints WHERE job_id = $1",
                vals![job.id.as_str()],
            )?;
            self.append_event(
                tx,
                &job.id,
                now,
                "succeeded",
                json!({ "attempts": job.attempts }),
            )?;
            self.load(tx, &job.id)
        })
    }

    fn fail(&self, lease: &Lease, code: ErrorCode, message: &str) -> Result<Job, QueueError> {
        self.transaction(|tx, now| {
            let job = self.held(tx, lease, now)?;
            self.end_attempt(tx, &job, now, code, message, code.retryable())
        })
    }

    fn release(&self, lease: &Lease) -> Result<Job, QueueError> {
        self.transaction(|tx, now| {
            let job = self.held(tx, lease, now)?;
            tx.execute(
                "UPDATE jobs SET state = 'queued', attempts = attempts - 1, lease_id = NULL,
                     worker = NULL, lease_expires_at = NULL, progress = 0, stage = NULL,
                     run_after = $2, updated_at = $2
                 WHERE id = $1",
                vals![job.id.as_str(), now],
            )?;
            self.append_event(
                tx,
                &job.id,
                now,
                "queued",
                json!({ "released_by": lease.worker }),
            )?;
            self.announce(tx)?;
            self.load(tx, &job.id)
        })
    }

    fn cancel(&self, id: &str) -> Result<Job, QueueError> {
        self.transaction(|tx, now| {
            let job = self.lock(tx, id)?;
            match job.state {
                JobState::Queued => {
                    tx.execute(
                        "UPDATE jobs SET state = 'cancelled', updated_at = $2, finished_at = $2
                         WHERE id = $1",
                        vals![id, now],
                    )?;
                    self.append_event(tx, id, now, "cancelled", json!({}))?;
                }
                JobState::Running if !job.cancel_requested => {
                    tx.execute(
                        "UPDATE jobs SET cancel_requested = 1, updated_at = $2 WHERE id = $1",
                        vals![id, now],
                    )?;
                    self.append_event(tx, id, now, "cancel_requested", json!({}))?;
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
            self.load(tx, id)
        })
    }

    fn acknowledge_cancel(&self, lease: &Lease) -> Result<Job, QueueError> {
        self.transaction(|tx, now| {
            let job = self.held(tx, lease, now)?;
            tx.execute(
                "UPDATE jobs SET state = 'cancelled', lease_id = NULL, lease_expires_at = NULL,
                     updated_at = $2, finished_at = $2 WHERE id = $1",
                vals![job.id.as_str(), now],
            )?;
            self.append_event(tx, &job.id, now, "cancelled", json!({}))?;
            self.load(tx, &job.id)
        })
    }

    fn delete(&self, id: &str) -> Result<Job, QueueError> {
        self.transaction(|tx, _| {
            let job = self.lock(tx, id)?;
            tx.execute("DELETE FROM jobs WHERE id = $1", vals![id])?;
            Ok(job)
        })
    }

    fn events(&self, id: &str, after_seq: u64) -> Result<Vec<JobEvent>, QueueError> {
        self.transaction(|tx, _| {
            self.load(tx, id)?;
            let rows = tx.query(
                "SELECT seq, at, kind, data FROM events WHERE job_id = $1 AND seq > $2 ORDER BY seq",
                vals![id, after_seq as i64],
            )?;
            Ok(rows
                .iter()
                .map(|row| JobEvent {
                    seq: row.int(0) as u64,
                    at: row.int(1),
                    kind: row.text(2),
                    data: serde_json::from_str(&row.text(3)).unwrap_or(Value::Null),
                })
                .collect())
        })
    }

    fn claim_webhooks(
        &self,
        limit: usize,
        lease_ms: Millis,
    ) -> Result<Vec<WebhookDelivery>, QueueError> {
        self.transaction(|tx, now| {
            let due = tx.query(
                &format!(
                    "SELECT {WEBHOOK_COLUMNS} FROM webhooks
                     WHERE state = 'pending' AND next_at <= $1
                       AND (lease_until IS NULL OR lease_until <= $1)
                     ORDER BY next_at, id LIMIT $2{}",
                    B::DIALECT.skip_locked
                ),
                vals![now, limit as i64],
            )?;
            let mut claimed = Vec::with_capacity(due.len());
            for row in &due {
                let mut delivery = webhook_from_row(row);
                tx.execute(
                    "UPDATE webhooks SET attempts = attempts + 1, lease_until = $2 WHERE id = $1",
                    vals![delivery.id.as_str(), now + lease_ms],
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
                         delivered_at = $2, last_error = NULL WHERE id = $1",
                    vals![id, now],
                )?,
                WebhookOutcome::RetryAfter { after_ms, error } => tx.execute(
                    "UPDATE webhooks SET next_at = $2, lease_until = NULL, last_error = $3
                     WHERE id = $1",
                    vals![id, now + after_ms, error.as_str()],
                )?,
                WebhookOutcome::GaveUp { error } => tx.execute(
                    "UPDATE webhooks SET state = 'abandoned', lease_until = NULL, last_error = $2
                     WHERE id = $1",
                    vals![id, error.as_str()],
                )?,
            };
            Ok(())
        })
    }

    fn webhooks(&self, job_id: &str) -> Result<Vec<WebhookDelivery>, QueueError> {
        self.transaction(|tx, _| {
            self.load(tx, job_id)?;
            let rows = tx.query(
                &format!(
                    "SELECT {WEBHOOK_COLUMNS} FROM webhooks WHERE job_id = $1 ORDER BY created_at, id"
                ),
                vals![job_id],
            )?;
            Ok(rows.iter().map(webhook_from_row).collect())
        })
    }

    fn stats(&self) -> Result<QueueStats, QueueError> {
        self.transaction(|tx, now| {
            let mut stats = QueueStats::default();
            for row in tx.query("SELECT state, COUNT(*) FROM jobs GROUP BY state", &[])? {
                let count = row.int(1) as u64;
                match JobState::parse(&row.text(0)) {
                    Some(JobState::Queued) => stats.queued = count,
                    Some(JobState::Running) => stats.running = count,
                    Some(JobState::Succeeded) => stats.succeeded = count,
                    Some(JobState::Failed) => stats.failed = count,
                    Some(JobState::Cancelled) => stats.cancelled = count,
                    None => {}
                }
            }
            let oldest = tx
                .query_one(
                    "SELECT MIN(created_at) FROM jobs WHERE state = 'queued'",
                    &[],
                )?
                .and_then(|row| row.opt_int(0));
            stats.oldest_queued_ms = oldest.map(|t| now - t);
            Ok(stats)
        })
    }

    fn wait_for_work(&self, timeout: std::time::Duration) {
        self.backend.wait_for_work(timeout);
    }
}
