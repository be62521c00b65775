//! Transcription for a host process (the Python package): one input at a time through the
//! same plan, engines, pipeline and renderer as `vttiro transcribe` and the service's
//! workers, so a notebook's subtitles are the CLI's subtitles.
//!
//! What differs from the CLI is what a long-lived, interruptible host needs: loaded models
//! stay in a [`ModelPool`] between calls, recognition goes through the pipeline's
//! resumable path with its checkpoints in a directory the caller names (Google Drive in
//! Colab), so a run cut off by a disconnect continues where it stopped, and a flag the
//! caller sets stops the run at the next checkpoint.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use vttiro_asr::{CancelToken, Usage};
use vttiro_core::ErrorCode;
use vttiro_pipeline::{CheckpointError, PipelineError, PipelineOutput, RunControl};
use vttiro_subtitles::OutputFormat;

use vttiro_models::{DownloadProgress, ModelError, ModelStore, SourceChoice};

use crate::config::{self, Backend, RawConfig, Settings};
use crate::job_runner::{JobProgress, ModelPool};
use crate::transcribe::{self, Failure, ModelSource, RunPlan};
use crate::TranscribeArgs;

/// Speech per checkpoint for the local engine: about one planned chunk, so an interrupt or
/// a disconnect costs at most one chunk's decoding.
pub const DEFAULT_CHECKPOINT_SPEECH_MS: i64 = 30_000;

/// One input and how to transcribe it. `overrides` sits above the configuration file and
/// `VTTIRO_*` environment layers, as flags do for the CLI.
#[derive(Debug, Clone)]
pub struct Request {
    pub input: PathBuf,
    pub overrides: RawConfig,
    /// Names for the speakers in order of first appearance (implies diarization).
    pub speaker_names: Vec<String>,
    pub audio_track: Option<usize>,
    /// Where per-chunk checkpoints are kept; `None` keeps none (a rerun starts over) and
    /// recognises the input in one engine call, like the CLI.
    pub checkpoint_dir: Option<PathBuf>,
    /// Most speech per checkpoint (local engine only; cloud engines answer per request).
    pub checkpoint_speech_ms: i64,
}

impl Request {
    pub fn new(input: PathBuf) -> Request {
        Request {
            input,
            overrides: RawConfig::default(),
            speaker_names: Vec::new(),
            audio_track: None,
            checkpoint_dir: None,
            checkpoint_speech_ms: DEFAULT_CHECKPOINT_SPEECH_MS,
        }
    }
}

/// Why a transcription ended without a result: the code of the error table and the
/// one-line message naming the input.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{message}")]
pub struct EmbeddedError {
    pub code: ErrorCode,
    pub message: String,
    /// The caller's flag stopped the run; `message` says where.
    pub cancelled: bool,
}

fn failed(f: Failure) -> EmbeddedError {
    EmbeddedError {
        code: f.code,
        message: f.message,
        cancelled: false,
    }
}

impl From<PipelineError> for EmbeddedError {
    fn from(e: PipelineError) -> Self {
        EmbeddedError {
            code: e.code(),
            cancelled: matches!(e, PipelineError::Cancelled { .. }),
            message: e.to_string(),
        }
    }
}

/// A finished transcription: the pipeline's output plus what is needed to render it in
/// any format exactly as `vttiro transcribe` writes it.
pub struct Transcribed {
    pub input: PathBuf,
    pub output: PipelineOutput,
    /// The engine that produced the text (`ct2`, `whispercpp`, `deepgram`, …).
    pub backend: String,
    pub usage: Usage,
    /// Checkpoint groups in the plan, and how many came from an earlier, interrupted run.
    pub groups: usize,
    pub resumed_groups: usize,
    plan: RunPlan,
}

impl Transcribed {
    /// The text `vttiro transcribe --format <format>` writes for this input.
    pub fn render(&self, format: OutputFormat) -> String {
        transcribe::render(
            &self.input,
            &self.output,
            &self.backend,
            &self.usage,
            &self.plan,
            &[format],
        )
        .pop()
        .expect("one text per format")
    }
}

/// Transcribes inputs one at a time, keeping loaded models for the next call.
#[derive(Default)]
pub struct Transcriber {
    models: Arc<ModelPool>,
}

impl Transcriber {
    pub fn new() -> Transcriber {
        Transcriber::default()
    }

    /// Runs the pipeline on `request.input`, reporting each stage's progress with the
    /// whole run's (0..1, never going back; the service's job progress). Besides the
    /// pipeline's stages it reports `download` while a missing model is fetched (each
    /// file's share of its bytes) and `load` while the models are being loaded, so
    /// callers can show and time those apart from decoding and recognition.
    ///
    /// `cancel` is read by the decoder between packets, before each checkpointed chunk and
    /// by local engines before each 30-s window; once set, the run stops with `cancelled` and the
    /// chunks finished so far stay in the checkpoint directory. A run that completes although `cancel` was set keeps its checkpoints
    /// too, since its caller will not take the result.
    pub fn transcribe(
        &self,
        request: &Request,
        report: &mut dyn FnMut(&'static str, f32, f32),
        cancel: &CancelToken,
    ) -> Result<Transcribed, EmbeddedError> {
        self.run(request, report, cancel).map_err(|mut e| {
            // Whatever a stopped engine or chain reported, the caller asked for the stop.
            if cancel.is_cancelled() {
                e.cancelled = true;
            }
            e
        })
    }

    fn run(
        &self,
        request: &Request,
        report: &mut dyn FnMut(&'static str, f32, f32),
        cancel: &CancelToken,
    ) -> Result<Transcribed, EmbeddedError> {
        let input = request.input.as_path();
        let settings = settings_for(request)?;
        fetch_missing_models(&settings, report, cancel)?;
        let mut args = TranscribeArgs::for_job(
            input.to_path_buf(),
            input.parent().unwrap_or(Path::new(".")).to_path_buf(),
        );
        args.audio_track = request.audio_track;
        if !request.speaker_names.is_empty() {
            args.speaker_names = Some(request.speaker_names.join(","));
        }
        let models: Arc<dyn ModelSource> = self.models.clone();
        let mut plan =
            transcribe::plan_run(&args, &settings, models).map_err(|(code, message)| {
                EmbeddedError {
                    code,
                    message,
                    cancelled: false,
                }
            })?;
        let stopped = || EmbeddedError {
            code: ErrorCode::Internal,
            message: format!("{}: cancelled", input.display()),
            cancelled: true,
        };

        plan.pipeline.decode.cancel = cancel.clone();
        plan.pipeline.transcribe.cancel = cancel.clone();
        let mut overall = JobProgress::new(plan.pipeline.diarize.is_some());
        let mut progress = |stage: &'static str, fraction: f32| {
            // For the whole run, loading a model is the start of recognition.
            let whole = match stage {
                "load" => overall.overall("transcribe", 0.0),
                _ => overall.overall(stage, fraction),
            };
            report(stage, fraction, whole)
        };
        let prepared = vttiro_pipeline::prepare(input, &plan.pipeline, &mut |e| {
            progress(e.stage.as_str(), e.fraction)
        })?;
        if cancel.is_cancelled() {
            return Err(stopped());
        }
        progress("load", 0.0);
        let mut engine = plan.build_engine(input).map_err(failed)?;
        let mut speaker_encoder = plan.speaker_encoder(input).map_err(failed)?;
        progress("load", 1.0);
        let mut control = DirectoryCheckpoints {
            dir: request.checkpoint_dir.clone(),
            cancel,
        };
        let (output, resume) = plan.recognise_resumable(
            input,
            prepared,
            engine.as_mut(),
            speaker_encoder.as_mut(),
            // Without a checkpoint directory the whole input goes to the engine in one
            // call, as `vttiro transcribe` sends it: the same text, and parallel decoding
            // streams on long inputs. The cancel token still stops it between windows.
            request
                .checkpoint_dir
                .is_some()
                .then_some(request.checkpoint_speech_ms.max(1)),
            &mut control,
            &mut |e| progress(e.stage.as_str(), e.fraction),
        )?;
        // The result is the caller's now; this plan's checkpoints would only be reused
        // by a run that makes the same result again.
        if !cancel.is_cancelled() {
            control.forget(&resume.fingerprint);
        }
        let usage = transcribe::settle_usage(input, engine.as_ref(), resume.usage.clone(), &output);
        Ok(Transcribed {
            input: input.to_path_buf(),
            output,
            backend: engine.backend().to_string(),
            usage,
            groups: resume.groups,
            resumed_groups: resume.resumed_groups,
            plan,
        })
    }
}

/// Installs the models a local-only run needs and lacks, reporting the bytes as the
/// `download` stage; inside `plan_run` the same download would be silent. Anything else
/// (a model path, an unknown name, downloads turned off) is left for `plan_run` to
/// report in the CLI's words.
fn fetch_missing_models(
    settings: &Settings,
    report: &mut dyn FnMut(&'static str, f32, f32),
    cancel: &CancelToken,
) -> Result<(), EmbeddedError> {
    let local_only = settings.engines.len() == 1 && settings.engines[0].is_local();
    // whisper.cpp builds its ggml file from the CTranslate2 model or its own download,
    // which `plan_run` arranges.
    if !settings.download || !local_only || settings.backend == Backend::WhisperCpp {
        return Ok(());
    }
    let failed = |e: ModelError| EmbeddedError {
        code: e.code(),
        message: e.to_string(),
        cancelled: matches!(e, ModelError::Cancelled { .. }),
    };
    let missing = |e: &ModelError| e.code() == ErrorCode::ModelNotInstalled;
    let mut progress = |p: DownloadProgress<'_>| {
        let fraction = match p.total {
            Some(total) if total > 0 => (p.downloaded as f32 / total as f32).min(1.0),
            _ => 0.0,
        };
        report("download", fraction, 0.0)
    };
    let store = ModelStore::open_default()
        .map_err(failed)?
        .with_cancel(cancel.clone());
    if let Err(e) = store.resolve(&settings.model) {
        if missing(&e) {
            store
                .pull(&settings.model, SourceChoice::Auto, &mut progress)
                .map_err(failed)?;
        }
    }
    if settings.diarize {
        if let Err(e) = store.resolve_speaker_model(&settings.speaker_model) {
            if missing(&e) {
                store
                    .pull_speaker_model(&settings.speaker_model, &mut progress)
                    .map_err(failed)?;
            }
        }
    }
    Ok(())
}

/// The CLI's configuration layers (defaults, config files, environment) with the
/// request's overrides on top.
fn settings_for(request: &Request) -> Result<Settings, EmbeddedError> {
    let invalid = |e: anyhow::Error| EmbeddedError {
        code: ErrorCode::InvalidArgument,
        message: format!("{e:#}"),
        cancelled: false,
    };
    let mut layered = config::load_layers().map_err(invalid)?;
    let mut overrides = request.overrides.clone();
    if !request.speaker_names.is_empty() {
        overrides.diarize = Some(true);
    }
    layered.apply(&overrides, "caller");
    Settings::validate(&layered.raw).map_err(invalid)
}

/// Checkpoints as files under a directory, each written whole (temporary file, then
/// rename) so a disconnect mid-write leaves the previous state, never a torn file.
struct DirectoryCheckpoints<'a> {
    dir: Option<PathBuf>,
    cancel: &'a CancelToken,
}

impl DirectoryCheckpoints<'_> {
    fn path(&self, key: &str) -> Option<PathBuf> {
        // Keys are `asr/<hex fingerprint>/<group>`: nothing in them can leave the directory.
        self.dir.as_ref().map(|dir| dir.join(format!("{key}.json")))
    }

    /// Removes the finished plan's checkpoints; a failure only leaves files behind.
    fn forget(&self, fingerprint: &str) {
        if let Some(dir) = &self.dir {
            let plan_dir = dir.join("asr").join(fingerprint);
            if let Err(e) = std::fs::remove_dir_all(&plan_dir) {
                if e.kind() != std::io::ErrorKind::NotFound {
                    tracing::warn!(dir = %plan_dir.display(), error = %e, "cannot remove finished checkpoints");
                }
            }
        }
    }
}

impl RunControl for DirectoryCheckpoints<'_> {
    fn cancelled(&self) -> bool {
        self.cancel.is_cancelled()
    }

    fn load(&self, key: &str) -> Option<Vec<u8>> {
        std::fs::read(self.path(key)?).ok()
    }

    fn save(&mut self, key: &str, data: &[u8]) -> Result<(), CheckpointError> {
        let Some(path) = self.path(key) else {
            return Ok(());
        };
        let failed = |message: String| CheckpointError {
            code: ErrorCode::OutputFailed,
            message,
        };
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent)
                .map_err(|e| failed(format!("{}: {e}", parent.display())))?;
        }
        vttiro_subtitles::write_atomic(&path, data).map_err(|e| failed(e.to_string()))
    }
}
