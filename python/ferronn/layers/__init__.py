"""Layers: descriptions of what to build. The Rust core builds and runs them.

Each layer is written as in Keras (``Dense(64, activation="relu")``), stored in
model files as its ``spec()`` dict, and rebuilt with ``from_spec``. Once its
model is built, a layer's tensors are readable and settable as numpy arrays
(``layer.weights``, ``layer.gamma``, ``layer.get_params()``).
"""

from .activations import (
    ELU, GELU, Activation, Identity, LeakyReLU, LogSoftmax, PReLU, ReLU, Sigmoid, SiLU,
    Softmax, Softplus, Swish, Tanh,
)
from .base import Layer, from_spec
from .bidirectional import Bidirectional
from .conv import Conv1D, Conv2D, Convolution1D, Convolution2D
from .dense import Dense
from .embedding import Embedding
from .gated import GLU, GeGLU, Gated, ReGLU, SwiGLU
from .masking import Masking
from .norm import BatchNorm, LayerNorm, RMSNorm
from .pool import (
    AveragePooling1D, AveragePooling2D, AvgPool1D, AvgPool2D, GlobalAveragePooling1D, GlobalAveragePooling2D,
    GlobalAvgPool1D, GlobalAvgPool2D, GlobalMaxPool1D, GlobalMaxPool2D, GlobalMaxPooling1D, GlobalMaxPooling2D,
    MaxPool1D, MaxPool2D, MaxPooling1D, MaxPooling2D,
)
from .recurrent import GRU, LSTM, SimpleRNN
from .shape import Flatten, Input, Reshape
from .structure import Dropout, Residual

__all__ = [
    "Layer",
    "from_spec",
    "Dense",
    "Activation",
    "ReLU",
    "LeakyReLU",
    "ELU",
    "GELU",
    "SiLU",
    "Swish",
    "Sigmoid",
    "Tanh",
    "Softplus",
    "Identity",
    "Softmax",
    "LogSoftmax",
    "PReLU",
    "Gated",
    "GLU",
    "SwiGLU",
    "GeGLU",
    "ReGLU",
    "BatchNorm",
    "LayerNorm",
    "RMSNorm",
    "Dropout",
    "Residual",
    "SimpleRNN",
    "LSTM",
    "GRU",
    "Bidirectional",
    "Embedding",
    "Masking",
    "Conv1D",
    "Conv2D",
    "Convolution1D",
    "Convolution2D",
    "MaxPool1D",
    "MaxPool2D",
    "AvgPool1D",
    "AvgPool2D",
    "MaxPooling1D",
    "MaxPooling2D",
    "AveragePooling1D",
    "AveragePooling2D",
    "GlobalAvgPool1D",
    "GlobalAvgPool2D",
    "GlobalMaxPool1D",
    "GlobalMaxPool2D",
    "GlobalAveragePooling1D",
    "GlobalAveragePooling2D",
    "GlobalMaxPooling1D",
    "GlobalMaxPooling2D",
    "Flatten",
    "Reshape",
    "Input",
]
