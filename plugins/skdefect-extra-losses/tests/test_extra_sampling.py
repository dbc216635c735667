"""ClassWeightedSampler: the skdefect sampler contract, the class share, least-recently-used draws."""

from __future__ import annotations

import numpy as np
import pytest
from skdefect_extra_losses.sampling import ClassWeightedSampler, make_class_weighted

Y = np.array([1] * 5 + [0] * 45)  # 10 % defective


def test_contract_indices_in_range_and_deterministic_per_seed():
    a, b = make_class_weighted(random_state=0), make_class_weighted(random_state=0)
    epochs_a = [a.epoch_indices(Y) for _ in range(4)]
    epochs_b = [b.epoch_indices(Y, features=np.zeros((len(Y), 3))) for _ in range(4)]  # features are ignored
    for ea, eb in zip(epochs_a, epochs_b, strict=True):
        assert ea.dtype == np.int64 and ea.ndim == 1 and len(ea) == len(Y)
        assert ea.min() >= 0 and ea.max() < len(Y)
        np.testing.assert_array_equal(ea, eb)
    assert not np.array_equal(epochs_a[0], epochs_a[1])  # a fresh order every epoch
    other = make_class_weighted(random_state=1).epoch_indices(Y)
    assert not np.array_equal(epochs_a[0], other)


@pytest.mark.parametrize("pos_fraction", [0.5, 0.25, 0.8])
def test_each_epoch_has_the_requested_defect_share(pos_fraction):
    sampler = ClassWeightedSampler(pos_fraction=pos_fraction, epoch_size=40, random_state=0)
    for _ in range(3):
        idx = sampler.epoch_indices(Y)
        assert len(idx) == 40
        assert Y[idx].sum() == round(pos_fraction * 40)
    np.testing.assert_array_equal(sampler.indices_, idx)


def test_draws_are_least_recently_used_within_a_class():
    sampler = ClassWeightedSampler(pos_fraction=0.5, epoch_size=20, random_state=0)
    neg_counts = np.zeros(len(Y), dtype=int)
    for epoch in range(5):
        idx = sampler.epoch_indices(Y)
        # 10 defective draws from 5 images: every image exactly twice (over-sampling, evenly)
        np.testing.assert_array_equal(np.bincount(idx[Y[idx] == 1], minlength=5), [2] * 5)
        neg_counts += np.bincount(idx[Y[idx] == 0], minlength=len(Y))
        if epoch == 3:  # 40 normal draws from 45 images: no repeat yet
            assert neg_counts.max() == 1 and neg_counts.sum() == 40
    # 50 normal draws: every normal image once before any twice
    assert neg_counts[5:].min() == 1 and neg_counts.max() == 2 and neg_counts.sum() == 50


def test_one_class_gives_a_plain_permutation():
    idx = ClassWeightedSampler(random_state=0).epoch_indices(np.zeros(7, dtype=int))
    np.testing.assert_array_equal(np.sort(idx), np.arange(7))


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"pos_fraction": 0.0}, r"pos_fraction must be a number in \(0, 1\), got 0.0"),
        ({"pos_fraction": 1}, "pos_fraction must be"),
        ({"pos_fraction": "half"}, "pos_fraction must be"),
        ({"epoch_size": 1}, "epoch_size must be an int >= 2 or None, got 1"),
        ({"epoch_size": 10.0}, "epoch_size must be"),
    ],
)
def test_bad_parameters_are_refused(kwargs, match):
    with pytest.raises(ValueError, match=match):
        ClassWeightedSampler(**kwargs)


def test_bad_labels_are_refused():
    sampler = ClassWeightedSampler(random_state=0)
    with pytest.raises(ValueError, match="0/1 labels, got values"):
        sampler.epoch_indices(np.array([0, 1, 2]))
    with pytest.raises(ValueError, match="1-D"):
        sampler.epoch_indices(np.zeros((2, 2)))
