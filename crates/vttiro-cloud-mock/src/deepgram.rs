//! Deepgram `POST /v1/listen`, pre-recorded (spec: /tmp/cloudspec/deepgram.md).

use crate::audio;
use crate::server::Handler;
use crate::{fixture, new_id, serve_main, FaultKit, MockConfig, RecordedRequest, Reply};
use serde_json::{json, Value};

const ERROR_400_AUDIO: &str = include_str!("../fixtures/deepgram/error_400_audio.json");
const ERROR_401: &str = include_str!("../fixtures/deepgram/error_401.json");
const ERROR_402: &str = include_str!("../fixtures/deepgram/error_402.json");
const ERROR_403: &str = include_str!("../fixtures/deepgram/error_403.json");
const ERROR_429: &str = include_str!("../fixtures/deepgram/error_429.json");
const LISTEN_OK: &str = include_str!("../fixtures/deepgram/listen_ok.json");

const DEFAULT_LIMIT: usize = 2 * 1024 * 1024 * 1024;
const BOOLEANS: [&str; 17] = [
    "diarize",
    "utterances",
    "smart_format",
    "punctuate",
    "paragraphs",
    "multichannel",
    "numerals",
    "filler_words",
    "profanity_filter",
    "dictation",
    "measurements",
    "sentiment",
    "topics",
    "intents",
    "mip_opt_out",
    "summarize_v1",
    "detect_entities",
];
const MODEL_FAMILIES: [&str; 6] = ["nova-3", "nova-2", "nova", "enhanced", "base", "whisper"];

const KIT: FaultKit = FaultKit {
    status: |status| legacy(status, fixture_for(status)),
    quota: || legacy(402, ERROR_402),
    malformed: b"{\"results\": {\"channels\": [",
};

fn fixture_for(status: u16) -> &'static str {
    match status {
        400 => ERROR_400_AUDIO,
        401 => ERROR_401,
        402 => ERROR_402,
        403 => ERROR_403,
        429 => ERROR_429,
        413 => {
            r#"{"err_code":"PAYLOAD_TOO_LARGE","err_msg":"Payload too large. The maximum file size is 2 GB.","request_id":""}"#
        }
        500 => {
            r#"{"err_code":"INTERNAL_SERVER_ERROR","err_msg":"An internal server error occurred. Please try again later.","request_id":""}"#
        }
        _ => {
            r#"{"err_code":"SERVICE_UNAVAILABLE","err_msg":"The service is temporarily unavailable. Please try again later.","request_id":""}"#
        }
    }
}

/// A legacy-shape error body from `template`, with `request_id` filled in later.
fn legacy(status: u16, template: &str) -> Reply {
    Reply::json(status, &fixture(template))
}

fn bad_request(message: &str) -> Reply {
    Reply::json(
        400,
        &json!({"err_code": "Bad Request", "err_msg": message, "request_id": ""}),
    )
}

pub fn handler(config: MockConfig) -> Handler {
    let mut faults = config.faults.iter().cloned().collect();
    Box::new(move |request, _base| {
        let reply = if crate::auth_token(request, "Token") != Some(config.api_key.as_str()) {
            legacy(401, ERROR_401)
        } else if request.method == "POST" && request.path == "/v1/listen" {
            serve_main(&mut faults, &KIT, || {
                listen(request, config.limit(DEFAULT_LIMIT))
            })
        } else {
            legacy(
                404,
                r#"{"err_code":"NOT_FOUND","err_msg":"Not found.","request_id":""}"#,
            )
        };
        stamp(reply, &new_id())
    })
}

/// Puts one request id into the `dg-request-id` header and every `request_id` in the body.
fn stamp(reply: Reply, id: &str) -> Reply {
    let reply = match reply {
        Reply::Full {
            status,
            headers,
            body,
            delay,
        } => {
            let body = match serde_json::from_slice::<Value>(&body) {
                Ok(mut value) => {
                    if value["request_id"].is_string() {
                        value["request_id"] = json!(id);
                    }
                    if value["metadata"]["request_id"].is_string() {
                        value["metadata"]["request_id"] = json!(id);
                    }
                    serde_json::to_vec(&value).expect("json")
                }
                Err(_) => body,
            };
            Reply::Full {
                status,
                headers,
                body,
                delay,
            }
        }
        other => other,
    };
    reply.with_header("dg-request-id", id)
}

fn listen(request: &RecordedRequest, limit: usize) -> Reply {
    let flag = |name: &str| request.query_value(name) == Some("true");
    for (name, value) in &request.query {
        let is_bool = value == "true" || value == "false";
        let language_list = name == "detect_language"
            && !value.is_empty()
            && value.chars().all(|c| c.is_ascii_alphabetic() || c == '-');
        if BOOLEANS.contains(&name.as_str()) && !is_bool
            || name == "detect_language" && !is_bool && !language_list
        {
            return bad_request(&format!(
                "Invalid query string: `{name}` must be `true` or `false`, got `{value}`."
            ));
        }
    }
    if let Some(model) = request.query_value("model") {
        if !MODEL_FAMILIES
            .iter()
            .any(|f| model == *f || model.starts_with(&format!("{f}-")))
        {
            return legacy(403, ERROR_403);
        }
    }
    if request.body.len() > limit {
        return legacy(413, fixture_for(413));
    }
    let content_type = request
        .header("content-type")
        .unwrap_or("")
        .to_ascii_lowercase();
    let duration = if content_type.starts_with("application/json") {
        let parsed = serde_json::from_slice::<Value>(&request.body);
        let url = parsed
            .as_ref()
            .ok()
            .and_then(|v| v.get("url"))
            .and_then(Value::as_str)
            .map(String::from);
        match (url, parsed) {
            (Some(url), _) if url.starts_with("http://") || url.starts_with("https://") => None,
            (Some(_), _) => {
                return Reply::json(
                    400,
                    &json!({"err_code": "REMOTE_CONTENT_ERROR", "err_msg": "Could not determine if URL for media download is publicly routable.", "request_id": ""}),
                );
            }
            (None, parsed) => {
                let details = match parsed {
                    Err(e) => format!("Json deserialize error: {e}"),
                    Ok(_) => "Json deserialize error: missing field `url`".to_string(),
                };
                let body = json!({"category": "INVALID_JSON", "message": "Invalid JSON submitted.", "details": details, "request_id": ""});
                return Reply::json(400, &body);
            }
        }
    } else if audio::sniff(&request.body).is_some() {
        audio::duration(&request.body)
    } else {
        return legacy(400, ERROR_400_AUDIO);
    };
    let mut body = fixture(LISTEN_OK);
    if let Some(seconds) = duration {
        body["metadata"]["duration"] = json!(seconds);
    }
    let smart = flag("smart_format");
    shape(
        &mut body,
        flag("diarize"),
        flag("punctuate") || smart,
        flag("paragraphs") || smart,
    );
    if !flag("utterances") {
        body["results"]
            .as_object_mut()
            .expect("results")
            .remove("utterances");
    }
    if request
        .query_value("detect_language")
        .is_some_and(|v| v != "false")
    {
        let channel = &mut body["results"]["channels"][0];
        channel["detected_language"] = json!("en");
        channel["language_confidence"] = json!(0.99);
    }
    Reply::json(200, &body)
}

/// Removes what the query did not ask for from every word list and transcript.
fn shape(body: &mut Value, diarize: bool, punctuate: bool, paragraphs: bool) {
    let strip_words = |words: &mut Value| {
        let mut plain = Vec::new();
        for word in words.as_array_mut().into_iter().flatten() {
            let word = word.as_object_mut().expect("word");
            if !diarize {
                word.remove("speaker");
                word.remove("speaker_confidence");
            }
            if !punctuate {
                word.remove("punctuated_word");
            }
            plain.push(word["word"].as_str().unwrap_or("").to_string());
        }
        plain.join(" ")
    };
    let alternative = &mut body["results"]["channels"][0]["alternatives"][0];
    let plain = strip_words(&mut alternative["words"]);
    let alternative = alternative.as_object_mut().expect("alternative");
    if !punctuate {
        alternative.insert("transcript".into(), json!(plain));
    }
    if !paragraphs {
        alternative.remove("paragraphs");
    } else if !diarize {
        let block = alternative.get_mut("paragraphs").expect("paragraphs");
        let text = block["transcript"]
            .as_str()
            .unwrap_or("")
            .replace("Speaker 0: ", "");
        block["transcript"] = json!(text);
        for paragraph in block["paragraphs"].as_array_mut().into_iter().flatten() {
            paragraph
                .as_object_mut()
                .expect("paragraph")
                .remove("speaker");
        }
    }
    for utterance in body["results"]["utterances"]
        .as_array_mut()
        .into_iter()
        .flatten()
    {
        let plain = strip_words(&mut utterance["words"]);
        if !punctuate {
            utterance["transcript"] = json!(plain);
        }
    }
}
