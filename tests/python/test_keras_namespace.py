"""``ferronn.keras``: Keras 3's names, argument names and defaults over ferronn's objects,
and a named NotSupportedError for what ferronn has no counterpart for."""

from __future__ import annotations

import numpy as np
import pytest

import ferronn as fn
from ferronn import keras
from ferronn.keras import layers

X = np.random.default_rng(0).normal(size=(30, 4)).astype(np.float32)
Y = (np.arange(30) % 3).astype(np.int64)


def test_layers_are_ferronn_layers_with_keras_defaults():
    dense = layers.Dense(5, name="out")
    assert isinstance(dense, fn.Dense) and dense.name == "out"
    assert dense.spec()["kernel_initializer"] == "glorot_uniform"  # Keras' default, whatever the activation
    assert layers.LeakyReLU().alpha == pytest.approx(0.3)
    bn = layers.BatchNormalization()
    assert isinstance(bn, fn.BatchNorm) and bn.momentum == pytest.approx(0.01) and bn.eps == pytest.approx(1e-3)
    assert layers.LayerNormalization().eps == pytest.approx(1e-3)
    prelu = layers.PReLU()
    assert prelu.init == 0.0 and not prelu.shared
    assert layers.PReLU(shared_axes=[1]).shared
    assert isinstance(layers.Activation("softmax"), fn.Softmax)
    assert isinstance(layers.Activation("relu"), fn.ReLU)
    assert isinstance(layers.ReLU(negative_slope=0.1), fn.LeakyReLU)
    assert layers.Dropout(0.25).rate == 0.25
    assert layers.Dense(3, input_shape=(4,)).input_dim == 4
    assert layers.SwiGLU is fn.SwiGLU and layers.Residual is fn.Residual  # ferronn's own extras


@pytest.mark.parametrize("make,named", [
    (lambda: layers.Dense(3, use_bias=False), "use_bias=False"),
    (lambda: layers.Dense(3, kernel_constraint="max_norm"), "kernel_constraint"),
    (lambda: layers.Dense(3, trainable=False), "trainable=False"),
    (lambda: layers.Dense(3, dtype="float16"), "dtype"),
    (lambda: layers.ReLU(max_value=6.0), "max_value"),
    (lambda: layers.BatchNormalization(center=False), "center=False"),
    (lambda: layers.Conv2DTranspose(32, 3), "keras.layers.Conv2DTranspose"),
    (lambda: layers.Conv2D(32, 3, kernel_constraint="non_neg"), "kernel_constraint"),
    (lambda: layers.TimeDistributed(None), "keras.layers.TimeDistributed"),
    (lambda: keras.Model(), "keras.Model"),
    (lambda: keras.optimizers.Nadam(), "keras.optimizers.Nadam"),
    (lambda: keras.optimizers.SGD(weight_decay=0.01), "weight_decay"),
    (lambda: keras.losses.Huber(), "keras.losses.Huber"),
    (lambda: keras.losses.CategoricalCrossentropy(label_smoothing=0.1), "label_smoothing"),
    (lambda: keras.metrics.AUC(), "keras.metrics.AUC"),
    (lambda: keras.callbacks.TensorBoard(), "keras.callbacks.TensorBoard"),
    (lambda: keras.datasets.mnist, "keras.datasets.mnist"),
])
def test_what_has_no_counterpart_is_named(make, named):
    with pytest.raises(fn.NotSupportedError) as info:
        make()
    assert named in str(info.value) and "no ferronn counterpart" in str(info.value)
    assert isinstance(info.value, NotImplementedError)


def test_unknown_names_are_attribute_errors():
    with pytest.raises(AttributeError):
        layers.NoSuchLayer  # noqa: B018
    assert not hasattr(keras, "no_such_thing")


def test_optimizers_take_keras_names_and_defaults():
    rms = keras.optimizers.RMSprop()
    assert isinstance(rms, fn.optim.RMSprop)
    assert (rms.lr, rms.alpha, rms.eps) == (pytest.approx(1e-3), 0.9, 1e-7)
    adam = keras.optimizers.Adam(learning_rate=2e-3, beta_1=0.8)
    assert adam.learning_rate == pytest.approx(2e-3) and adam.betas == (0.8, 0.999) and adam.eps == 1e-7
    assert keras.optimizers.SGD().lr == pytest.approx(0.01)
    assert keras.optimizers.AdamW().weight_decay == pytest.approx(0.004)
    assert keras.optimizers.Adagrad().initial_accumulator_value == pytest.approx(0.1)
    assert keras.optimizers.get("rmsprop").config() == rms.config()


def test_compile_by_name_uses_keras_defaults():
    model = keras.Sequential([layers.Dense(3, activation="softmax")])
    model.compile(optimizer="rmsprop", loss="sparse_categorical_crossentropy")
    assert model.optimizer.config() == keras.optimizers.RMSprop().config()
    with pytest.raises(fn.NotSupportedError, match="without a loss"):
        keras.Sequential([layers.Dense(3)]).compile(optimizer="adam")


def test_keras_sequential_predict_returns_the_outputs_and_accepts_float_labels(capsys):
    model = keras.Sequential([keras.Input(shape=(4,)), layers.Dense(3, activation="softmax")])
    assert model.input_dim == 4 and model.built  # as Keras: the input width is known, so the weights exist
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    model.fit(X, Y.astype("float32"), epochs=1, verbose=0)
    probs = model.predict(X, verbose=0)
    assert probs.shape == (30, 3)
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, rtol=1e-6)
    model.evaluate(X, Y)  # "auto" prints as Keras
    assert capsys.readouterr().out.startswith("1/1 - loss: ")
    with pytest.raises(fn.DTypeError, match="whole numbers"):
        model.fit(X, Y + 0.5, verbose=0)
    # An N-D Input declares the per-sample shape (images, sequences).
    assert keras.Sequential([keras.Input(shape=(4, 4))]).input_shape == (None, 4, 4)


def test_keras_sequential_list_behaviour():
    model = keras.Sequential(name="my_sequential")
    model.add(layers.Dense(2, activation="relu", name="layer1"))
    model.add(layers.Dense(3, name="layer2"))
    assert model.name == "my_sequential" and model.get_layer("layer2") is model.layers[1]
    assert model.pop().name == "layer2" and len(model.layers) == 1
    with pytest.raises(fn.ConfigError):
        model.get_layer("layer2")


def test_keras_fit_takes_keras_argument_order():
    a = keras.Sequential([layers.Dense(3)], seed=0)
    b = fn.Sequential([layers.Dense(3)], seed=0)
    a.compile(optimizer=keras.optimizers.SGD(), loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    b.compile(optimizer=keras.optimizers.SGD(), loss="cross_entropy")
    a.fit(X, Y, 8, 2, 0)  # x, y, batch_size, epochs, verbose
    b.fit(X, Y, epochs=2, batch_size=8, verbose=0, initial_epoch=0)
    for wa, wb in zip(a.get_weights(), b.get_weights()):
        np.testing.assert_array_equal(wa, wb)


def test_losses_metrics_and_callbacks():
    loss = keras.losses.get("categorical_crossentropy")
    assert isinstance(loss, keras.losses.CategoricalCrossentropy) and loss.from_logits is False
    assert keras.losses.BinaryCrossentropy(from_logits=True).get_config()["from_logits"] is True
    assert keras.metrics.CategoricalAccuracy().name == "categorical_accuracy"
    with pytest.raises(fn.NotSupportedError, match="custom keras.metrics.Metric"):
        type("Mine", (keras.metrics.Metric,), {})()
    with pytest.raises(fn.NotSupportedError, match="custom keras.losses.Loss"):
        type("Mine", (keras.losses.Loss,), {})()
    assert keras.callbacks.EarlyStopping is fn.callbacks.EarlyStopping


def test_learning_rate_scheduler_sets_the_rate_each_epoch():
    model = keras.Sequential([layers.Dense(3)], seed=0)
    model.compile(optimizer=keras.optimizers.SGD(0.1), loss=keras.losses.SparseCategoricalCrossentropy(True))
    history = model.fit(X, Y, epochs=3, verbose=0,
                        callbacks=[keras.callbacks.LearningRateScheduler(lambda epoch, lr: 0.1 / (epoch + 1))])
    np.testing.assert_allclose(history.history["lr"], [0.1, 0.05, 0.1 / 3], rtol=1e-6)


def test_model_checkpoint_and_load_model(tmp_path):
    model = keras.Sequential([layers.Dense(3, activation="softmax")], seed=0)
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    path = tmp_path / "best.safetensors"
    model.fit(X, Y, epochs=2, verbose=0, validation_split=0.2,
              callbacks=[keras.callbacks.ModelCheckpoint(filepath=str(path), save_best_only=True)])
    back = keras.models.load_model(path)
    assert isinstance(back, keras.Sequential)
    assert back.predict(X[:2], verbose=0).shape == (2, 3)
    with pytest.raises(fn.NotSupportedError, match="save_weights_only"):
        keras.callbacks.ModelCheckpoint(filepath="x", save_weights_only=True)


def test_keras_rmsprop_follows_keras_update_rule():
    """Three steps of keras.optimizers.RMSprop on a linear model against a float64
    transcription of Keras' rule: v = rho·v + (1 - rho)·g², w -= lr·g / sqrt(v + epsilon)."""
    x = X[:8]
    t = np.linspace(-1, 1, 8, dtype=np.float32)[:, None]
    model = fn.Sequential([layers.Dense(1)], input_dim=4, seed=0)
    model.compile(optimizer=keras.optimizers.RMSprop(learning_rate=0.01, epsilon=1e-3), loss="mse")
    w, b = (a.astype(np.float64) for a in model.get_weights())
    vw, vb = np.zeros_like(w), np.zeros_like(b)
    x64, t64 = x.astype(np.float64), t.astype(np.float64)
    for _ in range(3):
        model.train_step(x, t)
        err = 2 * (x64 @ w + b - t64) / len(x64)  # d mean((xw + b - t)^2) / d output
        gw, gb = x64.T @ err, err.sum(axis=0)
        vw, vb = 0.9 * vw + 0.1 * gw ** 2, 0.9 * vb + 0.1 * gb ** 2
        w, b = w - 0.01 * gw / np.sqrt(vw + 1e-3), b - 0.01 * gb / np.sqrt(vb + 1e-3)
    got_w, got_b = model.get_weights()
    np.testing.assert_allclose(got_w, w, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(got_b, b, rtol=1e-5, atol=1e-6)
    # PyTorch's placement (ferronn's own RMSprop) gives a different result here.
    torch_rule = fn.Sequential([layers.Dense(1)], input_dim=4, seed=0)
    torch_rule.compile(optimizer=fn.optim.RMSprop(0.01, alpha=0.9, eps=1e-3), loss="mse")
    for _ in range(3):
        torch_rule.train_step(x, t)
    assert np.abs(torch_rule.get_weights()[0] - got_w).max() > 1e-4


def test_set_random_seed_makes_models_reproducible():
    def run():
        keras.utils.set_random_seed(42)
        model = keras.Sequential([layers.Dense(4, activation="relu"), layers.Dense(3, activation="softmax")])
        model.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
        model.fit(X, Y, epochs=2, verbose=0)
        return model.get_weights()

    for a, b in zip(run(), run()):
        np.testing.assert_array_equal(a, b)
    with pytest.raises(fn.ConfigError):
        keras.utils.set_random_seed(-1)


def test_keras_validation_split_holds_out_the_last_fraction_as_keras():
    def fit(**kwargs):
        model = keras.Sequential([layers.Dense(3, activation="softmax")], seed=3)
        model.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
        return model.fit(epochs=2, verbose=0, **kwargs).history

    w = np.linspace(0.5, 2.0, 30)
    split = fit(x=X, y=Y, validation_split=0.25, sample_weight=w)  # floor(30 * 0.75) = 22 train
    explicit = fit(x=X[:22], y=Y[:22], sample_weight=w[:22], validation_data=(X[22:], Y[22:], w[22:]))
    assert split == explicit
    with pytest.raises(fn.ConfigError, match="validation_split"):
        fit(x=X, y=Y, validation_split=1.5)


@pytest.mark.parametrize("layer", [fn.Dense(3), fn.ReLU(), layers.Dense(3), layers.BatchNormalization()])
def test_freezing_a_layer_is_refused_not_ignored(layer):
    assert layer.trainable is True
    layer.trainable = True
    with pytest.raises(fn.NotSupportedError, match="trainable = False"):
        layer.trainable = False
    assert layer.trainable is True
