"""Bad input, case by case: every refusal names the argument, what was expected and what was received.

One parametrized matrix over both estimators and the dataset loaders. Every case asserts the exception type
(``ValueError``/``TypeError``, or ``NotFittedError``) and that the message matches *all* of its patterns: the
argument's name, the expected form and the value received. Then: a refused re-fit leaves a fitted estimator
exactly as it was, and no training epoch ever starts before a refusal.
"""

from __future__ import annotations

import ast
import re
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest
import scipy.sparse
from sklearn.exceptions import NotFittedError
from sklearn.metrics import average_precision_score
from skorch.callbacks import Callback

from skdefect import ConcentratedTwoStageDetector, DualDiscriminatorGANDetector
from skdefect.datasets import load_image_folder, load_mnist_oneclass, make_surface_defects

TS_FAST = dict(width=0.25, seg_epochs=1, dec_epochs=1, batch_size=8, random_state=0, device="cpu", augment=False)
GAN_FAST = dict(width=0.25, epochs=1, batch_size=8, random_state=0, device="cpu")

_rng = np.random.default_rng(0)
# two-stage data: 16 gray 16x16 images, every other one defective with a square mask
X16 = _rng.integers(0, 256, size=(16, 16, 16), dtype=np.uint8)
Y16 = np.arange(16) % 2
M16 = np.zeros((16, 16, 16), dtype=bool)
M16[Y16 == 1, 4:9, 4:9] = True
# GAN data: 12 gray 32x32 float images in [0, 1] (the generator needs sides that are multiples of 16, >= 24)
X32 = _rng.random((12, 32, 32)).astype(np.float32)
Y32 = (np.arange(12) % 3 == 0).astype(np.int64)


def _with(array: np.ndarray, index: Any, value: Any) -> np.ndarray:
    out = array.astype(np.float32 if array.dtype == np.uint8 else array.dtype, copy=True)
    out[index] = value
    return out


def ts_fit(X: Any = X16, y: Any = Y16, masks: Any = M16, **params: Any) -> Callable[[], Any]:
    return lambda: ConcentratedTwoStageDetector(**{**TS_FAST, **params}).fit(X, y, masks=masks)


def gan_fit(X: Any = X32, y: Any = Y32, **params: Any) -> Callable[[], Any]:
    return lambda: DualDiscriminatorGANDetector(**{**GAN_FAST, **params}).fit(X, y)


@pytest.fixture(scope="module")
def fitted_ts() -> ConcentratedTwoStageDetector:
    return ConcentratedTwoStageDetector(**TS_FAST).fit(X16, Y16, masks=M16)


@pytest.fixture(scope="module")
def fitted_gan() -> DualDiscriminatorGANDetector:
    return DualDiscriminatorGANDetector(**GAN_FAST).fit(X32, Y32)


# (id, action, exception, patterns that must all occur in the message)
CASES: list[tuple[str, Callable[[], Any], type[Exception], list[str]]] = [
    # -- images -------------------------------------------------------------------------------------------------
    ("X-5d", ts_fit(X=X16[:, None, :, :, None]), ValueError, [r"\bX must be images", r"got 5-D"]),
    ("X-1d", ts_fit(X=np.zeros(16)), ValueError, [r"\bX must be images", r"got 1-D"]),
    ("X-2d-without-image_shape", ts_fit(X=X16.reshape(16, -1)), ValueError,
     [r"\bX is 2-D", r"image_shape=\(H, W\)", r"\(16, 256\)"]),
    ("X-two-channels", gan_fit(X=np.stack([X32, X32], axis=-1)), ValueError,
     [r"\bX has 2 channels", r"expected 1 or 3", r"got array of shape \(12, 32, 32, 2\)"]),
    ("X-channels-first", ts_fit(X=np.repeat(X16[:, None], 3, axis=1)), ValueError,
     [r"\bX has 16 channels", r"expected 1 or 3", r"channels-first", r"transpose\(0, 2, 3, 1\)"]),
    ("X-empty", ts_fit(X=X16[:0], y=Y16[:0], masks=M16[:0]), ValueError,
     [r"\bX is empty", r"at least one image", r"shape \(0, 16, 16\)"]),
    ("X-None", gan_fit(X=None), TypeError, [r"\bX must be an array-like of images", r"got None"]),
    ("X-strings", ts_fit(X=X16.astype(str)), TypeError,
     [r"\bX must have a boolean, integer or floating dtype", r"dtype <U3"]),
    ("X-object-non-numeric", gan_fit(X=np.full((12, 32, 32), "a", dtype=object)), TypeError,
     [r"\bX must hold numbers", r"dtype object"]),
    ("X-complex", gan_fit(X=X32.astype(np.complex64)), ValueError,
     [r"Complex data not supported", r"\bX must have a boolean, integer or floating dtype", r"complex64"]),
    ("X-sparse", ts_fit(X=scipy.sparse.csr_matrix(X16.reshape(16, -1)), image_shape=(16, 16)), TypeError,
     [r"\bX is a sparse matrix", r"pass a dense array"]),
    ("X-NaN", ts_fit(X=_with(X16 / 255.0, (3, 2, 2), np.nan)), ValueError,
     [r"\bX must contain finite values only", r"got NaN in image 3"]),
    ("X-inf", gan_fit(X=_with(X32, (5, 0, 0), -np.inf)), ValueError,
     [r"\bX must contain finite values only", r"got infinity in image 5"]),
    ("X-float-out-of-range-gan", gan_fit(X=X32 * 255.0), ValueError,
     [r"\bX must hold float images in \[0, 1\]", r"got values in \[", r"255"]),
    ("X-too-small", ts_fit(X=X16[:, :1, :], masks=M16[:, :1, :]), ValueError,
     [r"\bX must hold images of at least 2x2 pixels", r"got images of \(H, W\) = \(1, 16\)"]),
    ("X-size-not-divisible", ts_fit(X=X16[:, :12, :12], masks=M16[:, :12, :12]), ValueError,
     [r"\bX has images of 12x12 pixels", r"divisible by 8", r"set image_size"]),
    # -- image_shape / image_size ---------------------------------------------------------------------------------
    ("image_shape-mismatch", ts_fit(X=X16.reshape(16, -1), image_shape=(8, 8)), ValueError,
     [r"\bX has 256 feature\(s\) per sample", r"image_shape=\(8, 8\) needs H\*W\*C = 64"]),
    ("image_shape-two-channels", ts_fit(X=X16.reshape(16, -1), image_shape=(16, 8, 2)), ValueError,
     [r"image_shape must have 1 or 3 channels", r"got 2 channels"]),
    ("image_shape-not-a-tuple", ts_fit(image_shape="16x16"), ValueError,
     [r"'image_shape' parameter", r"must be", r"Got '16x16'"]),
    ("image_size-not-multiple", ts_fit(image_size=30), ValueError,
     [r"image_size must be an int or \(height, width\)", r"multiples of 8", r"got 30"]),
    ("image_size-wrong-length", gan_fit(image_size=(32,)), ValueError,
     [r"image_size must be an int or \(height, width\)", r"got \(32,\)"]),
    ("image_size-below-discriminator-minimum", gan_fit(image_size=16), ValueError,
     [r"image_size", r"at least 24", r"got 16"]),
    ("image_size-string", gan_fit(image_size="big"), ValueError,
     [r"'image_size' parameter", r"must be", r"Got 'big'"]),
    # -- labels and masks -----------------------------------------------------------------------------------------
    ("y-length", ts_fit(y=Y16[:15]), ValueError,
     [r"\by and X must have the same length", r"y has 15 labels", r"X has 16 images"]),
    ("y-not-binary", gan_fit(y=np.where(Y32 == 1, 2, 0)), ValueError,
     [r"\by must be binary with 0 = normal and 1 = defective", r"got multiclass values \[0, 2\]"]),
    ("y-NaN", ts_fit(y=_with(Y16.astype(float), 4, np.nan)), ValueError,
     [r"\by must be binary", r"got NaN at index 4"]),
    ("y-strings", ts_fit(y=np.where(Y16 == 1, "bad", "good")), TypeError,
     [r"Unknown label type", r"\by must have a boolean, integer or floating dtype", r"dtype <U4"]),
    ("y-2d", gan_fit(y=np.c_[Y32, Y32]), ValueError, [r"\by must be 1-D", r"got array of shape \(12, 2\)"]),
    ("y-only-anomalies-gan", gan_fit(y=np.ones(12, dtype=int)), ValueError,
     [r"\by contains only anomalies \(1\)", r"needs normal images \(0\)"]),
    ("y-single-class-two-stage", ts_fit(y=np.zeros(16, dtype=int), masks=np.zeros_like(M16)), ValueError,
     [r"\by must contain both classes", r"got only class 0 in 16 images"]),
    ("masks-missing", ts_fit(masks=None), ValueError, [r"\bmasks is required", r"shape \(n, H, W\)", r"masks=None"]),
    ("masks-length", ts_fit(masks=M16[:10]), ValueError,
     [r"\bmasks and X must have the same length", r"masks has 10 samples", r"X has 16 images"]),
    ("masks-other-size", ts_fit(masks=M16[:, :8, :8]), ValueError,
     [r"\bmasks must have the spatial shape \(H, W\) = \(16, 16\)", r"got masks of shape \(16, 8, 8\)"]),
    ("masks-not-binary", ts_fit(masks=M16 * 0.5), ValueError,
     [r"\bmasks must be binary: bool, \{0, 1\} or \{0, 255\}", r"got other values such as \[0.5\]"]),
    ("masks-1-and-255", ts_fit(masks=np.where(M16, 255, 0) + (np.arange(16)[:, None, None] == 2)), ValueError,
     [r"\bmasks must be binary", r"got a mix of the values 0, 1 and 255"]),
    ("masks-strings", ts_fit(masks=M16.astype(str)), TypeError,
     [r"\bmasks must have a boolean, integer or floating dtype", r"dtype <U5"]),
    ("masks-on-a-normal-image", ts_fit(y=np.zeros(16, dtype=int)), ValueError,
     [r"\by and masks disagree", r"labelled y == 0 \(normal\) have defective pixels", r"indices \[1, 3, 5, 7, 9\]"]),
    ("masks-no-known-defect", ts_fit(masks=np.zeros_like(M16)), ValueError,
     [r"\bmasks: no defective image has a non-empty mask", r"give at least one pixel mask"]),
    # -- hyperparameters (sklearn's parameter validation: "The 'x' parameter ... must be ... Got ... instead") ------
    ("gamma-negative", ts_fit(gamma=-1.0), ValueError,
     [r"'gamma' parameter of ConcentratedTwoStageDetector must be a float in the range \[0.0, inf\)", r"Got -1.0"]),
    ("gamma-string", ts_fit(gamma="high"), ValueError, [r"'gamma' parameter", r"must be a float", r"Got 'high'"]),
    ("dice_weight-above-1", ts_fit(dice_weight=1.5), ValueError,
     [r"'dice_weight' parameter", r"range \[0.0, 1.0\]", r"Got 1.5"]),
    ("seg_epochs-float", ts_fit(seg_epochs=2.5), ValueError,
     [r"'seg_epochs' parameter", r"must be an int", r"Got 2.5"]),
    ("batch_size-zero", gan_fit(batch_size=0), ValueError, [r"'batch_size' parameter", r"range \[1, inf\)", r"Got 0"]),
    ("lr-zero", ts_fit(lr=0.0), ValueError, [r"'lr' parameter", r"range \(0.0, inf\)", r"Got 0.0"]),
    ("lr-inf", gan_fit(lr=float("inf")), ValueError, [r"'lr' parameter", r"range \(0.0, inf\)", r"Got inf"]),
    ("w_abc-inf", gan_fit(w_abc=float("inf")), ValueError, [r"'w_abc' parameter", r"range \[0.0, inf\)", r"Got inf"]),
    ("abc_error-unknown", gan_fit(abc_error="max"), ValueError,
     [r"'abc_error' parameter", r"'mean'", r"'patch'", r"Got 'max'"]),
    ("width-negative", gan_fit(width=-0.5), ValueError, [r"'width' parameter", r"range \(0.0, inf\)", r"Got -0.5"]),
    ("augment-unknown", ts_fit(augment="rotations"), ValueError,
     [r"'augment' parameter", r"'flips'", r"'dihedral'", r"Got 'rotations'"]),
    ("norm-unknown", ts_fit(norm="layer"), ValueError,
     [r"'norm' parameter", r"must be a str among \{", r"'batch'", r"Got 'layer'"]),
    ("precision-unknown", gan_fit(precision="fp8"), ValueError, [r"'precision' parameter", r"'bf16'", r"Got 'fp8'"]),
    ("compile-unknown-mode", ts_fit(compile="fast"), ValueError,
     [r"'compile' parameter", r"'reduce-overhead'", r"Got 'fast'"]),
    ("compile-number", gan_fit(compile=2), ValueError, [r"'compile' parameter", r"bool", r"Got 2"]),
    ("score-unknown", gan_fit(anomaly_score="latent"), ValueError,
     [r"'anomaly_score' parameter", r"'patch'", r"Got 'latent'"]),
    ("contamination-too-high", gan_fit(contamination=0.9), ValueError,
     [r"'contamination' parameter", r"range \(0.0, 0.5\]", r"Got 0.9"]),
    ("epochs-zero", gan_fit(epochs=0), ValueError, [r"'epochs' parameter", r"range \[1, inf\)", r"Got 0"]),
    ("random_state-string", ts_fit(random_state="seed"), ValueError,
     [r"'random_state' parameter", r"RandomState", r"Got 'seed'"]),
    ("callbacks-not-a-list", gan_fit(callbacks=Callback()), ValueError,
     [r"'callbacks' parameter", r"must be None or an instance of 'list'", r"Got <skorch"]),
    ("checkpoint_dir-number", ts_fit(checkpoint_dir=3), ValueError,
     [r"'checkpoint_dir' parameter", r"must be None, an instance of 'str' or an instance of 'os.PathLike'",
      r"Got 3"]),
    ("device-unknown", ts_fit(device="tpu"), ValueError,
     [r"\bdevice must be 'auto' or a torch device such as 'cpu', 'cuda'", r"got 'tpu'"]),
    # -- plugin names ---------------------------------------------------------------------------------------------
    ("backbone-unknown", ts_fit(backbone="resnet9000"), ValueError,
     [r"\bbackbone='resnet9000'", r"unknown backbone 'resnet9000'", r"available backbones: .*wang2022"]),
    ("loss-unknown", ts_fit(loss="tversky9"), ValueError,
     [r"\bloss='tversky9'", r"unknown loss 'tversky9'", r"available losses: .*concentrated"]),
    ("sampler-unknown-ts", ts_fit(sampler="stratified"), ValueError,
     [r"\bsampler='stratified'", r"unknown sampler", r"available samplers: .*balanced"]),
    ("sampler-unknown-gan", gan_fit(sampler="stratified"), ValueError,
     [r"\bsampler='stratified'", r"unknown sampler", r"available samplers: .*kmeans"]),
    ("generator-unknown", gan_fit(generator="dcgan"), ValueError,
     [r"\bgenerator='dcgan'", r"unknown backbone 'dcgan'", r"available backbones: .*unet_generator"]),
    ("discriminator-unknown", gan_fit(discriminator="nope"), ValueError,
     [r"\bdiscriminator='nope'", r"unknown backbone 'nope'", r"available backbones: .*patch_discriminator"]),
    ("backbone-not-two-stage", ts_fit(backbone="unet_generator"), ValueError,
     [r"\bbackbone 'unet_generator' is not a two-stage network", r"no 'segmentation' submodule"]),
    ("generator-without-encode", gan_fit(generator="patch_discriminator"), ValueError,
     [r"\bgenerator 'patch_discriminator' has no encode\(x\) method"]),
    # -- dataset loaders ------------------------------------------------------------------------------------------
    ("make_surface_defects-n_samples", lambda: make_surface_defects(n_samples=0), ValueError,
     [r"\bn_samples must be an int >= 1", r"got 0"]),
    ("make_surface_defects-n_samples-type", lambda: make_surface_defects(n_samples=2.5), TypeError,
     [r"\bn_samples must be an int >= 1", r"got float 2.5"]),
    ("make_surface_defects-image_shape", lambda: make_surface_defects(image_shape=(8, 64)), ValueError,
     [r"\bimage_shape entries must be >= 16", r"got \(8, 64\)"]),
    ("make_surface_defects-defect_fraction", lambda: make_surface_defects(defect_fraction=1.5), ValueError,
     [r"\bdefect_fraction must be a float in \[0, 1\]", r"got 1.5"]),
    ("make_surface_defects-n_channels", lambda: make_surface_defects(n_channels=2), ValueError,
     [r"\bn_channels", r"1 or 3", r"got 2"]),
    ("make_surface_defects-texture", lambda: make_surface_defects(textures=("marble",)), ValueError,
     [r"\btextures must contain names from", r"'brick'", r"got 'marble'"]),
    ("make_surface_defects-random_state", lambda: make_surface_defects(random_state="x"), TypeError,
     [r"\brandom_state must be None, an int", r"got str"]),
    ("load_image_folder-layout", lambda: load_image_folder(".", layout="coco"), ValueError,
     [r"\blayout must be one of", r"'mvtec'", r"got 'coco'"]),
    ("load_image_folder-mask_threshold", lambda: load_image_folder(".", mask_threshold=300), ValueError,
     [r"\bmask_threshold must be an int in \[0, 254\]", r"got 300"]),
    ("load_image_folder-color", lambda: load_image_folder(".", color="cmyk"), ValueError,
     [r"\bcolor must be one of \('gray', 'rgb'\)", r"got 'cmyk'"]),
    ("load_mnist_oneclass-normal_class", lambda: load_mnist_oneclass(10), ValueError,
     [r"\bnormal_class must be an int in 0..9", r"got 10"]),
    ("load_mnist_oneclass-test_size", lambda: load_mnist_oneclass(0, test_size=1.5), ValueError,
     [r"\btest_size must be in", r"got 1.5"]),
]


@pytest.mark.parametrize(("action", "exc", "patterns"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_bad_input_is_refused_with_a_message_naming_argument_expected_and_received(action, exc, patterns):
    with pytest.raises(exc) as info:
        action()
    message = str(info.value)
    missing = [p for p in patterns if not re.search(p, message)]
    assert not missing, f"message {message!r} lacks {missing}"


def test_the_matrix_is_large_and_its_cases_distinct():
    ids = [c[0] for c in CASES]
    assert len(ids) == len(set(ids)) >= 30


# -- prediction-time refusals -------------------------------------------------------------------------------------
@pytest.mark.parametrize("estimator", [ConcentratedTwoStageDetector, DualDiscriminatorGANDetector])
@pytest.mark.parametrize("method", ["predict", "predict_proba", "decision_function", "score_samples"])
def test_predict_before_fit_is_not_fitted_error(estimator, method):
    with pytest.raises(NotFittedError, match=rf"This {estimator.__name__} instance is not fitted yet"):
        getattr(estimator(), method)(X32)


def test_pixel_maps_before_fit_are_not_fitted_errors():
    with pytest.raises(NotFittedError):
        ConcentratedTwoStageDetector().segment(X16)
    with pytest.raises(NotFittedError):
        DualDiscriminatorGANDetector().anomaly_map(X32)


def _predict_cases(fitted_ts, fitted_gan):
    rgb16 = np.repeat(X16[..., None], 3, axis=-1)
    return [
        (fitted_ts.predict, X16[:, :8, :8], [r"\bX has images of shape \(H, W, C\) = \(8, 8, 1\)",
                                            r"fitted on images of shape \(H, W, C\) = \(16, 16, 1\)"]),
        (fitted_ts.segment, rgb16, [r"\(16, 16, 3\)", r"fitted on images of shape \(H, W, C\) = \(16, 16, 1\)"]),
        (fitted_ts.decision_function, X16.reshape(16, -1), [r"\bX is 2-D", r"image_shape"]),
        (fitted_gan.predict_proba, X32[:, :16], [r"\(16, 32, 1\)", r"fitted on images of shape \(H, W, C\) = "
                                                                   r"\(32, 32, 1\)"]),
        (fitted_gan.anomaly_map, np.repeat(X32[..., None], 3, axis=-1), [r"\(32, 32, 3\)", r"\(32, 32, 1\)"]),
        (fitted_gan.decision_function, _with(X32, (0, 1, 1), np.nan), [r"\bX must contain finite values",
                                                                       r"NaN in image 0"]),
        # float images of 0-255: refused at predict as at fit, for both detectors
        (fitted_ts.predict, X16.astype(np.float32), [r"\bX must hold float images in \[0, 1\]",
                                                     r"got values in \[\d+, 255\]", r"Divide 0-255 images by 255"]),
        (fitted_gan.predict, X32 * 255.0, [r"\bX must hold float images in \[0, 1\]", r"Divide 0-255"]),
    ]


def test_predict_on_other_image_shapes_is_refused(fitted_ts, fitted_gan):
    for i, (method, X, patterns) in enumerate(_predict_cases(fitted_ts, fitted_gan)):
        with pytest.raises((ValueError, TypeError)) as info:
            method(X)
        missing = [p for p in patterns if not re.search(p, str(info.value))]
        assert not missing, f"case {i}: {info.value!s} lacks {missing}"


# -- a refused re-fit keeps the fitted state, and nothing trains before a refusal -------------------------------
class RecordTraining(Callback):
    """Counts training starts and epochs in a list owned by the test (survives skorch's initialize)."""

    def __init__(self, log: list) -> None:
        self.log = log

    def on_train_begin(self, net, **kwargs):  # noqa: ANN001
        self.log.append("train")

    def on_epoch_begin(self, net, **kwargs):  # noqa: ANN001
        self.log.append("epoch")


REFIT_TS = [
    dict(X=X16[:, :12, :12], masks=M16[:, :12, :12]),  # a size the network cannot take
    dict(y=Y16[:10]),
    dict(masks=M16 * 0.5),
    dict(params={"loss": "nope"}),
    dict(params={"gamma": -2.0}),
    dict(params={"image_size": 12}),
    dict(X=X16.astype(np.float32)),  # float images of 0-255
]
REFIT_GAN = [
    dict(X=X32 * 2.0),
    dict(y=np.ones(12, dtype=int)),
    dict(params={"generator": "nope"}),
    dict(params={"epochs": 0}),
    dict(params={"image_size": 20}),
]


@pytest.mark.parametrize("kind", ["two_stage", "gan"])
def test_refused_refit_keeps_fitted_state_and_no_epoch_runs(kind):
    log: list[str] = []
    if kind == "two_stage":
        det = ConcentratedTwoStageDetector(**TS_FAST, callbacks=[("record", RecordTraining(log))])
        data, cases = dict(X=X16, y=Y16, masks=M16), REFIT_TS
    else:
        det = DualDiscriminatorGANDetector(**GAN_FAST, callbacks=[("record", RecordTraining(log))])
        data, cases = dict(X=X32, y=Y32), REFIT_GAN
    X_eval = data["X"]
    det.fit(**data)
    assert log.count("train") == 1 and log.count("epoch") > 0  # the recorder does see training
    net, history, threshold = det.net_, [dict(row) for row in det.net_.history], det.threshold_
    scores, params = det.decision_function(X_eval), det.get_params()
    del log[:]
    for case in cases:
        det.set_params(**case.get("params", {}))
        bad = {**data, **{k: v for k, v in case.items() if k != "params"}}
        with pytest.raises((ValueError, TypeError)):
            det.fit(**bad)
        det.set_params(**params)
        assert log == [], f"{case}: training started before the refusal"
        assert det.net_ is net and det.threshold_ == threshold
        assert [dict(row) for row in det.net_.history] == history
    np.testing.assert_array_equal(det.decision_function(X_eval), scores)


def test_gan_score_method_is_reachable(fitted_gan):
    # the hyperparameter is `anomaly_score`: a parameter named `score` used to shadow sklearn's score(X, y)
    assert fitted_gan.score(X32, Y32) == pytest.approx(average_precision_score(Y32, fitted_gan.decision_function(X32)))


@pytest.mark.parametrize(("divisor", "min_side"), [(16, 24), (8, 8), (4, 24), (32, 40), (16, None)])
@pytest.mark.parametrize("size", [(1000, 10), (10, 10), (23, 17), (48, 47), (10000, 10)])
def test_the_image_size_hint_is_a_value_its_own_check_accepts(divisor, min_side, size):
    """The GAN once suggested (10000, 24) for 10000x10 images, then refused 24 (not a multiple of 16)."""
    from skdefect._base import resolve_image_size
    with pytest.raises(ValueError, match="set image_size") as info:
        resolve_image_size(None, size, divisor, min_side)
    hint = ast.literal_eval(re.search(r"image_size=(\(.*?\))", str(info.value)).group(1))
    assert resolve_image_size(hint, size, divisor, min_side) == hint
    assert all(h >= s for h, s in zip(hint, size, strict=True))


def test_the_gan_accepts_the_image_size_it_suggests():
    X = np.random.default_rng(0).random((4, 40, 10))
    with pytest.raises(ValueError, match="set image_size") as info:
        DualDiscriminatorGANDetector(epochs=1, width=0.25).fit(X)
    hint = ast.literal_eval(re.search(r"image_size=(\(.*?\))", str(info.value)).group(1))
    det = DualDiscriminatorGANDetector(epochs=1, width=0.25, image_size=hint, batch_size=4).fit(X)
    assert det.image_size_ == hint


@pytest.mark.parametrize("kind", ["two_stage", "gan"])
def test_images_scaled_unlike_the_training_images_warn(kind, recwarn):
    """uint8 at fit, then float images divided by 255 twice: every value is in [0, 1], so only the
    brightness seen at fit can tell. A few odd images among normal ones do not warn."""
    X, y, masks = make_surface_defects(n_samples=24, image_shape=(32, 32), random_state=0)
    det = (ConcentratedTwoStageDetector(width=0.25, seg_epochs=1, dec_epochs=1, batch_size=8, device="cpu")
           .fit(X, y, masks=masks) if kind == "two_stage"
           else DualDiscriminatorGANDetector(width=0.25, epochs=1, batch_size=8, device="cpu").fit(X, y))
    lo, hi = det.brightness_range_
    assert 0 <= lo <= hi <= 1
    with pytest.warns(UserWarning, match="median image has mean intensity .* were these images scaled the same"):
        det.decision_function(X.astype(np.float32) / 255 / 255)
    recwarn.clear()
    mixed = X.astype(np.float32) / 255
    mixed[:3] /= 255
    det.decision_function(mixed)
    det.decision_function(X)
    assert not [w for w in recwarn if "mean intensity" in str(w.message)]
