//! Per-principal request token buckets. Each bucket holds up to `per_minute` tokens and
//! refills continuously at `per_minute / 60` a second, so a key may burst a minute's
//! allowance and then proceeds at the steady rate. Buckets live in this process: with N API
//! replicas a key gets N buckets, which the deployment docs say.

use std::collections::HashMap;
use std::sync::Mutex;

use crate::Millis;

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RateDecision {
    pub allowed: bool,
    /// The bucket's size (requests per minute).
    pub limit: u32,
    /// Whole tokens left after this request.
    pub remaining: u32,
    /// Seconds until the bucket is full again (`RateLimit-Reset`).
    pub reset_secs: u64,
    /// Seconds until the next request would be allowed, when this one was not.
    pub retry_after_secs: u64,
}

#[derive(Debug, Clone, Copy)]
struct Bucket {
    tokens: f64,
    updated: Millis,
}

#[derive(Default)]
pub struct RateLimiter {
    buckets: Mutex<HashMap<String, Bucket>>,
}

impl RateLimiter {
    pub fn new() -> RateLimiter {
        RateLimiter::default()
    }

    /// Takes one token from `principal`'s bucket, when there is one.
    pub fn check(&self, principal: &str, per_minute: u32, now: Millis) -> RateDecision {
        let capacity = f64::from(per_minute.max(1));
        let per_ms = capacity / 60_000.0;
        let mut buckets = self
            .buckets
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        // Idle buckets are full, so forgetting them changes nothing; this bounds the map.
        if buckets.len() > 100_000 {
            buckets.retain(|_, b| (now - b.updated) as f64 * per_ms + b.tokens < capacity);
        }
        let bucket = buckets.entry(principal.to_string()).or_insert(Bucket {
            tokens: capacity,
            updated: now,
        });
        let elapsed = (now - bucket.updated).max(0) as f64;
        bucket.tokens = (bucket.tokens + elapsed * per_ms).min(capacity);
        bucket.updated = now;
        // A hair of slack so a refill that lands exactly on a whole token counts as one.
        let allowed = bucket.tokens >= 1.0 - 1e-9;
        if allowed {
            bucket.tokens = (bucket.tokens - 1.0).max(0.0);
        }
        let to_full_ms = (capacity - bucket.tokens) / per_ms;
        let to_next_ms = if allowed {
            0.0
        } else {
            (1.0 - bucket.tokens) / per_ms
        };
        RateDecision {
            allowed,
            limit: per_minute.max(1),
            remaining: (bucket.tokens + 1e-9).floor() as u32,
            reset_secs: (to_full_ms / 1000.0).ceil() as u64,
            retry_after_secs: (to_next_ms / 1000.0)
                .ceil()
                .max(if allowed { 0.0 } else { 1.0 }) as u64,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bucket_bursts_then_refills_at_the_steady_rate() {
        let limiter = RateLimiter::new();
        for i in 0..3 {
            let d = limiter.check("k", 3, 0);
            assert!(d.allowed);
            assert_eq!(d.remaining, 2 - i);
        }
        let refused = limiter.check("k", 3, 0);
        assert!(!refused.allowed);
        assert_eq!(refused.retry_after_secs, 20, "3 a minute is one every 20 s");
        assert!(!limiter.check("k", 3, 19_000).allowed);
        assert!(limiter.check("k", 3, 20_000).allowed);
        assert!(
            limiter.check("other", 3, 0).allowed,
            "buckets are per principal"
        );
    }
}
