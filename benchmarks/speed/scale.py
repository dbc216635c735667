"""Scale checks: ``predict`` over an ``np.memmap`` with peak memory independent of n, ``fit`` time linear in n.

``predict_memmap_rss`` fits a small detector, writes n_max uint8 images to a ``.npy`` file in a temporary
folder and, for each n, starts a fresh Python process (this file, ``child`` mode) that opens the first n
images with ``np.load(mmap_mode="r")`` and calls ``predict``. The child reports its resident memory
before ``predict`` and its peak during it: ``VmHWM`` (reset just before ``predict`` through
``/proc/self/clear_refs``; it includes the memmap's file pages the process touched, which the kernel may
drop at will) and the peak anonymous memory (``RssAnon`` sampled every millisecond: the process's own
allocations; a sampled peak, so a short spike can be missed) and the peak file-backed memory (``RssFile``,
the same way: shared libraries plus the memmap pages read so far). Linux only (it reads ``/proc``).

``fit_scaling`` times ``fit`` at several n (repetitions alternated across sizes, medians) and fits
``seconds = a + b * n`` by least squares.
"""

from __future__ import annotations

import argparse
import json
import os
import pickle
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[2]  # the child runs as ``python -m benchmarks.speed.scale`` from here

SCALE_ESTIMATORS = {
    "gan": ("DualDiscriminatorGANDetector", {"width": 0.5, "epochs": 1, "batch_size": 64, "patch_size": 16,
                                             "patch_stride": 8, "top_n": 5, "sampler": "uniform"}),
    "two_stage": ("ConcentratedTwoStageDetector", {"width": 0.25, "seg_epochs": 1, "dec_epochs": 1, "batch_size": 16,
                                                   "augment": False, "sampler": "uniform"}),
}


def _status_kb(field: str) -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise KeyError(field)


def make_estimator(name: str, device: str, **overrides: Any) -> Any:
    import skdefect

    cls_name, params = SCALE_ESTIMATORS[name]
    return getattr(skdefect, cls_name)(**{**params, **overrides}, device=device, random_state=0)


def make_images(n: int, image_shape: Sequence[int], seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Noise images (n, H, W, C) uint8, a quarter labelled defective, each with a square mask."""
    h, w, c = image_shape
    rng = np.random.RandomState(seed)
    X = rng.randint(0, 256, size=(n, h, w, c), dtype=np.uint8)
    y = (np.arange(n) % 4 == 3).astype(np.int64)
    masks = np.zeros((n, h, w), dtype=bool)
    masks[y == 1, h // 4 : h // 2, w // 4 : w // 2] = True
    return X, y, masks


def fit_estimator(det: Any, X: np.ndarray, y: np.ndarray, masks: np.ndarray) -> Any:
    if type(det).__name__ == "ConcentratedTwoStageDetector":
        return det.fit(X, y, masks=masks)
    return det.fit(X, y)


def _child(model: str, data: str, n: int, threads: int) -> dict:
    import torch

    torch.set_num_threads(threads)
    with open(model, "rb") as f:
        det = pickle.load(f)
    X = np.load(data, mmap_mode="r")[:n]
    det.predict(X[:8])  # warm up lazily initialised state
    rss_before, anon_before = _status_kb("VmRSS"), _status_kb("RssAnon")
    peaks = {"RssAnon": anon_before, "RssFile": _status_kb("RssFile")}
    done = threading.Event()

    def poll() -> None:
        while not done.is_set():
            for key in peaks:
                peaks[key] = max(peaks[key], _status_kb(key))
            time.sleep(0.001)

    reset = True
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")  # reset VmHWM to the current RSS
    except OSError:
        reset = False
    thread = threading.Thread(target=poll, daemon=True)
    thread.start()
    start = time.perf_counter()
    labels = det.predict(X)
    seconds = time.perf_counter() - start
    done.set()
    thread.join()
    assert isinstance(X, np.memmap) and labels.shape == (n,)
    return {
        "n": n,
        "seconds": seconds,
        "rss_before_mb": rss_before / 1024,
        "peak_rss_mb": _status_kb("VmHWM") / 1024,
        "peak_rss_reset": reset,
        "peak_anon_mb": peaks["RssAnon"] / 1024,
        "anon_before_mb": anon_before / 1024,
        "peak_file_mb": peaks["RssFile"] / 1024,
    }


def predict_memmap_rss(estimator: str = "gan", sizes: Sequence[int] = (5_000, 20_000),
                       image_shape: Sequence[int] = (32, 32, 1), device: str = "cpu", threads: int = 1,
                       n_fit: int = 64, command: str = "") -> list[dict]:
    """Peak memory of ``predict`` on memmaps of each size, each in a fresh process (see the module docstring)."""
    import torch

    with tempfile.TemporaryDirectory(prefix="skdefect-memmap-") as tmp:
        X, y, masks = make_images(n_fit, image_shape)
        det = fit_estimator(make_estimator(estimator, device), X, y, masks)
        model = os.path.join(tmp, "model.pkl")
        with open(model, "wb") as f:
            pickle.dump(det, f)
        data = os.path.join(tmp, "images.npy")
        mm = np.lib.format.open_memmap(data, mode="w+", dtype=np.uint8, shape=(max(sizes), *image_shape))
        rng = np.random.RandomState(1)
        for start in range(0, len(mm), 4096):
            stop = min(start + 4096, len(mm))
            mm[start:stop] = rng.randint(0, 256, size=(stop - start, *image_shape), dtype=np.uint8)
        mm.flush()
        del mm
        rows = []
        env = {**os.environ, "OMP_NUM_THREADS": str(threads)}
        for n in sizes:
            out = subprocess.run(
                [sys.executable, "-m", "benchmarks.speed.scale", "child", "--model", model, "--data", data,
                 "--n", str(n), "--threads", str(threads)],
                capture_output=True, text=True, env=env, check=False, cwd=ROOT,
            )
            if out.returncode != 0:
                raise RuntimeError(f"memmap child (n={n}) failed:\n{out.stderr[-3000:]}")
            child = json.loads(out.stdout.strip().splitlines()[-1])
            h, w, c = image_shape
            rows.append({
                "kind": "predict_memmap_rss",
                "estimator": type(det).__name__,
                "phase": "predict",
                "n": n,
                "input_shape": [c, h, w],
                "batch_size": det.batch_size,
                "file_mb": n * h * w * c / 2**20,
                "seconds": child["seconds"],
                "img_per_s": n / child["seconds"],
                "rss_before_mb": child["rss_before_mb"],
                "peak_rss_mb": child["peak_rss_mb"],
                "peak_rss_reset": child["peak_rss_reset"],
                "anon_before_mb": child["anon_before_mb"],
                "peak_anon_mb": child["peak_anon_mb"],
                "peak_file_mb": child["peak_file_mb"],
                "device": _device(device),
                "torch": torch.__version__,
                "command": command,
            })
    return rows


def _device(device: str) -> str:
    import torch

    from benchmarks._common import device_name

    return device_name() if device == "cpu" else torch.cuda.get_device_name(torch.device(device))


def fit_scaling(estimator: str = "gan", sizes: Sequence[int] = (256, 512, 1024),
                image_shape: Sequence[int] = (32, 32, 1), device: str = "cpu", repeats: int = 3,
                command: str = "") -> dict:
    """``fit`` seconds at each size (medians of repetitions alternated across sizes) and a line through them."""
    import torch

    X, y, masks = make_images(max(sizes), image_shape)
    fit_estimator(make_estimator(estimator, device), X[:64], y[:64], masks[:64])  # warm-up
    times: dict[int, list[float]] = {n: [] for n in sizes}
    for r in range(repeats):
        for n in (sizes if r % 2 == 0 else list(reversed(sizes))):
            start = time.perf_counter()
            fit_estimator(make_estimator(estimator, device), X[:n], y[:n], masks[:n])
            times[n].append(time.perf_counter() - start)
    med = np.array([statistics.median(times[n]) for n in sizes])
    n_arr = np.asarray(sizes, dtype=np.float64)
    slope, intercept = np.polyfit(n_arr, med, 1)
    pred = intercept + slope * n_arr
    r2 = 1.0 - float(((med - pred) ** 2).sum() / max(((med - med.mean()) ** 2).sum(), 1e-300))
    h, w, c = image_shape
    cls_name, params = SCALE_ESTIMATORS[estimator]
    rows = [{
        "kind": "fit_scaling",
        "estimator": cls_name,
        "phase": "fit",
        "n": n,
        "input_shape": [c, h, w],
        "params": params,
        "seconds": float(m),
        "ms_per_image": float(m / n * 1000),
        "seconds_all": times[n],
        "device": _device(device),
        "torch": torch.__version__,
        "command": command,
    } for n, m in zip(sizes, med, strict=True)]
    return {"rows": rows, "fit": {"estimator": cls_name, "intercept_s": float(intercept),
                                  "ms_per_image": float(slope * 1000), "r2": r2}}


def table(rows: Sequence[dict]) -> str:
    """Markdown tables of scale rows (memmap RSS and fit scaling)."""
    out = []
    mem = [r for r in rows if r["kind"] == "predict_memmap_rss"]
    if mem:
        out += ["| estimator | input | n images | memmap MB | RSS before MB | peak RSS MB | peak anon MB | "
                "peak file MB | predict s | img/s | device |", "|---|---|---|---|---|---|---|---|---|---|---|"]
        out += [
            f"| {r['estimator']} | {'x'.join(map(str, r['input_shape']))} | {r['n']:,} | {r['file_mb']:.1f} | "
            f"{r['rss_before_mb']:.1f} | {r['peak_rss_mb']:.1f} | {r['peak_anon_mb']:.1f} | {r['peak_file_mb']:.1f} | "
            f"{r['seconds']:.2f} | "
            f"{r['img_per_s']:,.0f} | {r['device']} |" for r in mem
        ]
    fit = [r for r in rows if r["kind"] == "fit_scaling"]
    if fit:
        out += ["" if out else None, "| estimator | input | n images | fit s | ms per image | device |",
                "|---|---|---|---|---|---|"]
        out += [
            f"| {r['estimator']} | {'x'.join(map(str, r['input_shape']))} | {r['n']:,} | {r['seconds']:.2f} | "
            f"{r['ms_per_image']:.2f} | {r['device']} |" for r in fit
        ]
    return "\n".join(line for line in out if line is not None) + "\n"


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="mode", required=True)
    child = sub.add_parser("child", help="internal: predict on a memmap and report memory as JSON")
    child.add_argument("--model", required=True)
    child.add_argument("--data", required=True)
    child.add_argument("--n", type=int, required=True)
    child.add_argument("--threads", type=int, default=1)
    args = parser.parse_args(argv)
    if args.mode == "child":
        print(json.dumps(_child(args.model, args.data, args.n, args.threads)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
