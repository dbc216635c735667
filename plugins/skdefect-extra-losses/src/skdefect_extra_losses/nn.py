"""A small U-Net two-stage network for skdefect's ConcentratedTwoStageDetector.

It follows the two-stage backbone contract of :mod:`skdefect.training.two_stage`:
submodules ``segmentation`` and ``decision``, ``forward(x) -> (seg_logits,
decision_logit)``, ``segment(x)``, ``decision(seg_logits)`` for the sequential
schedule, and the attributes ``input_divisor`` and ``schedule``. Plain PyTorch: it
knows nothing of scikit-learn or skorch.
"""

from __future__ import annotations

import math
from numbers import Integral, Real
from typing import Any

import torch
from torch import nn

__all__ = ["SmallUNetSegmentation", "SmallUNetDecision", "SmallUNetTwoStage", "make_small_unet"]

NORMS = ("batch", "instance", "none")


def _check_args(in_channels: Any, width: Any, norm: Any, depth: Any) -> None:
    if isinstance(in_channels, bool) or not isinstance(in_channels, Integral) or in_channels < 1:
        raise ValueError(f"in_channels must be a positive int, got {in_channels!r}")
    if isinstance(width, bool) or not isinstance(width, Real) or not math.isfinite(width) or width <= 0:
        raise ValueError(f"width must be a finite number > 0, got {width!r}")
    if norm not in NORMS:
        raise ValueError(f"norm must be one of {NORMS}, got {norm!r}")
    if isinstance(depth, bool) or not isinstance(depth, Integral) or not 1 <= depth <= 5:
        raise ValueError(f"depth must be an int in [1, 5], got {depth!r}")


def _scaled(channels: int, width: float) -> int:
    return max(1, int(round(channels * width)))


def _norm(norm: str, channels: int) -> nn.Module:
    if norm == "batch":
        return nn.BatchNorm2d(channels)
    if norm == "instance":
        return nn.InstanceNorm2d(channels, affine=True)
    return nn.Identity()


def _conv_block(c_in: int, c_out: int, norm: str, n_convs: int = 2) -> nn.Sequential:
    layers: list[nn.Module] = []
    for i in range(n_convs):
        layers += [
            nn.Conv2d(c_in if i == 0 else c_out, c_out, 3, padding=1, bias=norm == "none"),
            _norm(norm, c_out),
            nn.ReLU(inplace=True),
        ]
    return nn.Sequential(*layers)


def _init(module: nn.Module) -> None:
    for m in module.modules():
        if isinstance(m, (nn.Conv2d, nn.Linear)):
            nn.init.kaiming_normal_(m.weight, nonlinearity="relu")
            if m.bias is not None:
                nn.init.zeros_(m.bias)


class SmallUNetSegmentation(nn.Module):
    """U-Net encoder-decoder (Ronneberger et al. 2015, shrunk): image -> pixel logits.

    ``depth`` encoder stages of two 3×3 conv -> norm -> ReLU blocks, each followed by
    a 2× max-pool, a bottleneck block, and a decoder that upsamples bilinearly,
    concatenates the encoder features of the same resolution (skip connection) and
    applies a conv block. A 1×1 conv gives the logits at input resolution.

    Parameters
    ----------
    in_channels : int, default=3
        Channels of the input image.
    width : float, default=1.0
        Channel multiplier: stage ``k`` has ``round(16 · 2^k · width)`` channels.
    norm : {"batch", "instance", "none"}, default="batch"
        Normalisation after each conv.
    depth : int, default=3
        Number of 2× down-sampling steps, in [1, 5]; the input sides must be
        multiples of ``2 ** depth``.

    Attributes
    ----------
    input_divisor : int
        ``2 ** depth``.
    """

    def __init__(self, in_channels: int = 3, width: float = 1.0, norm: str = "batch", depth: int = 3) -> None:
        super().__init__()
        _check_args(in_channels, width, norm, depth)
        self.in_channels, self.depth = int(in_channels), int(depth)
        self.input_divisor = 2**self.depth
        chans = [_scaled(16 * 2**k, float(width)) for k in range(self.depth + 1)]
        self.encoder = nn.ModuleList()
        c_prev = self.in_channels
        for c in chans[:-1]:
            self.encoder.append(_conv_block(c_prev, c, norm))
            c_prev = c
        self.pool = nn.MaxPool2d(2)
        self.bottleneck = _conv_block(chans[-2], chans[-1], norm)
        self.up = nn.Upsample(scale_factor=2, mode="bilinear", align_corners=False)
        self.decoder = nn.ModuleList(
            _conv_block(chans[k + 1] + chans[k], chans[k], norm) for k in reversed(range(self.depth))
        )
        self.head = nn.Conv2d(chans[0], 1, 1)
        _init(self)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Pixel logits.

        Parameters
        ----------
        x : torch.Tensor of shape (n, in_channels, H, W)
            H and W multiples of ``input_divisor``.

        Returns
        -------
        torch.Tensor of shape (n, 1, H, W)
        """
        if x.dim() != 4 or x.shape[1] != self.in_channels:
            raise ValueError(
                f"{type(self).__name__} expects input of shape (n, {self.in_channels}, H, W), "
                f"got {tuple(x.shape)}"
            )
        h, w = x.shape[-2:]
        if h % self.input_divisor or w % self.input_divisor:
            raise ValueError(
                f"{type(self).__name__} needs height and width divisible by {self.input_divisor}, got input "
                f"of shape {tuple(x.shape)}; set image_size to such sides"
            )
        skips = []
        for block in self.encoder:
            x = block(x)
            skips.append(x)
            x = self.pool(x)
        x = self.bottleneck(x)
        for block, skip in zip(self.decoder, reversed(skips), strict=True):
            x = block(torch.cat([self.up(x), skip], dim=1))
        return self.head(x)


class SmallUNetDecision(nn.Module):
    """Decision head: segmentation logits -> one image logit.

    The probability map ``sigmoid(seg_logits)`` goes through three 3×3 conv ->
    norm -> ReLU blocks (two 2× max-pools between them); global max and mean
    pooling of the features, together with the map's own maximum and mean, feed a
    linear layer. The two map statistics give the head a direct path from "some
    pixel is confidently defective" to the decision.

    Parameters
    ----------
    width : float, default=1.0
        Channel multiplier (8, 16, 16 channels at width 1).
    norm : {"batch", "instance", "none"}, default="batch"
        Normalisation after each conv.
    """

    def __init__(self, width: float = 1.0, norm: str = "batch") -> None:
        super().__init__()
        _check_args(1, width, norm, 1)
        c1, c2 = _scaled(8, float(width)), _scaled(16, float(width))
        self.features = nn.Sequential(
            _conv_block(1, c1, norm, n_convs=1),
            nn.MaxPool2d(2),
            _conv_block(c1, c2, norm, n_convs=1),
            nn.MaxPool2d(2),
            _conv_block(c2, c2, norm, n_convs=1),
        )
        self.fc = nn.Linear(2 * c2 + 2, 1)
        _init(self)
        nn.init.normal_(self.fc.weight, 0.0, 0.01)

    def forward(self, seg_logits: torch.Tensor) -> torch.Tensor:
        """Decision logits.

        Parameters
        ----------
        seg_logits : torch.Tensor of shape (n, 1, H, W)
            H, W >= 4.

        Returns
        -------
        torch.Tensor of shape (n,)
        """
        if seg_logits.dim() != 4 or seg_logits.shape[1] != 1 or min(seg_logits.shape[-2:]) < 4:
            raise ValueError(
                f"{type(self).__name__} expects a 1-channel map (n, 1, H, W) with H, W >= 4, "
                f"got input of shape {tuple(seg_logits.shape)}"
            )
        p = seg_logits.sigmoid()
        h = self.features(p)
        pooled = [h.amax(dim=(2, 3)), h.mean(dim=(2, 3)), p.amax(dim=(2, 3)), p.mean(dim=(2, 3))]
        return self.fc(torch.cat(pooled, dim=1)).squeeze(1)


class SmallUNetTwoStage(nn.Module):
    """Small U-Net segmentation net + decision head, trained with the sequential schedule.

    Parameters
    ----------
    in_channels : int, default=3
        Channels of the input image.
    width : float, default=1.0
        Channel multiplier of both parts.
    norm : {"batch", "instance", "none"}, default="batch"
        Normalisation after each conv.
    depth : int, default=3
        Down-sampling steps of the U-Net.

    Attributes
    ----------
    segmentation : SmallUNetSegmentation
    decision : SmallUNetDecision
    input_divisor : int
        ``2 ** depth``.
    schedule : str
        ``"sequential"``: the segmentation stage first, then the decision stage on
        the frozen segmentation net. The segmentation logits are detached before
        the decision head, so decision gradients never reach the U-Net.
    """

    schedule: str = "sequential"

    def __init__(self, in_channels: int = 3, width: float = 1.0, norm: str = "batch", depth: int = 3) -> None:
        super().__init__()
        self.segmentation = SmallUNetSegmentation(in_channels=in_channels, width=width, norm=norm, depth=depth)
        self.decision = SmallUNetDecision(width=width, norm=norm)
        self.input_divisor = self.segmentation.input_divisor

    def segment(self, x: torch.Tensor) -> torch.Tensor:
        """Segmentation logits ``(n, 1, H, W)`` alone."""
        return self.segmentation(x)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Segmentation logits ``(n, 1, H, W)`` and decision logit ``(n,)``."""
        seg = self.segmentation(x)
        return seg, self.decision(seg.detach())


def make_small_unet(in_channels: int = 3, width: float = 1.0, norm: str = "batch",
                    depth: int = 3) -> SmallUNetTwoStage:
    """Factory of :class:`SmallUNetTwoStage` (registered as ``"small_unet"``).

    skdefect offers ``in_channels``, ``width`` and ``norm``; ``depth`` keeps its default.

    Returns
    -------
    SmallUNetTwoStage
    """
    return SmallUNetTwoStage(in_channels=in_channels, width=width, norm=norm, depth=depth)
