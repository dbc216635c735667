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

Every loss term is recorded per epoch in the skorch history (``train_d_normal``,
``train_g_l1`` ...).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from .. import losses
from .base import DefectNetBase

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

    def initialize_module(self) -> DualGANNet:
        super().initialize_module()
        self.disc_normal_ = self.discriminator()
        if not self.one_class:
            self.disc_anomalous_ = self.discriminator()
        self._group_rng = np.random.RandomState(self.group_seed)
        return self

    def initialize_optimizer(self, *args: Any, **kwargs: Any) -> DualGANNet:
        opt_kwargs = self.get_params_for("optimizer")
        opt_kwargs.setdefault("lr", self.lr)
        self.optimizer_ = self.optimizer(self.module_.parameters(), **opt_kwargs)
        self.optimizer_disc_normal_ = self.optimizer(self.disc_normal_.parameters(), **opt_kwargs)
        if not self.one_class:
            self.optimizer_disc_anomalous_ = self.optimizer(self.disc_anomalous_.parameters(), **opt_kwargs)
        return self

    def _w(self, name: str) -> float:
        return float((self.weights or {}).get(name, 1.0))

    # -- one batch ------------------------------------------------------------------
    def _discriminator_step(self, disc: torch.nn.Module, opt: torch.optim.Optimizer, real: torch.Tensor,
                            fake: torch.Tensor) -> torch.Tensor:
        opt.zero_grad(set_to_none=True)
        with self.autocast():
            real_out, fake_out = disc(real), disc(fake.detach())
        loss = losses.lsgan_discriminator_loss(real_out.float(), fake_out.float()).mean()
        loss.backward()
        opt.step()
        return loss

    def _normal_group(self, x: torch.Tensor, x_hat: torch.Tensor, z: torch.Tensor) -> dict[str, torch.Tensor]:
        with self.autocast():
            z_hat = self.module_.encode(x_hat)
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

    def _anomaly_group(self, x: torch.Tensor, x_hat: torch.Tensor) -> dict[str, torch.Tensor]:
        with self.autocast():
            d_out = self.disc_anomalous_(x_hat)
        return {
            "g_anomaly_adv": (self._w("w_anomaly_adv"), losses.anomaly_adversarial_loss(d_out.float()).mean()),
            "g_abc": (self._w("w_abc"), losses.abc_loss(x.float(), x_hat.float()).mean()),
        }

    def train_step(self, batch: Any, **fit_params: Any) -> dict[str, Any]:
        x, extras = self.augment_batch(batch)
        y = extras.get("y")
        normal = x if (y is None or self.one_class) else x[y < 0.5]
        anomalous = x[:0] if (y is None or self.one_class) else x[y >= 0.5]
        self.module_.train()
        terms: dict[str, torch.Tensor] = {}
        with self.autocast():
            rec_n, z_n = self.module_(normal) if len(normal) else (None, None)
            rec_a, _ = self.module_(anomalous) if len(anomalous) else (None, None)
        if rec_n is not None:
            terms["d_normal"] = self._discriminator_step(self.disc_normal_, self.optimizer_disc_normal_, normal, rec_n)
        if rec_a is not None:
            terms["d_anomalous"] = self._discriminator_step(
                self.disc_anomalous_, self.optimizer_disc_anomalous_, anomalous, rec_a
            )
        use_normal = rec_a is None or (
            rec_n is not None and self._group_rng.random_sample() < self.normal_group_probability
        )
        group = self._normal_group(normal, rec_n, z_n) if use_normal else self._anomaly_group(anomalous, rec_a)
        self.optimizer_.zero_grad(set_to_none=True)
        loss = sum(w * v for w, v in group.values())
        loss.backward()
        self.optimizer_.step()
        terms.update({name: v for name, (_, v) in group.items()})
        return {"loss": loss, "terms": terms}
