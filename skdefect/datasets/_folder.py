"""Loading images, labels and masks from folders: a CSV manifest, MVTec AD and KolektorSDD2 layouts."""

from __future__ import annotations

import numbers
import os
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path, PurePath, PurePosixPath
from typing import Any

import numpy as np

from ._common import (
    check_color,
    check_image_shape,
    read_csv_rows,
    read_image,
    read_mask,
    resize_image,
    resize_mask,
)

__all__ = ["IMAGE_EXTENSIONS", "LAYOUTS", "detect_layout", "list_images", "load_image_folder", "read_images"]

#: File extensions read as images (case-insensitive).
IMAGE_EXTENSIONS: tuple[str, ...] = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff")
#: Layouts understood by :func:`load_image_folder`.
LAYOUTS: tuple[str, ...] = ("auto", "manifest", "mvtec", "kolektorsdd2")
_SPLITS = ("all", "train", "test")
_TRUE = {"1", "true", "yes"}
_FALSE = {"0", "false", "no"}


@dataclass(frozen=True)
class _Record:
    image: Path
    mask: Path | None  # None: no mask file (an all-normal mask unless the label says otherwise)
    label: int | None  # None: derive from the mask
    source: str = "label"  # how ``label`` was decided: "label" (given) or "folder" (the folder's name)


#: Folder names that mean "normal images" (case-insensitive): MVTec AD ``good``, Magnetic tile ``MT_Free``, ...
NORMAL_FOLDER = re.compile(r"good|ok|normal|free|defect[-_ ]?free|non[-_ ]?defective|.+[-_ ]free", re.IGNORECASE)


def _relative(entry: str, base: Path) -> PurePath | None:
    """A manifest's image entry relative to the manifest's folder (None: an absolute path outside it)."""
    path = PurePosixPath(entry.replace("\\", "/"))
    if not path.is_absolute():
        return path
    try:
        return PurePosixPath(Path(entry).relative_to(base).as_posix())
    except ValueError:
        return None


def folder_labels(relative_paths: Sequence[PurePath | None]) -> list[int | None]:
    """Labels that the folders of a manifest's images decide: 0 in a normal folder (:data:`NORMAL_FOLDER`),
    1 in another folder at the same level; None where the layout says nothing.

    The rule applies only when every normal-named folder sits at one depth below the manifest (e.g.
    ``MT_Free/Imgs/x.jpg`` beside ``MT_Crack/Imgs/y.jpg``, depth 0); images less deep are left to their masks.
    """
    depths = {i for p in relative_paths if p is not None
              for i, part in enumerate(p.parts[:-1]) if NORMAL_FOLDER.fullmatch(part)}
    if len(depths) != 1:
        return [None] * len(relative_paths)
    (depth,) = depths
    return [None if p is None or len(p.parts) - 1 <= depth else int(not NORMAL_FOLDER.fullmatch(p.parts[depth]))
            for p in relative_paths]


def _natural_key(path: Path) -> list[Any]:
    return [int(t) if t.isdigit() else t.lower() for t in re.split(r"(\d+)", str(path))]


def _image_files(folder: Path) -> list[Path]:
    return sorted(
        (p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_EXTENSIONS), key=_natural_key
    )


#: Name endings that mark a mask file beside its image (KolektorSDD2 ``_GT``, MVTec AD ``_mask``, ...).
MASK_SUFFIXES = ("_gt", "_mask", "_masks", "_label", "_labels")


def split_masks(files: list[Path]) -> tuple[list[Path], list[Path]]:
    """Separate the mask files of a plain folder from its images: ``(images, masks)``.

    A file is a mask when its name ends with one of :data:`MASK_SUFFIXES` (case-insensitive) before the
    extension, or when it is a ``.png``/``.bmp`` beside a file of the same stem with another extension (the
    Magnetic tile and CrackForest convention: ``x.jpg`` with its mask ``x.png``).
    """
    by_stem: dict[tuple[Path, str], list[Path]] = {}
    for f in files:
        by_stem.setdefault((f.parent, f.stem), []).append(f)
    images, masks = [], []
    for f in files:
        lossless_twin = f.suffix.lower() in (".png", ".bmp") and any(
            o.suffix.lower() not in (".png", ".bmp") for o in by_stem[(f.parent, f.stem)] if o != f)
        (masks if f.stem.lower().endswith(MASK_SUFFIXES) or lossless_twin else images).append(f)
    return images, masks


# ----------------------------------------------------------------------------------------------------------
# reading a list of records into arrays
# ----------------------------------------------------------------------------------------------------------
def load_records(
    records: Sequence[_Record],
    image_shape: tuple[int, int] | None,
    color: str,
    mask_threshold: int,
    *,
    has_masks: bool,
) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """Read records into ``(X, y, masks)``; see :mod:`skdefect.datasets._common` for the resizing rules.

    Parameters
    ----------
    records : sequence of _Record
        What to read, in order.
    image_shape : tuple of (int, int) or None
        Output ``(H, W)``; ``None`` keeps the native size, which must then be common to all images.
    color : {"gray", "rgb"}
        Output colour mode.
    mask_threshold : int
        Mask pixels ``> mask_threshold`` are defect pixels.
    has_masks : bool
        Whether to return masks (records without a mask file get an empty one) or ``None``.

    Returns
    -------
    X : ndarray of uint8, shape (n, H, W) or (n, H, W, 3)
        Images.
    y : ndarray of int64, shape (n,)
        Labels: the record's label, or ``mask.any()`` where the record has none.
    masks : ndarray of bool, shape (n, H, W), or None
        Masks, or ``None`` when ``has_masks`` is false.
    """
    if len(records) == 0:
        raise ValueError("no images found to load (the folder or manifest lists no image files).")
    images: list[np.ndarray] = []
    masks: list[np.ndarray] = []
    y = np.zeros(len(records), dtype=np.int64)
    first_shape: tuple[int, int] | None = None
    for i, rec in enumerate(records):
        img = read_image(rec.image, color)
        native = (img.height, img.width)
        if image_shape is None:
            if first_shape is None:
                first_shape = native
            elif native != first_shape:
                raise ValueError(
                    f"image_shape=None keeps native sizes, which must then agree: {records[0].image} is "
                    f"{first_shape} (H, W) but {rec.image} is {native}. Pass image_shape=(H, W) to resize."
                )
        images.append(resize_image(img, image_shape))
        mask = None
        if rec.mask is not None:
            mask = read_mask(rec.mask, mask_threshold)
            if mask.shape != native:
                raise ValueError(
                    f"mask {rec.mask} has shape {mask.shape} (H, W) but its image {rec.image} has shape {native}."
                )
        has_defect = mask is not None and bool(mask.any())
        if rec.label == 0 and rec.source == "folder" and has_defect:
            raise ValueError(
                f"{rec.image} is in a folder of normal images ({rec.image.parent.name}) but its mask {rec.mask} "
                "has defect pixels; give the image a 'label' cell in the manifest to decide"
            )
        y[i] = rec.label if rec.label is not None else int(has_defect)
        if has_masks:
            out_shape = image_shape if image_shape is not None else native
            masks.append(resize_mask(mask, image_shape) if mask is not None else np.zeros(out_shape, dtype=bool))
    X = np.stack(images)
    return X, y, (np.stack(masks) if has_masks else None)


# ----------------------------------------------------------------------------------------------------------
# layouts
# ----------------------------------------------------------------------------------------------------------
def _parse_label(value: str, where: str) -> int:
    text = value.strip().lower()
    if text in _TRUE:
        return 1
    if text in _FALSE:
        return 0
    try:
        number = float(text)
    except ValueError:
        number = None
    if number in (0.0, 1.0):
        return int(number)
    raise ValueError(f"label must be 0 or 1 (or true/false); got {value!r} at {where}.")


def _manifest_records(csv_path: Path) -> tuple[list[_Record], bool]:
    base = csv_path.parent
    fields, rows = read_csv_rows(csv_path)
    if "image" not in fields:
        raise ValueError(f"manifest {csv_path} must have an 'image' column; got columns {fields}.")
    if "label" not in fields and "mask" not in fields:
        raise ValueError(
            f"manifest {csv_path} must have a 'label' or a 'mask' column (or both); got columns {fields}."
        )
    records = []
    any_mask = False
    for line_no, row in enumerate(rows, start=2):
        if not row.get("image"):
            raise ValueError(f"manifest {csv_path}, line {line_no}: empty 'image' entry.")
    by_folder = folder_labels([_relative(row["image"], base) for row in rows])
    for line_no, (row, from_folder) in enumerate(zip(rows, by_folder, strict=True), start=2):
        mask = base / row["mask"] if row.get("mask") else None
        any_mask |= mask is not None
        if row.get("label"):
            label = _parse_label(row["label"], f"{csv_path}, line {line_no}")
            records.append(_Record(base / row["image"], mask, label))
        else:
            records.append(_Record(base / row["image"], mask, from_folder, "folder"))
    return records, any_mask


def _mvtec_records(root: Path, split: str) -> list[_Record]:
    parts = ("train", "test") if split == "all" else (split,)
    records = []
    for part in parts:
        folder = root / part
        if not folder.is_dir():
            raise FileNotFoundError(f"MVTec AD layout: folder not found: {folder}")
        for defect_dir in sorted((d for d in folder.iterdir() if d.is_dir()), key=_natural_key):
            defect = defect_dir.name
            for image in _image_files(defect_dir):
                if defect == "good":
                    records.append(_Record(image, None, 0, "folder"))
                    continue
                mask = root / "ground_truth" / defect / f"{image.stem}_mask.png"
                if not mask.is_file():
                    raise FileNotFoundError(f"MVTec AD layout: mask file not found: {mask} (for image {image}).")
                records.append(_Record(image, mask, 1, "folder"))
    return records


def _is_gt(path: Path) -> bool:
    return path.stem.endswith("_GT")


def _kolektor_folders(root: Path, split: str) -> list[Path]:
    if any(_is_gt(p) for p in _image_files(root)):
        return [root]
    parts = ("train", "test") if split == "all" else (split,)
    return [root / part for part in parts if (root / part).is_dir()]


def _kolektor_records(root: Path, split: str) -> list[_Record]:
    folders = _kolektor_folders(root, split)
    if not folders:
        raise FileNotFoundError(
            f"KolektorSDD2 layout: no NNNNN.png + NNNNN_GT.png files in {root} nor in its "
            f"{'train/ and test/' if split == 'all' else split + '/'} subfolder."
        )
    records = []
    for folder in folders:
        files = _image_files(folder)
        gts = {p.stem[: -len("_GT")]: p for p in files if _is_gt(p)}
        for image in files:
            if _is_gt(image):
                continue
            if image.stem not in gts:
                raise FileNotFoundError(
                    f"KolektorSDD2 layout: mask file not found: {folder / (image.stem + '_GT.png')} "
                    f"(for image {image})."
                )
            records.append(_Record(image, gts[image.stem], None))
    return records


def _detect_layout(path: Path, manifest: str) -> str:
    if path.is_file() or (path / manifest).is_file():
        return "manifest"
    if (path / "train" / "good").is_dir() or (path / "ground_truth").is_dir() or (path / "test" / "good").is_dir():
        return "mvtec"
    for folder in (path, path / "train", path / "test"):
        if folder.is_dir() and any(_is_gt(p) for p in _image_files(folder)):
            return "kolektorsdd2"
    raise ValueError(
        f"layout='auto' could not recognise {path}: expected a CSV file or a folder holding {manifest!r} "
        "(layout='manifest'), train/good/ or ground_truth/ (layout='mvtec'), or NNNNN.png + NNNNN_GT.png files "
        "directly or in train/ or test/ (layout='kolektorsdd2')."
    )


def detect_layout(path: str | os.PathLike[str], manifest: str = "manifest.csv") -> str:
    """The layout :func:`load_image_folder` recognises at ``path`` with ``layout="auto"``.

    Parameters
    ----------
    path : str or os.PathLike
        A CSV file or a folder.
    manifest : str, default="manifest.csv"
        File name of a manifest inside ``path``.

    Returns
    -------
    layout : {"manifest", "mvtec", "kolektorsdd2"}

    Raises
    ------
    ValueError
        If ``path`` is none of them (a plain folder of images, say: see :func:`list_images`).
    """
    return _detect_layout(Path(path), manifest)


def list_images(folder: str | os.PathLike[str]) -> tuple[list[Path], list[Path]]:
    """The image files of a plain folder (not recursive, natural order) and the mask files beside them.

    Parameters
    ----------
    folder : str or os.PathLike
        A folder of images (:data:`IMAGE_EXTENSIONS`).

    Returns
    -------
    images : list of pathlib.Path
    masks : list of pathlib.Path
        Files recognised as masks by the loaders' rules (names ending in ``_GT``, ``_mask`` ..., or a
        ``.png``/``.bmp`` beside a same-named image of another format), left out of ``images``.
    """
    return split_masks(_image_files(Path(folder)))


def read_images(
    paths: Sequence[str | os.PathLike[str]], image_shape: tuple[int, int] | None = (128, 128), *, color: str = "gray"
) -> np.ndarray:
    """Read image files (no labels, no masks) into one array, with :func:`load_image_folder`'s resizing rules.

    Parameters
    ----------
    paths : sequence of str or os.PathLike
        Image files.
    image_shape : tuple of (int, int) or None, default=(128, 128)
        Output ``(H, W)``; None keeps the native size, which must then be common to all images.
    color : {"gray", "rgb"}, default="gray"

    Returns
    -------
    X : ndarray of uint8, shape (n, H, W) or (n, H, W, 3)
    """
    records = [_Record(Path(p), None, 0) for p in paths]
    X, _, _ = load_records(records, check_image_shape(image_shape, allow_none=True), check_color(color), 127,
                           has_masks=False)
    return X


def load_image_folder(
    path: str | os.PathLike[str],
    image_shape: tuple[int, int] | None = (128, 128),
    *,
    layout: str = "auto",
    color: str = "gray",
    mask_threshold: int = 127,
    split: str = "all",
    manifest: str = "manifest.csv",
    return_paths: bool = False,
    return_label_sources: bool = False,
) -> tuple[Any, ...]:
    """Load a folder of images, labels and defect masks.

    Four values of ``layout`` are understood:

    ``"manifest"``
        A CSV file (``path`` itself, or ``path/<manifest>``) with columns ``image``, ``mask`` and ``label``; paths
        are relative to the CSV's folder. ``mask`` may be empty on a row (no mask: an empty mask, or for a
        positive, a positive with unknown mask) and the column may be absent; ``label`` is 0/1 (also
        true/false). Where the column or a cell is missing, the folder decides when the layout tells the class:
        images in a folder named like normal images (``good``, ``ok``, ``normal``, ``free``, ``*_free`` such
        as Magnetic tile's ``MT_Free``; case-insensitive) are 0 and images in the other folders at the same
        depth are 1, even with an empty mask (a defective image with an unknown mask); a normal-folder image
        whose mask has defect pixels is a ``ValueError``. Otherwise the label is derived from the mask (1 iff
        it has a pixel above ``mask_threshold``; 0 without a mask). At least one of the two columns must
        exist. When no row has a mask, ``masks`` is ``None``.
    ``"mvtec"``
        An MVTec AD category folder: ``train/good/*.png``, ``test/<defect>/*.png`` and
        ``ground_truth/<defect>/<stem>_mask.png``. ``good`` images are normal with empty masks, every other
        folder is defective and must have its mask file. ``split`` picks ``train/``, ``test/`` or both.
    ``"kolektorsdd2"``
        A folder of ``NNNNN.png`` images with ``NNNNN_GT.png`` masks (a KolektorSDD2 ``train/`` or ``test/``
        folder), or the dataset root holding those two folders (then ``split`` applies). Labels are derived
        from the masks.
    ``"auto"``
        Tries the three in the order above: a CSV file or ``manifest`` file present; ``train/good``,
        ``test/good`` or ``ground_truth`` present; ``*_GT.*`` files present in ``path``, ``path/train`` or
        ``path/test``.

    Images are returned in file order (manifest) or natural sort order of their paths (other layouts).

    Resizing: images of any size are resized to ``image_shape`` with Pillow's anti-aliased bilinear filter,
    ignoring the aspect ratio. Masks are binarised at full resolution (``> mask_threshold``), area-averaged to
    ``image_shape`` and thresholded at ``> 0.5``; a non-empty mask is never emptied by resizing (the pixels of
    largest coverage are kept), so ``masks.any(axis=(1, 2))`` is the same as at full resolution.

    Parameters
    ----------
    path : str or os.PathLike
        The folder, or for ``layout="manifest"`` the CSV file itself.
    image_shape : tuple of (int, int) or None, default=(128, 128)
        Output ``(H, W)``. ``None`` keeps the native size, which must then be the same for every image.
    layout : {"auto", "manifest", "mvtec", "kolektorsdd2"}, default="auto"
        Folder layout, see above.
    color : {"gray", "rgb"}, default="gray"
        ``"gray"`` converts colour images to gray (ITU-R 601-2 luma); ``"rgb"`` replicates gray images into three
        channels.
    mask_threshold : int, default=127
        Mask pixels strictly above it (on the 0-255 gray scale) are defect pixels.
    split : {"all", "train", "test"}, default="all"
        Which part of an MVTec AD category or a KolektorSDD2 root to read (train then test for "all"). Ignored
        by the manifest layout and by a KolektorSDD2 folder that holds the images directly.
    manifest : str, default="manifest.csv"
        File name of the manifest inside ``path``.
    return_paths : bool, default=False
        If true, also return the image file paths.
    return_label_sources : bool, default=False
        If true, also return how each label was decided: ``"label"`` (the manifest's ``label`` cell),
        ``"folder"`` (the image's folder: MVTec AD ``good/``, or the folder rule of a manifest above) or
        ``"mask"`` (derived from the mask: 1 iff it has a defect pixel).

    Returns
    -------
    X : ndarray of uint8, shape (n, H, W) or (n, H, W, 3)
        Images; 3 channels when ``color="rgb"``.
    y : ndarray of int64, shape (n,)
        1 = defective, 0 = normal.
    masks : ndarray of bool, shape (n, H, W), or None
        Defect masks (empty for normal images). ``None`` for a manifest without any mask. A positive whose
        mask is missing or empty keeps ``y = 1`` with an empty mask (mixed supervision).
    paths : ndarray of str, shape (n,)
        Only if ``return_paths``: the image files.
    label_sources : ndarray of str, shape (n,)
        Only if ``return_label_sources`` (after ``paths`` when both are asked for): ``"label"`` or ``"mask"``.

    Raises
    ------
    FileNotFoundError
        If ``path``, an image or a required mask file does not exist (the message names the file).
    ValueError
        For an unknown ``layout``, ``color`` or ``split``, an unrecognised folder, a malformed manifest, or
        differing native sizes with ``image_shape=None``.
    TypeError
        If ``image_shape`` or ``mask_threshold`` has the wrong type.
    """
    root = Path(path)
    shape = check_image_shape(image_shape, allow_none=True)
    color = check_color(color)
    if layout not in LAYOUTS:
        raise ValueError(f"layout must be one of {LAYOUTS}; got {layout!r}.")
    if split not in _SPLITS:
        raise ValueError(f"split must be one of {_SPLITS}; got {split!r}.")
    if isinstance(mask_threshold, (bool, np.bool_)) or not isinstance(mask_threshold, numbers.Integral):
        raise TypeError(f"mask_threshold must be an int in [0, 254]; got {type(mask_threshold).__name__}.")
    if not 0 <= mask_threshold <= 254:
        raise ValueError(f"mask_threshold must be an int in [0, 254]; got {mask_threshold!r}.")
    if not root.exists():
        raise FileNotFoundError(f"path not found: {root}")

    if layout == "auto":
        layout = _detect_layout(root, manifest)
    if layout == "manifest":
        csv_path = root if root.is_file() else root / manifest
        if not csv_path.is_file():
            raise FileNotFoundError(f"manifest file not found: {csv_path}")
        records, has_masks = _manifest_records(csv_path)
    elif layout == "mvtec":
        records, has_masks = _mvtec_records(root, split), True
    else:
        records, has_masks = _kolektor_records(root, split), True
    X, y, masks = load_records(records, shape, color, int(mask_threshold), has_masks=has_masks)
    out: tuple[Any, ...] = (X, y, masks)
    if return_paths:
        out += (np.array([str(r.image) for r in records]),)
    if return_label_sources:
        out += (np.array([r.source if r.label is not None else "mask" for r in records]),)
    return out
