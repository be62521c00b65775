//! Recognition in checkpointed groups, so a run that dies or is cancelled halfway can be
//! picked up by another process without decoding the finished part again.
//!
//! The planned windows are gathered into groups of consecutive windows (a few minutes of
//! speech each). Each group goes to the engine on its own, and its segments are handed to
//! the caller's [`RunControl`] under a key naming the group and a fingerprint of the plan:
//! the audio, every window and group boundary, the engine and its model, and the decoding
//! options. A later attempt computes the same fingerprint only if nothing that shapes the
//! output changed, so it reuses exactly the groups that would come out the same, and a
//! checkpoint left by another model, prompt or plan is never looked at.
//!
//! Splitting has a cost: the engine's previous-text context restarts at each group, so a
//! grouped run of a long input can differ slightly from one engine call over all windows
//! (what [`crate::recognise`] does). Within grouped runs the result does not depend on
//! where a run was interrupted.

use std::ops::Range;
use std::path::Path;
use std::time::Instant;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use tracing::{info, warn};
use vttiro_asr::{AudioWindow, Engine, EngineProgress, Usage};
use vttiro_core::{ms_to_samples, ErrorCode, Segment, Transcript};
use vttiro_diarize::SpeakerEncoder;

use crate::{
    complete, empty_transcript, PipelineError, PipelineOutput, PipelineSettings, Prepared,
    ProgressEvent, Stage,
};

/// Speech per group the service uses: long enough for the CTranslate2 backend to still
/// decode a group as parallel streams (each needs 60 s), short enough that a crash or a
/// cancel costs at most a few minutes of decoding.
pub const DEFAULT_GROUP_SPEECH_MS: i64 = 180_000;

/// Bumped whenever the checkpoint payload or the fingerprint's inputs change meaning, so
/// checkpoints written by an older build are recomputed instead of misread.
const FORMAT_VERSION: u32 = 1;

/// What a resumable run asks of its caller between groups.
pub trait RunControl {
    /// True once the run should stop; checked before each group is sent to the engine
    /// and before diarization. An engine call already under way is not interrupted.
    fn cancelled(&self) -> bool;
    /// The bytes an earlier attempt saved under `key`, if any.
    fn load(&self, key: &str) -> Option<Vec<u8>>;
    /// Keeps `data` under `key` for a later attempt.
    fn save(&mut self, key: &str, data: &[u8]) -> Result<(), CheckpointError>;
}

/// A checkpoint could not be saved; `code` is the store's own classification (a lost job
/// lease, a full disk), so retry decisions stay with the store that failed.
#[derive(Debug, Clone, thiserror::Error)]
#[error("cannot save a checkpoint: {message}")]
pub struct CheckpointError {
    pub code: ErrorCode,
    pub message: String,
}

/// How a resumable run splits its windows and where its checkpoints go.
pub struct Checkpointing<'a> {
    /// Most speech per group (a group always holds at least one window); `None` sends
    /// every window in one call, e.g. for cloud engines, which bill and answer per request.
    pub group_speech_ms: Option<i64>,
    /// What else decides the engine's output that [`Engine`] cannot name, such as the
    /// model files' location and compute type; part of the fingerprint.
    pub engine_identity: String,
    pub control: &'a mut dyn RunControl,
}

/// How much of a resumable run came from checkpoints.
#[derive(Debug, Clone)]
pub struct ResumeReport {
    /// Names this plan; checkpoint keys are [`checkpoint_key`]`(fingerprint, group)`.
    pub fingerprint: String,
    pub groups: usize,
    /// Groups taken from an earlier attempt's checkpoints instead of the engine.
    pub resumed_groups: usize,
    /// The engine's usage summed over the groups it ran in this attempt (`None` when it
    /// reports none, as local engines do, or when it ran no group).
    pub usage: Option<Usage>,
}

/// The key a group's checkpoint is saved under.
pub fn checkpoint_key(fingerprint: &str, group: usize) -> String {
    format!("asr/{fingerprint}/{group}")
}

/// Gathers consecutive windows into groups of at most `max_speech_ms` of speech (a
/// longer window is a group on its own); `None` makes one group of everything.
pub fn plan_groups(windows: &[AudioWindow], max_speech_ms: Option<i64>) -> Vec<Range<usize>> {
    if windows.is_empty() {
        return Vec::new();
    }
    let Some(max_ms) = max_speech_ms else {
        return std::iter::once(0..windows.len()).collect();
    };
    let max = ms_to_samples(max_ms);
    let mut groups = Vec::new();
    let (mut start, mut speech) = (0, 0usize);
    for (i, window) in windows.iter().enumerate() {
        let len = window.end.saturating_sub(window.start);
        if i > start && speech + len > max {
            groups.push(start..i);
            (start, speech) = (i, 0);
        }
        speech += len;
    }
    groups.push(start..windows.len());
    groups
}

/// One group's recognised text as saved: JSON of the core transcript types, so a
/// checkpoint can be read by eye when a job misbehaves.
#[derive(Debug, Serialize, Deserialize)]
struct GroupCheckpoint {
    version: u32,
    fingerprint: String,
    group: usize,
    language: String,
    language_probability: f32,
    model: String,
    segments: Vec<Segment>,
}

impl GroupCheckpoint {
    /// `None` for anything but this plan's own checkpoint of this group.
    fn parse(data: &[u8], fingerprint: &str, group: usize) -> Option<GroupCheckpoint> {
        let saved: GroupCheckpoint = match serde_json::from_slice(data) {
            Ok(saved) => saved,
            Err(e) => {
                warn!(group, error = %e, "unreadable checkpoint; recognising the group again");
                return None;
            }
        };
        if saved.version != FORMAT_VERSION
            || saved.fingerprint != fingerprint
            || saved.group != group
        {
            warn!(
                group,
                "checkpoint from another plan; recognising the group again"
            );
            return None;
        }
        Some(saved)
    }
}

/// A digest of everything that decides what the engine returns for each group.
fn fingerprint(
    samples: &[f32],
    windows: &[AudioWindow],
    groups: &[Range<usize>],
    engine: &dyn Engine,
    engine_identity: &str,
    settings: &PipelineSettings,
) -> String {
    let mut hash = Sha256::new();
    hash.update(format!("vttiro-asr-groups v{FORMAT_VERSION}\n"));
    hash.update(format!(
        "engine {} {} {engine_identity}\n",
        engine.backend(),
        engine.model_name()
    ));
    // Debug lists every decoding option, so a new option joins the fingerprint without
    // anyone having to remember to add it here.
    hash.update(format!("options {:?}\n", settings.transcribe));
    hash.update(format!("samples {}\n", samples.len()));
    let mut bytes = Vec::with_capacity(4 * 4096);
    for chunk in samples.chunks(4096) {
        bytes.clear();
        bytes.extend(chunk.iter().flat_map(|s| s.to_le_bytes()));
        hash.update(&bytes);
    }
    for w in windows {
        hash.update(format!("window {} {}\n", w.start, w.end));
    }
    for g in groups {
        hash.update(format!("group {} {}\n", g.start, g.end));
    }
    let digest = hash.finalize();
    // 128 bits tell plans apart and keep keys short.
    digest[..16].iter().map(|b| format!("{b:02x}")).collect()
}

/// Adds one group's usage to the run's: billed audio, cost and requests add up; the
/// provider is the one that answered last.
fn add_usage(total: Option<Usage>, next: Option<Usage>) -> Option<Usage> {
    match (total, next) {
        (None, next) => next,
        (total, None) => total,
        (Some(total), Some(mut next)) => {
            next.billed_seconds += total.billed_seconds;
            next.estimated_cost_usd = total
                .estimated_cost_usd
                .zip(next.estimated_cost_usd)
                .map(|(a, b)| a + b);
            next.requests += total.requests;
            next.retries += total.retries;
            let mut fell_back = total.fell_back_from;
            fell_back.append(&mut next.fell_back_from);
            next.fell_back_from = fell_back;
            Some(next)
        }
    }
}

/// [`crate::recognise`] in checkpointed groups: groups an earlier attempt of the same
/// plan saved are taken from `checkpointing.control` instead of the engine, every group
/// the engine recognises is saved before the next one starts, and the run stops with
/// [`PipelineError::Cancelled`] between groups once the control says so.
///
/// The transcript is the groups' segments in order (renumbered, times on the input's
/// timeline), with the language and model of the first group. When the caller leaves
/// the language to detection, the first group's language is given explicitly to the
/// rest, so every group is decoded in one language whether or not it was resumed.
pub fn recognise_resumable(
    input: &Path,
    prepared: Prepared,
    engine: &mut dyn Engine,
    speakers: Option<&mut dyn SpeakerEncoder>,
    settings: &PipelineSettings,
    checkpointing: Checkpointing<'_>,
    progress: &mut dyn FnMut(ProgressEvent),
) -> Result<(PipelineOutput, ResumeReport), PipelineError> {
    let asr_started = Instant::now();
    let control = checkpointing.control;
    let input_name = || input.display().to_string();
    progress(ProgressEvent {
        stage: Stage::Transcribe,
        fraction: 0.0,
    });
    let windows = &prepared.windows;
    let groups = plan_groups(windows, checkpointing.group_speech_ms);
    let fingerprint = fingerprint(
        &prepared.samples,
        windows,
        &groups,
        engine,
        &checkpointing.engine_identity,
        settings,
    );
    let speech_total: usize = windows.iter().map(|w| w.end - w.start).sum();
    let mut report = ResumeReport {
        fingerprint,
        groups: groups.len(),
        resumed_groups: 0,
        usage: None,
    };
    let mut options = settings.transcribe.clone();
    let mut done_speech = 0usize;
    let mut transcript: Option<Transcript> = None;
    for (index, range) in groups.iter().enumerate() {
        let group_windows = &windows[range.clone()];
        let group_speech: usize = group_windows.iter().map(|w| w.end - w.start).sum();
        let key = checkpoint_key(&report.fingerprint, index);
        let saved = control
            .load(&key)
            .and_then(|data| GroupCheckpoint::parse(&data, &report.fingerprint, index));
        let part = match saved {
            Some(part) => {
                report.resumed_groups += 1;
                part
            }
            None => {
                if control.cancelled() {
                    info!(input = %input.display(), group = index, groups = groups.len(), "cancelled between groups");
                    return Err(PipelineError::Cancelled {
                        input: input_name(),
                    });
                }
                let recognised = engine
                    .transcribe(
                        &prepared.samples,
                        group_windows,
                        &options,
                        &mut |p: EngineProgress| {
                            // Engines report how far into the input they are; count the
                            // group's speech up to there.
                            let at = ms_to_samples(p.done_ms);
                            let within: usize = group_windows
                                .iter()
                                .map(|w| at.clamp(w.start, w.end) - w.start)
                                .sum();
                            progress(ProgressEvent {
                                stage: Stage::Transcribe,
                                fraction: (done_speech + within) as f32
                                    / speech_total.max(1) as f32,
                            })
                        },
                    )
                    .map_err(|source| PipelineError::Asr {
                        input: input_name(),
                        source,
                    })?;
                report.usage = add_usage(report.usage.take(), engine.usage());
                let part = GroupCheckpoint {
                    version: FORMAT_VERSION,
                    fingerprint: report.fingerprint.clone(),
                    group: index,
                    language: recognised.language,
                    language_probability: recognised.language_probability,
                    model: recognised.model,
                    segments: recognised.segments,
                };
                let data = serde_json::to_vec(&part).expect("segments serialise to JSON");
                control
                    .save(&key, &data)
                    .map_err(|source| PipelineError::Checkpoint {
                        input: input_name(),
                        source,
                    })?;
                // Continue from what was saved, not from memory, so this run's transcript
                // is bit for bit what a run resuming from these checkpoints would build
                // (a score JSON cannot hold keeps the in-memory group).
                GroupCheckpoint::parse(&data, &report.fingerprint, index).unwrap_or(part)
            }
        };
        let merged = transcript.get_or_insert_with(|| {
            if options.language.is_none() {
                options.language = Some(part.language.clone());
            }
            Transcript {
                language: part.language.clone(),
                language_probability: part.language_probability,
                duration_ms: 0,
                model: part.model.clone(),
                segments: Vec::new(),
            }
        });
        for mut segment in part.segments {
            segment.id = merged.segments.len() as u32;
            merged.segments.push(segment);
        }
        done_speech += group_speech;
        progress(ProgressEvent {
            stage: Stage::Transcribe,
            fraction: done_speech as f32 / speech_total.max(1) as f32,
        });
    }
    info!(
        input = %input.display(),
        groups = report.groups,
        resumed = report.resumed_groups,
        "recognised in groups"
    );
    // Nothing but silence or noise: no engine call, so nothing can be hallucinated.
    let transcript =
        transcript.unwrap_or_else(|| empty_transcript(engine, settings, &prepared.samples));
    if settings.diarize.is_some() && control.cancelled() {
        return Err(PipelineError::Cancelled {
            input: input_name(),
        });
    }
    let output = complete(
        input,
        prepared,
        transcript,
        asr_started,
        speakers,
        settings,
        progress,
    )?;
    Ok((output, report))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn window(start_s: usize, end_s: usize) -> AudioWindow {
        AudioWindow {
            start: start_s * 16_000,
            end: end_s * 16_000,
        }
    }

    #[test]
    fn groups_cover_every_window_once_in_order_within_the_limit() {
        let windows = [
            window(0, 25),
            window(30, 58),
            window(60, 80),
            window(90, 150), // longer than the limit: a group of its own
            window(150, 155),
            window(160, 170),
        ];
        let groups = plan_groups(&windows, Some(50_000));
        assert_eq!(groups, [0..1, 1..3, 3..4, 4..6]);
        let whole = plan_groups(&windows, None);
        assert_eq!((whole.len(), &whole[0]), (1, &(0..6)));
        // A window longer than the limit still makes a group.
        let long = plan_groups(&windows[..1], Some(1_000));
        assert_eq!((long.len(), &long[0]), (1, &(0..1)));
        assert!(plan_groups(&[], Some(50_000)).is_empty());
    }

    #[test]
    fn usage_adds_up_over_groups() {
        let usage = |billed: f64, cost: Option<f64>| Usage {
            billed_seconds: billed,
            estimated_cost_usd: cost,
            requests: 1,
            ..Usage::local("deepgram", "nova-3")
        };
        let total =
            add_usage(Some(usage(10.0, Some(0.1))), Some(usage(5.0, Some(0.05)))).expect("some");
        assert_eq!(total.billed_seconds, 15.0);
        assert!((total.estimated_cost_usd.unwrap() - 0.15).abs() < 1e-12);
        assert_eq!(total.requests, 2);
        let unknown = add_usage(Some(total), Some(usage(1.0, None))).expect("some");
        assert_eq!(unknown.estimated_cost_usd, None);
        assert_eq!(add_usage(None, None), None);
    }
}
