"""ConcentratedTwoStageDetector: quality, the sklearn contract, mixed supervision, errors."""

from __future__ import annotations

import pickle

import numpy as np
import pytest
import torch
from sklearn.base import clone
from sklearn.metrics import average_precision_score, roc_auc_score
from sklearn.model_selection import GridSearchCV, StratifiedKFold

from skdefect.datasets import make_surface_defects
from skdefect.two_stage import ConcentratedTwoStageDetector

FAST = dict(width=0.25, seg_epochs=4, dec_epochs=3, batch_size=8, random_state=0, device="cpu")


@pytest.fixture(scope="module")
def data():
    # brick only: on grass and gravel thin natural structures look like scratches, and even a generic
    # U-Net stops at test AP 0.81-0.87 on the three-texture mix (see the issue note)
    X, y, masks = make_surface_defects(n_samples=300, image_shape=(48, 48), random_state=0, difficulty="easy",
                                       textures=("brick",))
    return X[:200], y[:200], masks[:200], X[200:], y[200:], masks[200:]


@pytest.fixture(scope="module")
def fitted(data):
    X, y, masks, *_ = data
    # 15 decision epochs: with 4 the decision net ranked the test images 0.87-0.95 depending on the CPU model
    # (floating-point kernels differ), below the maximum of its own segmentation map (0.959)
    return ConcentratedTwoStageDetector(width=0.5, dice_weight=0.5, seg_epochs=15, dec_epochs=15, batch_size=8,
                                        random_state=0, device="cpu").fit(X, y, masks=masks)


def test_reaches_high_average_precision_on_held_out_data(fitted, data):
    *_, X_te, y_te, m_te = data
    scores = fitted.decision_function(X_te)
    # measured 0.915 (seed 0, the features head chosen) and 0.940 (seed 1, the image head) on an Intel Xeon;
    # chance is ~0.5
    assert average_precision_score(y_te, scores) >= 0.9
    maps = fitted.segment(X_te)
    # the segmentation map localises defects: defect pixels rank above background (measured 0.95 on an Intel Xeon,
    # 0.897 on an AMD EPYC: the CPU models train other trajectories)
    assert roc_auc_score(m_te.ravel(), maps.ravel()) >= 0.85
    assert maps[m_te].mean() > 20 * maps[~m_te].mean()


def test_sklearn_contract(fitted, data):
    *_, X_te, y_te, _ = data
    scores = fitted.decision_function(X_te)
    np.testing.assert_array_equal(fitted.classes_, [0, 1])
    np.testing.assert_allclose(fitted.score_samples(X_te), -scores)
    proba = fitted.predict_proba(X_te)
    assert proba.shape == (len(X_te), 2)
    np.testing.assert_allclose(proba.sum(axis=1), 1.0)
    assert np.all(np.diff(proba[np.argsort(scores), 1]) >= 0)  # monotone in the score
    np.testing.assert_array_equal(fitted.predict(X_te), (scores >= fitted.threshold_).astype(int))
    assert fitted.score(X_te, y_te) == pytest.approx(average_precision_score(y_te, scores))
    maps = fitted.segment(X_te[:3])
    assert maps.shape == (3, 48, 48) and maps.dtype == np.float32
    assert 0.0 <= maps.min() and maps.max() <= 1.0
    assert set(fitted.n_parameters_) == {"segmentation", "decision"}
    assert all(v > 0 for v in fitted.n_parameters_.values())
    history = fitted.net_.history
    assert 15 < len(history) <= 30  # 15 segmentation epochs, then up to 15 decision epochs (early stopping)
    assert "train_seg_loss" in history[0] and "train_dec_loss" in history[-1]
    # the segmentation loss goes down during its stage
    assert history[14, "train_seg_loss"] < history[0, "train_seg_loss"]


def test_same_random_state_gives_identical_scores(data):
    X, y, masks, X_te, *_ = data
    a = ConcentratedTwoStageDetector(**FAST).fit(X[:64], y[:64], masks=masks[:64]).decision_function(X_te)
    b = ConcentratedTwoStageDetector(**FAST).fit(X[:64], y[:64], masks=masks[:64]).decision_function(X_te)
    np.testing.assert_array_equal(a, b)


def test_pickle_clone_and_set_params(fitted, data):
    *_, X_te, _, _ = data
    restored = pickle.loads(pickle.dumps(fitted))
    np.testing.assert_array_equal(restored.decision_function(X_te), fitted.decision_function(X_te))
    np.testing.assert_array_equal(restored.segment(X_te[:2]), fitted.segment(X_te[:2]))
    c = clone(fitted)
    assert not hasattr(c, "net_") and c.get_params() == fitted.get_params()
    c.set_params(gamma=2.0, dice_weight=0.5)
    assert c.gamma == 2.0 and c.dice_weight == 0.5


def test_dice_weight_auto_is_the_papers_for_its_network_and_half_for_the_others(data):
    X, y, masks, X_te, *_ = data
    fits = {lam: ConcentratedTwoStageDetector(**{**FAST, "dice_weight": lam}).fit(X[:32], y[:32], masks=masks[:32])
            for lam in ("auto", 0.5, 0.95)}
    assert fits["auto"].backbone_ == "wang2022_select" and fits["auto"].dice_weight_ == 0.5
    assert fits[0.95].dice_weight_ == 0.95
    # "auto" reaches the loss as 0.5: the same fit to the last bit, and not the fit at 0.95
    scores = {lam: det.decision_function(X_te[:8]) for lam, det in fits.items()}
    np.testing.assert_array_equal(scores["auto"], scores[0.5])
    assert not np.array_equal(scores["auto"], scores[0.95])
    paper = ConcentratedTwoStageDetector(**{**FAST, "backbone": "wang2022"})
    assert paper._resolve_dice_weight("wang2022") == 0.95


def test_augment_auto_transposes_only_images_that_cannot_be_told_from_their_transposes(data):
    """The embedded textures (turned by quarter turns) train with the transposes, the same images smeared
    along one axis (one orientation, as a camera geometry gives) with the flips alone, each exactly as the
    explicit setting trains."""
    from scipy.ndimage import uniform_filter1d

    X, y, masks, X_te, *_ = data
    smeared = uniform_filter1d(X[:48], size=9, axis=2)
    for images, resolved in ((X[:48], "dihedral"), (smeared, "flips")):
        fits = {aug: ConcentratedTwoStageDetector(**{**FAST, "seg_epochs": 2, "dec_epochs": 1, "augment": aug}).fit(
            images, y[:48], masks=masks[:48]) for aug in ("auto", "flips", "dihedral")}
        assert fits["auto"].augment == "auto" and fits["auto"].augment_ == resolved
        assert fits["flips"].augment_ == "flips" and fits["dihedral"].augment_ == "dihedral"
        scores = {aug: det.decision_function(X_te[:8]) for aug, det in fits.items()}
        np.testing.assert_array_equal(scores["auto"], scores[resolved])
        other = "flips" if resolved == "dihedral" else "dihedral"
        assert not np.array_equal(scores["auto"], scores[other])
    legacy = ConcentratedTwoStageDetector(**{**FAST, "seg_epochs": 1, "dec_epochs": 1, "augment": False})
    assert legacy.fit(X[:32], y[:32], masks=masks[:32]).augment_ is None


def test_flattened_input_with_image_shape(data):
    X, y, masks, X_te, *_ = data
    det = ConcentratedTwoStageDetector(image_shape=(48, 48), **FAST)
    det.fit(X[:48].reshape(48, -1), y[:48], masks=masks[:48])
    assert det.n_features_in_ == 48 * 48
    assert det.decision_function(X_te[:5].reshape(5, -1)).shape == (5,)


def test_image_size_resizes_and_maps_come_back_at_input_resolution(data):
    X, y, masks, X_te, *_ = data
    det = ConcentratedTwoStageDetector(image_size=32, **FAST).fit(X[:48], y[:48], masks=masks[:48])
    assert det.image_size_ == (32, 32)
    assert det.segment(X_te[:2]).shape == (2, 48, 48)


def test_mixed_supervision_unknown_masks_do_not_train_segmentation():
    from skdefect.training.two_stage import TwoStageNet

    calls = []

    def spy_loss(logits, target):
        calls.append(target.detach().clone())
        return torch.ones(len(target), requires_grad=True) * logits.mean() * 0 + 1.0

    net = TwoStageNet.__new__(TwoStageNet)
    net.seg_loss = spy_loss
    mask = torch.zeros(4, 1, 8, 8)
    mask[0, :, 2:4, 2:4] = 1
    extras = {"mask": mask, "mask_known": torch.tensor([True, False, True, True])}
    per = torch.tensor([1.0, 100.0, 2.0, 3.0])
    net.seg_loss = lambda logits, target: per
    loss = net._seg_loss(torch.zeros(4, 1, 8, 8), extras)
    assert loss.item() == pytest.approx(2.0)  # the unknown-mask positive (100) is left out


def test_positive_with_empty_mask_still_fits(data):
    X, y, masks, X_te, *_ = data
    masks = masks[:64].copy()
    first_pos = np.flatnonzero(y[:64])[:3]
    masks[first_pos] = False  # three defective images whose masks are unknown
    det = ConcentratedTwoStageDetector(**FAST).fit(X[:64], y[:64], masks=masks)
    assert np.isfinite(det.decision_function(X_te)).all()


@pytest.mark.parametrize("n_jobs", [1, 2])
def test_grid_search_slices_masks_per_fold(data, n_jobs):
    X, y, masks, *_ = data
    search = GridSearchCV(
        ConcentratedTwoStageDetector(width=0.25, seg_epochs=2, dec_epochs=2, random_state=0, device="cpu"),
        {"gamma": [0.0, 0.5], "dice_weight": [0.95]},
        scoring="average_precision",
        cv=StratifiedKFold(2, shuffle=True, random_state=0),
        n_jobs=n_jobs,
    )
    search.fit(X[:48], y[:48], masks=masks[:48])
    assert search.best_params_["gamma"] in (0.0, 0.5)
    assert np.isfinite(search.cv_results_["mean_test_score"]).all()


def test_segdec_backbone_with_bce(data):
    X, y, masks, X_te, y_te, _ = data
    with pytest.raises(ValueError, match="at least 64"):  # refused before any training
        ConcentratedTwoStageDetector(backbone="segdec", device="cpu").fit(X[:16], y[:16], masks=masks[:16])
    det = ConcentratedTwoStageDetector(backbone="segdec", loss="bce", width=0.125, seg_epochs=3,
                                       dec_epochs=3, image_size=64, random_state=0, device="cpu")
    det.fit(X[:64], y[:64], masks=masks[:64])
    assert det.decision_function(X_te).shape == (len(X_te),)
    assert det.segment(X_te[:2]).shape == (2, 48, 48)


def test_unet_decoder_backbone_localises_and_round_trips_through_a_model_file(data, tmp_path):
    import skdefect

    X, y, masks, X_te, y_te, m_te = data
    # brick is cut at any angle: the transposes of "dihedral" are more data (with the default flips: image AP 0.737)
    # 10 decision epochs: with FAST's 3 the image AP was 0.87 on an AMD EPYC and 0.71 on an Intel Xeon
    det = ConcentratedTwoStageDetector(backbone="wang2022_unet", augment="dihedral",
                                       **{**FAST, "seg_epochs": 8, "dec_epochs": 10})
    det.fit(X, y, masks=masks)
    assert det.backbone_ == "wang2022_unet"
    maps = det.segment(X_te)
    # measured on an Intel Xeon: pixel AUROC 0.774, image AP 0.827 (random_state 1: 0.757, 0.892); chance is 0.5
    assert roc_auc_score(m_te.ravel(), maps.ravel()) >= 0.7
    assert average_precision_score(y_te, det.decision_function(X_te)) >= 0.75
    det.save(tmp_path / "unet.skdefect")
    loaded = skdefect.load(tmp_path / "unet.skdefect")
    np.testing.assert_allclose(loaded.decision_function(X_te), det.decision_function(X_te), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize(
    "params, match",
    [
        ({"gamma": -1.0}, "gamma"),
        ({"dice_weight": 1.5}, "dice_weight"),
        ({"backbone": "resnet9000"}, "unknown backbone 'resnet9000'.*wang2022"),
        ({"loss": "nope"}, "unknown loss 'nope'.*concentrated"),
        ({"sampler": "nope"}, "unknown sampler 'nope'.*balanced"),
        ({"batch_size": 0}, "batch_size"),
        ({"image_size": 30}, "image_size"),
        ({"precision": "fp8"}, "precision"),
        ({"norm": "layer"}, "norm"),
    ],
)
def test_invalid_hyperparameters_raise_before_training(data, params, match):
    X, y, masks, *_ = data
    det = ConcentratedTwoStageDetector(**{**FAST, **params})
    with pytest.raises(ValueError, match=match):
        det.fit(X[:16], y[:16], masks=masks[:16])
    assert not hasattr(det, "net_")


def test_bad_data_errors_and_refit_refused_keeps_fitted_state(fitted, data):
    X, y, masks, X_te, *_ = data
    before = fitted.decision_function(X_te)
    with pytest.raises(ValueError, match="masks"):
        clone(fitted).fit(X[:16], y[:16])
    with pytest.raises(ValueError, match="both classes"):
        clone(fitted).fit(X[y == 0][:8], np.zeros(8, int), masks=np.zeros((8, 48, 48), bool))
    with pytest.raises(ValueError, match="X"):
        fitted.decision_function(X_te[:, :32, :32])
    with pytest.raises(ValueError, match="masks"):
        fitted.fit(X[:16], y[:16], masks=masks[:15])
    np.testing.assert_array_equal(fitted.decision_function(X_te), before)


def test_predict_before_fit_is_a_clear_error(data):
    from sklearn.exceptions import NotFittedError

    with pytest.raises(NotFittedError):
        ConcentratedTwoStageDetector().predict(data[3][:2])


def test_skorch_callbacks_pass_through_and_verbose_progress(data, capsys):
    from skorch.callbacks import Callback

    class EpochCounter(Callback):
        def initialize(self):
            self.epochs_ = 0
            return self

        def on_epoch_end(self, net, **kwargs):
            self.epochs_ += 1

    X, y, masks, *_ = data
    counter = EpochCounter()
    det = ConcentratedTwoStageDetector(**{**FAST, "verbose": 1, "callbacks": [("count", counter)]})
    det.fit(X[:32], y[:32], masks=masks[:32])
    counted = dict(det.net_.callbacks_)["count"]
    assert counted.epochs_ == FAST["seg_epochs"] + FAST["dec_epochs"]
    out = capsys.readouterr()
    assert "train_seg_loss" in out.out + out.err  # skorch's epoch table, verbose=1
    assert "ConcentratedTwoStageDetector: choosing the threshold on" in out.out  # the step after training
    unknown = masks[:32].copy()
    unknown[np.flatnonzero(y[:32])[:2]] = False  # two positives whose mask is unknown
    det.set_params(callbacks=None).fit(X[:32], y[:32], masks=unknown)
    assert f"2 of the {int(y[:32].sum())} defective images have no defect pixel" in capsys.readouterr().out
    det.set_params(verbose=0, callbacks=None).fit(X[:32], y[:32], masks=masks[:32])
    assert capsys.readouterr().out == ""


def test_gamma_down_weights_well_segmented_training_images_as_eq_1_says(fitted, data):
    """On the fitted segmentation net, each training image's gradient under γ = 0.5 is its γ = 0
    gradient times (1 − IoU)^γ: well-segmented images push the weights less (Eq. 1, factor detached)."""
    from skdefect._validation import check_images
    from skdefect.losses import soft_iou
    from skdefect.plugins import call_with_accepted, get_loss
    from skdefect.training import ImageBatchSource

    X, y, masks, *_ = data
    pos = np.flatnonzero(y == 1)[:12]
    source = ImageBatchSource(check_images(X[pos]), y[pos], masks[pos], size=fitted.image_size_,
                              mean=fitted.input_mean_, std=fitted.input_std_)
    x, extras = source.get_batch(np.arange(len(pos)), torch.device("cpu"))
    seg_net = fitted.net_.module_.segmentation
    seg_net.eval()  # per-image gradients: batch statistics would couple the images
    params = [p for p in seg_net.parameters() if p.requires_grad]

    def grad_norm(gamma: float, i: int) -> float:
        loss_fn = call_with_accepted(get_loss("concentrated"), gamma=gamma, dice_weight=fitted.dice_weight_)
        loss = loss_fn(seg_net(x[i : i + 1]), extras["mask"][i : i + 1]).sum()
        return float(torch.sqrt(sum((g**2).sum() for g in torch.autograd.grad(loss, params))))

    with torch.no_grad():
        iou = soft_iou(torch.sigmoid(seg_net(x)), extras["mask"]).numpy()
    ratios = np.array([grad_norm(0.5, i) / grad_norm(0.0, i) for i in range(len(pos))])
    np.testing.assert_allclose(ratios, (1 - iou) ** 0.5, rtol=1e-4)
    # the trained net segments some images well and some badly; the well-segmented ones count less
    assert iou.max() - iou.min() > 0.3
    assert ratios[np.argmax(iou)] < 0.7 * ratios[np.argmin(iou)]


def _invert(X):
    return 255 - X


def test_pipeline_routes_masks_to_the_detector_step(data):
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import FunctionTransformer

    X, y, masks, X_te, *_ = data
    params = dict(width=0.25, seg_epochs=2, dec_epochs=2, random_state=0, device="cpu")
    pipe = Pipeline([("invert", FunctionTransformer(_invert)), ("det", ConcentratedTwoStageDetector(**params))])
    search = GridSearchCV(pipe, {"det__gamma": [0.0, 0.5]}, scoring="average_precision", cv=2)
    search.fit(X[:48], y[:48], det__masks=masks[:48])
    # the refitted pipeline is exactly "invert, then the detector fitted on the inverted images"
    alone = ConcentratedTwoStageDetector(**{**params, "gamma": search.best_params_["det__gamma"]})
    alone.fit(255 - X[:48], y[:48], masks=masks[:48])
    np.testing.assert_array_equal(search.decision_function(X_te), alone.decision_function(255 - X_te))


def test_without_a_decision_stage_the_image_score_is_the_largest_segmentation_logit(data):
    """dec_epochs=0 trains the segmentation net alone (defective images suffice, as on CrackForest); the image
    score is then the map's largest logit, so predict_proba's P(defect) is the largest pixel probability."""
    X, y, masks, X_te, *_ = data
    defective = y == 1
    with pytest.raises(ValueError, match="dec_epochs=0"):
        ConcentratedTwoStageDetector(**FAST).fit(X[defective], y[defective], masks=masks[defective])
    det = ConcentratedTwoStageDetector(**{**FAST, "dec_epochs": 0}).fit(X[defective], y[defective],
                                                                        masks=masks[defective])
    assert det.image_score_ == "seg_max"
    assert [row["event_stage"] for row in det.net_.history] == ["segmentation"] * FAST["seg_epochs"]
    top = det.segment(X_te[:8]).reshape(8, -1).max(axis=1)
    np.testing.assert_allclose(det.predict_proba(X_te[:8])[:, 1], top, rtol=1e-5, atol=1e-6)


# -- backbone="wang2022_select": both decision nets, the validation images choose ----------------------------
def test_head_losses_is_each_heads_own_bce():
    from skdefect.training.two_stage import head_losses

    logits, y = torch.randn(6, 2), torch.tensor([0.0, 1, 1, 0, 1, 0])
    expected = [torch.nn.functional.binary_cross_entropy_with_logits(logits[:, j], y) for j in range(2)]
    torch.testing.assert_close(head_losses(logits, y), torch.stack(expected))


@pytest.fixture(scope="module")
def selected(data):
    X, y, masks, *_ = data
    return ConcentratedTwoStageDetector(**{**FAST, "backbone": "wang2022_select", "dec_epochs": 5}).fit(
        X[:96], y[:96], masks=masks[:96])


def test_select_keeps_the_head_with_the_lowest_validation_loss(selected):
    history = selected.net_.history
    end = [row["event_stage_end"] for row in history if "event_stage_end" in row][-1]
    assert end["stage"] == "decision" and end["monitor"] == "valid_dec_loss"
    epochs = [i + 1 for i, row in enumerate(history) if row.get("event_stage") == "decision"]
    rows = [history[e - 1] for e in epochs]
    assert len(rows) == 5
    # both heads train on every batch, each with its own loss; the stage's judge is the lower of the two
    for row in rows:
        assert {"train_dec_loss_features", "train_dec_loss_image"} <= set(row)
        for part in ("train", "valid"):
            assert row[f"{part}_dec_loss"] == min(row[f"{part}_dec_loss_features"], row[f"{part}_dec_loss_image"])
    assert rows[0]["train_dec_loss_features"] != rows[0]["train_dec_loss_image"]
    # the kept epoch is the one with the lowest head loss over all epochs, and that head answers
    value, epoch, name = min((row[f"valid_dec_loss_{n}"], e, n) for e, row in zip(epochs, rows, strict=True)
                             for n in ("features", "image"))
    assert end["best"] == pytest.approx(value) and end["best_epoch"] == epoch
    assert selected.decision_head_ == name == history[-1, "event_decision_head"]
    assert selected.net_.module_.decision.chosen_name == name


def test_select_scores_are_the_chosen_heads(selected, data):
    *_, X_te, _, _ = data
    decision = selected.net_.module_.decision
    scores = selected.decision_function(X_te[:16])
    other = next(n for n in decision.names if n != selected.decision_head_)
    x = torch.randn(4, 1, 48, 48)
    with torch.no_grad():
        module = selected.net_.module_.eval()
        inputs = module.decision_inputs(x)
        both = decision.all_logits(*inputs)
        torch.testing.assert_close(module(x)[1], both[:, decision.names.index(selected.decision_head_)])
    try:
        decision.choose(other)
        assert not np.allclose(selected.decision_function(X_te[:16]), scores)
    finally:
        decision.choose(selected.decision_head_)
    np.testing.assert_array_equal(selected.decision_function(X_te[:16]), scores)


def test_select_choice_survives_pickle_and_the_model_file(selected, data, tmp_path):
    import skdefect

    *_, X_te, _, _ = data
    decision = selected.net_.module_.decision
    original = selected.decision_head_
    other = next(n for n in decision.names if n != original)
    try:
        decision.choose(other)  # the choice that is not the first head, so that a lost choice shows
        scores = selected.decision_function(X_te[:16])
        restored = pickle.loads(pickle.dumps(selected))
        assert restored.net_.module_.decision.chosen_name == other
        np.testing.assert_array_equal(restored.decision_function(X_te[:16]), scores)
        loaded = skdefect.load(selected.save(tmp_path / "select.skdefect"))
        assert loaded.net_.module_.decision.chosen_name == other
        np.testing.assert_allclose(loaded.decision_function(X_te[:16]), scores, rtol=0, atol=1e-6)
    finally:
        decision.choose(original)


def test_select_without_validation_images_keeps_the_first_head(data):
    X, y, masks, *_ = data
    det = ConcentratedTwoStageDetector(**{**FAST, "backbone": "wang2022_select", "validation_fraction": 0.0})
    det.fit(X[:32], y[:32], masks=masks[:32])
    assert det.decision_head_ == "features" == det.net_.history[-1, "event_decision_head"]
    one_head = ConcentratedTwoStageDetector(**{**FAST, "backbone": "wang2022_features"})
    assert one_head.fit(X[:32], y[:32], masks=masks[:32]).decision_head_ is None


def test_a_decision_head_index_out_of_range_is_refused():
    from skdefect.nn.wang2022 import Wang2022SelectTwoStage

    module = Wang2022SelectTwoStage(in_channels=1, width=0.25)
    state = module.state_dict()
    state["decision.chosen"] = torch.tensor(2)
    with pytest.raises(ValueError, match="decision head index 'chosen' must be in 0..1; got 2"):
        module.load_state_dict(state)
    state["decision.chosen"] = torch.tensor(1)
    module.load_state_dict(state)
    assert module.decision.chosen_name == "image"
