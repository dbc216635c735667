"""The command line: the demo writes metrics and non-blank overlays; --help reads well."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image

import skdefect
from skdefect.cli import build_parser, main


def test_public_names():
    from skdefect import ConcentratedTwoStageDetector, DualDiscriminatorGANDetector

    assert ConcentratedTwoStageDetector.__module__ == "skdefect.two_stage"
    assert DualDiscriminatorGANDetector.__module__ == "skdefect.gan"
    with pytest.raises(AttributeError):
        skdefect.NoSuchThing  # noqa: B018


def test_help_lists_commands(capsys):
    with pytest.raises(SystemExit):
        build_parser().parse_args(["--help"])
    out = capsys.readouterr().out
    assert "demo" in out and "plugins" in out


def test_demo_trains_both_detectors_and_writes_outputs(tmp_path, capsys, monkeypatch):
    # a small run of the real demo: fewer images than the default, same code path
    assert main(["demo", "--n-samples", "80", "--image-shape", "32", "--out", str(tmp_path),
                 "--device", "cpu"]) == 0
    out = capsys.readouterr().out
    assert "ConcentratedTwoStageDetector" in out and "DualDiscriminatorGANDetector" in out
    assert "logistic regression (baseline)" in out and "chance is" in out
    assert "two-stage: segmentation stage, epoch 1" in out  # progress while training
    metrics = json.loads((tmp_path / "metrics.json").read_text())
    for name in ("ConcentratedTwoStageDetector", "DualDiscriminatorGANDetector", "logistic regression (baseline)"):
        assert 0.0 <= metrics[name]["AP"] <= 1.0
        assert isinstance(metrics[name]["meaning"], str)
    pngs = sorted(tmp_path.glob("*_y*.png"))
    assert len(pngs) == 16
    img = np.asarray(Image.open(pngs[0]))
    # readable size (192 px wide, a caption strip below the image), not blank
    assert img.shape[1:] == (192, 3) and img.shape[0] > 192 and img.std() > 5
    assert (tmp_path / "pr_curve.png").exists()


def test_demo_calls_a_detector_at_chance_what_it_is():
    from skdefect.demo import _verdict

    assert "at chance" in _verdict(0.52, 0.5, 0.6)
    assert "beats the baseline" in _verdict(0.9, 0.5, 0.6)
    assert "below the baseline" in _verdict(0.6, 0.5, 0.8)
    # a clear win needs 0.10 AP; an AUROC near 0.5 is chance whatever the AP
    assert "slightly above the baseline (+0.06 AP, AUROC 0.60)" in _verdict(0.58, 0.5, 0.52, auroc=0.6)
    assert "at chance" in _verdict(0.6, 0.5, 0.52, auroc=0.54)
