//! Shared by the provider tests: the JFK speech, engine configurations that retry quickly,
//! and a log capture for the redaction checks.

#![allow(dead_code)]

use std::io::Write;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use vttiro_asr::{AudioWindow, Engine, TranscribeOptions};
use vttiro_cloud::{CloudConfig, Provider, RetryPolicy};
use vttiro_core::Transcript;

pub const KEY: &str = "vt-test-key-0123456789abcdefXYZ";

/// JFK's 11 s of speech at 16 kHz and its VAD speech regions, one window each.
pub fn jfk() -> &'static (Vec<f32>, Vec<AudioWindow>) {
    static JFK: OnceLock<(Vec<f32>, Vec<AudioWindow>)> = OnceLock::new();
    JFK.get_or_init(|| {
        let decoded = vttiro_media::decode(
            &vttiro_fixtures::jfk_wav(),
            &vttiro_media::DecodeOptions::default(),
        )
        .expect("decode jfk.wav");
        let regions =
            vttiro_vad::detect_speech(&decoded.samples, &vttiro_vad::VadParams::default());
        let windows = regions
            .iter()
            .map(|r| AudioWindow {
                start: r.start,
                end: r.end,
            })
            .collect();
        (decoded.samples, windows)
    })
}

/// JFK's three phrases, cut at its two long pauses (after "Americans," and after "for
/// you,"), so uploads can be split where a speaker breathes.
pub fn jfk_phrases() -> Vec<AudioWindow> {
    let at = |seconds: f64| (seconds * 16_000.0) as usize;
    vec![
        AudioWindow {
            start: at(0.2),
            end: at(2.3),
        },
        AudioWindow {
            start: at(3.2),
            end: at(7.7),
        },
        AudioWindow {
            start: at(8.0),
            end: at(10.9),
        },
    ]
}

/// The whole of JFK as one window, as the pipeline's chunk planner gives it.
pub fn jfk_one_window() -> Vec<AudioWindow> {
    let (_, windows) = jfk();
    vec![AudioWindow {
        start: windows.first().unwrap().start,
        end: windows.last().unwrap().end,
    }]
}

/// A configuration pointing at `base_url` that retries after 20-40 ms instead of seconds.
pub fn config(provider: Provider, base_url: &str) -> CloudConfig {
    let mut config = CloudConfig::new(provider);
    config.base_url = base_url.to_string();
    config.key = vttiro_cloud::ApiKey::new(KEY);
    config.retry = RetryPolicy {
        max_attempts: 4,
        base_delay: Duration::from_millis(40),
        max_delay: Duration::from_millis(200),
        max_retry_after: Duration::from_secs(5),
        response_timeout: Duration::from_secs(10),
        connect_timeout: Duration::from_secs(5),
    };
    config.poll_interval = Duration::from_millis(10);
    config.poll_max_interval = Duration::from_millis(40);
    config.poll_timeout = Duration::from_secs(20);
    config
}

pub fn run(
    engine: &mut dyn Engine,
    windows: &[AudioWindow],
    options: &TranscribeOptions,
) -> Result<Transcript, vttiro_asr::AsrError> {
    let (samples, _) = jfk();
    engine.transcribe(samples, windows, options, &mut |_| {})
}

/// [`run`] over one JFK window with `options`, setting their cancel token from another
/// thread once `ready` says the provider has reached the point under test; returns the
/// result and how long the run went on after the cancel.
pub fn run_cancelled_when(
    engine: &mut dyn Engine,
    options: &TranscribeOptions,
    ready: impl Fn() -> bool + Sync,
) -> (Result<Transcript, vttiro_asr::AsrError>, Duration) {
    std::thread::scope(|scope| {
        let canceller = scope.spawn(|| {
            let started = Instant::now();
            while !ready() {
                assert!(
                    started.elapsed() < Duration::from_secs(60),
                    "the provider never got there"
                );
                std::thread::sleep(Duration::from_millis(10));
            }
            options.cancel.cancel();
            Instant::now()
        });
        let result = run(engine, &jfk_one_window(), options);
        let cancelled_at = canceller.join().unwrap();
        (result, cancelled_at.elapsed())
    })
}

pub fn english() -> TranscribeOptions {
    TranscribeOptions {
        language: Some("en".into()),
        ..Default::default()
    }
}

pub fn text_of(t: &Transcript) -> String {
    t.text()
}

/// Words lower-cased without punctuation, for comparing transcripts.
pub fn bare_words(t: &Transcript) -> Vec<String> {
    t.words()
        .map(|w| {
            w.text
                .chars()
                .filter(|c| c.is_alphanumeric())
                .flat_map(char::to_lowercase)
                .collect()
        })
        .collect()
}

pub const JFK_WORDS: &str = "and so my fellow americans ask not what your country can do for you ask what you can do for your country";

#[derive(Clone, Default)]
pub struct Captured(Arc<Mutex<Vec<u8>>>);

impl Captured {
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap()).into_owned()
    }
}

impl Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Runs `f` with every log line at every level captured, and returns what was logged.
pub fn with_logs<T>(f: impl FnOnce() -> T) -> (T, String) {
    let captured = Captured::default();
    let writer = captured.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::TRACE)
        .with_writer(move || writer.clone())
        .with_ansi(false)
        .finish();
    let value = tracing::subscriber::with_default(subscriber, f);
    (value, captured.text())
}
