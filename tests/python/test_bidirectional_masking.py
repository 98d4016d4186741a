"""Bidirectional with masks and sequences of any length (Keras 3 semantics): the step
mask reaches both directions, which skip the padded steps and carry their state over
them; with ``return_sequences`` a padded output step is zero (Keras forces
``zero_output_for_mask = return_sequences`` on the wrapped layers) and the mask passes
on. Checked against the float64 transcription of PyTorch's equations with the mask
(tests/python/recurrent_reference.py) run in both directions, by padded vs unpadded
equivalence, by finite differences, across thread counts, and on a task that needs
the mask."""

from __future__ import annotations

import numpy as np
import pytest

import ferronn as fn

import recurrent_reference as rr
import reference as ref

from masked_sequences import F, H, KINDS, SPANS, check_embedded_gradients, direction as _direction, padded as _padded, \
    randomise as _randomise, train_padded

MERGES = ("concat", "sum", "mul", "ave")


def masked_bidir(cell, x, p, seq, merge, mask):
    """Both directions by the reference with the mask (``p``: the layer's
    ``forward.*``/``backward.*`` tensors), the backward one put back in time order,
    padded output steps zero with ``seq``, merged."""
    fw = rr.run(cell, x, _direction(p, "forward"), seq, False, mask=mask)
    bw = rr.run(cell, x, _direction(p, "backward"), seq, True, mask=mask)
    if seq:
        bw = bw[:, ::-1]
        fw, bw = fw * mask[:, :, None], bw * mask[:, :, None]
    return {"concat": lambda: np.concatenate([fw, bw], axis=-1), "sum": lambda: fw + bw,
            "mul": lambda: fw * bw, "ave": lambda: (fw + bw) / 2}[merge]()


def _model(layers, loss="mse", seed=0):
    model = fn.Sequential(layers, input_shape=(None, F), seed=seed)
    model.compile(optimizer=fn.optim.SGD(lr=0.0), loss=loss)
    _randomise(model)
    return model


@pytest.mark.parametrize("cell", list(KINDS))
@pytest.mark.parametrize("seq", [False, True])
@pytest.mark.parametrize("merge", MERGES)
def test_padded_sequences_give_what_each_gives_alone(cell, seq, merge):
    model = _model([fn.Masking(0.0), fn.Bidirectional(KINDS[cell](H, return_sequences=seq), merge)])
    x = _padded()
    out = model.predict(x)
    mask = np.any(x != 0.0, axis=-1)
    p = {k: v.astype(np.float64) for k, v in model.layers[1].get_params().items()}
    want = masked_bidir(cell, x.astype(np.float64), p, seq, merge, mask)
    np.testing.assert_allclose(out, want, rtol=1e-5, atol=1e-6)
    # The NumPy reference of the diagnostics masks the same way.
    outs = fn.diagnostics.layer_outputs(model, x, dtype=np.float64)
    np.testing.assert_allclose(outs["layers.1"].reshape(want.shape), want, rtol=1e-10, atol=1e-12)
    for i, (a, n) in enumerate(SPANS):
        alone = model.predict(x[i:i + 1, a:a + n])[0]  # another sequence length, no padding
        if seq:
            np.testing.assert_allclose(out[i, a:a + n], alone, rtol=1e-5, atol=1e-6)
            assert not out[i, :a].any() and not out[i, a + n:].any(), "padded output steps are zero"
        else:
            np.testing.assert_allclose(out[i], alone, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("cell", list(KINDS))
@pytest.mark.parametrize("flip", [False, True])
def test_nested_layer_outputs_show_each_direction_as_keras(cell, flip):
    """``layer_outputs(nested=True)``: each direction's own output, in its reading order,
    with zeros at the padded steps (Keras' wrapped layers output zeros there) and the
    carried-over state of the reference elsewhere."""
    model = _model([fn.Masking(0.0), fn.Bidirectional(KINDS[cell](H, return_sequences=True, go_backwards=flip))])
    x = _padded()
    mask = np.any(x != 0.0, axis=-1)
    p = {k: v.astype(np.float64) for k, v in model.layers[1].get_params().items()}
    outs = fn.diagnostics.layer_outputs(model, x, nested=True, dtype=np.float64)
    for name, back in (("forward", flip), ("backward", not flip)):
        states = rr.run(cell, x.astype(np.float64), _direction(p, name), True, back, mask=mask)
        order = mask[:, ::-1] if back else mask
        got = outs[f"layers.1.{name}"].reshape(states.shape)
        np.testing.assert_allclose(got, states * order[:, :, None], rtol=1e-10, atol=1e-12)
        assert not got[~order].any() and states[~order].any()  # the carried states would show there


@pytest.mark.parametrize("cell", list(KINDS))
def test_stacked_layers_pass_the_mask_on(cell):
    kind = KINDS[cell]
    model = _model([fn.Masking(0.0), fn.Bidirectional(kind(H, return_sequences=True)),
                    fn.Bidirectional(kind(3, return_sequences=True), "ave"),
                    fn.Bidirectional(kind(2), "sum"), fn.Dense(2)])
    x = _padded(2)
    out = model.predict(x)
    for i, (a, n) in enumerate(SPANS):
        np.testing.assert_allclose(out[i], model.predict(x[i:i + 1, a:a + n])[0], rtol=1e-5, atol=1e-6)


def test_the_mask_reaches_the_per_step_loss_through_bidirectional():
    """Embedding(mask_zero) → Bidirectional(return_sequences) → Dense: labels at padded
    steps change neither the loss nor any gradient (the mask passed on to the loss)."""
    model = fn.Sequential([fn.Embedding(7, F, mask_zero=True), fn.Bidirectional(fn.GRU(H, return_sequences=True)),
                           fn.Dense(3)], input_shape=(None,), seed=0)
    model.compile(optimizer=fn.optim.SGD(lr=0.0), loss="cross_entropy")
    _randomise(model)
    ids = np.array([[3, 1, 4, 0, 0], [0, 2, 6, 5, 1], [5, 0, 0, 0, 0]])
    labels = np.random.default_rng(3).integers(0, 3, size=ids.shape)
    first = model.train_step(ids, labels)
    grads = dict(model._net.grads())
    other = np.where(ids == 0, (labels + 1) % 3, labels)
    assert model.train_step(ids, other) == first
    for k, g in model._net.grads():
        np.testing.assert_array_equal(g, grads[k], err_msg=k)
    other[0, 0] = (other[0, 0] + 1) % 3  # a real step's label does count
    assert model.train_step(ids, other) != first


@pytest.mark.parametrize("cell", list(KINDS))
@pytest.mark.parametrize("seq,merge", [(False, "concat"), (True, "concat"), (True, "mul"), (False, "sum"),
                                       (True, "ave"), (True, "sum")])
def test_masked_gradients_match_finite_differences(cell, seq, merge):
    """Embedding(mask_zero) → Bidirectional → [Flatten] → Dense, MSE: every tensor
    against central differences of the masked float64 reference. The table's
    gradient is the layer's input gradient gathered by id, so it checks that too."""
    middle = [fn.Bidirectional(KINDS[cell](H, return_sequences=seq), merge)] + ([fn.Flatten()] if seq else [])
    check_embedded_gradients(middle, lambda x, p, mask: masked_bidir(cell, x, p, seq, merge, mask), f"{cell} {merge}")

@pytest.mark.parametrize("cell", list(KINDS))
@pytest.mark.parametrize("seq", [False, True])
def test_any_sequence_length_matches_the_reference(cell, seq):
    """Bidirectional first in a model of sequences of any length (its shape from the first data)."""
    model = fn.Sequential([fn.Bidirectional(KINDS[cell](H, return_sequences=seq), "mul"), fn.Dense(2)], seed=0)
    model.compile(optimizer="adam", loss="mse")
    rng = np.random.default_rng(9)
    model.fit(rng.normal(size=(4, 5, F)).astype(np.float32), rng.normal(size=(4, 5, 2) if seq else (4, 2)),
              epochs=1, verbose=0)
    p = {k: v.astype(np.float64) for k, v in model.layers[0].get_params().items()}
    d = {k: v.astype(np.float64) for k, v in model.layers[1].get_params().items()}
    for t in (1, 3, 8):
        x = rng.normal(size=(3, t, F)).astype(np.float32)
        fw = rr.run(cell, x.astype(np.float64), _direction(p, "forward"), seq, False)
        bw = rr.run(cell, x.astype(np.float64), _direction(p, "backward"), seq, True)
        want = (fw * (bw[:, ::-1] if seq else bw)) @ d["weight"] + d["bias"]
        np.testing.assert_allclose(model.predict(x), want, rtol=1e-5, atol=1e-6)
        outs = fn.diagnostics.layer_outputs(model, x, dtype=np.float64)
        np.testing.assert_allclose(outs["layers.1"].reshape(want.shape), want, rtol=1e-10, atol=1e-12)


def _train_masked(threads):
    layers = [fn.Masking(0.0), fn.Bidirectional(fn.LSTM(20, return_sequences=True)), fn.Bidirectional(fn.GRU(12), "mul")]
    return train_padded(threads, layers, (None, F), fn.optim.Adam(1e-2, global_clipnorm=1.0))

def test_masked_training_is_identical_across_thread_counts():
    ref.assert_same_on_threads(_train_masked)


def test_the_last_real_token_of_padded_sequences_is_learned():
    """Embedding(mask_zero) → Bidirectional(LSTM) → Dense: the class is the last real
    token of a sequence of 2 to 12 tokens padded with 0 at the end (the backward
    direction reads it first, the padding skipped); the trained model's outputs do not
    change when the sequences are padded further, which only the mask gives."""
    rng = np.random.default_rng(0)
    n, pad = 1200, 12
    ids = np.zeros((n, pad), np.int64)
    lengths = rng.integers(2, pad + 1, size=n)
    for i, k in enumerate(lengths):
        ids[i, :k] = rng.integers(1, 7, size=k)
    y = (ids[np.arange(n), lengths - 1] - 1) % 3
    model = fn.Sequential([fn.Embedding(7, 8, mask_zero=True), fn.Bidirectional(fn.LSTM(16)), fn.Dense(3)],
                          input_shape=(None,), seed=0)
    model.compile(optimizer=fn.optim.Adam(1e-2), loss="cross_entropy")
    model.fit(ids[:1000], y[:1000], epochs=8, batch_size=32, verbose=0, seed=0)
    accuracy = float(np.mean(model.predict(ids[1000:]) == y[1000:]))
    assert accuracy >= 0.95, accuracy
    # Padding to another length changes nothing.
    longer = np.concatenate([ids[1000:], np.zeros((200, 5), np.int64)], axis=1)
    np.testing.assert_allclose(model.predict_raw(longer), model.predict_raw(ids[1000:]), rtol=1e-5, atol=1e-6)
