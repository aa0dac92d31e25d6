"""Small helpers shared by the golden-data generators (see make-golden.sh)."""
from __future__ import annotations

import hashlib
import importlib.metadata
import os

import numpy as np


def versions() -> str:
    return f"gguf {importlib.metadata.version('gguf')}, numpy {np.__version__}"


def f32_digest(arr: np.ndarray) -> str:
    """sha256 of the array as contiguous little-endian f32 in C (row-major, ggml ne0-fastest) order."""
    a = np.ascontiguousarray(arr, dtype="<f4")
    return hashlib.sha256(memoryview(a).cast("B")).hexdigest()


def write_atomic(path: str, data: bytes | str) -> None:
    """Write via a temp file + rename so an interrupted run never leaves a half-written golden."""
    os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
    tmp = path + ".tmp"
    mode = "w" if isinstance(data, str) else "wb"
    kw = {"encoding": "utf-8", "newline": "\n"} if isinstance(data, str) else {}
    with open(tmp, mode, **kw) as f:
        f.write(data)
    os.replace(tmp, path)
