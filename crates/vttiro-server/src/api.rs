//! The HTTP surface: routes, the error envelope, request ids and backpressure.
//!
//! Every route is registered through `utoipa_axum::routes!`, which takes the handler's
//! `#[utoipa::path]` description along with it, so a route cannot be served without
//! appearing in `/openapi.json`. Bodies are typed structs whose `ToSchema` derive is the
//! schema the document shows.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, FromRequest, Multipart, Path, Query, Request, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json, Router};
use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};
use sha2::{Digest, Sha256};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use vttiro_auth::Principal;
use vttiro_core::ErrorCode;
use vttiro_jobs::{
    Job, JobFailure, JobQueue, JobState, ListQuery, NewJob, QueueError, QueueStats, Submitted,
};
use vttiro_storage::{StorageError, Store};

use crate::openapi::{ErrorCodeName, JobStateName, ResultFormatName};
use crate::FORMATS;

#[derive(Debug, Clone)]
pub struct ServerConfig {
    /// Largest upload accepted (413 beyond it).
    pub max_upload_bytes: u64,
    /// Queued jobs beyond which submissions get 429.
    pub max_queued: u64,
    /// Largest upload `POST /v1/audio/transcriptions` accepts (OpenAI's own limit is 25 MB).
    pub max_sync_upload_bytes: u64,
    /// How long `POST /v1/audio/transcriptions` waits for its job before giving up (504).
    pub sync_deadline: Duration,
    /// Requests a minute per principal unless its key says otherwise; unlimited when `None`.
    pub requests_per_minute: Option<u32>,
    /// Audio minutes a principal may have transcribed per UTC day unless its key says
    /// otherwise; unlimited when `None`.
    pub audio_minutes_per_day: Option<u32>,
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            max_upload_bytes: 2 * 1024 * 1024 * 1024,
            max_queued: 10_000,
            max_sync_upload_bytes: 25 * 1024 * 1024,
            sync_deadline: Duration::from_secs(600),
            requests_per_minute: None,
            audio_minutes_per_day: None,
        }
    }
}

pub struct AppState {
    pub queue: Arc<dyn JobQueue>,
    pub store: Store,
    pub config: ServerConfig,
    pub catalog: Arc<dyn ModelCatalog>,
    /// Shared with this process's workers and webhook dispatcher.
    pub metrics: Arc<crate::Metrics>,
    /// API keys, JWTs, tenant policies and the audit log.
    pub auth: Arc<vttiro_auth::Authenticator>,
    pub rate_limiter: vttiro_auth::RateLimiter,
}

/// What the binary can transcribe with, for `GET /v1/models` and `/readyz`.
pub trait ModelCatalog: Send + Sync + 'static {
    /// Model names a job or an OpenAI-style request may ask for.
    fn models(&self) -> Vec<String>;
    /// Why jobs with the default settings cannot run now (no model installed, no key), if so.
    fn unready(&self) -> Option<String>;
}

/// An error on its way to the envelope; the request-id middleware fills in the id.
#[derive(Debug, Clone)]
pub(crate) struct ApiError {
    code: ErrorCode,
    message: String,
    pub(crate) retry_after: Option<u64>,
}

impl ApiError {
    pub(crate) fn code(&self) -> ErrorCode {
        self.code
    }

    pub(crate) fn message(&self) -> &str {
        &self.message
    }

    pub(crate) fn new(code: ErrorCode, message: impl Into<String>) -> ApiError {
        ApiError {
            code,
            message: message.into(),
            retry_after: None,
        }
    }
}

impl From<QueueError> for ApiError {
    fn from(e: QueueError) -> Self {
        let mut error = ApiError::new(e.code(), e.to_string());
        if matches!(e, QueueError::Full { .. }) {
            error.retry_after = Some(5);
        }
        error
    }
}

impl From<StorageError> for ApiError {
    fn from(e: StorageError) -> Self {
        ApiError::new(e.code(), e.to_string())
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = StatusCode::from_u16(self.code.http_status())
            .unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let mut response = (status, Json(json!({}))).into_response();
        if let Some(seconds) = self.retry_after {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(seconds));
        }
        response.extensions_mut().insert(self);
        response
    }
}

pub(crate) type ApiResult<T> = Result<T, ApiError>;

/// The job, when `principal` may see it. Another tenant's job is "not found", word for word
/// like a missing one, so ids cannot be probed across tenants.
pub(crate) fn visible_job(state: &AppState, principal: &Principal, id: &str) -> ApiResult<Job> {
    let job = state.queue.get(id)?;
    if !principal.sees_tenant(&job.tenant) {
        return Err(QueueError::NotFound(id.to_string()).into());
    }
    Ok(job)
}

/// The body of every refusal, whoever raised it (a handler, an extractor, or the router).
#[derive(Debug, Serialize, ToSchema)]
#[schema(example = json!({"error": {
    "code": "job_not_found",
    "message": "job job_01jq7k2m4v8x9c3n5p6r7s8t9w not found",
    "request_id": "req_5f0c2a9d13b4e687",
}}))]
pub(crate) struct ErrorEnvelope {
    pub(crate) error: ErrorBody,
}

#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct ErrorBody {
    /// What went wrong, stable for programs to branch on; the HTTP status follows from it.
    #[schema(value_type = ErrorCodeName)]
    pub(crate) code: &'static str,
    /// What went wrong, for people; the wording may change.
    pub(crate) message: String,
    /// The request's `X-Request-Id`, which the server's log lines carry too.
    pub(crate) request_id: String,
}

fn envelope(status: StatusCode, code: ErrorCode, message: String, request_id: &str) -> Response {
    let body = ErrorEnvelope {
        error: ErrorBody {
            code: code.as_str(),
            message,
            request_id: request_id.to_string(),
        },
    };
    (status, Json(body)).into_response()
}

/// Echoes (or creates) `x-request-id`, and writes every error as
/// `{"error": {"code", "message", "request_id"}}`.
async fn request_id(request: Request, next: Next) -> Response {
    let id = request
        .headers()
        .get("x-request-id")
        .and_then(|v| v.to_str().ok())
        .filter(|v| !v.is_empty() && v.len() <= 128 && v.chars().all(|c| c.is_ascii_graphic()))
        .map(str::to_string)
        .unwrap_or_else(|| format!("req_{:016x}", fastrand::u64(..)));
    let method = request.method().clone();
    let path = request.uri().path().to_string();
    // Every line logged while answering carries the request id (and, through
    // `blocking`, so do lines from the store and queue calls it makes). The dotted fields
    // are OpenTelemetry's HTTP server attributes, for the exported span.
    let span = tracing::info_span!(
        "request",
        request_id = %id,
        %method,
        %path,
        otel.kind = "server",
        http.request.method = %method,
        http.route = tracing::field::Empty,
        http.response.status_code = tracing::field::Empty,
        otel.status_code = tracing::field::Empty,
    );
    if let Some(route) = request.extensions().get::<axum::extract::MatchedPath>() {
        span.record("http.route", route.as_str());
    }
    crate::trace_context::adopt_request_parent(&span, request.headers());
    let mut response = tracing::Instrument::instrument(next.run(request), span.clone()).await;
    let _entered = span.enter();
    if let Some(error) = response.extensions_mut().remove::<ApiError>() {
        let status = response.status();
        let headers = response.headers().clone();
        response = envelope(status, error.code, error.message, &id);
        for (name, value) in headers.iter() {
            let keep = name == header::RETRY_AFTER
                || name == header::WWW_AUTHENTICATE
                || name.as_str().starts_with("ratelimit-");
            if keep {
                response.headers_mut().insert(name.clone(), value.clone());
            }
        }
        tracing::info!(
            status = status.as_u16(),
            code = error.code.as_str(),
            "request refused"
        );
    } else if response.status().is_client_error() || response.status().is_server_error() {
        // Errors raised by axum itself (unknown route, wrong method) get the envelope too.
        let status = response.status();
        let code = match status {
            StatusCode::NOT_FOUND => ErrorCode::JobNotFound,
            StatusCode::PAYLOAD_TOO_LARGE => ErrorCode::InputTooLarge,
            StatusCode::UNSUPPORTED_MEDIA_TYPE => ErrorCode::UnsupportedMedia,
            s if s.is_server_error() => ErrorCode::Internal,
            _ => ErrorCode::InvalidArgument,
        };
        let message = match status {
            StatusCode::NOT_FOUND => format!("no such endpoint: {method} {path}"),
            StatusCode::METHOD_NOT_ALLOWED => format!("{method} is not allowed on {path}"),
            other => other.canonical_reason().unwrap_or("error").to_string(),
        };
        response = envelope(status, code, message, &id);
    }
    if let Ok(value) = HeaderValue::from_str(&id) {
        response.headers_mut().insert("x-request-id", value);
    }
    span.record("http.response.status_code", response.status().as_u16());
    if response.status().is_server_error() {
        span.record("otel.status_code", "error");
    }
    response
}

/// Every route with its description; [`router`] serves the routes and
/// [`crate::openapi`] the description, so the two come from one list.
pub(crate) fn routes() -> OpenApiRouter<Arc<AppState>> {
    OpenApiRouter::with_openapi(crate::openapi::base())
        .routes(routes!(healthz))
        .routes(routes!(readyz))
        .routes(routes!(metrics))
        .routes(routes!(submit, list))
        .routes(routes!(show, delete))
        .routes(routes!(cancel))
        .routes(routes!(result))
        .routes(routes!(events))
        .merge(crate::openai::routes())
        .merge(crate::admin::routes())
        .merge(crate::openapi::routes())
}

pub fn router(state: Arc<AppState>) -> Router {
    let (router, _) = routes().split_for_parts();
    // Uploads are limited while they stream to storage, not buffered against a cap.
    guarded(router.layer(DefaultBodyLimit::disable()), state)
}

/// Only `/metrics` and `/healthz`, behind the same guard as the full API: for
/// `vttiro worker`, which serves no jobs API but whose workers a scraper must see.
pub fn metrics_router(state: Arc<AppState>) -> Router {
    let routes = Router::new()
        .route("/metrics", axum::routing::get(metrics))
        .route("/healthz", axum::routing::get(healthz));
    guarded(routes, state)
}

/// The layers every route passes: credentials and limits, request ids and the error
/// envelope, request metrics.
fn guarded(routes: Router<Arc<AppState>>, state: Arc<AppState>) -> Router {
    routes
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            crate::guard::guard,
        ))
        .layer(axum::middleware::from_fn(request_id))
        .layer(axum::middleware::from_fn_with_state(
            state.metrics.clone(),
            count_request,
        ))
        .with_state(state)
}

/// Runs a store or queue call off the async threads.
pub(crate) async fn blocking<T: Send + 'static>(
    work: impl FnOnce() -> ApiResult<T> + Send + 'static,
) -> ApiResult<T> {
    let span = tracing::Span::current();
    tokio::task::spawn_blocking(move || span.in_scope(work))
        .await
        .map_err(|e| ApiError::new(ErrorCode::Internal, format!("worker task failed: {e}")))?
}

#[derive(Serialize, ToSchema)]
struct Health {
    #[schema(value_type = String, example = "ok")]
    status: &'static str,
}

#[derive(Serialize, ToSchema)]
struct Ready {
    #[schema(value_type = String, example = "ready")]
    status: &'static str,
    queue: QueueCounts,
}

/// Jobs per state, for dashboards and autoscaling.
#[derive(Serialize, ToSchema)]
struct QueueCounts {
    queued: u64,
    running: u64,
    succeeded: u64,
    failed: u64,
    cancelled: u64,
    /// Milliseconds the oldest queued job has waited; null when none waits.
    #[schema(required = true)]
    oldest_queued_ms: Option<i64>,
}

impl From<QueueStats> for QueueCounts {
    fn from(stats: QueueStats) -> Self {
        QueueCounts {
            queued: stats.queued,
            running: stats.running,
            succeeded: stats.succeeded,
            failed: stats.failed,
            cancelled: stats.cancelled,
            oldest_queued_ms: stats.oldest_queued_ms,
        }
    }
}

/// Counts every answer by route template (never the raw path, whose ids would make a new
/// series per job) and times it.
async fn count_request(
    State(metrics): State<Arc<crate::Metrics>>,
    request: Request,
    next: Next,
) -> Response {
    let route = request
        .extensions()
        .get::<axum::extract::MatchedPath>()
        .map(|p| p.as_str().to_string())
        .unwrap_or_else(|| "unmatched".into());
    let method = request.method().as_str().to_string();
    let started = std::time::Instant::now();
    let response = next.run(request).await;
    metrics.http_request(
        &route,
        &method,
        response.status().as_u16(),
        started.elapsed(),
    );
    response
}

/// Prometheus metrics
///
/// This process's request, job, worker and webhook metrics and the queue's depth, in the
/// Prometheus text format.
#[utoipa::path(
    get,
    path = "/metrics",
    tag = "service",
    operation_id = "metrics",
    responses(
        (status = 200, description = "Prometheus text exposition format 0.0.4.", content_type = "text/plain", body = String),
    )
)]
async fn metrics(State(state): State<Arc<AppState>>) -> Response {
    let stats = {
        let state = state.clone();
        blocking(move || Ok(state.queue.stats()?)).await.ok()
    };
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        state.metrics.render(stats.as_ref()),
    )
        .into_response()
}

/// Liveness
///
/// Answers as long as the process serves HTTP; it checks nothing else.
#[utoipa::path(
    get,
    path = "/healthz",
    tag = "service",
    operation_id = "health",
    responses((status = 200, description = "The process is up.", body = Health))
)]
async fn healthz() -> Json<Health> {
    Json(Health { status: "ok" })
}

/// Readiness
///
/// Checks that the job database answers, that storage takes a write, and that jobs with the
/// default settings can run (a model is installed, or a cloud engine has its key).
#[utoipa::path(
    get,
    path = "/readyz",
    tag = "service",
    operation_id = "ready",
    responses(
        (status = 200, description = "Ready to take and run jobs.", body = Ready),
        (status = 500, description = "An internal failure (`internal`).", body = ErrorEnvelope),
        (status = 503, description = "Not ready: the job database or storage failed (`storage_failed`), or jobs cannot run (`engine_unavailable`, with the reason).", body = ErrorEnvelope),
    )
)]
async fn readyz(State(state): State<Arc<AppState>>) -> ApiResult<Json<Ready>> {
    let stats = blocking({
        let state = state.clone();
        move || Ok(state.queue.stats()?)
    })
    .await?;
    let probe = format!("probe/{:016x}", fastrand::u64(..));
    blocking({
        let state = state.clone();
        move || {
            state.store.put(&probe, &mut &b"ok"[..], 16)?;
            state.store.delete(&probe)?;
            Ok(())
        }
    })
    .await?;
    if let Some(reason) = state.catalog.unready() {
        return Err(ApiError::new(ErrorCode::EngineUnavailable, reason));
    }
    Ok(Json(Ready {
        status: "ready",
        queue: stats.into(),
    }))
}

/// A job as the API shows it. Times are milliseconds since the Unix epoch.
#[derive(Serialize, ToSchema)]
pub(crate) struct JobView {
    #[schema(example = "job_01jq7k2m4v8x9c3n5p6r7s8t9w")]
    id: String,
    #[schema(value_type = JobStateName)]
    state: JobState,
    /// How far the current attempt has got, 0 to 1.
    progress: f32,
    /// The stage the current attempt is in (`decode`, `transcribe`, ...).
    #[schema(required = true)]
    stage: Option<String>,
    /// Attempts started so far.
    attempts: u32,
    /// Attempts before the job fails for good; failures of the input are never retried.
    max_attempts: u32,
    /// The options the job was submitted with, after validation (`formats` filled in), and
    /// `submitted_by`: the key or token whose audio quota the job counts against.
    #[schema(value_type = Object)]
    options: Value,
    /// A cancel was asked for while the job ran; it stops at its next heartbeat.
    cancel_requested: bool,
    /// Why the last attempt failed (kept while a retry waits).
    #[schema(required = true)]
    error: Option<JobError>,
    /// What a succeeded job produced.
    #[schema(value_type = Option<JobResult>, required = true)]
    result: Option<Value>,
    created_at: i64,
    updated_at: i64,
    #[schema(required = true)]
    started_at: Option<i64>,
    #[schema(required = true)]
    finished_at: Option<i64>,
}

/// Why an attempt failed.
#[derive(Serialize, ToSchema)]
pub(crate) struct JobError {
    #[schema(value_type = ErrorCodeName)]
    code: String,
    message: String,
}

/// The shape of a succeeded job's `result` (it is shown as the worker recorded it).
#[derive(ToSchema)]
#[allow(dead_code)] // A schema only: the worker writes this JSON.
pub(crate) struct JobResult {
    /// The formats written, each fetched from `GET /v1/jobs/{id}/result?format=...`.
    #[schema(value_type = Vec<ResultFormatName>)]
    formats: Vec<String>,
    /// What the runner reports: engine, model, language, timings, usage.
    #[schema(value_type = Object)]
    summary: Value,
}

impl From<&Job> for JobView {
    fn from(job: &Job) -> Self {
        JobView {
            id: job.id.clone(),
            state: job.state,
            progress: (job.progress * 1000.0).round() / 1000.0,
            stage: job.stage.clone(),
            attempts: job.attempts,
            max_attempts: job.max_attempts,
            options: job.spec.clone(),
            cancel_requested: job.cancel_requested,
            error: job.error.as_ref().map(|e: &JobFailure| JobError {
                code: e.code.clone(),
                message: e.message.clone(),
            }),
            result: job.result.clone(),
            created_at: job.created_at,
            updated_at: job.updated_at,
            started_at: job.started_at,
            finished_at: job.finished_at,
        }
    }
}

/// One page of jobs, newest first.
#[derive(Serialize, ToSchema)]
pub(crate) struct JobPage {
    jobs: Vec<JobView>,
    /// Pass as `cursor` for the next page; null on the last page.
    #[schema(required = true)]
    next_cursor: Option<String>,
}

/// A job submitted as JSON: the media comes from `url`; every other field is optional.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[allow(dead_code)] // A schema only: `validate_options` reads the body as a map.
pub(crate) struct JobOptions {
    /// Where to fetch the media: http or https, at a public address.
    #[schema(pattern = "^https?://", example = "https://example.com/talk.mp3")]
    url: String,
    /// The engine, or a fallback chain such as `local,openai` (default: the server's).
    #[schema(nullable = false)]
    engine: Option<String>,
    /// The model (default: the server's); `GET /v1/models` lists them.
    #[schema(nullable = false)]
    model: Option<String>,
    /// The spoken language, e.g. `en` (default: detected).
    #[schema(nullable = false)]
    language: Option<String>,
    /// Label who speaks when.
    #[schema(nullable = false)]
    diarize: Option<bool>,
    /// How many speakers there are, when known.
    #[schema(nullable = false, minimum = 1)]
    speakers: Option<u32>,
    /// The result formats to produce (default `["vtt", "json"]`).
    #[schema(nullable = false, value_type = Option<Vec<ResultFormatName>>)]
    formats: Option<Vec<String>>,
    /// Notified when the job ends (see the `jobFinished` webhook).
    #[schema(nullable = false, pattern = "^https?://", max_length = 2048)]
    webhook_url: Option<String>,
    /// Text that primes the recogniser (names, spellings).
    #[schema(nullable = false)]
    prompt: Option<String>,
}

/// A job submitted with the media uploaded: a `file` part, then the options, either as one
/// JSON `options` part (the fields of `JobOptions` but `url`) or one text part each.
#[derive(ToSchema)]
#[allow(dead_code)] // A schema only: the handler reads the parts one by one.
pub(crate) struct JobUpload {
    /// The audio or video file; its type is recognised from its bytes.
    #[schema(value_type = String, format = Binary)]
    file: Vec<u8>,
    /// The options as one JSON object, e.g. `{"formats": ["vtt", "srt"], "language": "en"}`.
    #[schema(nullable = false)]
    options: Option<String>,
    #[schema(nullable = false)]
    engine: Option<String>,
    #[schema(nullable = false)]
    model: Option<String>,
    #[schema(nullable = false)]
    language: Option<String>,
    /// `true`/`false` (or `1`/`0`).
    #[schema(nullable = false, pattern = "^(true|false|1|0)$")]
    diarize: Option<String>,
    #[schema(nullable = false)]
    speakers: Option<String>,
    /// Comma-separated, e.g. `vtt,srt`.
    #[schema(nullable = false, example = "vtt,srt")]
    formats: Option<String>,
    #[schema(nullable = false, pattern = "^https?://", max_length = 2048)]
    webhook_url: Option<String>,
    #[schema(nullable = false)]
    prompt: Option<String>,
}

/// Checks and completes a job's options: formats, diarize, and the free-form rest.
fn validate_options(options: Map<String, Value>) -> ApiResult<Map<String, Value>> {
    let mut options = options;
    let allowed = [
        "engine",
        "model",
        "language",
        "diarize",
        "speakers",
        "formats",
        "webhook_url",
        "url",
        "prompt",
    ];
    if let Some(unknown) = options.keys().find(|k| !allowed.contains(&k.as_str())) {
        return Err(ApiError::new(
            ErrorCode::InvalidArgument,
            format!(
                "unknown option {unknown:?} (allowed: {})",
                allowed.join(", ")
            ),
        ));
    }
    let formats: Vec<String> = match options.get("formats") {
        None => vec!["vtt".into(), "json".into()],
        Some(Value::Array(items)) => items
            .iter()
            .map(|v| v.as_str().map(str::to_string))
            .collect::<Option<_>>()
            .ok_or_else(|| ApiError::new(ErrorCode::InvalidArgument, "formats must be strings"))?,
        Some(Value::String(list)) => list.split(',').map(|f| f.trim().to_string()).collect(),
        Some(_) => {
            return Err(ApiError::new(
                ErrorCode::InvalidArgument,
                "formats must be a list such as [\"vtt\", \"srt\"]",
            ))
        }
    };
    for format in &formats {
        if !FORMATS.iter().any(|(name, _)| name == format) {
            return Err(ApiError::new(
                ErrorCode::InvalidArgument,
                format!("unknown format {format:?} (expected vtt, srt, json, txt or rttm)"),
            ));
        }
    }
    options.insert("formats".into(), json!(formats));
    if let Some(diarize) = options.get("diarize") {
        let flag = match diarize {
            Value::Bool(b) => *b,
            Value::String(s) if s == "true" || s == "1" => true,
            Value::String(s) if s == "false" || s == "0" => false,
            _ => {
                return Err(ApiError::new(
                    ErrorCode::InvalidArgument,
                    "diarize must be true or false",
                ))
            }
        };
        options.insert("diarize".into(), json!(flag));
    }
    if let Some(speakers) = options.get("speakers") {
        // Multipart fields arrive as text; the runner reads a number.
        let count = match speakers {
            Value::Number(n) => n.as_u64(),
            Value::String(s) => s.trim().parse::<u64>().ok(),
            _ => None,
        }
        .filter(|n| (1..=32).contains(n))
        .ok_or_else(|| {
            ApiError::new(
                ErrorCode::InvalidArgument,
                "speakers must be a whole number from 1 to 32",
            )
        })?;
        options.insert("speakers".into(), json!(count));
    }
    if let Some(url) = options.get("url") {
        if !is_http_url(url.as_str().unwrap_or_default()) {
            return Err(ApiError::new(
                ErrorCode::MediaUrlFailed,
                "url must be an http or https URL",
            ));
        }
    }
    if let Some(url) = options.get("webhook_url") {
        let text = url.as_str().unwrap_or_default();
        if !is_http_url(text) || text.len() > 2048 {
            return Err(ApiError::new(
                ErrorCode::InvalidArgument,
                "webhook_url must be an http or https URL",
            ));
        }
    }
    Ok(options)
}

/// An http or https URL that parses as the fetcher and the webhook sender parse it, so a
/// URL that could never be dialled is refused now rather than failing the job later.
fn is_http_url(text: &str) -> bool {
    (text.starts_with("http://") || text.starts_with("https://"))
        && text
            .parse::<axum::http::Uri>()
            .is_ok_and(|uri| uri.host().is_some_and(|host| !host.is_empty()))
}

/// Feeds a blocking reader from chunks an async task receives, so an upload streams
/// into storage without being held in memory.
struct ChannelReader {
    chunks: tokio::sync::mpsc::Receiver<Bytes>,
    current: Bytes,
}

impl std::io::Read for ChannelReader {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        while self.current.is_empty() {
            match self.chunks.blocking_recv() {
                Some(chunk) => self.current = chunk,
                None => return Ok(0),
            }
        }
        let n = buf.len().min(self.current.len());
        buf[..n].copy_from_slice(&self.current[..n]);
        self.current = self.current.slice(n..);
        Ok(n)
    }
}

/// Streams one multipart file field into storage under a fresh `uploads/<id>/media` key,
/// refusing it past `limit` bytes (413) or when it is not audio or video (415).
pub(crate) async fn store_upload(
    state: &Arc<AppState>,
    mut field: axum::extract::multipart::Field<'_>,
    limit: u64,
) -> ApiResult<vttiro_storage::StoredObject> {
    let key = format!(
        "uploads/{:016x}{:08x}/media",
        fastrand::u64(..),
        fastrand::u32(..)
    );
    let (sender, receiver) = tokio::sync::mpsc::channel::<Bytes>(8);
    let store = state.store.clone();
    let writer = tokio::task::spawn_blocking(move || {
        let mut reader = ChannelReader {
            chunks: receiver,
            current: Bytes::new(),
        };
        store.put_media(&key, &mut reader, limit)
    });
    let mut read_error = None;
    loop {
        match field.chunk().await {
            Ok(Some(chunk)) => {
                // The writer has stopped (too large, not media): stop reading.
                if sender.send(chunk).await.is_err() {
                    break;
                }
            }
            Ok(None) => break,
            Err(e) => {
                read_error = Some(e.body_text());
                break;
            }
        }
    }
    drop(sender);
    let stored = writer
        .await
        .map_err(|e| ApiError::new(ErrorCode::Internal, e.to_string()))?;
    if let Some(reason) = read_error {
        if let Ok(object) = &stored {
            let _ = state.store.delete(&object.key);
        }
        return Err(ApiError::new(
            ErrorCode::InvalidArgument,
            format!("the upload was cut short: {reason}"),
        ));
    }
    stored.map_err(|e| match e {
        StorageError::TooLarge { limit, .. } => ApiError::new(
            ErrorCode::InputTooLarge,
            format!("the upload is larger than the {limit}-byte limit"),
        ),
        StorageError::NotMedia(_) => ApiError::new(
            ErrorCode::UnsupportedMedia,
            "the upload is not an audio or video file",
        ),
        other => other.into(),
    })
}

/// Erases an upload that no job will own.
pub(crate) fn discard_upload(store: &Store, object: &vttiro_storage::StoredObject) {
    let _ = store.delete_prefix(object.key.trim_end_matches("/media"));
}

/// 429 with Retry-After once `max_queued` jobs are waiting. The queue enforces the limit
/// again, atomically, when the job is submitted; this early look only spares the client
/// (and the disk) an upload that would be refused at the end.
pub(crate) async fn refuse_when_full(state: &Arc<AppState>) -> ApiResult<()> {
    let queued = blocking({
        let state = state.clone();
        move || Ok(state.queue.stats()?.queued)
    })
    .await?;
    if queued >= state.config.max_queued {
        let mut error = ApiError::new(
            ErrorCode::QueueFull,
            format!("{queued} jobs are waiting; try again shortly"),
        );
        error.retry_after = Some(5);
        return Err(error);
    }
    Ok(())
}

/// Refuses a submission when the principal's audio minutes for the UTC day are used up.
/// Usage is counted when jobs succeed, so the job that crosses the line still runs.
pub(crate) async fn refuse_over_quota(
    state: &Arc<AppState>,
    principal: &Principal,
) -> ApiResult<()> {
    let Some(minutes) = principal
        .audio_minutes_per_day
        .or(state.config.audio_minutes_per_day)
    else {
        return Ok(());
    };
    let now = vttiro_auth::now_ms();
    let day = vttiro_auth::utc_day(now);
    let used = blocking({
        let (state, id) = (state.clone(), principal.id.clone());
        move || {
            state
                .auth
                .db()
                .audio_used(&id, day)
                .map_err(|e| ApiError::new(ErrorCode::StorageFailed, e.to_string()))
        }
    })
    .await?;
    if used >= i64::from(minutes) * 60_000 {
        let mut error = ApiError::new(
            ErrorCode::QuotaExceeded,
            format!(
                "{} has used its {minutes} audio minutes for today (UTC); the quota resets at midnight UTC",
                principal.id
            ),
        );
        error.retry_after = Some(((day + 1) * 86_400_000 - now).div_euclid(1000).max(1) as u64);
        return Err(error);
    }
    Ok(())
}

/// Submit a job
///
/// Upload the media as `multipart/form-data` (a `file` part, and the options either as one
/// JSON `options` part or one text part each), or send JSON whose `url` the server fetches
/// the media from. The job runs in the background: poll it, follow its events, or give a
/// `webhook_url`. A repeated request with the same `Idempotency-Key` returns the first job.
#[utoipa::path(
    post,
    path = "/v1/jobs",
    tag = "jobs",
    operation_id = "submitJob",
    params(
        ("Idempotency-Key" = Option<String>, Header, nullable = false, description = "Makes retries safe: the same key with the same request returns the first job (200), with another request it is refused (409)."),
    ),
    request_body(content(
        (JobUpload = "multipart/form-data"),
        (JobOptions = "application/json"),
    )),
    responses(
        (status = 202, description = "The job is queued.", body = JobView, headers(("Location" = String, description = "The job's URL."))),
        (status = 200, description = "An earlier request with this `Idempotency-Key` created this job.", body = JobView, headers(("Location" = String, description = "The job's URL."))),
        (status = 400, description = "The request is malformed: another content type, no media, both a file and a url, unknown or invalid options (`invalid_argument`).", body = ErrorEnvelope),
        (status = 409, description = "The `Idempotency-Key` was used for another request (`conflict`).", body = ErrorEnvelope),
        (status = 413, description = "The upload is larger than the server's limit (`input_too_large`).", body = ErrorEnvelope),
        (status = 415, description = "The upload is not an audio or video file (`unsupported_media`).", body = ErrorEnvelope),
        (status = 422, description = "The `url` is not an http or https URL (`media_url_failed`).", body = ErrorEnvelope),
        (status = 429, description = "Too many jobs are queued (`queue_full`).", body = ErrorEnvelope, headers(("Retry-After" = u64, description = "Seconds to wait before trying again."))),
        (status = 500, description = "An internal failure (`internal`).", body = ErrorEnvelope),
        (status = 503, description = "The job database or storage failed (`storage_failed`).", body = ErrorEnvelope),
    )
)]
async fn submit(
    State(state): State<Arc<AppState>>,
    Extension(principal): Extension<Principal>,
    headers: HeaderMap,
    request: Request,
) -> ApiResult<Response> {
    refuse_when_full(&state).await?;
    refuse_over_quota(&state, &principal).await?;
    let idempotency_key = headers
        .get("idempotency-key")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_string();

    let mut options = Map::new();
    let mut media: Option<vttiro_storage::StoredObject> = None;
    if content_type.starts_with("multipart/form-data") {
        let mut form = Multipart::from_request(request, &())
            .await
            .map_err(|e| ApiError::new(ErrorCode::InvalidArgument, e.body_text()))?;
        while let Some(field) = form
            .next_field()
            .await
            .map_err(|e| ApiError::new(ErrorCode::InvalidArgument, e.body_text()))?
        {
            let name = field.name().unwrap_or_default().to_string();
            if name == "file" {
                media = Some(store_upload(&state, field, state.config.max_upload_bytes).await?);
            } else {
                let text = field
                    .text()
                    .await
                    .map_err(|e| ApiError::new(ErrorCode::InvalidArgument, e.body_text()))?;
                if name == "options" {
                    let parsed: Map<String, Value> = serde_json::from_str(&text).map_err(|e| {
                        ApiError::new(ErrorCode::InvalidArgument, format!("options: {e}"))
                    })?;
                    options.extend(parsed);
                } else {
                    options.insert(name, json!(text));
                }
            }
        }
    } else if content_type.starts_with("application/json") {
        let Json(body): Json<Map<String, Value>> = Json::from_request(request, &())
            .await
            .map_err(|e| ApiError::new(ErrorCode::InvalidArgument, e.body_text()))?;
        options = body;
    } else {
        return Err(ApiError::new(
            ErrorCode::InvalidArgument,
            "send multipart/form-data with a file, or JSON with a url",
        ));
    }
    let cleanup = |media: &Option<vttiro_storage::StoredObject>| {
        if let Some(object) = media {
            discard_upload(&state.store, object);
        }
    };
    let options = match validate_options(options) {
        Ok(options) => options,
        Err(e) => {
            cleanup(&media);
            return Err(e);
        }
    };
    if media.is_none() && !options.contains_key("url") {
        return Err(ApiError::new(
            ErrorCode::InvalidArgument,
            "no media: send a file part or a url",
        ));
    }
    if media.is_some() && options.contains_key("url") {
        cleanup(&media);
        return Err(ApiError::new(
            ErrorCode::InvalidArgument,
            "send a file or a url, not both",
        ));
    }
    let mut options = options;
    // Whose daily audio quota the job counts against, once it succeeds. Clients cannot set
    // it: `validate_options` refuses the name.
    options.insert("submitted_by".into(), json!(principal.id));
    let spec = Value::Object(options);
    let fingerprint = {
        let mut hasher = Sha256::new();
        hasher.update(spec.to_string().as_bytes());
        hasher.update(
            media
                .as_ref()
                .map(|m| m.sha256.as_str())
                .unwrap_or("")
                .as_bytes(),
        );
        hasher
            .finalize()
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect::<String>()
    };
    let new = NewJob {
        tenant: principal.tenant.clone(),
        spec,
        media: media.as_ref().map(|m| m.key.clone()),
        idempotency_key,
        fingerprint,
        max_attempts: None,
        trace_parent: crate::trace_context::current_traceparent(),
    };
    let submitted = blocking({
        let state = state.clone();
        move || Ok(state.queue.submit(new)?)
    })
    .await;
    let submitted = match submitted {
        Ok(s) => s,
        Err(e) => {
            cleanup(&media);
            return Err(e);
        }
    };
    let (status, job) = match submitted {
        Submitted::Created(job) => (StatusCode::ACCEPTED, job),
        Submitted::Existing(job) => {
            // The first submission's media is the one kept.
            cleanup(&media);
            (StatusCode::OK, job)
        }
    };
    let mut response = (status, Json(JobView::from(&job))).into_response();
    if let Ok(location) = HeaderValue::from_str(&format!("/v1/jobs/{}", job.id)) {
        response.headers_mut().insert(header::LOCATION, location);
    }
    Ok(response)
}

/// Get a job
#[utoipa::path(
    get,
    path = "/v1/jobs/{id}",
    tag = "jobs",
    operation_id = "getJob",
    params(("id" = String, Path, description = "The job's id.")),
    responses(
        (status = 200, description = "The job.", body = JobView),
        (status = 400, description = "The id is not valid UTF-8 (`invalid_argument`).", body = ErrorEnvelope),
        (status = 404, description = "No such job (`job_not_found`).", body = ErrorEnvelope),
        (status = 500, description = "An internal failure (`internal`).", body = ErrorEnvelope),
        (status = 503, description = "The job database failed (`storage_failed`).", body = ErrorEnvelope),
    )
)]
async fn show(
    State(state): State<Arc<AppState>>,
    Extension(principal): Extension<Principal>,
    Path(id): Path<String>,
) -> ApiResult<Json<JobView>> {
    let job = blocking(move || visible_job(&state, &principal, &id)).await?;
    Ok(Json(JobView::from(&job)))
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
struct ListParams {
    /// Only jobs in this state.
    #[param(value_type = Option<JobStateName>, nullable = false)]
    state: Option<String>,
    /// The `next_cursor` of the previous page.
    #[param(nullable = false)]
    cursor: Option<String>,
    /// Jobs per page.
    #[param(nullable = false, minimum = 1, maximum = 200, default = 50)]
    limit: Option<usize>,
    /// Only this tenant's jobs (administrators; everyone else always sees only their own).
    #[param(nullable = false)]
    tenant: Option<String>,
}

/// List jobs
///
/// Newest first, a page at a time.
#[utoipa::path(
    get,
    path = "/v1/jobs",
    tag = "jobs",
    operation_id = "listJobs",
    params(ListParams),
    responses(
        (status = 200, description = "A page of jobs.", body = JobPage),
        (status = 400, description = "An unknown state, or a limit outside 1..=200 (`invalid_argument`).", body = ErrorEnvelope),
        (status = 500, description = "An internal failure (`internal`).", body = ErrorEnvelope),
        (status = 503, description = "The job database failed (`storage_failed`).", body = ErrorEnvelope),
    )
)]
async fn list(
    State(state): State<Arc<AppState>>,
    Extension(principal): Extension<Principal>,
    Query(params): Query<ListParams>,
) -> ApiResult<Json<JobPage>> {
    let job_state = match params.state.as_deref() {
        None => None,
        Some(text) => Some(JobState::parse(text).ok_or_else(|| {
            ApiError::new(
                ErrorCode::InvalidArgument,
                format!("state {text:?}: expected queued, running, succeeded, failed or cancelled"),
            )
        })?),
    };
    let limit = params.limit.unwrap_or(50);
    if limit == 0 || limit > 200 {
        return Err(ApiError::new(
            ErrorCode::InvalidArgument,
            "limit must be 1..=200",
        ));
    }
    // Administrators see every tenant unless they pick one; everyone else sees their own.
    let tenant = if principal.role == vttiro_auth::Role::Admin {
        params.tenant
    } else {
        Some(principal.tenant.clone())
    };
    let query = ListQuery {
        tenant,
        state: job_state,
        cursor: params.cursor,
        limit,
    };
    let page = blocking(move || Ok(state.queue.list(&query)?)).await?;
    Ok(Json(JobPage {
        jobs: page.jobs.iter().map(JobView::from).collect(),
        next_cursor: page.next_cursor,
    }))
}

/// Cancel a job
///
/// A queued job is cancelled at once; a running one stops at its worker's next heartbeat.
#[utoipa::path(
    post,
    path = "/v1/jobs/{id}/cancel",
    tag = "jobs",
    operation_id = "cancelJob",
    params(("id" = String, Path, description = "The job's id.")),
    responses(
        (status = 200, description = "The job is cancelled.", body = JobView),
        (status = 202, description = "The job is running; it stops at its next heartbeat.", body = JobView),
        (status = 400, description = "The id is not valid UTF-8 (`invalid_argument`).", body = ErrorEnvelope),
        (status = 404, description = "No such job (`job_not_found`).", body = ErrorEnvelope),
        (status = 409, description = "The job has already ended (`conflict`).", body = ErrorEnvelope),
        (status = 500, description = "An internal failure (`internal`).", body = ErrorEnvelope),
        (status = 503, description = "The job database failed (`storage_failed`).", body = ErrorEnvelope),
    )
)]
async fn cancel(
    State(state): State<Arc<AppState>>,
    Extension(principal): Extension<Principal>,
    Path(id): Path<String>,
) -> ApiResult<Response> {
    let job = blocking(move || {
        visible_job(&state, &principal, &id)?;
        Ok(state.queue.cancel(&id)?)
    })
    .await?;
    // A running job stops at its worker's next heartbeat.
    let status = if job.state == JobState::Cancelled {
        StatusCode::OK
    } else {
        StatusCode::ACCEPTED
    };
    Ok((status, Json(JobView::from(&job))).into_response())
}

/// Delete a job
///
/// Erases the job, its history, its media and its results. A running job's worker stops at
/// its next heartbeat.
#[utoipa::path(
    delete,
    path = "/v1/jobs/{id}",
    tag = "jobs",
    operation_id = "deleteJob",
    params(("id" = String, Path, description = "The job's id.")),
    responses(
        (status = 204, description = "The job and its files are gone."),
        (status = 400, description = "The id is not valid UTF-8 (`invalid_argument`).", body = ErrorEnvelope),
        (status = 404, description = "No such job (`job_not_found`).", body = ErrorEnvelope),
        (status = 500, description = "An internal failure (`internal`).", body = ErrorEnvelope),
        (status = 503, description = "The job database or storage failed (`storage_failed`).", body = ErrorEnvelope),
    )
)]
async fn delete(
    State(state): State<Arc<AppState>>,
    Extension(principal): Extension<Principal>,
    Path(id): Path<String>,
) -> ApiResult<StatusCode> {
    blocking(move || {
        visible_job(&state, &principal, &id)?;
        let job = state.queue.delete(&id)?;
        if let Some(media) = &job.media {
            state
                .store
                .delete_prefix(media.trim_end_matches("/media"))?;
        }
        state.store.delete_prefix(&format!("jobs/{id}"))?;
        Ok(())
    })
    .await?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
struct ResultParams {
    /// Which result; the job must have been submitted with it in `formats`.
    #[param(value_type = Option<ResultFormatName>, nullable = false, default = "vtt")]
    format: Option<String>,
}

/// Get a result
///
/// One of the formats a succeeded job produced.
#[utoipa::path(
    get,
    path = "/v1/jobs/{id}/result",
    tag = "jobs",
    operation_id = "getJobResult",
    params(("id" = String, Path, description = "The job's id."), ResultParams),
    responses(
        (status = 200, description = "The result in the format asked for.", content(
            (String = "text/vtt"),
            (String = "application/x-subrip"),
            (Object = "application/json"),
            (String = "text/plain"),
        )),
        (status = 400, description = "An unknown format (`invalid_argument`).", body = ErrorEnvelope),
        (status = 404, description = "No such job, or it has no result in that format (`job_not_found`).", body = ErrorEnvelope),
        (status = 409, description = "The job has not succeeded (`conflict`).", body = ErrorEnvelope),
        (status = 500, description = "An internal failure (`internal`).", body = ErrorEnvelope),
        (status = 503, description = "The job database or storage failed (`storage_failed`).", body = ErrorEnvelope),
    )
)]
async fn result(
    State(state): State<Arc<AppState>>,
    Extension(principal): Extension<Principal>,
    Path(id): Path<String>,
    Query(params): Query<ResultParams>,
) -> ApiResult<Response> {
    let format = params.format.unwrap_or_else(|| "vtt".into());
    let Some((_, content_type)) = FORMATS.iter().find(|(name, _)| *name == format) else {
        return Err(ApiError::new(
            ErrorCode::InvalidArgument,
            format!("unknown format {format:?} (expected vtt, srt, json, txt or rttm)"),
        ));
    };
    let bytes = blocking(move || {
        let job = visible_job(&state, &principal, &id)?;
        if job.state != JobState::Succeeded {
            return Err(ApiError::new(
                ErrorCode::Conflict,
                format!(
                    "job {id} is {}; results exist once it has succeeded",
                    job.state.as_str()
                ),
            ));
        }
        let key = format!("jobs/{id}/result.{format}");
        let mut file = state.store.open_read(&key).map_err(|e| match e {
            StorageError::NotFound(_) => ApiError::new(
                ErrorCode::JobNotFound,
                format!("job {id} has no {format} result (ask for the format when submitting)"),
            ),
            // A result that exists but cannot be read (no or wrong master key) is the
            // server's failure, not a missing format.
            other => other.into(),
        })?;
        let mut bytes = Vec::new();
        std::io::Read::read_to_end(&mut file, &mut bytes)
            .map_err(|e| ApiError::new(ErrorCode::StorageFailed, e.to_string()))?;
        Ok(bytes)
    })
    .await?;
    Ok(([(header::CONTENT_TYPE, *content_type)], bytes).into_response())
}

/// One Server-Sent Event of a job's stream. OpenAPI 3.1 has no word for the items of a
/// stream, so this follows 3.2's convention (which schemathesis reads): the schema of an
/// event-stream response describes each event.
#[derive(ToSchema)]
#[allow(dead_code)] // A schema only: axum's `Event` writes the fields.
pub(crate) struct JobEventMessage {
    /// The event's number in the job's history, from 1; send it back as `Last-Event-ID`.
    #[schema(pattern = "^[0-9]+$", example = "3")]
    id: String,
    /// What happened: `queued`, `running`, `progress`, `retrying`, `cancel_requested`,
    /// `succeeded`, `failed` or `cancelled`.
    #[schema(example = "progress")]
    event: String,
    /// A `JobEventData` object as JSON.
    #[schema(content_media_type = "application/json")]
    data: String,
}

/// The `data` of each Server-Sent Event.
#[derive(Serialize, ToSchema)]
pub(crate) struct JobEventData {
    /// When it happened, in milliseconds since the Unix epoch.
    at: i64,
    /// What the event carries: `{fraction, stage}` for progress, `{code, message}` for a
    /// failure, the result for success.
    #[schema(value_type = Object)]
    data: Value,
}

/// Follow a job's events
///
/// Server-Sent Events from the job's durable history, oldest first: each event's `event` is
/// its kind (`queued`, `running`, `progress`, `retrying`, `cancel_requested`, `succeeded`,
/// `failed`, `cancelled`), its `id` its sequence number, and its `data` a `JobEventData`
/// object. A client reconnecting with `Last-Event-ID` misses nothing; the stream ends after
/// the job's final event.
#[utoipa::path(
    get,
    path = "/v1/jobs/{id}/events",
    tag = "jobs",
    operation_id = "jobEvents",
    params(
        ("id" = String, Path, description = "The job's id."),
        ("Last-Event-ID" = Option<u64>, Header, nullable = false, description = "Resume after this event (browsers send it when they reconnect)."),
    ),
    responses(
        (status = 200, description = "The event stream; each event is a `JobEventMessage`.", content((JobEventMessage = "text/event-stream"))),
        (status = 400, description = "The id is not valid UTF-8 (`invalid_argument`).", body = ErrorEnvelope),
        (status = 404, description = "No such job (`job_not_found`).", body = ErrorEnvelope),
        (status = 500, description = "An internal failure (`internal`).", body = ErrorEnvelope),
        (status = 503, description = "The job database failed (`storage_failed`).", body = ErrorEnvelope),
    )
)]
async fn events(
    State(state): State<Arc<AppState>>,
    Extension(principal): Extension<Principal>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> ApiResult<Sse<impl futures_util::Stream<Item = Result<Event, Infallible>>>> {
    let after: u64 = headers
        .get("last-event-id")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    // Unknown jobs are a 404 before the stream starts.
    blocking({
        let (state, id) = (state.clone(), id.clone());
        move || visible_job(&state, &principal, &id)
    })
    .await?;
    struct Cursor {
        state: Arc<AppState>,
        id: String,
        after: u64,
        pending: std::collections::VecDeque<vttiro_jobs::JobEvent>,
        finished: bool,
    }
    let cursor = Cursor {
        state,
        id,
        after,
        pending: Default::default(),
        finished: false,
    };
    let stream = futures_util::stream::unfold(cursor, |mut cursor| async move {
        loop {
            if let Some(event) = cursor.pending.pop_front() {
                cursor.after = event.seq;
                let sse = Event::default()
                    .id(event.seq.to_string())
                    .event(event.kind.clone())
                    .data(
                        serde_json::to_string(&JobEventData {
                            at: event.at,
                            data: event.data,
                        })
                        .unwrap_or_default(),
                    );
                return Some((Ok(sse), cursor));
            }
            if cursor.finished {
                return None;
            }
            let (state, id, after) = (cursor.state.clone(), cursor.id.clone(), cursor.after);
            let fetched = tokio::task::spawn_blocking(move || {
                let events = state.queue.events(&id, after)?;
                let job = state.queue.get(&id)?;
                Ok::<_, QueueError>((events, job.state.is_final()))
            })
            .await;
            match fetched {
                Ok(Ok((events, is_final))) => {
                    cursor.finished = is_final;
                    if events.is_empty() && !is_final {
                        tokio::time::sleep(Duration::from_millis(200)).await;
                    }
                    cursor.pending.extend(events);
                }
                // Deleted mid-stream, or the store failed: end the stream.
                _ => return None,
            }
        }
    });
    Ok(Sse::new(stream).keep_alive(KeepAlive::default()))
}
