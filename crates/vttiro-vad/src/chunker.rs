//! Packs speech regions into the windows the recogniser decodes one at a time.
//!
//! Whisper sees exactly 30 s per window; a word cut in half at a window edge is lost or
//! garbled on both sides, and a window full of silence invites invented text. So windows
//! are as long as the limit allows, end only in pauses (at the quietest moment of the
//! pause), skip long silences entirely, and split an unbroken stretch of speech only at
//! its quietest 20 ms, which in running speech is a breath or a pause between phrases.

use std::collections::VecDeque;

use serde::{Deserialize, Serialize};
use vttiro_core::{ms_to_samples, SpeechRegion};

use crate::params::ChunkParams;

/// One window for the recogniser: samples `[start, end)` of the signal, and the speech
/// regions (clipped to the window) that it holds. Serialisable so a pipeline can record
/// its plan and resume chunk by chunk.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Chunk {
    pub start: usize,
    pub end: usize,
    pub regions: Vec<SpeechRegion>,
}

impl Chunk {
    pub fn len(&self) -> usize {
        self.end - self.start
    }

    pub fn is_empty(&self) -> bool {
        self.end <= self.start
    }
}

/// 20 ms, the span over which "quietest moment" is judged: shorter than any syllable, long
/// enough that a single zero crossing never looks like silence.
const QUIET_FRAME: usize = 320;
const QUIET_HOP: usize = QUIET_FRAME / 2;

/// Plans the windows for `regions` (any order; overlaps are merged and everything is
/// clipped to `samples`). Guarantees, for any input:
///
/// * every chunk is at most `params.max_chunk_ms` long and not empty;
/// * chunks are in order and do not overlap;
/// * every sample of every region lies in exactly one chunk;
/// * a chunk boundary inside a region falls on the quietest 20 ms frame of the last
///   third of the window, and one between regions on the quietest frame of the pause
///   (pauses longer than `params.max_inner_pause_ms` are left out of every chunk).
pub fn plan_chunks(regions: &[SpeechRegion], samples: &[f32], params: &ChunkParams) -> Vec<Chunk> {
    let max_len = ms_to_samples(i64::from(params.max_chunk_ms)).max(1);
    let max_pause = ms_to_samples(i64::from(params.max_inner_pause_ms));
    let mut pending: VecDeque<SpeechRegion> = normalise(regions, samples.len()).into();
    let mut chunks = Vec::new();
    // Where the next chunk begins: a region start, or a cut inside a pause or a region.
    let mut chunk_start = match pending.front() {
        Some(first) => first.start,
        None => return chunks,
    };

    while let Some(&first) = pending.front() {
        let limit = chunk_start + max_len;
        // Regions that fit whole, stopping at the first pause too long to keep.
        let mut fitting = 0;
        let mut speech_end = chunk_start;
        for (index, region) in pending.iter().enumerate() {
            let pause_too_long = index > 0 && region.start - speech_end > max_pause;
            if pause_too_long || region.end > limit {
                break;
            }
            fitting = index + 1;
            speech_end = region.end;
        }

        if fitting == 0 {
            // The first region runs past the limit: split it at a breath.
            let search_from = first.start.max(chunk_start + max_len * 2 / 3);
            let cut = quietest_point(samples, search_from, limit).max(first.start + 1);
            chunks.push(Chunk {
                start: chunk_start,
                end: cut,
                regions: vec![SpeechRegion {
                    start: first.start,
                    end: cut,
                }],
            });
            pending[0].start = cut;
            chunk_start = cut;
            continue;
        }

        let members: Vec<SpeechRegion> = pending.drain(..fitting).collect();
        let (end, next_start) = match pending.front() {
            Some(next) if next.start - speech_end <= max_pause => {
                // A short pause ends this chunk only because the next region does not fit:
                // cut at its quietest moment, and let the next chunk begin there unless
                // that would spend more than a third of its room on silence.
                let cut = quietest_point(samples, speech_end, next.start.min(limit));
                (cut, cut.max(next.start.saturating_sub(max_len / 3)))
            }
            Some(next) => (speech_end, next.start),
            None => (speech_end, speech_end),
        };
        chunks.push(Chunk {
            start: chunk_start,
            end,
            regions: members,
        });
        chunk_start = next_start;
    }
    chunks
}

/// Clips to the signal, drops empty regions, sorts and merges overlapping or touching
/// ones, so the planner can rely on sorted, disjoint, non-empty input.
fn normalise(regions: &[SpeechRegion], len: usize) -> Vec<SpeechRegion> {
    let mut clipped: Vec<SpeechRegion> = regions
        .iter()
        .map(|r| SpeechRegion {
            start: r.start.min(len),
            end: r.end.min(len),
        })
        .filter(|r| !r.is_empty())
        .collect();
    clipped.sort_by_key(|r| r.start);
    let mut merged: Vec<SpeechRegion> = Vec::with_capacity(clipped.len());
    for region in clipped {
        match merged.last_mut() {
            Some(last) if region.start <= last.end => last.end = last.end.max(region.end),
            _ => merged.push(region),
        }
    }
    merged
}

/// The centre of the lowest-energy 20 ms frame (10 ms steps) within `[lo, hi)`, or the
/// middle of the span when it is shorter than a frame. Always within `lo..=hi`.
fn quietest_point(samples: &[f32], lo: usize, hi: usize) -> usize {
    if hi <= lo + QUIET_FRAME {
        return lo + (hi.saturating_sub(lo)) / 2;
    }
    let energy = |start: usize| -> f32 {
        samples[start..start + QUIET_FRAME]
            .iter()
            .map(|s| s * s)
            .sum()
    };
    let mut best = lo;
    let mut best_energy = energy(lo);
    let mut start = lo + QUIET_HOP;
    while start + QUIET_FRAME <= hi {
        let e = energy(start);
        if e < best_energy {
            best = start;
            best_energy = e;
        }
        start += QUIET_HOP;
    }
    best + QUIET_FRAME / 2
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECOND: usize = 16_000;

    fn region(start_s: f32, end_s: f32) -> SpeechRegion {
        SpeechRegion {
            start: (start_s * SECOND as f32) as usize,
            end: (end_s * SECOND as f32) as usize,
        }
    }

    /// A loud 200 Hz "voice" with a silent hole where `quiet` says.
    fn loud_with_hole(len: usize, quiet: std::ops::Range<usize>) -> Vec<f32> {
        (0..len)
            .map(|n| {
                if quiet.contains(&n) {
                    0.0
                } else {
                    0.3 * (n as f32 * 2.0 * std::f32::consts::PI * 200.0 / SECOND as f32).sin()
                }
            })
            .collect()
    }

    #[test]
    fn nearby_regions_share_one_window_and_long_silence_is_skipped() {
        let samples = vec![0.0; 120 * SECOND];
        let regions = [region(1.0, 4.0), region(5.0, 9.0), region(60.0, 62.0)];
        let chunks = plan_chunks(&regions, &samples, &ChunkParams::default());
        assert_eq!(chunks.len(), 2, "{chunks:?}");
        assert_eq!((chunks[0].start, chunks[0].end), (SECOND, 9 * SECOND));
        assert_eq!(chunks[0].regions.len(), 2);
        assert_eq!((chunks[1].start, chunks[1].end), (60 * SECOND, 62 * SECOND));
    }

    #[test]
    fn a_short_pause_is_cut_at_its_quietest_moment() {
        // Speech 0-20 s and 20.5-40 s; the pause holds one silent 20 ms stretch.
        let hole = 20 * SECOND + 4_000..20 * SECOND + 4_000 + QUIET_FRAME;
        let mut samples = loud_with_hole(40 * SECOND, hole.clone());
        // The pause itself is quiet but not silent except in the hole.
        for s in &mut samples[20 * SECOND..20 * SECOND + SECOND / 2] {
            *s *= 0.05;
        }
        for s in &mut samples[hole.clone()] {
            *s = 0.0;
        }
        let regions = [region(0.0, 20.0), region(20.5, 40.0)];
        let chunks = plan_chunks(&regions, &samples, &ChunkParams::default());
        assert_eq!(chunks.len(), 2);
        let cut = chunks[0].end;
        assert!(hole.contains(&cut), "cut at {cut}, hole {hole:?}");
        assert_eq!(chunks[1].start, cut);
    }

    #[test]
    fn an_unbroken_region_is_split_at_the_breath_in_the_last_third() {
        // 50 s of loud speech with one 100 ms breath at 25 s and a quieter spot at 5 s
        // that is too early to use.
        let breath = 25 * SECOND..25 * SECOND + 1_600;
        let mut samples = loud_with_hole(50 * SECOND, breath.clone());
        for s in &mut samples[5 * SECOND..5 * SECOND + 1_600] {
            *s = 0.0;
        }
        let chunks = plan_chunks(&[region(0.0, 50.0)], &samples, &ChunkParams::default());
        assert_eq!(chunks.len(), 2, "{chunks:?}");
        assert!(breath.contains(&chunks[0].end), "cut at {}", chunks[0].end);
        assert_eq!(chunks[1].start, chunks[0].end);
        assert_eq!(chunks[1].end, 50 * SECOND);
    }

    #[test]
    fn no_regions_no_chunks() {
        assert!(plan_chunks(&[], &[0.0; 100], &ChunkParams::default()).is_empty());
        let outside = [SpeechRegion {
            start: 500,
            end: 900,
        }];
        assert!(plan_chunks(&outside, &[0.0; 100], &ChunkParams::default()).is_empty());
    }
}
