"""``keras.layers``' recurrent layers and ``Embedding`` over ferronn's own.

Each class is the ferronn layer (a subclass, so models, files and exports treat it as
that layer) built from Keras 3's arguments, in Keras' order and with Keras' defaults.
ferronn's recurrences are PyTorch's: ``tanh`` and
``sigmoid`` gates, two bias vectors per layer (``bias_ih`` and ``bias_hh``), which is
Keras' ``GRU(reset_after=True)`` form. So ``count_params()`` and ``summary()`` count
the tensors ferronn trains: the same as Keras for ``GRU``, ``units`` more than Keras
for ``SimpleRNN`` and ``4·units`` more for ``LSTM`` (Keras keeps one bias per gate).

Arguments ferronn cannot honour raise ``NotSupportedError`` naming them: other gate
activations, ``use_bias=False``, constraints, activity regularizers, dropout,
``return_state``, ``stateful``, ``unroll``, ``reset_after=False``. Masking follows
Keras: ``Embedding(mask_zero=True)`` and ``Masking(mask_value)`` make the recurrent
layers after them skip padded steps; ``input_shape=(None, features)`` takes sequences
of any length.
"""

from __future__ import annotations

from typing import Any, Optional

from .. import layers as _fl
from ._common import check_default, unsupported
from ._conv import _common
from .layers import _KerasLayer  # defined before keras.layers imports this module

__all__ = ["SimpleRNN", "LSTM", "GRU", "Bidirectional", "Embedding", "Masking"]


def _check_rnn(owner: str, args: dict[str, Any], kwargs: dict[str, Any]) -> None:
    """``NotSupportedError`` for each Keras recurrent argument away from the one value
    ferronn implements; ``seed`` and ``use_cudnn`` change nothing here and are accepted."""
    kwargs.pop("seed", None)
    kwargs.pop("use_cudnn", None)
    hints = {
        "recurrent_activation": "ferronn's gates are sigmoids (PyTorch's equations)",
        "use_bias": "ferronn's recurrent layers always have bias_ih and bias_hh",
        "dropout": "add a Dropout layer before the recurrent layer instead",
        "recurrent_dropout": "ferronn has no dropout inside the recurrence",
        "return_state": "ferronn models are Sequential stacks with one output",
        "stateful": "each batch starts from a zero state",
        "unroll": "the core runs the recurrence as a loop",
        "reset_after": "ferronn's GRU is PyTorch's, which is Keras' reset_after=True",
    }
    defaults = {"recurrent_activation": "sigmoid", "use_bias": True, "activity_regularizer": None,
                "kernel_constraint": None, "recurrent_constraint": None, "bias_constraint": None, "dropout": 0.0,
                "recurrent_dropout": 0.0, "return_state": False, "stateful": False, "unroll": False,
                "reset_after": True}
    for arg, value in args.items():
        if arg in defaults:
            check_default(owner, arg, value, defaults[arg], hints.get(arg, ""))


class _KerasRecurrent:
    """Keras' ``SimpleRNN``/``LSTM``/``GRU`` arguments on ferronn's recurrent layers."""

    def _keras_init(self, units: int, args: dict[str, Any], kwargs: dict[str, Any], **kind: Any) -> None:
        owner = type(self).__name__
        _check_rnn(owner, args, kwargs)
        _common(self, owner, _fl.LSTM, kwargs)
        super().__init__(units, **kind, return_sequences=args["return_sequences"],  # type: ignore[call-arg]
                         go_backwards=args["go_backwards"], kernel_initializer=args["kernel_initializer"],
                         recurrent_initializer=args["recurrent_initializer"],
                         bias_initializer=args["bias_initializer"], kernel_regularizer=args["kernel_regularizer"],
                         recurrent_regularizer=args["recurrent_regularizer"],
                         bias_regularizer=args["bias_regularizer"])


class SimpleRNN(_KerasLayer, _KerasRecurrent, _fl.SimpleRNN):
    """Keras' ``SimpleRNN(units, activation="tanh", ...)`` on sequences
    ``(timesteps, features)``; ``activation=None`` is linear. See ``ferronn.layers.SimpleRNN``."""

    def __init__(self, units: int, activation: Any = "tanh", use_bias: bool = True,
                 kernel_initializer: Any = "glorot_uniform", recurrent_initializer: Any = "orthogonal",
                 bias_initializer: Any = "zeros", kernel_regularizer: Any = None, recurrent_regularizer: Any = None,
                 bias_regularizer: Any = None, activity_regularizer: Any = None, kernel_constraint: Any = None,
                 recurrent_constraint: Any = None, bias_constraint: Any = None, dropout: float = 0.0,
                 recurrent_dropout: float = 0.0, return_sequences: bool = False, return_state: bool = False,
                 go_backwards: bool = False, stateful: bool = False, unroll: bool = False, seed: Any = None,
                 **kwargs: Any) -> None:
        args = dict(locals())
        self._keras_init(units, args, kwargs, activation="linear" if activation is None else activation)


class LSTM(_KerasLayer, _KerasRecurrent, _fl.LSTM):
    """Keras' ``LSTM(units, activation="tanh", recurrent_activation="sigmoid", ...,
    unit_forget_bias=True, ...)`` on sequences ``(timesteps, features)``. See ``ferronn.layers.LSTM``."""

    def __init__(self, units: int, activation: Any = "tanh", recurrent_activation: Any = "sigmoid",
                 use_bias: bool = True, kernel_initializer: Any = "glorot_uniform",
                 recurrent_initializer: Any = "orthogonal", bias_initializer: Any = "zeros",
                 unit_forget_bias: bool = True, kernel_regularizer: Any = None, recurrent_regularizer: Any = None,
                 bias_regularizer: Any = None, activity_regularizer: Any = None, kernel_constraint: Any = None,
                 recurrent_constraint: Any = None, bias_constraint: Any = None, dropout: float = 0.0,
                 recurrent_dropout: float = 0.0, seed: Any = None, return_sequences: bool = False,
                 return_state: bool = False, go_backwards: bool = False, stateful: bool = False,
                 unroll: bool = False, use_cudnn: Any = "auto", **kwargs: Any) -> None:
        args = dict(locals())
        check_default("LSTM", "activation", activation, "tanh", "ferronn's LSTM is PyTorch's, with tanh")
        self._keras_init(units, args, kwargs, unit_forget_bias=unit_forget_bias)


class GRU(_KerasLayer, _KerasRecurrent, _fl.GRU):
    """Keras' ``GRU(units, activation="tanh", recurrent_activation="sigmoid", ...,
    reset_after=True)`` on sequences ``(timesteps, features)``. See ``ferronn.layers.GRU``."""

    def __init__(self, units: int, activation: Any = "tanh", recurrent_activation: Any = "sigmoid",
                 use_bias: bool = True, kernel_initializer: Any = "glorot_uniform",
                 recurrent_initializer: Any = "orthogonal", bias_initializer: Any = "zeros",
                 kernel_regularizer: Any = None, recurrent_regularizer: Any = None, bias_regularizer: Any = None,
                 activity_regularizer: Any = None, kernel_constraint: Any = None, recurrent_constraint: Any = None,
                 bias_constraint: Any = None, dropout: float = 0.0, recurrent_dropout: float = 0.0,
                 seed: Any = None, return_sequences: bool = False, return_state: bool = False,
                 go_backwards: bool = False, stateful: bool = False, unroll: bool = False,
                 reset_after: bool = True, use_cudnn: Any = "auto", **kwargs: Any) -> None:
        args = dict(locals())
        check_default("GRU", "activation", activation, "tanh", "ferronn's GRU is PyTorch's, with tanh")
        self._keras_init(units, args, kwargs)


class Bidirectional(_KerasLayer, _fl.Bidirectional):
    """Keras' ``Bidirectional(layer, merge_mode="concat", weights=None, backward_layer=None)``
    over ``SimpleRNN``/``LSTM``/``GRU``. ``merge_mode=None`` (two outputs) and ``weights``
    raise ``NotSupportedError``. See ``ferronn.layers.Bidirectional``."""

    def __init__(self, layer: Any, merge_mode: Optional[str] = "concat", weights: Any = None,
                 backward_layer: Any = None, **kwargs: Any) -> None:
        if merge_mode is None:
            unsupported("Bidirectional(merge_mode=None)", "a ferronn model has one output; use 'concat', 'sum', "
                        "'mul' or 'ave'")
        if weights is not None:  # a list of arrays: compared with `is`, not `!=`
            unsupported("Bidirectional(weights=...)", "call set_weights once the model is built")
        _common(self, "Bidirectional", _fl.Bidirectional, kwargs)
        super().__init__(layer, merge_mode, backward_layer)


class Embedding(_KerasLayer, _fl.Embedding):
    """Keras' ``Embedding(input_dim, output_dim, embeddings_initializer="uniform", ...)``:
    token ids ``(timesteps,)`` to vectors ``(timesteps, output_dim)``. See ``ferronn.layers.Embedding``."""

    def __init__(self, input_dim: int, output_dim: int, embeddings_initializer: Any = "uniform",
                 embeddings_regularizer: Any = None, embeddings_constraint: Any = None, mask_zero: bool = False,
                 weights: Any = None, lora_rank: Optional[int] = None, lora_alpha: Optional[float] = None,
                 **kwargs: Any) -> None:
        for arg, value, hint in (
                ("embeddings_regularizer", embeddings_regularizer, "ferronn's Embedding has no regularizer"),
                ("embeddings_constraint", embeddings_constraint, ""),
                ("lora_rank", lora_rank, ""), ("lora_alpha", lora_alpha, ""),
                ("quantization_config", kwargs.pop("quantization_config", None), "")):
            check_default("Embedding", arg, value, None, hint)
        if weights is not None:  # an array: compared with `is`, not `!=`
            unsupported("Embedding(weights=...)", "call set_weights once the model is built")
        _common(self, "Embedding", _fl.Embedding, kwargs)
        super().__init__(input_dim, output_dim, embeddings_initializer, mask_zero=mask_zero)


class Masking(_KerasLayer, _fl.Masking):
    """Keras' ``Masking(mask_value=0.0)``: time steps whose features all equal
    ``mask_value`` are padding, skipped by the recurrent layers after it. See
    ``ferronn.layers.Masking``."""

    def __init__(self, mask_value: float = 0.0, **kwargs: Any) -> None:
        _common(self, "Masking", _fl.Masking, kwargs)
        super().__init__(mask_value)


# Documented and pickled under the module users import them from.
for _cls in (SimpleRNN, LSTM, GRU, Bidirectional, Embedding, Masking):
    _cls.__module__ = "ferronn.keras.layers"
