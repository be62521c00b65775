//! Per-frame evidence for speech, computed block by block so memory stays bounded on
//! hours-long inputs: each block of frames is analysed together with one floor-window of
//! margin on both sides, which is all the two-sided noise floor ever looks at.

use crate::noise_floor::two_sided_minimum;
use crate::spectrum::{frame_count, FrameAnalyzer, BIN_COUNT};

/// One second of frames on each side: long enough that speech, which pauses and moves
/// its energy between bins every few hundred milliseconds, shows the floor underneath it
/// in every bin, short enough to follow noise that changes over a recording.
const FLOOR_REACH_FRAMES: usize = 100;
/// Power is averaged over this many frames either side before comparing: a 50 ms
/// average (80 ms of signal with the window) shrinks the random spread of noise
/// periodograms several-fold while still resolving syllables, which last 100-300 ms.
const SMOOTH_FRAMES: usize = 2;
/// The minimum of ~200 smoothed noise frames sits well below their mean; this factor
/// (measured: the median frame of white, pink or brown noise is 3.6-4.1 times the
/// minimum) lifts it back so a typical bin of steady noise stands 0 dB above its floor.
const MINIMUM_BIAS: f32 = 4.0;
/// Per-bin power of white noise at -90 dBFS in the analyser's units: below this nothing
/// is audible, so digital silence and the last bits of dither are never a floor that
/// speech-like ratios could be measured against.
const ABSOLUTE_FLOOR_POWER: f32 = 1e-9 * 192.0;
/// How far above its floor one bin may count (a power ratio of 30 dB), so a few very
/// loud harmonics cannot carry a frame on their own.
const MAX_BIN_RATIO: f32 = 1e3;
/// A frame's score is the mean excess of the bins standing furthest above their floor.
/// Speech concentrates its energy in a few formant regions and harmonics, so averaging
/// over the whole band would drown a voice 10 dB under white noise in the many bins the
/// noise owns; 20 of the 172 bins (about one eighth) is where measured separation of
/// speech from noise peaked.
const SCORED_BINS: usize = 20;
/// Frames quieter than this (in-band, relative to a full-scale sine) are never speech:
/// no intelligible voice is recorded that faint, but over digital silence there is no
/// noise for the score to be relative to, and a faint click or codec artefact would
/// stand far above the floor.
pub(crate) const MIN_LEVEL_DB: f32 = -70.0;
/// Frames analysed per block (30 s).
const BLOCK_FRAMES: usize = 3000;

/// Evidence for each 10 ms frame of the input.
pub(crate) struct FrameEvidence {
    /// Mean over the [`SCORED_BINS`] bins furthest above their noise floor of that
    /// distance in dB (each capped by [`MAX_BIN_RATIO`]): 3-5 dB for steady noise of
    /// any level and colour, 0 for pure tones, 20-30 dB for clean speech.
    pub(crate) excess_db: Vec<f32>,
    /// The same distance averaged over every scored bin: how much of the whole spectrum
    /// is foreground. Unlike the level it moves with a voice's syllables even under a
    /// steady tone louder than the voice.
    pub(crate) band_excess_db: Vec<f32>,
    /// In-band level of the frame in dB relative to a full-scale sine.
    pub(crate) level_db: Vec<f32>,
    /// Whether the frame is voiced (see `Voicing::is_voiced`). Measured only where it
    /// can matter, which keeps the pitch search, the costliest step, off most frames:
    /// on candidate frames (excess at least `candidate_db`, level at least
    /// [`MIN_LEVEL_DB`]), and within each unbroken stretch of candidates only until
    /// `voiced_quota` voiced frames have been found.
    /// Counting voiced frames over any union of stretches therefore gives the true count
    /// or at least `voiced_quota`, which is all the detector asks.
    pub(crate) voiced: Vec<bool>,
}

/// Computes [`FrameEvidence`] for every frame of `samples`; voicing is measured as
/// described on [`FrameEvidence::voiced`].
pub(crate) fn frame_evidence(
    samples: &[f32],
    candidate_db: f32,
    voiced_quota: usize,
) -> FrameEvidence {
    let frames = frame_count(samples.len());
    let mut evidence = FrameEvidence {
        excess_db: vec![0.0; frames],
        band_excess_db: vec![0.0; frames],
        level_db: vec![0.0; frames],
        voiced: vec![false; frames],
    };
    let mut voiced_in_stretch = 0;
    let mut analyzer = FrameAnalyzer::new();
    let margin = FLOOR_REACH_FRAMES + SMOOTH_FRAMES;
    // Frame-major matrices (one row of BIN_COUNT per frame) so every step below runs
    // over contiguous bins.
    let mut power = Vec::new();
    let mut smoothed = Vec::new();
    let mut floor = Vec::new();
    let mut scratch = Vec::new();
    let mut ratios = [0.0f32; BIN_COUNT];

    for block_start in (0..frames).step_by(BLOCK_FRAMES) {
        let block_end = (block_start + BLOCK_FRAMES).min(frames);
        let first = block_start.saturating_sub(margin);
        let last = (block_end + margin).min(frames);
        let width = last - first;

        power.resize(BIN_COUNT * width, 0.0);
        for (t, row) in (first..last).zip(power.chunks_exact_mut(BIN_COUNT)) {
            let level = analyzer.power(samples, t, row);
            if (block_start..block_end).contains(&t) {
                evidence.level_db[t] = 10.0 * level.max(1e-12).log10();
            }
        }
        smoothed.resize(power.len(), 0.0);
        smooth_rows(&power, SMOOTH_FRAMES, &mut smoothed);
        floor.resize(power.len(), 0.0);
        two_sided_minimum(
            &smoothed,
            BIN_COUNT,
            FLOOR_REACH_FRAMES,
            &mut scratch,
            &mut floor,
        );

        for t in block_start..block_end {
            let row = (t - first) * BIN_COUNT..(t - first + 1) * BIN_COUNT;
            let reference = &mut floor[row.clone()];
            for value in reference.iter_mut() {
                *value = MINIMUM_BIAS * *value + ABSOLUTE_FLOOR_POWER;
            }
            for ((ratio, &heard), &background) in
                ratios.iter_mut().zip(&smoothed[row]).zip(reference.iter())
            {
                *ratio = (heard / background).clamp(1.0, MAX_BIN_RATIO);
            }
            evidence.band_excess_db[t] = mean_db(&ratios);
            let (_, _, loudest) =
                ratios.select_nth_unstable_by(BIN_COUNT - SCORED_BINS - 1, |a, b| a.total_cmp(b));
            evidence.excess_db[t] = mean_db(loudest);
            let candidate =
                evidence.excess_db[t] >= candidate_db && evidence.level_db[t] >= MIN_LEVEL_DB;
            if !candidate {
                voiced_in_stretch = 0;
            } else if voiced_in_stretch < voiced_quota {
                let voiced = analyzer.voicing(samples, t, reference).is_voiced();
                evidence.voiced[t] = voiced;
                voiced_in_stretch += usize::from(voiced);
            }
        }
    }
    evidence
}

/// Mean of `10 log10(ratio)` over `ratios` (each within 1..=MAX_BIN_RATIO), taking one
/// logarithm per eight values: their product stays below 1e24, far inside f32, and the
/// logarithm is most of the cost of scoring a frame.
fn mean_db(ratios: &[f32]) -> f32 {
    let sum: f32 = ratios
        .chunks(8)
        .map(|group| group.iter().product::<f32>().log10())
        .sum();
    10.0 * sum / ratios.len() as f32
}

/// Centred moving average over `reach` rows either side, clipped at the ends.
fn smooth_rows(rows: &[f32], reach: usize, out: &mut [f32]) {
    let frames = rows.len() / BIN_COUNT;
    for t in 0..frames {
        let lo = t.saturating_sub(reach);
        let hi = (t + reach + 1).min(frames);
        let scale = 1.0 / (hi - lo) as f32;
        let out_row = &mut out[t * BIN_COUNT..(t + 1) * BIN_COUNT];
        out_row.copy_from_slice(&rows[lo * BIN_COUNT..(lo + 1) * BIN_COUNT]);
        for source in lo + 1..hi {
            for (slot, &value) in out_row.iter_mut().zip(&rows[source * BIN_COUNT..]) {
                *slot += value;
            }
        }
        for slot in out_row.iter_mut() {
            *slot *= scale;
        }
    }
}
