"""Keras' model, layer and optimizer methods on ferronn's own classes: predict / evaluate
arguments, count_params, learning_rate, get_config / from_config, layer get_weights /
set_weights, predict_on_batch, train_on_batch, test_on_batch, fit(verbose=2)."""

from __future__ import annotations

import re

import numpy as np
import pytest

import ferronn as fn

RNG = np.random.default_rng(3)
X = RNG.normal(size=(40, 5)).astype(np.float32)
Y = (X[:, 0] > X[:, 1]).astype(np.int64) + (X[:, 2] > 0)


def _model(metrics=("accuracy",), optimizer=None, seed=0):
    model = fn.Sequential([fn.Dense(8, activation="relu"), fn.BatchNorm(), fn.Dense(3)], seed=seed)
    model.compile(optimizer=optimizer or fn.optim.SGD(0.1), loss="cross_entropy", metrics=list(metrics))
    model.build(5)
    return model


def test_predict_and_evaluate_take_keras_arguments(capsys):
    model = _model()
    np.testing.assert_array_equal(model.predict(X, batch_size=7, verbose=0), model.predict(X))
    assert capsys.readouterr().out == ""
    loss, acc = model.evaluate(X, Y, batch_size=16, verbose=0)
    assert [loss, acc] == model.evaluate(X, Y)
    assert model.evaluate(X, Y, return_dict=True) == {"loss": loss, "accuracy": acc}
    model.evaluate(X, Y, batch_size=16, verbose=1)
    line = capsys.readouterr().out.strip()
    assert re.fullmatch(r"3/3 - loss: \d+\.\d{4} - accuracy: \d\.\d{4}", line), line
    with pytest.raises(fn.ConfigError):
        model.predict(X, batch_size=0)
    with pytest.raises(fn.ConfigError, match="verbose"):
        model.evaluate(X, Y, verbose=3)


def test_count_params_counts_every_weight_as_keras():
    model = _model()
    # Dense 5*8+8, BatchNorm gamma, beta and the two running statistics (4*8), Dense 8*3+3
    assert model.count_params() == 48 + 32 + 27
    assert model.n_params == 48 + 16 + 27  # the trainable ones


def test_learning_rate_reads_and_sets_the_training_rate():
    model = _model(optimizer=fn.optim.SGD(0.1))
    assert model.optimizer.learning_rate == pytest.approx(0.1)
    w0 = model.get_weights()
    model.train_step(X, Y)
    step_a = [a - b for a, b in zip(model.get_weights(), w0)]
    twin = _model(optimizer=fn.optim.SGD(0.1))
    twin.optimizer.learning_rate = 0.05
    assert twin.optimizer.lr == 0.05 and twin._net.lr == pytest.approx(0.05)
    twin.train_step(X, Y)
    step_b = [a - b for a, b in zip(twin.get_weights(), w0)]
    # plain SGD: the first step is proportional to the rate (BatchNorm's running stats excepted)
    np.testing.assert_allclose(step_b[0], step_a[0] / 2, rtol=1e-4, atol=1e-7)
    with pytest.raises(fn.ConfigError):
        twin.optimizer.learning_rate = -1.0
    scheduled = fn.optim.Adam(fn.schedules.Exponential(1e-2, gamma=0.9))
    with pytest.raises(fn.ConfigError, match="schedule"):
        scheduled.learning_rate = 0.1


def test_learning_rate_set_is_saved(tmp_path):
    model = _model(optimizer=fn.optim.Adam(1e-3))
    model.optimizer.learning_rate = 2e-4
    model.save(tmp_path / "m.safetensors")
    assert fn.load(tmp_path / "m.safetensors").optimizer.learning_rate == pytest.approx(2e-4)


def test_model_config_round_trip_gives_an_equivalent_model():
    model = fn.Sequential([fn.Dense(8, activation="leaky_relu", alpha=0.2, kernel_initializer="he_uniform"),
                           fn.Dropout(0.1), fn.LayerNorm(), fn.Dense(3, activation="softmax")], seed=5)
    config = model.get_config()
    copy = fn.Sequential.from_config(config)
    assert repr(copy) == repr(model) and copy.get_config() == config
    for m in (model, copy):
        m.seed = 5
        m.compile(loss="sparse_categorical_crossentropy")
        m.build(5)
    for a, b in zip(model.get_weights(), copy.get_weights()):
        np.testing.assert_array_equal(a, b)
    with pytest.raises(fn.ConfigError):
        fn.Sequential.from_config({"layers": [{"class_name": "Dense"}]})


def test_layer_and_optimizer_configs_round_trip():
    for layer in (fn.Dense(4, activation="gelu"), fn.BatchNorm(momentum=0.2), fn.PReLU(shared=True),
                  fn.Softmax(temperature=2.0), fn.SwiGLU(6), fn.Residual([fn.Dense(3), fn.ReLU()])):
        back = type(layer).from_config(layer.get_config())
        assert type(back) is type(layer) and back.get_config() == layer.get_config()
    for opt in (fn.optim.SGD(0.2, momentum=0.9, nesterov=True), fn.optim.AdamW(3e-4, weight_decay=0.1),
                fn.optim.RMSprop(1e-3, clipnorm=1.0), fn.optim.Adam(fn.schedules.Exponential(1e-2, gamma=0.9))):
        back = type(opt).from_config(opt.get_config())
        assert type(back) is type(opt) and back.config() == opt.config()
    with pytest.raises(fn.ConfigError):
        fn.optim.Adam.from_config(fn.optim.SGD().get_config())


def test_layer_get_and_set_weights():
    model = _model()
    dense, norm = model.layers[0], model.layers[1]
    kernel, bias = dense.get_weights()
    assert kernel.shape == (5, 8) and bias.shape == (8,)
    assert [a.shape for a in norm.get_weights()] == [(8,)] * 4
    new = [np.full((5, 8), 0.5, np.float32), np.arange(8, dtype=np.float32)]
    dense.set_weights(new)
    np.testing.assert_array_equal(dense.get_weights()[0], new[0])
    np.testing.assert_array_equal(model.get_weights()[1], new[1])


def test_layer_set_weights_is_all_or_nothing():
    model = _model()
    dense = model.layers[0]
    before = model.get_weights()
    with pytest.raises(fn.ShapeError, match=r"layers\.0\.bias"):
        dense.set_weights([np.zeros((5, 8)), np.zeros(7)])  # the kernel is fine, the bias is not
    with pytest.raises(fn.ConfigError, match="expected 2 arrays"):
        dense.set_weights([np.zeros((5, 8))])
    for a, b in zip(before, model.get_weights()):
        np.testing.assert_array_equal(a, b)
    with pytest.raises(fn.NotFittedError):
        fn.Dense(3).get_weights()


def test_train_on_batch_returns_what_keras_returns():
    model = _model()
    twin = _model()
    result = model.train_on_batch(X[:16], Y[:16])
    assert isinstance(result, list) and len(result) == 2
    # The loss is the batch's, computed in training mode before the step (BatchNorm on batch stats).
    assert result[0] == pytest.approx(twin.train_step(X[:16], Y[:16]), rel=1e-6)
    for a, b in zip(model.get_weights(), twin.get_weights()):
        np.testing.assert_array_equal(a, b)
    plain = _model(metrics=())
    assert isinstance(plain.train_on_batch(X[:16], Y[:16]), float)
    assert set(model.train_on_batch(X[:16], Y[:16], return_dict=True)) == {"loss", "accuracy"}


def test_train_on_batch_builds_the_model_and_test_on_batch_evaluates():
    model = fn.Sequential([fn.Dense(3)], seed=1)
    model.compile(optimizer="sgd", loss="cross_entropy", metrics=["accuracy"])
    assert not model.built
    model.train_on_batch(X, Y)
    assert model.built and model.input_dim == 5
    assert model.test_on_batch(X, Y) == model.evaluate(X, Y)
    np.testing.assert_array_equal(model.predict_on_batch(X), model.predict(X))
    with pytest.raises(fn.ConfigError, match="compile"):
        fn.Sequential([fn.Dense(3)]).train_on_batch(X, Y)


def test_fit_verbose_2_prints_one_line_per_epoch(capsys):
    model = _model()
    model.fit(X, Y, epochs=3, batch_size=10, verbose=2, validation_data=(X, Y))
    lines = capsys.readouterr().out.strip().splitlines()
    assert len(lines) == 6
    for i in range(3):
        assert lines[2 * i] == f"Epoch {i + 1}/3"
        assert re.fullmatch(r"4/4 - \d+s - loss: \d+\.\d{4} - accuracy: \d\.\d{4} - val_loss: \d+\.\d{4} - "
                            r"val_accuracy: \d\.\d{4}", lines[2 * i + 1]), lines[2 * i + 1]


def test_fit_verbose_0_is_silent_and_bad_verbose_is_named(capsys):
    model = _model()
    model.fit(X, Y, epochs=1, verbose=0)
    assert capsys.readouterr().out == ""
    before = model.get_weights()
    with pytest.raises(fn.ConfigError, match="verbose"):
        model.fit(X, Y, epochs=1, verbose="loud")
    for a, b in zip(before, model.get_weights()):
        np.testing.assert_array_equal(a, b)


def test_keras_accuracy_names_are_logged_under_that_name():
    model = fn.Sequential([fn.Dense(3)], seed=0)
    model.compile(loss="sparse_categorical_crossentropy", metrics=["sparse_categorical_accuracy"])
    history = model.fit(X, Y, epochs=1, verbose=0, validation_split=0.25)
    assert set(history.history) == {"loss", "sparse_categorical_accuracy", "val_loss",
                                    "val_sparse_categorical_accuracy", "lr"}


def test_learning_rate_reaches_a_loaded_model(tmp_path):
    model = _model(optimizer=fn.optim.SGD(0.1))
    model.save(tmp_path / "m.safetensors")
    loaded = fn.load(tmp_path / "m.safetensors")
    loaded.optimizer.learning_rate = 0.02
    assert loaded._net.lr == pytest.approx(0.02) and model._net.lr == pytest.approx(0.1)


def test_predict_verbose_prints_keras_line(capsys):
    model = _model()
    model.predict(X, batch_size=16, verbose=1)
    assert capsys.readouterr().out.strip() == "3/3"
    model.predict(X)  # "auto" is silent on ferronn's own Sequential
    assert capsys.readouterr().out == ""


def test_train_on_batch_class_weight_binary():
    """The loss train_on_batch returns is the class-weighted mean before the step:
    Σ w_i·bce_i / n, checked against float64."""
    model = fn.Sequential([fn.Dense(1, activation="sigmoid")], input_dim=5, seed=0)
    model.compile(optimizer="sgd", loss="binary_crossentropy")
    yb = (X[:, 0] > 0).astype(np.float64)
    W, b = (a.astype(np.float64) for a in model.get_weights())
    z = (X.astype(np.float64) @ W + b).ravel()
    bce = np.logaddexp(0, z) - yb * z  # -log sigmoid(z) for 1, -log(1 - sigmoid(z)) for 0
    w = np.where(yb == 1, 3.0, 1.0)
    loss = model.train_on_batch(X, yb, class_weight={0: 1.0, 1: 3.0})
    assert loss == pytest.approx(float(np.sum(w * bce) / len(bce)), rel=1e-5)
