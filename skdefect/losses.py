"""Loss functions of the two papers, one small function per equation.

Every segmentation / image loss returns **one value per sample**, a tensor of shape
``(n,)``; the caller reduces (mean, masked mean, sum ...). Pixel inputs are float
tensors of shape ``(n, 1, H, W)``; ``(n, H, W)`` and any other ``(n, ...)`` layout
work as well, since every loss flattens all non-batch dimensions. ``probs`` are
probabilities in ``[0, 1]``, ``logits`` the pre-sigmoid scores and ``target`` a
float mask in ``[0, 1]`` (soft targets are allowed).

Precision: float16 / bfloat16 (and integer / bool targets) are computed in
float32, because sums over a whole image lose most of their digits in half
precision; float64 stays float64. The result has the compute dtype.

Sources (see ``REFERENCE.md``):

* Wang et al. 2022, concentrated loss: :func:`soft_iou` (Eq. 2, without the
  misprinted factor 2), :func:`concentration_factor`, :func:`concentrated_loss`
  (Eq. 1 and 3), with :func:`dice_loss`, :func:`bce_with_logits`,
  :func:`dice_ce_loss` as the base loss and :func:`focal_loss` (Lin et al. 2017,
  the paper's inspiration) for ablations.
* Dual-discriminator GAN: :func:`lsgan_discriminator_loss` (Eq. 1),
  :func:`l1_reconstruction_loss` (Eq. 2), :func:`patch_loss` (Eq. 3),
  :func:`latent_loss` (Eq. 4), :func:`lsgan_generator_loss` (Eq. 5-6),
  :func:`anomaly_adversarial_loss` (Eq. 7), :func:`abc_loss` (Eq. 8).
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import Tensor

__all__ = [
    "soft_iou",
    "dice_loss",
    "bce_with_logits",
    "dice_ce_loss",
    "concentration_factor",
    "concentrated_loss",
    "focal_loss",
    "lsgan_discriminator_loss",
    "lsgan_generator_loss",
    "anomaly_adversarial_loss",
    "l1_reconstruction_loss",
    "patch_errors",
    "patch_loss",
    "latent_loss",
    "abc_loss",
    "abc_loss_of_error",
    "masked_l1_error",
]

BaseLoss = Callable[[Tensor, Tensor], Tensor]


# --------------------------------------------------------------------------- helpers


def _compute(t: Tensor) -> Tensor:
    """``t`` in the compute dtype: float64 stays, everything else becomes float32."""
    return t if t.dtype in (torch.float32, torch.float64) else t.float()


def _flat(t: Tensor) -> Tensor:
    """``(n, ...)`` -> ``(n, d)`` in the compute dtype (one row per sample)."""
    t = _compute(t)
    return t.reshape(t.shape[0], -1)


def _flat_pair(a: Tensor, b: Tensor) -> tuple[Tensor, Tensor]:
    """Both tensors flattened per sample, in a common compute dtype, same shape checked."""
    fa, fb = _flat(a), _flat(b)
    if fa.shape != fb.shape:
        shapes = f"{tuple(a.shape)} and {tuple(b.shape)}"
        raise ValueError(f"expected inputs with the same shape per sample, got {shapes}")
    dtype = torch.promote_types(fa.dtype, fb.dtype)
    return fa.to(dtype), fb.to(dtype)


def _per_sample_mean(t: Tensor) -> Tensor:
    """Mean over every non-batch dimension: ``(n, ...)`` -> ``(n,)``."""
    return _flat(t).mean(dim=1)


def _mean_abs_error(a: Tensor, b: Tensor) -> Tensor:
    """Per-sample mean absolute difference (the L1 error of every GAN loss)."""
    fa, fb = _flat_pair(a, b)
    return (fa - fb).abs().mean(dim=1)


def _check_smooth(smooth: float) -> None:
    if not smooth > 0:
        raise ValueError(f"smooth must be > 0 (it defines the score of empty masks), got {smooth}")


def _as_4d(mask: Tensor) -> Tensor:
    """``(n, H, W)`` -> ``(n, 1, H, W)``; ``(n, C, H, W)`` unchanged."""
    if mask.dim() == 3:
        return mask.unsqueeze(1)
    if mask.dim() != 4:
        raise ValueError(f"expected a mask of shape (n, H, W) or (n, C, H, W), got {tuple(mask.shape)}")
    return mask


def _float_mask(mask: Tensor) -> Tensor:
    """A floating mask (bool / integer masks become float32)."""
    return mask if mask.is_floating_point() else mask.float()


# ------------------------------------------------------ segmentation (concentrated loss)


def soft_iou(probs: Tensor, target: Tensor, smooth: float = 1.0) -> Tensor:
    """Soft intersection over union of each image (Wang et al. 2022, Eq. 2).

    ``I = (Σ P·Y + smooth) / (Σ (P + Y − P·Y) + smooth)``, summed over all pixels of
    one image.

    The paper's Eq. 2 prints ``2 P·Y`` in the numerator. That is a typo: the text
    calls ``I`` the intersection over union, and with the 2 a perfect prediction
    would score 2, making ``(1 − I)^γ`` undefined for fractional γ. We drop it, so
    ``0 < I ≤ 1`` for ``P, Y ∈ [0, 1]``.

    The paper puts its ε in the denominator only. We add ``smooth`` to both, which
    defines the IoU of defect-free images:

    * empty target and empty prediction: ``I = 1`` (an easy, well-handled image,
      which the concentration factor down-weights);
    * empty target with false positives: ``I = smooth / (Σ P + smooth)``, which
      falls towards 0 as the false-positive mass grows (a hard image, kept at
      nearly full weight). With ``smooth = 1`` a prediction of 0.01 on each of
      10 000 pixels already gives ``I ≈ 0.01``.

    Parameters
    ----------
    probs : Tensor
        Predicted probabilities, shape ``(n, 1, H, W)`` (or ``(n, H, W)``).
    target : Tensor
        Ground-truth mask in ``[0, 1]``, same shape.
    smooth : float, default=1.0
        Additive smoothing, > 0.

    Returns
    -------
    Tensor
        Shape ``(n,)``, in ``(0, 1]``.
    """
    _check_smooth(smooth)
    p, y = _flat_pair(probs, target)
    inter = (p * y).sum(dim=1)
    union = (p + y - p * y).sum(dim=1)
    return (inter + smooth) / (union + smooth)


#: How :func:`dice_loss` treats an image whose target has no defect pixel (see there).
EMPTY_TARGET_RULES = ("ignore", "smooth")


def dice_loss(probs: Tensor, target: Tensor, smooth: float = 1.0, empty: str = "ignore") -> Tensor:
    """Soft Dice loss of each image: ``1 − (2 Σ P·Y + s) / (Σ P + Σ Y + s)``.

    **Defect-free images.** For an empty target Dice is 0/0: the overlap of a prediction
    with nothing is undefined. Smoothing gives it a value, ``Σ P / (Σ P + s)``, but that
    value is a trap on a training set where half the images are defect-free (as the
    balanced sampler makes it): with ``s = 1`` a total of one pixel's worth of probability
    on a 4,096-pixel normal image costs as much as missing half of a defect, and its
    gradient (``s / (Σ P + s)²`` per pixel, the largest at ``P = 0``) outweighs the pull of a
    defect's pixels by orders of magnitude. The segmentation net then learns to predict
    nothing anywhere and stays there: in development runs on ``make_surface_defects`` (64 px,
    160 training images; not part of ``benchmarks/``) the concentrated loss with the
    smoothed value ended every run at ``0.95 · ½`` (all defects missed) with a pixel AUROC
    of 0.50-0.55, against 0.81 with the rule below. The quality suite's full profile has
    the ablation row *Dice of normals smoothed*.

    ``empty="ignore"`` (the default) therefore gives such an image a Dice loss of 0: Dice
    measures the overlap with the defects an image *has*; the pixels of a defect-free
    image are trained by the cross-entropy term of :func:`dice_ce_loss` alone (and weighted
    by the concentration factor, which grows with their false-positive mass).
    ``empty="smooth"`` applies the smoothed formula literally (the reading that collapses).

    Parameters
    ----------
    probs : Tensor
        Predicted probabilities, shape ``(n, 1, H, W)`` (or ``(n, H, W)``).
    target : Tensor
        Ground-truth mask in ``[0, 1]``, same shape.
    smooth : float, default=1.0
        Additive smoothing ``s``, > 0.
    empty : {"ignore", "smooth"}, default="ignore"
        The rule for images whose target is empty (see above).

    Returns
    -------
    Tensor
        Shape ``(n,)``, in ``[0, 1)``.
    """
    _check_smooth(smooth)
    if empty not in EMPTY_TARGET_RULES:
        raise ValueError(f"empty must be one of {EMPTY_TARGET_RULES}, got {empty!r}")
    p, y = _flat_pair(probs, target)
    target_mass = y.sum(dim=1)
    loss = 1.0 - (2.0 * (p * y).sum(dim=1) + smooth) / (p.sum(dim=1) + target_mass + smooth)
    if empty == "ignore":
        loss = torch.where(target_mass > 0, loss, torch.zeros_like(loss))
    return loss


def bce_with_logits(
    logits: Tensor,
    target: Tensor,
    pos_weight: float | Tensor | None = None,
    pixel_weight: Tensor | None = None,
) -> Tensor:
    """Binary cross-entropy on logits, averaged over the pixels of each image.

    Numerically stable for any logit (log-sum-exp form of
    :func:`torch.nn.functional.binary_cross_entropy_with_logits`).

    Parameters
    ----------
    logits : Tensor
        Pixel logits, shape ``(n, 1, H, W)`` (or ``(n, H, W)``).
    target : Tensor
        Ground-truth mask in ``[0, 1]``, same shape.
    pos_weight : float or Tensor, optional
        Weight of the positive term, as in PyTorch.
    pixel_weight : Tensor, optional
        Non-negative per-pixel weights, broadcastable to ``logits`` (e.g.
        SegDecNet's distance-transform weights). The result is then the weighted
        mean ``Σ w·ℓ / Σ w`` per image (0 for an image whose weights are all 0).
        SegDecNet's reference takes the plain mean of ``w·ℓ`` instead, which
        differs by the per-image factor ``mean(w)``.

    Returns
    -------
    Tensor
        Shape ``(n,)``.
    """
    x, y = _flat_pair(logits, target)
    if pos_weight is not None:
        pos_weight = torch.as_tensor(pos_weight, dtype=x.dtype, device=x.device)
    loss = F.binary_cross_entropy_with_logits(x, y, pos_weight=pos_weight, reduction="none")
    if pixel_weight is None:
        return loss.mean(dim=1)
    w = _flat(torch.broadcast_to(pixel_weight, logits.shape)).to(loss.dtype)
    return (w * loss).sum(dim=1) / w.sum(dim=1).clamp_min(torch.finfo(loss.dtype).tiny)


def dice_ce_loss(logits: Tensor, target: Tensor, dice_weight: float = 0.95, empty: str = "ignore") -> Tensor:
    """The concentrated-loss paper's base loss: ``λ·Dice + (1 − λ)·CE`` (Eq. 3).

    Parameters
    ----------
    logits : Tensor
        Pixel logits, shape ``(n, 1, H, W)`` (or ``(n, H, W)``).
    target : Tensor
        Ground-truth mask in ``[0, 1]``, same shape.
    dice_weight : float, default=0.95
        λ ∈ [0, 1]; 1 is pure :func:`dice_loss` (on ``sigmoid(logits)``), 0 pure
        :func:`bce_with_logits`. The paper uses 0.95.
    empty : {"ignore", "smooth"}, default="ignore"
        :func:`dice_loss`'s rule for defect-free images: with ``"ignore"`` their loss is
        ``(1 − λ)·CE``.

    Returns
    -------
    Tensor
        Shape ``(n,)``.
    """
    if not 0.0 <= dice_weight <= 1.0:
        raise ValueError(f"dice_weight must lie in [0, 1], got {dice_weight}")
    dice = dice_loss(torch.sigmoid(_compute(logits)), target, empty=empty)
    return dice_weight * dice + (1.0 - dice_weight) * bce_with_logits(logits, target)


def concentration_factor(
    probs: Tensor,
    target: Tensor,
    gamma: float,
    detach: bool = True,
    smooth: float = 1.0,
    eps: float = 1e-6,
) -> Tensor:
    """The concentration factor ``(1 − I)^γ`` of each image (Wang et al. 2022, Eq. 1).

    ``I`` is :func:`soft_iou`. Easy images (high IoU) get a factor near 0, hard
    ones near 1; ``γ = 0`` gives exactly 1.

    Gradient. For ``γ < 1`` the derivative ``γ (1 − I)^(γ−1)`` blows up as
    ``I → 1``, and the paper does not say whether the factor is differentiated.
    By default (``detach=True``) it is not: the factor acts as a per-image weight
    computed from the current prediction, like a sample re-weighting (or the
    ``(1 − p_t)^γ`` term of focal loss read as a weight), and the gradient is
    the base loss's gradient scaled by it. With ``detach=False`` gradient also
    flows through ``I``, which pushes the IoU of every image *down* (the factor
    grows as IoU falls); that term is kept finite by the clamp below.

    In both modes ``1 − I`` is clamped below at ``eps`` before the power, so the
    two modes give identical values; the resulting floor ``eps^γ`` (1e-3 at
    γ = 0.5) is a negligible weight.

    Parameters
    ----------
    probs : Tensor
        Predicted probabilities, shape ``(n, 1, H, W)`` (or ``(n, H, W)``).
    target : Tensor
        Ground-truth mask in ``[0, 1]``, same shape.
    gamma : float
        γ ≥ 0; the paper uses 0.5.
    detach : bool, default=True
        Whether the factor is cut from the autograd graph.
    smooth : float, default=1.0
        Smoothing of :func:`soft_iou`.
    eps : float, default=1e-6
        Lower clamp of ``1 − I``.

    Returns
    -------
    Tensor
        Shape ``(n,)``, in ``(0, 1]``.
    """
    if not gamma >= 0:
        raise ValueError(f"gamma must be >= 0, got {gamma}")
    iou = soft_iou(probs, target, smooth=smooth)
    if detach:
        iou = iou.detach()
    if gamma == 0:
        return torch.ones_like(iou)
    return (1.0 - iou).clamp_min(eps).pow(gamma)


def concentrated_loss(
    logits: Tensor,
    target: Tensor,
    gamma: float = 0.5,
    dice_weight: float = 0.95,
    base_loss: BaseLoss | None = None,
    detach_factor: bool = True,
    empty: str = "ignore",
) -> Tensor:
    """Concentrated loss ``CL = (1 − I)^γ · B`` (Wang et al. 2022, Eq. 1 and 3).

    Parameters
    ----------
    logits : Tensor
        Pixel logits, shape ``(n, 1, H, W)`` (or ``(n, H, W)``).
    target : Tensor
        Ground-truth mask in ``[0, 1]``, same shape.
    gamma : float, default=0.5
        γ ≥ 0 of :func:`concentration_factor`; 0 gives the base loss exactly.
    dice_weight : float, default=0.95
        λ of the default base loss :func:`dice_ce_loss` (ignored when
        ``base_loss`` is given).
    base_loss : callable, optional
        Any ``(logits, target) -> (n,)`` loss. Default: ``dice_ce_loss`` with
        ``dice_weight``.
    detach_factor : bool, default=True
        See :func:`concentration_factor`.
    empty : {"ignore", "smooth"}, default="ignore"
        :func:`dice_loss`'s rule for defect-free images (default base loss only).

    Returns
    -------
    Tensor
        Shape ``(n,)``.
    """
    base = dice_ce_loss(logits, target, dice_weight, empty) if base_loss is None else base_loss(logits, target)
    factor = concentration_factor(torch.sigmoid(_compute(logits)), target, gamma, detach=detach_factor)
    if base.shape != factor.shape:
        want, got = tuple(factor.shape), tuple(base.shape)
        raise ValueError(f"base_loss must return one value per sample {want}, got {got}")
    return factor * base


def focal_loss(logits: Tensor, target: Tensor, gamma: float = 2.0, alpha: float | None = 0.25) -> Tensor:
    """Pixel focal loss (Lin et al. 2017), averaged over the pixels of each image.

    ``FL = α_t (1 − p_t)^γ · CE`` with ``p_t = p`` on positives and ``1 − p`` on
    negatives, ``α_t = α`` on positives and ``1 − α`` on negatives (soft targets
    interpolate). ``1 − p_t`` is computed in log space, so the gradient stays
    finite for ``γ < 1`` and saturated logits.

    Parameters
    ----------
    logits : Tensor
        Pixel logits, shape ``(n, 1, H, W)`` (or ``(n, H, W)``).
    target : Tensor
        Ground-truth mask in ``[0, 1]``, same shape.
    gamma : float, default=2.0
        Focusing parameter γ ≥ 0; 0 (with ``alpha=None``) is plain BCE.
    alpha : float or None, default=0.25
        Weight of the positive class; ``None`` switches the α weighting off.

    Returns
    -------
    Tensor
        Shape ``(n,)``.
    """
    if not gamma >= 0:
        raise ValueError(f"gamma must be >= 0, got {gamma}")
    x, y = _flat_pair(logits, target)
    ce = F.binary_cross_entropy_with_logits(x, y, reduction="none")
    if gamma != 0:
        # log(1 − p_t) = log(y·σ(−x) + (1 − y)·σ(x))
        log_miss = torch.logaddexp(torch.log(y) + F.logsigmoid(-x), torch.log1p(-y) + F.logsigmoid(x))
        ce = torch.exp(gamma * log_miss) * ce
    if alpha is not None:
        ce = (alpha * y + (1.0 - alpha) * (1.0 - y)) * ce
    return ce.mean(dim=1)


# --------------------------------------------------------------- dual-discriminator GAN


def lsgan_discriminator_loss(real_out: Tensor, fake_out: Tensor, a: float = 0.0, b: float = 1.0) -> Tensor:
    """LSGAN discriminator loss with the a-b coding (GAN paper, Eq. 1).

    ``mean((D(x) − b)²) + mean((D(G(x)) − a)²)`` per sample, each mean over the
    discriminator's patch map; ``a`` is the fake label, ``b`` the real label.

    Parameters
    ----------
    real_out : Tensor
        ``D(x)``, shape ``(n, ...)`` (a patch map ``(n, 1, h, w)`` or ``(n,)``).
    fake_out : Tensor
        ``D(G(x))``, shape ``(n, ...)``.
    a, b : float, default=0.0, 1.0
        Fake and real labels.

    Returns
    -------
    Tensor
        Shape ``(n,)``.
    """
    return lsgan_generator_loss(real_out, target=b) + lsgan_generator_loss(fake_out, target=a)


def lsgan_generator_loss(fake_out: Tensor, target: float = 1.0) -> Tensor:
    """LSGAN generator loss ``mean((D(G(x)) − target)²)`` per sample (GAN paper, Eq. 5-6).

    ``target = 1`` is the ordinary adversarial loss on normal inputs; ``target = 0``
    is :func:`anomaly_adversarial_loss`.

    Parameters
    ----------
    fake_out : Tensor
        ``D(G(x))``, shape ``(n, ...)``.
    target : float, default=1.0
        The value the generator wants the discriminator to output.

    Returns
    -------
    Tensor
        Shape ``(n,)``.
    """
    return _per_sample_mean((_compute(fake_out) - target).square())


def anomaly_adversarial_loss(fake_out_anomalous: Tensor) -> Tensor:
    """Anomaly adversarial loss ``mean((D_A(G(x)) − 0)²)`` per sample (GAN paper, Eq. 7).

    The generator wants the anomaly discriminator ``D_A`` to call its
    reconstructions of anomalous inputs fake.

    Parameters
    ----------
    fake_out_anomalous : Tensor
        ``D_A(G(x))`` for anomalous ``x``, shape ``(n, ...)``.

    Returns
    -------
    Tensor
        Shape ``(n,)``.
    """
    return lsgan_generator_loss(fake_out_anomalous, target=0.0)


def l1_reconstruction_loss(x: Tensor, x_hat: Tensor) -> Tensor:
    """L1 reconstruction loss ``mean |x − G(x)|`` per sample (GAN paper, Eq. 2).

    Parameters
    ----------
    x, x_hat : Tensor
        Images and reconstructions, shape ``(n, C, H, W)`` (any ``(n, ...)``).

    Returns
    -------
    Tensor
        Shape ``(n,)``.
    """
    return _mean_abs_error(x, x_hat)


def masked_l1_error(x: Tensor, x_hat: Tensor, mask: Tensor) -> Tensor:
    """Mean L1 reconstruction error over each image's defect pixels (not in the GAN paper).

    ``sum(m · |x − G(x)|) / (C · sum(m))`` per sample, with ``m`` the (possibly soft) pixel mask
    broadcast over the channels. An image whose mask is empty gets its whole-image mean error
    (:func:`l1_reconstruction_loss`) instead. The GAN detector's ABC loss uses it as ``A`` when
    ``fit`` receives masks (``abc_error="mask"``): the paper's ``A``, a mean over every pixel, tells
    the generator *that* an image is anomalous, this one *where*.

    Parameters
    ----------
    x, x_hat : Tensor
        Images and reconstructions, shape ``(n, C, H, W)``.
    mask : Tensor
        Defect masks in [0, 1], shape ``(n, 1, H, W)`` or ``(n, H, W)``.

    Returns
    -------
    Tensor
        Shape ``(n,)``.
    """
    m = _float_mask(_as_4d(mask)).to(_compute(x).dtype)
    err = (_compute(x) - _compute(x_hat)).abs().mean(dim=1, keepdim=True)
    area = m.flatten(1).sum(dim=1)
    inside = (err * m).flatten(1).sum(dim=1) / area.clamp_min(torch.finfo(err.dtype).tiny)
    return torch.where(area > 0, inside, err.flatten(1).mean(dim=1))


def patch_errors(x: Tensor, x_hat: Tensor, patch_size: int = 32, stride: int = 16) -> Tensor:
    """Mean L1 error of every patch: the ``M`` terms of the GAN paper's Eq. 3.

    Patches are ``patch_size × patch_size`` windows at ``stride`` (no padding),
    ordered row by row; each error is the mean over the patch's pixels and
    channels. 128×128 images with the defaults give ``M = 7 · 7 = 49``. The
    means are computed by average pooling, which yields the same values as
    averaging :func:`torch.nn.functional.unfold` columns without materialising
    the overlapping patches, and is differentiable.

    A side shorter than ``patch_size`` uses its full length instead, so an image
    smaller than a patch is one patch (``M = 1``, the whole-image error). Pixels
    in the last ``(H − patch_size) mod stride`` rows (likewise columns) are in no
    patch; :func:`l1_reconstruction_loss` still covers them.

    Parameters
    ----------
    x, x_hat : Tensor
        Images and reconstructions, shape ``(n, C, H, W)`` or ``(n, H, W)``.
    patch_size : int, default=32
        Patch side.
    stride : int, default=16
        Step between patches.

    Returns
    -------
    Tensor
        Shape ``(n, M)``.
    """
    if patch_size < 1 or stride < 1:
        raise ValueError(f"patch_size and stride must be >= 1, got {patch_size} and {stride}")
    fx, fh = _flat_pair(x, x_hat)  # checks the shapes
    err = _as_4d((fx - fh).abs().reshape(x.shape))
    kernel = (min(patch_size, err.shape[-2]), min(patch_size, err.shape[-1]))
    return F.avg_pool2d(err, kernel, stride=stride).mean(dim=1).flatten(1)


def patch_loss(x: Tensor, x_hat: Tensor, patch_size: int = 32, stride: int = 16, top_n: int = 10) -> Tensor:
    """Patch loss: mean of the ``top_n`` largest patch errors (GAN paper, Eq. 3).

    Built from :func:`patch_errors` and :func:`torch.topk`, so it carries gradient
    to the pixels of the selected patches (the authors' code assembled it from
    Python floats, which carry none).

    Parameters
    ----------
    x, x_hat : Tensor
        Images and reconstructions, shape ``(n, C, H, W)`` or ``(n, H, W)``.
    patch_size : int, default=32
        Patch side.
    stride : int, default=16
        Step between patches.
    top_n : int, default=10
        How many of the worst patches to average; clipped to the patch count ``M``.

    Returns
    -------
    Tensor
        Shape ``(n,)``.
    """
    if top_n < 1:
        raise ValueError(f"top_n must be >= 1, got {top_n}")
    errors = patch_errors(x, x_hat, patch_size, stride)
    return errors.topk(min(top_n, errors.shape[1]), dim=1).values.mean(dim=1)


def latent_loss(z: Tensor, z_hat: Tensor) -> Tensor:
    """Latent (encoder-consistency) loss ``mean |G_E(x) − G_E(G(x))|`` per sample (Eq. 4).

    GANomaly-style, with the L1 norm as in the GAN paper (GANomaly itself uses L2).

    Parameters
    ----------
    z, z_hat : Tensor
        Codes of the input and of its reconstruction, shape ``(n, ...)``.

    Returns
    -------
    Tensor
        Shape ``(n,)``.
    """
    return _mean_abs_error(z, z_hat)


def abc_loss(x: Tensor, x_hat: Tensor, eps: float = 1e-6) -> Tensor:
    """ABC loss ``−log(1 − exp(−A))`` on anomalous inputs (GAN paper, Eq. 8).

    ``A`` is the per-sample mean L1 reconstruction error. Minimising the loss
    drives ``A`` up; it falls towards 0 as the error grows. It is computed as
    ``−log(−expm1(−A))``, which keeps its digits for small and large ``A``, and
    ``A`` is clamped below at ``eps`` so a perfect reconstruction gives the
    large finite value ``−log(eps)`` (≈ 13.8) instead of infinity.

    Parameters
    ----------
    x, x_hat : Tensor
        Anomalous images and their reconstructions, shape ``(n, ...)``.
    eps : float, default=1e-6
        Lower clamp of ``A``, > 0.

    Returns
    -------
    Tensor
        Shape ``(n,)``, positive.
    """
    return abc_loss_of_error(_mean_abs_error(x, x_hat), eps)


def abc_loss_of_error(a: Tensor, eps: float = 1e-6) -> Tensor:
    """ABC loss ``−log(1 − exp(−A))`` of given per-sample errors ``A`` (GAN paper, Eq. 8).

    :func:`abc_loss` applies it to the mean L1 error (the paper's ``A``); the GAN detector's
    ``abc_error="patch"`` applies it to the :func:`patch_loss` of the anomalous images instead.

    Parameters
    ----------
    a : Tensor
        Per-sample errors, shape ``(n,)``, ≥ 0.
    eps : float, default=1e-6
        Lower clamp of ``A``, > 0.

    Returns
    -------
    Tensor
        Shape ``(n,)``, positive.
    """
    if not eps > 0:
        raise ValueError(f"eps must be > 0, got {eps}")
    a = a.clamp_min(eps)
    return -torch.log(-torch.expm1(-a))
