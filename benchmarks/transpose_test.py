"""What ``augment="auto"`` sees: the transpose test on the quality suite's training images.

    python -m benchmarks.transpose_test          # ~1 min on one CPU core; Magnetic tile needs ../shared/datasets

``augment="auto"`` (the two-stage detector's default) adds transposes to the random flips unless the training
images can be told from their transposes (:func:`skdefect.training.data.transpose_test`: their mean power
spectrum more asymmetric than in every one of 99 random transpositions, p = 0.01). This script runs the test
on every split's training images of the suite's square data sets (the embedded textures, Magnetic tile at 64
and 128 px, ELPV at 64 px, the demo's split; the detector itself tests the 80 % it trains on, with its own
seed) and, to see the test's power and its behaviour under its null, on 10 random draws each of 30, 60, 120
and 400 images of the embedded data (their textures are cut at quarter turns: images as likely as their
transposes) and of Magnetic tile at 64 px (one camera geometry stretched to a square). Writes
``results/transpose_test.{json,md}``.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

from ._common import device_name, run_and_write

RESULTS = Path(__file__).resolve().parent / "results"
SPLITS = (("synthetic", {"seeds": [0, 1, 2]}), ("magnetic_tile_64", {"side": 64, "seeds": [0]}),
          ("magnetic_tile_128", {"side": 128, "seeds": [0]}), ("elpv", {"seeds": [0, 1, 2]}))


def _test(images: np.ndarray, seed: int) -> dict:
    from skdefect._base import TRANSPOSE_P_VALUE
    from skdefect._validation import check_images
    from skdefect.training import ImageBatchSource
    from skdefect.training.data import transpose_test

    found = transpose_test(ImageBatchSource(check_images(images)), random_state=seed)
    return {"n_images": len(images), "asymmetry": round(found.asymmetry, 3), "p_value": found.p_value,
            "augment_auto": "flips" if found.p_value <= TRANSPOSE_P_VALUE else "dihedral"}


def run(on_row, draws: int = 10) -> dict:  # noqa: ANN001
    from sklearn.model_selection import train_test_split

    from skdefect.datasets import find_shared_dataset, load_magnetic_tile, make_surface_defects

    from .quality import DATASETS

    result = {"command": "python -m benchmarks.transpose_test", "device": device_name(), "splits": [],
              "draws": []}
    try:
        have_mt = find_shared_dataset("magnetic_tile").is_dir()
    except (FileNotFoundError, OSError):
        have_mt = False
    for name, spec in SPLITS:
        if name.startswith("magnetic_tile") and not have_mt:
            print(f"skipping {name}: ../shared/datasets/magnetic_tile not found", file=sys.stderr)
            continue
        for split in DATASETS[name](spec):
            result["splits"].append({"dataset": name, "split": split.key, **_test(split.X_train, split.seed)})
            on_row(result)
    X, y, _ = make_surface_defects(400, (64, 64), random_state=0)  # skdefect demo's split
    X_train, *_ = train_test_split(X, y, test_size=0.3, stratify=y, random_state=0)
    result["splits"].append({"dataset": "demo", "split": "seed 0", **_test(X_train, 0)})
    pools = {"synthetic": make_surface_defects(1200, (64, 64), random_state=7)[0]}
    if have_mt:
        pools["magnetic_tile_64"] = load_magnetic_tile(image_shape=(64, 64))[0]
    for name, pool in pools.items():
        for n in (30, 60, 120, 400):
            for k in range(draws):
                rows = np.random.RandomState(k).choice(len(pool), n, replace=False)
                result["draws"].append({"dataset": name, "draw": k, **_test(pool[rows], k)})
            on_row(result)
    return result


def table(result: dict) -> str:
    lines = ["# The transpose test of `augment=\"auto\"`", "",
             f"Written by `{result['command']}` · {result['device']}.", "",
             "`asymmetry`: the training images' spectrum asymmetry over its mean in 99 random transpositions of "
             "them; `p`: the share of those (with the observed set) at least as asymmetric. `augment=\"auto\"` keeps "
             "to the flips at p = 0.01 (more asymmetric than all 99), adds the transposes otherwise.", "",
             "## Each split's training images", "",
             "| data | split | images | asymmetry | p | augment=\"auto\" |", "|---|---|---|---|---|---|"]
    for r in result["splits"]:
        lines.append(f"| {r['dataset']} | {r['split']} | {r['n_images']} | {r['asymmetry']:.2f} | {r['p_value']:.2f} "
                     f"| {r['augment_auto']} |")
    lines += ["", "## Random draws (10 per size)", "",
              "| data | images | asymmetry: min-max | p: min-median-max | draws given the flips |",
              "|---|---|---|---|---|"]
    keys = sorted({(r["dataset"], r["n_images"]) for r in result["draws"]}, key=lambda k: (k[0], k[1]))
    for name, n in keys:
        rows = [r for r in result["draws"] if r["dataset"] == name and r["n_images"] == n]
        a, p = [r["asymmetry"] for r in rows], [r["p_value"] for r in rows]
        flips = sum(r["augment_auto"] == "flips" for r in rows)
        lines.append(f"| {name} | {n} | {min(a):.2f}-{max(a):.2f} | {min(p):.2f}-{np.median(p):.2f}-{max(p):.2f} "
                     f"| {flips} of {len(rows)} |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default=str(RESULTS))
    args = parser.parse_args(argv)
    start = time.perf_counter()
    run_and_write(run, table, args.out, "transpose_test")
    print(f"{time.perf_counter() - start:.0f} s", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
