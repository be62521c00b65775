//! One file from the hub into `<partial>/<file>.part`, resuming after interruptions.
//!
//! Beside each part lives `<file>.part.json` with the validator the serving host gave
//! (its ETag, for `If-Range`) and what the hub promised (sha256 and size). A later attempt,
//! in this process or the next, asks for `Range: bytes=<len>-` with that validator; a host
//! that no longer has the same object answers 200 and the part restarts from zero.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use ureq::http::{HeaderMap, Response};
use ureq::Body;
use vttiro_core::CancelToken;

use super::{FollowFailure, HubClient};
use crate::digest::{self, is_sha256_hex};
use crate::error::ModelError;

/// Progress of one file; `downloaded` counts bytes already on disk, including those kept
/// from an earlier interrupted attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DownloadProgress<'a> {
    pub model: &'a str,
    pub file: &'a str,
    pub downloaded: u64,
    pub total: Option<u64>,
}

/// A fully downloaded and verified file, still in the partial directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct FetchedFile {
    pub name: &'static str,
    pub path: PathBuf,
    pub size: u64,
    pub sha256: String,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
struct PartState {
    /// Strong ETag or Last-Modified of the host that served the bytes.
    validator: Option<String>,
    /// From the hub's `X-Linked-Etag`; only LFS files have one.
    expected_sha256: Option<String>,
    expected_size: Option<u64>,
}

/// Why one attempt ended without the whole file.
enum AttemptFailure {
    /// Worth another try, resuming from what is on disk.
    Retry(String),
    Fatal(ModelError),
}

struct Part<'a> {
    path: PathBuf,
    state_path: PathBuf,
    url: &'a str,
    model: &'a str,
    file: &'static str,
    cancel: &'a CancelToken,
}

pub(super) fn fetch_file(
    client: &HubClient,
    model: &str,
    file: &'static str,
    url: &str,
    partial_dir: &Path,
    cancel: &CancelToken,
    progress: &mut dyn FnMut(DownloadProgress<'_>),
) -> Result<FetchedFile, ModelError> {
    let part = Part {
        path: partial_dir.join(format!("{file}.part")),
        state_path: partial_dir.join(format!("{file}.part.json")),
        url,
        model,
        file,
        cancel,
    };
    let mut state = part.load_state()?;
    let mut last_reason = String::new();
    for attempt in 1..=client.max_attempts {
        ModelError::check_cancel(cancel, model)?;
        match attempt_once(client, &part, &mut state, progress) {
            Ok(()) => return part.verify(&state),
            Err(AttemptFailure::Fatal(error)) => return Err(error),
            Err(AttemptFailure::Retry(reason)) => {
                last_reason = reason;
                if attempt < client.max_attempts {
                    cancel.sleep(client.retry_backoff * attempt);
                }
            }
        }
    }
    Err(ModelError::DownloadFailed {
        url: url.to_owned(),
        reason: format!(
            "gave up on {file} after {} attempts: {last_reason}",
            client.max_attempts
        ),
    })
}

fn attempt_once(
    client: &HubClient,
    part: &Part<'_>,
    state: &mut PartState,
    progress: &mut dyn FnMut(DownloadProgress<'_>),
) -> Result<(), AttemptFailure> {
    let on_disk = part.len().map_err(AttemptFailure::Fatal)?;
    let resume_from = match (&state.validator, on_disk) {
        (Some(validator), len) if len > 0 => Some((len, validator.clone())),
        _ => None,
    };
    let range_header = resume_from.as_ref().map(|(len, _)| format!("bytes={len}-"));
    let mut headers: Vec<(&str, &str)> = Vec::new();
    if let (Some(range), Some((_, validator))) = (&range_header, &resume_from) {
        headers.push(("Range", range));
        headers.push(("If-Range", validator));
    }

    let mut announced = HubFileMeta::default();
    let (final_url, response) = client
        .get_following_redirects(part.url, &headers, &mut |response| {
            announced.absorb(response.headers())
        })
        .map_err(|failure| match failure {
            FollowFailure::Transport { url, reason } => {
                AttemptFailure::Retry(format!("request to {url} failed: {reason}"))
            }
            FollowFailure::Redirect(reason) => AttemptFailure::Fatal(ModelError::DownloadFailed {
                url: part.url.to_owned(),
                reason,
            }),
        })?;

    // The hub now names different content than the bytes already on disk belong to.
    let upstream_changed = matches!(
        (&state.expected_sha256, &announced.sha256),
        (Some(before), Some(now)) if before != now
    );
    if announced.sha256.is_some() {
        state.expected_sha256 = announced.sha256.clone();
    }
    if announced.size.is_some() {
        state.expected_size = announced.size;
    }

    let status = response.status();
    match status.as_u16() {
        200 => {
            // A whole-file answer starts a fresh part: nothing remembered from an earlier
            // attempt may describe it, only what this exchange announced.
            let total = announced.size.or(content_length(response.headers()));
            *state = PartState {
                validator: strong_validator(response.headers()),
                expected_sha256: announced.sha256.clone(),
                expected_size: total,
            };
            part.save_state(state).map_err(AttemptFailure::Fatal)?;
            let file = part.open(false).map_err(AttemptFailure::Fatal)?;
            part.receive(response, file, 0, total, progress)
        }
        206 if resume_from.is_some() && upstream_changed => {
            part.discard().map_err(AttemptFailure::Fatal)?;
            state.validator = None;
            Err(AttemptFailure::Retry(format!(
                "{} changed upstream; restarting it",
                part.file
            )))
        }
        206 if resume_from.is_some() => {
            let Some((start, total)) = content_range(response.headers()) else {
                return Err(AttemptFailure::Retry(format!(
                    "HTTP 206 from {final_url} without a usable Content-Range"
                )));
            };
            if start != on_disk {
                part.discard().map_err(AttemptFailure::Fatal)?;
                state.validator = None;
                return Err(AttemptFailure::Retry(format!(
                    "{final_url} resumed at byte {start} instead of {on_disk}"
                )));
            }
            if state.expected_size.is_none() {
                state.expected_size = total;
            }
            part.save_state(state).map_err(AttemptFailure::Fatal)?;
            let file = part.open(true).map_err(AttemptFailure::Fatal)?;
            part.receive(response, file, on_disk, state.expected_size, progress)
        }
        416 if resume_from.is_some() => {
            // Asking past the end: either the part is already whole or it is stale.
            let total = unsatisfied_range_total(response.headers()).or(state.expected_size);
            if total == Some(on_disk) && !upstream_changed {
                return Ok(());
            }
            part.discard().map_err(AttemptFailure::Fatal)?;
            state.validator = None;
            Err(AttemptFailure::Retry(format!(
                "{final_url} rejected the resume range at byte {on_disk}"
            )))
        }
        401 | 403 => Err(AttemptFailure::Fatal(ModelError::DownloadFailed {
            url: final_url,
            reason: format!(
                "access to {} denied (HTTP {}); set HF_TOKEN for gated or private repositories",
                part.file,
                status.as_u16()
            ),
        })),
        404 => Err(AttemptFailure::Fatal(ModelError::DownloadFailed {
            url: final_url,
            reason: format!("{} not found (HTTP 404)", part.file),
        })),
        408 | 429 | 500..=599 => Err(AttemptFailure::Retry(format!(
            "HTTP {} from {final_url}",
            status.as_u16()
        ))),
        code => Err(AttemptFailure::Fatal(ModelError::DownloadFailed {
            url: final_url,
            reason: format!("unexpected HTTP {code} for {}", part.file),
        })),
    }
}

impl Part<'_> {
    fn load_state(&self) -> Result<PartState, ModelError> {
        let saved = fs::read(&self.state_path)
            .ok()
            .and_then(|bytes| serde_json::from_slice::<PartState>(&bytes).ok());
        match saved {
            Some(state) => Ok(state),
            None => {
                // Bytes whose origin is unknown cannot be resumed safely.
                self.discard()?;
                Ok(PartState::default())
            }
        }
    }

    fn save_state(&self, state: &PartState) -> Result<(), ModelError> {
        let json = serde_json::to_vec(state).map_err(|error| ModelError::Io {
            action: "encode download state",
            path: self.state_path.clone(),
            source: io::Error::other(error),
        })?;
        fs::write(&self.state_path, json).map_err(ModelError::io("write", &self.state_path))
    }

    fn len(&self) -> Result<u64, ModelError> {
        match fs::metadata(&self.path) {
            Ok(meta) => Ok(meta.len()),
            Err(error) if error.kind() == io::ErrorKind::NotFound => Ok(0),
            Err(error) => Err(ModelError::io("inspect", &self.path)(error)),
        }
    }

    fn open(&self, append: bool) -> Result<File, ModelError> {
        let mut options = OpenOptions::new();
        options.create(true);
        if append {
            options.append(true);
        } else {
            options.write(true).truncate(true);
        }
        options
            .open(&self.path)
            .map_err(ModelError::io("open", &self.path))
    }

    fn discard(&self) -> Result<(), ModelError> {
        for path in [&self.path, &self.state_path] {
            match fs::remove_file(path) {
                Ok(()) => {}
                Err(error) if error.kind() == io::ErrorKind::NotFound => {}
                Err(error) => return Err(ModelError::io("remove", path)(error)),
            }
        }
        Ok(())
    }

    /// Streams the body onto the end of `file`, which already holds `already` bytes.
    fn receive(
        &self,
        response: Response<Body>,
        mut file: File,
        already: u64,
        total: Option<u64>,
        progress: &mut dyn FnMut(DownloadProgress<'_>),
    ) -> Result<(), AttemptFailure> {
        progress(DownloadProgress {
            model: self.model,
            file: self.file,
            downloaded: already,
            total,
        });
        let mut reader = response.into_body().into_reader();
        // Not hashed here: a resumed part is hashed whole once it is complete.
        let copied = digest::copy_hashing(
            &mut reader,
            &mut file,
            None,
            Some(self.cancel),
            &mut |received| {
                progress(DownloadProgress {
                    model: self.model,
                    file: self.file,
                    downloaded: already + received,
                    total,
                })
            },
        );
        // Whatever arrived is kept for the next attempt, so it must reach the disk.
        let flushed = file.flush().and_then(|()| file.sync_all());
        match copied {
            // What arrived stays in the part (flushed above), so the next pull resumes.
            Err(error) if digest::is_cancelled(&error) => {
                return Err(AttemptFailure::Fatal(ModelError::cancelled(self.model)))
            }
            Err(error) if is_write_failure(&error) => {
                return Err(AttemptFailure::Fatal(ModelError::io("write", &self.path)(
                    error,
                )))
            }
            Err(error) => {
                return Err(AttemptFailure::Retry(format!(
                    "connection to {} lost during {}: {error}",
                    self.url, self.file
                )))
            }
            Ok(_) => {}
        }
        flushed
            .map_err(|error| AttemptFailure::Fatal(ModelError::io("write", &self.path)(error)))?;
        let on_disk = self.len().map_err(AttemptFailure::Fatal)?;
        match total {
            Some(total) if on_disk < total => Err(AttemptFailure::Retry(format!(
                "connection closed after {on_disk} of {total} bytes of {}",
                self.file
            ))),
            _ => Ok(()),
        }
    }

    /// Checks the finished part against the hub's promise; a part that fails is deleted so
    /// the next pull starts that file afresh.
    fn verify(&self, state: &PartState) -> Result<FetchedFile, ModelError> {
        let (size, sha256) = digest::sha256_file(&self.path)?;
        let subject = || format!("{} of model {} (from {})", self.file, self.model, self.url);
        if let Some(expected) = state.expected_size {
            if size != expected {
                self.discard()?;
                return Err(ModelError::SizeMismatch {
                    subject: subject(),
                    expected,
                    actual: size,
                });
            }
        }
        if let Some(expected) = &state.expected_sha256 {
            if *expected != sha256 {
                self.discard()?;
                return Err(ModelError::ChecksumMismatch {
                    subject: subject(),
                    expected: expected.clone(),
                    actual: sha256,
                });
            }
        }
        Ok(FetchedFile {
            name: self.file,
            path: self.path.clone(),
            size,
            sha256,
        })
    }
}

/// Errors from our side of the copy (the part file) rather than the network.
fn is_write_failure(error: &io::Error) -> bool {
    matches!(
        error.kind(),
        io::ErrorKind::StorageFull
            | io::ErrorKind::PermissionDenied
            | io::ErrorKind::ReadOnlyFilesystem
    )
}

/// What the hub announces about an LFS file on the response that redirects to the CDN.
#[derive(Default)]
struct HubFileMeta {
    sha256: Option<String>,
    size: Option<u64>,
}

impl HubFileMeta {
    fn absorb(&mut self, headers: &HeaderMap) {
        if let Some(etag) = header_str(headers, "x-linked-etag") {
            let bare = etag
                .trim_start_matches("W/")
                .trim_matches('"')
                .to_ascii_lowercase();
            if is_sha256_hex(&bare) {
                self.sha256 = Some(bare);
            }
        }
        if let Some(size) = header_str(headers, "x-linked-size").and_then(|v| v.trim().parse().ok())
        {
            self.size = Some(size);
        }
    }
}

fn header_str<'h>(headers: &'h HeaderMap, name: &str) -> Option<&'h str> {
    headers.get(name).and_then(|value| value.to_str().ok())
}

fn content_length(headers: &HeaderMap) -> Option<u64> {
    header_str(headers, "content-length").and_then(|value| value.trim().parse().ok())
}

/// A validator usable in `If-Range`: a strong ETag, else Last-Modified (weak ETags are not
/// allowed there).
fn strong_validator(headers: &HeaderMap) -> Option<String> {
    match header_str(headers, "etag") {
        Some(etag) if !etag.starts_with("W/") => Some(etag.to_owned()),
        _ => header_str(headers, "last-modified").map(str::to_owned),
    }
}

/// `Content-Range: bytes <start>-<end>/<total|*>` as (start, total).
fn content_range(headers: &HeaderMap) -> Option<(u64, Option<u64>)> {
    let value = header_str(headers, "content-range")?.trim();
    let spec = value.strip_prefix("bytes ")?;
    let (range, total) = spec.split_once('/')?;
    let (start, _end) = range.split_once('-')?;
    Some((start.trim().parse().ok()?, total.trim().parse().ok()))
}

/// `Content-Range: bytes */<total>` on a 416.
fn unsatisfied_range_total(headers: &HeaderMap) -> Option<u64> {
    let value = header_str(headers, "content-range")?.trim();
    value.strip_prefix("bytes */")?.trim().parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use ureq::http::HeaderValue;

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.insert(*name, HeaderValue::from_static(value));
        }
        map
    }

    #[test]
    fn range_headers_parse() {
        assert_eq!(
            content_range(&headers(&[("content-range", "bytes 100-199/200")])),
            Some((100, Some(200)))
        );
        assert_eq!(
            content_range(&headers(&[("content-range", "bytes 5-9/*")])),
            Some((5, None))
        );
        assert_eq!(
            unsatisfied_range_total(&headers(&[("content-range", "bytes */200")])),
            Some(200)
        );
    }

    #[test]
    fn weak_etags_are_not_resume_validators() {
        assert_eq!(
            strong_validator(&headers(&[("etag", "W/\"abc\""), ("last-modified", "Mon")])),
            Some("Mon".to_owned())
        );
        assert_eq!(
            strong_validator(&headers(&[("etag", "\"abc\"")])),
            Some("\"abc\"".to_owned())
        );
    }

    #[test]
    fn linked_etag_is_taken_only_when_it_is_a_sha256() {
        let sha = "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad";
        let mut meta = HubFileMeta::default();
        meta.absorb(&headers(&[("x-linked-etag", "\"0123abcd\"")]));
        assert_eq!(meta.sha256, None);
        let mut map = HeaderMap::new();
        map.insert(
            "x-linked-etag",
            HeaderValue::from_str(&format!("\"{sha}\"")).unwrap(),
        );
        map.insert("x-linked-size", HeaderValue::from_static("42"));
        meta.absorb(&map);
        assert_eq!(meta.sha256.as_deref(), Some(sha));
        assert_eq!(meta.size, Some(42));
    }
}
