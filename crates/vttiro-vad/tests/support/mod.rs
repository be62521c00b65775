//! Shared by the integration tests: real speech from vttiro-fixtures, synthetic
//! non-speech generated here (deterministic seeds) or by sox, and an independent,
//! deliberately simple notion of "voiced frame" to score detections against.
#![allow(dead_code)]

use std::path::Path;
use std::process::Command;

use vttiro_core::SpeechRegion;

pub const RATE: usize = 16_000;

pub fn read_wav(path: &Path) -> Vec<f32> {
    let mut reader =
        hound::WavReader::open(path).unwrap_or_else(|e| panic!("open {}: {e}", path.display()));
    let spec = reader.spec();
    assert_eq!(spec.sample_rate as usize, RATE, "{}", path.display());
    assert_eq!(spec.channels, 1, "{}", path.display());
    assert_eq!(spec.bits_per_sample, 16, "{}", path.display());
    reader
        .samples::<i16>()
        .map(|s| f32::from(s.expect("wav sample")) / 32_768.0)
        .collect()
}

/// The real clips: JFK (whisper.cpp sample) and the five LibriVox utterances
/// (pocketsphinx test data), as (name, samples).
pub fn real_clips() -> Vec<(String, Vec<f32>)> {
    let mut clips = vec![("jfk".to_string(), read_wav(&vttiro_fixtures::jfk_wav()))];
    for clip in vttiro_fixtures::librivox() {
        let name = clip.wav.file_stem().unwrap().to_string_lossy().into_owned();
        clips.push((name, read_wav(&clip.wav)));
    }
    clips
}

/// xorshift64*: fixed seeds make every run see the same noise.
pub struct Noise(u64);

impl Noise {
    pub fn new(seed: u64) -> Self {
        Self(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }

    fn uniform(&mut self) -> f64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        let bits = self.0.wrapping_mul(0x2545_F491_4F6C_DD1D) >> 11;
        (bits as f64 + 0.5) / (1u64 << 53) as f64
    }

    /// Standard normal by Box-Muller.
    pub fn gaussian(&mut self) -> f64 {
        let (u, v) = (self.uniform(), self.uniform());
        (-2.0 * u.ln()).sqrt() * (2.0 * std::f64::consts::PI * v).cos()
    }
}

pub fn dbfs(db: f64) -> f64 {
    10f64.powf(db / 20.0)
}

pub fn rms(x: &[f32]) -> f64 {
    (x.iter().map(|&v| f64::from(v) * f64::from(v)).sum::<f64>() / x.len().max(1) as f64).sqrt()
}

/// Scales to an RMS level in dBFS.
pub fn at_level(x: Vec<f64>, db: f64) -> Vec<f32> {
    let current = (x.iter().map(|v| v * v).sum::<f64>() / x.len() as f64).sqrt();
    let gain = dbfs(db) / current;
    x.into_iter().map(|v| (v * gain) as f32).collect()
}

pub fn white_noise(len: usize, rms_dbfs: f64, seed: u64) -> Vec<f32> {
    let mut noise = Noise::new(seed);
    at_level((0..len).map(|_| noise.gaussian()).collect(), rms_dbfs)
}

/// Pink (1/f) noise: white noise through a sum of one-pole low-passes spaced across the
/// audio band (Kellet's economy filter), which stays within about 0.5 dB of -3 dB/octave.
pub fn pink_noise(len: usize, rms_dbfs: f64, seed: u64) -> Vec<f32> {
    let mut noise = Noise::new(seed);
    let mut state = [0.0f64; 3];
    let out = (0..len)
        .map(|_| {
            let white = noise.gaussian();
            state[0] = 0.99765 * state[0] + white * 0.099_046;
            state[1] = 0.96300 * state[1] + white * 0.296_516_4;
            state[2] = 0.57000 * state[2] + white * 1.052_691_3;
            state[0] + state[1] + state[2] + white * 0.1848
        })
        .collect();
    at_level(out, rms_dbfs)
}

/// Brown (1/f^2) noise: integrated white noise, with a slight leak so it cannot drift off.
pub fn brown_noise(len: usize, rms_dbfs: f64, seed: u64) -> Vec<f32> {
    let mut noise = Noise::new(seed);
    let mut level = 0.0f64;
    let out = (0..len)
        .map(|_| {
            level = 0.998 * level + noise.gaussian();
            level
        })
        .collect();
    at_level(out, rms_dbfs)
}

/// A sine at `peak_dbfs` (peak level, as test tones are specified).
pub fn tone(len: usize, freq: f64, peak_dbfs: f64) -> Vec<f32> {
    let amplitude = dbfs(peak_dbfs);
    (0..len)
        .map(|n| {
            // Phase from the index modulo one second keeps f64 phase exact for hours.
            let n = (n % RATE) as f64;
            (amplitude * (2.0 * std::f64::consts::PI * freq * n / RATE as f64).sin()) as f32
        })
        .collect()
}

/// Mains hum: 50 Hz with its odd harmonics, as a ground loop produces it.
pub fn hum(len: usize, peak_dbfs: f64) -> Vec<f32> {
    let parts = [(50.0, 0.0), (150.0, -6.0), (250.0, -12.0), (350.0, -18.0)];
    let mut out = vec![0.0f32; len];
    for (freq, relative) in parts {
        for (slot, v) in out.iter_mut().zip(tone(len, freq, peak_dbfs + relative)) {
            *slot += v;
        }
    }
    out
}

/// A held A-major chord of harmonic-rich notes, like a sustained synth pad or organ.
pub fn chord(len: usize, peak_dbfs: f64) -> Vec<f32> {
    let mut out = vec![0.0f32; len];
    for root in [220.0, 277.18, 329.63] {
        for (harmonic, relative) in [(1.0, 0.0), (2.0, -6.0), (3.0, -10.0), (4.0, -14.0)] {
            for (slot, v) in out
                .iter_mut()
                .zip(tone(len, root * harmonic, peak_dbfs + relative))
            {
                *slot += v;
            }
        }
    }
    out
}

/// Noise made by sox, an implementation independent of ours; `kind` is sox's synth type
/// (whitenoise, pinknoise, brownnoise).
pub fn sox_noise(dir: &Path, kind: &str, seconds: u32, gain_db: f64) -> Vec<f32> {
    let path = dir.join(format!("{kind}.wav"));
    let status = Command::new("sox")
        .args(["-n", "-r", "16000", "-b", "16", "-c", "1"])
        .arg(&path)
        .args([
            "synth",
            &seconds.to_string(),
            kind,
            "gain",
            &gain_db.to_string(),
        ])
        .status()
        .expect("sox is installed (Debian package sox)");
    assert!(status.success(), "sox synth {kind} failed");
    read_wav(&path)
}

/// Adds `noise` scaled so the speech-to-noise power ratio over the whole clip is
/// `snr_db`.
pub fn mix_at_snr(speech: &[f32], noise: &[f32], snr_db: f64) -> Vec<f32> {
    let gain = rms(speech) / rms(&noise[..speech.len()]) / dbfs(snr_db);
    speech
        .iter()
        .zip(noise)
        .map(|(&s, &n)| s + (f64::from(n) * gain) as f32)
        .collect()
}

pub fn add(a: &[f32], b: &[f32]) -> Vec<f32> {
    a.iter().zip(b).map(|(x, y)| x + y).collect()
}

/// 10 ms frames (20 ms windows) of a clean recording that are voiced: within 30 dB of
/// the loudest frame and with few zero crossings (vowels and voiced consonants cross
/// zero a few hundred times a second; hiss and fricatives thousands). Returns frame
/// start samples. Independent of the detector: energy and zero crossings only.
pub fn voiced_frames(clean: &[f32]) -> Vec<usize> {
    let frame = 320;
    let hop = 160;
    let starts: Vec<usize> = (0..clean.len().saturating_sub(frame))
        .step_by(hop)
        .collect();
    let energy: Vec<f64> = starts.iter().map(|&s| rms(&clean[s..s + frame])).collect();
    let loudest = energy.iter().copied().fold(0.0, f64::max);
    starts
        .iter()
        .zip(&energy)
        .filter(|&(&s, &e)| {
            let window = &clean[s..s + frame];
            let crossings = window
                .windows(2)
                .filter(|w| (w[0] >= 0.0) != (w[1] >= 0.0))
                .count();
            e >= loudest * dbfs(-30.0) && crossings < frame / 8
        })
        .map(|(&s, _)| s + hop / 2)
        .collect()
}

pub fn covered(regions: &[SpeechRegion], sample: usize) -> bool {
    regions.iter().any(|r| r.start <= sample && sample < r.end)
}

/// Share of `points` inside some region.
pub fn coverage(regions: &[SpeechRegion], points: &[usize]) -> f64 {
    let hit = points.iter().filter(|&&p| covered(regions, p)).count();
    hit as f64 / points.len().max(1) as f64
}

pub fn seconds(regions: &[SpeechRegion]) -> Vec<(f64, f64)> {
    regions
        .iter()
        .map(|r| (r.start as f64 / RATE as f64, r.end as f64 / RATE as f64))
        .collect()
}
