//! The GE2E speaker encoder (Wan et al. 2018) with Resemblyzer's trained weights: a
//! three-layer LSTM over 40 linear mel bands (256 units), the last layer's final hidden
//! state through a 256×256 linear layer and a ReLU, then L2 normalisation.
//!
//! Windows are run as a batch: each layer's input projection for every time step of every
//! window is one large matrix product, and each recurrent step is a `[batch × 256] ·
//! [256 × 1024]` product. Batches are split across threads, which is worth more than
//! threading inside these fairly small products.

use std::path::{Path, PathBuf};

use safetensors::SafeTensors;

use crate::mel::{loudness_gain, MelFrontEnd, HOP, N_MELS};
use crate::{l2_normalise, DiarizeError, SpeakerEncoder};

const HIDDEN: usize = 256;
const GATES: usize = 4 * HIDDEN;
const LAYERS: usize = 3;
pub const EMBEDDING_DIM: usize = 256;

/// Windows per batch inside one thread: large enough for efficient matrix products, small
/// enough that a layer's activations (`frames × batch × 1024` floats) stay modest.
const BATCH: usize = 64;

struct LstmLayer {
    input_size: usize,
    /// `[GATES × input_size]`, gate order i, f, g, o as PyTorch stores them.
    weight_ih: Vec<f32>,
    /// `[GATES × HIDDEN]`.
    weight_hh: Vec<f32>,
    /// `bias_ih + bias_hh`: the two are only ever added together.
    bias: Vec<f32>,
}

pub struct Ge2eEncoder {
    layers: Vec<LstmLayer>,
    /// `[EMBEDDING_DIM × HIDDEN]`.
    linear_weight: Vec<f32>,
    linear_bias: Vec<f32>,
    front: MelFrontEnd,
    threads: usize,
}

fn tensor(
    tensors: &SafeTensors<'_>,
    path: &Path,
    name: &str,
    shape: &[usize],
) -> Result<Vec<f32>, DiarizeError> {
    let invalid = |reason: String| DiarizeError::InvalidModel {
        path: path.to_path_buf(),
        reason,
    };
    let view = tensors
        .tensor(name)
        .map_err(|_| invalid(format!("tensor {name} is missing")))?;
    if view.dtype() != safetensors::Dtype::F32 {
        return Err(invalid(format!(
            "tensor {name} is {:?}, not F32",
            view.dtype()
        )));
    }
    if view.shape() != shape {
        return Err(invalid(format!(
            "tensor {name} has shape {:?}, expected {shape:?}",
            view.shape()
        )));
    }
    Ok(view
        .data()
        .chunks_exact(4)
        .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
        .collect())
}

impl Ge2eEncoder {
    /// Loads the `model.safetensors` that `vttiro models import` writes from Resemblyzer's
    /// `pretrained.pt`.
    pub fn load(path: &Path, threads: usize) -> Result<Self, DiarizeError> {
        let bytes = std::fs::read(path).map_err(|source| DiarizeError::Io {
            path: path.to_path_buf(),
            source,
        })?;
        let tensors = SafeTensors::deserialize(&bytes).map_err(|e| DiarizeError::InvalidModel {
            path: PathBuf::from(path),
            reason: format!("not a safetensors file ({e})"),
        })?;
        let mut layers = Vec::with_capacity(LAYERS);
        for layer in 0..LAYERS {
            let input_size = if layer == 0 { N_MELS } else { HIDDEN };
            let weight_ih = tensor(
                &tensors,
                path,
                &format!("lstm.weight_ih_l{layer}"),
                &[GATES, input_size],
            )?;
            let weight_hh = tensor(
                &tensors,
                path,
                &format!("lstm.weight_hh_l{layer}"),
                &[GATES, HIDDEN],
            )?;
            let bias_ih = tensor(&tensors, path, &format!("lstm.bias_ih_l{layer}"), &[GATES])?;
            let bias_hh = tensor(&tensors, path, &format!("lstm.bias_hh_l{layer}"), &[GATES])?;
            let bias = bias_ih.iter().zip(&bias_hh).map(|(a, b)| a + b).collect();
            layers.push(LstmLayer {
                input_size,
                weight_ih,
                weight_hh,
                bias,
            });
        }
        Ok(Ge2eEncoder {
            layers,
            linear_weight: tensor(&tensors, path, "linear.weight", &[EMBEDDING_DIM, HIDDEN])?,
            linear_bias: tensor(&tensors, path, "linear.bias", &[EMBEDDING_DIM])?,
            front: MelFrontEnd::new(),
            threads: threads.max(1),
        })
    }

    /// Embeddings of mel windows that all hold `frames` frames: `mels` is
    /// `[batch][frames][N_MELS]`. Returns `[batch][EMBEDDING_DIM]`, L2-normalised.
    pub fn embed_mels(&self, mels: &[f32], frames: usize) -> Vec<Vec<f32>> {
        let per_window = frames * N_MELS;
        if per_window == 0 {
            return vec![];
        }
        let windows = mels.len() / per_window;
        let threads = self.threads.min(windows.div_ceil(BATCH)).max(1);
        let per_thread = windows.div_ceil(threads).max(1);
        let mut results: Vec<Vec<Vec<f32>>> = Vec::new();
        std::thread::scope(|scope| {
            let handles: Vec<_> = mels
                .chunks(per_thread * per_window)
                .map(|part| {
                    scope.spawn(move || {
                        part.chunks(BATCH * per_window)
                            .flat_map(|batch| self.run_batch(batch, frames))
                            .collect::<Vec<_>>()
                    })
                })
                .collect();
            results = handles
                .into_iter()
                .map(|h| h.join().expect("embedding thread panicked"))
                .collect();
        });
        results.into_iter().flatten().collect()
    }

    fn run_batch(&self, mels: &[f32], frames: usize) -> Vec<Vec<f32>> {
        let batch = mels.len() / (frames * N_MELS);
        // Time-major layout `[frames][batch][features]` so one time step is one contiguous
        // matrix.
        let mut layer_input = vec![0.0f32; frames * batch * N_MELS];
        for b in 0..batch {
            for t in 0..frames {
                let src = &mels[(b * frames + t) * N_MELS..(b * frames + t + 1) * N_MELS];
                layer_input[(t * batch + b) * N_MELS..(t * batch + b + 1) * N_MELS]
                    .copy_from_slice(src);
            }
        }
        let mut hidden = vec![0.0f32; batch * HIDDEN];
        for (index, layer) in self.layers.iter().enumerate() {
            let last = index + 1 == self.layers.len();
            let rows = frames * batch;
            // Input projection of every step at once, bias folded in.
            let mut gates_in = vec![0.0f32; rows * GATES];
            for row in gates_in.chunks_exact_mut(GATES) {
                row.copy_from_slice(&layer.bias);
            }
            gemm_bt(
                rows,
                layer.input_size,
                GATES,
                &layer_input,
                &layer.weight_ih,
                &mut gates_in,
            );
            let mut output = if last {
                Vec::new()
            } else {
                vec![0.0f32; rows * HIDDEN]
            };
            hidden.iter_mut().for_each(|h| *h = 0.0);
            let mut cell = vec![0.0f32; batch * HIDDEN];
            for t in 0..frames {
                let step = &mut gates_in[t * batch * GATES..(t + 1) * batch * GATES];
                if t > 0 {
                    gemm_bt(batch, HIDDEN, GATES, &hidden, &layer.weight_hh, step);
                }
                for b in 0..batch {
                    let g = &mut step[b * GATES..(b + 1) * GATES];
                    let h = &mut hidden[b * HIDDEN..(b + 1) * HIDDEN];
                    let c = &mut cell[b * HIDDEN..(b + 1) * HIDDEN];
                    lstm_cell(g, h, c);
                }
                if !last {
                    output[t * batch * HIDDEN..(t + 1) * batch * HIDDEN].copy_from_slice(&hidden);
                }
            }
            layer_input = output;
        }
        hidden
            .chunks_exact(HIDDEN)
            .map(|h| {
                let mut embedding: Vec<f32> = self
                    .linear_bias
                    .iter()
                    .zip(self.linear_weight.chunks_exact(HIDDEN))
                    .map(|(bias, row)| {
                        (bias + row.iter().zip(h).map(|(w, x)| w * x).sum::<f32>()).max(0.0)
                    })
                    .collect();
                l2_normalise(&mut embedding);
                embedding
            })
            .collect()
    }
}

/// `c += a · bᵀ` with `a` `[m × k]` and `b` `[n × k]`, both row-major: PyTorch stores
/// weights as `[out × in]`, which is exactly a transposed right-hand side.
fn gemm_bt(m: usize, k: usize, n: usize, a: &[f32], b: &[f32], c: &mut [f32]) {
    assert_eq!(a.len(), m * k);
    assert_eq!(b.len(), n * k);
    assert_eq!(c.len(), m * n);
    // matrixmultiply only offers a raw-pointer interface. Sound because the dimensions and
    // strides below describe exactly the extents of the three slices (asserted above).
    #[allow(unsafe_code)]
    unsafe {
        matrixmultiply::sgemm(
            m,
            k,
            n,
            1.0,
            a.as_ptr(),
            k as isize,
            1,
            b.as_ptr(),
            1,
            k as isize,
            1.0,
            c.as_mut_ptr(),
            n as isize,
            1,
        );
    }
}

/// One LSTM step for one window: `gates` holds the pre-activations `[i f g o]`.
fn lstm_cell(gates: &mut [f32], hidden: &mut [f32], cell: &mut [f32]) {
    let (i, rest) = gates.split_at_mut(HIDDEN);
    let (f, rest) = rest.split_at_mut(HIDDEN);
    let (g, o) = rest.split_at_mut(HIDDEN);
    for j in 0..HIDDEN {
        let input = sigmoid(i[j]);
        let forget = sigmoid(f[j]);
        let candidate = tanh(g[j]);
        let out = sigmoid(o[j]);
        cell[j] = forget * cell[j] + input * candidate;
        hidden[j] = out * tanh(cell[j]);
    }
}

/// `e^x` from the degree-6 series of `2^f` for the fraction `f` in [-0.5, 0.5] and the
/// exponent bits for the rest, without branches so the loops above vectorise. Relative
/// error is about 2e-7 near 0 and grows to about 2e-6 at |x| = 20 (the f32 rounding of
/// x·log2 e), which sigmoid and tanh never notice.
#[inline(always)]
fn exp(x: f32) -> f32 {
    let x = x.clamp(-87.0, 88.0);
    let scaled = x * std::f32::consts::LOG2_E;
    // floor() is a libm call on baseline x86-64 (no SSE4.1 rounding), which stops
    // vectorisation and cost an eighth of the encoder's time; truncate and correct instead.
    // Nearest integer, so the fraction lies in [-0.5, 0.5] where the series is accurate.
    let shifted = scaled + 0.5;
    let truncated = shifted as i32;
    let whole_int = truncated - i32::from(shifted < truncated as f32);
    let whole = whole_int as f32;
    let f = scaled - whole;
    let p = 1.0
        + f * (std::f32::consts::LN_2
            + f * (0.240_226_5
                + f * (0.055_504_11
                    + f * (0.009_618_129 + f * (0.001_333_355_8 + f * 0.000_154_035_3)))));
    let bits = ((whole_int + 127) as u32) << 23;
    p * f32::from_bits(bits)
}

#[inline(always)]
fn sigmoid(x: f32) -> f32 {
    1.0 / (1.0 + exp(-x))
}

#[inline(always)]
fn tanh(x: f32) -> f32 {
    1.0 - 2.0 / (exp(2.0 * x) + 1.0)
}

/// Frames per window the encoder was trained on (1.6 s).
pub const PARTIAL_FRAMES: usize = 160;

/// Resemblyzer's partial-utterance scheme (`compute_partial_slices` with its defaults,
/// 1.3 partials per second and 75% minimum coverage of the last one): the first mel frame
/// of every 160-frame partial of an utterance of `n_samples`.
pub fn partial_starts(n_samples: usize) -> Vec<usize> {
    const RATE: f64 = 1.3;
    const MIN_COVERAGE: f64 = 0.75;
    let n_frames = (n_samples + 1).div_ceil(HOP);
    let step = ((vttiro_core::SAMPLE_RATE as f64 / RATE) / HOP as f64).round() as usize;
    let steps = (n_frames + step + 1).saturating_sub(PARTIAL_FRAMES).max(1);
    let mut starts: Vec<usize> = (0..steps).step_by(step).collect();
    let last = *starts.last().expect("at least one partial");
    let coverage = (n_samples as f64 - (last * HOP) as f64) / (PARTIAL_FRAMES * HOP) as f64;
    if coverage < MIN_COVERAGE && starts.len() > 1 {
        starts.pop();
    }
    starts
}

impl Ge2eEncoder {
    /// Resemblyzer's `embed_utterance`: the utterance is raised to -30 dBFS if quieter, its
    /// mel frames computed once, each 1.6-s partial embedded, and the mean of the partial
    /// embeddings L2-normalised.
    pub fn embed_utterance(&self, samples: &[f32]) -> Vec<f32> {
        let starts = partial_starts(samples.len());
        let gain = loudness_gain(rms(samples));
        let mels: Vec<f32> = starts
            .iter()
            .flat_map(|&first| self.front.frames(samples, first, PARTIAL_FRAMES, gain))
            .collect();
        let partials = self.embed_mels(&mels, PARTIAL_FRAMES);
        let mut mean = vec![0.0f32; EMBEDDING_DIM];
        for partial in &partials {
            mean.iter_mut().zip(partial).for_each(|(m, x)| *m += x);
        }
        l2_normalise(&mut mean);
        mean
    }
}

fn rms(samples: &[f32]) -> f32 {
    (samples.iter().map(|x| x * x).sum::<f32>() / samples.len().max(1) as f32).sqrt()
}

impl SpeakerEncoder for Ge2eEncoder {
    fn embed(&mut self, windows: &[&[f32]]) -> Result<Vec<Vec<f32>>, DiarizeError> {
        // Windows of equal frame counts share batches; the rest run in their own groups.
        let mut by_frames: std::collections::BTreeMap<usize, Vec<usize>> = Default::default();
        for (index, window) in windows.iter().enumerate() {
            by_frames
                .entry((window.len() / HOP).max(1))
                .or_default()
                .push(index);
        }
        let mut out = vec![Vec::new(); windows.len()];
        // Longer than one partial: Resemblyzer's partial-utterance scheme, as trained.
        for (index, window) in windows.iter().enumerate() {
            if window.len() > PARTIAL_FRAMES * HOP {
                out[index] = self.embed_utterance(window);
            }
        }
        by_frames.retain(|&frames, _| frames <= PARTIAL_FRAMES);
        for (frames, members) in by_frames {
            let mut mels = Vec::with_capacity(members.len() * frames * N_MELS);
            for &index in &members {
                let window = windows[index];
                let rms =
                    (window.iter().map(|x| x * x).sum::<f32>() / window.len().max(1) as f32).sqrt();
                mels.extend(self.front.frames(window, 0, frames, loudness_gain(rms)));
            }
            for (index, embedding) in members.into_iter().zip(self.embed_mels(&mels, frames)) {
                out[index] = embedding;
            }
        }
        Ok(out)
    }

    fn dimension(&self) -> usize {
        EMBEDDING_DIM
    }

    fn name(&self) -> &str {
        "ge2e"
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn partials_follow_resemblyzers_slicing() {
        // compute_partial_slices(n, rate=1.3, min_coverage=0.75), worked by hand: 4 s gives
        // 401 frames and steps 0, 77, 154, 231, 308; the last covers 57.5% and is dropped.
        assert_eq!(partial_starts(64_000), vec![0, 77, 154, 231]);
        // 1.6 s exactly: one full partial, plus a second from frame 77 covering 51.9%,
        // dropped.
        assert_eq!(partial_starts(25_600), vec![0]);
        // 2 s: frames 0 and 77; the second covers 76.9% (>= 75%) and stays.
        assert_eq!(partial_starts(32_000), vec![0, 77]);
        // 2.9 s: 0, 77 and 154, the last covering 85%.
        assert_eq!(partial_starts(46_400), vec![0, 77, 154]);
        // Shorter than a partial: always one, zero-padded.
        assert_eq!(partial_starts(8_000), vec![0]);
    }

    #[test]
    fn fast_exp_and_tanh_match_the_library_functions() {
        for i in -2000..=2000 {
            let x = i as f32 / 100.0;
            let want = x.exp();
            assert!(
                ((exp(x) - want) / want).abs() < 4e-6,
                "exp({x}) = {} vs {want}",
                exp(x)
            );
            assert!((tanh(x) - x.tanh()).abs() < 1e-6, "tanh({x})");
            assert!((sigmoid(x) - 1.0 / (1.0 + (-x).exp())).abs() < 1e-6);
        }
    }
}
