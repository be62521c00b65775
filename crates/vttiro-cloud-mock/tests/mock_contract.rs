//! Drives each provider stand-in over raw HTTP to pin its documented contract.

use serde_json::{json, Value};
use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};
use vttiro_cloud_mock::{Fault, Mock, MockConfig};

const KEY: &str = "sk-vttiro-mock-key-0000mock";

struct Answer {
    status: u16,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Answer {
    fn json(&self) -> Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&self.body)))
    }
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// One request on its own connection; `None` when the server hangs up without a status line.
fn send(
    mock: &Mock,
    method: &str,
    target: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> Option<Answer> {
    let target = target.replace("{base}", &mock.base_url());
    let url = target
        .strip_prefix(&mock.base_url())
        .unwrap_or(&target)
        .to_string();
    let mut stream = TcpStream::connect(mock.base_url().trim_start_matches("http://")).unwrap();
    let mut head = format!(
        "{method} {url} HTTP/1.1\r\nhost: mock\r\nconnection: close\r\ncontent-length: {}\r\n",
        body.len()
    );
    for (k, v) in headers {
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    stream.write_all(head.as_bytes()).unwrap();
    stream.write_all(b"\r\n").unwrap();
    stream.write_all(body).unwrap();
    let mut raw = Vec::new();
    let _ = stream.read_to_end(&mut raw);
    let split = raw.windows(4).position(|w| w == b"\r\n\r\n")?;
    let head = String::from_utf8_lossy(&raw[..split]).to_string();
    let mut lines = head.lines();
    let status = lines.next()?.split_whitespace().nth(1)?.parse().ok()?;
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_lowercase(), v.trim().to_string()))
        .collect();
    Some(Answer {
        status,
        headers,
        body: raw[split + 4..].to_vec(),
    })
}

fn wav(seconds: f64) -> Vec<u8> {
    let data_len = (seconds * 32_000.0) as u32;
    let mut out = b"RIFF".to_vec();
    out.extend_from_slice(&(36 + data_len).to_le_bytes());
    out.extend_from_slice(b"WAVEfmt \x10\0\0\0\x01\0\x01\0");
    out.extend_from_slice(&16_000u32.to_le_bytes());
    out.extend_from_slice(&32_000u32.to_le_bytes());
    out.extend_from_slice(b"\x02\0\x10\0data");
    out.extend_from_slice(&data_len.to_le_bytes());
    out.resize(out.len() + data_len as usize, 0);
    out
}

/// A multipart/form-data body; a field with a file name is a file part.
fn multipart(fields: &[(&str, Option<&str>, &[u8])]) -> (String, Vec<u8>) {
    let mut body = Vec::new();
    for (name, file, data) in fields {
        body.extend_from_slice(b"--XyZ\r\n");
        let disposition = match file {
            Some(f) => format!("Content-Disposition: form-data; name=\"{name}\"; filename=\"{f}\"\r\nContent-Type: application/octet-stream\r\n\r\n"),
            None => format!("Content-Disposition: form-data; name=\"{name}\"\r\n\r\n"),
        };
        body.extend_from_slice(disposition.as_bytes());
        body.extend_from_slice(data);
        body.extend_from_slice(b"\r\n");
    }
    body.extend_from_slice(b"--XyZ--\r\n");
    ("multipart/form-data; boundary=XyZ".into(), body)
}

fn openai_post(mock: &Mock, key: &str, fields: &[(&str, Option<&str>, &[u8])]) -> Answer {
    let (content_type, body) = multipart(fields);
    let auth = format!("Bearer {key}");
    send(
        mock,
        "POST",
        "/v1/audio/transcriptions",
        &[("authorization", &auth), ("content-type", &content_type)],
        &body,
    )
    .unwrap()
}

#[test]
fn openai_contract() {
    let mut config = MockConfig::new(KEY);
    config.faults = vec![
        Fault::Status {
            status: 429,
            retry_after: Some("2".into()),
        },
        Fault::QuotaExhausted,
    ];
    let mock = Mock::openai(config);
    let audio = wav(1.0);
    let whisper = [
        ("model", None, &b"whisper-1"[..]),
        ("file", Some("a.wav"), &audio[..]),
    ];

    let denied = openai_post(&mock, "sk-wrong-key-123456789", &whisper);
    assert_eq!(denied.status, 401);
    assert_eq!(denied.json()["error"]["code"], "invalid_api_key");
    assert!(denied.json()["error"]["message"]
        .as_str()
        .unwrap()
        .contains("sk-wrong**********6789"));

    let limited = openai_post(&mock, KEY, &whisper);
    assert_eq!(
        (limited.status, limited.header("retry-after")),
        (429, Some("2"))
    );
    assert_eq!(limited.json()["error"]["code"], "rate_limit_exceeded");
    assert_eq!(
        openai_post(&mock, KEY, &whisper).json()["error"]["code"],
        "insufficient_quota"
    );

    let not_audio = openai_post(
        &mock,
        KEY,
        &[
            ("model", None, b"whisper-1"),
            ("file", Some("a.wav"), b"hello there"),
        ],
    );
    assert_eq!(not_audio.status, 400);
    assert!(not_audio.json()["error"]["message"]
        .as_str()
        .unwrap()
        .starts_with("Invalid file format."));
    let verbose_4o = openai_post(
        &mock,
        KEY,
        &[
            ("model", None, b"gpt-4o-transcribe"),
            ("file", Some("a.wav"), &audio),
            ("response_format", None, b"verbose_json"),
        ],
    );
    assert_eq!(
        (
            verbose_4o.status,
            verbose_4o.json()["error"]["code"].clone()
        ),
        (400, json!("unsupported_value"))
    );
    let long = wav(31.0);
    let diarize = openai_post(
        &mock,
        KEY,
        &[
            ("model", None, b"gpt-4o-transcribe-diarize"),
            ("file", Some("a.wav"), &long),
        ],
    );
    assert_eq!(
        (diarize.status, diarize.json()["error"]["param"].clone()),
        (400, json!("chunking_strategy"))
    );

    let ok = openai_post(
        &mock,
        KEY,
        &[
            ("model", None, b"whisper-1"),
            ("file", Some("a.wav"), &audio),
            ("response_format", None, b"verbose_json"),
            ("timestamp_granularities[]", None, b"word"),
        ],
    );
    assert_eq!(ok.status, 200);
    assert!(ok.header("x-request-id").is_some());
    let body = ok.json();
    assert!(
        body["words"].is_array() && body.get("segments").is_none(),
        "{body}"
    );
    let srt = openai_post(
        &mock,
        KEY,
        &[
            ("model", None, b"whisper-1"),
            ("file", Some("a.wav"), &audio),
            ("response_format", None, b"srt"),
        ],
    );
    assert!(
        String::from_utf8_lossy(&srt.body).starts_with("1\n00:00:00,310 --> 00:00:07,530\nAnd so,")
    );

    let recorded = mock.requests();
    assert_eq!(recorded.len(), 8);
    assert_eq!(recorded[0].multipart().unwrap()[0].text(), "whisper-1");
}

#[test]
fn gemini_contract() {
    let mut config = MockConfig::new(KEY);
    config.faults = vec![Fault::Slow(Duration::from_millis(300))];
    let mock = Mock::gemini(config);
    let generate = "/v1beta/models/gemini-2.5-flash:generateContent";
    let post = |path: &str, body: &Value| {
        send(
            &mock,
            "POST",
            path,
            &[
                ("x-goog-api-key", KEY),
                ("content-type", "application/json"),
            ],
            body.to_string().as_bytes(),
        )
        .unwrap()
    };

    let denied = send(
        &mock,
        "POST",
        generate,
        &[("x-goog-api-key", "nope")],
        b"{}",
    )
    .unwrap();
    assert_eq!(denied.status, 400);
    assert_eq!(
        denied.json()["error"]["details"][0]["reason"],
        "API_KEY_INVALID"
    );

    use base64::Engine;
    let data = base64::engine::general_purpose::STANDARD.encode(wav(1.0));
    let inline = json!({"contents": [{"parts": [{"text": "Transcribe."}, {"inline_data": {"mime_type": "audio/wav", "data": data}}]}]});
    let started = Instant::now();
    let slow = post(generate, &inline);
    assert!(started.elapsed() >= Duration::from_millis(300));
    assert_eq!(slow.json()["candidates"][0]["finishReason"], "STOP");

    let mislabelled = json!({"contents": [{"parts": [{"inlineData": {"mimeType": "audio/flac", "data": data}}]}]});
    assert_eq!(post(generate, &mislabelled).status, 400);
    let mut schema = inline.clone();
    schema["generationConfig"] = json!({"responseMimeType": "application/json", "responseSchema": {"type": "OBJECT", "additionalProperties": false}});
    let rejected = post(generate, &schema);
    assert_eq!(rejected.status, 400);
    assert!(rejected.json()["error"]["message"]
        .as_str()
        .unwrap()
        .contains("Unknown name \"additionalProperties\""));

    let audio = wav(2.0);
    let length = audio.len().to_string();
    let start = send(
        &mock,
        "POST",
        "/upload/v1beta/files",
        &[
            ("x-goog-api-key", KEY),
            ("x-goog-upload-protocol", "resumable"),
            ("x-goog-upload-command", "start"),
            ("x-goog-upload-header-content-length", &length),
            ("x-goog-upload-header-content-type", "audio/wav"),
        ],
        br#"{"file":{"display_name":"clip"}}"#,
    )
    .unwrap();
    assert_eq!(start.header("x-goog-upload-status"), Some("active"));
    let url = start.header("x-goog-upload-url").unwrap().to_string();
    assert!(url.starts_with(&mock.base_url()));
    let finished = send(
        &mock,
        "POST",
        &url,
        &[
            ("x-goog-api-key", KEY),
            ("x-goog-upload-command", "upload, finalize"),
            ("x-goog-upload-offset", "0"),
        ],
        &audio,
    )
    .unwrap();
    assert_eq!(finished.header("x-goog-upload-status"), Some("final"));
    let file = finished.json()["file"].clone();
    assert_eq!(
        (file["state"].as_str(), file["sizeBytes"].as_str()),
        (Some("PROCESSING"), Some(length.as_str()))
    );

    let by_file = json!({"contents": [{"parts": [{"file_data": {"mime_type": "audio/wav", "file_uri": file["uri"]}}]}]});
    assert_eq!(
        post(generate, &by_file).json()["error"]["status"],
        "FAILED_PRECONDITION"
    );
    let path = format!("/v1beta/{}", file["name"].as_str().unwrap());
    let get = |expect: &str| {
        assert_eq!(
            send(&mock, "GET", &path, &[("x-goog-api-key", KEY)], b"")
                .unwrap()
                .json()["state"],
            expect
        )
    };
    get("PROCESSING");
    get("ACTIVE");
    assert_eq!(post(generate, &by_file).status, 200);
    assert_eq!(
        send(&mock, "DELETE", &path, &[("x-goog-api-key", KEY)], b"")
            .unwrap()
            .json(),
        json!({})
    );
    assert_eq!(
        post(generate, &by_file).json()["error"]["status"],
        "PERMISSION_DENIED"
    );
    assert_eq!(mock.requests()[1].header("x-goog-api-key"), Some(KEY));
}

#[test]
fn assemblyai_contract() {
    let mut config = MockConfig::new(KEY);
    config.faults = vec![
        Fault::Status {
            status: 429,
            retry_after: None,
        },
        Fault::Truncated,
    ];
    let mock = Mock::assemblyai(config);
    let auth = [("authorization", KEY)];

    let denied = send(
        &mock,
        "POST",
        "/v2/upload",
        &[("authorization", "Bearer nope")],
        b"x",
    )
    .unwrap();
    assert_eq!(
        (denied.status, denied.json()["error"].clone()),
        (
            401,
            json!("Authentication error, API token missing/invalid")
        )
    );
    let limited = send(&mock, "POST", "/v2/upload", &auth, &wav(1.0)).unwrap();
    assert_eq!(
        (limited.status, limited.header("retry-after")),
        (429, Some("1"))
    );
    let cut = send(&mock, "POST", "/v2/upload", &auth, &wav(1.0)).unwrap();
    let announced: usize = cut.header("content-length").unwrap().parse().unwrap();
    assert!(cut.status == 200 && cut.body.len() < announced);

    let upload = send(&mock, "POST", "/v2/upload", &auth, &wav(3.0))
        .unwrap()
        .json();
    let upload_url = upload["upload_url"].as_str().unwrap();
    assert!(upload_url.starts_with(&format!("{}/cdn/upload/", mock.base_url())));
    let create = |body: Value| {
        send(
            &mock,
            "POST",
            "/v2/transcript",
            &auth,
            body.to_string().as_bytes(),
        )
        .unwrap()
    };
    let bad = create(
        json!({"audio_url": upload_url, "speech_models": ["universal-2"], "speaker_labels": true, "language_code": "xx"}),
    );
    assert_eq!(
        (bad.status, bad.json()["error"].clone()),
        (
            400,
            json!("The following models are not available in this language: speaker_labels")
        )
    );
    assert_eq!(create(json!({"audio_url": upload_url})).status, 400);
    assert_eq!(
        create(
            json!({"audio_url": upload_url, "speech_models": ["universal-2"], "punctuate": "yes"})
        )
        .json()["error"],
        "punctuate must be a Boolean"
    );

    let queued = create(
        json!({"audio_url": upload_url, "speech_models": ["universal-3-pro", "universal-2"]}),
    )
    .json();
    assert_eq!(queued["status"], "queued");
    let path = format!("/v2/transcript/{}", queued["id"].as_str().unwrap());
    let statuses: Vec<Value> = (0..3)
        .map(|_| send(&mock, "GET", &path, &auth, b"").unwrap().json())
        .collect();
    assert_eq!(
        statuses
            .iter()
            .map(|s| s["status"].as_str().unwrap())
            .collect::<Vec<_>>(),
        ["queued", "processing", "completed"]
    );
    let done = &statuses[2];
    assert_eq!(
        (
            done["audio_duration"].as_u64(),
            done["utterances"].is_null(),
            done["words"][0]["speaker"].is_null()
        ),
        (Some(3), true, true)
    );

    let text_upload = send(&mock, "POST", "/v2/upload", &auth, b"<html>nope</html>")
        .unwrap()
        .json();
    let failing =
        create(json!({"audio_url": text_upload["upload_url"], "speech_models": ["universal-2"]}))
            .json();
    let path = format!("/v2/transcript/{}", failing["id"].as_str().unwrap());
    let polls: Vec<Value> = (0..3)
        .map(|_| send(&mock, "GET", &path, &auth, b"").unwrap().json())
        .collect();
    let last = &polls[2];
    assert_eq!(last["status"], "error");
    assert!(last["error"]
        .as_str()
        .unwrap()
        .starts_with("File does not appear to contain audio."));
    assert_eq!(
        send(&mock, "GET", "/v2/transcript/unknown", &auth, b"")
            .unwrap()
            .status,
        400
    );
    assert_eq!(
        mock.requests()[0].header("authorization"),
        Some("Bearer nope")
    );
}

#[test]
fn deepgram_contract() {
    let mut config = MockConfig::new(KEY);
    config.faults = vec![
        Fault::Status {
            status: 503,
            retry_after: Some("7".into()),
        },
        Fault::MalformedJson,
        Fault::Hangup,
        Fault::QuotaExhausted,
    ];
    let mock = Mock::deepgram(config);
    let token = format!("Token {KEY}");
    let listen = |query: &str, content_type: &str, body: &[u8]| {
        send(
            &mock,
            "POST",
            &format!("/v1/listen{query}"),
            &[("authorization", &token), ("content-type", content_type)],
            body,
        )
    };

    let denied = send(
        &mock,
        "POST",
        "/v1/listen",
        &[("authorization", "Token nope")],
        b"",
    )
    .unwrap();
    assert_eq!(
        (denied.status, denied.json()["err_code"].clone()),
        (401, json!("INVALID_AUTH"))
    );
    let unavailable = listen("", "audio/wav", &wav(1.0)).unwrap();
    assert_eq!(
        (unavailable.status, unavailable.header("retry-after")),
        (503, Some("7"))
    );
    let malformed = listen("", "audio/wav", &wav(1.0)).unwrap();
    assert!(malformed.status == 200 && serde_json::from_slice::<Value>(&malformed.body).is_err());
    assert!(listen("", "audio/wav", &wav(1.0)).is_none());
    assert_eq!(
        listen("", "audio/wav", &wav(1.0)).unwrap().json()["err_code"],
        "ASR_PAYMENT_REQUIRED"
    );

    assert_eq!(
        listen("?diarize=yes", "audio/wav", &wav(1.0))
            .unwrap()
            .status,
        400
    );
    let corrupt = listen("", "audio/wav", b"definitely not audio").unwrap();
    assert_eq!(
        (corrupt.status, corrupt.json()["err_msg"].clone()),
        (
            400,
            json!("Bad Request: failed to process audio: corrupt or unsupported data")
        )
    );
    assert_eq!(
        listen("", "application/json", b"{\"url\":").unwrap().json()["category"],
        "INVALID_JSON"
    );

    let plain = listen("?model=nova-3", "audio/wav", &wav(2.5)).unwrap();
    let id = plain.header("dg-request-id").unwrap().to_string();
    let body = plain.json();
    assert_eq!(
        (
            body["metadata"]["duration"].as_f64(),
            body["metadata"]["request_id"].as_str()
        ),
        (Some(2.5), Some(id.as_str()))
    );
    let word = &body["results"]["channels"][0]["alternatives"][0]["words"][0];
    assert!(
        word.get("speaker").is_none()
            && word.get("punctuated_word").is_none()
            && body["results"].get("utterances").is_none()
    );

    let rich = listen(
        "?model=nova-3&diarize=true&utterances=true&smart_format=true&detect_language=true",
        "application/json",
        br#"{"url":"https://example.com/a.wav"}"#,
    )
    .unwrap()
    .json();
    let channel = &rich["results"]["channels"][0];
    assert_eq!(
        (
            channel["detected_language"].as_str(),
            channel["alternatives"][0]["words"][0]["speaker"].as_u64()
        ),
        (Some("en"), Some(0))
    );
    assert!(rich["results"]["utterances"].is_array());
    assert_eq!(
        mock.requests().last().unwrap().query_value("diarize"),
        Some("true")
    );
}
