"""The skorch base net shared by both detectors: staged training, validation, schedules and checkpoints.

The batch pipeline it reads from is :mod:`skdefect.training.data`; the checkpoint files it writes are
:mod:`skdefect.training.checkpoint`.
"""

from __future__ import annotations

import contextlib
import os
import time
import warnings
from collections import defaultdict
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch
from skorch import NeuralNet
from skorch.callbacks import EarlyStopping, LRScheduler
from skorch.history import History
from skorch.utils import TeeGenerator

from ..metrics import average_precision, roc_auc
from .checkpoint import allowed_classes, read_checkpoint, write_checkpoint
from .data import (
    Batch,
    BatchIterator,
    ImageBatchSource,
    check_epoch_indices,
    inference_batch_size,
    resident_fits,
    use_channels_last,
)
from .stages import OptimizerLRScheduler, Stage, StageLog, StageProgress, cosine_factor, improved, snapshot


@contextlib.contextmanager
def eager(*modules: torch.nn.Module) -> Iterator[None]:
    """Run the forward passes of ``modules`` (and their children) uncompiled inside the block.

    ``nn.Module.compile`` compiles in place, keeping its compiled call in the module's
    ``_compiled_call_impl``; tracers such as the ONNX exporter need the Python forward.
    """
    saved = [(m, m._compiled_call_impl) for root in modules for m in root.modules() if m._compiled_call_impl]
    for m, _ in saved:
        m._compiled_call_impl = None
    try:
        yield
    finally:
        for m, call in saved:
            m._compiled_call_impl = call


#: Version of the training-state layout written by :meth:`DefectNetBase.save_checkpoint`.
CHECKPOINT_FORMAT = 2

#: The named augmentations: ``"flips"`` (random horizontal and vertical flips) and ``"dihedral"`` (the flips
#: and, on square images, transposes: all eight symmetries of the square, quarter turns among them).
AUGMENTATIONS: tuple[str, ...] = ("flips", "dihedral")


def resolve_augment(augment: bool | str | None) -> str | None:
    """An ``augment`` parameter as the augmentation it names, ``None`` for none: ``True`` is ``"dihedral"``
    (what ``True`` always meant, so saved parameters keep training as they did), ``False`` none."""
    if augment is None or isinstance(augment, (bool, np.bool_)):
        return "dihedral" if augment else None
    if augment in AUGMENTATIONS:
        return str(augment)
    raise ValueError(f"augment must be a bool or one of {AUGMENTATIONS}; got {augment!r}")


class _NoCriterion(torch.nn.Module):
    """skorch wants a criterion; our train steps compute their own losses."""

    def forward(self, *args: Any) -> torch.Tensor:  # pragma: no cover - never called
        raise RuntimeError("skdefect nets compute their losses in train_step")


class DefectNetBase(NeuralNet):
    """skorch net whose epochs are driven by a skdefect sampler.

    Subclasses implement ``train_step(batch)`` returning ``{"loss": tensor,
    "terms": {name: tensor}}``. Losses stay on the device during an epoch and are
    read back once at its end (no per-batch host synchronisation); every term is
    recorded in the history as ``train_<name>`` per epoch. A non-finite term stops
    training with a :class:`FloatingPointError` naming the epoch and the term.

    Checkpoints: with ``checkpoint`` (a file path) the complete training state is
    written there at the end of every epoch (after every callback ran), atomically,
    and :meth:`fit` continues from it when the file exists and its ``meta`` equals
    ``checkpoint_meta``. The state is every module and criterion registered with
    skorch (``module_``, ``disc_normal_`` ...), every optimizer (``optimizer_``,
    ``optimizer_decision_`` ...), the history (so the epoch counter), the torch RNG
    state (CPU and CUDA) and the attributes named in ``_checkpoint_attributes``
    (the sampler with its RNG and least-recently-used pools, the augmentation RNG, the stage progress
    with its best weights ...).

    Stages (:mod:`skdefect.training.stages`): subclasses list them in :meth:`stages`; :meth:`fit_loop` runs
    them in order. Each epoch runs the training pass, then the validation pass (when ``train_split``
    gives validation data: ``validation_step`` per batch, recorded as ``valid_loss``, ``valid_<term>``
    and, where the step returns image scores of both classes, ``valid_ap`` and ``valid_auroc``). A stage
    ends after its epochs, when ``early_stopping`` saw its monitored value stall for ``n_iter_no_change``
    epochs, or when a user's skorch ``EarlyStopping`` asks to stop; the weights of its best epoch are then
    restored. ``lr_schedule="cosine"`` decays the learning rate of the stage's optimizers from ``lr`` to 0
    over the stage's epochs; ``"plateau"`` multiplies it by :attr:`PLATEAU_FACTOR` whenever the monitored
    value has stalled for a third of ``n_iter_no_change`` epochs (unless a user's ``LRScheduler`` callback
    owns the schedule; such a callback drives every optimizer of the net, see
    :class:`~skdefect.training.stages.OptimizerLRScheduler`).
    Every optimizer step first notifies ``on_grad_computed`` with the parameters it steps (so skorch's
    ``GradientNormClipping`` clips each network), and every optimizer takes the ``optimizer__*``
    parameters, overridden by its own prefix (``optimizer_decision__*`` ...).
    """

    #: Objects pickled into a checkpoint besides modules and optimizers (subclasses extend it).
    _checkpoint_attributes: tuple[str, ...] = ("sampler", "_augment_rng", "progress_")
    #: skorch names of the optimizers the net creates; the first is skorch's own ``optimizer``.
    optimizer_names: tuple[str, ...] = ("optimizer",)

    def __init__(
        self,
        *args: Any,
        sampler: Any = None,
        features: np.ndarray | None = None,
        amp_dtype: torch.dtype | None = None,
        compile_mode: str | None = None,
        predict_batch_size: int | None = None,
        augment: bool | str = False,
        augment_seed: int = 0,
        checkpoint: str | os.PathLike[str] | None = None,
        checkpoint_meta: dict[str, Any] | None = None,
        early_stopping: bool = False,
        n_iter_no_change: int = 10,
        tol: float = 1e-4,
        lr_schedule: str | None = None,
        **kwargs: Any,
    ):
        kwargs.setdefault("criterion", _NoCriterion)
        kwargs.setdefault("train_split", None)
        super().__init__(*args, **kwargs)
        self.early_stopping = early_stopping
        self.n_iter_no_change = n_iter_no_change
        self.tol = tol
        self.lr_schedule = lr_schedule
        self.sampler = sampler
        self.features = features
        self.amp_dtype = amp_dtype
        self.compile_mode = compile_mode
        self.predict_batch_size = predict_batch_size
        self.augment = augment
        self.augment_seed = augment_seed
        self.checkpoint = checkpoint
        self.checkpoint_meta = checkpoint_meta

    def augment_batch(self, batch: Batch) -> Batch:
        """Random flips (and, with ``"dihedral"``, transposes of square images), the same for an image and its mask.

        One choice per minibatch from a generator seeded by ``augment_seed``, so runs
        are reproducible; the pixels are only permuted, never interpolated. Both named
        augmentations draw the same three bits per minibatch, so ``"flips"`` makes the
        flips ``"dihedral"`` makes and leaves out its transposes.
        """
        mode = resolve_augment(self.augment)
        if mode is None:
            return batch
        if getattr(self, "_augment_rng", None) is None:
            self._augment_rng = np.random.RandomState(self.augment_seed)
        x, extras = batch
        flip_h, flip_v, turn = self._augment_rng.randint(2, size=3)
        turn = turn and mode == "dihedral" and x.shape[-1] == x.shape[-2]

        def apply(t: torch.Tensor) -> torch.Tensor:
            if flip_h:
                t = t.flip(-1)
            if flip_v:
                t = t.flip(-2)
            return t.transpose(-1, -2) if turn else t

        extras = {k: apply(v) if v.dim() == 4 else v for k, v in extras.items()}
        return apply(x), extras

    def autocast(self) -> Any:
        """Mixed precision for forward passes when ``amp_dtype`` is set (bf16 on CUDA)."""
        if self.amp_dtype is None:  # a disabled torch.autocast still costs ~50 us per use
            return contextlib.nullcontext()
        return torch.autocast(torch.device(self.device).type, dtype=self.amp_dtype)

    def get_default_callbacks(self) -> list:
        """skorch's defaults, without ``print_log`` when ``verbose=0`` (it formats a table every epoch even
        when it prints nothing); with it, a :class:`~skdefect.training.stages.StageLog` (a header per stage)."""
        callbacks = super().get_default_callbacks()
        if not self.verbose:
            return [(name, cb) for name, cb in callbacks if name != "print_log"]
        return [(name, StageLog() if name == "print_log" else cb) for name, cb in callbacks]

    # -- data ---------------------------------------------------------------------
    def get_dataset(self, X: Any, y: Any = None) -> Any:
        if not isinstance(X, ImageBatchSource):
            raise TypeError(f"skdefect nets take an ImageBatchSource, got {type(X).__name__}")
        return X

    def check_data(self, X: Any, y: Any = None) -> None:
        pass

    def get_iterator(self, dataset: Any, training: bool = False) -> BatchIterator:
        n = len(dataset)
        if training and self.sampler is not None:
            y = dataset.y if dataset.y is not None else np.zeros(n, dtype=np.int64)

            def order() -> np.ndarray:
                return check_epoch_indices(self.sampler, self.sampler.epoch_indices(y, self.features), n)
        else:

            def order() -> np.ndarray:
                return np.arange(n)

        device = torch.device(self.device)
        if training and device.type == "cuda" and dataset.resident_device is None:
            # the training set is read every epoch: keep it on the GPU when it takes <= 1/4 of the free memory
            if resident_fits(dataset.resident_nbytes(), torch.cuda.mem_get_info(device)[0]):
                dataset.make_resident(device)
        if training:
            batch_size = self.batch_size
        else:
            batch_size = self.predict_batch_size or self._auto_predict_batch_size(device)
        return BatchIterator(dataset, batch_size, order, self.device)

    def _auto_predict_batch_size(self, device: torch.device) -> int:
        """The training batch size; on CUDA as many images as half the free memory holds (training's
        per-image peak as the estimate, see :func:`inference_batch_size`), at most 1024."""
        per_image = getattr(self, "train_bytes_per_image_", None)
        if device.type != "cuda" or not per_image:
            return self.batch_size
        return inference_batch_size(torch.cuda.mem_get_info(device)[0], per_image, self.batch_size)

    def _initialize_module(self, reason: Any = None) -> DefectNetBase:
        super()._initialize_module(reason=reason)
        if use_channels_last(torch.device(self.device)):
            for name in self._modules:
                module = getattr(self, name + "_", None)
                if isinstance(module, torch.nn.Module):
                    module.to(memory_format=torch.channels_last)
        self._compile_modules()
        return self

    # -- torch.compile ------------------------------------------------------------
    def compile_targets(self) -> list[torch.nn.Module]:
        """The modules whose forward ``compile_mode`` compiles: every registered module; subclasses whose
        train steps call submodules on their own (the two stages) name those instead."""
        return [getattr(self, name + "_") for name in self._modules]

    def _compile_modules(self) -> None:
        """``nn.Module.compile`` (in place, not skorch's ``compile=True`` wrapper) on :meth:`compile_targets`:
        parameter names, state dicts, checkpoints and saved files stay those of the eager modules. Each
        module is compiled at its first call, again per new input shape, train/eval mode or grad mode."""
        if self.compile_mode is None:
            return
        for module in self.compile_targets():
            module.compile(mode=self.compile_mode)

    def __setstate__(self, state: dict[str, Any]) -> None:
        # nn.Module drops its compiled call when pickled (it cannot be pickled): compile again
        super().__setstate__(state)
        if getattr(self, "initialized_", False) and getattr(self, "compile_mode", None) is not None:
            self._compile_modules()

    # -- epochs -------------------------------------------------------------------
    def run_single_epoch(self, iterator, training, prefix, step_fn, **fit_params):  # noqa: ANN001
        if iterator is None:
            return
        losses: list[torch.Tensor] = []
        sizes: list[int] = []
        scores: list[torch.Tensor] = []
        labels: list[torch.Tensor] = []
        pixels: list[tuple[torch.Tensor, torch.Tensor]] = []  # (pixel scores, pixel targets) of a pass
        terms: dict[str, list[torch.Tensor]] = defaultdict(list)
        term_batches: dict[str, list[tuple[int, int]]] = defaultdict(list)  # (batch, order in step) per value
        device = torch.device(self.device)
        base = torch.cuda.memory_allocated(device) if training and device.type == "cuda" else None
        for batch in iterator:
            self.notify("on_batch_begin", batch=batch, training=training)
            step = step_fn(batch, **fit_params)
            losses.append(step["loss"].detach().float())
            sizes.append(len(batch[0]))
            for order, (name, value) in enumerate(step.get("terms", {}).items()):
                terms[name].append(value.detach().float())
                term_batches[name].append((len(losses) - 1, order))
            if "scores" in step and "y" in batch[1]:
                scores.append(step["scores"].detach().float())
                labels.append(batch[1]["y"])
            if "pixel_scores" in step:
                pixels.append((step["pixel_scores"].detach().float(), step["pixel_targets"].detach()))
            self.notify("on_batch_end", batch=batch, training=training, **step)
        if base is not None and sizes:  # an upper bound of one image's memory, for inference batch sizes
            peak = torch.cuda.max_memory_allocated(device) - base
            self.train_bytes_per_image_ = max(peak, 1) / max(sizes)
        self._record_epoch(prefix, losses, sizes, terms, term_batches)
        if scores:
            self._record_ranking(prefix, torch.cat(scores), torch.cat(labels))
        if pixels:
            self._record_pixel_ranking(prefix, *(torch.cat(part) for part in zip(*pixels, strict=True)))

    def _record_ranking(self, prefix: str, scores: torch.Tensor, y: torch.Tensor) -> None:
        """``<prefix>_ap`` and ``<prefix>_auroc`` of a pass's image scores (when both classes are in it)."""
        s, t = scores.cpu().numpy().astype(np.float64), (y.cpu().numpy() >= 0.5).astype(np.int64)
        if t.min() == t.max() or not np.isfinite(s).all():
            return
        self.history.record(prefix + "_ap", average_precision(t, s))
        self.history.record(prefix + "_auroc", roc_auc(t, s))

    def _record_pixel_ranking(self, prefix: str, scores: torch.Tensor, targets: torch.Tensor) -> None:
        """``<prefix>_pixel_ap`` of a pass's pixel scores (when both kinds of pixel are in it)."""
        s, t = scores.cpu().numpy().astype(np.float64), targets.cpu().numpy().astype(np.int64)
        if t.min() == t.max() or not np.isfinite(s).all():
            return
        self.history.record(prefix + "_pixel_ap", average_precision(t, s))

    def _record_epoch(
        self, prefix: str, losses: list, sizes: list, terms: dict, term_batches: dict | None = None
    ) -> None:
        epoch = len(self.history)
        if losses:  # one host sync per epoch
            values = torch.stack(losses).cpu().tolist()
            # this pass's batches are the last ones of the epoch (the training pass's come first)
            for batch_record, value, size in zip(self.history[-1]["batches"][-len(values):], values, sizes,
                                                 strict=False):
                batch_record[prefix + "_loss"] = value
                batch_record[prefix + "_batch_size"] = size
            # batch-size weighted like the epoch's loss, so a term that is the loss shows the loss's value
            means = {}
            for name, v in terms.items():
                if term_batches and len(term_batches.get(name, ())) == len(v):
                    w = torch.tensor([float(sizes[b]) for b, _ in term_batches[name]], device=v[0].device)
                    means[name] = (torch.stack(v) * w).sum() / w.sum()
                else:
                    means[name] = torch.stack(v).mean()
            if means:
                host = dict(zip(means, torch.stack(list(means.values())).cpu().tolist(), strict=True))
                for name, value in host.items():
                    self.history.record(f"{prefix}_{name}", value)
                if not np.isfinite(list(host.values())).all():
                    raise FloatingPointError(self._divergence_message(epoch, len(losses), terms, term_batches))
            if not np.isfinite(values).all():
                first = int(np.flatnonzero(~np.isfinite(values))[0])
                raise FloatingPointError(
                    f"training diverged in epoch {epoch}: the {prefix} loss became {values[first]} in batch "
                    f"{first + 1} of {len(values)}; lower lr or check the inputs"
                )
            # the epoch's loss, batch-size weighted (skorch's PassthroughScoring records the same value at the
            # epoch's end; the stage tracker reads it before the callbacks run)
            self.history.record(prefix + "_loss", float(np.average(values, weights=sizes)))
        self.history.record(prefix + "_batch_count", len(losses))

    @staticmethod
    def _divergence_message(epoch: int, n_batches: int, terms: dict, term_batches: dict | None) -> str:
        """Name the loss term that went non-finite first: a NaN spreads through the weights to every term
        computed after it, so the first one in (batch, order within the step) is where it started."""
        first: dict[str, tuple[tuple[int, int], float]] = {}
        for name, per_batch in terms.items():
            values = torch.stack(per_batch).cpu().numpy()
            bad = np.flatnonzero(~np.isfinite(values))
            if bad.size:
                where = term_batches[name][bad[0]] if term_batches else (int(bad[0]), 0)
                first[name] = (where, float(values[bad[0]]))
        ranked = sorted(first, key=lambda name: first[name][0])
        (batch, _), value = first[ranked[0]]
        then = f"; non-finite after it: {', '.join(map(repr, ranked[1:]))}" if len(ranked) > 1 else ""
        return (
            f"training diverged in epoch {epoch}: loss term {ranked[0]!r} is {value} in batch {batch + 1} of "
            f"{n_batches}, the first non-finite term{then}; lower lr or check the inputs"
        )

    # -- checkpoints --------------------------------------------------------------
    def training_state(self) -> dict[str, Any]:
        """Everything needed to continue training exactly where it stands (see the class docstring)."""
        cuda = torch.cuda.get_rng_state_all() if torch.cuda.is_available() else None
        return {
            "format": CHECKPOINT_FORMAT,
            "meta": self.checkpoint_meta,
            "epoch": len(self.history),
            "modules": {name: getattr(self, name + "_").state_dict() for name in self._modules + self._criteria},
            "optimizers": {name: getattr(self, name + "_").state_dict() for name in self._optimizers},
            "history": self.history.to_list(),
            "rng": {"torch": torch.get_rng_state(), "cuda": cuda},
            "attributes": {name: getattr(self, name, None) for name in self._checkpoint_attributes},
        }

    def load_training_state(self, state: Mapping[str, Any]) -> None:
        """Restore a :meth:`training_state` into this initialised net."""
        expected = {"modules": self._modules + self._criteria, "optimizers": self._optimizers}
        for part, names in expected.items():
            if set(state[part]) != set(names):
                raise ValueError(f"the checkpoint holds {part} {sorted(state[part])}, this net has {sorted(names)}")
        for name in self._modules + self._criteria:
            getattr(self, name + "_").load_state_dict(state["modules"][name])
        for name in self._optimizers:
            getattr(self, name + "_").load_state_dict(state["optimizers"][name])
        self.history = History(state["history"])
        torch.set_rng_state(state["rng"]["torch"])
        cuda = state["rng"].get("cuda")
        if cuda is not None and torch.cuda.is_available() and len(cuda) == torch.cuda.device_count():
            torch.cuda.set_rng_state_all(cuda)
        for name, value in state["attributes"].items():
            setattr(self, name, value)

    def save_checkpoint(self) -> None:
        """Write :meth:`training_state` to ``checkpoint`` without pickle (:mod:`.checkpoint`), atomically."""
        write_checkpoint(Path(self.checkpoint), self.training_state())

    def _checkpoint_classes(self) -> dict[str, type]:
        """The classes a checkpoint of this net may hold objects of: those of its own sampler and progress (and
        the classes defined beside the sampler's, for the helpers it creates while training)."""
        import sys

        current = [getattr(self, name, None) for name in self._checkpoint_attributes]
        extra: list[type] = [StageProgress]
        module = sys.modules.get(type(getattr(self, "sampler", None)).__module__)
        if module is not None and getattr(self, "sampler", None) is not None:
            extra += [v for v in vars(module).values() if isinstance(v, type) and v.__module__ == module.__name__]
        return allowed_classes(current, extra)

    def _resume(self) -> None:
        """Load ``checkpoint`` when it exists and belongs to this run; otherwise train from scratch."""
        path = Path(self.checkpoint)
        if not path.is_file():
            return
        try:
            state = read_checkpoint(path, self._checkpoint_classes())
        except Exception as exc:  # noqa: BLE001 - not ours or unreadable: say so, then train from scratch
            warnings.warn(f"checkpoint {path} could not be read ({type(exc).__name__}: {exc}); training from "
                          "scratch and overwriting it", RuntimeWarning, stacklevel=3)
            return
        if not isinstance(state, dict) or state.get("format") != CHECKPOINT_FORMAT:
            warnings.warn(f"checkpoint {path} has another format; training from scratch and overwriting it",
                          RuntimeWarning, stacklevel=3)
            return
        if state.get("meta") != self.checkpoint_meta:
            warnings.warn(f"checkpoint {path} belongs to another run (other parameters or data); training from "
                          "scratch and overwriting it", RuntimeWarning, stacklevel=3)
            return
        try:
            self.load_training_state(state)
        except (ValueError, RuntimeError, KeyError) as exc:
            raise RuntimeError(
                f"checkpoint {path} matches this run's parameters and data but does not fit its networks "
                f"({exc}); did a plugin's network change? Delete the file to train from scratch."
            ) from exc

    # -- stages -------------------------------------------------------------------
    def stages(self) -> list[Stage]:
        """The stages of training, in order (subclasses)."""
        raise NotImplementedError

    def current_stage(self) -> Stage:
        """The stage training is in (the last one once training has finished)."""
        stages = self.stages()
        return stages[min(self.progress_.index, len(stages) - 1)]

    def _resolve(self, path: str) -> Any:
        """``"module_.segmentation"`` -> ``self.module_.segmentation``."""
        obj: Any = self
        for part in path.split("."):
            obj = getattr(obj, part)
        return obj

    def _stage_modules(self, stage: Stage) -> dict[str, torch.nn.Module]:
        return {path: self._resolve(path) for path in stage.modules if hasattr(self, path.split(".")[0])}

    @property
    def finished(self) -> bool:
        """Whether every stage has run."""
        return self.progress_.index >= len(self.stages())

    def initialize(self) -> DefectNetBase:
        super().initialize()
        self.progress_ = StageProgress()
        return self

    def initialize_callbacks(self) -> DefectNetBase:
        """skorch's callbacks, plus a copy of every user ``LRScheduler`` for each further optimizer."""
        super().initialize_callbacks()
        siblings = []
        for name, cb in self.callbacks_:
            if isinstance(cb, LRScheduler) and not isinstance(cb, OptimizerLRScheduler):
                for optimizer in self.optimizer_names[1:]:
                    sibling = OptimizerLRScheduler.sibling_of(cb, optimizer)
                    sibling.initialize()
                    siblings.append((f"{name}[{optimizer}]", sibling))
        self.callbacks_.extend(siblings)
        return self

    def _user_schedules_lr(self) -> bool:
        return any(isinstance(cb, LRScheduler) for _, cb in getattr(self, "callbacks_", []))

    def optimizer_named_parameters(self, name: str) -> list[tuple[str, torch.nn.Parameter]]:
        """The (name, parameter) pairs the optimizer ``name`` steps (subclasses with several optimizers)."""
        if name != "optimizer":
            raise KeyError(name)
        return [(n, p) for n, p in self.module_.named_parameters() if p.requires_grad]

    def make_optimizer(self, name: str) -> torch.optim.Optimizer:
        """The optimizer ``name`` over :meth:`optimizer_named_parameters`, with skorch's parameter routing:
        ``optimizer__*`` for every optimizer (``param_groups`` patterns included), then ``<name>__*``."""
        named = self.optimizer_named_parameters(name)
        args, kwargs = self.get_params_for_optimizer("optimizer", named)
        if name != "optimizer":
            own = self.get_params_for(name)
            groups = own.pop("param_groups", None)
            if groups is not None:
                args, _ = self._get_params_for_optimizer(name, named)
            kwargs.update(own)
        return self.optimizer(*args, **kwargs)

    def step_optimizer(self, name: str, batch: Any) -> None:
        """Step the optimizer ``name`` after notifying ``on_grad_computed`` with the parameters it steps."""
        self.notify(
            "on_grad_computed",
            named_parameters=TeeGenerator(iter(self.optimizer_named_parameters(name))),
            batch=batch,
            training=True,
        )
        getattr(self, name + "_").step()

    def _set_stage_lr(self, stage: Stage) -> None:
        """The built-in cosine schedule: the stage's optimizers at ``cosine_factor`` of their base rate."""
        first = getattr(self, stage.optimizers[0] + "_", None)
        if self.lr_schedule == "cosine" and not self._user_schedules_lr():
            factor = cosine_factor(self.progress_.epoch, stage.epochs)
            for group in self._stage_param_groups(stage):
                group.setdefault("base_lr", group["lr"])
                group["lr"] = group["base_lr"] * factor
        if first is not None:
            self.history.record("event_lr", float(first.param_groups[0]["lr"]))

    def _stage_param_groups(self, stage: Stage) -> list[dict]:
        optimizers = [getattr(self, name + "_", None) for name in stage.optimizers]
        return [group for opt in optimizers if opt is not None for group in opt.param_groups]

    #: ``lr_schedule="plateau"``: the rate is multiplied by this factor ...
    PLATEAU_FACTOR = 0.25

    def _plateau_patience(self) -> int:
        """... after this many epochs without improvement (a third of the early-stopping patience, at least 2)."""
        return max(2, int(self.n_iter_no_change) // 3)

    def _track_stage(self, stage: Stage) -> bool:
        """After an epoch's passes: keep the best weights, lower the rate on a plateau; whether early stopping
        ends the stage."""
        progress = self.progress_
        if stage.monitor is None or stage.monitor not in self.history[-1]:
            return False
        value = float(self.history[-1, stage.monitor])
        if improved(value, progress.best, stage.lower_is_better, self.tol):
            progress.best, progress.best_epoch, progress.misses = value, len(self.history), 0
            progress.best_state = snapshot(self._stage_modules(stage))
            self.history.record(stage.monitor + "_stage_best", True)
            return False
        progress.misses += 1
        if (self.lr_schedule == "plateau" and not self._user_schedules_lr()
                and progress.misses % self._plateau_patience() == 0):
            for group in self._stage_param_groups(stage):
                group["lr"] *= self.PLATEAU_FACTOR
        return bool(self.early_stopping) and progress.misses >= self.n_iter_no_change

    def _end_stage(self, stage: Stage, stopped_early: bool) -> None:
        """Restore the stage's best weights, note how it ended, reset users' EarlyStopping, move on."""
        progress = self.progress_
        if progress.best_state is not None and progress.best_epoch != len(self.history):
            for path, module in self._stage_modules(stage).items():
                module.load_state_dict(progress.best_state[path])
        if progress.epoch:  # a stage of no epochs leaves no record
            self.history.record("event_stage_end", {
                "stage": stage.name, "epochs": progress.epoch, "best_epoch": progress.best_epoch,
                "monitor": stage.monitor, "best": progress.best, "stopped_early": stopped_early,
            })
        if stopped_early:
            progress.stopped_early.append(stage.name)
        for _, cb in self.callbacks_:
            if isinstance(cb, EarlyStopping):  # one user callback watches each stage afresh
                cb.on_train_begin(self)
        progress.next_stage()

    def fit_loop(self, X: Any, y: Any = None, epochs: int | None = None, **fit_params: Any) -> DefectNetBase:
        """Run the remaining stages (at most ``epochs`` epochs when given), a training and a validation pass
        per epoch, checkpointing after every epoch."""
        self.check_data(X, y)
        self.check_training_readiness()
        dataset_train, dataset_valid = self.get_split_datasets(X, y, **fit_params)
        on_epoch_kwargs = {"dataset_train": dataset_train, "dataset_valid": dataset_valid}
        iterator_train = self.get_iterator(dataset_train, training=True)
        iterator_valid = None if dataset_valid is None else self.get_iterator(dataset_valid, training=False)
        stages = self.stages()
        run = 0
        while self.progress_.index < len(stages) and (epochs is None or run < epochs):
            stage = stages[self.progress_.index]
            if self.progress_.epoch >= stage.epochs:  # a stage of no epochs
                self._end_stage(stage, stopped_early=False)
                continue
            self.notify("on_epoch_begin", **on_epoch_kwargs)
            self.history.record("event_stage", stage.name)
            self._set_stage_lr(stage)
            self.run_single_epoch(iterator_train, training=True, prefix="train", step_fn=self.train_step,
                                  **fit_params)
            self.run_single_epoch(iterator_valid, training=False, prefix="valid", step_fn=self.validation_step,
                                  **fit_params)
            stop = self._track_stage(stage)
            self.history.record("event_left", self._time_left(stages))
            self._stop_requested = False
            try:
                self.notify("on_epoch_end", **on_epoch_kwargs)
            finally:  # the finished epoch counts (and is checkpointed) even when a callback interrupts
                self.progress_.epoch += 1
                stop = stop or self._stop_requested
                if stop or self.progress_.epoch >= stage.epochs:
                    self._end_stage(stage, stopped_early=stop and self.progress_.epoch < stage.epochs)
                if self.checkpoint is not None:  # after every callback saw the epoch, with the stage's outcome
                    self.save_checkpoint()
            run += 1
        return self

    def _time_left(self, stages: list[Stage]) -> str:
        """An upper bound of the training time left after this epoch: the epochs every stage may still run
        at this stage's mean epoch duration so far (early stopping usually ends sooner)."""
        durations = [row["dur"] for row in self.history[:-1] if row.get("event_stage") == stages[
            self.progress_.index].name and "dur" in row]
        started = getattr(self, "_epoch_started", None)
        if started is not None:
            durations.append(time.perf_counter() - started)
        if not durations:
            return ""
        left = stages[self.progress_.index].epochs - self.progress_.epoch - 1
        left += sum(stage.epochs for stage in stages[self.progress_.index + 1:])
        seconds = left * float(np.mean(durations))
        return f"<={seconds / 60:.1f} min" if seconds >= 60 else f"<={seconds:.0f} s"

    def on_epoch_begin(self, net: Any, **kwargs: Any) -> None:
        super().on_epoch_begin(net, **kwargs)
        self._epoch_started = time.perf_counter()

    def validation_step(self, batch: Any, **fit_params: Any) -> dict[str, Any]:
        """The current stage's losses on a validation batch, in eval mode (subclasses)."""
        raise NotImplementedError

    def fit(self, X: Any, y: Any = None, **fit_params: Any) -> DefectNetBase:
        """Initialise and train; with ``checkpoint``, continue from it and train only the remaining epochs."""
        if self.checkpoint is None:
            return super().fit(X, y, **fit_params)
        if not self.warm_start or not self.initialized_:
            self.initialize()
        self._resume()
        if not self.finished:  # partial_fit, for the remaining epochs
            self._train(X, y, **fit_params)
        return self

    def partial_fit(self, X: Any, y: Any = None, classes: Any = None, **fit_params: Any) -> DefectNetBase:
        """skorch's ``partial_fit``, except that an interrupt (Ctrl-C) is not swallowed.

        skorch catches ``KeyboardInterrupt`` and returns as if training had finished, so a caller would save a
        barely trained model over a good one. Here the callbacks still see ``on_train_end`` (loggers close,
        checkpoints stay consistent), then the interrupt propagates: the estimator keeps its earlier fitted state
        and the command line exits with status 130 without writing. A user's ``EarlyStopping`` is not an
        interrupt: it ends the current stage (see :meth:`notify`).
        """
        if not self.initialized_:
            self.initialize()
        self._train(X, y, **fit_params)
        return self

    def _train(self, X: Any, y: Any, **fit_params: Any) -> None:
        self.notify("on_train_begin", X=X, y=y)
        try:
            self.fit_loop(X, y, **fit_params)
        finally:
            self.notify("on_train_end", X=X, y=y)

    def notify(self, method_name: str, **cb_kwargs: Any) -> None:
        """skorch's notify; at an epoch's end a user's ``EarlyStopping`` ends the current stage, not the fit."""
        if method_name != "on_epoch_end":
            super().notify(method_name, **cb_kwargs)
            return
        self.on_epoch_end(self, **cb_kwargs)
        for _, cb in self.callbacks_:
            try:
                cb.on_epoch_end(self, **cb_kwargs)
            except KeyboardInterrupt:
                if not isinstance(cb, EarlyStopping):
                    raise
                self._stop_requested = True

    # -- inference ----------------------------------------------------------------
    def forward_batches(self, source: ImageBatchSource, fn: Callable[[torch.Tensor], Any]) -> Iterator[Any]:
        """Yield ``fn(x)`` per inference batch, in order, under ``torch.inference_mode``."""
        self.check_is_fitted()
        for module in self._modules:
            getattr(self, module + "_").eval()
        iterator = self.get_iterator(source, training=False)
        with torch.inference_mode(), self.autocast():
            for x, _ in iterator:
                yield fn(x)

    def forward_into(
        self, source: ImageBatchSource, fn: Callable[[torch.Tensor], torch.Tensor], dtype: Any = np.float32
    ) -> np.ndarray:
        """``fn(x)`` of every inference batch, concatenated into one preallocated array of ``dtype``.

        Each batch's result is copied out and freed at once: keeping them all for a final
        concatenation left small blocks between the freed batches' buffers, and glibc's heap
        then grew with every batch (+75 MB over 20,000 32x32 images); it also doubled the peak
        memory of per-pixel maps.
        """
        out: np.ndarray | None = None
        start = 0
        for part in self.forward_batches(source, fn):
            values = part.detach().cpu().numpy()
            if out is None:
                out = np.empty((len(source), *values.shape[1:]), dtype=dtype)
            out[start : start + len(values)] = values
            start += len(values)
        return np.empty(0, dtype=dtype) if out is None else out
