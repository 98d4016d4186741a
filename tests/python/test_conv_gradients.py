"""Gradients of the convolution and pooling layers against finite differences of
a float64 reference (tests/python/conv_reference.py, PyTorch's definitions).

Each layer runs inside ``Dense(D) → Reshape(shape) → layer → Flatten → Dense(3)``
with an MSE loss: the first Dense's weight gradient is xᵀ·(the layer's input
gradient), so checking it checks the layer's input gradient; the conv tensors are
checked directly. A train_step with SGD(lr=0) computes the gradients; every one is
compared with central differences of the reference loss, never with a
hand-written derivative.
"""

from __future__ import annotations

import numpy as np
import pytest

import ferronn as fn

import conv_reference as cr
import reference as ref

BATCH, IN, OUT = 4, 3, 3


def _conv_ref(filters, k, s=(1, 1), pads=(0, 0, 0, 0), d=(1, 1), groups=1, act="identity", bias=True,
              first=False, rank=2):
    def run(h, p, shape):
        x = cr.to_nchw(h, shape, first)
        w = cr.torch_weight(p["weight"])
        y = cr.conv2d(x, w, p["bias"] if bias else None, s, pads, d, groups)
        y = np.tanh(y) if act == "tanh" else y
        return cr.from_nchw(y, rank, first)
    return run


def _pool_ref(size, s, pads=(0, 0, 0, 0), mode="max", first=False, rank=2):
    def run(h, p, shape):
        x = cr.to_nchw(h, shape, first)
        return cr.from_nchw(cr.pool2d(x, size, s, pads, mode), rank, first)
    return run


def _global_ref(mode, first=False):
    def run(h, p, shape):
        x = cr.to_nchw(h, shape, first)
        return (x.max(axis=(2, 3)) if mode == "max" else x.mean(axis=(2, 3))).reshape(len(h), -1)
    return run


def _bn_ref(eps=1e-5):
    """PyTorch's BatchNorm2d in training mode on channels_last samples: per channel,
    over the batch and every position, with the biased variance."""
    def run(h, p, shape):
        x = h.reshape(len(h), -1, shape[-1])
        mean, var = x.mean(axis=(0, 1)), x.var(axis=(0, 1))
        return (p["gamma"] * (x - mean) / np.sqrt(var + eps) + p["beta"]).reshape(len(h), -1)
    return run


CF = "channels_first"
# name: (layer factory, per-sample input shape, reference). Pads are written out
# here (TensorFlow's "same" via cr.same_pads), not taken from the library.
CASES = {
    "conv2d_valid": (lambda: fn.Conv2D(3, 3), (5, 6, 2), _conv_ref(3, 3)),
    "conv2d_same_strided_odd": (lambda: fn.Conv2D(4, (2, 3), strides=(2, 1), padding="same"), (7, 5, 2),
                                _conv_ref(4, (2, 3), s=(2, 1), pads=(*cr.same_pads(7, 2, 2), *cr.same_pads(5, 3, 1)))),
    "conv2d_int_pad_dilated_tanh": (lambda: fn.Conv2D(3, 3, padding=1, dilation_rate=2, activation="tanh"), (6, 7, 3),
                                    _conv_ref(3, 3, pads=(1, 1, 1, 1), d=(2, 2), act="tanh")),
    "conv2d_groups": (lambda: fn.Conv2D(4, 3, groups=2, padding="same", activation="tanh"), (5, 5, 4),
                      _conv_ref(4, 3, pads=(1, 1, 1, 1), groups=2, act="tanh")),
    "conv2d_depthwise_no_bias": (lambda: fn.Conv2D(3, 3, groups=3, use_bias=False), (5, 5, 3),
                                 _conv_ref(3, 3, groups=3, bias=False)),
    "conv2d_channels_first": (lambda: fn.Conv2D(4, 3, strides=2, padding="same", groups=2, data_format=CF), (4, 7, 6),
                              _conv_ref(4, 3, s=(2, 2), pads=(*cr.same_pads(7, 3, 2), *cr.same_pads(6, 3, 2)),
                                        groups=2, first=True)),
    "conv1d_same_strided": (lambda: fn.Conv1D(3, 3, strides=2, padding="same"), (9, 2),
                            _conv_ref(3, (1, 3), s=(1, 2), pads=(0, 0, *cr.same_pads(9, 3, 2)), rank=1)),
    "conv1d_causal_dilated_cf": (lambda: fn.Conv1D(4, 2, dilation_rate=2, padding="causal", groups=2, data_format=CF),
                                 (4, 8), _conv_ref(4, (1, 2), pads=(0, 0, 2, 0), d=(1, 2), groups=2, first=True, rank=1)),
    "maxpool2d_odd": (lambda: fn.MaxPool2D(2), (6, 5, 2), _pool_ref((2, 2), (2, 2))),
    "maxpool2d_same_cf": (lambda: fn.MaxPool2D(3, strides=2, padding="same", data_format=CF), (2, 7, 6),
                          _pool_ref((3, 3), (2, 2), (*cr.same_pads(7, 3, 2), *cr.same_pads(6, 3, 2)), first=True)),
    "avgpool2d_same": (lambda: fn.AvgPool2D(2, padding="same"), (5, 5, 3),
                       _pool_ref((2, 2), (2, 2), (0, 1, 0, 1), mode="avg")),
    "avgpool1d_same": (lambda: fn.AvgPool1D(3, strides=2, padding="same"), (8, 2),
                       _pool_ref((1, 3), (1, 2), (0, 0, *cr.same_pads(8, 3, 2)), mode="avg", rank=1)),
    "maxpool1d_cf": (lambda: fn.MaxPool1D(2, data_format=CF), (2, 7), _pool_ref((1, 2), (1, 2), first=True, rank=1)),
    "global_avg_2d": (lambda: fn.GlobalAvgPool2D(), (3, 4, 2), _global_ref("avg")),
    "global_max_2d_cf": (lambda: fn.GlobalMaxPool2D(data_format=CF), (2, 3, 4), _global_ref("max", first=True)),
    "global_avg_1d": (lambda: fn.GlobalAvgPool1D(), (5, 3), _global_ref("avg")),
    "global_max_1d": (lambda: fn.GlobalMaxPool1D(), (5, 3), _global_ref("max")),
    "batch_norm_per_channel": (lambda: fn.BatchNorm(), (3, 4, 3), _bn_ref()),
    # A ResNet basic block without projection: y = x + conv(tanh(conv(x))), shapes kept.
    "residual_conv_block": (lambda: fn.Residual([fn.Conv2D(3, 3, padding="same", activation="tanh"),
                                                 fn.Conv2D(3, 3, padding="same")]), (4, 5, 3),
                            lambda h, p, shape: h + _conv_ref(3, 3, pads=(1, 1, 1, 1))(
                                _conv_ref(3, 3, pads=(1, 1, 1, 1), act="tanh")(
                                    h, {"weight": p["block.0.weight"], "bias": p["block.0.bias"]}, shape),
                                {"weight": p["block.1.weight"], "bias": p["block.1.bias"]}, shape)),
    "batch_norm_per_feature_of_steps": (lambda: fn.BatchNorm(eps=0.1), (5, 2), _bn_ref(0.1)),
}


def _net_out(x, params, layer_ref, shape):
    h = x @ params["layers.0.weight"] + params["layers.0.bias"]
    local = {k.split(".", 2)[2]: v for k, v in params.items() if k.startswith("layers.2.")}
    y = layer_ref(h, local, shape)
    return y @ params["layers.4.weight"] + params["layers.4.bias"]


def _case(name, seed=0):
    make, shape, layer_ref = CASES[name]
    d = int(np.prod(shape))
    model = fn.Sequential([fn.Dense(d), fn.Reshape(shape), make(), fn.Flatten(), fn.Dense(OUT)])
    model.compile(optimizer=fn.optim.SGD(lr=0.0), loss="mse")
    model.build(IN, seed=0)
    rng = np.random.default_rng(seed)
    tensors = model._net.tensors()
    weights = [(rng.uniform(0.5, 2.0, a.shape) if n.endswith("running_var") else rng.normal(0.0, 0.8, a.shape))
               .astype(np.float32) for n, a, _ in tensors]
    model.set_weights(weights)
    x = rng.normal(size=(BATCH, IN)).astype(np.float32)
    y = rng.normal(size=(BATCH, OUT)).astype(np.float32)
    params = {n: w.astype(np.float64) for (n, _, _), w in zip(tensors, weights)}
    return model, params, x, y, layer_ref, shape


@pytest.mark.parametrize("name", list(CASES))
def test_gradients_match_finite_differences(name):
    model, params, x, y, layer_ref, shape = _case(name)
    x64, y64 = x.astype(np.float64), y.astype(np.float64)

    def loss(ps):
        return ref.loss("mse", _net_out(x64, ps, layer_ref, shape), y64)

    value = model.train_step(x, y)
    assert abs(value - loss(params)) <= 1e-5 * abs(loss(params)) + 1e-6
    if "batch_norm" not in name:  # (inference uses the running statistics)
        np.testing.assert_allclose(model.predict_raw(x), _net_out(x64, params, layer_ref, shape), rtol=1e-4, atol=1e-5)
    grads = dict(model._net.grads())
    expected = {"layers.0.weight", "layers.0.bias", "layers.4.weight", "layers.4.bias"}
    if "conv" in name and "residual" not in name:
        expected |= {"layers.2.weight"} | (set() if "no_bias" in name else {"layers.2.bias"})
    if "batch_norm" in name:
        expected |= {"layers.2.gamma", "layers.2.beta"}
    if "residual" in name:
        expected |= {f"layers.2.block.{j}.{t}" for j in (0, 1) for t in ("weight", "bias")}
    assert set(grads) == expected
    ref.assert_grads_match(grads, params, loss, name)


def test_harness_catches_a_wrong_reference():
    """A reference with the kernel flipped (cross-correlation vs convolution) fails the check."""
    model, params, x, y, _, shape = _case("conv2d_valid")
    wrong = _conv_ref(3, 3)

    def flipped(h, p, shape):
        return wrong(h, {**p, "weight": p["weight"][::-1, ::-1]}, shape)

    assert not np.allclose(model.predict_raw(x), _net_out(x.astype(np.float64), params, flipped, shape), atol=1e-3)


def test_batch_norm_per_channel_running_statistics_and_inference():
    """After a training step: running = 0.9·running + 0.1·batch, the variance unbiased
    over N·H·W values (PyTorch's BatchNorm2d); inference then uses them."""
    model, params, x, y, _, shape = _case("batch_norm_per_channel", seed=3)
    model.train_step(x, y)
    h = (x.astype(np.float64) @ params["layers.0.weight"] + params["layers.0.bias"]).reshape(-1, shape[-1])
    mean, var = h.mean(axis=0), h.var(axis=0, ddof=1)
    after = {n: a for n, a, _ in model._net.tensors()}
    rm = 0.9 * params["layers.2.running_mean"] + 0.1 * mean
    rv = 0.9 * params["layers.2.running_var"] + 0.1 * var
    np.testing.assert_allclose(after["layers.2.running_mean"], rm, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(after["layers.2.running_var"], rv, rtol=1e-5, atol=1e-6)
    p = {**params, "layers.2.running_mean": rm, "layers.2.running_var": rv}

    def inference(h, q, shape):
        z = h.reshape(len(h), -1, shape[-1])
        return (q["gamma"] * (z - q["running_mean"]) / np.sqrt(q["running_var"] + 1e-5) + q["beta"]).reshape(len(h), -1)

    np.testing.assert_allclose(model.predict_raw(x), _net_out(x.astype(np.float64), p, inference, shape),
                               rtol=1e-4, atol=1e-4)
