//! The layout report: which readability rules a set of cues breaks, cue by cue. The layout
//! engine attaches one to what it produces, and the validator runs the same checks on any
//! subtitle file, so "vttiro's own output is clean" and "this file is clean" mean the same.

use serde_json::{json, Value};

use crate::cue::{display_width, Cue, LayoutRules};

/// A readability rule from [`LayoutRules`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum LayoutRule {
    /// A line longer than `max_chars_per_line` (only a single over-long word does this).
    LineLength,
    /// More lines than `max_lines`.
    LineCount,
    /// Longer on screen than `max_cue_ms`.
    MaxDuration,
    /// Shorter on screen than `min_cue_ms`.
    MinDuration,
    /// Faster than `max_cps` characters per second.
    ReadingSpeed,
    /// Less than `min_gap_ms` before the next cue.
    Gap,
    /// Starts before the previous cue ends, or ends before it starts.
    Order,
    /// Starts before its first word is spoken.
    EarlyStart,
}

impl LayoutRule {
    pub fn as_str(self) -> &'static str {
        match self {
            LayoutRule::LineLength => "line_length",
            LayoutRule::LineCount => "line_count",
            LayoutRule::MaxDuration => "max_duration",
            LayoutRule::MinDuration => "min_duration",
            LayoutRule::ReadingSpeed => "reading_speed",
            LayoutRule::Gap => "gap",
            LayoutRule::Order => "order",
            LayoutRule::EarlyStart => "early_start",
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct LayoutViolation {
    /// Index of the cue (0-based).
    pub cue: usize,
    pub rule: LayoutRule,
    pub detail: String,
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct LayoutReport {
    pub cues: usize,
    pub violations: Vec<LayoutViolation>,
}

impl LayoutReport {
    pub fn is_clean(&self) -> bool {
        self.violations.is_empty()
    }

    /// The report as JSON: `{"cues": n, "violations": [{"cue", "rule", "detail"}]}`.
    pub fn to_json(&self) -> Value {
        json!({
            "cues": self.cues,
            "violations": self
                .violations
                .iter()
                .map(|v| json!({"cue": v.cue, "rule": v.rule.as_str(), "detail": v.detail}))
                .collect::<Vec<_>>(),
        })
    }
}

/// Every rule of `rules` that `cues` break. Reading speed counts the characters of all
/// lines (grapheme clusters, line breaks not counted) over the time on screen.
pub fn check_layout(cues: &[Cue], rules: &LayoutRules) -> Vec<LayoutViolation> {
    let mut out = Vec::new();
    let mut push = |cue: usize, rule: LayoutRule, detail: String| {
        out.push(LayoutViolation { cue, rule, detail })
    };
    for (k, cue) in cues.iter().enumerate() {
        let duration = cue.end_ms - cue.start_ms;
        if cue.lines.len() > rules.max_lines {
            push(
                k,
                LayoutRule::LineCount,
                format!("{} lines (at most {})", cue.lines.len(), rules.max_lines),
            );
        }
        for line in &cue.lines {
            let width = display_width(line);
            if width > rules.max_chars_per_line {
                push(
                    k,
                    LayoutRule::LineLength,
                    format!(
                        "line of {width} characters (at most {}): {line:?}",
                        rules.max_chars_per_line
                    ),
                );
            }
        }
        if duration > rules.max_cue_ms {
            push(
                k,
                LayoutRule::MaxDuration,
                format!("{duration} ms on screen (at most {})", rules.max_cue_ms),
            );
        }
        if duration < rules.min_cue_ms {
            push(
                k,
                LayoutRule::MinDuration,
                format!("{duration} ms on screen (at least {})", rules.min_cue_ms),
            );
        }
        let chars: usize = cue.lines.iter().map(|l| display_width(l)).sum();
        if duration > 0 {
            let cps = chars as f64 * 1000.0 / duration as f64;
            if cps > f64::from(rules.max_cps) + 1e-9 {
                push(
                    k,
                    LayoutRule::ReadingSpeed,
                    format!("{cps:.1} characters per second (at most {})", rules.max_cps),
                );
            }
        } else {
            push(
                k,
                LayoutRule::Order,
                format!("ends at or before it starts ({duration} ms)"),
            );
        }
        if let Some(next) = cues.get(k + 1) {
            let gap = next.start_ms - cue.end_ms;
            if gap < 0 {
                push(
                    k,
                    LayoutRule::Order,
                    format!("overlaps the next cue by {} ms", -gap),
                );
            } else if gap < rules.min_gap_ms {
                push(
                    k,
                    LayoutRule::Gap,
                    format!(
                        "{gap} ms before the next cue (at least {})",
                        rules.min_gap_ms
                    ),
                );
            }
        }
    }
    out
}
