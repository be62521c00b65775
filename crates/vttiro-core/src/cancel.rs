use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// A flag a caller sets to stop work in progress: the decoder looks at it between packets
/// and local recognisers before each 30-s window. Clones share the flag.
///
/// It is not part of what the options holding it mean: `Debug` shows no state and any two
/// tokens compare equal, so checkpoint fingerprints (made from the options' `Debug`) and
/// option comparisons do not depend on it.
#[derive(Clone, Default)]
pub struct CancelToken(Arc<AtomicBool>);

impl CancelToken {
    pub fn new() -> CancelToken {
        CancelToken::default()
    }

    pub fn cancel(&self) {
        self.0.store(true, Ordering::SeqCst);
    }

    pub fn is_cancelled(&self) -> bool {
        self.0.load(Ordering::SeqCst)
    }

    /// Sleeps for `pause` unless the token is set first, so a cancel never waits out a
    /// retry backoff or a polling interval; whether the whole pause passed uncancelled.
    pub fn sleep(&self, pause: Duration) -> bool {
        // Short enough that a person does not notice the wait for the next look.
        const LOOK_EVERY: Duration = Duration::from_millis(50);
        let until = Instant::now() + pause;
        loop {
            if self.is_cancelled() {
                return false;
            }
            let left = until.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return true;
            }
            std::thread::sleep(left.min(LOOK_EVERY));
        }
    }
}

impl std::fmt::Debug for CancelToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("CancelToken")
    }
}

impl PartialEq for CancelToken {
    fn eq(&self, _: &CancelToken) -> bool {
        true
    }
}

impl Eq for CancelToken {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clones_share_the_flag_and_state_is_not_identity() {
        let caller = CancelToken::new();
        let worker = caller.clone();
        let fresh = CancelToken::new();
        assert!(!worker.is_cancelled());
        caller.cancel();
        assert!(worker.is_cancelled());
        assert!(!fresh.is_cancelled());
        assert_eq!(worker, fresh);
        assert_eq!(format!("{worker:?}"), format!("{fresh:?}"));
    }

    #[test]
    fn a_sleep_ends_early_once_the_token_is_set() {
        let token = CancelToken::new();
        assert!(token.sleep(Duration::from_millis(20)));
        let setter = token.clone();
        let started = Instant::now();
        let cancelling = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(100));
            setter.cancel();
        });
        assert!(!token.sleep(Duration::from_secs(600)));
        // Generous for a loaded machine, and nothing like the ten minutes asked for.
        assert!(started.elapsed() < Duration::from_secs(30));
        cancelling.join().unwrap();
        assert!(!token.sleep(Duration::ZERO));
    }
}
