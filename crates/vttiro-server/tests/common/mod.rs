//! The service in-process on 127.0.0.1 for the HTTP tests: a real SQLite queue and store
//! in a temp dir, the real worker pool with a test runner, optionally the webhook
//! dispatcher, and small HTTP helpers that never treat a status as an error.
// Each test binary uses its own subset of these.
#![allow(dead_code)]

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use serde_json::Value;
use vttiro_jobs::{JobQueue, QueuePolicy, SqliteQueue, SystemClock};
use vttiro_server::*;
use vttiro_storage::{FetchPolicy, Store};

/// The models the test runners "have".
pub struct EchoCatalog;

impl ModelCatalog for EchoCatalog {
    fn models(&self) -> Vec<String> {
        vec!["echo-small".into()]
    }

    fn unready(&self) -> Option<String> {
        None
    }
}

pub struct Service {
    pub addr: SocketAddr,
    pub store_dir: PathBuf,
    /// Holds `jobs.db` and `auth.db` beside `store/`.
    pub data_dir: PathBuf,
    pub queue: Arc<dyn JobQueue>,
    /// Keys, audit log and quotas behind the server's authentication.
    pub auth: Arc<vttiro_auth::AuthDb>,
    _dir: tempfile::TempDir,
    runtime: Option<tokio::runtime::Runtime>,
    workers: Option<Workers>,
    webhooks: Option<Dispatcher>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
}

impl Service {
    /// `workers` threads run `runner` (none when 0); short leases and backoff keep retries
    /// quick.
    /// In open mode (no authentication), as a local single-user service runs.
    pub fn start(
        config: ServerConfig,
        workers: usize,
        runner: Arc<dyn JobRunner>,
        webhooks: Option<WebhookConfig>,
    ) -> Service {
        Service::start_with(config, workers, runner, webhooks, None, None)
    }

    /// With authentication enforced: API keys from `auth`, and JWTs when `jwt` is set.
    pub fn start_secured(
        config: ServerConfig,
        workers: usize,
        runner: Arc<dyn JobRunner>,
        jwt: Option<vttiro_auth::JwtVerifier>,
    ) -> Service {
        Service::start_with(config, workers, runner, None, Some(jwt), None)
    }

    /// Open mode on a store encrypted at rest under `keys`.
    pub fn start_encrypted(
        workers: usize,
        runner: Arc<dyn JobRunner>,
        keys: Arc<vttiro_storage::KeyRing>,
    ) -> Service {
        Service::start_with(
            ServerConfig::default(),
            workers,
            runner,
            None,
            None,
            Some(keys),
        )
    }

    fn start_with(
        config: ServerConfig,
        workers: usize,
        runner: Arc<dyn JobRunner>,
        webhooks: Option<WebhookConfig>,
        secured: Option<Option<vttiro_auth::JwtVerifier>>,
        store_keys: Option<Arc<vttiro_storage::KeyRing>>,
    ) -> Service {
        let dir = tempfile::tempdir().unwrap();
        let policy = QueuePolicy {
            lease_ms: 2_000,
            backoff_base_ms: 100,
            ..QueuePolicy::default()
        };
        let queue: Arc<dyn JobQueue> = Arc::new(
            SqliteQueue::open(&dir.path().join("jobs.db"), Arc::new(SystemClock), policy).unwrap(),
        );
        let store_dir = dir.path().join("store");
        let store = match store_keys {
            Some(keys) => Store::open_encrypted(&store_dir, keys).unwrap(),
            None => Store::open(&store_dir).unwrap(),
        };
        let metrics = Arc::new(Metrics::default());
        let auth =
            Arc::new(vttiro_auth::AuthDb::open(&dir.path().join("auth.db"), &[42; 32]).unwrap());
        let authenticator = match secured {
            Some(jwt) => vttiro_auth::Authenticator::new(auth.clone(), jwt),
            None => vttiro_auth::Authenticator::open(auth.clone()),
        };
        let workers = (workers > 0).then(|| {
            spawn_workers(
                workers,
                "test-worker",
                WorkerSetup {
                    queue: queue.clone(),
                    store: store.clone(),
                    runner,
                    fetch: FetchPolicy::default(),
                    heartbeat: Duration::from_millis(200),
                    metrics: metrics.clone(),
                    usage: Some(auth.clone()),
                },
            )
        });
        let webhooks =
            webhooks.map(|config| spawn_dispatcher(queue.clone(), config, metrics.clone()));
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        let listener = runtime
            .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
            .unwrap();
        let addr = listener.local_addr().unwrap();
        let app = router(Arc::new(AppState {
            queue: queue.clone(),
            store,
            config,
            catalog: Arc::new(EchoCatalog),
            metrics,
            auth: Arc::new(authenticator),
            rate_limiter: vttiro_auth::RateLimiter::new(),
        }));
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        runtime.spawn(async move {
            axum::serve(
                listener,
                app.into_make_service_with_connect_info::<SocketAddr>(),
            )
            .with_graceful_shutdown(async {
                let _ = stopped.await;
            })
            .await
            .unwrap();
        });
        Service {
            addr,
            store_dir,
            data_dir: dir.path().to_path_buf(),
            queue,
            auth,
            _dir: dir,
            runtime: Some(runtime),
            workers,
            webhooks,
            stop: Some(stop),
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// A new API key's token, for `role` in `tenant`, after `edit` adjusts the request.
    pub fn key_with(
        &self,
        tenant: &str,
        role: vttiro_auth::Role,
        edit: impl FnOnce(&mut vttiro_auth::NewKey),
    ) -> String {
        let mut new = vttiro_auth::NewKey {
            name: format!("{role} of {tenant}"),
            tenant: tenant.into(),
            role,
            expires_at: None,
            requests_per_minute: None,
            audio_minutes_per_day: None,
        };
        edit(&mut new);
        self.auth.create_key(&new, vttiro_auth::now_ms()).unwrap().1
    }

    pub fn key(&self, tenant: &str, role: vttiro_auth::Role) -> String {
        self.key_with(tenant, role, |_| {})
    }
}

impl Drop for Service {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(workers) = self.workers.take() {
            workers.shutdown(Duration::from_secs(5));
        }
        if let Some(webhooks) = self.webhooks.take() {
            webhooks.shutdown();
        }
        if let Some(runtime) = self.runtime.take() {
            runtime.shutdown_timeout(Duration::from_secs(2));
        }
    }
}

pub struct Reply {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Reply {
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or(Value::Null)
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// The content type without its parameters.
    pub fn media_type(&self) -> Option<&str> {
        self.header("content-type")
            .map(|v| v.split(';').next().unwrap_or_default().trim())
    }
}

pub fn send(verb: &str, url: &str, headers: &[(&str, String)], body: Vec<u8>) -> Reply {
    let mut builder = ureq::http::Request::builder().method(verb).uri(url);
    for (name, value) in headers {
        builder = builder.header(*name, value);
    }
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .build()
        .into();
    let mut response = agent.run(builder.body(body).unwrap()).unwrap();
    let status = response.status().as_u16();
    let headers = response
        .headers()
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_str().unwrap_or("").to_string()))
        .collect();
    let body = response.body_mut().read_to_vec().unwrap_or_default();
    Reply {
        status,
        headers,
        body,
    }
}

pub fn get(url: &str) -> Reply {
    send("GET", url, &[], Vec::new())
}

/// `verb url` with no body.
pub fn method(verb: &str, url: &str) -> Reply {
    send(verb, url, &[], Vec::new())
}

/// A multipart body with text fields and a `file` part, and its content-type header.
pub fn multipart(fields: &[(&str, &str)], file: &[u8]) -> (Vec<(&'static str, String)>, Vec<u8>) {
    let boundary = "vttiro-test-boundary-7f3a";
    let mut body = Vec::new();
    for (name, value) in fields {
        body.extend_from_slice(
            format!("--{boundary}\r\nContent-Disposition: form-data; name=\"{name}\"\r\n\r\n{value}\r\n")
                .as_bytes(),
        );
    }
    body.extend_from_slice(
        format!("--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"talk.wav\"\r\nContent-Type: audio/wav\r\n\r\n")
            .as_bytes(),
    );
    body.extend_from_slice(file);
    body.extend_from_slice(format!("\r\n--{boundary}--\r\n").as_bytes());
    (
        vec![(
            "content-type",
            format!("multipart/form-data; boundary={boundary}"),
        )],
        body,
    )
}

/// `seconds` of silence as 16 kHz WAV.
pub fn wav(seconds: usize) -> Vec<u8> {
    vttiro_media::encode_wav(&vec![0.0; seconds * 16_000])
}
