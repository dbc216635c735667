"""Checkpoint files without pickle: tensors in safetensors, everything else as tagged JSON in its header.

A training state (:meth:`DefectNetBase.training_state`) holds module and optimizer state dicts, the history,
RNG states and a few Python objects (the sampler, the stage progress). ``torch.save`` would pickle them, and
``torch.load(weights_only=False)`` of a file planted in a checkpoint folder runs its code. Here the state is
split into

- the tensors (and NumPy arrays, as raw bytes with their dtype and shape), stored by safetensors, and
- a JSON tree with a few tags for what JSON lacks: tuples, non-string dict keys, non-finite floats, bytes,
  NumPy ``RandomState`` states, references to tensors and arrays, and the ``__dict__`` of objects.

Reading builds nothing but those values. An object is rebuilt only as an instance of a class the caller allows
(``allowed``: the classes of the net's own sampler and progress objects), by ``cls.__new__`` and ``__dict__``
assignment, so no constructor or other code named by the file runs. Objects that the state shares (a sampler's
``RandomState`` used by its helpers too) stay shared after a round trip, which keeps resumed training identical
to uninterrupted training.
"""

from __future__ import annotations

import base64
import json
import math
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np
import torch

from .._io import atomic_write

__all__ = ["CheckpointError", "read_checkpoint", "write_checkpoint"]

FORMAT = "skdefect-checkpoint"
VERSION = 2
MAX_DEPTH = 64
_NUMERIC_KINDS = "biuf"


class CheckpointError(ValueError):
    """A checkpoint file that is not one of ours, or holds something a checkpoint may not hold."""


# -- encoding ------------------------------------------------------------------------------------------------------
class _Encoder:
    def __init__(self) -> None:
        self.tensors: dict[str, torch.Tensor] = {}
        self.memo: dict[int, int] = {}  # id(obj) -> reference number, for objects that may be shared
        self.keep: list[Any] = []  # keeps memoised objects alive so their ids stay unique

    def _ref(self, obj: Any) -> tuple[int, bool]:
        key = id(obj)
        if key in self.memo:
            return self.memo[key], True
        self.memo[key] = len(self.memo)
        self.keep.append(obj)
        return self.memo[key], False

    def encode(self, obj: Any, depth: int = 0) -> Any:
        if depth > MAX_DEPTH:
            raise CheckpointError(f"training state nested deeper than {MAX_DEPTH} levels")
        if obj is None or isinstance(obj, (bool, str)):
            return obj
        if isinstance(obj, (int, np.integer)) and not isinstance(obj, np.bool_):
            return int(obj)
        if isinstance(obj, (float, np.floating)):
            value = float(obj)
            return value if math.isfinite(value) else {"__float__": repr(value)}
        if isinstance(obj, np.bool_):
            return bool(obj)
        if isinstance(obj, bytes):
            return {"__bytes__": base64.b64encode(obj).decode("ascii")}
        if isinstance(obj, torch.Tensor):
            name = f"t{len(self.tensors)}"
            self.tensors[name] = obj.detach().cpu().contiguous().clone()
            return {"__tensor__": name}
        if isinstance(obj, np.ndarray):
            if obj.dtype.kind not in _NUMERIC_KINDS:
                raise CheckpointError(f"cannot store a NumPy array of dtype {obj.dtype} in a checkpoint")
            name = f"t{len(self.tensors)}"
            raw = np.ascontiguousarray(obj).view(np.uint8).reshape(-1)
            self.tensors[name] = torch.from_numpy(raw.copy())
            return {"__ndarray__": name, "dtype": obj.dtype.str, "shape": list(obj.shape)}
        if isinstance(obj, tuple):
            return {"__tuple__": [self.encode(v, depth + 1) for v in obj]}
        if isinstance(obj, list):
            return [self.encode(v, depth + 1) for v in obj]
        if isinstance(obj, dict):
            if all(isinstance(k, str) and not k.startswith("__") for k in obj):
                return {k: self.encode(v, depth + 1) for k, v in obj.items()}
            return {"__items__": [[self.encode(k, depth + 1), self.encode(v, depth + 1)] for k, v in obj.items()]}
        if isinstance(obj, np.random.RandomState):
            ref, seen = self._ref(obj)
            if seen:
                return {"__ref__": ref}
            return {"__random_state__": self.encode(obj.get_state(legacy=True), depth + 1), "id": ref}
        if hasattr(obj, "__dict__") and not callable(obj):
            ref, seen = self._ref(obj)
            if seen:
                return {"__ref__": ref}
            cls = type(obj)
            return {"__object__": f"{cls.__module__}.{cls.__qualname__}", "id": ref,
                    "state": self.encode(dict(vars(obj)), depth + 1)}
        raise CheckpointError(f"cannot store a {type(obj).__module__}.{type(obj).__qualname__} in a checkpoint")


# -- decoding ------------------------------------------------------------------------------------------------------
class _Decoder:
    def __init__(self, tensors: dict[str, torch.Tensor], allowed: dict[str, type]) -> None:
        self.tensors = tensors
        self.allowed = allowed
        self.refs: dict[int, Any] = {}

    def _tensor(self, name: Any) -> torch.Tensor:
        if not isinstance(name, str) or name not in self.tensors:
            raise CheckpointError(f"checkpoint refers to a tensor {name!r} it does not hold")
        return self.tensors[name]

    def _ref_id(self, node: dict) -> int:
        ref = node.get("id")
        if not isinstance(ref, int) or isinstance(ref, bool) or ref in self.refs:
            raise CheckpointError(f"checkpoint object id {ref!r} is missing or repeated")
        return ref

    def decode(self, node: Any, depth: int = 0) -> Any:
        if depth > MAX_DEPTH:
            raise CheckpointError(f"checkpoint tree nested deeper than {MAX_DEPTH} levels")
        if node is None or isinstance(node, (bool, int, float, str)):
            return node
        if isinstance(node, list):
            return [self.decode(v, depth + 1) for v in node]
        if not isinstance(node, dict):
            raise CheckpointError(f"unexpected {type(node).__name__} in a checkpoint tree")
        tags = [k for k in node if k.startswith("__")]
        if not tags:
            return {k: self.decode(v, depth + 1) for k, v in node.items()}
        tag = tags[0]
        if tag == "__float__":
            if node[tag] not in ("nan", "inf", "-inf"):
                raise CheckpointError(f"bad float {node[tag]!r} in a checkpoint")
            return float(node[tag])
        if tag == "__bytes__":
            return base64.b64decode(str(node[tag]), validate=True)
        if tag == "__tensor__":
            return self._tensor(node[tag])
        if tag == "__ndarray__":
            return self._ndarray(node)
        if tag == "__tuple__":
            return tuple(self.decode(v, depth + 1) for v in self._list(node[tag]))
        if tag == "__items__":
            out: dict[Any, Any] = {}
            for pair in self._list(node[tag]):
                if not isinstance(pair, list) or len(pair) != 2:
                    raise CheckpointError("bad dict item in a checkpoint")
                key = self.decode(pair[0], depth + 1)
                if not isinstance(key, (str, int, float, bool, tuple)) and key is not None:
                    raise CheckpointError(f"bad dict key type {type(key).__name__} in a checkpoint")
                out[key] = self.decode(pair[1], depth + 1)
            return out
        if tag == "__ref__":
            if node[tag] not in self.refs:
                raise CheckpointError(f"checkpoint refers to an object {node[tag]!r} it has not defined")
            return self.refs[node[tag]]
        if tag == "__random_state__":
            ref = self._ref_id(node)
            rs = np.random.RandomState()
            state = self.decode(node[tag], depth + 1)
            try:
                rs.set_state(state)
            except (TypeError, ValueError) as exc:
                raise CheckpointError(f"bad RandomState in a checkpoint ({exc})") from None
            self.refs[ref] = rs
            return rs
        if tag == "__object__":
            return self._object(node, depth)
        raise CheckpointError(f"unknown tag {tag!r} in a checkpoint")

    @staticmethod
    def _list(value: Any) -> list:
        if not isinstance(value, list):
            raise CheckpointError("expected a list in a checkpoint tree")
        return value

    def _ndarray(self, node: dict) -> np.ndarray:
        raw = self._tensor(node["__ndarray__"])
        try:
            dtype = np.dtype(str(node.get("dtype")))
        except TypeError:
            raise CheckpointError(f"bad array dtype {node.get('dtype')!r} in a checkpoint") from None
        shape = node.get("shape")
        if dtype.kind not in _NUMERIC_KINDS or dtype.hasobject or not isinstance(shape, list) or not all(
                isinstance(s, int) and not isinstance(s, bool) and s >= 0 for s in shape):
            raise CheckpointError(f"bad array dtype/shape {node.get('dtype')!r}/{shape!r} in a checkpoint")
        if raw.dtype != torch.uint8 or raw.ndim != 1 or raw.numel() != dtype.itemsize * math.prod(shape):
            raise CheckpointError("array bytes do not match their dtype and shape in a checkpoint")
        return raw.numpy().view(dtype).reshape(shape).copy()

    def _object(self, node: dict, depth: int) -> Any:
        name = node["__object__"]
        cls = self.allowed.get(name) if isinstance(name, str) else None
        if cls is None:
            raise CheckpointError(f"checkpoint holds an object of class {name!r}, which this net does not use")
        ref = self._ref_id(node)
        obj = cls.__new__(cls)
        self.refs[ref] = obj  # before the state: the state may refer back to it
        state = self.decode(node.get("state"), depth + 1)
        if not isinstance(state, dict) or not all(isinstance(k, str) for k in state):
            raise CheckpointError(f"bad state of a {name} in a checkpoint")
        obj.__dict__.update(state)
        return obj


# -- files ---------------------------------------------------------------------------------------------------------
def _class_name(cls: type) -> str:
    return f"{cls.__module__}.{cls.__qualname__}"


def allowed_classes(objects: Iterable[Any], extra: Iterable[type] = ()) -> dict[str, type]:
    """The classes of ``objects`` and of every object reachable through their ``__dict__``s, plus ``extra``."""
    allowed = {_class_name(c): c for c in extra}
    seen: set[int] = set()
    stack = list(objects)
    while stack:
        obj = stack.pop()
        if id(obj) in seen or obj is None:
            continue
        seen.add(id(obj))
        if isinstance(obj, (list, tuple)):
            stack.extend(obj)
        elif isinstance(obj, dict):
            stack.extend(obj.values())
        elif hasattr(obj, "__dict__") and not callable(obj) and not isinstance(
                obj, (torch.Tensor, np.ndarray, np.random.RandomState)):
            allowed[_class_name(type(obj))] = type(obj)
            stack.extend(vars(obj).values())
    return allowed


def write_checkpoint(path: Path, state: dict[str, Any]) -> None:
    """Write ``state`` to ``path``: a temporary file beside it, flushed, then renamed over it (atomic)."""
    from safetensors.torch import save

    encoder = _Encoder()
    tree = encoder.encode(state)
    metadata = {"format": FORMAT, "version": str(VERSION),
                "tree": json.dumps(tree, allow_nan=False, separators=(",", ":"))}
    data = save(encoder.tensors, metadata=metadata)
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write(path, data)  # a reader sees the old or the new checkpoint, never half of one


def read_checkpoint(path: Path, allowed: dict[str, type]) -> dict[str, Any]:
    """Read a :func:`write_checkpoint` file; objects only of the ``allowed`` classes (name -> class).

    Raises
    ------
    CheckpointError
        When the file is not a skdefect checkpoint (a pickle, a ``torch.save`` archive, another version) or
        holds anything outside the format. Nothing in the file is executed.
    """
    from safetensors import SafetensorError
    from safetensors.torch import load

    data = Path(path).read_bytes()
    if data[:1] == b"\x80" or data[:2] == b"PK":
        raise CheckpointError(f"{path} is a pickle or a torch.save archive; skdefect checkpoints are safetensors "
                              "files and pickles are never loaded")
    try:
        tensors = load(data)  # validates the header; its metadata is then read from the same bytes
        header_size = int.from_bytes(data[:8], "little")
        metadata = json.loads(data[8 : 8 + header_size]).get("__metadata__") or {}
    except (SafetensorError, ValueError, RecursionError) as exc:
        raise CheckpointError(f"{path} is not a safetensors file ({exc})") from None
    if metadata.get("format") != FORMAT:
        raise CheckpointError(f"{path} is not a skdefect checkpoint")
    if metadata.get("version") != str(VERSION):
        raise CheckpointError(f"{path} is a skdefect checkpoint of version {metadata.get('version')!r}; this "
                              f"skdefect reads version {VERSION}")
    try:
        tree = json.loads(metadata.get("tree", ""))
    except (ValueError, RecursionError) as exc:
        raise CheckpointError(f"{path} holds a malformed state ({type(exc).__name__})") from None
    state = _Decoder(tensors, allowed).decode(tree)
    if not isinstance(state, dict):
        raise CheckpointError(f"{path} holds no training state")
    return state
