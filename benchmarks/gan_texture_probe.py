"""Where is the GAN's signal on the embedded data? Nearest-normal patch scores on many features, trained or not.

On the quality suite's embedded data (``make_surface_defects`` defaults: small, often faint defects on brick,
grass and gravel) the GAN detector sits near chance while the small CNN reaches AP ≈ 0.74. This probe asks
whether any *local one-class* signal exists there for the GAN's scores to find, and whether the GAN's training
adds to it. On each of the suite's splits it reads the test AP of the same nearest-normal patch score the
detector's ``anomaly_score="patch_memory"`` uses (features averaged over 3×3 neighbourhoods, standardised,
a greedy coreset of the training normals' vectors, the image's largest distance) on:

- features nothing trained: raw pixel patches (6×6, stride 2), a random two-layer conv net, the untrained
  generator's ``enc2``;
- the default GAN fitted with the suite's parameters: every encoder level of its generator and the hidden
  layers of both discriminators; beside them the detector's own chosen score and the paper's mean
  reconstruction error, on the test images and on the detector's own training images (does training separate
  even those?);
- a variant whose ABC loss reads the worst 8×8 patch (``abc_error="patch"``, 8×8 patches at stride 4,
  ``top_n=1``): the generator may then fail on a defect alone instead of on the whole image.

Run: ``python -m benchmarks.gan_texture_probe --seeds 0 1 2`` (≈ 6 min on one core). Writes
``results/gan_texture_probe.{json,md}``.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from benchmarks._common import device_name, run_and_write

RESULTS = Path(__file__).resolve().parent / "results"
#: The variant whose ABC loss reads the worst small patch.
WORST_PATCH = {"abc_error": "patch", "patch_size": 8, "patch_stride": 4, "top_n": 1}


def _tensor(X: np.ndarray) -> torch.Tensor:
    x = torch.from_numpy(np.asarray(X)).float().div(255.0)
    return x[:, None] if x.dim() == 3 else x.permute(0, 3, 1, 2)


def patch_memory_scores(features: Callable[[torch.Tensor], torch.Tensor], normals: torch.Tensor,
                        test: torch.Tensor, seed: int) -> np.ndarray:
    """The detector's ``patch_memory`` score with ``features`` in place of the generator's: each test image's
    largest distance of a (3×3-averaged, standardised) location to a coreset of the normals' locations."""
    from skdefect import memory

    with torch.no_grad():
        bank = memory.patch_embedding(features(normals).float())
        vectors = bank.permute(0, 2, 3, 1).reshape(-1, bank.shape[1])
        if len(vectors) > memory.PATCH_POOL:
            vectors = vectors[torch.randperm(len(vectors), generator=torch.Generator().manual_seed(seed))
                              [: memory.PATCH_POOL]]
        mean, std = vectors.mean(dim=0), vectors.std(dim=0).clamp_min(1e-6)
        standardised = (vectors - mean) / std
        rows = memory.greedy_coreset(standardised, memory.PATCH_ROWS, seed)
        distances = memory.nearest_patch_distances(memory.patch_embedding(features(test).float()),
                                                   standardised[rows], mean, std)
    return distances.flatten(1).amax(dim=1).numpy().astype(np.float64)


def _untrained(channels: int, seed: int) -> dict[str, Callable[[torch.Tensor], torch.Tensor]]:
    from skdefect.nn.gan import UNetGenerator

    torch.manual_seed(seed)
    conv = torch.nn.Sequential(torch.nn.Conv2d(channels, 32, 3, padding=1), torch.nn.ReLU(), torch.nn.AvgPool2d(2),
                               torch.nn.Conv2d(32, 64, 3, padding=1), torch.nn.ReLU(), torch.nn.AvgPool2d(2)).eval()
    generator = UNetGenerator(in_channels=channels).eval()

    def pixels(x: torch.Tensor) -> torch.Tensor:
        k, s = 6, 2
        cols = F.unfold(x, k, stride=s)
        return cols.view(len(x), cols.shape[1], (x.shape[-2] - k) // s + 1, (x.shape[-1] - k) // s + 1)

    return {"raw pixel patches (6x6, stride 2)": pixels, "random two-layer conv net (1/4)": conv,
            "untrained generator, enc2 (1/4)": generator.features}


def _trained(det: Any) -> dict[str, Callable[[torch.Tensor], torch.Tensor]]:
    net = det.net_
    g = net.module_.eval()

    def level(i: int) -> Callable[[torch.Tensor], torch.Tensor]:
        return lambda x: g._encode(x)[i]

    out = {f"GAN generator, enc{i + 1} (1/{2 ** (i + 1)})": level(i) for i in range(3)}
    for name in ("disc_normal", "disc_anomalous"):
        d = getattr(net, name + "_", None)
        if d is None:
            continue
        d = d.eval()
        out[f"GAN {name}, layer2 (1/4)"] = lambda x, d=d: d.layer2(d.layer1(x))
        out[f"GAN {name}, layer3 (1/8)"] = lambda x, d=d: d.layer3(d.layer2(d.layer1(x)))
    return out


def _own_scores(det: Any, split: Any) -> dict[str, dict[str, float]]:
    """The chosen score and the paper's mean reconstruction error: test AP, test AUROC, AUROC on the detector's
    own training images (its validation rows are part of ``X_train`` too: they are few)."""
    from skdefect.metrics import average_precision, roc_auc

    out = {}
    chosen = det.anomaly_score_
    for label, score in (("the score it chose on validation (auto)", chosen),
                         ("the paper's mean reconstruction error", "recon")):
        det.anomaly_score_ = score
        test, train = det.decision_function(split.X_test), det.decision_function(split.X_train)
        out[label] = {"test_ap": average_precision(split.y_test, test), "test_auroc": roc_auc(split.y_test, test)}
        if score not in ("memory", "patch_memory"):  # a memory holds the training normals: no train figure
            out[label]["train_auroc"] = roc_auc(split.y_train, train)
    det.anomaly_score_ = chosen
    return out


def run(seeds: list[int], on_row: Any = None, spec: dict | None = None, **overrides: Any) -> dict:
    """Every probe on the suite's embedded splits of ``seeds`` (``spec``/``overrides``: a tiny run for tests)."""
    from benchmarks.quality import DATASETS, method_params
    from skdefect import DualDiscriminatorGANDetector
    from skdefect.metrics import average_precision

    params = {**method_params("synthetic"), **overrides}
    result: dict[str, Any] = {"device": device_name(), "params": params, "seeds": {}}
    for split in DATASETS["synthetic"]({**(spec or {}), "seeds": seeds}):
        seed = split.seed
        x_train, x_test = _tensor(split.X_train), _tensor(split.X_test)
        normals = x_train[split.y_train == 0]
        rows: dict[str, dict[str, float]] = {}

        def probe(features: Callable[[torch.Tensor], torch.Tensor]) -> dict[str, float]:
            scores = patch_memory_scores(features, normals, x_test, seed)  # noqa: B023 (called in this loop)
            return {"test_ap": average_precision(split.y_test, scores)}  # noqa: B023

        for name, features in _untrained(x_train.shape[1], seed).items():
            rows["untrained: " + name] = probe(features)
        fits = {}
        for variant, extra in (("default GAN", {}), ("ABC on the worst 8x8 patch", WORST_PATCH)):
            start = time.process_time()
            det = DualDiscriminatorGANDetector(random_state=seed, device="cpu", **{**params, **extra})
            det.fit(split.X_train, split.y_train)
            stages = [e for e in (r.get("event_stage_end") for r in det.net_.history) if e]
            fits[variant] = {"fit_cpu_s": round(time.process_time() - start, 1), "epochs": len(det.net_.history),
                             "best_epoch": stages[-1]["best_epoch"] if stages else None,
                             "chosen_score": det.anomaly_score_}
            for name, m in _own_scores(det, split).items():
                rows[f"{variant}: {name}"] = m
            if variant == "default GAN":
                for name, features in _trained(det).items():
                    rows["trained: " + name] = probe(features)
        result["seeds"][str(seed)] = {"rows": rows, "fits": fits, "n_train": len(split.y_train),
                                      "n_test": len(split.y_test), "test_defect_share": float(split.y_test.mean())}
        if on_row is not None:
            on_row(result)
    return result


def table(result: dict) -> str:
    seeds = list(result["seeds"])
    names = list(dict.fromkeys(n for s in seeds for n in result["seeds"][s]["rows"]))
    fits = list(dict.fromkeys(v for s in seeds for v in result["seeds"][s]["fits"]))
    lines = [
        "# Where is the GAN's signal on the embedded data?", "",
        f"Written by `python -m benchmarks.gan_texture_probe --seeds {' '.join(seeds)}` on {result['device']}, one "
        "torch thread. The quality suite's embedded splits (400 training, 200 test images, 64 px; test defect "
        "share ≈ 0.5, so chance AP ≈ 0.5). *patch memory* rows: the nearest-normal patch score of "
        "`anomaly_score=\"patch_memory\"` computed on the named features (training normals as memory). "
        "Train AUROC: the score on the detector's own training images (not given for a memory score, whose "
        "memory holds the training normals). The small CNN and the default "
        "two-stage detector on the same splits: `quality_full_amd.md` (image AP 0.741 and 0.840).", "",
        "| features or score | " + " | ".join(f"test AP, seed {s}" for s in seeds) + " | mean | train AUROC (mean) |",
        "|---|" + "---|" * (len(seeds) + 2),
    ]
    for name in names:
        cells = [result["seeds"][s]["rows"].get(name) for s in seeds]
        aps = [c["test_ap"] for c in cells if c]
        trains = [c["train_auroc"] for c in cells if c and "train_auroc" in c]
        label = name if name.startswith(tuple(fits)) else name.replace(": ", ": patch memory on ", 1)
        lines.append(f"| {label} | " + " | ".join(f"{c['test_ap']:.3f}" if c else "—" for c in cells)
                     + f" | {np.mean(aps):.3f} | " + (f"{np.mean(trains):.3f}" if trains else "") + " |")
    lines += ["", "| fit | " + " | ".join(f"seed {s}" for s in seeds) + " |", "|---|" + "---|" * len(seeds)]
    for variant in fits:
        cells = [result["seeds"][s]["fits"].get(variant) for s in seeds]
        lines.append(f"| {variant}: epochs (best), CPU s, chosen score | " + " | ".join(
            f"{c['epochs']} ({c['best_epoch']}), {c['fit_cpu_s']:.0f}, {c['chosen_score']}" if c else "—"
            for c in cells) + " |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--out", default=str(RESULTS))
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    return run_and_write(lambda on_row: run(args.seeds, on_row), table, args.out, "gan_texture_probe")


if __name__ == "__main__":
    main()
