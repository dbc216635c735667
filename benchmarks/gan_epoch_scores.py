"""Is the GAN's early stopping watching the wrong score? Every score's validation AP after every epoch.

    python -m benchmarks.gan_epoch_scores --dataset synthetic   # ~4 min on one CPU core
    python -m benchmarks.gan_epoch_scores --dataset elpv        # ~18 min; needs `pip install skdefect[datasets]`

The GAN detector's early stopping judges an epoch by the validation AP of the reconstruction score
(``valid_ap``), while ``anomaly_score="auto"`` picks, after training, whichever of its four scores
(``recon``, ``patch``, ``memory``, ``patch_memory``) has the highest validation AP. If another score peaked at
another epoch, training would end with weights chosen for the wrong score. This script trains the default
GAN on the quality suite's split (the embedded data's quick-profile split, or ELPV seed 0) for all its epochs
(early stopping off) and after every epoch reads all four scores on the detector's own validation images and
on the test split. The memories are cheaper stand-ins for the detector's: the image memory holds 256 evenly
spaced training normals, the patch memory a random 4,096 of their patch vectors (no greedy coreset).

The test columns are for reading only: the verdict (the epoch and score the validation AP would choose) uses
the validation images alone. Writes ``results/gan_epoch_scores_<dataset>.{json,md}``.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

import numpy as np
import torch

from benchmarks._common import device_name, run_and_write

RESULTS = Path(__file__).resolve().parent / "results"
MEMORY_NORMALS, PATCH_ROWS = 256, 4096


def _split(dataset: str) -> tuple[np.ndarray, ...]:
    """The quality suite's own split: the embedded data's quick profile (seed 0) or ELPV 64 px seed 0."""
    from benchmarks.quality import DATASETS

    split = next(DATASETS[dataset]({"seeds": [0]}))
    return split.X_train, split.y_train, split.X_test, split.y_test


def _epoch_probe(X_tr: np.ndarray, y_tr: np.ndarray, X_te: np.ndarray, y_te: np.ndarray, seed: int,
                 on_epoch: Any) -> Any:
    """A skorch callback reading every score on the validation rows and the test split after each epoch."""
    from skorch.callbacks import Callback

    from skdefect import memory
    from skdefect._base import holdout_split
    from skdefect._validation import check_fit_inputs
    from skdefect.gan import SCORES, GANScorer
    from skdefect.metrics import average_precision, roc_auc
    from skdefect.training import ImageBatchSource

    images = check_fit_inputs(X_tr, y_tr, None, image_shape=None, require="none")[0]
    test_images = check_fit_inputs(X_te, y_te, None, image_shape=None, require="none")[0]
    train_rows, valid_rows = holdout_split(y_tr, 0.2, seed)  # the detector's own split (same fraction, seed)
    normals = train_rows[y_tr[train_rows] == 0]
    memory_rows = normals[np.linspace(0, len(normals) - 1, min(MEMORY_NORMALS, len(normals))).astype(np.int64)]
    size = (images.height, images.width)

    class EpochScores(Callback):
        def on_epoch_end(self, net: Any, **kwargs: Any) -> None:
            g = net.module_.eval()

            def embed(fn: Any) -> torch.Tensor:
                source = ImageBatchSource(images, size=size, rows=memory_rows)
                with torch.no_grad():
                    return torch.from_numpy(net.forward_into(
                        source, lambda x: fn(memory.generator_features(g, x)), np.float32))

            image_memory = embed(memory.image_embedding)
            patches = embed(memory.patch_embedding)
            vectors = patches.permute(0, 2, 3, 1).reshape(-1, patches.shape[1])
            vectors = vectors[torch.randperm(len(vectors), generator=torch.Generator().manual_seed(seed))[:PATCH_ROWS]]
            mean, std = vectors.mean(dim=0), vectors.std(dim=0).clamp_min(1e-6)
            # the detector's own valid_ap (its monitor): equal to this script's recon AP when the rows agree
            row: dict[str, Any] = {"epoch": len(net.history), "monitor_valid_ap": net.history[-1, "valid_ap"]}
            for score in SCORES:
                scorer = GANScorer(g, score, net.patch_size, net.patch_stride, net.top_n, image_memory=image_memory,
                                   patch_memory=(vectors - mean) / std, patch_mean=mean, patch_std=std)
                with torch.no_grad():
                    valid = net.forward_into(ImageBatchSource(images, size=size, rows=valid_rows),
                                             lambda x, s=scorer: s(x)[0], np.float64)
                    test = net.forward_into(ImageBatchSource(test_images, size=size),
                                            lambda x, s=scorer: s(x)[0], np.float64)
                row[score] = {"valid_ap": average_precision(y_tr[valid_rows], valid),
                              "test_ap": average_precision(y_te, test), "test_auroc": roc_auc(y_te, test)}
            on_epoch(row)

    return EpochScores()


def run(dataset: str, seed: int = 0, on_row: Any = None, **overrides: Any) -> dict:
    """Train the default GAN (early stopping off) on ``dataset``'s split, reading every score after every epoch;
    ``overrides`` change the detector's parameters (tests use a tiny fit)."""
    import time

    from skdefect import DualDiscriminatorGANDetector

    X_tr, y_tr, X_te, y_te = _split(dataset)
    result: dict[str, Any] = {
        "command": f"python -m benchmarks.gan_epoch_scores --dataset {dataset}", "device": device_name(),
        "dataset": dataset, "seed": seed, "n_train": len(X_tr), "n_test": len(X_te), "n_iter_no_change": 20,
        "epochs": [],
    }

    def on_epoch(row: dict) -> None:
        result["epochs"].append(row)
        if on_row is not None:
            on_row(result)

    from benchmarks.quality import method_params

    params = {**method_params(dataset), **overrides}  # the suite's configuration
    callback = _epoch_probe(X_tr, y_tr, X_te, y_te, seed, on_epoch)
    start = time.process_time()
    DualDiscriminatorGANDetector(random_state=seed, device="cpu", early_stopping=False, callbacks=[callback],
                                 **params).fit(X_tr, y_tr)
    result["fit_cpu_s"] = round(time.process_time() - start, 1)
    return result


def verdict(result: dict) -> dict[str, Any]:
    """The (epoch, score) the validation AP of any score picks; what the detector picks (its early stopping on the
    reconstruction score's validation AP, patience ``n_iter_no_change``, then the score with the best validation
    AP at that epoch); and the best test AUROC of any epoch and score (an oracle, for reading only)."""
    from skdefect.gan import SCORES
    from skdefect.training.stages import improved

    rows = result["epochs"]
    by_valid = max((r[s]["valid_ap"], r["epoch"], s) for r in rows for s in SCORES)
    monitor, misses = None, 0
    for r in rows:  # the detector's early stopping (relative tol 1e-4)
        if improved(r["recon"]["valid_ap"], None if monitor is None else monitor["recon"]["valid_ap"], False, 1e-4):
            monitor, misses = r, 0
        else:
            misses += 1
            if misses >= result.get("n_iter_no_change", 20):
                break
    at_monitor = max(SCORES, key=lambda s: monitor[s]["valid_ap"])
    oracle = max((r[s]["test_auroc"], r["epoch"], s) for r in rows for s in SCORES)
    row = {r["epoch"]: r for r in rows}
    return {
        "validation picks": {"epoch": by_valid[1], "score": by_valid[2],
                             "test_auroc": row[by_valid[1]][by_valid[2]]["test_auroc"]},
        "the detector picks (recon monitor)": {"epoch": monitor["epoch"], "score": at_monitor,
                                "test_auroc": monitor[at_monitor]["test_auroc"]},
        "oracle (test, reading only)": {"epoch": oracle[1], "score": oracle[2], "test_auroc": oracle[0]},
    }


def table(result: dict) -> str:
    from skdefect.gan import SCORES

    lines = [f"# Every GAN score after every epoch: {result['dataset']}", "",
             f"Written by `{result['command']}` on {result['device']}, one torch thread. {result['n_train']} "
             f"training images (20 % of them the detector's validation images), {result['n_test']} test images; "
             "early stopping off. Memories: 256 training normals (image), a random 4,096 of their patch vectors "
             "(patch).", ""]
    if not result["epochs"]:
        return "\n".join(lines)
    lines += ["| choice | epoch | score | test AUROC |", "|---|---|---|---|"]
    for name, v in verdict(result).items():
        lines.append(f"| {name} | {v['epoch']} | {v['score']} | {v['test_auroc']:.3f} |")
    lines += ["", "| epoch | " + " | ".join(f"{s} valid AP" for s in SCORES) + " | "
              + " | ".join(f"{s} test AUROC" for s in SCORES) + " |", "|---" * (1 + 2 * len(SCORES)) + "|"]
    for r in result["epochs"]:
        lines.append(f"| {r['epoch']} | " + " | ".join(f"{r[s]['valid_ap']:.3f}" for s in SCORES) + " | "
                     + " | ".join(f"{r[s]['test_auroc']:.3f}" for s in SCORES) + " |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", choices=("synthetic", "elpv"), default="synthetic")
    parser.add_argument("--out", default=str(RESULTS))
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    return run_and_write(lambda on_row: run(args.dataset, on_row=on_row), table, args.out,
                         f"gan_epoch_scores_{args.dataset}")


if __name__ == "__main__":
    main()
