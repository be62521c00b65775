//! Whisper's log-mel front end: 25 ms Hann windows every 10 ms, a Slaney-scale mel
//! filterbank, log10 with an 80 dB dynamic range, then the fixed affine rescale the
//! models were trained with. Any deviation here shows up as word errors, so the
//! constants mirror the published model card, not a tunable.

use std::sync::Arc;

use realfft::{RealFftPlanner, RealToComplex};

pub const N_FFT: usize = 400;
pub const HOP_LENGTH: usize = 160;
/// Frames in one 30-second model window.
pub const WINDOW_FRAMES: usize = 3000;
pub const WINDOW_SAMPLES: usize = WINDOW_FRAMES * HOP_LENGTH;

/// A computed spectrogram, stored mel-major (`[n_mels][frames]`) as CTranslate2 expects.
pub struct LogMel {
    pub n_mels: usize,
    pub frames: usize,
    pub data: Vec<f32>,
}

impl LogMel {
    /// Copies `WINDOW_FRAMES` frames starting at `start`, zero-filled past the end, laid out
    /// as a `[1, n_mels, 3000]` tensor.
    pub fn window(&self, start: usize) -> Vec<f32> {
        let mut out = vec![0.0f32; self.n_mels * WINDOW_FRAMES];
        let available = self.frames.saturating_sub(start).min(WINDOW_FRAMES);
        for m in 0..self.n_mels {
            let src = &self.data[m * self.frames + start..m * self.frames + start + available];
            out[m * WINDOW_FRAMES..m * WINDOW_FRAMES + available].copy_from_slice(src);
        }
        out
    }
}

pub struct MelExtractor {
    n_mels: usize,
    filters: Vec<f32>, // [n_mels][N_FFT/2+1]
    window: Vec<f32>,
    fft: Arc<dyn RealToComplex<f32>>,
}

impl MelExtractor {
    pub fn new(n_mels: usize) -> Self {
        let mut planner = RealFftPlanner::<f32>::new();
        let window = (0..N_FFT)
            .map(|i| {
                // Periodic Hann, as torch.hann_window(periodic=True).
                let x = 2.0 * std::f64::consts::PI * i as f64 / N_FFT as f64;
                (0.5 - 0.5 * x.cos()) as f32
            })
            .collect();
        MelExtractor {
            n_mels,
            filters: slaney_mel_filters(n_mels),
            window,
            fft: planner.plan_fft_forward(N_FFT),
        }
    }

    pub fn n_mels(&self) -> usize {
        self.n_mels
    }

    /// Computes the normalised log-mel spectrogram of `audio` followed by `pad_samples`
    /// zeros (Whisper pads 30 s so the last window sees real silence, not padding values).
    pub fn compute(&self, audio: &[f32], pad_samples: usize) -> LogMel {
        let total = audio.len() + pad_samples;
        let sample = |i: isize| -> f32 {
            // Reflect padding around the signal, as a centred STFT does.
            let n = total as isize;
            let mut j = i;
            if j < 0 {
                j = -j;
            }
            if j >= n {
                j = 2 * (n - 1) - j;
            }
            let j = j.clamp(0, n - 1) as usize;
            if j < audio.len() {
                audio[j]
            } else {
                0.0
            }
        };
        // A centred STFT yields 1 + total/hop frames; Whisper drops the last one.
        let frames = total / HOP_LENGTH;
        let n_bins = N_FFT / 2 + 1;
        let mut data = vec![0.0f32; self.n_mels * frames];
        let mut input = self.fft.make_input_vec();
        let mut spectrum = self.fft.make_output_vec();
        let mut scratch = self.fft.make_scratch_vec();
        let mut power = vec![0.0f32; n_bins];
        let half = (N_FFT / 2) as isize;
        for f in 0..frames {
            let centre = (f * HOP_LENGTH) as isize;
            for (k, slot) in input.iter_mut().enumerate() {
                *slot = sample(centre - half + k as isize) * self.window[k];
            }
            self.fft
                .process_with_scratch(&mut input, &mut spectrum, &mut scratch)
                .expect("fft sizes are fixed at construction");
            for (p, c) in power.iter_mut().zip(spectrum.iter()) {
                *p = c.re * c.re + c.im * c.im;
            }
            for m in 0..self.n_mels {
                let row = &self.filters[m * n_bins..(m + 1) * n_bins];
                let energy: f32 = row.iter().zip(power.iter()).map(|(w, p)| w * p).sum();
                data[m * frames + f] = energy.max(1e-10).log10();
            }
        }
        let max = data.iter().copied().fold(f32::NEG_INFINITY, f32::max);
        let floor = max - 8.0;
        for v in data.iter_mut() {
            *v = (v.max(floor) + 4.0) / 4.0;
        }
        LogMel {
            n_mels: self.n_mels,
            frames,
            data,
        }
    }
}

fn hz_to_mel(hz: f64) -> f64 {
    // Slaney's auditory-toolbox scale: linear below 1 kHz, logarithmic above.
    let f_sp = 200.0 / 3.0;
    let min_log_hz = 1000.0;
    let min_log_mel = min_log_hz / f_sp;
    let logstep = (6.4f64).ln() / 27.0;
    if hz >= min_log_hz {
        min_log_mel + (hz / min_log_hz).ln() / logstep
    } else {
        hz / f_sp
    }
}

fn mel_to_hz(mel: f64) -> f64 {
    let f_sp = 200.0 / 3.0;
    let min_log_hz = 1000.0;
    let min_log_mel = min_log_hz / f_sp;
    let logstep = (6.4f64).ln() / 27.0;
    if mel >= min_log_mel {
        min_log_hz * (logstep * (mel - min_log_mel)).exp()
    } else {
        f_sp * mel
    }
}

/// Triangular filters with Slaney area normalisation over 0..8 kHz at 16 kHz sampling.
fn slaney_mel_filters(n_mels: usize) -> Vec<f32> {
    let n_bins = N_FFT / 2 + 1;
    let sr = f64::from(vttiro_core::SAMPLE_RATE);
    let fft_freqs: Vec<f64> = (0..n_bins)
        .map(|i| i as f64 * (sr / 2.0) / (n_bins - 1) as f64)
        .collect();
    let (min_mel, max_mel) = (hz_to_mel(0.0), hz_to_mel(sr / 2.0));
    let mel_points: Vec<f64> = (0..n_mels + 2)
        .map(|i| mel_to_hz(min_mel + (max_mel - min_mel) * i as f64 / (n_mels + 1) as f64))
        .collect();
    let mut filters = vec![0.0f32; n_mels * n_bins];
    for m in 0..n_mels {
        let (lo, centre, hi) = (mel_points[m], mel_points[m + 1], mel_points[m + 2]);
        let norm = 2.0 / (hi - lo);
        for (b, &freq) in fft_freqs.iter().enumerate() {
            let rising = (freq - lo) / (centre - lo);
            let falling = (hi - freq) / (hi - centre);
            let weight = rising.min(falling).max(0.0);
            filters[m * n_bins + b] = (weight * norm) as f32;
        }
    }
    filters
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slaney_scale_is_linear_below_1khz_and_invertible() {
        assert!((hz_to_mel(500.0) - 7.5).abs() < 1e-9);
        for hz in [0.0, 300.0, 1000.0, 4000.0, 8000.0] {
            assert!((mel_to_hz(hz_to_mel(hz)) - hz).abs() < 1e-6);
        }
    }

    #[test]
    fn a_tone_lights_up_the_matching_mel_band() {
        let ex = MelExtractor::new(80);
        let tone: Vec<f32> = (0..16_000)
            .map(|i| (2.0 * std::f32::consts::PI * 1000.0 * i as f32 / 16_000.0).sin() * 0.5)
            .collect();
        let mel = ex.compute(&tone, 0);
        assert_eq!(mel.frames, 100);
        let frame = 50;
        let band = (0..80)
            .max_by(|&a, &b| {
                mel.data[a * mel.frames + frame].total_cmp(&mel.data[b * mel.frames + frame])
            })
            .unwrap();
        let centre_hz = mel_to_hz(
            hz_to_mel(0.0) + (hz_to_mel(8000.0) - hz_to_mel(0.0)) * (band + 1) as f64 / 81.0,
        );
        assert!(
            (centre_hz - 1000.0).abs() < 80.0,
            "peak band centre {centre_hz} Hz"
        );
        // The normalisation bounds every value to an 8-unit log range mapped by (x+4)/4.
        let max = mel.data.iter().copied().fold(f32::MIN, f32::max);
        let min = mel.data.iter().copied().fold(f32::MAX, f32::min);
        assert!(max - min <= 2.0 + 1e-5);
    }

    #[test]
    fn window_zero_fills_past_the_end() {
        let ex = MelExtractor::new(80);
        let mel = ex.compute(&vec![0.1f32; 1600], 0);
        let w = mel.window(5);
        assert_eq!(w.len(), 80 * WINDOW_FRAMES);
        assert_eq!(w[WINDOW_FRAMES - 1], 0.0);
        assert_eq!(w[0], mel.data[5]);
    }
}
