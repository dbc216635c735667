"""Locating the shared datasets folder, and the Magnetic tile and CrackForest loaders."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from ._common import check_color, check_image_shape, read_csv_rows
from ._folder import _Record, load_records

__all__ = ["ENV_VAR", "find_shared_dataset", "get_data_home", "load_crackforest", "load_magnetic_tile"]

#: Environment variable naming a folder that holds ``magnetic_tile/``, ``crackforest/`` ...
ENV_VAR = "SKDEFECT_DATASETS"


def _walk_up_candidates() -> list[Path]:
    """``<p>/shared/datasets`` for every ancestor ``p`` of the working directory and of this source file."""
    out: list[Path] = []
    for start in (Path.cwd().resolve(), Path(__file__).resolve().parent):
        for p in (start, *start.parents):
            cand = p / "shared" / "datasets"
            if cand not in out:
                out.append(cand)
    return out


def get_data_home(root: str | os.PathLike[str] | None = None) -> Path:
    """Return the folder that holds the shared datasets (``magnetic_tile/``, ``crackforest/``).

    Resolution order: ``root`` if given (no fall-back: it must exist); the environment variable
    ``SKDEFECT_DATASETS``; the first existing ``shared/datasets`` folder found walking up from the current
    working directory (this covers ``../shared/datasets``) and then from this package's source file.

    Parameters
    ----------
    root : str or os.PathLike or None, default=None
        Explicit folder.

    Returns
    -------
    pathlib.Path
        The datasets folder.

    Raises
    ------
    FileNotFoundError
        If no candidate exists; the message lists every place tried.
    """
    if root is not None:
        path = Path(root).expanduser()
        if path.is_dir():
            return path
        raise FileNotFoundError(f"datasets folder not found: {path} (given as root).")
    tried: list[Path] = []
    env = os.environ.get(ENV_VAR)
    candidates = ([Path(env).expanduser()] if env else []) + _walk_up_candidates()
    for cand in candidates:
        tried.append(cand)
        if cand.is_dir():
            return cand
    raise FileNotFoundError(_not_found_message("the shared datasets folder", tried, env))


def _not_found_message(what: str, tried: list[Path], env: str | None) -> str:
    lines = "\n".join(f"  - {p}" for p in tried)
    env_note = f"{ENV_VAR}={env!r}" if env else f"{ENV_VAR} is not set"
    return (
        f"could not find {what}; tried, in order:\n{lines}\n({env_note}.) Pass root=... or set {ENV_VAR} to a "
        "folder holding magnetic_tile/ and crackforest/. These datasets are not shipped with skdefect."
    )


def find_shared_dataset(name: str, root: str | os.PathLike[str] | None = None) -> Path:
    """Return the folder of the shared dataset ``name`` (e.g. ``"magnetic_tile"``, ``"crackforest"``).

    Resolution order:

    1. ``root``, if given: ``root/<name>`` or ``root`` itself when it is the dataset folder (holds
       ``manifest.csv``). No fall-back: a wrong ``root`` is an error.
    2. ``$SKDEFECT_DATASETS/<name>``.
    3. ``<p>/shared/datasets/<name>`` for ``p`` the current working directory and each of its parents (so
       ``../shared/datasets`` is found from a checkout next to ``shared/``), then the same walking up from the
       package's source file.

    Parameters
    ----------
    name : str
        Dataset folder name.
    root : str or os.PathLike or None, default=None
        Explicit location: the dataset folder or a folder containing it.

    Returns
    -------
    pathlib.Path
        The dataset folder.

    Raises
    ------
    FileNotFoundError
        If it cannot be found; the message lists every place tried.
    """
    if not isinstance(name, str) or not name:
        raise TypeError(f"name must be a non-empty str; got {name!r}.")
    env = os.environ.get(ENV_VAR)
    if root is not None:
        path = Path(root).expanduser()
        tried = [path / name, path]
        if (path / name).is_dir():
            return path / name
        if (path / "manifest.csv").is_file():
            return path
        raise FileNotFoundError(_not_found_message(f"dataset {name!r} under root={str(root)!r}", tried, env))
    tried = []
    candidates = ([Path(env).expanduser()] if env else []) + _walk_up_candidates()
    for cand in candidates:
        tried.append(cand / name)
        if (cand / name).is_dir():
            return cand / name
    raise FileNotFoundError(_not_found_message(f"dataset {name!r}", tried, env))


def _read_manifest(path: Path) -> list[dict[str, str]]:
    manifest = path / "manifest.csv"
    if not manifest.is_file():
        raise FileNotFoundError(f"manifest file not found: {manifest}")
    return read_csv_rows(manifest)[1]


def load_magnetic_tile(
    root: str | os.PathLike[str] | None = None,
    image_shape: tuple[int, int] | None = (128, 128),
    *,
    return_classes: bool = False,
    return_groups: bool = False,
) -> tuple[np.ndarray, ...]:
    """Load the Magnetic tile surface-defect dataset (1344 gray images, 392 defective, pixel masks).

    Source: Huang, Qiu & Yuan (2018), "Surface defect saliency of magnetic tile", IEEE CASE 2018 (extended in The
    Visual Computer 36, 2020); data from the GitHub repository ``abin24/Magnetic-tile-defect-datasets.``.
    Licence: welcome for research use, "please cite our paper" (no formal licence).
    The data are not shipped with skdefect: they are read from ``find_shared_dataset("magnetic_tile", root)``,
    a folder with the class folders and the ``manifest.csv`` (columns ``image``, ``mask``, ``label_folder``,
    ``mask_nonempty_gt127``, ``class``).

    Classes: ``MT_Free`` is the normal class (952 images, y = 0); ``MT_Blowhole``, ``MT_Break``, ``MT_Crack``,
    ``MT_Fray`` and ``MT_Uneven`` are defective (392 images, y = 1). Masks are the PNG beside each JPEG,
    thresholded at > 127. The JPEGs vary in size (about 100-600 px per side); every image is stretched to
    ``image_shape`` (bilinear; masks by area averaging, see :func:`load_image_folder`).

    .. warning::

       **Four MT_Uneven masks are empty after thresholding.** Those images keep their folder label ``y = 1``
       but get an **empty mask**: they are positives with unknown defect location (mixed supervision). Code
       that derives labels from masks (``masks.any(axis=(1, 2))``) would count 388 defectives instead of 392;
       pixel-level metrics should skip them or treat them as unlabelled.

    .. warning::

       **Each tile is in the data about six times.** The file names ``exp<k>_num_<n>.jpg`` are captures of one
       tile under the settings ``exp0``/``exp1`` … ``exp6``, taken in sequence (consecutive frame numbers
       ``n``). 89 % of the images have their nearest neighbour (correlation of the 64×64 pixels) among the
       captures of their own tile. Random train/test splits therefore put near-duplicates of the test
       images in the training set: logistic regression on the pixels reaches AP 0.85 with random 5-fold
       splits and 0.47 with folds that keep each tile's captures together
       (``benchmarks/magnetic_tile_shortcut.py``). Split by ``groups`` (``return_groups=True``, e.g.
       :class:`sklearn.model_selection.StratifiedGroupKFold`).

    Parameters
    ----------
    root : str or os.PathLike or None, default=None
        The dataset folder or a folder containing ``magnetic_tile/``; ``None`` searches as
        :func:`find_shared_dataset` describes.
    image_shape : tuple of (int, int) or None, default=(128, 128)
        Output ``(H, W)``. ``None`` is refused because native sizes differ.
    return_classes : bool, default=False
        If true, also return each image's class folder name.
    return_groups : bool, default=False
        If true, also return each image's tile (an int): sorted by frame number, a class's captures with
        rising setting numbers (``exp0`` → ``exp6``) are one tile; a new tile starts where the setting number
        falls or the class changes. 279 tiles, most with six captures.

    Returns
    -------
    X : ndarray of uint8, shape (1344, H, W)
        Gray images.
    y : ndarray of int64, shape (1344,)
        1 for the five defect folders, 0 for ``MT_Free``.
    masks : ndarray of bool, shape (1344, H, W)
        Defect masks; empty for normal images and for the four MT_Uneven positives noted above.
    classes : ndarray of str, shape (1344,)
        Only if ``return_classes``: ``"MT_Free"``, ``"MT_Blowhole"``, ...
    groups : ndarray of int64, shape (1344,)
        Only if ``return_groups``: the tile of each image (after ``classes`` when both are asked for).

    Raises
    ------
    FileNotFoundError
        If the dataset folder, its manifest or a listed file is missing.
    """
    shape = check_image_shape(image_shape)
    folder = find_shared_dataset("magnetic_tile", root)
    rows = _read_manifest(folder)
    records = []
    for row in rows:
        label = int(row["label_folder"])
        records.append(_Record(folder / row["image"], folder / row["mask"] if row.get("mask") else None, label))
    X, y, masks = load_records(records, shape, "gray", 127, has_masks=True)
    assert masks is not None
    out: tuple[np.ndarray, ...] = (X, y, masks)
    if return_classes:
        out += (np.array([row["class"] for row in rows]),)
    if return_groups:
        out += (magnetic_tile_groups([row["image"] for row in rows], [row["class"] for row in rows]),)
    return out


def magnetic_tile_groups(images: list[str], classes: list[str]) -> np.ndarray:
    """The tile of each Magnetic tile image, from its file name ``exp<k>_num_<n>.jpg`` (see the loader)."""
    import re

    keyed = []
    for i, (image, cls) in enumerate(zip(images, classes, strict=True)):
        match = re.fullmatch(r"exp(\d+)_num_(\d+)\.\w+", Path(image).name)
        if match is None:
            raise ValueError(f"Magnetic tile image name {image!r} is not exp<k>_num_<n>.<ext>; cannot tell its tile")
        keyed.append((int(match.group(2)), int(match.group(1)), cls, i))
    groups = np.zeros(len(images), dtype=np.int64)
    group, previous = -1, None
    for _, setting, cls, i in sorted(keyed):
        if previous is None or setting <= previous[0] or cls != previous[1]:
            group += 1
        groups[i] = group
        previous = (setting, cls)
    return groups


def load_crackforest(
    root: str | os.PathLike[str] | None = None,
    image_shape: tuple[int, int] | None = (320, 480),
    *,
    color: str = "rgb",
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Load CrackForest: 118 road-surface photographs, all with cracks, with binary crack masks.

    Source: Shi, Cui, Qi, Meng & Chen (2016), "Automatic road crack detection using random structured forests",
    IEEE Transactions on Intelligent Transportation Systems 17(12) (https://github.com/cuilimeng/CrackForest-dataset).
    Licence: non-commercial research purposes only; cite the paper. Not shipped with skdefect: read from
    ``find_shared_dataset("crackforest", root)`` (``image/*.jpg``, ``masks_png/*.png``, ``manifest.csv`` with
    columns ``image``, ``mask``, ``label``).

    Every image is defective (y = 1): CrackForest alone cannot train a detector's normal class; use it for
    segmentation or combine it with normal images. Masks are ``PNG > 127``.

    Parameters
    ----------
    root : str or os.PathLike or None, default=None
        The dataset folder or a folder containing ``crackforest/``; ``None`` searches as
        :func:`find_shared_dataset` describes.
    image_shape : tuple of (int, int) or None, default=(320, 480)
        Output ``(H, W)``. The default is the native size (480 wide, 320 high), so nothing is resized; ``None``
        keeps the native size as well. Other sizes are resized as in :func:`load_image_folder`.
    color : {"rgb", "gray"}, default="rgb"
        The photographs are RGB; ``"gray"`` converts them.

    Returns
    -------
    X : ndarray of uint8, shape (118, H, W, 3) or (118, H, W)
        Images (3 channels for ``color="rgb"``).
    y : ndarray of int64, shape (118,)
        All ones.
    masks : ndarray of bool, shape (118, H, W)
        Crack masks.

    Raises
    ------
    FileNotFoundError
        If the dataset folder, its manifest or a listed file is missing.
    """
    shape = check_image_shape(image_shape, allow_none=True)
    color = check_color(color)
    folder = find_shared_dataset("crackforest", root)
    rows = _read_manifest(folder)
    records = [
        _Record(folder / row["image"], folder / row["mask"], int(row["label"]) if row.get("label") else None)
        for row in rows
    ]
    X, y, masks = load_records(records, shape, color, 127, has_masks=True)
    assert masks is not None
    return X, y, masks
