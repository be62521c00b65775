use std::path::PathBuf;

use vttiro_core::ErrorCode;

/// Why a media file could not be probed or decoded. Every message is one line that starts with
/// the input path, so a batch log says which file failed without extra context.
#[derive(Debug, thiserror::Error)]
pub enum MediaError {
    #[error("{}: file not found", path.display())]
    NotFound { path: PathBuf },

    #[error("{}: is a directory, expected a media file", path.display())]
    IsDirectory { path: PathBuf },

    #[error("{}: file is empty (0 bytes)", path.display())]
    Empty { path: PathBuf },

    /// The operating system refused or failed a read (permissions, I/O error, pipe failure).
    #[error("{}: cannot read file: {source}", path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },

    #[error("{}: not a media file vttiro can read ({reason})", path.display())]
    Unsupported { path: PathBuf, reason: String },

    #[error("{}: media is damaged or truncated ({reason})", path.display())]
    Corrupt { path: PathBuf, reason: String },

    #[error("{}: contains no audio track", path.display())]
    NoAudioTrack { path: PathBuf },

    #[error(
        "{}: audio track {requested} was requested but the file has {count} audio track(s), numbered from 0",
        path.display()
    )]
    TrackOutOfRange {
        path: PathBuf,
        requested: usize,
        count: usize,
    },

    /// The codec needs ffmpeg and ffmpeg cannot be used; `why` says whether it is missing or
    /// was disabled by the caller.
    #[error("{}: codec {codec} is not supported in-process and {why}", path.display())]
    CodecNeedsFfmpeg {
        path: PathBuf,
        codec: String,
        why: FfmpegUnavailable,
    },

    /// ffmpeg ended abnormally (killed by a signal) or could not be started although it exists.
    #[error("{}: ffmpeg failed: {reason}", path.display())]
    FfmpegFailed { path: PathBuf, reason: String },

    #[error("{}: resampling {from_rate} Hz audio to 16 kHz failed: {reason}", path.display())]
    Resample {
        path: PathBuf,
        from_rate: u32,
        reason: String,
    },

    /// The caller's cancel token stopped the decoding.
    #[error("{}: cancelled", path.display())]
    Cancelled { path: PathBuf },
}

/// Why the ffmpeg fallback could not be used.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FfmpegUnavailable {
    NotOnPath,
    Disabled,
}

impl std::fmt::Display for FfmpegUnavailable {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            FfmpegUnavailable::NotOnPath => f.write_str("ffmpeg was not found on PATH"),
            FfmpegUnavailable::Disabled => f.write_str("the ffmpeg fallback is disabled"),
        }
    }
}

impl MediaError {
    pub fn code(&self) -> ErrorCode {
        match self {
            MediaError::NotFound { .. } => ErrorCode::InputNotFound,
            MediaError::IsDirectory { .. } => ErrorCode::InputIsDirectory,
            MediaError::Empty { .. } => ErrorCode::InputEmpty,
            MediaError::Unsupported { .. } | MediaError::CodecNeedsFfmpeg { .. } => {
                ErrorCode::UnsupportedMedia
            }
            MediaError::Corrupt { .. } => ErrorCode::CorruptMedia,
            MediaError::NoAudioTrack { .. } => ErrorCode::NoAudioTrack,
            MediaError::TrackOutOfRange { .. } => ErrorCode::InvalidArgument,
            // Failures of the environment rather than of the bytes: worth a retry.
            MediaError::Read { .. }
            | MediaError::FfmpegFailed { .. }
            | MediaError::Resample { .. } => ErrorCode::Internal,
            // Not a failure: whoever cancelled knows why the decoding ended.
            MediaError::Cancelled { .. } => ErrorCode::Internal,
        }
    }
}
