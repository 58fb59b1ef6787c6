"""The header of a ``model.safetensors`` file, read and checked before any tensor is.

A safetensors file is an 8-byte little-endian header length N, N bytes of JSON naming every
tensor's dtype, shape and byte range, then the tensors' bytes back to back
(https://github.com/huggingface/safetensors#format). Reading the header ourselves, with bounds
on N and on every range, turns a truncated, garbage or hand-edited file into one message that
names the file and what is wrong, before the library maps it.
"""

from __future__ import annotations

import json
import math
import struct
from dataclasses import dataclass
from pathlib import Path

from midiforge.errors import MidiforgeError

HEADER_LENGTH_BYTES = 8
MAX_HEADER_BYTES = 100 * 2**20  # the safetensors library's own limit
METADATA_KEY = "__metadata__"
DTYPE_BYTES = {
    "F64": 8, "F32": 4, "F16": 2, "BF16": 2, "F8_E4M3": 1, "F8_E5M2": 1,
    "I64": 8, "I32": 4, "I16": 2, "I8": 1, "U64": 8, "U32": 4, "U16": 2, "U8": 1, "BOOL": 1,
}  # fmt: skip
FLOAT_DTYPES = frozenset({"F64", "F32", "F16", "BF16"})  # what model weights may be stored as


@dataclass(frozen=True)
class TensorEntry:
    """One tensor as the header states it."""

    dtype: str
    shape: tuple[int, ...]
    begin: int  # byte offset in the data section
    end: int


def _damaged(path: Path, what: str) -> MidiforgeError:
    return MidiforgeError(
        f"{path}: damaged weights file, not loaded ({what}); restore it or train the run again"
    )


def _entry(path: Path, name: str, spec: object) -> TensorEntry:
    if not isinstance(spec, dict):
        raise _damaged(path, f"tensor {name!r} is described by {spec!r}")
    dtype, shape, offsets = spec.get("dtype"), spec.get("shape"), spec.get("data_offsets")
    if dtype not in DTYPE_BYTES:
        raise _damaged(path, f"tensor {name!r} has unknown dtype {dtype!r}")
    ok_shape = isinstance(shape, list) and all(
        isinstance(n, int) and not isinstance(n, bool) and n >= 0 for n in shape
    )
    ok_offsets = (
        isinstance(offsets, list)
        and len(offsets) == 2
        and all(isinstance(n, int) and not isinstance(n, bool) for n in offsets)
        and 0 <= offsets[0] <= offsets[1]
    )
    if not (ok_shape and ok_offsets):
        raise _damaged(path, f"tensor {name!r} has shape {shape!r} and byte range {offsets!r}")
    if (offsets[1] - offsets[0]) != math.prod(shape) * DTYPE_BYTES[dtype]:
        raise _damaged(
            path, f"tensor {name!r} of shape {shape} {dtype} does not fill its byte range {offsets}"
        )
    return TensorEntry(dtype, tuple(shape), offsets[0], offsets[1])


def read_header(path: str | Path) -> tuple[dict[str, TensorEntry], dict[str, str]]:
    """``({tensor name: entry}, metadata)`` of a safetensors file, every byte range checked.

    Raises :class:`MidiforgeError` naming the file for a missing, truncated or garbage file.
    """
    path = Path(path)
    if not path.is_file():
        raise MidiforgeError(f"weights file not found: {path}")
    size = path.stat().st_size
    with path.open("rb") as fh:
        head = fh.read(HEADER_LENGTH_BYTES)
        if len(head) < HEADER_LENGTH_BYTES:
            raise _damaged(path, f"{size} bytes, too short for a safetensors header")
        (length,) = struct.unpack("<Q", head)
        if length > min(MAX_HEADER_BYTES, size - HEADER_LENGTH_BYTES):
            raise _damaged(path, f"the header claims {length} bytes, the file has {size}")
        raw = fh.read(length)
    try:
        header = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        raise _damaged(path, "the header is not JSON") from None
    if not isinstance(header, dict):
        raise _damaged(path, "the header is not a JSON object")
    metadata = header.pop(METADATA_KEY, None) or {}
    if not isinstance(metadata, dict):
        raise _damaged(path, "its metadata is not a JSON object")
    entries = {str(name): _entry(path, name, spec) for name, spec in header.items()}
    data_bytes = size - HEADER_LENGTH_BYTES - length
    covered = 0
    for name, entry in sorted(entries.items(), key=lambda item: item[1].begin):
        if entry.begin != covered:  # the library wants the ranges back to back, from 0
            raise _damaged(path, f"tensor {name!r} starts at byte {entry.begin}, not {covered}")
        covered = entry.end
    if covered != data_bytes:
        state = "truncated" if covered > data_bytes else "longer than its tensors"
        raise _damaged(path, f"{state}: the tensors need {covered} bytes, {data_bytes} are there")
    return entries, {str(k): str(v) for k, v in metadata.items()}
