//! The Gemini engine against a local stand-in for `generateContent` and the Files API.

mod common;

use std::time::Duration;

use base64::Engine as _;
use common::*;
use vttiro_cloud::{build_engine, Provider};
use vttiro_cloud_mock::{Fault, GeminiReply, Mock, MockConfig};
use vttiro_core::ErrorCode;

fn gemini(reply: GeminiReply, faults: Vec<Fault>) -> Mock {
    let mut config = MockConfig::new(KEY);
    config.gemini_reply = reply;
    config.faults = faults;
    Mock::gemini(config)
}

fn generate_requests(mock: &Mock) -> Vec<vttiro_cloud_mock::RecordedRequest> {
    mock.requests()
        .into_iter()
        .filter(|r| r.path.ends_with(":generateContent"))
        .collect()
}

#[test]
fn inline_audio_with_a_response_schema_gives_timed_labelled_segments() {
    let mock = gemini(GeminiReply::Json, vec![]);
    let mut engine = build_engine(config(Provider::Gemini, &mock.base_url())).unwrap();
    let mut options = english();
    options.speaker_labels = true;
    let windows = jfk_one_window();
    let transcript = run(engine.as_mut(), &windows, &options).unwrap();

    let requests = mock.requests();
    assert_eq!(requests.len(), 1);
    let request = &requests[0];
    assert_eq!(
        request.path,
        "/v1beta/models/gemini-2.5-flash:generateContent"
    );
    assert_eq!(request.header("x-goog-api-key"), Some(KEY));
    let body = request.json().unwrap();
    let parts = body["contents"][0]["parts"].as_array().unwrap();
    let prompt = parts[0]["text"].as_str().unwrap();
    assert!(
        prompt.contains("MM:SS.mmm") && prompt.contains("Speaker 1"),
        "{prompt}"
    );
    let audio = &parts[1]["inline_data"];
    assert_eq!(audio["mime_type"], "audio/wav");
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(audio["data"].as_str().unwrap())
        .unwrap();
    assert_eq!(&bytes[..4], b"RIFF");
    let config = &body["generationConfig"];
    assert_eq!(config["responseMimeType"], "application/json");
    assert_eq!(
        config["responseSchema"]["properties"]["segments"]["type"],
        "ARRAY"
    );

    assert_eq!(bare_words(&transcript).join(" "), JFK_WORDS);
    assert!(transcript.words().all(|w| w.speaker.is_some()));
    assert!(transcript.words().all(|w| w.end_ms <= 11_000));
    let usage = engine.usage().unwrap();
    assert_eq!((usage.provider.as_str(), usage.requests), ("gemini", 1));
}

#[test]
fn fenced_answers_with_trailing_commas_are_read() {
    let mock = gemini(GeminiReply::Fenced, vec![]);
    let mut engine = build_engine(config(Provider::Gemini, &mock.base_url())).unwrap();
    let transcript = run(engine.as_mut(), &jfk_one_window(), &english()).unwrap();
    assert_eq!(bare_words(&transcript).join(" "), JFK_WORDS);
}

#[test]
fn an_answer_cut_off_by_the_output_limit_is_continued_from_its_last_segment() {
    let mock = gemini(GeminiReply::Truncated, vec![]);
    let mut engine = build_engine(config(Provider::Gemini, &mock.base_url())).unwrap();
    let transcript = run(engine.as_mut(), &jfk_one_window(), &english()).unwrap();
    let requests = generate_requests(&mock);
    assert!(requests.len() >= 2, "{} requests", requests.len());
    // The continuation sends only the audio after the last complete segment.
    let audio_len = |r: &vttiro_cloud_mock::RecordedRequest| {
        r.json().unwrap()["contents"][0]["parts"][1]["inline_data"]["data"]
            .as_str()
            .unwrap()
            .len()
    };
    assert!(audio_len(&requests[1]) < audio_len(&requests[0]));
    assert!(transcript.words().count() > 0);
    let starts: Vec<i64> = transcript.words().map(|w| w.start_ms).collect();
    assert!(starts.windows(2).all(|w| w[1] >= w[0]));
}

#[test]
fn large_pieces_go_through_the_resumable_files_api_and_are_deleted_after() {
    let mut mock_config = MockConfig::new(KEY);
    mock_config.gemini_processing_polls = 2;
    let mock = Mock::gemini(mock_config);
    let mut settings = config(Provider::Gemini, &mock.base_url());
    settings.gemini_inline_max_bytes = 100_000;
    let mut engine = build_engine(settings).unwrap();
    let transcript = run(engine.as_mut(), &jfk_one_window(), &english()).unwrap();
    assert_eq!(bare_words(&transcript).join(" "), JFK_WORDS);

    let requests = mock.requests();
    let route: Vec<String> = requests
        .iter()
        .map(|r| format!("{} {}", r.method, r.path))
        .collect();
    assert_eq!(route[0], "POST /upload/v1beta/files");
    let start = &requests[0];
    assert_eq!(start.header("x-goog-upload-protocol"), Some("resumable"));
    assert_eq!(start.header("x-goog-upload-command"), Some("start"));
    let upload = &requests[1];
    assert_eq!(
        upload.header("x-goog-upload-command"),
        Some("upload, finalize")
    );
    assert_eq!(upload.header("x-goog-upload-offset"), Some("0"));
    assert_eq!(
        start.header("x-goog-upload-header-content-length"),
        Some(upload.body.len().to_string().as_str())
    );
    let polls = route
        .iter()
        .filter(|r| r.starts_with("GET /v1beta/files/"))
        .count();
    // Two answers of PROCESSING, then ACTIVE.
    assert_eq!(polls, 3, "{route:?}");
    let generate = generate_requests(&mock);
    assert_eq!(generate.len(), 1);
    let part = &generate[0].json().unwrap()["contents"][0]["parts"][1];
    assert!(part["file_data"]["file_uri"]
        .as_str()
        .unwrap()
        .contains("/files/"));
    assert!(
        route.last().unwrap().starts_with("DELETE /v1beta/files/"),
        "{route:?}"
    );
}

#[test]
fn a_bad_key_an_overloaded_model_and_a_daily_quota() {
    let mock = Mock::gemini(MockConfig::new("AIza-other"));
    let mut engine = build_engine(config(Provider::Gemini, &mock.base_url())).unwrap();
    let error = run(engine.as_mut(), &jfk_one_window(), &english()).unwrap_err();
    assert_eq!(error.code(), ErrorCode::ProviderAuth, "{error}");

    let overloaded = Fault::Status {
        status: 503,
        retry_after: None,
    };
    let mock = gemini(GeminiReply::Json, vec![overloaded.clone(), overloaded]);
    let mut engine = build_engine(config(Provider::Gemini, &mock.base_url())).unwrap();
    run(engine.as_mut(), &jfk_one_window(), &english()).unwrap();
    assert_eq!(generate_requests(&mock).len(), 3);

    let mock = gemini(GeminiReply::Json, vec![Fault::QuotaExhausted]);
    let mut engine = build_engine(config(Provider::Gemini, &mock.base_url())).unwrap();
    let error = run(engine.as_mut(), &jfk_one_window(), &english()).unwrap_err();
    assert_eq!(error.code(), ErrorCode::ProviderQuota, "{error}");
    assert_eq!(generate_requests(&mock).len(), 1);
}

#[test]
fn a_cancel_while_the_file_is_processing_deletes_it_and_generates_nothing() {
    let mut mock_config = MockConfig::new(KEY);
    mock_config.gemini_processing_polls = 1_000;
    let mock = Mock::gemini(mock_config);
    let mut settings = config(Provider::Gemini, &mock.base_url());
    settings.gemini_inline_max_bytes = 100_000;
    settings.poll_interval = Duration::from_secs(20);
    settings.poll_max_interval = Duration::from_secs(60);
    settings.poll_timeout = Duration::from_secs(600);
    let mut engine = build_engine(settings).unwrap();
    let uploaded = || {
        mock.requests()
            .iter()
            .any(|r| r.header("x-goog-upload-command") == Some("upload, finalize"))
    };
    let (result, after_cancel) = run_cancelled_when(engine.as_mut(), &english(), uploaded);
    assert!(
        matches!(result, Err(vttiro_asr::AsrError::Cancelled)),
        "{result:?}"
    );
    assert!(after_cancel < Duration::from_secs(5), "{after_cancel:?}");
    let route: Vec<String> = mock
        .requests()
        .iter()
        .map(|r| format!("{} {}", r.method, r.path))
        .collect();
    assert!(
        route.last().unwrap().starts_with("DELETE /v1beta/files/"),
        "{route:?}"
    );
    assert!(generate_requests(&mock).is_empty(), "{route:?}");
}
