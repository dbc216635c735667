"""The baselines every skdefect detector is measured against, in the same run and on the same splits.

Fixed recipes, chosen before any test fold was looked at (and never tuned on one): what a data
scientist writes in twenty lines. Each takes images ``(n, H, W)`` or ``(n, H, W, C)`` (uint8 or float
in [0, 1]) and gives ``decision_function`` (higher = more defective); the pixel baseline also gives
``segment``.

=====================  ===========================================================  ==============
name                   recipe                                                        trains on
=====================  ===========================================================  ==============
``logreg``             standardised pixels → ``LogisticRegression`` (C chosen by     labels
                       3-fold AP on the training set only)
``mlp``                standardised pixels → ``MLPClassifier((256,), alpha=1e-3,     labels
                       early_stopping=True)``
``pca``                PCA with 30 components on the normal training images; score   normals only
                       = squared reconstruction error
``iforest``            ``IsolationForest(n_estimators=200)`` on the normal training  normals only
                       images' pixels
``small_cnn``          4 × (conv3×3 → BN → ReLU → max-pool 2), 16-32-64-128          labels
                       channels, global max + mean pool, linear; BCE, Adam 1e-3
                       with cosine decay, batch 32, random flips (surfaces only)
``plain_unet``         3-level U-Net (16-32-64), BCE on the masks, Adam 1e-3 with    masks
                       cosine decay, batch 16, random flips; image score = max of
                       the map
=====================  ===========================================================  ==============

The two networks train for a *time budget* (the CPU seconds the detector they are compared with took
on the same split, measured in the same run): one epoch is timed, and the epoch count is the budget
divided by that time (at least ``min_epochs``, at most ``max_epochs``), so the cosine schedule knows
its length. Images wider than ``max_side`` pixels are area-downsampled for the pixel models (sklearn
models on 16k-dimensional inputs are slow and no better).
"""

from __future__ import annotations

import math
import time
import warnings
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from sklearn.decomposition import PCA
from sklearn.ensemble import IsolationForest
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import GridSearchCV
from sklearn.neural_network import MLPClassifier
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from torch import nn

__all__ = ["BASELINES", "PixelLogReg", "PixelMLP", "PCAReconstruction", "PixelIsolationForest", "SmallCNN",
           "PlainUNet", "as_nchw"]


def as_nchw(X: np.ndarray) -> np.ndarray:
    """Images ``(n, H, W)`` / ``(n, H, W, C)``, uint8 or float in [0, 1] → float32 ``(n, C, H, W)`` in [0, 1]."""
    X = np.asarray(X)
    x = X.astype(np.float32) / 255.0 if X.dtype == np.uint8 else X.astype(np.float32)
    return x[:, None] if x.ndim == 3 else np.moveaxis(x, -1, 1)


def _pixels(X: np.ndarray, max_side: int) -> np.ndarray:
    """Flattened pixels, area-downsampled so that the longer side is at most ``max_side``."""
    x = torch.from_numpy(as_nchw(X))
    side = max(x.shape[-2:])
    if side > max_side:
        x = F.adaptive_avg_pool2d(x, [s * max_side // side for s in x.shape[-2:]])
    return x.flatten(1).numpy()


class _PixelModel:
    max_side = 64

    def _features(self, X: np.ndarray) -> np.ndarray:
        return _pixels(X, self.max_side)


class PixelLogReg(_PixelModel):
    """Logistic regression on standardised pixels; C by 3-fold AP on the training set."""

    needs = "labels"

    def __init__(self, random_state: int = 0) -> None:
        self.random_state = random_state

    def fit(self, X: np.ndarray, y: np.ndarray, masks: Any = None) -> PixelLogReg:
        self.model_ = GridSearchCV(
            make_pipeline(StandardScaler(), LogisticRegression(max_iter=3000, random_state=self.random_state)),
            {"logisticregression__C": [1e-4, 1e-3, 1e-2, 1e-1, 1.0]}, cv=3, scoring="average_precision",
        )
        with warnings.catch_warnings():  # lbfgs may stop short on the weakest C values: the CV still ranks them
            warnings.simplefilter("ignore", ConvergenceWarning)
            self.model_.fit(self._features(X), y)
        return self

    def decision_function(self, X: np.ndarray) -> np.ndarray:
        return self.model_.decision_function(self._features(X))


class PixelMLP(_PixelModel):
    """sklearn's MLPClassifier (one hidden layer of 256) on standardised pixels."""

    needs = "labels"

    def __init__(self, random_state: int = 0) -> None:
        self.random_state = random_state

    def fit(self, X: np.ndarray, y: np.ndarray, masks: Any = None) -> PixelMLP:
        self.model_ = make_pipeline(
            StandardScaler(),
            MLPClassifier((256,), alpha=1e-3, early_stopping=True, max_iter=300, random_state=self.random_state),
        ).fit(self._features(X), y)
        return self

    def decision_function(self, X: np.ndarray) -> np.ndarray:
        return self.model_.predict_proba(self._features(X))[:, 1]


class PCAReconstruction(_PixelModel):
    """PCA (30 components) of the normal training images; score = squared reconstruction error."""

    needs = "normals"

    def __init__(self, n_components: int = 30, random_state: int = 0) -> None:
        self.n_components, self.random_state = n_components, random_state

    def fit(self, X: np.ndarray, y: Any = None, masks: Any = None) -> PCAReconstruction:
        Z = self._features(X)
        self.model_ = PCA(min(self.n_components, len(Z) - 1), random_state=self.random_state).fit(Z)
        return self

    def decision_function(self, X: np.ndarray) -> np.ndarray:
        Z = self._features(X)
        rec = self.model_.inverse_transform(self.model_.transform(Z))
        return ((Z - rec) ** 2).sum(axis=1)


class PixelIsolationForest(_PixelModel):
    """IsolationForest (200 trees) on the normal training images' pixels."""

    needs = "normals"

    def __init__(self, random_state: int = 0) -> None:
        self.random_state = random_state

    def fit(self, X: np.ndarray, y: Any = None, masks: Any = None) -> PixelIsolationForest:
        self.model_ = IsolationForest(n_estimators=200, random_state=self.random_state).fit(self._features(X))
        return self

    def decision_function(self, X: np.ndarray) -> np.ndarray:
        return -self.model_.score_samples(self._features(X))


# -- the two small plain-PyTorch networks ------------------------------------------------------------------
def _block(c_in: int, c_out: int) -> list[nn.Module]:
    return [nn.Conv2d(c_in, c_out, 3, padding=1, bias=False), nn.BatchNorm2d(c_out), nn.ReLU(inplace=True)]


class _CNN(nn.Module):
    def __init__(self, in_channels: int) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        c = in_channels
        for c_out in (16, 32, 64, 128):
            layers += [*_block(c, c_out), nn.MaxPool2d(2)]
            c = c_out
        self.features = nn.Sequential(*layers)
        self.fc = nn.Linear(2 * c, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.features(x)
        return self.fc(torch.cat([h.amax(dim=(2, 3)), h.mean(dim=(2, 3))], dim=1)).squeeze(1)


class _UNet(nn.Module):
    def __init__(self, in_channels: int) -> None:
        super().__init__()
        self.enc1 = nn.Sequential(*_block(in_channels, 16), *_block(16, 16))
        self.enc2 = nn.Sequential(*_block(16, 32), *_block(32, 32))
        self.enc3 = nn.Sequential(*_block(32, 64), *_block(64, 64))
        self.dec2 = nn.Sequential(*_block(64 + 32, 32))
        self.dec1 = nn.Sequential(*_block(32 + 16, 16))
        self.out = nn.Conv2d(16, 1, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h1 = self.enc1(x)
        h2 = self.enc2(F.max_pool2d(h1, 2))
        h3 = self.enc3(F.max_pool2d(h2, 2))
        d2 = self.dec2(torch.cat([F.interpolate(h3, size=h2.shape[-2:]), h2], 1))
        d1 = self.dec1(torch.cat([F.interpolate(d2, size=h1.shape[-2:]), h1], 1))
        return self.out(d1)


def _flip(rng: np.random.RandomState, *tensors: torch.Tensor) -> list[torch.Tensor]:
    """The same random horizontal / vertical flip of every tensor (images and their masks)."""
    h, v = rng.randint(2, size=2)
    dims = [d for d, on in ((-1, h), (-2, v)) if on]
    return [t.flip(dims) if dims else t for t in tensors]


class _TorchBaseline:
    """Shared loop: standardised inputs, Adam with cosine decay, epochs from a time budget."""

    batch_size = 32
    lr = 1e-3

    def __init__(self, time_budget: float | None = None, epochs: int = 30, min_epochs: int = 5,
                 max_epochs: int = 300, flips: bool = True, random_state: int = 0) -> None:
        self.time_budget, self.epochs, self.min_epochs, self.max_epochs = time_budget, epochs, min_epochs, max_epochs
        self.flips, self.random_state = flips, random_state

    def _build(self, channels: int) -> nn.Module:
        raise NotImplementedError

    def _loss(self, out: torch.Tensor, y: torch.Tensor, m: torch.Tensor | None) -> torch.Tensor:
        raise NotImplementedError

    def _input(self, X: np.ndarray) -> torch.Tensor:
        return (torch.from_numpy(as_nchw(X)) - self.mean_) / self.std_

    def fit(self, X: np.ndarray, y: np.ndarray, masks: np.ndarray | None = None) -> _TorchBaseline:
        torch.manual_seed(self.random_state)
        rng = np.random.RandomState(self.random_state)
        x = torch.from_numpy(as_nchw(X))
        self.mean_, self.std_ = x.mean(), x.std().clamp_min(1e-3)
        x = (x - self.mean_) / self.std_
        yt = torch.as_tensor(np.asarray(y), dtype=torch.float32)
        mt = None if masks is None else torch.from_numpy(np.asarray(masks, dtype=np.float32))[:, None]
        self.module_ = self._build(x.shape[1])
        opt = torch.optim.Adam(self.module_.parameters(), lr=self.lr)
        start = time.process_time()
        total, epoch = self.epochs, 0
        self.loss_curve_: list[float] = []
        while epoch < total:
            self.module_.train()
            order = rng.permutation(len(x))
            losses = []
            for i in range(0, len(order), self.batch_size):
                idx = order[i : i + self.batch_size]
                if len(idx) < 2:
                    continue
                xb, mb = x[idx], None if mt is None else mt[idx]
                if self.flips:
                    xb, *rest = _flip(rng, xb, *([] if mb is None else [mb]))
                    mb = rest[0] if rest else None
                loss = self._loss(self.module_(xb), yt[idx], mb)
                opt.zero_grad()
                loss.backward()
                opt.step()
                losses.append(loss.item())
            self.loss_curve_.append(float(np.mean(losses)))
            epoch += 1
            if epoch == 1 and self.time_budget is not None:  # one epoch timed: now the schedule's length is known
                per_epoch = time.process_time() - start
                total = int(np.clip(self.time_budget // max(per_epoch, 1e-6), self.min_epochs, self.max_epochs))
            for group in opt.param_groups:  # cosine decay over the known length
                group["lr"] = self.lr * 0.5 * (1 + math.cos(math.pi * epoch / total))
        self.epochs_ = total
        self.fit_cpu_seconds_ = time.process_time() - start
        return self

    @torch.no_grad()
    def _forward(self, X: np.ndarray) -> torch.Tensor:
        self.module_.eval()
        x = self._input(X)
        return torch.cat([self.module_(x[i : i + 256]) for i in range(0, len(x), 256)])


class SmallCNN(_TorchBaseline):
    """A small plain CNN classifier (see the module table), BCE on the image labels."""

    needs = "labels"

    def _build(self, channels: int) -> nn.Module:
        return _CNN(channels)

    def _loss(self, out: torch.Tensor, y: torch.Tensor, m: torch.Tensor | None) -> torch.Tensor:
        return F.binary_cross_entropy_with_logits(out, y)

    def decision_function(self, X: np.ndarray) -> np.ndarray:
        return self._forward(X).numpy().astype(np.float64)


class PlainUNet(_TorchBaseline):
    """A small plain U-Net, BCE on the pixel masks; image score = max of the probability map."""

    needs = "masks"
    batch_size = 16

    def _build(self, channels: int) -> nn.Module:
        return _UNet(channels)

    def _loss(self, out: torch.Tensor, y: torch.Tensor, m: torch.Tensor | None) -> torch.Tensor:
        return F.binary_cross_entropy_with_logits(out, m)

    def segment(self, X: np.ndarray) -> np.ndarray:
        return self._forward(X)[:, 0].sigmoid().numpy()

    def decision_function(self, X: np.ndarray) -> np.ndarray:
        return self.segment(X).reshape(len(X), -1).max(axis=1).astype(np.float64)


#: name -> class; ``needs`` says what a baseline trains on ("labels", "normals" or "masks").
BASELINES: dict[str, type] = {
    "logreg": PixelLogReg,
    "mlp": PixelMLP,
    "pca": PCAReconstruction,
    "iforest": PixelIsolationForest,
    "small_cnn": SmallCNN,
    "plain_unet": PlainUNet,
}
