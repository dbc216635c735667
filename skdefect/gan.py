"""DualDiscriminatorGANDetector: the dual-discriminator GAN anomaly detector with a sklearn face."""

from __future__ import annotations

import os
from collections.abc import Callable
from functools import partial
from numbers import Integral, Real
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from sklearn.base import _fit_context
from sklearn.utils._param_validation import Interval, StrOptions

from . import losses
from ._base import (
    COMPILE_MODES,
    BaseDefectDetector,
    f1_max_threshold,
    resolve_compile,
    resolve_device,
    resolve_image_size,
    resolve_plugin,
    resolve_precision,
    seeded,
)
from ._validation import ImageData, check_fit_inputs, check_unit_range
from .plugins import call_with_accepted, get_backbone, get_sampler
from .training import ImageBatchSource
from .training.base import checkpoint_for, sampler_features
from .training.gan import LOSS_WEIGHTS, DualGANNet

__all__ = ["DualDiscriminatorGANDetector"]


class DualDiscriminatorGANDetector(BaseDefectDetector):
    """Reconstruction-based anomaly detector: a U-Net generator and two discriminators.

    The generator (a U-Net autoencoder) learns to reconstruct normal images. A
    normal discriminator ``D_N`` pushes reconstructions of normal images to look
    real; an anomalous discriminator ``D_A`` together with the ABC loss pushes the
    generator to reconstruct anomalous images *badly*, so the reconstruction error
    separates the classes. With ``y=None`` (or no anomalous image) training is
    one-class: ``D_A`` and the anomaly losses are off.

    Parameters
    ----------
    w_recon, w_patch, w_latent, w_adv, w_anomaly_adv, w_abc : float
        Weights of the six generator losses (L1 reconstruction, top-n patch L1,
        latent L1, adversarial, anomaly adversarial, ABC); defaults are the paper's
        Table 2: 1.5, 1.5, 0.5, 0.5, 1.0, 0.5.
    patch_size, patch_stride : int, default=32, 16
        Patches of the patch loss and of ``anomaly_score="patch"``.
    top_n : int, default=10
        Patches averaged by the patch loss and the patch score.
    anomaly_score : {"recon", "patch"}, default="recon"
        What :meth:`decision_function` returns: the mean L1 reconstruction error,
        or the mean of the ``top_n`` largest patch errors. (Not called ``score``:
        that name is sklearn's ``score(X, y)`` method.)
    generator, discriminator : str, default="unet_generator", "patch_discriminator"
        Registered networks.
    sampler : str, default="auto"
        ``"auto"`` is ``"kmeans"`` (cluster-balanced, anomalies as many as normals)
        when anomalies are given, else ``"uniform"``.
    width : float, default=1.0
        Channel multiplier; 1.0 gives the paper's 97.75K-parameter generator and
        76.39K-parameter discriminators on 3-channel input.
    augment : bool, default=False
        Random flips (and quarter turns of square images) of training minibatches.
        Off by default: the paper does not use it, and on digit-like data a flip
        changes the class.
    epochs : int, default=25
    lr : float, default=2e-3
        Adam learning rate of all three networks (betas 0.5, 0.999). The paper gives
        none; code that looks like the authors' uses 1e-4 and GANomaly 2e-4. Measured
        on the MNIST one-class protocol (3 seeds, 12 epochs, ``benchmarks/``): mean
        AUROC 0.884 at 2e-3 against 0.699 at 2e-4, so short CPU-sized trainings get
        2e-3; lower it for long trainings on large images.
    batch_size : int, default=32
    image_size : int, tuple of int or None, default=None
        Side(s) the generator sees (multiples of 16); images are resized on the
        device. None keeps the input size, which must then be a multiple of 16.
    image_shape : tuple of int or None
        (H, W) or (H, W, C) of flattened input rows.
    contamination : "auto" or float in (0, 0.5], default="auto"
        How ``threshold_`` is set on the training scores: ``"auto"`` maximises F1
        when anomalies are given and takes the 95th percentile of the normal
        scores otherwise; a float is the expected anomalous share (IsolationForest
        style quantile).
    device, precision, compile, random_state, verbose, callbacks
        As in :class:`~skdefect.ConcentratedTwoStageDetector`.
    checkpoint_dir : str, path or None, default=None
        Directory for training checkpoints, as in
        :class:`~skdefect.ConcentratedTwoStageDetector`: written at the end of every
        epoch and continued from by ``fit``. A checkpoint holds the generator, both
        discriminators, their three optimizers, the history (epoch counter) and the
        RNG states (torch, the sampler with its k-means clusters, the loss-group
        choice, the augmentation), so on the CPU a resumed fit gives the same
        scores as an uninterrupted one.

    Attributes
    ----------
    classes_ : ndarray, ``[0, 1]``
    threshold_ : float
        Anomaly-score threshold of :meth:`predict`.
    score_scale_ : float
        Spread of the training scores used by :meth:`predict_proba`.
    one_class_ : bool
        Whether training ran without anomalies.
    sampler_indices_ : ndarray
        Indices the sampler chose for the last epoch.
    n_parameters_ : dict of str to int
        ``generator``, ``disc_normal`` and (unless one-class) ``disc_anomalous``.
    net_ : skdefect.training.gan.DualGANNet
    """

    _parameter_constraints: dict = {
        **{w: [Interval(Real, 0, None, closed="left")] for w in
           ("w_recon", "w_patch", "w_latent", "w_adv", "w_anomaly_adv", "w_abc")},
        "patch_size": [Interval(Integral, 1, None, closed="left")],
        "patch_stride": [Interval(Integral, 1, None, closed="left")],
        "top_n": [Interval(Integral, 1, None, closed="left")],
        "anomaly_score": [StrOptions({"recon", "patch"})],
        "generator": [str],
        "discriminator": [str],
        "sampler": [str],
        "width": [Interval(Real, 0, None, closed="neither")],
        "augment": ["boolean"],
        "epochs": [Interval(Integral, 1, None, closed="left")],
        "lr": [Interval(Real, 0, None, closed="neither")],
        "batch_size": [Interval(Integral, 1, None, closed="left")],
        "image_size": [None, Interval(Integral, 1, None, closed="left"), tuple, list],
        "image_shape": [None, tuple, list],
        "contamination": [StrOptions({"auto"}), Interval(Real, 0, 0.5, closed="right")],
        "device": [str],
        "precision": [StrOptions({"auto", "fp32", "bf16", "fp16"})],
        "compile": ["boolean", StrOptions(set(COMPILE_MODES))],
        "random_state": ["random_state"],
        "verbose": ["verbose"],
        "callbacks": [None, list],
        "checkpoint_dir": [None, str, os.PathLike],
    }

    def __init__(
        self,
        w_recon: float = 1.5,
        w_patch: float = 1.5,
        w_latent: float = 0.5,
        w_adv: float = 0.5,
        w_anomaly_adv: float = 1.0,
        w_abc: float = 0.5,
        *,
        patch_size: int = 32,
        patch_stride: int = 16,
        top_n: int = 10,
        anomaly_score: str = "recon",
        generator: str = "unet_generator",
        discriminator: str = "patch_discriminator",
        sampler: str = "auto",
        width: float = 1.0,
        augment: bool = False,
        epochs: int = 25,
        lr: float = 2e-3,
        batch_size: int = 32,
        image_size: Any = None,
        image_shape: Any = None,
        contamination: Any = "auto",
        device: str = "auto",
        precision: str = "auto",
        compile: bool | str = False,
        random_state: Any = None,
        verbose: int = 0,
        callbacks: list | None = None,
        checkpoint_dir: str | os.PathLike[str] | None = None,
    ) -> None:
        self.w_recon = w_recon
        self.w_patch = w_patch
        self.w_latent = w_latent
        self.w_adv = w_adv
        self.w_anomaly_adv = w_anomaly_adv
        self.w_abc = w_abc
        self.patch_size = patch_size
        self.patch_stride = patch_stride
        self.top_n = top_n
        self.anomaly_score = anomaly_score
        self.generator = generator
        self.discriminator = discriminator
        self.sampler = sampler
        self.width = width
        self.augment = augment
        self.epochs = epochs
        self.lr = lr
        self.batch_size = batch_size
        self.image_size = image_size
        self.image_shape = image_shape
        self.contamination = contamination
        self.device = device
        self.precision = precision
        self.compile = compile
        self.random_state = random_state
        self.verbose = verbose
        self.callbacks = callbacks
        self.checkpoint_dir = checkpoint_dir

    def _build_modules(
        self, channels: int, gen_factory: Any = None, disc_factory: Any = None
    ) -> tuple[torch.nn.Module, Callable[[], torch.nn.Module]]:
        """The untrained generator and a discriminator factory from the plugins (``fit`` and :func:`skdefect.load`)."""
        if gen_factory is None:
            gen_factory = resolve_plugin(get_backbone, self.generator, "generator")
        if disc_factory is None:
            disc_factory = resolve_plugin(get_backbone, self.discriminator, "discriminator")
        generator = call_with_accepted(gen_factory, in_channels=channels, width=self.width)
        if not hasattr(generator, "encode"):
            raise ValueError(f"generator {self.generator!r} has no encode(x) method (needed by the latent loss)")
        return generator, partial(call_with_accepted, disc_factory, in_channels=channels, width=self.width)

    def _build_net(
        self,
        generator: torch.nn.Module,
        discriminator: Callable[[], torch.nn.Module],
        one_class: bool,
        device: torch.device,
        **training: Any,
    ) -> DualGANNet:
        """The skorch net of the three networks; ``training`` adds what only ``fit`` needs (sampler, ...)."""
        return DualGANNet(
            module=generator,
            discriminator=discriminator,
            one_class=one_class,
            weights={name: getattr(self, name) for name in LOSS_WEIGHTS},
            patch_size=self.patch_size,
            patch_stride=self.patch_stride,
            top_n=self.top_n,
            optimizer=torch.optim.Adam,
            optimizer__betas=(0.5, 0.999),
            lr=self.lr,
            max_epochs=self.epochs,
            batch_size=self.batch_size,
            device=str(device),
            augment=self.augment,
            amp_dtype=resolve_precision(self.precision, device),
            compile_mode=resolve_compile(self.compile, device),
            **training,
        )

    @_fit_context(prefer_skip_nested_validation=True)
    def fit(self, X: Any, y: Any = None) -> DualDiscriminatorGANDetector:
        """Train the generator and the discriminators.

        Parameters
        ----------
        X : array-like of shape (n, H, W), (n, H, W, C) or (n, H*W*C)
            Training images, uint8 or float in [0, 1] (floats outside [0, 1] are
            refused: the generator's sigmoid output could not reconstruct them).
        y : array-like of shape (n,) or None
            0 = normal, 1 = anomalous; None (or all zeros) trains one-class.

        Returns
        -------
        self : DualDiscriminatorGANDetector
        """
        images, y, _ = check_fit_inputs(X, y, None, image_shape=self.image_shape, require="none")
        check_unit_range(images)
        labels = np.zeros(len(images), dtype=np.int64) if y is None else y
        one_class = not labels.any()
        if one_class is False and not (labels == 0).any():
            raise ValueError("y contains only anomalies (1); the generator needs normal images (0) to learn from")
        device = resolve_device(self.device)
        gen_factory = resolve_plugin(get_backbone, self.generator, "generator")
        disc_factory = resolve_plugin(get_backbone, self.discriminator, "discriminator")
        sampler_name = self.sampler if self.sampler != "auto" else ("uniform" if one_class else "kmeans")
        sampler_factory = resolve_plugin(get_sampler, sampler_name, "sampler")
        checkpoint, checkpoint_meta = checkpoint_for(self, images, labels)

        with seeded(self.random_state) as seed:
            generator, discriminator = self._build_modules(images.channels, gen_factory, disc_factory)
            min_side = max(getattr(generator, "min_side", 1), getattr(discriminator(), "min_side", 1))
            image_size = resolve_image_size(
                self.image_size, images, getattr(generator, "input_divisor", 1), min_side
            )
            sampler = call_with_accepted(sampler_factory, random_state=seed)
            source = ImageBatchSource(images, labels, size=image_size)
            features = sampler_features(source, torch.device("cpu")) if sampler_name == "kmeans" else None
            net = self._build_net(
                generator,
                discriminator,
                one_class,
                device,
                group_seed=seed,
                callbacks=self._skorch_callbacks(),
                verbose=self.verbose,
                sampler=sampler,
                augment_seed=seed,
                features=features,
                checkpoint=checkpoint,
                checkpoint_meta=checkpoint_meta,
            )
            net.fit(source, None)

        self.net_ = net
        self.one_class_ = one_class
        self.classes_ = np.array([0, 1])
        self.input_shape_ = images.image_shape
        self.n_features_in_ = int(np.prod(images.image_shape))
        self.image_size_ = image_size
        self.sampler_indices_ = getattr(net.sampler, "indices_", None)  # a resumed fit's sampler is restored
        self.n_parameters_ = {"generator": sum(p.numel() for p in net.module_.parameters())}
        for name in ("disc_normal", "disc_anomalous"):
            if hasattr(net, name + "_"):
                self.n_parameters_[name] = sum(p.numel() for p in getattr(net, name + "_").parameters())
        train_scores = self._decision_scores(images)
        self.threshold_ = self._fit_threshold(train_scores, labels)
        spread = np.subtract(*np.percentile(train_scores, [75, 25]))
        self.score_scale_ = float(max(spread, np.std(train_scores), 1e-12))
        return self

    def _fit_threshold(self, scores: np.ndarray, y: np.ndarray) -> float:
        if self.contamination != "auto":
            return float(np.quantile(scores, 1.0 - self.contamination))
        if y.any():
            return f1_max_threshold(scores, y)
        return float(np.quantile(scores, 0.95))

    # -- inference --------------------------------------------------------------------
    def _source(self, images: ImageData) -> ImageBatchSource:
        return ImageBatchSource(images, size=self.image_size_)

    def _errors(self, images: ImageData, fn: Any) -> np.ndarray:
        generator = self.net_.module_

        def step(x: torch.Tensor) -> torch.Tensor:
            x_hat = generator(x)[0].float()
            return fn(x.float(), x_hat)

        return self.net_.forward_into(self._source(images), step, np.float32)

    def _decision_scores(self, images: ImageData) -> np.ndarray:
        if self.anomaly_score == "patch":
            fn = partial(losses.patch_loss, patch_size=self.patch_size, stride=self.patch_stride, top_n=self.top_n)
        else:
            fn = losses.l1_reconstruction_loss
        return self._errors(images, fn).astype(np.float64)

    def _proba_from_scores(self, scores: np.ndarray) -> np.ndarray:
        """P(anomaly) = logistic((score − threshold_) / score_scale_): 0.5 at the threshold."""
        return 1.0 / (1.0 + np.exp(-(scores - self.threshold_) / self.score_scale_))

    def anomaly_map(self, X: Any) -> np.ndarray:
        """Per-pixel reconstruction error ``|x − G(x)|`` (mean over channels) at input resolution.

        Returns
        -------
        maps : ndarray of shape (n, H, W), float32
        """
        images = self._check_predict_images(X)
        size = (images.height, images.width)

        def pixel_error(x: torch.Tensor, x_hat: torch.Tensor) -> torch.Tensor:
            err = (x - x_hat).abs().mean(dim=1, keepdim=True)
            return F.interpolate(err, size=size, mode="bilinear", align_corners=False)[:, 0]

        return self._errors(images, pixel_error).astype(np.float32)
