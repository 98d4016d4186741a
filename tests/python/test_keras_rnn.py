"""``ferronn.keras.layers``' ``SimpleRNN``, ``LSTM``, ``GRU`` and ``Embedding``: Keras 3's
names, argument order and defaults on ferronn's own layers, the same network as
ferronn's classes build, Keras' unsupported arguments named, the first models of Keras'
"Working with RNNs" guide with only the imports changed (plus the sequence length
ferronn needs), and a small LSTM that learns the 8x8 digits read row by row."""

from __future__ import annotations

import inspect

import numpy as np
import pytest

import ferronn as fn
from ferronn import keras
from ferronn.keras import layers


@pytest.mark.parametrize("keras_cls, ferronn_cls", [
    (layers.SimpleRNN, fn.layers.SimpleRNN), (layers.LSTM, fn.layers.LSTM), (layers.GRU, fn.layers.GRU),
    (layers.Embedding, fn.layers.Embedding),
])
def test_keras_classes_are_ferronn_layers(keras_cls, ferronn_cls):
    assert issubclass(keras_cls, ferronn_cls)
    assert keras_cls.__module__ == "ferronn.keras.layers"
    assert keras_cls.__name__ in layers.__all__


# Keras 3's positional order (keras/src/layers/rnn/*.py, core/embedding.py), up to **kwargs.
KERAS_ORDER = {
    layers.SimpleRNN: ["units", "activation", "use_bias", "kernel_initializer", "recurrent_initializer",
                       "bias_initializer", "kernel_regularizer", "recurrent_regularizer", "bias_regularizer",
                       "activity_regularizer", "kernel_constraint", "recurrent_constraint", "bias_constraint",
                       "dropout", "recurrent_dropout", "return_sequences", "return_state", "go_backwards",
                       "stateful", "unroll", "seed"],
    layers.LSTM: ["units", "activation", "recurrent_activation", "use_bias", "kernel_initializer",
                  "recurrent_initializer", "bias_initializer", "unit_forget_bias", "kernel_regularizer",
                  "recurrent_regularizer", "bias_regularizer", "activity_regularizer", "kernel_constraint",
                  "recurrent_constraint", "bias_constraint", "dropout", "recurrent_dropout", "seed",
                  "return_sequences", "return_state", "go_backwards", "stateful", "unroll", "use_cudnn"],
    layers.GRU: ["units", "activation", "recurrent_activation", "use_bias", "kernel_initializer",
                 "recurrent_initializer", "bias_initializer", "kernel_regularizer", "recurrent_regularizer",
                 "bias_regularizer", "activity_regularizer", "kernel_constraint", "recurrent_constraint",
                 "bias_constraint", "dropout", "recurrent_dropout", "seed", "return_sequences", "return_state",
                 "go_backwards", "stateful", "unroll", "reset_after", "use_cudnn"],
    layers.Embedding: ["input_dim", "output_dim", "embeddings_initializer", "embeddings_regularizer",
                       "embeddings_constraint", "mask_zero", "weights", "lora_rank", "lora_alpha"],
}


@pytest.mark.parametrize("cls", list(KERAS_ORDER))
def test_keras_argument_order(cls):
    params = [p for p in inspect.signature(cls).parameters.values() if p.kind is not p.VAR_KEYWORD]
    assert [p.name for p in params] == KERAS_ORDER[cls]


def test_keras_defaults_and_positional_arguments():
    lstm = layers.LSTM(8)
    assert (lstm.units, lstm.return_sequences, lstm.go_backwards, lstm.unit_forget_bias) == (8, False, False, True)
    assert (lstm.kernel_initializer, lstm.recurrent_initializer, lstm.bias_initializer) == \
        ("glorot_uniform", "orthogonal", "zeros")
    rnn = layers.SimpleRNN(4, "relu", name="r")
    assert (rnn.activation, rnn.name) == ("relu", "r")
    assert layers.SimpleRNN(4, None).activation in ("linear", "identity")  # Keras' None: no activation
    assert layers.GRU(6, return_sequences=True, go_backwards=True).return_sequences
    assert layers.LSTM(8, "tanh", "sigmoid", True, "he_normal", "orthogonal", "zeros", False).unit_forget_bias is False
    emb = layers.Embedding(100, 16)
    assert (emb.input_dim, emb.output_dim_, emb.embeddings_initializer, emb.mask_zero) == (100, 16, "uniform", False)
    # Arguments that change nothing in ferronn are accepted.
    layers.LSTM(8, seed=1, use_cudnn=False)
    layers.GRU(8, reset_after=True, dropout=0.0, stateful=False)


def _pair(build_ferronn, build_keras, shape, seed=5):
    ours = fn.Sequential([fn.Input(shape=shape), *build_ferronn()], seed=seed)
    theirs = keras.Sequential([keras.Input(shape=shape), *build_keras()], seed=seed)
    for model in (ours, theirs):
        model.compile(optimizer="adam", loss="mse")
        model.build(shape)
    return ours, theirs


def test_the_same_network_and_initial_weights_as_ferronns_own_layers():
    ours, theirs = _pair(
        lambda: [fn.layers.Embedding(50, 8), fn.layers.GRU(6, return_sequences=True),
                 fn.layers.SimpleRNN(5, return_sequences=True), fn.layers.LSTM(4),
                 fn.layers.Dense(3, kernel_initializer="glorot_uniform")],
        lambda: [layers.Embedding(50, 8), layers.GRU(6, return_sequences=True),
                 layers.SimpleRNN(5, return_sequences=True), layers.LSTM(4), layers.Dense(3)],
        (7,))
    assert [layer.spec() for layer in ours.layers] == [layer.spec() for layer in theirs.layers]
    for a, b in zip(ours.get_weights(), theirs.get_weights()):
        np.testing.assert_array_equal(a, b)
    ids = np.random.default_rng(0).integers(0, 50, size=(4, 7))
    np.testing.assert_array_equal(ours.predict(ids), theirs.predict(ids))


@pytest.mark.parametrize("make,named", [
    (lambda: layers.GRU(8, reset_after=False), "reset_after=False"),
    (lambda: layers.LSTM(8, dropout=0.2), "dropout=0.2"),
    (lambda: layers.SimpleRNN(8, recurrent_dropout=0.1), "recurrent_dropout=0.1"),
    (lambda: layers.LSTM(8, return_state=True), "return_state=True"),
    (lambda: layers.GRU(8, stateful=True), "stateful=True"),
    (lambda: layers.SimpleRNN(8, unroll=True), "unroll=True"),
    (lambda: layers.LSTM(8, use_bias=False), "use_bias=False"),
    (lambda: layers.LSTM(8, activation="relu"), "activation='relu'"),
    (lambda: layers.GRU(8, recurrent_activation="hard_sigmoid"), "recurrent_activation='hard_sigmoid'"),
    (lambda: layers.LSTM(8, kernel_constraint="max_norm"), "kernel_constraint"),
    (lambda: layers.SimpleRNN(8, activity_regularizer="l2"), "activity_regularizer"),
    (lambda: layers.LSTM(8, trainable=False), "trainable=False"),
    (lambda: layers.Embedding(10, 4, embeddings_regularizer="l2"), "embeddings_regularizer"),
    (lambda: layers.Embedding(10, 4, weights=np.zeros((10, 4))), "weights"),
    (lambda: layers.Embedding(10, 4, input_length=5), "input_length"),
    (lambda: layers.Bidirectional(layers.LSTM(8), merge_mode=None), "Bidirectional(merge_mode=None)"),
    (lambda: layers.Bidirectional(layers.LSTM(8), weights=[np.zeros(3)]), "Bidirectional(weights=...)"),
])
def test_unsupported_arguments_are_named(make, named):
    with pytest.raises(fn.NotSupportedError) as info:
        make()
    assert named in str(info.value) and "no ferronn counterpart" in str(info.value)


def _param_rows(model):
    return [(layer.output_shape(layer._input_shape), sum(w.size for w in layer.get_weights()))
            for layer in model.layers]


def test_working_with_rnns_guide_lstm_model(capsys):
    """The guide's first model; ferronn needs the sequence length, here 10 token ids."""
    model = keras.Sequential()
    model.add(keras.Input(shape=(10,)))  # added: ferronn's sequences have a fixed length
    # Add an Embedding layer expecting input vocab of size 1000, and
    # output embedding dimension of size 64.
    model.add(layers.Embedding(input_dim=1000, output_dim=64))
    # Add a LSTM layer with 128 internal units.
    model.add(layers.LSTM(128))
    # Add a Dense layer with 10 units.
    model.add(layers.Dense(10))
    model.summary()
    text = capsys.readouterr().out
    # Keras: embedding (None, 10, 64) 64,000; lstm (None, 128) 98,816 = 4*128*(64+128+1);
    # dense (None, 10) 1,290. ferronn's LSTM has PyTorch's two biases: 4*128*(64+128+2) = 99,328.
    assert _param_rows(model) == [((10, 64), 64_000), ((128,), 99_328), ((10,), 1_290)]
    assert model.count_params() == 64_000 + 99_328 + 1_290 == 164_618  # Keras: 164,106 (512 fewer biases)
    assert "(None, 10, 64)" in text and "(None, 128)" in text and "99,328" in text and "164,618" in text


def test_working_with_rnns_guide_gru_simplernn_model(capsys):
    model = keras.Sequential()
    model.add(keras.Input(shape=(10,)))  # added: ferronn's sequences have a fixed length
    model.add(layers.Embedding(input_dim=1000, output_dim=64))
    # The output of GRU will be a 3D tensor of shape (batch_size, timesteps, 256)
    model.add(layers.GRU(256, return_sequences=True))
    # The output of SimpleRNN will be a 2D tensor of shape (batch_size, 128)
    model.add(layers.SimpleRNN(128))
    model.add(layers.Dense(10))
    model.summary()
    capsys.readouterr()
    # GRU (reset_after=True, as Keras' default) has two biases in Keras too: 3*256*(64+256+2) = 247,296,
    # what Keras reports. SimpleRNN: Keras 128*(256+128+1) = 49,280; ferronn 128*(256+128+2) = 49,408.
    assert _param_rows(model) == [((10, 64), 64_000), ((10, 256), 247_296), ((128,), 49_408), ((10,), 1_290)]
    assert model.count_params() == 361_994  # Keras: 361,866


# Measured 0.972 (seed 0, 15 epochs; the untrained model: 0.068); the floor leaves room for
# summation-order differences between machines.
ACCURACY_FLOOR = 0.93


def test_lstm_learns_the_digits_read_row_by_row():
    """The 8x8 digits as 8 steps of 8 pixels through keras.layers.LSTM."""
    datasets = pytest.importorskip("sklearn.datasets")
    digits = datasets.load_digits()
    x = (digits.images / 16.0).astype("float32")  # [1797, 8, 8]: 8 rows of 8 pixels
    y = digits.target
    rng = np.random.default_rng(0)
    order = rng.permutation(len(x))
    train, test = order[:1400], order[1400:]
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input(shape=(8, 8)), layers.LSTM(32), layers.Dense(10, activation="softmax")])
    model.compile(optimizer=keras.optimizers.Adam(0.01), loss="sparse_categorical_crossentropy",
                  metrics=["accuracy"])
    before = model.evaluate(x[test], y[test], verbose=0)[1]
    model.fit(x[train], y[train], batch_size=32, epochs=15, verbose=0)
    after = model.evaluate(x[test], y[test], verbose=0)[1]
    assert before < 0.3
    print("digits LSTM accuracy", before, after)
    assert after >= ACCURACY_FLOOR, after


def test_masking_and_mask_zero_as_in_keras():
    """Keras' masking guide: padded sequences with Embedding(mask_zero=True) or Masking give
    what the unpadded ones give; keras.Input(shape=(None, F)) takes sequences of any length."""
    from ferronn import keras
    emb = keras.Sequential([keras.Input(shape=(None,)), layers.Embedding(20, 4, mask_zero=True), layers.LSTM(3)])
    emb.compile(loss="mse")
    padded = np.array([[5, 7, 2, 0, 0, 0]])
    np.testing.assert_allclose(emb.predict(padded, verbose=0), emb.predict(padded[:, :3], verbose=0), rtol=1e-5)
    assert emb.layers[0].mask_zero
    model = keras.Sequential([keras.Input(shape=(None, 2)), layers.Masking(mask_value=0.0), layers.GRU(3)])
    model.compile(loss="mse")
    assert model.input_shape == (None, None, 2) and model.output_shape == (None, 3)
    x = np.zeros((1, 5, 2), np.float32)
    x[0, :2] = [[0.3, -0.2], [0.1, 0.4]]
    np.testing.assert_allclose(model.predict(x, verbose=0), model.predict(x[:, :2], verbose=0), rtol=1e-5)
    first = keras.Sequential([layers.Masking(-1.0, input_shape=(None, 2)), layers.SimpleRNN(2)])
    assert first.input_shape == (None, None, 2)
