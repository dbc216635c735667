"""A class-weighted (over-sampling) minibatch sampler.

It follows skdefect's sampler contract (see
:func:`skdefect.plugins.hookspecs.skdefect_register_samplers`): an object with
``epoch_indices(y, features=None) -> ndarray`` listing the training indices of one
epoch in visiting order, deterministic for a fixed ``random_state``.
"""

from __future__ import annotations

import math
from numbers import Integral, Real
from typing import Any

import numpy as np

__all__ = ["ClassWeightedSampler", "make_class_weighted"]


def _check_labels(y: Any) -> np.ndarray:
    y = np.asarray(y)
    if y.ndim != 1:
        raise ValueError(f"y must be a 1-D array of 0/1 labels, got shape {y.shape}")
    if y.size and not np.isin(y, (0, 1)).all():
        raise ValueError(f"y must hold 0/1 labels, got values {np.unique(y)[:5].tolist()}")
    return y.astype(np.int64, copy=False)


class _Cycle:
    """Draws from a pool in least-recently-used order: a fresh shuffle each time it runs dry."""

    def __init__(self, pool: np.ndarray, rng: np.random.RandomState) -> None:
        self.pool, self.rng = pool, rng
        self.queue = rng.permutation(pool)

    def take(self, k: int) -> np.ndarray:
        out = []
        while k > 0:
            if len(self.queue) == 0:
                self.queue = self.rng.permutation(self.pool)
            chunk, self.queue = self.queue[:k], self.queue[k:]
            out.append(chunk)
            k -= len(chunk)
        return np.concatenate(out) if out else np.empty(0, dtype=np.int64)


class ClassWeightedSampler:
    """Epochs of a fixed length with a fixed share of defective images.

    Every epoch visits ``epoch_size`` images (default: the training-set size), of
    which ``round(pos_fraction · epoch_size)`` are defective (y = 1) and the rest
    normal. Inside each class the images are drawn in least-recently-used order
    across epochs: every image of a class is visited once before any is visited
    again, so a rare class is *over-sampled* (repeated within an epoch) rather than
    the common class under-sampled. The epoch is then shuffled.

    Compared with skdefect's ``"balanced"`` sampler (an epoch of twice the
    minority-class size), the epoch keeps its length however rare defects are, and
    the defect share is a parameter. With only one class present an epoch is every
    image once, shuffled.

    Parameters
    ----------
    pos_fraction : float, default=0.5
        Share of defective images per epoch, in (0, 1).
    epoch_size : int or None, default=None
        Images per epoch; None means ``len(y)``.
    random_state : int, RandomState instance or None, default=None
        Seeds the draws; the same seed gives the same sequence of epochs.

    Attributes
    ----------
    indices_ : ndarray of shape (epoch_size,)
        The indices of the last epoch, in visiting order.
    """

    def __init__(
        self,
        pos_fraction: float = 0.5,
        epoch_size: int | None = None,
        random_state: int | np.random.RandomState | None = None,
    ) -> None:
        if (
            isinstance(pos_fraction, bool)
            or not isinstance(pos_fraction, Real)
            or not 0.0 < float(pos_fraction) < 1.0
        ):
            raise ValueError(f"pos_fraction must be a number in (0, 1), got {pos_fraction!r}")
        if epoch_size is not None and (
            isinstance(epoch_size, bool) or not isinstance(epoch_size, Integral) or epoch_size < 2
        ):
            raise ValueError(f"epoch_size must be an int >= 2 or None, got {epoch_size!r}")
        self.pos_fraction = float(pos_fraction)
        self.epoch_size = epoch_size
        self.random_state = random_state
        if isinstance(random_state, np.random.RandomState):
            self._rng = random_state
        else:
            self._rng = np.random.RandomState(random_state)
        self._key: bytes | None = None
        self._cycles: tuple[_Cycle, _Cycle] | None = None

    def epoch_indices(self, y: Any, features: np.ndarray | None = None) -> np.ndarray:
        """Indices of one epoch, in visiting order.

        Parameters
        ----------
        y : array-like of shape (n_samples,)
            0/1 labels of the training images.
        features : ndarray, optional
            Ignored (part of the sampler contract).

        Returns
        -------
        ndarray of int64, shape (epoch_size,)
        """
        y = _check_labels(y)
        pos, neg = np.flatnonzero(y == 1), np.flatnonzero(y == 0)
        if len(pos) == 0 or len(neg) == 0:
            self.indices_ = self._rng.permutation(len(y)).astype(np.int64)
            return self.indices_
        key = y.tobytes()
        if self._key != key:  # new training set: restart the least-recently-used cycles
            self._key, self._cycles = key, (_Cycle(neg, self._rng), _Cycle(pos, self._rng))
        assert self._cycles is not None
        size = len(y) if self.epoch_size is None else int(self.epoch_size)
        n_pos = min(max(int(math.floor(self.pos_fraction * size + 0.5)), 1), size - 1)
        chosen = np.concatenate([self._cycles[1].take(n_pos), self._cycles[0].take(size - n_pos)])
        self.indices_ = self._rng.permutation(chosen).astype(np.int64)
        return self.indices_


def make_class_weighted(random_state: Any = None, pos_fraction: float = 0.5,
                        epoch_size: int | None = None) -> ClassWeightedSampler:
    """Factory of :class:`ClassWeightedSampler` (registered as ``"class_weighted"``).

    skdefect offers ``random_state``; the other parameters keep their defaults unless
    a wrapping factory sets them.

    Returns
    -------
    ClassWeightedSampler
    """
    return ClassWeightedSampler(pos_fraction=pos_fraction, epoch_size=epoch_size, random_state=random_state)
