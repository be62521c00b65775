//! `vttiro serve` (API and workers in one process) and `vttiro worker` (workers alone,
//! for scale-out), on a data directory holding the SQLite queue and the object store.
//! Jobs run through the same code as `vttiro transcribe`, so a job's subtitles are the
//! CLI's subtitles.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use clap::Args;
use vttiro_core::ErrorCode;
use vttiro_jobs::{JobQueue, PostgresQueue, QueuePolicy, SqliteQueue, SystemClock};
use vttiro_server::{Dispatcher, Metrics, ModelCatalog, WebhookConfig, WebhookSecret, WorkerSetup};
use vttiro_storage::{FetchPolicy, KeyRing, Store};

use crate::config::{RawConfig, Settings};
use crate::job_runner::PipelineRunner;

#[derive(Args, Debug)]
pub struct ServeArgs {
    /// Address to listen on (port 0 picks a free one and prints it).
    #[arg(long, default_value = "127.0.0.1:8080", env = "VTTIRO_LISTEN")]
    pub listen: String,
    #[command(flatten)]
    pub workers: WorkerArgs,
    /// Largest upload accepted, in MiB (413 beyond it).
    #[arg(long, default_value_t = 2048, env = "VTTIRO_MAX_UPLOAD_MB")]
    pub max_upload_mb: u64,
    /// Queued jobs beyond which submissions get 429 + Retry-After.
    #[arg(long, default_value_t = 10_000, env = "VTTIRO_MAX_QUEUED")]
    pub max_queued: u64,
    /// Largest upload POST /v1/audio/transcriptions accepts, in MiB (OpenAI's limit is 25).
    #[arg(long, default_value_t = 25, env = "VTTIRO_MAX_SYNC_UPLOAD_MB")]
    pub max_sync_upload_mb: u64,
    /// How long POST /v1/audio/transcriptions waits for its result before answering 504.
    #[arg(long, default_value_t = 600, env = "VTTIRO_SYNC_TIMEOUT_SECS")]
    pub sync_timeout_secs: u64,
    /// Serve the API only; jobs are run by `vttiro worker` processes on the same data.
    #[arg(long, env = "VTTIRO_NO_WORKERS")]
    pub no_workers: bool,
    /// Accept OIDC/JWT bearer tokens signed by a key in this JWKS (a file, or an https URL).
    #[arg(long, env = "VTTIRO_JWKS")]
    pub jwks: Option<String>,
    /// The `iss` tokens must carry.
    #[arg(long, requires = "jwks", env = "VTTIRO_JWT_ISSUER")]
    pub jwt_issuer: Option<String>,
    /// An `aud` tokens must carry.
    #[arg(long, requires = "jwks", env = "VTTIRO_JWT_AUDIENCE")]
    pub jwt_audience: Option<String>,
    /// The token claim naming the caller's tenant.
    #[arg(
        long,
        default_value = "tenant",
        requires = "jwks",
        env = "VTTIRO_JWT_TENANT_CLAIM"
    )]
    pub jwt_tenant_claim: String,
    /// The token claim holding the caller's role (a string or a list).
    #[arg(
        long,
        default_value = "role",
        requires = "jwks",
        env = "VTTIRO_JWT_ROLE_CLAIM"
    )]
    pub jwt_role_claim: String,
    /// Requests a minute per key or token (a key's own limit wins); unlimited when absent.
    #[arg(long, env = "VTTIRO_REQUESTS_PER_MINUTE")]
    pub requests_per_minute: Option<u32>,
    /// Audio minutes per key or token per UTC day (a key's own quota wins); unlimited when absent.
    #[arg(long, env = "VTTIRO_AUDIO_MINUTES_PER_DAY")]
    pub audio_minutes_per_day: Option<u32>,
    /// Serve HTTPS with this PEM certificate chain (re-read when the file changes).
    #[arg(long, requires = "tls_key", env = "VTTIRO_TLS_CERT")]
    pub tls_cert: Option<PathBuf>,
    /// The PEM private key for --tls-cert.
    #[arg(long, requires = "tls_cert", env = "VTTIRO_TLS_KEY")]
    pub tls_key: Option<PathBuf>,
    /// Erase a finished job's media this many hours after it ends (a tenant policy wins).
    #[arg(long, env = "VTTIRO_MEDIA_RETENTION_HOURS")]
    pub media_retention_hours: Option<u32>,
    /// Erase a finished job and its results this many days after it ends (a tenant policy wins).
    #[arg(long, env = "VTTIRO_RESULT_RETENTION_DAYS")]
    pub result_retention_days: Option<u32>,
}

#[derive(Args, Debug)]
pub struct WorkerArgs {
    /// Where the job database and stored media/results live (default: the user data dir).
    #[arg(long, env = "VTTIRO_DATA_DIR")]
    pub data_dir: Option<PathBuf>,
    /// Jobs run at once by this process.
    #[arg(long, default_value_t = 1, env = "VTTIRO_WORKERS")]
    pub workers: usize,
    /// Let media URLs and webhooks reach loopback and private-network addresses (local
    /// use only).
    #[arg(long, env = "VTTIRO_ALLOW_INTERNAL_URLS")]
    pub allow_internal_urls: bool,
    /// A worker that stops heartbeating for this long loses its job to another worker.
    #[arg(long, default_value_t = 60, env = "VTTIRO_LEASE_SECS")]
    pub lease_secs: u64,
    /// At SIGTERM, running jobs get this long to finish; then they go back to the queue.
    #[arg(long, default_value_t = 30, env = "VTTIRO_SHUTDOWN_GRACE_SECS")]
    pub shutdown_grace_secs: u64,
    /// Webhook signing key, `whsec_<base64>` (default: generated once into the data dir).
    #[arg(long, env = "VTTIRO_WEBHOOK_SECRET", hide_env_values = true)]
    pub webhook_secret: Option<String>,
    /// Encrypt media and results at rest with the master keys in this file
    /// (`id:base64key[,id:base64key…]`, the first wraps new data; mode 0600).
    #[arg(long, env = "VTTIRO_MASTER_KEY_FILE")]
    pub master_key_file: Option<PathBuf>,
    /// The master keys themselves, in the same form (prefer the file: flags show in `ps`).
    #[arg(
        long,
        env = "VTTIRO_MASTER_KEY",
        hide_env_values = true,
        conflicts_with = "master_key_file"
    )]
    pub master_key: Option<String>,
    /// Keep the job queue, API keys, usage and the audit log in PostgreSQL
    /// (`postgres://user:password@host:5432/db`) instead of the data directory's SQLite
    /// files, so API and worker processes on several
    /// machines share it (pair it with --store so they share media and results too).
    #[arg(long, env = "VTTIRO_DATABASE_URL", hide_env_values = true)]
    pub database_url: Option<String>,
    /// Verify the database's TLS certificate against this PEM CA bundle (managed services
    /// publish theirs); implies TLS. Add `?sslmode=require` to the URL to use TLS with the
    /// system's roots instead.
    #[arg(long, env = "VTTIRO_DATABASE_CA_FILE", requires = "database_url")]
    pub database_ca_file: Option<PathBuf>,
    /// Where media, results and checkpoints live: a directory, or a bucket —
    /// `s3://bucket/prefix` (S3-compatible servers via AWS_ENDPOINT), `gs://bucket/prefix`,
    /// `az://container/prefix` — with credentials from the provider's usual environment
    /// (AWS_*, GOOGLE_*, AZURE_*, or workload identity). Default: the data directory's store.
    #[arg(long, env = "VTTIRO_STORE")]
    pub store: Option<String>,
    /// No authentication: every caller is an administrator. Only for a service nobody
    /// else can reach (a laptop, a notebook); the server says so loudly at start.
    #[arg(long, env = "VTTIRO_OPEN")]
    pub open: bool,
    /// `vttiro worker`: serve this process's Prometheus metrics at http://ADDR/metrics
    /// (a `metrics` or `admin` key is needed unless --open).
    #[arg(long, env = "VTTIRO_METRICS_LISTEN")]
    pub metrics_listen: Option<String>,
}

fn data_dir(args: &WorkerArgs) -> PathBuf {
    resolve_data_dir(args.data_dir.as_deref())
}

/// `--data-dir`, else `$XDG_DATA_HOME/vttiro` (or `~/.local/share/vttiro`).
pub(crate) fn resolve_data_dir(explicit: Option<&Path>) -> PathBuf {
    explicit.map(Path::to_path_buf).unwrap_or_else(|| {
        std::env::var_os("XDG_DATA_HOME")
            .map(PathBuf::from)
            .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".local/share")))
            .unwrap_or_else(|| PathBuf::from("."))
            .join("vttiro")
    })
}

struct Backend {
    queue: Arc<dyn JobQueue>,
    store: Store,
    dir: PathBuf,
    /// One set per process, shared by the API, the workers and the webhook dispatcher.
    metrics: Arc<Metrics>,
    auth: Arc<vttiro_auth::AuthDb>,
}

/// The master keys from the flag, the environment or the key file, when encryption at rest
/// is configured.
pub(crate) fn master_keys(args: &WorkerArgs) -> Result<Option<Arc<KeyRing>>, String> {
    let keys = match (&args.master_key, &args.master_key_file) {
        (Some(spec), _) => KeyRing::parse(spec).map_err(|e| format!("VTTIRO_MASTER_KEY: {e}"))?,
        (None, Some(path)) => KeyRing::load_file(path).map_err(|e| e.to_string())?,
        (None, None) => return Ok(None),
    };
    Ok(Some(Arc::new(keys)))
}

/// The object store (`--store`, else the data directory's), encrypted when master keys
/// are configured. Unusable settings fail as invalid arguments, not storage failures.
fn open_store(args: &WorkerArgs, dir: &Path) -> Result<Store, (ErrorCode, String)> {
    let keys = master_keys(args).map_err(|e| (ErrorCode::InvalidArgument, e))?;
    match &args.store {
        Some(location) => Store::open_location(location, keys),
        None => Store::open_directory(&dir.join("store"), keys),
    }
    .map_err(|e| (e.code(), e.to_string()))
}

/// The key-digest secret in `<dir>/auth-secret`, generated (mode 0600) on first use.
fn data_dir_auth_secret(dir: &Path) -> Result<Vec<u8>, String> {
    let path = dir.join("auth-secret");
    let mut failure = None;
    let text = shared_secret_file(&path, || {
        vttiro_auth::new_server_secret().unwrap_or_else(|e| {
            failure = Some(e.to_string());
            String::new()
        })
    })?;
    if let Some(reason) = failure {
        return Err(reason);
    }
    vttiro_auth::parse_server_secret(&text).map_err(|e| format!("{}: {e}", path.display()))
}

/// Where the job queue and the auth tables live when not in the data directory.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Database<'a> {
    pub url: Option<&'a str>,
    pub ca_file: Option<&'a Path>,
}

/// The auth database beside the job queue — `auth.db` in the data directory, or the
/// queue's PostgreSQL database — keyed by `VTTIRO_AUTH_SECRET` (base64 of at least 32
/// bytes), else the data directory's `auth-secret` file.
pub(crate) fn open_auth(dir: &Path, database: Database<'_>) -> Result<vttiro_auth::AuthDb, String> {
    let secret = match std::env::var("VTTIRO_AUTH_SECRET") {
        // From a secret manager: processes on machines that share no volume still agree.
        Ok(text) => vttiro_auth::parse_server_secret(&text)
            .map_err(|e| format!("VTTIRO_AUTH_SECRET: {e}"))?,
        Err(_) => data_dir_auth_secret(dir)?,
    };
    match database.url {
        Some(url) => vttiro_auth::AuthDb::connect(url, database.ca_file, &secret)
            .map_err(|e| format!("--database-url: {e}")),
        None => vttiro_auth::AuthDb::open(&dir.join("auth.db"), &secret).map_err(|e| e.to_string()),
    }
}

/// For the start-up line: where objects live when that is not the data directory.
fn objects_elsewhere(store: &Store) -> String {
    if store.is_remote() {
        format!(", objects in {}", store.location())
    } else {
        String::new()
    }
}

/// `max_queued`: the API's admission limit (workers submit nothing, so they pass `None`).
/// What the process could not open, with the exit code it earns: bad settings are
/// invalid arguments, everything else a storage failure.
fn open_backend(
    args: &WorkerArgs,
    max_queued: Option<u64>,
) -> Result<Backend, (ErrorCode, String)> {
    let storage = |message: String| (ErrorCode::StorageFailed, message);
    let dir = data_dir(args);
    std::fs::create_dir_all(&dir).map_err(|e| storage(format!("{}: {e}", dir.display())))?;
    if args.lease_secs < 3 {
        return Err((
            ErrorCode::InvalidArgument,
            format!(
                "--lease-secs {}: use at least 3 (heartbeats come every third of it)",
                args.lease_secs
            ),
        ));
    }
    // Settings are checked (the store's location and keys) before anything is opened.
    let store = open_store(args, &dir)?;
    let policy = QueuePolicy {
        lease_ms: args.lease_secs as i64 * 1000,
        max_queued,
        ..QueuePolicy::default()
    };
    let queue: Arc<dyn JobQueue> = match &args.database_url {
        Some(url) => Arc::new(
            PostgresQueue::connect_with(
                url,
                args.database_ca_file.as_deref(),
                Arc::new(SystemClock),
                policy,
            )
            .map_err(|e| (e.code(), format!("--database-url: {e}")))?,
        ),
        None => Arc::new(
            SqliteQueue::open(&dir.join("jobs.db"), Arc::new(SystemClock), policy)
                .map_err(|e| (e.code(), e.to_string()))?,
        ),
    };
    let auth = Arc::new(
        open_auth(
            &dir,
            Database {
                url: args.database_url.as_deref(),
                ca_file: args.database_ca_file.as_deref(),
            },
        )
        .map_err(storage)?,
    );
    // A process killed mid-write leaves hidden part files; an hour is longer than any
    // live writer keeps one (uploads stream at wire speed, results are small).
    match store.sweep_partials(Duration::from_secs(3600)) {
        Ok(0) => {}
        Ok(n) => tracing::info!(removed = n, "swept partial files left by a crash"),
        Err(e) => tracing::warn!(error = %e, "cannot sweep partial files"),
    }
    Ok(Backend {
        queue,
        store,
        dir,
        metrics: Arc::new(Metrics::default()),
        auth,
    })
}

fn fetch_policy(args: &WorkerArgs) -> FetchPolicy {
    FetchPolicy {
        allow_internal: args.allow_internal_urls,
        ..FetchPolicy::default()
    }
}

/// The webhook key from the flag or environment, else the one kept in the data directory
/// (created on first start, readable by the owner only), so every process on the same
/// data signs alike.
fn webhook_secret(args: &WorkerArgs, dir: &Path) -> Result<WebhookSecret, String> {
    if let Some(text) = &args.webhook_secret {
        return WebhookSecret::parse(text).map_err(|e| format!("--webhook-secret: {e}"));
    }
    let path = dir.join("webhook-secret");
    let created = !path.exists();
    let text = shared_secret_file(&path, || WebhookSecret::generate().expose().to_string())?;
    if created {
        eprintln!(
            "vttiro: created the webhook signing key in {} (receivers verify with it)",
            path.display()
        );
    }
    WebhookSecret::parse(&text).map_err(|e| format!("{}: {e}", path.display()))
}

/// A secret kept in a file of the data directory: created once (owner-only) with `make`,
/// then read by every process sharing the directory.
fn shared_secret_file(path: &Path, make: impl FnOnce() -> String) -> Result<String, String> {
    let created = {
        let mut options = std::fs::OpenOptions::new();
        options.write(true).create_new(true);
        #[cfg(unix)]
        std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
        options.open(path)
    };
    match created {
        Ok(mut file) => {
            let secret = make();
            std::io::Write::write_all(&mut file, secret.as_bytes())
                .and_then(|()| file.sync_all())
                .map_err(|e| format!("{}: {e}", path.display()))?;
            Ok(secret)
        }
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
            // Another process may have just created it and not yet written it.
            for _ in 0..50 {
                let text = std::fs::read_to_string(path)
                    .map_err(|e| format!("{}: {e}", path.display()))?;
                if !text.trim().is_empty() {
                    return Ok(text.trim().to_string());
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            Err(format!("{}: empty", path.display()))
        }
        Err(e) => Err(format!("{}: {e}", path.display())),
    }
}

fn start_dispatcher(args: &WorkerArgs, backend: &Backend) -> Result<Dispatcher, String> {
    let secret = webhook_secret(args, &backend.dir)?;
    Ok(vttiro_server::spawn_dispatcher(
        backend.queue.clone(),
        WebhookConfig::new(secret, fetch_policy(args)),
        backend.metrics.clone(),
    ))
}

fn start_workers(args: &WorkerArgs, backend: &Backend, base: &RawConfig) -> vttiro_server::Workers {
    let name = format!(
        "{}-{}",
        std::env::var("HOSTNAME").unwrap_or_else(|_| "vttiro".into()),
        std::process::id()
    );
    vttiro_server::spawn_workers(
        args.workers,
        &name,
        WorkerSetup {
            queue: backend.queue.clone(),
            store: backend.store.clone(),
            runner: Arc::new(PipelineRunner::new(base.clone())),
            fetch: fetch_policy(args),
            // Three heartbeats per lease: one lost beat never costs a job.
            heartbeat: Duration::from_millis(args.lease_secs * 1000 / 3),
            metrics: backend.metrics.clone(),
            usage: Some(backend.auth.clone()),
        },
    )
}

pub fn serve(args: &ServeArgs, base: &RawConfig) -> i32 {
    let backend = match open_backend(&args.workers, Some(args.max_queued)) {
        Ok(b) => b,
        Err((code, message)) => {
            eprintln!("error: {message}");
            return code.exit_code();
        }
    };
    let dispatcher = match start_dispatcher(&args.workers, &backend) {
        Ok(d) => d,
        Err(message) => {
            eprintln!("error: {message}");
            return ErrorCode::InvalidArgument.exit_code();
        }
    };
    let authenticator = match authenticator(args, &backend) {
        Ok(a) => a,
        Err(message) => {
            eprintln!("error: {message}");
            return ErrorCode::InvalidArgument.exit_code();
        }
    };
    let tls = match (&args.tls_cert, &args.tls_key) {
        (Some(cert), Some(key)) => {
            match vttiro_server::tls::ReloadingCert::new(vttiro_server::tls::TlsFiles {
                cert: cert.clone(),
                key: key.clone(),
            }) {
                Ok(cert) => Some(cert),
                Err(e) => {
                    eprintln!("error: {e}");
                    return ErrorCode::InvalidArgument.exit_code();
                }
            }
        }
        _ => None,
    };
    if let Some(cert) = &tls {
        // serve_tls re-reads the files every 30 s; the expiry gauge follows the same pace.
        let (cert, metrics) = (cert.clone(), backend.metrics.clone());
        metrics.set_tls_certificate_expiry(cert.not_after());
        std::thread::spawn(move || loop {
            std::thread::sleep(Duration::from_secs(30));
            metrics.set_tls_certificate_expiry(cert.not_after());
        });
    }
    // Tenant policies can set retention with no server default, so the sweeper always runs.
    let retention = vttiro_server::spawn_sweeper(
        backend.queue.clone(),
        backend.store.clone(),
        backend.auth.clone(),
        vttiro_server::Retention {
            media_hours: args.media_retention_hours,
            result_days: args.result_retention_days,
        },
        Duration::from_secs(300),
    );
    let workers = (!args.no_workers).then(|| start_workers(&args.workers, &backend, base));
    let scheme = if tls.is_some() { "https" } else { "http" };
    let state = vttiro_server::AppState {
        queue: backend.queue.clone(),
        store: backend.store.clone(),
        config: vttiro_server::ServerConfig {
            max_upload_bytes: args.max_upload_mb.saturating_mul(1024 * 1024),
            max_queued: args.max_queued,
            max_sync_upload_bytes: args.max_sync_upload_mb.saturating_mul(1024 * 1024),
            sync_deadline: Duration::from_secs(args.sync_timeout_secs),
            requests_per_minute: args.requests_per_minute,
            audio_minutes_per_day: args.audio_minutes_per_day,
        },
        auth: Arc::new(authenticator),
        rate_limiter: vttiro_auth::RateLimiter::new(),
        metrics: backend.metrics.clone(),
        catalog: Arc::new(Catalog {
            base: base.clone(),
            runs_jobs: !args.no_workers,
        }),
    };
    let served = vttiro_server::serve_until_signal(&args.listen, state, tls, |addr| {
        eprintln!(
            "vttiro serve: listening on {scheme}://{addr} (data in {}{}; {})",
            backend.dir.display(),
            objects_elsewhere(&backend.store),
            if args.no_workers {
                "API only".to_string()
            } else {
                format!("{} worker(s)", args.workers.workers.max(1))
            }
        );
    });
    // The API has stopped; running jobs get their grace period, then go back to the queue.
    if let Some(workers) = workers {
        workers.shutdown(Duration::from_secs(args.workers.shutdown_grace_secs));
    }
    dispatcher.shutdown();
    retention.stop();
    match served {
        Ok(()) => 0,
        Err(e) => {
            eprintln!("error: {}: {e}", args.listen);
            ErrorCode::InvalidArgument.exit_code()
        }
    }
}

/// Keys (and tokens, with --jwks) unless --open says the service is for its owner alone.
fn authenticator(
    args: &ServeArgs,
    backend: &Backend,
) -> Result<vttiro_auth::Authenticator, String> {
    if args.workers.open {
        if args.jwks.is_some() {
            return Err(
                "--open and --jwks contradict each other: open mode checks no tokens".into(),
            );
        }
        let warning = "OPEN MODE: no authentication; anyone who can reach this address is an \
                       administrator. Use it only on a machine nobody else can reach.";
        eprintln!("vttiro serve: WARNING: {warning}");
        tracing::warn!("{warning}");
        return Ok(vttiro_auth::Authenticator::open(backend.auth.clone()));
    }
    let jwt = match &args.jwks {
        Some(source) => {
            let mut config = vttiro_auth::JwtConfig::new(vttiro_auth::JwksSource::parse(source));
            config.issuer = args.jwt_issuer.clone();
            config.audience = args.jwt_audience.clone();
            config.tenant_claim = args.jwt_tenant_claim.clone();
            config.role_claim = args.jwt_role_claim.clone();
            Some(vttiro_auth::JwtVerifier::new(config).map_err(|e| format!("--jwks: {e}"))?)
        }
        None => None,
    };
    let keys = backend.auth.list_keys(None).map_err(|e| e.to_string())?;
    if jwt.is_none() && keys.iter().all(|k| k.revoked_at.is_some()) {
        eprintln!(
            "vttiro serve: no API keys yet; every request will get 401. Create one with \
             `vttiro keys create --data-dir {} --tenant <name> --role admin`, or start with \
             --open for local use.",
            backend.dir.display()
        );
    }
    Ok(vttiro_auth::Authenticator::new(backend.auth.clone(), jwt))
}

/// `vttiro worker`: claims and runs jobs from the data directory until SIGINT/SIGTERM,
/// then finishes the running ones.
pub fn worker(args: &WorkerArgs, base: &RawConfig) -> i32 {
    let backend = match open_backend(args, None) {
        Ok(b) => b,
        Err((code, message)) => {
            eprintln!("error: {message}");
            return code.exit_code();
        }
    };
    let dispatcher = match start_dispatcher(args, &backend) {
        Ok(d) => d,
        Err(message) => {
            eprintln!("error: {message}");
            return ErrorCode::InvalidArgument.exit_code();
        }
    };
    let workers = start_workers(args, &backend, base);
    let announce = |metrics: Option<std::net::SocketAddr>| {
        eprintln!(
            "vttiro worker: {} worker(s) on {}{}{}",
            args.workers.max(1),
            backend.dir.display(),
            objects_elsewhere(&backend.store),
            metrics
                .map(|addr| format!("; metrics at http://{addr}/metrics"))
                .unwrap_or_default()
        )
    };
    let waited = match &args.metrics_listen {
        Some(listen) => {
            let auth = if args.open {
                vttiro_auth::Authenticator::open(backend.auth.clone())
            } else {
                vttiro_auth::Authenticator::new(backend.auth.clone(), None)
            };
            let state = vttiro_server::AppState {
                queue: backend.queue.clone(),
                store: backend.store.clone(),
                config: vttiro_server::ServerConfig::default(),
                catalog: Arc::new(Catalog {
                    base: base.clone(),
                    runs_jobs: true,
                }),
                metrics: backend.metrics.clone(),
                auth: Arc::new(auth),
                rate_limiter: vttiro_auth::RateLimiter::new(),
            };
            vttiro_server::serve_metrics_until_signal(listen, state, |addr| announce(Some(addr)))
        }
        None => {
            announce(None);
            vttiro_server::wait_for_signal()
        }
    };
    workers.shutdown(Duration::from_secs(args.shutdown_grace_secs));
    dispatcher.shutdown();
    match waited {
        Ok(()) => 0,
        Err(e) => {
            eprintln!("error: {e}");
            ErrorCode::Internal.exit_code()
        }
    }
}

/// The local models installed in the model store, for `GET /v1/models`; readiness means
/// the default settings can run a job without downloading anything.
struct Catalog {
    base: RawConfig,
    runs_jobs: bool,
}

impl ModelCatalog for Catalog {
    fn models(&self) -> Vec<String> {
        vttiro_models::ModelStore::open_default()
            .and_then(|store| store.list())
            .map(|entries| {
                entries
                    .into_iter()
                    .filter(|e| e.installed)
                    .map(|e| e.name)
                    .collect()
            })
            .unwrap_or_default()
    }

    fn unready(&self) -> Option<String> {
        // An API-only process needs no model; its workers report their own readiness.
        if !self.runs_jobs {
            return None;
        }
        let settings = match Settings::validate(&self.base) {
            Ok(settings) => settings,
            Err(e) => return Some(format!("the configuration is invalid: {e:#}")),
        };
        let local_first = settings.engines.first().is_none_or(|e| e.is_local());
        if !local_first {
            return None;
        }
        match crate::models_cmd::ensure_model(&settings.model, false) {
            Ok(_) => None,
            Err((_, message)) => Some(message),
        }
    }
}
