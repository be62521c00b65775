//! vttiro-storage owns where the service keeps media and results, and how media gets
//! there: an object store with streamed, size-limited, atomic writes ([`Store`]) in a
//! local directory or a bucket chosen by URL (S3 and S3-compatible, GCS, Azure Blob,
//! through `object_store`),
//! encrypted at rest when opened with master keys ([`KeyRing`]; per-object data keys,
//! authenticated segment-by-segment encryption, rotation by re-wrapping — see [`seal`]);
//! content sniffing so only media is accepted ([`sniff_media`]); and fetching media URLs
//! with SSRF protection ([`fetch`]): http/https only, every address a name resolves to —
//! on every redirect hop — checked against loopback, private, link-local, metadata and
//! other internal ranges unless explicitly allowed, with size and time limits.
//!
//! It must not know about jobs, engines, subtitles or HTTP servers. Its interface is
//! blocking — callers stream into it from a blocking thread; a bucket's requests run on a
//! small runtime private to that store.

mod fetch;
mod remote;
pub mod seal;
mod sniff;
mod store;

pub use fetch::{classify_address, fetch, guarded_agent, AddressClass, FetchPolicy, Refusal};
pub use remote::{PART_SIZE, WINDOW};
pub use seal::{KeyRing, ObjectReader, SEALED_HEADER_LEN, SEGMENT_SIZE};
pub use sniff::{sniff_media, SNIFF_BYTES};
pub use store::{LocalFile, RotationReport, Store, StoredObject};

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
    /// A sealed object that cannot be opened: no or the wrong master key, or damage.
    #[error("{key}: cannot decrypt: {reason}")]
    Sealed { key: String, reason: String },
    /// A storage location (directory or bucket URL) that cannot be opened.
    #[error("storage location {location}: {reason}")]
    Location { location: String, reason: String },
    /// Master key configuration that cannot be used; never carries key material.
    #[error("master key: {0}")]
    MasterKey(String),
    #[error("storage: {0}")]
    Io(String),
}

impl StorageError {
    pub fn code(&self) -> ErrorCode {
        match self {
            StorageError::InvalidKey(_)
            | StorageError::SourceFailed { .. }
            | StorageError::Sealed { .. }
            | StorageError::Io(_) => ErrorCode::StorageFailed,
            StorageError::MasterKey(_) | StorageError::Location { .. } => {
                ErrorCode::InvalidArgument
            }
            StorageError::NotFound(_) => ErrorCode::JobNotFound,
            StorageError::TooLarge { .. } => ErrorCode::InputTooLarge,
            StorageError::NotMedia(_) => ErrorCode::UnsupportedMedia,
            StorageError::UrlRefused { .. } | StorageError::FetchFailed { .. } => {
                ErrorCode::MediaUrlFailed
            }
        }
    }
}
