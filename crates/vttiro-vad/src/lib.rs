//! vttiro-vad owns voice activity detection and chunk planning: it finds where speech is
//! in 16 kHz mono audio ([`detect_speech`]) and packs that speech into pause-aligned
//! windows of at most 30 s for the recogniser ([`plan_chunks`]). It is the reason a file
//! of hiss, hum or a test tone never reaches Whisper and so never comes back with
//! invented subtitles.
//!
//! The detector is embedded signal processing, not a neural model: nothing is downloaded
//! or loaded at run time, and ten minutes of audio take a fraction of a second on one
//! core. It measures each 10 ms frame against a per-frequency noise floor taken from the
//! second before and the second after it, so any steady sound — digital silence, white,
//! pink or brown noise at any level, mains hum, a 1 kHz test tone, a held chord — is floor
//! and never speech. A stretch is speech when its loudest bins stand well clear of that
//! floor, it contains voiced frames (periodic at a 70-400 Hz pitch, with power spread
//! over several harmonics, unlike a beep), and its energy rises and falls with
//! syllables.
//!
//! This crate takes `&[f32]` and returns sample ranges. It must not depend on other
//! vttiro crates except `vttiro-core`, nor read files, decode media, know about engines,
//! tokio, HTTP or databases.

mod chunker;
mod detector;
mod features;
mod noise_floor;
mod params;
mod spectrum;

pub use chunker::{plan_chunks, Chunk};
pub use detector::detect_speech;
pub use params::{ChunkParams, ParamsError, VadParams};
