"""SimpleRNN, LSTM, GRU and Embedding in models: outputs against PyTorch's
equations (float64 transcription, tests/python/recurrent_reference.py) with the
same weights, shapes, save/load, determinism across thread counts, bad input,
and a sequence task that is actually learned (the 8x8 digits read row by row)."""

from __future__ import annotations

import numpy as np
import pytest

import ferronn as fn

import recurrent_reference as rr
import reference as ref

KINDS = {"rnn": fn.SimpleRNN, "lstm": fn.LSTM, "gru": fn.GRU}


def _model(layer, shape, seed=0, loss="mse"):
    model = fn.Sequential([layer], input_shape=shape)
    model.compile(loss=loss)
    rng = np.random.default_rng(seed)
    model.set_weights([rng.normal(0.0, 0.5, w.shape).astype(np.float32) for w in model.get_weights()])
    return model


@pytest.mark.parametrize("cell", list(KINDS))
@pytest.mark.parametrize("seq,back", [(False, False), (True, False), (False, True), (True, True)])
def test_outputs_match_pytorch_equations(cell, seq, back):
    t, f, h = 6, 4, 7
    model = _model(KINDS[cell](h, return_sequences=seq, go_backwards=back), (t, f), seed=1)
    x = np.random.default_rng(2).normal(size=(5, t, f)).astype(np.float32)
    p = {k: v.astype(np.float64) for k, v in model.layers[0].get_params().items()}
    want = rr.run(cell, x.astype(np.float64), p, seq, back)
    got = model.predict(x)
    assert got.shape == ((5, t, h) if seq else (5, h))
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=2e-6)
    # The layer's own NumPy forward (the diagnostics' reference) agrees too.
    outs = fn.diagnostics.layer_outputs(model, x, dtype=np.float64)
    np.testing.assert_allclose(outs["layers.0"].reshape(want.shape), want, rtol=1e-10, atol=1e-12)


def test_simple_rnn_activation_and_tensor_shapes():
    model = _model(fn.SimpleRNN(3, activation="relu"), (4, 2), seed=3)
    x = np.random.default_rng(4).normal(size=(6, 4, 2)).astype(np.float32)
    p = {k: v.astype(np.float64) for k, v in model.layers[0].get_params().items()}
    np.testing.assert_allclose(model.predict(x), rr.run("rnn", x.astype(np.float64), p, act=lambda v: np.maximum(v, 0)),
                               rtol=1e-5, atol=1e-6)
    shapes = {k: v.shape for k, v in model.layers[0].get_params().items()}
    assert shapes == {"weight_ih": (3, 2), "weight_hh": (3, 3), "bias_ih": (3,), "bias_hh": (3,)}
    for kind, g in ((fn.LSTM, 4), (fn.GRU, 3)):
        m = fn.Sequential([kind(5)], input_shape=(2, 3))
        m.compile(loss="mse")
        assert {k: v.shape for k, v in m.layers[0].get_params().items()} == {
            "weight_ih": (g * 5, 3), "weight_hh": (g * 5, 5), "bias_ih": (g * 5,), "bias_hh": (g * 5,)}


def test_initial_weights_follow_keras_defaults():
    model = fn.Sequential([fn.LSTM(8)], input_shape=(3, 5), seed=4)
    model.compile(loss="mse")
    p = model.layers[0].get_params()
    w = p["weight_hh"].astype(np.float64)
    np.testing.assert_allclose(w.T @ w, np.eye(8), atol=1e-5)  # orthogonal
    assert np.abs(p["weight_ih"]).max() <= np.sqrt(6.0 / (5 + 32))  # glorot_uniform, Keras' fans
    np.testing.assert_array_equal(p["bias_ih"], np.r_[np.zeros(8), np.ones(8), np.zeros(16)])
    np.testing.assert_array_equal(p["bias_hh"], np.zeros(32))
    plain = fn.Sequential([fn.LSTM(8, unit_forget_bias=False, recurrent_initializer="zeros")], input_shape=(3, 5))
    plain.compile(loss="mse")
    assert not plain.layers[0].bias_ih.any() and not plain.layers[0].weight_hh.any()


def test_stacked_model_summary_and_round_trip(tmp_path):
    model = fn.Sequential([fn.Embedding(20, 6), fn.LSTM(8, return_sequences=True), fn.GRU(5, go_backwards=True),
                           fn.Dense(3)], input_shape=(7,), seed=1)
    model.compile(optimizer="adam", loss="cross_entropy")
    rng = np.random.default_rng(5)
    x = rng.integers(0, 20, size=(30, 7))
    model.fit(x, rng.integers(0, 3, 30), epochs=2, batch_size=8, verbose=0, seed=0)
    assert [model.layers[i].output_shape(s) for i, s in enumerate([(7,), (7, 6), (7, 8), (5,)])] == [
        (7, 6), (7, 8), (5,), (3,)]
    path = tmp_path / "rnn.fnn"
    model.save(path)
    back = fn.load(path)
    assert repr(back) == repr(model)
    assert back.layers[2].go_backwards and back.layers[1].return_sequences
    np.testing.assert_array_equal(back.predict_raw(x), model.predict_raw(x))
    for a, b in zip(back.get_weights(), model.get_weights()):
        np.testing.assert_array_equal(a, b)
    back.fit(x, rng.integers(0, 3, 30), epochs=1, verbose=0)  # a loaded model trains on


def _train(threads):
    fn.set_num_threads(threads)
    rng = np.random.default_rng(7)
    x = rng.normal(size=(96, 9, 6)).astype(np.float32)
    y = rng.integers(0, 3, 96)
    model = fn.Sequential([fn.LSTM(24, return_sequences=True), fn.GRU(16), fn.Dense(3)], input_shape=(9, 6), seed=3)
    model.compile(optimizer=fn.optim.Adam(1e-2, global_clipnorm=1.0), loss="cross_entropy")
    model.fit(x, y, epochs=2, batch_size=32, verbose=0, seed=1)
    return model.get_weights(), model.predict_raw(x)


def test_training_is_identical_across_thread_counts():
    ref.assert_same_on_threads(_train)


def test_digits_read_row_by_row_are_learned():
    """The 8x8 digits as 8 steps of 8 pixels: an LSTM must combine the rows."""
    x, y = fn.datasets.digits()
    x = x.reshape(-1, 8, 8)  # pixels already in [0, 1]
    rng = np.random.default_rng(0)
    order = rng.permutation(len(x))
    train, test = order[:1400], order[1400:]
    model = fn.Sequential([fn.LSTM(32), fn.Dense(10)], input_shape=(8, 8), seed=0)
    model.compile(optimizer=fn.optim.Adam(1e-2), loss="cross_entropy", metrics=["accuracy"])
    model.fit(x[train], y[train], epochs=15, batch_size=32, verbose=0, seed=0)
    accuracy = float(np.mean(model.predict(x[test]) == y[test]))
    assert accuracy >= 0.9, accuracy


# -- bad input ----------------------------------------------------------------------


def _built():
    model = fn.Sequential([fn.GRU(3), fn.Dense(2)], input_shape=(4, 3))
    model.compile(loss="cross_entropy")
    return model


@pytest.mark.parametrize("bad", [np.zeros((3, 4), np.float32), np.zeros((3, 4, 2), np.float32),
                                 np.zeros((3, 5, 3), np.float32), np.zeros((3, 4, 3, 1), np.float32)])
def test_wrong_sequence_shape_is_a_shape_error_naming_the_expected_shape(bad):
    model = _built()
    before = model.get_weights()
    for call in (lambda: model.predict_raw(bad), lambda: model.fit(bad, np.zeros(3, int), verbose=0),
                 lambda: model.evaluate(bad, np.zeros(3, int)), lambda: model.train_step(bad, np.zeros(3, int))):
        with pytest.raises(fn.ShapeError, match=r"\(4, 3\)"):
            call()
    for a, b in zip(before, model.get_weights()):
        np.testing.assert_array_equal(a, b)


def test_recurrent_layer_on_flat_input_is_a_config_error():
    model = fn.Sequential([fn.LSTM(3)], input_dim=5)
    with pytest.raises(fn.ConfigError, match="timesteps, features"):
        model.compile(loss="mse")


@pytest.mark.parametrize("bad", [[[1, 2, 7]], [[1, -1, 0]], [[0.5, 1, 2]], [[1, 2, np.nan]]])
def test_bad_token_ids_are_label_errors_and_leave_the_model_unchanged(bad):
    model = fn.Sequential([fn.Embedding(7, 2), fn.SimpleRNN(2), fn.Dense(2)], input_shape=(3,))
    model.compile(optimizer="adam", loss="cross_entropy")
    x = np.array([[1, 2, 3]] * 20 + bad * 12, dtype=np.float64)  # the bad row after good batches
    before = model.get_weights()
    with pytest.raises((fn.LabelError, fn.NonFiniteError)):
        model.fit(x, np.zeros(len(x), int), batch_size=4, shuffle=False, verbose=0)
    with pytest.raises((fn.LabelError, fn.NonFiniteError)):
        model.predict(np.array(bad, dtype=np.float64))
    for a, b in zip(before, model.get_weights()):
        np.testing.assert_array_equal(a, b)


def test_bad_arguments_are_named_errors():
    with pytest.raises(fn.ConfigError):
        fn.LSTM(0)
    with pytest.raises(fn.ConfigError):
        fn.GRU(3, return_sequences="yes")
    with pytest.raises(fn.ConfigError):
        fn.Embedding(0, 3)
    with pytest.raises(fn.ConfigError, match="mask_zero"):
        fn.Embedding(5, 3, mask_zero="yes")
    with pytest.raises(fn.UnknownNameError):
        m = fn.Sequential([fn.SimpleRNN(3, activation="nope")], input_shape=(2, 2))
        m.compile(loss="mse")
    with pytest.raises(fn.UnknownNameError):
        m = fn.Sequential([fn.LSTM(3, recurrent_initializer="nope")], input_shape=(2, 2))
        m.compile(loss="mse")


# -- Dense on sequences ---------------------------------------------------------------


def test_dense_after_return_sequences_applies_per_step():
    """Keras semantics: Dense on [N, T, F] maps each step's F values with the same weights."""
    model = fn.Sequential([fn.GRU(4, return_sequences=True), fn.Dense(3, activation="tanh"), fn.Dense(2)],
                          input_shape=(5, 2), seed=2)
    model.compile(loss="mse")
    x = np.random.default_rng(9).normal(size=(6, 5, 2)).astype(np.float32)
    p = {n: a.astype(np.float64) for n, a, _ in model._net.tensors()}
    g = {k.split(".", 2)[2]: v for k, v in p.items() if k.startswith("layers.0.")}
    hs = rr.run("gru", x.astype(np.float64), g, return_sequences=True)
    want = np.tanh(hs @ p["layers.1.weight"] + p["layers.1.bias"]) @ p["layers.2.weight"] + p["layers.2.bias"]
    got = model.predict(x)
    assert got.shape == (6, 5, 2) and model.layers[1].weight.shape == (4, 3)
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)
    report = fn.diagnostics.check_gradients(model, x, np.random.default_rng(1).normal(size=(6, 5, 2)), n_checks=None)
    assert report.passed, report.errors


def test_dense_per_step_round_trips_in_both_layouts(tmp_path):
    model = fn.Sequential([fn.SimpleRNN(3, return_sequences=True), fn.Dense(2)], input_shape=(4, 2), seed=1)
    model.compile(loss="mse")
    assert model.layers[1].spec()["in_features"] == 3
    x = np.random.default_rng(3).normal(size=(2, 4, 2)).astype(np.float32)
    model.save(tmp_path / "m.fnn")
    back = fn.load(tmp_path / "m.fnn")
    np.testing.assert_array_equal(back.predict(x), model.predict(x))
    model.save(tmp_path / "t.safetensors", layout="torch")  # nn.RNN, then nn.Linear on the last axis
    other = fn.Sequential([fn.SimpleRNN(3, return_sequences=True), fn.Dense(2)], input_shape=(4, 2), seed=2)
    other.compile(loss="mse")
    fn.load_torch_weights(other, tmp_path / "t.safetensors")
    np.testing.assert_array_equal(other.predict(x), model.predict(x))


def test_zero_length_sequences_are_refused():
    with pytest.raises(fn.ConfigError):
        fn.Sequential([fn.LSTM(3)], input_shape=(0, 2))
    model = _built()
    with pytest.raises(fn.ShapeError, match=r"\(4, 3\)"):
        model.predict(np.zeros((2, 0, 3), np.float32))
