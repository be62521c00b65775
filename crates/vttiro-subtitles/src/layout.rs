//! Cue layout: which words share a cue, how a cue splits into lines, and when it is shown.
//!
//! Words are first cut into blocks at hard boundaries (speaker changes and pauses longer than
//! [`LayoutRules::split_pause_ms`]). Inside a block a dynamic programme picks the cue breaks
//! that minimise a readability cost: every cue costs something (so cues are reasonably
//! full), breaking mid-sentence costs more than at a comma, which costs more than at a
//! sentence end, pauses make breaks cheaper, and cues read faster than
//! [`LayoutRules::max_cps`] are penalised. Cues that cannot fit in `max_lines` lines or last
//! longer than `max_cue_ms` are never considered, so the limits are guarantees rather than
//! preferences. Each cue's words are then spread over the fewest lines that fit, balanced
//! around the middle.

use vttiro_core::{Segment, Transcript};

use crate::cue::{display_width, Cue, LayoutRules};
use crate::report::{check_layout, LayoutReport, LayoutRule, LayoutViolation};

/// A word ready for layout: trimmed text, sane times, and whether it attaches to the previous
/// word without a space (Whisper marks word starts with a leading space; pieces without one
/// continue the previous word, which is how CJK text and split tokens arrive).
#[derive(Debug, Clone)]
struct Token {
    text: String,
    chars: usize,
    start_ms: i64,
    end_ms: i64,
    speaker: Option<String>,
    glued: bool,
}

/// Lays out the transcript's words as subtitle cues under `rules`.
///
/// Guarantees, for any input: cues are in time order and never overlap; every cue has
/// `start_ms < end_ms` and lasts at most `max_cue_ms`; every word appears in exactly one cue,
/// in order; no line is longer than `max_chars_per_line` unless it is a single longer word;
/// no cue has more than `max_lines` lines; a cue never mixes speakers, and a pause longer than
/// `split_pause_ms` always separates cues. `min_gap_ms` between cues holds whenever the word
/// times leave room for it (words that touch or overlap across a cue break can leave less).
///
/// Segments without word timestamps are laid out from their text, with word times spread
/// over the segment in proportion to word length.
pub fn layout(transcript: &Transcript, rules: &LayoutRules) -> Vec<Cue> {
    layout_with_report(transcript, rules).0
}

/// [`layout`], plus a report of every rule the cues could not meet. Rules conflict on real
/// speech (a 60-word sentence spoken in 3 s cannot be read at 17 characters per second;
/// a one-word cue cannot last 5/6 s when the next cue starts 300 ms later), and the
/// layout then degrades in a fixed order: lines and cue length are never exceeded,
/// reading speed, minimum duration and gaps give way, and each such cue is reported
/// instead of silently breaking the guideline.
pub fn layout_with_report(
    transcript: &Transcript,
    rules: &LayoutRules,
) -> (Vec<Cue>, LayoutReport) {
    let rules = sanitised(rules);
    let tokens = collect_tokens(transcript);
    if tokens.is_empty() {
        return (Vec::new(), LayoutReport::default());
    }
    let mut ranges = Vec::new();
    for (block_start, block_end) in blocks(&tokens, &rules) {
        ranges.extend(break_block(&tokens, block_start, block_end, &rules));
    }
    let mut cues: Vec<Cue> = ranges
        .iter()
        .map(|&(first, last)| {
            let words = &tokens[first..=last];
            Cue {
                start_ms: words[0].start_ms,
                end_ms: words
                    .iter()
                    .map(|w| w.end_ms)
                    .max()
                    .unwrap_or(words[0].end_ms),
                lines: balance_lines(words, &rules),
                speaker: words[0].speaker.clone(),
            }
        })
        .collect();
    let last_word_ends: Vec<i64> = cues.iter().map(|c| c.end_ms).collect();
    let first_word_starts: Vec<i64> = cues.iter().map(|c| c.start_ms).collect();
    fix_times(&mut cues, &rules, transcript.duration_ms, &last_word_ends);
    let mut violations = check_layout(&cues, &rules);
    for (k, cue) in cues.iter().enumerate() {
        if cue.start_ms < first_word_starts[k] {
            violations.push(LayoutViolation {
                cue: k,
                rule: LayoutRule::EarlyStart,
                detail: format!(
                    "starts {} ms before its first word (words overlap the previous cue)",
                    first_word_starts[k] - cue.start_ms
                ),
            });
        }
    }
    violations.sort_by_key(|v| v.cue);
    let report = LayoutReport {
        cues: cues.len(),
        violations,
    };
    (cues, report)
}

fn sanitised(rules: &LayoutRules) -> LayoutRules {
    LayoutRules {
        max_chars_per_line: rules.max_chars_per_line.max(1),
        max_lines: rules.max_lines.max(1),
        max_cue_ms: rules.max_cue_ms.max(1),
        min_cue_ms: rules.min_cue_ms.max(0),
        max_linger_ms: rules.max_linger_ms.max(0),
        min_gap_ms: rules.min_gap_ms.max(0),
        max_cps: if rules.max_cps.is_finite() && rules.max_cps > 0.0 {
            rules.max_cps
        } else {
            f32::INFINITY
        },
        split_pause_ms: rules.split_pause_ms.max(0),
    }
}

fn collect_tokens(transcript: &Transcript) -> Vec<Token> {
    let spacing = WordSpacing::of(transcript);
    let mut tokens: Vec<Token> = Vec::new();
    for segment in &transcript.segments {
        if segment.words.is_empty() {
            tokens.extend(tokens_from_segment_text(segment));
            continue;
        }
        for word in &segment.words {
            let text = word.text.trim();
            if text.is_empty() {
                continue;
            }
            let glued = !tokens.is_empty() && spacing.continues_previous(&word.text);
            tokens.push(Token {
                text: text.to_string(),
                chars: display_width(text),
                start_ms: word.start_ms,
                end_ms: word.end_ms,
                speaker: word.speaker.clone(),
                glued,
            });
        }
    }
    // Engines occasionally emit words that start before their predecessor or end before they
    // start; layout needs monotonic times to guarantee ordered, non-overlapping cues.
    let mut floor = 0;
    for token in &mut tokens {
        token.start_ms = token.start_ms.max(floor);
        token.end_ms = token.end_ms.max(token.start_ms);
        floor = token.start_ms;
    }
    tokens
}

/// Decides whether a word is written with a space before it.
///
/// Whisper marks the start of every word with a leading space, and a piece without one
/// continues the previous word. Most cloud engines mark nothing, so their words need spaces
/// put back, except in scripts that do not separate words with spaces at all.
pub(crate) struct WordSpacing {
    leading_space_marks_words: bool,
    unspaced_script: bool,
}

impl WordSpacing {
    pub(crate) fn of(transcript: &Transcript) -> Self {
        WordSpacing {
            leading_space_marks_words: transcript
                .words()
                .skip(1)
                .any(|w| w.text.starts_with(char::is_whitespace)),
            unspaced_script: matches!(
                transcript.language.to_ascii_lowercase().as_str(),
                "zh" | "ja" | "th" | "lo" | "my" | "km" | "yue" | "bo"
            ),
        }
    }

    /// Whether `raw` (the engine's word text, untrimmed) attaches to the word before it.
    pub(crate) fn continues_previous(&self, raw: &str) -> bool {
        (self.leading_space_marks_words || self.unspaced_script)
            && !raw.starts_with(char::is_whitespace)
    }
}

fn tokens_from_segment_text(segment: &Segment) -> Vec<Token> {
    let words: Vec<&str> = segment.text.split_whitespace().collect();
    let weights: Vec<i64> = words.iter().map(|w| w.chars().count() as i64 + 1).collect();
    let total: i64 = weights.iter().sum::<i64>().max(1);
    let span = (segment.end_ms - segment.start_ms).max(0);
    let mut before = 0;
    words
        .iter()
        .zip(&weights)
        .map(|(word, weight)| {
            let start_ms = segment.start_ms + span * before / total;
            before += weight;
            let end_ms = segment.start_ms + span * before / total;
            Token {
                text: word.to_string(),
                chars: display_width(word),
                start_ms,
                end_ms,
                speaker: None,
                glued: false,
            }
        })
        .collect()
}

/// Half-open `[start, end)` token ranges between hard boundaries.
fn blocks(tokens: &[Token], rules: &LayoutRules) -> Vec<(usize, usize)> {
    let mut out = Vec::new();
    let mut start = 0;
    for k in 1..tokens.len() {
        let pause = tokens[k].start_ms - tokens[k - 1].end_ms;
        if tokens[k].speaker != tokens[k - 1].speaker || pause > rules.split_pause_ms {
            out.push((start, k));
            start = k;
        }
    }
    out.push((start, tokens.len()));
    out
}

const CLOSERS: &[char] = &['"', '\'', ')', ']', '}', '”', '’', '»', '」', '』', '）'];

fn ends_sentence(text: &str) -> bool {
    let bare = text.trim_end_matches(CLOSERS);
    let Some(last) = bare.chars().last() else {
        return false;
    };
    // Latin, CJK, Arabic (؟ and the Urdu full stop ۔) and Devanagari (।) sentence ends.
    matches!(
        last,
        '.' | '!' | '?' | '…' | '。' | '！' | '？' | '؟' | '۔' | '।'
    ) && !is_abbreviation(bare)
}

/// "Mr." and "J." end with a full stop without ending the sentence.
fn is_abbreviation(text: &str) -> bool {
    let Some(stem) = text.strip_suffix('.') else {
        return false;
    };
    let mut chars = stem.chars();
    let single_initial = chars.next().is_some_and(char::is_uppercase) && chars.next().is_none();
    single_initial
        || matches!(
            stem.to_lowercase().as_str(),
            "mr" | "mrs" | "ms" | "dr" | "st" | "vs" | "prof" | "jr" | "sr" | "e.g" | "i.e"
        )
}

fn ends_clause(text: &str) -> bool {
    let bare = text.trim_end_matches(CLOSERS);
    bare.ends_with([',', ';', ':', '—', '–', '、', '，', '；', '：', '،', '؛'])
}

/// Words a line or cue should not end on, because they bind to what follows.
/// Articles never end a line or a cue while any other break fits: "the" at the end of a
/// line, its noun on the next, is the one break every subtitle guideline forbids.
fn is_article(text: &str) -> bool {
    matches!(
        text.to_lowercase().as_str(),
        "a" | "an"
            | "the"
            | "le"
            | "la"
            | "les"
            | "un"
            | "une"
            | "der"
            | "die"
            | "das"
            | "el"
            | "los"
            | "las"
            | "il"
            | "lo"
            | "gli"
    )
}
const BREAK_AFTER_ARTICLE: f64 = 1000.0;

fn binds_forward(text: &str) -> bool {
    matches!(
        text.to_lowercase().as_str(),
        "a" | "an"
            | "the"
            | "of"
            | "to"
            | "in"
            | "on"
            | "at"
            | "for"
            | "with"
            | "from"
            | "by"
            | "and"
            | "or"
            | "but"
            | "my"
            | "your"
            | "his"
            | "her"
            | "our"
            | "their"
            | "its"
            | "i"
            | "we"
            | "very"
    )
}

// Costs are in arbitrary units; only their ratios matter. A new cue costs about as much as
// breaking at a plain word boundary after a short pause, so cues fill up unless there is a
// better place to break.
const CUE_COST: f64 = 3.0;
const SENTENCE_INSIDE_COST: f64 = 2.5;
// A cue that finishes one sentence and then starts another it cannot finish leaves the
// reader with a fragment; whole short sentences sharing a cue ("Yes. I know.") are fine.
const SENTENCE_STRADDLE_COST: f64 = 3.0;
const BREAK_MID_SENTENCE: f64 = 6.0;
const BREAK_AT_CLAUSE: f64 = 2.5;
const BREAK_BEFORE_BOUND_WORD: f64 = 3.0;
const PAUSE_BONUS_PER_600_MS: f64 = 3.0;
const CPS_COST_PER_CHAR_PER_S: f64 = 0.5;
const SHORT_CUE_COST: f64 = 1.5;
const SHORT_CUE_CHARS: usize = 12;

/// What it costs to end a cue after `tokens[k]` when `tokens[k + 1]` continues the block.
fn break_cost(tokens: &[Token], k: usize) -> f64 {
    let word = &tokens[k];
    let mut cost = if ends_sentence(&word.text) {
        0.0
    } else if ends_clause(&word.text) {
        BREAK_AT_CLAUSE
    } else if is_article(&word.text) {
        BREAK_AFTER_ARTICLE
    } else if binds_forward(&word.text) {
        BREAK_MID_SENTENCE + BREAK_BEFORE_BOUND_WORD
    } else {
        BREAK_MID_SENTENCE
    };
    if tokens[k + 1].glued {
        cost += BREAK_MID_SENTENCE;
    }
    let pause = (tokens[k + 1].start_ms - word.end_ms).clamp(0, 600) as f64;
    (cost - pause / 600.0 * PAUSE_BONUS_PER_600_MS).max(0.0)
}

/// Chooses cue breaks inside `[start, end)`; returns inclusive `(first, last)` ranges.
fn break_block(
    tokens: &[Token],
    start: usize,
    end: usize,
    rules: &LayoutRules,
) -> Vec<(usize, usize)> {
    let n = end - start;
    let mut best = vec![f64::INFINITY; n + 1];
    let mut came_from = vec![0usize; n + 1];
    best[0] = 0.0;
    for i in 0..n {
        if !best[i].is_finite() {
            continue;
        }
        let first = start + i;
        let mut lines = 1;
        let mut line_chars = 0;
        let mut text_chars = 0;
        let mut sentences_inside = 0;
        let mut latest_end = tokens[first].end_ms;
        for j in i..n {
            let word = &tokens[start + j];
            let separator = usize::from(j > i && !word.glued);
            text_chars += separator + word.chars;
            if j == i {
                line_chars = word.chars;
            } else if line_chars + separator + word.chars <= rules.max_chars_per_line {
                line_chars += separator + word.chars;
            } else {
                lines += 1;
                line_chars = word.chars;
            }
            latest_end = latest_end.max(word.end_ms);
            let span = latest_end - tokens[first].start_ms;
            if j > i && (lines > rules.max_lines || span > rules.max_cue_ms) {
                // Both only grow as the cue takes more words.
                break;
            }
            if j > i && ends_sentence(&tokens[start + j - 1].text) {
                sentences_inside += 1;
            }
            let last = start + j;
            let mut cost = best[i] + CUE_COST + SENTENCE_INSIDE_COST * sentences_inside as f64;
            if sentences_inside > 0 && j + 1 < n && !ends_sentence(&word.text) {
                cost += SENTENCE_STRADDLE_COST;
            }
            let linger = match tokens.get(last + 1) {
                Some(next) => (next.start_ms - word.end_ms).clamp(0, 1000),
                None => 1000,
            };
            let shown_s = ((span + linger).clamp(1, rules.max_cue_ms)) as f64 / 1000.0;
            let cps = text_chars as f64 / shown_s;
            cost += (cps - f64::from(rules.max_cps)).max(0.0) * CPS_COST_PER_CHAR_PER_S;
            if text_chars < SHORT_CUE_CHARS && (i > 0 || j + 1 < n) {
                cost += SHORT_CUE_COST;
            }
            if j + 1 < n {
                cost += break_cost(tokens, last);
            }
            if cost < best[j + 1] {
                best[j + 1] = cost;
                came_from[j + 1] = i;
            }
        }
    }
    let mut ranges = Vec::new();
    let mut k = n;
    while k > 0 {
        let i = came_from[k];
        ranges.push((start + i, start + k - 1));
        k = i;
    }
    ranges.reverse();
    ranges
}

/// Splits one cue's words over the fewest lines that respect the line length, choosing the
/// break points that make the lines most even, nudged towards punctuation and away from
/// articles and prepositions.
fn balance_lines(words: &[Token], rules: &LayoutRules) -> Vec<String> {
    let n = words.len();
    let mut prefix = vec![0usize; n + 1];
    for (k, word) in words.iter().enumerate() {
        let separator = usize::from(k > 0 && !word.glued);
        prefix[k + 1] = prefix[k] + separator + word.chars;
    }
    // Length of words[a..b] on a line of its own: the separator before words[a] is dropped.
    let line_len =
        |a: usize, b: usize| prefix[b] - prefix[a] - usize::from(a > 0 && !words[a].glued);
    let fits = |a: usize, b: usize| b - a == 1 || line_len(a, b) <= rules.max_chars_per_line;
    let line_count = greedy_line_count(words, rules);
    if line_count <= 1 {
        return vec![join_words(words)];
    }

    let target = prefix[n] as f64 / line_count as f64;
    // Squared deviation from an even split is in characters squared; the break adjustments
    // below are sized so that breaking at a sentence end is worth about 11 characters of
    // imbalance on both lines, a clause end about 7, and avoiding a dangling article about 9.
    let break_adjustment = |k: usize| -> f64 {
        let word = &words[k];
        let mut cost = 0.0;
        if ends_sentence(&word.text) {
            cost -= 250.0;
        } else if ends_clause(&word.text) {
            cost -= 100.0;
        } else if is_article(&word.text) {
            cost += 100_000.0;
        } else if binds_forward(&word.text) {
            cost += 150.0;
        }
        if words[k + 1].glued {
            cost += 100.0;
        }
        cost
    };
    // cost[l][b]: best cost of putting words[..b] on l lines.
    let mut cost = vec![vec![f64::INFINITY; n + 1]; line_count + 1];
    let mut came_from = vec![vec![0usize; n + 1]; line_count + 1];
    cost[0][0] = 0.0;
    for l in 1..=line_count {
        for b in 1..=n {
            for a in (l - 1)..b {
                if !cost[l - 1][a].is_finite() || !fits(a, b) {
                    continue;
                }
                let deviation = line_len(a, b) as f64 - target;
                let mut c = cost[l - 1][a] + deviation * deviation;
                // Bottom-heavy: of two near-equal splits, prefer the shorter top line.
                if l == 1 && deviation > 0.0 {
                    c += deviation * 2.0;
                }
                if b < n {
                    c += break_adjustment(b - 1);
                }
                if c < cost[l][b] {
                    cost[l][b] = c;
                    came_from[l][b] = a;
                }
            }
        }
    }
    let mut bounds = Vec::with_capacity(line_count);
    let mut b = n;
    for l in (1..=line_count).rev() {
        let a = came_from[l][b];
        bounds.push((a, b));
        b = a;
    }
    bounds.reverse();
    bounds
        .into_iter()
        .map(|(a, b)| join_words(&words[a..b]))
        .collect()
}

/// The fewest lines the words need, filling each line as far as it goes.
fn greedy_line_count(words: &[Token], rules: &LayoutRules) -> usize {
    let mut lines = 0;
    let mut line_chars = 0;
    for (k, word) in words.iter().enumerate() {
        let separator = usize::from(k > 0 && !word.glued);
        if lines > 0 && line_chars + separator + word.chars <= rules.max_chars_per_line {
            line_chars += separator + word.chars;
        } else {
            lines += 1;
            line_chars = word.chars;
        }
    }
    lines
}

fn join_words(words: &[Token]) -> String {
    let mut line = String::new();
    for (k, word) in words.iter().enumerate() {
        if k > 0 && !word.glued {
            line.push(' ');
        }
        line.push_str(&word.text);
    }
    line
}

/// Turns raw word spans into display times: caps length, separates neighbours, then lets
/// short or fast cues linger into the silence after them.
fn fix_times(cues: &mut [Cue], rules: &LayoutRules, duration_ms: i64, last_word_ends: &[i64]) {
    for cue in cues.iter_mut() {
        cue.end_ms = cue.end_ms.min(cue.start_ms + rules.max_cue_ms);
    }
    for k in 0..cues.len().saturating_sub(1) {
        let next_start = cues[k + 1].start_ms;
        let cue = &mut cues[k];
        if next_start - rules.min_gap_ms > cue.start_ms {
            cue.end_ms = cue.end_ms.min(next_start - rules.min_gap_ms);
        } else if next_start > cue.start_ms {
            cue.end_ms = cue.end_ms.min(next_start);
        }
    }
    let mut previous_end = i64::MIN;
    for cue in cues.iter_mut() {
        cue.start_ms = cue.start_ms.max(previous_end);
        cue.end_ms = cue.end_ms.max(cue.start_ms + 1);
        previous_end = cue.end_ms;
    }
    for k in 0..cues.len() {
        let chars: usize = cues[k].lines.iter().map(|l| display_width(l)).sum();
        let readable_ms = (chars as f64 / f64::from(rules.max_cps) * 1000.0).ceil() as i64;
        let wanted = readable_ms.max(rules.min_cue_ms).min(rules.max_cue_ms);
        let limit = match cues.get(k + 1) {
            Some(next) => next.start_ms - rules.min_gap_ms,
            None if duration_ms > 0 => duration_ms,
            None => i64::MAX,
        }
        .min(last_word_ends[k] + rules.max_linger_ms);
        let cue = &mut cues[k];
        let extended = (cue.start_ms + wanted).min(limit);
        cue.end_ms = cue.end_ms.max(extended);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn token(text: &str) -> Token {
        Token {
            text: text.to_string(),
            chars: display_width(text),
            start_ms: 0,
            end_ms: 0,
            speaker: None,
            glued: false,
        }
    }

    #[test]
    fn sentence_ends_ignore_abbreviations_and_closing_quotes() {
        assert!(ends_sentence("done."));
        assert!(ends_sentence("really?\""));
        assert!(ends_sentence("wow!)"));
        assert!(!ends_sentence("Mr."));
        assert!(!ends_sentence("J."));
        assert!(!ends_sentence("e.g."));
        assert!(!ends_sentence("however,"));
        assert!(ends_clause("however,"));
    }

    #[test]
    fn balanced_lines_break_near_the_middle_not_after_articles() {
        let rules = LayoutRules::default();
        let words: Vec<Token> =
            "we walked along the river until the sun went down behind the hills"
                .split(' ')
                .map(token)
                .collect();
        let lines = balance_lines(&words, &rules);
        assert_eq!(
            lines,
            [
                "we walked along the river until",
                "the sun went down behind the hills"
            ]
        );
    }

    #[test]
    fn balanced_lines_prefer_a_sentence_end() {
        let rules = LayoutRules::default();
        let words: Vec<Token> = "I told you so. But nobody ever listens to me here"
            .split(' ')
            .map(token)
            .collect();
        let lines = balance_lines(&words, &rules);
        assert_eq!(
            lines,
            ["I told you so.", "But nobody ever listens to me here"]
        );
    }

    #[test]
    fn glued_pieces_join_without_spaces() {
        let mut words: Vec<Token> = ["こんにちは", "世界", "です"]
            .into_iter()
            .map(token)
            .collect();
        words[1].glued = true;
        words[2].glued = true;
        assert_eq!(join_words(&words), "こんにちは世界です");
        assert_eq!(greedy_line_count(&words, &LayoutRules::default()), 1);
    }
}
