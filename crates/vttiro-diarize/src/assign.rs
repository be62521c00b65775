//! Giving each recognised word the speaker whose turn covers most of it, and the speakers
//! their display names.

use vttiro_core::Transcript;

use crate::{Diarization, SpeakerTurn};

/// The display name of the speaker who speaks `rank`-th (from 0): from `names` while it
/// lasts, then `Speaker N`.
pub fn speaker_name(names: &[String], rank: usize) -> String {
    names
        .get(rank)
        .cloned()
        .unwrap_or_else(|| format!("Speaker {}", rank + 1))
}

/// Sets `speaker` on every word: the turn overlapping the word most, or when none overlaps
/// (a word in a pause the diarizer did not count as speech) the nearest turn.
///
/// Names follow the order in which speakers first say a word, so `names[0]` is whoever
/// speaks first in the subtitles; speakers with no words (a cough the ASR ignored) come
/// after them. Past the end of `names` a speaker is `Speaker N`. The names, indexed by the
/// diarizer's speaker numbers, are stored in `diarization.labels`.
pub fn assign_speakers(
    transcript: &mut Transcript,
    diarization: &mut Diarization,
    names: &[String],
) {
    let turns = &diarization.turns;
    if turns.is_empty() {
        return;
    }
    let word_speakers: Vec<usize> = transcript
        .words()
        .map(|w| speaker_of(turns, w.start_ms, w.end_ms))
        .collect();
    let mut order: Vec<usize> = Vec::new();
    for &s in word_speakers.iter().chain(turns.iter().map(|t| &t.speaker)) {
        if !order.contains(&s) {
            order.push(s);
        }
    }
    let count = turns.iter().map(|t| t.speaker + 1).max().unwrap_or(0);
    diarization.labels = (0..count)
        .map(|speaker| {
            let rank = order.iter().position(|&s| s == speaker).unwrap_or(speaker);
            speaker_name(names, rank)
        })
        .collect();
    let mut speakers = word_speakers.into_iter();
    for segment in &mut transcript.segments {
        for word in &mut segment.words {
            let speaker = speakers.next().expect("one speaker per word");
            word.speaker = Some(diarization.labels[speaker].clone());
        }
    }
}

fn speaker_of(turns: &[SpeakerTurn], start_ms: i64, end_ms: i64) -> usize {
    // Turns are sorted by start: skip those that end before the word.
    let first = turns.partition_point(|t| t.end_ms <= start_ms);
    let best = turns[first..]
        .iter()
        .take_while(|t| t.start_ms < end_ms.max(start_ms + 1))
        .map(|t| (t.end_ms.min(end_ms) - t.start_ms.max(start_ms), t.speaker))
        .filter(|&(overlap, _)| overlap > 0)
        .max_by_key(|&(overlap, _)| overlap);
    if let Some((_, speaker)) = best {
        return speaker;
    }
    let middle = (start_ms + end_ms) / 2;
    turns
        .iter()
        .min_by_key(|t| {
            if middle < t.start_ms {
                t.start_ms - middle
            } else {
                (middle - t.end_ms).max(0)
            }
        })
        .map_or(0, |t| t.speaker)
}

#[cfg(test)]
mod tests {
    use super::*;
    use vttiro_core::{Segment, Word};

    fn word(text: &str, start_ms: i64, end_ms: i64) -> Word {
        Word {
            text: text.into(),
            start_ms,
            end_ms,
            probability: 1.0,
            speaker: None,
        }
    }

    fn transcript(words: Vec<Word>) -> Transcript {
        Transcript {
            language: "en".into(),
            language_probability: 1.0,
            duration_ms: 10_000,
            model: "test".into(),
            segments: vec![Segment {
                id: 0,
                start_ms: 0,
                end_ms: 10_000,
                text: String::new(),
                words,
                avg_logprob: 0.0,
                no_speech_prob: 0.0,
                compression_ratio: 1.0,
                temperature: 0.0,
            }],
        }
    }

    fn turn(start_ms: i64, end_ms: i64, speaker: usize) -> SpeakerTurn {
        SpeakerTurn {
            start_ms,
            end_ms,
            speaker,
        }
    }

    #[test]
    fn words_take_the_speaker_covering_most_of_them_and_names_follow_first_words() {
        let mut t = transcript(vec![
            word(" Hi", 1_000, 1_400),
            // Mostly inside speaker 2's turn although it starts in speaker 1's.
            word(" there", 1_900, 2_500),
            // In a pause: the nearest turn decides.
            word(" you", 3_050, 3_200),
            word(" okay", 4_000, 4_300),
        ]);
        // Speaker 0 only coughs before anyone talks, so it is named last.
        let mut d = Diarization {
            turns: vec![
                turn(0, 500, 0),
                turn(900, 2_000, 1),
                turn(2_000, 3_000, 2),
                turn(3_900, 4_500, 1),
            ],
            speakers: 3,
            windows: 0,
            labels: vec![],
        };
        assign_speakers(&mut t, &mut d, &["Ana".into()]);
        let got: Vec<&str> = t.words().map(|w| w.speaker.as_deref().unwrap()).collect();
        assert_eq!(got, vec!["Ana", "Speaker 2", "Speaker 2", "Ana"]);
        assert_eq!(d.labels, vec!["Speaker 3", "Ana", "Speaker 2"]);
    }
}
