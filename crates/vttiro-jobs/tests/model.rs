//! The SQLite queue against a plain in-memory model of the same rules, over random
//! sequences of operations (proptest): after every step each job's state, attempts,
//! backoff and holder must match, and no job may be held twice or finished twice.

use std::collections::HashMap;
use std::sync::Arc;

use proptest::prelude::*;
use serde_json::json;
use vttiro_core::ErrorCode;
use vttiro_jobs::*;

const T0: Millis = 1_800_000_000_000;

fn policy() -> QueuePolicy {
    QueuePolicy {
        max_attempts: 3,
        lease_ms: 30_000,
        backoff_base_ms: 10_000,
        backoff_max_ms: 40_000,
        max_queued: None,
    }
}

#[derive(Debug, Clone)]
enum Op {
    Submit { key: Option<u8>, fingerprint: u8 },
    Claim,
    Heartbeat(usize),
    Succeed(usize),
    Fail { lease: usize, retryable: bool },
    Release(usize),
    Cancel(usize),
    Delete(usize),
    Advance(Millis),
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        3 => (proptest::option::of(0u8..3), 0u8..2)
            .prop_map(|(key, fingerprint)| Op::Submit { key, fingerprint }),
        4 => Just(Op::Claim),
        2 => (0usize..8).prop_map(Op::Heartbeat),
        2 => (0usize..8).prop_map(Op::Succeed),
        2 => ((0usize..8), any::<bool>()).prop_map(|(lease, retryable)| Op::Fail { lease, retryable }),
        1 => (0usize..8).prop_map(Op::Release),
        1 => (0usize..8).prop_map(Op::Cancel),
        1 => (0usize..8).prop_map(Op::Delete),
        2 => prop_oneof![Just(1_000), Just(10_000), Just(31_000)].prop_map(Op::Advance),
    ]
}

#[derive(Debug, Clone)]
struct ModelJob {
    id: String,
    state: JobState,
    attempts: u32,
    run_after: Millis,
    /// The lease id holding it and when that lease expires.
    holder: Option<(String, Millis)>,
    cancel_requested: bool,
    key: Option<u8>,
    fingerprint: u8,
}

#[derive(Default)]
struct Model {
    jobs: Vec<ModelJob>,
}

impl Model {
    fn position(&self, id: &str) -> Option<usize> {
        self.jobs.iter().position(|j| j.id == id)
    }

    fn end_attempt(&mut self, index: usize, now: Millis, retryable: bool) {
        let policy = policy();
        let job = &mut self.jobs[index];
        job.holder = None;
        if retryable && job.attempts < policy.max_attempts && !job.cancel_requested {
            job.state = JobState::Queued;
            job.run_after = now + policy.backoff_ms(job.attempts);
        } else if job.cancel_requested {
            job.state = JobState::Cancelled;
        } else {
            job.state = JobState::Failed;
        }
    }

    fn reap(&mut self, now: Millis) {
        for i in 0..self.jobs.len() {
            let expired = matches!(self.jobs[i].holder, Some((_, until)) if until <= now);
            if self.jobs[i].state == JobState::Running && expired {
                self.end_attempt(i, now, true);
            }
        }
    }

    fn held(&self, lease: &Lease, now: Millis) -> Option<usize> {
        let i = self.position(&lease.job.id)?;
        match &self.jobs[i].holder {
            Some((id, until)) if *id == lease.lease_id && *until > now => Some(i),
            _ => None,
        }
    }
}

fn run(ops: Vec<Op>) -> Result<(), TestCaseError> {
    let dir = tempfile::tempdir().unwrap();
    let clock = Arc::new(ManualClock::new(T0));
    let queue = SqliteQueue::open(&dir.path().join("jobs.db"), clock.clone(), policy()).unwrap();
    let mut model = Model::default();
    let mut leases: Vec<Lease> = Vec::new();
    let mut finished: HashMap<String, JobState> = HashMap::new();
    for op in ops {
        let now = clock.now_ms();
        match op {
            Op::Submit { key, fingerprint } => {
                let result = queue.submit(NewJob {
                    tenant: "t".into(),
                    spec: json!({}),
                    media: None,
                    idempotency_key: key.map(|k| format!("key-{k}")),
                    fingerprint: format!("fp-{fingerprint}"),
                    max_attempts: None,
                    trace_parent: None,
                });
                let earlier = key.and_then(|k| model.jobs.iter().find(|j| j.key == Some(k)));
                match (earlier, result) {
                    (Some(job), Ok(Submitted::Existing(found))) => {
                        prop_assert_eq!(job.fingerprint, fingerprint);
                        prop_assert_eq!(&found.id, &job.id);
                    }
                    (Some(job), Err(QueueError::IdempotencyConflict { .. })) => {
                        prop_assert_ne!(job.fingerprint, fingerprint);
                    }
                    (None, Ok(Submitted::Created(job))) => model.jobs.push(ModelJob {
                        id: job.id,
                        state: JobState::Queued,
                        attempts: 0,
                        run_after: now,
                        holder: None,
                        cancel_requested: false,
                        key,
                        fingerprint,
                    }),
                    (expected, got) => {
                        return Err(TestCaseError::fail(format!(
                            "submit: model {expected:?}, queue {got:?}"
                        )))
                    }
                }
            }
            Op::Claim => {
                model.reap(now);
                let next = model
                    .jobs
                    .iter()
                    .enumerate()
                    .filter(|(_, j)| j.state == JobState::Queued && j.run_after <= now)
                    .min_by(|(_, a), (_, b)| (a.run_after, &a.id).cmp(&(b.run_after, &b.id)))
                    .map(|(i, _)| i);
                let claimed = queue.claim("w").unwrap();
                match (next, claimed) {
                    (None, None) => {}
                    (Some(i), Some(lease)) => {
                        prop_assert_eq!(&lease.job.id, &model.jobs[i].id);
                        let job = &mut model.jobs[i];
                        job.state = JobState::Running;
                        job.attempts += 1;
                        job.holder = Some((lease.lease_id.clone(), now + policy().lease_ms));
                        leases.push(lease);
                    }
                    (expected, got) => {
                        return Err(TestCaseError::fail(format!(
                            "claim: model {expected:?}, queue {:?}",
                            got.map(|l| l.job.id)
                        )))
                    }
                }
            }
            Op::Heartbeat(n) | Op::Succeed(n) | Op::Release(n) | Op::Fail { lease: n, .. } => {
                // Mostly the newest leases, so attempts run to their end; now and then an
                // old one, which must have been lost.
                if leases.is_empty() {
                    continue;
                }
                let back = if n < 6 { n % 2 } else { n };
                let lease = leases[leases.len() - 1 - back.min(leases.len() - 1)].clone();
                let holder = model.held(&lease, now);
                let outcome = match &op {
                    Op::Heartbeat(_) => queue.heartbeat(&lease, None).map(|_| ()),
                    Op::Succeed(_) => queue.succeed(&lease, json!({})).map(|_| ()),
                    Op::Release(_) => queue.release(&lease).map(|_| ()),
                    Op::Fail { retryable, .. } => {
                        let code = if *retryable {
                            ErrorCode::EngineFailed
                        } else {
                            ErrorCode::CorruptMedia
                        };
                        queue.fail(&lease, code, "failed").map(|_| ())
                    }
                    _ => unreachable!(),
                };
                match (holder, outcome) {
                    (None, Err(QueueError::LeaseLost(_))) => {}
                    (Some(i), Ok(())) => match &op {
                        Op::Heartbeat(_) => {
                            model.jobs[i].holder =
                                Some((lease.lease_id.clone(), now + policy().lease_ms));
                        }
                        Op::Succeed(_) => {
                            model.jobs[i].state = JobState::Succeeded;
                            model.jobs[i].holder = None;
                        }
                        Op::Release(_) => {
                            let job = &mut model.jobs[i];
                            job.state = JobState::Queued;
                            job.attempts -= 1;
                            job.run_after = now;
                            job.holder = None;
                        }
                        Op::Fail { retryable, .. } => model.end_attempt(i, now, *retryable),
                        _ => unreachable!(),
                    },
                    (expected, got) => {
                        return Err(TestCaseError::fail(format!(
                            "{op:?}: model holder {expected:?}, queue {got:?}"
                        )))
                    }
                }
            }
            Op::Cancel(n) | Op::Delete(n) => {
                if model.jobs.is_empty() {
                    continue;
                }
                let i = n % model.jobs.len();
                let id = model.jobs[i].id.clone();
                if matches!(op, Op::Delete(_)) {
                    queue.delete(&id).unwrap();
                    model.jobs.remove(i);
                    finished.remove(&id);
                    let gone = matches!(queue.get(&id), Err(QueueError::NotFound(_)));
                    prop_assert!(gone);
                    continue;
                }
                let result = queue.cancel(&id);
                let job = &mut model.jobs[i];
                match job.state {
                    JobState::Queued => {
                        prop_assert!(result.is_ok());
                        job.state = JobState::Cancelled;
                    }
                    JobState::Running => {
                        prop_assert!(result.is_ok());
                        job.cancel_requested = true;
                    }
                    _ => {
                        let refused = matches!(result, Err(QueueError::InvalidState { .. }));
                        prop_assert!(refused, "cancel of a final job: {:?}", result);
                    }
                }
            }
            Op::Advance(by) => clock.advance(by),
        }
        for job in &model.jobs {
            let real = queue.get(&job.id).unwrap();
            prop_assert_eq!(real.state, job.state, "state of {}", &job.id);
            prop_assert_eq!(real.attempts, job.attempts, "attempts of {}", &job.id);
            if job.state == JobState::Queued {
                prop_assert_eq!(real.run_after, job.run_after, "run_after of {}", &job.id);
            }
            prop_assert_eq!(real.cancel_requested, job.cancel_requested);
            if job.state.is_final() {
                if let Some(before) = finished.insert(job.id.clone(), job.state) {
                    prop_assert_eq!(before, job.state, "a final state changed");
                }
            }
        }
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 128, ..ProptestConfig::default() })]
    #[test]
    fn the_queue_follows_the_model(ops in proptest::collection::vec(op(), 1..120)) {
        run(ops)?;
    }
}
