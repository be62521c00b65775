use serde::{Deserialize, Serialize};

/// One recognised word with its timing and the model's confidence in it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Word {
    /// The word as the model wrote it, including leading space and punctuation.
    pub text: String,
    pub start_ms: i64,
    pub end_ms: i64,
    pub probability: f32,
    /// Filled by diarization; `None` until a speaker has been assigned.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub speaker: Option<String>,
}

/// A decoded segment: what the model emitted between two timestamp tokens.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Segment {
    pub id: u32,
    pub start_ms: i64,
    pub end_ms: i64,
    pub text: String,
    pub words: Vec<Word>,
    pub avg_logprob: f32,
    pub no_speech_prob: f32,
    pub compression_ratio: f32,
    /// The sampling temperature that produced this segment (0 unless fallback was needed).
    pub temperature: f32,
}

/// The engine-independent result of transcribing one input.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
pub struct Transcript {
    pub language: String,
    pub language_probability: f32,
    pub duration_ms: i64,
    pub model: String,
    pub segments: Vec<Segment>,
}

impl Transcript {
    /// The whole text, segments joined, with Whisper's leading spaces trimmed once.
    pub fn text(&self) -> String {
        let joined: String = self.segments.iter().map(|s| s.text.as_str()).collect();
        joined.trim().to_string()
    }

    pub fn words(&self) -> impl Iterator<Item = &Word> {
        self.segments.iter().flat_map(|s| s.words.iter())
    }
}

/// A span of the decoded 16 kHz signal that VAD judged to contain speech, in samples.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct SpeechRegion {
    pub start: usize,
    pub end: usize,
}

impl SpeechRegion {
    pub fn len(&self) -> usize {
        self.end.saturating_sub(self.start)
    }

    pub fn is_empty(&self) -> bool {
        self.end <= self.start
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_joins_segments_and_trims_leading_space() {
        let seg = |id, text: &str| Segment {
            id,
            start_ms: 0,
            end_ms: 1,
            text: text.into(),
            words: vec![],
            avg_logprob: 0.0,
            no_speech_prob: 0.0,
            compression_ratio: 1.0,
            temperature: 0.0,
        };
        let t = Transcript {
            segments: vec![seg(0, " Hello there."), seg(1, " Bye.")],
            ..Default::default()
        };
        assert_eq!(t.text(), "Hello there. Bye.");
        let json = serde_json::to_string(&t).unwrap();
        let back: Transcript = serde_json::from_str(&json).unwrap();
        assert_eq!(back, t);
    }
}
