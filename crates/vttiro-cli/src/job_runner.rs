//! The service's [`JobRunner`]: a job's media through the same code as `vttiro transcribe`,
//! with the configuration the server started with overridden by the job's options, so a
//! job's subtitles are the CLI's subtitles.
//!
//! Unlike the CLI, the runner lives as long as the process: loaded models wait in a
//! [`ModelPool`] for the next job with the same settings, recognition goes through the
//! pipeline's resumable path so a retried attempt continues from the last attempt's
//! checkpoints, and the runner reports each stage and stops when the job is cancelled.

use std::cell::RefCell;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use serde_json::{json, Value};
use vttiro_asr::{AudioWindow, BackendKind, Device, Engine, EngineProgress, TranscribeOptions};
use vttiro_core::{ErrorCode, Transcript};
use vttiro_diarize::{DiarizeError, SpeakerEncoder};
use vttiro_models::InstalledSpeakerModel;
use vttiro_pipeline::{CheckpointError, PipelineError, ProgressEvent, RunControl};
use vttiro_server::{JobRunner, RunContext, RunFailure, RunOutput, RunRequest};
use vttiro_subtitles::OutputFormat;

use crate::config::{RawConfig, Settings};
use crate::transcribe::{self, Failure, ModelSource, ResolvedModel};
use crate::TranscribeArgs;

/// Transcribes a job's media with the configuration the server started with, overridden
/// by the job's options, through the same code as `vttiro transcribe`.
pub struct PipelineRunner {
    base: RawConfig,
    models: Arc<ModelPool>,
    /// Speech per checkpointed group for the local engine (cloud engines take the whole
    /// input in one request and are checkpointed once).
    group_speech_ms: i64,
}

impl PipelineRunner {
    /// Results are rendered in memory and handed to the worker; nothing is written here.
    pub fn new(base: RawConfig) -> PipelineRunner {
        PipelineRunner {
            base,
            models: Arc::new(ModelPool::default()),
            group_speech_ms: vttiro_pipeline::DEFAULT_GROUP_SPEECH_MS,
        }
    }

    /// The server's configuration with the job's options applied.
    fn job_settings(&self, request: &RunRequest<'_>) -> Result<Settings, RunFailure> {
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
        if let Some(diarize) = request.spec.get("diarize").and_then(Value::as_bool) {
            raw.diarize = Some(diarize);
        }
        raw.speakers = request
            .spec
            .get("speakers")
            .and_then(Value::as_u64)
            .map(|n| n as usize)
            .or(raw.speakers);
        Settings::validate(&raw).map_err(|e| RunFailure {
            code: ErrorCode::InvalidArgument,
            message: format!("{e:#}"),
        })
    }
}

impl JobRunner for PipelineRunner {
    fn run(
        &self,
        request: &RunRequest<'_>,
        context: &mut dyn RunContext,
    ) -> Result<RunOutput, RunFailure> {
        let settings = self.job_settings(request)?;
        let formats = request
            .formats
            .iter()
            .map(|f| {
                f.parse::<OutputFormat>().map_err(|e| RunFailure {
                    code: ErrorCode::InvalidArgument,
                    message: e.to_string(),
                })
            })
            .collect::<Result<Vec<_>, _>>()?;
        let input = request.media.as_path();
        // Nothing is written there: outputs are rendered in memory.
        let out_dir = input.parent().unwrap_or(Path::new(".")).to_path_buf();
        let args = TranscribeArgs::for_job(request.media.clone(), out_dir);
        let models: Arc<dyn ModelSource> = self.models.clone();
        let plan = transcribe::plan_run(&args, &settings, models)
            .map_err(|(code, message)| RunFailure { code, message })?;

        // The pipeline's progress callback and its checkpoint control both need the
        // context; they never run at the same time.
        let context = RefCell::new(context);
        let mut job_progress = JobProgress::new(plan.pipeline.diarize.is_some());
        let mut stage_spans = StageSpans::new(tracing::Span::current());
        let mut report = |stage: &str, fraction: f32| {
            stage_spans.reached(stage);
            let overall = job_progress.overall(stage, fraction);
            context.borrow_mut().progress(stage, overall);
        };
        let cancelled = || {
            context.borrow().cancelled().then(|| RunFailure {
                code: ErrorCode::Internal,
                message: "cancelled".into(),
            })
        };

        let prepared = vttiro_pipeline::prepare(input, &plan.pipeline, &mut |e: ProgressEvent| {
            report(e.stage.as_str(), e.fraction)
        })
        .map_err(pipeline_failure)?;
        // Stop before a model load, which can take longer than decoding.
        if let Some(stop) = cancelled() {
            return Err(stop);
        }
        report("transcribe", 0.0);
        MODEL_LOAD_MS.set(None);
        let mut engine = plan.build_engine(input).map_err(run_failure)?;
        // Set only when this job had to load its engine (not when the pool had one).
        let model_load_ms = MODEL_LOAD_MS.take();
        let mut speaker_encoder = plan.speaker_encoder(input).map_err(run_failure)?;
        let mut control = JobCheckpoints { context: &context };
        let (output, resume) = plan
            .recognise_resumable(
                input,
                prepared,
                engine.as_mut(),
                speaker_encoder.as_mut(),
                Some(self.group_speech_ms),
                &mut control,
                &mut |e: ProgressEvent| report(e.stage.as_str(), e.fraction),
            )
            .map_err(pipeline_failure)?;

        report("layout", 0.0);
        let usage = transcribe::settle_usage(input, engine.as_ref(), resume.usage.clone(), &output);
        let texts = transcribe::render(input, &output, engine.backend(), &usage, &plan, &formats);
        report("store", 0.0);
        let mut summary = json!({
            "engine": engine.backend(),
            "model": output.transcript.model,
            "language": output.transcript.language,
            "timings": output.timings,
            "usage": usage,
            "audio_ms": output.source.duration_ms,
        });
        if resume.resumed_groups > 0 {
            summary["resumed_groups"] = json!(resume.resumed_groups);
        }
        if let Some(ms) = model_load_ms {
            summary["model_load_ms"] = json!(ms);
        }
        tracing::info!(
            job = request.job_id,
            groups = resume.groups,
            resumed_groups = resume.resumed_groups,
            total_ms = output.timings.total_ms,
            "job transcribed"
        );
        Ok(RunOutput {
            files: request
                .formats
                .iter()
                .cloned()
                .zip(texts.into_iter().map(String::into_bytes))
                .collect(),
            summary,
        })
    }
}

fn pipeline_failure(e: PipelineError) -> RunFailure {
    RunFailure {
        code: e.code(),
        message: e.to_string(),
    }
}

fn run_failure(f: Failure) -> RunFailure {
    RunFailure {
        code: f.code,
        message: f.message,
    }
}

/// The pipeline's checkpoints, kept by the job queue so they outlive this attempt.
struct JobCheckpoints<'a, 'b> {
    context: &'a RefCell<&'b mut dyn RunContext>,
}

impl RunControl for JobCheckpoints<'_, '_> {
    fn cancelled(&self) -> bool {
        self.context.borrow().cancelled()
    }

    fn load(&self, key: &str) -> Option<Vec<u8>> {
        self.context.borrow().checkpoint(key)
    }

    fn save(&mut self, key: &str, data: &[u8]) -> Result<(), CheckpointError> {
        self.context
            .borrow_mut()
            .save_checkpoint(key, data)
            .map_err(|f| CheckpointError {
                code: f.code,
                message: f.message,
            })
    }
}

/// One span per stage, as children of the worker's `job` span: the pipeline has no hooks
/// around its stages, so the progress reports mark where each begins and the last ends.
/// Spans follow OpenTelemetry's names (`asr` for the transcribe stage); progress reports
/// keep theirs. `store` is the worker's span, around writing the results.
struct StageSpans {
    parent: tracing::Span,
    current: Option<(String, tracing::Span)>,
}

impl StageSpans {
    fn new(parent: tracing::Span) -> StageSpans {
        StageSpans {
            parent,
            current: None,
        }
    }

    fn reached(&mut self, stage: &str) {
        if self.current.as_ref().is_some_and(|(name, _)| name == stage) {
            return;
        }
        // Closing the previous stage's span ends it: its duration is the stage's.
        self.current = None;
        let parent = &self.parent;
        let span = match stage {
            "decode" => tracing::info_span!(parent: parent, "decode"),
            "vad" => tracing::info_span!(parent: parent, "vad"),
            "transcribe" => tracing::info_span!(parent: parent, "asr"),
            "diarize" => tracing::info_span!(parent: parent, "diarize"),
            "layout" => tracing::info_span!(parent: parent, "layout"),
            _ => return,
        };
        self.current = Some((stage.to_string(), span));
    }
}

/// Turns a stage's own progress into the whole job's, each stage owning a slice of 0..1
/// roughly as large as its usual share of the time, and never lets it go backwards.
pub(crate) struct JobProgress {
    diarize: bool,
    reported: f32,
}

impl JobProgress {
    pub(crate) fn new(diarize: bool) -> JobProgress {
        JobProgress {
            diarize,
            reported: 0.0,
        }
    }

    /// The slice of the job `stage` covers.
    fn span(&self, stage: &str) -> (f32, f32) {
        let transcribe_end = if self.diarize { 0.70 } else { 0.95 };
        match stage {
            "decode" => (0.0, 0.05),
            "vad" => (0.05, 0.08),
            "transcribe" => (0.08, transcribe_end),
            "diarize" => (0.70, 0.95),
            "layout" => (0.95, 0.98),
            // Storing the results is the worker's, after the runner returns.
            _ => (0.98, 1.0),
        }
    }

    pub(crate) fn overall(&mut self, stage: &str, fraction: f32) -> f32 {
        let (start, end) = self.span(stage);
        let at = start + (end - start) * fraction.clamp(0.0, 1.0);
        self.reported = self.reported.max(at);
        self.reported
    }
}

thread_local! {
    /// How long the engine load on this thread took, for the job that caused it: loads run
    /// on the calling worker's thread inside [`ModelPool::engine`].
    static MODEL_LOAD_MS: std::cell::Cell<Option<u64>> = const { std::cell::Cell::new(None) };
}

/// Loaded models kept between jobs. A job takes an idle model loaded with its settings,
/// or loads one, and gives it back when done, so each worker thread holds at most one
/// engine and one speaker encoder and a second job with the same settings loads nothing.
#[derive(Default)]
pub struct ModelPool {
    engines: Arc<Pool<EngineKey, Box<dyn Engine + Send>>>,
    speakers: Arc<Pool<SpeakerKey, Box<dyn SpeakerEncoder>>>,
}

impl ModelPool {
    /// Engines loaded since the pool was made (not counting reuse).
    #[cfg(test)]
    fn engines_loaded(&self) -> usize {
        self.engines.state().loads
    }
}

/// Everything that decides what a loaded local engine is.
#[derive(Debug, Clone, PartialEq)]
struct EngineKey {
    backend: BackendKind,
    device: Device,
    model_dir: PathBuf,
    model_name: String,
    compute_type: String,
    threads: usize,
}

/// Everything that decides what a loaded speaker encoder is.
#[derive(Debug, Clone, PartialEq)]
struct SpeakerKey {
    path: PathBuf,
    name: String,
    threads: usize,
}

impl ModelSource for ModelPool {
    fn engine(
        &self,
        input: &Path,
        settings: &Settings,
        model: &ResolvedModel,
    ) -> Result<Box<dyn Engine>, Failure> {
        let key = EngineKey {
            backend: model.selection.backend,
            device: model.selection.device,
            model_dir: model.path.clone(),
            model_name: model.name.clone(),
            compute_type: settings.compute_type.clone(),
            threads: settings.threads,
        };
        let engine = Pool::take(&self.engines, key, || {
            let started = Instant::now();
            let engine = transcribe::load_engine(input, settings, model)?;
            let load_ms = started.elapsed().as_millis() as u64;
            MODEL_LOAD_MS.set(Some(load_ms));
            tracing::info!(
                model = %model.name,
                path = %model.path.display(),
                backend = %model.selection.backend,
                device = ?model.selection.device,
                compute_type = %settings.compute_type,
                load_ms,
                "model loaded"
            );
            Ok(engine)
        })?;
        Ok(Box::new(engine))
    }

    fn speaker_encoder(
        &self,
        input: &Path,
        settings: &Settings,
        model: &InstalledSpeakerModel,
    ) -> Result<Box<dyn SpeakerEncoder>, Failure> {
        let key = SpeakerKey {
            path: model.path.clone(),
            name: model.name.clone(),
            threads: settings.threads,
        };
        let encoder = Pool::take(&self.speakers, key, || {
            let started = Instant::now();
            let encoder = transcribe::load_speaker_encoder(input, settings, model)?;
            tracing::info!(
                model = %model.name,
                load_ms = started.elapsed().as_millis() as u64,
                "speaker model loaded"
            );
            Ok(encoder)
        })?;
        Ok(Box::new(encoder))
    }
}

/// Idle items by key, and how many are out. Idle items are dropped once keeping them
/// would hold more items than the most that were ever out at once (the number of
/// workers, in practice): a worker switching settings replaces its model, it does not
/// add one.
struct Pool<K, T> {
    state: Mutex<PoolState<K, T>>,
}

struct PoolState<K, T> {
    /// Oldest first.
    idle: Vec<(K, T)>,
    out: usize,
    most_out: usize,
    loads: usize,
}

impl<K, T> Default for Pool<K, T> {
    fn default() -> Self {
        Pool {
            state: Mutex::new(PoolState {
                idle: Vec::new(),
                out: 0,
                most_out: 0,
                loads: 0,
            }),
        }
    }
}

impl<K: PartialEq, T> Pool<K, T> {
    fn state(&self) -> std::sync::MutexGuard<'_, PoolState<K, T>> {
        // A panic elsewhere cannot leave the counters half-updated; keep serving.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// An idle item for `key`, else one made by `load` (outside the lock, so other
    /// workers are not held up by a model load).
    fn take<E>(
        pool: &Arc<Self>,
        key: K,
        load: impl FnOnce() -> Result<T, E>,
    ) -> Result<Pooled<K, T>, E> {
        let evicted;
        {
            let mut state = pool.state();
            state.out += 1;
            state.most_out = state.most_out.max(state.out);
            if let Some(at) = state.idle.iter().rposition(|(k, _)| *k == key) {
                let (key, item) = state.idle.remove(at);
                return Ok(Pooled {
                    pool: pool.clone(),
                    entry: Some((key, item)),
                });
            }
            let keep = state.most_out - state.out;
            let excess = state.idle.len().saturating_sub(keep);
            evicted = state.idle.drain(..excess).collect::<Vec<_>>();
        }
        // Freed before loading, so the old model and the new are never both in memory.
        drop(evicted);
        match load() {
            Ok(item) => {
                pool.state().loads += 1;
                Ok(Pooled {
                    pool: pool.clone(),
                    entry: Some((key, item)),
                })
            }
            Err(e) => {
                pool.state().out -= 1;
                Err(e)
            }
        }
    }
}

/// An item out of its pool; it goes back when dropped, unless dropped by a panic, which
/// may have left it mid-use.
struct Pooled<K: PartialEq, T> {
    pool: Arc<Pool<K, T>>,
    entry: Option<(K, T)>,
}

impl<K: PartialEq, T> Pooled<K, T> {
    fn item(&self) -> &T {
        &self.entry.as_ref().expect("held until dropped").1
    }

    fn item_mut(&mut self) -> &mut T {
        &mut self.entry.as_mut().expect("held until dropped").1
    }
}

impl<K: PartialEq, T> Drop for Pooled<K, T> {
    fn drop(&mut self) {
        let entry = self.entry.take();
        let returned = if std::thread::panicking() {
            drop(entry);
            None
        } else {
            entry
        };
        let mut state = self.pool.state();
        state.out -= 1;
        state.idle.extend(returned);
    }
}

impl Engine for Pooled<EngineKey, Box<dyn Engine + Send>> {
    fn backend(&self) -> &'static str {
        self.item().backend()
    }

    fn model_name(&self) -> &str {
        self.item().model_name()
    }

    fn transcribe(
        &mut self,
        audio: &[f32],
        windows: &[AudioWindow],
        options: &TranscribeOptions,
        progress: &mut dyn FnMut(EngineProgress),
    ) -> Result<Transcript, vttiro_asr::AsrError> {
        self.item_mut()
            .transcribe(audio, windows, options, progress)
    }

    fn usage(&self) -> Option<vttiro_asr::Usage> {
        self.item().usage()
    }
}

impl SpeakerEncoder for Pooled<SpeakerKey, Box<dyn SpeakerEncoder>> {
    fn embed(&mut self, windows: &[&[f32]]) -> Result<Vec<Vec<f32>>, DiarizeError> {
        self.item_mut().embed(windows)
    }

    fn dimension(&self) -> usize {
        self.item().dimension()
    }

    fn name(&self) -> &str {
        self.item().name()
    }
}

#[cfg(test)]
mod tests {
    //! The runner in-process on real speech with the real tiny.en model, driven through a
    //! `RunContext` that records what a worker would send to the job queue.

    use std::collections::BTreeMap;
    use std::path::PathBuf;
    use std::sync::OnceLock;

    use super::*;

    #[derive(Default)]
    struct Recorder {
        progress: Vec<(String, f32)>,
        saved: BTreeMap<String, Vec<u8>>,
        /// Asks the runner to stop once this many checkpoints were saved.
        cancel_after_saves: Option<usize>,
    }

    impl RunContext for Recorder {
        fn progress(&mut self, stage: &str, fraction: f32) {
            self.progress.push((stage.to_string(), fraction));
        }

        fn cancelled(&self) -> bool {
            self.cancel_after_saves
                .is_some_and(|n| self.saved.len() >= n)
        }

        fn checkpoint(&self, key: &str) -> Option<Vec<u8>> {
            self.saved.get(key).cloned()
        }

        fn save_checkpoint(&mut self, key: &str, data: &[u8]) -> Result<(), RunFailure> {
            self.saved.insert(key.to_string(), data.to_vec());
            Ok(())
        }
    }

    fn runner(group_speech_ms: i64) -> PipelineRunner {
        let base = RawConfig {
            // A model directory needs no model store.
            model: Some(vttiro_fixtures::tiny_en_model().display().to_string()),
            download: Some(false),
            ..RawConfig::default()
        };
        PipelineRunner {
            base,
            models: Arc::default(),
            group_speech_ms,
        }
    }

    fn run(
        runner: &PipelineRunner,
        media: PathBuf,
        formats: &[&str],
        context: &mut Recorder,
    ) -> Result<RunOutput, RunFailure> {
        let spec = json!({});
        let request = RunRequest {
            job_id: "job",
            spec: &spec,
            media,
            formats: formats.iter().map(|f| f.to_string()).collect(),
        };
        runner.run(&request, context)
    }

    fn text(output: &RunOutput, format: &str) -> String {
        let (_, bytes) = output
            .files
            .iter()
            .find(|(f, _)| f == format)
            .expect("format produced");
        String::from_utf8(bytes.clone()).expect("utf-8")
    }

    /// The LibriVox clips and JFK, each followed by 2.5 s of silence so each is a window
    /// of its own (~36 s of speech in six windows).
    fn clips_file() -> PathBuf {
        static FILE: OnceLock<(tempfile::TempDir, PathBuf)> = OnceLock::new();
        let (_, path) = FILE.get_or_init(|| {
            let mut samples = Vec::new();
            let clips = vttiro_fixtures::librivox().into_iter().map(|c| c.wav);
            for clip in clips.chain([vttiro_fixtures::jfk_wav()]) {
                let decoded = vttiro_media::decode(&clip, &Default::default()).expect("decode");
                samples.extend(decoded.samples);
                samples.extend(std::iter::repeat_n(0.0f32, 40_000));
            }
            let dir = tempfile::tempdir().expect("temp dir");
            let path = dir.path().join("media");
            std::fs::write(&path, vttiro_media::encode_wav(&samples)).expect("write");
            (dir, path)
        });
        path.clone()
    }

    #[test]
    fn a_job_reports_each_stage_in_order_and_the_next_job_reuses_the_loaded_model() {
        let runner = runner(vttiro_pipeline::DEFAULT_GROUP_SPEECH_MS);
        let mut context = Recorder::default();
        let first = run(
            &runner,
            vttiro_fixtures::jfk_wav(),
            &["vtt", "json"],
            &mut context,
        )
        .unwrap_or_else(|f| panic!("{}: {}", f.code, f.message));

        let mut stages: Vec<&str> = context.progress.iter().map(|(s, _)| s.as_str()).collect();
        stages.dedup();
        assert_eq!(stages, ["decode", "vad", "transcribe", "layout", "store"]);
        let fractions: Vec<f32> = context.progress.iter().map(|(_, f)| *f).collect();
        assert_eq!(fractions[0], 0.0);
        assert!(
            fractions.windows(2).all(|p| p[0] <= p[1]),
            "{:?}",
            context.progress
        );
        assert!(fractions.iter().all(|f| (0.0..=1.0).contains(f)));
        assert!(*fractions.last().unwrap() >= 0.98, "{fractions:?}");

        let vtt = text(&first, "vtt");
        assert!(vtt.starts_with("WEBVTT"), "{vtt}");
        assert!(vtt.contains("what your country can do for you"), "{vtt}");
        assert_eq!(first.summary["model"], "tiny.en");
        assert_eq!(first.summary["language"], "en");
        assert_eq!(first.summary["engine"], "ct2");
        assert_eq!(first.summary["usage"]["provider"], "ct2");
        assert!(first.summary["timings"]["transcribe_ms"].is_u64());
        assert!(first.summary.get("resumed_groups").is_none());
        assert!(first.summary["model_load_ms"].is_u64(), "{}", first.summary);
        let json: Value = serde_json::from_str(&text(&first, "json")).expect("json output");
        assert_eq!(json["model"], "tiny.en");

        let second = run(
            &runner,
            vttiro_fixtures::jfk_wav(),
            &["vtt"],
            &mut Recorder::default(),
        )
        .unwrap_or_else(|f| panic!("{}: {}", f.code, f.message));
        assert_eq!(runner.models.engines_loaded(), 1);
        assert!(
            second.summary.get("model_load_ms").is_none(),
            "the second job loaded nothing: {}",
            second.summary
        );
        assert_eq!(text(&second, "vtt"), vtt);
    }

    #[test]
    fn a_retried_job_resumes_from_the_groups_the_cancelled_attempt_saved() {
        let runner = runner(10_000);
        let media = clips_file();

        let mut first = Recorder {
            cancel_after_saves: Some(2),
            ..Recorder::default()
        };
        let stopped = run(&runner, media.clone(), &["vtt", "txt"], &mut first);
        assert!(stopped.is_err());
        assert_eq!(first.saved.len(), 2);
        assert!(
            first.saved.keys().all(|k| k.starts_with("asr/")),
            "{:?}",
            first.saved.keys()
        );
        assert!(!first.progress.iter().any(|(s, _)| s == "layout"));

        let mut retry = Recorder {
            saved: first.saved.clone(),
            ..Recorder::default()
        };
        let resumed = run(&runner, media.clone(), &["vtt", "txt"], &mut retry)
            .unwrap_or_else(|f| panic!("{}: {}", f.code, f.message));
        assert_eq!(resumed.summary["resumed_groups"], 2);
        assert!(retry.saved.len() >= 3, "{:?}", retry.saved.keys());

        let mut fresh = Recorder::default();
        let whole = run(&runner, media, &["vtt", "txt"], &mut fresh)
            .unwrap_or_else(|f| panic!("{}: {}", f.code, f.message));
        assert!(whole.summary.get("resumed_groups").is_none());
        // Each group moves the job along, not just the end of recognition.
        let moving: Vec<f32> = fresh
            .progress
            .iter()
            .filter(|(s, f)| s == "transcribe" && *f > 0.08 && *f < 0.95)
            .map(|(_, f)| *f)
            .collect();
        assert!(moving.len() >= 2, "{:?}", fresh.progress);
        assert!(moving.windows(2).all(|p| p[0] <= p[1]), "{moving:?}");
        assert_eq!(
            fresh.saved.keys().collect::<Vec<_>>(),
            retry.saved.keys().collect::<Vec<_>>()
        );
        assert_eq!(text(&resumed, "vtt"), text(&whole, "vtt"));
        assert_eq!(text(&resumed, "txt"), text(&whole, "txt"));
        // One engine served all three attempts.
        assert_eq!(runner.models.engines_loaded(), 1);
    }

    #[test]
    fn a_job_cancelled_while_decoding_loads_no_model() {
        let runner = runner(vttiro_pipeline::DEFAULT_GROUP_SPEECH_MS);
        let mut context = Recorder {
            cancel_after_saves: Some(0),
            ..Recorder::default()
        };
        let stopped = run(&runner, vttiro_fixtures::jfk_wav(), &["vtt"], &mut context);
        assert!(stopped.is_err());
        assert_eq!(runner.models.engines_loaded(), 0);
        assert!(!context.progress.iter().any(|(s, _)| s == "transcribe"));
    }

    #[test]
    fn job_progress_rises_through_every_stage_with_or_without_diarization() {
        for diarize in [false, true] {
            let mut progress = JobProgress::new(diarize);
            let stages: &[&str] = if diarize {
                &["decode", "vad", "transcribe", "diarize", "layout", "store"]
            } else {
                &["decode", "vad", "transcribe", "layout", "store"]
            };
            let mut seen = Vec::new();
            for stage in stages {
                for fraction in [0.0, 0.5, 1.0] {
                    seen.push(progress.overall(stage, fraction));
                }
            }
            assert_eq!(seen[0], 0.0);
            assert_eq!(*seen.last().unwrap(), 1.0);
            assert!(seen.windows(2).all(|p| p[0] <= p[1]), "{seen:?}");
            // Each stage moves the whole job along.
            assert!(seen.chunks(3).all(|c| c[0] < c[2]), "{seen:?}");
            // A stage reporting less than before never moves the job back.
            assert_eq!(progress.overall("transcribe", 0.1), 1.0);
        }
    }

    #[test]
    fn the_pool_reuses_by_key_and_keeps_no_more_than_were_ever_out_at_once() {
        let pool: Arc<Pool<&str, String>> = Arc::default();
        let load = |name: &str| -> Result<String, ()> { Ok(name.to_string()) };
        // Two jobs at once: two items.
        let a1 = Pool::take(&pool, "a", || load("a1")).unwrap();
        let a2 = Pool::take(&pool, "a", || load("a2")).unwrap();
        drop((a1, a2));
        assert_eq!(pool.state().loads, 2);
        // Sequential jobs with the same key load nothing.
        for _ in 0..3 {
            let a = Pool::take(&pool, "a", || load("a3")).unwrap();
            assert!(a.item().starts_with('a'));
        }
        assert_eq!(pool.state().loads, 2);
        // Other settings replace an idle item rather than add to them.
        let b = Pool::take(&pool, "b", || load("b")).unwrap();
        let alive = {
            let state = pool.state();
            state.idle.len() + state.out
        };
        assert_eq!(alive, 2);
        drop(b);
        let kept: Vec<&str> = pool.state().idle.iter().map(|(k, _)| *k).collect();
        assert_eq!(kept, ["a", "b"]);
        // A failed load gives its place back.
        assert!(Pool::take(&pool, "c", || Err::<String, ()>(())).is_err());
        assert_eq!(pool.state().out, 0);
    }
}
