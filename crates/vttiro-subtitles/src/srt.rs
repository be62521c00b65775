use crate::cue::Cue;
use crate::timestamp::format_timestamp;
use crate::webvtt::displayable_lines;

/// How SRT, which has no speaker markup, shows who is talking.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum SrtSpeakers {
    /// `Name: ` before the first line of each cue with a known speaker.
    #[default]
    Prefix,
    /// `- ` before the first line of a cue whose speaker differs from the previous cue's,
    /// the dialogue-dash convention of many broadcasters.
    Dash,
    /// Speakers are not written.
    Omit,
}

/// Renders cues as SubRip with speakers as `Name: ` prefixes; see [`to_srt_with`].
pub fn to_srt(cues: &[Cue]) -> String {
    to_srt_with(cues, SrtSpeakers::Prefix)
}

/// Renders cues as SubRip (`.srt`): numbered from 1, `HH:MM:SS,mmm` times, a blank line after
/// each cue, speakers as `speakers` says (the prefix or dash is not counted by
/// [`crate::layout`]'s line limit). SRT has no escaping; text is written as is. Cues
/// without text are skipped and do not use up a number.
pub fn to_srt_with(cues: &[Cue], speakers: SrtSpeakers) -> String {
    let mut out = String::new();
    let mut number = 0;
    let mut previous_speaker: Option<&str> = None;
    for cue in cues {
        let lines = displayable_lines(cue);
        if lines.is_empty() {
            continue;
        }
        number += 1;
        out.push_str(&format!(
            "{number}\n{} --> {}\n",
            format_timestamp(cue.start_ms, ','),
            format_timestamp(cue.end_ms, ',')
        ));
        let speaker = cue
            .speaker
            .as_deref()
            .map(str::trim)
            .filter(|s| !s.is_empty());
        for (k, line) in lines.iter().enumerate() {
            if k == 0 {
                match (speakers, speaker) {
                    (SrtSpeakers::Prefix, Some(name)) => {
                        out.push_str(&name.replace(['\n', '\r'], " "));
                        out.push_str(": ");
                    }
                    (SrtSpeakers::Dash, Some(name)) if previous_speaker != Some(name) => {
                        out.push_str("- ");
                    }
                    _ => {}
                }
            }
            out.push_str(line);
            out.push('\n');
        }
        if speaker.is_some() {
            previous_speaker = speaker;
        }
        out.push('\n');
    }
    out
}

/// Why an SRT text is invalid, with the 1-based line of the problem.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SrtError {
    #[error("line {line}: expected a cue timing line \"00:00:01,000 --> 00:00:02,000\", found {found:?}")]
    ExpectedTiming { line: usize, found: String },
    #[error("line {line}: invalid timestamp {value:?} (expected HH:MM:SS,mmm)")]
    BadTimestamp { line: usize, value: String },
    #[error("line {line}: cue ends ({end}) at or before it starts ({start})")]
    EndNotAfterStart {
        line: usize,
        start: String,
        end: String,
    },
    #[error("line {line}: cue has no text")]
    EmptyCue { line: usize },
    #[error("line 1: empty file, no cues")]
    Empty,
}

impl SrtError {
    pub fn line(&self) -> usize {
        match self {
            SrtError::ExpectedTiming { line, .. }
            | SrtError::BadTimestamp { line, .. }
            | SrtError::EndNotAfterStart { line, .. }
            | SrtError::EmptyCue { line } => *line,
            SrtError::Empty => 1,
        }
    }

    pub fn code(&self) -> vttiro_core::ErrorCode {
        vttiro_core::ErrorCode::InvalidSubtitles
    }
}

/// Parses SubRip into cues with the line of each cue's timing line.
///
/// Blocks are separated by blank lines; each is an optional cue number, a timing line
/// (`,` milliseconds as written by every SRT tool; `.` is accepted too, as players do)
/// and text lines. Formatting tags (`<i>`, `<b>`, `<font …>`, `{\an8}`) are removed, so the
/// lines hold what a viewer reads. SRT carries no speaker markup: a `Name: ` prefix stays
/// part of the text. Cues are returned in file order; ordering is a layout matter for
/// [`crate::check_layout`], since many SRT files list overlapping cues on purpose.
pub fn parse_srt_located(text: &str) -> Result<Vec<crate::LocatedCue>, SrtError> {
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let lines: Vec<&str> = text.lines().collect();
    let mut cues = Vec::new();
    let mut i = 0;
    while i < lines.len() {
        if lines[i].trim().is_empty() {
            i += 1;
            continue;
        }
        let block_start = i;
        while i < lines.len() && !lines[i].trim().is_empty() {
            i += 1;
        }
        let block = &lines[block_start..i];
        let timing_index = if block[0].contains("-->") { 0 } else { 1 };
        let Some(timing) = block.get(timing_index).filter(|l| l.contains("-->")) else {
            let k = timing_index.min(block.len() - 1);
            return Err(SrtError::ExpectedTiming {
                line: block_start + k + 1,
                found: block[k].chars().take(60).collect(),
            });
        };
        let line = block_start + timing_index + 1;
        let bad = |value: &str| SrtError::BadTimestamp {
            line,
            value: value.to_string(),
        };
        let (left, right) = timing.split_once("-->").expect("checked above");
        let start_text = left.trim();
        // Some tools append coordinates (`X1:… X2:…`) after the end time.
        let end_text = right.split_whitespace().next().unwrap_or("");
        let clock = |t: &str| {
            crate::webvtt::parse_clock(t, ',').or_else(|| crate::webvtt::parse_clock(t, '.'))
        };
        let start_ms = clock(start_text).ok_or_else(|| bad(start_text))?;
        let end_ms = clock(end_text).ok_or_else(|| bad(end_text))?;
        if end_ms <= start_ms {
            return Err(SrtError::EndNotAfterStart {
                line,
                start: format_timestamp(start_ms, ','),
                end: format_timestamp(end_ms, ','),
            });
        }
        let text_lines: Vec<String> = block[timing_index + 1..]
            .iter()
            .map(|l| strip_srt_markup(l).trim().to_string())
            .filter(|l| !l.is_empty())
            .collect();
        if text_lines.is_empty() {
            return Err(SrtError::EmptyCue { line });
        }
        cues.push(crate::LocatedCue {
            line,
            cue: Cue {
                start_ms,
                end_ms,
                lines: text_lines,
                speaker: None,
            },
        });
    }
    if cues.is_empty() {
        return Err(SrtError::Empty);
    }
    Ok(cues)
}

/// [`parse_srt_located`] without the line numbers.
pub fn parse_srt(text: &str) -> Result<Vec<Cue>, SrtError> {
    Ok(parse_srt_located(text)?
        .into_iter()
        .map(|c| c.cue)
        .collect())
}

/// Removes HTML-like tags (`<i>`, `</font>`: a `<` followed by a letter or `/` and
/// closed on the line; a bare `<3` stays text, SRT has no escaping) and ASS-style `{\…}`
/// overrides.
fn strip_srt_markup(line: &str) -> String {
    let mut without_tags = String::with_capacity(line.len());
    let mut rest = line;
    while let Some(open) = rest.find('<') {
        without_tags.push_str(&rest[..open]);
        let after = &rest[open + 1..];
        let is_tag = after.starts_with(|c: char| c.is_ascii_alphabetic() || c == '/');
        match after.find('>') {
            Some(close) if is_tag => rest = &after[close + 1..],
            _ => {
                without_tags.push('<');
                rest = after;
            }
        }
    }
    without_tags.push_str(rest);
    let mut out = String::with_capacity(without_tags.len());
    let mut rest = without_tags.as_str();
    while let Some(open) = rest.find("{\\") {
        out.push_str(&rest[..open]);
        match rest[open..].find('}') {
            Some(close) => rest = &rest[open + close + 1..],
            None => rest = "",
        }
    }
    out.push_str(rest);
    out
}
