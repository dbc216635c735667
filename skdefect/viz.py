"""Plots for defect detectors: heat-map overlays, detection grids, PR/ROC curves, worst errors.

matplotlib is an optional dependency (``pip install "skdefect[viz]"``); it is imported on first use, so
``import skdefect.viz`` always works and only the plotting functions need it. Every function draws on a
:class:`matplotlib.figure.Figure` with an Agg canvas (never pyplot's global state), so plots render on machines
without a display and in worker processes; save them with :func:`save_figure`.

:func:`overlay_image` needs numpy only: it returns an RGB ``uint8`` array at the image's own resolution (the
command line writes its per-image overlays with it).

==========================  ==================================================================================
function                    draws
==========================  ==================================================================================
:func:`plot_overlay`        one image, its heat map (transparent where cold) and the ground-truth mask outline
:func:`plot_detections`     a grid of overlays titled with their scores
:func:`plot_pr_curve`       precision-recall curves of one or several named score sets (sklearn's display)
:func:`plot_roc_curve`      ROC curves of one or several named score sets (sklearn's display)
:func:`plot_worst_errors`   the highest-scored normals (false positives) and lowest-scored defects (false
                            negatives)
:func:`save_figure`         writes a figure to PNG/PDF/SVG, creating the folder
==========================  ==================================================================================
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from ._validation import describe

if TYPE_CHECKING:  # pragma: no cover
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

__all__ = [
    "caption_image",
    "overlay_image",
    "plot_detections",
    "plot_overlay",
    "plot_pr_curve",
    "plot_roc_curve",
    "plot_worst_errors",
    "save_figure",
    "worst_errors",
]

_INSTALL_HINT = 'pip install "skdefect[viz]"'


# ----------------------------------------------------------------------------------------------------------
# matplotlib, lazily
# ----------------------------------------------------------------------------------------------------------
def _mpl() -> Any:
    """Import matplotlib's object API, or raise an ImportError that says how to install it."""
    try:
        import matplotlib  # noqa: F401
        from matplotlib.backends.backend_agg import FigureCanvasAgg  # noqa: F401
        from matplotlib.figure import Figure  # noqa: F401
    except ImportError as exc:
        raise ImportError(
            f"skdefect.viz needs matplotlib, an optional dependency of skdefect: {_INSTALL_HINT}"
        ) from exc
    import matplotlib

    return matplotlib


def _new_figure(figsize: tuple[float, float], dpi: float, layout: str | None = "constrained") -> Figure:
    """A Figure on an Agg canvas: no pyplot, no display needed."""
    _mpl()
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=figsize, dpi=dpi, layout=layout)
    FigureCanvasAgg(fig)
    return fig


def _figure_and_axes(
    ax: Axes | None, figsize: tuple[float, float], dpi: float, layout: str | None = "constrained"
) -> tuple[Figure, Axes]:
    if ax is None:
        fig = _new_figure(figsize, dpi, layout)
        return fig, fig.add_subplot(1, 1, 1)
    _mpl()
    from matplotlib.axes import Axes

    if not isinstance(ax, Axes):
        raise TypeError(f"ax must be a matplotlib Axes or None; got {type(ax).__name__}.")
    return ax.figure, ax


# ----------------------------------------------------------------------------------------------------------
# input checks
# ----------------------------------------------------------------------------------------------------------
def _numeric(value: Any, arg: str) -> np.ndarray:
    try:
        arr = np.asarray(value)
    except (ValueError, TypeError) as exc:
        raise ValueError(f"{arg} must be a numeric array; could not convert it ({exc}).") from exc
    if arr.dtype.kind not in "buif":
        raise TypeError(f"{arg} must be a numeric array (bool, int or float); got {describe(value)}.")
    return arr


def _check_image(image: Any, arg: str = "image") -> np.ndarray:
    """One image as (H, W) or (H, W, 3); (H, W, 1) is squeezed."""
    arr = _numeric(image, arg)
    if arr.ndim == 3 and arr.shape[2] == 1:
        arr = arr[..., 0]
    if not (arr.ndim == 2 or (arr.ndim == 3 and arr.shape[2] == 3)) or min(arr.shape[:2]) < 1:
        raise ValueError(f"{arg} must have shape (H, W), (H, W, 1) or (H, W, 3); got {describe(np.asarray(image))}.")
    return arr


def _check_images(images: Any, arg: str = "images") -> np.ndarray:
    """A stack of images as (n, H, W) or (n, H, W, 3); (n, H, W, 1) is squeezed."""
    arr = _numeric(images, arg)
    if arr.ndim == 4 and arr.shape[3] == 1:
        arr = arr[..., 0]
    if not (arr.ndim == 3 or (arr.ndim == 4 and arr.shape[3] == 3)):
        raise ValueError(
            f"{arg} must have shape (n, H, W), (n, H, W, 1) or (n, H, W, 3); got {describe(np.asarray(images))}."
        )
    if len(arr) == 0:
        raise ValueError(f"{arg} must hold at least one image; got {describe(arr)}.")
    return arr


def _check_map(heat: Any, shape: tuple[int, int], arg: str, image_arg: str) -> np.ndarray:
    arr = _numeric(heat, arg).astype(np.float64)
    if arr.shape != shape:
        raise ValueError(
            f"{arg} must have the (H, W) shape of {image_arg}, {shape}; got {describe(np.asarray(heat))}."
        )
    if not np.isfinite(arr).all():
        raise ValueError(f"{arg} must be finite; it holds NaN or infinite values.")
    return arr


def _check_stack(values: Any, n: int, shape: tuple[int, int], arg: str) -> np.ndarray:
    arr = _numeric(values, arg)
    if arr.ndim == 4 and arr.shape[3] == 1:
        arr = arr[..., 0]
    if arr.shape != (n, *shape):
        raise ValueError(
            f"{arg} must have shape (n, H, W) = {(n, *shape)} to match images; got {describe(np.asarray(values))}."
        )
    return arr


def _check_vector(values: Any, n: int, arg: str, n_arg: str = "images") -> np.ndarray:
    arr = _numeric(values, arg)
    if arr.ndim == 2 and arr.shape[1] == 1:
        arr = arr[:, 0]
    if arr.ndim != 1 or len(arr) != n:
        raise ValueError(
            f"{arg} must have shape (n,) with n = {n} (one per {n_arg}); got {describe(np.asarray(values))}."
        )
    arr = arr.astype(np.float64)
    if not np.isfinite(arr).all():
        raise ValueError(f"{arg} must be finite; it holds NaN or infinite values.")
    return arr


def _check_binary(y: Any, arg: str = "y") -> np.ndarray:
    arr = _numeric(y, arg)
    if arr.ndim == 2 and arr.shape[1] == 1:
        arr = arr[:, 0]
    if arr.ndim != 1:
        raise ValueError(f"{arg} must have shape (n,); got {describe(np.asarray(y))}.")
    values = np.unique(arr)
    if not np.isin(values, [0, 1]).all():
        raise ValueError(f"{arg} must hold 0 (normal) and 1 (defective) only; got values {values[:10].tolist()}.")
    return arr.astype(np.int64)


def _check_positive_int(value: Any, arg: str) -> int:
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer)):
        raise TypeError(f"{arg} must be a positive int; got {type(value).__name__}.")
    if value < 1:
        raise ValueError(f"{arg} must be a positive int; got {value!r}.")
    return int(value)


def _display_range(image: np.ndarray) -> tuple[float, float]:
    """The value range an image is shown in: its dtype's range, or [0, 1] for floats inside it."""
    if image.dtype == np.bool_:
        return 0.0, 1.0
    if image.dtype.kind in "ui":
        info = np.iinfo(image.dtype)
        return (float(info.min) if image.dtype.kind == "i" else 0.0), float(info.max)
    low, high = float(np.min(image)), float(np.max(image))
    if low >= 0.0 and high <= 1.0:
        return 0.0, 1.0
    return low, (high if high > low else low + 1.0)


def _to_unit(image: np.ndarray) -> np.ndarray:
    low, high = _display_range(image)
    return np.clip((image.astype(np.float64) - low) / (high - low), 0.0, 1.0)


def _map_range(maps: Sequence[np.ndarray], vmin: float | None, vmax: float | None) -> tuple[float, float]:
    """Default colour scale of heat maps: [0, 1] for probabilities, else the maps' range."""
    low = min(float(m.min()) for m in maps)
    high = max(float(m.max()) for m in maps)
    if vmin is None:
        vmin = 0.0 if low >= 0.0 else low
    if vmax is None:
        vmax = 1.0 if (low >= 0.0 and high <= 1.0) else high
    if not vmax > vmin:
        raise ValueError(f"vmax must be greater than vmin; got vmin={vmin!r}, vmax={vmax!r}.")
    return float(vmin), float(vmax)


# ----------------------------------------------------------------------------------------------------------
# numpy-only overlay
# ----------------------------------------------------------------------------------------------------------
def overlay_image(
    image: Any, map: Any, mask: Any = None, *, alpha: float = 0.6, vmax: float = 1.0
) -> np.ndarray:
    """Render an image with its heat map in red and the mask outline in green, as an RGB array.

    numpy only (no matplotlib), at the image's own resolution: fast enough for one file per image.

    Parameters
    ----------
    image : array-like of shape (H, W), (H, W, 1) or (H, W, 3)
        The image; shown in gray, brightness scaled by its maximum (at least 1).
    map : array-like of shape (H, W)
        Heat map; ``map / vmax`` clipped to [0, 1] is the red intensity.
    mask : array-like of shape (H, W) or None, default=None
        Ground-truth defect mask (bool or {0, 1}); its outline is drawn in green.
    alpha : float, default=0.6
        Opacity of the red at a heat of 1.
    vmax : float, default=1.0
        Heat value drawn fully red; 1.0 suits probability maps, use e.g. a high quantile of the anomaly maps
        of a whole data set for reconstruction errors.

    Returns
    -------
    rgb : ndarray of shape (H, W, 3) and dtype uint8

    Raises
    ------
    ValueError
        If the shapes of ``image``, ``map`` and ``mask`` disagree, or ``alpha``/``vmax`` are out of range.
    """
    img = _check_image(image, "image")
    heat = _check_map(map, img.shape[:2], "map", "image")
    if not 0.0 <= float(alpha) <= 1.0:
        raise ValueError(f"alpha must be in [0, 1]; got {alpha!r}.")
    if not float(vmax) > 0.0:
        raise ValueError(f"vmax must be > 0; got {vmax!r}.")
    gray = img.astype(np.float32)
    if gray.ndim == 3:
        gray = gray.mean(axis=2)
    gray = gray / max(float(gray.max()), 1.0)
    rgb = np.stack([gray, gray, gray], axis=-1)
    h = np.clip(heat / float(vmax), 0.0, 1.0).astype(np.float32)[..., None]
    rgb = rgb * (1 - alpha * h) + np.array([1.0, 0.0, 0.0], dtype=np.float32) * alpha * h
    if mask is not None:
        m = _check_map(mask, img.shape[:2], "mask", "image") > 0
        if m.any():
            rgb[m & ~_erode(m)] = (0.0, 1.0, 0.0)
    return (np.clip(rgb, 0.0, 1.0) * 255).round().astype(np.uint8)


def caption_image(rgb: Any, lines: Sequence[str], *, min_side: int = 192) -> np.ndarray:
    """Enlarge an RGB image to a readable size and write text lines in a black strip below it.

    Pillow only (its built-in bitmap font, nothing downloaded). The image is enlarged by an integer factor with
    nearest-neighbour sampling until its shorter side is at least ``min_side``, so model-resolution overlays
    (48×48, 64×64) become readable without blurring the heat map.

    Parameters
    ----------
    rgb : array-like of shape (H, W, 3) and dtype uint8
        An image, e.g. from :func:`overlay_image`.
    lines : sequence of str
        The caption, one entry per line (e.g. the score, the decision, the true label).
    min_side : int, default=192
        Smallest side of the enlarged image, in pixels.

    Returns
    -------
    captioned : ndarray of shape (k·H + strip, k·W, 3) and dtype uint8

    Examples
    --------
    >>> import numpy as np
    >>> from skdefect.viz import caption_image
    >>> caption_image(np.zeros((64, 64, 3), np.uint8), ["score 0.91 >= 0.50: defective"]).shape[1]
    192
    """
    from PIL import Image, ImageDraw, ImageFont

    arr = np.asarray(rgb)
    if arr.ndim != 3 or arr.shape[2] != 3 or arr.dtype != np.uint8:
        raise ValueError(f"rgb must be a uint8 array of shape (H, W, 3); got {arr.dtype} of shape {arr.shape}.")
    if int(min_side) < 1:
        raise ValueError(f"min_side must be >= 1; got {min_side!r}.")
    k = max(1, -(-int(min_side) // min(arr.shape[:2])))
    big = np.repeat(np.repeat(arr, k, axis=0), k, axis=1)
    font = ImageFont.load_default()
    line_h = 12
    strip = line_h * len(lines) + 4 if lines else 0
    canvas = Image.new("RGB", (big.shape[1], big.shape[0] + strip), (0, 0, 0))
    canvas.paste(Image.fromarray(big), (0, 0))
    draw = ImageDraw.Draw(canvas)
    for j, line in enumerate(lines):
        draw.text((3, big.shape[0] + 2 + j * line_h), str(line), fill=(255, 255, 255), font=font)
    return np.asarray(canvas)


def _erode(mask: np.ndarray) -> np.ndarray:
    m = np.pad(mask, 1)
    return m[1:-1, 1:-1] & m[:-2, 1:-1] & m[2:, 1:-1] & m[1:-1, :-2] & m[1:-1, 2:]


# ----------------------------------------------------------------------------------------------------------
# matplotlib plots
# ----------------------------------------------------------------------------------------------------------
def _draw_overlay(
    ax: Axes,
    image: np.ndarray,
    heat: np.ndarray | None,
    mask: np.ndarray | None,
    *,
    alpha: float,
    cmap: Any,
    vmin: float,
    vmax: float,
    mask_color: str,
) -> None:
    """Draw on ``ax``: the image, the heat map (opacity grows with the heat) and the mask contour."""
    import matplotlib as mpl

    shown = _to_unit(image)
    if shown.ndim == 2:
        ax.imshow(shown, cmap="gray", vmin=0.0, vmax=1.0, interpolation="nearest")
    else:
        ax.imshow(shown, interpolation="nearest")
    if heat is not None:
        colormap = mpl.colormaps[cmap] if isinstance(cmap, str) else cmap
        level = np.clip((heat - vmin) / (vmax - vmin), 0.0, 1.0)
        rgba = colormap(level)
        rgba[..., 3] = alpha * level
        ax.imshow(rgba, interpolation="nearest")
    if mask is not None:
        m = mask > 0
        if m.any() and not m.all():
            ax.contour(m.astype(np.float64), levels=[0.5], colors=[mask_color], linewidths=1.2)
    ax.set_xticks([])
    ax.set_yticks([])


def _check_style(alpha: float, cmap: Any) -> Any:
    if not 0.0 <= float(alpha) <= 1.0:
        raise ValueError(f"alpha must be in [0, 1]; got {alpha!r}.")
    mpl = _mpl()
    if isinstance(cmap, str):
        if cmap not in mpl.colormaps:
            raise ValueError(f"cmap must be a matplotlib colormap name such as 'jet' or 'inferno'; got {cmap!r}.")
    return cmap


def plot_overlay(
    image: Any,
    map: Any = None,
    mask: Any = None,
    ax: Axes | None = None,
    *,
    alpha: float = 0.6,
    cmap: Any = "jet",
    vmin: float | None = None,
    vmax: float | None = None,
    title: str | None = None,
    colorbar: bool = False,
    mask_color: str = "lime",
    figsize: tuple[float, float] = (4.0, 4.0),
    dpi: float = 100,
) -> Figure:
    """Plot an image with its predicted heat map and the outline of its ground-truth mask.

    The heat map is drawn in ``cmap`` with an opacity proportional to its value, so cold regions show the
    image unchanged and hot regions stand out.

    Parameters
    ----------
    image : array-like of shape (H, W), (H, W, 1) or (H, W, 3)
        The image: uint8, bool, other integers (their dtype's range) or floats (shown in [0, 1] when inside it,
        else stretched from min to max).
    map : array-like of shape (H, W) or None, default=None
        Heat map, e.g. a row of ``det.segment(X)`` or ``det.anomaly_map(X)``. None draws no heat.
    mask : array-like of shape (H, W) or None, default=None
        Ground-truth defect mask (bool, {0, 1} or {0, 255}); drawn as a contour.
    ax : matplotlib Axes or None, default=None
        Axes to draw on; None makes a new figure of ``figsize`` and ``dpi``.
    alpha : float, default=0.6
        Opacity of the heat map at ``vmax``.
    cmap : str or matplotlib Colormap, default="jet"
        Colormap of the heat map.
    vmin, vmax : float or None, default=None
        Colour range of the heat map. None: [0, 1] when the map lies inside it (probabilities), else its
        minimum (or 0) and maximum.
    title : str or None, default=None
        Axes title.
    colorbar : bool, default=False
        Whether to add a colour bar for the heat map.
    mask_color : str, default="lime"
        Colour of the mask contour.
    figsize : tuple of float, default=(4.0, 4.0)
        Size in inches of a new figure.
    dpi : float, default=100
        Resolution of a new figure: the saved PNG is ``figsize * dpi`` pixels.

    Returns
    -------
    fig : matplotlib.figure.Figure
        The figure drawn on (``ax.figure`` when ``ax`` is given).

    Raises
    ------
    ValueError
        If ``map`` or ``mask`` does not have the (H, W) shape of ``image``, or a style argument is out of
        range.
    ImportError
        If matplotlib is not installed.

    Examples
    --------
    >>> fig = plot_overlay(X[0], det.segment(X[:1])[0], masks[0])  # doctest: +SKIP
    >>> save_figure(fig, "overlay.png")  # doctest: +SKIP
    """
    img = _check_image(image, "image")
    heat = None if map is None else _check_map(map, img.shape[:2], "map", "image")
    m = None if mask is None else _check_map(mask, img.shape[:2], "mask", "image")
    _check_style(alpha, cmap)
    fig, axes = _figure_and_axes(ax, figsize, dpi)
    low, high = _map_range([heat], vmin, vmax) if heat is not None else (0.0, 1.0)
    _draw_overlay(axes, img, heat, m, alpha=alpha, cmap=cmap, vmin=low, vmax=high, mask_color=mask_color)
    if title is not None:
        axes.set_title(title)
    if colorbar and heat is not None:
        _add_colorbar(fig, axes, cmap, low, high)
    return fig


def _add_colorbar(fig: Figure, ax: Axes | Sequence[Axes], cmap: Any, vmin: float, vmax: float) -> None:
    import matplotlib as mpl
    from matplotlib.cm import ScalarMappable

    colormap = mpl.colormaps[cmap] if isinstance(cmap, str) else cmap
    fig.colorbar(ScalarMappable(norm=mpl.colors.Normalize(vmin, vmax), cmap=colormap), ax=ax, shrink=0.8)


def _panel_title(
    index: int, names: Sequence[str] | None, score: float | None, label: int | None, prefix: str = ""
) -> str:
    head = f"{prefix}{names[index] if names is not None else f'#{index}'}"
    parts = []
    if score is not None:
        parts.append(f"score {score:.3g}")
    if label is not None:
        parts.append(f"y={label}")
    return head + ("\n" + ", ".join(parts) if parts else "")


def plot_detections(
    images: Any,
    maps: Any = None,
    masks: Any = None,
    scores: Any = None,
    *,
    y: Any = None,
    names: Sequence[str] | None = None,
    n_cols: int = 4,
    alpha: float = 0.6,
    cmap: Any = "jet",
    vmin: float | None = None,
    vmax: float | None = None,
    colorbar: bool = True,
    panel_size: float = 2.5,
    dpi: float = 100,
) -> Figure:
    """Plot a grid of images with their heat maps, mask outlines and scores.

    Parameters
    ----------
    images : array-like of shape (n, H, W), (n, H, W, 1) or (n, H, W, 3)
        The images, in grid order (row by row).
    maps : array-like of shape (n, H, W) or None, default=None
        Heat maps, one per image, drawn on one colour scale.
    masks : array-like of shape (n, H, W) or None, default=None
        Ground-truth masks, drawn as contours.
    scores : array-like of shape (n,) or None, default=None
        Image scores (e.g. ``det.decision_function(X)`` or ``predict_proba(X)[:, 1]``), shown in the titles.
    y : array-like of shape (n,) or None, default=None
        True labels (0/1), shown in the titles.
    names : sequence of str or None, default=None
        Panel names (e.g. file names); None uses ``#i``.
    n_cols : int, default=4
        Panels per row.
    alpha, cmap, vmin, vmax
        As in :func:`plot_overlay`; the colour range is shared by all panels.
    colorbar : bool, default=True
        Whether to add one colour bar for the heat maps.
    panel_size : float, default=2.5
        Side of one panel in inches.
    dpi : float, default=100
        Figure resolution.

    Returns
    -------
    fig : matplotlib.figure.Figure

    Raises
    ------
    ValueError
        If ``maps``, ``masks``, ``scores``, ``y`` or ``names`` do not match ``images`` in length or (H, W).
    """
    imgs = _check_images(images)
    n, shape = len(imgs), imgs.shape[1:3]
    heat = None if maps is None else _check_stack(maps, n, shape, "maps").astype(np.float64)
    if heat is not None and not np.isfinite(heat).all():
        raise ValueError("maps must be finite; they hold NaN or infinite values.")
    gt = None if masks is None else _check_stack(masks, n, shape, "masks")
    sc = None if scores is None else _check_vector(scores, n, "scores")
    labels = None if y is None else _check_binary(y, "y")
    if labels is not None and len(labels) != n:
        raise ValueError(f"y must have shape (n,) with n = {n} (one per image); got {len(labels)} labels.")
    if names is not None and len(names) != n:
        raise ValueError(f"names must hold one name per image ({n}); got {len(names)}.")
    cols = min(_check_positive_int(n_cols, "n_cols"), n)
    rows = -(-n // cols)
    _check_style(alpha, cmap)
    low, high = _map_range(list(heat), vmin, vmax) if heat is not None else (0.0, 1.0)
    extra = 0.8 if (colorbar and heat is not None) else 0.0
    fig = _new_figure((panel_size * cols + extra, panel_size * rows + 0.3 * rows), dpi)
    axes = fig.subplots(rows, cols, squeeze=False)
    for k, ax in enumerate(axes.flat):
        if k >= n:
            ax.set_axis_off()
            continue
        _draw_overlay(
            ax, imgs[k], None if heat is None else heat[k], None if gt is None else gt[k],
            alpha=alpha, cmap=cmap, vmin=low, vmax=high, mask_color="lime",
        )
        ax.set_title(
            _panel_title(k, names, None if sc is None else float(sc[k]), None if labels is None else int(labels[k])),
            fontsize=8,
        )
    if colorbar and heat is not None:
        _add_colorbar(fig, axes.ravel().tolist(), cmap, low, high)
    return fig


def _score_sets(scores: Any, y: np.ndarray, name: str | None) -> dict[str, np.ndarray]:
    if isinstance(scores, Mapping):
        if not scores:
            raise ValueError("scores must hold at least one score set; got an empty mapping.")
        sets = {str(k): _check_vector(v, len(y), f"scores[{k!r}]", "label in y") for k, v in scores.items()}
    else:
        sets = {(name or "scores"): _check_vector(scores, len(y), "scores", "label in y")}
    return sets


def _check_curve_inputs(y: Any, scores: Any, name: str | None) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    labels = _check_binary(y, "y")
    if not (labels == 1).any() or not (labels == 0).any():
        raise ValueError(
            f"y must hold both classes (0 = normal and 1 = defective) to draw a curve; got only "
            f"{'1' if labels.any() else '0'}s ({len(labels)} labels)."
        )
    return labels, _score_sets(scores, labels, name)


def plot_pr_curve(
    y: Any,
    scores: Any,
    *,
    name: str | None = None,
    ax: Axes | None = None,
    chance_level: bool = True,
    title: str | None = "Precision-recall",
    figsize: tuple[float, float] = (5.0, 4.0),
    dpi: float = 100,
) -> Figure:
    """Plot precision-recall curves through :meth:`sklearn.metrics.PrecisionRecallDisplay.from_predictions`.

    Parameters
    ----------
    y : array-like of shape (n,)
        True labels, 0 = normal, 1 = defective; both classes must occur.
    scores : array-like of shape (n,) or mapping of str to array-like of shape (n,)
        Scores (higher = more defective), or several named score sets to compare on one axes (e.g.
        ``{"two-stage": s1, "GAN": s2}``). The legend gives each curve's average precision.
    name : str or None, default=None
        Legend name of a single score set (ignored for a mapping).
    ax : matplotlib Axes or None, default=None
        Axes to draw on; None makes a new figure.
    chance_level : bool, default=True
        Whether to draw the chance level (the defect share).
    title : str or None, default="Precision-recall"
        Axes title.
    figsize : tuple of float, default=(5.0, 4.0)
        Size in inches of a new figure.
    dpi : float, default=100
        Resolution of a new figure.

    Returns
    -------
    fig : matplotlib.figure.Figure

    Raises
    ------
    ValueError
        If ``y`` is not binary with both classes, or a score set's length differs from ``y``'s.
    """
    return _plot_curves("pr", y, scores, name=name, ax=ax, chance_level=chance_level, title=title,
                        figsize=figsize, dpi=dpi)


def plot_roc_curve(
    y: Any,
    scores: Any,
    *,
    name: str | None = None,
    ax: Axes | None = None,
    chance_level: bool = True,
    title: str | None = "ROC",
    figsize: tuple[float, float] = (5.0, 4.0),
    dpi: float = 100,
) -> Figure:
    """Plot ROC curves through :meth:`sklearn.metrics.RocCurveDisplay.from_predictions`.

    Parameters
    ----------
    y : array-like of shape (n,)
        True labels, 0 = normal, 1 = defective; both classes must occur.
    scores : array-like of shape (n,) or mapping of str to array-like of shape (n,)
        Scores (higher = more defective), or several named score sets to compare on one axes. The legend
        gives each curve's area (AUROC).
    name : str or None, default=None
        Legend name of a single score set (ignored for a mapping).
    ax : matplotlib Axes or None, default=None
        Axes to draw on; None makes a new figure.
    chance_level : bool, default=True
        Whether to draw the diagonal of a random ranking.
    title : str or None, default="ROC"
        Axes title.
    figsize : tuple of float, default=(5.0, 4.0)
        Size in inches of a new figure.
    dpi : float, default=100
        Resolution of a new figure.

    Returns
    -------
    fig : matplotlib.figure.Figure

    Raises
    ------
    ValueError
        If ``y`` is not binary with both classes, or a score set's length differs from ``y``'s.
    """
    return _plot_curves("roc", y, scores, name=name, ax=ax, chance_level=chance_level, title=title,
                        figsize=figsize, dpi=dpi)


def _plot_curves(
    kind: str,
    y: Any,
    scores: Any,
    *,
    name: str | None,
    ax: Axes | None,
    chance_level: bool,
    title: str | None,
    figsize: tuple[float, float],
    dpi: float,
) -> Figure:
    labels, sets = _check_curve_inputs(y, scores, name)
    fig, axes = _figure_and_axes(ax, figsize, dpi)
    from sklearn.metrics import PrecisionRecallDisplay, RocCurveDisplay

    display = PrecisionRecallDisplay if kind == "pr" else RocCurveDisplay
    for k, (label, values) in enumerate(sets.items()):
        display.from_predictions(labels, values, name=label, ax=axes, plot_chance_level=chance_level and k == 0)
    axes.set_xlim(-0.02, 1.02)
    axes.set_ylim(-0.02, 1.02)
    axes.legend(loc="best", fontsize=8)
    if title is not None:
        axes.set_title(title)
    return fig


def worst_errors(y: Any, scores: Any, threshold: float = 0.5, n: int = 4) -> tuple[np.ndarray, np.ndarray]:
    """Indices of the worst false positives and false negatives at a threshold.

    An image is predicted defective when ``score >= threshold`` (as :meth:`predict` does with
    ``threshold_``). The worst false positives are the normal images with the highest scores, the worst false
    negatives the defective images with the lowest scores.

    Parameters
    ----------
    y : array-like of shape (n_images,)
        True labels, 0 = normal, 1 = defective.
    scores : array-like of shape (n_images,)
        Scores, higher = more defective.
    threshold : float, default=0.5
        Decision threshold on ``scores``: 0.5 for probabilities, ``det.threshold_`` for
        ``det.decision_function`` scores.
    n : int, default=4
        At most this many of each kind.

    Returns
    -------
    false_positives : ndarray of int64
        Up to ``n`` indices, highest score first.
    false_negatives : ndarray of int64
        Up to ``n`` indices, lowest score first.
    """
    labels = _check_binary(y, "y")
    sc = _check_vector(scores, len(labels), "scores", "label in y")
    k = _check_positive_int(n, "n")
    try:
        thr = float(threshold)
    except (TypeError, ValueError) as exc:
        raise TypeError(f"threshold must be a real number; got {type(threshold).__name__}.") from exc
    if not np.isfinite(thr):
        raise ValueError(f"threshold must be finite; got {threshold!r}.")
    predicted = sc >= thr
    fp = np.flatnonzero((labels == 0) & predicted)
    fn = np.flatnonzero((labels == 1) & ~predicted)
    fp = fp[np.argsort(-sc[fp], kind="stable")][:k]
    fn = fn[np.argsort(sc[fn], kind="stable")][:k]
    return fp.astype(np.int64), fn.astype(np.int64)


def plot_worst_errors(
    images: Any,
    y: Any,
    scores: Any,
    maps: Any = None,
    *,
    masks: Any = None,
    threshold: float = 0.5,
    n: int = 4,
    names: Sequence[str] | None = None,
    alpha: float = 0.6,
    cmap: Any = "jet",
    vmin: float | None = None,
    vmax: float | None = None,
    panel_size: float = 2.5,
    dpi: float = 100,
) -> Figure:
    """Plot the worst false positives (top row) and false negatives (bottom row) at a threshold.

    The panels are chosen by :func:`worst_errors` and titled ``FP #i`` / ``FN #i`` (or the ``names``) with
    their scores. A row with no error of its kind says so.

    Parameters
    ----------
    images : array-like of shape (n_images, H, W), (n_images, H, W, 1) or (n_images, H, W, 3)
        All the images that were scored.
    y : array-like of shape (n_images,)
        True labels, 0 = normal, 1 = defective.
    scores : array-like of shape (n_images,)
        Scores, higher = more defective.
    maps : array-like of shape (n_images, H, W) or None, default=None
        Heat maps to overlay (shared colour scale).
    masks : array-like of shape (n_images, H, W) or None, default=None
        Ground-truth masks, drawn as contours.
    threshold : float, default=0.5
        Decision threshold on ``scores`` (``score >= threshold`` is predicted defective): 0.5 for
        probabilities, ``det.threshold_`` for ``det.decision_function`` scores.
    n : int, default=4
        Panels per row: at most ``n`` errors of each kind.
    names : sequence of str or None, default=None
        Image names for the titles; None uses the index ``#i``.
    alpha, cmap, vmin, vmax
        As in :func:`plot_overlay`.
    panel_size : float, default=2.5
        Side of one panel in inches.
    dpi : float, default=100
        Figure resolution.

    Returns
    -------
    fig : matplotlib.figure.Figure

    Raises
    ------
    ValueError
        If the lengths or (H, W) shapes of the inputs disagree, or ``y`` is not 0/1.
    """
    imgs = _check_images(images)
    n_images, shape = len(imgs), imgs.shape[1:3]
    labels = _check_binary(y, "y")
    if len(labels) != n_images:
        raise ValueError(f"y must have shape (n,) with n = {n_images} (one per image); got {len(labels)} labels.")
    fp, fn = worst_errors(labels, scores, threshold=threshold, n=n)
    sc = _check_vector(scores, n_images, "scores")
    heat = None if maps is None else _check_stack(maps, n_images, shape, "maps").astype(np.float64)
    gt = None if masks is None else _check_stack(masks, n_images, shape, "masks")
    if names is not None and len(names) != n_images:
        raise ValueError(f"names must hold one name per image ({n_images}); got {len(names)}.")
    _check_style(alpha, cmap)
    chosen = np.concatenate([fp, fn])
    low, high = _map_range([heat[i] for i in chosen], vmin, vmax) if heat is not None and len(chosen) else (0, 1)
    cols = int(n)
    fig = _new_figure((panel_size * cols, 2 * panel_size + 0.9), dpi)
    axes = fig.subplots(2, cols, squeeze=False)
    rows = (("FP ", fp, "false positives"), ("FN ", fn, "false negatives"))
    for r, (prefix, idx, what) in enumerate(rows):
        for c in range(cols):
            ax = axes[r, c]
            if c >= len(idx):
                ax.set_axis_off()
                if c == 0:
                    ax.text(0.5, 0.5, f"no {what}\nat threshold {threshold:.3g}", ha="center", va="center",
                            transform=ax.transAxes, fontsize=9)
                continue
            i = int(idx[c])
            _draw_overlay(
                ax, imgs[i], None if heat is None else heat[i], None if gt is None else gt[i],
                alpha=alpha, cmap=cmap, vmin=low, vmax=high, mask_color="lime",
            )
            ax.set_title(_panel_title(i, names, float(sc[i]), None, prefix), fontsize=8)
    fig.suptitle(f"Worst errors at threshold {threshold:.3g}: false positives (top), false negatives (bottom)",
                 fontsize=9)
    return fig


def save_figure(fig: Figure, path: str | os.PathLike[str], *, dpi: float | None = None, **kwargs: Any) -> Path:
    """Write a figure to a file (format from the suffix: .png, .pdf, .svg ...), creating its folder.

    Parameters
    ----------
    fig : matplotlib.figure.Figure
        The figure, e.g. returned by one of the ``plot_*`` functions.
    path : str or os.PathLike
        Output file.
    dpi : float or None, default=None
        Resolution; None keeps the figure's, so a PNG is ``figsize * dpi`` pixels.
    **kwargs
        Passed to :meth:`matplotlib.figure.Figure.savefig`.

    Returns
    -------
    path : pathlib.Path
        The file written.

    Raises
    ------
    TypeError
        If ``fig`` is not a matplotlib Figure or ``path`` not a path.
    """
    _mpl()
    from matplotlib.figure import Figure

    if not isinstance(fig, Figure):
        raise TypeError(f"fig must be a matplotlib.figure.Figure; got {type(fig).__name__}.")
    if not isinstance(path, (str, os.PathLike)):
        raise TypeError(f"path must be a str or os.PathLike; got {type(path).__name__}.")
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    kwargs.setdefault("facecolor", "white")
    fig.savefig(out, dpi=dpi if dpi is not None else fig.dpi, **kwargs)
    return out
