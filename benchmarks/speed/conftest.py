"""Options of the pytest-benchmark speed suite (``pytest benchmarks/speed``).

``--speed-suite default`` runs the CPU-sized cases and the papers' sizes (those only on CUDA, unless
``--speed-paper`` or ``SKDEFECT_BENCH_PAPER=1``) and the scale checks; ``--speed-suite tiny`` runs tiny
versions of everything (the smoke test does). ``--speed-out DIR`` writes the rows as JSON + markdown
(``speed_pytest_<cpu|cuda>.json`` and ``speed_scale_pytest_<cpu|cuda>.json``).
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("skdefect speed")
    group.addoption("--speed-suite", choices=("default", "tiny"), default="default")
    group.addoption("--speed-paper", action="store_true", default=False,
                    help="run the papers' sizes without CUDA too (slow)")
    group.addoption("--speed-repeats", type=int, default=5, help="rounds per case (estimator and plain loop)")
    group.addoption("--speed-threads", type=int, default=1, help="torch CPU threads")
    group.addoption("--speed-out", default=None, help="folder for the JSON + markdown results")


class SpeedSession:
    def __init__(self, config: pytest.Config) -> None:
        self.suite = config.getoption("--speed-suite")
        self.paper = config.getoption("--speed-paper") or os.environ.get("SKDEFECT_BENCH_PAPER") == "1"
        self.repeats = config.getoption("--speed-repeats")
        self.threads = config.getoption("--speed-threads")
        self.out = config.getoption("--speed-out")
        self.command = "pytest " + " ".join(config.invocation_params.args)
        self.rows: list[dict] = []
        self.scale_rows: list[dict] = []
        self.linear_fits: list[dict] = []


@pytest.fixture(scope="session")
def speed(request: pytest.FixtureRequest) -> SpeedSession:
    import torch

    session = request.config._skdefect_speed
    if not torch.cuda.is_available():
        torch.set_num_threads(session.threads)
    return session


def pytest_configure(config: pytest.Config) -> None:
    config._skdefect_speed = SpeedSession(config)


def pytest_sessionfinish(session: pytest.Session) -> None:
    speed = getattr(session.config, "_skdefect_speed", None)
    if speed is None or not speed.out or not (speed.rows or speed.scale_rows):
        return
    import torch

    from benchmarks.speed import harness, run

    device = harness.pick_device("auto")
    kind = device.type
    threads = speed.threads if kind == "cpu" else None
    meta = run._meta(speed.command, device, threads)
    out = Path(speed.out)
    if speed.rows:
        harness.write_results({"benchmark": "speed", "suite": f"pytest-{speed.suite}", "repeats": speed.repeats,
                               **meta, "rows": speed.rows}, out, f"speed_pytest_{kind}")
    if speed.scale_rows:
        harness.write_results({"benchmark": "speed_scale", **meta, "linear_fits": speed.linear_fits,
                               "rows": speed.scale_rows}, out, f"speed_scale_pytest_{kind}", render=run.scale_table)
    del torch
