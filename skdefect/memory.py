"""Memories of normal features: the nearest-normal scores of the GAN detector (torch only).

Two memories, both built from the generator's encoder features (``generator.features(x)``, the U-Net's
``enc2`` output at 1/4 resolution; ``generator.encode(x)`` for a generator without ``features``):

* an **image memory**: each training normal's features, average-pooled to at most 8×8, flattened and
  L2-normalised (:func:`image_embedding`); an image's score is its cosine distance to the nearest row. It
  compares whole images, which suits anomalies that differ in shape (another digit).
* a **patch memory**: every location's feature vector, averaged over its 3×3 neighbourhood and
  standardised per channel (:func:`patch_embedding`), reduced to at most 4,096 rows by PatchCore's greedy
  k-centre coreset (Roth et al. 2022, :func:`greedy_coreset`); a location's distance is the Euclidean
  distance to the nearest row and an image's score the largest over its locations
  (:func:`nearest_patch_distances`). It compares local texture, which suits small defects on surfaces.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

__all__ = [
    "IMAGE_GRID",
    "IMAGE_ROWS",
    "PATCH_ROWS",
    "generator_features",
    "greedy_coreset",
    "image_embedding",
    "nearest_patch_distances",
    "patch_embedding",
]

#: The image memory pools features to at most this many cells per side.
IMAGE_GRID = 8
#: Most rows of the image memory (training normals, evenly spaced when there are more).
IMAGE_ROWS = 4096
#: Most rows of the patch memory (the coreset's size).
PATCH_ROWS = 4096
#: Most patch vectors the coreset is chosen from (a random subset when there are more).
PATCH_POOL = 200_000
#: Memory rows compared per step (bounds the memory of a batch's distance matrix).
_CHUNK = 1024


def generator_features(generator: torch.nn.Module, x: torch.Tensor) -> torch.Tensor:
    """The generator's encoder features ``(n, c, h, w)``: ``features(x)``, else ``encode(x)``."""
    feats = generator.features(x) if hasattr(generator, "features") else generator.encode(x)
    return feats.float()


def _grid(side: int) -> int:
    """The largest cell count of at most :data:`IMAGE_GRID` that divides ``side`` (exact pooling, as ONNX needs)."""
    return max(g for g in range(1, min(IMAGE_GRID, side) + 1) if side % g == 0)


def image_embedding(features: torch.Tensor) -> torch.Tensor:
    """Features average-pooled to at most :data:`IMAGE_GRID` cells per side (the most that divide the side),
    flattened, L2-normalised: ``(n, d)``."""
    grid = [_grid(int(s)) for s in features.shape[-2:]]
    if list(features.shape[-2:]) != grid:
        features = F.adaptive_avg_pool2d(features, grid)
    return F.normalize(features.flatten(1), dim=1)


def patch_embedding(features: torch.Tensor) -> torch.Tensor:
    """Each location's features averaged over its 3×3 neighbourhood (PatchCore's local aggregation)."""
    return F.avg_pool2d(features, 3, stride=1, padding=1, count_include_pad=False)


def greedy_coreset(vectors: torch.Tensor, k: int, seed: int = 0) -> torch.Tensor:
    """Indices of ``k`` rows that cover ``vectors`` (PatchCore's greedy k-centre selection).

    Starting from a random row, each step adds the row farthest from those chosen so far, so the
    chosen rows keep the rare patches a random subset would drop.
    """
    n = len(vectors)
    if k >= n:
        return torch.arange(n)
    generator = torch.Generator().manual_seed(int(seed))
    chosen = [int(torch.randint(n, (1,), generator=generator))]
    nearest = torch.cdist(vectors, vectors[chosen[-1]][None]).squeeze(1)
    for _ in range(k - 1):
        chosen.append(int(torch.argmax(nearest)))
        nearest = torch.minimum(nearest, torch.cdist(vectors, vectors[chosen[-1]][None]).squeeze(1))
    return torch.tensor(chosen)


def nearest_patch_distances(
    embedding: torch.Tensor, memory: torch.Tensor, mean: torch.Tensor, std: torch.Tensor
) -> torch.Tensor:
    """Distance of every location of ``embedding`` ``(n, c, h, w)`` to its nearest memory row, ``(n, h, w)``.

    Locations are standardised with the memory's ``mean`` and ``std`` (per channel) first. The memory is
    compared a chunk of rows at a time, so a batch never holds more than ``n · h · w · 1024`` distances.
    """
    n, c, h, w = embedding.shape
    z = ((embedding - mean.view(1, c, 1, 1)) / std.view(1, c, 1, 1)).permute(0, 2, 3, 1).reshape(n, h * w, c)
    z2 = (z * z).sum(dim=2, keepdim=True)
    best = None
    for start in range(0, len(memory), _CHUNK):
        rows = memory[start : start + _CHUNK]
        d2 = z2 - 2.0 * z @ rows.T + (rows * rows).sum(dim=1)
        part = d2.amin(dim=2)
        best = part if best is None else torch.minimum(best, part)
    return best.clamp_min(0.0).sqrt().view(n, h, w)
