"""ConcentratedTwoStageDetector: the concentrated-loss two-stage network with a sklearn face."""

from __future__ import annotations

import copy
import os
import warnings
from collections.abc import Mapping
from functools import partial
from numbers import Integral, Real
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from sklearn.base import _fit_context
from sklearn.utils._param_validation import Interval, StrOptions

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
from .plugins import call_with_accepted, get_backbone, get_loss, get_sampler, ignored_arguments
from .training import ImageBatchSource, TwoStageNet
from .training.base import resolve_augment

__all__ = ["ConcentratedTwoStageDetector", "TwoStageScorer"]


class TwoStageScorer(torch.nn.Module):
    """The two-stage detector's inference graph: a network-ready batch → (image score ``(n,)``, segmentation
    logits ``(n, 1, h, w)``).

    ``decision_function``, ``segment`` and ``to_onnx`` all run this one module.

    Parameters
    ----------
    module : torch.nn.Module
        The two-stage backbone.
    image_score : {"decision", "seg_max"}
        The decision net's logit, or the largest segmentation logit (a detector trained without a
        decision stage, ``dec_epochs=0``).
    """

    def __init__(self, module: torch.nn.Module, image_score: str = "decision") -> None:
        super().__init__()
        self.module, self.image_score = module, image_score

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        if self.image_score == "seg_max":
            segment = getattr(self.module, "segment", None)
            seg = segment(x) if segment is not None else self.module(x)[0]
            return seg.float().amax(dim=(1, 2, 3)), seg.float()
        seg, logit = self.module(x)
        return logit.float(), seg.float()


class TwoStageGraph(torch.nn.Module):
    """image (n, C, H, W) in [0, 1] → (image score (n,), P(defect) per pixel (n, H, W)): the ONNX graph.

    The detector's own inference graph (:meth:`ConcentratedTwoStageDetector.scorer`) between the input
    normalisation and the resizes."""

    def __init__(self, estimator: ConcentratedTwoStageDetector) -> None:
        from .export import Resize

        super().__init__()
        h, w, c = estimator.input_shape_
        self.scorer = copy.deepcopy(estimator.scorer()).cpu().float().eval()
        self.resize_in = Resize((h, w), estimator.image_size_, antialias=True)
        self.register_buffer("mean", torch.as_tensor(np.asarray(estimator.input_mean_, np.float32)).view(1, c, 1, 1))
        self.register_buffer("std", torch.as_tensor(np.asarray(estimator.input_std_, np.float32)).view(1, c, 1, 1))
        with torch.no_grad():  # the segmentation map's resolution (the input's, or a fraction of it)
            seg_size = tuple(self.scorer(torch.zeros(2, c, *estimator.image_size_))[1].shape[-2:])
        self.resize_out = Resize(seg_size, (h, w), antialias=False)

    def forward(self, image: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        x = (self.resize_in(image) - self.mean) / self.std
        score, seg = self.scorer(x)
        return score, self.resize_out(seg).sigmoid()[:, 0]


def input_statistics(
    images: ImageData, rows: np.ndarray | None = None, max_images: int = 512
) -> tuple[np.ndarray, np.ndarray]:
    """Per-channel mean and std of (up to ``max_images`` evenly spaced) training images (``rows``, default all)."""
    rows = np.arange(len(images)) if rows is None else np.asarray(rows)
    idx = rows[np.unique(np.linspace(0, len(rows) - 1, num=min(len(rows), max_images)).astype(np.int64))]
    batch = images.batch(idx).astype(np.float64)
    mean = batch.mean(axis=(0, 2, 3))
    std = batch.std(axis=(0, 2, 3))
    return mean.astype(np.float32), np.maximum(std, 1e-3).astype(np.float32)


def _size_rule(module: torch.nn.Module) -> tuple[int, int | None]:
    """``(divisor, min_side)`` of a two-stage network: its sides must be multiples of the one, at least the other."""
    return getattr(module, "input_divisor", 1), getattr(module, "min_side", None)


class ConcentratedTwoStageDetector(BaseDefectDetector):
    """Two-stage surface-defect detector trained with the concentrated loss.

    A segmentation network is trained on pixel masks with the concentrated loss
    ``CL = (1 − IoU)^γ · (λ·Dice + (1 − λ)·CE)`` (Wang et al. 2022), then a decision
    network classifies each image from the segmentation output. The concentration
    factor ``(1 − IoU)^γ`` down-weights images that are already well segmented, so
    training concentrates on the hard ones.

    Parameters
    ----------
    gamma : float, default=0.5
        γ ≥ 0, the concentration exponent (paper: 0.5). ``gamma=0`` gives the base loss.
    dice_weight : float in [0, 1] or "auto", default="auto"
        λ, the Dice share of the base loss (paper: 0.95). 1 is pure Dice, 0 pure
        cross-entropy. ``"auto"`` is the paper's 0.95 with the paper's network
        (``backbone="wang2022"``, the default on CUDA) and 0.5 with every other
        backbone, the CPU default ``"wang2022_select"`` among them
        (``dice_weight_`` says which). 0.5 was chosen on the validation images
        the estimator holds out, not on test data: on all eight of the quality
        suite's splits measured (the embedded data's three seeds, Magnetic
        tile's five folds) the decision stage's validation loss at its kept
        epoch was lower at 0.5 than at 0.95, and its validation AP higher on
        seven. On the test splits it localises better everywhere (pixel AUROC
        +0.035 on the embedded data, +0.097 on Magnetic tile) and ranks images
        better on the embedded data (AP +0.028) and about as well on Magnetic
        tile (−0.020 on one machine, +0.032 on another): ``docs/benchmarks.md``.
    backbone : str, default="auto"
        Registered two-stage network: ``"wang2022"`` (the paper's Table 1,
        sequential schedule), ``"wang2022_features"`` (Table 1's segmentation net
        with a decision net that also reads its deepest features, SegDecNet-style;
        not in the paper), ``"wang2022_image"`` (the same, with a decision net
        that also reads the image through a small convolutional tower, for
        defects the segmentation map misses; not in a paper),
        ``"wang2022_select"`` (both of these decision nets trained side by side
        on the same minibatches, each with its own loss, and the one with the
        lower validation loss kept; ``decision_head_`` says which, and without
        validation images it is ``"features"``; not in a paper),
        ``"wang2022_unet"`` (``"wang2022_features"`` with a U-Net decoder in
        place of Table 1's single-channel side outputs and linear fusion; not
        in the paper; below ``"wang2022_features"`` on every split measured, at
        2.5 times its CPU time), ``"segdec"`` (Božič et al. 2021, joint
        schedule with dynamic balancing), or a plugin's name. ``"auto"`` is
        the paper's ``"wang2022"`` on CUDA and ``"wang2022_select"`` on the
        CPU, where the paper's decision net (a 512-channel D1 at full
        resolution, then a 5×5 convolution at half resolution) costs about 26
        times its segmentation net (in a development run on the embedded data
        it made the fit 4 times as long and ranked the test images no better,
        AP 0.855 against 0.877; the quality suite's full profile has the
        ablation row *paper decision net*). Which decision net ranks images
        better depends on the data: on Magnetic tile the image-reading one had
        the lower validation loss on all five folds and the better test image
        AP (0.821 against 0.786), on the embedded textures the features one on
        two seeds of three (0.835 against 0.800). ``"wang2022_select"`` lets
        each fit's validation images choose: in the quality suite (an Intel
        Xeon) it ranked Magnetic tile's test images at AP 0.848 (the image head
        chosen on five folds of five) and the embedded data's at 0.843 (the
        features head on three seeds of three), above a small CNN given the
        same CPU time on both (``docs/benchmarks.md``).
    loss : str, default="concentrated"
        Registered pixel loss. Factories that accept ``gamma`` / ``dice_weight`` get
        them; ``"bce"`` is SegDecNet's loss, ``"dice_ce"`` the base loss alone.
    sampler : str, default="balanced"
        Registered minibatch sampler; ``"balanced"`` is the biased (half defective)
        minibatch sampling of the paper, ``"uniform"`` plain shuffling.
    width : float, default=1.0
        Channel multiplier of the networks; 1.0 is the paper's network.
    augment : bool or {"auto", "flips", "dihedral"}, default="auto"
        Random augmentation of each training minibatch, image and mask alike. Not
        in the paper; on small training sets it is the difference between
        memorising and generalising. ``"flips"``: horizontal and vertical flips.
        ``"dihedral"``: the flips and, on square images, transposes (all eight
        symmetries of the square, quarter turns among them); ``True`` means
        ``"dihedral"``, the default until December 2026. ``False``: none.
        ``"auto"`` (``augment_`` says which): the flips, and the transposes too
        unless the training images can be told from their transposes: unless
        their mean power spectrum is further from its transpose than in every
        one of 99 random transpositions of them (a randomisation test at p =
        0.01, :func:`skdefect.training.data.transpose_test`). Images of one
        camera geometry resized to a square transpose into images unlike any the
        detector will score; content cut at any angle does not. Measured on the
        quality suite (docs/benchmarks.md): on Magnetic tile (64 px, five folds
        by tile; 4.8-5.1 times the random transpositions' asymmetry) the flips
        alone raised the test image AP from 0.689 to 0.786 and the pixel AUROC
        from 0.760 to 0.905; on the embedded textures (0.98-1.01 times, p 0.37-
        0.71) ``"dihedral"`` had the lower validation loss on all three seeds
        and the better test image AP (0.866 against 0.835).
    norm : {"batch", "instance", "none"}, default="batch"
        Normalisation after each convolution of the networks that accept it; the
        paper names none. ``"instance"`` normalises each image on its own, so
        its statistics do not depend on the minibatch (useful with
        ``batch_size`` 1-2, the paper's); ``"none"`` keeps the plain convolutions.
    seg_epochs : int, default=60
        Most epochs of the segmentation stage (paper: 200). A CPU budget: on
        the quality suite's data it ends the stage before its validation loss
        converges (the best of 60 epochs stays 3.4-3.5 % above the converged
        best on the embedded data, 14.9 % on a Magnetic tile fold), while with
        the paper's 200 + 100 epochs early stopping ends both stages by itself,
        after 92-161 segmentation epochs, at 2.2-2.7 times the CPU time, and
        ranks test images better (embedded data AP 0.854 → 0.862, Magnetic
        tile 0.686 → 0.744; ``docs/training.md``). Baselines given that longer
        CPU time gain more than the detector on the embedded data (margin
        +0.109 → +0.044) and less on Magnetic tile (−0.118 → −0.062), so the
        CPU default stays the cheaper budget. Pass ``seg_epochs=200,
        dec_epochs=100`` to train to convergence.
    dec_epochs : int, default=20
        Most epochs of the decision stage (paper: 100). 0 trains no decision
        stage: the image score is then the largest segmentation logit, and ``y``
        may hold defective images only (a segmentation data set such as
        CrackForest). For a ``"joint"`` backbone the two counts add up to the
        joint training length.
    lr : float, default=1e-3
        Adam learning rate of both stages. The paper prints 0.1, which does not
        train these networks with Adam; 1e-3 does.
    lr_schedule : {"plateau", "cosine", "constant"}, default="plateau"
        ``"plateau"`` multiplies a stage's learning rate by 0.25 whenever its
        judge (see ``early_stopping``) has not improved for a third of ``n_iter_no_change``
        epochs (at least 2); ``"cosine"`` decays it from ``lr`` towards 0 over the
        stage's ``seg_epochs`` / ``dec_epochs``. A cosine decay tied to the epoch
        budget starves short trainings: in development runs (not part of
        ``benchmarks/``) at 15 + 4 epochs on 200 images of 48×48 it gave a test
        AP of 0.84 against 0.90 for the plateau rule, which lowers the rate only
        when training stalls; at 60 + 20 epochs on 400 images of 64×64 the two
        were level (0.85 and 0.83, 3 seeds each). A skorch
        ``LRScheduler`` in ``callbacks`` replaces the built-in schedule (and drives
        both stages' optimizers).
    batch_size : int, default=8
        Training minibatch size (paper: 2).
    validation_fraction : float in [0, 0.5], default=0.2
        Share of the training images held out (stratified by ``y``; masks follow)
        to judge each epoch: the net records ``valid_loss`` per stage (the pixel
        loss, then the decision BCE) and ``valid_ap``; each stage ends with the
        weights of its best epoch; ``threshold_`` is chosen on these images.
        0 trains on every image, keeps the last epoch's weights and sets the
        threshold on the training images.
    early_stopping : bool, default=True
        End a stage when its judge (``seg_monitor_`` for the segmentation stage,
        ``valid_loss`` for the others) has not improved (by a relative 1e-4) for
        ``n_iter_no_change`` epochs. Needs ``validation_fraction > 0``.
    seg_monitor : {"auto", "valid_loss", "valid_ap", "valid_pixel_ap"}, default="auto"
        What judges the segmentation stage's epochs (its best weights, early
        stopping and the ``"plateau"`` schedule): ``"valid_pixel_ap"``, the
        average precision of all validation pixels whose mask is known (a pixel
        is positive where its mask has any defect); ``"valid_loss"``, its
        validation loss; or ``"valid_ap"``, the validation images ranked by their
        largest pixel logit (recorded in every fit; needs normal and defective
        validation images). ``"auto"`` (``seg_monitor_`` says which) is
        ``"valid_pixel_ap"`` where the validation images have defect pixels to
        rank, else the loss (no hold-out; SegDecNet's joint stage, which is
        always judged by its loss). The loss was the default until December
        2026. With validation on parts the networks never saw (``groups``) the
        loss of unseen parts bottomed out after a few epochs while their maps'
        ranking still improved: on Magnetic tile 64 px, five folds, the
        pixel-AP rule gave image AP 0.694 against 0.626 (pixel AUROC 0.699
        against 0.632). With the random hold-out, where the loss works, the two
        were level (Magnetic tile 0.689 against 0.686, the embedded data 0.866
        against 0.861; ``docs/benchmarks.md``).
    n_iter_no_change : int, default=30
        Patience of ``early_stopping``, in epochs; the ``"plateau"`` schedule
        lowers the rate after a third of it. At 10 (the default until December
        2026) a stage whose ``valid_loss`` stalled for nine epochs had its rate
        cut 64-fold by the plateau rule and then ended: the segmentation stage
        stopped after 34-52 of its 60 epochs on the quality suite's embedded data
        and on four of Magnetic tile's five folds. With 30 its best validation
        loss came at epochs 50-60 in every one of those runs, so the validation
        images themselves say the old rule stopped too soon. Measured on the same
        splits (``docs/benchmarks.md``): Magnetic tile 64 px image AP 0.608 →
        0.686 (higher on all five folds), the embedded data 0.840 → 0.854 (pixel
        AUROC 0.866 → 0.885), at 1.2-1.5 times the CPU time. Lower it (or
        ``seg_epochs``) for a quicker, less thorough fit.
    image_size : int, tuple of int or None, default=None
        Side(s) the networks see; images are resized on the device. None keeps the
        input size, which must be divisible by the backbone's ``input_divisor`` (8).
    image_shape : tuple of int or None, default=None
        (H, W) or (H, W, C) of flattened input rows (n, H·W·C).
    device : str, default="auto"
        ``"auto"`` picks CUDA when present, else the CPU.
    precision : {"auto", "fp32", "bf16", "fp16"}, default="auto"
        Autocast dtype; ``"auto"`` is bf16 on CUDA, fp32 on the CPU.
    compile : bool or {"default", "reduce-overhead", "max-autotune", "max-autotune-no-cudagraphs"}, \
            default=False
        ``torch.compile`` the networks' forward passes (``True`` is mode
        ``"default"``). Modules are compiled in place (``nn.Module.compile``):
        parameter names, checkpoints, pickles and saved files are those of the
        eager networks, and a pickled or loaded detector compiles again. Each
        network compiles at its first call and again per new batch shape and
        train/eval mode: about a minute on one CPU thread. Measured on the CPU
        after that, it made predict 26 % and segmentation training 13 % faster,
        decision and GAN training 11 % slower (the performance guide has the
        figures; CUDA is not measured yet). On the CPU it needs a C++ compiler,
        checked before training.
    random_state : int, RandomState instance or None, default=None
        Seeds network initialisation and sampling; a fixed value gives identical
        scores on the CPU.
    verbose : int, default=0
        0 is silent; 1 prints a table per epoch (with the stage, its losses, the
        learning rate and an estimate of the time left) and shows a progress bar.
    callbacks : list of skorch callbacks or None, default=None
        Passed through to the skorch net, with the effect they have on a skorch
        net on every stage and optimizer: ``EarlyStopping`` ends the current stage
        (and watches the next one afresh), ``LRScheduler`` drives the decision
        optimizer too (from the start of its stage), ``GradientNormClipping``
        clips every optimizer step, loggers see every epoch. Their own state
        (early-stopping counters, LR schedules) is not part of a
        ``checkpoint_dir`` checkpoint.
    checkpoint_dir : str, path or None, default=None
        Directory for training checkpoints. At the end of every epoch the complete
        training state is written there, atomically: the network, both optimizers
        (segmentation and decision), the history (epoch counter included) and the
        RNG states (torch, the sampler, the augmentation). ``fit`` continues from
        that file when it exists, so a fit killed by a crash, a time limit or
        SIGKILL loses at most the epoch in progress; on the CPU the resumed fit
        gives the same scores as an uninterrupted one. The file name is a hash of
        the parameters (except ``device``, ``verbose``, ``callbacks`` and
        ``checkpoint_dir``) and the training data, so other parameters or data
        never resume a foreign run, and one directory serves a whole grid search.
        A finished run's checkpoint stays: fitting it again loads the trained
        state instead of training (delete the file to retrain). Checkpoints hold
        no pickle (safetensors and JSON); see the reliability guide.

    Attributes
    ----------
    classes_ : ndarray of shape (2,)
        ``[0, 1]``.
    threshold_ : float
        Image-score threshold of :meth:`predict`, chosen to maximise F1 on the
        validation images (on the training images without validation data).
    backbone_ : str
        The backbone in use (``backbone`` with ``"auto"`` resolved).
    dice_weight_ : float
        The Dice share λ in use (``dice_weight`` with ``"auto"`` resolved).
    augment_ : {"flips", "dihedral"} or None
        The augmentation of the training minibatches (``augment`` with
        ``"auto"`` resolved; None: none).
    seg_monitor_ : str
        What judged the segmentation stage (``seg_monitor`` with ``"auto"``
        resolved).
    image_score_ : {"decision", "seg_max"}
        What :meth:`decision_function` returns: the decision logit, or the
        largest segmentation logit (``dec_epochs=0``).
    decision_head_ : str or None
        The decision net that answers, where the backbone trains several and the
        validation images choose (``"features"`` or ``"image"`` with
        ``"wang2022_select"``); None for the other backbones.
    net_ : skdefect.training.TwoStageNet
        The fitted skorch net (``net_.history`` holds every epoch's loss terms).
    n_parameters_ : dict of str to int
        Parameter count per module (``segmentation``, ``decision``).
    input_shape_ : tuple of int
        (H, W, C) of the training images; predictions need the same.
    image_size_ : tuple of int
        (h, w) the networks see.
    n_features_in_ : int
        H·W·C.
    brightness_range_ : tuple of float
        Lowest and highest mean intensity (on the [0, 1] scale) of the training images; prediction warns
        when the median image lies more than 0.1 outside it (images scaled differently from the training
        images).

    Notes
    -----
    What a default fit costs on the CPU (the quality suite, one torch thread of
    a 2-core Intel Xeon; ``docs/training.md``): 340-350 CPU seconds on a
    Magnetic tile fold (1,075 training images of 64×64), 200-210 s on 400
    images of the embedded data (207-222 s on an AMD EPYC, where ``augment="auto"``
    adds the transposes); 1,100 s at 128×128 on Magnetic tile (AMD EPYC).
    ``verbose=1`` prints an upper bound of the time left
    after every epoch. A smaller ``n_iter_no_change``, ``seg_epochs`` or
    ``width`` makes it cheaper (at patience 10 a Magnetic tile fit took 0.8
    times as long and ranked the images 0.078 AP worse).

    See Also
    --------
    DualDiscriminatorGANDetector : anomaly detection without masks (or without anomalies).

    References
    ----------
    .. [1] Wang et al. (2022), a two-stage surface-defect network trained with the concentrated loss
       ``(1 − IoU)^γ · (λ·Dice + (1 − λ)·CE)``; ``docs/equations.md`` maps each equation to its function.
    .. [2] Božič, Tabernik and Skočaj (2021), "Mixed supervision for surface-defect detection"
       (SegDecNet; ``backbone="segdec"``).

    Examples
    --------
    >>> from skdefect import ConcentratedTwoStageDetector
    >>> from skdefect.datasets import make_surface_defects
    >>> X, y, masks = make_surface_defects(n_samples=40, image_shape=(32, 32), random_state=0)
    >>> det = ConcentratedTwoStageDetector(width=0.25, seg_epochs=2, dec_epochs=1, random_state=0)
    >>> det = det.fit(X, y, masks=masks)
    >>> det.predict(X[:4]).shape, det.segment(X[:4]).shape
    ((4,), (4, 32, 32))
    >>> bool(((det.predict_proba(X) >= 0) & (det.predict_proba(X) <= 1)).all())
    True
    """

    _parameter_constraints: dict = {
        "gamma": [Interval(Real, 0, None, closed="left")],
        "dice_weight": [Interval(Real, 0, 1, closed="both"), StrOptions({"auto"})],
        "backbone": [str],
        "loss": [str],
        "norm": [StrOptions({"batch", "instance", "none"})],
        "seg_epochs": [Interval(Integral, 0, None, closed="left")],
        "dec_epochs": [Interval(Integral, 0, None, closed="left")],
        "seg_monitor": [StrOptions({"auto", "valid_loss", "valid_ap", "valid_pixel_ap"})],
        **SHARED_CONSTRAINTS,
    }

    def __init__(
        self,
        gamma: float = 0.5,
        dice_weight: float | str = "auto",
        *,
        backbone: str = "auto",
        loss: str = "concentrated",
        sampler: str = "balanced",
        width: float = 1.0,
        augment: bool | str = "auto",
        norm: str = "batch",
        seg_epochs: int = 60,
        dec_epochs: int = 20,
        lr: float = 1e-3,
        lr_schedule: str = "plateau",
        batch_size: int = 8,
        validation_fraction: float = 0.2,
        early_stopping: bool = True,
        seg_monitor: str = "auto",
        n_iter_no_change: int = 30,
        image_size: Any = None,
        image_shape: Any = None,
        device: str = "auto",
        precision: str = "auto",
        compile: bool | str = False,
        random_state: Any = None,
        verbose: int = 0,
        callbacks: list | None = None,
        checkpoint_dir: str | os.PathLike[str] | None = None,
    ) -> None:
        self.gamma = gamma
        self.dice_weight = dice_weight
        self.backbone = backbone
        self.loss = loss
        self.sampler = sampler
        self.width = width
        self.augment = augment
        self.norm = norm
        self.seg_epochs = seg_epochs
        self.dec_epochs = dec_epochs
        self.lr = lr
        self.lr_schedule = lr_schedule
        self.batch_size = batch_size
        self.validation_fraction = validation_fraction
        self.early_stopping = early_stopping
        self.seg_monitor = seg_monitor
        self.n_iter_no_change = n_iter_no_change
        self.image_size = image_size
        self.image_shape = image_shape
        self.device = device
        self.precision = precision
        self.compile = compile
        self.random_state = random_state
        self.verbose = verbose
        self.callbacks = callbacks
        self.checkpoint_dir = checkpoint_dir

    # -- fit --------------------------------------------------------------------------
    def _check_fit_data(self, X: Any, y: Any, masks: Any) -> tuple[ImageData, np.ndarray, np.ndarray]:
        images, y, masks = check_fit_inputs(X, y, masks, image_shape=self.image_shape, require="masks")
        if len(np.unique(y)) < 2 and self.dec_epochs > 0:
            raise ValueError(
                f"y must contain both classes (0 = normal, 1 = defective) to train the decision stage; "
                f"got only class {int(y[0])} in {len(y)} images (with dec_epochs=0 the detector trains its "
                "segmentation net alone, which defective images suffice for)"
            )
        known = masks.any(axis=(1, 2))
        if not known[y == 1].any():
            raise ValueError(
                "masks: no defective image has a non-empty mask, so the segmentation stage has nothing "
                "to learn; give at least one pixel mask (empty masks of defective images mean 'unknown')"
            )
        return images, y, masks

    _inference_attributes = (*BaseDefectDetector._inference_attributes, "input_mean_", "input_std_")

    def _modules_from_attributes(self, attrs: Mapping[str, Any]) -> dict[str, torch.nn.Module]:
        if self.backbone != "auto":  # the parameter names a network: it must exist and be the fitted one
            resolve_plugin(get_backbone, self.backbone, "backbone")
        backbone = str(attrs.get("backbone_", self.backbone))  # files written before "auto" name the backbone
        if self.backbone not in ("auto", backbone):
            raise ValueError(f"the file's backbone={self.backbone!r} contradicts its fitted backbone_={backbone!r}")
        return {"module": self._build_module(int(attrs["input_shape_"][2]), backbone)}

    def _net_from_attributes(self, attrs: Mapping[str, Any], device: torch.device) -> TwoStageNet:
        return self._build_net(self._modules_from_attributes(attrs)["module"], device, verbose=0)

    def _export_graph(self) -> tuple[torch.nn.Module, str, str, dict[str, str]]:
        return (TwoStageGraph(self), "image score (the decision logit), as decision_function",
                "per-pixel defect probability at input resolution, as segment", {})

    def _size_rule(self, channels: int) -> tuple[int, int | None]:
        return _size_rule(self._build_module(channels, self._resolve_backbone(resolve_device(self.device))))

    def _resolve_backbone(self, device: torch.device) -> str:
        """``backbone`` with ``"auto"`` resolved for ``device``."""
        if self.backbone != "auto":
            return self.backbone
        return "wang2022" if device.type == "cuda" else "wang2022_select"

    def _resolve_dice_weight(self, backbone: str) -> float:
        """``dice_weight`` with ``"auto"`` resolved for the fitted ``backbone``: the paper's 0.95 for its network,
        0.5 (chosen on validation images, see the parameter's description) for the others."""
        if self.dice_weight != "auto":
            return float(self.dice_weight)
        return 0.95 if backbone == "wang2022" else 0.5

    def _resolve_seg_monitor(self, module: torch.nn.Module, pixels_to_rank: bool) -> str:
        """``seg_monitor`` with ``"auto"`` resolved: the validation pixels' AP where a sequential backbone's
        segmentation stage has validation defect pixels to rank, its validation loss otherwise."""
        if self.seg_monitor != "auto":
            return self.seg_monitor
        sequential = getattr(module, "schedule", "sequential") == "sequential"
        return "valid_pixel_ap" if sequential and pixels_to_rank else "valid_loss"

    def _build_module(self, channels: int, backbone: str, factory: Any = None) -> torch.nn.Module:
        """The untrained two-stage network ``backbone`` from the plugins (``fit`` and :func:`skdefect.load`)."""
        if factory is None:
            factory = resolve_plugin(get_backbone, backbone, "backbone")
        module = call_with_accepted(factory, in_channels=channels, width=self.width, norm=self.norm)
        for part in ("segmentation", "decision"):
            if not isinstance(getattr(module, part, None), torch.nn.Module):
                raise ValueError(
                    f"backbone {backbone!r} is not a two-stage network: it has no '{part}' submodule"
                )
        return module

    def _build_net(self, module: torch.nn.Module, device: torch.device, **training: Any) -> TwoStageNet:
        """The skorch net around ``module``; ``training`` adds what only ``fit`` needs (loss, sampler, ...)."""
        return TwoStageNet(
            module=module,
            optimizer=torch.optim.Adam,
            lr=self.lr,
            max_epochs=self.seg_epochs + self.dec_epochs,
            batch_size=self.batch_size,
            device=str(device),
            seg_epochs=self.seg_epochs,
            augment=training.pop("augment", False),  # fit resolves it; a loaded net does not train
            amp_dtype=resolve_precision(self.precision, device),
            compile_mode=resolve_compile(self.compile, device),
            **training,
        )

    @_fit_context(prefer_skip_nested_validation=True)
    def fit(self, X: Any, y: Any = None, masks: Any = None, groups: Any = None) -> ConcentratedTwoStageDetector:
        """Train the segmentation stage, then the decision stage.

        Parameters
        ----------
        X : array-like of shape (n, H, W), (n, H, W, C) or (n, H*W*C)
            Training images, uint8 or float in [0, 1].
        y : array-like of shape (n,), optional
            0 = normal, 1 = defective. Derived from ``masks`` when absent.
        masks : array-like of shape (n, H, W)
            Pixel masks (bool, {0, 1} or {0, 255}). A defective image (y = 1) with
            an empty mask is a positive whose mask is unknown: it trains the
            decision stage only (mixed supervision), never teaching the
            segmentation net that its defect is background.
        groups : array-like of shape (n,), optional
            The group of each image: the part, tile or capture session it shows.
            The internal validation split (``validation_fraction``) then holds
            out whole groups (about ``validation_fraction`` of each class's
            images), so that captures of one part never sit on both sides and
            early stopping and ``threshold_`` are judged on parts the networks
            did not train on. Without it near-duplicates of training images
            judge the epochs (Magnetic tile holds each tile about six times:
            ``docs/benchmarks.md``). No effect without validation.

        Returns
        -------
        self : ConcentratedTwoStageDetector
        """
        images, y, masks = self._check_fit_data(X, y, masks)
        groups = check_groups(groups, len(images))
        check_unit_range(images)  # float images in [0, 1], uint8 in 0-255: the same rule at fit and predict
        device = resolve_device(self.device)
        backbone = self._resolve_backbone(device)
        backbone_factory = resolve_plugin(get_backbone, backbone, "backbone")
        loss_factory = resolve_plugin(get_loss, self.loss, "loss")
        dice_weight = self._resolve_dice_weight(backbone)
        changed = [k for k, default in (("gamma", 0.5), ("dice_weight", "auto")) if getattr(self, k) != default]
        ignored = ignored_arguments(loss_factory, changed)
        if ignored:
            warnings.warn(f"loss={self.loss!r} does not take {' or '.join(ignored)}: "
                          f"{', '.join(f'{k}={getattr(self, k)!r}' for k in ignored)} has no effect", UserWarning,
                          stacklevel=2)
        sampler_factory = resolve_plugin(get_sampler, self.sampler, "sampler")
        mask_known = (y == 0) | masks.any(axis=(1, 2))
        if not mask_known.all():
            self._report(f"{int((~mask_known).sum())} of the {int(y.sum())} defective images have no defect pixel "
                         "in their mask: they train the decision stage only (mixed supervision)")
        checkpoint, checkpoint_meta = checkpoint_for(self, images, y, masks, groups)

        with seeded(self.random_state) as seed:
            module = self._build_module(images.channels, backbone, backbone_factory)
            image_size = resolve_image_size(self.image_size, (images.height, images.width), *_size_rule(module))
            seg_loss = call_with_accepted(loss_factory, gamma=self.gamma, dice_weight=dice_weight)
            sampler = call_with_accepted(sampler_factory, random_state=seed)
            train_rows, valid_rows = self._holdout(y, seed, groups)
            pixels_to_rank = valid_rows is not None and bool(masks[valid_rows].any())
            if self.seg_monitor == "valid_pixel_ap" and not pixels_to_rank:
                held = "no validation images" if valid_rows is None else (
                    f"{len(valid_rows)} validation images whose masks have no defect pixel")
                raise ValueError("seg_monitor='valid_pixel_ap' ranks the validation pixels: it needs "
                                 f"validation_fraction > 0 and a defect pixel in a validation mask; got {held}")
            if self.seg_monitor == "valid_ap" and (valid_rows is None or len(np.unique(y[valid_rows])) < 2):
                held = "no validation images" if valid_rows is None else (
                    f"{len(valid_rows)} validation images of classes {sorted(set(y[valid_rows].tolist()))}")
                raise ValueError("seg_monitor='valid_ap' ranks the validation images: it needs "
                                 f"validation_fraction > 0 and both normal and defective images; got {held}")
            seg_monitor = self._resolve_seg_monitor(module, pixels_to_rank)
            mean, std = input_statistics(images, train_rows)
            parts = {"y": y, "masks": masks, "mask_known": mask_known}
            source = ImageBatchSource(images, **parts, size=image_size, mean=mean, std=std, rows=train_rows)
            valid = None if valid_rows is None else ImageBatchSource(
                images, **parts, size=image_size, mean=mean, std=std, rows=valid_rows
            )
            net = self._train_net(partial(self._build_net, module, device, seg_loss=seg_loss, seg_monitor=seg_monitor),
                                  source, valid, sampler, seed, (checkpoint, checkpoint_meta))

        self.net_ = net
        self.augment_ = resolve_augment(net.augment)
        self.backbone_ = backbone
        self.dice_weight_ = dice_weight
        self.seg_monitor_ = seg_monitor
        self._set_input_attributes(images, image_size)
        self.input_mean_, self.input_std_ = mean, std
        self.n_parameters_ = {
            part: sum(p.numel() for p in getattr(module, part).parameters())
            for part in ("segmentation", "decision")
        }
        sequential = getattr(module, "schedule", "sequential") == "sequential"
        self.image_score_ = "seg_max" if sequential and self.dec_epochs == 0 else "decision"
        # the decision head the validation images chose, where the backbone offers several and one answers
        self.decision_head_ = getattr(module.decision, "chosen_name", None) if self.image_score_ == "decision" else None
        # the threshold from images the networks did not train on, where there are both classes
        rows = valid_rows if valid_rows is not None and len(np.unique(y[valid_rows])) == 2 else train_rows
        self._report(f"choosing the threshold on {len(rows)} {'validation' if rows is valid_rows else 'training'} "
                     "images")
        self.threshold_ = f1_max_threshold(self._decision_scores(images, rows), y[rows])
        return self

    # -- inference --------------------------------------------------------------------
    def _source(self, images: ImageData, rows: np.ndarray | None = None) -> ImageBatchSource:
        return ImageBatchSource(images, size=self.image_size_, mean=self.input_mean_, std=self.input_std_, rows=rows)

    def scorer(self) -> TwoStageScorer:
        """The inference graph (:class:`TwoStageScorer`) of the fitted detector."""
        return TwoStageScorer(self.net_.module_, getattr(self, "image_score_", "decision"))

    def _decision_scores(self, images: ImageData, rows: np.ndarray | None = None) -> np.ndarray:
        scorer = self.scorer()
        return self.net_.forward_into(self._source(images, rows), lambda x: scorer(x)[0], np.float64)

    def _proba_from_scores(self, scores: np.ndarray) -> np.ndarray:
        """P(defect) = sigmoid of the decision logit (of the largest segmentation logit without a decision
        stage: the largest pixel probability)."""
        return 1.0 / (1.0 + np.exp(-scores))

    def segment(self, X: Any) -> np.ndarray:
        """Per-pixel defect probability at input resolution.

        Parameters
        ----------
        X : array-like of images, as in :meth:`decision_function`

        Returns
        -------
        maps : ndarray of shape (n, H, W), float32 in [0, 1]
        """
        images = self._check_predict_images(X)
        size = (images.height, images.width)

        segment = TwoStageScorer(self.net_.module_, "seg_max")  # the maps alone: no decision net to run

        def to_map(x: torch.Tensor) -> torch.Tensor:
            logits = segment(x)[1]
            return F.interpolate(logits, size=size, mode="bilinear", align_corners=False).sigmoid()[:, 0]

        return self.net_.forward_into(self._source(images), to_map, np.float32)
