"""The plugin layer: built-ins through the hooks, entry points, conflicts, faults."""

from __future__ import annotations

import sys
import textwrap
import warnings

import numpy as np
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

BUILTIN_LOSSES = {"concentrated", "dice_ce", "dice", "bce", "focal"}  # pixel losses only: the GAN's terms are not


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
    for name in ("concentrated", "focal", "bce", "balanced", "kmeans", "wang2022"):
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


def test_a_gan_term_is_not_a_pixel_loss_of_the_two_stage_detector():
    """The registry's losses are pixel losses: loss='abc' is a clear error, not a silently wrong objective."""
    from skdefect import ConcentratedTwoStageDetector
    from skdefect.datasets import make_surface_defects

    X, y, masks = make_surface_defects(8, (16, 16), random_state=0)
    for name in ("abc", "l1", "lsgan_generator"):
        with pytest.raises(ValueError, match=rf"loss='{name}': .*concentrated"):
            ConcentratedTwoStageDetector(loss=name, seg_epochs=1, dec_epochs=1).fit(X, y, masks=masks)


def test_a_hyperparameter_the_chosen_loss_does_not_take_is_a_warning():
    from skdefect import ConcentratedTwoStageDetector
    from skdefect.datasets import make_surface_defects

    X, y, masks = make_surface_defects(16, (16, 16), random_state=0)
    kw = dict(seg_epochs=1, dec_epochs=1, width=0.25, validation_fraction=0.0, device="cpu", random_state=0)
    with pytest.warns(UserWarning, match=r"loss='bce' does not take gamma: gamma=2\.0 has no effect"):
        ConcentratedTwoStageDetector(loss="bce", gamma=2.0, **kw).fit(X, y, masks=masks)
    with warnings.catch_warnings():
        warnings.simplefilter("error", UserWarning)  # defaults, or a loss that takes them: silence
        ConcentratedTwoStageDetector(loss="bce", **kw).fit(X, y, masks=masks)
        ConcentratedTwoStageDetector(loss="concentrated", gamma=2.0, **kw).fit(X, y, masks=masks)


class _FeatureSampler:
    """A third-party sampler that asks for features (a clustering sampler of its own)."""

    needs_features = True
    seen: list = []

    def __init__(self, random_state=None):
        self.rng = np.random.default_rng(0)

    def epoch_indices(self, y, features=None):
        _FeatureSampler.seen.append(features)
        return self.rng.permutation(len(y))


class _FeatureSamplerPlugin:
    @hookimpl
    def skdefect_register_samplers(self):
        return {"needs_features_test": _FeatureSampler, "plain_test": lambda random_state=None: _Plain()}


class _Plain:
    seen: list = []

    def epoch_indices(self, y, features=None):
        _Plain.seen.append(features)
        return np.arange(len(y))


@pytest.mark.parametrize("detector", ["two_stage", "gan"])
def test_a_third_party_sampler_that_declares_features_gets_them(detector):
    from skdefect import ConcentratedTwoStageDetector, DualDiscriminatorGANDetector
    from skdefect.datasets import make_surface_defects

    X, y, masks = make_surface_defects(16, (32, 32), random_state=0)
    manager = get_plugin_manager()
    manager.register(_FeatureSamplerPlugin(), name="feature_sampler_test")
    try:
        for name, cls in (("needs_features_test", _FeatureSampler), ("plain_test", _Plain)):
            cls.seen.clear()
            if detector == "two_stage":
                ConcentratedTwoStageDetector(sampler=name, seg_epochs=1, dec_epochs=1, width=0.25,
                                             validation_fraction=0.0, device="cpu").fit(X, y, masks=masks)
            else:
                DualDiscriminatorGANDetector(sampler=name, epochs=1, width=0.25, image_size=32, patch_size=8,
                                             patch_stride=8, top_n=2, validation_fraction=0.0,
                                             device="cpu").fit(X, y)
            assert cls.seen, "the sampler was not used"
            if cls is _FeatureSampler:
                assert all(f is not None and f.shape[0] == len(X) and f.ndim == 2 for f in cls.seen)
            else:
                assert all(f is None for f in cls.seen)
    finally:
        manager.unregister("feature_sampler_test")


class _BrokenSampler:
    def __init__(self, result):
        self.result = result

    def epoch_indices(self, y, features=None):
        return self.result


class _BrokenPlugin:
    @hookimpl
    def skdefect_register_samplers(self):
        return {
            "empty_test": lambda random_state=None: _BrokenSampler(np.array([], dtype=np.int64)),
            "out_of_range_test": lambda random_state=None: _BrokenSampler(np.array([0, 1, 999])),
            "float_test": lambda random_state=None: _BrokenSampler(np.array([0.0, 1.0])),
        }

    @hookimpl
    def skdefect_register_losses(self):
        return {"scalar_test": lambda: (lambda logits, target: (logits.sigmoid() - target).abs().mean())}


@pytest.mark.parametrize(("kw", "exc", "message"), [
    ({"sampler": "empty_test"}, ValueError, r"sampler .*_BrokenSampler: epoch_indices returned an empty epoch"),
    ({"sampler": "out_of_range_test"}, ValueError, r"indices in \[0, 999\]; the training set has 16 images"),
    ({"sampler": "float_test"}, TypeError, r"must return a 1-D integer array; got dtype float64"),
    ({"loss": "scalar_test"}, ValueError, r"must return one value per image, shape \(\d+,\); got \(\)"),
])
def test_plugins_that_break_the_contract_are_named(kw, exc, message):
    from sklearn.exceptions import NotFittedError

    from skdefect import ConcentratedTwoStageDetector
    from skdefect.datasets import make_surface_defects

    X, y, masks = make_surface_defects(16, (16, 16), random_state=0)
    manager = get_plugin_manager()
    manager.register(_BrokenPlugin(), name="broken_test")
    try:
        det = ConcentratedTwoStageDetector(seg_epochs=1, dec_epochs=1, width=0.25, validation_fraction=0.0,
                                           device="cpu", **kw)
        with pytest.raises(exc, match=message):
            det.fit(X, y, masks=masks)
        with pytest.raises(NotFittedError):
            det.predict(X)
    finally:
        manager.unregister("broken_test")


def test_every_registered_plugin_fits_its_role_in_the_contract():
    """hookspecs.py declares each role as a Protocol; every registered factory (built-in and the installed
    third-party package) builds an object of its role."""
    from skdefect.plugins import call_with_accepted, hookspecs, list_plugins

    roles = {"wang2022": hookspecs.TwoStageBackbone, "wang2022_features": hookspecs.TwoStageBackbone,
             "wang2022_image": hookspecs.TwoStageBackbone, "wang2022_unet": hookspecs.TwoStageBackbone,
             "wang2022_select": hookspecs.TwoStageBackbone,
             "segdec": hookspecs.TwoStageBackbone, "unet_generator": hookspecs.Generator,
             "patch_discriminator": hookspecs.Discriminator}
    checked = set()
    for entry in list_plugins():
        product = call_with_accepted(entry.factory, in_channels=1, width=0.25, random_state=0)
        if entry.kind == "loss":
            assert isinstance(product, hookspecs.PixelLoss), entry.name
        elif entry.kind == "sampler":
            assert isinstance(product, hookspecs.Sampler), entry.name
        elif entry.name in roles:
            assert isinstance(product, roles[entry.name]), entry.name
        else:
            continue
        checked.add(entry.kind)
    assert checked == {"loss", "sampler", "backbone"}
