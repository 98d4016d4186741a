"""Activations, softmax, losses and the dense layer against a float64 reference.

Values are compared with tests/python/reference.py; every gradient is compared
with central finite differences of that float64 reference (never with a
hand-written derivative), as DESIGN.md's testing principles ask.
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import assume, given, settings, strategies as st

import ferronn as fn

import reference as ref

F = fn.functional
ACTS = list(ref.ACTIVATIONS)
KINKED = {"relu", "leaky_relu", "elu"}  # not differentiable at 0 (elu only for alpha != 1)
GRAD_RTOL = 1e-3


def _grid() -> np.ndarray:
    """x values in float32: a dense sweep of [-30, 30], the saturating ends, and tiny magnitudes."""
    sweep = np.linspace(-30.0, 30.0, 1201)
    special = [-30, -20, -15, -10, -8, -5, -3, -1, -0.5, 0.5, 1, 3, 5, 8, 10, 15, 20, 30]
    tiny = [1e-3, 1e-5, 1e-7, 1e-12, 1e-20, 1e-30]
    tiny = tiny + [-t for t in tiny]
    return np.concatenate([sweep, special, tiny, [0.0]]).astype(np.float32)


def _dy(n: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return (rng.uniform(0.5, 2.0, n) * rng.choice([-1.0, 1.0], n)).astype(np.float32)


def _check_grad_elementwise(got, want, dy, what):
    """|got - want| <= 1e-3 |want| + 1e-6 |dy| elementwise (the absolute term is float32 resolution)."""
    got, want = np.asarray(got, np.float64), np.asarray(want, np.float64)
    bad = np.abs(got - want) > GRAD_RTOL * np.abs(want) + 1e-6 * np.abs(dy)
    assert not bad.any(), f"{what}: first mismatches at {np.flatnonzero(bad)[:5]}: got {got[bad][:5]}, want {want[bad][:5]}"


# -- activations ----------------------------------------------------------


@pytest.mark.parametrize("name", ACTS)
def test_activation_forward_matches_reference(name):
    x = _grid()
    got = F.activation(name, x)
    assert got.dtype == np.float32 and got.shape == x.shape
    assert np.all(np.isfinite(got))
    np.testing.assert_allclose(got, ref.activation(name, x), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("name", ACTS)
def test_activation_forward_keeps_shape(name):
    x = np.random.default_rng(1).normal(size=(3, 4, 5)).astype(np.float32) * 3
    got = F.activation(name, x)
    assert got.shape == x.shape
    np.testing.assert_allclose(got, ref.activation(name, x), rtol=1e-5, atol=1e-6)


def _fd_grad(name, x, dy, alpha=None, h=1e-6):
    return dy.astype(np.float64) * ref.central_diff(lambda z: ref.activation(name, z, alpha), x.astype(np.float64), h)


@pytest.mark.parametrize("name", ACTS)
@pytest.mark.parametrize("h", [1e-4, 1e-5, 1e-6])
def test_activation_grad_matches_finite_differences(name, h):
    x = _grid()
    if name in KINKED:
        x = x[np.abs(x) > 1e-2]
    dy = _dy(x.size)
    got = F.activation_grad(name, x, dy)
    assert got.dtype == np.float32 and got.shape == x.shape
    assert np.all(np.isfinite(got))
    _check_grad_elementwise(got, _fd_grad(name, x, dy, h=h), dy, f"{name}' (h={h})")


@pytest.mark.parametrize("name,alpha", [("leaky_relu", 0.2), ("leaky_relu", 0.0), ("leaky_relu", 1.5),
                                        ("elu", 0.5), ("elu", 2.0), ("elu", 1.0)])
def test_activation_custom_alpha(name, alpha):
    x = _grid()
    np.testing.assert_allclose(F.activation(name, x, alpha=alpha), ref.activation(name, x, alpha),
                               rtol=1e-5, atol=1e-6)
    x = x[np.abs(x) > 1e-2]
    dy = _dy(x.size, seed=3)
    got = F.activation_grad(name, x, dy, alpha=alpha)
    _check_grad_elementwise(got, _fd_grad(name, x, dy, alpha), dy, f"{name}(alpha={alpha})'")


@pytest.mark.parametrize("name", ["leaky_relu", "elu"])
def test_activation_alpha_changes_the_negative_side(name):
    x = np.array([-2.0, -0.5, 0.5, 2.0], np.float32)
    a, b = F.activation(name, x), F.activation(name, x, alpha=0.3)
    np.testing.assert_allclose(a[2:], b[2:])
    assert np.all(np.abs(a[:2] - b[:2]) > 1e-3)


def test_activation_grad_is_linear_in_dy():
    x = np.linspace(-4, 4, 33).astype(np.float32)
    for name in ACTS:
        g1 = F.activation_grad(name, x, np.ones_like(x))
        g3 = F.activation_grad(name, x, np.full_like(x, -3.0))
        np.testing.assert_allclose(g3, -3.0 * g1, rtol=1e-6, atol=1e-12, err_msg=name)


# -- softmax / log-softmax -------------------------------------------------

TEMPS = [0.5, 1.0, 2.0]


def _logits(shape=(5, 7), scale=3.0, seed=0) -> np.ndarray:
    return (np.random.default_rng(seed).normal(size=shape) * scale).astype(np.float32)


@pytest.mark.parametrize("t", TEMPS)
def test_softmax_and_log_softmax_match_reference(t):
    x = _logits()
    p = F.softmax(x, temperature=t)
    lp = F.log_softmax(x, temperature=t)
    np.testing.assert_allclose(p, ref.softmax(x, t), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(lp, ref.log_softmax(x, t), rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(p.sum(axis=-1), 1.0, atol=1e-5)
    np.testing.assert_allclose(np.exp(lp.astype(np.float64)).sum(axis=-1), 1.0, atol=1e-5)


def test_softmax_temperature_matters():
    x = _logits(seed=4)
    sharp, flat = F.softmax(x, 0.5), F.softmax(x, 2.0)
    assert np.all(sharp.max(axis=1) > flat.max(axis=1))
    np.testing.assert_allclose(F.softmax(x, 2.0), F.softmax(x / 2.0, 1.0), rtol=1e-5, atol=1e-7)


def test_softmax_leading_axes():
    x = _logits(shape=(2, 3, 4), seed=5)
    np.testing.assert_allclose(F.softmax(x), ref.softmax(x), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(F.log_softmax(x, 2.0), ref.log_softmax(x, 2.0), rtol=1e-5, atol=1e-5)
    x1 = x[0, 0]
    np.testing.assert_allclose(F.softmax(x1), ref.softmax(x1), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("t", TEMPS)
def test_softmax_huge_logits_are_finite_and_correct(t):
    x = np.array([[1e4, -1e4, 0.0, 1e4 - 1.0],
                  [-1e4, -1e4, -1e4 + 2.0, -1e4],
                  [1e4, 1e4, 1e4, 1e4]], np.float32)
    p, lp = F.softmax(x, t), F.log_softmax(x, t)
    assert np.all(np.isfinite(p)) and np.all(np.isfinite(lp))
    np.testing.assert_allclose(p, ref.softmax(x, t), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(lp, ref.log_softmax(x, t), rtol=1e-5, atol=1e-4)
    np.testing.assert_allclose(p.sum(axis=1), 1.0, atol=1e-6)
    g = F.softmax_grad(x, np.ones_like(x), t)
    assert np.all(np.isfinite(g))
    np.testing.assert_allclose(g, 0.0, atol=1e-5)  # softmax sums to 1 whatever x is


@pytest.mark.parametrize("t", TEMPS)
@pytest.mark.parametrize("log", [False, True])
def test_softmax_grad_matches_finite_differences(t, log):
    x = _logits(shape=(4, 6), scale=2.0, seed=7)
    dy = _logits(shape=(4, 6), scale=1.0, seed=8)
    f = ref.log_softmax if log else ref.softmax
    want = ref.numeric_grad(lambda z: float(np.sum(dy.astype(np.float64) * f(z, t))), x)
    got = F.softmax_grad(x, dy, temperature=t, log=log)
    assert got.shape == x.shape and got.dtype == np.float32
    assert ref.rel_err(got, want) <= GRAD_RTOL
    np.testing.assert_allclose(got, want, rtol=GRAD_RTOL, atol=1e-5)


# -- losses ---------------------------------------------------------------


def _loss_case(name: str, b: int, c: int, seed: int):
    rng = np.random.default_rng(seed)
    out = (rng.normal(size=(b, c)) * 2.0).astype(np.float32)
    if name == "mse":
        y = rng.normal(size=(b, c)).astype(np.float32)
    elif name == "binary_cross_entropy":
        y = rng.uniform(0, 1, size=(b, c)).astype(np.float32)
        y[: b // 2] = np.round(y[: b // 2])  # hard and soft targets
    elif name == "poisson_nll":
        y = rng.poisson(2.0, size=(b, c)).astype(np.float32)
    else:
        y = rng.integers(0, c, size=b)
        if name == "nll":
            out = ref.log_softmax(out).astype(np.float32)
    return out, y


LOSS_NAMES = ["mse", "binary_cross_entropy", "cross_entropy", "nll", "poisson_nll"]


@pytest.mark.parametrize("name", LOSS_NAMES)
@pytest.mark.parametrize("b,c,seed", [(1, 1, 0), (6, 4, 1), (9, 3, 2), (32, 10, 3)])
def test_loss_value_and_grad(name, b, c, seed):
    if name in ("cross_entropy", "nll") and c == 1:
        c = 2
    out, y = _loss_case(name, b, c, seed)
    value, grad = F.loss(name, out, y)
    want = ref.loss(name, out, y)
    assert abs(value - want) <= 1e-5 * abs(want) + 1e-6, (value, want)
    assert grad.shape == out.shape
    fd = ref.numeric_grad(lambda o: ref.loss(name, o, y), out)
    assert ref.rel_err(grad, fd) <= GRAD_RTOL
    np.testing.assert_allclose(grad, fd, rtol=GRAD_RTOL, atol=1e-6)


def test_bce_and_cross_entropy_are_stable_for_huge_logits():
    z = np.array([[40.0, -40.0], [-1e4, 1e4]], np.float32)
    y = np.array([[0.0, 1.0], [1.0, 0.0]], np.float32)
    value, grad = F.loss("binary_cross_entropy", z, y)
    assert np.isfinite(value) and np.all(np.isfinite(grad))
    assert abs(value - ref.loss("binary_cross_entropy", z, y)) <= 1e-5 * ref.loss("binary_cross_entropy", z, y)
    fd = ref.numeric_grad(lambda o: ref.loss("binary_cross_entropy", o, y), z)
    np.testing.assert_allclose(grad, fd, rtol=GRAD_RTOL, atol=1e-6)
    labels = np.array([1, 0])
    value, grad = F.loss("cross_entropy", z, labels)
    want = ref.loss("cross_entropy", z, labels)
    assert np.isfinite(value) and abs(value - want) <= 1e-5 * want
    fd = ref.numeric_grad(lambda o: ref.loss("cross_entropy", o, labels), z)
    np.testing.assert_allclose(grad, fd, rtol=GRAD_RTOL, atol=1e-6)


# -- the dense layer end to end ------------------------------------------


def _dense_case(in_dim, hidden, out_dim, batch, act, loss_name, seed, alpha=None):
    rng = np.random.default_rng(seed)
    model = fn.Sequential([fn.Dense(hidden, activation=act, alpha=alpha), fn.Dense(out_dim)])
    model.compile(optimizer=fn.optim.SGD(lr=0.0), loss=loss_name)
    model.build(in_dim, seed=0)
    weights = [rng.normal(0, 0.7, (in_dim, hidden)), rng.normal(0, 0.3, hidden),
               rng.normal(0, 0.7, (hidden, out_dim)), rng.normal(0, 0.3, out_dim)]
    weights = [w.astype(np.float32) for w in weights]
    model.set_weights(weights)
    x = rng.normal(size=(batch, in_dim)).astype(np.float32)
    if loss_name in ("cross_entropy", "nll"):
        y = rng.integers(0, out_dim, size=batch)
    elif loss_name == "binary_cross_entropy":
        y = rng.integers(0, 2, size=(batch, out_dim)).astype(np.float32)
    elif loss_name == "poisson_nll":
        y = rng.poisson(1.5, size=(batch, out_dim)).astype(np.float32)
    else:
        y = rng.normal(size=(batch, out_dim)).astype(np.float32)
    return model, weights, x, y


def _kink_free(act, x, weights) -> bool:
    """Whether no hidden pre-activation is within finite-difference reach of a kink at 0."""
    pre = x.astype(np.float64) @ weights[0].astype(np.float64) + weights[1]
    return act not in KINKED or np.abs(pre).min() > 1e-3


def _check_dense_grads(in_dim, hidden, out_dim, batch, act, loss_name, seed, alpha=None, hypothesis=False):
    model, weights, x, y = _dense_case(in_dim, hidden, out_dim, batch, act, loss_name, seed, alpha)
    if hypothesis:
        assume(_kink_free(act, x, weights))
    while not _kink_free(act, x, weights):  # fixed cases: move on to the next seed
        seed += 1000
        model, weights, x, y = _dense_case(in_dim, hidden, out_dim, batch, act, loss_name, seed, alpha)
    acts, alphas = [act, "identity"], [alpha, None]
    w64 = [w.astype(np.float64) for w in weights]
    value = model.train_step(x, y)
    want = ref.mlp_loss(x, y, w64, acts, loss_name, alphas)
    assert abs(value - want) <= 1e-5 * abs(want) + 1e-6, (value, want)
    np.testing.assert_allclose(model.predict_raw(x), ref.mlp_forward(x, w64, acts, alphas), rtol=1e-4, atol=1e-5)
    grads = model._net.grads()
    assert [n for n, _ in grads] == ["layers.0.weight", "layers.0.bias", "layers.1.weight", "layers.1.bias"]
    errs = []
    for i, (name, g) in enumerate(grads):
        assert g.shape == weights[i].shape, name

        def f(p, i=i):
            ws = list(w64)
            ws[i] = p
            return ref.mlp_loss(x, y, ws, acts, loss_name, alphas)

        fd = ref.numeric_grad(f, w64[i])
        err = ref.rel_err(g, fd, floor=1e-6)
        errs.append(err)
        assert err <= GRAD_RTOL, f"{name}: rel err {err:.2e} ({act}, {loss_name})"
    for w, w_after in zip(weights, model.get_weights()):  # lr = 0: the step must not move anything
        np.testing.assert_array_equal(w, w_after)
    return max(errs)


@pytest.mark.parametrize("act", ACTS)
@pytest.mark.parametrize("loss_name", LOSS_NAMES)
def test_dense_5_7_3_gradients(act, loss_name):
    _check_dense_grads(5, 7, 3, 4, act, loss_name, seed=ACTS.index(act) * 10 + LOSS_NAMES.index(loss_name))


@pytest.mark.parametrize("act,alpha", [("leaky_relu", 0.2), ("elu", 0.5)])
def test_dense_custom_alpha_gradients(act, alpha):
    _check_dense_grads(5, 7, 3, 6, act, "mse", seed=99, alpha=alpha)


@settings(max_examples=25, deadline=None)
@given(in_dim=st.integers(1, 6), hidden=st.integers(1, 8), out_dim=st.integers(1, 4), batch=st.integers(1, 6),
       act=st.sampled_from(["tanh", "gelu", "silu", "relu", "sigmoid", "gelu_tanh", "elu", "softplus"]),
       loss_name=st.sampled_from(LOSS_NAMES), seed=st.integers(0, 2**31 - 1))
def test_dense_gradients_random_shapes(in_dim, hidden, out_dim, batch, act, loss_name, seed):
    if loss_name in ("cross_entropy", "nll"):
        out_dim = max(out_dim, 2)
    _check_dense_grads(in_dim, hidden, out_dim, batch, act, loss_name, seed, hypothesis=True)


def test_dense_grads_follow_the_batch():
    """Two different batches give different gradients (grads() is refreshed by each train_step)."""
    model, weights, x, y = _dense_case(4, 5, 2, 6, "tanh", "mse", seed=11)
    model.train_step(x, y)
    g1 = [g.copy() for _, g in model._net.grads()]
    model.train_step(x[:3], y[:3])
    g2 = [g for _, g in model._net.grads()]
    w64 = [w.astype(np.float64) for w in weights]
    fd = ref.numeric_grad(lambda p: ref.mlp_loss(x[:3], y[:3], [p] + w64[1:], ["tanh", "identity"], "mse"), w64[0])
    assert ref.rel_err(g2[0], fd) <= GRAD_RTOL
    assert ref.rel_err(g1[0], g2[0]) > 1e-3


def test_poisson_nll_needs_non_negative_counts():
    with pytest.raises(fn.LabelError, match="poisson_nll targets are counts and must be >= 0"):
        F.loss("poisson_nll", np.zeros((2, 1), np.float32), np.array([[1.0], [-1.0]], np.float32))
    model = fn.Sequential([fn.Dense(1)], input_dim=2)
    model.compile(optimizer="sgd", loss="poisson_nll")
    with pytest.raises(fn.LabelError):
        model.fit(np.ones((2, 2), np.float32), np.array([[1.0], [-2.0]], np.float32), epochs=1, verbose=0)
