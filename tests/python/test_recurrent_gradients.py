"""Gradients of SimpleRNN, LSTM and GRU (and of Embedding's table) against central
differences of float64 references (tests/python/recurrent_reference.py, PyTorch's
equations).

Each recurrent layer runs inside ``Dense(T·F) → Reshape((T, F)) → layer →
[Flatten] → Dense(3)`` with an MSE loss: the first Dense's weight gradient is
xᵀ·(the layer's input gradient), so checking it checks the layer's input
gradient; the recurrent tensors are checked directly. A train_step with
SGD(lr=0) computes the gradients.
"""

from __future__ import annotations

import numpy as np
import pytest

import ferronn as fn

import recurrent_reference as rr
import reference as ref

BATCH, IN, OUT, T, F, H = 3, 2, 3, 4, 3, 5
KINDS = {"rnn": fn.SimpleRNN, "lstm": fn.LSTM, "gru": fn.GRU}
CASES = [(cell, seq, back) for cell in KINDS for seq in (False, True) for back in (False, True)]


def _net_out(x, params, cell, seq, back):
    h = x @ params["layers.0.weight"] + params["layers.0.bias"]
    local = {k.split(".", 2)[2]: v for k, v in params.items() if k.startswith("layers.2.")}
    y = rr.run(cell, h.reshape(len(h), T, F), local, seq, back).reshape(len(h), -1)
    last = "layers.4" if seq else "layers.3"
    return y @ params[f"{last}.weight"] + params[f"{last}.bias"]


def _case(cell, seq, back, seed=0, **kwargs):
    layer = KINDS[cell](H, return_sequences=seq, go_backwards=back, **kwargs)
    return rr.gradient_case(layer, seq, seed, BATCH, IN, OUT, T, F)


@pytest.mark.parametrize("cell,seq,back", CASES)
def test_gradients_match_finite_differences(cell, seq, back):
    model, params, x, y = _case(cell, seq, back)
    x64, y64 = x.astype(np.float64), y.astype(np.float64)

    def loss(ps):
        return ref.loss("mse", _net_out(x64, ps, cell, seq, back), y64)

    value = model.train_step(x, y)
    assert abs(value - loss(params)) <= 1e-5 * abs(loss(params)) + 1e-6
    np.testing.assert_allclose(model.predict_raw(x), _net_out(x64, params, cell, seq, back), rtol=1e-4, atol=1e-5)
    grads = dict(model._net.grads())
    last = "layers.4" if seq else "layers.3"
    expected = {"layers.0.weight", "layers.0.bias", f"{last}.weight", f"{last}.bias"}
    expected |= {f"layers.2.{n}" for n in ("weight_ih", "weight_hh", "bias_ih", "bias_hh")}
    assert set(grads) == expected
    ref.assert_grads_match(grads, params, loss, cell)


def test_regularizers_add_their_penalties_and_gradients():
    """Kernel, recurrent and bias L2 penalties land on weight_ih, weight_hh and both biases."""
    model, params, x, y = _case("gru", False, False, kernel_regularizer=fn.regularizers.l2(0.1),
                                recurrent_regularizer=fn.regularizers.l2(0.2), bias_regularizer=fn.regularizers.l2(0.3))
    x64, y64 = x.astype(np.float64), y.astype(np.float64)
    coef = {"weight_ih": 0.1, "weight_hh": 0.2, "bias_ih": 0.3, "bias_hh": 0.3}

    def loss(ps):
        pen = sum(c * float((ps[f"layers.2.{n}"] ** 2).sum()) for n, c in coef.items())
        return ref.loss("mse", _net_out(x64, ps, "gru", False, False), y64) + pen

    assert abs(model.train_step(x, y) - loss(params)) <= 1e-5 * loss(params)
    for tensor, g in model._net.grads():
        fd = ref.numeric_grad(lambda p, t=tensor: loss({**params, t: p}), params[tensor])
        assert ref.rel_err(g, fd, floor=1e-6) <= 1e-3, tensor
    report = fn.diagnostics.check_gradients(model, x, y, n_checks=None)
    assert report.passed, report


def test_stacked_layers_and_embedding_pass_check_gradients():
    """fn.diagnostics covers the new kinds: Embedding → LSTM(seq) → GRU → Dense."""
    model = fn.Sequential([fn.Embedding(7, 3), fn.LSTM(4, return_sequences=True), fn.GRU(3, go_backwards=True),
                           fn.Dense(2)], input_shape=(5,))
    model.compile(optimizer="sgd", loss="cross_entropy")
    rng = np.random.default_rng(3)
    x = rng.integers(0, 7, size=(6, 5))
    y = rng.integers(0, 2, size=6)
    report = fn.diagnostics.check_gradients(model, x, y, n_checks=None)
    assert report.passed, report
    assert {"layers.0.weight", "layers.1.weight_hh", "layers.2.bias_hh"} <= set(report.errors)


def test_embedding_table_gradient_sums_repeated_ids():
    model = fn.Sequential([fn.Embedding(5, 2), fn.Flatten(), fn.Dense(1)], input_shape=(4,))
    model.compile(optimizer=fn.optim.SGD(lr=0.0), loss="mse")
    x = np.array([[0, 3, 3, 1], [4, 4, 4, 0]])
    y = np.array([[0.5], [-1.0]], dtype=np.float32)
    params = {n: a.astype(np.float64) for n, a, _ in model._net.tensors()}

    def loss(ps):
        out = ps["layers.0.weight"][x].reshape(2, -1) @ ps["layers.2.weight"] + ps["layers.2.bias"]
        return ref.loss("mse", out, y.astype(np.float64))

    model.train_step(x, y)
    g = dict(model._net.grads())["layers.0.weight"]
    fd = ref.numeric_grad(lambda p: loss({**params, "layers.0.weight": p}), params["layers.0.weight"])
    assert ref.rel_err(g, fd, floor=1e-6) <= 1e-4
    assert np.all(g[2] == 0.0)  # id 2 never appears
