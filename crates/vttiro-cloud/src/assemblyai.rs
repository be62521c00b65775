//! AssemblyAI v2: upload the audio, create a transcript job (speaker labels, language
//! detection, key terms), poll it with a growing interval until it completes, and read its
//! words (milliseconds, punctuated, speaker letters).

use std::time::Instant;

use serde::Deserialize;
use serde_json::json;
use vttiro_asr::{AsrError, CancelToken, TranscribeOptions};
use vttiro_core::ErrorCode;

use crate::audio::{Piece, PiecePlan};
use crate::http::{default_verdict, Request, Response, Verdict};
use crate::words::RawWord;
use crate::{parse_json, PieceOutput};

#[derive(Deserialize)]
struct Uploaded {
    upload_url: String,
}

#[derive(Deserialize)]
struct Job {
    id: String,
    status: String,
    #[serde(default)]
    error: Option<String>,
    #[serde(default)]
    words: Option<Vec<AaiWord>>,
    #[serde(default)]
    audio_duration: Option<f64>,
    #[serde(default)]
    language_code: Option<String>,
    #[serde(default)]
    language_confidence: Option<f32>,
}

#[derive(Deserialize)]
struct AaiWord {
    text: String,
    start: i64,
    end: i64,
    #[serde(default)]
    confidence: f32,
    #[serde(default)]
    speaker: Option<String>,
}

#[derive(Deserialize)]
struct ErrorBody {
    error: String,
}

fn judge(response: &Response) -> Verdict {
    let message = serde_json::from_slice::<ErrorBody>(&response.body)
        .map(|b| b.error)
        .unwrap_or_else(|_| response.text().chars().take(200).collect());
    let lower = message.to_ascii_lowercase();
    // An empty balance is a 400 here, not a 402.
    if response.status == 400 && lower.contains("balance") {
        return Verdict::Fail(
            ErrorCode::ProviderQuota,
            format!("the account is out of credit (HTTP 400): {message}"),
        );
    }
    default_verdict(response.status, &message)
}

/// The class of a job that ended in `status: "error"` (HTTP 200), from its message.
fn job_failure(message: &str) -> ErrorCode {
    let lower = message.to_ascii_lowercase();
    if lower.contains("does not appear to contain audio") || lower.contains("transcoding failed") {
        ErrorCode::ProviderUnsupportedFormat
    } else if lower.contains("too short") || lower.contains("not available in this language") {
        ErrorCode::InvalidArgument
    } else {
        ErrorCode::EngineFailed
    }
}

/// `--language en` means what AssemblyAI calls `en` (global English); regional codes such
/// as `en_us` pass through.
fn language_field(options: &TranscribeOptions) -> serde_json::Value {
    match &options.language {
        Some(code) => json!({ "language_code": code.replace('-', "_").to_ascii_lowercase() }),
        None => json!({ "language_detection": true }),
    }
}

impl AssemblyAiEngine {
    fn upload(&self, piece: &Piece) -> Result<String, AsrError> {
        let request = Request::new("POST", format!("{}/v2/upload", self.config.base_url))
            .header("Authorization", self.key.expose())
            .header("Content-Type", "application/octet-stream")
            .body(&piece.bytes);
        self.http.call(
            &request,
            |r| parse_json::<Uploaded>(&r.body).map(|u| u.upload_url),
            judge,
        )
    }

    /// The job's JSON body; `speech_models` lists `--model`, '+'-separated for a priority
    /// list (`universal-3-pro+universal-2`).
    pub fn job_body(&self, audio_url: &str, options: &TranscribeOptions) -> serde_json::Value {
        let models: Vec<&str> = self
            .config
            .model
            .split('+')
            .map(str::trim)
            .filter(|m| !m.is_empty())
            .collect();
        let mut body = json!({
            "audio_url": audio_url,
            "speech_models": models,
            "punctuate": true,
            "format_text": true,
        });
        let object = body.as_object_mut().expect("object literal");
        for (k, v) in language_field(options).as_object().expect("object").clone() {
            object.insert(k, v);
        }
        if options.speaker_labels {
            object.insert("speaker_labels".into(), json!(true));
            if let Some(n) = options.speakers_expected {
                object.insert("speakers_expected".into(), json!(n));
            }
        }
        // `word_boost` was retired for `keyterms_prompt`.
        if !options.vocabulary.is_empty() {
            object.insert("keyterms_prompt".into(), json!(options.vocabulary));
        }
        if let Some(prompt) = &options.prompt {
            object.insert("prompt".into(), json!(prompt));
        }
        if let Some(url) = &self.config.webhook_url {
            object.insert("webhook_url".into(), json!(url));
        }
        body
    }

    fn create(&self, audio_url: &str, options: &TranscribeOptions) -> Result<Job, AsrError> {
        let body = serde_json::to_vec(&self.job_body(audio_url, options)).expect("json");
        let request = Request::new("POST", format!("{}/v2/transcript", self.config.base_url))
            .header("Authorization", self.key.expose())
            .header("Content-Type", "application/json")
            .body(&body);
        self.http
            .call(&request, |r| parse_json::<Job>(&r.body), judge)
    }

    /// Asks for the job until it is done; a set `cancel` stops the asking at once (the job
    /// itself runs on at AssemblyAI, which has no way to stop it).
    fn poll(&self, id: &str, cancel: &CancelToken) -> Result<Job, AsrError> {
        let started = Instant::now();
        let mut wait = self.config.poll_interval;
        loop {
            vttiro_asr::check_cancel(cancel)?;
            let request = Request::new(
                "GET",
                format!("{}/v2/transcript/{id}", self.config.base_url),
            )
            .header("Authorization", self.key.expose());
            let job: Job = self
                .http
                .call(&request, |r| parse_json::<Job>(&r.body), judge)?;
            match job.status.as_str() {
                "completed" => return Ok(job),
                "error" => {
                    let message = job.error.unwrap_or_else(|| "no reason given".into());
                    return Err(self.http.fail(
                        job_failure(&message),
                        format!("transcript {id} failed: {message}"),
                    ));
                }
                _ => {}
            }
            if started.elapsed() + wait > self.config.poll_timeout {
                return Err(self.http.fail(
                    ErrorCode::ProviderUnavailable,
                    format!(
                        "transcript {id} was still {} after {:.0} s",
                        job.status,
                        started.elapsed().as_secs_f64()
                    ),
                ));
            }
            if !cancel.sleep(wait) {
                return Err(AsrError::Cancelled);
            }
            wait = (wait + wait / 2).min(self.config.poll_max_interval);
        }
    }

    /// The upload → job → poll sequence for one piece; public so the service can run the
    /// job with a webhook instead of polling.
    pub(crate) fn transcribe_piece(
        &self,
        piece: &Piece,
        options: &TranscribeOptions,
    ) -> Result<PieceOutput, AsrError> {
        let audio_url = self.upload(piece)?;
        let job = self.create(&audio_url, options)?;
        tracing::debug!(provider = "assemblyai", id = %job.id, "transcript job created");
        let done = if job.status == "completed" {
            job
        } else {
            self.poll(&job.id, &options.cancel)?
        };
        let offset = piece.offset_ms();
        let words = done
            .words
            .unwrap_or_default()
            .into_iter()
            .map(|w| RawWord {
                text: w.text,
                start_ms: offset + w.start,
                end_ms: offset + w.end,
                confidence: w.confidence,
                speaker: w.speaker,
            })
            .collect();
        let billed = done
            .audio_duration
            .unwrap_or(piece.duration_ms() as f64 / 1000.0);
        Ok(PieceOutput {
            words,
            // AssemblyAI reports `en_us`-style codes; vttiro uses the ISO 639-1 part.
            language: done
                .language_code
                .map(|code| code.split('_').next().unwrap_or_default().to_string()),
            language_probability: done.language_confidence.unwrap_or(0.0),
            billed_seconds: billed,
        })
    }
}

crate::cloud_engine!(AssemblyAiEngine, "assemblyai");

impl AssemblyAiEngine {
    fn upload_plan(&self) -> PiecePlan {
        self.config.whole_upload_plan()
    }

    fn send(
        &self,
        _audio: &[f32],
        piece: &Piece,
        options: &TranscribeOptions,
    ) -> Result<PieceOutput, AsrError> {
        self.transcribe_piece(piece, options)
    }
}
