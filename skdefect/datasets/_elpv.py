"""The ELPV solar-cell electroluminescence dataset, from the ``elpv-dataset`` PyPI package."""

from __future__ import annotations

import numbers
from collections.abc import Callable
from typing import Any

import numpy as np
from PIL import Image

from ._common import check_image_shape

__all__ = ["load_elpv"]

_CELL_TYPES = ("mono", "poly")
#: Tolerance on probability comparisons (the labels file stores 1/3 and 2/3 as rounded decimals).
_TOL = 1e-6


def _elpv_loader() -> Callable[[], tuple[Any, Any, Any]]:
    try:
        from elpv_dataset.utils import load_dataset
    except ImportError:
        try:
            from elpv_dataset.utils.elpv_reader import load_dataset
        except ImportError as exc:
            raise ImportError(
                "load_elpv needs the optional dependency elpv-dataset (a 90 MB wheel); install it with "
                "`pip install skdefect[datasets]` (or `pip install elpv-dataset`)."
            ) from exc
    return load_dataset


def _check_probability(value: Any, arg: str) -> float:
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Real):
        raise TypeError(f"{arg} must be a float in [0, 1]; got {type(value).__name__} {value!r}.")
    if not 0.0 <= float(value) <= 1.0:
        raise ValueError(f"{arg} must be a float in [0, 1]; got {value!r}.")
    return float(value)


def load_elpv(
    *,
    image_shape: tuple[int, int] | None = (300, 300),
    normal_max: float = 0.0,
    defective_min: float = 2 / 3,
    cell_type: str | None = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Load the ELPV solar-cell images as a binary defect set (no masks).

    Data: 2,624 gray 300x300 electroluminescence images of mono- and polycrystalline solar cells, each rated by
    experts with a defect probability in {0, 1/3, 2/3, 1}, from the PyPI package ``elpv-dataset``
    (``pip install skdefect[datasets]``). Licence: CC BY-NC-SA 4.0 (non-commercial). Cite Buerhop-Lutz et al.
    (2018), "A benchmark for visual identification of defective solar cells in electroluminescence imagery"
    (EU PVSEC) and Deitsch et al. (2019), "Automatic classification of defective photovoltaic module cells in
    electroluminescence images", Solar Energy 185.

    Binarisation: a cell is normal (y = 0) if its probability is ``<= normal_max`` and defective (y = 1) if it is
    ``>= defective_min``; cells in between are **dropped**. With the defaults (0 and 2/3) the uncertain 1/3
    cells are dropped and 2/3 and 1 count as defective. ELPV has no pixel masks, so the third returned array
    holds the kept cells' probabilities instead.

    Parameters
    ----------
    image_shape : tuple of (int, int) or None, default=(300, 300)
        Output ``(H, W)``; the default (and ``None``) is the native size. Other sizes are resized bilinearly.
    normal_max : float, default=0.0
        Largest probability counted as normal, in [0, 1).
    defective_min : float, default=2/3
        Smallest probability counted as defective, in (normal_max, 1].
    cell_type : {"mono", "poly"} or None, default=None
        Keep only one cell type; ``None`` keeps both.

    Returns
    -------
    X : ndarray of uint8, shape (n, H, W)
        Gray images of the kept cells.
    y : ndarray of int64, shape (n,)
        1 = defective, 0 = normal.
    probabilities : ndarray of float64, shape (n,)
        The experts' defect probability of each kept cell.

    Raises
    ------
    ImportError
        If ``elpv-dataset`` is not installed.
    TypeError, ValueError
        For a bad argument (the message names it).
    """
    shape = check_image_shape(image_shape, allow_none=True)
    normal_max = _check_probability(normal_max, "normal_max")
    defective_min = _check_probability(defective_min, "defective_min")
    if not normal_max < defective_min:
        raise ValueError(
            f"defective_min must be greater than normal_max; got normal_max={normal_max!r}, "
            f"defective_min={defective_min!r}."
        )
    if cell_type is not None and cell_type not in _CELL_TYPES:
        raise ValueError(f"cell_type must be one of {_CELL_TYPES} or None; got {cell_type!r}.")

    images, probs, types = _elpv_loader()()
    images = np.asarray(images)
    probs = np.asarray(probs, dtype=np.float64)
    types = np.asarray(types).astype(str)
    normal = probs <= normal_max + _TOL
    defective = probs >= defective_min - _TOL
    keep = normal | defective
    if cell_type is not None:
        keep &= types == cell_type
    X = images[keep]
    if X.dtype != np.uint8:
        X = np.clip(np.rint(X), 0, 255).astype(np.uint8)
    if X.ndim == 4 and len(X):  # defensive: colour images
        X = np.stack([np.asarray(Image.fromarray(im).convert("L")) for im in X])
    if shape is not None and X.shape[1:3] != shape and len(X):
        X = np.stack([np.asarray(Image.fromarray(im).resize((shape[1], shape[0]), Image.BILINEAR)) for im in X])
    y = defective[keep].astype(np.int64)
    return X, y, probs[keep]
