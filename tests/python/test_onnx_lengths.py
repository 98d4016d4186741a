"""ONNX export of models of sequences of any length (``input_shape=(None, F)``): the
time axis is a dynamic dimension ("steps") of the graph's input (and output, when it
reaches it), and onnxruntime computes what ``predict_raw`` computes at several lengths
within 1e-5, through recurrent layers, Bidirectional, Embedding, Dense on the last axis,
activations, Dropout and global 1-D pooling. A model whose weights fix the length
(Flatten then Dense) is exported at its built length, as before.

onnxruntime is not a test dependency: without it these tests are skipped."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

import ferronn as fn

onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")

F = 3
LENGTHS = (1, 4, 11)

MODELS: dict[str, Any] = {
    "lstm_per_step_dense": lambda: [fn.LSTM(4, return_sequences=True), fn.Dense(2, activation="tanh")],
    "rnn_last_state": lambda: [fn.SimpleRNN(5, "relu"), fn.Dense(2)],
    "gru_backwards_pooled": lambda: [fn.GRU(4, return_sequences=True, go_backwards=True), fn.Dropout(0.3),
                                     fn.ReLU(), fn.GlobalAvgPool1D(), fn.Dense(2)],
    "stacked_softmax_steps": lambda: [fn.Dense(5, activation="gelu"), fn.GRU(4, return_sequences=True),
                                      fn.Dense(3, activation="sigmoid"), fn.LSTM(3, go_backwards=True)],
    "bidirectional_sum_max": lambda: [fn.Bidirectional(fn.SimpleRNN(4, return_sequences=True), merge_mode="sum"),
                                      fn.GlobalMaxPool1D()],
    "bidirectional_flipped_concat": lambda: [fn.Bidirectional(fn.LSTM(4, return_sequences=True, go_backwards=True)),
                                             fn.Tanh(), fn.Dense(2)],
    "bidirectional_ave_last": lambda: [fn.Bidirectional(fn.GRU(3), merge_mode="ave"), fn.Dense(1)],
}


def _randomised(model: fn.Sequential, seed: int) -> fn.Sequential:
    rng = np.random.default_rng(seed)
    for tensor, value in model._tensors():  # every weight and bias nonzero (biases start at zero)
        model._set_tensor(tensor, rng.normal(scale=0.5, size=value.shape).astype(np.float32))
    return model


def _model(layers: list, shape: tuple = (None, F), seed: int = 3, loss: str = "mse") -> fn.Sequential:
    model = fn.Sequential(layers, input_shape=shape, seed=seed)
    model.compile(loss=loss)
    return _randomised(model, seed)


def _session(model: fn.Sequential, tmp_path) -> Any:
    model.export_onnx(tmp_path / "m.onnx")
    onnx.checker.check_model(onnx.load(str(tmp_path / "m.onnx")))
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 1
    return ort.InferenceSession(str(tmp_path / "m.onnx"), opts, providers=["CPUExecutionProvider"])


def _dims(value: Any) -> list:
    return [d.dim_param or d.dim_value for d in value.type.tensor_type.shape.dim]


@pytest.mark.parametrize("name", sorted(MODELS))
def test_onnxruntime_matches_predict_raw_at_every_length(name, tmp_path):
    model = _model(MODELS[name]())
    session = _session(model, tmp_path)
    rng = np.random.default_rng(7)
    for t in LENGTHS:
        x = rng.normal(size=(5, t, F)).astype(np.float32)
        got = session.run(["output"], {"input": x})[0]
        want = model.predict_raw(x)
        assert got.shape == want.shape
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)


def test_the_time_axis_is_a_named_dynamic_dimension(tmp_path):
    seq = _model(MODELS["lstm_per_step_dense"]())
    seq.export_onnx(tmp_path / "seq.onnx")
    graph = onnx.load(str(tmp_path / "seq.onnx")).graph
    assert _dims(graph.input[0]) == ["batch", "steps", F]
    assert _dims(graph.output[0]) == ["batch", "steps", 2]  # per-step outputs keep it
    last = _model(MODELS["rnn_last_state"]())
    last.export_onnx(tmp_path / "last.onnx")
    graph = onnx.load(str(tmp_path / "last.onnx")).graph
    assert _dims(graph.input[0]) == ["batch", "steps", F] and _dims(graph.output[0]) == ["batch", 2]


def test_a_tagger_of_token_ids_of_any_length(tmp_path):
    """Embedding → GRU(return_sequences) → Dense(softmax) trained by per-step cross-entropy:
    the graph ends in the per-step softmax that predict_raw applies."""
    model = _model([fn.Embedding(9, 4), fn.GRU(5, return_sequences=True), fn.Dense(3, activation="softmax")],
                   shape=(None,), loss="sparse_categorical_crossentropy")
    session = _session(model, tmp_path)
    for t in LENGTHS:
        ids = (np.arange(3 * t) * 5 % 9).reshape(3, t).astype(np.float32)
        got = session.run(["output"], {"input": ids})[0]
        np.testing.assert_allclose(got, model.predict_raw(ids), rtol=1e-5, atol=1e-5)
        np.testing.assert_allclose(got.sum(axis=-1), 1.0, rtol=1e-5)  # a softmax per step


def test_a_model_shaped_by_its_first_fit_exports_any_length(tmp_path):
    model = fn.Sequential([fn.LSTM(4), fn.Dense(1)], seed=0)
    model.compile(loss="mse")
    rng = np.random.default_rng(1)
    model.fit(rng.normal(size=(8, 6, F)), rng.normal(size=(8, 1)), epochs=1, verbose=0)
    session = _session(model, tmp_path)
    for t in (6, 2, 13):
        x = rng.normal(size=(4, t, F)).astype(np.float32)
        np.testing.assert_allclose(session.run(["output"], {"input": x})[0], model.predict_raw(x),
                                   rtol=1e-5, atol=1e-5)


def test_a_length_fixed_by_the_weights_is_exported_at_the_built_length(tmp_path):
    """Flatten then Dense: the Dense weights fix the length (the core refuses any other),
    so the graph takes the built length only, as the model does."""
    model = fn.Sequential([fn.LSTM(2, return_sequences=True), fn.Flatten(), fn.Dense(1)], seed=0)
    model.compile(loss="mse")
    rng = np.random.default_rng(2)
    model.fit(rng.normal(size=(8, 5, F)), rng.normal(size=(8, 1)), epochs=1, verbose=0)
    _randomised(model, 4)
    session = _session(model, tmp_path)
    assert session.get_inputs()[0].shape == ["batch", 5, F]
    x = rng.normal(size=(3, 5, F)).astype(np.float32)
    np.testing.assert_allclose(session.run(["output"], {"input": x})[0], model.predict_raw(x), rtol=1e-5, atol=1e-5)
    with pytest.raises(fn.ShapeError):
        model.predict_raw(rng.normal(size=(3, 6, F)).astype(np.float32))
