//! `/openapi.json` and `/docs` over HTTP on 127.0.0.1: the document is OpenAPI 3.1, lists
//! exactly the operations the server serves, documents each one's refusals with the error
//! envelope, and agrees with what the server answers through a job's whole life; the
//! reference page is self-contained HTML that a browser (headless Chromium) renders into
//! every operation and schema. Schemathesis fuzzes the same document against the real
//! binary in vttiro-cli's tests.

use std::collections::{BTreeSet, HashSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use vttiro_core::ErrorCode;
use vttiro_jobs::JobState;
use vttiro_server::*;

mod common;
use common::*;

/// Every operation the router serves. Routes are registered only through
/// `utoipa_axum::routes!`, which documents them, so this list is the check that nothing is
/// added or dropped without the document noticing.
const SERVED: [(&str, &str); 22] = [
    ("get", "/healthz"),
    ("get", "/readyz"),
    ("get", "/metrics"),
    ("get", "/openapi.json"),
    ("get", "/docs"),
    ("post", "/v1/jobs"),
    ("get", "/v1/jobs"),
    ("get", "/v1/jobs/{id}"),
    ("delete", "/v1/jobs/{id}"),
    ("post", "/v1/jobs/{id}/cancel"),
    ("get", "/v1/jobs/{id}/result"),
    ("get", "/v1/jobs/{id}/events"),
    ("post", "/v1/audio/transcriptions"),
    ("get", "/v1/models"),
    ("get", "/v1/models/{id}"),
    ("post", "/v1/keys"),
    ("get", "/v1/keys"),
    ("delete", "/v1/keys/{id}"),
    ("get", "/v1/audit"),
    ("get", "/v1/audit/verify"),
    ("put", "/v1/tenants/{tenant}/policy"),
    ("get", "/v1/tenants/{tenant}/export"),
];

/// Operations anyone may call; every other one needs a bearer credential.
const PUBLIC: [&str; 4] = ["/healthz", "/readyz", "/openapi.json", "/docs"];

const METHODS: [&str; 8] = [
    "get", "put", "post", "patch", "delete", "head", "options", "trace",
];

/// Writes each format as a line of text, and the JSON format as a transcript the
/// OpenAI-compatible endpoint can read.
struct EchoRunner;

impl JobRunner for EchoRunner {
    fn run(
        &self,
        request: &RunRequest<'_>,
        context: &mut dyn RunContext,
    ) -> Result<RunOutput, RunFailure> {
        context.progress("transcribe", 0.5);
        let files = request
            .formats
            .iter()
            .map(|format| {
                let bytes = match format.as_str() {
                    "json" => json!({
                        "language": "en",
                        "language_probability": 1.0,
                        "duration_ms": 1000,
                        "model": "echo-small",
                        "segments": [{
                            "id": 0, "start_ms": 0, "end_ms": 900, "text": " Hello.",
                            "words": [{"text": " Hello.", "start_ms": 0, "end_ms": 900, "probability": 1.0}],
                            "avg_logprob": -0.1, "no_speech_prob": 0.0,
                            "compression_ratio": 1.0, "temperature": 0.0,
                        }],
                    })
                    .to_string(),
                    "vtt" => "WEBVTT\n\n00:00:00.000 --> 00:00:00.900\nHello.\n".to_string(),
                    other => format!("{other} result\n"),
                };
                (format.clone(), bytes.into_bytes())
            })
            .collect();
        Ok(RunOutput {
            files,
            summary: json!({ "model": "echo-small" }),
        })
    }
}

fn start() -> Service {
    Service::start(ServerConfig::default(), 1, Arc::new(EchoRunner), None)
}

fn wav() -> Vec<u8> {
    common::wav(1)
}

fn document(service: &Service) -> Value {
    let reply = get(&service.url("/openapi.json"));
    assert_eq!(reply.status, 200);
    assert_eq!(reply.media_type(), Some("application/json"));
    serde_json::from_slice(&reply.body).expect("/openapi.json is JSON")
}

/// `(method, path, operation)` for every operation in the document.
fn operations(doc: &Value) -> Vec<(String, String, Value)> {
    let mut out = Vec::new();
    for (path, item) in doc["paths"].as_object().expect("paths") {
        for method in METHODS {
            if let Some(operation) = item.get(method) {
                out.push((method.to_string(), path.clone(), operation.clone()));
            }
        }
    }
    out
}

fn resolve<'a>(doc: &'a Value, schema: &'a Value) -> &'a Value {
    match schema["$ref"].as_str() {
        Some(reference) => doc
            .pointer(reference.trim_start_matches('#'))
            .unwrap_or_else(|| panic!("{reference} does not resolve")),
        None => schema,
    }
}

fn enum_of(doc: &Value, name: &str) -> BTreeSet<String> {
    doc["components"]["schemas"][name]["enum"]
        .as_array()
        .unwrap_or_else(|| panic!("{name} is not an enum"))
        .iter()
        .map(|v| v.as_str().unwrap().to_string())
        .collect()
}

fn collect_refs(value: &Value, out: &mut Vec<String>) {
    match value {
        Value::Object(map) => {
            if let Some(Value::String(reference)) = map.get("$ref") {
                out.push(reference.clone());
            }
            map.values().for_each(|v| collect_refs(v, out));
        }
        Value::Array(items) => items.iter().for_each(|v| collect_refs(v, out)),
        _ => {}
    }
}

#[test]
fn the_document_is_openapi_3_1_and_lists_every_operation_with_its_refusals() {
    let service = start();
    let doc = document(&service);
    assert_eq!(doc, openapi(), "the served document is the library's");

    assert!(
        doc["openapi"].as_str().unwrap().starts_with("3.1."),
        "{}",
        doc["openapi"]
    );
    assert_eq!(doc["info"]["title"], "vttiro");
    assert_eq!(doc["info"]["version"], env!("CARGO_PKG_VERSION"));
    assert!(
        doc["servers"]
            .as_array()
            .unwrap()
            .iter()
            .all(|s| s["url"].as_str().unwrap().starts_with('/')),
        "servers must be relative: {}",
        doc["servers"]
    );

    let documented: BTreeSet<(String, String)> = operations(&doc)
        .into_iter()
        .map(|(method, path, _)| (method, path))
        .collect();
    let served: BTreeSet<(String, String)> = SERVED
        .iter()
        .map(|(m, p)| (m.to_string(), p.to_string()))
        .collect();
    assert_eq!(documented, served);

    let mut ids = HashSet::new();
    for (method, path, operation) in operations(&doc) {
        let name = format!("{} {path}", method.to_uppercase());
        let id = operation["operationId"].as_str().unwrap_or_default();
        assert!(!id.is_empty(), "{name} has no operationId");
        assert!(ids.insert(id.to_string()), "operationId {id} is used twice");
        assert!(
            operation["tags"].as_array().is_some_and(|t| !t.is_empty()),
            "{name} has no tag"
        );
        assert!(
            operation["summary"].as_str().is_some_and(|s| !s.is_empty()),
            "{name} has no summary"
        );
        let responses = operation["responses"].as_object().unwrap();
        assert!(
            responses.keys().any(|s| s.starts_with('2')),
            "{name} documents no success"
        );
        for (status, response) in responses {
            assert!(
                response["headers"]["X-Request-Id"]["required"] == true,
                "{name} {status} does not promise X-Request-Id"
            );
            if status.starts_with('4') || status.starts_with('5') {
                assert_eq!(
                    response["content"]["application/json"]["schema"]["$ref"],
                    "#/components/schemas/ErrorEnvelope",
                    "{name} {status} is not the error envelope"
                );
                assert!(
                    response["content"].as_object().unwrap().len() == 1,
                    "{name} {status} has other bodies too"
                );
            }
        }
        // Path parameters can fail to decode (400), or be empty so no route matches (404).
        if path.contains('{') {
            for status in ["400", "404"] {
                assert!(responses.contains_key(status), "{name} omits {status}");
            }
        }
        // The guard's refusals are on every operation it guards, and only there.
        if PUBLIC.contains(&path.as_str()) {
            assert_eq!(operation["security"], serde_json::json!([]), "{name}");
            assert!(!responses.contains_key("401"), "{name} is public");
        } else {
            assert_eq!(
                operation["security"],
                serde_json::json!([{"bearer": []}]),
                "{name}"
            );
            for status in ["401", "403"] {
                assert!(responses.contains_key(status), "{name} omits {status}");
            }
            assert_eq!(
                responses.contains_key("429"),
                path != "/metrics",
                "{name}: everything but /metrics is rate-limited"
            );
        }
        // Whatever waits on the queue, the store or a blocking task can fail inside.
        // /metrics leaves out the queue gauges rather than fail.
        if !["/healthz", "/metrics", "/openapi.json", "/docs"].contains(&path.as_str()) {
            assert!(responses.contains_key("500"), "{name} omits 500");
        }
    }
    // What the handlers can refuse with beyond the common cases.
    let must = [
        (
            "post",
            "/v1/jobs",
            &["400", "409", "413", "415", "422", "429", "503"][..],
        ),
        ("get", "/v1/jobs", &["400", "503"][..]),
        ("post", "/v1/jobs/{id}/cancel", &["409", "503"][..]),
        ("get", "/v1/jobs/{id}/result", &["400", "409", "503"][..]),
        ("get", "/readyz", &["503"][..]),
        (
            "post",
            "/v1/audio/transcriptions",
            &["400", "409", "413", "415", "422", "429", "503", "504"][..],
        ),
    ];
    for (method, path, statuses) in must {
        let responses = &doc["paths"][path][method]["responses"];
        for status in statuses {
            assert!(
                responses.get(*status).is_some(),
                "{method} {path} omits {status}"
            );
        }
    }
    for path in ["/v1/jobs", "/v1/audio/transcriptions"] {
        assert_eq!(
            doc["paths"][path]["post"]["responses"]["429"]["headers"]["Retry-After"]["schema"]
                ["type"],
            "integer",
            "{path}: 429 without Retry-After"
        );
    }

    // The enumerations come from the tables they name.
    let codes: BTreeSet<String> = ErrorCode::ALL
        .iter()
        .map(|c| c.as_str().to_string())
        .collect();
    assert_eq!(enum_of(&doc, "ErrorCode"), codes);
    let states: BTreeSet<String> = JobState::ALL
        .iter()
        .map(|s| s.as_str().to_string())
        .collect();
    assert_eq!(enum_of(&doc, "JobState"), states);
    let formats: BTreeSet<String> = FORMATS.iter().map(|(f, _)| f.to_string()).collect();
    assert_eq!(enum_of(&doc, "ResultFormat"), formats);
    let envelope = &doc["components"]["schemas"]["ErrorBody"];
    assert_eq!(
        envelope["properties"]["code"]["$ref"],
        "#/components/schemas/ErrorCode"
    );
    assert_eq!(
        envelope["required"],
        json!(["code", "message", "request_id"])
    );

    // Request bodies and parameters the clients need to know about.
    let submit = &doc["paths"]["/v1/jobs"]["post"];
    let upload = resolve(
        &doc,
        &submit["requestBody"]["content"]["multipart/form-data"]["schema"],
    );
    assert_eq!(upload["properties"]["file"]["format"], "binary");
    let by_url = resolve(
        &doc,
        &submit["requestBody"]["content"]["application/json"]["schema"],
    );
    assert_eq!(by_url["required"], json!(["url"]));
    let parameter = |path: &str, method: &str, name: &str| {
        doc["paths"][path][method]["parameters"]
            .as_array()
            .unwrap()
            .iter()
            .find(|p| p["name"] == name)
            .unwrap_or_else(|| panic!("{method} {path} has no parameter {name}"))
            .clone()
    };
    assert_eq!(
        parameter("/v1/jobs", "post", "Idempotency-Key")["in"],
        "header"
    );
    assert_eq!(
        parameter("/v1/jobs/{id}/events", "get", "Last-Event-ID")["in"],
        "header"
    );
    for name in ["state", "cursor", "limit"] {
        assert_eq!(parameter("/v1/jobs", "get", name)["in"], "query");
    }
    assert_eq!(
        parameter("/v1/jobs/{id}/result", "get", "format")["in"],
        "query"
    );
    let result = &doc["paths"]["/v1/jobs/{id}/result"]["get"]["responses"]["200"]["content"];
    for media_type in [
        "text/vtt",
        "application/x-subrip",
        "text/plain",
        "application/json",
    ] {
        assert!(
            result.get(media_type).is_some(),
            "results omit {media_type}"
        );
    }
    let events = &doc["paths"]["/v1/jobs/{id}/events"]["get"]["responses"]["200"]["content"];
    assert!(events.get("text/event-stream").is_some());
    let transcription = &doc["paths"]["/v1/audio/transcriptions"]["post"];
    let form = resolve(
        &doc,
        &transcription["requestBody"]["content"]["multipart/form-data"]["schema"],
    );
    assert_eq!(form["required"], json!(["file"]));

    // The webhook the server sends, signed by the Standard Webhooks scheme.
    let hook = &doc["webhooks"]["jobFinished"]["post"];
    let headers: BTreeSet<&str> = hook["parameters"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["name"].as_str().unwrap())
        .collect();
    assert_eq!(
        headers,
        BTreeSet::from(["webhook-id", "webhook-signature", "webhook-timestamp"])
    );
    assert_eq!(
        enum_of(&doc, "WebhookEventType"),
        BTreeSet::from(["job.cancelled", "job.failed", "job.succeeded"].map(String::from))
    );

    let mut refs = Vec::new();
    collect_refs(&doc, &mut refs);
    for reference in refs {
        resolve(&doc, &json!({ "$ref": reference }));
    }
}

/// Checks a reply against what the document says `method path` answers.
fn conforms(doc: &Value, method: &str, path: &str, reply: &Reply) {
    let name = format!("{} {path}", method.to_uppercase());
    let operation = &doc["paths"][path][method];
    assert!(operation.is_object(), "{name} is not documented");
    let status = reply.status.to_string();
    let response = &operation["responses"][&status];
    assert!(
        response.is_object(),
        "{name} answered {status}, which it does not document: {}",
        reply.text()
    );
    assert!(
        reply.header("x-request-id").is_some_and(|v| !v.is_empty()),
        "{name} {status} without X-Request-Id"
    );
    if let Some(content) = response["content"].as_object() {
        let media_type = reply.media_type().unwrap_or_default();
        assert!(
            content.contains_key(media_type),
            "{name} {status} answered {media_type}, not one of {:?}",
            content.keys().collect::<Vec<_>>()
        );
        if media_type == "application/json" {
            let body = reply.json();
            let schema = resolve(doc, &content[media_type]["schema"]);
            for key in schema["required"].as_array().into_iter().flatten() {
                let key = key.as_str().unwrap();
                assert!(
                    body.get(key).is_some(),
                    "{name} {status} lacks {key}: {body}"
                );
            }
        }
    } else {
        assert!(
            reply.body.is_empty(),
            "{name} {status} has an undocumented body"
        );
    }
}

#[test]
fn every_answer_through_a_jobs_life_is_one_the_document_gives() {
    let service = start();
    let doc = document(&service);
    let url = |path: &str| service.url(path);
    let mut seen = BTreeSet::new();
    let mut check = |method: &str, path: &str, reply: Reply| -> Reply {
        conforms(&doc, method, path, &reply);
        seen.insert((method.to_string(), path.to_string()));
        reply
    };

    check("get", "/healthz", get(&url("/healthz")));
    check("get", "/readyz", get(&url("/readyz")));
    check("get", "/metrics", get(&url("/metrics")));
    check("get", "/openapi.json", get(&url("/openapi.json")));
    check("get", "/docs", get(&url("/docs")));
    check("get", "/v1/models", get(&url("/v1/models")));
    check("get", "/v1/models/{id}", get(&url("/v1/models/echo-small")));
    check(
        "get",
        "/v1/models/{id}",
        get(&url("/v1/models/no-such-model")),
    );
    check("get", "/v1/models/{id}", get(&url("/v1/models/")));

    let (headers, body) = multipart(
        &[("options", r#"{"formats": ["vtt", "srt", "json", "txt"]}"#)],
        &wav(),
    );
    let mut with_key = headers.clone();
    with_key.push(("idempotency-key", "openapi-test-1".into()));
    let created = check(
        "post",
        "/v1/jobs",
        send("POST", &url("/v1/jobs"), &with_key, body.clone()),
    );
    assert_eq!(created.status, 202);
    let id = created.json()["id"].as_str().unwrap().to_string();
    let again = check(
        "post",
        "/v1/jobs",
        send("POST", &url("/v1/jobs"), &with_key, body),
    );
    assert_eq!(again.status, 200);
    let (_, other) = multipart(&[("language", "de")], &wav());
    let conflict = check(
        "post",
        "/v1/jobs",
        send("POST", &url("/v1/jobs"), &with_key, other),
    );
    assert_eq!(conflict.status, 409);
    let (_, not_media) = multipart(&[], b"plain text, not audio");
    let refused = check(
        "post",
        "/v1/jobs",
        send("POST", &url("/v1/jobs"), &headers, not_media),
    );
    assert_eq!(refused.status, 415);
    let json_type = vec![("content-type", "application/json".to_string())];
    let bad_url = check(
        "post",
        "/v1/jobs",
        send(
            "POST",
            &url("/v1/jobs"),
            &json_type,
            br#"{"url": "ftp://example.com/a.mp3"}"#.to_vec(),
        ),
    );
    assert_eq!(bad_url.status, 422);
    // Found by schemathesis: a URL no parser can read was queued, to fail when fetched.
    let unreadable = check(
        "post",
        "/v1/jobs",
        send(
            "POST",
            &url("/v1/jobs"),
            &json_type,
            br#"{"url": "http://[example.com/a.mp3"}"#.to_vec(),
        ),
    );
    assert_eq!(unreadable.status, 422, "{}", unreadable.text());
    let unknown = check(
        "post",
        "/v1/jobs",
        send(
            "POST",
            &url("/v1/jobs"),
            &json_type,
            br#"{"colour": "blue"}"#.to_vec(),
        ),
    );
    assert_eq!(unknown.status, 400);

    let started = Instant::now();
    loop {
        let job = check("get", "/v1/jobs/{id}", get(&url(&format!("/v1/jobs/{id}")))).json();
        if job["state"] == "succeeded" {
            break;
        }
        assert!(started.elapsed() < Duration::from_secs(15), "{job}");
        std::thread::sleep(Duration::from_millis(50));
    }
    check(
        "get",
        "/v1/jobs",
        get(&url("/v1/jobs?state=succeeded&limit=1")),
    );
    check("get", "/v1/jobs", get(&url("/v1/jobs?limit=0")));
    check("get", "/v1/jobs", get(&url("/v1/jobs?limit=many")));
    check("get", "/v1/jobs", get(&url("/v1/jobs?state=lost")));
    for format in ["vtt", "srt", "json", "txt", "rttm", "docx"] {
        check(
            "get",
            "/v1/jobs/{id}/result",
            get(&url(&format!("/v1/jobs/{id}/result?format={format}"))),
        );
    }
    let events = check(
        "get",
        "/v1/jobs/{id}/events",
        get(&url(&format!("/v1/jobs/{id}/events"))),
    );
    assert!(
        events.text().contains("event: succeeded"),
        "{}",
        events.text()
    );
    let resumed = check(
        "get",
        "/v1/jobs/{id}/events",
        send(
            "GET",
            &url(&format!("/v1/jobs/{id}/events")),
            &[("last-event-id", "1".into())],
            Vec::new(),
        ),
    );
    assert!(!resumed.text().contains("id: 1\n"), "{}", resumed.text());
    let finished = check(
        "post",
        "/v1/jobs/{id}/cancel",
        send(
            "POST",
            &url(&format!("/v1/jobs/{id}/cancel")),
            &[],
            Vec::new(),
        ),
    );
    assert_eq!(finished.status, 409);
    let deleted = check(
        "delete",
        "/v1/jobs/{id}",
        send("DELETE", &url(&format!("/v1/jobs/{id}")), &[], Vec::new()),
    );
    assert_eq!(deleted.status, 204);
    for (method, path) in [
        ("get", "/v1/jobs/{id}"),
        ("delete", "/v1/jobs/{id}"),
        ("post", "/v1/jobs/{id}/cancel"),
        ("get", "/v1/jobs/{id}/result"),
        ("get", "/v1/jobs/{id}/events"),
    ] {
        let gone = send(
            &method.to_uppercase(),
            &url(&path.replace("{id}", &id)),
            &[],
            Vec::new(),
        );
        assert_eq!(check(method, path, gone).status, 404);
        // An id that is not UTF-8 once decoded, and an empty one.
        check(
            method,
            path,
            send(
                &method.to_uppercase(),
                &url(&path.replace("{id}", "%FF")),
                &[],
                Vec::new(),
            ),
        );
        check(
            method,
            path,
            send(
                &method.to_uppercase(),
                &url(&path.replace("{id}", "")),
                &[],
                Vec::new(),
            ),
        );
    }

    for (fields, expected) in [
        (vec![], 200),
        (
            vec![
                ("response_format", "verbose_json"),
                ("timestamp_granularities[]", "word"),
            ],
            200,
        ),
        (
            vec![
                ("response_format", "verbose_json"),
                ("timestamp_granularities[]", "segment"),
            ],
            200,
        ),
        (vec![("response_format", "text")], 200),
        (vec![("response_format", "srt")], 200),
        (vec![("response_format", "vtt")], 200),
        (vec![("model", "whisper-2")], 400),
        (vec![("temperature", "7")], 400),
    ] {
        let (headers, body) = multipart(&fields, &wav());
        let reply = check(
            "post",
            "/v1/audio/transcriptions",
            send("POST", &url("/v1/audio/transcriptions"), &headers, body),
        );
        assert_eq!(reply.status, expected, "{fields:?}: {}", reply.text());
    }
    let (headers, body) = multipart(&[], b"not audio at all");
    let refused = check(
        "post",
        "/v1/audio/transcriptions",
        send("POST", &url("/v1/audio/transcriptions"), &headers, body),
    );
    assert_eq!(refused.status, 415);

    let every: BTreeSet<(String, String)> = SERVED
        .iter()
        .filter(|(_, p)| !is_admin(p))
        .map(|(m, p)| (m.to_string(), p.to_string()))
        .collect();
    assert_eq!(seen, every, "the walk missed an operation");
}

fn is_admin(path: &str) -> bool {
    ["/v1/keys", "/v1/audit", "/v1/tenants"]
        .iter()
        .any(|prefix| path.starts_with(prefix))
}

#[test]
fn every_administration_and_guard_answer_is_one_the_document_gives() {
    let config = ServerConfig {
        requests_per_minute: Some(1000),
        ..ServerConfig::default()
    };
    let service = Service::start_secured(config, 0, Arc::new(EchoRunner), None);
    let doc = document(&service);
    let url = |path: &str| service.url(path);
    let bearer = |token: String| ("authorization", format!("Bearer {token}"));
    let admin = bearer(service.key("ops", vttiro_auth::Role::Admin));
    let reader = bearer(service.key("acme", vttiro_auth::Role::Reader));
    let throttled = bearer(service.key_with("acme", vttiro_auth::Role::Reader, |k| {
        k.requests_per_minute = Some(1)
    }));
    let mut seen = BTreeSet::new();
    let mut check = |method: &str,
                     path: &str,
                     concrete: &str,
                     headers: &[(&str, String)],
                     body: Value,
                     expected: u16| {
        let mut headers = headers.to_vec();
        headers.push(("content-type", "application/json".into()));
        let reply = send(
            &method.to_uppercase(),
            &url(concrete),
            &headers,
            if body.is_null() {
                Vec::new()
            } else {
                body.to_string().into_bytes()
            },
        );
        conforms(&doc, method, path, &reply);
        assert_eq!(
            reply.status,
            expected,
            "{method} {concrete}: {}",
            reply.text()
        );
        seen.insert((method.to_string(), path.to_string()));
        reply
    };
    let none: &[(&str, String)] = &[];
    check("get", "/v1/jobs", "/v1/jobs", none, Value::Null, 401);
    check(
        "post",
        "/v1/keys",
        "/v1/keys",
        std::slice::from_ref(&reader),
        json!({"name": "x", "tenant": "acme", "role": "admin"}),
        403,
    );
    let created = check(
        "post",
        "/v1/keys",
        "/v1/keys",
        std::slice::from_ref(&admin),
        json!({"name": "ci", "tenant": "acme", "role": "submitter", "expires_in_days": 30}),
        201,
    );
    let created: Value = serde_json::from_slice(&created.body).unwrap();
    let id = created["key"]["id"].as_str().unwrap().to_string();
    assert!(created["token"].as_str().unwrap().starts_with("vt_"));
    check(
        "post",
        "/v1/keys",
        "/v1/keys",
        std::slice::from_ref(&admin),
        json!({"name": "x", "tenant": "acme", "role": "owner"}),
        400,
    );
    let listed = check(
        "get",
        "/v1/keys",
        "/v1/keys?tenant=acme",
        std::slice::from_ref(&admin),
        Value::Null,
        200,
    );
    assert!(!listed.text().contains("vt_"), "a list never shows a token");
    check(
        "delete",
        "/v1/keys/{id}",
        &format!("/v1/keys/{id}"),
        std::slice::from_ref(&admin),
        Value::Null,
        200,
    );
    check(
        "delete",
        "/v1/keys/{id}",
        "/v1/keys/key_nothere",
        std::slice::from_ref(&admin),
        Value::Null,
        404,
    );
    check(
        "get",
        "/v1/audit",
        "/v1/audit?limit=2",
        std::slice::from_ref(&admin),
        Value::Null,
        200,
    );
    check(
        "get",
        "/v1/audit",
        "/v1/audit?limit=0",
        std::slice::from_ref(&admin),
        Value::Null,
        400,
    );
    let lines = check(
        "get",
        "/v1/audit",
        "/v1/audit",
        &[admin.clone(), ("accept", "application/x-ndjson".into())],
        Value::Null,
        200,
    );
    assert!(lines.text().lines().count() >= 5, "{}", lines.text());
    let verdict = check(
        "get",
        "/v1/audit/verify",
        "/v1/audit/verify",
        std::slice::from_ref(&admin),
        Value::Null,
        200,
    );
    assert_eq!(
        serde_json::from_slice::<Value>(&verdict.body).unwrap()["intact"],
        true
    );
    check(
        "put",
        "/v1/tenants/{tenant}/policy",
        "/v1/tenants/acme/policy",
        std::slice::from_ref(&admin),
        json!({"media_retention_hours": 24}),
        200,
    );
    check(
        "put",
        "/v1/tenants/{tenant}/policy",
        "/v1/tenants/ACME/policy",
        std::slice::from_ref(&admin),
        json!({}),
        400,
    );
    check(
        "get",
        "/v1/tenants/{tenant}/export",
        "/v1/tenants/acme/export",
        std::slice::from_ref(&reader),
        Value::Null,
        200,
    );
    check(
        "get",
        "/v1/tenants/{tenant}/export",
        "/v1/tenants/ops/export",
        std::slice::from_ref(&reader),
        Value::Null,
        404,
    );
    check(
        "get",
        "/v1/jobs",
        "/v1/jobs",
        std::slice::from_ref(&throttled),
        Value::Null,
        200,
    );
    check(
        "get",
        "/v1/jobs",
        "/v1/jobs",
        std::slice::from_ref(&throttled),
        Value::Null,
        429,
    );

    let every: BTreeSet<(String, String)> = SERVED
        .iter()
        .filter(|(_, p)| is_admin(p))
        .map(|(m, p)| (m.to_string(), p.to_string()))
        .collect();
    seen.retain(|(_, p)| is_admin(p));
    assert_eq!(seen, every, "the walk missed an operation");
}

#[test]
fn the_reference_page_is_self_contained_html_that_reads_the_document() {
    let service = start();
    let page = get(&service.url("/docs"));
    assert_eq!(page.status, 200);
    assert_eq!(page.media_type(), Some("text/html"));
    assert!(page.header("x-request-id").is_some());
    let html = page.text();
    assert!(html.starts_with("<!doctype html>"), "{html}");
    assert!(html.contains("fetch(SPEC)") && html.contains(r#"const SPEC = "openapi.json""#));
    // Offline servers: nothing may come from elsewhere.
    assert!(!html.contains("://"), "the page names another origin");
    assert!(!html.contains(" src="), "the page loads a resource");
}

#[test]
fn headless_chromium_renders_every_operation_and_schema_on_the_reference_page() {
    let service = start();
    let doc = document(&service);
    // Virtual time runs ahead while the page waits for its fetch: a bound, not a delay.
    let output = vttiro_fixtures::chromium_dump_dom(&service.url("/docs"), 10_000, &[]);
    let dom = String::from_utf8_lossy(&output.stdout);
    assert!(
        !dom.contains(r#"<main id="content"><p>Loading"#),
        "the page never rendered:\n{dom}"
    );
    for (_, _, operation) in operations(&doc) {
        let id = operation["operationId"].as_str().unwrap();
        assert!(
            dom.contains(&format!("id=\"op-{id}\"")),
            "{id} is not on the page; stderr:\n{}\n{dom}",
            String::from_utf8_lossy(&output.stderr)
        );
    }
    for name in doc["components"]["schemas"].as_object().unwrap().keys() {
        assert!(
            dom.contains(&format!("id=\"schema-{name}\"")),
            "schema {name} is not on the page"
        );
    }
    assert!(
        dom.contains("id=\"op-jobFinished\""),
        "the webhook is not on the page"
    );
    assert!(dom.contains(&format!("vttiro {}", env!("CARGO_PKG_VERSION"))));
}
