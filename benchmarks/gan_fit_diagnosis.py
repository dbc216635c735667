"""Does the GAN's training separate its own training images? Train and test AUROC of its scores, per variant.

    python -m benchmarks.gan_fit_diagnosis --dataset synthetic --seeds 0 1 2   # ~1 min per fit on one core
    python -m benchmarks.gan_fit_diagnosis --dataset elpv --variants default   # ~5 min per fit (deeper: ~12)

A detector whose score ranks the *test* images badly either over-fits (its training images are separated, the
test images are not) or never meets its objective (neither is separated). The two call for opposite remedies:
regularisation and data for the first, a different learning signal for the second. This script fits the
quality suite's GAN configuration on the suite's split and reads the reconstruction and patch scores on the
detector's own training rows (its validation rows left out) and on the test split, with the mean reconstruction
error of each class on the training rows, the loss values of the last epoch and the best validation AP of the
epochs (the figure a user without a test split would choose a variant on).

Variants (the suite's default configuration, one thing changed):

- ``default``: the paper's loss weights (``w_abc=0.5``);
- ``no ABC``: ``w_abc=0`` (the generator's anomaly group keeps only the anomaly-adversarial loss);
- ``ABC 1.5``: ``w_abc=1.5``, the top of the paper's weight grid;
- ``ABC on patches``: ``abc_error="patch"`` with 16×16 patches at stride 8 (the ABC loss reads the anomalous
  image's worst patches instead of its mean error);
- ``deeper generator``: the paper's U-Net with a full-resolution 3×3 stem and a residual 3×3 conv at every
  encoder level (:class:`DeeperUNetGenerator`, ~1.5× the parameters), registered at run time through the
  plugin manager: does a stronger encoder learn what the paper's four strided convs do not?

The ABC loss ``−log(1 − exp(−A))`` pulls a sample's mean L1 error ``A`` up with the force
``w_abc / (exp(A) − 1)``, while the normal group's reconstruction and patch losses pull it down with about
``w_recon + w_patch``. When the generator cannot tell the classes apart, the two balance at
``A* = ln(1 + w_abc / (w_recon + w_patch))`` (0.154 at the paper's weights, in units of [0, 1] pixels): the
table reports it beside the measured errors. Each run merges into ``results/gan_fit_diagnosis.{json,md}``
(keyed by dataset, seed and variant).
"""

from __future__ import annotations

import argparse
import json
import math
import time
from pathlib import Path
from typing import Any

import torch
from torch import nn

from benchmarks._common import device_name
from skdefect.nn._common import init_weights, make_norm, scaled
from skdefect.nn.gan import _LEAK, UNetGenerator
from skdefect.plugins import hookimpl

RESULTS = Path(__file__).resolve().parent / "results"
NAME = "gan_fit_diagnosis"
VARIANTS: dict[str, dict[str, Any]] = {
    "default": {},
    "no ABC": {"w_abc": 0.0},
    "ABC 1.5": {"w_abc": 1.5},
    "ABC on patches": {"abc_error": "patch", "patch_size": 16, "patch_stride": 8},
    "deeper generator": {"generator": "benchmark_deeper_unet"},
}


class DeeperUNetGenerator(UNetGenerator):
    """The paper's U-Net generator (:class:`skdefect.nn.gan.UNetGenerator`) with a deeper encoder.

    A full-resolution conv3×3 · BN · LeakyReLU stem before ``enc1`` (which then reads the stem's channels), and
    after every encoder level a residual LeakyReLU · conv3×3 · BN at the level's width. Decoder, skips and
    bottleneck are the paper's (its ``forward`` and ``encode`` run on :meth:`_encode`).
    """

    def __init__(self, in_channels: int = 3, width: float = 1.0) -> None:
        super().__init__(in_channels, width)
        widths = [scaled(c, self.width) for c in (8, 16, 32, 64)]
        self.stem = nn.Sequential(nn.Conv2d(in_channels, widths[0], 3, padding=1, bias=False),
                                  make_norm("batch", widths[0]), nn.LeakyReLU(_LEAK))
        self.enc1[0] = nn.Conv2d(widths[0], widths[0], 4, stride=2, padding=1, bias=False)
        self.refine = nn.ModuleList(
            nn.Sequential(nn.LeakyReLU(_LEAK), nn.Conv2d(c, c, 3, padding=1, bias=False), make_norm("batch", c))
            for c in widths)
        init_weights(self, negative_slope=_LEAK)

    def _encode(self, x: torch.Tensor) -> list[torch.Tensor]:
        h, levels = self.stem(x), []
        for layer, refine in zip((self.enc1, self.enc2, self.enc3, self.enc4), self.refine, strict=True):
            h = layer(h)
            h = h + refine(h)
            levels.append(h)
        return levels

    def features(self, x: torch.Tensor) -> torch.Tensor:
        self._check(x)
        return self._encode(x)[1]


class _DeeperGeneratorPlugin:
    """Contributes ``benchmark_deeper_unet`` through the same hook a third-party package would use."""

    @hookimpl
    def skdefect_register_backbones(self) -> dict[str, Any]:
        return {"benchmark_deeper_unet": DeeperUNetGenerator}


def _register_deeper_generator() -> None:
    from skdefect.plugins.manager import get_backbone, get_plugin_manager

    try:
        get_backbone("benchmark_deeper_unet")
    except (KeyError, ValueError, LookupError):
        get_plugin_manager().register(_DeeperGeneratorPlugin(), name="benchmark-deeper-generator")


def diagnose(dataset: str, seed: int, variant: str, **overrides: Any) -> dict[str, Any]:
    """Fit one variant on the suite's split of ``dataset`` (seed ``seed``); ``overrides`` shrink it for tests."""
    from benchmarks.quality import DATASETS, method_params
    from skdefect import DualDiscriminatorGANDetector
    from skdefect._base import holdout_split
    from skdefect.metrics import roc_auc

    if variant == "deeper generator":
        _register_deeper_generator()
    split = next(DATASETS[dataset]({"seeds": [seed]}))
    params = {**method_params(dataset), **VARIANTS[variant], **overrides}
    det = DualDiscriminatorGANDetector(random_state=seed, device="cpu", **params)
    start = time.process_time()
    det.fit(split.X_train, split.y_train)
    fit_s = time.process_time() - start
    train_rows = holdout_split(split.y_train, det.validation_fraction, seed)[0]  # the detector's own rows
    y_fit = split.y_train[train_rows]
    row: dict[str, Any] = {"dataset": dataset, "seed": seed, "variant": variant, "fit_cpu_s": round(fit_s, 1),
                           "epochs_run": len(det.net_.history), "chosen_score": det.anomaly_score_}
    chosen = det.anomaly_score_
    for score in ("recon", "patch"):
        det.anomaly_score_ = score  # both need no memory: read the same fitted generator two ways
        s_fit = det.decision_function(split.X_train[train_rows])
        row[f"{score}_train_auroc"] = roc_auc(y_fit, s_fit)
        row[f"{score}_test_auroc"] = roc_auc(split.y_test, det.decision_function(split.X_test))
        if score == "recon":
            row["train_l1_normal"] = float(s_fit[y_fit == 0].mean())
            row["train_l1_anomalous"] = float(s_fit[y_fit == 1].mean())
    det.anomaly_score_ = chosen
    valid_aps = [h["valid_ap"] for h in det.net_.history if "valid_ap" in h]
    row["valid_ap_best"] = max(valid_aps) if valid_aps else None  # what a user can choose a variant on
    last = det.net_.history[-1]
    row["last_epoch_losses"] = {k[len("train_"):]: round(float(v), 4) for k, v in last.items()
                                if k.startswith("train_") and k[len("train_"):] in (
                                    "g_l1", "g_patch", "g_abc", "g_anomaly_adv", "d_normal", "d_anomalous")}
    w_abc, pull_down = det.w_abc, det.w_recon + det.w_patch
    row["abc_balance_a"] = math.log1p(w_abc / pull_down) if w_abc > 0 else None
    return row


def table(result: dict) -> str:
    lines = ["# Does the GAN's training separate its own training images?", "",
             f"Written on {result['device']}, one torch thread, by the commands below. The quality suite's split and "
             "GAN configuration; *train* = the detector's own training rows (its validation rows left out), "
             "read with the weights early stopping kept; the last epoch's losses are the training history's. "
             "`A*` = ln(1 + w_abc / (w_recon + w_patch)), the mean L1 error at which the ABC loss and the "
             "reconstruction losses balance when the generator cannot tell the classes apart.", "",
             "| dataset | seed | variant | epochs | best validation AP | recon AUROC train / test | "
             "patch AUROC train / test | train L1 normal / anomalous | A* | last epoch: L1 of normals, ABC loss | "
             "fit CPU s |",
             "|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in sorted(result["rows"], key=lambda r: (r["dataset"], list(VARIANTS).index(r["variant"]), r["seed"])):
        a = "—" if r["abc_balance_a"] is None else f"{r['abc_balance_a']:.3f}"
        v = "—" if r.get("valid_ap_best") is None else f"{r['valid_ap_best']:.3f}"
        lines.append(
            f"| {r['dataset']} | {r['seed']} | {r['variant']} | {r['epochs_run']} | {v} | "
            f"{r['recon_train_auroc']:.3f} / {r['recon_test_auroc']:.3f} | "
            f"{r['patch_train_auroc']:.3f} / {r['patch_test_auroc']:.3f} | "
            f"{r['train_l1_normal']:.3f} / {r['train_l1_anomalous']:.3f} | {a} | "
            f"{r['last_epoch_losses'].get('g_l1', float('nan')):.3f}, "
            f"{r['last_epoch_losses'].get('g_abc', float('nan')):.3f} | {r['fit_cpu_s']:.0f} |")
    lines += ["", "Commands:", ""] + [f"- `{c}`" for c in result["commands"]]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", choices=("synthetic", "elpv"), default="synthetic")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0])
    parser.add_argument("--variants", nargs="+", choices=tuple(VARIANTS), default=list(VARIANTS))
    parser.add_argument("--out", default=str(RESULTS))
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    command = (f"python -m benchmarks.gan_fit_diagnosis --dataset {args.dataset} --seeds "
               f"{' '.join(map(str, args.seeds))} --variants " + " ".join(f'"{v}"' for v in args.variants))
    folder = Path(args.out)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{NAME}.json"
    result: dict = {"rows": [], "commands": []}
    for seed in args.seeds:
        for variant in args.variants:
            row = diagnose(args.dataset, seed, variant)
            # re-read before every write: runs on other datasets may have added rows meanwhile
            result = json.loads(path.read_text()) if path.exists() else {"rows": [], "commands": []}
            result["device"] = device_name()
            if command not in result["commands"]:
                result["commands"].append(command)
            key = (row["dataset"], row["seed"], row["variant"])
            result["rows"] = [r for r in result["rows"] if (r["dataset"], r["seed"], r["variant"]) != key] + [row]
            path.write_text(json.dumps(result, indent=1))  # after every fit: an interrupted run keeps its rows
            (folder / f"{NAME}.md").write_text(table(result))
            print(f"{row['dataset']} seed {seed} {variant}: recon train/test AUROC {row['recon_train_auroc']:.3f} / "
                  f"{row['recon_test_auroc']:.3f}", flush=True)
    print(table(result))
    return result


if __name__ == "__main__":
    main()
