"""Recurrent layers over sequences ``[N, T, F]``: ``SimpleRNN``, ``LSTM``, ``GRU``
(Keras' names and defaults, PyTorch's equations, gate order and weight layout).

Each layer has four tensors named as PyTorch's ``nn.RNN``/``nn.LSTM``/``nn.GRU``
names them without the ``_l0`` suffix, so a ``state_dict`` maps directly:
``weight_ih`` [G·units, F] (``weight_ih_l0``), ``weight_hh`` [G·units, units]
(``weight_hh_l0``), ``bias_ih`` and ``bias_hh`` [G·units] (``bias_ih_l0``,
``bias_hh_l0``), with G = 1 (SimpleRNN), 4 (LSTM gates i, f, g, o) or 3 (GRU
gates r, z, n). Keras keeps the transposes (``kernel`` = ``weight_ihᵀ``,
``recurrent_kernel`` = ``weight_hhᵀ``) and one bias (= ``bias_ih + bias_hh``);
its GRU (``reset_after=True``) has the two biases as one [2, 3·units] tensor and
orders its gates z, r, h, so moving Keras GRU weights means swapping the first
two thirds. Its LSTM gate order is PyTorch's.
"""

from __future__ import annotations

from typing import Any, Optional

import numpy as np

from ..errors import ConfigError
from .. import regularizers as _reg
from .activations import activation_spec, parse_activation
from .._validate import boolean, positive_int
from . import _recurrent_export as _export
from .base import Layer, NumpyStep, TorchEntry, TorchPart, register
from .. import _torch_modules as _tm
from .weights import InitArg, RegArg, WeightOptions

__all__ = ["SimpleRNN", "LSTM", "GRU"]

_TENSORS = ("weight_ih", "weight_hh", "bias_ih", "bias_hh")


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 0.5 * (1.0 + np.tanh(0.5 * x))


class _Recurrent(WeightOptions, Layer):
    """What the three recurrent kinds share; ``cell`` names the core's recurrence."""

    cell = ""
    gates = 1
    param_names = _TENSORS
    takes_sequences = True
    _aliases = {}

    def __init__(self, units: int, *, return_sequences: bool = False, go_backwards: bool = False,
                 kernel_initializer: InitArg = "glorot_uniform", recurrent_initializer: InitArg = "orthogonal",
                 bias_initializer: InitArg = "zeros", kernel_regularizer: RegArg = None,
                 recurrent_regularizer: RegArg = None, bias_regularizer: RegArg = None) -> None:
        kind = type(self).__name__
        self.units = positive_int(units, f"{kind} units")
        self.return_sequences = boolean(return_sequences, f"{kind} return_sequences")
        self.go_backwards = boolean(go_backwards, f"{kind} go_backwards")
        self._set_weight_options(kernel_initializer, bias_initializer, kernel_regularizer, bias_regularizer)
        self.recurrent_initializer = recurrent_initializer
        self.recurrent_regularizer = _reg.get(recurrent_regularizer)

    # -- shapes -------------------------------------------------------------

    def _sequence(self, input_shape: tuple[int, ...]) -> tuple[int, int]:
        shape = tuple(int(d) for d in input_shape)
        if len(shape) != 2:
            raise ConfigError(f"{type(self).__name__} takes sequences [batch, timesteps, features], but its input has "
                              f"the per-sample shape {shape}; give the model input_shape=(timesteps, features)")
        return shape[0], shape[1]

    def output_shape(self, input_shape: tuple[int, ...]) -> tuple[int, ...]:
        t, _ = self._sequence(input_shape)
        return (t, self.units) if self.return_sequences else (self.units,)

    def output_dim(self, input_dim: int) -> int:
        if self._input_shape is None:
            raise ConfigError(f"{type(self).__name__} needs its input shape: give the model "
                              "input_shape=(timesteps, features) or fn.Input(shape=...), or fit it first")
        return int(np.prod(self.output_shape(self._input_shape)))

    # -- spec -----------------------------------------------------------------

    def passes_mask(self) -> bool:
        return self.return_sequences  # Keras' compute_mask: the mask stays with the time axis

    def consumes_mask(self) -> bool:
        return True  # padded steps carry the state over

    def _extra_spec(self) -> dict[str, Any]:
        return {}

    def spec(self) -> dict[str, Any]:
        if self._input_shape is None:
            self.output_dim(0)  # raises the ConfigError naming what is missing
        t, f = self._sequence(self._input_shape or ())
        out = {"type": "recurrent", "cell": self.cell, "input": [t, f], "units": self.units,
               "return_sequences": self.return_sequences, "go_backwards": self.go_backwards, **self._extra_spec()}
        if self.recurrent_initializer is not None:
            out["recurrent_initializer"] = self.recurrent_initializer
        if self.recurrent_regularizer is not None:
            out["recurrent_regularizer"] = self.recurrent_regularizer.spec()
        return self._weight_spec(out)

    @classmethod
    def from_spec(cls, spec: dict[str, Any]) -> "_Recurrent":
        kinds = {k.cell: k for k in (SimpleRNN, LSTM, GRU)}
        kind = kinds.get(spec.get("cell"))  # type: ignore[arg-type]
        if kind is None:
            raise ConfigError(f"recurrent layer spec has an unknown cell {spec.get('cell')!r}; "
                              f"expected one of: {', '.join(kinds)}")
        shape = spec.get("input")
        if not isinstance(shape, list) or len(shape) != 2:
            raise ConfigError(f"recurrent layer spec needs its input shape [timesteps, features], got {shape!r}")
        kwargs: dict[str, Any] = {key: spec.get(key) for key in ("kernel_initializer", "bias_initializer", "kernel_regularizer",
                                                   "bias_regularizer", "recurrent_initializer", "recurrent_regularizer")}
        layer = kind(spec.get("units"), return_sequences=spec.get("return_sequences", False),  # type: ignore[arg-type]
                     go_backwards=spec.get("go_backwards", False), **kind._kind_kwargs(spec), **kwargs)
        layer._built_for(tuple(shape))
        return layer

    @classmethod
    def _kind_kwargs(cls, spec: dict[str, Any]) -> dict[str, Any]:
        return {}

    def regularized_tensors(self) -> list[tuple[str, Any]]:
        """``(tensor, regularizer)`` pairs: the kernel's on ``weight_ih``, the
        recurrent one on ``weight_hh``, the bias one on both biases."""
        pairs = [("weight_ih", self.kernel_regularizer), ("weight_hh", self.recurrent_regularizer),
                 ("bias_ih", self.bias_regularizer), ("bias_hh", self.bias_regularizer)]
        return [(name, reg) for name, reg in pairs if reg is not None]

    # -- tools ----------------------------------------------------------------

    def _cell(self, a: np.ndarray, hp: np.ndarray, cp: np.ndarray, p: Any, ref: Any) -> tuple[np.ndarray, np.ndarray]:
        raise NotImplementedError

    def numpy_forward(self, h: np.ndarray, p: Any, ref: Any, where: str) -> NumpyStep:
        _, f = self._sequence(self._input_shape or ())
        x = h.reshape(h.shape[0], -1, f)  # this call's number of steps (any, with variable lengths)
        t = x.shape[1]
        if self.go_backwards:
            x = x[:, ::-1]
        keep = getattr(ref, "mask", None)  # [N, T] step mask of padded sequences, by input time
        if keep is not None and self.go_backwards:
            keep = keep[:, ::-1]
        a = x @ p["weight_ih"].T + p["bias_ih"]  # every step's input projection, [N, T, G·units]
        hs = np.zeros((h.shape[0], self.units), dtype=h.dtype)
        cs = np.zeros_like(hs)
        outs = []
        for step in range(t):
            h_new, c_new = self._cell(a[:, step], hs, cs, p, ref)
            if keep is None:
                hs, cs = h_new, c_new
            else:  # a padded step carries the state over (Keras' masking)
                k = keep[:, step:step + 1]
                hs, cs = np.where(k, h_new, hs), np.where(k, c_new, cs)
            outs.append(hs)
        out = np.stack(outs, axis=1).reshape(h.shape[0], -1) if self.return_sequences else hs
        return NumpyStep(out)

    def _onnx_activation(self, where: str) -> tuple[list[str], dict[str, Any]]:
        """The operator's ``activations`` and extra attributes (none: its defaults)."""
        return [], {}

    def onnx_nodes(self, g: Any, x: str, where: str) -> str:
        acts, attrs = self._onnx_activation(where)  # may raise: before the dry walk returns
        if g.dry:
            return x
        t, f = self._sequence(self._input_shape or ())
        return _export.onnx_layer(g, x, (t, f), self.cell, [where], "reverse" if self.go_backwards else "forward",
                                  self.units, self.return_sequences, where, acts, **attrs)

    def _torch_module(self, f: str) -> tuple[str, str]:
        """The ``nn`` class's name (``RNN``, ``LSTM``, ``GRU``) and extra arguments."""
        raise NotImplementedError

    def torch_layout(self, layout: Any, d: int, f: str, t: str) -> TorchPart:
        name, extra = self._torch_module(f)
        _, features = self._sequence(self._input_shape or ())
        module = (f"Sequence{name}({features}, {self.units}{extra}, return_sequences={self.return_sequences}, "
                  f"go_backwards={self.go_backwards})")
        entries = [TorchEntry(f"{t}.{n}_l0", f"{f}.{n}") for n in _TENSORS]  # PyTorch's names and layout
        return TorchPart([module], entries, (_tm.SEQUENCE,))

    def __repr__(self) -> str:
        args = [str(self.units)]
        for key in ("return_sequences", "go_backwards"):
            if getattr(self, key):
                args.append(f"{key}=True")
        return f"{type(self).__name__}({', '.join(args)})"


@register("recurrent")
class SimpleRNN(_Recurrent):
    """Fully connected recurrence (Keras' SimpleRNN, PyTorch's ``nn.RNN``):
    ``h_t = activation(x_t·W_ihᵀ + b_ih + h_{t-1}·W_hhᵀ + b_hh)`` with ``h_0 = 0``.

    Input ``[N, T, F]``; output the last state ``[N, units]``, or every state
    ``[N, T, units]`` with ``return_sequences=True``. ``go_backwards=True`` reads
    the sequence from its end (the outputs come in that reading order, as Keras).
    Tensors: ``weight_ih`` [units, F], ``weight_hh`` [units, units], ``bias_ih``,
    ``bias_hh`` [units] (PyTorch's names and layout). Defaults as Keras: kernel
    glorot_uniform, recurrent kernel orthogonal, biases zeros.

    >>> import ferronn as fn
    >>> m = fn.Sequential([fn.SimpleRNN(8), fn.Dense(1)], input_shape=(5, 3))
    >>> m.compile(loss="mse")
    >>> m.layers[0].output_shape((5, 3)), m.layers[0].weight_hh.shape
    ((8,), (8, 8))
    """

    cell = "simple_rnn"
    gates = 1

    def __init__(self, units: int, activation: Any = "tanh", **kwargs: Any) -> None:
        self.activation, self.alpha = parse_activation(activation, "SimpleRNN activation")
        super().__init__(units, **kwargs)

    def _extra_spec(self) -> dict[str, Any]:
        return {"activation": activation_spec(self.activation, self.alpha)}

    @classmethod
    def _kind_kwargs(cls, spec: dict[str, Any]) -> dict[str, Any]:
        name, alpha = parse_activation(spec.get("activation", "tanh"), "SimpleRNN activation")
        return {"activation": name if alpha is None else {"name": name, "alpha": alpha}}

    def _onnx_activation(self, where: str) -> tuple[list[str], dict[str, Any]]:
        op, attrs = _export.onnx_rnn_activation(self.activation, self.alpha, where)
        return [op], attrs

    def _torch_module(self, f: str) -> tuple[str, str]:
        return "RNN", f", nonlinearity={_export.torch_nonlinearity(self.activation, f)!r}"

    def _cell(self, a: np.ndarray, hp: np.ndarray, cp: np.ndarray, p: Any, ref: Any) -> tuple[np.ndarray, np.ndarray]:
        return ref.act(self.activation, a + hp @ p["weight_hh"].T + p["bias_hh"], self.alpha), cp


class LSTM(_Recurrent):
    """Long short-term memory (Keras' LSTM, PyTorch's ``nn.LSTM`` equations):
    gates ``i, f, g, o = σ, σ, tanh, σ (x_t·W_ihᵀ + b_ih + h_{t-1}·W_hhᵀ + b_hh)``,
    cell ``c_t = f·c_{t-1} + i·g``, state ``h_t = o·tanh(c_t)``. The forget gate
    lets the cell carry information, and gradients, across many steps.

    Tensors as PyTorch (gate order i, f, g, o): ``weight_ih`` [4·units, F],
    ``weight_hh`` [4·units, units], ``bias_ih``, ``bias_hh`` [4·units].
    ``unit_forget_bias=True`` (Keras' default) starts the forget gate's part of
    ``bias_ih`` at 1. Other arguments as ``SimpleRNN``.

    >>> import ferronn as fn
    >>> m = fn.Sequential([fn.LSTM(4, return_sequences=True)], input_shape=(6, 2))
    >>> m.compile(loss="mse")
    >>> m.layers[0].weight_ih.shape, m.layers[0].bias_ih[4:8].tolist()
    ((16, 2), [1.0, 1.0, 1.0, 1.0])
    """

    cell = "lstm"
    gates = 4

    def __init__(self, units: int, unit_forget_bias: bool = True, **kwargs: Any) -> None:
        self.unit_forget_bias = boolean(unit_forget_bias, "LSTM unit_forget_bias")
        super().__init__(units, **kwargs)

    def _extra_spec(self) -> dict[str, Any]:
        return {"unit_forget_bias": self.unit_forget_bias}

    @classmethod
    def _kind_kwargs(cls, spec: dict[str, Any]) -> dict[str, Any]:
        return {"unit_forget_bias": spec.get("unit_forget_bias", True)}

    def _torch_module(self, f: str) -> tuple[str, str]:
        return "LSTM", ""

    def _cell(self, a: np.ndarray, hp: np.ndarray, cp: np.ndarray, p: Any, ref: Any) -> tuple[np.ndarray, np.ndarray]:
        z = a + hp @ p["weight_hh"].T + p["bias_hh"]
        i, f, g, o = np.split(z, 4, axis=1)
        c = _sigmoid(f) * cp + _sigmoid(i) * np.tanh(g)
        return _sigmoid(o) * np.tanh(c), c


class GRU(_Recurrent):
    """Gated recurrent unit with PyTorch's equations (Keras' GRU with
    ``reset_after=True``, its default): ``r, z = σ(x_t·W_irᵀ + b_ir + h·W_hrᵀ +
    b_hr)`` (and likewise z), ``n = tanh(x_t·W_inᵀ + b_in + r·(h·W_hnᵀ + b_hn))``,
    ``h_t = (1 − z)·n + z·h_{t-1}``.

    Tensors as PyTorch (gate order r, z, n): ``weight_ih`` [3·units, F],
    ``weight_hh`` [3·units, units], ``bias_ih``, ``bias_hh`` [3·units]. Other
    arguments as ``SimpleRNN``.

    >>> import ferronn as fn
    >>> m = fn.Sequential([fn.GRU(5), fn.Dense(2)], input_shape=(4, 3))
    >>> m.compile(loss="mse")
    >>> [p.shape for p in m.layers[0].get_params().values()]
    [(15, 3), (15, 5), (15,), (15,)]
    """

    cell = "gru"
    gates = 3

    def _torch_module(self, f: str) -> tuple[str, str]:
        return "GRU", ""

    def _cell(self, a: np.ndarray, hp: np.ndarray, cp: np.ndarray, p: Any, ref: Any) -> tuple[np.ndarray, np.ndarray]:
        b = hp @ p["weight_hh"].T + p["bias_hh"]
        ar, az, an = np.split(a, 3, axis=1)
        br, bz, bn = np.split(b, 3, axis=1)
        r, z = _sigmoid(ar + br), _sigmoid(az + bz)
        n = np.tanh(an + r * bn)
        return (1.0 - z) * n + z * hp, cp
