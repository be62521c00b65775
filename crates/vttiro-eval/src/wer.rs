use std::iter::Sum;
use std::ops::{Add, AddAssign};

use serde::Serialize;

use crate::normalize::normalize_english;

/// Edit counts from aligning a hypothesis against a reference, word by word.
///
/// Counts rather than a ratio are kept so that utterances can be summed into a corpus score
/// weighted by reference length, which is how WER is conventionally reported.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
pub struct WerStats {
    pub substitutions: usize,
    pub deletions: usize,
    pub insertions: usize,
    pub reference_words: usize,
}

impl WerStats {
    pub fn errors(&self) -> usize {
        self.substitutions + self.deletions + self.insertions
    }

    /// Errors divided by reference words. It can exceed 1 when the hypothesis inserts many
    /// words. An empty reference gives 0 when the hypothesis is empty too and
    /// `f64::INFINITY` otherwise, since any output for silence is infinitely wrong relative
    /// to nothing; callers that serialise to JSON should check [`f64::is_finite`].
    pub fn wer(&self) -> f64 {
        match (self.errors(), self.reference_words) {
            (0, _) => 0.0,
            (_, 0) => f64::INFINITY,
            (errors, words) => errors as f64 / words as f64,
        }
    }
}

impl AddAssign for WerStats {
    fn add_assign(&mut self, other: WerStats) {
        self.substitutions += other.substitutions;
        self.deletions += other.deletions;
        self.insertions += other.insertions;
        self.reference_words += other.reference_words;
    }
}

impl Add for WerStats {
    type Output = WerStats;

    fn add(mut self, other: WerStats) -> WerStats {
        self += other;
        self
    }
}

impl Sum for WerStats {
    fn sum<I: Iterator<Item = WerStats>>(iter: I) -> WerStats {
        iter.fold(WerStats::default(), Add::add)
    }
}

/// Normalises both texts with [`normalize_english`] and counts the word edits of a minimum
/// edit-distance alignment.
pub fn word_error_rate(reference: &str, hypothesis: &str) -> WerStats {
    let reference = normalize_english(reference);
    let hypothesis = normalize_english(hypothesis);
    let reference: Vec<&str> = reference.split_whitespace().collect();
    let hypothesis: Vec<&str> = hypothesis.split_whitespace().collect();
    align_words(&reference, &hypothesis)
}

/// Corpus WER: edits and reference words summed over all `(reference, hypothesis)` pairs, so
/// long utterances weigh more than short ones (not the mean of per-utterance WERs).
pub fn corpus_wer(pairs: &[(String, String)]) -> WerStats {
    pairs
        .iter()
        .map(|(reference, hypothesis)| word_error_rate(reference, hypothesis))
        .sum()
}

/// Levenshtein alignment keeping one row of the table: O(n*m) time, O(m) memory in the
/// hypothesis length. Each cell carries the edit counts of the path that reached it so the
/// breakdown comes out without a traceback. Among equally cheap paths the diagonal (match or
/// substitution) is preferred, then deletion, then insertion, which makes the breakdown
/// deterministic.
fn align_words(reference: &[&str], hypothesis: &[&str]) -> WerStats {
    #[derive(Clone, Copy)]
    struct Cell {
        cost: usize,
        substitutions: usize,
        deletions: usize,
        insertions: usize,
    }

    let mut previous: Vec<Cell> = (0..=hypothesis.len())
        .map(|j| Cell {
            cost: j,
            substitutions: 0,
            deletions: 0,
            insertions: j,
        })
        .collect();
    let mut current = previous.clone();
    for (i, reference_word) in reference.iter().enumerate() {
        current[0] = Cell {
            cost: i + 1,
            substitutions: 0,
            deletions: i + 1,
            insertions: 0,
        };
        for (j, hypothesis_word) in hypothesis.iter().enumerate() {
            let mut diagonal = previous[j];
            if reference_word != hypothesis_word {
                diagonal.cost += 1;
                diagonal.substitutions += 1;
            }
            let mut deletion = previous[j + 1];
            deletion.cost += 1;
            deletion.deletions += 1;
            let mut insertion = current[j];
            insertion.cost += 1;
            insertion.insertions += 1;
            let mut best = diagonal;
            if deletion.cost < best.cost {
                best = deletion;
            }
            if insertion.cost < best.cost {
                best = insertion;
            }
            current[j + 1] = best;
        }
        std::mem::swap(&mut previous, &mut current);
    }
    let last = previous[hypothesis.len()];
    WerStats {
        substitutions: last.substitutions,
        deletions: last.deletions,
        insertions: last.insertions,
        reference_words: reference.len(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stats(s: usize, d: usize, i: usize, n: usize) -> WerStats {
        WerStats {
            substitutions: s,
            deletions: d,
            insertions: i,
            reference_words: n,
        }
    }

    #[test]
    fn identical_texts_have_no_errors() {
        assert_eq!(
            word_error_rate("the cat sat", "the cat sat"),
            stats(0, 0, 0, 3)
        );
        assert_eq!(word_error_rate("the cat sat", "the cat sat").wer(), 0.0);
    }

    #[test]
    fn single_insertion() {
        let s = word_error_rate("the cat sat", "the cat sat on");
        assert_eq!(s, stats(0, 0, 1, 3));
        assert!((s.wer() - 1.0 / 3.0).abs() < 1e-12);
    }

    #[test]
    fn single_deletion_and_substitution() {
        assert_eq!(
            word_error_rate("the cat sat down", "the cat down"),
            stats(0, 1, 0, 4)
        );
        assert_eq!(
            word_error_rate("the cat sat", "the dog sat"),
            stats(1, 0, 0, 3)
        );
    }

    #[test]
    fn mixed_edits_counted_by_hand() {
        // zulu inserted (I), bravo->xray (S), delta deleted (D); every other alignment costs
        // more than 3, so the breakdown is unique.
        let s = word_error_rate(
            "alpha bravo charlie delta echo",
            "zulu alpha xray charlie echo",
        );
        assert_eq!(s, stats(1, 1, 1, 5));
        assert!((s.wer() - 0.6).abs() < 1e-12);
    }

    #[test]
    fn wer_can_exceed_one() {
        let s = word_error_rate("hi", "oh well hello there friend");
        assert_eq!(s.errors(), 5);
        assert!((s.wer() - 5.0).abs() < 1e-12);
    }

    #[test]
    fn empty_sides() {
        assert_eq!(word_error_rate("", ""), stats(0, 0, 0, 0));
        assert_eq!(word_error_rate("", "").wer(), 0.0);
        assert_eq!(word_error_rate("", "hello"), stats(0, 0, 1, 0));
        assert!(word_error_rate("", "hello").wer().is_infinite());
        assert_eq!(word_error_rate("hello world", ""), stats(0, 2, 0, 2));
        assert_eq!(word_error_rate("hello world", "").wer(), 1.0);
    }

    #[test]
    fn normalisation_hides_style_differences() {
        let jfk = "And so my fellow Americans, ask not what your country can do for you, \
                   ask what you can do for your country.";
        let restyled = "and so, my fellow americans: ask NOT what your country can do for you -- \
                        ask what you can do for your country!";
        assert_eq!(word_error_rate(jfk, restyled), stats(0, 0, 0, 22));
        assert_eq!(word_error_rate(jfk, restyled).wer(), 0.0);
        assert_eq!(
            word_error_rate("Mr. Smith's colour, twenty-one!", "mister smith's color 21").errors(),
            0
        );
        // Without normalisation these would be two substitutions.
        assert_eq!(
            word_error_rate("I can't pay $5", "i cannot pay five dollars").errors(),
            0
        );
    }

    #[test]
    fn corpus_wer_weights_by_reference_length() {
        let pairs = vec![
            (
                "one two three four".to_string(),
                "one two three four".to_string(),
            ),
            ("the cat sat".to_string(), "the dog sat".to_string()),
            ("hello".to_string(), String::new()),
        ];
        let total = corpus_wer(&pairs);
        // "one two three four" normalises to the digit string 1234, a single word.
        assert_eq!(total, stats(1, 1, 0, 5));
        assert!((total.wer() - 2.0 / 5.0).abs() < 1e-12);
        assert_eq!(corpus_wer(&[]), WerStats::default());
    }
}
