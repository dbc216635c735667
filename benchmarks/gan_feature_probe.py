"""Why does the GAN with labels stay below a small CNN on ELPV? Is the gap in the score or in the features?

    python -m benchmarks.gan_feature_probe            # ~12 min on one CPU core; needs `pip install skdefect[datasets]`

On the quality suite's ELPV split (64 px, seed 0) the default GAN reaches AUROC ≈ 0.79 where the small CNN of
``benchmarks/baselines.py`` reaches ≈ 0.91. This script fits the default GAN once on 80 % of the training split
and reads everything it learned against the other 20 % (an internal validation part: choices are read there,
never on the test split) and the test split:

- every built-in score (``recon``, ``patch``, ``memory``, ``patch_memory``);
- labelled-feature scores that use the training labels on the fitted networks' features: nearest-neighbour
  contrast (anomalies minus normals) and a linear probe (logistic regression, C chosen on the validation
  part) on the generator's bottleneck features, and on each discriminator's last hidden layer; the
  discriminators' own outputs;
- residual heads: does the reconstruction carry what a discriminative network cannot read from the image? The
  small CNN of ``benchmarks/baselines.py`` trained on the fitted GAN's residual ``|x − G(x)|``, on the image
  with the residual as a second channel, and on the image alone, for the same epochs on the same images (a
  learned score on the reconstruction, the way the two-stage detector's decision net reads its map);
- a prototype extension, the same GAN with a classification head on the pooled bottleneck trained with BCE on
  the labels at weight ``w_cls`` beside the paper's six terms (``--w-cls``; not part of the library).

``--parts`` runs the default GAN's part (its scores, probes and residual heads) or the prototype's alone; the
other part's results already in the JSON are kept.

If a linear probe on the GAN's features cannot approach the CNN, no score computed from them will: the gap is
in what the paper's objectives teach the networks. Writes ``results/gan_feature_probe.{json,md}``.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import torch

from benchmarks._common import device_name, run_and_write

RESULTS = Path(__file__).resolve().parent / "results"


def _pooled(z: torch.Tensor) -> torch.Tensor:
    return torch.cat([z.amax(dim=(2, 3)), z.mean(dim=(2, 3))], dim=1)


@contextlib.contextmanager
def _classification_head(w_cls: float) -> Iterator[None]:
    """The prototype: ``DualGANNet`` with a linear head on the pooled bottleneck, its BCE added (weight ``w_cls``)
    to every generator update. Patched for the duration of one fit; the library is unchanged."""
    from torch.nn import functional as F

    from skdefect.training import gan as tg

    base = tg.DualGANNet

    class HeadNet(base):  # type: ignore[misc, valid-type]
        def initialize_module(self) -> Any:
            super().initialize_module()
            device = next(self.module_.parameters()).device
            self.module_.cls_head = torch.nn.Linear(2 * self.module_.latent_channels, 1).to(device)
            return self

        def _normal_group(self, x, x_hat, z, normal):  # noqa: ANN001, ANN202
            return self._with_head(super()._normal_group(x, x_hat, z, normal), z)

        def _anomaly_group(self, x, x_hat):  # noqa: ANN001, ANN202
            return self._with_head(super()._anomaly_group(x, x_hat), self._z)

        def _with_head(self, group: dict, z: torch.Tensor) -> dict:
            logit = self.module_.cls_head(_pooled(z.float())).squeeze(1)
            group["g_cls"] = (w_cls, F.binary_cross_entropy_with_logits(logit, self._y))
            return group

        def train_step(self, batch: Any, **fit_params: Any) -> dict:
            x, extras = batch
            self._y = (extras["y"] >= 0.5).float() if isinstance(extras, dict) and "y" in extras else None
            module = self.module_
            forward = module.forward

            def remember(x_in: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
                rec, z = forward(x_in)
                self._z = z
                return rec, z

            module.forward = remember
            try:
                return super().train_step(batch, **fit_params)
            finally:
                del module.forward

    import skdefect.gan as gan_module

    gan_module.DualGANNet = HeadNet
    try:
        yield
    finally:
        gan_module.DualGANNet = base


def _split(seed: int) -> tuple[np.ndarray, ...]:
    from sklearn.model_selection import StratifiedShuffleSplit

    from skdefect.datasets import load_elpv

    X, y, _ = load_elpv(image_shape=(64, 64))
    tr, te = next(StratifiedShuffleSplit(1, test_size=0.3, random_state=seed).split(X, y))  # the suite's split
    fit, val = next(StratifiedShuffleSplit(1, test_size=0.2, random_state=100 + seed).split(X[tr], y[tr]))
    return X, y, tr[fit], tr[val], te


def _metrics(y: np.ndarray, rows: dict[str, np.ndarray], scores: dict[str, np.ndarray]) -> dict[str, float]:
    from skdefect.metrics import average_precision, roc_auc

    return {"valid_auroc": roc_auc(y[rows["valid"]], scores["valid"]),
            "test_auroc": roc_auc(y[rows["test"]], scores["test"]),
            "test_ap": average_precision(y[rows["test"]], scores["test"])}


def _probe(det: Any, X: np.ndarray, y: np.ndarray, rows: dict[str, np.ndarray], seed: int) -> dict[str, dict]:
    from sklearn.linear_model import LogisticRegression

    from skdefect import memory
    from skdefect.metrics import roc_auc

    net, out = det.net_, {}

    def forward(which: str, fn: Any) -> np.ndarray:
        images = det._check_predict_images(X[rows[which]])
        with torch.no_grad():
            return net.forward_into(det._source(images), fn, np.float64)

    chosen = det.anomaly_score_
    normals = np.flatnonzero(y[rows["fit"]] == 0)
    fit_images = det._check_predict_images(X[rows["fit"]])
    for score in ("recon", "patch", "memory", "patch_memory"):
        det._build_memory(score, fit_images, normals, seed)
        det.anomaly_score_ = score
        out[f"score {score}"] = _metrics(y, rows, {w: det.decision_function(X[rows[w]]) for w in ("valid", "test")})
    det.anomaly_score_ = chosen

    def linear_probe(name: str, fn: Any) -> None:
        F = {w: forward(w, fn) for w in ("fit", "valid", "test")}
        mu, sd = F["fit"].mean(0), F["fit"].std(0) + 1e-6
        Z = {w: (F[w] - mu) / sd for w in F}
        fits = {C: LogisticRegression(C=C, max_iter=5000).fit(Z["fit"], y[rows["fit"]]) for C in (1e-3, 1e-2, 0.1, 1)}
        best = max(fits, key=lambda C: roc_auc(y[rows["valid"]], fits[C].decision_function(Z["valid"])))
        out[f"linear probe: {name} (C={best:g})"] = _metrics(
            y, rows, {w: fits[best].decision_function(Z[w]) for w in ("valid", "test")})

    generator = net.module_.eval()
    image_embedding = lambda x: memory.image_embedding(memory.generator_features(generator, x))  # noqa: E731
    E = {w: forward(w, image_embedding) for w in ("fit", "valid", "test")}
    anomalies, normal_rows = E["fit"][y[rows["fit"]] == 1], E["fit"][y[rows["fit"]] == 0]

    def contrast(e: np.ndarray, k: int = 5) -> np.ndarray:
        return np.sort(e @ anomalies.T, 1)[:, -k:].mean(1) - np.sort(e @ normal_rows.T, 1)[:, -k:].mean(1)

    out["5-NN contrast, generator features"] = _metrics(y, rows, {w: contrast(E[w]) for w in ("valid", "test")})
    linear_probe("generator bottleneck", lambda x: _pooled(generator.encode(x).float()))
    for name in ("disc_normal", "disc_anomalous"):
        disc = getattr(net, name + "_").eval()
        raw = {w: forward(w, lambda x, d=disc: d(x).float().mean(dim=(1, 2, 3))) for w in ("valid", "test")}
        sign = 1.0 if roc_auc(y[rows["valid"]], raw["valid"]) >= 0.5 else -1.0  # direction from validation
        out[f"{name}(x), mean of the patch map (sign {sign:+.0f})"] = _metrics(
            y, rows, {w: sign * raw[w] for w in raw})

        def hidden(x: torch.Tensor, d: Any = disc) -> torch.Tensor:
            kept: dict[str, torch.Tensor] = {}
            handle = d.layer4.register_forward_hook(lambda m, i, o: kept.__setitem__("h", o))
            try:
                d(x)
            finally:
                handle.remove()
            return _pooled(kept["h"].float())

        linear_probe(f"{name} last hidden layer", hidden)
    return out


def _residual_heads(det: Any, X: np.ndarray, y: np.ndarray, rows: dict[str, np.ndarray], seed: int,
                    epochs: int) -> dict[str, dict]:
    """The small CNN baseline trained for ``epochs`` on the fit rows with three inputs: the residual
    ``|x − G(x)|`` of the fitted generator, the image and the residual as two channels, the image alone. Every
    channel is standardised with its mean and spread over the fit rows."""
    from benchmarks.baselines import SmallCNN, as_nchw

    generator = det.net_.module_.eval()
    with torch.no_grad():
        rec = det.net_.forward_into(det._source(det._check_predict_images(X)),
                                    lambda x: generator(x)[0].float(), np.float32)
    image = as_nchw(X)
    channels = {"image": image, "residual": np.abs(image - rec)}
    channels = {k: (v - v[rows["fit"]].mean()) / v[rows["fit"]].std() for k, v in channels.items()}
    out = {}
    for name, keys in ((f"small CNN on the residual abs(x − G(x)) ({epochs} epochs)", ("residual",)),
                       (f"small CNN on x and abs(x − G(x)) ({epochs} epochs)", ("image", "residual")),
                       (f"small CNN on x alone ({epochs} epochs)", ("image",))):
        inputs = np.moveaxis(np.concatenate([channels[k] for k in keys], axis=1), 1, -1).astype(np.float32)
        cnn = SmallCNN(epochs=epochs, random_state=seed).fit(inputs[rows["fit"]], y[rows["fit"]])
        out[name] = _metrics(y, rows, {w: cnn.decision_function(inputs[rows[w]]) for w in ("valid", "test")})
    return out


PARTS = ("default", "head")


def run(seed: int, w_cls: float, on_row: Any = None, parts: tuple[str, ...] = PARTS, head_epochs: int = 40,
        previous: dict | None = None, **overrides: Any) -> dict:
    """The fits of ``parts`` and their probes (``previous``: an earlier result of the same seed, whose other
    parts are kept); ``overrides`` change the detector's parameters (tests use a tiny fit)."""
    from skdefect import DualDiscriminatorGANDetector

    X, y, fit, valid, test = _split(seed)
    rows = {"fit": fit, "valid": valid, "test": test}
    kept = {}
    if previous and previous.get("seed") == seed:  # runs of an older file carry the file's command
        kept = {name: {"command": previous.get("command", ""), **info} for name, info in previous["runs"].items()}
    result: dict[str, Any] = {
        "device": device_name(), "seed": seed,
        "split": {"fit": len(fit), "valid": len(valid), "test": len(test), "side": 64}, "runs": dict(kept),
    }
    command = f"python -m benchmarks.gan_feature_probe --seed {seed} --w-cls {w_cls:g} --parts {' '.join(parts)}"
    from benchmarks.quality import method_params

    params = {**method_params("elpv"), **overrides}  # the suite's ELPV configuration
    for part, name, patch in (
        ("default", "default GAN", contextlib.nullcontext()),
        ("head", f"GAN + classification head (w_cls={w_cls:g}, prototype)", _classification_head(w_cls)),
    ):
        if part not in parts:
            continue
        start = time.process_time()
        with patch:
            det = DualDiscriminatorGANDetector(random_state=seed, device="cpu", **params).fit(X[fit], y[fit])
        run_info: dict[str, Any] = {"command": command, "fit_cpu_s": round(time.process_time() - start, 1),
                                    "epochs": len(det.net_.history), "chosen_score": det.anomaly_score_}
        run_info["scores"] = _probe(det, X, y, rows, seed)
        if part == "default":
            run_info["scores"].update(_residual_heads(det, X, y, rows, seed, head_epochs))
        head = getattr(det.net_.module_, "cls_head", None)
        if head is not None:
            g = det.net_.module_

            def logits(which: str, det: Any = det, g: Any = g, head: Any = head) -> np.ndarray:
                images = det._check_predict_images(X[rows[which]])
                with torch.no_grad():
                    return det.net_.forward_into(det._source(images),
                                                 lambda x: head(_pooled(g.encode(x).float())).squeeze(1), np.float64)

            run_info["scores"]["classification head logit"] = _metrics(
                y, rows, {w: logits(w) for w in ("valid", "test")})
        result["runs"][name] = run_info
        if on_row is not None:
            on_row(result)
    return result


def table(result: dict) -> str:
    lines = [
        "# What the GAN's networks know about ELPV's classes",
        "",
        f"Written on {result['device']}, one torch thread (each part's command below). ELPV 64 px, the quality "
        f"suite's split (seed {result['seed']}); the GAN trains on {result['split']['fit']} images, choices "
        f"(probe C, a sign) are read on {result['split']['valid']} held-out training images, the test split has "
        f"{result['split']['test']}. Same split, small CNN baseline: see quality_full.md (ELPV AUROC 0.913).",
        "",
    ]
    for name, run_info in result["runs"].items():
        lines += [f"## {name}", "", f"`{run_info['command']}`", "",
                  f"fit {run_info['fit_cpu_s']} CPU s, {run_info['epochs']} epochs; score chosen by the detector: "
                  f"`{run_info['chosen_score']}`", "",
                  "| score or probe | valid AUROC | test AUROC | test AP |", "|---|---|---|---|"]
        for score, m in run_info["scores"].items():
            lines.append(f"| {score} | {m['valid_auroc']:.3f} | {m['test_auroc']:.3f} | {m['test_ap']:.3f} |")
        lines.append("")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--w-cls", type=float, default=1.0, help="weight of the prototype's classification loss")
    parser.add_argument("--parts", nargs="+", choices=PARTS, default=list(PARTS),
                        help="the default GAN (scores, probes, residual heads) and/or the head prototype")
    parser.add_argument("--head-epochs", type=int, default=40, help="epochs of the residual heads' small CNNs")
    parser.add_argument("--out", default=str(RESULTS))
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    path = Path(args.out) / "gan_feature_probe.json"
    previous = json.loads(path.read_text()) if path.exists() else None
    return run_and_write(
        lambda on_row: run(args.seed, args.w_cls, on_row, tuple(args.parts), args.head_epochs, previous),
        table, args.out, "gan_feature_probe")


if __name__ == "__main__":
    main()
