"""Where the step mask of padded sequences goes, decided when a model is built.

A mask producer (``Masking``, ``Embedding(mask_zero=True)``) marks padded steps; the
layers after it pass the mask on (``passes_mask``), use it (``consumes_mask``: the
recurrent kinds, Bidirectional, GlobalAvgPool1D) or end it. Keras 3 warns when a mask
reaches a layer that does not support masking ("will destroy the mask information")
and goes on without it; ferronn warns the same way with ``MaskWarning``. Where Keras
would keep or use the mask but ferronn cannot (``keras_keeps_mask``: BatchNorm, whose
statistics Keras takes over the real steps only, and PReLU), the model would silently
differ from Keras, so building it is a ``ConfigError``. (LayerNorm and Softmax take
flat rows only, so no mask reaches them.)
"""

from __future__ import annotations

from typing import Any, Optional

import numpy as np

from ._warnings import warn_user
from .errors import ConfigError, MaskWarning

__all__ = ["check_mask_flow", "output_mask"]


def check_mask_flow(layers: list[Any]) -> None:
    """Raises ``ConfigError`` or warns ``MaskWarning`` for each layer that a step mask
    reaches and that neither passes it on nor uses it (see the module docstring)."""
    source: Optional[tuple[int, Any]] = None  # (index, layer) of the live mask's producer
    for i, layer in enumerate(layers):
        if source is not None and not layer.produces_mask():
            j, producer = source
            name, made = type(layer).__name__, f"layer {j} ({type(producer).__name__})"
            if layer.consumes_mask():
                layer.check_mask_use(f"layers.{i}", made)
            elif not layer.passes_mask():
                if getattr(layer, "keras_keeps_mask", False):
                    raise ConfigError(f"layers.{i} ({name}) is reached by the step mask of padded sequences made "
                                      f"by {made}: Keras keeps or uses the mask there, ferronn cannot, so the "
                                      f"padded steps would be counted silently; remove the mask or move {name}")
                warn_user(f"layers.{i} ({name}) does not support masking: the step mask made by {made} ends "
                          f"there and padded steps reach its output (Keras 3 warns the same: the layer destroys "
                          f"the mask); GlobalAvgPool1D or a recurrent layer would use the mask", MaskWarning)
        if layer.produces_mask():
            source = (i, layer)
        elif source is not None and not layer.passes_mask():
            source = None


def output_mask(model: Any, x: np.ndarray) -> Optional[np.ndarray]:
    """The step mask ``[N, T]`` that reaches the output of ``model`` for its input rows
    ``x`` (per-step outputs of padded sequences), or None: the steps the core's loss
    averages over, for the compiled metrics to average over the same ones. The producer's
    input is ``x`` when it comes first, else the NumPy forward of the layers before it."""
    source: Optional[int] = None
    for i, layer in enumerate(model.layers):
        if layer.produces_mask():
            source = i
        elif source is not None and not layer.passes_mask():
            source = None
    if source is None:
        return None
    h = x
    if source > 0:
        from .diagnostics import _Reference, _tensors  # the reference forward, only for this rare case
        h = _Reference(_tensors(model, np.float32), np.float32, False).run(model.layers[:source], x)
    return model.layers[source].step_mask_of(h)
