use std::path::PathBuf;

use vttiro_core::ErrorCode;

#[derive(Debug, thiserror::Error)]
pub enum SubtitleError {
    #[error("unknown output format {value:?}; valid formats: vtt, srt, json, txt, rttm")]
    UnknownFormat { value: String },

    /// Creating, writing, syncing or renaming the output failed; nothing was left at `path`.
    #[error("{}: cannot write subtitles ({stage}): {source}", path.display())]
    Write {
        path: PathBuf,
        stage: &'static str,
        #[source]
        source: std::io::Error,
    },
}

impl SubtitleError {
    pub fn code(&self) -> ErrorCode {
        match self {
            SubtitleError::UnknownFormat { .. } => ErrorCode::InvalidArgument,
            SubtitleError::Write { .. } => ErrorCode::OutputFailed,
        }
    }
}
