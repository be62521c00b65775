//! Diarizes one media file with the GE2E encoder and prints RTTM, for tuning and
//! benchmarks: `diarize_file MODEL.safetensors MEDIA [THREADS]`. Environment overrides:
//! THRESHOLD, PENALTY, SPEAKERS.

use std::path::Path;
use std::time::Instant;

use vttiro_diarize::{diarize, ge2e::Ge2eEncoder, DiarizeOptions, SpeakerCount};

fn env_f32(name: &str) -> Option<f32> {
    std::env::var(name).ok().and_then(|v| v.parse().ok())
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let threads = args.get(3).and_then(|t| t.parse().ok()).unwrap_or(2);
    let model = Path::new(&args[1]);
    let media = Path::new(&args[2]);
    let decoded = vttiro_media::decode(media, &Default::default()).expect("decode");
    let speech = vttiro_vad::detect_speech(&decoded.samples, &Default::default());
    let mut encoder = Ge2eEncoder::load(model, threads).expect("model");
    let mut options = DiarizeOptions::default();
    if let Some(t) = env_f32("THRESHOLD") {
        options.threshold = t;
    }
    if let Some(hop) = env_f32("HOP") {
        options.plan.hop = (hop * 16_000.0) as usize;
    }
    if let Some(window) = env_f32("WINDOW") {
        options.plan.window = (window * 16_000.0) as usize;
    }
    if let Some(p) = env_f32("PENALTY") {
        options.switch_penalty = p;
    }
    if let Some(n) = std::env::var("SPEAKERS").ok().and_then(|v| v.parse().ok()) {
        options.count = SpeakerCount {
            exact: Some(n),
            ..Default::default()
        };
    }
    if let Ok(dump) = std::env::var("DUMP") {
        // Raw material for tuning outside Rust: every window's span and embedding.
        use vttiro_diarize::{segment, SpeakerEncoder};
        let plan = options.plan;
        let pieces = segment::pieces(&decoded.samples, &speech, &plan);
        let windows = segment::windows(&pieces, &plan);
        let audio: Vec<&[f32]> = windows
            .iter()
            .map(|w| &decoded.samples[w.start..w.end])
            .collect();
        let embeddings = encoder.embed(&audio).expect("embed");
        let rows: Vec<String> = windows
            .iter()
            .zip(&embeddings)
            .map(|(w, e)| {
                format!(
                    "{{\"piece\":{},\"start\":{},\"end\":{},\"e\":{:?}}}",
                    w.piece, w.start, w.end, e
                )
            })
            .collect();
        std::fs::write(dump, format!("[{}]", rows.join(","))).expect("dump");
    }
    let started = Instant::now();
    let result = diarize(
        &decoded.samples,
        &speech,
        &mut encoder,
        &options,
        &mut |_| {},
    )
    .expect("diarize");
    eprintln!(
        "{} windows, {} speakers, {:.2} s",
        result.windows,
        result.speakers,
        started.elapsed().as_secs_f64()
    );
    let file = media.file_stem().unwrap().to_string_lossy();
    for t in result.turns {
        println!(
            "SPEAKER {file} 1 {:.3} {:.3} <NA> <NA> spk{} <NA> <NA>",
            t.start_ms as f64 / 1000.0,
            (t.end_ms - t.start_ms) as f64 / 1000.0,
            t.speaker
        );
    }
}
