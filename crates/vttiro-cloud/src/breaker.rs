//! One circuit breaker per provider endpoint, shared by every engine in the process: after
//! a run of failures the provider is skipped for a cool-down instead of being hammered (and
//! a fallback chain moves on at once); then one trial request decides whether it is back.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BreakerState {
    Closed,
    Open,
    /// Cool-down over; one request is on trial.
    HalfOpen,
}

#[derive(Debug)]
struct Inner {
    consecutive_failures: u32,
    opened_at: Option<Instant>,
    trial_in_flight: bool,
}

#[derive(Debug)]
pub struct Breaker {
    threshold: u32,
    cool_down: Duration,
    inner: Mutex<Inner>,
}

impl Breaker {
    pub fn new(threshold: u32, cool_down: Duration) -> Breaker {
        Breaker {
            threshold: threshold.max(1),
            cool_down,
            inner: Mutex::new(Inner {
                consecutive_failures: 0,
                opened_at: None,
                trial_in_flight: false,
            }),
        }
    }

    pub fn state(&self, now: Instant) -> BreakerState {
        let inner = self.inner.lock().expect("breaker lock");
        match inner.opened_at {
            None => BreakerState::Closed,
            Some(at) if now.duration_since(at) < self.cool_down => BreakerState::Open,
            Some(_) => BreakerState::HalfOpen,
        }
    }

    /// Whether a request may go out now; `Err` carries how long the circuit stays open.
    pub fn allow(&self, now: Instant) -> Result<(), Duration> {
        let mut inner = self.inner.lock().expect("breaker lock");
        match inner.opened_at {
            None => Ok(()),
            Some(at) => {
                let open_for = now.duration_since(at);
                if open_for < self.cool_down {
                    Err(self.cool_down - open_for)
                } else if inner.trial_in_flight {
                    Err(Duration::ZERO)
                } else {
                    inner.trial_in_flight = true;
                    Ok(())
                }
            }
        }
    }

    pub fn record_success(&self) {
        let mut inner = self.inner.lock().expect("breaker lock");
        inner.consecutive_failures = 0;
        inner.opened_at = None;
        inner.trial_in_flight = false;
    }

    pub fn record_failure(&self, now: Instant) {
        let mut inner = self.inner.lock().expect("breaker lock");
        inner.consecutive_failures += 1;
        if inner.trial_in_flight || inner.consecutive_failures >= self.threshold {
            inner.opened_at = Some(now);
        }
        inner.trial_in_flight = false;
    }

    pub fn consecutive_failures(&self) -> u32 {
        self.inner
            .lock()
            .expect("breaker lock")
            .consecutive_failures
    }
}

/// The process-wide breaker for `endpoint` (provider name plus base URL, so a proxy or a
/// test server gets its own).
pub fn shared_breaker(endpoint: &str, threshold: u32, cool_down: Duration) -> Arc<Breaker> {
    static BREAKERS: OnceLock<Mutex<HashMap<String, Arc<Breaker>>>> = OnceLock::new();
    let mut map = BREAKERS
        .get_or_init(Default::default)
        .lock()
        .expect("breaker registry lock");
    map.entry(endpoint.to_string())
        .or_insert_with(|| Arc::new(Breaker::new(threshold, cool_down)))
        .clone()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn opens_after_threshold_then_half_opens_for_one_trial() {
        let breaker = Breaker::new(3, Duration::from_secs(30));
        let t0 = Instant::now();
        for _ in 0..2 {
            breaker.record_failure(t0);
        }
        assert_eq!(breaker.allow(t0), Ok(()));
        breaker.record_failure(t0);
        assert_eq!(breaker.state(t0), BreakerState::Open);
        let later = t0 + Duration::from_secs(10);
        assert_eq!(breaker.allow(later), Err(Duration::from_secs(20)));

        let after = t0 + Duration::from_secs(31);
        assert_eq!(breaker.state(after), BreakerState::HalfOpen);
        assert_eq!(breaker.allow(after), Ok(()));
        // Only one trial at a time.
        assert!(breaker.allow(after).is_err());
        // A failed trial re-opens at once, without counting up to the threshold again.
        breaker.record_failure(after);
        assert_eq!(breaker.state(after), BreakerState::Open);

        let again = after + Duration::from_secs(31);
        assert_eq!(breaker.allow(again), Ok(()));
        breaker.record_success();
        assert_eq!(breaker.state(again), BreakerState::Closed);
        assert_eq!(breaker.consecutive_failures(), 0);
    }
}
