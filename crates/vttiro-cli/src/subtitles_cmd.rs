//! `vttiro validate` and `vttiro convert`: subtitle files in, diagnostics or another
//! format out. Syntax errors stop a file; readability rules are warnings unless
//! `--strict`.

use std::path::{Path, PathBuf};

use clap::Args;
use vttiro_core::ErrorCode;
use vttiro_subtitles::{
    check_layout, parse_srt_located, parse_webvtt_located, to_srt_with, to_webvtt_with,
    LayoutRules, LocatedCue, SrtSpeakers, VttOptions,
};

#[derive(Args, Debug)]
pub struct ValidateArgs {
    /// WebVTT (.vtt) or SubRip (.srt) files.
    #[arg(required = true)]
    pub files: Vec<PathBuf>,
    /// Treat readability warnings (line length, reading speed, durations, gaps) as errors.
    #[arg(long)]
    pub strict: bool,
    /// Characters per line (grapheme clusters).
    #[arg(long, default_value_t = 42)]
    pub max_chars: usize,
    #[arg(long, default_value_t = 2)]
    pub max_lines: usize,
    /// Reading speed limit in characters per second (17; 20 for fast speech, 13 for children).
    #[arg(long, default_value_t = 17.0)]
    pub max_cps: f32,
}

#[derive(Args, Debug)]
pub struct ConvertArgs {
    /// Input subtitles (.vtt or .srt).
    pub input: PathBuf,
    /// Output file; its extension (.vtt or .srt) picks the format.
    pub output: PathBuf,
    /// How SRT output shows speakers: prefix ("Name: "), dash ("- " on a speaker change) or omit.
    #[arg(long, default_value = "prefix")]
    pub srt_speakers: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum SubtitleFormat {
    Vtt,
    Srt,
}

fn format_of(path: &Path) -> Option<SubtitleFormat> {
    match path
        .extension()
        .and_then(|e| e.to_str())
        .map(str::to_ascii_lowercase)
        .as_deref()
    {
        Some("vtt") => Some(SubtitleFormat::Vtt),
        Some("srt") => Some(SubtitleFormat::Srt),
        _ => None,
    }
}

/// Why a file could not be read as subtitles.
pub(crate) struct ReadFailure {
    pub(crate) code: ErrorCode,
    line: Option<usize>,
    reason: String,
}

impl ReadFailure {
    /// `file: line N: reason`, the one-line form for error messages.
    pub(crate) fn message(&self, path: &Path) -> String {
        match self.line {
            Some(line) => format!("{}: line {line}: {}", path.display(), self.reason),
            None => format!("{}: {}", path.display(), self.reason),
        }
    }
}

fn parse_failure(code: ErrorCode, line: usize, text: String) -> ReadFailure {
    let prefix = format!("line {line}: ");
    ReadFailure {
        code,
        line: Some(line),
        reason: text.strip_prefix(&prefix).unwrap_or(&text).to_string(),
    }
}

/// Reads and parses one file.
pub(crate) fn read_cues(path: &Path) -> Result<Vec<LocatedCue>, ReadFailure> {
    read_subtitles(path).map(|(_, cues)| cues)
}

/// Reads and parses one file, keeping its text for further checks.
fn read_subtitles(path: &Path) -> Result<(String, Vec<LocatedCue>), ReadFailure> {
    let plain = |code, reason: String| ReadFailure {
        code,
        line: None,
        reason,
    };
    let format = format_of(path)
        .ok_or_else(|| plain(ErrorCode::InvalidArgument, "not a .vtt or .srt file".into()))?;
    if path.is_dir() {
        return Err(plain(ErrorCode::InputIsDirectory, "is a directory".into()));
    }
    let bytes = std::fs::read(path).map_err(|e| {
        let code = match e.kind() {
            std::io::ErrorKind::NotFound => ErrorCode::InputNotFound,
            _ => ErrorCode::Internal,
        };
        plain(code, format!("cannot read: {e}"))
    })?;
    let text = String::from_utf8(bytes).map_err(|e| {
        plain(
            ErrorCode::InvalidSubtitles,
            format!(
                "not UTF-8 text (invalid byte at offset {})",
                e.utf8_error().valid_up_to()
            ),
        )
    })?;
    let cues = match format {
        SubtitleFormat::Vtt => parse_webvtt_located(&text)
            .map_err(|e| parse_failure(e.code(), e.line(), e.to_string()))?,
        SubtitleFormat::Srt => parse_srt_located(&text)
            .map_err(|e| parse_failure(e.code(), e.line(), e.to_string()))?,
    };
    Ok((text, cues))
}

pub fn validate(args: &ValidateArgs) -> i32 {
    let rules = LayoutRules {
        max_chars_per_line: args.max_chars.max(1),
        max_lines: args.max_lines.max(1),
        max_cps: args.max_cps,
        ..LayoutRules::default()
    };
    let mut worst: Option<ErrorCode> = None;
    for path in &args.files {
        let (text, located) = match read_subtitles(path) {
            Ok(read) => read,
            Err(failure) => {
                // file:line: level: message, the form editors and CI annotations link.
                match failure.line {
                    Some(line) => {
                        println!("{}:{line}: error: {}", path.display(), failure.reason)
                    }
                    None => println!("{}: error: {}", path.display(), failure.reason),
                }
                worst.get_or_insert(failure.code);
                continue;
            }
        };
        let cues: Vec<_> = located.iter().map(|l| l.cue.clone()).collect();
        let violations = check_layout(&cues, &rules);
        let level = if args.strict { "error" } else { "warning" };
        let setting_warnings = if format_of(path) == Some(SubtitleFormat::Vtt) {
            vttiro_subtitles::webvtt_setting_warnings(&text)
        } else {
            Vec::new()
        };
        for (line, message) in &setting_warnings {
            println!("{}:{line}: {level}: {message}", path.display());
        }
        for v in &violations {
            println!(
                "{}:{}: {level}: cue {} {}: {}",
                path.display(),
                located[v.cue].line,
                v.cue + 1,
                v.rule.as_str(),
                v.detail
            );
        }
        let found = violations.len() + setting_warnings.len();
        if args.strict && found > 0 && worst.is_none() {
            worst = Some(ErrorCode::SubtitleRulesBroken);
        }
        eprintln!(
            "{}: {} cues, {found} {level}{}",
            path.display(),
            cues.len(),
            if found == 1 { "" } else { "s" }
        );
    }
    worst.map_or(0, ErrorCode::exit_code)
}

pub fn convert(args: &ConvertArgs) -> i32 {
    let speakers = match args.srt_speakers.as_str() {
        "prefix" => SrtSpeakers::Prefix,
        "dash" => SrtSpeakers::Dash,
        "omit" => SrtSpeakers::Omit,
        other => {
            eprintln!("error: --srt-speakers {other}: expected prefix, dash or omit");
            return ErrorCode::InvalidArgument.exit_code();
        }
    };
    let Some(target) = format_of(&args.output) else {
        eprintln!(
            "error: {}: the output must end in .vtt or .srt",
            args.output.display()
        );
        return ErrorCode::InvalidArgument.exit_code();
    };
    let cues: Vec<_> = match read_cues(&args.input) {
        Ok(located) => located.into_iter().map(|l| l.cue).collect(),
        Err(failure) => {
            eprintln!("error: {}", failure.message(&args.input));
            return failure.code.exit_code();
        }
    };
    let text = match target {
        SubtitleFormat::Vtt => to_webvtt_with(
            &cues,
            &VttOptions {
                cue_ids: true,
                speaker_colours: true,
                ..VttOptions::default()
            },
        ),
        SubtitleFormat::Srt => to_srt_with(&cues, speakers),
    };
    if let Some(dir) = args.output.parent().filter(|d| !d.as_os_str().is_empty()) {
        if let Err(e) = std::fs::create_dir_all(dir) {
            eprintln!(
                "error: {}: cannot create the output directory: {e}",
                dir.display()
            );
            return ErrorCode::OutputFailed.exit_code();
        }
    }
    if let Err(e) = vttiro_subtitles::write_atomic(&args.output, text.as_bytes()) {
        eprintln!("error: {}: cannot write: {e}", args.output.display());
        return ErrorCode::OutputFailed.exit_code();
    }
    eprintln!("wrote {} ({} cues)", args.output.display(), cues.len());
    0
}
