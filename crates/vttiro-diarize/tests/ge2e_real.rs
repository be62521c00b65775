//! The GE2E encoder and the diarizer on real speech with Resemblyzer's real weights
//! (converted from the pinned wheel's pretrained.pt by vttiro-models).

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use vttiro_diarize::ge2e::{Ge2eEncoder, PARTIAL_FRAMES};
use vttiro_diarize::mel::{MelFrontEnd, HOP};
use vttiro_diarize::{diarize, DiarizeOptions, SpeakerCount, SpeakerEncoder};

fn ge2e_weights() -> &'static Path {
    static MODEL: OnceLock<(tempfile::TempDir, PathBuf)> = OnceLock::new();
    &MODEL
        .get_or_init(|| {
            let dir = tempfile::tempdir().unwrap();
            let store = vttiro_models::ModelStore::open(dir.path()).unwrap();
            let installed = store
                .import_speaker_model(&vttiro_fixtures::resemblyzer_pretrained(), "ge2e")
                .unwrap();
            (dir, installed.path)
        })
        .1
}

fn numpy_python() -> PathBuf {
    vttiro_fixtures::python_venv("numpy-venv", &["numpy==2.1.3"])
}

/// Embeddings from tests/data/ge2e_reference.py for `samples` (written as raw f32), where
/// `mode` is a frame count per window or `utterance`.
fn numpy_reference(samples: &[f32], mode: &str) -> Vec<Vec<f64>> {
    let dir = tempfile::tempdir().unwrap();
    let raw = dir.path().join("samples.f32");
    let bytes: Vec<u8> = samples.iter().flat_map(|x| x.to_le_bytes()).collect();
    std::fs::write(&raw, bytes).unwrap();
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/ge2e_reference.py");
    let out = Command::new(numpy_python())
        .arg(script)
        .arg(ge2e_weights())
        .arg(&raw)
        .arg(mode)
        .output()
        .expect("numpy reference");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

fn decode(path: &Path) -> Vec<f32> {
    vttiro_media::decode(path, &Default::default())
        .expect("decode")
        .samples
}

#[test]
fn the_rust_encoder_matches_an_independent_numpy_forward_pass() {
    let jfk = decode(&vttiro_fixtures::jfk_wav());
    let sample = decode(&vttiro_fixtures::pyannote_sample().wav);
    let len = PARTIAL_FRAMES * HOP;
    // Three windows: wideband read speech, and both voices of the telephone call.
    let windows: Vec<&[f32]> = vec![
        &jfk[16_000..16_000 + len],
        &sample[110_000..110_000 + len],
        &sample[240_000..240_000 + len],
    ];
    let all: Vec<f32> = windows.concat();
    let reference = numpy_reference(&all, &PARTIAL_FRAMES.to_string());

    let encoder = Ge2eEncoder::load(ge2e_weights(), 2).unwrap();
    let front = MelFrontEnd::new();
    let mels: Vec<f32> = windows
        .iter()
        .flat_map(|w| front.frames(w, 0, PARTIAL_FRAMES, 1.0))
        .collect();
    let ours = encoder.embed_mels(&mels, PARTIAL_FRAMES);
    assert_eq!(ours.len(), 3);
    let mut worst = 0.0f64;
    for (a, b) in ours.iter().zip(&reference) {
        for (x, y) in a.iter().zip(b) {
            worst = worst.max((*x as f64 - y).abs());
        }
    }
    eprintln!("largest difference from the float64 NumPy pass: {worst:e}");
    // f32 arithmetic over 160 recurrent steps against float64: differences of a few 1e-6
    // are expected; a wrong gate order or bias would be off by 1e-1.
    assert!(worst < 1e-4, "{worst}");
    // The two telephone voices are further apart than either is from itself later on.
    let cos = |a: &[f32], b: &[f32]| a.iter().zip(b).map(|(x, y)| x * y).sum::<f32>();
    assert!(cos(&ours[1], &ours[2]) < 0.95);
}

/// Resemblyzer's partial-utterance scheme on a 7.3-s stretch of real speech (eight
/// partials; a ninth would cover only 71% and is dropped) against the NumPy rendering of
/// `embed_utterance`.
#[test]
fn utterances_are_embedded_with_resemblyzers_partial_scheme() {
    let jfk = decode(&vttiro_fixtures::jfk_wav());
    let utterance = &jfk[8_000..8_000 + 116_800];
    let reference = numpy_reference(utterance, "utterance");
    let mut encoder = Ge2eEncoder::load(ge2e_weights(), 2).unwrap();
    assert_eq!(
        vttiro_diarize::ge2e::partial_starts(utterance.len()).len(),
        8
    );
    // Through the trait: a window longer than one partial takes the same path.
    let ours = encoder.embed(&[utterance]).unwrap().remove(0);
    let worst = ours
        .iter()
        .zip(&reference[0])
        .map(|(x, y)| (*x as f64 - y).abs())
        .fold(0.0, f64::max);
    eprintln!("utterance: largest difference from NumPy {worst:e}");
    assert!(worst < 1e-4, "{worst}");
}

#[test]
fn count_overrides_and_silence_are_honoured() {
    let sample = vttiro_fixtures::pyannote_sample();
    let samples = decode(&sample.wav);
    let speech = vttiro_vad::detect_speech(&samples, &Default::default());
    let mut encoder = Ge2eEncoder::load(ge2e_weights(), 2).unwrap();
    let run = |encoder: &mut Ge2eEncoder, count: SpeakerCount| {
        let options = DiarizeOptions {
            count,
            ..Default::default()
        };
        diarize(&samples, &speech, encoder, &options, &mut |_| {}).unwrap()
    };
    let auto = run(&mut encoder, SpeakerCount::default());
    assert_eq!(auto.speakers, 2);
    let mut previous_end = 0;
    for turn in &auto.turns {
        assert!(
            turn.start_ms >= previous_end && turn.end_ms > turn.start_ms,
            "{turn:?}"
        );
        previous_end = turn.end_ms;
    }
    let three = run(
        &mut encoder,
        SpeakerCount {
            exact: Some(3),
            ..Default::default()
        },
    );
    assert_eq!(three.speakers, 3);
    let one = run(
        &mut encoder,
        SpeakerCount {
            exact: None,
            min: 1,
            max: 1,
        },
    );
    assert_eq!(one.speakers, 1);
    let silence = vec![0.0f32; 16_000 * 5];
    let nothing = diarize(
        &silence,
        &[],
        &mut encoder,
        &Default::default(),
        &mut |_| {},
    )
    .unwrap();
    assert!(nothing.turns.is_empty());
}
