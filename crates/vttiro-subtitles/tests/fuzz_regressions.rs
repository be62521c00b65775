//! Inputs that once broke the WebVTT parser (found by `scripts/fuzz.sh`, which copies every
//! new crash into `tests/fuzz-regressions/`) or were written by hand to be awkward, replayed
//! through the same checks as the fuzz target so a fixed bug stays fixed without needing
//! cargo-fuzz or libFuzzer to run the suite.

use std::panic::{self, AssertUnwindSafe};
use std::path::Path;

use vttiro_subtitles::{parse_webvtt, to_webvtt, validate_webvtt};

/// The fuzz target's checks (`fuzz/fuzz_targets/parse_webvtt.rs`): no panic, the validator
/// agrees with the parser, and whatever parses survives `to_webvtt` and a second parse
/// unchanged.
fn check(data: &[u8]) -> Result<(), String> {
    let text = String::from_utf8_lossy(data);
    let parsed = panic::catch_unwind(AssertUnwindSafe(|| parse_webvtt(&text)))
        .map_err(|_| "parse_webvtt panicked".to_string())?;
    let validated = panic::catch_unwind(AssertUnwindSafe(|| validate_webvtt(&text)))
        .map_err(|_| "validate_webvtt panicked".to_string())?;
    if validated != parsed.as_ref().map(|_| ()).map_err(Clone::clone) {
        return Err(format!(
            "validate_webvtt says {validated:?}, parse_webvtt says {parsed:?}"
        ));
    }
    let Ok(cues) = parsed else {
        return Ok(());
    };
    let written = to_webvtt(&cues);
    match parse_webvtt(&written) {
        Ok(reparsed) if reparsed == cues => Ok(()),
        Ok(reparsed) => Err(format!(
            "round trip changed the cues:\n  parsed   {cues:?}\n  reparsed {reparsed:?}\n  written  {written:?}"
        )),
        Err(error) => Err(format!(
            "our own output does not parse: {error}\n  parsed  {cues:?}\n  written {written:?}"
        )),
    }
}

#[test]
fn every_saved_input_parses_or_fails_cleanly_and_round_trips() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fuzz-regressions");
    let mut paths: Vec<_> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|entry| entry.unwrap().path())
        .filter(|path| path.is_file())
        .collect();
    paths.sort();
    assert!(!paths.is_empty(), "{} holds no inputs", dir.display());

    // Quiet the default hook so a parser panic shows up once, in the summary below.
    let hook = panic::take_hook();
    panic::set_hook(Box::new(|_| {}));
    let failures: Vec<String> = paths
        .iter()
        .filter_map(|path| {
            let data = std::fs::read(path).unwrap();
            check(&data)
                .err()
                .map(|why| format!("{}: {why}", path.file_name().unwrap().to_string_lossy()))
        })
        .collect();
    panic::set_hook(hook);
    assert!(
        failures.is_empty(),
        "{} of {} inputs fail:\n{}",
        failures.len(),
        paths.len(),
        failures.join("\n")
    );
}

/// The hand-made input exercises the parser's corners; pin what it must read there so the
/// file keeps testing them (a parse error would pass the round-trip test above vacuously).
#[test]
fn hand_made_input_reads_as_a_player_would() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fuzz-regressions");
    let data = std::fs::read(dir.join("line_endings_and_lookalikes.vtt")).unwrap();
    let cues = parse_webvtt(&String::from_utf8_lossy(&data)).unwrap();
    let summary: Vec<(i64, i64, Option<&str>, Vec<&str>)> = cues
        .iter()
        .map(|c| {
            (
                c.start_ms,
                c.end_ms,
                c.speaker.as_deref(),
                c.lines.iter().map(String::as_str).collect(),
            )
        })
        .collect();
    assert_eq!(
        summary,
        vec![
            (
                0,
                500,
                Some("Ana  Lee"),
                vec!["&lt;b&gt; <not a tag> --> -\u{200b}->", "café 日本語"],
            ),
            (500, 501, None, vec!["NOTE"]),
            (500, 600, None, vec!["not a voice&amp"]),
            (
                359_999_999,
                360_000_000,
                None,
                vec!["\u{200f}\u{200f}\u{200e}x"]
            ),
        ]
    );
}
