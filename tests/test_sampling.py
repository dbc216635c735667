"""Samplers: balance, least-recently-used coverage, k-means cluster draws, determinism."""

from __future__ import annotations

import numpy as np
import pytest

from skdefect.plugins import call_with_accepted, get_sampler
from skdefect.sampling import BalancedSampler, KMeansClusterSampler, UniformSampler


def test_uniform_is_a_permutation_and_reproducible():
    y = np.array([0, 1] * 10)
    a = UniformSampler(random_state=3).epoch_indices(y)
    b = UniformSampler(random_state=3).epoch_indices(y)
    assert sorted(a) == list(range(20))
    np.testing.assert_array_equal(a, b)


def test_balanced_interleaves_and_covers_majority_lru():
    y = np.array([1] * 5 + [0] * 23)
    s = BalancedSampler(random_state=0)
    seen = []
    for _ in range(5):
        idx = s.epoch_indices(y)
        assert len(idx) == 10
        # minority (defective) and majority alternate, so any minibatch of 2 is balanced
        np.testing.assert_array_equal(y[idx], [1, 0] * 5)
        assert set(idx[y[idx] == 1]) == set(range(5))  # every positive every epoch
        seen.extend(idx[y[idx] == 0])
    # least recently used: the first 23 majority draws are all distinct
    assert len(set(seen[:23])) == 23


def test_balanced_majority_positive_and_single_class():
    y = np.array([1] * 9 + [0] * 3)
    idx = BalancedSampler(random_state=1).epoch_indices(y)
    np.testing.assert_array_equal(y[idx], [0, 1] * 3)
    idx = BalancedSampler(random_state=1).epoch_indices(np.zeros(7, dtype=int))
    assert sorted(idx) == list(range(7))


def test_balanced_is_deterministic():
    y = np.array([1] * 4 + [0] * 11)
    a = [BalancedSampler(random_state=5).epoch_indices(y) for _ in range(1)]
    s1, s2 = BalancedSampler(random_state=5), BalancedSampler(random_state=5)
    for _ in range(3):
        np.testing.assert_array_equal(s1.epoch_indices(y), s2.epoch_indices(y))
    assert len(a[0]) == 8


def _clustered(rng, sizes, centers):
    feats = [rng.normal(c, 0.05, size=(n, 2)) for n, c in zip(sizes, centers, strict=True)]
    return np.concatenate(feats)


def test_kmeans_draws_equally_per_cluster_and_balances_classes():
    rng = np.random.default_rng(0)
    # 60 normals in one blob; anomalies: 40 in a big cluster, 5 in a small one, 3 in another
    normals = _clustered(rng, [60], [(0, 0)])
    anomalies = _clustered(rng, [40, 5, 3], [(5, 5), (-5, 5), (5, -5)])
    features = np.concatenate([normals, anomalies])
    y = np.array([0] * 60 + [1] * 48)
    s = KMeansClusterSampler(n_clusters=3, random_state=0)
    idx = s.epoch_indices(y, features)
    assert (y[idx] == 0).sum() == 60 and (y[idx] == 1).sum() == 60  # anomalies balanced against normals
    np.testing.assert_array_equal(np.sort(idx[y[idx] == 0]), np.arange(60))  # all normals kept
    anomaly_clusters = s.cluster_labels_[idx[y[idx] == 1]]
    counts = np.bincount(anomaly_clusters)[np.unique(anomaly_clusters)]
    assert counts.max() - counts.min() <= 1  # equal draws per cluster: the rare modes are oversampled
    assert len(np.unique(anomaly_clusters)) == 3
    np.testing.assert_array_equal(s.indices_, idx)


def test_kmeans_reproducible_and_needs_features():
    rng = np.random.default_rng(1)
    features = rng.normal(size=(50, 4))
    y = (np.arange(50) % 5 == 0).astype(int)
    a = KMeansClusterSampler(n_clusters=4, random_state=7).epoch_indices(y, features)
    b = KMeansClusterSampler(n_clusters=4, random_state=7).epoch_indices(y, features)
    np.testing.assert_array_equal(a, b)
    with pytest.raises(ValueError, match="needs features"):
        KMeansClusterSampler().epoch_indices(y)
    with pytest.raises(ValueError, match="n_clusters"):
        KMeansClusterSampler(n_clusters=0)


def test_kmeans_one_class_uses_every_normal():
    y = np.zeros(30, dtype=int)
    idx = KMeansClusterSampler(random_state=0).epoch_indices(y, np.random.default_rng(0).normal(size=(30, 3)))
    assert sorted(idx) == list(range(30))


@pytest.mark.parametrize("name", ["uniform", "balanced", "kmeans"])
def test_registered_samplers_resolve(name):
    sampler = call_with_accepted(get_sampler(name), random_state=0)
    y = np.array([0] * 12 + [1] * 4)
    idx = sampler.epoch_indices(y, np.random.default_rng(0).normal(size=(16, 3)))
    assert set(idx) <= set(range(16)) and len(idx) > 0


def test_samplers_reject_bad_labels():
    with pytest.raises(ValueError, match="0/1"):
        UniformSampler().epoch_indices(np.array([0, 2]))
