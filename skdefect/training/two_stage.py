"""The two-stage schedule as a skorch net: segmentation stage, then decision stage.

Backbone contract (see :func:`skdefect.plugins.hookspecs.skdefect_register_backbones`):
the module has submodules ``segmentation`` and ``decision``, ``forward(x) ->
(seg_logits, decision_logit)``, optionally ``segment(x) -> seg_logits`` (runs the
segmentation part alone), and a ``schedule`` attribute. For the sequential schedule
``decision(*decision_inputs(x))`` gives the decision logit, where the optional
``decision_inputs(x)`` (default: the segmentation logits) is what the frozen
segmentation net hands the decision net.

``"sequential"`` (Wang et al. 2022)
    two stages: ``"segmentation"`` (at most ``seg_epochs`` epochs) trains the
    segmentation net with the pixel loss; ``"decision"`` (the remaining epochs) freezes
    it (eval mode, no gradient) and trains the decision net with BCE on the image
    label. With validation data each stage is judged by its own ``valid_loss`` (the
    pixel loss, then the BCE) and ends with its best epoch's weights. A decision module
    with several heads (``all_logits(*inputs) -> (n, n_heads)``, ``names``,
    ``choose(name)``; :class:`skdefect.nn.wang2022.DecisionHeadChoice`) trains each head
    with its own BCE on the same batches (the loss is their sum; ``dec_loss_<name>`` are
    recorded, and ``dec_loss`` is the lowest of them); the stage is judged by
    ``valid_dec_loss``, the lowest of the heads' validation losses, and at its end the
    head with that loss at the kept epoch is chosen (the first head without validation
    data).
``"joint"`` (Božič et al. 2021, SegDecNet)
    one stage in which every step trains both heads: ``w_seg·L_seg + w_dec·L_dec``
    with the dynamic balancing ``w_seg = 1 − e/E``, ``w_dec = δ·e/E`` (e the epoch, E
    the epoch count); the backbone itself stops decision gradients reaching the
    segmentation net. Its ``valid_loss`` is ``L_seg + L_dec``.

Mixed supervision: the pixel loss of an image whose mask is unknown
(``mask_known == False``, a positive without a usable mask) is dropped; its label
still trains the decision net.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
import torch.nn.functional as F

from .base import DefectNetBase
from .stages import Stage

LossFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


def segmentation_target(mask: torch.Tensor, seg_logits: torch.Tensor) -> torch.Tensor:
    """The pixel target at the resolution of ``seg_logits``: the mask area-averaged down to the segmentation
    map's size, a soft target when the map is coarser than the image (SegDecNet's 1/8 map)."""
    if mask.shape[-2:] != seg_logits.shape[-2:]:
        mask = F.interpolate(mask, size=seg_logits.shape[-2:], mode="area")
    return mask


def head_losses(logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Each decision head's mean BCE, ``(n_heads,)``, from its logits ``(n, n_heads)`` and the labels ``(n,)``."""
    target = y.to(logits.dtype).unsqueeze(1).expand_as(logits)
    return F.binary_cross_entropy_with_logits(logits, target, reduction="none").mean(dim=0)


def masked_mean(values: torch.Tensor, keep: torch.Tensor | None) -> torch.Tensor:
    """Mean of ``values`` over the samples where ``keep`` is true (0 when none)."""
    if keep is None:
        return values.mean()
    keep = keep.to(values.dtype)
    return (values * keep).sum() / keep.sum().clamp_min(1.0)


class TwoStageNet(DefectNetBase):
    """skorch net for a two-stage (segmentation + decision) backbone.

    Extra parameters (beyond skorch's ``NeuralNet``): ``seg_loss`` (a per-sample
    pixel loss) and ``seg_epochs`` (length of the segmentation stage of the sequential
    schedule). ``max_epochs`` is the total epoch count.
    """

    def __init__(
        self,
        *args: Any,
        seg_loss: LossFn | None = None,
        seg_epochs: int = 0,
        seg_monitor: str = "valid_loss",
        **kwargs: Any,
    ) -> None:
        super().__init__(*args, **kwargs)
        self.seg_loss = seg_loss
        self.seg_epochs = seg_epochs
        self.seg_monitor = seg_monitor

    optimizer_names = ("optimizer", "optimizer_decision")

    def optimizer_named_parameters(self, name: str) -> list[tuple[str, torch.nn.Parameter]]:
        """``optimizer``: the segmentation net's parameters; ``optimizer_decision``: every other one."""
        seg = {id(p) for p in self.module_.segmentation.parameters()}
        named = [(n, p) for n, p in self.module_.named_parameters() if p.requires_grad]
        if name == "optimizer":
            return [(n, p) for n, p in named if id(p) in seg]
        if name == "optimizer_decision":
            return [(n, p) for n, p in named if id(p) not in seg]
        raise KeyError(name)

    def initialize_optimizer(self, *args: Any, **kwargs: Any) -> TwoStageNet:
        self.optimizer_ = self.make_optimizer("optimizer")
        self.optimizer_decision_ = self.make_optimizer("optimizer_decision")
        return self

    def stages(self) -> list[Stage]:
        if self.schedule == "joint":
            return [Stage("joint", self.max_epochs, self.optimizer_names, ("module_",), "valid_loss")]
        return [
            Stage("segmentation", self.seg_epochs, ("optimizer",), ("module_.segmentation",), self.seg_monitor,
                  lower_is_better=self.seg_monitor == "valid_loss"),
            Stage("decision", self.max_epochs - self.seg_epochs, ("optimizer_decision",), ("module_.decision",),
                  "valid_dec_loss" if self._head_names() else "valid_loss"),
        ]

    def _head_names(self) -> list[str]:
        """The decision heads' names when the decision module holds several to choose from, else ``[]``."""
        decision = self.module_.decision
        return list(decision.names) if hasattr(decision, "all_logits") else []

    def compile_targets(self) -> list[torch.nn.Module]:
        """The two stages: the decision stage trains on the frozen segmentation net's output, calling each
        stage on its own (each decision head on its own where there are several)."""
        if self._head_names():
            return [self.module_.segmentation, *self.module_.decision.heads.values()]
        return [self.module_.segmentation, self.module_.decision]

    def _record_epoch(
        self, prefix: str, losses: list, sizes: list, terms: dict, term_batches: dict | None = None
    ) -> None:
        super()._record_epoch(prefix, losses, sizes, terms, term_batches)
        names = self._head_names()  # several decision heads: <prefix>_dec_loss is the lowest head's
        if names and all(f"{prefix}_dec_loss_{n}" in self.history[-1] for n in names):
            self.history.record(f"{prefix}_dec_loss", min(self.history[-1, f"{prefix}_dec_loss_{n}"] for n in names))

    def _end_stage(self, stage: Stage, stopped_early: bool) -> None:
        """As the base class; at the decision stage's end, choose the decision head (see the module docstring)."""
        best_epoch = self.progress_.best_epoch
        super()._end_stage(stage, stopped_early)  # restores the kept epoch's weights, the choice among them
        names = self._head_names()
        if stage.name != "decision" or not names:
            return
        row = self.history[best_epoch - 1] if best_epoch else {}
        losses = [row.get(f"valid_dec_loss_{n}") for n in names]
        name = names[0] if None in losses else names[min(range(len(names)), key=losses.__getitem__)]
        self.module_.decision.choose(name)
        self.history.record("event_decision_head", name)

    @property
    def schedule(self) -> str:
        return getattr(self.module_, "schedule", "sequential")

    def _segment(self, x: torch.Tensor) -> torch.Tensor:
        seg = getattr(self.module_, "segment", None)
        return seg(x) if seg is not None else self.module_(x)[0]

    def _seg_loss(self, seg_logits: torch.Tensor, extras: dict[str, torch.Tensor]) -> torch.Tensor:
        target = segmentation_target(extras["mask"], seg_logits)
        per_sample = self.seg_loss(seg_logits.float(), target)
        if not isinstance(per_sample, torch.Tensor) or per_sample.shape != (len(seg_logits),):
            got = tuple(per_sample.shape) if isinstance(per_sample, torch.Tensor) else type(per_sample).__name__
            raise ValueError(
                f"the pixel loss {self.seg_loss!r} must return one value per image, shape ({len(seg_logits)},); "
                f"got {got} (a loss reduced to a scalar cannot leave out the images whose mask is unknown)")
        return masked_mean(per_sample, extras.get("mask_known"))

    def train_step(self, batch: Any, **fit_params: Any) -> dict[str, Any]:
        x, extras = self.augment_batch(batch)
        self.module_.train()
        stage = self.current_stage().name
        if stage == "joint":
            return self._joint_step(x, extras, self.progress_.epoch, batch)
        if stage == "segmentation":
            return self._segmentation_step(x, extras, batch)
        return self._decision_step(x, extras, batch)

    def validation_step(self, batch: Any, **fit_params: Any) -> dict[str, Any]:
        """The current stage's loss on a validation batch (eval mode, no gradient) and image ``scores``
        (recorded as ``valid_ap`` / ``valid_auroc``): in the segmentation stage each image's largest pixel
        logit, then the decision logits."""
        x, extras = batch
        self.module_.eval()
        stage = self.current_stage().name
        with torch.no_grad(), self.autocast():
            if stage == "segmentation":
                seg_logits = self._segment(x)
                seg_loss = self._seg_loss(seg_logits, extras)
                out = {"loss": seg_loss, "terms": {"seg_loss": seg_loss},
                       "scores": seg_logits.float().flatten(1).amax(dim=1)}
                if self.seg_monitor == "valid_pixel_ap":  # every pixel of the images whose mask is known
                    known = extras.get("mask_known")
                    keep = slice(None) if known is None else known.bool()
                    out["pixel_scores"] = seg_logits.float()[keep].flatten()
                    out["pixel_targets"] = (segmentation_target(extras["mask"], seg_logits)[keep] > 0).flatten()
                return out
            if stage == "decision" and self._head_names():
                return self._heads_pass(self.module_.decision.all_logits(*self._decision_inputs(x)), extras)
            seg_logits, logit = self.module_(x)
            logit = logit.float()
            dec_loss = F.binary_cross_entropy_with_logits(logit, extras["y"])
            if stage == "decision":
                return {"loss": dec_loss, "terms": {"dec_loss": dec_loss}, "scores": logit}
            seg_loss = self._seg_loss(seg_logits, extras)
            loss = seg_loss + dec_loss
            return {"loss": loss, "terms": {"seg_loss": seg_loss, "dec_loss": dec_loss}, "scores": logit}

    def _segmentation_step(self, x: torch.Tensor, extras: dict[str, torch.Tensor], batch: Any) -> dict[str, Any]:
        self.optimizer_.zero_grad(set_to_none=True)
        with self.autocast():
            seg_logits = self._segment(x)
        loss = self._seg_loss(seg_logits, extras)
        loss.backward()
        self.step_optimizer("optimizer", batch)
        return {"loss": loss, "terms": {"seg_loss": loss}}

    def _decision_inputs(self, x: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """What the decision net reads: ``module.decision_inputs(x)`` where the backbone defines it, else the
        segmentation logits."""
        inputs = getattr(self.module_, "decision_inputs", None)
        return tuple(inputs(x)) if inputs is not None else (self._segment(x),)

    def _decision_step(self, x: torch.Tensor, extras: dict[str, torch.Tensor], batch: Any) -> dict[str, Any]:
        self.module_.segmentation.eval()  # frozen: batch statistics are not updated
        self.optimizer_decision_.zero_grad(set_to_none=True)
        with torch.no_grad(), self.autocast():  # the frozen net needs no autograd graph
            inputs = self._decision_inputs(x)
        if self._head_names():
            with self.autocast():
                logits = self.module_.decision.all_logits(*inputs)
            step = self._heads_pass(logits, extras)
            step["loss"].backward()
            self.step_optimizer("optimizer_decision", batch)
            return step
        with self.autocast():
            logit = self.module_.decision(*inputs)
        loss = F.binary_cross_entropy_with_logits(logit.float(), extras["y"])
        loss.backward()
        self.step_optimizer("optimizer_decision", batch)
        return {"loss": loss, "terms": {"dec_loss": loss}}

    def _heads_pass(self, logits: torch.Tensor, extras: dict[str, torch.Tensor]) -> dict[str, Any]:
        """The decision heads' step: the sum of their BCEs (each head's parameters get its own gradient), each
        head's as a term, and the heads' mean logit as the image ``scores`` (``valid_ap``)."""
        logits = logits.float()
        per_head = head_losses(logits, extras["y"])
        terms = {f"dec_loss_{name}": loss for name, loss in zip(self._head_names(), per_head, strict=True)}
        return {"loss": per_head.sum(), "terms": terms, "scores": logits.mean(dim=1)}

    def _joint_step(
        self, x: torch.Tensor, extras: dict[str, torch.Tensor], epoch: int, batch: Any
    ) -> dict[str, Any]:
        share = epoch / max(self.max_epochs, 1)
        w_seg, w_dec = 1.0 - share, share  # SegDecNet's dynamic balancing (its δ = 1)
        self.optimizer_.zero_grad(set_to_none=True)
        self.optimizer_decision_.zero_grad(set_to_none=True)
        with self.autocast():
            seg_logits, logit = self.module_(x)
        seg_loss = self._seg_loss(seg_logits, extras)
        dec_loss = F.binary_cross_entropy_with_logits(logit.float(), extras["y"])
        loss = w_seg * seg_loss + w_dec * dec_loss
        loss.backward()
        self.step_optimizer("optimizer", batch)
        self.step_optimizer("optimizer_decision", batch)
        return {"loss": loss, "terms": {"seg_loss": seg_loss, "dec_loss": dec_loss}}
