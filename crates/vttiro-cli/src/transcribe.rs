//! `vttiro transcribe`: runs the pipeline for each input, writes every requested format
//! atomically, and keeps going past bad inputs so one broken file never costs a batch.
//!
//! The service's runner (`job_runner.rs`) reuses the pieces: [`plan_run`] for everything
//! decided before an input is touched, [`RunPlan::build_engine`] with its own
//! [`ModelSource`] (a pool that keeps models loaded across jobs), and [`render`] for the
//! outputs, so a job's subtitles are the CLI's subtitles.

use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use indicatif::{ProgressBar, ProgressStyle};
use serde_json::json;
use vttiro_asr::{
    select_backend, AsrError, BackendKind, Capabilities, Engine, FallbackEngine, LocalEngineConfig,
    Selection, TranscribeOptions, Usage,
};
use vttiro_cloud::{CloudConfig, Provider};
use vttiro_core::ErrorCode;
use vttiro_diarize::{DiarizeOptions, SpeakerEncoder};
use vttiro_models::{InstalledSpeakerModel, ModelError, ModelStore, SpeakerModelKind};
use vttiro_pipeline::{
    Checkpointing, DiarizeSettings, PipelineError, PipelineOutput, PipelineSettings, Prepared,
    ProgressEvent, ResumeReport, RunControl,
};
use vttiro_subtitles::{LayoutRules, OutputFormat, VttOptions};

use crate::config::{Backend, EngineChoice, LogFormat, Settings};
use crate::TranscribeArgs;

/// A failure that names its input and carries the code that decides the exit status.
pub(crate) struct Failure {
    input: String,
    pub(crate) code: ErrorCode,
    pub(crate) message: String,
}

fn fail(input: &Path, code: ErrorCode, message: impl Into<String>) -> Failure {
    Failure {
        input: input.display().to_string(),
        code,
        message: message.into(),
    }
}

/// Where each format of `input` goes.
fn output_paths(
    input: &Path,
    args: &TranscribeArgs,
    settings: &Settings,
) -> Vec<(OutputFormat, PathBuf)> {
    let formats = settings.formats.clone();
    if let Some(out) = &args.output {
        if formats.len() == 1 {
            return vec![(formats[0], out.clone())];
        }
        return formats
            .iter()
            .map(|f| (*f, out.with_extension(f.extension())))
            .collect();
    }
    let stem = input
        .file_stem()
        .map(|s| s.to_os_string())
        .unwrap_or_else(|| "output".into());
    let dir = settings
        .output_dir
        .clone()
        .or_else(|| input.parent().map(Path::to_path_buf))
        .unwrap_or_else(|| PathBuf::from("."));
    formats
        .iter()
        .map(|f| {
            let mut name = stem.clone();
            name.push(".");
            name.push(f.extension());
            (*f, dir.join(name))
        })
        .collect()
}

fn progress_bar(settings: &Settings, label: &str) -> Option<ProgressBar> {
    if settings.log_format != LogFormat::Text || !std::io::stderr().is_terminal() {
        return None;
    }
    let bar = ProgressBar::new(1000);
    bar.set_style(
        ProgressStyle::with_template("{prefix:.bold} {msg:>10} [{bar:30}] {percent:>3}% {elapsed}")
            .expect("static template")
            .progress_chars("=> "),
    );
    bar.set_prefix(label.to_string());
    Some(bar)
}

pub fn run(args: &TranscribeArgs, settings: &Settings) -> i32 {
    let on_error = |_: ErrorCode, message: &str| eprintln!("error: {message}");
    let plan = match plan_run(args, settings, Arc::new(LoadEach)) {
        Ok(plan) => plan,
        Err((code, message)) => {
            on_error(code, &message);
            return code.exit_code();
        }
    };
    let settings = &plan.settings;
    // Where outputs go must exist before an hour of decoding, not be found missing after.
    if !args.dry_run {
        let out_dir = match (&args.output, &settings.output_dir) {
            (Some(out), _) => out.parent().map(Path::to_path_buf),
            (None, Some(dir)) => Some(dir.clone()),
            (None, None) => None,
        };
        if let Some(dir) = out_dir.filter(|d| !d.as_os_str().is_empty()) {
            if let Err(e) = std::fs::create_dir_all(&dir) {
                let message = format!("{}: cannot create the output directory: {e}", dir.display());
                on_error(ErrorCode::OutputFailed, &message);
                return ErrorCode::OutputFailed.exit_code();
            }
        }
    }
    let mut failures: Vec<Failure> = Vec::new();
    let mut engine: Option<Box<dyn Engine>> = None;
    let mut speaker_encoder: Option<Box<dyn SpeakerEncoder>> = None;
    let mut succeeded = 0usize;
    for input in &args.inputs {
        match transcribe_one(input, args, &plan, &mut engine, &mut speaker_encoder) {
            Ok(written) => {
                succeeded += 1;
                for p in written {
                    eprintln!("wrote {}", p.display());
                }
            }
            Err(f) => {
                on_error(f.code, &f.message);
                failures.push(f);
                // A model problem affects every input; stop instead of repeating it.
                if matches!(
                    failures.last().map(|f| f.code),
                    Some(
                        ErrorCode::UnknownModel
                            | ErrorCode::ModelNotInstalled
                            | ErrorCode::ModelDownloadFailed
                            | ErrorCode::ModelChecksumMismatch
                            | ErrorCode::ModelInvalid
                            | ErrorCode::EngineUnavailable
                            | ErrorCode::InvalidArgument
                            | ErrorCode::ProviderAuth
                            | ErrorCode::ProviderQuota
                    )
                ) {
                    break;
                }
            }
        }
    }
    if args.inputs.len() > 1 {
        eprintln!(
            "summary: {succeeded} of {} inputs transcribed{}",
            args.inputs.len(),
            if failures.is_empty() { "" } else { "; failed:" }
        );
        for f in &failures {
            eprintln!("  {} ({})", f.input, f.code);
        }
    }
    match failures.first() {
        None => 0,
        // One input, or a whole batch failing the same way: that failure's own code.
        Some(first) if succeeded == 0 && failures.iter().all(|f| f.code == first.code) => {
            first.code.exit_code()
        }
        Some(_) => 1,
    }
}

/// What a run decides before touching any input: the settings as it applies them, the
/// pipeline's settings, where the recogniser comes from, and the speaker model.
pub(crate) struct RunPlan {
    pub(crate) settings: Settings,
    pub(crate) pipeline: PipelineSettings,
    engines: EnginePlan,
    speakers: Option<InstalledSpeakerModel>,
    models: Arc<dyn ModelSource>,
    dry_run: bool,
}

/// Checks the arguments, selects the backend and resolves (downloading when allowed) the
/// models, so that a typo in a model name fails before any input is decoded. Loaded
/// models will come from `models`.
pub(crate) fn plan_run(
    args: &TranscribeArgs,
    settings: &Settings,
    models: Arc<dyn ModelSource>,
) -> Result<RunPlan, (ErrorCode, String)> {
    // With an explicit -o and one format, the output's extension chooses the format.
    let mut settings = settings.clone();
    if let (Some(out), None) = (&args.output, &args.format) {
        if let Some(f) = out
            .extension()
            .and_then(|e| e.to_str())
            .and_then(|e| e.parse::<OutputFormat>().ok())
        {
            settings.formats = vec![f];
        }
    }
    if args.output.is_some() && args.inputs.len() > 1 {
        let message = format!(
            "-o/--output takes one input; use --output-dir for {} inputs",
            args.inputs.len()
        );
        return Err((ErrorCode::InvalidArgument, message));
    }
    let requested = match settings.backend {
        Backend::Auto => None,
        Backend::Ct2 => Some(BackendKind::Ct2),
        Backend::WhisperCpp => Some(BackendKind::WhisperCpp),
    };
    let local_only = settings.engines.len() == 1 && settings.engines[0].is_local();
    let selection = if settings.engines.iter().any(EngineChoice::is_local) {
        match select_backend(requested, settings.device, &Capabilities::detect()) {
            Ok(s) => {
                tracing::info!(backend = %s.backend, device = ?s.device, "selected local backend");
                Some(s)
            }
            // In a chain, a local engine that cannot run is one more link that fails.
            Err(e) if local_only => return Err((e.code(), e.to_string())),
            Err(e) => {
                tracing::warn!(error = %e, "the chain's local engine cannot run in this build");
                None
            }
        }
    } else {
        None
    };

    let pipeline = PipelineSettings {
        decode: vttiro_media::DecodeOptions {
            audio_track: args.audio_track,
            ..Default::default()
        },
        vad_enabled: settings.vad,
        transcribe: TranscribeOptions {
            language: settings.language.clone(),
            prompt: settings.prompt.clone(),
            beam_size: settings.beam_size,
            speaker_labels: settings.diarize,
            speakers_expected: settings.speaker_count.exact.map(|n| n as u32),
            vocabulary: settings.vocabulary.clone(),
            ..Default::default()
        },
        diarize: settings.diarize.then(|| DiarizeSettings {
            options: DiarizeOptions {
                count: settings.speaker_count,
                ..Default::default()
            },
            names: speaker_names(args.speaker_names.as_deref()),
        }),
        ..Default::default()
    };

    // A local-only run resolves (and if needed downloads) its model before touching any
    // input, so a typo in the model name fails at once; loading it waits until some input
    // decodes. A chain resolves it only if the chain falls back that far.
    let plan = if args.dry_run {
        EnginePlan::DryRun
    } else if local_only {
        let Some(selection) = selection else {
            unreachable!("a local-only run without a backend returned above")
        };
        EnginePlan::Local(resolve_model(&settings, selection)?)
    } else {
        // One cloud engine without a key fails before any decoding; in a chain it is
        // one more link that fails.
        if settings.engines.len() == 1 {
            let choice = &settings.engines[0];
            let provider = choice.provider.expect("not local-only");
            if let Err(e) = vttiro_cloud::build_engine(cloud_config(provider, choice, &settings)) {
                return Err((e.code(), e.to_string()));
            }
        }
        EnginePlan::Chain(selection)
    };
    // Providers that label speakers make the local speaker model unnecessary, unless the
    // chain may fall back to an engine that does not.
    let needs_speaker_model = settings.engines.iter().any(|c| !labels_speakers(c));
    let speaker_model = if args.dry_run || !settings.diarize || !needs_speaker_model {
        None
    } else {
        Some(ensure_speaker_model(
            &settings.speaker_model,
            settings.download,
        )?)
    };
    Ok(RunPlan {
        settings,
        pipeline,
        engines: plan,
        speakers: speaker_model,
        models,
        dry_run: args.dry_run,
    })
}

/// `--speaker-names "Ana, Ben"` → `["Ana", "Ben"]`; empty entries keep the default name.
fn speaker_names(list: Option<&str>) -> Vec<String> {
    list.map(|l| {
        l.split(',')
            .map(|name| name.trim().to_string())
            .enumerate()
            .map(|(i, name)| {
                if name.is_empty() {
                    format!("Speaker {}", i + 1)
                } else {
                    name
                }
            })
            .collect()
    })
    .unwrap_or_default()
}

/// `--engine` as the dry run reports it: `deepgram (nova-3) -> local (tiny.en)`.
fn engine_description(settings: &Settings) -> String {
    settings
        .engines
        .iter()
        .map(|c| {
            let model = match c.provider {
                Some(p) => c.model.clone().unwrap_or_else(|| p.default_model().into()),
                None => settings.model.clone(),
            };
            format!("{} ({model})", c.name())
        })
        .collect::<Vec<_>>()
        .join(" -> ")
}

/// The speaker model `--diarize` loads: installed, a file path, or (when downloads are
/// allowed) pulled on first use like the Whisper models.
fn ensure_speaker_model(
    name: &str,
    download: bool,
) -> Result<vttiro_models::InstalledSpeakerModel, (ErrorCode, String)> {
    let err = |e: ModelError| (e.code(), e.to_string());
    let store = ModelStore::open_default().map_err(err)?;
    match store.resolve_speaker_model(name) {
        Ok(m) => Ok(m),
        Err(e) if e.code() == ErrorCode::ModelNotInstalled && download => {
            eprintln!(
                "speaker model {name} is not installed; fetching it into {}",
                store.dir().display()
            );
            store.pull_speaker_model(name, &mut |_| {}).map_err(err)
        }
        Err(e) => Err(err(e)),
    }
}

pub(crate) fn load_speaker_encoder(
    input: &Path,
    settings: &Settings,
    model: &InstalledSpeakerModel,
) -> Result<Box<dyn SpeakerEncoder>, Failure> {
    let failed = |e: vttiro_diarize::DiarizeError| fail(input, e.code(), e.to_string());
    match model.kind {
        SpeakerModelKind::Ge2e => {
            vttiro_diarize::ge2e::Ge2eEncoder::load(&model.path, settings.threads)
                .map(|e| Box::new(e) as Box<dyn SpeakerEncoder>)
                .map_err(failed)
        }
        #[cfg(feature = "onnx")]
        SpeakerModelKind::Onnx => {
            // 3D-Speaker's CAM++ exports expect its Povey-window front end on [-1, 1]
            // samples; WeSpeaker's own models the Hamming window on 16-bit-scaled ones.
            let name = model.name.to_ascii_lowercase();
            let features = if name.contains("campplus") || name.contains("cam++") {
                vttiro_diarize::fbank::FbankOptions::three_d_speaker()
            } else {
                vttiro_diarize::fbank::FbankOptions::wespeaker()
            };
            vttiro_diarize::onnx::OnnxEncoder::load(&model.path, features)
                .map(|e| Box::new(e) as Box<dyn SpeakerEncoder>)
                .map_err(failed)
        }
        #[allow(unreachable_patterns)]
        _ => Err(fail(
            input,
            ErrorCode::EngineUnavailable,
            format!(
                "speaker model {}: ONNX models need a build with the onnx feature",
                model.name
            ),
        )),
    }
}

/// Where this run's recogniser comes from.
enum EnginePlan {
    /// `--dry-run`: nothing is loaded.
    DryRun,
    /// The local engine alone, its model resolved up front.
    Local(ResolvedModel),
    /// Cloud engines, maybe with a local fallback (for which the backend selection is kept).
    Chain(Option<Selection>),
}

/// Where a run's loaded models come from. `vttiro transcribe` loads each model once per
/// run ([`LoadEach`]); the service's runner keeps them loaded across jobs.
pub(crate) trait ModelSource: Send + Sync {
    fn engine(
        &self,
        input: &Path,
        settings: &Settings,
        model: &ResolvedModel,
    ) -> Result<Box<dyn Engine>, Failure>;
    fn speaker_encoder(
        &self,
        input: &Path,
        settings: &Settings,
        model: &InstalledSpeakerModel,
    ) -> Result<Box<dyn SpeakerEncoder>, Failure>;
}

/// Loads a model whenever one is asked for; the caller keeps it for the rest of the run.
pub(crate) struct LoadEach;

impl ModelSource for LoadEach {
    fn engine(
        &self,
        input: &Path,
        settings: &Settings,
        model: &ResolvedModel,
    ) -> Result<Box<dyn Engine>, Failure> {
        load_engine(input, settings, model).map(|e| e as Box<dyn Engine>)
    }

    fn speaker_encoder(
        &self,
        input: &Path,
        settings: &Settings,
        model: &InstalledSpeakerModel,
    ) -> Result<Box<dyn SpeakerEncoder>, Failure> {
        load_speaker_encoder(input, settings, model)
    }
}

impl RunPlan {
    /// The engine `--engine` asks for: the local one loaded now, or a fallback chain whose
    /// links are built when first reached.
    pub(crate) fn build_engine(&self, input: &Path) -> Result<Box<dyn Engine>, Failure> {
        let settings = &self.settings;
        let selection = match &self.engines {
            EnginePlan::DryRun => unreachable!("dry runs build no engine"),
            EnginePlan::Local(model) => return self.models.engine(input, settings, model),
            EnginePlan::Chain(selection) => *selection,
        };
        let mut chain = FallbackEngine::new();
        for choice in &settings.engines {
            match choice.provider {
                Some(provider) => {
                    let config = cloud_config(provider, choice, settings);
                    chain.push(
                        provider.name(),
                        Box::new(move || {
                            vttiro_cloud::build_engine(config.clone()).map(|e| e as Box<dyn Engine>)
                        }),
                    );
                }
                None => {
                    let settings = settings.clone();
                    let input = input.to_path_buf();
                    let models = self.models.clone();
                    chain.push(
                        "local",
                        Box::new(move || {
                            let selection = selection.ok_or_else(|| {
                                AsrError::Unavailable(
                                    "no local backend is compiled into this build".into(),
                                )
                            })?;
                            let model = resolve_model(&settings, selection)
                                .map_err(|(code, message)| AsrError::Coded { code, message })?;
                            models
                                .engine(&input, &settings, &model)
                                .map_err(|f| AsrError::Coded {
                                    code: f.code,
                                    message: f.message,
                                })
                        }),
                    );
                }
            }
        }
        Ok(Box::new(chain))
    }

    /// The speaker encoder `--diarize` needs; `None` without --diarize or when the
    /// engines label speakers themselves.
    pub(crate) fn speaker_encoder(
        &self,
        input: &Path,
    ) -> Result<Option<Box<dyn SpeakerEncoder>>, Failure> {
        self.speakers
            .as_ref()
            .map(|model| self.models.speaker_encoder(input, &self.settings, model))
            .transpose()
    }

    /// Whether the local engine alone recognises (no cloud engine in the chain).
    pub(crate) fn is_local_only(&self) -> bool {
        matches!(self.engines, EnginePlan::Local(_))
    }

    /// Recognition and diarization of a `prepared` input through the pipeline's resumable
    /// path, with this plan's settings and engine identity. A local-only plan is split
    /// into checkpointed groups of `group_speech_ms` (`None`: one group); cloud engines
    /// answer per request and always take the input whole.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn recognise_resumable(
        &self,
        input: &Path,
        prepared: Prepared,
        engine: &mut dyn Engine,
        speaker_encoder: Option<&mut Box<dyn SpeakerEncoder>>,
        group_speech_ms: Option<i64>,
        control: &mut dyn RunControl,
        progress: &mut dyn FnMut(ProgressEvent),
    ) -> Result<(PipelineOutput, ResumeReport), PipelineError> {
        vttiro_pipeline::recognise_resumable(
            input,
            prepared,
            engine,
            speaker_encoder.map(|e| e.as_mut() as &mut dyn SpeakerEncoder),
            &self.pipeline,
            Checkpointing {
                group_speech_ms: group_speech_ms.filter(|_| self.is_local_only()),
                engine_identity: self.engine_identity(),
                control,
            },
            progress,
        )
    }

    /// What decides the recogniser's output beyond its name: the model files and how they
    /// are run, or the whole fallback chain.
    pub(crate) fn engine_identity(&self) -> String {
        match &self.engines {
            EnginePlan::Local(model) => format!(
                "{} {:?} {} {}",
                model.selection.backend,
                model.selection.device,
                model.path.display(),
                self.settings.compute_type
            ),
            EnginePlan::Chain(_) | EnginePlan::DryRun => format!(
                "{} / {:?} {:?} {}",
                engine_description(&self.settings),
                self.settings.backend,
                self.settings.device,
                self.settings.compute_type
            ),
        }
    }
}

/// Whether `choice` labels speakers itself when asked.
fn labels_speakers(choice: &EngineChoice) -> bool {
    match choice.provider {
        None => false,
        Some(provider) => {
            let model = choice.model.as_deref().unwrap_or(provider.default_model());
            provider
                .model_info(model)
                .map(|m| m.speakers)
                .unwrap_or(provider != Provider::OpenAi)
        }
    }
}

/// A provider's configuration: key and endpoint from the environment, model from the
/// chain entry, timeouts, attempts and prices from the settings.
fn cloud_config(provider: Provider, choice: &EngineChoice, settings: &Settings) -> CloudConfig {
    let mut config = CloudConfig::from_lookup(provider, choice.model.as_deref(), |key| {
        std::env::var(key).ok()
    });
    config.retry.response_timeout = settings.cloud_timeout;
    config.retry.max_attempts = settings.cloud_attempts;
    config.prices = settings.prices.clone();
    config
}

/// The model files the selected backend loads.
pub(crate) struct ResolvedModel {
    pub(crate) selection: Selection,
    pub(crate) name: String,
    /// A CTranslate2 directory, or a ggml file / directory for whisper.cpp.
    pub(crate) path: PathBuf,
}

fn resolve_model(
    settings: &Settings,
    selection: Selection,
) -> Result<ResolvedModel, (ErrorCode, String)> {
    let (name, path) = match selection.backend {
        BackendKind::Ct2 => {
            let m = crate::models_cmd::ensure_model(&settings.model, settings.download)?;
            (m.name, m.path)
        }
        BackendKind::WhisperCpp => {
            let quant = match settings.compute_type.as_str() {
                "auto" => None,
                other => Some(other.parse().map_err(|_| {
                    (
                        ErrorCode::InvalidArgument,
                        format!("--compute-type {other}: the whispercpp backend takes auto, f16, q8_0 or q5_0"),
                    )
                })?),
            };
            crate::models_cmd::ensure_ggml(&settings.model, quant, settings.download)?
        }
    };
    Ok(ResolvedModel {
        selection,
        name,
        path,
    })
}

pub(crate) fn load_engine(
    input: &Path,
    settings: &Settings,
    model: &ResolvedModel,
) -> Result<Box<dyn Engine + Send>, Failure> {
    let config = LocalEngineConfig {
        model_dir: model.path.clone(),
        model_name: model.name.clone(),
        device: model.selection.device,
        compute_type: settings.compute_type.clone(),
        threads: settings.threads,
        parallel_streams: 0,
    };
    // Send, so the service can keep loaded engines in a pool its worker threads share.
    let loaded: Result<Box<dyn Engine + Send>, vttiro_asr::AsrError> = match model.selection.backend
    {
        #[cfg(feature = "ct2")]
        BackendKind::Ct2 => {
            vttiro_asr::Ct2Engine::load(&config).map(|e| Box::new(e) as Box<dyn Engine + Send>)
        }
        #[cfg(feature = "whispercpp")]
        BackendKind::WhisperCpp => vttiro_asr::WhisperCppEngine::load(&config)
            .map(|e| Box::new(e) as Box<dyn Engine + Send>),
        #[allow(unreachable_patterns)]
        other => Err(vttiro_asr::AsrError::Unavailable(format!(
            "backend {other} is not compiled into this build"
        ))),
    };
    loaded.map_err(|e| fail(input, e.code(), e.to_string()))
}

fn transcribe_one(
    input: &Path,
    args: &TranscribeArgs,
    plan: &RunPlan,
    engine: &mut Option<Box<dyn Engine>>,
    speaker_encoder: &mut Option<Box<dyn SpeakerEncoder>>,
) -> Result<Vec<PathBuf>, Failure> {
    let settings = &plan.settings;
    let outputs = output_paths(input, args, settings);
    let label = input
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let bar = progress_bar(settings, &label);
    let mut on_progress = |e: ProgressEvent| {
        if let Some(bar) = &bar {
            bar.set_message(e.stage.as_str());
            bar.set_position((e.fraction.clamp(0.0, 1.0) * 1000.0) as u64);
        }
    };

    let prepared = vttiro_pipeline::prepare(input, &plan.pipeline, &mut on_progress)
        .map_err(|e| fail(input, e.code(), e.to_string()))?;
    if plan.dry_run {
        if let Some(bar) = bar {
            bar.finish_and_clear();
        }
        println!(
            "{}: {:.1} s of audio ({} via {}), {:.1} s of speech in {} chunks; engine {}; would write {}",
            input.display(),
            prepared.source.duration_ms as f64 / 1000.0,
            prepared.source.codec,
            prepared.source.decoder,
            prepared.source.speech_ms as f64 / 1000.0,
            prepared.windows.len(),
            engine_description(settings),
            outputs
                .iter()
                .map(|(_, p)| p.display().to_string())
                .collect::<Vec<_>>()
                .join(", ")
        );
        return Ok(Vec::new());
    }

    if engine.is_none() {
        *engine = Some(plan.build_engine(input)?);
    }
    let engine = engine.as_mut().expect("loaded above");
    if speaker_encoder.is_none() {
        *speaker_encoder = plan.speaker_encoder(input)?;
    }
    let speakers = speaker_encoder
        .as_mut()
        .map(|e| e.as_mut() as &mut dyn SpeakerEncoder);
    let output = vttiro_pipeline::recognise(
        input,
        prepared,
        engine.as_mut(),
        speakers,
        &plan.pipeline,
        &mut on_progress,
    )
    .map_err(|e| fail(input, e.code(), e.to_string()))?;
    if let Some(bar) = bar {
        bar.finish_and_clear();
    }
    let usage = settle_usage(input, engine.as_ref(), engine.usage(), &output);
    let formats: Vec<OutputFormat> = outputs.iter().map(|(format, _)| *format).collect();
    let rendered = render(input, &output, engine.backend(), &usage, plan, &formats);
    // Everything is rendered first so a failure leaves no partial set of outputs behind.
    let mut written = Vec::new();
    for ((_, path), text) in outputs.iter().zip(rendered) {
        if let Err(e) = vttiro_subtitles::write_atomic(path, text.as_bytes()) {
            for done in &written {
                let _ = std::fs::remove_file(done);
            }
            return Err(fail(
                input,
                ErrorCode::OutputFailed,
                format!("{}: cannot write output: {e}", path.display()),
            ));
        }
        written.push(path.clone());
    }
    tracing::info!(
        input = %input.display(),
        segments = output.transcript.segments.len(),
        total_ms = output.timings.total_ms,
        "transcribed"
    );
    Ok(written)
}

/// What the recognition cost (a local engine's record when the engine kept none), with a
/// note on stderr when a fallback chain had to move past failing engines.
pub(crate) fn settle_usage(
    input: &Path,
    engine: &dyn Engine,
    recorded: Option<Usage>,
    output: &PipelineOutput,
) -> Usage {
    let usage =
        recorded.unwrap_or_else(|| Usage::local(engine.backend(), &output.transcript.model));
    if !usage.fell_back_from.is_empty() {
        eprintln!(
            "{}: transcribed by {} after {} failed",
            input.display(),
            usage.provider,
            usage
                .fell_back_from
                .iter()
                .map(|a| format!("{} ({})", a.engine, a.code))
                .collect::<Vec<_>>()
                .join(", ")
        );
    }
    usage
}

/// `output` in each of `formats`, in that order: the texts `vttiro transcribe` writes.
pub(crate) fn render(
    input: &Path,
    output: &PipelineOutput,
    backend: &str,
    usage: &Usage,
    plan: &RunPlan,
    formats: &[OutputFormat],
) -> Vec<String> {
    let (cues, layout_report) =
        vttiro_subtitles::layout_with_report(&output.transcript, &LayoutRules::default());
    let extra = json!({
        "engine": backend,
        "usage": usage,
        "timings": output.timings,
        "source": output.source,
        "vad": plan.settings.vad,
        "layout": layout_report.to_json(),
        "diarization": output.diarization.as_ref().map(|d| json!({
            "speaker_model": plan.speakers.as_ref().map(|m| m.name.clone()),
            "speakers": d.speakers,
            "windows": d.windows,
            "labels": d.labels,
            "turns": d.turns,
        })),
    });
    let input_name = input
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let vtt_options = VttOptions {
        language: Some(output.transcript.language.clone()),
        note: vec![
            format!("source: {input_name}"),
            format!(
                "vttiro {} ({}, model {})",
                env!("CARGO_PKG_VERSION"),
                backend,
                output.transcript.model
            ),
        ],
        cue_ids: true,
        speaker_colours: true,
        ..VttOptions::default()
    };
    let stem = input
        .file_stem()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    formats
        .iter()
        .map(|format| match format {
            OutputFormat::Vtt => vttiro_subtitles::to_webvtt_with(&cues, &vtt_options),
            // The diarizer's own turns also cover speech no word was recognised in.
            OutputFormat::Rttm => match &output.diarization {
                Some(d) => {
                    let turns: Vec<(i64, i64, &str)> = d
                        .turns
                        .iter()
                        .map(|t| (t.start_ms, t.end_ms, d.labels[t.speaker].as_str()))
                        .collect();
                    vttiro_subtitles::to_rttm_turns(&turns, &stem)
                }
                None => vttiro_subtitles::to_rttm(&output.transcript, &stem),
            },
            OutputFormat::Srt => vttiro_subtitles::to_srt(&cues),
            OutputFormat::Txt => vttiro_subtitles::to_txt(&output.transcript),
            OutputFormat::Json => vttiro_subtitles::to_json(&output.transcript, &extra),
        })
        .collect()
}
