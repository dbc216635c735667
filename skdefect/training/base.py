"""The batch pipeline and the skorch base net shared by both detectors.

Data never passes through skorch's own ``Dataset``/``DataLoader`` machinery: an
:class:`ImageBatchSource` reads whole minibatches from the validated images (an
``np.memmap`` is read batch by batch), and a :class:`BatchIterator` asks a sampler
for each epoch's order, so one batch costs one fancy-index read, one copy to the
device and one resize/normalise there.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from skorch import NeuralNet

Batch = tuple[torch.Tensor, dict[str, torch.Tensor]]


class ImageBatchSource(torch.utils.data.Dataset):
    """Images (+ labels, masks) served a minibatch at a time as device tensors.

    Parameters
    ----------
    images : skdefect._validation.ImageData
        Validated images; ``images.batch(idx)`` gives float32 (b, C, H, W).
    y : ndarray of shape (n,), optional
        0/1 labels.
    masks : ndarray of bool, shape (n, H, W), optional
        Pixel masks.
    mask_known : ndarray of bool, shape (n,), optional
        Which masks are usable for pixel supervision (mixed supervision).
    size : tuple of int or None
        (h, w) the network sees; None keeps the input size.
    mean, std : sequence of float
        Per-channel normalisation applied on the device after resizing.
    """

    def __init__(
        self,
        images: Any,
        y: np.ndarray | None = None,
        masks: np.ndarray | None = None,
        mask_known: np.ndarray | None = None,
        *,
        size: tuple[int, int] | None = None,
        mean: Any = 0.0,
        std: Any = 1.0,
    ) -> None:
        self.images, self.y, self.masks, self.mask_known = images, y, masks, mask_known
        self.size = None if size is None or tuple(size) == (images.height, images.width) else tuple(size)
        c = images.channels
        self.mean = torch.as_tensor(np.broadcast_to(np.asarray(mean, np.float32), (c,)).copy()).view(1, c, 1, 1)
        self.std = torch.as_tensor(np.broadcast_to(np.asarray(std, np.float32), (c,)).copy()).view(1, c, 1, 1)

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, index: Any) -> Batch:  # a torch Dataset; we index by batches
        return self.get_batch(np.atleast_1d(index), torch.device("cpu"))

    def get_batch(self, idx: np.ndarray | slice, device: torch.device) -> Batch:
        non_blocking = device.type == "cuda"
        x = torch.from_numpy(self.images.batch(idx))
        if non_blocking:
            x = x.pin_memory()
        x = x.to(device, non_blocking=non_blocking)
        if self.size is not None:
            x = F.interpolate(x, size=self.size, mode="bilinear", align_corners=False, antialias=True)
        x = (x - self.mean.to(device)) / self.std.to(device)
        extras: dict[str, torch.Tensor] = {}
        if self.y is not None:
            extras["y"] = torch.as_tensor(self.y[idx], dtype=torch.float32).to(device, non_blocking=non_blocking)
        if self.masks is not None:
            m = torch.from_numpy(np.ascontiguousarray(self.masks[idx])).to(device, non_blocking=non_blocking)
            m = m.unsqueeze(1).float()
            if self.size is not None:  # area averaging keeps thin defects as soft targets
                m = F.interpolate(m, size=self.size, mode="area")
            extras["mask"] = m
        if self.mask_known is not None:
            extras["mask_known"] = torch.as_tensor(self.mask_known[idx]).to(device)
        return x, extras


class BatchIterator:
    """Iterates minibatches in the order ``order()`` returns, asked anew every epoch."""

    def __init__(
        self,
        source: ImageBatchSource,
        batch_size: int,
        order: Callable[[], np.ndarray],
        device: torch.device | str,
    ) -> None:
        self.source, self.batch_size, self.order = source, int(batch_size), order
        self.device = torch.device(device)

    def __iter__(self) -> Iterator[Batch]:
        idx = np.asarray(self.order())
        for start in range(0, len(idx), self.batch_size):
            chunk = idx[start : start + self.batch_size]
            # a contiguous run is read as a slice: one memmap read, no fancy-index copy
            if len(chunk) and chunk[-1] - chunk[0] == len(chunk) - 1 and (np.diff(chunk) == 1).all():
                chunk = slice(int(chunk[0]), int(chunk[-1]) + 1)
            yield self.source.get_batch(chunk, self.device)

    def __len__(self) -> int:
        return -(-len(self.source) // self.batch_size)


class _NoCriterion(torch.nn.Module):
    """skorch wants a criterion; our train steps compute their own losses."""

    def forward(self, *args: Any) -> torch.Tensor:  # pragma: no cover - never called
        raise RuntimeError("skdefect nets compute their losses in train_step")


class DefectNetBase(NeuralNet):
    """skorch net whose epochs are driven by a skdefect sampler.

    Subclasses implement ``train_step(batch)`` returning ``{"loss": tensor,
    "terms": {name: tensor}}``. Losses stay on the device during an epoch and are
    read back once at its end (no per-batch host synchronisation); every term is
    recorded in the history as ``train_<name>`` per epoch. A non-finite term stops
    training with a :class:`FloatingPointError` naming the epoch and the term.
    """

    def __init__(
        self,
        *args: Any,
        sampler: Any = None,
        features: np.ndarray | None = None,
        amp_dtype: torch.dtype | None = None,
        predict_batch_size: int | None = None,
        augment: bool = False,
        augment_seed: int = 0,
        **kwargs: Any,
    ):
        kwargs.setdefault("criterion", _NoCriterion)
        kwargs.setdefault("train_split", None)
        super().__init__(*args, **kwargs)
        self.sampler = sampler
        self.features = features
        self.amp_dtype = amp_dtype
        self.predict_batch_size = predict_batch_size
        self.augment = augment
        self.augment_seed = augment_seed

    def augment_batch(self, batch: Batch) -> Batch:
        """Random flips (and quarter turns of square images), the same for an image and its mask.

        One choice per minibatch from a generator seeded by ``augment_seed``, so runs
        are reproducible; the pixels are only permuted, never interpolated.
        """
        if not self.augment:
            return batch
        if getattr(self, "_augment_rng", None) is None:
            self._augment_rng = np.random.RandomState(self.augment_seed)
        x, extras = batch
        flip_h, flip_v, turn = self._augment_rng.randint(2, size=3)
        turn = turn and x.shape[-1] == x.shape[-2]

        def apply(t: torch.Tensor) -> torch.Tensor:
            if flip_h:
                t = t.flip(-1)
            if flip_v:
                t = t.flip(-2)
            return t.transpose(-1, -2) if turn else t

        extras = {k: apply(v) if v.dim() == 4 else v for k, v in extras.items()}
        return apply(x), extras

    def autocast(self) -> Any:
        """Mixed precision for forward passes when ``amp_dtype`` is set (bf16 on CUDA)."""
        device = torch.device(self.device)
        return torch.autocast(device.type, dtype=self.amp_dtype, enabled=self.amp_dtype is not None)

    # -- data ---------------------------------------------------------------------
    def get_dataset(self, X: Any, y: Any = None) -> Any:
        if not isinstance(X, ImageBatchSource):
            raise TypeError(f"skdefect nets take an ImageBatchSource, got {type(X).__name__}")
        return X

    def check_data(self, X: Any, y: Any = None) -> None:
        pass

    def get_iterator(self, dataset: Any, training: bool = False) -> BatchIterator:
        n = len(dataset)
        if training and self.sampler is not None:
            y = dataset.y if dataset.y is not None else np.zeros(n, dtype=np.int64)

            def order() -> np.ndarray:
                return self.sampler.epoch_indices(y, self.features)
        else:

            def order() -> np.ndarray:
                return np.arange(n)

        batch_size = self.batch_size if training else (self.predict_batch_size or self.batch_size)
        return BatchIterator(dataset, batch_size, order, self.device)

    # -- epochs -------------------------------------------------------------------
    def run_single_epoch(self, iterator, training, prefix, step_fn, **fit_params):  # noqa: ANN001
        if iterator is None:
            return
        losses: list[torch.Tensor] = []
        sizes: list[int] = []
        terms: dict[str, list[torch.Tensor]] = defaultdict(list)
        for batch in iterator:
            self.notify("on_batch_begin", batch=batch, training=training)
            step = step_fn(batch, **fit_params)
            losses.append(step["loss"].detach().float())
            sizes.append(len(batch[0]))
            for name, value in step.get("terms", {}).items():
                terms[name].append(value.detach().float())
            self.notify("on_batch_end", batch=batch, training=training, **step)
        self._record_epoch(prefix, losses, sizes, terms)

    def _record_epoch(self, prefix: str, losses: list, sizes: list, terms: dict) -> None:
        epoch = len(self.history)
        if losses:  # one host sync per epoch
            values = torch.stack(losses).cpu().tolist()
            for batch_record, value, size in zip(self.history[-1]["batches"], values, sizes, strict=False):
                batch_record[prefix + "_loss"] = value
                batch_record[prefix + "_batch_size"] = size
            means = {name: torch.stack(v).mean() for name, v in terms.items()}
            if means:
                host = dict(zip(means, torch.stack(list(means.values())).cpu().tolist(), strict=True))
                for name, value in host.items():
                    self.history.record(f"{prefix}_{name}", value)
                    if not np.isfinite(value):
                        raise FloatingPointError(
                            f"training diverged in epoch {epoch}: loss term {name!r} is {value}; "
                            f"lower lr or check the inputs"
                        )
            if not np.isfinite(values).all():
                raise FloatingPointError(f"training diverged in epoch {epoch}: the {prefix} loss is not finite")
        self.history.record(prefix + "_batch_count", len(losses))

    # -- inference ----------------------------------------------------------------
    def forward_batches(self, source: ImageBatchSource, fn: Callable[[torch.Tensor], Any]) -> Iterator[Any]:
        """Yield ``fn(x)`` per inference batch, in order, under ``torch.inference_mode``."""
        self.check_is_fitted()
        for module in self._modules:
            getattr(self, module + "_").eval()
        iterator = self.get_iterator(source, training=False)
        with torch.inference_mode(), self.autocast():
            for x, _ in iterator:
                yield fn(x)
