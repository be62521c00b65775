//! Speed of the detector and planner on ten minutes of audio: real speech (the fixture
//! clips, looped with pauses) under a quiet room's hiss. The detector must stay well
//! under a second for this on one core.

use std::hint::black_box;
use std::time::Duration;

use criterion::{criterion_group, criterion_main, Criterion};
use vttiro_vad::{detect_speech, plan_chunks, ChunkParams, VadParams};

const RATE: usize = 16_000;

fn read_wav(path: &std::path::Path) -> Vec<f32> {
    hound::WavReader::open(path)
        .expect("fixture wav")
        .samples::<i16>()
        .map(|s| f32::from(s.expect("wav sample")) / 32_768.0)
        .collect()
}

fn ten_minutes_of_speech() -> Vec<f32> {
    let mut clips = vec![read_wav(&vttiro_fixtures::jfk_wav())];
    clips.extend(vttiro_fixtures::librivox().iter().map(|c| read_wav(&c.wav)));
    let target = 600 * RATE;
    let mut signal = Vec::with_capacity(target);
    let mut turn = 0usize;
    while signal.len() < target {
        signal.extend_from_slice(&clips[turn % clips.len()]);
        let pause_ms = [300, 1_200, 600, 3_000][turn % 4];
        signal.extend(std::iter::repeat_n(0.0, pause_ms * RATE / 1000));
        turn += 1;
    }
    signal.truncate(target);
    // Deterministic hiss at about -50 dBFS.
    let mut state = 0x2545_f491_4f6c_dd1du64;
    for s in &mut signal {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        *s += ((state >> 40) as f32 / (1u64 << 24) as f32 - 0.5) * 0.011;
    }
    signal
}

fn bench(c: &mut Criterion) {
    let audio = ten_minutes_of_speech();
    let params = VadParams::default();
    let mut group = c.benchmark_group("ten_minutes");
    group
        .sample_size(10)
        .measurement_time(Duration::from_secs(8));
    group.bench_function("detect_speech", |b| {
        b.iter(|| detect_speech(black_box(&audio), &params))
    });
    let regions = detect_speech(&audio, &params);
    group.bench_function("plan_chunks", |b| {
        b.iter(|| plan_chunks(black_box(&regions), &audio, &ChunkParams::default()))
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
