"""Which checkpoint file belongs to which fit: a hash of the estimator's class, its parameters and the data.

This is estimator-side knowledge (it reads scikit-learn's ``get_params``), so it lives outside the
training package; the files themselves are written by :mod:`skdefect.training.checkpoint`.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

#: Estimator parameters that do not change what training computes, so a checkpoint ignores them.
CHECKPOINT_IGNORED_PARAMS = frozenset({"callbacks", "checkpoint_dir", "compile", "device", "verbose"})


def _stable_repr(value: Any) -> str:
    """A repr that is the same in every process: generators are named by type (their state is checkpointed)."""
    if isinstance(value, (np.random.RandomState, np.random.Generator)):
        return type(value).__name__
    return repr(value)


def data_fingerprint(
    images: Any, y: np.ndarray | None = None, masks: np.ndarray | None = None, groups: np.ndarray | None = None
) -> str:
    """Hash of the training data: every image (read a chunk at a time), the labels, the masks and the groups
    (which choose the validation images; a fit without them hashes as before they existed)."""
    h = hashlib.blake2b(digest_size=16)
    h.update(repr((tuple(images.image_shape), len(images), str(images.dtype))).encode())
    for start in range(0, len(images), 256):
        h.update(np.ascontiguousarray(images.raw(slice(start, start + 256))).tobytes())
    for array in (y, masks):
        h.update(b"|" if array is None else np.ascontiguousarray(array).tobytes())
    if groups is not None:
        h.update(b"groups" + np.ascontiguousarray(groups, dtype=np.int64).tobytes())
    return h.hexdigest()


def checkpoint_location(
    directory: str | os.PathLike[str], estimator: str, params: Mapping[str, Any], data_digest: str
) -> tuple[Path, dict[str, Any]]:
    """Where the checkpoint of one training run lives, and the metadata that must match to resume it.

    The file name carries a hash of the estimator's class, its parameters (except
    :data:`CHECKPOINT_IGNORED_PARAMS`) and the data, so one directory can hold the runs of a
    whole grid search: every (parameters, fold) pair has its own file.
    """
    meta = {
        "estimator": estimator,
        "params": {k: _stable_repr(v) for k, v in sorted(params.items()) if k not in CHECKPOINT_IGNORED_PARAMS},
        "data": data_digest,
    }
    key = hashlib.blake2b(json.dumps(meta, sort_keys=True).encode(), digest_size=8).hexdigest()
    return Path(directory) / f"{estimator}-{key}.ckpt", meta


def checkpoint_for(
    estimator: Any, images: Any, y: np.ndarray | None = None, masks: np.ndarray | None = None,
    groups: np.ndarray | None = None,
) -> tuple[Path | None, dict[str, Any] | None]:
    """``(path, meta)`` of an estimator's checkpoint for this data, or ``(None, None)`` without ``checkpoint_dir``."""
    directory = getattr(estimator, "checkpoint_dir", None)
    if directory is None:
        return None, None
    digest = data_fingerprint(images, y, masks, groups)
    return checkpoint_location(directory, type(estimator).__name__, estimator.get_params(deep=False), digest)
