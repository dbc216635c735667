"""Building blocks shared by the network families: width scaling, norm layers, init, shape checks."""

from __future__ import annotations

import math

import torch
from torch import nn

__all__ = [
    "NORMS",
    "check_width",
    "scaled",
    "check_norm",
    "check_channels",
    "make_norm",
    "init_weights",
    "check_divisible",
    "count_parameters",
    "parameter_table",
]

#: Accepted values of the ``norm`` constructor argument.
NORMS: tuple[str, ...] = ("batch", "instance", "none")


def check_width(width: float) -> float:
    """Validate a channel multiplier.

    Parameters
    ----------
    width : float
        Channel multiplier; must be a finite number > 0.

    Returns
    -------
    float
        ``width`` as a float.

    Raises
    ------
    ValueError
        If ``width`` is not a finite positive number.
    """
    try:
        value = float(width)
    except (TypeError, ValueError):
        raise ValueError(f"width must be a positive number, got {width!r}") from None
    if not math.isfinite(value) or value <= 0:
        raise ValueError(f"width must be a positive number, got {width!r}")
    return value


def scaled(channels: int, width: float) -> int:
    """Channel count ``channels`` scaled by ``width``: ``max(1, round(channels * width))``.

    Parameters
    ----------
    channels : int
        The paper's channel count (width 1).
    width : float
        Channel multiplier.

    Returns
    -------
    int
        The scaled channel count, at least 1.
    """
    return max(1, int(round(channels * width)))


def check_norm(norm: str) -> str:
    """Validate a ``norm`` argument (one of :data:`NORMS`)."""
    if norm not in NORMS:
        raise ValueError(f"norm must be one of {NORMS}, got {norm!r}")
    return norm


def make_norm(norm: str, channels: int) -> nn.Module:
    """A 2-D normalisation layer.

    Parameters
    ----------
    norm : {"batch", "instance", "none"}
        ``"batch"``: :class:`torch.nn.BatchNorm2d`; ``"instance"``:
        :class:`torch.nn.InstanceNorm2d` with a learnable affine (the same 2·C
        parameters as batch norm, no running statistics); ``"none"``: identity.
    channels : int
        Number of channels.

    Returns
    -------
    torch.nn.Module
    """
    check_norm(norm)
    if norm == "batch":
        return nn.BatchNorm2d(channels)
    if norm == "instance":
        return nn.InstanceNorm2d(channels, affine=True)
    return nn.Identity()


def _fan_in(module: nn.Module) -> int:
    """Effective fan-in of a (transposed) convolution or linear layer.

    For a transposed convolution each output pixel sums ``in_channels · ∏(k_i / s_i)``
    weighted inputs on average (kernel = stride gives exactly ``in_channels``), which is
    not what :func:`torch.nn.init.kaiming_normal_` would read from the weight's shape.
    """
    if isinstance(module, nn.ConvTranspose2d):
        overlap = 1.0
        for k, s in zip(module.kernel_size, module.stride, strict=True):
            overlap *= max(k / s, 1.0)
        return max(1, int(round(module.in_channels // module.groups * overlap)))
    return nn.init._calculate_fan_in_and_fan_out(module.weight)[0]


def init_weights(module: nn.Module, negative_slope: float = 0.0) -> None:
    """Kaiming-normal initialisation of every conv / transposed conv / linear layer in ``module``.

    Weights are drawn from ``N(0, gain² / fan_in)`` with the ReLU gain
    ``sqrt(2 / (1 + negative_slope²))`` (He et al. 2015); biases are zero; the affine
    parameters of norm layers are (1, 0). The effective fan-in of a transposed
    convolution counts the kernel overlap (see :func:`_fan_in`).

    Parameters
    ----------
    module : torch.nn.Module
        Initialised in place, recursively.
    negative_slope : float, default=0.0
        Slope of the leaky ReLU that follows the layers (0 for ReLU).
    """
    gain = math.sqrt(2.0 / (1.0 + negative_slope**2))
    for m in module.modules():
        if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d, nn.Linear)):
            std = gain / math.sqrt(_fan_in(m))
            with torch.no_grad():
                m.weight.normal_(0.0, std)
                if m.bias is not None:
                    m.bias.zero_()
        elif isinstance(m, (nn.BatchNorm2d, nn.InstanceNorm2d, nn.GroupNorm)) and m.weight is not None:
            with torch.no_grad():
                m.weight.fill_(1.0)
                m.bias.zero_()


def check_divisible(x: torch.Tensor, divisor: int, name: str, min_side: int | None = None) -> None:
    """Raise a ValueError unless ``x`` is (n, C, H, W) with H, W multiples of ``divisor``.

    Parameters
    ----------
    x : torch.Tensor
        The network input.
    divisor : int
        Required divisor of H and W.
    name : str
        Network name, for the message.
    min_side : int or None, default=None
        Smallest accepted H and W (default: ``divisor``).

    Raises
    ------
    ValueError
        Naming the input shape and what is needed.
    """
    if x.dim() != 4:
        raise ValueError(f"{name} expects a 4-D input (n, C, H, W), got input of shape {tuple(x.shape)}")
    h, w = int(x.shape[-2]), int(x.shape[-1])
    low = divisor if min_side is None else min_side
    if h % divisor or w % divisor or h < low or w < low:
        raise ValueError(
            f"{name} needs height and width divisible by {divisor} (and at least {low}), got input of shape "
            f"{tuple(x.shape)}; set image_size to such sides (the estimator resizes the images)"
        )


def check_channels(x: torch.Tensor, expected: int, name: str) -> None:
    """Raise a ValueError unless ``x.shape[1] == expected``."""
    if x.dim() < 2 or int(x.shape[1]) != expected:
        raise ValueError(
            f"{name} was built for {expected} input channel(s), got input of shape {tuple(x.shape)}"
        )


def count_parameters(module: nn.Module, trainable_only: bool = False) -> int:
    """Number of parameters of ``module``.

    Parameters
    ----------
    module : torch.nn.Module
    trainable_only : bool, default=False
        Count only parameters with ``requires_grad``.

    Returns
    -------
    int
    """
    return sum(p.numel() for p in module.parameters() if p.requires_grad or not trainable_only)


def parameter_table(module: nn.Module) -> dict[str, int]:
    """Parameter count of each direct child of ``module`` (in registration order).

    Parameters registered directly on ``module`` (not in a child) appear under ``"(own)"``.

    Parameters
    ----------
    module : torch.nn.Module

    Returns
    -------
    dict of str to int
    """
    table = {name: count_parameters(child) for name, child in module.named_children()}
    own = sum(p.numel() for p in module.parameters(recurse=False))
    if own:
        table["(own)"] = own
    return table

