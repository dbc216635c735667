"""The properties behind sklearn's common checks that cannot run on images, checked on images.

The checks listed as expected failures in ``test_sklearn_checks.py`` feed rows of 1-10 arbitrary features, most
with values such as ``normal(loc=100)`` or ``make_blobs`` (negative, far outside [0, 1]); no image shape matches them
and float images outside [0, 1] are refused on purpose (0-255 floats would be trained on as if 255 times
brighter). Each test here checks one of those checks' properties on flattened images that the detectors accept;
the name of the sklearn check it stands for is in its docstring.
"""

from __future__ import annotations

import pickle

import joblib
import numpy as np
import pytest
import torch
from conftest import tiny_gan, tiny_two_stage
from sklearn.base import clone
from sklearn.exceptions import NotFittedError
from sklearn.pipeline import Pipeline

from skdefect import ConcentratedTwoStageDetector
from skdefect.datasets import make_surface_defects

SIDE = 32
_X, Y, MASKS = make_surface_defects(n_samples=24, image_shape=(SIDE, SIDE), random_state=0)
X = (_X.reshape(len(_X), -1) / 255.0).astype(np.float64)  # flattened rows of (32, 32) images, floats in [0, 1]
METHODS = ("decision_function", "score_samples", "predict", "predict_proba")

ESTIMATORS = {
    "two_stage": lambda: tiny_two_stage(image_shape=(SIDE, SIDE), width=0.125, seg_epochs=1, dec_epochs=1),
    "gan": lambda: tiny_gan(image_shape=(SIDE, SIDE), epochs=1, patch_size=8, patch_stride=8, top_n=2),
}


def _fit(est, X_fit=X):  # noqa: ANN001, ANN202
    if isinstance(est, ConcentratedTwoStageDetector) or (
        isinstance(est, Pipeline) and isinstance(est[-1], ConcentratedTwoStageDetector)
    ):
        extra = {"masks": MASKS} if not isinstance(est, Pipeline) else {f"{est.steps[-1][0]}__masks": MASKS}
        return est.fit(X_fit, Y, **extra)
    return est.fit(X_fit, Y)


@pytest.fixture(scope="module", params=list(ESTIMATORS))
def fitted(request):  # noqa: ANN001, ANN201
    return request.param, _fit(ESTIMATORS[request.param]())


def _state(est) -> dict:  # noqa: ANN001
    """Every attribute's content, the networks' weights and train/eval modes included."""
    state = {k: joblib.hash(v) for k, v in vars(est).items() if k != "net_"}
    for k, v in vars(est.net_).items():
        if isinstance(v, torch.nn.Module):
            state[k] = joblib.hash({n: t.detach().cpu().numpy() for n, t in v.state_dict().items()})
            state[k + ".training"] = [m.training for m in v.modules()]
    return state


@pytest.mark.parametrize("name", list(ESTIMATORS))
def test_fit_returns_self_and_leaves_parameters_alone(name: str) -> None:
    """check_estimators_fit_returns_self, check_estimators_overwrite_params, check_dont_overwrite_parameters."""
    est = ESTIMATORS[name]()
    params = joblib.hash(est.get_params(deep=True))
    public_before = {k for k in vars(est) if not k.startswith("_")}
    assert _fit(est) is est
    assert joblib.hash(est.get_params(deep=True)) == params
    added = {k for k in vars(est) if not k.startswith("_")} - public_before
    assert added and all(k.endswith("_") for k in added), sorted(added)


def test_prediction_methods_change_nothing(fitted) -> None:  # noqa: ANN001
    """check_dict_unchanged: scoring leaves every attribute and every weight as it was (and the nets in eval
    mode where they were)."""
    _, est = fitted
    before = _state(est)
    for method in (*METHODS, "anomaly_map" if hasattr(est, "anomaly_map") else "segment"):
        getattr(est, method)(X[:5])
    assert _state(est) == before


@pytest.mark.parametrize("name", list(ESTIMATORS))
def test_fit_is_idempotent(name: str) -> None:
    """check_fit_idempotent: fitting again gives the same model as the first fit and as a fresh clone's."""
    est = _fit(ESTIMATORS[name]())
    first = est.decision_function(X)
    again = _fit(est).decision_function(X)
    fresh = _fit(clone(est)).decision_function(X)
    np.testing.assert_allclose(again, first, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(fresh, first, rtol=1e-5, atol=1e-6)


def test_scores_do_not_depend_on_order_or_batching(fitted) -> None:  # noqa: ANN001
    """check_methods_sample_order_invariance and check_methods_subset_invariance."""
    _, est = fitted
    order = np.random.default_rng(0).permutation(len(X))
    for method in METHODS:
        full = np.asarray(getattr(est, method)(X))
        np.testing.assert_allclose(np.asarray(getattr(est, method)(X[order])), full[order], rtol=1e-5, atol=1e-6)
        pieces = np.concatenate([getattr(est, method)(X[i : i + 5]) for i in range(0, len(X), 5)])
        np.testing.assert_allclose(pieces, full, rtol=1e-5, atol=1e-6)


def test_pickle_round_trip_scores_the_same(fitted) -> None:  # noqa: ANN001
    """check_estimators_pickle."""
    _, est = fitted
    copy = pickle.loads(pickle.dumps(est))
    for method in METHODS:
        np.testing.assert_array_equal(getattr(copy, method)(X), getattr(est, method)(X))


def test_array_layouts_score_the_same(fitted, tmp_path) -> None:  # noqa: ANN001
    """check_f_contiguous_array_estimator, check_readonly_memmap_input, check_classifier_data_not_an_array,
    check_estimators_dtypes (float32 / float64 / uint8 of the same images)."""
    _, est = fitted
    reference = est.decision_function(X)
    path = tmp_path / "x.npy"
    np.save(path, X)
    memmap = np.load(path, mmap_mode="r")
    for variant in (np.asfortranarray(X), memmap, X.tolist(), X.astype(np.float32)):
        np.testing.assert_allclose(est.decision_function(variant), reference, rtol=1e-4, atol=1e-5)
    as_uint8 = _X.reshape(len(_X), -1)  # the same images as 0-255 integers
    np.testing.assert_allclose(est.decision_function(as_uint8), reference, rtol=1e-3, atol=1e-4)


@pytest.mark.parametrize("name", list(ESTIMATORS))
def test_unfitted_estimator_refuses_to_predict(name: str) -> None:
    """check_fit_check_is_fitted."""
    est = ESTIMATORS[name]()
    for method in METHODS:
        with pytest.raises(NotFittedError):
            getattr(est, method)(X)


def test_n_features_in_and_other_widths(fitted) -> None:  # noqa: ANN001
    """check_n_features_in, check_n_features_in_after_fitting, check_fit2d_predict1d."""
    _, est = fitted
    assert est.n_features_in_ == SIDE * SIDE
    with pytest.raises(ValueError, match=r"X has 1023 feature\(s\) per sample .* needs H\*W\*C = 1024"):
        est.decision_function(X[:, :-1])
    with pytest.raises(ValueError, match=r"\bX\b"):
        est.predict(X[0])


def test_probabilities_follow_the_decision_function(fitted) -> None:  # noqa: ANN001
    """check_decision_proba_consistency, and predict agreeing with the threshold."""
    _, est = fitted
    scores, proba = est.decision_function(X), est.predict_proba(X)
    np.testing.assert_allclose(proba.sum(axis=1), 1.0)
    order = np.argsort(scores, kind="stable")
    assert np.all(np.diff(proba[order, 1]) >= 0), "P(defect) does not grow with the decision function"
    np.testing.assert_array_equal(est.proba_from_decision(scores), proba[:, 1])  # the CLI's path
    with pytest.raises(ValueError, match="scores must be 1-D"):
        est.proba_from_decision(scores[:, None])
    np.testing.assert_array_equal(est.predict(X), (scores >= est.threshold_).astype(np.int64))
    np.testing.assert_array_equal(est.score_samples(X), -scores)


@pytest.mark.parametrize("name", list(ESTIMATORS))
def test_pipeline_gives_the_estimators_scores(name: str) -> None:
    """check_pipeline_consistency."""
    alone = _fit(ESTIMATORS[name]()).decision_function(X)
    piped = _fit(Pipeline([("detector", ESTIMATORS[name]())])).decision_function(X)
    np.testing.assert_allclose(piped, alone, rtol=1e-5, atol=1e-6)
