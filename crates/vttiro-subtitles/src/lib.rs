//! vttiro-subtitles owns the last pipeline stage: turning a word-timed
//! [`vttiro_core::Transcript`] into readable subtitle cues ([`layout`]), rendering them as
//! WebVTT, SRT, plain text, JSON or RTTM speaker turns ([`OutputFormat`]), writing files so that a crash never
//! leaves a half-written subtitle behind ([`write_atomic`]), and parsing/validating WebVTT
//! ([`parse_webvtt`], [`validate_webvtt`]) so that our own output can be checked and user
//! files can be read back.
//!
//! Layout follows common broadcast guidelines (at most two lines of 42 characters, at most
//! 7 seconds per cue, about 17 characters per second, a small gap between cues) and prefers
//! to break where a viewer would: at sentence ends and pauses, then at clause punctuation,
//! never right after an article or preposition if it can help it. Cue times come from word
//! timestamps and stay inside them, except that short cues may linger into the following
//! silence so they can be read.
//!
//! This crate must not depend on other vttiro crates besides vttiro-core, and knows nothing
//! about engines, HTTP, databases or async runtimes; file output is plain blocking `std::fs`.

mod atomic;
mod cue;
mod error;
mod format;
mod json;
mod layout;
mod plain_text;
mod report;
mod rttm;
mod srt;
mod timestamp;
mod webvtt;

pub use atomic::write_atomic;
pub use cue::{display_width, Cue, LayoutRules};
pub use error::SubtitleError;
pub use format::OutputFormat;
pub use json::to_json;
pub use layout::{layout, layout_with_report};
pub use plain_text::to_txt;
pub use report::{check_layout, LayoutReport, LayoutRule, LayoutViolation};
pub use rttm::{to_rttm, to_rttm_turns};
pub use srt::{parse_srt, parse_srt_located, to_srt, to_srt_with, SrtError, SrtSpeakers};
pub use webvtt::{
    parse_webvtt, parse_webvtt_located, to_webvtt, to_webvtt_with, validate_webvtt,
    webvtt_setting_warnings, LocatedCue, VttError, VttOptions,
};
