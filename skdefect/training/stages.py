"""Training stages: what each epoch steps, when a stage ends, its learning-rate schedule and its best weights.

A skdefect net trains in one or more *stages* (the two-stage detector: segmentation, then decision; the GAN:
one stage of three networks). A :class:`Stage` names the optimizers its epochs step, the modules whose weights
it trains and the history value that judges an epoch (``valid_loss``, ``valid_ap`` ...). A
:class:`StageProgress`, kept on the net and in its checkpoints, says where training stands: the stage, the
epochs run in it, the best monitored value so far and the weights of that epoch.

A stage ends after its ``epochs``, or earlier when

* the built-in early stopping (``early_stopping=True``) saw no improvement of the monitored value by more
  than ``tol`` (relative) for ``n_iter_no_change`` epochs, or
* a user's skorch :class:`~skorch.callbacks.EarlyStopping` asked to stop (skorch's callback raises
  ``KeyboardInterrupt``; the net reads that as "end this stage", resets the callback and goes on with the
  next stage, so one callback watches every stage, each with its own ``valid_loss``).

At the end of a stage the weights of its best epoch (by the monitored value, when there is one) are put back.

:class:`OptimizerLRScheduler` makes a user's :class:`~skorch.callbacks.LRScheduler`, which skorch binds to
``net.optimizer_`` alone, drive every other optimizer of the net too: one copy per optimizer, created at the
first epoch of the stage that steps that optimizer and stepped only in that stage's epochs.
"""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass, field
from typing import Any

from skorch.callbacks import LRScheduler, PrintLog

__all__ = ["OptimizerLRScheduler", "Stage", "StageLog", "StageProgress", "cosine_factor", "improved"]


@dataclass(frozen=True)
class Stage:
    """One stage of training.

    Parameters
    ----------
    name : str
        ``"segmentation"``, ``"decision"``, ``"joint"``, ``"gan"``: recorded in the history as ``stage``.
    epochs : int
        The most epochs the stage runs.
    optimizers : tuple of str
        skorch names of the optimizers its epochs step (``"optimizer"``, ``"optimizer_decision"`` ...).
    modules : tuple of str
        Attribute paths (from the net) of the modules it trains, whose best weights are restored at its end
        (``"module_.segmentation"``, ``"disc_normal_"`` ...).
    monitor : str or None
        The history value judging an epoch (recorded by the validation pass); None without validation data.
    lower_is_better : bool
        Whether a smaller ``monitor`` is better.
    """

    name: str
    epochs: int
    optimizers: tuple[str, ...]
    modules: tuple[str, ...]
    monitor: str | None = None
    lower_is_better: bool = True


@dataclass
class StageProgress:
    """Where training stands (checkpointed with the net, so a resumed fit continues the same stage)."""

    index: int = 0
    epoch: int = 0  # epochs run in the current stage
    best: float | None = None
    best_epoch: int | None = None  # the net's epoch number (1-based, as in the history) of the best value
    misses: int = 0
    best_state: dict[str, Any] | None = field(default=None, repr=False)
    stopped_early: list[str] = field(default_factory=list)  # names of the stages that early stopping ended

    def next_stage(self) -> None:
        self.index += 1
        self.epoch, self.best, self.best_epoch, self.misses, self.best_state = 0, None, None, 0, None


def improved(value: float, best: float | None, lower_is_better: bool, tol: float) -> bool:
    """Whether ``value`` beats ``best`` by more than the relative tolerance ``tol``."""
    if not math.isfinite(value):
        return False
    if best is None:
        return True
    margin = tol * abs(best)
    return value < best - margin if lower_is_better else value > best + margin


def cosine_factor(epoch: int, epochs: int) -> float:
    """Cosine decay of the learning rate at ``epoch`` (0-based) of a stage of ``epochs``: 1 at the start."""
    if epochs <= 1:
        return 1.0
    return 0.5 * (1.0 + math.cos(math.pi * epoch / epochs))


def snapshot(modules: dict[str, Any]) -> dict[str, Any]:
    """Deep copies of the modules' state dicts (the best weights of a stage)."""
    return {name: copy.deepcopy(module.state_dict()) for name, module in modules.items()}


class OptimizerLRScheduler(LRScheduler):
    """A copy of a user's :class:`~skorch.callbacks.LRScheduler` that drives ``net.<optimizer_name>_``.

    Built by the net from the user's callback (same policy, monitor, ``step_every`` and scheduler
    arguments); its scheduler is created at the first epoch of the stage that steps the optimizer and it
    steps only in that stage's epochs. The user's own callback keeps driving ``net.optimizer_``.
    """

    def __init__(self, policy: Any = "WarmRestartLR", monitor: Any = "train_loss", event_name: Any = None,
                 step_every: str = "epoch", optimizer_name: str = "optimizer", **kwargs: Any) -> None:
        super().__init__(policy=policy, monitor=monitor, event_name=event_name, step_every=step_every, **kwargs)
        self.optimizer_name = optimizer_name

    @classmethod
    def sibling_of(cls, callback: LRScheduler, optimizer_name: str) -> OptimizerLRScheduler:
        kwargs = dict(callback.kwargs)
        kwargs.pop("last_epoch", None)
        return cls(policy=callback.policy, monitor=callback.monitor, event_name=None,
                   step_every=callback.step_every, optimizer_name=optimizer_name, **kwargs)

    @property
    def kwargs(self) -> dict[str, Any]:
        kwargs = dict(super().kwargs)
        kwargs.pop("optimizer_name", None)
        return kwargs

    def on_train_begin(self, net: Any, **kwargs: Any) -> None:
        self.lr_scheduler_ = None  # created at the first epoch of the optimizer's stage

    def _active(self, net: Any) -> bool:
        if getattr(net, self.optimizer_name + "_", None) is None:
            return False
        if self.optimizer_name not in net.current_stage().optimizers:
            return False
        if self.lr_scheduler_ is None:
            self.lr_scheduler_ = self._get_scheduler(net, self.policy_, **self.kwargs)
        return True

    def _get_scheduler(self, net: Any, policy: Any, **scheduler_kwargs: Any) -> Any:
        return policy(getattr(net, self.optimizer_name + "_"), **scheduler_kwargs)

    def on_epoch_end(self, net: Any, **kwargs: Any) -> None:
        if self._active(net):
            super().on_epoch_end(net, **kwargs)

    def on_batch_end(self, net: Any, training: bool, **kwargs: Any) -> None:
        if training and self._active(net):
            super().on_batch_end(net, training=training, **kwargs)


class StageLog(PrintLog):
    """skorch's epoch table, with a new header whenever a stage starts (a stage has its own losses: without
    it the decision stage's values would print under the segmentation stage's column names)."""

    def __init__(self, **kwargs: Any) -> None:
        kwargs.setdefault("keys_ignored", ["event_stage_end"])
        super().__init__(**kwargs)

    def initialize(self) -> StageLog:
        super().initialize()
        self.stage_ = None
        return self

    def on_epoch_end(self, net: Any, **kwargs: Any) -> None:
        stage = net.history[-1].get("event_stage")
        if stage != self.stage_:
            if self.stage_ is not None:
                self._sink("", net.verbose)
            self.first_iteration_, self.stage_ = True, stage
        super().on_epoch_end(net, **kwargs)
