use std::fmt;
use std::str::FromStr;

use serde_json::Value;
use vttiro_core::Transcript;

use crate::cue::LayoutRules;
use crate::error::SubtitleError;

/// The file formats vttiro writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum OutputFormat {
    Vtt,
    Srt,
    Json,
    Txt,
    /// Speaker turns for diarization scoring.
    Rttm,
}

impl OutputFormat {
    pub const ALL: [OutputFormat; 5] = [
        OutputFormat::Vtt,
        OutputFormat::Srt,
        OutputFormat::Json,
        OutputFormat::Txt,
        OutputFormat::Rttm,
    ];

    /// File extension without the dot.
    pub fn extension(self) -> &'static str {
        match self {
            OutputFormat::Vtt => "vtt",
            OutputFormat::Srt => "srt",
            OutputFormat::Json => "json",
            OutputFormat::Txt => "txt",
            OutputFormat::Rttm => "rttm",
        }
    }

    /// HTTP `Content-Type` for serving the rendered file.
    pub fn content_type(self) -> &'static str {
        match self {
            OutputFormat::Vtt => "text/vtt; charset=utf-8",
            OutputFormat::Srt => "application/x-subrip; charset=utf-8",
            OutputFormat::Json => "application/json",
            OutputFormat::Txt | OutputFormat::Rttm => "text/plain; charset=utf-8",
        }
    }

    /// Renders the transcript in this format; subtitle formats are laid out with `rules`,
    /// and `extra` is only used by JSON (see [`crate::to_json`]).
    pub fn render(self, transcript: &Transcript, rules: &LayoutRules, extra: &Value) -> String {
        match self {
            OutputFormat::Vtt => crate::to_webvtt(&crate::layout(transcript, rules)),
            OutputFormat::Srt => crate::to_srt(&crate::layout(transcript, rules)),
            OutputFormat::Json => crate::to_json(transcript, extra),
            OutputFormat::Txt => crate::to_txt(transcript),
            OutputFormat::Rttm => crate::to_rttm(transcript, "audio"),
        }
    }
}

impl FromStr for OutputFormat {
    type Err = SubtitleError;

    /// Accepts the extension in any case, with or without a leading dot, plus the aliases
    /// `webvtt` and `text`.
    fn from_str(value: &str) -> Result<Self, Self::Err> {
        let name = value.trim();
        let name = name.strip_prefix('.').unwrap_or(name).to_ascii_lowercase();
        match name.as_str() {
            "vtt" | "webvtt" => Ok(OutputFormat::Vtt),
            "srt" => Ok(OutputFormat::Srt),
            "json" => Ok(OutputFormat::Json),
            "rttm" => Ok(OutputFormat::Rttm),
            "txt" | "text" => Ok(OutputFormat::Txt),
            _ => Err(SubtitleError::UnknownFormat {
                value: value.to_string(),
            }),
        }
    }
}

impl fmt::Display for OutputFormat {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.extension())
    }
}
