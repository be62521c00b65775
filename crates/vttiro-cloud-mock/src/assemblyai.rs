//! AssemblyAI v2 pre-recorded: upload, create transcript, poll (spec:
//! /tmp/cloudspec/assemblyai.md; field list from the openapi.yml `TranscriptParams` schema,
//! which has `additionalProperties: false`).

use crate::audio;
use crate::server::Handler;
use crate::{fixture, new_id, serve_main, FaultKit, MockConfig, RecordedRequest, Reply};
use serde_json::{json, Map, Value};
use std::collections::HashMap;

const ERROR_400: &str = include_str!("../fixtures/assemblyai/error_400.json");
const ERROR_401: &str = include_str!("../fixtures/assemblyai/error_401.json");
const QUEUED: &str = include_str!("../fixtures/assemblyai/transcript_queued.json");
const COMPLETED: &str = include_str!("../fixtures/assemblyai/transcript_completed.json");

const DEFAULT_LIMIT: usize = 2_200_000_000;
const MODELS: [&str; 5] = ["universal-3-pro", "universal-2", "slam-1", "best", "nano"];
/// Languages documented as supporting speaker diarization (every `TranscriptLanguageCode`).
const DIARIZATION_LANGUAGES: &str = "en en_au en_uk en_us es fr de it pt nl hi ja zh fi ko pl ru tr uk vi af sq am ar hy as az ba eu be bn bs br bg my ca hr cs da et fo gl ka el gu ht ha haw he hu is id jw kn kk km lo la lv ln lt lb mk mg ms ml mt mi mr mn ne no nn oc pa ps fa ro sa sr sn sd si sk sl so su sw sv tl tg ta tt te th bo tk ur uz cy yi yo";

/// Request fields and their JSON types: b = Boolean, i = Integer, n = Number, s = String,
/// a = List, o = Object, ? = may be null, * = anything.
const FIELDS: &[(&str, &str)] = &[
    ("audio_url", "s"),
    ("speech_models", "a"),
    ("speech_model", "s?"),
    ("language_code", "s?"),
    ("language_codes", "a?"),
    ("language_detection", "b"),
    ("language_confidence_threshold", "n"),
    ("language_detection_options", "o"),
    ("punctuate", "b"),
    ("format_text", "b"),
    ("disfluencies", "b"),
    ("filter_profanity", "b"),
    ("multichannel", "b"),
    ("speaker_labels", "b"),
    ("speakers_expected", "i?"),
    ("speaker_options", "o"),
    ("keyterms_prompt", "a"),
    ("prompt", "s"),
    ("temperature", "n"),
    ("webhook_url", "s"),
    ("webhook_auth_header_name", "s?"),
    ("webhook_auth_header_value", "s?"),
    ("audio_start_from", "i"),
    ("audio_end_at", "i"),
    ("auto_chapters", "b"),
    ("auto_highlights", "b"),
    ("content_safety", "b"),
    ("content_safety_confidence", "i"),
    ("custom_spelling", "a"),
    ("entity_detection", "b"),
    ("iab_categories", "b"),
    ("redact_pii", "b"),
    ("redact_pii_audio", "b"),
    ("redact_pii_audio_options", "o"),
    ("redact_pii_audio_quality", "s"),
    ("redact_pii_policies", "a"),
    ("redact_pii_sub", "s?"),
    ("sentiment_analysis", "b"),
    ("speech_threshold", "n?"),
    ("speech_understanding", "o"),
    ("summarization", "b"),
    ("summary_model", "s?"),
    ("summary_type", "s?"),
    ("remove_audio_tags", "s?"),
    ("custom_topics", "b"),
    ("topics", "a"),
];

const KIT: FaultKit = FaultKit {
    status: status_reply,
    quota: || {
        error(
            400,
            "Your current account balance is negative. Please top up to continue using the API.",
        )
    },
    malformed: b"{\"upload_url\": \"https://cdn.assembly",
};

fn error(status: u16, message: &str) -> Reply {
    Reply::json(status, &json!({ "error": message }))
}

fn status_reply(status: u16) -> Reply {
    match status {
        400 => Reply::raw_json(400, ERROR_400.as_bytes()),
        401 => Reply::raw_json(401, ERROR_401.as_bytes()),
        403 => error(403, "Cannot access uploaded file"),
        404 => error(404, "Not found"),
        // The spec's TooManyRequests response always carries an integer Retry-After.
        429 => error(429, "Too Many Requests").with_header("retry-after", "1"),
        500 => error(500, "Internal Server Error"),
        503 => error(503, "Service Unavailable"),
        504 => error(504, "Gateway Timeout"),
        s => error(s, "Server error, developers have been alerted."),
    }
}

struct Job {
    request: Map<String, Value>,
    gets: usize,
    /// Why the job fails, if it does.
    failure: Option<String>,
    duration: Option<f64>,
}

struct State {
    config: MockConfig,
    faults: std::collections::VecDeque<crate::Fault>,
    /// Upload id -> (looks like audio, duration).
    uploads: HashMap<String, (bool, Option<f64>)>,
    jobs: HashMap<String, Job>,
}

pub fn handler(config: MockConfig) -> Handler {
    let faults = config.faults.iter().cloned().collect();
    let mut state = State {
        config,
        faults,
        uploads: HashMap::new(),
        jobs: HashMap::new(),
    };
    Box::new(move |request, base| state.handle(request, base))
}

impl State {
    fn handle(&mut self, request: &RecordedRequest, base: &str) -> Reply {
        if request.header("authorization").map(str::trim) != Some(self.config.api_key.as_str()) {
            return Reply::raw_json(401, ERROR_401.as_bytes());
        }
        let transcript_id = request.path.strip_prefix("/v2/transcript/");
        match (request.method.as_str(), request.path.as_str()) {
            ("POST", "/v2/upload") => {
                let mut faults = std::mem::take(&mut self.faults);
                let reply = serve_main(&mut faults, &KIT, || self.upload(request, base));
                self.faults = faults;
                reply
            }
            ("POST", "/v2/transcript") => self.create(request, base),
            ("GET", _) if transcript_id.is_some() => self.poll(transcript_id.unwrap_or_default()),
            _ => error(404, "Not found"),
        }
    }

    fn upload(&mut self, request: &RecordedRequest, base: &str) -> Reply {
        if request.body.is_empty() {
            return error(400, "Upload failed, please try again. If you continue to have issues please reach out to support@assemblyai.com");
        }
        if request.body.len() > self.config.limit(DEFAULT_LIMIT) {
            return error(413, "File too large. The maximum upload size is 2.2 GB.");
        }
        let id = new_id();
        let entry = (
            audio::sniff(&request.body).is_some(),
            audio::duration(&request.body),
        );
        self.uploads.insert(id.clone(), entry);
        Reply::json(
            200,
            &json!({ "upload_url": format!("{base}/cdn/upload/{id}") }),
        )
    }

    fn create(&mut self, request: &RecordedRequest, base: &str) -> Reply {
        let Some(Value::Object(body)) = request.json() else {
            return error(
                400,
                "Invalid endpoint schema, please refer to documentation for examples.",
            );
        };
        for (key, value) in &body {
            let Some((_, kind)) = FIELDS.iter().find(|(name, _)| name == key) else {
                return error(
                    400,
                    "Invalid endpoint schema, please refer to documentation for examples.",
                );
            };
            let ok = match kind.trim_end_matches('?') {
                "b" => value.is_boolean(),
                "i" => value.is_i64() || value.is_u64(),
                "n" => value.is_number(),
                "s" => value.is_string(),
                "a" => value.is_array(),
                _ => value.is_object(),
            } || (kind.ends_with('?') && value.is_null());
            if !ok {
                let noun = match kind.trim_end_matches('?') {
                    "b" => "a Boolean",
                    "i" => "an Integer",
                    "n" => "a Number",
                    "s" => "a String",
                    "a" => "a List",
                    _ => "an Object",
                };
                return error(400, &format!("{key} must be {noun}"));
            }
        }
        let Some(audio_url) = body
            .get("audio_url")
            .and_then(Value::as_str)
            .map(String::from)
        else {
            return error(400, "audio_url is required");
        };
        let models = body
            .get("speech_models")
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default();
        if models.is_empty() {
            return error(400, "speech_models is required. Please specify one or more speech models, e.g. [\"universal-3-pro\", \"universal-2\"].");
        }
        if let Some(bad) = models
            .iter()
            .find(|m| !m.as_str().is_some_and(|m| MODELS.contains(&m)))
        {
            return error(
                400,
                &format!(
                    "Invalid speech model: {bad}. Available models: {}.",
                    MODELS.join(", ")
                ),
            );
        }
        let language = body.get("language_code").and_then(Value::as_str);
        let diarize = body.get("speaker_labels") == Some(&Value::Bool(true));
        if diarize && language.is_some_and(|l| !DIARIZATION_LANGUAGES.split(' ').any(|c| c == l)) {
            return Reply::raw_json(400, ERROR_400.as_bytes());
        }
        let (failure, duration) = if let Some(rest) =
            audio_url.strip_prefix(&format!("{base}/cdn/upload/"))
        {
            match self.uploads.get(rest) {
                Some((true, duration)) if duration.is_some_and(|d| d < 0.16) => (Some("Audio duration is too short.".into()), *duration),
                Some((true, duration)) => (None, *duration),
                Some((false, _)) => (Some("File does not appear to contain audio. File type is application/octet-stream (data).".into()), None),
                None => (Some(download_error(&audio_url)), None),
            }
        } else if audio_url.starts_with("https://cdn.assemblyai.com/upload/") {
            return error(403, "Cannot access uploaded file");
        } else if audio_url.starts_with("http://") || audio_url.starts_with("https://") {
            (None, None)
        } else {
            (Some(download_error(&audio_url)), None)
        };
        let id = new_id();
        let job = Job {
            request: body,
            gets: 0,
            failure: self.config.assemblyai_job_error.clone().or(failure),
            duration,
        };
        let reply = Reply::json(200, &transcript(&id, &job, "queued"));
        self.jobs.insert(id, job);
        reply
    }

    fn poll(&mut self, id: &str) -> Reply {
        let polls = self.config.assemblyai_polls_before_done;
        let Some(job) = self.jobs.get_mut(id) else {
            return error(400, "Transcript lookup error, transcript id not found");
        };
        job.gets += 1;
        let status = match job.gets {
            n if n > polls => {
                if job.failure.is_some() {
                    "error"
                } else {
                    "completed"
                }
            }
            1 if polls > 1 => "queued",
            _ => "processing",
        };
        Reply::json(200, &transcript(id, job, status))
    }
}

fn download_error(url: &str) -> String {
    format!("Download error, unable to download {url}. Please make sure the file exists and is accessible from the internet.")
}

/// The Transcript object for `job` in `status`, echoing the request's settings.
fn transcript(id: &str, job: &Job, status: &str) -> Value {
    let mut t = fixture(if status == "completed" {
        COMPLETED
    } else {
        QUEUED
    });
    let request = &job.request;
    t["id"] = json!(id);
    t["status"] = json!(status);
    for key in [
        "audio_url",
        "speech_models",
        "punctuate",
        "format_text",
        "speaker_labels",
        "speakers_expected",
        "language_detection",
        "webhook_url",
        "webhook_auth_header_name",
    ] {
        if let Some(value) = request.get(key) {
            t[key] = value.clone();
        }
    }
    if !request.contains_key("speaker_labels") {
        t["speaker_labels"] = json!(false);
    }
    t["webhook_auth"] = json!(request
        .get("webhook_auth_header_name")
        .is_some_and(|v| !v.is_null()));
    let detect = request.get("language_detection") == Some(&Value::Bool(true));
    t["language_code"] = match request.get("language_code") {
        Some(code) if !code.is_null() => code.clone(),
        _ => json!("en_us"),
    };
    if status == "error" {
        t["error"] = json!(job.failure);
        return t;
    }
    if status != "completed" {
        return t;
    }
    t["speech_model_used"] = request["speech_models"][0].clone();
    if detect {
        t["language_confidence"] = json!(0.9871);
    }
    if let Some(duration) = job.duration {
        t["audio_duration"] = json!(duration.round() as u64);
    }
    if t["speaker_labels"] != json!(true) {
        t["utterances"] = Value::Null;
        for word in t["words"].as_array_mut().into_iter().flatten() {
            word["speaker"] = Value::Null;
        }
    }
    t
}
