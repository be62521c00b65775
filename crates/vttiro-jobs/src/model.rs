//! The queue's vocabulary: jobs, their states, leases, events, and the errors a store
//! reports. Nothing here knows how jobs are stored.

use serde::Serialize;
use serde_json::Value;
use vttiro_core::ErrorCode;

/// Milliseconds since the Unix epoch, from the queue's [`Clock`].
pub type Millis = i64;

pub trait Clock: Send + Sync {
    fn now_ms(&self) -> Millis;
}

pub struct SystemClock;

impl Clock for SystemClock {
    fn now_ms(&self) -> Millis {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_millis() as Millis)
            .unwrap_or(0)
    }
}

/// A clock tests move by hand, so lease expiry and backoff are stepped, not slept.
pub struct ManualClock(std::sync::atomic::AtomicI64);

impl ManualClock {
    pub fn new(start: Millis) -> ManualClock {
        ManualClock(std::sync::atomic::AtomicI64::new(start))
    }

    pub fn advance(&self, by_ms: Millis) {
        self.0.fetch_add(by_ms, std::sync::atomic::Ordering::SeqCst);
    }
}

impl Clock for ManualClock {
    fn now_ms(&self) -> Millis {
        self.0.load(std::sync::atomic::Ordering::SeqCst)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, PartialOrd, Ord)]
#[serde(rename_all = "snake_case")]
pub enum JobState {
    Queued,
    Running,
    Succeeded,
    Failed,
    Cancelled,
}

impl JobState {
    pub const ALL: [JobState; 5] = [
        JobState::Queued,
        JobState::Running,
        JobState::Succeeded,
        JobState::Failed,
        JobState::Cancelled,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            JobState::Queued => "queued",
            JobState::Running => "running",
            JobState::Succeeded => "succeeded",
            JobState::Failed => "failed",
            JobState::Cancelled => "cancelled",
        }
    }

    pub fn parse(text: &str) -> Option<JobState> {
        JobState::ALL.into_iter().find(|s| s.as_str() == text)
    }

    /// No transition leaves a final state.
    pub fn is_final(self) -> bool {
        matches!(
            self,
            JobState::Succeeded | JobState::Failed | JobState::Cancelled
        )
    }
}

/// What a caller submits.
#[derive(Debug, Clone, PartialEq)]
pub struct NewJob {
    pub tenant: String,
    /// The job's options (engine, model, language, formats, webhook, ...), opaque here.
    pub spec: Value,
    /// Where the media is stored (a storage key), when it was uploaded.
    pub media: Option<String>,
    /// Resubmitting with the same key and the same request returns the first job.
    pub idempotency_key: Option<String>,
    /// A digest of the request; the same key with another fingerprint is a conflict.
    pub fingerprint: String,
    /// Attempts before the job fails for good; the queue's default when `None`.
    pub max_attempts: Option<u32>,
    /// The submitting request's W3C `traceparent`, so the worker's spans join its trace;
    /// opaque here.
    pub trace_parent: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct JobFailure {
    /// A stable name from the error-code table (`engine_failed`, ...).
    pub code: String,
    pub message: String,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Job {
    pub id: String,
    pub tenant: String,
    pub state: JobState,
    pub spec: Value,
    pub media: Option<String>,
    pub idempotency_key: Option<String>,
    /// Attempts started so far (a claim starts one).
    pub attempts: u32,
    pub max_attempts: u32,
    /// Not claimable before this time (backoff after a failed attempt).
    pub run_after: Millis,
    pub cancel_requested: bool,
    /// 0..=1 within the current attempt.
    pub progress: f32,
    pub stage: Option<String>,
    /// The last attempt's failure, kept after a retry so callers can see why.
    pub error: Option<JobFailure>,
    pub result: Option<Value>,
    pub created_at: Millis,
    pub updated_at: Millis,
    pub started_at: Option<Millis>,
    pub finished_at: Option<Millis>,
    /// Which worker holds the job while it runs.
    pub worker: Option<String>,
    pub lease_expires_at: Option<Millis>,
    /// The W3C `traceparent` the job was submitted with, if any.
    pub trace_parent: Option<String>,
}

/// A worker's hold on a running job. Every write a worker makes carries it, and the
/// store refuses writes from a lease that has expired or been replaced, so a worker that
/// stalled past its lease can never overwrite the attempt that replaced it.
#[derive(Debug, Clone, PartialEq)]
pub struct Lease {
    pub job: Job,
    pub lease_id: String,
    pub worker: String,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Submitted {
    Created(Job),
    /// An earlier submission with the same idempotency key and request.
    Existing(Job),
}

impl Submitted {
    pub fn job(&self) -> &Job {
        match self {
            Submitted::Created(job) | Submitted::Existing(job) => job,
        }
    }
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct ListQuery {
    pub tenant: Option<String>,
    pub state: Option<JobState>,
    /// The `next_cursor` of the previous page.
    pub cursor: Option<String>,
    pub limit: usize,
}

#[derive(Debug, Clone, PartialEq)]
pub struct JobPage {
    pub jobs: Vec<Job>,
    pub next_cursor: Option<String>,
}

/// A progress report from the worker holding the lease.
#[derive(Debug, Clone, PartialEq)]
pub struct Progress {
    pub fraction: f32,
    pub stage: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Heartbeat {
    /// The job was cancelled while running: stop and call `acknowledge_cancel`.
    pub cancel_requested: bool,
}

/// One entry in a job's durable history, numbered from 1, for Server-Sent Events that
/// resume from `Last-Event-ID`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct JobEvent {
    pub seq: u64,
    pub at: Millis,
    /// `queued`, `running`, `progress`, `retrying`, `succeeded`, `failed`, `cancelled`.
    pub kind: String,
    pub data: Value,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Checkpoint {
    pub key: String,
    pub data: Vec<u8>,
}

/// Where a webhook delivery stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum WebhookState {
    Pending,
    Delivered,
    /// Out of attempts; kept for inspection.
    Abandoned,
}

impl WebhookState {
    pub fn as_str(self) -> &'static str {
        match self {
            WebhookState::Pending => "pending",
            WebhookState::Delivered => "delivered",
            WebhookState::Abandoned => "abandoned",
        }
    }

    pub fn parse(text: &str) -> Option<WebhookState> {
        [
            WebhookState::Pending,
            WebhookState::Delivered,
            WebhookState::Abandoned,
        ]
        .into_iter()
        .find(|s| s.as_str() == text)
    }
}

/// A notification owed to a job's `webhook_url`, written in the same transaction as the
/// job's final state (an outbox), so it is sent at least once whatever crashes.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct WebhookDelivery {
    /// Stable across retries, so receivers can drop duplicates.
    pub id: String,
    pub job_id: String,
    pub url: String,
    /// `job.succeeded`, `job.failed` or `job.cancelled`.
    pub event: String,
    pub payload: Value,
    pub state: WebhookState,
    /// Delivery attempts started so far, this one included once claimed.
    pub attempts: u32,
    pub next_at: Millis,
    pub last_error: Option<String>,
    pub delivered_at: Option<Millis>,
}

/// How one delivery attempt ended.
#[derive(Debug, Clone, PartialEq)]
pub enum WebhookOutcome {
    Delivered,
    /// Due again `after_ms` from now (the queue's clock).
    RetryAfter {
        after_ms: Millis,
        error: String,
    },
    GaveUp {
        error: String,
    },
}

#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct QueueStats {
    pub queued: u64,
    pub running: u64,
    pub succeeded: u64,
    pub failed: u64,
    pub cancelled: u64,
    /// Age of the oldest job waiting to run, for autoscaling.
    pub oldest_queued_ms: Option<Millis>,
}

#[derive(Debug, thiserror::Error)]
pub enum QueueError {
    #[error("job {0} not found")]
    NotFound(String),
    #[error("idempotency key {key} was used for a different request (job {job})")]
    IdempotencyConflict { key: String, job: String },
    #[error("job {job}: cannot {action} a job that is {state}")]
    InvalidState {
        job: String,
        state: &'static str,
        action: &'static str,
    },
    /// The worker's lease expired or was replaced; its work on the job is void.
    #[error("job {0}: the lease is no longer held")]
    LeaseLost(String),
    #[error("job queue storage: {0}")]
    Storage(String),
    #[error("{queued} jobs are waiting; try again shortly")]
    Full { queued: u64 },
}

impl QueueError {
    pub fn code(&self) -> ErrorCode {
        match self {
            QueueError::NotFound(_) => ErrorCode::JobNotFound,
            QueueError::IdempotencyConflict { .. } | QueueError::InvalidState { .. } => {
                ErrorCode::Conflict
            }
            QueueError::LeaseLost(_) => ErrorCode::Internal,
            QueueError::Storage(_) => ErrorCode::StorageFailed,
            QueueError::Full { .. } => ErrorCode::QueueFull,
        }
    }
}

impl From<vttiro_sql::SqlError> for QueueError {
    fn from(e: vttiro_sql::SqlError) -> Self {
        QueueError::Storage(e.0)
    }
}

impl From<rusqlite::Error> for QueueError {
    fn from(e: rusqlite::Error) -> Self {
        QueueError::Storage(e.to_string())
    }
}

/// The durable job queue: one trait for the embedded SQLite store and, for scale-out,
/// PostgreSQL. Every method is one transaction; nothing relies on a single process.
pub trait JobQueue: Send + Sync {
    fn submit(&self, job: NewJob) -> Result<Submitted, QueueError>;
    fn get(&self, id: &str) -> Result<Job, QueueError>;
    fn list(&self, query: &ListQuery) -> Result<JobPage, QueueError>;
    /// Takes the oldest runnable job (after moving jobs with expired leases back to the
    /// queue or to `failed`) and starts an attempt on it.
    fn claim(&self, worker: &str) -> Result<Option<Lease>, QueueError>;
    /// Extends the lease, records progress, and says whether a cancel was requested.
    fn heartbeat(
        &self,
        lease: &Lease,
        progress: Option<&Progress>,
    ) -> Result<Heartbeat, QueueError>;
    fn save_checkpoint(&self, lease: &Lease, key: &str, data: &[u8]) -> Result<(), QueueError>;
    fn checkpoints(&self, id: &str) -> Result<Vec<Checkpoint>, QueueError>;
    fn succeed(&self, lease: &Lease, result: Value) -> Result<Job, QueueError>;
    /// Ends the attempt: back to the queue after a backoff when `code` is retryable and
    /// attempts remain, else `failed`.
    fn fail(&self, lease: &Lease, code: ErrorCode, message: &str) -> Result<Job, QueueError>;
    /// Gives the job back without spending an attempt (graceful shutdown).
    fn release(&self, lease: &Lease) -> Result<Job, QueueError>;
    /// A queued job is cancelled at once; a running one is flagged for its worker.
    fn cancel(&self, id: &str) -> Result<Job, QueueError>;
    fn acknowledge_cancel(&self, lease: &Lease) -> Result<Job, QueueError>;
    /// Erases the job, its checkpoints and events; returns what it was, so the caller can
    /// erase its media and results.
    fn delete(&self, id: &str) -> Result<Job, QueueError>;
    fn events(&self, id: &str, after_seq: u64) -> Result<Vec<JobEvent>, QueueError>;
    fn stats(&self) -> Result<QueueStats, QueueError>;
    /// Up to `limit` webhook deliveries that are due, each held for `lease_ms` so that
    /// several dispatchers never send the same one at once; counts the attempt.
    fn claim_webhooks(
        &self,
        limit: usize,
        lease_ms: Millis,
    ) -> Result<Vec<WebhookDelivery>, QueueError>;
    fn webhook_outcome(&self, id: &str, outcome: WebhookOutcome) -> Result<(), QueueError>;
    /// A job's deliveries, oldest first.
    fn webhooks(&self, job_id: &str) -> Result<Vec<WebhookDelivery>, QueueError>;

    /// Blocks until new work may have arrived or `timeout` passes: idle workers call it
    /// between empty claims. Stores that can be told of new jobs (PostgreSQL's
    /// `LISTEN/NOTIFY`) return early; the default just waits.
    fn wait_for_work(&self, timeout: std::time::Duration) {
        std::thread::sleep(timeout);
    }
}
