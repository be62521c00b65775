//! Workers: threads that claim jobs, keep their leases alive with heartbeats while the
//! runner works, store the results, and record the outcome. A worker that dies simply
//! stops heartbeating; the queue hands its job to another.

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use serde_json::{json, Value};
use sha2::{Digest, Sha256};
use vttiro_core::ErrorCode;
use vttiro_jobs::{JobQueue, JobState, Lease, Progress, QueueError};
use vttiro_storage::{FetchPolicy, Store};

/// What a runner gets for one attempt.
pub struct RunRequest<'a> {
    pub job_id: &'a str,
    pub spec: &'a Value,
    pub media: PathBuf,
    /// Formats to produce (`vtt`, `srt`, `json`, `txt`, `rttm`).
    pub formats: Vec<String>,
}

/// What a successful run produced.
#[derive(Debug, Clone)]
pub struct RunOutput {
    /// Each requested format and its bytes.
    pub files: Vec<(String, Vec<u8>)>,
    /// Recorded on the job (timings, engine, usage, ...).
    pub summary: Value,
}

#[derive(Debug, Clone)]
pub struct RunFailure {
    pub code: ErrorCode,
    pub message: String,
}

/// What a runner may ask of the worker while it runs one attempt.
pub trait RunContext {
    /// May be called at any rate; the latest report rides on the next heartbeat.
    /// `fraction` is the whole job's, 0.0..=1.0; `stage` names the step now running.
    fn progress(&mut self, stage: &str, fraction: f32);
    /// Turns true when the job was cancelled, deleted, or its lease lost, or the worker
    /// is shutting down past its deadline: stop early, the outcome is not recorded.
    fn cancelled(&self) -> bool;
    /// The checkpoint an earlier attempt of this job saved under `key`, if any.
    fn checkpoint(&self, key: &str) -> Option<Vec<u8>>;
    /// Saves work a later attempt can resume from; it lasts until the job is deleted.
    fn save_checkpoint(&mut self, key: &str, data: &[u8]) -> Result<(), RunFailure>;
}

/// Turns media into result files; the binary implements it with the pipeline.
pub trait JobRunner: Send + Sync + 'static {
    fn run(
        &self,
        request: &RunRequest<'_>,
        context: &mut dyn RunContext,
    ) -> Result<RunOutput, RunFailure>;
}

pub struct Workers {
    stop: Arc<AtomicBool>,
    abandon: Arc<AtomicBool>,
    threads: Vec<JoinHandle<()>>,
}

impl Workers {
    /// Stops taking jobs and gives the running ones `grace` to finish; past it their
    /// runners are told to stop and the jobs go back to the queue at once (not after a
    /// lease expiry), without using up an attempt.
    pub fn shutdown(self, grace: Duration) {
        self.stop.store(true, Ordering::SeqCst);
        let deadline = std::time::Instant::now() + grace;
        while std::time::Instant::now() < deadline && self.threads.iter().any(|t| !t.is_finished())
        {
            std::thread::sleep(Duration::from_millis(50));
        }
        if self.threads.iter().any(|t| !t.is_finished()) {
            tracing::warn!("shutdown grace over: releasing the jobs still running");
            self.abandon.store(true, Ordering::SeqCst);
        }
        for thread in self.threads {
            let _ = thread.join();
        }
    }
}

/// Marks a checkpoint row whose data is a storage key (an encrypted store's checkpoint).
const SEALED_CHECKPOINT: &[u8] = b"vttiro-sealed-checkpoint:";

#[derive(Clone)]
struct Shared {
    queue: Arc<dyn JobQueue>,
    store: Store,
    runner: Arc<dyn JobRunner>,
    fetch: FetchPolicy,
    heartbeat: Duration,
    stop: Arc<AtomicBool>,
    abandon: Arc<AtomicBool>,
    metrics: Arc<crate::Metrics>,
    usage: Option<Arc<vttiro_auth::AuthDb>>,
}

/// What every thread of a worker pool shares.
pub struct WorkerSetup {
    pub queue: Arc<dyn JobQueue>,
    pub store: Store,
    pub runner: Arc<dyn JobRunner>,
    /// Which addresses media URLs may be fetched from.
    pub fetch: FetchPolicy,
    /// How often a running job's lease is renewed; well under the queue's lease.
    pub heartbeat: Duration,
    pub metrics: Arc<crate::Metrics>,
    /// Where succeeded jobs' audio is counted against their submitter's daily quota.
    pub usage: Option<Arc<vttiro_auth::AuthDb>>,
}

/// Starts `count` worker threads named `{name}-{i}`.
pub fn spawn_workers(count: usize, name: &str, setup: WorkerSetup) -> Workers {
    setup.metrics.set_workers(count.max(1) as u64);
    let stop = Arc::new(AtomicBool::new(false));
    let abandon = Arc::new(AtomicBool::new(false));
    let shared = Shared {
        queue: setup.queue,
        store: setup.store,
        runner: setup.runner,
        fetch: setup.fetch,
        heartbeat: setup.heartbeat,
        stop: stop.clone(),
        abandon: abandon.clone(),
        metrics: setup.metrics,
        usage: setup.usage,
    };
    let threads = (0..count.max(1))
        .map(|i| {
            let shared = shared.clone();
            let worker = format!("{name}-{i}");
            std::thread::Builder::new()
                .name(worker.clone())
                .spawn(move || work(&shared, &worker))
                .expect("spawn worker thread")
        })
        .collect();
    Workers {
        stop,
        abandon,
        threads,
    }
}

fn work(shared: &Shared, worker: &str) {
    while !shared.stop.load(Ordering::SeqCst) {
        match shared.queue.claim(worker) {
            Ok(Some(lease)) => run_one(shared, lease),
            // PostgreSQL wakes a waiting worker as soon as a job is queued.
            Ok(None) => shared.queue.wait_for_work(Duration::from_millis(100)),
            Err(e) => {
                tracing::error!(worker, error = %e, "cannot claim jobs");
                std::thread::sleep(Duration::from_secs(1));
            }
        }
    }
}

fn run_one(shared: &Shared, lease: Lease) {
    let id = lease.job.id.clone();
    // Every line this attempt logs, down to the pipeline's, names the job.
    let span = tracing::info_span!("job", job = %id, worker = %lease.worker);
    // The submitting request's trace continues here, even in another process.
    if let Some(parent) = &lease.job.trace_parent {
        crate::trace_context::adopt_traceparent(&span, parent);
    }
    let _entered = span.enter();
    tracing::info!(attempt = lease.job.attempts, "job started");
    let progress: Arc<Mutex<Option<Progress>>> = Arc::default();
    let cancelled = Arc::new(AtomicBool::new(false));
    let lost = Arc::new(AtomicBool::new(false));
    let done = Arc::new(AtomicBool::new(false));
    let beat = {
        let (queue, lease, progress, cancelled, lost, done) = (
            shared.queue.clone(),
            lease.clone(),
            progress.clone(),
            cancelled.clone(),
            lost.clone(),
            done.clone(),
        );
        let every = shared.heartbeat;
        std::thread::spawn(move || {
            let step = Duration::from_millis(50);
            let mut waited = Duration::ZERO;
            while !done.load(Ordering::SeqCst) {
                std::thread::sleep(step);
                waited += step;
                if waited < every {
                    continue;
                }
                waited = Duration::ZERO;
                let report = progress.lock().expect("progress lock").take();
                match queue.heartbeat(&lease, report.as_ref()) {
                    Ok(beat) => cancelled.store(beat.cancel_requested, Ordering::SeqCst),
                    Err(QueueError::LeaseLost(_)) => {
                        lost.store(true, Ordering::SeqCst);
                        cancelled.store(true, Ordering::SeqCst);
                        return;
                    }
                    Err(e) => tracing::warn!(error = %e, "heartbeat failed"),
                }
            }
        })
    };
    shared.metrics.worker_busy(true);
    let outcome = attempt(shared, &lease, &progress, &cancelled);
    shared.metrics.worker_busy(false);
    done.store(true, Ordering::SeqCst);
    let _ = beat.join();
    if lost.load(Ordering::SeqCst) {
        // Deleted while running: whatever this attempt stored is erased too. (A lease lost
        // to expiry leaves the files: the new holder writes the same keys.)
        if matches!(shared.queue.get(&id), Err(QueueError::NotFound(_))) {
            let _ = shared.store.delete_prefix(&format!("jobs/{id}"));
        }
        tracing::warn!(job = %id, "lease lost mid-run; the attempt's work is void");
        shared.metrics.job_finished("lease_lost", None);
        return;
    }
    let mut error_code = None;
    let recorded = match outcome {
        Ok(result) => {
            shared.metrics.job_summary(&result["summary"]);
            // Before the success is recorded, so a crash in between cannot orphan them:
            // at worst a retry redoes the work they would have saved.
            drop_checkpoint_objects(shared, &id);
            let audio_ms = result["summary"]["audio_ms"].as_i64().unwrap_or(0);
            let succeeded = shared.queue.succeed(&lease, result);
            if let (Ok(_), Some(usage), Some(owner)) = (
                &succeeded,
                &shared.usage,
                lease.job.spec["submitted_by"].as_str(),
            ) {
                let day = vttiro_auth::utc_day(vttiro_auth::now_ms());
                if let Err(e) = usage.add_audio(owner, day, audio_ms) {
                    tracing::warn!(job = %id, error = %e, "could not count the job's audio");
                }
            }
            succeeded
        }
        Err(_) if shared.abandon.load(Ordering::SeqCst) => {
            tracing::warn!(job = %id, "released at shutdown; another worker takes it");
            shared.metrics.job_finished("released", None);
            let _ = shared.queue.release(&lease);
            return;
        }
        Err(_) if cancelled.load(Ordering::SeqCst) => shared.queue.acknowledge_cancel(&lease),
        Err(failure) => {
            tracing::warn!(job = %id, code = %failure.code, error = %failure.message, "attempt failed");
            error_code = Some(failure.code.as_str());
            shared.queue.fail(&lease, failure.code, &failure.message)
        }
    };
    match recorded {
        Ok(job) => {
            tracing::info!(job = %id, state = job.state.as_str(), "job recorded");
            // A success's checkpoints went before it was recorded (above).
            if job.state.is_final() && job.state != JobState::Succeeded {
                drop_checkpoint_objects(shared, &id);
            }
            let outcome = match job.state {
                JobState::Queued => "retried",
                other => other.as_str(),
            };
            shared.metrics.job_finished(outcome, error_code);
        }
        Err(e) => tracing::warn!(job = %id, error = %e, "could not record the outcome"),
    }
}

/// Sealed checkpoints live in the store beside the job's results (see
/// `save_checkpoint`); the queue forgets its references when the job ends, so the objects
/// must go too.
fn drop_checkpoint_objects(shared: &Shared, id: &str) {
    if !shared.store.is_encrypted() {
        return;
    }
    if let Err(e) = shared
        .store
        .delete_prefix(&format!("jobs/{id}/checkpoints"))
    {
        tracing::warn!(job = %id, error = %e, "could not delete the job's checkpoints");
    }
}

fn attempt(
    shared: &Shared,
    lease: &Lease,
    progress: &Arc<Mutex<Option<Progress>>>,
    cancelled: &Arc<AtomicBool>,
) -> Result<Value, RunFailure> {
    let job = &lease.job;
    let failure = |code: ErrorCode, message: String| RunFailure { code, message };
    let media_key = match (&job.media, job.spec.get("url").and_then(Value::as_str)) {
        (Some(key), _) if shared.store.exists(key) => key.clone(),
        (_, Some(url)) => {
            let key = format!("jobs/{}/media", job.id);
            vttiro_storage::fetch(&shared.store, &key, url, &shared.fetch)
                .map_err(|e| failure(e.code(), e.to_string()))?;
            key
        }
        _ => {
            return Err(failure(
                ErrorCode::InputNotFound,
                "the job's media is gone".into(),
            ))
        }
    };
    // On an encrypted store this is a decrypted private copy, removed when the attempt ends.
    let media_file = shared
        .store
        .local_file(&media_key)
        .map_err(|e| failure(e.code(), e.to_string()))?;
    let media = media_file.path().to_path_buf();
    let formats: Vec<String> = job.spec["formats"]
        .as_array()
        .map(|f| {
            f.iter()
                .filter_map(Value::as_str)
                .map(str::to_string)
                .collect()
        })
        .unwrap_or_else(|| vec!["vtt".into(), "json".into()]);
    let request = RunRequest {
        job_id: &job.id,
        spec: &job.spec,
        media,
        formats,
    };
    let saved = shared
        .queue
        .checkpoints(&job.id)
        .map_err(|e| failure(e.code(), e.to_string()))?;
    let mut context = WorkerContext {
        shared,
        lease,
        progress,
        cancelled,
        saved,
    };
    let RunOutput {
        files: outputs,
        summary,
    } = shared.runner.run(&request, &mut context)?;
    // The job's last stage, after the runner's: its results into storage.
    let _store = tracing::info_span!("store", files = outputs.len()).entered();
    let mut written = Vec::new();
    for (format, bytes) in &outputs {
        let key = format!("jobs/{}/result.{format}", job.id);
        shared
            .store
            .put(&key, &mut bytes.as_slice(), u64::MAX)
            .map_err(|e| failure(e.code(), e.to_string()))?;
        written.push(format.clone());
    }
    Ok(json!({ "formats": written, "summary": summary }))
}

struct WorkerContext<'a> {
    shared: &'a Shared,
    lease: &'a Lease,
    progress: &'a Arc<Mutex<Option<Progress>>>,
    cancelled: &'a Arc<AtomicBool>,
    saved: Vec<vttiro_jobs::Checkpoint>,
}

impl RunContext for WorkerContext<'_> {
    fn progress(&mut self, stage: &str, fraction: f32) {
        *self.progress.lock().expect("progress lock") = Some(Progress {
            fraction: fraction.clamp(0.0, 1.0),
            stage: stage.to_string(),
        });
    }

    fn cancelled(&self) -> bool {
        self.cancelled.load(Ordering::SeqCst) || self.shared.abandon.load(Ordering::SeqCst)
    }

    fn checkpoint(&self, key: &str) -> Option<Vec<u8>> {
        let data = &self.saved.iter().find(|c| c.key == key)?.data;
        let Some(object) = data.strip_prefix(SEALED_CHECKPOINT) else {
            return Some(data.clone());
        };
        // A checkpoint that cannot be read back is only lost work: the group runs again.
        let object = std::str::from_utf8(object).ok()?;
        let mut bytes = Vec::new();
        let mut reader = self.shared.store.open_read(object).ok()?;
        std::io::Read::read_to_end(&mut reader, &mut bytes).ok()?;
        Some(bytes)
    }

    fn save_checkpoint(&mut self, key: &str, data: &[u8]) -> Result<(), RunFailure> {
        let failed = |code: ErrorCode, message: String| RunFailure { code, message };
        // Checkpoints hold transcript text. On an encrypted store they are sealed objects
        // beside the job's results, and the queue (which fences writes by lease) keeps only
        // where they are, so the database file reveals no more than the store does.
        let recorded = if self.shared.store.is_encrypted() {
            let digest: String = Sha256::digest(key.as_bytes())
                .iter()
                .take(16)
                .map(|b| format!("{b:02x}"))
                .collect();
            let object = format!("jobs/{}/checkpoints/{digest}", self.lease.job.id);
            self.shared
                .store
                .put(&object, &mut &data[..], u64::MAX)
                .map_err(|e| failed(e.code(), e.to_string()))?;
            [SEALED_CHECKPOINT, object.as_bytes()].concat()
        } else {
            data.to_vec()
        };
        self.shared
            .queue
            .save_checkpoint(self.lease, key, &recorded)
            .map_err(|e| RunFailure {
                code: e.code(),
                message: e.to_string(),
            })?;
        self.saved.retain(|c| c.key != key);
        self.saved.push(vttiro_jobs::Checkpoint {
            key: key.to_string(),
            data: recorded,
        });
        Ok(())
    }
}
