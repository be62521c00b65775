//! Webhook delivery: a dispatcher thread drains the queue's outbox of notifications owed
//! to jobs' `webhook_url`s, signs each with the Standard Webhooks scheme (HMAC-SHA256 over
//! `{id}.{timestamp}.{body}`, headers `webhook-id`, `webhook-timestamp`,
//! `webhook-signature: v1,<base64>`), and retries failures with exponential backoff.
//! Receivers verify with any Standard Webhooks library and drop duplicates by id, since
//! delivery is at least once.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use hmac::{KeyInit, Mac};
use vttiro_jobs::{JobQueue, WebhookDelivery, WebhookOutcome};
use vttiro_storage::FetchPolicy;

const SECRET_PREFIX: &str = "whsec_";

/// The signing key, written `whsec_<base64>` like other Standard Webhooks senders so
/// receivers can paste it into their library as is. Never printed by `Debug`.
#[derive(Clone, PartialEq, Eq)]
pub struct WebhookSecret(Vec<u8>);

impl std::fmt::Debug for WebhookSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("WebhookSecret([redacted])")
    }
}

#[derive(Debug, thiserror::Error)]
#[error("webhook secret: {0}")]
pub struct SecretError(String);

impl WebhookSecret {
    /// 32 random bytes.
    pub fn generate() -> WebhookSecret {
        WebhookSecret((0..32).map(|_| fastrand::u8(..)).collect())
    }

    /// Reads `whsec_<base64>` (or bare base64).
    pub fn parse(text: &str) -> Result<WebhookSecret, SecretError> {
        let encoded = text.trim();
        let encoded = encoded.strip_prefix(SECRET_PREFIX).unwrap_or(encoded);
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(encoded)
            .map_err(|e| SecretError(format!("not base64 after {SECRET_PREFIX}: {e}")))?;
        if bytes.len() < 24 {
            return Err(SecretError(format!(
                "{} bytes is too short; use at least 24 random bytes",
                bytes.len()
            )));
        }
        Ok(WebhookSecret(bytes))
    }

    /// The `whsec_<base64>` form, to hand to receivers.
    pub fn expose(&self) -> String {
        format!(
            "{SECRET_PREFIX}{}",
            base64::engine::general_purpose::STANDARD.encode(&self.0)
        )
    }

    /// `v1,<base64 HMAC-SHA256("{id}.{timestamp}.{body}")>`.
    pub fn sign(&self, id: &str, timestamp_secs: i64, body: &[u8]) -> String {
        let mut mac =
            hmac::Hmac::<sha2::Sha256>::new_from_slice(&self.0).expect("HMAC takes any key");
        mac.update(id.as_bytes());
        mac.update(b".");
        mac.update(timestamp_secs.to_string().as_bytes());
        mac.update(b".");
        mac.update(body);
        format!(
            "v1,{}",
            base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes())
        )
    }
}

#[derive(Debug, Clone)]
pub struct WebhookConfig {
    pub secret: WebhookSecret,
    /// Which addresses webhooks may reach (the same SSRF guard as media URLs); its
    /// timeout bounds each delivery.
    pub policy: FetchPolicy,
    /// Attempts before a delivery is abandoned.
    pub max_attempts: u32,
    /// Wait after the first failed attempt; doubled after each further one.
    pub backoff_base: Duration,
    pub backoff_max: Duration,
    /// How often an idle dispatcher looks for due deliveries.
    pub poll: Duration,
}

impl WebhookConfig {
    pub fn new(secret: WebhookSecret, policy: FetchPolicy) -> WebhookConfig {
        WebhookConfig {
            secret,
            policy: FetchPolicy {
                timeout: Duration::from_secs(10),
                ..policy
            },
            max_attempts: 8,
            backoff_base: Duration::from_secs(5),
            backoff_max: Duration::from_secs(3600),
            poll: Duration::from_millis(500),
        }
    }

    fn backoff(&self, attempts: u32) -> Duration {
        let factor = 1u32 << attempts.saturating_sub(1).min(20);
        self.backoff_base
            .saturating_mul(factor)
            .min(self.backoff_max)
    }
}

pub struct Dispatcher {
    stop: Arc<AtomicBool>,
    thread: JoinHandle<()>,
}

impl Dispatcher {
    /// Finishes the delivery in flight, then stops; undelivered ones stay in the outbox.
    pub fn shutdown(self) {
        self.stop.store(true, Ordering::SeqCst);
        let _ = self.thread.join();
    }
}

pub fn spawn_dispatcher(
    queue: Arc<dyn JobQueue>,
    config: WebhookConfig,
    metrics: Arc<crate::Metrics>,
) -> Dispatcher {
    let stop = Arc::new(AtomicBool::new(false));
    let thread = {
        let stop = stop.clone();
        std::thread::Builder::new()
            .name("webhooks".into())
            .spawn(move || dispatch(&*queue, &config, &metrics, &stop))
            .expect("spawn the webhook thread")
    };
    Dispatcher { stop, thread }
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

fn dispatch(
    queue: &dyn JobQueue,
    config: &WebhookConfig,
    metrics: &crate::Metrics,
    stop: &AtomicBool,
) {
    let (agent, refusal) = vttiro_storage::guarded_agent(&config.policy, 0);
    // Held long enough to cover one delivery's timeout, so no other dispatcher sends the
    // same notification while this one waits for an answer.
    let hold_ms = (config.policy.timeout.as_millis() as i64) * 2 + 5_000;
    while !stop.load(Ordering::SeqCst) {
        let due = match queue.claim_webhooks(16, hold_ms) {
            Ok(due) => due,
            Err(e) => {
                tracing::warn!(error = %e, "cannot read the webhook outbox");
                Vec::new()
            }
        };
        if due.is_empty() {
            sleep_unless_stopped(config.poll, stop);
            continue;
        }
        for delivery in due {
            let outcome = deliver(&agent, &refusal, config, &delivery);
            metrics.webhook_delivery(match &outcome {
                WebhookOutcome::Delivered => "delivered",
                WebhookOutcome::RetryAfter { .. } => "retried",
                WebhookOutcome::GaveUp { .. } => "abandoned",
            });
            match &outcome {
                WebhookOutcome::Delivered => {
                    tracing::info!(job = %delivery.job_id, id = %delivery.id, event = %delivery.event, "webhook delivered")
                }
                WebhookOutcome::RetryAfter { error, .. } => {
                    tracing::warn!(job = %delivery.job_id, id = %delivery.id, attempt = delivery.attempts, %error, "webhook failed; will retry")
                }
                WebhookOutcome::GaveUp { error } => {
                    tracing::warn!(job = %delivery.job_id, id = %delivery.id, attempt = delivery.attempts, %error, "webhook abandoned")
                }
            }
            if let Err(e) = queue.webhook_outcome(&delivery.id, outcome) {
                tracing::warn!(id = %delivery.id, error = %e, "cannot record the webhook outcome");
            }
        }
    }
}

fn sleep_unless_stopped(total: Duration, stop: &AtomicBool) {
    let step = Duration::from_millis(50);
    let mut slept = Duration::ZERO;
    while slept < total && !stop.load(Ordering::SeqCst) {
        std::thread::sleep(step);
        slept += step;
    }
}

fn deliver(
    agent: &ureq::Agent,
    refusal: &vttiro_storage::Refusal,
    config: &WebhookConfig,
    delivery: &WebhookDelivery,
) -> WebhookOutcome {
    let body = delivery.payload.to_string();
    let timestamp = now_ms() / 1000;
    let signature = config.secret.sign(&delivery.id, timestamp, body.as_bytes());
    let sent = agent
        .post(&delivery.url)
        .header("content-type", "application/json")
        .header("webhook-id", &delivery.id)
        .header("webhook-timestamp", timestamp.to_string())
        .header("webhook-signature", signature)
        .send(body.as_bytes());
    let error = match sent {
        Ok(response) if response.status().is_success() => return WebhookOutcome::Delivered,
        // The receiver says the endpoint is gone for good.
        Ok(response) if response.status().as_u16() == 410 => {
            return WebhookOutcome::GaveUp {
                error: "HTTP 410 Gone".into(),
            }
        }
        Ok(response) => format!("HTTP {}", response.status().as_u16()),
        Err(e) => match refusal.take() {
            // Retrying cannot make a forbidden address allowed.
            Some(reason) => return WebhookOutcome::GaveUp { error: reason },
            None => e.to_string(),
        },
    };
    if delivery.attempts >= config.max_attempts {
        WebhookOutcome::GaveUp {
            error: format!("{error} (after {} attempts)", delivery.attempts),
        }
    } else {
        WebhookOutcome::RetryAfter {
            after_ms: config.backoff(delivery.attempts).as_millis() as i64,
            error,
        }
    }
}
