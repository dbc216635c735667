"""The plugin layer: built-ins through the hooks, entry points, conflicts, faults."""

from __future__ import annotations

import sys
import textwrap
import warnings

import pytest

from skdefect.cli import main
from skdefect.plugins import (
    PluginConflictError,
    PluginWarning,
    SkdefectPluginManager,
    call_with_accepted,
    get_loss,
    get_plugin_manager,
    hookimpl,
)

BUILTIN_LOSSES = {
    "concentrated", "dice_ce", "dice", "bce", "focal", "l1", "patch", "latent", "abc",
    "lsgan_discriminator", "lsgan_generator", "anomaly_adversarial",
}


def _tversky_factory(alpha: float = 0.3):
    def loss(logits, target):
        return (logits.sigmoid() - target).abs().flatten(1).mean(1) * alpha

    return loss


class TverskyPlugin:
    @hookimpl
    def skdefect_register_losses(self):
        return {"tversky_test": _tversky_factory}


@pytest.fixture
def manager():
    pm = SkdefectPluginManager(load_entry_points=False)
    yield pm


@pytest.fixture
def tversky_plugin(manager):
    name = manager.register(TverskyPlugin(), name="tversky-test-plugin")
    yield manager
    manager.unregister(name)


def test_builtins_are_registered_through_the_hooks(manager):
    assert BUILTIN_LOSSES <= set(manager.names("loss"))
    assert {"uniform", "balanced", "kmeans"} <= set(manager.names("sampler"))
    assert {"wang2022", "segdec", "unet_generator", "patch_discriminator"} <= set(manager.names("backbone"))
    entry = manager.get("loss", "concentrated")
    assert entry.origin == "skdefect (built-in)"
    assert entry.kind == "loss"


def test_global_get_loss_resolves_a_working_loss():
    import torch

    loss = get_loss("concentrated")(gamma=0.0, dice_weight=1.0)
    logits = torch.zeros(2, 1, 8, 8)
    target = torch.zeros(2, 1, 8, 8)
    target[0, :, 2:5, 2:5] = 1
    out = loss(logits, target)
    assert out.shape == (2,)
    assert torch.isfinite(out).all()


def test_unknown_name_lists_available(manager):
    with pytest.raises(ValueError, match="unknown loss 'nope'.*concentrated"):
        manager.get("loss", "nope")
    with pytest.raises(ValueError, match="kind must be one of"):
        manager.get("optimizer", "adam")
    with pytest.raises(TypeError, match="by name"):
        manager.get("loss", 3)


def test_registered_plugin_is_resolved_and_removed(tversky_plugin):
    entry = tversky_plugin.get("loss", "tversky_test")
    assert entry.origin == "'tversky-test-plugin' (registered at run time)"
    tversky_plugin.unregister("tversky-test-plugin")
    with pytest.raises(ValueError, match="unknown loss"):
        tversky_plugin.get("loss", "tversky_test")
    tversky_plugin.register(TverskyPlugin(), name="tversky-test-plugin")  # for the fixture's teardown


def test_duplicate_name_names_both_origins(manager):
    class Dup:
        @hookimpl
        def skdefect_register_losses(self):
            return {"concentrated": _tversky_factory}

    manager.register(Dup(), name="dup-plugin")
    with pytest.raises(PluginConflictError, match=r"'concentrated'.*skdefect \(built-in\).*'dup-plugin'"):
        manager.get("loss", "concentrated")
    manager.unregister("dup-plugin")
    assert manager.get("loss", "concentrated").origin == "skdefect (built-in)"


def test_raising_hook_warns_and_others_still_load(manager):
    class Broken:
        @hookimpl
        def skdefect_register_losses(self):
            raise RuntimeError("boom")

    manager.register(Broken(), name="broken-plugin")
    with pytest.warns(PluginWarning, match="broken-plugin.*RuntimeError: boom"):
        names = manager.names("loss")
    assert BUILTIN_LOSSES <= set(names)


def test_malformed_hook_return_warns(manager):
    class Bad:
        @hookimpl
        def skdefect_register_samplers(self):
            return ["not", "a", "mapping"]

        @hookimpl
        def skdefect_register_backbones(self):
            return {"x": "not callable"}

    manager.register(Bad(), name="bad-plugin")
    with pytest.warns(PluginWarning) as record:
        assert "balanced" in manager.names("sampler")
    messages = " | ".join(str(w.message) for w in record)
    assert "must return a mapping" in messages and "'x' is not a str -> callable pair" in messages
    assert "x" not in manager.names("backbone")


def test_call_with_accepted_filters_keywords():
    def f(a, b=2):
        return a, b

    def g(**kw):
        return kw

    assert call_with_accepted(f, a=1, c=3) == (1, 2)
    assert call_with_accepted(g, a=1, c=3) == {"a": 1, "c": 3}


def _write_dist(tmp_path, dist_name, module_name, body, ep_value=None):
    pkg = tmp_path / module_name
    pkg.mkdir()
    (pkg / "__init__.py").write_text(textwrap.dedent(body))
    info = tmp_path / f"{dist_name.replace('-', '_')}-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {dist_name}\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text(f"[skdefect]\n{module_name} = {ep_value or module_name}\n")


@pytest.fixture
def on_sys_path(tmp_path):
    sys.path.insert(0, str(tmp_path))
    yield tmp_path
    sys.path.remove(str(tmp_path))
    for mod in [m for m in sys.modules if m.startswith("skdefect_tmp_")]:
        del sys.modules[mod]


def test_real_entry_point_distribution_is_loaded(on_sys_path):
    _write_dist(
        on_sys_path,
        "skdefect-tmp-plugin",
        "skdefect_tmp_plugin",
        """
        from skdefect.plugins import hookimpl

        def make_scaled_l1(scale: float = 2.0):
            def loss(logits, target):
                return scale * (logits.sigmoid() - target).abs().flatten(1).mean(1)
            return loss

        @hookimpl
        def skdefect_register_losses():
            return {"scaled_l1": make_scaled_l1}
        """,
    )
    pm = SkdefectPluginManager()
    entry = pm.get("loss", "scaled_l1")
    assert "skdefect-tmp-plugin 0.1" in entry.origin
    assert "skdefect_tmp_plugin" in entry.origin
    import torch

    loss = entry.factory(scale=3.0)
    value = loss(torch.zeros(1, 1, 2, 2), torch.ones(1, 1, 2, 2))
    assert value.item() == pytest.approx(1.5)


def test_entry_point_that_fails_to_import_warns(on_sys_path):
    body = "raise ImportError('missing dep')\n"
    _write_dist(on_sys_path, "skdefect-tmp-broken", "skdefect_tmp_broken", body)
    with pytest.warns(PluginWarning, match="skdefect-tmp-broken.*failed to import.*missing dep"):
        pm = SkdefectPluginManager()
    assert "concentrated" in pm.names("loss")


def test_cli_plugins_lists_builtin_losses(capsys):
    assert main(["plugins"]) == 0
    out = capsys.readouterr().out
    for name in ("concentrated", "focal", "patch", "abc", "balanced", "kmeans", "wang2022"):
        assert name in out
    assert "skdefect (built-in)" in out
    assert main(["plugins", "--kind", "sampler"]) == 0
    out = capsys.readouterr().out
    assert "kmeans" in out and "concentrated" not in out


def test_global_manager_is_a_singleton():
    assert get_plugin_manager() is get_plugin_manager()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        get_plugin_manager().names("loss")
