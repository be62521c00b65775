//! whisper.cpp's model file ("ggml" format): what it contains, how to read its header and
//! tensor table, and the quantisation choices vttiro can produce.
//!
//! Layout, all little-endian: `u32` magic `0x67676d6c`; eleven `i32` hyper-parameters
//! (n_vocab, n_audio_ctx, n_audio_state, n_audio_head, n_audio_layer, n_text_ctx,
//! n_text_state, n_text_head, n_text_layer, n_mels, ftype); the mel filterbank (`i32`
//! n_mel, `i32` n_fft, n_mel × n_fft `f32`); the vocabulary (`i32` count, then per token a
//! `u32` length and its bytes); then tensors until the end of the file, each an `i32`
//! rank, `i32` name length, `i32` ggml type, the dimensions innermost first, the name and
//! the data, unpadded.

use std::fmt;
use std::fs::File;
use std::io::{self, BufReader, Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::str::FromStr;

use half::f16;
use serde::{Deserialize, Serialize};

use crate::convert::quant;
use crate::error::ModelError;

pub const GGML_MAGIC: u32 = 0x6767_6d6c;
/// Quantised files carry `ftype + GGML_QNT_VERSION * 1000` so loaders can refuse block
/// layouts they predate; whisper.cpp's `quantize` tool writes version 2.
const QNT_VERSION: i32 = 2;
const QNT_VERSION_FACTOR: i32 = 1000;
const MAX_NAME_LEN: usize = 512;
const MAX_TOKEN_LEN: usize = 4096;

/// How a converted model stores its weight matrices. Layer norms, biases and positional
/// embeddings stay f32 and convolution kernels f16 in every variant, as whisper.cpp
/// requires.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum GgmlQuant {
    #[serde(rename = "f16")]
    F16,
    /// 8-bit blocks of 32 with an f16 scale: half the size of f16, near-lossless.
    #[serde(rename = "q8_0")]
    Q8_0,
    /// 5-bit blocks of 32 with an f16 scale: about a third of f16, slightly lossy.
    #[serde(rename = "q5_0")]
    Q5_0,
}

impl GgmlQuant {
    pub const ALL: [GgmlQuant; 3] = [GgmlQuant::F16, GgmlQuant::Q8_0, GgmlQuant::Q5_0];

    pub fn as_str(self) -> &'static str {
        match self {
            GgmlQuant::F16 => "f16",
            GgmlQuant::Q8_0 => "q8_0",
            GgmlQuant::Q5_0 => "q5_0",
        }
    }

    /// The file name inside a model directory.
    pub fn file_name(self) -> &'static str {
        match self {
            GgmlQuant::F16 => "ggml-model.bin",
            GgmlQuant::Q8_0 => "ggml-model-q8_0.bin",
            GgmlQuant::Q5_0 => "ggml-model-q5_0.bin",
        }
    }

    /// The type the weight matrices are stored in.
    pub fn matrix_type(self) -> GgmlType {
        match self {
            GgmlQuant::F16 => GgmlType::F16,
            GgmlQuant::Q8_0 => GgmlType::Q8_0,
            GgmlQuant::Q5_0 => GgmlType::Q5_0,
        }
    }

    /// The header's `ftype` field, as whisper.cpp's converter and `quantize` tool write it.
    pub(crate) fn header_ftype(self) -> i32 {
        // ggml_ftype: MOSTLY_F16 = 1, MOSTLY_Q8_0 = 7, MOSTLY_Q5_0 = 8.
        match self {
            GgmlQuant::F16 => 1,
            GgmlQuant::Q8_0 => QNT_VERSION * QNT_VERSION_FACTOR + 7,
            GgmlQuant::Q5_0 => QNT_VERSION * QNT_VERSION_FACTOR + 8,
        }
    }
}

impl fmt::Display for GgmlQuant {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for GgmlQuant {
    type Err = ModelError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.to_ascii_lowercase().as_str() {
            "f16" | "float16" => Ok(GgmlQuant::F16),
            "q8_0" => Ok(GgmlQuant::Q8_0),
            "q5_0" => Ok(GgmlQuant::Q5_0),
            _ => Err(ModelError::UnknownGgmlQuant {
                value: s.to_owned(),
            }),
        }
    }
}

/// The tensor element types found in Whisper ggml files (ggml's `ggml_type` ids).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum GgmlType {
    F32,
    F16,
    Q4_0,
    Q4_1,
    Q5_0,
    Q5_1,
    Q8_0,
}

impl GgmlType {
    pub fn id(self) -> i32 {
        match self {
            GgmlType::F32 => 0,
            GgmlType::F16 => 1,
            GgmlType::Q4_0 => 2,
            GgmlType::Q4_1 => 3,
            GgmlType::Q5_0 => 6,
            GgmlType::Q5_1 => 7,
            GgmlType::Q8_0 => 8,
        }
    }

    pub fn from_id(id: i32) -> Option<GgmlType> {
        Some(match id {
            0 => GgmlType::F32,
            1 => GgmlType::F16,
            2 => GgmlType::Q4_0,
            3 => GgmlType::Q4_1,
            6 => GgmlType::Q5_0,
            7 => GgmlType::Q5_1,
            8 => GgmlType::Q8_0,
            _ => return None,
        })
    }

    /// Elements per storage block (1 for plain floats).
    pub fn block_len(self) -> usize {
        match self {
            GgmlType::F32 | GgmlType::F16 => 1,
            _ => quant::BLOCK_LEN,
        }
    }

    pub fn block_bytes(self) -> usize {
        match self {
            GgmlType::F32 => 4,
            GgmlType::F16 => 2,
            GgmlType::Q4_0 => 2 + 16,
            GgmlType::Q4_1 => 4 + 16,
            GgmlType::Q5_0 => quant::Q5_0_BLOCK_BYTES,
            GgmlType::Q5_1 => 4 + 4 + 16,
            GgmlType::Q8_0 => quant::Q8_0_BLOCK_BYTES,
        }
    }

    /// Bytes taken by `elements` values, `None` when they do not fill whole blocks.
    pub fn data_len(self, elements: usize) -> Option<usize> {
        elements
            .is_multiple_of(self.block_len())
            .then(|| elements / self.block_len() * self.block_bytes())
    }

    /// The type that stores a whole model's weight matrices for a header `ftype`.
    fn for_header_ftype(ftype: i32) -> Option<GgmlType> {
        Some(match ftype % QNT_VERSION_FACTOR {
            0 => GgmlType::F32,
            1 => GgmlType::F16,
            2 => GgmlType::Q4_0,
            3 => GgmlType::Q4_1,
            7 => GgmlType::Q8_0,
            8 => GgmlType::Q5_0,
            9 => GgmlType::Q5_1,
            _ => return None,
        })
    }
}

/// The hyper-parameters at the start of every Whisper ggml file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GgmlHparams {
    pub n_vocab: i32,
    pub n_audio_ctx: i32,
    pub n_audio_state: i32,
    pub n_audio_head: i32,
    pub n_audio_layer: i32,
    pub n_text_ctx: i32,
    pub n_text_state: i32,
    pub n_text_head: i32,
    pub n_text_layer: i32,
    pub n_mels: i32,
    pub ftype: i32,
}

impl GgmlHparams {
    pub(crate) fn fields(&self) -> [i32; 11] {
        [
            self.n_vocab,
            self.n_audio_ctx,
            self.n_audio_state,
            self.n_audio_head,
            self.n_audio_layer,
            self.n_text_ctx,
            self.n_text_state,
            self.n_text_head,
            self.n_text_layer,
            self.n_mels,
            self.ftype,
        ]
    }

    /// The element type of the weight matrices, from `ftype`.
    pub fn matrix_type(&self) -> Option<GgmlType> {
        GgmlType::for_header_ftype(self.ftype)
    }

    /// Whisper's rule: the English-only checkpoints have 51864 tokens, the multilingual
    /// ones at least 51865.
    pub fn english_only(&self) -> bool {
        self.n_vocab < 51_865
    }

    /// How many tensors whisper.cpp loads for these dimensions: 11 model-wide, 15 per
    /// encoder block and 24 per decoder block (self- and cross-attention).
    pub fn expected_tensor_count(&self) -> usize {
        11 + 15 * self.n_audio_layer.max(0) as usize + 24 * self.n_text_layer.max(0) as usize
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GgmlTensorInfo {
    pub name: String,
    /// ggml order: the innermost (contiguous) dimension first.
    pub dims: Vec<usize>,
    pub ggml_type: GgmlType,
    pub data_offset: u64,
    pub data_len: u64,
}

impl GgmlTensorInfo {
    pub fn elements(&self) -> usize {
        self.dims.iter().product()
    }
}

/// Everything in a ggml file except the tensor data.
#[derive(Debug, Clone, PartialEq)]
pub struct GgmlModelInfo {
    pub path: PathBuf,
    pub hparams: GgmlHparams,
    /// `(n_mel, n_fft)` of the stored filterbank.
    pub mel_filter_shape: (usize, usize),
    pub mel_filters: Vec<f32>,
    /// Tokens stored in the file; whisper.cpp names the remaining (special) ones itself.
    pub vocab_tokens: Vec<Vec<u8>>,
    pub tensors: Vec<GgmlTensorInfo>,
    pub file_len: u64,
}

impl GgmlModelInfo {
    pub fn tensor(&self, name: &str) -> Option<&GgmlTensorInfo> {
        self.tensors.iter().find(|tensor| tensor.name == name)
    }
}

/// Reads and checks the header, filterbank, vocabulary and tensor table of a Whisper ggml
/// file, skipping over the tensor data. Fails on anything whisper.cpp would reject for
/// its structure: a wrong magic, unknown types, sizes that do not add up, trailing bytes.
pub fn inspect_ggml(path: &Path) -> Result<GgmlModelInfo, ModelError> {
    let invalid = |reason: String| ModelError::InvalidGgml {
        path: path.to_path_buf(),
        reason,
    };
    let file = File::open(path).map_err(ModelError::io("open", path))?;
    let file_len = file
        .metadata()
        .map_err(ModelError::io("inspect", path))?
        .len();
    let mut reader = BufReader::with_capacity(1 << 16, file);
    let io_reason = |error: io::Error| {
        if error.kind() == io::ErrorKind::UnexpectedEof {
            "the file ends early; it is truncated".to_owned()
        } else {
            format!("cannot read: {error}")
        }
    };
    let read_i32 = |reader: &mut BufReader<File>| -> Result<i32, String> {
        let mut buf = [0u8; 4];
        reader.read_exact(&mut buf).map_err(io_reason)?;
        Ok(i32::from_le_bytes(buf))
    };

    let magic = read_i32(&mut reader).map_err(invalid)? as u32;
    if magic != GGML_MAGIC {
        return Err(invalid(format!(
            "magic {magic:#010x} is not ggml's {GGML_MAGIC:#010x}; not a whisper.cpp model"
        )));
    }
    let mut fields = [0i32; 11];
    for field in &mut fields {
        *field = read_i32(&mut reader).map_err(invalid)?;
    }
    let hparams = GgmlHparams {
        n_vocab: fields[0],
        n_audio_ctx: fields[1],
        n_audio_state: fields[2],
        n_audio_head: fields[3],
        n_audio_layer: fields[4],
        n_text_ctx: fields[5],
        n_text_state: fields[6],
        n_text_head: fields[7],
        n_text_layer: fields[8],
        n_mels: fields[9],
        ftype: fields[10],
    };
    if fields[..10].iter().any(|&v| v <= 0) || fields[..10].iter().any(|&v| v > 1 << 20) {
        return Err(invalid(format!("implausible hyper-parameters {hparams:?}")));
    }
    if hparams.n_audio_state != hparams.n_text_state {
        return Err(invalid(format!(
            "encoder width {} differs from decoder width {}",
            hparams.n_audio_state, hparams.n_text_state
        )));
    }
    if hparams.matrix_type().is_none() {
        return Err(invalid(format!("unknown ftype {}", hparams.ftype)));
    }

    let n_mel = read_i32(&mut reader).map_err(invalid)?;
    let n_fft = read_i32(&mut reader).map_err(invalid)?;
    if n_mel != hparams.n_mels || !(1..=4096).contains(&n_fft) {
        return Err(invalid(format!(
            "mel filterbank of {n_mel} x {n_fft} does not fit a model with {} mel bins",
            hparams.n_mels
        )));
    }
    let (n_mel, n_fft) = (n_mel as usize, n_fft as usize);
    let mut filter_bytes = vec![0u8; n_mel * n_fft * 4];
    reader
        .read_exact(&mut filter_bytes)
        .map_err(|e| invalid(io_reason(e)))?;
    let mel_filters = filter_bytes
        .chunks_exact(4)
        .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
        .collect();

    let token_count = read_i32(&mut reader).map_err(invalid)?;
    if token_count < 0 || token_count > hparams.n_vocab {
        return Err(invalid(format!(
            "{token_count} vocabulary entries for {} tokens",
            hparams.n_vocab
        )));
    }
    let mut vocab_tokens = Vec::with_capacity(token_count as usize);
    for index in 0..token_count {
        let len = read_i32(&mut reader).map_err(invalid)? as u32 as usize;
        if len > MAX_TOKEN_LEN {
            return Err(invalid(format!("token {index} claims {len} bytes")));
        }
        let mut token = vec![0u8; len];
        reader
            .read_exact(&mut token)
            .map_err(|e| invalid(io_reason(e)))?;
        vocab_tokens.push(token);
    }

    let mut tensors = Vec::new();
    loop {
        let position = reader
            .stream_position()
            .map_err(|e| invalid(io_reason(e)))?;
        if position == file_len {
            break;
        }
        let n_dims = read_i32(&mut reader).map_err(invalid)?;
        let name_len = read_i32(&mut reader).map_err(invalid)?;
        let type_id = read_i32(&mut reader).map_err(invalid)?;
        if !(1..=4).contains(&n_dims) || name_len <= 0 || name_len as usize > MAX_NAME_LEN {
            return Err(invalid(format!(
                "tensor header at byte {position} is malformed (rank {n_dims}, name length {name_len})"
            )));
        }
        let mut dims = Vec::with_capacity(n_dims as usize);
        for _ in 0..n_dims {
            let dim = read_i32(&mut reader).map_err(invalid)?;
            if dim <= 0 {
                return Err(invalid(format!(
                    "tensor at byte {position} has dimension {dim}"
                )));
            }
            dims.push(dim as usize);
        }
        let mut name = vec![0u8; name_len as usize];
        reader
            .read_exact(&mut name)
            .map_err(|e| invalid(io_reason(e)))?;
        let name = String::from_utf8(name)
            .map_err(|_| invalid(format!("tensor name at byte {position} is not UTF-8")))?;
        let ggml_type = GgmlType::from_id(type_id)
            .ok_or_else(|| invalid(format!("tensor {name} has unknown type {type_id}")))?;
        let elements: usize = dims.iter().product();
        let data_len = ggml_type.data_len(elements).ok_or_else(|| {
            invalid(format!(
                "tensor {name} of {elements} elements does not fill whole {ggml_type:?} blocks"
            ))
        })? as u64;
        let data_offset = reader
            .stream_position()
            .map_err(|e| invalid(io_reason(e)))?;
        if data_offset + data_len > file_len {
            return Err(invalid(format!(
                "the file ends inside tensor {name}; it is truncated"
            )));
        }
        reader
            .seek(SeekFrom::Start(data_offset + data_len))
            .map_err(|e| invalid(io_reason(e)))?;
        tensors.push(GgmlTensorInfo {
            name,
            dims,
            ggml_type,
            data_offset,
            data_len,
        });
    }
    if tensors.is_empty() {
        return Err(invalid("the file holds no tensors".into()));
    }

    Ok(GgmlModelInfo {
        path: path.to_path_buf(),
        hparams,
        mel_filter_shape: (n_mel, n_fft),
        mel_filters,
        vocab_tokens,
        tensors,
        file_len,
    })
}

/// The values of one tensor of the file `info` describes, for the types vttiro writes
/// (f32, f16, q8_0, q5_0).
pub fn read_ggml_tensor(info: &GgmlModelInfo, name: &str) -> Result<Vec<f32>, ModelError> {
    let invalid = |reason: String| ModelError::InvalidGgml {
        path: info.path.clone(),
        reason,
    };
    let tensor = info
        .tensor(name)
        .ok_or_else(|| invalid(format!("it has no tensor {name}")))?;
    let mut file = File::open(&info.path).map_err(ModelError::io("open", &info.path))?;
    let mut bytes = vec![0u8; tensor.data_len as usize];
    file.seek(SeekFrom::Start(tensor.data_offset))
        .and_then(|_| file.read_exact(&mut bytes))
        .map_err(ModelError::io("read", &info.path))?;
    Ok(match tensor.ggml_type {
        GgmlType::F32 => bytes
            .chunks_exact(4)
            .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
            .collect(),
        GgmlType::F16 => bytes
            .chunks_exact(2)
            .map(|b| f16::from_le_bytes([b[0], b[1]]).to_f32())
            .collect(),
        GgmlType::Q8_0 => quant::dequantize_q8_0(&bytes),
        GgmlType::Q5_0 => quant::dequantize_q5_0(&bytes),
        other => {
            return Err(invalid(format!(
                "reading {other:?} tensors such as {name} is not supported"
            )))
        }
    })
}
