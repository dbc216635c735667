"""Tests of skdefect.losses against independent float64 references written here."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.special import expit

from skdefect import losses as L

FAST = settings(max_examples=30, deadline=None)


# ----------------------------------------------------------------- float64 references


def _rows(a: np.ndarray) -> np.ndarray:
    return np.asarray(a, dtype=np.float64).reshape(a.shape[0], -1)


def ref_iou(p: np.ndarray, y: np.ndarray, s: float = 1.0) -> np.ndarray:
    out = []
    for pi, yi in zip(_rows(p), _rows(y), strict=True):
        inter = sum(a * b for a, b in zip(pi, yi, strict=True))
        union = sum(a + b - a * b for a, b in zip(pi, yi, strict=True))
        out.append((inter + s) / (union + s))
    return np.array(out)


def ref_dice(p: np.ndarray, y: np.ndarray, s: float = 1.0, empty: str = "ignore") -> np.ndarray:
    p, y = _rows(p), _rows(y)
    loss = 1.0 - (2 * (p * y).sum(1) + s) / (p.sum(1) + y.sum(1) + s)
    return np.where(y.sum(1) > 0, loss, 0.0) if empty == "ignore" else loss


def ref_bce_pixels(x: np.ndarray, y: np.ndarray, pos_weight: float = 1.0) -> np.ndarray:
    x, y = _rows(x), _rows(y)
    # -log(sigmoid(x)) = softplus(-x), -log(1 - sigmoid(x)) = softplus(x)
    return pos_weight * y * np.logaddexp(0.0, -x) + (1 - y) * np.logaddexp(0.0, x)


def ref_bce(x, y, pos_weight=1.0, w=None) -> np.ndarray:
    pix = ref_bce_pixels(x, y, pos_weight)
    if w is None:
        return pix.mean(1)
    w = _rows(np.broadcast_to(w, np.shape(x)))
    return (w * pix).sum(1) / w.sum(1)


def ref_dice_ce(x, y, lam) -> np.ndarray:  # the default rule for defect-free images
    return lam * ref_dice(expit(_rows(x)), y) + (1 - lam) * ref_bce(x, y)


def ref_focal(x, y, gamma, alpha) -> np.ndarray:
    p, yy = expit(_rows(x)), _rows(y)
    pt = p * yy + (1 - p) * (1 - yy)
    at = 1.0 if alpha is None else alpha * yy + (1 - alpha) * (1 - yy)
    return (at * (1 - pt) ** gamma * ref_bce_pixels(x, y)).mean(1)


def ref_patches(x: np.ndarray, xh: np.ndarray, k: int, s: int) -> np.ndarray:
    d = np.abs(np.asarray(x, np.float64) - np.asarray(xh, np.float64))
    n, _, h, w = d.shape
    kh, kw = min(k, h), min(k, w)
    out = []
    for i in range(n):
        row = []
        for r in range(0, h - kh + 1, s):
            for c in range(0, w - kw + 1, s):
                row.append(d[i, :, r : r + kh, c : c + kw].mean())
        out.append(row)
    return np.array(out)


def t(a, dtype=torch.float32, grad=False) -> torch.Tensor:
    return torch.tensor(np.asarray(a), dtype=dtype, requires_grad=grad)


# ------------------------------------------------------------------- hypothesis data

MASK_KINDS = ["random", "zeros", "ones", "soft", "single"]


@st.composite
def seg_batch(draw):
    """(logits, target) numpy float64 arrays of shape (n, 1, H, W)."""
    seed = draw(st.integers(0, 2**31 - 1))
    n, h, w = draw(st.integers(1, 3)), draw(st.integers(1, 7)), draw(st.integers(1, 7))
    scale = draw(st.sampled_from([0.5, 3.0, 30.0, 120.0]))
    kind = draw(st.sampled_from(MASK_KINDS))
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 1, h, w)) * scale
    y = {
        "random": (rng.random((n, 1, h, w)) < 0.3).astype(float),
        "zeros": np.zeros((n, 1, h, w)),
        "ones": np.ones((n, 1, h, w)),
        "soft": rng.random((n, 1, h, w)),
        "single": np.zeros((n, 1, h, w)),
    }[kind]
    if kind == "single":
        y[:, 0, h // 2, w // 2] = 1.0
    return x, y


GAMMAS = st.sampled_from([0.0, 0.25, 0.5, 1.0, 2.0, 3.5])


# ---------------------------------------------------------------------- soft IoU, Dice


@FAST
@given(seg_batch(), st.sampled_from([1.0, 1e-3]))
def test_soft_iou_matches_reference(batch, smooth):
    x, y = batch
    p = expit(x)
    got = L.soft_iou(t(p, torch.float64), t(y, torch.float64), smooth=smooth)
    assert got.shape == (x.shape[0],)
    np.testing.assert_allclose(got.numpy(), ref_iou(p, y, smooth), rtol=1e-12)
    assert torch.all(got <= 1.0 + 1e-12) and torch.all(got > 0)


def test_soft_iou_has_no_factor_two_and_handles_empty_masks():
    ones, zeros = torch.ones(1, 1, 4, 4), torch.zeros(1, 1, 4, 4)
    assert L.soft_iou(ones, ones).item() == pytest.approx(1.0)  # the paper's 2·PY would give 2
    half = torch.full((1, 1, 4, 4), 0.5)
    # inter 16 · 0.5 = 8, union Σ(0.5 + 1 − 0.5) = 16 → (8 + 1) / (16 + 1)
    assert L.soft_iou(half, ones).item() == pytest.approx(9 / 17)
    # empty target, empty prediction: IoU 1 (an easy image)
    assert L.soft_iou(zeros, zeros).item() == pytest.approx(1.0)
    # empty target with false positives: smooth / (ΣP + smooth), falls towards 0
    fp = [L.soft_iou(torch.full((1, 1, 4, 4), v), zeros).item() for v in (0.01, 0.1, 0.5, 1.0)]
    np.testing.assert_allclose(fp, [1 / (16 * v + 1) for v in (0.01, 0.1, 0.5, 1.0)], rtol=1e-6)
    assert fp == sorted(fp, reverse=True) and fp[-1] < 0.06


def test_soft_iou_accepts_3d_and_bool_targets():
    rng = np.random.default_rng(0)
    p, y = rng.random((2, 5, 6)), rng.random((2, 5, 6)) < 0.4
    a = L.soft_iou(t(p), torch.from_numpy(y))
    b = L.soft_iou(t(p)[:, None], torch.from_numpy(y)[:, None].float())
    torch.testing.assert_close(a, b)
    np.testing.assert_allclose(a.numpy(), ref_iou(p, y.astype(float)), rtol=1e-5)


@FAST
@given(seg_batch(), st.sampled_from(L.EMPTY_TARGET_RULES))
def test_dice_loss_matches_reference(batch, empty):
    x, y = batch
    y[0] = 0  # always one defect-free image in the batch
    p = expit(x)
    got = L.dice_loss(t(p, torch.float64), t(y, torch.float64), empty=empty)
    np.testing.assert_allclose(got.numpy(), ref_dice(p, y, empty=empty), rtol=1e-12, atol=1e-15)


def test_dice_loss_hand_values():
    ones, zeros = torch.ones(1, 1, 2, 2), torch.zeros(1, 1, 2, 2)
    assert L.dice_loss(ones, ones).item() == pytest.approx(0.0)
    assert L.dice_loss(zeros, zeros).item() == pytest.approx(0.0)
    assert L.dice_loss(zeros, ones).item() == pytest.approx(1 - 1 / 5)
    # a defect-free target: no Dice term by default; the literal smoothed value on request
    assert L.dice_loss(ones, zeros).item() == 0.0
    assert L.dice_loss(ones, zeros, empty="smooth").item() == pytest.approx(1 - 1 / 5)
    with pytest.raises(ValueError, match="empty must be one of"):
        L.dice_loss(ones, zeros, empty="skip")


def test_empty_target_rule_keeps_defects_learnable():
    """Where a collapsing net stands (every pixel at P = 0.018), the smoothed Dice of a defect-free image pushes
    its pixels down three times harder than a defect's pixels are pulled up, so the map sinks to all-background;
    with the default rule only the CE term acts on the defect-free image and the defect's pull dominates."""
    target = torch.zeros(2, 1, 32, 32)
    target[0, :, 10:14, 10:14] = 1  # image 0: a 16-pixel defect; image 1: defect-free
    ratios = {}
    for empty in L.EMPTY_TARGET_RULES:
        logits = torch.full((2, 1, 32, 32), -4.0, requires_grad=True)
        L.dice_ce_loss(logits, target, dice_weight=0.95, empty=empty).sum().backward()
        push_down = logits.grad[1].abs().sum()  # the defect-free image's pixels
        pull_up = logits.grad[0, :, 10:14, 10:14].abs().sum()  # the defect's pixels
        ratios[empty] = float(push_down / pull_up)
    assert ratios["smooth"] > 2.0
    assert ratios["ignore"] < 0.2


# ---------------------------------------------------------------------------------- BCE


@FAST
@given(seg_batch(), st.sampled_from([None, 0.5, 4.0]), st.booleans())
def test_bce_matches_reference(batch, pos_weight, weighted):
    x, y = batch
    w = np.random.default_rng(1).random(x.shape) + 0.1 if weighted else None
    got = L.bce_with_logits(t(x), t(y), pos_weight=pos_weight, pixel_weight=None if w is None else t(w))
    want = ref_bce(x, y, 1.0 if pos_weight is None else pos_weight, w)
    assert got.dtype == torch.float32 and torch.isfinite(got).all()
    np.testing.assert_allclose(got.numpy(), want, rtol=2e-5, atol=1e-5)


def test_bce_pixel_weight_is_a_weighted_mean_and_broadcasts():
    x = t([[[[0.0, 3.0]]]])
    y = t([[[[1.0, 0.0]]]])
    pix = ref_bce_pixels(x.numpy(), y.numpy())[0]
    got = L.bce_with_logits(x, y, pixel_weight=t([[[[3.0, 1.0]]]]))
    assert got.item() == pytest.approx((3 * pix[0] + pix[1]) / 4, rel=1e-6)
    # a (1, 1, 1, W) weight broadcasts over the batch; all-zero weights give 0, not nan
    xb, yb = x.repeat(2, 1, 1, 1), y.repeat(2, 1, 1, 1)
    got = L.bce_with_logits(xb, yb, pixel_weight=t([[[[0.0, 0.0]]]]))
    assert torch.equal(got, torch.zeros(2))


def test_bce_is_stable_for_huge_logits():
    x = t([[[[100.0, -100.0, 100.0, -100.0]]]], grad=True)
    y = t([[[[1.0, 0.0, 0.0, 1.0]]]])
    got = L.bce_with_logits(x, y)
    assert got.item() == pytest.approx(50.0, rel=1e-6)  # two pixels at 100 each, two at 0
    got.sum().backward()
    assert torch.isfinite(x.grad).all()


# --------------------------------------------------------------- Dice + CE, concentrated


@FAST
@given(seg_batch(), st.sampled_from([0.0, 0.3, 0.95, 1.0]))
def test_dice_ce_matches_reference(batch, lam):
    x, y = batch
    got = L.dice_ce_loss(t(x, torch.float64), t(y, torch.float64), dice_weight=lam)
    np.testing.assert_allclose(got.numpy(), ref_dice_ce(x, y, lam), rtol=1e-10, atol=1e-12)


@FAST
@given(seg_batch())
def test_dice_weight_extremes_are_pure_losses(batch):
    x, y = t(batch[0]), t(batch[1])
    assert torch.equal(L.dice_ce_loss(x, y, dice_weight=1.0), L.dice_loss(torch.sigmoid(x), y))
    assert torch.equal(L.dice_ce_loss(x, y, dice_weight=0.0), L.bce_with_logits(x, y))


@FAST
@given(seg_batch(), GAMMAS, st.booleans())
def test_concentration_factor_matches_reference(batch, gamma, detach):
    x, y = batch
    p = expit(x)
    got = L.concentration_factor(t(p, torch.float64), t(y, torch.float64), gamma, detach=detach)
    want = np.maximum(1 - ref_iou(p, y), 1e-6) ** gamma
    np.testing.assert_allclose(got.numpy(), want, rtol=1e-10)
    assert torch.all(got <= 1.0) and torch.all(got > 0)


@FAST
@given(seg_batch(), st.booleans())
def test_gamma_zero_gives_exactly_one_and_exactly_the_base_loss(batch, detach):
    x, y = t(batch[0]), t(batch[1])
    factor = L.concentration_factor(torch.sigmoid(x), y, 0.0, detach=detach)
    assert torch.equal(factor, torch.ones(x.shape[0]))
    got = L.concentrated_loss(x, y, gamma=0.0, dice_weight=0.7, detach_factor=detach)
    assert torch.equal(got, L.dice_ce_loss(x, y, dice_weight=0.7))


@FAST
@given(
    st.integers(0, 2**31 - 1),
    st.sampled_from(["random", "zeros", "ones"]),
    st.sampled_from([0.25, 0.5, 2.0]),
)
def test_factor_shrinks_as_iou_grows(seed, kind, gamma):
    rng = np.random.default_rng(seed)
    shape = (1, 1, 6, 6)
    masks = {"random": (rng.random(shape) < 0.4).astype(float), "zeros": np.zeros(shape)}
    y = masks.get(kind, np.ones(shape))
    # predictions sliding from the complement of the target to the target itself
    preds = [(1 - s) * (1 - y) * rng.uniform(0.5, 1.0) + s * y for s in np.linspace(0, 1, 9)]
    preds += [rng.random(shape) for _ in range(6)]
    ious = np.array([ref_iou(p, y)[0] for p in preds])
    y64 = t(y, torch.float64)
    factors = np.array([L.concentration_factor(t(p, torch.float64), y64, gamma).item() for p in preds])
    order = np.argsort(ious)
    ious, factors = ious[order], factors[order]
    strictly_higher = np.diff(ious) > 1e-9
    assert np.all(np.diff(factors)[strictly_higher] < 0)
    assert factors[-1] < factors[0]


def test_concentrated_loss_matches_reference_and_paper_defaults():
    rng = np.random.default_rng(3)
    x, y = rng.normal(size=(4, 1, 8, 8)) * 2, (rng.random((4, 1, 8, 8)) < 0.3).astype(float)
    y[0] = 0.0
    got = L.concentrated_loss(t(x, torch.float64), t(y, torch.float64))  # γ = 0.5, λ = 0.95
    want = (1 - ref_iou(expit(x), y)) ** 0.5 * ref_dice_ce(x, y, 0.95)
    np.testing.assert_allclose(got.numpy(), want, rtol=1e-10)


def test_concentrated_loss_down_weights_the_easy_image():
    y = torch.zeros(2, 1, 8, 8)
    y[:, :, 2:6, 2:6] = 1
    easy = (y * 2 - 1) * 6  # confident and right
    hard = torch.zeros(1, 1, 8, 8)  # p = 0.5 everywhere
    x = torch.cat([easy[:1], hard])
    cl, base = L.concentrated_loss(x, y, gamma=2.0), L.dice_ce_loss(x, y)
    ratio = cl / base
    assert ratio[0] < 0.05 and ratio[1] > 0.5


def test_concentrated_loss_pluggable_base_loss():
    rng = np.random.default_rng(4)
    x, y = t(rng.normal(size=(3, 1, 5, 5))), t((rng.random((3, 1, 5, 5)) < 0.5).astype(float))
    got = L.concentrated_loss(x, y, gamma=1.0, base_loss=L.bce_with_logits)
    want = (1 - ref_iou(expit(x.numpy()), y.numpy())) * ref_bce(x.numpy(), y.numpy())
    np.testing.assert_allclose(got.numpy(), want, rtol=1e-5)
    with pytest.raises(ValueError, match="one value per sample"):
        L.concentrated_loss(x, y, base_loss=lambda a, b: L.bce_with_logits(a, b).mean())


def test_detach_changes_gradients_not_values():
    rng = np.random.default_rng(5)
    x0, y = rng.normal(size=(2, 1, 6, 6)), t((rng.random((2, 1, 6, 6)) < 0.4).astype(float), torch.float64)
    grads, values = {}, {}
    for detach in (True, False):
        x = t(x0, torch.float64, grad=True)
        v = L.concentrated_loss(x, y, gamma=0.5, detach_factor=detach)
        v.sum().backward()
        grads[detach], values[detach] = x.grad, v.detach()
    torch.testing.assert_close(values[True], values[False], rtol=0, atol=0)
    assert not torch.allclose(grads[True], grads[False], rtol=1e-3, atol=1e-8)

    # detached: exactly the base loss's gradient scaled by the factor
    x = t(x0, torch.float64, grad=True)
    L.dice_ce_loss(x, y).sum().backward()
    factor = torch.from_numpy((1 - ref_iou(expit(x0), y.numpy())) ** 0.5).reshape(2, 1, 1, 1)
    torch.testing.assert_close(grads[True], factor * x.grad)

    # not detached: product rule through an independent torch float64 formula
    x = t(x0, torch.float64, grad=True)
    p = torch.sigmoid(x).flatten(1)
    yy = y.flatten(1)
    iou = ((p * yy).sum(1) + 1) / ((p + yy - p * yy).sum(1) + 1)
    dice = 1 - (2 * (p * yy).sum(1) + 1) / (p.sum(1) + yy.sum(1) + 1)
    ce = -(yy * torch.log(p) + (1 - yy) * torch.log(1 - p)).mean(1)
    ((1 - iou) ** 0.5 * (0.95 * dice + 0.05 * ce)).sum().backward()
    torch.testing.assert_close(grads[False], x.grad)


def test_detached_factor_has_no_graph():
    x = torch.randn(2, 1, 4, 4, requires_grad=True)
    y = torch.zeros(2, 1, 4, 4)
    assert not L.concentration_factor(torch.sigmoid(x), y, 0.5).requires_grad
    assert L.concentration_factor(torch.sigmoid(x), y, 0.5, detach=False).requires_grad


def test_undetached_factor_gradient_stays_finite_at_perfect_iou():
    y = torch.zeros(1, 1, 4, 4)
    y[..., :2, :] = 1
    x = ((y * 2 - 1) * 40).requires_grad_(True)  # float32 sigmoid saturates: IoU exactly 1
    v = L.concentrated_loss(x, y, gamma=0.25, detach_factor=False)
    v.sum().backward()
    assert torch.isfinite(v).all() and torch.isfinite(x.grad).all()


@FAST
@given(seg_batch(), GAMMAS, st.booleans(), st.sampled_from([0.0, 0.95, 1.0]))
def test_concentrated_loss_finite_values_and_gradients(batch, gamma, detach, lam):
    x = t(batch[0], grad=True)
    y = t(batch[1])
    v = L.concentrated_loss(x, y, gamma=gamma, dice_weight=lam, detach_factor=detach)
    assert v.shape == (x.shape[0],)
    assert torch.isfinite(v).all() and torch.all(v >= -1e-6)
    v.sum().backward()
    assert torch.isfinite(x.grad).all()


def test_invalid_hyperparameters_raise():
    x, y = torch.zeros(1, 1, 2, 2), torch.zeros(1, 1, 2, 2)
    with pytest.raises(ValueError, match="gamma"):
        L.concentrated_loss(x, y, gamma=-0.5)
    with pytest.raises(ValueError, match="dice_weight"):
        L.dice_ce_loss(x, y, dice_weight=1.5)
    with pytest.raises(ValueError, match="smooth"):
        L.soft_iou(x, y, smooth=0.0)
    with pytest.raises(ValueError, match="same shape"):
        L.dice_loss(x, torch.zeros(1, 1, 2, 3))


# -------------------------------------------------------------------------------- focal


@FAST
@given(seg_batch(), st.sampled_from([0.0, 0.5, 2.0]), st.sampled_from([None, 0.25]))
def test_focal_matches_reference(batch, gamma, alpha):
    x, y = batch
    x = np.clip(x, -30, 30)  # keeps the naive float64 reference accurate
    got = L.focal_loss(t(x, torch.float64), t(y, torch.float64), gamma=gamma, alpha=alpha)
    np.testing.assert_allclose(got.numpy(), ref_focal(x, y, gamma, alpha), rtol=1e-8, atol=1e-12)


def test_focal_special_cases():
    rng = np.random.default_rng(6)
    x, y = t(rng.normal(size=(2, 1, 4, 4)) * 3), t((rng.random((2, 1, 4, 4)) < 0.5).astype(float))
    assert torch.equal(L.focal_loss(x, y, gamma=0.0, alpha=None), L.bce_with_logits(x, y))
    # focusing lowers the loss of every pixel, most for the confident ones
    assert torch.all(L.focal_loss(x, y, gamma=2.0, alpha=None) < L.bce_with_logits(x, y))
    # saturated logits with γ < 1: still finite gradients
    xs = t([[[[200.0, -200.0, 200.0]]]], grad=True)
    v = L.focal_loss(xs, t([[[[1.0, 0.0, 0.0]]]]), gamma=0.5)
    v.sum().backward()
    assert torch.isfinite(v).all() and torch.isfinite(xs.grad).all()
    assert v.item() == pytest.approx(0.75 * 200 / 3, rel=1e-5)  # only the wrong pixel counts


# --------------------------------------------------------------------------------- LSGAN


def test_lsgan_losses_match_reference():
    rng = np.random.default_rng(7)
    real, fake = rng.normal(size=(3, 1, 4, 5)), rng.normal(size=(3, 1, 4, 5))
    r = lambda a: a.reshape(3, -1)  # noqa: E731
    got = L.lsgan_discriminator_loss(t(real, torch.float64), t(fake, torch.float64))
    np.testing.assert_allclose(got.numpy(), ((r(real) - 1) ** 2).mean(1) + (r(fake) ** 2).mean(1))
    got = L.lsgan_discriminator_loss(t(real, torch.float64), t(fake, torch.float64), a=-1.0, b=0.5)
    np.testing.assert_allclose(got.numpy(), ((r(real) - 0.5) ** 2).mean(1) + ((r(fake) + 1) ** 2).mean(1))
    got = L.lsgan_generator_loss(t(fake, torch.float64))
    np.testing.assert_allclose(got.numpy(), ((r(fake) - 1) ** 2).mean(1))
    got = L.lsgan_generator_loss(t(fake, torch.float64), target=0.3)
    np.testing.assert_allclose(got.numpy(), ((r(fake) - 0.3) ** 2).mean(1))
    got = L.anomaly_adversarial_loss(t(fake, torch.float64))
    np.testing.assert_allclose(got.numpy(), (r(fake) ** 2).mean(1))


def test_lsgan_hand_values_and_1d_outputs():
    real, fake = t([1.0, 0.0]), t([0.0, 1.0])
    assert torch.equal(L.lsgan_discriminator_loss(real, fake), t([0.0, 2.0]))
    assert torch.equal(L.lsgan_generator_loss(fake), t([1.0, 0.0]))
    assert torch.equal(L.anomaly_adversarial_loss(fake), t([0.0, 1.0]))


# ------------------------------------------------------------------ L1, latent, patch


def test_l1_and_latent_losses_match_reference():
    rng = np.random.default_rng(8)
    x, xh = rng.random((3, 3, 6, 7)), rng.random((3, 3, 6, 7))
    want = np.abs(x - xh).reshape(3, -1).mean(1)
    np.testing.assert_allclose(L.l1_reconstruction_loss(t(x), t(xh)).numpy(), want, rtol=1e-6)
    z, zh = rng.normal(size=(3, 100)), rng.normal(size=(3, 100))
    np.testing.assert_allclose(L.latent_loss(t(z), t(zh)).numpy(), np.abs(z - zh).mean(1), rtol=1e-6)


@FAST
@given(
    st.integers(0, 2**31 - 1),
    st.integers(1, 2),
    st.integers(1, 3),
    st.integers(2, 20),
    st.integers(2, 20),
    st.integers(2, 8),
    st.integers(1, 5),
    st.integers(1, 60),
)
def test_patch_errors_and_loss_match_loop_reference(seed, n, c, h, w, k, s, top_n):
    rng = np.random.default_rng(seed)
    x, xh = rng.random((n, c, h, w)), rng.random((n, c, h, w))
    want = ref_patches(x, xh, k, s)
    got = L.patch_errors(t(x, torch.float64), t(xh, torch.float64), patch_size=k, stride=s)
    assert got.shape == want.shape
    np.testing.assert_allclose(got.numpy(), want, rtol=1e-12)
    loss = L.patch_loss(t(x, torch.float64), t(xh, torch.float64), patch_size=k, stride=s, top_n=top_n)
    top = -np.sort(-want, axis=1)[:, :top_n]  # top_n clipped to M
    np.testing.assert_allclose(loss.numpy(), top.mean(1), rtol=1e-12)


def test_patch_errors_paper_grid_and_small_images():
    x, xh = torch.rand(2, 3, 128, 128), torch.rand(2, 3, 128, 128)
    assert L.patch_errors(x, xh).shape == (2, 49)  # 32×32 patches at stride 16
    small, small_hat = torch.rand(2, 1, 20, 24), torch.rand(2, 1, 20, 24)
    got = L.patch_errors(small, small_hat)  # smaller than a patch: one whole-image patch
    assert got.shape == (2, 1)
    torch.testing.assert_close(got[:, 0], L.l1_reconstruction_loss(small, small_hat))
    # a 3-D (n, H, W) batch is one channel
    torch.testing.assert_close(
        L.patch_errors(small[:, 0], small_hat[:, 0], 8, 4), L.patch_errors(small, small_hat, 8, 4)
    )
    with pytest.raises(ValueError, match="top_n"):
        L.patch_loss(small, small_hat, top_n=0)


def test_patch_loss_carries_gradient_to_the_worst_patch_only():
    x = torch.zeros(1, 1, 16, 16)
    x_hat = torch.full((1, 1, 16, 16), 0.01)
    x_hat[0, 0, 12:15, 12:15] = 1.0  # one bad spot, only inside the patch at (8, 8)
    x_hat.requires_grad_(True)
    loss = L.patch_loss(x, x_hat, patch_size=8, stride=4, top_n=1)
    assert loss.item() == pytest.approx((9 * 1.0 + 55 * 0.01) / 64, rel=1e-5)
    loss.sum().backward()
    g = x_hat.grad[0, 0]
    torch.testing.assert_close(g[8:16, 8:16], torch.full((8, 8), 1 / 64))
    inside = torch.zeros(16, 16, dtype=torch.bool)
    inside[8:16, 8:16] = True
    assert torch.all(g[~inside] == 0)


# ----------------------------------------------------------------------------------- ABC


def test_abc_loss_reference_and_zero_error():
    rng = np.random.default_rng(9)
    x, xh = rng.random((3, 1, 5, 5)), rng.random((3, 1, 5, 5))
    a = np.abs(x - xh).reshape(3, -1).mean(1)
    got = L.abc_loss(t(x, torch.float64), t(xh, torch.float64))
    np.testing.assert_allclose(got.numpy(), -np.log(1 - np.exp(-a)), rtol=1e-10)
    # A = 0: large but finite, −log(1 − e^(−eps)), and a finite gradient
    xz = torch.zeros(2, 1, 4, 4)
    xh0 = torch.zeros(2, 1, 4, 4, requires_grad=True)
    v = L.abc_loss(xz, xh0)
    assert torch.isfinite(v).all()
    np.testing.assert_allclose(v.detach().numpy(), -math.log(1 - math.exp(-1e-6)), rtol=1e-4)
    v.sum().backward()
    assert torch.isfinite(xh0.grad).all()


def test_abc_loss_decreases_towards_zero_as_error_grows():
    x = torch.zeros(1, 1, 4, 4, dtype=torch.float64)
    errors = [1e-5, 1e-3, 0.1, 0.5, 1.0, 3.0, 10.0, 40.0]
    values = [L.abc_loss(x, x + e).item() for e in errors]
    assert all(a > b for a, b in zip(values, values[1:], strict=False))
    assert all(v >= 0 for v in values) and values[-1] < 1e-12
    np.testing.assert_allclose(values[:-1], [-math.log(-math.expm1(-e)) for e in errors[:-1]], rtol=1e-9)
    xh = (x + 0.7).requires_grad_(True)
    L.abc_loss(x, xh).sum().backward()
    assert torch.all(xh.grad < 0)  # minimising pushes the reconstruction further away


def test_abc_loss_of_error_is_the_abc_of_any_per_sample_error():
    """abc_loss is abc_loss_of_error of the mean L1 error; given the patch loss instead, its gradient reaches only
    the pixels of the worst patches (the GAN detector's abc_error="patch")."""
    rng = np.random.default_rng(4)
    x = t(rng.random((2, 1, 8, 8)), torch.float64)
    xh = t(rng.random((2, 1, 8, 8)), torch.float64)
    a = (x - xh).abs().flatten(1).mean(1)
    torch.testing.assert_close(L.abc_loss_of_error(a), L.abc_loss(x, xh))
    with pytest.raises(ValueError, match="eps must be > 0"):
        L.abc_loss_of_error(a, eps=0.0)
    xh = xh.clone().requires_grad_(True)
    x = x.clone()
    x[:, :, :4, :4] += 1.0  # one corner patch per image is by far the worst
    L.abc_loss_of_error(L.patch_loss(x, xh, patch_size=4, stride=4, top_n=1)).sum().backward()
    assert torch.all(xh.grad[:, :, :4, :4] != 0) and torch.all(xh.grad[:, :, 4:, :] == 0)
    assert torch.all(xh.grad[:, :, :, 4:] == 0)


def test_masked_l1_error_averages_the_defect_pixels_and_falls_back_to_the_mean_on_empty_masks():
    """masked_l1_error: the mean L1 error over each image's (soft) mask, channels averaged; an empty mask gives
    the whole-image mean; its gradient reaches the masked pixels only (the GAN's abc_error="mask")."""
    rng = np.random.default_rng(5)
    x = t(rng.random((3, 2, 6, 6)), torch.float64)
    xh = t(rng.random((3, 2, 6, 6)), torch.float64).requires_grad_(True)
    mask = torch.zeros(3, 6, 6, dtype=torch.float64)
    mask[0, 1:3, 2:5] = 1.0
    mask[1, 0, 0], mask[1, 5, 5] = 1.0, 0.25  # soft: weighted
    err = (x - xh).abs().mean(dim=1)
    expected = torch.stack([
        err[0, 1:3, 2:5].mean(),
        (err[1, 0, 0] + 0.25 * err[1, 5, 5]) / 1.25,
        err[2].mean(),  # empty mask: the paper's whole-image error
    ])
    got = L.masked_l1_error(x, xh, mask)
    torch.testing.assert_close(got, expected)
    torch.testing.assert_close(L.masked_l1_error(x, xh, mask.unsqueeze(1).bool()).detach()[0], expected[0].detach())
    got[0].backward()
    grad = xh.grad[0].abs().sum(dim=0)
    assert torch.all(grad[1:3, 2:5] > 0) and float(grad.sum()) == pytest.approx(float(grad[1:3, 2:5].sum()))


# ------------------------------------------------------------- dtypes, shapes, exports


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_half_precision_inputs_are_summed_in_float32(dtype):
    rng = np.random.default_rng(10)
    x = torch.tensor(rng.normal(size=(2, 1, 96, 96)), dtype=dtype)
    y = torch.tensor((rng.random((2, 1, 96, 96)) < 0.3).astype(float), dtype=dtype)
    p = torch.sigmoid(x.float()).to(dtype)
    got = L.soft_iou(p, y)
    assert got.dtype == torch.float32
    np.testing.assert_allclose(got.numpy(), ref_iou(p.double().numpy(), y.double().numpy()), rtol=1e-5)
    v = L.concentrated_loss(x, y)
    want = (1 - ref_iou(expit(x.double().numpy()), y.double().numpy())) ** 0.5 * ref_dice_ce(
        x.double().numpy(), y.double().numpy(), 0.95
    )
    assert v.dtype == torch.float32
    np.testing.assert_allclose(v.numpy(), want, rtol=1e-4)
    assert L.patch_loss(x.expand(2, 3, 96, 96), torch.zeros(2, 3, 96, 96, dtype=dtype)).dtype == torch.float32


def test_3d_inputs_equal_4d_inputs():
    rng = np.random.default_rng(11)
    x, y = t(rng.normal(size=(3, 6, 5))), t((rng.random((3, 6, 5)) < 0.4).astype(float))
    for fn in (L.dice_ce_loss, L.concentrated_loss, L.focal_loss, L.bce_with_logits):
        torch.testing.assert_close(fn(x, y), fn(x[:, None], y[:, None]))


def test_public_names():
    assert len(L.__all__) == len(set(L.__all__)) == 17
    for name in L.__all__:
        assert callable(getattr(L, name))
