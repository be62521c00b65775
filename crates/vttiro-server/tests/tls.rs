//! TLS termination: handshakes against a test CA made here, certificate reload on file
//! change, refusal of bad pairs, and graceful shutdown. Servers bind 127.0.0.1 only.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::extract::ConnectInfo;
use axum::routing::get;
use axum::Router;
use rcgen::{
    BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair, KeyUsagePurpose,
    SerialNumber,
};
use rustls::pki_types::{CertificateDer, ServerName};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::oneshot;
use vttiro_server::tls::{
    leaf_not_after, load_certified_key, serve_tls, ReloadingCert, TlsError, TlsFiles,
};

const LIMIT: Duration = Duration::from_secs(10);

struct Ca {
    issuer: Issuer<'static, KeyPair>,
    pem: String,
    der: CertificateDer<'static>,
}

fn make_ca(name: &str) -> Ca {
    let key = KeyPair::generate().unwrap();
    let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.distinguished_name.push(DnType::CommonName, name);
    params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    let cert = params.self_signed(&key).unwrap();
    Ca {
        pem: cert.pem(),
        der: cert.der().clone(),
        issuer: Issuer::new(params, key),
    }
}

struct Leaf {
    cert_pem: String,
    key_pem: String,
    der: CertificateDer<'static>,
}

fn make_leaf(ca: &Ca, cn: &str, serial: u64, not_after: (i32, u8, u8)) -> Leaf {
    let key = KeyPair::generate().unwrap();
    let mut params =
        CertificateParams::new(vec!["localhost".to_string(), "127.0.0.1".to_string()]).unwrap();
    params.distinguished_name.push(DnType::CommonName, cn);
    params.serial_number = Some(SerialNumber::from(serial));
    params.not_after = rcgen::date_time_ymd(not_after.0, not_after.1, not_after.2);
    let cert = params.signed_by(&key, &ca.issuer).unwrap();
    Leaf {
        cert_pem: cert.pem(),
        key_pem: key.serialize_pem(),
        der: cert.der().clone(),
    }
}

/// Replaces a file by rename, as rotation tools do, so the reloader never reads half a file.
fn put(path: &Path, contents: &str) {
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, contents).unwrap();
    std::fs::rename(&tmp, path).unwrap();
}

fn write_pair(dir: &Path, leaf: &Leaf) -> TlsFiles {
    let files = TlsFiles {
        cert: dir.join("tls.crt"),
        key: dir.join("tls.key"),
    };
    put(&files.key, &leaf.key_pem);
    put(&files.cert, &leaf.cert_pem);
    files
}

fn app() -> Router {
    Router::new().route(
        "/peer",
        get(|ConnectInfo(peer): ConnectInfo<SocketAddr>| async move { format!("ok {peer}") }),
    )
}

struct Server {
    addr: SocketAddr,
    stop: Option<oneshot::Sender<()>>,
    done: tokio::task::JoinHandle<std::io::Result<()>>,
}

impl Server {
    async fn start(app: Router, cert: Arc<ReloadingCert>, reload_every: Duration) -> Server {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (stop, stopped) = oneshot::channel::<()>();
        let done = tokio::spawn(serve_tls(listener, app, cert, reload_every, async move {
            let _ = stopped.await;
        }));
        Server {
            addr,
            stop: Some(stop),
            done,
        }
    }

    async fn stop(mut self) {
        let _ = self.stop.take().unwrap().send(());
        tokio::time::timeout(LIMIT, &mut self.done)
            .await
            .expect("serve_tls returns after shutdown")
            .unwrap()
            .unwrap();
    }
}

fn connector(ca: &CertificateDer<'static>) -> tokio_rustls::TlsConnector {
    let mut roots = rustls::RootCertStore::empty();
    roots.add(ca.clone()).unwrap();
    let mut config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_root_certificates(roots)
    .with_no_client_auth();
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    tokio_rustls::TlsConnector::from(Arc::new(config))
}

struct Reply {
    response: String,
    client_addr: SocketAddr,
    peer_leaf: CertificateDer<'static>,
    alpn: Option<Vec<u8>>,
}

async fn get_peer(addr: SocketAddr, ca: &CertificateDer<'static>) -> std::io::Result<Reply> {
    tokio::time::timeout(LIMIT, async {
        let tcp = TcpStream::connect(addr).await?;
        let client_addr = tcp.local_addr()?;
        let mut tls = connector(ca)
            .connect(ServerName::try_from("localhost").unwrap(), tcp)
            .await?;
        let (_, session) = tls.get_ref();
        let peer_leaf = session.peer_certificates().unwrap()[0].clone();
        let alpn = session.alpn_protocol().map(<[u8]>::to_vec);
        tls.write_all(b"GET /peer HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
            .await?;
        let mut response = String::new();
        tls.read_to_string(&mut response).await?;
        Ok(Reply {
            response,
            client_addr,
            peer_leaf,
            alpn,
        })
    })
    .await
    .expect("request finishes in time")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn handshake_with_test_ca_serves_router_with_peer_address() {
    let dir = tempfile::tempdir().unwrap();
    let ca = make_ca("vttiro test CA");
    let leaf = make_leaf(&ca, "vttiro one", 1, (2049, 1, 1));
    let files = write_pair(dir.path(), &leaf);
    let server = Server::start(
        app(),
        ReloadingCert::new(files).unwrap(),
        Duration::from_secs(60),
    )
    .await;

    let reply = get_peer(server.addr, &ca.der).await.unwrap();
    assert!(
        reply.response.starts_with("HTTP/1.1 200"),
        "{}",
        reply.response
    );
    assert!(
        reply
            .response
            .ends_with(&format!("ok {}", reply.client_addr)),
        "{}",
        reply.response
    );
    assert_eq!(reply.peer_leaf, leaf.der);
    // The client offered h2 first; the server must pick the protocol it actually serves.
    assert_eq!(reply.alpn.as_deref(), Some(&b"http/1.1"[..]));

    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn curl_handshakes_with_test_ca() {
    if std::process::Command::new("curl")
        .arg("--version")
        .output()
        .is_err()
    {
        eprintln!("curl not installed; skipping the independent-client check");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let ca = make_ca("vttiro test CA");
    let leaf = make_leaf(&ca, "vttiro one", 1, (2049, 1, 1));
    let files = write_pair(dir.path(), &leaf);
    let ca_file = dir.path().join("ca.pem");
    std::fs::write(&ca_file, &ca.pem).unwrap();
    let server = Server::start(
        app(),
        ReloadingCert::new(files).unwrap(),
        Duration::from_secs(60),
    )
    .await;

    let port = server.addr.port();
    let output = tokio::task::spawn_blocking(move || {
        std::process::Command::new("curl")
            .args(["--silent", "--show-error", "--fail", "--max-time", "10"])
            .arg("--cacert")
            .arg(&ca_file)
            .arg("--resolve")
            .arg(format!("localhost:{port}:127.0.0.1"))
            .arg(format!("https://localhost:{port}/peer"))
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    let body = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "curl failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(body.starts_with("ok 127.0.0.1:"), "{body}");

    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_trusting_another_ca_fails_handshake_and_server_carries_on() {
    let dir = tempfile::tempdir().unwrap();
    let ca = make_ca("vttiro test CA");
    let other = make_ca("some other CA");
    let files = write_pair(dir.path(), &make_leaf(&ca, "vttiro one", 1, (2049, 1, 1)));
    let server = Server::start(
        app(),
        ReloadingCert::new(files).unwrap(),
        Duration::from_secs(60),
    )
    .await;

    let err = get_peer(server.addr, &other.der)
        .await
        .err()
        .expect("handshake must fail");
    assert!(
        err.to_string().contains("UnknownIssuer")
            || err.to_string().to_lowercase().contains("unknown issuer"),
        "{err}"
    );
    let reply = get_peer(server.addr, &ca.der).await.unwrap();
    assert!(
        reply.response.starts_with("HTTP/1.1 200"),
        "{}",
        reply.response
    );

    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plain_http_to_tls_port_gets_no_http_200() {
    let dir = tempfile::tempdir().unwrap();
    let ca = make_ca("vttiro test CA");
    let files = write_pair(dir.path(), &make_leaf(&ca, "vttiro one", 1, (2049, 1, 1)));
    let server = Server::start(
        app(),
        ReloadingCert::new(files).unwrap(),
        Duration::from_secs(60),
    )
    .await;

    let mut tcp = TcpStream::connect(server.addr).await.unwrap();
    tcp.write_all(b"GET /peer HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
        .await
        .unwrap();
    let mut answer = Vec::new();
    // The server answers with a TLS alert or just closes; either way, no HTTP.
    let _ = tokio::time::timeout(LIMIT, tcp.read_to_end(&mut answer))
        .await
        .expect("server closes the plain connection");
    assert!(!answer.starts_with(b"HTTP/"), "{answer:?}");

    let reply = get_peer(server.addr, &ca.der).await.unwrap();
    assert!(
        reply.response.starts_with("HTTP/1.1 200"),
        "{}",
        reply.response
    );
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn changed_files_are_served_to_new_connections_and_a_broken_key_is_ignored() {
    let dir = tempfile::tempdir().unwrap();
    let ca = make_ca("vttiro test CA");
    let first = make_leaf(&ca, "vttiro one", 1, (2049, 1, 1));
    let files = write_pair(dir.path(), &first);
    let cert = ReloadingCert::new(files.clone()).unwrap();
    let server = Server::start(app(), Arc::clone(&cert), Duration::from_millis(100)).await;
    assert_eq!(
        get_peer(server.addr, &ca.der).await.unwrap().peer_leaf,
        first.der
    );

    let second = make_leaf(&ca, "vttiro two", 2, (2050, 6, 1));
    write_pair(dir.path(), &second);
    let deadline = Instant::now() + LIMIT;
    loop {
        let reply = get_peer(server.addr, &ca.der).await.unwrap();
        if reply.peer_leaf == second.der {
            assert!(reply.response.starts_with("HTTP/1.1 200"));
            break;
        }
        assert_eq!(reply.peer_leaf, first.der);
        assert!(
            Instant::now() < deadline,
            "the new certificate was never served"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(cert.not_after(), leaf_not_after(&files).unwrap());

    put(
        &files.key,
        "-----BEGIN PRIVATE KEY-----\nbm90IGEga2V5\n-----END PRIVATE KEY-----\n",
    );
    // Whoever sees the change first, the background reloader or this call, it must be
    // refused; after this call it has certainly been seen.
    assert!(!matches!(cert.reload_if_changed(), Ok(true)));
    let reply = get_peer(server.addr, &ca.der).await.unwrap();
    assert_eq!(reply.peer_leaf, second.der);
    assert!(reply.response.starts_with("HTTP/1.1 200"));

    server.stop().await;
}

#[test]
fn reload_if_changed_swaps_once_and_keeps_the_old_pair_on_error() {
    let dir = tempfile::tempdir().unwrap();
    let ca = make_ca("vttiro test CA");
    let files = write_pair(dir.path(), &make_leaf(&ca, "vttiro one", 1, (2049, 1, 1)));
    let cert = ReloadingCert::new(files.clone()).unwrap();
    let first_expiry = cert.not_after();
    assert!(!cert.reload_if_changed().unwrap(), "nothing changed yet");

    write_pair(dir.path(), &make_leaf(&ca, "vttiro two", 2, (2050, 6, 1)));
    assert!(cert.reload_if_changed().unwrap());
    assert!(!cert.reload_if_changed().unwrap(), "already loaded");
    let second_expiry = cert.not_after();
    assert_ne!(second_expiry, first_expiry);

    // A key from another certificate: refused, logged once, the second pair stays.
    let stranger = make_leaf(&ca, "stranger", 3, (2049, 1, 1));
    put(&files.key, &stranger.key_pem);
    let err = cert.reload_if_changed().unwrap_err();
    assert!(matches!(err, TlsError::KeyMismatch { .. }), "{err}");
    assert!(
        !cert.reload_if_changed().unwrap(),
        "a bad pair is tried once per change"
    );
    assert_eq!(cert.not_after(), second_expiry);

    // A missing file mid-rotation is a change too, and its return is picked up.
    std::fs::remove_file(&files.cert).unwrap();
    assert!(matches!(
        cert.reload_if_changed(),
        Err(TlsError::Read { .. })
    ));
    put(&files.cert, &stranger.cert_pem);
    assert!(cert.reload_if_changed().unwrap());
}

#[test]
fn load_certified_key_errors_name_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let ca = make_ca("vttiro test CA");
    let good = make_leaf(&ca, "vttiro one", 1, (2049, 1, 1));
    let files = write_pair(dir.path(), &good);
    let cert_name = files.cert.display().to_string();
    let key_name = files.key.display().to_string();
    load_certified_key(&files).unwrap();

    let missing = TlsFiles {
        cert: dir.path().join("absent.crt"),
        key: files.key.clone(),
    };
    let message = load_certified_key(&missing).unwrap_err().to_string();
    assert!(
        message.starts_with(&missing.cert.display().to_string()),
        "{message}"
    );
    assert!(message.contains("cannot read"), "{message}");

    put(&files.cert, "this is not PEM at all\n");
    let message = load_certified_key(&files).unwrap_err().to_string();
    assert!(message.starts_with(&cert_name), "{message}");
    assert!(message.contains("no certificate found"), "{message}");

    put(
        &files.cert,
        "-----BEGIN CERTIFICATE-----\n!!!!\n-----END CERTIFICATE-----\n",
    );
    let message = load_certified_key(&files).unwrap_err().to_string();
    assert!(message.starts_with(&cert_name), "{message}");

    // Well-formed PEM whose DER is not a certificate.
    put(
        &files.cert,
        "-----BEGIN CERTIFICATE-----\nbm90IGEgY2VydA==\n-----END CERTIFICATE-----\n",
    );
    let message = load_certified_key(&files).unwrap_err().to_string();
    assert!(message.starts_with(&cert_name), "{message}");
    assert!(message.contains("not valid X.509"), "{message}");

    put(&files.cert, &good.cert_pem);
    put(&files.key, "garbage\n");
    let message = load_certified_key(&files).unwrap_err().to_string();
    assert_eq!(
        message,
        format!("{key_name}: no private key found (expected PKCS#8, PKCS#1 or SEC1 PEM)")
    );

    put(
        &files.key,
        &make_leaf(&ca, "other", 2, (2049, 1, 1)).key_pem,
    );
    let message = load_certified_key(&files).unwrap_err().to_string();
    assert!(message.starts_with(&cert_name), "{message}");
    assert!(
        message.contains("certificate and key do not match"),
        "{message}"
    );
    assert!(message.contains(&key_name), "{message}");
    assert!(ReloadingCert::new(files).is_err());
}

#[test]
fn leaf_not_after_is_the_date_the_certificate_was_made_with() {
    let dir = tempfile::tempdir().unwrap();
    let ca = make_ca("vttiro test CA");
    // 2049 is encoded as UTCTime, 2051 as GeneralizedTime: both forms must parse.
    for date in [(2049, 12, 31), (2051, 2, 28)] {
        let files = write_pair(dir.path(), &make_leaf(&ca, "vttiro one", 1, date));
        let expected = rcgen::date_time_ymd(date.0, date.1, date.2).unix_timestamp();
        assert_eq!(leaf_not_after(&files).unwrap(), expected);
        assert_eq!(ReloadingCert::new(files).unwrap().not_after(), expected);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_returns_after_in_flight_requests_finish() {
    let dir = tempfile::tempdir().unwrap();
    let ca = make_ca("vttiro test CA");
    let files = write_pair(dir.path(), &make_leaf(&ca, "vttiro one", 1, (2049, 1, 1)));
    let (arrived_tx, arrived) = oneshot::channel::<()>();
    let (release, released) = oneshot::channel::<()>();
    let slot = Arc::new(std::sync::Mutex::new(Some((arrived_tx, released))));
    let app = Router::new().route(
        "/peer",
        get(move || {
            let slot = Arc::clone(&slot);
            async move {
                let (arrived_tx, released) = slot.lock().unwrap().take().unwrap();
                let _ = arrived_tx.send(());
                let _ = released.await;
                "ok slow"
            }
        }),
    );
    let mut server = Server::start(
        app,
        ReloadingCert::new(files).unwrap(),
        Duration::from_millis(100),
    )
    .await;

    let addr = server.addr;
    let ca_der = ca.der.clone();
    let request = tokio::spawn(async move { get_peer(addr, &ca_der).await });
    tokio::time::timeout(LIMIT, arrived).await.unwrap().unwrap();
    let _ = server.stop.take().unwrap().send(());
    // The request is still in flight, so serve_tls must wait for it.
    assert!(
        tokio::time::timeout(Duration::from_millis(200), &mut server.done)
            .await
            .is_err(),
        "serve_tls returned with a request in flight"
    );
    release.send(()).unwrap();
    let reply = request.await.unwrap().unwrap();
    assert!(
        reply.response.starts_with("HTTP/1.1 200"),
        "{}",
        reply.response
    );
    assert!(reply.response.ends_with("ok slow"), "{}", reply.response);
    tokio::time::timeout(LIMIT, &mut server.done)
        .await
        .expect("serve_tls returns once the request is done")
        .unwrap()
        .unwrap();
    // And the port no longer serves TLS.
    assert!(get_peer(addr, &ca.der).await.is_err());
}
