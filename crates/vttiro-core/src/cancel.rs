use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

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
}
