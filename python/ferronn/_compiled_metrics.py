"""The metrics a model is compiled with: their names resolved and checked against
the loss (``Sequential.compile`` and model files), and their values from predictions
(the epoch logs of ``Sequential.fit``)."""

from __future__ import annotations

from typing import Any, Callable, Optional, Sequence, Union

import numpy as np

from . import metrics as _metrics, names as _names
from .errors import ConfigError

MetricSpec = Union[str, Callable[[np.ndarray, np.ndarray], float]]


def _metric_name(m: Any) -> str:
    """The canonical name of a metric name ("acc" -> "accuracy", "f1_score" -> "f1")."""
    key = str(m).lower()
    if key in ("accuracy", "acc"):
        return "accuracy"
    return _metrics.get(key)[0]


def _resolve_metrics(metrics: Sequence[MetricSpec], loss: str) -> list[MetricSpec]:
    """Canonical metric names (callables kept), checked to fit the loss's task."""
    task = _names.loss_task(loss)
    out: list[MetricSpec] = []
    for m in metrics:
        if callable(m):
            out.append(m)
            continue
        name = _metric_name(m)
        if name == "accuracy":
            if task == "values":
                raise ConfigError(f"accuracy is not defined for the {loss} loss; drop metrics=['accuracy'] "
                                  "(regression metrics: mae, mse, r2)")
        else:
            kind = _metrics.get(name)[2]
            if kind == "values" and task != "values":
                raise ConfigError(f"{name} is a regression metric, but the loss is {loss}; use it with loss='mse'")
            if kind != "values" and task == "values":
                raise ConfigError(f"{name} needs a classification loss, but the loss is {loss}")
            if kind == "scores" and task == "binary":
                raise ConfigError(f"{name} needs several classes (loss cross_entropy or nll), not {loss}")
        if name not in out:
            out.append(name)
    return out


def _steps(y: np.ndarray, outputs: np.ndarray, task: str,
           mask: Optional[np.ndarray]) -> Optional[tuple[np.ndarray, np.ndarray]]:
    """Per-step targets and outputs (flat rows of ``[N, T, ...]``) as one row per real
    step: per-step labels ``[N, T]`` with their scores, or with a step mask ``[N, T]``
    reaching the output, its kept steps' targets and outputs. None when neither applies."""
    if task == "labels" and y.ndim == 2:
        steps = y.shape[1]
    elif mask is not None:
        steps = mask.shape[1]
    else:
        return None
    keep = np.ones((len(y), steps), dtype=bool) if mask is None else np.asarray(mask, dtype=bool)
    n = len(outputs)
    out = outputs.reshape(n, steps, -1)[keep]
    return (y[keep] if task == "labels" else y.reshape(n, steps, -1)[keep]), out


def _metric_value(metric: MetricSpec, y: np.ndarray, outputs: np.ndarray, loss: Any,
                  target_1d: bool, mask: Optional[np.ndarray] = None) -> tuple[str, float]:
    """The name and value of ``metric`` on predictions ``outputs`` of targets ``y``, for a
    model compiled with ``loss`` (``target_1d``: it was fitted on 1-d targets). Per-step
    outputs count each real step once, as the loss does: ``mask`` is the step mask reaching
    the output (``_mask_flow.output_mask``), None when every step is real."""
    if callable(metric):
        key, fn, kind = getattr(metric, "__name__", "metric"), metric, "labels"
    else:
        key, fn, kind = _metrics.get(metric)
    task = _names.loss_task(loss)
    per_step = _steps(y, outputs, task, mask)
    if per_step is not None:
        y, outputs = per_step
        target_1d = False
    if task == "labels":
        truth, pred = y, (outputs if kind == "scores" else outputs.argmax(axis=1))
    elif task == "binary":
        truth, pred = (y >= 0.5).astype(np.int64).ravel(), (outputs > 0).astype(np.int64).ravel()
    else:
        one = target_1d and outputs.shape[1] == 1
        truth, pred = (y.ravel(), outputs.ravel()) if one else (y, outputs)
    return key, float(fn(truth, pred))
