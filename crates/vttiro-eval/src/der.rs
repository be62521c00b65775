//! Diarization error rate and the RTTM files it is usually computed from.
//!
//! DER here is the NIST definition as pyannote.metrics computes it with no collar and
//! overlapping speech scored: over every stretch of time, `total` counts the reference
//! speakers talking, `missed` the reference speakers beyond the number of hypothesis
//! speakers, `false_alarm` the hypothesis speakers beyond the reference ones, and
//! `confusion` the speakers present on both sides but not matched by the one-to-one
//! label mapping that maximises the time both agree on (found with the Hungarian
//! algorithm). DER = (missed + false alarm + confusion) / total.

use std::collections::BTreeMap;

use serde::Serialize;

/// One speaker turn: `speaker` talks from `start_ms` to `end_ms`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SpeakerTurn {
    /// The recording the turn belongs to (RTTM's file id).
    pub file: String,
    pub start_ms: i64,
    pub end_ms: i64,
    pub speaker: String,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RttmError {
    #[error("line {line}: expected `SPEAKER file channel onset duration <NA> <NA> name <NA> <NA>`, found {found:?}")]
    Malformed { line: usize, found: String },
    #[error("line {line}: invalid {field} {value:?}")]
    BadNumber {
        line: usize,
        field: &'static str,
        value: String,
    },
}

impl RttmError {
    pub fn line(&self) -> usize {
        match self {
            RttmError::Malformed { line, .. } | RttmError::BadNumber { line, .. } => *line,
        }
    }
}

/// Parses the `SPEAKER` lines of an RTTM file (other record types, blank lines and `;`
/// comments are skipped). Onsets and durations are seconds; they are rounded to whole
/// milliseconds, which is exact for the three decimals RTTM writers use.
pub fn parse_rttm(text: &str) -> Result<Vec<SpeakerTurn>, RttmError> {
    let mut turns = Vec::new();
    for (index, line) in text.lines().enumerate() {
        let line_number = index + 1;
        let trimmed = line.trim();
        if trimmed.is_empty() || trimmed.starts_with(';') {
            continue;
        }
        let fields: Vec<&str> = trimmed.split_whitespace().collect();
        if fields[0] != "SPEAKER" {
            continue;
        }
        if fields.len() < 8 {
            return Err(RttmError::Malformed {
                line: line_number,
                found: trimmed.chars().take(80).collect(),
            });
        }
        let seconds = |field: &'static str, value: &str| -> Result<f64, RttmError> {
            value
                .parse::<f64>()
                .ok()
                .filter(|v| v.is_finite() && *v >= 0.0)
                .ok_or_else(|| RttmError::BadNumber {
                    line: line_number,
                    field,
                    value: value.to_string(),
                })
        };
        let onset = seconds("onset", fields[3])?;
        let duration = seconds("duration", fields[4])?;
        let start_ms = (onset * 1000.0).round() as i64;
        let end_ms = ((onset + duration) * 1000.0).round() as i64;
        if end_ms > start_ms {
            turns.push(SpeakerTurn {
                file: fields[1].to_string(),
                start_ms,
                end_ms,
                speaker: fields[7].to_string(),
            });
        }
    }
    Ok(turns)
}

/// DER components in milliseconds of speaker time.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
pub struct DerStats {
    /// Reference speaker time (overlapping speakers each count).
    pub total_ms: i64,
    pub missed_ms: i64,
    pub false_alarm_ms: i64,
    pub confusion_ms: i64,
    /// Distinct speakers on each side.
    pub reference_speakers: usize,
    pub hypothesis_speakers: usize,
}

impl DerStats {
    pub fn errors_ms(&self) -> i64 {
        self.missed_ms + self.false_alarm_ms + self.confusion_ms
    }

    /// Errors over reference speaker time; 0 when both sides are empty and infinite when
    /// only the reference is.
    pub fn der(&self) -> f64 {
        match (self.errors_ms(), self.total_ms) {
            (0, _) => 0.0,
            (_, 0) => f64::INFINITY,
            (errors, total) => errors as f64 / total as f64,
        }
    }

    fn ratio(&self, part: i64) -> f64 {
        if self.total_ms == 0 {
            0.0
        } else {
            part as f64 / self.total_ms as f64
        }
    }

    pub fn missed_rate(&self) -> f64 {
        self.ratio(self.missed_ms)
    }

    pub fn false_alarm_rate(&self) -> f64 {
        self.ratio(self.false_alarm_ms)
    }

    pub fn confusion_rate(&self) -> f64 {
        self.ratio(self.confusion_ms)
    }
}

/// DER of `hypothesis` against `reference` for one recording (file ids are ignored; group
/// turns by [`SpeakerTurn::file`] first for multi-recording files and add the stats).
pub fn diarization_error_rate(reference: &[SpeakerTurn], hypothesis: &[SpeakerTurn]) -> DerStats {
    let ref_labels = labels(reference);
    let hyp_labels = labels(hypothesis);
    let mut boundaries: Vec<i64> = reference
        .iter()
        .chain(hypothesis)
        .flat_map(|t| [t.start_ms, t.end_ms])
        .collect();
    boundaries.sort_unstable();
    boundaries.dedup();

    let active = |turns: &[SpeakerTurn], index: &BTreeMap<&str, usize>, from: i64, to: i64| {
        let mut on: Vec<usize> = turns
            .iter()
            .filter(|t| t.start_ms <= from && t.end_ms >= to)
            .map(|t| index[t.speaker.as_str()])
            .collect();
        // A speaker listed twice over the same stretch still speaks once.
        on.sort_unstable();
        on.dedup();
        on
    };
    let mut stats = DerStats {
        reference_speakers: ref_labels.len(),
        hypothesis_speakers: hyp_labels.len(),
        ..DerStats::default()
    };
    let mut cooccurrence = vec![vec![0i64; hyp_labels.len()]; ref_labels.len()];
    // Each elementary stretch with the sets of speakers active on each side.
    let mut stretches: Vec<(i64, Vec<usize>, Vec<usize>)> = Vec::new();
    for pair in boundaries.windows(2) {
        let (from, to) = (pair[0], pair[1]);
        let on_ref = active(reference, &ref_labels, from, to);
        let on_hyp = active(hypothesis, &hyp_labels, from, to);
        if on_ref.is_empty() && on_hyp.is_empty() {
            continue;
        }
        let duration = to - from;
        for &r in &on_ref {
            for &h in &on_hyp {
                cooccurrence[r][h] += duration;
            }
        }
        stretches.push((duration, on_ref, on_hyp));
    }
    let mapping = best_mapping(&cooccurrence);
    for (duration, on_ref, on_hyp) in &stretches {
        let (r, h) = (on_ref.len() as i64, on_hyp.len() as i64);
        stats.total_ms += duration * r;
        stats.missed_ms += duration * (r - h).max(0);
        stats.false_alarm_ms += duration * (h - r).max(0);
        let correct = on_ref
            .iter()
            .filter(|&&ri| mapping[ri].is_some_and(|hi| on_hyp.contains(&hi)))
            .count() as i64;
        stats.confusion_ms += duration * (r.min(h) - correct);
    }
    stats
}

fn labels(turns: &[SpeakerTurn]) -> BTreeMap<&str, usize> {
    let mut index = BTreeMap::new();
    for turn in turns {
        let next = index.len();
        index.entry(turn.speaker.as_str()).or_insert(next);
    }
    index
}

/// The one-to-one assignment of rows to columns maximising the summed weight (the
/// Hungarian algorithm on the negated, squared-up matrix): `mapping[row]` is the column.
fn best_mapping(weights: &[Vec<i64>]) -> Vec<Option<usize>> {
    let rows = weights.len();
    let cols = weights.first().map_or(0, Vec::len);
    let n = rows.max(cols);
    if n == 0 {
        return vec![None; rows];
    }
    let max = weights.iter().flatten().copied().max().unwrap_or(0);
    // Minimise cost = max - weight; padding cells cost `max` (weight 0).
    let cost = |i: usize, j: usize| -> i64 {
        if i < rows && j < cols {
            max - weights[i][j]
        } else {
            max
        }
    };
    // Potentials and the shortest augmenting path method, 1-based with a virtual column 0.
    let inf = i64::MAX / 4;
    let mut u = vec![0i64; n + 1];
    let mut v = vec![0i64; n + 1];
    let mut row_of_col = vec![0usize; n + 1];
    let mut way = vec![0usize; n + 1];
    for i in 1..=n {
        row_of_col[0] = i;
        let mut j0 = 0;
        let mut min_to = vec![inf; n + 1];
        let mut used = vec![false; n + 1];
        loop {
            used[j0] = true;
            let i0 = row_of_col[j0];
            let mut delta = inf;
            let mut j1 = 0;
            for j in 1..=n {
                if used[j] {
                    continue;
                }
                let reduced = cost(i0 - 1, j - 1) - u[i0] - v[j];
                if reduced < min_to[j] {
                    min_to[j] = reduced;
                    way[j] = j0;
                }
                if min_to[j] < delta {
                    delta = min_to[j];
                    j1 = j;
                }
            }
            for j in 0..=n {
                if used[j] {
                    u[row_of_col[j]] += delta;
                    v[j] -= delta;
                } else {
                    min_to[j] -= delta;
                }
            }
            j0 = j1;
            if row_of_col[j0] == 0 {
                break;
            }
        }
        loop {
            let j1 = way[j0];
            row_of_col[j0] = row_of_col[j1];
            j0 = j1;
            if j0 == 0 {
                break;
            }
        }
    }
    let mut mapping = vec![None; rows];
    for j in 1..=n {
        let i = row_of_col[j];
        if i >= 1 && i <= rows && j <= cols && weights[i - 1][j - 1] > 0 {
            mapping[i - 1] = Some(j - 1);
        }
    }
    mapping
}

#[cfg(test)]
mod tests {
    use super::*;

    fn turn(start_ms: i64, end_ms: i64, speaker: &str) -> SpeakerTurn {
        SpeakerTurn {
            file: "f".into(),
            start_ms,
            end_ms,
            speaker: speaker.into(),
        }
    }

    #[test]
    fn identical_labelling_under_other_names_is_perfect() {
        let reference = [
            turn(0, 1000, "A"),
            turn(1000, 3000, "B"),
            turn(3500, 4000, "A"),
        ];
        let hypothesis = [
            turn(0, 1000, "x"),
            turn(1000, 3000, "y"),
            turn(3500, 4000, "x"),
        ];
        let stats = diarization_error_rate(&reference, &hypothesis);
        assert_eq!(stats.total_ms, 3500);
        assert_eq!(stats.der(), 0.0);
        assert_eq!(
            (stats.reference_speakers, stats.hypothesis_speakers),
            (2, 2)
        );
    }

    #[test]
    fn missed_false_alarm_and_confusion_are_separated() {
        // Reference: A 0-4 s, B 4-6 s. Hypothesis: x 0-3 s, y 3-6 s, y 7-8 s.
        // Mapping A->x, B->y. Missed: none; false alarm 7-8 s = 1 s; confusion 3-4 s = 1 s.
        let reference = [turn(0, 4000, "A"), turn(4000, 6000, "B")];
        let hypothesis = [
            turn(0, 3000, "x"),
            turn(3000, 6000, "y"),
            turn(7000, 8000, "y"),
        ];
        let stats = diarization_error_rate(&reference, &hypothesis);
        assert_eq!(
            (
                stats.total_ms,
                stats.missed_ms,
                stats.false_alarm_ms,
                stats.confusion_ms
            ),
            (6000, 0, 1000, 1000)
        );
        assert!((stats.der() - 2.0 / 6.0).abs() < 1e-12);
    }

    #[test]
    fn overlap_counts_each_reference_speaker() {
        // A and B overlap for 1 s; the hypothesis has only one speaker there.
        let reference = [turn(0, 2000, "A"), turn(1000, 3000, "B")];
        let hypothesis = [turn(0, 1500, "x"), turn(1500, 3000, "y")];
        let stats = diarization_error_rate(&reference, &hypothesis);
        assert_eq!(stats.total_ms, 4000);
        // 1-2 s: two reference speakers, one hypothesis speaker -> 1 s missed.
        assert_eq!(stats.missed_ms, 1000);
        // 1-1.5 s the hypothesis says x (A) while A and B talk: one correct. 1.5-2 s it
        // says y (B): one correct. No confusion anywhere.
        assert_eq!(stats.confusion_ms, 0);
        assert_eq!(stats.false_alarm_ms, 0);
    }

    #[test]
    fn the_mapping_is_optimal_not_greedy() {
        // Greedy on the largest overlap would pair A with y (5 s) and leave B with x (4 s
        // of agreement lost); the optimum pairs A-x (4 s) and B-y (4 s).
        let weights = vec![vec![4, 5], vec![0, 4]];
        assert_eq!(best_mapping(&weights), vec![Some(0), Some(1)]);
        // More hypothesis speakers than reference ones, and the other way round.
        assert_eq!(best_mapping(&[vec![1, 9, 3]]), vec![Some(1)]);
        assert_eq!(best_mapping(&[vec![2], vec![7]]), vec![None, Some(0)]);
    }

    #[test]
    fn rttm_lines_are_parsed_with_their_errors_located() {
        let text = ";; comment\nSPEAKER rec 1 0.500 1.250 <NA> <NA> spk1 <NA> <NA>\n\nSPKR-INFO rec 1 <NA> <NA> <NA> unknown spk1 <NA> <NA>\nSPEAKER rec 1 2.000 0.001 <NA> <NA> spk2 <NA> <NA>\n";
        let turns = parse_rttm(text).unwrap();
        assert_eq!(
            turns,
            vec![
                SpeakerTurn {
                    file: "rec".into(),
                    start_ms: 500,
                    end_ms: 1750,
                    speaker: "spk1".into()
                },
                SpeakerTurn {
                    file: "rec".into(),
                    start_ms: 2000,
                    end_ms: 2001,
                    speaker: "spk2".into()
                },
            ]
        );
        let err = parse_rttm("SPEAKER rec 1 abc 1.0 <NA> <NA> s <NA> <NA>\n").unwrap_err();
        assert_eq!(err.line(), 1);
        assert!(err.to_string().contains("onset"), "{err}");
        assert!(parse_rttm("SPEAKER rec 1\n").is_err());
    }
}
