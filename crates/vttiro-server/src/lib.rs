//! vttiro-server owns the HTTP service: the jobs API over a [`vttiro_jobs::JobQueue`] and
//! a [`vttiro_storage::LocalStore`], the JSON error envelope with stable codes from the
//! error-code table, request ids, backpressure, and the worker pool that runs jobs
//! through a [`JobRunner`] the binary provides.
//!
//! It is the only crate that knows axum and tokio. It must not know engines, models or
//! subtitle formats: what a job does is the runner's business, so the same server runs
//! any engine the binary was built with.

mod api;
mod metrics;
mod openai;
mod openapi;
mod webhook;
mod worker;

pub use api::{router, AppState, ModelCatalog, ServerConfig};
pub use metrics::Metrics;
pub use openai::DEFAULT_MODEL_ALIAS;
pub use openapi::openapi;
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
pub fn serve_until_signal(
    listen: &str,
    state: AppState,
    on_listening: impl FnOnce(std::net::SocketAddr),
) -> std::io::Result<()> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async move {
        let listener = tokio::net::TcpListener::bind(listen).await?;
        on_listening(listener.local_addr()?);
        axum::serve(listener, router(std::sync::Arc::new(state)))
            .with_graceful_shutdown(shutdown_signal())
            .await
    })
}

/// Blocks until SIGINT or SIGTERM (for `vttiro worker`, which serves no HTTP).
pub fn wait_for_signal() -> std::io::Result<()> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?
        .block_on(shutdown_signal());
    Ok(())
}

async fn shutdown_signal() {
    let interrupt = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        _ = interrupt => {},
        _ = terminate => {},
    }
    tracing::info!("shutting down: no new requests; running jobs finish first");
}
