"""The weight options shared by layers with a kernel and a bias (Dense, the gated
units): initializers and regularizers, and how they are written into a spec."""

from __future__ import annotations

from typing import Any, Optional, Union

from .. import regularizers as _reg

__all__ = ["InitArg", "RegArg", "WeightOptions"]

#: An initializer: a name ("he_normal") or a dict ({"name": "uniform", "low": -0.1, "high": 0.1}).
InitArg = Optional[Union[str, dict]]
#: A regularizer: fn.regularizers.l2(1e-4), a name ("l2"), or a dict ({"l2": 1e-4}).
RegArg = Union[None, str, dict, "_reg.Regularizer"]

_KEYS = ("kernel_initializer", "bias_initializer", "kernel_regularizer", "bias_regularizer")


class WeightOptions:
    """Mixin: stores the four options and writes them into (and reads them from) a spec."""

    kernel_initializer: InitArg
    bias_initializer: InitArg
    kernel_regularizer: Optional[_reg.Regularizer]
    bias_regularizer: Optional[_reg.Regularizer]

    def _set_weight_options(self, kernel_initializer: InitArg, bias_initializer: InitArg,
                            kernel_regularizer: RegArg, bias_regularizer: RegArg) -> None:
        self.kernel_initializer = kernel_initializer
        self.bias_initializer = bias_initializer
        self.kernel_regularizer = _reg.get(kernel_regularizer)
        self.bias_regularizer = _reg.get(bias_regularizer)

    def _weight_spec(self, out: dict[str, Any]) -> dict[str, Any]:
        for key in _KEYS:
            value = getattr(self, key)
            if value is not None:
                out[key] = value.spec() if isinstance(value, _reg.Regularizer) else value
        return out

    @staticmethod
    def _weight_kwargs(spec: dict[str, Any]) -> dict[str, Any]:
        return {key: spec.get(key) for key in _KEYS}
