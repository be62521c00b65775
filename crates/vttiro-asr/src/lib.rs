//! vttiro-asr owns speech recognition: the [`Engine`] trait the pipeline talks to, the
//! options every engine understands, and the local Whisper backends. The CTranslate2
//! backend (feature `ct2`, default) runs vttiro's own long-form decoding loop — timestamp
//! tokens, seeking to the last complete segment, conditioning on previous text,
//! temperature fallback and the compression-ratio / log-prob / no-speech guards — on top
//! of CTranslate2's encoder, generator and cross-attention aligner, because the
//! ready-made single-window `generate` loses most words on long audio.
//!
//! The whisper.cpp backend (feature `whispercpp`, plus `metal`, `hipblas`, `vulkan` or
//! `whispercpp-cuda` for its GPU backends) runs ggml models converted by vttiro-models.
//!
//! This is the only crate that knows CTranslate2 and whisper.cpp; cloud providers live in
//! vttiro-cloud behind the same trait, and [`FallbackEngine`] chains any of them.
//! It takes 16 kHz mono samples plus speech windows and returns a
//! [`vttiro_core::Transcript`]; it must not know about files, containers, subtitles,
//! HTTP servers, databases or tokio.

#[cfg(feature = "ct2")]
mod ct2;
// Without a local backend only `compression_ratio` is used (by callers of the crate).
#[cfg_attr(not(any(feature = "ct2", feature = "whispercpp")), allow(dead_code))]
mod decode;
mod fallback;
pub mod mel;
mod select;
pub mod tokenizer;
mod usage;
#[cfg(feature = "whispercpp")]
mod whispercpp;

use std::path::PathBuf;

use vttiro_core::{ErrorCode, Transcript};

#[cfg(feature = "ct2")]
pub use ct2::{Ct2Engine, Ct2Timings};
pub use decode::compression_ratio;
pub use fallback::{EngineFactory, FallbackEngine};
pub use select::{select_backend, BackendKind, Capabilities, Selection};
pub use usage::{FallbackAttempt, Usage};
#[cfg(feature = "whispercpp")]
pub use whispercpp::{whispercpp_gpu_support, whispercpp_version, WhisperCppEngine};

/// A span of the input (in 16 kHz samples) worth decoding, normally one VAD chunk of at
/// most 30 s. Engines never look at audio outside the windows they are given.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AudioWindow {
    pub start: usize,
    pub end: usize,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Task {
    Transcribe,
    Translate,
}

/// Decoding options shared by every Whisper-family engine. Defaults follow the values
/// the models were evaluated with, so results are comparable with other Whisper tools.
#[derive(Debug, Clone)]
pub struct TranscribeOptions {
    /// ISO 639-1 code; `None` detects it from the first window.
    pub language: Option<String>,
    pub task: Task,
    /// Vocabulary and style hint given to the decoder before the first window.
    pub prompt: Option<String>,
    pub beam_size: usize,
    /// Candidates sampled per window when falling back to a non-zero temperature.
    pub best_of: usize,
    pub patience: f32,
    pub length_penalty: f32,
    pub repetition_penalty: f32,
    pub no_repeat_ngram_size: usize,
    /// Tried in order until a window passes the quality guards.
    pub temperatures: Vec<f32>,
    /// Above this gzip ratio the text is repetitive (a hallucination loop): retry hotter.
    pub compression_ratio_threshold: Option<f32>,
    /// Below this average token log-probability the decode is unreliable: retry hotter.
    pub log_prob_threshold: Option<f32>,
    /// With a low log-prob, a window whose no-speech probability exceeds this is skipped.
    pub no_speech_threshold: Option<f32>,
    pub condition_on_previous_text: bool,
    /// Stop conditioning once a fallback temperature above this was needed, so one bad
    /// window cannot poison the rest.
    pub prompt_reset_on_temperature: f32,
    pub word_timestamps: bool,
    pub suppress_blank: bool,
    /// Latest time (s) the first timestamp of a window may take.
    pub max_initial_timestamp: f32,
    /// Ask engines that label speakers themselves (cloud providers) to do so.
    pub speaker_labels: bool,
    /// The number of speakers, when the caller knows it.
    pub speakers_expected: Option<u32>,
    /// Words and phrases to favour (AssemblyAI word boost, Deepgram keyterms).
    pub vocabulary: Vec<String>,
    /// Set by the caller to stop a local engine at its next 30-s window.
    pub cancel: CancelToken,
}

pub use vttiro_core::CancelToken;

/// `Err(Cancelled)` once the caller has set `token`, for engines' loops.
pub fn check_cancel(token: &CancelToken) -> Result<(), AsrError> {
    if token.is_cancelled() {
        Err(AsrError::Cancelled)
    } else {
        Ok(())
    }
}

impl Default for TranscribeOptions {
    fn default() -> Self {
        TranscribeOptions {
            language: None,
            task: Task::Transcribe,
            prompt: None,
            beam_size: 5,
            best_of: 5,
            patience: 1.0,
            length_penalty: 1.0,
            repetition_penalty: 1.0,
            no_repeat_ngram_size: 0,
            temperatures: vec![0.0, 0.2, 0.4, 0.6, 0.8, 1.0],
            compression_ratio_threshold: Some(2.4),
            log_prob_threshold: Some(-1.0),
            no_speech_threshold: Some(0.6),
            condition_on_previous_text: true,
            prompt_reset_on_temperature: 0.5,
            word_timestamps: true,
            suppress_blank: true,
            max_initial_timestamp: 1.0,
            speaker_labels: false,
            speakers_expected: None,
            vocabulary: Vec::new(),
            cancel: CancelToken::default(),
        }
    }
}

/// Progress reported after each decoded window: seconds of input covered so far.
#[derive(Debug, Clone, Copy)]
pub struct EngineProgress {
    pub done_ms: i64,
    pub total_ms: i64,
}

pub trait Engine {
    /// Stable engine/backend identifier for logs, metrics and JSON output ("ct2", ...).
    fn backend(&self) -> &'static str;
    /// The model name or path the engine was loaded with.
    fn model_name(&self) -> &str;
    fn transcribe(
        &mut self,
        audio: &[f32],
        windows: &[AudioWindow],
        options: &TranscribeOptions,
        progress: &mut dyn FnMut(EngineProgress),
    ) -> Result<Transcript, AsrError>;
    /// Provider, billed audio and estimated cost of the most recent `transcribe`; local
    /// engines bill nothing and may leave it to the caller.
    fn usage(&self) -> Option<Usage> {
        None
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Device {
    Auto,
    Cpu,
    Gpu,
}

impl std::str::FromStr for Device {
    type Err = AsrError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.to_ascii_lowercase().as_str() {
            "auto" => Ok(Device::Auto),
            "cpu" => Ok(Device::Cpu),
            "gpu" | "cuda" => Ok(Device::Gpu),
            other => Err(AsrError::InvalidOption(format!(
                "unknown device '{other}' (expected auto, cpu or gpu)"
            ))),
        }
    }
}

/// How to load a local model.
#[derive(Debug, Clone)]
pub struct LocalEngineConfig {
    pub model_dir: PathBuf,
    pub model_name: String,
    pub device: Device,
    /// "int8", "int8_float16", "float16", "float32" or "auto" (int8 on CPU, float16 on GPU).
    pub compute_type: String,
    pub threads: usize,
    /// Stretches of speech decoded side by side on the CPU (CTranslate2), each on
    /// `threads / parallel_streams` threads; 0 picks from the thread count and model size.
    pub parallel_streams: usize,
}

/// Which compiled-in local backends this binary has, for `--engine local` selection and
/// for `vttiro version`.
pub fn available_backends() -> Vec<&'static str> {
    let caps = Capabilities::detect();
    [
        (caps.ct2, BackendKind::Ct2),
        (caps.whispercpp, BackendKind::WhisperCpp),
    ]
    .into_iter()
    .filter_map(|(compiled, kind)| compiled.then_some(kind.as_str()))
    .collect()
}

/// The language a model should decode in: English-only models accept only `en` (and
/// decode in it when nothing is requested); multilingual models accept any code `knows`
/// and leave `None` for detection.
#[cfg_attr(not(any(feature = "ct2", feature = "whispercpp")), allow(dead_code))]
pub(crate) fn requested_language(
    requested: Option<&str>,
    multilingual: bool,
    model_name: &str,
    knows: impl Fn(&str) -> bool,
) -> Result<Option<String>, AsrError> {
    if !multilingual {
        return match requested {
            None | Some("en") => Ok(Some("en".into())),
            Some(other) => Err(AsrError::InvalidOption(format!(
                "--language {other}: model {model_name} is English-only; use a multilingual model such as base or small"
            ))),
        };
    }
    match requested {
        Some(code) if !knows(code) => Err(AsrError::InvalidOption(format!(
            "--language {code}: not a language this model knows (use an ISO 639-1 code such as en, de, fr)"
        ))),
        other => Ok(other.map(str::to_owned)),
    }
}

/// Whether this build can drive an NVIDIA GPU through CTranslate2.
pub fn gpu_support() -> bool {
    Capabilities::detect().ct2_cuda
}

#[derive(Debug, thiserror::Error)]
pub enum AsrError {
    #[error("{0}")]
    InvalidOption(String),
    #[error("model {model}: {reason}")]
    ModelInvalid { model: String, reason: String },
    #[error("{0}")]
    Unavailable(String),
    #[error("engine {backend} failed: {reason}")]
    Failed {
        backend: &'static str,
        reason: String,
    },
    /// A cloud provider failed in a way the error-code table names (bad key, quota, ...).
    #[error("{provider}: {message}")]
    Provider {
        provider: &'static str,
        code: ErrorCode,
        message: String,
    },
    /// A failure from outside the engine proper — a fallback chain that ran out, or a
    /// model that could not be fetched for a chain's local link — with its code.
    #[error("{message}")]
    Coded { code: ErrorCode, message: String },
    /// The caller's [`CancelToken`] stopped the engine between windows.
    #[error("cancelled")]
    Cancelled,
}

impl AsrError {
    pub fn code(&self) -> ErrorCode {
        match self {
            AsrError::InvalidOption(_) => ErrorCode::InvalidArgument,
            AsrError::ModelInvalid { .. } => ErrorCode::ModelInvalid,
            AsrError::Unavailable(_) => ErrorCode::EngineUnavailable,
            AsrError::Failed { .. } => ErrorCode::EngineFailed,
            AsrError::Provider { code, .. } | AsrError::Coded { code, .. } => *code,
            // No code in the table is a stop the caller asked for; the caller that
            // cancelled knows why the run ended and never reports it as a failure.
            AsrError::Cancelled => ErrorCode::Internal,
        }
    }
}
