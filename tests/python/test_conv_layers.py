"""Convolution and pooling layers: forward against float64 transcriptions of
PyTorch's definitions with the same weights, output shapes against the formulas,
parameter counts, save/load, determinism across thread counts, the diagnostics,
bad input, and a small CNN that learns the 8x8 digits."""

from __future__ import annotations

import math

import numpy as np
import pytest

import ferronn as fn

import conv_reference as cr
import reference as ref

CF = "channels_first"


def _model(layers, shape, loss="mse", seed=0):
    model = fn.Sequential(layers, input_shape=shape)
    model.compile(optimizer=fn.optim.SGD(lr=0.0), loss=loss)
    rng = np.random.default_rng(seed)
    names = [n for n, _, _ in model._net.tensors()]
    model.set_weights([(rng.uniform(0.5, 2.0, w.shape) if n.endswith("running_var") else rng.normal(0.0, 0.7, w.shape))
                       .astype(np.float32) for n, w in zip(names, model.get_weights())])
    return model


# -- forward against PyTorch's definitions -------------------------------------


@pytest.mark.parametrize("first", [False, True])
@pytest.mark.parametrize("groups,filters,channels", [(1, 5, 3), (2, 4, 6), (3, 3, 3)])
def test_conv2d_forward_matches_pytorch_definition(first, groups, filters, channels):
    shape = (channels, 9, 8) if first else (9, 8, channels)
    model = _model([fn.Conv2D(filters, (3, 2), strides=(2, 1), padding=(1, 2), dilation_rate=(1, 2), groups=groups,
                              activation="relu", data_format=CF if first else None)], shape)
    x = np.random.default_rng(1).normal(size=(3, *shape)).astype(np.float32)
    w, b = model.layers[0].weights, model.layers[0].bias
    assert w.shape == (3, 2, channels // groups, filters)
    y = cr.conv2d(cr.to_nchw(x.reshape(3, -1), shape, first), cr.torch_weight(w), b, (2, 1), (1, 1, 2, 2), (1, 2), groups)
    want = cr.from_nchw(np.maximum(y, 0.0), 2, first)
    got = model.predict_raw(x)
    assert got.shape == (3, *model.layers[0].output_shape(shape))
    np.testing.assert_allclose(got.reshape(3, -1), want, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("first", [False, True])
def test_conv1d_forward_matches_pytorch_definition(first):
    shape = (4, 11) if first else (11, 4)
    model = _model([fn.Conv1D(6, 3, strides=2, padding="same", groups=2, data_format=CF if first else None)], shape)
    x = np.random.default_rng(2).normal(size=(2, *shape)).astype(np.float32)
    w, b = model.layers[0].weights, model.layers[0].bias
    assert w.shape == (3, 2, 6)
    y = cr.conv2d(cr.to_nchw(x.reshape(2, -1), shape, first), cr.torch_weight(w), b, (1, 2), (0, 0, 1, 1), (1, 1), 2)
    np.testing.assert_allclose(model.predict_raw(x).reshape(2, -1), cr.from_nchw(y, 1, first), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("mode", ["max", "avg"])
@pytest.mark.parametrize("padding", ["valid", "same"])
def test_pool2d_forward_matches_the_definitions(mode, padding):
    shape = (7, 6, 3)
    cls = fn.MaxPool2D if mode == "max" else fn.AvgPool2D
    model = _model([cls(3, strides=2, padding=padding)], shape)
    x = np.random.default_rng(3).normal(size=(2, *shape)).astype(np.float32)
    pads = (*cr.same_pads(7, 3, 2), *cr.same_pads(6, 3, 2)) if padding == "same" else (0, 0, 0, 0)
    want = cr.from_nchw(cr.pool2d(cr.to_nchw(x.reshape(2, -1), shape, False), (3, 3), (2, 2), pads, mode), 2, False)
    np.testing.assert_allclose(model.predict_raw(x).reshape(2, -1), want, rtol=1e-6, atol=1e-6)


# -- shapes ---------------------------------------------------------------------


def _formula(size, k, s, d, padding):
    if padding == "same":
        return math.ceil(size / s)
    return (size - d * (k - 1) - 1) // s + 1


@pytest.mark.parametrize("padding", ["valid", "same"])
@pytest.mark.parametrize("size,k,s,d", [(28, 3, 1, 1), (28, 3, 2, 1), (13, 4, 3, 1), (9, 2, 1, 3), (7, 7, 2, 1)])
def test_output_shapes_follow_the_formulas(padding, size, k, s, d):
    conv = fn.Sequential([fn.Conv2D(5, k, strides=s, dilation_rate=d, padding=padding)], input_shape=(size, size + 1, 2))
    conv.compile(loss="mse")
    want = (_formula(size, k, s, d, padding), _formula(size + 1, k, s, d, padding), 5)
    assert conv.predict_raw(np.zeros((1, size, size + 1, 2), np.float32)).shape == (1, *want)
    pool = fn.Sequential([fn.MaxPool1D(k, strides=s, padding=padding)], input_shape=(size, 3))
    pool.compile(loss="mse")
    assert pool.predict_raw(np.zeros((2, size, 3), np.float32)).shape == (2, _formula(size, k, s, 1, padding), 3)


def test_explicit_padding_shape():
    model = fn.Sequential([fn.Conv2D(2, 3, padding=((2, 0), (1, 3)))], input_shape=(5, 5, 1))
    model.compile(loss="mse")
    assert model.predict_raw(np.zeros((1, 5, 5, 1), np.float32)).shape == (1, (5 + 2 - 2), (5 + 4 - 2), 2)


def test_summary_shapes_and_pytorch_parameter_counts():
    model = fn.Sequential([fn.Input(shape=(28, 28, 1)), fn.Conv2D(32, 3, padding="same", activation="relu"),
                           fn.MaxPool2D(2), fn.Conv2D(64, 3, padding="same", activation="relu"), fn.MaxPooling2D(2),
                           fn.Flatten(), fn.Dense(128, activation="relu"), fn.Dense(10)])
    model.compile(loss="cross_entropy")
    lines: list[str] = []
    model.summary(print_fn=lines.append)
    text = lines[0]
    for shape in ["(None, 28, 28, 32)", "(None, 14, 14, 32)", "(None, 7, 7, 64)", "(None, 3136)", "(None, 10)"]:
        assert shape in text
    # PyTorch: Conv2d(1, 32, 3) 320, Conv2d(32, 64, 3) 18496, Linear(3136, 128) 401536, Linear(128, 10) 1290.
    assert model.n_params == 320 + 18496 + 401536 + 1290
    assert "Total params: 421,642" in text


def test_depthwise_parameter_count():
    model = fn.Sequential([fn.Conv2D(8, 3, groups=8, use_bias=False)], input_shape=(6, 6, 8))
    model.compile(loss="mse")
    assert model.n_params == 8 * 3 * 3  # nn.Conv2d(8, 8, 3, groups=8, bias=False)


# -- N-D data through the model ----------------------------------------------------


def test_input_shape_from_first_fit_and_reshaped_outputs():
    x = np.random.default_rng(4).random((12, 6, 6, 2)).astype(np.float32)
    model = fn.Sequential([fn.Conv2D(3, 3, padding="same"), fn.AvgPool2D(2)])
    model.compile(optimizer=fn.optim.SGD(lr=0.01), loss="mse")
    model.fit(x, np.zeros((12, 27), np.float32), epochs=1, verbose=0, seed=0)
    assert model.input_shape == (6, 6, 2)
    assert model.predict_raw(x).shape == (12, 3, 3, 3)
    assert model(x).shape == (12, 3, 3, 3)
    # A non-contiguous or float64 input gives the same result as the contiguous float32 one.
    np.testing.assert_array_equal(model.predict_raw(np.asfortranarray(x.astype(np.float64))), model.predict_raw(x))


def test_save_load_round_trip(tmp_path):
    model = _model([fn.Conv2D(4, 3, strides=2, padding="same", groups=2, data_format=CF, activation="tanh"),
                    fn.MaxPool2D(2, padding="same", data_format=CF), fn.Flatten(),
                    fn.Dense(3)], (2, 9, 7), loss="cross_entropy")
    x = np.random.default_rng(5).normal(size=(5, 2, 9, 7)).astype(np.float32)
    model.fit(x, np.arange(5) % 3, epochs=1, verbose=0, seed=0)
    path = tmp_path / "cnn.fnn"
    model.save(path)
    back = fn.load(path)
    assert back.input_shape == (2, 9, 7)
    assert repr(back) == repr(model)
    np.testing.assert_array_equal(back.predict_raw(x), model.predict_raw(x))
    for a, b in zip(back.get_weights(), model.get_weights()):
        np.testing.assert_array_equal(a, b)


def test_sequence_model_round_trip(tmp_path):
    model = _model([fn.Conv1D(4, 3, padding="causal", activation="tanh"), fn.BatchNorm(), fn.Dense(5),
                    fn.GlobalMaxPool1D(), fn.Dense(2)], (10, 3))
    x = np.random.default_rng(6).normal(size=(4, 10, 3)).astype(np.float32)
    model.train_step(x, np.ones((4, 2), np.float32))
    model.save(tmp_path / "seq.fnn")
    back = fn.load(tmp_path / "seq.fnn")
    assert back.layers[0].padding == "causal"
    assert back.layers[1].gamma.shape == (4,) and back.layers[2].weights.shape == (4, 5)
    np.testing.assert_array_equal(back.predict_raw(x), model.predict_raw(x))
    np.testing.assert_array_equal(back(x, training=True), model(x, training=True))


def _train(threads):
    fn.set_num_threads(threads)
    rng = np.random.default_rng(7)
    x = rng.random((64, 12, 12, 3)).astype(np.float32)
    y = rng.integers(0, 4, 64)
    model = fn.Sequential([fn.Conv2D(16, 3, padding="same", activation="relu"), fn.MaxPool2D(2),
                           fn.Conv2D(8, 3, groups=2, activation="relu"), fn.GlobalAvgPool2D(), fn.Dense(4)],
                          input_shape=(12, 12, 3), seed=3)
    model.compile(optimizer=fn.optim.Adam(1e-2), loss="cross_entropy")
    model.fit(x, y, epochs=2, batch_size=32, verbose=0, seed=1)
    return model.get_weights(), model.predict_raw(x)


def test_training_is_identical_across_thread_counts():
    ref.assert_same_on_threads(_train)


def test_diagnostics_cover_the_new_kinds():
    model = _model([fn.Conv2D(4, 3, padding="same", activation="tanh"), fn.MaxPool2D(2), fn.Conv2D(2, 2, groups=2),
                    fn.GlobalAvgPool2D(), fn.Dense(3)], (6, 6, 2), loss="cross_entropy")
    x = np.random.default_rng(8).normal(size=(5, 6, 6, 2)).astype(np.float32)
    outs = fn.diagnostics.layer_outputs(model, x, dtype=np.float64)
    assert list(outs) == [f"layers.{i}" for i in range(5)]
    np.testing.assert_allclose(outs["layers.4"], model.predict_raw(x), rtol=1e-5, atol=1e-5)
    report = fn.diagnostics.check_gradients(model, x, np.arange(5) % 3, n_checks=None)
    assert report.passed and sum(report.checked.values()) > 0, report.errors


# -- bad input ----------------------------------------------------------------------


def _built():
    model = fn.Sequential([fn.Conv2D(2, 3), fn.Flatten(), fn.Dense(2)], input_shape=(5, 5, 1))
    model.compile(loss="cross_entropy")
    return model


@pytest.mark.parametrize("bad", [np.zeros((3, 5, 5), np.float32), np.zeros((3, 25), np.float32),
                                 np.zeros((3, 5, 4, 1), np.float32), np.zeros((3, 1, 5, 5), np.float32)])
def test_wrong_input_shape_is_a_shape_error_naming_the_expected_shape(bad):
    model = _built()
    before = model.get_weights()
    for call in (lambda: model.predict_raw(bad), lambda: model.fit(bad, np.zeros(3, int), verbose=0),
                 lambda: model.evaluate(bad, np.zeros(3, int)), lambda: model.train_step(bad, np.zeros(3, int))):
        with pytest.raises(fn.ShapeError, match=r"\(5, 5, 1\)"):
            call()
    for a, b in zip(before, model.get_weights()):
        np.testing.assert_array_equal(a, b)


def test_image_too_small_for_the_kernel():
    model = fn.Sequential([fn.Conv2D(2, 5)])
    model.compile(loss="mse")
    with pytest.raises(fn.ConfigError, match="smaller than its window"):
        model.fit(np.zeros((2, 4, 4, 1), np.float32), np.zeros((2, 2), np.float32), verbose=0)
    assert not model.built and model.input_shape is None
    with pytest.raises(fn.ConfigError, match="smaller than its window"):
        fn.Sequential([fn.MaxPool2D(3), fn.MaxPool2D(3)], input_shape=(6, 6, 1)).compile(loss="mse")


@pytest.mark.parametrize("make", [lambda: fn.Conv2D(2, 0), lambda: fn.Conv2D(2, 3, strides=0), lambda: fn.Conv2D(2, -1),
                                  lambda: fn.Conv1D(2, 3, dilation_rate=0), lambda: fn.MaxPool2D(0),
                                  lambda: fn.AvgPool1D(2, strides=0), lambda: fn.Conv2D(0, 3),
                                  lambda: fn.Conv2D(3, 3, groups=2), lambda: fn.Conv2D(2, 3, padding="full"),
                                  lambda: fn.MaxPool2D(2, padding=1), lambda: fn.Conv2D(2, (3, 3, 3)),
                                  lambda: fn.Conv2D(2, 3, data_format="NCHW"), lambda: fn.Reshape((2, -1, -1))])
def test_bad_arguments_are_config_errors(make):
    with pytest.raises(fn.ConfigError):
        make()


def test_channels_not_divisible_by_groups():
    model = fn.Sequential([fn.Conv2D(4, 3, groups=2)], input_shape=(5, 5, 3))
    with pytest.raises(fn.ConfigError, match="groups=2 must divide the input channels"):
        model.compile(loss="mse")
    assert not model.built


def test_dense_on_images_is_a_1x1_convolution():
    """Dense acts on the channel axis of channels_last images (Keras' rule): the same
    outputs as a 1x1 Conv2D holding the same weights."""
    x = np.random.default_rng(9).normal(size=(3, 5, 5, 2)).astype(np.float32)
    dense = _model([fn.Conv2D(3, 3), fn.Dense(4, activation="tanh")], (5, 5, 2))
    conv = _model([fn.Conv2D(3, 3), fn.Conv2D(4, 1, activation="tanh")], (5, 5, 2))
    w = dense.get_weights()
    conv.set_weights([w[0], w[1], w[2][None, None], w[3]])
    assert dense.predict_raw(x).shape == (3, 3, 3, 4)
    np.testing.assert_allclose(dense.predict_raw(x), conv.predict_raw(x), rtol=1e-5, atol=1e-6)


def test_input_declaration_conflicts():
    with pytest.raises(fn.ConfigError):
        fn.Sequential([fn.Input(shape=(4, 4, 1)), fn.Flatten()], input_shape=(4, 4, 2))
    with pytest.raises(fn.ConfigError):
        fn.Input(shape=(4, 0))
    model = fn.Sequential([fn.Input(shape=(4, 4, 1)), fn.Flatten(), fn.Dense(2)])
    assert [type(layer) for layer in model.layers] == [fn.Flatten, fn.Dense] and model.input_shape == (4, 4, 1)


def test_export_of_conv_models_and_what_has_no_export_form(tmp_path):
    model = _built()  # parity of the files themselves: test_onnx_conv.py, test_torch_conv.py
    model.save(tmp_path / "t.safetensors", layout="torch")
    model.export_onnx(tmp_path / "t.onnx")
    assert (tmp_path / "t.onnx").exists() and (tmp_path / "t.safetensors").exists()
    # BatchNorm over the last axis of 4-axis samples: PyTorch has no such BatchNorm module here.
    deep = fn.Sequential([fn.BatchNorm(), fn.Flatten(), fn.Dense(2)], input_shape=(2, 2, 2, 3))
    deep.compile(loss="mse")
    deep.build((2, 2, 2, 3))
    with pytest.raises(fn.ExportError, match=r"layers\.0 \(BatchNorm over the last axis"):
        deep.save(tmp_path / "d.safetensors", layout="torch")
    assert not (tmp_path / "d.safetensors").exists()


def test_huge_sizes_are_errors_not_aborts():
    big = 1 << 40
    with pytest.raises((fn.ConfigError, fn.AllocationError)):
        model = fn.Sequential([fn.Conv2D(big, 3)], input_shape=(big, big, 3))
        model.compile(loss="mse")


# -- learning ------------------------------------------------------------------------


def test_small_cnn_learns_the_digits():
    x, y = fn.datasets.digits(return_images=True)
    x = x[..., None]
    rng = np.random.default_rng(0)
    order = rng.permutation(len(x))
    train, test = order[:1400], order[1400:]
    model = fn.Sequential([fn.Conv2D(16, 3, padding="same", activation="relu"), fn.MaxPool2D(2),
                           fn.Conv2D(32, 3, padding="same", activation="relu"), fn.GlobalMaxPool2D(), fn.Dense(10)],
                          input_shape=(8, 8, 1), seed=0)
    model.compile(optimizer=fn.optim.Adam(1e-2), loss="cross_entropy", metrics=["accuracy"])
    model.fit(x[train], y[train], epochs=8, batch_size=32, verbose=0, seed=0)
    accuracy = float(np.mean(model.predict(x[test]) == y[test]))
    assert accuracy >= 0.93, accuracy
