"""Per-sample shapes through a model: ``output_shape`` of every kind, input shapes
declared or taken from the first fit, Dense on the last axis of N-D inputs
(Keras' rule), and what is refused with a named error."""

from __future__ import annotations

import numpy as np
import pytest

from safetensors.numpy import load_file

import ferronn as fn

import reference as ref


def test_elementwise_kinds_keep_any_shape():
    for layer in [fn.ReLU(), fn.Activation("tanh"), fn.LeakyReLU(0.2), fn.Dropout(0.5), fn.PReLU(), fn.BatchNorm()]:
        assert layer.output_shape((5, 4, 3)) == (5, 4, 3)
        assert layer.output_shape((7,)) == (7,)


@pytest.mark.parametrize("layer", [fn.Softmax(), fn.LayerNorm(), fn.RMSNorm(), fn.SwiGLU(3)],
                         ids=repr)
def test_row_kinds_refuse_nd_inputs_with_a_config_error(layer):
    assert len(layer.output_shape((6,))) == 1
    with pytest.raises(fn.ConfigError, match="Flatten"):
        layer.output_shape((4, 3))


def test_flatten_and_reshape_shapes():
    assert fn.Flatten().output_shape((3, 4, 5)) == (60,)
    assert fn.Reshape((4, -1)).output_shape((3, 4, 5)) == (4, 15)
    with pytest.raises(fn.ConfigError):
        fn.Reshape((7, -1)).output_shape((3, 4, 5))
    with pytest.raises(fn.ConfigError):
        fn.Reshape((2, 2)).output_shape((5,))


def test_plain_models_keep_working_and_refuse_nd_x():
    model = fn.Sequential([fn.Dense(3)], input_dim=4)
    model.compile(loss="mse")
    assert model.input_shape == (4,)
    x = np.ones((2, 4), np.float32)
    assert model.predict_raw(x).shape == (2, 3)
    with pytest.raises(fn.ShapeError, match=r"2-D \(samples, features\).*\(4,\)"):
        model.predict_raw(np.ones((2, 2, 2), np.float32))


def test_input_shape_taken_from_the_first_fit_and_kept_by_a_failed_one():
    model = fn.Sequential([fn.Flatten(), fn.Dense(2)])
    model.compile(loss="mse")
    with pytest.raises(fn.ShapeError):
        model.fit(np.ones((3, 2, 5), np.float32), np.ones((4, 2), np.float32), verbose=0)
    assert not model.built and model.input_shape is None
    model.fit(np.ones((3, 2, 5), np.float32), np.ones((3, 2), np.float32), verbose=0)
    assert model.input_shape == (2, 5)
    with pytest.raises(fn.ShapeError, match=r"\(2, 5\)"):
        model.predict(np.ones((3, 5, 2), np.float32))


def _seq_model():
    model = fn.Sequential([fn.Dense(3, activation="tanh"), fn.Flatten(), fn.Dense(2)], input_shape=(4, 5))
    model.compile(optimizer=fn.optim.SGD(lr=0.0), loss="mse")
    rng = np.random.default_rng(0)
    model.set_weights([rng.normal(0, 0.6, w.shape).astype(np.float32) for w in model.get_weights()])
    return model


def _seq_ref(x, p):
    h = np.tanh(x.reshape(len(x), 4, 5) @ p["layers.0.weight"] + p["layers.0.bias"])  # per step, as Keras
    return h.reshape(len(x), -1) @ p["layers.2.weight"] + p["layers.2.bias"]


def test_dense_acts_on_the_last_axis():
    model = _seq_model()
    assert model.layers[0].weights.shape == (5, 3)
    assert model.layers[0].output_shape((4, 5)) == (4, 3)
    x = np.random.default_rng(1).normal(size=(6, 4, 5)).astype(np.float32)
    params = {n: a.astype(np.float64) for n, a, _ in model._net.tensors()}
    np.testing.assert_allclose(model.predict_raw(x), _seq_ref(x.astype(np.float64), params), rtol=1e-5, atol=1e-5)
    # Without the Flatten, the output keeps the steps axis.
    alone = fn.Sequential([fn.Dense(3)], input_shape=(4, 5))
    alone.compile(loss="mse")
    assert alone.predict_raw(x).shape == (6, 4, 3)


def test_dense_on_the_last_axis_gradients():
    model = _seq_model()
    rng = np.random.default_rng(2)
    x, y = rng.normal(size=(6, 4, 5)).astype(np.float32), rng.normal(size=(6, 2)).astype(np.float32)
    params = {n: a.astype(np.float64) for n, a, _ in model._net.tensors()}
    model.train_step(x, y)
    x64 = x.astype(np.float64)
    for name, g in model._net.grads():
        fd = ref.numeric_grad(lambda v, name=name: ref.loss("mse", _seq_ref(x64, {**params, name: v}), y), params[name])
        assert ref.rel_err(g, fd, floor=1e-6) <= 1e-3, name


def test_nd_dense_exports_as_a_linear_on_the_last_axis(tmp_path):
    model = _seq_model()  # Dense(3) on (4, 5): nn.Linear(5, 3), Tanh, Flatten, nn.Linear(12, 2)
    model.save(tmp_path / "t.safetensors", layout="torch")
    shapes = {k: v.shape for k, v in load_file(str(tmp_path / "t.safetensors")).items()}
    assert shapes == {"0.weight": (3, 5), "0.bias": (3,), "3.weight": (2, 12), "3.bias": (2,)}


def test_residual_on_images_projects_or_refuses():
    keeps = fn.Residual([fn.Conv2D(3, 3, padding="same"), fn.ReLU()])
    assert keeps.output_shape((5, 5, 3)) == (5, 5, 3)
    # More channels: a 1x1 convolution projects the skip path (tests/python/test_conv_blocks.py).
    model = fn.Sequential([fn.Residual([fn.Conv2D(4, 3, padding="same")])], input_shape=(5, 5, 3))
    model.compile(loss="mse")
    assert model.layers[0].get_params()["projection.0.weight"].shape == (1, 1, 3, 4)
    # A block that grows the image has no strided 1x1 projection.
    model = fn.Sequential([fn.Residual([fn.Conv2D(4, 3, padding=2)])], input_shape=(5, 5, 3))
    with pytest.raises(fn.ConfigError, match="no projection"):
        model.compile(loss="mse")
    assert not model.built


def test_input_and_output_shape_are_per_sample_on_ferronn_models():
    model = fn.Sequential([fn.Conv2D(4, 3), fn.Flatten(), fn.Dense(3)], input_shape=(6, 6, 2))
    assert model.input_shape == (6, 6, 2) and model.output_shape == (3,)
    assert fn.Sequential([fn.Dense(3)]).output_shape is None  # not known before the input shape
