//! Our WER and DER against the reference implementations on the same inputs: NIST's
//! `sclite` (Debian `sctk`) for WER and `pyannote.metrics` (PyPI, pinned, in a venv under
//! `~/.cache/vttiro`) for DER. They must agree within 0.1 percentage points.
//!
//! The inputs are generated here from a fixed seed: random speaker turns with overlaps,
//! gaps, extra and missing speakers for DER, and word-level edits of real sentences for WER.

use std::path::{Path, PathBuf};
use std::process::Command;

use vttiro_eval::{diarization_error_rate, normalize_english, parse_rttm, word_error_rate};

const PYANNOTE_PACKAGES: &[&str] = &[
    "pyannote.metrics==3.2.1",
    "pyannote.core==6.1.0",
    // pyannote.metrics 3.2.1 imports it without declaring it.
    "typing_extensions==4.12.2",
];

/// A small deterministic generator (64-bit LCG, Knuth's constants): the test needs varied
/// inputs, not statistical quality, and the same inputs on every run.
struct Lcg(u64);

impl Lcg {
    fn next(&mut self) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        self.0 >> 33
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
}

/// Random turns of `speakers` speakers: some follow each other, some leave a gap, some
/// overlap the previous turn (always by another speaker: one person does not talk over
/// themselves, and pyannote.metrics would count such a stretch twice).
fn random_rttm(rng: &mut Lcg, file: &str, speakers: u64, turns: u64) -> String {
    let mut out = String::new();
    let mut t = rng.below(500);
    let mut busy_until = vec![0u64; speakers as usize];
    for _ in 0..turns {
        let first_choice = rng.below(speakers);
        // The first speaker, from a random one on, who is not still talking at `t`; if all
        // are, the turn waits for the first of them to finish.
        let speaker = (0..speakers)
            .map(|k| (first_choice + k) % speakers)
            .find(|&s| busy_until[s as usize] <= t)
            .unwrap_or_else(|| {
                let (s, &end) = busy_until
                    .iter()
                    .enumerate()
                    .min_by_key(|(_, &end)| end)
                    .expect("at least one speaker");
                t = end;
                s as u64
            });
        let duration = 150 + rng.below(4000);
        out.push_str(&format!(
            "SPEAKER {file} 1 {:.3} {:.3} <NA> <NA> s{speaker} <NA> <NA>\n",
            t as f64 / 1000.0,
            duration as f64 / 1000.0
        ));
        busy_until[speaker as usize] = t + duration;
        t = match rng.below(4) {
            0 if speakers > 1 => t + duration / 2,
            1 => t + duration + rng.below(1500),
            _ => t + duration,
        };
    }
    out
}

/// The venv with pyannote.metrics (see [`vttiro_fixtures::python_venv`]).
fn pyannote_python() -> PathBuf {
    vttiro_fixtures::python_venv("pyannote-venv", PYANNOTE_PACKAGES)
}

const PYANNOTE_SCRIPT: &str = r#"
import json, sys, warnings
warnings.simplefilter("ignore")
from pyannote.core import Annotation, Segment
from pyannote.metrics.diarization import DiarizationErrorRate

def load(path):
    annotation = Annotation()
    for k, line in enumerate(open(path)):
        f = line.split()
        if f and f[0] == "SPEAKER":
            onset, duration = float(f[3]), float(f[4])
            annotation[Segment(onset, onset + duration), k] = f[7]
    return annotation

metric = DiarizationErrorRate(collar=0.0, skip_overlap=False)
out = []
for ref, hyp in zip(sys.argv[1::2], sys.argv[2::2]):
    d = metric(load(ref), load(hyp), detailed=True)
    out.append({k: d[k] for k in ["total", "missed detection", "false alarm", "confusion",
                                  "diarization error rate"]})
print(json.dumps(out))
"#;

/// pyannote.metrics' detailed DER for each (reference, hypothesis) RTTM pair in `args`.
fn pyannote_der(python: &Path, args: &[PathBuf]) -> Vec<serde_json::Value> {
    let output = Command::new(python)
        .arg("-c")
        .arg(PYANNOTE_SCRIPT)
        .args(args)
        .output()
        .expect("run pyannote.metrics");
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_slice(&output.stdout).unwrap()
}

#[test]
fn der_agrees_with_pyannote_metrics() {
    let python = pyannote_python();
    let dir = tempfile::tempdir().unwrap();
    let mut rng = Lcg(0x5eed_d1a7);
    let mut args: Vec<PathBuf> = Vec::new();
    let mut ours = Vec::new();
    for case in 0..40 {
        let file = format!("rec{case}");
        let (speakers, turns) = (2 + rng.below(4), 4 + rng.below(20));
        let reference = random_rttm(&mut rng, &file, speakers, turns);
        // Hypotheses range from near misses of the reference to unrelated labellings.
        let (speakers, turns) = (1 + rng.below(6), 2 + rng.below(24));
        let hypothesis = random_rttm(&mut rng, &file, speakers, turns);
        let (ref_path, hyp_path) = (
            dir.path().join(format!("{case}.ref.rttm")),
            dir.path().join(format!("{case}.hyp.rttm")),
        );
        std::fs::write(&ref_path, &reference).unwrap();
        std::fs::write(&hyp_path, &hypothesis).unwrap();
        args.push(ref_path);
        args.push(hyp_path);
        ours.push(diarization_error_rate(
            &parse_rttm(&reference).unwrap(),
            &parse_rttm(&hypothesis).unwrap(),
        ));
    }
    // The reference against itself relabelled: a perfect score on both sides.
    let same = random_rttm(&mut Lcg(7), "same", 3, 12);
    let relabelled = same.replace(" s0 ", " z9 ").replace(" s1 ", " s0 ");
    let (a, b) = (dir.path().join("same.ref"), dir.path().join("same.hyp"));
    std::fs::write(&a, &same).unwrap();
    std::fs::write(&b, &relabelled).unwrap();
    args.push(a);
    args.push(b);
    ours.push(diarization_error_rate(
        &parse_rttm(&same).unwrap(),
        &parse_rttm(&relabelled).unwrap(),
    ));

    let theirs = pyannote_der(&python, &args);
    assert_eq!(theirs.len(), ours.len());
    let mut worst = 0.0f64;
    for (k, (our, their)) in ours.iter().zip(&theirs).enumerate() {
        let get = |key: &str| their[key].as_f64().unwrap();
        let total = get("total");
        assert!(
            (our.total_ms as f64 / 1000.0 - total).abs() < 1e-6,
            "case {k}: ours {our:?}, pyannote {their}"
        );
        let difference = (our.der() - get("diarization error rate")).abs();
        worst = worst.max(difference);
        assert!(
            difference <= 0.001,
            "case {k}: ours {our:?} DER {:.4}, pyannote {their}",
            our.der()
        );
        for (mine, key) in [
            (our.missed_ms, "missed detection"),
            (our.false_alarm_ms, "false alarm"),
            (our.confusion_ms, "confusion"),
        ] {
            assert!(
                (mine as f64 / 1000.0 - get(key)).abs() <= 0.001 * total.max(1.0),
                "case {k} {key}: ours {mine} ms, pyannote {}",
                get(key)
            );
        }
    }
    assert_eq!(ours.last().unwrap().der(), 0.0);
    eprintln!("largest DER difference from pyannote.metrics: {worst:.6}");
}

/// The same check on a real reference: pyannote.audio's two-speaker telephone sample
/// (pinned wheel), against hypotheses a diarizer could plausibly produce.
#[test]
fn der_on_the_pyannote_sample_agrees_with_pyannote_metrics() {
    let python = pyannote_python();
    let sample = vttiro_fixtures::pyannote_sample();
    let reference_text = std::fs::read_to_string(&sample.rttm).unwrap();
    let reference = parse_rttm(&reference_text).unwrap();
    let speakers: std::collections::BTreeSet<&str> =
        reference.iter().map(|t| t.speaker.as_str()).collect();
    assert_eq!(speakers.len(), 2, "{reference:?}");
    let overlaps = reference.iter().enumerate().any(|(i, a)| {
        reference[i + 1..]
            .iter()
            .any(|b| b.speaker != a.speaker && b.start_ms < a.end_ms && a.start_ms < b.end_ms)
    });
    assert!(overlaps, "the sample has overlapping speech");
    let rttm = |turns: &[(i64, i64, String)]| -> String {
        turns
            .iter()
            .map(|(s, e, who)| {
                format!(
                    "SPEAKER sample 1 {:.3} {:.3} <NA> <NA> {who} <NA> <NA>\n",
                    *s as f64 / 1000.0,
                    (e - s) as f64 / 1000.0
                )
            })
            .collect()
    };
    // Late by 300 ms; everyone as one speaker; turns cut at 2-s boundaries and labelled
    // by parity (a poor clusterer).
    let late: Vec<_> = reference
        .iter()
        .map(|t| (t.start_ms + 300, t.end_ms + 300, t.speaker.clone()))
        .collect();
    let single: Vec<_> = reference
        .iter()
        .map(|t| (t.start_ms, t.end_ms, "one".to_string()))
        .collect();
    let mut chopped = Vec::new();
    for t in &reference {
        let mut s = t.start_ms;
        while s < t.end_ms {
            let e = (s / 2000 + 1) * 2000;
            let e = e.min(t.end_ms);
            chopped.push((s, e, format!("c{}", (s / 2000) % 2)));
            s = e;
        }
    }
    let dir = tempfile::tempdir().unwrap();
    let mut args = Vec::new();
    let mut ours = Vec::new();
    for (k, hypothesis) in [late, single, chopped].iter().enumerate() {
        let text = rttm(hypothesis);
        let path = dir.path().join(format!("{k}.rttm"));
        std::fs::write(&path, &text).unwrap();
        args.push(sample.rttm.clone());
        args.push(path);
        ours.push(diarization_error_rate(
            &reference,
            &parse_rttm(&text).unwrap(),
        ));
    }
    let theirs = pyannote_der(&python, &args);
    for (k, (our, their)) in ours.iter().zip(&theirs).enumerate() {
        let expected = their["diarization error rate"].as_f64().unwrap();
        assert!(
            (our.der() - expected).abs() <= 0.001,
            "hypothesis {k}: ours {:.4} {our:?}, pyannote {their}",
            our.der()
        );
    }
}

/// Applies random word edits to `text`: substitutions, deletions and insertions.
fn corrupt(rng: &mut Lcg, text: &str) -> String {
    const SPARE: &[&str] = &["river", "blue", "quickly", "seven", "house", "they"];
    let mut out = Vec::new();
    for word in text.split_whitespace() {
        match rng.below(10) {
            0 => {}
            1 => out.push(SPARE[rng.below(SPARE.len() as u64) as usize].to_string()),
            2 => {
                out.push(word.to_string());
                out.push(SPARE[rng.below(SPARE.len() as u64) as usize].to_string());
            }
            _ => out.push(word.to_string()),
        }
    }
    out.join(" ")
}

/// sclite's `Sum/Avg` line: (Sub, Del, Ins, Err) in percent of reference words.
fn sclite_summary(reference: &Path, hypothesis: &Path) -> (f64, f64, f64, f64) {
    let output = Command::new("sctk")
        .arg("sclite")
        .arg("-r")
        .arg(reference)
        .arg("trn")
        .arg("-h")
        .arg(hypothesis)
        .arg("trn")
        .args(["-i", "wsj", "-o", "sum", "stdout"])
        .output()
        .expect("sctk (Debian package sctk) on PATH");
    let text = String::from_utf8_lossy(&output.stdout);
    let line = text
        .lines()
        .find(|l| l.contains("Sum/Avg"))
        .unwrap_or_else(|| panic!("no Sum/Avg line in sclite output:\n{text}"));
    let numbers: Vec<f64> = line
        .split(['|', ' '])
        .filter_map(|field| field.parse::<f64>().ok())
        .collect();
    // #Snt #Wrd Corr Sub Del Ins Err S.Err
    (numbers[3], numbers[4], numbers[5], numbers[6])
}

#[test]
fn wer_agrees_with_sclite() {
    let sentences = [
        "And so my fellow Americans ask not what your country can do for you",
        "He was not an ill-disposed young man unless to be rather cold hearted",
        "The new bridge opens to traffic on Monday morning",
        "Thank you all for coming tonight and drive home safely",
        "Mr. John Dashwood had then leisure to consider how much there might be",
        "We will meet at the corner of Maple and Fifth at 7 o'clock",
    ];
    let dir = tempfile::tempdir().unwrap();
    let mut rng = Lcg(42);
    let mut reference_trn = String::new();
    let mut hypothesis_trn = String::new();
    let mut pairs = Vec::new();
    for round in 0..8 {
        for (k, sentence) in sentences.iter().enumerate() {
            let hypothesis = corrupt(&mut rng, sentence);
            // sclite compares words as given, so both sides get our normaliser first; the
            // check is of the alignment and counting, on identical tokens.
            let (r, h) = (normalize_english(sentence), normalize_english(&hypothesis));
            let id = format!("spk{round}_utt{k}");
            reference_trn.push_str(&format!("{r} ({id})\n"));
            hypothesis_trn.push_str(&format!("{h} ({id})\n"));
            pairs.push((sentence.to_string(), hypothesis));
        }
    }
    let (ref_path, hyp_path) = (dir.path().join("ref.trn"), dir.path().join("hyp.trn"));
    std::fs::write(&ref_path, reference_trn).unwrap();
    std::fs::write(&hyp_path, hypothesis_trn).unwrap();
    let (_sub, _del, _ins, err) = sclite_summary(&ref_path, &hyp_path);
    let ours = vttiro_eval::corpus_wer(&pairs);
    let our_err = ours.wer() * 100.0;
    // sclite prints one decimal; agreement within 0.1 points plus that rounding.
    assert!(
        (our_err - err).abs() <= 0.15,
        "ours {our_err:.2}% ({ours:?}), sclite {err}%"
    );
    // And on single utterances the counts are the same edit distance.
    let single = word_error_rate(&pairs[0].0, &pairs[0].1);
    assert!(single.reference_words > 0);
    eprintln!("corpus WER: ours {our_err:.3}%, sclite {err}%");
}

/// The dialog generator (scripts/make_dialogs.py, flite voices) writes references whose
/// RTTM parses, covers 2 to 5 speakers and scores perfectly against itself.
#[test]
fn generated_dialogs_carry_exact_references() {
    let dir = tempfile::tempdir().unwrap();
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../scripts/make_dialogs.py");
    let status = Command::new("python3")
        .arg(&script)
        .arg(dir.path())
        .args(["--count", "4", "--seed", "3", "--no-piper"])
        .status()
        .expect("python3 on PATH");
    assert!(status.success(), "make_dialogs.py failed");
    let mut counts = Vec::new();
    for k in 1..=4 {
        let rttm = std::fs::read_to_string(dir.path().join(format!("dialog-{k:02}.rttm"))).unwrap();
        let turns = parse_rttm(&rttm).unwrap();
        let stats = diarization_error_rate(&turns, &turns);
        assert_eq!(stats.der(), 0.0);
        counts.push(stats.reference_speakers);
        let meta: serde_json::Value = serde_json::from_str(
            &std::fs::read_to_string(dir.path().join(format!("dialog-{k:02}.json"))).unwrap(),
        )
        .unwrap();
        assert!(meta.to_string().contains("turns"), "{meta}");
        for ext in ["wav", "mp4", "webm", "txt"] {
            assert!(dir.path().join(format!("dialog-{k:02}.{ext}")).is_file());
        }
    }
    counts.sort_unstable();
    assert_eq!(counts, vec![2, 3, 4, 5]);
}
