use std::path::PathBuf;

use vttiro_core::ErrorCode;

#[derive(Debug, thiserror::Error)]
pub enum DiarizeError {
    #[error("{path}: not a usable speaker model: {reason}")]
    InvalidModel { path: PathBuf, reason: String },
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("speaker embedding failed: {0}")]
    Inference(String),
    #[error("invalid diarization settings: {0}")]
    Settings(String),
}

impl DiarizeError {
    pub fn code(&self) -> ErrorCode {
        match self {
            DiarizeError::InvalidModel { .. } => ErrorCode::ModelInvalid,
            DiarizeError::Io { .. } => ErrorCode::ModelInvalid,
            DiarizeError::Inference(_) => ErrorCode::EngineFailed,
            DiarizeError::Settings(_) => ErrorCode::InvalidArgument,
        }
    }
}
