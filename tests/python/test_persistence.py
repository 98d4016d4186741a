"""Model files: save/load round trips bit for bit (optimizer state included),
saves are atomic, corrupt files raise ModelFileError, and the format is plain
safetensors + JSON (no pickle)."""

from __future__ import annotations

import json
import os
import struct
from pathlib import Path

import numpy as np
import pytest
from safetensors import safe_open
from safetensors.numpy import load as st_load, load_file as st_load_file, save as st_save

import ferronn as fn
from ferronn.errors import ModelFileError

D, K, N = 5, 4, 48
_rng = np.random.default_rng(7)
X = _rng.normal(size=(N, D)).astype(np.float32)
Y = np.arange(N) % K
Y_REG = _rng.normal(size=N).astype(np.float32)
Y_BCE = (_rng.random(size=(N, 2)) > 0.5).astype(np.float32)

OPTIMIZERS = {
    "adam": lambda: fn.optim.Adam(1e-2),
    "adamw": lambda: fn.optim.AdamW(1e-2, weight_decay=0.1),
    "sgd": lambda: fn.optim.SGD(0.05),
    "sgd-nesterov": lambda: fn.optim.SGD(0.05, momentum=0.9, nesterov=True),
}


def trained(loss: str = "cross_entropy", opt: str = "adam", epochs: int = 3) -> fn.Sequential:
    out, y = {"cross_entropy": (K, Y), "mse": (1, Y_REG), "bce": (2, Y_BCE)}[loss]
    m = fn.Sequential([fn.Dense(7, activation="tanh"), fn.Dense(6, activation="leaky_relu", alpha=0.2),
                       fn.Dense(out)], seed=11)
    m.compile(optimizer=OPTIMIZERS[opt](), loss=loss, metrics=[] if loss == "mse" else ["accuracy"])
    m.fit(X, y, epochs=epochs, batch_size=10, seed=3, verbose=0)
    return m


def assert_weights_equal(a: fn.Sequential, b: fn.Sequential) -> None:
    wa, wb = a.get_weights(), b.get_weights()
    assert len(wa) == len(wb)
    for x, y in zip(wa, wb):
        assert x.dtype == y.dtype == np.float32 and x.shape == y.shape
        np.testing.assert_array_equal(x, y)


@pytest.fixture(scope="module")
def saved(tmp_path_factory) -> tuple[fn.Sequential, bytes]:
    m = trained()
    path = tmp_path_factory.mktemp("saved") / "model.fnn"
    m.save(path)
    return m, path.read_bytes()


def write(tmp_path: Path, data: bytes, name: str = "bad.fnn") -> Path:
    p = tmp_path / name
    p.write_bytes(data)
    return p


def header(data: bytes) -> tuple[int, dict]:
    (n,) = struct.unpack("<Q", data[:8])
    return n, json.loads(data[8:8 + n])


def rewrite(data: bytes, edit) -> bytes:
    """Re-serialises a model file with the safetensors package after `edit(tensors, metadata)`."""
    tensors = st_load(data)
    meta = dict(header(data)[1]["__metadata__"])
    edit(tensors, meta)
    return st_save(tensors, metadata=meta)


# ------------------------------------------------------------------ round trips

@pytest.mark.parametrize("loss", ["cross_entropy", "mse", "bce"])
def test_save_load_roundtrip_is_bitwise(tmp_path, loss):
    m = trained(loss)
    m.save(tmp_path / "m.fnn")
    m2 = fn.load(tmp_path / "m.fnn")
    assert_weights_equal(m, m2)
    probe = np.concatenate([X, 10 * X[:5]])
    np.testing.assert_array_equal(m2.predict_raw(probe), m.predict_raw(probe))
    np.testing.assert_array_equal(m2.predict(probe), m.predict(probe))
    assert m2.predict(probe).shape == m.predict(probe).shape  # 1-D regression output restored
    assert (m2.loss, m2.metrics, m2.input_dim, m2.seed) == (m.loss, m.metrics, m.input_dim, m.seed)
    assert m2.optimizer.config() == m.optimizer.config()
    assert [layer.spec() for layer in m2.layers] == [layer.spec() for layer in m.layers]
    assert m2._net.optimizer_steps == m._net.optimizer_steps == 15
    assert m2._epochs_trained == m._epochs_trained == 3
    assert m2.n_params == m.n_params
    if loss != "mse":
        np.testing.assert_array_equal(m2.predict_proba(probe), m.predict_proba(probe))


@pytest.mark.parametrize("opt", list(OPTIMIZERS))
@pytest.mark.parametrize("seed", [None, 5])
def test_loaded_model_continues_training_identically(tmp_path, opt, seed):
    a = trained(opt=opt)
    a.save(str(tmp_path / "m.fnn"))  # str paths work as well as Path
    b = fn.load(str(tmp_path / "m.fnn"))
    ha = a.fit(X, Y, epochs=2, batch_size=10, seed=seed, verbose=0)
    hb = b.fit(X, Y, epochs=2, batch_size=10, seed=seed, verbose=0)
    assert ha.history == hb.history and ha.epoch == hb.epoch == [3, 4]
    assert_weights_equal(a, b)
    assert a.train_step(X[:9], Y[:9]) == b.train_step(X[:9], Y[:9])
    assert_weights_equal(a, b)
    assert a._net.optimizer_steps == b._net.optimizer_steps == 26


def test_optimizer_state_matters_for_continuation(tmp_path):
    """Guards the test above: a fresh Adam on the same weights would diverge."""
    a = trained()
    a.save(tmp_path / "m.fnn")
    b = fn.load(tmp_path / "m.fnn")
    fresh = trained(epochs=0)
    fresh.set_weights(a.get_weights())
    fresh._epochs_trained = a._epochs_trained
    for m in (a, b, fresh):
        m.fit(X, Y, epochs=1, batch_size=10, seed=1, verbose=0)
    assert_weights_equal(a, b)
    assert any(not np.array_equal(x, y) for x, y in zip(a.get_weights(), fresh.get_weights()))


def test_loaded_model_keeps_loss_and_metrics(saved, tmp_path):
    m, data = saved
    m2 = fn.load(write(tmp_path, data, "m.fnn"))
    res = m2.evaluate(X, Y)
    assert isinstance(res, list) and len(res) == 2
    assert res == m.evaluate(X, Y)
    assert 0.0 <= res[1] <= 1.0 and res[0] > 0
    assert set(m2.evaluate(X, Y, return_dict=True)) == {"loss", "accuracy"}


def _content(data: bytes) -> tuple[dict, bytes]:
    """Header as a dict (key order in the JSON is not significant) and the data section."""
    n, head = header(data)
    return head, data[8 + n:]


def test_save_is_deterministic_and_load_save_is_identity(saved, tmp_path):
    m, data = saved
    m.save(tmp_path / "again.fnn")
    assert _content((tmp_path / "again.fnn").read_bytes()) == _content(data)
    fn.load(write(tmp_path, data, "m.fnn")).save(tmp_path / "resaved.fnn")
    assert _content((tmp_path / "resaved.fnn").read_bytes()) == _content(data)


def test_a_diverged_fit_still_saves_and_loads_exactly(tmp_path):
    """Training refuses the step that would make the weights NaN/inf (with a
    warning), so what remains saves, and loads bit for bit."""
    x = X * 100
    m = fn.Sequential([fn.Dense(4), fn.Dense(1)], seed=0)
    m.compile(optimizer=fn.optim.SGD(1e10), loss="mse")
    with pytest.warns(RuntimeWarning, match="non-finite"):
        m.fit(x, x[:, 0] * 1e6, epochs=3, verbose=0)
    assert all(np.isfinite(w).all() for w in m.get_weights())
    path = tmp_path / "diverged.fnn"
    m.save(path)
    loaded = fn.load(path)
    for a, b in zip(loaded.get_weights(), m.get_weights()):
        np.testing.assert_array_equal(a, b)


# ---------------------------------------------------------------------- atomicity

def test_save_leaves_no_temporary_files(tmp_path):
    m = trained()
    for i in range(3):
        m.save(tmp_path / "m.fnn")
        m.fit(X, Y, epochs=1, verbose=0)
    assert sorted(os.listdir(tmp_path)) == ["m.fnn"]


def test_save_replaces_an_existing_file(tmp_path):
    path = write(tmp_path, b"old junk that is not a model" * 1000, "m.fnn")
    a, b = trained(), trained("bce")
    a.save(path)
    assert_weights_equal(fn.load(path), a)
    b.save(path)
    loaded = fn.load(path)
    assert loaded.loss == "binary_cross_entropy"
    assert_weights_equal(loaded, b)
    assert sorted(os.listdir(tmp_path)) == ["m.fnn"]


def test_failed_save_raises_oserror_and_cleans_up(tmp_path):
    m = trained()
    with pytest.raises(FileNotFoundError):
        m.save(tmp_path / "no_such_dir" / "m.fnn")
    (tmp_path / "adir").mkdir()
    with pytest.raises(OSError):
        m.save(tmp_path / "adir")  # the target is a directory: the rename fails
    assert sorted(os.listdir(tmp_path)) == ["adir"]
    assert os.listdir(tmp_path / "adir") == []


# ------------------------------------------------------------------ corrupt files

def test_missing_file_raises_file_not_found(tmp_path):
    with pytest.raises(FileNotFoundError) as info:
        fn.load(tmp_path / "nope.fnn")
    assert isinstance(info.value, OSError) and not isinstance(info.value, ModelFileError)


def test_empty_file(tmp_path):
    with pytest.raises(ModelFileError, match=r"not a valid ferronn model file"):
        fn.load(write(tmp_path, b""))


def test_truncated_files(saved, tmp_path):
    _, data = saved
    n, _ = header(data)
    cuts = sorted({1, 4, 7, 8, 9, 20, 8 + n // 2, 8 + n - 1, 8 + n, 8 + n + 1, 8 + n + 37, len(data) - 4, len(data) - 1})
    for cut in cuts:
        with pytest.raises(ModelFileError, match=r"not a valid ferronn model file"):
            fn.load(write(tmp_path, data[:cut]))


@pytest.mark.parametrize("size", [8, 16, 300, 5000])
def test_random_bytes(tmp_path, size):
    rng = np.random.default_rng(size)
    for _ in range(5):
        with pytest.raises(ModelFileError):
            fn.load(write(tmp_path, rng.integers(0, 256, size, dtype=np.uint8).tobytes()))


@pytest.mark.parametrize("n", [2**62, 2**40, 10**6])
def test_absurd_header_length(tmp_path, n):
    with pytest.raises(ModelFileError):
        fn.load(write(tmp_path, struct.pack("<Q", n) + b'{"a": 1}' + b"\0" * 64))


def test_safetensors_without_ferronn_metadata(tmp_path):
    head = json.dumps({"w": {"dtype": "F32", "shape": [2, 2], "data_offsets": [0, 16]}}).encode()
    head += b" " * (-len(head) % 8)
    data = struct.pack("<Q", len(head)) + head + np.arange(4, dtype="<f4").tobytes()
    assert st_load(data)["w"].shape == (2, 2)  # a valid safetensors file
    with pytest.raises(ModelFileError, match=r"no metadata"):
        fn.load(write(tmp_path, data))


def test_foreign_safetensors_with_other_metadata(tmp_path):
    data = st_save({"weight": np.ones((3, 3), np.float32)}, metadata={"format": "pt"})
    with pytest.raises(ModelFileError, match=r"format=ferronn"):
        fn.load(write(tmp_path, data))


def _set_spec(path: list, value):
    def edit(tensors, meta):
        spec = json.loads(meta["spec"])
        node = spec
        for key in path[:-1]:
            node = node[key]
        node[path[-1]] = value
        meta["spec"] = json.dumps(spec)
    return edit


def _nan_in(name: str, value: float = np.nan):
    def edit(tensors, meta):
        t = tensors[name].copy()
        t.flat[t.size // 2] = value
        tensors[name] = t
    return edit


def _replace(target: dict, key: str, value) -> None:
    """Sets ``target[key]``, or deletes it when ``value`` is None."""
    if value is None:
        del target[key]
    else:
        target[key] = value


def _put(name: str, array):
    return lambda tensors, meta: _replace(tensors, name, array)


def _meta(key: str, value):
    return lambda tensors, meta: _replace(meta, key, value)


@pytest.mark.parametrize("edit,match", [
    (_set_spec(["layers", 0, "units"], 9), r"tensor 'layers\.\d\.(weight|bias)' is F32 \[.*\], expected F32 \["),
    (_set_spec(["input_dim"], 6), r"tensor 'layers\.0\.weight' is F32 \[5, 7\], expected F32 \[6, 7\]"),
    (_set_spec(["layers", 1, "activation"], "relu6"), r"architecture is invalid.*relu6"),
    (_set_spec(["loss"], "hinge"), r"architecture is invalid.*hinge"),
    (_meta("spec", "{not json"), r"bad architecture JSON"),
    (_meta("spec", None), r"'spec' is missing"),
    (_meta("format", "pt"), r"format=ferronn"),
    (_meta("format_version", "2"), r"format version 2 is not supported"),
    (_meta("optimizer_steps", "many"), r"optimizer_steps is not a number"),
    (_meta("extra", "{broken"), r"metadata"),
    (_nan_in("layers.1.weight"), r"NaN or infinity"),
    (_nan_in("layers.2.bias", np.inf), r"NaN or infinity"),
    (_put("layers.1.bias", None), r"tensor 'layers\.1\.bias' is missing"),
    (_put("layers.0.weight", np.zeros((5, 7), np.float64)), r"layers\.0\.weight.*expected F32"),
    (_put("optimizer.exp_avg", np.zeros(3, np.float32)), r"exp_avg.*has 3 values, expected"),
    (_put("optimizer.exp_avg_sq", None), r"state after 15 steps must have buffers"),
    (_nan_in("optimizer.exp_avg"), r"exp_avg.*(NaN|finite)"),
    (_put("optimizer.exp_avg_sq", -np.ones(118, np.float32)), r"exp_avg_sq.*negative"),
], ids=["width", "input_dim", "activation", "loss", "spec-json", "no-spec", "format", "version", "steps",
        "extra", "nan-weight", "inf-bias", "missing-tensor", "f64-tensor", "short-state", "missing-state",
        "nan-state", "negative-second-moment"])
def test_altered_ferronn_file_raises_model_file_error(saved, tmp_path, edit, match):
    m, data = saved
    assert m.n_params == 118
    assert fn.load(write(tmp_path, rewrite(data, lambda t, meta: None))).n_params == 118  # untouched rewrite loads
    with pytest.raises(ModelFileError, match=match):
        fn.load(write(tmp_path, rewrite(data, edit)))


def test_nan_weight_patched_in_place(saved, tmp_path):
    """Flip one weight's bytes to NaN without re-serialising the file."""
    _, data = saved
    n, head = header(data)
    start, end = head["layers.0.weight"]["data_offsets"]
    pos = 8 + n + start + 4 * 3
    patched = data[:pos] + struct.pack("<f", float("nan")) + data[pos + 4:]
    assert len(patched) == len(data)
    with pytest.raises(ModelFileError, match=r"layers\.0\.weight.*NaN or infinity"):
        fn.load(write(tmp_path, patched))


# ------------------------------------------------------------------ the format

def test_file_is_plain_safetensors_with_json_metadata(saved, tmp_path):
    m, data = saved
    n, head = header(data)
    assert data[8:9] == b"{" and not data.startswith(b"\x80")  # JSON, not a pickle protocol header
    meta = head["__metadata__"]
    assert {"spec", "format", "format_version", "optimizer_steps", "extra"} <= set(meta)
    assert meta["format"] == "ferronn" and meta["optimizer_steps"] == "15"
    spec = json.loads(meta["spec"])
    assert spec["input_dim"] == D and [layer["units"] for layer in spec["layers"]] == [7, 6, K]
    assert spec["loss"] == "cross_entropy" and spec["optimizer"]["name"] == "adam"
    assert json.loads(meta["extra"])["metrics"] == ["accuracy"]
    tensors = {k: v for k, v in head.items() if k != "__metadata__"}
    assert all(t["dtype"] == "F32" for t in tensors.values())
    assert 8 + n + max(t["data_offsets"][1] for t in tensors.values()) == len(data)
    assert {"optimizer.exp_avg", "optimizer.exp_avg_sq"} <= set(tensors)
    # Any safetensors reader sees the same weights, under Keras order kernel-then-bias.
    path = write(tmp_path, data, "m.fnn")
    loaded = st_load_file(path)
    expected = m.get_weights()
    for i in range(3):
        np.testing.assert_array_equal(loaded[f"layers.{i}.weight"], expected[2 * i])
        np.testing.assert_array_equal(loaded[f"layers.{i}.bias"], expected[2 * i + 1])
    with safe_open(str(path), "np") as f:
        assert f.metadata()["format"] == "ferronn"
