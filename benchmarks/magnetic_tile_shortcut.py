"""Does Magnetic tile's image-level task carry a shortcut? Simple models on simple features, two fold protocols.

    python -m benchmarks.magnetic_tile_shortcut          # ~15 min on one CPU core; needs ../shared/datasets

Logistic regression on the 64×64 pixels ranked Magnetic tile's defective images far better (AP ≈ 0.95) than a
plain U-Net's largest pixel score, which is suspicious for a data set of small, faint defects. This script asks
which simple features carry the label: the crop's native size, the capture setting (``exp0``-``exp6``), the
64×64 image's intensity statistics, centre-against-surround contrasts, thumbnails and the pixels themselves,
each with a linear model and a random forest, on 5 stratified folds (seed 0) drawn two ways: at random, and by
tile (the captures of one tile under the six settings stay together; ``load_magnetic_tile(return_groups=True)``).
It also gives each model's AUROC per defect class (each class against the normals) and how often an image's
nearest neighbour is a capture of its own tile. Writes ``results/magnetic_tile_shortcut.{json,md}``.

Finding: the near-duplicates are the shortcut. With random folds the pixels' logistic regression reaches AP
≈ 0.95; with folds by tile about half that. The quality suite splits Magnetic tile by tile.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

RESULTS = Path(__file__).resolve().parent / "results"


def _native_sizes(root: Path) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(height, width) of every image in manifest order, the class names and the capture setting (expN)."""
    import csv

    from PIL import Image

    with open(root / "manifest.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    sizes = []
    for r in rows:
        with Image.open(root / r["image"]) as im:  # reads the header only
            sizes.append(im.size[::-1])
    return (np.array(sizes, dtype=np.float64), np.array([r["class"] for r in rows]),
            np.array([Path(r["image"]).name.split("_")[0] for r in rows]))


def _feature_sets(X: np.ndarray, sizes: np.ndarray, exp: np.ndarray) -> dict[str, np.ndarray]:
    x = X.reshape(len(X), 64, 64).astype(np.float64) / 255.0
    h, w = sizes[:, 0], sizes[:, 1]
    flat = x.reshape(len(x), -1)
    stats = np.column_stack([flat.mean(1), flat.std(1), *np.percentile(flat, [1, 5, 25, 50, 75, 95, 99], axis=1)])
    thumb8 = x.reshape(len(x), 8, 8, 8, 8).mean(axis=(2, 4)).reshape(len(x), -1)
    thumb16 = x.reshape(len(x), 16, 4, 16, 4).mean(axis=(2, 4)).reshape(len(x), -1)
    # centre against surround: crops cut around a defect put it in the middle; normal crops have no such place
    yy, xx = np.mgrid[:64, :64]
    r = np.hypot(yy - 31.5, xx - 31.5)
    rings = [(r < 8), (r >= 8) & (r < 16), (r >= 16) & (r < 24), (r >= 24)]
    ring_means = np.column_stack([flat[:, m.ravel()].mean(1) for m in rings])
    ring_stds = np.column_stack([flat[:, m.ravel()].std(1) for m in rings])
    centre = np.column_stack([ring_means - ring_means[:, -1:], ring_stds])
    settings = sorted(set(exp))
    one_hot = (exp[:, None] == np.array(settings)[None, :]).astype(np.float64)
    return {
        "native size (h, w, h/w, h·w)": np.column_stack([h, w, h / w, h * w]),
        "capture setting (exp one-hot)": one_hot,
        "intensity statistics (mean, std, 7 percentiles)": stats,
        "centre vs surround (4 rings: mean − outer mean, std)": centre,
        "8×8 thumbnail": thumb8,
        "16×16 thumbnail": thumb16,
        "64×64 pixels": flat,
    }


def _models(seed: int) -> dict[str, object]:
    from sklearn.ensemble import RandomForestClassifier
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import GridSearchCV
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    return {
        "logistic regression": GridSearchCV(
            make_pipeline(StandardScaler(), LogisticRegression(max_iter=3000)),
            {"logisticregression__C": [1e-4, 1e-3, 1e-2, 1e-1, 1.0]}, cv=3, scoring="average_precision"),
        "random forest": RandomForestClassifier(n_estimators=300, min_samples_leaf=2, random_state=seed, n_jobs=1),
    }


def _nearest_neighbour_share(X: np.ndarray, tiles: np.ndarray, y: np.ndarray) -> dict[str, float]:
    """Share of images whose nearest other image (correlation of the pixels) is a capture of the same tile."""
    F = X.reshape(len(X), -1).astype(np.float64)
    Z = (F - F.mean(1, keepdims=True)) / np.maximum(F.std(1, keepdims=True), 1e-12)
    S = Z @ Z.T
    np.fill_diagonal(S, -np.inf)
    nn = S.argmax(1)
    return {"same_tile": float((tiles[nn] == tiles).mean()), "same_label": float((y[nn] == y).mean())}


def run(seed: int = 0) -> dict:
    import warnings

    from sklearn.exceptions import ConvergenceWarning
    from sklearn.model_selection import StratifiedGroupKFold, StratifiedKFold

    from skdefect.datasets import load_magnetic_tile
    from skdefect.datasets._shared import find_shared_dataset
    from skdefect.metrics import average_precision, roc_auc

    root = find_shared_dataset("magnetic_tile")
    X, y, _, tiles = load_magnetic_tile(image_shape=(64, 64), return_groups=True)
    sizes, classes, exp = _native_sizes(root)
    assert len(sizes) == len(X), "manifest and loader disagree"
    features = _feature_sets(X, sizes, exp)
    protocols = {
        "random folds": list(StratifiedKFold(5, shuffle=True, random_state=seed).split(X, y)),
        "folds by tile": list(StratifiedGroupKFold(5, shuffle=True, random_state=seed).split(X, y, tiles)),
    }
    rows = []
    for (fname, F), (protocol, folds) in ((f, p) for f in features.items() for p in protocols.items()):
        for mname, model in _models(seed).items():
            aps, aurocs, per_class = [], [], {}
            start = time.process_time()
            oof = np.zeros(len(y))
            for tr, te in folds:
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore", ConvergenceWarning)
                    model.fit(F[tr], y[tr])
                s = model.predict_proba(F[te])[:, 1]
                oof[te] = s
                aps.append(average_precision(y[te], s))
                aurocs.append(roc_auc(y[te], s))
            for c in sorted(set(classes) - {"MT_Free"}):
                sel = (classes == c) | (classes == "MT_Free")
                per_class[c] = roc_auc((classes[sel] == c).astype(int), oof[sel])
            rows.append({"features": fname, "protocol": protocol, "model": mname, "image_ap": float(np.mean(aps)),
                         "image_ap_std": float(np.std(aps)), "image_auroc": float(np.mean(aurocs)),
                         "class_auroc": per_class, "cpu_s": round(time.process_time() - start, 1)})
            print(f"{fname:<48} {protocol:<14} {mname:<20} AP {rows[-1]['image_ap']:.3f} "
                  f"AUROC {rows[-1]['image_auroc']:.3f}", flush=True)
    by_class = {c: {"n": int((classes == c).sum()),
                    "native_h_median": float(np.median(sizes[classes == c, 0])),
                    "native_w_median": float(np.median(sizes[classes == c, 1])),
                    "mean_intensity": float(X[classes == c].mean() / 255.0)} for c in sorted(set(classes))}
    return {"benchmark": "magnetic_tile_shortcut", "command": ("python -m benchmarks.magnetic_tile_shortcut "
            + " ".join(sys.argv[1:])).strip(), "seed": seed, "chance_ap": float(y.mean()), "rows": rows,
            "classes": by_class, "n_tiles": int(tiles.max() + 1),
            "nearest_neighbour": _nearest_neighbour_share(X, tiles, y)}


def table(result: dict) -> str:
    classes = sorted(next(iter(result["rows"]))["class_auroc"])
    lines = [
        "# Magnetic tile: which simple features carry the image label?", "",
        f"`{result['command']}`; 5 stratified folds, seed {result['seed']}: random, and by tile (the "
        f"{result['n_tiles']} tiles of `load_magnetic_tile(return_groups=True)`; the quality suite's "
        f"`magnetic_tile_*` folds); chance AP {result['chance_ap']:.3f}. Class columns: AUROC of the "
        "out-of-fold scores, each defect class against the normals.", "",
        f"Nearest other image (correlation of the 64×64 pixels) is a capture of the same tile for "
        f"{result['nearest_neighbour']['same_tile']:.1%} of the images, and has the same label for "
        f"{result['nearest_neighbour']['same_label']:.1%}.", "",
        "| features | folds | model | image AP | image AUROC | " + " | ".join(c.replace("MT_", "") for c in classes)
        + " |",
        "|" + "---|" * (5 + len(classes)),
    ]
    for r in result["rows"]:
        lines.append(f"| {r['features']} | {r['protocol']} | {r['model']} | {r['image_ap']:.3f} ± "
                     f"{r['image_ap_std']:.3f} | "
                     f"{r['image_auroc']:.3f} | " + " | ".join(f"{r['class_auroc'][c]:.3f}" for c in classes)
                     + " |")
    lines += ["", "| class | images | median native height | median native width | mean intensity (64×64) |",
              "|---|---|---|---|---|"]
    for c, v in result["classes"].items():
        lines.append(f"| {c} | {v['n']} | {v['native_h_median']:.0f} | {v['native_w_median']:.0f} | "
                     f"{v['mean_intensity']:.3f} |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default=str(RESULTS))
    args = parser.parse_args(argv)
    result = run(args.seed)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "magnetic_tile_shortcut.json").write_text(json.dumps(result, indent=1))
    (out / "magnetic_tile_shortcut.md").write_text(table(result))
    print(table(result))
    return result


if __name__ == "__main__":
    main()
