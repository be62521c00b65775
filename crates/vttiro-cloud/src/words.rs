//! Shaping what providers return — word lists, utterances or bare text — into vttiro's
//! transcript: Whisper-style words (leading space, punctuation attached), segments that
//! end at sentence ends, speaker changes and pauses, times on the input's timeline.

use vttiro_core::{Segment, Word};

/// A word as a provider reports it, already in input milliseconds.
#[derive(Debug, Clone, PartialEq)]
pub struct RawWord {
    pub text: String,
    pub start_ms: i64,
    pub end_ms: i64,
    pub confidence: f32,
    pub speaker: Option<String>,
}

/// Pauses longer than this end a segment even mid-sentence.
const SEGMENT_PAUSE_MS: i64 = 1_000;
const SEGMENT_MAX_WORDS: usize = 40;

/// Groups words into segments; times are made monotonic and non-negative on the way.
pub fn segments_from_words(words: Vec<RawWord>) -> Vec<Segment> {
    let mut segments: Vec<Segment> = Vec::new();
    let mut current: Vec<Word> = Vec::new();
    let mut last_end = 0i64;
    let mut previous: Option<RawWord> = None;
    for raw in words {
        let text = raw.text.trim();
        if text.is_empty() {
            continue;
        }
        let start = raw.start_ms.max(last_end).max(0);
        let end = raw.end_ms.max(start);
        let breaks = previous.as_ref().is_some_and(|p| {
            p.speaker != raw.speaker
                || start - p.end_ms > SEGMENT_PAUSE_MS
                || ends_sentence(&p.text)
                || current.len() >= SEGMENT_MAX_WORDS
        });
        if breaks && !current.is_empty() {
            segments.push(segment(segments.len() as u32, std::mem::take(&mut current)));
        }
        current.push(Word {
            text: format!(" {text}"),
            start_ms: start,
            end_ms: end,
            probability: raw.confidence.clamp(0.0, 1.0),
            speaker: raw.speaker.clone(),
        });
        last_end = end;
        previous = Some(RawWord {
            start_ms: start,
            end_ms: end,
            ..raw
        });
    }
    if !current.is_empty() {
        segments.push(segment(segments.len() as u32, current));
    }
    segments
}

fn ends_sentence(text: &str) -> bool {
    let text = text.trim_end_matches(['"', '\'', ')', '»', '”']);
    text.ends_with(['.', '?', '!', '。', '？', '！'])
}

fn segment(id: u32, words: Vec<Word>) -> Segment {
    let text: String = words.iter().map(|w| w.text.as_str()).collect();
    let avg = words.iter().map(|w| w.probability).sum::<f32>() / words.len().max(1) as f32;
    Segment {
        id,
        start_ms: words.first().map(|w| w.start_ms).unwrap_or(0),
        end_ms: words.last().map(|w| w.end_ms).unwrap_or(0),
        text,
        words,
        // Providers report confidence, not log-probability; its log keeps the field's sense.
        avg_logprob: avg.max(1e-6).ln(),
        no_speech_prob: 0.0,
        compression_ratio: 0.0,
        temperature: 0.0,
    }
}

/// Words for a stretch of text the provider timed only as a whole (a Gemini segment, a
/// gpt-4o transcript of one piece): each word gets a share of the span proportional to its
/// length, which places cue breaks close to where they are spoken.
pub fn spread_words(
    text: &str,
    start_ms: i64,
    end_ms: i64,
    speaker: Option<&str>,
    confidence: f32,
) -> Vec<RawWord> {
    let tokens: Vec<&str> = text.split_whitespace().collect();
    if tokens.is_empty() {
        return Vec::new();
    }
    let weights: Vec<f64> = tokens
        .iter()
        .map(|t| t.chars().filter(|c| c.is_alphanumeric()).count().max(1) as f64 + 1.0)
        .collect();
    let total: f64 = weights.iter().sum();
    let span = (end_ms - start_ms).max(0) as f64;
    let mut at = start_ms as f64;
    tokens
        .iter()
        .zip(&weights)
        .map(|(token, weight)| {
            let begin = at;
            at += span * weight / total;
            RawWord {
                text: token.to_string(),
                start_ms: begin.round() as i64,
                end_ms: at.round() as i64,
                confidence,
                speaker: speaker.map(str::to_string),
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn w(text: &str, start: i64, end: i64, speaker: Option<&str>) -> RawWord {
        RawWord {
            text: text.into(),
            start_ms: start,
            end_ms: end,
            confidence: 0.9,
            speaker: speaker.map(Into::into),
        }
    }

    #[test]
    fn segments_break_at_sentences_speakers_and_pauses() {
        let segments = segments_from_words(vec![
            w("Hello", 0, 300, Some("A")),
            w("there.", 300, 600, Some("A")),
            w("How", 700, 900, Some("A")),
            w("are", 900, 1000, Some("A")),
            w("you?", 1000, 1200, Some("B")),
            w("Fine", 3000, 3300, Some("B")),
        ]);
        let texts: Vec<&str> = segments.iter().map(|s| s.text.as_str()).collect();
        assert_eq!(texts, vec![" Hello there.", " How are", " you?", " Fine"]);
        assert_eq!(segments[2].words[0].speaker.as_deref(), Some("B"));
        assert_eq!((segments[3].start_ms, segments[3].end_ms), (3000, 3300));
    }

    #[test]
    fn overlapping_times_are_made_monotonic() {
        let segments = segments_from_words(vec![w("a", 500, 900, None), w("b", 400, 450, None)]);
        let words = &segments[0].words;
        assert_eq!((words[1].start_ms, words[1].end_ms), (900, 900));
    }

    #[test]
    fn spread_words_share_the_span_by_length() {
        let words = spread_words("I see elephants.", 1000, 2000, Some("S1"), 0.5);
        assert_eq!(words.len(), 3);
        assert_eq!(words[0].start_ms, 1000);
        assert_eq!(words[2].end_ms, 2000);
        assert!(words[2].end_ms - words[2].start_ms > words[0].end_ms - words[0].start_ms);
    }
}
