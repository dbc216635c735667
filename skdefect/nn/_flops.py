"""FLOP counting with :class:`torch.utils.flop_counter.FlopCounterMode`."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

__all__ = ["flops_per_image"]


def flops_per_image(module: nn.Module, input_shape: Sequence[int]) -> int:
    """Floating-point operations of one inference forward pass on one image.

    Runs ``module`` once in eval mode under :func:`torch.no_grad` on a zero image of shape
    ``(1, *input_shape)`` (on the module's device and dtype) and counts with
    :class:`~torch.utils.flop_counter.FlopCounterMode`, which counts a multiply-add as 2
    FLOPs and covers matrix products and convolutions (element-wise ops, norms and
    pooling are not counted). The module's training flag is restored afterwards.

    Parameters
    ----------
    module : torch.nn.Module
        The network; its forward takes one tensor.
    input_shape : sequence of int
        ``(C, H, W)`` of one image (sides the network accepts).

    Returns
    -------
    int
        FLOPs per image.
    """
    shape = tuple(int(s) for s in input_shape)
    if not shape or any(s < 1 for s in shape):
        raise ValueError(f"input_shape must be positive sizes such as (C, H, W), got {input_shape!r}")
    param = next(iter(module.parameters()), None)
    device = param.device if param is not None else torch.device("cpu")
    dtype = param.dtype if param is not None and param.is_floating_point() else torch.float32
    x = torch.zeros((1, *shape), device=device, dtype=dtype)
    was_training = module.training
    module.eval()
    try:
        counter = FlopCounterMode(display=False)
        with torch.no_grad(), counter:
            module(x)
    finally:
        module.train(was_training)
    return int(counter.get_total_flops())
