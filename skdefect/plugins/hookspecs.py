"""The skdefect plugin contract.

skdefect is extended through `pluggy <https://pluggy.readthedocs.io>`_ hooks, under
the project name ``"skdefect"``. A plugin is any object or module carrying functions
marked with :data:`hookimpl`; a third-party package announces one through an entry
point in the group ``skdefect``::

    # pyproject.toml of the plugin package
    [project.entry-points.skdefect]
    my_losses = "my_package.skdefect_plugin"

The built-in losses, samplers and networks are registered through these very hooks
(see :mod:`skdefect.plugins.builtin`), so the path a third-party plugin takes is the
path every run takes.

Every hook returns a mapping ``{name: factory}``. Names are global across plugins of
one kind: two plugins that contribute the same name are an error that names both.
Hook implementations take no arguments (pluggy does not pass default-valued ones).

Factories
---------
A factory is a plain callable; estimators resolve it by name inside ``fit`` (also in
joblib or Dask workers), then call it with keyword arguments. Keyword arguments the
factory's signature does not accept are not passed (unless it takes ``**kwargs``),
so a factory declares exactly the hyperparameters it understands.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Iterable, Mapping
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

import pluggy

if TYPE_CHECKING:  # pragma: no cover
    import numpy as np
    import torch

PROJECT_NAME = "skdefect"
ENTRY_POINT_GROUP = "skdefect"

hookspec = pluggy.HookspecMarker(PROJECT_NAME)
hookimpl = pluggy.HookimplMarker(PROJECT_NAME)


@hookspec
def skdefect_register_losses() -> Mapping[str, Callable[..., Any]]:
    """Contribute named loss factories.

    Return a mapping from a loss name (``"concentrated"``, ``"tversky"`` ...) to a
    factory. Calling the factory with the keyword hyperparameters it accepts returns
    a loss callable ``loss(logits, target) -> Tensor`` that gives **one value per
    sample** (shape ``(n,)``); the caller reduces. Segmentation losses take pixel
    logits ``(n, 1, H, W)`` and a float target of the same shape in ``[0, 1]``.

    These are the pixel losses of the two-stage detector's segmentation net (its
    ``loss`` parameter). The GAN's generator and discriminator terms are not
    registry entries: they are the paper's fixed functions in
    :mod:`skdefect.losses`, weighted by the GAN's ``w_*`` parameters.

    The two-stage detector passes ``gamma`` and ``dice_weight`` to factories that
    accept them, so a base loss can ignore the concentration factor and a
    concentrated loss can read both; when a user sets one of them away from its
    default and the chosen factory does not accept it, ``fit`` warns.

    Example::

        from skdefect.plugins import hookimpl

        @hookimpl
        def skdefect_register_losses():
            return {"tversky": make_tversky_loss}
    """


@hookspec
def skdefect_register_samplers() -> Mapping[str, Callable[..., Any]]:
    """Contribute named minibatch samplers.

    Return a mapping from a sampler name (``"balanced"``, ``"kmeans"`` ...) to a
    factory. Calling the factory with the keyword arguments it accepts
    (``random_state`` always among the offered ones) returns an object with a
    method ``epoch_indices(y, features=None) -> numpy.ndarray`` that lists the
    training indices of one epoch, in order. ``y`` holds the 0/1 labels;
    ``features`` an ``(n, d)`` array a sampler may cluster on: the estimators
    compute it (small down-sampled copies of the images) only for a sampler
    whose ``needs_features`` attribute is true, and pass ``None`` otherwise.
    Samplers must be deterministic for a fixed ``random_state``.
    """


@hookspec
def skdefect_register_backbones() -> Mapping[str, Callable[..., Any]]:
    """Contribute named networks.

    Return a mapping from a network name (``"wang2022"``, ``"segdec"``,
    ``"unet_generator"`` ...) to a factory that builds a :class:`torch.nn.Module`.
    The factory is called with the keyword arguments it accepts out of
    ``in_channels`` and ``width`` (a float scaling channel counts; 1.0 is the
    paper's network) and estimator-specific ones. Modules are plain PyTorch: they
    know nothing of scikit-learn or skorch. The expected ``forward`` depends on the
    role: a two-stage backbone returns ``(seg_logits, decision_logit)``; a
    generator returns ``(reconstruction, latent)``; a discriminator a patch map of
    logits.
    """


KINDS: dict[str, str] = {
    "loss": "skdefect_register_losses",
    "sampler": "skdefect_register_samplers",
    "backbone": "skdefect_register_backbones",
}
"""Plugin kinds and the hook that contributes each."""


# -- the roles: what a factory's product must provide -------------------------------------------------------
@runtime_checkable
class PixelLoss(Protocol):
    """A pixel loss (``loss=...`` of the two-stage detector).

    ``loss(logits, target)``: pixel logits ``(n, 1, H, W)`` and a float target of the same shape in [0, 1]
    give **one value per image**, shape ``(n,)`` (the caller weights and reduces; a scalar is refused, it
    would disable mixed supervision). Factory keywords offered: ``gamma``, ``dice_weight``.
    """

    def __call__(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor: ...


@runtime_checkable
class Sampler(Protocol):
    """A minibatch sampler (``sampler=...`` of both detectors).

    ``epoch_indices(y, features=None)`` returns the training indices of one epoch, in order: a non-empty
    1-D integer array of values in ``[0, len(y))`` (checked at the boundary). Deterministic for a fixed
    ``random_state`` (the one factory keyword always offered). Optional attribute ``needs_features``
    (default False): when true, ``features`` is an ``(n, d)`` float array of small down-sampled copies of
    the images (the k-means sampler clusters them); otherwise ``None``.
    """

    def epoch_indices(self, y: np.ndarray, features: np.ndarray | None = None) -> np.ndarray: ...


@runtime_checkable
class TwoStageBackbone(Protocol):
    """A two-stage network (``backbone=...``); a :class:`torch.nn.Module`.

    Required: submodules ``segmentation`` and ``decision`` (each stage has its own optimizer), and
    ``forward(x) -> (seg_logits (n, 1, h, w), decision_logit (n,))``. Optional, with their defaults:

    - ``input_divisor: int = 1`` and ``min_side: int = input_divisor``: the sides ``image_size`` must have;
    - ``schedule: str = "sequential"`` (segmentation epochs, then decision epochs on the frozen
      segmentation net) or ``"joint"`` (both trained together every epoch, as SegDecNet);
    - ``segment(x) -> seg_logits``: the segmentation alone (default ``forward(x)[0]``);
    - ``decision_inputs(x) -> tuple``: what ``decision(*inputs)`` reads (default: the segmentation logits).

    Factory keywords offered: ``in_channels``, ``width``, ``norm``.
    """

    segmentation: torch.nn.Module
    decision: torch.nn.Module

    def __call__(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]: ...


@runtime_checkable
class Generator(Protocol):
    """The GAN's generator (``generator=...``); a :class:`torch.nn.Module`.

    ``forward(x) -> (reconstruction (n, C, H, W) in the input's range, latent z)`` and ``encode(x) -> z``
    (the latent loss re-encodes reconstructions). Optional: ``input_divisor: int = 1``, ``min_side: int = 1``.
    Factory keywords offered: ``in_channels``, ``width``.
    """

    def __call__(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]: ...

    def encode(self, x: torch.Tensor) -> torch.Tensor: ...


@runtime_checkable
class Discriminator(Protocol):
    """An LSGAN discriminator of the GAN (``discriminator=...``, built twice: normal and anomalous); a
    :class:`torch.nn.Module`. ``forward(x) -> raw scores`` (a patch map ``(n, 1, h, w)`` or ``(n,)``; no
    sigmoid). Optional: ``min_side: int = 1``. Factory keywords offered: ``in_channels``, ``width``.
    """

    def __call__(self, x: torch.Tensor) -> torch.Tensor: ...


# -- how factories are called ----------------------------------------------------------------------------
def call_with_accepted(factory: Callable[..., Any], **offered: Any) -> Any:
    """Call ``factory`` with the offered keyword arguments its signature accepts (all of them if it takes
    ``**kwargs``; none if it has no signature). Every factory of every role is called this way."""
    try:
        params = inspect.signature(factory).parameters
    except (TypeError, ValueError):  # builtins without a signature: offer nothing
        return factory()
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values()):
        return factory(**offered)
    return factory(**{k: v for k, v in offered.items() if k in params})


def ignored_arguments(factory: Callable[..., Any], names: Iterable[str]) -> list[str]:
    """The ``names`` that :func:`call_with_accepted` would not pass to ``factory`` (``fit`` warns when a user
    set such a hyperparameter)."""
    try:
        params = inspect.signature(factory).parameters
    except (TypeError, ValueError):
        return list(names)
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values()):
        return []
    return [n for n in names if n not in params]


def needs_features(sampler: Any) -> bool:
    """Whether a sampler asked for image features (its ``needs_features`` attribute is true)."""
    return bool(getattr(sampler, "needs_features", False))
