//! TLS termination in the server itself, for deployments without an ingress or proxy in
//! front of it.
//!
//! Certificates are rotated by tools that rewrite files in place (certbot, cert-manager,
//! a Kubernetes secret mount), so the server watches the cert and key files and swaps the
//! pair in without a restart. A rotation that leaves a bad pair behind (half-written
//! files, a key from another certificate) must not take the service down: the old pair
//! stays in service and the failure is logged once per change.
//!
//! Only the ring provider is used, so the build needs no C toolchain for aws-lc, and the
//! provider is named explicitly rather than taken from the process default, which panics
//! when a dependency graph enables more than one.

use std::future::Future;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError, RwLock};
use std::time::{Duration, SystemTime};

use axum::serve::ListenerExt as _;
use rustls::crypto::CryptoProvider;
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use rustls_pki_types::pem::PemObject as _;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio_rustls::server::TlsStream;
use tokio_rustls::TlsAcceptor;

/// A client that opens a connection and never finishes the handshake must not hold a task
/// and a socket forever.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// tokio's interval panics on a zero period; a few milliseconds is already far more often
/// than any rotation happens.
const MIN_RELOAD_EVERY: Duration = Duration::from_millis(10);

/// Where the PEM certificate chain (leaf first) and its private key live.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsFiles {
    pub cert: PathBuf,
    pub key: PathBuf,
}

/// Why a certificate/key pair could not be used. Each message names the file at fault so an
/// operator can act on the log line alone.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("{}: cannot read: {source}", path.display())]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{}: malformed PEM: {reason}", path.display())]
    Pem { path: PathBuf, reason: String },
    #[error("{}: no certificate found (expected PEM CERTIFICATE blocks, leaf first)", path.display())]
    NoCertificate { path: PathBuf },
    #[error("{}: leaf certificate is not valid X.509: {reason}", path.display())]
    BadCertificate { path: PathBuf, reason: &'static str },
    #[error("{}: no private key found (expected PKCS#8, PKCS#1 or SEC1 PEM)", path.display())]
    NoPrivateKey { path: PathBuf },
    #[error("{}: unsupported private key: {reason}", path.display())]
    UnsupportedKey { path: PathBuf, reason: String },
    #[error("{}: certificate and key do not match (key file {})", cert.display(), key.display())]
    KeyMismatch { cert: PathBuf, key: PathBuf },
}

/// Loads and checks the pair (the key belongs to the leaf certificate), so that a bad pair is
/// refused at startup, before the port is bound, rather than at the first handshake.
pub fn load_certified_key(files: &TlsFiles) -> Result<Arc<CertifiedKey>, TlsError> {
    load(files).map(|(key, _)| key)
}

/// The leaf certificate's notAfter as unix seconds, for the
/// `vttiro_tls_certificate_expiry_timestamp_seconds` gauge.
pub fn leaf_not_after(files: &TlsFiles) -> Result<i64, TlsError> {
    let chain = read_chain(&files.cert)?;
    not_after_of(&files.cert, &chain[0])
}

fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

fn read(path: &Path) -> Result<Vec<u8>, TlsError> {
    std::fs::read(path).map_err(|source| TlsError::Read {
        path: path.to_owned(),
        source,
    })
}

fn read_chain(path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let pem = read(path)?;
    let chain = CertificateDer::pem_slice_iter(&pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|err| TlsError::Pem {
            path: path.to_owned(),
            reason: err.to_string(),
        })?;
    if chain.is_empty() {
        return Err(TlsError::NoCertificate {
            path: path.to_owned(),
        });
    }
    Ok(chain)
}

fn read_key(path: &Path) -> Result<PrivateKeyDer<'static>, TlsError> {
    let pem = read(path)?;
    PrivateKeyDer::from_pem_slice(&pem).map_err(|err| match err {
        rustls_pki_types::pem::Error::NoItemsFound => TlsError::NoPrivateKey {
            path: path.to_owned(),
        },
        other => TlsError::Pem {
            path: path.to_owned(),
            reason: other.to_string(),
        },
    })
}

/// The checked pair and the leaf's notAfter, read together so the gauge always describes
/// the certificate actually in service.
fn load(files: &TlsFiles) -> Result<(Arc<CertifiedKey>, i64), TlsError> {
    let chain = read_chain(&files.cert)?;
    let not_after = not_after_of(&files.cert, &chain[0])?;
    let key = read_key(&files.key)?;
    let signing_key = provider()
        .key_provider
        .load_private_key(key)
        .map_err(|err| TlsError::UnsupportedKey {
            path: files.key.clone(),
            reason: err.to_string(),
        })?;
    let certified = CertifiedKey::new(chain, signing_key);
    match certified.keys_match() {
        Ok(()) => {}
        // Unknown means the key cannot tell its public half; rustls then cannot check
        // either, and the handshake itself will fail loudly if they differ.
        Err(rustls::Error::InconsistentKeys(rustls::InconsistentKeys::Unknown)) => {}
        Err(_) => {
            return Err(TlsError::KeyMismatch {
                cert: files.cert.clone(),
                key: files.key.clone(),
            })
        }
    }
    Ok((Arc::new(certified), not_after))
}

/// What identifies one version of a file without reading it. The inode catches an atomic
/// rename (the Kubernetes secret-mount swap) that happens to keep length and mtime.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Stamp {
    modified: Option<SystemTime>,
    len: u64,
    inode: u64,
}

fn stamp(path: &Path) -> Option<Stamp> {
    let meta = std::fs::metadata(path).ok()?;
    #[cfg(unix)]
    let inode = std::os::unix::fs::MetadataExt::ino(&meta);
    #[cfg(not(unix))]
    let inode = 0;
    Some(Stamp {
        modified: meta.modified().ok(),
        len: meta.len(),
        inode,
    })
}

/// `None` for a file that cannot be stat'ed (mid-rotation), so its reappearance counts
/// as a change.
type Stamps = (Option<Stamp>, Option<Stamp>);

#[derive(Debug)]
struct Current {
    key: Arc<CertifiedKey>,
    not_after: i64,
}

/// The certificate in service, swapped in place when the files change. Handshakes read it
/// through [`ResolvesServerCert`], so a swap applies to the next connection while open
/// connections keep the session they negotiated.
#[derive(Debug)]
pub struct ReloadingCert {
    files: TlsFiles,
    current: RwLock<Arc<Current>>,
    /// Held across a whole check-and-load so two callers never load the same change twice,
    /// and records the stamps of the last version tried, good or bad, so a bad pair is
    /// logged once rather than every period.
    seen: Mutex<Stamps>,
}

impl ReloadingCert {
    /// Loads the pair now; a bad pair is an error here, since there is nothing older to fall
    /// back on.
    pub fn new(files: TlsFiles) -> Result<Arc<ReloadingCert>, TlsError> {
        // Stamps before contents: a write that lands in between is then seen as a change
        // on the next check instead of being missed.
        let stamps = (stamp(&files.cert), stamp(&files.key));
        let (key, not_after) = load(&files)?;
        Ok(Arc::new(ReloadingCert {
            files,
            current: RwLock::new(Arc::new(Current { key, not_after })),
            seen: Mutex::new(stamps),
        }))
    }

    /// Re-reads the files if their modification time or length changed. A bad new pair is
    /// logged and returned as the error while the old certificate stays in service. Returns
    /// whether it swapped.
    pub fn reload_if_changed(&self) -> Result<bool, TlsError> {
        let mut seen = self.seen.lock().unwrap_or_else(PoisonError::into_inner);
        let stamps = (stamp(&self.files.cert), stamp(&self.files.key));
        if stamps == *seen {
            return Ok(false);
        }
        *seen = stamps;
        match load(&self.files) {
            Ok((key, not_after)) => {
                *self.current.write().unwrap_or_else(PoisonError::into_inner) =
                    Arc::new(Current { key, not_after });
                tracing::info!(
                    cert = %self.files.cert.display(),
                    not_after,
                    "tls certificate reloaded"
                );
                Ok(true)
            }
            Err(err) => {
                tracing::error!("tls certificate not reloaded, keeping the previous one: {err}");
                Err(err)
            }
        }
    }

    /// The notAfter of the certificate in service, as unix seconds.
    pub fn not_after(&self) -> i64 {
        self.current().not_after
    }

    /// The files this certificate is read from.
    pub fn files(&self) -> &TlsFiles {
        &self.files
    }

    fn current(&self) -> Arc<Current> {
        Arc::clone(&self.current.read().unwrap_or_else(PoisonError::into_inner))
    }
}

impl ResolvesServerCert for ReloadingCert {
    fn resolve(&self, _client_hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(Arc::clone(&self.current().key))
    }
}

/// Serves `app` over TLS on `listener` (HTTP/1.1, ALPN `http/1.1`), checking the files for
/// change every `reload_every`, until `shutdown` resolves; then stops accepting and lets
/// in-flight connections finish, exactly as `axum::serve(..).with_graceful_shutdown` does,
/// since that is what runs underneath. Requests see `ConnectInfo<SocketAddr>` of the peer.
pub async fn serve_tls(
    listener: TcpListener,
    app: axum::Router,
    cert: Arc<ReloadingCert>,
    reload_every: Duration,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let mut config = rustls::ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(std::io::Error::other)?
        .with_no_client_auth()
        .with_cert_resolver(Arc::clone(&cert) as Arc<dyn ResolvesServerCert>);
    // The router is served by an HTTP/1-only hyper; offering h2 would strand h2 clients.
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    let acceptor = TlsAcceptor::from(Arc::new(config));

    let local_addr = listener.local_addr()?;
    // Handshakes run in their own tasks so a slow or hostile client cannot hold up accept;
    // finished ones queue here for axum, which only ever sees ready TLS streams.
    // The accept loop ends when axum drops the receiving end, which it does as soon as
    // shutdown is signalled, so new connections stop then, as with a plain `TcpListener`.
    let (ready_tx, ready_rx) = mpsc::channel(64);
    let accepting = tokio::spawn(accept_loop(listener, acceptor, ready_tx));
    let _reloading = AbortOnDrop(tokio::spawn(reload_loop(cert, reload_every)));

    let tls_listener = TlsListener {
        ready: ready_rx,
        local_addr,
    };
    // axum gives `ConnectInfo<SocketAddr>` for any listener only through `TapIo` (its impl
    // for a bare listener is for `TcpListener` alone); the tap itself does nothing.
    let served = axum::serve(
        tls_listener.tap_io(|_| {}),
        app.into_make_service_with_connect_info::<SocketAddr>(),
    )
    .with_graceful_shutdown(shutdown)
    .await;
    // Waiting for it means the port is closed by the time the caller hears we stopped.
    let _ = accepting.await;
    served
}

/// Ties a background task's life to the server's, including when `serve_tls` is dropped
/// rather than shut down.
struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

struct TlsListener {
    ready: mpsc::Receiver<(TlsStream<TcpStream>, SocketAddr)>,
    local_addr: SocketAddr,
}

impl axum::serve::Listener for TlsListener {
    type Io = TlsStream<TcpStream>;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        match self.ready.recv().await {
            Some(ready) => ready,
            // The accept loop only ends once this receiver is gone, so this is unreachable;
            // waiting is the harmless answer.
            None => std::future::pending().await,
        }
    }

    fn local_addr(&self) -> std::io::Result<Self::Addr> {
        Ok(self.local_addr)
    }
}

async fn accept_loop(
    listener: TcpListener,
    acceptor: TlsAcceptor,
    ready: mpsc::Sender<(TlsStream<TcpStream>, SocketAddr)>,
) {
    loop {
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            () = ready.closed() => return,
        };
        let (tcp, peer) = match accepted {
            Ok(accepted) => accepted,
            Err(err) => {
                handle_accept_error(err).await;
                continue;
            }
        };
        let acceptor = acceptor.clone();
        let ready = ready.clone();
        tokio::spawn(async move {
            match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(tcp)).await {
                Ok(Ok(tls)) => {
                    // Fails only when the server is shutting down; the stream is dropped.
                    let _ = ready.send((tls, peer)).await;
                }
                // Scanners, plain HTTP and clients that distrust the CA land here all the
                // time; they are the client's problem, not the server's.
                Ok(Err(err)) => tracing::debug!(%peer, "tls handshake failed: {err}"),
                Err(_) => tracing::debug!(%peer, "tls handshake timed out"),
            }
        });
    }
}

/// Same policy as axum's plain listener: a connection that died before accept is routine;
/// anything else (out of file descriptors) is logged and retried after a pause so the loop
/// does not spin.
async fn handle_accept_error(err: std::io::Error) {
    use std::io::ErrorKind::{ConnectionAborted, ConnectionRefused, ConnectionReset};
    if matches!(
        err.kind(),
        ConnectionRefused | ConnectionAborted | ConnectionReset
    ) {
        return;
    }
    tracing::error!("tls listener: accept failed: {err}");
    tokio::time::sleep(Duration::from_secs(1)).await;
}

async fn reload_loop(cert: Arc<ReloadingCert>, every: Duration) {
    let mut ticks = tokio::time::interval(every.max(MIN_RELOAD_EVERY));
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    // The first tick is immediate and the files were just loaded.
    ticks.tick().await;
    loop {
        ticks.tick().await;
        let cert = Arc::clone(&cert);
        // File I/O blocks; a bad pair is already logged by reload_if_changed.
        let _ = tokio::task::spawn_blocking(move || cert.reload_if_changed()).await;
    }
}

/// notAfter of a DER certificate. A minimal walk of the fixed prefix of TBSCertificate
/// (RFC 5280 §4.1) is enough for this one field and spares a full X.509 parser.
fn not_after_of(path: &Path, cert: &CertificateDer<'_>) -> Result<i64, TlsError> {
    parse_not_after(cert.as_ref()).map_err(|reason| TlsError::BadCertificate {
        path: path.to_owned(),
        reason,
    })
}

const SEQUENCE: u8 = 0x30;
const INTEGER: u8 = 0x02;
const VERSION: u8 = 0xa0;
const UTC_TIME: u8 = 0x17;
const GENERALIZED_TIME: u8 = 0x18;

fn parse_not_after(der: &[u8]) -> Result<i64, &'static str> {
    let (certificate, _) = expect(der, SEQUENCE)?;
    let (tbs, _) = expect(certificate, SEQUENCE)?;
    let mut rest = tbs;
    if let Ok((_, after_version)) = expect(rest, VERSION) {
        rest = after_version;
    }
    let (_serial, rest) = expect(rest, INTEGER)?;
    let (_signature, rest) = expect(rest, SEQUENCE)?;
    let (_issuer, rest) = expect(rest, SEQUENCE)?;
    let (validity, _) = expect(rest, SEQUENCE)?;
    let (_, _not_before, rest) = element(validity)?;
    let (tag, not_after, _) = element(rest)?;
    match tag {
        UTC_TIME => parse_time(not_after, 2),
        GENERALIZED_TIME => parse_time(not_after, 4),
        _ => Err("notAfter is not a UTCTime or GeneralizedTime"),
    }
}

fn expect(der: &[u8], want: u8) -> Result<(&[u8], &[u8]), &'static str> {
    let (tag, content, rest) = element(der)?;
    if tag == want {
        Ok((content, rest))
    } else {
        Err("unexpected DER structure")
    }
}

/// One DER element: (tag, content, what follows). Certificates use only low tag numbers.
fn element(der: &[u8]) -> Result<(u8, &[u8], &[u8]), &'static str> {
    const TRUNCATED: &str = "truncated DER";
    let (&tag, rest) = der.split_first().ok_or(TRUNCATED)?;
    if tag & 0x1f == 0x1f {
        return Err("unexpected DER structure");
    }
    let (&first, mut rest) = rest.split_first().ok_or(TRUNCATED)?;
    let len = if first < 0x80 {
        usize::from(first)
    } else {
        let octets = usize::from(first & 0x7f);
        if octets == 0 || octets > 4 || rest.len() < octets {
            return Err(TRUNCATED);
        }
        let len = rest[..octets]
            .iter()
            .fold(0usize, |len, &b| (len << 8) | usize::from(b));
        rest = &rest[octets..];
        len
    };
    if rest.len() < len {
        return Err(TRUNCATED);
    }
    Ok((tag, &rest[..len], &rest[len..]))
}

/// `YYMMDDHHMMSSZ` (UTCTime) or `YYYYMMDDHHMMSSZ` (GeneralizedTime), the only forms DER
/// allows (RFC 5280 §4.1.2.5).
fn parse_time(text: &[u8], year_digits: usize) -> Result<i64, &'static str> {
    const BAD: &str = "malformed notAfter";
    if text.len() != year_digits + 11 || text.last() != Some(&b'Z') {
        return Err(BAD);
    }
    let digits = &text[..text.len() - 1];
    if !digits.iter().all(u8::is_ascii_digit) {
        return Err(BAD);
    }
    let number = |at: usize, len: usize| {
        digits[at..at + len]
            .iter()
            .fold(0i64, |n, &d| n * 10 + i64::from(d - b'0'))
    };
    let mut year = number(0, year_digits);
    if year_digits == 2 {
        // RFC 5280: UTCTime years 50..99 are 19xx, 00..49 are 20xx.
        year += if year >= 50 { 1900 } else { 2000 };
    }
    let at = year_digits;
    let (month, day) = (number(at, 2), number(at + 2, 2));
    let (hour, minute, second) = (number(at + 4, 2), number(at + 6, 2), number(at + 8, 2));
    if !(1..=12).contains(&month)
        || !(1..=31).contains(&day)
        || hour > 23
        || minute > 59
        || second > 59
    {
        return Err(BAD);
    }
    Ok(days_from_civil(year, month, day) * 86_400 + hour * 3_600 + minute * 60 + second)
}

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's algorithm).
fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    let year = if month <= 2 { year - 1 } else { year };
    let era = year.div_euclid(400);
    let year_of_era = year - era * 400;
    let day_of_year = (153 * ((month + 9) % 12) + 2) / 5 + day - 1;
    let day_of_era = year_of_era * 365 + year_of_era / 4 - year_of_era / 100 + day_of_year;
    era * 146_097 + day_of_era - 719_468
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn civil_days_match_known_dates() {
        assert_eq!(days_from_civil(1970, 1, 1), 0);
        assert_eq!(days_from_civil(2000, 3, 1), 11_017);
        assert_eq!(days_from_civil(2038, 1, 19), 24_855);
    }

    #[test]
    fn both_time_forms_parse() {
        assert_eq!(parse_time(b"380119031408Z", 2), Ok(2_147_483_648));
        assert_eq!(parse_time(b"20380119031408Z", 4), Ok(2_147_483_648));
        assert_eq!(parse_time(b"700101000000Z", 2), Ok(0));
        assert!(parse_time(b"381319031408Z", 2).is_err());
        assert!(parse_time(b"3801190314Z", 2).is_err());
    }

    #[test]
    fn garbage_der_is_refused() {
        assert!(parse_not_after(b"").is_err());
        assert!(parse_not_after(&[0x30, 0x84, 0xff, 0xff, 0xff, 0xff]).is_err());
        assert!(parse_not_after(&[0x30, 0x02, 0x05, 0x00]).is_err());
    }
}
