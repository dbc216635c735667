"""DualDiscriminatorGANDetector: the dual-discriminator GAN anomaly detector with a sklearn face."""

from __future__ import annotations

import copy
import os
from collections.abc import Callable, Mapping
from functools import partial
from numbers import Integral, Real
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from sklearn.base import _fit_context
from sklearn.utils._param_validation import Interval, StrOptions

from . import losses, memory
from ._base import (
    SHARED_CONSTRAINTS,
    BaseDefectDetector,
    f1_max_threshold,
    resolve_image_size,
    resolve_plugin,
)
from ._checkpoint_id import checkpoint_for
from ._runtime import resolve_compile, resolve_device, resolve_precision, seeded
from ._validation import ImageData, check_fit_inputs, check_groups, check_unit_range
from .metrics import average_precision
from .plugins import call_with_accepted, get_backbone, get_sampler
from .training import ImageBatchSource
from .training.base import resolve_augment
from .training.gan import LOSS_WEIGHTS, DualGANNet

__all__ = ["DualDiscriminatorGANDetector", "GANScorer"]

#: The scores ``anomaly_score="auto"`` chooses from on the validation images.
SCORES = ("recon", "patch", "memory", "patch_memory")


class GANScorer(torch.nn.Module):
    """The GAN detector's inference graph: a network-ready batch → (anomaly score ``(n,)``, anomaly map).

    ``decision_function``, ``anomaly_map`` and ``to_onnx`` all run this one module, so each score exists once.

    Parameters
    ----------
    generator : torch.nn.Module
    score : {"recon", "patch", "memory", "patch_memory"}
        Mean L1 reconstruction error; mean of the ``top_n`` largest patch errors; cosine distance of the
        image's :func:`~skdefect.memory.image_embedding` to the nearest ``image_memory`` row; or the largest
        distance of a location's :func:`~skdefect.memory.patch_embedding` to the nearest ``patch_memory`` row.
    patch_size, patch_stride, top_n : int
    image_memory : Tensor of shape (m, d), optional
    patch_memory, patch_mean, patch_std : Tensor, optional
        The patch memory ``(m, c)`` and the per-channel statistics that standardise locations.

    Notes
    -----
    The anomaly map is the reconstruction error ``|x − G(x)|`` (mean over channels, ``(n, h, w)``) for the
    first three scores and the nearest-patch distance ``(n, h/4, w/4)`` for ``"patch_memory"``.
    """

    def __init__(self, generator: torch.nn.Module, score: str, patch_size: int, patch_stride: int, top_n: int,
                 image_memory: torch.Tensor | None = None, patch_memory: torch.Tensor | None = None,
                 patch_mean: torch.Tensor | None = None, patch_std: torch.Tensor | None = None) -> None:
        super().__init__()
        self.generator, self.score = generator, score
        self.patch_size, self.patch_stride, self.top_n = patch_size, patch_stride, top_n
        for name, value in (("image_memory", image_memory), ("patch_memory", patch_memory),
                            ("patch_mean", patch_mean), ("patch_std", patch_std)):
            self.register_buffer(name, torch.zeros(0) if value is None else torch.as_tensor(value).float())

    def similarities(self, x: torch.Tensor) -> torch.Tensor:
        """Cosine similarities of the images to every image-memory row, ``(n, m)``."""
        return memory.image_embedding(memory.generator_features(self.generator, x)) @ self.image_memory.T

    def patch_distances(self, x: torch.Tensor) -> torch.Tensor:
        """Each location's distance to the nearest patch-memory row, ``(n, h/4, w/4)``."""
        embedding = memory.patch_embedding(memory.generator_features(self.generator, x))
        return memory.nearest_patch_distances(embedding, self.patch_memory, self.patch_mean, self.patch_std)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        if self.score == "patch_memory":
            distances = self.patch_distances(x)
            return distances.flatten(1).amax(dim=1), distances
        x_hat = self.generator(x)[0].float()
        x = x.float()
        error_map = (x - x_hat).abs().mean(dim=1)
        if self.score == "memory":
            scores = 1.0 - self.similarities(x).amax(dim=1)
        elif self.score == "patch":
            scores = losses.patch_loss(x, x_hat, self.patch_size, self.patch_stride, self.top_n)
        else:
            scores = losses.l1_reconstruction_loss(x, x_hat)
        return scores, error_map


class GANGraph(torch.nn.Module):
    """image (n, C, H, W) in [0, 1] → (anomaly score (n,), reconstruction error per pixel (n, H, W)): the ONNX
    graph. The detector's own inference graph (:meth:`DualDiscriminatorGANDetector.scorer`) between the
    resizes."""

    def __init__(self, estimator: DualDiscriminatorGANDetector) -> None:
        from .export import Resize

        super().__init__()
        h, w, c = estimator.input_shape_
        self.scorer = copy.deepcopy(estimator.scorer()).cpu().float().eval()
        self.resize_in = Resize((h, w), estimator.image_size_, antialias=True)
        with torch.no_grad():  # the anomaly map's resolution (the network's, or a quarter for patch_memory)
            map_size = tuple(self.scorer(torch.zeros(2, c, *estimator.image_size_))[1].shape[-2:])
        self.resize_out = Resize(map_size, (h, w), antialias=False)

    def forward(self, image: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        scores, error_map = self.scorer(self.resize_in(image))
        return scores, self.resize_out(error_map)


def _size_rule(generator: torch.nn.Module, discriminator: Callable[[], torch.nn.Module]) -> tuple[int, int]:
    """``(divisor, min_side)``: sides are multiples of the generator's divisor, at least both networks' minimum."""
    min_side = max(getattr(generator, "min_side", 1), getattr(discriminator(), "min_side", 1))
    return getattr(generator, "input_divisor", 1), min_side


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
        Patches of the patch loss and of ``anomaly_score="patch"``. The defaults are
        those of code that looks like the authors' at 128×128 (49 patches). On a
        64×64 image they give 9 patches, all of which ``top_n=10`` averages: the
        patch loss is then a centre-weighted L1 loss. Scale them with the image
        (16 and 8 at 64 px, as the quality suite does on ELPV).
    top_n : int, default=10
        Patches averaged by the patch loss and the patch score.
    abc_error : {"mean", "patch", "mask"}, default="mean"
        The error ``A`` of the ABC loss ``−log(1 − exp(−A))`` on anomalous images:
        ``"mean"``, the mean L1 reconstruction error (the paper's Eq. 8), or
        ``"patch"``, the patch loss of the anomalous image (the mean of its ``top_n``
        worst patches; a named variant, not the paper's). With ``"mean"`` the ABC loss
        pushes *every* pixel of an anomalous image to reconstruct badly, including
        the normal-looking background that the normal group pushes to reconstruct
        well: when the generator cannot yet tell the classes apart, both pulls
        balance at a mean error of ``ln(1 + w_abc / (w_recon + w_patch))`` (0.154 at
        the paper's weights) on every image, normal or not. With ``"patch"`` only the
        worst patches of an anomalous image are pushed, which the generator could meet
        by failing on the defect alone. Measured (``docs/benchmarks.md``), it changes
        little: over three split seeds, with 16×16 patches, ELPV AUROC 0.818 against
        0.814 and the embedded data's AP 0.574 against 0.565. ``"mask"`` (a named
        variant, which needs ``fit(X, y, masks=masks)``) is the mean L1 error over the
        defect pixels of each anomalous image (:func:`skdefect.losses.masked_l1_error`):
        the generator is told *where* an image is defective, not only *that* it is.
        Measured on the embedded textures (three split seeds, 8×8 patches), it leaves
        the GAN where it was: image AP 0.586 against the default's 0.573 and a small
        CNN's 0.750.
    anomaly_score : {"auto", "recon", "patch", "memory", "patch_memory"}, default="auto"
        What :meth:`decision_function` returns (not called ``score``: that name is
        sklearn's ``score(X, y)`` method):

        - ``"recon"``: the mean L1 reconstruction error (the paper's score);
        - ``"patch"``: the mean of the ``top_n`` largest patch errors;
        - ``"memory"``: the cosine distance of the image's encoder features (the
          generator's ``features``, average-pooled to at most 8×8) to the nearest
          training normal's (a memory of at most 4,096 normals, kept in ``memory_``);
        - ``"patch_memory"``: the largest distance of the image's standardised
          encoder patch features to a coreset of the training normals' patches
          (PatchCore-style, for small defects in textures);
        - ``"auto"``: with anomalies among the validation images, the score of
          the four with the highest validation AP (``score_selection_`` holds
          them all); otherwise ``"memory"`` in one-class training and ``"recon"``
          with anomalies.

        Why ``"memory"`` for one-class training: trained on normals only, the
        U-Net reconstructs anomalies as well as normals (its skip connections copy
        them through), and its error then tracks the amount of ink or texture, not
        normality. On the quality suite's MNIST one-class protocol (normals only,
        digits 2, 5, 8, seed 0; ``benchmarks/results/quality_quick.md``) the
        reconstruction score reached a mean AUROC of 0.564, the memory 0.966 and
        PCA's reconstruction error 0.940.
    generator, discriminator : str, default="unet_generator", "patch_discriminator"
        Registered networks.
    sampler : str, default="auto"
        ``"auto"`` is ``"kmeans"`` (cluster-balanced, anomalies as many as normals)
        when anomalies are given, else ``"uniform"``.
    width : float, default=1.0
        Channel multiplier; 1.0 gives the paper's 97.75K-parameter generator and
        76.39K-parameter discriminators on 3-channel input.
    augment : bool or {"auto", "flips", "dihedral"}, default=False
        Random augmentation of training minibatches: ``"flips"`` (horizontal and
        vertical flips) or ``"dihedral"`` (the flips and, on square images,
        transposes: all eight symmetries of the square; what ``True`` means).
        ``"auto"``: the flips, with the transposes where the training images
        cannot be told from their transposes (as the two-stage detector's
        default; ``augment_`` says which). Off by default: the paper does not
        use it, and on digit-like data a flip changes the class.
    epochs : int, default=60
        Most training epochs; early stopping usually ends training sooner.
    lr : float, default=2e-3
        Adam learning rate of all three networks (betas 0.5, 0.999). The paper gives
        none; code that looks like the authors' uses 1e-4 and GANomaly 2e-4. The
        default is larger and annealed by the cosine schedule within ``epochs``.
    lr_schedule : {"cosine", "plateau", "constant"}, default="cosine"
        ``"cosine"`` decays the three learning rates from ``lr`` towards 0 over
        ``epochs``; ``"plateau"`` (the two-stage detector's default) lowers them
        when the validation AP stalls, which the adversarial training's
        epoch-to-epoch noise triggers too early. A skorch ``LRScheduler`` in
        ``callbacks`` replaces the built-in schedule (and drives the
        discriminators' optimizers too).
    batch_size : int, default=32
    validation_fraction : float in [0, 0.5], default=0.2
        Share of the training images held out (stratified by ``y``) to judge each
        epoch: ``valid_ap``, the average precision of the reconstruction error
        (``valid_loss``, the mean L1 error, in one-class training). Training ends
        with the weights of the best epoch; ``threshold_`` and ``score_scale_``
        come from these images. 0 trains on every image and keeps the last epoch.
    early_stopping : bool, default=True
        Stop when the judged value has not improved (by a relative 1e-4) for
        ``n_iter_no_change`` epochs. Needs ``validation_fraction > 0``.
    n_iter_no_change : int, default=20
        Patience of ``early_stopping``, in epochs. The adversarial training makes
        the validation AP noisy from one epoch to the next: on ELPV a patience of
        10 stopped at epoch 23 of a run whose AP was still rising at epoch 60.
    image_size : int, tuple of int or None, default=None
        Side(s) the generator sees (multiples of 16); images are resized on the
        device. None keeps the input size, which must then be a multiple of 16.
    image_shape : tuple of int or None
        (H, W) or (H, W, C) of flattened input rows.
    contamination : "auto" or float in (0, 0.5], default="auto"
        How ``threshold_`` is set on the validation scores (the training scores
        without validation data): ``"auto"`` maximises F1 when anomalies are given
        and takes the 95th percentile of the normal scores otherwise; a float is
        the expected anomalous share (IsolationForest style quantile).
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
        Spread of the validation scores used by :meth:`predict_proba`.
    one_class_ : bool
        Whether training ran without anomalies.
    anomaly_score_ : str
        The score in use (``anomaly_score`` with ``"auto"`` resolved).
    augment_ : {"flips", "dihedral"} or None
        The augmentation of the training minibatches (``augment`` with
        ``"auto"`` resolved; None: none).
    memory_ : ndarray of shape (m, d) or None
        The feature memory of ``anomaly_score_="memory"``: the normalised features of (up to 4,096) training
        normals.
    sampler_indices_ : ndarray
        Indices the sampler chose for the last epoch.
    n_parameters_ : dict of str to int
        ``generator``, ``disc_normal`` and (unless one-class) ``disc_anomalous``.
    net_ : skdefect.training.gan.DualGANNet
    brightness_range_ : tuple of float
        Lowest and highest mean intensity (on the [0, 1] scale) of the training images; prediction warns
        when the median image lies more than 0.1 outside it (images scaled differently from the training
        images).

    Notes
    -----
    What a default fit costs on the CPU (the quality suite, one torch thread;
    ``docs/training.md``): 24-33 CPU seconds on 400 images of 64×64 of the
    embedded data (AMD EPYC; early stopping after 26-32 epochs), 383-447 s on
    ELPV's 1,630 training cells of 64×64 (Intel Xeon). ``verbose=1`` prints an
    upper bound of the time left after every epoch.

    See Also
    --------
    ConcentratedTwoStageDetector : supervised detection and segmentation from pixel masks.

    References
    ----------
    .. [1] The dual-discriminator GAN for anomaly detection (``../shared/papers``, summarised in
       ``docs/equations.md``): a U-Net generator, LSGAN discriminators for normal and anomalous inputs,
       six weighted generator losses and k-means sampling.
    .. [2] Akçay, Atapour-Abarghouei and Breckon (2018), "GANomaly" (the latent loss).
    .. [3] Roth et al. (2022), "Towards total recall in industrial anomaly detection" (PatchCore: the
       patch memory of ``anomaly_score="patch_memory"``).

    Examples
    --------
    One-class training on normal images only (``y=None``):

    >>> import numpy as np
    >>> from skdefect import DualDiscriminatorGANDetector
    >>> from skdefect.datasets import make_surface_defects
    >>> X, y, _ = make_surface_defects(n_samples=40, image_shape=(32, 32), random_state=0)
    >>> gan = DualDiscriminatorGANDetector(width=0.25, epochs=2, patch_size=16, patch_stride=8, random_state=0)
    >>> gan = gan.fit(X[y == 0])
    >>> gan.one_class_, gan.anomaly_score_
    (True, 'memory')
    >>> gan.decision_function(X[:3]).shape, gan.anomaly_map(X[:3]).shape
    ((3,), (3, 32, 32))
    """

    _parameter_constraints: dict = {
        **{w: [Interval(Real, 0, None, closed="left")] for w in
           ("w_recon", "w_patch", "w_latent", "w_adv", "w_anomaly_adv", "w_abc")},
        "patch_size": [Interval(Integral, 1, None, closed="left")],
        "patch_stride": [Interval(Integral, 1, None, closed="left")],
        "top_n": [Interval(Integral, 1, None, closed="left")],
        "abc_error": [StrOptions({"mean", "patch", "mask"})],
        "anomaly_score": [StrOptions({"auto", *SCORES})],
        "generator": [str],
        "discriminator": [str],
        "epochs": [Interval(Integral, 1, None, closed="left")],
        "contamination": [StrOptions({"auto"}), Interval(Real, 0, 0.5, closed="right")],
        **SHARED_CONSTRAINTS,
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
        abc_error: str = "mean",
        anomaly_score: str = "auto",
        generator: str = "unet_generator",
        discriminator: str = "patch_discriminator",
        sampler: str = "auto",
        width: float = 1.0,
        augment: bool | str = False,
        epochs: int = 60,
        lr: float = 2e-3,
        lr_schedule: str = "cosine",
        batch_size: int = 32,
        validation_fraction: float = 0.2,
        early_stopping: bool = True,
        n_iter_no_change: int = 20,
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
        self.abc_error = abc_error
        self.anomaly_score = anomaly_score
        self.generator = generator
        self.discriminator = discriminator
        self.sampler = sampler
        self.width = width
        self.augment = augment
        self.epochs = epochs
        self.lr = lr
        self.lr_schedule = lr_schedule
        self.batch_size = batch_size
        self.validation_fraction = validation_fraction
        self.early_stopping = early_stopping
        self.n_iter_no_change = n_iter_no_change
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

    _inference_attributes = (*BaseDefectDetector._inference_attributes, "one_class_", "score_scale_",
                             "sampler_indices_")

    def _modules_from_attributes(self, attrs: Mapping[str, Any]) -> dict[str, torch.nn.Module]:
        generator, discriminator = self._build_modules(int(attrs["input_shape_"][2]))
        modules = {"module": generator, "disc_normal": discriminator()}
        if not attrs["one_class_"]:
            modules["disc_anomalous"] = discriminator()
        return modules

    def _net_from_attributes(self, attrs: Mapping[str, Any], device: torch.device) -> DualGANNet:
        generator, discriminator = self._build_modules(int(attrs["input_shape_"][2]))
        return self._build_net(generator, discriminator, bool(attrs["one_class_"]), device, verbose=0)

    def _export_graph(self) -> tuple[torch.nn.Module, str, str, dict[str, str]]:
        return (GANGraph(self), "anomaly score, as decision_function",
                "per-pixel reconstruction error at input resolution, as anomaly_map",
                {"score_scale": repr(float(self.score_scale_))})

    def _size_rule(self, channels: int) -> tuple[int, int | None]:
        return _size_rule(*self._build_modules(channels))

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
            abc_error=self.abc_error,
            optimizer=torch.optim.Adam,
            optimizer__betas=(0.5, 0.999),
            lr=self.lr,
            max_epochs=self.epochs,
            batch_size=self.batch_size,
            device=str(device),
            augment=training.pop("augment", False),  # fit resolves it; a loaded net does not train
            amp_dtype=resolve_precision(self.precision, device),
            compile_mode=resolve_compile(self.compile, device),
            **training,
        )

    def __sklearn_tags__(self):  # noqa: ANN204
        tags = super().__sklearn_tags__()
        tags.target_tags.required = False  # y=None is one-class training
        return tags

    @_fit_context(prefer_skip_nested_validation=True)
    def fit(self, X: Any, y: Any = None, groups: Any = None, masks: Any = None) -> DualDiscriminatorGANDetector:
        """Train the generator and the discriminators.

        Parameters
        ----------
        X : array-like of shape (n, H, W), (n, H, W, C) or (n, H*W*C)
            Training images, uint8 or float in [0, 1] (floats outside [0, 1] are
            refused: the generator's sigmoid output could not reconstruct them).
        y : array-like of shape (n,) or None
            0 = normal, 1 = anomalous; None (or all zeros) trains one-class.
        groups : array-like of shape (n,), optional
            The group of each image: the part, tile or capture session it shows.
            The internal validation split (``validation_fraction``) then holds
            out whole groups (about ``validation_fraction`` of each class's
            images), so that captures of one part never sit on both sides and
            early stopping and ``threshold_`` are judged on parts the networks
            did not train on. Without it near-duplicates of training images
            judge the epochs (Magnetic tile holds each tile about six times:
            ``docs/benchmarks.md``). No effect without validation.
        masks : array-like of shape (n, H, W), optional
            Pixel masks of the defects (nonzero = defective). Only
            ``abc_error="mask"`` uses them (required there): the ABC loss then
            pushes up the reconstruction error of the defect pixels instead of the
            whole anomalous image's. Without ``y`` the labels are "the mask has a
            defect pixel".

        Returns
        -------
        self : DualDiscriminatorGANDetector
        """
        images, y, masks = check_fit_inputs(X, y, masks, image_shape=self.image_shape, require="none")
        groups = check_groups(groups, len(images))
        if self.abc_error == "mask" and masks is None:
            raise ValueError("abc_error='mask' needs the defects' pixel masks: fit(X, y, masks=masks)")
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
        masks = masks if self.abc_error == "mask" else None  # the other settings do not read them
        checkpoint, checkpoint_meta = checkpoint_for(self, images, labels, masks, groups)

        with seeded(self.random_state) as seed:
            generator, discriminator = self._build_modules(images.channels, gen_factory, disc_factory)
            image_size = resolve_image_size(
                self.image_size, (images.height, images.width), *_size_rule(generator, discriminator)
            )
            sampler = call_with_accepted(sampler_factory, random_state=seed)
            train_rows, valid_rows = self._holdout(labels, seed, groups)
            source = ImageBatchSource(images, labels, masks=masks, size=image_size, rows=train_rows)
            valid = None if valid_rows is None else ImageBatchSource(images, labels, size=image_size, rows=valid_rows)
            build = partial(self._build_net, generator, discriminator, one_class, device, group_seed=seed,
                            valid_score="patch" if self.anomaly_score == "patch" else "recon")
            net = self._train_net(build, source, valid, sampler, seed, (checkpoint, checkpoint_meta))

        self.net_ = net
        self.augment_ = resolve_augment(net.augment)
        self.one_class_ = one_class
        self._set_input_attributes(images, image_size)
        self.sampler_indices_ = getattr(net.sampler, "indices_", None)  # a resumed fit's sampler is restored
        self.n_parameters_ = {"generator": sum(p.numel() for p in net.module_.parameters())}
        for name in ("disc_normal", "disc_anomalous"):
            if hasattr(net, name + "_"):
                self.n_parameters_[name] = sum(p.numel() for p in getattr(net, name + "_").parameters())
        normals = train_rows[labels[train_rows] == 0]
        self._report(f"building the feature memory of {len(normals)} training normals"
                     + (" and choosing the score on the validation images" if self.anomaly_score == "auto" else ""))
        self.anomaly_score_, self.score_selection_ = self._choose_score(images, labels, normals, valid_rows, seed)
        self._report(f"anomaly_score_ = {self.anomaly_score_!r}; choosing the threshold on "
                     f"{len(valid_rows) if valid_rows is not None else len(train_rows)} images")
        # threshold and probability scale from images the generator did not train on, where there are any
        if valid_rows is not None:
            rows, scores = valid_rows, self._decision_scores(images, valid_rows)
        else:
            rows = train_rows
            exclude = self._image_memory_rows(normals) if self.anomaly_score_ == "memory" else None
            scores = self._decision_scores(images, rows, exclude=exclude)
        self.threshold_ = self._fit_threshold(scores, labels[rows])
        spread = np.subtract(*np.percentile(scores, [75, 25]))
        self.score_scale_ = float(max(spread, np.std(scores), 1e-12))
        return self

    def _choose_score(
        self, images: ImageData, labels: np.ndarray, normals: np.ndarray, valid_rows: np.ndarray | None, seed: int
    ) -> tuple[str, dict[str, float] | None]:
        """``anomaly_score`` resolved, its memories built; with ``"auto"`` and validation images of both classes,
        the score of :data:`SCORES` with the highest validation AP (``score_selection_`` holds them all)."""
        self.memory_ = self.patch_memory_ = self.patch_mean_ = self.patch_std_ = None
        choosing = (
            self.anomaly_score == "auto" and valid_rows is not None and len(np.unique(labels[valid_rows])) == 2
        )
        if not choosing:
            score = ("memory" if self.one_class_ else "recon") if self.anomaly_score == "auto" else self.anomaly_score
            self._build_memory(score, images, normals, seed)
            return score, None
        for score in ("memory", "patch_memory"):
            self._build_memory(score, images, normals, seed)
        selection = {}
        for score in SCORES:
            self.anomaly_score_ = score
            selection[score] = average_precision(labels[valid_rows], self._decision_scores(images, valid_rows))
        best = max(SCORES, key=lambda name: (selection[name], -SCORES.index(name)))  # ties: the earlier one
        if best != "memory":
            self.memory_ = None
        if best != "patch_memory":
            self.patch_memory_ = self.patch_mean_ = self.patch_std_ = None
        return best, selection

    def _image_memory_rows(self, normals: np.ndarray) -> np.ndarray:
        return normals[np.linspace(0, len(normals) - 1, min(len(normals), memory.IMAGE_ROWS)).astype(np.int64)]

    def _build_memory(self, score: str, images: ImageData, normals: np.ndarray, seed: int) -> None:
        """The image or patch memory of the training ``normals`` (rows of ``images``) that ``score`` needs."""
        generator = self.net_.module_
        if score == "memory":
            source = self._source(images, self._image_memory_rows(normals))
            embed = lambda x: memory.image_embedding(memory.generator_features(generator, x))  # noqa: E731
            self.memory_ = self.net_.forward_into(source, embed, np.float32)
        elif score == "patch_memory":
            embed = lambda x: memory.patch_embedding(memory.generator_features(generator, x))  # noqa: E731
            patches = torch.from_numpy(self.net_.forward_into(self._source(images, normals), embed, np.float32))
            vectors = patches.permute(0, 2, 3, 1).reshape(-1, patches.shape[1])
            if len(vectors) > memory.PATCH_POOL:
                keep = torch.randperm(len(vectors), generator=torch.Generator().manual_seed(seed))
                vectors = vectors[keep[: memory.PATCH_POOL]]
            mean, std = vectors.mean(dim=0), vectors.std(dim=0).clamp_min(1e-6)
            standardised = (vectors - mean) / std
            rows = memory.greedy_coreset(standardised, memory.PATCH_ROWS, seed)
            self.patch_memory_ = standardised[rows].numpy()
            self.patch_mean_, self.patch_std_ = mean.numpy(), std.numpy()

    def _fit_threshold(self, scores: np.ndarray, y: np.ndarray) -> float:
        if self.contamination != "auto":
            return float(np.quantile(scores, 1.0 - self.contamination))
        if y.any():
            return f1_max_threshold(scores, y)
        return float(np.quantile(scores, 0.95))

    # -- inference --------------------------------------------------------------------
    def _source(self, images: ImageData, rows: np.ndarray | None = None) -> ImageBatchSource:
        return ImageBatchSource(images, size=self.image_size_, rows=rows)

    def scorer(self) -> GANScorer:
        """The inference graph (:class:`GANScorer`) of the fitted detector, on its device."""
        score = getattr(self, "anomaly_score_", self.anomaly_score)
        memories = {name: getattr(self, name + "_", None) for name in
                    ("image_memory", "patch_memory", "patch_mean", "patch_std")}
        memories["image_memory"] = getattr(self, "memory_", None)
        scorer = GANScorer(self.net_.module_, score, self.patch_size, self.patch_stride, self.top_n, **memories)
        return scorer.to(torch.device(self.net_.device))

    def _decision_scores(
        self, images: ImageData, rows: np.ndarray | None = None, exclude: np.ndarray | None = None
    ) -> np.ndarray:
        """Anomaly scores of ``rows``. ``exclude`` (sorted rows of ``images`` the memory was built from, for a
        threshold without validation data): such an image is compared with the nearest *other* memory row."""
        scorer = self.scorer()
        source = self._source(images, rows)
        if exclude is None:
            return self.net_.forward_into(source, lambda x: scorer(x)[0], np.float64)
        sims = self.net_.forward_into(source, scorer.similarities, np.float32)
        rows = np.arange(len(images)) if rows is None else np.asarray(rows)
        where = np.clip(np.searchsorted(exclude, rows), 0, len(exclude) - 1)
        own = np.flatnonzero(exclude[where] == rows)
        sims[own, where[own]] = -np.inf
        return (1.0 - sims.max(axis=1)).astype(np.float64)

    def _proba_from_scores(self, scores: np.ndarray) -> np.ndarray:
        """P(anomaly) = logistic((score − threshold_) / score_scale_): 0.5 at the threshold."""
        return 1.0 / (1.0 + np.exp(-(scores - self.threshold_) / self.score_scale_))

    def anomaly_map(self, X: Any) -> np.ndarray:
        """Per-pixel anomaly map at input resolution: the reconstruction error ``|x − G(x)|`` (mean over
        channels), or for ``anomaly_score_="patch_memory"`` the distance to the nearest normal patch.

        Returns
        -------
        maps : ndarray of shape (n, H, W), float32
        """
        images = self._check_predict_images(X)
        size = (images.height, images.width)
        scorer = self.scorer()

        def pixel_error(x: torch.Tensor) -> torch.Tensor:
            err = scorer(x)[1][:, None]
            return F.interpolate(err, size=size, mode="bilinear", align_corners=False)[:, 0]

        return self.net_.forward_into(self._source(images), pixel_error, np.float32)
