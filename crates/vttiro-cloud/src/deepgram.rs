//! Deepgram pre-recorded `POST /v1/listen` (Nova-3): the whole stretch of speech in one
//! upload, words with punctuation, confidence and (with `diarize`) speaker numbers.

use serde::Deserialize;
use vttiro_asr::{AsrError, TranscribeOptions};
use vttiro_core::ErrorCode;

use crate::audio::{Piece, PiecePlan};
use crate::http::{default_verdict, Request, Response, Verdict};
use crate::words::RawWord;
use crate::{parse_json, PieceOutput};

/// Where the audio comes from: bytes vttiro uploads, or a URL Deepgram fetches itself.
pub enum ListenSource<'a> {
    Upload { bytes: &'a [u8], mime: &'a str },
    Url(&'a str),
}

impl DeepgramEngine {
    fn query(&self, options: &TranscribeOptions) -> String {
        let mut params: Vec<(&str, String)> = vec![
            ("model", self.config.model.clone()),
            ("smart_format", "true".into()),
            ("punctuate", "true".into()),
            ("utterances", "true".into()),
        ];
        if options.speaker_labels {
            params.push(("diarize", "true".into()));
        }
        match &options.language {
            Some(language) => params.push(("language", language.clone())),
            None => params.push(("detect_language", "true".into())),
        }
        for term in &options.vocabulary {
            params.push(("keyterm", term.clone()));
        }
        params
            .iter()
            .map(|(k, v)| format!("{k}={}", percent_encode(v)))
            .collect::<Vec<_>>()
            .join("&")
    }

    /// One `listen` request; words come back on the input's timeline shifted by `offset_ms`.
    pub fn listen(
        &self,
        source: ListenSource<'_>,
        options: &TranscribeOptions,
        offset_ms: i64,
    ) -> Result<ListenResult, AsrError> {
        let url = format!("{}/v1/listen?{}", self.config.base_url, self.query(options));
        let json_body;
        let (content_type, body): (&str, &[u8]) = match source {
            ListenSource::Upload { bytes, mime } => (mime, bytes),
            ListenSource::Url(url) => {
                json_body = serde_json::to_vec(&serde_json::json!({ "url": url }))
                    .expect("a string serialises");
                ("application/json", &json_body)
            }
        };
        let request = Request::new("POST", url)
            .header("Authorization", format!("Token {}", self.key.expose()))
            .header("Content-Type", content_type)
            .body(body);
        self.http
            .call(&request, |r| parse_listen(r, offset_ms), judge)
    }
}

fn percent_encode(value: &str) -> String {
    let mut out = String::new();
    for byte in value.bytes() {
        match byte {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                out.push(byte as char)
            }
            _ => out.push_str(&format!("%{byte:02X}")),
        }
    }
    out
}

pub struct ListenResult {
    pub words: Vec<RawWord>,
    pub language: Option<String>,
    pub language_confidence: Option<f32>,
    pub duration_seconds: f64,
}

#[derive(Deserialize)]
struct ListenBody {
    metadata: Metadata,
    results: Results,
}

#[derive(Deserialize)]
struct Metadata {
    #[serde(default)]
    duration: f64,
}

#[derive(Deserialize)]
struct Results {
    channels: Vec<Channel>,
}

#[derive(Deserialize)]
struct Channel {
    alternatives: Vec<Alternative>,
    #[serde(default)]
    detected_language: Option<String>,
    #[serde(default)]
    language_confidence: Option<f32>,
}

#[derive(Deserialize)]
struct Alternative {
    #[serde(default)]
    words: Vec<DgWord>,
}

#[derive(Deserialize)]
struct DgWord {
    word: String,
    start: f64,
    end: f64,
    #[serde(default)]
    confidence: f32,
    #[serde(default)]
    punctuated_word: Option<String>,
    #[serde(default)]
    speaker: Option<u32>,
}

fn parse_listen(response: &Response, offset_ms: i64) -> Result<ListenResult, String> {
    let body: ListenBody = parse_json(&response.body)?;
    let channel = body
        .results
        .channels
        .into_iter()
        .next()
        .ok_or("results.channels is empty")?;
    let alternative = channel
        .alternatives
        .into_iter()
        .next()
        .ok_or("results.channels[0].alternatives is empty")?;
    let words = alternative
        .words
        .into_iter()
        .map(|w| RawWord {
            text: w.punctuated_word.unwrap_or(w.word),
            start_ms: offset_ms + (w.start * 1000.0).round() as i64,
            end_ms: offset_ms + (w.end * 1000.0).round() as i64,
            confidence: w.confidence,
            speaker: w.speaker.map(|s| s.to_string()),
        })
        .collect();
    Ok(ListenResult {
        words,
        language: channel.detected_language,
        language_confidence: channel.language_confidence,
        duration_seconds: body.metadata.duration,
    })
}

#[derive(Deserialize)]
struct ErrorBody {
    #[serde(default)]
    err_code: Option<String>,
    #[serde(default)]
    err_msg: Option<String>,
    #[serde(default)]
    category: Option<String>,
    #[serde(default)]
    message: Option<String>,
}

fn judge(response: &Response) -> Verdict {
    let body = serde_json::from_slice::<ErrorBody>(&response.body).ok();
    let code = body
        .as_ref()
        .and_then(|b| b.err_code.clone().or(b.category.clone()))
        .unwrap_or_default();
    let message = body
        .as_ref()
        .and_then(|b| b.err_msg.clone().or(b.message.clone()))
        .unwrap_or_else(|| response.text().chars().take(200).collect());
    let lower = message.to_ascii_lowercase();
    if response.status == 400 && (lower.contains("corrupt") || lower.contains("unsupported data")) {
        return Verdict::Fail(
            ErrorCode::ProviderUnsupportedFormat,
            format!("the audio could not be read (HTTP 400 {code}): {message}"),
        );
    }
    let detail = format!("{code}: {message}");
    default_verdict(response.status, detail.trim_start_matches(": "))
}

crate::cloud_engine!(DeepgramEngine, "deepgram");

impl DeepgramEngine {
    fn upload_plan(&self) -> PiecePlan {
        self.config.whole_upload_plan()
    }

    fn send(
        &self,
        _audio: &[f32],
        piece: &Piece,
        options: &TranscribeOptions,
    ) -> Result<PieceOutput, AsrError> {
        let source = ListenSource::Upload {
            bytes: &piece.bytes,
            mime: piece.format.mime(),
        };
        let result = self.listen(source, options, piece.offset_ms())?;
        Ok(PieceOutput {
            words: result.words,
            language: result.language,
            language_probability: result.language_confidence.unwrap_or(0.0),
            billed_seconds: if result.duration_seconds > 0.0 {
                result.duration_seconds
            } else {
                piece.duration_ms() as f64 / 1000.0
            },
        })
    }
}
