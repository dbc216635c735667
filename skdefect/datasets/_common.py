"""Shared helpers of the dataset loaders: argument checks, random generators, image reading and resizing.

Resizing rules (used by every loader that takes ``image_shape``)
----------------------------------------------------------------
Images
    Pillow's bilinear filter (``Image.BILINEAR``), which widens its support when shrinking, so a downscale is
    anti-aliased. The aspect ratio is *not* preserved: an image is stretched to ``image_shape``.
Masks
    The full-resolution binary mask is area-averaged (``Image.BOX`` on a float image: each output pixel receives
    the fraction of its footprint covered by the defect) and thresholded at ``> 0.5``. A mask that was non-empty at
    full resolution never becomes empty through resizing: if no output pixel reaches 0.5 coverage, the pixels of
    maximal coverage are kept. So ``mask.any()`` is invariant under resizing.
"""

from __future__ import annotations

import contextlib
import csv
import io
import numbers
import warnings
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

__all__ = [
    "check_color",
    "check_image_shape",
    "check_rng",
    "open_image",
    "read_csv_rows",
    "read_image",
    "read_mask",
    "resize_image",
    "resize_mask",
]

_COLORS = ("gray", "rgb")


def _is_int(value: Any) -> bool:
    return isinstance(value, numbers.Integral) and not isinstance(value, (bool, np.bool_))


def check_image_shape(
    image_shape: Any, *, arg: str = "image_shape", minimum: int = 1, allow_none: bool = False
) -> tuple[int, int] | None:
    """Validate a 2-D ``image_shape`` ``(H, W)``.

    Parameters
    ----------
    image_shape : tuple of int or None
        ``(H, W)``; ``None`` only where ``allow_none`` is true.
    arg : str, default="image_shape"
        Name of the argument in error messages.
    minimum : int, default=1
        Smallest allowed height and width.
    allow_none : bool, default=False
        Whether ``None`` (keep the native size) is accepted.

    Returns
    -------
    tuple of (int, int) or None
        ``(H, W)`` as plain Python ints, or ``None``.

    Raises
    ------
    TypeError
        If ``image_shape`` is not a pair of ints.
    ValueError
        If it does not have 2 entries or an entry is below ``minimum``.
    """
    if image_shape is None and allow_none:
        return None
    if isinstance(image_shape, (str, bytes)) or not isinstance(image_shape, (Sequence, np.ndarray)):
        expected = "a tuple (H, W) of ints" + (" or None" if allow_none else "")
        raise TypeError(f"{arg} must be {expected}; got {type(image_shape).__name__} {image_shape!r}.")
    entries = list(image_shape)
    if len(entries) != 2:
        raise ValueError(f"{arg} must be a tuple (H, W) with 2 entries; got {len(entries)} entries {image_shape!r}.")
    if not all(_is_int(e) for e in entries):
        raise TypeError(f"{arg} must contain ints; got {tuple(entries)!r}.")
    shape = (int(entries[0]), int(entries[1]))
    if min(shape) < minimum:
        raise ValueError(f"{arg} entries must be >= {minimum}; got {shape!r}.")
    return shape


def check_color(color: Any) -> str:
    """Validate a ``color`` argument.

    Parameters
    ----------
    color : {"gray", "rgb"}
        Requested colour mode.

    Returns
    -------
    str
        ``"gray"`` or ``"rgb"``.

    Raises
    ------
    ValueError
        If ``color`` is anything else.
    """
    if not isinstance(color, str) or color not in _COLORS:
        raise ValueError(f"color must be one of {_COLORS}; got {color!r}.")
    return color


def check_rng(random_state: Any, *, arg: str = "random_state") -> np.random.Generator:
    """Turn ``random_state`` into a :class:`numpy.random.Generator`.

    Parameters
    ----------
    random_state : None, int, numpy.random.Generator or numpy.random.RandomState
        ``None`` gives fresh OS entropy (not reproducible); an int seeds :func:`numpy.random.default_rng`; a
        ``Generator`` is used as is (and advanced); a legacy ``RandomState`` seeds a new ``Generator`` from one
        draw.

    Returns
    -------
    numpy.random.Generator
        The generator to draw from.

    Raises
    ------
    TypeError
        For any other type.
    ValueError
        For a negative int.
    """
    if random_state is None:
        return np.random.default_rng()
    if isinstance(random_state, np.random.Generator):
        return random_state
    if isinstance(random_state, np.random.RandomState):
        return np.random.default_rng(int(random_state.randint(0, 2**31 - 1)))
    if _is_int(random_state):
        if random_state < 0:
            raise ValueError(f"{arg} must be a non-negative int; got {random_state!r}.")
        return np.random.default_rng(int(random_state))
    raise TypeError(
        f"{arg} must be None, an int, a numpy.random.Generator or a numpy.random.RandomState; "
        f"got {type(random_state).__name__}."
    )


def _to_mode(image: Image.Image, color: str) -> Image.Image:
    """Convert a Pillow image to ``"L"`` (gray) or ``"RGB"``; 16-bit and float images are rescaled to 8 bit."""
    if image.mode in ("I;16", "I;16B", "I;16L", "I", "F"):
        arr = np.asarray(image, dtype=np.float64)
        hi = 65535.0 if image.mode.startswith("I;16") or arr.max() > 255 else 255.0
        image = Image.fromarray(np.clip(np.rint(arr * (255.0 / hi)), 0, 255).astype(np.uint8), mode="L")
    return image.convert("L" if color == "gray" else "RGB")


@contextlib.contextmanager
def open_image(path: Path, what: str = "image") -> Iterator[Image.Image]:
    """``Image.open(path)``, fully decoded, with every failure one ``ValueError`` naming the file.

    A truncated or corrupt file (Pillow's bare ``OSError: image file is truncated``), a file Pillow cannot
    identify, and a decompression bomb (more pixels than ``PIL.Image.MAX_IMAGE_PIXELS``: refused from the
    header, before decoding, where Pillow would only warn up to twice that limit) all name ``path``.
    """
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            img = Image.open(path)
    except (Image.DecompressionBombWarning, Image.DecompressionBombError) as exc:
        raise ValueError(
            f"{what} {path} is refused as a possible decompression bomb ({exc}). If you trust the file, raise "
            "PIL.Image.MAX_IMAGE_PIXELS before loading"
        ) from None
    except OSError as exc:
        if isinstance(exc, (FileNotFoundError, PermissionError, IsADirectoryError)):
            raise
        raise ValueError(f"{what} {path} cannot be read as an image: {exc}") from None
    with img:
        try:
            img.load()
        except (OSError, SyntaxError, ValueError) as exc:
            raise ValueError(f"{what} {path} is truncated or corrupt: {exc}") from None
        yield img


def read_csv_rows(path: Path) -> tuple[list[str], list[dict[str, str]]]:
    """``(columns, rows)`` of a UTF-8 CSV file (a byte-order mark is allowed), keys and values stripped.

    Text in another encoding is a ``ValueError`` that names the file, the line and the byte, and says to
    save it as UTF-8 (rather than Python's ``'utf-8' codec can't decode byte 0xe9 in position 1234``)."""
    raw = Path(path).read_bytes()
    if raw.startswith(b"\xef\xbb\xbf"):  # a byte-order mark (spreadsheets write one)
        raw = raw[3:]
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = raw.count(b"\n", 0, exc.start) + 1
        column = exc.start - (raw.rfind(b"\n", 0, exc.start) + 1) + 1
        raise ValueError(
            f"{path}, line {line}, column {column}: byte 0x{raw[exc.start]:02x} is not UTF-8 text; save the file "
            "as UTF-8 (e.g. in a spreadsheet: CSV UTF-8)"
        ) from None
    reader = csv.DictReader(io.StringIO(text, newline=""))
    columns = [(f or "").strip() for f in (reader.fieldnames or [])]
    rows = [{(k or "").strip(): (v or "").strip() for k, v in row.items()} for row in reader]
    return columns, rows


def read_image(path: Path, color: str) -> Image.Image:
    """Open an image file as an 8-bit ``"L"`` or ``"RGB"`` Pillow image.

    Parameters
    ----------
    path : pathlib.Path
        File to read.
    color : {"gray", "rgb"}
        ``"gray"`` converts colour images with Pillow's ITU-R 601-2 luma transform; ``"rgb"`` replicates a gray
        image into three channels.

    Returns
    -------
    PIL.Image.Image
        Mode ``"L"`` or ``"RGB"``, fully loaded (the file is closed).

    Raises
    ------
    FileNotFoundError
        If ``path`` does not exist.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"image file not found: {path}")
    with open_image(path) as img:
        return _to_mode(img, color)


def read_mask(path: Path, threshold: int = 127) -> np.ndarray:
    """Read a mask file and binarise it as ``value > threshold``.

    Colour masks are converted to gray first (any channel information is reduced by Pillow's luma transform).

    Parameters
    ----------
    path : pathlib.Path
        Mask file.
    threshold : int, default=127
        Pixels strictly above it are defect pixels.

    Returns
    -------
    ndarray of bool, shape (H, W)
        The binary mask at the file's resolution.

    Raises
    ------
    FileNotFoundError
        If ``path`` does not exist.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"mask file not found: {path}")
    with open_image(path, "mask") as img:
        if img.mode == "1":
            return np.asarray(img, dtype=bool).copy()
        return np.asarray(_to_mode(img, "gray")) > threshold


def resize_image(image: Image.Image, image_shape: tuple[int, int] | None) -> np.ndarray:
    """Resize a Pillow image (bilinear, anti-aliased) and return it as an array.

    Parameters
    ----------
    image : PIL.Image.Image
        Mode ``"L"`` or ``"RGB"``.
    image_shape : tuple of (int, int) or None
        Target ``(H, W)``; ``None`` keeps the native size.

    Returns
    -------
    ndarray of uint8, shape (H, W) or (H, W, 3)
        The resized image.
    """
    if image_shape is not None and (image.height, image.width) != tuple(image_shape):
        image = image.resize((image_shape[1], image_shape[0]), Image.BILINEAR)
    return np.asarray(image, dtype=np.uint8)


def resize_mask(mask: np.ndarray, image_shape: tuple[int, int] | None) -> np.ndarray:
    """Resize a binary mask by area averaging, threshold ``> 0.5``, never emptying a non-empty mask.

    Parameters
    ----------
    mask : ndarray of bool, shape (h, w)
        Full-resolution mask.
    image_shape : tuple of (int, int) or None
        Target ``(H, W)``; ``None`` keeps the native size.

    Returns
    -------
    ndarray of bool, shape (H, W)
        The resized mask; ``result.any() == mask.any()``.
    """
    mask = np.asarray(mask, dtype=bool)
    if image_shape is None or mask.shape == tuple(image_shape):
        return mask
    if not mask.any():
        return np.zeros(image_shape, dtype=bool)
    cover = Image.fromarray(mask.astype(np.float32), mode="F").resize((image_shape[1], image_shape[0]), Image.BOX)
    cover = np.asarray(cover, dtype=np.float32)
    out = cover > 0.5
    if not out.any():
        out = cover >= cover.max() * (1 - 1e-6)
    return out
