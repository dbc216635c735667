"""The two-stage network of the concentrated-loss paper (Wang et al. 2022, Table 1).

Segmentation network (input 3 channels, all convs 3×3 with padding 1):

====  ===================================  =========================================
S1    2 × conv3×3, 16                      features ``f1`` at full resolution
S2    max-pool 2
S3    3 × conv3×3, 32                      ``f2`` at 1/2
S4    max-pool 2
S5    4 × conv3×3, 48                      ``f3`` at 1/4
S6    max-pool 2
S7    5 × conv3×3, 64                      ``f4`` at 1/8
S8    transposed conv 1×1 / stride 1 → 1   ``e1 = S8(f1)``  (the "e-features", each
S9    transposed conv 2×2 / stride 2 → 1   ``e2 = S9(f2)``   back at input resolution)
S10   transposed conv 4×4 / stride 4 → 1   ``e3 = S10(f3)``
S11   transposed conv 8×8 / stride 8 → 1   ``e4 = S11(f4)``
S12   conv3×3, 2 → 1                       ``i1 = S12([e4, e3])``
S13   conv3×3, 2 → 1                       ``i2 = S13([i1, e2])``
S14   conv3×3, 2 → 1                       ``i3 = S14([i2, e1])``
S15   conv3×3, 4 → 1                       ``logits = S15([e4, i1, i2, i3])``
====  ===================================  =========================================

Decision network (input: the 1-channel segmentation map): D1 conv1×1 512 · D2 max-pool 2 ·
D3 conv5×5 128 · D4 max-pool 2 · D5 conv5×5 16 · D6 conv5×5 32 · D7 global max · D8 global
mean · D9 concat (64) · D10 fully connected → 1 logit.

Choices where the paper is silent (ours, documented here and in the class docstrings):

* **Normalisation / activation.** Every backbone conv (S1, S3, S5, S7, D1, D3, D5, D6) is
  conv → norm → ReLU, the norm chosen by ``norm`` (default batch norm); convs followed by a
  norm have no bias. The 1-channel side and fusion layers S8–S15 are *linear* (conv with
  bias, no norm, no activation): a ReLU on a single-channel map would discard all negative
  evidence and a norm would erase the logit scale. S15 therefore outputs logits.
* **S12–S14 wiring.** The paper says three 1-channel convs "integrate" the four e-features
  and S15 fuses "the four integrated e-features". We read this as a coarse-to-fine cascade
  (deepest e-feature first, each step adding the next finer one) and fuse the deepest
  e-feature with the three integrated maps in S15.
* **D10.** Table 1 prints 54 outputs; a binary decision needs one logit, so D10 is
  ``Linear(64, 1)``.
* **Decision input.** The decision net takes the segmentation *logits* and applies a
  sigmoid inside (``input_sigmoid=True``), so it sees the probability map — "the
  segmentation result" of the paper — while every caller passes logits.
* **Initialisation.** Kaiming-normal (He) instead of the paper's "standard normal"
  initialisation, which explodes activations in a 19-layer plain network; the final
  linear layer D10 starts small (``N(0, 0.01²)``) so initial decision logits are near 0.
* **Two-stage coupling.** Wang et al. train the segmentation net first and then freeze
  it; :class:`Wang2022TwoStage` therefore detaches the segmentation map before the
  decision net (``detach=True``), so decision-loss gradients never reach S1–S15.

Parameter counts at width 1 (3-channel input, batch norm): segmentation net 283,298
(paper-scale 0.28 M), decision net 1,704,353 (1.7 M). Cost at 3×640×232: ≈4.8 GFLOP
(segmentation) and ≈123 GFLOP (decision, dominated by D3 at half resolution).
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from ._common import check_channels, check_divisible, check_norm, check_width, init_weights, make_norm, scaled

__all__ = [
    "FeatureDecisionNet",
    "UNetDecoderSegmentationNet",
    "Wang2022UNetTwoStage",
    "ImageFeatureDecisionNet",
    "Wang2022ImageTwoStage",
    "Wang2022FeatureTwoStage",
    "Wang2022SegmentationNet",
    "Wang2022DecisionNet",
    "Wang2022TwoStage",
]

# (number of convs, channels) of S1, S3, S5, S7
_SEG_STAGES: tuple[tuple[int, int], ...] = ((2, 16), (3, 32), (4, 48), (5, 64))


def _conv_norm_relu(c_in: int, c_out: int, kernel: int, norm: str) -> list[nn.Module]:
    return [
        nn.Conv2d(c_in, c_out, kernel, padding=kernel // 2, bias=norm == "none"),
        make_norm(norm, c_out),
        nn.ReLU(inplace=True),
    ]


class Wang2022SegmentationNet(nn.Module):
    """Segmentation sub-network of Table 1 (S1–S15): image → pixel logits at input resolution.

    Parameters
    ----------
    in_channels : int, default=3
        Channels of the input image.
    width : float, default=1.0
        Channel multiplier: each backbone stage has ``max(1, round(c · width))`` channels
        (16, 32, 48, 64 at width 1). The 1-channel side/fusion layers are not scaled.
    norm : {"batch", "instance", "none"}, default="batch"
        Normalisation after each backbone conv (conv → norm → ReLU). The paper names none.

    Attributes
    ----------
    input_divisor : int
        8: the input's height and width must be multiples of it (three 2× max-pools).
    stages : torch.nn.ModuleList
        S1, S3, S5, S7 (conv blocks).
    side : torch.nn.ModuleList
        S8–S11, the transposed convs that bring each stage's features back to input
        resolution as 1-channel "e-features".
    integrate : torch.nn.ModuleList
        S12–S14, 3×3 convs 2 → 1 (coarse-to-fine cascade, see the module docstring).
    fuse : torch.nn.Conv2d
        S15, 3×3 conv 4 → 1 producing the logits.

    Notes
    -----
    ``forward(x)`` takes ``(n, in_channels, H, W)`` with H, W divisible by 8 and returns the
    pixel logits ``(n, 1, H, W)``; other sides raise a ValueError naming the input shape.
    """

    input_divisor: int = 8

    def __init__(self, in_channels: int = 3, width: float = 1.0, norm: str = "batch") -> None:
        super().__init__()
        self.in_channels = int(in_channels)
        self.width = check_width(width)
        self.norm = check_norm(norm)
        self.stages = nn.ModuleList()
        self.side = nn.ModuleList()
        c_prev = self.in_channels
        for i, (n_convs, channels) in enumerate(_SEG_STAGES):
            c = scaled(channels, self.width)
            layers: list[nn.Module] = []
            for j in range(n_convs):
                layers += _conv_norm_relu(c_prev if j == 0 else c, c, 3, self.norm)
            self.stages.append(nn.Sequential(*layers))
            factor = 2**i
            self.side.append(nn.ConvTranspose2d(c, 1, kernel_size=factor, stride=factor))
            c_prev = c
        self.pool = nn.MaxPool2d(2)
        self.integrate = nn.ModuleList(nn.Conv2d(2, 1, 3, padding=1) for _ in range(3))
        self.fuse = nn.Conv2d(4, 1, 3, padding=1)
        init_weights(self)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Pixel logits.

        Parameters
        ----------
        x : torch.Tensor of shape (n, in_channels, H, W)
            H and W multiples of 8.

        Returns
        -------
        torch.Tensor of shape (n, 1, H, W)
            Logits of P(defect) per pixel.
        """
        return self.forward_features(x)[0]

    def forward_features(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Pixel logits and the deepest features (S7's output, ``(n, 64·width, H/8, W/8)``)."""
        stages = self.encode(x)
        e1, e2, e3, e4 = (side(h) for side, h in zip(self.side, stages, strict=True))
        i1 = self.integrate[0](torch.cat([e4, e3], dim=1))
        i2 = self.integrate[1](torch.cat([i1, e2], dim=1))
        i3 = self.integrate[2](torch.cat([i2, e1], dim=1))
        return self.fuse(torch.cat([e4, i1, i2, i3], dim=1)), stages[-1]

    def encode(self, x: torch.Tensor) -> list[torch.Tensor]:
        """The outputs of S1, S3, S5 and S7 (full, 1/2, 1/4 and 1/8 resolution), after checking ``x``."""
        check_divisible(x, self.input_divisor, type(self).__name__)
        check_channels(x, self.in_channels, type(self).__name__)
        stages = []
        h = x
        for i, stage in enumerate(self.stages):
            h = stage(self.pool(h) if i else h)
            stages.append(h)
        return stages

    @property
    def feature_channels(self) -> int:
        """Channels of :meth:`forward_features`' features."""
        return scaled(_SEG_STAGES[-1][1], self.width)


class Wang2022DecisionNet(nn.Module):
    """Decision sub-network of Table 1 (D1–D10): segmentation map → image logit.

    Parameters
    ----------
    width : float, default=1.0
        Channel multiplier (512, 128, 16, 32 at width 1).
    norm : {"batch", "instance", "none"}, default="batch"
        Normalisation after D1, D3, D5, D6 (conv → norm → ReLU).
    input_sigmoid : bool, default=True
        Apply a sigmoid to the input first: the net is fed segmentation *logits* and
        sees the probability map. False feeds the input as given.

    Notes
    -----
    ``forward(seg)`` takes ``(n, 1, H, W)`` (any H, W ≥ 4) and returns the decision
    logits ``(n,)``. D10 has one output (Table 1 prints 54, a binary decision needs one).
    """

    def __init__(self, width: float = 1.0, norm: str = "batch", input_sigmoid: bool = True) -> None:
        super().__init__()
        self.width = check_width(width)
        self.norm = check_norm(norm)
        self.input_sigmoid = bool(input_sigmoid)
        c1, c3, c5, c6 = (scaled(c, self.width) for c in (512, 128, 16, 32))
        self.features = nn.Sequential(
            *_conv_norm_relu(1, c1, 1, self.norm),  # D1
            nn.MaxPool2d(2),  # D2
            *_conv_norm_relu(c1, c3, 5, self.norm),  # D3
            nn.MaxPool2d(2),  # D4
            *_conv_norm_relu(c3, c5, 5, self.norm),  # D5
            *_conv_norm_relu(c5, c6, 5, self.norm),  # D6
        )
        self.fc = nn.Linear(2 * c6, 1)  # D10 (after D7 max, D8 mean, D9 concat)
        init_weights(self)
        nn.init.normal_(self.fc.weight, 0.0, 0.01)

    def forward(self, seg: torch.Tensor) -> torch.Tensor:
        """Decision logits.

        Parameters
        ----------
        seg : torch.Tensor of shape (n, 1, H, W)
            Segmentation logits (probabilities when ``input_sigmoid=False``).

        Returns
        -------
        torch.Tensor of shape (n,)
        """
        if seg.dim() != 4 or seg.shape[1] != 1 or min(seg.shape[-2:]) < 4:
            raise ValueError(
                f"{type(self).__name__} expects a 1-channel map (n, 1, H, W) with H, W >= 4, "
                f"got input of shape {tuple(seg.shape)}"
            )
        h = seg.sigmoid() if self.input_sigmoid else seg
        h = self.features(h)
        pooled = torch.cat([h.amax(dim=(2, 3)), h.mean(dim=(2, 3))], dim=1)  # D7, D8, D9
        return self.fc(pooled).squeeze(1)


class Wang2022TwoStage(nn.Module):
    """Segmentation net + decision net of Wang et al. 2022 (Table 1), trained sequentially.

    Parameters
    ----------
    in_channels : int, default=3
        Channels of the input image.
    width : float, default=1.0
        Channel multiplier of both sub-networks (1.0 is the paper's network).
    norm : {"batch", "instance", "none"}, default="batch"
        Normalisation of the backbone convs of both sub-networks.
    detach : bool, default=True
        Detach the segmentation logits before the decision net, so the decision loss
        never reaches the segmentation net (the paper trains it first, then freezes it).

    Attributes
    ----------
    segmentation : Wang2022SegmentationNet
    decision : Wang2022DecisionNet
    input_divisor : int
        8.
    schedule : str
        ``"sequential"``: segmentation stage, then decision stage on the frozen
        segmentation net (read by :class:`skdefect.training.TwoStageNet`).

    Notes
    -----
    ``forward(x)`` takes ``(n, in_channels, H, W)`` (H, W multiples of 8) and returns
    ``(seg_logits (n, 1, H, W), decision_logit (n,))``; ``segment(x)`` returns the
    segmentation logits alone (skips the costly decision net).
    """

    input_divisor: int = 8
    schedule: str = "sequential"

    def __init__(
        self, in_channels: int = 3, width: float = 1.0, norm: str = "batch", detach: bool = True
    ) -> None:
        super().__init__()
        self.segmentation = Wang2022SegmentationNet(in_channels=in_channels, width=width, norm=norm)
        self.decision = Wang2022DecisionNet(width=width, norm=norm, input_sigmoid=True)
        self.detach = bool(detach)

    def segment(self, x: torch.Tensor) -> torch.Tensor:
        """Segmentation logits ``(n, 1, H, W)`` alone."""
        return self.segmentation(x)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Segmentation logits and decision logit.

        Parameters
        ----------
        x : torch.Tensor of shape (n, in_channels, H, W)

        Returns
        -------
        seg_logits : torch.Tensor of shape (n, 1, H, W)
        decision_logit : torch.Tensor of shape (n,)
        """
        seg = self.segmentation(x)
        return seg, self.decision(seg.detach() if self.detach else seg)


class FeatureDecisionNet(nn.Module):
    """A decision net that reads the segmentation net's features as well as its map (not in the paper).

    The paper's decision net (:class:`Wang2022DecisionNet`) sees only the segmentation map, at full
    resolution: a defect the map misses (a large low-contrast area, a faint texture change) is lost to it,
    and its 512-channel D1 and 5×5 D3 at half resolution cost ~26 times the segmentation net. This head
    follows SegDecNet's decision net instead: it reads the deepest segmentation features (S7, at 1/8
    resolution) together with the map max- and average-pooled to that resolution.

    Layers: concat(features, maxpool₈(P), avgpool₈(P)) · conv5×5 → 32·width · norm · ReLU · max-pool 2 ·
    conv5×5 32·width → 32·width · norm · ReLU; global max and mean of those (64·width values) and of the
    segmentation logits (2 values) → ``Linear(64·width + 2, 1)``.

    Parameters
    ----------
    feature_channels : int
        Channels of the segmentation features.
    width : float, default=1.0
        Channel multiplier.
    norm : {"batch", "instance", "none"}, default="batch"

    Notes
    -----
    ``forward(seg_logits, features)`` takes the logits ``(n, 1, H, W)`` and the features
    ``(n, C, H/k, W/k)`` (k = the ratio of the two sides) and returns the decision logits ``(n,)``.
    """

    #: how many decision inputs it reads: the logits and the features
    n_inputs: int = 2

    def __init__(self, feature_channels: int, width: float = 1.0, norm: str = "batch") -> None:
        super().__init__()
        self.width = check_width(width)
        self.norm = check_norm(norm)
        c = scaled(32, self.width)
        self.features = nn.Sequential(
            *_conv_norm_relu(int(feature_channels) + 2, c, 5, self.norm),
            nn.MaxPool2d(2),
            *_conv_norm_relu(c, c, 5, self.norm),
        )
        self.fc = nn.Linear(2 * c + 2, 1)
        init_weights(self)
        nn.init.normal_(self.fc.weight, 0.0, 0.01)

    def forward(self, seg: torch.Tensor, features: torch.Tensor) -> torch.Tensor:
        """Decision logits ``(n,)`` from the segmentation logits and features."""
        k = seg.shape[-1] // features.shape[-1]
        p = seg.sigmoid()
        h = torch.cat([features, nn.functional.max_pool2d(p, k), nn.functional.avg_pool2d(p, k)], dim=1)
        h = self.features(h)
        pooled = torch.cat([h.amax(dim=(2, 3)), h.mean(dim=(2, 3)), seg.amax(dim=(2, 3)), seg.mean(dim=(2, 3))], 1)
        return self.fc(pooled).squeeze(1)


class Wang2022FeatureTwoStage(nn.Module):
    """The Table-1 segmentation net with :class:`FeatureDecisionNet` (backbone ``"wang2022_features"``).

    Trained as the paper trains its network (segmentation stage, then decision stage on the frozen
    segmentation net); only the decision net differs. At 64×64 its decision stage costs about a tenth of
    the paper's decision net's.

    Parameters
    ----------
    in_channels : int, default=3
    width : float, default=1.0
    norm : {"batch", "instance", "none"}, default="batch"

    Notes
    -----
    ``forward(x)`` returns ``(seg_logits, decision_logit)``; ``segment(x)`` the logits alone;
    ``decision_inputs(x)`` what the decision net reads (the detached logits and features), so the
    decision stage runs the frozen segmentation net once per batch.
    """

    input_divisor: int = 8
    schedule: str = "sequential"

    def __init__(self, in_channels: int = 3, width: float = 1.0, norm: str = "batch") -> None:
        super().__init__()
        self.segmentation = Wang2022SegmentationNet(in_channels=in_channels, width=width, norm=norm)
        self.decision = FeatureDecisionNet(self.segmentation.feature_channels, width=width, norm=norm)

    def segment(self, x: torch.Tensor) -> torch.Tensor:
        """Segmentation logits ``(n, 1, H, W)`` alone."""
        return self.segmentation(x)

    def decision_inputs(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The decision net's inputs: segmentation logits and features, detached."""
        seg, features = self.segmentation.forward_features(x)
        return seg.detach(), features.detach()

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Segmentation logits ``(n, 1, H, W)`` and decision logit ``(n,)``."""
        seg, features = self.segmentation.forward_features(x)
        return seg, self.decision(seg.detach(), features.detach())


class ImageFeatureDecisionNet(FeatureDecisionNet):
    """:class:`FeatureDecisionNet` that also reads the image through a small convolutional tower (not in a paper).

    Both papers' decision nets see only what the segmentation net computed: where its map misses a defect
    (a large, low-contrast area; a faint texture change that no mask outlines well), the decision net has
    nothing left to rank with. This head adds the missing input: the image itself, through three
    conv3×3 · norm · ReLU · max-pool 2 blocks (16, 32, 64 channels · width) down to the features'
    1/8 resolution, concatenated with the segmentation features and pooled map ahead of
    :class:`FeatureDecisionNet`'s layers.

    Parameters
    ----------
    feature_channels : int
        Channels of the segmentation features.
    in_channels : int, default=3
        Channels of the image.
    width : float, default=1.0
        Channel multiplier.
    norm : {"batch", "instance", "none"}, default="batch"

    Notes
    -----
    ``forward(seg_logits, features, x)`` takes the logits ``(n, 1, H, W)``, the features
    ``(n, C, H/8, W/8)`` and the image ``(n, in_channels, H, W)`` and returns the decision logits ``(n,)``.
    """

    levels: int = 3
    #: the logits, the features and the image
    n_inputs: int = 3

    def __init__(self, feature_channels: int, in_channels: int = 3, width: float = 1.0, norm: str = "batch") -> None:
        norm, width = check_norm(norm), check_width(width)
        layers: list[nn.Module] = []
        c_prev = int(in_channels)
        for i in range(self.levels):
            c = scaled(16 * 2**i, width)
            layers += [*_conv_norm_relu(c_prev, c, 3, norm), nn.MaxPool2d(2)]
            c_prev = c
        super().__init__(int(feature_channels) + c_prev, width=width, norm=norm)
        self.image = nn.Sequential(*layers)
        init_weights(self.image)

    def forward(self, seg: torch.Tensor, features: torch.Tensor, x: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        """Decision logits ``(n,)`` from the segmentation logits, its features and the image."""
        return super().forward(seg, torch.cat([features, self.image(x)], dim=1))


class Wang2022ImageTwoStage(Wang2022FeatureTwoStage):
    """The Table-1 segmentation net with :class:`ImageFeatureDecisionNet` (backbone ``"wang2022_image"``).

    Trained as :class:`Wang2022FeatureTwoStage` (segmentation stage, then decision stage on the frozen
    segmentation net); its decision net also reads the image.

    Parameters
    ----------
    in_channels, width, norm
        As :class:`Wang2022FeatureTwoStage`.

    Notes
    -----
    ``forward(x)`` returns ``(seg_logits, decision_logit)``; ``decision_inputs(x)`` the detached logits and
    features and the image.
    """

    def __init__(self, in_channels: int = 3, width: float = 1.0, norm: str = "batch") -> None:
        super().__init__(in_channels=in_channels, width=width, norm=norm)
        self.decision = ImageFeatureDecisionNet(
            self.segmentation.feature_channels, in_channels=in_channels, width=width, norm=norm
        )

    def decision_inputs(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:  # type: ignore[override]
        """The decision net's inputs: segmentation logits and features, detached, and the image."""
        return (*super().decision_inputs(x), x)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Segmentation logits ``(n, 1, H, W)`` and decision logit ``(n,)``."""
        seg, features = self.segmentation.forward_features(x)
        return seg, self.decision(seg.detach(), features.detach(), x)


class UNetDecoderSegmentationNet(Wang2022SegmentationNet):
    """Table 1's encoder (S1–S7) with a U-Net decoder in place of S8–S15 (not in the paper).

    In Table 1 every stage reaches the map through a single-channel transposed conv (S8–S11) and the
    fusion S12–S15 is linear, so the pixel logits are a *linear* function of each stage's features,
    brought back to full resolution by kernel = stride transposed convs (a blocky 8×8 upsampling of S7's
    evidence). This variant keeps S1–S7 and decodes as a U-Net does: from S7 up, each step upsamples by 2
    (nearest), concatenates the next finer stage's features and applies conv3×3 · norm · ReLU down to that
    stage's channels (48, 32, 16 · width); a 1×1 conv gives the logits. At 3×64×64 and width 1 it costs
    260 MFLOP against the Table-1 segmentation net's 133 (``flops_per_image``); a fit of the quality suite's
    embedded data took 2.5 times the CPU time of the default's (docs/benchmarks.md).

    Parameters
    ----------
    in_channels : int, default=3
    width : float, default=1.0
        Channel multiplier of the encoder and the decoder.
    norm : {"batch", "instance", "none"}, default="batch"

    Notes
    -----
    ``forward(x)`` returns the pixel logits ``(n, 1, H, W)`` (H, W multiples of 8);
    ``forward_features(x)`` the logits and S7's features, like :class:`Wang2022SegmentationNet`.
    """

    def __init__(self, in_channels: int = 3, width: float = 1.0, norm: str = "batch") -> None:
        super().__init__(in_channels=in_channels, width=width, norm=norm)
        del self.side, self.integrate, self.fuse
        channels = [scaled(c, self.width) for _, c in _SEG_STAGES]
        # decoder[i]: concat(level i + 1 decoded and upsampled, stage i's features) -> stage i's channels
        self.decoder = nn.ModuleList(
            nn.Sequential(*_conv_norm_relu(channels[i + 1] + channels[i], channels[i], 3, self.norm))
            for i in range(len(channels) - 1)
        )
        self.head = nn.Conv2d(channels[0], 1, 1)
        init_weights(self)

    def forward_features(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Pixel logits and the deepest features (S7's output, ``(n, 64·width, H/8, W/8)``)."""
        skips = self.encode(x)
        d = skips[-1]
        for i in range(len(skips) - 2, -1, -1):
            up = nn.functional.interpolate(d, size=skips[i].shape[-2:], mode="nearest")
            d = self.decoder[i](torch.cat([up, skips[i]], dim=1))
        return self.head(d), skips[-1]


class Wang2022UNetTwoStage(Wang2022FeatureTwoStage):
    """:class:`UNetDecoderSegmentationNet` with :class:`FeatureDecisionNet` (backbone ``"wang2022_unet"``).

    ``"wang2022_features"`` with Table 1's side-output head replaced by a U-Net decoder;
    trained the same way (segmentation stage, then the decision stage on the frozen segmentation net).

    Parameters
    ----------
    in_channels, width, norm
        As :class:`Wang2022FeatureTwoStage`.
    """

    def __init__(self, in_channels: int = 3, width: float = 1.0, norm: str = "batch") -> None:
        super().__init__(in_channels=in_channels, width=width, norm=norm)
        self.segmentation = UNetDecoderSegmentationNet(in_channels=in_channels, width=width, norm=norm)
        self.decision = FeatureDecisionNet(self.segmentation.feature_channels, width=width, norm=norm)


class DecisionHeadChoice(nn.Module):
    """Several decision nets trained side by side on the same inputs; the chosen one answers (not in a paper).

    Which decision net ranks images best depends on the data: on Magnetic tile the one that also reads the
    image (:class:`ImageFeatureDecisionNet`) had the lower validation loss on every fold measured, on the
    embedded textures the one that reads the segmentation net alone (:class:`FeatureDecisionNet`) on two
    seeds of three (docs/benchmarks.md). This module holds both, so that one decision stage trains them on
    the same minibatches (the frozen segmentation net runs once per batch for all of them), and the training
    loop (:class:`skdefect.training.two_stage.TwoStageNet`) chooses, at the stage's end, the head whose
    validation loss at its best epoch is the lowest.

    Parameters
    ----------
    heads : dict of str to nn.Module
        The candidate decision nets, by name, in order; the first answers until a choice is made (and when
        there are no validation images to choose on). Each head declares ``n_inputs``, how many of the
        decision inputs it reads (a prefix of them).

    Attributes
    ----------
    chosen : torch.Tensor
        A long scalar buffer, the index of the answering head (saved with the weights).

    Notes
    -----
    ``forward(*inputs)`` returns the chosen head's logits ``(n,)``; ``all_logits(*inputs)`` every head's,
    stacked ``(n, n_heads)``.
    """

    def __init__(self, heads: dict[str, nn.Module]) -> None:
        super().__init__()
        if not heads:
            raise ValueError("DecisionHeadChoice needs at least one head")
        self.heads = nn.ModuleDict(heads)
        self.register_buffer("chosen", torch.zeros((), dtype=torch.long))
        self._chosen = 0  # a Python copy, so that tracing and compiling see a constant
        self.register_load_state_dict_post_hook(DecisionHeadChoice._sync_chosen)

    @staticmethod
    def _sync_chosen(module: nn.Module, incompatible_keys: Any) -> None:
        index = int(module.chosen)
        if not 0 <= index < len(module.heads):
            raise ValueError(f"the decision head index 'chosen' must be in 0..{len(module.heads) - 1}; got {index}")
        module._chosen = index

    @property
    def names(self) -> list[str]:
        """The heads' names, in order."""
        return list(self.heads)

    @property
    def chosen_name(self) -> str:
        """The answering head's name."""
        return self.names[self._chosen]

    def choose(self, name: str) -> None:
        """Make the head ``name`` answer."""
        index = self.names.index(name)
        self.chosen.fill_(index)
        self._chosen = index

    @staticmethod
    def _call(head: nn.Module, inputs: tuple[torch.Tensor, ...]) -> torch.Tensor:
        return head(*inputs[: getattr(head, "n_inputs", len(inputs))])

    def all_logits(self, *inputs: torch.Tensor) -> torch.Tensor:
        """Every head's decision logits, ``(n, n_heads)``."""
        return torch.stack([self._call(head, inputs) for head in self.heads.values()], dim=1)

    def forward(self, *inputs: torch.Tensor) -> torch.Tensor:
        """The chosen head's decision logits ``(n,)``."""
        return self._call(self.heads[self.chosen_name], inputs)


class Wang2022SelectTwoStage(Wang2022ImageTwoStage):
    """The Table-1 segmentation net with both CPU decision nets, the validation images choosing (backbone
    ``"wang2022_select"``; not in a paper).

    The segmentation stage is :class:`Wang2022FeatureTwoStage`'s. Its decision stage trains
    :class:`FeatureDecisionNet` (``"features"``) and :class:`ImageFeatureDecisionNet` (``"image"``) on the
    same minibatches, each with its own BCE, and keeps the one whose validation loss at its best epoch is
    the lower (:class:`DecisionHeadChoice`); without validation images, ``"features"``. The frozen
    segmentation net runs once per batch for both heads; in the quality suite (64×64, one thread of an Intel
    Xeon) a fit took about 1.07 times the CPU time of one with the features head alone (345 s against 322 s
    on Magnetic tile, 204 s against 193 s on the embedded data).

    Parameters
    ----------
    in_channels, width, norm
        As :class:`Wang2022FeatureTwoStage`.

    Notes
    -----
    ``forward(x)`` returns ``(seg_logits, decision_logit)`` of the chosen head; ``decision_inputs(x)`` the
    detached logits and features and the image.
    """

    def __init__(self, in_channels: int = 3, width: float = 1.0, norm: str = "batch") -> None:
        super().__init__(in_channels=in_channels, width=width, norm=norm)
        channels = self.segmentation.feature_channels
        self.decision = DecisionHeadChoice({
            "features": FeatureDecisionNet(channels, width=width, norm=norm),
            "image": ImageFeatureDecisionNet(channels, in_channels=in_channels, width=width, norm=norm),
        })
