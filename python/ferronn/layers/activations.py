"""Activation layers: functions applied to each value on its own (ReLU, GELU, ...),
plus the row-wise Softmax / LogSoftmax and the learned PReLU.

An elementwise activation can also be fused into a layer before it:
``Dense(64, activation=LeakyReLU(0.2))`` computes the same as
``Dense(64), LeakyReLU(0.2)`` with one layer less.
"""

from __future__ import annotations

from typing import Any, Optional, Union

import numpy as np

from .. import _torch_modules as _tm, _validate, names as _names
from ..errors import ConfigError
from ..names import ActivationInfo
from . import elementwise as _elementwise
from .._validate import finite_float
from .base import Layer, NumpyStep, TorchEntry, TorchPart, register

__all__ = [
    "Activation", "ReLU", "LeakyReLU", "ELU", "GELU", "SiLU", "Swish", "Sigmoid", "Tanh",
    "Softplus", "Identity", "Softmax", "LogSoftmax", "PReLU",
]

#: An activation as written in specs: "relu", or {"name": "leaky_relu", "alpha": 0.2}.
ActSpec = Union[str, dict]


def check_activation(name: str, alpha: Optional[float]) -> ActivationInfo:
    """The core's row for activation ``name``; UnknownNameError / ConfigError now if
    the core would reject ``(name, alpha)``, so a bad name fails where it is
    written rather than at the first fit."""
    info = _names.activation(name)
    _names.check_alpha(info, alpha)
    return info


def parse_activation(act: Any, what: str = "activation") -> tuple[str, Optional[float]]:
    """``(name, alpha)`` of an activation spec (a name, a {"name", "alpha"} dict, or None)."""
    if act is None:
        return "identity", None
    if isinstance(act, str):
        return act, None
    if isinstance(act, dict) and isinstance(act.get("name"), str) and set(act) <= {"name", "alpha"}:
        alpha = act.get("alpha")
        return act["name"], None if alpha is None else finite_float(alpha, f"alpha of {what}")
    raise ConfigError(f"{what} must be an activation name such as 'relu' or a dict such as "
                      f"{{'name': 'leaky_relu', 'alpha': 0.2}}, got {act!r}")


def activation_spec(name: str, alpha: Optional[float]) -> ActSpec:
    """The spec form of ``(name, alpha)``: the bare name when there is no alpha."""
    return name if alpha is None else {"name": name, "alpha": alpha}


def activation_arg(value: Any, alpha: Any, what: str) -> tuple[str, Optional[float]]:
    """``(name, alpha)`` from an ``activation=`` style argument: None (identity), a
    name, a spec dict, or an elementwise activation layer such as ``LeakyReLU(0.2)``.
    Checked by the core; ``what`` names the argument in error messages."""
    if isinstance(value, Activation):
        if alpha is not None:
            raise ConfigError(f"{what}: set alpha on the activation object ({value!r}), not as alpha={alpha!r}")
        return value.name, value.alpha
    if isinstance(value, Layer):
        raise ConfigError(f"{what} must be elementwise (ReLU(), LeakyReLU(0.2), GELU(), ...); "
                          f"{value!r} cannot be fused: use it as a separate layer")
    if value is not None and not isinstance(value, (str, dict)):
        raise ConfigError(f"{what} must be a name such as 'relu' or an activation layer such as "
                          f"fn.ReLU(), got {value!r}")
    name, spec_alpha = parse_activation(value, what)
    if alpha is not None and spec_alpha is not None:
        raise ConfigError(f"{what}: alpha given twice (in {value!r} and as alpha={alpha!r})")
    alpha = spec_alpha if alpha is None else finite_float(alpha, "alpha")
    check_activation(name, alpha)
    return name, alpha


def activation_step(name: str, alpha: Optional[float], pre: np.ndarray, ref: Any) -> NumpyStep:
    """The NumPy forward step of activation ``name`` on ``pre`` (see ``Layer.numpy_forward``),
    recording what the diagnostics read about it."""
    info = _names.activation(name)
    post = ref.act(info.name, pre, alpha)
    return NumpyStep(post, info.name, pre, post, info.kinked)


def _rebuild(name: str, alpha: Optional[float]) -> "Activation":
    """The most specific activation class for ``(name, alpha)``."""
    name = check_activation(name, alpha).name
    if name == "leaky_relu":
        return LeakyReLU(alpha)
    if name == "elu":
        return ELU() if alpha is None else ELU(alpha)
    if name in ("gelu", "gelu_tanh"):
        return GELU(approximate="tanh" if name == "gelu_tanh" else "none")
    fixed = {cls._name: cls for cls in _Fixed.__subclasses__()}
    return fixed[name]() if name in fixed else Activation(name, alpha)


@register("activation")
class Activation(Layer):
    """Applies one function to every value: ``y = f(x)``, same shape as ``x``.

    ``name`` is any activation the core knows ("relu", "tanh", "gelu", ...);
    ``alpha`` is the parameter of "leaky_relu" (slope for x < 0, default 0.01) and
    "elu" (value approached for very negative x, default 1.0). The subclasses
    (``ReLU()``, ``LeakyReLU(0.2)``, ...) are the usual way to write these.
    Activations have no weights.
    """

    keeps_shape = True

    def passes_mask(self) -> bool:
        return True

    def follows_steps(self) -> bool:
        return True

    def __init__(self, name: str, alpha: Optional[float] = None) -> None:
        if not isinstance(name, str):
            raise ConfigError(f"activation name must be a string such as 'relu', got {name!r}")
        alpha = None if alpha is None else finite_float(alpha, f"alpha of {name!r}")
        info = check_activation(name, alpha)
        self.name = info.name  # the canonical name: "silu" for "swish"
        self.alpha = info.default_alpha if alpha is None else alpha

    def activation_spec(self) -> ActSpec:
        """The activation in spec form ("relu" or {"name": "leaky_relu", "alpha": 0.2}),
        as ``Dense(activation=...)`` stores it."""
        return activation_spec(self.name, self.alpha)

    def spec(self) -> dict[str, Any]:
        return {"type": "activation", "activation": self.activation_spec()}

    @classmethod
    def from_spec(cls, spec: dict[str, Any]) -> "Activation":
        return _rebuild(*parse_activation(spec.get("activation")))

    def numpy_forward(self, h: np.ndarray, p: Any, ref: Any, where: str) -> NumpyStep:
        return activation_step(self.name, self.alpha, h, ref)

    def onnx_nodes(self, g: Any, x: str, where: str) -> str:
        return _elementwise.onnx_nodes(g, self.name, self.alpha, x, where)

    def torch_layout(self, layout: Any, d: int, f: str, t: str) -> TorchPart:
        return TorchPart([_elementwise.torch_module(self.name, self.alpha)], [])

    def __repr__(self) -> str:
        extra = "" if self.alpha is None else f", alpha={self.alpha!r}"
        return f"Activation({self.name!r}{extra})"


class _Fixed(Activation):
    """An activation without arguments; the subclass sets ``_name``."""

    _name = ""

    def __init__(self) -> None:
        super().__init__(self._name)

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"


class ReLU(_Fixed):
    """Rectified linear unit: ``max(0, x)``. The default choice for hidden layers."""

    _name = "relu"


class LeakyReLU(Activation):
    """``x`` for x > 0, ``alpha·x`` otherwise (Maas et al. 2013).

    The small slope ``alpha`` (default 0.01) keeps a gradient flowing for negative
    inputs, so units cannot "die" as with ReLU. PyTorch calls it
    ``negative_slope``; both spellings are accepted.
    """

    def __init__(self, alpha: Optional[float] = None, *, negative_slope: Optional[float] = None) -> None:
        if alpha is not None and negative_slope is not None:
            raise ConfigError(f"give LeakyReLU alpha or negative_slope, not both "
                              f"(got alpha={alpha!r}, negative_slope={negative_slope!r})")
        slope = alpha if alpha is not None else negative_slope
        super().__init__("leaky_relu", slope)  # None: the core's default slope

    def __repr__(self) -> str:
        return f"LeakyReLU({self.alpha!r})"


class ELU(Activation):
    """Exponential linear unit: ``x`` for x > 0, ``alpha·(e^x − 1)`` otherwise
    (Clevert et al. 2015). Smooth, and its outputs average nearer to zero than ReLU's."""

    def __init__(self, alpha: Optional[float] = None) -> None:
        super().__init__("elu", alpha)  # None: the core's default (1.0)

    def __repr__(self) -> str:
        return f"ELU({self.alpha!r})"


class GELU(Activation):
    """Gaussian error linear unit: ``x·Φ(x)``, Φ the standard normal CDF
    (Hendrycks & Gimpel 2016); the usual activation in transformers.

    ``approximate="tanh"`` uses the tanh formula of the original BERT/GPT-2 code
    instead of the exact erf one (PyTorch's argument of the same name).
    """

    def __init__(self, approximate: str = "none") -> None:
        if approximate not in ("none", "tanh"):
            raise ConfigError(f"GELU approximate must be 'none' or 'tanh', got {approximate!r}")
        super().__init__("gelu" if approximate == "none" else "gelu_tanh")

    @property
    def approximate(self) -> str:
        """``"none"`` for the exact erf form, ``"tanh"`` for the tanh approximation."""
        return "tanh" if self.name == "gelu_tanh" else "none"

    def __repr__(self) -> str:
        return "GELU()" if self.approximate == "none" else "GELU(approximate='tanh')"


class SiLU(_Fixed):
    """Sigmoid linear unit, also called Swish: ``x·sigmoid(x)`` (Ramachandran et al. 2017)."""

    _name = "silu"


Swish = SiLU


class Sigmoid(_Fixed):
    """Logistic function ``1 / (1 + e^−x)``: squashes to (0, 1)."""

    _name = "sigmoid"


class Tanh(_Fixed):
    """Hyperbolic tangent: squashes to (−1, 1), centred on zero."""

    _name = "tanh"


class Softplus(_Fixed):
    """``log(1 + e^x)``: a smooth ReLU, always positive."""

    _name = "softplus"


class Identity(_Fixed):
    """``y = x``: does nothing (a placeholder where a layer is expected)."""

    _name = "identity"


# The PyTorch helper for a temperature other than 1 (nn.Softmax has none).
_TORCH_SOFTMAX = '''class Softmax(nn.Module):
    """Softmax (or log-softmax) over the last axis with a temperature: softmax(x / T)."""

    def __init__(self, temperature=1.0, log=False):
        super().__init__()
        self.temperature, self.log = temperature, log

    def forward(self, x):
        f = torch.log_softmax if self.log else torch.softmax
        return f(x / self.temperature, dim=-1)
'''


class _RowWise(Layer):
    """Shared code of Softmax and LogSoftmax (each row of the batch on its own)."""

    normalises_scores = True
    _type = ""
    _log = False

    def __init__(self, temperature: float = 1.0) -> None:
        self.temperature = finite_float(temperature, f"{type(self).__name__} temperature", low=0.0, low_open=True)

    def spec(self) -> dict[str, Any]:
        return {"type": self._type, "temperature": self.temperature}

    @classmethod
    def from_spec(cls, spec: dict[str, Any]) -> "_RowWise":
        return cls(spec.get("temperature", 1.0))

    def __repr__(self) -> str:
        extra = "" if self.temperature == 1.0 else f"temperature={self.temperature!r}"
        return f"{type(self).__name__}({extra})"

    def numpy_forward(self, h: np.ndarray, p: Any, ref: Any, where: str) -> NumpyStep:
        return NumpyStep(ref.softmax(h, self.temperature, log=self._log))

    def onnx_nodes(self, g: Any, x: str, where: str) -> str:
        if self.temperature != 1.0:
            x = g.node("Div", [x, g.scalar(self.temperature)], where)
        return g.node("LogSoftmax" if self._log else "Softmax", [x], where, axis=-1)

    def torch_layout(self, layout: Any, d: int, f: str, t: str) -> TorchPart:
        if self.temperature == 1.0:
            return TorchPart(["nn.LogSoftmax(dim=-1)" if self._log else "nn.Softmax(dim=-1)"], [])
        module = f"Softmax(temperature={self.temperature!r}{', log=True' if self._log else ''})"
        return TorchPart([module], [], (_TORCH_SOFTMAX,))


@register("softmax")
class Softmax(_RowWise):
    """Turns each row into probabilities: ``y_i = e^(x_i/T) / Σ_j e^(x_j/T)``.

    The temperature ``T`` (default 1) flattens the distribution when above 1 and
    sharpens it when below. Not needed before the "cross_entropy" loss, which
    takes logits and applies softmax itself.
    """

    _type = "softmax"


@register("log_softmax")
class LogSoftmax(_RowWise):
    """The logarithm of Softmax, computed stably: ``y_i = x_i/T − log Σ_j e^(x_j/T)``.
    Pairs with the "nll" loss."""

    _type = "log_softmax"
    _log = True


@register("prelu")
class PReLU(Layer):
    """Parametric ReLU: ``x`` for x > 0, ``a·x`` otherwise, with the slope ``a``
    learned (He et al. 2015).

    Each input feature has its own slope, or all share one when ``shared=True``;
    slopes start at ``init`` (default 0.25). The learned slopes are ``layer.alpha``.

    On images and sequences, ``shared_axes`` (Keras' argument; sample axes count
    from 1, the batch is axis 0) shares a slope across those axes. Sharing every
    axis but the channels gives one slope per channel, PyTorch's
    ``nn.PReLU(num_parameters=C)``: ``shared_axes=[1, 2]`` for channels_last images
    ``(H, W, C)``, ``[2, 3]`` for channels_first ``(C, H, W)``, ``[1]`` or ``[2]``
    for sequences; sharing every axis is ``shared=True``. ``alpha`` then has
    shape ``[C]``.
    """

    #: Keras keeps or uses a step mask here; ferronn cannot (building with a mask is a ConfigError).
    keras_keeps_mask = True

    keeps_shape = True  # one slope per value (Keras' default shared_axes=None), or one shared

    param_names = ("alpha",)

    def __init__(self, shared: bool = False, init: float = 0.25, shared_axes: Any = None) -> None:
        self.shared = _validate.boolean(shared, "PReLU shared")
        # Stored as `init`: the attribute `alpha` is the learned tensor (see Layer.__setattr__).
        self.init = finite_float(init, "PReLU init")
        if shared_axes is not None:
            axes = [shared_axes] if isinstance(shared_axes, (int, np.integer)) else shared_axes
            if isinstance(axes, (str, bytes)) or not hasattr(axes, "__iter__"):
                raise ConfigError(f"PReLU shared_axes must be a list of sample axes (>= 1), got {shared_axes!r}")
            axes = list(axes)
            if not axes or any(isinstance(a, bool) or not isinstance(a, (int, np.integer)) or a < 1 for a in axes):
                raise ConfigError(f"PReLU shared_axes must be a non-empty list of sample axes (>= 1; the batch "
                                  f"is axis 0), got {shared_axes!r}")
            shared_axes = tuple(sorted({int(a) for a in axes}))
        self.shared_axes: Optional[tuple[int, ...]] = shared_axes
        self._spec_channels: Optional[tuple[int, str]] = None  # (channels, data_format) read from a spec

    def _mode(self, shape: tuple[int, ...]) -> Optional[str]:
        """None (one slope per value, or ``shared``), "all" (every axis shared), or
        the data format whose channel axis keeps its own slopes; checked."""
        if self.shared_axes is None:
            if self._spec_channels is not None and len(shape) > 1:
                return self._spec_channels[1]
            return None
        rank = len(shape)
        axes, every = set(self.shared_axes), set(range(1, rank + 1))
        if axes == every:
            return "all"
        if rank > 1 and axes == every - {rank}:
            return "channels_last"
        if rank > 1 and axes == every - {1}:
            return "channels_first"
        raise ConfigError(f"PReLU shared_axes={list(self.shared_axes)} on samples of shape {shape}: supported are "
                          f"every axis but the channels ({sorted(every - {rank})} or {sorted(every - {1})}) or "
                          f"every axis ({sorted(every)})")

    def output_shape(self, input_shape: tuple[int, ...]) -> tuple[int, ...]:
        shape = tuple(int(d) for d in input_shape)
        self._mode(shape)
        return shape

    def spec(self) -> dict[str, Any]:
        shape = self._input_shape or ()
        mode = self._mode(shape) if shape else None
        out: dict[str, Any] = {"type": "prelu", "shared": self.shared or mode == "all", "init": self.init}
        if mode in ("channels_last", "channels_first"):
            out["channels"] = shape[-1] if mode == "channels_last" else shape[0]
            if mode == "channels_first":
                out["data_format"] = mode
        return out

    @classmethod
    def from_spec(cls, spec: dict[str, Any]) -> "PReLU":
        layer = cls(spec.get("shared", False), spec.get("init", 0.25))
        channels = spec.get("channels")
        if channels is not None:
            layer._spec_channels = (channels, str(spec.get("data_format", "channels_last")))
        return layer

    def __repr__(self) -> str:
        args = ([] if not self.shared else ["shared=True"]) + ([] if self.init == 0.25 else [f"init={self.init!r}"])
        args += [] if self.shared_axes is None else [f"shared_axes={list(self.shared_axes)!r}"]
        return f"PReLU({', '.join(args)})"

    def numpy_forward(self, h: np.ndarray, p: Any, ref: Any, where: str) -> NumpyStep:
        alpha = p["alpha"]
        mode = self._mode(self._input_shape) if self._input_shape else None
        width = int(np.prod(h.shape[1:]))
        if mode == "channels_last":
            alpha = np.tile(alpha, width // len(alpha)).reshape(h.shape[1:])
        elif mode == "channels_first":
            alpha = np.repeat(alpha, width // len(alpha)).reshape(h.shape[1:])
        post = np.where(h > 0, h, alpha * h)
        return NumpyStep(post, "prelu", h, post, kinked=True)

    def onnx_nodes(self, g: Any, x: str, where: str) -> str:
        shape = self._input_shape
        mode = self._mode(shape) if shape else None
        if mode not in ("channels_last", "channels_first"):  # one slope per value, or one for all
            return g.node("PRelu", [x, g.weight(f"{where}.alpha")], where)
        if g.dry:
            return x
        # Per channel: ONNX's [N, C, ...] with the slopes as [C, 1, ...] (broadcast over the positions).
        rank = len(shape) - 1  # type: ignore[arg-type]
        y = g.to_channels_first(x, shape, rank, mode, where)
        alpha = g.tensors[f"{where}.alpha"].astype(np.float32).reshape((-1,) + (1,) * rank)
        y = g.node("PRelu", [y, g.init(f"{where}.alpha", alpha)], where)
        return g.from_channels_first(y, shape, rank, mode, where)

    def torch_layout(self, layout: Any, d: int, f: str, t: str) -> TorchPart:
        shape = self._input_shape or (d,)
        mode = self._mode(shape) if len(shape) > 1 else None
        entries = [TorchEntry(f"{t}.weight", f"{f}.alpha")]
        if self.shared or mode == "all":
            return TorchPart([f"nn.PReLU(1, init={self.init!r})"], entries)
        if mode == "channels_first":  # nn.PReLU's slopes act on axis 1: the channels here
            return TorchPart([f"nn.PReLU({shape[0]}, init={self.init!r})"], entries)
        if mode == "channels_last":
            return TorchPart([f"LayoutPReLU({shape[-1]}, init={self.init!r}, channels_last=True)"], entries,
                             (_tm.LAYOUT,))
        if len(shape) > 1:  # one slope per value of an N-D sample
            return TorchPart([f"FlatPReLU({d}, init={self.init!r})"], entries, (_tm.FLAT_PRELU,))
        return TorchPart([f"nn.PReLU({d}, init={self.init!r})"], entries)
