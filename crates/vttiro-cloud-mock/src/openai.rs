//! OpenAI `POST /v1/audio/transcriptions` (spec: /tmp/cloudspec/openai.md).

use crate::audio::{self, Kind};
use crate::server::Handler;
use crate::{fixture, new_id, serve_main, text_reply, FaultKit, MockConfig, Reply};
use serde_json::{json, Value};

const ERROR_400_FORMAT: &str = include_str!("../fixtures/openai/error_400_format.json");
const ERROR_401: &str = include_str!("../fixtures/openai/error_401.json");
const ERROR_413: &str = include_str!("../fixtures/openai/error_413.json");
const ERROR_429_QUOTA: &str = include_str!("../fixtures/openai/error_429_quota.json");
const ERROR_429_RATE: &str = include_str!("../fixtures/openai/error_429_rate.json");
const ERROR_500: &str = include_str!("../fixtures/openai/error_500.json");
const VERBOSE: &str = include_str!("../fixtures/openai/verbose_json_whisper1.json");
const JSON_GPT4O: &str = include_str!("../fixtures/openai/json_gpt4o.json");
const DIARIZED: &str = include_str!("../fixtures/openai/diarized_json.json");

const DEFAULT_LIMIT: usize = 26_214_400;
const DIARIZE: &str = "gpt-4o-transcribe-diarize";

const KIT: FaultKit = FaultKit {
    status: status_reply,
    quota: || Reply::raw_json(429, ERROR_429_QUOTA.as_bytes()),
    malformed: b"{\"text\": \"And so, my fel",
};

fn error(status: u16, message: &str, kind: &str, param: Option<&str>, code: Option<&str>) -> Reply {
    let body = json!({"error": {"message": message, "type": kind, "param": param, "code": code}});
    Reply::json(status, &body)
}

fn invalid(message: &str, param: Option<&str>, code: Option<&str>) -> Reply {
    error(400, message, "invalid_request_error", param, code)
}

fn status_reply(status: u16) -> Reply {
    match status {
        401 => Reply::raw_json(401, ERROR_401.as_bytes()),
        413 => Reply::raw_json(413, ERROR_413.as_bytes()),
        429 => Reply::raw_json(429, ERROR_429_RATE.as_bytes()),
        500 => Reply::raw_json(500, ERROR_500.as_bytes()),
        503 => error(
            503,
            "The engine is currently overloaded, please try again later.",
            "server_error",
            None,
            None,
        ),
        s if s >= 500 => error(
            s,
            "The server had an error while processing your request. Sorry about that!",
            "server_error",
            None,
            None,
        ),
        s => error(s, "Invalid request.", "invalid_request_error", None, None),
    }
}

/// The key as the real API quotes it: first 8 characters, stars, last 4.
fn mask(key: &str) -> String {
    let chars: Vec<char> = key.chars().collect();
    let (head, tail) = if chars.len() > 12 {
        (8, 4)
    } else {
        (chars.len() / 4, chars.len() / 4)
    };
    let stars = "*".repeat(chars.len() - head - tail);
    let (start, end) = (&chars[..head], &chars[chars.len() - tail..]);
    format!(
        "{}{stars}{}",
        start.iter().collect::<String>(),
        end.iter().collect::<String>()
    )
}

fn allowed_formats(model: &str) -> Option<&'static [&'static str]> {
    match model {
        "whisper-1" => Some(&["json", "text", "srt", "verbose_json", "vtt"]),
        "gpt-4o-transcribe"
        | "gpt-4o-mini-transcribe"
        | "gpt-4o-mini-transcribe-2025-12-15"
        | "gpt-transcribe" => Some(&["json", "text"]),
        DIARIZE => Some(&["json", "text", "diarized_json"]),
        _ => None,
    }
}

fn quoted_list(items: &[&str]) -> String {
    let quoted: Vec<String> = items.iter().map(|i| format!("'{i}'")).collect();
    match quoted.split_last() {
        Some((last, rest)) if !rest.is_empty() => format!("{} or {last}", rest.join(", ")),
        _ => quoted.join(""),
    }
}

pub fn handler(config: MockConfig) -> Handler {
    let mut faults = config.faults.iter().cloned().collect();
    let limit = config.limit(DEFAULT_LIMIT);
    Box::new(move |request, _base| {
        let reply = match auth(request, &config.api_key) {
            Some(rejection) => rejection,
            None if request.method == "POST" && request.path == "/v1/audio/transcriptions" => {
                serve_main(&mut faults, &KIT, || transcribe(request, limit))
            }
            None => error(
                404,
                &format!("Invalid URL ({} {})", request.method, request.path),
                "invalid_request_error",
                None,
                None,
            ),
        };
        reply.with_header(
            "x-request-id",
            &format!("req_{}", new_id().replace('-', "")),
        )
    })
}

fn auth(request: &crate::RecordedRequest, key: &str) -> Option<Reply> {
    match crate::auth_token(request, "Bearer") {
        Some(given) if given == key => None,
        Some(given) => Some(error(
            401,
            &format!("Incorrect API key provided: {}. You can find your API key at https://platform.openai.com/account/api-keys.", mask(given)),
            "invalid_request_error",
            None,
            Some("invalid_api_key"),
        )),
        None => Some(error(
            401,
            "You didn't provide an API key. You need to provide your API key in an Authorization header using Bearer auth (i.e. Authorization: Bearer YOUR_KEY), or as the password field (with blank username) if you're accessing the API from your browser and are prompted for a username. You can obtain an API key from https://platform.openai.com/account/api-keys.",
            "invalid_request_error",
            None,
            None,
        )),
    }
}

fn transcribe(request: &crate::RecordedRequest, limit: usize) -> Reply {
    if request.body.len() > limit {
        let message = format!(
            "Maximum content size limit ({limit}) exceeded ({} bytes read)",
            request.body.len()
        );
        return error(413, &message, "server_error", None, None);
    }
    let content_type = request.header("content-type").unwrap_or("");
    let Some(parts) = request
        .multipart()
        .filter(|_| content_type.starts_with("multipart/form-data"))
    else {
        let message = format!("Invalid Content-Type header ({content_type}), expected multipart/form-data. (HINT: If you're using curl, you can pass -H 'Content-Type: multipart/form-data')");
        return invalid(&message, None, None);
    };
    let field = |name: &str| {
        parts
            .iter()
            .find(|p| p.name == name && p.file_name.is_none())
            .map(|p| p.text())
    };
    let fields = |name: &str| -> Vec<String> {
        parts
            .iter()
            .filter(|p| p.name == name)
            .map(|p| p.text())
            .collect()
    };

    let Some(model) = field("model") else {
        return invalid("you must provide a model parameter", None, None);
    };
    let Some(formats) = allowed_formats(&model) else {
        let message =
            format!("The model `{model}` does not exist or you do not have access to it.");
        return error(
            404,
            &message,
            "invalid_request_error",
            None,
            Some("model_not_found"),
        );
    };
    let Some(file) = parts
        .iter()
        .find(|p| p.name == "file" && p.file_name.is_some())
    else {
        return invalid("1 validation error for Request\nbody -> file\n  field required (type=value_error.missing)", None, None);
    };
    let extension = file
        .file_name
        .as_deref()
        .and_then(|n| n.rsplit_once('.'))
        .map(|(_, e)| e.to_ascii_lowercase());
    let expected: &[Kind] = match extension.as_deref() {
        Some("wav") => &[Kind::Wav],
        Some("ogg" | "oga") => &[Kind::Ogg],
        Some("flac") => &[Kind::Flac],
        Some("mp3" | "mpga") => &[Kind::Mp3],
        Some("mpeg") => &[Kind::Mp3, Kind::Mp4],
        Some("mp4" | "m4a") => &[Kind::Mp4],
        Some("webm") => &[Kind::Webm],
        _ => &[],
    };
    if !audio::sniff(&file.data).is_some_and(|k| expected.contains(&k)) {
        return Reply::raw_json(400, ERROR_400_FORMAT.as_bytes());
    }

    let response_format = field("response_format").unwrap_or_else(|| "json".into());
    const ALL: [&str; 6] = [
        "json",
        "text",
        "srt",
        "verbose_json",
        "vtt",
        "diarized_json",
    ];
    if !ALL.contains(&response_format.as_str()) {
        let message = format!("Invalid value: '{response_format}'. Supported values are: 'json', 'text', 'srt', 'verbose_json', 'vtt' and 'diarized_json'.");
        return invalid(&message, Some("response_format"), Some("invalid_value"));
    }
    if !formats.contains(&response_format.as_str()) {
        let message = format!("response_format '{response_format}' is not compatible with model '{model}'. Use {} instead.", quoted_list(formats));
        return invalid(&message, Some("response_format"), Some("unsupported_value"));
    }
    let granularities = fields("timestamp_granularities[]");
    if let Some(bad) = granularities
        .iter()
        .find(|g| !matches!(g.as_str(), "word" | "segment"))
    {
        let message =
            format!("Invalid value: '{bad}'. Supported values are: 'word' and 'segment'.");
        return invalid(
            &message,
            Some("timestamp_granularities[]"),
            Some("invalid_value"),
        );
    }
    if !granularities.is_empty() && response_format != "verbose_json" {
        return invalid(
            "timestamp_granularities requires response_format=verbose_json",
            Some("timestamp_granularities"),
            Some("invalid_value"),
        );
    }
    if model == DIARIZE {
        for unsupported in ["prompt", "include[]"] {
            if field(unsupported).is_some() {
                let message = format!(
                    "Unsupported parameter: '{unsupported}' is not supported with this model."
                );
                return invalid(&message, Some(unsupported), Some("unsupported_parameter"));
            }
        }
    } else if !fields("include[]").is_empty() && (model == "whisper-1" || response_format != "json")
    {
        return invalid(
            "include[] is only supported with response_format 'json' on gpt-4o-transcribe models.",
            Some("include[]"),
            Some("unsupported_parameter"),
        );
    }
    if let Some(temperature) = field("temperature") {
        if !temperature
            .trim()
            .parse::<f64>()
            .is_ok_and(|t| (0.0..=1.0).contains(&t))
        {
            let message = format!("Invalid 'temperature': expected a number between 0 and 1, but got '{temperature}' instead.");
            return invalid(&message, Some("temperature"), Some("invalid_value"));
        }
    }
    let chunking = field("chunking_strategy");
    if let Some(strategy) = &chunking {
        let valid = strategy == "auto"
            || serde_json::from_str::<Value>(strategy)
                .is_ok_and(|v| v.get("type").and_then(Value::as_str) == Some("server_vad"));
        if !valid {
            return invalid("Invalid value for 'chunking_strategy': expected 'auto' or an object with type 'server_vad'.", Some("chunking_strategy"), Some("invalid_value"));
        }
    }
    if model == DIARIZE
        && chunking.is_none()
        && audio::duration(&file.data).is_some_and(|d| d > 30.0)
    {
        return invalid("chunking_strategy is required for diarization models when the input audio is longer than 30 seconds.", Some("chunking_strategy"), Some("invalid_value"));
    }
    success(&model, &response_format, &granularities)
}

fn success(model: &str, response_format: &str, granularities: &[String]) -> Reply {
    let verbose = fixture(VERBOSE);
    let text = verbose["text"].as_str().unwrap_or_default().to_string();
    let segments = verbose["segments"].as_array().cloned().unwrap_or_default();
    let cue = |t: f64, sep: char| {
        let ms = (t * 1000.0).round() as u64;
        format!(
            "{:02}:{:02}:{:02}{sep}{:03}",
            ms / 3_600_000,
            ms / 60_000 % 60,
            ms / 1000 % 60,
            ms % 1000
        )
    };
    let cues = |sep: char| -> Vec<(String, String)> {
        segments
            .iter()
            .map(|s| {
                let (start, end) = (
                    s["start"].as_f64().unwrap_or(0.0),
                    s["end"].as_f64().unwrap_or(0.0),
                );
                (
                    format!("{} --> {}", cue(start, sep), cue(end, sep)),
                    s["text"].as_str().unwrap_or("").trim().to_string(),
                )
            })
            .collect()
    };
    match response_format {
        "text" => text_reply(200, "text/plain; charset=utf-8", format!("{text}\n")),
        "srt" => {
            let body: Vec<String> = cues(',')
                .into_iter()
                .enumerate()
                .map(|(i, (t, x))| format!("{}\n{t}\n{x}\n", i + 1))
                .collect();
            text_reply(200, "text/plain; charset=utf-8", body.join("\n") + "\n")
        }
        "vtt" => {
            let body: Vec<String> = cues('.')
                .into_iter()
                .map(|(t, x)| format!("{t}\n{x}\n"))
                .collect();
            text_reply(
                200,
                "text/vtt; charset=utf-8",
                format!("WEBVTT\n\n{}\n", body.join("\n")),
            )
        }
        "verbose_json" => {
            let mut body = verbose;
            let wants = |g: &str| granularities.iter().any(|x| x == g);
            let object = body.as_object_mut().expect("verbose fixture is an object");
            if !wants("word") {
                object.remove("words");
            }
            if !granularities.is_empty() && !wants("segment") {
                object.remove("segments");
            }
            Reply::json(200, &body)
        }
        "diarized_json" => Reply::raw_json(200, DIARIZED.as_bytes()),
        _ if model == "whisper-1" => {
            Reply::json(200, &json!({"text": text, "usage": verbose["usage"]}))
        }
        _ => Reply::raw_json(200, JSON_GPT4O.as_bytes()),
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn masks_like_the_real_api() {
        assert_eq!(
            super::mask("sk-vttiro-mock-key-0000mock"),
            "sk-vttir***************mock"
        );
        assert_eq!(super::mask("short-key"), "sh*****ey");
    }
}
