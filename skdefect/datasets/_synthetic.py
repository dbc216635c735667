"""Synthetic surface defects on real textures: the embedded default data of skdefect."""

from __future__ import annotations

import functools
import numbers
from collections.abc import Sequence
from typing import Any

import numpy as np
from PIL import Image

from ._common import check_image_shape, check_rng

__all__ = ["DEFECT_KINDS", "TEXTURES", "make_surface_defects"]

#: Names of the scikit-image textures usable in ``textures``.
TEXTURES: tuple[str, ...] = ("brick", "grass", "gravel")
#: Kinds of synthetic defect, as reported by ``return_kinds=True``.
DEFECT_KINDS: tuple[str, ...] = ("scratch", "spot", "crack", "blob")

#: Probability that one defect is "hard" for each named difficulty.
_DIFFICULTY = {"mixed": 0.3, "easy": 0.0, "hard": 1.0}
#: Probability that a defective image receives a second defect.
_P_SECOND = 0.2
_MAX_TRIES = 100


@functools.cache
def _skimage_texture(name: str) -> np.ndarray:
    import skimage.data

    image = np.asarray(getattr(skimage.data, name)(), dtype=np.float32)
    if image.ndim == 3:  # defensive: a future colour version
        image = image[..., :3] @ np.array([0.299, 0.587, 0.114], dtype=np.float32)
    image.setflags(write=False)
    return image


def _check_textures(textures: Any) -> list[np.ndarray]:
    if isinstance(textures, (str, np.ndarray)):
        textures = (textures,)
    if not isinstance(textures, Sequence) or len(textures) == 0:
        raise TypeError(
            f"textures must be a non-empty sequence of names from {TEXTURES} or 2-D arrays; "
            f"got {type(textures).__name__} {textures!r}."
        )
    out = []
    for tex in textures:
        if isinstance(tex, str):
            if tex not in TEXTURES:
                raise ValueError(f"textures must contain names from {TEXTURES} or 2-D arrays; got {tex!r}.")
            out.append(_skimage_texture(tex))
        elif isinstance(tex, np.ndarray):
            if tex.ndim != 2 or min(tex.shape) < 16 or tex.dtype.kind not in "uif":
                raise ValueError(
                    "textures arrays must be numeric 2-D gray images of at least 16x16 pixels with values in "
                    f"[0, 255]; got an array of shape {tex.shape} and dtype {tex.dtype}."
                )
            out.append(np.asarray(tex, dtype=np.float32))
        else:
            raise TypeError(
                f"textures must contain names from {TEXTURES} or 2-D arrays; got an entry of type {type(tex).__name__}."
            )
    return out


def _check_fraction(value: Any, arg: str) -> float:
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Real):
        raise TypeError(f"{arg} must be a float in [0, 1]; got {type(value).__name__} {value!r}.")
    if not 0.0 <= float(value) <= 1.0:
        raise ValueError(f"{arg} must be a float in [0, 1]; got {value!r}.")
    return float(value)


def _check_difficulty(difficulty: Any) -> float:
    if isinstance(difficulty, str):
        if difficulty not in _DIFFICULTY:
            raise ValueError(
                f"difficulty must be one of {tuple(_DIFFICULTY)} or a float in [0, 1]; got {difficulty!r}."
            )
        return _DIFFICULTY[difficulty]
    if isinstance(difficulty, (bool, np.bool_)) or not isinstance(difficulty, numbers.Real):
        raise TypeError(
            f"difficulty must be one of {tuple(_DIFFICULTY)} or a float in [0, 1]; got "
            f"{type(difficulty).__name__} {difficulty!r}."
        )
    return _check_fraction(difficulty, "difficulty")


# ----------------------------------------------------------------------------------------------------------
# background: a randomly cropped, flipped, rotated and re-lit texture patch
# ----------------------------------------------------------------------------------------------------------
def _background(tex: np.ndarray, shape: tuple[int, int], rng: np.random.Generator) -> np.ndarray:
    height, width = shape
    k = int(rng.integers(4))  # rotation by k * 90 degrees
    out_h, out_w = (height, width) if k % 2 == 0 else (width, height)
    scale = rng.uniform(1.0, 2.0)  # crop size = image size x scale, resized down (texture zoom variation)
    crop_h, crop_w = out_h * scale, out_w * scale
    fit = min(1.0, tex.shape[0] / crop_h, tex.shape[1] / crop_w)
    crop_h, crop_w = max(1, int(crop_h * fit)), max(1, int(crop_w * fit))
    top = int(rng.integers(tex.shape[0] - crop_h + 1))
    left = int(rng.integers(tex.shape[1] - crop_w + 1))
    patch = tex[top : top + crop_h, left : left + crop_w]
    if patch.shape != (out_h, out_w):
        patch = np.asarray(
            Image.fromarray(np.ascontiguousarray(patch), mode="F").resize((out_w, out_h), Image.BILINEAR)
        )
    patch = np.rot90(patch, k)
    if rng.random() < 0.5:
        patch = patch[:, ::-1]
    mean = float(patch.mean())
    gain, offset = rng.uniform(0.85, 1.15), rng.normal(0.0, 8.0)  # mild brightness / contrast variation
    return ((patch - mean) * gain + mean + offset).astype(np.float32)


# ----------------------------------------------------------------------------------------------------------
# defect shapes: each returns a signed "coverage" field on a bounding box (> 0 inside the defect, in pixels)
# ----------------------------------------------------------------------------------------------------------
def _polyline_field(
    points: np.ndarray, half_widths: np.ndarray, shape: tuple[int, int]
) -> tuple[tuple[slice, slice], np.ndarray] | None:
    """Signed distance-like field ``max_seg(half_width - dist)`` of a polyline, on its clipped bounding box."""
    height, width = shape
    margin = float(half_widths.max()) + 2.0
    r0 = max(0, int(np.floor(points[:, 0].min() - margin)))
    r1 = min(height, int(np.ceil(points[:, 0].max() + margin)) + 1)
    c0 = max(0, int(np.floor(points[:, 1].min() - margin)))
    c1 = min(width, int(np.ceil(points[:, 1].max() + margin)) + 1)
    if r0 >= r1 or c0 >= c1:
        return None
    field = np.full((r1 - r0, c1 - c0), -np.inf, dtype=np.float32)
    for (pa, pb), hw in zip(zip(points[:-1], points[1:], strict=True), half_widths, strict=True):
        m = hw + 2.0
        sr0 = max(r0, int(np.floor(min(pa[0], pb[0]) - m)))
        sr1 = min(r1, int(np.ceil(max(pa[0], pb[0]) + m)) + 1)
        sc0 = max(c0, int(np.floor(min(pa[1], pb[1]) - m)))
        sc1 = min(c1, int(np.ceil(max(pa[1], pb[1]) + m)) + 1)
        if sr0 >= sr1 or sc0 >= sc1:
            continue
        rr = np.arange(sr0, sr1, dtype=np.float32)[:, None] - pa[0]
        cc = np.arange(sc0, sc1, dtype=np.float32)[None, :] - pa[1]
        d = pb - pa
        length2 = float(d @ d)
        t = np.clip((rr * d[0] + cc * d[1]) / length2, 0.0, 1.0) if length2 > 0 else np.zeros((1, 1))
        dist = np.sqrt((rr - t * d[0]) ** 2 + (cc - t * d[1]) ** 2)
        sub = field[sr0 - r0 : sr1 - r0, sc0 - c0 : sc1 - c0]
        np.maximum(sub, hw - dist, out=sub)
    return (slice(r0, r1), slice(c0, c1)), field


def _scratch(shape: tuple[int, int], size: float, rng: np.random.Generator):
    m = min(shape)
    length = size * rng.uniform(0.25, 0.55) * m
    half_width = max(1.0, rng.uniform(1.0, 2.2) * size * m / 96.0) / 2.0
    center = rng.uniform([0, 0], shape)
    angle = rng.uniform(0, np.pi)
    direction = np.array([np.sin(angle), np.cos(angle)])
    normal = np.array([direction[1], -direction[0]])
    bend = rng.uniform(-0.12, 0.12) * length  # slight curvature (quadratic Bezier)
    t = np.linspace(-0.5, 0.5, 9)[:, None]
    points = center + t * length * direction + (1 - 4 * t**2) * bend * normal
    return _polyline_field(points, np.full(len(points) - 1, half_width), shape), 1.0


def _crack(shape: tuple[int, int], size: float, rng: np.random.Generator):
    m = min(shape)
    step = max(1.5, m / 48.0)
    n_steps = max(4, int(size * rng.uniform(0.3, 0.6) * m / step))
    width0 = max(1.0, rng.uniform(1.0, 2.0) * size * m / 128.0)

    def walk(start: np.ndarray, angle: float, n: int, w_start: float) -> tuple[np.ndarray, np.ndarray]:
        pts = [start]
        for _ in range(n):
            angle += rng.normal(0.0, 0.35)
            pts.append(pts[-1] + step * np.array([np.sin(angle), np.cos(angle)]))
        widths = np.linspace(w_start, max(1.0, 0.6 * w_start), n)
        return np.array(pts), widths / 2.0

    start = rng.uniform([0, 0], shape)
    angle0 = rng.uniform(0, 2 * np.pi)
    trunk, trunk_hw = walk(start, angle0, n_steps, width0)
    parts = [(trunk, trunk_hw)]
    for i in range(1, n_steps):
        if len(parts) < 4 and rng.random() < 0.08:  # branching
            heading = np.arctan2(*(trunk[i] - trunk[i - 1]))
            side = rng.choice([-1.0, 1.0]) * rng.uniform(0.4, 1.0)
            n_branch = max(2, int(n_steps * rng.uniform(0.2, 0.5)))
            parts.append(walk(trunk[i], heading + side, n_branch, max(1.0, 0.7 * trunk_hw[i - 1] * 2)))
    fields = [_polyline_field(p, hw, shape) for p, hw in parts]
    return _merge_fields(fields, shape), 1.0


def _merge_fields(fields, shape: tuple[int, int]):
    fields = [f for f in fields if f is not None]
    if not fields:
        return None
    r0 = min(f[0][0].start for f in fields)
    r1 = max(f[0][0].stop for f in fields)
    c0 = min(f[0][1].start for f in fields)
    c1 = max(f[0][1].stop for f in fields)
    out = np.full((r1 - r0, c1 - c0), -np.inf, dtype=np.float32)
    for (rs, cs), f in fields:
        sub = out[rs.start - r0 : rs.stop - r0, cs.start - c0 : cs.stop - c0]
        np.maximum(sub, f, out=sub)
    return (slice(r0, r1), slice(c0, c1)), out


def _ellipse_field(shape, center, a, b, theta, harmonics, margin):
    height, width = shape
    r = max(a, b) * (1 + sum(abs(h[0]) for h in harmonics)) + margin
    r0, r1 = max(0, int(np.floor(center[0] - r))), min(height, int(np.ceil(center[0] + r)) + 1)
    c0, c1 = max(0, int(np.floor(center[1] - r))), min(width, int(np.ceil(center[1] + r)) + 1)
    if r0 >= r1 or c0 >= c1:
        return None
    rr = np.arange(r0, r1, dtype=np.float32)[:, None] - center[0]
    cc = np.arange(c0, c1, dtype=np.float32)[None, :] - center[1]
    u = cc * np.cos(theta) + rr * np.sin(theta)
    v = -cc * np.sin(theta) + rr * np.cos(theta)
    rho = np.sqrt((u / a) ** 2 + (v / b) ** 2)
    if harmonics:
        phi = np.arctan2(v / b, u / a)
        radius = 1.0 + sum(amp * np.cos(k * phi + phase) for amp, k, phase in harmonics)
        rho = rho / radius
    field = ((1.0 - rho) * np.sqrt(a * b)).astype(np.float32)  # approx. signed distance to the outline, px
    return (slice(r0, r1), slice(c0, c1)), field


def _spot(shape: tuple[int, int], size: float, rng: np.random.Generator):
    radius = max(1.2, size * rng.uniform(0.025, 0.05) * min(shape))
    center = rng.uniform([0, 0], shape)
    return _ellipse_field(shape, center, radius, radius, 0.0, [], 2.0), rng.uniform(0.7, 1.5)


def _blob(shape: tuple[int, int], size: float, rng: np.random.Generator):
    m = min(shape)
    a = max(1.5, size * rng.uniform(0.06, 0.16) * m)
    b = max(1.2, a * rng.uniform(0.4, 1.0))
    harmonics = [(rng.uniform(0.0, 0.15) / k * 2, k, rng.uniform(0, 2 * np.pi)) for k in (2, 3, 4, 5)]
    center = rng.uniform([0, 0], shape)
    edge = rng.uniform(1.0, 3.0) * max(1.0, m / 128.0)
    return _ellipse_field(shape, center, a, b, rng.uniform(0, np.pi), harmonics, edge + 2.0), edge


_RENDERERS = {"scratch": _scratch, "spot": _spot, "crack": _crack, "blob": _blob}


def _add_defect(image: np.ndarray, mask: np.ndarray, kind: str, p_hard: float, rng: np.random.Generator) -> None:
    """Draw one defect of ``kind`` into ``image`` (in place) and OR its support into ``mask``."""
    hard = rng.random() < p_hard
    size = rng.uniform(0.5, 0.9) if hard else rng.uniform(1.0, 1.6)
    contrast = rng.uniform(0.5, 1.0) if hard else rng.uniform(1.5, 3.5)  # in units of local texture std
    sign = -1.0 if rng.random() < 0.6 else 1.0  # dark defects are more common than bright ones
    for _ in range(_MAX_TRIES):
        drawn, edge = _RENDERERS[kind](image.shape, size, rng)
        if drawn is None:
            continue
        (rows, cols), field = drawn
        alpha = np.clip(field / edge + 0.5, 0.0, 1.0)
        support = alpha > 0.5
        if support.any():  # a defect clipped away by the border is redrawn
            break
    else:  # pragma: no cover - practically unreachable
        raise RuntimeError(f"could not place a {kind} defect in an image of shape {image.shape}")
    sub = image[rows, cols]
    local_std = max(float(sub.std()), 6.0)
    sub += (sign * contrast * local_std) * alpha
    mask[rows, cols] |= support


def make_surface_defects(
    n_samples: int = 200,
    image_shape: tuple[int, int] = (64, 64),
    *,
    defect_fraction: float = 0.5,
    n_channels: int = 1,
    textures: Sequence[str | np.ndarray] = TEXTURES,
    difficulty: str | float = "mixed",
    random_state: int | np.random.Generator | np.random.RandomState | None = None,
    return_kinds: bool = False,
) -> tuple[np.ndarray, np.ndarray, np.ndarray] | tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Generate images of real textures, some with synthetic defects, and their pixel masks.

    Backgrounds are random crops of scikit-image's bundled 512x512 gray textures (``skimage.data.brick``,
    ``grass``, ``gravel``; photographs under scikit-image's BSD-3-Clause licence), each cropped at
    ``image_shape`` times a random factor in [1, 2], resized down (bilinear, anti-aliased), rotated by a random
    multiple of 90 degrees, randomly flipped and given a mild random gain (0.85-1.15) and offset (sd 8 gray
    levels).

    Defective images receive one defect (a second one with probability 0.2) of a kind drawn uniformly from:

    ``"scratch"``
        a thin, slightly curved, anti-aliased line;
    ``"spot"``
        a small disc;
    ``"crack"``
        a tapering random-walk polyline with up to three branches;
    ``"blob"``
        an irregular ellipse (random low-order radial harmonics) with a soft edge of 1-3 pixels.

    Each defect is *easy* or *hard*: hard ones are smaller (size x 0.5-0.9 instead of x 1.0-1.6) and faint
    (contrast 0.5-1.0 instead of 1.5-3.5 times the standard deviation of the texture under the defect's bounding
    box). With the default ``difficulty="mixed"`` 30 % of defects are hard, reproducing the easy/hard imbalance
    that motivates the concentrated loss. 60 % of defects are dark, 40 % bright. A defect is added to the
    texture with a soft alpha ``a`` in [0, 1] (``image += a * contrast * std * sign``); its mask is ``a > 0.5``.
    Pixels are finally clipped to [0, 255] and rounded.

    Parameters
    ----------
    n_samples : int, default=200
        Number of images, >= 1.
    image_shape : tuple of (int, int), default=(64, 64)
        ``(H, W)``, each >= 16. Defect sizes scale with ``min(H, W)``.
    defect_fraction : float, default=0.5
        Fraction of defective images in [0, 1]; exactly ``round(defect_fraction * n_samples)`` images are
        defective, at random positions.
    n_channels : {1, 3}, default=1
        1 gives gray images; 3 replicates the gray image into RGB with a slight random per-channel tint
        (gain 1 +- 0.06 per channel and image). Masks are unaffected.
    textures : sequence of str or 2-D ndarray, default=("brick", "grass", "gravel")
        Background textures, picked uniformly per image: names of scikit-image textures or gray arrays with values
        in [0, 255] of at least 16x16 pixels.
    difficulty : {"mixed", "easy", "hard"} or float, default="mixed"
        Probability that a defect is hard: "mixed" = 0.3, "easy" = 0, "hard" = 1, or a float in [0, 1].
    random_state : int, numpy.random.Generator, numpy.random.RandomState or None, default=None
        Seed or generator. The same int gives identical output; ``None`` is not reproducible.
    return_kinds : bool, default=False
        If true, also return the defect kind of every image.

    Returns
    -------
    X : ndarray of uint8, shape (n_samples, H, W) or (n_samples, H, W, 3)
        The images (3 channels when ``n_channels=3``).
    y : ndarray of int64, shape (n_samples,)
        1 = defective, 0 = normal. Always equal to ``masks.any(axis=(1, 2))``.
    masks : ndarray of bool, shape (n_samples, H, W)
        Defect support; all False for normal images, never empty for defective ones.
    kinds : ndarray of str, shape (n_samples,)
        Only if ``return_kinds``: ``"none"`` for normal images, else a name from :data:`DEFECT_KINDS`, or two
        names joined by ``"+"`` (e.g. ``"scratch+blob"``) for images with two defects.

    Raises
    ------
    TypeError
        If an argument has the wrong type.
    ValueError
        If an argument is out of range.

    Examples
    --------
    >>> from skdefect.datasets import make_surface_defects
    >>> X, y, masks = make_surface_defects(n_samples=8, image_shape=(32, 32), random_state=0)
    >>> X.shape, X.dtype, y.tolist() == masks.any(axis=(1, 2)).astype(int).tolist()
    ((8, 32, 32), dtype('uint8'), True)
    """
    if isinstance(n_samples, (bool, np.bool_)) or not isinstance(n_samples, numbers.Integral):
        raise TypeError(f"n_samples must be an int >= 1; got {type(n_samples).__name__} {n_samples!r}.")
    if n_samples < 1:
        raise ValueError(f"n_samples must be an int >= 1; got {n_samples!r}.")
    shape = check_image_shape(image_shape, minimum=16)
    assert shape is not None
    fraction = _check_fraction(defect_fraction, "defect_fraction")
    if isinstance(n_channels, (bool, np.bool_)) or n_channels not in (1, 3):
        raise ValueError(f"n_channels must be 1 or 3; got {n_channels!r}.")
    texs = _check_textures(textures)
    p_hard = _check_difficulty(difficulty)
    rng = check_rng(random_state)

    n = int(n_samples)
    height, width = shape
    y = np.zeros(n, dtype=np.int64)
    y[rng.permutation(n)[: int(round(fraction * n))]] = 1
    X = np.empty((n, height, width) if n_channels == 1 else (n, height, width, 3), dtype=np.uint8)
    masks = np.zeros((n, height, width), dtype=bool)
    kinds = np.full(n, "none", dtype=object)
    for i in range(n):
        image = _background(texs[int(rng.integers(len(texs)))], shape, rng)
        if y[i]:
            n_defects = 2 if rng.random() < _P_SECOND else 1
            names = [DEFECT_KINDS[int(rng.integers(len(DEFECT_KINDS)))] for _ in range(n_defects)]
            for name in names:
                _add_defect(image, masks[i], name, p_hard, rng)
            kinds[i] = "+".join(names)
        if n_channels == 3:
            image = image[..., None] * rng.uniform(0.94, 1.06, size=3).astype(np.float32)
        np.clip(image, 0.0, 255.0, out=image)
        X[i] = np.rint(image)
    if return_kinds:
        return X, y, masks, kinds.astype(str)
    return X, y, masks
