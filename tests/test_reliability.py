"""Reliability: determinism on the CPU, numerical faults that stop training by name, memory over many fits.

Determinism: the same ``random_state`` gives bit-identical scores for both estimators with every built-in sampler,
another seed gives other scores, and fitting never touches the caller's global RNG state. Numerical faults: a NaN
or infinity in any loss term stops ``fit`` with a ``FloatingPointError`` naming the epoch, the batch and the term
that went first. Memory: 20 fits in one process (a ``GridSearchCV(n_jobs=2)`` among them) leave no fitted network
alive and the resident set does not grow beyond a small measured bound.
"""

from __future__ import annotations

import gc
import pickle
import sys
import weakref

import numpy as np
import pytest
import torch
from conftest import tiny_gan, tiny_two_stage
from sklearn.model_selection import GridSearchCV, StratifiedKFold
from skorch.callbacks import Callback

from skdefect import ConcentratedTwoStageDetector, losses
from skdefect.datasets import make_surface_defects
from skdefect.plugins import call_with_accepted, get_plugin_manager, get_sampler, hookimpl

X, Y, MASKS = make_surface_defects(n_samples=32, image_shape=(32, 32), random_state=0, difficulty="easy",
                                   textures=("brick",))
X_FLOAT = (X / 255.0).astype(np.float32)


two_stage, gan = tiny_two_stage, tiny_gan


def fit(det, images=None, y=Y, masks=MASKS):
    """Fit on the shared data (uint8 for the two-stage net, floats in [0, 1] for the GAN) or on ``images``."""
    if isinstance(det, ConcentratedTwoStageDetector):
        return det.fit(X if images is None else images, y, masks=masks)
    return det.fit(X_FLOAT if images is None else images, y)


MAKERS = {"two_stage": two_stage, "gan": gan}


# -- determinism --------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("kind", ["two_stage", "gan"])
@pytest.mark.parametrize("sampler", ["uniform", "balanced", "kmeans"])
def test_same_seed_identical_other_seed_different_for_every_sampler(kind, sampler):
    def make(seed):
        if kind == "two_stage":  # both stages, one epoch each
            return two_stage(sampler=sampler, random_state=seed, seg_epochs=1, dec_epochs=1)
        return gan(sampler=sampler, random_state=seed, epochs=2)

    a, b, c = (fit(make(seed)).decision_function(X) for seed in (0, 0, 1))
    np.testing.assert_array_equal(a, b)  # bit for bit on the CPU
    assert not np.allclose(a, c)  # the seed reaches initialisation and sampling


@pytest.mark.parametrize("kind", ["two_stage", "gan"])
def test_fit_leaves_the_callers_global_rng_state_alone(kind):
    torch.manual_seed(123)
    np.random.seed(123)  # noqa: NPY002 - the legacy global state is what callers may rely on
    torch_state, numpy_state = torch.get_rng_state(), np.random.get_state()  # noqa: NPY002
    fit(gan(epochs=1) if kind == "gan" else two_stage(seg_epochs=1, dec_epochs=1))
    assert torch.equal(torch.get_rng_state(), torch_state)
    after = np.random.get_state()  # noqa: NPY002
    assert after[0] == numpy_state[0] and np.array_equal(after[1], numpy_state[1]) and after[2:] == numpy_state[2:]


def test_random_state_none_is_not_reproducible_and_a_seeded_randomstate_is():
    a = fit(gan(random_state=None, epochs=1)).decision_function(X)
    b = fit(gan(random_state=None, epochs=1)).decision_function(X)
    assert not np.array_equal(a, b)
    c = fit(gan(random_state=np.random.RandomState(5), epochs=1)).decision_function(X)
    d = fit(gan(random_state=np.random.RandomState(5), epochs=1)).decision_function(X)
    np.testing.assert_array_equal(c, d)


@pytest.mark.parametrize("name", ["uniform", "balanced", "kmeans"])
def test_sampler_sequences_depend_on_the_seed_and_survive_pickling(name):
    """Checkpoints pickle the sampler: the unpickled copy must continue the very same sequence."""
    y = np.array([0] * 20 + [1] * 7)
    features = np.random.default_rng(0).normal(size=(27, 4))

    def make(seed):
        return call_with_accepted(get_sampler(name), random_state=seed)

    s0, s0_again, s1 = make(0), make(0), make(1)
    first = [s0.epoch_indices(y, features) for _ in range(3)]
    assert all(np.array_equal(a, s0_again.epoch_indices(y, features)) for a in first)
    assert not all(np.array_equal(a, s1.epoch_indices(y, features)) for a in first)
    copy = pickle.loads(pickle.dumps(s0))
    for _ in range(3):
        np.testing.assert_array_equal(copy.epoch_indices(y, features), s0.epoch_indices(y, features))


# -- numerical faults ---------------------------------------------------------------------------------------------
class EpochTracker(Callback):
    """Publishes the current epoch number (1-based, as in skorch's history) to the poisoned losses."""

    current = 0

    def on_epoch_begin(self, net, **kwargs):  # noqa: ANN001
        EpochTracker.current = len(net.history)


def poisoned(loss, epoch: int, value: float = float("nan")):
    """``loss`` that returns ``value`` (NaN or inf) from epoch ``epoch`` on."""

    def wrapped(*args, **kwargs):
        out = loss(*args, **kwargs)
        return out * value if EpochTracker.current >= epoch else out

    return wrapped


class PoisonedLossPlugin:
    """A third-party-style plugin whose segmentation loss goes NaN in epoch 2."""

    @hookimpl
    def skdefect_register_losses(self):
        def concentrated_nan_in_epoch_2(gamma: float = 0.5, dice_weight: float = 0.95):
            from skdefect.plugins.builtin import concentrated

            return poisoned(concentrated(gamma=gamma, dice_weight=dice_weight), epoch=2)

        return {"nan_in_epoch_2": concentrated_nan_in_epoch_2}


@pytest.fixture
def poisoned_loss_plugin():
    manager = get_plugin_manager()
    name = manager.register(PoisonedLossPlugin(), name="poisoned-loss-test-plugin")
    yield
    manager.unregister(name)


def test_nan_from_a_plugin_loss_stops_two_stage_training_naming_epoch_and_term(poisoned_loss_plugin):
    det = fit(two_stage())
    scores = det.decision_function(X)
    det.set_params(loss="nan_in_epoch_2", callbacks=[EpochTracker()])
    with pytest.raises(FloatingPointError, match=r"epoch 2: loss term 'seg_loss' is nan in batch 1 of \d+, the"):
        fit(det)
    np.testing.assert_array_equal(det.decision_function(X), scores)  # the earlier fit is kept intact


def test_inf_in_the_decision_stage_names_the_decision_term(monkeypatch):
    import torch.nn.functional as F

    monkeypatch.setattr(F, "binary_cross_entropy_with_logits",
                        poisoned(F.binary_cross_entropy_with_logits, epoch=4, value=float("inf")))
    # the CPU default trains two decision heads, each with its own term; both are poisoned, the first is named
    first = r"epoch 4: loss term 'dec_loss_features' is inf in batch 1 of \d+, the first non-finite term; "
    with pytest.raises(FloatingPointError, match=first + r"non-finite after it: 'dec_loss_image'"):
        fit(two_stage(seg_epochs=2, dec_epochs=3, callbacks=[EpochTracker()]))
    with pytest.raises(FloatingPointError, match=r"epoch 4: loss term 'dec_loss' is inf in batch 1 of"):
        fit(two_stage(seg_epochs=2, dec_epochs=3, backbone="wang2022_features", callbacks=[EpochTracker()]))


@pytest.mark.parametrize(
    "function, term, later",
    [
        ("latent_loss", "g_latent", "d_normal"),  # the NaN generator then poisons the discriminators
        ("l1_reconstruction_loss", "g_l1", "d_normal"),
        ("abc_loss_of_error", "g_abc", "d_anomalous"),  # the anomaly group: runs on a random share of the batches
        ("lsgan_discriminator_loss", "d_normal", "g_adv"),  # D_N and D_A both go NaN in the same batch
    ],
)
def test_nan_in_any_gan_term_stops_training_naming_epoch_and_the_first_term(monkeypatch, function, term, later):
    monkeypatch.setattr(losses, function, poisoned(getattr(losses, function), epoch=2))
    with pytest.raises(FloatingPointError) as info:
        fit(gan(callbacks=[EpochTracker()]))
    message = str(info.value)
    assert message.startswith(f"training diverged in epoch 2: loss term '{term}' is nan in batch ")
    assert f"'{later}'" in message.split("non-finite after it:")[1]  # where the NaN spread to, listed after it


# -- memory -------------------------------------------------------------------------------------------------------
def _rss_mib() -> float:
    """Resident set size after a full collection, with freed heap handed back to the OS first (glibc)."""
    import ctypes
    import os

    gc.collect()
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):  # not glibc: measure as is
        pass
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


@pytest.mark.slow
@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc/self/statm")
def test_twenty_fits_keep_no_network_alive_and_memory_flat():
    """Measured on the CPU (2 shared cores, torch 2.13): RSS after warm-up 473.6 MiB, after 16 more fits and a
    second grid search 475.5 MiB (+1.9 MiB). Keeping every fitted estimator alive instead grew it by 24.5 MiB
    (about 3 MiB per two-stage + GAN pair: the networks, their Adam moments, the training arrays), so the bound
    of 10 MiB has 5x margin over the noise and still catches that leak."""

    def data():  # fresh arrays every fit: a leaked training source would keep them alive too
        return X.astype(np.float32) / 255.0, Y.copy(), MASKS.copy()

    def grid_search():
        Xf, y, _ = data()
        search = GridSearchCV(gan(epochs=1), {"w_abc": [0.0, 0.5]}, scoring="average_precision",
                              cv=StratifiedKFold(2, shuffle=True, random_state=0), n_jobs=2)
        return search.fit(Xf, y)

    alive: list[weakref.ref] = []

    def track(det):
        alive.extend(weakref.ref(getattr(det.net_, name + "_")) for name in det.net_._modules)
        alive.extend(weakref.ref(getattr(det.net_, name + "_")) for name in det.net_._optimizers)
        alive.append(weakref.ref(det.net_))

    # warm-up: torch's allocator and kernels, k-means, the loky workers of n_jobs=2
    track(fit(two_stage(seg_epochs=2, dec_epochs=1), *data()))
    track(fit(gan(epochs=2), *data()[:2]))
    track(grid_search().best_estimator_)
    baseline = _rss_mib()
    for seed in range(8):
        track(fit(two_stage(seg_epochs=2, dec_epochs=1, random_state=seed), *data()))
        track(fit(gan(epochs=2, random_state=seed), *data()[:2]))
    track(grid_search().best_estimator_)
    growth = _rss_mib() - baseline
    leaked = sum(ref() is not None for ref in alive)
    assert leaked == 0, f"{leaked} networks/optimizers/nets of finished fits are still alive"
    assert growth < 10.0, f"RSS grew by {growth:.1f} MiB over 16 fits and a grid search"
