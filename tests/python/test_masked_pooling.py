"""No step mask is dropped silently (Keras 3 semantics).

GlobalAvgPool1D given the mask of padded sequences averages the real steps only
(Keras' masked mean; a sample with no real step gives 0 where Keras gives 0/0), and
its gradient reaches only those steps. Any other layer that a mask reaches and that
neither passes it on nor uses it: a ``MaskWarning`` where Keras 3 warns that the layer
"destroys the mask" (GlobalMaxPool1D, Flatten, Conv1D, windowed pools, ...), a
``ConfigError`` at build where Keras keeps or uses the mask and ferronn cannot
(BatchNorm, PReLU). Checked against float64 references of the unpadded
sequences, by finite differences, across thread counts, and for the named errors."""

from __future__ import annotations

import json
import warnings

import numpy as np
import pytest

import ferronn as fn
import ferronn.model as model_module
from ferronn import ConfigError, ExportError, MaskWarning

import recurrent_reference as rr
import reference as ref

from masked_sequences import F, H, KINDS, SPANS, T, check_embedded_gradients, direction as _direction, padded as _padded, \
    randomise as _randomise, train_padded

def _pooled_model(middle, steps=T, seed=0):
    model = fn.Sequential([fn.Masking(0.0), middle, fn.GlobalAvgPool1D(), fn.Dense(2)],
                          input_shape=(steps, F), seed=seed)
    model.compile(optimizer=fn.optim.SGD(lr=0.0), loss="mse")
    return model


def _states(cell, x, p, bidirectional):
    """Every state of the unpadded sequences ``x`` [1, n, F] by the float64 reference."""
    if not bidirectional:
        return rr.run(cell, x, p, True, False)
    fw = rr.run(cell, x, _direction(p, "forward"), True, False)
    bw = rr.run(cell, x, _direction(p, "backward"), True, True)[:, ::-1]
    return np.concatenate([fw, bw], axis=-1)


def _float64_params(model, index):
    """Layer ``index``'s tensors in float64, for the references."""
    return {k: v.astype(np.float64) for k, v in model.layers[index].get_params().items()}


@pytest.mark.parametrize("cell", list(KINDS))
@pytest.mark.parametrize("bidirectional", [False, True])
def test_the_average_of_padded_sequences_is_that_of_their_real_steps(cell, bidirectional):
    layer = KINDS[cell](H, return_sequences=True)
    model = _pooled_model(fn.Bidirectional(layer) if bidirectional else layer)
    _randomise(model)
    x = _padded()
    out = model.predict(x)
    p, d = _float64_params(model, 1), _float64_params(model, 3)
    for i, (a, n) in enumerate(SPANS):
        real = x[i:i + 1, a:a + n].astype(np.float64)
        want = _states(cell, real, p, bidirectional).mean(axis=1) @ d["weight"] + d["bias"]
        np.testing.assert_allclose(out[i:i + 1], want, rtol=1e-5, atol=1e-6)
        # A model built for the unpadded length, with the same weights, agrees.
        alone = _pooled_model(fn.Bidirectional(KINDS[cell](H, return_sequences=True)) if bidirectional
                              else KINDS[cell](H, return_sequences=True), steps=n)
        alone.set_weights(model.get_weights())
        np.testing.assert_allclose(out[i:i + 1], alone.predict(x[i:i + 1, a:a + n]), rtol=1e-5, atol=1e-6)
    # The NumPy reference of the diagnostics masks the same way.
    outs = fn.diagnostics.layer_outputs(model, x, dtype=np.float64)
    np.testing.assert_allclose(outs["layers.3"], out, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("data_format", ["channels_last"])
def test_a_sample_of_padding_only_averages_to_zero(data_format):
    model = fn.Sequential([fn.Masking(0.0), fn.GlobalAvgPool1D(data_format)], input_shape=(3, 2))
    model.compile(loss="mse")
    x = np.array([[[1.0, 2.0], [3.0, -4.0], [0.0, 0.0]], [[0.0, 0.0]] * 3, [[0.0, 0.0], [5.0, 1.0], [0.0, 0.0]]])
    np.testing.assert_array_equal(model.predict(x), [[2.0, -1.0], [0.0, 0.0], [5.0, 1.0]])
    outs = fn.diagnostics.layer_outputs(model, x, dtype=np.float64)
    np.testing.assert_array_equal(outs["layers.1"], [[2.0, -1.0], [0.0, 0.0], [5.0, 1.0]])
    # Without a mask producer every step counts.
    plain = fn.Sequential([fn.GlobalAvgPool1D()], input_shape=(3, 2))
    plain.compile(loss="mse")
    np.testing.assert_allclose(plain.predict(x)[0], [4.0 / 3.0, -2.0 / 3.0], rtol=1e-6)


@pytest.mark.parametrize("cell", list(KINDS))
@pytest.mark.parametrize("bidirectional", [False, True])
def test_masked_average_gradients_match_finite_differences(cell, bidirectional):
    """Embedding(mask_zero) → [Bidirectional] recurrent (every state) → GlobalAvgPool1D →
    Dense, MSE: every tensor against central differences of the masked float64
    reference. The table's gradient is the input gradient gathered by id: the padding
    id's row gets none."""
    layer = KINDS[cell](H, return_sequences=True)

    def run(x, inner, mask):
        if bidirectional:
            fw = rr.run(cell, x, _direction(inner, "forward"), True, False, mask=mask)
            bw = rr.run(cell, x, _direction(inner, "backward"), True, True, mask=mask)[:, ::-1]
            h = np.concatenate([fw, bw], axis=-1)
        else:
            h = rr.run(cell, x, inner, True, False, mask=mask)
        keep = mask[:, :, None].astype(np.float64)
        return (h * keep).sum(axis=1) / np.maximum(keep.sum(axis=1), 1.0)

    middle = [fn.Bidirectional(layer) if bidirectional else layer, fn.GlobalAvgPool1D()]
    check_embedded_gradients(middle, run, f"{cell} bidirectional={bidirectional}")

def _train(threads):
    layers = [fn.Masking(0.0), fn.Bidirectional(fn.GRU(16, return_sequences=True)), fn.GlobalAvgPool1D()]
    return train_padded(threads, layers, (T, F), fn.optim.Adam(1e-2))

def test_masked_pooling_training_is_identical_across_thread_counts():
    ref.assert_same_on_threads(_train)


def _build(layers, steps=T):
    model = fn.Sequential(layers, input_shape=(steps, F), seed=0)
    model.compile(loss="mse")
    return model


@pytest.mark.parametrize("make", [
    lambda: fn.GlobalMaxPool1D(), lambda: fn.Flatten(), lambda: fn.Conv1D(2, 2), lambda: fn.MaxPool1D(2),
    lambda: fn.AvgPool1D(2), lambda: fn.Reshape((T * H,)), lambda: fn.Residual([fn.Dense(H)]),
], ids=["GlobalMaxPool1D", "Flatten", "Conv1D", "MaxPool1D", "AvgPool1D", "Reshape", "Residual"])
def test_a_layer_without_mask_support_warns_as_keras(make):
    layer = make()
    name = type(layer).__name__
    with pytest.warns(MaskWarning, match=rf"layers\.2 \({name}\) does not support masking: the step mask made by "
                                         r"layer 0 \(Masking\)"):
        _build([fn.Masking(0.0), fn.LSTM(H, return_sequences=True), layer, fn.Flatten(), fn.Dense(1)])


def test_global_max_pooling_ignores_the_mask_as_keras():
    with pytest.warns(MaskWarning):
        model = _build([fn.Masking(0.0), fn.GlobalMaxPool1D()], steps=3)
    x = np.array([[[-1.0, -2.0, -3.0], [-4.0, -1.0, -6.0], [0.0, 0.0, 0.0]]], np.float32)
    np.testing.assert_array_equal(model.predict(x), [[0.0, 0.0, 0.0]])  # the padded (zeroed) step wins


@pytest.mark.parametrize("make", [lambda: fn.BatchNorm(), lambda: fn.PReLU()], ids=["BatchNorm", "PReLU"])
def test_a_layer_keras_would_mask_is_a_config_error_at_build(make):
    layer = make()
    name = type(layer).__name__
    with pytest.raises(ConfigError, match=rf"layers\.2 \({name}\) is reached by the step mask of padded sequences "
                                          r"made by layer 1 \(Masking\)"):
        _build([fn.Dense(F), fn.Masking(0.0), layer, fn.Flatten(), fn.Dense(1)])


def test_a_channels_first_average_reached_by_a_mask_is_a_config_error():
    with pytest.raises(ConfigError, match=r"layers\.1 \(GlobalAvgPool1D, channels_first\) is reached by the step "
                                          r"mask made by layer 0 \(Embedding\)"):
        fn.Sequential([fn.Embedding(5, 3, mask_zero=True), fn.GlobalAvgPool1D("channels_first")],
                      input_shape=(4,)).compile(loss="mse")


@pytest.mark.parametrize("layers,where,kind", [
    (lambda: [fn.Dense(F), fn.Masking(0.0), fn.BatchNorm(), fn.Flatten(), fn.Dense(1)], "layer 2", "BatchNorm"),
    (lambda: [fn.Masking(0.0), fn.LSTM(H, return_sequences=True), fn.Dropout(0.1), fn.PReLU(), fn.Flatten(),
              fn.Dense(1)], "layer 3", "PReLU"),
    (lambda: [fn.Embedding(5, 3, mask_zero=True), fn.GlobalAvgPool1D("channels_first")], "layer 1",
     r"GlobalAvgPool1D \(channels_first\)"),
], ids=["BatchNorm", "PReLU", "channels_first"])
def test_the_core_refuses_those_configurations_by_itself(layers, where, kind, monkeypatch):
    """A network spec given straight to ``_core.Network`` (no Python check before it) is
    refused by the core's own walk of the mask: the same configurations, ConfigError."""
    monkeypatch.setattr(model_module, "check_mask_flow", lambda layers: None)  # only the core checks now
    model = fn.Sequential(layers(), input_shape=(4,) if kind.startswith("GlobalAvg") else (T, F))
    message = rf"{where} is reached by the step mask of padded sequences made by layer \d: {kind}"
    with pytest.raises(ConfigError, match=message):
        model.compile(loss="mse")  # builds the core network
    assert model._net is None
    with pytest.raises(ConfigError, match=message):
        fn._core.Network(json.dumps(model._spec(model._sample_shape, 0)))


def test_a_mask_that_is_used_or_ended_by_its_time_axis_raises_nothing():
    with warnings.catch_warnings():
        warnings.simplefilter("error", MaskWarning)
        _build([fn.Masking(0.0), fn.GRU(H, return_sequences=True), fn.Dense(2), fn.GlobalAvgPool1D(), fn.Dense(1)])
        _build([fn.Masking(0.0), fn.Bidirectional(fn.LSTM(H)), fn.BatchNorm(), fn.Dense(1)])
        _build([fn.Flatten(), fn.Dense(1)])  # no mask producer at all
        # A later producer starts a new mask; the first ended at the recurrent layer.
        _build([fn.Masking(0.0), fn.SimpleRNN(H, return_sequences=True), fn.Masking(1.0), fn.GlobalAvgPool1D()])


def test_masked_pooling_models_are_named_export_errors(tmp_path):
    model = _pooled_model(fn.GRU(H, return_sequences=True))
    with pytest.raises(ExportError, match=r"layers\.0 \(Masking"):
        model.export_onnx(tmp_path / "m.onnx")
    assert not (tmp_path / "m.onnx").exists()
    with pytest.raises(ExportError, match=r"layers\.0 \(Masking"):
        model.save(tmp_path / "w.safetensors", layout="torch")


def test_the_keras_namespace_example_averages_the_real_steps():
    """The issue's example as Keras code: Masking → Bidirectional(GRU, return_sequences)
    → GlobalAveragePooling1D → Dense gives for padded sequences what the unpadded give."""
    L = fn.keras.layers

    def model(steps):
        m = fn.keras.Sequential([fn.keras.Input(shape=(steps, F)), L.Masking(0.0),
                                 L.Bidirectional(L.GRU(H, return_sequences=True)), L.GlobalAveragePooling1D(), L.Dense(2)])
        m.compile(optimizer="adam", loss="mse")
        return m

    padded, short = model(T), model(3)
    _randomise(padded, 4)
    short.set_weights(padded.get_weights())
    x = np.zeros((3, T, F), np.float32)
    x[:, :3] = np.random.default_rng(8).normal(size=(3, 3, F))
    np.testing.assert_allclose(padded.predict(x, verbose=0), short.predict(x[:, :3], verbose=0), rtol=1e-6, atol=1e-7)
    # Padded steps made real (no longer all 0) would count: the mask is what keeps them out.
    assert not np.allclose(padded.predict(x, verbose=0), padded.predict(x + (x == 0) * 1e-3, verbose=0), atol=1e-4)


@pytest.mark.parametrize("pool", [fn.GlobalAvgPool1D, fn.GlobalMaxPool1D])
def test_global_sequence_pools_take_any_length(pool):
    """input_shape=(None, F): the masked average (and the max) at each call's length, the
    same model serving every length, and the NumPy reference of the diagnostics agrees."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", MaskWarning)  # GlobalMaxPool1D ends the mask, as Keras
        model = fn.Sequential([fn.Masking(0.0), fn.GRU(H, return_sequences=True), pool(), fn.Dense(2)],
                              input_shape=(None, F), seed=0)
        model.compile(optimizer=fn.optim.SGD(lr=0.0), loss="mse")
    _randomise(model)
    x = _padded()
    out = model.predict(x)
    p, d = _float64_params(model, 1), _float64_params(model, 3)
    for i, (a, n) in enumerate(SPANS):
        alone = model.predict(x[i:i + 1, a:a + n])  # another length, no padding
        states = rr.run("gru", x[i:i + 1, a:a + n].astype(np.float64), p, True, False)
        want = (states.mean(axis=1) if pool is fn.GlobalAvgPool1D else states.max(axis=1)) @ d["weight"] + d["bias"]
        np.testing.assert_allclose(alone, want, rtol=1e-5, atol=1e-6)
        if pool is fn.GlobalAvgPool1D:
            np.testing.assert_allclose(out[i:i + 1], want, rtol=1e-5, atol=1e-6)
    for t in (2, 9):
        xt = np.random.default_rng(t).normal(size=(3, t, F)).astype(np.float32)
        outs = fn.diagnostics.layer_outputs(model, xt, dtype=np.float64)
        np.testing.assert_allclose(outs["layers.3"], model.predict(xt), rtol=1e-5, atol=1e-6)
