"""Cross-entropy over per-step scores ``[N, T, C]`` with per-step labels ``[N, T]``
(a tagger: recurrent layers with ``return_sequences`` then Dense): padded steps
(Embedding(mask_zero=True) / Masking) are left out of the loss and the accuracy, and
the loss is the mean over the real steps, as Keras averages a masked loss."""

from __future__ import annotations

import numpy as np
import pytest

import ferronn as fn

import recurrent_reference as rr
import reference as ref

V, E, H, C = 7, 3, 4, 5
IDS = np.array([[3, 1, 4, 0, 0], [2, 6, 1, 5, 3], [5, 0, 0, 0, 0], [0, 0, 0, 0, 0]])
LABELS = np.array([[0, 4, 2, 1, 3], [1, 1, 0, 2, 4], [3, 0, 0, 0, 0], [2, 2, 2, 2, 2]])


def _tagger(mask_zero=True, seed=0):
    model = fn.Sequential([fn.Embedding(V, E, mask_zero=mask_zero), fn.GRU(H, return_sequences=True), fn.Dense(C)],
                          input_shape=(None,), seed=seed)
    model.compile(optimizer=fn.optim.SGD(lr=0.0), loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    rng = np.random.default_rng(seed)
    model.set_weights([rng.normal(0.0, 0.6, w.shape).astype(np.float32) for w in model.get_weights()])
    return model


def _reference(ps, ids, labels, masked=True):
    """Mean over real steps of −log softmax(logits)[label], and the per-step argmax hits."""
    x = ps["layers.0.weight"][ids]
    local = {k.split(".", 2)[2]: v for k, v in ps.items() if k.startswith("layers.1.")}
    mask = ids != 0 if masked else np.ones(ids.shape, bool)
    h = rr.run("gru", x, local, True, False, mask=mask)
    logits = h @ ps["layers.2.weight"] + ps["layers.2.bias"]
    shifted = logits - logits.max(axis=-1, keepdims=True)
    logp = shifted - np.log(np.exp(shifted).sum(axis=-1, keepdims=True))
    nll = -np.take_along_axis(logp, labels[..., None], axis=-1)[..., 0]
    hits = logits.argmax(axis=-1) == labels
    return nll[mask].mean(), hits[mask].mean()


@pytest.mark.parametrize("masked", [True, False])
def test_per_step_cross_entropy_matches_numpy_and_its_gradients(masked):
    model = _tagger(mask_zero=masked)
    params = {n: a.astype(np.float64) for n, a, _ in model._net.tensors()}
    want_loss, want_acc = _reference(params, IDS, LABELS, masked)
    loss, acc = model.evaluate(IDS, LABELS)
    assert loss == pytest.approx(want_loss, rel=1e-5)
    assert acc == pytest.approx(want_acc)
    assert model.train_step(IDS, LABELS) == pytest.approx(want_loss, rel=1e-5)
    grads = dict(model._net.grads())
    ref.assert_grads_match(grads, params, lambda ps: _reference(ps, IDS, LABELS, masked)[0], "per-step CE")
    if masked:
        assert np.all(grads["layers.0.weight"][0] == 0.0)  # padding reaches no weight


def test_labels_of_padded_steps_do_not_matter():
    model = _tagger()
    other = LABELS.copy()
    other[IDS == 0] = 4
    assert model.evaluate(IDS, LABELS) == model.evaluate(IDS, other)
    probs = model.predict_proba(IDS)
    assert probs.shape == (4, 5, C)
    np.testing.assert_allclose(probs.sum(axis=-1), 1.0, rtol=1e-5)  # the softmax runs per step
    np.testing.assert_array_equal(model.predict(IDS), probs.argmax(axis=-1))


def test_bad_per_step_labels_are_named_errors_and_change_nothing():
    model = _tagger()
    model.compile(optimizer=fn.optim.Adam(lr=0.1), loss="cross_entropy")
    before = [w.copy() for w in model.get_weights()]
    bad = LABELS.copy()
    bad[1, 3] = C
    with pytest.raises(fn.LabelError, match="sample 1, step 3"):
        model.fit(IDS, bad, verbose=0)
    with pytest.raises(fn.ShapeError, match=r"expected \(N, 5\)"):
        model.fit(IDS, LABELS[:, :4], verbose=0)
    with pytest.raises(fn.DTypeError):
        model.fit(IDS, LABELS + 0.5, verbose=0)
    for a, b in zip(before, model.get_weights()):
        np.testing.assert_array_equal(a, b)


def test_a_tiny_tagger_learns_to_tag_each_token_by_the_one_before():
    """Tag t is the previous token's id mod 3 (0 at the first step): the recurrence must
    carry one step of memory. Sequences of lengths 3..8, padded with id 0."""
    rng = np.random.default_rng(0)
    n, t = 600, 8
    ids = np.zeros((n, t), np.int64)
    tags = np.zeros((n, t), np.int64)
    for i in range(n):
        k = rng.integers(3, t + 1)
        ids[i, :k] = rng.integers(1, 10, size=k)
        tags[i, 1:k] = ids[i, :k - 1] % 3
    model = fn.Sequential([fn.Embedding(10, 8, mask_zero=True), fn.LSTM(16, return_sequences=True), fn.Dense(3)],
                          input_shape=(None,), seed=1)
    model.compile(optimizer=fn.optim.Adam(lr=0.02), loss="cross_entropy", metrics=["accuracy"])
    model.fit(ids[:500], tags[:500], epochs=30, batch_size=50, verbose=0)
    _, acc = model.evaluate(ids[500:], tags[500:])
    assert acc > 0.95, acc


def test_per_step_mse_is_the_mean_over_unmasked_steps():
    """Masking → LSTM(return_sequences) → Dense(2), MSE on [N, T, 2]: Keras' masked mean
    (each real step's mean over the last axis, averaged over the real steps)."""
    model = fn.Sequential([fn.Masking(0.0), fn.LSTM(3, return_sequences=True), fn.Dense(2)], input_shape=(None, 2),
                          seed=0)
    model.compile(optimizer=fn.optim.SGD(lr=0.0), loss="mse")
    rng = np.random.default_rng(9)
    model.set_weights([rng.normal(0.0, 0.6, w.shape).astype(np.float32) for w in model.get_weights()])
    x = np.zeros((3, 4, 2), np.float32)
    for i, n in enumerate((4, 2, 1)):
        x[i, :n] = rng.normal(size=(n, 2))
    y = rng.normal(size=(3, 4, 2)).astype(np.float32)
    mask = np.any(x != 0.0, axis=-1)
    params = {n: a.astype(np.float64) for n, a, _ in model._net.tensors()}

    def loss(ps):
        local = {k.split(".", 2)[2]: v for k, v in ps.items() if k.startswith("layers.1.")}
        h = rr.run("lstm", x.astype(np.float64), local, True, False, mask=mask)
        out = h @ ps["layers.2.weight"] + ps["layers.2.bias"]
        return ((out - y) ** 2).mean(axis=-1)[mask].mean()

    assert model.evaluate(x, y) == pytest.approx(loss(params), rel=1e-5)
    assert model.train_step(x, y) == pytest.approx(loss(params), rel=1e-5)
    ref.assert_grads_match(dict(model._net.grads()), params, loss, "masked mse")
    other = y.copy()
    other[~mask] = 100.0
    assert model.evaluate(x, other) == model.evaluate(x, y)
