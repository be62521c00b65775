//! vttiro-eval owns transcript quality measurement: the English text normaliser that makes a
//! reference and a hypothesis comparable ([`normalize_english`]), and word error rate over
//! single utterances and whole corpora ([`word_error_rate`], [`corpus_wer`]), and the
//! diarization error rate over speaker turns read from RTTM ([`diarization_error_rate`]).
//!
//! The normaliser follows the behaviour of OpenAI Whisper's `EnglishTextNormalizer` so that
//! numbers reported here can be compared with published Whisper WERs, but it is our own
//! implementation with a few documented differences (see [`normalize_english`]). Scores are
//! only meaningful when reference and hypothesis went through the same normaliser, which is
//! why [`word_error_rate`] always normalises both sides itself.
//!
//! This crate is pure computation: it must not depend on other vttiro crates besides
//! vttiro-core, and knows nothing about engines, HTTP, databases or async runtimes.

mod der;
mod normalize;
mod numbers;
mod spelling;
mod wer;

pub use der::{diarization_error_rate, parse_rttm, DerStats, RttmError, SpeakerTurn};
pub use normalize::normalize_english;
pub use wer::{corpus_wer, word_error_rate, WerStats};
