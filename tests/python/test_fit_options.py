"""fit's data options: sample_weight, class_weight, validation_split, initial_epoch,
the learning rate in History, chunked epochs; Ctrl-C and divergence during fit."""

from __future__ import annotations

import os
import signal
import threading
import time
import warnings

import numpy as np
import pytest

import ferronn as fn
from ferronn import callbacks as C
from ferronn.errors import ConfigError, NonFiniteError, ShapeError
from ferronn.training import split_indices

RNG = np.random.default_rng(7)
X = RNG.normal(size=(8, 4)).astype(np.float32)
Y = np.array([0, 1, 2, 0, 1, 2, 0, 0])
W = np.array([0.5, 1.0, 2.0, 0.0, 1.5, 1.0, 3.0, 0.25], dtype=np.float32)


def classifier(lr=0.0, seed=0, out=3):
    model = fn.Sequential([fn.Dense(out)], seed=seed)
    model.compile(optimizer=fn.optim.SGD(lr), loss="cross_entropy", metrics=["accuracy"])
    model.build(X.shape[1])
    return model


def cross_entropy(model, x, y):
    """Per-sample cross-entropy of the model's current logits, in float64."""
    z = model.predict_raw(x).astype(np.float64)
    m = z.max(axis=1, keepdims=True)
    lse = m[:, 0] + np.log(np.exp(z - m).sum(axis=1))
    return lse - z[np.arange(len(y)), y]


# ------------------------------------------------------------------ weights

def test_sample_weight_in_evaluate_and_train_step_matches_numpy():
    model = classifier()
    loss = cross_entropy(model, X, Y)
    assert model.evaluate(X, Y)[0] == pytest.approx(loss.mean(), rel=1e-5)
    assert model.evaluate(X, Y, sample_weight=W)[0] == pytest.approx((W * loss).sum() / len(X), rel=1e-5)
    assert model.evaluate(X, Y, sample_weight=W, return_dict=True)["loss"] == pytest.approx((W * loss).sum() / 8,
                                                                                             rel=1e-5)
    # train_step reports the loss before its (here: zero) update.
    assert model.train_step(X, Y, sample_weight=W) == pytest.approx((W * loss).sum() / len(X), rel=1e-5)


def test_mse_sample_weight_matches_numpy():
    rng = np.random.default_rng(1)
    x, y = rng.normal(size=(10, 3)).astype(np.float32), rng.normal(size=(10, 2)).astype(np.float32)
    w = rng.random(10).astype(np.float32)
    model = fn.Sequential([fn.Dense(2)], seed=0)
    model.compile(optimizer=fn.optim.SGD(0.0), loss="mse")
    model.build(3)
    per_sample = ((model.predict_raw(x).astype(np.float64) - y) ** 2).mean(axis=1)  # mean over outputs
    assert model.evaluate(x, y, sample_weight=w) == pytest.approx((w * per_sample).sum() / 10, rel=1e-5)


@pytest.mark.parametrize("batch_size", [8, 3])
def test_class_weight_times_sample_weight_scales_the_training_loss(batch_size):
    model = classifier(lr=0.0)  # lr 0: the epoch's loss is that of the initial weights
    loss = cross_entropy(model, X, Y)
    cw = {0: 2.0, 2: 0.5}  # class 1 not named: weight 1
    per_class = np.array([2.0, 1.0, 0.5])[Y]
    h = model.fit(X, Y, epochs=1, batch_size=batch_size, class_weight=cw, sample_weight=W, seed=0, verbose=0)
    assert h.history["loss"][0] == pytest.approx((W * per_class * loss).sum() / len(X), rel=1e-5)
    h = model.fit(X, Y, epochs=1, batch_size=batch_size, class_weight=cw, seed=0, verbose=0)
    assert h.history["loss"][0] == pytest.approx((per_class * loss).sum() / len(X), rel=1e-5)
    h = model.fit(X, Y, epochs=1, batch_size=batch_size, seed=0, verbose=0)
    assert h.history["loss"][0] == pytest.approx(loss.mean(), rel=1e-5)


def test_class_weight_changes_what_is_learned():
    """Weighting one class up makes the model predict it more often."""
    x = np.random.default_rng(3).normal(size=(200, 2)).astype(np.float32)
    y = (np.arange(200) % 2).astype(np.int64)  # labels independent of x
    counts = []
    for cw in ({0: 1.0, 1: 1.0}, {0: 1.0, 1: 4.0}):
        m = fn.Sequential([fn.Dense(2)], seed=0)
        m.compile(optimizer=fn.optim.Adam(0.05), loss="cross_entropy")
        m.fit(x, y, epochs=20, batch_size=50, class_weight=cw, seed=0, verbose=0)
        counts.append(int((m.predict(x) == 1).sum()))
    assert counts[1] > 180 and counts[1] > counts[0]


@pytest.mark.parametrize("kwargs,exc,match", [
    ({"class_weight": {3: 1.0}}, ConfigError, r"class 3.*0\.\.2"),
    ({"class_weight": {-1: 1.0}}, ConfigError, r"class -1"),
    ({"class_weight": {"a": 1.0}}, ConfigError, r"class 'a'"),
    ({"class_weight": {0: -1.0}}, ConfigError, r"class_weight\[0\].*>= 0"),
    ({"class_weight": {0: float("nan")}}, ConfigError, r"finite"),
    ({"class_weight": [1.0, 2.0]}, ConfigError, r"dict"),
    ({"sample_weight": np.ones(5)}, ShapeError, r"5 weights but X has 8"),
    ({"sample_weight": -W}, ConfigError, r"negative weight"),
    ({"sample_weight": np.where(W > 1, np.nan, W)}, NonFiniteError, r"NaN"),
    ({"validation_split": 1.0}, ConfigError, r"validation_split"),
    ({"validation_split": -0.1}, ConfigError, r"validation_split"),
    ({"initial_epoch": -1}, ConfigError, r"initial_epoch"),
    ({"callbacks": [print]}, ConfigError, r"Callback"),
])
def test_bad_fit_options_are_rejected_before_anything_changes(kwargs, exc, match):
    model = fn.Sequential([fn.Dense(3)], seed=0)
    model.compile(optimizer=fn.optim.SGD(0.1), loss="cross_entropy")
    with pytest.raises(exc, match=match):
        model.fit(X, Y, verbose=0, **kwargs)
    assert not model.built  # the rejected first fit built nothing


def test_class_weight_with_binary_cross_entropy():
    y = (np.arange(8) % 2).astype(np.float32)
    model = fn.Sequential([fn.Dense(1)], seed=0)
    model.compile(optimizer=fn.optim.SGD(0.0), loss="bce")
    model.build(4)
    z = model.predict_raw(X).ravel().astype(np.float64)
    loss = np.logaddexp(0, z) - z * y
    h = model.fit(X, y, epochs=1, batch_size=8, class_weight={1: 3.0}, verbose=0)
    assert h.history["loss"][0] == pytest.approx((np.where(y == 1, 3.0, 1.0) * loss).mean(), rel=1e-5)
    with pytest.raises(ConfigError, match=r"class 2"):
        model.fit(X, y, class_weight={2: 1.0}, verbose=0)


def test_class_weight_needs_class_labels():
    model = fn.Sequential([fn.Dense(2)], seed=0)
    model.compile(optimizer="sgd", loss="mse")
    with pytest.raises(ConfigError, match=r"class_weight needs class labels"):
        model.fit(X, np.zeros((8, 2)), class_weight={0: 1.0}, verbose=0)


# ------------------------------------------------------------------ validation_split

def test_split_indices_by_hand():
    # Unstratified: the last fraction, floor(n·(1-f)) samples train (Keras).
    tr, va = split_indices(None, 10, 0.25)
    assert tr.tolist() == list(range(7)) and va.tolist() == [7, 8, 9]
    # Stratified: per class the last round(f·n_c), at least 1 for n_c >= 2, never all.
    labels = np.array([0, 1, 0, 2, 0, 1, 0, 3, 0, 1, 0, 2, 0, 0, 0, 1, 0, 1])
    # class 0 (10): last 2 -> 14, 16; class 1 (5): last 1 -> 17; class 2 (2): last 1 -> 11; class 3 (1): none
    tr, va = split_indices(labels, len(labels), 0.2)
    assert va.tolist() == [11, 14, 16, 17]
    assert sorted(tr.tolist() + va.tolist()) == list(range(len(labels)))


def test_validation_split_holds_out_the_last_samples_of_each_class():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(30, 4)).astype(np.float32)
    y = np.array([0] * 15 + [1] * 10 + [2] * 5)
    rng.shuffle(y)
    model = classifier()
    h = model.fit(x, y, epochs=1, batch_size=64, validation_split=0.2, shuffle=True, seed=0, verbose=0)
    val = np.zeros(30, bool)
    for c, k in ((0, 3), (1, 2), (2, 1)):
        val[np.flatnonzero(y == c)[-k:]] = True
    # lr = 0: the training and validation losses are those of the initial weights on each part.
    loss = cross_entropy(model, x, y)
    assert h.history["val_loss"][0] == pytest.approx(loss[val].mean(), rel=1e-5)
    assert h.history["loss"][0] == pytest.approx(loss[~val].mean(), rel=1e-5)
    assert h.params["samples"] == 24


def test_validation_split_regression_and_validation_data_precedence():
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(10, 3)).astype(np.float32), rng.normal(size=(10, 1)).astype(np.float32)
    model = fn.Sequential([fn.Dense(1)], seed=0)
    model.compile(optimizer=fn.optim.SGD(0.0), loss="mse")
    h = model.fit(x, y, epochs=1, validation_split=0.25, verbose=0)
    assert h.history["val_loss"][0] == pytest.approx(model.evaluate(x[7:], y[7:]), rel=1e-5)
    assert h.history["loss"][0] == pytest.approx(model.evaluate(x[:7], y[:7]), rel=1e-5)
    h = model.fit(x, y, epochs=1, validation_split=0.25, validation_data=(x[:2], y[:2]), verbose=0)
    assert h.history["val_loss"][0] == pytest.approx(model.evaluate(x[:2], y[:2]), rel=1e-5)
    assert h.history["loss"][0] == pytest.approx(model.evaluate(x, y), rel=1e-5)  # nothing held out
    w = np.linspace(0, 2, 10).astype(np.float32)
    h = model.fit(x, y, epochs=1, validation_data=(x[:4], y[:4], w[:4]), verbose=0)
    assert h.history["val_loss"][0] == pytest.approx(model.evaluate(x[:4], y[:4], sample_weight=w[:4]), rel=1e-5)
    with pytest.raises(ConfigError, match=r"leaves 0 samples for training"):
        model.fit(x[:1], y[:1], validation_split=0.5, verbose=0)


# ------------------------------------------------------------------ epochs

def _digits(n=300):
    x, y = fn.datasets.digits()
    return x[:n], y[:n]


def _mlp(seed=0, optimizer=None):
    model = fn.Sequential([fn.Dense(16, activation="relu"), fn.Dense(10)], seed=seed)
    model.compile(optimizer=optimizer or fn.optim.Adam(1e-2), loss="cross_entropy", metrics=["accuracy"])
    return model


def test_initial_epoch_resumes_like_keras():
    x, y = _digits()
    a, b = _mlp(), _mlp()
    seen = []
    ha = a.fit(x, y, epochs=5, batch_size=32, seed=1, verbose=0)
    b.fit(x, y, epochs=3, batch_size=32, seed=1, verbose=0)
    hb = b.fit(x, y, epochs=5, initial_epoch=3, batch_size=32, seed=1, verbose=0,
               callbacks=[C.LambdaCallback(on_epoch_begin=lambda e, logs: seen.append((e, b._net.epoch)))])
    assert ha.epoch == [0, 1, 2, 3, 4] and hb.epoch == [3, 4]
    assert seen == [(3, 3), (4, 4)]  # schedules see the epoch index
    assert hb.history["loss"] == ha.history["loss"][3:]
    for wa, wb in zip(a.get_weights(), b.get_weights()):
        np.testing.assert_array_equal(wa, wb)
    # Without initial_epoch the count continues; initial_epoch >= epochs trains nothing.
    assert b.fit(x, y, epochs=2, batch_size=32, seed=1, verbose=0).epoch == [5, 6]
    assert b.fit(x, y, epochs=2, initial_epoch=2, verbose=0).epoch == []
    assert b._epochs_trained == 7


def test_lr_is_logged_per_epoch():
    x, y = _digits(100)
    h = _mlp(optimizer=fn.optim.Adam(3e-3)).fit(x, y, epochs=3, verbose=0, seed=0)
    assert h.history["lr"] == pytest.approx([3e-3] * 3)
    model = _mlp(optimizer=fn.optim.SGD(0.1))
    model.fit(x, y, epochs=1, verbose=0, seed=0)
    model._net.lr_scale = 0.5
    assert model.fit(x, y, epochs=2, verbose=0, seed=0).history["lr"] == pytest.approx([0.05, 0.05])


def test_chunked_epochs_equal_whole_epochs_and_batch_end_is_rate_limited():
    x, y = fn.datasets.digits()
    calls = {1: [], None: [], 3: []}
    weights = {}
    for every in calls:
        model = _mlp(seed=2)
        cb = C.LambdaCallback(on_batch_end=lambda b, logs, every=every: calls[every].append((b, logs["batches"])),
                              batch_every=every)
        h = model.fit(x, y, epochs=2, batch_size=16, seed=3, verbose=0, callbacks=[cb])
        weights[every] = model.get_weights()
        assert len(h.epoch) == 2
    steps = -(-len(x) // 16)
    assert [b for b, _ in calls[1]] == list(range(steps)) * 2  # one call per batch
    assert all(n == b + 1 for b, n in calls[1])
    assert 2 <= len(calls[None]) < steps  # chunks of several batches
    assert calls[None][-1][0] == steps - 1
    ends = [b for b, _ in calls[3]]
    assert max(np.diff([-1] + ends[: len(ends) // 2])) <= 3
    for every in (None, 3):  # same shuffles, same steps, however the epoch is cut
        for a, b in zip(weights[1], weights[every]):
            np.testing.assert_array_equal(a, b)


def test_stop_training_from_batch_end_drops_the_partial_epoch():
    x, y = fn.datasets.digits()
    model = _mlp()
    state = {"epochs": 0}

    def on_batch_end(batch, logs):
        if state["epochs"] == 2 and batch >= 10:
            model.stop_training = True

    cb = C.LambdaCallback(on_batch_end=on_batch_end, batch_every=1,
                          on_epoch_end=lambda e, logs: state.update(epochs=state["epochs"] + 1))
    steps_before = model._net.optimizer_steps if model.built else 0
    h = model.fit(x, y, epochs=10, batch_size=32, seed=0, verbose=0, callbacks=[cb])
    assert h.epoch == [0, 1] and model._epochs_trained == 2
    assert model._net.optimizer_steps - steps_before == 2 * 57 + 11  # the partial epoch's steps are kept


# ------------------------------------------------------------------ divergence

def _regression(n=64):
    rng = np.random.default_rng(0)
    x = rng.normal(size=(n, 3)).astype(np.float32)
    return x, x @ np.array([1.0, -2.0, 0.5], np.float32)


def test_huge_learning_rate_stops_with_a_warning_and_finite_weights():
    x, y = _regression()
    model = fn.Sequential([fn.Dense(1)], seed=0)
    model.compile(optimizer=fn.optim.SGD(1e6), loss="mse")
    records = []  # (epoch, batch, loss, weights) after every batch
    epoch = [0]
    cb = C.LambdaCallback(on_epoch_begin=lambda e, logs: epoch.__setitem__(0, e), batch_every=1,
                          on_batch_end=lambda b, logs: records.append((epoch[0], b, logs["loss"], model.get_weights())))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        h = model.fit(x, y, epochs=50, batch_size=16, seed=0, verbose=0, callbacks=[cb])
    bad = [r for r in records if not np.isfinite(r[2])]
    assert len(bad) == 1 and records[-1] is bad[0], "training must stop at the first non-finite step"
    e, b = bad[0][:2]
    messages = [str(w.message) for w in caught if issubclass(w.category, RuntimeWarning)]
    assert any(f"epoch {e}, batch {b}" in m and "non-finite" in m for m in messages), messages
    assert e >= 1 and h.epoch == list(range(e))  # the diverged epoch is not recorded
    final = model.get_weights()
    assert all(np.isfinite(w).all() for w in final)
    before = records[-2][3]  # the weights after the last good step
    for a, w in zip(before, final):
        np.testing.assert_array_equal(a, w)
    assert all(np.isfinite(v).all() for v in h.history["loss"])
    # The model still works.
    assert np.isfinite(model.predict(x)).all()


def test_divergence_weights_equal_manual_steps():
    """The same steps run one by one with train_step stop at the same weights."""
    x, y = _regression()
    models = []
    for _ in range(2):
        m = fn.Sequential([fn.Dense(1)], seed=0)
        m.compile(optimizer=fn.optim.SGD(1e6), loss="mse")
        m.build(3)
        models.append(m)
    with pytest.warns(RuntimeWarning, match=r"non-finite .* at epoch \d+, batch \d+"):
        models[0].fit(x, y, epochs=100, batch_size=16, shuffle=False, verbose=0)
    manual, steps, diverged = models[1], 0, False
    while not diverged and steps < 100 * 4:
        for i in range(0, 64, 16):
            if not np.isfinite(manual.train_step(x[i:i + 16], y[i:i + 16])):
                diverged = True  # that step was refused
                break
            steps += 1
    assert diverged and steps == models[0]._net.optimizer_steps == manual._net.optimizer_steps
    for a, b in zip(models[0].get_weights(), manual.get_weights()):
        assert np.isfinite(a).all()
        np.testing.assert_array_equal(a, b)


def test_divergence_leaves_batchnorm_statistics_finite():
    """The refused step must not leave its mark in BatchNorm's running statistics either."""
    x, y = _regression()
    model = fn.Sequential([fn.Dense(4), fn.BatchNorm(), fn.Dense(1)], seed=0)
    model.compile(optimizer=fn.optim.SGD(1e6), loss="mse")
    with pytest.warns(RuntimeWarning, match=r"non-finite"):
        model.fit(x, y, epochs=50, batch_size=16, seed=0, verbose=0)
    weights = model.get_weights()  # gamma, beta, running_mean, running_var included
    assert all(np.isfinite(w).all() for w in weights)
    assert len(weights) == 2 + 4 + 2
    # (predict may still overflow: the last good weights are finite but huge, and
    # inference uses the lagging running statistics instead of the batch's own.)


# ------------------------------------------------------------------ Ctrl-C

def test_sigint_during_fit_returns_the_history_so_far():
    x, y = fn.datasets.digits()
    x, y = np.repeat(x, 3, axis=0), np.repeat(y, 3)
    model = _mlp()
    completed = []
    cb = C.LambdaCallback(on_epoch_end=lambda e, logs: completed.append(e))
    timer = threading.Timer(0.5, os.kill, (os.getpid(), signal.SIGINT))
    start = time.perf_counter()
    timer.start()
    try:
        with pytest.warns(RuntimeWarning, match=r"interrupted"):
            h = model.fit(x, y, epochs=100_000, batch_size=32, seed=0, verbose=0, callbacks=[cb])
    finally:
        timer.cancel()
    assert time.perf_counter() - start < 30
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler  # handler restored
    assert len(completed) >= 1 and h.epoch == completed == list(range(len(completed)))
    assert model._epochs_trained == len(completed)
    assert all(len(v) == len(completed) and np.isfinite(v).all() for v in h.history.values())
    assert model.predict(x[:10]).shape == (10,)
    again = model.fit(x[:500], y[:500], epochs=1, verbose=0, seed=0)
    assert again.epoch == [len(completed)] and np.isfinite(again.history["loss"][0])


def test_keyboard_interrupt_raised_in_a_callback_is_caught():
    x, y = _digits()
    model = _mlp()
    ended = []

    def boom(batch, logs):
        if model._epochs_trained == 2:
            raise KeyboardInterrupt

    cb = C.LambdaCallback(on_batch_end=boom, on_train_end=lambda logs: ended.append(True))
    with pytest.warns(RuntimeWarning, match=r"interrupted.*2 completed epoch"):
        h = model.fit(x, y, epochs=5, seed=0, verbose=0, callbacks=[cb])
    assert h.epoch == [0, 1] and ended == [True]
    assert model.evaluate(x, y)[1] > 0
