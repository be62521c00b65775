//! The service's [`JobRunner`]: a job's media through the same code as `vttiro transcribe`,
//! with the configuration the server started with overridden by the job's options, so a
//! job's subtitles are the CLI's subtitles.

use std::path::{Path, PathBuf};

use serde_json::{json, Value};
use vttiro_core::ErrorCode;
use vttiro_server::{JobRunner, RunContext, RunFailure, RunOutput, RunRequest};

use crate::config::{RawConfig, Settings};
use crate::TranscribeArgs;

/// Transcribes a job's media with the configuration the server started with, overridden
/// by the job's options, through the same code as `vttiro transcribe`.
pub struct PipelineRunner {
    base: RawConfig,
    scratch: PathBuf,
}

impl PipelineRunner {
    pub fn new(base: RawConfig, scratch: PathBuf) -> PipelineRunner {
        PipelineRunner { base, scratch }
    }
}

impl JobRunner for PipelineRunner {
    fn run(
        &self,
        request: &RunRequest<'_>,
        context: &mut dyn RunContext,
    ) -> Result<RunOutput, RunFailure> {
        let fail = |code: ErrorCode, message: String| RunFailure { code, message };
        let text = |key: &str| {
            request
                .spec
                .get(key)
                .and_then(Value::as_str)
                .map(str::to_string)
        };
        let mut raw = self.base.clone();
        raw.engine = text("engine").or(raw.engine);
        raw.model = text("model").or(raw.model);
        raw.language = text("language").or(raw.language);
        raw.prompt = text("prompt").or(raw.prompt);
        raw.format = Some(request.formats.join(","));
        let out_dir = self.scratch.join(request.job_id);
        raw.output_dir = Some(out_dir.clone());
        if let Some(diarize) = request.spec.get("diarize").and_then(Value::as_bool) {
            raw.diarize = Some(diarize);
        }
        raw.speakers = request
            .spec
            .get("speakers")
            .and_then(Value::as_u64)
            .map(|n| n as usize)
            .or(raw.speakers);
        let settings = Settings::validate(&raw)
            .map_err(|e| fail(ErrorCode::InvalidArgument, format!("{e:#}")))?;
        let _ = std::fs::remove_dir_all(&out_dir);
        let args = TranscribeArgs::for_job(request.media.clone(), out_dir.clone());
        context.progress("transcribe", 0.0);
        let mut last_error = None;
        let code = crate::transcribe::run_with(&args, &settings, &mut |code, message| {
            last_error = Some((code, message.to_string()));
        });
        let outcome = if code == 0 {
            read_outputs(&out_dir, &request.formats)
        } else {
            let (code, message) =
                last_error.unwrap_or((ErrorCode::Internal, format!("exit status {code}")));
            Err(fail(code, message))
        };
        let _ = std::fs::remove_dir_all(&out_dir);
        outcome
    }
}

fn read_outputs(dir: &Path, formats: &[String]) -> Result<RunOutput, RunFailure> {
    let mut files = Vec::new();
    let mut summary = json!({});
    for format in formats {
        let path = dir.join(format!("media.{format}"));
        let bytes = std::fs::read(&path).map_err(|e| RunFailure {
            code: ErrorCode::OutputFailed,
            message: format!("{}: {e}", path.display()),
        })?;
        if format == "json" {
            if let Ok(value) = serde_json::from_slice::<Value>(&bytes) {
                summary = json!({
                    "engine": value["engine"],
                    "model": value["model"],
                    "language": value["language"],
                    "timings": value["timings"],
                    "usage": value["usage"],
                });
            }
        }
        files.push((format.clone(), bytes));
    }
    Ok(RunOutput { files, summary })
}
