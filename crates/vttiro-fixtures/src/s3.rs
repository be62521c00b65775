//! A real S3-compatible server for tests: `moto_server` (PyPI `moto[server]`, pinned in
//! [`MOTO`] and installed into a cached venv), one private process per [`S3Server`], bound to 127.0.0.1 on a free
//! port and killed when the value drops or the test process dies. Checks here speak plain
//! S3 over HTTP (ListObjectsV2, ListMultipartUploads) so tests can see the bucket without
//! going through the code under test.

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// moto and the packages its server mode runs on, pinned.
pub const MOTO: [&str; 7] = [
    "moto[server]==5.2.1",
    "boto3==1.43.11",
    "botocore==1.43.11",
    "Flask==3.1.3",
    "flask-cors==6.0.2",
    "Werkzeug==3.1.8",
    "cryptography==48.0.0",
];

pub struct S3Server {
    pub port: u16,
    child: Child,
}

/// Credentials moto accepts (it checks none); real ones come from the environment.
const ACCESS_KEY: &str = "vttiro-test";
const SECRET_KEY: &str = "vttiro-test-secret";
const REGION: &str = "us-east-1";
/// Objects belong to the account that wrote them, and moto refuses anonymous reads of
/// them; it identifies the caller from the credential without checking the signature.
const AUTHORIZATION: &str = "AWS4-HMAC-SHA256 Credential=vttiro-test/20260101/us-east-1/s3/aws4_request, SignedHeaders=host, Signature=0";

impl S3Server {
    /// Starts a server and waits until it answers (well under a second on a quiet box).
    pub fn start() -> S3Server {
        let port = crate::free_port();
        let python = crate::python_venv("moto-venv", &MOTO);
        let child = Command::new("setpriv")
            .args(["--pdeathsig", "KILL", "--"])
            .arg(python)
            .args(["-m", "moto.server", "-H", "127.0.0.1", "-p"])
            .arg(port.to_string())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("moto's server starts");
        let server = S3Server { port, child };
        let deadline = Instant::now() + Duration::from_secs(30);
        while ureq::get(&server.endpoint()).call().is_err() {
            assert!(
                Instant::now() < deadline,
                "moto_server did not answer on port {port}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        server
    }

    /// `http://127.0.0.1:PORT`
    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// Creates `bucket` and returns its `s3://` URL.
    pub fn bucket(&self, bucket: &str) -> String {
        ureq::put(&format!("{}/{bucket}", self.endpoint()))
            .send_empty()
            .unwrap_or_else(|e| panic!("creating bucket {bucket}: {e}"));
        format!("s3://{bucket}")
    }

    /// The environment a process needs to reach this server through `object_store`'s
    /// standard variables.
    pub fn env(&self) -> Vec<(String, String)> {
        [
            ("AWS_ENDPOINT", self.endpoint()),
            ("AWS_ACCESS_KEY_ID", ACCESS_KEY.into()),
            ("AWS_SECRET_ACCESS_KEY", SECRET_KEY.into()),
            ("AWS_REGION", REGION.into()),
            ("AWS_ALLOW_HTTP", "true".into()),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect()
    }

    /// The same settings as `object_store` configuration keys, for in-process stores.
    pub fn options(&self) -> Vec<(String, String)> {
        self.env()
            .into_iter()
            .map(|(k, v)| (k.to_ascii_lowercase(), v))
            .collect()
    }

    /// Every key in `bucket`, sorted (ListObjectsV2, all pages).
    pub fn keys(&self, bucket: &str) -> Vec<String> {
        let mut keys = Vec::new();
        let mut token: Option<String> = None;
        loop {
            let mut request = ureq::get(&format!("{}/{bucket}", self.endpoint()))
                .query("list-type", "2")
                .header("Authorization", AUTHORIZATION);
            if let Some(token) = &token {
                // ureq percent-encodes query values.
                request = request.query("continuation-token", token);
            }
            let body = request
                .call()
                .unwrap_or_else(|e| panic!("listing {bucket}: {e}"))
                .into_body()
                .read_to_string()
                .unwrap();
            keys.extend(elements(&body, "Key"));
            token = elements(&body, "NextContinuationToken").into_iter().next();
            if token.is_none() {
                break;
            }
        }
        keys.sort();
        keys
    }

    /// The multipart uploads started in `bucket` and neither completed nor aborted.
    pub fn pending_uploads(&self, bucket: &str) -> usize {
        let body = self.get(&format!("{}/{bucket}?uploads", self.endpoint()));
        elements(&body, "UploadId").len()
    }

    /// One object's bytes as stored (ciphertext when the store seals).
    pub fn object(&self, bucket: &str, key: &str) -> Vec<u8> {
        let mut response = ureq::get(&format!("{}/{bucket}/{key}", self.endpoint()))
            .header("Authorization", AUTHORIZATION)
            .config()
            .http_status_as_error(false)
            .build()
            .call()
            .unwrap_or_else(|e| panic!("GET {bucket}/{key}: {e}"));
        let status = response.status();
        let body = response
            .body_mut()
            .with_config()
            .limit(u64::MAX)
            .read_to_vec()
            .unwrap();
        assert_eq!(
            status,
            200,
            "GET {bucket}/{key}: {}",
            String::from_utf8_lossy(&body)
        );
        body
    }

    fn get(&self, url: &str) -> String {
        ureq::get(url)
            .header("Authorization", AUTHORIZATION)
            .call()
            .unwrap_or_else(|e| panic!("GET {url}: {e}"))
            .into_body()
            .read_to_string()
            .unwrap()
    }
}

impl Drop for S3Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The text of every `<name>…</name>` in `xml` (S3 listings are flat enough for this).
fn elements(xml: &str, name: &str) -> Vec<String> {
    let (open, close) = (format!("<{name}>"), format!("</{name}>"));
    xml.split(&open)
        .skip(1)
        .filter_map(|rest| rest.split_once(&close).map(|(text, _)| text.to_string()))
        .collect()
}
