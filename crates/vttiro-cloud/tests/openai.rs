//! The OpenAI engine against a local stand-in that validates requests the way
//! `POST /v1/audio/transcriptions` documents them.

mod common;

use std::time::{Duration, Instant};

use common::*;
use vttiro_asr::Engine;
use vttiro_cloud::{build_engine, Provider};
use vttiro_cloud_mock::{Fault, Mock, MockConfig};
use vttiro_core::{samples_to_ms, ErrorCode};

fn openai(mock: &Mock, model: &str) -> Box<dyn Engine + Send> {
    let mut config = config(Provider::OpenAi, &mock.base_url());
    config.model = model.into();
    build_engine(config).unwrap()
}

fn mock_with(faults: Vec<Fault>) -> Mock {
    let mut config = MockConfig::new(KEY);
    config.faults = faults;
    Mock::openai(config)
}

#[test]
fn whisper_1_sends_verbose_json_with_word_timestamps_and_keeps_punctuation() {
    let mock = mock_with(vec![]);
    let mut engine = openai(&mock, "whisper-1");
    let windows = jfk_one_window();
    let mut options = english();
    options.prompt = Some("Inaugural address.".into());
    let transcript = run(engine.as_mut(), &windows, &options).unwrap();

    let requests = mock.requests();
    assert_eq!(requests.len(), 1);
    let request = &requests[0];
    assert_eq!(request.method, "POST");
    assert_eq!(request.path, "/v1/audio/transcriptions");
    assert_eq!(
        request.header("authorization"),
        Some(format!("Bearer {KEY}").as_str())
    );
    let parts = request.multipart().expect("multipart body");
    let field = |name: &str| -> Vec<String> {
        parts
            .iter()
            .filter(|p| p.name == name)
            .map(|p| p.text())
            .collect()
    };
    let file = parts.iter().find(|p| p.name == "file").unwrap();
    assert_eq!(file.file_name.as_deref(), Some("audio.wav"));
    assert_eq!(file.content_type.as_deref(), Some("audio/wav"));
    assert_eq!(&file.data[..4], b"RIFF");
    // The upload is the speech span as vttiro decoded it: 16-bit mono at 16 kHz.
    assert_eq!(
        file.data.len(),
        44 + (windows[0].end - windows[0].start) * 2
    );
    assert_eq!(field("model"), vec!["whisper-1"]);
    assert_eq!(field("response_format"), vec!["verbose_json"]);
    assert_eq!(field("timestamp_granularities[]"), vec!["word", "segment"]);
    assert_eq!(field("language"), vec!["en"]);
    assert_eq!(field("prompt"), vec!["Inaugural address."]);
    assert_eq!(field("temperature"), vec!["0"]);

    assert_eq!(bare_words(&transcript).join(" "), JFK_WORDS);
    assert!(
        text_of(&transcript).starts_with("And so, my fellow Americans, ask not"),
        "{}",
        text_of(&transcript)
    );
    assert_eq!(transcript.language, "en");
    let offset = samples_to_ms(windows[0].start);
    let first = transcript.words().next().unwrap();
    assert_eq!(first.start_ms, offset + 310);
    assert!(transcript
        .words()
        .all(|w| w.end_ms <= 11_000 && w.start_ms <= w.end_ms));

    let usage = engine.usage().unwrap();
    assert_eq!(
        (usage.provider.as_str(), usage.model.as_str()),
        ("openai", "whisper-1")
    );
    assert_eq!((usage.requests, usage.retries), (1, 0));
    assert!(usage.billed_seconds > 0.0);
    let expected = (0.006 * usage.billed_seconds / 60.0 * 1e6).round() / 1e6;
    assert_eq!(usage.estimated_cost_usd, Some(expected));
}

#[test]
fn text_only_models_are_sent_one_speech_chunk_at_a_time() {
    let mock = mock_with(vec![]);
    let mut engine = openai(&mock, "gpt-4o-transcribe");
    let (_, windows) = jfk();
    let transcript = run(engine.as_mut(), windows, &english()).unwrap();
    let requests = mock.requests();
    // Pieces are cut at pauses over 1 s, and the words of each are spread over it.
    assert!(!requests.is_empty());
    for request in &requests {
        let parts = request.multipart().unwrap();
        let format: Vec<String> = parts
            .iter()
            .filter(|p| p.name == "response_format")
            .map(|p| p.text())
            .collect();
        assert_eq!(format, vec!["json"]);
        assert!(parts.iter().all(|p| p.name != "timestamp_granularities[]"));
    }
    assert!(transcript.words().count() >= 22);
    assert!(transcript
        .words()
        .all(|w| w.start_ms >= samples_to_ms(windows[0].start) && w.end_ms <= 11_000));
}

#[test]
fn the_diarizing_model_returns_labelled_segments() {
    let mock = mock_with(vec![]);
    let mut engine = openai(&mock, "gpt-4o-transcribe-diarize");
    let mut options = english();
    options.speaker_labels = true;
    options.prompt = Some("refused by this model, so never sent".into());
    let transcript = run(engine.as_mut(), &jfk_one_window(), &options).unwrap();
    let parts = mock.requests()[0].multipart().unwrap();
    let names: Vec<&str> = parts.iter().map(|p| p.name.as_str()).collect();
    assert!(names.contains(&"chunking_strategy"));
    assert!(!names.contains(&"prompt"));
    assert!(transcript
        .words()
        .all(|w| w.speaker.as_deref() == Some("A")));
    assert_eq!(bare_words(&transcript).join(" "), JFK_WORDS);
}

#[test]
fn over_the_size_limit_the_upload_becomes_opus_and_then_pieces_at_pauses() {
    let windows = &jfk_phrases();
    // 11 s of WAV is 350 kB; as Opus about 30 kB.
    let mut mock_config = MockConfig::new(KEY);
    mock_config.max_upload_bytes = 120_000;
    let mock = Mock::openai(mock_config);
    let mut settings = config(Provider::OpenAi, &mock.base_url());
    settings.max_upload_bytes = 100_000;
    let mut engine = build_engine(settings).unwrap();
    run(engine.as_mut(), windows, &english()).unwrap();
    let requests = mock.requests();
    assert!(requests.iter().all(|r| {
        let parts = r.multipart().unwrap();
        let file = parts.iter().find(|p| p.name == "file").unwrap();
        file.file_name.as_deref() == Some("audio.ogg") && file.data.starts_with(b"OggS")
    }));

    let mock = Mock::openai(MockConfig::new(KEY));
    let mut settings = config(Provider::OpenAi, &mock.base_url());
    settings.max_upload_bytes = 14_000;
    let mut engine = build_engine(settings).unwrap();
    let transcript = run(engine.as_mut(), windows, &english()).unwrap();
    let requests = mock.requests();
    assert!(requests.len() >= 2, "{} requests", requests.len());
    // The stand-in answers every piece with JFK's whole transcript, so each piece adds 22
    // words, placed from that piece's own offset on.
    assert_eq!(transcript.words().count(), 22 * requests.len());
    let copies: Vec<i64> = transcript
        .words()
        .filter(|w| w.text.trim() == "And")
        .map(|w| w.start_ms)
        .collect();
    assert_eq!(copies.len(), requests.len());
    assert_eq!(
        copies[0],
        200 + 310,
        "first piece starts with the first phrase at 0.2 s"
    );
    assert!(copies.windows(2).all(|w| w[1] > w[0] + 2_000), "{copies:?}");
    assert_eq!(engine.usage().unwrap().requests as usize, requests.len());
}

#[test]
fn a_wrong_key_is_an_auth_error_that_never_shows_the_key() {
    let mock = Mock::openai(MockConfig::new("sk-the-right-one"));
    let mut engine = openai(&mock, "whisper-1");
    let (result, logs) = with_logs(|| run(engine.as_mut(), &jfk_one_window(), &english()));
    let error = result.unwrap_err();
    assert_eq!(error.code(), ErrorCode::ProviderAuth);
    assert_eq!(mock.requests().len(), 1, "an auth failure is not retried");
    let message = error.to_string();
    assert!(message.contains("401"), "{message}");
    // The stand-in quotes a masked key like the real API; no piece of it may survive.
    for text in [&message, &logs] {
        assert!(!text.contains(KEY), "{text}");
        assert!(!text.contains(&KEY[..12]), "{text}");
    }
}

#[test]
fn quota_exhaustion_is_not_retried_but_rate_limits_are_after_retry_after() {
    let mock = mock_with(vec![Fault::QuotaExhausted]);
    let mut engine = openai(&mock, "whisper-1");
    let error = run(engine.as_mut(), &jfk_one_window(), &english()).unwrap_err();
    assert_eq!(error.code(), ErrorCode::ProviderQuota);
    assert_eq!(mock.requests().len(), 1);

    let mock = mock_with(vec![Fault::Status {
        status: 429,
        retry_after: Some("1".into()),
    }]);
    let mut engine = openai(&mock, "whisper-1");
    let started = Instant::now();
    run(engine.as_mut(), &jfk_one_window(), &english()).unwrap();
    let requests = mock.requests();
    assert_eq!(requests.len(), 2);
    let gap = requests[1].received_at - requests[0].received_at;
    assert!(gap >= Duration::from_millis(950), "waited only {gap:?}");
    assert!(started.elapsed() < Duration::from_secs(5));
    let usage = engine.usage().unwrap();
    assert_eq!((usage.requests, usage.retries), (2, 1));
}

#[test]
fn server_errors_cut_answers_and_garbage_are_retried_with_backoff() {
    let mock = mock_with(vec![
        Fault::Status {
            status: 500,
            retry_after: None,
        },
        Fault::Truncated,
        Fault::MalformedJson,
    ]);
    let mut engine = openai(&mock, "whisper-1");
    let transcript = run(engine.as_mut(), &jfk_one_window(), &english()).unwrap();
    assert_eq!(bare_words(&transcript).join(" "), JFK_WORDS);
    let requests = mock.requests();
    assert_eq!(requests.len(), 4);
    // Backoff doubles: 20-40 ms, then 40-80 ms, then 80-160 ms.
    let gaps: Vec<Duration> = requests
        .windows(2)
        .map(|w| w[1].received_at - w[0].received_at)
        .collect();
    assert!(gaps[0] >= Duration::from_millis(20), "{gaps:?}");
    assert!(gaps[2] >= Duration::from_millis(80), "{gaps:?}");
    assert_eq!(engine.usage().unwrap().retries, 3);
}

#[test]
fn a_slow_provider_times_out_and_the_retry_succeeds() {
    let mock = mock_with(vec![Fault::Slow(Duration::from_secs(3))]);
    let mut settings = config(Provider::OpenAi, &mock.base_url());
    settings.retry.response_timeout = Duration::from_millis(700);
    let mut engine = build_engine(settings).unwrap();
    let started = Instant::now();
    run(engine.as_mut(), &jfk_one_window(), &english()).unwrap();
    let elapsed = started.elapsed();
    assert!(elapsed >= Duration::from_millis(700), "{elapsed:?}");
    assert!(
        elapsed < Duration::from_millis(2_900),
        "did not time out: {elapsed:?}"
    );
    assert_eq!(mock.requests().len(), 2);
}

#[test]
fn an_outage_gives_up_after_the_attempts_and_then_opens_the_circuit() {
    let mock = mock_with(vec![
        Fault::Status {
            status: 503,
            retry_after: None,
        };
        8
    ]);
    let mut engine = openai(&mock, "whisper-1");
    let error = run(engine.as_mut(), &jfk_one_window(), &english()).unwrap_err();
    assert_eq!(error.code(), ErrorCode::ProviderUnavailable);
    assert!(
        error.to_string().contains("gave up after 4 attempts"),
        "{error}"
    );
    assert_eq!(mock.requests().len(), 4);

    // One more failure reaches the threshold of five consecutive ones; after that the
    // provider is not called at all until the cool-down ends.
    let _ = run(engine.as_mut(), &jfk_one_window(), &english()).unwrap_err();
    let sent = mock.requests().len();
    assert_eq!(
        sent, 5,
        "the circuit opens on the fifth consecutive failure"
    );
    let started = Instant::now();
    let error = run(engine.as_mut(), &jfk_one_window(), &english()).unwrap_err();
    assert_eq!(error.code(), ErrorCode::ProviderUnavailable);
    assert!(error.to_string().contains("rested"), "{error}");
    assert_eq!(mock.requests().len(), sent);
    assert!(started.elapsed() < Duration::from_millis(100));
}

#[test]
fn a_413_from_the_provider_is_reported_as_too_large_without_retrying() {
    // The client plans against 25 MB, but this endpoint takes only 100 kB: the 350 kB WAV
    // is refused with OpenAI's documented 413 body.
    let mut mock_config = MockConfig::new(KEY);
    mock_config.max_upload_bytes = 100_000;
    let mock = Mock::openai(mock_config);
    let mut engine = openai(&mock, "whisper-1");
    let error = run(engine.as_mut(), &jfk_one_window(), &english()).unwrap_err();
    assert_eq!(error.code(), ErrorCode::ProviderInputTooLarge, "{error}");
    assert!(error.to_string().contains("413"), "{error}");
    assert_eq!(mock.requests().len(), 1);
}
