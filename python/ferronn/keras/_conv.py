"""``keras.layers``' convolution, pooling and reshaping layers over ferronn's own.

Each class is the ferronn layer (a subclass, so models, files and exports treat it as
that layer) built from Keras 3's arguments and defaults. ``input_shape=`` on a first
layer gives the model its per-sample shape, as Keras. Arguments ferronn cannot honour
(constraints, activity regularizers, LoRA, ``keepdims``, a channels_first ``Flatten``)
raise ``NotSupportedError`` naming them.
"""

from __future__ import annotations

from typing import Any, Optional

from .. import layers as _fl
from ._common import check_default, layer_kwargs
from .layers import _KerasLayer  # defined before keras.layers imports this module

__all__ = [
    "Conv1D", "Conv2D", "Convolution1D", "Convolution2D", "MaxPooling1D", "MaxPooling2D", "MaxPool1D",
    "MaxPool2D", "AveragePooling1D", "AveragePooling2D", "AvgPool1D", "AvgPool2D", "GlobalMaxPooling1D",
    "GlobalMaxPooling2D", "GlobalMaxPool1D", "GlobalMaxPool2D", "GlobalAveragePooling1D",
    "GlobalAveragePooling2D", "GlobalAvgPool1D", "GlobalAvgPool2D", "Flatten", "Reshape",
]


def _common(self: Any, owner: str, base: type, kwargs: dict[str, Any]) -> None:
    """Keras' layer keywords: the name, and ``input_shape`` kept for the model to read
    (``keras.Sequential`` takes a first layer's ``input_shape`` as its per-sample shape)."""
    shape = kwargs.pop("input_shape", None)
    self.name, _ = layer_kwargs(owner, base, **kwargs)
    self._keras_input_shape = None if shape is None else _fl.Input(shape).shape


class _KerasConv:
    """Keras' ``Conv1D``/``Conv2D`` arguments on ferronn's convolution."""

    def __init__(self, filters: int, kernel_size: Any, strides: Any = 1, padding: Any = "valid",
                 data_format: Optional[str] = None, dilation_rate: Any = 1, groups: int = 1,
                 activation: Any = None, use_bias: bool = True, kernel_initializer: Any = "glorot_uniform",
                 bias_initializer: Any = "zeros", kernel_regularizer: Any = None, bias_regularizer: Any = None,
                 activity_regularizer: Any = None, kernel_constraint: Any = None, bias_constraint: Any = None,
                 **kwargs: Any) -> None:
        owner = type(self).__name__
        for arg, value in (("activity_regularizer", activity_regularizer), ("kernel_constraint", kernel_constraint),
                           ("bias_constraint", bias_constraint), ("lora_rank", kwargs.pop("lora_rank", None))):
            check_default(owner, arg, value, None)
        _common(self, owner, _fl.Conv2D, kwargs)
        super().__init__(filters, kernel_size, strides, padding, data_format, dilation_rate,  # type: ignore[call-arg]
                         groups, activation, use_bias, kernel_initializer=kernel_initializer,
                         bias_initializer=bias_initializer, kernel_regularizer=kernel_regularizer,
                         bias_regularizer=bias_regularizer)


class Conv2D(_KerasLayer, _KerasConv, _fl.Conv2D):
    """Keras' ``Conv2D(filters, kernel_size, strides=(1, 1), padding="valid", ...)`` on
    images ``(height, width, channels)``; see ``ferronn.layers.Conv2D``."""


class Conv1D(_KerasLayer, _KerasConv, _fl.Conv1D):
    """Keras' ``Conv1D(filters, kernel_size, strides=1, padding="valid", ...)`` on
    sequences ``(length, channels)``; ``padding="causal"`` too. See ``ferronn.layers.Conv1D``."""


class _KerasPool:
    """Keras' ``pool_size``, ``strides`` (default: ``pool_size``), ``padding``, ``data_format``."""

    def __init__(self, pool_size: Any = 2, strides: Any = None, padding: str = "valid",
                 data_format: Optional[str] = None, **kwargs: Any) -> None:
        _common(self, type(self).__name__, _fl.MaxPool2D, kwargs)
        super().__init__(pool_size, strides, padding, data_format)  # type: ignore[call-arg]


class MaxPooling2D(_KerasLayer, _KerasPool, _fl.MaxPool2D):
    """Keras' ``MaxPooling2D(pool_size=(2, 2), strides=None, padding="valid")``."""


class MaxPooling1D(_KerasLayer, _KerasPool, _fl.MaxPool1D):
    """Keras' ``MaxPooling1D(pool_size=2, strides=None, padding="valid")``."""


class AveragePooling2D(_KerasLayer, _KerasPool, _fl.AvgPool2D):
    """Keras' ``AveragePooling2D(pool_size=(2, 2), strides=None, padding="valid")``."""


class AveragePooling1D(_KerasLayer, _KerasPool, _fl.AvgPool1D):
    """Keras' ``AveragePooling1D(pool_size=2, strides=None, padding="valid")``."""


class _KerasGlobalPool:
    """Keras' ``data_format`` and ``keepdims`` (only False: the output is ``(channels,)``)."""

    def __init__(self, data_format: Optional[str] = None, keepdims: bool = False, **kwargs: Any) -> None:
        owner = type(self).__name__
        check_default(owner, "keepdims", keepdims, False, "add a Reshape after the pooling")
        _common(self, owner, _fl.GlobalAvgPool2D, kwargs)
        super().__init__(data_format)  # type: ignore[call-arg]


class GlobalMaxPooling2D(_KerasLayer, _KerasGlobalPool, _fl.GlobalMaxPool2D):
    """Keras' ``GlobalMaxPooling2D()``: each channel's largest value over the image."""


class GlobalMaxPooling1D(_KerasLayer, _KerasGlobalPool, _fl.GlobalMaxPool1D):
    """Keras' ``GlobalMaxPooling1D()``: each channel's largest value over the sequence."""


class GlobalAveragePooling2D(_KerasLayer, _KerasGlobalPool, _fl.GlobalAvgPool2D):
    """Keras' ``GlobalAveragePooling2D()``: each channel's mean over the image."""


class GlobalAveragePooling1D(_KerasLayer, _KerasGlobalPool, _fl.GlobalAvgPool1D):
    """Keras' ``GlobalAveragePooling1D()``: each channel's mean over the sequence."""


class Flatten(_KerasLayer, _fl.Flatten):
    """Keras' ``Flatten()``: each sample to one axis, channels_last order."""

    def __init__(self, data_format: Optional[str] = None, **kwargs: Any) -> None:
        # Keras moves the channels last before flattening channels_first inputs;
        # ferronn's Flatten keeps the layout's own order, so only channels_last matches.
        check_default("Flatten", "data_format", data_format or "channels_last", "channels_last",
                      "ferronn's Flatten keeps the channels_first order (as PyTorch's nn.Flatten)")
        _common(self, "Flatten", _fl.Flatten, kwargs)


class Reshape(_KerasLayer, _fl.Reshape):
    """Keras' ``Reshape(target_shape)`` (one axis may be -1)."""

    def __init__(self, target_shape: Any, **kwargs: Any) -> None:
        _common(self, "Reshape", _fl.Reshape, kwargs)
        super().__init__(target_shape)


Convolution1D, Convolution2D = Conv1D, Conv2D
MaxPool1D, MaxPool2D = MaxPooling1D, MaxPooling2D
AvgPool1D, AvgPool2D = AveragePooling1D, AveragePooling2D
GlobalMaxPool1D, GlobalMaxPool2D = GlobalMaxPooling1D, GlobalMaxPooling2D
GlobalAvgPool1D, GlobalAvgPool2D = GlobalAveragePooling1D, GlobalAveragePooling2D

# Documented and pickled under the module users import them from.
for _cls in (Conv1D, Conv2D, MaxPooling1D, MaxPooling2D, AveragePooling1D, AveragePooling2D, GlobalMaxPooling1D,
             GlobalMaxPooling2D, GlobalAveragePooling1D, GlobalAveragePooling2D, Flatten, Reshape):
    _cls.__module__ = "ferronn.keras.layers"
