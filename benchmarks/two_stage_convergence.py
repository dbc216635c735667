"""Does the two-stage detector's epoch budget reach convergence? Its validation curves given the paper's budget.

    python -m benchmarks.two_stage_convergence --dataset synthetic                 # ~7 min on one CPU core
    python -m benchmarks.two_stage_convergence --dataset magnetic_tile_64 --fold 0  # ~15 min; needs the dataset

The default ``ConcentratedTwoStageDetector`` trains its segmentation stage for at most ``seg_epochs=60`` and its
decision stage for at most ``dec_epochs=20``, each ended earlier by early stopping on its own validation loss
(patience ``n_iter_no_change=30``). If the best validation epoch of a stage keeps landing on the budget's last
epochs, the budget, not convergence, ends training. This script fits the default detector on one split of the
quality suite with the paper's budget (200 + 100 epochs) and everything else at its default, so early stopping
decides where each stage ends, and records every epoch's learning rate and validation loss (and the decision
stage's validation AP). Per stage it reports where the best validation epoch came, whether early stopping
ended the stage, and the first epoch whose validation loss came within 1 % and 5 % of the stage's best.

The verdict reads the validation images only. The test AP and pixel AUROC of the fitted detector are printed
for reading (what the longer budget buys on this split); they choose nothing. Writes
``results/two_stage_convergence_<dataset>[_fold<k>].{json,md}``.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks._common import device_name, run_and_write

RESULTS = Path(__file__).resolve().parent / "results"
#: The paper's epoch counts (REFERENCE: 200 segmentation epochs, 100 decision epochs).
PAPER_BUDGET = (200, 100)
#: The default budget whose adequacy is in question.
DEFAULT_BUDGET = (60, 20)


def _split(dataset: str, fold: int, spec: dict | None = None) -> Any:
    from benchmarks.quality import DATASETS, PROFILES

    spec = {**PROFILES["full"][dataset][0], "seeds": [0], "folds": [fold], **(spec or {})}
    return next(DATASETS[dataset](spec))


def stage_summary(rows: list[dict], start_epoch: int, default_epochs: int) -> dict[str, Any]:
    """Where one stage's validation loss reached its best, how soon it came close to it, and how far above it
    the best of the first ``default_epochs`` epochs stayed (the default budget's stage, as a relative gap).

    ``rows`` are the stage's epoch rows (``epoch``, ``valid_loss``, ``lr``); ``start_epoch`` is the epoch before
    the stage's first, so that the counts are the stage's own epochs.
    """
    losses = np.array([r["valid_loss"] for r in rows], dtype=np.float64)
    best = int(np.argmin(losses))
    gap = (losses - losses[best]) / max(abs(float(losses[best])), 1e-12)
    first_within = {f"{int(p * 100)}%": int(np.argmax(gap <= p)) + 1 for p in (0.01, 0.05)}
    lrs = [r["lr"] for r in rows]
    cuts = [r["epoch"] - start_epoch for prev, r in zip(lrs, rows[1:], strict=False) if r["lr"] < prev]
    return {"epochs": len(rows), "best_epoch": best + 1, "best_valid_loss": float(losses[best]),
            "first_epoch_within": first_within, "lr_cut_at": cuts,
            "default_budget_gap": float(gap[:default_epochs].min())}


def run(dataset: str = "synthetic", fold: int = 0, on_row: Any = None, spec: dict | None = None,
        **overrides: Any) -> dict:
    """Fit the default two-stage detector with the paper's budget on one quality-suite split; ``spec`` changes
    the split's spec and ``overrides`` the detector's parameters (tests use a tiny fit)."""
    from skdefect import ConcentratedTwoStageDetector
    from skdefect.metrics import average_precision, pixel_roc_auc

    split = _split(dataset, fold, spec)
    seg_epochs, dec_epochs = overrides.pop("seg_epochs", PAPER_BUDGET[0]), overrides.pop("dec_epochs", PAPER_BUDGET[1])
    command = f"python -m benchmarks.two_stage_convergence --dataset {dataset}" + (
        f" --fold {fold}" if dataset.startswith("magnetic_tile") else "")
    result: dict[str, Any] = {"command": command, "device": device_name(), "dataset": dataset, "split": split.key,
                              "n_train": len(split.X_train), "budget": [seg_epochs, dec_epochs],
                              "default_budget": list(DEFAULT_BUDGET), "overrides": dict(overrides)}
    det = ConcentratedTwoStageDetector(seg_epochs=seg_epochs, dec_epochs=dec_epochs, random_state=split.seed,
                                       device="cpu", **overrides)
    start = time.process_time()
    det.fit(split.X_train, split.y_train, masks=split.masks_train)
    result["fit_cpu_s"] = round(time.process_time() - start, 1)
    history = [{"epoch": int(r["epoch"]), "stage": r["event_stage"], "lr": float(r["event_lr"]),
                "valid_loss": float(r["valid_loss"]), **({"valid_ap": float(r["valid_ap"])} if "valid_ap" in r else {})}
               for r in det.net_.history]
    result["history"] = history
    stages, start_epoch = {}, 0
    for stage, default_epochs in zip(("segmentation", "decision"), DEFAULT_BUDGET, strict=True):
        rows = [r for r in history if r["stage"] == stage]
        if rows:
            stages[stage] = {**stage_summary(rows, start_epoch, default_epochs),
                             "stopped_early": len(rows) < (seg_epochs if stage == "segmentation" else dec_epochs)}
            start_epoch += len(rows)
    result["stages"] = stages
    scores = det.decision_function(split.X_test)
    result["test (reading only)"] = {
        "image_ap": average_precision(split.y_test, scores),
        "pixel_auroc": pixel_roc_auc(det.segment(split.X_test), split.masks_test),
    }
    if on_row is not None:
        on_row(result)
    return result


def table(result: dict) -> str:
    default = dict(zip(("segmentation", "decision"), result["default_budget"], strict=True))
    paper = " (the paper's)" if tuple(result["budget"]) == PAPER_BUDGET else ""
    changed = f" but {result['overrides']}" if result.get("overrides") else ""
    lines = [f"# Two-stage convergence: {result['dataset']}, {result['split']}", "",
             f"Written by `{result['command']}` · {result['device']} · {result['n_train']} training images (20 % of "
             f"them validate) · budget {result['budget'][0]} + {result['budget'][1]} epochs{paper}, otherwise the "
             f"defaults{changed} · fit {result.get('fit_cpu_s', '-')} CPU s", "",
             "| stage | epochs run | stopped early | best epoch | within 5 % of best at | within 1 % at | "
             "learning rate cut at | default budget | its best above the best |", "|---" * 9 + "|"]
    for stage, s in result.get("stages", {}).items():
        lines.append(f"| {stage} | {s['epochs']} | {'yes' if s['stopped_early'] else 'no'} | {s['best_epoch']} | "
                     f"{s['first_epoch_within']['5%']} | {s['first_epoch_within']['1%']} | "
                     f"{', '.join(map(str, s['lr_cut_at'])) or '-'} | {default[stage]} | "
                     f"{100 * s['default_budget_gap']:+.1f} % |")
    test = result.get("test (reading only)")
    if test:
        lines += ["", f"Test split, for reading only (it chooses nothing): image AP {test['image_ap']:.3f}, "
                      f"pixel AUROC {test['pixel_auroc']:.3f}."]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--dataset", default="synthetic", choices=["synthetic", "magnetic_tile_64"])
    parser.add_argument("--fold", type=int, default=0, help="Magnetic tile's fold (seed 0)")
    parser.add_argument("--out", default=str(RESULTS))
    args = parser.parse_args(argv)
    import torch

    torch.set_num_threads(1)
    name = f"two_stage_convergence_{args.dataset}" + (f"_fold{args.fold}" if args.dataset != "synthetic" else "")
    return run_and_write(lambda on_row: run(args.dataset, args.fold, on_row=on_row), table, args.out, name)


if __name__ == "__main__":
    main()
