//! Administration over HTTP: API keys, the audit log, tenant retention policies, and the
//! per-tenant export a data-access request needs. Keys and policies live in the auth
//! database ([`vttiro_auth::AuthDb`]), so `vttiro keys …` on the same data directory and
//! these endpoints see the same state.

use std::sync::Arc;

use axum::extract::{Path, Query, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use vttiro_auth::{AuthError, NewKey, Principal, Role, TenantPolicy};
use vttiro_core::ErrorCode;
use vttiro_jobs::ListQuery;

use crate::api::{blocking, ApiError, ApiResult, AppState, ErrorEnvelope, JobView};
use crate::FORMATS;

pub(crate) fn routes() -> OpenApiRouter<Arc<AppState>> {
    OpenApiRouter::new()
        .routes(routes!(create_key, list_keys))
        .routes(routes!(revoke_key))
        .routes(routes!(audit_log))
        .routes(routes!(verify_audit))
        .routes(routes!(set_policy))
        .routes(routes!(export_tenant))
}

fn auth_error(e: AuthError) -> ApiError {
    let code = match &e {
        AuthError::KeyNotFound(_) => ErrorCode::JobNotFound,
        AuthError::Invalid { .. } => ErrorCode::InvalidArgument,
        _ => ErrorCode::StorageFailed,
    };
    ApiError::new(code, e.to_string())
}

/// A key to create.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct KeyRequest {
    /// What the key is for, for people reading lists.
    #[schema(example = "nightly batch")]
    name: String,
    #[schema(example = "acme")]
    tenant: String,
    /// `admin`, `submitter`, `reader` or `metrics`.
    #[schema(example = "submitter")]
    role: String,
    /// Days until the key stops working; never when absent.
    #[schema(minimum = 1, maximum = 3650)]
    expires_in_days: Option<u32>,
    /// Overrides the server's requests-a-minute limit for this key.
    #[schema(minimum = 1)]
    requests_per_minute: Option<u32>,
    /// Overrides the server's daily audio quota for this key.
    #[schema(minimum = 1)]
    audio_minutes_per_day: Option<u32>,
}

/// An API key without its secret.
#[derive(Serialize, ToSchema)]
pub(crate) struct KeyView {
    #[schema(example = "key_3k9x0q2m7v1c")]
    id: String,
    name: String,
    tenant: String,
    #[schema(example = "submitter")]
    role: String,
    created_at: i64,
    #[schema(required = true)]
    expires_at: Option<i64>,
    #[schema(required = true)]
    revoked_at: Option<i64>,
    #[schema(required = true)]
    last_used_at: Option<i64>,
    #[schema(required = true)]
    requests_per_minute: Option<u32>,
    #[schema(required = true)]
    audio_minutes_per_day: Option<u32>,
}

impl From<vttiro_auth::ApiKey> for KeyView {
    fn from(key: vttiro_auth::ApiKey) -> Self {
        KeyView {
            id: key.id,
            name: key.name,
            tenant: key.tenant,
            role: key.role.as_str().into(),
            created_at: key.created_at,
            expires_at: key.expires_at,
            revoked_at: key.revoked_at,
            last_used_at: key.last_used_at,
            requests_per_minute: key.requests_per_minute,
            audio_minutes_per_day: key.audio_minutes_per_day,
        }
    }
}

/// A new key and, this once, its secret token.
#[derive(Serialize, ToSchema)]
struct CreatedKey {
    key: KeyView,
    /// `vt_…`: send as `Authorization: Bearer <token>`. It is not stored and cannot be shown again.
    token: String,
}

#[derive(Serialize, ToSchema)]
struct KeyList {
    keys: Vec<KeyView>,
}

/// Create an API key
///
/// Administrators only. The token is in this answer and nowhere else.
#[utoipa::path(
    post,
    path = "/v1/keys",
    tag = "admin",
    operation_id = "createKey",
    request_body(content = KeyRequest, content_type = "application/json"),
    responses(
        (status = 201, description = "The key, with its token.", body = CreatedKey),
        (status = 400, description = "An invalid tenant, role, name or expiry (`invalid_argument`).", body = ErrorEnvelope),
        (status = 500, description = "An internal failure (`internal`).", body = ErrorEnvelope),
        (status = 503, description = "The auth database failed (`storage_failed`).", body = ErrorEnvelope),
    )
)]
async fn create_key(
    State(state): State<Arc<AppState>>,
    body: Result<Json<KeyRequest>, axum::extract::rejection::JsonRejection>,
) -> ApiResult<Response> {
    let Json(request) =
        body.map_err(|e| ApiError::new(ErrorCode::InvalidArgument, e.body_text()))?;
    let role = Role::parse(&request.role).ok_or_else(|| {
        ApiError::new(
            ErrorCode::InvalidArgument,
            format!(
                "role {:?}: expected admin, submitter, reader or metrics",
                request.role
            ),
        )
    })?;
    if request.expires_in_days.is_some_and(|d| d == 0 || d > 3650)
        || request.requests_per_minute == Some(0)
        || request.audio_minutes_per_day == Some(0)
    {
        return Err(ApiError::new(
            ErrorCode::InvalidArgument,
            "expires_in_days must be 1..=3650 and limits at least 1",
        ));
    }
    let now = vttiro_auth::now_ms();
    let new = NewKey {
        name: request.name,
        tenant: request.tenant,
        role,
        expires_at: request
            .expires_in_days
            .map(|days| now + i64::from(days) * 86_400_000),
        requests_per_minute: request.requests_per_minute,
        audio_minutes_per_day: request.audio_minutes_per_day,
    };
    let (key, token) =
        blocking(move || state.auth.db().create_key(&new, now).map_err(auth_error)).await?;
    Ok((
        StatusCode::CREATED,
        Json(CreatedKey {
            key: key.into(),
            token,
        }),
    )
        .into_response())
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
struct KeyListParams {
    /// Only this tenant's keys.
    #[param(nullable = false)]
    tenant: Option<String>,
}

/// List API keys
///
/// Administrators only; revoked keys included, secrets never.
#[utoipa::path(
    get,
    path = "/v1/keys",
    tag = "admin",
    operation_id = "listKeys",
    params(KeyListParams),
    responses(
        (status = 200, description = "The keys, oldest first.", body = KeyList),
        (status = 500, description = "An internal failure (`internal`).", body = ErrorEnvelope),
        (status = 503, description = "The auth database failed (`storage_failed`).", body = ErrorEnvelope),
    )
)]
async fn list_keys(
    State(state): State<Arc<AppState>>,
    Query(params): Query<KeyListParams>,
) -> ApiResult<Json<KeyList>> {
    let keys = blocking(move || {
        state
            .auth
            .db()
            .list_keys(params.tenant.as_deref())
            .map_err(auth_error)
    })
    .await?;
    Ok(Json(KeyList {
        keys: keys.into_iter().map(KeyView::from).collect(),
    }))
}

/// Revoke an API key
///
/// Administrators only. Takes effect on the next request in every process.
#[utoipa::path(
    delete,
    path = "/v1/keys/{id}",
    tag = "admin",
    operation_id = "revokeKey",
    params(("id" = String, Path, description = "The key's id (`key_…`).")),
    responses(
        (status = 200, description = "The key, now revoked.", body = KeyView),
        (status = 400, description = "The id is not valid UTF-8 (`invalid_argument`).", body = ErrorEnvelope),
        (status = 404, description = "No such key (`job_not_found`).", body = ErrorEnvelope),
        (status = 500, description = "An internal failure (`internal`).", body = ErrorEnvelope),
        (status = 503, description = "The auth database failed (`storage_failed`).", body = ErrorEnvelope),
    )
)]
async fn revoke_key(
    State(state): State<Arc<AppState>>,
    Path(id): Path<String>,
) -> ApiResult<Json<KeyView>> {
    let key = blocking(move || {
        state
            .auth
            .db()
            .revoke_key(&id, vttiro_auth::now_ms())
            .map_err(auth_error)
    })
    .await?;
    Ok(Json(key.into()))
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
struct AuditParams {
    /// Entries after this sequence number (the previous page's `next_after`).
    #[param(nullable = false, minimum = 0)]
    after: Option<i64>,
    #[param(nullable = false, minimum = 1, maximum = 1000, default = 100)]
    limit: Option<usize>,
}

/// One audit entry: who did what, when, from where, and how it ended.
#[derive(Serialize, ToSchema)]
struct AuditEntryView {
    seq: i64,
    /// Milliseconds since the Unix epoch.
    at: i64,
    /// `key_…`, `jwt:<issuer>#<subject>`, `anonymous`, `cli` or `unauthenticated`.
    actor: String,
    #[schema(required = true)]
    tenant: Option<String>,
    #[schema(example = "job.create")]
    action: String,
    #[schema(required = true)]
    target: Option<String>,
    #[schema(required = true)]
    source: Option<String>,
    /// `ok`, or the refusal's error code.
    outcome: String,
    #[schema(required = true)]
    detail: Option<String>,
    prev_hash: String,
    hash: String,
}

#[derive(Serialize, ToSchema)]
struct AuditPage {
    entries: Vec<AuditEntryView>,
    /// Pass as `after` for the next page; null at the end.
    #[schema(required = true)]
    next_after: Option<i64>,
}

/// Read the audit log
///
/// Administrators only; oldest first, a page at a time. Send `Accept: application/x-ndjson`
/// for the whole log from `after` as JSON lines.
#[utoipa::path(
    get,
    path = "/v1/audit",
    tag = "admin",
    operation_id = "auditLog",
    params(AuditParams),
    responses(
        (status = 200, description = "A page of entries, or every entry as JSON lines.", content(
            (AuditPage = "application/json"),
            (String = "application/x-ndjson"),
        )),
        (status = 400, description = "A limit outside 1..=1000 (`invalid_argument`).", body = ErrorEnvelope),
        (status = 500, description = "An internal failure (`internal`).", body = ErrorEnvelope),
        (status = 503, description = "The auth database failed (`storage_failed`).", body = ErrorEnvelope),
    )
)]
async fn audit_log(
    State(state): State<Arc<AppState>>,
    headers: axum::http::HeaderMap,
    Query(params): Query<AuditParams>,
) -> ApiResult<Response> {
    let limit = params.limit.unwrap_or(100);
    if limit == 0 || limit > 1000 {
        return Err(ApiError::new(
            ErrorCode::InvalidArgument,
            "limit must be 1..=1000",
        ));
    }
    let after = params.after.unwrap_or(0).max(0);
    let lines = headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.contains("application/x-ndjson"));
    if lines {
        let body = blocking(move || {
            let mut body = String::new();
            state
                .auth
                .db()
                .each_audit_entry(after, |entry| {
                    body.push_str(&serde_json::to_string(&entry).unwrap_or_default());
                    body.push('\n');
                })
                .map_err(auth_error)?;
            Ok(body)
        })
        .await?;
        return Ok(([(header::CONTENT_TYPE, "application/x-ndjson")], body).into_response());
    }
    let entries = blocking(move || {
        state
            .auth
            .db()
            .audit_entries(after, limit)
            .map_err(auth_error)
    })
    .await?;
    let next_after = (entries.len() == limit)
        .then(|| entries.last().map(|e| e.seq))
        .flatten();
    Ok(Json(AuditPage {
        entries: entries
            .into_iter()
            .map(|e| AuditEntryView {
                seq: e.seq,
                at: e.at,
                actor: e.record.actor,
                tenant: e.record.tenant,
                action: e.record.action,
                target: e.record.target,
                source: e.record.source,
                outcome: e.record.outcome,
                detail: e.record.detail,
                prev_hash: e.prev_hash,
                hash: e.hash,
            })
            .collect(),
        next_after,
    })
    .into_response())
}

/// Whether the audit chain is intact.
#[derive(Serialize, ToSchema)]
struct ChainView {
    entries: u64,
    /// The last entry's hash: keep it elsewhere to detect the log being cut short later.
    head: String,
    intact: bool,
    /// The first entry that fails, when one does.
    #[schema(required = true)]
    first_broken: Option<i64>,
    #[schema(required = true)]
    reason: Option<String>,
}

/// Verify the audit log
///
/// Administrators only. Recomputes every entry's hash and its link to the one before.
#[utoipa::path(
    get,
    path = "/v1/audit/verify",
    tag = "admin",
    operation_id = "verifyAudit",
    responses(
        (status = 200, description = "The verdict.", body = ChainView),
        (status = 500, description = "An internal failure (`internal`).", body = ErrorEnvelope),
        (status = 503, description = "The auth database failed (`storage_failed`).", body = ErrorEnvelope),
    )
)]
async fn verify_audit(State(state): State<Arc<AppState>>) -> ApiResult<Json<ChainView>> {
    let report = blocking(move || state.auth.db().verify_audit().map_err(auth_error)).await?;
    Ok(Json(ChainView {
        entries: report.entries,
        head: report.head.clone(),
        intact: report.intact(),
        first_broken: report.first_broken,
        reason: report.reason,
    }))
}

/// How long a tenant's data is kept; absent fields keep the server's default.
#[derive(Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct PolicyBody {
    /// Hours after a job ends before its media is erased.
    #[schema(minimum = 1)]
    media_retention_hours: Option<u32>,
    /// Days after a job ends before the job and its results are erased.
    #[schema(minimum = 1)]
    result_retention_days: Option<u32>,
}

/// Set a tenant's retention
///
/// Administrators only. The retention sweeper applies it from its next pass.
#[utoipa::path(
    put,
    path = "/v1/tenants/{tenant}/policy",
    tag = "admin",
    operation_id = "setTenantPolicy",
    params(("tenant" = String, Path, description = "The tenant.")),
    request_body(content = PolicyBody, content_type = "application/json"),
    responses(
        (status = 200, description = "The policy now in force.", body = PolicyBody),
        (status = 400, description = "An invalid tenant name or value (`invalid_argument`).", body = ErrorEnvelope),
        (status = 404, description = "No tenant named (`job_not_found`).", body = ErrorEnvelope),
        (status = 500, description = "An internal failure (`internal`).", body = ErrorEnvelope),
        (status = 503, description = "The auth database failed (`storage_failed`).", body = ErrorEnvelope),
    )
)]
async fn set_policy(
    State(state): State<Arc<AppState>>,
    Path(tenant): Path<String>,
    body: Result<Json<PolicyBody>, axum::extract::rejection::JsonRejection>,
) -> ApiResult<Json<PolicyBody>> {
    let Json(body) = body.map_err(|e| ApiError::new(ErrorCode::InvalidArgument, e.body_text()))?;
    if body.media_retention_hours == Some(0) || body.result_retention_days == Some(0) {
        return Err(ApiError::new(
            ErrorCode::InvalidArgument,
            "retention must be at least 1",
        ));
    }
    let policy = TenantPolicy {
        tenant,
        media_retention_hours: body.media_retention_hours,
        result_retention_days: body.result_retention_days,
    };
    blocking(move || {
        state
            .auth
            .db()
            .set_tenant_policy(&policy)
            .map_err(auth_error)
    })
    .await?;
    Ok(Json(body))
}

/// Export a tenant's data
///
/// Everything stored about a tenant, as JSON lines: a `tenant` line, then its keys (without
/// secrets), its jobs with their options, history and results, and its audit entries.
/// Administrators may export any tenant; other roles their own (another tenant is 404).
#[utoipa::path(
    get,
    path = "/v1/tenants/{tenant}/export",
    tag = "admin",
    operation_id = "exportTenant",
    params(("tenant" = String, Path, description = "The tenant.")),
    responses(
        (status = 200, description = "JSON lines, one object per line, each with a `type`.", content((String = "application/x-ndjson"))),
        (status = 400, description = "The tenant is not valid UTF-8 (`invalid_argument`).", body = ErrorEnvelope),
        (status = 404, description = "Not a tenant the caller may see (`job_not_found`).", body = ErrorEnvelope),
        (status = 500, description = "An internal failure (`internal`).", body = ErrorEnvelope),
        (status = 503, description = "The job or auth database, or storage, failed (`storage_failed`).", body = ErrorEnvelope),
    )
)]
async fn export_tenant(
    State(state): State<Arc<AppState>>,
    Extension(principal): Extension<Principal>,
    Path(tenant): Path<String>,
) -> ApiResult<Response> {
    if !principal.sees_tenant(&tenant) {
        return Err(ApiError::new(
            ErrorCode::JobNotFound,
            format!("tenant {tenant} not found"),
        ));
    }
    let body = blocking(move || export_lines(&state, &tenant)).await?;
    Ok(([(header::CONTENT_TYPE, "application/x-ndjson")], body).into_response())
}

fn export_lines(state: &AppState, tenant: &str) -> ApiResult<String> {
    let mut out = String::new();
    let mut line = |value: Value| {
        out.push_str(&value.to_string());
        out.push('\n');
    };
    let db = state.auth.db();
    let policy = db
        .tenant_policies()
        .map_err(auth_error)?
        .into_iter()
        .find(|p| p.tenant == tenant);
    line(
        json!({"type": "tenant", "tenant": tenant, "exported_at": vttiro_auth::now_ms(), "policy": policy}),
    );
    for key in db.list_keys(Some(tenant)).map_err(auth_error)? {
        line(json!({"type": "key", "key": KeyView::from(key)}));
    }
    let mut cursor = None;
    loop {
        let page = state.queue.list(&ListQuery {
            tenant: Some(tenant.to_string()),
            state: None,
            cursor,
            limit: 200,
        })?;
        for job in &page.jobs {
            let events: Vec<Value> = state
                .queue
                .events(&job.id, 0)?
                .into_iter()
                .map(|e| json!({"seq": e.seq, "at": e.at, "kind": e.kind, "data": e.data}))
                .collect();
            let mut results = serde_json::Map::new();
            for (format, _) in FORMATS {
                let key = format!("jobs/{}/result.{format}", job.id);
                let mut reader = match state.store.open_read(&key) {
                    Ok(reader) => reader,
                    Err(vttiro_storage::StorageError::NotFound(_)) => continue,
                    Err(e) => return Err(e.into()),
                };
                {
                    let mut text = String::new();
                    std::io::Read::read_to_string(&mut reader, &mut text)
                        .map_err(|e| ApiError::new(ErrorCode::StorageFailed, e.to_string()))?;
                    results.insert(format.to_string(), Value::String(text));
                }
            }
            let view = serde_json::to_value(JobView::from(job)).unwrap_or(Value::Null);
            line(
                json!({"type": "job", "job": view, "events": events, "results": results,
                        "media": job.media.as_ref().map(|_| "stored; erased by DELETE /v1/jobs/{id} or the retention policy")}),
            );
        }
        match page.next_cursor {
            Some(next) => cursor = Some(next),
            None => break,
        }
    }
    db.each_audit_entry(0, |entry| {
        if entry.record.tenant.as_deref() == Some(tenant) {
            line(json!({"type": "audit", "entry": entry}));
        }
    })
    .map_err(auth_error)?;
    Ok(out)
}
