//! `vttiro eval`: WER of a transcript and DER of a speaker labelling against references,
//! reading whatever vttiro writes (TXT, WebVTT, SRT, JSON, RTTM) on the hypothesis side.

use std::path::{Path, PathBuf};

use clap::{Args, Subcommand};
use serde_json::json;
use vttiro_core::ErrorCode;
use vttiro_eval::{diarization_error_rate, parse_rttm, word_error_rate, SpeakerTurn};

#[derive(Args, Debug)]
#[command(args_conflicts_with_subcommands = true)]
pub struct EvalArgs {
    #[command(subcommand)]
    pub command: Option<EvalCommand>,
    /// Reference: a transcript (.txt) for WER, or speaker turns (.rttm) for DER.
    #[arg(long = "ref")]
    pub reference: Option<PathBuf>,
    /// Hypothesis: .txt, .vtt, .srt or vttiro's .json for WER; .rttm, .vtt (voice spans) or
    /// vttiro's .json (word speakers) for DER.
    #[arg(long)]
    pub hyp: Option<PathBuf>,
    /// Print the result as JSON.
    #[arg(long)]
    pub json: bool,
}

#[derive(Subcommand, Debug)]
pub enum EvalCommand {
    /// Word error rate (%) of a hypothesis text file against a reference text file, after
    /// Whisper-style English normalisation.
    Wer {
        reference: PathBuf,
        hypothesis: PathBuf,
    },
}

type Failure = (ErrorCode, String);

fn read(path: &Path) -> Result<String, Failure> {
    std::fs::read_to_string(path).map_err(|e| {
        let code = if e.kind() == std::io::ErrorKind::NotFound {
            ErrorCode::InputNotFound
        } else {
            ErrorCode::InvalidArgument
        };
        (code, format!("{}: cannot read: {e}", path.display()))
    })
}

fn extension(path: &Path) -> String {
    path.extension()
        .and_then(|e| e.to_str())
        .unwrap_or("")
        .to_ascii_lowercase()
}

fn invalid(path: &Path, reason: impl std::fmt::Display) -> Failure {
    (
        ErrorCode::InvalidSubtitles,
        format!("{}: {reason}", path.display()),
    )
}

/// Cues of a WebVTT or SRT file, read and parsed the way `validate` and `convert` do.
fn cues(path: &Path) -> Result<Vec<vttiro_subtitles::Cue>, Failure> {
    crate::subtitles_cmd::read_cues(path)
        .map(|located| located.into_iter().map(|l| l.cue).collect())
        .map_err(|failure| (failure.code, failure.message(path)))
}

/// The words of a hypothesis file of any format vttiro writes.
fn hypothesis_text(path: &Path) -> Result<String, Failure> {
    match extension(path).as_str() {
        "txt" => read(path),
        "json" => {
            let value: serde_json::Value =
                serde_json::from_str(&read(path)?).map_err(|e| invalid(path, e))?;
            value["text"]
                .as_str()
                .map(str::to_string)
                .ok_or_else(|| invalid(path, "no \"text\" field"))
        }
        _ => Ok(cues(path)?
            .iter()
            .map(|c| c.lines.join(" "))
            .collect::<Vec<_>>()
            .join(" ")),
    }
}

/// Speaker turns of a hypothesis: RTTM as is, WebVTT cues with voice spans, or the words
/// of vttiro's JSON with their speakers.
fn hypothesis_turns(path: &Path) -> Result<Vec<SpeakerTurn>, Failure> {
    let turn = |start_ms, end_ms, speaker: &str| SpeakerTurn {
        file: String::new(),
        start_ms,
        end_ms,
        speaker: speaker.to_string(),
    };
    match extension(path).as_str() {
        "rttm" => parse_rttm(&read(path)?).map_err(|e| invalid(path, e)),
        "json" => {
            let transcript: vttiro_core::Transcript =
                serde_json::from_str(&read(path)?).map_err(|e| invalid(path, e))?;
            Ok(transcript
                .words()
                .filter_map(|w| {
                    w.speaker
                        .as_deref()
                        .map(|s| turn(w.start_ms, w.end_ms.max(w.start_ms + 1), s))
                })
                .collect())
        }
        _ => Ok(cues(path)?
            .iter()
            .filter_map(|c| c.speaker.as_deref().map(|s| turn(c.start_ms, c.end_ms, s)))
            .collect()),
    }
}

fn evaluate(reference: &Path, hypothesis: &Path, as_json: bool) -> Result<(), Failure> {
    if extension(reference) == "rttm" {
        let reference_turns = parse_rttm(&read(reference)?).map_err(|e| invalid(reference, e))?;
        let stats = diarization_error_rate(&reference_turns, &hypothesis_turns(hypothesis)?);
        if as_json {
            println!(
                "{}",
                json!({
                    "der": stats.der(),
                    "missed": stats.missed_rate(),
                    "false_alarm": stats.false_alarm_rate(),
                    "confusion": stats.confusion_rate(),
                    "stats": stats,
                })
            );
        } else {
            println!(
                "DER {:.2}% (missed {:.2}%, false alarm {:.2}%, confusion {:.2}%) over {:.1} s of reference speech; speakers: {} reference, {} hypothesis",
                stats.der() * 100.0,
                stats.missed_rate() * 100.0,
                stats.false_alarm_rate() * 100.0,
                stats.confusion_rate() * 100.0,
                stats.total_ms as f64 / 1000.0,
                stats.reference_speakers,
                stats.hypothesis_speakers
            );
        }
        return Ok(());
    }
    let stats = word_error_rate(&read(reference)?, &hypothesis_text(hypothesis)?);
    if as_json {
        println!("{}", json!({"wer": stats.wer(), "stats": stats}));
    } else {
        println!(
            "WER {:.2}% (S {} D {} I {} N {})",
            stats.wer() * 100.0,
            stats.substitutions,
            stats.deletions,
            stats.insertions,
            stats.reference_words
        );
    }
    Ok(())
}

pub fn run(args: &EvalArgs) -> i32 {
    let result = match (&args.command, &args.reference, &args.hyp) {
        (
            Some(EvalCommand::Wer {
                reference,
                hypothesis,
            }),
            _,
            _,
        ) => (|| {
            let stats = word_error_rate(&read(reference)?, &read(hypothesis)?);
            println!("{:.2}", stats.wer() * 100.0);
            Ok(())
        })(),
        (None, Some(reference), Some(hypothesis)) => evaluate(reference, hypothesis, args.json),
        _ => Err((
            ErrorCode::InvalidArgument,
            "eval needs --ref REF and --hyp HYP (or `eval wer REF HYP`)".to_string(),
        )),
    };
    match result {
        Ok(()) => 0,
        Err((code, message)) => {
            eprintln!("error: {message}");
            code.exit_code()
        }
    }
}
