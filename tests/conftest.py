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
