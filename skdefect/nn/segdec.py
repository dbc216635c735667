"""SegDecNet of Božič, Tabernik and Skočaj 2021 ("Mixed supervision for surface-defect detection").

Building block: conv (no bias) → :class:`FeatureNorm` (per-sample, per-channel
normalisation over H×W with a learnable scale and bias) → ReLU; kernels 5×5, padding 2.

==================  ===========================================================
segmentation        block 32 · max-pool 2 · 3 × block 64 · max-pool 2 ·
                    4 × block 64 · max-pool 2 · block 15×15 (padding 7) → 1024
                    channels at 1/8 resolution ("volume")
segmentation head   conv1×1 1024 → 1 (no bias) · FeatureNorm(1, scale only) →
                    logit map at 1/8 resolution
decision            concat(volume, seg logits) = 1025 ch · max-pool 2 · block 8 ·
                    max-pool 2 · block 16 · max-pool 2 · block 32; global max and
                    global mean of the 32 channels (64) and of the seg logit map
                    (2) → Linear(66, 1)
==================  ===========================================================

Gradient-flow adjustment: the volume and the seg logits enter the decision net through
:class:`GradientMultiply` with multiplier ``grad_multiplier`` (0 by default, as in the
reference's KSDD2 recipe), so the decision loss trains the decision net only; 1 lets it
flow into the segmentation net.

Choices:

* :class:`FeatureNorm` reproduces the reference's quirk by default (``quirk=True``):
  ``(x − mean) / sqrt(std + eps)`` with the *unbiased standard deviation* (not the
  variance) and ``eps = 1e-3``. ``quirk=False`` gives the textbook
  ``(x − mean) / sqrt(var + eps)`` (biased variance, instance-norm style). Where H×W is 1
  the quirk's unbiased std is undefined; we use the biased one there (0).
* The segmentation head keeps the reference's scale-only FeatureNorm (so each image's
  logit map has zero mean and a learnt spread).
* Initialisation: Kaiming normal (the reference uses Xavier normal; with a per-sample
  normalisation after every conv the difference is only a scale).
* The three 2× max-pools of the decision net need the 1/8 map to be at least 8×8, so the
  input needs sides that are multiples of 8 and at least 64.

Parameters at width 1 on 3-channel input: 15,638,812 (paper: 15.6 M). Cost at 3×640×232:
≈96 GFLOP (2 FLOPs per multiply-add) of which the 15×15 conv to 1024 channels is 68 GFLOP
and the three 5×5 convs at 1/2 resolution 19 GFLOP.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from ._common import check_channels, check_divisible, check_width, init_weights, scaled

__all__ = ["FeatureNorm", "GradientMultiply", "gradient_multiply", "SegDecNet"]


class GradientMultiply(torch.autograd.Function):
    """Identity in the forward pass; multiplies the incoming gradient by a constant in the backward pass.

    ``GradientMultiply.apply(x, 0.0)`` stops gradients (they arrive as zeros), 1.0 is the
    plain identity.
    """

    @staticmethod
    def forward(ctx: Any, x: torch.Tensor, multiplier: float) -> torch.Tensor:
        ctx.multiplier = float(multiplier)
        return x.view_as(x)

    @staticmethod
    def backward(ctx: Any, grad_output: torch.Tensor) -> tuple[torch.Tensor, None]:
        return grad_output * ctx.multiplier, None


def gradient_multiply(x: torch.Tensor, multiplier: float) -> torch.Tensor:
    """Functional form of :class:`GradientMultiply`.

    Parameters
    ----------
    x : torch.Tensor
    multiplier : float
        Factor applied to the gradient flowing back through ``x``.

    Returns
    -------
    torch.Tensor
        ``x`` (a view), whose backward multiplies gradients by ``multiplier``.
    """
    return GradientMultiply.apply(x, multiplier)


class FeatureNorm(nn.Module):
    """Per-sample, per-channel normalisation over H×W with a learnable scale (and bias).

    Parameters
    ----------
    num_features : int
        Channels.
    eps : float, default=1e-3
        Added under the square root.
    bias : bool, default=True
        Learn a per-channel bias (the segmentation head has none).
    quirk : bool, default=True
        True (faithful to the reference implementation): ``(x − mean) / sqrt(std + eps)``
        with the unbiased standard deviation. False: ``(x − mean) / sqrt(var + eps)`` with
        the biased variance.

    Notes
    -----
    Statistics are computed in float32 (also under autocast) and the result is cast back
    to the input's dtype.
    """

    def __init__(self, num_features: int, eps: float = 1e-3, bias: bool = True, quirk: bool = True) -> None:
        super().__init__()
        self.num_features = int(num_features)
        self.eps = float(eps)
        self.quirk = bool(quirk)
        self.weight = nn.Parameter(torch.ones(1, self.num_features, 1, 1))
        self.bias = nn.Parameter(torch.zeros(1, self.num_features, 1, 1)) if bias else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        xf = x.float()
        n_pixels = int(x.shape[-1]) * int(x.shape[-2])
        if self.quirk:
            correction = 1 if n_pixels > 1 else 0
            std, mean = torch.std_mean(xf, dim=(2, 3), keepdim=True, correction=correction)
            denom = (std + self.eps).sqrt()
        else:
            var, mean = torch.var_mean(xf, dim=(2, 3), keepdim=True, correction=0)
            denom = (var + self.eps).sqrt()
        out = (xf - mean) / denom * self.weight
        if self.bias is not None:
            out = out + self.bias
        return out.to(x.dtype)

    def extra_repr(self) -> str:
        return f"{self.num_features}, eps={self.eps}, bias={self.bias is not None}, quirk={self.quirk}"


def _block(c_in: int, c_out: int, kernel: int, quirk: bool) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(c_in, c_out, kernel, padding=kernel // 2, bias=False),
        FeatureNorm(c_out, quirk=quirk),
        nn.ReLU(inplace=True),
    )


class SegDecSegmentation(nn.Module):
    """SegDecNet's segmentation part: image → (1024-channel volume, seg logits), both at 1/8.

    Parameters
    ----------
    in_channels : int, default=3
    width : float, default=1.0
        Channel multiplier (32, 64, 1024 at width 1).
    quirk : bool, default=True
        FeatureNorm variant (see :class:`FeatureNorm`).
    """

    def __init__(self, in_channels: int = 3, width: float = 1.0, quirk: bool = True) -> None:
        super().__init__()
        c32, c64, c1024 = (scaled(c, width) for c in (32, 64, 1024))
        self.out_channels = c1024
        self.volume = nn.Sequential(
            _block(in_channels, c32, 5, quirk),
            nn.MaxPool2d(2),
            _block(c32, c64, 5, quirk),
            _block(c64, c64, 5, quirk),
            _block(c64, c64, 5, quirk),
            nn.MaxPool2d(2),
            *(_block(c64, c64, 5, quirk) for _ in range(4)),
            nn.MaxPool2d(2),
            _block(c64, c1024, 15, quirk),
        )
        self.head = nn.Sequential(
            nn.Conv2d(c1024, 1, 1, bias=False), FeatureNorm(1, bias=False, quirk=quirk)
        )

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        volume = self.volume(x)
        return volume, self.head(volume)


class SegDecDecision(nn.Module):
    """SegDecNet's decision part: (volume, seg logits) → image logit ``(n,)``.

    Parameters
    ----------
    volume_channels : int
        Channels of the segmentation volume (1024 at width 1).
    width : float, default=1.0
        Channel multiplier (8, 16, 32 at width 1).
    quirk : bool, default=True
        FeatureNorm variant.
    """

    def __init__(self, volume_channels: int, width: float = 1.0, quirk: bool = True) -> None:
        super().__init__()
        c8, c16, c32 = (scaled(c, width) for c in (8, 16, 32))
        self.extractor = nn.Sequential(
            nn.MaxPool2d(2),
            _block(volume_channels + 1, c8, 5, quirk),
            nn.MaxPool2d(2),
            _block(c8, c16, 5, quirk),
            nn.MaxPool2d(2),
            _block(c16, c32, 5, quirk),
        )
        self.fc = nn.Linear(2 * c32 + 2, 1)

    def forward(self, volume: torch.Tensor, seg_logits: torch.Tensor) -> torch.Tensor:
        features = self.extractor(torch.cat([volume, seg_logits], dim=1))
        pooled = torch.cat(
            [
                features.amax(dim=(2, 3)),
                features.mean(dim=(2, 3)),
                seg_logits.amax(dim=(2, 3)),
                seg_logits.mean(dim=(2, 3)),
            ],
            dim=1,
        )
        return self.fc(pooled).squeeze(1)


class SegDecNet(nn.Module):
    """SegDecNet (Božič et al. 2021): joint segmentation + decision network.

    Parameters
    ----------
    in_channels : int, default=3
        Channels of the input image.
    width : float, default=1.0
        Channel multiplier; 1.0 is the paper's network (15.6 M parameters).
    grad_multiplier : float, default=0.0
        Factor on the decision loss's gradient where it would enter the segmentation net
        (volume and seg logits). 0 is the paper's gradient-flow adjustment; 1 trains the
        segmentation net with the decision loss too. An attribute: may be changed any time.
    quirk : bool, default=True
        FeatureNorm divides by ``sqrt(std + 1e-3)`` as the reference implementation does;
        False uses ``sqrt(var + 1e-3)``.

    Attributes
    ----------
    segmentation : SegDecSegmentation
        Volume and seg head (the parameters the segmentation loss trains).
    decision : SegDecDecision
        Extractor and classifier.
    input_divisor : int
        8 (inputs also need sides ≥ 64 for the decision net's three further max-pools).
    schedule : str
        ``"joint"``: both heads train every step with dynamic loss balancing.

    Notes
    -----
    ``forward(x)`` takes ``(n, in_channels, H, W)`` and returns
    ``(seg_logits (n, 1, H/8, W/8), decision_logit (n,))``; ``segment(x)`` returns the
    segmentation logits alone.
    """

    input_divisor: int = 8
    schedule: str = "joint"
    min_side: int = 64

    def __init__(
        self, in_channels: int = 3, width: float = 1.0, grad_multiplier: float = 0.0, quirk: bool = True
    ) -> None:
        super().__init__()
        self.in_channels = int(in_channels)
        self.width = check_width(width)
        self.grad_multiplier = float(grad_multiplier)
        self.segmentation = SegDecSegmentation(self.in_channels, self.width, quirk)
        self.decision = SegDecDecision(self.segmentation.out_channels, self.width, quirk)
        init_weights(self)
        nn.init.normal_(self.decision.fc.weight, 0.0, 0.01)

    def _check(self, x: torch.Tensor) -> None:
        check_divisible(x, self.input_divisor, type(self).__name__, min_side=self.min_side)
        check_channels(x, self.in_channels, type(self).__name__)

    def segment(self, x: torch.Tensor) -> torch.Tensor:
        """Segmentation logits ``(n, 1, H/8, W/8)`` alone."""
        self._check(x)
        return self.segmentation(x)[1]

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Segmentation logits (1/8 resolution) and decision logit.

        Parameters
        ----------
        x : torch.Tensor of shape (n, in_channels, H, W)
            H, W multiples of 8, at least 64.

        Returns
        -------
        seg_logits : torch.Tensor of shape (n, 1, H/8, W/8)
        decision_logit : torch.Tensor of shape (n,)
        """
        self._check(x)
        volume, seg_logits = self.segmentation(x)
        m = self.grad_multiplier
        logit = self.decision(gradient_multiply(volume, m), gradient_multiply(seg_logits, m))
        return seg_logits, logit
