//! Turns per-frame evidence into speech regions: hysteresis on the noise-relative excess,
//! then the duration rules of [`VadParams`], then a check that each region actually
//! contains voice.

use vttiro_core::{ms_to_samples, SpeechRegion};

use crate::features::{frame_evidence, MIN_LEVEL_DB};
use crate::params::VadParams;
use crate::spectrum::{frame_start, HOP};

/// Speech rises and falls with its syllables, 2-8 times a second, by 10-30 dB. A region
/// counts as syllabic when, on average between frames 50 ms apart, either its in-band
/// level changes by [`MIN_LEVEL_MODULATION_DB`] or its band-wide excess over the floor
/// changes by [`MIN_EXCESS_MODULATION_DB`]. The level catches speech in loud broadband
/// noise (measured 1.8-2.3 dB at 0 dB SNR in white noise, where the band-wide excess
/// barely moves); the excess catches speech under a steady tone as loud as the voice
/// (4-5.5 dB, where the tone flattens the level to 1.4-1.8 dB). A held note with
/// vibrato, which the floor cannot absorb because its partials keep moving between
/// bins, measures 0.0 and 0.9: sustained sounds fail both.
const MIN_LEVEL_MODULATION_DB: f32 = 1.5;
const MIN_EXCESS_MODULATION_DB: f32 = 2.0;
const MODULATION_LAG_FRAMES: usize = 5;

/// Finds the spans of `samples` (16 kHz mono) that hold speech. Regions are sorted,
/// disjoint, padded by `params.speech_pad_ms` and clipped to the signal; an input
/// without speech gives an empty list.
///
/// Works offline on the whole signal: the noise floor at each moment is estimated from
/// the second before and the second after it, so steady sounds (hiss, hum, tones,
/// held chords) are floor from their first frame on and are never speech, whatever
/// their level. A stretch of frames above the floor becomes a region only if it lasts
/// `min_speech_ms`, holds `min_voiced_ms` of voiced frames (periodic at a voice pitch and
/// not a lone sine, which rules out hiss bursts, clicks and beeps) and rises and falls
/// like syllables (which rules out sustained notes).
pub fn detect_speech(samples: &[f32], params: &VadParams) -> Vec<SpeechRegion> {
    if samples.is_empty() {
        return Vec::new();
    }
    let frames_of = |ms: u32| (ms_to_samples(i64::from(ms))).div_ceil(HOP);
    let min_voiced = frames_of(params.min_voiced_ms);
    let evidence = frame_evidence(samples, params.continue_threshold_db, min_voiced);
    let frames = evidence.excess_db.len();
    let loud_enough = |t: usize| evidence.level_db[t] >= MIN_LEVEL_DB;
    let starts = |t: usize| loud_enough(t) && evidence.excess_db[t] >= params.threshold_db;
    let continues =
        |t: usize| loud_enough(t) && evidence.excess_db[t] >= params.continue_threshold_db;

    // Hysteresis: a run of continuing frames counts only if some frame in it starts one.
    let mut runs: Vec<(usize, usize)> = Vec::new();
    let mut t = 0;
    while t < frames {
        if !continues(t) {
            t += 1;
            continue;
        }
        let begin = t;
        let mut seeded = false;
        while t < frames && continues(t) {
            seeded |= starts(t);
            t += 1;
        }
        if seeded {
            runs.push((begin, t));
        }
    }

    let bridge = frames_of(params.min_silence_ms);
    let mut merged: Vec<(usize, usize)> = Vec::with_capacity(runs.len());
    for run in runs {
        match merged.last_mut() {
            Some(last) if run.0 - last.1 < bridge => last.1 = run.1,
            _ => merged.push(run),
        }
    }

    let min_frames = frames_of(params.min_speech_ms);
    let pad = ms_to_samples(i64::from(params.speech_pad_ms));
    let mut regions: Vec<SpeechRegion> = Vec::new();
    for (begin, end) in merged {
        if end - begin < min_frames {
            continue;
        }
        let voiced = evidence.voiced[begin..end].iter().filter(|&&v| v).count();
        if voiced < min_voiced {
            continue;
        }
        let syllabic = mean_change_db(&evidence.level_db[begin..end]) >= MIN_LEVEL_MODULATION_DB
            || mean_change_db(&evidence.band_excess_db[begin..end]) >= MIN_EXCESS_MODULATION_DB;
        if !syllabic {
            continue;
        }
        let start = frame_start(begin).saturating_sub(pad);
        let stop = (frame_start(end) + pad).min(samples.len());
        match regions.last_mut() {
            Some(last) if start <= last.end => last.end = stop,
            _ => regions.push(SpeechRegion { start, end: stop }),
        }
    }
    regions
}

/// Mean absolute change of a per-frame dB series between frames
/// [`MODULATION_LAG_FRAMES`] apart; a run too short to have such pairs is judged on its
/// whole range instead.
fn mean_change_db(series_db: &[f32]) -> f32 {
    if series_db.len() <= MODULATION_LAG_FRAMES {
        let (low, high) = series_db
            .iter()
            .fold((f32::INFINITY, f32::NEG_INFINITY), |(lo, hi), &l| {
                (lo.min(l), hi.max(l))
            });
        return (high - low).max(0.0);
    }
    let pairs = series_db.len() - MODULATION_LAG_FRAMES;
    let total: f32 = series_db[MODULATION_LAG_FRAMES..]
        .iter()
        .zip(series_db)
        .map(|(later, earlier)| (later - earlier).abs())
        .sum();
    total / pairs as f32
}
