//! Our Kaldi filterbank against an independent implementation on real speech:
//! `kaldi-native-fbank` (PyPI, pinned, in a venv under `~/.cache/vttiro`), the C++ port of
//! Kaldi's `compute-fbank-feats` that sherpa and k2 use. Every frame and bin must agree,
//! with both projects' settings (WeSpeaker: Hamming window, 16-bit scale; 3D-Speaker:
//! Povey window, float scale), before and after mean normalisation.

use std::path::{Path, PathBuf};
use std::process::Command;

use vttiro_diarize::fbank::{Fbank, FbankOptions, WindowType};

const PACKAGES: &[&str] = &["kaldi-native-fbank==1.22.4", "numpy==2.4.6"];

/// Largest difference allowed in any log-mel value (natural log of mel power; values run
/// from the floor, ln(f32::EPSILON) = -15.9, to about 25). kaldi-native-fbank computes in
/// f32 and we in f64, so bins far below their frame's loudest one (low bins, which
/// pre-emphasis cuts, and high bins of quiet frames) carry its FFT rounding: measured on
/// JFK, the largest difference is 2.7e-4 with WeSpeaker's settings and 3.0e-3 in the other
/// cases (float-scale input and the edge-case signal). 1e-2 allows other CPUs' rounding;
/// any real settings mismatch moves some value by 0.07 or more (a 1-Hz change of the upper
/// band edge) and usually by several units (window, pre-emphasis, DC removal).
const TOLERANCE: f32 = 1e-2;

/// Largest mean difference over all values: catches a mismatch too small to show in one
/// value. Measured: 5e-6 to 1e-5; the upper edge moved by 1 Hz gives 2e-3, pre-emphasis
/// 0.96 instead of 0.97 gives 3e-2.
const MEAN_TOLERANCE: f64 = 1e-4;

/// The venv with kaldi-native-fbank (see [`vttiro_fixtures::python_venv`]).
fn knf_python() -> PathBuf {
    vttiro_fixtures::python_venv("kaldi-fbank-venv", PACKAGES)
}

/// Reads raw f32 samples, runs kaldi-native-fbank with the given window and scale, and
/// writes the frames and their mean-normalised copy as raw f32.
const KNF_SCRIPT: &str = r#"
import sys
import numpy as np
import kaldi_native_fbank as knf

samples_path, window, scale, raw_out, cmn_out = sys.argv[1:6]
x = np.fromfile(samples_path, dtype="<f4").astype(np.float64) * float(scale)
opts = knf.FbankOptions()
opts.frame_opts.samp_freq = 16000
opts.frame_opts.frame_length_ms = 25
opts.frame_opts.frame_shift_ms = 10
opts.frame_opts.dither = 0.0
opts.frame_opts.preemph_coeff = 0.97
opts.frame_opts.remove_dc_offset = True
opts.frame_opts.window_type = window
opts.frame_opts.round_to_power_of_two = True
opts.frame_opts.snip_edges = True
opts.mel_opts.num_bins = 80
opts.mel_opts.low_freq = 20
opts.mel_opts.high_freq = 0
opts.use_energy = False
opts.use_log_fbank = True
opts.use_power = True
fbank = knf.OnlineFbank(opts)
fbank.accept_waveform(16000, x.tolist())
fbank.input_finished()
feats = np.array([fbank.get_frame(i) for i in range(fbank.num_frames_ready)], dtype=np.float64)
feats.astype("<f4").tofile(raw_out)
(feats - feats.mean(axis=0)).astype("<f4").tofile(cmn_out)
"#;

fn write_f32(path: &Path, values: &[f32]) {
    let bytes: Vec<u8> = values.iter().flat_map(|v| v.to_le_bytes()).collect();
    std::fs::write(path, bytes).unwrap();
}

fn read_f32(path: &Path) -> Vec<f32> {
    std::fs::read(path)
        .unwrap()
        .chunks_exact(4)
        .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
        .collect()
}

/// kaldi-native-fbank's (log-mel, mean-normalised log-mel) for `samples`.
fn knf_features(python: &Path, samples: &[f32], options: &FbankOptions) -> (Vec<f32>, Vec<f32>) {
    let dir = tempfile::tempdir().unwrap();
    let (input, raw, cmn) = (
        dir.path().join("samples.f32"),
        dir.path().join("raw.f32"),
        dir.path().join("cmn.f32"),
    );
    write_f32(&input, samples);
    let window = match options.window {
        WindowType::Hamming => "hamming",
        WindowType::Hanning => "hanning",
        WindowType::Povey => "povey",
        WindowType::Rectangular => "rectangular",
    };
    let output = Command::new(python)
        .arg("-c")
        .arg(KNF_SCRIPT)
        .arg(&input)
        .arg(window)
        .arg(options.sample_scale.to_string())
        .arg(&raw)
        .arg(&cmn)
        .output()
        .expect("run kaldi-native-fbank");
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    (read_f32(&raw), read_f32(&cmn))
}

fn mean_difference(ours: &[f32], theirs: &[f32]) -> f64 {
    let total: f64 = ours
        .iter()
        .zip(theirs)
        .map(|(a, b)| (a - b).abs() as f64)
        .sum();
    total / ours.len().max(1) as f64
}

/// The largest difference and where it is (frame, bin).
fn max_difference(ours: &[f32], theirs: &[f32], bins: usize) -> (f32, usize, usize) {
    let (mut worst, mut at) = (0.0f32, 0);
    for (i, (a, b)) in ours.iter().zip(theirs).enumerate() {
        let d = (a - b).abs();
        if d > worst || d.is_nan() {
            worst = d;
            at = i;
        }
    }
    (worst, at / bins, at % bins)
}

fn jfk_samples() -> Vec<f32> {
    vttiro_media::decode(&vttiro_fixtures::jfk_wav(), &Default::default())
        .expect("decode jfk.wav")
        .samples
}

fn check(label: &str, samples: &[f32], options: FbankOptions) {
    let python = knf_python();
    let bins = options.num_bins;
    let fbank = Fbank::new(options.clone()).unwrap();
    let (theirs_raw, theirs_cmn) = knf_features(&python, samples, &options);
    let ours_raw = fbank.log_mel(samples);
    let ours_cmn = fbank.features(samples);
    let frames = options.frame_count(samples.len());
    assert!(frames > 100, "{label}: only {frames} frames");
    assert_eq!(
        theirs_raw.len(),
        frames * bins,
        "{label}: kaldi-native-fbank frame count"
    );
    assert_eq!(ours_raw.len(), theirs_raw.len(), "{label}: frame count");
    assert_eq!(ours_cmn.len(), theirs_cmn.len(), "{label}: frame count");
    // The comparison would be weak on a signal that mostly sits on the log floor.
    let floor = f32::EPSILON.ln();
    let floored = ours_raw.iter().filter(|&&x| x <= floor + 1e-3).count();
    assert!(
        floored * 10 < ours_raw.len(),
        "{label}: {floored} values on the floor"
    );
    let (raw_diff, f, b) = max_difference(&ours_raw, &theirs_raw, bins);
    eprintln!(
        "{label}: log-mel max |ours - kaldi-native-fbank| = {raw_diff:.3e} at frame {f} bin {b} \
         (ours {}, theirs {})",
        ours_raw[f * bins + b],
        theirs_raw[f * bins + b]
    );
    assert!(
        raw_diff <= TOLERANCE,
        "{label}: log-mel differs by {raw_diff} at frame {f} bin {b}"
    );
    let mean = mean_difference(&ours_raw, &theirs_raw);
    eprintln!("{label}: log-mel mean |difference| = {mean:.3e}");
    assert!(
        mean <= MEAN_TOLERANCE,
        "{label}: log-mel differs by {mean} on average"
    );
    let (cmn_diff, f, b) = max_difference(&ours_cmn, &theirs_cmn, bins);
    eprintln!("{label}: mean-normalised max difference = {cmn_diff:.3e} at frame {f} bin {b}");
    assert!(
        cmn_diff <= TOLERANCE,
        "{label}: mean-normalised features differ by {cmn_diff} at frame {f} bin {b}"
    );
}

#[test]
fn wespeaker_settings_match_kaldi_native_fbank_on_speech() {
    check("wespeaker/jfk", &jfk_samples(), FbankOptions::wespeaker());
}

#[test]
fn three_d_speaker_settings_match_kaldi_native_fbank_on_speech() {
    check(
        "3d-speaker/jfk",
        &jfk_samples(),
        FbankOptions::three_d_speaker(),
    );
}

/// Digital silence (the log floor), a DC offset (removed per frame) and a length that
/// leaves a partial frame at the end (dropped: `snip_edges`).
#[test]
fn silence_offset_and_ragged_end_match_kaldi_native_fbank() {
    let jfk = jfk_samples();
    // JFK's first 699 samples are digital zeros; offset, they would make frames of one
    // constant value, where the exact result is the floor and f32 rounding (theirs) leaves
    // noise above it: skip them, and keep the silence at exactly zero.
    let mut samples = vec![0.0f32; 3_200];
    samples.extend(jfk[800..800 + 5 * 16_000 + 77].iter().map(|x| x + 0.01));
    check(
        "3d-speaker/edges",
        &samples,
        FbankOptions::three_d_speaker(),
    );
    check(
        "hanning/edges",
        &samples,
        FbankOptions {
            window: WindowType::Hanning,
            ..FbankOptions::wespeaker()
        },
    );
}

/// The comparison must be able to fail: settings a little off are real differences.
#[test]
fn near_miss_settings_are_detected() {
    let python = knf_python();
    let jfk = jfk_samples();
    let samples = &jfk[..4 * 16_000];
    let (theirs, _) = knf_features(&python, samples, &FbankOptions::wespeaker());
    let near_misses = [
        FbankOptions {
            window: WindowType::Povey,
            ..FbankOptions::wespeaker()
        },
        FbankOptions {
            preemphasis: 0.96,
            ..FbankOptions::wespeaker()
        },
        FbankOptions {
            high_freq: 7_999.0,
            ..FbankOptions::wespeaker()
        },
        FbankOptions {
            remove_dc_offset: false,
            ..FbankOptions::wespeaker()
        },
    ];
    for options in near_misses {
        let ours = Fbank::new(options.clone()).unwrap().log_mel(samples);
        let (max, _, _) = max_difference(&ours, &theirs, 80);
        let mean = mean_difference(&ours, &theirs);
        assert!(
            max > 3.0 * TOLERANCE || mean > 3.0 * MEAN_TOLERANCE,
            "{options:?} passes for WeSpeaker's settings: max {max}, mean {mean}"
        );
    }
}
