//! The one place requests leave the process: timeouts, retries with backoff and
//! `Retry-After`, the circuit breaker, failure classes, request counting and redaction.
//! Provider modules describe a request, how to read a success, and how to judge a failure;
//! they never loop or sleep themselves.

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use vttiro_asr::AsrError;
use vttiro_core::ErrorCode;

use crate::breaker::{shared_breaker, Breaker};
use crate::key::ApiKey;
use crate::retry::{retry_after, RetryPolicy};

/// The largest response body read; transcripts of very long files stay far below it.
const MAX_RESPONSE_BYTES: u64 = 256 * 1024 * 1024;

pub struct Request<'a> {
    pub method: &'static str,
    pub url: String,
    pub headers: Vec<(String, String)>,
    pub body: &'a [u8],
}

impl<'a> Request<'a> {
    pub fn new(method: &'static str, url: impl Into<String>) -> Request<'a> {
        Request {
            method,
            url: url.into(),
            headers: Vec::new(),
            body: &[],
        }
    }

    pub fn header(mut self, name: &str, value: impl Into<String>) -> Request<'a> {
        self.headers.push((name.to_string(), value.into()));
        self
    }

    pub fn body(mut self, body: &'a [u8]) -> Request<'a> {
        self.body = body;
        self
    }
}

#[derive(Debug, Clone)]
pub struct Response {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Response {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

/// What a provider module says about a non-2xx answer.
#[derive(Debug, Clone, PartialEq)]
pub enum Verdict {
    /// Worth repeating (rate limits, outages); the message is kept for the final error.
    Retry(String),
    /// Worth repeating after the wait the body asked for (Gemini's `RetryInfo`).
    RetryAfter(String, Duration),
    /// Final: the class and a one-line reason.
    Fail(ErrorCode, String),
}

/// The classes every provider shares, from the status alone. Provider modules look at the
/// body first for what the status cannot say (OpenAI's `insufficient_quota` is a 429 that
/// must not be retried; Gemini reports a bad key as a 400).
pub fn default_verdict(status: u16, message: &str) -> Verdict {
    let detail = if message.is_empty() {
        format!("HTTP {status}")
    } else {
        format!("HTTP {status}: {message}")
    };
    match status {
        401 | 403 => Verdict::Fail(
            ErrorCode::ProviderAuth,
            format!("the API key was refused ({detail})"),
        ),
        402 => Verdict::Fail(
            ErrorCode::ProviderQuota,
            format!("the account is out of credit ({detail})"),
        ),
        413 => Verdict::Fail(
            ErrorCode::ProviderInputTooLarge,
            format!("the upload is too large ({detail})"),
        ),
        415 => Verdict::Fail(
            ErrorCode::ProviderUnsupportedFormat,
            format!("the audio format was refused ({detail})"),
        ),
        408 | 409 | 425 | 429 => Verdict::Retry(detail),
        400..=499 => Verdict::Fail(
            ErrorCode::InvalidArgument,
            format!("the request was rejected ({detail})"),
        ),
        _ => Verdict::Retry(detail),
    }
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CallStats {
    pub requests: u32,
    pub retries: u32,
}

pub struct HttpClient {
    agent: ureq::Agent,
    provider: &'static str,
    key: Option<ApiKey>,
    policy: RetryPolicy,
    breaker: Arc<Breaker>,
    requests: AtomicU32,
    retries: AtomicU32,
}

/// Consecutive failed requests that open a provider's circuit, and for how long.
pub const BREAKER_THRESHOLD: u32 = 5;
pub const BREAKER_COOL_DOWN: Duration = Duration::from_secs(30);

impl HttpClient {
    pub fn new(
        provider: &'static str,
        base_url: &str,
        key: Option<ApiKey>,
        policy: RetryPolicy,
    ) -> HttpClient {
        let tls = ureq::tls::TlsConfig::builder()
            .root_certs(ureq::tls::RootCerts::PlatformVerifier)
            .build();
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .tls_config(tls)
            .http_status_as_error(false)
            // Credentials must not follow a redirect to another origin.
            .max_redirects(0)
            .timeout_connect(Some(policy.connect_timeout))
            .timeout_recv_response(Some(policy.response_timeout))
            .timeout_recv_body(Some(policy.response_timeout))
            .user_agent(format!("vttiro/{}", env!("CARGO_PKG_VERSION")))
            .build()
            .into();
        HttpClient {
            agent,
            provider,
            key,
            breaker: shared_breaker(
                &format!("{provider}@{base_url}"),
                BREAKER_THRESHOLD,
                BREAKER_COOL_DOWN,
            ),
            policy,
            requests: AtomicU32::new(0),
            retries: AtomicU32::new(0),
        }
    }

    pub fn key(&self) -> Option<&ApiKey> {
        self.key.as_ref()
    }

    pub fn breaker(&self) -> &Breaker {
        &self.breaker
    }

    /// Requests and retries since the last call, which resets both.
    pub fn take_stats(&self) -> CallStats {
        CallStats {
            requests: self.requests.swap(0, Ordering::Relaxed),
            retries: self.retries.swap(0, Ordering::Relaxed),
        }
    }

    /// `text` with the key taken out, for anything that reaches an error or a log.
    pub fn scrub(&self, text: &str) -> String {
        match &self.key {
            Some(key) => key.scrub(text),
            None => text.to_string(),
        }
    }

    pub fn fail(&self, code: ErrorCode, message: impl AsRef<str>) -> AsrError {
        AsrError::Provider {
            provider: self.provider,
            code,
            message: self.scrub(message.as_ref()),
        }
    }

    /// Sends `request` until `parse` accepts a 2xx answer, `judge` calls a failure final,
    /// the attempts run out, or the circuit is open.
    pub fn call<T>(
        &self,
        request: &Request<'_>,
        parse: impl Fn(&Response) -> Result<T, String>,
        judge: impl Fn(&Response) -> Verdict,
    ) -> Result<T, AsrError> {
        let path = request.url.split('?').next().unwrap_or("").to_string();
        let mut attempt = 0u32;
        loop {
            attempt += 1;
            if let Err(remaining) = self.breaker.allow(Instant::now()) {
                return Err(self.fail(
                    ErrorCode::ProviderUnavailable,
                    format!(
                        "skipped: {} consecutive requests failed, so the provider is rested for another {:.0} s",
                        self.breaker.consecutive_failures(),
                        remaining.as_secs_f64().ceil()
                    ),
                ));
            }
            self.requests.fetch_add(1, Ordering::Relaxed);
            let started = Instant::now();
            let outcome = self.send_once(request);
            let elapsed_ms = started.elapsed().as_millis() as u64;
            // (retryable reason, wait the provider asked for, counts against health, final class)
            let (reason, asked_wait, class) = match outcome {
                Err(reason) => {
                    tracing::debug!(provider = self.provider, method = request.method, path = %path, attempt, elapsed_ms, error = %self.scrub(&reason), "request failed");
                    self.breaker.record_failure(Instant::now());
                    (reason, None, ErrorCode::ProviderUnavailable)
                }
                Ok(response) => {
                    tracing::debug!(provider = self.provider, method = request.method, path = %path, attempt, elapsed_ms, status = response.status, "response");
                    if (200..300).contains(&response.status) {
                        match parse(&response) {
                            Ok(value) => {
                                self.breaker.record_success();
                                return Ok(value);
                            }
                            Err(why) => {
                                self.breaker.record_failure(Instant::now());
                                (
                                    format!("unreadable answer: {why}"),
                                    None,
                                    ErrorCode::ProviderUnavailable,
                                )
                            }
                        }
                    } else {
                        let asked = retry_after(&response.headers, SystemTime::now());
                        let (message, asked) = match judge(&response) {
                            Verdict::Fail(code, message) => {
                                // The provider answered sensibly: it is up.
                                self.breaker.record_success();
                                return Err(self.fail(code, message));
                            }
                            Verdict::Retry(message) => (message, asked),
                            Verdict::RetryAfter(message, wait) => (message, asked.or(Some(wait))),
                        };
                        let class = if response.status == 429 {
                            ErrorCode::ProviderQuota
                        } else {
                            self.breaker.record_failure(Instant::now());
                            ErrorCode::ProviderUnavailable
                        };
                        (message, asked, class)
                    }
                }
            };
            if attempt >= self.policy.max_attempts {
                return Err(self.fail(class, format!("gave up after {attempt} attempts: {reason}")));
            }
            let wait = match asked_wait {
                Some(asked) if asked > self.policy.max_retry_after => {
                    return Err(self.fail(
                        class,
                        format!(
                            "{reason} (the provider asks to retry in {:.0} s, longer than the {:.0} s vttiro waits)",
                            asked.as_secs_f64(),
                            self.policy.max_retry_after.as_secs_f64()
                        ),
                    ));
                }
                Some(asked) => asked,
                None => self.policy.backoff(attempt),
            };
            tracing::warn!(
                provider = self.provider,
                path = %path,
                attempt,
                wait_ms = wait.as_millis() as u64,
                reason = %self.scrub(&reason),
                "retrying"
            );
            self.retries.fetch_add(1, Ordering::Relaxed);
            std::thread::sleep(wait);
        }
    }

    fn send_once(&self, request: &Request<'_>) -> Result<Response, String> {
        let mut builder = ureq::http::Request::builder()
            .method(request.method)
            .uri(&request.url);
        for (name, value) in &request.headers {
            builder = builder.header(name, value);
        }
        let http_request = builder
            .body(request.body)
            .map_err(|e| format!("invalid request: {e}"))?;
        let mut response = self.agent.run(http_request).map_err(describe)?;
        let status = response.status().as_u16();
        let headers = response
            .headers()
            .iter()
            .map(|(k, v)| {
                (
                    k.as_str().to_string(),
                    String::from_utf8_lossy(v.as_bytes()).into_owned(),
                )
            })
            .collect();
        let body = response
            .body_mut()
            .with_config()
            .limit(MAX_RESPONSE_BYTES)
            .read_to_vec()
            .map_err(|e| format!("the answer was cut short: {}", describe(e)))?;
        Ok(Response {
            status,
            headers,
            body,
        })
    }
}

fn describe(error: ureq::Error) -> String {
    match error {
        ureq::Error::Timeout(which) => format!("timed out ({which})"),
        ureq::Error::ConnectionFailed => "could not connect".to_string(),
        ureq::Error::HostNotFound => "host not found".to_string(),
        ureq::Error::Io(e) => format!("connection error: {e}"),
        other => other.to_string(),
    }
}
