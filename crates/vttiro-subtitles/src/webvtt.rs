use vttiro_core::ErrorCode;

use crate::cue::Cue;
use crate::timestamp::format_timestamp;

/// What goes into a WebVTT file besides the cues.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct VttOptions {
    /// `Kind:` header metadata (`captions` or `subtitles`), as HLS and many players read it.
    pub kind: Option<String>,
    /// `Language:` header metadata (a BCP 47 tag such as `en`).
    pub language: Option<String>,
    /// Lines of a `NOTE` block after the header (source file, model, tool version).
    pub note: Vec<String>,
    /// Number the cues `1`, `2`, … as cue identifiers, so players and editors can refer
    /// to them.
    pub cue_ids: bool,
    /// A `STYLE` block giving every speaker's voice span its own colour.
    pub speaker_colours: bool,
}

/// Colours readable on the usual semi-transparent black cue background, distinct for
/// the common colour-vision deficiencies (Okabe–Ito, with white first).
const SPEAKER_COLOURS: [&str; 8] = [
    "#ffffff", "#e69f00", "#56b4e9", "#f0e442", "#009e73", "#cc79a7", "#d55e00", "#0072b2",
];

/// Renders cues as a WebVTT file with default options (no header metadata, no
/// identifiers, no style).
pub fn to_webvtt(cues: &[Cue]) -> String {
    to_webvtt_with(cues, &VttOptions::default())
}

/// Renders cues as a WebVTT file.
///
/// Times are written as given (`HH:MM:SS.mmm`); [`crate::layout`] already guarantees valid,
/// ordered times. Text is escaped (`&`, `<`, `>`), so cue text can never be mistaken for
/// markup or a timing arrow. A speaker becomes a voice span `<v Name>` at the start of the
/// cue, which spans the whole cue without a closing tag. Empty lines are dropped, because a
/// blank line would end the cue early, and cues left without text are skipped. Header
/// metadata, note and style text is cleaned the same way: no blank lines, no `-->`.
pub fn to_webvtt_with(cues: &[Cue], options: &VttOptions) -> String {
    let mut out = String::from("WEBVTT\n");
    for (key, value) in [("Kind", &options.kind), ("Language", &options.language)] {
        if let Some(value) = value.as_deref().map(block_safe).filter(|v| !v.is_empty()) {
            out.push_str(&format!("{key}: {value}\n"));
        }
    }
    let note: Vec<String> = options
        .note
        .iter()
        .map(|line| block_safe(line))
        .filter(|line| !line.is_empty())
        .collect();
    if !note.is_empty() {
        out.push_str("\nNOTE\n");
        for line in note {
            out.push_str(&line);
            out.push('\n');
        }
    }
    if options.speaker_colours {
        let mut speakers: Vec<String> = Vec::new();
        for cue in cues {
            if let Some(name) = cue.speaker.as_deref().map(voice_name) {
                if !name.is_empty() && !speakers.contains(&name) {
                    speakers.push(name);
                }
            }
        }
        if !speakers.is_empty() {
            out.push_str("\nSTYLE\n");
            for (k, name) in speakers.iter().enumerate() {
                out.push_str(&format!(
                    "::cue(v[voice=\"{}\"]) {{ color: {}; }}\n",
                    css_string(name),
                    SPEAKER_COLOURS[k % SPEAKER_COLOURS.len()]
                ));
            }
        }
    }
    let mut number = 0;
    for cue in cues {
        let lines = displayable_lines(cue);
        if lines.is_empty() {
            continue;
        }
        number += 1;
        out.push('\n');
        if options.cue_ids {
            out.push_str(&format!("{number}\n"));
        }
        out.push_str(&format_timestamp(cue.start_ms, '.'));
        out.push_str(" --> ");
        out.push_str(&format_timestamp(cue.end_ms, '.'));
        out.push('\n');
        for (k, line) in lines.iter().enumerate() {
            if k == 0 {
                if let Some(speaker) = cue.speaker.as_deref().map(voice_name) {
                    if !speaker.is_empty() {
                        out.push_str("<v ");
                        out.push_str(&escape(&speaker));
                        // "Bob--" followed by the tag's ">" would read as a timing arrow;
                        // the parser trims the space back off.
                        if speaker.ends_with('-') {
                            out.push(' ');
                        }
                        out.push('>');
                    }
                }
            }
            out.push_str(&escape(line));
            out.push('\n');
        }
    }
    out
}

/// A speaker name as a voice annotation: one line, trimmed.
fn voice_name(speaker: &str) -> String {
    speaker.replace(['\n', '\r'], " ").trim().to_string()
}

/// Text for a header or NOTE/STYLE line: one line, no `-->` (which would start a cue).
fn block_safe(text: &str) -> String {
    text.replace(['\n', '\r'], " ")
        .replace("-->", "->")
        .trim()
        .to_string()
}

/// A CSS string body: quotes and backslashes escaped, so any speaker name selects itself.
fn css_string(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        if matches!(c, '"' | '\\') {
            out.push('\\');
        }
        out.push(c);
    }
    out.replace("-->", "-\\->")
}

/// The cue's lines with embedded newlines split out and blank lines removed.
pub(crate) fn displayable_lines(cue: &Cue) -> Vec<&str> {
    cue.lines
        .iter()
        // A lone CR ends a line in WebVTT as LF does; `str::lines` would keep it, and
        // two of them would end the cue early, losing the rest of its text.
        .flat_map(|line| line.split(['\r', '\n']))
        .filter(|line| !line.trim().is_empty())
        .collect()
}

fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            other => out.push(other),
        }
    }
    out
}

fn unescape(text: &str) -> String {
    const ENTITIES: [(&str, &str); 6] = [
        ("&amp;", "&"),
        ("&lt;", "<"),
        ("&gt;", ">"),
        ("&nbsp;", "\u{a0}"),
        ("&lrm;", "\u{200e}"),
        ("&rlm;", "\u{200f}"),
    ];
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(at) = rest.find('&') {
        out.push_str(&rest[..at]);
        rest = &rest[at..];
        match ENTITIES.iter().find(|(entity, _)| rest.starts_with(entity)) {
            Some((entity, replacement)) => {
                out.push_str(replacement);
                rest = &rest[entity.len()..];
            }
            None => {
                out.push('&');
                rest = &rest[1..];
            }
        }
    }
    out.push_str(rest);
    out
}

/// Why a WebVTT text is invalid, with the 1-based line where the problem is. The text itself
/// has no name here; callers reading a file prefix its path.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum VttError {
    #[error("line {line}: missing \"WEBVTT\" header, found {found:?}")]
    MissingHeader { line: usize, found: String },

    #[error("line {line}: expected a cue timing line \"start --> end\", found {found:?}")]
    ExpectedTiming { line: usize, found: String },

    #[error("line {line}: invalid timestamp {value:?}, expected [hh:]mm:ss.ttt")]
    BadTimestamp { line: usize, value: String },

    #[error("line {line}: cue ends at {end}, not after its start {start}")]
    EndNotAfterStart {
        line: usize,
        start: String,
        end: String,
    },

    #[error("line {line}: cue starts at {start}, before the previous cue's start {previous}")]
    StartsBeforePrevious {
        line: usize,
        start: String,
        previous: String,
    },

    #[error("line {line}: cue has no text")]
    EmptyCue { line: usize },

    #[error("line {line}: cue text contains \"-->\"; is a blank line missing between cues?")]
    ArrowInText { line: usize },
}

impl VttError {
    pub fn line(&self) -> usize {
        match self {
            VttError::MissingHeader { line, .. }
            | VttError::ExpectedTiming { line, .. }
            | VttError::BadTimestamp { line, .. }
            | VttError::EndNotAfterStart { line, .. }
            | VttError::StartsBeforePrevious { line, .. }
            | VttError::EmptyCue { line }
            | VttError::ArrowInText { line } => *line,
        }
    }

    /// Every syntax error is invalid subtitles (exit code 16, HTTP 422).
    pub fn code(&self) -> ErrorCode {
        ErrorCode::InvalidSubtitles
    }
}

/// Checks that `text` is WebVTT we can trust: the `WEBVTT` header, cue timing syntax,
/// `start < end`, cue starts in non-decreasing order, and non-empty cue text.
pub fn validate_webvtt(text: &str) -> Result<(), VttError> {
    parse_webvtt(text).map(|_| ())
}

/// Parses WebVTT into cues, validating as [`validate_webvtt`] describes.
///
/// `NOTE`, `STYLE` and `REGION` blocks and cue settings are skipped. A leading voice span
/// (`<v Name>`, also `<v.class Name>`) becomes [`Cue::speaker`]; every other tag is removed
/// and the entities `&amp; &lt; &gt; &nbsp; &lrm; &rlm;` are decoded, so cue lines hold the
/// plain text a viewer reads. Lines that are blank apart from whitespace end a block.
pub fn parse_webvtt(text: &str) -> Result<Vec<Cue>, VttError> {
    Ok(parse_webvtt_located(text)?
        .into_iter()
        .map(|located| located.cue)
        .collect())
}

/// A parsed cue and the 1-based line of its timing line, for messages about it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LocatedCue {
    pub line: usize,
    pub cue: Cue,
}

/// [`parse_webvtt`], keeping where each cue is in the file.
pub fn parse_webvtt_located(text: &str) -> Result<Vec<LocatedCue>, VttError> {
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let lines: Vec<&str> = split_lines(text);
    let header = lines.first().copied().unwrap_or("");
    let header_ok = header
        .strip_prefix("WEBVTT")
        .is_some_and(|rest| rest.is_empty() || rest.starts_with([' ', '\t']));
    if !header_ok {
        return Err(VttError::MissingHeader {
            line: 1,
            found: header.chars().take(40).collect(),
        });
    }
    let is_blank = |i: usize| lines[i].trim().is_empty();

    // Header metadata runs to the first blank line; like browsers, accept a cue that follows
    // the header without one.
    let mut i = 1;
    while i < lines.len() && !is_blank(i) && !lines[i].contains("-->") {
        i += 1;
    }

    let mut cues = Vec::new();
    let mut previous_start: Option<i64> = None;
    loop {
        while i < lines.len() && is_blank(i) {
            i += 1;
        }
        if i >= lines.len() {
            break;
        }
        let block_start = i;
        while i < lines.len() && !is_blank(i) {
            i += 1;
        }
        let block = &lines[block_start..i];
        if is_non_cue_block(block[0]) {
            continue;
        }
        let (timing_index, timing) = if block[0].contains("-->") {
            (0, block[0])
        } else {
            match block.get(1) {
                Some(line) if line.contains("-->") => (1, *line),
                _ => {
                    let (line, found) = match block.get(1) {
                        Some(found) => (block_start + 2, *found),
                        None => (block_start + 1, block[0]),
                    };
                    return Err(VttError::ExpectedTiming {
                        line,
                        found: found.to_string(),
                    });
                }
            }
        };
        let timing_line = block_start + timing_index + 1;
        let (start_ms, end_ms) = parse_timing(timing, timing_line)?;
        if end_ms <= start_ms {
            return Err(VttError::EndNotAfterStart {
                line: timing_line,
                start: format_timestamp(start_ms, '.'),
                end: format_timestamp(end_ms, '.'),
            });
        }
        if let Some(previous) = previous_start.filter(|&p| start_ms < p) {
            return Err(VttError::StartsBeforePrevious {
                line: timing_line,
                start: format_timestamp(start_ms, '.'),
                previous: format_timestamp(previous, '.'),
            });
        }
        previous_start = Some(start_ms);
        let payload = &block[timing_index + 1..];
        if payload.is_empty() {
            return Err(VttError::EmptyCue { line: timing_line });
        }
        if let Some(k) = payload.iter().position(|l| l.contains("-->")) {
            return Err(VttError::ArrowInText {
                line: timing_line + 1 + k,
            });
        }
        let (speaker, lines) = decode_payload(payload);
        // Markup alone (`<i></i>`) shows nothing: as empty as no text at all.
        if lines.is_empty() {
            return Err(VttError::EmptyCue { line: timing_line });
        }
        cues.push(LocatedCue {
            line: timing_line,
            cue: Cue {
                start_ms,
                end_ms,
                lines,
                speaker,
            },
        });
    }
    Ok(cues)
}

fn split_lines(text: &str) -> Vec<&str> {
    let mut lines = Vec::new();
    let mut rest = text;
    while let Some(at) = rest.find(['\r', '\n']) {
        lines.push(&rest[..at]);
        let skip = if rest[at..].starts_with("\r\n") { 2 } else { 1 };
        rest = &rest[at + skip..];
    }
    if !rest.is_empty() {
        lines.push(rest);
    }
    lines
}

fn is_non_cue_block(first_line: &str) -> bool {
    ["NOTE", "STYLE", "REGION"].iter().any(|keyword| {
        first_line
            .strip_prefix(keyword)
            .is_some_and(|rest| rest.is_empty() || rest.starts_with([' ', '\t']))
    })
}

fn parse_timing(line: &str, line_number: usize) -> Result<(i64, i64), VttError> {
    let bad = |value: &str| VttError::BadTimestamp {
        line: line_number,
        value: value.to_string(),
    };
    let (left, right) = line.split_once("-->").ok_or_else(|| bad(line))?;
    let start_text = left.trim();
    let end_text = right.split_whitespace().next().unwrap_or("");
    let start = parse_clock(start_text, '.').ok_or_else(|| bad(start_text))?;
    let end = parse_clock(end_text, '.').ok_or_else(|| bad(end_text))?;
    Ok((start, end))
}

/// `[hh:]mm:ss.ttt` with at least two hour digits when hours are present, minutes and
/// seconds below 60 and exactly three fraction digits, as the WebVTT spec requires.
/// `[hh:]mm:ss<sep>mmm` with `sep` as the milliseconds separator.
pub(crate) fn parse_clock(text: &str, sep: char) -> Option<i64> {
    let (clock, fraction) = text.split_once(sep)?;
    let digits = |s: &str, len: Option<usize>| {
        let ok = !s.is_empty()
            && s.chars().all(|c| c.is_ascii_digit())
            && len.is_none_or(|l| s.len() == l);
        ok.then(|| s.parse::<i64>().ok()).flatten()
    };
    let millis = digits(fraction, Some(3))?;
    let parts: Vec<&str> = clock.split(':').collect();
    let (hours, minutes, seconds) = match parts.as_slice() {
        [h, m, s] if h.len() >= 2 => (digits(h, None)?, digits(m, Some(2))?, digits(s, Some(2))?),
        [m, s] => (0, digits(m, Some(2))?, digits(s, Some(2))?),
        _ => return None,
    };
    if minutes > 59 || seconds > 59 {
        return None;
    }
    // Checked: a hostile file can hold hours enough to overflow i64 milliseconds.
    hours
        .checked_mul(3_600_000)?
        .checked_add((minutes * 60 + seconds) * 1000 + millis)
}

fn decode_payload(payload: &[&str]) -> (Option<String>, Vec<String>) {
    let mut speaker = None;
    let mut lines = Vec::with_capacity(payload.len());
    for (k, line) in payload.iter().enumerate() {
        let mut line: &str = line;
        if k == 0 {
            if let Some((annotation, rest)) = leading_voice_span(line) {
                // Trimmed after decoding: `&nbsp;` is whitespace the writer would drop.
                speaker = Some(unescape(annotation).trim().to_string()).filter(|s| !s.is_empty());
                line = rest;
            }
        }
        let text = unescape(&strip_tags(line));
        if !text.trim().is_empty() {
            lines.push(text);
        }
    }
    (speaker, lines)
}

/// Splits `<v Name>rest` or `<v.class Name>rest` into the annotation and the rest.
fn leading_voice_span(line: &str) -> Option<(&str, &str)> {
    let tag_body = line.strip_prefix("<v")?;
    if !tag_body.starts_with([' ', '\t', '.', '>']) {
        return None;
    }
    let close = tag_body.find('>')?;
    let inside = &tag_body[..close];
    let annotation = inside
        .split_once([' ', '\t'])
        .map_or("", |(_, name)| name.trim());
    Some((annotation, &tag_body[close + 1..]))
}

fn strip_tags(line: &str) -> String {
    let mut out = String::with_capacity(line.len());
    let mut rest = line;
    while let Some(open) = rest.find('<') {
        out.push_str(&rest[..open]);
        match rest[open..].find('>') {
            Some(close) => rest = &rest[open + close + 1..],
            None => {
                // An unterminated tag runs to the end of the line.
                rest = "";
            }
        }
    }
    out.push_str(rest);
    out
}

/// Things a WebVTT parser accepts but skips, which usually mean an authoring mistake: cue
/// settings that are unknown or malformed (players silently drop them), as
/// `(line, message)`. Call it on text that [`parse_webvtt`] accepted.
pub fn webvtt_setting_warnings(text: &str) -> Vec<(usize, String)> {
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let mut warnings = Vec::new();
    for (index, line) in split_lines(text).iter().enumerate() {
        let Some((_, right)) = line.split_once("-->") else {
            continue;
        };
        let mut tokens = right.split_whitespace();
        tokens.next(); // the end timestamp
        for setting in tokens {
            if let Some(problem) = setting_problem(setting) {
                warnings.push((
                    index + 1,
                    format!("cue setting {setting:?} ignored: {problem}"),
                ));
            }
        }
    }
    warnings
}

/// Why one `name:value` cue setting would be dropped by the W3C parsing rules, if it would.
fn setting_problem(setting: &str) -> Option<String> {
    let Some((name, value)) = setting.split_once(':') else {
        return Some("not name:value".into());
    };
    if value.is_empty() {
        return Some("empty value".into());
    }
    let percentage = |v: &str| {
        v.strip_suffix('%')
            .and_then(|n| n.parse::<f64>().ok())
            .is_some_and(|n| (0.0..=100.0).contains(&n))
    };
    let ok = match name {
        "vertical" => matches!(value, "rl" | "lr"),
        "line" => {
            let (position, alignment) = value.split_once(',').unwrap_or((value, "start"));
            (percentage(position) || position.parse::<f64>().is_ok_and(|n| n.fract() == 0.0))
                && matches!(alignment, "start" | "center" | "end")
        }
        "position" => {
            let (position, alignment) = value.split_once(',').unwrap_or((value, "center"));
            percentage(position) && matches!(alignment, "line-left" | "center" | "line-right")
        }
        "size" => percentage(value),
        "align" => matches!(value, "start" | "center" | "end" | "left" | "right"),
        "region" => !value.contains("-->"),
        _ => return Some(format!("unknown setting {name:?}")),
    };
    (!ok).then(|| format!("invalid value for {name}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cue_settings_are_checked_like_a_browser_would() {
        let text = "WEBVTT\n\n00:01.000 --> 00:02.000 align:center line:90% position:10%,line-left size:50%\nok\n\n00:03.000 --> 00:04.000 align:middle colour:red line:-1,end size:120%\nhm\n";
        let warnings = webvtt_setting_warnings(text);
        let lines: Vec<usize> = warnings.iter().map(|w| w.0).collect();
        assert_eq!(lines, vec![6, 6, 6], "{warnings:?}");
        assert!(warnings[0].1.contains("align"));
        assert!(warnings[1].1.contains("unknown setting \"colour\""));
        assert!(warnings[2].1.contains("size"));
    }

    #[test]
    fn timestamps_follow_the_spec() {
        assert_eq!(parse_clock("00:01.500", '.'), Some(1500));
        assert_eq!(parse_clock("01:02:03.004", '.'), Some(3_723_004));
        assert_eq!(parse_clock("100:00:00.000", '.'), Some(360_000_000));
        for bad in [
            "1:02:03.004",
            "00:1.000",
            "00:60.000",
            "00:00:00,000",
            "00:00.00",
            "00:00",
            "aa:bb.ccc",
            "",
        ] {
            assert_eq!(parse_clock(bad, '.'), None, "{bad:?} must be rejected");
        }
    }

    #[test]
    fn escaping_round_trips() {
        let text = "Tom & Jerry <3 a->b &amp;";
        assert_eq!(escape(text), "Tom &amp; Jerry &lt;3 a-&gt;b &amp;amp;");
        assert_eq!(unescape(&escape(text)), text);
        assert_eq!(unescape("&nbsp;&unknown; &"), "\u{a0}&unknown; &");
    }

    #[test]
    fn voice_spans_and_tags() {
        assert_eq!(
            leading_voice_span("<v Anna Lee>hi"),
            Some(("Anna Lee", "hi"))
        );
        assert_eq!(
            leading_voice_span("<v.loud Bob>hey</v>"),
            Some(("Bob", "hey</v>"))
        );
        assert_eq!(leading_voice_span("<vx>no"), None);
        assert_eq!(strip_tags("<i>a</i> <c.red>b</c> <00:00:01.000>c"), "a b c");
    }
}
