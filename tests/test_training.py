"""Training that converges the skorch way: validation, stages, early stopping, schedules, users' callbacks.

Each skorch callback a user passes must have its effect on every optimizer and every stage of both detectors.
"""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch
from conftest import tiny_gan, tiny_two_stage
from skorch.callbacks import Callback, EarlyStopping, GradientNormClipping, LRScheduler

from skdefect import ConcentratedTwoStageDetector
from skdefect._base import holdout_split
from skdefect.datasets import make_surface_defects

X, Y, MASKS = make_surface_defects(n_samples=60, image_shape=(32, 32), random_state=0, difficulty="easy",
                                   textures=("brick",))


def two_stage(**kw):
    return tiny_two_stage(**{"seg_epochs": 3, "dec_epochs": 3, **kw})


def gan(**kw):
    return tiny_gan(**{"batch_size": 16, **kw})


def fit(det, one_class=False):
    if isinstance(det, ConcentratedTwoStageDetector):
        return det.fit(X, Y, masks=MASKS)
    return det.fit(X[Y == 0]) if one_class else det.fit(X, Y)


def clone_params(det) -> dict:
    from sklearn.base import clone

    return clone(det).get_params()


def stages(det) -> list[str]:
    return [row["event_stage"] for row in det.net_.history]


# -- the hold-out split -------------------------------------------------------------------------------------------
def test_holdout_split_is_stratified_disjoint_and_never_empties_a_class():
    y = np.r_[np.zeros(50, int), np.ones(10, int)]
    train, valid = holdout_split(y, 0.2, seed=0)
    assert len(np.intersect1d(train, valid)) == 0 and len(train) + len(valid) == 60
    assert (y[valid] == 0).sum() == 10 and (y[valid] == 1).sum() == 2
    train, valid = holdout_split(np.r_[np.zeros(5, int), 1], 0.2, seed=0)  # a class of one stays in training
    assert (np.r_[np.zeros(5, int), 1][train] == 1).sum() == 1
    assert holdout_split(y, 0.0, seed=0)[1] is None
    np.testing.assert_array_equal(holdout_split(y, 0.2, seed=3)[1], holdout_split(y, 0.2, seed=3)[1])


def test_holdout_split_with_groups_keeps_each_group_on_one_side():
    rng = np.random.RandomState(0)
    for seed in range(20):
        groups = rng.randint(0, 25, size=120)
        y = (groups % 4 == 0).astype(int)  # a group holds one class, as a tile's captures do
        y[rng.randint(0, 120, size=3)] = 1  # ... or both
        train, valid = holdout_split(y, 0.2, seed, groups)
        assert len(np.intersect1d(train, valid)) == 0 and len(train) + len(valid) == 120
        assert len(np.intersect1d(groups[train], groups[valid])) == 0
        for c in (0, 1):  # about the fraction of each class, and never all of it
            share = (y[valid] == c).sum() / (y == c).sum()
            assert 0.05 <= share <= 0.5 and (y[train] == c).any()
        np.testing.assert_array_equal(holdout_split(y, 0.2, seed, groups)[1], valid)
    # a class whose images all share one group cannot be split: it stays in training
    y = np.r_[np.zeros(40, int), np.ones(8, int)]
    train, valid = holdout_split(y, 0.2, 0, np.r_[np.arange(40) // 4, np.full(8, 99)])
    assert (y[valid] == 1).sum() == 0 and (y[train] == 1).sum() == 8 and (y[valid] == 0).sum() >= 8


@pytest.mark.parametrize("make", [two_stage, gan], ids=["two-stage", "gan"])
def test_groups_reach_the_holdout_of_fit(make, monkeypatch):
    import skdefect._base as base

    seen = []

    def spy(y, fraction, seed, groups=None):
        seen.append((groups, holdout_split(y, fraction, seed, groups)))
        return seen[-1][1]

    monkeypatch.setattr(base, "holdout_split", spy)
    tiles = np.arange(len(X)) // 3  # every "part" photographed three times
    det = make(**({"seg_epochs": 1, "dec_epochs": 1} if make is two_stage else {"epochs": 1}))
    det.fit(X, Y, masks=MASKS, groups=tiles) if make is two_stage else det.fit(X, Y, groups=tiles)
    codes, (train, valid) = seen[-1]
    np.testing.assert_array_equal(codes, tiles)
    assert len(valid) and len(np.intersect1d(tiles[train], tiles[valid])) == 0


def test_grid_search_with_metadata_routing_hands_groups_to_the_splitter_and_the_holdout(monkeypatch):
    import sklearn
    from sklearn.model_selection import GridSearchCV, GroupKFold

    import skdefect._base as base

    seen = []
    monkeypatch.setattr(base, "holdout_split", lambda y, f, s, groups=None: seen.append(groups) or
                        holdout_split(y, f, s, groups))
    tiles = np.arange(len(X)) // 3
    with sklearn.config_context(enable_metadata_routing=True):
        det = gan(epochs=1).set_fit_request(groups=True)
        GridSearchCV(det, {"w_abc": [0.5]}, cv=GroupKFold(2), scoring="roc_auc").fit(X, Y, groups=tiles)
    # each fold's fit gets its own images' groups (GroupKFold kept every part on one side), then the refit all
    assert [len(np.unique(g)) for g in seen] == [10, 10, 20]


@pytest.mark.parametrize("groups, match", [
    (np.arange(59), r"groups and X must have the same length: groups has 59 labels .* X has 60 images"),
    (np.zeros((60, 2)), r"groups must be 1-D of shape \(n_samples,\)"),
    (np.r_[np.arange(59.0), np.nan], r"groups must give every image a group label; got a missing value .* 59"),
])
def test_bad_groups_are_refused_before_training_and_keep_a_fitted_detector(groups, match):
    det = fit(gan(epochs=1))
    before = det.decision_function(X[:5])
    with pytest.raises(ValueError, match=match):
        det.fit(X, Y, groups=groups)
    np.testing.assert_array_equal(det.decision_function(X[:5]), before)
    with pytest.raises(ValueError, match=match):
        two_stage().fit(X, Y, masks=MASKS, groups=groups)


def test_validation_losses_and_ap_are_recorded_per_stage():
    det = fit(two_stage())
    history = det.net_.history
    assert stages(det) == ["segmentation"] * 3 + ["decision"] * 3
    assert all(np.isfinite(row["valid_loss"]) for row in history)
    assert all("valid_ap" in row for row in history[3:])  # decision logits of the 12 validation images
    ends = [row["event_stage_end"] for row in history if "event_stage_end" in row]
    assert [e["stage"] for e in ends] == ["segmentation", "decision"]
    # the 20 % hold-out is the training data the networks never saw: 48 train, 12 validation images
    assert history[0, "train_batch_count"] * 8 >= 48 > (history[0, "train_batch_count"] - 1) * 8
    # a term that is the stage's loss shows the loss's value (both batch-size weighted; 12 = 8 + 4 images); the CPU
    # default's decision stage trains two heads: its loss is their sum, valid_dec_loss (its monitor) the lower one
    for row in history[:3]:
        assert row["valid_seg_loss"] == pytest.approx(row["valid_loss"], rel=1e-6)
    for row in history[3:]:
        heads = [row["valid_dec_loss_features"], row["valid_dec_loss_image"]]
        assert sum(heads) == pytest.approx(row["valid_loss"], rel=1e-6)
        assert row["valid_dec_loss"] == min(heads)


def test_without_validation_nothing_is_held_out_and_no_stage_stops_early():
    det = fit(two_stage(validation_fraction=0.0, n_iter_no_change=1))
    assert "valid_loss" not in det.net_.history[-1]
    assert stages(det) == ["segmentation"] * 3 + ["decision"] * 3


# -- built-in early stopping restores the best weights of each stage -----------------------------------------------
class Snapshots(Callback):
    """The segmentation net's weights at every epoch's end."""

    def __init__(self, store: dict):
        self.store = store

    def on_epoch_end(self, net, **kwargs):  # noqa: ANN001
        self.store[len(net.history)] = copy.deepcopy(net.module_.segmentation.state_dict())


def test_each_stage_ends_with_its_best_epochs_weights():
    snaps: dict = {}
    det = fit(two_stage(seg_epochs=8, dec_epochs=2, lr=0.05, seg_monitor="valid_loss", callbacks=[Snapshots(snaps)]))
    end = next(row["event_stage_end"] for row in det.net_.history if "event_stage_end" in row)
    valid = det.net_.history[: end["epochs"], "valid_loss"]
    assert end["best_epoch"] == int(np.argmin(valid)) + 1
    final = det.net_.module_.segmentation.state_dict()
    best = snaps[end["best_epoch"]]
    assert all(torch.equal(final[k], best[k]) for k in final)


@pytest.mark.parametrize("monitor", ["valid_ap", "valid_pixel_ap"])
def test_seg_monitor_judges_the_segmentation_stage_by_the_ranking_of_its_maps(monitor):
    """The segmentation stage records valid_ap (validation images ranked by their largest pixel logit) in every fit,
    valid_pixel_ap (every validation pixel ranked) when it is the monitor; with seg_monitor set to one, the stage's
    best epoch is the one where it is highest, and its weights are kept. Training itself is the same."""
    snaps: dict = {}
    det = fit(two_stage(seg_epochs=8, dec_epochs=2, lr=0.05, seg_monitor=monitor, callbacks=[Snapshots(snaps)]))
    end = next(row["event_stage_end"] for row in det.net_.history if "event_stage_end" in row)
    assert end["monitor"] == monitor
    ap = det.net_.history[: end["epochs"], monitor]
    assert all(0.0 <= v <= 1.0 for v in ap) and len(set(ap)) > 1
    assert end["best_epoch"] == int(np.argmax(ap)) + 1 and end["best"] == pytest.approx(max(ap))
    final = det.net_.module_.segmentation.state_dict()
    assert all(torch.equal(final[k], snaps[end["best_epoch"]][k]) for k in final)
    by_loss = fit(two_stage(seg_epochs=8, dec_epochs=2, lr=0.05, seg_monitor="valid_loss"))
    seg_rows = by_loss.net_.history[: end["epochs"]]
    assert [r["valid_loss"] for r in seg_rows] == det.net_.history[: end["epochs"], "valid_loss"]
    assert [r["valid_ap"] for r in seg_rows] == det.net_.history[: end["epochs"], "valid_ap"]
    assert not any("valid_pixel_ap" in r for r in seg_rows)  # computed only when it judges
    assert clone_params(det)["seg_monitor"] == monitor and det.seg_monitor_ == monitor


@pytest.mark.parametrize("kw, resolved", [
    ({}, "valid_pixel_ap"),
    ({"validation_fraction": 0.0}, "valid_loss"),  # nothing to rank
    ({"backbone": "segdec", "loss": "bce", "image_size": 64, "width": 0.25}, "valid_loss"),  # a joint stage: its loss
])
def test_seg_monitor_auto_ranks_the_validation_pixels_where_there_are_some(kw, resolved):
    """The default judges the segmentation stage by its validation pixels' AP, and trains exactly as that
    setting does; without validation defect pixels (or for SegDecNet's joint stage) by the loss."""
    det = fit(two_stage(seg_epochs=3, dec_epochs=1, **kw))
    assert det.seg_monitor == "auto" and det.seg_monitor_ == resolved
    if not kw:
        end = next(row["event_stage_end"] for row in det.net_.history if "event_stage_end" in row)
        assert end["monitor"] == "valid_pixel_ap"
        explicit = fit(two_stage(seg_epochs=3, dec_epochs=1, seg_monitor="valid_pixel_ap"))
        np.testing.assert_array_equal(det.decision_function(X[:6]), explicit.decision_function(X[:6]))
        # the validation images' masks unknown (mixed supervision): no validation pixel to rank
        unknown = two_stage(seg_epochs=2, dec_epochs=1).fit(X, Y, masks=_valid_masks_unknown(det))
        assert unknown.seg_monitor_ == "valid_loss"


def _valid_masks_unknown(det) -> np.ndarray:
    masks = MASKS.copy()
    masks[holdout_split(Y, det.validation_fraction, det.random_state)[1]] = 0
    return masks


def test_valid_pixel_ap_is_the_pixel_ap_of_the_validation_images_maps():
    """The recorded valid_pixel_ap of the kept epoch equals the average precision of every pixel of segment() on
    the validation images against their masks (the hold-out is holdout_split's for the detector's seed)."""
    from skdefect.metrics import average_precision

    det = fit(two_stage(seg_epochs=4, dec_epochs=0, seg_monitor="valid_pixel_ap"))
    end = next(row["event_stage_end"] for row in det.net_.history if "event_stage_end" in row)
    _, valid = holdout_split(Y, det.validation_fraction, det.random_state)
    maps = det.segment(X[valid])
    assert end["best"] == pytest.approx(average_precision(MASKS[valid].ravel().astype(int), maps.ravel()), rel=1e-6)


@pytest.mark.parametrize("kw, data, match", [
    ({"validation_fraction": 0.0}, None, r"seg_monitor='valid_ap' .* got no validation images"),
    ({"validation_fraction": 0.0, "seg_monitor": "valid_pixel_ap"}, None,
     r"seg_monitor='valid_pixel_ap' .* got no validation images"),
    ({"dec_epochs": 0}, "defective only", r"seg_monitor='valid_ap' .* \d+ validation images of classes \[1\]"),
    ({"seg_monitor": "valid_pixel_ap"}, "masks unknown",
     r"seg_monitor='valid_pixel_ap' .* \d+ validation images whose masks have no defect pixel"),
])
def test_seg_monitor_needs_its_validation_images(kw, data, match):
    rows = np.flatnonzero(Y == 1) if data == "defective only" else np.arange(len(X))
    masks = _valid_masks_unknown(two_stage()) if data == "masks unknown" else MASKS
    before = fit(two_stage())
    scores = before.decision_function(X[:5])
    with pytest.raises(ValueError, match=match):
        before.set_params(**{"seg_monitor": "valid_ap", **kw}).fit(X[rows], Y[rows], masks=masks[rows])
    np.testing.assert_array_equal(before.decision_function(X[:5]), scores)


def test_early_stopping_ends_a_stalled_stage_and_says_so():
    det = fit(two_stage(seg_epochs=30, dec_epochs=2, lr=0.5, n_iter_no_change=2))  # lr 0.5: no progress
    end = next(row["event_stage_end"] for row in det.net_.history if "event_stage_end" in row)
    assert end["stopped_early"] and end["epochs"] < 30
    assert stages(det).count("decision") == 2  # the next stage still runs
    assert det.net_.progress_.stopped_early == ["segmentation"]


# -- users' skorch callbacks ----------------------------------------------------------------------------------------
def test_a_users_early_stopping_watches_every_stage():
    det = fit(two_stage(seg_epochs=20, dec_epochs=20, early_stopping=False, lr=0.5,
                        callbacks=[EarlyStopping(monitor="valid_loss", patience=1, sink=lambda *a, **k: None)]))
    seen = stages(det)
    assert 0 < seen.count("segmentation") < 20 and 0 < seen.count("decision") < 20


@pytest.mark.parametrize("make", [two_stage, gan])
def test_a_users_lr_scheduler_drives_every_optimizer(make):
    det = fit(make(lr=1e-3, callbacks=[LRScheduler("StepLR", step_size=1, gamma=0.5)]))
    net = det.net_
    names = [n for n in net.optimizer_names if getattr(net, n + "_", None) is not None]
    assert len(names) >= 2
    lrs = {name: getattr(net, name + "_").param_groups[0]["lr"] for name in names}
    if make is two_stage:  # the user's callback steps optimizer_ every epoch, its copy only the decision epochs
        assert lrs["optimizer"] == pytest.approx(1e-3 * 0.5**6)
        assert lrs["optimizer_decision"] == pytest.approx(1e-3 * 0.5**3)
    else:
        assert all(lr == pytest.approx(1e-3 * 0.5**3) for lr in lrs.values())


def test_without_a_users_scheduler_the_built_in_schedules_act_per_stage():
    det = fit(two_stage(seg_epochs=4, dec_epochs=4, lr_schedule="cosine"))
    lrs = list(det.net_.history[:, "event_lr"])
    assert lrs[0] == lrs[4] == pytest.approx(1e-3)  # each stage starts at lr
    assert lrs[1] < lrs[0] and lrs[3] < lrs[2] and lrs[5] < lrs[4]
    constant = fit(two_stage(seg_epochs=4, dec_epochs=4, lr_schedule="constant"))
    assert set(constant.net_.history[:, "event_lr"]) == {1e-3}
    # plateau: a stalled stage (lr 0.5 cannot improve it) loses a factor 4 every 2 epochs without improvement
    stalled = fit(two_stage(seg_epochs=9, dec_epochs=1, lr=0.5, n_iter_no_change=6, early_stopping=False))
    history = stalled.net_.history
    end = next(row["event_stage_end"] for row in history if "event_stage_end" in row)
    misses = end["epochs"] - (end["best_epoch"] or 0)
    assert history[end["epochs"] - 1, "event_lr"] <= 0.5 * 0.25 ** ((misses - 1) // 2) * (1 + 1e-9)
    assert history[end["epochs"], "event_lr"] == pytest.approx(0.5)  # the decision stage starts afresh


class NormSpy(Callback):
    """Records the gradient norm of the parameters about to be stepped, after the callbacks before it."""

    def __init__(self, seen: list):
        self.seen = seen

    def on_grad_computed(self, net, named_parameters, **kwargs):  # noqa: ANN001
        grads = [p.grad for _, p in named_parameters if p.grad is not None]
        self.seen.append(float(torch.linalg.vector_norm(torch.stack([g.norm() for g in grads]))))


@pytest.mark.parametrize("make", [two_stage, gan])
def test_gradient_norm_clipping_reaches_every_optimizer_step(make):
    seen: list[float] = []
    det = fit(make(callbacks=[GradientNormClipping(gradient_clip_value=1e-3), NormSpy(seen)]))
    steps = sum(row["train_batch_count"] for row in det.net_.history)
    per_batch = 1 if make is two_stage else 2  # the GAN steps a discriminator (or two) and the generator
    assert len(seen) >= per_batch * steps
    assert max(seen) <= 1e-3 * (1 + 1e-4)


def test_optimizer_parameters_reach_every_optimizer_and_own_prefixes_override():
    """skorch's ``optimizer__*`` routing (``get_params_for_optimizer``, param_groups included) builds every
    optimizer of the nets; an optimizer's own prefix overrides it."""
    from skdefect.nn.wang2022 import Wang2022TwoStage
    from skdefect.training import TwoStageNet

    net = TwoStageNet(
        module=Wang2022TwoStage(in_channels=1, width=0.25), optimizer=torch.optim.Adam, lr=1e-3, seg_epochs=1,
        optimizer__weight_decay=0.01, optimizer_decision__weight_decay=0.5,
        optimizer__param_groups=[("*fuse*", {"lr": 0.123})],
    ).initialize()
    seg_groups, dec_groups = net.optimizer_.param_groups, net.optimizer_decision_.param_groups
    assert {g["weight_decay"] for g in seg_groups} == {0.01} and {g["weight_decay"] for g in dec_groups} == {0.5}
    assert sorted(g["lr"] for g in seg_groups) == [1e-3, 0.123]  # the fusion layer S15 in its own group
    assert len(seg_groups[0]["params"]) == 2  # S15's weight and bias


# -- the threshold comes from images the networks did not train on ----------------------------------------------
def test_threshold_is_chosen_on_validation_scores(monkeypatch):
    from skdefect import two_stage as module

    seen = {}
    original = module.f1_max_threshold

    def spy(scores, y):
        seen["n"] = len(scores)
        return original(scores, y)

    monkeypatch.setattr(module, "f1_max_threshold", spy)
    fit(two_stage())
    assert seen["n"] == 12  # the validation images, not the 48 training images


def test_one_class_gan_is_judged_by_validation_reconstruction():
    det = fit(gan(epochs=3), one_class=True)
    assert all(np.isfinite(row["valid_loss"]) for row in det.net_.history)
    end = next(row["event_stage_end"] for row in det.net_.history if "event_stage_end" in row)
    assert end["monitor"] == "valid_loss"
    supervised = fit(gan(epochs=3))
    end = next(row["event_stage_end"] for row in supervised.net_.history if "event_stage_end" in row)
    assert end["monitor"] == "valid_ap" and "valid_ap" in supervised.net_.history[-1]
