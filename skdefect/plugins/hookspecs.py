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

from collections.abc import Callable, Mapping
from typing import Any

import pluggy

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
