//! vttiro-diarize answers "who spoke when": it turns 16 kHz mono speech into speaker
//! embeddings (the GE2E encoder run in Rust from converted Resemblyzer weights, or an ONNX
//! speaker model through tract behind the `onnx` feature), clusters them with an automatic
//! speaker count, smooths the result into speaker turns and gives each recognised word the
//! speaker that covers it most.
//!
//! It reads audio samples, speech regions and transcripts from `vttiro-core` and nothing
//! else: no decoding, no files other than a model's weights, no engines, no output formats,
//! no downloads (`vttiro-models` installs the weights it loads).

mod error;
pub mod fbank;
pub mod ge2e;
pub mod mel;
#[cfg(feature = "onnx")]
pub mod onnx;

pub use error::DiarizeError;

/// Computes speaker embeddings for fixed-rate 16 kHz mono audio windows.
pub trait SpeakerEncoder: Send {
    /// One L2-normalised embedding per window, in order. Windows may differ in length.
    fn embed(&mut self, windows: &[&[f32]]) -> Result<Vec<Vec<f32>>, DiarizeError>;
    /// Length of every embedding this encoder returns.
    fn dimension(&self) -> usize;
    /// A short label for logs and reports, e.g. `ge2e`.
    fn name(&self) -> &str;
}

/// Scales `v` to unit Euclidean length; a zero vector stays zero.
pub fn l2_normalise(v: &mut [f32]) {
    let norm = v.iter().map(|x| x * x).sum::<f32>().sqrt();
    if norm > 0.0 {
        v.iter_mut().for_each(|x| *x /= norm);
    }
}

pub mod assign;
pub mod cluster;
pub mod segment;

pub use assign::{assign_speakers, speaker_name};
pub use cluster::SpeakerCount;
pub use segment::WindowPlan;

use serde::Serialize;
use vttiro_core::{samples_to_ms, SpeechRegion};

/// One speaker's stretch of speech.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct SpeakerTurn {
    pub start_ms: i64,
    pub end_ms: i64,
    /// 0-based, numbered by first appearance.
    pub speaker: usize,
}

#[derive(Debug, Clone, Serialize)]
pub struct Diarization {
    pub turns: Vec<SpeakerTurn>,
    pub speakers: usize,
    /// Embedding windows computed, for reports and cost accounting.
    pub windows: usize,
    /// Display name of each speaker number, set by [`assign_speakers`].
    pub labels: Vec<String>,
}

#[derive(Debug, Clone, Copy)]
pub struct DiarizeOptions {
    pub count: SpeakerCount,
    /// Average cosine similarity below which two groups of windows are different speakers.
    pub threshold: f32,
    /// Similarity a window must gain to switch speaker inside continuous speech.
    pub switch_penalty: f32,
    /// A cluster with fewer windows than this share of all windows, or fewer than
    /// `min_cluster_windows`, is noise rather than a speaker, unless the count demands it.
    pub min_cluster_share: f32,
    pub min_cluster_windows: usize,
    /// A small cluster whose similarity to every established speaker stays below this is
    /// kept as a speaker of its own.
    pub outlier_similarity: f32,
    pub plan: WindowPlan,
}

impl Default for DiarizeOptions {
    fn default() -> Self {
        DiarizeOptions {
            count: SpeakerCount::default(),
            threshold: 0.71,
            switch_penalty: 0.15,
            min_cluster_share: 0.05,
            min_cluster_windows: 3,
            outlier_similarity: 0.6,
            plan: WindowPlan::default(),
        }
    }
}

/// Windows embedded per encoder call: the unit of progress reporting.
const EMBED_CHUNK: usize = 192;
/// Agglomeration is quadratic in memory and cubic in time; beyond this many windows it
/// runs on an even sample and the rest join the nearest resulting speaker.
const MAX_CLUSTERED: usize = 1200;
/// Windows shorter than this give embeddings too noisy to shape the clusters.
const MIN_CLUSTER_WINDOW: usize = vttiro_core::SAMPLE_RATE as usize / 2;

/// Who spoke when in `samples` (16 kHz mono), looking only at `speech`. `progress`
/// receives the fraction of embedding work done.
///
/// Pauses between recognised words are deliberately not used to cut windows: Whisper's
/// word times can be off by a second on telephone audio, and cutting there made the
/// pyannote sample's DER worse (25% against 15%), while real pauses are found in the audio.
pub fn diarize(
    samples: &[f32],
    speech: &[SpeechRegion],
    encoder: &mut dyn SpeakerEncoder,
    options: &DiarizeOptions,
    progress: &mut dyn FnMut(f32),
) -> Result<Diarization, DiarizeError> {
    let plan = &options.plan;
    let pieces = segment::pieces(samples, speech, plan);
    let windows = segment::windows(&pieces, plan);
    if windows.is_empty() {
        return Ok(Diarization {
            turns: vec![],
            speakers: 0,
            windows: 0,
            labels: vec![],
        });
    }
    let mut embeddings = Vec::with_capacity(windows.len());
    for (done, chunk) in windows.chunks(EMBED_CHUNK).enumerate() {
        let audio: Vec<&[f32]> = chunk.iter().map(|w| &samples[w.start..w.end]).collect();
        embeddings.extend(encoder.embed(&audio)?);
        progress(((done + 1) * EMBED_CHUNK).min(windows.len()) as f32 / windows.len() as f32);
    }

    let mut clustered: Vec<usize> = (0..windows.len())
        .filter(|&w| windows[w].len() >= MIN_CLUSTER_WINDOW)
        .collect();
    if clustered.len() < 2 {
        clustered = (0..windows.len()).collect();
    }
    if clustered.len() > MAX_CLUSTERED {
        let step = clustered.len() as f64 / MAX_CLUSTERED as f64;
        clustered = (0..MAX_CLUSTERED)
            .map(|i| clustered[(i as f64 * step) as usize])
            .collect();
    }
    let sample: Vec<Vec<f32>> = clustered.iter().map(|&w| embeddings[w].clone()).collect();
    let labels = cluster::cluster(&sample, options.threshold, options.count);
    let labels = prune_small_clusters(&sample, labels, options);
    let k = labels.iter().max().map_or(1, |m| m + 1);
    // Windows are scored against speakers after removing what all embeddings of this
    // recording share (channel, room), which otherwise dominates the cosine.
    let dim = sample[0].len();
    let mut mean = vec![0.0f32; dim];
    for e in &sample {
        mean.iter_mut()
            .zip(e)
            .for_each(|(m, x)| *m += x / sample.len() as f32);
    }
    let centre = |e: &Vec<f32>| -> Vec<f32> {
        let mut c: Vec<f32> = e.iter().zip(&mean).map(|(x, m)| x - m).collect();
        l2_normalise(&mut c);
        c
    };
    let centred: Vec<Vec<f32>> = sample.iter().map(centre).collect();
    let centroids = cluster::centroids(&centred, &labels, k);
    let scores: Vec<Vec<f32>> = embeddings
        .iter()
        .map(|e| {
            let c = centre(e);
            centroids.iter().map(|k| cluster::cosine(&c, k)).collect()
        })
        .collect();
    // Labels index `centroids` here; turns are renumbered by first appearance at the end.
    let labels = segment::smooth(&windows, &scores, options.switch_penalty);
    let score = |e: &Vec<f32>| -> Vec<f32> {
        let c = centre(e);
        centroids.iter().map(|k| cluster::cosine(&c, k)).collect()
    };
    let boundaries = refine_boundaries(samples, &windows, &labels, encoder, &score)?;
    let sample_turns = segment::turns(&pieces, &windows, &labels, &boundaries);
    let order = cluster::renumber(&sample_turns.iter().map(|t| t.speaker).collect::<Vec<_>>());
    let turns: Vec<SpeakerTurn> = sample_turns
        .into_iter()
        .zip(order)
        .map(|(t, speaker)| SpeakerTurn {
            start_ms: samples_to_ms(t.start),
            end_ms: samples_to_ms(t.end),
            speaker,
        })
        .collect();
    let speakers = turns.iter().map(|t| t.speaker + 1).max().unwrap_or(0);
    tracing::info!(
        windows = windows.len(),
        pieces = pieces.len(),
        speakers,
        "diarized"
    );
    Ok(Diarization {
        turns,
        speakers,
        windows: windows.len(),
        labels: vec![],
    })
}

/// Candidate boundary positions tried between two window centres, and the length of the
/// windows embedded either side of each candidate.
const BOUNDARY_CANDIDATES: usize = 3;
const BOUNDARY_SIDE: usize = 5 * vttiro_core::SAMPLE_RATE as usize / 4;
const BOUNDARY_MIN_SIDE: usize = 3 * vttiro_core::SAMPLE_RATE as usize / 10;

/// Resegmentation at each speaker change inside continuous speech: the change is first
/// known only to within a hop (0.75 s), so candidate points between the two windows'
/// centres are tried, embedding 1.25 s on each side (GE2E needs about a second to say
/// anything reliable), and the point where the left side
/// looks most like the earlier speaker and the right side most like the later one wins.
/// Returns the chosen boundary (in samples) keyed by the earlier window's index.
fn refine_boundaries(
    samples: &[f32],
    windows: &[segment::Window],
    labels: &[usize],
    encoder: &mut dyn SpeakerEncoder,
    score: &dyn Fn(&Vec<f32>) -> Vec<f32>,
) -> Result<std::collections::HashMap<usize, usize>, DiarizeError> {
    let mut changes = Vec::new();
    let mut sides: Vec<(usize, usize)> = Vec::new();
    for w in 0..windows.len().saturating_sub(1) {
        let (a, b) = (&windows[w], &windows[w + 1]);
        if a.piece != b.piece || labels[w] == labels[w + 1] {
            continue;
        }
        let (from, to) = (a.centre(), b.centre());
        let mut candidates = Vec::new();
        for j in 1..=BOUNDARY_CANDIDATES {
            let t = from + (to - from) * j / (BOUNDARY_CANDIDATES + 1);
            let left = (t.saturating_sub(BOUNDARY_SIDE).max(a.start), t);
            let right = (t, (t + BOUNDARY_SIDE).min(b.end));
            if left.1 - left.0 >= BOUNDARY_MIN_SIDE && right.1 - right.0 >= BOUNDARY_MIN_SIDE {
                candidates.push((t, sides.len()));
                sides.push(left);
                sides.push(right);
            }
        }
        if !candidates.is_empty() {
            changes.push((w, candidates));
        }
    }
    let mut boundaries = std::collections::HashMap::new();
    if sides.is_empty() {
        return Ok(boundaries);
    }
    let audio: Vec<&[f32]> = sides.iter().map(|&(s, e)| &samples[s..e]).collect();
    let embedded = encoder.embed(&audio)?;
    for (w, candidates) in changes {
        let (before, after) = (labels[w], labels[w + 1]);
        let best = candidates.into_iter().max_by(|x, y| {
            let fit = |side: usize| {
                let left = score(&embedded[side]);
                let right = score(&embedded[side + 1]);
                left[before] - left[after] + right[after] - right[before]
            };
            fit(x.1).total_cmp(&fit(y.1))
        });
        if let Some((t, _)) = best {
            boundaries.insert(w, t);
        }
    }
    Ok(boundaries)
}

/// Drops clusters too small to be a speaker (a cough, a window straddling two voices, a
/// stray piece of a known speaker) while the count constraints allow, and returns the
/// remaining labels. A small cluster survives when it is unlike every established
/// speaker (below `outlier_similarity`): someone who only said "okay" once is still
/// someone else.
fn prune_small_clusters(
    embeddings: &[Vec<f32>],
    mut labels: Vec<usize>,
    options: &DiarizeOptions,
) -> Vec<usize> {
    let min_k = options.count.exact.unwrap_or(options.count.min).max(1);
    let floor = ((options.min_cluster_share * embeddings.len() as f32).ceil() as usize)
        .max(options.min_cluster_windows);
    let mut kept_outliers = std::collections::HashSet::new();
    loop {
        let k = labels.iter().max().map_or(0, |m| m + 1);
        let mut sizes = vec![0usize; k];
        labels.iter().for_each(|&l| sizes[l] += 1);
        let centroids = cluster::centroids(embeddings, &labels, k);
        let established: Vec<usize> = (0..k).filter(|&c| sizes[c] >= floor).collect();
        if established.is_empty() || k <= min_k {
            return labels;
        }
        let candidate = (0..k)
            .filter(|&c| sizes[c] < floor && !kept_outliers.contains(&centroid_key(&centroids[c])))
            .min_by_key(|&c| sizes[c]);
        let Some(small) = candidate else {
            return labels;
        };
        let likeness = established
            .iter()
            .map(|&c| cluster::cosine(&centroids[small], &centroids[c]))
            .fold(f32::NEG_INFINITY, f32::max);
        if likeness < options.outlier_similarity {
            kept_outliers.insert(centroid_key(&centroids[small]));
            continue;
        }
        // Only into an established speaker: two small clusters merged together could
        // reach the size of a speaker without being one (short phrases of different
        // voices look alike to GE2E).
        let mut others = centroids.clone();
        for (c, centroid) in others.iter_mut().enumerate() {
            if !established.contains(&c) {
                centroid.iter_mut().for_each(|x| *x = 0.0);
            }
        }
        for (label, e) in labels.iter_mut().zip(embeddings) {
            if *label == small {
                *label = cluster::nearest(e, &others);
            }
        }
        labels = cluster::renumber(&labels);
    }
}

/// Identity of a cluster across renumbering: its centroid's exact bits.
fn centroid_key(centroid: &[f32]) -> Vec<u32> {
    centroid.iter().map(|x| x.to_bits()).collect()
}
