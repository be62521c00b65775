//! vttiro-storage owns where the service keeps media and results, and how media gets
//! there: a local object store with streamed, size-limited, atomic writes ([`LocalStore`]);
//! content sniffing so only media is accepted ([`sniff_media`]); and fetching media URLs
//! with SSRF protection ([`fetch`]): http/https only, every address a name resolves to —
//! on every redirect hop — checked against loopback, private, link-local, metadata and
//! other internal ranges unless explicitly allowed, with size and time limits.
//!
//! It must not know about jobs, engines, subtitles or HTTP servers, and uses no async
//! runtime: callers stream into it from a blocking thread.

mod fetch;
mod local;
mod sniff;

pub use fetch::{classify_address, fetch, guarded_agent, AddressClass, FetchPolicy, Refusal};
pub use local::{LocalStore, StoredObject};
pub use sniff::{sniff_media, SNIFF_BYTES};

use vttiro_core::ErrorCode;

#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    #[error("invalid storage key {0:?}")]
    InvalidKey(String),
    #[error("{0}: not found")]
    NotFound(String),
    #[error("{what}: larger than the {limit}-byte limit")]
    TooLarge { what: String, limit: u64 },
    #[error("{0}: not a media file (no audio or video container recognised)")]
    NotMedia(String),
    #[error("{url}: refused: {reason}")]
    UrlRefused { url: String, reason: String },
    #[error("{url}: {reason}")]
    FetchFailed { url: String, reason: String },
    /// The stream being stored broke off (an upload cut short, a download that failed).
    #[error("{what}: reading the upload: {reason}")]
    SourceFailed { what: String, reason: String },
    #[error("storage: {0}")]
    Io(String),
}

impl StorageError {
    pub fn code(&self) -> ErrorCode {
        match self {
            StorageError::InvalidKey(_)
            | StorageError::SourceFailed { .. }
            | StorageError::Io(_) => ErrorCode::StorageFailed,
            StorageError::NotFound(_) => ErrorCode::JobNotFound,
            StorageError::TooLarge { .. } => ErrorCode::InputTooLarge,
            StorageError::NotMedia(_) => ErrorCode::UnsupportedMedia,
            StorageError::UrlRefused { .. } | StorageError::FetchFailed { .. } => {
                ErrorCode::MediaUrlFailed
            }
        }
    }
}
