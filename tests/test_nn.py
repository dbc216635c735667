"""Tests of skdefect.nn: shapes, parameter counts against the papers, gradient flow, checks, FLOPs."""

from __future__ import annotations

import pytest
import torch

from skdefect.nn import (
    FeatureNorm,
    GradientMultiply,
    PatchDiscriminator,
    SegDecNet,
    UNetGenerator,
    Wang2022DecisionNet,
    Wang2022SegmentationNet,
    Wang2022TwoStage,
    count_parameters,
    flops_per_image,
    parameter_table,
)
from skdefect.nn.wang2022 import Wang2022ImageTwoStage, Wang2022UNetTwoStage


@pytest.fixture(autouse=True)
def _seed() -> None:
    torch.manual_seed(0)


# --------------------------------------------------------------------------- shapes


@pytest.mark.parametrize("norm", ["batch", "instance", "none"])
def test_wang_two_stage_shapes(norm: str) -> None:
    net = Wang2022TwoStage(in_channels=3, width=0.25, norm=norm)
    x = torch.rand(2, 3, 32, 48)
    seg, logit = net(x)
    assert seg.shape == (2, 1, 32, 48)
    assert logit.shape == (2,)
    assert torch.isfinite(seg).all() and torch.isfinite(logit).all()
    assert net.segment(x).shape == (2, 1, 32, 48)
    assert net.input_divisor == 8 and net.schedule == "sequential"


def test_wang_subnets_shapes_and_channels() -> None:
    seg = Wang2022SegmentationNet(in_channels=1, width=0.25)
    assert seg(torch.rand(3, 1, 16, 24)).shape == (3, 1, 16, 24)
    dec = Wang2022DecisionNet(width=0.25)
    assert dec(torch.randn(3, 1, 16, 24)).shape == (3,)
    with pytest.raises(ValueError, match=r"\(3, 2, 16, 24\)"):
        dec(torch.randn(3, 2, 16, 24))


def test_wang_decision_input_sigmoid() -> None:
    dec = Wang2022DecisionNet(width=0.25).eval()
    raw = Wang2022DecisionNet(width=0.25, input_sigmoid=False).eval()
    raw.load_state_dict(dec.state_dict())
    logits = torch.randn(2, 1, 16, 16)
    torch.testing.assert_close(dec(logits), raw(logits.sigmoid()))


def test_segdec_shapes() -> None:
    net = SegDecNet(in_channels=3, width=0.25)
    x = torch.rand(2, 3, 64, 72)
    seg, logit = net(x)
    assert seg.shape == (2, 1, 8, 9)
    assert logit.shape == (2,)
    assert torch.isfinite(seg).all() and torch.isfinite(logit).all()
    assert net.segment(x).shape == (2, 1, 8, 9)
    assert net.input_divisor == 8 and net.schedule == "joint"


def test_gan_shapes() -> None:
    gen = UNetGenerator(in_channels=3, width=0.5)
    x = torch.rand(2, 3, 32, 48)
    x_hat, z = gen(x)
    assert x_hat.shape == x.shape
    assert z.shape == (2, 32, 2, 3)
    assert float(x_hat.detach().min()) >= 0.0 and float(x_hat.detach().max()) <= 1.0  # sigmoid output
    torch.testing.assert_close(gen.encode(x), z)
    assert gen.input_divisor == 16

    disc = PatchDiscriminator(in_channels=3, width=0.5)
    out = disc(x)
    assert out.shape == (2, 1, 2, 4)
    assert PatchDiscriminator(in_channels=1)(torch.rand(1, 1, 128, 128)).shape == (1, 1, 14, 14)


@pytest.mark.parametrize("act", ["tanh", "none"])
def test_generator_output_activation(act: str) -> None:
    gen = UNetGenerator(in_channels=1, width=0.5, output_activation=act, norm="none")
    x_hat, _ = gen(torch.rand(1, 1, 16, 16))
    assert x_hat.shape == (1, 1, 16, 16)
    if act == "tanh":
        assert float(x_hat.detach().abs().max()) <= 1.0
    with pytest.raises(ValueError, match="output_activation"):
        UNetGenerator(output_activation="relu")


# --------------------------------------------------------------------------- parameter counts


def test_wang_parameter_counts_match_reference() -> None:
    net = Wang2022TwoStage(in_channels=3, width=1.0)
    n_seg = count_parameters(net.segmentation)
    n_dec = count_parameters(net.decision)
    assert abs(n_seg - 0.28e6) <= 0.1 * 0.28e6, n_seg
    assert abs(n_dec - 1.7e6) <= 0.1 * 1.7e6, n_dec
    assert parameter_table(net) == {"segmentation": n_seg, "decision": n_dec}


def test_segdec_parameter_count_matches_paper() -> None:
    net = SegDecNet(in_channels=3, width=1.0)
    n = count_parameters(net)
    assert abs(n - 15.6e6) <= 0.05 * 15.6e6, n


def test_generator_per_layer_counts_match_paper() -> None:
    gen = UNetGenerator(in_channels=3, width=1.0)
    table = parameter_table(gen)
    paper_k = [0.38, 2.08, 8.26, 32.9, 32.83, 16.42, 4.11, 0.77]
    assert list(table) == ["enc1", "enc2", "enc3", "enc4", "dec1", "dec2", "dec3", "dec4"]
    for (name, n), k in zip(table.items(), paper_k, strict=True):
        assert round(n / 1000, 2) == pytest.approx(k, abs=0.005), (name, n, k)
    total = count_parameters(gen)
    assert total == 97_747
    assert abs(total - 97_750) <= 0.005 * 97_750


def test_discriminator_per_layer_counts_match_paper() -> None:
    disc = PatchDiscriminator(in_channels=3, width=1.0)
    table = parameter_table(disc)
    paper_k = [0.38, 2.08, 8.26, 32.9, 32.77]
    assert list(table) == ["layer1", "layer2", "layer3", "layer4", "layer5"]
    for (name, n), k in zip(table.items(), paper_k, strict=True):
        assert round(n / 1000, 2) == pytest.approx(k, abs=0.005), (name, n, k)
    total = count_parameters(disc)
    assert total == 76_384
    assert abs(total - 76_390) <= 0.005 * 76_390


def test_width_scales_channels() -> None:
    small = count_parameters(Wang2022SegmentationNet(width=0.5))
    big = count_parameters(Wang2022SegmentationNet(width=1.0))
    assert 3 < big / small < 5  # conv weights scale ~ width²
    with pytest.raises(ValueError, match="width"):
        UNetGenerator(width=0)
    with pytest.raises(ValueError, match="norm"):
        Wang2022TwoStage(norm="layer")


def test_count_parameters_trainable_only() -> None:
    net = Wang2022TwoStage(width=0.25)
    for p in net.segmentation.parameters():
        p.requires_grad_(False)
    assert count_parameters(net, trainable_only=True) == count_parameters(net.decision)


# --------------------------------------------------------------------------- gradient flow


def _grads(module: torch.nn.Module) -> list[torch.Tensor | None]:
    return [p.grad for p in module.parameters()]


def test_segdec_multiplier_zero_blocks_decision_gradient() -> None:
    net = SegDecNet(width=0.125, grad_multiplier=0.0)
    _, logit = net(torch.rand(2, 3, 64, 64))
    logit.sum().backward()
    assert all(g is None or torch.count_nonzero(g) == 0 for g in _grads(net.segmentation))
    assert any(g is not None and torch.count_nonzero(g) > 0 for g in _grads(net.decision))


def test_segdec_multiplier_one_lets_decision_gradient_through() -> None:
    net = SegDecNet(width=0.125, grad_multiplier=0.0)
    net.grad_multiplier = 1.0  # an attribute: switchable after construction
    _, logit = net(torch.rand(2, 3, 64, 64))
    logit.sum().backward()
    assert any(g is not None and torch.count_nonzero(g) > 0 for g in _grads(net.segmentation))


def test_gradient_multiply_scales_gradient() -> None:
    x = torch.randn(5, requires_grad=True)
    y = GradientMultiply.apply(x, 0.5)
    torch.testing.assert_close(y, x.detach())
    y.sum().backward()
    torch.testing.assert_close(x.grad, torch.full((5,), 0.5))


def test_wang_decision_gradient_does_not_reach_segmentation() -> None:
    net = Wang2022TwoStage(width=0.25)
    seg, logit = net(torch.rand(2, 3, 32, 32))
    logit.sum().backward()
    assert all(g is None for g in _grads(net.segmentation))
    assert any(g is not None and torch.count_nonzero(g) > 0 for g in _grads(net.decision))
    # the segmentation loss still trains the segmentation net
    net.zero_grad(set_to_none=True)
    seg, _ = net(torch.rand(2, 3, 32, 32))
    seg.mean().backward()
    assert all(g is not None for g in _grads(net.segmentation))


def test_image_decision_net_reads_the_image_and_leaves_segmentation_alone() -> None:
    net = Wang2022ImageTwoStage(width=0.25)
    x = torch.rand(2, 3, 32, 32)
    seg, logit = net(x)
    assert seg.shape == (2, 1, 32, 32) and logit.shape == (2,)
    logit.sum().backward()
    assert all(g is None for g in _grads(net.segmentation))
    assert all(g is not None and torch.count_nonzero(g) > 0 for g in _grads(net.decision.image))
    inputs = net.decision_inputs(x)
    assert len(inputs) == 3 and inputs[2] is x and not inputs[0].requires_grad
    net.eval()
    torch.testing.assert_close(net.decision(*net.decision_inputs(x)), net(x)[1])


def test_unet_decoder_variant_keeps_table1_encoder_and_trains_every_decoder_layer() -> None:
    net = Wang2022UNetTwoStage(in_channels=1, width=0.25)
    table1 = Wang2022SegmentationNet(in_channels=1, width=0.25)
    # the encoder is Table 1's S1-S7, layer for layer; S8-S15 are gone
    assert [tuple(p.shape) for p in net.segmentation.stages.parameters()] == \
        [tuple(p.shape) for p in table1.stages.parameters()]
    assert not hasattr(net.segmentation, "side") and not hasattr(net.segmentation, "fuse")
    x = torch.rand(2, 1, 40, 24)
    seg, logit = net(x)
    assert seg.shape == (2, 1, 40, 24) and logit.shape == (2,)
    _, features = net.segmentation.forward_features(x)
    assert features.shape == (2, net.segmentation.feature_channels, 5, 3)
    seg.mean().backward()
    assert all(g is not None and torch.count_nonzero(g) > 0 for g in _grads(net.segmentation))
    net.zero_grad(set_to_none=True)
    net(x)[1].sum().backward()  # the decision loss never reaches the frozen segmentation net
    assert all(g is None for g in _grads(net.segmentation))
    with pytest.raises(ValueError, match="divisible"):
        net(torch.rand(1, 1, 36, 36))


def test_image_decision_net_learns_from_the_image_alone() -> None:
    """With the segmentation logits and features held at zero, the image is the only input that carries the
    label (here a faint global brightness change, the kind of defect a segmentation map misses)."""
    dec = Wang2022ImageTwoStage(width=0.25).decision
    gen = torch.Generator().manual_seed(0)
    y = (torch.arange(64) % 2).float()
    x = torch.rand(64, 3, 32, 32, generator=gen) * 0.8 + 0.1 * y[:, None, None, None]
    seg, features = torch.zeros(64, 1, 32, 32), torch.zeros(64, 16, 4, 4)
    opt = torch.optim.Adam(dec.parameters(), lr=1e-2)
    for _ in range(30):
        opt.zero_grad()
        torch.nn.functional.binary_cross_entropy_with_logits(dec(seg, features, x), y).backward()
        opt.step()
    dec.eval()
    x_te = torch.rand(64, 3, 32, 32, generator=gen) * 0.8 + 0.1 * y[:, None, None, None]
    with torch.no_grad():
        scores = dec(seg, features, x_te)
    assert scores[y == 1].min() > scores[y == 0].max()  # measured: fully separated


def test_wang_detach_false_lets_gradient_through() -> None:
    net = Wang2022TwoStage(width=0.25, detach=False)
    _, logit = net(torch.rand(2, 3, 32, 32))
    logit.sum().backward()
    assert any(g is not None and torch.count_nonzero(g) > 0 for g in _grads(net.segmentation))


# --------------------------------------------------------------------------- FeatureNorm


def test_feature_norm_quirk_and_standard() -> None:
    x = torch.randn(2, 3, 5, 7) * 4 + 1
    quirk = FeatureNorm(3, quirk=True)(x)
    std, mean = torch.std_mean(x, dim=(2, 3), keepdim=True)
    torch.testing.assert_close(quirk, (x - mean) / (std + 1e-3).sqrt())
    standard = FeatureNorm(3, quirk=False)(x)
    var, mean = torch.var_mean(x, dim=(2, 3), keepdim=True, correction=0)
    torch.testing.assert_close(standard, (x - mean) / (var + 1e-3).sqrt())
    # a 1×1 map stays finite
    assert torch.isfinite(FeatureNorm(3)(torch.randn(2, 3, 1, 1))).all()
    assert count_parameters(FeatureNorm(4, bias=False)) == 4


# --------------------------------------------------------------------------- input checks


@pytest.mark.parametrize(
    ("net", "shape"),
    [
        (Wang2022SegmentationNet(width=0.25), (1, 3, 36, 32)),
        (Wang2022TwoStage(width=0.25), (1, 3, 32, 30)),
        (SegDecNet(width=0.125), (1, 3, 68, 64)),
        (SegDecNet(width=0.125), (1, 3, 56, 64)),  # divisible by 8 but below the 64 minimum
        (UNetGenerator(width=0.5), (1, 3, 40, 32)),
    ],
)
def test_divisibility_errors_name_the_shape(net: torch.nn.Module, shape: tuple[int, ...]) -> None:
    with pytest.raises(ValueError, match=r"divisible by .*" + ", ".join(map(str, shape))) as info:
        net(torch.rand(*shape))
    assert "image_size" in str(info.value)


def test_generator_encode_checks_shape_and_channels() -> None:
    gen = UNetGenerator(in_channels=1, width=0.5)
    with pytest.raises(ValueError, match=r"\(1, 1, 24, 32\)"):
        gen.encode(torch.rand(1, 1, 24, 32))
    with pytest.raises(ValueError, match="input channel"):
        gen(torch.rand(1, 3, 32, 32))


def test_discriminator_too_small_input() -> None:
    with pytest.raises(ValueError, match=r"\(1, 3, 16, 16\)"):
        PatchDiscriminator(width=0.5)(torch.rand(1, 3, 16, 16))


# --------------------------------------------------------------------------- FLOPs


def test_flops_per_image_positive_and_scales_with_area() -> None:
    net = Wang2022TwoStage(width=0.25)
    net.train()
    small = flops_per_image(net, (3, 32, 32))
    big = flops_per_image(net, (3, 64, 64))
    assert small > 0
    assert 3.6 < big / small < 4.4
    assert net.training  # mode restored
    gen = UNetGenerator(width=0.5)
    assert 3.6 < flops_per_image(gen, (3, 64, 64)) / flops_per_image(gen, (3, 32, 32)) < 4.4
    with pytest.raises(ValueError, match="input_shape"):
        flops_per_image(net, (3, 0, 32))
