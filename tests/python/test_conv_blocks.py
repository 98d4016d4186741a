"""ResNet-style blocks on images: Residual with a projection (1x1 strided
convolution, optionally followed by BatchNorm), BatchNorm per channel of
channels_first images (``axis=1``) and PReLU per channel (``shared_axes``).

Gradients against central differences of float64 NumPy transcriptions of
PyTorch's definitions (``nn.Conv2d``, ``nn.BatchNorm2d`` in training mode,
``nn.PReLU(num_parameters=C)``, torchvision's ``BasicBlock`` with its
``downsample``), written on [N, C, H, W] tensors (tests/python/conv_reference.py),
independent of ferronn's own NumPy forwards. The layer under test runs inside
``Dense(D) → Reshape(shape) → layer → Flatten → Dense(3)``, as in
test_conv_gradients.py.
"""

from __future__ import annotations

import numpy as np
import pytest

import ferronn as fn
from ferronn.errors import ConfigError

import conv_reference as cr
import reference as ref

BATCH, IN, OUT = 4, 3, 3
CF = "channels_first"


def conv(x, p, w, b=None, s=(1, 1), pads=(0, 0, 0, 0)):
    """nn.Conv2d on NCHW with ferronn's weight ``p[w]`` (PyTorch's is its transpose)."""
    return cr.conv2d(x, cr.torch_weight(p[w]), None if b is None else p[b], s, pads, (1, 1), 1)


def bn2d(x, gamma, beta, eps=1e-5):
    """nn.BatchNorm2d in training mode: per channel over (N, H, W), biased variance."""
    mean, var = x.mean(axis=(0, 2, 3), keepdims=True), x.var(axis=(0, 2, 3), keepdims=True)
    return gamma[None, :, None, None] * (x - mean) / np.sqrt(var + eps) + beta[None, :, None, None]


def prelu(x, alpha):
    """nn.PReLU(num_parameters=C): the slope of channel c on every position."""
    return np.where(x > 0, x, alpha[None, :, None, None] * x)


def nchw_case(layer_ref, first, rank=2):
    """A reference written on NCHW, run on ferronn's flat rows of either layout."""
    def run(h, p, shape):
        return cr.from_nchw(layer_ref(cr.to_nchw(h, shape, first), p), rank, first)
    return run


def _downsample_block(x, p):
    """torchvision's BasicBlock(2 → 4, stride 2) with tanh for relu (smooth for the
    differences): tanh(bn2(conv2(tanh(bn1(conv1(x)))))) without the last activation,
    plus downsample(x) = bn(conv1x1 stride 2 (x))."""
    h = np.tanh(bn2d(conv(x, p, "block.0.weight", s=(2, 2), pads=(1, 1, 1, 1)), p["block.1.gamma"],
                     p["block.1.beta"]))
    h = bn2d(conv(h, p, "block.3.weight", pads=(1, 1, 1, 1)), p["block.4.gamma"], p["block.4.beta"])
    skip = bn2d(conv(x, p, "projection.0.weight", s=(2, 2)), p["projection.1.gamma"], p["projection.1.beta"])
    return skip + h


def _resnet_block(fmt, axis):
    return fn.Residual([fn.Conv2D(4, 3, strides=2, padding=1, use_bias=False, data_format=fmt),
                        fn.BatchNorm(axis=axis), fn.Activation("tanh"),
                        fn.Conv2D(4, 3, padding=1, use_bias=False, data_format=fmt), fn.BatchNorm(axis=axis)],
                       projection="batchnorm")


BN_GRADS = ("gamma", "beta")
# name: (layer factory, per-sample input shape, reference, the layer's trainable tensors)
CASES = {
    # Channels and stride change: the skip path is a 1x1 stride-2 convolution with a bias.
    "residual_projection_auto": (
        lambda: fn.Residual([fn.Conv2D(4, 3, strides=2, padding="same", activation="tanh"),
                             fn.Conv2D(4, 3, padding="same")]), (5, 6, 2),
        nchw_case(lambda x, p: conv(x, p, "projection.0.weight", "projection.0.bias", s=(2, 2)) + conv(
            np.tanh(conv(x, p, "block.0.weight", "block.0.bias", s=(2, 2), pads=(*cr.same_pads(5, 3, 2),
                                                                                 *cr.same_pads(6, 3, 2)))),
            p, "block.1.weight", "block.1.bias", pads=(1, 1, 1, 1)), False),
        ["block.0.weight", "block.0.bias", "block.1.weight", "block.1.bias", "projection.0.weight",
         "projection.0.bias"]),
    "resnet_basic_block_channels_last": (
        lambda: _resnet_block(None, -1), (5, 6, 2), nchw_case(_downsample_block, False),
        ["block.0.weight", "block.1.gamma", "block.1.beta", "block.3.weight", "block.4.gamma", "block.4.beta",
         "projection.0.weight", "projection.1.gamma", "projection.1.beta"]),
    "resnet_basic_block_channels_first": (
        lambda: _resnet_block(CF, 1), (2, 5, 6), nchw_case(_downsample_block, True),
        ["block.0.weight", "block.1.gamma", "block.1.beta", "block.3.weight", "block.4.gamma", "block.4.beta",
         "projection.0.weight", "projection.1.gamma", "projection.1.beta"]),
    # Conv1D, channels change at stride 1: a 1x1 convolution projects the channels only.
    "residual_projection_conv1d": (
        lambda: fn.Residual([fn.Conv1D(3, 3, padding="same")]), (6, 2),
        nchw_case(lambda x, p: conv(x, {"w": p["projection.0.weight"]}, "w") + p["projection.0.bias"][None, :, None, None]
                  + conv(x, {"w": p["block.0.weight"]}, "w", pads=(0, 0, 1, 1)) + p["block.0.bias"][None, :, None, None],
                  False, rank=1),
        ["block.0.weight", "block.0.bias", "projection.0.weight", "projection.0.bias"]),
    "batch_norm_channels_first": (
        lambda: fn.BatchNorm(axis=1, eps=0.01), (3, 4, 5),
        nchw_case(lambda x, p: bn2d(x, p["gamma"], p["beta"], eps=0.01), True), list(BN_GRADS)),
    "batch_norm_channels_first_sequence": (
        lambda: fn.BatchNorm(axis=1), (3, 5),
        nchw_case(lambda x, p: bn2d(x, p["gamma"], p["beta"]), True, rank=1), list(BN_GRADS)),
    "prelu_per_channel_last": (
        lambda: fn.PReLU(shared_axes=[1, 2]), (3, 4, 2), nchw_case(lambda x, p: prelu(x, p["alpha"]), False),
        ["alpha"]),
    "prelu_per_channel_first": (
        lambda: fn.PReLU(shared_axes=[2, 3], init=0.1), (2, 3, 4), nchw_case(lambda x, p: prelu(x, p["alpha"]), True),
        ["alpha"]),
    "prelu_per_channel_sequence": (
        lambda: fn.PReLU(shared_axes=[1]), (5, 3), nchw_case(lambda x, p: prelu(x, p["alpha"]), False, rank=1),
        ["alpha"]),
}


def _net_out(x, params, layer_ref, shape):
    h = x @ params["layers.0.weight"] + params["layers.0.bias"]
    local = {k.split(".", 2)[2]: v for k, v in params.items() if k.startswith("layers.2.")}
    y = layer_ref(h, local, shape)
    return y @ params["layers.4.weight"] + params["layers.4.bias"]


def _case(name, seed=0):
    make, shape, layer_ref, names = CASES[name]
    d = int(np.prod(shape))
    model = fn.Sequential([fn.Dense(d), fn.Reshape(shape), make(), fn.Flatten(), fn.Dense(OUT)])
    model.compile(optimizer=fn.optim.SGD(lr=0.0), loss="mse")
    model.build(IN, seed=0)
    rng = np.random.default_rng(seed)
    tensors = model._net.tensors()
    weights = [(rng.uniform(0.5, 2.0, a.shape) if n.endswith("running_var") else
                rng.uniform(0.05, 0.6, a.shape) if n.endswith("alpha") else rng.normal(0.0, 0.8, a.shape))
               .astype(np.float32) for n, a, _ in tensors]
    model.set_weights(weights)
    x = rng.normal(size=(BATCH, IN)).astype(np.float32)
    y = rng.normal(size=(BATCH, OUT)).astype(np.float32)
    params = {n: w.astype(np.float64) for (n, _, _), w in zip(tensors, weights)}
    return model, params, x, y, layer_ref, shape, names


@pytest.mark.parametrize("name", list(CASES))
def test_gradients_match_finite_differences(name):
    model, params, x, y, layer_ref, shape, names = _case(name)
    x64, y64 = x.astype(np.float64), y.astype(np.float64)

    def loss(ps):
        return ref.loss("mse", _net_out(x64, ps, layer_ref, shape), y64)

    value = model.train_step(x, y)
    assert abs(value - loss(params)) <= 1e-5 * abs(loss(params)) + 1e-6
    grads = dict(model._net.grads())
    expected = {"layers.0.weight", "layers.0.bias", "layers.4.weight", "layers.4.bias"}
    assert set(grads) == expected | {f"layers.2.{n}" for n in names}
    ref.assert_grads_match(grads, params, loss, name)


def test_batch_norm_channels_first_running_statistics_and_inference():
    """PyTorch's BatchNorm2d on NCHW: the running statistics follow the momentum
    update (variance unbiased over N·H·W), and inference uses them."""
    model, params, x, y, _, shape, _ = _case("batch_norm_channels_first", seed=2)
    model.train_step(x, y)
    h = cr.to_nchw(x.astype(np.float64) @ params["layers.0.weight"] + params["layers.0.bias"], shape, True)
    mean, var = h.mean(axis=(0, 2, 3)), h.var(axis=(0, 2, 3), ddof=1)
    after = {n: a for n, a, _ in model._net.tensors()}
    rm = 0.9 * params["layers.2.running_mean"] + 0.1 * mean
    rv = 0.9 * params["layers.2.running_var"] + 0.1 * var
    np.testing.assert_allclose(after["layers.2.running_mean"], rm, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(after["layers.2.running_var"], rv, rtol=1e-5, atol=1e-6)

    def inference(h, q, shape):
        z = cr.to_nchw(h, shape, True)
        c = (None, slice(None), None, None)
        out = q["gamma"][c] * (z - q["running_mean"][c]) / np.sqrt(q["running_var"][c] + 0.01) + q["beta"][c]
        return cr.from_nchw(out, 2, True)

    p = {**params, "layers.2.running_mean": rm, "layers.2.running_var": rv}
    np.testing.assert_allclose(model.predict_raw(x), _net_out(x.astype(np.float64), p, inference, shape),
                               rtol=1e-4, atol=1e-4)


def _basic_block_model(fmt=None, axis=-1, shape=(8, 8, 3)):
    return fn.Sequential([
        fn.Conv2D(8, 3, padding=1, use_bias=False, data_format=fmt), fn.BatchNorm(axis=axis), fn.ReLU(),
        _resnet_block(fmt, axis), fn.Flatten(), fn.Dense(2)], input_shape=shape)


def test_param_counts_match_pytorch_basic_block():
    """conv3x3(3→8) + bn, then BasicBlock(8 → 4, stride 2) with its downsample, as
    PyTorch counts them (BatchNorm's weight and bias; running statistics are buffers)."""
    model = _basic_block_model()
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    tensors = {n: a.size for n, a, trainable in model._net.tensors() if trainable}
    torch_block = (3 * 3 * 8 * 4) + 2 * 4 + (3 * 3 * 4 * 4) + 2 * 4 + (8 * 4) + 2 * 4
    assert sum(v for n, v in tensors.items() if n.startswith("layers.3.")) == torch_block
    assert sum(tensors.values()) == 3 * 3 * 3 * 8 + 2 * 8 + torch_block + 4 * 4 * 4 * 2 + 2
    lines: list[str] = []
    model.summary(print_fn=lines.append)
    rows = {line.split()[0]: line for line in "\n".join(lines).splitlines() if line.strip()}
    assert "(None, 4, 4, 4)" in rows["Residual"] and f"{torch_block + 3 * 2 * 4:,}" in rows["Residual"]  # running statistics count, as in Keras
    text = "\n".join(lines)
    assert "projection" in text and text.count("Conv2D") == 4 and text.count("BatchNorm") == 4


def test_basic_block_trains_saves_and_loads(tmp_path):
    rng = np.random.default_rng(0)
    for fmt, axis, shape in [(None, -1, (8, 8, 3)), (CF, 1, (3, 8, 8))]:
        model = _basic_block_model(fmt, axis, shape)
        model.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
        x = rng.normal(size=(16, *shape)).astype(np.float32)
        y = rng.integers(0, 2, 16)
        model.fit(x, y, epochs=2, batch_size=8, verbose=0)
        path = tmp_path / f"block_{axis}.ferronn"
        model.save(path)
        back = fn.load(path)
        np.testing.assert_array_equal(back.predict_raw(x), model.predict_raw(x))
        block = back.layers[3]
        assert block.projection == "batchnorm" and back.layers[1].axis == axis
        assert [type(layer).__name__ for layer in block._projection] == ["Conv2D", "BatchNorm"]
        assert block._projection[1].axis == axis and block._projection[0].strides == (2, 2)
        assert [n for n, _, _ in back._net.tensors()] == [n for n, _, _ in model._net.tensors()]


def test_residual_projection_errors():
    with pytest.raises(ConfigError, match="projection must be one of"):
        fn.Residual([fn.Conv2D(4, 3)], projection="dense")
    # A block that grows the image: no 1x1 strided convolution gives that.
    _refuses(fn.Sequential([fn.Residual([fn.Conv2D(4, 3, padding=2)])], input_shape=(5, 5, 2)), "no projection")
    # projection="batchnorm" needs images or sequences.
    _refuses(fn.Sequential([fn.Residual([fn.Dense(3)], projection="batchnorm")], input_shape=(4,)), "flat inputs")


def _refuses(model, match):
    """Building ``model`` raises ConfigError matching ``match`` and leaves it unbuilt."""
    with pytest.raises(ConfigError, match=match):
        model.compile(optimizer="sgd", loss="mse")
    assert not model.built


def test_axis_and_shared_axes_errors():
    for bad in (0, -2, 1.5, "1", True):
        with pytest.raises(ConfigError, match="BatchNorm axis"):
            fn.BatchNorm(axis=bad)
    _refuses(fn.Sequential([fn.BatchNorm(axis=2), fn.Flatten(), fn.Dense(1)], input_shape=(4, 5, 3)), "axis=2")
    for bad in ([], [0], "1", [1.0]):
        with pytest.raises(ConfigError, match="shared_axes"):
            fn.PReLU(shared_axes=bad)
    _refuses(fn.Sequential([fn.PReLU(shared_axes=[1]), fn.Flatten(), fn.Dense(1)], input_shape=(4, 5, 3)),
             "shared_axes")


def test_prelu_shared_axes_spec_round_trip_and_sharing(tmp_path):
    model = fn.Sequential([fn.PReLU(shared_axes=[1, 2]), fn.Flatten(), fn.Dense(1)], input_shape=(2, 3, 4))
    model.compile(optimizer="sgd", loss="mse")
    assert model.layers[0].alpha.shape == (4,)
    every = fn.Sequential([fn.PReLU(shared_axes=[1, 2, 3]), fn.Flatten(), fn.Dense(1)], input_shape=(2, 3, 4))
    every.compile(optimizer="sgd", loss="mse")
    assert every.layers[0].alpha.shape == (1,)
    model.layers[0].alpha = np.array([0.1, 0.2, 0.3, 0.4], dtype=np.float32)
    path = tmp_path / "prelu.ferronn"
    model.save(path)
    back = fn.load(path)
    x = np.random.default_rng(1).normal(size=(5, 2, 3, 4)).astype(np.float32)
    np.testing.assert_array_equal(back.predict_raw(x), model.predict_raw(x))
    np.testing.assert_array_equal(back.layers[0].alpha, model.layers[0].alpha)


def test_batchnorm_beyond_batchnorm2d_refuses_the_torch_layout_by_name(tmp_path):
    """Per-channel forms export (test_onnx_conv / test_torch_conv); a BatchNorm(axis=1) over
    three spatial axes has no nn.BatchNorm1d/2d form: ExportError naming it, nothing written."""
    model = fn.Sequential([fn.BatchNorm(axis=1), fn.Flatten(), fn.Dense(2)], input_shape=(2, 3, 4, 5), seed=0)
    model.compile(loss="mse")
    with pytest.raises(fn.ExportError, match=r"layers\.0 \(BatchNorm\(axis=1\) on inputs of shape \(2, 3, 4, 5\)\)"):
        model.save(tmp_path / "t.safetensors", layout="torch")
    assert not (tmp_path / "t.safetensors").exists()
