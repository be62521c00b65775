//! Resumable recognition on real speech (five LibriVox utterances and the JFK clip, each
//! after a pause long enough to make it a window of its own) with the real tiny.en
//! CTranslate2 model. The engine is wrapped only to record which windows it was asked
//! for; checkpoints live in a map, as the job queue would keep them.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::{Mutex, OnceLock};

use vttiro_asr::{
    AsrError, AudioWindow, Ct2Engine, Device, Engine, EngineProgress, LocalEngineConfig,
    TranscribeOptions, Usage,
};
use vttiro_core::{ErrorCode, Transcript};
use vttiro_pipeline::{
    checkpoint_key, CheckpointError, Checkpointing, PipelineError, PipelineSettings, ProgressEvent,
    ResumeReport, RunControl, Stage,
};

/// Small groups so ~36 s of speech makes several of them.
const GROUP_SPEECH_MS: i64 = 10_000;

/// The real engine, loaded once; tests take turns with it (two cores, one model).
fn engine() -> std::sync::MutexGuard<'static, Ct2Engine> {
    static ENGINE: OnceLock<Mutex<Ct2Engine>> = OnceLock::new();
    ENGINE
        .get_or_init(|| {
            Mutex::new(
                Ct2Engine::load(&LocalEngineConfig {
                    model_dir: vttiro_fixtures::tiny_en_model(),
                    model_name: "tiny.en".into(),
                    device: Device::Cpu,
                    compute_type: "int8".into(),
                    threads: 2,
                    parallel_streams: 0,
                })
                .expect("load tiny.en"),
            )
        })
        .lock()
        .unwrap_or_else(|p| p.into_inner())
}

/// Delegates to the real engine and records the windows of every call.
struct Recording<'a> {
    inner: &'a mut dyn Engine,
    calls: Vec<Vec<AudioWindow>>,
}

impl Engine for Recording<'_> {
    fn backend(&self) -> &'static str {
        self.inner.backend()
    }

    fn model_name(&self) -> &str {
        self.inner.model_name()
    }

    fn transcribe(
        &mut self,
        audio: &[f32],
        windows: &[AudioWindow],
        options: &TranscribeOptions,
        progress: &mut dyn FnMut(EngineProgress),
    ) -> Result<Transcript, AsrError> {
        self.calls.push(windows.to_vec());
        self.inner.transcribe(audio, windows, options, progress)
    }

    fn usage(&self) -> Option<Usage> {
        self.inner.usage()
    }
}

/// Checkpoints in memory; optionally asks to stop once `cancel_after` groups were saved.
#[derive(Default, Clone)]
struct Store {
    saved: BTreeMap<String, Vec<u8>>,
    saves: usize,
    cancel_after: Option<usize>,
}

impl RunControl for Store {
    fn cancelled(&self) -> bool {
        self.cancel_after.is_some_and(|n| self.saves >= n)
    }

    fn load(&self, key: &str) -> Option<Vec<u8>> {
        self.saved.get(key).cloned()
    }

    fn save(&mut self, key: &str, data: &[u8]) -> Result<(), CheckpointError> {
        self.saves += 1;
        self.saved.insert(key.to_string(), data.to_vec());
        Ok(())
    }
}

/// The recording: each clip followed by 2.5 s of silence (longer than the planner's
/// 2-s inner-pause limit, so every clip is its own window).
fn speech_file() -> PathBuf {
    static FILE: OnceLock<(tempfile::TempDir, PathBuf)> = OnceLock::new();
    let (_, path) = FILE.get_or_init(|| {
        let mut clips: Vec<PathBuf> = vttiro_fixtures::librivox()
            .into_iter()
            .map(|c| c.wav)
            .collect();
        clips.push(vttiro_fixtures::jfk_wav());
        let mut samples = Vec::new();
        for clip in &clips {
            let decoded = vttiro_media::decode(clip, &Default::default()).expect("decode clip");
            samples.extend(decoded.samples);
            samples.extend(std::iter::repeat_n(0.0f32, 40_000));
        }
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("speech.wav");
        std::fs::write(&path, vttiro_media::encode_wav(&samples)).expect("write wav");
        (dir, path)
    });
    path.clone()
}

fn settings(prompt: Option<&str>) -> PipelineSettings {
    let mut settings = PipelineSettings::with_defaults();
    settings.transcribe.prompt = prompt.map(str::to_string);
    settings
}

struct Run {
    result: Result<(Transcript, ResumeReport), PipelineError>,
    calls: Vec<Vec<AudioWindow>>,
    windows: Vec<AudioWindow>,
    progress: Vec<ProgressEvent>,
}

fn run(store: &mut Store, settings: &PipelineSettings) -> Run {
    let input = speech_file();
    let mut progress = Vec::new();
    let prepared = vttiro_pipeline::prepare(&input, settings, &mut |_| {}).expect("prepare");
    let windows = prepared.windows.clone();
    let mut engine = engine();
    let mut recording = Recording {
        inner: &mut *engine,
        calls: Vec::new(),
    };
    let result = vttiro_pipeline::recognise_resumable(
        &input,
        prepared,
        &mut recording,
        None,
        settings,
        Checkpointing {
            group_speech_ms: Some(GROUP_SPEECH_MS),
            engine_identity: "tiny.en int8 cpu".into(),
            control: store,
        },
        &mut |e| progress.push(e),
    )
    .map(|(output, report)| (output.transcript, report));
    Run {
        result,
        calls: recording.calls,
        windows,
        progress,
    }
}

/// An uninterrupted grouped run over fresh storage, shared by the tests that compare
/// against it.
fn uninterrupted() -> &'static (Transcript, ResumeReport, Store, Vec<Vec<AudioWindow>>) {
    static RUN: OnceLock<(Transcript, ResumeReport, Store, Vec<Vec<AudioWindow>>)> =
        OnceLock::new();
    RUN.get_or_init(|| {
        let mut store = Store::default();
        let run = run(&mut store, &settings(None));
        let (transcript, report) = run.result.expect("uninterrupted run");
        (transcript, report, store, run.calls)
    })
}

fn plain(text: &str) -> String {
    text.to_lowercase()
        .chars()
        .filter(|c| c.is_alphanumeric() || c.is_whitespace())
        .collect()
}

#[test]
fn an_uninterrupted_grouped_run_recognises_every_group_once_and_checkpoints_each() {
    let (transcript, report, store, calls) = uninterrupted();
    assert!(report.groups >= 3, "{report:?}");
    assert_eq!(report.resumed_groups, 0);
    assert_eq!(calls.len(), report.groups);
    let keys: Vec<String> = (0..report.groups)
        .map(|g| checkpoint_key(&report.fingerprint, g))
        .collect();
    assert_eq!(store.saved.keys().cloned().collect::<Vec<_>>(), {
        let mut sorted = keys.clone();
        sorted.sort();
        sorted
    });
    // Real speech, times on the input's timeline, segments in order and numbered.
    let text = plain(&transcript.text());
    assert!(
        text.contains("ask not what your country can do for you"),
        "{text}"
    );
    assert_eq!(transcript.language, "en");
    assert_eq!(transcript.model, "tiny.en");
    for (i, s) in transcript.segments.iter().enumerate() {
        assert_eq!(s.id as usize, i);
    }
    for pair in transcript.segments.windows(2) {
        assert!(pair[0].start_ms <= pair[1].start_ms, "{pair:?}");
    }
    // The JFK clip is the last window: its words are far into the file.
    let last_group = calls.last().unwrap();
    let jfk_start = vttiro_core::samples_to_ms(last_group[0].start);
    let ask = transcript
        .words()
        .find(|w| w.text.trim() == "ask")
        .expect("ask");
    assert!(ask.start_ms >= jfk_start, "{ask:?} before {jfk_start}");
}

#[test]
fn a_resumed_run_sends_only_the_groups_not_checkpointed_and_builds_the_same_transcript() {
    let (transcript, report, store, calls) = uninterrupted();
    let k = 2;
    let mut resumed = Store::default();
    for g in 0..k {
        let key = checkpoint_key(&report.fingerprint, g);
        resumed.saved.insert(key.clone(), store.saved[&key].clone());
    }
    let run = run(&mut resumed, &settings(None));
    let (again, again_report) = run.result.expect("resumed run");
    assert_eq!(again_report.fingerprint, report.fingerprint);
    assert_eq!(again_report.resumed_groups, k);
    // The engine saw exactly the windows of the groups after the first k.
    assert_eq!(run.calls, calls[k..].to_vec());
    let first_sent = run.calls[0][0];
    assert_eq!(
        run.windows.iter().position(|w| *w == first_sent),
        Some(calls[..k].iter().map(Vec::len).sum::<usize>())
    );
    assert_eq!(&again, transcript);
    // Progress still covers the whole transcription and never goes back.
    let fractions: Vec<f32> = run
        .progress
        .iter()
        .filter(|e| e.stage == Stage::Transcribe)
        .map(|e| e.fraction)
        .collect();
    assert!(fractions.windows(2).all(|p| p[0] <= p[1]), "{fractions:?}");
    assert_eq!(fractions.last().copied(), Some(1.0));
}

#[test]
fn checkpoints_of_another_plan_are_ignored() {
    let (transcript, report, store, calls) = uninterrupted();

    // Another prompt is another plan: a different fingerprint, so no key matches.
    let mut other = store.clone();
    let run_other = run(&mut other, &settings(Some("Sense and Sensibility.")));
    let (_, other_report) = run_other.result.expect("run with a prompt");
    assert_ne!(other_report.fingerprint, report.fingerprint);
    assert_eq!(other_report.resumed_groups, 0);
    assert_eq!(run_other.calls.len(), report.groups);

    // A payload from another plan under this plan's key, and bytes that are not a
    // checkpoint at all, are recognised again rather than trusted.
    let mut forged = Store::default();
    let key0 = checkpoint_key(&report.fingerprint, 0);
    let mut payload: serde_json::Value = serde_json::from_slice(&store.saved[&key0]).unwrap();
    payload["fingerprint"] = serde_json::json!(other_report.fingerprint);
    forged
        .saved
        .insert(key0, serde_json::to_vec(&payload).unwrap());
    forged.saved.insert(
        checkpoint_key(&report.fingerprint, 1),
        b"{not json".to_vec(),
    );
    let run_forged = run(&mut forged, &settings(None));
    let (again, forged_report) = run_forged.result.expect("run over forged checkpoints");
    assert_eq!(forged_report.resumed_groups, 0);
    assert_eq!(&run_forged.calls, calls);
    assert_eq!(&again, transcript);
}

#[test]
fn cancelling_between_groups_stops_early_and_the_next_attempt_finishes_the_rest() {
    let (transcript, report, _, calls) = uninterrupted();
    let mut store = Store {
        cancel_after: Some(1),
        ..Store::default()
    };
    let cancelled = run(&mut store, &settings(None));
    assert!(
        matches!(cancelled.result, Err(PipelineError::Cancelled { .. })),
        "{:?}",
        cancelled.result.as_ref().map(|(_, r)| r)
    );
    assert_eq!(cancelled.calls, calls[..1].to_vec());
    assert_eq!(store.saved.len(), 1);
    assert_eq!(
        PipelineError::Cancelled { input: "x".into() }.code(),
        ErrorCode::Internal
    );

    store.cancel_after = None;
    let resumed = run(&mut store, &settings(None));
    let (again, again_report) = resumed.result.expect("resumed after cancel");
    assert_eq!(again_report.resumed_groups, 1);
    assert_eq!(resumed.calls, calls[1..].to_vec());
    assert_eq!(store.saved.len(), report.groups);
    assert_eq!(&again, transcript);
}

#[test]
fn one_group_gives_what_one_engine_call_gives() {
    let input = speech_file();
    let settings = settings(None);
    let mut engine = engine();
    let prepared = vttiro_pipeline::prepare(&input, &settings, &mut |_| {}).unwrap();
    let whole =
        vttiro_pipeline::recognise(&input, prepared, &mut *engine, None, &settings, &mut |_| {})
            .expect("one call");
    let prepared = vttiro_pipeline::prepare(&input, &settings, &mut |_| {}).unwrap();
    let mut store = Store::default();
    let (grouped, report) = vttiro_pipeline::recognise_resumable(
        &input,
        prepared,
        &mut *engine,
        None,
        &settings,
        Checkpointing {
            group_speech_ms: None,
            engine_identity: String::new(),
            control: &mut store,
        },
        &mut |_| {},
    )
    .expect("one group");
    assert_eq!(report.groups, 1);
    assert_eq!(grouped.transcript, whole.transcript);
    assert_eq!(store.saved.len(), 1);
}
