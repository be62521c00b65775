//! The HTTP surface: routes, the error envelope, request ids and backpressure.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, FromRequest, Multipart, Path, Query, Request, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{json, Map, Value};
use sha2::{Digest, Sha256};
use vttiro_core::ErrorCode;
use vttiro_jobs::{Job, JobQueue, JobState, ListQuery, NewJob, QueueError, Submitted};
use vttiro_storage::{LocalStore, StorageError};

use crate::FORMATS;

#[derive(Debug, Clone)]
pub struct ServerConfig {
    /// Largest upload accepted (413 beyond it).
    pub max_upload_bytes: u64,
    /// Queued jobs beyond which submissions get 429.
    pub max_queued: u64,
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            max_upload_bytes: 2 * 1024 * 1024 * 1024,
            max_queued: 10_000,
        }
    }
}

pub struct AppState {
    pub queue: Arc<dyn JobQueue>,
    pub store: LocalStore,
    pub config: ServerConfig,
}

/// An error on its way to the envelope; the request-id middleware fills in the id.
#[derive(Debug, Clone)]
struct ApiError {
    code: ErrorCode,
    message: String,
    retry_after: Option<u64>,
}

impl ApiError {
    fn new(code: ErrorCode, message: impl Into<String>) -> ApiError {
        ApiError {
            code,
            message: message.into(),
            retry_after: None,
        }
    }
}

impl From<QueueError> for ApiError {
    fn from(e: QueueError) -> Self {
        ApiError::new(e.code(), e.to_string())
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

type ApiResult<T> = Result<T, ApiError>;

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
    let mut response = next.run(request).await;
    if let Some(error) = response.extensions_mut().remove::<ApiError>() {
        let status = response.status();
        let headers = response.headers().clone();
        let body = json!({ "error": {
            "code": error.code.as_str(),
            "message": error.message,
            "request_id": id,
        }});
        response = (status, Json(body)).into_response();
        for name in [header::RETRY_AFTER] {
            if let Some(value) = headers.get(&name) {
                response.headers_mut().insert(name, value.clone());
            }
        }
        tracing::info!(request_id = %id, %method, %path, status = status.as_u16(), code = error.code.as_str(), "request refused");
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
        response = (
            status,
            Json(
                json!({ "error": { "code": code.as_str(), "message": message, "request_id": id } }),
            ),
        )
            .into_response();
    }
    if let Ok(value) = HeaderValue::from_str(&id) {
        response.headers_mut().insert("x-request-id", value);
    }
    response
}

pub fn router(state: Arc<AppState>) -> Router {
    Router::new()
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/v1/jobs", post(submit).get(list))
        .route("/v1/jobs/{id}", get(show).delete(delete))
        .route("/v1/jobs/{id}/cancel", post(cancel))
        .route("/v1/jobs/{id}/result", get(result))
        .route("/v1/jobs/{id}/events", get(events))
        // Uploads are limited while they stream to storage, not buffered against a cap.
        .layer(DefaultBodyLimit::disable())
        .layer(axum::middleware::from_fn(request_id))
        .with_state(state)
}

/// Runs a store or queue call off the async threads.
async fn blocking<T: Send + 'static>(
    work: impl FnOnce() -> ApiResult<T> + Send + 'static,
) -> ApiResult<T> {
    tokio::task::spawn_blocking(work)
        .await
        .map_err(|e| ApiError::new(ErrorCode::Internal, format!("worker task failed: {e}")))?
}

async fn healthz() -> Json<Value> {
    Json(json!({ "status": "ok" }))
}

async fn readyz(State(state): State<Arc<AppState>>) -> ApiResult<Json<Value>> {
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
    Ok(Json(json!({ "status": "ready", "queue": stats })))
}

/// The job as the API shows it.
fn view(job: &Job) -> Value {
    json!({
        "id": job.id,
        "state": job.state,
        "progress": (job.progress * 1000.0).round() / 1000.0,
        "stage": job.stage,
        "attempts": job.attempts,
        "max_attempts": job.max_attempts,
        "options": job.spec,
        "cancel_requested": job.cancel_requested,
        "error": job.error,
        "result": job.result,
        "created_at": job.created_at,
        "updated_at": job.updated_at,
        "started_at": job.started_at,
        "finished_at": job.finished_at,
    })
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
    if let Some(url) = options.get("url") {
        let text = url.as_str().unwrap_or_default();
        if !(text.starts_with("http://") || text.starts_with("https://")) {
            return Err(ApiError::new(
                ErrorCode::MediaUrlFailed,
                "url must be an http or https URL",
            ));
        }
    }
    Ok(options)
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

async fn submit(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    request: Request,
) -> ApiResult<Response> {
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
        while let Some(mut field) = form
            .next_field()
            .await
            .map_err(|e| ApiError::new(ErrorCode::InvalidArgument, e.body_text()))?
        {
            let name = field.name().unwrap_or_default().to_string();
            if name == "file" {
                let key = format!(
                    "uploads/{:016x}{:08x}/media",
                    fastrand::u64(..),
                    fastrand::u32(..)
                );
                let (sender, receiver) = tokio::sync::mpsc::channel::<Bytes>(8);
                let store = state.store.clone();
                let limit = state.config.max_upload_bytes;
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
                let stored = stored.map_err(|e| match e {
                    StorageError::TooLarge { limit, .. } => ApiError::new(
                        ErrorCode::InputTooLarge,
                        format!("the upload is larger than the {limit}-byte limit"),
                    ),
                    StorageError::NotMedia(_) => ApiError::new(
                        ErrorCode::UnsupportedMedia,
                        "the upload is not an audio or video file",
                    ),
                    other => other.into(),
                })?;
                media = Some(stored);
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
            let _ = state
                .store
                .delete_prefix(object.key.trim_end_matches("/media"));
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
        tenant: "default".into(),
        spec,
        media: media.as_ref().map(|m| m.key.clone()),
        idempotency_key,
        fingerprint,
        max_attempts: None,
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
    let mut response = (status, Json(view(&job))).into_response();
    if let Ok(location) = HeaderValue::from_str(&format!("/v1/jobs/{}", job.id)) {
        response.headers_mut().insert(header::LOCATION, location);
    }
    Ok(response)
}

async fn show(
    State(state): State<Arc<AppState>>,
    Path(id): Path<String>,
) -> ApiResult<Json<Value>> {
    let job = blocking(move || Ok(state.queue.get(&id)?)).await?;
    Ok(Json(view(&job)))
}

#[derive(Deserialize)]
struct ListParams {
    state: Option<String>,
    cursor: Option<String>,
    limit: Option<usize>,
}

async fn list(
    State(state): State<Arc<AppState>>,
    Query(params): Query<ListParams>,
) -> ApiResult<Json<Value>> {
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
    let query = ListQuery {
        tenant: None,
        state: job_state,
        cursor: params.cursor,
        limit,
    };
    let page = blocking(move || Ok(state.queue.list(&query)?)).await?;
    Ok(Json(json!({
        "jobs": page.jobs.iter().map(view).collect::<Vec<_>>(),
        "next_cursor": page.next_cursor,
    })))
}

async fn cancel(State(state): State<Arc<AppState>>, Path(id): Path<String>) -> ApiResult<Response> {
    let job = blocking(move || Ok(state.queue.cancel(&id)?)).await?;
    // A running job stops at its worker's next heartbeat.
    let status = if job.state == JobState::Cancelled {
        StatusCode::OK
    } else {
        StatusCode::ACCEPTED
    };
    Ok((status, Json(view(&job))).into_response())
}

async fn delete(
    State(state): State<Arc<AppState>>,
    Path(id): Path<String>,
) -> ApiResult<StatusCode> {
    blocking(move || {
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

#[derive(Deserialize)]
struct ResultParams {
    format: Option<String>,
}

async fn result(
    State(state): State<Arc<AppState>>,
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
        let job = state.queue.get(&id)?;
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
        let mut file = state.store.open_read(&key).map_err(|_| {
            ApiError::new(
                ErrorCode::JobNotFound,
                format!("job {id} has no {format} result (ask for the format when submitting)"),
            )
        })?;
        let mut bytes = Vec::new();
        std::io::Read::read_to_end(&mut file, &mut bytes)
            .map_err(|e| ApiError::new(ErrorCode::StorageFailed, e.to_string()))?;
        Ok(bytes)
    })
    .await?;
    Ok(([(header::CONTENT_TYPE, *content_type)], bytes).into_response())
}

/// Server-Sent Events from the job's durable history: each event carries its sequence
/// number as `id`, so a client reconnecting with `Last-Event-ID` misses nothing. The
/// stream ends after the job's final event.
async fn events(
    State(state): State<Arc<AppState>>,
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
        move || Ok(state.queue.get(&id)?)
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
                    .data(json!({ "at": event.at, "data": event.data }).to_string());
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
