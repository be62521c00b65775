//! OpenAI `POST /v1/audio/transcriptions`. `whisper-1` answers `verbose_json` with word
//! and segment timestamps; `gpt-4o-transcribe` and `gpt-4o-mini-transcribe` answer text
//! only, so each VAD chunk is sent alone and its words spread over it;
//! `gpt-4o-transcribe-diarize` answers `diarized_json` with timed, labelled segments.

use serde::Deserialize;
use vttiro_asr::{AsrError, TranscribeOptions};
use vttiro_core::{language_code, ErrorCode};

use crate::audio::{Piece, PiecePlan};
use crate::http::{default_verdict, Request, Response, Verdict};
use crate::multipart::Multipart;
use crate::words::{spread_words, RawWord};
use crate::{parse_json, PieceOutput};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    /// whisper-1: `verbose_json`, word and segment timestamps.
    Verbose,
    /// gpt-4o(-mini)-transcribe: `json` text only.
    Text,
    /// gpt-4o-transcribe-diarize: `diarized_json`.
    Diarized,
}

fn mode_of(model: &str) -> Mode {
    if model.starts_with("whisper") {
        Mode::Verbose
    } else if model.contains("diarize") {
        Mode::Diarized
    } else {
        Mode::Text
    }
}

impl OpenAiEngine {
    fn plan(&self, mode: Mode) -> PiecePlan {
        PiecePlan {
            max_bytes: self.config.max_upload_bytes,
            max_piece_ms: (mode == Mode::Text).then_some(30_000),
            split_gaps_over_ms: match mode {
                // whisper-1 is the model that invents text on long silences.
                Mode::Verbose => Some(3_000),
                Mode::Text => Some(1_000),
                // Speaker labels are per request: keep the conversation whole.
                Mode::Diarized => None,
            },
            opus_kbps: self.config.opus_kbps,
        }
    }

    fn request_body(&self, mode: Mode, piece: &Piece, options: &TranscribeOptions) -> Multipart {
        let mut form = Multipart::new();
        form.file(
            "file",
            piece.format.file_name(),
            piece.format.mime(),
            &piece.bytes,
        );
        form.text("model", &self.config.model);
        match mode {
            Mode::Verbose => {
                form.text("response_format", "verbose_json");
                form.text("timestamp_granularities[]", "word");
                form.text("timestamp_granularities[]", "segment");
            }
            Mode::Text => {
                form.text("response_format", "json");
            }
            Mode::Diarized => {
                form.text("response_format", "diarized_json");
                // Required above 30 s; harmless below.
                form.text("chunking_strategy", "auto");
            }
        }
        form.text("temperature", "0");
        if let Some(language) = &options.language {
            form.text("language", language);
        }
        // The diarizing model refuses prompts.
        if mode != Mode::Diarized {
            if let Some(prompt) = prompt_text(options) {
                form.text("prompt", &prompt);
            }
        }
        form
    }

    fn send_piece(
        &self,
        mode: Mode,
        piece: &Piece,
        options: &TranscribeOptions,
    ) -> Result<PieceResult, AsrError> {
        let form = self.request_body(mode, piece, options);
        let content_type = form.content_type();
        let body = form.finish();
        let request = Request::new(
            "POST",
            format!("{}/v1/audio/transcriptions", self.config.base_url),
        )
        .header("Authorization", format!("Bearer {}", self.key.expose()))
        .header("Content-Type", content_type)
        .body(&body);
        let offset = piece.offset_ms();
        let duration = piece.duration_ms();
        self.http.call(
            &request,
            |response| parse_piece(mode, response, offset, duration),
            judge,
        )
    }
}

/// The prompt plus the custom vocabulary, which Whisper-family models take as context.
fn prompt_text(options: &TranscribeOptions) -> Option<String> {
    let vocabulary = options.vocabulary.join(", ");
    match (&options.prompt, vocabulary.is_empty()) {
        (Some(prompt), true) => Some(prompt.clone()),
        (Some(prompt), false) => Some(format!("{prompt} {vocabulary}")),
        (None, false) => Some(vocabulary),
        (None, true) => None,
    }
}

struct PieceResult {
    words: Vec<RawWord>,
    language: Option<String>,
    billed_seconds: f64,
}

#[derive(Deserialize)]
struct ErrorBody {
    error: ErrorDetail,
}

#[derive(Deserialize)]
struct ErrorDetail {
    #[serde(default)]
    message: String,
    #[serde(default)]
    code: Option<String>,
    #[serde(default, rename = "type")]
    kind: Option<String>,
}

fn judge(response: &Response) -> Verdict {
    let detail = serde_json::from_slice::<ErrorBody>(&response.body)
        .map(|b| b.error)
        .ok();
    let message = detail
        .as_ref()
        .map(|d| d.message.clone())
        .unwrap_or_else(|| response.text().chars().take(200).collect());
    let code = detail.as_ref().and_then(|d| d.code.clone());
    let kind = detail.as_ref().and_then(|d| d.kind.clone());
    let quota = code.as_deref() == Some("insufficient_quota")
        || kind.as_deref() == Some("insufficient_quota");
    if response.status == 429 && quota {
        // Same status as a rate limit, but retrying cannot help: billing has to change.
        return Verdict::Fail(
            ErrorCode::ProviderQuota,
            format!("the account's quota is used up (HTTP 429 insufficient_quota): {message}"),
        );
    }
    if response.status == 400 && message.starts_with("Invalid file format") {
        return Verdict::Fail(
            ErrorCode::ProviderUnsupportedFormat,
            format!("the audio format was refused (HTTP 400): {message}"),
        );
    }
    default_verdict(response.status, &message)
}

#[derive(Deserialize)]
struct VerboseResponse {
    #[serde(default)]
    language: Option<String>,
    #[serde(default)]
    duration: Option<f64>,
    #[serde(default)]
    text: String,
    #[serde(default)]
    words: Option<Vec<VerboseWord>>,
    #[serde(default)]
    segments: Option<Vec<VerboseSegment>>,
    #[serde(default)]
    usage: Option<UsageBody>,
}

#[derive(Deserialize)]
struct VerboseWord {
    word: String,
    start: f64,
    end: f64,
}

#[derive(Deserialize)]
struct VerboseSegment {
    start: f64,
    end: f64,
    text: String,
    #[serde(default)]
    avg_logprob: Option<f64>,
    #[serde(default)]
    no_speech_prob: Option<f64>,
}

#[derive(Deserialize)]
struct UsageBody {
    #[serde(rename = "type", default)]
    kind: String,
    #[serde(default)]
    seconds: Option<f64>,
}

#[derive(Deserialize)]
struct TextResponse {
    text: String,
    #[serde(default)]
    usage: Option<UsageBody>,
}

#[derive(Deserialize)]
struct DiarizedResponse {
    #[serde(default)]
    duration: Option<f64>,
    segments: Vec<DiarizedSegment>,
    #[serde(default)]
    usage: Option<UsageBody>,
}

#[derive(Deserialize)]
struct DiarizedSegment {
    start: f64,
    end: f64,
    text: String,
    #[serde(default)]
    speaker: Option<String>,
}

fn ms(seconds: f64) -> i64 {
    (seconds * 1000.0).round() as i64
}

fn billed(usage: Option<&UsageBody>, duration: Option<f64>, piece_ms: i64) -> f64 {
    usage
        .filter(|u| u.kind == "duration")
        .and_then(|u| u.seconds)
        .or(duration)
        .unwrap_or(piece_ms as f64 / 1000.0)
}

fn parse_piece(
    mode: Mode,
    response: &Response,
    offset_ms: i64,
    piece_ms: i64,
) -> Result<PieceResult, String> {
    // Nothing may land outside the piece: providers round, and a few ms past the end
    // would otherwise overlap the next piece.
    let place = |start: f64, end: f64| {
        let start = ms(start).clamp(0, piece_ms);
        let end = ms(end).clamp(start, piece_ms);
        (offset_ms + start, offset_ms + end)
    };
    match mode {
        Mode::Verbose => {
            let body: VerboseResponse = parse_json(&response.body)?;
            let segments = body.segments.unwrap_or_default();
            // Whisper's own rule for a window with no speech in it: the model says so and
            // is unsure of its words. What it wrote there is dropped.
            let silent: Vec<(f64, f64)> = segments
                .iter()
                .filter(|s| {
                    s.no_speech_prob.unwrap_or(0.0) > 0.6 && s.avg_logprob.unwrap_or(0.0) < -1.0
                })
                .map(|s| (s.start, s.end))
                .collect();
            let mut words: Vec<RawWord> = match body.words {
                Some(words) if !words.is_empty() => {
                    let punctuated = punctuated_tokens(
                        &segments
                            .iter()
                            .map(|s| s.text.as_str())
                            .collect::<Vec<_>>()
                            .join(" "),
                    );
                    let raw: Vec<(String, f64, f64)> = words
                        .into_iter()
                        .map(|w| (w.word, w.start, w.end))
                        .collect();
                    restore_punctuation(&raw, &punctuated)
                        .into_iter()
                        .filter(|(_, start, end)| {
                            let middle = (start + end) / 2.0;
                            !silent.iter().any(|(a, b)| middle >= *a && middle <= *b)
                        })
                        .map(|(text, start, end)| {
                            let (start_ms, end_ms) = place(start, end);
                            RawWord {
                                text,
                                start_ms,
                                end_ms,
                                confidence: 1.0,
                                speaker: None,
                            }
                        })
                        .collect()
                }
                // No word timestamps came back: spread each segment's words over it.
                _ => segments
                    .iter()
                    .filter(|s| !silent.contains(&(s.start, s.end)))
                    .flat_map(|s| {
                        let (start, end) = place(s.start, s.end);
                        spread_words(&s.text, start, end, None, 1.0)
                    })
                    .collect(),
            };
            if words.is_empty() && segments.is_empty() && !body.text.trim().is_empty() {
                let (start, end) = place(0.0, piece_ms as f64 / 1000.0);
                words = spread_words(&body.text, start, end, None, 1.0);
            }
            Ok(PieceResult {
                words,
                language: body.language.as_deref().map(language_code),
                billed_seconds: billed(body.usage.as_ref(), body.duration, piece_ms),
            })
        }
        Mode::Text => {
            let body: TextResponse = parse_json(&response.body)?;
            let (start, end) = place(0.0, piece_ms as f64 / 1000.0);
            Ok(PieceResult {
                words: spread_words(&body.text, start, end, None, 1.0),
                language: None,
                billed_seconds: billed(body.usage.as_ref(), None, piece_ms),
            })
        }
        Mode::Diarized => {
            let body: DiarizedResponse = parse_json(&response.body)?;
            let words = body
                .segments
                .iter()
                .flat_map(|s| {
                    let (start, end) = place(s.start, s.end);
                    spread_words(&s.text, start, end, s.speaker.as_deref(), 1.0)
                })
                .collect();
            Ok(PieceResult {
                words,
                language: None,
                billed_seconds: billed(body.usage.as_ref(), body.duration, piece_ms),
            })
        }
    }
}

/// Whitespace tokens of the segment text, which carries the punctuation and casing the
/// word list lacks.
fn punctuated_tokens(text: &str) -> Vec<String> {
    text.split_whitespace().map(str::to_string).collect()
}

fn bare(text: &str) -> String {
    text.chars()
        .filter(|c| c.is_alphanumeric())
        .flat_map(char::to_lowercase)
        .collect()
}

/// Gives each timed word its punctuated form from the text, matching in order; a word that
/// does not match its text token keeps its own spelling and the walk resynchronises.
fn restore_punctuation(words: &[(String, f64, f64)], tokens: &[String]) -> Vec<(String, f64, f64)> {
    let mut next = 0usize;
    words
        .iter()
        .map(|(word, start, end)| {
            let key = bare(word);
            let found = (next..tokens.len().min(next + 4)).find(|&i| bare(&tokens[i]) == key);
            match found {
                Some(i) if !key.is_empty() => {
                    next = i + 1;
                    (tokens[i].clone(), *start, *end)
                }
                _ => (word.trim().to_string(), *start, *end),
            }
        })
        .collect()
}

crate::cloud_engine!(OpenAiEngine, "openai");

impl OpenAiEngine {
    fn upload_plan(&self) -> PiecePlan {
        self.plan(mode_of(&self.config.model))
    }

    fn send(
        &self,
        _audio: &[f32],
        piece: &Piece,
        options: &TranscribeOptions,
    ) -> Result<PieceOutput, AsrError> {
        let result = self.send_piece(mode_of(&self.config.model), piece, options)?;
        Ok(PieceOutput {
            words: result.words,
            language: result.language,
            language_probability: 0.0,
            billed_seconds: result.billed_seconds,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn punctuation_comes_back_from_the_segment_text() {
        let words = vec![
            ("And".to_string(), 0.3, 0.5),
            ("so".to_string(), 0.5, 0.7),
            ("my".to_string(), 0.9, 1.0),
            ("fellow".to_string(), 1.0, 1.2),
        ];
        let tokens = punctuated_tokens(" And so, my fellow Americans,");
        let restored: Vec<String> = restore_punctuation(&words, &tokens)
            .into_iter()
            .map(|w| w.0)
            .collect();
        assert_eq!(restored, vec!["And", "so,", "my", "fellow"]);
    }

    fn documented(status: u16, body: &str) -> ErrorCode {
        let response = Response {
            status,
            headers: Vec::new(),
            body: body.as_bytes().to_vec(),
        };
        match judge(&response) {
            Verdict::Fail(code, _) => code,
            _ => ErrorCode::ProviderUnavailable,
        }
    }

    #[test]
    fn documented_error_bodies_map_to_failure_classes() {
        let fixture = |name: &str| match name {
            "format" => {
                include_str!("../../vttiro-cloud-mock/fixtures/openai/error_400_format.json")
            }
            "quota" => include_str!("../../vttiro-cloud-mock/fixtures/openai/error_429_quota.json"),
            "rate" => include_str!("../../vttiro-cloud-mock/fixtures/openai/error_429_rate.json"),
            "key" => include_str!("../../vttiro-cloud-mock/fixtures/openai/error_401.json"),
            _ => include_str!("../../vttiro-cloud-mock/fixtures/openai/error_413.json"),
        };
        assert_eq!(
            documented(400, fixture("format")),
            ErrorCode::ProviderUnsupportedFormat
        );
        assert_eq!(documented(429, fixture("quota")), ErrorCode::ProviderQuota);
        assert_eq!(documented(401, fixture("key")), ErrorCode::ProviderAuth);
        assert_eq!(
            documented(413, fixture("size")),
            ErrorCode::ProviderInputTooLarge
        );
        // A rate limit is retried, not failed.
        assert_eq!(
            documented(429, fixture("rate")),
            ErrorCode::ProviderUnavailable
        );
    }

    #[test]
    fn models_pick_their_response_format() {
        assert_eq!(mode_of("whisper-1"), Mode::Verbose);
        assert_eq!(mode_of("gpt-4o-transcribe"), Mode::Text);
        assert_eq!(mode_of("gpt-4o-mini-transcribe"), Mode::Text);
        assert_eq!(mode_of("gpt-4o-transcribe-diarize"), Mode::Diarized);
    }
}
