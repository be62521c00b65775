//! `vttiro transcribe --diarize` end to end: generated multi-speaker dialogs with exact
//! references (scripts/make_dialogs.py, flite voices), the pyannote-audio sample (real
//! telephone speech), the real GE2E weights from the pinned Resemblyzer wheel, and the
//! DER that `vttiro eval` computes (itself cross-checked against pyannote.metrics).

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::{Mutex, OnceLock};

use common::{asr_store, stderr, vttiro_in};
use serde_json::Value;

static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());

fn serial() -> std::sync::MutexGuard<'static, ()> {
    ONE_AT_A_TIME.lock().unwrap_or_else(|p| p.into_inner())
}

/// The GE2E weights converted by `vttiro models import` from Resemblyzer's pretrained.pt
/// into a store of their own, once per test binary; returns the safetensors path.
fn ge2e_model() -> &'static Path {
    static MODEL: OnceLock<(tempfile::TempDir, PathBuf)> = OnceLock::new();
    &MODEL
        .get_or_init(|| {
            let store = tempfile::tempdir().unwrap();
            let pretrained = vttiro_fixtures::resemblyzer_pretrained();
            let o = vttiro_in(
                &[
                    "models",
                    "import",
                    pretrained.to_str().unwrap(),
                    "--name",
                    "ge2e",
                ],
                store.path(),
                store.path(),
            );
            assert!(o.status.success(), "import: {}", stderr(&o));
            let o = vttiro_in(&["models", "path", "ge2e"], store.path(), store.path());
            assert!(o.status.success(), "path: {}", stderr(&o));
            let dir = PathBuf::from(String::from_utf8_lossy(&o.stdout).trim());
            let file = if dir.is_dir() {
                dir.join("model.safetensors")
            } else {
                dir
            };
            assert!(file.is_file(), "{}", file.display());
            (store, file)
        })
        .1
}

fn make_dialogs(dir: &Path, count: usize, seed: u32) {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../scripts/make_dialogs.py");
    let status = Command::new("python3")
        .arg(&script)
        .arg(dir)
        .args(["--count", &count.to_string(), "--seed", &seed.to_string()])
        .arg("--no-piper")
        .status()
        .expect("python3 on PATH");
    assert!(status.success(), "make_dialogs.py failed");
}

/// Transcribes `media` with speakers into `stem.{rttm,vtt,json}` next to nothing else.
fn diarize(media: &Path, out_dir: &Path, extra: &[&str]) -> Output {
    let stem = media.file_stem().unwrap().to_string_lossy().into_owned();
    let mut args = vec![
        "transcribe",
        media.to_str().unwrap(),
        "--no-download",
        "--diarize",
        "--speaker-model",
        ge2e_model().to_str().unwrap(),
        "--format",
        "rttm,vtt,json",
        "--output-dir",
        out_dir.to_str().unwrap(),
    ];
    args.extend_from_slice(extra);
    let o = vttiro_in(&args, out_dir, &asr_store());
    assert!(o.status.success(), "{stem}: {}", stderr(&o));
    o
}

fn der(reference: &Path, hypothesis: &Path, cwd: &Path) -> Value {
    let o = vttiro_in(
        &[
            "eval",
            "--ref",
            reference.to_str().unwrap(),
            "--hyp",
            hypothesis.to_str().unwrap(),
            "--json",
        ],
        cwd,
        &asr_store(),
    );
    assert!(o.status.success(), "eval: {}", stderr(&o));
    serde_json::from_slice(&o.stdout).unwrap()
}

/// The voice names of every cue (`<v Name>`), one list per cue.
fn cue_voices(vtt: &str) -> Vec<Vec<String>> {
    vtt.split("\n\n")
        .filter(|block| block.contains("-->"))
        .map(|block| {
            let mut voices: Vec<String> = block
                .match_indices("<v ")
                .map(|(at, _)| {
                    let rest = &block[at + 3..];
                    rest[..rest.find('>').unwrap()].to_string()
                })
                .collect();
            voices.dedup();
            voices
        })
        .collect()
}

#[test]
fn generated_dialogs_are_diarized_with_low_der_and_the_right_speaker_count() {
    let _serial = serial();
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    // Seed 5 gives 2, 3, 4 and 5 speakers; the MP4 and WebM containers both go through.
    make_dialogs(d, 4, 5);
    let (mut total_ms, mut error_ms, mut counts_right) = (0i64, 0i64, 0);
    let mut report = Vec::new();
    for k in 1..=4 {
        let stem = format!("dialog-{k:02}");
        let media = d.join(format!(
            "{stem}.{}",
            if k % 2 == 0 { "webm" } else { "mp4" }
        ));
        let out = d.join(format!("out-{k}"));
        std::fs::create_dir_all(&out).unwrap();
        diarize(&media, &out, &[]);
        let result = der(
            &d.join(format!("{stem}.rttm")),
            &out.join(format!("{stem}.rttm")),
            d,
        );
        let stats = &result["stats"];
        total_ms += stats["total_ms"].as_i64().unwrap();
        error_ms += stats["missed_ms"].as_i64().unwrap()
            + stats["false_alarm_ms"].as_i64().unwrap()
            + stats["confusion_ms"].as_i64().unwrap();
        if stats["hypothesis_speakers"] == stats["reference_speakers"] {
            counts_right += 1;
        }
        report.push(format!("{stem}: {result}"));
        assert!(
            result["der"].as_f64().unwrap() <= 0.15,
            "{stem} DER too high: {result}"
        );
        // Every cue belongs to one speaker, and every cue has one.
        let vtt = std::fs::read_to_string(out.join(format!("{stem}.vtt"))).unwrap();
        let voices = cue_voices(&vtt);
        assert!(!voices.is_empty());
        assert!(voices.iter().all(|v| v.len() == 1), "{stem}: {voices:?}");
        assert!(
            voices.iter().all(|v| v[0].starts_with("Speaker ")),
            "{voices:?}"
        );
        let json: Value = serde_json::from_str(
            &std::fs::read_to_string(out.join(format!("{stem}.json"))).unwrap(),
        )
        .unwrap();
        assert_eq!(
            json["diarization"]["speakers"], stats["hypothesis_speakers"],
            "{json}"
        );
    }
    let pooled = error_ms as f64 / total_ms as f64;
    eprintln!("pooled DER {:.2}%\n{}", 100.0 * pooled, report.join("\n"));
    assert!(pooled <= 0.10, "pooled DER {pooled}\n{}", report.join("\n"));
    assert!(counts_right >= 3, "{}", report.join("\n"));
}

#[test]
fn the_pyannote_sample_scores_within_fifteen_percent_der() {
    let _serial = serial();
    let dir = tempfile::tempdir().unwrap();
    let sample = vttiro_fixtures::pyannote_sample();
    diarize(&sample.wav, dir.path(), &[]);
    let result = der(&sample.rttm, &dir.path().join("sample.rttm"), dir.path());
    eprintln!("pyannote sample: {result}");
    assert!(result["der"].as_f64().unwrap() <= 0.15, "{result}");
    assert_eq!(result["stats"]["hypothesis_speakers"], 2, "{result}");
}

#[test]
fn speaker_names_and_a_forced_count_shape_the_subtitles() {
    let _serial = serial();
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    make_dialogs(d, 2, 8);
    // Dialog 2 has three speakers; forcing two must merge, and names follow appearance.
    diarize(
        &d.join("dialog-02.wav"),
        d,
        &["--speakers", "2", "--speaker-names", "Ana, Ben"],
    );
    let vtt = std::fs::read_to_string(d.join("dialog-02.vtt")).unwrap();
    let mut names: Vec<String> = cue_voices(&vtt).into_iter().flatten().collect();
    let first = names[0].clone();
    names.sort();
    names.dedup();
    assert_eq!(names, vec!["Ana".to_string(), "Ben".to_string()], "{vtt}");
    assert_eq!(first, "Ana");
    let rttm = std::fs::read_to_string(d.join("dialog-02.rttm")).unwrap();
    let mut rttm_names: Vec<&str> = rttm
        .lines()
        .map(|l| l.split_whitespace().nth(7).unwrap())
        .collect();
    rttm_names.sort_unstable();
    rttm_names.dedup();
    assert_eq!(rttm_names, vec!["Ana", "Ben"]);
}

#[test]
fn bad_speaker_options_fail_with_one_line_and_write_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let jfk = vttiro_fixtures::jfk_wav();
    let run = |extra: &[&str]| {
        let mut args = vec![
            "transcribe",
            jfk.to_str().unwrap(),
            "--no-download",
            "--output-dir",
        ];
        args.push(d.to_str().unwrap());
        args.extend_from_slice(extra);
        vttiro_in(&args, d, &asr_store())
    };
    for (flags, code, needle) in [
        (&["--speakers", "0"][..], 2, "--speakers 0"),
        (
            &["--min-speakers", "3", "--max-speakers", "2"][..],
            2,
            "--min-speakers 3",
        ),
        (
            &["--diarize", "--speaker-model", "/nonexistent/voice.onnx"][..],
            24,
            "/nonexistent/voice.onnx",
        ),
    ] {
        let o = run(flags);
        assert_eq!(o.status.code(), Some(code), "{flags:?}: {}", stderr(&o));
        let err = stderr(&o);
        assert_eq!(err.trim().lines().count(), 1, "{err}");
        assert!(err.contains(needle), "{err}");
    }
    let written: Vec<_> = std::fs::read_dir(d)
        .unwrap()
        .filter_map(|e| e.ok())
        .filter(|e| e.path().extension().is_some_and(|x| x == "vtt"))
        .collect();
    assert!(written.is_empty());
}
