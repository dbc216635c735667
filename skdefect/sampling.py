"""Minibatch samplers: which training images an epoch visits, and in what order.

A sampler is built by a factory registered under the ``skdefect`` plugin hook
``skdefect_register_samplers`` and exposes ``epoch_indices(y, features=None)``.
Samplers only choose indices: masks, labels and images follow the indices, so a
sampler never needs to know about them.

Built-ins
---------
``"uniform"``
    Every image once per epoch, shuffled.
``"balanced"``
    The "biased minibatch sampling" of Tabernik et al. (2019) and Božič et al.
    (2021): an epoch holds every image of the minority class and as many of the
    majority class, taken in least-recently-used order, interleaved so that every
    minibatch is (almost) half defective.
``"kmeans"``
    The dual-discriminator GAN paper's sampling (§3.2): k-means clusters within
    each class, the same number of draws from each cluster, and the anomalous class
    drawn to about as many images as the normal class.
"""

from __future__ import annotations

import numpy as np
from sklearn.utils import check_random_state

__all__ = ["UniformSampler", "BalancedSampler", "KMeansClusterSampler"]


def _check_binary_labels(y: np.ndarray) -> np.ndarray:
    y = np.asarray(y)
    if y.ndim != 1:
        raise ValueError(f"y must be 1-D, got shape {y.shape}")
    if y.size and not np.isin(y, (0, 1)).all():
        raise ValueError(f"y must hold 0/1 labels, got values {np.unique(y)[:5].tolist()}")
    return y.astype(np.int64, copy=False)


class UniformSampler:
    """Every image once per epoch, in a fresh random order.

    Parameters
    ----------
    random_state : int, RandomState instance or None
        Seeds the order; the same seed gives the same sequence of epochs.
    """

    def __init__(self, random_state: int | np.random.RandomState | None = None) -> None:
        self.random_state = random_state
        self._rng = check_random_state(random_state)

    def epoch_indices(self, y: np.ndarray, features: np.ndarray | None = None) -> np.ndarray:
        y = _check_binary_labels(y)
        return self._rng.permutation(len(y))


class _LeastRecentlyUsed:
    """Cycles through a pool in random order, reshuffling when it runs out."""

    def __init__(self, pool: np.ndarray, rng: np.random.RandomState) -> None:
        self.pool, self.rng = pool, rng
        self._queue = rng.permutation(pool)

    def take(self, k: int) -> np.ndarray:
        out = []
        while k > 0:
            if len(self._queue) == 0:
                self._queue = self.rng.permutation(self.pool)
            chunk, self._queue = self._queue[:k], self._queue[k:]
            out.append(chunk)
            k -= len(chunk)
        return np.concatenate(out) if out else np.empty(0, dtype=np.int64)


class BalancedSampler:
    """Balanced ("biased") minibatch sampling with least-recently-used draws.

    An epoch visits every image of the minority class and as many images of the
    majority class, the latter in least-recently-used order across epochs (so every
    majority image is seen before any is seen twice). The two classes are
    interleaved, minority first, so each minibatch is close to half defective.
    With one class only, an epoch is every image, shuffled.

    Parameters
    ----------
    random_state : int, RandomState instance or None
        Seeds the draws.
    """

    def __init__(self, random_state: int | np.random.RandomState | None = None) -> None:
        self.random_state = random_state
        self._rng = check_random_state(random_state)
        self._state: tuple[bytes, _LeastRecentlyUsed, _LeastRecentlyUsed] | None = None

    def epoch_indices(self, y: np.ndarray, features: np.ndarray | None = None) -> np.ndarray:
        y = _check_binary_labels(y)
        pos, neg = np.flatnonzero(y == 1), np.flatnonzero(y == 0)
        if len(pos) == 0 or len(neg) == 0:
            return self._rng.permutation(len(y))
        key = y.tobytes()
        if self._state is None or self._state[0] != key:
            self._state = (key, _LeastRecentlyUsed(pos, self._rng), _LeastRecentlyUsed(neg, self._rng))
        _, pos_pool, neg_pool = self._state
        k = min(len(pos), len(neg))
        minority, majority = (pos_pool, neg_pool) if len(pos) <= len(neg) else (neg_pool, pos_pool)
        first, second = minority.take(k), majority.take(k)
        out = np.empty(2 * k, dtype=np.int64)
        out[0::2], out[1::2] = first, second
        return out


class KMeansClusterSampler:
    """k-means cluster sampling of the dual-discriminator GAN paper (§3.2).

    Within each class the images are clustered by k-means on ``features`` (the
    estimator passes small down-sampled copies of the images). Each epoch draws the
    same number of images from every cluster of a class, so rare modes of a class
    are seen as often as common ones; the anomalous class is drawn to as many
    images as the normal class has ("anomalies about as many as normals"), and the
    normal class keeps all its images when it is the larger one, as the paper does
    for its benchmarks. Draws are without replacement inside a cluster while it
    has enough images, with replacement otherwise.

    Parameters
    ----------
    n_clusters : int, default=8
        Clusters per class (fewer when a class has fewer images).
    n_per_class : int or None, default=None
        Images drawn per class and epoch; ``None`` means the normal-class count
        (or the anomalous count when there are no normals).
    random_state : int, RandomState instance or None
        Seeds k-means and the draws.

    Attributes
    ----------
    cluster_labels_ : ndarray of shape (n_samples,)
        Cluster of each training image (cluster ids are unique across classes).
    indices_ : ndarray
        The indices chosen for the last epoch, in visiting order.
    """

    #: The estimators compute ``features`` (small down-sampled copies of the images) for samplers that say so.
    needs_features = True

    def __init__(
        self,
        n_clusters: int = 8,
        n_per_class: int | None = None,
        random_state: int | np.random.RandomState | None = None,
    ) -> None:
        if not isinstance(n_clusters, (int, np.integer)) or n_clusters < 1:
            raise ValueError(f"n_clusters must be a positive int, got {n_clusters!r}")
        if n_per_class is not None and (not isinstance(n_per_class, (int, np.integer)) or n_per_class < 1):
            raise ValueError(f"n_per_class must be a positive int or None, got {n_per_class!r}")
        self.n_clusters = n_clusters
        self.n_per_class = n_per_class
        self.random_state = random_state
        self._rng = check_random_state(random_state)
        self._key: bytes | None = None

    def _fit_clusters(self, y: np.ndarray, features: np.ndarray) -> None:
        from sklearn.cluster import KMeans

        labels = np.full(len(y), -1, dtype=np.int64)
        offset = 0
        for cls in (0, 1):
            idx = np.flatnonzero(y == cls)
            if len(idx) == 0:
                continue
            k = int(min(self.n_clusters, len(idx)))
            if k == 1:
                labels[idx] = offset
            else:
                seed = int(self._rng.randint(np.iinfo(np.int32).max))
                km = KMeans(n_clusters=k, n_init=3, random_state=seed).fit(features[idx])
                labels[idx] = km.labels_ + offset
            offset += k
        self.cluster_labels_ = labels

    def epoch_indices(self, y: np.ndarray, features: np.ndarray | None = None) -> np.ndarray:
        y = _check_binary_labels(y)
        if features is None:
            raise ValueError("the 'kmeans' sampler needs features: an (n_samples, n_features) array")
        features = np.asarray(features, dtype=np.float64).reshape(len(y), -1)
        key = y.tobytes() + features.shape[1].to_bytes(8, "little")
        if self._key != key:
            self._fit_clusters(y, features)
            self._key = key
        counts = np.bincount(y, minlength=2)
        target = self.n_per_class or int(counts[0] or counts[1])
        chosen = []
        for cls in (0, 1):
            idx = np.flatnonzero(y == cls)
            if len(idx) == 0:
                continue
            if len(idx) == target and cls == 0:
                chosen.append(idx)
                continue
            chosen.append(self._draw_per_cluster(idx, target))
        out = self._rng.permutation(np.concatenate(chosen))
        self.indices_ = out
        return out

    def _draw_per_cluster(self, idx: np.ndarray, target: int) -> np.ndarray:
        clusters = np.unique(self.cluster_labels_[idx])
        share = np.full(len(clusters), target // len(clusters))
        share[self._rng.permutation(len(clusters))[: target % len(clusters)]] += 1
        draws = []
        for c, k in zip(clusters, share, strict=True):
            members = idx[self.cluster_labels_[idx] == c]
            replace = k > len(members)
            draws.append(self._rng.choice(members, size=int(k), replace=replace))
        return np.concatenate(draws)
