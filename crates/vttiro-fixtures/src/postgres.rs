//! A real PostgreSQL server for tests: Debian's `postgresql` package (installed by
//! `scripts/deps.sh`), started once per test process in a private data directory, bound to
//! 127.0.0.1 on a free port, and stopped when the process ends (the server gets SIGINT — a
//! fast shutdown — when the thread that started it goes, and that thread lives as long as
//! the process). `VTTIRO_TEST_POSTGRES_URL` points the tests at an existing server instead.
//! Each test gets a database of its own, dropped when it is done.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

/// The server every test of this process shares: `postgres://postgres@127.0.0.1:PORT`.
struct Server {
    base_url: String,
    host: String,
    port: u16,
}

/// A database for one test.
pub struct PostgresDatabase {
    /// `postgres://postgres@127.0.0.1:PORT/NAME`
    pub url: String,
    pub name: String,
    host: String,
    port: u16,
}

impl PostgresDatabase {
    /// Runs `sql` through `psql` against this database and returns its unaligned output.
    pub fn psql(&self, sql: &str) -> String {
        psql(&self.host, self.port, &self.name, sql)
    }

    /// [`PostgresDatabase::psql`] for statements that may fail: the error is psql's.
    pub fn try_psql(&self, sql: &str) -> Result<String, String> {
        try_psql(&self.host, self.port, &self.name, sql)
    }
}

impl Drop for PostgresDatabase {
    fn drop(&mut self) {
        // Connections a test leaked would block a plain DROP.
        let _ = Command::new("psql")
            .args([
                "-h",
                &self.host,
                "-p",
                &self.port.to_string(),
                "-U",
                "postgres",
                "-d",
                "postgres",
                "-qAtc",
            ])
            .arg(format!(
                "DROP DATABASE IF EXISTS {} WITH (FORCE)",
                self.name
            ))
            .stderr(Stdio::null())
            .status();
    }
}

fn psql(host: &str, port: u16, database: &str, sql: &str) -> String {
    try_psql(host, port, database, sql).unwrap_or_else(|e| panic!("psql {sql:?}: {e}"))
}

fn try_psql(host: &str, port: u16, database: &str, sql: &str) -> Result<String, String> {
    let output = Command::new("psql")
        .args([
            "-h",
            host,
            "-p",
            &port.to_string(),
            "-U",
            "postgres",
            "-d",
            database,
            "-qAtc",
            sql,
        ])
        .args(["-v", "ON_ERROR_STOP=1"])
        .output()
        .expect("psql (Debian package postgresql-client)");
    if output.status.success() {
        Ok(String::from_utf8_lossy(&output.stdout).into_owned())
    } else {
        Err(String::from_utf8_lossy(&output.stderr).into_owned())
    }
}

/// The directory holding `initdb`, `postgres` and friends.
fn bin_dir() -> PathBuf {
    let mut versions: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .map(|entries| entries.flatten().map(|e| e.path().join("bin")).collect())
        .unwrap_or_default();
    versions.retain(|p| p.join("initdb").exists());
    versions.sort();
    versions
        .pop()
        .expect("PostgreSQL server binaries in /usr/lib/postgresql/*/bin (Debian package postgresql; scripts/deps.sh installs it)")
}

fn running_as_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .map(|o| o.stdout == b"0\n")
        .unwrap_or(false)
}

/// PostgreSQL refuses to run as root; as root, run it as the package's `postgres` user.
fn as_server_user(program: &Path) -> Command {
    let root = running_as_root();
    if root {
        let mut command = Command::new("setpriv");
        command
            .args([
                "--reuid=postgres",
                "--regid=postgres",
                "--init-groups",
                "--pdeathsig",
                "INT",
                "--",
            ])
            .arg(program);
        command
    } else {
        let mut command = Command::new("setpriv");
        command.args(["--pdeathsig", "INT", "--"]).arg(program);
        command
    }
}

fn start() -> Server {
    if let Ok(url) = std::env::var("VTTIRO_TEST_POSTGRES_URL") {
        let parsed = url
            .trim_start_matches("postgres://")
            .trim_start_matches("postgresql://");
        let host_port = parsed
            .rsplit('@')
            .next()
            .unwrap_or(parsed)
            .split('/')
            .next()
            .unwrap_or("");
        let (host, port) = host_port.rsplit_once(':').unwrap_or((host_port, "5432"));
        return Server {
            base_url: url.trim_end_matches('/').to_string(),
            host: host.to_string(),
            port: port.parse().expect("a port in VTTIRO_TEST_POSTGRES_URL"),
        };
    }
    // The shared server lives as long as the process.
    let server = Box::leak(Box::new(PostgresServer::start()));
    Server {
        base_url: server.url(),
        host: "127.0.0.1".into(),
        port: server.port,
    }
}

enum Control {
    Start(std::sync::mpsc::Sender<Result<(), String>>),
    Stop(std::sync::mpsc::Sender<()>),
}

/// A private PostgreSQL server, for tests that stop and start it (a database restart
/// under load). It stops when dropped.
pub struct PostgresServer {
    pub port: u16,
    control: std::sync::mpsc::Sender<Control>,
    bin: PathBuf,
}

impl PostgresServer {
    pub fn start() -> PostgresServer {
        PostgresServer::start_with_tls(None)
    }

    /// A server that also speaks TLS with this PEM certificate and key.
    pub fn start_tls(cert: &Path, key: &Path) -> PostgresServer {
        PostgresServer::start_with_tls(Some((cert, key)))
    }

    fn start_with_tls(tls: Option<(&Path, &Path)>) -> PostgresServer {
        let bin = bin_dir();
        sweep_stale_data_dirs();
        let data = std::env::temp_dir().join(format!(
            "vttiro-pg-{}-{}",
            std::process::id(),
            fastrand_suffix()
        ));
        std::fs::create_dir_all(&data).unwrap();
        if let Some((uid, gid)) = postgres_ids() {
            std::os::unix::fs::chown(&data, Some(uid), Some(gid)).unwrap();
        }
        let initdb = as_server_user(&bin.join("initdb"))
            .arg("-D")
            .arg(&data)
            .args([
                "-U",
                "postgres",
                "--auth=trust",
                "--no-sync",
                "-E",
                "UTF8",
                "--locale=C",
            ])
            .output()
            .expect("run initdb");
        assert!(
            initdb.status.success(),
            "initdb: {}",
            String::from_utf8_lossy(&initdb.stderr)
        );
        let mut settings: Vec<String> = Vec::new();
        if let Some((cert, key)) = tls {
            for (from, name) in [(cert, "server.crt"), (key, "server.key")] {
                let to = data.join(name);
                std::fs::copy(from, &to).unwrap();
                std::fs::set_permissions(&to, std::os::unix::fs::PermissionsExt::from_mode(0o600))
                    .unwrap();
                if let Some((uid, gid)) = postgres_ids() {
                    std::os::unix::fs::chown(&to, Some(uid), Some(gid)).unwrap();
                }
            }
            for setting in [
                "ssl=on",
                "ssl_cert_file=server.crt",
                "ssl_key_file=server.key",
            ] {
                settings.extend(["-c".to_string(), setting.to_string()]);
            }
        }
        let port = crate::free_port();
        // The server is spawned, stopped and respawned by one thread that lives until the
        // handle drops: the parent-death signal follows the thread that spawned it, so the
        // server can neither die with a test thread nor outlive the handle.
        let (control, commands) = std::sync::mpsc::channel::<Control>();
        let postgres = bin.join("postgres");
        std::thread::spawn(move || {
            let mut child: Option<std::process::Child> = None;
            for command in commands {
                match command {
                    Control::Start(reply) => {
                        let spawned = as_server_user(&postgres)
                            .arg("-D")
                            .arg(&data)
                            .args(["-p", &port.to_string(), "-c", "listen_addresses=127.0.0.1"])
                            .args(["-c", "fsync=off"])
                            .args(&settings)
                            .arg("-k")
                            .arg(&data)
                            .stdout(Stdio::null())
                            .stderr(Stdio::null())
                            .spawn();
                        let _ =
                            reply.send(spawned.map(|c| child = Some(c)).map_err(|e| e.to_string()));
                    }
                    Control::Stop(reply) => {
                        if let Some(mut running) = child.take() {
                            // A fast shutdown, as `pg_ctl stop -m fast` would ask for.
                            let _ = Command::new("kill")
                                .args(["-INT", &running.id().to_string()])
                                .status();
                            let _ = running.wait();
                        }
                        let _ = reply.send(());
                    }
                }
            }
            if let Some(mut running) = child.take() {
                let _ = Command::new("kill")
                    .args(["-INT", &running.id().to_string()])
                    .status();
                let _ = running.wait();
            }
            let _ = std::fs::remove_dir_all(&data);
        });
        let server = PostgresServer { port, control, bin };
        server.up();
        server
    }

    /// `postgres://postgres@127.0.0.1:PORT`
    pub fn url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}", self.port)
    }

    fn up(&self) {
        let (reply, done) = std::sync::mpsc::channel();
        self.control.send(Control::Start(reply)).unwrap();
        done.recv().unwrap().expect("start postgres");
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let ready = Command::new(self.bin.join("pg_isready"))
                .args(["-h", "127.0.0.1", "-p", &self.port.to_string()])
                .stdout(Stdio::null())
                .status()
                .is_ok_and(|s| s.success());
            if ready {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "postgres did not start on port {}",
                self.port
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Stops the server (fast shutdown: clients are disconnected) and starts it again on
    /// the same port and data.
    pub fn restart(&self) {
        let (reply, done) = std::sync::mpsc::channel();
        self.control.send(Control::Stop(reply)).unwrap();
        done.recv().unwrap();
        self.up();
    }

    /// A new, empty database on this server.
    pub fn database(&self) -> PostgresDatabase {
        new_database("127.0.0.1", self.port, &self.url())
    }
}

/// Data directories of test processes that have ended (their servers ended with them).
fn sweep_stale_data_dirs() {
    let Ok(entries) = std::fs::read_dir(std::env::temp_dir()) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        let Some(pid) = name
            .strip_prefix("vttiro-pg-")
            .and_then(|rest| rest.split('-').next())
        else {
            continue;
        };
        if !Path::new("/proc").join(pid).exists() {
            let _ = std::fs::remove_dir_all(entry.path());
        }
    }
}

fn postgres_ids() -> Option<(u32, u32)> {
    let id = |flag: &str| -> Option<u32> {
        let out = Command::new("id").args([flag, "postgres"]).output().ok()?;
        String::from_utf8_lossy(&out.stdout).trim().parse().ok()
    };
    let root = running_as_root();
    if root {
        Some((id("-u")?, id("-g")?))
    } else {
        None
    }
}

fn fastrand_suffix() -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    format!("{nanos:08x}")
}

fn server() -> &'static Server {
    static SERVER: OnceLock<Server> = OnceLock::new();
    SERVER.get_or_init(start)
}

/// A new, empty database on the test server.
pub fn postgres_database() -> PostgresDatabase {
    let server = server();
    new_database(&server.host, server.port, &server.base_url)
}

fn new_database(host: &str, port: u16, base_url: &str) -> PostgresDatabase {
    static NEXT: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
    let name = format!(
        "vttiro_test_{}_{}_{}",
        std::process::id(),
        fastrand_suffix(),
        NEXT.fetch_add(1, std::sync::atomic::Ordering::SeqCst)
    );
    psql(host, port, "postgres", &format!("CREATE DATABASE {name}"));
    PostgresDatabase {
        url: format!("{base_url}/{name}"),
        name,
        host: host.to_string(),
        port,
    }
}
