"""Speed harness: each estimator measurement beside a plain-PyTorch loop over the same network.

No dependency beyond skdefect itself (torch, numpy, scikit-learn, skorch, pluggy): ``run.py`` uses it
directly, the pytest-benchmark suite (``test_speed.py``) wraps the same runners.

What is timed
-------------
``fit``
    The whole ``estimator.fit(X, y[, masks])`` call, a fresh estimator each repetition. The plain loop
    builds the same module class from the same registry factory, converts the data to a normalised float
    tensor once, runs the same number of epochs of Adam steps on the same losses (same batch size,
    autocast dtype and sampling: ``sampler="uniform"``, no augmentation), then runs the no-grad scoring
    pass over the training images that ``fit`` ends with (it sets ``threshold_``). ``img_per_s`` counts
    training images (``n_images * epochs``) per second of that whole call. The two-stage detector is
    measured per stage: ``seg_epochs=E, dec_epochs=0`` and ``seg_epochs=0, dec_epochs=E``.
``predict``
    ``estimator.predict(X)`` on a fitted estimator vs a plain ``torch.no_grad`` forward over the same
    batches, converting each uint8 numpy batch to a normalised float tensor on the device.

Estimator and plain loop alternate (A B B A ...) after one warm-up of each; the medians are reported and
``ratio = estimator seconds / plain seconds`` (1.05 means the estimator is 5 % slower).

FLOPs are counted with :class:`torch.utils.flop_counter.FlopCounterMode`: inference is one forward pass;
training is one real training step of the plain loop counted as it runs (forward and backward, frozen
parts forward only), close to the usual 3x forward for the trained part. ``tflops`` is the counted work of
the timed call (training steps plus the scoring pass for ``fit``) divided by the estimator's median time.
"""

from __future__ import annotations

import contextlib
import json
import platform
import statistics
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.flop_counter import FlopCounterMode

from benchmarks._common import device_name

TWO_STAGE = "ConcentratedTwoStageDetector"
GAN = "DualDiscriminatorGANDetector"

ROW_FIELDS = (
    "estimator", "phase", "stage", "input_shape", "batch_size", "precision", "device", "img_per_s",
    "plain_torch_img_per_s", "ratio", "tflops", "command",
)


@dataclass(frozen=True)
class Case:
    """One measurement: which estimator, phase and stage, on what images.

    ``input_shape`` is (C, H, W) as the network sees it; the data are uint8 (n, H, W, C) arrays of that size.
    """

    estimator: str
    phase: str  # "fit" | "predict"
    input_shape: tuple[int, int, int]
    batch_size: int
    n_images: int
    epochs: int = 1
    stage: str | None = None  # two-stage fit: "segmentation" | "decision"; GAN fit: "all"
    width: float = 1.0
    precision: str = "auto"
    compile: bool = False  # the estimator with compile=True; the plain loop stays eager (the reference)
    extra: dict = field(default_factory=dict, compare=False, hash=False)

    @property
    def label(self) -> str:
        c, h, w = self.input_shape
        short = "two_stage" if self.estimator == TWO_STAGE else "gan"
        stage = f"-{self.stage}" if self.stage else ""
        compiled = "-compiled" if self.compile else ""
        return f"{short}-{self.phase}{stage}-{c}x{h}x{w}-bs{self.batch_size}-w{self.width:g}{compiled}"


def _gan_extra(side: int) -> dict:
    # the paper's 32/16/10 patches need >= 64-pixel images; small images use 16/8/5 (as the MNIST protocol)
    return {} if side >= 64 else {"patch_size": 16, "patch_stride": 8, "top_n": 5}


def cases(suite: str) -> list[Case]:
    """The cases of a suite: ``"small"`` (CPU-sized), ``"paper"`` (the papers' sizes, GPU) or ``"tiny"``."""
    if suite == "small":
        ts = {"estimator": TWO_STAGE, "input_shape": (1, 64, 64), "batch_size": 8, "width": 0.5}
        gan = {"estimator": GAN, "input_shape": (3, 32, 32), "batch_size": 32, "width": 1.0, "extra": _gan_extra(32)}
        return [
            Case(**ts, phase="fit", stage="segmentation", n_images=64, epochs=3),
            Case(**ts, phase="fit", stage="decision", n_images=32, epochs=2),
            Case(**ts, phase="predict", n_images=128),
            Case(**gan, phase="fit", stage="all", n_images=256, epochs=2),
            Case(**gan, phase="predict", n_images=2048),
        ]
    if suite == "paper":
        ts = {"estimator": TWO_STAGE, "input_shape": (3, 640, 232), "width": 1.0}
        gan = {"estimator": GAN, "input_shape": (3, 128, 128), "width": 1.0}
        return [
            Case(**ts, phase="fit", stage="segmentation", batch_size=32, n_images=512, epochs=2),
            Case(**ts, phase="fit", stage="decision", batch_size=32, n_images=512, epochs=2),
            Case(**ts, phase="predict", batch_size=32, n_images=2048),
            Case(**gan, phase="fit", stage="all", batch_size=256, n_images=4096, epochs=2),
            Case(**gan, phase="predict", batch_size=256, n_images=16384),
        ]
    if suite == "tiny":
        ts = {"estimator": TWO_STAGE, "input_shape": (1, 32, 32), "batch_size": 8, "width": 0.25}
        gan = {"estimator": GAN, "input_shape": (1, 32, 32), "batch_size": 16, "width": 0.25, "extra": _gan_extra(32)}
        return [
            Case(**ts, phase="fit", stage="segmentation", n_images=16),
            Case(**ts, phase="fit", stage="decision", n_images=16),
            Case(**ts, phase="predict", n_images=32),
            Case(**gan, phase="fit", stage="all", n_images=32),
            Case(**gan, phase="predict", n_images=64),
        ]
    raise ValueError(f"suite must be 'small', 'paper' or 'tiny', got {suite!r}")


# -- data -------------------------------------------------------------------------------------------------
def make_data(case: Case, seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Random uint8 images (n, H, W, C), labels (a quarter defective) and masks (a square per defect).

    Content does not change the speed of these networks, so noise is enough and quick to make.
    """
    c, h, w = case.input_shape
    rng = np.random.RandomState(seed)
    X = rng.randint(0, 256, size=(case.n_images, h, w, c), dtype=np.uint8)
    y = (np.arange(case.n_images) % 4 == 3).astype(np.int64)
    masks = np.zeros((case.n_images, h, w), dtype=bool)
    for i in np.flatnonzero(y):
        top, left = rng.randint(0, h - h // 4), rng.randint(0, w - w // 4)
        masks[i, top : top + h // 4, left : left + w // 4] = True
    return X, y, masks


# -- devices and precision -----------------------------------------------------------------------------------
def pick_device(device: str = "auto") -> torch.device:
    return torch.device("cuda" if device == "auto" and torch.cuda.is_available() else ("cpu" if device == "auto"
                                                                                         else device))


def amp_dtype(precision: str, device: torch.device) -> torch.dtype | None:
    if precision == "auto":
        return torch.bfloat16 if device.type == "cuda" else None
    return {"fp32": None, "bf16": torch.bfloat16, "fp16": torch.float16}[precision]


def precision_name(precision: str, device: torch.device) -> str:
    dtype = amp_dtype(precision, device)
    return "fp32" if dtype is None else f"{str(dtype).removeprefix('torch.').replace('bfloat16', 'bf16')} autocast"


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


# -- estimator runners -------------------------------------------------------------------------------------
def make_estimator(case: Case, device: torch.device, *, epochs: int | None = None) -> Any:
    """The estimator a case times, with sampling and augmentation matching the plain loop."""
    from skdefect import ConcentratedTwoStageDetector, DualDiscriminatorGANDetector

    epochs = case.epochs if epochs is None else epochs
    common = {"batch_size": case.batch_size, "width": case.width, "device": str(device),
              "precision": case.precision, "compile": case.compile, "random_state": 0, "augment": False,
              "sampler": "uniform"}
    if case.estimator == TWO_STAGE:
        seg, dec = (epochs, 0) if case.stage in (None, "segmentation") else (0, epochs)
        return ConcentratedTwoStageDetector(seg_epochs=seg, dec_epochs=dec, **common)
    return DualDiscriminatorGANDetector(epochs=max(epochs, 1), **common, **case.extra)


def estimator_runner(case: Case, data: tuple, device: torch.device) -> Callable[[], Any]:
    """A no-argument callable doing the timed estimator work once."""
    X, y, masks = data
    if case.phase == "fit":
        if case.estimator == TWO_STAGE:
            return lambda: make_estimator(case, device).fit(X, y, masks=masks)
        return lambda: make_estimator(case, device).fit(X, y)
    det = make_estimator(case, device, epochs=1)  # the weights do not change the speed
    n_fit = min(len(X), 4 * case.batch_size)
    det.fit(X[:n_fit], y[:n_fit], masks=masks[:n_fit]) if case.estimator == TWO_STAGE else det.fit(X[:n_fit], y[:n_fit])
    return lambda: det.predict(X)


# -- plain-PyTorch runners ---------------------------------------------------------------------------------
def build_modules(case: Case, device: torch.device) -> dict[str, torch.nn.Module]:
    """The same module classes the estimator builds, from the same registry factories."""
    from skdefect.plugins import call_with_accepted, get_backbone

    c = case.input_shape[0]
    torch.manual_seed(0)
    if case.estimator == TWO_STAGE:
        module = call_with_accepted(get_backbone("wang2022"), in_channels=c, width=case.width, norm="batch")
        return {"module": module.to(device)}
    gen = call_with_accepted(get_backbone("unet_generator"), in_channels=c, width=case.width)
    disc = get_backbone("patch_discriminator")
    return {
        "generator": gen.to(device),
        "disc_normal": call_with_accepted(disc, in_channels=c, width=case.width).to(device),
        "disc_anomalous": call_with_accepted(disc, in_channels=c, width=case.width).to(device),
    }


def _to_float(xb: np.ndarray | torch.Tensor, device: torch.device) -> torch.Tensor:
    t = torch.as_tensor(xb).to(device)
    return t.permute(0, 3, 1, 2).float().div_(255.0)


class PlainTwoStage:
    """Plain PyTorch: the two-stage network, one stage's Adam steps and the scoring pass."""

    def __init__(self, case: Case, device: torch.device) -> None:
        from skdefect import losses

        self.case, self.device = case, device
        self.dtype = amp_dtype(case.precision, device)
        self.seg_loss = lambda logits, target: losses.concentrated_loss(logits, target, gamma=0.5, dice_weight=0.95)

    def autocast(self) -> Any:
        if self.dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(self.device.type, dtype=self.dtype)

    def setup(self, X: np.ndarray, y: np.ndarray, masks: np.ndarray) -> None:
        self.module = build_modules(self.case, self.device)["module"]
        self.x = _to_float(X, self.device)
        self.mean = self.x.mean(dim=(0, 2, 3), keepdim=True)
        self.std = self.x.std(dim=(0, 2, 3), keepdim=True).clamp_min(1e-3)
        self.x = (self.x - self.mean) / self.std
        self.y = torch.as_tensor(y, dtype=torch.float32, device=self.device)
        self.m = torch.as_tensor(masks, device=self.device).unsqueeze(1).float()
        seg = self.module.segmentation
        self.seg_opt = torch.optim.Adam([p for p in seg.parameters() if p.requires_grad], lr=1e-3)
        seen = {id(p) for p in seg.parameters()}
        self.dec_opt = torch.optim.Adam([p for p in self.module.parameters() if id(p) not in seen], lr=1e-3)

    def seg_step(self, xb: torch.Tensor, mb: torch.Tensor, yb: torch.Tensor) -> torch.Tensor:
        self.seg_opt.zero_grad(set_to_none=True)
        with self.autocast():
            logits = self.module.segment(xb)
        target = F.interpolate(mb, size=logits.shape[-2:], mode="area")
        loss = self.seg_loss(logits.float(), target).mean()
        loss.backward()
        self.seg_opt.step()
        return loss

    def dec_step(self, xb: torch.Tensor, mb: torch.Tensor, yb: torch.Tensor) -> torch.Tensor:
        self.dec_opt.zero_grad(set_to_none=True)
        with torch.no_grad(), self.autocast():
            seg = self.module.segment(xb)
        with self.autocast():
            logit = self.module.decision(seg)
        loss = F.binary_cross_entropy_with_logits(logit.float(), yb)
        loss.backward()
        self.dec_opt.step()
        return loss

    def train(self, epochs: int) -> None:
        step = self.seg_step if self.case.stage in (None, "segmentation") else self.dec_step
        n, b = len(self.x), self.case.batch_size
        losses = []
        for _ in range(epochs):
            self.module.train()
            if step == self.dec_step:
                self.module.segmentation.eval()
            order = torch.randperm(n, device=self.device)
            for start in range(0, n, b):
                idx = order[start : start + b]
                losses.append(step(self.x[idx], self.m[idx], self.y[idx]).detach())
        torch.stack(losses).cpu()  # one read-back, as the estimator does per epoch

    def score_tensor(self, x: torch.Tensor) -> torch.Tensor:
        return self.module(x)[1].float()

    def scores(self, batches: Any) -> np.ndarray:
        self.module.eval()
        with torch.no_grad(), self.autocast():
            return torch.cat([self.score_tensor(xb).cpu() for xb in batches]).numpy()


class PlainGAN(PlainTwoStage):
    """Plain PyTorch: the dual-discriminator GAN step (both discriminators, one generator loss group)."""

    def __init__(self, case: Case, device: torch.device) -> None:
        self.case, self.device = case, device
        self.dtype = amp_dtype(case.precision, device)
        self.patch = {"patch_size": 32, "stride": 16, "top_n": 10}
        if case.extra:
            self.patch = {"patch_size": case.extra["patch_size"], "stride": case.extra["patch_stride"],
                          "top_n": case.extra["top_n"]}

    def setup(self, X: np.ndarray, y: np.ndarray, masks: np.ndarray) -> None:
        mods = build_modules(self.case, self.device)
        self.gen, self.dn, self.da = mods["generator"], mods["disc_normal"], mods["disc_anomalous"]
        self.x = _to_float(X, self.device)
        self.y = torch.as_tensor(y, dtype=torch.float32, device=self.device)
        self.mean, self.std = None, None
        self.opts = [torch.optim.Adam(m.parameters(), lr=2e-4, betas=(0.5, 0.999))
                     for m in (self.gen, self.dn, self.da)]
        self.rng = np.random.RandomState(0)

    def _d_step(self, disc: torch.nn.Module, opt: torch.optim.Optimizer, real: torch.Tensor,
                fake: torch.Tensor) -> torch.Tensor:
        from skdefect import losses

        opt.zero_grad(set_to_none=True)
        with self.autocast():
            real_out, fake_out = disc(real), disc(fake.detach())
        loss = losses.lsgan_discriminator_loss(real_out.float(), fake_out.float()).mean()
        loss.backward()
        opt.step()
        return loss

    def step(self, xb: torch.Tensor, yb: torch.Tensor) -> torch.Tensor:
        from skdefect import losses

        normal, anomalous = xb[yb < 0.5], xb[yb >= 0.5]
        with self.autocast():
            rec_n, z_n = self.gen(normal) if len(normal) else (None, None)
            rec_a, _ = self.gen(anomalous) if len(anomalous) else (None, None)
        if rec_n is not None:
            self._d_step(self.dn, self.opts[1], normal, rec_n)
        if rec_a is not None:
            self._d_step(self.da, self.opts[2], anomalous, rec_a)
        if rec_a is None or (rec_n is not None and self.rng.random_sample() < 0.5):
            with self.autocast():
                z_hat, d_out = self.gen.encode(rec_n), self.dn(rec_n)
            x, xh = normal.float(), rec_n.float()
            loss = (1.5 * losses.l1_reconstruction_loss(x, xh).mean()
                    + 1.5 * losses.patch_loss(x, xh, **self.patch).mean()
                    + 0.5 * losses.latent_loss(z_n.float(), z_hat.float()).mean()
                    + 0.5 * losses.lsgan_generator_loss(d_out.float()).mean())
        else:
            with self.autocast():
                d_out = self.da(rec_a)
            loss = (1.0 * losses.anomaly_adversarial_loss(d_out.float()).mean()
                    + 0.5 * losses.abc_loss(anomalous.float(), rec_a.float()).mean())
        self.opts[0].zero_grad(set_to_none=True)
        loss.backward()
        self.opts[0].step()
        return loss

    def train(self, epochs: int) -> None:
        n, b = len(self.x), self.case.batch_size
        losses = []
        for _ in range(epochs):
            self.gen.train()
            order = torch.randperm(n, device=self.device)
            for start in range(0, n, b):
                idx = order[start : start + b]
                losses.append(self.step(self.x[idx], self.y[idx]).detach())
        torch.stack(losses).cpu()

    def score_tensor(self, x: torch.Tensor) -> torch.Tensor:
        from skdefect import losses

        return losses.l1_reconstruction_loss(x.float(), self.gen(x)[0].float())

    def scores(self, batches: Any) -> np.ndarray:
        self.gen.eval()
        with torch.no_grad(), self.autocast():
            return torch.cat([self.score_tensor(xb).cpu() for xb in batches]).numpy()


def plain_model(case: Case, device: torch.device) -> PlainTwoStage:
    return (PlainTwoStage if case.estimator == TWO_STAGE else PlainGAN)(case, device)


def plain_runner(case: Case, data: tuple, device: torch.device) -> Callable[[], Any]:
    """A no-argument callable doing the plain-PyTorch equivalent of the estimator work once."""
    X, y, masks = data
    b = case.batch_size
    if case.phase == "fit":
        def fit() -> np.ndarray:
            model = plain_model(case, device)
            model.setup(X, y, masks)
            model.train(case.epochs)
            return model.scores(model.x[s : s + b] for s in range(0, len(model.x), b))
        return fit

    model = plain_model(case, device)
    model.setup(X[: 4 * b], y[: 4 * b], masks[: 4 * b])  # for the weights and the normalisation only

    def batches() -> Any:
        for s in range(0, len(X), b):
            xb = _to_float(X[s : s + b], device)
            yield xb if model.mean is None else (xb - model.mean) / model.std

    return lambda: model.scores(batches())


# -- FLOPs -------------------------------------------------------------------------------------------------
def _count(fn: Callable[[], Any]) -> int:
    counter = FlopCounterMode(display=False)
    with counter:
        fn()
    return int(counter.get_total_flops())


def count_flops(case: Case, device: torch.device) -> dict[str, float]:
    """FLOPs per image: ``forward`` (inference) and, for fit, ``train_step`` (one counted training step)."""
    c, h, w = case.input_shape
    b = min(case.batch_size, 4)
    tiny = replace(case, n_images=b)
    X, y, masks = make_data(tiny)
    y = np.zeros(b, dtype=np.int64)
    y[-1] = 1 if b > 1 else 0  # both GAN groups' networks are in the step when possible
    model = plain_model(tiny, device)
    model.setup(X, y, masks)
    if device.type != "meta":  # on "meta" nothing is computed: shapes only, FLOPs at no cost
        model.scores([model.x])  # warm up lazily built state before counting
    fwd_model = model.module if case.estimator == TWO_STAGE else model.gen
    fwd_model.eval()
    with torch.no_grad(), model.autocast():
        forward = _count(lambda: model.score_tensor(model.x)) / b
    out = {"forward": forward}
    if case.phase == "fit":
        if case.estimator == TWO_STAGE:
            model.module.train()
            if case.stage == "decision":
                model.module.segmentation.eval()
            step = model.seg_step if case.stage in (None, "segmentation") else model.dec_step
            out["train_step"] = _count(lambda: step(model.x, model.m, model.y)) / b
        else:
            model.gen.train()
            model.rng = _AlwaysNormal()  # count the normal group, the heavier of the two
            out["train_step"] = _count(lambda: model.step(model.x, model.y)) / b
    return out


class _AlwaysNormal:
    def random_sample(self) -> float:
        return 0.0


# -- timing ------------------------------------------------------------------------------------------------
@dataclass
class Timings:
    """Wall-clock and process CPU seconds of each repetition."""

    wall: list[float] = field(default_factory=list)
    cpu: list[float] = field(default_factory=list)


def measure(first: Callable[[], Any], second: Callable[[], Any], repeats: int, device: torch.device,
            warmup: int = 1) -> tuple[Timings, Timings]:
    """Time ``first`` and ``second`` alternated A B B A A B ... after ``warmup`` runs of each.

    Process CPU time is recorded beside wall time: on a CPU shared with other jobs it is the steadier of
    the two (it does not count the time the process waits for a core).
    """

    def timed(fn: Callable[[], Any], into: Timings) -> None:
        synchronize(device)
        wall, cpu = time.perf_counter(), time.process_time()
        fn()
        synchronize(device)
        into.cpu.append(time.process_time() - cpu)
        into.wall.append(time.perf_counter() - wall)

    for _ in range(warmup):
        first(), second()
    a, b = Timings(), Timings()
    for i in range(repeats):
        if i % 2 == 0:
            timed(first, a)
            timed(second, b)
        else:
            timed(second, b)
            timed(first, a)
    return a, b


def make_row(case: Case, est_t: Timings, plain_t: Timings, flops: dict[str, float],
             device: torch.device, command: str) -> dict:
    """One JSON row; times in seconds, medians of the alternated repetitions."""
    est, plain = statistics.median(est_t.wall), statistics.median(plain_t.wall)
    images = case.n_images * (case.epochs if case.phase == "fit" else 1)
    if case.phase == "fit":
        work = case.n_images * (case.epochs * flops["train_step"] + flops["forward"])
    else:
        work = case.n_images * flops["forward"]
    c, h, w = case.input_shape
    return {
        "estimator": case.estimator,
        "phase": case.phase,
        "stage": case.stage,
        "input_shape": [c, h, w],
        "batch_size": case.batch_size,
        "precision": precision_name(case.precision, device),
        "device": device_name() if device.type == "cpu" else torch.cuda.get_device_name(device),
        "img_per_s": images / est,
        "plain_torch_img_per_s": images / plain,
        "ratio": est / plain,
        "tflops": work / est / 1e12,
        "command": command,
        "width": case.width,
        "compile": case.compile,
        "n_images": case.n_images,
        "epochs": case.epochs if case.phase == "fit" else None,
        "ratio_cpu_time": statistics.median(est_t.cpu) / statistics.median(plain_t.cpu),
        "repeats": len(est_t.wall),
        "estimator_s": est_t.wall,
        "plain_torch_s": plain_t.wall,
        "estimator_cpu_s": est_t.cpu,
        "plain_torch_cpu_s": plain_t.cpu,
        "flops_per_image_forward": flops["forward"],
        "flops_per_image_train_step": flops.get("train_step"),
        "torch": torch.__version__,
        "python": platform.python_version(),
    }


def run_case(case: Case, repeats: int, device: torch.device, command: str, warmup: int = 1) -> dict:
    """Measure one case (estimator vs plain loop, alternated) and return its row."""
    data = make_data(case)
    est, plain = estimator_runner(case, data, device), plain_runner(case, data, device)
    est_t, plain_t = measure(est, plain, repeats, device, warmup=warmup)
    return make_row(case, est_t, plain_t, count_flops(case, device), device, command)


# -- results -----------------------------------------------------------------------------------------------
def check_row(row: dict) -> None:
    """Raise ValueError when a row lacks a field or holds an insane value."""
    missing = [k for k in ROW_FIELDS if k not in row]
    if missing:
        raise ValueError(f"row lacks {missing}")
    for k in ("img_per_s", "plain_torch_img_per_s", "ratio"):
        if not (isinstance(row[k], float) and np.isfinite(row[k]) and row[k] > 0):
            raise ValueError(f"{k} must be a positive finite float, got {row[k]!r}")
    if not (np.isfinite(row["tflops"]) and row["tflops"] >= 0):
        raise ValueError(f"tflops must be finite and >= 0, got {row['tflops']!r}")
    if row["phase"] not in ("fit", "predict"):
        raise ValueError(f"phase must be 'fit' or 'predict', got {row['phase']!r}")


def _shape(row: dict) -> str:
    return "x".join(str(s) for s in row["input_shape"])


def table(rows: Sequence[dict]) -> str:
    """Markdown table of speed rows."""
    lines = [
        "| estimator | phase | stage | input | batch | precision | device | img/s | plain torch img/s | ratio "
        "| CPU-time ratio | TFLOP/s |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        est = "two-stage" if r["estimator"] == TWO_STAGE else "dual GAN"
        est += ", compiled" if r.get("compile") else ""
        lines.append(
            f"| {est} (w {r.get('width', 1):g}) | {r['phase']} | {r['stage'] or '-'} | {_shape(r)} | "
            f"{r['batch_size']} | {r['precision']} | {r['device']} | {r['img_per_s']:,.1f} | "
            f"{r['plain_torch_img_per_s']:,.1f} | {r['ratio']:.3f} | {r.get('ratio_cpu_time', float('nan')):.3f} | "
            f"{r['tflops']:.4f} |"
        )
    return "\n".join(lines) + "\n"


def write_results(result: dict, out_dir: Path, stem: str, render: Callable[[Sequence[dict]], str] = table) -> Path:
    """Write ``<stem>.json`` and ``<stem>.md`` (the rendered table with the command) into ``out_dir``."""
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / f"{stem}.json").write_text(json.dumps(result, indent=1) + "\n")
    header = f"<!-- generated by `{result['command']}`; device: {result['device']} -->\n\n"
    (out_dir / f"{stem}.md").write_text(header + render(result["rows"]))
    return out_dir / f"{stem}.json"


def as_dict(case: Case) -> dict:
    return asdict(case)
