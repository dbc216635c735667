"""The ``skdefect`` command: ``fit``, ``evaluate``, ``predict``, ``demo`` and ``plugins``.

Every problem with the arguments or the inputs (a missing file, an unknown parameter, a folder the loader does
not understand ...) ends the command with one ``skdefect COMMAND: error: ...`` line on stderr and exit status 2,
as argparse does for malformed command lines; no traceback.
"""

from __future__ import annotations

import argparse
import ast
import csv
import difflib
import json
import os
import re
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np

#: ``--detector`` names and the estimator classes they build.
DETECTORS: dict[str, str] = {
    "two-stage": "ConcentratedTwoStageDetector",
    "gan": "DualDiscriminatorGANDetector",
}
_LAYOUTS = ("auto", "manifest", "mvtec", "kolektorsdd2")
_SPLITS = ("all", "train", "test")


class CLIError(Exception):
    """A problem with the command's arguments or inputs: printed as one line, exit status 2."""


# ----------------------------------------------------------------------------------------------------------
# small parsers
# ----------------------------------------------------------------------------------------------------------
def _image_shape(text: str) -> tuple[int, int]:
    """``N`` or ``HxW`` → (H, W)."""
    match = re.fullmatch(r"\s*(\d+)\s*(?:[xX]\s*(\d+)\s*)?", text)
    if not match:
        raise argparse.ArgumentTypeError(f"expected N or HxW with positive integers (e.g. 128 or 64x192); got {text!r}")
    h = int(match.group(1))
    w = int(match.group(2)) if match.group(2) else h
    if h < 1 or w < 1:
        raise argparse.ArgumentTypeError(f"sides must be positive; got {text!r}")
    return h, w


class _DeprecatedAlias(argparse.Action):
    """Stores like the option it stands for; says once on stderr that the old name is deprecated."""

    def __init__(self, *args: Any, new_name: str, **kwargs: Any) -> None:
        self.new_name = new_name
        super().__init__(*args, **kwargs)

    def __call__(self, parser: argparse.ArgumentParser, namespace: argparse.Namespace, values: Any,
                 option_string: str | None = None) -> None:
        if option_string is not None and option_string != self.new_name:
            print(f"skdefect: {option_string} is deprecated and will be removed in skdefect 0.3; use {self.new_name} "
                  "(the shape images are resized to when read, as the loaders' image_shape; the detectors' own "
                  "image_size is the networks' input size, --param image_size=...)", file=sys.stderr)
        setattr(namespace, self.dest, values)


def _non_negative_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer >= 0; got {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"expected an integer >= 0; got {text!r}")
    return value


def _positive_int(text: str) -> int:
    value = _non_negative_int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected an integer >= 1; got {text!r}")
    return value


def _param_value(text: str) -> Any:
    """A ``--param`` value: a Python literal (number, tuple, None, True ...) or else the plain string."""
    lowered = text.strip().lower()
    if lowered in {"true", "false"}:
        return lowered == "true"
    if lowered in {"none", "null"}:
        return None
    try:
        return ast.literal_eval(text.strip())
    except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
        return text


def parse_params(items: Sequence[str], valid: Sequence[str], estimator_name: str) -> dict[str, Any]:
    """Turn ``["key=value", ...]`` into a dict of estimator parameters.

    Parameters
    ----------
    items : sequence of str
        ``key=value`` strings; values are Python literals (``0.25``, ``(64, 64)``, ``None``, ``true``) or plain
        strings (``segdec``).
    valid : sequence of str
        The estimator's parameter names.
    estimator_name : str
        For messages.

    Returns
    -------
    params : dict

    Raises
    ------
    CLIError
        For an item without ``=``, or an unknown or repeated key.
    """
    params: dict[str, Any] = {}
    for item in items:
        key, sep, value = item.partition("=")
        key = key.strip()
        if not sep or not key:
            raise CLIError(f"--param expects KEY=VALUE (e.g. --param width=0.5); got {item!r}")
        if key not in valid:
            close = difflib.get_close_matches(key, valid, n=1)
            hint = f"; did you mean {close[0]!r}?" if close else ""
            raise CLIError(
                f"--param {key}: {estimator_name} has no parameter {key!r}{hint} Its parameters: {', '.join(valid)}"
            )
        if key in params:
            raise CLIError(f"--param {key} is given twice")
        params[key] = _param_value(value)
    return params


# ----------------------------------------------------------------------------------------------------------
# data
# ----------------------------------------------------------------------------------------------------------
def _check_data_path(path: str) -> Path:
    p = Path(path)
    if not p.exists():
        raise CLIError(f"DATA not found: {p} (expected an image folder or a manifest CSV)")
    return p


def _data_root(path: Path) -> Path:
    return path.parent if path.is_file() else path


def _load_data(
    args: argparse.Namespace, image_shape: tuple[int, int] | None, color: str, *, allow_unlabelled: bool
) -> tuple[np.ndarray, np.ndarray | None, np.ndarray | None, list[Path]]:
    """Read DATA: ``(X, y, masks, paths)``; ``y`` is None for a plain folder of images (predict only)."""
    from .datasets import IMAGE_EXTENSIONS, detect_layout, list_images, load_image_folder, read_images

    path = _check_data_path(args.data)
    plain: list[Path] | None = None
    if allow_unlabelled and args.layout == "auto":
        if path.is_file() and path.suffix.lower() in IMAGE_EXTENSIONS:
            plain = [path]
        elif path.is_dir():
            try:
                detect_layout(path)
            except ValueError:
                plain, mask_files = list_images(path)
                if mask_files:
                    print(f"DATA {path}: {_plural(len(mask_files), 'mask file')} beside the images skipped "
                          f"(names ending in _GT, _mask, ... or a .png beside a same-named .jpg), e.g. "
                          f"{mask_files[0].name}", file=sys.stderr)
                if not plain:
                    raise CLIError(
                        f"DATA {path} holds no image files ({', '.join(IMAGE_EXTENSIONS)}), no manifest.csv and no "
                        "MVTec AD or KolektorSDD2 layout"
                    ) from None
    if plain is not None:
        return read_images(plain, image_shape, color=color), None, None, plain
    X, y, masks, paths, sources = load_image_folder(
        path, image_shape, layout=args.layout, color=color, split=args.split, return_paths=True,
        return_label_sources=True,
    )
    if (sources != "label").any():  # say how labels were decided whenever a rule other than a given label decided
        parts = [f"{_plural(int((sources == 'label').sum()), 'image')} from the 'label' column"]
        for source, rule in (("folder", "from their folder (normal: good/, ok/, *_free/ ...; defective: the "
                                        "other folders beside it)"),
                             ("mask", "derived from the masks (defective: a mask with a defect pixel)")):
            chosen = sources == source
            if chosen.any():
                parts.append(f"{int(chosen.sum())} {rule}, {int(y[chosen].sum())} of those defective")
        print(f"labels of DATA {path}: {'; '.join(parts)}; a 'label' cell decides an image yourself",
              file=sys.stderr)
    return X, y, masks, [Path(p) for p in paths]


def _relative_name(path: Path, root: Path) -> str | None:
    """``path`` relative to ``root`` (posix), or None when it lies outside."""
    try:
        return path.resolve().relative_to(root.resolve()).as_posix()
    except ValueError:
        return None


def _add_data_options(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--layout", choices=_LAYOUTS, default="auto",
        help="how DATA is organised (default: auto, recognises a manifest CSV, MVTec AD and KolektorSDD2)",
    )
    p.add_argument(
        "--split", choices=_SPLITS, default="all",
        help="part of an MVTec AD category or KolektorSDD2 root to read (default: all)",
    )


def _add_common_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--device", default="auto", help="'auto' (CUDA when present), 'cpu', 'cuda' or 'cuda:N' "
                   "(default: auto)")
    p.add_argument("-v", "--verbose", action="store_true", help="show progress bars and per-epoch tables")


# ----------------------------------------------------------------------------------------------------------
# prediction in chunks (progress bar, bounded peak memory of the networks)
# ----------------------------------------------------------------------------------------------------------
def _chunks(n: int, size: int, verbose: bool, desc: str) -> Iterator[slice]:
    from tqdm import tqdm

    with tqdm(total=n, desc=desc, unit="img", disable=not verbose, file=sys.stderr) as bar:
        for start in range(0, n, size):
            stop = min(start + size, n)
            yield slice(start, stop)
            bar.update(stop - start)


def _map_function(det: Any) -> tuple[Callable[[np.ndarray], np.ndarray], bool]:
    """The detector's heat-map method and whether its maps are probabilities in [0, 1]."""
    if hasattr(det, "segment"):
        return det.segment, True
    return det.anomaly_map, False


def _predict_all(
    det: Any, X: np.ndarray, batch: int, verbose: bool, with_maps: bool
) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """Scores, P(defect) and (optionally) heat maps of all images."""
    map_fn, _ = _map_function(det)
    scores, maps = [], []
    for sl in _chunks(len(X), batch, verbose, "predicting"):
        scores.append(det.decision_function(X[sl]))
        if with_maps:
            maps.append(np.asarray(map_fn(X[sl]), dtype=np.float32))
    s = np.concatenate(scores).astype(np.float64)
    proba = det.proba_from_decision(s)
    return s, np.asarray(proba, dtype=np.float64), (np.concatenate(maps) if with_maps else None)


def _overlay_vmax(det: Any, maps: np.ndarray) -> float:
    """Heat drawn fully red: 1 for probability maps; a high quantile over the whole data set otherwise."""
    _, is_probability = _map_function(det)
    if is_probability:
        return 1.0
    return max(float(np.quantile(maps, 0.999)), 1e-8)


def _write_overlays(
    out: Path, X: np.ndarray, maps: np.ndarray, masks: np.ndarray | None, paths: Sequence[Path], root: Path,
    indices: Sequence[int], vmax: float, verbose: bool, scores: np.ndarray, threshold: float,
    y: np.ndarray | None = None,
) -> list[str]:
    """One PNG per chosen image under ``out``, mirroring the images' folders; returns the written names.

    Each overlay is enlarged to a readable size and captioned with the score, the threshold decision and, where
    ``y`` is known, the true label.
    """
    from PIL import Image
    from tqdm import tqdm

    from .viz import caption_image, overlay_image

    written: list[str] = []
    taken: set[str] = set()
    for i in tqdm(indices, desc="overlays", unit="img", disable=not verbose, file=sys.stderr):
        rel = _relative_name(paths[i], root)
        name = Path(rel).with_suffix(".png").as_posix() if rel is not None else f"{i:05d}_{paths[i].stem}.png"
        if name in taken:  # e.g. a.jpg and a.png side by side
            name = f"{name[:-4]}_{i:05d}.png"
        taken.add(name)
        target = out / name
        target.parent.mkdir(parents=True, exist_ok=True)
        rgb = overlay_image(X[i], maps[i], None if masks is None else masks[i], vmax=vmax)
        decision = "defective" if scores[i] >= threshold else "normal"
        caption = [f"score {scores[i]:.3g} vs threshold {threshold:.3g}: {decision}"]
        if y is not None:
            caption.append(f"true label: {'defective' if y[i] else 'normal'}")
        Image.fromarray(caption_image(rgb, caption)).save(target)
        written.append(target.relative_to(out).as_posix())
    return written


def _load_model(path: str, device: str) -> Any:
    p = Path(path)
    if not p.is_file():
        raise CLIError(f"MODEL not found: {p} (a file written by `skdefect fit --out` or `det.save(path)`)")
    import skdefect

    return skdefect.load(p, device=device)


def _model_shape(det: Any) -> tuple[tuple[int, int], str]:
    h, w, c = (tuple(det.input_shape_) + (1,))[:3]
    return (int(h), int(w)), ("rgb" if c == 3 else "gray")


def _prepare_out_dir(path: str) -> Path:
    out = Path(path)
    if out.exists() and not out.is_dir():
        raise CLIError(f"--out {out} exists and is not a folder")
    out.mkdir(parents=True, exist_ok=True)
    earlier = [p for p in (out / "overlays").rglob("*.png")] if (out / "overlays").is_dir() else []
    if earlier:
        print(f"note: --out {out} holds {_plural(len(earlier), 'overlay')} of an earlier run; this run replaces "
              "those of its own images and leaves the others (use an empty folder to keep runs apart)",
              file=sys.stderr)
    return out


def _csv_safe(value: str) -> str:
    """A CSV cell a spreadsheet will not run as a formula (OWASP's CSV-injection rule: quote a leading
    ``=``, ``+``, ``-``, ``@``, tab or carriage return)."""
    return "'" + value if value[:1] in ("=", "+", "-", "@", "\t", "\r") else value


def _plural(n: int, word: str) -> str:
    return f"{n} {word}{'' if n == 1 else 's'}"


def _have_matplotlib() -> bool:
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        return False
    return True


# ----------------------------------------------------------------------------------------------------------
# commands
# ----------------------------------------------------------------------------------------------------------
def _cmd_plugins(args: argparse.Namespace) -> int:
    from .plugins import list_plugins

    entries = list_plugins()
    if args.kind:
        entries = [e for e in entries if e.kind == args.kind]
    width = max((len(e.name) for e in entries), default=4)
    print(f"{'name':<{width}}  {'kind':<8}  origin")
    for e in entries:
        print(f"{e.name:<{width}}  {e.kind:<8}  {e.origin}")
    return 0


def _cmd_demo(args: argparse.Namespace) -> int:
    from . import demo

    return demo.run(
        n_samples=args.n_samples,
        image_side=args.image_shape,
        textures=tuple(t.strip() for t in args.textures.split(",") if t.strip()),
        out_dir=args.out,
        device=args.device,
        random_state=args.random_state,
    )


def _build_detector(args: argparse.Namespace) -> Any:
    import skdefect

    cls = getattr(skdefect, DETECTORS[args.detector])
    name = cls.__name__
    valid = sorted(cls().get_params(deep=False))
    params: dict[str, Any] = {"device": args.device, "random_state": args.random_state, "verbose": int(args.verbose)}
    if args.epochs is not None:
        params.update({"epochs": args.epochs} if args.detector == "gan" else
                      {"seg_epochs": args.epochs, "dec_epochs": args.epochs})
    for option, key in (("seg_epochs", "seg_epochs"), ("dec_epochs", "dec_epochs")):
        value = getattr(args, option)
        if value is not None:
            if args.detector != "two-stage":
                raise CLIError(f"--{option.replace('_', '-')} applies to --detector two-stage only; "
                               "use --epochs for the GAN")
            params[key] = value
    if args.batch_size is not None:
        params["batch_size"] = args.batch_size
    params.update(parse_params(args.param or [], valid, name))
    det = cls(**params)
    det._validate_params()  # sklearn's parameter checks, before any data is read
    from ._runtime import resolve_device

    resolve_device(det.device)
    return det


def _check_writable(out: Path) -> None:
    """Fail before training when the model file could not be written (its folder is created if missing)."""
    import tempfile

    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        fd, probe = tempfile.mkstemp(prefix=out.name + ".", suffix=".probe", dir=out.parent)
        os.close(fd)
        os.unlink(probe)
    except OSError as exc:
        raise CLIError(f"--out {out} cannot be written ({exc.strerror or exc}); checked before training") from None


def _cmd_fit(args: argparse.Namespace) -> int:
    det = _build_detector(args)
    out = Path(args.out)
    if out.is_dir():
        raise CLIError(f"--out {out} is a folder; give the model file's name (e.g. {out / 'model.skdefect'})")
    _check_writable(out)
    image_shape = args.image_shape
    try:  # the networks' size rule, before any image is read (the networks are built without storage)
        det._check_input_size(*image_shape, 3 if args.color == "rgb" else 1)
    except ValueError as exc:
        if "set image_size" not in str(exc):
            raise
        raise CLIError(f"{exc}. On the command line: --image-shape with such sides (images are resized when read), "
                       "or --param image_size=... (resized on the device); checked before reading DATA") from None
    X, y, masks, paths = _load_data(args, image_shape, args.color, allow_unlabelled=False)
    assert y is not None
    n_def = int(y.sum())
    if args.detector == "two-stage":
        if masks is None:
            raise CLIError(
                f"the two-stage detector trains on defect masks, and DATA {args.data} has none (a manifest "
                "without a 'mask' column); add masks or use --detector gan"
            )
        if n_def == 0:
            raise CLIError(f"DATA {args.data} holds no defective image; the two-stage detector needs some "
                           "(the GAN trains on normal images alone: --detector gan)")
    print(
        f"skdefect fit: {type(det).__name__} on {len(X)} images ({n_def} defective) of "
        f"{X.shape[1]}x{X.shape[2]} {'RGB' if X.ndim == 4 else 'gray'} from {args.data}",
        flush=True,
    )
    if args.detector == "two-stage" and masks is not None:
        unknown = int(((y == 1) & ~masks.any(axis=(1, 2))).sum())
        if unknown:
            print(f"  {unknown} of the {n_def} defective images have no defect pixel in their mask: they train "
                  "the decision stage only (mixed supervision)", flush=True)
    out.parent.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    try:
        if args.detector == "two-stage":
            det.fit(X, y, masks=masks)
        else:
            det.fit(X, y)
    except ValueError as exc:
        if "set image_size" not in str(exc):
            raise
        raise CLIError(f"{exc}. On the command line: --image-shape with such sides (images are resized when "
                       "read), or --param image_size=... (resized on the device)") from None
    seconds = time.perf_counter() - start
    written = det.save(out)
    print(f"trained in {seconds:.1f} s; threshold_ = {det.threshold_:.6g}; model written to {written}")
    return 0


def _metrics(y: np.ndarray, scores: np.ndarray, labels: np.ndarray) -> tuple[dict[str, Any], list[str]]:
    from sklearn.metrics import accuracy_score, confusion_matrix, f1_score, precision_score, recall_score

    from .metrics import average_precision, roc_auc

    notes = []
    both = bool((y == 1).any() and (y == 0).any())
    tn, fp, fn, tp = (int(v) for v in confusion_matrix(y, labels, labels=[0, 1]).ravel())
    metrics: dict[str, Any] = {
        "AP": average_precision(y, scores) if both else None,
        "AUROC": roc_auc(y, scores) if both else None,
        "F1": float(f1_score(y, labels, zero_division=0.0)),
        "precision": float(precision_score(y, labels, zero_division=0.0)),
        "recall": float(recall_score(y, labels, zero_division=0.0)),
        "accuracy": float(accuracy_score(y, labels)),
        "confusion_matrix": {"tn": tn, "fp": fp, "fn": fn, "tp": tp},
    }
    if not both:
        notes.append("AP and AUROC are null: DATA holds one class only (a ranking needs both)")
    return metrics, notes


def _pixel_auroc(maps: np.ndarray, masks: np.ndarray, y: np.ndarray) -> float | None:
    """AUROC over all pixels of the images whose masks are known (defective images with empty masks left out)."""
    from .metrics import pixel_roc_auc

    known = ~((y == 1) & ~masks.any(axis=(1, 2)))
    truth = masks[known]
    if not truth.any() or truth.all():
        return None
    return pixel_roc_auc(maps, masks, known)


def _cmd_evaluate(args: argparse.Namespace) -> int:
    _check_data_path(args.data)
    det = _load_model(args.model, args.device)
    out = _prepare_out_dir(args.out)
    shape, color = _model_shape(det)
    X, y, masks, paths = _load_data(args, shape, color, allow_unlabelled=False)
    assert y is not None
    if args.verbose:
        print(f"loaded {len(X)} images ({int(y.sum())} defective) from {args.data}", file=sys.stderr)
    scores, proba, maps = _predict_all(det, X, args.batch_size, args.verbose, with_maps=True)
    assert maps is not None
    labels = (scores >= det.threshold_).astype(np.int64)
    metrics, notes = _metrics(y, scores, labels)
    pixel = _pixel_auroc(maps, masks, y) if masks is not None else None
    if masks is None:
        notes.append("pixel_AUROC is null: DATA has no masks")
    elif pixel is None:
        notes.append("pixel_AUROC is null: the known masks hold no defect pixel (or only defect pixels)")
    report: dict[str, Any] = {
        "model": str(args.model),
        "detector": type(det).__name__,
        "data": str(args.data),
        "n_images": len(X),
        "n_defective": int(y.sum()),
        "threshold": float(det.threshold_),
        **metrics,
        "pixel_AUROC": pixel,
        "notes": notes,
        "figures": [],
        "overlays": [],
    }
    vmax = _overlay_vmax(det, maps)
    n_over = min(args.n_overlays, len(X))
    report["overlays"] = [f"overlays/{n}" for n in _write_overlays(
        out / "overlays", X, maps, masks, paths, _data_root(Path(args.data)), range(n_over), vmax, args.verbose,
        scores, float(det.threshold_), y)]
    if _have_matplotlib():
        report["figures"] = _evaluation_figures(out, det, X, y, scores, maps, masks, paths, Path(args.data), vmax)
    else:
        notes.append('no figures: matplotlib is not installed (pip install "skdefect[viz]")')
        print('skdefect evaluate: note: PR/ROC figures need matplotlib: pip install "skdefect[viz]"', file=sys.stderr)
    (out / "metrics.json").write_text(json.dumps(report, indent=2))
    fmt = {k: ("n/a" if report[k] is None else f"{report[k]:.4f}") for k in ("AP", "AUROC", "F1", "pixel_AUROC")}
    print(f"{len(X)} images ({report['n_defective']} defective): AP {fmt['AP']}  AUROC {fmt['AUROC']}  "
          f"F1 {fmt['F1']} at threshold_ {det.threshold_:.4g}  pixel AUROC {fmt['pixel_AUROC']}")
    written = ["metrics.json"]
    if report["figures"]:
        written.append(_plural(len(report["figures"]), "figure"))
    if report["overlays"]:
        written.append(_plural(len(report["overlays"]), "overlay"))
    print(f"{', '.join(written[:-1])} and {written[-1]} written to {out}" if len(written) > 1
          else f"metrics.json written to {out}")
    return 0


def _evaluation_figures(
    out: Path, det: Any, X: np.ndarray, y: np.ndarray, scores: np.ndarray, maps: np.ndarray,
    masks: np.ndarray | None, paths: Sequence[Path], data: Path, vmax: float,
) -> list[str]:
    from . import viz

    files = []
    name = type(det).__name__
    if (y == 1).any() and (y == 0).any():
        viz.save_figure(viz.plot_pr_curve(y, scores, name=name), out / "pr_curve.png")
        viz.save_figure(viz.plot_roc_curve(y, scores, name=name), out / "roc_curve.png")
        files += ["pr_curve.png", "roc_curve.png"]
    root = _data_root(data)
    names = [_relative_name(p, root) or p.name for p in paths]
    fig = viz.plot_worst_errors(X, y, scores, maps, masks=masks, threshold=det.threshold_, n=4, names=names,
                                vmin=0.0, vmax=vmax)
    viz.save_figure(fig, out / "worst_errors.png")
    files.append("worst_errors.png")
    return files


def _cmd_predict(args: argparse.Namespace) -> int:
    _check_data_path(args.data)
    det = _load_model(args.model, args.device)
    out = _prepare_out_dir(args.out)
    shape, color = _model_shape(det)
    X, _, masks, paths = _load_data(args, shape, color, allow_unlabelled=True)
    if args.verbose:
        print(f"loaded {len(X)} images from {args.data}", file=sys.stderr)
    n_over = len(X) if args.n_overlays is None else min(args.n_overlays, len(X))
    scores, proba, maps = _predict_all(det, X, args.batch_size, args.verbose, with_maps=n_over > 0)
    labels = (scores >= det.threshold_).astype(np.int64)
    root = _data_root(Path(args.data))
    csv_path = out / "predictions.csv"
    with open(csv_path, "w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh)
        writer.writerow(["file", "score", "probability", "label"])
        for p, s, pr, lab in zip(paths, scores, proba, labels, strict=True):
            writer.writerow([_csv_safe(_relative_name(p, root) or str(p)), f"{s:.6g}", f"{pr:.6g}", int(lab)])
    if n_over:
        assert maps is not None
        _write_overlays(out / "overlays", X, maps, masks, paths, root, range(n_over), _overlay_vmax(det, maps),
                        args.verbose, scores, float(det.threshold_))
    overlays = f" and {_plural(n_over, 'overlay')}" if n_over else ""
    print(f"{_plural(len(X), 'image')}, {int(labels.sum())} predicted defective; predictions.csv{overlays} "
          f"written to {out}")
    return 0


# ----------------------------------------------------------------------------------------------------------
# the parser
# ----------------------------------------------------------------------------------------------------------
_DATA_HELP = (
    "an image folder or a manifest CSV: a CSV file (columns image, mask, label; paths relative to it), a folder "
    "holding manifest.csv, an MVTec AD category folder or a KolektorSDD2 folder"
)


class _Formatter(argparse.RawDescriptionHelpFormatter):
    def __init__(self, prog: str) -> None:
        super().__init__(prog, max_help_position=32, width=min(100, _terminal_width()))


def _terminal_width() -> int:
    try:
        return os.get_terminal_size().columns
    except OSError:
        return 100


def build_parser() -> argparse.ArgumentParser:
    """The ``skdefect`` argument parser (sub-commands ``fit``, ``evaluate``, ``predict``, ``demo``, ``plugins``)."""
    parser = argparse.ArgumentParser(
        prog="skdefect",
        description="Deep surface-defect and anomaly detectors with a scikit-learn face.",
        epilog="Run 'skdefect COMMAND --help' for a command's options.",
        formatter_class=_Formatter,
    )
    from . import __version__

    parser.add_argument("--version", action="version", version=f"skdefect {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True

    # -- fit -------------------------------------------------------------------------------------------------
    p = sub.add_parser(
        "fit",
        help="train a detector on an image folder or manifest and save it to a model file",
        description="Train a detector on the images, labels and masks of DATA and write it to the model file MODEL "
        "(safetensors + JSON, read back by 'skdefect evaluate/predict' or skdefect.load).",
        epilog="examples:\n"
        "  skdefect fit data/manifest.csv --detector two-stage --out model.skdefect --image-shape 128\n"
        "  skdefect fit mvtec/bottle --split train --detector gan --out bottle.skdefect --epochs 50 \\\n"
        "      --param width=0.5 --param anomaly_score=patch -v",
        formatter_class=_Formatter,
    )
    p.add_argument("data", metavar="DATA", help=_DATA_HELP)
    p.add_argument("--detector", required=True, choices=list(DETECTORS),
                   help="two-stage: ConcentratedTwoStageDetector (needs masks); "
                        "gan: DualDiscriminatorGANDetector (labels optional, one-class without anomalies)")
    p.add_argument("--out", required=True, metavar="MODEL", help="model file to write (e.g. model.skdefect)")
    p.add_argument("--image-shape", "--image-size", dest="image_shape", type=_image_shape, default=(128, 128),
                   metavar="N|HxW", action=_DeprecatedAlias, new_name="--image-shape",
                   help="resize every image to N x N (or H x W) pixels when read (the loaders' image_shape); the "
                        "networks need sides divisible by 8 (two-stage) or 16 (gan) (default: 128; --image-size "
                        "is its deprecated name)")
    p.add_argument("--color", choices=["gray", "rgb"], default="gray", help="read images as gray or RGB "
                   "(default: gray)")
    _add_data_options(p)
    p.add_argument("--epochs", type=_positive_int, metavar="N",
                   help="training epochs: the GAN's epochs, or both stages of the two-stage detector")
    p.add_argument("--seg-epochs", type=_non_negative_int, metavar="N", help="two-stage: segmentation epochs")
    p.add_argument("--dec-epochs", type=_non_negative_int, metavar="N", help="two-stage: decision epochs")
    p.add_argument("--batch-size", type=_positive_int, metavar="N", help="training minibatch size")
    p.add_argument("--param", action="extend", nargs="+", metavar="KEY=VALUE",
                   help="any other estimator parameter, e.g. --param width=0.5 gamma=2 backbone=segdec "
                        "(values are Python literals or plain strings; applied after the options above)")
    p.add_argument("--random-state", type=int, default=0, metavar="SEED", help="seed (default: 0)")
    _add_common_options(p)
    p.set_defaults(func=_cmd_fit)

    # -- evaluate --------------------------------------------------------------------------------------------
    p = sub.add_parser(
        "evaluate",
        help="score a saved model on labelled data: metrics JSON, PR/ROC curves, overlays",
        description="Score the model on DATA (labels required; masks optional) and write into DIR: metrics.json "
        "(AP, AUROC, F1/precision/recall at the model's threshold_, confusion matrix, pixel AUROC when DATA has "
        "masks), pr_curve.png, roc_curve.png, worst_errors.png and heat-map overlays of the first images. "
        "Images are resized to the model's input size.",
        epilog="example:\n  skdefect evaluate model.skdefect mvtec/bottle --split test --out eval/",
        formatter_class=_Formatter,
    )
    p.add_argument("model", metavar="MODEL", help="model file written by 'skdefect fit'")
    p.add_argument("data", metavar="DATA", help=_DATA_HELP)
    p.add_argument("--out", required=True, metavar="DIR", help="output folder (created if needed)")
    _add_data_options(p)
    p.add_argument("--n-overlays", type=_non_negative_int, default=16, metavar="N",
                   help="heat-map overlay PNGs to write, of the first N images (default: 16)")
    p.add_argument("--batch-size", type=_positive_int, default=64, metavar="N",
                   help="images per prediction step (default: 64)")
    _add_common_options(p)
    p.set_defaults(func=_cmd_evaluate)

    # -- predict ---------------------------------------------------------------------------------------------
    p = sub.add_parser(
        "predict",
        help="apply a saved model to images: predictions CSV and heat-map overlays",
        description="Apply the model to DATA and write into DIR: predictions.csv (file, score, probability, "
        "label; label 1 = defective at the model's threshold_) and one heat-map overlay PNG per image under "
        "overlays/. DATA may also be a plain folder of images or one image file.",
        epilog="example:\n  skdefect predict model.skdefect new_parts/ --out predictions/ --n-overlays 0",
        formatter_class=_Formatter,
    )
    p.add_argument("model", metavar="MODEL", help="model file written by 'skdefect fit'")
    p.add_argument("data", metavar="DATA", help=_DATA_HELP + ", a plain folder of images or one image file")
    p.add_argument("--out", required=True, metavar="DIR", help="output folder (created if needed)")
    _add_data_options(p)
    p.add_argument("--n-overlays", type=_non_negative_int, default=None, metavar="N",
                   help="write overlays of the first N images only (default: all; 0: none)")
    p.add_argument("--batch-size", type=_positive_int, default=64, metavar="N",
                   help="images per prediction step (default: 64)")
    _add_common_options(p)
    p.set_defaults(func=_cmd_predict)

    # -- plugins / demo --------------------------------------------------------------------------------------
    p = sub.add_parser("plugins", help="list every registered loss, sampler and backbone with its origin")
    p.add_argument("--kind", choices=["loss", "sampler", "backbone"], help="list one kind only")
    p.set_defaults(func=_cmd_plugins)

    p = sub.add_parser(
        "demo",
        help="train both detectors and a baseline on the embedded synthetic surface-defect data",
        description="Generates textured surfaces with synthetic defects (scikit-image textures, the defaults of "
        "skdefect.datasets.make_surface_defects), trains both detectors with their default configuration and "
        "logistic regression on the pixels, and prints their test metrics with what they mean.",
    )
    p.add_argument("--n-samples", type=int, default=400, help="images to generate (default: 400)")
    p.add_argument("--image-shape", "--image-size", dest="image_shape", type=int, default=64, metavar="N",
                   action=_DeprecatedAlias, new_name="--image-shape",
                   help="side of the square images (default: 64; --image-size is its deprecated name)")
    p.add_argument(
        "--textures", default="",
        help="comma-separated scikit-image textures out of brick, grass, gravel (default: all three)",
    )
    p.add_argument("--out", default="skdefect-demo", help="folder for the outputs (default: ./skdefect-demo)")
    p.add_argument("--device", default="auto", help="'auto', 'cpu' or 'cuda' (default: auto)")
    p.add_argument("--random-state", type=int, default=0, help="seed (default: 0)")
    p.set_defaults(func=_cmd_demo)
    return parser


#: Exceptions that mean "bad arguments or inputs": one line on stderr, exit status 2.
_USER_ERRORS: tuple[type[BaseException], ...] = (CLIError, OSError, ValueError, TypeError)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``skdefect`` command.

    Parameters
    ----------
    argv : sequence of str or None, default=None
        The arguments after ``skdefect``; None reads ``sys.argv``.

    Returns
    -------
    status : int
        0 on success.

    Raises
    ------
    SystemExit
        With status 2 for a malformed command line (argparse) and for bad arguments or inputs found later
        (missing files, unknown parameters, unreadable data ...), after one ``skdefect COMMAND: error: ...``
        line on stderr; with status 130 on Ctrl-C.
    """
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except _USER_ERRORS as exc:
        message = str(exc) or type(exc).__name__
        if isinstance(exc, OSError) and exc.filename is not None and exc.strerror:
            message = f"{exc.strerror}: {exc.filename}"
        print(f"skdefect {args.command}: error: {message}", file=sys.stderr)
        raise SystemExit(2) from None
    except KeyboardInterrupt:
        print(f"skdefect {args.command}: interrupted", file=sys.stderr)
        raise SystemExit(130) from None


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
