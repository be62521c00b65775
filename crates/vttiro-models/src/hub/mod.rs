//! Hugging Face hub client: repository listing and resumable, verified file downloads over
//! a blocking HTTP client. It speaks the hub's public protocol (`/api/models/...` and
//! `/resolve/...` with `X-Linked-Etag`/`X-Linked-Size`), so any mirror that implements it
//! works through `HF_ENDPOINT`.

mod location;
mod transfer;

use std::path::Path;
use std::time::Duration;

use serde::Deserialize;
use ureq::http::{Response, StatusCode};
use ureq::Body;
use vttiro_core::CancelToken;

use crate::error::ModelError;
use crate::registry::FileRule;
pub use transfer::DownloadProgress;
pub(crate) use transfer::FetchedFile;

pub const DEFAULT_ENDPOINT: &str = "https://huggingface.co";
const MAX_REDIRECTS: usize = 10;
const API_BODY_LIMIT: u64 = 16 * 1024 * 1024;

/// A hub repository at one commit: the commit id and every file path in it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RepoInfo {
    pub commit: String,
    pub files: Vec<String>,
}

#[derive(Deserialize)]
struct ApiRevision {
    sha: String,
    #[serde(default)]
    siblings: Vec<ApiSibling>,
}

#[derive(Deserialize)]
struct ApiSibling {
    rfilename: String,
}

/// Which files of which repository, at which revision, a download takes.
#[derive(Debug, Clone, Copy)]
pub(crate) struct RepoFiles<'a> {
    pub repo: &'a str,
    pub revision: &'a str,
    pub rules: &'static [FileRule],
}

#[derive(Clone)]
pub struct HubClient {
    agent: ureq::Agent,
    endpoint: String,
    token: Option<String>,
    max_attempts: u32,
    retry_backoff: Duration,
}

impl std::fmt::Debug for HubClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The token is a credential: never let it reach logs through Debug.
        f.debug_struct("HubClient")
            .field("endpoint", &self.endpoint)
            .field("token", &self.token.as_ref().map(|_| "<set>"))
            .field("max_attempts", &self.max_attempts)
            .field("retry_backoff", &self.retry_backoff)
            .finish()
    }
}

impl HubClient {
    /// A client for `endpoint` (e.g. `https://huggingface.co`), sending `token` as a bearer
    /// credential to that origin only. Certificates are checked against the system store so
    /// that corporate CAs configured in /etc/ssl/certs are honoured.
    pub fn new(endpoint: impl Into<String>, token: Option<String>) -> HubClient {
        let tls = ureq::tls::TlsConfig::builder()
            .root_certs(ureq::tls::RootCerts::PlatformVerifier)
            .build();
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .tls_config(tls)
            .http_status_as_error(false)
            // Redirects are followed by hand: the hub's hop carries the LFS sha256 and size,
            // and credentials must not travel to the CDN.
            .max_redirects(0)
            .timeout_connect(Some(Duration::from_secs(30)))
            .timeout_recv_response(Some(Duration::from_secs(60)))
            .timeout_per_read(Some(Duration::from_secs(60)))
            .user_agent(format!("vttiro/{}", env!("CARGO_PKG_VERSION")))
            .build()
            .into();
        HubClient {
            agent,
            endpoint: endpoint.into().trim_end_matches('/').to_owned(),
            token: token.filter(|token| !token.is_empty()),
            max_attempts: 5,
            retry_backoff: Duration::from_secs(1),
        }
    }

    /// `HF_ENDPOINT` (default [`DEFAULT_ENDPOINT`]) and `HF_TOKEN` (or the older
    /// `HUGGING_FACE_HUB_TOKEN`) from the process environment.
    pub fn from_env() -> HubClient {
        HubClient::from_lookup(|key| std::env::var(key).ok())
    }

    /// [`HubClient::from_env`] with the variables supplied by `lookup`.
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> HubClient {
        let endpoint = lookup("HF_ENDPOINT")
            .filter(|value| !value.trim().is_empty())
            .unwrap_or_else(|| DEFAULT_ENDPOINT.to_owned());
        let token = lookup("HF_TOKEN").or_else(|| lookup("HUGGING_FACE_HUB_TOKEN"));
        HubClient::new(endpoint, token)
    }

    /// How often one file is requested before giving up, and the pause between tries
    /// (multiplied by the try number). Interrupted transfers resume where they stopped.
    pub fn with_retries(mut self, max_attempts: u32, retry_backoff: Duration) -> HubClient {
        self.max_attempts = max_attempts.max(1);
        self.retry_backoff = retry_backoff;
        self
    }

    pub fn endpoint(&self) -> &str {
        &self.endpoint
    }

    pub fn has_token(&self) -> bool {
        self.token.is_some()
    }

    /// The commit `revision` points to and the files of the repository at that commit.
    pub fn repo_info(&self, repo: &str, revision: &str) -> Result<RepoInfo, ModelError> {
        let url = format!("{}/api/models/{repo}/revision/{revision}", self.endpoint);
        let (final_url, response) = self
            .get_following_redirects(&url, &[], &mut |_| {})
            .map_err(|failure| match failure {
                FollowFailure::Transport { url, reason } => {
                    ModelError::HubUnreachable { url, reason }
                }
                FollowFailure::Redirect(reason) => ModelError::DownloadFailed {
                    url: url.clone(),
                    reason,
                },
            })?;
        let status = response.status();
        if status.is_server_error() {
            return Err(ModelError::HubUnreachable {
                url: final_url,
                reason: format!("HTTP {}", status.as_u16()),
            });
        }
        if status != StatusCode::OK {
            return Err(ModelError::DownloadFailed {
                url: final_url,
                reason: repo_status_reason(repo, revision, status),
            });
        }
        let text = response
            .into_body()
            .into_with_config()
            .limit(API_BODY_LIMIT)
            .read_to_string()
            .map_err(|error| ModelError::HubUnreachable {
                url: final_url.clone(),
                reason: format!("reading the answer failed: {error}"),
            })?;
        let answer: ApiRevision =
            serde_json::from_str(&text).map_err(|error| ModelError::DownloadFailed {
                url: final_url.clone(),
                reason: format!("unexpected answer for repository {repo}: {error}"),
            })?;
        Ok(RepoInfo {
            commit: answer.sha,
            files: answer
                .siblings
                .into_iter()
                .map(|sibling| sibling.rfilename)
                .collect(),
        })
    }

    /// Downloads the files `wanted.rules` select from `wanted.repo` at `wanted.revision`
    /// into `partial_dir` (as `<file>.part`, resumable across calls), verifying each against
    /// the hub's size and sha256. Files are resolved at the commit the revision pointed to
    /// when listed, so a branch moving mid-download cannot mix two versions. Once `cancel`
    /// is set it stops at the next read, keeping the part.
    pub(crate) fn download_files(
        &self,
        model: &str,
        wanted: RepoFiles<'_>,
        partial_dir: &Path,
        cancel: &CancelToken,
        progress: &mut dyn FnMut(DownloadProgress<'_>),
    ) -> Result<(RepoInfo, Vec<FetchedFile>), ModelError> {
        let RepoFiles {
            repo,
            revision,
            rules,
        } = wanted;
        ModelError::check_cancel(cancel, model)?;
        let info = self.repo_info(repo, revision)?;
        let wanted =
            select_files(&info.files, rules).map_err(|missing| ModelError::DownloadFailed {
                url: format!("{}/{repo}", self.endpoint),
                reason: format!(
                    "repository {repo} at {} lacks {missing}",
                    short_commit(&info.commit)
                ),
            })?;
        std::fs::create_dir_all(partial_dir)
            .map_err(ModelError::io("create download dir", partial_dir))?;
        let mut fetched = Vec::with_capacity(wanted.len());
        for file in wanted {
            let url = format!(
                "{}/{repo}/resolve/{}/{}",
                self.endpoint,
                info.commit,
                encode_path(file)
            );
            fetched.push(transfer::fetch_file(
                self,
                model,
                file,
                &url,
                partial_dir,
                cancel,
                progress,
            )?);
        }
        Ok((info, fetched))
    }

    /// GET `url`, following up to [`MAX_REDIRECTS`] redirects by hand. `observe` sees every
    /// response, including the redirects, because the hub puts file metadata on those.
    fn get_following_redirects(
        &self,
        url: &str,
        headers: &[(&str, &str)],
        observe: &mut dyn FnMut(&Response<Body>),
    ) -> Result<(String, Response<Body>), FollowFailure> {
        let endpoint_origin = location::origin(&self.endpoint);
        let mut current = url.to_owned();
        for _ in 0..=MAX_REDIRECTS {
            let mut request = self
                .agent
                .get(&current)
                .header("Accept-Encoding", "identity");
            for (name, value) in headers {
                request = request.header(*name, *value);
            }
            if let Some(token) = &self.token {
                if location::origin(&current) == endpoint_origin {
                    request = request.header("Authorization", format!("Bearer {token}"));
                }
            }
            let response = request.call().map_err(|error| FollowFailure::Transport {
                url: current.clone(),
                reason: error.to_string(),
            })?;
            observe(&response);
            if !response.status().is_redirection() {
                return Ok((current, response));
            }
            let target = response
                .headers()
                .get("location")
                .and_then(|value| value.to_str().ok())
                .ok_or_else(|| {
                    FollowFailure::Redirect(format!(
                        "HTTP {} from {current} without a Location header",
                        response.status().as_u16()
                    ))
                })?;
            current = location::join_location(&current, target).map_err(FollowFailure::Redirect)?;
        }
        Err(FollowFailure::Redirect(format!(
            "more than {MAX_REDIRECTS} redirects starting at {url}"
        )))
    }
}

enum FollowFailure {
    /// No HTTP answer at all: refused, reset, DNS, TLS or timeout.
    Transport {
        url: String,
        reason: String,
    },
    Redirect(String),
}

fn repo_status_reason(repo: &str, revision: &str, status: StatusCode) -> String {
    match status.as_u16() {
        // The hub answers 401 rather than 404 for repositories it will not reveal.
        401 | 403 => format!(
            "repository {repo} at revision {revision} not found or access denied (HTTP {}); set HF_TOKEN for gated or private repositories",
            status.as_u16()
        ),
        404 => format!("repository {repo} at revision {revision} not found (HTTP 404)"),
        code => format!("repository {repo} at revision {revision}: unexpected HTTP {code}"),
    }
}

/// The file names `rules` pick from a repository listing, or the name of what is missing.
fn select_files(
    listing: &[String],
    rules: &'static [FileRule],
) -> Result<Vec<&'static str>, String> {
    let present = |name: &str| listing.iter().any(|file| file == name);
    let mut selected = Vec::new();
    for rule in rules {
        match rule {
            FileRule::Required(name) if present(name) => selected.push(*name),
            FileRule::Required(name) => return Err((*name).to_owned()),
            FileRule::OneOf(names) => match names.iter().find(|name| present(name)) {
                Some(name) => selected.push(*name),
                None => return Err(names.join(" or ")),
            },
            FileRule::Optional(name) if present(name) => selected.push(*name),
            FileRule::Optional(_) => {}
        }
    }
    Ok(selected)
}

/// Percent-encodes a repository file path for a URL, keeping `/` between its segments.
/// Names such as `voxceleb_CAM++.onnx` need it: a literal `+` may be read as a space.
fn encode_path(path: &str) -> String {
    let mut encoded = String::with_capacity(path.len());
    for byte in path.bytes() {
        if byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'.' | b'_' | b'~' | b'/') {
            encoded.push(byte as char);
        } else {
            encoded.push_str(&format!("%{byte:02X}"));
        }
    }
    encoded
}

fn short_commit(commit: &str) -> &str {
    commit.get(..12).unwrap_or(commit)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::registry::CT2_WHISPER_FILES;

    #[test]
    fn selection_takes_required_first_vocabulary_and_present_optionals() {
        let listing: Vec<String> = [
            ".gitattributes",
            "README.md",
            "config.json",
            "model.bin",
            "tokenizer.json",
            "vocabulary.txt",
            "preprocessor_config.json",
        ]
        .map(String::from)
        .to_vec();
        assert_eq!(
            select_files(&listing, CT2_WHISPER_FILES).unwrap(),
            [
                "config.json",
                "model.bin",
                "tokenizer.json",
                "vocabulary.txt",
                "preprocessor_config.json"
            ]
        );
        let without_weights: Vec<String> = listing
            .into_iter()
            .filter(|file| file != "model.bin")
            .collect();
        assert_eq!(
            select_files(&without_weights, CT2_WHISPER_FILES).unwrap_err(),
            "model.bin"
        );
    }

    #[test]
    fn file_paths_are_percent_encoded_except_separators() {
        assert_eq!(encode_path("config.json"), "config.json");
        assert_eq!(
            encode_path("voxceleb_CAM++.onnx"),
            "voxceleb_CAM%2B%2B.onnx"
        );
        assert_eq!(encode_path("sub dir/ä.bin"), "sub%20dir/%C3%A4.bin");
    }

    #[test]
    fn environment_picks_endpoint_and_token() {
        let client = HubClient::from_lookup(|key| match key {
            "HF_ENDPOINT" => Some("http://mirror.local:8080/".into()),
            "HUGGING_FACE_HUB_TOKEN" => Some("hf_x".into()),
            _ => None,
        });
        assert_eq!(client.endpoint(), "http://mirror.local:8080");
        assert!(client.has_token());
        assert!(!format!("{client:?}").contains("hf_x"));
        let default = HubClient::from_lookup(|_| None);
        assert_eq!(default.endpoint(), DEFAULT_ENDPOINT);
        assert!(!default.has_token());
    }
}
