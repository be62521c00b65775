//! Builds transcripts the way a Whisper engine returns them: words with a leading space,
//! millisecond times, probabilities, grouped into segments that end at sentence ends.

#![allow(dead_code)]

use vttiro_core::{Segment, Transcript, Word};
use vttiro_subtitles::Cue;

/// A cue from its times, lines and optional speaker.
pub fn cue(start_ms: i64, end_ms: i64, lines: &[&str], speaker: Option<&str>) -> Cue {
    Cue {
        start_ms,
        end_ms,
        lines: lines.iter().map(|l| l.to_string()).collect(),
        speaker: speaker.map(str::to_string),
    }
}

/// A passage read at about 150 words per minute, with a 900 ms pause after "finish.".
pub const PASSAGE: &str = "Good evening, everyone. Tonight we are going to talk about the river \
project, which has taken almost three years to finish. The new bridge opens to traffic on \
Monday morning, and the old ferry will stop running at the end of the month. Thank you all \
for coming.";

/// Times a text like a steady speaker: each word lasts 80 ms plus 55 ms per character, words
/// are 30 ms apart, 150 ms after a comma and 350 ms after a sentence end, and `pauses` adds
/// extra silence after the listed word texts.
pub fn timed_words(text: &str, start_ms: i64, pauses: &[(&str, i64)]) -> Vec<(String, i64, i64)> {
    let mut t = start_ms;
    let mut out = Vec::new();
    for word in text.split_whitespace() {
        let duration = 80 + 55 * word.chars().count() as i64;
        out.push((word.to_string(), t, t + duration));
        t += duration;
        t += if word.ends_with(['.', '?', '!']) {
            350
        } else if word.ends_with(',') {
            150
        } else {
            30
        };
        if let Some((_, extra)) = pauses.iter().find(|(w, _)| *w == word) {
            t += extra;
        }
    }
    out
}

pub fn word(text: &str, start_ms: i64, end_ms: i64, speaker: Option<&str>) -> Word {
    Word {
        text: format!(" {text}"),
        start_ms,
        end_ms,
        probability: 0.93,
        speaker: speaker.map(str::to_string),
    }
}

/// Groups words into segments at sentence ends, as Whisper tends to.
pub fn transcript_from_words(words: Vec<Word>) -> Transcript {
    let mut segments: Vec<Segment> = Vec::new();
    let mut current: Vec<Word> = Vec::new();
    let total = words.len();
    for (k, w) in words.into_iter().enumerate() {
        let ends = w.text.trim_end().ends_with(['.', '?', '!']);
        current.push(w);
        if ends || k + 1 == total {
            let text: String = current.iter().map(|w| w.text.as_str()).collect();
            segments.push(Segment {
                id: segments.len() as u32,
                start_ms: current[0].start_ms,
                end_ms: current[current.len() - 1].end_ms,
                text,
                words: std::mem::take(&mut current),
                avg_logprob: -0.21,
                no_speech_prob: 0.01,
                compression_ratio: 1.4,
                temperature: 0.0,
            });
        }
    }
    let duration_ms = segments.last().map_or(0, |s| s.end_ms + 1500);
    Transcript {
        language: "en".to_string(),
        language_probability: 0.98,
        duration_ms,
        model: "large-v3-turbo".to_string(),
        segments,
    }
}

pub fn transcript(timed: &[(String, i64, i64)]) -> Transcript {
    transcript_from_words(
        timed
            .iter()
            .map(|(t, s, e)| word(t, *s, *e, None))
            .collect(),
    )
}

pub fn passage_transcript() -> Transcript {
    transcript(&timed_words(PASSAGE, 480, &[("finish.", 900)]))
}
