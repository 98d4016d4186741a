"""The Python-side state a model file carries beside the core's tensors and spec.

The core stores the architecture, the tensors and the optimizer state; this
module writes and reads what ``Sequential`` adds: the compiled metric names,
whether the targets were 1-D, the epochs trained, ReduceLROnPlateau's factor on
the rate and the epoch per-epoch schedules see. Everything read is validated
before a model is made from it: a defect raises ``ModelFileError`` naming the
field, so nothing invalid loads only to fail later.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from typing import Any

from . import _validate
from .errors import FerronnError, ModelFileError

__all__ = ["Metadata", "read_metadata", "write_metadata"]

#: The largest epoch counts the core keeps (u64 for the epoch, i64 for the count).
_MAX_EPOCH = _validate.UINT64_MAX
_MAX_EPOCHS_TRAINED = _validate.INT64_MAX


@dataclass(frozen=True)
class Metadata:
    """A model's state beyond the core network, as stored in its file."""

    metrics: list[str] = field(default_factory=list)
    target_1d: bool = False
    epochs_trained: int = 0
    lr_scale: float = 1.0
    epoch: int = 0
    #: The layer specs as written, when they differ from the core's (a final softmax /
    #: sigmoid trained fused with the loss, see ``ferronn._keras_methods``); else None.
    layers: Any = None


def write_metadata(meta: Metadata) -> str:
    """The JSON string stored in the file's metadata."""
    info = {"metrics": list(meta.metrics), "target_1d": meta.target_1d,
            "epochs_trained": meta.epochs_trained, "lr_scale": meta.lr_scale, "epoch": meta.epoch}
    if meta.layers is not None:
        info["layers"] = meta.layers
    return json.dumps(info, allow_nan=False)


def _fail(name: str, what: str, value: Any) -> ModelFileError:
    shown = repr(value)
    return ModelFileError(f"model file metadata field {name!r} must be {what}, got "
                          f"{shown if len(shown) <= 60 else shown[:57] + '...'}")


def _int(info: dict[str, Any], name: str, high: int, default: int) -> int:
    value = info.get(name, default)
    if not _validate.is_integer(value) or not 0 <= value <= high:
        raise _fail(name, f"an integer from 0 to {high}", value)
    return int(value)


def read_metadata(extra: str, resolve_metrics: Any) -> Metadata:
    """Parses and validates the metadata JSON of a model file.

    ``resolve_metrics(names)`` returns the canonical metric names, checked against the
    model's loss (raising a ferronn error for one that is unknown or does not fit).
    Keys a ferronn version did not write are refused, as are wrong types and
    out-of-range values."""
    try:
        info = json.loads(extra)
    except (ValueError, RecursionError) as e:
        raise ModelFileError(f"model file metadata is not valid JSON: {e}") from None
    if not isinstance(info, dict):
        raise ModelFileError(f"model file metadata must be a JSON object, got {type(info).__name__}")
    unknown = sorted(set(info) - {"metrics", "target_1d", "epochs_trained", "lr_scale", "epoch", "layers"})
    if unknown:
        raise ModelFileError(f"model file metadata has unknown fields {unknown}; it was not written by this "
                             "version of ferronn")
    metrics = info.get("metrics", [])
    if not isinstance(metrics, list) or not all(isinstance(m, str) for m in metrics):
        raise _fail("metrics", "a list of metric names", metrics)
    try:
        metrics = list(resolve_metrics(metrics))
    except FerronnError as e:
        raise ModelFileError(f"model file metadata field 'metrics' is not valid: {e}") from None
    target_1d = info.get("target_1d", False)
    if not isinstance(target_1d, bool):
        raise _fail("target_1d", "true or false", target_1d)
    lr_scale = info.get("lr_scale", 1.0)
    if isinstance(lr_scale, bool) or not isinstance(lr_scale, (int, float)) or not math.isfinite(lr_scale) \
            or lr_scale < 0:
        raise _fail("lr_scale", "a finite number >= 0", lr_scale)
    layers = info.get("layers")
    if layers is not None and (not isinstance(layers, list) or not layers
                               or not all(isinstance(x, dict) for x in layers)):
        raise _fail("layers", "a list of layer specs", layers)
    return Metadata(metrics=metrics, target_1d=target_1d, layers=layers,
                    epochs_trained=_int(info, "epochs_trained", _MAX_EPOCHS_TRAINED, 0),
                    lr_scale=float(lr_scale), epoch=_int(info, "epoch", _MAX_EPOCH, 0))
