//! The Deepgram engine against a local stand-in for `POST /v1/listen`.

mod common;

use common::*;
use vttiro_cloud::{build_engine, DeepgramEngine, ListenSource, Provider};
use vttiro_cloud_mock::{Fault, Mock, MockConfig};
use vttiro_core::{samples_to_ms, ErrorCode};

fn mock_with(faults: Vec<Fault>) -> Mock {
    let mut config = MockConfig::new(KEY);
    config.faults = faults;
    Mock::deepgram(config)
}

#[test]
fn nova_3_gets_the_documented_query_and_words_come_back_punctuated_with_speakers() {
    let mock = mock_with(vec![]);
    let mut engine = build_engine(config(Provider::Deepgram, &mock.base_url())).unwrap();
    let mut options = english();
    options.speaker_labels = true;
    options.vocabulary = vec!["Americans".into(), "fellow citizens".into()];
    let windows = jfk_one_window();
    let transcript = run(engine.as_mut(), &windows, &options).unwrap();

    let requests = mock.requests();
    assert_eq!(requests.len(), 1);
    let request = &requests[0];
    assert_eq!(
        (request.method.as_str(), request.path.as_str()),
        ("POST", "/v1/listen")
    );
    assert_eq!(
        request.header("authorization"),
        Some(format!("Token {KEY}").as_str())
    );
    assert_eq!(request.header("content-type"), Some("audio/wav"));
    assert_eq!(&request.body[..4], b"RIFF");
    for (name, value) in [
        ("model", "nova-3"),
        ("smart_format", "true"),
        ("punctuate", "true"),
        ("utterances", "true"),
        ("diarize", "true"),
        ("language", "en"),
    ] {
        assert_eq!(request.query_value(name), Some(value), "{name}");
    }
    assert_eq!(
        request.query_values("keyterm"),
        vec!["Americans", "fellow citizens"]
    );

    assert_eq!(bare_words(&transcript).join(" "), JFK_WORDS);
    assert!(
        text_of(&transcript).contains("Americans,"),
        "{}",
        text_of(&transcript)
    );
    assert!(transcript
        .words()
        .all(|w| w.speaker.as_deref() == Some("0")));
    let offset = samples_to_ms(windows[0].start);
    assert!(transcript.words().next().unwrap().start_ms >= offset);
    let usage = engine.usage().unwrap();
    assert_eq!(usage.provider, "deepgram");
    // Billed from Deepgram's own metadata.duration: the uploaded span.
    let uploaded = samples_to_ms(windows[0].end - windows[0].start) as f64 / 1000.0;
    assert!(
        (usage.billed_seconds - uploaded).abs() < 0.05,
        "{}",
        usage.billed_seconds
    );
    assert_eq!(
        usage.estimated_cost_usd,
        Some((0.0043 * usage.billed_seconds / 60.0 * 1e6).round() / 1e6)
    );
}

#[test]
fn without_a_language_deepgram_detects_it_and_without_diarize_no_speakers() {
    let mock = mock_with(vec![]);
    let mut engine = build_engine(config(Provider::Deepgram, &mock.base_url())).unwrap();
    let transcript = run(engine.as_mut(), &jfk_one_window(), &Default::default()).unwrap();
    let request = &mock.requests()[0];
    assert_eq!(request.query_value("detect_language"), Some("true"));
    assert_eq!(request.query_value("diarize"), None);
    assert_eq!(transcript.language, "en");
    assert!(transcript.words().all(|w| w.speaker.is_none()));
}

#[test]
fn a_url_is_sent_for_deepgram_to_fetch() {
    let mock = mock_with(vec![]);
    let engine = DeepgramEngine::new(
        config(Provider::Deepgram, &mock.base_url()),
        vttiro_cloud::ApiKey::new(KEY).unwrap(),
    );
    let result = engine
        .listen(
            ListenSource::Url("https://media.example.org/jfk.wav"),
            &english(),
            0,
        )
        .unwrap();
    assert_eq!(result.words.len(), 22);
    let request = &mock.requests()[0];
    assert_eq!(request.header("content-type"), Some("application/json"));
    assert_eq!(
        request.json().unwrap(),
        serde_json::json!({ "url": "https://media.example.org/jfk.wav" })
    );
}

#[test]
fn failure_classes_follow_deepgram_errors() {
    let cases = [
        (Fault::QuotaExhausted, ErrorCode::ProviderQuota, 1),
        (
            Fault::Status {
                status: 400,
                retry_after: None,
            },
            ErrorCode::ProviderUnsupportedFormat,
            1,
        ),
    ];
    for (fault, code, requests) in cases {
        let mock = mock_with(vec![fault.clone()]);
        let mut engine = build_engine(config(Provider::Deepgram, &mock.base_url())).unwrap();
        let error = run(engine.as_mut(), &jfk_one_window(), &english()).unwrap_err();
        assert_eq!(error.code(), code, "{fault:?}: {error}");
        assert_eq!(mock.requests().len(), requests, "{fault:?}");
    }
    let mock = Mock::deepgram(MockConfig::new("another-key"));
    let mut engine = build_engine(config(Provider::Deepgram, &mock.base_url())).unwrap();
    let error = run(engine.as_mut(), &jfk_one_window(), &english()).unwrap_err();
    assert_eq!(error.code(), ErrorCode::ProviderAuth);
    assert!(error.to_string().contains("INVALID_AUTH"), "{error}");

    // A 429 without Retry-After and a dropped connection are retried.
    let mock = mock_with(vec![
        Fault::Status {
            status: 429,
            retry_after: None,
        },
        Fault::Hangup,
    ]);
    let mut engine = build_engine(config(Provider::Deepgram, &mock.base_url())).unwrap();
    run(engine.as_mut(), &jfk_one_window(), &english()).unwrap();
    assert_eq!(mock.requests().len(), 3);
    assert_eq!(engine.usage().unwrap().retries, 2);
}
