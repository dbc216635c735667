"""The dual-discriminator GAN step as a skorch net: one generator, two discriminators.

Per batch (Kim et al., the dual-discriminator GAN paper):

1. ``D_N`` learns normal real images vs their reconstructions, ``D_A`` anomalous
   real images vs theirs (LSGAN with the a-b coding: real → b = 1, fake → a = 0).
2. The generator is updated with *one* of two loss groups, chosen at random per
   batch (the paper's alternation):

   - normal group, on the normal images: ``w_recon·L1 + w_patch·patch +
     w_latent·latent + w_adv·(D_N(G(x)) − 1)²``;
   - anomaly group, on the anomalous images: ``w_anomaly_adv·(D_A(G(x)) − 0)² +
     w_abc·ABC``.

   A batch holding one class only uses that class's group. In one-class mode
   (no anomalies) ``D_A`` does not exist and the anomaly group never runs.

The generator runs once per batch on all its images (both classes together): see
:meth:`DualGANNet.train_step`. Training is one stage (``"gan"``) stepping the three
optimizers; with validation data it is judged by ``valid_ap`` (the anomaly score's
average precision on the validation images) when anomalies are known, else by
``valid_loss`` (their mean L1 reconstruction error), and ends with the weights of the
best epoch.

Every loss term is recorded per epoch in the skorch history (``train_d_normal``,
``train_g_l1`` ...).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from .. import losses
from .base import DefectNetBase
from .stages import Stage

LOSS_WEIGHTS = ("w_recon", "w_patch", "w_latent", "w_adv", "w_anomaly_adv", "w_abc")


class DualGANNet(DefectNetBase):
    """skorch net training a generator against ``D_N`` and (optionally) ``D_A``.

    ``module`` is the generator (``forward(x) -> (x_hat, z)``, ``encode(x) -> z``);
    ``discriminator`` a factory called once per discriminator (no arguments).
    A checkpoint holds the generator, both discriminators, their three optimizers
    and the RNG choosing the loss group.
    """

    _checkpoint_attributes = (*DefectNetBase._checkpoint_attributes, "_group_rng")

    def __init__(
        self,
        *args: Any,
        discriminator: Any = None,
        one_class: bool = False,
        weights: dict[str, float] | None = None,
        patch_size: int = 32,
        patch_stride: int = 16,
        top_n: int = 10,
        normal_group_probability: float = 0.5,
        group_seed: int = 0,
        valid_score: str = "recon",
        abc_error: str = "mean",
        **kwargs: Any,
    ) -> None:
        super().__init__(*args, **kwargs)
        self.discriminator = discriminator
        self.one_class = one_class
        self.weights = weights
        self.patch_size = patch_size
        self.patch_stride = patch_stride
        self.top_n = top_n
        self.normal_group_probability = normal_group_probability
        self.group_seed = group_seed
        self.valid_score = valid_score
        self.abc_error = abc_error

    def initialize_module(self) -> DualGANNet:
        super().initialize_module()
        self.disc_normal_ = self.discriminator()
        if not self.one_class:
            self.disc_anomalous_ = self.discriminator()
        self._group_rng = np.random.RandomState(self.group_seed)
        return self

    optimizer_names = ("optimizer", "optimizer_disc_normal", "optimizer_disc_anomalous")

    def optimizer_named_parameters(self, name: str) -> list[tuple[str, torch.nn.Parameter]]:
        """``optimizer``: the generator; ``optimizer_disc_normal`` / ``optimizer_disc_anomalous``: D_N / D_A."""
        owner = {"optimizer": "module_", "optimizer_disc_normal": "disc_normal_",
                 "optimizer_disc_anomalous": "disc_anomalous_"}[name]
        return [(n, p) for n, p in getattr(self, owner).named_parameters() if p.requires_grad]

    def initialize_optimizer(self, *args: Any, **kwargs: Any) -> DualGANNet:
        self.optimizer_ = self.make_optimizer("optimizer")
        self.optimizer_disc_normal_ = self.make_optimizer("optimizer_disc_normal")
        if not self.one_class:
            self.optimizer_disc_anomalous_ = self.make_optimizer("optimizer_disc_anomalous")
        return self

    def stages(self) -> list[Stage]:
        names = self.optimizer_names[:2] if self.one_class else self.optimizer_names
        modules = ("module_", "disc_normal_") if self.one_class else ("module_", "disc_normal_", "disc_anomalous_")
        if self.one_class:
            return [Stage("gan", self.max_epochs, names, modules, "valid_loss", lower_is_better=True)]
        return [Stage("gan", self.max_epochs, names, modules, "valid_ap", lower_is_better=False)]

    def _w(self, name: str) -> float:
        return float((self.weights or {}).get(name, 1.0))

    # -- one batch ------------------------------------------------------------------
    def _discriminator_step(self, name: str, real: torch.Tensor, fake: torch.Tensor, batch: Any) -> torch.Tensor:
        """One LSGAN step of the discriminator ``name`` (``"disc_normal"`` or ``"disc_anomalous"``)."""
        disc, optimizer = getattr(self, name + "_"), "optimizer_" + name
        getattr(self, optimizer + "_").zero_grad(set_to_none=True)
        with self.autocast():
            real_out, fake_out = disc(real), disc(fake.detach())
        loss = losses.lsgan_discriminator_loss(real_out.float(), fake_out.float()).mean()
        loss.backward()
        self.step_optimizer(optimizer, batch)
        return loss

    def _normal_group(
        self, x: torch.Tensor, x_hat: torch.Tensor, z: torch.Tensor, normal: torch.Tensor
    ) -> dict[str, torch.Tensor]:
        """The normal group's terms on the ``normal`` images of a minibatch.

        The encoder re-encodes the reconstructions of the whole minibatch (for the same reason the
        generator runs on it whole: class-pure batch statistics would carry the label); the terms
        then average over the normal images only.
        """
        with self.autocast():
            z_hat = self.module_.encode(x_hat)
        x, x_hat, z, z_hat = x[normal], x_hat[normal], z[normal], z_hat[normal]
        with self.autocast():
            d_out = self.disc_normal_(x_hat)
        x, x_hat = x.float(), x_hat.float()
        return {
            "g_l1": (self._w("w_recon"), losses.l1_reconstruction_loss(x, x_hat).mean()),
            "g_patch": (
                self._w("w_patch"),
                losses.patch_loss(x, x_hat, self.patch_size, self.patch_stride, self.top_n).mean(),
            ),
            "g_latent": (self._w("w_latent"), losses.latent_loss(z.float(), z_hat.float()).mean()),
            "g_adv": (self._w("w_adv"), losses.lsgan_generator_loss(d_out.float()).mean()),
        }

    def _anomaly_group(
        self, x: torch.Tensor, x_hat: torch.Tensor, mask: torch.Tensor | None = None
    ) -> dict[str, torch.Tensor]:
        with self.autocast():
            d_out = self.disc_anomalous_(x_hat)
        error = self._abc_error(x.float(), x_hat.float(), mask)
        return {
            "g_anomaly_adv": (self._w("w_anomaly_adv"), losses.anomaly_adversarial_loss(d_out.float()).mean()),
            "g_abc": (self._w("w_abc"), losses.abc_loss_of_error(error).mean()),
        }

    def _abc_error(self, x: torch.Tensor, x_hat: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        """``A`` of the ABC loss per anomalous image: the mean L1 error (``abc_error="mean"``, the paper's), the
        patch loss, the mean of the ``top_n`` worst patches (``"patch"``), or the mean L1 error over the image's
        defect pixels (``"mask"``, which needs the batch's masks)."""
        if self.abc_error == "patch":
            return losses.patch_loss(x, x_hat, self.patch_size, self.patch_stride, self.top_n)
        if self.abc_error == "mask":
            if mask is None:
                raise ValueError("abc_error='mask' needs pixel masks in the training batches")
            return losses.masked_l1_error(x, x_hat, mask)
        return losses.l1_reconstruction_loss(x, x_hat)

    def train_step(self, batch: Any, **fit_params: Any) -> dict[str, Any]:
        x, extras = self.augment_batch(batch)
        y = extras.get("y")
        anomalous = torch.zeros(len(x), dtype=torch.bool, device=x.device)
        if y is not None and not self.one_class:
            anomalous = y >= 0.5
        normal = ~anomalous
        has_normal, has_anomalous = bool(normal.any()), bool(anomalous.any())  # one host sync per batch
        # All three networks in train mode, every step: an inference pass between steps (forward_into, which a
        # user's callback may run, or skorch's own evaluation) leaves every module in eval mode, and
        # discriminators left there would train on their running batch-norm statistics from then on.
        self._set_training(True)
        # One generator pass over the whole minibatch, both classes together: in train mode every batch norm
        # normalises with the statistics of the batch, and a class-pure pass would hand the generator the
        # label through them (a channel that does not exist at inference, where the running statistics are
        # used). The loss groups below select their images from this one pass.
        with self.autocast():
            rec, z = self.module_(x)
        terms: dict[str, torch.Tensor] = {}
        if has_normal:
            terms["d_normal"] = self._discriminator_step("disc_normal", x[normal], rec[normal], batch)
        if has_anomalous:
            terms["d_anomalous"] = self._discriminator_step("disc_anomalous", x[anomalous], rec[anomalous], batch)
        use_normal = not has_anomalous or (
            has_normal and self._group_rng.random_sample() < self.normal_group_probability
        )
        if use_normal:
            group = self._normal_group(x, rec, z, normal)
        else:
            mask = extras.get("mask")
            group = self._anomaly_group(x[anomalous], rec[anomalous], None if mask is None else mask[anomalous])
        self.optimizer_.zero_grad(set_to_none=True)
        loss = sum(w * v for w, v in group.values())
        loss.backward()
        self.step_optimizer("optimizer", batch)
        terms.update({name: v for name, (_, v) in group.items()})
        return {"loss": loss, "terms": terms}

    def validation_step(self, batch: Any, **fit_params: Any) -> dict[str, Any]:
        """Reconstruction error of the validation images (eval mode): ``loss`` is their mean L1 error,
        ``scores`` the per-image anomaly score (``valid_score``: mean L1 or the top-n patch error)."""
        x, _ = batch
        self.module_.eval()
        with torch.no_grad(), self.autocast():
            rec, _ = self.module_(x)
        x, rec = x.float(), rec.float()
        l1 = losses.l1_reconstruction_loss(x, rec)
        if self.valid_score == "patch":
            scores = losses.patch_loss(x, rec, self.patch_size, self.patch_stride, self.top_n)
        else:
            scores = l1
        return {"loss": l1.mean(), "terms": {"g_l1": l1.mean()}, "scores": scores}
