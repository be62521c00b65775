//! vttiro-pipeline runs the stages for one input — decode to 16 kHz mono, voice activity
//! detection, pause-aligned chunk planning, recognition, optional speaker diarization —
//! and reports progress events and per-stage timings. It is the one place that knows the order of the stages, so the
//! CLI, the server's workers and the Python bindings all produce identical results.
//!
//! It talks to recognisers only through [`vttiro_asr::Engine`] and to speaker models only
//! through [`vttiro_diarize::SpeakerEncoder`], and must not know about
//! output formats, HTTP, databases or tokio; writing subtitles is the caller's job.
//!
//! [`recognise`] sends every window to the engine in one call (the CLI); the service uses
//! [`recognise_resumable`], which works in checkpointed groups so a retried job resumes
//! where the last attempt stopped, and which can be cancelled between groups.

mod resume;

use std::path::Path;
use std::time::Instant;

use serde::Serialize;
use tracing::info;
use vttiro_asr::{AsrError, AudioWindow, Engine, TranscribeOptions};
use vttiro_core::{samples_to_ms, ErrorCode, SpeechRegion, Transcript};
use vttiro_diarize::{Diarization, DiarizeError, DiarizeOptions, SpeakerEncoder};
use vttiro_media::{DecodeOptions, DecoderKind, MediaError};
use vttiro_vad::{ChunkParams, VadParams};

pub use resume::{
    checkpoint_key, plan_groups, recognise_resumable, CheckpointError, Checkpointing, ResumeReport,
    RunControl, DEFAULT_GROUP_SPEECH_MS,
};

#[derive(Debug, Clone, Default)]
pub struct PipelineSettings {
    pub decode: DecodeOptions,
    /// `false` transcribes everything, silence included (Whisper's own behaviour).
    pub vad_enabled: bool,
    pub vad: VadParams,
    pub chunks: ChunkParams,
    pub transcribe: TranscribeOptions,
    /// `Some` labels every word with its speaker (needs a speaker encoder at run time).
    pub diarize: Option<DiarizeSettings>,
}

#[derive(Debug, Clone, Default)]
pub struct DiarizeSettings {
    pub options: DiarizeOptions,
    /// Display names for speakers in order of first appearance; the rest are `Speaker N`.
    pub names: Vec<String>,
}

impl PipelineSettings {
    pub fn with_defaults() -> Self {
        PipelineSettings {
            vad_enabled: true,
            ..Default::default()
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Stage {
    Decode,
    Vad,
    Transcribe,
    Diarize,
}

impl Stage {
    pub fn as_str(self) -> &'static str {
        match self {
            Stage::Decode => "decode",
            Stage::Vad => "vad",
            Stage::Transcribe => "transcribe",
            Stage::Diarize => "diarize",
        }
    }
}

/// What the pipeline tells its caller while it works; `fraction` is within the stage.
#[derive(Debug, Clone, Copy)]
pub struct ProgressEvent {
    pub stage: Stage,
    pub fraction: f32,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct Timings {
    pub decode_ms: u64,
    pub vad_ms: u64,
    pub transcribe_ms: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub diarize_ms: Option<u64>,
    pub total_ms: u64,
}

#[derive(Debug, Clone, Serialize)]
pub struct SourceSummary {
    pub codec: String,
    pub decoder: &'static str,
    pub audio_track: usize,
    pub start_offset_ms: i64,
    pub duration_ms: i64,
    pub speech_ms: i64,
    pub chunks: usize,
}

#[derive(Debug, Clone)]
pub struct PipelineOutput {
    pub transcript: Transcript,
    pub timings: Timings,
    pub source: SourceSummary,
    pub speech: Vec<SpeechRegion>,
    /// Speaker turns when diarization ran.
    pub diarization: Option<Diarization>,
}

#[derive(Debug, thiserror::Error)]
pub enum PipelineError {
    #[error(transparent)]
    Media(#[from] MediaError),
    #[error("{input}: {source}")]
    Asr {
        input: String,
        #[source]
        source: AsrError,
    },
    #[error("{input}: {source}")]
    Diarize {
        input: String,
        #[source]
        source: DiarizeError,
    },
    #[error("{input}: diarization was requested but no speaker model was given")]
    NoSpeakerModel { input: String },
    #[error("{input}: cancelled")]
    Cancelled { input: String },
    #[error("{input}: {source}")]
    Checkpoint {
        input: String,
        #[source]
        source: CheckpointError,
    },
}

impl PipelineError {
    pub fn code(&self) -> ErrorCode {
        match self {
            PipelineError::Media(e) => e.code(),
            PipelineError::Asr { source, .. } => source.code(),
            PipelineError::Diarize { source, .. } => source.code(),
            PipelineError::NoSpeakerModel { .. } => ErrorCode::InvalidArgument,
            // The table has no code for a stop the caller asked for; whoever cancels
            // knows why the run ended and never reports this as a failure.
            PipelineError::Cancelled { .. } => ErrorCode::Internal,
            PipelineError::Checkpoint { source, .. } => source.code,
        }
    }
}

/// Decodes `input` and plans the windows to recognise, without running the engine; this
/// is what `--dry-run` reports and the first half of [`run`].
pub struct Prepared {
    pub samples: Vec<f32>,
    pub windows: Vec<AudioWindow>,
    pub speech: Vec<SpeechRegion>,
    pub source: SourceSummary,
    pub timings: Timings,
}

pub fn prepare(
    input: &Path,
    settings: &PipelineSettings,
    progress: &mut dyn FnMut(ProgressEvent),
) -> Result<Prepared, PipelineError> {
    let started = Instant::now();
    progress(ProgressEvent {
        stage: Stage::Decode,
        fraction: 0.0,
    });
    let decoded = vttiro_media::decode_with_progress(input, &settings.decode, &mut |f| {
        progress(ProgressEvent {
            stage: Stage::Decode,
            fraction: f,
        })
    })?;
    let decode_ms = started.elapsed().as_millis() as u64;

    let vad_started = Instant::now();
    progress(ProgressEvent {
        stage: Stage::Vad,
        fraction: 0.0,
    });
    let samples = decoded.samples;
    let (speech, windows) = if settings.vad_enabled {
        let speech = vttiro_vad::detect_speech(&samples, &settings.vad);
        let chunks = vttiro_vad::plan_chunks(&speech, &samples, &settings.chunks);
        let windows = chunks
            .iter()
            .map(|c| AudioWindow {
                start: c.start,
                end: c.end,
            })
            .collect();
        (speech, windows)
    } else {
        let all = SpeechRegion {
            start: 0,
            end: samples.len(),
        };
        let windows = if samples.is_empty() {
            vec![]
        } else {
            vec![AudioWindow {
                start: 0,
                end: samples.len(),
            }]
        };
        (vec![all], windows)
    };
    let vad_ms = vad_started.elapsed().as_millis() as u64;
    let speech_ms = speech.iter().map(|r| samples_to_ms(r.len())).sum();
    info!(
        input = %input.display(),
        duration_ms = samples_to_ms(samples.len()),
        speech_ms,
        chunks = windows.len(),
        "planned"
    );
    let source = SourceSummary {
        codec: decoded.track.codec.clone(),
        decoder: match decoded.decoder {
            DecoderKind::Symphonia => "symphonia",
            DecoderKind::Ffmpeg => "ffmpeg",
        },
        audio_track: decoded.track.index,
        start_offset_ms: decoded.start_offset_ms,
        duration_ms: samples_to_ms(samples.len()),
        speech_ms,
        chunks: windows.len(),
    };
    Ok(Prepared {
        samples,
        windows,
        speech,
        source,
        timings: Timings {
            decode_ms,
            vad_ms,
            ..Default::default()
        },
    })
}

/// Runs every stage for one input. `speakers` is required when `settings.diarize` is set.
pub fn run(
    input: &Path,
    engine: &mut dyn Engine,
    speakers: Option<&mut dyn SpeakerEncoder>,
    settings: &PipelineSettings,
    progress: &mut dyn FnMut(ProgressEvent),
) -> Result<PipelineOutput, PipelineError> {
    let prepared = prepare(input, settings, progress)?;
    recognise(input, prepared, engine, speakers, settings, progress)
}

/// The second half of [`run`]: recognition over the planned windows, then diarization.
/// Split out so callers can reject bad media before paying for a model load.
pub fn recognise(
    input: &Path,
    prepared: Prepared,
    engine: &mut dyn Engine,
    speakers: Option<&mut dyn SpeakerEncoder>,
    settings: &PipelineSettings,
    progress: &mut dyn FnMut(ProgressEvent),
) -> Result<PipelineOutput, PipelineError> {
    let asr_started = Instant::now();
    progress(ProgressEvent {
        stage: Stage::Transcribe,
        fraction: 0.0,
    });
    let speech_total: usize = prepared.windows.iter().map(|w| w.end - w.start).sum();
    let transcript = if prepared.windows.is_empty() {
        // Nothing but silence or noise: no engine call, so nothing can be hallucinated.
        empty_transcript(engine, settings, &prepared.samples)
    } else {
        let windows = &prepared.windows;
        engine
            .transcribe(&prepared.samples, windows, &settings.transcribe, &mut |p| {
                // Map engine time onto the share of speech already covered.
                let done_samples = vttiro_core::ms_to_samples(p.done_ms);
                let done: usize = windows
                    .iter()
                    .map(|w| done_samples.clamp(w.start, w.end) - w.start)
                    .sum();
                progress(ProgressEvent {
                    stage: Stage::Transcribe,
                    fraction: done as f32 / speech_total.max(1) as f32,
                })
            })
            .map_err(|source| PipelineError::Asr {
                input: input.display().to_string(),
                source,
            })?
    };
    complete(
        input,
        prepared,
        transcript,
        asr_started,
        speakers,
        settings,
        progress,
    )
}

/// The transcript of an input with no speech windows.
fn empty_transcript(
    engine: &dyn Engine,
    settings: &PipelineSettings,
    samples: &[f32],
) -> Transcript {
    Transcript {
        language: settings
            .transcribe
            .language
            .clone()
            .unwrap_or_else(|| "en".into()),
        language_probability: 0.0,
        duration_ms: samples_to_ms(samples.len()),
        model: engine.model_name().to_string(),
        segments: vec![],
    }
}

/// Everything after recognition: the transcript's duration, diarization and timings.
fn complete(
    input: &Path,
    prepared: Prepared,
    mut transcript: Transcript,
    asr_started: Instant,
    speakers: Option<&mut dyn SpeakerEncoder>,
    settings: &PipelineSettings,
    progress: &mut dyn FnMut(ProgressEvent),
) -> Result<PipelineOutput, PipelineError> {
    transcript.duration_ms = samples_to_ms(prepared.samples.len());
    let mut timings = prepared.timings;
    timings.transcribe_ms = asr_started.elapsed().as_millis() as u64;
    let diarization = match &settings.diarize {
        None => None,
        // A cloud engine that labels speakers itself has done this stage already; its
        // labels ("A", "0", "Speaker 1") are renamed like the diarizer's.
        Some(diarize_settings) if transcript.words().any(|w| w.speaker.is_some()) => {
            name_engine_speakers(&mut transcript, &diarize_settings.names);
            None
        }
        Some(diarize_settings) => {
            let encoder = speakers.ok_or_else(|| PipelineError::NoSpeakerModel {
                input: input.display().to_string(),
            })?;
            let started = Instant::now();
            let result = diarize_transcript(
                &prepared.samples,
                &prepared.speech,
                &mut transcript,
                encoder,
                diarize_settings,
                progress,
            )
            .map_err(|source| PipelineError::Diarize {
                input: input.display().to_string(),
                source,
            })?;
            timings.diarize_ms = Some(started.elapsed().as_millis() as u64);
            Some(result)
        }
    };
    timings.total_ms = timings.decode_ms
        + timings.vad_ms
        + timings.transcribe_ms
        + timings.diarize_ms.unwrap_or(0);
    Ok(PipelineOutput {
        transcript,
        timings,
        source: prepared.source,
        speech: prepared.speech,
        diarization,
    })
}

/// Renames an engine's speaker labels to "Speaker N" (or `names`) in order of first
/// appearance.
pub fn name_engine_speakers(transcript: &mut Transcript, names: &[String]) {
    let mut seen: Vec<String> = Vec::new();
    for word in transcript
        .segments
        .iter_mut()
        .flat_map(|s| s.words.iter_mut())
    {
        let Some(label) = word.speaker.take() else {
            continue;
        };
        let rank = seen.iter().position(|l| *l == label).unwrap_or_else(|| {
            seen.push(label);
            seen.len() - 1
        });
        word.speaker = Some(vttiro_diarize::speaker_name(names, rank));
    }
}

/// Finds the speakers in the speech and writes them onto the transcript's words.
pub fn diarize_transcript(
    samples: &[f32],
    speech: &[SpeechRegion],
    transcript: &mut Transcript,
    encoder: &mut dyn SpeakerEncoder,
    settings: &DiarizeSettings,
    progress: &mut dyn FnMut(ProgressEvent),
) -> Result<Diarization, DiarizeError> {
    progress(ProgressEvent {
        stage: Stage::Diarize,
        fraction: 0.0,
    });
    let mut diarization = vttiro_diarize::diarize(
        samples,
        speech,
        encoder,
        &settings.options,
        &mut |fraction| {
            progress(ProgressEvent {
                stage: Stage::Diarize,
                fraction,
            })
        },
    )?;
    vttiro_diarize::assign_speakers(transcript, &mut diarization, &settings.names);
    Ok(diarization)
}
