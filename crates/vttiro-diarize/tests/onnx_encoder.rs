//! The ONNX encoder on a real ONNX file: `scripts/make_test_speaker_onnx.py` writes, with
//! the `onnx` package (PyPI, pinned, in a venv under `~/.cache/vttiro`), a small model with
//! WeSpeaker's signature (`feats` [B, T, 80] with symbolic B and T → `embs` [B, 256]) that
//! computes frame-wise ReLU units, their mean over time and a linear map, from seeded
//! weights it also writes out. The same computation done here from our filterbank must
//! give what tract returns, for windows of many lengths in one call.
#![cfg(feature = "onnx")]

use std::path::{Path, PathBuf};
use std::process::Command;

use vttiro_diarize::fbank::{Fbank, FbankOptions};
use vttiro_diarize::onnx::OnnxEncoder;
use vttiro_diarize::{l2_normalise, DiarizeError, SpeakerEncoder};

const PACKAGES: &[&str] = &[
    "onnx==1.23.2",
    "numpy==2.4.6",
    "protobuf==7.36.2",
    "ml_dtypes==0.6.0",
    "typing_extensions==4.16.0",
];

/// Largest difference allowed per component of the unit-length embeddings. tract sums
/// the frame means and the 64-term products in another order than the loops below (and
/// with FMA), all in f32: measured differences stay near 1e-7. 1e-5 keeps a wide margin
/// while any real slip (a transposed weight, a lost frame, a batch row mixed up) moves
/// components by 1e-2 and more.
const TOLERANCE: f32 = 1e-5;

/// The venv with `onnx` (see [`vttiro_fixtures::python_venv`]).
fn onnx_python() -> PathBuf {
    vttiro_fixtures::python_venv("onnx-venv", PACKAGES)
}

struct Weights {
    bins: usize,
    hidden: usize,
    dim: usize,
    w1: Vec<f32>,
    b1: Vec<f32>,
    w2: Vec<f32>,
    b2: Vec<f32>,
}

/// Writes the test model and its weights into `dir`; `batch` fixes the batch dimension,
/// which is otherwise symbolic.
fn make_model(dir: &Path, batch: Option<usize>) -> (PathBuf, Weights) {
    let script =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../../scripts/make_test_speaker_onnx.py");
    let stem = batch.map_or("speaker".to_string(), |b| format!("speaker-b{b}"));
    let (model, weights) = (
        dir.join(format!("{stem}.onnx")),
        dir.join(format!("{stem}.json")),
    );
    let output = Command::new(onnx_python())
        .arg(script)
        .arg(&model)
        .arg(&weights)
        .args(batch.map(|b| b.to_string()))
        .output()
        .expect("run make_test_speaker_onnx.py");
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let json: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&weights).unwrap()).unwrap();
    let floats = |key: &str| -> Vec<f32> {
        json[key]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_f64().unwrap() as f32)
            .collect()
    };
    let size = |key: &str| json[key].as_u64().unwrap() as usize;
    let w = Weights {
        bins: size("bins"),
        hidden: size("hidden"),
        dim: size("dim"),
        w1: floats("w1"),
        b1: floats("b1"),
        w2: floats("w2"),
        b2: floats("b2"),
    };
    assert_eq!(w.w1.len(), w.bins * w.hidden);
    assert_eq!(w.w2.len(), w.hidden * w.dim);
    (model, w)
}

/// What the test model computes, from our own features: mean over frames of
/// ReLU(x·W1 + b1), then ·W2 + b2, then unit length.
fn expected(w: &Weights, feats: &[f32]) -> Vec<f32> {
    let frames = feats.len() / w.bins;
    let mut pooled = vec![0.0f64; w.hidden];
    for x in feats.chunks_exact(w.bins) {
        for (j, p) in pooled.iter_mut().enumerate() {
            let z: f64 = w.b1[j] as f64
                + (0..w.bins)
                    .map(|i| x[i] as f64 * w.w1[i * w.hidden + j] as f64)
                    .sum::<f64>();
            *p += z.max(0.0);
        }
    }
    pooled.iter_mut().for_each(|p| *p /= frames as f64);
    let mut e: Vec<f32> = (0..w.dim)
        .map(|k| {
            (w.b2[k] as f64
                + (0..w.hidden)
                    .map(|j| pooled[j] * w.w2[j * w.dim + k] as f64)
                    .sum::<f64>()) as f32
        })
        .collect();
    l2_normalise(&mut e);
    e
}

fn max_abs_diff(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len());
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f32::max)
}

fn jfk_samples() -> Vec<f32> {
    vttiro_media::decode(&vttiro_fixtures::jfk_wav(), &Default::default())
        .expect("decode jfk.wav")
        .samples
}

#[test]
fn embeddings_match_the_same_computation_in_rust() {
    let dir = tempfile::tempdir().unwrap();
    let (model, weights) = make_model(dir.path(), None);
    let mut encoder = OnnxEncoder::load(&model, FbankOptions::wespeaker()).unwrap();
    assert_eq!(encoder.dimension(), 256);
    assert_eq!(encoder.name(), "onnx:speaker");

    let jfk = jfk_samples();
    // 40 windows of 1.5 s (more than one model call's batch) interleaved with windows of
    // other lengths, down to a single 25-ms frame and up to 4 s.
    let mut windows: Vec<&[f32]> = Vec::new();
    let odd = [400, 560, 8_000, 12_345, 24_000 + 1, 36_000, 64_000];
    for k in 0..40 {
        let start = k * 3_200;
        windows.push(&jfk[start..start + 24_000]);
        let start = 1_000 + k * 2_000;
        windows.push(&jfk[start..start + odd[k % 6]]);
    }
    windows.push(&jfk[..odd[6]]);
    let got = encoder.embed(&windows).unwrap();
    assert_eq!(got.len(), windows.len());

    let fbank = Fbank::new(FbankOptions::wespeaker()).unwrap();
    let mut worst = 0.0f32;
    for (i, (window, embedding)) in windows.iter().zip(&got).enumerate() {
        let want = expected(&weights, &fbank.features(window));
        let diff = max_abs_diff(embedding, &want);
        worst = worst.max(diff);
        assert!(
            diff <= TOLERANCE,
            "window {i} ({} samples) differs by {diff}",
            window.len()
        );
        let norm = embedding.iter().map(|x| x * x).sum::<f32>().sqrt();
        assert!((norm - 1.0).abs() < 1e-5, "window {i} norm {norm}");
    }
    eprintln!(
        "max |tract - Rust reference| over {} windows: {worst:.3e}",
        windows.len()
    );

    // The check above would pass trivially if the model ignored the audio.
    let cosine = |a: &[f32], b: &[f32]| a.iter().zip(b).map(|(x, y)| x * y).sum::<f32>();
    let spread = got
        .iter()
        .skip(1)
        .map(|e| 1.0 - cosine(e, &got[0]))
        .fold(0.0f32, f32::max);
    assert!(
        spread > 1e-2,
        "embeddings hardly depend on the audio: {spread}"
    );

    // A window embeds the same alone as in a batch of others.
    let alone = encoder.embed(&[windows[5]]).unwrap();
    assert!(max_abs_diff(&alone[0], &got[5]) <= 1e-6);
}

#[test]
fn bad_files_are_refused_as_invalid_models() {
    let dir = tempfile::tempdir().unwrap();
    let (model, _) = make_model(dir.path(), None);
    let bytes = std::fs::read(&model).unwrap();
    let cases: [(&str, Vec<u8>); 4] = [
        ("truncated.onnx", bytes[..bytes.len() / 2].to_vec()),
        (
            "garbage.onnx",
            (0..4096u32)
                .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
                .collect(),
        ),
        ("text.onnx", b"<html>404 Not Found</html>\n".to_vec()),
        ("empty.onnx", Vec::new()),
    ];
    for (name, content) in cases {
        let path = dir.path().join(name);
        std::fs::write(&path, content).unwrap();
        match OnnxEncoder::load(&path, FbankOptions::wespeaker()) {
            Err(e @ DiarizeError::InvalidModel { .. }) => {
                let message = e.to_string();
                assert!(message.contains(name), "{message}");
                assert!(!message.contains('\n'), "{message}");
                eprintln!("{message}");
            }
            other => panic!("{name}: {other:?}"),
        }
    }

    // A sound model for other features (40 mel bins) is refused too, naming why.
    let err = OnnxEncoder::load(
        &model,
        FbankOptions {
            num_bins: 40,
            ..FbankOptions::wespeaker()
        },
    )
    .unwrap_err();
    assert!(
        matches!(&err, DiarizeError::InvalidModel { reason, .. } if reason.contains("80")),
        "{err}"
    );

    let missing = OnnxEncoder::load(&dir.path().join("absent.onnx"), FbankOptions::wespeaker());
    assert!(
        matches!(missing, Err(DiarizeError::Io { .. })),
        "{missing:?}"
    );
}

#[test]
fn a_window_shorter_than_one_frame_is_an_error_not_a_panic() {
    let dir = tempfile::tempdir().unwrap();
    let (model, _) = make_model(dir.path(), None);
    let mut encoder = OnnxEncoder::load(&model, FbankOptions::three_d_speaker()).unwrap();
    let short = vec![0.1f32; 399];
    let err = encoder.embed(&[&short]).unwrap_err();
    assert!(matches!(err, DiarizeError::Inference(_)), "{err}");
    assert!(encoder.embed(&[]).unwrap().is_empty());
}

/// Exports with a fixed batch size get exactly that many rows per call, whatever the
/// number of windows, and give the same embeddings as the open-batch export.
#[test]
fn fixed_batch_exports_give_the_same_embeddings() {
    let dir = tempfile::tempdir().unwrap();
    let (open, _) = make_model(dir.path(), None);
    let jfk = jfk_samples();
    let windows: Vec<&[f32]> = (0..7)
        .map(|k| &jfk[k * 9_000..k * 9_000 + [24_000, 24_000, 16_000][k % 3]])
        .collect();
    let want = OnnxEncoder::load(&open, FbankOptions::wespeaker())
        .unwrap()
        .embed(&windows)
        .unwrap();
    for batch in [1, 3] {
        let (model, _) = make_model(dir.path(), Some(batch));
        let mut encoder = OnnxEncoder::load(&model, FbankOptions::wespeaker()).unwrap();
        let got = encoder.embed(&windows).unwrap();
        for (g, w) in got.iter().zip(&want) {
            assert!(max_abs_diff(g, w) <= 1e-6, "batch {batch}");
        }
    }
}
