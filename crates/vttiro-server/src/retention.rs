//! The retention sweeper: a finished job's media is erased `media_hours` after it ended,
//! and the whole job (record, history, results, checkpoints) `result_days` after, per the
//! tenant's policy in the auth database or else the server's defaults. Each erasure is
//! written to the audit log as the `retention` actor. Time is an argument so tests step it.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use vttiro_auth::{AuditRecord, AuthDb};
use vttiro_jobs::{Job, JobQueue, JobState, ListQuery};
use vttiro_storage::Store;

/// The server-wide defaults; `None` keeps data until it is deleted.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Retention {
    pub media_hours: Option<u32>,
    pub result_days: Option<u32>,
}

#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct SweepReport {
    pub media_erased: usize,
    pub jobs_erased: usize,
}

/// Where a job's uploaded or fetched media lives.
fn media_keys(job: &Job) -> Vec<String> {
    let mut keys = vec![format!("jobs/{}/media", job.id)];
    if let Some(key) = &job.media {
        if !keys.contains(key) {
            keys.push(key.clone());
        }
    }
    keys
}

/// One pass over every finished job.
pub fn sweep(
    queue: &dyn JobQueue,
    store: &Store,
    auth: &AuthDb,
    defaults: Retention,
    now: i64,
) -> Result<SweepReport, String> {
    let policies = auth.tenant_policies().map_err(|e| e.to_string())?;
    let policy_for = |tenant: &str| {
        let own = policies.iter().find(|p| p.tenant == tenant);
        Retention {
            media_hours: own
                .and_then(|p| p.media_retention_hours)
                .or(defaults.media_hours),
            result_days: own
                .and_then(|p| p.result_retention_days)
                .or(defaults.result_days),
        }
    };
    let mut report = SweepReport::default();
    let erased = |job: &Job, action: &str, detail: String| {
        let _ = auth.append_audit(
            &AuditRecord {
                actor: "retention".into(),
                tenant: Some(job.tenant.clone()),
                action: action.into(),
                target: Some(job.id.clone()),
                outcome: "ok".into(),
                detail: Some(detail),
                ..Default::default()
            },
            now,
        );
    };
    for state in [JobState::Succeeded, JobState::Failed, JobState::Cancelled] {
        let mut cursor = None;
        loop {
            let page = queue
                .list(&ListQuery {
                    tenant: None,
                    state: Some(state),
                    cursor,
                    limit: 200,
                })
                .map_err(|e| e.to_string())?;
            for job in &page.jobs {
                let Some(ended) = job.finished_at else {
                    continue;
                };
                let policy = policy_for(&job.tenant);
                let expired = |limit: Option<u32>, unit_ms: i64| {
                    limit.is_some_and(|n| now >= ended + i64::from(n) * unit_ms)
                };
                if expired(policy.result_days, 86_400_000) {
                    match queue.delete(&job.id) {
                        Ok(_) => {
                            for key in media_keys(job) {
                                let _ = store.delete_prefix(key.trim_end_matches("/media"));
                            }
                            store
                                .delete_prefix(&format!("jobs/{}", job.id))
                                .map_err(|e| e.to_string())?;
                            report.jobs_erased += 1;
                            erased(
                                job,
                                "retention.job_erased",
                                format!("{} days after it ended", policy.result_days.unwrap_or(0)),
                            );
                        }
                        Err(vttiro_jobs::QueueError::NotFound(_)) => {}
                        Err(e) => return Err(e.to_string()),
                    }
                    continue;
                }
                if expired(policy.media_hours, 3_600_000) {
                    let mut any = false;
                    for key in media_keys(job) {
                        any |= store.delete(&key).map_err(|e| e.to_string())?;
                    }
                    if any {
                        report.media_erased += 1;
                        erased(
                            job,
                            "retention.media_erased",
                            format!("{} hours after it ended", policy.media_hours.unwrap_or(0)),
                        );
                    }
                }
            }
            match page.next_cursor {
                Some(next) => cursor = Some(next),
                None => break,
            }
        }
    }
    Ok(report)
}

/// A sweeper thread that runs [`sweep`] every `every` until stopped.
pub struct Sweeper {
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Sweeper {
    pub fn stop(mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(thread) = self.thread.take() {
            thread.thread().unpark();
            let _ = thread.join();
        }
    }
}

pub fn spawn_sweeper(
    queue: Arc<dyn JobQueue>,
    store: Store,
    auth: Arc<AuthDb>,
    defaults: Retention,
    every: Duration,
) -> Sweeper {
    let stop = Arc::new(AtomicBool::new(false));
    let thread = {
        let stop = stop.clone();
        std::thread::Builder::new()
            .name("retention".into())
            .spawn(move || {
                while !stop.load(Ordering::SeqCst) {
                    let now = vttiro_auth::now_ms();
                    match sweep(&*queue, &store, &auth, defaults, now) {
                        Ok(report) if report != SweepReport::default() => tracing::info!(
                            media = report.media_erased,
                            jobs = report.jobs_erased,
                            "retention: erased expired data"
                        ),
                        Ok(_) => {}
                        Err(e) => tracing::warn!(error = %e, "retention sweep failed"),
                    }
                    std::thread::park_timeout(every);
                }
            })
            .ok()
    };
    Sweeper { stop, thread }
}
