"""Helpers the benchmark scripts share."""

from __future__ import annotations

import json
import platform
from collections.abc import Callable
from pathlib import Path

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


def run_and_write(run: Callable[..., dict], table: Callable[[dict], str], out: str | Path, name: str) -> dict:
    """``run(on_row=write)`` writing ``name.json`` and ``name.md`` to ``out`` after every run and at the end.

    An interrupted benchmark keeps what it measured; the tables say which seeds completed.
    """
    folder = Path(out)
    folder.mkdir(parents=True, exist_ok=True)

    def write(result: dict) -> None:
        (folder / f"{name}.json").write_text(json.dumps(result, indent=1))
        (folder / f"{name}.md").write_text(table(result))

    result = run(on_row=write)
    write(result)
    print(table(result))
    return result
