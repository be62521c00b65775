//! A reader for CTranslate2's `model.bin` that indexes every variable without loading
//! it, then reads single tensors on demand, so converting a 3 GB model never holds more
//! than one tensor in memory.
//!
//! Layout (little-endian, as `model_spec.py` writes it): `u32` binary version; the spec
//! name and a `u32` spec revision (version ≥ 2); `u32` variable count; per variable its
//! name, `u8` rank, `u32` dims, `u8` dtype and `u32` byte length followed by the bytes;
//! then a `u32` alias count and (alias, target) name pairs. Strings are a `u16` length
//! that counts a trailing NUL, then the bytes and the NUL.

use std::collections::HashMap;
use std::fs::File;
use std::io::{BufReader, Read, Seek, SeekFrom};
use std::path::Path;

use half::{bf16, f16};

/// The oldest layout with explicit dtypes; Whisper support arrived long after it.
const MIN_BINARY_VERSION: u32 = 4;
/// The newest layout this reader understands.
const MAX_BINARY_VERSION: u32 = 6;
const MAX_RANK: usize = 8;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Dtype {
    F32,
    I8,
    I16,
    I32,
    F16,
    Bf16,
}

impl Dtype {
    fn from_id(id: u8) -> Option<Dtype> {
        // The order of CTranslate2's DataType enum (include/ctranslate2/types.h).
        Some(match id {
            0 => Dtype::F32,
            1 => Dtype::I8,
            2 => Dtype::I16,
            3 => Dtype::I32,
            4 => Dtype::F16,
            5 => Dtype::Bf16,
            _ => return None,
        })
    }

    fn size(self) -> usize {
        match self {
            Dtype::I8 => 1,
            Dtype::I16 | Dtype::F16 | Dtype::Bf16 => 2,
            Dtype::F32 | Dtype::I32 => 4,
        }
    }
}

#[derive(Debug, Clone)]
struct Variable {
    shape: Vec<usize>,
    dtype: Dtype,
    offset: u64,
}

impl Variable {
    fn elements(&self) -> usize {
        self.shape.iter().product()
    }
}

/// One variable as f32 values, row-major, with its CTranslate2 shape.
#[derive(Debug, Clone, PartialEq)]
pub struct Tensor {
    pub shape: Vec<usize>,
    pub values: Vec<f32>,
}

impl Tensor {
    /// Rows `from..to` of a 2-D tensor (or elements of a 1-D one).
    pub fn rows(&self, from: usize, to: usize) -> Tensor {
        let row_len: usize = self.shape[1..].iter().product();
        let mut shape = self.shape.clone();
        shape[0] = to - from;
        Tensor {
            shape,
            values: self.values[from * row_len..to * row_len].to_vec(),
        }
    }
}

pub struct Ct2Weights {
    reader: BufReader<File>,
    pub spec: String,
    variables: HashMap<String, Variable>,
    aliases: HashMap<String, String>,
}

impl Ct2Weights {
    /// Indexes `path`; errors are reasons, the caller names the file.
    pub fn open(path: &Path) -> Result<Ct2Weights, String> {
        let file = File::open(path).map_err(|e| format!("cannot open: {e}"))?;
        let file_len = file
            .metadata()
            .map_err(|e| format!("cannot inspect: {e}"))?
            .len();
        let mut reader = BufReader::with_capacity(1 << 16, file);
        let binary_version = read_u32(&mut reader)?;
        if !(MIN_BINARY_VERSION..=MAX_BINARY_VERSION).contains(&binary_version) {
            return Err(format!(
                "CTranslate2 binary version {binary_version} is not supported (expected {MIN_BINARY_VERSION} to {MAX_BINARY_VERSION})"
            ));
        }
        let spec = read_string(&mut reader)?;
        let _spec_revision = read_u32(&mut reader)?;
        let count = read_u32(&mut reader)?;
        let mut variables = HashMap::new();
        for _ in 0..count {
            let name = read_string(&mut reader)?;
            let rank = usize::from(read_u8(&mut reader)?);
            if rank > MAX_RANK {
                return Err(format!("variable {name} has rank {rank}"));
            }
            let mut shape = Vec::with_capacity(rank);
            for _ in 0..rank {
                shape.push(read_u32(&mut reader)? as usize);
            }
            let dtype_id = read_u8(&mut reader)?;
            let dtype = Dtype::from_id(dtype_id)
                .ok_or_else(|| format!("variable {name} has unknown dtype {dtype_id}"))?;
            let byte_len = u64::from(read_u32(&mut reader)?);
            let offset = reader
                .stream_position()
                .map_err(|e| format!("cannot read: {e}"))?;
            let variable = Variable {
                shape,
                dtype,
                offset,
            };
            if (variable.elements() * dtype.size()) as u64 != byte_len {
                return Err(format!(
                    "variable {name} claims {byte_len} bytes for shape {:?}",
                    variable.shape
                ));
            }
            if offset + byte_len > file_len {
                return Err(format!("the file is truncated inside variable {name}"));
            }
            reader
                .seek_relative(byte_len as i64)
                .map_err(|e| format!("cannot read: {e}"))?;
            variables.insert(name, variable);
        }
        let alias_count = read_u32(&mut reader)?;
        let mut aliases = HashMap::new();
        for _ in 0..alias_count {
            let alias = read_string(&mut reader)?;
            let target = read_string(&mut reader)?;
            aliases.insert(alias, target);
        }
        Ok(Ct2Weights {
            reader,
            spec,
            variables,
            aliases,
        })
    }

    fn variable(&self, name: &str) -> Result<&Variable, String> {
        let resolved = self.aliases.get(name).map_or(name, String::as_str);
        self.variables
            .get(resolved)
            .ok_or_else(|| format!("variable {name} is missing"))
    }

    pub fn contains(&self, name: &str) -> bool {
        self.variable(name).is_ok()
    }

    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.variables
            .keys()
            .chain(self.aliases.keys())
            .map(String::as_str)
    }

    pub fn shape(&self, name: &str) -> Result<Vec<usize>, String> {
        self.variable(name).map(|v| v.shape.clone())
    }

    /// A scalar variable (layer counts, head counts) as an integer.
    pub fn scalar(&mut self, name: &str) -> Result<i64, String> {
        let tensor = self.tensor(name)?;
        match tensor.values.as_slice() {
            [value] => Ok(*value as i64),
            _ => Err(format!("variable {name} is not a scalar")),
        }
    }

    /// Reads `name` as f32. Integer-quantised weights (int8 per row, int16 per tensor) are
    /// scaled back with their `<name>_scale` companion.
    pub fn tensor(&mut self, name: &str) -> Result<Tensor, String> {
        let variable = self.variable(name)?.clone();
        let bytes = self.read_bytes(name, &variable)?;
        let raw = decode_values(&bytes, variable.dtype);
        let values = match variable.dtype {
            Dtype::I8 | Dtype::I16 if self.contains(&format!("{name}_scale")) => {
                let scale = self.tensor(&format!("{name}_scale"))?.values;
                dequantize(name, &variable.shape, raw, &scale)?
            }
            Dtype::I8 | Dtype::I16 if variable.elements() > 1 => {
                return Err(format!(
                    "variable {name} is integer-quantised but has no {name}_scale"
                ))
            }
            _ => raw,
        };
        Ok(Tensor {
            shape: variable.shape,
            values,
        })
    }

    fn read_bytes(&mut self, name: &str, variable: &Variable) -> Result<Vec<u8>, String> {
        let mut bytes = vec![0u8; variable.elements() * variable.dtype.size()];
        self.reader
            .seek(SeekFrom::Start(variable.offset))
            .and_then(|_| self.reader.read_exact(&mut bytes))
            .map_err(|e| format!("cannot read variable {name}: {e}"))?;
        Ok(bytes)
    }
}

fn decode_values(bytes: &[u8], dtype: Dtype) -> Vec<f32> {
    match dtype {
        Dtype::F32 => bytes
            .chunks_exact(4)
            .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
            .collect(),
        Dtype::F16 => bytes
            .chunks_exact(2)
            .map(|b| f16::from_le_bytes([b[0], b[1]]).to_f32())
            .collect(),
        Dtype::Bf16 => bytes
            .chunks_exact(2)
            .map(|b| bf16::from_le_bytes([b[0], b[1]]).to_f32())
            .collect(),
        Dtype::I8 => bytes.iter().map(|&b| f32::from(b as i8)).collect(),
        Dtype::I16 => bytes
            .chunks_exact(2)
            .map(|b| f32::from(i16::from_le_bytes([b[0], b[1]])))
            .collect(),
        Dtype::I32 => bytes
            .chunks_exact(4)
            .map(|b| i32::from_le_bytes([b[0], b[1], b[2], b[3]]) as f32)
            .collect(),
    }
}

/// CTranslate2 stores `round(w * scale)`, with one scale per output row (int8) or one for
/// the whole tensor (int16).
fn dequantize(
    name: &str,
    shape: &[usize],
    mut values: Vec<f32>,
    scale: &[f32],
) -> Result<Vec<f32>, String> {
    let rows = shape.first().copied().unwrap_or(1).max(1);
    let row_len = values.len() / rows;
    if scale.len() == 1 {
        values.iter_mut().for_each(|v| *v /= scale[0]);
    } else if scale.len() == rows {
        for (row, factor) in values.chunks_mut(row_len.max(1)).zip(scale) {
            row.iter_mut().for_each(|v| *v /= factor);
        }
    } else {
        return Err(format!(
            "variable {name}_scale has {} values for {rows} rows",
            scale.len()
        ));
    }
    Ok(values)
}

fn read_u8(reader: &mut impl Read) -> Result<u8, String> {
    let mut buf = [0u8; 1];
    reader.read_exact(&mut buf).map_err(truncated)?;
    Ok(buf[0])
}

fn read_u32(reader: &mut impl Read) -> Result<u32, String> {
    let mut buf = [0u8; 4];
    reader.read_exact(&mut buf).map_err(truncated)?;
    Ok(u32::from_le_bytes(buf))
}

fn read_string(reader: &mut impl Read) -> Result<String, String> {
    let mut len = [0u8; 2];
    reader.read_exact(&mut len).map_err(truncated)?;
    let mut bytes = vec![0u8; usize::from(u16::from_le_bytes(len))];
    reader.read_exact(&mut bytes).map_err(truncated)?;
    if bytes.pop() != Some(0) {
        return Err("a name is not NUL-terminated; not a CTranslate2 model file".into());
    }
    String::from_utf8(bytes).map_err(|_| "a name is not UTF-8; not a CTranslate2 model file".into())
}

fn truncated(error: std::io::Error) -> String {
    if error.kind() == std::io::ErrorKind::UnexpectedEof {
        "the file ends inside its header; it is truncated or not a CTranslate2 model".into()
    } else {
        format!("cannot read: {error}")
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// Writes a model.bin the way `model_spec.py` does, for tests.
    pub(crate) fn write_model_bin(
        path: &Path,
        variables: &[(&str, &[usize], u8, Vec<u8>)],
        aliases: &[(&str, &str)],
    ) {
        fn string(out: &mut Vec<u8>, s: &str) {
            out.extend_from_slice(&((s.len() + 1) as u16).to_le_bytes());
            out.extend_from_slice(s.as_bytes());
            out.push(0);
        }
        let mut out = Vec::new();
        out.extend_from_slice(&6u32.to_le_bytes());
        string(&mut out, "WhisperSpec");
        out.extend_from_slice(&3u32.to_le_bytes());
        out.extend_from_slice(&(variables.len() as u32).to_le_bytes());
        for (name, shape, dtype, bytes) in variables {
            string(&mut out, name);
            out.push(shape.len() as u8);
            for dim in *shape {
                out.extend_from_slice(&(*dim as u32).to_le_bytes());
            }
            out.push(*dtype);
            out.extend_from_slice(&(bytes.len() as u32).to_le_bytes());
            out.extend_from_slice(bytes);
        }
        out.extend_from_slice(&(aliases.len() as u32).to_le_bytes());
        for (alias, target) in aliases {
            string(&mut out, alias);
            string(&mut out, target);
        }
        std::fs::write(path, out).unwrap();
    }

    fn f32_bytes(values: &[f32]) -> Vec<u8> {
        values.iter().flat_map(|v| v.to_le_bytes()).collect()
    }

    #[test]
    fn reads_every_dtype_aliases_and_scaled_integers() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("model.bin");
        let halves: Vec<u8> = [1.5f32, -2.0]
            .iter()
            .flat_map(|v| f16::from_f32(*v).to_le_bytes())
            .collect();
        let brains: Vec<u8> = [0.25f32, 8.0]
            .iter()
            .flat_map(|v| bf16::from_f32(*v).to_le_bytes())
            .collect();
        write_model_bin(
            &path,
            &[
                ("a/f32", &[2], 0, f32_bytes(&[0.5, -1.0])),
                ("a/f16", &[1, 2], 4, halves),
                ("a/bf16", &[2], 5, brains),
                ("a/heads", &[], 2, 6i16.to_le_bytes().to_vec()),
                ("q/weight", &[2, 2], 1, vec![127, 0xC1, 10, 20]),
                ("q/weight_scale", &[2], 0, f32_bytes(&[127.0, 10.0])),
            ],
            &[("b/alias", "a/f32")],
        );
        let mut weights = Ct2Weights::open(&path).unwrap();
        assert_eq!(weights.spec, "WhisperSpec");
        assert_eq!(weights.tensor("b/alias").unwrap().values, [0.5, -1.0]);
        assert_eq!(weights.tensor("a/f16").unwrap().values, [1.5, -2.0]);
        assert_eq!(weights.tensor("a/f16").unwrap().shape, [1, 2]);
        assert_eq!(weights.tensor("a/bf16").unwrap().values, [0.25, 8.0]);
        assert_eq!(weights.scalar("a/heads").unwrap(), 6);
        // 0xC1 is -63 as int8.
        assert_eq!(
            weights.tensor("q/weight").unwrap().values,
            [1.0, -63.0 / 127.0, 1.0, 2.0]
        );
        assert!(weights.tensor("missing").unwrap_err().contains("missing"));
    }

    #[test]
    fn truncation_and_foreign_files_are_rejected() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("model.bin");
        write_model_bin(&path, &[("a", &[4], 0, f32_bytes(&[1.0; 4]))], &[]);
        let bytes = std::fs::read(&path).unwrap();
        std::fs::write(&path, &bytes[..bytes.len() - 9]).unwrap();
        let error = Ct2Weights::open(&path).err().unwrap();
        assert!(error.contains("truncated"), "{error}");
        std::fs::write(&path, b"PK\x03\x04 definitely a zip").unwrap();
        let error = Ct2Weights::open(&path).err().unwrap();
        assert!(error.contains("binary version"), "{error}");
    }
}
