//! The GE2E encoder's input features, computed the way Resemblyzer computes them with
//! `librosa.feature.melspectrogram`: 400-sample periodic Hann frames every 160 samples,
//! centred (the signal is zero-padded by 200 samples at both ends), power spectrum, 40
//! Slaney mel bands over 0–8 kHz — and no logarithm, because the encoder was trained on
//! linear mel power. Frame `k` is centred on sample `160 * k`.

use std::sync::Arc;

use realfft::{RealFftPlanner, RealToComplex};
use vttiro_core::{periodic_hann, slaney_mel_filters, MEL_FFT_BINS};

pub const N_FFT: usize = 400;
pub const HOP: usize = 160;
pub const N_MELS: usize = 40;

/// Resemblyzer raises (never lowers) an utterance's level to this before embedding it.
pub const TARGET_DBFS: f32 = -30.0;

pub struct MelFrontEnd {
    fft: Arc<dyn RealToComplex<f32>>,
    window: Vec<f32>,
    filters: Vec<f32>,
}

impl Default for MelFrontEnd {
    fn default() -> Self {
        Self::new()
    }
}

impl MelFrontEnd {
    pub fn new() -> Self {
        let fft = RealFftPlanner::<f32>::new().plan_fft_forward(N_FFT);
        MelFrontEnd {
            fft,
            window: periodic_hann(N_FFT),
            filters: slaney_mel_filters(N_MELS),
        }
    }

    /// Mel frames `first..first + count` of `samples` (as if the whole signal had been
    /// analysed), each multiplied by `gain²` — the power of a signal scaled by `gain`.
    /// Row-major `[count][N_MELS]`.
    pub fn frames(&self, samples: &[f32], first: usize, count: usize, gain: f32) -> Vec<f32> {
        let mut out = vec![0.0f32; count * N_MELS];
        let mut input = self.fft.make_input_vec();
        let mut spectrum = self.fft.make_output_vec();
        let mut scratch = self.fft.make_scratch_vec();
        let mut power = vec![0.0f32; MEL_FFT_BINS];
        let power_gain = gain * gain;
        for (k, row) in out.chunks_exact_mut(N_MELS).enumerate() {
            let centre = (first + k) * HOP;
            let start = centre as isize - (N_FFT / 2) as isize;
            for (n, slot) in input.iter_mut().enumerate() {
                let index = start + n as isize;
                let sample = if index >= 0 {
                    samples.get(index as usize).copied().unwrap_or(0.0)
                } else {
                    0.0
                };
                *slot = sample * self.window[n];
            }
            self.fft
                .process_with_scratch(&mut input, &mut spectrum, &mut scratch)
                .expect("buffers come from the plan");
            for (p, c) in power.iter_mut().zip(&spectrum) {
                *p = (c.re * c.re + c.im * c.im) * power_gain;
            }
            for (mel, value) in row.iter_mut().enumerate() {
                let filter = &self.filters[mel * MEL_FFT_BINS..(mel + 1) * MEL_FFT_BINS];
                *value = filter.iter().zip(&power).map(|(w, p)| w * p).sum();
            }
        }
        out
    }
}

/// The gain Resemblyzer's `normalize_volume(wav, -30, increase_only=True)` would apply to
/// audio whose RMS over the given samples is `rms` (full scale 1.0).
pub fn loudness_gain(rms: f32) -> f32 {
    if rms <= 0.0 {
        return 1.0;
    }
    let dbfs = 20.0 * rms.log10();
    let change = TARGET_DBFS - dbfs;
    if change <= 0.0 {
        1.0
    } else {
        10f32.powf(change / 20.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_tone_lands_in_the_mel_band_holding_its_frequency() {
        let tone: Vec<f32> = (0..16_000)
            .map(|n| (2.0 * std::f32::consts::PI * 1000.0 * n as f32 / 16_000.0).sin() * 0.5)
            .collect();
        let front = MelFrontEnd::new();
        let frames = front.frames(&tone, 10, 1, 1.0);
        let loudest = (0..N_MELS)
            .max_by(|&a, &b| frames[a].total_cmp(&frames[b]))
            .unwrap();
        let filters = slaney_mel_filters(N_MELS);
        let bin_1k = 1000 * N_FFT / 16_000;
        let band_1k = (0..N_MELS)
            .max_by(|&a, &b| {
                filters[a * MEL_FFT_BINS + bin_1k].total_cmp(&filters[b * MEL_FFT_BINS + bin_1k])
            })
            .unwrap();
        assert_eq!(loudest, band_1k);
        // Doubling the gain quadruples the power.
        let louder = front.frames(&tone, 10, 1, 2.0);
        assert!((louder[loudest] / frames[loudest] - 4.0).abs() < 1e-3);
    }

    #[test]
    fn frames_near_the_start_see_zero_padding() {
        // Frame 0 is centred on sample 0, so half its window lies in the zero padding.
        let tone: Vec<f32> = (0..8_000)
            .map(|n| (2.0 * std::f32::consts::PI * 1000.0 * n as f32 / 16_000.0).sin())
            .collect();
        let frames = MelFrontEnd::new().frames(&tone, 0, 3, 1.0);
        let total = |k: usize| frames[k * N_MELS..(k + 1) * N_MELS].iter().sum::<f32>();
        assert!(total(0) < 0.5 * total(2), "{} vs {}", total(0), total(2));
        assert!(total(0) > 0.05 * total(2));
    }

    #[test]
    fn quiet_audio_is_raised_to_minus_30_dbfs_and_loud_audio_left_alone() {
        let gain = loudness_gain(10f32.powf(-50.0 / 20.0));
        assert!((20.0 * gain.log10() - 20.0).abs() < 1e-3);
        assert_eq!(loudness_gain(0.5), 1.0);
        assert_eq!(loudness_gain(0.0), 1.0);
    }
}
