"""The batch pipeline's speed paths: stored dtypes to the device, channels-last batches, a device-resident
training set, inference batch sizes from free memory, and what the skorch base net skips when quiet."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from skdefect._validation import check_images
from skdefect.training import ImageBatchSource
from skdefect.training import base as training_base
from skdefect.training.data import inference_batch_size, resident_fits, use_channels_last

CPU = torch.device("cpu")


def _images(dtype: type, channels: int, rng: np.random.RandomState, n: int = 6) -> np.ndarray:
    if dtype is bool:
        return rng.rand(n, 16, 16, channels) > 0.5
    if np.dtype(dtype).kind == "f":
        return rng.rand(n, 16, 16, channels).astype(dtype)
    return rng.randint(0, np.iinfo(dtype).max, size=(n, 16, 16, channels)).astype(dtype)


def _reference(src: ImageBatchSource, idx: np.ndarray | slice) -> torch.Tensor:
    ref = torch.from_numpy(src.images.batch(idx))
    if src.size is not None:
        ref = F.interpolate(ref, size=src.size, mode="bilinear", align_corners=False, antialias=True)
    return (ref - src.mean) / src.std


@pytest.mark.parametrize("dtype", [np.uint8, np.uint16, np.float32, np.float64, bool])
@pytest.mark.parametrize("channels", [1, 3])
@pytest.mark.parametrize("size", [None, (8, 24)])
def test_batches_equal_scaled_resized_normalised_images(dtype: type, channels: int, size: tuple | None) -> None:
    rng = np.random.RandomState(0)
    X = _images(dtype, channels, rng)
    X_before = X.copy()
    images = check_images(X)
    stats = (rng.rand(channels).astype(np.float32), (rng.rand(channels) + 0.5).astype(np.float32))
    for mean, std in ((0.0, 1.0), stats):
        src = ImageBatchSource(images, size=size, mean=mean, std=std)
        for idx in (slice(1, 4), np.array([5, 0, 2])):
            x, _ = src.get_batch(idx, CPU)
            assert x.dtype == torch.float32
            torch.testing.assert_close(x, _reference(src, idx), rtol=1e-5, atol=1e-5)
            x.add_(1.0)  # a batch is the networks' own: changing it must not reach X
    np.testing.assert_array_equal(X, X_before)


def test_batches_keep_the_channels_last_layout_of_nhwc_storage() -> None:
    X = np.random.RandomState(0).randint(0, 256, size=(4, 16, 16, 3), dtype=np.uint8)
    x, _ = ImageBatchSource(check_images(X), mean=[0.4, 0.5, 0.6], std=[0.2, 0.3, 0.4]).get_batch(slice(0, 4), CPU)
    assert x.is_contiguous(memory_format=torch.channels_last)


def test_read_only_memmap_batches_without_warning(tmp_path) -> None:  # noqa: ANN001
    path = tmp_path / "x.npy"
    mm = np.lib.format.open_memmap(path, mode="w+", dtype=np.uint8, shape=(10, 16, 16, 1))
    mm[:] = np.arange(10, dtype=np.uint8)[:, None, None, None]
    mm.flush()
    del mm
    X = np.load(path, mmap_mode="r")
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # torch warns when handed a read-only array
        x, _ = ImageBatchSource(check_images(X)).get_batch(slice(2, 5), CPU)
    np.testing.assert_allclose(x[:, 0, 0, 0].numpy(), np.array([2, 3, 4]) / 255.0, rtol=1e-6)


def _supervised_source(size: tuple | None = None) -> ImageBatchSource:
    rng = np.random.RandomState(1)
    X = rng.randint(0, 256, size=(12, 16, 16, 3), dtype=np.uint8)
    y = (np.arange(12) % 3 == 0).astype(np.int64)
    masks = np.zeros((12, 16, 16), dtype=bool)
    masks[y == 1, 4:9, 3:7] = True
    known = np.ones(12, dtype=bool)
    known[3] = False
    return ImageBatchSource(check_images(X), y, masks, known, size=size, mean=[0.5, 0.4, 0.3], std=[0.2, 0.25, 0.3])


@pytest.mark.parametrize("size", [None, (8, 8)])
def test_resident_batches_equal_host_batches(size: tuple | None) -> None:
    host, resident = _supervised_source(size), _supervised_source(size)
    assert resident.resident_device is None
    resident.make_resident(CPU, chunk=5)  # several chunks
    assert resident.resident_device == CPU
    for idx in (slice(0, 4), slice(8, 12), np.array([11, 0, 3, 7])):
        x_h, e_h = host.get_batch(idx, CPU)
        for _ in range(2):  # normalising a batch must leave the device copy as it was
            x_r, e_r = resident.get_batch(idx, CPU)
            torch.testing.assert_close(x_r, x_h)
            assert set(e_r) == set(e_h) == {"y", "mask", "mask_known"}
            for key in e_h:
                torch.testing.assert_close(e_r[key], e_h[key])
            x_r.mul_(0)
    resident.release_resident()
    assert resident.resident_device is None


def test_resident_nbytes_counts_images_as_stored_and_masks() -> None:
    src = _supervised_source()
    assert src.resident_nbytes() == 12 * 16 * 16 * 3 + 12 * 16 * 16
    floats = ImageBatchSource(check_images(np.zeros((5, 8, 8), dtype=np.float64)))
    assert floats.resident_nbytes() == 5 * 8 * 8 * 4  # float64 crosses as float32


def test_resident_fits_takes_at_most_a_fraction_of_free_memory() -> None:
    assert resident_fits(250, 1000)
    assert not resident_fits(251, 1000)
    assert resident_fits(500, 1000, fraction=0.5)
    assert not resident_fits(1, 0)


def test_inference_batch_size_from_free_memory() -> None:
    assert inference_batch_size(free_bytes=10_000, bytes_per_image=100, batch_size=8) == 48  # 50 -> multiple of 8
    assert inference_batch_size(free_bytes=10**12, bytes_per_image=100, batch_size=8) == 1024  # capped
    assert inference_batch_size(free_bytes=10**12, bytes_per_image=100, batch_size=8, cap=64) == 64
    assert inference_batch_size(free_bytes=1_000, bytes_per_image=100, batch_size=32) == 32  # never below training's
    assert inference_batch_size(free_bytes=1_000, bytes_per_image=0, batch_size=16) == 16  # no estimate


def test_gpu_paths_stay_off_on_the_cpu() -> None:
    from skdefect import DualDiscriminatorGANDetector

    assert use_channels_last(torch.device("cuda")) and not use_channels_last(CPU)
    X = np.random.RandomState(0).randint(0, 256, size=(16, 32, 32), dtype=np.uint8)
    det = DualDiscriminatorGANDetector(width=0.25, epochs=1, batch_size=8, patch_size=16, patch_stride=8, top_n=2,
                                       device="cpu", random_state=0).fit(X)
    net = det.net_
    assert not hasattr(net, "train_bytes_per_image_")
    assert net._auto_predict_batch_size(CPU) == 8
    it = net.get_iterator(ImageBatchSource(check_images(X)), training=True)
    assert it.source.resident_device is None
    assert all(p.is_contiguous() for p in net.module_.parameters())


def test_channels_last_weights_train_and_score_like_contiguous_ones(monkeypatch: pytest.MonkeyPatch) -> None:
    from skdefect import DualDiscriminatorGANDetector

    X = np.random.RandomState(0).randint(0, 256, size=(16, 32, 32, 3), dtype=np.uint8)
    params = {"width": 0.25, "epochs": 2, "batch_size": 8, "patch_size": 16, "patch_stride": 8, "top_n": 2,
              "device": "cpu", "random_state": 0}
    plain = DualDiscriminatorGANDetector(**params).fit(X)
    monkeypatch.setattr(training_base, "use_channels_last", lambda device: True)
    nhwc = DualDiscriminatorGANDetector(**params).fit(X)
    conv = next(p for p in nhwc.net_.module_.parameters() if p.dim() == 4 and p.shape[1] > 1)
    assert conv.is_contiguous(memory_format=torch.channels_last) and not conv.is_contiguous()
    np.testing.assert_allclose(nhwc.decision_function(X), plain.decision_function(X), rtol=1e-4, atol=1e-6)


@pytest.mark.parametrize("verbose", [0, 1])
def test_print_log_only_when_verbose(verbose: int) -> None:
    from skdefect.training.gan import DualGANNet

    net = DualGANNet(module=torch.nn.Identity, verbose=verbose)
    names = [name for name, _ in net.get_default_callbacks()]
    assert ("print_log" in names) == bool(verbose)
    assert "epoch_timer" in names and "train_loss" in names


def _augmented(
    augment: object, shape: tuple[int, int] = (4, 4), n: int = 48
) -> tuple[torch.Tensor, list[torch.Tensor]]:
    """``n`` minibatches of one image through ``augment_batch``; each time its mask must have moved with it."""
    from types import SimpleNamespace

    net = SimpleNamespace(augment=augment, augment_seed=0)
    x = torch.arange(float(np.prod(shape))).reshape(1, 1, *shape)
    out = []
    for _ in range(n):
        xa, extras = training_base.DefectNetBase.augment_batch(net, (x, {"mask": (x > 5).float(), "y": torch.ones(1)}))
        assert torch.equal(extras["mask"], (xa > 5).float()) and torch.equal(extras["y"], torch.ones(1))
        out.append(xa)
    return x, out


def _distinct(batches: list[torch.Tensor]) -> set[tuple[float, ...]]:
    return {tuple(b.flatten().tolist()) for b in batches}


def test_augment_flips_keep_the_orientation_and_dihedral_adds_the_transposes() -> None:
    x, flips = _augmented("flips")
    flipped = _distinct([x, x.flip(-1), x.flip(-2), x.flip(-1).flip(-2)])
    assert _distinct(flips) == flipped  # all four flips, never a transpose
    _, dihedral = _augmented("dihedral")
    assert len(_distinct(dihedral)) == 8 and _distinct(dihedral) > flipped  # the square's eight symmetries
    # the same three random bits a minibatch: "flips" is "dihedral" with its transposes left out
    for f, d in zip(flips, dihedral, strict=True):
        assert torch.equal(f, d) or torch.equal(f.transpose(-1, -2), d)
    _, legacy = _augmented(True)  # what True always meant
    assert all(torch.equal(a, b) for a, b in zip(legacy, dihedral, strict=True))
    for off in (False, None):
        original, unchanged = _augmented(off, n=4)
        assert all(u is original for u in unchanged)


def test_augment_never_transposes_a_non_square_image() -> None:
    x, dihedral = _augmented("dihedral", shape=(4, 6))
    assert _distinct(dihedral) == _distinct([x, x.flip(-1), x.flip(-2), x.flip(-1).flip(-2)])


def test_augment_unknown_name_is_refused_by_the_net() -> None:
    with pytest.raises(ValueError, match=r"augment must be a bool or one of \('flips', 'dihedral'\); got 'rot'"):
        training_base.resolve_augment("rot")


def _quarter_turned(images: np.ndarray, rng: np.random.RandomState) -> np.ndarray:
    return np.stack([np.rot90(im, rng.randint(4)) for im in images])


def test_transpose_test_tells_oriented_images_from_ones_cut_at_any_angle() -> None:
    """Oriented images are more asymmetric than every random transposition of them; images turned at random
    are not (their p-value spreads over (0, 1] like any under its null); no transpose, no test."""
    from skdefect.training.data import transpose_test

    rng = np.random.RandomState(0)
    # smooth horizontal streaks: one orientation (a camera geometry, a rolling direction)
    streaks = np.cumsum(rng.randn(200, 32, 32), axis=2) + 3 * rng.randn(200, 32, 32)
    streaks = ((streaks - streaks.min()) / np.ptp(streaks) * 255).astype(np.uint8)

    def test(images: np.ndarray, seed: int = 0, **kw: object):  # noqa: ANN202
        return transpose_test(ImageBatchSource(check_images(images), **kw), random_state=seed)

    oriented = test(streaks)
    assert oriented.asymmetry > 3 and oriented.p_value == 0.01
    turned = [test(_quarter_turned(streaks, np.random.RandomState(seed)), seed) for seed in range(5)]
    assert all(0.7 < t.asymmetry < 1.5 for t in turned)
    assert np.median([t.p_value for t in turned]) > 0.1
    # the networks' size decides (a resize to a square makes a transpose possible); rows choose the images
    assert np.isnan(test(streaks[:, :, :24]).p_value)
    assert test(streaks[:, :, :24], size=(32, 32)).p_value == 0.01
    assert np.isnan(test(streaks, rows=np.arange(3)).asymmetry)
    assert test(streaks, rows=np.arange(30)).p_value == 0.01
