"""SmallUNetTwoStage: shapes, the two-stage backbone contract, input checks, gradient isolation."""

from __future__ import annotations

import pytest
import torch
from skdefect_extra_losses.nn import SmallUNetTwoStage, make_small_unet


@pytest.mark.parametrize("in_channels, depth, size", [(3, 3, (48, 32)), (1, 2, (20, 12)), (1, 1, (6, 10))])
def test_shapes(in_channels, depth, size):
    net = make_small_unet(in_channels=in_channels, width=0.25, depth=depth).eval()
    x = torch.randn(2, in_channels, *size)
    seg, logit = net(x)
    assert seg.shape == (2, 1, *size)
    assert logit.shape == (2,)
    assert net.input_divisor == 2**depth
    torch.testing.assert_close(net.segment(x), seg)
    torch.testing.assert_close(net.decision(seg), logit)


def test_two_stage_contract():
    net = make_small_unet(in_channels=3, width=0.5)
    assert isinstance(net.segmentation, torch.nn.Module) and isinstance(net.decision, torch.nn.Module)
    assert net.schedule == "sequential"
    seg_params = {id(p) for p in net.segmentation.parameters()}
    dec_params = {id(p) for p in net.decision.parameters()}
    assert seg_params and dec_params and not seg_params & dec_params
    assert {id(p) for p in net.parameters()} == seg_params | dec_params


def test_width_scales_the_parameter_count():
    small = sum(p.numel() for p in SmallUNetTwoStage(width=0.25).parameters())
    full = sum(p.numel() for p in SmallUNetTwoStage(width=1.0).parameters())
    assert 8 * small < full  # conv weights scale with width² (about 16x)


@pytest.mark.parametrize("norm", ["batch", "instance", "none"])
def test_decision_loss_never_reaches_the_segmentation_net(norm):
    net = make_small_unet(in_channels=1, width=0.25, norm=norm)
    seg, logit = net(torch.randn(2, 1, 16, 16))
    logit.sum().backward()
    assert all(p.grad is None for p in net.segmentation.parameters())
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in net.decision.parameters())
    seg.sum().backward()
    assert all(torch.isfinite(p.grad).all() for p in net.segmentation.parameters())


def test_bad_inputs_and_arguments_are_refused():
    net = make_small_unet(in_channels=3, width=0.25)
    with pytest.raises(ValueError, match=r"divisible by 8.*\(1, 3, 20, 24\)"):
        net(torch.randn(1, 3, 20, 24))
    with pytest.raises(ValueError, match=r"\(n, 3, H, W\), got \(1, 1, 16, 16\)"):
        net(torch.randn(1, 1, 16, 16))
    with pytest.raises(ValueError, match="1-channel map"):
        net.decision(torch.randn(1, 2, 16, 16))
    with pytest.raises(ValueError, match="width must be a finite number > 0, got 0"):
        make_small_unet(width=0)
    with pytest.raises(ValueError, match="norm must be one of"):
        make_small_unet(norm="group")
    with pytest.raises(ValueError, match=r"depth must be an int in \[1, 5\], got 6"):
        make_small_unet(depth=6)
    with pytest.raises(ValueError, match="in_channels must be a positive int"):
        make_small_unet(in_channels=0)
