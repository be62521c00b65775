//! vttiro-server owns the HTTP service: the jobs API over a [`vttiro_jobs::JobQueue`] and
//! a [`vttiro_storage::LocalStore`], the JSON error envelope with stable codes from the
//! error-code table, request ids, backpressure, the guard every route passes (credentials
//! from [`vttiro_auth`], roles, tenancy, rate limits, the audit trail), administration,
//! retention, HTTPS ([`tls`]), and the worker pool that runs jobs through a [`JobRunner`]
//! the binary provides.
//!
//! It is the only crate that knows axum and tokio. It must not know engines, models or
//! subtitle formats: what a job does is the runner's business, so the same server runs
//! any engine the binary was built with.

mod admin;
mod api;
mod guard;
mod metrics;
mod openai;
mod openapi;
mod retention;
mod trace_context;
mod webhook;
mod worker;

pub mod tls;

pub use api::{router, AppState, ModelCatalog, ServerConfig};
pub use metrics::Metrics;
pub use openai::DEFAULT_MODEL_ALIAS;
pub use openapi::openapi;
pub use retention::{spawn_sweeper, sweep, Retention, SweepReport, Sweeper};
pub use webhook::{spawn_dispatcher, Dispatcher, SecretError, WebhookConfig, WebhookSecret};
pub use worker::{
    spawn_workers, JobRunner, RunContext, RunFailure, RunOutput, RunRequest, WorkerSetup, Workers,
};

/// Result formats a job may ask for, with their content types.
pub const FORMATS: [(&str, &str); 5] = [
    ("vtt", "text/vtt; charset=utf-8"),
    ("srt", "application/x-subrip; charset=utf-8"),
    ("json", "application/json"),
    ("txt", "text/plain; charset=utf-8"),
    ("rttm", "text/plain; charset=utf-8"),
];

/// Serves `state` on `listen` until SIGINT or SIGTERM, then stops accepting requests and
/// lets the ones in flight finish. `on_listening` gets the bound address (port 0 picks one).
/// With `tls`, connections are TLS (the certificate files are re-read when they change).
pub fn serve_until_signal(
    listen: &str,
    state: AppState,
    tls: Option<std::sync::Arc<tls::ReloadingCert>>,
    on_listening: impl FnOnce(std::net::SocketAddr),
) -> std::io::Result<()> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async move {
        let listener = tokio::net::TcpListener::bind(listen).await?;
        let stop = shutdown_signal();
        on_listening(listener.local_addr()?);
        let app = router(std::sync::Arc::new(state));
        match tls {
            Some(cert) => {
                tls::serve_tls(
                    listener,
                    app,
                    cert,
                    std::time::Duration::from_secs(30),
                    stop,
                )
                .await
            }
            None => {
                axum::serve(
                    listener,
                    app.into_make_service_with_connect_info::<std::net::SocketAddr>(),
                )
                .with_graceful_shutdown(stop)
                .await
            }
        }
    })
}

/// Serves only `GET /metrics` (this process's metrics and the queue's gauges) and
/// `GET /healthz` on `listen` until SIGINT or SIGTERM: for `vttiro worker`, whose workers
/// a scraper must see too. `/metrics` needs a credential with the `metrics` or `admin`
/// role unless `auth` is open.
pub fn serve_metrics_until_signal(
    listen: &str,
    metrics: std::sync::Arc<Metrics>,
    queue: std::sync::Arc<dyn vttiro_jobs::JobQueue>,
    auth: std::sync::Arc<vttiro_auth::Authenticator>,
    on_listening: impl FnOnce(std::net::SocketAddr),
) -> std::io::Result<()> {
    use axum::http::{header, HeaderMap, StatusCode};
    use axum::response::IntoResponse;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()?;
    runtime.block_on(async move {
        let listener = tokio::net::TcpListener::bind(listen).await?;
        let stop = shutdown_signal();
        on_listening(listener.local_addr()?);
        let scrape = move |headers: HeaderMap| {
            let (metrics, queue, auth) = (metrics.clone(), queue.clone(), auth.clone());
            async move {
                let authorization = headers
                    .get(header::AUTHORIZATION)
                    .and_then(|v| v.to_str().ok())
                    .map(str::to_string);
                let answer = tokio::task::spawn_blocking(move || {
                    let refusal =
                        match auth.authenticate(authorization.as_deref(), vttiro_auth::now_ms()) {
                            Err(e) => Some((StatusCode::UNAUTHORIZED, e.to_string())),
                            Ok(p) if !p.may(vttiro_auth::Permission::ReadMetrics) => Some((
                                StatusCode::FORBIDDEN,
                                format!("role {} may not read metrics", p.role),
                            )),
                            Ok(_) => None,
                        };
                    match refusal {
                        Some(refusal) => Err(refusal),
                        None => Ok(metrics.render(queue.stats().ok().as_ref())),
                    }
                })
                .await;
                match answer {
                    Ok(Ok(text)) => (
                        [(
                            header::CONTENT_TYPE,
                            "text/plain; version=0.0.4; charset=utf-8",
                        )],
                        text,
                    )
                        .into_response(),
                    Ok(Err((status, message))) => (status, message).into_response(),
                    Err(e) => (StatusCode::INTERNAL_SERVER_ERROR, e.to_string()).into_response(),
                }
            }
        };
        let app = axum::Router::new()
            .route("/metrics", axum::routing::get(scrape))
            .route("/healthz", axum::routing::get(|| async { "ok" }));
        axum::serve(listener, app)
            .with_graceful_shutdown(stop)
            .await
    })
}

/// Blocks until SIGINT or SIGTERM (for `vttiro worker`, which serves no HTTP).
pub fn wait_for_signal() -> std::io::Result<()> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?
        .block_on(async { shutdown_signal().await });
    Ok(())
}

/// Resolves at SIGINT or SIGTERM. The handlers are installed when this is called, not when
/// the future is first polled, so a signal arriving right after start is not lost to the
/// default action (which kills the process without a graceful stop). It must be called
/// inside a tokio runtime.
fn shutdown_signal() -> impl std::future::Future<Output = ()> {
    #[cfg(unix)]
    let (interrupt, terminate) = {
        use tokio::signal::unix::{signal, SignalKind};
        (
            signal(SignalKind::interrupt()).ok(),
            signal(SignalKind::terminate()).ok(),
        )
    };
    async move {
        #[cfg(unix)]
        {
            let wait = |stream: Option<tokio::signal::unix::Signal>| async move {
                match stream {
                    Some(mut stream) => {
                        stream.recv().await;
                    }
                    None => std::future::pending::<()>().await,
                }
            };
            tokio::select! {
                _ = wait(interrupt) => {},
                _ = wait(terminate) => {},
            }
        }
        #[cfg(not(unix))]
        {
            let _ = tokio::signal::ctrl_c().await;
        }
        tracing::info!("shutting down: no new requests; running jobs finish first");
    }
}
