"""Generator and discriminator of the dual-discriminator GAN (Kim et al., "imbalance problems" paper).

The paper gives only layer types and per-layer parameter counts. The configuration below
reproduces every count exactly (3-channel input, width 1, batch norm):

Generator (a 4-level U-Net, pix2pix layer ordering; encoder widths 8-16-32-64):

=====  ===========================================================  ========  ======
layer  operation                                                    params    paper
=====  ===========================================================  ========  ======
enc1   conv4×4/2 3 → 8, no bias, no norm                            384       0.38K
enc2   LeakyReLU(0.2) · conv4×4/2 8 → 16, no bias · BN(16)          2,080     2.08K
enc3   LeakyReLU · conv4×4/2 16 → 32 · BN(32)                       8,256     8.26K
enc4   LeakyReLU · conv4×4/2 32 → 64 · BN(64)  → z (bottleneck)     32,896    32.9K
dec1   ReLU · convT4×4/2 64 → 32 · BN(32)                           32,832    32.83K
dec2   ReLU · convT4×4/2 [dec1, enc3] 64 → 16 · BN(16)              16,416    16.42K
dec3   ReLU · convT4×4/2 [dec2, enc2] 32 → 8 · BN(8)                4,112     4.11K
dec4   ReLU · convT4×4/2 [dec3, enc1] 16 → 3, with bias · sigmoid   771       0.77K
=====  ===========================================================  ========  ======

Total 97,747 (paper: 97.75K). The counts pin down the configuration: convs followed by a
norm carry no bias (the norm's shift replaces it), the first conv has neither norm nor
bias (384 = 3·8·16), norms have 2 parameters per channel (batch norm or affine instance
norm), the bottleneck is *not* concatenated with itself (dec1 takes 64 channels) while
every later decoder layer takes its input concatenated with the mirrored encoder output,
and only the output layer has a bias (768 + 3).

Discriminator (PatchGAN-style, LeakyReLU 0.2, no sigmoid — LSGAN):

=====  ==========================================  ========  ======
layer  operation                                   params    paper
=====  ==========================================  ========  ======
layer1 conv4×4/2 3 → 8, no bias, no norm           384       0.38K
layer2 conv4×4/2 8 → 16 · BN(16)                   2,080     2.08K
layer3 conv4×4/2 16 → 32 · BN(32)                  8,256     8.26K
layer4 conv4×4/1 32 → 64 · BN(64)                  32,896    32.9K
layer5 conv4×4/1 64 → 32, no bias, no norm         32,768    32.77K
=====  ==========================================  ========  ======

Total 76,384 (paper: 76.39K, the sum of its rounded per-layer figures). The last count
(32,768 = 64·32·16) means the last conv has 32 output channels; we average them into the
one-channel patch map ``(n, 1, h, w)`` (a parameter-free reduction: together with layer5
it is a 64 → 1 conv parameterised as a product). All 4×4 convs use padding 1, so an input
of side s gives a patch map of side s/8 − 2 (14×14 at 128×128).

Other choices: Kaiming-normal initialisation with the leaky-ReLU gain (pix2pix uses
N(0, 0.02)); the generator's output is a sigmoid for images in [0, 1]
(``output_activation="tanh"`` for [−1, 1], ``"none"`` for unbounded inputs); the latent
code ``z`` is the bottleneck ``enc4`` output (after its norm, before the decoder's ReLU),
and :meth:`UNetGenerator.encode` runs the encoder alone (``G_E`` of the latent loss).
"""

from __future__ import annotations

import torch
from torch import nn

from ._common import check_channels, check_divisible, check_norm, check_width, init_weights, make_norm, scaled

__all__ = ["UNetGenerator", "PatchDiscriminator"]

_LEAK = 0.2
_OUTPUT_ACTIVATIONS = ("sigmoid", "tanh", "none")


def _down(c_in: int, c_out: int, norm: str | None) -> nn.Sequential:
    """LeakyReLU · conv4×4/2 · norm; ``norm=None`` is the first layer (no activation, no norm)."""
    if norm is None:
        return nn.Sequential(nn.Conv2d(c_in, c_out, 4, stride=2, padding=1, bias=False))
    return nn.Sequential(
        nn.LeakyReLU(_LEAK),
        nn.Conv2d(c_in, c_out, 4, stride=2, padding=1, bias=norm == "none"),
        make_norm(norm, c_out),
    )


def _up(c_in: int, c_out: int, norm: str) -> nn.Sequential:
    """ReLU · transposed conv4×4/2 · norm."""
    return nn.Sequential(
        nn.ReLU(),
        nn.ConvTranspose2d(c_in, c_out, 4, stride=2, padding=1, bias=norm == "none"),
        make_norm(norm, c_out),
    )


class UNetGenerator(nn.Module):
    """U-Net autoencoder generator of the dual-discriminator GAN (97.75K parameters at width 1).

    Parameters
    ----------
    in_channels : int, default=3
        Channels of the input image; the reconstruction has the same.
    width : float, default=1.0
        Channel multiplier: encoder widths ``round(8·width)``, ``round(16·width)``, ...
    norm : {"batch", "instance", "none"}, default="batch"
        Norm of enc2–enc4 and dec1–dec3 (the paper's counts need 2 parameters per channel:
        batch or affine instance norm). ``"none"`` gives those convs a bias instead.
    output_activation : {"sigmoid", "tanh", "none"}, default="sigmoid"
        Squashes the reconstruction into the input's range: sigmoid for images in [0, 1].

    Attributes
    ----------
    input_divisor : int
        16 (four stride-2 levels with skip connections).
    enc1, enc2, enc3, enc4, dec1, dec2, dec3, dec4 : torch.nn.Sequential
        The eight layers of the paper's table, in order (see the module docstring).

    Notes
    -----
    ``forward(x)`` takes ``(n, in_channels, H, W)`` with H, W multiples of 16 and returns
    ``(x_hat (n, in_channels, H, W), z (n, 64·width, H/16, W/16))``; ``encode(x)`` returns
    ``z`` alone. Other sides raise a ValueError naming the input shape.
    """

    input_divisor: int = 16

    def __init__(
        self,
        in_channels: int = 3,
        width: float = 1.0,
        norm: str = "batch",
        output_activation: str = "sigmoid",
    ) -> None:
        super().__init__()
        if output_activation not in _OUTPUT_ACTIVATIONS:
            raise ValueError(
                f"output_activation must be one of {_OUTPUT_ACTIVATIONS}, got {output_activation!r}"
            )
        self.in_channels = int(in_channels)
        self.width = check_width(width)
        self.norm = check_norm(norm)
        self.output_activation = output_activation
        c1, c2, c3, c4 = (scaled(c, self.width) for c in (8, 16, 32, 64))
        self.latent_channels = c4
        self.enc1 = _down(self.in_channels, c1, None)
        if self.norm == "none":  # no norm anywhere: the first conv gets its bias back too
            self.enc1[0] = nn.Conv2d(self.in_channels, c1, 4, stride=2, padding=1)
        self.enc2 = _down(c1, c2, self.norm)
        self.enc3 = _down(c2, c3, self.norm)
        self.enc4 = _down(c3, c4, self.norm)
        self.dec1 = _up(c4, c3, self.norm)
        self.dec2 = _up(2 * c3, c2, self.norm)
        self.dec3 = _up(2 * c2, c1, self.norm)
        activations = {"sigmoid": nn.Sigmoid, "tanh": nn.Tanh, "none": nn.Identity}
        out_act: nn.Module = activations[output_activation]()
        self.dec4 = nn.Sequential(
            nn.ReLU(), nn.ConvTranspose2d(2 * c1, self.in_channels, 4, stride=2, padding=1), out_act
        )
        init_weights(self, negative_slope=_LEAK)

    def _check(self, x: torch.Tensor) -> None:
        check_divisible(x, self.input_divisor, type(self).__name__)
        check_channels(x, self.in_channels, type(self).__name__)

    def _encode(self, x: torch.Tensor) -> list[torch.Tensor]:
        h1 = self.enc1(x)
        h2 = self.enc2(h1)
        h3 = self.enc3(h2)
        return [h1, h2, h3, self.enc4(h3)]

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """The encoder ``G_E``: bottleneck code ``z`` of shape (n, latent_channels, H/16, W/16).

        Parameters
        ----------
        x : torch.Tensor of shape (n, in_channels, H, W)

        Returns
        -------
        torch.Tensor
        """
        self._check(x)
        return self._encode(x)[-1]

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """The encoder's features at 1/4 resolution (``enc2``'s output, ``(n, 16·width, H/4, W/4)``).

        What the detector's feature-memory scores (``anomaly_score="memory"`` / ``"patch_memory"``) compare.
        Of the encoder's levels, this one separated the MNIST one-class protocol best in a development run
        (mean AUROC over the ten digits with 1-nearest-neighbour cosine distances, seed 0, 12 epochs: enc2
        0.976, enc3 0.963, bottleneck 0.941; a one-off comparison, not part of ``benchmarks/``).
        """
        self._check(x)
        return self.enc2(self.enc1(x))

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Reconstruction and bottleneck code.

        Parameters
        ----------
        x : torch.Tensor of shape (n, in_channels, H, W)
            H, W multiples of 16.

        Returns
        -------
        x_hat : torch.Tensor of shape (n, in_channels, H, W)
        z : torch.Tensor of shape (n, latent_channels, H/16, W/16)
        """
        self._check(x)
        h1, h2, h3, z = self._encode(x)
        d = self.dec1(z)
        d = self.dec2(torch.cat([d, h3], dim=1))
        d = self.dec3(torch.cat([d, h2], dim=1))
        x_hat = self.dec4(torch.cat([d, h1], dim=1))
        return x_hat, z


class PatchDiscriminator(nn.Module):
    """Patch discriminator of the dual-discriminator GAN (76.39K parameters at width 1).

    Parameters
    ----------
    in_channels : int, default=3
        Channels of the judged image.
    width : float, default=1.0
        Channel multiplier (8, 16, 32, 64, 32 at width 1).
    norm : {"batch", "instance", "none"}, default="batch"
        Norm of layers 2–4; ``"none"`` gives their convs a bias instead.

    Attributes
    ----------
    layer1, layer2, layer3, layer4, layer5 : torch.nn.Module
        The five convolutions of the paper's table (see the module docstring).

    Notes
    -----
    ``forward(x)`` takes ``(n, in_channels, H, W)`` with H, W ≥ 24 and returns a patch map
    of raw scores ``(n, 1, H/8 − 2, W/8 − 2)`` (floor division; no sigmoid: LSGAN).
    """

    def __init__(self, in_channels: int = 3, width: float = 1.0, norm: str = "batch") -> None:
        super().__init__()
        self.in_channels = int(in_channels)
        self.width = check_width(width)
        self.norm = check_norm(norm)
        c1, c2, c3, c4, c5 = (scaled(c, self.width) for c in (8, 16, 32, 64, 32))
        bias = self.norm == "none"

        def block(c_in: int, c_out: int, stride: int) -> nn.Sequential:
            return nn.Sequential(
                nn.Conv2d(c_in, c_out, 4, stride=stride, padding=1, bias=bias),
                make_norm(self.norm, c_out),
                nn.LeakyReLU(_LEAK),
            )

        self.layer1 = nn.Sequential(
            nn.Conv2d(self.in_channels, c1, 4, stride=2, padding=1, bias=bias), nn.LeakyReLU(_LEAK)
        )
        self.layer2 = block(c1, c2, 2)
        self.layer3 = block(c2, c3, 2)
        self.layer4 = block(c3, c4, 1)
        self.layer5 = nn.Conv2d(c4, c5, 4, stride=1, padding=1, bias=bias)
        init_weights(self, negative_slope=_LEAK)

    #: smallest input side with a non-empty patch map
    min_side: int = 24

    @staticmethod
    def output_side(side: int) -> int:
        """Side of the patch map for an input side ``side``."""
        for _ in range(3):
            side = (side + 2 - 4) // 2 + 1
        return side - 2

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Patch map of scores.

        Parameters
        ----------
        x : torch.Tensor of shape (n, in_channels, H, W)

        Returns
        -------
        torch.Tensor of shape (n, 1, h, w)
            One raw (LSGAN) score per patch.
        """
        name = type(self).__name__
        if x.dim() != 4 or min(self.output_side(int(s)) for s in x.shape[-2:]) < 1:
            raise ValueError(
                f"{name} needs a 4-D input (n, C, H, W) with H, W >= 24, "
                f"got input of shape {tuple(x.shape)}; "
                "set image_size to larger sides (the estimator resizes the images)"
            )
        check_channels(x, self.in_channels, name)
        h = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        return self.layer5(h).mean(dim=1, keepdim=True)
