"""Experiment logging: skorch's TensorBoard callback through the estimators' ``callbacks`` parameter."""

from __future__ import annotations

import pickle
import uuid
from pathlib import Path

import numpy as np
import pytest
from sklearn.base import clone
from sklearn.model_selection import GridSearchCV, StratifiedKFold

from skdefect import ConcentratedTwoStageDetector, DualDiscriminatorGANDetector
from skdefect.datasets import make_surface_defects

pytest.importorskip("tensorboard")
from skorch.callbacks import TensorBoard  # noqa: E402
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator  # noqa: E402
from torch.utils.tensorboard import SummaryWriter  # noqa: E402

TWO_STAGE = dict(width=0.25, seg_epochs=3, dec_epochs=2, random_state=0, device="cpu")


@pytest.fixture(scope="module")
def data():
    X, y, masks = make_surface_defects(n_samples=32, image_shape=(32, 32), random_state=0, difficulty="easy",
                                       textures=("brick",))
    return X, y, masks


def _scalars(logdir: Path) -> dict[str, list[tuple[int, float]]]:
    acc = EventAccumulator(str(logdir))
    acc.Reload()
    return {tag: [(e.step, e.value) for e in acc.Scalars(tag)] for tag in acc.Tags()["scalars"]}


def test_two_stage_loss_terms_reach_tensorboard(data, tmp_path):
    X, y, masks = data
    det = ConcentratedTwoStageDetector(callbacks=[TensorBoard(SummaryWriter(str(tmp_path)))], **TWO_STAGE)
    det.fit(X, y, masks=masks)
    assert list(tmp_path.glob("events.out.tfevents.*"))
    scalars = _scalars(tmp_path)
    assert {"Loss/train_loss", "Loss/train_seg_loss", "Loss/train_dec_loss"} <= set(scalars)
    history = det.net_.history
    # one point per epoch of each stage, with the history's values (TensorBoard stores float32)
    seg = scalars["Loss/train_seg_loss"]
    assert [step for step, _ in seg] == [1, 2, 3]
    np.testing.assert_allclose([v for _, v in seg], history[:3, "train_seg_loss"], rtol=1e-6)
    dec = scalars["Loss/train_dec_loss"]
    assert [step for step, _ in dec] == [4, 5]
    np.testing.assert_allclose([v for _, v in dec], history[3:, "train_dec_loss"], rtol=1e-6)
    assert [step for step, _ in scalars["Loss/train_loss"]] == [1, 2, 3, 4, 5]


def test_gan_loss_terms_reach_tensorboard(tmp_path):
    rng = np.random.default_rng(0)
    X = rng.random((24, 32, 32)).astype(np.float32)
    y = np.r_[np.zeros(16, dtype=int), np.ones(8, dtype=int)]
    X[y == 1, 8:20, 8:20] = 1.0
    det = DualDiscriminatorGANDetector(width=0.25, epochs=2, batch_size=8, image_size=32, random_state=0,
                                       device="cpu", callbacks=[TensorBoard(SummaryWriter(str(tmp_path)))])
    det.fit(X, y)
    scalars = _scalars(tmp_path)
    # every loss term of the history is logged (skorch leaves out "_best" flags and batch counts)
    logged = {k for k in det.net_.history[-1] if k.startswith("train_") and not k.endswith(("_best", "_count"))}
    assert {"train_d_normal", "train_d_anomalous", "train_g_l1"} <= logged
    assert {f"Loss/{k}" for k in logged} <= set(scalars)
    for key in logged:
        assert np.isfinite([v for _, v in scalars[f"Loss/{key}"]]).all()


class RunDirTensorBoard(TensorBoard):
    """The clone-safe recipe of docs/logging.md: a log folder, a writer per fit, no writer at rest."""

    def __init__(self, logdir: str, writer=None, **kwargs):  # skorch clones callbacks with every attribute
        super().__init__(writer=writer, **kwargs)
        self.logdir = logdir

    def initialize(self):
        super().initialize()
        self.writer = SummaryWriter(str(Path(self.logdir) / uuid.uuid4().hex[:12]))
        return self

    def on_train_end(self, net, **kwargs):
        super().on_train_end(net, **kwargs)
        self.writer = None  # a SummaryWriter holds a lock: drop it so the estimator clones and pickles


def test_a_writer_is_not_clonable_but_the_run_dir_recipe_searches(data, tmp_path):
    X, y, masks = data
    with pytest.raises(TypeError, match="pickle"):
        clone(ConcentratedTwoStageDetector(callbacks=[TensorBoard(SummaryWriter(str(tmp_path / "plain")))]))

    base = ConcentratedTwoStageDetector(callbacks=[RunDirTensorBoard(str(tmp_path / "search"))],
                                        **{**TWO_STAGE, "seg_epochs": 1, "dec_epochs": 1})
    search = GridSearchCV(base, {"gamma": [0.0, 0.5]}, cv=StratifiedKFold(2, shuffle=True, random_state=0),
                          scoring="average_precision").fit(X, y, masks=masks)
    runs = sorted((tmp_path / "search").iterdir())
    assert len(runs) == 2 * 2 + 1  # one run folder per fit, the refit included
    for run in runs:
        assert {"Loss/train_seg_loss", "Loss/train_dec_loss"} <= set(_scalars(run))
    restored = pickle.loads(pickle.dumps(search.best_estimator_))
    np.testing.assert_array_equal(restored.decision_function(X[:4]), search.best_estimator_.decision_function(X[:4]))
