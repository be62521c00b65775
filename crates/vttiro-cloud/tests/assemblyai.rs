//! The AssemblyAI engine against a local stand-in for upload → transcript → poll.

mod common;

use std::time::Duration;

use common::*;
use vttiro_asr::TranscribeOptions;
use vttiro_cloud::{build_engine, Provider};
use vttiro_cloud_mock::{Fault, Mock, MockConfig};
use vttiro_core::ErrorCode;

#[test]
fn upload_create_and_poll_then_words_with_speaker_letters() {
    let mut mock_config = MockConfig::new(KEY);
    mock_config.assemblyai_polls_before_done = 3;
    let mock = Mock::assemblyai(mock_config);
    let mut engine = build_engine(config(Provider::AssemblyAi, &mock.base_url())).unwrap();
    let mut options = with_speakers(None);
    options.vocabulary = vec!["Americans".into()];
    let transcript = run(engine.as_mut(), &jfk_one_window(), &options).unwrap();

    let requests = mock.requests();
    let route: Vec<String> = requests
        .iter()
        .map(|r| {
            format!(
                "{} {}",
                r.method,
                r.path.split('/').take(3).collect::<Vec<_>>().join("/")
            )
        })
        .collect();
    assert_eq!(route[0], "POST /v2/upload");
    assert_eq!(route[1], "POST /v2/transcript");
    assert!(
        route[2..].iter().all(|r| r == "GET /v2/transcript"),
        "{route:?}"
    );
    assert_eq!(
        route.len(),
        2 + 4,
        "three unfinished polls, then the finished one"
    );
    assert!(requests
        .iter()
        .all(|r| r.header("authorization") == Some(KEY)));
    assert_eq!(&requests[0].body[..4], b"RIFF");

    let job = requests[1].json().unwrap();
    // The job points at the URL the upload answered with.
    let audio_url = job["audio_url"].as_str().unwrap();
    assert!(
        audio_url.starts_with(&format!("{}/cdn/upload/", mock.base_url())),
        "{audio_url}"
    );
    assert_eq!(job["speech_models"], serde_json::json!(["universal-2"]));
    assert_eq!(job["speaker_labels"], true);
    assert_eq!(job["language_detection"], true);
    assert_eq!(job["keyterms_prompt"], serde_json::json!(["Americans"]));

    assert_eq!(bare_words(&transcript).join(" "), JFK_WORDS);
    assert!(transcript
        .words()
        .all(|w| w.speaker.as_deref() == Some("A")));
    assert_eq!(transcript.language, "en");
    let usage = engine.usage().unwrap();
    assert_eq!(usage.requests as usize, requests.len());
    assert!(usage.billed_seconds >= 10.0);
}

fn with_speakers(expected: Option<u32>) -> TranscribeOptions {
    TranscribeOptions {
        speaker_labels: true,
        speakers_expected: expected,
        ..Default::default()
    }
}

#[test]
fn a_known_speaker_count_and_language_are_passed_on() {
    let mock = Mock::assemblyai(MockConfig::new(KEY));
    let mut engine = build_engine(config(Provider::AssemblyAi, &mock.base_url())).unwrap();
    let mut options = with_speakers(Some(2));
    options.language = Some("en".into());
    run(engine.as_mut(), &jfk_one_window(), &options).unwrap();
    let job = mock.requests()[1].json().unwrap();
    assert_eq!(job["speakers_expected"], 2);
    assert_eq!(job["language_code"], "en");
    assert!(job.get("language_detection").is_none());
}

#[test]
fn a_failed_job_is_reported_with_its_reason() {
    let mut mock_config = MockConfig::new(KEY);
    mock_config.assemblyai_job_error =
        Some("File does not appear to contain audio. File type is text/html.".into());
    let mock = Mock::assemblyai(mock_config);
    let mut engine = build_engine(config(Provider::AssemblyAi, &mock.base_url())).unwrap();
    let error = run(engine.as_mut(), &jfk_one_window(), &english()).unwrap_err();
    assert_eq!(error.code(), ErrorCode::ProviderUnsupportedFormat);
    assert!(
        error
            .to_string()
            .contains("does not appear to contain audio"),
        "{error}"
    );
}

#[test]
fn rate_limits_wait_out_retry_after_and_empty_balances_stop() {
    let mut mock_config = MockConfig::new(KEY);
    mock_config.faults = vec![Fault::Status {
        status: 429,
        retry_after: Some("1".into()),
    }];
    let mock = Mock::assemblyai(mock_config);
    let mut engine = build_engine(config(Provider::AssemblyAi, &mock.base_url())).unwrap();
    run(engine.as_mut(), &jfk_one_window(), &english()).unwrap();
    let requests = mock.requests();
    assert_eq!(requests[0].path, "/v2/upload");
    assert_eq!(requests[1].path, "/v2/upload");
    assert!(requests[1].received_at - requests[0].received_at >= Duration::from_millis(950));

    let mut mock_config = MockConfig::new(KEY);
    mock_config.faults = vec![Fault::QuotaExhausted];
    let mock = Mock::assemblyai(mock_config);
    let mut engine = build_engine(config(Provider::AssemblyAi, &mock.base_url())).unwrap();
    let error = run(engine.as_mut(), &jfk_one_window(), &english()).unwrap_err();
    assert_eq!(error.code(), ErrorCode::ProviderQuota, "{error}");
    assert_eq!(mock.requests().len(), 1);
}

#[test]
fn a_webhook_url_set_by_the_service_goes_into_the_job() {
    let mock = Mock::assemblyai(MockConfig::new(KEY));
    let mut settings = config(Provider::AssemblyAi, &mock.base_url());
    settings.webhook_url = Some("https://vttiro.example.org/hooks/assemblyai".into());
    settings.model = "universal-3-pro+universal-2".into();
    let mut engine = build_engine(settings).unwrap();
    run(engine.as_mut(), &jfk_one_window(), &english()).unwrap();
    let job = mock.requests()[1].json().unwrap();
    assert_eq!(
        job["webhook_url"],
        "https://vttiro.example.org/hooks/assemblyai"
    );
    assert_eq!(
        job["speech_models"],
        serde_json::json!(["universal-3-pro", "universal-2"])
    );
}

#[test]
fn a_cancel_stops_polling_at_once_instead_of_after_the_interval() {
    let mut mock_config = MockConfig::new(KEY);
    mock_config.assemblyai_polls_before_done = 1_000;
    let mock = Mock::assemblyai(mock_config);
    let mut settings = config(Provider::AssemblyAi, &mock.base_url());
    // Long enough that waiting it out would fail the timing below.
    settings.poll_interval = Duration::from_secs(20);
    settings.poll_max_interval = Duration::from_secs(60);
    settings.poll_timeout = Duration::from_secs(600);
    let mut engine = build_engine(settings).unwrap();
    let polls = || {
        mock.requests()
            .iter()
            .filter(|r| r.method == "GET" && r.path.starts_with("/v2/transcript/"))
            .count()
    };
    let (result, after_cancel) =
        run_cancelled_when(engine.as_mut(), &with_speakers(None), || polls() > 0);
    assert!(
        matches!(result, Err(vttiro_asr::AsrError::Cancelled)),
        "{result:?}"
    );
    assert!(after_cancel < Duration::from_secs(5), "{after_cancel:?}");
    assert_eq!(polls(), 1, "no poll after the cancel");
}
