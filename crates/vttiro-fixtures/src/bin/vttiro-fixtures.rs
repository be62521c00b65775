//! Prints fixture locations for scripts (the benchmark, the README demo), fetching and
//! verifying them first: `vttiro-fixtures jfk` prints the JFK WAV path;
//! `vttiro-fixtures librivox` prints `WAV<TAB>TRANSCRIPT` lines.

fn main() {
    match std::env::args().nth(1).as_deref() {
        Some("jfk") => println!("{}", vttiro_fixtures::jfk_wav().display()),
        Some("pyannote-sample") => {
            let sample = vttiro_fixtures::pyannote_sample();
            println!("{}\t{}", sample.wav.display(), sample.rttm.display());
        }
        Some("jfk-text") => println!("{}", vttiro_fixtures::JFK_TRANSCRIPT),
        Some("tiny-en-model") => println!("{}", vttiro_fixtures::tiny_en_model().display()),
        Some("librivox") => {
            for clip in vttiro_fixtures::librivox() {
                println!("{}\t{}", clip.wav.display(), clip.transcript);
            }
        }
        _ => {
            eprintln!("usage: vttiro-fixtures jfk|jfk-text|librivox|tiny-en-model");
            std::process::exit(2);
        }
    }
}
