"""The command line: fit -> evaluate -> predict on a tiny image folder; bad arguments exit 2 with a clear message."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from sklearn.metrics import average_precision_score, roc_auc_score

import skdefect
from skdefect.cli import build_parser, main, parse_params
from skdefect.datasets import load_image_folder, make_surface_defects

N_IMAGES = 24
SIDE = 32


def _write_folder(root: Path, with_masks: bool = True) -> Path:
    X, y, masks = make_surface_defects(n_samples=N_IMAGES, image_shape=(SIDE, SIDE), random_state=0)
    (root / "img").mkdir(parents=True)
    (root / "mask").mkdir()
    with open(root / "manifest.csv", "w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(["image", "mask", "label"] if with_masks else ["image", "label"])
        for i in range(N_IMAGES):
            Image.fromarray(X[i]).save(root / "img" / f"{i:03d}.png")
            row = [f"img/{i:03d}.png"]
            if with_masks:
                Image.fromarray(masks[i].astype(np.uint8) * 255).save(root / "mask" / f"{i:03d}.png")
                row.append(f"mask/{i:03d}.png")
            writer.writerow([*row, int(y[i])])
    return root


@pytest.fixture(scope="module")
def folder(tmp_path_factory) -> Path:
    return _write_folder(tmp_path_factory.mktemp("data"))


@pytest.fixture(scope="module")
def model(folder, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("model") / "sub" / "two_stage.skdefect"
    status = main(["fit", str(folder), "--detector", "two-stage", "--out", str(out), "--image-shape", str(SIDE),
                   "--epochs", "2", "--param", "width=0.25", "batch_size=8", "--device", "cpu"])
    assert status == 0
    return out


def _not_blank(path: Path) -> None:
    img = np.asarray(Image.open(path).convert("RGB")).astype(float)
    assert img.std() > 5, f"{path} is blank"


def _exit_2(argv: list[str], capsys) -> str:
    with pytest.raises(SystemExit) as info:
        main(argv)
    assert info.value.code == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err
    return err


# --------------------------------------------------------------------------------------------------------------
# fit -> evaluate -> predict
# --------------------------------------------------------------------------------------------------------------
def test_fit_writes_a_loadable_model_with_the_asked_settings(model):
    det = skdefect.load(model)
    assert type(det).__name__ == "ConcentratedTwoStageDetector"
    assert det.width == 0.25 and det.seg_epochs == 2 and det.dec_epochs == 2 and det.batch_size == 8
    assert det.random_state == 0 and tuple(det.input_shape_)[:2] == (SIDE, SIDE)
    assert len(det.net_.history) == 4  # 2 segmentation + 2 decision epochs


def test_evaluate_writes_metrics_that_match_the_model(model, folder, tmp_path, capsys):
    out = tmp_path / "eval"
    assert main(["evaluate", str(model), str(folder), "--out", str(out), "--n-overlays", "5", "--device", "cpu"]) == 0
    printed = capsys.readouterr().out
    assert "AP" in printed and "metrics.json, 3 figures and 5 overlays written to" in printed
    report = json.loads((out / "metrics.json").read_text())
    X, y, masks = load_image_folder(folder, (SIDE, SIDE))
    det = skdefect.load(model)
    scores = det.decision_function(X)
    labels = det.predict(X)
    assert report["n_images"] == N_IMAGES and report["n_defective"] == int(y.sum())
    assert report["detector"] == "ConcentratedTwoStageDetector"
    assert report["threshold"] == pytest.approx(det.threshold_)
    assert report["AP"] == pytest.approx(average_precision_score(y, scores))
    assert report["AUROC"] == pytest.approx(roc_auc_score(y, scores))
    cm = report["confusion_matrix"]
    assert cm == {"tn": int(((labels == 0) & (y == 0)).sum()), "fp": int(((labels == 1) & (y == 0)).sum()),
                  "fn": int(((labels == 0) & (y == 1)).sum()), "tp": int(((labels == 1) & (y == 1)).sum())}
    assert report["F1"] == pytest.approx(2 * cm["tp"] / (2 * cm["tp"] + cm["fp"] + cm["fn"]))
    assert report["pixel_AUROC"] == pytest.approx(roc_auc_score(masks.ravel(), det.segment(X).ravel()), abs=1e-6)
    for key in ("AP", "AUROC", "F1", "precision", "recall", "accuracy", "pixel_AUROC"):
        assert 0.0 <= report[key] <= 1.0
    assert sorted(report["figures"]) == ["pr_curve.png", "roc_curve.png", "worst_errors.png"]
    for name in report["figures"]:
        _not_blank(out / name)
    assert report["overlays"] == [f"overlays/img/{i:03d}.png" for i in range(5)]
    assert sorted(p.relative_to(out).as_posix() for p in out.rglob("overlays/**/*.png")) == report["overlays"]
    # enlarged to a readable size (an integer factor of the image) with a caption strip below
    width, height = Image.open(out / report["overlays"][0]).size
    assert width == SIDE * 6 and height > width
    _not_blank(out / report["overlays"][0])


def test_evaluate_without_matplotlib_says_no_figures_were_written(model, folder, tmp_path, capsys, monkeypatch):
    import skdefect.cli as cli

    monkeypatch.setattr(cli, "_have_matplotlib", lambda: False)
    out = tmp_path / "eval_nompl"
    assert main(["evaluate", str(model), str(folder), "--out", str(out), "--n-overlays", "2"]) == 0
    captured = capsys.readouterr()
    assert "metrics.json and 2 overlays written to" in captured.out and "figure" not in captured.out
    assert "PR/ROC figures need matplotlib" in captured.err
    assert not list(out.glob("*.png"))


def test_predict_writes_one_row_and_one_overlay_per_image(model, folder, tmp_path):
    out = tmp_path / "pred"
    assert main(["predict", str(model), str(folder / "manifest.csv"), "--out", str(out), "--device", "cpu"]) == 0
    with open(out / "predictions.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert list(rows[0]) == ["file", "score", "probability", "label"]
    assert [r["file"] for r in rows] == [f"img/{i:03d}.png" for i in range(N_IMAGES)]
    X, _, _ = load_image_folder(folder, (SIDE, SIDE))
    det = skdefect.load(model)
    np.testing.assert_allclose([float(r["score"]) for r in rows], det.decision_function(X), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose([float(r["probability"]) for r in rows], det.predict_proba(X)[:, 1], rtol=1e-5)
    np.testing.assert_array_equal([int(r["label"]) for r in rows], det.predict(X))
    overlays = sorted((out / "overlays" / "img").glob("*.png"))
    assert len(overlays) == N_IMAGES
    _not_blank(overlays[0])


def test_predict_reads_a_plain_folder_of_images(model, folder, tmp_path):
    out = tmp_path / "plain"
    assert main(["predict", str(model), str(folder / "img"), "--out", str(out), "--n-overlays", "0"]) == 0
    with open(out / "predictions.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert [r["file"] for r in rows] == [f"{i:03d}.png" for i in range(N_IMAGES)]
    assert not (out / "overlays").exists()


def test_ctrl_c_during_fit_exits_130_and_keeps_the_earlier_model(model, folder, tmp_path, monkeypatch, capsys):
    """skorch swallows KeyboardInterrupt; the nets re-raise it, so an interrupted fit never replaces a model."""
    from skdefect.training.two_stage import TwoStageNet

    out = tmp_path / "model.skdefect"
    out.write_bytes(model.read_bytes())
    calls = []
    original = TwoStageNet.train_step

    def interrupted(self, batch, **kw):  # noqa: ANN001
        calls.append(1)
        if len(calls) == 3:
            raise KeyboardInterrupt
        return original(self, batch, **kw)

    monkeypatch.setattr(TwoStageNet, "train_step", interrupted)
    with pytest.raises(SystemExit) as info:
        main(["fit", str(folder), "--detector", "two-stage", "--out", str(out), "--image-shape", str(SIDE),
              "--epochs", "2", "--param", "width=0.25", "--device", "cpu"])
    assert info.value.code == 130 and len(calls) == 3
    assert out.read_bytes() == model.read_bytes()
    assert "interrupted" in capsys.readouterr().err
    assert [p.name for p in tmp_path.iterdir()] == ["model.skdefect"]


def test_fit_counts_defective_images_without_a_mask(folder, tmp_path, capsys):
    with open(folder / "manifest.csv", newline="") as fh:
        rows = list(csv.reader(fh))
    positives = [i for i, r in enumerate(rows) if i and r[2] == "1"]
    rows[positives[0]][1] = ""  # a defective image whose mask is unknown
    rows[1:] = [[str(folder / r[0]), str(folder / r[1]) if r[1] else "", r[2]] for r in rows[1:]]
    manifest = tmp_path / "manifest.csv"
    with open(manifest, "w", newline="") as fh:
        csv.writer(fh).writerows(rows)
    assert main(["fit", str(manifest), "--detector", "two-stage", "--out", str(tmp_path / "m.skdefect"),
                 "--image-shape", str(SIDE), "--epochs", "1", "--param", "width=0.25", "--device", "cpu"]) == 0
    expected = f"1 of the {len(positives)} defective images have no defect pixel in their mask"
    assert expected in capsys.readouterr().out


def test_fit_says_how_labels_were_decided(folder, tmp_path, capsys):
    """A manifest whose label cells are missing: the labels come from the masks, and the CLI says so."""
    with open(folder / "manifest.csv", newline="") as fh:
        rows = list(csv.reader(fh))
    rows[1:] = [[str(folder / r[0]), str(folder / r[1]), r[2] if i < 4 else ""] for i, r in enumerate(rows[1:])]
    manifest = tmp_path / "manifest.csv"
    with open(manifest, "w", newline="") as fh:
        csv.writer(fh).writerows(rows)
    derived = rows[5:]
    n_def = sum(bool(np.asarray(Image.open(r[1])).any()) for r in derived)
    assert main(["fit", str(manifest), "--detector", "two-stage", "--out", str(tmp_path / "m.skdefect"),
                 "--image-shape", str(SIDE), "--epochs", "1", "--param", "width=0.25", "--device", "cpu"]) == 0
    err = capsys.readouterr().err
    assert (f"4 images from the 'label' column; {len(derived)} derived from the masks (defective: a mask with a "
            f"defect pixel), {n_def} of those defective") in err


def test_labels_come_from_the_folders_where_the_layout_tells_the_class(tmp_path, capsys):
    """Magnetic tile's layout: MT_Free/ holds the normal images, the other folders beside it defective ones,
    some with an empty mask; without a label column the folders decide (the masks would call those normal)."""
    rng = np.random.default_rng(0)
    rows = [["image", "mask"]]
    for cls, n in (("MT_Free", 6), ("MT_Crack", 4), ("MT_Uneven", 4)):
        (tmp_path / cls / "Imgs").mkdir(parents=True)
        for i in range(n):
            stem = f"{cls}/Imgs/exp1_num_{i}"
            Image.fromarray(rng.integers(0, 255, (SIDE, SIDE), dtype=np.uint8)).save(tmp_path / f"{stem}.jpg")
            mask = np.zeros((SIDE, SIDE), np.uint8)
            if cls == "MT_Crack":
                mask[4:8, 4:8] = 255
            Image.fromarray(mask).save(tmp_path / f"{stem}.png")
            rows.append([f"{stem}.jpg", f"{stem}.png"])
    with open(tmp_path / "manifest.csv", "w", newline="") as fh:
        csv.writer(fh).writerows(rows)
    X, y, masks, sources = load_image_folder(tmp_path, (SIDE, SIDE), return_label_sources=True)
    assert y.tolist() == [0] * 6 + [1] * 8 and set(sources) == {"folder"}
    assert not masks[10:].any()  # MT_Uneven: defective, mask unknown
    status = main(["fit", str(tmp_path), "--detector", "gan", "--out", str(tmp_path / "m.skdefect"), "--epochs", "1",
                   "--param", "width=0.25", "--device", "cpu"])
    assert status == 0
    assert "14 from their folder (normal: good/, ok/, *_free/ ...; defective: the other folders beside it), " \
           "8 of those defective" in capsys.readouterr().err
    Image.fromarray(np.full((SIDE, SIDE), 255, np.uint8)).save(tmp_path / "MT_Free/Imgs/exp1_num_0.png")
    with pytest.raises(ValueError, match="exp1_num_0.jpg is in a folder of normal images .* has defect pixels"):
        load_image_folder(tmp_path, (SIDE, SIDE))


def test_predict_skips_masks_that_sit_beside_their_images(model, folder, tmp_path, capsys):
    """Masks beside images (Magnetic tile's x.jpg + x.png, MVTec-style x_mask.png) are not scored as images."""
    data = tmp_path / "mixed"
    data.mkdir()
    for i in range(3):
        image = Image.open(folder / "img" / f"{i:03d}.png")
        image.convert("RGB").save(data / f"tile{i}.jpg")
        Image.open(folder / "mask" / f"{i:03d}.png").save(data / f"tile{i}.png")  # same stem: its mask
    image.save(data / "part.png")
    Image.open(folder / "mask" / "000.png").save(data / "part_mask.png")
    out = tmp_path / "pred_mixed"
    assert main(["predict", str(model), str(data), "--out", str(out), "--n-overlays", "0"]) == 0
    with open(out / "predictions.csv", newline="") as fh:
        files = [r["file"] for r in csv.DictReader(fh)]
    assert files == ["part.png", "tile0.jpg", "tile1.jpg", "tile2.jpg"]
    assert "4 mask files beside the images skipped" in capsys.readouterr().err


def test_predict_csv_cannot_carry_spreadsheet_formulas_and_notes_earlier_overlays(model, folder, tmp_path,
                                                                                 capsys):
    data = tmp_path / "names"
    data.mkdir()
    for name in ("=HYPERLINK(1).png", "+1.png", "@SUM.png", "plain.png"):
        Image.open(folder / "img" / "000.png").save(data / name)
    out = tmp_path / "pred_names"
    assert main(["predict", str(model), str(data), "--out", str(out), "--n-overlays", "1"]) == 0
    with open(out / "predictions.csv", newline="") as fh:
        files = sorted(r["file"] for r in csv.DictReader(fh))
    assert files == ["'+1.png", "'=HYPERLINK(1).png", "'@SUM.png", "plain.png"]
    capsys.readouterr()
    assert main(["predict", str(model), str(data), "--out", str(out), "--n-overlays", "1"]) == 0
    assert "holds 1 overlay of an earlier run" in capsys.readouterr().err


def test_gan_without_masks_and_two_stage_refusal(tmp_path, capsys):
    data = _write_folder(tmp_path / "labels_only", with_masks=False)
    model = tmp_path / "gan.skdefect"
    assert main(["fit", str(data), "--detector", "gan", "--out", str(model), "--image-shape", str(SIDE),
                 "--epochs", "1", "--param", "width=0.25", "--device", "cpu", "--random-state", "3"]) == 0
    det = skdefect.load(model)
    assert type(det).__name__ == "DualDiscriminatorGANDetector" and det.epochs == 1 and det.random_state == 3
    out = tmp_path / "eval"
    assert main(["evaluate", str(model), str(data), "--out", str(out), "--n-overlays", "2"]) == 0
    report = json.loads((out / "metrics.json").read_text())
    assert report["pixel_AUROC"] is None and any("no masks" in note for note in report["notes"])
    assert 0.0 <= report["AP"] <= 1.0 and len(report["overlays"]) == 2
    capsys.readouterr()
    err = _exit_2(["fit", str(data), "--detector", "two-stage", "--out", str(tmp_path / "x.skdefect")], capsys)
    assert "masks" in err and "--detector gan" in err


# --------------------------------------------------------------------------------------------------------------
# arguments
# --------------------------------------------------------------------------------------------------------------
def test_param_values_are_python_literals_or_strings():
    valid = ["width", "image_size", "backbone", "augment", "random_state"]
    parsed = parse_params(
        ["width=0.25", "image_size=(64, 48)", "backbone=segdec", "augment=false", "random_state=None"], valid, "Det"
    )
    assert parsed == {"width": 0.25, "image_size": (64, 48), "backbone": "segdec", "augment": False,
                      "random_state": None}


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["fit", "{missing}", "--detector", "gan", "--out", "{model}"], "DATA not found"),
        (["fit", "{data}", "--detector", "svm", "--out", "{model}"], "argument --detector: invalid choice: 'svm'"),
        (["fit", "{data}", "--detector", "gan"], "the following arguments are required: --out"),
        (["fit", "{data}", "--detector", "gan", "--out", "{model}", "--param", "widht=2"],
         "has no parameter 'widht'; did you mean 'width'?"),
        (["fit", "{data}", "--detector", "gan", "--out", "{model}", "--param", "width"], "--param expects KEY=VALUE"),
        (["fit", "{data}", "--detector", "gan", "--out", "{model}", "--param", "width=-1"], "'width' parameter"),
        (["fit", "{data}", "--detector", "gan", "--out", "{model}", "--image-shape", "0"], "argument --image-shape"),
        (["fit", "{data}", "--detector", "gan", "--out", "{model}", "--epochs", "many"], "argument --epochs"),
        (["fit", "{data}", "--detector", "gan", "--out", "{model}", "--device", "gpu"], "device must be 'auto'"),
        (["fit", "{data}", "--detector", "gan", "--out", "{model}", "--seg-epochs", "2"], "two-stage only"),
        (["fit", "{data}", "--detector", "gan", "--out", "{data}"], "is a folder"),
        (["fit", "{data}", "--detector", "gan", "--out", "{manifest}/m.skdefect"],
         "cannot be written (File exists); checked before training"),
        (["fit", "{data}", "--detector", "gan", "--out", "{model}", "--layout", "mvtec"], "MVTec AD layout"),
        (["fit", "{data}", "--detector", "gan", "--out", "{model}", "--image-shape", "40", "--epochs", "1",
          "--device", "cpu"], "--image-shape with such sides"),
        (["evaluate", "{missing}", "{data}", "--out", "{dir}"], "MODEL not found"),
        (["evaluate", "{manifest}", "{data}", "--out", "{dir}"], "is not a skdefect model file"),
        (["predict", "{model_ok}", "{missing}", "--out", "{dir}"], "DATA not found"),
        (["predict", "{model_ok}", "{empty}", "--out", "{dir}"], "holds no image files"),
        (["evaluate", "{model_ok}", "{data}", "--out", "{manifest}"], "is not a folder"),
        (["predict", "{model_ok}", "{data}", "--out", "{dir}", "--n-overlays", "-1"], "argument --n-overlays"),
    ],
)
def test_bad_arguments_exit_2_with_a_message(argv, message, folder, model, tmp_path, capsys):
    (tmp_path / "empty").mkdir()
    paths = {"missing": tmp_path / "nope", "data": folder, "model": tmp_path / "m.skdefect", "dir": tmp_path / "o",
             "manifest": folder / "manifest.csv", "model_ok": model, "empty": tmp_path / "empty"}
    err = _exit_2([a.format(**{k: str(v) for k, v in paths.items()}) for a in argv], capsys)
    assert message in err
    assert not (tmp_path / "m.skdefect").exists()


def test_help_texts_read_well(capsys):
    parser = build_parser()
    with pytest.raises(SystemExit):
        parser.parse_args(["--help"])
    out = capsys.readouterr().out
    for command in ("fit", "evaluate", "predict", "demo", "plugins"):
        assert command in out
    for command, words in (("fit", ["--detector", "--param", "KEY=VALUE", "--image-shape", "manifest", "example"]),
                           ("evaluate", ["metrics.json", "pr_curve.png", "pixel AUROC", "--n-overlays"]),
                           ("predict", ["predictions.csv", "probability", "plain folder", "--device"])):
        with pytest.raises(SystemExit) as info:
            parser.parse_args([command, "--help"])
        assert info.value.code == 0
        text = capsys.readouterr().out
        for word in words:
            assert word in text, (command, word)


# --------------------------------------------------------------------------------------------------------------
# broken files: one line naming the file, exit 2
# --------------------------------------------------------------------------------------------------------------
def _copy_folder(folder: Path, dst: Path) -> Path:
    import shutil

    return Path(shutil.copytree(folder, dst))


def test_a_truncated_jpeg_is_one_line_naming_the_file(model, folder, tmp_path, capsys):
    data = _copy_folder(folder, tmp_path / "d")
    X, _, _ = make_surface_defects(n_samples=1, image_shape=(SIDE, SIDE), random_state=1)
    Image.fromarray(X[0]).save(data / "img" / "bad.jpg", quality=95)
    raw = (data / "img" / "bad.jpg").read_bytes()
    (data / "img" / "bad.jpg").write_bytes(raw[: len(raw) // 2])
    (data / "manifest.csv").write_text((data / "manifest.csv").read_text() + "img/bad.jpg,,1\n")
    err = _exit_2(["evaluate", str(model), str(data), "--out", str(tmp_path / "o")], capsys)
    assert err.count("\n") == 1 and "bad.jpg is truncated or corrupt" in err


def test_a_decompression_bomb_is_refused_before_decoding(model, tmp_path, capsys, monkeypatch):
    (tmp_path / "d").mkdir()
    Image.fromarray(np.zeros((SIDE, SIDE), np.uint8)).save(tmp_path / "d" / "ok.png")
    Image.fromarray(np.zeros((400, 400), np.uint8)).save(tmp_path / "d" / "bomb.png")
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 100_000)  # 400 x 400 = 160,000 pixels: over, under twice
    err = _exit_2(["predict", str(model), str(tmp_path / "d"), "--out", str(tmp_path / "o")], capsys)
    assert err.count("\n") == 1 and "bomb.png is refused as a possible decompression bomb" in err


def test_a_manifest_in_another_encoding_names_the_file_and_line(folder, tmp_path, capsys):
    data = _copy_folder(folder, tmp_path / "d")
    lines = (data / "manifest.csv").read_text().splitlines()
    lines[3] = lines[3].replace("img/", "img/caf\u00e9_")
    (data / "manifest.csv").write_bytes("\n".join(lines).encode("latin-1"))
    err = _exit_2(["fit", str(data), "--detector", "gan", "--out", str(tmp_path / "m.skdefect")], capsys)
    assert err.count("\n") == 1
    assert "manifest.csv, line 4, column 8: byte 0xe9 is not UTF-8 text; save the file as UTF-8" in err


def test_a_model_file_with_impossible_attributes_is_one_line(model, folder, tmp_path, capsys):
    from skdefect import persistence

    _, cfg, ts = persistence._read(model)
    cfg["attributes"]["image_size_"] = {"__tuple__": [-4, 32]}
    bad = persistence._write(tmp_path / "bad.skdefect", cfg, ts)
    err = _exit_2(["evaluate", str(bad), str(folder), "--out", str(tmp_path / "o")], capsys)
    assert err.count("\n") == 1 and "image_size_ must be a pair" in err


def test_fit_checks_the_networks_size_rule_before_reading_data(folder, tmp_path, capsys, monkeypatch):
    """--image-shape 40 does not suit the GAN (sides of multiples of 16): refused before any image is read."""
    import skdefect.datasets._folder as folder_module

    read = []
    real = folder_module.read_image
    monkeypatch.setattr(folder_module, "read_image", lambda path, color: read.append(path) or real(path, color))
    err = _exit_2(["fit", str(folder), "--detector", "gan", "--out", str(tmp_path / "m.skdefect"),
                   "--image-shape", "40"], capsys)
    assert "network needs sides divisible by 16" in err and "image_size=(48, 48)" in err
    assert "checked before reading DATA" in err and read == []


def test_image_size_flag_is_a_deprecated_alias_of_image_shape(capsys):
    """--image-shape resizes on read (the loaders' image_shape); --image-size, its old name, was easily taken
    for the detectors' image_size (the networks' input size)."""
    parser = build_parser()
    args = parser.parse_args(["fit", "d", "--detector", "gan", "--out", "m", "--image-size", "32x48"])
    assert args.image_shape == (32, 48)
    err = capsys.readouterr().err
    assert "--image-size is deprecated and will be removed in skdefect 0.3; use --image-shape" in err
    args = parser.parse_args(["fit", "d", "--detector", "gan", "--out", "m", "--image-shape", "64"])
    assert args.image_shape == (64, 64) and capsys.readouterr().err == ""
    assert parser.parse_args(["demo", "--image-size", "48"]).image_shape == 48
