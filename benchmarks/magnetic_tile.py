"""Magnetic tile comparison of the concentrated-loss paper (issue #3), on the same splits in one run.

Stratified 5-fold cross-validation over the 1,344 Magnetic tile images (392 defective), repeated for
every seed (the seed shuffles the folds and seeds the networks). For each test fold it reports the
image-level average precision of ``decision_function`` in two readings, sklearn's step-wise
``average_precision_score`` and the trapezoidal area under the PR curve (``auc(recall, precision)``),
plus the AP of the segmentation map's maximum as the image score and the pixel-level AUROC of
``segment`` over the test images whose mask is known (the 4 empty MT_Uneven masks are skipped).

Configurations (the paper's Table 4 comparison):

* ``wang2022 + CL``: Table 1 network, concentrated loss γ = 0.5, λ = 0.95 (the paper's best);
* ``γ = 0``: the same network with the base loss λ·Dice + (1 − λ)·CE alone;
* ``λ = 0``: the concentration factor on cross-entropy alone;
* ``segdec + BCE``: Božič et al.'s SegDecNet with its own loss and joint schedule.

The paper trains at the native resolution for 200 + 100 epochs on a GPU; on the CPU this script runs
reduced settings (image side, width, epochs) and writes them into the JSON and the table.

    python benchmarks/magnetic_tile.py --image-size 64 --width 0.25 --seg-epochs 12 --dec-epochs 4 --seeds 0 1 2
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import torch
from sklearn.metrics import auc, average_precision_score, precision_recall_curve, roc_auc_score
from sklearn.model_selection import StratifiedKFold

from skdefect import ConcentratedTwoStageDetector, __version__
from skdefect.datasets import load_magnetic_tile

sys.path.insert(0, str(Path(__file__).parent))
from _common import device_name, run_and_write  # noqa: E402

# name -> estimator parameters (on top of the shared reduced settings)
CONFIGS: dict[str, dict] = {
    "wang2022 + CL": {"backbone": "wang2022", "loss": "concentrated", "gamma": 0.5, "dice_weight": 0.95},
    "gamma = 0": {"backbone": "wang2022", "loss": "concentrated", "gamma": 0.0, "dice_weight": 0.95},
    "lambda = 0": {"backbone": "wang2022", "loss": "concentrated", "gamma": 0.5, "dice_weight": 0.0},
    "segdec + BCE": {"backbone": "segdec", "loss": "bce"},
}


def trapezoid_pr_auc(y: np.ndarray, scores: np.ndarray) -> float:
    """Area under the PR curve by the trapezoidal rule (the reading some papers report as AP)."""
    precision, recall, _ = precision_recall_curve(y, scores)
    return float(auc(recall, precision))


def pixel_auroc(maps: np.ndarray, masks: np.ndarray, known: np.ndarray) -> float:
    """AUROC over every pixel of the images whose mask is known."""
    return float(roc_auc_score(masks[known].ravel(), maps[known].ravel()))


def run(args: argparse.Namespace, on_row=None) -> dict:
    X, y, masks = load_magnetic_tile(image_shape=(args.image_size, args.image_size))
    known = (y == 0) | masks.any(axis=(1, 2))
    rows: list[dict] = []
    result = {
        "benchmark": "magnetic_tile",
        "command": "python " + " ".join(sys.argv),
        "protocol": f"StratifiedKFold({args.folds}, shuffle, random_state=seed) over 1344 images (392 defective); "
        f"images stretched to {args.image_size}x{args.image_size} gray",
        "settings": {k: getattr(args, k) for k in
                     ("image_size", "width", "seg_epochs", "dec_epochs", "batch_size", "lr", "folds", "max_folds",
                      "only_folds")},
        "seeds": args.seeds,
        "device": device_name(),
        "skdefect": __version__,
        "torch": torch.__version__,
        "rows": rows,
    }
    for seed in args.seeds:
        folds = StratifiedKFold(n_splits=args.folds, shuffle=True, random_state=seed).split(X, y)
        for fold, (tr, te) in enumerate(folds):
            if args.max_folds is not None and fold >= args.max_folds:
                break
            if args.only_folds is not None and fold not in args.only_folds:
                continue
            for name in args.configs:
                det = ConcentratedTwoStageDetector(
                    width=args.width, seg_epochs=args.seg_epochs, dec_epochs=args.dec_epochs,
                    batch_size=args.batch_size, lr=args.lr, random_state=seed, device=args.device,
                    **CONFIGS[name],
                )
                start = time.perf_counter()
                det.fit(X[tr], y[tr], masks=masks[tr])
                fit_s = time.perf_counter() - start
                scores = det.decision_function(X[te])
                maps = det.segment(X[te])
                row = {
                    "config": name, "seed": seed, "fold": fold,
                    "ap_step": float(average_precision_score(y[te], scores)),
                    "ap_trapezoid": trapezoid_pr_auc(y[te], scores),
                    "ap_seg_max": float(average_precision_score(y[te], maps.reshape(len(te), -1).max(axis=1))),
                    "pixel_auroc": pixel_auroc(maps, masks[te], known[te]),
                    "fit_s": round(fit_s, 1),
                }
                rows.append(row)
                print(f"seed {seed} fold {fold} {name:<14} AP {row['ap_step']:.4f} "
                      f"(trapz {row['ap_trapezoid']:.4f}, seg-max {row['ap_seg_max']:.4f}) "
                      f"pixel AUROC {row['pixel_auroc']:.4f}  fit {fit_s:.0f} s", flush=True)
                if on_row is not None:
                    on_row(result)
    return result


METRICS = ("ap_step", "ap_trapezoid", "ap_seg_max", "pixel_auroc")


def table(result: dict) -> str:
    rows = result["rows"]
    lines = ["| config | AP (step) | PR-AUC (trapezoid) | AP of max(seg map) | pixel AUROC | runs | fit s/run |",
             "|---|---|---|---|---|---|---|"]
    for c in dict.fromkeys(r["config"] for r in rows):
        sel = [r for r in rows if r["config"] == c]
        cells = [f"{np.mean([r[m] for r in sel]):.3f} ± {np.std([r[m] for r in sel]):.3f}" for m in METRICS]
        lines.append(f"| {c} | " + " | ".join(cells) + f" | {len(sel)} | {np.mean([r['fit_s'] for r in sel]):.0f} |")
    s = result["settings"]
    done = sorted({r["seed"] for r in rows})
    folds_note = "" if s["max_folds"] is None else f" (first {s['max_folds']} folds of each seed)"
    if s.get("only_folds") is not None:
        folds_note += f" (folds {s['only_folds']} of each seed)"
    head = (
        f"Magnetic tile, test folds, mean ± std over (seed, fold) runs; seeds run {done} of {result['seeds']}, "
        f"{s['folds']}-fold stratified{folds_note}; "
        f"{s['image_size']}x{s['image_size']} images, width {s['width']}, {s['seg_epochs']}+{s['dec_epochs']} epochs, "
        f"batch {s['batch_size']}, lr {s['lr']}; device {result['device']}. Chance AP = 392/1344 = 0.29.\n\n"
        f"`{result['command']}`\n\n"
    )
    note = f"{result['note']}.\n\n" if result.get("note") else ""
    return head + note + "\n".join(lines) + "\n" + paired_table(rows)


def paired_table(rows: list[dict], metric: str = "ap_step") -> str:
    """Each configuration against the first on the same (seed, fold) splits: the mean paired difference,
    its standard error and how often the first configuration scored higher. The splits' own difficulty,
    most of the spread of the table above, cancels out of a paired difference."""
    configs = list(dict.fromkeys(r["config"] for r in rows))
    if len(configs) < 2:
        return ""
    by_split = {(r["config"], r["seed"], r["fold"]): r[metric] for r in rows}
    first = configs[0]
    lines = ["", f"Paired on the same splits, {metric} of {first} minus each other configuration's:", "",
             "| config | mean difference | standard error | splits where " + first + " is higher |",
             "|---|---|---|---|"]
    for c in configs[1:]:
        keys = [(seed, fold) for (cc, seed, fold) in by_split if cc == c and (first, seed, fold) in by_split]
        d = np.array([by_split[(first, *k)] - by_split[(c, *k)] for k in keys])
        if not len(d):
            continue
        se = d.std(ddof=1) / np.sqrt(len(d)) if len(d) > 1 else float("nan")
        lines.append(f"| {c} | {d.mean():+.3f} | {se:.3f} | {(d > 0).sum()} of {len(d)} |")
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--image-size", type=int, default=64)
    parser.add_argument("--width", type=float, default=0.25)
    parser.add_argument("--seg-epochs", type=int, default=12)
    parser.add_argument("--dec-epochs", type=int, default=4)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--folds", type=int, default=5)
    parser.add_argument("--max-folds", type=int, default=None, help="run only the first N folds of each seed")
    parser.add_argument("--only-folds", type=int, nargs="+", default=None,
                        help="run only these folds (0-based) of each seed, e.g. to split a run across processes")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--configs", nargs="+", default=list(CONFIGS), choices=list(CONFIGS))
    parser.add_argument("--device", default="auto")
    parser.add_argument("--out", default=str(Path(__file__).parent / "results"))
    parser.add_argument("--stem", default="magnetic_tile", help="file name of the results (.json, .md)")
    args = parser.parse_args()
    run_and_write(lambda on_row: run(args, on_row=on_row), table, args.out, args.stem)

if __name__ == "__main__":
    main()
