//! Prints fixture locations for scripts (the benchmark, the README demo), fetching and
//! verifying them first: `vttiro-fixtures jfk` prints the JFK WAV path;
//! `vttiro-fixtures librivox` prints `WAV<TAB>TRANSCRIPT` lines; `vttiro-fixtures
//! resemblyzer` prints the path of Resemblyzer's GE2E `pretrained.pt`.

fn main() {
    match std::env::args().nth(1).as_deref() {
        Some("jfk") => println!("{}", vttiro_fixtures::jfk_wav().display()),
        Some("pyannote-sample") => {
            let sample = vttiro_fixtures::pyannote_sample();
            println!("{}\t{}", sample.wav.display(), sample.rttm.display());
        }
        Some("resemblyzer") => {
            println!("{}", vttiro_fixtures::resemblyzer_pretrained().display())
        }
        Some("jfk-text") => println!("{}", vttiro_fixtures::JFK_TRANSCRIPT),
        Some("tiny-en-model") => println!("{}", vttiro_fixtures::tiny_en_model().display()),
        Some("librivox") => {
            for clip in vttiro_fixtures::librivox() {
                println!("{}\t{}", clip.wav.display(), clip.transcript);
            }
        }
        _ => {
            eprintln!(
                "usage: vttiro-fixtures jfk|jfk-text|librivox|pyannote-sample|resemblyzer|tiny-en-model"
            );
            std::process::exit(2);
        }
    }
}
