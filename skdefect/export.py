"""ONNX export of fitted detectors: the estimator's own inference graph between the input resize and the
output resize, written atomically with its documentation and metadata.

Each estimator owns its graph (``_export_graph``: its scorer, the one :meth:`decision_function` and the
maps use, wrapped in :class:`Resize` and its input normalisation); this module knows no estimator class.
"""

from __future__ import annotations

import inspect
import json
import os
import tempfile
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ._io import atomic_write
from .persistence import _check_path, _check_savable, _skdefect_version
from .training.base import eager

__all__ = ["Resize", "export_onnx"]


def _resize_matrix(n_in: int, n_out: int, antialias: bool) -> torch.Tensor:
    """``(n_out, n_in)`` matrix of the 1-D bilinear resize ``F.interpolate`` does along one axis.

    Bilinear resizing (with or without antialiasing) is linear and separable, so resizing an
    image is ``A_h @ x @ A_w.T``: a MatMul in ONNX, identical in every runtime.
    """
    # the other axis is 2 wide and kept: torch's antialiasing kernel special-cases a side of 1
    basis = torch.eye(n_in).view(n_in, 1, n_in, 1).expand(n_in, 1, n_in, 2).contiguous()
    out = F.interpolate(basis, size=(n_out, 2), mode="bilinear", align_corners=False, antialias=antialias)
    return out[:, 0, :, 0].T.contiguous()


class Resize(nn.Module):
    """Bilinear resize ``(n, C, h_in, w_in) → (n, C, h_out, w_out)`` as two matrix products (exportable as MatMul,
    equal to ``F.interpolate(..., mode="bilinear", antialias=antialias)``)."""

    def __init__(self, size_in: tuple[int, int], size_out: tuple[int, int], antialias: bool) -> None:
        super().__init__()
        self.identity = tuple(size_in) == tuple(size_out)
        self.register_buffer("rows", _resize_matrix(size_in[0], size_out[0], antialias))
        self.register_buffer("cols_t", _resize_matrix(size_in[1], size_out[1], antialias).T.contiguous())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.identity:
            return x
        return torch.matmul(torch.matmul(self.rows, x), self.cols_t)


def export_onnx(estimator: Any, path: str | os.PathLike[str], *, opset: int = 17) -> Path:
    """Export a fitted detector's inference path to ONNX (see :meth:`BaseDefectDetector.to_onnx`).

    Parameters
    ----------
    estimator : ConcentratedTwoStageDetector or DualDiscriminatorGANDetector
        A fitted detector.
    path : str or os.PathLike
        The ``.onnx`` file to write (replaced atomically: a failed export leaves an earlier file whole).
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

    graph, score_doc, map_doc, extra = estimator._export_graph()
    graph = graph.eval()
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
        f"score >= threshold. 'map': (batch, {h}, {w}) {map_doc}."
    )
    props = {
        "skdefect_version": _skdefect_version(),
        "estimator": name,
        "threshold": repr(float(estimator.threshold_)),
        "input_shape": json.dumps([c, h, w]),
        "image_size": json.dumps(list(estimator.image_size_)),
        **extra,
    }
    for key, value in props.items():
        entry = model.metadata_props.add()
        entry.key, entry.value = key, value
    onnx.checker.check_model(model)
    return atomic_write(path, model.SerializeToString())
