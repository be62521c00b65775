//! ONNX speaker-embedding models (WeSpeaker's ResNets, 3D-Speaker's CAM++ and ERes2Net
//! exports) run through tract, a pure-Rust runtime, so no C++ library or shared object
//! ships with vttiro. These models take Kaldi filterbank frames, `[batch, frames, bins]`,
//! and return one embedding per batch row, `[batch, D]`; the filterbank is computed here
//! by [`crate::fbank`] with the options the model was trained with.
//!
//! A model is checked for that signature when it is loaded, so a wrong or damaged file is
//! refused at start-up with its path and the reason rather than failing mid-job.

use std::collections::BTreeMap;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::{Path, PathBuf};

use tract_onnx::prelude::*;
use tract_onnx::tract_hir::internal::{DimFact, DimLike, Factoid};

use crate::fbank::{Fbank, FbankOptions};
use crate::{l2_normalise, DiarizeError, SpeakerEncoder};

/// Windows per model call when the model leaves the batch size open: enough to amortise
/// per-call overhead, small enough that a ResNet's activations for 1.5-s windows stay in
/// the tens of megabytes.
const MAX_BATCH: usize = 32;

type Plan = TypedSimplePlan<TypedModel>;

/// A speaker encoder backed by an ONNX model with WeSpeaker's I/O signature: one f32 input
/// `[batch, frames, bins]` (batch and frames symbolic or fixed, `bins` equal to the
/// filterbank's) and one output `[batch, D]`.
pub struct OnnxEncoder {
    path: PathBuf,
    name: String,
    plan: Plan,
    fbank: Fbank,
    dimension: usize,
    /// The batch size the model was exported with, when it is not symbolic.
    fixed_batch: Option<usize>,
    /// The frame count the model was exported with, when it is not symbolic.
    fixed_frames: Option<usize>,
}

impl std::fmt::Debug for OnnxEncoder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OnnxEncoder")
            .field("path", &self.path)
            .field("dimension", &self.dimension)
            .field("fixed_batch", &self.fixed_batch)
            .field("fixed_frames", &self.fixed_frames)
            .field("fbank", self.fbank.options())
            .finish_non_exhaustive()
    }
}

/// A parsed, checked and optimised model, before it gets its filterbank.
struct Checked {
    plan: Plan,
    dimension: usize,
    fixed_batch: Option<usize>,
    fixed_frames: Option<usize>,
}

/// tract's errors are context chains; `{:#}` prints them on one line, outermost first.
fn one_line(e: &TractError) -> String {
    format!("{e:#}").replace('\n', " ")
}

fn panic_text(payload: &(dyn std::any::Any + Send)) -> String {
    payload
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "unknown panic".into())
}

/// A declared dimension: fixed, symbolic (kept so that shapes elsewhere in the graph that
/// name the same symbol stay consistent), or not declared at all.
fn declared(dim: Option<&DimFact>) -> Option<TDim> {
    dim.and_then(|d| d.concretize())
}

impl OnnxEncoder {
    /// Loads and optimises the model at `path` for features computed with `options`.
    pub fn load(path: &Path, options: FbankOptions) -> Result<Self, DiarizeError> {
        // Opening the file first tells "cannot read it" (I/O) apart from "not a model".
        std::fs::File::open(path).map_err(|source| DiarizeError::Io {
            path: path.to_path_buf(),
            source,
        })?;
        let fbank = Fbank::new(options)?;
        let invalid = |reason: String| DiarizeError::InvalidModel {
            path: path.to_path_buf(),
            reason,
        };
        // The protobuf decoder and graph analysis belong to tract; a file crafted to hit a
        // bug there must still end as a refused model, not a crashed job.
        let loaded = catch_unwind(AssertUnwindSafe(|| Self::build(path, fbank.options())))
            .map_err(|p| invalid(format!("tract panicked: {}", panic_text(p.as_ref()))))?;
        let Checked {
            plan,
            dimension,
            fixed_batch,
            fixed_frames,
        } = loaded.map_err(invalid)?;
        let stem = path
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_default();
        tracing::debug!(
            path = %path.display(),
            dimension,
            ?fixed_batch,
            ?fixed_frames,
            "loaded ONNX speaker model"
        );
        Ok(OnnxEncoder {
            path: path.to_path_buf(),
            name: format!("onnx:{stem}"),
            plan,
            fbank,
            dimension,
            fixed_batch,
            fixed_frames,
        })
    }

    /// Parses, checks and optimises the model; errors are one-line reasons.
    fn build(path: &Path, options: &FbankOptions) -> Result<Checked, String> {
        let mut model = tract_onnx::onnx()
            .model_for_path(path)
            .map_err(|e| one_line(&e))?;
        if model.inputs.len() != 1 || model.outputs.len() != 1 {
            return Err(format!(
                "expected 1 input and 1 output, found {} and {}",
                model.inputs.len(),
                model.outputs.len()
            ));
        }
        let fact = model.input_fact(0).map_err(|e| one_line(&e))?.clone();
        if let Some(dt) = fact.datum_type.concretize() {
            if dt != f32::datum_type() {
                return Err(format!("input is {dt:?}, expected f32 filterbank frames"));
            }
        }
        let dims: Vec<DimFact> = fact.shape.dims().cloned().collect();
        if fact.shape.is_open() || dims.len() != 3 {
            return Err(format!(
                "input shape {:?} is not [batch, frames, {}]",
                fact.shape, options.num_bins
            ));
        }
        let bins = declared(dims.get(2)).and_then(|d| d.to_usize().ok());
        if bins != Some(options.num_bins) {
            return Err(format!(
                "input shape {:?} is not [batch, frames, {}]: the model expects other features",
                fact.shape, options.num_bins
            ));
        }
        let batch = declared(dims.first())
            .unwrap_or_else(|| model.symbols.new_with_prefix("batch").to_dim());
        let frames = declared(dims.get(1))
            .unwrap_or_else(|| model.symbols.new_with_prefix("frames").to_dim());
        let (fixed_batch, fixed_frames) = (batch.to_usize().ok(), frames.to_usize().ok());
        if fixed_batch == Some(0) || fixed_frames == Some(0) {
            return Err(format!("input shape {:?} has a zero dimension", fact.shape));
        }
        model
            .set_input_fact(
                0,
                InferenceFact::dt_shape(
                    f32::datum_type(),
                    tvec![batch, frames, options.num_bins.to_dim()],
                ),
            )
            .map_err(|e| one_line(&e))?;
        let typed = model.into_optimized().map_err(|e| one_line(&e))?;
        let out = typed.output_fact(0).map_err(|e| one_line(&e))?;
        if out.datum_type != f32::datum_type() || out.shape.rank() != 2 {
            return Err(format!(
                "output {:?} {:?} is not f32 [batch, D]",
                out.datum_type, out.shape
            ));
        }
        let dimension = match out.shape[1].to_usize() {
            Ok(d) if d > 0 => d,
            _ => {
                return Err(format!(
                    "output {:?} has no fixed embedding size",
                    out.shape
                ))
            }
        };
        let plan = typed.into_runnable().map_err(|e| one_line(&e))?;
        Ok(Checked {
            plan,
            dimension,
            fixed_batch,
            fixed_frames,
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn fbank_options(&self) -> &FbankOptions {
        self.fbank.options()
    }

    /// Runs one batch of equally long feature matrices (`rows` of them, `frames` each) and
    /// returns the raw embeddings, row-major `[rows][D]`.
    fn run(&self, feats: Vec<f32>, rows: usize, frames: usize) -> Result<Vec<f32>, DiarizeError> {
        let bins = self.fbank.options().num_bins;
        let failed = |e: TractError| {
            DiarizeError::Inference(format!(
                "{} on input [{rows}, {frames}, {bins}]: {}",
                self.path.display(),
                one_line(&e)
            ))
        };
        let input = tract_ndarray::Array3::from_shape_vec((rows, frames, bins), feats)
            .map_err(|e| DiarizeError::Inference(e.to_string()))?;
        let outputs = catch_unwind(AssertUnwindSafe(|| {
            self.plan.run(tvec![input.into_tensor().into_tvalue()])
        }))
        .map_err(|p| {
            DiarizeError::Inference(format!(
                "{}: tract panicked: {}",
                self.path.display(),
                panic_text(p.as_ref())
            ))
        })?
        .map_err(failed)?;
        let view = outputs[0].to_array_view::<f32>().map_err(failed)?;
        if view.shape() != [rows, self.dimension] {
            return Err(DiarizeError::Inference(format!(
                "{}: output shape {:?} for {rows} windows, expected [{rows}, {}]",
                self.path.display(),
                view.shape(),
                self.dimension
            )));
        }
        Ok(view.iter().copied().collect())
    }
}

impl SpeakerEncoder for OnnxEncoder {
    fn embed(&mut self, windows: &[&[f32]]) -> Result<Vec<Vec<f32>>, DiarizeError> {
        let options = self.fbank.options();
        let bins = options.num_bins;
        // Windows with equal frame counts share model calls, so none is padded in time.
        let mut by_frames: BTreeMap<usize, Vec<usize>> = BTreeMap::new();
        for (index, window) in windows.iter().enumerate() {
            let frames = options.frame_count(window.len());
            if frames == 0 {
                return Err(DiarizeError::Inference(format!(
                    "window {index} has {} samples, shorter than one {}-sample frame",
                    window.len(),
                    options.frame_length
                )));
            }
            if let Some(fixed) = self.fixed_frames.filter(|&f| f != frames) {
                return Err(DiarizeError::Inference(format!(
                    "{} takes exactly {fixed} frames; window {index} has {frames}",
                    self.path.display()
                )));
            }
            by_frames.entry(frames).or_default().push(index);
        }
        let batch = self.fixed_batch.unwrap_or(MAX_BATCH);
        let mut out = vec![Vec::new(); windows.len()];
        for (frames, members) in by_frames {
            for group in members.chunks(batch) {
                let mut feats = Vec::with_capacity(batch * frames * bins);
                for &index in group {
                    feats.extend(self.fbank.features(windows[index]));
                }
                // A model exported with a fixed batch size gets full batches: the last one
                // is filled with copies of its first window and those rows are dropped.
                let rows = match self.fixed_batch {
                    Some(fixed) => {
                        let first = feats[..frames * bins].to_vec();
                        while feats.len() < fixed * frames * bins {
                            feats.extend_from_slice(&first);
                        }
                        fixed
                    }
                    None => group.len(),
                };
                let embeddings = self.run(feats, rows, frames)?;
                for (&index, row) in group.iter().zip(embeddings.chunks_exact(self.dimension)) {
                    let mut e = row.to_vec();
                    if e.iter().any(|x| !x.is_finite()) {
                        return Err(DiarizeError::Inference(format!(
                            "{}: non-finite embedding for window {index} ({frames} frames)",
                            self.path.display()
                        )));
                    }
                    l2_normalise(&mut e);
                    out[index] = e;
                }
            }
        }
        Ok(out)
    }

    fn dimension(&self) -> usize {
        self.dimension
    }

    fn name(&self) -> &str {
        &self.name
    }
}
