"""What the masking tests of Bidirectional and of global pooling share: a batch of
sequences padded in every way (at the end, at the start, at both ends, not at all, down to
one real step), weights drawn large enough that every step matters, and one direction's
tensors picked out of a Bidirectional's; and the finite-difference check of a masked layer
behind `Embedding(mask_zero=True)`."""

import numpy as np
import pytest

import ferronn as fn

import reference as ref

KINDS = {"rnn": fn.SimpleRNN, "lstm": fn.LSTM, "gru": fn.GRU}
F, H, T = 3, 4, 6
#: (first real step, number of real steps) per sample: padded at the end, at the
#: start, not at all, one real step, padded at both ends.
SPANS = [(0, 4), (2, 4), (0, 6), (0, 1), (1, 3)]


def padded(seed=0):
    """`[len(SPANS), T, F]` float32 sequences: normal values on the real steps, 0 elsewhere."""
    rng = np.random.default_rng(seed)
    x = np.zeros((len(SPANS), T, F), np.float32)
    for i, (a, n) in enumerate(SPANS):
        x[i, a:a + n] = rng.normal(size=(n, F))  # never exactly 0: every real step stays
    return x


def randomise(model, seed=1):
    """Every tensor of `model` drawn from N(0, 0.5²)."""
    rng = np.random.default_rng(seed)
    model.set_weights([rng.normal(0.0, 0.5, w.shape).astype(np.float32) for w in model.get_weights()])


def direction(p, name):
    """The tensors of one direction (`"forward"` / `"backward"`), without its prefix."""
    return {k[len(name) + 1:]: v for k, v in p.items() if k.startswith(name + ".")}


def check_embedded_gradients(middle, run, label):
    """`Embedding(6, F, mask_zero=True)` → `middle` (a list of layers, the first holding
    every tensor) → `Dense(2)`, MSE, on ids padded in every way: the first train_step's loss
    and every tensor's gradient against central differences of the float64 loss in which
    `run(embedded x, the first middle layer's tensors, mask)` gives what enters the Dense;
    the padding id's row of the table gets no gradient, and check_gradients passes."""
    model = fn.Sequential([fn.Embedding(6, F, mask_zero=True), *middle, fn.Dense(2)], input_shape=(5,), seed=0)
    model.compile(optimizer=fn.optim.SGD(lr=0.0), loss="mse")
    randomise(model, 5)
    ids = np.array([[3, 1, 0, 0, 0], [0, 0, 2, 5, 4], [1, 0, 2, 0, 3], [0, 0, 0, 0, 0]])
    y = np.random.default_rng(6).normal(size=(4, 2)).astype(np.float32)
    params = {n: a.astype(np.float64) for n, a, _ in model._net.tensors()}
    last = f"layers.{len(middle) + 1}"

    def loss(ps):
        inner = {k[len("layers.1."):]: v for k, v in ps.items() if k.startswith("layers.1.")}
        h = run(ps["layers.0.weight"][ids], inner, ids != 0).reshape(len(ids), -1)
        return ref.loss("mse", h @ ps[f"{last}.weight"] + ps[f"{last}.bias"], y.astype(np.float64))

    assert model.train_step(ids, y) == pytest.approx(loss(params), rel=1e-5)
    grads = dict(model._net.grads())
    assert np.all(grads["layers.0.weight"][0] == 0.0)
    ref.assert_grads_match(grads, params, loss, label)
    report = fn.diagnostics.check_gradients(model, ids, y, n_checks=None)  # the NumPy reference masks too
    assert report.passed, report


def train_padded(threads, layers, input_shape, optimizer):
    """`layers` → `Dense(3)` (seed 3), cross-entropy, trained 2 epochs on 12 padded batches
    with `threads` threads (restored after); its predictions and weights."""
    before = fn.get_num_threads()
    try:
        fn.set_num_threads(threads)
        model = fn.Sequential([*layers, fn.Dense(3)], input_shape=input_shape, seed=3)
        model.compile(optimizer=optimizer, loss="cross_entropy")
        x = np.concatenate([padded(s) for s in range(12)])
        y = np.random.default_rng(7).integers(0, 3, len(x))
        model.fit(x, y, epochs=2, batch_size=16, verbose=0, seed=1)
        return [model.predict_raw(x)] + model.get_weights()
    finally:
        fn.set_num_threads(before)
