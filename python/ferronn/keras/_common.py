"""What the ``ferronn.keras`` modules share: Keras' common layer arguments, and the
error for a Keras feature ferronn has no counterpart for."""

from __future__ import annotations

import inspect
from typing import Any, NoReturn, Optional

from ..errors import NotSupportedError

__all__ = ["unsupported", "check_default", "layer_kwargs", "missing_attr"]


def unsupported(what: str, hint: str = "") -> NoReturn:
    """Raises ``NotSupportedError`` naming the Keras feature ``what``."""
    raise NotSupportedError(f"{what} has no ferronn counterpart{'; ' + hint if hint else ''}")


def check_default(owner: str, arg: str, value: Any, default: Any, hint: str = "") -> None:
    """``NotSupportedError`` when a Keras argument ferronn cannot honour is not at its default."""
    if value is not default and value != default:
        unsupported(f"{owner}({arg}={value!r})", hint)


def layer_kwargs(owner: str, base: type, name: Optional[str] = None, input_shape: Any = None,
                 input_dim: Any = None, dtype: Any = None, trainable: bool = True,
                 **rest: Any) -> tuple[Optional[str], dict[str, Any]]:
    """Keras' keyword arguments every layer takes: returns the layer name and the
    keyword arguments to pass to the ferronn class ``base`` (its input width or shape)."""
    if rest:
        unsupported(f"{owner}({', '.join(f'{k}=...' for k in rest)})")
    if dtype not in (None, "float32"):
        unsupported(f"{owner}(dtype={dtype!r})", "ferronn computes in float32")
    check_default(owner, "trainable", trainable, True, "every layer of a ferronn model is trained")
    params = inspect.signature(base).parameters
    out: dict[str, Any] = {}
    if input_shape is not None:
        if "input_shape" in params:
            out["input_shape"] = input_shape
        elif "input_dim" in params and isinstance(input_shape, (tuple, list)) and len(input_shape) == 1:
            out["input_dim"] = input_shape[0]
        else:
            unsupported(f"{owner}(input_shape={input_shape!r})", "give the input width as input_shape=(width,)")
    if input_dim is not None:
        if "input_dim" not in params:
            unsupported(f"{owner}(input_dim=...)", "only the first Dense layer takes the input width")
        out["input_dim"] = input_dim
    return name, out


def missing_attr(module: str, name: str, known: dict[str, str]) -> NoReturn:
    """The module ``__getattr__`` of a ``ferronn.keras`` namespace: a Keras name in
    ``known`` raises ``NotSupportedError`` saying why; anything else AttributeError."""
    if name in known:
        unsupported(f"keras.{module + '.' if module else ''}{name}", known[name])
    raise AttributeError(f"module 'ferronn.keras{'.' + module if module else ''}' has no attribute {name!r}")
