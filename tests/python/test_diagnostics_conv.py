"""ferronn.diagnostics on convolutional models: dead units counted per channel (a filter
shares its weights across positions), activation statistics on image outputs, checked
against the float64 PyTorch-definition convolution in conv_reference."""

from __future__ import annotations

import numpy as np
import pytest

import conv_reference as cr
import ferronn as fn
from ferronn import diagnostics as dg


def conv_model(channels_first: bool, separate_relu: bool) -> fn.Sequential:
    fmt = "channels_first" if channels_first else "channels_last"
    shape = (2, 7, 6) if channels_first else (7, 6, 2)
    conv = fn.layers.Conv2D(5, 3, data_format=fmt, activation=None if separate_relu else "relu")
    layers = [conv, fn.ReLU()] if separate_relu else [conv]
    model = fn.Sequential([fn.Input(shape=shape), *layers, fn.layers.Flatten(), fn.Dense(3)], seed=1)
    model.compile(optimizer="adam", loss="cross_entropy")
    model.build(shape)
    w, b = model.get_weights()[:2]
    # Filter 1 is dead for inputs in [0, 1): its weights are negative and its bias too.
    w[..., 1] = -np.abs(w[..., 1]) - 0.1
    # Filter 4 (positive weights, negative bias) is dead only where the input is zero.
    w[..., 4] = np.abs(w[..., 4]) + 0.1
    b[:] = [0.1, -0.5, 0.0, 0.2, -0.1]
    model.set_weights([w, b, *model.get_weights()[2:]])
    return model


def reference_pre(model: fn.Sequential, x: np.ndarray, channels_first: bool) -> np.ndarray:
    """The convolution's output (before the ReLU), [N, C, H, W], in float64."""
    w, b = model.get_weights()[:2]
    return cr.conv2d(cr.to_nchw(x.reshape(len(x), -1), x.shape[1:], channels_first), cr.torch_weight(w),
                     b.astype(np.float64), (1, 1), (0, 0, 0, 0), (1, 1), 1)


@pytest.mark.parametrize("channels_first", [False, True])
@pytest.mark.parametrize("separate_relu", [False, True])
def test_dead_units_are_counted_per_channel(channels_first, separate_relu):
    rng = np.random.default_rng(0)
    x = rng.random((20, *model_shape(channels_first))).astype(np.float32)
    if channels_first:
        x[:, :, :3] = 0.0  # the top three rows: filter 4 is dead on the first output row only
    else:
        x[:, :3] = 0.0
    model = conv_model(channels_first, separate_relu)
    pre = reference_pre(model, x, channels_first)
    dead = np.all(pre <= 0, axis=(0, 2, 3))  # per filter: over samples and positions
    assert dead[1] and dead.sum() < 5  # the test's premise: some filters dead, not all
    assert np.all(pre <= 0, axis=0).mean() > dead.mean()  # counting single outputs would differ
    name = "layers.1" if separate_relu else "layers.0"
    got = dg.dead_units(model, x)
    assert set(got) == {name}
    assert got[name] == pytest.approx(dead.mean())  # 1/5 or so, not a fraction of the 5·5·5 outputs


def model_shape(channels_first: bool) -> tuple[int, ...]:
    return (2, 7, 6) if channels_first else (7, 6, 2)


@pytest.mark.parametrize("channels_first", [False, True])
def test_activation_stats_on_image_outputs(channels_first):
    rng = np.random.default_rng(2)
    x = rng.random((9, *model_shape(channels_first))).astype(np.float32)
    model = conv_model(channels_first, separate_relu=True)
    post = np.maximum(reference_pre(model, x, channels_first), 0.0)  # [N, C, H, W]
    stats = dg.activation_stats(model, x)
    conv, relu, flat, dense = (stats[f"layers.{i}"] for i in range(4))
    assert conv["shape"] == ((5, 5, 4) if channels_first else (5, 4, 5))
    assert relu["shape"] == conv["shape"] and flat["shape"] == (100,) and dense["shape"] == (3,)
    np.testing.assert_allclose(relu["channel_mean"], post.mean(axis=(0, 2, 3)), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(relu["channel_std"], post.std(axis=(0, 2, 3)), rtol=1e-4, atol=1e-6)
    assert relu["mean"] == pytest.approx(post.mean(), rel=1e-5)
    assert flat["channel_mean"] is None and dense["channel_std"] is None


def test_dense_after_channels_first_conv_is_per_unit():
    """A Dense layer on a sequence acts on the last axis: its units are its features."""
    model = fn.Sequential([fn.Input(shape=(3, 8)), fn.layers.Conv1D(4, 3, data_format="channels_first"),
                           fn.Dense(2, activation="relu"), fn.layers.Flatten(), fn.Dense(2)], seed=0)
    model.compile(optimizer="adam", loss="cross_entropy")
    model.build((3, 8))
    x = np.random.default_rng(1).normal(size=(10, 3, 8)).astype(np.float32)
    outputs = dg.layer_outputs(model, x)
    pre = outputs["layers.1"]  # relu(dense); dead where the output is 0 for every sample and position
    per_unit = np.all(pre.reshape(10, 4, 2) <= 0, axis=(0, 1)).mean()
    assert dg.dead_units(model, x)["layers.1"] == pytest.approx(per_unit)
    assert dg.activation_stats(model, x)["layers.1"]["shape"] == (4, 2)
