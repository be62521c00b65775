//! vttiro-server owns the HTTP service: the jobs API over a [`vttiro_jobs::JobQueue`] and
//! a [`vttiro_storage::LocalStore`], the JSON error envelope with stable codes from the
//! error-code table, request ids, backpressure, and the worker pool that runs jobs
//! through a [`JobRunner`] the binary provides.
//!
//! It is the only crate that knows axum and tokio. It must not know engines, models or
//! subtitle formats: what a job does is the runner's business, so the same server runs
//! any engine the binary was built with.

mod api;
mod worker;

pub use api::{router, AppState, ServerConfig};
pub use worker::{spawn_workers, JobRunner, RunFailure, RunOutput, RunRequest, Workers};

/// Result formats a job may ask for, with their content types.
pub const FORMATS: [(&str, &str); 5] = [
    ("vtt", "text/vtt; charset=utf-8"),
    ("srt", "application/x-subrip; charset=utf-8"),
    ("json", "application/json"),
    ("txt", "text/plain; charset=utf-8"),
    ("rttm", "text/plain; charset=utf-8"),
];
