"""pytest-benchmark speed suite: each estimator case beside its plain-PyTorch loop, alternated.

    pytest benchmarks/speed                          # CPU-sized cases (+ the papers' sizes on CUDA)
    pytest benchmarks/speed --speed-out benchmarks/results
    SKDEFECT_BENCH_PAPER=1 pytest benchmarks/speed   # the papers' sizes on the CPU too

pytest-benchmark times the estimator's rounds; the plain loop runs as each round's ``setup``, so the two
alternate (plain, estimator, plain, estimator ...). The row (``harness.make_row``) uses both sides' own
wall and CPU clocks; ``benchmark.extra_info`` carries the plain loop's figures and the ratio.
"""

from __future__ import annotations

import statistics
import time

import pytest
import torch

from benchmarks.speed import harness, scale

SMALL, PAPER, TINY = harness.cases("small"), harness.cases("paper"), harness.cases("tiny")


def _select(speed, suite: str) -> list:  # noqa: ANN001
    return TINY if suite == "tiny" else SMALL + PAPER


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "case" in metafunc.fixturenames:
        suite = metafunc.config.getoption("--speed-suite")
        cases = _select(None, suite)
        metafunc.parametrize("case", cases, ids=[c.label for c in cases])


def _clocked(fn, into: harness.Timings, device: torch.device):  # noqa: ANN001, ANN202
    def run() -> None:
        harness.synchronize(device)
        wall, cpu = time.perf_counter(), time.process_time()
        fn()
        harness.synchronize(device)
        into.cpu.append(time.process_time() - cpu)
        into.wall.append(time.perf_counter() - wall)

    return run


def test_speed(benchmark, case: harness.Case, speed) -> None:  # noqa: ANN001
    device = harness.pick_device("auto")
    if case in PAPER and device.type != "cuda" and not speed.paper:
        pytest.skip("the papers' sizes run on CUDA only (pass --speed-paper or SKDEFECT_BENCH_PAPER=1 to force)")
    data = harness.make_data(case)
    est_t, plain_t = harness.Timings(), harness.Timings()
    est = _clocked(harness.estimator_runner(case, data, device), est_t, device)
    plain = _clocked(harness.plain_runner(case, data, device), plain_t, device)
    warmup = 1

    def setup() -> None:  # the plain loop runs between the estimator's rounds
        plain()

    benchmark.pedantic(est, setup=setup, rounds=speed.repeats, warmup_rounds=warmup, iterations=1)
    for t in (est_t, plain_t):  # drop the warm-up rounds (absent when pytest-benchmark is disabled)
        extra = len(t.wall) - speed.repeats
        if extra > 0:
            del t.wall[:extra], t.cpu[:extra]
    row = harness.make_row(case, est_t, plain_t, harness.count_flops(case, device), device, speed.command)
    harness.check_row(row)
    speed.rows.append(row)
    benchmark.extra_info.update({k: row[k] for k in ("plain_torch_img_per_s", "img_per_s", "ratio",
                                                     "ratio_cpu_time", "tflops", "precision", "device")})
    assert row["ratio"] > 0 and statistics.median(est_t.wall) > 0


def test_predict_memmap_rss(speed) -> None:  # noqa: ANN001
    sizes = (300, 1200) if speed.suite == "tiny" else (5_000, 20_000)
    rows = scale.predict_memmap_rss("gan", sizes, device=str(harness.pick_device("auto")), threads=speed.threads,
                                    command=speed.command)
    speed.scale_rows += rows
    assert [r["n"] for r in rows] == list(sizes)
    assert all(r["peak_rss_mb"] > 0 and r["peak_anon_mb"] > 0 for r in rows)


def test_fit_scaling(speed) -> None:  # noqa: ANN001
    sizes = (32, 64, 96) if speed.suite == "tiny" else (256, 512, 1024)
    result = scale.fit_scaling("gan", sizes, device=str(harness.pick_device("auto")),
                               repeats=1 if speed.suite == "tiny" else 3, command=speed.command)
    speed.scale_rows += result["rows"]
    speed.linear_fits.append(result["fit"])
    assert [r["n"] for r in result["rows"]] == list(sizes)
