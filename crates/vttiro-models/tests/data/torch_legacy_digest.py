"""Independent reader for legacy (non-zip) PyTorch checkpoints, using only the standard
library: Python's own pickle machinery walks the file, with `persistent_load` and
`find_class` standing in for torch. Prints one JSON object per tensor of the chosen
top-level dict: name, shape and the sha256 of its float32 elements in row-major order,
little-endian. The Rust reader's output is compared against this in tests.

usage: torch_legacy_digest.py CHECKPOINT KEY
"""

import array
import collections
import hashlib
import json
import pickle
import struct
import sys

ELEMENT_SIZES = {
    "DoubleStorage": 8, "FloatStorage": 4, "HalfStorage": 2, "BFloat16Storage": 2,
    "LongStorage": 8, "IntStorage": 4, "ShortStorage": 2, "CharStorage": 1,
    "ByteStorage": 1, "BoolStorage": 1,
}


class StorageType:
    def __init__(self, name):
        self.name = name


class Storage:
    def __init__(self, type_name, key, numel, view):
        self.type_name = type_name
        self.key = key
        self.numel = numel
        self.view = view  # (view_key, offset, size) or None


class Tensor:
    def __init__(self, storage, offset, size, stride):
        self.storage = storage
        self.offset = offset
        self.size = tuple(size)
        self.stride = tuple(stride)


def rebuild_tensor(storage, offset, size, stride, *_rest):
    return Tensor(storage, offset, size, stride)


class Opaque:
    def __init__(self, *args, **kwargs):
        pass

    def __setstate__(self, state):
        pass


class CheckpointUnpickler(pickle.Unpickler):
    def find_class(self, module, name):
        if (module, name) == ("collections", "OrderedDict"):
            return collections.OrderedDict
        if module == "torch._utils" and name in ("_rebuild_tensor_v2", "_rebuild_tensor"):
            return rebuild_tensor
        if module == "torch" and name.endswith("Storage"):
            return StorageType(name)
        return Opaque

    def persistent_load(self, pid):
        tag, storage_type, key, _location, numel = pid[:5]
        view = pid[5] if len(pid) > 5 else None
        assert tag == "storage", pid
        return Storage(storage_type.name, key, numel, view)


def main():
    path, top_key = sys.argv[1], sys.argv[2]
    with open(path, "rb") as f:
        magic = pickle.load(f)
        assert magic == 0x1950A86A20F9469CFC6C, magic
        assert pickle.load(f) == 1001
        sys_info = pickle.load(f)
        assert sys_info.get("little_endian", True)
        root = CheckpointUnpickler(f).load()
        keys = pickle.load(f)
        # Storage types come from the tensors that reference them.
        types = {}
        def note(value):
            if isinstance(value, Tensor):
                types[value.storage.key] = value.storage.type_name
            elif isinstance(value, dict):
                for item in value.values():
                    note(item)
            elif isinstance(value, (list, tuple)):
                for item in value:
                    note(item)
        note(root)
        raw = {}
        for key in keys:
            (numel,) = struct.unpack("<q", f.read(8))
            size = ELEMENT_SIZES[types[key]]
            raw[key] = f.read(numel * size)
            assert len(raw[key]) == numel * size, key

    for name, tensor in root[top_key].items():
        assert tensor.storage.type_name == "FloatStorage", name
        values = array.array("f")
        values.frombytes(raw[tensor.storage.key])
        base = tensor.offset
        if tensor.storage.view is not None:
            base += tensor.storage.view[1]
        out = array.array("f")
        count = 1
        for dim in tensor.size:
            count *= dim
        for flat in range(count):
            at, rest = base, flat
            for dim, step in zip(reversed(tensor.size), reversed(tensor.stride)):
                at += (rest % dim) * step
                rest //= dim
            out.append(values[at])
        if sys.byteorder != "little":
            out.byteswap()
        print(json.dumps({
            "name": name,
            "shape": list(tensor.size),
            "sha256": hashlib.sha256(out.tobytes()).hexdigest(),
        }))


if __name__ == "__main__":
    main()
