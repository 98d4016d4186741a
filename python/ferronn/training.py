"""The loop behind ``Sequential.fit`` (epochs, callbacks, History), and the data
preparation it needs.

The epochs themselves run through ``ferronn.epochs.EpochDriver`` (chunked core
calls, divergence, Ctrl-C), as the scikit-learn estimators' do; this loop adds
what Keras' ``fit`` adds on top: callbacks at fixed points, the History, and
stopping on request (``model.stop_training``).

Ctrl-C during ``fit`` stops training at the end of the chunk in flight (the
weights are then consistent: every update of the batches trained so far is
applied); ``fit`` warns, runs ``on_train_end`` and returns the History of the
epochs that completed. A partly trained epoch is not recorded (its updates are
kept). A second Ctrl-C interrupts at once.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any, Callable, Mapping, Optional, Protocol

import numpy as np

from . import _validate, names
from ._warnings import warn_user
from .callbacks import CallbackList, History
from .epochs import EpochDriver
from .errors import ConfigError, DTypeError, NonFiniteError, NotSupportedError, ShapeError

if TYPE_CHECKING:
    from .model import Sequential

__all__ = ["History", "fit_loop"]

Logs = dict[str, Any]


# ------------------------------------------------------------------ data preparation

def validation_fraction(value: Any) -> float:
    """``fit``'s ``validation_split``, checked: a number in [0, 1)."""
    return _validate.finite_float(value, "validation_split", 0.0, 1.0, high_open=True, expected="a number in [0, 1)")


def sample_weights(w: Any, n: int, name: str = "sample_weight") -> np.ndarray:
    """A float32 array of ``n`` finite, non-negative per-sample weights."""
    try:
        arr = np.asarray(w)
    except ValueError as e:
        raise ShapeError(f"{name} is not a rectangular array: {e}") from None
    if arr.dtype.kind not in "biuf":
        raise DTypeError(f"{name} has dtype {arr.dtype}; expected real numbers, one weight per sample")
    if arr.ndim == 2 and arr.shape[1] == 1:
        arr = arr.ravel()
    if arr.ndim != 1:
        raise ShapeError(f"{name} must be 1-D (one weight per sample), got shape {arr.shape}")
    if len(arr) != n:
        raise ShapeError(f"{name} has {len(arr)} weights but X has {n} samples; expected one weight per sample")
    arr = np.ascontiguousarray(arr, dtype=np.float32)
    if not np.isfinite(arr).all():
        raise NonFiniteError(f"{name} contains NaN or infinity; weights must be finite")
    if (arr < 0).any():
        i = int(np.argmax(arr < 0))
        raise ConfigError(f"{name} has the negative weight {arr[i]} at index {i}; weights must be >= 0")
    return arr


def class_labels(model: "Sequential", y: np.ndarray) -> Optional[np.ndarray]:
    """The class of each sample for classification losses (None where there is none:
    mse, or binary cross-entropy with several outputs or soft targets)."""
    assert model.loss is not None  # only compiled models train
    task = names.loss_task(model.loss)
    if task == "labels":
        return y if y.ndim == 1 else None  # per-step labels [N, T] give no one class per sample
    if task == "binary" and y.ndim == 2 and y.shape[1] == 1:
        col = y[:, 0]
        if np.isin(col, (0.0, 1.0)).all():
            return col.astype(np.int64)
    return None


def class_weights(model: "Sequential", class_weight: Any, y: np.ndarray, n_classes: int) -> np.ndarray:
    """Per-sample weights from a ``{class: weight}`` dict (classes not named weigh 1)."""
    if not isinstance(class_weight, Mapping):
        raise ConfigError(f"class_weight must be a dict {{class: weight}}, got {type(class_weight).__name__}")
    if model.loss is not None and names.loss_task(model.loss) == "labels" and y.ndim == 2:
        # Keras 3 (class_weight_to_sample_weights) makes one weight per sample from argmax(y, axis=-1):
        # for per-step labels that is the index of a step, and one-hot steps fail; no per-step form.
        raise NotSupportedError(f"class_weight with per-step labels (y of shape {y.shape}) is not supported: a "
                                "class weight would have to weigh each step by its class, and the loss takes one "
                                "weight per sample; pass sample_weight (one per sequence) instead")
    labels = class_labels(model, y)
    if labels is None:
        raise ConfigError("class_weight needs class labels: a cross_entropy or nll loss, or binary_cross_entropy "
                          f"with one output and 0/1 targets (this model: {model.loss}); use sample_weight instead")
    table = np.ones(n_classes, dtype=np.float64)
    for key, value in class_weight.items():
        if not _validate.is_integer(key) or not 0 <= key < n_classes:
            raise ConfigError(f"class_weight has the class {key!r}, which this model does not have; classes are "
                              f"the integers 0..{n_classes - 1}")
        table[int(key)] = _validate.finite_float(value, f"class_weight[{key}]", 0.0, expected="a finite number >= 0")
    return table[labels].astype(np.float32)


def split_indices(labels: Optional[np.ndarray], n: int, fraction: float) -> tuple[np.ndarray, np.ndarray]:
    """(train, validation) indices for ``validation_split``, both in the original order.

    Without labels: the last ``fraction`` of the samples (Keras' rule: the first
    ``floor(n·(1 - fraction))`` train). With labels (stratified): for each class,
    its last ``round(fraction·n_c)`` samples (halves round up), at least one for a
    class with two or more samples, and never all of them.
    """
    if labels is None:
        cut = int(math.floor(n * (1.0 - fraction)))
        return np.arange(cut), np.arange(cut, n)
    val = np.zeros(n, dtype=bool)
    for c in np.unique(labels):
        idx = np.flatnonzero(labels == c)
        k = int(math.floor(fraction * len(idx) + 0.5))
        if len(idx) >= 2:
            k = min(max(k, 1), len(idx) - 1)
        else:
            k = 0
        if k:
            val[idx[len(idx) - k:]] = True
    return np.flatnonzero(~val), np.flatnonzero(val)


# ------------------------------------------------------------------ the loop

class Stoppable(Protocol):
    """What the loop reads of the model: Keras' ``stop_training`` flag, which callbacks set."""

    stop_training: bool


def fit_loop(driver: EpochDriver, callbacks: CallbackList, history: History, *, model: Stoppable,
             epochs: range, batch_logs: Callable[[Any], Logs], epoch_logs: Callable[[int, Any], Logs]) -> History:
    """Trains ``epochs`` through ``driver``, running ``callbacks``; returns ``history``.

    ``batch_logs(stats)`` gives the running logs of a partly trained epoch (for
    ``on_batch_end``); ``epoch_logs(epoch, stats)`` is called once per completed
    epoch and returns its logs (the model records the epoch and computes its
    metrics there)."""
    model.stop_training = False
    logs: Logs = {}
    where = (epochs.start, 0)  # epoch and batches reached, for the Ctrl-C message
    interrupted = False

    def after_chunk(batches: int, stats: Any) -> bool:
        callbacks.on_batch_end(batches - 1, {**batch_logs(stats), "batches": batches})
        return not model.stop_training

    with driver:
        try:
            callbacks.on_train_begin({})
            for epoch in epochs:
                driver.start_epoch(epoch)
                callbacks.on_epoch_begin(epoch, {})
                result = driver.run_epoch(epoch, after_chunk)
                where = (epoch, result.batches)
                if result.diverged_at is not None:
                    callbacks.on_batch_end(result.diverged_at, {"loss": float("nan"), "batches": result.diverged_at,
                                                                "diverged": True})
                    model.stop_training = True
                interrupted = result.interrupted or driver.interrupted
                if not result.complete or interrupted:
                    break
                logs = epoch_logs(epoch, result.stats)
                callbacks.on_epoch_end(epoch, logs)
                if model.stop_training or driver.interrupted:
                    break
            interrupted = interrupted or driver.interrupted
        except KeyboardInterrupt:
            interrupted = True
        except BaseException:
            callbacks.close_displays()
            raise
    if interrupted:
        epoch, batch = where
        at = f"after epoch {epoch}" if batch == driver.steps else f"in epoch {epoch} after {batch} of {driver.steps} batches"
        warn_user(f"training interrupted (KeyboardInterrupt) {at}; returning the History of the "
                  f"{len(history.epoch)} completed epoch(s) of this fit. The updates of a partly trained epoch "
                  "are kept; the model can predict and train further.")
    callbacks.on_train_end(logs)
    return history
