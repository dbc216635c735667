"""The hook implementations skdefect loads through the ``skdefect`` entry point.

``pyproject.toml`` announces this module::

    [project.entry-points.skdefect]
    extra_losses = "skdefect_extra_losses.plugin"

skdefect's plugin manager imports it and registers it under the entry point's name
(``extra_losses``); each hook returns a mapping ``{name: factory}``. This happens in
every process that resolves a name, each joblib or Dask worker included, so the
module imports nothing heavier than skdefect itself already does (torch, numpy).
Names are global across plugins: none of these may clash with skdefect's built-ins
or another installed plugin.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from skdefect.plugins import hookimpl

from .losses import make_focal_tversky, make_lovasz_hinge, make_tversky
from .nn import make_small_unet
from .sampling import make_class_weighted

LOSSES: dict[str, Callable[..., Any]] = {
    "tversky": make_tversky,
    "focal_tversky": make_focal_tversky,
    "lovasz_hinge": make_lovasz_hinge,
}
SAMPLERS: dict[str, Callable[..., Any]] = {"class_weighted": make_class_weighted}
BACKBONES: dict[str, Callable[..., Any]] = {"small_unet": make_small_unet}


@hookimpl
def skdefect_register_losses() -> dict[str, Callable[..., Any]]:
    """Tversky, focal Tversky and Lovász-hinge pixel losses."""
    return dict(LOSSES)


@hookimpl
def skdefect_register_samplers() -> dict[str, Callable[..., Any]]:
    """The class-weighted (over-sampling) sampler."""
    return dict(SAMPLERS)


@hookimpl
def skdefect_register_backbones() -> dict[str, Callable[..., Any]]:
    """The small U-Net two-stage network."""
    return dict(BACKBONES)
