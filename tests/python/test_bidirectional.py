"""Bidirectional over SimpleRNN, LSTM and GRU: outputs against PyTorch's equations
run in both directions (float64 transcription, tests/python/recurrent_reference.py)
and merged as Keras does; gradients of inputs and every tensor against central
differences of that reference; save/load; stacking; summary counts; determinism
across thread counts; named errors; a sequence task that is learned."""

from __future__ import annotations

import numpy as np
import pytest

import ferronn as fn
from ferronn import keras

import recurrent_reference as rr
import reference as ref

KINDS = {"rnn": fn.SimpleRNN, "lstm": fn.LSTM, "gru": fn.GRU}
MERGES = ("concat", "sum", "mul", "ave")


def bidir_reference(cell, x, p, seq, merge, back=False):
    """Both directions by the reference (``p``: ``forward.*`` and ``backward.*``
    tensors; the forward one reads as ``back`` says, the backward one the other
    way), the backward one's steps put back in time order, then merged."""
    fw = rr.run(cell, x, {k[8:]: v for k, v in p.items() if k.startswith("forward.")}, seq, back)
    bw = rr.run(cell, x, {k[9:]: v for k, v in p.items() if k.startswith("backward.")}, seq, not back)
    if seq:
        bw = bw[:, ::-1]
    return {"concat": lambda: np.concatenate([fw, bw], axis=-1), "sum": lambda: fw + bw,
            "mul": lambda: fw * bw, "ave": lambda: (fw + bw) / 2}[merge]()


def _randomize(model, seed):
    rng = np.random.default_rng(seed)
    model.set_weights([rng.normal(0.0, 0.5, w.shape).astype(np.float32) for w in model.get_weights()])


@pytest.mark.parametrize("cell", list(KINDS))
@pytest.mark.parametrize("seq", [False, True])
@pytest.mark.parametrize("merge", MERGES)
def test_outputs_match_both_directions_of_pytorch_equations(cell, seq, merge):
    t, f, h = 5, 3, 4
    model = fn.Sequential([fn.Bidirectional(KINDS[cell](h, return_sequences=seq), merge_mode=merge)],
                          input_shape=(t, f))
    model.compile(loss="mse")
    _randomize(model, 1)
    x = np.random.default_rng(2).normal(size=(6, t, f)).astype(np.float32)
    p = {k: v.astype(np.float64) for k, v in model.layers[0].get_params().items()}
    want = bidir_reference(cell, x.astype(np.float64), p, seq, merge)
    width = 2 * h if merge == "concat" else h
    got = model.predict(x)
    assert got.shape == ((6, t, width) if seq else (6, width))
    assert model.layers[0].output_shape((t, f)) == got.shape[1:]
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=2e-6)
    outs = fn.diagnostics.layer_outputs(model, x, nested=True, dtype=np.float64)
    np.testing.assert_allclose(outs["layers.0"].reshape(want.shape), want, rtol=1e-10, atol=1e-12)
    # Each direction's own output (the backward one in its reading order), as the diagnostics record it.
    back = rr.run(cell, x.astype(np.float64), {k[9:]: v for k, v in p.items() if k.startswith("backward.")}, seq, True)
    np.testing.assert_allclose(outs["layers.0.backward"].reshape(back.shape), back, rtol=1e-10, atol=1e-12)
    assert list(outs) == ["layers.0.forward", "layers.0.backward", "layers.0"]


def test_tensors_are_named_and_shaped_as_pytorchs_bidirectional_module():
    model = fn.Sequential([fn.Bidirectional(fn.GRU(5))], input_shape=(4, 3))
    model.compile(loss="mse")
    shapes = {k: v.shape for k, v in model.layers[0].get_params().items()}
    assert shapes == {f"{d}.{n}": s for d in ("forward", "backward") for n, s in
                      (("weight_ih", (15, 3)), ("weight_hh", (15, 5)), ("bias_ih", (15,)), ("bias_hh", (15,)))}
    layer = model.layers[0]
    assert not layer.forward_layer.go_backwards and layer.backward_layer.go_backwards
    np.testing.assert_array_equal(layer.backward_layer.weight_hh, layer.get_params()["backward.weight_hh"])
    # Each direction starts as its own layer would (orthogonal recurrent kernel), independently drawn.
    w = layer.forward_layer.weight_hh.astype(np.float64)
    np.testing.assert_allclose(w.T @ w, np.eye(5), atol=1e-5)
    assert not np.array_equal(layer.forward_layer.weight_ih, layer.backward_layer.weight_ih)


def test_go_backwards_layer_and_an_explicit_backward_layer():
    """Keras: the backward copy flips go_backwards whatever the layer's; a given
    backward_layer may differ in kind and size (concat)."""
    t, f = 4, 2
    x = np.random.default_rng(3).normal(size=(5, t, f)).astype(np.float32)
    model = fn.Sequential([fn.Bidirectional(fn.LSTM(3, go_backwards=True, return_sequences=True))],
                          input_shape=(t, f))
    model.compile(loss="mse")
    _randomize(model, 4)
    p = {k: v.astype(np.float64) for k, v in model.layers[0].get_params().items()}
    x64 = x.astype(np.float64)
    fw = rr.run("lstm", x64, {k[8:]: v for k, v in p.items() if k.startswith("forward.")}, True, True)
    bw = rr.run("lstm", x64, {k[9:]: v for k, v in p.items() if k.startswith("backward.")}, True, False)
    np.testing.assert_allclose(model.predict(x), np.concatenate([fw, bw[:, ::-1]], axis=-1), rtol=1e-5, atol=2e-6)

    mixed = fn.Sequential([fn.Bidirectional(fn.LSTM(3), backward_layer=fn.GRU(2, go_backwards=True))],
                          input_shape=(t, f))
    mixed.compile(loss="mse")
    _randomize(mixed, 5)
    p = {k: v.astype(np.float64) for k, v in mixed.layers[0].get_params().items()}
    want = np.concatenate([rr.run("lstm", x64, {k[8:]: v for k, v in p.items() if k.startswith("forward.")}),
                           rr.run("gru", x64, {k[9:]: v for k, v in p.items() if k.startswith("backward.")},
                                  False, True)], axis=-1)
    np.testing.assert_allclose(mixed.predict(x), want, rtol=1e-5, atol=2e-6)
    assert "backward_layer=GRU(2, go_backwards=True)" in repr(mixed.layers[0])


# -- gradients ------------------------------------------------------------------------

BATCH, IN, OUT, T, F, H = 3, 2, 3, 4, 3, 3


def _grad_case(cell, seq, merge, back=False, seed=0):
    """``Dense(T·F) → Reshape((T, F)) → Bidirectional → [Flatten] → Dense(3)``: the
    first Dense's weight gradient is xᵀ·(the layer's input gradient)."""
    inner = KINDS[cell](H, return_sequences=seq, go_backwards=back)
    return rr.gradient_case(fn.Bidirectional(inner, merge), seq, seed, BATCH, IN, OUT, T, F)


def _net_out(x, ps, cell, seq, merge, back=False):
    h = x @ ps["layers.0.weight"] + ps["layers.0.bias"]
    inner = {k[len("layers.2."):]: v for k, v in ps.items() if k.startswith("layers.2.")}
    y = bidir_reference(cell, h.reshape(len(h), T, F), inner, seq, merge, back).reshape(len(h), -1)
    last = "layers.4" if seq else "layers.3"
    return y @ ps[f"{last}.weight"] + ps[f"{last}.bias"]


@pytest.mark.parametrize("cell", list(KINDS))
@pytest.mark.parametrize("seq,merge,back", [(False, "concat", False), (True, "concat", False), (False, "mul", False),
                                            (True, "sum", False), (True, "ave", False), (True, "mul", False),
                                            (True, "concat", True), (False, "sum", True)])
def test_gradients_match_finite_differences(cell, seq, merge, back):
    model, params, x, y = _grad_case(cell, seq, merge, back)
    x64, y64 = x.astype(np.float64), y.astype(np.float64)

    def loss(ps):
        return ref.loss("mse", _net_out(x64, ps, cell, seq, merge, back), y64)

    value = model.train_step(x, y)
    assert abs(value - loss(params)) <= 1e-5 * abs(loss(params)) + 1e-6
    grads = dict(model._net.grads())
    expected = {f"layers.2.{d}.{n}" for d in ("forward", "backward")
                for n in ("weight_ih", "weight_hh", "bias_ih", "bias_hh")}
    assert expected <= set(grads) and "layers.0.weight" in grads
    ref.assert_grads_match(grads, params, loss, f"{cell} {merge}")


def test_check_gradients_covers_bidirectional_and_regularizers():
    """fn.diagnostics' own reference (the layer's numpy_forward) and the directions'
    regularizers, found through the nested layers."""
    layer = fn.Bidirectional(fn.LSTM(3, return_sequences=True, recurrent_regularizer=fn.regularizers.l2(0.1)),
                             merge_mode="ave")
    model = fn.Sequential([fn.Embedding(6, 3), layer, fn.Bidirectional(fn.GRU(2)), fn.Dense(2)], input_shape=(5,))
    model.compile(optimizer="sgd", loss="cross_entropy")
    rng = np.random.default_rng(6)
    x, y = rng.integers(0, 6, size=(6, 5)), rng.integers(0, 2, size=6)
    report = fn.diagnostics.check_gradients(model, x, y, n_checks=None)
    assert report.passed, report
    assert {"layers.1.forward.weight_hh", "layers.1.backward.weight_hh", "layers.2.backward.bias_ih"} <= set(
        report.errors)
    # The penalty reaches both directions' weight_hh (0.1·Σw² each) and no other tensor.
    plain = fn.Sequential([fn.Embedding(6, 3), fn.Bidirectional(fn.LSTM(3, return_sequences=True), "ave"),
                           fn.Bidirectional(fn.GRU(2)), fn.Dense(2)], input_shape=(5,))
    plain.compile(optimizer="sgd", loss="cross_entropy")
    plain.set_weights(model.get_weights())
    p = model.layers[1].get_params()
    penalty = 0.1 * sum(float((p[f"{d}.weight_hh"].astype(np.float64) ** 2).sum()) for d in ("forward", "backward"))
    assert model.evaluate(x, y) == pytest.approx(plain.evaluate(x, y) + penalty, rel=1e-5)


# -- models -------------------------------------------------------------------------


def test_stacked_model_summary_save_and_load(tmp_path):
    model = fn.Sequential([fn.Bidirectional(fn.LSTM(6, return_sequences=True)),
                           fn.Bidirectional(fn.GRU(4), merge_mode="sum"), fn.Dense(3)], input_shape=(7, 5), seed=2)
    model.compile(optimizer="adam", loss="cross_entropy")
    rng = np.random.default_rng(8)
    x = rng.normal(size=(24, 7, 5)).astype(np.float32)
    y = rng.integers(0, 3, 24)
    model.fit(x, y, epochs=2, batch_size=8, verbose=0, seed=0)
    # PyTorch's bidirectional modules: twice one direction's tensors.
    lstm = 2 * (4 * 6 * 5 + 4 * 6 * 6 + 2 * 4 * 6)
    gru = 2 * (3 * 4 * 12 + 3 * 4 * 4 + 2 * 3 * 4)
    assert [sum(w.size for w in layer.get_weights()) for layer in model.layers] == [lstm, gru, 4 * 3 + 3]
    lines = []
    model.summary(print_fn=lines.append)
    text = "\n".join(lines)
    assert "(None, 7, 12)" in text and "(None, 4)" in text and f"{lstm:,}" in text
    assert text.count("LSTM") == 2 and text.count("GRU") == 2  # each direction on its own row
    path = tmp_path / "bidir.fnn"
    model.save(path)
    back = fn.load(path)
    assert repr(back) == repr(model)
    assert back.layers[1].merge_mode == "sum" and back.layers[0].backward_layer.go_backwards
    np.testing.assert_array_equal(back.predict_raw(x), model.predict_raw(x))
    for a, b in zip(back.get_weights(), model.get_weights()):
        np.testing.assert_array_equal(a, b)
    back.fit(x, y, epochs=1, verbose=0)  # a loaded model trains on


def _train(threads):
    fn.set_num_threads(threads)
    rng = np.random.default_rng(7)
    x = rng.normal(size=(64, 8, 5)).astype(np.float32)
    y = rng.integers(0, 3, 64)
    model = fn.Sequential([fn.Bidirectional(fn.LSTM(20, return_sequences=True)),
                           fn.Bidirectional(fn.GRU(12), merge_mode="mul"), fn.Dense(3)], input_shape=(8, 5), seed=3)
    model.compile(optimizer=fn.optim.Adam(1e-2, global_clipnorm=1.0), loss="cross_entropy")
    model.fit(x, y, epochs=2, batch_size=16, verbose=0, seed=1)
    return model.get_weights(), model.predict_raw(x)


def test_training_is_identical_across_thread_counts():
    ref.assert_same_on_threads(_train)


def test_digits_read_row_by_row_are_learned():
    """The 8x8 digits as 8 steps of 8 pixels, read both ways by a bidirectional GRU."""
    x, y = fn.datasets.digits()
    x = x.reshape(-1, 8, 8)
    order = np.random.default_rng(0).permutation(len(x))
    train, test = order[:1400], order[1400:]
    model = fn.Sequential([fn.Bidirectional(fn.GRU(24)), fn.Dense(10)], input_shape=(8, 8), seed=0)
    model.compile(optimizer=fn.optim.Adam(1e-2), loss="cross_entropy")
    model.fit(x[train], y[train], epochs=12, batch_size=32, verbose=0, seed=0)
    accuracy = float(np.mean(model.predict(x[test]) == y[test]))
    assert accuracy >= 0.9, accuracy


def test_keras_bidirectional():
    model = keras.Sequential([keras.Input((6, 3)), keras.layers.Bidirectional(keras.layers.LSTM(4)),
                              keras.layers.Dense(2)])
    model.compile(optimizer="adam", loss="mse")
    layer = model.layers[0]
    assert isinstance(layer, fn.Bidirectional) and layer.output_shape((6, 3)) == (8,)
    assert model.count_params() == 2 * (16 * 3 + 16 * 4 + 2 * 16) + 8 * 2 + 2
    assert [w.shape for w in layer.weights[:4]] == [(16, 3), (16, 4), (16,), (16,)]
    assert type(layer).__module__ == "ferronn.keras.layers"
    # Keras' usual form: the input shape on the wrapper; the wrapped layer's own settings carry over.
    other = keras.Sequential([keras.layers.Bidirectional(keras.layers.LSTM(3, unit_forget_bias=False,
                                                                           return_sequences=True),
                                                         merge_mode="ave", input_shape=(5, 2)),
                              keras.layers.GlobalAveragePooling1D(), keras.layers.Dense(1)])
    other.compile(optimizer="adam", loss="mse")
    inner = other.layers[0]
    assert inner.output_shape((5, 2)) == (5, 3) and inner.merge_mode == "ave"
    assert not inner.backward_layer.unit_forget_bias and not inner.forward_layer.bias_ih.any()


# -- bad input ----------------------------------------------------------------------


def test_bad_arguments_are_config_errors():
    for bad, says in [
            (lambda: fn.Bidirectional(fn.Dense(3)), "recurrent layer"),
            (lambda: fn.Bidirectional(fn.LSTM(3), merge_mode="max"), "merge_mode"),
            (lambda: fn.Bidirectional(fn.LSTM(3), merge_mode=None), "merge_mode=None"),
            (lambda: fn.Bidirectional(fn.LSTM(3), backward_layer=fn.LSTM(3)), "opposite"),
            (lambda: fn.Bidirectional(fn.LSTM(3), backward_layer=fn.LSTM(3, go_backwards=True,
                                                                         return_sequences=True)), "return_sequences"),
            (lambda: fn.Bidirectional(fn.LSTM(3), "sum", backward_layer=fn.LSTM(4, go_backwards=True)), "same units"),
            (lambda: fn.Bidirectional(fn.LSTM(3), backward_layer="gru"), "backward_layer")]:
        with pytest.raises(fn.ConfigError, match=says):
            bad()
    with pytest.raises(fn.ConfigError, match="timesteps, features"):
        fn.Sequential([fn.Bidirectional(fn.GRU(3))], input_dim=5).compile(loss="mse")
    spec = {"type": "bidirectional", "forward": None, "backward": {}}
    with pytest.raises(fn.ConfigError, match="forward"):
        fn.layers.from_spec(spec)


def test_wrong_sequence_shape_is_a_shape_error_and_the_model_is_unchanged():
    model = fn.Sequential([fn.Bidirectional(fn.GRU(3)), fn.Dense(2)], input_shape=(4, 3))
    model.compile(optimizer="adam", loss="cross_entropy")
    before = model.get_weights()
    for bad in (np.zeros((3, 4, 2), np.float32), np.zeros((3, 5, 3), np.float32), np.zeros((3, 0, 3), np.float32)):
        for call in (lambda: model.predict_raw(bad), lambda: model.fit(bad, np.zeros(3, int), verbose=0)):
            with pytest.raises(fn.ShapeError, match=r"\(4, 3\)"):
                call()
    for a, b in zip(before, model.get_weights()):
        np.testing.assert_array_equal(a, b)
