"""skdefect: scikit-learn-compatible deep surface-defect and anomaly detectors."""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version
from typing import Any

try:
    __version__ = version("skdefect")
except PackageNotFoundError:  # a source tree that was never installed
    __version__ = "0.0.0+unknown"

__all__ = ["ConcentratedTwoStageDetector", "DualDiscriminatorGANDetector", "__version__", "load"]

_LAZY = {
    "ConcentratedTwoStageDetector": "skdefect.two_stage",
    "DualDiscriminatorGANDetector": "skdefect.gan",
    "load": "skdefect.persistence",
}


def __getattr__(name: str) -> Any:  # imported on first use: `skdefect plugins` stays quick
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'skdefect' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(__all__)
