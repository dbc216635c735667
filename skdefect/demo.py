"""``skdefect demo``: both detectors and a 20-line baseline on the embedded synthetic data, with what it means.

The data are :func:`skdefect.datasets.make_surface_defects` with its defaults (scikit-image's brick, grass and
gravel textures; scratches, spots, cracks and blobs, 30 % of them faint), 64×64. Both detectors train with
their default configuration and keep the weights of their best epoch on an internal validation split (the
two-stage detector runs its whole 60 + 20 epoch CPU budget here, the GAN usually stops early); the
baseline is logistic regression on the pixels, the model a data scientist writes first. The table gives each
method's test average precision against chance (the test set's defect share), the AUROC and the F1 of
``predict``; the overlays show where each detector looks.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import numpy as np
from sklearn.model_selection import train_test_split
from skorch.callbacks import Callback

from .metrics import average_precision, roc_auc

__all__ = ["run"]


class _Progress(Callback):
    """One line when a training stage starts and every 10th epoch: the demo is never silent for long."""

    def __init__(self, name: str) -> None:
        self.name = name

    def on_epoch_end(self, net: Any, **kwargs: Any) -> None:
        row = net.history[-1]
        stage, epoch = row.get("event_stage", "training"), int(row["epoch"])
        first = len(net.history) == 1 or net.history[-2].get("event_stage") != stage
        if first or epoch % 10 == 0:
            keys = ("valid_loss", "valid_ap", "valid_pixel_ap")
            shown = ", ".join(f"{key} {row[key]:.3f}" for key in keys if key in row)
            print(f"    {self.name}: {stage} stage, epoch {epoch} ({shown}; {row.get('event_left', '')} left at most)",
                  flush=True)


def _logistic_regression(X_train: np.ndarray, y_train: np.ndarray, X_test: np.ndarray) -> np.ndarray:
    """The 20-line baseline: logistic regression on standardised pixels, C chosen by 3-fold CV on training data."""
    import warnings

    from sklearn.exceptions import ConvergenceWarning
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import GridSearchCV
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    model = GridSearchCV(make_pipeline(StandardScaler(), LogisticRegression(max_iter=2000)),
                         {"logisticregression__C": [1e-3, 1e-2, 1e-1, 1.0]}, cv=3, scoring="average_precision")
    with warnings.catch_warnings():  # lbfgs may stop short on the weakest C values: the CV still ranks them
        warnings.simplefilter("ignore", ConvergenceWarning)
        model.fit(X_train.reshape(len(X_train), -1) / 255.0, y_train)
    return model.decision_function(X_test.reshape(len(X_test), -1) / 255.0)


def _verdict(ap: float, chance: float, baseline_ap: float | None, auroc: float = 1.0) -> str:
    """What a row means: at chance (AP within 0.05 of the defect share, or AUROC below 0.55), or its AP margin
    over the baseline, called a clear win from 0.10 on."""
    if ap < chance + 0.05 or auroc < 0.55:
        return "at chance: it has not learned this data"
    if baseline_ap is None:
        return ""
    margin = ap - baseline_ap
    if margin >= 0.10:
        return f"beats the baseline by {margin:+.2f} AP"
    if margin >= 0.05:
        return f"slightly above the baseline ({margin:+.2f} AP, AUROC {auroc:.2f})"
    if margin > -0.05:
        return "level with the baseline"
    return f"below the baseline ({margin:+.2f} AP)"


def run(
    n_samples: int = 400,
    image_side: int = 64,
    textures: tuple[str, ...] | None = None,
    out_dir: str | Path = "skdefect-demo",
    device: str = "auto",
    random_state: int = 0,
) -> int:
    """Train both detectors and the baseline on the embedded data; print a table, write metrics and figures.

    Writes ``metrics.json``, heat-map overlays of the first test images (``<detector>_<i>_y<label>.png``) and,
    with matplotlib, ``pr_curve.png`` into ``out_dir``.
    """
    from PIL import Image

    from .datasets import TEXTURES, make_surface_defects
    from .gan import DualDiscriminatorGANDetector
    from .two_stage import ConcentratedTwoStageDetector
    from .viz import caption_image, overlay_image

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    textures = tuple(textures) if textures else TEXTURES
    X, y, masks = make_surface_defects(n_samples=n_samples, image_shape=(image_side, image_side), textures=textures,
                                       random_state=random_state)
    X_tr, X_te, y_tr, y_te, m_tr, m_te = train_test_split(X, y, masks, test_size=0.3, stratify=y,
                                                          random_state=random_state)
    chance = float(y_te.mean())
    print(f"skdefect demo: {len(X_tr)} training and {len(X_te)} test images of {image_side}x{image_side}, "
          f"synthetic defects on scikit-image's {'/'.join(textures)} textures ({int(y.sum())} defective).\n"
          f"Each detector holds 20 % of its training images out to choose its epochs and threshold.", flush=True)
    detectors: dict[str, Any] = {
        "ConcentratedTwoStageDetector": ConcentratedTwoStageDetector(
            device=device, random_state=random_state, callbacks=[_Progress("two-stage")]),
        "DualDiscriminatorGANDetector": DualDiscriminatorGANDetector(
            device=device, random_state=random_state, callbacks=[_Progress("GAN")]),
    }
    results: dict[str, dict[str, Any]] = {}
    curves: dict[str, np.ndarray] = {}
    start = time.perf_counter()
    scores = _logistic_regression(X_tr, y_tr, X_te)
    results["logistic regression (baseline)"] = {
        "AP": average_precision(y_te, scores), "AUROC": roc_auc(y_te, scores), "F1": None,
        "fit_seconds": round(time.perf_counter() - start, 1)}
    curves["logistic regression"] = scores
    for name, det in detectors.items():
        print(f"  training {name} ...", flush=True)
        start = time.perf_counter()
        if isinstance(det, ConcentratedTwoStageDetector):
            det.fit(X_tr, y_tr, masks=m_tr)
            maps = det.segment(X_te[:8])
        else:
            det.fit(X_tr, y_tr)
            maps = det.anomaly_map(X_te[:8])
            maps = maps / max(float(maps.max()), 1e-8)
        fit_s = time.perf_counter() - start
        scores = det.decision_function(X_te)
        predicted = det.predict(X_te)
        tp = int(((predicted == 1) & (y_te == 1)).sum())
        f1 = 2 * tp / max(int(predicted.sum()) + int(y_te.sum()), 1)
        results[name] = {"AP": average_precision(y_te, scores), "AUROC": roc_auc(y_te, scores), "F1": f1,
                         "fit_seconds": round(fit_s, 1), "epochs": len(det.net_.history)}
        if isinstance(det, DualDiscriminatorGANDetector):
            results[name]["anomaly_score"] = det.anomaly_score_
        curves[name] = scores
        print(f"  {name}: trained in {fit_s:.0f} s ({len(det.net_.history)} epochs)", flush=True)
        for i in range(len(maps)):
            decision = "defective" if predicted[i] else "normal"
            caption = [f"score {scores[i]:.3g} vs threshold {det.threshold_:.3g}: {decision}",
                       f"true label: {'defective' if y_te[i] else 'normal'}"]
            Image.fromarray(caption_image(overlay_image(X_te[i], maps[i], m_te[i]), caption)).save(
                out / f"{name}_{i}_y{int(y_te[i])}.png")

    baseline = results["logistic regression (baseline)"]["AP"]
    header = f"{'method':<32} {'AP':>6} {'AUROC':>6} {'F1':>6} {'fit s':>6}  meaning"
    print("\n" + header + "\n" + "-" * (len(header) + 30))
    for name, r in results.items():
        f1 = "" if r["F1"] is None else f"{r['F1']:6.3f}"
        meaning = _verdict(r["AP"], chance, None if "baseline" in name else baseline, r["AUROC"])
        r["meaning"] = meaning
        print(f"{name:<32} {r['AP']:6.3f} {r['AUROC']:6.3f} {f1:>6} {r['fit_seconds']:6.1f}  {meaning}")
    print(f"\nAP = average precision of the defective class on the test images; chance is {chance:.2f} (the defect "
          "share). AUROC 0.5 is chance. F1 is that of predict(), whose threshold each detector chose on its "
          "validation images.")
    gan = results["DualDiscriminatorGANDetector"]
    print(f"The GAN scores by {gan['anomaly_score']!r}, chosen on its validation images: on small defects in "
          "textures its reconstruction error does not separate the classes (see docs/benchmarks.md).")
    (out / "metrics.json").write_text(json.dumps(results, indent=2))
    try:
        from .viz import plot_pr_curve

        plot_pr_curve(y_te, curves).savefig(out / "pr_curve.png", dpi=100)
    except ImportError:
        pass
    print(f"metrics.json, overlays{' and pr_curve.png' if (out / 'pr_curve.png').exists() else ''} written to "
          f"{out.resolve()}")
    return 0
