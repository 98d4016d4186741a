"""``keras.layers`` over ferronn's layers: Keras' class names, argument names and defaults.

Each class here is the ferronn layer (a subclass of it, so models, files and exports
treat it as that layer) built from Keras' arguments. Where Keras and PyTorch differ,
Keras' meaning is kept: ``Dense``'s kernel starts Glorot-uniform whatever the
activation, ``LeakyReLU``'s slope defaults to 0.3, ``BatchNormalization``'s
``momentum=0.99`` is the weight of the old running average (ferronn's ``BatchNorm``
takes ``1 - momentum``), ``epsilon`` defaults to 1e-3, ``PReLU``'s slopes start at 0.

Layers ferronn has that Keras has not (``GLU``, ``SwiGLU``, ``GeGLU``, ``ReGLU``,
``Gated``, ``Residual``, ``GELU``, ``SiLU``, ...) are here under ferronn's names.
A Keras layer or argument without a ferronn counterpart raises ``NotSupportedError``
naming it. The convolution, pooling and reshaping layers are ferronn's own under
Keras' names (``ferronn.keras._conv``), and so are the recurrent layers and
``Embedding`` (``ferronn.keras._recurrent``).
"""

from __future__ import annotations

from typing import Any, Optional

from .. import layers as _fl
from ..layers import (  # noqa: F401  (ferronn's layers that Keras names the same or lacks)
    ELU, GELU, GLU, GeGLU, Gated, Identity, Layer, LayerNorm, LogSoftmax, ReGLU, Residual, RMSNorm, SiLU, Sigmoid,
    Softplus, SwiGLU, Swish, Tanh,
)
from ._common import check_default, layer_kwargs, missing_attr, unsupported

_conv_names = [
    "Conv1D", "Conv2D", "Convolution1D", "Convolution2D", "MaxPooling1D", "MaxPooling2D", "MaxPool1D",
    "MaxPool2D", "AveragePooling1D", "AveragePooling2D", "AvgPool1D", "AvgPool2D", "GlobalMaxPooling1D",
    "GlobalMaxPooling2D", "GlobalMaxPool1D", "GlobalMaxPool2D", "GlobalAveragePooling1D",
    "GlobalAveragePooling2D", "GlobalAvgPool1D", "GlobalAvgPool2D", "Flatten", "Reshape",
]

__all__ = [
    "Layer", "Dense", "Dropout", "Activation", "ReLU", "LeakyReLU", "ELU", "PReLU", "Softmax",
    "BatchNormalization", "LayerNormalization", "RMSNormalization", "Identity", "InputLayer",
    # ferronn's layers without a Keras class of their own
    "GELU", "SiLU", "Swish", "Sigmoid", "Tanh", "Softplus", "LogSoftmax", "Gated", "GLU", "SwiGLU", "GeGLU",
    "ReGLU", "Residual", "LayerNorm", "RMSNorm",
    # convolution, pooling, reshaping (ferronn.keras._conv)
    *_conv_names,
    # recurrent layers and Embedding (ferronn.keras._recurrent)
    "SimpleRNN", "LSTM", "GRU", "Bidirectional", "Embedding", "Masking",
]


class _KerasLayer:
    """What Keras layers have beyond ferronn's: ``weights`` as a list (empty until the
    model is built), ``trainable`` (always True here), and calling a layer on its own,
    which has no ferronn counterpart (layers run inside a model's core network)."""

    @property
    def weights(self) -> list[Any]:
        """The layer's weight arrays (copies), ``[]`` before its model is built."""
        owner = getattr(self, "_owner", None)
        return self.get_weights() if owner is not None and owner.built else []  # type: ignore[attr-defined]

    @property
    def trainable(self) -> bool:
        """Always True: ferronn trains every layer of a model."""
        return True

    @trainable.setter
    def trainable(self, value: bool) -> None:
        if value is not True:
            unsupported("layer.trainable = False (freezing a layer)", "ferronn trains every layer of a model")

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        unsupported(f"calling the layer {self!r} on its own (or on a keras.Input: the Functional API)",
                    "put the layer in a keras.Sequential and call the model")


class Dense(_KerasLayer, _fl.Dense):
    """Keras' ``Dense``: ``activation(x·kernel + bias)``; ``activation="softmax"`` on the
    output layer is trained fused with a cross-entropy loss (see ``ferronn._keras_methods``)."""

    def __init__(self, units: int, activation: Any = None, use_bias: bool = True,
                 kernel_initializer: Any = "glorot_uniform", bias_initializer: Any = "zeros",
                 kernel_regularizer: Any = None, bias_regularizer: Any = None, activity_regularizer: Any = None,
                 kernel_constraint: Any = None, bias_constraint: Any = None, **kwargs: Any) -> None:
        check_default("Dense", "use_bias", use_bias, True, "ferronn's Dense always has a bias")
        for arg, value in (("activity_regularizer", activity_regularizer), ("kernel_constraint", kernel_constraint),
                           ("bias_constraint", bias_constraint)):
            check_default("Dense", arg, value, None)
        name, extra = layer_kwargs("Dense", _fl.Dense, **kwargs)
        super().__init__(units, activation, kernel_initializer=kernel_initializer, bias_initializer=bias_initializer,
                         kernel_regularizer=kernel_regularizer, bias_regularizer=bias_regularizer, **extra)
        self.name = name


class Dropout(_KerasLayer, _fl.Dropout):
    """Keras' ``Dropout(rate)``: zeroes a fraction ``rate`` of the inputs in training."""

    def __init__(self, rate: float, noise_shape: Any = None, seed: Optional[int] = None, **kwargs: Any) -> None:
        check_default("Dropout", "noise_shape", noise_shape, None)
        check_default("Dropout", "seed", seed, None, "the model's seed fixes the dropout masks")
        self.name, _ = layer_kwargs("Dropout", _fl.Dropout, **kwargs)
        super().__init__(rate)


def Activation(activation: Any, **kwargs: Any) -> Layer:  # noqa: N802  (Keras' class name)
    """Keras' ``Activation(name)``: the ferronn activation layer for ``name``
    ("relu", "sigmoid", "softmax", ...)."""
    layer_kwargs("Activation", _fl.Activation, **kwargs)
    if isinstance(activation, str) and activation.lower() == "softmax":
        return _fl.Softmax()
    if isinstance(activation, str) and activation.lower() == "log_softmax":
        return _fl.LogSoftmax()
    _fl.Activation(activation)  # checks the name (UnknownNameError), then the most specific class:
    return _fl.Activation.from_spec({"type": "activation", "activation": activation})


def ReLU(max_value: Optional[float] = None, negative_slope: float = 0.0, threshold: float = 0.0,  # noqa: N802
         **kwargs: Any) -> Layer:
    """Keras' ``ReLU``; with ``negative_slope`` it is a leaky ReLU."""
    check_default("ReLU", "max_value", max_value, None)
    check_default("ReLU", "threshold", threshold, 0.0)
    layer_kwargs("ReLU", _fl.ReLU, **kwargs)
    return _fl.ReLU() if negative_slope == 0.0 else _fl.LeakyReLU(negative_slope)


def LeakyReLU(negative_slope: float = 0.3, **kwargs: Any) -> Layer:  # noqa: N802
    """Keras' ``LeakyReLU``: slope ``negative_slope`` (Keras' default 0.3) for x < 0."""
    layer_kwargs("LeakyReLU", _fl.LeakyReLU, **kwargs)
    return _fl.LeakyReLU(negative_slope)


class PReLU(_KerasLayer, _fl.PReLU):
    """Keras' ``PReLU``: one learned slope per feature, starting at 0 (``alpha_initializer``
    "zeros" or a constant number); ``shared_axes`` over the features shares one slope."""

    def __init__(self, alpha_initializer: Any = "zeros", alpha_regularizer: Any = None,
                 alpha_constraint: Any = None, shared_axes: Any = None, **kwargs: Any) -> None:
        check_default("PReLU", "alpha_regularizer", alpha_regularizer, None)
        check_default("PReLU", "alpha_constraint", alpha_constraint, None)
        if isinstance(alpha_initializer, str) and alpha_initializer.lower() == "zeros":
            init = 0.0
        elif isinstance(alpha_initializer, (int, float)) and not isinstance(alpha_initializer, bool):
            init = float(alpha_initializer)
        else:
            unsupported(f"PReLU(alpha_initializer={alpha_initializer!r})", "use 'zeros' or a number")
        if shared_axes not in (None, [1], (1,), 1, -1, [-1], (-1,)):
            unsupported(f"PReLU(shared_axes={shared_axes!r})")
        self.name, _ = layer_kwargs("PReLU", _fl.PReLU, **kwargs)
        super().__init__(shared=shared_axes is not None, init=init)


class Softmax(_KerasLayer, _fl.Softmax):
    """Keras' ``Softmax(axis=-1)`` over the features."""

    def __init__(self, axis: int = -1, **kwargs: Any) -> None:
        if axis not in (-1, 1):
            unsupported(f"Softmax(axis={axis!r})", "ferronn's softmax runs over the last axis")
        self.name, _ = layer_kwargs("Softmax", _fl.Softmax, **kwargs)
        super().__init__()


class BatchNormalization(_KerasLayer, _fl.BatchNorm):
    """Keras' ``BatchNormalization``: ``momentum`` (default 0.99) weighs the old running
    average, ``epsilon`` defaults to 1e-3."""

    def __init__(self, axis: int = -1, momentum: float = 0.99, epsilon: float = 1e-3, center: bool = True,
                 scale: bool = True, **kwargs: Any) -> None:
        if axis not in (-1, 1):
            unsupported(f"BatchNormalization(axis={axis!r})", "ferronn normalises the last axis")
        check_default("BatchNormalization", "center", center, True)
        check_default("BatchNormalization", "scale", scale, True)
        self.name, _ = layer_kwargs("BatchNormalization", _fl.BatchNorm, **kwargs)
        super().__init__(momentum=1.0 - float(momentum), eps=epsilon)


class LayerNormalization(_KerasLayer, _fl.LayerNorm):
    """Keras' ``LayerNormalization`` over the last axis, ``epsilon`` 1e-3 by default."""

    def __init__(self, axis: int = -1, epsilon: float = 1e-3, center: bool = True, scale: bool = True,
                 rms_scaling: bool = False, **kwargs: Any) -> None:
        if axis not in (-1, 1):
            unsupported(f"LayerNormalization(axis={axis!r})", "ferronn normalises the last axis")
        check_default("LayerNormalization", "center", center, True)
        check_default("LayerNormalization", "scale", scale, True)
        check_default("LayerNormalization", "rms_scaling", rms_scaling, False, "use RMSNormalization")
        self.name, _ = layer_kwargs("LayerNormalization", _fl.LayerNorm, **kwargs)
        super().__init__(eps=epsilon)


class RMSNormalization(_KerasLayer, _fl.RMSNorm):
    """Keras' ``RMSNormalization`` over the last axis, ``epsilon`` 1e-6 by default."""

    def __init__(self, axis: int = -1, epsilon: float = 1e-6, **kwargs: Any) -> None:
        if axis not in (-1, 1):
            unsupported(f"RMSNormalization(axis={axis!r})", "ferronn normalises the last axis")
        self.name, _ = layer_kwargs("RMSNormalization", _fl.RMSNorm, **kwargs)
        super().__init__(eps=epsilon)


def InputLayer(shape: Any = None, batch_size: Any = None, **kwargs: Any) -> Any:  # noqa: N802
    """Keras' ``InputLayer``: the same as ``keras.Input(shape=...)``."""
    from . import Input
    check_default("InputLayer", "batch_size", batch_size, None)
    return Input(shape=shape, **kwargs)


# Keras layers that ferronn does not have (yet): asking for one says so.
_MISSING = {
    **{n: "ferronn has Conv1D and Conv2D (Conv2D(groups=channels) is a depthwise convolution)"
       for n in ("Conv3D", "Conv1DTranspose", "Conv2DTranspose", "Conv3DTranspose", "SeparableConv1D",
                 "SeparableConv2D", "DepthwiseConv1D", "DepthwiseConv2D")},
    **{n: "ferronn has 1-D and 2-D pooling, Flatten and Reshape" for n in (
        "MaxPooling3D", "AveragePooling3D", "GlobalMaxPooling3D", "GlobalAveragePooling3D", "ZeroPadding1D",
        "ZeroPadding2D", "UpSampling1D", "UpSampling2D", "Cropping1D", "Cropping2D", "Permute", "RepeatVector")},
    **{n: "ferronn has SimpleRNN, LSTM, GRU and Bidirectional; no other wrappers or custom cells yet"
       for n in ("TimeDistributed", "RNN", "ConvLSTM1D", "ConvLSTM2D")},
    **{n: "ferronn models are Sequential stacks" for n in ("Add", "Concatenate", "Multiply", "Average",
                                                            "Lambda", "MultiHeadAttention")},
    **{n: "ferronn has no preprocessing layers; prepare the arrays with numpy"
       for n in ("Rescaling", "Normalization", "RandomFlip", "RandomRotation", "RandomZoom", "Resizing",
                 "CenterCrop", "TextVectorization", "StringLookup", "IntegerLookup", "CategoryEncoding")},
    **{n: "ferronn has no such regularisation layer" for n in ("GaussianNoise", "GaussianDropout",
                                                                "AlphaDropout", "SpatialDropout2D",
                                                                "ActivityRegularization")},
}


def __getattr__(name: str) -> Any:
    missing_attr("layers", name, _MISSING)


from ._conv import (  # noqa: E402,F401  (after _KerasLayer, which they extend)
    AveragePooling1D, AveragePooling2D, AvgPool1D, AvgPool2D, Conv1D, Conv2D, Convolution1D, Convolution2D,
    Flatten, GlobalAveragePooling1D, GlobalAveragePooling2D, GlobalAvgPool1D, GlobalAvgPool2D,
    GlobalMaxPool1D, GlobalMaxPool2D, GlobalMaxPooling1D, GlobalMaxPooling2D, MaxPool1D, MaxPool2D,
    MaxPooling1D, MaxPooling2D, Reshape,
)
from ._recurrent import Bidirectional, Embedding, GRU, LSTM, Masking, SimpleRNN  # noqa: E402,F401  (after _KerasLayer)
