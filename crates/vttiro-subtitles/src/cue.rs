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
    /// Characters per line, counted as grapheme clusters (what a viewer sees as one
    /// character: an accented letter, a CJK ideograph, an emoji with modifiers). A single
    /// word longer than this gets a line of its own rather than being cut.
    pub max_chars_per_line: usize,
    pub max_lines: usize,
    /// Longest time one cue stays on screen.
    pub max_cue_ms: i64,
    /// Short cues are extended into following silence up to this length so they can be
    /// read, but never more than [`LayoutRules::max_linger_ms`] past their last word.
    pub min_cue_ms: i64,
    /// How long a cue may stay up after its last word has been spoken.
    pub max_linger_ms: i64,
    /// Gap kept between consecutive cues so players show them as separate events.
    pub min_gap_ms: i64,
    /// Reading speed guideline in characters per second: layout prefers cues that respect it
    /// and extends fast cues into following silence; it is never a hard limit because the
    /// speaker's pace is not ours to change.
    pub max_cps: f32,
    /// A silence longer than this between two words always ends the cue.
    pub split_pause_ms: i64,
}

impl LayoutRules {
    /// Reading speed for fast adult speech (20 characters per second).
    pub fn fast() -> Self {
        LayoutRules {
            max_cps: 20.0,
            ..Self::default()
        }
    }

    /// Reading speed for young viewers (13 characters per second).
    pub fn children() -> Self {
        LayoutRules {
            max_cps: 13.0,
            ..Self::default()
        }
    }
}

/// Characters as a viewer counts them (grapheme clusters).
pub fn display_width(text: &str) -> usize {
    unicode_segmentation::UnicodeSegmentation::graphemes(text, true).count()
}

impl Default for LayoutRules {
    fn default() -> Self {
        LayoutRules {
            max_chars_per_line: 42,
            max_lines: 2,
            max_cue_ms: 7000,
            // 5/6 s and two frames at 24 fps: the usual broadcast minimums.
            min_cue_ms: 833,
            max_linger_ms: 500,
            min_gap_ms: 83,
            max_cps: 17.0,
            split_pause_ms: 600,
        }
    }
}
