"""skdefect.viz: figures render to non-blank PNGs of the asked size, pick the right images, reject bad input."""

from __future__ import annotations

import sys

import numpy as np
import pytest
from PIL import Image
from sklearn.metrics import average_precision_score, roc_auc_score

pytest.importorskip("matplotlib")

from skdefect import viz  # noqa: E402
from skdefect.datasets import make_surface_defects  # noqa: E402


@pytest.fixture(scope="module")
def data():
    X, y, masks = make_surface_defects(n_samples=12, image_shape=(32, 32), random_state=0)
    rng = np.random.default_rng(0)
    maps = np.clip(masks * 0.9 + rng.random(masks.shape) * 0.1, 0, 1).astype(np.float32)
    scores = y + rng.normal(0, 0.4, len(y))
    return X, y, masks, maps, scores


def _png(path):
    img = np.asarray(Image.open(path).convert("RGB")).astype(np.float64)
    return img


def _assert_not_blank(path, size=None):
    img = _png(path)
    if size is not None:
        assert (img.shape[1], img.shape[0]) == size
    assert img.std() > 10, "the picture is (nearly) blank"
    return img


def _no_pyplot_figures():
    import matplotlib.pyplot as plt

    return plt.get_fignums() == []


# --------------------------------------------------------------------------------------------------------------
# overlay_image: numpy only
# --------------------------------------------------------------------------------------------------------------
def test_overlay_image_colours_heat_red_and_mask_outline_green():
    image = np.full((16, 16), 128, np.uint8)
    heat = np.zeros((16, 16))
    heat[2:6, 2:6] = 1.0
    mask = np.zeros((16, 16), bool)
    mask[8:14, 8:14] = True
    rgb = viz.overlay_image(image, heat, mask)
    assert rgb.shape == (16, 16, 3) and rgb.dtype == np.uint8
    hot = rgb[3, 3].astype(int)
    assert hot[0] > hot[1] + 100 and hot[1] == hot[2]  # red where the heat is
    assert tuple(rgb[8, 10]) == (0, 255, 0)  # mask edge
    assert len(set(map(tuple, rgb[10:12, 10:12].reshape(-1, 3)))) == 1  # interior untouched: plain gray
    assert rgb[0, 15, 0] == rgb[0, 15, 1] == rgb[0, 15, 2]  # cold, unmasked: gray
    # vmax scales the heat: half the heat at vmax=0.5 is as red as the full heat at vmax=1
    np.testing.assert_array_equal(viz.overlay_image(image, heat * 0.5, vmax=0.5), viz.overlay_image(image, heat))


def test_caption_image_enlarges_by_an_integer_factor_and_writes_text_below():
    from skdefect.viz import caption_image

    rgb = np.zeros((48, 40, 3), np.uint8)
    rgb[10, 10] = (255, 0, 0)
    out = caption_image(rgb, ["score 0.9 vs threshold 0.5: defective", "true label: defective"], min_side=192)
    k = 5  # ceil(192 / 40)
    assert out.shape[1] == 40 * k and out.shape[0] > 48 * k and out.dtype == np.uint8
    np.testing.assert_array_equal(out[: 48 * k], np.repeat(np.repeat(rgb, k, 0), k, 1))  # nearest, not blurred
    strip = out[48 * k:]
    assert (strip > 128).any(axis=2).sum() > 50  # the lines are drawn
    np.testing.assert_array_equal(caption_image(rgb, [], min_side=10), rgb)  # large enough, nothing to write
    with pytest.raises(ValueError, match="rgb must be a uint8 array"):
        caption_image(rgb.astype(np.float32), ["x"])


def test_overlay_image_rejects_mismatched_shapes():
    with pytest.raises(ValueError, match=r"map must have the \(H, W\) shape of image, \(16, 16\)"):
        viz.overlay_image(np.zeros((16, 16)), np.zeros((8, 8)))
    with pytest.raises(ValueError, match="mask must have"):
        viz.overlay_image(np.zeros((16, 16)), np.zeros((16, 16)), np.zeros((16, 15)))
    with pytest.raises(ValueError, match=r"image must have shape \(H, W\)"):
        viz.overlay_image(np.zeros((16, 16, 4)), np.zeros((16, 16)))


# --------------------------------------------------------------------------------------------------------------
# matplotlib figures
# --------------------------------------------------------------------------------------------------------------
def test_plot_overlay_renders_heat_and_mask(data, tmp_path):
    X, y, masks, maps, _ = data
    i = int(np.flatnonzero(y == 1)[0])
    with_map = viz.save_figure(
        viz.plot_overlay(X[i], maps[i], masks[i], figsize=(3, 2), dpi=50, title="defect"), tmp_path / "a.png"
    )
    plain = viz.save_figure(viz.plot_overlay(X[i], None, None, figsize=(3, 2), dpi=50), tmp_path / "b.png")
    a = _assert_not_blank(with_map, size=(150, 100))
    b = _assert_not_blank(plain, size=(150, 100))
    redness = lambda img: (img[..., 0] - img[..., 2]).max()  # noqa: E731
    assert redness(a) > 100 and redness(b) < 30  # the gray image gains hot (red) pixels from the heat map
    assert _no_pyplot_figures()


def test_plot_overlay_draws_on_given_axes(data):
    from matplotlib.figure import Figure

    X, _, masks, maps, _ = data
    fig = Figure()
    axes = fig.subplots(1, 2)
    assert viz.plot_overlay(X[0], maps[0], masks[0], ax=axes[1], colorbar=True) is fig
    assert len(axes[1].images) == 2 and len(axes[0].images) == 0  # image + heat layer on the asked axes only
    with pytest.raises(TypeError, match="ax must be a matplotlib Axes"):
        viz.plot_overlay(X[0], maps[0], ax="left")


def test_plot_detections_grid(data, tmp_path):
    X, y, masks, maps, scores = data
    fig = viz.plot_detections(X[:7], maps[:7], masks[:7], scores[:7], y=y[:7], n_cols=3, panel_size=1.5, dpi=60)
    image_axes = [ax for ax in fig.axes if ax.images]
    assert len(image_axes) == 7  # 3 x 3 grid, two panels left empty; plus a colour bar
    assert sum(1 for ax in fig.axes if ax.get_visible() and ax.axison and not ax.images) == 1  # the colour bar
    titles = [ax.get_title() for ax in image_axes]
    assert titles[4] == f"#4\nscore {scores[4]:.3g}, y={y[4]}"
    w, h = (fig.get_size_inches() * 60).round().astype(int)
    _assert_not_blank(viz.save_figure(fig, tmp_path / "grid.png"), size=(w, h))
    named = viz.plot_detections(X[:2], names=["left.png", "right.png"], colorbar=False)
    assert [ax.get_title() for ax in named.axes] == ["left.png", "right.png"]


def test_plot_pr_and_roc_curves_compare_named_score_sets(data, tmp_path):
    _, y, _, _, scores = data
    sets = {"good": scores, "reversed": -scores}
    pr = viz.plot_pr_curve(y, sets, figsize=(4, 3), dpi=50)
    roc = viz.plot_roc_curve(y, sets, figsize=(4, 3), dpi=50)
    pr_labels = [t.get_text() for t in pr.axes[0].get_legend().get_texts()]
    roc_labels = [t.get_text() for t in roc.axes[0].get_legend().get_texts()]
    for name, s in sets.items():
        assert any(lab.startswith(name) and f"{average_precision_score(y, s):.2f}" in lab for lab in pr_labels)
        assert any(lab.startswith(name) and f"{roc_auc_score(y, s):.2f}" in lab for lab in roc_labels)
    assert any("Chance" in lab for lab in roc_labels)
    _assert_not_blank(viz.save_figure(pr, tmp_path / "pr.png"), size=(200, 150))
    _assert_not_blank(viz.save_figure(roc, tmp_path / "roc.png", dpi=100), size=(400, 300))
    single = viz.plot_roc_curve(y, scores, name="mine", chance_level=False)
    assert [t.get_text() for t in single.axes[0].get_legend().get_texts()][0].startswith("mine")
    assert _no_pyplot_figures()


def test_worst_errors_picks_highest_normals_and_lowest_defects():
    y = np.array([0, 0, 0, 0, 1, 1, 1, 1, 0, 1])
    s = np.array([0.9, 0.1, 0.7, 0.95, 0.2, 0.8, 0.05, 0.6, 0.5, 0.49])
    fp, fn = viz.worst_errors(y, s, threshold=0.5, n=3)
    np.testing.assert_array_equal(fp, [3, 0, 2])  # normals at or above 0.5, highest first (8 is 4th)
    np.testing.assert_array_equal(fn, [6, 4, 9])  # defects below 0.5, lowest first
    fp, fn = viz.worst_errors(y, s, threshold=0.0, n=10)
    assert len(fn) == 0 and len(fp) == 5


def test_plot_worst_errors_shows_the_chosen_images(data, tmp_path):
    X, _, masks, maps, _ = data
    y = np.array([0, 0, 0, 0, 1, 1, 1, 1, 0, 1, 0, 1])
    s = np.array([0.9, 0.1, 0.7, 0.95, 0.2, 0.8, 0.05, 0.6, 0.5, 0.49, 0.0, 1.0])
    fig = viz.plot_worst_errors(X, y, s, maps, masks=masks, threshold=0.5, n=2, dpi=50)
    titles = [ax.get_title() for ax in fig.axes if ax.images]
    assert titles == ["FP #3\nscore 0.95", "FP #0\nscore 0.9", "FN #6\nscore 0.05", "FN #4\nscore 0.2"]
    top_left = next(ax for ax in fig.axes if ax.images)
    shown = top_left.images[0].get_array()
    np.testing.assert_allclose(np.asarray(shown), X[3] / 255.0)  # the panel shows image 3 itself
    _assert_not_blank(viz.save_figure(fig, tmp_path / "worst.png"))
    none = viz.plot_worst_errors(X, y, s, threshold=-1.0, n=2)
    texts = [t.get_text() for ax in none.axes for t in ax.texts]
    assert any(t.startswith("no false negatives") for t in texts)


@pytest.mark.parametrize(
    ("call", "error", "match"),
    [
        (lambda X, y, s: viz.plot_pr_curve(y, s[:-1]), ValueError, r"scores must have shape \(n,\) with n = 12"),
        (lambda X, y, s: viz.plot_roc_curve(np.zeros(12), s), ValueError, "y must hold both classes"),
        (lambda X, y, s: viz.plot_pr_curve(y + 1, s), ValueError, r"y must hold 0 \(normal\) and 1"),
        (lambda X, y, s: viz.plot_pr_curve(y, {}), ValueError, "at least one score set"),
        (lambda X, y, s: viz.plot_detections(X, np.zeros((12, 16, 16))), ValueError, r"maps must .*\(12, 32, 32\)"),
        (lambda X, y, s: viz.plot_detections(X, n_cols=0), ValueError, "n_cols must be a positive int"),
        (lambda X, y, s: viz.plot_detections(X[0]), ValueError, r"images must have shape \(n, H, W\)"),
        (lambda X, y, s: viz.plot_worst_errors(X, y[:5], s), ValueError, "y must have shape"),
        (lambda X, y, s: viz.plot_worst_errors(X, y, s, n=1.5), TypeError, "n must be a positive int"),
        (lambda X, y, s: viz.plot_overlay(X[0], np.full((32, 32), np.nan)), ValueError, "map must be finite"),
        (lambda X, y, s: viz.plot_overlay(X[0], alpha=2), ValueError, r"alpha must be in \[0, 1\]"),
        (lambda X, y, s: viz.plot_overlay(X[0], cmap="no-such-map"), ValueError, "cmap must be a matplotlib"),
        (lambda X, y, s: viz.plot_overlay(X[0], np.zeros((32, 32)), vmin=1, vmax=1), ValueError, "vmax must be"),
        (lambda X, y, s: viz.save_figure("figure", "x.png"), TypeError, "fig must be a matplotlib.figure.Figure"),
        (lambda X, y, s: viz.plot_overlay(np.array(["a", "b"])), TypeError, "image must be a numeric array"),
    ],
)
def test_bad_input_is_named(data, call, error, match):
    X, y, _, _, s = data
    with pytest.raises(error, match=match):
        call(X, y, s)


def test_missing_matplotlib_names_the_extra(monkeypatch, data):
    X = data[0]
    for name in ("matplotlib", "matplotlib.figure", "matplotlib.backends.backend_agg"):
        monkeypatch.setitem(sys.modules, name, None)
    with pytest.raises(ImportError, match=r"skdefect\[viz\]"):
        viz.plot_overlay(X[0])
    assert viz.overlay_image(X[0], np.zeros((32, 32))).shape == (32, 32, 3)  # the numpy path needs none
