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
        let window = vttiro_core::periodic_hann(N_FFT);
        MelExtractor {
            n_mels,
            filters: vttiro_core::slaney_mel_filters(n_mels),
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
        self.compute_from(audio.len(), pad_samples, &mut |start, buf| {
            let end = (start + buf.len()).min(audio.len());
            buf[..end - start].copy_from_slice(&audio[start..end]);
        })
    }

    /// [`compute`](Self::compute) over `len` samples that `read(start, buf)` copies into
    /// `buf` on demand, so a long input never has to exist as one contiguous copy. The
    /// spectrogram is built in blocks of one window; only the log-mel values are kept.
    pub fn compute_from(
        &self,
        len: usize,
        pad_samples: usize,
        read: &mut dyn FnMut(usize, &mut [f32]),
    ) -> LogMel {
        let total = len + pad_samples;
        // A centred STFT yields 1 + total/hop frames; Whisper drops the last one.
        let frames = total / HOP_LENGTH;
        let n_bins = N_FFT / 2 + 1;
        let half = N_FFT / 2;
        let mut data = vec![0.0f32; self.n_mels * frames];
        let mut input = self.fft.make_input_vec();
        let mut spectrum = self.fft.make_output_vec();
        let mut scratch = self.fft.make_scratch_vec();
        let mut power = vec![0.0f32; n_bins];
        let mut block = Vec::new();
        for block_start in (0..frames).step_by(WINDOW_FRAMES) {
            let block_end = (block_start + WINDOW_FRAMES).min(frames);
            // Every sample the block's frames touch, with room for the reflections at
            // both ends of the signal.
            let lo = (block_start * HOP_LENGTH).saturating_sub(2 * half);
            let hi = ((block_end - 1) * HOP_LENGTH + 2 * half + 1).min(len);
            block.clear();
            block.resize(hi.saturating_sub(lo), 0.0);
            if hi > lo {
                read(lo, &mut block);
            }
            let sample = |i: isize| -> f32 {
                // Reflect padding around the signal, as a centred STFT does; the padding
                // after the audio is zeros.
                let n = total as isize;
                let mut j = i;
                if j < 0 {
                    j = -j;
                }
                if j >= n {
                    j = 2 * (n - 1) - j;
                }
                let j = j.clamp(0, n - 1) as usize;
                if j < len && j >= lo && j < hi {
                    block[j - lo]
                } else {
                    0.0
                }
            };
            for f in block_start..block_end {
                let centre = (f * HOP_LENGTH) as isize;
                for (k, slot) in input.iter_mut().enumerate() {
                    *slot = sample(centre - half as isize + k as isize) * self.window[k];
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

#[cfg(test)]
mod tests {
    use super::*;

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
        // 1 kHz is FFT bin 25; the band whose filter weighs that bin most must light up.
        let filters = vttiro_core::slaney_mel_filters(80);
        let bins = vttiro_core::MEL_FFT_BINS;
        let expected = (0..80)
            .max_by(|&a, &b| filters[a * bins + 25].total_cmp(&filters[b * bins + 25]))
            .unwrap();
        assert!(
            band.abs_diff(expected) <= 1,
            "peak band {band}, expected {expected}"
        );
        // The normalisation bounds every value to an 8-unit log range mapped by (x+4)/4.
        let max = mel.data.iter().copied().fold(f32::MIN, f32::max);
        let min = mel.data.iter().copied().fold(f32::MAX, f32::min);
        assert!(max - min <= 2.0 + 1e-5);
    }

    /// The blockwise computation must not change a single value: compare it with a
    /// direct, whole-signal STFT written independently here.
    #[test]
    fn blockwise_spectrogram_equals_the_whole_signal_one() {
        let ex = MelExtractor::new(80);
        // 70 s of a chirp plus noise-like content: three blocks and a partial one.
        let audio: Vec<f32> = (0..70 * 16_000)
            .map(|i| {
                let t = i as f32 / 16_000.0;
                0.3 * (2.0 * std::f32::consts::PI * (200.0 + 40.0 * t) * t).sin()
                    + 0.05 * ((i * 7919 % 1000) as f32 / 1000.0 - 0.5)
            })
            .collect();
        let pad = 1_000;
        let mel = ex.compute(&audio, pad);
        let total = audio.len() + pad;
        let frames = total / HOP_LENGTH;
        assert_eq!(mel.frames, frames);
        let mut direct = vec![0.0f32; 80 * frames];
        let mut planner = RealFftPlanner::<f32>::new();
        let fft = planner.plan_fft_forward(N_FFT);
        let mut spectrum = fft.make_output_vec();
        for f in [0, 1, 2999, 3000, 3001, 6000, frames - 2, frames - 1] {
            let mut input: Vec<f32> = (0..N_FFT)
                .map(|k| {
                    let mut j = (f * HOP_LENGTH + k) as isize - (N_FFT / 2) as isize;
                    if j < 0 {
                        j = -j;
                    }
                    if j >= total as isize {
                        j = 2 * (total as isize - 1) - j;
                    }
                    audio.get(j as usize).copied().unwrap_or(0.0) * ex.window[k]
                })
                .collect();
            fft.process(&mut input, &mut spectrum).unwrap();
            for m in 0..80 {
                let row = &ex.filters[m * 201..(m + 1) * 201];
                let energy: f32 = row
                    .iter()
                    .zip(spectrum.iter())
                    .map(|(w, c)| w * (c.re * c.re + c.im * c.im))
                    .sum();
                direct[m * frames + f] = energy.max(1e-10).log10();
            }
        }
        // Undo the normalisation on the blockwise result for the frames checked (values
        // above the floor map back exactly).
        let floor = (mel.data.iter().copied().fold(f32::MAX, f32::min) * 4.0) - 4.0;
        for f in [0, 1, 2999, 3000, 3001, 6000, frames - 2, frames - 1] {
            for m in 0..80 {
                let got = mel.data[m * frames + f] * 4.0 - 4.0;
                let want = direct[m * frames + f].max(floor);
                assert!(
                    (got - want).abs() < 1e-4,
                    "frame {f} band {m}: {got} vs {want}"
                );
            }
        }
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
