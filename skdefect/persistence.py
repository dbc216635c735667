"""Safe model files (safetensors + JSON) of fitted detectors (ONNX export: :mod:`skdefect.export`).

A model file is one `safetensors <https://huggingface.co/docs/safetensors>`_ file:

* the tensors are the ``state_dict`` of every torch module of the fitted skorch net
  (``net.module.*``: the two-stage network, or the GAN's generator; ``net.disc_normal.*`` and
  ``net.disc_anomalous.*``: the GAN's discriminators) and the fitted array attributes
  (``attr.classes_``, ``attr.input_mean_`` ...), all on the CPU;
* the safetensors header's ``__metadata__`` (a str → str map) holds ``format`` (``"skdefect"``),
  ``format_version``, ``config`` (a JSON document: the estimator class, its parameters, the other
  fitted attributes, the skdefect version, the net's module names and its epoch history) and
  ``sha256``, a digest over all of these and every tensor's bytes.

Loading parses that header and the raw tensor bytes only: no pickle, no import path read from
the file, no code from the file runs. The estimator class comes from an allowlist, the networks
are rebuilt through the plugin registry from the names in ``config``, and the weights are loaded
into them; each estimator class says how it is rebuilt (``_inference_attributes``,
``_modules_from_attributes``, ``_net_from_attributes``). See ``docs/persistence.md`` for the rules
(dropped parameters, version checks).
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import re
import struct
import warnings
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch
from sklearn.utils.validation import check_is_fitted

from ._io import atomic_write

__all__ = [
    "FORMAT_NAME",
    "FORMAT_VERSION",
    "SUFFIX",
    "SUPPORTED_FORMAT_VERSIONS",
    "load",
    "save_estimator",
]

#: ``__metadata__["format"]`` of every skdefect model file.
FORMAT_NAME = "skdefect"
#: The layout this module writes.
FORMAT_VERSION = 1
#: The layouts this module reads.
SUPPORTED_FORMAT_VERSIONS = frozenset({1})
#: The suffix the documentation recommends (nothing enforces it).
SUFFIX = ".skdefect"

_NET_PREFIX = "net."
_ATTR_PREFIX = "attr."
_MAX_HEADER = 100_000_000  # safetensors' own limit on the JSON header


def _skdefect_version() -> str:
    from . import __version__

    return __version__


# -- what can be saved: the allowlist ---------------------------------------------------------------------------
def _loadable_classes() -> dict[str, type]:
    """The allowlist of classes a model file may name (imported here, never from a name in a file)."""
    from .gan import DualDiscriminatorGANDetector
    from .two_stage import ConcentratedTwoStageDetector

    return {cls.__name__: cls for cls in (ConcentratedTwoStageDetector, DualDiscriminatorGANDetector)}


def _check_savable(estimator: Any) -> str:
    name, classes = type(estimator).__name__, _loadable_classes()
    if type(estimator) is not classes.get(name):
        raise TypeError(
            f"only {', '.join(sorted(classes))} can be saved to a skdefect model file; "
            f"got an instance of {type(estimator).__module__}.{type(estimator).__qualname__}"
        )
    check_is_fitted(estimator, "threshold_")
    return name


def _check_path(path: Any, arg: str = "path") -> Path:
    if not isinstance(path, (str, os.PathLike)):
        raise TypeError(f"{arg} must be a str or os.PathLike file name, got {type(path).__name__}")
    return Path(path)


# -- JSON with tags: tuples, dicts, non-finite floats and arrays survive the round trip ---------------------------
class _NotJSONable(TypeError):
    pass


def _to_json(value: Any, arrays: dict[str, torch.Tensor] | None = None, name: str = "") -> Any:
    """``value`` as strict JSON; ndarrays go to ``arrays`` (as tensors) when it is given."""
    if value is None or isinstance(value, str):
        return value
    if isinstance(value, (bool, np.bool_)):
        return bool(value)
    if isinstance(value, (int, np.integer)):
        return int(value)
    if isinstance(value, (float, np.floating)):
        f = float(value)
        return f if math.isfinite(f) else {"__float__": repr(f)}
    if isinstance(value, tuple):
        return {"__tuple__": [_to_json(v, arrays, f"{name}[{i}]") for i, v in enumerate(value)]}
    if isinstance(value, list):
        return [_to_json(v, arrays, f"{name}[{i}]") for i, v in enumerate(value)]
    if isinstance(value, dict) and all(isinstance(k, str) for k in value):
        return {"__dict__": {k: _to_json(v, arrays, f"{name}[{k!r}]") for k, v in value.items()}}
    if isinstance(value, np.ndarray):
        if value.dtype.kind in "biuf" and arrays is not None:
            key = _ATTR_PREFIX + name
            try:
                arrays[key] = torch.from_numpy(np.ascontiguousarray(value).copy())
            except TypeError as exc:
                raise _NotJSONable(f"{name}: arrays of dtype {value.dtype} cannot be stored ({exc})") from None
            return {"__array__": key}
        if value.dtype.kind in "US" or (value.dtype.kind == "O" and all(isinstance(v, str) for v in value.flat)):
            return {"__strarray__": {"shape": list(value.shape), "data": [str(v) for v in value.flat]}}
    raise _NotJSONable(f"{name or 'value'}: a {type(value).__name__} cannot be written as JSON")


_MAX_DEPTH = 32  # nesting of a JSON value in a model file; the writer's own values are a few levels deep


def _from_json(value: Any, arrays: Mapping[str, torch.Tensor], depth: int = 0) -> Any:
    if depth > _MAX_DEPTH:
        raise ValueError(f"a value nested deeper than {_MAX_DEPTH} levels")
    if isinstance(value, list):
        return [_from_json(v, arrays, depth + 1) for v in value]
    if not isinstance(value, dict):
        return value
    if len(value) != 1:
        raise ValueError(f"untagged JSON object {sorted(value)}")
    (tag, body), = value.items()
    if tag == "__tuple__" and isinstance(body, list):
        return tuple(_from_json(v, arrays, depth + 1) for v in body)
    if tag == "__dict__" and isinstance(body, dict):
        return {k: _from_json(v, arrays, depth + 1) for k, v in body.items()}
    if tag == "__float__" and body in ("nan", "inf", "-inf"):
        return float(body)
    if tag == "__array__":
        if not isinstance(body, str) or body not in arrays:
            raise ValueError(f"the file lacks tensor {body!r}")
        return arrays[body].numpy().copy()
    if tag == "__strarray__" and isinstance(body, dict):
        data, shape = body.get("data"), body.get("shape")
        if (not isinstance(data, list) or not all(isinstance(v, str) for v in data) or not isinstance(shape, list)
                or not all(isinstance(n, int) and n >= 0 for n in shape) or math.prod(shape) != len(data)):
            raise ValueError("a malformed string array")
        return np.array(data, dtype=object).reshape(shape)
    raise ValueError(f"unknown or malformed JSON tag {tag!r}")


def _encode_params(params: Mapping[str, Any]) -> tuple[dict[str, Any], dict[str, str]]:
    """Parameters as JSON, by the documented rule; returns ``(kept, {dropped name: reason})``."""
    kept: dict[str, Any] = {}
    dropped: dict[str, str] = {}
    for name, value in params.items():
        if name == "callbacks" and value:
            kept[name], dropped[name] = None, "skorch callbacks are objects: stored as None"
            continue
        if isinstance(value, (np.random.RandomState, np.random.Generator)):
            kept[name], dropped[name] = None, f"a {type(value).__name__} is stored as None"
            continue
        if isinstance(value, os.PathLike):
            value = os.fspath(value)
        try:
            kept[name] = _to_json(value, None, name)
        except _NotJSONable as exc:
            dropped[name] = f"left out ({exc}): the loaded estimator has the default"
    return kept, dropped


def _history_rows(history: Any) -> list[dict[str, Any]]:
    """The epoch rows of a skorch history as JSON (per-batch records and non-JSON values left out)."""
    rows = []
    for row in history:
        out = {}
        for key, value in row.items():
            if key == "batches":
                continue
            try:
                out[key] = _to_json(value, None, key)
            except _NotJSONable:
                continue
        rows.append(out)
    return rows


# -- the file ---------------------------------------------------------------------------------------------------
def _digest(format_version: str, config: str, tensors: Mapping[str, torch.Tensor]) -> str:
    h = hashlib.sha256()
    h.update(f"{FORMAT_NAME}\0{format_version}\0".encode())
    h.update(config.encode("utf-8"))
    for name in sorted(tensors):
        t = tensors[name].detach().cpu().contiguous()
        h.update(f"\0{name}\0{t.dtype}\0{tuple(t.shape)}\0".encode())
        h.update(t.reshape(-1).view(torch.uint8).numpy().tobytes())
    return h.hexdigest()


def _write(path: Path, config: Mapping[str, Any], tensors: Mapping[str, torch.Tensor]) -> Path:
    """Write ``config`` (JSON) and ``tensors`` (safetensors) with their digest, atomically."""
    from safetensors.torch import save

    config_str = json.dumps(config, sort_keys=True, allow_nan=False, separators=(",", ":"))
    version = str(FORMAT_VERSION)
    metadata = {
        "format": FORMAT_NAME,
        "format_version": version,
        "config": config_str,
        "sha256": _digest(version, config_str, tensors),
    }
    return atomic_write(path, save(dict(tensors), metadata=metadata))


def _read_header(f: Any, path: Path, size: int) -> tuple[int, dict[str, Any]]:
    """``(header length, header)`` of an open model file, read before any of its body (with a size cap)."""
    where = f"{path} is not a skdefect model file"
    if size < 10:
        raise ValueError(f"{where}: it holds only {size} bytes")
    head = f.read(9)
    (n_header,) = struct.unpack("<Q", head[:8])
    if n_header > min(_MAX_HEADER, size - 8) or head[8:9] != b"{":
        what = "a pickle" if head[:1] == b"\x80" else "a zip archive (torch.save?)" if head[:2] == b"PK" else "unknown"
        raise ValueError(f"{where}: it is not a safetensors file (content: {what}); model files are written by "
                         "`estimator.save(path)` and nothing else is read, so no pickle is ever loaded")
    raw = b"{" + f.read(n_header - 1)
    try:
        header = _json_loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as exc:
        raise ValueError(f"{where}: its safetensors header is not valid JSON ({exc})") from None
    if not isinstance(header, dict):
        raise ValueError(f"{where}: its safetensors header is a {type(header).__name__}, not a JSON object")
    end = 0
    for key, entry in header.items():
        if key == "__metadata__":
            continue
        offsets = entry.get("data_offsets") if isinstance(entry, dict) else None
        if (not isinstance(offsets, list) or len(offsets) != 2
                or not all(isinstance(o, int) and not isinstance(o, bool) for o in offsets)):
            raise ValueError(f"{path} is a corrupt model file: tensor {key!r} has no valid data_offsets")
        end = max(end, offsets[1])
    if 8 + n_header + end != size:
        raise ValueError(f"{path} is a corrupt model file: its header describes {end} bytes of tensor data, but "
                         f"the file holds {size - 8 - n_header} (truncated, or bytes appended)")
    return n_header, header


def _json_loads(text: str) -> Any:
    """``json.loads`` that turns nesting too deep for Python's recursion into a ValueError (JSON from files)."""
    try:
        return json.loads(text)
    except RecursionError:
        raise ValueError("JSON nested too deeply") from None


def _read(path: Path) -> tuple[dict[str, str], dict[str, Any], dict[str, torch.Tensor]]:
    """``(metadata, config, tensors)`` of a model file, after every integrity check; nothing is unpickled.

    The header is read and checked first (its length capped, its tensor extents matching the file's size)
    and only then the body, so a file that is not a model file is refused without being read whole."""
    with open(path, "rb") as f:
        size = os.fstat(f.fileno()).st_size
        n_header, header = _read_header(f, path, size)
        meta = header.get("__metadata__")
        if not isinstance(meta, dict) or meta.get("format") != FORMAT_NAME:
            raise ValueError(f"{path} is not a skdefect model file: a safetensors file without skdefect metadata "
                             f"(__metadata__['format'] is not {FORMAT_NAME!r})")
        version = meta.get("format_version")
        if version not in {str(v) for v in SUPPORTED_FORMAT_VERSIONS}:
            raise ValueError(
                f"{path} has skdefect model-file format version {version!r}; skdefect {_skdefect_version()} reads "
                f"format version(s) {', '.join(map(str, sorted(SUPPORTED_FORMAT_VERSIONS)))}. Load it with the "
                "skdefect version that wrote it"
            )
        f.seek(0)
        data = f.read()
    from safetensors.torch import load as st_load

    try:
        tensors = st_load(data)
    except Exception as exc:  # noqa: BLE001 - safetensors raises its own error types
        raise ValueError(f"{path} is a corrupt model file: its tensors cannot be read ({exc})") from None
    config_str = meta.get("config")
    if not isinstance(config_str, str) or _digest(version, config_str, tensors) != meta.get("sha256"):
        raise ValueError(
            f"{path} is corrupt or was modified after it was written: its SHA-256 digest does not match its "
            "tensors and configuration; refusing to load it"
        )
    try:
        config = _json_loads(config_str)
    except ValueError as exc:
        raise ValueError(f"{path}: its configuration is not valid JSON ({exc})") from None
    if not isinstance(config, dict):
        raise ValueError(f"{path}: its configuration is a {type(config).__name__}, not a JSON object")
    return meta, config, tensors


def _major_minor(version: str) -> tuple[int, int]:
    parts = str(version).split(".")
    if len(parts) < 2 or not parts[0].isdigit() or not parts[1].isdigit():
        raise ValueError(f"cannot read the version {version!r}")
    return int(parts[0]), int(parts[1])


def _check_written_by(written_by: Any, path: Path) -> None:
    """Semantic versioning, with 0.x's rule: before 1.0 a minor release may change what a file means.

    Another major version, or a newer minor version (0.x: any other minor version) is refused;
    a file from an older minor version of 1.x and later is read."""
    ours = _skdefect_version()
    try:
        theirs, mine = _major_minor(written_by), _major_minor(ours)
    except ValueError:
        theirs, mine = (-1, -1), (0, 0)
    if theirs[0] != mine[0]:
        why = "the major versions differ"
    elif theirs[1] > mine[1]:
        why = "it comes from a newer minor version"
    elif mine[0] == 0 and theirs[1] != mine[1]:
        why = "before 1.0 each minor version may change what a model file means"
    else:
        return
    raise ValueError(f"{path} was written by skdefect {written_by}, which is incompatible with this skdefect "
                     f"{ours} ({why}); load it with skdefect {written_by}")


# -- save / load ------------------------------------------------------------------------------------------------
def save_estimator(estimator: Any, path: str | os.PathLike[str]) -> Path:
    """Write a fitted detector to one safetensors model file (see :meth:`BaseDefectDetector.save`).

    Parameters
    ----------
    estimator : ConcentratedTwoStageDetector or DualDiscriminatorGANDetector
        A fitted detector.
    path : str or os.PathLike
        File to write (replaced atomically when it exists); ``.skdefect`` is the customary suffix.

    Returns
    -------
    path : pathlib.Path
    """
    path = _check_path(path)
    name = _check_savable(estimator)
    net = estimator.net_
    tensors: dict[str, torch.Tensor] = {}
    modules = list(net._modules)
    for module_name in modules:
        for key, value in getattr(net, module_name + "_").state_dict().items():
            tensors[f"{_NET_PREFIX}{module_name}.{key}"] = value.detach().to("cpu", copy=True).contiguous()
    params, dropped = _encode_params(estimator.get_params(deep=False))
    left_out = sorted(k for k, why in dropped.items() if why.startswith("left out"))
    if left_out:
        warnings.warn(f"parameters {left_out} cannot be written as JSON and are left out of {path}: the loaded "
                      "estimator has their defaults", UserWarning, stacklevel=3)
    attributes = {}
    for attr, value in sorted(vars(estimator).items()):
        if not attr.endswith("_") or attr.startswith("_") or attr == "net_":
            continue
        try:
            attributes[attr] = _to_json(value, tensors, attr)
        except _NotJSONable as exc:
            raise TypeError(f"cannot save the fitted attribute {attr} of {name}: {exc}") from None
    config = {
        "estimator": name,
        "skdefect_version": _skdefect_version(),
        "torch_version": torch.__version__,
        "params": params,
        "dropped_params": dropped,
        "attributes": attributes,
        "net": {"modules": modules, "device": str(net.device), "history": _history_rows(net.history)},
    }
    return _write(path, config, tensors)


def load(path: str | os.PathLike[str], device: str = "cpu", compile: bool | str | None = None) -> Any:
    """Load a detector written by ``estimator.save(path)``.

    Only the safetensors header (JSON) and the raw tensor bytes are read: no pickle, no code from
    the file. The estimator class must be one of skdefect's detectors, the networks are rebuilt
    through the plugin registry from the names in the file, and the weights are loaded into them.

    Parameters
    ----------
    path : str or os.PathLike
        A model file.
    device : str, default="cpu"
        Where the networks go: ``"cpu"``, ``"cuda"``, ``"cuda:1"`` or ``"auto"``, whatever device the
        model was fitted on. The loaded estimator's ``device`` parameter is set to it, so a later
        ``fit`` trains there too.
    compile : bool, str or None, default=None
        The loaded estimator's ``compile`` parameter; None keeps the saved one. A model fitted
        with ``compile=True`` on a GPU machine can so be loaded eager where no compiler is.

    Returns
    -------
    estimator : ConcentratedTwoStageDetector or DualDiscriminatorGANDetector
        Fitted; on the CPU its predictions equal the saved estimator's.

    Raises
    ------
    ValueError
        The file is not a skdefect model file (a pickle, another safetensors file ...), is corrupt or
        was modified (digest mismatch), comes from an incompatible skdefect or format version, names an
        estimator class that is not a skdefect detector, or its tensors do not fit the networks its
        configuration describes (missing tensor, shape mismatch).
    """
    from ._runtime import resolve_device

    path = _check_path(path)
    if isinstance(device, torch.device):
        device = str(device)
    if not isinstance(device, str):
        raise TypeError(f"device must be a str such as 'cpu', 'cuda' or 'auto', got {type(device).__name__}")
    dev = resolve_device(device)
    meta, config, tensors = _read(path)

    _check_written_by(config.get("skdefect_version", "unknown"), path)
    name, classes = config.get("estimator"), _loadable_classes()
    if not isinstance(name, str) or name not in classes:
        raise ValueError(
            f"{path} names the estimator class {name!r}, which is not one skdefect loads "
            f"(known: {', '.join(sorted(classes))})"
        )
    cls = classes[name]
    try:
        params = {str(k): _from_json(v, {}) for k, v in dict(config["params"]).items()}
        attrs = {str(k): _from_json(v, tensors) for k, v in dict(config["attributes"]).items()}
        modules = list(config["net"]["modules"])
        history = config["net"].get("history", [])
    except (KeyError, TypeError, ValueError) as exc:
        raise ValueError(
            f"{path}: its configuration is incomplete or malformed ({type(exc).__name__}: {exc})"
        ) from None
    known = cls().get_params(deep=False)
    unknown = sorted(set(params) - set(known))
    if unknown:
        raise ValueError(f"{path} sets parameters {unknown} that {name} of skdefect {_skdefect_version()} does not "
                         "have; load it with the skdefect version that wrote it")
    missing_attrs = [a for a in cls._inference_attributes if a not in attrs]
    if missing_attrs:
        raise ValueError(f"{path} lacks the fitted attributes {missing_attrs} that {name} needs")
    _check_attributes(cls, attrs, path)

    # paths from a file never direct later work: a loaded model writes no checkpoints unless its user says so
    overrides = {"device": device, "checkpoint_dir": None}
    if compile is not None:
        overrides["compile"] = compile
    estimator = cls(**{**params, **overrides})
    estimator._validate_params()  # sklearn's constraints, as fit would check them
    devices = list(range(torch.cuda.device_count())) if torch.cuda.is_available() else []
    with torch.random.fork_rng(devices=devices):  # building networks draws random weights: keep the caller's RNG
        _check_shapes_before_building(estimator, attrs, tensors, path)
        net = estimator._net_from_attributes(attrs, dev)
        net.initialize()
    if sorted(net._modules) != sorted(modules):
        raise ValueError(f"{path} holds the modules {sorted(modules)}, but the net rebuilt from its configuration "
                         f"has {sorted(net._modules)}")
    _load_weights(net, tensors, path)
    from skorch.history import History

    net.history = History([{**row, "batches": []} for row in history])
    for attr, value in attrs.items():
        setattr(estimator, attr, value)
    estimator.net_ = net
    return estimator


_FITTED_NAME = re.compile(r"[a-z][a-z0-9_]*_")
_MAX_SIDE = 1 << 16  # the largest image side a model file may describe
_MAX_CHANNELS = 1024


def _is_int(value: Any, low: int, high: int) -> bool:
    return isinstance(value, (int, np.integer)) and not isinstance(value, bool) and low <= value <= high


def _is_finite_array(value: Any, ndim: int) -> bool:
    return (isinstance(value, np.ndarray) and value.ndim == ndim and value.dtype.kind == "f"
            and bool(np.isfinite(value).all()))


def _check_shape(value: Any) -> str | None:
    if not isinstance(value, (list, tuple)) or len(value) != 3:
        return "a list [height, width, channels]"
    h, w, c = value
    if not (_is_int(h, 1, _MAX_SIDE) and _is_int(w, 1, _MAX_SIDE) and _is_int(c, 1, _MAX_CHANNELS)):
        return f"[height, width, channels] with sides in 1..{_MAX_SIDE} and channels in 1..{_MAX_CHANNELS}"
    return None


def _check_size(value: Any) -> str | None:
    if not isinstance(value, (list, tuple)) or len(value) != 2 or not all(_is_int(v, 1, _MAX_SIDE) for v in value):
        return f"a pair (height, width) of sides in 1..{_MAX_SIDE}"
    return None


def _finite(value: Any, positive: bool = False) -> str | None:
    ok = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
    if not ok or (positive and value <= 0):
        return "a finite positive number" if positive else "a finite number"
    return None


def _optional_matrix(value: Any) -> str | None:
    return None if value is None or _is_finite_array(value, 2) else "None or a finite float matrix"


#: fitted attribute -> check of the value read from a file (the message says what it must be, None = fine);
#: attributes not named here are kept only when inference never reads them
_ATTRIBUTE_CHECKS: dict[str, Callable[[Any], str | None]] = {
    "threshold_": _finite,
    "score_scale_": lambda v: _finite(v, positive=True),
    "classes_": lambda v: None if isinstance(v, np.ndarray) and v.tolist() == [0, 1] else "the array [0, 1]",
    "input_shape_": _check_shape,
    "image_size_": _check_size,
    "n_features_in_": lambda v: None if _is_int(v, 1, _MAX_SIDE**2 * _MAX_CHANNELS) else "a positive integer",
    "n_parameters_": lambda v: None if isinstance(v, dict) and all(_is_int(n, 0, 1 << 40) for n in v.values())
    else "a dict of parameter counts",
    "one_class_": lambda v: None if isinstance(v, bool) else "true or false",
    "input_mean_": lambda v: None if _is_finite_array(v, 1) else "a finite float vector",
    "input_std_": lambda v: None if _is_finite_array(v, 1) and (v > 0).all() else "a positive float vector",
    "sampler_indices_": lambda v: None if v is None or (isinstance(v, np.ndarray) and v.ndim == 1
                                                       and v.dtype.kind in "iu" and (v >= 0).all())
    else "None or a vector of non-negative row indices",
    "anomaly_score_": lambda v: None if v in ("recon", "patch", "memory", "patch_memory")
    else "one of 'recon', 'patch', 'memory', 'patch_memory'",
    "image_score_": lambda v: None if v in ("decision", "seg_max") else "'decision' or 'seg_max'",
    "backbone_": lambda v: None if isinstance(v, str) else "a backbone name",
    "decision_head_": lambda v: None if v is None or isinstance(v, str) else "None or a decision head's name",
    "augment_": lambda v: None if v in (None, "flips", "dihedral") else "None, 'flips' or 'dihedral'",
    "dice_weight_": lambda v: None if _finite(v) is None and 0 <= v <= 1 else "a number in [0, 1]",
    "seg_monitor_": lambda v: None if v in ("valid_loss", "valid_ap", "valid_pixel_ap")
    else "one of 'valid_loss', 'valid_ap', 'valid_pixel_ap'",
    "brightness_range_": lambda v: None if isinstance(v, (list, tuple)) and len(v) == 2
    and all(_finite(b) is None and 0 <= b <= 1 for b in v) and v[0] <= v[1] else "a pair low <= high in [0, 1]",
    "memory_": _optional_matrix,
    "patch_memory_": _optional_matrix,
    "patch_mean_": lambda v: None if v is None or _is_finite_array(v, 1) else "None or a finite float vector",
    "patch_std_": lambda v: None if v is None or (_is_finite_array(v, 1) and (v > 0).all())
    else "None or a positive float vector",
}


def _check_attributes(cls: type, attrs: Mapping[str, Any], path: Path) -> None:
    """Fitted attributes from a file: sklearn-style names (``threshold_``) that are not methods, properties or
    other class members (a file must not replace ``predict`` or ``__dict__``), each value checked by
    :data:`_ATTRIBUTE_CHECKS`, and the shapes consistent with each other."""
    for attr in attrs:
        if not _FITTED_NAME.fullmatch(attr) or attr == "net_" or hasattr(cls, attr):
            raise ValueError(f"{path} sets the attribute {attr!r}, which is not a fitted attribute of "
                             f"{cls.__name__} (names like 'threshold_', never methods or class members)")
    for attr, value in attrs.items():
        check = _ATTRIBUTE_CHECKS.get(attr)
        expected = check(value) if check is not None else None
        if expected is not None:
            shown = f"an array of shape {value.shape} and dtype {value.dtype}" if isinstance(value, np.ndarray) \
                else repr(value)[:80]
            raise ValueError(f"{path}: {attr} must be {expected}; got {shown}")
    shape = attrs.get("input_shape_")
    if shape is not None:
        if attrs.get("n_features_in_", math.prod(shape)) != math.prod(shape):
            raise ValueError(f"{path}: n_features_in_={attrs['n_features_in_']} contradicts input_shape_={shape}")
        for attr in ("input_mean_", "input_std_"):
            if attr in attrs and attrs[attr].shape != (shape[2],):
                raise ValueError(f"{path}: {attr} has {attrs[attr].shape[0]} entries for {shape[2]} channels")


def _check_shapes_before_building(
    estimator: Any, attrs: Mapping[str, Any], tensors: Mapping[str, torch.Tensor], path: Path
) -> None:
    """Compare the file's tensors with the networks its configuration describes, built on the ``meta`` device
    (shapes without storage): a small file that describes a huge network is refused before anything is allocated.
    A plugin network that cannot be built without storage is left to the same check after building."""
    try:
        with torch.device("meta"):
            modules = estimator._modules_from_attributes(attrs)
    except ValueError:
        raise
    except Exception:  # noqa: BLE001 - a third-party network may not support the meta device
        return
    expected = {f"{_NET_PREFIX}{name}.{key}": value for name, module in modules.items()
                for key, value in module.state_dict().items()}
    _compare_tensors(expected, tensors, path)


def _compare_tensors(expected: Mapping[str, torch.Tensor], tensors: Mapping[str, torch.Tensor], path: Path) -> None:
    """The file's network tensors are exactly ``expected``'s names, shapes and dtypes."""
    stored = {k for k in tensors if k.startswith(_NET_PREFIX)}
    missing, extra = sorted(set(expected) - stored), sorted(stored - set(expected))
    if missing or extra:
        raise ValueError(
            f"{path} does not fit the networks rebuilt from its configuration: "
            + "; ".join(s for s in (f"missing tensors {missing[:5]}" if missing else "",
                                    f"unexpected tensors {extra[:5]}" if extra else "") if s)
        )
    for key, target in expected.items():
        got = tensors[key]
        if tuple(got.shape) != tuple(target.shape) or got.dtype != target.dtype:
            raise ValueError(
                f"{path}: tensor {key!r} is {got.dtype} of shape {tuple(got.shape)} in the file, but the network "
                f"rebuilt from its configuration needs {target.dtype} of shape {tuple(target.shape)}"
            )


def _load_weights(net: Any, tensors: Mapping[str, torch.Tensor], path: Path) -> None:
    expected: dict[str, torch.Tensor] = {}
    for module_name in net._modules:
        for key, value in getattr(net, module_name + "_").state_dict().items():
            expected[f"{_NET_PREFIX}{module_name}.{key}"] = value
    _compare_tensors(expected, tensors, path)
    for module_name in net._modules:
        prefix = f"{_NET_PREFIX}{module_name}."
        module = getattr(net, module_name + "_")
        device = next((t.device for t in module.state_dict().values()), torch.device("cpu"))
        state = {k[len(prefix):]: v.to(device) for k, v in tensors.items() if k.startswith(prefix)}
        module.load_state_dict(state, strict=True)
        module.eval()
