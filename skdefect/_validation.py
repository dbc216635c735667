"""Input validation: images, masks and labels become arrays, or one clear error.

This module owns every input check of skdefect and every message those checks raise. Each error is a
:class:`ValueError` or :class:`TypeError` whose message names the argument (``X``, ``masks``, ``y``,
``image_shape`` ...), the expected form and what was received.

Accepted inputs
---------------
Images ``X``
    ``(n, H, W)`` (one channel), ``(n, H, W, C)`` with ``C`` in {1, 3}, or flattened ``(n, H*W*C)``
    together with ``image_shape=(H, W)`` (one channel) or ``(H, W, C)``. Any array-like of equally shaped
    images works (list, pandas DataFrame, ...). Dtypes: bool, signed/unsigned integers or floats. Arrays that
    already are :class:`numpy.ndarray` (including :class:`numpy.memmap`) are never copied as a whole: they are
    read batch by batch through :class:`ImageData`, so a memory-mapped file of any size works.
Masks
    ``(n, H, W)``, ``(n, H, W, 1)`` or flattened ``(n, H*W)``; values bool, {0, 1} or {0, 255}.
Labels ``y``
    ``(n,)`` or ``(n, 1)`` with values in {0, 1}: 0 = normal, 1 = defective / anomalous.

Pixel scaling (:meth:`ImageData.batch`)
---------------------------------------
============================  ===========================================
stored dtype                  float32 value fed to the network
============================  ===========================================
``uint8``                     ``x / 255``
other integer dtypes          ``x / np.iinfo(dtype).max`` (signed: may be < 0)
``bool``                      0.0 or 1.0
floating                      ``x`` unchanged; expected in [0, 1]
============================  ===========================================
"""

from __future__ import annotations

import numbers
import warnings
from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np

__all__ = [
    "CHUNK_SIZE",
    "ImageData",
    "check_fit_inputs",
    "check_groups",
    "check_image_shape",
    "check_image_shape_matches",
    "check_images",
    "check_labels",
    "check_masks",
    "check_brightness",
    "check_unit_range",
    "describe",
    "image_brightness",
]

#: Number of images read at a time by the chunked checks (finiteness of images, mask conversion).
CHUNK_SIZE = 256

_REQUIRE_OPTIONS = ("masks_or_labels", "masks", "none")
_NUMERIC_KINDS = "buif"


# ----------------------------------------------------------------------------------------------------------
# small helpers
# ----------------------------------------------------------------------------------------------------------
def describe(value: Any) -> str:
    """Describe what was received: shape and dtype for arrays, the type name otherwise."""
    if isinstance(value, np.ndarray):
        return f"array of shape {value.shape} and dtype {value.dtype}"
    return f"{type(value).__name__}"


def _is_sparse(value: Any) -> bool:
    """Duck-typed test for scipy sparse matrices/arrays (no scipy import)."""
    return hasattr(value, "nnz") and hasattr(value, "toarray") and hasattr(value, "format")


def _as_array(value: Any, arg: str, what: str) -> np.ndarray:
    """Turn ``value`` into a numeric ndarray without copying an existing ndarray.

    Parameters
    ----------
    value : array-like
        The input. An :class:`numpy.ndarray` (memmaps included) is used as is; anything else goes through
        :func:`numpy.asarray`.
    arg : str
        Name of the argument, used in error messages.
    what : str
        Human description of the expected content, used in error messages.

    Returns
    -------
    numpy.ndarray
        An array of boolean, integer or floating dtype. Object arrays holding only numbers are converted to
        float64 (scikit-learn's convention); complex data is a :class:`ValueError` ("Complex data not
        supported", scikit-learn's wording) and any other dtype a :class:`TypeError`.
    """
    if value is None:
        raise TypeError(f"{arg} must be an array-like of {what}; got None.")
    if _is_sparse(value):
        raise TypeError(
            f"{arg} is a sparse matrix ({type(value).__name__}); sparse input is not supported, "
            f"pass a dense array of {what} (e.g. {arg}.toarray())."
        )
    if isinstance(value, np.ndarray):
        array = value
    else:
        try:
            array = np.asarray(value)
        except ValueError as exc:  # ragged nested sequences
            raise ValueError(
                f"{arg} must be an array-like of {what} that all have the same shape; could not build an "
                f"array from the {type(value).__name__} received ({exc})."
            ) from exc
    if array.dtype.kind == "O":
        try:
            array = array.astype(np.float64)
        except (TypeError, ValueError) as exc:
            raise TypeError(
                f"{arg} must hold numbers (bool, integer or float) but has dtype object with non-numeric "
                f"entries ({exc}); got {describe(array)}."
            ) from exc
    if array.dtype.kind == "c":  # scikit-learn's error and wording
        raise ValueError(
            f"Complex data not supported: {arg} must have a boolean, integer or floating dtype; got "
            f"{describe(array)}."
        )
    if array.dtype.kind not in _NUMERIC_KINDS:
        raise TypeError(
            f"{arg} must have a boolean, integer or floating dtype; got {describe(array)}."
        )
    return array


def check_image_shape(image_shape: Any, *, arg: str = "image_shape") -> tuple[int, int, int]:
    """Validate an ``image_shape`` argument and normalise it to ``(H, W, C)``.

    Parameters
    ----------
    image_shape : tuple of int
        ``(H, W)`` (one channel) or ``(H, W, C)`` with ``C`` in {1, 3}; ``H`` and ``W`` at least 2.
    arg : str, default="image_shape"
        Name of the argument in error messages.

    Returns
    -------
    tuple of int
        ``(H, W, C)`` as plain Python ints.

    Raises
    ------
    TypeError
        If ``image_shape`` is not a sequence of integers.
    ValueError
        If it has a length other than 2 or 3, a size below 2 or a channel count other than 1 or 3.
    """
    if isinstance(image_shape, (str, bytes)) or not isinstance(image_shape, (Sequence, np.ndarray)):
        raise TypeError(
            f"{arg} must be a tuple (H, W) or (H, W, C) of ints; got {type(image_shape).__name__} "
            f"{image_shape!r}."
        )
    entries = list(image_shape)
    if len(entries) not in (2, 3):
        raise ValueError(
            f"{arg} must be a tuple (H, W) or (H, W, C) with 2 or 3 entries; got {len(entries)} entries "
            f"{tuple(entries)!r}."
        )
    for entry in entries:
        if isinstance(entry, (bool, np.bool_)) or not isinstance(entry, numbers.Integral):
            raise TypeError(
                f"{arg} must contain ints; got {tuple(entries)!r} with an entry of type "
                f"{type(entry).__name__}."
            )
    shape = tuple(int(entry) for entry in entries)
    if len(shape) == 2:
        shape = (*shape, 1)
    height, width, channels = shape
    if height < 2 or width < 2:
        raise ValueError(f"{arg} must have a height and width of at least 2 pixels; got {tuple(entries)!r}.")
    if channels not in (1, 3):
        raise ValueError(
            f"{arg} must have 1 or 3 channels (grayscale or RGB); got {channels} channels in "
            f"{tuple(entries)!r}."
        )
    return shape  # type: ignore[return-value]


def _normalise_index(index: Any) -> Any:
    """A single integer becomes a length-1 list so that every index keeps the sample axis."""
    if isinstance(index, (numbers.Integral, np.integer)) and not isinstance(index, (bool, np.bool_)):
        return [int(index)]
    return index


# ----------------------------------------------------------------------------------------------------------
# images
# ----------------------------------------------------------------------------------------------------------
class ImageData:
    """A light, read-only view over validated images.

    Build it with :func:`check_images`. It keeps a reference to the array it was given and never copies it as
    a whole: every access reads the requested samples only, so an :class:`numpy.memmap` of any size works.

    Parameters
    ----------
    data : numpy.ndarray
        The validated array, either ``(n, H, W)``, ``(n, H, W, C)`` or flattened ``(n, H*W*C)``.
    image_shape : tuple of int
        ``(H, W, C)``.
    arg : str, default="X"
        Name of the argument the images came from, used in later error messages.

    Attributes
    ----------
    n_samples : int
        Number of images.
    height, width, channels : int
        Image size; ``channels`` is 1 or 3.
    image_shape : tuple of int
        ``(height, width, channels)``.
    dtype : numpy.dtype
        Stored dtype (before scaling).
    arg : str
        Argument name used in messages.
    """

    __slots__ = ("_data", "n_samples", "height", "width", "channels", "image_shape", "dtype", "arg")

    def __init__(self, data: np.ndarray, image_shape: tuple[int, int, int], *, arg: str = "X") -> None:
        self._data = data
        self.n_samples = int(data.shape[0])
        self.height, self.width, self.channels = (int(v) for v in image_shape)
        self.image_shape = (self.height, self.width, self.channels)
        self.dtype = data.dtype
        self.arg = arg

    def __len__(self) -> int:
        return self.n_samples

    def __repr__(self) -> str:
        return (
            f"ImageData(n_samples={self.n_samples}, image_shape={self.image_shape}, dtype={self.dtype}, "
            f"stored_as={type(self._data).__name__}{self._data.shape})"
        )

    @property
    def data(self) -> np.ndarray:
        """The array exactly as received (no copy; its layout may be flattened)."""
        return self._data

    def raw(self, index: slice | Sequence[int] | np.ndarray | int) -> np.ndarray:
        """Return the stored values of some images in layout ``(b, H, W, C)``.

        Parameters
        ----------
        index : slice, int, array of int or bool
            Which images. A slice returns a view of the stored array (a memmap stays a memmap); an index
            array reads (copies) only the selected images; an int returns one image as a batch of 1.

        Returns
        -------
        numpy.ndarray
            Array of shape ``(b, H, W, C)`` and the stored dtype.
        """
        block = self._data[_normalise_index(index)]
        return block.reshape((block.shape[0], *self.image_shape))

    def batch(self, index: slice | Sequence[int] | np.ndarray | int) -> np.ndarray:
        """Return some images as float32, channels first, scaled for a network.

        Parameters
        ----------
        index : slice, int, array of int or bool
            Which images.

        Returns
        -------
        numpy.ndarray
            C-contiguous float32 array of shape ``(b, C, H, W)``. ``uint8`` is divided by 255, other integer
            dtypes by their maximum, bool becomes 0/1 and floats are passed as given (expected in [0, 1]).
        """
        raw = self.raw(index)
        out = np.empty((raw.shape[0], self.channels, self.height, self.width), dtype=np.float32)
        out[...] = raw.transpose(0, 3, 1, 2)
        if self.dtype.kind in "ui":
            out /= np.float32(np.iinfo(self.dtype).max)
        return out

    def iter_batches(self, batch_size: int) -> Iterator[tuple[slice, np.ndarray]]:
        """Iterate over consecutive batches.

        Parameters
        ----------
        batch_size : int
            Positive number of images per batch; the last batch may be smaller.

        Yields
        ------
        index : slice
            Positions of the batch in the data.
        batch : numpy.ndarray
            ``self.batch(index)``, float32 of shape ``(b, C, H, W)``.
        """
        if (
            isinstance(batch_size, (bool, np.bool_))
            or not isinstance(batch_size, numbers.Integral)
            or batch_size < 1
        ):
            raise ValueError(f"batch_size must be a positive int; got {batch_size!r}.")
        batch_size = int(batch_size)
        for start in range(0, self.n_samples, batch_size):
            index = slice(start, min(start + batch_size, self.n_samples))
            yield index, self.batch(index)

    def subset(self, index: slice | Sequence[int] | np.ndarray) -> ImageData:
        """Return an :class:`ImageData` over some images (a view for slices, a copy of the selection else).

        Parameters
        ----------
        index : slice, array of int or bool
            Which images.

        Returns
        -------
        ImageData
            The selected images with the same shape, dtype and argument name.
        """
        return ImageData(self._data[_normalise_index(index)], self.image_shape, arg=self.arg)


def _check_finite(data: np.ndarray, arg: str) -> None:
    """Raise if a floating array holds NaN or infinity, reading ``CHUNK_SIZE`` images at a time."""
    for start in range(0, data.shape[0], CHUNK_SIZE):
        chunk = data[start : start + CHUNK_SIZE]
        finite = np.isfinite(chunk)
        if finite.all():
            continue
        bad = ~finite.reshape(chunk.shape[0], -1)
        first = start + int(np.flatnonzero(bad.any(axis=1))[0])
        image = np.asarray(chunk[first - start]).ravel()
        kind = "NaN" if np.isnan(image).any() else "infinity"
        n_bad_images = int(bad.any(axis=1).sum())
        raise ValueError(
            f"{arg} must contain finite values only; got {kind} in image {first} "
            f"({n_bad_images} non-finite image(s) among images {start}..{start + chunk.shape[0] - 1}; "
            f"{arg} has shape {data.shape} and dtype {data.dtype})."
        )


def _image_array(X: Any, arg: str) -> np.ndarray:
    """What any image input must be, whatever ``image_shape`` says: a numeric, non-empty array whose flattened
    rows could hold an image of at least 2x2 pixels (scikit-learn's wording for empty and too narrow rows)."""
    array = _as_array(X, arg, "images")
    if array.ndim >= 1 and array.shape[0] == 0:
        raise ValueError(f"{arg} is empty: it must contain at least one image; got {describe(array)}.")
    if array.ndim == 2 and array.shape[1] < 4:
        raise ValueError(
            f"{arg} has {array.shape[1]} feature(s) (shape={array.shape}) while a minimum of 4 is required: each "
            "row is a flattened image of at least 2x2 pixels."
        )
    return array


def check_images(
    X: Any,
    *,
    image_shape: Sequence[int] | None = None,
    arg: str = "X",
    check_finite: bool = True,
) -> ImageData:
    """Validate images and wrap them in an :class:`ImageData` view.

    Parameters
    ----------
    X : array-like
        ``(n, H, W)``, ``(n, H, W, C)`` with ``C`` in {1, 3}, or flattened ``(n, H*W*C)`` with
        ``image_shape``. A list of equally shaped images, a DataFrame or any array-like is converted with
        :func:`numpy.asarray`; an ndarray (or memmap) is used without copy. Object arrays holding numbers are
        converted to float64.
    image_shape : tuple of int, optional
        ``(H, W)`` or ``(H, W, C)``. Required for flattened 2-D input; for 3-D/4-D input it must agree with
        ``X`` (a 2-entry ``image_shape`` then constrains ``H`` and ``W`` only).
    arg : str, default="X"
        Name of the argument in error messages.
    check_finite : bool, default=True
        Reject NaN and infinity in floating input. The check reads ``CHUNK_SIZE`` images at a time.

    Returns
    -------
    ImageData
        A view with ``n_samples``, ``image_shape`` and batch accessors.

    Raises
    ------
    TypeError
        Non-numeric dtype (object, string, datetime ...), sparse input, None, malformed
        ``image_shape`` entries.
    ValueError
        Complex dtype ("Complex data not supported", as in scikit-learn), empty input, wrong number of
        dimensions, a channel count other than 1 or 3, flattened input without
        or not matching ``image_shape``, images smaller than 2x2, NaN or infinity.
    """
    expected = "images (n, H, W), (n, H, W, C) with C in {1, 3}, or flattened (n, H*W*C) with image_shape"
    array = _image_array(X, arg)
    shape_arg = None if image_shape is None else check_image_shape(image_shape)

    if array.ndim == 2:
        if shape_arg is None:
            raise ValueError(
                f"{arg} is 2-D with shape {array.shape}: flattened images need their shape; pass "
                f"image_shape=(H, W) or (H, W, C) with H*W*C == {array.shape[1]}, or pass {arg} as "
                "(n, H, W) or (n, H, W, C)."
            )
        n_features = shape_arg[0] * shape_arg[1] * shape_arg[2]
        if array.shape[1] != n_features:
            raise ValueError(
                f"{arg} has {array.shape[1]} feature(s) per sample ({array.shape[0]} sample(s), shape "
                f"{array.shape}), but image_shape={tuple(image_shape)!r} needs "  # type: ignore[arg-type]
                f"H*W*C = {n_features}."
            )
        shape = shape_arg
    elif array.ndim == 3:
        shape = (int(array.shape[1]), int(array.shape[2]), 1)
    elif array.ndim == 4:
        channels = int(array.shape[3])
        if channels not in (1, 3):
            hint = ""
            if array.shape[1] in (1, 3):
                hint = f" It looks channels-first; use {arg}.transpose(0, 2, 3, 1) to get (n, H, W, C)."
            raise ValueError(
                f"{arg} has {channels} channels in its last axis; expected 1 or 3 (grayscale or RGB) in "
                f"layout (n, H, W, C); got {describe(array)}.{hint}"
            )
        shape = (int(array.shape[1]), int(array.shape[2]), channels)
    else:
        raise ValueError(f"{arg} must be {expected}; got {array.ndim}-D {describe(array)}.")

    if shape[0] < 2 or shape[1] < 2:
        raise ValueError(
            f"{arg} must hold images of at least 2x2 pixels; got images of (H, W) = {shape[:2]} "
            f"from {describe(array)}."
        )
    if shape_arg is not None and array.ndim != 2:
        given = tuple(image_shape)  # type: ignore[arg-type]
        if shape[:2] != shape_arg[:2] or (len(given) == 3 and shape[2] != shape_arg[2]):
            raise ValueError(
                f"image_shape={given!r} does not match {arg}: its images have shape (H, W, C) = {shape} "
                f"({describe(array)})."
            )
    if check_finite and array.dtype.kind == "f":
        _check_finite(array, arg)
    return ImageData(array, shape, arg=arg)


def check_unit_range(images: ImageData, *, low: float = 0.0, high: float = 1.0) -> None:
    """Raise if floating images hold values outside ``[low, high]`` (integer and bool images always pass).

    For networks whose output cannot leave [0, 1] (the GAN's sigmoid generator): float images of 0-255 would
    be learned as unreachable targets instead of failing. Reads ``CHUNK_SIZE`` images at a time.

    Parameters
    ----------
    images : ImageData
        Validated images.
    low, high : float, default=0.0, 1.0
        The accepted range.

    Raises
    ------
    ValueError
        If a value lies outside the range; the message gives the range found.
    """
    if images.dtype.kind != "f":
        return
    lo, hi = np.inf, -np.inf
    for start in range(0, images.n_samples, CHUNK_SIZE):
        chunk = images.data[start : start + CHUNK_SIZE]
        lo, hi = min(lo, float(np.min(chunk))), max(hi, float(np.max(chunk)))
    if lo < low or hi > high:
        raise ValueError(
            f"{images.arg} must hold float images in [{low:g}, {high:g}]; got values in [{lo:g}, {hi:g}] "
            f"(dtype {images.dtype}). Divide 0-255 images by 255 or pass them as uint8."
        )


def image_brightness(images: ImageData, max_images: int = 512) -> np.ndarray:
    """Mean intensity (on the networks' [0, 1] scale) of up to ``max_images`` evenly spaced images."""
    rows = np.unique(np.linspace(0, images.n_samples - 1, num=min(images.n_samples, max_images)).astype(np.int64))
    chunks = [images.batch(rows[i : i + CHUNK_SIZE]).mean(axis=(1, 2, 3)) for i in range(0, len(rows), CHUNK_SIZE)]
    return np.concatenate(chunks).astype(np.float64)


def check_brightness(images: ImageData, fitted_range: Sequence[float] | None, *, margin: float = 0.1) -> None:
    """Warn when most images are far darker or brighter than any training image.

    ``fitted_range`` is ``(lowest, highest)`` mean intensity of the training images (``brightness_range_``);
    the warning fires when the *median* image's mean lies outside it widened by ``margin`` on each side, the
    mark of images scaled differently from the training images (divided by 255 twice, 16-bit values over
    65535, another normalisation), which the network would score as if every one were defective or normal.
    A few odd images do not warn. Models without the attribute (files from earlier versions) are not checked.
    """
    if fitted_range is None or images.n_samples == 0:
        return
    lo, hi = float(fitted_range[0]), float(fitted_range[1])
    median = float(np.median(image_brightness(images)))
    if lo - margin <= median <= hi + margin:
        return
    warnings.warn(
        f"{images.arg}: the median image has mean intensity {median:.3g} (on the [0, 1] scale), outside the "
        f"training images' range [{lo:.3g}, {hi:.3g}] widened by {margin:g}; were these images scaled the same "
        "way as the training images (uint8 0-255, or float in [0, 1] = uint8 / 255)? Their scores are unreliable.",
        UserWarning,
        stacklevel=3,
    )


def check_image_shape_matches(images: ImageData, fitted_shape: Sequence[int], *, arg: str = "X") -> None:
    """Raise if images differ in ``(H, W, C)`` from those seen at fit.

    Parameters
    ----------
    images : ImageData
        Validated images passed to ``predict``/``transform``/...
    fitted_shape : tuple of int
        ``(H, W, C)`` recorded at fit (``(H, W)`` is read as one channel).
    arg : str, default="X"
        Name of the argument in error messages.

    Raises
    ------
    ValueError
        If height, width or channel count differ.
    """
    fitted = tuple(int(v) for v in fitted_shape)
    if len(fitted) == 2:
        fitted = (*fitted, 1)
    if tuple(images.image_shape) != fitted:
        raise ValueError(
            f"{arg} has images of shape (H, W, C) = {images.image_shape}, but this estimator was fitted on "
            f"images of shape (H, W, C) = {fitted}; resize the images or refit."
        )


# ----------------------------------------------------------------------------------------------------------
# masks
# ----------------------------------------------------------------------------------------------------------
def check_masks(masks: Any, images: ImageData, *, arg: str = "masks") -> np.ndarray:
    """Validate pixel masks against validated images and return them as bool.

    Parameters
    ----------
    masks : array-like
        ``(n, H, W)``, ``(n, H, W, 1)`` or flattened ``(n, H*W)``. Values: bool, {0, 1} or {0, 255} in any
        integer or floating dtype (0/255 is decided for the whole array; mixing 1 and 255 is an error).
    images : ImageData
        The images the masks belong to (from :func:`check_images`).
    arg : str, default="masks"
        Name of the argument in error messages.

    Returns
    -------
    numpy.ndarray
        Bool array of shape ``(n, H, W)``; True = defective pixel.

    Raises
    ------
    TypeError
        Non-numeric dtype or sparse input.
    ValueError
        Length or spatial shape mismatch with the images, NaN, values other than bool/{0, 1}/{0, 255}.
    """
    array = _as_array(masks, arg, "binary masks")
    n, height, width = images.n_samples, images.height, images.width
    x_arg = images.arg
    if array.ndim == 0 or array.shape[0] != n:
        received = "a scalar" if array.ndim == 0 else f"{array.shape[0]} samples"
        raise ValueError(
            f"{arg} and {x_arg} must have the same length: {arg} has {received} (shape {array.shape}) but "
            f"{x_arg} has {n} images."
        )
    expected = f"(n, H, W) = {(n, height, width)}, (n, H, W, 1) or flattened (n, H*W) = {(n, height * width)}"
    if array.ndim == 2:
        if array.shape[1] != height * width:
            raise ValueError(
                f"{arg} has {array.shape[1]} values per sample but {x_arg} has images of (H, W) = "
                f"{(height, width)}; expected {arg} of shape {expected}; got shape {array.shape}."
            )
        array = array.reshape(n, height, width)
    elif array.ndim == 4 and array.shape[3] == 1:
        array = array[..., 0]
    elif array.ndim != 3:
        raise ValueError(f"{arg} must have shape {expected}; got {describe(array)}.")
    if array.shape[1:] != (height, width):
        raise ValueError(
            f"{arg} must have the spatial shape (H, W) = {(height, width)} of {x_arg}; got {arg} of "
            f"shape {array.shape}."
        )

    if array.dtype.kind == "b":
        return np.array(array, dtype=bool, copy=True)
    out = np.empty((n, height, width), dtype=bool)
    seen_one = seen_255 = False
    offending: set[float] = set()
    for start in range(0, n, CHUNK_SIZE):
        chunk = np.asarray(array[start : start + CHUNK_SIZE])
        if chunk.dtype.kind == "f" and np.isnan(chunk).any():
            first = start + int(np.flatnonzero(np.isnan(chunk).reshape(chunk.shape[0], -1).any(axis=1))[0])
            raise ValueError(
                f"{arg} must be binary (bool, {{0, 1}} or {{0, 255}}); got NaN in mask {first} "
                f"({describe(array)})."
            )
        is_zero = chunk == 0
        is_one = chunk == 1
        is_255 = chunk == 255
        seen_one = seen_one or bool(is_one.any())
        seen_255 = seen_255 or bool(is_255.any())
        bad = ~(is_zero | is_one | is_255)
        if bad.any() and len(offending) < 5:
            offending.update(np.unique(chunk[bad])[:5].tolist())
        out[start : start + chunk.shape[0]] = ~is_zero
    if offending:
        values = sorted(offending)[:5]
        raise ValueError(
            f"{arg} must be binary: bool, {{0, 1}} or {{0, 255}}; got other values such as {values} "
            f"({describe(array)})."
        )
    if seen_one and seen_255:
        raise ValueError(
            f"{arg} must be binary: bool, {{0, 1}} or {{0, 255}}; got a mix of the values 0, 1 and 255 "
            f"({describe(array)})."
        )
    return out


# ----------------------------------------------------------------------------------------------------------
# labels
# ----------------------------------------------------------------------------------------------------------
def check_labels(y: Any, n_samples: int | None, *, arg: str = "y", x_arg: str = "X") -> np.ndarray:
    """Validate binary image labels.

    Parameters
    ----------
    y : array-like
        ``(n,)`` or ``(n, 1)`` with values in {0, 1} (0 = normal, 1 = defective): bool, integers, floats equal
        to 0/1, lists, pandas Series; object arrays of numbers are accepted.
    n_samples : int or None
        Number of images the labels belong to; None skips the length check (:func:`check_fit_inputs` reads
        the kind of ``y`` before the images, and compares the lengths after).
    arg : str, default="y"
        Name of the argument in error messages.
    x_arg : str, default="X"
        Name of the images argument in the length-mismatch message.

    Returns
    -------
    numpy.ndarray
        int64 array of shape ``(n_samples,)``.

    Raises
    ------
    TypeError
        Non-numeric dtype (strings, non-numeric objects) or sparse input; the message contains
        "Unknown label type" as in scikit-learn.
    ValueError
        Wrong shape, length mismatch, NaN or values other than 0 and 1.
    """
    try:
        array = _as_array(y, arg, "binary labels (0 = normal, 1 = defective)")
    except TypeError as exc:
        raw = np.asarray(y, dtype=object) if not _is_sparse(y) else None
        names = sorted({str(v) for v in raw.ravel()[:100_000]}) if raw is not None else []
        if names and len(names) <= 10 and all(isinstance(v, str) for v in raw.ravel()[:100_000]):
            hint = (f" {arg} holds the strings {names}: map them to 0 = normal and 1 = defective first, e.g. "
                    f"{arg} = (np.asarray({arg}) == {names[0]!r}).astype(int) if {names[0]!r} is the defective "
                    "class.")
        else:
            hint = ""
        raise TypeError(f"Unknown label type: {exc}{hint}") from exc
    if array.ndim == 2 and array.shape[1] == 1:
        array = array[:, 0]
    if array.ndim != 1:
        raise ValueError(
            f"{arg} must be 1-D of shape (n_samples,) or (n_samples, 1); got {describe(array)}."
        )
    if n_samples is not None:
        _check_label_count(array, n_samples, arg, x_arg)
    if array.dtype.kind == "b":
        return array.astype(np.int64)
    if array.dtype.kind == "f" and np.isnan(array).any():
        first = int(np.flatnonzero(np.isnan(array))[0])
        raise ValueError(
            f"{arg} must be binary with 0 = normal and 1 = defective; got NaN at index {first} "
            f"({describe(array)})."
        )
    binary = (array == 0) | (array == 1)
    if not binary.all():
        values = np.unique(array).tolist()
        shown = values if len(values) <= 10 else [*values[:10], "..."]
        # scikit-learn's words for the two kinds of non-binary target, so code that catches them still does
        with np.errstate(invalid="ignore"):  # infinity is continuous too
            integral = array.dtype.kind != "f" or bool(np.all(np.isfinite(array) & (np.mod(array, 1) == 0)))
        kind = "multiclass" if integral else "continuous"
        raise ValueError(
            f"{arg} must be binary with 0 = normal and 1 = defective; got {kind} values {shown} "
            f"({describe(array)}). Only binary classification is supported. The type of the target is {kind}."
        )
    return array.astype(np.int64)


def _check_label_count(labels: np.ndarray, n_samples: int, arg: str = "y", x_arg: str = "X") -> None:
    if labels.shape[0] != n_samples:
        raise ValueError(
            f"{arg} and {x_arg} must have the same length: {arg} has {labels.shape[0]} labels (shape "
            f"{labels.shape}) but {x_arg} has {n_samples} images."
        )


def check_groups(groups: Any, n_samples: int, *, arg: str = "groups", x_arg: str = "X") -> np.ndarray | None:
    """Validate the group label of each image (the part, tile or capture session it shows).

    Parameters
    ----------
    groups : array-like or None
        ``(n,)`` hashable labels of any dtype (integers, strings, ...); None means no groups.
    n_samples : int
        Number of images.

    Returns
    -------
    numpy.ndarray or None
        int64 group codes ``0 .. n_groups - 1`` of shape ``(n_samples,)``, or None.

    Raises
    ------
    TypeError
        Sparse input.
    ValueError
        Not 1-D, a length other than ``n_samples``, or a missing value (NaN / None).
    """
    if groups is None:
        return None
    if _is_sparse(groups):
        raise TypeError(f"{arg} must be a dense 1-D array-like of group labels; got {describe(groups)}.")
    array = np.asarray(groups)
    if array.ndim != 1:
        raise ValueError(f"{arg} must be 1-D of shape (n_samples,), one group label per image; got "
                         f"{describe(array)}.")
    _check_label_count(array, n_samples, arg, x_arg)
    missing = (np.isnan(array) if array.dtype.kind == "f"
               else np.array([v is None or (isinstance(v, float) and v != v) for v in array], dtype=bool)
               if array.dtype.kind == "O" else np.zeros(len(array), dtype=bool))
    if missing.any():
        raise ValueError(f"{arg} must give every image a group label; got a missing value (NaN or None) at index "
                         f"{int(np.flatnonzero(missing)[0])} ({describe(array)}).")
    codes = np.unique(array.astype(str) if array.dtype.kind == "O" else array, return_inverse=True)[1]
    return codes.reshape(-1).astype(np.int64)


# ----------------------------------------------------------------------------------------------------------
# everything at fit
# ----------------------------------------------------------------------------------------------------------
def check_fit_inputs(
    X: Any,
    y: Any = None,
    masks: Any = None,
    *,
    image_shape: Sequence[int] | None = None,
    require: str = "masks_or_labels",
) -> tuple[ImageData, np.ndarray | None, np.ndarray | None]:
    """Validate the arguments of ``fit`` together.

    Parameters
    ----------
    X : array-like
        Images; see :func:`check_images`.
    y : array-like, optional
        Image labels in {0, 1}; see :func:`check_labels`. When None and ``masks`` are given, ``y`` is derived
        as "the mask has at least one defective pixel".
    masks : array-like, optional
        Pixel masks; see :func:`check_masks`.
    image_shape : tuple of int, optional
        Shape of flattened images; see :func:`check_images`.
    require : {"masks_or_labels", "masks", "none"}, default="masks_or_labels"
        What supervision must be present: ``y`` or ``masks``; ``masks`` (pixel-supervised); or nothing
        (one-class training, ``y`` may be None).

    Returns
    -------
    images : ImageData
        The validated images.
    y : numpy.ndarray or None
        int64 labels of shape ``(n,)``; None only when ``require="none"`` and neither ``y`` nor ``masks`` was
        given.
    masks : numpy.ndarray or None
        Bool masks of shape ``(n, H, W)``, or None.

    Raises
    ------
    ValueError
        Missing required supervision, an image labelled 0 (normal) whose mask has defective pixels, or any
        error of the single-argument checks. An image labelled 1 with an empty mask is allowed: its defect is
        known to exist but not where (mixed supervision).
    TypeError
        From the single-argument checks.
    """
    if require not in _REQUIRE_OPTIONS:
        raise ValueError(f"require must be one of {list(_REQUIRE_OPTIONS)}; got {require!r}.")
    # The order of scikit-learn's classifiers (whose common checks look for these errors): no target at all;
    # then X as an array; then the kind of y; then X against image_shape; then masks.
    if y is None and masks is None and require != "none":
        raise ValueError(
            f"{'masks' if require == 'masks' else 'y or masks'} is required: this estimator requires y to be "
            "passed, but the target y is None (got y=None and masks=None); pass "
            + ("masks of shape (n_samples, H, W) with fit(X, y, masks=masks)." if require == "masks" else
               "y (0 = normal, 1 = defective) of shape (n_samples,) and/or masks of shape (n_samples, H, W).")
        )
    array = _image_array(X, "X")
    labels = None if y is None else check_labels(y, None)
    images = check_images(array, image_shape=image_shape)
    if labels is not None:
        _check_label_count(labels, images.n_samples)
    if require == "masks" and masks is None:
        raise ValueError(
            "masks is required: this estimator is trained with pixel masks; call fit(X, y, masks=masks) with "
            f"masks of shape (n, H, W) = {(images.n_samples, images.height, images.width)}; got masks=None."
        )
    mask_array = None if masks is None else check_masks(masks, images)
    if mask_array is not None:
        has_defect = mask_array.any(axis=(1, 2))
        if labels is None:
            labels = has_defect.astype(np.int64)
        else:
            conflict = np.flatnonzero((labels == 0) & has_defect)
            if conflict.size:
                shown = conflict[:5].tolist()
                more = f" and {conflict.size - 5} more" if conflict.size > 5 else ""
                raise ValueError(
                    f"y and masks disagree: {conflict.size} image(s) labelled y == 0 (normal) have defective "
                    f"pixels in masks, at indices {shown}{more}. Fix y or masks (an image with y == 1 may "
                    "have an empty mask, but not the reverse)."
                )
    return images, labels, mask_array
