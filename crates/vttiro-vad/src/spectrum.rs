//! Short-time analysis of 16 kHz mono audio: per-frame power spectra for the noise-relative
//! score and, on demand, the voicing measures (periodicity at a voice pitch, power spread
//! over harmonics) that tell a voice from hiss bursts, clicks and beeps.

use std::sync::Arc;

use realfft::num_complex::Complex;
use realfft::{ComplexToReal, RealFftPlanner, RealToComplex};

/// 32 ms: long enough to hold two periods of a 70 Hz voice, which the pitch search needs.
pub(crate) const FRAME_LEN: usize = 512;
/// 10 ms between frames, the resolution of every decision the detector makes.
pub(crate) const HOP: usize = 160;
/// Twice the frame so the autocorrelation computed through the spectrum is linear, not
/// circular; its even bins are exactly the 512-point spectrum the floor is kept in.
const FFT_LEN: usize = 2 * FRAME_LEN;

/// First and one-past-last bin (of the 512-point spectrum, 31.25 Hz apart) the detector
/// scores: 125 Hz to 5.5 kHz holds voice fundamentals, formants and most fricative energy,
/// while mains hum and the rumble of brown noise below it carry no speech information.
pub(crate) const FIRST_BIN: usize = 4;
pub(crate) const END_BIN: usize = 176;
pub(crate) const BIN_COUNT: usize = END_BIN - FIRST_BIN;

/// Lags of the pitch search: 400 Hz down to 70 Hz at 16 kHz.
const MIN_PITCH_LAG: usize = 40;
const MAX_PITCH_LAG: usize = 229;

/// Number of analysis frames for a signal of `len` samples; frame `t` stands for the hop
/// `[t * HOP, (t + 1) * HOP)` and is centred on it.
pub(crate) fn frame_count(len: usize) -> usize {
    len.div_ceil(HOP)
}

/// First sample of the hop that frame `t` stands for.
pub(crate) fn frame_start(t: usize) -> usize {
    t * HOP
}

pub(crate) struct FrameAnalyzer {
    /// Plain 512-point transform for the power spectrum, run on every frame.
    short_forward: Arc<dyn RealToComplex<f32>>,
    short_time: Vec<f32>,
    short_spectrum: Vec<Complex<f32>>,
    /// Zero-padded transform and its inverse for the pitch search, run on candidates.
    forward: Arc<dyn RealToComplex<f32>>,
    inverse: Arc<dyn ComplexToReal<f32>>,
    window: Vec<f32>,
    window_energy: f32,
    /// One over the window's own autocorrelation (normalised to 1 at lag 0) at the pitch
    /// lags: scaling by it undoes the taper's fall-off, so a perfectly periodic frame
    /// scores 1 at its period.
    inverse_window_autocorr: Vec<f32>,
    foreground: Vec<f32>,
    time: Vec<f32>,
    spectrum: Vec<Complex<f32>>,
    forward_scratch: Vec<Complex<f32>>,
    inverse_scratch: Vec<Complex<f32>>,
}

impl FrameAnalyzer {
    pub(crate) fn new() -> Self {
        let mut planner = RealFftPlanner::<f32>::new();
        let short_forward = planner.plan_fft_forward(FRAME_LEN);
        let forward = planner.plan_fft_forward(FFT_LEN);
        let inverse = planner.plan_fft_inverse(FFT_LEN);
        let window: Vec<f32> = (0..FRAME_LEN)
            .map(|n| {
                let phase = 2.0 * std::f32::consts::PI * (n as f32 + 0.5) / FRAME_LEN as f32;
                0.5 - 0.5 * phase.cos()
            })
            .collect();
        let window_energy: f32 = window.iter().map(|w| w * w).sum();
        let inverse_window_autocorr = (MIN_PITCH_LAG..MAX_PITCH_LAG)
            .map(|lag| {
                let sum: f32 = window[..FRAME_LEN - lag]
                    .iter()
                    .zip(&window[lag..])
                    .map(|(a, b)| a * b)
                    .sum();
                window_energy / sum
            })
            .collect();
        let scratch_len = forward
            .get_scratch_len()
            .max(short_forward.get_scratch_len());
        Self {
            short_time: short_forward.make_input_vec(),
            short_spectrum: short_forward.make_output_vec(),
            short_forward,
            forward_scratch: vec![Complex::default(); scratch_len],
            inverse_scratch: inverse.make_scratch_vec(),
            time: forward.make_input_vec(),
            spectrum: forward.make_output_vec(),
            forward,
            inverse,
            window,
            window_energy,
            inverse_window_autocorr,
            foreground: Vec::with_capacity(2 * BIN_COUNT),
        }
    }

    /// Writes frame `t`, mean removed (so DC offsets and sub-audio drift do not leak into
    /// the scored band) and windowed, into `dest[..FRAME_LEN]`; samples outside the
    /// signal are zero.
    fn load_frame(window: &[f32], samples: &[f32], t: usize, dest: &mut [f32]) {
        let centre = frame_start(t) + HOP / 2;
        let dest = &mut dest[..FRAME_LEN];
        if centre >= FRAME_LEN / 2 && centre + FRAME_LEN / 2 <= samples.len() {
            let frame = &samples[centre - FRAME_LEN / 2..centre + FRAME_LEN / 2];
            let mean = fast_sum(frame) / FRAME_LEN as f32;
            for ((slot, &value), &weight) in dest.iter_mut().zip(frame).zip(window) {
                *slot = (value - mean) * weight;
            }
            return;
        }
        // Near either end: only the part inside the signal exists and sets the mean.
        let first = centre as isize - (FRAME_LEN / 2) as isize;
        let inside = |n: usize| {
            let index = first + n as isize;
            (index >= 0 && (index as usize) < samples.len()).then_some(index as usize)
        };
        let (sum, count) = (0..FRAME_LEN)
            .filter_map(inside)
            .fold((0.0f32, 0usize), |(sum, count), i| {
                (sum + samples[i], count + 1)
            });
        let mean = if count > 0 { sum / count as f32 } else { 0.0 };
        for (n, slot) in dest.iter_mut().enumerate() {
            *slot = inside(n).map_or(0.0, |i| (samples[i] - mean) * window[n]);
        }
    }

    /// Writes the power of the scored bins of frame `t` into `out` (length [`BIN_COUNT`])
    /// and returns the frame's in-band power, scaled so a full-scale sine inside the band
    /// reads 1 (0 dB).
    pub(crate) fn power(&mut self, samples: &[f32], t: usize, out: &mut [f32]) -> f32 {
        Self::load_frame(&self.window, samples, t, &mut self.short_time);
        self.short_forward
            .process_with_scratch(
                &mut self.short_time,
                &mut self.short_spectrum,
                &mut self.forward_scratch,
            )
            .expect("buffers are sized by the planner");
        for (slot, value) in out.iter_mut().zip(&self.short_spectrum[FIRST_BIN..END_BIN]) {
            *slot = value.norm_sqr();
        }
        let total = fast_sum(out);
        // By Parseval, the positive half of the spectrum holds
        // FRAME_LEN / 4 * window_energy * A^2 for a sine of amplitude A.
        total / (self.window_energy * FRAME_LEN as f32 / 4.0)
    }

    /// How voice-like the periodic content of frame `t` is, judged on its spectrum
    /// divided by `floor` (the steady background per scored bin, [`BIN_COUNT`] values)
    /// so that only what rises above the background counts: rumbling brown noise, whose
    /// energy all sits at low frequencies, otherwise correlates with itself at pitch lags
    /// the way a voice does.
    pub(crate) fn voicing(&mut self, samples: &[f32], t: usize, floor: &[f32]) -> Voicing {
        debug_assert_eq!(floor.len(), BIN_COUNT);
        Self::load_frame(&self.window, samples, t, &mut self.time);
        self.time[FRAME_LEN..].fill(0.0);
        self.forward
            .process_with_scratch(
                &mut self.time,
                &mut self.spectrum,
                &mut self.forward_scratch,
            )
            .expect("buffers are sized by the planner");
        let zero = Complex::default();
        self.spectrum[..2 * FIRST_BIN].fill(zero);
        self.spectrum[2 * END_BIN..].fill(zero);
        let scored = &mut self.spectrum[2 * FIRST_BIN..2 * END_BIN];
        for (pair, &level) in scored.chunks_exact_mut(2).zip(floor) {
            let scale = 1.0 / level;
            for value in pair {
                *value = Complex::new(value.norm_sqr() * scale, 0.0);
            }
        }
        // Power above the floor; bins at or under it are background, not foreground.
        self.foreground.clear();
        self.foreground
            .extend(scored.iter().map(|value| (value.re - 1.0).max(0.0)));
        let total = fast_sum(&self.foreground);
        let peak = self
            .foreground
            .iter()
            .enumerate()
            .fold((0, f32::NEG_INFINITY), |best, (k, &v)| {
                if v > best.1 {
                    (k, v)
                } else {
                    best
                }
            })
            .0;
        let lobe =
            peak.saturating_sub(PEAK_LOBE)..(peak + PEAK_LOBE + 1).min(self.foreground.len());
        let peak_share = if total > 0.0 {
            fast_sum(&self.foreground[lobe]) / total
        } else {
            0.0
        };
        self.inverse
            .process_with_scratch(
                &mut self.spectrum,
                &mut self.time,
                &mut self.inverse_scratch,
            )
            .expect("buffers are sized by the planner");
        let energy = self.time[0];
        if energy <= f32::MIN_POSITIVE {
            return Voicing {
                periodicity: 0.0,
                peak_share,
            };
        }
        let strongest = self.time[MIN_PITCH_LAG..MAX_PITCH_LAG]
            .iter()
            .zip(&self.inverse_window_autocorr)
            .map(|(value, scale)| value * scale)
            .fold(0.0f32, f32::max);
        let periodicity = (strongest / energy).min(1.0);
        Voicing {
            periodicity,
            peak_share,
        }
    }
}

/// A sum with eight independent accumulators, which the compiler can vectorise; a plain
/// fold is one long chain of dependent additions and dominated frame loading.
pub(crate) fn fast_sum(values: &[f32]) -> f32 {
    let mut lanes = [0.0f32; 8];
    let chunks = values.chunks_exact(8);
    let rest: f32 = chunks.remainder().iter().sum();
    for chunk in chunks {
        for (lane, &value) in lanes.iter_mut().zip(chunk) {
            *lane += value;
        }
    }
    lanes.iter().sum::<f32>() + rest
}

/// Half-width of a Hann window's main lobe in bins of the padded spectrum: a pure sine
/// puts all its power within this many bins of its peak.
const PEAK_LOBE: usize = 4;

#[derive(Debug, Clone, Copy)]
pub(crate) struct Voicing {
    /// The highest normalised autocorrelation at lags of 70-400 Hz: 0 for silence,
    /// around 0.25 (at most 0.6) for noise, 0.8-1 for a vowel.
    pub(crate) periodicity: f32,
    /// Share of the foreground power within one spectral peak: 1 for a pure tone or a
    /// beep, typically 0.2-0.6 for a voice, whose glottal pulses spread power over many
    /// harmonics.
    pub(crate) peak_share: f32,
}

/// A frame is voiced when its floor-whitened autocorrelation at a 70-400 Hz pitch lag
/// reaches [`VOICED_PERIODICITY`] (steady noise of any colour stays below 0.6, vowels
/// are at 0.8-1) and no single spectral peak holds more than [`MAX_VOICED_PEAK_SHARE`]
/// of its foreground power: a sine is perfectly periodic too, but a voice spreads its
/// power over many harmonics (measured: 85% of voiced speech frames under 0.6), while a
/// beep puts all of it in one peak.
const VOICED_PERIODICITY: f32 = 0.7;
const MAX_VOICED_PEAK_SHARE: f32 = 0.8;

impl Voicing {
    pub(crate) fn is_voiced(&self) -> bool {
        self.periodicity >= VOICED_PERIODICITY && self.peak_share <= MAX_VOICED_PEAK_SHARE
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sine(freq: f32, amplitude: f32, len: usize) -> Vec<f32> {
        (0..len)
            .map(|n| amplitude * (2.0 * std::f32::consts::PI * freq * n as f32 / 16_000.0).sin())
            .collect()
    }

    #[test]
    fn a_sine_lands_in_its_bin() {
        let signal = sine(1000.0, 0.5, 16_000);
        let mut analyzer = FrameAnalyzer::new();
        let mut power = vec![0.0; BIN_COUNT];
        analyzer.power(&signal, 20, &mut power);
        let peak = power
            .iter()
            .enumerate()
            .max_by(|a, b| a.1.total_cmp(b.1))
            .map(|(i, _)| i + FIRST_BIN)
            .unwrap();
        assert_eq!(peak, 32, "1 kHz is bin 32 at 31.25 Hz per bin");
    }

    #[test]
    fn a_pulse_train_is_voiced_noise_is_aperiodic_and_a_sine_is_one_peak() {
        // 150 Hz pulse train smoothed a little: a crude glottal source.
        let period = 16_000 / 150;
        let pulses: Vec<f32> = (0..16_000)
            .map(|n| if n % period < 4 { 0.5 } else { 0.0 })
            .collect();
        let mut analyzer = FrameAnalyzer::new();
        let flat = vec![1.0; BIN_COUNT];
        let voice = analyzer.voicing(&pulses, 30, &flat);
        assert!(
            voice.periodicity > 0.9 && voice.peak_share < 0.5,
            "{voice:?}"
        );

        let mut state = 0x1234_5678u32;
        let noise: Vec<f32> = (0..16_000)
            .map(|_| {
                state ^= state << 13;
                state ^= state >> 17;
                state ^= state << 5;
                state as f32 / u32::MAX as f32 - 0.5
            })
            .collect();
        assert!(analyzer.voicing(&noise, 30, &flat).periodicity < 0.3);
        assert_eq!(
            analyzer.voicing(&vec![0.0; 16_000], 30, &flat).periodicity,
            0.0
        );
        let beep = analyzer.voicing(&sine(1000.0, 0.5, 16_000), 30, &flat);
        assert!(beep.peak_share > 0.95, "{beep:?}");
    }
}
