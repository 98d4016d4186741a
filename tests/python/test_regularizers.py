"""L1/L2 weight penalties: the reported loss and the gradients against a float64
reference (finite differences of loss + penalty), and their plumbing."""

from __future__ import annotations

import numpy as np
import pytest

import ferronn as fn

import reference as ref

R = fn.regularizers


def _penalty(w, l1, l2):
    w = np.asarray(w, np.float64)
    return l1 * np.abs(w).sum() + l2 * np.square(w).sum()


def _case(kernel_reg, bias_reg, seed=0):
    rng = np.random.default_rng(seed)
    model = fn.Sequential([fn.Dense(5, activation="tanh", kernel_regularizer=kernel_reg, bias_regularizer=bias_reg),
                           fn.Dense(2, kernel_regularizer=kernel_reg)])
    model.compile(optimizer=fn.optim.SGD(lr=0.0), loss="mse")
    model.build(3, seed=0)
    ws = [rng.normal(0, 0.8, s).astype(np.float32) for s in [(3, 5), (5,), (5, 2), (2,)]]
    for w in ws:  # keep every weight off L1's kink at 0
        w[np.abs(w) < 1e-2] = 0.5
    model.set_weights(ws)
    x = rng.normal(size=(6, 3)).astype(np.float32)
    y = rng.normal(size=(6, 2)).astype(np.float32)
    return model, ws, x, y


@pytest.mark.parametrize("l1,l2", [(0.0, 0.01), (0.02, 0.0), (0.03, 0.05)])
def test_penalty_in_loss_and_gradients(l1, l2):
    reg = R.l1_l2(l1=l1, l2=l2)
    model, ws, x, y = _case(reg, R.l2(0.1))
    w64 = [w.astype(np.float64) for w in ws]

    def objective(weights):
        data = ref.mlp_loss(x, y, weights, ["tanh", "identity"], "mse")
        return (data + _penalty(weights[0], l1, l2) + _penalty(weights[1], 0.0, 0.1)
                + _penalty(weights[2], l1, l2))

    loss = model.train_step(x, y)
    assert abs(loss - objective(w64)) <= 1e-5 * objective(w64)
    assert abs(model.evaluate(x, y) - objective(w64)) <= 1e-5 * objective(w64)
    for i, (name, g) in enumerate(model._net.grads()):
        def f(p, i=i):
            trial = list(w64)
            trial[i] = p
            return objective(trial)
        fd = ref.numeric_grad(f, w64[i])
        assert ref.rel_err(g, fd) <= 1e-3, name


def test_the_penalty_changes_the_gradient_by_its_closed_form():
    plain, ws, x, y = _case(None, None)
    reg, _, _, _ = _case(R.l1_l2(l1=0.05, l2=0.2), None)
    plain.train_step(x, y)
    reg.train_step(x, y)
    g_plain, g_reg = plain._net.grads()[0][1], reg._net.grads()[0][1]
    want = 0.05 * np.sign(ws[0]) + 2 * 0.2 * ws[0]
    np.testing.assert_allclose(g_reg - g_plain, want, rtol=1e-5, atol=1e-6)


def test_regularized_training_shrinks_weights():
    X, y = fn.datasets.digits()
    norms = []
    for reg in (None, R.l2(1e-2)):
        model = fn.Sequential([fn.Dense(32, activation="relu", kernel_regularizer=reg), fn.Dense(10)])
        model.compile(optimizer=fn.optim.Adam(1e-2), loss="cross_entropy")
        model.fit(X, y, epochs=5, seed=0, verbose=0)
        norms.append(np.linalg.norm(model.layers[0].weights))
    assert norms[1] < 0.7 * norms[0]


def test_spec_and_file_round_trip(tmp_path):
    layer = fn.Dense(4, kernel_regularizer=R.l1(0.01), bias_regularizer="l2")
    spec = layer.spec()
    assert spec["kernel_regularizer"] == {"l1": 0.01, "l2": 0.0}
    assert spec["bias_regularizer"] == {"l1": 0.0, "l2": 0.01}
    assert fn.layers.from_spec(spec).spec() == spec
    assert fn.SwiGLU(3, kernel_regularizer=R.l2(0.5)).spec()["kernel_regularizer"] == {"l1": 0.0, "l2": 0.5}
    model, _, x, y = _case(R.l2(0.3), None)
    model.save(tmp_path / "m.safetensors")
    back = fn.load(tmp_path / "m.safetensors")
    assert back.evaluate(x, y) == model.evaluate(x, y)
    assert back.layers[0].kernel_regularizer == R.l2(0.3)


@pytest.mark.parametrize("bad,err", [(lambda: R.l2(-1.0), fn.ConfigError), (lambda: R.l1(float("nan")), fn.ConfigError),
                                     (lambda: R.get("l3"), fn.UnknownNameError),
                                     (lambda: fn.Dense(3, kernel_regularizer={"l4": 1.0}), fn.ConfigError),
                                     (lambda: fn.Dense(3, kernel_regularizer=0.1), fn.ConfigError)])
def test_bad_regularizers(bad, err):
    with pytest.raises(err):
        bad()


def test_penalty_callable_matches_numpy():
    w = np.array([[1.0, -2.0], [0.5, 0.0]])
    assert R.l1_l2(0.1, 0.2)(w) == pytest.approx(0.1 * 3.5 + 0.2 * 5.25)
