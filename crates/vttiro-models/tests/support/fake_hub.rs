//! A local stand-in for the Hugging Face hub and its CDN, on 127.0.0.1 only.
//!
//! It answers like the hub: `/api/models/{repo}/revision/{rev}` lists the repository,
//! `/{repo}/resolve/{rev}/{file}` serves small git files directly and redirects LFS files
//! to a CDN path with `X-Linked-Etag` (the sha256), `X-Linked-Size` and `X-Repo-Commit`;
//! the CDN honours `Range` + `If-Range` against its own ETag. Faults can be switched on.
//! Each server handles a bounded number of connections and stops when dropped.

use std::collections::HashMap;
use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use super::sha256_hex;

const MAX_CONNECTIONS: usize = 200;

#[derive(Clone)]
pub struct FakeFile {
    pub name: String,
    pub bytes: Vec<u8>,
    pub lfs: bool,
}

impl FakeFile {
    pub fn new(name: &str, bytes: Vec<u8>, lfs: bool) -> FakeFile {
        FakeFile {
            name: name.to_owned(),
            bytes,
            lfs,
        }
    }

    pub fn sha256(&self) -> String {
        sha256_hex(&self.bytes)
    }
}

#[derive(Clone, Default)]
pub struct HubConfig {
    pub repo: String,
    pub commit: String,
    pub files: Vec<FakeFile>,
    /// How many CDN responses send only the first half of their body and then close.
    pub cut_cdn_responses: usize,
    /// Restricts the cuts to this file's CDN responses.
    pub cut_only_file: Option<String>,
    /// Serve LFS bodies with one byte flipped while announcing the true sha256.
    pub corrupt_cdn: bool,
    /// Where LFS redirects point: another server's base URL, else this server's `/cdn`.
    pub cdn_base: Option<String>,
    /// Redirect LFS files through an extra hop on this server before the CDN.
    pub extra_hop: bool,
}

#[derive(Clone, Debug)]
pub struct RecordedRequest {
    pub path: String,
    pub headers: HashMap<String, String>,
}

impl RecordedRequest {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).map(String::as_str)
    }
}

pub struct FakeHub {
    addr: SocketAddr,
    requests: Arc<Mutex<Vec<RecordedRequest>>>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

struct State {
    config: HubConfig,
    base: String,
    cuts_left: usize,
}

impl FakeHub {
    pub fn start(config: HubConfig) -> FakeHub {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let requests = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let mut state = State {
            cuts_left: config.cut_cdn_responses,
            config,
            base: format!("http://{addr}"),
        };
        let thread = {
            let requests = Arc::clone(&requests);
            let stop = Arc::clone(&stop);
            std::thread::spawn(move || {
                for _ in 0..MAX_CONNECTIONS {
                    let Ok((stream, _)) = listener.accept() else {
                        return;
                    };
                    if stop.load(Ordering::SeqCst) {
                        return;
                    }
                    serve_connection(stream, &mut state, &requests);
                }
            })
        };
        FakeHub {
            addr,
            requests,
            stop,
            thread: Some(thread),
        }
    }

    pub fn endpoint(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn requests(&self) -> Vec<RecordedRequest> {
        self.requests.lock().unwrap().clone()
    }

    pub fn requests_to(&self, path_part: &str) -> Vec<RecordedRequest> {
        self.requests()
            .into_iter()
            .filter(|request| request.path.contains(path_part))
            .collect()
    }
}

impl Drop for FakeHub {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        // Wakes the blocking accept so the thread sees the stop flag and ends.
        let _ = TcpStream::connect(self.addr);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// A port with nothing listening: connecting to it is refused.
pub fn closed_endpoint() -> String {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    drop(listener);
    format!("http://{addr}")
}

fn serve_connection(
    mut stream: TcpStream,
    state: &mut State,
    requests: &Mutex<Vec<RecordedRequest>>,
) {
    let _ = stream.set_read_timeout(Some(Duration::from_secs(10)));
    let Some(request) = read_request(&mut stream) else {
        return;
    };
    requests.lock().unwrap().push(request.clone());
    route(&mut stream, &request, state);
    let _ = stream.flush();
    let _ = stream.shutdown(Shutdown::Write);
}

fn read_request(stream: &mut TcpStream) -> Option<RecordedRequest> {
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        if head.len() > 64 * 1024 || stream.read(&mut byte).ok()? == 0 {
            return None;
        }
        head.push(byte[0]);
    }
    let text = String::from_utf8_lossy(&head);
    let mut lines = text.split("\r\n");
    let request_line = lines.next()?;
    let path = request_line.split_whitespace().nth(1)?.to_owned();
    let headers = lines
        .filter_map(|line| line.split_once(':'))
        .map(|(name, value)| (name.trim().to_ascii_lowercase(), value.trim().to_owned()))
        .collect();
    Some(RecordedRequest { path, headers })
}

fn route(stream: &mut TcpStream, request: &RecordedRequest, state: &mut State) {
    let path = request
        .path
        .split('?')
        .next()
        .unwrap_or_default()
        .to_owned();
    let config = &state.config;
    if let Some(rest) = path.strip_prefix("/api/models/") {
        let Some((repo, revision)) = rest.split_once("/revision/") else {
            return respond(stream, 400, &[], b"bad api path", None);
        };
        if repo != config.repo || (revision != "main" && revision != config.commit) {
            return respond(
                stream,
                404,
                &[("X-Error-Code", "RepoNotFound".into())],
                br#"{"error":"Repository not found"}"#,
                None,
            );
        }
        let siblings: Vec<serde_json::Value> = config
            .files
            .iter()
            .map(|file| serde_json::json!({ "rfilename": file.name }))
            .chain([serde_json::json!({ "rfilename": "README.md" })])
            .collect();
        let body = serde_json::json!({
            "id": config.repo,
            "sha": config.commit,
            "siblings": siblings,
        });
        return respond(stream, 200, &[], body.to_string().as_bytes(), None);
    }
    if let Some(sha) = path.strip_prefix("/cdn-hop/") {
        let target = format!("{}/cdn/{sha}", cdn_base(state));
        return respond(stream, 307, &[("Location", target)], b"", None);
    }
    if let Some(sha) = path.strip_prefix("/cdn/") {
        return serve_cdn(stream, request, state, sha.to_owned());
    }
    if let Some((repo, rest)) = path[1..].split_once("/resolve/") {
        let (revision, file_name) = rest.split_once('/').unwrap_or((rest, ""));
        let file_name = percent_decode(file_name);
        let file = config.files.iter().find(|file| file.name == file_name);
        let known_revision = revision == "main" || revision == config.commit;
        let Some(file) = file.filter(|_| repo == config.repo && known_revision) else {
            return respond(
                stream,
                404,
                &[("X-Error-Code", "EntryNotFound".into())],
                b"Entry not found",
                None,
            );
        };
        let commit = ("X-Repo-Commit", config.commit.clone());
        if file.lfs {
            let sha = file.sha256();
            let location = if config.extra_hop {
                format!("/cdn-hop/{sha}")
            } else {
                format!("{}/cdn/{sha}", cdn_base(state))
            };
            return respond(
                stream,
                302,
                &[
                    ("Location", location),
                    ("X-Linked-Etag", format!("\"{sha}\"")),
                    ("X-Linked-Size", file.bytes.len().to_string()),
                    ("ETag", format!("\"{sha}\"")),
                    commit,
                ],
                b"",
                None,
            );
        }
        let git_oid = &sha256_hex(&file.bytes)[..40];
        let body = file.bytes.clone();
        return respond(
            stream,
            200,
            &[("ETag", format!("\"{git_oid}\"")), commit],
            &body,
            None,
        );
    }
    respond(stream, 404, &[], b"no such route", None);
}

/// Request paths arrive percent-encoded, as the hub receives them.
fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut index = 0;
    while index < bytes.len() {
        let hex = bytes
            .get(index + 1..index + 3)
            .and_then(|hex| std::str::from_utf8(hex).ok())
            .and_then(|hex| u8::from_str_radix(hex, 16).ok());
        match (bytes[index], hex) {
            (b'%', Some(byte)) => {
                out.push(byte);
                index += 3;
            }
            (byte, _) => {
                out.push(byte);
                index += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn cdn_base(state: &State) -> String {
    state
        .config
        .cdn_base
        .clone()
        .unwrap_or_else(|| state.base.clone())
}

fn serve_cdn(stream: &mut TcpStream, request: &RecordedRequest, state: &mut State, sha: String) {
    let Some(file) = state.config.files.iter().find(|file| file.sha256() == sha) else {
        return respond(stream, 404, &[], b"no such object", None);
    };
    let file = file.clone();
    let mut bytes = file.bytes.clone();
    if state.config.corrupt_cdn {
        let middle = bytes.len() / 2;
        bytes[middle] ^= 0x5a;
    }
    let etag = format!("\"cdn-{}\"", &sha[..16]);
    let validator_matches = request.header("if-range").is_none_or(|value| value == etag);
    let range_start = request
        .header("range")
        .and_then(|value| value.strip_prefix("bytes="))
        .and_then(|value| value.strip_suffix('-'))
        .and_then(|value| value.parse::<usize>().ok())
        .filter(|_| validator_matches);
    let cut_applies = state
        .config
        .cut_only_file
        .as_ref()
        .is_none_or(|name| *name == file.name);
    let cut = if cut_applies && state.cuts_left > 0 {
        state.cuts_left -= 1;
        true
    } else {
        false
    };
    let total = bytes.len();
    match range_start {
        Some(start) if start >= total => respond(
            stream,
            416,
            &[("Content-Range", format!("bytes */{total}"))],
            b"",
            None,
        ),
        Some(start) => {
            let body = &bytes[start..];
            respond(
                stream,
                206,
                &[
                    ("ETag", etag),
                    (
                        "Content-Range",
                        format!("bytes {start}-{}/{total}", total - 1),
                    ),
                ],
                body,
                cut.then_some(body.len() / 2),
            )
        }
        None => respond(
            stream,
            200,
            &[("ETag", etag), ("Accept-Ranges", "bytes".into())],
            &bytes,
            cut.then_some(total / 2),
        ),
    }
}

/// Writes a response; with `cut_at`, the headers promise the whole body but the
/// connection closes after `cut_at` bytes of it.
fn respond(
    stream: &mut TcpStream,
    status: u16,
    headers: &[(&str, String)],
    body: &[u8],
    cut_at: Option<usize>,
) {
    let reason = match status {
        200 => "OK",
        206 => "Partial Content",
        302 => "Found",
        307 => "Temporary Redirect",
        404 => "Not Found",
        416 => "Range Not Satisfiable",
        _ => "Other",
    };
    let mut head = format!("HTTP/1.1 {status} {reason}\r\n");
    for (name, value) in headers {
        head.push_str(&format!("{name}: {value}\r\n"));
    }
    head.push_str(&format!(
        "Content-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    ));
    let sent = cut_at.unwrap_or(body.len());
    let _ = stream
        .write_all(head.as_bytes())
        .and_then(|()| stream.write_all(&body[..sent]));
}
