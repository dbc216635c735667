"""DualDiscriminatorGANDetector: quality, one-class mode, the sklearn contract, errors."""

from __future__ import annotations

import pickle

import numpy as np
import pytest
import torch
from sklearn.base import clone
from sklearn.metrics import roc_auc_score
from sklearn.model_selection import GridSearchCV, StratifiedKFold

from skdefect import losses
from skdefect.gan import DualDiscriminatorGANDetector
from skdefect.training.gan import DualGANNet

FAST = dict(width=0.5, epochs=2, batch_size=32, image_size=32, random_state=0, device="cpu")


@pytest.fixture(scope="module")
def digits():
    """sklearn's 8x8 digits: 0 is normal, every other digit anomalous (upsampled to 32x32 by the net)."""
    from sklearn.datasets import load_digits

    d = load_digits()
    X = (d.images / 16.0).astype(np.float32)
    y = (d.target != 0).astype(np.int64)
    rng = np.random.default_rng(0)
    normal, anomalous = np.flatnonzero(y == 0), np.flatnonzero(y == 1)
    rng.shuffle(normal)
    rng.shuffle(anomalous)
    train = np.r_[normal[:120], anomalous[:120]]
    test = np.r_[normal[120:], anomalous[120:420]]
    return X[train], y[train], X[test], y[test]


@pytest.fixture(scope="module")
def fitted(digits):
    X, y, *_ = digits
    return DualDiscriminatorGANDetector(width=1.0, epochs=15, batch_size=16, image_size=32, random_state=0,
                                        device="cpu").fit(X, y)


def test_full_model_separates_anomalies(fitted, digits):
    *_, X_te, y_te = digits
    assert roc_auc_score(y_te, fitted.decision_function(X_te)) >= 0.9


def test_sklearn_contract(fitted, digits):
    *_, X_te, y_te = digits
    scores = fitted.decision_function(X_te)
    np.testing.assert_array_equal(fitted.classes_, [0, 1])
    np.testing.assert_allclose(fitted.score_samples(X_te), -scores)
    proba = fitted.predict_proba(X_te)
    assert proba.shape == (len(X_te), 2)
    order = np.argsort(scores)
    assert np.all(np.diff(proba[order, 1]) >= 0)
    np.testing.assert_array_equal(fitted.predict(X_te), (scores >= fitted.threshold_).astype(int))
    maps = fitted.anomaly_map(X_te[:4])
    assert maps.shape == (4, 8, 8) and (maps >= 0).all()
    assert set(fitted.n_parameters_) == {"generator", "disc_normal", "disc_anomalous"}
    assert not fitted.one_class_
    logged = set().union(*[set(r) for r in fitted.net_.history])
    for term in ("d_normal", "d_anomalous", "g_l1", "g_patch", "g_latent", "g_adv", "g_anomaly_adv", "g_abc"):
        values = [r["train_" + term] for r in fitted.net_.history if "train_" + term in r]
        assert values and np.isfinite(values).all(), term  # every term logged in some epoch, all finite
    assert {"train_g_l1", "train_g_abc", "train_d_anomalous", "train_g_anomaly_adv"} <= logged
    # k-means sampling over the training part (validation_fraction=0.2 holds 24 + 24 out): 96 normals + 96 anomalies
    assert len(fitted.sampler_indices_) == 192


def test_one_class_mode(digits):
    X, y, X_te, y_te = digits
    det = DualDiscriminatorGANDetector(**FAST).fit(X[y == 0])
    assert det.one_class_
    assert set(det.n_parameters_) == {"generator", "disc_normal"}
    logged = set().union(*[set(r) for r in det.net_.history])
    assert "train_g_abc" not in logged and "train_d_anomalous" not in logged
    assert det.decision_function(X_te).shape == (len(X_te),)


@pytest.mark.parametrize("normal", [1, 8])
def test_one_class_training_scores_by_the_feature_memory(normal):
    """Trained on normals only, the U-Net reconstructs anomalies too and its error tracks the amount of ink (the
    1s, the least inky digit, score *below* every other digit: AUROC ~0.04); the default one-class score, the
    distance to the nearest training normal in the encoder's features, separates them (measured 0.998 and 0.977
    for 1 and 8 at these settings)."""
    from sklearn.datasets import load_digits

    d = load_digits()
    X, y = (d.images / 16.0).astype(np.float32), (d.target != normal).astype(np.int64)
    rng = np.random.default_rng(0)
    normals, anomalies = rng.permutation(np.flatnonzero(y == 0)), rng.permutation(np.flatnonzero(y == 1))
    test = np.r_[normals[120:], anomalies[:300]]
    kw = {**FAST, "epochs": 4}
    memory = DualDiscriminatorGANDetector(**kw).fit(X[normals[:120]])
    assert memory.anomaly_score_ == "memory"
    assert memory.memory_.shape[0] == 96  # the 120 normals less the 20 % validation hold-out
    recon = DualDiscriminatorGANDetector(**kw, anomaly_score="recon").fit(X[normals[:120]])
    auroc_memory = roc_auc_score(y[test], memory.decision_function(X[test]))
    auroc_recon = roc_auc_score(y[test], recon.decision_function(X[test]))
    assert auroc_memory >= 0.95 and auroc_memory > auroc_recon + 0.1
    # the threshold is the 95th percentile of held-out normals: about 5 % of unseen normals are flagged
    assert np.mean(memory.predict(X[normals[120:]])) <= 0.2


def test_feature_memory_without_validation_compares_each_normal_with_the_others():
    """Without a hold-out the threshold comes from the training normals, each compared with the nearest *other*
    memory row (its own distance is 0): the 95th percentile of those leave-one-out distances."""
    X = np.random.default_rng(0).random((40, 32, 32)).astype(np.float32) * 0.2
    det = DualDiscriminatorGANDetector(**{**FAST, "epochs": 1}, validation_fraction=0.0).fit(X)
    memory = det.memory_.astype(np.float64)
    sims = memory @ memory.T
    np.fill_diagonal(sims, -np.inf)
    assert det.threshold_ == pytest.approx(np.quantile(1.0 - sims.max(axis=1), 0.95), rel=1e-4)
    assert np.all(det.decision_function(X) < 1e-5)  # a training normal is its own nearest memory row


def test_patch_score_and_contamination(digits):
    X, y, X_te, _ = digits
    det = DualDiscriminatorGANDetector(anomaly_score="patch", patch_size=8, patch_stride=4, top_n=3,
                                       contamination=0.1, validation_fraction=0.0, **FAST).fit(X[y == 0])
    train_scores = det.decision_function(X[y == 0])
    assert np.mean(train_scores >= det.threshold_) == pytest.approx(0.1, abs=0.02)


def test_determinism_pickle_clone(digits):
    X, y, X_te, _ = digits
    a = DualDiscriminatorGANDetector(**FAST).fit(X, y)
    b = DualDiscriminatorGANDetector(**FAST).fit(X, y)
    np.testing.assert_array_equal(a.decision_function(X_te), b.decision_function(X_te))
    restored = pickle.loads(pickle.dumps(a))
    np.testing.assert_array_equal(restored.decision_function(X_te), a.decision_function(X_te))
    c = clone(a).set_params(w_abc=1.5)
    assert c.w_abc == 1.5 and not hasattr(c, "net_")


@pytest.mark.parametrize("scoring", ["roc_auc", "average_precision"])
def test_grid_search_over_loss_weights(digits, scoring):
    X, y, *_ = digits
    search = GridSearchCV(
        DualDiscriminatorGANDetector(width=0.5, epochs=1, image_size=32, random_state=0, device="cpu",
                                     patch_size=8, patch_stride=4),
        {"w_patch": [0.5, 1.5], "w_abc": [0.5]},
        scoring=scoring,
        cv=StratifiedKFold(2, shuffle=True, random_state=0),
    )
    search.fit(X, y)
    assert np.isfinite(search.cv_results_["mean_test_score"]).all()


@pytest.mark.parametrize(
    "params, match",
    [
        ({"w_recon": -1.0}, "w_recon"),
        ({"anomaly_score": "latent"}, "anomaly_score"),
        ({"generator": "nope"}, "unknown backbone 'nope'"),
        ({"sampler": "nope"}, "unknown sampler 'nope'"),
        ({"image_size": 20}, "image_size"),
        ({"image_size": 16}, "at least 24"),  # the discriminator's patch map would be empty
        ({"contamination": 0.9}, "contamination"),
        ({"epochs": 0}, "epochs"),
    ],
)
def test_invalid_hyperparameters(digits, params, match):
    X, y, *_ = digits
    det = DualDiscriminatorGANDetector(**{**FAST, **params})
    with pytest.raises(ValueError, match=match):
        det.fit(X[:20], y[:20])
    assert not hasattr(det, "net_")


def test_image_side_the_generator_cannot_take_is_refused(digits):
    X, y, *_ = digits
    with pytest.raises(ValueError, match="image_size"):
        DualDiscriminatorGANDetector(**{**FAST, "image_size": None}).fit(X[:20], y[:20])


def test_only_anomalies_is_refused(digits):
    X, y, *_ = digits
    with pytest.raises(ValueError, match="normal"):
        DualDiscriminatorGANDetector(**FAST).fit(X[y == 1][:10], np.ones(10, int))


def test_abc_loss_pushes_anomalies_away(digits):
    """With ABC (and the anomaly adversarial loss) the generator reconstructs anomalies worse."""
    X, y, *_ = digits
    kw = {**FAST, "epochs": 6, "width": 1.0, "anomaly_score": "recon"}  # the reconstruction error itself
    with_abc = DualDiscriminatorGANDetector(w_abc=1.5, w_anomaly_adv=1.0, **kw).fit(X, y)
    without = DualDiscriminatorGANDetector(w_abc=0.0, w_anomaly_adv=0.0, **kw).fit(X, y)

    def gap(det):
        s = det.decision_function(X)
        return s[y == 1].mean() - s[y == 0].mean()

    assert gap(with_abc) > gap(without)


def test_abc_error_patch_feeds_the_patch_loss_of_anomalies_to_abc(digits):
    """abc_error="patch" is a plain hyperparameter: the net computes A as the patch loss, training changes, and
    a clone carries it."""
    X, y, *_ = digits
    kw = {**FAST, "epochs": 2, "patch_size": 8, "patch_stride": 4, "top_n": 2}
    mean = DualDiscriminatorGANDetector(**kw).fit(X, y)
    patch = DualDiscriminatorGANDetector(abc_error="patch", **kw).fit(X, y)
    assert clone(patch).get_params()["abc_error"] == "patch" and patch.net_.abc_error == "patch"
    x = torch.rand(3, 1, 16, 16)
    x_hat = torch.rand(3, 1, 16, 16)
    torch.testing.assert_close(patch.net_._abc_error(x, x_hat), losses.patch_loss(x, x_hat, 8, 4, 2))
    torch.testing.assert_close(mean.net_._abc_error(x, x_hat), losses.l1_reconstruction_loss(x, x_hat))
    assert [h["train_g_abc"] for h in mean.net_.history] != [h["train_g_abc"] for h in patch.net_.history]


def test_abc_error_mask_trains_on_the_defect_pixels_and_needs_masks(digits, monkeypatch):
    """abc_error="mask": fit's masks reach the training batches (resized with the images), A is the mean error over
    each anomalous image's mask, training differs from the paper's A; without masks the fit is refused before any
    training and a fitted detector keeps its state."""
    X, y, *_ = digits
    masks = (X > 0.5) & (y == 1)[:, None, None]  # the anomalous digits' strokes; normals' masks are empty
    kw = {**FAST, "epochs": 2}
    mean = DualDiscriminatorGANDetector(**kw).fit(X, y, masks=masks)  # "mean" ignores them: the paper's fit
    plain = DualDiscriminatorGANDetector(**kw).fit(X, y)
    assert [h["train_g_abc"] for h in mean.net_.history] == [h["train_g_abc"] for h in plain.net_.history]
    masked = DualDiscriminatorGANDetector(abc_error="mask", **kw).fit(X, y, masks=masks)
    assert clone(masked).get_params()["abc_error"] == "mask" and masked.net_.abc_error == "mask"
    assert [h["train_g_abc"] for h in masked.net_.history] != [h["train_g_abc"] for h in mean.net_.history]
    x, x_hat = torch.rand(2, 1, 8, 8), torch.rand(2, 1, 8, 8)
    m = torch.zeros(2, 1, 8, 8)
    m[:, :, :2, :2] = 1.0
    torch.testing.assert_close(masked.net_._abc_error(x, x_hat, m), losses.masked_l1_error(x, x_hat, m))
    seen = []
    original = DualGANNet._anomaly_group
    monkeypatch.setattr(DualGANNet, "_anomaly_group",
                        lambda self, x, x_hat, mask=None: seen.append((x, mask)) or original(self, x, x_hat, mask))
    DualDiscriminatorGANDetector(abc_error="mask", **{**kw, "epochs": 1}).fit(X, y, masks=masks)
    assert seen and all(mask is not None and mask.shape == (len(x), 1, 32, 32) for x, mask in seen)
    assert all(float(mask.flatten(1).sum(1).min()) > 0 for _, mask in seen)  # anomalous images' own masks
    with pytest.raises(ValueError, match="masks"):
        DualDiscriminatorGANDetector(abc_error="mask", **kw).fit(X, y)
    before = masked.decision_function(X[:5])
    masked.set_params(abc_error="mask")
    with pytest.raises(ValueError, match="masks"):
        masked.fit(X, y)
    np.testing.assert_array_equal(masked.decision_function(X[:5]), before)


def test_patch_loss_concentrates_on_the_worst_patches(digits):
    """Eq. of the patch loss: the mean of the top-n patch errors. Trained with it, the generator's worst
    patches come closer to its average error than with L1 alone (measured ratio 1.17-1.22 vs 1.38-1.44,
    seeds 0-2)."""
    X, y, *_ = digits
    normals = X[y == 0]

    def worst_to_mean_ratio(w_patch: float) -> float:
        det = DualDiscriminatorGANDetector(  # every normal trains: this is about the loss, not model selection
            **{**FAST, "epochs": 6}, w_recon=1.0, w_patch=w_patch, w_latent=0.0, w_adv=0.0,
            patch_size=8, patch_stride=4, top_n=3, validation_fraction=0.0,
        ).fit(normals)
        det.anomaly_score_ = "patch"
        worst = det.decision_function(normals)
        det.anomaly_score_ = "recon"
        return float((worst / det.decision_function(normals)).mean())

    assert worst_to_mean_ratio(3.0) < 0.92 * worst_to_mean_ratio(0.0)


def test_the_generator_pass_of_a_training_step_cannot_carry_the_label(digits):
    """Batch norm in train mode normalises with the statistics of the batch it sees: a generator run on the normal
    and on the anomalous images of a batch separately would get the label through them (a channel that does not
    exist at inference). Each training step runs the generator once on the whole batch, so an image's
    reconstruction is the same whatever the labels of the batch say."""
    import copy

    import torch

    X, y, *_ = digits
    det = DualDiscriminatorGANDetector(**{**FAST, "epochs": 1}, validation_fraction=0.0).fit(X, y)
    x, _ = det._source(det._check_predict_images(X[:16])).get_batch(slice(0, 16), torch.device("cpu"))
    compositions = (torch.tensor([0.0, 1.0] * 8), torch.tensor([1.0] * 4 + [0.0] * 12))
    reconstructions = []
    for labels in compositions:
        net = copy.deepcopy(det.net_)
        seen: list[torch.Tensor] = []
        hook = net.module_.register_forward_hook(lambda module, args, out, seen=seen: seen.append(out[0].detach()))
        net.train_step((x, {"y": labels}))
        hook.remove()
        assert len(seen) == 1 and seen[0].shape == x.shape  # one pass, over every image of the batch
        reconstructions.append(seen[0])
    torch.testing.assert_close(reconstructions[0], reconstructions[1])


def test_inference_between_training_steps_does_not_change_training(digits):
    """A callback that runs inference after every epoch (forward_into puts every network in eval mode) leaves
    training as it was: each step puts the generator *and both discriminators* back in train mode. Before, the
    discriminators stayed in eval mode and trained on their running batch-norm statistics from then on."""
    from skorch.callbacks import Callback

    from skdefect._validation import check_fit_inputs
    from skdefect.training import ImageBatchSource

    X, y, *_ = digits
    source = ImageBatchSource(check_fit_inputs(X[:16], None, None, require="none")[0], size=(32, 32))

    class Inference(Callback):
        def on_epoch_end(self, net, **kwargs):  # noqa: ANN001, ANN003
            net.forward_into(source, lambda x: net.module_(x)[0].mean(dim=(1, 2, 3)))

    plain = DualDiscriminatorGANDetector(**{**FAST, "epochs": 3}).fit(X, y)
    probed = DualDiscriminatorGANDetector(**{**FAST, "epochs": 3}, callbacks=[Inference()]).fit(X, y)
    keys = ("train_loss", "train_d_normal", "train_d_anomalous", "valid_ap")
    assert len(plain.net_.history) == len(probed.net_.history) == 3
    for a, b in zip(plain.net_.history, probed.net_.history, strict=True):
        assert [a[k] for k in keys] == pytest.approx([b[k] for k in keys], rel=1e-6)
    np.testing.assert_allclose(plain.decision_function(X), probed.decision_function(X), rtol=1e-6)


def test_augment_is_off_by_default_and_auto_keeps_digits_upright():
    """The paper trains without augmentation (a flip changes a digit); ``"auto"`` tests the training images as
    the two-stage detector does and keeps the flips alone for digits, which have an orientation."""
    from sklearn.datasets import load_digits

    d = load_digits()
    X = (d.images[d.target == 7][:100] / 16.0).astype(np.float32)
    kw = {**FAST, "epochs": 1}
    assert DualDiscriminatorGANDetector(**kw).fit(X).augment_ is None
    assert DualDiscriminatorGANDetector(**kw, augment="auto").fit(X).augment_ == "flips"
