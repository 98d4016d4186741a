"""ferronn.diagnostics: layer outputs, dead units, saturation, the gradient monitor and
the finite-difference gradient check, on a model that uses every layer kind."""

from __future__ import annotations

import numpy as np
import pytest

import ferronn as fn
from ferronn import diagnostics as dg


def every_layer(dropout: float = 0.3) -> list:
    """One of every layer kind (and every activation), ending in log-probabilities for "nll"."""
    return [
        fn.Dense(8, activation="tanh", input_dim=5, kernel_regularizer=fn.regularizers.l2(1e-3)),
        fn.BatchNorm(),
        fn.Dense(8, bias_regularizer=fn.regularizers.l1(1e-3)), fn.ReLU(),
        fn.Residual([fn.LayerNorm(), fn.Dense(8, activation="gelu"), fn.Dropout(dropout)]),
        fn.PReLU(),
        fn.GLU(6),
        fn.Residual([fn.RMSNorm(), fn.SwiGLU(4)]),                # 6 -> 4: a projection
        fn.GeGLU(6), fn.ReGLU(6), fn.Gated(6, gate=fn.LeakyReLU(0.2)),
        fn.PReLU(shared=True, init=0.1),
        fn.LeakyReLU(0.1), fn.ELU(0.5), fn.SiLU(), fn.Softplus(), fn.Sigmoid(), fn.Tanh(),
        fn.GELU(approximate="tanh"), fn.Identity(), fn.Activation("elu", alpha=1.5),
        fn.Dense(6, activation="leaky_relu"), fn.Dense(6, activation="sigmoid"),
        fn.Dense(6, activation="silu"), fn.Dense(6, activation="softplus"), fn.Dense(6, activation="elu"),
        fn.Softmax(temperature=2.0),
        fn.Dense(3), fn.LogSoftmax(),
    ]


def data(seed: int = 0, n: int = 64):
    rng = np.random.default_rng(seed)
    return rng.normal(size=(n, 5)).astype(np.float32), rng.integers(0, 3, n)


def trained(dropout: float = 0.3, seed: int = 0) -> fn.Sequential:
    X, y = data(seed)
    model = fn.Sequential(every_layer(dropout), seed=seed)
    model.compile(optimizer=fn.optim.Adam(1e-2), loss="nll")
    model.fit(X, y, epochs=3, batch_size=16, verbose=0, seed=seed)  # moves BatchNorm's running stats, Adam's state
    return model


# ---------------------------------------------------------------- layer_outputs

def test_layer_outputs_match_the_core():
    model = trained()
    X, _ = data(1)
    outs = dg.layer_outputs(model, X)
    assert list(outs) == [f"layers.{i}" for i in range(len(model.layers))]
    np.testing.assert_allclose(list(outs.values())[-1], model.predict_raw(X), rtol=1e-4, atol=1e-5)
    in64 = dg.layer_outputs(model, X, dtype=np.float64)
    np.testing.assert_allclose(list(in64.values())[-1], model.predict_raw(X), rtol=1e-4, atol=1e-5)

    # Every intermediate output equals the prediction of the model's prefix, run by the core.
    tensors = {n: a for n, a, _ in model._net.tensors()}
    for k in range(1, len(model.layers)):
        prefix = fn.Sequential([fn.layers.from_spec(layer.spec()) for layer in model.layers[:k]])
        prefix.compile(optimizer="sgd", loss="mse")
        prefix.build(5)
        prefix.set_weights([tensors[n] for n, _, _ in prefix._net.tensors()])
        want = prefix.predict_raw(X)
        # float32 sums in another order: differences relative to the layer's scale
        np.testing.assert_allclose(outs[f"layers.{k - 1}"], want, rtol=1e-4, atol=1e-5 * max(1.0, np.abs(want).max()),
                                   err_msg=f"layers.{k - 1}")

    nested = dg.layer_outputs(model, X, nested=True)
    assert "layers.4.block.1" in nested and "layers.7.block.1" in nested
    assert list(nested)[-1] == f"layers.{len(model.layers) - 1}"


def test_layer_outputs_needs_a_built_model():
    with pytest.raises(fn.NotFittedError):
        dg.layer_outputs(fn.Sequential([fn.Dense(2)]), np.zeros((1, 3)))


# ---------------------------------------------------------------- dead units

def _relu_net(bias: float) -> tuple[fn.Sequential, np.ndarray]:
    X = np.random.default_rng(0).normal(size=(200, 10)).astype(np.float32)
    model = fn.Sequential([fn.Dense(32, activation="relu", input_dim=10), fn.Dense(16), fn.ReLU(), fn.Dense(1)],
                          seed=0)
    model.compile(optimizer="sgd", loss="mse")
    model.layers[0].bias = np.full(32, bias, dtype=np.float32)
    model.layers[1].bias = np.full(16, bias, dtype=np.float32)
    return model, X


def test_dead_relu_units():
    model, X = _relu_net(bias=-10.0)  # every pre-activation far below 0
    dead = dg.dead_units(model, X)
    assert set(dead) == {"layers.0", "layers.2"}  # only the ReLU-family layers
    assert dead["layers.0"] > 0.5 and dead["layers.2"] > 0.5

    model, X = _relu_net(bias=0.0)
    healthy = dg.dead_units(model, X)
    assert healthy["layers.0"] < 0.1 and healthy["layers.2"] < 0.1


def test_dead_units_partial_and_nested():
    model, X = _relu_net(bias=0.0)
    b = np.zeros(32, dtype=np.float32)
    b[:8] = -50.0  # kill exactly a quarter of the first layer
    model.layers[0].bias = b
    assert dg.dead_units(model, X)["layers.0"] == pytest.approx(0.25)

    nested = fn.Sequential([fn.Dense(4, input_dim=3), fn.Residual([fn.Dense(4, activation="relu")]), fn.ReGLU(2)])
    nested.compile(optimizer="sgd", loss="mse")
    assert set(dg.dead_units(nested, np.ones((5, 3)))) == {"layers.1.block.0", "layers.2"}


# ---------------------------------------------------------------- activation stats

def test_activation_stats_saturated_tanh():
    X = np.random.default_rng(0).normal(size=(100, 8)).astype(np.float32)
    model = fn.Sequential([fn.Dense(16, activation="tanh", input_dim=8), fn.Dense(8), fn.Sigmoid(), fn.Dense(2)],
                          seed=0)
    model.compile(optimizer="sgd", loss="mse")
    stats = dg.activation_stats(model, X)
    assert stats["layers.0"]["activation"] == "tanh" and stats["layers.2"]["activation"] == "sigmoid"
    assert stats["layers.0"]["saturated"] < 0.2
    assert stats["layers.1"]["saturated"] is None and stats["layers.3"]["saturated"] is None
    outs = dg.layer_outputs(model, X)
    for name in outs:
        assert stats[name]["mean"] == pytest.approx(float(outs[name].mean()), abs=1e-6)
        assert stats[name]["std"] == pytest.approx(float(outs[name].std()), abs=1e-6)

    model.layers[0].weights = model.layers[0].weights * 50.0  # drive tanh into its tails
    model.layers[1].weights = model.layers[1].weights * 50.0  # and the sigmoid
    stats = dg.activation_stats(model, X)
    assert stats["layers.0"]["saturated"] > 0.9
    assert stats["layers.2"]["saturated"] > 0.8
    out = dg.layer_outputs(model, X)["layers.0"]
    assert stats["layers.0"]["saturated"] == pytest.approx(float(np.mean(np.abs(out) > dg.TANH_SATURATION)))


# ---------------------------------------------------------------- gradient monitor

def _small_model(seed=0):
    model = fn.Sequential([fn.Dense(16, activation="relu"), fn.BatchNorm(), fn.Residual([fn.Dense(8)]),
                           fn.Dense(3)], seed=seed)
    model.compile(optimizer=fn.optim.SGD(0.05, momentum=0.9), loss="cross_entropy")
    return model


def test_gradient_monitor_records_every_layer_and_leaves_fit_unchanged():
    X, y = data(0, n=256)
    plain, watched = _small_model(), _small_model()
    h1 = plain.fit(X, y, epochs=4, batch_size=16, verbose=0, seed=3)
    monitor = dg.GradientMonitor(every=1)
    h2 = watched.fit(X, y, epochs=4, batch_size=16, verbose=0, seed=3, callbacks=[monitor])
    assert h1.history == h2.history
    for a, b in zip(plain.get_weights(), watched.get_weights()):
        np.testing.assert_array_equal(a, b)

    layers = {n.rsplit(".", 1)[0] for n, _ in watched._net.grads()}
    assert layers == {"layers.0", "layers.1", "layers.2.block.0", "layers.2.projection", "layers.3"}
    hist = monitor.history
    n = len(hist["step"])
    assert n >= 1 and all(len(v) == n for v in hist.values())
    for layer in layers:
        for kind in ("grad_norm", "weight_norm"):
            values = np.array(hist[f"{layer}/{kind}"])
            assert np.all(np.isfinite(values)) and np.all(values > 0), (layer, kind)
    assert hist["step"][-1] == 4 * 16 and hist["epoch"][-1] == 3 and hist["batch"][-1] == 15
    assert all(0 <= e <= 3 for e in hist["epoch"])
    # every=1 records at the last on_batch_end: the norms of the final weights and last gradients.
    final = dict(watched._net.grads())
    total = np.sqrt(sum(float((g.astype(np.float64) ** 2).sum()) for g in final.values()))
    assert hist["grad_norm"][-1] == pytest.approx(total, rel=1e-6)
    w = watched.layers[0].get_params()
    want = np.sqrt(sum(float((a.astype(np.float64) ** 2).sum()) for a in w.values()))
    assert hist["layers.0/weight_norm"][-1] == pytest.approx(want, rel=1e-6)


def test_gradient_monitor_is_bounded_and_per_tensor():
    X, y = data(0, n=256)
    model = _small_model()
    monitor = dg.GradientMonitor(every=20, per="tensor")
    model.fit(X, y, epochs=5, batch_size=16, verbose=0, seed=3, callbacks=[monitor])
    steps = monitor.history["step"]
    assert 1 <= len(steps) <= 5 * 16 // 20 + 1
    assert all(b - a >= 20 for a, b in zip(steps, steps[1:]))
    assert "layers.0.weight/grad_norm" in monitor.history and "layers.1.gamma/weight_norm" in monitor.history
    assert monitor.batch_every is None  # it never asks fit for extra callback calls
    with pytest.raises(fn.ConfigError):
        dg.GradientMonitor(every=0)


# ---------------------------------------------------------------- gradient check

@pytest.fixture(scope="module")
def grad_model():
    return trained(dropout=0.0, seed=1)


@pytest.mark.parametrize("training", [True, False])
def test_check_gradients_passes_on_every_layer_kind(grad_model, training):
    X, y = data(1)
    net = grad_model._net
    before, steps, twin = net.tensors(), net.optimizer_steps, net.copy()
    report = dg.check_gradients(grad_model, X[:16], y[:16], training=training)
    # The model is untouched: weights, running statistics, optimizer state (the next step is the same).
    assert grad_model._net is net and net.optimizer_steps == steps
    for (name, a, _), (_, b, _) in zip(before, net.tensors()):
        np.testing.assert_array_equal(a, b, err_msg=name)
    xs, ys = X[16:32], y[16:32].astype(np.int64)
    assert net.train_step(xs, ys) == twin.train_step(xs, ys)
    for (name, a), (_, b) in zip(net.params(), twin.params()):
        np.testing.assert_array_equal(a, b, err_msg=name)
    assert report.passed, str(report)
    assert report.max_error < 5e-3, str(report)  # typical: 1e-5 .. 2e-3 (float32 back-propagation)
    assert set(report.errors) == {n for n, _ in grad_model._net.grads()}
    assert all(report.checked[n] > 0 for n in report.errors)
    assert report.loss[0] == pytest.approx(report.loss[1], rel=1e-5)
    assert "passed" in str(report)


def test_check_gradients_fails_on_wrong_gradients(grad_model, monkeypatch):
    X, y = data(1)
    real = dg._backprop_grads

    def off_by_five_percent(model, x, t, training):
        loss, grads = real(model, x, t, training)
        grads["layers.6.weight"] = grads["layers.6.weight"] * 1.05
        return loss, grads

    monkeypatch.setattr(dg, "_backprop_grads", off_by_five_percent)
    report = dg.check_gradients(grad_model, X[:16], y[:16])
    assert not report.passed
    assert [n for n, e in report.errors.items() if e > report.tol] == ["layers.6.weight"]
    assert "FAILED" in str(report)


def test_check_gradients_fails_against_a_perturbed_reference(grad_model, monkeypatch):
    """A reference whose GLU gate is sigmoid(1.2·x) disagrees with the core's gradients."""
    X, y = data(1)
    sigmoid = dg.ACTIVATIONS_64["sigmoid"]
    monkeypatch.setitem(dg.ACTIVATIONS_64, "sigmoid", lambda x, a: sigmoid(1.2 * x, a))
    report = dg.check_gradients(grad_model, X[:16], y[:16])
    assert not report.passed
    assert report.errors["layers.6.weight"] > report.tol


def test_check_gradients_refuses_random_dropout():
    X, y = data(0)
    model = fn.Sequential([fn.Dense(4, input_dim=5), fn.Dropout(0.5), fn.Dense(3)])
    model.compile(optimizer="sgd", loss="cross_entropy")
    with pytest.raises(fn.ConfigError):
        dg.check_gradients(model, X[:8], y[:8])
    assert dg.check_gradients(model, X[:8], y[:8], training=False).passed


@pytest.mark.parametrize("loss", ["mse", "binary_cross_entropy", "cross_entropy"])
def test_check_gradients_other_losses(loss):
    rng = np.random.default_rng(2)
    X = rng.normal(size=(12, 4)).astype(np.float32)
    out = {"mse": 2, "binary_cross_entropy": 1, "cross_entropy": 3}[loss]
    y = {"mse": rng.normal(size=(12, 2)).astype(np.float32),
         "binary_cross_entropy": rng.integers(0, 2, 12).astype(np.float32),
         "cross_entropy": rng.integers(0, 3, 12)}[loss]
    model = fn.Sequential([fn.Dense(6, activation="tanh", input_dim=4), fn.LayerNorm(), fn.SwiGLU(5), fn.Dense(out)],
                          seed=0)
    model.compile(optimizer="adam", loss=loss)
    report = dg.check_gradients(model, X, y, n_checks=None)
    assert report.passed, str(report)
