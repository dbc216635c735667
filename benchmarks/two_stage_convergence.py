"""Does the two-stage detector's epoch budget reach convergence? Its validation curves under several budgets.

    python -m benchmarks.two_stage_convergence --dataset synthetic --seed 0                # ~17 min on one core
    python -m benchmarks.two_stage_convergence --dataset magnetic_tile_64 --fold 0       # ~32 min; needs the data

The default ``ConcentratedTwoStageDetector`` trains its segmentation stage for at most ``seg_epochs=60`` and its
decision stage for at most ``dec_epochs=20``, each ended earlier by early stopping on its own validation loss
(patience ``n_iter_no_change=30``) under the plateau schedule. If a stage's best validation epoch keeps landing
on the budget's last epochs, the budget, not convergence, ends training. This script fits, on one split of the
quality suite, the detector in each configuration of :data:`CONFIGS`: the default given the paper's budget
(200 + 100 epochs, so early stopping decides where each stage ends), and a cosine decay of the learning rate
within the default budget and within a longer one. It records every epoch's learning rate and validation loss
(and the decision stage's validation AP) and, per stage, where the best validation epoch came, whether early
stopping ended the stage, the first epoch within 5 % and 1 % of the stage's best, how far above its best the
stage's first 60 / 20 epochs stayed, and how far its best stayed above the lowest any configuration reached.

The comparison reads the validation images only (every configuration holds out the same 20 %). The test AP and
pixel AUROC of each fitted detector are printed for reading; they choose nothing. Runs with ``--configs`` add
to the split's file: ``results/two_stage_convergence_<dataset>_seed<s>[_fold<k>].{json,md}``.
"""

from __future__ import annotations

import argparse
import json
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


def _split(dataset: str, seed: int, fold: int, spec: dict | None = None) -> Any:
    from benchmarks.quality import DATASETS, PROFILES

    spec = {**PROFILES["full"][dataset][0], "seeds": [seed], "folds": [fold], **(spec or {})}
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


#: Configurations the script can fit (parameters over the defaults). The first is the reference: the default
#: detector given the paper's budget, so early stopping, not the budget, ends its stages.
CONFIGS: dict[str, dict[str, Any]] = {
    "plateau (default), 200 + 100 epochs (the paper's)": {"seg_epochs": PAPER_BUDGET[0], "dec_epochs": PAPER_BUDGET[1]},
    "cosine, 60 + 20 epochs (the default budget)": {"lr_schedule": "cosine"},
    "cosine, 100 + 40 epochs": {"lr_schedule": "cosine", "seg_epochs": 100, "dec_epochs": 40},
}


def fit_config(split: Any, params: dict[str, Any]) -> dict[str, Any]:
    """Fit the two-stage detector with ``params`` over its defaults on ``split``: every epoch's learning rate and
    validation loss, each stage's summary, the fit's CPU seconds and (for reading only) its test metrics."""
    from skdefect import ConcentratedTwoStageDetector
    from skdefect.metrics import average_precision, pixel_roc_auc

    det = ConcentratedTwoStageDetector(random_state=split.seed, device="cpu", **params)
    start = time.process_time()
    det.fit(split.X_train, split.y_train, masks=split.masks_train)
    fit_cpu_s = round(time.process_time() - start, 1)
    history = [{"epoch": int(r["epoch"]), "stage": r["event_stage"], "lr": float(r["event_lr"]),
                "valid_loss": float(r["valid_loss"]), **({"valid_ap": float(r["valid_ap"])} if "valid_ap" in r else {})}
               for r in det.net_.history]
    ends = {r["event_stage_end"]["stage"]: r["event_stage_end"] for r in det.net_.history if "event_stage_end" in r}
    stages, start_epoch = {}, 0
    for stage, default_epochs in zip(("segmentation", "decision"), DEFAULT_BUDGET, strict=True):
        rows = [r for r in history if r["stage"] == stage]
        if rows:  # the net records whether early stopping ended the stage
            stages[stage] = {**stage_summary(rows, start_epoch, default_epochs),
                             "stopped_early": bool(ends[stage]["stopped_early"])}
            start_epoch += len(rows)
    scores = det.decision_function(split.X_test)
    return {"params": dict(params), "budget": [det.seg_epochs, det.dec_epochs], "fit_cpu_s": fit_cpu_s,
            "history": history,
            "stages": stages, "test (reading only)": {
                "image_ap": average_precision(split.y_test, scores),
                "pixel_auroc": pixel_roc_auc(det.segment(split.X_test), split.masks_test)}}


def run(dataset: str = "synthetic", seed: int = 0, fold: int = 0, configs: list[str] | None = None,
        on_row: Any = None, spec: dict | None = None, previous: dict | None = None,
        **overrides: Any) -> dict:
    """Fit ``configs`` (names of :data:`CONFIGS`, default all) on one quality-suite split, adding to
    ``previous`` (an earlier result of the same split); ``spec`` changes the split's spec and ``overrides`` every
    configuration's parameters (tests use a tiny fit)."""
    split = _split(dataset, seed, fold, spec)
    where = f" --seed {seed}" + (f" --fold {fold}" if dataset.startswith("magnetic_tile") else "")
    result: dict[str, Any] = previous or {"dataset": dataset, "split": split.key, "n_train": len(split.X_train),
                                          "default_budget": list(DEFAULT_BUDGET), "runs": {}}
    result["device"] = device_name()
    for name in configs or list(CONFIGS):
        run_ = fit_config(split, {**CONFIGS[name], **overrides})
        run_["command"] = f"python -m benchmarks.two_stage_convergence --dataset {dataset}{where} --configs \"{name}\""
        result["runs"][name] = run_
        if on_row is not None:
            on_row(result)
    return result


def cuts(run_: dict, stage: dict) -> str:
    """The epochs where a plateau schedule cut the learning rate (a cosine decay lowers it every epoch)."""
    if run_["params"].get("lr_schedule") == "cosine":
        return "every epoch (cosine)"
    return ", ".join(map(str, stage["lr_cut_at"])) or "-"


def table(result: dict) -> str:
    runs = result.get("runs", {})
    lowest = {stage: min(r["stages"][stage]["best_valid_loss"] for r in runs.values() if stage in r["stages"])
              for stage in ("segmentation", "decision") if any(stage in r["stages"] for r in runs.values())}
    lines = [f"# Two-stage convergence: {result['dataset']}, {result['split']}", "",
             f"{result['device']} · {result['n_train']} training images (20 % of them validate) · every "
             "configuration at the detector's defaults but what its name says; early stopping at the default "
             "patience (30). *Above the lowest*: the stage's best validation loss over the lowest any configuration "
             "reached on these validation images. *Default budget*: the best validation loss of the stage's first "
             f"{result['default_budget'][0]} (segmentation) or {result['default_budget'][1]} (decision) epochs over "
             "the stage's own best (for the plateau rows, the default detector's trajectory). The test columns choose "
             "nothing.", "",
             "| configuration | stage | epochs run | stopped early | best epoch | best valid loss | above the lowest "
             "| within 5 % / 1 % of its best at | learning rate cut at | default budget | test image AP | "
             "test pixel AUROC | fit CPU s |", "|---" * 13 + "|"]
    for name, r in runs.items():
        test = r["test (reading only)"]
        for stage, s in r["stages"].items():
            first = stage == "segmentation"
            lines.append(
                f"| {name if first else ''} | {stage} | {s['epochs']} | {'yes' if s['stopped_early'] else 'no'} | "
                f"{s['best_epoch']} | {s['best_valid_loss']:.4f} | "
                f"{100 * (s['best_valid_loss'] / lowest[stage] - 1):+.1f} % | "
                f"{s['first_epoch_within']['5%']} / {s['first_epoch_within']['1%']} | "
                f"{cuts(r, s)} | {100 * s['default_budget_gap']:+.1f} % | "
                + (f"{test['image_ap']:.3f} | {test['pixel_auroc']:.3f} | {r['fit_cpu_s']:.0f} |" if first
                   else "| | |"))
    lines += ["", "Commands:", "", *[f"- `{r['command']}`" for r in runs.values()]]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--dataset", default="synthetic", choices=["synthetic", "magnetic_tile_64"])
    parser.add_argument("--seed", type=int, default=0, help="split seed")
    parser.add_argument("--fold", type=int, default=0, help="Magnetic tile's fold")
    parser.add_argument("--configs", nargs="+", choices=list(CONFIGS), default=None, help="default: all")
    parser.add_argument("--out", default=str(RESULTS))
    args = parser.parse_args(argv)
    import torch

    torch.set_num_threads(1)
    name = f"two_stage_convergence_{args.dataset}_seed{args.seed}" + (
        f"_fold{args.fold}" if args.dataset.startswith("magnetic_tile") else "")
    path = Path(args.out) / f"{name}.json"
    previous = json.loads(path.read_text()) if path.exists() else None
    return run_and_write(lambda on_row: run(args.dataset, args.seed, args.fold, args.configs, on_row=on_row,
                                            previous=previous), table, args.out, name)


if __name__ == "__main__":
    main()
