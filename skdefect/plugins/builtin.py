"""The built-in plugin: skdefect's own losses, samplers and networks.

It is registered by :class:`~skdefect.plugins.manager.SkdefectPluginManager` through
the same hooks a third-party plugin implements, so resolving ``"concentrated"`` takes
the same path as resolving a name from an installed package.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from typing import Any

from .hookspecs import hookimpl

LossFn = Callable[..., Any]


def concentrated(
    gamma: float = 0.5, dice_weight: float = 0.95, detach_factor: bool = True, empty: str = "ignore"
) -> LossFn:
    """(1 − IoU)^γ · (λ·Dice + (1 − λ)·CE): the concentrated-loss paper's Eq. 1-4."""
    from .. import losses

    return partial(
        losses.concentrated_loss, gamma=gamma, dice_weight=dice_weight, detach_factor=detach_factor, empty=empty
    )


def dice_ce(dice_weight: float = 0.95) -> LossFn:
    """λ·Dice + (1 − λ)·CE, the concentrated loss's base loss without the factor."""
    from .. import losses

    return partial(losses.dice_ce_loss, dice_weight=dice_weight)


def dice_on_logits(logits: Any, target: Any) -> Any:
    """Soft Dice loss per image, from logits."""
    from .. import losses

    return losses.dice_loss(logits.sigmoid(), target)


def dice() -> LossFn:
    """Soft Dice loss per image."""
    return dice_on_logits


def bce() -> LossFn:
    """Binary cross-entropy on logits, mean per image (SegDecNet's loss)."""
    from .. import losses

    return losses.bce_with_logits


def focal(gamma: float = 2.0) -> LossFn:
    """Lin et al.'s focal loss, the concentrated loss's inspiration (for ablations)."""
    from .. import losses

    return partial(losses.focal_loss, gamma=gamma)


@hookimpl
def skdefect_register_losses() -> dict[str, Callable[..., LossFn]]:
    return {
        "concentrated": concentrated,
        "dice_ce": dice_ce,
        "dice": dice,
        "bce": bce,
        "focal": focal,
    }




def uniform(random_state: Any = None) -> Any:
    """Every image once per epoch, shuffled."""
    from ..sampling import UniformSampler

    return UniformSampler(random_state=random_state)


def balanced(random_state: Any = None) -> Any:
    """Balanced ("biased") minibatches: minority class + as many LRU majority images."""
    from ..sampling import BalancedSampler

    return BalancedSampler(random_state=random_state)


def kmeans(random_state: Any = None, n_clusters: int = 8, n_per_class: int | None = None) -> Any:
    """k-means cluster sampling within each class (the dual-discriminator GAN paper)."""
    from ..sampling import KMeansClusterSampler

    return KMeansClusterSampler(n_clusters=n_clusters, n_per_class=n_per_class, random_state=random_state)


@hookimpl
def skdefect_register_samplers() -> dict[str, Callable[..., Any]]:
    return {"uniform": uniform, "balanced": balanced, "kmeans": kmeans}


class _Network:
    """Factory building ``skdefect.nn.<module>.<cls>`` (picklable, so estimators pickle)."""

    def __init__(self, module_name: str, cls_name: str, doc: str) -> None:
        self.module_name, self.cls_name = module_name, cls_name
        self.__doc__ = doc

    def __call__(self, in_channels: int = 3, width: float = 1.0, **kwargs: Any) -> Any:
        import importlib

        from .manager import call_with_accepted

        cls = getattr(importlib.import_module(f"skdefect.nn.{self.module_name}"), self.cls_name)
        return call_with_accepted(cls, in_channels=in_channels, width=width, **kwargs)

    def __repr__(self) -> str:
        return f"<network factory skdefect.nn.{self.module_name}.{self.cls_name}>"


@hookimpl
def skdefect_register_backbones() -> dict[str, Callable[..., Any]]:
    return {
        "wang2022": _Network("wang2022", "Wang2022TwoStage", "Table 1 of the concentrated-loss paper."),
        "wang2022_features": _Network(
            "wang2022", "Wang2022FeatureTwoStage",
            "Table 1's segmentation net with a decision net that also reads its features (SegDecNet-style).",
        ),
        "wang2022_image": _Network(
            "wang2022", "Wang2022ImageTwoStage",
            "Table 1's segmentation net with a decision net that reads the image, its features and its map.",
        ),
        "wang2022_select": _Network(
            "wang2022", "Wang2022SelectTwoStage",
            "Table 1's segmentation net with both decision nets (features; image); the validation images choose.",
        ),
        "wang2022_unet": _Network(
            "wang2022", "Wang2022UNetTwoStage",
            "Table 1's encoder with a U-Net decoder and the features decision net (not in the paper).",
        ),
        "segdec": _Network("segdec", "SegDecNet", "Božič et al. 2021 SegDecNet (mixed supervision)."),
        "unet_generator": _Network("gan", "UNetGenerator", "The dual-discriminator GAN's U-Net generator."),
        "patch_discriminator": _Network(
            "gan", "PatchDiscriminator", "The dual-discriminator GAN's patch discriminator."
        ),
    }
