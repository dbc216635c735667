"""The Examples sections of the public API run as written (doctest)."""

from __future__ import annotations

import doctest
import importlib

import pytest

MODULES = ["skdefect.two_stage", "skdefect.gan", "skdefect.metrics", "skdefect.viz", "skdefect.losses"]


@pytest.mark.parametrize("name", MODULES)
def test_examples_run(name):
    module = importlib.import_module(name)
    finder = doctest.DocTestFinder(exclude_empty=True)
    runner = doctest.DocTestRunner(optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    tests = [t for t in finder.find(module) if t.examples]
    for test in tests:
        runner.run(test)
    result = runner.summarize(verbose=False)
    assert result.failed == 0, f"{result.failed} doctest example(s) of {name} failed (output above)"
    if name in ("skdefect.two_stage", "skdefect.gan"):
        assert result.attempted > 0  # the estimators have Examples
