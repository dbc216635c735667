"""What bounds pixel AUROC on the embedded data: defects the map misses whole, or pixels of found defects?

    python -m benchmarks.pixel_misses --seeds 0 1 2      # ~7 min a seed on one CPU core

On the quality suite's embedded splits (``make_surface_defects`` defaults, 400 training and 200 test images
of 64×64) this fits the two-stage detector at its default and the suite's plain U-Net baseline given the
detector's CPU time, and reads their test maps against the masks: the pixel AUROC and AP; a pixel counts as
*found* above the 99th percentile of the method's scores on the normal test images' pixels; a defective
image is *missed* when fewer than 10 % of its defect pixels are found; the pixel AUROC over the found images
alone (their defect pixels against every normal image's pixels); and, per quintile of the defects' contrast
(the defect pixels' mean against a 4-pixel ring around them, in units of the ring's standard deviation),
the share of images missed. Writes ``results/pixel_misses.{json,md}``.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

from ._common import device_name, run_and_write

RESULTS = Path(__file__).resolve().parent / "results"


def _contrast(image: np.ndarray, mask: np.ndarray) -> float:
    from scipy import ndimage

    ring = ndimage.binary_dilation(mask, iterations=4) & ~mask
    image = image.astype(np.float64)
    return float(abs(image[mask].mean() - image[ring].mean()) / (image[ring].std() + 1e-6))


def read_maps(maps: np.ndarray, masks: np.ndarray, y: np.ndarray, contrast: np.ndarray) -> dict:
    """The figures of one method's test maps (see the module docstring)."""
    from sklearn.metrics import average_precision_score, roc_auc_score

    masks = masks.astype(bool)
    level = float(np.percentile(maps[y == 0], 99))
    defective = np.flatnonzero((y == 1) & masks.any(axis=(1, 2)))
    found_share = np.array([(maps[i][masks[i]] > level).mean() for i in defective])
    missed = found_share < 0.1
    keep = np.ones(len(y), bool)
    keep[defective[missed]] = False
    quintiles = np.array_split(np.argsort(contrast[defective]), 5)
    return {
        "pixel_auroc": float(roc_auc_score(masks.ravel(), maps.ravel())),
        "pixel_ap": float(average_precision_score(masks.ravel(), maps.ravel())),
        "defect_pixels_found": float((maps[masks] > level).mean()),
        "images_missed": float(missed.mean()),
        "pixel_auroc_found_images": float(roc_auc_score(masks[keep].ravel(), maps[keep].ravel())),
        "missed_by_contrast": [{"contrast": [float(contrast[defective][q].min()), float(contrast[defective][q].max())],
                                "missed": float(missed[q].mean())} for q in quintiles],
    }


def run(on_row, seeds: list[int]) -> dict:  # noqa: ANN001
    import torch

    from skdefect import ConcentratedTwoStageDetector

    from .baselines import PlainUNet
    from .quality import DATASETS

    torch.set_num_threads(1)
    result = {"command": "python -m benchmarks.pixel_misses --seeds " + " ".join(map(str, seeds)),
              "device": device_name(), "rows": []}
    for split in DATASETS["synthetic"]({"seeds": seeds}):
        contrast = np.array([_contrast(x, m) if m.any() else np.nan
                             for x, m in zip(split.X_test, split.masks_test.astype(bool), strict=True)])
        start = time.process_time()
        det = ConcentratedTwoStageDetector(random_state=split.seed).fit(split.X_train, split.y_train,
                                                                         masks=split.masks_train)
        budget = time.process_time() - start
        unet = PlainUNet(time_budget=budget, random_state=split.seed).fit(split.X_train, split.y_train,
                                                                          split.masks_train)
        for name, maps, cpu in (("two-stage (default)", det.segment(split.X_test), budget),
                                ("plain_unet", unet.segment(split.X_test), unet.fit_cpu_seconds_)):
            result["rows"].append({"split": split.key, "method": name, "fit_cpu_s": round(cpu, 1),
                                   **read_maps(maps, split.masks_test, split.y_test, contrast)})
            on_row(result)
    return result


def table(result: dict) -> str:
    lines = ["# What bounds pixel AUROC on the embedded data", "",
             f"Written by `{result['command']}` · {result['device']}, 1 torch thread.", "",
             "Found: above the 99th percentile of the method's scores on the normal test images' pixels. Missed: a "
             "defective image with under 10 % of its defect pixels found. Missed by contrast: the share of images "
             "missed in each quintile of the defects' contrast (low to high).", "",
             "| split | method | pixel AUROC | pixel AP | defect pixels found | images missed | pixel AUROC, "
             "found images only | missed by contrast quintile | fit CPU s |", "|---|---|---|---|---|---|---|---|---|"]
    for r in result["rows"]:
        quint = " / ".join(f"{q['missed']:.2f}" for q in r["missed_by_contrast"])
        lines.append(f"| {r['split']} | {r['method']} | {r['pixel_auroc']:.3f} | {r['pixel_ap']:.3f} | "
                     f"{r['defect_pixels_found']:.2f} | {r['images_missed']:.2f} | {r['pixel_auroc_found_images']:.3f} "
                     f"| {quint} | {r['fit_cpu_s']:.0f} |")
    for name in sorted({r["method"] for r in result["rows"]}):
        rows = [r for r in result["rows"] if r["method"] == name]
        lines.append(f"| mean | {name} | {np.mean([r['pixel_auroc'] for r in rows]):.3f} | "
                     f"{np.mean([r['pixel_ap'] for r in rows]):.3f} | "
                     f"{np.mean([r['defect_pixels_found'] for r in rows]):.2f} | "
                     f"{np.mean([r['images_missed'] for r in rows]):.2f} | "
                     f"{np.mean([r['pixel_auroc_found_images'] for r in rows]):.3f} | | |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--out", default=str(RESULTS))
    args = parser.parse_args(argv)
    run_and_write(lambda on_row: run(on_row, args.seeds), table, args.out, "pixel_misses")
    return 0


if __name__ == "__main__":
    sys.exit(main())
