"""Magnetic tile, segmentation stage only: does a network learn to localise defects at a CPU budget?

    python benchmarks/magnetic_tile_segmentation.py --image-size 64 --widths 0.25 0.5 1 --epochs 12

The diagnostic behind the Magnetic tile table (``magnetic_tile.py``): the segmentation stage alone
(``dec_epochs=0``) on the first stratified fold of one seed, for each backbone and width, with the
pixel AUROC of ``segment`` over the held-out images with a known mask, and the segmentation loss of
the first and last epoch. A loss that falls to about the defective images' share of a Dice loss
of 1 (half the balanced batches are normal images, whose empty masks an all-background prediction
fits) while the pixel AUROC stays near 0.5 means the network learned the pixel prior only.
Writes ``<stem>.json`` and ``.md`` (default ``magnetic_tile_segmentation``) to ``--out``.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch
from sklearn.model_selection import StratifiedKFold

from skdefect import ConcentratedTwoStageDetector, __version__
from skdefect.datasets import load_magnetic_tile

sys.path.insert(0, str(Path(__file__).parent))
from _common import device_name, run_and_write  # noqa: E402
from magnetic_tile import CONFIGS, pixel_auroc  # noqa: E402


def run(args: argparse.Namespace, on_row=None) -> dict:  # noqa: ANN001
    X, y, masks = load_magnetic_tile(image_shape=(args.image_size, args.image_size))
    known = (y == 0) | masks.any(axis=(1, 2))
    tr, te = next(StratifiedKFold(n_splits=5, shuffle=True, random_state=args.seed).split(X, y))
    rows: list[dict] = []
    result = {
        "benchmark": "magnetic_tile_segmentation",
        "command": "python " + " ".join(sys.argv),
        "protocol": f"segmentation stage only (dec_epochs=0), fold 0 of StratifiedKFold(5, shuffle, "
        f"random_state={args.seed}); {len(tr)} training, {len(te)} test images at {args.image_size}x{args.image_size}",
        "settings": {k: getattr(args, k) for k in ("image_size", "epochs", "batch_size", "lr", "seed")},
        "device": device_name(), "skdefect": __version__, "torch": torch.__version__, "rows": rows,
    }
    for config in args.configs:
        for width in args.widths:
            det = ConcentratedTwoStageDetector(width=width, seg_epochs=args.epochs, dec_epochs=0,
                                               batch_size=args.batch_size, lr=args.lr, random_state=args.seed,
                                               device=args.device, **CONFIGS[config])
            start = time.perf_counter()
            det.fit(X[tr], y[tr], masks=masks[tr])
            fit_s = time.perf_counter() - start
            history = det.net_.history
            key = "train_seg_loss"  # logged by both schedules (sequential and SegDecNet's joint one)
            row = {"config": config, "width": width, "n_parameters": det.n_parameters_["segmentation"],
                   "pixel_auroc": pixel_auroc(det.segment(X[te]), masks[te], known[te]),
                   "loss_first_epoch": float(history[0, key]), "loss_last_epoch": float(history[-1, key]),
                   "loss_per_epoch": [round(float(v), 5) for v in history[:, key]], "fit_s": round(fit_s, 1)}
            rows.append(row)
            print(f"{config:<14} width {width:<5} pixel AUROC {row['pixel_auroc']:.4f}  loss "
                  f"{row['loss_first_epoch']:.4f} -> {row['loss_last_epoch']:.4f}  {fit_s:.0f} s", flush=True)
            if on_row is not None:
                on_row(result)
    return result


def table(result: dict) -> str:
    s = result["settings"]
    lines = [f"Magnetic tile, {result['protocol']}; {s['epochs']} epochs, batch {s['batch_size']}, lr {s['lr']}; "
             f"device {result['device']}.", "", f"`{result['command']}`", "",
             "| config | width | seg. parameters | pixel AUROC | loss, first epoch | loss, last epoch | fit s |",
             "|---|---|---|---|---|---|---|"]
    for r in result["rows"]:
        lines.append(f"| {r['config']} | {r['width']:g} | {r['n_parameters']:,} | {r['pixel_auroc']:.3f} | "
                     f"{r['loss_first_epoch']:.4f} | {r['loss_last_epoch']:.4f} | {r['fit_s']:.0f} |")
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--image-size", type=int, default=64)
    parser.add_argument("--widths", type=float, nargs="+", default=[0.25, 0.5, 1.0])
    parser.add_argument("--epochs", type=int, default=12)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--configs", nargs="+", default=["wang2022 + CL", "lambda = 0"],
                        choices=list(CONFIGS))
    parser.add_argument("--device", default="auto")
    parser.add_argument("--out", default=str(Path(__file__).parent / "results"))
    parser.add_argument("--stem", default="magnetic_tile_segmentation", help="file name of the results")
    args = parser.parse_args()
    run_and_write(lambda on_row: run(args, on_row=on_row), table, args.out, args.stem)


if __name__ == "__main__":
    main()
