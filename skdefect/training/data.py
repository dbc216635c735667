"""The batch pipeline: images read a whole minibatch at a time, in the order a sampler gives.

Data never passes through skorch's own ``Dataset``/``DataLoader`` machinery: an
:class:`ImageBatchSource` reads whole minibatches from the validated images (an
``np.memmap`` is read batch by batch), and a :class:`BatchIterator` asks a sampler
for each epoch's order, so one batch costs one fancy-index read, one copy to the
device and one resize/normalise there.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any, NamedTuple

import numpy as np
import torch
import torch.nn.functional as F

Batch = tuple[torch.Tensor, dict[str, torch.Tensor]]
_AS_STORED = (np.dtype(np.uint8), np.dtype(np.bool_), np.dtype(np.float32))


def resident_fits(nbytes: int, free_bytes: int, fraction: float = 0.25) -> bool:
    """Whether a training set of ``nbytes`` may live on a device with ``free_bytes`` free.

    It may take at most ``fraction`` of the free memory; the rest stays for activations.
    """
    return 0 <= nbytes <= fraction * free_bytes


def inference_batch_size(
    free_bytes: int, bytes_per_image: float, batch_size: int, *, fraction: float = 0.5, cap: int = 1024
) -> int:
    """Inference batch size from free device memory and a per-image estimate.

    ``bytes_per_image`` is what one training image took (activations, their gradients),
    an upper bound for inference. The result takes at most ``fraction`` of the free memory,
    is a multiple of 8 when above 8, is at most ``cap`` and never below ``batch_size``.
    """
    if bytes_per_image <= 0 or free_bytes <= 0:
        return int(batch_size)
    n = int(fraction * free_bytes // bytes_per_image)
    n = min(int(cap), n - n % 8 if n > 8 else n)
    return int(max(batch_size, n))


def use_channels_last(device: torch.device) -> bool:
    """Whether the networks' weights go channels-last: on CUDA (cuDNN's NHWC kernels, the batches are NHWC
    already). On the CPU the weights stay as built: oneDNN reorders them itself."""
    return device.type == "cuda"


def _same_device(a: torch.device, b: torch.device) -> bool:
    return a.type == b.type and (a.index or 0) == (b.index or 0)

def check_epoch_indices(sampler: Any, indices: Any, n: int) -> np.ndarray:
    """A sampler's epoch: a non-empty 1-D integer array of indices in ``[0, n)``; anything else names the sampler.

    A plugin that breaks the contract would otherwise give a "fitted" untrained network (an empty epoch) or a
    bare NumPy ``IndexError`` deep in the batch pipeline.
    """
    name = f"sampler {type(sampler).__module__}.{type(sampler).__qualname__}"
    arr = np.asarray(indices)
    if arr.ndim != 1 or arr.dtype.kind not in "iu":
        raise TypeError(f"{name}: epoch_indices must return a 1-D integer array; got dtype {arr.dtype} of shape "
                        f"{arr.shape}")
    if arr.size == 0:
        raise ValueError(f"{name}: epoch_indices returned an empty epoch (no image would train)")
    if arr.min() < 0 or arr.max() >= n:
        raise ValueError(f"{name}: epoch_indices returned indices in [{arr.min()}, {arr.max()}]; the training set "
                         f"has {n} images (valid: 0 to {n - 1})")
    return arr.astype(np.int64, copy=False)


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
    rows : ndarray of int, optional
        The rows of ``images`` (and of ``y``, ``masks``, ``mask_known``) this source serves, in this order:
        a training or validation part without copying the images (a memmap stays on disk). Labels and
        masks are taken at once (they are in memory already).
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
        rows: np.ndarray | None = None,
    ) -> None:
        self.rows = None if rows is None else np.asarray(rows, dtype=np.int64)
        if self.rows is not None:
            y, masks, mask_known = (None if a is None else a[self.rows] for a in (y, masks, mask_known))
        self.images, self.y, self.masks, self.mask_known = images, y, masks, mask_known
        self.size = None if size is None or tuple(size) == (images.height, images.width) else tuple(size)
        c = images.channels
        self.mean = torch.as_tensor(np.broadcast_to(np.asarray(mean, np.float32), (c,)).copy()).view(1, c, 1, 1)
        self.std = torch.as_tensor(np.broadcast_to(np.asarray(std, np.float32), (c,)).copy()).view(1, c, 1, 1)
        # ImageData.batch's scaling and the normalisation as one affine map: x_stored * a + b
        dtype = np.dtype(images.dtype)
        scale = 1.0 / float(np.iinfo(dtype).max) if dtype.kind in "ui" else 1.0
        self._a, self._b = scale / self.std, -self.mean / self.std
        # the same for every channel (always so for grayscale): python scalars, in place, no broadcasting
        same = bool((self._a == self._a.flatten()[0]).all() and (self._b == self._b.flatten()[0]).all())
        self._scalar_affine = (float(self._a.flatten()[0]), float(self._b.flatten()[0])) if same else None
        self._affine: dict[torch.device, tuple[torch.Tensor, torch.Tensor]] = {}
        self._resident: dict[str, Any] | None = None

    def __len__(self) -> int:
        return len(self.images) if self.rows is None else len(self.rows)

    def __getitem__(self, index: Any) -> Batch:  # a torch Dataset; we index by batches
        return self.get_batch(np.atleast_1d(index), torch.device("cpu"))

    def _image_rows(self, idx: np.ndarray | slice) -> np.ndarray | slice:
        """Positions in this source -> rows of ``images`` (a contiguous run stays a slice: one read)."""
        if self.rows is None:
            return idx
        rows = self.rows[idx]
        if len(rows) and rows[-1] - rows[0] == len(rows) - 1 and (np.diff(rows) == 1).all():
            return slice(int(rows[0]), int(rows[-1]) + 1)
        return rows

    def host_batch(self, idx: np.ndarray | slice) -> tuple[torch.Tensor, bool]:
        """The stored images ``(b, H, W, C)`` as a CPU tensor, and whether it may share the caller's memory.

        uint8, bool and float32 stay as stored (uint8 crosses to the device at a quarter of
        float32's bytes); other dtypes become float32 on the host. A read-only or strided
        block (a slice of a read-only memmap) is copied, one batch only.
        """
        raw = self.images.raw(self._image_rows(idx))
        if raw.dtype not in _AS_STORED:
            return torch.from_numpy(raw.astype(np.float32)), False
        if raw.flags.writeable and raw.flags.c_contiguous:
            return torch.from_numpy(raw), True
        return torch.from_numpy(np.array(raw)), False

    def _normalise(self, x: torch.Tensor, fresh: bool) -> torch.Tensor:
        """``x * a + b``; in place when ``x`` is a fresh tensor, never on the caller's memory."""
        if self._scalar_affine is not None:
            a, b = self._scalar_affine
            if a == 1.0 and b == 0.0:
                return x if fresh else x.clone()
            x = x.mul_(a) if fresh else x * a
            return x.add_(b) if b != 0.0 else x
        if x.device not in self._affine:
            self._affine[x.device] = (self._a.to(x.device), self._b.to(x.device))
        a_t, b_t = self._affine[x.device]
        return torch.addcmul(b_t, x, a_t)

    def resident_nbytes(self) -> int:
        """Device bytes :meth:`make_resident` needs: the images as stored (other dtypes as float32), masks."""
        h, w, c = self.images.image_shape
        itemsize = np.dtype(self.images.dtype).itemsize if np.dtype(self.images.dtype) in _AS_STORED else 4
        masks = 0 if self.masks is None else int(np.prod(self.masks.shape))
        return len(self) * h * w * c * itemsize + masks

    @property
    def resident_device(self) -> torch.device | None:
        """The device holding the data after :meth:`make_resident`, else None."""
        return None if self._resident is None else self._resident["device"]

    def make_resident(self, device: torch.device | str, chunk: int = 1024) -> None:
        """Copy the images (as stored: uint8 stays uint8), labels and masks to ``device`` once.

        Later batches for that device are indexed there: no host read, no transfer per batch.
        The copy goes ``chunk`` images at a time, so a memmap is never read whole into host memory.
        """
        device = torch.device(device)
        n = len(self)
        head, _ = self.host_batch(slice(0, 1))
        x = torch.empty((n, *head.shape[1:]), dtype=head.dtype, device=device)
        for start in range(0, n, chunk):
            block, _ = self.host_batch(slice(start, start + chunk))
            x[start : start + len(block)].copy_(block)
        res: dict[str, Any] = {"device": device, "x": x, "y": None, "mask": None, "mask_known": None}
        if self.y is not None:
            res["y"] = torch.as_tensor(np.asarray(self.y), dtype=torch.float32).to(device)
        if self.masks is not None:
            res["mask"] = torch.from_numpy(np.ascontiguousarray(self.masks, dtype=bool)).to(device)
        if self.mask_known is not None:
            res["mask_known"] = torch.as_tensor(np.asarray(self.mask_known)).to(device)
        self._resident = res

    def release_resident(self) -> None:
        """Drop the device copy made by :meth:`make_resident`."""
        self._resident = None

    def get_batch(self, idx: np.ndarray | slice, device: torch.device) -> Batch:
        """One minibatch on ``device``: float32 images ``(b, C, h, w)``, scaled, resized and normalised.

        The images keep the channels-last memory layout of the stored ``(n, H, W, C)`` array
        (``x.permute(0, 3, 1, 2)`` of it): convolutions run at least as fast on it as on NCHW,
        on the CPU as on CUDA. Conversion to float, resizing and normalisation happen on the
        device. The values are those of ``(images.batch(idx) resized - mean) / std``. After
        :meth:`make_resident` for ``device``, the batch is indexed from the device copy.
        """
        res = self._resident
        if res is not None and _same_device(res["device"], torch.device(device)):
            return self._resident_batch(idx, res)
        non_blocking = device.type == "cuda"
        x, shared = self.host_batch(idx)
        if non_blocking:
            x = x.pin_memory()
        x = x.to(device, non_blocking=non_blocking).permute(0, 3, 1, 2)
        fresh = not shared or x.device.type != "cpu"
        x = self._finish(x, fresh)
        extras: dict[str, torch.Tensor] = {}
        if self.y is not None:
            extras["y"] = torch.as_tensor(self.y[idx], dtype=torch.float32).to(device, non_blocking=non_blocking)
        if self.masks is not None:
            m = torch.from_numpy(np.ascontiguousarray(self.masks[idx])).to(device, non_blocking=non_blocking)
            extras["mask"] = self._mask(m)
        if self.mask_known is not None:
            extras["mask_known"] = torch.as_tensor(self.mask_known[idx]).to(device)
        return x, extras

    def _resident_batch(self, idx: np.ndarray | slice, res: dict[str, Any]) -> Batch:
        index = idx if isinstance(idx, slice) else torch.as_tensor(np.asarray(idx), device=res["x"].device)
        # a slice is a view of the device copy (not fresh); an index tensor gathers a new tensor
        x = self._finish(res["x"][index].permute(0, 3, 1, 2), fresh=not isinstance(idx, slice))
        extras: dict[str, torch.Tensor] = {}
        if res["y"] is not None:
            extras["y"] = res["y"][index]
        if res["mask"] is not None:
            extras["mask"] = self._mask(res["mask"][index])
        if res["mask_known"] is not None:
            extras["mask_known"] = res["mask_known"][index]
        return x, extras

    def _mask(self, m: torch.Tensor) -> torch.Tensor:
        m = m.unsqueeze(1).float()
        if self.size is not None:  # area averaging keeps thin defects as soft targets
            m = F.interpolate(m, size=self.size, mode="area")
        return m

    def _finish(self, x: torch.Tensor, fresh: bool) -> torch.Tensor:
        """Float32, resized, normalised; ``fresh`` says whether ``x`` may be changed in place."""
        if x.dtype != torch.float32:
            x, fresh = x.float(), True
        if self.size is not None:
            x, fresh = F.interpolate(x, size=self.size, mode="bilinear", align_corners=False, antialias=True), True
        return self._normalise(x, fresh)


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


def sampler_features(source: ImageBatchSource, device: torch.device, side: int = 8) -> np.ndarray:
    """Small down-sampled copies of the images (n, C·side·side): what the k-means sampler clusters."""
    out = []
    for start in range(0, len(source), 256):
        x, _ = source.get_batch(slice(start, min(start + 256, len(source))), device)
        out.append(F.adaptive_avg_pool2d(x, side).flatten(1).cpu())
    return torch.cat(out).numpy().astype(np.float64)


class TransposeTest(NamedTuple):
    """What :func:`transpose_test` found: ``asymmetry``, the training images' spectrum asymmetry over its mean
    under random transposition (about 1 when images are as likely as their transposes), and ``p_value``, the
    share of the random transpositions (with the observed set) at least as asymmetric as the images."""

    asymmetry: float
    p_value: float


def transpose_test(source: ImageBatchSource, random_state: int = 0, n_draws: int = 99) -> TransposeTest:
    """Whether the images (at the size the networks see) can be told from their transposes: a randomisation test.

    The statistic is ``mean |log P - log Pᵀ|``, ``P`` the mean power spectrum of the images (each image's mean
    removed, channels averaged). Were every image as likely as its transpose, transposing a random subset of
    them would give sets like the observed one; the test draws ``n_draws`` such subsets (each image with
    probability 1/2) and counts those at least as asymmetric. Content cut at any angle (the embedded textures,
    turned by quarter turns) gives ``asymmetry`` 0.9-1.1 and p-values spread over (0, 1]; one camera geometry
    resized to a square (Magnetic tile at 64 px) 1.2-1.4 with 30 images and 3.2-3.5 with 400, ELPV's solar
    cells 4.8-5.1, every draw below them (``p_value`` 0.01 with 99 draws). Up to ``2**23`` pixels of images (1,024
    at 64×64, 512 at 128×128), a random subset; ``nan`` for non-square images (no transpose) and fewer than 4.
    """
    n = len(source)
    h, w = source.size or (source.images.height, source.images.width)
    if h != w or n < 4:
        return TransposeTest(float("nan"), float("nan"))
    rng = np.random.RandomState(random_state)
    order = np.sort(rng.permutation(n)[: min(1024, max(4, 2**23 // (h * w)))])
    spectra = []
    for start in range(0, len(order), 256):
        x, _ = source.get_batch(order[start : start + 256], torch.device("cpu"))
        x = x.float().mean(1)
        spectra.append(torch.fft.fft2(x - x.mean(dim=(-2, -1), keepdim=True)).abs().square().flatten(1))
    power = torch.cat(spectra)  # (n, h*w)
    m = len(power)
    flipped = power.view(m, h, w).transpose(1, 2).reshape(m, -1) - power  # what transposing each image adds
    signs = torch.from_numpy(rng.randint(2, size=(n_draws, m)).astype(np.float32))
    sets = torch.cat([power.mean(0, keepdim=True), power.mean(0) + signs @ flipped / m])

    log = torch.log(sets.double().clamp_min(1e-30)).view(-1, h, w)
    stat = (log - log.transpose(1, 2)).abs().mean(dim=(1, 2))
    observed, null = float(stat[0]), stat[1:]
    return TransposeTest(observed / float(null.mean()), (1 + int((null >= observed).sum())) / (n_draws + 1))
