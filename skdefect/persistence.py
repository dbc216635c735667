"""Safe model files (safetensors + JSON) and ONNX export of fitted detectors.

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
into them. See ``docs/persistence.md`` for the rules (dropped parameters, version checks, the ONNX
graph's inputs and outputs).
"""

from __future__ import annotations

import copy
import hashlib
import importlib
import inspect
import json
import math
import os
import re
import struct
import tempfile
import warnings
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from sklearn.utils.validation import check_is_fitted
from torch import nn

from ._io import atomic_write
from .training.base import eager

__all__ = [
    "FORMAT_NAME",
    "FORMAT_VERSION",
    "SUFFIX",
    "SUPPORTED_FORMAT_VERSIONS",
    "export_onnx",
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
def _build_two_stage_net(est: Any, attrs: Mapping[str, Any], device: torch.device) -> Any:
    """An initialised (untrained) :class:`~skdefect.training.TwoStageNet` shaped like the fitted one."""
    from ._base import resolve_plugin
    from .plugins import get_backbone

    if est.backbone != "auto":  # the parameter names a network: it must exist and be the fitted one
        resolve_plugin(get_backbone, est.backbone, "backbone")
    backbone = str(attrs.get("backbone_", est.backbone))  # files written before "auto" name the backbone itself
    if est.backbone not in ("auto", backbone):
        raise ValueError(f"the file's backbone={est.backbone!r} contradicts its fitted backbone_={backbone!r}")
    return est._build_net(est._build_module(int(attrs["input_shape_"][2]), backbone), device, verbose=0)


def _build_gan_net(est: Any, attrs: Mapping[str, Any], device: torch.device) -> Any:
    """An initialised (untrained) :class:`~skdefect.training.gan.DualGANNet` shaped like the fitted one."""
    generator, discriminator = est._build_modules(int(attrs["input_shape_"][2]))
    return est._build_net(generator, discriminator, bool(attrs["one_class_"]), device, verbose=0)


_COMMON_ATTRIBUTES = ("classes_", "threshold_", "input_shape_", "image_size_", "n_features_in_", "n_parameters_")

#: class name -> (module defining it, net builder, fitted attributes inference needs)
_ESTIMATORS: dict[str, tuple[str, Callable[..., Any], tuple[str, ...]]] = {
    "ConcentratedTwoStageDetector": (
        "skdefect.two_stage",
        _build_two_stage_net,
        (*_COMMON_ATTRIBUTES, "input_mean_", "input_std_"),
    ),
    "DualDiscriminatorGANDetector": (
        "skdefect.gan",
        _build_gan_net,
        (*_COMMON_ATTRIBUTES, "one_class_", "score_scale_", "sampler_indices_"),
    ),
}


def _estimator_class(name: str) -> type:
    return getattr(importlib.import_module(_ESTIMATORS[name][0]), name)


def _check_savable(estimator: Any) -> str:
    name = type(estimator).__name__
    if name not in _ESTIMATORS or type(estimator) is not _estimator_class(name):
        raise TypeError(
            f"only {', '.join(sorted(_ESTIMATORS))} can be saved to a skdefect model file; "
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


def _from_json(value: Any, arrays: Mapping[str, torch.Tensor]) -> Any:
    if isinstance(value, list):
        return [_from_json(v, arrays) for v in value]
    if not isinstance(value, dict):
        return value
    if len(value) != 1:
        raise ValueError(f"untagged JSON object {sorted(value)}")
    (tag, body), = value.items()
    if tag == "__tuple__":
        return tuple(_from_json(v, arrays) for v in body)
    if tag == "__dict__":
        return {k: _from_json(v, arrays) for k, v in body.items()}
    if tag == "__float__":
        return float(body)
    if tag == "__array__":
        if body not in arrays:
            raise ValueError(f"the file lacks tensor {body!r}")
        return arrays[body].numpy().copy()
    if tag == "__strarray__":
        return np.array(body["data"], dtype=object).reshape(body["shape"])
    raise ValueError(f"unknown JSON tag {tag!r}")


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


def _read(path: Path) -> tuple[dict[str, str], dict[str, Any], dict[str, torch.Tensor]]:
    """``(metadata, config, tensors)`` of a model file, after every integrity check; nothing is unpickled."""
    with open(path, "rb") as f:
        data = f.read()
    where = f"{path} is not a skdefect model file"
    if len(data) < 10:
        raise ValueError(f"{where}: it holds only {len(data)} bytes")
    (n_header,) = struct.unpack("<Q", data[:8])
    if n_header > min(_MAX_HEADER, len(data) - 8) or data[8:9] != b"{":
        what = (
            "a pickle" if data[:1] == b"\x80" else "a zip archive (torch.save?)" if data[:2] == b"PK" else "unknown"
        )
        raise ValueError(f"{where}: it is not a safetensors file (content: {what}); model files are written by "
                         "`estimator.save(path)` and nothing else is read, so no pickle is ever loaded")
    try:
        header = json.loads(data[8 : 8 + n_header].decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ValueError(f"{where}: its safetensors header is not valid JSON ({exc})") from None
    meta = header.get("__metadata__") if isinstance(header, dict) else None
    if not isinstance(meta, dict) or meta.get("format") != FORMAT_NAME:
        raise ValueError(f"{where}: a safetensors file without skdefect metadata (__metadata__['format'] is not "
                         f"{FORMAT_NAME!r})")
    version = meta.get("format_version")
    if version not in {str(v) for v in SUPPORTED_FORMAT_VERSIONS}:
        raise ValueError(
            f"{path} has skdefect model-file format version {version!r}; skdefect {_skdefect_version()} reads "
            f"format version(s) {', '.join(map(str, sorted(SUPPORTED_FORMAT_VERSIONS)))}. Load it with the skdefect "
            "version that wrote it"
        )
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
        config = json.loads(config_str)
    except json.JSONDecodeError as exc:
        raise ValueError(f"{path}: its configuration is not valid JSON ({exc})") from None
    if not isinstance(config, dict):
        raise ValueError(f"{path}: its configuration is a {type(config).__name__}, not a JSON object")
    return meta, config, tensors


def _major(version: str) -> int:
    head = str(version).split(".", 1)[0]
    if not head.isdigit():
        raise ValueError(f"cannot read the version {version!r}")
    return int(head)


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

    written_by = config.get("skdefect_version", "unknown")
    try:
        compatible = _major(written_by) == _major(_skdefect_version())
    except ValueError:
        compatible = False
    if not compatible:
        raise ValueError(
            f"{path} was written by skdefect {written_by}, which is incompatible with this skdefect "
            f"{_skdefect_version()} (the major versions differ); load it with skdefect {written_by}"
        )
    name = config.get("estimator")
    if name not in _ESTIMATORS:
        raise ValueError(
            f"{path} names the estimator class {name!r}, which is not one skdefect loads "
            f"(known: {', '.join(sorted(_ESTIMATORS))})"
        )
    cls = _estimator_class(name)
    _, build_net, required = _ESTIMATORS[name]
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
    missing_attrs = [a for a in required if a not in attrs]
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
        net = build_net(estimator, attrs, dev)
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


def _check_attributes(cls: type, attrs: Mapping[str, Any], path: Path) -> None:
    """Fitted attributes from a file: sklearn-style names (``threshold_``) that are not methods, properties or
    other class members (a file must not replace ``predict`` or ``__dict__``), and a finite threshold."""
    for attr in attrs:
        if not _FITTED_NAME.fullmatch(attr) or attr == "net_" or hasattr(cls, attr):
            raise ValueError(f"{path} sets the attribute {attr!r}, which is not a fitted attribute of "
                             f"{cls.__name__} (names like 'threshold_', never methods or class members)")
    threshold = attrs.get("threshold_")
    if isinstance(threshold, bool) or not isinstance(threshold, (int, float)) or not math.isfinite(threshold):
        raise ValueError(f"{path}: threshold_ must be a finite number; got {threshold!r}")


def _load_weights(net: Any, tensors: Mapping[str, torch.Tensor], path: Path) -> None:
    expected: dict[str, torch.Tensor] = {}
    for module_name in net._modules:
        for key, value in getattr(net, module_name + "_").state_dict().items():
            expected[f"{_NET_PREFIX}{module_name}.{key}"] = value
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
    for module_name in net._modules:
        prefix = f"{_NET_PREFIX}{module_name}."
        module = getattr(net, module_name + "_")
        device = next((t.device for t in module.state_dict().values()), torch.device("cpu"))
        state = {k[len(prefix):]: v.to(device) for k, v in tensors.items() if k.startswith(prefix)}
        module.load_state_dict(state, strict=True)
        module.eval()


# -- ONNX -------------------------------------------------------------------------------------------------------
def _resize_matrix(n_in: int, n_out: int, antialias: bool) -> torch.Tensor:
    """``(n_out, n_in)`` matrix of the 1-D bilinear resize ``F.interpolate`` does along one axis.

    Bilinear resizing (with or without antialiasing) is linear and separable, so resizing an
    image is ``A_h @ x @ A_w.T``: a MatMul in ONNX, identical in every runtime.
    """
    # the other axis is 2 wide and kept: torch's antialiasing kernel special-cases a side of 1
    basis = torch.eye(n_in).view(n_in, 1, n_in, 1).expand(n_in, 1, n_in, 2).contiguous()
    out = F.interpolate(basis, size=(n_out, 2), mode="bilinear", align_corners=False, antialias=antialias)
    return out[:, 0, :, 0].T.contiguous()


class _Resize(nn.Module):
    def __init__(self, size_in: tuple[int, int], size_out: tuple[int, int], antialias: bool) -> None:
        super().__init__()
        self.identity = tuple(size_in) == tuple(size_out)
        self.register_buffer("rows", _resize_matrix(size_in[0], size_out[0], antialias))
        self.register_buffer("cols_t", _resize_matrix(size_in[1], size_out[1], antialias).T.contiguous())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.identity:
            return x
        return torch.matmul(torch.matmul(self.rows, x), self.cols_t)


class _TwoStageGraph(nn.Module):
    """image (n, C, H, W) in [0, 1] → (image score (n,), P(defect) per pixel (n, H, W)).

    The detector's own inference graph (:meth:`ConcentratedTwoStageDetector.scorer`) between the input
    normalisation and the resizes."""

    def __init__(self, estimator: Any) -> None:
        super().__init__()
        h, w, c = estimator.input_shape_
        self.scorer = copy.deepcopy(estimator.scorer()).cpu().float().eval()
        self.resize_in = _Resize((h, w), estimator.image_size_, antialias=True)
        self.register_buffer("mean", torch.as_tensor(np.asarray(estimator.input_mean_, np.float32)).view(1, c, 1, 1))
        self.register_buffer("std", torch.as_tensor(np.asarray(estimator.input_std_, np.float32)).view(1, c, 1, 1))
        with torch.no_grad():  # the segmentation map's resolution (the input's, or a fraction of it)
            seg_size = tuple(self.scorer(torch.zeros(2, c, *estimator.image_size_))[1].shape[-2:])
        self.resize_out = _Resize(seg_size, (h, w), antialias=False)

    def forward(self, image: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        x = (self.resize_in(image) - self.mean) / self.std
        score, seg = self.scorer(x)
        return score, self.resize_out(seg).sigmoid()[:, 0]


class _GANGraph(nn.Module):
    """image (n, C, H, W) in [0, 1] → (anomaly score (n,), reconstruction error per pixel (n, H, W)).

    The detector's own inference graph (:meth:`DualDiscriminatorGANDetector.scorer`) between the resizes."""

    def __init__(self, estimator: Any) -> None:
        super().__init__()
        h, w, c = estimator.input_shape_
        self.scorer = copy.deepcopy(estimator.scorer()).cpu().float().eval()
        self.resize_in = _Resize((h, w), estimator.image_size_, antialias=True)
        with torch.no_grad():  # the anomaly map's resolution (the network's, or a quarter for patch_memory)
            map_size = tuple(self.scorer(torch.zeros(2, c, *estimator.image_size_))[1].shape[-2:])
        self.resize_out = _Resize(map_size, (h, w), antialias=False)

    def forward(self, image: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        scores, error_map = self.scorer(self.resize_in(image))
        return scores, self.resize_out(error_map)


_GRAPHS: dict[str, tuple[type[nn.Module], str]] = {
    "ConcentratedTwoStageDetector": (_TwoStageGraph, "image score (the decision logit), as decision_function"),
    "DualDiscriminatorGANDetector": (_GANGraph, "anomaly score, as decision_function"),
}
_MAPS = {
    "ConcentratedTwoStageDetector": "per-pixel defect probability at input resolution, as segment",
    "DualDiscriminatorGANDetector": "per-pixel reconstruction error at input resolution, as anomaly_map",
}


def export_onnx(estimator: Any, path: str | os.PathLike[str], *, opset: int = 17) -> Path:
    """Export a fitted detector's inference path to ONNX (see :meth:`BaseDefectDetector.to_onnx`).

    Parameters
    ----------
    estimator : ConcentratedTwoStageDetector or DualDiscriminatorGANDetector
        A fitted detector.
    path : str or os.PathLike
        The ``.onnx`` file to write.
    opset : int, default=17
        ONNX opset, at least 13.

    Returns
    -------
    path : pathlib.Path
    """
    path = _check_path(path)
    name = _check_savable(estimator)
    if isinstance(opset, bool) or not isinstance(opset, (int, np.integer)):
        raise TypeError(f"opset must be an int (e.g. 17), got {type(opset).__name__}")
    if opset < 13:
        raise ValueError(f"opset must be at least 13, got {opset}")
    try:
        import onnx
    except ImportError:  # pragma: no cover - depends on the installation
        raise ImportError("to_onnx needs the onnx package: pip install 'skdefect[onnx]'") from None

    graph_cls, score_doc = _GRAPHS[name]
    graph = graph_cls(estimator).eval()
    h, w, c = estimator.input_shape_
    example = torch.rand(2, c, h, w, generator=torch.Generator().manual_seed(0))
    kwargs: dict[str, Any] = {}
    if "dynamo" in inspect.signature(torch.onnx.export).parameters:
        kwargs["dynamo"] = False  # the TorchScript exporter: no onnxscript needed, Resize-free graph either way
    fd, tmp = tempfile.mkstemp(prefix=path.name + ".", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        with torch.no_grad(), warnings.catch_warnings(), eager(graph):  # the tracer needs the Python forward
            warnings.simplefilter("ignore")  # tracer and deprecation chatter
            torch.onnx.export(
                graph, (example,), tmp, input_names=["image"], output_names=["score", "map"],
                dynamic_axes={"image": {0: "batch"}, "score": {0: "batch"}, "map": {0: "batch"}},
                opset_version=int(opset), do_constant_folding=True, **kwargs,
            )
        model = onnx.load(tmp)
    finally:
        Path(tmp).unlink(missing_ok=True)
    model.doc_string = (
        f"skdefect {_skdefect_version()} {name}. Input 'image': float32 (batch, {c}, {h}, {w}) in [0, 1] "
        f"(uint8 images divided by 255, channels first). Outputs 'score': (batch,) {score_doc}; predict is "
        f"score >= threshold. 'map': (batch, {h}, {w}) {_MAPS[name]}."
    )
    props = {
        "skdefect_version": _skdefect_version(),
        "estimator": name,
        "threshold": repr(float(estimator.threshold_)),
        "input_shape": json.dumps([c, h, w]),
        "image_size": json.dumps(list(estimator.image_size_)),
    }
    if name == "DualDiscriminatorGANDetector":
        props["score_scale"] = repr(float(estimator.score_scale_))
    for key, value in props.items():
        entry = model.metadata_props.add()
        entry.key, entry.value = key, value
    onnx.checker.check_model(model)
    return atomic_write(path, model.SerializeToString())  # a failed re-export leaves the earlier file whole
