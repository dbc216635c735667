"""Tversky, focal Tversky and Lovász hinge: hand-computed values, identities, gradients, errors."""

from __future__ import annotations

import pickle

import pytest
import torch
from skdefect_extra_losses.losses import (
    focal_tversky_loss,
    lovasz_hinge_loss,
    make_focal_tversky,
    make_lovasz_hinge,
    make_tversky,
    tversky_index,
    tversky_loss,
)

BIG = 30.0  # |logit| at which sigmoid is 1 (or 0) to float precision


def _random(seed: int = 0, shape=(4, 1, 6, 7), dtype=torch.float64):
    g = torch.Generator().manual_seed(seed)
    logits = torch.randn(shape, generator=g, dtype=dtype) * 2
    target = (torch.rand(shape, generator=g) < 0.3).to(dtype)
    target[0] = 0  # one defect-free image
    return logits, target


# ---------------------------------------------------------------------------- Tversky


def test_tversky_hand_computed():
    # p = sigmoid(0) = 0.5 everywhere; target [1, 1, 0, 0]: TP = 1, FP = 1, FN = 1
    logits = torch.zeros(1, 4)
    target = torch.tensor([[1.0, 1.0, 0.0, 0.0]])
    # (1 + 1) / (1 + 0.3 + 0.7 + 1) = 2/3
    assert tversky_loss(logits, target).item() == pytest.approx(1 / 3)
    # alpha=0.9, beta=0.1, smooth=0.5: (1 + 0.5) / (1 + 0.9 + 0.1 + 0.5) = 0.6
    assert tversky_loss(logits, target, alpha=0.9, beta=0.1, smooth=0.5).item() == pytest.approx(0.4)
    # asymmetry: a missed defect pixel (FN) costs more than a false alarm (FP) when beta > alpha
    p_fn = torch.tensor([[BIG, -BIG, -BIG, -BIG]])  # TP 1, FN 1, FP 0
    p_fp = torch.tensor([[BIG, BIG, BIG, -BIG]])  # TP 2, FN 0, FP 1
    assert tversky_loss(p_fn, target).item() == pytest.approx(1 - 2 / 2.7)
    assert tversky_loss(p_fp, target).item() == pytest.approx(1 - 3 / 3.3)


def test_tversky_special_cases_are_dice_and_jaccard():
    from skdefect.losses import dice_loss, soft_iou

    logits, target = _random()
    p = logits.sigmoid()
    # alpha = beta = 1/2 is Dice (smoothing halves: (TP + s/2) / (TP + (FP + FN)/2 + s/2)); Tversky keeps the
    # smoothed value on a defect-free image, which is dice_loss's literal reading, empty="smooth"
    torch.testing.assert_close(
        tversky_loss(logits, target, 0.5, 0.5, smooth=0.5), dice_loss(p, target, smooth=1.0, empty="smooth")
    )
    # alpha = beta = 1 is the Jaccard index
    torch.testing.assert_close(tversky_index(logits, target, 1.0, 1.0, smooth=1.0), soft_iou(p, target, smooth=1.0))


def test_tversky_perfect_prediction_and_empty_image_give_zero():
    target = torch.zeros(2, 1, 8, 8)
    target[0, :, 2:5, 3:6] = 1
    logits = torch.where(target > 0, BIG, -BIG)
    assert torch.allclose(tversky_loss(logits, target), torch.zeros(2), atol=1e-6)
    assert torch.allclose(focal_tversky_loss(logits, target), torch.zeros(2), atol=1e-4)
    # the worst prediction is far from 0
    assert (tversky_loss(-logits, target) > 0.9).all()


def test_focal_tversky_is_a_power_of_tversky():
    logits, target = _random(1)
    base = tversky_loss(logits, target)
    torch.testing.assert_close(focal_tversky_loss(logits, target, gamma=1.0), base)
    torch.testing.assert_close(focal_tversky_loss(logits, target, gamma=0.75), base.pow(0.75))
    # gamma < 1 raises small losses: hard images keep more weight relatively
    assert (focal_tversky_loss(logits, target, gamma=0.5) >= base).all()


# ----------------------------------------------------------------------- Lovász hinge


def test_lovasz_hinge_hand_computed():
    # logits [0.5, 0.25], labels [1, 0]: hinge errors [0.5, 1.25]; sorted [1.25 (neg), 0.5 (pos)];
    # Jaccard along the sort: 1 - [1/2, 0/2] = [0.5, 1] -> gradient [0.5, 0.5]; 0.5·1.25 + 0.5·0.5 = 0.875
    value = lovasz_hinge_loss(torch.tensor([[0.5, 0.25]]), torch.tensor([[1.0, 0.0]]))
    assert value.item() == pytest.approx(0.875)
    # no positives: only the largest hinge error counts, max(0, 1 + max logit)
    value = lovasz_hinge_loss(torch.tensor([[0.5, -3.0, 2.0]]), torch.zeros(1, 3))
    assert value.item() == pytest.approx(3.0)


@pytest.mark.parametrize("seed", range(5))
def test_lovasz_hinge_equals_the_jaccard_loss_on_binary_errors(seed):
    # when every hinge error is 0 or 1 the Lovász extension equals the set function |M| / |P ∪ M|
    g = torch.Generator().manual_seed(seed)
    labels = (torch.rand(3, 40, generator=g) < 0.3).double()
    labels[0, :5] = 1
    wrong = torch.rand(3, 40, generator=g) < 0.25
    signs = 2 * labels - 1
    logits = torch.where(wrong, torch.zeros_like(labels), signs)  # error 1 if wrong, else exactly 0
    union = (labels.bool() | wrong).sum(dim=1).double()
    expected = wrong.sum(dim=1).double() / union
    torch.testing.assert_close(lovasz_hinge_loss(logits, labels), expected)


def _reference_lovasz_hinge(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Berman et al.'s reference ``lovasz_hinge(per_image=True)``, one image at a time, unreduced."""
    out = []
    for x, y in zip(logits.flatten(1), labels.flatten(1), strict=True):
        errors = 1.0 - x * (2.0 * y - 1.0)
        errors_sorted, perm = torch.sort(errors, descending=True)
        gt = y[perm]
        gts = gt.sum()
        jaccard = 1.0 - (gts - gt.cumsum(0)) / (gts + (1 - gt).cumsum(0))
        jaccard[1:] = jaccard[1:] - jaccard[:-1].clone()
        out.append(torch.dot(torch.relu(errors_sorted), jaccard))
    return torch.stack(out)


def test_lovasz_hinge_matches_the_reference_algorithm():
    logits, target = _random(2)
    torch.testing.assert_close(lovasz_hinge_loss(logits, target), _reference_lovasz_hinge(logits, target))


def test_lovasz_hinge_perfect_prediction_gives_zero_and_soft_targets_are_binarised():
    target = torch.zeros(2, 1, 8, 8)
    target[0, :, 2:5, 3:6] = 1
    logits = torch.where(target > 0, 1.0, -1.0)  # margin exactly 1: all hinge errors 0
    assert torch.equal(lovasz_hinge_loss(logits, target), torch.zeros(2))
    soft = target * 0.8 + 0.1  # 0.9 on the defect, 0.1 elsewhere
    torch.testing.assert_close(lovasz_hinge_loss(logits * 0.3, soft), lovasz_hinge_loss(logits * 0.3, target))


# ------------------------------------------------------------------------------- common


LOSSES = {
    "tversky": make_tversky(),
    "focal_tversky": make_focal_tversky(gamma=0.5),
    "lovasz_hinge": make_lovasz_hinge(),
}


@pytest.mark.parametrize("name", sorted(LOSSES))
def test_per_sample_shape_finite_gradients_and_descent(name):
    loss_fn = LOSSES[name]
    logits, target = _random(3, dtype=torch.float32)
    logits.requires_grad_(True)
    values = loss_fn(logits, target)
    assert values.shape == (4,) and values.dtype == torch.float32
    assert torch.isfinite(values).all() and (values >= 0).all()
    values.mean().backward()
    assert torch.isfinite(logits.grad).all() and logits.grad.abs().sum() > 0
    # a small step against the gradient lowers the loss
    with torch.no_grad():
        stepped = loss_fn(logits - 0.05 * logits.grad / logits.grad.norm(), target)
    assert stepped.mean() < values.mean()
    # saturated logits keep finite gradients too
    saturated = (torch.where(target > 0, 50.0, -50.0)).requires_grad_(True)
    loss_fn(saturated, target).sum().backward()
    assert torch.isfinite(saturated.grad).all()


@pytest.mark.parametrize("name", sorted(LOSSES))
def test_half_precision_is_computed_in_float32_and_configured_losses_pickle(name):
    loss_fn = LOSSES[name]
    logits, target = _random(4, dtype=torch.float32)
    out = loss_fn(logits.to(torch.bfloat16), target.to(torch.bfloat16))
    assert out.dtype == torch.float32
    restored = pickle.loads(pickle.dumps(loss_fn))
    torch.testing.assert_close(restored(logits, target), loss_fn(logits, target))


@pytest.mark.parametrize(
    "factory, kwargs, match",
    [
        (make_tversky, {"alpha": -0.1}, "alpha must be a finite number >= 0, got -0.1"),
        (make_tversky, {"beta": float("nan")}, "beta must be"),
        (make_tversky, {"smooth": 0}, "smooth must be a finite number > 0, got 0"),
        (make_focal_tversky, {"gamma": 0.0}, "gamma must be a finite number > 0, got 0.0"),
        (make_focal_tversky, {"alpha": "0.3"}, "alpha must be"),
    ],
)
def test_factories_reject_bad_hyperparameters(factory, kwargs, match):
    with pytest.raises(ValueError, match=match):
        factory(**kwargs)


def test_shape_mismatch_and_non_tensors_are_refused():
    with pytest.raises(ValueError, match=r"same shape.*\(2, 1, 4, 4\) and \(2, 1, 4, 5\)"):
        tversky_loss(torch.zeros(2, 1, 4, 4), torch.zeros(2, 1, 4, 5))
    with pytest.raises(TypeError, match="must be torch tensors, got ndarray"):
        import numpy as np

        lovasz_hinge_loss(np.zeros((1, 4)), torch.zeros(1, 4))
