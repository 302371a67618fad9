"""Minimal, dependency-free (numpy + torch) safetensors reader/writer.

File layout (https://github.com/huggingface/safetensors):
  * 8 bytes: little-endian uint64 N, the length of the JSON header;
  * N bytes: UTF-8 JSON object  name -> {"dtype", "shape", "data_offsets": [begin, end]}
    plus an optional "__metadata__" object of string -> string;
  * the raw little-endian tensor data; offsets are relative to the start of
    this data block.

The writer pads the header with trailing spaces so that the data block starts
at an 8-byte aligned file offset, writes tensors contiguously in the order of
the given dict, and emits compact JSON, so the output is byte-for-byte
deterministic.

Supported dtypes: F32, F16, BF16 (float tensors), F64, I64, I32 and BOOL
(one byte per element, 0 or 1; read and written as themselves).
"""

import json
import struct
from collections import OrderedDict

import numpy as np
import torch

_FLOAT_DTYPES = ("F32", "F16", "BF16")


def _f32_to_bf16_bits(a):
    """float32 ndarray -> uint16 ndarray of bfloat16 bits, round-to-nearest-even."""
    a = np.ascontiguousarray(a, dtype="<f4")
    u = a.view("<u4").astype(np.uint64)
    rounding = ((u >> 16) & 1) + 0x7FFF
    out = ((u + rounding) >> 16).astype(np.uint16)
    nan = np.isnan(a)
    if nan.any():  # keep NaNs NaN (quiet), the carry above could turn them into inf
        out[nan] = ((u[nan] >> 16) | 0x40).astype(np.uint16)
    return out


def _encode(t, dtype):
    """Return (safetensors dtype string, raw little-endian bytes) for tensor t."""
    t = t.detach().cpu().contiguous()
    if t.is_floating_point():
        # float64 inputs are first rounded to float32, then (for F16/BF16) to
        # the storage dtype with round-to-nearest-even.
        a = t.to(torch.float32).numpy().astype("<f4")
        if dtype == "F32":
            return "F32", a.tobytes()
        if dtype == "F16":
            return "F16", a.astype("<f2").tobytes()
        if dtype == "BF16":
            return "BF16", _f32_to_bf16_bits(a).astype("<u2").tobytes()
        if dtype == "F64":
            return "F64", t.to(torch.float64).numpy().astype("<f8").tobytes()
        raise ValueError("unsupported float dtype %r" % (dtype,))
    if t.dtype == torch.int64:
        return "I64", t.numpy().astype("<i8").tobytes()
    if t.dtype == torch.int32:
        return "I32", t.numpy().astype("<i4").tobytes()
    if t.dtype == torch.bool:
        return "BOOL", t.numpy().astype(np.uint8).tobytes()
    raise ValueError("unsupported tensor dtype %s" % (t.dtype,))


def write_safetensors(path, tensors, dtype="F32", metadata=None, dtype_overrides=None):
    """Write an ordered dict name -> torch.Tensor to `path`.

    Float tensors are stored as `dtype` ("F32", "F16" or "BF16"; "F64" also
    accepted); int64/int32/bool tensors are stored as I64/I32/BOOL.  `dtype_overrides`
    (optional dict name -> dtype) gives individual float tensors another
    storage dtype.  The order of the dict is kept in the header and in the
    data block.  `metadata` is an optional dict of str -> str stored as
    "__metadata__".  Returns the size in bytes of the data block.
    """
    dtype_overrides = dtype_overrides or {}
    header = OrderedDict()
    if metadata:
        header["__metadata__"] = OrderedDict((str(k), str(v)) for k, v in metadata.items())
    blobs = []
    offset = 0
    for name, t in tensors.items():
        if not isinstance(t, torch.Tensor):
            t = torch.as_tensor(t)
        st_dtype, raw = _encode(t, dtype_overrides.get(name, dtype))
        header[name] = OrderedDict(
            [("dtype", st_dtype), ("shape", list(t.shape)), ("data_offsets", [offset, offset + len(raw)])]
        )
        blobs.append(raw)
        offset += len(raw)
    hjson = json.dumps(header, separators=(",", ":")).encode("utf-8")
    hjson += b" " * ((-(8 + len(hjson))) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(hjson)))
        f.write(hjson)
        for raw in blobs:
            f.write(raw)
    return offset  # number of data bytes


def read_header(path):
    """Return (header OrderedDict without __metadata__, metadata dict, data start offset)."""
    with open(path, "rb") as f:
        (n,) = struct.unpack("<Q", f.read(8))
        header = json.loads(f.read(n).decode("utf-8"), object_pairs_hook=OrderedDict)
    meta = header.pop("__metadata__", {}) or {}
    return header, meta, 8 + n


_NP = {"F32": "<f4", "F16": "<f2", "F64": "<f8", "I64": "<i8", "I32": "<i4", "BF16": "<u2", "BOOL": "|u1"}


def read_safetensors(path, with_metadata=False):
    """Read a safetensors file into an OrderedDict name -> torch.Tensor.

    F32/F16/F64/I64/I32 come back as torch.float32/float16/float64/int64/int32,
    BF16 as torch.bfloat16 (bit-exact), BOOL as torch.bool.  With with_metadata=True returns
    (tensors, metadata).
    """
    header, meta, start = read_header(path)
    with open(path, "rb") as f:
        f.seek(start)
        data = f.read()
    out = OrderedDict()
    for name, info in header.items():
        dt = info["dtype"]
        if dt not in _NP:
            raise ValueError("%s: unsupported dtype %s" % (name, dt))
        b, e = info["data_offsets"]
        a = np.frombuffer(data[b:e], dtype=_NP[dt]).reshape(info["shape"]).copy()
        if dt == "BF16":
            t = torch.from_numpy(a.view(np.int16)).view(torch.bfloat16)
        elif dt == "BOOL":
            if not ((a == 0) | (a == 1)).all():
                raise ValueError("%s: BOOL bytes must be 0 or 1" % name)
            t = torch.from_numpy(a.astype(np.bool_))
        else:
            t = torch.from_numpy(a.astype(a.dtype.newbyteorder("=")))
        out[name] = t
    if with_metadata:
        return out, meta
    return out


def write_safetensors_streaming(path, shapes, produce, dtype="BF16", metadata=None):
    """Write a float safetensors file one tensor at a time, for checkpoints too large to hold twice.

    `shapes` is an ordered dict name -> shape; `produce(name)` returns that tensor (any float
    dtype), called once per name in order and stored as `dtype` ("F32", "F16" or "BF16") with the
    same rounding as write_safetensors.  Returns the size in bytes of the data block.
    """
    width = {"F32": 4, "F16": 2, "BF16": 2}[dtype]
    header = OrderedDict()
    if metadata:
        header["__metadata__"] = OrderedDict((str(k), str(v)) for k, v in metadata.items())
    offset = 0
    for name, shape in shapes.items():
        size = width * int(np.prod(shape, dtype=np.int64))
        header[name] = OrderedDict([("dtype", dtype), ("shape", list(shape)), ("data_offsets", [offset, offset + size])])
        offset += size
    hjson = json.dumps(header, separators=(",", ":")).encode("utf-8")
    hjson += b" " * ((-(8 + len(hjson))) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(hjson)))
        f.write(hjson)
        for name, shape in shapes.items():
            t = produce(name)
            if list(t.shape) != list(shape):
                raise ValueError("%s: produced shape %s, declared %s" % (name, list(t.shape), list(shape)))
            f.write(_encode(t, dtype)[1])
    return offset
