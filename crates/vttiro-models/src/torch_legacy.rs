//! Reads float32 tensors out of PyTorch checkpoints in the legacy (pre-1.6, non-zip)
//! serialization format without Python or libtorch.
//!
//! Such a file is a row of pickles followed by raw storage bytes:
//!
//! 1. a magic number (`0x1950a86a20f9469cfc6c`), 2. the format version (1001),
//! 3. a dict describing the writer (byte order, C type sizes), 4. the saved object itself,
//!    in which every tensor is a call of `torch._utils._rebuild_tensor_v2` on a
//!    *persistent id* `('storage', <torch XStorage>, key, location, numel, view)`,
//! 5. the list of storage keys, after which each storage follows in that order as a
//!    little-endian i64 element count and its raw little-endian elements.
//!
//! The pickles are run by a small virtual machine that knows the opcodes PyTorch's
//! pickler emits (protocol 2, plus the few protocol 3/4 additions that are cheap to
//! support). It never imports or calls anything: `GLOBAL` only records a name, and a
//! `REDUCE` of a callable it does not model yields an opaque placeholder, so a hostile
//! file can at worst produce an error. Every length read from the file is checked against
//! the bytes that remain, so no allocation exceeds the size of the file, and values live
//! in an arena addressed by index, so deeply nested or cyclic input cannot overflow the
//! stack when it is dropped.

use std::collections::HashMap;
use std::fmt;
use std::path::Path;

use crate::error::ModelError;

/// `torch.serialization.MAGIC_NUMBER`.
const MAGIC_NUMBER: u128 = 0x1950a86a20f9469cfc6c;
/// `torch.serialization.PROTOCOL_VERSION`, the only legacy version ever written.
const PROTOCOL_VERSION: i64 = 1001;
/// PyTorch allows 64 dimensions; a state-dict tensor never comes close.
const MAX_RANK: usize = 64;

/// One float32 tensor of a state dict, copied out into contiguous row-major order.
#[derive(Debug, Clone, PartialEq)]
pub struct TorchTensor {
    pub name: String,
    pub shape: Vec<usize>,
    pub data: Vec<f32>,
}

impl TorchTensor {
    pub fn numel(&self) -> usize {
        self.shape.iter().product()
    }
}

/// Reads the dict stored under the top-level key `key` (e.g. `"model_state"`) of the
/// legacy checkpoint at `path` and returns its tensors in the order they were saved.
pub fn read_torch_legacy(path: &Path, key: &str) -> Result<Vec<TorchTensor>, ModelError> {
    let bytes = std::fs::read(path).map_err(ModelError::io("read", path))?;
    parse_torch_legacy(&bytes, key, path)
}

/// [`read_torch_legacy`] on bytes already in memory; `origin` names them in errors.
pub fn parse_torch_legacy(
    bytes: &[u8],
    key: &str,
    origin: &Path,
) -> Result<Vec<TorchTensor>, ModelError> {
    parse(bytes, key).map_err(|reason| ModelError::InvalidCheckpoint {
        path: origin.to_path_buf(),
        reason,
    })
}

fn parse(bytes: &[u8], key: &str) -> Result<Vec<TorchTensor>, String> {
    if bytes.starts_with(b"PK\x03\x04") {
        return Err(
            "it is a zip archive (the PyTorch >= 1.6 format); only the legacy format is supported"
                .into(),
        );
    }
    let mut vm = Machine::new(bytes);

    let magic = vm.run_pickle("the magic number")?;
    if vm.as_u128(magic) != Some(MAGIC_NUMBER) {
        return Err("it does not start with PyTorch's legacy magic number".into());
    }
    let version = vm.run_pickle("the format version")?;
    match version {
        Value::Int(PROTOCOL_VERSION) => {}
        Value::Int(other) => {
            return Err(format!(
                "format version {other} is not supported (expected {PROTOCOL_VERSION})"
            ))
        }
        _ => return Err("the format version is not an integer".into()),
    }
    let sys_info = vm.run_pickle("the system info")?;
    if let Some(Value::Bool(false)) = vm.dict_get(sys_info, "little_endian") {
        return Err("it was written on a big-endian machine, which is not supported".into());
    }

    vm.persistent_ids = true;
    let root = vm.run_pickle("the saved object")?;
    vm.persistent_ids = false;
    let keys = vm.run_pickle("the storage key list")?;
    let data = locate_storages(&vm, keys, bytes, vm.pos)?;

    let state = vm
        .dict_get(root, key)
        .ok_or_else(|| format!("the saved object has no dict entry `{key}`"))?;
    let entries = match vm.obj(state) {
        Some(Obj::Dict(entries)) => entries,
        _ => return Err(format!("`{key}` is not a dict")),
    };

    // A name stored twice keeps its last value, as Python's dict would.
    let mut order: Vec<&str> = Vec::new();
    let mut latest: HashMap<&str, Value> = HashMap::new();
    for (name, value) in entries {
        let name = match vm.obj(*name) {
            Some(Obj::Str(name)) => name.as_str(),
            _ => return Err(format!("`{key}` has a key that is not a string")),
        };
        if latest.insert(name, *value).is_none() {
            order.push(name);
        }
    }

    // Tensors that share a storage are written once but copied once per name, so the
    // output may exceed the file; twice its size is far beyond any honest state dict.
    let mut budget = bytes.len().saturating_mul(2) / 4;
    let mut tensors = Vec::with_capacity(order.len());
    for name in order {
        let tensor = match vm.obj(latest[name]) {
            Some(Obj::Tensor(tensor)) => tensor,
            _ => return Err(format!("`{key}.{name}` is not a tensor")),
        };
        let (shape, values) = materialize(tensor, &data, bytes, &mut budget)
            .map_err(|reason| format!("tensor `{name}`: {reason}"))?;
        tensors.push(TorchTensor {
            name: name.to_owned(),
            shape,
            data: values,
        });
    }
    Ok(tensors)
}

/// Where each storage's elements start in the file.
struct StorageData {
    dtype: Dtype,
    numel: usize,
    start: usize,
}

fn locate_storages(
    vm: &Machine<'_>,
    keys: Value,
    bytes: &[u8],
    mut pos: usize,
) -> Result<HashMap<String, StorageData>, String> {
    let keys = match vm.obj(keys) {
        Some(Obj::List(keys)) => keys,
        _ => return Err("the storage key list is not a list".into()),
    };
    let mut located = HashMap::with_capacity(keys.len());
    for key in keys {
        let key = match vm.obj(*key) {
            Some(Obj::Str(key)) => key,
            _ => return Err("a storage key is not a string".into()),
        };
        let (dtype, numel) = *vm.storages.get(key).ok_or_else(|| {
            format!("storage {key} is listed but no tensor of the saved object uses it")
        })?;
        let header = bytes
            .get(pos..pos + 8)
            .ok_or_else(|| format!("the file ends before the data of storage {key}"))?;
        let stored = i64::from_le_bytes(header.try_into().expect("8-byte slice"));
        if usize::try_from(stored).ok() != Some(numel) {
            return Err(format!(
                "storage {key} holds {stored} elements but the saved object says {numel}"
            ));
        }
        let start = pos + 8;
        let end = numel
            .checked_mul(dtype.size())
            .and_then(|len| start.checked_add(len))
            .filter(|end| *end <= bytes.len())
            .ok_or_else(|| format!("the file ends inside the data of storage {key}"))?;
        if located
            .insert(
                key.clone(),
                StorageData {
                    dtype,
                    numel,
                    start,
                },
            )
            .is_some()
        {
            return Err(format!("storage {key} is listed twice"));
        }
        pos = end;
    }
    Ok(located)
}

fn materialize(
    tensor: &TensorRef,
    data: &HashMap<String, StorageData>,
    bytes: &[u8],
    budget: &mut usize,
) -> Result<(Vec<usize>, Vec<f32>), String> {
    let storage = data
        .get(&tensor.storage.key)
        .ok_or_else(|| format!("storage {} has no data in the file", tensor.storage.key))?;
    if storage.dtype != Dtype::F32 {
        return Err(format!(
            "it is {}, only float32 is supported",
            storage.dtype
        ));
    }
    // A view storage is a window into its root storage.
    let view_end = tensor
        .storage
        .offset
        .checked_add(tensor.storage.numel)
        .filter(|end| *end <= storage.numel)
        .ok_or("its storage view lies outside the stored data")?;
    let available = view_end - tensor.storage.offset;
    let base = tensor.storage.offset;

    let shape = tensor.size.clone();
    // A dimension of size 1 never moves the index, whatever stride it was saved with.
    let stride: Vec<usize> = shape
        .iter()
        .zip(&tensor.stride)
        .map(|(&dim, &step)| if dim == 1 { 0 } else { step })
        .collect();
    let numel = shape
        .iter()
        .try_fold(1usize, |acc, &dim| acc.checked_mul(dim))
        .ok_or("its element count overflows")?;
    if numel == 0 {
        return Ok((shape, Vec::new()));
    }
    let mut last = tensor.offset;
    for (&dim, &stride) in shape.iter().zip(&stride) {
        last = (dim - 1)
            .checked_mul(stride)
            .and_then(|reach| last.checked_add(reach))
            .ok_or("its strides overflow")?;
    }
    if last >= available {
        return Err(format!(
            "it reaches element {last} of a storage holding {available}"
        ));
    }
    if numel > *budget {
        return Err("the tensors need more memory than twice the file's size".into());
    }
    *budget -= numel;

    let element = |index: usize| {
        let at = storage.start + (base + index) * 4;
        f32::from_le_bytes(bytes[at..at + 4].try_into().expect("4-byte slice"))
    };
    let mut values = Vec::with_capacity(numel);
    if is_contiguous(&shape, &stride) {
        values.extend((tensor.offset..tensor.offset + numel).map(element));
        return Ok((shape, values));
    }
    // Odometer over the index space, last dimension fastest (row-major).
    let rank = shape.len();
    let mut index = vec![0usize; rank];
    let mut at = tensor.offset;
    for _ in 0..numel {
        values.push(element(at));
        for dim in (0..rank).rev() {
            index[dim] += 1;
            at += stride[dim];
            if index[dim] < shape[dim] {
                break;
            }
            at -= stride[dim] * shape[dim];
            index[dim] = 0;
        }
    }
    Ok((shape, values))
}

fn is_contiguous(shape: &[usize], stride: &[usize]) -> bool {
    let mut expected = 1usize;
    for (&dim, &step) in shape.iter().zip(stride).rev() {
        if dim != 1 && step != expected {
            return false;
        }
        expected = expected.saturating_mul(dim);
    }
    true
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Dtype {
    F64,
    F32,
    F16,
    BF16,
    I64,
    I32,
    I16,
    I8,
    U8,
    Bool,
    C64,
    C128,
}

impl Dtype {
    fn from_storage_class(name: &str) -> Option<Dtype> {
        Some(match name {
            "DoubleStorage" => Dtype::F64,
            "FloatStorage" => Dtype::F32,
            "HalfStorage" => Dtype::F16,
            "BFloat16Storage" => Dtype::BF16,
            "LongStorage" => Dtype::I64,
            "IntStorage" => Dtype::I32,
            "ShortStorage" => Dtype::I16,
            "CharStorage" => Dtype::I8,
            "ByteStorage" => Dtype::U8,
            "BoolStorage" => Dtype::Bool,
            "ComplexFloatStorage" => Dtype::C64,
            "ComplexDoubleStorage" => Dtype::C128,
            _ => return None,
        })
    }

    fn size(self) -> usize {
        match self {
            Dtype::I8 | Dtype::U8 | Dtype::Bool => 1,
            Dtype::F16 | Dtype::BF16 | Dtype::I16 => 2,
            Dtype::F32 | Dtype::I32 => 4,
            Dtype::F64 | Dtype::I64 | Dtype::C64 => 8,
            Dtype::C128 => 16,
        }
    }
}

impl fmt::Display for Dtype {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Dtype::F64 => "float64",
            Dtype::F32 => "float32",
            Dtype::F16 => "float16",
            Dtype::BF16 => "bfloat16",
            Dtype::I64 => "int64",
            Dtype::I32 => "int32",
            Dtype::I16 => "int16",
            Dtype::I8 => "int8",
            Dtype::U8 => "uint8",
            Dtype::Bool => "bool",
            Dtype::C64 => "complex64",
            Dtype::C128 => "complex128",
        })
    }
}

/// A stack or memo entry. Scalars are inline; everything else is an index into the
/// machine's arena, so copying a value is cheap and never recursive.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Value {
    None,
    Bool(bool),
    Int(i64),
    Float(f64),
    Obj(usize),
}

#[derive(Debug)]
struct StorageRef {
    key: String,
    /// Element offset and count of the window a view storage exposes of its root.
    offset: usize,
    numel: usize,
}

#[derive(Debug)]
struct TensorRef {
    storage: StorageRef,
    offset: usize,
    size: Vec<usize>,
    stride: Vec<usize>,
}

#[derive(Debug)]
enum Obj {
    Str(String),
    /// Byte strings matter to no tensor, so only their presence is kept.
    Bytes,
    /// An integer too wide for i64, as little-endian two's complement.
    BigInt(Vec<u8>),
    Tuple(Vec<Value>),
    List(Vec<Value>),
    /// Insertion order kept and duplicates allowed; readers take the last entry.
    Dict(Vec<(Value, Value)>),
    Global(Box<(String, String)>),
    Storage(Box<StorageRef>),
    Tensor(Box<TensorRef>),
    /// The result of calling something this machine does not model.
    Opaque,
}

struct Machine<'a> {
    bytes: &'a [u8],
    pos: usize,
    arena: Vec<Obj>,
    stack: Vec<Value>,
    marks: Vec<usize>,
    memo: HashMap<u32, Value>,
    /// Whether `BINPERSID` may resolve storages (only the saved object uses them).
    persistent_ids: bool,
    /// Every storage the saved object referenced: key → (dtype, element count).
    storages: HashMap<String, (Dtype, usize)>,
}

impl<'a> Machine<'a> {
    fn new(bytes: &'a [u8]) -> Machine<'a> {
        Machine {
            bytes,
            pos: 0,
            arena: Vec::new(),
            stack: Vec::new(),
            marks: Vec::new(),
            memo: HashMap::new(),
            persistent_ids: false,
            storages: HashMap::new(),
        }
    }

    fn obj(&self, value: Value) -> Option<&Obj> {
        match value {
            Value::Obj(index) => self.arena.get(index),
            _ => None,
        }
    }

    fn alloc(&mut self, obj: Obj) -> Value {
        self.arena.push(obj);
        Value::Obj(self.arena.len() - 1)
    }

    fn as_u128(&self, value: Value) -> Option<u128> {
        match value {
            Value::Int(int) => u128::try_from(int).ok(),
            Value::Obj(_) => match self.obj(value)? {
                Obj::BigInt(le) => {
                    let negative = le.last().is_some_and(|byte| byte & 0x80 != 0);
                    if negative || le.iter().skip(16).any(|&byte| byte != 0) {
                        return None;
                    }
                    let mut buf = [0u8; 16];
                    let used = le.len().min(16);
                    buf[..used].copy_from_slice(&le[..used]);
                    Some(u128::from_le_bytes(buf))
                }
                _ => None,
            },
            _ => None,
        }
    }

    fn str_of(&self, value: Value) -> Option<&str> {
        match self.obj(value)? {
            Obj::Str(text) => Some(text),
            _ => None,
        }
    }

    /// The last value stored under the string key `key` of a dict.
    fn dict_get(&self, dict: Value, key: &str) -> Option<Value> {
        match self.obj(dict)? {
            Obj::Dict(entries) => entries
                .iter()
                .rev()
                .find(|(name, _)| self.str_of(*name) == Some(key))
                .map(|(_, value)| *value),
            _ => None,
        }
    }

    /// Runs one pickle from the current position up to and including its STOP.
    fn run_pickle(&mut self, what: &str) -> Result<Value, String> {
        self.stack.clear();
        self.marks.clear();
        self.memo.clear();
        self.run()
            .map_err(|(offset, reason)| format!("{what}: {reason} (at byte {offset})"))
    }

    fn run(&mut self) -> Result<Value, (usize, String)> {
        loop {
            let at = self.pos;
            let opcode = *self
                .bytes
                .get(at)
                .ok_or_else(|| (at, "the file ends before the pickle's STOP".to_owned()))?;
            self.pos += 1;
            match self.step(opcode) {
                Ok(Some(result)) => return Ok(result),
                Ok(None) => {}
                Err(reason) => return Err((at, reason)),
            }
        }
    }

    fn take(&mut self, len: usize) -> Result<&'a [u8], String> {
        let bytes: &'a [u8] = self.bytes;
        let end = self
            .pos
            .checked_add(len)
            .filter(|end| *end <= bytes.len())
            .ok_or_else(|| format!("the file ends inside an argument of {len} bytes"))?;
        let slice = &bytes[self.pos..end];
        self.pos = end;
        Ok(slice)
    }

    fn take_array<const N: usize>(&mut self) -> Result<[u8; N], String> {
        Ok(self.take(N)?.try_into().expect("length checked by take"))
    }

    fn take_u8(&mut self) -> Result<u8, String> {
        Ok(self.take_array::<1>()?[0])
    }

    fn take_u32(&mut self) -> Result<u32, String> {
        Ok(u32::from_le_bytes(self.take_array()?))
    }

    /// A length prefix, refused early when it exceeds what is left of the file.
    fn take_len(&mut self, len: u64) -> Result<usize, String> {
        let remaining = (self.bytes.len() - self.pos) as u64;
        if len > remaining {
            return Err(format!(
                "an argument claims {len} bytes but only {remaining} remain"
            ));
        }
        Ok(len as usize)
    }

    fn take_line(&mut self) -> Result<String, String> {
        let rest = &self.bytes[self.pos..];
        let end = rest
            .iter()
            .position(|&b| b == b'\n')
            .ok_or("a GLOBAL name is not terminated by a newline")?;
        let line = std::str::from_utf8(&rest[..end])
            .map_err(|_| "a GLOBAL name is not valid UTF-8".to_owned())?
            .to_owned();
        self.pos += end + 1;
        Ok(line)
    }

    fn text(&mut self, len: usize) -> Result<Value, String> {
        let raw = self.take(len)?;
        let text = std::str::from_utf8(raw)
            .map_err(|_| "a string is not valid UTF-8".to_owned())?
            .to_owned();
        Ok(self.alloc(Obj::Str(text)))
    }

    /// Python 3 reads protocol-2 byte strings as text when they decode; weights files
    /// only use them for names.
    fn byte_string(&mut self, len: usize) -> Result<Value, String> {
        let raw = self.take(len)?;
        Ok(match std::str::from_utf8(raw) {
            Ok(text) => self.alloc(Obj::Str(text.to_owned())),
            Err(_) => self.alloc(Obj::Bytes),
        })
    }

    fn long(&mut self, len: usize) -> Result<Value, String> {
        let raw = self.take(len)?;
        if raw.len() <= 8 {
            let mut value: i64 = 0;
            for (index, &byte) in raw.iter().enumerate() {
                value |= i64::from(byte) << (8 * index);
            }
            // Sign-extend from the last byte written.
            if let Some(&last) = raw.last() {
                if last & 0x80 != 0 && raw.len() < 8 {
                    value |= -1i64 << (8 * raw.len());
                }
            }
            Ok(Value::Int(value))
        } else {
            Ok(self.alloc(Obj::BigInt(raw.to_vec())))
        }
    }

    fn push(&mut self, value: Value) {
        self.stack.push(value);
    }

    fn pop(&mut self) -> Result<Value, String> {
        self.stack
            .pop()
            .ok_or_else(|| "the stack is empty".to_owned())
    }

    fn top(&self) -> Result<Value, String> {
        self.stack
            .last()
            .copied()
            .ok_or_else(|| "the stack is empty".to_owned())
    }

    fn pop_mark(&mut self) -> Result<Vec<Value>, String> {
        let mark = self.marks.pop().ok_or("no MARK precedes this opcode")?;
        if mark > self.stack.len() {
            return Err("the stack shrank below its MARK".into());
        }
        Ok(self.stack.split_off(mark))
    }

    fn memo_put(&mut self, index: u32) -> Result<(), String> {
        let value = self.top()?;
        self.memo.insert(index, value);
        Ok(())
    }

    fn memo_get(&mut self, index: u32) -> Result<(), String> {
        let value = *self
            .memo
            .get(&index)
            .ok_or_else(|| format!("memo entry {index} is read before it is written"))?;
        self.push(value);
        Ok(())
    }

    fn append(&mut self, items: Vec<Value>) -> Result<(), String> {
        let target = self.top()?;
        match target {
            Value::Obj(index) => match &mut self.arena[index] {
                Obj::List(list) => {
                    list.extend(items);
                    Ok(())
                }
                // Appending to something unmodelled cannot matter to the tensors we read.
                Obj::Opaque => Ok(()),
                _ => Err("APPEND to something that is not a list".into()),
            },
            _ => Err("APPEND to something that is not a list".into()),
        }
    }

    fn set_items(&mut self, items: Vec<Value>) -> Result<(), String> {
        if !items.len().is_multiple_of(2) {
            return Err("SETITEMS with an odd number of items".into());
        }
        let target = self.top()?;
        match target {
            Value::Obj(index) => match &mut self.arena[index] {
                Obj::Dict(entries) => {
                    entries.extend(items.chunks_exact(2).map(|pair| (pair[0], pair[1])));
                    Ok(())
                }
                Obj::Opaque => Ok(()),
                _ => Err("SETITEM on something that is not a dict".into()),
            },
            _ => Err("SETITEM on something that is not a dict".into()),
        }
    }

    fn tuple_items(&self, value: Value) -> Option<&[Value]> {
        match self.obj(value)? {
            Obj::Tuple(items) => Some(items),
            _ => None,
        }
    }

    fn usize_of(value: Value) -> Option<usize> {
        match value {
            Value::Int(int) => usize::try_from(int).ok(),
            _ => None,
        }
    }

    fn usizes(&self, value: Value, what: &str) -> Result<Vec<usize>, String> {
        let items = self
            .tuple_items(value)
            .ok_or_else(|| format!("the tensor's {what} is not a tuple"))?;
        if items.len() > MAX_RANK {
            return Err(format!("the tensor has {} dimensions", items.len()));
        }
        items
            .iter()
            .map(|&item| {
                Self::usize_of(item)
                    .ok_or_else(|| format!("the tensor's {what} holds a non-integer or negative"))
            })
            .collect()
    }

    /// `persistent_load` of torch's legacy loader, minus the loading.
    fn persistent_load(&mut self, pid: Value) -> Result<Value, String> {
        if !self.persistent_ids {
            return Err("a persistent id outside the saved object".into());
        }
        let items = self
            .tuple_items(pid)
            .ok_or("a persistent id is not a tuple")?
            .to_vec();
        if items.len() < 5 || items.len() > 6 || self.str_of(items[0]) != Some("storage") {
            return Err(
                "a persistent id is not ('storage', type, key, location, numel[, view])".into(),
            );
        }
        let dtype = match self.obj(items[1]) {
            Some(Obj::Global(global)) if global.0 == "torch" || global.0 == "torch.cuda" => {
                let (module, name) = &**global;
                Dtype::from_storage_class(name)
                    .ok_or_else(|| format!("storage type {module}.{name} is not supported"))?
            }
            _ => return Err("a persistent id names no torch storage type".into()),
        };
        let key = self
            .str_of(items[2])
            .ok_or("a storage key is not a string")?
            .to_owned();
        let numel = Self::usize_of(items[4]).ok_or("a storage size is not a count")?;
        match self.storages.get(&key) {
            Some(&(seen_dtype, seen_numel)) if (seen_dtype, seen_numel) != (dtype, numel) => {
                return Err(format!("storage {key} is described two different ways"));
            }
            _ => {
                self.storages.insert(key.clone(), (dtype, numel));
            }
        }
        let (offset, numel) = match items.get(5).copied() {
            None | Some(Value::None) => (0, numel),
            Some(view) => {
                let view = self
                    .tuple_items(view)
                    .filter(|view| view.len() == 3)
                    .ok_or("a storage view is not (key, offset, size)")?;
                let offset = Self::usize_of(view[1]).ok_or("a storage view offset is invalid")?;
                let size = Self::usize_of(view[2]).ok_or("a storage view size is invalid")?;
                if offset.checked_add(size).is_none_or(|end| end > numel) {
                    return Err(format!("a view of storage {key} lies outside it"));
                }
                (offset, size)
            }
        };
        Ok(self.alloc(Obj::Storage(Box::new(StorageRef { key, offset, numel }))))
    }

    fn reduce(&mut self, callable: Value, args: Value) -> Result<Value, String> {
        let (module, name) = match self.obj(callable) {
            Some(Obj::Global(global)) => (global.0.as_str(), global.1.as_str()),
            _ => return Err("REDUCE of something that is not a global".into()),
        };
        let args_items = self
            .tuple_items(args)
            .ok_or("REDUCE arguments are not a tuple")?
            .to_vec();
        match (module, name) {
            ("collections", "OrderedDict") => {
                let mut entries = Vec::new();
                if let Some(&pairs) = args_items.first() {
                    let pairs = match self.obj(pairs) {
                        Some(Obj::List(pairs)) => pairs.clone(),
                        _ => return Err("OrderedDict argument is not a list".into()),
                    };
                    for pair in pairs {
                        match self.tuple_items(pair) {
                            Some([key, value]) => entries.push((*key, *value)),
                            _ => return Err("OrderedDict item is not a pair".into()),
                        }
                    }
                }
                Ok(self.alloc(Obj::Dict(entries)))
            }
            ("torch._utils", "_rebuild_tensor_v2" | "_rebuild_tensor") => {
                if args_items.len() < 4 {
                    return Err(format!("{name} needs at least 4 arguments"));
                }
                let storage = match self.obj(args_items[0]) {
                    Some(Obj::Storage(storage)) => StorageRef {
                        key: storage.key.clone(),
                        offset: storage.offset,
                        numel: storage.numel,
                    },
                    _ => return Err(format!("{name} is not given a storage")),
                };
                let offset =
                    Self::usize_of(args_items[1]).ok_or("a tensor's storage offset is invalid")?;
                let size = self.usizes(args_items[2], "size")?;
                let stride = self.usizes(args_items[3], "stride")?;
                if size.len() != stride.len() {
                    return Err("a tensor's size and stride differ in length".into());
                }
                Ok(self.alloc(Obj::Tensor(Box::new(TensorRef {
                    storage,
                    offset,
                    size,
                    stride,
                }))))
            }
            // nn.Parameter wraps the tensor it was saved with.
            ("torch._utils", "_rebuild_parameter") => match args_items.first() {
                Some(&data) if matches!(self.obj(data), Some(Obj::Tensor(_))) => Ok(data),
                _ => Err("_rebuild_parameter is not given a tensor".into()),
            },
            _ => Ok(self.alloc(Obj::Opaque)),
        }
    }

    /// Executes one opcode; `Some` carries the pickle's result at STOP.
    fn step(&mut self, opcode: u8) -> Result<Option<Value>, String> {
        match opcode {
            // PROTO
            0x80 => {
                let version = self.take_u8()?;
                if version > 5 {
                    return Err(format!("pickle protocol {version} is not supported"));
                }
            }
            // FRAME: protocol 4 framing is only a read-ahead hint.
            0x95 => {
                self.take(8)?;
            }
            // STOP
            b'.' => return self.pop().map(Some),
            // MARK
            b'(' => self.marks.push(self.stack.len()),
            // POP, POP_MARK, DUP
            b'0' => {
                self.pop()?;
            }
            b'1' => {
                self.pop_mark()?;
            }
            b'2' => {
                let top = self.top()?;
                self.push(top);
            }
            // EMPTY_DICT, EMPTY_LIST, EMPTY_TUPLE
            b'}' => {
                let dict = self.alloc(Obj::Dict(Vec::new()));
                self.push(dict);
            }
            b']' => {
                let list = self.alloc(Obj::List(Vec::new()));
                self.push(list);
            }
            b')' => {
                let tuple = self.alloc(Obj::Tuple(Vec::new()));
                self.push(tuple);
            }
            // TUPLE, TUPLE1, TUPLE2, TUPLE3
            b't' => {
                let items = self.pop_mark()?;
                let tuple = self.alloc(Obj::Tuple(items));
                self.push(tuple);
            }
            0x85..=0x87 => {
                let count = usize::from(opcode - 0x84);
                if self.stack.len() < count {
                    return Err("the stack is too short for a tuple".into());
                }
                let items = self.stack.split_off(self.stack.len() - count);
                let tuple = self.alloc(Obj::Tuple(items));
                self.push(tuple);
            }
            // LIST, DICT (protocol 0/1 forms of building from a MARK)
            b'l' => {
                let items = self.pop_mark()?;
                let list = self.alloc(Obj::List(items));
                self.push(list);
            }
            b'd' => {
                let items = self.pop_mark()?;
                if !items.len().is_multiple_of(2) {
                    return Err("DICT with an odd number of items".into());
                }
                let entries = items.chunks_exact(2).map(|p| (p[0], p[1])).collect();
                let dict = self.alloc(Obj::Dict(entries));
                self.push(dict);
            }
            // BINPUT, LONG_BINPUT, MEMOIZE
            b'q' => {
                let index = self.take_u8()?;
                self.memo_put(u32::from(index))?;
            }
            b'r' => {
                let index = self.take_u32()?;
                self.memo_put(index)?;
            }
            0x94 => {
                let index = u32::try_from(self.memo.len()).map_err(|_| "memo overflow")?;
                self.memo_put(index)?;
            }
            // BINGET, LONG_BINGET
            b'h' => {
                let index = self.take_u8()?;
                self.memo_get(u32::from(index))?;
            }
            b'j' => {
                let index = self.take_u32()?;
                self.memo_get(index)?;
            }
            // BININT, BININT1, BININT2
            b'J' => {
                let value = i32::from_le_bytes(self.take_array()?);
                self.push(Value::Int(i64::from(value)));
            }
            b'K' => {
                let value = self.take_u8()?;
                self.push(Value::Int(i64::from(value)));
            }
            b'M' => {
                let value = u16::from_le_bytes(self.take_array()?);
                self.push(Value::Int(i64::from(value)));
            }
            // LONG1, LONG4
            0x8a => {
                let len = usize::from(self.take_u8()?);
                let value = self.long(len)?;
                self.push(value);
            }
            0x8b => {
                let len = i32::from_le_bytes(self.take_array()?);
                let len = u64::try_from(len).map_err(|_| "LONG4 with a negative length")?;
                let len = self.take_len(len)?;
                let value = self.long(len)?;
                self.push(value);
            }
            // BINFLOAT is big-endian, unlike every other binary argument.
            b'G' => {
                let value = f64::from_be_bytes(self.take_array()?);
                self.push(Value::Float(value));
            }
            // BINUNICODE, SHORT_BINUNICODE, BINUNICODE8
            b'X' => {
                let len = self.take_u32()?;
                let len = self.take_len(u64::from(len))?;
                let value = self.text(len)?;
                self.push(value);
            }
            0x8c => {
                let len = usize::from(self.take_u8()?);
                let value = self.text(len)?;
                self.push(value);
            }
            0x8d => {
                let len = u64::from_le_bytes(self.take_array()?);
                let len = self.take_len(len)?;
                let value = self.text(len)?;
                self.push(value);
            }
            // BINSTRING, SHORT_BINSTRING
            b'T' => {
                let len = i32::from_le_bytes(self.take_array()?);
                let len = u64::try_from(len).map_err(|_| "BINSTRING with a negative length")?;
                let len = self.take_len(len)?;
                let value = self.byte_string(len)?;
                self.push(value);
            }
            b'U' => {
                let len = usize::from(self.take_u8()?);
                let value = self.byte_string(len)?;
                self.push(value);
            }
            // BINBYTES, SHORT_BINBYTES
            b'B' => {
                let len = self.take_u32()?;
                let len = self.take_len(u64::from(len))?;
                self.take(len)?;
                let value = self.alloc(Obj::Bytes);
                self.push(value);
            }
            b'C' => {
                let len = usize::from(self.take_u8()?);
                self.take(len)?;
                let value = self.alloc(Obj::Bytes);
                self.push(value);
            }
            // NONE, NEWTRUE, NEWFALSE
            b'N' => self.push(Value::None),
            0x88 => self.push(Value::Bool(true)),
            0x89 => self.push(Value::Bool(false)),
            // APPEND, APPENDS
            b'a' => {
                let item = self.pop()?;
                self.append(vec![item])?;
            }
            b'e' => {
                let items = self.pop_mark()?;
                self.append(items)?;
            }
            // SETITEM, SETITEMS
            b's' => {
                let value = self.pop()?;
                let key = self.pop()?;
                self.set_items(vec![key, value])?;
            }
            b'u' => {
                let items = self.pop_mark()?;
                self.set_items(items)?;
            }
            // GLOBAL, STACK_GLOBAL
            b'c' => {
                let module = self.take_line()?;
                let name = self.take_line()?;
                let global = self.alloc(Obj::Global(Box::new((module, name))));
                self.push(global);
            }
            0x93 => {
                let name = self.pop()?;
                let module = self.pop()?;
                let (Some(module), Some(name)) = (self.str_of(module), self.str_of(name)) else {
                    return Err("STACK_GLOBAL names are not strings".into());
                };
                let global = Obj::Global(Box::new((module.to_owned(), name.to_owned())));
                let global = self.alloc(global);
                self.push(global);
            }
            // REDUCE
            b'R' => {
                let args = self.pop()?;
                let callable = self.pop()?;
                let result = self.reduce(callable, args)?;
                self.push(result);
            }
            // NEWOBJ
            0x81 => {
                let args = self.pop()?;
                let class = self.pop()?;
                if !matches!(self.obj(class), Some(Obj::Global(_))) {
                    return Err("NEWOBJ of something that is not a class".into());
                }
                if self.tuple_items(args).is_none() {
                    return Err("NEWOBJ arguments are not a tuple".into());
                }
                let object = self.alloc(Obj::Opaque);
                self.push(object);
            }
            // BUILD: object state (OrderedDict `_metadata`, tensor flags) is not needed.
            b'b' => {
                self.pop()?;
                if !matches!(self.top()?, Value::Obj(_)) {
                    return Err("BUILD on a plain value".into());
                }
            }
            // BINPERSID
            b'Q' => {
                let pid = self.pop()?;
                let storage = self.persistent_load(pid)?;
                self.push(storage);
            }
            other => {
                return Err(format!("opcode 0x{other:02x} is not supported"));
            }
        }
        Ok(None)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A tiny legacy checkpoint built by hand: one 2x3 float tensor stored transposed
    /// (stride (1, 2)) at offset 1 of a 7-element storage.
    fn tiny_checkpoint(stored_numel: i64) -> Vec<u8> {
        let mut out = Vec::new();
        // magic: LONG1 of 10 bytes
        out.extend([0x80, 2, 0x8a, 10]);
        out.extend(&MAGIC_NUMBER.to_le_bytes()[..10]);
        out.push(b'.');
        out.extend([0x80, 2, b'M']);
        out.extend(1001u16.to_le_bytes());
        out.push(b'.');
        out.extend([0x80, 2, b'}', 0x8c, 13]);
        out.extend(b"little_endian");
        out.extend([0x88, b's', b'.']);
        // {"model_state": {"w": _rebuild_tensor_v2(storage, 1, (2, 3), (1, 2), False, None)}}
        out.extend([0x80, 2, b'}', 0x8c, 11]);
        out.extend(b"model_state");
        out.extend(b"ccollections\nOrderedDict\n)R");
        out.extend([0x8c, 1, b'w']);
        out.extend(b"ctorch._utils\n_rebuild_tensor_v2\n(");
        out.extend(b"(X\x07\x00\x00\x00storagectorch\nFloatStorage\n");
        out.extend(b"X\x01\x00\x00\x00kX\x03\x00\x00\x00cpuK\x07Nt");
        out.push(b'Q');
        out.extend(b"K\x01K\x02K\x03\x86K\x01K\x02\x86\x89Nt");
        out.extend(b"Rs"); // tensor into the OrderedDict
        out.extend(b"s."); // OrderedDict into the root dict
        out.extend(b"\x80\x02]X\x01\x00\x00\x00ka.");
        out.extend(stored_numel.to_le_bytes());
        for value in 0..7 {
            out.extend((value as f32).to_le_bytes());
        }
        out
    }

    #[test]
    fn strided_views_are_copied_row_major() {
        let tensors = parse(&tiny_checkpoint(7), "model_state").unwrap();
        assert_eq!(tensors.len(), 1);
        assert_eq!(tensors[0].name, "w");
        assert_eq!(tensors[0].shape, [2, 3]);
        // element (i, j) = storage[1 + i + 2j]
        assert_eq!(tensors[0].data, [1.0, 3.0, 5.0, 2.0, 4.0, 6.0]);
    }

    #[test]
    fn every_truncation_and_size_lie_is_an_error() {
        let good = tiny_checkpoint(7);
        for len in 0..good.len() {
            assert!(parse(&good[..len], "model_state").is_err(), "length {len}");
        }
        let error = parse(&tiny_checkpoint(6), "model_state").unwrap_err();
        assert!(error.contains("holds 6 elements"), "{error}");
        let error = parse(&good, "optimizer_state").unwrap_err();
        assert!(error.contains("no dict entry"), "{error}");
    }

    #[test]
    fn unknown_opcodes_are_named_with_their_offset() {
        let mut bad = tiny_checkpoint(7);
        let at = bad.iter().position(|&b| b == b'R').unwrap();
        bad[at] = 0xff;
        let error = parse(&bad, "model_state").unwrap_err();
        assert!(error.contains("opcode 0xff"), "{error}");
        assert!(error.contains(&format!("at byte {at}")), "{error}");
    }

    #[test]
    fn deep_nesting_does_not_overflow_the_stack() {
        let mut deep = vec![0x80, 2, b'N'];
        deep.extend(std::iter::repeat_n(0x85u8, 200_000));
        deep.push(b'.');
        assert!(parse(&deep, "model_state").is_err());
    }

    #[test]
    fn small_longs_sign_extend() {
        let mut vm = Machine::new(&[0xff, 0x7f, 0x00, 0x80]);
        assert_eq!(vm.long(1).unwrap(), Value::Int(-1));
        assert_eq!(vm.long(1).unwrap(), Value::Int(127));
        assert_eq!(vm.long(2).unwrap(), Value::Int(-32768));
        assert_eq!(vm.long(0).unwrap(), Value::Int(0));
    }
}
