//! Local stand-ins, on 127.0.0.1 only, for the cloud speech-to-text providers vttiro talks to
//! (OpenAI, Google Gemini, AssemblyAI, Deepgram). Each mock reproduces its provider's
//! documented request validation, error bodies and success bodies (see `fixtures/`), records
//! every request, and can be told to misbehave ([`Fault`]) so client code can be tested
//! offline. This crate is test support only: it must not depend on any vttiro crate, so that
//! it stays an independent rendering of the providers' behaviour rather than of vttiro's.

pub mod server;
pub use server::{Part, RecordedRequest, Reply, Server};

mod assemblyai;
mod audio;
mod deepgram;
mod gemini;
mod openai;

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

#[derive(Clone, Debug, PartialEq)]
pub enum Fault {
    /// The provider's documented error body for this status (its most common one for that
    /// status), with an optional `Retry-After` header value.
    Status {
        status: u16,
        retry_after: Option<String>,
    },
    /// The provider's non-retryable out-of-credit answer: OpenAI 429 `insufficient_quota`,
    /// Deepgram 402 ASR_PAYMENT_REQUIRED, AssemblyAI 400 negative balance, Gemini 429
    /// RESOURCE_EXHAUSTED whose quotaId is a per-day one.
    QuotaExhausted,
    /// The normal answer, held back this long before the status line.
    Slow(Duration),
    /// The normal answer with its body cut in half (Content-Length announces the whole body).
    Truncated,
    /// 200 with a body that is not valid JSON.
    MalformedJson,
    /// The connection is closed without an answer.
    Hangup,
}

/// Which generateContent success fixture Gemini answers with.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum GeminiReply {
    /// Plain JSON transcript text.
    Json,
    /// The JSON wrapped in a ```` ```json ```` fence, with a trailing comma.
    Fenced,
    /// Cut off mid-object with finishReason MAX_TOKENS.
    Truncated,
}

#[derive(Clone, Debug)]
pub struct MockConfig {
    pub api_key: String,
    /// Served in order to the provider's MAIN endpoint before it answers normally: OpenAI
    /// `POST /v1/audio/transcriptions`, Gemini `POST /v1beta/models/{model}:generateContent`,
    /// AssemblyAI `POST /v2/upload`, Deepgram `POST /v1/listen`.
    pub faults: Vec<Fault>,
    /// Largest accepted upload: OpenAI request body (default 26_214_400 -> 413 with the
    /// documented body), Deepgram body (default 2 GB), AssemblyAI upload (default 2.2 GB),
    /// Gemini whole generateContent request with inline data (default 20 MB -> 400
    /// INVALID_ARGUMENT) — Files API uploads are separately limited to 2 GB.
    /// 0 = the provider's documented default.
    pub max_upload_bytes: usize,
    pub gemini_reply: GeminiReply,
    /// AssemblyAI: GETs of the transcript answered "queued"/"processing" before "completed".
    pub assemblyai_polls_before_done: usize,
    /// AssemblyAI: the job ends with status "error" and this message instead of completing.
    pub assemblyai_job_error: Option<String>,
    /// Gemini: GETs of an uploaded file answered state PROCESSING before ACTIVE.
    pub gemini_processing_polls: usize,
}

impl MockConfig {
    pub fn new(api_key: &str) -> MockConfig {
        MockConfig {
            api_key: api_key.to_string(),
            faults: Vec::new(),
            max_upload_bytes: 0,
            gemini_reply: GeminiReply::Json,
            assemblyai_polls_before_done: 2,
            assemblyai_job_error: None,
            gemini_processing_polls: 1,
        }
    }

    fn limit(&self, default: usize) -> usize {
        if self.max_upload_bytes == 0 {
            default
        } else {
            self.max_upload_bytes
        }
    }
}

/// A running provider stand-in; stops when dropped.
pub struct Mock {
    server: Server,
}

impl Mock {
    pub fn openai(config: MockConfig) -> Mock {
        Mock::serve(openai::handler(config))
    }

    pub fn gemini(config: MockConfig) -> Mock {
        Mock::serve(gemini::handler(config))
    }

    pub fn assemblyai(config: MockConfig) -> Mock {
        Mock::serve(assemblyai::handler(config))
    }

    pub fn deepgram(config: MockConfig) -> Mock {
        Mock::serve(deepgram::handler(config))
    }

    fn serve(handler: server::Handler) -> Mock {
        Mock {
            server: Server::start(handler),
        }
    }

    /// e.g. "http://127.0.0.1:PORT" — clients append the provider's paths to it.
    pub fn base_url(&self) -> String {
        self.server.base_url()
    }

    /// Every request received so far, in order (including rejected ones).
    pub fn requests(&self) -> Vec<RecordedRequest> {
        self.server.requests()
    }
}

/// How one provider renders the faults that are not its normal answer.
pub(crate) struct FaultKit {
    pub status: fn(u16) -> Reply,
    pub quota: fn() -> Reply,
    pub malformed: &'static [u8],
}

/// Answers the main endpoint: the next queued fault if any, else `normal()`.
pub(crate) fn serve_main(
    faults: &mut VecDeque<Fault>,
    kit: &FaultKit,
    normal: impl FnOnce() -> Reply,
) -> Reply {
    match faults.pop_front() {
        None => normal(),
        Some(Fault::Status {
            status,
            retry_after,
        }) => {
            let reply = (kit.status)(status);
            match retry_after {
                Some(value) => reply.with_header("retry-after", &value),
                None => reply,
            }
        }
        Some(Fault::QuotaExhausted) => (kit.quota)(),
        Some(Fault::Slow(by)) => normal().delayed(by),
        Some(Fault::Truncated) => normal().truncated(),
        Some(Fault::MalformedJson) => Reply::raw_json(200, kit.malformed),
        Some(Fault::Hangup) => Reply::Hangup,
    }
}

/// A fixture parsed as JSON (fixtures are compiled in, so this cannot fail at run time
/// unless a fixture file is broken).
pub(crate) fn fixture(text: &str) -> serde_json::Value {
    serde_json::from_str(text).expect("fixture is JSON")
}

pub(crate) fn text_reply(status: u16, content_type: &str, body: String) -> Reply {
    Reply::Full {
        status,
        headers: vec![("content-type".into(), content_type.into())],
        body: body.into_bytes(),
        delay: Duration::ZERO,
    }
}

/// A fresh UUID-shaped identifier, unique within the process.
pub(crate) fn new_id() -> String {
    static NEXT: AtomicU64 = AtomicU64::new(1);
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    format!("7e3a9c51-0d4b-4f6e-8a2c-{n:012x}")
}

/// The `Authorization` header value after `scheme ` (case-insensitive scheme), if any.
pub(crate) fn auth_token<'a>(request: &'a RecordedRequest, scheme: &str) -> Option<&'a str> {
    let value = request.header("authorization")?.trim();
    let (given, token) = value.split_once(' ')?;
    given.eq_ignore_ascii_case(scheme).then(|| token.trim())
}
