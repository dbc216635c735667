"""Interrupted training resumes from its checkpoint: SIGKILL mid-epoch, crashes, Ctrl-C/early stop, grid searches.

``checkpoint_dir`` makes both estimators write their complete training state at the end of every epoch (every
module and optimizer, the history, the torch and sampler RNG states) and makes ``fit`` continue from it. On the
CPU a resumed fit gives *identical* scores to an uninterrupted one, which is what these tests assert.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import tiny_gan, tiny_two_stage
from sklearn.model_selection import GridSearchCV, StratifiedKFold
from skorch.callbacks import Callback

from skdefect import ConcentratedTwoStageDetector
from skdefect.datasets import make_surface_defects
from skdefect.training.checkpoint import write_checkpoint

X, Y, MASKS = make_surface_defects(n_samples=48, image_shape=(32, 32), random_state=0, difficulty="easy",
                                   textures=("brick",))
X_FLOAT = (X / 255.0).astype(np.float32)


def two_stage(**kw):
    return tiny_two_stage(**{"seg_epochs": 4, "dec_epochs": 4, **kw})


def gan(**kw):
    return tiny_gan(**{"epochs": 8, "batch_size": 16, **kw})


def fit(det):
    if isinstance(det, ConcentratedTwoStageDetector):
        return det.fit(X, Y, masks=MASKS)
    return det.fit(X_FLOAT, Y)


MAKERS = {"two_stage": two_stage, "gan": gan}


def only_checkpoint(directory: Path) -> Path:
    files = sorted(directory.glob("*.ckpt"))
    assert len(files) == 1, files
    return files[0]


def load(path: Path) -> dict:
    import skdefect.sampling
    from skdefect.training.checkpoint import allowed_classes, read_checkpoint
    from skdefect.training.stages import StageProgress

    classes = [v for v in vars(skdefect.sampling).values() if isinstance(v, type)]
    return read_checkpoint(path, allowed_classes([], [StageProgress, *classes]))


class EpochLog(Callback):
    """Appends the number of every epoch that begins to a list owned by the test."""

    def __init__(self, log: list) -> None:
        self.log = log

    def on_epoch_begin(self, net, **kwargs):  # noqa: ANN001
        self.log.append(len(net.history))


EPOCHS_RUN: list[int] = []


class GlobalEpochLog(Callback):
    """Like :class:`EpochLog` into the module-level ``EPOCHS_RUN``: survives sklearn's clone (which copies lists)."""

    def on_epoch_begin(self, net, **kwargs):  # noqa: ANN001
        EPOCHS_RUN.append(len(net.history))


class CrashInEpoch(Callback):
    """Raises in the middle of epoch ``epoch`` (after its second batch), like a crash would."""

    def __init__(self, epoch: int, error: type[BaseException] = RuntimeError) -> None:
        self.epoch, self.error = epoch, error

    def on_batch_end(self, net, **kwargs):  # noqa: ANN001
        if len(net.history) == self.epoch and len(net.history[-1]["batches"]) == 2:
            raise self.error("simulated crash")


@pytest.fixture(scope="module")
def reference_scores():
    """Scores of uninterrupted fits without checkpoints."""
    return {kind: fit(make()).decision_function(X) for kind, make in MAKERS.items()}


# -- a real SIGKILL, in a subprocess ------------------------------------------------------------------------------
SCRIPT = textwrap.dedent(
    """
    import json, sys, time
    import numpy as np
    from skorch.callbacks import Callback
    from skdefect import ConcentratedTwoStageDetector, DualDiscriminatorGANDetector

    kind, checkpoint_dir, sleep, out, spec = sys.argv[1], sys.argv[2], float(sys.argv[3]), sys.argv[4], sys.argv[5]
    with open(spec) as f:
        params = json.load(f)
    data = np.load(spec + ".npz")
    X = data["X"]

    def fit(det):
        if kind == "two_stage":
            return det.fit(X, data["y"], masks=data["masks"])
        return det.fit(data["X_float"], data["y"])

    MAKERS = {"two_stage": lambda **kw: ConcentratedTwoStageDetector(**{**params, **kw}),
              "gan": lambda **kw: DualDiscriminatorGANDetector(**{**params, **kw})}

    class Progress(Callback):  # says which epoch begins, and is slow enough per batch to be killed mid-epoch
        def on_epoch_begin(self, net, **kwargs):
            with open(out + ".progress", "a") as f:
                f.write(f"{len(net.history)}\\n")
        def on_batch_end(self, net, **kwargs):
            time.sleep(sleep)

    det = fit(MAKERS[kind](checkpoint_dir=checkpoint_dir, callbacks=[("progress", Progress())]))
    np.save(out + ".npy", det.decision_function(X))
    with open(out + ".json", "w") as f:
        json.dump({"epochs": [row["epoch"] for row in det.net_.history],
                   "timed": all("dur" in row for row in det.net_.history)}, f)
    if sleep == 0:  # the uninterrupted reference, in a process with the same thread settings
        np.save(out + ".reference.npy", fit(MAKERS[kind]()).decision_function(X))
    """
)


def _started_epochs(out: Path) -> list[int]:
    progress = Path(str(out) + ".progress")
    return [int(line) for line in progress.read_text().split()] if progress.exists() else []


@pytest.mark.skipif(not hasattr(signal, "SIGKILL"), reason="needs POSIX signals")
@pytest.mark.parametrize("kind", ["two_stage", "gan"])
def test_sigkill_mid_epoch_then_fit_resumes_from_the_last_epoch_with_identical_scores(kind, tmp_path):
    script = tmp_path / "run.py"
    script.write_text(SCRIPT)
    env = {**os.environ, "OMP_NUM_THREADS": "1", "OMP_WAIT_POLICY": "PASSIVE"}
    spec = tmp_path / "spec.json"
    spec.write_text(json.dumps(MAKERS[kind]().get_params()))  # the same estimator, data and seed as here
    np.savez(str(spec) + ".npz", X=X, X_float=X_FLOAT, y=Y, masks=MASKS)
    ckpt = tmp_path / "ckpt"

    def start(out: Path, sleep: float) -> subprocess.Popen:
        args = [sys.executable, str(script), kind, str(ckpt), str(sleep), str(out), str(spec)]
        return subprocess.Popen(args, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)

    victim_out = tmp_path / "victim"
    victim = start(victim_out, sleep=0.05)
    deadline = time.monotonic() + 120
    while max(_started_epochs(victim_out), default=0) < 4:  # epochs 1-3 done and checkpointed
        assert victim.poll() is None, victim.stdout.read().decode()
        assert time.monotonic() < deadline, "the victim did not reach epoch 4"
        time.sleep(0.02)
    time.sleep(0.08)  # into epoch 4: each of its batches sleeps 0.05 s
    victim.send_signal(signal.SIGKILL)
    victim.wait(timeout=30)
    assert victim.returncode == -signal.SIGKILL
    assert not Path(str(victim_out) + ".npy").exists()  # it really died before finishing

    state = load(only_checkpoint(ckpt))
    k, last_started = state["epoch"], max(_started_epochs(victim_out))
    assert k >= 2 and last_started - k <= 1  # at most the epoch in progress is lost
    assert len(state["history"]) == k

    resumed_out = tmp_path / "resumed"
    resumed = start(resumed_out, sleep=0.0)
    output = resumed.communicate(timeout=120)[0].decode()
    assert resumed.returncode == 0, output
    assert _started_epochs(resumed_out) == list(range(k + 1, 9))  # it starts at epoch k + 1
    summary = json.loads(Path(str(resumed_out) + ".json").read_text())
    assert summary["epochs"] == list(range(1, 9)) and summary["timed"]  # one history, epochs 1..8
    scores = np.load(str(resumed_out) + ".npy")
    # identical to the uninterrupted fit, bit for bit: weights, optimizer moments and RNG streams were restored
    np.testing.assert_array_equal(scores, np.load(str(resumed_out) + ".reference.npy"))


# -- what a checkpoint holds ----------------------------------------------------------------------------------------
def test_gan_checkpoint_holds_all_three_networks_and_optimizers(tmp_path):
    det = fit(gan(checkpoint_dir=tmp_path))
    path = only_checkpoint(tmp_path)
    assert path.name.startswith("DualDiscriminatorGANDetector-")
    state = load(path)
    assert state["epoch"] == 8 and len(state["history"]) == 8
    assert set(state["modules"]) == {"module", "disc_normal", "disc_anomalous", "criterion"}
    assert set(state["optimizers"]) == {"optimizer", "optimizer_disc_normal", "optimizer_disc_anomalous"}
    for name in ("module", "disc_normal", "disc_anomalous"):
        saved, live = state["modules"][name], getattr(det.net_, name + "_").state_dict()
        assert saved.keys() == live.keys()
        assert all(torch.equal(saved[key], live[key]) for key in saved)
    for name, opt in state["optimizers"].items():
        steps = {float(s["step"]) for s in opt["state"].values()}
        assert len(steps) == 1 and steps.pop() > 0, name  # Adam moments of trained parameters
    # D_A is only stepped on batches with anomalies, D_N and G on every batch
    assert state["attributes"]["sampler"].cluster_labels_.shape == (38,)  # the 48 images less 10 for validation
    assert isinstance(state["attributes"]["_group_rng"], np.random.RandomState)
    assert state["rng"]["torch"].dtype == torch.uint8


def test_two_stage_checkpoint_holds_module_both_optimizers_and_sampler(tmp_path):
    fit(two_stage(checkpoint_dir=str(tmp_path)))
    state = load(only_checkpoint(tmp_path))
    assert set(state["modules"]) == {"module", "criterion"}
    assert set(state["optimizers"]) == {"optimizer", "optimizer_decision"}
    assert all(opt["state"] for opt in state["optimizers"].values())  # both stages trained
    sampler = state["attributes"]["sampler"]
    assert type(sampler).__name__ == "BalancedSampler" and sampler._state is not None  # LRU pools included
    assert isinstance(state["attributes"]["_augment_rng"], np.random.RandomState)


# -- resuming, in process ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize("kind", ["two_stage", "gan"])
def test_crash_mid_epoch_then_fit_resumes_with_identical_scores(kind, tmp_path, reference_scores):
    make = MAKERS[kind]
    with pytest.raises(RuntimeError, match="simulated crash"):
        fit(make(checkpoint_dir=tmp_path, callbacks=[CrashInEpoch(6)]))  # two-stage: in the decision stage
    assert load(only_checkpoint(tmp_path))["epoch"] == 5
    log: list[int] = []
    det = fit(make(checkpoint_dir=tmp_path, callbacks=[EpochLog(log)]))
    assert log == [6, 7, 8]
    np.testing.assert_array_equal(det.decision_function(X), reference_scores[kind])
    # a finished run's checkpoint is loaded, not retrained: no epoch runs, same scores
    log.clear()
    again = fit(make(checkpoint_dir=tmp_path, callbacks=[EpochLog(log)]))
    assert log == [] and len(again.net_.history) == 8
    np.testing.assert_array_equal(again.decision_function(X), reference_scores[kind])


def test_interrupt_at_epoch_end_keeps_that_epoch_and_resume_completes(tmp_path, reference_scores):
    """Ctrl-C propagates out of fit (skorch would swallow it and pass the fit off as finished); the estimator
    stays unfitted, the checkpoint keeps the epoch that finished, and a rerun resumes from it."""
    from sklearn.exceptions import NotFittedError

    class StopAfter(Callback):
        def on_epoch_end(self, net, **kwargs):  # noqa: ANN001
            if len(net.history) == 3:
                raise KeyboardInterrupt

    stopped = gan(checkpoint_dir=tmp_path, callbacks=[StopAfter()])
    with pytest.raises(KeyboardInterrupt):
        fit(stopped)
    with pytest.raises(NotFittedError):
        stopped.predict(X)
    assert load(only_checkpoint(tmp_path))["epoch"] == 3
    log: list[int] = []
    det = fit(gan(checkpoint_dir=tmp_path, callbacks=[EpochLog(log)]))
    assert log == [4, 5, 6, 7, 8]
    np.testing.assert_array_equal(det.decision_function(X), reference_scores["gan"])


def test_other_parameters_or_data_never_resume_a_foreign_checkpoint(tmp_path):
    fit(gan(checkpoint_dir=tmp_path))
    log: list[int] = []
    fit(gan(checkpoint_dir=tmp_path, w_abc=1.0, callbacks=[EpochLog(log)]))  # another hyperparameter
    assert log == list(range(1, 9))
    log.clear()
    gan(checkpoint_dir=tmp_path, callbacks=[EpochLog(log)]).fit(X_FLOAT[::-1].copy(), Y[::-1].copy())  # other data
    assert log == list(range(1, 9))
    log.clear()  # groups choose other validation images: another run
    gan(checkpoint_dir=tmp_path, callbacks=[EpochLog(log)]).fit(X_FLOAT, Y, groups=np.arange(len(Y)) // 2)
    assert log == list(range(1, 9))
    assert len(list(tmp_path.glob("*.ckpt"))) == 4
    # verbose, device, callbacks and the directory itself do not change what is trained: same file
    log.clear()
    fit(gan(checkpoint_dir=tmp_path, verbose=0, callbacks=[EpochLog(log)]))
    assert log == [] and len(list(tmp_path.glob("*.ckpt"))) == 4


def test_unreadable_or_mismatched_checkpoint_warns_and_trains_from_scratch(tmp_path, reference_scores):
    fit(gan(checkpoint_dir=tmp_path))
    path = only_checkpoint(tmp_path)
    path.write_bytes(b"not a checkpoint")
    with pytest.warns(RuntimeWarning, match="could not be read.*training from scratch"):
        det = fit(gan(checkpoint_dir=tmp_path))
    np.testing.assert_array_equal(det.decision_function(X), reference_scores["gan"])
    state = load(path)
    state["meta"] = {**state["meta"], "data": "something else"}  # e.g. a hash collision of the file name
    write_checkpoint(path, state)
    with pytest.warns(RuntimeWarning, match="belongs to another run"):
        fit(gan(checkpoint_dir=tmp_path))
    assert load(path)["meta"]["data"] != "something else"  # overwritten by the fresh run
    assert not list(tmp_path.glob("*.tmp"))  # no temporary files left behind


def test_grid_search_with_checkpoints_resumes_per_candidate_and_fold(tmp_path):
    def search():
        return GridSearchCV(gan(checkpoint_dir=tmp_path, epochs=2, callbacks=[GlobalEpochLog()]),
                            {"w_abc": [0.0, 0.5]}, scoring="average_precision",
                            cv=StratifiedKFold(2, shuffle=True, random_state=0))

    EPOCHS_RUN.clear()
    first = search().fit(X_FLOAT, Y)
    assert len(list(tmp_path.glob("*.ckpt"))) == 2 * 2 + 1  # one file per (candidate, fold), one for the refit
    assert len(EPOCHS_RUN) == 5 * 2
    EPOCHS_RUN.clear()
    second = search().fit(X_FLOAT, Y)  # e.g. after the machine went down: every finished fit is loaded
    assert EPOCHS_RUN == []
    np.testing.assert_array_equal(second.cv_results_["mean_test_score"], first.cv_results_["mean_test_score"])


def test_diverged_epoch_is_not_checkpointed(tmp_path, monkeypatch):
    from skdefect import losses

    real = losses.latent_loss
    log: list[int] = []

    def latent_nan_in_epoch_3(z, z_hat):
        out = real(z, z_hat)
        return out * float("nan") if log[-1] == 3 else out

    monkeypatch.setattr(losses, "latent_loss", latent_nan_in_epoch_3)
    with pytest.raises(FloatingPointError, match=r"epoch 3: loss term 'g_latent'"):
        fit(gan(checkpoint_dir=tmp_path, callbacks=[EpochLog(log)]))
    assert load(only_checkpoint(tmp_path))["epoch"] == 2


def test_a_pickle_planted_in_the_checkpoint_folder_is_never_loaded(tmp_path, reference_scores):
    """A file that would run code when unpickled sits where the run's checkpoint belongs: it is refused with a
    warning, its code never runs, and training from scratch replaces it."""
    import pickle

    fit(gan(checkpoint_dir=tmp_path, epochs=1))
    path = only_checkpoint(tmp_path)
    marker = tmp_path / "pwned"

    class Payload:
        def __reduce__(self):
            return (os.system, (f"touch {marker}",))

    for planted in (pickle.dumps(Payload()), b"PK\x03\x04" + b"\0" * 64):
        path.write_bytes(planted)
        with pytest.warns(RuntimeWarning, match="could not be read.*(pickle|safetensors).*training from scratch"):
            fit(gan(checkpoint_dir=tmp_path, epochs=1))
        assert not marker.exists()
        assert load(path)["epoch"] == 1  # replaced by a real checkpoint


def test_checkpoint_objects_only_of_the_nets_own_classes_and_no_deep_trees(tmp_path):
    import argparse

    from skdefect.training.checkpoint import CheckpointError, read_checkpoint

    path = tmp_path / "x.ckpt"
    write_checkpoint(path, {"obj": argparse.Namespace(a=1)})  # a class the net does not use
    with pytest.raises(CheckpointError, match="object of class 'argparse.Namespace'"):
        read_checkpoint(path, {})
    deep: list = []
    node = deep
    for _ in range(200):
        node.append([])
        node = node[0]
    with pytest.raises(CheckpointError, match="nested deeper"):
        write_checkpoint(path, {"deep": deep})


def test_checkpoint_round_trip_keeps_values_and_shared_objects(tmp_path):
    from skdefect.training.checkpoint import allowed_classes, read_checkpoint
    from skdefect.training.stages import StageProgress

    rng = np.random.RandomState(3)
    progress = StageProgress(index=1, best=float("nan"), best_state={"w": torch.arange(3.0)})
    state = {
        "optimizer": {"state": {0: {"step": torch.tensor(4.0)}}, "param_groups": [{"betas": (0.9, 0.999)}]},
        "arrays": [np.arange(6, dtype=np.uint32).reshape(2, 3), np.float64(2.5)],
        "bytes": b"\x00\xff", "inf": float("-inf"), "rngs": (rng, rng), "progress": progress,
    }
    write_checkpoint(tmp_path / "s.ckpt", state)
    back = read_checkpoint(tmp_path / "s.ckpt", allowed_classes([progress]))
    assert back["optimizer"]["state"][0]["step"].item() == 4.0
    assert back["optimizer"]["param_groups"][0]["betas"] == (0.9, 0.999)
    np.testing.assert_array_equal(back["arrays"][0], state["arrays"][0])
    assert back["arrays"][0].dtype == np.uint32 and back["arrays"][1] == 2.5
    assert back["bytes"] == b"\x00\xff" and back["inf"] == float("-inf")
    assert back["rngs"][0] is back["rngs"][1]  # shared before, shared after
    assert back["rngs"][0].randint(1 << 30) == rng.randint(1 << 30)
    assert isinstance(back["progress"], StageProgress) and back["progress"].index == 1
    assert np.isnan(back["progress"].best) and torch.equal(back["progress"].best_state["w"], torch.arange(3.0))
