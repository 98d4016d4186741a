"""Masking of padded sequences (Keras' semantics): ``Masking(mask_value)`` and
``Embedding(mask_zero=True)`` produce a step mask; recurrent layers after them skip
the padded steps (the state carries over), so padded and unpadded sequences give
the same outputs and the same gradients for the shared weights. Checked against
the float64 transcription of PyTorch's equations with the mask
(tests/python/recurrent_reference.py) and by finite differences."""

from __future__ import annotations

import numpy as np
import pytest

import ferronn as fn

import recurrent_reference as rr
from masked_sequences import check_embedded_gradients, randomise as _randomise

KINDS = {"rnn": fn.SimpleRNN, "lstm": fn.LSTM, "gru": fn.GRU}
F, H, T = 3, 4, 6
LENGTHS = [6, 2, 4, 1]  # true lengths of the padded batch


def _padded(seed=0):
    rng = np.random.default_rng(seed)
    x = np.zeros((len(LENGTHS), T, F), np.float32)
    for i, n in enumerate(LENGTHS):
        x[i, :n] = rng.normal(size=(n, F))  # never exactly 0: every real step stays
    return x


def _masked_model(cell, seq, back, stacked=False):
    layers = [fn.Masking(0.0)]
    if stacked:
        layers.append(KINDS[cell](H, return_sequences=True))
    layers.append(KINDS[cell](H, return_sequences=seq, go_backwards=back))
    model = fn.Sequential(layers, input_shape=(None, F), seed=0)
    model.compile(optimizer=fn.optim.SGD(lr=0.0), loss="mse")
    _randomise(model)
    return model


@pytest.mark.parametrize("cell", list(KINDS))
@pytest.mark.parametrize("seq,back", [(False, False), (True, False), (False, True), (True, True)])
def test_padded_sequences_give_what_each_gives_alone(cell, seq, back):
    model = _masked_model(cell, seq, back)
    x = _padded()
    out = model.predict(x)
    p = {k: v.astype(np.float64) for k, v in model.layers[1].get_params().items()}
    mask = np.any(x != 0.0, axis=-1)
    np.testing.assert_allclose(out, rr.run(cell, x.astype(np.float64), p, seq, back, mask=mask), rtol=1e-5, atol=1e-6)
    for i, n in enumerate(LENGTHS):
        alone = model.predict(x[i:i + 1, :n])[0]
        if not seq:
            np.testing.assert_allclose(out[i], alone, rtol=1e-5, atol=1e-6)
        elif back:  # the padding at the end is read first: zeros, then the real steps
            np.testing.assert_array_equal(out[i, :T - n], 0.0)
            np.testing.assert_allclose(out[i, T - n:], alone, rtol=1e-5, atol=1e-6)
        else:  # after the real steps the output repeats the last state (Keras' zero_output_for_mask=False)
            np.testing.assert_allclose(out[i, :n], alone, rtol=1e-5, atol=1e-6)
            np.testing.assert_allclose(out[i, n:], np.repeat(alone[-1:], T - n, axis=0), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("cell", list(KINDS))
def test_stacked_layers_pass_the_mask_on(cell):
    model = _masked_model(cell, False, False, stacked=True)
    x = _padded(2)
    out = model.predict(x)
    for i, n in enumerate(LENGTHS):
        np.testing.assert_allclose(out[i], model.predict(x[i:i + 1, :n])[0], rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("cell", list(KINDS))
def test_gradients_of_the_shared_weights_do_not_see_the_padding(cell):
    """One padded sample and the same sample unpadded: equal loss and gradients."""
    model = fn.Sequential([fn.Masking(0.0), KINDS[cell](H), fn.Dense(2)], input_shape=(None, F), seed=0)
    model.compile(optimizer=fn.optim.SGD(lr=0.0), loss="mse")
    _randomise(model)
    x = _padded(3)
    y = np.random.default_rng(4).normal(size=(len(LENGTHS), 2)).astype(np.float32)
    padded_loss = model.train_step(x, y)
    padded = dict(model._net.grads())
    # The batch again with each sample cut to its own length: grads summed per sample equal the batch's.
    total, losses = {}, []
    for i, n in enumerate(LENGTHS):
        losses.append(model.train_step(x[i:i + 1, :n], y[i:i + 1]))
        for k, g in model._net.grads():
            total[k] = total.get(k, 0.0) + g / len(LENGTHS)
    assert padded_loss == pytest.approx(np.mean(losses), rel=1e-5)
    for k, g in padded.items():
        np.testing.assert_allclose(g, total[k], rtol=1e-4, atol=1e-6, err_msg=k)


@pytest.mark.parametrize("cell,seq,back", [(c, s, b) for c in KINDS for s in (False, True) for b in (False, True)])
def test_masked_gradients_match_finite_differences(cell, seq, back):
    """Embedding(mask_zero) → recurrent → [Flatten] → Dense, MSE: every tensor against
    central differences of the float64 reference with the mask. The table's gradient
    is the recurrent layer's input gradient gathered by id, so it checks that too; id 0
    (padding) gets none."""
    middle = [KINDS[cell](H, return_sequences=seq, go_backwards=back)] + ([fn.Flatten()] if seq else [])
    check_embedded_gradients(middle, lambda x, p, mask: rr.run(cell, x, p, seq, back, mask=mask), cell)

def test_a_fully_masked_sequence_gives_the_initial_state():
    model = _masked_model("lstm", False, False)
    x = _padded()
    x[3] = 0.0
    np.testing.assert_array_equal(model.predict(x)[3], 0.0)


def test_masking_zeroes_padded_steps_in_its_output_and_reads_a_mask_value():
    model = fn.Sequential([fn.Masking(-1.0)], input_shape=(3, 2))
    model.compile(loss="mse")
    x = np.array([[[1.0, -1.0], [-1.0, -1.0], [0.0, 2.0]]], np.float32)
    np.testing.assert_array_equal(model.predict(x), [[[1.0, -1.0], [0.0, 0.0], [0.0, 2.0]]])
    assert "Masking(-1.0)" in repr(model)


def test_training_with_padding_is_what_training_without_more_padding_is():
    """fit and evaluate on the same sequences padded to 6 and to 9 steps: same losses, same weights."""
    def run(pad):
        model = fn.Sequential([fn.Embedding(8, 4, mask_zero=True), fn.GRU(5), fn.Dense(3)], input_shape=(None,), seed=3)
        model.compile(optimizer=fn.optim.Adam(lr=0.01), loss="cross_entropy", metrics=["accuracy"])
        rng = np.random.default_rng(7)
        ids = np.zeros((12, pad), np.int64)
        for i in range(12):
            n = 1 + i % 6
            ids[i, :n] = rng.integers(1, 8, size=n)
        y = rng.integers(0, 3, size=12)
        history = model.fit(ids, y, epochs=3, batch_size=4, verbose=0)
        return history.history["loss"], model.evaluate(ids, y), model.get_weights()

    (h6, e6, w6), (h9, e9, w9) = run(6), run(9)
    np.testing.assert_allclose(h6, h9, rtol=1e-5)
    assert e6 == pytest.approx(e9, rel=1e-5)
    for a, b in zip(w6, w9):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-6)


def test_masked_results_do_not_depend_on_the_thread_count():
    before = fn.get_num_threads()
    outs = []
    try:
        for k in (1, 2, 3):
            fn.set_num_threads(k)
            model = _masked_model("gru", True, False, stacked=True)
            x = np.concatenate([_padded(s) for s in range(40)])
            y = np.random.default_rng(8).normal(size=(len(x), T, H)).astype(np.float32)
            model.compile(optimizer=fn.optim.Adam(lr=0.01), loss="mse")
            model.fit(x, y, epochs=2, batch_size=64, verbose=0)
            outs.append([model.predict(x)] + model.get_weights())
    finally:
        fn.set_num_threads(before)
    for other in outs[1:]:
        for a, b in zip(outs[0], other):
            np.testing.assert_array_equal(a, b)


def test_bad_tokens_with_mask_zero_are_named_errors_and_change_nothing():
    model = fn.Sequential([fn.Embedding(5, 2, mask_zero=True), fn.LSTM(3), fn.Dense(1)], input_shape=(None,), seed=0)
    model.compile(loss="mse")
    before = [w.copy() for w in model.get_weights()]
    with pytest.raises(fn.LabelError, match="whole numbers"):
        model.fit(np.array([[1.0, 2.5, 0.0]]), np.zeros((1, 1)), verbose=0)
    with pytest.raises(fn.LabelError):
        model.predict(np.array([[1, 7, 0]]))
    for a, b in zip(before, model.get_weights()):
        np.testing.assert_array_equal(a, b)
    with pytest.raises(fn.ConfigError):
        fn.Masking(float("nan"))
