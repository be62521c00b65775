//! Fixture generation and signal measurements shared by the integration tests. Every fixture is
//! synthesised here and encoded with the real `ffmpeg` binary into a per-test temp dir.
#![allow(dead_code)] // each test binary uses a different subset

use std::f64::consts::PI;
use std::path::{Path, PathBuf};
use std::process::Command;

pub const SOURCE_RATE: u32 = 48_000;
pub const SOURCE_SECONDS: f64 = 6.0;
/// Where the speech-like bursts start in the source, in seconds.
pub const BURST_STARTS: [f64; 3] = [1.0, 2.35, 4.12];
const BURST_LENGTHS: [f64; 3] = [0.45, 0.6, 0.38];

/// A vowel-like harmonic complex (f0 around 120 Hz, formants near 700/1220/2600 Hz) with a
/// syllabic 4 Hz envelope and a 3 ms attack, so onsets are sharp enough to time.
fn voiced(t: f64) -> f64 {
    let f0 = 120.0 + 6.0 * (2.0 * PI * 5.0 * t).sin();
    let formants = [
        (700.0, 130.0, 1.0),
        (1220.0, 150.0, 0.6),
        (2600.0, 250.0, 0.3),
    ];
    let mut sum = 0.0;
    for k in 1..=30 {
        let f = f0 * k as f64;
        if f > 4000.0 {
            break;
        }
        let gain: f64 = formants
            .iter()
            .map(|&(centre, width, level)| level / (1.0 + ((f - centre) / width).powi(2)))
            .sum();
        sum += gain * (2.0 * PI * f * t).sin();
    }
    sum
}

/// Stereo interleaved source at [`SOURCE_RATE`]: silence with three speech-like bursts plus a
/// faint noise floor, the right channel slightly quieter than the left.
pub fn speech_like_stereo() -> Vec<f32> {
    let frames = (SOURCE_SECONDS * f64::from(SOURCE_RATE)) as usize;
    let mut noise_state = 0x2545_F491u32;
    let mut out = Vec::with_capacity(frames * 2);
    for i in 0..frames {
        let t = i as f64 / f64::from(SOURCE_RATE);
        let mut s = 0.0;
        for (start, len) in BURST_STARTS.iter().zip(BURST_LENGTHS) {
            let local = t - start;
            if (0.0..len).contains(&local) {
                let attack = (local / 0.003).min(1.0);
                let release = ((len - local) / 0.01).min(1.0);
                let syllable = 0.75 + 0.25 * (2.0 * PI * 4.0 * local).cos();
                s += 0.22 * attack * release * syllable * voiced(t);
            }
        }
        noise_state ^= noise_state << 13;
        noise_state ^= noise_state >> 17;
        noise_state ^= noise_state << 5;
        let noise = (f64::from(noise_state) / f64::from(u32::MAX) - 0.5) * 0.0006;
        out.push((s + noise) as f32);
        out.push((0.9 * s + noise) as f32);
    }
    out
}

/// Mono tone bursts at `freq` Hz at the same times as the speech-like source, to tell tracks
/// apart by frequency.
pub fn tone_bursts_mono(freq: f64) -> Vec<f32> {
    let frames = (SOURCE_SECONDS * f64::from(SOURCE_RATE)) as usize;
    (0..frames)
        .map(|i| {
            let t = i as f64 / f64::from(SOURCE_RATE);
            let on = BURST_STARTS
                .iter()
                .zip(BURST_LENGTHS)
                .any(|(start, len)| (0.0..len).contains(&(t - start)));
            if on {
                (0.5 * (2.0 * PI * freq * t).sin()) as f32
            } else {
                0.0
            }
        })
        .collect()
}

/// Writes 16-bit PCM WAV.
pub fn write_wav(path: &Path, rate: u32, channels: u16, interleaved: &[f32]) {
    let data_len = (interleaved.len() * 2) as u32;
    let mut bytes = Vec::with_capacity(44 + data_len as usize);
    bytes.extend_from_slice(b"RIFF");
    bytes.extend_from_slice(&(36 + data_len).to_le_bytes());
    bytes.extend_from_slice(b"WAVEfmt ");
    bytes.extend_from_slice(&16u32.to_le_bytes());
    bytes.extend_from_slice(&1u16.to_le_bytes());
    bytes.extend_from_slice(&channels.to_le_bytes());
    bytes.extend_from_slice(&rate.to_le_bytes());
    bytes.extend_from_slice(&(rate * u32::from(channels) * 2).to_le_bytes());
    bytes.extend_from_slice(&(channels * 2).to_le_bytes());
    bytes.extend_from_slice(&16u16.to_le_bytes());
    bytes.extend_from_slice(b"data");
    bytes.extend_from_slice(&data_len.to_le_bytes());
    for s in interleaved {
        let v = (s.clamp(-1.0, 1.0) * 32767.0).round() as i16;
        bytes.extend_from_slice(&v.to_le_bytes());
    }
    std::fs::write(path, bytes).unwrap();
}

/// The speech-like source written as `source.wav` in `dir`.
pub fn source_wav(dir: &Path) -> PathBuf {
    let path = dir.join("source.wav");
    write_wav(&path, SOURCE_RATE, 2, &speech_like_stereo());
    path
}

/// Runs ffmpeg (quiet, overwriting, no stdin) with `args` and panics with its stderr on failure.
pub fn ffmpeg(args: &[&str]) {
    ffmpeg_with(Path::new("ffmpeg"), args);
}

pub fn ffmpeg_with(binary: &Path, args: &[&str]) {
    let output = Command::new(binary)
        .args(["-v", "error", "-y", "-nostdin"])
        .args(args)
        .output()
        .expect("ffmpeg must be installed to generate fixtures");
    assert!(
        output.status.success(),
        "ffmpeg {args:?} failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
}

/// Encodes `source` into `dir/name` with the codec/container arguments in `args`.
pub fn encode(dir: &Path, source: &Path, name: &str, args: &[&str]) -> PathBuf {
    let out = dir.join(name);
    let mut full = vec!["-i", source.to_str().unwrap()];
    full.extend_from_slice(args);
    full.push(out.to_str().unwrap());
    ffmpeg(&full);
    out
}

/// Start times (s) of loud passages: the first sample above 30 % of the peak after at least
/// 100 ms below it. 30 % sits well above codec pre-echo and the noise floor.
pub fn onsets(samples: &[f32], rate: u32) -> Vec<f64> {
    let peak = samples.iter().fold(0.0f32, |m, s| m.max(s.abs()));
    let threshold = 0.3 * peak;
    let quiet_gap = (0.1 * f64::from(rate)) as usize;
    let mut found = Vec::new();
    let mut last_loud: Option<usize> = None;
    for (i, s) in samples.iter().enumerate() {
        if s.abs() > threshold {
            if last_loud.is_none_or(|l| i - l > quiet_gap) {
                found.push(i as f64 / f64::from(rate));
            }
            last_loud = Some(i);
        }
    }
    found
}

/// Onsets of the source, measured on its mono mix exactly as decoded audio is measured.
pub fn source_onsets() -> Vec<f64> {
    let stereo = speech_like_stereo();
    let mono: Vec<f32> = stereo.chunks(2).map(|f| (f[0] + f[1]) / 2.0).collect();
    onsets(&mono, SOURCE_RATE)
}

/// Power of `freq` in `samples` (Goertzel).
pub fn tone_power(samples: &[f32], freq: f64, rate: u32) -> f64 {
    let w = 2.0 * PI * freq / f64::from(rate);
    let coeff = 2.0 * w.cos();
    let (mut s1, mut s2) = (0.0f64, 0.0f64);
    for &x in samples {
        let s0 = f64::from(x) + coeff * s1 - s2;
        s2 = s1;
        s1 = s0;
    }
    (s1 * s1 + s2 * s2 - coeff * s1 * s2) / samples.len().max(1) as f64
}

/// Absolute path of the `ffmpeg` on PATH, for tests that later hide PATH.
pub fn ffmpeg_path() -> PathBuf {
    let path = std::env::var_os("PATH").expect("PATH is set");
    std::env::split_paths(&path)
        .map(|dir| dir.join("ffmpeg"))
        .find(|p| p.is_file())
        .expect("ffmpeg must be installed to generate fixtures")
}
