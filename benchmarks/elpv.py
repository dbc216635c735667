"""ELPV solar cells for DualDiscriminatorGANDetector (issue #4): normal (p = 0) vs defective (p >= 2/3), AUROC.

The 2,329 cells the default binarisation of :func:`skdefect.datasets.load_elpv` keeps (1,508 normal, 821
defective; the uncertain p = 1/3 cells are dropped) are split per seed by a stratified 70/30 shuffle split. The
full model trains on the training normals and anomalies; the one-class mode and the GANomaly-style set-up
(one discriminator, 50·L1 + adversarial + latent) train on the training normals only. Test AUROC of
``decision_function`` (reconstruction error), mean ± std over seeds. Images are resized to a reduced square
side on the CPU (the JSON and the table say which).

Needs ``pip install skdefect[datasets]`` (the ``elpv-dataset`` wheel, 90 MB).

    python benchmarks/elpv.py --image-size 64 --epochs 12 --lr 2e-3 --seeds 0 1 2
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import torch
from sklearn.metrics import roc_auc_score
from sklearn.model_selection import StratifiedShuffleSplit

from skdefect import DualDiscriminatorGANDetector, __version__
from skdefect.datasets import load_elpv

sys.path.insert(0, str(Path(__file__).parent))
from _common import device_name, run_and_write  # noqa: E402

# name -> (estimator parameters, train on normals only)
CONFIGS: dict[str, tuple[dict, bool]] = {
    "full": ({}, False),
    "one-class": ({}, True),
    "GANomaly-style": ({"w_recon": 50.0, "w_adv": 1.0, "w_latent": 1.0, "w_patch": 0.0}, True),
}


def run(args: argparse.Namespace, on_row=None) -> dict:
    X, y, _ = load_elpv(image_shape=(args.image_size, args.image_size))
    rows: list[dict] = []
    result = {
        "benchmark": "elpv",
        "command": "python " + " ".join(sys.argv),
        "protocol": f"load_elpv() defaults: {int((y == 0).sum())} normal (p = 0) + {int(y.sum())} defective "
        f"(p >= 2/3); StratifiedShuffleSplit(test_size=0.3, random_state=seed); {args.image_size}x{args.image_size}",
        "settings": {"image_size": args.image_size, "epochs": args.epochs, "lr": args.lr,
                     "patch_size": args.image_size // 4, "patch_stride": args.image_size // 8},
        "seeds": args.seeds,
        "device": device_name(),
        "skdefect": __version__,
        "torch": torch.__version__,
        "rows": rows,
    }
    for seed in args.seeds:
        tr, te = next(StratifiedShuffleSplit(1, test_size=0.3, random_state=seed).split(X, y))
        for name in args.configs:
            params, one_class = CONFIGS[name]
            det = DualDiscriminatorGANDetector(
                epochs=args.epochs, lr=args.lr, batch_size=32, patch_size=args.image_size // 4,
                patch_stride=args.image_size // 8, top_n=10, random_state=seed, device=args.device, **params,
            )
            start = time.perf_counter()
            normals = tr[y[tr] == 0]
            det.fit(X[normals]) if one_class else det.fit(X[tr], y[tr])
            auroc = float(roc_auc_score(y[te], det.decision_function(X[te])))
            rows.append({"config": name, "seed": seed, "auroc": auroc, "fit_s": round(time.perf_counter() - start, 1)})
            print(f"seed {seed} {name:<15} AUROC {auroc:.4f}", flush=True)
            if on_row is not None:
                on_row(result)
    return result


def table(result: dict) -> str:
    rows = result["rows"]
    lines = ["| config | test AUROC (mean ± std over seeds) | runs | fit s/run |", "|---|---|---|---|"]
    for c in dict.fromkeys(r["config"] for r in rows):
        v = [r["auroc"] for r in rows if r["config"] == c]
        t = [r["fit_s"] for r in rows if r["config"] == c]
        lines.append(f"| {c} | {np.mean(v):.3f} ± {np.std(v):.3f} | {len(v)} | {np.mean(t):.0f} |")
    s = result["settings"]
    head = (f"ELPV, normal (p = 0) vs defective (p >= 2/3); {s['image_size']}x{s['image_size']}, {s['epochs']} epochs, "
            f"Adam lr {s['lr']:g}; device {result['device']}.\n\n`{result['command']}`\n\n")
    return head + "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--image-size", type=int, default=64)
    parser.add_argument("--epochs", type=int, default=12)
    parser.add_argument("--lr", type=float, default=2e-3)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--configs", nargs="+", default=list(CONFIGS), choices=list(CONFIGS))
    parser.add_argument("--device", default="auto")
    parser.add_argument("--out", default=str(Path(__file__).parent / "results"))
    args = parser.parse_args()
    run_and_write(lambda on_row: run(args, on_row=on_row), table, args.out, "elpv")

if __name__ == "__main__":
    main()
