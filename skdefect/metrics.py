"""Detection metrics, one small function each (NumPy only), as the papers and the benchmarks report them.

=================================  ===================================================================
:func:`average_precision`          step-wise AP, ``Σ (R_k − R_{k−1}) P_k`` (scikit-learn's
                                   ``average_precision_score``)
:func:`pr_auc_trapezoid`           area under the PR curve by the trapezoidal rule (what SegDecNet's
                                   code reports as AP: ``auc(recall, precision)``)
:func:`roc_auc`                    area under the ROC curve (ties count one half)
:func:`f1_max_threshold`           the score threshold that maximises F1
:func:`pixel_roc_auc`,             AUROC / AP over every pixel of the images whose mask is known
:func:`pixel_average_precision`
=================================  ===================================================================

Scores are "higher = more defective"; labels are 0 / 1. Every function agrees with scikit-learn's to
floating-point precision (tested).
"""

from __future__ import annotations

import numpy as np

__all__ = [
    "average_precision",
    "f1_max_threshold",
    "pixel_average_precision",
    "pixel_roc_auc",
    "pr_auc_trapezoid",
    "roc_auc",
]


def _check(y: np.ndarray, scores: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    y = np.asarray(y).ravel()
    scores = np.asarray(scores, dtype=np.float64).ravel()
    if y.shape != scores.shape:
        raise ValueError(f"y and scores must have the same length, got {y.shape[0]} and {scores.shape[0]}")
    if not np.isin(y, (0, 1)).all():
        raise ValueError("y must hold 0 (normal) and 1 (defective) only")
    if not (y == 1).any() or not (y == 0).any():
        raise ValueError("y must hold both classes (0 and 1) for this metric")
    return y.astype(np.int64), scores


def _curve(y: np.ndarray, scores: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Cumulative true and false positives at every distinct score, highest score first."""
    order = np.argsort(-scores, kind="mergesort")
    s, t = scores[order], y[order]
    last = np.r_[np.flatnonzero(np.diff(s)), len(s) - 1]  # the last index of each run of tied scores
    tp = np.cumsum(t)[last]
    fp = (last + 1) - tp
    return tp.astype(np.float64), fp.astype(np.float64)


def average_precision(y: np.ndarray, scores: np.ndarray) -> float:
    """Step-wise average precision of the defective class: ``Σ_k (R_k − R_{k−1}) · P_k``."""
    y, scores = _check(y, scores)
    tp, fp = _curve(y, scores)
    precision = tp / (tp + fp)
    recall = tp / tp[-1]
    return float(np.sum(np.diff(np.r_[0.0, recall]) * precision))


def pr_auc_trapezoid(y: np.ndarray, scores: np.ndarray) -> float:
    """Area under the precision-recall curve by the trapezoidal rule, starting at (recall 0, precision 1)."""
    y, scores = _check(y, scores)
    tp, fp = _curve(y, scores)
    precision = np.r_[1.0, tp / (tp + fp)]
    recall = np.r_[0.0, tp / tp[-1]]
    return float(np.trapezoid(precision, recall))


def roc_auc(y: np.ndarray, scores: np.ndarray) -> float:
    """Area under the ROC curve: the chance that a defective image outscores a normal one (ties count ½)."""
    y, scores = _check(y, scores)
    tp, fp = _curve(y, scores)
    tpr = np.r_[0.0, tp / tp[-1]]
    fpr = np.r_[0.0, fp / fp[-1]]
    return float(np.trapezoid(tpr, fpr))


def f1_max_threshold(scores: np.ndarray, y: np.ndarray) -> float:
    """The score threshold maximising F1 on ``(scores, y)``: midway to the next lower distinct score.

    ``predict`` calls a score defective when ``score >= threshold``.
    """
    scores = np.asarray(scores, dtype=np.float64).ravel()
    y = np.asarray(y).ravel()
    order = np.argsort(-scores, kind="stable")
    s, t = scores[order], y[order]
    tp = np.cumsum(t)
    fp = np.cumsum(1 - t)
    f1 = 2 * tp / (tp + fp + t.sum())
    distinct = np.r_[s[1:] != s[:-1], True]  # a threshold can only sit between distinct scores
    f1 = np.where(distinct, f1, -1)
    k = int(np.argmax(f1))
    return float(s[k] if k + 1 == len(s) else (s[k] + s[k + 1]) / 2)


def _pixels(maps: np.ndarray, masks: np.ndarray, known: np.ndarray | None) -> tuple[np.ndarray, np.ndarray]:
    maps, masks = np.asarray(maps), np.asarray(masks)
    if maps.shape != masks.shape:
        raise ValueError(f"maps and masks must have the same shape, got {maps.shape} and {masks.shape}")
    if known is not None:
        maps, masks = maps[np.asarray(known, dtype=bool)], masks[np.asarray(known, dtype=bool)]
    return masks.ravel().astype(np.int64), maps.ravel()


def pixel_roc_auc(maps: np.ndarray, masks: np.ndarray, known: np.ndarray | None = None) -> float:
    """AUROC over every pixel of the images whose mask is known (``known``, default all)."""
    return roc_auc(*_pixels(maps, masks, known))


def pixel_average_precision(maps: np.ndarray, masks: np.ndarray, known: np.ndarray | None = None) -> float:
    """Step-wise AP over every pixel of the images whose mask is known (``known``, default all)."""
    return average_precision(*_pixels(maps, masks, known))
