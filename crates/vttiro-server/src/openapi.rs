//! The API's OpenAPI 3.1 description and its reference page.
//!
//! The document is not written by hand: `utoipa` builds it from the `#[utoipa::path]`
//! attribute on each handler and the `ToSchema` types the handlers answer with, collected
//! by the same `routes!` calls that register the routes (see `api::routes`). Enumerations
//! owned by other tables — error codes, job states, result formats — are read from those
//! tables, so adding a code or a format changes the document with it. This module adds
//! what no single handler knows: the `X-Request-Id` every response carries, the webhook
//! the service sends, and the page at `/docs`, which renders the document in the browser
//! without anything from the network.

use std::borrow::Cow;
use std::sync::{Arc, OnceLock};

use axum::http::header;
use axum::response::IntoResponse;
use serde_json::{json, Value};
use utoipa::openapi::schema::{ObjectBuilder, Schema, Type};
use utoipa::openapi::RefOr;
use utoipa::{OpenApi, PartialSchema, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use vttiro_core::ErrorCode;
use vttiro_jobs::JobState;

use crate::api::{AppState, JobError, JobEventData, JobResult};
use crate::FORMATS;

const INTRO: &str = "\
Transcription as a service: submit media, follow the job, fetch subtitles.

Every refusal is `{\"error\": {\"code\", \"message\", \"request_id\"}}` with a stable `code` \
(the `ErrorCode` schema lists them with their HTTP statuses). Every response carries \
`X-Request-Id`: the one the request sent (printable ASCII, at most 128 characters), \
else a new one. A full queue answers 429 with `Retry-After`.";

#[derive(OpenApi)]
#[openapi(
    info(title = "vttiro", description = INTRO),
    servers((url = "/", description = "The server this document came from")),
    tags(
        (name = "jobs", description = "Asynchronous transcription: submit, follow, fetch results, cancel, delete."),
        (name = "openai", description = "OpenAI-compatible endpoints, for clients written against OpenAI's audio API."),
        (name = "service", description = "Liveness and readiness probes, and metrics."),
        (name = "admin", description = "API keys, the audit log, tenant retention and export."),
        (name = "reference", description = "This document and its reference page."),
    ),
    components(schemas(JobEventData, WebhookEvent))
)]
struct ApiBase;

/// The document's fixed parts, which `api::routes` adds every operation to.
pub(crate) fn base() -> utoipa::openapi::OpenApi {
    ApiBase::openapi()
}

/// The OpenAPI document the server serves at `/openapi.json`.
pub fn openapi() -> Value {
    let mut document = serde_json::to_value(crate::api::routes().into_openapi())
        .expect("an OpenAPI document serializes");
    stamp_security(&mut document);
    stamp_request_ids(&mut document);
    document["webhooks"] = webhooks();
    document
}

/// The serialized document, built once: it depends on nothing but the code.
fn document() -> &'static str {
    static DOCUMENT: OnceLock<String> = OnceLock::new();
    DOCUMENT.get_or_init(|| openapi().to_string())
}

/// The request-id middleware wraps every route, so every operation takes the header and
/// every response carries it; saying so here keeps the handlers' attributes to their own
/// business.
fn stamp_request_ids(document: &mut Value) {
    let parameter = json!({
        "name": "X-Request-Id",
        "in": "header",
        "required": false,
        "description": "Echoed back when it is printable ASCII of at most 128 characters; otherwise the server makes one.",
        "schema": {"type": "string"},
    });
    let header = json!({
        "description": "The request's id: the one sent, or one the server made. Log lines and error bodies carry it.",
        "required": true,
        "schema": {"type": "string", "minLength": 1},
    });
    let Some(paths) = document["paths"].as_object_mut() else {
        return;
    };
    for item in paths.values_mut().filter_map(Value::as_object_mut) {
        for operation in item.values_mut() {
            let Some(responses) = operation
                .get_mut("responses")
                .and_then(Value::as_object_mut)
            else {
                continue;
            };
            for response in responses.values_mut() {
                response["headers"]["X-Request-Id"] = header.clone();
            }
            match operation["parameters"].as_array_mut() {
                Some(parameters) => parameters.push(parameter.clone()),
                None => operation["parameters"] = json!([parameter.clone()]),
            }
        }
    }
}

/// The guard wraps every route, so what it demands and how it refuses is written here
/// from its own table ([`crate::guard::access`]) rather than on each handler.
fn stamp_security(document: &mut Value) {
    document["components"]["securitySchemes"]["bearer"] = json!({
        "type": "http",
        "scheme": "bearer",
        "description": "An API key (`vt_…`, from `vttiro keys create` or `POST /v1/keys`) or, when the server has a JWKS configured, an OIDC/JWT access token (RS256 or ES256) carrying tenant and role claims.",
    });
    let envelope =
        json!({"application/json": {"schema": {"$ref": "#/components/schemas/ErrorEnvelope"}}});
    let retry_after = json!({"description": "Seconds to wait before trying again.", "required": true, "schema": {"type": "integer"}});
    let Some(paths) = document["paths"].as_object_mut() else {
        return;
    };
    for (path, item) in paths.iter_mut() {
        let Some(item) = item.as_object_mut() else {
            continue;
        };
        for (method, operation) in item.iter_mut() {
            let Ok(method) = method.to_uppercase().parse::<axum::http::Method>() else {
                continue;
            };
            let (crate::guard::Access::Needs(permission), _) = crate::guard::access(&method, path)
            else {
                operation["security"] = json!([]);
                continue;
            };
            operation["security"] = json!([{"bearer": []}]);
            let responses = &mut operation["responses"];
            responses["401"] = json!({
                "description": "No credentials, or an unknown, revoked, expired or forged key or token (`unauthenticated`).",
                "headers": {"WWW-Authenticate": {"description": "`Bearer realm=\"vttiro\"`.", "required": true, "schema": {"type": "string"}}},
                "content": envelope.clone(),
            });
            responses["403"] = json!({
                "description": "The caller's role may not do this (`forbidden`).",
                "content": envelope.clone(),
            });
            if permission == vttiro_auth::Permission::ReadMetrics {
                continue;
            }
            let limited = if permission == vttiro_auth::Permission::SubmitJob {
                "More requests than the caller's per-minute limit (`rate_limited`), or the caller's audio minutes for the UTC day are used up (`quota_exceeded`)"
            } else {
                "More requests than the caller's per-minute limit (`rate_limited`)"
            };
            match responses.get_mut("429") {
                Some(existing) => {
                    let before = existing["description"]
                        .as_str()
                        .unwrap_or_default()
                        .to_string();
                    existing["description"] = json!(format!("{before} Or: {limited}."));
                    existing["headers"]["Retry-After"] = retry_after.clone();
                }
                None => {
                    responses["429"] = json!({
                        "description": format!("{limited}."),
                        "headers": {"Retry-After": retry_after.clone()},
                        "content": envelope.clone(),
                    });
                }
            }
        }
    }
}

/// The notification sent to a job's `webhook_url` (OpenAPI 3.1 `webhooks`).
fn webhooks() -> Value {
    let header = |name: &str, schema: Value, description: &str| json!({"name": name, "in": "header", "required": true, "schema": schema, "description": description});
    json!({
        "jobFinished": {
            "post": {
                "operationId": "jobFinished",
                "tags": ["jobs"],
                "summary": "A job has ended",
                "description": "Sent to the job's `webhook_url` once it has succeeded, failed or been cancelled, \
    signed by the Standard Webhooks scheme: `webhook-signature` is `v1,` and the base64 HMAC-SHA256, \
    keyed by the server's secret (`whsec_<base64>`), of `{webhook-id}.{webhook-timestamp}.{body}`. \
    Delivery is at least once: a failure is retried with exponential backoff under the same \
    `webhook-id`, so receivers drop duplicates by it.",
                "parameters": [
                    header("webhook-id", json!({"type": "string"}), "The message's id, the same on every retry."),
                    header("webhook-timestamp", json!({"type": "integer"}), "When this attempt was signed, in seconds since the Unix epoch."),
                    header("webhook-signature", json!({"type": "string", "pattern": "^v1,"}), "`v1,<base64 HMAC-SHA256 of \"{webhook-id}.{webhook-timestamp}.{body}\">`."),
                ],
                "requestBody": {
                    "required": true,
                    "content": {"application/json": {"schema": {"$ref": "#/components/schemas/WebhookEvent"}}},
                },
                "responses": {
                    "2XX": {"description": "Delivered; it is not sent again."},
                    "410": {"description": "The receiver is gone; delivery stops."},
                    "default": {"description": "Sent again later, with exponential backoff, until attempts run out."},
                },
            },
        },
    })
}

/// The body of the `jobFinished` webhook.
#[derive(ToSchema)]
#[allow(dead_code)] // A schema only: the queue writes this JSON in its outbox.
struct WebhookEvent {
    #[schema(rename = "type", value_type = WebhookEventType)]
    kind: String,
    /// When the job ended, in milliseconds since the Unix epoch.
    timestamp: i64,
    data: WebhookJob,
}

#[derive(ToSchema)]
#[allow(dead_code)] // A schema only.
enum WebhookEventType {
    #[schema(rename = "job.succeeded")]
    Succeeded,
    #[schema(rename = "job.failed")]
    Failed,
    #[schema(rename = "job.cancelled")]
    Cancelled,
}

/// The job as it ended (`GET /v1/jobs/{id}` has the rest).
#[derive(ToSchema)]
#[allow(dead_code)] // A schema only.
struct WebhookJob {
    id: String,
    #[schema(value_type = JobStateName)]
    state: String,
    attempts: u32,
    #[schema(required = true)]
    error: Option<JobError>,
    #[schema(required = true)]
    result: Option<JobResult>,
    created_at: i64,
    #[schema(required = true)]
    finished_at: Option<i64>,
}

fn string_enum(
    values: impl IntoIterator<Item = &'static str>,
    description: String,
) -> RefOr<Schema> {
    ObjectBuilder::new()
        .schema_type(Type::String)
        .enum_values(Some(values))
        .description(Some(description))
        .into()
}

/// `ErrorCode` as the API spells it, every code of the table with its HTTP status.
pub(crate) struct ErrorCodeName;

impl PartialSchema for ErrorCodeName {
    fn schema() -> RefOr<Schema> {
        let table: Vec<String> = ErrorCode::ALL
            .iter()
            .map(|code| format!("`{}` ({})", code.as_str(), code.http_status()))
            .collect();
        string_enum(
            ErrorCode::ALL.iter().map(|code| code.as_str()),
            format!(
                "Why a request or a job failed, with the HTTP status a refusal has: {}.",
                table.join(", ")
            ),
        )
    }
}

impl ToSchema for ErrorCodeName {
    fn name() -> Cow<'static, str> {
        Cow::Borrowed("ErrorCode")
    }
}

/// `JobState` as the API spells it.
pub(crate) struct JobStateName;

impl PartialSchema for JobStateName {
    fn schema() -> RefOr<Schema> {
        string_enum(
            JobState::ALL.iter().map(|state| state.as_str()),
            "Where a job is: `queued` (waiting, or backing off before a retry), `running`, \
             or one of the final states `succeeded`, `failed`, `cancelled`."
                .to_string(),
        )
    }
}

impl ToSchema for JobStateName {
    fn name() -> Cow<'static, str> {
        Cow::Borrowed("JobState")
    }
}

/// A result format a job can produce.
pub(crate) struct ResultFormatName;

impl PartialSchema for ResultFormatName {
    fn schema() -> RefOr<Schema> {
        let table: Vec<String> = FORMATS
            .iter()
            .map(|(name, content_type)| format!("`{name}` ({content_type})"))
            .collect();
        string_enum(
            FORMATS.iter().map(|(name, _)| *name),
            format!("A result format, served as: {}.", table.join(", ")),
        )
    }
}

impl ToSchema for ResultFormatName {
    fn name() -> Cow<'static, str> {
        Cow::Borrowed("ResultFormat")
    }
}

pub(crate) fn routes() -> OpenApiRouter<Arc<AppState>> {
    OpenApiRouter::new()
        .routes(routes!(openapi_json))
        .routes(routes!(docs))
}

/// This document
#[utoipa::path(
    get,
    path = "/openapi.json",
    tag = "reference",
    operation_id = "openapi",
    responses((status = 200, description = "The OpenAPI 3.1 document.", body = Object))
)]
async fn openapi_json() -> impl IntoResponse {
    ([(header::CONTENT_TYPE, "application/json")], document())
}

/// The API reference page
///
/// Renders `/openapi.json` in the browser; it loads nothing else.
#[utoipa::path(
    get,
    path = "/docs",
    tag = "reference",
    operation_id = "docs",
    responses((status = 200, description = "An HTML page.", content((String = "text/html"))))
)]
async fn docs() -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, "text/html; charset=utf-8")],
        include_str!("docs.html"),
    )
}
