//! The OpenAI-compatible surface: `POST /v1/audio/transcriptions` answers synchronously
//! (the request becomes a job on the same queue, and the handler waits for it), and
//! `GET /v1/models` lists what can be asked for, so clients written for OpenAI's API —
//! the official SDKs included — work against vttiro by changing only their base URL.

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::extract::{FromRequest, Multipart, Path, Request, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Serialize;
use serde_json::{json, Map, Value};
use utoipa::openapi::schema::{AnyOfBuilder, Schema};
use utoipa::openapi::{Ref, RefOr};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use vttiro_core::{language_code, language_name, ErrorCode, Transcript};
use vttiro_jobs::{JobState, NewJob, Submitted};

use crate::api::{
    blocking, discard_upload, refuse_when_full, store_upload, ApiError, ApiResult, AppState,
    ErrorEnvelope,
};

/// The model name OpenAI clients send by default; it means "the server's default model".
pub const DEFAULT_MODEL_ALIAS: &str = "whisper-1";

pub(crate) fn routes() -> OpenApiRouter<Arc<AppState>> {
    OpenApiRouter::new()
        .routes(routes!(transcriptions))
        .routes(routes!(list_models))
        .routes(routes!(show_model))
}

/// A transcription request, as OpenAI's API takes it.
#[derive(ToSchema)]
#[allow(dead_code)] // A schema only: the handler reads the parts one by one.
struct TranscriptionForm {
    /// The audio or video file; its type is recognised from its bytes.
    #[schema(value_type = String, format = Binary)]
    file: Vec<u8>,
    /// `whisper-1` (the server's default model) or a name `GET /v1/models` lists.
    #[schema(nullable = false, example = "whisper-1")]
    model: Option<String>,
    /// The spoken language as an ISO-639-1 code, e.g. `en` (default: detected).
    #[schema(nullable = false, example = "en")]
    language: Option<String>,
    /// Text that primes the recogniser (names, spellings).
    #[schema(nullable = false)]
    prompt: Option<String>,
    #[schema(nullable = false, value_type = Option<ResponseFormat>)]
    response_format: Option<String>,
    /// Checked, not used: decoding picks its own temperatures when it must retry.
    #[schema(nullable = false, minimum = 0, maximum = 1)]
    temperature: Option<f32>,
    /// With `response_format=verbose_json`: `word`, `segment`, or both.
    #[schema(rename = "timestamp_granularities[]", nullable = false, value_type = Option<Vec<TimestampGranularity>>)]
    timestamp_granularities: Option<Vec<String>>,
    /// Only `false`: streamed transcription is not supported.
    #[schema(nullable = false)]
    stream: Option<bool>,
}

/// `timestamp_granularities[]` values.
#[derive(ToSchema)]
#[schema(rename_all = "snake_case")]
#[allow(dead_code)] // A schema only: `parse_fields` reads the text.
enum TimestampGranularity {
    Word,
    Segment,
}

/// The answer for `response_format=json`.
#[derive(Serialize, ToSchema)]
struct Transcription {
    text: String,
    usage: Usage,
}

/// The audio billed, in whole seconds.
#[derive(Serialize, ToSchema)]
struct Usage {
    #[serde(rename = "type")]
    #[schema(value_type = String, example = "duration")]
    kind: &'static str,
    seconds: i64,
}

/// The answer for `response_format=verbose_json`. Times are in seconds.
#[derive(Serialize, ToSchema)]
struct TranscriptionVerbose {
    #[schema(value_type = String, example = "transcribe")]
    task: &'static str,
    /// The language's English name, e.g. `english`.
    language: String,
    duration: f64,
    text: String,
    usage: Usage,
    /// Unless only `word` granularity was asked for.
    #[serde(skip_serializing_if = "Option::is_none")]
    segments: Option<Vec<VerboseSegment>>,
    /// When `word` granularity was asked for.
    #[serde(skip_serializing_if = "Option::is_none")]
    words: Option<Vec<VerboseWord>>,
}

#[derive(Serialize, ToSchema)]
struct VerboseSegment {
    id: usize,
    seek: i64,
    start: f64,
    end: f64,
    text: String,
    /// Always empty: the token ids of one model mean nothing to another.
    tokens: Vec<u32>,
    temperature: f32,
    avg_logprob: f32,
    compression_ratio: f32,
    no_speech_prob: f32,
}

#[derive(Serialize, ToSchema)]
struct VerboseWord {
    word: String,
    start: f64,
    end: f64,
}

/// A JSON transcription: `Transcription`, or `TranscriptionVerbose` for `verbose_json`.
#[derive(Serialize)]
#[serde(untagged)]
enum TranscriptionBody {
    Plain(Transcription),
    Verbose(TranscriptionVerbose),
}

// Written by hand because the derive would say `oneOf`, and a verbose answer also fits
// the plain schema, which `oneOf` forbids.
impl utoipa::PartialSchema for TranscriptionBody {
    fn schema() -> RefOr<Schema> {
        AnyOfBuilder::new()
            .item(Ref::from_schema_name(Transcription::name()))
            .item(Ref::from_schema_name(TranscriptionVerbose::name()))
            .into()
    }
}

impl ToSchema for TranscriptionBody {
    fn schemas(schemas: &mut Vec<(String, RefOr<Schema>)>) {
        for (name, schema) in [
            (
                Transcription::name(),
                <Transcription as utoipa::PartialSchema>::schema(),
            ),
            (
                TranscriptionVerbose::name(),
                <TranscriptionVerbose as utoipa::PartialSchema>::schema(),
            ),
        ] {
            schemas.push((name.into_owned(), schema));
        }
        Transcription::schemas(schemas);
        TranscriptionVerbose::schemas(schemas);
    }
}

/// A model, as OpenAI's API lists them.
#[derive(Serialize, ToSchema)]
struct Model {
    #[schema(example = "tiny.en")]
    id: String,
    #[schema(value_type = String, example = "model")]
    object: &'static str,
    /// Always 0: models here have no creation date.
    created: i64,
    #[schema(value_type = String, example = "vttiro")]
    owned_by: &'static str,
}

#[derive(Serialize, ToSchema)]
struct ModelList {
    #[schema(value_type = String, example = "list")]
    object: &'static str,
    data: Vec<Model>,
}

/// `response_format` values and what the job must produce for each.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ToSchema)]
#[schema(rename_all = "snake_case")]
enum ResponseFormat {
    Json,
    Text,
    Srt,
    VerboseJson,
    Vtt,
}

impl ResponseFormat {
    fn parse(text: &str) -> ApiResult<ResponseFormat> {
        Ok(match text {
            "json" => ResponseFormat::Json,
            "text" => ResponseFormat::Text,
            "srt" => ResponseFormat::Srt,
            "verbose_json" => ResponseFormat::VerboseJson,
            "vtt" => ResponseFormat::Vtt,
            other => {
                return Err(ApiError::new(
                    ErrorCode::InvalidArgument,
                    format!(
                        "response_format {other:?}: expected json, text, srt, verbose_json or vtt"
                    ),
                ))
            }
        })
    }

    /// The job's result format this answer is made from, besides the JSON transcript.
    fn rendered(self) -> Option<&'static str> {
        match self {
            ResponseFormat::Text => Some("txt"),
            ResponseFormat::Srt => Some("srt"),
            ResponseFormat::Vtt => Some("vtt"),
            ResponseFormat::Json | ResponseFormat::VerboseJson => None,
        }
    }
}

/// One request's parameters, as OpenAI documents them.
struct TranscriptionRequest {
    model: Option<String>,
    language: Option<String>,
    prompt: Option<String>,
    format: ResponseFormat,
    word_timestamps: bool,
    segment_timestamps: bool,
}

fn bad(message: impl Into<String>) -> ApiError {
    ApiError::new(ErrorCode::InvalidArgument, message)
}

/// Erases the job (and its files) when the handler ends for any reason — answered,
/// failed, timed out, or the client hung up — so a synchronous request leaves nothing
/// behind; deleting a running job also stops its worker at the next heartbeat.
struct EraseJob {
    state: Arc<AppState>,
    id: String,
    media: Option<String>,
}

impl Drop for EraseJob {
    fn drop(&mut self) {
        let (state, id, media) = (self.state.clone(), self.id.clone(), self.media.take());
        let erase = move || {
            let _ = state.queue.delete(&id);
            if let Some(key) = media {
                let _ = state.store.delete_prefix(key.trim_end_matches("/media"));
            }
            let _ = state.store.delete_prefix(&format!("jobs/{id}"));
        };
        match tokio::runtime::Handle::try_current() {
            Ok(runtime) => {
                runtime.spawn_blocking(erase);
            }
            Err(_) => erase(),
        }
    }
}

/// Transcribe (OpenAI-compatible)
///
/// OpenAI's `POST /v1/audio/transcriptions`: the upload becomes a job on the same queue,
/// and the answer comes when it has run, so a client written for OpenAI's API works by
/// changing its base URL. Long media is better sent to `POST /v1/jobs`.
#[utoipa::path(
    post,
    path = "/v1/audio/transcriptions",
    tag = "openai",
    operation_id = "createTranscription",
    request_body(content((TranscriptionForm = "multipart/form-data"))),
    responses(
        (status = 200, description = "The transcription: JSON for `json` and `verbose_json`, WebVTT for `vtt`, plain text for `text` and `srt` (as OpenAI answers).", content(
            (TranscriptionBody = "application/json"),
            (String = "text/plain"),
            (String = "text/vtt"),
        )),
        (status = 400, description = "Not multipart, no `file`, an unknown model (`unknown_model`) or an invalid parameter (`invalid_argument`); or the job failed on its input.", body = ErrorEnvelope),
        (status = 404, description = "The job failed: its input was not found (`input_not_found`).", body = ErrorEnvelope),
        (status = 409, description = "The job was cancelled or deleted while the request waited (`conflict`).", body = ErrorEnvelope),
        (status = 413, description = "The upload is larger than the server's limit for this endpoint (`input_too_large`), or a cloud engine refused its size.", body = ErrorEnvelope),
        (status = 415, description = "The upload is not an audio or video file (`unsupported_media`), or a cloud engine could not read it.", body = ErrorEnvelope),
        (status = 422, description = "The media is damaged or has no audio (`corrupt_media`, `no_audio_track`, ...).", body = ErrorEnvelope),
        (status = 429, description = "Too many jobs are queued (`queue_full`).", body = ErrorEnvelope, headers(("Retry-After" = u64, description = "Seconds to wait before trying again."))),
        (status = 500, description = "The transcription failed inside the server (`engine_failed`, `internal`, ...).", body = ErrorEnvelope),
        (status = 502, description = "A model download or a cloud provider's key failed (`model_download_failed`, `provider_auth`).", body = ErrorEnvelope),
        (status = 503, description = "No model or engine can run it now, a cloud provider is unavailable, or storage failed.", body = ErrorEnvelope),
        (status = 504, description = "The transcription did not finish within the server's deadline (`deadline_exceeded`).", body = ErrorEnvelope),
    )
)]
async fn transcriptions(
    State(state): State<Arc<AppState>>,
    axum::Extension(principal): axum::Extension<vttiro_auth::Principal>,
    headers: HeaderMap,
    request: Request,
) -> ApiResult<Response> {
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    if !content_type.starts_with("multipart/form-data") {
        return Err(bad(
            "send multipart/form-data with a file part, as OpenAI's API expects",
        ));
    }
    refuse_when_full(&state).await?;
    crate::api::refuse_over_quota(&state, &principal).await?;
    let mut form = Multipart::from_request(request, &())
        .await
        .map_err(|e| bad(e.body_text()))?;
    let mut media = None;
    let mut fields: Vec<(String, String)> = Vec::new();
    let parsed: ApiResult<()> = async {
        while let Some(field) = form.next_field().await.map_err(|e| bad(e.body_text()))? {
            let name = field.name().unwrap_or_default().to_string();
            if name == "file" {
                if media.is_some() {
                    return Err(bad("send one file part"));
                }
                media =
                    Some(store_upload(&state, field, state.config.max_sync_upload_bytes).await?);
            } else {
                let text = field.text().await.map_err(|e| bad(e.body_text()))?;
                fields.push((name, text));
            }
        }
        Ok(())
    }
    .await;
    let request = parsed.and_then(|()| parse_fields(&fields, &*state.catalog));
    let (request, media) = match (request, media) {
        (Ok(request), Some(media)) => (request, media),
        (Err(e), media) => {
            if let Some(object) = media {
                discard_upload(&state.store, &object);
            }
            return Err(e);
        }
        (Ok(_), None) => return Err(bad("file: required (the audio to transcribe)")),
    };

    let mut formats = vec!["json"];
    formats.extend(request.format.rendered());
    let mut spec = Map::new();
    spec.insert("formats".into(), json!(formats));
    for (key, value) in [
        ("model", &request.model),
        ("language", &request.language),
        ("prompt", &request.prompt),
    ] {
        if let Some(value) = value {
            spec.insert(key.into(), json!(value));
        }
    }
    // Whose daily audio quota the job counts against, once it succeeds.
    spec.insert("submitted_by".into(), json!(principal.id));
    let new = NewJob {
        tenant: principal.tenant.clone(),
        spec: Value::Object(spec),
        media: Some(media.key.clone()),
        idempotency_key: None,
        fingerprint: media.sha256.clone(),
        max_attempts: None,
        trace_parent: crate::trace_context::current_traceparent(),
    };
    let submitted = blocking({
        let state = state.clone();
        move || Ok(state.queue.submit(new)?)
    })
    .await;
    let job = match submitted {
        Ok(Submitted::Created(job) | Submitted::Existing(job)) => job,
        Err(e) => {
            discard_upload(&state.store, &media);
            return Err(e);
        }
    };
    let _erase = EraseJob {
        state: state.clone(),
        id: job.id.clone(),
        media: Some(media.key.clone()),
    };
    tracing::info!(job = %job.id, "transcription request queued");

    let deadline = Instant::now() + state.config.sync_deadline;
    let job = loop {
        let current = blocking({
            let (state, id) = (state.clone(), job.id.clone());
            move || Ok(state.queue.get(&id)?)
        })
        .await?;
        if current.state.is_final() {
            break current;
        }
        if Instant::now() >= deadline {
            return Err(ApiError::new(
                ErrorCode::DeadlineExceeded,
                format!(
                    "the transcription did not finish within {} s; use POST /v1/jobs for long media",
                    state.config.sync_deadline.as_secs()
                ),
            ));
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    match job.state {
        JobState::Succeeded => {}
        JobState::Failed => {
            let failure = job.error.unwrap_or_else(|| vttiro_jobs::JobFailure {
                code: ErrorCode::Internal.as_str().into(),
                message: "the transcription failed".into(),
            });
            let code = ErrorCode::parse(&failure.code).unwrap_or(ErrorCode::Internal);
            return Err(ApiError::new(code, failure.message));
        }
        other => {
            return Err(ApiError::new(
                ErrorCode::Conflict,
                format!("the transcription was {}", other.as_str()),
            ))
        }
    }
    let read = |format: &'static str| {
        let (state, id) = (state.clone(), job.id.clone());
        blocking(move || {
            let mut file = state
                .store
                .open_read(&format!("jobs/{id}/result.{format}"))?;
            let mut bytes = Vec::new();
            std::io::Read::read_to_end(&mut file, &mut bytes)
                .map_err(|e| ApiError::new(ErrorCode::StorageFailed, e.to_string()))?;
            Ok(bytes)
        })
    };
    if let Some(format) = request.format.rendered() {
        let bytes = read(format).await?;
        let content_type = match request.format {
            ResponseFormat::Vtt => "text/vtt; charset=utf-8",
            _ => "text/plain; charset=utf-8",
        };
        return Ok(([(header::CONTENT_TYPE, content_type)], bytes).into_response());
    }
    let transcript: Transcript = serde_json::from_slice(&read("json").await?).map_err(|e| {
        ApiError::new(
            ErrorCode::Internal,
            format!("the job's JSON transcript is unreadable: {e}"),
        )
    })?;
    let body = match request.format {
        ResponseFormat::VerboseJson => {
            TranscriptionBody::Verbose(verbose_json(&transcript, &request))
        }
        _ => TranscriptionBody::Plain(Transcription {
            text: transcript.text(),
            usage: usage(&transcript),
        }),
    };
    Ok((StatusCode::OK, Json(body)).into_response())
}

fn parse_fields(
    fields: &[(String, String)],
    catalog: &dyn crate::ModelCatalog,
) -> ApiResult<TranscriptionRequest> {
    let mut request = TranscriptionRequest {
        model: None,
        language: None,
        prompt: None,
        format: ResponseFormat::Json,
        word_timestamps: false,
        segment_timestamps: false,
    };
    for (name, value) in fields {
        let value = value.trim();
        match name.as_str() {
            "model" => {
                if !value.is_empty() && value != DEFAULT_MODEL_ALIAS {
                    let known = catalog.models();
                    if !known.iter().any(|m| m == value) {
                        return Err(ApiError::new(
                            ErrorCode::UnknownModel,
                            format!(
                                "model {value:?} is not available here (available: {DEFAULT_MODEL_ALIAS}, {})",
                                known.join(", ")
                            ),
                        ));
                    }
                    request.model = Some(value.to_string());
                }
            }
            "language" if !value.is_empty() => {
                let code = language_code(value);
                if !(2..=3).contains(&code.len()) || !code.chars().all(|c| c.is_ascii_lowercase()) {
                    return Err(bad(format!(
                        "language {value:?}: expected an ISO-639-1 code such as \"en\""
                    )));
                }
                request.language = Some(code);
            }
            "prompt" if !value.is_empty() => request.prompt = Some(value.to_string()),
            "response_format" => request.format = ResponseFormat::parse(value)?,
            "timestamp_granularities[]" | "timestamp_granularities" => match value {
                "word" => request.word_timestamps = true,
                "segment" => request.segment_timestamps = true,
                other => {
                    return Err(bad(format!(
                        "timestamp_granularities {other:?}: expected word or segment"
                    )))
                }
            },
            "temperature" => {
                // Decoding uses its own temperature fallback; the value is checked, not used.
                let t: f32 = value
                    .parse()
                    .map_err(|_| bad(format!("temperature {value:?} is not a number")))?;
                if !(0.0..=1.0).contains(&t) {
                    return Err(bad(format!("temperature {t} is outside 0..=1")));
                }
            }
            "stream" if value == "false" => {}
            "stream" => return Err(bad("stream: streamed transcription is not supported")),
            // Empty language or prompt means the default.
            "language" | "prompt" => {}
            // Accepted for compatibility; they only tune OpenAI's own models.
            "chunking_strategy" | "include[]" => {}
            other => return Err(bad(format!("unknown parameter {other:?}"))),
        }
    }
    if (request.word_timestamps || request.segment_timestamps)
        && request.format != ResponseFormat::VerboseJson
    {
        return Err(bad(
            "timestamp_granularities needs response_format=verbose_json",
        ));
    }
    Ok(request)
}

fn seconds(ms: i64) -> f64 {
    ms as f64 / 1000.0
}

fn usage(transcript: &Transcript) -> Usage {
    Usage {
        kind: "duration",
        seconds: (transcript.duration_ms as f64 / 1000.0).ceil() as i64,
    }
}

/// OpenAI's `verbose_json`: segments unless only words were asked for, words when asked.
fn verbose_json(transcript: &Transcript, request: &TranscriptionRequest) -> TranscriptionVerbose {
    let segments = (request.segment_timestamps || !request.word_timestamps).then(|| {
        transcript
            .segments
            .iter()
            .enumerate()
            .map(|(i, s)| VerboseSegment {
                id: i,
                seek: (s.start_ms / 10).max(0),
                start: seconds(s.start_ms),
                end: seconds(s.end_ms),
                text: s.text.clone(),
                tokens: Vec::new(),
                temperature: s.temperature,
                avg_logprob: s.avg_logprob,
                compression_ratio: s.compression_ratio,
                no_speech_prob: s.no_speech_prob,
            })
            .collect()
    });
    let words = request.word_timestamps.then(|| {
        transcript
            .words()
            .map(|w| VerboseWord {
                word: w.text.trim().to_string(),
                start: seconds(w.start_ms),
                end: seconds(w.end_ms),
            })
            .collect()
    });
    TranscriptionVerbose {
        task: "transcribe",
        language: language_name(&transcript.language),
        duration: seconds(transcript.duration_ms),
        text: transcript.text(),
        usage: usage(transcript),
        segments,
        words,
    }
}

fn model_entry(id: &str) -> Model {
    Model {
        id: id.to_string(),
        object: "model",
        created: 0,
        owned_by: "vttiro",
    }
}

/// List models (OpenAI-compatible)
///
/// `whisper-1` (the server's default model), then every installed model.
#[utoipa::path(
    get,
    path = "/v1/models",
    tag = "openai",
    operation_id = "listModels",
    responses(
        (status = 200, description = "The models.", body = ModelList),
        (status = 500, description = "An internal failure (`internal`).", body = ErrorEnvelope),
    )
)]
async fn list_models(State(state): State<Arc<AppState>>) -> ApiResult<Json<ModelList>> {
    let catalog = state.catalog.clone();
    let models = blocking(move || Ok(catalog.models())).await?;
    let data = std::iter::once(DEFAULT_MODEL_ALIAS.to_string())
        .chain(models)
        .map(|id| model_entry(&id))
        .collect();
    Ok(Json(ModelList {
        object: "list",
        data,
    }))
}

/// Get a model (OpenAI-compatible)
#[utoipa::path(
    get,
    path = "/v1/models/{id}",
    tag = "openai",
    operation_id = "getModel",
    params(("id" = String, Path, description = "The model's name.")),
    responses(
        (status = 200, description = "The model.", body = Model),
        (status = 400, description = "No such model (`unknown_model`, as OpenAI answers), or an id that is not valid UTF-8.", body = ErrorEnvelope),
        (status = 404, description = "An empty id: no such endpoint.", body = ErrorEnvelope),
        (status = 500, description = "An internal failure (`internal`).", body = ErrorEnvelope),
    )
)]
async fn show_model(
    State(state): State<Arc<AppState>>,
    Path(id): Path<String>,
) -> ApiResult<Json<Model>> {
    let catalog = state.catalog.clone();
    let models = blocking(move || Ok(catalog.models())).await?;
    if id == DEFAULT_MODEL_ALIAS || models.contains(&id) {
        Ok(Json(model_entry(&id)))
    } else {
        Err(ApiError::new(
            ErrorCode::UnknownModel,
            format!("model {id:?} is not available here"),
        ))
    }
}
