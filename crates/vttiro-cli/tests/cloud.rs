//! `vttiro transcribe --engine <cloud>` and `vttiro providers` end to end, against the
//! providers' local stand-ins.

mod common;

use common::{asr_store, stderr, stdout, vttiro_env};
use serde_json::Value;
use vttiro_cloud_mock::{Fault, Mock, MockConfig};

const KEY: &str = "dg-cli-test-key-5f1e2d3c4b5a";

fn jfk() -> String {
    vttiro_fixtures::jfk_wav().display().to_string()
}

#[test]
fn deepgram_with_speakers_writes_labelled_subtitles_rttm_and_usage() {
    let mock = Mock::deepgram(MockConfig::new(KEY));
    let dir = tempfile::tempdir().unwrap();
    let empty_store = dir.path().join("store");
    let out = dir.path().join("jfk");
    let output = vttiro_env(
        &[
            "transcribe",
            &jfk(),
            "--engine",
            "deepgram",
            "--diarize",
            // Deepgram labels speakers, so no speaker model is needed or fetched.
            "--no-download",
            "--format",
            "vtt,json,rttm",
            "-o",
            out.to_str().unwrap(),
        ],
        dir.path(),
        &empty_store,
        &[
            ("VTTIRO_DEEPGRAM_API_KEY", KEY),
            ("VTTIRO_DEEPGRAM_BASE_URL", &mock.base_url()),
        ],
    );
    assert!(output.status.success(), "{}", stderr(&output));
    let vtt = std::fs::read_to_string(out.with_extension("vtt")).unwrap();
    assert!(vtt.contains("<v Speaker 1>"), "{vtt}");
    assert!(vtt.contains("deepgram, model nova-3"), "{vtt}");
    let json: Value =
        serde_json::from_str(&std::fs::read_to_string(out.with_extension("json")).unwrap())
            .unwrap();
    assert_eq!(json["engine"], "deepgram");
    assert_eq!(json["usage"]["provider"], "deepgram");
    assert_eq!(json["usage"]["model"], "nova-3");
    assert_eq!(json["usage"]["requests"], 1);
    let billed = json["usage"]["billed_seconds"].as_f64().unwrap();
    assert!(billed > 10.0 && billed <= 11.0, "{billed}");
    let cost = json["usage"]["estimated_cost_usd"].as_f64().unwrap();
    assert!((cost - 0.0043 * billed / 60.0).abs() < 1e-6, "{cost}");
    assert_eq!(json["speakers"], serde_json::json!(["Speaker 1"]));
    let rttm = std::fs::read_to_string(out.with_extension("rttm")).unwrap();
    assert!(
        rttm.lines()
            .all(|l| l.starts_with("SPEAKER jfk 1 ") && l.contains(" Speaker_1 ")),
        "{rttm}"
    );
    assert!(!stderr(&output).contains(KEY));
}

#[test]
fn a_missing_key_fails_before_decoding_with_its_own_exit_code() {
    let dir = tempfile::tempdir().unwrap();
    let output = vttiro_env(
        &["transcribe", &jfk(), "--engine", "openai", "-o", "x.vtt"],
        dir.path(),
        &dir.path().join("store"),
        &[],
    );
    assert_eq!(output.status.code(), Some(32), "{}", stderr(&output));
    let err = stderr(&output);
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(
        err.contains("openai: no API key: set VTTIRO_OPENAI_API_KEY or OPENAI_API_KEY"),
        "{err}"
    );
    assert!(!dir.path().join("x.vtt").exists());
}

#[test]
fn quota_exhaustion_exits_33_and_no_log_line_holds_the_key() {
    let mut config = MockConfig::new(KEY);
    config.faults = vec![Fault::QuotaExhausted];
    let mock = Mock::openai(config);
    let dir = tempfile::tempdir().unwrap();
    let output = vttiro_env(
        &[
            "transcribe",
            &jfk(),
            "--engine",
            "openai:gpt-4o-mini-transcribe",
            "--log-format",
            "json",
            "-o",
            "x.vtt",
        ],
        dir.path(),
        &dir.path().join("store"),
        &[
            ("OPENAI_API_KEY", KEY),
            ("VTTIRO_OPENAI_BASE_URL", &mock.base_url()),
            ("VTTIRO_LOG", "trace"),
        ],
    );
    assert_eq!(output.status.code(), Some(33), "{}", stderr(&output));
    let err = stderr(&output);
    assert!(err.contains("quota"), "{err}");
    assert!(err.lines().count() > 3, "trace logging was on: {err}");
    assert!(!err.contains(KEY) && !err.contains(&KEY[..10]), "{err}");
    assert!(!dir.path().join("x.vtt").exists());
}

#[test]
fn a_chain_falls_back_from_deepgram_to_openai_and_then_to_the_local_model() {
    let deepgram = Mock::deepgram(MockConfig::new("a-different-key"));
    let openai = Mock::openai(MockConfig::new(KEY));
    let dir = tempfile::tempdir().unwrap();
    let (deepgram_url, openai_url) = (deepgram.base_url(), openai.base_url());
    let env = [
        ("VTTIRO_DEEPGRAM_API_KEY", KEY),
        ("VTTIRO_DEEPGRAM_BASE_URL", deepgram_url.as_str()),
        ("VTTIRO_OPENAI_API_KEY", KEY),
        ("VTTIRO_OPENAI_BASE_URL", openai_url.as_str()),
    ];
    let output = vttiro_env(
        &[
            "transcribe",
            &jfk(),
            "--engine",
            "deepgram,openai,local",
            "--format",
            "json",
            "-o",
            "out.json",
        ],
        dir.path(),
        &dir.path().join("store"),
        &env,
    );
    assert!(output.status.success(), "{}", stderr(&output));
    assert!(
        stderr(&output).contains("transcribed by openai after deepgram (provider_auth) failed"),
        "{}",
        stderr(&output)
    );
    let json: Value =
        serde_json::from_str(&std::fs::read_to_string(dir.path().join("out.json")).unwrap())
            .unwrap();
    assert_eq!(json["usage"]["provider"], "openai");
    assert_eq!(json["usage"]["fell_back_from"][0]["engine"], "deepgram");

    // With both clouds down, the local model (loaded only now) transcribes.
    let mut down = MockConfig::new(KEY);
    down.faults = vec![Fault::Hangup; 4];
    let deepgram = Mock::deepgram(down);
    let output = vttiro_env(
        &[
            "transcribe",
            &jfk(),
            "--engine",
            "deepgram,local",
            "--cloud-attempts",
            "2",
            "--format",
            "json",
            "-o",
            "local.json",
        ],
        dir.path(),
        &asr_store(),
        &[
            ("VTTIRO_DEEPGRAM_API_KEY", KEY),
            ("VTTIRO_DEEPGRAM_BASE_URL", &deepgram.base_url()),
        ],
    );
    assert!(output.status.success(), "{}", stderr(&output));
    assert_eq!(deepgram.requests().len(), 2);
    let json: Value =
        serde_json::from_str(&std::fs::read_to_string(dir.path().join("local.json")).unwrap())
            .unwrap();
    assert_eq!(json["engine"], "ct2");
    assert_eq!(json["usage"]["estimated_cost_usd"], 0.0);
    assert_eq!(
        json["usage"]["fell_back_from"][0]["code"],
        "provider_unavailable"
    );
    let text = json["text"].as_str().unwrap().to_lowercase();
    assert!(
        text.contains("ask not what your country can do for you"),
        "{text}"
    );
}

#[test]
fn providers_lists_engines_models_prices_and_which_variable_holds_a_key() {
    let dir = tempfile::tempdir().unwrap();
    let output = vttiro_env(
        &["providers", "--json"],
        dir.path(),
        &dir.path().join("store"),
        &[("DEEPGRAM_API_KEY", KEY)],
    );
    assert!(output.status.success(), "{}", stderr(&output));
    let text = stdout(&output);
    assert!(!text.contains(KEY));
    let rows: Value = serde_json::from_str(&text).unwrap();
    let engines: Vec<&str> = rows
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["engine"].as_str().unwrap())
        .collect();
    assert_eq!(engines, vec!["openai", "gemini", "assemblyai", "deepgram"]);
    let deepgram = &rows[3];
    assert_eq!(deepgram["key"], "DEEPGRAM_API_KEY");
    assert_eq!(rows[0]["key"], Value::Null);
    let nova = &deepgram["models"][0];
    assert_eq!(
        (
            nova["name"].as_str(),
            nova["default"].as_bool(),
            nova["usd_per_minute"].as_f64()
        ),
        (Some("nova-3"), Some(true), Some(0.0043))
    );

    let table = vttiro_env(&["providers"], dir.path(), &dir.path().join("store"), &[]);
    let table = stdout(&table);
    assert!(
        table.contains("openai  no key (set VTTIRO_OPENAI_API_KEY or OPENAI_API_KEY)"),
        "{table}"
    );
    assert!(table.contains("gpt-4o-transcribe-diarize"), "{table}");
}
