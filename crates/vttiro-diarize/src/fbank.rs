//! Kaldi-compatible log-mel filterbank features, the input of the ONNX speaker models
//! vttiro runs (WeSpeaker's ResNets, 3D-Speaker's CAM++ and ERes2Net). Those models were
//! trained on `torchaudio.compliance.kaldi.fbank`, which reproduces Kaldi's
//! `compute-fbank-feats`; an embedding is only as good as the match between the features it
//! sees and the ones it was trained on, so every step below follows Kaldi, and
//! `tests/fbank_kaldi.rs` holds it to `kaldi-native-fbank` frame by frame.
//!
//! Per frame (25 ms = 400 samples every 10 ms = 160 samples, frames only where they fit
//! whole: Kaldi's `snip_edges=true`): scale, remove the DC offset, pre-emphasise, window,
//! zero-pad to the next power of two (512), power spectrum, triangular filters evenly spaced
//! on Kaldi's mel scale (`1127 ln(1 + f/700)`) between 20 Hz and Nyquist, natural log
//! floored at `f32::EPSILON`. Then, per utterance, each bin's mean over time is subtracted
//! (cepstral mean normalisation), as both projects do before calling the model.
//!
//! The per-frame arithmetic runs in f64: the features are compared against other
//! implementations, and the extra precision is free next to the model's cost.

use std::sync::Arc;

use realfft::{RealFftPlanner, RealToComplex};

use crate::DiarizeError;

/// Kaldi's frame window functions (`--window-type`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WindowType {
    /// `0.54 - 0.46 cos(2πn/(N-1))`: WeSpeaker's ResNet recipes.
    Hamming,
    /// `0.5 - 0.5 cos(2πn/(N-1))`.
    Hanning,
    /// Hanning raised to 0.85, Kaldi's default: 3D-Speaker's models, which call
    /// `Kaldi.fbank` without naming a window.
    Povey,
    Rectangular,
}

/// Everything that makes one model's features differ from another's. The presets carry
/// the settings each project trains with; a model trained otherwise needs its own values.
#[derive(Debug, Clone, PartialEq)]
pub struct FbankOptions {
    /// Input samples per second; vttiro's audio is always 16 kHz.
    pub sample_rate: u32,
    /// Samples per analysis frame (Kaldi `--frame-length` 25 ms).
    pub frame_length: usize,
    /// Samples between frame starts (Kaldi `--frame-shift` 10 ms).
    pub frame_shift: usize,
    /// Mel filters, the model input's last dimension.
    pub num_bins: usize,
    /// Lower edge of the first filter, Hz.
    pub low_freq: f32,
    /// Upper edge of the last filter, Hz; zero or negative counts down from Nyquist, as in
    /// Kaldi.
    pub high_freq: f32,
    pub preemphasis: f32,
    pub remove_dc_offset: bool,
    pub window: WindowType,
    /// Multiplies the [-1, 1] samples first: WeSpeaker feeds Kaldi 16-bit integer levels
    /// (32768), 3D-Speaker the floats themselves (1). Only the log floor and therefore near-
    /// silent bins notice, since mean normalisation removes a constant gain.
    pub sample_scale: f32,
    /// Subtract each bin's per-utterance mean (cepstral mean normalisation).
    pub mean_normalise: bool,
}

impl FbankOptions {
    /// WeSpeaker's `compute_fbank` (training, `infer_onnx.py`, diarization): Hamming window,
    /// samples at 16-bit integer scale, mean normalisation.
    pub fn wespeaker() -> Self {
        FbankOptions {
            sample_rate: 16_000,
            frame_length: 400,
            frame_shift: 160,
            num_bins: 80,
            low_freq: 20.0,
            high_freq: 0.0,
            preemphasis: 0.97,
            remove_dc_offset: true,
            window: WindowType::Hamming,
            sample_scale: 32768.0,
            mean_normalise: true,
        }
    }

    /// 3D-Speaker's `FBank(80, 16000, mean_nor=True)` for CAM++ and ERes2Net: Kaldi's
    /// default Povey window on float samples.
    pub fn three_d_speaker() -> Self {
        FbankOptions {
            window: WindowType::Povey,
            sample_scale: 1.0,
            ..Self::wespeaker()
        }
    }

    /// The FFT length: the frame zero-padded to a power of two (Kaldi's
    /// `round_to_power_of_two`, on in both projects).
    pub fn fft_size(&self) -> usize {
        self.frame_length.next_power_of_two()
    }

    /// Whole frames in `samples` samples (`snip_edges=true`: none hang over either end).
    pub fn frame_count(&self, samples: usize) -> usize {
        if samples < self.frame_length || self.frame_shift == 0 {
            0
        } else {
            1 + (samples - self.frame_length) / self.frame_shift
        }
    }

    fn upper_edge(&self) -> f64 {
        let nyquist = 0.5 * self.sample_rate as f64;
        if self.high_freq > 0.0 {
            self.high_freq as f64
        } else {
            nyquist + self.high_freq as f64
        }
    }

    fn validate(&self) -> Result<(), DiarizeError> {
        let bad = |what: String| Err(DiarizeError::Settings(format!("filterbank: {what}")));
        let nyquist = 0.5 * self.sample_rate as f64;
        if self.sample_rate == 0 || self.frame_length < 2 || self.frame_shift == 0 {
            return bad(format!(
                "sample rate {}, frame length {} and frame shift {} must be positive (length at least 2)",
                self.sample_rate, self.frame_length, self.frame_shift
            ));
        }
        if self.num_bins == 0 {
            return bad("needs at least one mel bin".into());
        }
        let (low, high) = (self.low_freq as f64, self.upper_edge());
        if !(low >= 0.0 && low < high && high <= nyquist) {
            return bad(format!(
                "band {low}–{high} Hz must lie within 0–{nyquist} Hz, low below high"
            ));
        }
        if !(0.0..=1.0).contains(&self.preemphasis) {
            return bad(format!(
                "pre-emphasis {} must be in [0, 1]",
                self.preemphasis
            ));
        }
        if !(self.sample_scale.is_finite() && self.sample_scale > 0.0) {
            return bad(format!(
                "sample scale {} must be positive",
                self.sample_scale
            ));
        }
        Ok(())
    }
}

impl Default for FbankOptions {
    fn default() -> Self {
        Self::wespeaker()
    }
}

/// One triangular mel filter: its weights over the FFT bins from `first` on.
#[derive(Debug, Clone)]
struct MelFilter {
    first: usize,
    weights: Vec<f64>,
}

/// A filterbank front end with its FFT plan, window and filters prepared once.
pub struct Fbank {
    options: FbankOptions,
    fft: Arc<dyn RealToComplex<f64>>,
    window: Vec<f64>,
    filters: Vec<MelFilter>,
}

impl std::fmt::Debug for Fbank {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Fbank")
            .field("options", &self.options)
            .finish_non_exhaustive()
    }
}

/// Kaldi's mel scale (natural log, HTK's constants).
fn mel(hz: f64) -> f64 {
    1127.0 * (1.0 + hz / 700.0).ln()
}

impl Fbank {
    pub fn new(options: FbankOptions) -> Result<Self, DiarizeError> {
        options.validate()?;
        let n_fft = options.fft_size();
        let fft = RealFftPlanner::<f64>::new().plan_fft_forward(n_fft);
        let window = window(options.window, options.frame_length);
        let filters = mel_filters(&options);
        Ok(Fbank {
            options,
            fft,
            window,
            filters,
        })
    }

    pub fn options(&self) -> &FbankOptions {
        &self.options
    }

    /// Log-mel frames of `samples` (16 kHz mono in [-1, 1]), row-major
    /// `[frames][num_bins]`, before mean normalisation: the part that matches Kaldi's
    /// `compute-fbank-feats`. Fewer samples than one frame give no frames.
    pub fn log_mel(&self, samples: &[f32]) -> Vec<f32> {
        let o = &self.options;
        let frames = o.frame_count(samples.len());
        let mut out = Vec::with_capacity(frames * o.num_bins);
        let mut input = self.fft.make_input_vec();
        let mut spectrum = self.fft.make_output_vec();
        let mut scratch = self.fft.make_scratch_vec();
        let mut power = vec![0.0f64; spectrum.len()];
        let scale = o.sample_scale as f64;
        let preemph = o.preemphasis as f64;
        for k in 0..frames {
            let frame = &samples[k * o.frame_shift..k * o.frame_shift + o.frame_length];
            let (head, tail) = input.split_at_mut(o.frame_length);
            for (x, &s) in head.iter_mut().zip(frame) {
                *x = s as f64 * scale;
            }
            tail.fill(0.0);
            if o.remove_dc_offset {
                let mean = head.iter().sum::<f64>() / head.len() as f64;
                head.iter_mut().for_each(|x| *x -= mean);
            }
            // Kaldi pre-emphasises the first sample against itself, not against the
            // previous frame, so every frame is computed from its own samples alone.
            for i in (1..head.len()).rev() {
                head[i] -= preemph * head[i - 1];
            }
            head[0] -= preemph * head[0];
            head.iter_mut().zip(&self.window).for_each(|(x, w)| *x *= w);
            self.fft
                .process_with_scratch(&mut input, &mut spectrum, &mut scratch)
                .expect("buffers come from the plan");
            for (p, c) in power.iter_mut().zip(&spectrum) {
                *p = c.norm_sqr();
            }
            out.extend(self.filters.iter().map(|f| {
                let energy: f64 = f
                    .weights
                    .iter()
                    .zip(&power[f.first..])
                    .map(|(w, p)| w * p)
                    .sum();
                energy.max(f32::EPSILON as f64).ln() as f32
            }));
        }
        out
    }

    /// The model's input for `samples`: [`Fbank::log_mel`], mean-normalised when the
    /// options ask for it. Row-major `[frames][num_bins]`.
    pub fn features(&self, samples: &[f32]) -> Vec<f32> {
        let mut feats = self.log_mel(samples);
        if self.options.mean_normalise {
            subtract_mean(&mut feats, self.options.num_bins);
        }
        feats
    }
}

/// Subtracts from each column of the row-major `[frames][bins]` matrix its mean over the
/// rows (cepstral mean normalisation, without variance normalisation).
pub fn subtract_mean(features: &mut [f32], bins: usize) {
    if bins == 0 || features.len() < bins {
        return;
    }
    let frames = features.len() / bins;
    let mut sums = vec![0.0f64; bins];
    for row in features.chunks_exact(bins) {
        sums.iter_mut().zip(row).for_each(|(s, &x)| *s += x as f64);
    }
    let means: Vec<f32> = sums.iter().map(|s| (s / frames as f64) as f32).collect();
    for row in features.chunks_exact_mut(bins) {
        row.iter_mut().zip(&means).for_each(|(x, m)| *x -= m);
    }
}

/// Kaldi's `FeatureWindowFunction`: symmetric windows (divisor N-1), unlike the periodic
/// ones spectrogram libraries use.
fn window(kind: WindowType, len: usize) -> Vec<f64> {
    let a = 2.0 * std::f64::consts::PI / (len - 1) as f64;
    (0..len)
        .map(|n| {
            let hann = 0.5 - 0.5 * (a * n as f64).cos();
            match kind {
                WindowType::Hamming => 0.54 - 0.46 * (a * n as f64).cos(),
                WindowType::Hanning => hann,
                WindowType::Povey => hann.powf(0.85),
                WindowType::Rectangular => 1.0,
            }
        })
        .collect()
}

/// Kaldi's `MelBanks`: filter centres evenly spaced in mel between the band edges, each
/// triangle rising from its left neighbour's centre to its own and falling to its right
/// neighbour's, evaluated at the mel value of each FFT bin's centre frequency. The Nyquist
/// bin is never used, as in Kaldi.
fn mel_filters(o: &FbankOptions) -> Vec<MelFilter> {
    let n_fft = o.fft_size();
    let bin_hz = o.sample_rate as f64 / n_fft as f64;
    let (mel_low, mel_high) = (mel(o.low_freq as f64), mel(o.upper_edge()));
    let delta = (mel_high - mel_low) / (o.num_bins + 1) as f64;
    (0..o.num_bins)
        .map(|b| {
            let left = mel_low + b as f64 * delta;
            let centre = left + delta;
            let right = centre + delta;
            let weights: Vec<(usize, f64)> = (0..n_fft / 2)
                .filter_map(|i| {
                    let m = mel(bin_hz * i as f64);
                    (m > left && m < right).then(|| {
                        let w = if m <= centre {
                            (m - left) / (centre - left)
                        } else {
                            (right - m) / (right - centre)
                        };
                        (i, w)
                    })
                })
                .collect();
            MelFilter {
                first: weights.first().map_or(0, |&(i, _)| i),
                weights: weights.into_iter().map(|(_, w)| w).collect(),
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_fit_inside_the_signal() {
        let o = FbankOptions::wespeaker();
        assert_eq!(o.frame_count(399), 0);
        assert_eq!(o.frame_count(400), 1);
        assert_eq!(o.frame_count(559), 1);
        assert_eq!(o.frame_count(560), 2);
        assert_eq!(o.frame_count(16_000), 98);
        assert_eq!(o.fft_size(), 512);
    }

    #[test]
    fn filters_tile_the_band() {
        let o = FbankOptions::wespeaker();
        let filters = mel_filters(&o);
        assert_eq!(filters.len(), 80);
        // Each filter peaks below 1 (bins rarely land on a centre) and neighbours overlap
        // so that, inside the band, the weights over a bin sum to 1 exactly.
        let mut total = vec![0.0f64; o.fft_size() / 2];
        for f in &filters {
            assert!(!f.weights.is_empty());
            assert!(f.weights.iter().all(|&w| w > 0.0 && w <= 1.0));
            for (i, w) in f.weights.iter().enumerate() {
                total[f.first + i] += w;
            }
        }
        let centre_of_first =
            700.0 * (((mel(20.0) + (mel(8000.0) - mel(20.0)) / 81.0) / 1127.0).exp() - 1.0);
        let centre_of_last =
            700.0 * (((mel(8000.0) - (mel(8000.0) - mel(20.0)) / 81.0) / 1127.0).exp() - 1.0);
        for (i, t) in total.iter().enumerate() {
            let hz = i as f64 * 16_000.0 / 512.0;
            if hz > centre_of_first && hz < centre_of_last {
                assert!((t - 1.0).abs() < 1e-9, "bin {i} ({hz} Hz): {t}");
            }
        }
    }

    #[test]
    fn a_tone_lights_the_filter_around_its_frequency() {
        let fbank = Fbank::new(FbankOptions::wespeaker()).unwrap();
        let tone: Vec<f32> = (0..16_000)
            .map(|n| 0.5 * (2.0 * std::f32::consts::PI * 1000.0 * n as f32 / 16_000.0).sin())
            .collect();
        let feats = fbank.log_mel(&tone);
        assert_eq!(feats.len(), 98 * 80);
        let row = &feats[40 * 80..41 * 80];
        let peak = (0..80).max_by(|&a, &b| row[a].total_cmp(&row[b])).unwrap();
        let delta = (mel(8000.0) - mel(20.0)) / 81.0;
        let centre_hz =
            |b: usize| 700.0 * (((mel(20.0) + (b + 1) as f64 * delta) / 1127.0).exp() - 1.0);
        assert!(
            (centre_hz(peak) - 1000.0).abs() < 2.0 * (centre_hz(peak + 1) - centre_hz(peak)),
            "peak at bin {peak} ({} Hz)",
            centre_hz(peak)
        );
    }

    #[test]
    fn silence_sits_on_the_floor_and_normalises_to_zero() {
        let fbank = Fbank::new(FbankOptions::three_d_speaker()).unwrap();
        let feats = fbank.log_mel(&[0.0; 1000]);
        assert_eq!(feats.len(), 4 * 80);
        assert!(feats.iter().all(|&x| x == f32::EPSILON.ln()));
        assert!(fbank.features(&[0.0; 1000]).iter().all(|&x| x == 0.0));
        assert!(fbank.features(&[0.1; 300]).is_empty());
    }

    #[test]
    fn mean_normalisation_zeroes_every_column_mean() {
        let mut m: Vec<f32> = (0..60).map(|i| (i * i % 17) as f32 - 3.5).collect();
        subtract_mean(&mut m, 6);
        for c in 0..6 {
            let s: f32 = m.iter().skip(c).step_by(6).sum();
            assert!(s.abs() < 1e-5, "column {c}: {s}");
        }
    }

    #[test]
    fn impossible_options_are_refused() {
        let bad = [
            FbankOptions {
                num_bins: 0,
                ..Default::default()
            },
            FbankOptions {
                low_freq: 9000.0,
                ..Default::default()
            },
            FbankOptions {
                frame_shift: 0,
                ..Default::default()
            },
            FbankOptions {
                sample_scale: 0.0,
                ..Default::default()
            },
        ];
        for o in bad {
            assert!(matches!(Fbank::new(o), Err(DiarizeError::Settings(_))));
        }
    }
}
