"""Where and how the networks run: device, precision, ``torch.compile`` and seeding."""

from __future__ import annotations

import contextlib
import os
import shutil
from collections.abc import Iterator
from typing import Any

import numpy as np
import torch
from sklearn.utils import check_random_state

__all__ = ["COMPILE_MODES", "resolve_compile", "resolve_device", "resolve_precision", "seeded"]


def resolve_device(device: str) -> torch.device:
    """``"auto"`` → CUDA when available, else CPU; anything else as torch reads it."""
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        dev = torch.device(device)
    except RuntimeError as exc:  # torch's own message, kept after ours
        raise ValueError(
            f"device must be 'auto' or a torch device such as 'cpu', 'cuda' or 'cuda:0'; got {device!r} ({exc})"
        ) from None
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device={device!r} was asked for but CUDA is not available; use 'auto' or 'cpu'")
    return dev


_PRECISIONS: dict[str, torch.dtype | None] = {"fp32": None, "bf16": torch.bfloat16, "fp16": torch.float16}


def resolve_precision(precision: str, device: torch.device) -> torch.dtype | None:
    """``"auto"`` is bf16 autocast on CUDA and fp32 on the CPU."""
    if precision == "auto":
        return torch.bfloat16 if device.type == "cuda" else None
    return _PRECISIONS[precision]


#: ``torch.compile`` modes an estimator's ``compile`` parameter may name (``True`` is ``"default"``).
COMPILE_MODES = ("default", "reduce-overhead", "max-autotune", "max-autotune-no-cudagraphs")


def _cpp_compiler() -> str | None:
    """The C++ compiler TorchInductor would build CPU kernels with (``$CXX``, else the usual names), or None."""
    for name in (os.environ.get("CXX"), "g++", "c++", "clang++"):
        if name and shutil.which(name):
            return name
    return None


def resolve_compile(compile: bool | str, device: torch.device) -> str | None:
    """The ``torch.compile`` mode of a ``compile`` parameter, None for eager execution.

    Compiling on the CPU builds C++ kernels: without a compiler the first forward pass
    would fail deep inside TorchInductor, so that is refused here, before any training.
    """
    if not isinstance(compile, str) and not compile:
        return None
    mode = compile if isinstance(compile, str) else "default"
    if mode not in COMPILE_MODES:
        raise ValueError(f"compile must be a bool or one of {list(COMPILE_MODES)}, got {compile!r}")
    if device.type == "cpu" and _cpp_compiler() is None:
        raise ValueError(
            f"compile={compile!r} on the CPU needs a C++ compiler for TorchInductor's kernels (set $CXX or "
            "install g++); none was found. Use compile=False."
        )
    return mode


@contextlib.contextmanager
def seeded(random_state: Any) -> Iterator[int]:
    """Seed torch (CPU and CUDA) inside the block without touching the caller's RNG state."""
    if isinstance(random_state, (int, np.integer)):
        seed = int(random_state)
    else:  # None or a RandomState: draw a seed from it, as sklearn estimators do
        seed = int(check_random_state(random_state).randint(np.iinfo(np.int32).max))
    devices = list(range(torch.cuda.device_count())) if torch.cuda.is_available() else []
    with torch.random.fork_rng(devices=devices):
        torch.manual_seed(seed)
        yield seed
