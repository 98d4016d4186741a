"""The torch layout: ``model.save(path, layout="torch")`` writes the state_dict of the
equivalent ``torch.nn.Sequential`` as safetensors, and ``fn.load_torch_weights`` reads
such files, whoever wrote them. No torch needed: files are built by hand with numpy."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from safetensors import safe_open
from safetensors.numpy import load_file, save_file

import ferronn as fn
from ferronn.errors import ConfigError, ModelFileError, NotFittedError, ShapeError

import reference as ref

D, N = 5, 48
_rng = np.random.default_rng(3)
X = _rng.normal(size=(N, D)).astype(np.float32)
Y = np.arange(N) % 3


def every_kind() -> list:
    """One of each layer kind (and each way of nesting): the equivalent torch model
    has 29 modules at the top level."""
    return [
        fn.Dense(8, activation="relu"), fn.BatchNorm(momentum=0.2), fn.LeakyReLU(0.2),
        fn.Dense(8), fn.PReLU(), fn.LayerNorm(), fn.Dense(8, activation=fn.GELU(approximate="tanh")),
        fn.RMSNorm(), fn.PReLU(shared=True), fn.ELU(0.5), fn.GELU(), fn.Dropout(0.25),
        fn.SwiGLU(6), fn.GLU(6), fn.GeGLU(6), fn.ReGLU(6), fn.Gated(6, fn.Tanh()),
        fn.Residual([fn.LayerNorm(), fn.Dense(7, activation="silu")]),
        fn.Residual([fn.Dense(7), fn.Sigmoid(), fn.Residual([fn.BatchNorm(), fn.Softplus()]), fn.Identity()]),
        fn.Dense(6, activation="tanh"), fn.SiLU(), fn.ReLU(), fn.Dense(3), fn.LogSoftmax(temperature=1.5),
    ]


def built(layers: list, seed: int = 0, loss: str = "nll") -> fn.Sequential:
    m = fn.Sequential(layers, seed=seed)
    m.compile(optimizer=fn.optim.Adam(1e-2), loss=loss)
    m.build(D)
    return m


@pytest.fixture(scope="module")
def trained() -> fn.Sequential:
    m = fn.Sequential(every_kind(), seed=1)
    m.compile(optimizer=fn.optim.Adam(1e-2), loss="nll")
    m.fit(X, Y, epochs=2, batch_size=16, seed=0, verbose=0)
    return m


@pytest.fixture(scope="module")
def torch_file(trained, tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("torch") / "model.safetensors"
    trained.save(path, layout="torch")
    return path


def test_round_trip_is_exact(trained, torch_file):
    fresh = built(every_kind(), seed=99)
    assert not np.array_equal(fresh.predict_raw(X), trained.predict_raw(X))
    fn.load_torch_weights(fresh, torch_file)
    for a, b in zip(trained.get_weights(), fresh.get_weights()):
        np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(fresh.predict_raw(X), trained.predict_raw(X))


def test_names_shapes_and_dtypes_follow_the_torch_state_dict(trained, torch_file):
    data = load_file(torch_file)
    with safe_open(str(torch_file), "np") as f:
        assert f.metadata() == {"format": "pt"}
    w = dict(trained._tensors())
    # Dense 0 + ReLU (1), BatchNorm 2, LeakyReLU 3, Dense 4, PReLU 5, LayerNorm 6, Dense 7 + GELU (8),
    # RMSNorm 9, PReLU 10, ELU 11, GELU 12, Dropout 13, gated 14-18, Residual 19, Residual 20, Dense 21 + Tanh
    # (22), SiLU 23, ReLU 24, Dense 25, LogSoftmax 26.
    expected = {
        "0.weight": (8, D), "0.bias": (8,),
        "2.weight": (8,), "2.bias": (8,), "2.running_mean": (8,), "2.running_var": (8,), "2.num_batches_tracked": (),
        "4.weight": (8, 8), "4.bias": (8,), "5.weight": (8,), "6.weight": (8,), "6.bias": (8,),
        "7.weight": (8, 8), "7.bias": (8,), "9.weight": (8,), "10.weight": (1,),
        "14.proj.weight": (12, 8), "14.proj.bias": (12,),
        **{f"{k}.proj.weight": (12, 6) for k in range(15, 19)}, **{f"{k}.proj.bias": (12,) for k in range(15, 19)},
        "19.block.0.weight": (6,), "19.block.0.bias": (6,), "19.block.1.weight": (7, 6), "19.block.1.bias": (7,),
        "19.projection.weight": (7, 6), "19.projection.bias": (7,),
        "20.block.0.weight": (7, 7), "20.block.0.bias": (7,),
        "20.block.2.block.0.weight": (7,), "20.block.2.block.0.bias": (7,),
        "20.block.2.block.0.running_mean": (7,), "20.block.2.block.0.running_var": (7,),
        "20.block.2.block.0.num_batches_tracked": (),
        "21.weight": (6, 7), "21.bias": (6,), "25.weight": (3, 6), "25.bias": (3,),
    }
    assert {k: v.shape for k, v in data.items()} == expected
    assert fn.torch_layout.torch_names(trained)["19.block.1.weight"] == "layers.17.block.1.weight"
    steps = trained._net.optimizer_steps
    assert steps == 6
    for k, v in data.items():
        if k.endswith("num_batches_tracked"):
            assert v.dtype == np.int64 and int(v) == steps
        else:
            assert v.dtype == np.float32
    np.testing.assert_array_equal(data["0.weight"], w["layers.0.weight"].T)
    np.testing.assert_array_equal(data["2.running_var"], w["layers.1.running_var"])
    np.testing.assert_array_equal(data["14.proj.weight"], w["layers.12.weight"].T)
    np.testing.assert_array_equal(data["19.projection.weight"], w["layers.17.projection.weight"].T)


def test_torch_source_describes_the_equivalent_model(trained):
    src = fn.torch_layout.torch_source(trained)
    compile(src, "<torch_source>", "exec")  # valid Python; running it needs torch
    assert "nn.Linear(5, 8),\n    nn.ReLU(),\n    nn.BatchNorm1d(8, eps=1e-05, momentum=0.2)," in src
    assert "Gated(8, 6, nn.SiLU())" in src and "Gated(6, 6, nn.Tanh())" in src
    assert "Residual(nn.Sequential(nn.LayerNorm(6, eps=1e-05), nn.Linear(6, 7), nn.SiLU()), " \
           "projection=nn.Linear(6, 7))" in src
    assert "Softmax(temperature=1.5, log=True)" in src


# -- a file written by another tool ------------------------------------------------------------


def _numpy_forward(t: dict[str, np.ndarray], x: np.ndarray) -> np.ndarray:
    """float64 forward of the PyTorch model below, from its state_dict alone:
    Linear(5, 6), ReLU, BatchNorm1d(6, eps=1e-3) (eval), Gated(6, 4, SiLU), Residual(LayerNorm(4),
    Linear(4, 7), GELU; projection Linear(4, 7)), RMSNorm(7), PReLU(7), Linear(7, 3), Softmax(T=2)."""
    f = {k: v.astype(np.float64) for k, v in t.items()}
    h = np.maximum(x @ f["0.weight"].T + f["0.bias"], 0.0)
    h = (h - f["2.running_mean"]) / np.sqrt(f["2.running_var"] + 1e-3) * f["2.weight"] + f["2.bias"]
    g, v = np.split(h @ f["3.proj.weight"].T + f["3.proj.bias"], 2, axis=1)
    h = ref.activation("silu", g) * v
    mu, var = h.mean(axis=1, keepdims=True), h.var(axis=1, keepdims=True)
    z = (h - mu) / np.sqrt(var + 1e-5) * f["4.block.0.weight"] + f["4.block.0.bias"]
    block = ref.activation("gelu", z @ f["4.block.1.weight"].T + f["4.block.1.bias"])
    h = h @ f["4.projection.weight"].T + f["4.projection.bias"] + block
    h = f["5.weight"] * h / np.sqrt((h * h).mean(axis=1, keepdims=True) + 1e-6)
    h = np.where(h > 0, h, f["6.weight"] * h)
    return ref.softmax(h @ f["7.weight"].T + f["7.bias"], temperature=2.0)


def _hand_layers() -> list:
    return [fn.Dense(6, activation="relu"), fn.BatchNorm(eps=1e-3), fn.SwiGLU(4),
            fn.Residual([fn.LayerNorm(), fn.Dense(7, activation="gelu")]), fn.RMSNorm(), fn.PReLU(),
            fn.Dense(3), fn.Softmax(temperature=2.0)]


def _hand_tensors(dtype=np.float32) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(11)

    def r(*shape, scale=0.5):
        return (scale * rng.normal(size=shape)).astype(dtype)

    return {
        "0.weight": r(6, 5), "0.bias": r(6),
        "2.weight": 1 + r(6, scale=0.1), "2.bias": r(6), "2.running_mean": r(6),
        "2.running_var": (0.5 + rng.random(6)).astype(dtype), "2.num_batches_tracked": np.array(123, dtype=np.int64),
        "3.proj.weight": r(8, 6), "3.proj.bias": r(8),
        "4.block.0.weight": 1 + r(4, scale=0.1), "4.block.0.bias": r(4),
        "4.block.1.weight": r(7, 4), "4.block.1.bias": r(7), "4.projection.weight": r(7, 4),
        "4.projection.bias": r(7),
        "5.weight": 1 + r(7, scale=0.1), "6.weight": np.abs(r(7)), "7.weight": r(3, 7), "7.bias": r(3),
    }


@pytest.mark.parametrize("variant", ["float32", "float64", "no_num_batches_tracked"])
def test_a_file_written_by_another_tool_loads_and_predicts(tmp_path, variant):
    tensors = _hand_tensors(np.float64 if variant == "float64" else np.float32)
    if variant == "no_num_batches_tracked":
        del tensors["2.num_batches_tracked"]
    path = tmp_path / "other.safetensors"
    save_file(tensors, str(path))
    m = built(_hand_layers(), loss="mse")
    fn.load_torch_weights(m, path)
    expected = _numpy_forward(tensors, X.astype(np.float64))
    np.testing.assert_allclose(m.predict_raw(X), expected, rtol=1e-5, atol=1e-6)
    np.testing.assert_array_equal(m.layers[2].weights, tensors["3.proj.weight"].astype(np.float32).T)


# -- bad files ------------------------------------------------------------------------------


def _assert_rejected(tmp_path: Path, tensors: dict, error: type, *needles: str, raw: bytes = b"") -> None:
    m = built(_hand_layers(), loss="mse")
    before = m.get_weights()
    path = tmp_path / "bad.safetensors"
    if raw:
        path.write_bytes(raw)
    else:
        save_file(tensors, str(path))
    with pytest.raises(error) as info:
        fn.load_torch_weights(m, path)
    for needle in needles:
        assert needle in str(info.value)
    for a, b in zip(before, m.get_weights()):  # all or nothing
        np.testing.assert_array_equal(a, b)


def test_missing_tensor(tmp_path):
    t = _hand_tensors()
    del t["4.projection.bias"]
    _assert_rejected(tmp_path, t, ModelFileError, "missing", "'4.projection.bias'")


def test_unexpected_tensor(tmp_path):
    t = _hand_tensors()
    t["8.weight"] = np.zeros((3, 3), np.float32)
    _assert_rejected(tmp_path, t, ModelFileError, "unexpected", "'8.weight'")


def test_misshapen_tensor(tmp_path):
    t = _hand_tensors()
    t["7.weight"] = np.ascontiguousarray(t["7.weight"].T)  # ferronn's [in, out], not torch's [out, in]
    _assert_rejected(tmp_path, t, ShapeError, "'7.weight'", "[7, 3]", "expected [3, 7]")


def test_misshapen_after_good_tensors_changes_nothing(tmp_path):
    t = _hand_tensors()
    t["6.weight"] = np.zeros(1, np.float32)  # a shared PReLU slope where the model has one per unit
    _assert_rejected(tmp_path, t, ShapeError, "'6.weight'")


def test_bad_dtypes(tmp_path):
    t = _hand_tensors()
    t["0.bias"] = np.arange(6, dtype=np.int32)
    _assert_rejected(tmp_path, t, ModelFileError, "'0.bias'", "int32")
    t = _hand_tensors()
    t["2.num_batches_tracked"] = np.array(1.0, dtype=np.float32)
    _assert_rejected(tmp_path, t, ModelFileError, "num_batches_tracked")


def test_corrupt_file(tmp_path):
    _assert_rejected(tmp_path, {}, ModelFileError, "safetensors", raw=b"\x05\x00\x00\x00\x00\x00\x00\x00hello")


def test_a_ferronn_model_file_is_pointed_to_fn_load(tmp_path):
    m = built(_hand_layers(), loss="mse")
    m.save(tmp_path / "native.safetensors")
    with pytest.raises(ModelFileError, match="fn.load"):
        fn.load_torch_weights(built(_hand_layers(), loss="mse"), tmp_path / "native.safetensors")


def test_other_misuse(tmp_path):
    with pytest.raises(FileNotFoundError):
        fn.load_torch_weights(built(_hand_layers(), loss="mse"), tmp_path / "absent.safetensors")
    unbuilt = fn.Sequential(_hand_layers())
    with pytest.raises(NotFittedError):
        fn.load_torch_weights(unbuilt, tmp_path / "absent.safetensors")
    with pytest.raises(NotFittedError):
        unbuilt.save(tmp_path / "x.safetensors", layout="torch")
    with pytest.raises(ConfigError, match="layout"):
        built(_hand_layers(), loss="mse").save(tmp_path / "x.safetensors", layout="pytorch")
    assert not (tmp_path / "x.safetensors").exists()
