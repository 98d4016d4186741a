"""Behaviour of the layer catalogue: dropout masks, BatchNorm's running statistics,
residual connections in a deep network, model files, summary(), parameter access,
specs, argument checking and the train/eval modes.

Numbers are compared with the float64 reference in tests/python/reference.py.
"""

from __future__ import annotations

import re

import numpy as np
import pytest

import ferronn as fn

import reference as ref


def _model(layers, in_dim, loss="mse", optimizer=None, seed=0):
    model = fn.Sequential(layers)
    model.compile(optimizer=optimizer if optimizer is not None else fn.optim.SGD(lr=0.0), loss=loss)
    model.build(in_dim, seed=seed)
    return model


def every_kind():
    """One of each layer kind (Softmax / LogSoftmax as hidden layers, fine with mse)."""
    return [
        fn.Dense(8), fn.ReLU(),  # fused
        fn.Dense(8), fn.LeakyReLU(0.2),
        fn.Dense(8, activation=fn.ELU(0.5)),
        fn.GELU(), fn.GELU(approximate="tanh"), fn.SiLU(), fn.Sigmoid(), fn.Tanh(), fn.Softplus(), fn.Identity(),
        fn.PReLU(), fn.PReLU(shared=True),
        fn.GLU(6), fn.SwiGLU(6), fn.GeGLU(6), fn.ReGLU(6),
        fn.Dropout(0.2), fn.BatchNorm(), fn.LayerNorm(), fn.RMSNorm(),
        fn.Residual([fn.Dense(6, activation="tanh"), fn.BatchNorm(momentum=0.3)]),
        fn.Residual([fn.Dense(4), fn.ReLU()]),  # 6 -> 4: projection
        fn.Softmax(), fn.LogSoftmax(temperature=2.0),
        fn.Dense(3),
    ]


IN_DIM = 5


def _data(n=64, in_dim=IN_DIM, out_dim=3, seed=0):
    rng = np.random.default_rng(seed)
    return rng.normal(size=(n, in_dim)).astype(np.float32), rng.normal(size=(n, out_dim)).astype(np.float32)


# -- Dropout -------------------------------------------------------------------


def test_dropout_mask_statistics_scale_and_inference():
    p = 0.3
    model = _model([fn.Dropout(p)], 1000)
    x = np.ones((100, 1000), np.float32)
    out = model(x, training=True)
    n = out.size
    dropped = np.mean(out == 0.0)
    se = np.sqrt(p * (1 - p) / n)
    assert abs(dropped - p) <= 3 * se, f"dropped fraction {dropped} vs {p} (se {se:.2e})"
    kept = out[out != 0.0]
    np.testing.assert_allclose(kept, 1.0 / (1.0 - p), rtol=1e-6)
    assert np.all(kept == kept[0])
    # Masks are not the same for every row (or column).
    assert not np.all((out[0] == 0) == (out[1] == 0))
    assert not np.all((out[:, 0] == 0) == (out[:, 1] == 0))
    # Inference is the identity.
    np.testing.assert_array_equal(model.predict_raw(x), x)
    np.testing.assert_array_equal(model(x, training=False), x)
    z = np.random.default_rng(0).normal(size=(7, 1000)).astype(np.float32)
    np.testing.assert_array_equal(model.predict_raw(z), z)
    model.eval()
    np.testing.assert_array_equal(model(x), x)


def test_dropout_mask_depends_on_seed_and_step():
    x = np.ones((100, 1000), np.float32)
    a, b, c = (_model([fn.Dropout(0.3)], 1000, seed=s) for s in (0, 0, 1))
    ma = a(x, training=True)
    np.testing.assert_array_equal(b(x, training=True), ma)  # same seed, same step: same mask
    np.testing.assert_array_equal(a(x, training=True), ma)  # a forward pass does not advance the step
    assert not np.array_equal(c(x, training=True), ma)  # another seed: another mask
    a.train_step(x, x)  # advances the step
    after = a(x, training=True)
    assert not np.array_equal(after, ma)
    assert abs(np.mean(after == 0) - 0.3) <= 3 * np.sqrt(0.21 / after.size)
    b.train_step(x, x)
    np.testing.assert_array_equal(b(x, training=True), after)  # and replays the same way


def test_dropout_gradient_uses_the_mask():
    """The gradient of a Dense before a Dropout is the finite difference of the loss with the
    same mask (read off the model's own training-mode forward pass)."""
    rng = np.random.default_rng(3)
    model = _model([fn.Dense(40), fn.Dropout(0.5)], 4)
    w = rng.normal(size=(4, 40)).astype(np.float32)
    b = rng.normal(size=40).astype(np.float32)
    model.set_weights([w, b])
    x = rng.normal(size=(6, 4)).astype(np.float32)
    y = rng.normal(size=(6, 40)).astype(np.float32)
    z = x.astype(np.float64) @ w + b
    out = model(x, training=True)  # the mask of the coming train_step (same step)
    mask = np.where(out == 0.0, 0.0, 1.0 / 0.5)
    assert 0.3 < np.mean(mask == 0) < 0.7
    np.testing.assert_allclose(out, z * mask, rtol=1e-5, atol=1e-6)
    loss = model.train_step(x, y)

    def f(wp):
        return ref.loss("mse", (x.astype(np.float64) @ wp + b) * mask, y)

    assert abs(loss - f(w.astype(np.float64))) <= 1e-5 * loss
    g = dict(model._net.grads())["layers.0.weight"]
    assert ref.rel_err(g, ref.numeric_grad(f, w)) <= 1e-3


# -- BatchNorm running statistics ----------------------------------------------


def test_batch_norm_running_statistics_follow_pytorch():
    m = 0.2
    model = _model([fn.BatchNorm(momentum=m), fn.Dense(2)], 3, optimizer=fn.optim.Adam(1e-2))
    bn = model.layers[0]
    np.testing.assert_array_equal(bn.running_mean, np.zeros(3, np.float32))
    np.testing.assert_array_equal(bn.running_var, np.ones(3, np.float32))
    np.testing.assert_array_equal(bn.gamma, np.ones(3, np.float32))
    np.testing.assert_array_equal(bn.beta, np.zeros(3, np.float32))
    rng = np.random.default_rng(0)
    rm, rv, rv_biased = np.zeros(3), np.ones(3), np.ones(3)
    for step in range(6):
        x = (rng.normal(size=(8 + step, 3)) * [1.0, 3.0, 0.5] + [2.0, -1.0, 0.0]).astype(np.float32)
        if step % 2:
            model(x, training=True)
        else:
            model.train_step(x, rng.normal(size=(len(x), 2)).astype(np.float32))
        rm, rv = ref.batch_norm_running(rm, rv, x, m)
        rv_biased = (1 - m) * rv_biased + m * ref.batch_stats(x)[1]
    np.testing.assert_allclose(bn.running_mean, rm, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(bn.running_var, rv, rtol=1e-5, atol=1e-6)
    # The biased variance would give a visibly different result.
    assert np.abs(rv_biased - rv).min() > 1e-2
    # predict and evaluate leave the running statistics alone.
    before = bn.running_mean, bn.running_var
    model.predict_raw(x)
    model.evaluate(x, np.zeros((len(x), 2), np.float32))
    model(x, training=False)
    np.testing.assert_array_equal(bn.running_mean, before[0])
    np.testing.assert_array_equal(bn.running_var, before[1])


def test_batch_norm_inference_uses_running_statistics():
    m = 0.3
    model = _model([fn.Dense(4), fn.BatchNorm(momentum=m, eps=1e-3), fn.Dense(2)], 3, optimizer=fn.optim.Adam(1e-2))
    rng = np.random.default_rng(1)
    X = rng.normal(size=(32, 3)).astype(np.float32)
    Y = rng.normal(size=(32, 2)).astype(np.float32)
    for i in range(4):
        model.train_step(X[8 * i: 8 * i + 8], Y[8 * i: 8 * i + 8])
    bn = model.layers[1]
    w0, b0, gamma, beta, rm, rv, w2, b2 = [a.astype(np.float64) for a in model.get_weights()]
    assert np.all(bn.running_var != 1.0) and np.all(bn.running_mean != 0.0)
    x = X[:8]
    h = x @ w0 + b0
    want_inf = ref.batch_norm(h, gamma, beta, rm, rv, 1e-3) @ w2 + b2
    mean, var, unbiased = ref.batch_stats(h)
    want_train = ref.batch_norm(h, gamma, beta, mean, var, 1e-3) @ w2 + b2

    pred = model.predict_raw(x)
    np.testing.assert_allclose(pred, want_inf, rtol=1e-4, atol=1e-5)
    np.testing.assert_array_equal(bn.running_mean, rm.astype(np.float32))  # predict leaves them alone
    np.testing.assert_allclose(model(x, training=False), want_inf, rtol=1e-4, atol=1e-5)
    train_out = model(x, training=True)
    np.testing.assert_allclose(train_out, want_train, rtol=1e-4, atol=1e-5)
    assert np.abs(train_out - pred).max() > 1e-2
    # model(x, training=True) moved the running statistics.
    np.testing.assert_allclose(bn.running_mean, (1 - m) * rm + m * mean, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(bn.running_var, (1 - m) * rv + m * unbiased, rtol=1e-5, atol=1e-6)


def test_batch_norm_eval_mode_train_step_uses_running_statistics():
    model = _model([fn.Dense(4), fn.BatchNorm(momentum=0.5), fn.Dense(2)], 3, optimizer=fn.optim.SGD(lr=0.1))
    rng = np.random.default_rng(2)
    X = rng.normal(size=(16, 3)).astype(np.float32)
    Y = rng.normal(size=(16, 2)).astype(np.float32)
    model.train_step(X, Y)  # training mode: running stats move away from 0 / 1
    model.eval()
    assert model.training is False
    before = [a.astype(np.float64) for a in model.get_weights()]
    w0, b0, gamma, beta, rm, rv, w2, b2 = before
    x, y = X[:6], Y[:6]
    h = x @ w0 + b0
    want = ref.loss("mse", ref.batch_norm(h, gamma, beta, rm, rv, 1e-5) @ w2 + b2, y)
    mean, var, _ = ref.batch_stats(h)
    train_mode = ref.loss("mse", ref.batch_norm(h, gamma, beta, mean, var, 1e-5) @ w2 + b2, y)
    assert abs(want - train_mode) > 1e-3 * want
    loss = model.train_step(x, y)
    assert abs(loss - want) <= 1e-5 * want, (loss, want, train_mode)
    after = model.get_weights()
    np.testing.assert_array_equal(after[4], before[4].astype(np.float32))  # running_mean unchanged
    np.testing.assert_array_equal(after[5], before[5].astype(np.float32))  # running_var unchanged
    assert not np.array_equal(after[2], before[2].astype(np.float32))  # gamma still trained
    # In eval mode the gradient treats the running statistics as constants: check gamma's.
    g = dict(model._net.grads())["layers.1.gamma"]

    def f(gm):
        return ref.loss("mse", ref.batch_norm(h, gm, beta, rm, rv, 1e-5) @ w2 + b2, y)

    assert ref.rel_err(g, ref.numeric_grad(f, gamma)) <= 1e-3
    model.train()
    assert model.training is True
    model.train_step(x, y)
    assert not np.array_equal(model.layers[1].running_mean, after[4])


# -- residual connections in a deep tanh network ------------------------------

DEPTH, WIDTH = 20, 32


def _deep_tanh(residual: bool):
    if residual:
        body = [fn.Dense(WIDTH, activation="tanh")]
        body += [fn.Residual([fn.Dense(WIDTH, activation="tanh")]) for _ in range(DEPTH - 1)]
    else:
        body = [fn.Dense(WIDTH, activation="tanh") for _ in range(DEPTH)]
    model = fn.Sequential(body + [fn.Dense(2)])
    model.compile(optimizer=fn.optim.Adam(1e-3), loss="cross_entropy", metrics=["accuracy"])
    return model


SPIRAL_SEEDS = range(5)


@pytest.fixture(scope="module")
def spiral_histories():
    """Loss curves of both 20-layer tanh networks (width 32, Adam 1e-3, batch 32, 200 epochs) on
    300 spiral points, for several seeds (the seed of fit sets the initial weights and the shuffles).

    Measured (best / first-epoch loss): with residuals 0.05-0.09 for every seed; without,
    0.95-0.96 except seed 2 (0.36), where the plain network does get going.
    """
    X, y = fn.datasets.spirals(n=150, noise=0.1, seed=0)
    out = {}
    for residual in (True, False):
        out[residual] = []
        for seed in SPIRAL_SEEDS:
            model = _deep_tanh(residual)
            out[residual].append(model.fit(X, y, epochs=200, batch_size=32, seed=seed, verbose=0).history["loss"])
    return out


def test_deep_tanh_with_residuals_trains_on_spirals(spiral_histories):
    for seed, loss in zip(SPIRAL_SEEDS, spiral_histories[True]):
        assert len(loss) == 200
        assert min(loss) < 0.5 * loss[0], f"seed {seed}: first {loss[0]:.4f}, best {min(loss):.4f}"


def test_deep_tanh_without_residuals_mostly_does_not(spiral_histories):
    ratios = [min(loss) / loss[0] for loss in spiral_histories[False]]
    assert ratios[0] >= 0.5, ratios  # seed 0
    assert sum(r >= 0.5 for r in ratios) >= 4, ratios  # stuck near chance for (at least) 4 seeds of 5
    for plain, res in zip(spiral_histories[False], spiral_histories[True]):
        assert min(res) < min(plain)


# -- model files ---------------------------------------------------------------


def _trained_every_kind():
    model = _model(every_kind(), IN_DIM, optimizer=fn.optim.Adam(1e-2), seed=4)
    X, Y = _data()
    model.fit(X, Y, epochs=3, batch_size=16, seed=1, verbose=0)
    return model, X, Y


def test_save_load_round_trip_every_kind(tmp_path):
    model, X, Y = _trained_every_kind()
    bns = [model.layers[19], model.layers[22].layers[1]]
    for bn in bns:  # the running statistics moved during training
        assert not np.allclose(bn.running_mean, 0.0) and not np.allclose(bn.running_var, 1.0)
    path = tmp_path / "every.fnn"
    model.save(path)
    loaded = fn.load(path)
    assert [type(a) for a in loaded.layers] == [type(a) for a in model.layers]
    assert [layer.spec() for layer in loaded.layers] == [layer.spec() for layer in model.layers]
    names = [n for n, _, _ in model._net.tensors()]
    assert [n for n, _, _ in loaded._net.tensors()] == names
    wa, wb = model.get_weights(), loaded.get_weights()
    assert len(wa) == len(wb) == len(names)
    for name, a, b in zip(names, wa, wb):
        assert a.dtype == b.dtype and a.shape == b.shape, name
        assert np.array_equal(a, b), name
    for bn, lbn in zip(bns, [loaded.layers[19], loaded.layers[22].layers[1]]):
        assert np.array_equal(bn.running_mean, lbn.running_mean)
        assert np.array_equal(bn.running_var, lbn.running_var)
    for i in (12, 13):
        assert np.array_equal(model.layers[i].alpha, loaded.layers[i].alpha)
    assert np.array_equal(model.predict_raw(X), loaded.predict_raw(X))
    assert loaded.training == model.training

    # Both continue identically (dropout masks included): same losses, same weights.
    rng = np.random.default_rng(9)
    la, lb = [], []
    for _ in range(4):
        idx = rng.choice(len(X), 16, replace=False)
        la.append(model.train_step(X[idx], Y[idx]))
        lb.append(loaded.train_step(X[idx], Y[idx]))
    assert la == lb
    ha = model.fit(X, Y, epochs=2, batch_size=16, seed=5, verbose=0).history["loss"]
    hb = loaded.fit(X, Y, epochs=2, batch_size=16, seed=5, verbose=0).history["loss"]
    assert ha == hb
    for a, b in zip(model.get_weights(), loaded.get_weights()):
        assert np.array_equal(a, b)
    assert not np.array_equal(wa[0], model.get_weights()[0])  # training did continue


# -- summary -------------------------------------------------------------------

_ROW = re.compile(r"^(\s*)(\S.*?)\s+\(None, (\d+)\)\s+([\d,]+)$")


def _summary_lines(model):
    lines = []
    model.summary(print_fn=lambda s: lines.extend(str(s).splitlines()))
    return lines


def _count(lines, label):
    found = [ln for ln in lines if ln.strip().startswith(label + ":")]
    assert len(found) == 1, (label, lines)
    text = found[0].split(":", 1)[1].strip()
    assert re.fullmatch(r"\d{1,3}(,\d{3})*", text), text
    return int(text.replace(",", ""))


def test_summary_counts_every_kind():
    model = _model(every_kind(), IN_DIM)
    lines = _summary_lines(model)
    total, trainable, frozen = (_count(lines, k) for k in ("Total params", "Trainable params", "Non-trainable params"))
    assert total == sum(a.size for a in model.get_weights())
    assert trainable == sum(g.size for _, g in model._net.grads())
    assert trainable == model.n_params
    assert frozen == total - trainable == 2 * 6 + 2 * 6  # two BatchNorms' buffers
    rows = [m.groups() for m in map(_ROW.match, lines) if m]
    top = [(name, int(width), int(n.replace(",", ""))) for indent, name, width, n in rows if indent == ""]
    assert [name for name, _, _ in top] == [type(layer).__name__ for layer in model.layers]
    assert sum(n for _, _, n in top) == total
    assert top[0] == ("Dense", 8, IN_DIM * 8 + 8)
    assert top[12] == ("PReLU", 8, 8) and top[13] == ("PReLU", 8, 1)
    assert top[14] == ("GLU", 6, 8 * 12 + 12)
    assert top[19] == ("BatchNorm", 6, 24)
    assert top[-1] == ("Dense", 3, 4 * 3 + 3)
    nested = [name.strip() for indent, name, _, _ in rows if indent != ""]
    assert nested == ["Dense", "BatchNorm", "Dense", "ReLU", "projection (Dense)"]
    assert ("projection (Dense)", "4", "28") in [(name, w, n) for _, name, w, n in rows]


def test_summary_thousands_separator():
    model = _model([fn.Dense(100), fn.Dense(20)], 30)
    lines = _summary_lines(model)
    assert _count(lines, "Total params") == 30 * 100 + 100 + 100 * 20 + 20
    assert any("Total params: 5,120" in ln for ln in lines)


# -- parameter access ------------------------------------------------------------


def test_dense_weight_access():
    model = _model([fn.Dense(3)], 4)
    layer = model.layers[0]
    assert layer.weights.shape == (4, 3) and layer.bias.shape == (3,)
    np.testing.assert_array_equal(layer.kernel, layer.weights)
    rng = np.random.default_rng(0)
    w = rng.normal(size=(4, 3)).astype(np.float32)
    b = rng.normal(size=3).astype(np.float32)
    layer.weights = w
    layer.bias = b
    np.testing.assert_array_equal(layer.weights, w)
    params = layer.get_params()
    assert set(params) == {"weight", "bias"}
    np.testing.assert_array_equal(params["bias"], b)
    x = rng.normal(size=(5, 4)).astype(np.float32)
    np.testing.assert_allclose(model.predict_raw(x), x.astype(np.float64) @ w + b, rtol=1e-5, atol=1e-6)
    with pytest.raises(fn.ShapeError):
        layer.weights = np.zeros((3, 4), np.float32)
    with pytest.raises(fn.ShapeError):
        layer.bias = np.zeros(4, np.float32)
    np.testing.assert_array_equal(layer.weights, w)  # unchanged by the rejected sets


def test_weights_before_build_raise_not_fitted():
    with pytest.raises(fn.NotFittedError):
        fn.Dense(3).weights
    model = fn.Sequential([fn.Dense(3), fn.BatchNorm()])
    model.compile(optimizer="adam", loss="mse")
    with pytest.raises(fn.NotFittedError):
        model.layers[0].weights
    with pytest.raises(fn.NotFittedError):
        model.layers[1].running_var
    with pytest.raises(fn.NotFittedError):
        model.layers[0].get_params()
    with pytest.raises(fn.NotFittedError):
        model.layers[0].weights = np.zeros((2, 3), np.float32)


def test_get_set_weights_round_trip_with_buffers():
    model = _model([fn.Dense(3), fn.BatchNorm(), fn.Dense(2)], 4)
    shapes = [a.shape for a in model.get_weights()]
    assert shapes == [(4, 3), (3,), (3,), (3,), (3,), (3,), (3, 2), (2,)]
    rng = np.random.default_rng(1)
    new = [rng.normal(size=s).astype(np.float32) for s in shapes]
    new[5] = rng.uniform(0.5, 2.0, 3).astype(np.float32)  # running_var
    model.set_weights(new)
    for a, b in zip(model.get_weights(), new):
        np.testing.assert_array_equal(a, b)
    bn = model.layers[1]
    for attr, i in (("gamma", 2), ("beta", 3), ("running_mean", 4), ("running_var", 5)):
        np.testing.assert_array_equal(getattr(bn, attr), new[i])
    assert set(bn.get_params()) == {"gamma", "beta", "running_mean", "running_var"}
    x = rng.normal(size=(6, 4)).astype(np.float32)
    n64 = [a.astype(np.float64) for a in new]
    want = ref.batch_norm(x @ n64[0] + n64[1], n64[2], n64[3], n64[4], n64[5], 1e-5) @ n64[6] + n64[7]
    np.testing.assert_allclose(model.predict_raw(x), want, rtol=1e-4, atol=1e-5)
    # Buffers settable one by one.
    bn.running_mean = np.array([1.0, 2.0, 3.0], np.float32)
    np.testing.assert_array_equal(model.get_weights()[4], [1.0, 2.0, 3.0])
    # A negative variance is rejected (attribute and set_weights), leaving everything as it was.
    with pytest.raises(fn.ConfigError):
        bn.running_var = -np.ones(3, np.float32)
    bad = list(model.get_weights())
    bad[5] = np.array([1.0, -0.5, 1.0], np.float32)
    bad[0] = np.zeros((4, 3), np.float32)
    with pytest.raises(fn.ConfigError):
        model.set_weights(bad)
    np.testing.assert_array_equal(model.get_weights()[5], new[5])
    np.testing.assert_array_equal(model.get_weights()[0], new[0])
    with pytest.raises(fn.ShapeError):
        bn.running_mean = np.zeros(4, np.float32)


def test_nested_layers_are_bound():
    model = _model([fn.Residual([fn.Dense(5), fn.LayerNorm()])], 3)
    res = model.layers[0]
    params = res.get_params()
    assert set(params) == {"block.0.weight", "block.0.bias", "block.1.gamma", "block.1.beta",
                           "projection.weight", "projection.bias"}
    assert res.layers[0].weights.shape == (3, 5)
    w = np.full((3, 5), 0.5, np.float32)
    res.layers[0].weights = w
    np.testing.assert_array_equal(model._net.get_param("layers.0.block.0.weight"), w)
    np.testing.assert_array_equal(res.layers[1].gamma, np.ones(5, np.float32))


def test_prelu_alpha_settable():
    model = _model([fn.PReLU()], 3)
    model.layers[0].alpha = np.array([0.0, 0.5, 2.0], np.float32)
    x = np.array([[-1.0, -2.0, -3.0], [1.0, 2.0, 3.0]], np.float32)
    np.testing.assert_allclose(model.predict_raw(x), [[0.0, -1.0, -6.0], [1.0, 2.0, 3.0]], rtol=1e-6)
    with pytest.raises(fn.ShapeError):
        model.layers[0].alpha = np.ones(1, np.float32)


# -- activations given three ways ---------------------------------------------


def test_leaky_relu_object_name_and_layer_agree():
    x = np.random.default_rng(0).normal(size=(20, 5)).astype(np.float32) * 2
    models = [_model([fn.Dense(6, activation=fn.LeakyReLU(0.2)), fn.Dense(2)], 5, seed=3),
              _model([fn.Dense(6, activation="leaky_relu", alpha=0.2), fn.Dense(2)], 5, seed=3),
              _model([fn.Dense(6), fn.LeakyReLU(0.2), fn.Dense(2)], 5, seed=3)]
    weights = [m.get_weights() for m in models]
    for w in weights[1:]:
        assert len(w) == len(weights[0])
        for a, b in zip(w, weights[0]):
            np.testing.assert_array_equal(a, b)
    outs = [m.predict_raw(x) for m in models]
    w64 = [a.astype(np.float64) for a in weights[0]]
    want = ref.mlp_forward(x, w64, ["leaky_relu", "identity"], [0.2, None])
    for out in outs:
        np.testing.assert_allclose(out, want, rtol=1e-5, atol=1e-6)
    np.testing.assert_array_equal(outs[0], outs[1])
    np.testing.assert_array_equal(outs[0], outs[2])
    other = ref.mlp_forward(x, w64, ["leaky_relu", "identity"], [0.01, None])
    assert np.abs(other - want).max() > 1e-2  # the slope matters on this data


def test_gelu_tanh_layer_matches_reference():
    x = np.linspace(-6, 6, 241, dtype=np.float32).reshape(-1, 1)
    exact, approx = ref.activation("gelu", x), ref.activation("gelu_tanh", x)
    gap = np.abs(exact - approx).max()
    assert gap > 1e-4
    out = _model([fn.GELU(approximate="tanh")], 1).predict_raw(x)
    np.testing.assert_allclose(out, approx, rtol=1e-5, atol=1e-6)
    assert np.abs(out - approx).max() < gap / 10
    out = _model([fn.GELU()], 1).predict_raw(x)
    np.testing.assert_allclose(out, exact, rtol=1e-5, atol=1e-6)
    assert fn.GELU(approximate="tanh").approximate == "tanh"
    assert fn.Dense(3, activation=fn.GELU(approximate="tanh")).spec()["activation"] == "gelu_tanh"


@pytest.mark.parametrize("layer,name,alpha", [
    (fn.ReLU(), "relu", None), (fn.LeakyReLU(0.3), "leaky_relu", 0.3), (fn.ELU(0.5), "elu", 0.5),
    (fn.GELU(), "gelu", None), (fn.SiLU(), "silu", None), (fn.Swish(), "silu", None),
    (fn.Sigmoid(), "sigmoid", None), (fn.Tanh(), "tanh", None), (fn.Softplus(), "softplus", None),
    (fn.Identity(), "identity", None),
], ids=lambda v: repr(v) if isinstance(v, fn.Layer) else str(v))
def test_activation_layer_forward_matches_reference(layer, name, alpha):
    x = np.linspace(-8, 8, 161, dtype=np.float32).reshape(-1, 1)
    out = _model([layer], 1).predict_raw(x)
    np.testing.assert_allclose(out, ref.activation(name, x, alpha), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("t", [0.5, 1.0, 3.0])
def test_softmax_layers_forward(t):
    x = np.random.default_rng(0).normal(size=(6, 5)).astype(np.float32) * 3
    np.testing.assert_allclose(_model([fn.Softmax(temperature=t)], 5).predict_raw(x), ref.softmax(x, t),
                               rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(_model([fn.LogSoftmax(temperature=t)], 5).predict_raw(x), ref.log_softmax(x, t),
                               rtol=1e-5, atol=1e-5)


def test_residual_forward_matches_reference():
    model = _model([fn.Residual([fn.Dense(4, activation="tanh")]), fn.Residual([fn.Dense(2)])], 4)
    rng = np.random.default_rng(0)
    model.set_weights([rng.normal(size=a.shape).astype(np.float32) for a in model.get_weights()])
    params = {n: a.astype(np.float64) for n, a, _ in model._net.tensors()}
    x = rng.normal(size=(5, 4)).astype(np.float32)
    want = ref.net_forward(x, [("residual", [("dense", "tanh", None)]), ("residual", [("dense", "identity", None)])],
                           params, training=False)
    np.testing.assert_allclose(model.predict_raw(x), want, rtol=1e-5, atol=1e-5)
    # Equal widths: no projection tensors; different widths: a projection.
    assert "layers.0.projection.weight" not in params and "layers.1.projection.weight" in params


# -- specs ---------------------------------------------------------------------


def _shaped(layer, shape):
    """``layer`` built for per-sample inputs of ``shape`` (its spec records the shape)."""
    layer._built_for(shape)
    return layer


SPEC_LAYERS = [
    fn.Dense(3), fn.Dense(3, activation="relu"), fn.Dense(3, activation=fn.LeakyReLU(0.2)),
    fn.Dense(4, activation="elu", alpha=0.5, kernel_initializer="he_uniform", bias_initializer="zeros"),
    fn.Dense(2, kernel_initializer={"name": "uniform", "low": -0.1, "high": 0.1}),
    fn.Activation("tanh"), fn.Activation("leaky_relu", 0.3), fn.ReLU(), fn.LeakyReLU(), fn.LeakyReLU(0.3),
    fn.ELU(), fn.ELU(0.5), fn.GELU(), fn.GELU(approximate="tanh"), fn.SiLU(), fn.Swish(), fn.Sigmoid(), fn.Tanh(),
    fn.Softplus(), fn.Identity(), fn.Softmax(), fn.Softmax(temperature=0.5), fn.LogSoftmax(),
    fn.LogSoftmax(temperature=2.0), fn.PReLU(), fn.PReLU(shared=True, init=0.1),
    fn.GLU(3), fn.SwiGLU(3), fn.GeGLU(3), fn.ReGLU(3), fn.Gated(3, gate="tanh"), fn.Gated(3, gate=fn.LeakyReLU(0.3)),
    fn.Dropout(0.25), fn.Dropout(0.0), fn.BatchNorm(), fn.BatchNorm(momentum=0.3, eps=1e-3), fn.LayerNorm(),
    fn.LayerNorm(eps=1e-3), fn.RMSNorm(), fn.RMSNorm(eps=1e-4),
    fn.Residual([fn.Dense(3), fn.ReLU()]), fn.Residual([fn.Residual([fn.LayerNorm()]), fn.BatchNorm(), fn.SwiGLU(2)]),
    _shaped(fn.Conv2D(4, 3), (6, 6, 2)),
    _shaped(fn.Conv2D(4, (3, 2), strides=2, padding="same", dilation_rate=(1, 2), groups=2, activation="relu",
                      use_bias=False, data_format="channels_first", kernel_initializer="he_normal"), (2, 7, 8)),
    _shaped(fn.Conv1D(3, 3, padding="causal", activation=fn.LeakyReLU(0.2)), (9, 2)),
    _shaped(fn.MaxPool2D(2), (6, 5, 2)), _shaped(fn.MaxPool2D(3, strides=1, padding="same"), (6, 5, 2)),
    _shaped(fn.AvgPool2D(2, padding="same", data_format="channels_first"), (2, 5, 5)),
    _shaped(fn.MaxPool1D(2), (7, 3)), _shaped(fn.AvgPool1D(3, strides=2), (7, 3)),
    _shaped(fn.GlobalAvgPool2D(), (3, 3, 2)), _shaped(fn.GlobalMaxPool2D(data_format="channels_first"), (2, 3, 3)),
    _shaped(fn.GlobalAvgPool1D(), (4, 2)), _shaped(fn.GlobalMaxPool1D(), (4, 2)),
    fn.Flatten(), fn.Reshape((2, 3)), _shaped(fn.Reshape((-1, 2)), (12,)),
    # Recurrent kinds and Embedding (issue 14).
    _shaped(fn.SimpleRNN(3), (4, 2)), _shaped(fn.SimpleRNN(3, activation="relu", go_backwards=True), (4, 2)),
    _shaped(fn.LSTM(4, return_sequences=True, unit_forget_bias=False, kernel_regularizer="l2",
                    recurrent_regularizer=fn.regularizers.l1(0.1), recurrent_initializer="glorot_uniform"), (5, 3)),
    _shaped(fn.GRU(2, bias_initializer="ones", bias_regularizer="l2"), (3, 3)),
    _shaped(fn.Bidirectional(fn.LSTM(3, return_sequences=True, recurrent_regularizer="l2")), (4, 2)),
    _shaped(fn.Bidirectional(fn.SimpleRNN(2, activation="relu"), "mul",
                             backward_layer=fn.SimpleRNN(2, go_backwards=True)), (3, 2)),
    _shaped(fn.Embedding(10, 4), (6,)), _shaped(fn.Embedding(3, 2, embeddings_initializer="normal"), (2,)),
    _shaped(fn.Embedding(5, 2, mask_zero=True), (3,)), _shaped(fn.Masking(), (4, 2)), _shaped(fn.Masking(-1.5), (2, 3)),
    _shaped(fn.Dense(3, activation="tanh"), (4, 2)),
]


@pytest.mark.parametrize("layer", SPEC_LAYERS, ids=repr)
def test_spec_round_trip(layer):
    spec = layer.spec()
    rebuilt = fn.layers.from_spec(spec)
    assert rebuilt.spec() == spec
    assert isinstance(rebuilt, type(layer))
    assert fn.layers.from_spec(rebuilt.spec()).spec() == spec


def test_every_layer_class_has_a_spec_case():
    classes = {type(layer) for layer in SPEC_LAYERS}
    for name in fn.layers.__all__:
        obj = getattr(fn.layers, name)
        if isinstance(obj, type) and issubclass(obj, fn.Layer) and obj is not fn.Layer:
            assert obj in classes, name


def test_spec_round_trip_keeps_behaviour():
    """A model rebuilt from the layers' specs (same seed) computes the same outputs."""
    a = _model(every_kind(), IN_DIM, seed=2)
    b = _model([fn.layers.from_spec(layer.spec()) for layer in every_kind()], IN_DIM, seed=2)
    X, _ = _data(10)
    assert np.array_equal(a.predict_raw(X), b.predict_raw(X))


# -- bad arguments -------------------------------------------------------------

BAD = [
    (lambda: fn.Dropout(1.0), fn.ConfigError),
    (lambda: fn.Dropout(-0.1), fn.ConfigError),
    (lambda: fn.Dropout(1.5), fn.ConfigError),
    (lambda: fn.Dropout(float("nan")), fn.ConfigError),
    (lambda: fn.BatchNorm(eps=0), fn.ConfigError),
    (lambda: fn.BatchNorm(eps=-1e-5), fn.ConfigError),
    (lambda: fn.BatchNorm(momentum=1.5), fn.ConfigError),
    (lambda: fn.BatchNorm(momentum=-0.1), fn.ConfigError),
    (lambda: fn.LayerNorm(eps=0), fn.ConfigError),
    (lambda: fn.RMSNorm(eps=0), fn.ConfigError),
    (lambda: fn.RMSNorm(eps=float("inf")), fn.ConfigError),
    (lambda: fn.Softmax(temperature=0), fn.ConfigError),
    (lambda: fn.Softmax(temperature=-1.0), fn.ConfigError),
    (lambda: fn.LogSoftmax(temperature=0), fn.ConfigError),
    (lambda: fn.SwiGLU(0), fn.ConfigError),
    (lambda: fn.GLU(-1), fn.ConfigError),
    (lambda: fn.GeGLU(2.5), fn.ConfigError),
    (lambda: fn.ReGLU(0), fn.ConfigError),
    (lambda: fn.Residual([]), fn.ConfigError),
    (lambda: fn.Residual(["dense"]), fn.ConfigError),
    (lambda: fn.GELU(approximate="fast"), fn.ConfigError),
    (lambda: fn.PReLU(shared="yes"), fn.ConfigError),
    (lambda: fn.PReLU(init=float("nan")), fn.ConfigError),
    (lambda: fn.Dense(0), fn.ConfigError),
    (lambda: fn.Dense(3, activation=fn.Softmax()), fn.ConfigError),
    (lambda: fn.Dense(3, activation=fn.LeakyReLU(0.2), alpha=0.3), fn.ConfigError),
    (lambda: fn.LeakyReLU(0.1, negative_slope=0.2), fn.ConfigError),
    (lambda: fn.Dense(3, activation="bogus"), fn.UnknownNameError),
    (lambda: fn.Activation("bogus"), fn.UnknownNameError),
    (lambda: fn.Gated(3, gate="nope"), fn.UnknownNameError),
]


@pytest.mark.parametrize("make,err", BAD, ids=[f"bad{i}" for i in range(len(BAD))])
def test_bad_layer_arguments(make, err):
    with pytest.raises(err):
        make()


# (A final Softmax before "cross_entropy" is trained fused: see test_keras_fused.py.)
@pytest.mark.parametrize("last,loss", [(fn.LogSoftmax, "cross_entropy"), (fn.Softmax, "binary_cross_entropy")])
def test_compile_rejects_softmax_before_a_logit_loss(last, loss):
    model = fn.Sequential([fn.Dense(3), last()])
    with pytest.raises(fn.ConfigError):
        model.compile(optimizer="adam", loss=loss)


def test_log_softmax_with_nll_is_fine():
    model = fn.Sequential([fn.Dense(3), fn.LogSoftmax()])
    model.compile(optimizer="adam", loss="nll")
    X, _ = _data(12, 4)
    y = np.arange(12) % 3
    model.fit(X, y, epochs=1, batch_size=4, seed=0, verbose=0)
    np.testing.assert_allclose(np.exp(model.predict_raw(X).astype(np.float64)).sum(axis=1), 1.0, atol=1e-5)


def test_wrong_input_width_raises_shape_error():
    model = _model([fn.Dense(3), fn.BatchNorm(), fn.GLU(2)], 4)
    with pytest.raises(fn.ShapeError):
        model.predict_raw(np.zeros((2, 5), np.float32))
    with pytest.raises(fn.ShapeError):
        model(np.zeros((2, 3), np.float32), training=True)


# -- train / eval modes ----------------------------------------------------------


def test_train_eval_modes_and_fit():
    model = _model([fn.Dense(16, activation="tanh"), fn.Dropout(0.5), fn.Dense(1)], 4)  # SGD(lr=0): fixed weights
    X, Y = _data(64, 4, 1, seed=3)
    assert model.training is True  # the default
    assert model.eval() is model
    assert model.training is False
    ev = model.evaluate(X, Y)
    np.testing.assert_array_equal(model(X), model.predict_raw(X))
    assert abs(model.train_step(X, Y) - ev) <= 1e-5 * ev  # no dropout in eval mode
    fit_loss = model.fit(X, Y, epochs=1, batch_size=64, shuffle=False, seed=0, verbose=0).history["loss"][0]
    assert abs(fit_loss - ev) > 1e-2 * ev, (fit_loss, ev)  # fit trained with dropout
    assert model.training is False  # and left the mode as it was
    model.train()
    assert model.training is True
    assert abs(model.train_step(X, Y) - ev) > 1e-2 * ev
    assert not np.array_equal(model(X), model.predict_raw(X))
    model.fit(X, Y, epochs=1, batch_size=16, seed=0, verbose=0)
    assert model.training is True
    assert model.evaluate(X, Y) == ev  # evaluate always infers (and lr = 0 kept the weights)
