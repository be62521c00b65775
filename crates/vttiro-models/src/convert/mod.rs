//! Conversion of an installed CTranslate2 Whisper model into whisper.cpp's ggml file,
//! optionally quantised to q8_0 or q5_0, so the whisper.cpp backend (Metal, ROCm, Vulkan,
//! small CPUs) runs the very weights the CTranslate2 backend was verified with.
//!
//! The mapping mirrors what whisper.cpp's own converter does from OpenAI's checkpoints:
//! CTranslate2 fuses the self-attention projections into one `linear_0` (query, key, value
//! stacked by rows) and the cross-attention key/value into `linear_1`; they are split
//! again, and the key bias is dropped because whisper.cpp has none. That is exact, not an
//! approximation: a key bias adds the same `q·b` to every logit of a query, which softmax
//! cancels (and Whisper's converters store it as zeros anyway).

mod ct2_weights;
pub(crate) mod quant;
mod vocabulary;

use std::fs;
use std::io::{BufWriter, Write};
use std::path::Path;

use half::f16;

use crate::error::ModelError;
use crate::ggml::{inspect_ggml, GgmlHparams, GgmlModelInfo, GgmlQuant, GgmlType, GGML_MAGIC};
use ct2_weights::{Ct2Weights, Tensor};

const WHISPER_SPEC: &str = "WhisperSpec";

/// How one tensor must be stored for whisper.cpp to accept it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Storage {
    /// Weight matrices: the chosen quantisation.
    Matrix,
    /// Convolution kernels: f16 in every quantised variant (ggml's im2col wants f16).
    Conv,
    /// Norms, biases and positional embeddings: always f32.
    Float32,
}

/// Converts the CTranslate2 Whisper model in `src_dir` into a ggml file at `dst`. The file
/// is written next to `dst` under a temporary name and renamed into place only when
/// complete and re-read successfully, so `dst` is either the old file or the new one.
pub fn convert_ct2_to_ggml(
    src_dir: &Path,
    dst: &Path,
    quant: GgmlQuant,
) -> Result<GgmlModelInfo, ModelError> {
    let failed = |reason: String| ModelError::ConversionFailed {
        path: src_dir.to_path_buf(),
        reason,
    };
    let parent = dst
        .parent()
        .filter(|parent| !parent.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let mut weights = Ct2Weights::open(&src_dir.join("model.bin"))
        .map_err(|reason| failed(format!("model.bin: {reason}")))?;
    if weights.spec != WHISPER_SPEC {
        return Err(failed(format!(
            "model.bin holds a {} model, not a Whisper model",
            weights.spec
        )));
    }
    let tokens = vocabulary::read_tokens(src_dir).map_err(failed)?;
    let token_bytes = vocabulary::regular_token_bytes(&tokens).map_err(failed)?;

    let temp = tempfile::Builder::new()
        .prefix(".ggml-convert-")
        .tempfile_in(parent)
        .map_err(ModelError::io("create a temporary file in", parent))?;
    {
        let mut writer = GgmlWriter {
            out: BufWriter::with_capacity(1 << 20, temp.as_file()),
            quant,
            tensors: 0,
        };
        let hparams = hparams_of(&mut weights, quant).map_err(failed)?;
        writer
            .write_preamble(&hparams, &token_bytes)
            .map_err(ModelError::io("write", temp.path()))?;
        write_tensors(&mut weights, &mut writer, &hparams).map_err(|error| match error {
            TensorError::Source(reason) => failed(reason),
            TensorError::Io(error) => ModelError::io("write", temp.path())(error),
        })?;
        let expected = hparams.expected_tensor_count();
        if writer.tensors != expected {
            return Err(failed(format!(
                "wrote {} tensors where whisper.cpp loads {expected}",
                writer.tensors
            )));
        }
        writer
            .out
            .flush()
            .map_err(ModelError::io("write", temp.path()))?;
    }
    temp.as_file()
        .sync_all()
        .map_err(ModelError::io("write", temp.path()))?;
    // Re-read the table before publishing: a file that does not parse never gets a name.
    inspect_ggml(temp.path())?;
    temp.persist(dst)
        .map_err(|error| ModelError::io("install", dst)(error.error))?;
    if let Ok(dir) = fs::File::open(parent) {
        // Makes the rename durable; failure only weakens crash safety, not correctness.
        let _ = dir.sync_all();
    }
    inspect_ggml(dst)
}

enum TensorError {
    Source(String),
    Io(std::io::Error),
}

impl From<String> for TensorError {
    fn from(reason: String) -> Self {
        TensorError::Source(reason)
    }
}

impl From<std::io::Error> for TensorError {
    fn from(error: std::io::Error) -> Self {
        TensorError::Io(error)
    }
}

fn layer_count(weights: &Ct2Weights, stack: &str) -> usize {
    let prefix = format!("{stack}/layer_");
    weights
        .names()
        .filter_map(|name| name.strip_prefix(&prefix))
        .filter_map(|rest| rest.split('/').next()?.parse::<usize>().ok())
        .map(|index| index + 1)
        .max()
        .unwrap_or(0)
}

fn dims_i32(value: usize, what: &str) -> Result<i32, String> {
    i32::try_from(value).map_err(|_| format!("{what} of {value} does not fit the ggml header"))
}

fn hparams_of(weights: &mut Ct2Weights, quant: GgmlQuant) -> Result<GgmlHparams, String> {
    let two_d = |weights: &Ct2Weights, name: &str| -> Result<(usize, usize), String> {
        match weights.shape(name)?.as_slice() {
            [rows, cols] => Ok((*rows, *cols)),
            other => Err(format!("{name} has shape {other:?}, expected 2-D")),
        }
    };
    let (n_vocab, n_text_state) = two_d(weights, "decoder/embeddings/weight")?;
    let (n_text_ctx, _) = two_d(weights, "decoder/position_encodings/encodings")?;
    let (n_audio_ctx, n_audio_state) = two_d(weights, "encoder/position_encodings/encodings")?;
    let n_mels = match weights.shape("encoder/conv1/weight")?.as_slice() {
        [_, n_mels, 3] => *n_mels,
        other => return Err(format!("encoder/conv1/weight has shape {other:?}")),
    };
    let n_audio_layer = layer_count(weights, "encoder");
    let n_text_layer = layer_count(weights, "decoder");
    if n_audio_layer == 0 || n_text_layer == 0 {
        return Err("no encoder or decoder layers found".into());
    }
    if n_audio_state != n_text_state {
        return Err(format!(
            "encoder width {n_audio_state} differs from decoder width {n_text_state}"
        ));
    }
    let n_audio_head = weights.scalar("encoder/num_heads")?;
    let n_text_head = weights.scalar("decoder/num_heads")?;
    Ok(GgmlHparams {
        n_vocab: dims_i32(n_vocab, "vocabulary size")?,
        n_audio_ctx: dims_i32(n_audio_ctx, "audio context")?,
        n_audio_state: dims_i32(n_audio_state, "encoder width")?,
        n_audio_head: dims_i32(n_audio_head.max(0) as usize, "encoder heads")?,
        n_audio_layer: dims_i32(n_audio_layer, "encoder depth")?,
        n_text_ctx: dims_i32(n_text_ctx, "text context")?,
        n_text_state: dims_i32(n_text_state, "decoder width")?,
        n_text_head: dims_i32(n_text_head.max(0) as usize, "decoder heads")?,
        n_text_layer: dims_i32(n_text_layer, "decoder depth")?,
        n_mels: dims_i32(n_mels, "mel bins")?,
        ftype: quant.header_ftype(),
    })
}

struct GgmlWriter<W: Write> {
    out: W,
    quant: GgmlQuant,
    tensors: usize,
}

impl<W: Write> GgmlWriter<W> {
    fn write_i32(&mut self, value: i32) -> std::io::Result<()> {
        self.out.write_all(&value.to_le_bytes())
    }

    fn write_preamble(&mut self, hparams: &GgmlHparams, tokens: &[Vec<u8>]) -> std::io::Result<()> {
        self.out.write_all(&GGML_MAGIC.to_le_bytes())?;
        for field in hparams.fields() {
            self.write_i32(field)?;
        }
        let n_mels = hparams.n_mels as usize;
        self.write_i32(hparams.n_mels)?;
        self.write_i32(vttiro_core::MEL_FFT_BINS as i32)?;
        for value in vttiro_core::slaney_mel_filters(n_mels) {
            self.out.write_all(&value.to_le_bytes())?;
        }
        self.write_i32(tokens.len() as i32)?;
        for token in tokens {
            self.out.write_all(&(token.len() as u32).to_le_bytes())?;
            self.out.write_all(token)?;
        }
        Ok(())
    }

    /// Writes `tensor` under `name`; `tensor.shape` is in CTranslate2 (row-major) order and
    /// goes out reversed, innermost first, as ggml expects.
    fn write_tensor(
        &mut self,
        name: &str,
        tensor: &Tensor,
        storage: Storage,
    ) -> Result<(), TensorError> {
        let ggml_type = match storage {
            Storage::Matrix => self.quant.matrix_type(),
            Storage::Conv => GgmlType::F16,
            Storage::Float32 => GgmlType::F32,
        };
        let mut data = Vec::new();
        match ggml_type {
            GgmlType::F32 => data.extend(tensor.values.iter().flat_map(|v| v.to_le_bytes())),
            GgmlType::F16 => data.extend(
                tensor
                    .values
                    .iter()
                    .flat_map(|v| f16::from_f32(*v).to_le_bytes()),
            ),
            GgmlType::Q8_0 | GgmlType::Q5_0 => {
                let row_len = *tensor.shape.last().unwrap_or(&0);
                if !row_len.is_multiple_of(quant::BLOCK_LEN) {
                    return Err(TensorError::Source(format!(
                        "{name} has rows of {row_len} values, which {} cannot store (rows must be a multiple of {})",
                        self.quant,
                        quant::BLOCK_LEN
                    )));
                }
                if ggml_type == GgmlType::Q8_0 {
                    quant::quantize_q8_0(&tensor.values, &mut data);
                } else {
                    quant::quantize_q5_0(&tensor.values, &mut data);
                }
            }
            other => unreachable!("vttiro never writes {other:?}"),
        }
        self.write_i32(tensor.shape.len() as i32)?;
        self.write_i32(name.len() as i32)?;
        self.write_i32(ggml_type.id())?;
        for &dim in tensor.shape.iter().rev() {
            self.write_i32(dims_i32(dim, name)?)?;
        }
        self.out.write_all(name.as_bytes())?;
        self.out.write_all(&data)?;
        self.tensors += 1;
        Ok(())
    }
}

/// A fused projection split back into its parts: `rows` rows each, in stacking order.
fn split_rows(tensor: &Tensor, parts: usize) -> Result<Vec<Tensor>, String> {
    let rows = tensor.shape[0];
    if !rows.is_multiple_of(parts) {
        return Err(format!(
            "a fused projection with {rows} rows cannot be split in {parts}"
        ));
    }
    let each = rows / parts;
    Ok((0..parts)
        .map(|part| tensor.rows(part * each, (part + 1) * each))
        .collect())
}

fn write_tensors<W: Write>(
    weights: &mut Ct2Weights,
    writer: &mut GgmlWriter<W>,
    hparams: &GgmlHparams,
) -> Result<(), TensorError> {
    let copy = |weights: &mut Ct2Weights,
                writer: &mut GgmlWriter<W>,
                from: &str,
                to: &str,
                storage: Storage|
     -> Result<(), TensorError> {
        let tensor = weights.tensor(from)?;
        writer.write_tensor(to, &tensor, storage)
    };
    let conv_bias = |weights: &mut Ct2Weights,
                     writer: &mut GgmlWriter<W>,
                     from: &str,
                     to: &str|
     -> Result<(), TensorError> {
        // whisper.cpp adds the bias to a [frames, channels] result: a [channels, 1] column.
        let mut tensor = weights.tensor(from)?;
        tensor.shape = vec![tensor.values.len(), 1];
        writer.write_tensor(to, &tensor, Storage::Float32)
    };
    let layer_norm = |weights: &mut Ct2Weights,
                      writer: &mut GgmlWriter<W>,
                      from: &str,
                      to: &str|
     -> Result<(), TensorError> {
        let gamma = weights.tensor(&format!("{from}/gamma"))?;
        writer.write_tensor(&format!("{to}.weight"), &gamma, Storage::Float32)?;
        let beta = weights.tensor(&format!("{from}/beta"))?;
        writer.write_tensor(&format!("{to}.bias"), &beta, Storage::Float32)
    };
    let linear = |weights: &mut Ct2Weights,
                  writer: &mut GgmlWriter<W>,
                  from: &str,
                  to: &str|
     -> Result<(), TensorError> {
        let weight = weights.tensor(&format!("{from}/weight"))?;
        writer.write_tensor(&format!("{to}.weight"), &weight, Storage::Matrix)?;
        let bias = weights.tensor(&format!("{from}/bias"))?;
        writer.write_tensor(&format!("{to}.bias"), &bias, Storage::Float32)
    };
    // Writes the parts of a fused projection in stacking order; `false` marks a part whose
    // bias whisper.cpp does not have (the keys).
    let fused = |weights: &mut Ct2Weights,
                 writer: &mut GgmlWriter<W>,
                 from: &str,
                 parts: &[(&str, bool)]|
     -> Result<(), TensorError> {
        let weight = weights.tensor(&format!("{from}/weight"))?;
        let bias = weights.tensor(&format!("{from}/bias"))?;
        let weights_split = split_rows(&weight, parts.len())?;
        let biases_split = split_rows(&bias, parts.len())?;
        for ((to, has_bias), (weight, bias)) in
            parts.iter().zip(weights_split.iter().zip(&biases_split))
        {
            writer.write_tensor(&format!("{to}.weight"), weight, Storage::Matrix)?;
            if *has_bias {
                writer.write_tensor(&format!("{to}.bias"), bias, Storage::Float32)?;
            }
        }
        Ok(())
    };

    copy(
        weights,
        writer,
        "encoder/position_encodings/encodings",
        "encoder.positional_embedding",
        Storage::Float32,
    )?;
    copy(
        weights,
        writer,
        "encoder/conv1/weight",
        "encoder.conv1.weight",
        Storage::Conv,
    )?;
    conv_bias(weights, writer, "encoder/conv1/bias", "encoder.conv1.bias")?;
    copy(
        weights,
        writer,
        "encoder/conv2/weight",
        "encoder.conv2.weight",
        Storage::Conv,
    )?;
    conv_bias(weights, writer, "encoder/conv2/bias", "encoder.conv2.bias")?;
    for layer in 0..hparams.n_audio_layer {
        let from = format!("encoder/layer_{layer}");
        let to = format!("encoder.blocks.{layer}");
        layer_norm(
            weights,
            writer,
            &format!("{from}/self_attention/layer_norm"),
            &format!("{to}.attn_ln"),
        )?;
        fused(
            weights,
            writer,
            &format!("{from}/self_attention/linear_0"),
            &[
                (&format!("{to}.attn.query"), true),
                (&format!("{to}.attn.key"), false),
                (&format!("{to}.attn.value"), true),
            ],
        )?;
        linear(
            weights,
            writer,
            &format!("{from}/self_attention/linear_1"),
            &format!("{to}.attn.out"),
        )?;
        layer_norm(
            weights,
            writer,
            &format!("{from}/ffn/layer_norm"),
            &format!("{to}.mlp_ln"),
        )?;
        linear(
            weights,
            writer,
            &format!("{from}/ffn/linear_0"),
            &format!("{to}.mlp.0"),
        )?;
        linear(
            weights,
            writer,
            &format!("{from}/ffn/linear_1"),
            &format!("{to}.mlp.2"),
        )?;
    }
    layer_norm(weights, writer, "encoder/layer_norm", "encoder.ln_post")?;

    copy(
        weights,
        writer,
        "decoder/position_encodings/encodings",
        "decoder.positional_embedding",
        Storage::Float32,
    )?;
    copy(
        weights,
        writer,
        "decoder/embeddings/weight",
        "decoder.token_embedding.weight",
        Storage::Matrix,
    )?;
    for layer in 0..hparams.n_text_layer {
        let from = format!("decoder/layer_{layer}");
        let to = format!("decoder.blocks.{layer}");
        layer_norm(
            weights,
            writer,
            &format!("{from}/self_attention/layer_norm"),
            &format!("{to}.attn_ln"),
        )?;
        fused(
            weights,
            writer,
            &format!("{from}/self_attention/linear_0"),
            &[
                (&format!("{to}.attn.query"), true),
                (&format!("{to}.attn.key"), false),
                (&format!("{to}.attn.value"), true),
            ],
        )?;
        linear(
            weights,
            writer,
            &format!("{from}/self_attention/linear_1"),
            &format!("{to}.attn.out"),
        )?;
        layer_norm(
            weights,
            writer,
            &format!("{from}/attention/layer_norm"),
            &format!("{to}.cross_attn_ln"),
        )?;
        linear(
            weights,
            writer,
            &format!("{from}/attention/linear_0"),
            &format!("{to}.cross_attn.query"),
        )?;
        fused(
            weights,
            writer,
            &format!("{from}/attention/linear_1"),
            &[
                (&format!("{to}.cross_attn.key"), false),
                (&format!("{to}.cross_attn.value"), true),
            ],
        )?;
        linear(
            weights,
            writer,
            &format!("{from}/attention/linear_2"),
            &format!("{to}.cross_attn.out"),
        )?;
        layer_norm(
            weights,
            writer,
            &format!("{from}/ffn/layer_norm"),
            &format!("{to}.mlp_ln"),
        )?;
        linear(
            weights,
            writer,
            &format!("{from}/ffn/linear_0"),
            &format!("{to}.mlp.0"),
        )?;
        linear(
            weights,
            writer,
            &format!("{from}/ffn/linear_1"),
            &format!("{to}.mlp.2"),
        )?;
    }
    layer_norm(weights, writer, "decoder/layer_norm", "decoder.ln")?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ggml::read_ggml_tensor;
    use ct2_weights::tests::write_model_bin;

    const STATE: usize = 32;
    const MELS: usize = 4;
    const VOCAB: usize = 7;

    /// Values that are exact in f16, distinct per tensor and position.
    fn pattern(len: usize, seed: usize) -> Vec<f32> {
        (0..len)
            .map(|i| ((i * 7 + seed * 13) % 61) as f32 / 16.0 - 2.0)
            .collect()
    }

    fn f16_bytes(values: &[f32]) -> Vec<u8> {
        values
            .iter()
            .flat_map(|v| f16::from_f32(*v).to_le_bytes())
            .collect()
    }

    /// A one-layer Whisper in CTranslate2's layout, float16 like the published models.
    fn synthetic_model(dir: &Path) {
        let mut vars: Vec<(String, Vec<usize>, u8, Vec<u8>)> = Vec::new();
        let mut seed = 0;
        let mut add =
            |vars: &mut Vec<(String, Vec<usize>, u8, Vec<u8>)>, name: String, shape: Vec<usize>| {
                seed += 1;
                let len = shape.iter().product();
                vars.push((name, shape, 4, f16_bytes(&pattern(len, seed))));
            };
        add(
            &mut vars,
            "encoder/conv1/weight".into(),
            vec![STATE, MELS, 3],
        );
        add(&mut vars, "encoder/conv1/bias".into(), vec![STATE]);
        add(
            &mut vars,
            "encoder/conv2/weight".into(),
            vec![STATE, STATE, 3],
        );
        add(&mut vars, "encoder/conv2/bias".into(), vec![STATE]);
        add(
            &mut vars,
            "encoder/position_encodings/encodings".into(),
            vec![10, STATE],
        );
        add(
            &mut vars,
            "decoder/position_encodings/encodings".into(),
            vec![6, STATE],
        );
        add(
            &mut vars,
            "decoder/embeddings/weight".into(),
            vec![VOCAB, STATE],
        );
        for stack in ["encoder", "decoder"] {
            add(&mut vars, format!("{stack}/layer_norm/gamma"), vec![STATE]);
            add(&mut vars, format!("{stack}/layer_norm/beta"), vec![STATE]);
            let layer = format!("{stack}/layer_0");
            let mut blocks = vec![
                ("self_attention/layer_norm", None),
                ("self_attention/linear_0", Some(3 * STATE)),
                ("self_attention/linear_1", Some(STATE)),
                ("ffn/layer_norm", None),
                ("ffn/linear_0", Some(4 * STATE)),
            ];
            if stack == "decoder" {
                blocks.extend([
                    ("attention/layer_norm", None),
                    ("attention/linear_0", Some(STATE)),
                    ("attention/linear_1", Some(2 * STATE)),
                    ("attention/linear_2", Some(STATE)),
                ]);
            }
            for (block, rows) in blocks {
                match rows {
                    None => {
                        add(&mut vars, format!("{layer}/{block}/gamma"), vec![STATE]);
                        add(&mut vars, format!("{layer}/{block}/beta"), vec![STATE]);
                    }
                    Some(rows) => {
                        add(
                            &mut vars,
                            format!("{layer}/{block}/weight"),
                            vec![rows, STATE],
                        );
                        add(&mut vars, format!("{layer}/{block}/bias"), vec![rows]);
                    }
                }
            }
            add(
                &mut vars,
                format!("{layer}/ffn/linear_1/weight"),
                vec![STATE, 4 * STATE],
            );
            add(&mut vars, format!("{layer}/ffn/linear_1/bias"), vec![STATE]);
            vars.push((
                format!("{stack}/num_heads"),
                vec![],
                2,
                2i16.to_le_bytes().to_vec(),
            ));
        }
        let borrowed: Vec<(&str, &[usize], u8, Vec<u8>)> = vars
            .iter()
            .map(|(name, shape, dtype, bytes)| {
                (name.as_str(), shape.as_slice(), *dtype, bytes.clone())
            })
            .collect();
        write_model_bin(
            &dir.join("model.bin"),
            &borrowed,
            &[("decoder/projection/weight", "decoder/embeddings/weight")],
        );
        fs::write(
            dir.join("vocabulary.txt"),
            "a\nĠb\nc\nĠhello\n<|endoftext|>\n<|startoftranscript|>\n<|0.00|>\n",
        )
        .unwrap();
    }

    fn source(dir: &Path, name: &str) -> Tensor {
        Ct2Weights::open(&dir.join("model.bin"))
            .unwrap()
            .tensor(name)
            .unwrap()
    }

    #[test]
    fn synthetic_model_becomes_a_complete_ggml_file() {
        let dir = tempfile::tempdir().unwrap();
        synthetic_model(dir.path());
        let dst = dir.path().join("ggml-model.bin");
        let info = convert_ct2_to_ggml(dir.path(), &dst, GgmlQuant::F16).unwrap();

        let h = info.hparams;
        assert_eq!(
            h.fields(),
            [
                VOCAB as i32,
                10,
                STATE as i32,
                2,
                1,
                6,
                STATE as i32,
                2,
                1,
                MELS as i32,
                1
            ]
        );
        assert_eq!(info.tensors.len(), 11 + 15 + 24);
        assert_eq!(info.mel_filter_shape, (MELS, 201));
        assert_eq!(info.mel_filters, vttiro_core::slaney_mel_filters(MELS));
        assert_eq!(
            info.vocab_tokens,
            vec![
                b"a".to_vec(),
                b" b".to_vec(),
                b"c".to_vec(),
                b" hello".to_vec()
            ]
        );
        let mut names: Vec<&str> = info.tensors.iter().map(|t| t.name.as_str()).collect();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), 50, "tensor names are unique");

        let layout = |name: &str| {
            let t = info
                .tensor(name)
                .unwrap_or_else(|| panic!("{name} missing"));
            (t.dims.clone(), t.ggml_type)
        };
        assert_eq!(
            layout("encoder.conv1.weight"),
            (vec![3, MELS, STATE], GgmlType::F16)
        );
        assert_eq!(
            layout("encoder.conv1.bias"),
            (vec![1, STATE], GgmlType::F32)
        );
        assert_eq!(
            layout("encoder.positional_embedding"),
            (vec![STATE, 10], GgmlType::F32)
        );
        assert_eq!(
            layout("decoder.positional_embedding"),
            (vec![STATE, 6], GgmlType::F32)
        );
        assert_eq!(
            layout("decoder.token_embedding.weight"),
            (vec![STATE, VOCAB], GgmlType::F16)
        );
        assert_eq!(
            layout("encoder.blocks.0.mlp.0.weight"),
            (vec![STATE, 4 * STATE], GgmlType::F16)
        );
        assert_eq!(
            layout("encoder.blocks.0.mlp.2.weight"),
            (vec![4 * STATE, STATE], GgmlType::F16)
        );
        assert_eq!(
            layout("decoder.blocks.0.attn_ln.bias"),
            (vec![STATE], GgmlType::F32)
        );
        for keyless in [
            "encoder.blocks.0.attn.key.bias",
            "decoder.blocks.0.cross_attn.key.bias",
        ] {
            assert!(info.tensor(keyless).is_none(), "{keyless} must not exist");
        }

        let fused = source(dir.path(), "decoder/layer_0/self_attention/linear_0/weight");
        let value = read_ggml_tensor(&info, "decoder.blocks.0.attn.value.weight").unwrap();
        assert_eq!(value, fused.values[2 * STATE * STATE..]);
        let query = read_ggml_tensor(&info, "decoder.blocks.0.attn.query.weight").unwrap();
        assert_eq!(query, fused.values[..STATE * STATE]);
        let cross = source(dir.path(), "decoder/layer_0/attention/linear_1/bias");
        let value_bias = read_ggml_tensor(&info, "decoder.blocks.0.cross_attn.value.bias").unwrap();
        assert_eq!(value_bias, cross.values[STATE..]);
        let conv = source(dir.path(), "encoder/conv2/weight");
        assert_eq!(
            read_ggml_tensor(&info, "encoder.conv2.weight").unwrap(),
            conv.values
        );
        let ln = source(dir.path(), "encoder/layer_norm/gamma");
        assert_eq!(
            read_ggml_tensor(&info, "encoder.ln_post.weight").unwrap(),
            ln.values
        );

        // Every byte of the file is accounted for by the table.
        let last = info.tensors.last().unwrap();
        assert_eq!(last.data_offset + last.data_len, info.file_len);
        assert_eq!(fs::metadata(&dst).unwrap().len(), info.file_len);
    }

    #[test]
    fn quantised_variants_quantise_only_weight_matrices() {
        let dir = tempfile::tempdir().unwrap();
        synthetic_model(dir.path());
        for (quant, matrix) in [
            (GgmlQuant::Q8_0, GgmlType::Q8_0),
            (GgmlQuant::Q5_0, GgmlType::Q5_0),
        ] {
            let dst = dir.path().join(quant.file_name());
            let info = convert_ct2_to_ggml(dir.path(), &dst, quant).unwrap();
            assert_eq!(info.hparams.matrix_type(), Some(matrix));
            assert_eq!(info.hparams.ftype, quant.header_ftype());
            for tensor in &info.tensors {
                let expected = if tensor.name.ends_with("conv1.weight")
                    || tensor.name.ends_with("conv2.weight")
                {
                    GgmlType::F16
                } else if tensor.dims.len() == 2
                    && !tensor.name.contains("positional_embedding")
                    && !tensor.name.contains(".conv")
                {
                    matrix
                } else {
                    GgmlType::F32
                };
                assert_eq!(tensor.ggml_type, expected, "{}", tensor.name);
            }
            let original = source(dir.path(), "encoder/layer_0/ffn/linear_0/weight").values;
            let restored = read_ggml_tensor(&info, "encoder.blocks.0.mlp.0.weight").unwrap();
            let step = if quant == GgmlQuant::Q8_0 {
                2.0 / 127.0
            } else {
                2.0 / 16.0
            };
            for (a, b) in original.iter().zip(&restored) {
                assert!((a - b).abs() <= step * 0.51 + 1e-3, "{quant}: {a} vs {b}");
            }
        }
    }

    #[test]
    fn failures_leave_no_file_behind() {
        let dir = tempfile::tempdir().unwrap();
        synthetic_model(dir.path());
        // A vocabulary without <|endoftext|> cannot tell regular from special tokens.
        fs::write(dir.path().join("vocabulary.txt"), "a\nb\n").unwrap();
        let dst = dir.path().join("ggml-model.bin");
        let error = convert_ct2_to_ggml(dir.path(), &dst, GgmlQuant::F16).unwrap_err();
        assert!(
            matches!(error, ModelError::ConversionFailed { .. }),
            "{error}"
        );
        assert!(error.to_string().contains("endoftext"), "{error}");
        let leftovers: Vec<_> = fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|name| name.contains("ggml"))
            .collect();
        assert!(leftovers.is_empty(), "{leftovers:?}");
    }

    /// The real tiny.en: fused projections split correctly and values survive exactly in
    /// f16 and within one quantisation step in q8_0.
    #[test]
    fn tiny_en_tensors_carry_the_ctranslate2_values() {
        let model = vttiro_fixtures::tiny_en_model();
        let out = tempfile::tempdir().unwrap();
        let f16_info =
            convert_ct2_to_ggml(&model, &out.path().join("f16.bin"), GgmlQuant::F16).unwrap();
        let q8_info =
            convert_ct2_to_ggml(&model, &out.path().join("q8.bin"), GgmlQuant::Q8_0).unwrap();
        let mut weights = Ct2Weights::open(&model.join("model.bin")).unwrap();
        let fused = weights
            .tensor("encoder/layer_2/self_attention/linear_0/weight")
            .unwrap();
        let n = 384 * 384;
        let key = read_ggml_tensor(&f16_info, "encoder.blocks.2.attn.key.weight").unwrap();
        assert_eq!(key, fused.values[n..2 * n]);
        let q8_key = read_ggml_tensor(&q8_info, "encoder.blocks.2.attn.key.weight").unwrap();
        for (block, restored) in fused.values[n..2 * n].chunks(32).zip(q8_key.chunks(32)) {
            let amax = block.iter().fold(0.0f32, |a, v| a.max(v.abs()));
            for (a, b) in block.iter().zip(restored) {
                assert!((a - b).abs() <= amax / 127.0 * 0.51 + 1e-4, "{a} vs {b}");
            }
        }
        let embeddings = weights.tensor("decoder/embeddings/weight").unwrap();
        assert_eq!(
            read_ggml_tensor(&f16_info, "decoder.token_embedding.weight").unwrap(),
            embeddings.values
        );
        let positions = weights
            .tensor("decoder/position_encodings/encodings")
            .unwrap();
        assert_eq!(
            read_ggml_tensor(&q8_info, "decoder.positional_embedding").unwrap(),
            positions.values
        );
    }
}
