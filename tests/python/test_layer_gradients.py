"""Gradients of the layer catalogue against finite differences of a float64 reference.

Every layer is checked inside a small network: a Dense(d) without activation in
front (its weight gradient is xᵀ·(input gradient of the layer under test), so
checking it checks the layer's input gradient), the layer, and sometimes a
Dense after it to reach the loss. All tensors are set explicitly to random
values, a train_step with SGD(lr=0) computes the gradients, and each one is
compared with central differences of tests/python/reference.py's plain-numpy
forward pass (``ref.net_forward``), never with a hand-written derivative.
"""

from __future__ import annotations

import numpy as np
import pytest

import ferronn as fn

import reference as ref

GRAD_RTOL = 1e-3
KINK_MARGIN = 1e-3


def _random_tensor(name: str, shape, rng) -> np.ndarray:
    """A random value for tensor ``name`` (never zeros, never the initialiser's value)."""
    base = name.rsplit(".", 1)[1]
    if base == "running_var":
        return rng.uniform(0.5, 2.0, shape)
    if base == "gamma":
        return rng.uniform(0.5, 1.5, shape) * rng.choice([-1.0, 1.0], shape)
    if base == "alpha":
        return rng.uniform(0.05, 0.6, shape)
    if base in ("bias", "beta", "running_mean"):
        return rng.normal(0.0, 0.4, shape)
    assert base == "weight", name
    return rng.normal(0.0, 1.2 / np.sqrt(shape[0]), shape)


def _targets(loss_name, batch, out_dim, rng):
    if loss_name in ("cross_entropy", "nll"):
        return rng.integers(0, out_dim, size=batch)
    return rng.normal(size=(batch, out_dim)).astype(np.float32)


def _case(make_layers, ref_layers, in_dim, out_dim, loss_name, seed, batch):
    """A built model with random tensors (kink-free for the reference) and its data."""
    for attempt in range(100):
        rng = np.random.default_rng(seed + 7919 * attempt)
        model = fn.Sequential(make_layers())
        model.compile(optimizer=fn.optim.SGD(lr=0.0), loss=loss_name)
        model.build(in_dim, seed=0)
        tensors = model._net.tensors()
        weights = [_random_tensor(n, a.shape, rng).astype(np.float32) for n, a, _ in tensors]
        x = rng.normal(size=(batch, in_dim)).astype(np.float32)
        y = _targets(loss_name, batch, out_dim, rng)
        params = {n: w.astype(np.float64) for (n, _, _), w in zip(tensors, weights)}
        kinks: list = []
        ref.net_forward(x, ref_layers, params, training=True, kinks=kinks)
        if not kinks or np.concatenate(kinks).min() > KINK_MARGIN:
            break
    else:
        raise AssertionError("no kink-free case found")
    model.set_weights(weights)
    return model, tensors, weights, params, x, y


def check_layer(make_layers, ref_layers, in_dim, out_dim, loss_name="mse", seed=0, batch=6):
    """Loss, every gradient, the lr=0 step and inference output of a model against the reference.

    Returns {tensor name: relative error} for the trainable tensors.
    """
    model, tensors, weights, params, x, y = _case(make_layers, ref_layers, in_dim, out_dim, loss_name, seed, batch)
    trainable = [n for n, _, t in tensors if t]
    buffers = [n for n, _, t in tensors if not t]

    value = model.train_step(x, y)
    want = ref.net_loss(x, y, ref_layers, params, loss_name, training=True)
    assert abs(value - want) <= 1e-5 * abs(want) + 1e-6, (value, want)

    grads = model._net.grads()
    assert [n for n, _ in grads] == trainable
    errs = {}
    for name, g in grads:
        assert g.shape == params[name].shape, name
        assert np.all(np.isfinite(g)), name

        def f(p, name=name):
            ps = dict(params)
            ps[name] = p
            return ref.net_loss(x, y, ref_layers, ps, loss_name, training=True)

        fd = ref.numeric_grad(f, params[name])
        if np.linalg.norm(fd) < 1e-8:
            # A gradient that is zero in exact arithmetic (e.g. the bias in front of BatchNorm).
            assert np.abs(g).max() <= 1e-5, f"{name}: expected a zero gradient, got {g}"
            errs[name] = 0.0
            continue
        err = ref.rel_err(g, fd, floor=1e-6)
        errs[name] = err
        assert err <= GRAD_RTOL, f"{name}: rel err {err:.2e}\ngot  {g}\nwant {fd}"

    # lr = 0: no trainable tensor moves; BatchNorm's buffers follow the running-statistics update.
    updates: dict = {}
    ref.net_forward(x, ref_layers, params, training=True, updates=updates)
    assert sorted(updates) == sorted(buffers)
    after = {n: a for n, a, _ in model._net.tensors()}
    for (name, _, _), w in zip(tensors, weights):
        if name in updates:
            np.testing.assert_allclose(after[name], updates[name], rtol=1e-5, atol=1e-6, err_msg=name)
        else:
            np.testing.assert_array_equal(after[name], w, err_msg=name)

    # Inference: predict_raw is the reference forward pass with the (updated) running statistics.
    inf_params = dict(params)
    inf_params.update(updates)
    np.testing.assert_allclose(model.predict_raw(x), ref.net_forward(x, ref_layers, inf_params, training=False),
                               rtol=1e-4, atol=1e-5)
    return errs


def test_check_layer_can_fail():
    """The harness itself catches a wrong reference (here: the wrong PReLU slope layout)."""
    with pytest.raises(AssertionError):
        check_layer(lambda: [fn.Dense(4), fn.PReLU(), fn.Dense(3)],
                    [("dense", "identity", None), ("act", "leaky_relu", 0.25), ("dense", "identity", None)],
                    4, 3, seed=1)


# -- PReLU -----------------------------------------------------------------


@pytest.mark.parametrize("shared", [False, True])
@pytest.mark.parametrize("loss_name", ["mse", "cross_entropy"])
def test_prelu_gradients(shared, loss_name):
    errs = check_layer(lambda: [fn.Dense(4), fn.PReLU(shared=shared), fn.Dense(3)],
                       [("dense", "identity", None), ("prelu",), ("dense", "identity", None)],
                       in_dim=3, out_dim=3, loss_name=loss_name, seed=10 + shared)
    assert set(errs) == {"layers.0.weight", "layers.0.bias", "layers.1.alpha", "layers.2.weight", "layers.2.bias"}


@pytest.mark.parametrize("shared", [False, True])
def test_prelu_alpha_shape(shared):
    model = fn.Sequential([fn.Dense(4), fn.PReLU(shared=shared, init=0.1)])
    model.compile(optimizer=fn.optim.SGD(lr=0.0), loss="mse")
    model.build(3, seed=0)
    alpha = model.layers[1].alpha
    assert alpha.shape == ((1,) if shared else (4,))
    np.testing.assert_allclose(alpha, 0.1, rtol=1e-7)


# -- gated linear units --------------------------------------------------

GATED = {"GLU": (fn.GLU, "sigmoid"), "SwiGLU": (fn.SwiGLU, "silu"), "GeGLU": (fn.GeGLU, "gelu"),
         "ReGLU": (fn.ReGLU, "relu")}


@pytest.mark.parametrize("kind", list(GATED))
def test_gated_gradients(kind):
    cls, gate = GATED[kind]
    errs = check_layer(lambda: [fn.Dense(4), cls(3)], [("dense", "identity", None), ("gated", gate)],
                       in_dim=5, out_dim=3, seed=20 + list(GATED).index(kind))
    assert set(errs) == {"layers.0.weight", "layers.0.bias", "layers.1.weight", "layers.1.bias"}


@pytest.mark.parametrize("kind", list(GATED))
def test_gated_gradients_before_a_dense(kind):
    cls, gate = GATED[kind]
    check_layer(lambda: [fn.Dense(3), cls(4), fn.Dense(3)],
                [("dense", "identity", None), ("gated", gate), ("dense", "identity", None)],
                in_dim=4, out_dim=3, loss_name="cross_entropy", seed=30 + list(GATED).index(kind), batch=5)


def test_gated_weight_layout_gate_columns_first():
    """weight is [in, 2·units] with the gate's columns first: swapping the halves changes the output."""
    model = fn.Sequential([fn.GLU(3)])
    model.compile(optimizer=fn.optim.SGD(lr=0.0), loss="mse")
    model.build(4, seed=0)
    rng = np.random.default_rng(5)
    w = rng.normal(size=(4, 6)).astype(np.float32)
    b = rng.normal(size=6).astype(np.float32)
    assert model.layers[0].weights.shape == (4, 6) and model.layers[0].bias.shape == (6,)
    model.set_weights([w, b])
    x = rng.normal(size=(5, 4)).astype(np.float32)
    want = ref.gated(x, w, b, "sigmoid")
    swapped = ref.gated(x, np.concatenate([w[:, 3:], w[:, :3]], 1), np.concatenate([b[3:], b[:3]]), "sigmoid")
    assert np.abs(want - swapped).max() > 1e-2
    np.testing.assert_allclose(model.predict_raw(x), want, rtol=1e-5, atol=1e-6)


# -- normalisation ---------------------------------------------------------


@pytest.mark.parametrize("eps,momentum", [(1e-5, 0.1), (0.5, 0.3)])
def test_batch_norm_gradients_training_mode(eps, momentum):
    errs = check_layer(lambda: [fn.Dense(4), fn.BatchNorm(momentum=momentum, eps=eps), fn.Dense(2)],
                       [("dense", "identity", None), ("batch_norm", eps, momentum), ("dense", "identity", None)],
                       in_dim=3, out_dim=2, seed=40)
    assert {"layers.1.gamma", "layers.1.beta", "layers.0.weight"} <= set(errs)
    assert "layers.1.running_mean" not in errs and "layers.1.running_var" not in errs


def test_batch_norm_gradients_cross_entropy():
    check_layer(lambda: [fn.Dense(5), fn.BatchNorm(), fn.Dense(3)],
                [("dense", "identity", None), ("batch_norm", 1e-5, 0.1), ("dense", "identity", None)],
                in_dim=4, out_dim=3, loss_name="cross_entropy", seed=41, batch=5)


@pytest.mark.parametrize("eps", [1e-5, 0.3])
def test_layer_norm_gradients(eps):
    errs = check_layer(lambda: [fn.Dense(5), fn.LayerNorm(eps=eps)],
                       [("dense", "identity", None), ("layer_norm", eps)], in_dim=4, out_dim=5, seed=50)
    assert set(errs) == {"layers.0.weight", "layers.0.bias", "layers.1.gamma", "layers.1.beta"}


def test_layer_norm_gradients_before_a_dense():
    check_layer(lambda: [fn.Dense(4), fn.LayerNorm(), fn.Dense(3)],
                [("dense", "identity", None), ("layer_norm", 1e-5), ("dense", "identity", None)],
                in_dim=3, out_dim=3, loss_name="cross_entropy", seed=51)


@pytest.mark.parametrize("eps", [1e-6, 0.3])
def test_rms_norm_gradients(eps):
    errs = check_layer(lambda: [fn.Dense(5), fn.RMSNorm(eps=eps)],
                       [("dense", "identity", None), ("rms_norm", eps)], in_dim=4, out_dim=5, seed=60)
    assert set(errs) == {"layers.0.weight", "layers.0.bias", "layers.1.gamma"}


def test_rms_norm_gradients_before_a_dense():
    check_layer(lambda: [fn.Dense(4), fn.RMSNorm(), fn.Dense(2)],
                [("dense", "identity", None), ("rms_norm", 1e-6), ("dense", "identity", None)],
                in_dim=3, out_dim=2, seed=61)


# -- residual blocks ----------------------------------------------------------


_RESIDUAL_TENSORS = {"layers.0.weight", "layers.0.bias", "layers.1.block.0.weight", "layers.1.block.0.bias",
                     "layers.1.block.1.weight", "layers.1.block.1.bias"}


@pytest.mark.parametrize("width,seed,projected", [(4, 70, False), (5, 71, True)],
                         ids=["equal widths", "projection"])
def test_residual_gradients(width, seed, projected):
    errs = check_layer(lambda: [fn.Dense(4), fn.Residual([fn.Dense(width, activation="tanh"), fn.Dense(width)])],
                       [("dense", "identity", None),
                        ("residual", [("dense", "tanh", None), ("dense", "identity", None)])],
                       in_dim=3, out_dim=width, seed=seed)
    extra = {"layers.1.projection.weight", "layers.1.projection.bias"} if projected else set()
    assert set(errs) == _RESIDUAL_TENSORS | extra


def test_residual_projection_shapes():
    model = fn.Sequential([fn.Residual([fn.Dense(5)])])
    model.compile(optimizer=fn.optim.SGD(lr=0.0), loss="mse")
    model.build(3, seed=0)
    shapes = {n: a.shape for n, a, _ in model._net.tensors()}
    assert shapes == {"layers.0.block.0.weight": (3, 5), "layers.0.block.0.bias": (5,),
                      "layers.0.projection.weight": (3, 5), "layers.0.projection.bias": (5,)}


def test_residual_pre_norm_swiglu_block_gradients():
    """A transformer-style block: x + SwiGLU(LayerNorm(x)), then a Dense with a fused activation layer."""
    check_layer(lambda: [fn.Dense(4), fn.Residual([fn.LayerNorm(), fn.SwiGLU(4)]), fn.Dense(3), fn.Tanh()],
                [("dense", "identity", None), ("residual", [("layer_norm", 1e-5), ("gated", "silu")]),
                 ("dense", "identity", None), ("act", "tanh", None)],
                in_dim=3, out_dim=3, seed=72)


def test_residual_with_batch_norm_and_prelu_inside():
    """Buffers and slopes nested in a projected block; BN running stats follow the reference."""
    check_layer(lambda: [fn.Dense(4), fn.Residual([fn.Dense(3), fn.BatchNorm(momentum=0.5), fn.PReLU()]),
                         fn.Dense(2)],
                [("dense", "identity", None),
                 ("residual", [("dense", "identity", None), ("batch_norm", 1e-5, 0.5), ("prelu",)]),
                 ("dense", "identity", None)],
                in_dim=3, out_dim=2, seed=73)


def test_nested_residual_gradients():
    check_layer(lambda: [fn.Dense(4), fn.Residual([fn.Residual([fn.Dense(4, activation="gelu")]), fn.RMSNorm()])],
                [("dense", "identity", None),
                 ("residual", [("residual", [("dense", "gelu", None)]), ("rms_norm", 1e-6)])],
                in_dim=3, out_dim=4, seed=74)


# -- activation layers, softmax, dropout -------------------------------------

ACT_LAYERS = {
    "ReLU": (fn.ReLU, "relu", None),
    "LeakyReLU": (lambda: fn.LeakyReLU(0.2), "leaky_relu", 0.2),
    "LeakyReLU-default": (fn.LeakyReLU, "leaky_relu", 0.01),
    "ELU": (lambda: fn.ELU(0.5), "elu", 0.5),
    "GELU": (fn.GELU, "gelu", None),
    "GELU-tanh": (lambda: fn.GELU(approximate="tanh"), "gelu_tanh", None),
    "SiLU": (fn.SiLU, "silu", None),
    "Swish": (fn.Swish, "silu", None),
    "Sigmoid": (fn.Sigmoid, "sigmoid", None),
    "Tanh": (fn.Tanh, "tanh", None),
    "Softplus": (fn.Softplus, "softplus", None),
    "Identity": (fn.Identity, "identity", None),
}


@pytest.mark.parametrize("kind", list(ACT_LAYERS))
@pytest.mark.parametrize("fused", [True, False])
def test_activation_layer_gradients(kind, fused):
    """Dense(4) + activation layer (fused into the Dense), or kept apart by a Dropout(0) between."""
    make, name, alpha = ACT_LAYERS[kind]
    if fused:
        layers = lambda: [fn.Dense(4), make(), fn.Dense(3)]  # noqa: E731
        spec = [("dense", "identity", None), ("act", name, alpha), ("dense", "identity", None)]
        grad_names = {"layers.0.weight", "layers.0.bias", "layers.2.weight", "layers.2.bias"}
    else:
        layers = lambda: [fn.Dense(4), fn.Dropout(0.0), make(), fn.Dense(3)]  # noqa: E731
        spec = [("dense", "identity", None), ("dropout",), ("act", name, alpha), ("dense", "identity", None)]
        grad_names = {"layers.0.weight", "layers.0.bias", "layers.3.weight", "layers.3.bias"}
    errs = check_layer(layers, spec, in_dim=3, out_dim=3, seed=80 + list(ACT_LAYERS).index(kind))
    assert set(errs) == grad_names


@pytest.mark.parametrize("kind", list(ACT_LAYERS))
def test_activation_layer_after_activated_dense(kind):
    """An activation layer after a Dense that already has an activation is not fused: both apply."""
    make, name, alpha = ACT_LAYERS[kind]
    check_layer(lambda: [fn.Dense(4, activation="tanh"), make()],
                [("dense", "tanh", None), ("act", name, alpha)], in_dim=3, out_dim=4, seed=95)


@pytest.mark.parametrize("t", [1.0, 0.5, 2.0])
def test_softmax_layer_gradients(t):
    check_layer(lambda: [fn.Dense(5), fn.Softmax(temperature=t)],
                [("dense", "identity", None), ("softmax", t)], in_dim=3, out_dim=5, seed=100)


@pytest.mark.parametrize("t", [1.0, 0.5, 2.0])
@pytest.mark.parametrize("loss_name", ["mse", "nll"])
def test_log_softmax_layer_gradients(t, loss_name):
    check_layer(lambda: [fn.Dense(5), fn.LogSoftmax(temperature=t)],
                [("dense", "identity", None), ("log_softmax", t)], in_dim=3, out_dim=5, loss_name=loss_name,
                seed=110)


def test_softmax_as_a_hidden_layer_gradients():
    check_layer(lambda: [fn.Dense(4), fn.Softmax(), fn.Dense(3)],
                [("dense", "identity", None), ("softmax", 1.0), ("dense", "identity", None)],
                in_dim=3, out_dim=3, loss_name="cross_entropy", seed=120)


def test_dropout_rate_zero_is_identity_in_training():
    check_layer(lambda: [fn.Dense(4, activation="tanh"), fn.Dropout(0.0), fn.Dense(3)],
                [("dense", "tanh", None), ("dropout",), ("dense", "identity", None)],
                in_dim=3, out_dim=3, seed=130)
    model = fn.Sequential([fn.Dropout(0.0)])
    model.compile(optimizer=fn.optim.SGD(lr=0.0), loss="mse")
    model.build(7, seed=0)
    x = np.random.default_rng(0).normal(size=(6, 7)).astype(np.float32)
    np.testing.assert_array_equal(model(x, training=True), x)


def test_every_kind_in_one_network():
    """A deeper stack of most layer kinds: the gradient of every tensor still matches."""
    layers = lambda: [  # noqa: E731
        fn.Dense(4), fn.PReLU(), fn.LayerNorm(), fn.GeGLU(4), fn.BatchNorm(),
        fn.Residual([fn.Dense(4), fn.ELU(0.7), fn.RMSNorm()]), fn.SwiGLU(3), fn.Softmax(temperature=2.0), fn.Dense(3),
    ]
    spec = [("dense", "identity", None), ("prelu",), ("layer_norm", 1e-5), ("gated", "gelu"),
            ("batch_norm", 1e-5, 0.1),
            ("residual", [("dense", "identity", None), ("act", "elu", 0.7), ("rms_norm", 1e-6)]),
            ("gated", "silu"), ("softmax", 2.0), ("dense", "identity", None)]
    errs = check_layer(layers, spec, in_dim=3, out_dim=3, loss_name="cross_entropy", seed=140)
    assert len(errs) == 16
