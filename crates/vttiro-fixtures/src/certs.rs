//! Test certificates made with the `openssl` command (installed by `scripts/deps.sh`): a
//! CA and a server certificate it signed, for `localhost` and `127.0.0.1`, so TLS tests
//! check real handshakes against a client trusting only that CA.

use std::path::{Path, PathBuf};
use std::process::Command;

/// The files [`test_certificates`] wrote.
pub struct TestCertificates {
    pub ca: PathBuf,
    pub server_cert: PathBuf,
    pub server_key: PathBuf,
}

fn openssl(dir: &Path, args: &[&str]) {
    let output = Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .output()
        .expect("openssl is installed by scripts/deps.sh");
    assert!(
        output.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
}

/// Writes `<name>-ca.pem` and `<name>-server.{pem,key}` (P-256, valid two days) into `dir`.
pub fn test_certificates(dir: &Path, name: &str) -> TestCertificates {
    let ca_key = format!("{name}-ca.key");
    let ca = format!("{name}-ca.pem");
    let server_key = format!("{name}-server.key");
    let server_cert = format!("{name}-server.pem");
    let csr = format!("{name}-server.csr");
    let extensions = format!("{name}-san.ext");
    let new_key = [
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:P-256",
        "-nodes",
    ];
    let subject = format!("/CN={name} test CA");
    let mut ca_args = vec!["req", "-x509"];
    ca_args.extend(new_key);
    ca_args.extend([
        "-keyout", &ca_key, "-out", &ca, "-days", "2", "-subj", &subject,
    ]);
    openssl(dir, &ca_args);
    let mut csr_args = vec!["req"];
    csr_args.extend(new_key);
    csr_args.extend([
        "-keyout",
        &server_key,
        "-out",
        &csr,
        "-subj",
        "/CN=localhost",
    ]);
    openssl(dir, &csr_args);
    std::fs::write(
        dir.join(&extensions),
        "subjectAltName=DNS:localhost,IP:127.0.0.1\n",
    )
    .unwrap();
    openssl(
        dir,
        &[
            "x509",
            "-req",
            "-in",
            &csr,
            "-CA",
            &ca,
            "-CAkey",
            &ca_key,
            "-CAcreateserial",
            "-out",
            &server_cert,
            "-days",
            "2",
            "-extfile",
            &extensions,
        ],
    );
    TestCertificates {
        ca: dir.join(ca),
        server_cert: dir.join(server_cert),
        server_key: dir.join(server_key),
    }
}
