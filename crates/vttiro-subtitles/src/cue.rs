/// One subtitle cue: what is on screen between two times.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cue {
    pub start_ms: i64,
    pub end_ms: i64,
    /// The text as displayed, one entry per screen line, without markup or escaping.
    pub lines: Vec<String>,
    /// Who is speaking, written as a WebVTT voice span (`<v Name>`) or an SRT `Name:` prefix.
    pub speaker: Option<String>,
}

impl Cue {
    pub fn duration_ms(&self) -> i64 {
        self.end_ms - self.start_ms
    }

    /// The lines joined with newlines, as a player would show them.
    pub fn text(&self) -> String {
        self.lines.join("\n")
    }
}

/// Readability limits for [`crate::layout`]. The defaults are the common broadcast and
/// streaming guidelines for Latin-script languages.
#[derive(Debug, Clone, PartialEq)]
pub struct LayoutRules {
    /// Characters per line (Unicode scalar values). A single word longer than this gets a
    /// line of its own rather than being cut.
    pub max_chars_per_line: usize,
    pub max_lines: usize,
    /// Longest time one cue stays on screen.
    pub max_cue_ms: i64,
    /// Short cues are extended into following silence up to this length so they can be read.
    pub min_cue_ms: i64,
    /// Gap kept between consecutive cues so players show them as separate events.
    pub min_gap_ms: i64,
    /// Reading speed guideline in characters per second: layout prefers cues that respect it
    /// and extends fast cues into following silence; it is never a hard limit because the
    /// speaker's pace is not ours to change.
    pub max_cps: f32,
    /// A silence longer than this between two words always ends the cue.
    pub split_pause_ms: i64,
}

impl Default for LayoutRules {
    fn default() -> Self {
        LayoutRules {
            max_chars_per_line: 42,
            max_lines: 2,
            max_cue_ms: 7000,
            min_cue_ms: 1000,
            min_gap_ms: 80,
            max_cps: 17.0,
            split_pause_ms: 600,
        }
    }
}
