"""Normalization layers: BatchNorm, LayerNorm and RMSNorm.

Each rescales its inputs to a standard size and then applies a learned
per-feature scale ``gamma`` (and, except RMSNorm, shift ``beta``), which keeps
the values flowing through a deep network in a range where training is stable.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .. import _torch_modules as _tm
from ..errors import ConfigError, ExportError
from .._validate import finite_float
from .base import Layer, NumpyStep, TorchEntry, TorchPart, register

__all__ = ["BatchNorm", "LayerNorm", "RMSNorm"]


def _eps(value: Any, owner: str) -> float:
    return finite_float(value, f"{owner} eps", low=0.0, low_open=True)


def _args(pairs: list[tuple[str, float, float]]) -> str:
    """``name=value`` for each value that differs from its default."""
    return ", ".join(f"{name}={value!r}" for name, value, default in pairs if value != default)


@register("batch_norm")
class BatchNorm(Layer):
    """Batch normalization (Ioffe & Szegedy 2015).

    Each feature is standardised over the batch, ``x̂ = (x − mean) / sqrt(var + eps)``,
    then ``y = gamma·x̂ + beta``. In training the batch's own mean and variance are
    used, and running averages are kept for inference:
    ``running = (1 − momentum)·running + momentum·batch`` (PyTorch's convention;
    Keras' momentum is 1 minus this one). Tensors: ``gamma``, ``beta`` (learned),
    ``running_mean``, ``running_var`` (buffers, not trained).

    On N-D inputs the statistics are per value of the last axis, over the batch and
    every other axis (Keras' default ``axis=-1``): per channel for channels_last
    images, as PyTorch's ``BatchNorm2d`` (and per feature of sequences ``(steps,
    features)``). ``axis=1`` (Keras' axis counts the batch as 0) normalises per
    value of the first axis instead: per channel of channels_first images
    ``(C, H, W)``, PyTorch's ``BatchNorm2d`` on NCHW. The running variance is
    unbiased over those N·positions values.
    """

    #: Keras keeps or uses a step mask here; ferronn cannot (building with a mask is a ConfigError).
    keras_keeps_mask = True

    param_names = ("gamma", "beta", "running_mean", "running_var")
    keeps_shape = True

    def __init__(self, momentum: float = 0.1, eps: float = 1e-5, axis: int = -1) -> None:
        self.momentum = finite_float(momentum, "BatchNorm momentum", low=0.0, high=1.0)
        self.eps = _eps(eps, "BatchNorm")
        if isinstance(axis, bool) or not isinstance(axis, (int, np.integer)) or (axis != -1 and axis < 1):
            raise ConfigError(f"BatchNorm axis must be -1 (the last axis) or a sample axis >= 1 (Keras counts "
                              f"the batch as axis 0), got {axis!r}")
        self.axis = int(axis)

    def _nd(self) -> bool:
        return self._input_shape is not None and len(self._input_shape) > 1

    def _first(self) -> bool:
        """Whether the normalised axis is a sample's first of several (channels_first)."""
        return self._nd() and self.axis == 1

    def output_shape(self, input_shape: tuple[int, ...]) -> tuple[int, ...]:
        shape = tuple(int(d) for d in input_shape)
        if self.axis not in (-1, 1, len(shape)):
            raise ConfigError(f"BatchNorm axis={self.axis} on samples of shape {shape}: only the channel axis is "
                              f"supported, axis=-1 (or {len(shape)}, the last) or axis=1 (the first)")
        return shape

    def spec(self) -> dict[str, Any]:
        out: dict[str, Any] = {"type": "batch_norm", "momentum": self.momentum, "eps": self.eps}
        if self._nd():
            shape = self._input_shape
            out["in_features"] = shape[0] if self._first() else shape[-1]  # type: ignore[index]
            if self._first():
                out["data_format"] = "channels_first"
        return out

    @classmethod
    def from_spec(cls, spec: dict[str, Any]) -> "BatchNorm":
        return cls(spec.get("momentum", 0.1), spec.get("eps", 1e-5),
                   axis=1 if spec.get("data_format") == "channels_first" else -1)

    def __repr__(self) -> str:
        return f"BatchNorm({_args([('momentum', self.momentum, 0.1), ('eps', self.eps, 1e-5), ('axis', self.axis, -1)])})"

    def numpy_forward(self, h: np.ndarray, p: Any, ref: Any, where: str) -> NumpyStep:
        c = len(p["gamma"])
        # One row per position of N-D inputs; channels_first samples [C, P] become [P, C] first.
        rows = h.reshape(len(h), c, -1).transpose(0, 2, 1).reshape(-1, c) if self._first() else h.reshape(-1, c)
        if ref.training:
            mean, var = rows.mean(axis=0), rows.var(axis=0)  # the batch's (biased) statistics
        else:
            mean, var = p["running_mean"], p["running_var"]
        y = p["gamma"] * (rows - mean) / np.sqrt(var + self.eps) + p["beta"]
        if self._first():
            y = y.reshape(len(h), -1, c).transpose(0, 2, 1)
        return NumpyStep(y.reshape(h.shape))

    def _nd_torch_module(self, where: str) -> str:
        """The module for N-D inputs: BatchNorm1d/2d with the last axis moved to axis 1 and back."""
        rank = len(self._input_shape)  # type: ignore[arg-type]
        if rank > 3:
            raise ExportError(f"layer {where} (BatchNorm over the last axis of inputs of shape {self._input_shape}) "
                              "has no PyTorch-layout form (PyTorch's BatchNorm takes at most 2 spatial axes here)")
        c = self._input_shape[-1]  # type: ignore[index]
        return f"LayoutBatchNorm{rank - 1}d({c}, eps={self.eps!r}, momentum={self.momentum!r}, channels_last=True)"

    def _params(self, g: Any, where: str) -> list[str]:
        return [g.weight(f"{where}.{n}") for n in ("gamma", "beta", "running_mean", "running_var")]

    def onnx_nodes(self, g: Any, x: str, where: str) -> str:
        shape = self._input_shape
        # ONNX's momentum weighs the running value, PyTorch's (and ours) the batch's.
        attrs = {"epsilon": float(self.eps), "momentum": 1.0 - self.momentum}
        if self._first():  # channels_first samples [C, ...] are ONNX's [N, C, ...] as they are
            rank = len(shape) - 1  # type: ignore[arg-type]
            y = g.to_channels_first(x, shape, rank, "channels_first", where)
            y = g.node("BatchNormalization", [y] + self._params(g, where), where, **attrs)
            return g.from_channels_first(y, shape, rank, "channels_first", where)
        nd = self._nd()
        if nd:  # statistics per value of the last axis: rows [N·positions, C] are ONNX's [N, C]
            x = g.reshape(x, (shape[-1],), where)  # type: ignore[index]
        y = g.node("BatchNormalization", [x] + self._params(g, where), where, **attrs)
        return g.reshape(y, (int(np.prod(shape)),), where) if nd else y  # type: ignore[arg-type]

    def torch_layout(self, layout: Any, d: int, f: str, t: str) -> TorchPart:
        entries = [TorchEntry(f"{t}.weight", f"{f}.gamma"), TorchEntry(f"{t}.bias", f"{f}.beta"),
                   TorchEntry(f"{t}.running_mean", f"{f}.running_mean"),
                   TorchEntry(f"{t}.running_var", f"{f}.running_var"), TorchEntry(f"{t}.num_batches_tracked", None)]
        if self._first():  # [N, C, ...] is what nn.BatchNorm1d / 2d take
            rank = len(self._input_shape)  # type: ignore[arg-type]
            if rank > 3:
                raise ExportError(f"layer {f} (BatchNorm(axis=1) on inputs of shape {self._input_shape}) has no "
                                  "PyTorch-layout form (PyTorch's BatchNorm takes at most 2 spatial axes here)")
            c = self._input_shape[0]  # type: ignore[index]
            return TorchPart([f"nn.BatchNorm{rank - 1}d({c}, eps={self.eps!r}, momentum={self.momentum!r})"],
                             entries)
        if self._nd():
            return TorchPart([self._nd_torch_module(f)], entries, (_tm.LAYOUT,))
        return TorchPart([f"nn.BatchNorm1d({d}, eps={self.eps!r}, momentum={self.momentum!r})"], entries)


@register("layer_norm")
class LayerNorm(Layer):
    """Layer normalization (Ba et al. 2016).

    Each sample is standardised over its own features,
    ``x̂ = (x − mean) / sqrt(var + eps)``, then ``y = gamma·x̂ + beta``. Unlike
    BatchNorm it does not depend on the other samples in the batch, so training
    and inference compute the same thing. Tensors: ``gamma``, ``beta``.
    """

    param_names = ("gamma", "beta")

    def __init__(self, eps: float = 1e-5) -> None:
        self.eps = _eps(eps, "LayerNorm")

    def spec(self) -> dict[str, Any]:
        return {"type": "layer_norm", "eps": self.eps}

    @classmethod
    def from_spec(cls, spec: dict[str, Any]) -> "LayerNorm":
        return cls(spec.get("eps", 1e-5))

    def __repr__(self) -> str:
        return f"LayerNorm({_args([('eps', self.eps, 1e-5)])})"

    def numpy_forward(self, h: np.ndarray, p: Any, ref: Any, where: str) -> NumpyStep:
        mean = h.mean(axis=1, keepdims=True)
        var = ((h - mean) ** 2).mean(axis=1, keepdims=True)
        return NumpyStep(p["gamma"] * (h - mean) / np.sqrt(var + self.eps) + p["beta"])

    def onnx_nodes(self, g: Any, x: str, where: str) -> str:
        return g.node("LayerNormalization", [x, g.weight(f"{where}.gamma"), g.weight(f"{where}.beta")], where,
                      axis=-1, epsilon=float(self.eps))

    def torch_layout(self, layout: Any, d: int, f: str, t: str) -> TorchPart:
        return TorchPart([f"nn.LayerNorm({d}, eps={self.eps!r})"],
                         [TorchEntry(f"{t}.weight", f"{f}.gamma"), TorchEntry(f"{t}.bias", f"{f}.beta")])


@register("rms_norm")
class RMSNorm(Layer):
    """Root-mean-square normalization (Zhang & Sennrich 2019).

    Each sample is divided by the root mean square of its features,
    ``y = gamma · x / sqrt(mean(x²) + eps)``: LayerNorm without subtracting the
    mean and without a shift, cheaper and as good in practice (used by LLaMA).
    Tensor: ``gamma``.
    """

    param_names = ("gamma",)

    def __init__(self, eps: float = 1e-6) -> None:
        self.eps = _eps(eps, "RMSNorm")

    def spec(self) -> dict[str, Any]:
        return {"type": "rms_norm", "eps": self.eps}

    @classmethod
    def from_spec(cls, spec: dict[str, Any]) -> "RMSNorm":
        return cls(spec.get("eps", 1e-6))

    def __repr__(self) -> str:
        return f"RMSNorm({_args([('eps', self.eps, 1e-6)])})"

    def numpy_forward(self, h: np.ndarray, p: Any, ref: Any, where: str) -> NumpyStep:
        return NumpyStep(p["gamma"] * h / np.sqrt((h * h).mean(axis=1, keepdims=True) + self.eps))

    def onnx_nodes(self, g: Any, x: str, where: str) -> str:
        ms = g.reduce_mean_last(g.node("Mul", [x, x], where), where)
        rms = g.node("Sqrt", [g.node("Add", [ms, g.scalar(self.eps)], where)], where)
        return g.node("Mul", [g.node("Div", [x, rms], where), g.weight(f"{where}.gamma")], where)

    def torch_layout(self, layout: Any, d: int, f: str, t: str) -> TorchPart:
        return TorchPart([f"nn.RMSNorm({d}, eps={self.eps!r})"], [TorchEntry(f"{t}.weight", f"{f}.gamma")])
