//! Serves all four stand-ins on 127.0.0.1 for a while, printing the variables that point
//! vttiro at them: `eval "$(cargo run --example serve -- KEY 600)"` in one shell lets
//! `scripts/live_cloud_check.sh` be tried out without real keys.

use std::time::Duration;

use vttiro_cloud_mock::{Mock, MockConfig};

fn main() {
    let mut args = std::env::args().skip(1);
    let key = args.next().unwrap_or_else(|| "stand-in-key".into());
    let seconds: u64 = args.next().and_then(|s| s.parse().ok()).unwrap_or(300);
    let mocks = [
        ("OPENAI", Mock::openai(MockConfig::new(&key))),
        ("GEMINI", Mock::gemini(MockConfig::new(&key))),
        ("ASSEMBLYAI", Mock::assemblyai(MockConfig::new(&key))),
        ("DEEPGRAM", Mock::deepgram(MockConfig::new(&key))),
    ];
    for (name, mock) in &mocks {
        println!("export VTTIRO_{name}_BASE_URL={}", mock.base_url());
    }
    use std::io::Write;
    let _ = std::io::stdout().flush();
    std::thread::sleep(Duration::from_secs(seconds));
}
