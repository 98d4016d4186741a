"""``_core.Network.loss_and_grads``: the full-batch objective and its flat gradient
(what ferronn.sklearn's L-BFGS-B drives), against central finite differences of a
float64 reference of the same objective; ``flat_params`` / ``set_flat_params``."""

from __future__ import annotations

import numpy as np
import pytest

import ferronn as fn

import reference as ref

RNG = np.random.default_rng(7)
X = RNG.normal(size=(9, 4)).astype(np.float32)
W = RNG.uniform(0.2, 2.0, size=9).astype(np.float32)
TARGETS = {
    "mse": RNG.normal(size=(9, 2)).astype(np.float32),
    "binary_cross_entropy": (RNG.random(size=(9, 2)) > 0.5).astype(np.float32),
    "cross_entropy": RNG.integers(0, 2, size=9).astype(np.int64),
}
L1, L2 = 0.003, 0.02


def _net(loss: str, hidden_act: str):
    reg = fn.regularizers.l1_l2(l1=L1, l2=L2)
    model = fn.Sequential([fn.layers.Dense(5, activation=hidden_act, kernel_regularizer=reg),
                           fn.layers.Dense(2, kernel_regularizer=fn.regularizers.l2(L2))], input_dim=4, seed=3)
    model.compile(optimizer="sgd", loss=loss)
    return model._require_built("test")


def _objective64(net, loss: str, hidden_act: str, weights):
    """The float64 objective of ``net``'s architecture as a function of the flat vector:
    Σ_i w_i · loss_i / n + Σ penalties (the core's definition, written independently)."""
    names = [(name, a.shape) for name, a in net.params()]
    n = len(X)

    def f(theta: np.ndarray) -> float:
        params, at = {}, 0
        for name, shape in names:
            size = int(np.prod(shape))
            params[name] = theta[at:at + size].reshape(shape)
            at += size
        out = ref.mlp_forward(X, [params["layers.0.weight"], params["layers.0.bias"], params["layers.1.weight"],
                                  params["layers.1.bias"]], [hidden_act, "identity"])
        per_sample = [ref.loss(loss, out[i:i + 1], TARGETS[loss][i:i + 1]) for i in range(n)]
        w = np.ones(n) if weights is None else weights.astype(np.float64)
        data = float(np.dot(w, per_sample)) / n
        k0, k1 = params["layers.0.weight"], params["layers.1.weight"]
        return data + L1 * np.abs(k0).sum() + L2 * (k0 ** 2).sum() + L2 * (k1 ** 2).sum()

    return f


@pytest.mark.parametrize("weighted", [False, True], ids=["unweighted", "weighted"])
@pytest.mark.parametrize("hidden_act", ["tanh", "sigmoid"])
@pytest.mark.parametrize("loss", sorted(TARGETS))
def test_loss_and_grads_match_float64_finite_differences(loss, hidden_act, weighted):
    net = _net(loss, hidden_act)
    weights = W if weighted else None
    theta = net.flat_params().astype(np.float64)
    f = _objective64(net, loss, hidden_act, weights)
    got_loss, got_grad = net.loss_and_grads(X, TARGETS[loss], weights)
    assert got_grad.dtype == np.float32 and got_grad.shape == theta.shape
    assert got_loss == pytest.approx(f(theta), rel=1e-5)
    want = ref.numeric_grad(f, theta, h=1e-6)
    assert ref.rel_err(got_grad, want) < 1e-4, (got_grad, want)


def test_evaluating_changes_nothing_and_matches_evaluate():
    net = _net("mse", "tanh")
    before = net.flat_params()
    loss, grad = net.loss_and_grads(X, TARGETS["mse"])
    again, grad2 = net.loss_and_grads(X, TARGETS["mse"])
    assert again == loss and np.array_equal(grad, grad2)
    np.testing.assert_array_equal(net.flat_params(), before)
    assert net.optimizer_steps == 0
    assert loss == pytest.approx(net.evaluate(X, TARGETS["mse"]).mean_loss, rel=1e-6)


def test_batch_norm_running_statistics_are_left_alone():
    model = fn.Sequential([fn.layers.Dense(3), fn.layers.BatchNorm(), fn.layers.Dense(1)], input_dim=4, seed=0)
    model.compile(optimizer="sgd", loss="mse")
    net = model._require_built("test")
    net.training = True
    buffers = [(n, a) for n, a, trainable in net.tensors() if not trainable]
    assert buffers
    net.loss_and_grads(X, np.ascontiguousarray(TARGETS["mse"][:, :1]))
    for name, a in buffers:
        np.testing.assert_array_equal(net.get_param(name), a)


def test_flat_params_are_the_tensors_in_layer_order_and_can_be_set():
    net = _net("cross_entropy", "tanh")
    flat = net.flat_params()
    np.testing.assert_array_equal(flat, np.concatenate([a.ravel() for _, a in net.params()]))
    new = np.arange(flat.size, dtype=np.float32) / flat.size
    net.set_flat_params(new)
    np.testing.assert_array_equal(net.flat_params(), new)
    np.testing.assert_array_equal(net.get_param("layers.0.weight").ravel(), new[:20])


def test_bad_input_is_refused_and_nothing_changes():
    net = _net("mse", "tanh")
    before = net.flat_params()
    with pytest.raises(fn.ShapeError, match="parameter values"):
        net.set_flat_params(np.zeros(before.size + 1, dtype=np.float32))
    bad = X.copy()
    bad[0, 0] = np.nan
    with pytest.raises(fn.NonFiniteError):
        net.loss_and_grads(bad, TARGETS["mse"])
    with pytest.raises(fn.ShapeError):
        net.loss_and_grads(X[:3], TARGETS["mse"])
    with pytest.raises(fn.ShapeError):
        net.loss_and_grads(X, TARGETS["mse"], np.ones(2, dtype=np.float32))
    np.testing.assert_array_equal(net.flat_params(), before)
