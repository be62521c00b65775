//! Google Gemini `generateContent` as a recogniser. The model is asked for JSON segments
//! (start, end, speaker, text) under a response schema; audio goes inline when the request
//! stays under 20 MB, else through the Files API's resumable upload. Pieces are at most
//! ten minutes so the transcript fits the output limit, and an answer cut off by that
//! limit is continued from its last complete segment.
//!
//! The model writes timestamps as text, so its answer is read forgivingly (code fences,
//! trailing commas, `HH:MM:SS`, `MM:SS:mmm`, bare seconds, a cut-off array) and then checked:
//! times must lie inside the audio and move forward, or the answer is asked for again.

use std::time::{Duration, Instant};

use base64::Engine as _;
use serde::Deserialize;
use serde_json::{json, Value};
use vttiro_asr::{AsrError, CancelToken, TranscribeOptions};
use vttiro_core::{ms_to_samples, samples_to_ms, ErrorCode};

use crate::audio::{Piece, PiecePlan, UploadFormat};
use crate::http::{default_verdict, Request, Response, Verdict};
use crate::words::{spread_words, RawWord};
use crate::{parse_json, PieceOutput};

/// One timed phrase as read from the model's answer, in milliseconds of its piece.
#[derive(Debug, Clone, PartialEq)]
pub struct GeminiSegment {
    pub start_ms: i64,
    pub end_ms: i64,
    pub speaker: Option<String>,
    pub text: String,
}

/// What one answer held: its segments, whether the JSON was complete, and the language.
#[derive(Debug, Clone, PartialEq)]
pub struct GeminiAnswer {
    pub segments: Vec<GeminiSegment>,
    pub complete: bool,
    pub language: Option<String>,
}

fn clock(ms: i64) -> String {
    format!(
        "{:02}:{:02}.{:03}",
        ms / 60_000,
        (ms / 1000) % 60,
        ms % 1000
    )
}

/// A timestamp as the model may write it: `MM:SS.mmm` (asked for), `HH:MM:SS(.mmm)`,
/// `MM:SS`, `MM:SS:mmm` (a common slip), `SS.s`, with `,` as decimal mark, or a number.
fn parse_time(value: &Value) -> Option<i64> {
    match value {
        Value::Number(n) => n.as_f64().map(|s| (s * 1000.0).round() as i64),
        Value::String(text) => {
            let text = text.trim().trim_end_matches('s').replace(',', ".");
            let parts: Vec<&str> = text.split(':').collect();
            let seconds = |s: &str| s.parse::<f64>().ok().filter(|v| v.is_finite() && *v >= 0.0);
            let total = match parts.as_slice() {
                [s] => seconds(s)?,
                [m, s] => seconds(m)? * 60.0 + seconds(s)?,
                [a, b, c] if c.len() == 3 && !c.contains('.') && !b.contains('.') => {
                    // MM:SS:mmm — three-digit last field is milliseconds, not seconds.
                    seconds(a)? * 60.0 + seconds(b)? + seconds(c)? / 1000.0
                }
                [h, m, s] => seconds(h)? * 3600.0 + seconds(m)? * 60.0 + seconds(s)?,
                _ => return None,
            };
            Some((total * 1000.0).round() as i64)
        }
        _ => None,
    }
}

/// Removes Markdown code fences and anything before the JSON starts.
fn strip_wrapping(text: &str) -> &str {
    let text = text.trim();
    let start = text.find(['{', '[']).unwrap_or(0);
    let text = &text[start..];
    match text.rfind("```") {
        Some(end) => text[..end].trim_end(),
        None => text,
    }
}

/// Whether a character-by-character JSON scan is inside a string literal.
#[derive(Default)]
struct StringScan {
    inside: bool,
    escaped: bool,
}

impl StringScan {
    /// Feeds `c`; true when it belongs to a string literal (its quotes included).
    fn in_string(&mut self, c: char) -> bool {
        if self.inside {
            if self.escaped {
                self.escaped = false;
            } else if c == '\\' {
                self.escaped = true;
            } else if c == '"' {
                self.inside = false;
            }
            true
        } else {
            self.inside = c == '"';
            self.inside
        }
    }
}

/// Drops commas that precede a closing bracket, outside strings.
fn remove_trailing_commas(text: &str) -> String {
    let chars: Vec<char> = text.chars().collect();
    let mut out = String::with_capacity(text.len());
    let mut scan = StringScan::default();
    for (i, &c) in chars.iter().enumerate() {
        if scan.in_string(c) {
            out.push(c);
            continue;
        }
        if c == ',' {
            let next = chars[i + 1..].iter().find(|c| !c.is_whitespace());
            if matches!(next, Some('}') | Some(']') | None) {
                continue;
            }
        }
        out.push(c);
    }
    out
}

/// Every complete `{...}` object inside the first JSON array of `text`, for answers that
/// were cut off mid-array.
fn complete_objects(text: &str) -> Vec<Value> {
    let Some(array_start) = text.find('[') else {
        return Vec::new();
    };
    let mut objects = Vec::new();
    let mut depth = 0usize;
    let mut object_start = None;
    let mut scan = StringScan::default();
    for (i, c) in text[array_start..].char_indices() {
        let at = array_start + i;
        if scan.in_string(c) {
            continue;
        }
        match c {
            '{' => {
                if depth == 0 {
                    object_start = Some(at);
                }
                depth += 1;
            }
            '}' if depth > 0 => {
                depth -= 1;
                if depth == 0 {
                    if let Some(start) = object_start.take() {
                        let piece = remove_trailing_commas(&text[start..=at]);
                        if let Ok(value) = serde_json::from_str(&piece) {
                            objects.push(value);
                        }
                    }
                }
            }
            ']' if depth == 0 => break,
            _ => {}
        }
    }
    objects
}

fn segment_from(value: &Value) -> Option<GeminiSegment> {
    let field = |names: &[&str]| names.iter().find_map(|n| value.get(*n));
    let text = field(&["text", "transcript"])?.as_str()?.trim().to_string();
    let start_ms = parse_time(field(&["start", "start_time", "startTime"])?)?;
    let end_ms = field(&["end", "end_time", "endTime"])
        .and_then(parse_time)
        .unwrap_or(start_ms);
    let speaker = field(&["speaker"]).and_then(|s| match s {
        Value::String(s) if !s.trim().is_empty() => Some(s.trim().to_string()),
        Value::Number(n) => Some(format!("Speaker {n}")),
        _ => None,
    });
    Some(GeminiSegment {
        start_ms,
        end_ms,
        speaker,
        text,
    })
}

/// Reads the model's answer text; `Err` when nothing usable is in it.
pub fn parse_gemini_segments(text: &str) -> Result<GeminiAnswer, String> {
    let body = strip_wrapping(text);
    let parsed: Option<Value> = serde_json::from_str(body)
        .ok()
        .or_else(|| serde_json::from_str(&remove_trailing_commas(body)).ok());
    let (items, complete, language) = match parsed {
        Some(Value::Array(items)) => (items, true, None),
        Some(Value::Object(map)) => {
            let language = map
                .get("language")
                .and_then(Value::as_str)
                .map(str::to_string);
            match map.get("segments") {
                Some(Value::Array(items)) => (items.clone(), true, language),
                _ => return Err("the JSON has no \"segments\" array".into()),
            }
        }
        _ => {
            let salvaged = complete_objects(body);
            if salvaged.is_empty() {
                return Err(format!(
                    "no segment could be read from the answer (starts {:?})",
                    body.chars().take(60).collect::<String>()
                ));
            }
            (salvaged, false, None)
        }
    };
    let segments: Vec<GeminiSegment> = items.iter().filter_map(segment_from).collect();
    if segments.is_empty() && !items.is_empty() {
        return Err("segments lack start times or text".into());
    }
    Ok(GeminiAnswer {
        segments,
        complete,
        language,
    })
}

/// Puts segments inside `[0, piece_ms]` in order; `Err` when the timing is unusable
/// (most segments outside the audio), which makes the caller ask again.
fn sanitise(segments: Vec<GeminiSegment>, piece_ms: i64) -> Result<Vec<GeminiSegment>, String> {
    let tolerance = 1_000;
    let outside = segments
        .iter()
        .filter(|s| s.start_ms > piece_ms + tolerance)
        .count();
    if !segments.is_empty() && outside * 3 > segments.len() {
        return Err(format!(
            "{outside} of {} segments start after the audio ends at {}",
            segments.len(),
            clock(piece_ms)
        ));
    }
    let mut out: Vec<GeminiSegment> = Vec::new();
    let count = segments.len();
    for (i, mut segment) in segments.into_iter().enumerate() {
        if segment.start_ms > piece_ms + tolerance || segment.text.is_empty() {
            continue;
        }
        let floor = out.last().map(|s| s.start_ms).unwrap_or(0);
        segment.start_ms = segment.start_ms.clamp(floor, piece_ms);
        if segment.end_ms <= segment.start_ms {
            // A missing or backwards end: assume ordinary speech rate (~3 words a second).
            let words = segment.text.split_whitespace().count() as i64;
            segment.end_ms = segment.start_ms + (words * 330).max(300);
        }
        segment.end_ms = segment.end_ms.min(piece_ms);
        if i + 1 < count {
            segment.end_ms = segment.end_ms.max(segment.start_ms);
        }
        out.push(segment);
    }
    Ok(out)
}

#[derive(Deserialize)]
struct GenerateResponse {
    #[serde(default)]
    candidates: Vec<Candidate>,
    #[serde(default, rename = "promptFeedback")]
    prompt_feedback: Option<Value>,
}

#[derive(Deserialize)]
struct Candidate {
    #[serde(default)]
    content: Option<Content>,
    #[serde(default, rename = "finishReason")]
    finish_reason: Option<String>,
}

#[derive(Deserialize)]
struct Content {
    #[serde(default)]
    parts: Vec<Value>,
}

/// The answer text of a `generateContent` response and its finish reason.
fn answer_text(response: &Response) -> Result<(String, String), String> {
    let body: GenerateResponse = parse_json(&response.body)?;
    let Some(candidate) = body.candidates.into_iter().next() else {
        let reason = body
            .prompt_feedback
            .and_then(|f| f.get("blockReason").cloned())
            .map(|r| r.to_string())
            .unwrap_or_else(|| "no candidates".into());
        return Err(format!("the model gave no answer ({reason})"));
    };
    let text: String = candidate
        .content
        .map(|c| c.parts)
        .unwrap_or_default()
        .iter()
        .filter(|p| p.get("thought").and_then(Value::as_bool) != Some(true))
        .filter_map(|p| p.get("text").and_then(Value::as_str))
        .collect();
    Ok((text, candidate.finish_reason.unwrap_or_default()))
}

fn judge(response: &Response) -> Verdict {
    let error = serde_json::from_slice::<Value>(&response.body)
        .ok()
        .and_then(|v| v.get("error").cloned());
    let message = error
        .as_ref()
        .and_then(|e| e.get("message").and_then(Value::as_str))
        .map(str::to_string)
        .unwrap_or_else(|| response.text().chars().take(200).collect());
    let details = error
        .as_ref()
        .and_then(|e| e.get("details"))
        .map(|d| d.to_string())
        .unwrap_or_default();
    if response.status == 400
        && (details.contains("API_KEY_INVALID") || message.contains("API key not valid"))
    {
        return Verdict::Fail(
            ErrorCode::ProviderAuth,
            format!("the API key was refused (HTTP 400 API_KEY_INVALID): {message}"),
        );
    }
    if response.status == 429 {
        if details.contains("PerDay") {
            return Verdict::Fail(
                ErrorCode::ProviderQuota,
                format!("the daily quota is used up (HTTP 429): {message}"),
            );
        }
        // RetryInfo says how long to wait, as "17s".
        let wait = error
            .as_ref()
            .and_then(|e| e.get("details"))
            .and_then(Value::as_array)
            .and_then(|items| {
                items
                    .iter()
                    .find_map(|d| d.get("retryDelay").and_then(Value::as_str))
            })
            .and_then(|d| d.trim_end_matches('s').parse::<f64>().ok())
            .map(Duration::from_secs_f64);
        if let Some(wait) = wait {
            return Verdict::RetryAfter(format!("HTTP 429: {message}"), wait);
        }
    }
    default_verdict(response.status, &message)
}

impl GeminiEngine {
    fn schema(speakers: bool) -> Value {
        let mut properties = json!({
            "start": { "type": "STRING", "description": "MM:SS.mmm from the start of the audio" },
            "end": { "type": "STRING", "description": "MM:SS.mmm from the start of the audio" },
            "text": { "type": "STRING" },
        });
        let mut order = vec!["start", "end", "text"];
        if speakers {
            properties["speaker"] = json!({ "type": "STRING", "description": "Speaker 1, Speaker 2, ... in order of first appearance" });
            order = vec!["start", "end", "speaker", "text"];
        }
        json!({
            "type": "OBJECT",
            "properties": {
                "language": { "type": "STRING", "description": "ISO 639-1 code of the spoken language" },
                "segments": {
                    "type": "ARRAY",
                    "items": {
                        "type": "OBJECT",
                        "properties": properties,
                        "required": ["start", "end", "text"],
                        "propertyOrdering": order,
                    }
                }
            },
            "required": ["segments"],
            "propertyOrdering": ["language", "segments"],
        })
    }

    fn prompt(options: &TranscribeOptions, duration_ms: i64) -> String {
        let mut prompt = String::from(
            "Transcribe the speech in this audio verbatim, in the language it is spoken. \
             Do not translate, summarise, or describe sounds or music; leave out stretches with no speech. \
             Return the segments in order; each is one sentence or phrase of at most about 15 words, \
             with start and end times measured from the start of this audio, written as MM:SS.mmm \
             (minutes may exceed 59). ",
        );
        prompt.push_str(&format!(
            "The audio is {} long, so no time may exceed that. ",
            clock(duration_ms)
        ));
        if options.speaker_labels {
            prompt.push_str("Label each segment with its speaker as Speaker 1, Speaker 2, ... in order of first appearance");
            if let Some(n) = options.speakers_expected {
                prompt.push_str(&format!("; there are {n} speakers"));
            }
            prompt.push_str(". ");
        }
        if let Some(language) = &options.language {
            prompt.push_str(&format!("The language is {language} (ISO 639-1). "));
        }
        if !options.vocabulary.is_empty() {
            prompt.push_str(&format!(
                "These names and terms occur: {}. ",
                options.vocabulary.join(", ")
            ));
        }
        if let Some(context) = &options.prompt {
            prompt.push_str(&format!("Context: {context}"));
        }
        prompt.trim_end().to_string()
    }

    fn upload_file(
        &self,
        bytes: &[u8],
        mime: &str,
        cancel: &CancelToken,
    ) -> Result<(String, String), AsrError> {
        let start_body = serde_json::to_vec(&json!({ "file": { "display_name": "vttiro-audio" } }))
            .expect("json");
        let start = Request::new(
            "POST",
            format!("{}/upload/v1beta/files", self.config.base_url),
        )
        .header("x-goog-api-key", self.key.expose())
        .header("X-Goog-Upload-Protocol", "resumable")
        .header("X-Goog-Upload-Command", "start")
        .header(
            "X-Goog-Upload-Header-Content-Length",
            bytes.len().to_string(),
        )
        .header("X-Goog-Upload-Header-Content-Type", mime)
        .header("Content-Type", "application/json")
        .body(&start_body);
        let upload_url = self.http.call(
            &start,
            |r| {
                r.header("x-goog-upload-url")
                    .map(str::to_string)
                    .ok_or_else(|| "no x-goog-upload-url header in the answer".to_string())
            },
            judge,
        )?;
        let upload = Request::new("POST", upload_url)
            .header("x-goog-api-key", self.key.expose())
            .header("X-Goog-Upload-Offset", "0")
            .header("X-Goog-Upload-Command", "upload, finalize")
            .body(bytes);
        let file: Value = self.http.call(
            &upload,
            |r| {
                let value: Value = parse_json(&r.body)?;
                value
                    .get("file")
                    .cloned()
                    .ok_or_else(|| "no \"file\" in the upload answer".to_string())
            },
            judge,
        )?;
        let name = file
            .get("name")
            .and_then(Value::as_str)
            .ok_or_else(|| {
                self.http
                    .fail(ErrorCode::ProviderUnavailable, "uploaded file has no name")
            })?
            .to_string();
        let uri = file
            .get("uri")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string();
        let mut state = file
            .get("state")
            .and_then(Value::as_str)
            .unwrap_or("PROCESSING")
            .to_string();
        let started = Instant::now();
        let mut wait = self.config.poll_interval;
        while state != "ACTIVE" {
            if state == "FAILED" {
                return Err(self.http.fail(
                    ErrorCode::ProviderUnsupportedFormat,
                    format!("{name}: the uploaded audio could not be processed"),
                ));
            }
            if started.elapsed() > self.config.poll_timeout {
                return Err(self.http.fail(
                    ErrorCode::ProviderUnavailable,
                    format!(
                        "{name} was still {state} after {:.0} s",
                        started.elapsed().as_secs_f64()
                    ),
                ));
            }
            if !cancel.sleep(wait) {
                // The caller's audio should not wait 48 hours for Google's expiry.
                self.delete_file(&name);
                return Err(AsrError::Cancelled);
            }
            wait = (wait + wait / 2).min(self.config.poll_max_interval);
            let get = Request::new("GET", format!("{}/v1beta/{name}", self.config.base_url))
                .header("x-goog-api-key", self.key.expose());
            state = self.http.call(
                &get,
                |r| {
                    let value: Value = parse_json(&r.body)?;
                    Ok(value
                        .get("state")
                        .and_then(Value::as_str)
                        .unwrap_or("PROCESSING")
                        .to_string())
                },
                judge,
            )?;
        }
        Ok((name, uri))
    }

    fn delete_file(&self, name: &str) {
        let request = Request::new("DELETE", format!("{}/v1beta/{name}", self.config.base_url))
            .header("x-goog-api-key", self.key.expose());
        // Files expire by themselves after 48 hours; failing to delete early is not an error.
        if let Err(e) = self.http.call(&request, |_| Ok(()), judge) {
            tracing::warn!(provider = "gemini", file = %name, error = %e, "could not delete the uploaded file");
        }
    }

    /// Transcribes `samples` (one piece or the rest of one) and returns its segments.
    fn generate(
        &self,
        samples: &[f32],
        options: &TranscribeOptions,
    ) -> Result<GeminiAnswer, AsrError> {
        let piece_ms = samples_to_ms(samples.len());
        // Pieces are at most ten minutes, 19 MB as WAV: inline when the request stays under
        // its limit, else one Files API object (2 GB).
        let format = UploadFormat::Wav;
        let bytes = vttiro_media::encode_wav(samples);
        let mut uploaded = None;
        let audio_part = if bytes.len() <= self.config.gemini_inline_max_bytes {
            json!({ "inline_data": {
                "mime_type": format.mime(),
                "data": base64::engine::general_purpose::STANDARD.encode(&bytes),
            }})
        } else {
            let (name, uri) = self.upload_file(&bytes, format.mime(), &options.cancel)?;
            uploaded = Some(name);
            json!({ "file_data": { "mime_type": format.mime(), "file_uri": uri } })
        };
        let body = json!({
            "contents": [{ "role": "user", "parts": [
                { "text": Self::prompt(options, piece_ms) },
                audio_part,
            ]}],
            "generationConfig": {
                "responseMimeType": "application/json",
                "responseSchema": Self::schema(options.speaker_labels),
                "temperature": 0,
            },
        });
        let body = serde_json::to_vec(&body).expect("json");
        let request = Request::new(
            "POST",
            format!(
                "{}/v1beta/models/{}:generateContent",
                self.config.base_url, self.config.model
            ),
        )
        .header("x-goog-api-key", self.key.expose())
        .header("Content-Type", "application/json")
        .body(&body);
        let result = self.http.call(
            &request,
            |response| {
                let (text, finish) = answer_text(response)?;
                let mut answer = parse_gemini_segments(&text)?;
                if finish == "MAX_TOKENS" {
                    answer.complete = false;
                }
                answer.segments = sanitise(answer.segments, piece_ms)?;
                Ok(answer)
            },
            judge,
        );
        if let Some(name) = uploaded {
            self.delete_file(&name);
        }
        result
    }
}

crate::cloud_engine!(GeminiEngine, "gemini");

impl GeminiEngine {
    fn upload_plan(&self) -> PiecePlan {
        PiecePlan {
            max_piece_ms: Some(self.config.gemini_piece_ms),
            ..self.config.whole_upload_plan()
        }
    }

    /// One piece, continued from its last complete segment whenever an answer is cut off
    /// by the output limit.
    fn send(
        &self,
        audio: &[f32],
        piece: &Piece,
        options: &TranscribeOptions,
    ) -> Result<PieceOutput, AsrError> {
        let mut words: Vec<RawWord> = Vec::new();
        let mut language = None;
        let mut billed_seconds = 0.0;
        let mut from = piece.start;
        loop {
            let answer = self.generate(&audio[from..piece.end], options)?;
            billed_seconds += samples_to_ms(piece.end - from) as f64 / 1000.0;
            language = language.or(answer.language.clone());
            let offset = samples_to_ms(from);
            for segment in &answer.segments {
                words.extend(spread_words(
                    &segment.text,
                    offset + segment.start_ms,
                    offset + segment.end_ms,
                    segment.speaker.as_deref(),
                    1.0,
                ));
            }
            if answer.complete {
                break;
            }
            let resume = answer.segments.last().map(|s| offset + s.end_ms);
            match resume.map(ms_to_samples) {
                Some(next) if next > from && next + 16_000 < piece.end => {
                    tracing::info!(provider = "gemini", resume_ms = samples_to_ms(next), "answer was cut off; continuing from its last complete segment");
                    from = next;
                }
                Some(_) => break,
                None => {
                    return Err(self.http.fail(
                        ErrorCode::EngineFailed,
                        "the answer was cut off by the output limit before its first segment; lower the piece length",
                    ))
                }
            }
        }
        Ok(PieceOutput {
            words,
            language,
            language_probability: 0.0,
            billed_seconds,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_in_every_shape_the_model_writes() {
        let t = |s: &str| parse_time(&Value::String(s.into()));
        assert_eq!(t("00:07.530"), Some(7_530));
        assert_eq!(t("75:03.250"), Some(4_503_250));
        assert_eq!(t("01:02:03.5"), Some(3_723_500));
        assert_eq!(t("00:07:530"), Some(7_530));
        assert_eq!(t("00:01:02,500"), Some(62_500));
        assert_eq!(t("12.25s"), Some(12_250));
        assert_eq!(t("1:05"), Some(65_000));
        assert_eq!(parse_time(&json!(3.2)), Some(3_200));
        assert_eq!(t("soon"), None);
    }

    #[test]
    fn fenced_json_with_trailing_commas_is_read() {
        let text = "```json\n{\"segments\": [{\"start\": \"00:00.320\", \"end\": \"00:02.000\", \"text\": \"Hello, there.\",},],}\n```";
        let answer = parse_gemini_segments(text).unwrap();
        assert!(answer.complete);
        assert_eq!(answer.segments.len(), 1);
        assert_eq!(answer.segments[0].text, "Hello, there.");
    }

    #[test]
    fn a_cut_off_array_keeps_its_complete_segments() {
        let text = r#"{"segments": [{"start": "00:00.100", "end": "00:01.000", "text": "One {two}"}, {"start": "00:01.200", "end": "00:02.000", "text": "three"}, {"start": "00:02.1"#;
        let answer = parse_gemini_segments(text).unwrap();
        assert!(!answer.complete);
        assert_eq!(answer.segments.len(), 2);
        assert_eq!(answer.segments[0].text, "One {two}");
        assert!(parse_gemini_segments("I cannot help with that").is_err());
    }

    #[test]
    fn sanitising_clamps_orders_and_rejects_impossible_timing() {
        let seg = |start, end, text: &str| GeminiSegment {
            start_ms: start,
            end_ms: end,
            speaker: None,
            text: text.into(),
        };
        let fixed = sanitise(
            vec![
                seg(1000, 3000, "a b"),
                seg(500, 400, "c d e"),
                seg(9_000, 12_000, "f"),
            ],
            10_000,
        )
        .unwrap();
        assert_eq!((fixed[1].start_ms, fixed[1].end_ms), (1000, 1990));
        assert_eq!(fixed[2].end_ms, 10_000);
        let err = sanitise(
            vec![seg(60_000, 61_000, "x"), seg(70_000, 71_000, "y")],
            10_000,
        );
        assert!(err.is_err());
    }
}
