/// Every failure kind vttiro reports, with the one place that decides how it surfaces.
///
/// The CLI exits with [`ErrorCode::exit_code`], the server answers with
/// [`ErrorCode::http_status`], logs and JSON carry [`ErrorCode::as_str`], and the job queue
/// asks [`ErrorCode::retryable`] before trying again. Library crates map their typed errors
/// onto this table so binaries never need to inspect error strings.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ErrorCode {
    /// Bad flags or configuration values.
    InvalidArgument,
    InputNotFound,
    InputIsDirectory,
    InputEmpty,
    /// The bytes are not a media container or codec we (or ffmpeg) can read.
    UnsupportedMedia,
    /// An upload or download beyond the configured size limit.
    InputTooLarge,
    /// A media URL that was refused (scheme, internal address) or could not be fetched.
    MediaUrlFailed,
    /// The container was recognised but is damaged or truncated.
    CorruptMedia,
    NoAudioTrack,
    /// A subtitle file breaks the format's syntax (WebVTT or SRT).
    InvalidSubtitles,
    /// A subtitle file parses but breaks readability rules (`validate --strict`).
    SubtitleRulesBroken,
    UnknownModel,
    ModelNotInstalled,
    ModelDownloadFailed,
    ModelChecksumMismatch,
    ModelInvalid,
    /// The requested engine, backend or device is not compiled into this build.
    EngineUnavailable,
    EngineFailed,
    /// A cloud provider refused the API key (missing, wrong or revoked).
    ProviderAuth,
    /// A cloud provider's rate limit or quota stayed exhausted through every retry.
    ProviderQuota,
    /// A cloud provider refused the upload as too large, even after re-encoding and splitting.
    ProviderInputTooLarge,
    /// A cloud provider could not read the uploaded audio.
    ProviderUnsupportedFormat,
    /// A cloud provider was down, timing out or answering garbage, or its circuit is open.
    ProviderUnavailable,
    OutputFailed,
    /// No job with that id (or not one the caller may see).
    JobNotFound,
    /// The request contradicts the job's state or an earlier request (idempotency key).
    Conflict,
    /// The queue is full; try again later.
    QueueFull,
    /// The job database or object storage could not be used.
    StorageFailed,
    /// A request that waits for its job (the OpenAI-compatible endpoint) outlived its
    /// deadline; the job was cancelled.
    DeadlineExceeded,
    /// No credentials, or credentials that are unknown, revoked, expired or forged.
    Unauthenticated,
    /// Valid credentials whose role may not do this.
    Forbidden,
    /// Too many requests for the key's token bucket.
    RateLimited,
    /// The key's audio minutes for the day are used up.
    QuotaExceeded,
    Internal,
}

impl ErrorCode {
    pub const ALL: [ErrorCode; 34] = [
        ErrorCode::InvalidArgument,
        ErrorCode::InputNotFound,
        ErrorCode::InputIsDirectory,
        ErrorCode::InputEmpty,
        ErrorCode::UnsupportedMedia,
        ErrorCode::InputTooLarge,
        ErrorCode::MediaUrlFailed,
        ErrorCode::CorruptMedia,
        ErrorCode::NoAudioTrack,
        ErrorCode::InvalidSubtitles,
        ErrorCode::SubtitleRulesBroken,
        ErrorCode::UnknownModel,
        ErrorCode::ModelNotInstalled,
        ErrorCode::ModelDownloadFailed,
        ErrorCode::ModelChecksumMismatch,
        ErrorCode::ModelInvalid,
        ErrorCode::EngineUnavailable,
        ErrorCode::EngineFailed,
        ErrorCode::ProviderAuth,
        ErrorCode::ProviderQuota,
        ErrorCode::ProviderInputTooLarge,
        ErrorCode::ProviderUnsupportedFormat,
        ErrorCode::ProviderUnavailable,
        ErrorCode::OutputFailed,
        ErrorCode::JobNotFound,
        ErrorCode::Conflict,
        ErrorCode::QueueFull,
        ErrorCode::StorageFailed,
        ErrorCode::DeadlineExceeded,
        ErrorCode::Unauthenticated,
        ErrorCode::Forbidden,
        ErrorCode::RateLimited,
        ErrorCode::QuotaExceeded,
        ErrorCode::Internal,
    ];

    /// Stable identifier used in JSON logs, API error bodies and docs.
    /// The code whose [`as_str`](Self::as_str) is `name`, for codes read back from storage.
    pub fn parse(name: &str) -> Option<ErrorCode> {
        ErrorCode::ALL
            .into_iter()
            .find(|code| code.as_str() == name)
    }

    pub fn as_str(self) -> &'static str {
        match self {
            ErrorCode::InvalidArgument => "invalid_argument",
            ErrorCode::InputNotFound => "input_not_found",
            ErrorCode::InputIsDirectory => "input_is_directory",
            ErrorCode::InputEmpty => "input_empty",
            ErrorCode::UnsupportedMedia => "unsupported_media",
            ErrorCode::InputTooLarge => "input_too_large",
            ErrorCode::MediaUrlFailed => "media_url_failed",
            ErrorCode::CorruptMedia => "corrupt_media",
            ErrorCode::NoAudioTrack => "no_audio_track",
            ErrorCode::InvalidSubtitles => "invalid_subtitles",
            ErrorCode::SubtitleRulesBroken => "subtitle_rules_broken",
            ErrorCode::UnknownModel => "unknown_model",
            ErrorCode::ModelNotInstalled => "model_not_installed",
            ErrorCode::ModelDownloadFailed => "model_download_failed",
            ErrorCode::ModelChecksumMismatch => "model_checksum_mismatch",
            ErrorCode::ModelInvalid => "model_invalid",
            ErrorCode::EngineUnavailable => "engine_unavailable",
            ErrorCode::EngineFailed => "engine_failed",
            ErrorCode::ProviderAuth => "provider_auth",
            ErrorCode::ProviderQuota => "provider_quota",
            ErrorCode::ProviderInputTooLarge => "provider_input_too_large",
            ErrorCode::ProviderUnsupportedFormat => "provider_unsupported_format",
            ErrorCode::ProviderUnavailable => "provider_unavailable",
            ErrorCode::OutputFailed => "output_failed",
            ErrorCode::JobNotFound => "job_not_found",
            ErrorCode::Conflict => "conflict",
            ErrorCode::QueueFull => "queue_full",
            ErrorCode::StorageFailed => "storage_failed",
            ErrorCode::DeadlineExceeded => "deadline_exceeded",
            ErrorCode::Unauthenticated => "unauthenticated",
            ErrorCode::Forbidden => "forbidden",
            ErrorCode::RateLimited => "rate_limited",
            ErrorCode::QuotaExceeded => "quota_exceeded",
            ErrorCode::Internal => "internal",
        }
    }

    /// Process exit code. 1 is reserved for "some inputs of a batch failed" and 2 for
    /// usage errors, following common CLI convention; input errors sit in 10-19, model
    /// errors in 20-29, engine errors in 30-39, output errors in 40-49, job queue and
    /// storage errors in 50-59.
    pub fn exit_code(self) -> i32 {
        match self {
            ErrorCode::InvalidArgument => 2,
            ErrorCode::InputNotFound => 10,
            ErrorCode::InputIsDirectory => 11,
            ErrorCode::InputEmpty => 12,
            ErrorCode::UnsupportedMedia => 13,
            ErrorCode::InputTooLarge => 18,
            ErrorCode::MediaUrlFailed => 19,
            ErrorCode::CorruptMedia => 14,
            ErrorCode::NoAudioTrack => 15,
            ErrorCode::InvalidSubtitles => 16,
            ErrorCode::SubtitleRulesBroken => 17,
            ErrorCode::UnknownModel => 20,
            ErrorCode::ModelNotInstalled => 21,
            ErrorCode::ModelDownloadFailed => 22,
            ErrorCode::ModelChecksumMismatch => 23,
            ErrorCode::ModelInvalid => 24,
            ErrorCode::EngineUnavailable => 30,
            ErrorCode::EngineFailed => 31,
            ErrorCode::ProviderAuth => 32,
            ErrorCode::ProviderQuota => 33,
            ErrorCode::ProviderInputTooLarge => 34,
            ErrorCode::ProviderUnsupportedFormat => 35,
            ErrorCode::ProviderUnavailable => 36,
            ErrorCode::OutputFailed => 40,
            ErrorCode::JobNotFound => 50,
            ErrorCode::Conflict => 51,
            ErrorCode::QueueFull => 52,
            ErrorCode::StorageFailed => 53,
            ErrorCode::DeadlineExceeded => 54,
            ErrorCode::Unauthenticated => 55,
            ErrorCode::Forbidden => 56,
            ErrorCode::RateLimited => 57,
            ErrorCode::QuotaExceeded => 58,
            ErrorCode::Internal => 70,
        }
    }

    pub fn http_status(self) -> u16 {
        match self {
            ErrorCode::InvalidArgument | ErrorCode::UnknownModel => 400,
            ErrorCode::InputNotFound => 404,
            ErrorCode::InputIsDirectory | ErrorCode::InputEmpty => 422,
            ErrorCode::UnsupportedMedia => 415,
            ErrorCode::InputTooLarge => 413,
            ErrorCode::MediaUrlFailed => 422,
            ErrorCode::CorruptMedia
            | ErrorCode::NoAudioTrack
            | ErrorCode::InvalidSubtitles
            | ErrorCode::SubtitleRulesBroken => 422,
            ErrorCode::ModelNotInstalled | ErrorCode::EngineUnavailable => 503,
            ErrorCode::ModelDownloadFailed => 502,
            ErrorCode::ModelChecksumMismatch | ErrorCode::ModelInvalid => 500,
            ErrorCode::EngineFailed | ErrorCode::OutputFailed | ErrorCode::Internal => 500,
            // The provider's key is the server's configuration, not the caller's: a bad
            // gateway. Quota and outages pass; too-large and unreadable audio are the input's.
            ErrorCode::ProviderAuth => 502,
            ErrorCode::ProviderQuota | ErrorCode::ProviderUnavailable => 503,
            ErrorCode::ProviderInputTooLarge => 413,
            ErrorCode::JobNotFound => 404,
            ErrorCode::Conflict => 409,
            ErrorCode::QueueFull => 429,
            ErrorCode::StorageFailed => 503,
            ErrorCode::DeadlineExceeded => 504,
            ErrorCode::Unauthenticated => 401,
            ErrorCode::Forbidden => 403,
            ErrorCode::RateLimited | ErrorCode::QuotaExceeded => 429,
            ErrorCode::ProviderUnsupportedFormat => 415,
        }
    }

    /// Whether a queue should try the same job again: only failures of the environment,
    /// never failures caused by the input itself.
    pub fn retryable(self) -> bool {
        matches!(
            self,
            ErrorCode::ModelDownloadFailed
                | ErrorCode::EngineFailed
                | ErrorCode::ProviderQuota
                | ErrorCode::ProviderUnavailable
                | ErrorCode::StorageFailed
                | ErrorCode::DeadlineExceeded
                | ErrorCode::OutputFailed
                | ErrorCode::Internal
        )
    }
}

impl std::fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    #[test]
    fn exit_codes_and_names_are_distinct() {
        let exits: HashSet<i32> = ErrorCode::ALL.iter().map(|c| c.exit_code()).collect();
        let names: HashSet<&str> = ErrorCode::ALL.iter().map(|c| c.as_str()).collect();
        assert_eq!(exits.len(), ErrorCode::ALL.len());
        assert_eq!(names.len(), ErrorCode::ALL.len());
        assert!(!exits.contains(&0) && !exits.contains(&1));
    }

    #[test]
    fn input_errors_are_not_retried() {
        for code in [
            ErrorCode::InputNotFound,
            ErrorCode::CorruptMedia,
            ErrorCode::UnknownModel,
        ] {
            assert!(!code.retryable());
            assert!(code.http_status() >= 400 && code.http_status() < 500);
        }
    }
}
