//! Who may call what: every request but the probes and the API description is
//! authenticated ([`vttiro_auth::Authenticator`]), checked against its route's permission,
//! rate-limited per principal (except `/metrics`), and recorded in the audit log with its
//! outcome. Handlers then find the [`Principal`] in the request's extensions and keep to
//! its tenant.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::extract::{ConnectInfo, MatchedPath, Request, State};
use axum::http::{header, HeaderValue, Method};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use vttiro_auth::{AuditRecord, Permission, RateDecision};
use vttiro_core::ErrorCode;

use crate::api::{blocking, ApiError, AppState};

/// What a route asks of its caller.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum Access {
    /// Probes and the API's own description: anyone.
    Public,
    Needs(Permission),
}

/// The permission each operation needs, with the audit log's name for it.
pub(crate) fn access(method: &Method, route: &str) -> (Access, &'static str) {
    use Permission::*;
    let needs = Access::Needs;
    match (method.as_str(), route) {
        (_, "/healthz" | "/readyz" | "/openapi.json" | "/docs") => (Access::Public, "public"),
        ("GET", "/metrics") => (needs(ReadMetrics), "metrics.read"),
        ("POST", "/v1/jobs") => (needs(SubmitJob), "job.create"),
        ("GET", "/v1/jobs") => (needs(ReadJob), "job.list"),
        ("GET", "/v1/jobs/{id}") => (needs(ReadJob), "job.read"),
        ("GET", "/v1/jobs/{id}/result") => (needs(ReadJob), "job.result"),
        ("GET", "/v1/jobs/{id}/events") => (needs(ReadJob), "job.events"),
        ("POST", "/v1/jobs/{id}/cancel") => (needs(CancelJob), "job.cancel"),
        ("DELETE", "/v1/jobs/{id}") => (needs(DeleteJob), "job.delete"),
        ("POST", "/v1/audio/transcriptions") => (needs(SubmitJob), "transcription.create"),
        ("GET", "/v1/models" | "/v1/models/{id}") => (needs(ListModels), "models.read"),
        ("POST", "/v1/keys") => (needs(ManageKeys), "key.create"),
        ("GET", "/v1/keys") => (needs(ManageKeys), "key.list"),
        ("DELETE", "/v1/keys/{id}") => (needs(ManageKeys), "key.revoke"),
        ("GET", "/v1/audit" | "/v1/audit/verify") => (needs(ReadAudit), "audit.read"),
        ("GET", "/v1/tenants/{tenant}/export") => (needs(ExportTenant), "tenant.export"),
        ("PUT", "/v1/tenants/{tenant}/policy") => (needs(ManageTenants), "tenant.policy"),
        // Unknown routes and methods still need credentials, so probing the API's shape
        // is no easier than using it.
        _ => (needs(ReadJob), "unknown"),
    }
}

fn peer(request: &Request) -> Option<String> {
    request
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|ConnectInfo(address)| address.ip().to_string())
}

/// The id in a route like `/v1/jobs/{id}/…` (what the audit entry is about).
fn target(path: &str) -> Option<String> {
    let mut segments = path.trim_start_matches('/').split('/');
    match (segments.next(), segments.next(), segments.next()) {
        (Some("v1"), Some("jobs" | "keys" | "tenants" | "models"), Some(id)) if !id.is_empty() => {
            Some(id.chars().take(128).collect())
        }
        _ => None,
    }
}

fn rate_headers(response: &mut Response, decision: &RateDecision) {
    let headers = response.headers_mut();
    headers.insert("ratelimit-limit", HeaderValue::from(decision.limit));
    headers.insert("ratelimit-remaining", HeaderValue::from(decision.remaining));
    headers.insert("ratelimit-reset", HeaderValue::from(decision.reset_secs));
    if let Ok(policy) = HeaderValue::from_str(&format!("{};w=60", decision.limit)) {
        headers.insert("ratelimit-policy", policy);
    }
}

async fn audit(state: &Arc<AppState>, record: AuditRecord) {
    let auth = state.auth.clone();
    let action = record.action.clone();
    let written = blocking(move || {
        auth.db()
            .append_audit(&record, vttiro_auth::now_ms())
            .map_err(|e| ApiError::new(ErrorCode::StorageFailed, e.to_string()))
    })
    .await;
    if let Err(e) = written {
        tracing::error!(action, error = %e.message(), "could not write the audit log");
    }
}

pub(crate) async fn guard(
    State(state): State<Arc<AppState>>,
    mut request: Request,
    next: Next,
) -> Response {
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map(|p| p.as_str().to_string())
        .unwrap_or_default();
    let (access, action) = access(request.method(), &route);
    let Access::Needs(permission) = access else {
        return next.run(request).await;
    };
    let source = peer(&request);
    let target = target(request.uri().path());
    let authorization = request
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    let authenticated = {
        let auth = state.auth.clone();
        blocking(move || Ok(auth.authenticate(authorization.as_deref(), vttiro_auth::now_ms())))
            .await
    };
    let principal = match authenticated {
        Ok(Ok(principal)) => principal,
        Ok(Err(e)) => {
            let code = if e.is_credential_failure() {
                ErrorCode::Unauthenticated
            } else {
                ErrorCode::StorageFailed
            };
            audit(
                &state,
                AuditRecord {
                    actor: "unauthenticated".into(),
                    action: "auth.failure".into(),
                    target: Some(format!("{action} {}", request.uri().path()))
                        .map(|t| t.chars().take(200).collect()),
                    source,
                    outcome: code.as_str().into(),
                    detail: Some(e.to_string()),
                    ..Default::default()
                },
            )
            .await;
            let mut response = ApiError::new(code, e.to_string()).into_response();
            response.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Bearer realm=\"vttiro\""),
            );
            return response;
        }
        Err(e) => return e.into_response(),
    };
    let mut record = AuditRecord {
        actor: principal.id.clone(),
        tenant: Some(principal.tenant.clone()),
        action: action.into(),
        target,
        source,
        outcome: "ok".into(),
        detail: Some(format!("role {}", principal.role)),
    };
    if !principal.may(permission) {
        let error = ApiError::new(
            ErrorCode::Forbidden,
            format!("role {} may not do {action}", principal.role),
        );
        record.outcome = ErrorCode::Forbidden.as_str().into();
        audit(&state, record).await;
        return error.into_response();
    }
    // Scrapers poll on a schedule; limiting or auditing them only adds noise.
    if permission == Permission::ReadMetrics {
        request.extensions_mut().insert(principal);
        return next.run(request).await;
    }
    let decision = principal
        .requests_per_minute
        .or(state.config.requests_per_minute)
        .map(|per_minute| {
            state
                .rate_limiter
                .check(&principal.id, per_minute, vttiro_auth::now_ms())
        });
    if let Some(decision) = decision.filter(|d| !d.allowed) {
        let mut error = ApiError::new(
            ErrorCode::RateLimited,
            format!(
                "more than {} requests a minute; try again in {} s",
                decision.limit, decision.retry_after_secs
            ),
        );
        error.retry_after = Some(decision.retry_after_secs);
        let mut response = error.into_response();
        rate_headers(&mut response, &decision);
        record.outcome = ErrorCode::RateLimited.as_str().into();
        audit(&state, record).await;
        return response;
    }
    request.extensions_mut().insert(principal);
    let mut response = next.run(request).await;
    if let Some(decision) = &decision {
        rate_headers(&mut response, decision);
    }
    if let Some(error) = response.extensions().get::<ApiError>() {
        record.outcome = error.code().as_str().into();
    } else if !response.status().is_success() {
        record.outcome = format!("http_{}", response.status().as_u16());
    }
    audit(&state, record).await;
    response
}
