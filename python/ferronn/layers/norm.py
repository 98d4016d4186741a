"""Normalization layers: BatchNorm, LayerNorm and RMSNorm.

Each rescales its inputs to a standard size and then applies a learned
per-feature scale ``gamma`` (and, except RMSNorm, shift ``beta``), which keeps
the values flowing through a deep network in a range where training is stable.
"""

from __future__ import annotations

from typing import Any

from .base import Layer, finite_float, register

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
    """

    param_names = ("gamma", "beta", "running_mean", "running_var")

    def __init__(self, momentum: float = 0.1, eps: float = 1e-5) -> None:
        self.momentum = finite_float(momentum, "BatchNorm momentum", low=0.0, high=1.0)
        self.eps = _eps(eps, "BatchNorm")

    def spec(self) -> dict[str, Any]:
        return {"type": "batch_norm", "momentum": self.momentum, "eps": self.eps}

    @classmethod
    def from_spec(cls, spec: dict[str, Any]) -> "BatchNorm":
        return cls(spec.get("momentum", 0.1), spec.get("eps", 1e-5))

    def __repr__(self) -> str:
        return f"BatchNorm({_args([('momentum', self.momentum, 0.1), ('eps', self.eps, 1e-5)])})"


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
