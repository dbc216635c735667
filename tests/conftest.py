from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ.setdefault("OMP_NUM_THREADS", "2")


def _shared_datasets() -> Path | None:
    env = os.environ.get("SKDEFECT_DATASETS")
    candidates = [Path(env)] if env else []
    here = Path(__file__).resolve()
    candidates += [p / "shared" / "datasets" for p in here.parents]
    for c in candidates:
        if c.is_dir():
            return c
    return None


@pytest.fixture(scope="session")
def shared_datasets() -> Path:
    """The folder holding magnetic_tile/ and crackforest/, or a clean skip."""
    path = _shared_datasets()
    if path is None:
        pytest.skip("../shared/datasets not found (set SKDEFECT_DATASETS to run these tests)")
    return path


# -- tiny estimators: the shared starting point of the tests that train (each module sets its epochs) -----------
def tiny_two_stage(**params):  # noqa: ANN003, ANN201
    """A ``ConcentratedTwoStageDetector`` small enough for a test: width 1/4, 2 + 2 epochs, batch 8, CPU, seed 0;
    ``params`` override."""
    from skdefect import ConcentratedTwoStageDetector

    defaults = dict(width=0.25, seg_epochs=2, dec_epochs=2, batch_size=8, random_state=0, device="cpu")
    return ConcentratedTwoStageDetector(**{**defaults, **params})


def tiny_gan(**params):  # noqa: ANN003, ANN201
    """A ``DualDiscriminatorGANDetector`` small enough for a test: width 1/4, 3 epochs, batch 8, CPU, seed 0;
    ``params`` override."""
    from skdefect import DualDiscriminatorGANDetector

    defaults = dict(width=0.25, epochs=3, batch_size=8, random_state=0, device="cpu")
    return DualDiscriminatorGANDetector(**{**defaults, **params})
