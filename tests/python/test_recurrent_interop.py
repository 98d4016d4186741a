"""Recurrent layers and Embedding outside ferronn: the ONNX ``RNN``/``LSTM``/``GRU``
operators (and ``Gather``) computed by onnxruntime match ``predict_raw`` within
1e-5, for every cell × return_sequences × go_backwards, stacked, and Embedding →
LSTM → Dense; the torch layout names the tensors as nn.RNN/LSTM/GRU's state_dict,
round-trips exactly, and the generated module's own source, run on the float64
NumPy stand-in for torch (torch_standin.py), matches ``predict_raw``."""

from __future__ import annotations

import itertools

import numpy as np
import onnx
import pytest
from safetensors.numpy import load_file

import ferronn as fn
from ferronn.errors import ExportError
import torch_standin
from test_onnx_conv import run_onnx

T, F = 6, 3
CELLS = {"rnn_tanh": lambda **kw: fn.SimpleRNN(4, **kw), "rnn_relu": lambda **kw: fn.SimpleRNN(4, "relu", **kw),
         "lstm": lambda **kw: fn.LSTM(4, **kw), "gru": lambda **kw: fn.GRU(4, **kw)}
CASES = [(c, rs, gb) for c, rs, gb in itertools.product(CELLS, (False, True), (False, True))]

# (per-sample input shape, layers); the inputs are floats, or token ids for Embedding.
MODELS = {
    "stacked": ((T, F), lambda: [fn.SimpleRNN(5, return_sequences=True), fn.GRU(4, return_sequences=True,
                                                                                    go_backwards=True),
                                 fn.LSTM(3, go_backwards=True), fn.Dense(2)]),
    "embedding_lstm_dense": ((T,), lambda: [fn.Embedding(11, 4), fn.LSTM(5, return_sequences=True),
                                            fn.Dense(2, activation="tanh")]),
    "embedding_gru": ((T,), lambda: [fn.Embedding(7, 3), fn.Dense(3), fn.GRU(4), fn.Dense(2)]),
}


def built(layers: list, shape: tuple, seed: int = 3) -> tuple[fn.Sequential, np.ndarray]:
    model = fn.Sequential(layers, input_shape=shape, seed=seed)
    model.compile(optimizer="adam", loss="mse")
    rng = np.random.default_rng(seed + 10)
    for tensor, value in model._tensors():  # every weight and bias nonzero (biases start at zero)
        model._set_tensor(tensor, rng.normal(scale=0.5, size=value.shape).astype(np.float32))
    if len(shape) == 1:  # token ids, every id of the table used
        vocab = model.layers[0].input_dim
        x = (np.arange(5 * shape[0]) * 7 % vocab).reshape(5, shape[0]).astype(np.float32)
    else:
        x = rng.normal(size=(5, *shape)).astype(np.float32)
    return model, x


def case(cell: str, rs: bool, gb: bool) -> tuple[fn.Sequential, np.ndarray]:
    return built([CELLS[cell](return_sequences=rs, go_backwards=gb)], (T, F))


def model_case(name: str) -> tuple[fn.Sequential, np.ndarray]:
    shape, layers = MODELS[name]
    return built(layers(), shape)


def run_generated(model: fn.Sequential, x: np.ndarray, tmp_path, monkeypatch) -> np.ndarray:
    """The torch_source module on the stand-in, loaded from the model's torch-layout file."""
    return torch_standin.run_torch_source(model, x, tmp_path, monkeypatch)


@pytest.mark.parametrize("cell,rs,gb", CASES)
def test_onnxruntime_matches_predict_raw_for_each_cell(cell, rs, gb, tmp_path):
    model, x = case(cell, rs, gb)
    model.export_onnx(tmp_path / "m.onnx")
    want = model.predict_raw(x)
    got = run_onnx(tmp_path / "m.onnx", x)
    assert got.shape == want.shape == ((5, T, 4) if rs else (5, 4))
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("name", sorted(MODELS))
def test_onnxruntime_matches_predict_raw_for_stacks_and_embeddings(name, tmp_path):
    model, x = model_case(name)
    model.export_onnx(tmp_path / "m.onnx")
    onnx.checker.check_model(onnx.load(str(tmp_path / "m.onnx")))
    want = model.predict_raw(x)
    got = run_onnx(tmp_path / "m.onnx", x)
    assert got.shape == want.shape
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("activation", ["sigmoid", "leaky_relu", "elu", "softplus"])
def test_simple_rnn_activations_of_the_onnx_rnn_operator(activation, tmp_path):
    model, x = built([fn.SimpleRNN(4, activation=activation, return_sequences=True)], (T, F))
    model.export_onnx(tmp_path / "m.onnx")
    np.testing.assert_allclose(run_onnx(tmp_path / "m.onnx", x), model.predict_raw(x), rtol=1e-5, atol=1e-5)


def test_onnx_operators_and_weight_layout():
    model, _ = built([fn.GRU(4, return_sequences=True), fn.LSTM(2, go_backwards=True)], (T, F))
    proto = fn.onnx_export.to_onnx(model)
    ops = {n.op_type: n for n in proto.graph.node}
    assert {"GRU", "LSTM"} <= set(ops)
    attrs = {n.op_type: {a.name: onnx.helper.get_attribute_value(a) for a in n.attribute} for n in proto.graph.node}
    assert attrs["GRU"]["linear_before_reset"] == 1 and attrs["GRU"]["direction"] == b"forward"
    assert attrs["LSTM"]["direction"] == b"reverse" and attrs["LSTM"]["hidden_size"] == 2
    inits = {i.name: onnx.numpy_helper.to_array(i) for i in proto.graph.initializer}
    w = dict(model._tensors())
    gru_w = inits[ops["GRU"].input[1]]
    assert gru_w.shape == (1, 12, F)  # [directions, 3·units, F], gates z, r, h
    np.testing.assert_array_equal(gru_w[0, :4], w["layers.0.weight_ih"][4:8])  # ONNX's z is PyTorch's 2nd
    np.testing.assert_array_equal(gru_w[0, 4:8], w["layers.0.weight_ih"][:4])
    lstm_b = inits[ops["LSTM"].input[3]]
    assert lstm_b.shape == (1, 16)  # [Wb (i, o, f, c), Rb (i, o, f, c)]
    b_ih, b_hh = w["layers.1.bias_ih"], w["layers.1.bias_hh"]
    np.testing.assert_array_equal(lstm_b[0, :8], np.concatenate([b_ih[:2], b_ih[6:8], b_ih[2:4], b_ih[4:6]]))
    np.testing.assert_array_equal(lstm_b[0, 8:10], b_hh[:2])


@pytest.mark.parametrize("cell,rs,gb", CASES)
def test_generated_module_matches_predict_raw_for_each_cell(cell, rs, gb, tmp_path, monkeypatch):
    model, x = case(cell, rs, gb)
    got = run_generated(model, x, tmp_path, monkeypatch)
    want = model.predict_raw(x)
    assert got.shape == want.shape
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("name", sorted(MODELS))
def test_generated_module_matches_predict_raw_for_stacks_and_embeddings(name, tmp_path, monkeypatch):
    model, x = model_case(name)
    got = run_generated(model, x, tmp_path, monkeypatch)
    np.testing.assert_allclose(got, model.predict_raw(x), rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("name", sorted(MODELS))
def test_torch_layout_round_trip_is_exact(name, tmp_path):
    model, x = model_case(name)
    model.save(tmp_path / "w.safetensors", layout="torch")
    shape, layers = MODELS[name]
    other, _ = built(layers(), shape, seed=8)
    assert not np.array_equal(other.predict_raw(x), model.predict_raw(x))
    fn.load_torch_weights(other, tmp_path / "w.safetensors")
    for (n, a), (_, b) in zip(model._tensors(), other._tensors()):
        np.testing.assert_array_equal(a, b, err_msg=n)
    np.testing.assert_array_equal(other.predict_raw(x), model.predict_raw(x))


def test_names_and_shapes_are_those_of_nn_lstm_gru_rnn_and_embedding(tmp_path):
    model, _ = model_case("embedding_gru")
    model.save(tmp_path / "w.safetensors", layout="torch")
    saved = load_file(str(tmp_path / "w.safetensors"))
    # nn.Sequential(nn.Embedding(7, 3), nn.Linear(3, 3), nn.GRU(3, 4, batch_first=True), nn.Linear(4, 2)):
    assert {k: v.shape for k, v in saved.items()} == {
        "0.weight": (7, 3), "1.weight": (3, 3), "1.bias": (3,), "2.weight_ih_l0": (12, 3),
        "2.weight_hh_l0": (12, 4), "2.bias_ih_l0": (12,), "2.bias_hh_l0": (12,), "3.weight": (2, 4), "3.bias": (2,)}
    np.testing.assert_array_equal(saved["2.weight_hh_l0"], model.layers[2].get_param("weight_hh"))  # no reordering
    np.testing.assert_array_equal(saved["0.weight"], model.layers[0].get_param("weight"))
    source = fn.torch_layout.torch_source(built([fn.SimpleRNN(4, "relu", go_backwards=True)], (T, F))[0])
    assert "SequenceRNN(3, 4, nonlinearity='relu', return_sequences=False, go_backwards=True)" in source


@pytest.mark.parametrize("activation", ["sigmoid", "gelu"])
def test_simple_rnn_without_an_nn_rnn_nonlinearity_is_a_named_export_error(activation, tmp_path):
    model, _ = built([fn.SimpleRNN(4, activation=activation)], (T, F))
    with pytest.raises(ExportError, match=rf"layers\.0 \(SimpleRNN\(activation='{activation}'\)\).*'tanh' or 'relu'"):
        model.save(tmp_path / "w.safetensors", layout="torch")
    with pytest.raises(ExportError, match="nn.RNN's nonlinearity"):
        fn.torch_layout.torch_source(model)
    assert not (tmp_path / "w.safetensors").exists()


def test_simple_rnn_activation_without_an_onnx_form_is_a_named_export_error(tmp_path):
    model, _ = built([fn.SimpleRNN(4, activation="gelu")], (T, F))
    with pytest.raises(ExportError, match=r"layers\.0 \(SimpleRNN\(activation='gelu'\)\) cannot be exported"):
        model.export_onnx(tmp_path / "m.onnx")
    assert not (tmp_path / "m.onnx").exists()


def test_a_masking_embedding_is_a_named_export_error(tmp_path):
    model, _ = model_case("embedding_lstm_dense")
    model.layers[0].mask_zero = True  # what Embedding(mask_zero=True) records once masking exists
    with pytest.raises(ExportError, match=r"layers\.0 \(Embedding\(mask_zero=True\)\) has no ONNX form"):
        model.export_onnx(tmp_path / "m.onnx")
    with pytest.raises(ExportError, match=r"Embedding\(mask_zero=True\)\) has no PyTorch-layout form"):
        model.save(tmp_path / "w.safetensors", layout="torch")


@pytest.mark.parametrize("cell,rs", [(c, rs) for c in CELLS for rs in (False, True)])
def test_the_onnx_helper_runs_both_directions_as_keras_bidirectional_concat(cell, rs, tmp_path):
    """What a Bidirectional kind reuses: ``onnx_layer`` with two tensor prefixes and
    direction="bidirectional" gives the forward layer's and the backward (go_backwards)
    layer's outputs side by side, the backward sequence put back in the input's time order."""
    from ferronn.layers import _recurrent_export as rx
    from ferronn.onnx_export import _Graph

    fwd, x = built([CELLS[cell](return_sequences=rs)], (T, F), seed=3)
    bwd, _ = built([CELLS[cell](return_sequences=rs, go_backwards=True)], (T, F), seed=4)
    tensors = {f"fwd.{k[len('layers.0.'):]}": v for k, v in fwd._tensors()}
    tensors.update({f"bwd.{k[len('layers.0.'):]}": v for k, v in bwd._tensors()})
    layer = fwd.layers[0]
    acts, attrs = layer._onnx_activation("fwd")
    g = _Graph(onnx, tensors, 17)
    out = rx.onnx_layer(g, g.flat_input("input", (T, F)), (T, F), layer.cell, ["fwd", "bwd"], "bidirectional",
                        4, rs, "bi", acts, **attrs)
    g.nodes.append(onnx.helper.make_node("Identity", [out], ["output"]))
    h = onnx.helper
    graph = h.make_graph(g.live_nodes("output"), "bi",
                         [h.make_tensor_value_info("input", onnx.TensorProto.FLOAT, ["batch", T, F])],
                         [h.make_tensor_value_info("output", onnx.TensorProto.FLOAT, None)], initializer=g.inits)
    onnx.save(h.make_model(graph, opset_imports=[h.make_opsetid("", 17)], ir_version=8), str(tmp_path / "bi.onnx"))
    back = bwd.predict_raw(x)
    if rs:  # [N, T, 2·units]: step t holds the forward state at t and the backward state at t
        want = np.concatenate([fwd.predict_raw(x), back[:, ::-1]], axis=-1).reshape(len(x), -1)
    else:
        want = np.concatenate([fwd.predict_raw(x), back], axis=-1)
    np.testing.assert_allclose(run_onnx(tmp_path / "bi.onnx", x), want, rtol=1e-5, atol=1e-5)
