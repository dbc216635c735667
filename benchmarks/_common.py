"""Helpers the benchmark scripts share."""

from __future__ import annotations

import platform

import torch


def device_name() -> str:
    """The device's own name: the CUDA device's, or the CPU model with its thread count."""
    if torch.cuda.is_available():
        return torch.cuda.get_device_name()
    try:
        with open("/proc/cpuinfo") as f:
            model = next(line.split(":", 1)[1].strip() for line in f if line.startswith("model name"))
    except (OSError, StopIteration):
        model = platform.processor() or "unknown"
    return f"cpu ({model}, {torch.get_num_threads()} threads)"
