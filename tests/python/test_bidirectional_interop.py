"""Bidirectional in the interchange formats: ONNX export (one RNN/LSTM/GRU operator
with direction="bidirectional", then the merge) run by onnxruntime, and the torch
layout (``weight_*_l0`` and ``weight_*_l0_reverse`` of a bidirectional nn.LSTM/GRU/RNN)
with its generated module run on the float64 stand-in (torch_standin.py); both
against ``predict_raw``, for each cell × merge mode × return_sequences."""

from __future__ import annotations

import itertools

import numpy as np
import onnx
import pytest
from safetensors.numpy import load_file

import ferronn as fn
from ferronn.errors import ExportError
from test_onnx_conv import run_onnx
from test_recurrent_interop import T, F, built, run_generated

CELLS = {"rnn_tanh": lambda **kw: fn.SimpleRNN(4, **kw), "rnn_relu": lambda **kw: fn.SimpleRNN(4, "relu", **kw),
         "lstm": lambda **kw: fn.LSTM(4, **kw), "gru": lambda **kw: fn.GRU(4, **kw)}
MERGES = ("concat", "sum", "mul", "ave")
CASES = [(c, m, rs) for c, m, rs in itertools.product(CELLS, MERGES, (False, True))]
# A wrapped go_backwards layer: its copy reads backwards and the backward direction forwards.
FLIPPED = [(c, m, rs) for c, m, rs in itertools.product(("lstm", "gru"), ("concat", "mul"), (False, True))]


def case(cell: str, merge: str, rs: bool, go_backwards: bool = False) -> tuple[fn.Sequential, np.ndarray]:
    layer = fn.Bidirectional(CELLS[cell](return_sequences=rs, go_backwards=go_backwards), merge_mode=merge)
    return built([layer], (T, F))


def stacked(seed: int = 3) -> tuple[fn.Sequential, np.ndarray]:
    return built([fn.Bidirectional(fn.LSTM(5, return_sequences=True)), fn.Bidirectional(fn.GRU(3), "ave"),
                  fn.Dense(2)], (T, F), seed=seed)


def _shape(merge: str, rs: bool) -> tuple[int, ...]:
    width = 8 if merge == "concat" else 4
    return (5, T, width) if rs else (5, width)


@pytest.mark.parametrize("cell,merge,rs", CASES)
def test_onnxruntime_matches_predict_raw(cell, merge, rs, tmp_path):
    model, x = case(cell, merge, rs)
    model.export_onnx(tmp_path / "m.onnx")
    want = model.predict_raw(x)
    got = run_onnx(tmp_path / "m.onnx", x)
    assert got.shape == want.shape == _shape(merge, rs)
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("cell,merge,rs", FLIPPED)
def test_a_wrapped_go_backwards_layer_exports_to_onnx_and_torch(cell, merge, rs, tmp_path, monkeypatch):
    model, x = case(cell, merge, rs, go_backwards=True)
    want = model.predict_raw(x)
    model.export_onnx(tmp_path / "m.onnx")
    np.testing.assert_allclose(run_onnx(tmp_path / "m.onnx", x), want, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(run_generated(model, x, tmp_path, monkeypatch), want, rtol=1e-4, atol=1e-5)


def test_stacked_bidirectional_layers_in_onnx_and_torch(tmp_path, monkeypatch):
    model, x = stacked()
    want = model.predict_raw(x)
    model.export_onnx(tmp_path / "m.onnx")
    onnx.checker.check_model(onnx.load(str(tmp_path / "m.onnx")))
    np.testing.assert_allclose(run_onnx(tmp_path / "m.onnx", x), want, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(run_generated(model, x, tmp_path, monkeypatch), want, rtol=1e-4, atol=1e-5)


def test_onnx_operator_stacks_both_directions_weights():
    model, _ = case("gru", "sum", True)
    proto = fn.onnx_export.to_onnx(model)
    (op,) = [n for n in proto.graph.node if n.op_type == "GRU"]
    attrs = {a.name: onnx.helper.get_attribute_value(a) for a in op.attribute}
    assert attrs["direction"] == b"bidirectional" and attrs["hidden_size"] == 4
    assert attrs["linear_before_reset"] == 1
    inits = {i.name: onnx.numpy_helper.to_array(i) for i in proto.graph.initializer}
    w, r = inits[op.input[1]], inits[op.input[2]]
    assert w.shape == (2, 12, F) and r.shape == (2, 12, 4)
    tensors = dict(model._tensors())
    for k, direction in enumerate(("forward", "backward")):  # ONNX's gates z, r, h: PyTorch's 2nd, 1st, 3rd
        w_ih = tensors[f"layers.0.{direction}.weight_ih"]
        np.testing.assert_array_equal(w[k], np.concatenate([w_ih[4:8], w_ih[:4], w_ih[8:]]))
    assert "Add" in {n.op_type for n in proto.graph.node}


@pytest.mark.parametrize("cell,merge,rs", CASES)
def test_generated_module_matches_predict_raw(cell, merge, rs, tmp_path, monkeypatch):
    model, x = case(cell, merge, rs)
    got = run_generated(model, x, tmp_path, monkeypatch)
    want = model.predict_raw(x)
    assert got.shape == want.shape == _shape(merge, rs)
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-5)


def test_torch_layout_round_trip_is_exact(tmp_path):
    model, x = stacked()
    model.save(tmp_path / "w.safetensors", layout="torch")
    other, _ = stacked(seed=8)
    assert not np.array_equal(other.predict_raw(x), model.predict_raw(x))
    fn.load_torch_weights(other, tmp_path / "w.safetensors")
    for (n, a), (_, b) in zip(model._tensors(), other._tensors()):
        np.testing.assert_array_equal(a, b, err_msg=n)
    np.testing.assert_array_equal(other.predict_raw(x), model.predict_raw(x))


def test_names_and_shapes_are_those_of_a_bidirectional_nn_lstm(tmp_path):
    model, _ = stacked()
    model.save(tmp_path / "w.safetensors", layout="torch")
    saved = load_file(str(tmp_path / "w.safetensors"))
    # nn.LSTM(3, 5, bidirectional=True), nn.GRU(10, 3, bidirectional=True), nn.Linear(3, 2):
    want = {}
    for k, (gates, f, u) in enumerate([(20, F, 5), (9, 10, 3)]):
        for suffix in ("_l0", "_l0_reverse"):
            want.update({f"{k}.weight_ih{suffix}": (gates, f), f"{k}.weight_hh{suffix}": (gates, u),
                         f"{k}.bias_ih{suffix}": (gates,), f"{k}.bias_hh{suffix}": (gates,)})
    want.update({"2.weight": (2, 3), "2.bias": (2,)})
    assert {k: v.shape for k, v in saved.items()} == want
    np.testing.assert_array_equal(saved["0.weight_hh_l0_reverse"], model.layers[0].backward_layer.weight_hh)
    np.testing.assert_array_equal(saved["1.bias_ih_l0"], model.layers[1].forward_layer.bias_ih)
    source = fn.torch_layout.torch_source(model)
    assert "SequenceLSTM(3, 5, bidirectional=True, return_sequences=True, go_backwards=False)" in source
    assert "SequenceGRU(10, 3, bidirectional=True, return_sequences=False, go_backwards=False, merge_mode='ave')" \
        in source


def test_directions_of_different_cells_or_sizes_are_named_export_errors(tmp_path):
    for backward in (fn.GRU(4, go_backwards=True), fn.LSTM(3, go_backwards=True)):
        model, _ = built([fn.Bidirectional(fn.LSTM(4), backward_layer=backward)], (T, F))
        with pytest.raises(ExportError, match=r"layers\.0 \(Bidirectional.*same cell, units and activation"):
            model.export_onnx(tmp_path / "m.onnx")
        with pytest.raises(ExportError, match=r"layers\.0 \(Bidirectional.*has no PyTorch form"):
            model.save(tmp_path / "w.safetensors", layout="torch")
        with pytest.raises(ExportError, match="same cell"):
            fn.torch_layout.torch_source(model)
        assert not (tmp_path / "m.onnx").exists() and not (tmp_path / "w.safetensors").exists()
    model, _ = built([fn.Bidirectional(fn.SimpleRNN(4), backward_layer=fn.SimpleRNN(4, "relu", go_backwards=True))],
                     (T, F))
    with pytest.raises(ExportError, match="activation"):
        model.export_onnx(tmp_path / "m.onnx")


def test_a_simple_rnn_activation_without_an_nn_rnn_form_is_a_named_export_error(tmp_path):
    model, _ = built([fn.Bidirectional(fn.SimpleRNN(4, "sigmoid"))], (T, F))
    with pytest.raises(ExportError, match="nn.RNN's nonlinearity"):
        model.save(tmp_path / "w.safetensors", layout="torch")
    model.export_onnx(tmp_path / "m.onnx")  # ONNX's RNN operator has Sigmoid
    x = np.random.default_rng(0).normal(size=(3, T, F)).astype(np.float32)
    np.testing.assert_allclose(run_onnx(tmp_path / "m.onnx", x), model.predict_raw(x), rtol=1e-5, atol=1e-5)
