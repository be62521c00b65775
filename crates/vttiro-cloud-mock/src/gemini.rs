//! Gemini API v1beta: generateContent and the resumable Files API (spec:
//! /tmp/cloudspec/gemini.md).

use crate::audio::{self, Kind};
use crate::server::Handler;
use crate::{fixture, serve_main, FaultKit, GeminiReply, MockConfig, RecordedRequest, Reply};
use base64::Engine;
use serde_json::{json, Value};
use std::collections::HashMap;

const ERROR_400_KEY: &str = include_str!("../fixtures/gemini/error_400_key.json");
const ERROR_429: &str = include_str!("../fixtures/gemini/error_429.json");
const ERROR_503: &str = include_str!("../fixtures/gemini/error_503.json");
const FILE_ACTIVE: &str = include_str!("../fixtures/gemini/file_active.json");
const START_HEADERS: &str = include_str!("../fixtures/gemini/file_upload_start_headers.txt");
const OK: &str = include_str!("../fixtures/gemini/generate_content_ok.json");
const FENCED: &str = include_str!("../fixtures/gemini/generate_content_fenced.json");
const TRUNCATED: &str = include_str!("../fixtures/gemini/generate_content_truncated.json");

const INLINE_LIMIT: usize = 20_971_520;
const FILE_LIMIT: u64 = 2 * 1024 * 1024 * 1024;

const KIT: FaultKit = FaultKit {
    status: status_reply,
    quota: quota_reply,
    malformed: b"{\"candidates\": [{\"content\": {\"parts\": [{\"text\": \"{\\\"segm",
};

fn error(code: u16, status: &str, message: &str) -> Reply {
    Reply::json(
        code,
        &json!({"error": {"code": code, "message": message, "status": status}}),
    )
}

fn invalid(message: &str) -> Reply {
    error(400, "INVALID_ARGUMENT", message)
}

fn unknown_field(name: &str, at: Option<&str>) -> Reply {
    let location = at.map(|a| format!(" at '{a}'")).unwrap_or_default();
    let message = format!(
        "Invalid JSON payload received. Unknown name \"{name}\"{location}: Cannot find field."
    );
    let violation = json!({"field": at.unwrap_or(""), "description": message});
    let details = json!([{"@type": "type.googleapis.com/google.rpc.BadRequest", "fieldViolations": [violation]}]);
    Reply::json(
        400,
        &json!({"error": {"code": 400, "message": message, "status": "INVALID_ARGUMENT", "details": details}}),
    )
}

fn status_reply(status: u16) -> Reply {
    let (name, message) = match status {
        429 => return Reply::raw_json(429, ERROR_429.as_bytes()),
        503 => return Reply::raw_json(503, ERROR_503.as_bytes()),
        400 => ("INVALID_ARGUMENT", "Request contains an invalid argument."),
        401 => ("UNAUTHENTICATED", "Request had invalid authentication credentials. Expected OAuth 2 access token, login cookie or other valid authentication credential."),
        403 => ("PERMISSION_DENIED", "The caller does not have permission"),
        404 => ("NOT_FOUND", "Requested entity was not found."),
        413 => ("INVALID_ARGUMENT", "Request payload size exceeds the limit: 20971520 bytes."),
        500 => ("INTERNAL", "An internal error has occurred. Please retry or report in https://developers.generativeai.google/guide/troubleshooting"),
        504 => ("DEADLINE_EXCEEDED", "Deadline expired before operation could complete."),
        s if s >= 500 => ("UNAVAILABLE", "The service is currently unavailable."),
        _ => ("FAILED_PRECONDITION", "Precondition check failed."),
    };
    error(status, name, message)
}

fn quota_reply() -> Reply {
    let mut body = fixture(ERROR_429);
    let violation = &mut body["error"]["details"][0]["violations"][0];
    violation["quotaId"] = json!("GenerateRequestsPerDayPerProjectPerModel-FreeTier");
    violation["quotaMetric"] =
        json!("generativelanguage.googleapis.com/generate_content_free_tier_requests");
    violation["quotaValue"] = json!("250");
    Reply::json(429, &body)
}

struct Upload {
    mime: String,
    display_name: Option<String>,
    announced: u64,
    received: Vec<u8>,
}

struct State {
    config: MockConfig,
    faults: std::collections::VecDeque<crate::Fault>,
    uploads: HashMap<String, Upload>,
    /// File id -> (File resource, GETs answered so far).
    files: HashMap<String, (Value, usize)>,
    next: usize,
}

pub fn handler(config: MockConfig) -> Handler {
    let faults = config.faults.iter().cloned().collect();
    let mut state = State {
        config,
        faults,
        uploads: HashMap::new(),
        files: HashMap::new(),
        next: 0,
    };
    Box::new(move |request, base| state.handle(request, base))
}

impl State {
    fn handle(&mut self, request: &RecordedRequest, base: &str) -> Reply {
        let key = request
            .header("x-goog-api-key")
            .or_else(|| request.query_value("key"));
        match key {
            Some(k) if k == self.config.api_key => {}
            Some(_) => return Reply::raw_json(400, ERROR_400_KEY.as_bytes()),
            None => return error(403, "PERMISSION_DENIED", "Method doesn't allow unregistered callers (callers without established identity). Please use API Key or other form of API consumer identity to call this API."),
        }
        let path = request.path.as_str();
        let file_id = path.strip_prefix("/v1beta/files/");
        match (request.method.as_str(), path) {
            ("POST", "/upload/v1beta/files") => match request.query_value("upload_id") {
                Some(id) => self.upload_chunk(id.to_string(), request),
                None => self.start_upload(request, base),
            },
            ("POST", p) if p.starts_with("/v1beta/models/") && p.ends_with(":generateContent") => {
                let model = &p["/v1beta/models/".len()..p.len() - ":generateContent".len()];
                if !model.starts_with("gemini-") {
                    let message = format!("models/{model} is not found for API version v1beta, or is not supported for generateContent. Call ListModels to see the list of available models and their supported methods.");
                    return error(404, "NOT_FOUND", &message);
                }
                let mut faults = std::mem::take(&mut self.faults);
                let reply = serve_main(&mut faults, &KIT, || self.generate(request));
                self.faults = faults;
                reply
            }
            ("GET", _) if file_id.is_some() => {
                let id = file_id.unwrap_or_default();
                let polls = self.config.gemini_processing_polls;
                match self.files.get_mut(id) {
                    Some((file, gets)) => {
                        *gets += 1;
                        if *gets > polls {
                            file["state"] = json!("ACTIVE");
                        }
                        Reply::json(200, file)
                    }
                    None => no_file(id),
                }
            }
            ("DELETE", _) if file_id.is_some() => {
                match self.files.remove(file_id.unwrap_or_default()) {
                    Some(_) => Reply::json(200, &json!({})),
                    None => no_file(file_id.unwrap_or_default()),
                }
            }
            _ => error(404, "NOT_FOUND", "Requested entity was not found."),
        }
    }

    fn start_upload(&mut self, request: &RecordedRequest, base: &str) -> Reply {
        let header = |name: &str| request.header(name).map(str::trim);
        if !header("x-goog-upload-protocol").is_some_and(|p| p.eq_ignore_ascii_case("resumable")) {
            return invalid(
                "Missing or unsupported X-Goog-Upload-Protocol header; expected 'resumable'.",
            );
        }
        if !header("x-goog-upload-command").is_some_and(|c| c.eq_ignore_ascii_case("start")) {
            return invalid("Missing or invalid X-Goog-Upload-Command header; expected 'start'.");
        }
        let Some(announced) =
            header("x-goog-upload-header-content-length").and_then(|v| v.parse::<u64>().ok())
        else {
            return invalid("Missing or invalid X-Goog-Upload-Header-Content-Length header.");
        };
        if announced > FILE_LIMIT {
            return invalid("File size exceeds the maximum allowed size of 2 GB.");
        }
        let metadata = if request.body.is_empty() {
            json!({})
        } else {
            match request.json() {
                Some(v) => v,
                None => return invalid("Invalid JSON payload received."),
            }
        };
        let file = &metadata["file"];
        let pick = |a: &str, b: &str| {
            file.get(a)
                .or_else(|| file.get(b))
                .and_then(Value::as_str)
                .map(String::from)
        };
        let Some(mime) = header("x-goog-upload-header-content-type")
            .map(String::from)
            .or_else(|| pick("mimeType", "mime_type"))
        else {
            return invalid("Missing X-Goog-Upload-Header-Content-Type header.");
        };
        self.next += 1;
        let id = format!("vttiro-mock-upload-{:04}", self.next);
        let upload = Upload {
            mime,
            display_name: pick("displayName", "display_name"),
            announced,
            received: Vec::new(),
        };
        self.uploads.insert(id.clone(), upload);
        let text = START_HEADERS
            .replace("http://127.0.0.1:{PORT}", base)
            .replace("vttiro-mock-upload-0001", &id);
        let headers = text
            .lines()
            .skip(1)
            .filter_map(|l| l.split_once(':'))
            .filter(|(k, _)| !k.eq_ignore_ascii_case("content-length"))
            .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
            .collect();
        Reply::Full {
            status: 200,
            headers,
            body: Vec::new(),
            delay: std::time::Duration::ZERO,
        }
    }

    fn upload_chunk(&mut self, id: String, request: &RecordedRequest) -> Reply {
        let Some(upload) = self.uploads.get_mut(&id) else {
            return error(404, "NOT_FOUND", "Upload session not found.");
        };
        let command = request
            .header("x-goog-upload-command")
            .unwrap_or("")
            .to_ascii_lowercase();
        let words: Vec<&str> = command.split(',').map(str::trim).collect();
        let finalize = words.contains(&"finalize");
        if !words.iter().all(|w| matches!(*w, "upload" | "finalize")) || command.is_empty() {
            return invalid(
                "Invalid X-Goog-Upload-Command header; expected 'upload' or 'upload, finalize'.",
            );
        }
        let offset = request
            .header("x-goog-upload-offset")
            .and_then(|v| v.trim().parse::<usize>().ok());
        if offset != Some(upload.received.len()) {
            let message = format!(
                "Invalid X-Goog-Upload-Offset {}; expected {}.",
                request
                    .header("x-goog-upload-offset")
                    .unwrap_or("(missing)"),
                upload.received.len()
            );
            return invalid(&message).with_header("x-goog-upload-status", "active");
        }
        upload.received.extend_from_slice(&request.body);
        if !finalize {
            return Reply::json(200, &json!({})).with_header("x-goog-upload-status", "active");
        }
        let upload = self.uploads.remove(&id).expect("upload exists");
        if upload.received.len() as u64 != upload.announced {
            let message = format!("Upload size {} does not match the announced X-Goog-Upload-Header-Content-Length {}.", upload.received.len(), upload.announced);
            return invalid(&message).with_header("x-goog-upload-status", "final");
        }
        let mut file = fixture(FILE_ACTIVE)["file"].take();
        let file_id = format!("vttiro-mock-file-{:04}", self.next);
        file["name"] = json!(format!("files/{file_id}"));
        file["uri"] = json!(format!(
            "https://generativelanguage.googleapis.com/v1beta/files/{file_id}"
        ));
        file["mimeType"] = json!(upload.mime);
        file["sizeBytes"] = json!(upload.received.len().to_string());
        file["displayName"] = upload.display_name.map_or(json!(file_id), |d| json!(d));
        if self.config.gemini_processing_polls > 0 {
            file["state"] = json!("PROCESSING");
        }
        self.files.insert(file_id, (file.clone(), 0));
        Reply::json(200, &json!({"file": file})).with_header("x-goog-upload-status", "final")
    }

    fn generate(&self, request: &RecordedRequest) -> Reply {
        let limit = self.config.limit(INLINE_LIMIT);
        if request.body.len() > limit {
            return invalid(&format!(
                "Request payload size exceeds the limit: {limit} bytes."
            ));
        }
        let Some(body) = request.json() else {
            return invalid("Invalid JSON payload received. Unexpected token.");
        };
        let Some(top) = body.as_object() else {
            return invalid("Invalid JSON payload received. Expected an object.");
        };
        const TOP: [&str; 16] = [
            "contents",
            "model",
            "tools",
            "toolConfig",
            "tool_config",
            "safetySettings",
            "safety_settings",
            "systemInstruction",
            "system_instruction",
            "generationConfig",
            "generation_config",
            "cachedContent",
            "cached_content",
            "labels",
            "serviceTier",
            "service_tier",
        ];
        if let Some(name) = top.keys().find(|k| !TOP.contains(&k.as_str())) {
            return unknown_field(name, None);
        }
        let contents = body["contents"].as_array().cloned().unwrap_or_default();
        if contents.is_empty() {
            return invalid("* GenerateContentRequest.contents: contents is not specified\n");
        }
        for (c, content) in contents.iter().enumerate() {
            let parts = content["parts"].as_array().cloned().unwrap_or_default();
            if parts.is_empty() {
                return invalid(&format!("* GenerateContentRequest.contents[{c}].parts: contents.parts must not be empty.\n"));
            }
            for (p, part) in parts.iter().enumerate() {
                if let Some(rejection) = self.check_part(part, &format!("contents[{c}].parts[{p}]"))
                {
                    return rejection;
                }
            }
        }
        let config = body
            .get("generationConfig")
            .or_else(|| body.get("generation_config"));
        if let Some(schema) =
            config.and_then(|c| c.get("responseSchema").or_else(|| c.get("response_schema")))
        {
            if let Some(rejection) = check_schema(schema, "generation_config.response_schema") {
                return rejection;
            }
        }
        let text = match self.config.gemini_reply {
            GeminiReply::Json => OK,
            GeminiReply::Fenced => FENCED,
            GeminiReply::Truncated => TRUNCATED,
        };
        Reply::raw_json(200, text.as_bytes())
    }

    fn check_part(&self, part: &Value, at: &str) -> Option<Reply> {
        let get = |o: &Value, a: &str, b: &str| o.get(a).or_else(|| o.get(b)).cloned();
        if let Some(inline) = get(part, "inlineData", "inline_data") {
            let mime = get(&inline, "mimeType", "mime_type")
                .and_then(|m| m.as_str().map(str::to_ascii_lowercase))
                .unwrap_or_default();
            let data = get(&inline, "data", "data")
                .and_then(|d| d.as_str().map(String::from))
                .unwrap_or_default();
            let decoded = base64::engine::general_purpose::STANDARD
                .decode(&data)
                .or_else(|_| base64::engine::general_purpose::URL_SAFE.decode(&data));
            let Ok(bytes) = decoded else {
                let shown: String = data.chars().take(32).collect();
                return Some(invalid(&format!("Invalid value at '{at}.inline_data.data' (TYPE_BYTES), Base64 decoding failed for \"{shown}\"")));
            };
            if mime.starts_with("audio/") {
                let expected = match mime.as_str() {
                    "audio/wav" => Kind::Wav,
                    "audio/mp3" => Kind::Mp3,
                    "audio/aiff" => Kind::Aiff,
                    "audio/aac" => Kind::Aac,
                    "audio/ogg" => Kind::Ogg,
                    "audio/flac" => Kind::Flac,
                    _ => return Some(invalid(&format!("Unsupported MIME type: {mime}"))),
                };
                if audio::sniff(&bytes) != Some(expected) {
                    return Some(invalid("Request contains an invalid argument."));
                }
            } else if ![
                "image/",
                "video/",
                "text/",
                "application/pdf",
                "application/json",
            ]
            .iter()
            .any(|p| mime.starts_with(p))
            {
                return Some(invalid(&format!("Unsupported MIME type: {mime}")));
            }
        } else if let Some(file) = get(part, "fileData", "file_data") {
            let uri = get(&file, "fileUri", "file_uri")
                .and_then(|u| u.as_str().map(String::from))
                .unwrap_or_default();
            let id = uri.rsplit_once("/files/").map(|(_, id)| id).unwrap_or(&uri);
            return match self.files.get(id) {
                None => Some(no_file(id)),
                Some((file, _)) if file["state"] != "ACTIVE" => Some(error(
                    400,
                    "FAILED_PRECONDITION",
                    &format!("The File {id} is not in an ACTIVE state and usage is not allowed."),
                )),
                Some(_) => None,
            };
        } else if let Some(name) = part
            .as_object()
            .and_then(|o| o.keys().find(|k| !KNOWN_PART.contains(&k.as_str())))
        {
            return Some(unknown_field(name, Some(at)));
        }
        None
    }
}

const KNOWN_PART: [&str; 16] = [
    "text",
    "thought",
    "thoughtSignature",
    "thought_signature",
    "functionCall",
    "function_call",
    "functionResponse",
    "function_response",
    "executableCode",
    "executable_code",
    "codeExecutionResult",
    "code_execution_result",
    "videoMetadata",
    "video_metadata",
    "partMetadata",
    "mediaResolution",
];

fn no_file(id: &str) -> Reply {
    error(
        403,
        "PERMISSION_DENIED",
        &format!("You do not have permission to access the File {id} or it may not exist."),
    )
}

/// Checks a responseSchema against the OpenAPI-subset `Schema` message.
fn check_schema(schema: &Value, at: &str) -> Option<Reply> {
    const KNOWN: [&str; 26] = [
        "type",
        "format",
        "title",
        "description",
        "nullable",
        "enum",
        "maxItems",
        "minItems",
        "properties",
        "required",
        "minProperties",
        "maxProperties",
        "minLength",
        "maxLength",
        "pattern",
        "example",
        "anyOf",
        "propertyOrdering",
        "default",
        "items",
        "minimum",
        "maximum",
        "max_items",
        "min_items",
        "property_ordering",
        "any_of",
    ];
    let Some(object) = schema.as_object() else {
        return Some(invalid(&format!("Invalid value at '{at}' (type.googleapis.com/google.ai.generativelanguage.v1beta.Schema), {schema}")));
    };
    for (key, value) in object {
        if !KNOWN.contains(&key.as_str()) {
            return Some(unknown_field(key, Some(at)));
        }
        let nested = format!("{at}.{key}");
        let rejection = match key.as_str() {
            "type" => {
                let ok = value.as_str().is_some_and(|t| {
                    [
                        "STRING",
                        "NUMBER",
                        "INTEGER",
                        "BOOLEAN",
                        "ARRAY",
                        "OBJECT",
                        "NULL",
                        "TYPE_UNSPECIFIED",
                    ]
                    .contains(&t.to_ascii_uppercase().as_str())
                });
                (!ok).then(|| invalid(&format!("Invalid value at '{nested}' (type.googleapis.com/google.ai.generativelanguage.v1beta.Type), {value}")))
            }
            "items" => check_schema(value, &nested),
            "properties" => match value.as_object() {
                Some(props) => props
                    .iter()
                    .find_map(|(name, s)| check_schema(s, &format!("{nested}[{name}].value"))),
                None => Some(invalid(&format!(
                    "Invalid value at '{nested}', expected an object."
                ))),
            },
            "anyOf" | "any_of" => match value.as_array() {
                Some(list) => list
                    .iter()
                    .enumerate()
                    .find_map(|(i, s)| check_schema(s, &format!("{nested}[{i}]"))),
                None => Some(invalid(&format!(
                    "Invalid value at '{nested}', expected a list."
                ))),
            },
            "required" | "enum" | "propertyOrdering" | "property_ordering" => {
                let ok = value
                    .as_array()
                    .is_some_and(|l| l.iter().all(Value::is_string));
                (!ok).then(|| {
                    invalid(&format!(
                        "Invalid value at '{nested}' (TYPE_STRING), {value}"
                    ))
                })
            }
            _ => None,
        };
        if rejection.is_some() {
            return rejection;
        }
    }
    None
}
