"""A final softmax / sigmoid followed by a cross-entropy loss (Keras' usual output) is
trained in the fused logits form: the same loss and gradients as the unfused math,
checked against float64 references written here from the definitions; numerically
stable; predict returns probabilities; files, ONNX export and the torch layout agree."""

from __future__ import annotations

import numpy as np
import pytest

import ferronn as fn
from ferronn import keras

RNG = np.random.default_rng(7)
X = RNG.normal(size=(24, 6)).astype(np.float32)
Y = (np.arange(24) % 4).astype(np.int64)
Y_BIN = (X[:, 0] + X[:, 1] > 0).astype(np.float32)


# ------------------------------------------------------------------ float64 references (unfused)

def softmax64(z):
    e = np.exp(z - z.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


def unfused_ce(W, b, x, y):
    """Mean of -log(softmax(xW + b)[y]), computed as Keras' from_logits=False does: the
    probabilities first, then their log."""
    p = softmax64(x @ W + b)
    return float(np.mean(-np.log(p[np.arange(len(y)), y])))


def unfused_bce(W, b, x, t):
    p = 1.0 / (1.0 + np.exp(-(x @ W + b)))
    return float(np.mean(-(t * np.log(p) + (1 - t) * np.log(1 - p))))


def finite_diff(loss, W, b, eps=1e-6):
    gW, gb = np.zeros_like(W), np.zeros_like(b)
    for arr, g in ((W, gW), (b, gb)):
        for idx in np.ndindex(arr.shape):
            old = arr[idx]
            arr[idx] = old + eps
            up = loss(W, b)
            arr[idx] = old - eps
            down = loss(W, b)
            arr[idx] = old
            g[idx] = (up - down) / (2 * eps)
    return gW, gb


def one_sgd_step(model, x, y):
    """(loss, dW, db) of one plain-SGD step with lr 1: the weight change is minus the gradient."""
    W0, b0 = model.layers[-1].get_weights()
    loss = model.train_step(x, y)
    W1, b1 = model.layers[-1].get_weights()
    return loss, (W0 - W1).astype(np.float64), (b0 - b1).astype(np.float64)


def single_dense(units, activation, loss, seed=3):
    model = fn.Sequential([fn.Dense(units, activation=activation)], input_dim=X.shape[1], seed=seed)
    model.compile(optimizer=fn.optim.SGD(1.0), loss=loss)
    return model


# ------------------------------------------------------------------ gradients

@pytest.mark.parametrize("loss", ["sparse_categorical_crossentropy", keras.losses.SparseCategoricalCrossentropy()])
def test_dense_softmax_gradient_matches_the_unfused_float64_math(loss):
    model = single_dense(4, "softmax", loss)
    W, b = (a.astype(np.float64) for a in model.layers[-1].get_weights())
    x64 = X.astype(np.float64)
    ref_loss = unfused_ce(W, b, x64, Y)
    gW, gb = finite_diff(lambda w, c: unfused_ce(w, c, x64, Y), W.copy(), b.copy())
    core_loss, dW, db = one_sgd_step(model, X, Y)
    assert core_loss == pytest.approx(ref_loss, rel=1e-5)
    np.testing.assert_allclose(dW, gW, atol=2e-5)
    np.testing.assert_allclose(db, gb, atol=2e-5)


def test_dense_sigmoid_binary_gradient_matches_the_unfused_float64_math():
    model = single_dense(1, "sigmoid", "binary_crossentropy")
    W, b = (a.astype(np.float64) for a in model.layers[-1].get_weights())
    x64, t = X.astype(np.float64), Y_BIN.astype(np.float64)[:, None]
    ref_loss = unfused_bce(W, b, x64, t)
    gW, gb = finite_diff(lambda w, c: unfused_bce(w, c, x64, t), W.copy(), b.copy())
    core_loss, dW, db = one_sgd_step(model, X, Y_BIN)
    assert model._fused_output == "sigmoid"
    assert core_loss == pytest.approx(ref_loss, rel=1e-5)
    np.testing.assert_allclose(dW, gW, atol=2e-5)
    np.testing.assert_allclose(db, gb, atol=2e-5)


def test_softmax_layer_with_one_hot_categorical_targets_matches_the_reference():
    model = fn.Sequential([fn.Dense(4), fn.Softmax()], input_dim=X.shape[1], seed=5)
    model.compile(optimizer=fn.optim.SGD(1.0), loss="categorical_crossentropy")
    W, b = (a.astype(np.float64) for a in model.layers[0].get_weights())
    x64 = X.astype(np.float64)
    gW, gb = finite_diff(lambda w, c: unfused_ce(w, c, x64, Y), W.copy(), b.copy())
    one_hot = fn.utils.to_categorical(Y, 4)
    loss = model.train_step(X, one_hot)
    W1, b1 = model.layers[0].get_weights()
    assert loss == pytest.approx(unfused_ce(W, b, x64, Y), rel=1e-5)
    np.testing.assert_allclose(W - W1, gW, atol=2e-5)
    np.testing.assert_allclose(b - b1, gb, atol=2e-5)


def test_check_gradients_passes_on_a_fused_model():
    model = fn.Sequential([fn.Dense(8, activation="tanh"), fn.Dense(4, activation="softmax")], seed=1)
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    model.fit(X, Y, epochs=1, verbose=0)
    report = fn.diagnostics.check_gradients(model, X, Y)
    assert report.passed, report


# ------------------------------------------------------------------ same as the logits model

def test_fused_model_trains_exactly_as_the_logits_model():
    fused = fn.Sequential([fn.Dense(16, activation="relu"), fn.Dense(4, activation="softmax")], seed=11)
    plain = fn.Sequential([fn.Dense(16, activation="relu"), fn.Dense(4)], seed=11)
    fused.compile(optimizer=fn.optim.Adam(1e-2), loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    plain.compile(optimizer=fn.optim.Adam(1e-2), loss="cross_entropy", metrics=["accuracy"])
    h1 = fused.fit(X, Y, epochs=3, batch_size=8, verbose=0)
    h2 = plain.fit(X, Y, epochs=3, batch_size=8, verbose=0)
    assert h1.history == h2.history
    for a, b in zip(fused.get_weights(), plain.get_weights()):
        np.testing.assert_array_equal(a, b)
    probs = fused.predict_raw(X)
    np.testing.assert_allclose(probs, softmax64(plain.predict_raw(X).astype(np.float64)), atol=1e-6)
    np.testing.assert_allclose(fused.predict_proba(X), probs, atol=1e-7)
    np.testing.assert_array_equal(fused.predict(X), plain.predict(X))
    np.testing.assert_allclose(fused(X), probs, atol=1e-7)


def test_fused_loss_is_stable_where_the_unfused_one_overflows():
    model = single_dense(3, "softmax", "sparse_categorical_crossentropy")
    W = np.zeros((6, 3), np.float32)
    W[0] = [400.0, -400.0, 0.0]  # logits of thousands: exp overflows float32, softmax rounds to 0 / 1
    model.layers[0].set_weights([W, np.zeros(3, np.float32)])
    x = np.zeros((2, 6), np.float32)
    x[:, 0] = [5.0, -5.0]
    y = np.array([1, 1])
    z = x.astype(np.float64) @ W.astype(np.float64)
    expected = np.mean(np.log(np.exp(z - z.max(1, keepdims=True)).sum(1)) + z.max(1) - z[:, 1])
    loss = model.evaluate(x, y)
    assert np.isfinite(loss) and loss == pytest.approx(expected, rel=1e-6)


# ------------------------------------------------------------------ what is accepted

def test_from_logits_is_respected():
    logits = fn.Sequential([fn.Dense(4)])
    logits.compile(loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    assert logits._fused_output is None
    with pytest.raises(fn.ConfigError, match="from_logits=True"):
        fn.Sequential([fn.Dense(4, activation="softmax")]).compile(
            loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    with pytest.raises(fn.ConfigError, match="from_logits=False"):
        fn.Sequential([fn.Dense(4)]).compile(loss=keras.losses.SparseCategoricalCrossentropy())
    with pytest.raises(fn.ConfigError, match="sigmoid"):
        fn.Sequential([fn.Dense(1)]).compile(loss=keras.losses.BinaryCrossentropy())


@pytest.mark.parametrize("layers,loss,match", [
    ([fn.Dense(8, activation="softmax"), fn.Dense(3)], "cross_entropy", "output layer"),
    ([fn.Dense(3, activation="softmax")], "mse", "softmax"),
    ([fn.Dense(3, activation="softmax")], "binary_crossentropy", "softmax"),
])
def test_softmax_where_it_cannot_be_fused_is_refused(layers, loss, match):
    model = fn.Sequential(layers)
    with pytest.raises(fn.ConfigError, match=match):
        model.compile(loss=loss)
    assert model.loss is None


def test_soft_label_rows_are_refused_with_a_named_error():
    model = fn.Sequential([fn.Dense(4, activation="softmax")], input_dim=6)
    model.compile(loss="categorical_crossentropy")
    soft = np.full((24, 4), 0.25, np.float32)
    before = model.get_weights()
    with pytest.raises(fn.ShapeError, match="one-hot"):
        model.fit(X, soft, verbose=0)
    for a, b in zip(before, model.get_weights()):
        np.testing.assert_array_equal(a, b)


def test_one_hot_targets_train_as_the_labels():
    a = fn.Sequential([fn.Dense(4, activation="softmax")], seed=2)
    b = fn.Sequential([fn.Dense(4, activation="softmax")], seed=2)
    for m in (a, b):
        m.compile(optimizer="sgd", loss="categorical_crossentropy", metrics=["accuracy"])
    a.fit(X, fn.utils.to_categorical(Y), epochs=2, verbose=0)
    b.fit(X, Y, epochs=2, verbose=0)
    for wa, wb in zip(a.get_weights(), b.get_weights()):
        np.testing.assert_array_equal(wa, wb)
    assert a.evaluate(X, fn.utils.to_categorical(Y)) == b.evaluate(X, Y)


def test_to_categorical_follows_keras():
    out = fn.utils.to_categorical(np.array([[2], [0]]))
    assert out.shape == (2, 3) and out.dtype == np.float32
    np.testing.assert_array_equal(out, [[0, 0, 1], [1, 0, 0]])
    assert fn.utils.to_categorical([[1, 0]], num_classes=2).shape == (1, 2, 2)
    assert keras.utils.to_categorical is fn.utils.to_categorical
    with pytest.raises(fn.LabelError, match="label 3"):
        fn.utils.to_categorical([0, 3], num_classes=3)
    with pytest.raises(fn.DTypeError):
        fn.utils.to_categorical([0.5])


# ------------------------------------------------------------------ files and exports

def _trained_fused():
    model = fn.Sequential([fn.Dense(8, activation="relu"), fn.Dense(4, activation="softmax")], seed=4)
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    model.fit(X, Y, epochs=2, verbose=0)
    return model


def test_save_and_load_keep_the_fused_output(tmp_path):
    model = _trained_fused()
    model.save(tmp_path / "m.safetensors")
    back = fn.load(tmp_path / "m.safetensors")
    assert repr(back) == repr(model) and back._fused_output == "softmax"
    np.testing.assert_array_equal(back.predict_raw(X), model.predict_raw(X))
    back.fit(X, Y, epochs=1, verbose=0)  # and it goes on training


def test_softmax_layer_model_round_trips(tmp_path):
    model = fn.Sequential([fn.Dense(4), fn.Softmax()], seed=4)
    model.compile(loss="sparse_categorical_crossentropy")
    model.fit(X, Y, epochs=1, verbose=0)
    model.save(tmp_path / "m.safetensors")
    back = fn.load(tmp_path / "m.safetensors")
    assert [type(layer) for layer in back.layers] == [fn.Dense, fn.Softmax]
    np.testing.assert_array_equal(back.predict_raw(X), model.predict_raw(X))


def test_onnx_export_outputs_the_probabilities(tmp_path):
    ort = pytest.importorskip("onnxruntime")
    model = _trained_fused()
    model.export_onnx(tmp_path / "m.onnx")
    session = ort.InferenceSession(str(tmp_path / "m.onnx"))
    out = session.run(None, {"input": X})[0]
    np.testing.assert_allclose(out, model.predict_raw(X), atol=1e-6)


def test_torch_layout_ends_with_the_softmax(tmp_path):
    model = _trained_fused()
    assert "nn.Softmax(dim=-1)" in fn.torch_layout.torch_source(model)
    model.save(tmp_path / "t.safetensors", layout="torch")
    other = fn.Sequential([fn.Dense(8, activation="relu"), fn.Dense(4, activation="softmax")], seed=9)
    other.compile(loss="sparse_categorical_crossentropy")
    other.build(6)
    fn.load_torch_weights(other, tmp_path / "t.safetensors")
    np.testing.assert_array_equal(other.predict_raw(X), model.predict_raw(X))


def test_layers_added_after_compile_are_taken_into_account():
    model = fn.Sequential([fn.Dense(8, activation="relu")])
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    model.add(fn.Dense(4, activation="softmax"))  # allowed before the model is built
    model.fit(X, Y, epochs=1, verbose=0)
    assert model._fused_output == "softmax"
    np.testing.assert_allclose(model.predict_raw(X).sum(axis=1), 1.0, rtol=1e-6)
    hidden = fn.Sequential([fn.Dense(8)])
    hidden.compile(loss="cross_entropy")
    hidden.add(fn.Dense(8, activation="softmax"))
    hidden.add(fn.Dense(4))
    with pytest.raises(fn.ConfigError, match="output layer"):
        hidden.fit(X, Y, epochs=1, verbose=0)
    assert not hidden.built
