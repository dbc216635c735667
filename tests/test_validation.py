"""Tests for skdefect._validation: every accepted layout and every error with its message."""

from __future__ import annotations

import re
import tracemalloc
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from skdefect._validation import (
    CHUNK_SIZE,
    ImageData,
    check_fit_inputs,
    check_image_shape,
    check_image_shape_matches,
    check_images,
    check_labels,
    check_masks,
)

RNG = np.random.default_rng(0)


def _images(n: int = 4, h: int = 8, w: int = 8) -> ImageData:
    return check_images(np.zeros((n, h, w), dtype=np.uint8))


def _with_nan(shape: tuple[int, ...], index: tuple[int, ...], value: float = np.nan) -> np.ndarray:
    array = np.zeros(shape, dtype=np.float32)
    array[index] = value
    return array


class _FakeSparse:
    """Quacks like a scipy sparse matrix (nnz, toarray, format)."""

    nnz = 0
    format = "csr"

    def toarray(self) -> np.ndarray:  # pragma: no cover - never called
        return np.zeros((2, 16))


# ----------------------------------------------------------------------------------------------------------
# error cases: (call, exception type, substrings the message must contain)
# ----------------------------------------------------------------------------------------------------------
IMAGE_ERRORS: list[tuple[str, Callable[[], Any], type[Exception], list[str]]] = [
    ("empty", lambda: check_images(np.zeros((0, 8, 8))), ValueError, ["X", "empty", "(0, 8, 8)"]),
    ("empty-list", lambda: check_images([]), ValueError, ["X", "empty", "(0,)"]),
    ("1-D", lambda: check_images(np.zeros(10)), ValueError, ["X", "1-D", "(10,)", "(n, H, W)"]),
    ("0-D", lambda: check_images(np.float64(3.0)), ValueError, ["X", "0-D", "()"]),
    (
        "5-D",
        lambda: check_images(np.zeros((2, 4, 4, 1, 1))),
        ValueError,
        ["X", "5-D", "(2, 4, 4, 1, 1)", "(n, H, W, C)"],
    ),
    (
        "4-channels",
        lambda: check_images(np.zeros((2, 8, 8, 4))),
        ValueError,
        ["X has 4 channels in its last axis; expected 1 or 3", "(2, 8, 8, 4)"],
    ),
    (
        "channels-first",
        lambda: check_images(np.zeros((2, 3, 8, 8), dtype=np.uint8)),
        ValueError,
        ["X has 8 channels", "(2, 3, 8, 8)", "uint8", "transpose(0, 2, 3, 1)"],
    ),
    (
        "2-D-without-image_shape",
        lambda: check_images(np.zeros((2, 64))),
        ValueError,
        ["X", "image_shape=(H, W) or (H, W, C)", "(2, 64)"],
    ),
    (
        "flattened-length-mismatch",
        lambda: check_images(np.zeros((2, 64)), image_shape=(8, 9)),
        ValueError,
        ["X has 64 feature(s)", "(2, 64)", "image_shape=(8, 9)", "72"],
    ),
    (
        "flattened-length-mismatch-rgb",
        lambda: check_images(np.zeros((2, 64)), image_shape=(8, 8, 3)),
        ValueError,
        ["X has 64 feature(s)", "image_shape=(8, 8, 3)", "192"],
    ),
    (
        "image_shape-disagrees-with-3-D",
        lambda: check_images(np.zeros((2, 8, 8)), image_shape=(8, 9)),
        ValueError,
        ["image_shape=(8, 9)", "X", "(8, 8, 1)"],
    ),
    (
        "image_shape-channels-disagree-with-4-D",
        lambda: check_images(np.zeros((2, 8, 8, 3)), image_shape=(8, 8, 1)),
        ValueError,
        ["image_shape=(8, 8, 1)", "X", "(8, 8, 3)"],
    ),
    ("image_shape-1-entry", lambda: check_images(np.zeros((2, 64)), image_shape=(64,)), ValueError,
     ["image_shape", "1 entries", "(64,)"]),
    ("image_shape-4-entries", lambda: check_images(np.zeros((2, 64)), image_shape=(4, 4, 4, 1)), ValueError,
     ["image_shape", "4 entries"]),
    ("image_shape-4-channels", lambda: check_images(np.zeros((2, 64)), image_shape=(4, 4, 4)), ValueError,
     ["image_shape", "4 channels", "(4, 4, 4)"]),
    ("image_shape-zero", lambda: check_images(np.zeros((2, 64)), image_shape=(0, 8)), ValueError,
     ["image_shape", "at least 2", "(0, 8)"]),
    ("image_shape-negative", lambda: check_images(np.zeros((2, 64)), image_shape=(-8, -8)), ValueError,
     ["image_shape", "(-8, -8)"]),
    ("image_shape-float", lambda: check_images(np.zeros((2, 64)), image_shape=(8.0, 8)), TypeError,
     ["image_shape", "float", "(8.0, 8)"]),
    ("image_shape-int", lambda: check_images(np.zeros((2, 64)), image_shape=64), TypeError,
     ["image_shape", "int", "64"]),
    ("image_shape-str", lambda: check_images(np.zeros((2, 64)), image_shape="88"), TypeError,
     ["image_shape", "str", "'88'"]),
    ("image_shape-bool", lambda: check_images(np.zeros((2, 4)), image_shape=(True, 4)), TypeError,
     ["image_shape", "bool"]),
    (
        "object-non-numeric",
        lambda: check_images(np.array([[{"a": 1}, 1.0]] * 2, dtype=object)),
        TypeError,
        ["X", "dtype object", "argument must be a string or a real number"],
    ),
    ("string-dtype", lambda: check_images(np.full((2, 4, 4), "a")), TypeError, ["X", "<U1", "(2, 4, 4)"]),
    ("bytes-dtype", lambda: check_images(np.full((2, 4, 4), b"a")), TypeError, ["X", "|S1"]),
    ("complex-dtype", lambda: check_images(np.zeros((2, 4, 4), dtype=np.complex128)), ValueError,
     ["X", "complex128", "(2, 4, 4)"]),
    ("datetime-dtype", lambda: check_images(np.zeros((2, 4, 4), dtype="datetime64[s]")), TypeError,
     ["X", "datetime64[s]"]),
    ("None", lambda: check_images(None), TypeError, ["X", "None"]),
    ("sparse", lambda: check_images(_FakeSparse()), TypeError, ["X", "sparse", "_FakeSparse"]),
    (
        "ragged-list",
        lambda: check_images([np.zeros((4, 4)), np.zeros((5, 4))]),
        ValueError,
        ["X", "same shape", "list"],
    ),
    (
        "nan",
        lambda: check_images(_with_nan((3, 4, 4), (1, 2, 2))),
        ValueError,
        ["X", "NaN", "image 1", "(3, 4, 4)", "float32"],
    ),
    (
        "inf",
        lambda: check_images(_with_nan((3, 4, 4, 3), (2, 0, 0, 1), np.inf)),
        ValueError,
        ["X", "infinity", "image 2", "(3, 4, 4, 3)"],
    ),
    (
        "nan-flattened",
        lambda: check_images(_with_nan((3, 16), (2, 15)), image_shape=(4, 4)),
        ValueError,
        ["X", "NaN", "image 2", "(3, 16)"],
    ),
    ("too-small-1x8", lambda: check_images(np.zeros((2, 1, 8))), ValueError, ["X", "2x2", "(1, 8)", "(2, 1, 8)"]),
    ("too-small-8x1x3", lambda: check_images(np.zeros((2, 8, 1, 3))), ValueError, ["X", "2x2", "(8, 1)"]),
    ("arg-name", lambda: check_images(np.zeros(3), arg="X_test"), ValueError, ["X_test", "(3,)"]),
]

MASK_ERRORS: list[tuple[str, Callable[[], Any], type[Exception], list[str]]] = [
    (
        "length",
        lambda: check_masks(np.zeros((3, 8, 8)), _images(4)),
        ValueError,
        ["masks", "3 samples", "(3, 8, 8)", "X has 4"],
    ),
    (
        "spatial",
        lambda: check_masks(np.zeros((4, 8, 9)), _images(4)),
        ValueError,
        ["masks", "(H, W) = (8, 8)", "(4, 8, 9)"],
    ),
    (
        "flattened-length",
        lambda: check_masks(np.zeros((4, 63)), _images(4)),
        ValueError,
        ["masks", "63 values", "(8, 8)", "(4, 63)"],
    ),
    (
        "three-channel",
        lambda: check_masks(np.zeros((4, 8, 8, 3)), _images(4)),
        ValueError,
        ["masks", "(4, 8, 8, 3)", "(n, H, W, 1)"],
    ),
    ("1-D", lambda: check_masks(np.zeros(4), _images(4)), ValueError, ["masks", "(4,)"]),
    ("scalar", lambda: check_masks(0, _images(4)), ValueError, ["masks", "scalar", "X has 4"]),
    (
        "non-binary-int",
        lambda: check_masks(np.array([0, 1, 2, 7] * 64, dtype=np.int64).reshape(4, 8, 8), _images(4)),
        ValueError,
        ["masks", "[2, 7]", "int64", "(4, 8, 8)"],
    ),
    (
        "non-binary-negative",
        lambda: check_masks(-np.ones((4, 8, 8), dtype=np.int8), _images(4)),
        ValueError,
        ["masks", "[-1]", "int8"],
    ),
    (
        "non-binary-float",
        lambda: check_masks(np.full((4, 8, 8), 0.5), _images(4)),
        ValueError,
        ["masks", "[0.5]", "float64"],
    ),
    (
        "mixed-1-and-255",
        lambda: check_masks(np.array([0, 1, 255, 0] * 64, dtype=np.uint8).reshape(4, 8, 8), _images(4)),
        ValueError,
        ["masks", "mix", "255", "uint8"],
    ),
    (
        "nan",
        lambda: check_masks(_with_nan((4, 8, 8), (3, 0, 0)), _images(4)),
        ValueError,
        ["masks", "NaN", "mask 3", "float32"],
    ),
    (
        "object",
        lambda: check_masks(np.full((4, 8, 8), "x", dtype=object), _images(4)),
        TypeError,
        ["masks", "dtype object", "(4, 8, 8)"],
    ),
    ("string", lambda: check_masks(np.full((4, 8, 8), "1"), _images(4)), TypeError, ["masks", "<U1"]),
    ("None", lambda: check_masks(None, _images(4)), TypeError, ["masks", "None"]),
    (
        "x-arg-name",
        lambda: check_masks(np.zeros((3, 8, 8)), check_images(np.zeros((4, 8, 8)), arg="X_val")),
        ValueError,
        ["masks", "X_val has 4"],
    ),
]

LABEL_ERRORS: list[tuple[str, Callable[[], Any], type[Exception], list[str]]] = [
    ("length", lambda: check_labels([0, 1, 0], 4), ValueError, ["y", "3 labels", "(3,)", "X has 4"]),
    ("continuous", lambda: check_labels([0.0, 0.5, 1.0, 0.0], 4), ValueError,
     ["y", "got continuous values [0.0, 0.5, 1.0]", "The type of the target is continuous"]),
    ("infinity", lambda: check_labels([0.0, 1.0, np.inf, 0.0], 4), ValueError, ["y", "continuous", "inf"]),
    (
        "non-binary",
        lambda: check_labels([0, 1, 2, 0], 4),
        ValueError,
        ["y must be binary with 0 = normal and 1 = defective; got multiclass values [0, 1, 2]",
         "Only binary classification is supported", "int64"],
    ),
    (
        "non-binary-float",
        lambda: check_labels(np.array([0.0, 0.5, 1.0]), 3),
        ValueError,
        ["y must be binary", "[0.0, 0.5, 1.0]", "float64"],
    ),
    ("minus-one", lambda: check_labels([-1, 1, 1], 3), ValueError, ["y must be binary", "[-1, 1]"]),
    ("nan", lambda: check_labels([0.0, np.nan, 1.0], 3), ValueError, ["y", "NaN", "index 1", "float64"]),
    ("strings", lambda: check_labels(["ok", "defect"], 2), TypeError,
     ["y", "<U6", "Unknown label type", "['defect', 'ok']", "map them to 0 = normal and 1 = defective"]),
    (
        "object-strings",
        lambda: check_labels(np.array(["ok", "defect"], dtype=object), 2),
        TypeError,
        ["y", "dtype object", "Unknown label type", "map them to 0 = normal and 1 = defective"],
    ),
    ("complex", lambda: check_labels(np.zeros(2, dtype=complex), 2), ValueError,
     ["Complex data not supported", "y", "complex128"]),
    ("2-columns", lambda: check_labels(np.zeros((4, 2)), 4), ValueError, ["y", "(n_samples,)", "(4, 2)"]),
    ("scalar", lambda: check_labels(1, 1), ValueError, ["y", "1-D", "shape ()"]),
    ("None", lambda: check_labels(None, 3), TypeError, ["y", "None"]),
    ("sparse", lambda: check_labels(_FakeSparse(), 3), TypeError, ["y", "sparse"]),
    ("arg-names", lambda: check_labels([0, 1], 3, arg="y_val", x_arg="X_val"), ValueError, ["y_val", "X_val"]),
]


def _fit_conflict() -> Any:
    masks = np.zeros((6, 8, 8), dtype=bool)
    masks[[1, 4], 2, 2] = True
    return check_fit_inputs(np.zeros((6, 8, 8)), y=[0, 0, 0, 0, 0, 0], masks=masks)


FIT_ERRORS: list[tuple[str, Callable[[], Any], type[Exception], list[str]]] = [
    (
        "require-unknown",
        lambda: check_fit_inputs(np.zeros((2, 4, 4)), [0, 1], require="pixels"),
        ValueError,
        ["require", "'pixels'", "masks_or_labels"],
    ),
    (
        "require-masks",
        lambda: check_fit_inputs(np.zeros((2, 4, 4)), [0, 1], require="masks"),
        ValueError,
        ["masks is required", "(2, 4, 4)", "masks=None"],
    ),
    (
        "require-labels-or-masks",
        lambda: check_fit_inputs(np.zeros((2, 4, 4))),
        ValueError,
        ["y or masks is required", "y=None", "masks=None"],
    ),
    ("y0-with-defect-mask", _fit_conflict, ValueError, ["y", "masks", "y == 0", "indices [1, 4]"]),
    (
        "images-checked-first",
        lambda: check_fit_inputs(np.zeros((2, 8, 8, 4)), [0, 1]),
        ValueError,
        ["X has 4 channels"],
    ),
    (
        "labels-checked",
        lambda: check_fit_inputs(np.zeros((2, 4, 4)), [0, 2]),
        ValueError,
        ["y must be binary", "[0, 2]"],
    ),
    (
        "masks-checked",
        lambda: check_fit_inputs(np.zeros((2, 4, 4)), masks=np.zeros((2, 4, 5))),
        ValueError,
        ["masks", "(2, 4, 5)"],
    ),
    (
        "shape-mismatch-after-fit",
        lambda: check_image_shape_matches(_images(2, 8, 9), (8, 8, 1)),
        ValueError,
        ["X", "(8, 9, 1)", "(8, 8, 1)", "fitted"],
    ),
    (
        "channel-mismatch-after-fit",
        lambda: check_image_shape_matches(check_images(np.zeros((2, 8, 8, 3))), (8, 8)),
        ValueError,
        ["X", "(8, 8, 3)", "(8, 8, 1)"],
    ),
    (
        "batch_size",
        lambda: next(_images().iter_batches(0)),
        ValueError,
        ["batch_size", "positive", "0"],
    ),
]


def _ids(cases: list[tuple[str, Any, Any, Any]]) -> list[str]:
    return [case[0] for case in cases]


@pytest.mark.parametrize(
    ("name", "call", "exc_type", "fragments"),
    IMAGE_ERRORS + MASK_ERRORS + LABEL_ERRORS + FIT_ERRORS,
    ids=_ids(IMAGE_ERRORS) + [f"masks-{n}" for n in _ids(MASK_ERRORS)]
    + [f"y-{n}" for n in _ids(LABEL_ERRORS)] + [f"fit-{n}" for n in _ids(FIT_ERRORS)],
)
def test_errors_name_argument_and_received_value(
    name: str, call: Callable[[], Any], exc_type: type[Exception], fragments: list[str]
) -> None:
    with pytest.raises(exc_type) as info:
        call()
    assert type(info.value) is exc_type
    message = str(info.value)
    for fragment in fragments:
        assert fragment in message, f"{fragment!r} not in {message!r}"


# ----------------------------------------------------------------------------------------------------------
# images: accepted layouts and scaling
# ----------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("shape", "image_shape", "expected"),
    [
        ((5, 6, 7), None, (6, 7, 1)),
        ((5, 6, 7, 1), None, (6, 7, 1)),
        ((5, 6, 7, 3), None, (6, 7, 3)),
        ((5, 42), (6, 7), (6, 7, 1)),
        ((5, 42), (6, 7, 1), (6, 7, 1)),
        ((5, 126), (6, 7, 3), (6, 7, 3)),
        ((5, 6, 7), (6, 7), (6, 7, 1)),
        ((5, 6, 7, 3), (6, 7), (6, 7, 3)),
        ((5, 6, 7, 3), np.array([6, 7, 3]), (6, 7, 3)),
    ],
)
def test_accepted_layouts(shape: tuple[int, ...], image_shape: Any, expected: tuple[int, int, int]) -> None:
    data = RNG.integers(0, 256, size=shape, dtype=np.uint8)
    images = check_images(data, image_shape=image_shape)
    assert images.image_shape == expected
    assert (images.n_samples, images.height, images.width, images.channels) == (5, *expected)
    assert len(images) == 5
    assert images.dtype == np.uint8
    raw = images.raw(slice(None))
    assert raw.shape == (5, *expected)
    assert np.shares_memory(raw, data)
    np.testing.assert_array_equal(raw.reshape(-1), data.reshape(-1))
    batch = images.batch(slice(None))
    assert batch.shape == (5, expected[2], expected[0], expected[1])
    assert batch.dtype == np.float32
    assert batch.flags.c_contiguous
    np.testing.assert_allclose(batch, raw.transpose(0, 3, 1, 2) / 255.0, rtol=1e-6)


def test_ndarray_input_is_not_copied() -> None:
    data = np.zeros((3, 4, 4, 3), dtype=np.float32)
    images = check_images(data)
    assert images.data is data


def test_list_of_images() -> None:
    images = check_images([np.full((4, 5), i, dtype=np.uint8) for i in range(3)])
    assert images.image_shape == (4, 5, 1)
    np.testing.assert_allclose(images.batch([2])[0, 0], np.full((4, 5), 2 / 255), rtol=1e-6)


def test_dataframe_input() -> None:
    pd = pytest.importorskip("pandas")
    frame = pd.DataFrame(RNG.random((4, 12)))
    images = check_images(frame, image_shape=(2, 2, 3))
    assert images.image_shape == (2, 2, 3)
    np.testing.assert_allclose(
        images.batch(slice(None)), frame.to_numpy().reshape(4, 2, 2, 3).transpose(0, 3, 1, 2), rtol=1e-6
    )


def test_object_array_of_numbers_is_numeric() -> None:
    # scikit-learn's convention (check_dtype_object): object arrays of numbers are treated as numeric.
    data = RNG.random((4, 16))
    images = check_images(data.astype(object), image_shape=(4, 4))
    assert images.dtype == np.float64
    np.testing.assert_allclose(images.raw(slice(None)).reshape(4, 16), data)


def test_object_array_error_matches_sklearn_pattern() -> None:
    data = RNG.random((4, 16)).astype(object)
    data[0, 0] = {"foo": "bar"}
    with pytest.raises(TypeError, match="argument must be .* string.* number"):
        check_images(data, image_shape=(4, 4))


def test_sparse_error_mentions_sparse() -> None:
    sparse = pytest.importorskip("scipy.sparse")
    with pytest.raises(TypeError, match="sparse"):
        check_images(sparse.csr_matrix(np.eye(4)), image_shape=(2, 2))


@pytest.mark.parametrize(
    ("dtype", "scale"),
    [
        (np.uint8, 255.0),
        (np.uint16, 65535.0),
        (np.int16, 32767.0),
        (np.uint32, float(np.iinfo(np.uint32).max)),
        (np.int64, float(np.iinfo(np.int64).max)),
        (np.float32, 1.0),
        (np.float64, 1.0),
        (np.float16, 1.0),
    ],
)
def test_batch_scaling(dtype: Any, scale: float) -> None:
    if np.dtype(dtype).kind == "f":
        data = RNG.random((3, 4, 5)).astype(dtype)
    else:
        info = np.iinfo(dtype)
        data = RNG.integers(max(info.min, -1000), info.max, size=(3, 4, 5), dtype=dtype, endpoint=True)
        data[0, 0, 0] = info.max
    images = check_images(data)
    batch = images.batch(slice(None))
    np.testing.assert_allclose(batch[:, 0], data.astype(np.float64) / scale, rtol=1e-6, atol=1e-7)
    if np.dtype(dtype).kind in "ui":
        assert batch[0, 0, 0, 0] == pytest.approx(1.0)


def test_uint8_extremes_and_bool() -> None:
    data = np.array([[[0, 255], [128, 1]]], dtype=np.uint8)
    np.testing.assert_allclose(check_images(data).batch(0)[0, 0], [[0, 1], [128 / 255, 1 / 255]], rtol=1e-6)
    flags = np.array([[[True, False], [False, True]]])
    batch = check_images(flags).batch(0)
    assert batch.dtype == np.float32
    np.testing.assert_array_equal(batch[0, 0], [[1, 0], [0, 1]])


def test_float_images_are_not_rescaled() -> None:
    # Floats are documented as expected in [0, 1] but passed through unchanged.
    data = np.array([[[-0.5, 2.0], [0.25, 1.0]]], dtype=np.float64)
    np.testing.assert_array_equal(check_images(data).batch(0)[0, 0], data[0].astype(np.float32))


def test_check_finite_false_skips_scan() -> None:
    data = _with_nan((2, 4, 4), (0, 0, 0))
    images = check_images(data, check_finite=False)
    assert np.isnan(images.batch(0)).any()


def test_channels_first_rgb() -> None:
    data = RNG.integers(0, 256, size=(2, 3, 4, 3), dtype=np.uint8)
    batch = check_images(data).batch(slice(None))
    assert batch.shape == (2, 3, 3, 4)
    for c in range(3):
        np.testing.assert_allclose(batch[:, c], data[..., c] / 255.0, rtol=1e-6)


def test_index_forms() -> None:
    data = RNG.random((7, 4, 4)).astype(np.float32)
    images = check_images(data)
    np.testing.assert_array_equal(images.batch(3), data[[3], None])
    np.testing.assert_array_equal(images.batch(np.int64(3)), data[[3], None])
    np.testing.assert_array_equal(images.batch([5, 1]), data[[5, 1], None])
    np.testing.assert_array_equal(images.batch(np.array([6, 0, 0])), data[[6, 0, 0], None])
    np.testing.assert_array_equal(images.batch(np.arange(7) % 2 == 0), data[::2, None])
    np.testing.assert_array_equal(images.batch(slice(2, 5)), data[2:5, None])
    sub = images.subset(slice(1, 4))
    assert sub.n_samples == 3 and sub.image_shape == images.image_shape and sub.arg == "X"
    np.testing.assert_array_equal(sub.batch(slice(None)), data[1:4, None])


def test_iter_batches() -> None:
    data = RNG.integers(0, 256, size=(10, 4, 4, 3), dtype=np.uint8)
    images = check_images(data)
    batches = list(images.iter_batches(4))
    assert [index for index, _ in batches] == [slice(0, 4), slice(4, 8), slice(8, 10)]
    assert [batch.shape[0] for _, batch in batches] == [4, 4, 2]
    np.testing.assert_array_equal(np.concatenate([b for _, b in batches]), images.batch(slice(None)))
    assert len(list(images.iter_batches(100))) == 1


def test_repr_mentions_shape() -> None:
    assert "(4, 5, 1)" in repr(check_images(np.zeros((2, 4, 5))))


def test_check_image_shape_normalises() -> None:
    assert check_image_shape((4, 5)) == (4, 5, 1)
    assert check_image_shape([4, 5, 3]) == (4, 5, 3)
    assert check_image_shape((np.int64(4), np.int32(5))) == (4, 5, 1)
    assert all(type(v) is int for v in check_image_shape((np.int64(4), np.int32(5))))


def test_check_image_shape_matches_accepts_equal() -> None:
    images = check_images(np.zeros((2, 8, 9, 3)))
    check_image_shape_matches(images, (8, 9, 3))
    check_image_shape_matches(_images(2, 8, 9), (8, 9))
    check_image_shape_matches(_images(2, 8, 9), [8, 9, 1])


# ----------------------------------------------------------------------------------------------------------
# memmap: validated and read without loading it whole
# ----------------------------------------------------------------------------------------------------------
def test_memmap_is_not_materialised(tmp_path: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "images.u8"
    written = np.memmap(path, dtype=np.uint8, mode="w+", shape=(64, 16, 16))
    written[:] = RNG.integers(0, 256, size=(64, 16, 16), dtype=np.uint8)
    written.flush()
    expected = np.array(written)
    del written
    mm = np.memmap(path, dtype=np.uint8, mode="r", shape=(64, 16, 16))

    whole_reads: list[str] = []
    for fname in ("asarray", "array", "asanyarray", "ascontiguousarray", "copy"):
        original = getattr(np, fname)

        def spy(obj: Any, *args: Any, _original: Any = original, _name: str = fname, **kwargs: Any) -> Any:
            if obj is mm:
                whole_reads.append(_name)
            return _original(obj, *args, **kwargs)

        monkeypatch.setattr(np, fname, spy)
    images = check_images(mm)
    head = images.raw(slice(0, 2))
    monkeypatch.undo()

    assert whole_reads == []
    assert images.data is mm
    assert isinstance(head, np.memmap)
    assert np.shares_memory(head, mm)
    assert head.shape == (2, 16, 16, 1)
    collected = np.concatenate([batch for _, batch in images.iter_batches(10)])
    np.testing.assert_allclose(collected, expected[:, None] / 255.0, rtol=1e-6)


def test_float_memmap_peak_memory_is_one_chunk(tmp_path: Any) -> None:
    n = 4 * CHUNK_SIZE
    path = tmp_path / "images.f32"
    mm = np.memmap(path, dtype=np.float32, mode="w+", shape=(n, 32, 32))
    mm[:] = 0.5
    total = mm.nbytes  # 4 MiB; one chunk of finiteness flags is 256 KiB
    tracemalloc.start()
    try:
        images = check_images(mm)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert images.n_samples == n
    assert peak < total / 4, f"peak {peak} bytes while validating a {total}-byte memmap"


@pytest.mark.parametrize(("value", "word"), [(np.nan, "NaN"), (np.inf, "infinity"), (-np.inf, "infinity")])
def test_non_finite_in_last_chunk_of_memmap(tmp_path: Any, value: float, word: str) -> None:
    n = 2 * CHUNK_SIZE + 88
    mm = np.memmap(tmp_path / "x.f32", dtype=np.float32, mode="w+", shape=(n, 8, 8))
    mm[:] = 0.25
    mm[n - 1, 7, 3] = value
    with pytest.raises(ValueError, match=rf"X must contain finite values only; got {word} in image {n - 1}\b"):
        check_images(mm)
    mm[n - 1, 7, 3] = 0.0
    assert check_images(mm).n_samples == n


# ----------------------------------------------------------------------------------------------------------
# masks
# ----------------------------------------------------------------------------------------------------------
def _mask_pattern() -> np.ndarray:
    pattern = np.zeros((3, 4, 5), dtype=bool)
    pattern[0, 1, 2] = True
    pattern[2] = True
    return pattern


@pytest.mark.parametrize(
    "convert",
    [
        pytest.param(lambda m: m, id="bool"),
        pytest.param(lambda m: m.astype(np.uint8), id="uint8-0-1"),
        pytest.param(lambda m: m.astype(np.uint8) * 255, id="uint8-0-255"),
        pytest.param(lambda m: m.astype(np.int64) * 255, id="int64-0-255"),
        pytest.param(lambda m: m.astype(np.float32), id="float-0-1"),
        pytest.param(lambda m: m.astype(np.float64) * 255, id="float-0-255"),
        pytest.param(lambda m: m[..., None].astype(np.uint8), id="n-h-w-1"),
        pytest.param(lambda m: m.reshape(3, 20).astype(np.int8), id="flattened"),
        pytest.param(lambda m: m.astype(int).tolist(), id="list"),
        pytest.param(lambda m: m.astype(object), id="object-of-bools"),
        pytest.param(lambda m: np.zeros_like(m, dtype=np.uint8), id="all-zero"),
        pytest.param(lambda m: np.full(m.shape, 255, dtype=np.uint8), id="all-255"),
    ],
)
def test_masks_accepted(convert: Callable[[np.ndarray], Any]) -> None:
    pattern = _mask_pattern()
    images = check_images(np.zeros((3, 4, 5, 3), dtype=np.uint8))
    source = convert(pattern)
    result = check_masks(source, images)
    assert result.dtype == bool
    assert result.shape == (3, 4, 5)
    if isinstance(source, np.ndarray) and source.size and source.max() == 0:
        assert not result.any()
    elif isinstance(source, np.ndarray) and source.min() == 255:
        assert result.all()
    else:
        np.testing.assert_array_equal(result, pattern)


def test_masks_bool_result_is_a_copy() -> None:
    source = _mask_pattern()
    result = check_masks(source, check_images(np.zeros((3, 4, 5))))
    result[:] = False
    assert source.any()


def test_masks_many_chunks(tmp_path: Any) -> None:
    n = CHUNK_SIZE + 10
    mm = np.memmap(tmp_path / "m.u8", dtype=np.uint8, mode="w+", shape=(n, 4, 4))
    mm[:] = 0
    mm[n - 1, 0, 0] = 255
    mm[0, 1, 1] = 255
    result = check_masks(mm, check_images(np.zeros((n, 4, 4), dtype=np.uint8)))
    assert result.sum() == 2 and result[n - 1, 0, 0] and result[0, 1, 1]
    mm[3, 0, 0] = 1  # 1 in the first chunk, 255 in both: mixed
    with pytest.raises(ValueError, match="masks .*mix"):
        check_masks(mm, check_images(np.zeros((n, 4, 4), dtype=np.uint8)))


# ----------------------------------------------------------------------------------------------------------
# labels
# ----------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "y",
    [
        pytest.param([0, 1, 1, 0], id="list"),
        pytest.param(np.array([False, True, True, False]), id="bool"),
        pytest.param(np.array([0.0, 1.0, 1.0, 0.0]), id="float"),
        pytest.param(np.array([0, 1, 1, 0], dtype=np.uint8), id="uint8"),
        pytest.param(np.array([[0], [1], [1], [0]]), id="column"),
        pytest.param(np.array([0, 1, 1, 0], dtype=object), id="object-of-ints"),
        pytest.param((0, 1, 1, 0), id="tuple"),
    ],
)
def test_labels_accepted(y: Any) -> None:
    result = check_labels(y, 4)
    assert result.dtype == np.int64
    np.testing.assert_array_equal(result, [0, 1, 1, 0])


def test_labels_pandas_series() -> None:
    pd = pytest.importorskip("pandas")
    result = check_labels(pd.Series([1, 0, 1], index=[10, 11, 12]), 3)
    np.testing.assert_array_equal(result, [1, 0, 1])
    assert result.dtype == np.int64


def test_labels_one_class_allowed() -> None:
    np.testing.assert_array_equal(check_labels(np.zeros(5), 5), np.zeros(5))


# ----------------------------------------------------------------------------------------------------------
# check_fit_inputs
# ----------------------------------------------------------------------------------------------------------
def test_fit_y_derived_from_masks() -> None:
    masks = np.zeros((4, 6, 6), dtype=np.uint8)
    masks[1, 2, 3] = 255
    masks[3] = 255
    images, y, mask_array = check_fit_inputs(np.zeros((4, 6, 6)), masks=masks)
    assert images.n_samples == 4
    assert y is not None and y.dtype == np.int64
    np.testing.assert_array_equal(y, [0, 1, 0, 1])
    assert mask_array is not None and mask_array.dtype == bool


def test_fit_positive_with_empty_mask_allowed() -> None:
    masks = np.zeros((3, 6, 6), dtype=bool)
    masks[0, 1, 1] = True
    images, y, mask_array = check_fit_inputs(np.zeros((3, 6, 6)), y=[1, 1, 0], masks=masks)
    np.testing.assert_array_equal(y, [1, 1, 0])
    assert mask_array is not None and not mask_array[1].any()


def test_fit_labels_only_and_one_class() -> None:
    _, y, masks = check_fit_inputs(np.zeros((3, 36)), [0, 1, 0], image_shape=(6, 6))
    np.testing.assert_array_equal(y, [0, 1, 0])
    assert masks is None
    images, y, masks = check_fit_inputs(np.zeros((3, 6, 6)), require="none")
    assert y is None and masks is None and images.n_samples == 3


def test_fit_require_masks_with_masks() -> None:
    masks = np.zeros((2, 4, 4), dtype=bool)
    _, y, result = check_fit_inputs(np.zeros((2, 4, 4)), masks=masks, require="masks")
    np.testing.assert_array_equal(y, [0, 0])
    assert result is not None


def test_fit_conflict_lists_only_first_indices() -> None:
    masks = np.ones((9, 4, 4), dtype=bool)
    with pytest.raises(ValueError, match=re.escape("indices [0, 1, 2, 3, 4] and 4 more")):
        check_fit_inputs(np.zeros((9, 4, 4)), np.zeros(9), masks)


# ----------------------------------------------------------------------------------------------------------
# property: batch() round-trips any valid input in channels-first layout
# ----------------------------------------------------------------------------------------------------------
_DTYPES = [np.uint8, np.uint16, np.int8, np.int32, np.uint64, np.bool_, np.float16, np.float32, np.float64]
_LAYOUTS = ["nhw", "nhwc", "flat2", "flat3"]


@st.composite
def _valid_inputs(draw: st.DrawFn) -> tuple[np.ndarray, Any, np.ndarray]:
    dtype = np.dtype(draw(st.sampled_from(_DTYPES)))
    layout = draw(st.sampled_from(_LAYOUTS))
    n = draw(st.integers(1, 4))
    h = draw(st.integers(2, 5))
    w = draw(st.integers(2, 5))
    c = 1 if layout in ("nhw", "flat2") else draw(st.sampled_from([1, 3]))
    if dtype.kind == "f":
        elements = st.floats(0, 1, width=min(dtype.itemsize * 8, 64))
    else:
        elements = None
    nhwc = draw(hnp.arrays(dtype, (n, h, w, c), elements=elements))
    if layout == "nhw":
        data, image_shape = nhwc[..., 0], None
    elif layout == "nhwc":
        data, image_shape = nhwc, None
    elif layout == "flat2":
        data, image_shape = nhwc.reshape(n, -1), (h, w)
    else:
        data, image_shape = nhwc.reshape(n, -1), (h, w, c)
    return data, image_shape, nhwc


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(inputs=_valid_inputs(), data=st.data())
def test_batch_round_trips(inputs: tuple[np.ndarray, Any, np.ndarray], data: st.DataObject) -> None:
    array, image_shape, nhwc = inputs
    images = check_images(array, image_shape=image_shape)
    n, h, w, c = nhwc.shape
    assert images.image_shape == (h, w, c)
    if nhwc.dtype.kind in "ui":
        scale = float(np.iinfo(nhwc.dtype).max)
    else:
        scale = 1.0
    expected = nhwc.astype(np.float64).transpose(0, 3, 1, 2) / scale
    np.testing.assert_allclose(images.batch(slice(None)), expected, rtol=1e-6, atol=1e-7)
    np.testing.assert_array_equal(images.raw(slice(None)), nhwc)
    index = data.draw(st.lists(st.integers(0, n - 1), min_size=1, max_size=5))
    np.testing.assert_allclose(images.batch(np.array(index)), expected[index], rtol=1e-6, atol=1e-7)
