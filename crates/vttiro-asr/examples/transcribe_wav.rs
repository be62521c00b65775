//! Developer aid: transcribe a 16 kHz mono WAV as one stream of 30-s windows and print
//! segments with word times. `cargo run --release -p vttiro-asr --example transcribe_wav -- MODEL_DIR FILE.wav [beam]`
use vttiro_asr::{AudioWindow, Ct2Engine, Device, Engine, LocalEngineConfig, TranscribeOptions};

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let mut reader = hound::WavReader::open(&args[2]).expect("wav");
    let samples: Vec<f32> = reader
        .samples::<i16>()
        .map(|s| f32::from(s.expect("sample")) / 32768.0)
        .collect();
    let mut engine = Ct2Engine::load(&LocalEngineConfig {
        model_dir: args[1].clone().into(),
        model_name: "dev".into(),
        device: Device::Cpu,
        compute_type: std::env::var("CT").unwrap_or("int8".into()),
        threads: std::env::var("THREADS")
            .map(|t| t.parse().unwrap())
            .unwrap_or(2),
        parallel_streams: std::env::var("STREAMS")
            .map(|t| t.parse().unwrap())
            .unwrap_or(0),
    })
    .expect("load");
    let windows: Vec<AudioWindow> = (0..samples.len())
        .step_by(480_000)
        .map(|s| AudioWindow {
            start: s,
            end: (s + 480_000).min(samples.len()),
        })
        .collect();
    let options = TranscribeOptions {
        beam_size: args.get(3).map(|b| b.parse().unwrap()).unwrap_or(5),
        ..Default::default()
    };
    let t0 = std::time::Instant::now();
    let t = engine
        .transcribe(&samples, &windows, &options, &mut |_| {})
        .expect("transcribe");
    for s in &t.segments {
        println!("[{} - {}] {}", s.start_ms, s.end_ms, s.text);
        for w in &s.words {
            print!("{}({}-{}) ", w.text, w.start_ms, w.end_ms);
        }
        println!();
    }
    eprintln!("elapsed {:?} {:?}", t0.elapsed(), engine.timings());
}
