"""The training loop behind ``Sequential.fit``, and the data preparation it needs.

The Rust core trains a run of mini-batches per call (shuffle order, forward, loss,
backward, update); this loop calls it in chunks of an epoch, sized so that each
call takes about 0.1 s, which bounds how long a callback, the progress bar or
Ctrl-C waits. Chunked calls give exactly the same result as one call per epoch:
the shuffle order depends only on (seed, epoch).

Ctrl-C during ``fit`` stops training at the end of the chunk in flight (the
weights are then consistent: every update of the batches trained so far is
applied); ``fit`` warns, runs ``on_train_end`` and returns the History of the
epochs that completed. A partly trained epoch is not recorded (its updates are
kept). A second Ctrl-C interrupts at once.
"""

from __future__ import annotations

import math
import signal
import threading
import time
import warnings
from typing import TYPE_CHECKING, Any, Mapping, Optional, Sequence

import numpy as np

from .callbacks import Callback, History, ProgressBar, TerminateOnNaN
from .errors import ConfigError, DTypeError, NonFiniteError, ShapeError

if TYPE_CHECKING:
    from .model import Sequential

__all__ = ["History", "fit_loop"]

#: Number of batches in the first call of a run (its timing sizes the next ones).
FIRST_CHUNK = 4
#: Bounds on the time one core call aims for, in seconds.
_MIN_TARGET, _MAX_TARGET = 0.005, 0.12


# ------------------------------------------------------------------ data preparation

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
    if model.loss in ("cross_entropy", "nll"):
        return y
    if model.loss == "binary_cross_entropy" and y.ndim == 2 and y.shape[1] == 1:
        col = y[:, 0]
        if np.isin(col, (0.0, 1.0)).all():
            return col.astype(np.int64)
    return None


def class_weights(model: "Sequential", class_weight: Any, y: np.ndarray, n_classes: int) -> np.ndarray:
    """Per-sample weights from a ``{class: weight}`` dict (classes not named weigh 1)."""
    if not isinstance(class_weight, Mapping):
        raise ConfigError(f"class_weight must be a dict {{class: weight}}, got {type(class_weight).__name__}")
    labels = class_labels(model, y)
    if labels is None:
        raise ConfigError("class_weight needs class labels: a cross_entropy or nll loss, or binary_cross_entropy "
                          f"with one output and 0/1 targets (this model: {model.loss}); use sample_weight instead")
    table = np.ones(n_classes, dtype=np.float64)
    for key, value in class_weight.items():
        if isinstance(key, bool) or not isinstance(key, (int, np.integer)) or not 0 <= key < n_classes:
            raise ConfigError(f"class_weight has the class {key!r}, which this model does not have; classes are "
                              f"the integers 0..{n_classes - 1}")
        try:
            v = float(value)
        except (TypeError, ValueError):
            raise ConfigError(f"class_weight[{key}] must be a number, got {value!r}") from None
        if not math.isfinite(v) or v < 0 or isinstance(value, bool):
            raise ConfigError(f"class_weight[{key}] must be a finite number >= 0, got {value!r}")
        table[int(key)] = v
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


# ------------------------------------------------------------------ Ctrl-C

class _Interrupts:
    """Turns the first SIGINT during ``fit`` into a flag checked between core calls.

    Installed only in the main thread and only over Python's default handler (a
    handler the user set is left alone; a KeyboardInterrupt it raises is still
    caught by the loop). A second SIGINT raises KeyboardInterrupt at once.
    """

    def __init__(self) -> None:
        self.fired = False
        self._previous: Any = None

    def _handler(self, signum: int, frame: Any) -> None:
        if self.fired:
            raise KeyboardInterrupt
        self.fired = True

    def __enter__(self) -> "_Interrupts":
        if (threading.current_thread() is threading.main_thread()
                and signal.getsignal(signal.SIGINT) is signal.default_int_handler):
            self._previous = signal.signal(signal.SIGINT, self._handler)
        return self

    def __exit__(self, *exc: Any) -> None:
        if self._previous is not None:
            signal.signal(signal.SIGINT, self._previous)


# ------------------------------------------------------------------ the loop

class _Callbacks:
    def __init__(self, callbacks: Sequence[Callback]) -> None:
        self.list = list(callbacks)

    def __getattr__(self, hook: str) -> Any:
        def call(*args: Any) -> None:
            for cb in self.list:
                getattr(cb, hook)(*args)
        return call


def _stats_logs(model: "Sequential", loss_sum: float, samples: int, correct: int, counted: int) -> dict[str, float]:
    logs = {"loss": loss_sum / max(samples, 1)}
    if "accuracy" in model.metrics:
        logs["accuracy"] = correct / max(counted, 1)
    return logs


def fit_loop(model: "Sequential", x: np.ndarray, y: np.ndarray, *, sample_weight: Optional[np.ndarray],
             initial_epoch: int, epochs: int, batch_size: int, shuffle: bool, seed: int,
             validation: Optional[tuple[np.ndarray, np.ndarray, Optional[np.ndarray]]],
             callbacks: Sequence[Callback], verbose: int) -> History:
    """Trains ``model`` for epochs ``initial_epoch .. epochs-1`` on prepared, checked arrays."""
    n = len(x)
    steps = -(-n // batch_size)
    history = History({"epochs": epochs, "initial_epoch": initial_epoch, "batch_size": batch_size, "samples": n,
                       "steps": steps, "verbose": verbose})
    user = list(callbacks)
    if verbose and not any(isinstance(cb, ProgressBar) for cb in user):
        user.insert(0, ProgressBar())
    if not any(isinstance(cb, TerminateOnNaN) for cb in user):
        user.append(TerminateOnNaN())
    cbs = _Callbacks(user + [history])
    for cb in cbs.list:
        cb.set_model(model)
        cb.set_params(history.params)

    caps = [int(cb.batch_every) for cb in cbs.list if cb.batch_every is not None]
    cap = min(caps) if caps else steps
    target = min(max(0.6 * min(float(cb.batch_interval) for cb in cbs.list), _MIN_TARGET), _MAX_TARGET)
    chunk = max(1, min(FIRST_CHUNK, cap))
    trusted = False

    model.stop_training = False
    logs: dict[str, Any] = {}
    where = (initial_epoch, 0)  # epoch and batch reached, for the Ctrl-C message
    interrupted = False
    with _Interrupts() as sigint:
        try:
            cbs.on_train_begin({})
            for epoch in range(initial_epoch, epochs):
                model._require_built("fit").epoch = epoch
                cbs.on_epoch_begin(epoch, {})
                loss_sum, samples, correct, counted = 0.0, 0, 0, 0
                batch, complete = 0, True
                while batch < steps:
                    take = min(chunk, steps - batch)
                    start = time.perf_counter()
                    out = model._require_built("fit").train_epoch(
                        x, y, batch_size, shuffle, seed, epoch, sample_weight=sample_weight, start_batch=batch,
                        max_batches=take, trusted=trusted)
                    elapsed = time.perf_counter() - start
                    trusted = True
                    ls, s, c, k, ran, diverged_at = out
                    loss_sum, samples, correct, counted = loss_sum + ls, samples + s, correct + c, counted + k
                    batch += ran
                    where = (epoch, batch)
                    if diverged_at is not None:
                        cbs.on_batch_end(int(diverged_at), {"loss": float("nan"), "batches": int(diverged_at),
                                                            "diverged": True})
                        model.stop_training, complete = True, False
                        break
                    cbs.on_batch_end(batch - 1, {**_stats_logs(model, loss_sum, samples, correct, counted),
                                                 "batches": batch})
                    if sigint.fired or (model.stop_training and batch < steps):
                        complete = False
                        break
                    if ran > 0 and elapsed > 0:
                        chunk = max(1, min(int(target * ran / elapsed), 4 * chunk, cap))
                if not complete or sigint.fired:
                    break
                model._epochs_trained = epoch + 1
                logs = model._epoch_logs(x, y, (loss_sum, samples, correct, counted), validation)
                # The chunks' loss sums are added here, so the last bits of the f64 mean depend on
                # where the (time-sized) chunks fell; rounded to float32 the value does not.
                logs["loss"] = float(np.float32(logs["loss"]))
                logs["lr"] = float(model._require_built("fit").current_lr)
                cbs.on_epoch_end(epoch, logs)
                if model.stop_training or sigint.fired:
                    break
            interrupted = sigint.fired
        except KeyboardInterrupt:
            interrupted = True
        except BaseException:
            for cb in cbs.list:
                if isinstance(cb, ProgressBar):
                    cb.on_train_end({})
            raise
    if interrupted:
        epoch, batch = where
        at = f"after epoch {epoch}" if batch == steps else f"in epoch {epoch} after {batch} of {steps} batches"
        warnings.warn(f"training interrupted (KeyboardInterrupt) {at}; returning the History of the "
                      f"{len(history.epoch)} completed epoch(s) of this fit. The updates of a partly trained epoch "
                      "are kept; the model can predict and train further.", RuntimeWarning, stacklevel=3)
    cbs.on_train_end(logs)
    return history
