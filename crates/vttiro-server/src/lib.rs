//! vttiro-server owns the HTTP service: the jobs API over a [`vttiro_jobs::JobQueue`] and
//! a [`vttiro_storage::Store`], the JSON error envelope with stable codes from the
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
    serve_app(
        listen,
        router(std::sync::Arc::new(state)),
        tls,
        on_listening,
    )
}

/// [`serve_until_signal`] with only `/metrics` and `/healthz` ([`api::metrics_router`]),
/// for `vttiro worker`.
pub fn serve_metrics_until_signal(
    listen: &str,
    state: AppState,
    on_listening: impl FnOnce(std::net::SocketAddr),
) -> std::io::Result<()> {
    serve_app(
        listen,
        api::metrics_router(std::sync::Arc::new(state)),
        None,
        on_listening,
    )
}

fn serve_app(
    listen: &str,
    app: axum::Router,
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
