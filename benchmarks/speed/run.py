"""Run the speed suite without pytest and write its results.

    python -m benchmarks.speed.run                       # "small" on the CPU, "paper" on a CUDA GPU
    python -m benchmarks.speed.run --suite small --scale # also the memmap-RSS and fit-scaling checks
    python -m benchmarks.speed.run --suite paper         # the papers' sizes (slow without a GPU)
    python -m benchmarks.speed.run --compile             # estimators with compile=True vs the eager loop

Writes ``speed_<suite>_<cpu|cuda>[_compiled].json`` and ``.md`` (and ``speed_scale_<cpu|cuda>.json`` / ``.md`` with
``--scale``) into ``--out`` (default ``benchmarks/results``). What is timed, and how, is described in
``harness.py``; the same cases run under pytest-benchmark with ``pytest benchmarks/speed``.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
import time
from collections.abc import Sequence
from pathlib import Path

import torch

from benchmarks.speed import harness, scale

RESULTS = Path(__file__).resolve().parents[1] / "results"


def _meta(command: str, device: torch.device, threads: int | None) -> dict:
    import skdefect

    return {
        "command": command,
        "device": harness.device_name() if device.type == "cpu" else torch.cuda.get_device_name(device),
        "torch": torch.__version__,
        "skdefect": skdefect.__version__,
        "cpu_threads": threads,
    }


def run_speed(suite: str, repeats: int, device: torch.device, command: str, only: Sequence[str] = (),
              threads: int | None = None, log: bool = True, compile: bool = False) -> dict:
    """Measure every case of ``suite`` (those whose label contains one of ``only``, when given); with
    ``compile``, the estimators run with ``compile=True`` (compilation happens in the warm-up round)."""
    rows = []
    for case in harness.cases(suite):
        case = dataclasses.replace(case, compile=compile)
        if only and not any(s in case.label for s in only):
            continue
        start = time.perf_counter()
        row = harness.run_case(case, repeats, device, command)
        harness.check_row(row)
        rows.append(row)
        if log:
            print(f"{case.label}: {row['img_per_s']:,.1f} img/s, plain torch {row['plain_torch_img_per_s']:,.1f}, "
                  f"ratio {row['ratio']:.3f} (CPU-time ratio {row['ratio_cpu_time']:.3f}), "
                  f"{row['tflops']:.4f} TFLOP/s [{time.perf_counter() - start:.0f} s]", flush=True)
    return {"benchmark": "speed", "suite": suite, "repeats": repeats, **_meta(command, device, threads),
            "rows": rows}


def run_scale(estimators: Sequence[str], rss_sizes: Sequence[int], fit_sizes: Sequence[int], device: torch.device,
              command: str, repeats: int = 3, threads: int = 1, log: bool = True) -> dict:
    """Memmap peak-RSS rows and fit-scaling rows for each estimator."""
    rows, fits = [], []
    for name in estimators:
        for row in scale.predict_memmap_rss(name, rss_sizes, device=str(device), threads=threads, command=command):
            rows.append(row)
            if log:
                print(f"memmap predict {row['estimator']} n={row['n']:,}: peak RSS {row['peak_rss_mb']:.1f} MB, "
                      f"peak anon {row['peak_anon_mb']:.1f} MB, {row['img_per_s']:,.0f} img/s", flush=True)
        result = scale.fit_scaling(name, fit_sizes, device=str(device), repeats=repeats, command=command)
        rows += result["rows"]
        fits.append(result["fit"])
        if log:
            per = ", ".join(f"n={r['n']}: {r['ms_per_image']:.2f}" for r in result["rows"])
            fit = result["fit"]
            print(f"fit scaling {fit['estimator']}: ms/image {per}; line {fit['intercept_s']:.2f} s "
                  f"+ {fit['ms_per_image']:.2f} ms x n (R^2 {fit['r2']:.4f})", flush=True)
    return {"benchmark": "speed_scale", **_meta(command, device, threads), "linear_fits": fits, "rows": rows}


def scale_table(rows: Sequence[dict]) -> str:
    return scale.table(rows)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="skdefect speed suite: estimator vs plain PyTorch")
    parser.add_argument("--suite", choices=("small", "paper", "tiny"), default=None,
                        help="default: 'paper' with CUDA, else 'small'")
    parser.add_argument("--repeats", type=int, default=5, help="alternated repetitions per case (medians)")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads (CPU runs)")
    parser.add_argument("--only", nargs="*", default=(), help="run the cases whose label contains one of these")
    parser.add_argument("--compile", action="store_true",
                        help="estimators with compile=True (torch.compile) against the eager plain loop")
    parser.add_argument("--no-speed", action="store_true", help="skip the speed cases")
    parser.add_argument("--scale", action="store_true", help="also run the memmap-RSS and fit-scaling checks")
    parser.add_argument("--scale-estimators", nargs="*", default=("gan", "two_stage"), choices=("gan", "two_stage"))
    parser.add_argument("--rss-sizes", nargs="*", type=int, default=(5_000, 20_000))
    parser.add_argument("--fit-sizes", nargs="*", type=int, default=(256, 512, 1024))
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args(argv)

    device = harness.pick_device(args.device)
    threads = None
    if device.type == "cpu":
        torch.set_num_threads(args.threads)
        threads = args.threads
    suite = args.suite or ("paper" if device.type == "cuda" else "small")
    command = "python -m benchmarks.speed.run " + " ".join(sys.argv[1:] if argv is None else argv)
    kind = device.type
    if not args.no_speed:
        result = run_speed(suite, args.repeats, device, command.strip(), args.only, threads, compile=args.compile)
        path = harness.write_results(result, args.out, f"speed_{suite}_{kind}" + ("_compiled" if args.compile else ""))
        print(f"wrote {path} and its .md")
    if args.scale:
        result = run_scale(args.scale_estimators, args.rss_sizes, args.fit_sizes, device, command.strip(),
                           threads=args.threads)
        path = harness.write_results(result, args.out, f"speed_scale_{kind}", render=scale_table)
        print(f"wrote {path} and its .md")
    return 0


if __name__ == "__main__":
    sys.exit(main())
