"""The gradient a GradientMonitor (and ``net.grads()``) reports after a chunk of
several batches includes the L2 term at the weights before the last step,
checked against a float64 NumPy gradient at those weights (found by replaying
all but the last batch)."""

import numpy as np
import pytest

import ferronn as fn
from ferronn import diagnostics as dg

L2 = 0.05
N, BATCH = 64, 8


def _model():
    model = fn.Sequential([fn.Dense(3, kernel_regularizer=fn.regularizers.l2(L2))])
    model.compile(optimizer=fn.optim.SGD(0.1), loss="mse")
    model.build(4, seed=0)
    return model


def _data():
    rng = np.random.default_rng(1)
    return rng.normal(size=(N, 4)).astype(np.float32), rng.normal(size=(N, 3)).astype(np.float32)


def _reference(weights, x, y):
    """d/dW, d/db of mean((xW + b - y)^2) + L2·ΣW², in float64."""
    w, b = (np.asarray(a, np.float64) for a in weights)
    x64, y64 = x.astype(np.float64), y.astype(np.float64)
    d = 2.0 * (x64 @ w + b - y64) / y64.size
    return {"layers.0.weight": x64.T @ d + 2 * L2 * w, "layers.0.bias": d.sum(axis=0)}


def test_monitor_gradient_is_at_the_weights_before_the_last_step():
    x, y = _data()
    before = _model()  # all batches but the last, in the same order
    before.fit(x[:-BATCH], y[:-BATCH], epochs=1, batch_size=BATCH, shuffle=False, verbose=0)
    want = _reference(before.get_weights(), x[-BATCH:], y[-BATCH:])

    model = _model()
    monitor = dg.GradientMonitor(every=1)
    model.fit(x, y, epochs=1, batch_size=BATCH, shuffle=False, verbose=0, callbacks=[monitor])
    assert monitor.history["step"][-1] == N // BATCH
    got = dict(model._net.grads())
    for name, g in want.items():
        np.testing.assert_allclose(got[name], g, rtol=1e-5, atol=1e-6, err_msg=name)
    norm = np.sqrt(sum(float((g ** 2).sum()) for g in want.values()))
    assert monitor.history["grad_norm"][-1] == pytest.approx(norm, rel=1e-5)


def test_record_grads_is_an_opt_in_that_changes_no_weights():
    x, y = _data()
    plain, recorded = _model(), _model()
    assert not plain._net.record_grads
    recorded._net.record_grads = True
    assert recorded._net.record_grads
    for m in (plain, recorded):
        m.fit(x, y, epochs=2, batch_size=BATCH, shuffle=True, seed=3, verbose=0)
    for a, b in zip(plain.get_weights(), recorded.get_weights()):
        np.testing.assert_array_equal(a, b)
