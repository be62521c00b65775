//! Snapshot tests on real transcripts: what vttiro's tiny.en decode of the JFK clip and of
//! the five LibriVox clips (the pinned PyPI fixtures, joined with 0.5 s pauses) looks like
//! as WebVTT, SRT and plain text. The word-timed transcripts are stored beside the
//! snapshots so the test needs no model and is the same on every CPU; a layout or writer
//! change that alters real output shows up here as a diff to review.
//!
//! After an intended change, rewrite the snapshots with `VTTIRO_BLESS=1 cargo test -p
//! vttiro-subtitles --test snapshots` and review the diff.

use std::path::{Path, PathBuf};

use vttiro_core::Transcript;
use vttiro_subtitles::{
    check_layout, layout_with_report, parse_srt, parse_webvtt, to_srt_with, to_txt, to_webvtt_with,
    LayoutRules, SrtSpeakers, VttOptions,
};

fn dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/snapshots")
}

fn transcript(name: &str) -> Transcript {
    let text = std::fs::read_to_string(dir().join(format!("{name}.transcript.json"))).unwrap();
    serde_json::from_str(&text).unwrap()
}

/// The LibriVox transcript as a dialogue: segments alternate between two speakers.
fn dialogue() -> Transcript {
    let mut t = transcript("librivox");
    for (k, segment) in t.segments.iter_mut().enumerate() {
        let speaker = if k % 2 == 0 { "Narrator" } else { "Elinor" };
        for word in &mut segment.words {
            word.speaker = Some(speaker.to_string());
        }
    }
    t
}

fn check_snapshot(file: &str, actual: &str) {
    let path = dir().join(file);
    if std::env::var_os("VTTIRO_BLESS").is_some() {
        std::fs::write(&path, actual).unwrap();
        return;
    }
    let expected = std::fs::read_to_string(&path).unwrap_or_else(|e| {
        panic!(
            "{}: {e} (run with VTTIRO_BLESS=1 to create it)",
            path.display()
        )
    });
    if expected != actual {
        let first_difference = expected
            .lines()
            .zip(actual.lines())
            .position(|(a, b)| a != b)
            .unwrap_or_else(|| expected.lines().count().min(actual.lines().count()));
        panic!(
            "{file} differs from the snapshot at line {}:\n--- expected\n{}\n--- actual\n{}",
            first_difference + 1,
            expected
                .lines()
                .skip(first_difference)
                .take(6)
                .collect::<Vec<_>>()
                .join("\n"),
            actual
                .lines()
                .skip(first_difference)
                .take(6)
                .collect::<Vec<_>>()
                .join("\n"),
        );
    }
}

fn render_all(name: &str, t: &Transcript) {
    let rules = LayoutRules::default();
    let (cues, report) = layout_with_report(t, &rules);
    let vtt = to_webvtt_with(
        &cues,
        &VttOptions {
            language: Some(t.language.clone()),
            note: vec![format!("snapshot: {name}")],
            cue_ids: true,
            speaker_colours: true,
            ..VttOptions::default()
        },
    );
    let srt = to_srt_with(&cues, SrtSpeakers::Prefix);
    check_snapshot(&format!("{name}.vtt"), &vtt);
    check_snapshot(&format!("{name}.srt"), &srt);
    check_snapshot(&format!("{name}.txt"), &to_txt(t));
    check_snapshot(
        &format!("{name}.layout.json"),
        &format!("{:#}\n", report.to_json()),
    );
    // Whatever the snapshot says, the output must parse back to the same cues and every
    // rule the report does not mention must hold.
    assert_eq!(parse_webvtt(&vtt).unwrap(), cues);
    let srt_cues = parse_srt(&srt).unwrap();
    assert_eq!(srt_cues.len(), cues.len());
    assert_eq!(check_layout(&cues, &rules), report.violations);
    let words: Vec<String> = t.words().map(|w| w.text.trim().to_string()).collect();
    let shown: Vec<String> = cues
        .iter()
        .flat_map(|c| c.lines.iter())
        .flat_map(|l| l.split(' ').map(str::to_string))
        .collect();
    assert_eq!(shown, words, "every word shown once, in order");
}

#[test]
fn jfk() {
    render_all("jfk", &transcript("jfk"));
}

#[test]
fn librivox() {
    render_all("librivox", &transcript("librivox"));
}

#[test]
fn librivox_as_a_dialogue() {
    render_all("dialogue", &dialogue());
}
