"""``skdefect demo``: train the detectors on the embedded synthetic data and report."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import numpy as np
from sklearn.metrics import average_precision_score, f1_score, roc_auc_score
from sklearn.model_selection import train_test_split


def overlay(image: np.ndarray, heat: np.ndarray, mask: np.ndarray | None = None) -> np.ndarray:
    """RGB uint8 picture: the image in gray, the heat map in red, the mask outline in green.

    Kept for compatibility; see :func:`skdefect.viz.overlay_image`.
    """
    from .viz import overlay_image

    return overlay_image(image, heat, mask)


def _metrics(y: np.ndarray, scores: np.ndarray, labels: np.ndarray) -> dict[str, float]:
    return {
        "AP": float(average_precision_score(y, scores)),
        "AUROC": float(roc_auc_score(y, scores)),
        "F1": float(f1_score(y, labels)),
    }


def _detectors(image_size: int, device: str, random_state: int) -> dict[str, Any]:
    from .two_stage import ConcentratedTwoStageDetector

    found: dict[str, Any] = {
        "ConcentratedTwoStageDetector": ConcentratedTwoStageDetector(
            width=0.5, dice_weight=0.5, seg_epochs=15, dec_epochs=4, batch_size=8, device=device,
            random_state=random_state,
        )
    }
    try:
        from .gan import DualDiscriminatorGANDetector
    except ImportError:  # not built yet
        return found
    side = max(32, -(-image_size // 16) * 16)  # the generator takes multiples of 16
    found["DualDiscriminatorGANDetector"] = DualDiscriminatorGANDetector(
        width=1.0, epochs=15, batch_size=16, image_size=side, device=device, random_state=random_state
    )
    return found


def run(
    n_samples: int = 300,
    image_size: int = 48,
    textures: tuple[str, ...] = ("brick",),
    out_dir: str | Path = "skdefect-demo",
    device: str = "auto",
    random_state: int = 0,
) -> int:
    """Train every available detector on synthetic surface defects; print a table.

    Writes ``metrics.json`` and heat-map overlays (PNG) of the first test images
    into ``out_dir``.
    """
    from PIL import Image

    from .datasets import make_surface_defects

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    X, y, masks = make_surface_defects(
        n_samples=n_samples, image_shape=(image_size, image_size), textures=textures, difficulty="easy",
        random_state=random_state,
    )
    X_tr, X_te, y_tr, y_te, m_tr, m_te = train_test_split(
        X, y, masks, test_size=0.3, stratify=y, random_state=random_state
    )
    print(
        f"skdefect demo: {len(X_tr)} training / {len(X_te)} test images of {image_size}x{image_size} "
        f"(synthetic defects on scikit-image's {'/'.join(textures)} texture; {int(y.sum())} defective)"
    )
    results: dict[str, dict[str, float]] = {}
    for name, det in _detectors(image_size, device, random_state).items():
        start = time.perf_counter()
        if name == "DualDiscriminatorGANDetector":
            det.fit(X_tr, y_tr)
            maps = det.anomaly_map(X_te[:8])
            maps = maps / max(float(maps.max()), 1e-8)
        else:
            det.fit(X_tr, y_tr, masks=m_tr)
            maps = det.segment(X_te[:8])
        fit_s = time.perf_counter() - start
        scores = det.decision_function(X_te)
        results[name] = {**_metrics(y_te, scores, det.predict(X_te)), "fit_seconds": round(fit_s, 1)}
        for i in range(len(maps)):
            Image.fromarray(overlay(X_te[i], maps[i], m_te[i])).save(out / f"{name}_{i}_y{int(y_te[i])}.png")

    header = f"{'detector':<30} {'AP':>6} {'AUROC':>6} {'F1':>6} {'fit s':>7}"
    print(header)
    print("-" * len(header))
    for name, r in results.items():
        print(f"{name:<30} {r['AP']:6.3f} {r['AUROC']:6.3f} {r['F1']:6.3f} {r['fit_seconds']:7.1f}")
    (out / "metrics.json").write_text(json.dumps(results, indent=2))
    print(f"metrics and heat-map overlays written to {out.resolve()}")
    return 0
