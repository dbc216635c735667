"""Hyperparameter search on a real Dask cluster gives the scores of a local run."""

from __future__ import annotations

import logging

import joblib
import numpy as np
import pytest
import torch
from sklearn.model_selection import GridSearchCV, StratifiedKFold

from skdefect import ConcentratedTwoStageDetector
from skdefect.datasets import make_surface_defects

distributed = pytest.importorskip("distributed")

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def data():
    X, y, masks = make_surface_defects(n_samples=48, image_shape=(32, 32), random_state=0, difficulty="easy",
                                       textures=("brick",))
    return X, y, masks


def _search() -> GridSearchCV:
    # trained enough that the scores are spread out (AP ~0.79), not a near-constant untrained net; brick
    # texture is cut at any angle, so the transposes of "dihedral" are more data here (docs/training.md)
    return GridSearchCV(
        ConcentratedTwoStageDetector(backbone="wang2022", width=0.25, seg_epochs=6, dec_epochs=3, random_state=0,
                                     device="cpu", augment="dihedral"),
        {"gamma": [0.0, 0.5]},
        scoring="average_precision",
        cv=StratifiedKFold(2, shuffle=True, random_state=0),
        n_jobs=1,
    )


@pytest.fixture(scope="module")
def client():
    # two worker processes of one thread each: the estimators seed torch's global RNG for the length
    # of a fit, so two fits must never share a process; the nanny sets OMP_NUM_THREADS=1 in each
    cluster = distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None,
                                       silence_logs=logging.ERROR)
    with cluster, distributed.Client(cluster) as c:
        yield c


@pytest.fixture
def same_threads_as_workers(client):
    """Run this process's torch ops on one thread, as the workers do; restore the count afterwards.

    The thread count sets the summation order of CPU convolutions, so runs on 1 and 2 threads differ
    in the last bits, enough to swap two close scores (another test module sets 2 threads at import).
    """
    worker_threads = set(client.run(torch.get_num_threads).values())
    assert worker_threads == {1}
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def test_grid_search_on_dask_matches_a_local_run(data, client, same_threads_as_workers):
    X, y, masks = data
    local = _search().fit(X, y, masks=masks)

    remote = _search()
    with distributed.get_task_stream(client) as stream, joblib.parallel_backend("dask"):
        remote.fit(X, y, masks=masks)

    # the fits ran on the cluster's workers, not in this process
    workers = {t["worker"] for t in stream.data}
    assert workers and workers <= set(client.scheduler_info()["workers"])
    n_fits = len(remote.cv_results_["params"]) * 2
    assert len(stream.data) >= n_fits

    for key in ("mean_test_score", "std_test_score", "split0_test_score", "split1_test_score", "rank_test_score"):
        np.testing.assert_allclose(remote.cv_results_[key], local.cv_results_[key], rtol=0, atol=1e-6, err_msg=key)
    assert remote.cv_results_["params"] == local.cv_results_["params"]
    assert remote.best_params_ == local.best_params_
    # the scores are real: the candidates differ and the best one ranks defects above chance
    assert np.ptp(local.cv_results_["mean_test_score"]) > 0
    assert local.best_score_ >= 0.7  # measured 0.79; chance is ~0.5
    np.testing.assert_allclose(remote.decision_function(X[:8]), local.decision_function(X[:8]), atol=1e-6)


def test_plugin_names_resolve_inside_the_workers(client):
    # names are resolved in fit, so each worker process loads the entry points itself
    from skdefect.plugins import list_plugins

    def installed() -> list[tuple[str, str, str]]:  # built-ins and entry points, not run-time registrations
        return sorted((e.kind, e.name, e.origin) for e in list_plugins() if "registered at run time" not in e.origin)

    local = installed()
    remote = client.run(installed)
    assert len(remote) == 2
    assert ("loss", "concentrated", "skdefect (built-in)") in local
    for names in remote.values():
        assert names == local
