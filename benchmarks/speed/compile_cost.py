"""What ``compile=True`` costs before it pays: the first fit against a second one, in a fresh process.

    python -m benchmarks.speed.compile_cost            # the "small" suite's fit cases, on the CPU

Each fit case of the suite runs eager twice, then compiled twice, on a fresh estimator each time. The
first compiled fit carries the compilation (TorchInductor's on-disk cache is pointed at an empty
temporary folder, so nothing is reused from an earlier run); the second reuses the compiled code, as
every later fit in the same process does (a new estimator of the same network does not recompile).
Writes ``compile_cost_<cpu|cuda>.json`` and ``.md`` into ``--out`` (default ``benchmarks/results``).
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

from benchmarks.speed import harness, run


def first_and_second_fit(case: harness.Case, device) -> dict:  # noqa: ANN001
    X, y, masks = harness.make_data(case)
    row = {"case": case.label, "estimator": case.estimator, "stage": case.stage,
           "input_shape": list(case.input_shape), "batch_size": case.batch_size, "n_images": case.n_images,
           "epochs": case.epochs}
    for compiled in (False, True):
        seconds = []
        for _ in range(2):
            est = harness.make_estimator(dataclasses.replace(case, compile=compiled), device)
            harness.synchronize(device)
            start = time.perf_counter()
            est.fit(X, y, masks=masks) if case.estimator == harness.TWO_STAGE else est.fit(X, y)
            harness.synchronize(device)
            seconds.append(time.perf_counter() - start)
        row["compiled_s" if compiled else "eager_s"] = seconds
    row["compile_overhead_s"] = row["compiled_s"][0] - row["compiled_s"][1]
    return row


def table(rows: Sequence[dict]) -> str:
    lines = ["| case | eager fit s (1st, 2nd) | compiled fit s (1st, 2nd) | compilation s |", "|---|---|---|---|"]
    for r in rows:
        e, c = r["eager_s"], r["compiled_s"]
        lines.append(f"| {r['case']} | {e[0]:.2f}, {e[1]:.2f} | {c[0]:.2f}, {c[1]:.2f} | "
                     f"{r['compile_overhead_s']:.1f} |")
    return "\n".join(lines) + "\n"


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--suite", choices=("small", "paper", "tiny"), default="small")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--out", type=Path, default=run.RESULTS)
    args = parser.parse_args(argv)
    os.environ["TORCHINDUCTOR_CACHE_DIR"] = tempfile.mkdtemp(prefix="skdefect-inductor-")  # a cold cache
    import torch

    device = harness.pick_device(args.device)
    threads = None
    if device.type == "cpu":
        torch.set_num_threads(args.threads)
        threads = args.threads
    command = "python -m benchmarks.speed.compile_cost " + " ".join(sys.argv[1:] if argv is None else argv)
    rows = []
    for case in harness.cases(args.suite):
        if case.phase == "fit":
            rows.append(first_and_second_fit(case, device))
            print(rows[-1], flush=True)
    result = {"benchmark": "compile_cost", "suite": args.suite, **run._meta(command.strip(), device, threads),
              "rows": rows}
    path = harness.write_results(result, args.out, f"compile_cost_{device.type}", render=table)
    print(f"wrote {path} and its .md")
    return 0


if __name__ == "__main__":
    sys.exit(main())
