"""Cross-entropy over per-step scores ``[N, T, C]`` with per-step labels ``[N, T]``
(a tagger: recurrent layers with ``return_sequences`` then Dense): padded steps
(Embedding(mask_zero=True) / Masking) are left out of the loss and the accuracy, and
the loss is the mean over the real steps, as Keras averages a masked loss. So are MSE,
binary cross-entropy and Poisson on per-step outputs ``[N, T, D]``; one-hot steps
``[N, T, C]`` score as their labels."""

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


# Float64 per-element losses of float targets (PyTorch's definitions: BCE on logits,
# Poisson NLL of log-rates), each step's loss their mean over the last axis.
_ELEMENT_LOSS = {
    "mse": lambda z, y: (z - y) ** 2,
    "binary_crossentropy": lambda z, y: np.maximum(z, 0) - z * y + np.log1p(np.exp(-np.abs(z))),
    "poisson_nll": lambda z, y: np.exp(z) - y * z,
}


def _masked_values_case(loss, seed=0):
    """Masking → LSTM(return_sequences) → Dense(2) on padded sequences of lengths 4, 2, 1
    (and targets for every step, padded ones included)."""
    model = fn.Sequential([fn.Masking(0.0), fn.LSTM(3, return_sequences=True), fn.Dense(2)], input_shape=(None, 2),
                          seed=seed)
    model.compile(optimizer=fn.optim.SGD(lr=0.0), loss=loss)
    rng = np.random.default_rng(9)
    model.set_weights([rng.normal(0.0, 0.6, w.shape).astype(np.float32) for w in model.get_weights()])
    x = np.zeros((3, 4, 2), np.float32)
    for i, n in enumerate((4, 2, 1)):
        x[i, :n] = rng.normal(size=(n, 2))
    y = rng.uniform(0.0, 1.0, size=(3, 4, 2)).astype(np.float32)
    if loss == "binary_crossentropy":
        y = np.round(y)  # 0/1 targets, so the accuracy is meaningful
    elif loss == "poisson_nll":
        y = np.floor(3.0 * y)  # counts
    return model, x, y, np.any(x != 0.0, axis=-1)


def _masked_values_loss(loss, x, y, mask, ps):
    local = {k.split(".", 2)[2]: v for k, v in ps.items() if k.startswith("layers.1.")}
    h = rr.run("lstm", x.astype(np.float64), local, True, False, mask=mask)
    out = h @ ps["layers.2.weight"] + ps["layers.2.bias"]
    return _ELEMENT_LOSS[loss](out, y.astype(np.float64)).mean(axis=-1)[mask].mean()


@pytest.mark.parametrize("loss", list(_ELEMENT_LOSS))
def test_per_step_float_losses_are_the_mean_over_unmasked_steps(loss):
    """MSE, binary cross-entropy and Poisson on [N, T, 2]: Keras' masked mean (each real
    step's mean over the last axis, averaged over the real steps), and its gradients."""
    model, x, y, mask = _masked_values_case(loss)
    params = {n: a.astype(np.float64) for n, a, _ in model._net.tensors()}
    want = _masked_values_loss(loss, x, y, mask, params)
    got = model.evaluate(x, y)
    assert (got[0] if isinstance(got, (list, tuple)) else got) == pytest.approx(want, rel=1e-5)
    assert model.train_step(x, y) == pytest.approx(want, rel=1e-5)
    ref.assert_grads_match(dict(model._net.grads()), params, lambda ps: _masked_values_loss(loss, x, y, mask, ps),
                           f"masked {loss}")
    other = y.copy()
    other[~mask] = 1.0 - other[~mask] if loss == "binary_crossentropy" else other[~mask] + 5.0
    assert model.evaluate(x, other) == model.evaluate(x, y)  # padded targets do not count


@pytest.mark.parametrize("loss", list(_ELEMENT_LOSS))
def test_a_padded_sequence_scores_as_the_unpadded_one(loss):
    model, x, y, mask = _masked_values_case(loss)
    for i in range(len(x)):
        n = int(mask[i].sum())
        padded, alone = model.evaluate(x[i:i + 1], y[i:i + 1]), model.evaluate(x[i:i + 1, :n], y[i:i + 1, :n])
        np.testing.assert_allclose(padded, alone, rtol=1e-6)


def test_binary_accuracy_counts_the_outputs_of_real_steps_only():
    model, x, y, mask = _masked_values_case("binary_crossentropy")
    model.compile(optimizer=fn.optim.SGD(lr=0.0), loss="binary_crossentropy", metrics=["accuracy"])
    logits = model.predict_raw(x)
    hits = (logits > 0) == (y >= 0.5)
    _, acc = model.evaluate(x, y)
    assert acc == pytest.approx(hits[mask].mean())
    assert acc != pytest.approx(hits.mean())  # the padded steps' outputs would change it here


def test_per_step_one_hot_targets_score_as_their_labels():
    """categorical_crossentropy with one-hot steps [N, T, C] (Keras' form, e.g.
    to_categorical of the labels) gives what the sparse labels [N, T] give, in evaluate,
    train_step and fit."""
    onehot = np.eye(C, dtype=np.float32)[LABELS]
    a, b = _tagger(), _tagger()
    for model in (a, b):
        model.compile(optimizer=fn.optim.SGD(lr=0.1), loss="categorical_crossentropy", metrics=["accuracy"])
    assert a.evaluate(IDS, onehot) == b.evaluate(IDS, LABELS)
    assert a.train_step(IDS, onehot) == b.train_step(IDS, LABELS)
    a.fit(IDS, onehot, epochs=2, batch_size=2, verbose=0, shuffle=False)
    b.fit(IDS, LABELS, epochs=2, batch_size=2, verbose=0, shuffle=False)
    for wa, wb in zip(a.get_weights(), b.get_weights()):
        np.testing.assert_array_equal(wa, wb)


def test_bad_per_step_one_hot_targets_are_named_errors_and_change_nothing():
    model = _tagger()
    model.compile(optimizer=fn.optim.Adam(lr=0.1), loss="categorical_crossentropy")
    before = [w.copy() for w in model.get_weights()]
    soft = np.eye(C, dtype=np.float32)[LABELS]
    soft[1, 3] = 1.0 / C
    with pytest.raises(fn.ShapeError, match="sample 1, step 3"):
        model.fit(IDS, soft, verbose=0)
    with pytest.raises(fn.ShapeError, match=rf"gives {C} classes per step"):
        model.fit(IDS, np.eye(C + 1, dtype=np.float32)[LABELS], verbose=0)
    for a, b in zip(before, model.get_weights()):
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("onehot", [False, True])
def test_class_weight_with_per_step_labels_is_not_supported(onehot):
    """Keras 3 turns class_weight into one weight per sample from argmax(y, axis=-1),
    which for per-step labels is no class at all; ferronn says so instead."""
    model = _tagger()
    before = [w.copy() for w in model.get_weights()]
    y = np.eye(C, dtype=np.float32)[LABELS] if onehot else LABELS
    with pytest.raises(fn.NotSupportedError, match="class_weight with per-step labels"):
        model.fit(IDS, y, class_weight={0: 2.0}, verbose=0)
    for a, b in zip(before, model.get_weights()):
        np.testing.assert_array_equal(a, b)


def test_validation_split_of_per_step_labels_takes_the_last_samples():
    model = _tagger()
    ids, labels = np.tile(IDS, (3, 1)), np.tile(LABELS, (3, 1))
    history = model.fit(ids, labels, validation_split=0.25, epochs=1, verbose=0)
    assert history.history["val_loss"][0] == pytest.approx(model.evaluate(ids[9:], labels[9:])[0], rel=1e-6)


@pytest.mark.parametrize("first", [False, True])
def test_compiled_metrics_count_the_real_steps_as_the_loss(first):
    """Regression metrics of per-step outputs carrying a mask average over the real steps,
    so metrics=["mse"] equals the masked MSE loss; with ``first`` the mask is made after
    another layer (ReLU zeroes the padded steps' negative values, then Masking)."""
    model, x, y, mask = _masked_values_case("mse")
    if first:
        model = fn.Sequential([fn.ReLU(), *model.layers], input_shape=(None, 2), seed=0)
        x = np.where(mask[..., None], np.abs(x), -1.0).astype(np.float32)
    model.compile(optimizer=fn.optim.SGD(lr=0.0), loss="mse", metrics=["mse", "mae"])
    loss, mse, mae = model.evaluate(x, y)
    assert mse == pytest.approx(loss, rel=1e-6)
    err = model.predict(x) - y
    assert mae == pytest.approx(np.abs(err)[mask].mean(), rel=1e-6)
    assert mae != pytest.approx(np.abs(err).mean(), rel=1e-3)  # the padded steps would change it


def test_label_metrics_of_per_step_labels_score_each_real_step():
    model = _tagger()
    model.compile(optimizer=fn.optim.SGD(lr=0.0), loss="cross_entropy", metrics=["accuracy", "f1", "top_k_accuracy"])
    _, acc, f1, top5 = model.evaluate(IDS, LABELS)
    mask = IDS != 0
    pred = model.predict(IDS)
    assert acc == pytest.approx((pred == LABELS)[mask].mean())
    assert f1 == pytest.approx(fn.metrics.f1_score(LABELS[mask], pred[mask]))
    assert top5 == 1.0  # C = 5 classes: every real step's label is among the top 5
    unmasked = _tagger(mask_zero=False)
    unmasked.compile(optimizer=fn.optim.SGD(lr=0.0), loss="cross_entropy", metrics=["f1"])
    _, f1_all = unmasked.evaluate(IDS, LABELS)
    assert f1_all == pytest.approx(fn.metrics.f1_score(LABELS.ravel(), unmasked.predict(IDS).ravel()))
