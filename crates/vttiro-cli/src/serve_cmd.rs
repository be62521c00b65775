//! `vttiro serve` (API and workers in one process) and `vttiro worker` (workers alone,
//! for scale-out), on a data directory holding the SQLite queue and the object store.
//! Jobs run through the same code as `vttiro transcribe`, so a job's subtitles are the
//! CLI's subtitles.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use clap::Args;
use vttiro_core::ErrorCode;
use vttiro_jobs::{JobQueue, QueuePolicy, SqliteQueue, SystemClock};
use vttiro_storage::{FetchPolicy, LocalStore};

use crate::config::RawConfig;
use crate::job_runner::PipelineRunner;

#[derive(Args, Debug)]
pub struct ServeArgs {
    /// Address to listen on (port 0 picks a free one and prints it).
    #[arg(long, default_value = "127.0.0.1:8080")]
    pub listen: String,
    #[command(flatten)]
    pub workers: WorkerArgs,
    /// Largest upload accepted, in MiB (413 beyond it).
    #[arg(long, default_value_t = 2048)]
    pub max_upload_mb: u64,
    /// Queued jobs beyond which submissions get 429 + Retry-After.
    #[arg(long, default_value_t = 10_000)]
    pub max_queued: u64,
}

#[derive(Args, Debug)]
pub struct WorkerArgs {
    /// Where the job database and stored media/results live (default: the user data dir).
    #[arg(long)]
    pub data_dir: Option<PathBuf>,
    /// Jobs run at once by this process.
    #[arg(long, default_value_t = 1)]
    pub workers: usize,
    /// Let media URLs reach loopback and private-network addresses (local use only).
    #[arg(long)]
    pub allow_internal_urls: bool,
}

fn data_dir(args: &WorkerArgs) -> PathBuf {
    args.data_dir.clone().unwrap_or_else(|| {
        std::env::var_os("XDG_DATA_HOME")
            .map(PathBuf::from)
            .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".local/share")))
            .unwrap_or_else(|| PathBuf::from("."))
            .join("vttiro")
    })
}

struct Backend {
    queue: Arc<dyn JobQueue>,
    store: LocalStore,
    dir: PathBuf,
}

fn open_backend(args: &WorkerArgs) -> Result<Backend, String> {
    let dir = data_dir(args);
    std::fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    let queue = SqliteQueue::open(
        &dir.join("jobs.db"),
        Arc::new(SystemClock),
        QueuePolicy::default(),
    )
    .map_err(|e| e.to_string())?;
    let store = LocalStore::open(&dir.join("store")).map_err(|e| e.to_string())?;
    Ok(Backend {
        queue: Arc::new(queue),
        store,
        dir,
    })
}

fn start_workers(args: &WorkerArgs, backend: &Backend, base: &RawConfig) -> vttiro_server::Workers {
    let name = format!(
        "{}-{}",
        std::env::var("HOSTNAME").unwrap_or_else(|_| "vttiro".into()),
        std::process::id()
    );
    let fetch = FetchPolicy {
        allow_internal: args.allow_internal_urls,
        ..FetchPolicy::default()
    };
    vttiro_server::spawn_workers(
        args.workers,
        &name,
        backend.queue.clone(),
        backend.store.clone(),
        Arc::new(PipelineRunner::new(
            base.clone(),
            backend.dir.join("scratch"),
        )),
        fetch,
        Duration::from_secs(10),
    )
}

pub fn serve(args: &ServeArgs, base: &RawConfig) -> i32 {
    let backend = match open_backend(&args.workers) {
        Ok(b) => b,
        Err(message) => {
            eprintln!("error: {message}");
            return ErrorCode::StorageFailed.exit_code();
        }
    };
    let workers = start_workers(&args.workers, &backend, base);
    let state = vttiro_server::AppState {
        queue: backend.queue.clone(),
        store: backend.store.clone(),
        config: vttiro_server::ServerConfig {
            max_upload_bytes: args.max_upload_mb.saturating_mul(1024 * 1024),
            max_queued: args.max_queued,
        },
    };
    let served = vttiro_server::serve_until_signal(&args.listen, state, |addr| {
        eprintln!(
            "vttiro serve: listening on http://{addr} (data in {})",
            backend.dir.display()
        );
    });
    // The API has stopped; running jobs finish before the process exits.
    workers.shutdown();
    match served {
        Ok(()) => 0,
        Err(e) => {
            eprintln!("error: {}: {e}", args.listen);
            ErrorCode::InvalidArgument.exit_code()
        }
    }
}

/// `vttiro worker`: claims and runs jobs from the data directory until SIGINT/SIGTERM,
/// then finishes the running ones.
pub fn worker(args: &WorkerArgs, base: &RawConfig) -> i32 {
    let backend = match open_backend(args) {
        Ok(b) => b,
        Err(message) => {
            eprintln!("error: {message}");
            return ErrorCode::StorageFailed.exit_code();
        }
    };
    let workers = start_workers(args, &backend, base);
    eprintln!(
        "vttiro worker: {} worker(s) on {}",
        args.workers.max(1),
        backend.dir.display()
    );
    let waited = vttiro_server::wait_for_signal();
    workers.shutdown();
    match waited {
        Ok(()) => 0,
        Err(e) => {
            eprintln!("error: {e}");
            ErrorCode::Internal.exit_code()
        }
    }
}
