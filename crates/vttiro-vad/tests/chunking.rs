//! The chunk planner's guarantees, checked on random inputs (proptest) and on real
//! speech, where every cut must land in a pause or a breath.

mod support;

use proptest::prelude::*;
use support::*;
use vttiro_core::{ms_to_samples, SpeechRegion};
use vttiro_vad::{detect_speech, plan_chunks, Chunk, ChunkParams, VadParams};

/// Which samples of a `len`-sample signal some region claims, computed without the
/// planner's own normalisation.
fn speech_mask(regions: &[SpeechRegion], len: usize) -> Vec<bool> {
    let mut mask = vec![false; len];
    for r in regions {
        let end = r.end.min(len);
        if r.start < end {
            mask[r.start..end].fill(true);
        }
    }
    mask
}

fn check_plan(regions: &[SpeechRegion], samples: &[f32], params: &ChunkParams, chunks: &[Chunk]) {
    let max_len = ms_to_samples(i64::from(params.max_chunk_ms));
    for chunk in chunks {
        assert!(chunk.start < chunk.end, "empty chunk {chunk:?}");
        assert!(
            chunk.len() <= max_len,
            "chunk of {} > {max_len}",
            chunk.len()
        );
        assert!(chunk.end <= samples.len());
        assert!(!chunk.regions.is_empty(), "chunk without speech {chunk:?}");
        for pair in chunk.regions.windows(2) {
            assert!(
                pair[0].end < pair[1].start,
                "regions in a chunk overlap: {chunk:?}"
            );
        }
        for r in &chunk.regions {
            assert!(
                chunk.start <= r.start && r.start < r.end && r.end <= chunk.end,
                "{chunk:?}"
            );
        }
    }
    for pair in chunks.windows(2) {
        assert!(
            pair[0].end <= pair[1].start,
            "chunks out of order or overlapping"
        );
    }

    // Every speech sample lies in exactly one chunk's regions, and chunks claim no speech
    // that was not in the input.
    let wanted = speech_mask(regions, samples.len());
    let mut claimed = vec![0u8; samples.len()];
    for r in chunks.iter().flat_map(|c| &c.regions) {
        for slot in &mut claimed[r.start..r.end] {
            *slot += 1;
        }
    }
    for (i, (&want, &count)) in wanted.iter().zip(&claimed).enumerate() {
        assert_eq!(
            u8::from(want),
            count,
            "sample {i}: speech {want}, claimed {count} times"
        );
    }

    // A boundary inside running speech is only ever a split of a too-long stretch, made
    // once the window is at least two thirds full.
    for chunk in chunks {
        let end = chunk.end;
        if end < samples.len() && wanted[end - 1] && wanted[end] {
            assert!(
                chunk.len() * 3 >= max_len * 2,
                "cut at {end} inside speech in a chunk of only {} samples",
                chunk.len()
            );
        }
    }
}

/// Noise with a slowly changing loudness, so some moments are clearly quieter.
fn textured_signal(len: usize, seed: u64) -> Vec<f32> {
    let mut noise = Noise::new(seed);
    let mut envelope = 0.1f64;
    (0..len)
        .map(|n| {
            if n % 800 == 0 {
                envelope = (envelope * (1.0 + 0.5 * noise.gaussian())).clamp(1e-4, 0.5);
            }
            (envelope * noise.gaussian()) as f32
        })
        .collect()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(96))]

    #[test]
    fn chunks_are_bounded_ordered_disjoint_and_cover_all_speech(
        len in 1usize..1_200_000,
        raw in prop::collection::vec((0usize..1_300_000, 1usize..700_000), 0..25),
        max_chunk_ms in 1_000u32..31_000,
        max_inner_pause_ms in 0u32..4_000,
        seed in any::<u64>(),
    ) {
        // Regions in any order, overlapping, and partly past the end of the signal.
        let regions: Vec<SpeechRegion> = raw
            .iter()
            .map(|&(start, length)| SpeechRegion { start, end: start + length })
            .collect();
        let samples = textured_signal(len, seed);
        let params = ChunkParams { max_chunk_ms, max_inner_pause_ms };
        let chunks = plan_chunks(&regions, &samples, &params);
        check_plan(&regions, &samples, &params, &chunks);
    }
}

/// Three minutes of real speech: the clips joined with pauses of varied length (some
/// shorter than a breath, some long) under a quiet room's hiss.
fn long_real_speech() -> Vec<f32> {
    let clips = real_clips();
    let pauses_ms = [150, 400, 2_500, 250, 800, 4_000, 300];
    let mut signal = Vec::new();
    let mut turn = 0;
    while signal.len() < 180 * RATE {
        for (_, clip) in &clips {
            signal.extend_from_slice(clip);
            let pause = ms_to_samples(pauses_ms[turn % pauses_ms.len()]);
            signal.extend(std::iter::repeat_n(0.0, pause));
            turn += 1;
        }
    }
    let hiss = white_noise(signal.len(), -55.0, 51);
    add(&signal, &hiss)
}

fn frame_db(samples: &[f32], centre: usize) -> f64 {
    let start = centre.saturating_sub(160).min(samples.len() - 320);
    20.0 * rms(&samples[start..start + 320]).max(1e-9).log10()
}

#[test]
fn real_speech_is_cut_only_in_pauses() {
    let signal = long_real_speech();
    let regions = detect_speech(&signal, &VadParams::default());
    let params = ChunkParams::default();
    let chunks = plan_chunks(&regions, &signal, &params);
    check_plan(&regions, &signal, &params, &chunks);
    assert!(
        chunks.len() >= 6,
        "3 minutes of speech in {} chunks",
        chunks.len()
    );
    // Long pauses are skipped, so the windows hold less audio than the signal.
    let windowed: usize = chunks.iter().map(Chunk::len).sum();
    assert!(
        windowed < signal.len() * 95 / 100,
        "{windowed} of {}",
        signal.len()
    );

    let voiced = voiced_frames(&signal);
    let loudest = voiced
        .iter()
        .map(|&v| frame_db(&signal, v))
        .fold(f64::MIN, f64::max);
    for pair in chunks.windows(2) {
        if pair[0].end != pair[1].start {
            continue; // a skipped pause: nothing was cut
        }
        let cut = pair[0].end;
        let level = frame_db(&signal, cut);
        assert!(
            level < loudest - 30.0,
            "cut at {:.2} s is only {:.1} dB under the loudest frame",
            cut as f64 / RATE as f64,
            loudest - level
        );
    }
}

#[test]
fn unbroken_real_speech_is_split_at_breaths() {
    // Treat the whole three minutes as one region, as if the speaker never paused long
    // enough for VAD: the planner must still find the quiet moments itself.
    let signal = long_real_speech();
    let everything = [SpeechRegion {
        start: 0,
        end: signal.len(),
    }];
    let params = ChunkParams {
        max_chunk_ms: 10_000,
        ..ChunkParams::default()
    };
    let chunks = plan_chunks(&everything, &signal, &params);
    check_plan(&everything, &signal, &params, &chunks);
    assert!(chunks.len() >= 18);
    let loudest = voiced_frames(&signal)
        .iter()
        .map(|&v| frame_db(&signal, v))
        .fold(f64::MIN, f64::max);
    for chunk in &chunks[..chunks.len() - 1] {
        assert!(
            chunk.len() >= ms_to_samples(6_600),
            "split before the last third"
        );
        let level = frame_db(&signal, chunk.end);
        assert!(
            level < loudest - 30.0,
            "split at {:.2} s is only {:.1} dB under the loudest frame",
            chunk.end as f64 / RATE as f64,
            loudest - level
        );
    }
}
