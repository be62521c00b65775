//! The job queue's contract, on SQLite and on PostgreSQL alike, stepped with a manual clock: lifecycle, idempotency,
//! retries with backoff, lost leases, cancellation, deletion, paging, durability, and
//! concurrent workers on one database file.

use std::collections::HashSet;
use std::path::Path;
use std::sync::Arc;

use serde_json::json;
use vttiro_core::ErrorCode;
use vttiro_jobs::*;

const T0: Millis = 1_800_000_000_000;

fn policy() -> QueuePolicy {
    QueuePolicy {
        max_attempts: 3,
        lease_ms: 30_000,
        backoff_base_ms: 10_000,
        backoff_max_ms: 60_000,
        max_queued: None,
    }
}

/// Where a test's queue lives: a SQLite file, or a PostgreSQL database of its own. Every
/// contract test below runs against both (the `sqlite` and `postgres` modules at the end).
trait Store: Sync {
    /// A queue on the store: each call is a new connection, as another process would open.
    fn open(&self, clock: Arc<ManualClock>, policy: QueuePolicy) -> Box<dyn JobQueue>;
    /// Rows left in the jobs, events and checkpoints tables.
    fn rows(&self) -> (i64, i64, i64);
}

struct SqliteStore(tempfile::TempDir);

impl SqliteStore {
    fn new() -> SqliteStore {
        SqliteStore(tempfile::tempdir().unwrap())
    }

    fn path(&self) -> std::path::PathBuf {
        self.0.path().join("jobs.db")
    }
}

impl Store for SqliteStore {
    fn open(&self, clock: Arc<ManualClock>, policy: QueuePolicy) -> Box<dyn JobQueue> {
        Box::new(SqliteQueue::open(&self.path(), clock, policy).unwrap())
    }

    fn rows(&self) -> (i64, i64, i64) {
        let connection = rusqlite::Connection::open(self.path()).unwrap();
        let count = |table: &str| -> i64 {
            connection
                .query_row(&format!("SELECT COUNT(*) FROM {table}"), [], |row| {
                    row.get(0)
                })
                .unwrap()
        };
        (count("jobs"), count("events"), count("checkpoints"))
    }
}

/// A database of its own on the test PostgreSQL server (a real one, started once per
/// test run by `vttiro_fixtures::postgres`).
struct PostgresStore(vttiro_fixtures::PostgresDatabase);

impl PostgresStore {
    fn new() -> PostgresStore {
        PostgresStore(vttiro_fixtures::postgres_database())
    }
}

impl Store for PostgresStore {
    fn open(&self, clock: Arc<ManualClock>, policy: QueuePolicy) -> Box<dyn JobQueue> {
        Box::new(PostgresQueue::connect(&self.0.url, clock, policy).unwrap())
    }

    fn rows(&self) -> (i64, i64, i64) {
        let count = |table: &str| -> i64 {
            self.0
                .psql(&format!("SELECT COUNT(*) FROM {table}"))
                .trim()
                .parse()
                .unwrap()
        };
        (count("jobs"), count("events"), count("checkpoints"))
    }
}

fn queue_at(store: &dyn Store) -> (Box<dyn JobQueue>, Arc<ManualClock>) {
    let clock = Arc::new(ManualClock::new(T0));
    (store.open(clock.clone(), policy()), clock)
}

fn sqlite_queue_at(path: &Path) -> (SqliteQueue, Arc<ManualClock>) {
    let clock = Arc::new(ManualClock::new(T0));
    let queue = SqliteQueue::open(path, clock.clone(), policy()).unwrap();
    (queue, clock)
}

fn new_job(key: Option<&str>, fingerprint: &str) -> NewJob {
    NewJob {
        tenant: "acme".into(),
        spec: json!({ "engine": "local", "formats": ["vtt"] }),
        media: Some("media/abc".into()),
        idempotency_key: key.map(Into::into),
        fingerprint: fingerprint.into(),
        max_attempts: None,
        trace_parent: None,
    }
}

fn kinds(queue: &dyn JobQueue, id: &str) -> Vec<String> {
    queue
        .events(id, 0)
        .unwrap()
        .into_iter()
        .map(|e| e.kind)
        .collect()
}

fn a_job_runs_from_queued_to_succeeded_with_progress_events_and_checkpoints(store: &dyn Store) {
    let (queue, clock) = queue_at(store);
    let job = queue.submit(new_job(None, "f1")).unwrap().job().clone();
    assert_eq!(job.state, JobState::Queued);
    assert!(job.id.starts_with("job_"));

    clock.advance(1_000);
    let lease = queue.claim("worker-a").unwrap().expect("a job to claim");
    assert_eq!(lease.job.id, job.id);
    assert_eq!(lease.job.state, JobState::Running);
    assert_eq!(lease.job.attempts, 1);
    assert_eq!(lease.job.lease_expires_at, Some(T0 + 1_000 + 30_000));
    assert!(
        queue.claim("worker-b").unwrap().is_none(),
        "one job, one holder"
    );

    let beat = queue
        .heartbeat(
            &lease,
            Some(&Progress {
                fraction: 0.25,
                stage: "transcribe".into(),
            }),
        )
        .unwrap();
    assert!(!beat.cancel_requested);
    queue
        .save_checkpoint(&lease, "chunk-0001", b"words of chunk 1")
        .unwrap();
    queue
        .save_checkpoint(&lease, "chunk-0001", b"rewritten")
        .unwrap();
    queue
        .save_checkpoint(&lease, "chunk-0002", b"words of chunk 2")
        .unwrap();
    let saved = queue.checkpoints(&job.id).unwrap();
    assert_eq!(saved.len(), 2);
    assert_eq!(saved[0].data, b"rewritten");
    let running = queue.get(&job.id).unwrap();
    assert_eq!(
        (running.progress, running.stage.as_deref()),
        (0.25, Some("transcribe"))
    );

    let done = queue
        .succeed(&lease, json!({ "outputs": ["vtt"] }))
        .unwrap();
    assert_eq!(done.state, JobState::Succeeded);
    assert_eq!(done.result, Some(json!({ "outputs": ["vtt"] })));
    assert_eq!(done.finished_at, Some(T0 + 1_000));
    assert!(queue.checkpoints(&job.id).unwrap().is_empty());
    assert_eq!(
        kinds(&*queue, &job.id),
        ["queued", "running", "progress", "succeeded"]
    );
    // Events resume after a given sequence number, as Last-Event-ID does.
    let later = queue.events(&job.id, 2).unwrap();
    assert_eq!(later.iter().map(|e| e.seq).collect::<Vec<_>>(), [3, 4]);
    assert!(matches!(
        queue.succeed(&lease, json!({})),
        Err(QueueError::LeaseLost(_))
    ));
}

fn idempotency_keys_return_the_first_job_or_conflict(store: &dyn Store) {
    let (queue, _) = queue_at(store);
    let first = queue.submit(new_job(Some("upload-42"), "same")).unwrap();
    assert!(matches!(first, Submitted::Created(_)));
    let again = queue.submit(new_job(Some("upload-42"), "same")).unwrap();
    assert!(matches!(again, Submitted::Existing(_)));
    assert_eq!(again.job().id, first.job().id);

    let error = queue
        .submit(new_job(Some("upload-42"), "other"))
        .unwrap_err();
    assert!(matches!(error, QueueError::IdempotencyConflict { .. }));
    assert_eq!(error.code(), ErrorCode::Conflict);
    assert_eq!(error.code().http_status(), 409);

    let mut other_tenant = new_job(Some("upload-42"), "other");
    other_tenant.tenant = "globex".into();
    assert!(matches!(
        queue.submit(other_tenant).unwrap(),
        Submitted::Created(_)
    ));
    assert_eq!(queue.stats().unwrap().queued, 2);
}

fn retryable_failures_back_off_exponentially_then_fail_with_the_last_error(store: &dyn Store) {
    let (queue, clock) = queue_at(store);
    let id = queue.submit(new_job(None, "f")).unwrap().job().id.clone();

    let lease = queue.claim("w").unwrap().unwrap();
    let after_first = queue
        .fail(&lease, ErrorCode::ProviderUnavailable, "503 from deepgram")
        .unwrap();
    assert_eq!(after_first.state, JobState::Queued);
    assert_eq!(after_first.run_after, T0 + 10_000);
    assert_eq!(
        after_first.error.as_ref().unwrap().code,
        "provider_unavailable"
    );

    clock.advance(9_999);
    assert!(queue.claim("w").unwrap().is_none(), "still backing off");
    clock.advance(1);
    let lease = queue.claim("w").unwrap().unwrap();
    assert_eq!(lease.job.attempts, 2);
    let after_second = queue
        .fail(&lease, ErrorCode::EngineFailed, "decoder crashed")
        .unwrap();
    assert_eq!(after_second.run_after, clock.now_ms() + 20_000);

    clock.advance(20_000);
    let lease = queue.claim("w").unwrap().unwrap();
    let last = queue
        .fail(&lease, ErrorCode::EngineFailed, "decoder crashed again")
        .unwrap();
    assert_eq!(last.state, JobState::Failed);
    assert_eq!(last.attempts, 3);
    assert_eq!(last.error.unwrap().message, "decoder crashed again");
    assert_eq!(
        kinds(&*queue, &id),
        ["queued", "running", "retrying", "running", "retrying", "running", "failed"]
    );
}

fn permanent_failures_are_not_retried(store: &dyn Store) {
    let (queue, _) = queue_at(store);
    queue.submit(new_job(None, "f")).unwrap();
    let lease = queue.claim("w").unwrap().unwrap();
    let job = queue
        .fail(&lease, ErrorCode::UnsupportedMedia, "not media")
        .unwrap();
    assert_eq!(job.state, JobState::Failed);
    assert_eq!(job.attempts, 1);
}

fn a_worker_that_stops_heartbeating_loses_the_job_to_another_and_cannot_finish_it(
    store: &dyn Store,
) {
    let (queue, clock) = queue_at(store);
    let id = queue.submit(new_job(None, "f")).unwrap().job().id.clone();
    let stalled = queue.claim("worker-a").unwrap().unwrap();
    clock.advance(20_000);
    queue.heartbeat(&stalled, None).unwrap();
    clock.advance(29_999);
    assert!(
        queue.claim("worker-b").unwrap().is_none(),
        "the renewed lease still holds"
    );
    clock.advance(1);

    // The lease ran out: the job goes back to the queue (after its backoff) for another.
    assert!(queue.claim("worker-b").unwrap().is_none());
    let requeued = queue.get(&id).unwrap();
    assert_eq!(requeued.state, JobState::Queued);
    assert!(requeued.error.unwrap().message.contains("lease expired"));
    clock.advance(10_000);
    let taken = queue.claim("worker-b").unwrap().unwrap();
    assert_eq!((taken.job.attempts, taken.worker.as_str()), (2, "worker-b"));

    for result in [
        queue.heartbeat(&stalled, None).map(|_| ()),
        queue
            .save_checkpoint(&stalled, "chunk-1", b"late")
            .map(|_| ()),
        queue.succeed(&stalled, json!({})).map(|_| ()),
        queue
            .fail(&stalled, ErrorCode::EngineFailed, "late")
            .map(|_| ()),
    ] {
        assert!(
            matches!(result, Err(QueueError::LeaseLost(_))),
            "{result:?}"
        );
    }
    let done = queue.succeed(&taken, json!({ "by": "worker-b" })).unwrap();
    assert_eq!(done.state, JobState::Succeeded);
    assert_eq!(
        kinds(&*queue, &id)
            .iter()
            .filter(|k| *k == "succeeded")
            .count(),
        1
    );
}

fn a_lost_lease_on_the_last_attempt_fails_the_job(store: &dyn Store) {
    let (queue, clock) = queue_at(store);
    let mut one_shot = new_job(None, "f");
    one_shot.max_attempts = Some(1);
    let id = queue.submit(one_shot).unwrap().job().id.clone();
    queue.claim("w").unwrap().unwrap();
    clock.advance(30_000);
    assert!(queue.claim("w").unwrap().is_none());
    let job = queue.get(&id).unwrap();
    assert_eq!(job.state, JobState::Failed);
    assert_eq!(job.error.unwrap().code, "internal");
}

fn cancelling_queued_and_running_jobs(store: &dyn Store) {
    let (queue, _) = queue_at(store);
    let waiting = queue.submit(new_job(None, "a")).unwrap().job().id.clone();
    let cancelled = queue.cancel(&waiting).unwrap();
    assert_eq!(cancelled.state, JobState::Cancelled);
    assert!(queue.claim("w").unwrap().is_none());

    let running = queue.submit(new_job(None, "b")).unwrap().job().id.clone();
    let lease = queue.claim("w").unwrap().unwrap();
    let flagged = queue.cancel(&running).unwrap();
    assert_eq!(
        (flagged.state, flagged.cancel_requested),
        (JobState::Running, true)
    );
    assert!(queue.heartbeat(&lease, None).unwrap().cancel_requested);
    let stopped = queue.acknowledge_cancel(&lease).unwrap();
    assert_eq!(stopped.state, JobState::Cancelled);

    let error = queue.cancel(&running).unwrap_err();
    assert_eq!(error.code(), ErrorCode::Conflict, "{error}");

    // A flagged job whose attempt then fails is cancelled, not retried.
    let third = queue.submit(new_job(None, "c")).unwrap().job().id.clone();
    let lease = queue.claim("w").unwrap().unwrap();
    queue.cancel(&third).unwrap();
    let job = queue
        .fail(&lease, ErrorCode::EngineFailed, "interrupted")
        .unwrap();
    assert_eq!(job.state, JobState::Cancelled);
}

fn releasing_gives_the_job_back_without_spending_an_attempt(store: &dyn Store) {
    let (queue, _) = queue_at(store);
    queue.submit(new_job(None, "f")).unwrap();
    let lease = queue.claim("shutting-down").unwrap().unwrap();
    let released = queue.release(&lease).unwrap();
    assert_eq!((released.state, released.attempts), (JobState::Queued, 0));
    let again = queue.claim("other").unwrap().unwrap();
    assert_eq!(again.job.attempts, 1);
}

fn deleting_erases_the_job_its_events_and_checkpoints(store: &dyn Store) {
    let (queue, _) = queue_at(store);
    let id = queue
        .submit(new_job(Some("k"), "f"))
        .unwrap()
        .job()
        .id
        .clone();
    let lease = queue.claim("w").unwrap().unwrap();
    queue.save_checkpoint(&lease, "chunk-1", b"x").unwrap();
    let deleted = queue.delete(&id).unwrap();
    assert_eq!(deleted.media.as_deref(), Some("media/abc"));
    assert!(matches!(queue.get(&id), Err(QueueError::NotFound(_))));
    assert!(matches!(queue.events(&id, 0), Err(QueueError::NotFound(_))));
    assert_eq!(queue.get(&id).unwrap_err().code().http_status(), 404);
    // Nothing of it is left in the file.
    assert_eq!(store.rows(), (0, 0, 0));
    // The idempotency key is free again.
    assert!(matches!(
        queue.submit(new_job(Some("k"), "g")).unwrap(),
        Submitted::Created(_)
    ));
}

/// Rows left in (jobs, events, checkpoints), read through a separate connection.
fn lists_page_newest_first_and_filter_by_state_and_tenant(store: &dyn Store) {
    let (queue, clock) = queue_at(store);
    let mut ids = Vec::new();
    for i in 0..25 {
        clock.advance(10);
        let mut job = new_job(None, &format!("f{i}"));
        if i % 5 == 0 {
            job.tenant = "globex".into();
        }
        ids.push(queue.submit(job).unwrap().job().id.clone());
    }
    let mut seen = Vec::new();
    let mut cursor = None;
    let mut pages = 0;
    loop {
        let page = queue
            .list(&ListQuery {
                cursor: cursor.clone(),
                limit: 10,
                ..Default::default()
            })
            .unwrap();
        pages += 1;
        seen.extend(page.jobs.iter().map(|j| j.id.clone()));
        match page.next_cursor {
            Some(next) => cursor = Some(next),
            None => break,
        }
    }
    assert_eq!(pages, 3);
    let newest_first: Vec<String> = ids.iter().rev().cloned().collect();
    assert_eq!(seen, newest_first);

    let globex = queue
        .list(&ListQuery {
            tenant: Some("globex".into()),
            limit: 100,
            ..Default::default()
        })
        .unwrap();
    assert_eq!(globex.jobs.len(), 5);
    queue.claim("w").unwrap().unwrap();
    let running = queue
        .list(&ListQuery {
            state: Some(JobState::Running),
            limit: 100,
            ..Default::default()
        })
        .unwrap();
    assert_eq!(running.jobs.len(), 1);
    assert_eq!(running.jobs[0].id, ids[0], "the oldest job runs first");
    let stats = queue.stats().unwrap();
    assert_eq!((stats.queued, stats.running), (24, 1));
    // The oldest waiting job is the second, submitted at T0+20; it is now T0+250.
    assert_eq!(stats.oldest_queued_ms, Some(230));
}

fn jobs_survive_closing_and_reopening_the_database(store: &dyn Store) {
    let id = {
        let (queue, _) = queue_at(store);
        let id = queue
            .submit(new_job(Some("k"), "f"))
            .unwrap()
            .job()
            .id
            .clone();
        queue.claim("w").unwrap().unwrap();
        id
    };
    let (queue, _) = queue_at(store);
    let job = queue.get(&id).unwrap();
    assert_eq!((job.state, job.attempts), (JobState::Running, 1));
    assert!(matches!(
        queue.submit(new_job(Some("k"), "f")).unwrap(),
        Submitted::Existing(_)
    ));
}

fn concurrent_workers_on_separate_connections_claim_each_job_exactly_once(store: &dyn Store) {
    let (queue, clock) = queue_at(store);
    for i in 0..120 {
        queue.submit(new_job(None, &format!("{i}"))).unwrap();
    }
    let all: Vec<String> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..4)
            .map(|w| {
                let clock = clock.clone();
                scope.spawn(move || {
                    // Each worker has its own connection, as separate processes would.
                    let queue = store.open(clock, policy());
                    let mut done = Vec::new();
                    while let Some(lease) = queue.claim(&format!("worker-{w}")).unwrap() {
                        queue.succeed(&lease, json!({ "worker": w })).unwrap();
                        done.push(lease.job.id);
                    }
                    done
                })
            })
            .collect();
        handles
            .into_iter()
            .flat_map(|h| h.join().unwrap())
            .collect()
    });
    let unique: HashSet<&String> = all.iter().collect();
    assert_eq!(all.len(), 120);
    assert_eq!(unique.len(), 120);
    assert_eq!(queue.stats().unwrap().succeeded, 120);
}

fn with_webhook(url: &str) -> NewJob {
    let mut job = new_job(None, "hook");
    job.spec["webhook_url"] = json!(url);
    job
}

fn final_states_owe_one_webhook_each_which_dispatchers_share_retry_and_give_up_on(
    store: &dyn Store,
) {
    let (queue, clock) = queue_at(store);
    let plain = queue.submit(new_job(None, "plain")).unwrap().job().clone();
    let hooked = queue
        .submit(with_webhook("https://hooks.example/a"))
        .unwrap()
        .job()
        .clone();
    let cancelled = queue
        .submit(with_webhook("https://hooks.example/b"))
        .unwrap()
        .job()
        .clone();
    // Nothing is owed before a job ends.
    assert!(queue.claim_webhooks(10, 5_000).unwrap().is_empty());

    queue.cancel(&cancelled.id).unwrap();
    for _ in 0..2 {
        let lease = queue.claim("w").unwrap().unwrap();
        queue
            .succeed(&lease, json!({ "formats": ["vtt"] }))
            .unwrap();
    }
    assert!(queue.webhooks(&plain.id).unwrap().is_empty());
    let owed = queue.webhooks(&hooked.id).unwrap();
    assert_eq!(owed.len(), 1);
    assert_eq!(owed[0].event, "job.succeeded");
    assert_eq!(owed[0].url, "https://hooks.example/a");
    assert_eq!(owed[0].payload["data"]["id"], json!(hooked.id));
    assert_eq!(owed[0].payload["data"]["state"], json!("succeeded"));
    assert_eq!(owed[0].payload["data"]["result"]["formats"], json!(["vtt"]));
    assert_eq!(
        queue.webhooks(&cancelled.id).unwrap()[0].event,
        "job.cancelled"
    );

    // A second dispatcher (its own connection) gets nothing while the first holds them.
    let other = store.open(clock.clone(), policy());
    let first = queue.claim_webhooks(10, 5_000).unwrap();
    assert_eq!(first.len(), 2);
    assert!(first.iter().all(|d| d.attempts == 1));
    assert!(other.claim_webhooks(10, 5_000).unwrap().is_empty());

    let hooked_delivery = first.iter().find(|d| d.job_id == hooked.id).unwrap();
    let cancelled_delivery = first.iter().find(|d| d.job_id == cancelled.id).unwrap();
    queue
        .webhook_outcome(&hooked_delivery.id, WebhookOutcome::Delivered)
        .unwrap();
    queue
        .webhook_outcome(
            &cancelled_delivery.id,
            WebhookOutcome::RetryAfter {
                after_ms: 60_000,
                error: "HTTP 503".into(),
            },
        )
        .unwrap();
    // Not due yet; then due, with the same id (receivers deduplicate on it).
    clock.advance(30_000);
    assert!(queue.claim_webhooks(10, 5_000).unwrap().is_empty());
    clock.advance(30_000);
    let again = queue.claim_webhooks(10, 5_000).unwrap();
    assert_eq!(again.len(), 1);
    assert_eq!(again[0].id, cancelled_delivery.id);
    assert_eq!(again[0].attempts, 2);
    assert_eq!(again[0].last_error.as_deref(), Some("HTTP 503"));
    queue
        .webhook_outcome(
            &again[0].id,
            WebhookOutcome::GaveUp {
                error: "HTTP 410".into(),
            },
        )
        .unwrap();
    clock.advance(600_000);
    assert!(queue.claim_webhooks(10, 5_000).unwrap().is_empty());
    assert_eq!(
        queue.webhooks(&cancelled.id).unwrap()[0].state,
        WebhookState::Abandoned
    );
    let delivered = &queue.webhooks(&hooked.id).unwrap()[0];
    assert_eq!(delivered.state, WebhookState::Delivered);
    assert!(delivered.delivered_at.is_some());

    // A dispatcher that died mid-delivery loses its hold when the lease runs out.
    let failed = queue
        .submit(with_webhook("https://hooks.example/c"))
        .unwrap()
        .job()
        .clone();
    let lease = queue.claim("w").unwrap().unwrap();
    queue
        .fail(&lease, ErrorCode::CorruptMedia, "the media is damaged")
        .unwrap();
    let held = queue.claim_webhooks(10, 5_000).unwrap();
    assert_eq!(held[0].event, "job.failed");
    assert_eq!(
        held[0].payload["data"]["error"]["code"],
        json!("corrupt_media")
    );
    clock.advance(5_000);
    assert_eq!(other.claim_webhooks(10, 5_000).unwrap()[0].id, held[0].id);

    // Deleting a job erases what it was still owed.
    queue.delete(&failed.id).unwrap();
    clock.advance(10_000);
    assert!(queue.claim_webhooks(10, 5_000).unwrap().is_empty());
}

fn the_queue_limit_holds_against_concurrent_submitters_but_not_idempotent_repeats(
    store: &dyn Store,
) {
    let clock = Arc::new(ManualClock::new(T0));
    let limited = QueuePolicy {
        max_queued: Some(5),
        ..policy()
    };
    let first = store.open(clock.clone(), limited.clone());
    first.submit(new_job(Some("kept"), "k")).unwrap();
    let outcomes: Vec<Result<Submitted, QueueError>> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..8)
            .map(|t| {
                let (clock, limited) = (clock.clone(), limited.clone());
                scope.spawn(move || {
                    let queue = store.open(clock, limited);
                    (0..3)
                        .map(|i| queue.submit(new_job(None, &format!("{t}-{i}"))))
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        handles
            .into_iter()
            .flat_map(|h| h.join().unwrap())
            .collect()
    });
    let created = outcomes.iter().filter(|o| o.is_ok()).count();
    assert_eq!(created, 4, "one slot was taken before");
    for refused in outcomes.iter().filter_map(|o| o.as_ref().err()) {
        assert!(
            matches!(refused, QueueError::Full { queued: 5 }),
            "{refused}"
        );
        assert_eq!(refused.code(), ErrorCode::QueueFull);
    }
    assert_eq!(first.stats().unwrap().queued, 5);
    // Resubmitting with a known key is not a new job, so a full queue still answers it.
    assert!(matches!(
        first.submit(new_job(Some("kept"), "k")).unwrap(),
        Submitted::Existing(_)
    ));
}

#[test]
fn a_trace_parent_rides_with_the_job_and_a_database_from_before_it_still_opens() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("jobs.db");
    // The jobs table as it was before `trace_parent`, holding one queued job.
    {
        let connection = rusqlite::Connection::open(&path).unwrap();
        connection
            .execute_batch(
                "CREATE TABLE jobs (
                    id TEXT PRIMARY KEY, tenant TEXT NOT NULL, state TEXT NOT NULL,
                    spec TEXT NOT NULL, media TEXT, idempotency_key TEXT,
                    fingerprint TEXT NOT NULL, attempts INTEGER NOT NULL DEFAULT 0,
                    max_attempts INTEGER NOT NULL, run_after INTEGER NOT NULL, lease_id TEXT,
                    worker TEXT, lease_expires_at INTEGER,
                    cancel_requested INTEGER NOT NULL DEFAULT 0,
                    progress REAL NOT NULL DEFAULT 0, stage TEXT, error_code TEXT,
                    error_message TEXT, result TEXT, created_at INTEGER NOT NULL,
                    updated_at INTEGER NOT NULL, started_at INTEGER, finished_at INTEGER);
                 INSERT INTO jobs (id, tenant, state, spec, fingerprint, max_attempts,
                    run_after, created_at, updated_at)
                 VALUES ('job_old', 't', 'queued', '{}', 'f', 3, 0, 0, 0);",
            )
            .unwrap();
    }
    let (queue, _) = sqlite_queue_at(&path);
    assert_eq!(queue.get("job_old").unwrap().trace_parent, None);
    // A second process opening the migrated file changes nothing.
    let (again, _) = sqlite_queue_at(&path);
    let parent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
    let submitted = again
        .submit(NewJob {
            trace_parent: Some(parent.into()),
            ..new_job(None, "traced")
        })
        .unwrap()
        .job()
        .clone();
    assert_eq!(submitted.trace_parent.as_deref(), Some(parent));
    let lease = queue.claim("w").unwrap().unwrap();
    let claimed = if lease.job.id == submitted.id {
        lease.job
    } else {
        queue.get(&submitted.id).unwrap()
    };
    assert_eq!(claimed.trace_parent.as_deref(), Some(parent));
}

/// Runs each contract test on both stores.
macro_rules! on_both_stores {
    ($($test:ident),* $(,)?) => {
        mod sqlite {
            $(#[test]
            fn $test() {
                super::$test(&super::SqliteStore::new());
            })*
        }
        mod postgres {
            $(#[test]
            fn $test() {
                super::$test(&super::PostgresStore::new());
            })*
        }
    };
}

on_both_stores!(
    a_job_runs_from_queued_to_succeeded_with_progress_events_and_checkpoints,
    idempotency_keys_return_the_first_job_or_conflict,
    retryable_failures_back_off_exponentially_then_fail_with_the_last_error,
    permanent_failures_are_not_retried,
    a_worker_that_stops_heartbeating_loses_the_job_to_another_and_cannot_finish_it,
    a_lost_lease_on_the_last_attempt_fails_the_job,
    cancelling_queued_and_running_jobs,
    releasing_gives_the_job_back_without_spending_an_attempt,
    deleting_erases_the_job_its_events_and_checkpoints,
    lists_page_newest_first_and_filter_by_state_and_tenant,
    jobs_survive_closing_and_reopening_the_database,
    concurrent_workers_on_separate_connections_claim_each_job_exactly_once,
    final_states_owe_one_webhook_each_which_dispatchers_share_retry_and_give_up_on,
    the_queue_limit_holds_against_concurrent_submitters_but_not_idempotent_repeats,
);
