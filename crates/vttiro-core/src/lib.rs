//! vttiro-core owns the vocabulary every pipeline stage speaks: the transcript model
//! (segments and words with times in integer milliseconds), speech regions produced by
//! VAD, the cancel token every long stage checks, and the error-code table that maps every failure kind to a CLI exit code, an
//! HTTP status, a stable machine-readable code and a retry decision, and Whisper's mel
//! filterbank, which both the recogniser's front end and the ggml model converter need.
//!
//! Time is integer milliseconds everywhere outside the DSP code so that cue times never
//! accumulate floating-point drift across stages. This crate does no I/O and must not
//! depend on any other vttiro crate, on tokio, HTTP, databases or engines.

mod cancel;
mod error_code;
mod languages;
mod mel_filters;
mod time;
mod transcript;

pub use cancel::CancelToken;
pub use error_code::ErrorCode;
pub use languages::{language_code, language_name};
pub use mel_filters::{periodic_hann, slaney_mel_filters, MEL_FFT_BINS};
pub use time::{ms_to_samples, samples_to_ms, seconds_to_ms, SAMPLE_RATE};
pub use transcript::{Segment, SpeechRegion, Transcript, Word};
