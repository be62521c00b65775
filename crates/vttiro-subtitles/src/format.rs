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
}

impl OutputFormat {
    pub const ALL: [OutputFormat; 4] = [
        OutputFormat::Vtt,
        OutputFormat::Srt,
        OutputFormat::Json,
        OutputFormat::Txt,
    ];

    /// File extension without the dot.
    pub fn extension(self) -> &'static str {
        match self {
            OutputFormat::Vtt => "vtt",
            OutputFormat::Srt => "srt",
            OutputFormat::Json => "json",
            OutputFormat::Txt => "txt",
        }
    }

    /// HTTP `Content-Type` for serving the rendered file.
    pub fn content_type(self) -> &'static str {
        match self {
            OutputFormat::Vtt => "text/vtt; charset=utf-8",
            OutputFormat::Srt => "application/x-subrip; charset=utf-8",
            OutputFormat::Json => "application/json",
            OutputFormat::Txt => "text/plain; charset=utf-8",
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
