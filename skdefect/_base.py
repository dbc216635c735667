"""What both detectors share: the sklearn binary-detector contract, devices, seeding."""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from numbers import Integral, Real
from pathlib import Path
from typing import Any

import numpy as np
import torch
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.metrics import average_precision_score
from sklearn.utils._param_validation import Interval, StrOptions
from sklearn.utils.validation import check_is_fitted

from ._runtime import COMPILE_MODES
from ._validation import (
    ImageData,
    check_brightness,
    check_image_shape_matches,
    check_images,
    check_unit_range,
    image_brightness,
)
from .metrics import f1_max_threshold

__all__ = [
    "SHARED_CONSTRAINTS",
    "BaseDefectDetector",
    "FixedValidation",
    "f1_max_threshold",
    "holdout_split",
    "resolve_image_size",
    "resolve_plugin",
]


def resolve_image_size(
    image_size: Any, input_size: tuple[int, int], divisor: int, min_side: int | None = None
) -> tuple[int, int]:
    """The (h, w) the network sees: ``image_size`` or the input's ``(height, width)``, which must suit the network.

    Sides must be multiples of ``divisor`` and at least ``min_side`` (default ``divisor``).
    """
    low = max(divisor, min_side or divisor)
    if image_size is None:
        size = (int(input_size[0]), int(input_size[1]))
        if size[0] % divisor or size[1] % divisor or min(size) < low:
            # the nearest sides at least as large that this same check accepts
            hint = tuple(-(-max(low, s) // divisor) * divisor for s in size)
            raise ValueError(
                f"X has images of {size[0]}x{size[1]} pixels, but the network needs sides divisible by "
                f"{divisor} and at least {low}; set image_size (e.g. image_size={hint})"
            )
        return size
    size = (image_size, image_size) if isinstance(image_size, (int, np.integer)) else tuple(image_size)
    if len(size) != 2 or any(not isinstance(s, (int, np.integer)) or s % divisor or s < low for s in size):
        raise ValueError(
            f"image_size must be an int or (height, width) with sides that are multiples of {divisor} "
            f"and at least {low}, got {image_size!r}"
        )
    return int(size[0]), int(size[1])


def resolve_plugin(getter: Callable[[str], Any], name: str, arg: str) -> Any:
    """``getter(name)`` (a :mod:`skdefect.plugins` lookup), its refusal naming the estimator argument.

    ``generator='dcgan': unknown backbone 'dcgan'; available backbones: ...``
    """
    try:
        return getter(name)
    except (ValueError, TypeError) as exc:
        raise type(exc)(f"{arg}={name!r}: {exc}") from None


#: ``augment="auto"`` leaves the transposes out where the training images' spectrum is more asymmetric than in
#: every one of 99 random transpositions of them (:func:`skdefect.training.data.transpose_test`, p-value 0.01).
TRANSPOSE_P_VALUE = 0.01

#: Constraints of the parameters both detectors share (networks, training, data, runtime); each detector's
#: ``_parameter_constraints`` adds its own to these.
SHARED_CONSTRAINTS: dict = {
    "sampler": [str],
    "width": [Interval(Real, 0, None, closed="neither")],
    "augment": ["boolean", StrOptions({"flips", "dihedral", "auto"})],
    "lr": [Interval(Real, 0, None, closed="neither")],
    "batch_size": [Interval(Integral, 1, None, closed="left")],
    "validation_fraction": [Interval(Real, 0, 0.5, closed="both")],
    "early_stopping": ["boolean"],
    "n_iter_no_change": [Interval(Integral, 1, None, closed="left")],
    "lr_schedule": [StrOptions({"plateau", "cosine", "constant"})],
    "image_size": [None, Interval(Integral, 1, None, closed="left"), tuple, list],
    "image_shape": [None, tuple, list],
    "device": [str],
    "precision": [StrOptions({"auto", "fp32", "bf16", "fp16"})],
    "compile": ["boolean", StrOptions(set(COMPILE_MODES))],
    "random_state": ["random_state"],
    "verbose": ["verbose"],
    "callbacks": [None, list],
    "checkpoint_dir": [None, str, os.PathLike],
}


def holdout_split(
    y: np.ndarray, fraction: float, seed: int, groups: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray | None]:
    """A stratified hold-out: ``(train rows, validation rows)``, or ``(all rows, None)``.

    Each class gives ``round(fraction · n_class)`` of its images (at least one when it has two or
    more, never its last one) to validation; ``fraction=0`` or a part with no image gives no
    validation. Rows keep their order within each part.

    With ``groups`` (int codes, :func:`~skdefect._validation.check_groups`) whole groups go to
    validation: the groups, in random order, are taken while each class they hold is still short of
    its share and keeps at least one training image, so a class reaches about its share (a group may
    take it past it) or, when all its images share one group, gives none.
    """
    n = len(y)
    if fraction <= 0:
        return np.arange(n), None
    rng = np.random.RandomState(seed)
    classes, counts = np.unique(y, return_counts=True)
    share = {c: min(k - 1, max(1 if k >= 2 else 0, int(round(fraction * k))))
             for c, k in zip(classes, counts, strict=True)}
    if groups is None:
        valid = [rng.choice(np.flatnonzero(y == c), size=share[c], replace=False) for c in classes]
    else:
        valid, taken, left = [], dict.fromkeys(classes, 0), dict(zip(classes, counts, strict=True))
        order = np.argsort(groups, kind="stable")
        members = np.split(order, np.flatnonzero(np.diff(groups[order])) + 1)
        for g in rng.permutation(len(members)):
            rows = members[g]
            held = dict(zip(*np.unique(y[rows], return_counts=True), strict=True))
            if all(taken[c] < share[c] and left[c] - k >= 1 for c, k in held.items()):
                valid.append(rows)
                for c, k in held.items():
                    taken[c], left[c] = taken[c] + k, left[c] - k
            if all(taken[c] >= share[c] for c in classes):
                break
    valid_rows = np.sort(np.concatenate(valid)).astype(np.int64) if valid else np.empty(0, np.int64)
    if not len(valid_rows):
        return np.arange(n), None
    return np.setdiff1d(np.arange(n), valid_rows), valid_rows


class FixedValidation:
    """skorch ``train_split``: the training source as given, and a fixed validation source."""

    def __init__(self, valid: Any) -> None:
        self.valid = valid

    def __call__(self, dataset: Any, y: Any = None, **fit_params: Any) -> tuple[Any, Any]:
        return dataset, self.valid


class BaseDefectDetector(ClassifierMixin, BaseEstimator):
    """One contract for both detectors (see the table in the user guide).

    Subclasses implement ``_fit`` and ``_decision_scores(images) -> ndarray`` and
    set ``threshold_``; this class gives ``predict``, ``predict_proba``,
    ``decision_function``, ``score_samples`` and ``score``.
    """

    def __sklearn_tags__(self):  # noqa: ANN204
        tags = super().__sklearn_tags__()
        tags.input_tags.two_d_array = True
        tags.non_deterministic = False
        tags.classifier_tags.multi_class = False
        return tags

    # -- shared helpers -------------------------------------------------------------
    def _check_predict_images(self, X: Any) -> ImageData:
        check_is_fitted(self, "threshold_")
        images = check_images(X, image_shape=getattr(self, "image_shape", None), arg="X")
        check_image_shape_matches(images, self.input_shape_, arg="X")
        check_unit_range(images)  # the rule of fit: float images of 0-255 would be scored as if 255 times brighter
        check_brightness(images, getattr(self, "brightness_range_", None))
        return images

    def _set_input_attributes(self, images: ImageData, image_size: tuple[int, int]) -> None:
        """The fitted attributes both detectors derive from the training images."""
        brightness = image_brightness(images)
        self.classes_ = np.array([0, 1])
        self.input_shape_ = images.image_shape
        self.n_features_in_ = int(np.prod(images.image_shape))
        self.image_size_ = image_size
        self.brightness_range_ = (float(brightness.min()), float(brightness.max()))

    def _size_rule(self, channels: int) -> tuple[int, int | None]:
        """``(divisor, min_side)`` of the networks ``fit`` would build for images of ``channels``."""
        raise NotImplementedError

    def _check_input_size(self, height: int, width: int, channels: int) -> tuple[int, int] | None:
        """The ``image_size_`` that ``fit`` would resolve for images of ``(height, width, channels)``, or fit's
        ``ValueError``, before any image is read. The networks are built on the ``meta`` device (no storage);
        None where a plugin network cannot be (``fit`` then checks)."""
        try:
            with torch.device("meta"):
                divisor, min_side = self._size_rule(channels)
        except (ValueError, TypeError):
            raise
        except Exception:  # noqa: BLE001 - a third-party network may not support the meta device
            return None
        return resolve_image_size(self.image_size, (height, width), divisor, min_side)

    def _proba_from_scores(self, scores: np.ndarray) -> np.ndarray:
        """P(defect) from decision scores; subclasses define the monotone map."""
        raise NotImplementedError

    def _holdout(
        self, labels: np.ndarray, seed: int, groups: np.ndarray | None = None
    ) -> tuple[np.ndarray, np.ndarray | None]:
        """Training and validation rows (``validation_fraction``, stratified by ``labels``, whole ``groups``)."""
        return holdout_split(labels, float(self.validation_fraction), seed, groups)

    def _train_net(
        self,
        build_net: Callable[..., Any],
        source: Any,
        valid: Any,
        sampler: Any,
        seed: int,
        checkpoint: tuple[Any, Any],
    ) -> Any:
        """The steps of ``fit`` both detectors share around their own net: features for a sampler that asks for
        them, the arguments every skorch net takes (callbacks, sampler, augmentation seed, checkpoint,
        validation / early stopping / schedule), training, and dropping the validation data from the net.

        ``build_net(**shared)`` builds the detector's skorch net with its own arguments already bound."""
        from .plugins import needs_features
        from .training.data import sampler_features

        features = sampler_features(source, torch.device("cpu")) if needs_features(sampler) else None
        net = build_net(
            callbacks=self._skorch_callbacks(),
            verbose=self.verbose,
            sampler=sampler,
            features=features,
            augment=self._resolve_augment(source, seed),
            augment_seed=seed,
            checkpoint=checkpoint[0],
            checkpoint_meta=checkpoint[1],
            **self._training_kwargs(valid),
        )
        net.fit(source, None)
        net.train_split = None  # the validation source holds the data: not part of the fitted estimator
        return net

    def _resolve_augment(self, source: Any, seed: int) -> bool | str:
        """``augment`` with ``"auto"`` resolved on the training images: the flips, and the transposes too unless
        the images can be told from their transposes (:func:`skdefect.training.data.transpose_test`)."""
        if isinstance(self.augment, str) and self.augment == "auto":
            from .training.data import transpose_test

            test = transpose_test(source, seed)
            mode = "flips" if np.isnan(test.p_value) or test.p_value <= TRANSPOSE_P_VALUE else "dihedral"
            self._report(f"augment='auto': the training images' spectrum is {test.asymmetry:.2f} times as "
                         f"asymmetric as under random transposes (p = {test.p_value:.2f}): {mode}")
            return mode
        return self.augment

    def _training_kwargs(self, valid_source: Any) -> dict[str, Any]:
        """The skorch net's arguments for validation, early stopping and the learning-rate schedule."""
        return {
            "train_split": None if valid_source is None else FixedValidation(valid_source),
            "early_stopping": bool(self.early_stopping),
            "n_iter_no_change": int(self.n_iter_no_change),
            "lr_schedule": None if self.lr_schedule == "constant" else self.lr_schedule,
        }

    def _report(self, message: str) -> None:
        """One line about a step after training (memories, score choice, threshold) when ``verbose``."""
        if self.verbose:
            print(f"{type(self).__name__}: {message}", flush=True)

    def _skorch_callbacks(self) -> list:
        """The user's skorch callbacks, plus a progress bar when ``verbose``."""
        callbacks = list(self.callbacks or [])
        if self.verbose:
            from skorch.callbacks import ProgressBar

            callbacks.append(("progress_bar", ProgressBar()))
        return callbacks

    # -- the public contract --------------------------------------------------------
    def decision_function(self, X: Any) -> np.ndarray:
        """Defect score per image: higher = more defective.

        Parameters
        ----------
        X : array-like of shape (n, H, W), (n, H, W, C) or (n, H*W*C)
            Images of the shape seen at fit.

        Returns
        -------
        scores : ndarray of shape (n,)
        """
        return self._decision_scores(self._check_predict_images(X))

    def score_samples(self, X: Any) -> np.ndarray:
        """sklearn's normality score: the negated :meth:`decision_function` (higher = more normal)."""
        return -self.decision_function(X)

    def predict_proba(self, X: Any) -> np.ndarray:
        """Probabilities of the classes ``[0, 1]``; column 1 is P(defect).

        Returns
        -------
        proba : ndarray of shape (n, 2)
        """
        p1 = self._proba_from_scores(self.decision_function(X))
        return np.column_stack([1.0 - p1, p1])

    def proba_from_decision(self, scores: Any) -> np.ndarray:
        """P(defect) of images whose :meth:`decision_function` is ``scores``, without running the networks
        again (column 1 of :meth:`predict_proba`; the CLI scores a folder once and reports both).

        Parameters
        ----------
        scores : array-like of shape (n,)
            Values returned by :meth:`decision_function`.

        Returns
        -------
        proba : ndarray of shape (n,)
        """
        check_is_fitted(self, "threshold_")
        scores = np.asarray(scores, dtype=np.float64)
        if scores.ndim != 1:
            raise ValueError(f"scores must be 1-D, as decision_function returns them; got shape {scores.shape}.")
        return self._proba_from_scores(scores)

    def predict(self, X: Any) -> np.ndarray:
        """0 = normal, 1 = defective, by comparing the score with ``threshold_``.

        Returns
        -------
        labels : ndarray of shape (n,) and dtype int64
        """
        return (self.decision_function(X) >= self.threshold_).astype(np.int64)

    # -- model files (skdefect.persistence) and ONNX (skdefect.export) -----------------
    #: Fitted attributes inference reads: a model file must hold them (:func:`skdefect.load`).
    _inference_attributes: tuple[str, ...] = (
        "classes_", "threshold_", "input_shape_", "image_size_", "n_features_in_", "n_parameters_"
    )

    def _modules_from_attributes(self, attrs: Mapping[str, Any]) -> dict[str, torch.nn.Module]:
        """The fitted networks' modules, untrained, by the skorch net's module names, from a model file's
        fitted attributes (:func:`skdefect.load` builds them on the ``meta`` device first)."""
        raise NotImplementedError

    def _net_from_attributes(self, attrs: Mapping[str, Any], device: torch.device) -> Any:
        """An initialised-to-be, untrained skorch net shaped like the fitted one (:func:`skdefect.load`)."""
        raise NotImplementedError

    def _export_graph(self) -> tuple[torch.nn.Module, str, str, dict[str, str]]:
        """``(graph, score doc, map doc, extra metadata)`` for :func:`skdefect.export.export_onnx`: the graph maps
        an image batch ``(n, C, H, W)`` in [0, 1] to ``(score (n,), map (n, H, W))`` with the estimator's own
        scorer."""
        raise NotImplementedError

    def save(self, path: str | os.PathLike[str]) -> Path:
        """Write the fitted detector to one model file (safetensors weights + JSON configuration).

        No pickle: :func:`skdefect.load` reads it back without running code from the file.

        Parameters
        ----------
        path : str or os.PathLike
            File to write (replaced atomically); ``.skdefect`` is the customary suffix.

        Returns
        -------
        path : pathlib.Path
        """
        from .persistence import save_estimator

        return save_estimator(self, path)

    def to_onnx(self, path: str | os.PathLike[str], *, opset: int = 17) -> Path:
        """Export the inference path image → (``score``, ``map``) to ONNX (needs ``skdefect[onnx]``).

        Input ``image``: float32 (batch, C, H, W) in [0, 1] at the fit-time input size (uint8 images
        divided by 255); the resize and normalisation the detector applies are in the graph.

        Parameters
        ----------
        path : str or os.PathLike
            The ``.onnx`` file to write.
        opset : int, default=17
            ONNX opset (at least 13).

        Returns
        -------
        path : pathlib.Path
        """
        from .export import export_onnx

        return export_onnx(self, path, opset=opset)

    def score(self, X: Any, y: Any, sample_weight: Any = None) -> float:
        """Average precision of the defect class (step-wise, sklearn's ``average_precision_score``)."""
        from ._validation import check_labels

        scores = self.decision_function(X)
        y = check_labels(y, len(scores), arg="y")
        return float(average_precision_score(y, scores, sample_weight=sample_weight))
