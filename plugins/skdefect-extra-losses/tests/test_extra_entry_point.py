"""The entry point: skdefect finds every name of this package, with its origin."""

from __future__ import annotations

import pytest

from skdefect.plugins import SkdefectPluginManager, get_backbone, get_loss, get_sampler

NAMES = {
    "loss": {"tversky", "focal_tversky", "lovasz_hinge"},
    "sampler": {"class_weighted"},
    "backbone": {"small_unet"},
}


@pytest.fixture(scope="module")
def manager():
    return SkdefectPluginManager()  # loads the installed entry points


@pytest.mark.parametrize("kind", sorted(NAMES))
def test_names_are_registered_through_the_entry_point(manager, kind):
    assert NAMES[kind] <= set(manager.names(kind))
    for name in NAMES[kind]:
        origin = manager.get(kind, name).origin
        assert origin.startswith("extra_losses = skdefect_extra_losses.plugin (skdefect-extra-losses ")


def test_resolved_factories_are_this_package():
    from skdefect_extra_losses import losses, nn, sampling

    assert get_loss("tversky") is losses.make_tversky
    assert get_loss("lovasz_hinge") is losses.make_lovasz_hinge
    assert get_sampler("class_weighted") is sampling.make_class_weighted
    assert get_backbone("small_unet") is nn.make_small_unet


def test_the_plugin_alone_registers_without_entry_points():
    import skdefect_extra_losses.plugin as plugin

    pm = SkdefectPluginManager(load_entry_points=False)
    assert "tversky" not in pm.names("loss")
    pm.register(plugin, name="extra_losses_by_hand")
    assert NAMES["loss"] <= set(pm.names("loss"))
    assert pm.get("backbone", "small_unet").origin == "'extra_losses_by_hand' (registered at run time)"
