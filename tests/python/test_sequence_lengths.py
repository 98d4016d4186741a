"""Sequences of any length: models declared with ``input_shape=(None, F)`` (or whose
first layer reads sequences and whose shape came from the first fit) take another
number of time steps on every call; a declared length stays strict, as in Keras."""

from __future__ import annotations

import numpy as np
import pytest

import ferronn as fn

import recurrent_reference as rr

KINDS = {"rnn": fn.SimpleRNN, "lstm": fn.LSTM, "gru": fn.GRU}
F, H = 3, 4


def _model(cell, seq=False, back=False, shape=(None, F), seed=0):
    model = fn.Sequential([KINDS[cell](H, return_sequences=seq, go_backwards=back)], input_shape=shape, seed=seed)
    model.compile(optimizer=fn.optim.SGD(lr=0.1), loss="mse")
    rng = np.random.default_rng(seed)
    model.set_weights([rng.normal(0.0, 0.5, w.shape).astype(np.float32) for w in model.get_weights()])
    return model


def _params(model):
    return {k: v.astype(np.float64) for k, v in model.layers[0].get_params().items()}


@pytest.mark.parametrize("cell", list(KINDS))
@pytest.mark.parametrize("seq,back", [(False, False), (True, False), (True, True)])
def test_the_same_weights_on_any_length_match_the_float64_reference(cell, seq, back):
    model = _model(cell, seq, back)
    rng = np.random.default_rng(1)
    for t in (5, 9, 1, 5):
        x = rng.normal(size=(3, t, F)).astype(np.float32)
        want = rr.run(cell, x.astype(np.float64), _params(model), seq, back)
        got = model.predict(x)
        assert got.shape == want.shape
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)


def test_fit_and_evaluate_take_another_length_each_call():
    model = _model("lstm", seq=True)
    rng = np.random.default_rng(2)
    for t in (6, 3, 8):
        x = rng.normal(size=(4, t, F)).astype(np.float32)
        y = rng.normal(size=(4, t, H)).astype(np.float32)
        before = model.evaluate(x, y)
        model.fit(x, y, epochs=3, batch_size=4, verbose=0)
        assert model.evaluate(x, y) < before  # SGD on the same batch lowers its loss
        assert model.predict(x).shape == (4, t, H)


def test_shapes_show_none_on_the_time_axis_and_survive_a_file(tmp_path):
    model = fn.Sequential([fn.Input(shape=(None, F)), fn.GRU(H, return_sequences=True), fn.Dense(2), fn.LSTM(2)])
    model.compile(loss="mse")
    assert model.input_shape == (None, F) and model.output_shape == (2,)
    assert model.layers[1].output_shape((7, H)) == (7, 2)
    lines = []
    model.summary(print_fn=lines.append)
    assert "(None, None, 4)" in lines[0] and "(None, 2)" in lines[0]
    x = np.random.default_rng(3).normal(size=(2, 11, F)).astype(np.float32)
    model.save(tmp_path / "m.fnn")
    again = fn.load(tmp_path / "m.fnn")
    assert again.input_shape == (None, F)
    np.testing.assert_array_equal(again.predict(x), model.predict(x))


def test_a_model_shaped_by_its_first_fit_takes_other_lengths():
    model = fn.Sequential([fn.GRU(H), fn.Dense(1)], seed=0)
    model.compile(loss="mse")
    rng = np.random.default_rng(4)
    model.fit(rng.normal(size=(8, 28, 2)), rng.normal(size=(8, 1)), epochs=1, verbose=0)
    assert model.input_shape == (None, 2)
    assert model.predict(rng.normal(size=(3, 20, 2))).shape == (3, 1)
    model.fit(rng.normal(size=(8, 20, 2)), rng.normal(size=(8, 1)), epochs=1, verbose=0)


def test_token_ids_of_any_length():
    model = fn.Sequential([fn.Embedding(10, 3), fn.SimpleRNN(2)], input_shape=(None,), seed=0)
    model.compile(loss="mse")
    assert model.input_shape == (None,)
    short, long = np.array([[1, 2, 3]]), np.array([[1, 2, 3, 4, 5, 6, 7]])
    assert model.predict(short).shape == model.predict(long).shape == (1, 2)
    table = model.layers[0].get_params()["weight"].astype(np.float64)
    p = {k: v.astype(np.float64) for k, v in model.layers[1].get_params().items()}
    np.testing.assert_allclose(model.predict(long), rr.run("rnn", table[long], p), rtol=1e-5, atol=1e-6)


def test_a_declared_length_stays_strict():
    model = _model("gru", shape=(5, F))
    with pytest.raises(fn.ShapeError, match=r"expects \(5, 3\)"):
        model.predict(np.zeros((2, 7, F), np.float32))


def test_bad_lengths_and_widths_are_named_errors_and_change_nothing():
    model = _model("lstm", seq=True)
    before = [w.copy() for w in model.get_weights()]
    with pytest.raises(fn.ShapeError, match="zero-length"):
        model.fit(np.zeros((2, 0, F), np.float32), np.zeros((2, 0, H), np.float32), verbose=0)
    with pytest.raises(fn.ShapeError, match=r"\(N, T, 3\)"):
        model.fit(np.zeros((2, 4, F + 1), np.float32), np.zeros((2, 4, H), np.float32), verbose=0)
    with pytest.raises(fn.ShapeError, match="zero-length"):
        model.predict(np.zeros((2, 0, F), np.float32))
    # The core checks the raw rows too: 7 values are not a whole number of steps of 3.
    with pytest.raises(fn.ShapeError, match="whole number of time steps"):
        model._net.predict(np.zeros((2, 7), np.float32))
    for a, b in zip(before, model.get_weights()):
        np.testing.assert_array_equal(a, b)


def test_layers_that_need_a_fixed_length_say_so():
    model = fn.Sequential([fn.LSTM(2, return_sequences=True), fn.Flatten(), fn.Dense(1)], input_shape=(None, F))
    model.compile(loss="mse")
    with pytest.raises(fn.ShapeError, match="step by step"):
        model._net.predict(np.zeros((1, 5 * F), np.float32))
