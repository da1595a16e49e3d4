"""Memory tricks of the tensorize core: one decode block read in place, pre-faulted output, banded normalization.

Measured in bench/bench_tensorize.py; each is checked bit-identical to the plain pipeline in the tests.
"""

from __future__ import annotations

import ctypes
import threading
import warnings
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import torch

from tools.tensorize.schema import CHANNELS

PREFAULT_MIN_BYTES = 16 << 20  # float outputs at least this big get their pages faulted in during the decode

_POOL = None
_POOL_LOCK = threading.Lock()


def _workers() -> int:
    """Threads for the normalization pass: as many as torch may use, at most 4 (memory-bound beyond)."""

    return max(1, min(4, torch.get_num_threads()))


def pool():
    global _POOL
    with _POOL_LOCK:
        if _POOL is None:
            _POOL = ThreadPoolExecutor(max_workers=max(2, _workers()), thread_name_prefix="tensorize")
        return _POOL


def faulted_buffer(numel: int):
    """A float32 buffer with its pages already faulted in; run on another core while the JPEG decodes.

    A fresh 100+ MB array otherwise pays its page faults inside the normalization pass.
    """
    import numpy as np

    out = np.empty(numel, np.float32)
    out[::1024] = 0.0  # one write per 4 KiB page faults it in; NumPy releases the GIL meanwhile
    return out


def apply_in_bands(out, src, ops) -> None:
    """`apply_ops` over horizontal bands in parallel (NumPy releases the GIL inside each operation)."""
    workers, h = _workers(), out.shape[1]
    if workers == 1 or out.size < (1 << 21) or h < 2 * workers:
        apply_ops(out, src, ops)
        return
    bands = [slice(h * i // workers, h * (i + 1) // workers) for i in range(workers)]
    jobs = [pool().submit(apply_ops, out[:, rows], src[:, rows], ops) for rows in bands]
    for job in jobs:
        job.result()


def apply_ops(out, src, ops, chunk_bytes: int = 1 << 19) -> None:
    """out = ops(float32(src)) in row blocks small enough to stay in cache: src is read once, out written once.

    Each op is one IEEE float32 operation with a per-channel constant, the same operations as torch's
    `x.float() / 255` and `(x - mean) / std`, so the values are bit-identical to the by-hand pipeline.
    """
    import numpy as np

    c, h, w = out.shape
    consts = [(fn, np.asarray(values, dtype=np.float32).reshape(c, 1, 1)) for fn, values in ops]
    rows = max(1, chunk_bytes // (4 * w * c))
    for r0 in range(0, h, rows):
        o = out[:, r0 : r0 + rows]
        np.copyto(o, src[:, r0 : r0 + rows], casting="safe")
        for fn, k in consts:
            fn(o, k, out=o)


def single_block(im: Any) -> None:
    """Have Pillow decode into one contiguous block, so that `uint8_view` can read it without a copy."""
    from PIL import Image

    new_block = getattr(Image.core, "new_block", None)
    if new_block is None or im.format not in ("JPEG", "PNG") or im.mode not in CHANNELS:
        return
    if getattr(im, "_im", None) is not None or not im.tile:
        return  # no tile: no pixel data at all, which decode() must refuse (a preset block would pass as zeros)
    try:
        im.im = new_block(im.mode, im.size)
    except (ValueError, MemoryError, OSError):
        return


class _ArrowArray(ctypes.Structure):
    pass


_ArrowArray._fields_ = [
    ("length", ctypes.c_int64),
    ("null_count", ctypes.c_int64),
    ("offset", ctypes.c_int64),
    ("n_buffers", ctypes.c_int64),
    ("n_children", ctypes.c_int64),
    ("buffers", ctypes.POINTER(ctypes.c_void_p)),
    ("children", ctypes.POINTER(ctypes.POINTER(_ArrowArray))),
    ("dictionary", ctypes.c_void_p),
    ("release", ctypes.c_void_p),
    ("private_data", ctypes.c_void_p),
]


# Our own prototype of PyCapsule_GetPointer (setting restype on ctypes.pythonapi's would change it for everyone).
_CAPSULE_POINTER = ctypes.PYFUNCTYPE(ctypes.c_void_p, ctypes.py_object, ctypes.c_char_p)(
    ("PyCapsule_GetPointer", ctypes.pythonapi)
)


def _capsule_pointer(capsule: Any, name: bytes) -> int:
    return _CAPSULE_POINTER(capsule, name)


def uint8_view(im: Any):
    """(H, W, C) uint8 tensor of the pixels and an object that keeps their memory alive.

    Zero-copy through the Arrow C data interface when Pillow holds the image in one block (RGB is stored
    as 4 bytes a pixel, so the view skips the pad byte); otherwise one copy through NumPy.
    """
    import numpy as np

    w, h = im.size
    c = len(im.getbands())
    try:
        schema, array = im.__arrow_c_array__()
        arr = _ArrowArray.from_address(_capsule_pointer(array, b"arrow_array"))
        node = arr.children[0].contents if arr.n_children == 1 else arr
        width = 1 if arr.n_children == 0 else 4
        ok = arr.length == w * h and arr.offset == 0 and node.offset == 0 and node.length == w * h * width
        if ok and node.n_buffers == 2 and node.buffers[1] and (c == 1) == (width == 1):
            buf = (ctypes.c_uint8 * (w * h * width)).from_address(node.buffers[1])
            a = np.frombuffer(buf, dtype=np.uint8).reshape(h, w, width)[..., :c]
            return torch.from_numpy(a), (schema, array, im)
    except (ValueError, AttributeError, OSError, TypeError):
        pass
    with warnings.catch_warnings():  # the array is read-only; we only read it
        warnings.simplefilter("ignore", UserWarning)
        a = np.asarray(im)
        return torch.from_numpy(a.reshape(h, w, c)), a
