"""Per-sample pixel losses: Tversky (Salehi et al. 2017), focal Tversky, Lovász hinge (Berman et al. 2018).

Every loss follows skdefect's calling convention for segmentation losses (see
:func:`skdefect.plugins.hookspecs.skdefect_register_losses`): it takes pixel
``logits`` of shape ``(n, 1, H, W)`` (any ``(n, ...)`` layout works, all non-batch
dimensions are flattened) and a float ``target`` of the same shape in ``[0, 1]``,
and returns **one value per sample**, a tensor of shape ``(n,)``; the caller
reduces. Half-precision inputs are computed in float32, float64 stays float64.

The ``make_*`` functions are the factories registered with skdefect: each is
called with the keyword hyperparameters it accepts and returns the loss
callable. They are module-level functions returning :func:`functools.partial`
objects, so a configured loss pickles (skorch nets are pickled with the
estimator, and searches ship estimators to joblib / Dask workers).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from functools import partial
from numbers import Real

import torch
import torch.nn.functional as F
from torch import Tensor

__all__ = [
    "tversky_index",
    "tversky_loss",
    "focal_tversky_loss",
    "lovasz_hinge_loss",
    "make_tversky",
    "make_focal_tversky",
    "make_lovasz_hinge",
]

LossFn = Callable[[Tensor, Tensor], Tensor]


def _flat_pair(logits: Tensor, target: Tensor) -> tuple[Tensor, Tensor]:
    """Both tensors as ``(n, d)`` rows in a common float compute dtype (float32 or float64)."""
    if not isinstance(logits, Tensor) or not isinstance(target, Tensor):
        raise TypeError(
            f"logits and target must be torch tensors, got {type(logits).__name__} and {type(target).__name__}"
        )
    if logits.dim() < 1 or logits.shape != target.shape:
        raise ValueError(
            f"logits and target must have the same shape (n, ...), got {tuple(logits.shape)} "
            f"and {tuple(target.shape)}"
        )
    dtype = torch.float64 if torch.float64 in (logits.dtype, target.dtype) else torch.float32
    n = logits.shape[0]
    return logits.to(dtype).reshape(n, -1), target.to(dtype).reshape(n, -1)


def _check_non_negative(name: str, value: float) -> float:
    if isinstance(value, bool) or not isinstance(value, Real) or not math.isfinite(value) or value < 0:
        raise ValueError(f"{name} must be a finite number >= 0, got {value!r}")
    return float(value)


def _check_positive(name: str, value: float) -> float:
    if isinstance(value, bool) or not isinstance(value, Real) or not math.isfinite(value) or value <= 0:
        raise ValueError(f"{name} must be a finite number > 0, got {value!r}")
    return float(value)


# ------------------------------------------------------------------------------ Tversky


def tversky_index(logits: Tensor, target: Tensor, alpha: float = 0.3, beta: float = 0.7,
                  smooth: float = 1.0) -> Tensor:
    """Soft Tversky index of each image (Salehi et al. 2017).

    ``TI = (TP + s) / (TP + α·FP + β·FN + s)`` with ``P = sigmoid(logits)`` and, summed
    over the pixels of one image, ``TP = Σ P·Y``, ``FP = Σ P·(1 − Y)``, ``FN = Σ (1 − P)·Y``.

    ``α = β = 0.5`` is the Dice coefficient and ``α = β = 1`` the Jaccard index (IoU);
    ``β > α`` weighs false negatives more, which favours recall on small defects.
    The smoothing ``s`` defines an empty target with an empty prediction as
    ``TI = 1`` (a perfect image).

    Parameters
    ----------
    logits : Tensor
        Pixel logits, shape ``(n, 1, H, W)`` (or any ``(n, ...)``).
    target : Tensor
        Ground-truth mask in ``[0, 1]``, same shape.
    alpha : float, default=0.3
        Weight of false positives, >= 0.
    beta : float, default=0.7
        Weight of false negatives, >= 0.
    smooth : float, default=1.0
        Additive smoothing ``s``, > 0.

    Returns
    -------
    Tensor
        Shape ``(n,)``, in ``(0, 1]`` when ``alpha, beta <= 1``.
    """
    alpha, beta = _check_non_negative("alpha", alpha), _check_non_negative("beta", beta)
    smooth = _check_positive("smooth", smooth)
    x, y = _flat_pair(logits, target)
    p = torch.sigmoid(x)
    tp = (p * y).sum(dim=1)
    fp = (p * (1.0 - y)).sum(dim=1)
    fn = ((1.0 - p) * y).sum(dim=1)
    return (tp + smooth) / (tp + alpha * fp + beta * fn + smooth)


def tversky_loss(logits: Tensor, target: Tensor, alpha: float = 0.3, beta: float = 0.7,
                 smooth: float = 1.0) -> Tensor:
    """Tversky loss ``1 − TI`` of each image (Salehi et al. 2017).

    See :func:`tversky_index` for ``TI`` and the parameters. Salehi et al. report
    their best lesion segmentation at ``α = 0.3, β = 0.7`` (the defaults).

    Returns
    -------
    Tensor
        Shape ``(n,)``; 0 for a perfect prediction.
    """
    return 1.0 - tversky_index(logits, target, alpha=alpha, beta=beta, smooth=smooth)


def focal_tversky_loss(logits: Tensor, target: Tensor, gamma: float = 0.75, alpha: float = 0.3,
                       beta: float = 0.7, smooth: float = 1.0, eps: float = 1e-6) -> Tensor:
    """Focal Tversky loss ``(1 − TI)^γ`` of each image (Abraham & Khan 2019).

    Abraham & Khan write the exponent as ``1/γ`` with their best ``γ = 4/3``; here it
    is ``γ`` itself (their best is ``γ = 0.75``), so that it reads like the
    concentration exponent of skdefect's concentrated loss ``(1 − IoU)^γ · B``, and
    the two-stage detector's ``gamma`` parameter sets it. ``γ = 1`` is
    :func:`tversky_loss`. For ``γ < 1`` the derivative ``γ(1 − TI)^(γ−1)`` grows
    without bound as ``TI → 1``; ``1 − TI`` is clamped below at ``eps`` so that it
    stays finite.

    Parameters
    ----------
    logits, target : Tensor
        As in :func:`tversky_index`.
    gamma : float, default=0.75
        Exponent γ > 0.
    alpha, beta, smooth : float
        As in :func:`tversky_index`.
    eps : float, default=1e-6
        Lower clamp of ``1 − TI``, > 0.

    Returns
    -------
    Tensor
        Shape ``(n,)``.
    """
    gamma = _check_positive("gamma", gamma)
    eps = _check_positive("eps", eps)
    miss = tversky_loss(logits, target, alpha=alpha, beta=beta, smooth=smooth)
    return miss.clamp_min(eps).pow(gamma)


# -------------------------------------------------------------------------- Lovász hinge


def _lovasz_grad(gt_sorted: Tensor) -> Tensor:
    """Gradient of the Lovász extension of the Jaccard loss, row by row (Berman et al. 2018, Alg. 1).

    ``gt_sorted`` holds the 0/1 labels of each row in the order of decreasing errors.
    """
    gts = gt_sorted.sum(dim=1, keepdim=True)
    intersection = gts - gt_sorted.cumsum(dim=1)
    union = gts + (1.0 - gt_sorted).cumsum(dim=1)  # >= 1 everywhere, no division by zero
    jaccard = 1.0 - intersection / union
    return torch.cat([jaccard[:, :1], jaccard[:, 1:] - jaccard[:, :-1]], dim=1)


def lovasz_hinge_loss(logits: Tensor, target: Tensor) -> Tensor:
    """Lovász hinge loss of each image (Berman, Rannen Triki & Blaschko 2018).

    A convex surrogate of the Jaccard (IoU) loss: the hinge errors
    ``m_i = max(0, 1 − s_i·x_i)`` (``x`` the logits, ``s = 2y − 1`` the signs) are
    sorted in decreasing order and weighted by the gradient of the Lovász extension
    of the Jaccard loss. When every ``m_i`` is 0 or 1 the loss *equals* the Jaccard
    loss ``|M| / |P ∪ M|`` of the set ``M`` of mispredicted pixels (``P`` the
    positives). This is the reference ``lovasz_hinge(..., per_image=True)`` without
    its final mean over images.

    The target is binarised at 0.5 (the Lovász extension needs a set of
    positives); soft targets, e.g. area-downsampled masks, count as defect where
    at least half covered. An image without positive pixels gets the largest
    hinge error, ``max(0, 1 + max x)``, as in the reference.

    Parameters
    ----------
    logits : Tensor
        Pixel logits, shape ``(n, 1, H, W)`` (or any ``(n, ...)``).
    target : Tensor
        Ground-truth mask in ``[0, 1]``, same shape.

    Returns
    -------
    Tensor
        Shape ``(n,)``, >= 0; 0 when every pixel's logit has the right sign with a
        margin of at least 1.
    """
    x, y = _flat_pair(logits, target)
    labels = (y >= 0.5).to(x.dtype)
    errors = 1.0 - x * (2.0 * labels - 1.0)
    errors_sorted, order = torch.sort(errors, dim=1, descending=True)
    grad = _lovasz_grad(labels.gather(1, order))
    return (F.relu(errors_sorted) * grad).sum(dim=1)


# ------------------------------------------------------------------------------ factories


def make_tversky(alpha: float = 0.3, beta: float = 0.7, smooth: float = 1.0) -> LossFn:
    """Factory of :func:`tversky_loss` (registered as ``"tversky"``).

    Parameters
    ----------
    alpha, beta, smooth : float
        See :func:`tversky_index`. Checked here, so a bad value fails before any
        training.

    Returns
    -------
    callable
        ``loss(logits, target) -> Tensor of shape (n,)``.
    """
    _check_non_negative("alpha", alpha)
    _check_non_negative("beta", beta)
    _check_positive("smooth", smooth)
    return partial(tversky_loss, alpha=alpha, beta=beta, smooth=smooth)


def make_focal_tversky(gamma: float = 0.75, alpha: float = 0.3, beta: float = 0.7,
                       smooth: float = 1.0) -> LossFn:
    """Factory of :func:`focal_tversky_loss` (registered as ``"focal_tversky"``).

    The two-stage detector offers its ``gamma`` to every loss factory that accepts
    it, so ``ConcentratedTwoStageDetector(loss="focal_tversky", gamma=0.75)`` sets
    the exponent.

    Parameters
    ----------
    gamma, alpha, beta, smooth : float
        See :func:`focal_tversky_loss`.

    Returns
    -------
    callable
        ``loss(logits, target) -> Tensor of shape (n,)``.
    """
    _check_positive("gamma", gamma)
    _check_non_negative("alpha", alpha)
    _check_non_negative("beta", beta)
    _check_positive("smooth", smooth)
    return partial(focal_tversky_loss, gamma=gamma, alpha=alpha, beta=beta, smooth=smooth)


def make_lovasz_hinge() -> LossFn:
    """Factory of :func:`lovasz_hinge_loss` (registered as ``"lovasz_hinge"``; no hyperparameters).

    Returns
    -------
    callable
        ``loss(logits, target) -> Tensor of shape (n,)``.
    """
    return lovasz_hinge_loss
