"""Model files (safetensors + JSON) and ONNX export: round trips, refusals, parity."""

from __future__ import annotations

import copy
import importlib.util
import json
import pickle
import struct
from pathlib import Path

import joblib
import numpy as np
import pytest
import torch
from sklearn.base import clone
from sklearn.exceptions import NotFittedError

import skdefect
from skdefect import ConcentratedTwoStageDetector, DualDiscriminatorGANDetector, persistence
from skdefect.datasets import make_surface_defects

TWO_STAGE = dict(width=0.25, seg_epochs=1, dec_epochs=1, image_size=24, batch_size=8, device="cpu", random_state=0)
GAN = dict(width=0.25, epochs=1, image_size=48, batch_size=16, device="cpu", random_state=0)
KINDS = ["two_stage", "gan"]


@pytest.fixture(scope="module")
def data():
    return make_surface_defects(n_samples=40, image_shape=(32, 32), random_state=0)


@pytest.fixture(scope="module")
def fitted(data):
    """One fitted detector of each kind (the GAN with anomalies, so it has both discriminators)."""
    X, y, masks = data
    return {
        "two_stage": ConcentratedTwoStageDetector(**TWO_STAGE).fit(X, y, masks=masks),
        "gan": DualDiscriminatorGANDetector(**GAN).fit(X, y),
    }


@pytest.fixture(scope="module")
def saved(fitted, tmp_path_factory):
    folder = tmp_path_factory.mktemp("models")
    return {kind: det.save(folder / f"{kind}.skdefect") for kind, det in fitted.items()}


def _map(det, X):
    return det.segment(X) if isinstance(det, ConcentratedTwoStageDetector) else det.anomaly_map(X)


def _rewrite(src: Path, dst: Path, config=None, tensors=None) -> Path:
    """Edit a model file's config / tensors and write it back *with a valid digest* (a well-formed file)."""
    _, cfg, ts = persistence._read(Path(src))
    cfg, ts = copy.deepcopy(cfg), dict(ts)
    if config is not None:
        config(cfg)
    if tensors is not None:
        tensors(ts)
    return persistence._write(Path(dst), cfg, ts)


def _refused(src: Path, tmp_path: Path, match: str, config=None, tensors=None) -> None:
    """A well-formed edit of ``src`` (valid digest) that ``skdefect.load`` must refuse with ``match``."""
    path = _rewrite(src, tmp_path / "edited.skdefect", config=config, tensors=tensors)
    with pytest.raises(ValueError, match=match):
        skdefect.load(path)


def _header(path: Path) -> tuple[dict, bytes]:
    raw = path.read_bytes()
    (n,) = struct.unpack("<Q", raw[:8])
    return json.loads(raw[8 : 8 + n]), raw[8 + n :]


# -- round trips ------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("kind", KINDS)
def test_round_trip_gives_identical_predictions(kind, fitted, saved, data):
    X, y, _ = data
    det, loaded = fitted[kind], skdefect.load(saved[kind])
    assert type(loaded) is type(det)
    np.testing.assert_array_equal(loaded.decision_function(X), det.decision_function(X))
    np.testing.assert_array_equal(loaded.predict_proba(X), det.predict_proba(X))
    np.testing.assert_array_equal(loaded.predict(X), det.predict(X))
    np.testing.assert_array_equal(_map(loaded, X), _map(det, X))
    # (the GAN's `score` parameter shadows the method on instances, so call it through the class)
    assert loaded.score(X, y) == det.score(X, y)
    assert loaded.get_params() == det.get_params()  # device was "cpu" and is loaded to "cpu"
    for attr in ("threshold_", "input_shape_", "image_size_", "n_features_in_", "n_parameters_"):
        assert getattr(loaded, attr) == getattr(det, attr), attr
    assert isinstance(loaded.input_shape_, tuple) and isinstance(loaded.image_size_, tuple)
    np.testing.assert_array_equal(loaded.classes_, [0, 1])
    # every network's weights came back, the discriminators included
    assert loaded.net_._modules == det.net_._modules
    for name in det.net_._modules:
        want, got = getattr(det.net_, name + "_").state_dict(), getattr(loaded.net_, name + "_").state_dict()
        assert want.keys() == got.keys()
        assert all(torch.equal(want[k], got[k]) for k in want), name
    # the epoch history (loss terms) is kept
    assert len(loaded.net_.history) == len(det.net_.history)
    assert loaded.net_.history[-1, "train_loss"] == pytest.approx(det.net_.history[-1, "train_loss"])


def test_gan_specific_attributes_round_trip(fitted, saved):
    det, loaded = fitted["gan"], skdefect.load(saved["gan"])
    assert loaded.one_class_ is False and loaded.score_scale_ == det.score_scale_
    np.testing.assert_array_equal(loaded.sampler_indices_, det.sampler_indices_)
    assert {"module", "disc_normal", "disc_anomalous"} == set(loaded.net_._modules)


def test_two_stage_input_statistics_round_trip(fitted, saved):
    det, loaded = fitted["two_stage"], skdefect.load(saved["two_stage"])
    assert loaded.seg_monitor_ == det.seg_monitor_ == "valid_pixel_ap"
    assert loaded.augment_ == det.augment_ in ("flips", "dihedral")
    for attr in ("input_mean_", "input_std_"):
        assert getattr(loaded, attr).dtype == np.float32
        np.testing.assert_array_equal(getattr(loaded, attr), getattr(det, attr))


@pytest.mark.parametrize("kind", KINDS)
def test_file_is_safetensors_with_a_json_config(kind, saved):
    from safetensors import safe_open

    with safe_open(str(saved[kind]), framework="pt") as f:
        meta, names = f.metadata(), list(f.keys())
        tensors = {n: f.get_tensor(n) for n in names}
    assert meta["format"] == "skdefect" and meta["format_version"] == str(persistence.FORMAT_VERSION)
    assert len(meta["sha256"]) == 64
    config = json.loads(meta["config"])
    assert config["skdefect_version"] == skdefect.__version__
    assert config["estimator"] == ("ConcentratedTwoStageDetector" if kind == "two_stage" else
                                   "DualDiscriminatorGANDetector")
    assert config["params"]["width"] == 0.25 and config["params"]["random_state"] == 0
    prefixes = {n.split(".")[1] for n in names if n.startswith("net.")}
    assert prefixes == ({"module"} if kind == "two_stage" else {"module", "disc_normal", "disc_anomalous"})
    assert "attr.classes_" in names
    assert all(t.device.type == "cpu" for t in tensors.values())


def test_loading_leaves_the_global_rng_alone(saved):
    state = torch.get_rng_state()
    skdefect.load(saved["two_stage"])
    assert torch.equal(torch.get_rng_state(), state)


@pytest.mark.parametrize("kind", KINDS)
def test_loaded_estimator_pickles_clones_and_refits(kind, fitted, saved, data):
    X, y, masks = data
    det, loaded = fitted[kind], skdefect.load(saved[kind])
    again = pickle.loads(pickle.dumps(loaded))
    np.testing.assert_array_equal(again.decision_function(X), det.decision_function(X))
    fresh = clone(loaded)
    assert fresh.get_params() == det.get_params() and not hasattr(fresh, "threshold_")
    # refitting the loaded estimator trains anew with the same parameters: the same model on the CPU
    extra = {"masks": masks} if kind == "two_stage" else {}
    loaded.fit(X, y, **extra)
    np.testing.assert_allclose(loaded.decision_function(X), det.decision_function(X), rtol=0, atol=1e-6)


def test_pickle_and_joblib_of_fitted_estimators_still_work(fitted, data, tmp_path):
    X = data[0]
    for det in fitted.values():
        joblib.dump(det, tmp_path / "det.joblib")
        back = joblib.load(tmp_path / "det.joblib")
        np.testing.assert_array_equal(back.decision_function(X), det.decision_function(X))


def test_model_fitted_on_cuda_loads_on_the_cpu(fitted, saved, data, tmp_path):
    def on_cuda(cfg):
        cfg["params"]["device"] = "cuda"
        cfg["net"]["device"] = "cuda:0"

    path = _rewrite(saved["gan"], tmp_path / "cuda.skdefect", config=on_cuda)
    loaded = skdefect.load(path, device="cpu")
    assert loaded.device == "cpu"
    assert all(p.device.type == "cpu" for name in loaded.net_._modules
               for p in getattr(loaded.net_, name + "_").parameters())
    np.testing.assert_array_equal(loaded.decision_function(data[0]), fitted["gan"].decision_function(data[0]))


@pytest.mark.skipif(torch.cuda.is_available(), reason="CUDA is available here")
def test_loading_onto_a_missing_gpu_is_refused_clearly(saved):
    with pytest.raises(ValueError, match="CUDA is not available"):
        skdefect.load(saved["gan"], device="cuda")


def test_parameters_that_are_not_json_follow_the_documented_rule(data, tmp_path):
    from skorch.callbacks import EpochTimer

    X, y, _ = data
    det = DualDiscriminatorGANDetector(**{**GAN, "random_state": np.random.RandomState(0),
                                          "callbacks": [("timer", EpochTimer())]}).fit(X[y == 0])
    loaded = skdefect.load(det.save(tmp_path / "m.skdefect"))
    assert loaded.callbacks is None and loaded.random_state is None
    config = json.loads(persistence._read(tmp_path / "m.skdefect")[0]["config"])
    assert set(config["dropped_params"]) == {"callbacks", "random_state"}
    assert loaded.one_class_ is True and "disc_anomalous" not in loaded.net_._modules
    np.testing.assert_array_equal(loaded.anomaly_map(X[:5]), det.anomaly_map(X[:5]))


# -- refusals ---------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("cls", [ConcentratedTwoStageDetector, DualDiscriminatorGANDetector])
def test_unfitted_estimators_cannot_be_saved_or_exported(cls, tmp_path):
    with pytest.raises(NotFittedError):
        cls().save(tmp_path / "m.skdefect")
    with pytest.raises(NotFittedError):
        cls().to_onnx(tmp_path / "m.onnx")
    assert not list(tmp_path.iterdir())


def test_bad_arguments_are_refused(fitted, saved, tmp_path):
    with pytest.raises(TypeError, match="path must be a str or os.PathLike"):
        fitted["gan"].save(123)
    with pytest.raises(TypeError, match="device must be a str"):
        skdefect.load(saved["gan"], device=0)
    with pytest.raises(ValueError, match="device must be 'auto' or a torch device"):
        skdefect.load(saved["gan"], device="tpu:9")

    class MyDetector(DualDiscriminatorGANDetector):
        pass

    sub = MyDetector()
    sub.__dict__.update(fitted["gan"].__dict__)
    with pytest.raises(TypeError, match="only ConcentratedTwoStageDetector, DualDiscriminatorGANDetector"):
        sub.save(tmp_path / "m.skdefect")


def test_a_flipped_byte_in_the_tensor_data_is_refused(saved, tmp_path):
    raw = bytearray(saved["two_stage"].read_bytes())
    raw[-5] ^= 0x01
    bad = tmp_path / "flipped.skdefect"
    bad.write_bytes(bytes(raw))
    with pytest.raises(ValueError, match="corrupt or was modified.*SHA-256"):
        skdefect.load(bad)


@pytest.mark.parametrize("edit", ["threshold", "class", "params"])
def test_an_edited_json_config_is_refused(edit, saved, tmp_path):
    header, body = _header(saved["two_stage"])
    config = json.loads(header["__metadata__"]["config"])
    if edit == "threshold":
        config["attributes"]["threshold_"] = -1e9  # every image would be 'defective'
    elif edit == "class":
        config["estimator"] = "DualDiscriminatorGANDetector"
    else:
        config["params"]["gamma"] = 2.0
    header["__metadata__"]["config"] = json.dumps(config)
    text = json.dumps(header).encode()
    text += b" " * (-len(text) % 8)
    bad = tmp_path / "edited.skdefect"
    bad.write_bytes(struct.pack("<Q", len(text)) + text + body)
    with pytest.raises(ValueError, match="corrupt or was modified"):
        skdefect.load(bad)


def test_a_truncated_file_is_refused(saved, tmp_path):
    bad = tmp_path / "short.skdefect"
    bad.write_bytes(saved["gan"].read_bytes()[:-100])
    with pytest.raises(ValueError, match="corrupt"):
        skdefect.load(bad)


def test_a_pickle_is_refused_and_never_unpickled(tmp_path):
    marker = tmp_path / "pwned"

    class Payload:
        def __reduce__(self):
            return (open, (str(marker), "w"))

    evil = tmp_path / "model.skdefect"
    evil.write_bytes(pickle.dumps(Payload()))
    pickle.loads(evil.read_bytes()).close()  # the payload does run when unpickled ...
    assert marker.exists()
    marker.unlink()
    with pytest.raises(ValueError, match="not a safetensors file.*pickle"):
        skdefect.load(evil)
    assert not marker.exists()  # ... and skdefect.load never ran it
    torch.save({"weights": torch.zeros(3)}, tmp_path / "torch.skdefect")
    with pytest.raises(ValueError, match="not a safetensors file.*zip"):
        skdefect.load(tmp_path / "torch.skdefect")


def test_a_foreign_safetensors_file_is_refused(tmp_path):
    from safetensors.torch import save_file

    save_file({"w": torch.zeros(2)}, str(tmp_path / "other.safetensors"), metadata={"format": "pt"})
    with pytest.raises(ValueError, match="without skdefect metadata"):
        skdefect.load(tmp_path / "other.safetensors")


def test_incompatible_versions_are_refused(saved, tmp_path, monkeypatch):
    def future(cfg):
        cfg["skdefect_version"] = "99.0.0"

    path = _rewrite(saved["gan"], tmp_path / "v99.skdefect", config=future)
    with pytest.raises(ValueError, match="written by skdefect 99.0.0, which is incompatible"):
        skdefect.load(path)
    monkeypatch.setattr(persistence, "FORMAT_VERSION", 7)
    path = _rewrite(saved["gan"], tmp_path / "f7.skdefect")
    monkeypatch.undo()
    with pytest.raises(ValueError, match="format version '7'; skdefect .* reads format version"):
        skdefect.load(path)


@pytest.mark.parametrize("name", ["IsolationForest", "os.system", "skdefect.gan.DualDiscriminatorGANDetector"])
def test_an_unknown_estimator_class_is_refused(name, saved, tmp_path):
    def rename(cfg):
        cfg["estimator"] = name

    path = _rewrite(saved["gan"], tmp_path / "cls.skdefect", config=rename)
    with pytest.raises(ValueError, match="not one skdefect loads"):
        skdefect.load(path)


def test_an_unknown_parameter_is_refused(saved, tmp_path):
    def add(cfg):
        cfg["params"]["warp_drive"] = True

    path = _rewrite(saved["gan"], tmp_path / "p.skdefect", config=add)
    with pytest.raises(ValueError, match=r"parameters \['warp_drive'\]"):
        skdefect.load(path)


@pytest.mark.parametrize(("param", "value", "match"), [
    ("backbone", "no_such_net", "backbone='no_such_net': unknown backbone"),
    ("width", -1.0, "'width' parameter"),
])
def test_parameters_are_checked_before_networks_are_built(param, value, match, saved, tmp_path):
    def edit(cfg):
        cfg["params"][param] = value

    _refused(saved["two_stage"], tmp_path, match, config=edit)


def test_tensors_that_do_not_fit_the_network_are_refused(saved, tmp_path):
    victim = "net.module.segmentation.fuse.weight"

    path = _rewrite(saved["two_stage"], tmp_path / "missing.skdefect", tensors=lambda ts: ts.pop(victim))
    with pytest.raises(ValueError, match=f"missing tensors.*{victim}"):
        skdefect.load(path)

    def reshape(ts):
        ts[victim] = torch.zeros(1, 4, 5, 5)

    path = _rewrite(saved["two_stage"], tmp_path / "shape.skdefect", tensors=reshape)
    with pytest.raises(ValueError, match=r"shape \(1, 4, 5, 5\) in the file.*needs .*shape \(1, 4, 3, 3\)"):
        skdefect.load(path)

    def wider(cfg):  # the config now describes a wider network than the stored weights
        cfg["params"]["width"] = 0.5

    path = _rewrite(saved["two_stage"], tmp_path / "wider.skdefect", config=wider)
    with pytest.raises(ValueError, match="in the file, but the network rebuilt from its configuration needs"):
        skdefect.load(path)


def test_a_lost_discriminator_is_refused(saved, tmp_path):
    def drop(ts):
        for name in [n for n in ts if n.startswith("net.disc_anomalous.")]:
            del ts[name]

    path = _rewrite(saved["gan"], tmp_path / "nodisc.skdefect", tensors=drop)
    with pytest.raises(ValueError, match="missing tensors.*net.disc_anomalous"):
        skdefect.load(path)


# -- ONNX -------------------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def onnx_sessions(fitted, tmp_path_factory):
    pytest.importorskip("onnx")
    ort = pytest.importorskip("onnxruntime")
    folder = tmp_path_factory.mktemp("onnx")
    out = {}
    for kind, det in fitted.items():
        path = det.to_onnx(folder / f"{kind}.onnx", opset=17)
        out[kind] = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return out


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("images", ["random", "surface"])
def test_onnx_matches_the_estimator(kind, images, fitted, onnx_sessions, data):
    det, session = fitted[kind], onnx_sessions[kind]
    if images == "random":
        X = np.random.default_rng(1).random((7, 32, 32), dtype=np.float32)
        onnx_in = X[:, None]
    else:
        X = data[0]  # uint8: the graph takes them divided by 255, channels first
        onnx_in = (X[:, None] / 255.0).astype(np.float32)
    score, pixel_map = session.run(["score", "map"], {"image": onnx_in})
    assert score.shape == (len(X),) and pixel_map.shape == (len(X), 32, 32)
    np.testing.assert_allclose(score, det.decision_function(X), rtol=0, atol=1e-4)
    np.testing.assert_allclose(pixel_map, _map(det, X), rtol=0, atol=1e-4)
    assert pixel_map.std() > 0  # a real map, not a constant


@pytest.mark.parametrize("kind", KINDS)
def test_onnx_graph_documents_itself(kind, fitted, onnx_sessions, data):
    det, session = fitted[kind], onnx_sessions[kind]
    meta = session.get_modelmeta().custom_metadata_map
    assert meta["estimator"] == type(det).__name__ and meta["skdefect_version"] == skdefect.__version__
    threshold = float(meta["threshold"])
    assert threshold == det.threshold_
    (inp,) = session.get_inputs()
    assert inp.name == "image" and inp.shape[1:] == [1, 32, 32] and isinstance(inp.shape[0], str)  # dynamic batch
    X = data[0]
    score = session.run(["score"], {"image": (X[:, None] / 255.0).astype(np.float32)})[0]
    np.testing.assert_array_equal((score >= threshold).astype(int), det.predict(X))


def test_onnx_export_arguments_are_checked(fitted, tmp_path):
    pytest.importorskip("onnx")
    with pytest.raises(ValueError, match="opset must be at least 13"):
        fitted["gan"].to_onnx(tmp_path / "m.onnx", opset=9)
    with pytest.raises(TypeError, match="opset must be an int"):
        fitted["gan"].to_onnx(tmp_path / "m.onnx", opset="17")


@pytest.mark.parametrize(("attr", "value", "message"), [
    ("predict", 1, "'predict', which is not a fitted attribute"),
    ("__dict__", 1, "'__dict__', which is not a fitted attribute"),
    ("classes", [0, 1], "'classes', which is not a fitted attribute"),
    ("threshold_", float("inf"), "threshold_ must be a finite number"),
    ("threshold_", "0.5", "threshold_ must be a finite number"),
])
def test_load_sets_only_fitted_attributes(attr, value, message, saved, tmp_path):
    def edit(cfg):
        cfg["attributes"][attr] = {"__float__": "inf"} if value == float("inf") else value

    _refused(saved["gan"], tmp_path, message, config=edit)


@pytest.mark.parametrize(("attr", "value", "message"), [
    ("image_size_", {"__tuple__": [0, 48]}, r"image_size_ must be a pair \(height, width\) of sides in 1\.\.65536"),
    ("image_size_", {"__tuple__": [10**9, 48]}, "image_size_ must be a pair"),
    ("input_shape_", {"__tuple__": [-1, 32, 1]}, r"input_shape_ must be \[height, width, channels\]"),
    ("input_shape_", {"__tuple__": [{"__float__": "nan"}, 32, 1]}, "input_shape_ must be"),
    ("input_shape_", [32, 32], r"input_shape_ must be a list \[height, width, channels\]"),
    ("n_features_in_", 5, "n_features_in_=5 contradicts input_shape_"),
    ("score_scale_", 0.0, "score_scale_ must be a finite positive number"),
    ("one_class_", 1, "one_class_ must be true or false"),
    ("anomaly_score_", "os.system", "anomaly_score_ must be one of"),
    ("augment_", "rot", "augment_ must be None, 'flips' or 'dihedral'"),
    ("classes_", [0, 1, 2], r"classes_ must be the array \[0, 1\]"),
])
def test_every_fitted_value_from_a_file_is_checked(attr, value, message, saved, tmp_path):
    def edit(cfg):
        cfg["attributes"][attr] = value

    _refused(saved["gan"], tmp_path, message, config=edit)


def test_two_stage_input_statistics_must_fit_the_channels(saved, tmp_path):
    def edit(ts):
        ts["attr.input_std_"] = torch.ones(3)

    _refused(saved["two_stage"], tmp_path, "input_std_ has 3 entries for 1 channels", tensors=edit)


@pytest.mark.parametrize("width", [64.0, 1e6])
def test_a_small_file_describing_a_huge_network_allocates_nothing(width, saved, tmp_path, monkeypatch):
    """The shapes are compared on the meta device: the real networks (GiBs at width=64) are never built."""
    def wider(cfg):
        cfg["params"]["width"] = width

    path = _rewrite(saved["two_stage"], tmp_path / "bomb.skdefect", config=wider)

    def never(*args, **kwargs):
        raise AssertionError("the network was built before its shapes were compared")

    monkeypatch.setattr(ConcentratedTwoStageDetector, "_net_from_attributes", never)
    with pytest.raises(ValueError, match="in the file, but the network rebuilt from its configuration needs"):
        skdefect.load(path)


def test_the_header_is_checked_before_the_body_is_read(saved, tmp_path, monkeypatch):
    """A file whose header does not describe its size is refused after reading the header only."""
    raw = Path(saved["gan"]).read_bytes()
    big = tmp_path / "big.skdefect"
    with open(big, "wb") as f:
        f.write(raw)
        f.truncate(len(raw) + (1 << 30))  # 1 GiB of (sparse) bytes appended
    read = []
    real_open = open

    class Counting:
        def __init__(self, f):
            self._f = f

        def read(self, n=-1):
            data = self._f.read(n)
            read.append(len(data))
            return data

        def __getattr__(self, name):
            return getattr(self._f, name)

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            self._f.close()

    monkeypatch.setattr(persistence, "open", lambda *a, **k: Counting(real_open(*a, **k)), raising=False)
    with pytest.raises(ValueError, match="describes .* bytes of tensor data, but the file holds"):
        skdefect.load(big)
    assert sum(read) < len(raw)
    huge = tmp_path / "header.skdefect"
    huge.write_bytes(struct.pack("<Q", 1 << 40) + b"{}")
    with pytest.raises(ValueError, match="not a safetensors file"):
        skdefect.load(huge)


def test_deeply_nested_json_is_a_value_error(saved, tmp_path):
    from safetensors.torch import save

    _, cfg, ts = persistence._read(Path(saved["gan"]))
    for depth in (40, 100_000):
        config_str = json.dumps(cfg, sort_keys=True, separators=(",", ":"))
        config_str = config_str.replace('"attributes":{', '"attributes":{"deep_":' + "[" * depth + "]" * depth + ",", 1)
        meta = {"format": persistence.FORMAT_NAME, "format_version": "1", "config": config_str,
                "sha256": persistence._digest("1", config_str, ts)}
        path = tmp_path / f"deep{depth}.skdefect"
        path.write_bytes(save(dict(ts), metadata=meta))
        with pytest.raises(ValueError, match="nested"):
            skdefect.load(path)


@pytest.mark.parametrize(("written_by", "ok"), [
    ("0.1.9", True), ("0.2.0", False), ("0.0.3", False), ("1.1.0", False), ("not a version", False),
])
def test_versions_follow_semver_with_the_0x_rule(written_by, ok, saved, tmp_path, monkeypatch):
    monkeypatch.setattr(persistence, "_skdefect_version", lambda: "0.1.0")

    def stamp(cfg):
        cfg["skdefect_version"] = written_by

    path = _rewrite(saved["gan"], tmp_path / "v.skdefect", config=stamp)
    if ok:
        assert skdefect.load(path).threshold_ is not None
    else:
        with pytest.raises(ValueError, match=f"written by skdefect {written_by}, which is incompatible"):
            skdefect.load(path)


def test_a_loaded_model_writes_no_checkpoints_where_its_file_says(fitted, data, tmp_path):
    """checkpoint_dir is a path from the file: a loaded model never sends later work there."""
    X, y, _ = data
    det = clone(fitted["gan"]).set_params(checkpoint_dir=str(tmp_path / "planted"), epochs=1)
    det.fit(X, y)
    path = det.save(tmp_path / "m.skdefect")
    assert skdefect.load(path).checkpoint_dir is None


def test_files_get_the_processes_normal_mode(fitted, tmp_path):
    """Model and ONNX files are written like any other file (0666 less the umask), not owner-only."""
    import os

    old = os.umask(0o022)
    try:
        path = fitted["gan"].save(tmp_path / "m.skdefect")
        assert path.stat().st_mode & 0o777 == 0o644
        if importlib.util.find_spec("onnx") is not None:
            assert fitted["gan"].to_onnx(tmp_path / "m.onnx").stat().st_mode & 0o777 == 0o644
    finally:
        os.umask(old)


def test_a_failed_onnx_export_leaves_the_earlier_file_whole(fitted, tmp_path, monkeypatch):
    onnx = pytest.importorskip("onnx")
    path = fitted["gan"].to_onnx(tmp_path / "m.onnx")
    good = path.read_bytes()

    def broken(model):
        raise RuntimeError("checker failed")

    monkeypatch.setattr(onnx.checker, "check_model", broken)
    with pytest.raises(RuntimeError, match="checker failed"):
        fitted["gan"].to_onnx(path)
    assert path.read_bytes() == good
    assert [p.name for p in tmp_path.iterdir()] == ["m.onnx"]  # no temporary file left behind


def test_load_is_a_top_level_name():
    assert skdefect.load is persistence.load and "load" in dir(skdefect)


@pytest.mark.parametrize("score", ["recon", "patch", "memory", "patch_memory", "seg_max"])
def test_every_score_survives_the_model_file_and_onnx(score, data, tmp_path):
    """Each image score (the GAN's four, the two-stage detector's without a decision stage) is the same after
    ``skdefect.load`` and in the exported ONNX graph: one inference graph serves all three."""
    X, y, masks = data
    if score == "seg_max":
        det = ConcentratedTwoStageDetector(**{**TWO_STAGE, "dec_epochs": 0}).fit(X, y, masks=masks)
    else:
        det = DualDiscriminatorGANDetector(**GAN, anomaly_score=score).fit(X, y)
    expected_scores, expected_maps = det.decision_function(X), _map(det, X)
    loaded = skdefect.load(det.save(tmp_path / "m.skdefect"))
    np.testing.assert_array_equal(loaded.decision_function(X), expected_scores)
    np.testing.assert_array_equal(_map(loaded, X), expected_maps)
    pytest.importorskip("onnx")
    ort = pytest.importorskip("onnxruntime")
    session = ort.InferenceSession(str(det.to_onnx(tmp_path / "m.onnx")), providers=["CPUExecutionProvider"])
    score_out, map_out = session.run(["score", "map"], {"image": (X[:, None] / 255.0).astype(np.float32)})
    # a nearest-patch distance is sqrt(|z|² − 2 z·m + |m|²): near 0 (a training patch in the memory) the float32
    # cancellation of two runtimes' matmuls differs by ~1e-5, which the square root lifts to ~1e-3
    atol = 5e-3 if score == "patch_memory" else 1e-4
    np.testing.assert_allclose(score_out, expected_scores, rtol=1e-4, atol=atol)
    np.testing.assert_allclose(map_out, expected_maps, rtol=1e-4, atol=atol)


def test_auto_gan_score_is_chosen_on_validation_images(data):
    X, y, _ = data
    det = DualDiscriminatorGANDetector(**GAN).fit(X, y)
    assert set(det.score_selection_) == {"recon", "patch", "memory", "patch_memory"}
    assert det.anomaly_score_ == max(det.score_selection_, key=det.score_selection_.get)
    kept = {"memory": det.memory_ is not None, "patch_memory": det.patch_memory_ is not None}
    assert kept == {name: det.anomaly_score_ == name for name in kept}  # only the chosen score's memory stays
