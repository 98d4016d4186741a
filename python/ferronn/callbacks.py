"""Callbacks: code that ``fit`` runs at fixed points of training, as Keras'.

>>> history = model.fit(X, y, epochs=100, validation_split=0.2, callbacks=[
...     fn.callbacks.EarlyStopping(patience=5, restore_best_weights=True),
...     fn.callbacks.ModelCheckpoint("best.fnn", save_best_only=True),
... ])

The interface (override what you need; every method does nothing by default):

``set_model(model)``
    called first; the model is then ``self.model`` (and the fit settings
    ``self.params``: epochs, initial_epoch, batch_size, samples, steps).
``on_train_begin(logs)`` / ``on_train_end(logs)``
    once per ``fit`` call. ``on_train_end`` also runs when training stops early
    (``stop_training``, a non-finite loss, Ctrl-C); its logs are the last epoch's.
``on_epoch_begin(epoch, logs)`` / ``on_epoch_end(epoch, logs)``
    ``epoch`` is the 0-based epoch index (as ``History.epoch``). The logs at the
    end hold "loss", the compiled metrics, "val_*" and "lr" (the learning rate the
    epoch ended with). ``on_epoch_end`` runs only for epochs that completed.
``on_batch_end(batch, logs)``
    *not* called after every batch: the core trains many batches per call, and
    this runs after each such chunk, so at most about every ``batch_interval``
    seconds (0.2 s unless a callback sets a smaller ``batch_interval``), or at
    least every ``batch_every`` batches when a callback sets ``batch_every``
    (``batch_every = 1`` gives a call per batch, at some cost in speed). ``batch``
    is the index (within the epoch) of the last batch trained; the logs hold the
    running means of the epoch so far: "loss" (and "accuracy"), and "batches".
    After a step refused because its loss or gradients were not finite, it runs
    once more with that batch's index and ``{"loss": nan, "diverged": True}``.

Setting ``model.stop_training = True`` in any hook stops training at the next
chunk boundary; an epoch cut short that way is not recorded in the History
(its updates are kept). ``TerminateOnNaN`` is always active in ``fit``; a
``ProgressBar`` is added when ``verbose=1``, ``EpochLines`` (one line per epoch, as Keras) when ``verbose=2``.
"""

from __future__ import annotations

import csv
import math
import os
from typing import TYPE_CHECKING, Any, Callable, Optional, Union

import numpy as np

from . import _validate
from ._callback_core import Callback, CallbackList, EpochLines, Logs, ProgressBar, TerminateOnNaN
from ._warnings import warn_user
from .errors import ConfigError

if TYPE_CHECKING:
    from .model import Sequential

__all__ = [
    "Callback",
    "CallbackList",
    "History",
    "ProgressBar",
    "EpochLines",
    "TerminateOnNaN",
    "EarlyStopping",
    "ModelCheckpoint",
    "CSVLogger",
    "LambdaCallback",
    "ReduceLROnPlateau",
]


# --------------------------------------------------------------------- helpers

_HIGHER_IS_BETTER = ("accuracy", "acc", "top_k_accuracy", "precision", "recall", "f1", "f1_score", "r2", "r2_score",
                     "auc")


def _maximize(monitor: str, mode: str, owner: str) -> bool:
    """Whether a higher value of ``monitor`` is better, for ``mode`` "min", "max" or "auto"."""
    if mode not in ("auto", "min", "max"):
        raise ConfigError(f"{owner} mode must be 'auto', 'min' or 'max', got {mode!r}")
    if mode == "auto":
        base = monitor[4:] if monitor.startswith("val_") else monitor
        return base in _HIGHER_IS_BETTER or base.endswith("accuracy")
    return mode == "max"


def _improves(value: float, reference: Optional[float], maximize: bool, min_delta: float) -> bool:
    """Whether ``value`` beats ``reference`` (None: nothing to beat) by more than ``min_delta``."""
    if reference is None:
        return True
    return value - min_delta > reference if maximize else value + min_delta < reference


def _monitored(owner: Callback, monitor: str, logs: Optional[Logs]) -> Optional[float]:
    """The monitored value, or None (with a one-time warning) when the logs lack it."""
    value = (logs or {}).get(monitor)
    if value is None:
        if not getattr(owner, "_warned_missing", False):
            owner._warned_missing = True  # type: ignore[attr-defined]
            warn_user(f"{type(owner).__name__} monitors {monitor!r}, which is not in the logs (available: "
                      f"{', '.join(sorted(logs or {}))}); pass validation data, or compile the metric")
        return None
    return float(value)


def snapshot(model: "Sequential") -> list[tuple[str, np.ndarray]]:
    """Copies of every tensor of ``model`` (parameters and buffers such as BatchNorm's running statistics)."""
    return [(name, np.array(a, copy=True)) for name, a, _ in model._require_built("snapshot").tensors()]


def restore(model: "Sequential", tensors: list[tuple[str, np.ndarray]]) -> None:
    """Writes tensors taken by ``snapshot`` back (the optimizer state is left as it is, as in Keras)."""
    model._assign_tensors(tensors)


# --------------------------------------------------------------------- History

class History(Callback):
    """Per-epoch logs of a ``fit`` call, as Keras' ``History``.

    ``history`` maps each name ("loss", "accuracy", "val_loss", "lr", ...) to a
    list with one value per completed epoch; ``epoch`` lists the epoch indices.
    ``fit`` returns it (it runs after the other callbacks, so values they add to
    the logs are recorded too).
    """

    def __init__(self, params: Optional[dict[str, Any]] = None) -> None:
        self.history: dict[str, list[float]] = {}
        self.epoch: list[int] = []
        self.params = dict(params or {})

    def record(self, epoch: int, logs: Logs) -> None:
        """Appends one epoch's logs (a name first seen here starts its own list)."""
        # Build the new lists first, then swap them in: a Ctrl-C between two
        # statements cannot leave the lists of different lengths.
        new = {k: v + [logs[k]] if k in logs else v for k, v in self.history.items()}
        for k, value in logs.items():
            if k not in new:
                new[k] = [value]
        self.history, self.epoch = new, self.epoch + [epoch]

    def on_epoch_end(self, epoch: int, logs: Optional[Logs] = None) -> None:
        self.record(epoch, dict(logs or {}))

    def __repr__(self) -> str:
        return f"History(epochs={len(self.epoch)}, keys={list(self.history)})"


# --------------------------------------------------------------------- early stopping

class EarlyStopping(Callback):
    """Stops training when ``monitor`` has stopped improving, with Keras' semantics.

    An epoch improves on the best so far when it is better by more than
    ``min_delta``. Training stops once ``patience`` epochs in a row have not
    improved (never on the first epoch seen). ``mode`` "auto" maximises accuracy,
    precision, recall, f1 and r2 and minimises anything else (losses, errors).
    ``baseline``: until an epoch beats it, epochs count as not improving.
    ``start_from_epoch``: epochs before it are ignored (a warm-up).
    ``restore_best_weights``: at the end of training (as Keras 3: whether stopped
    early or not) the weights *and buffers* (BatchNorm running statistics) are
    set back to those at the end of the best epoch; the optimizer state is not.
    ``stopped_epoch`` and ``best_epoch`` tell what happened.
    """

    def __init__(self, monitor: str = "val_loss", patience: int = 0, min_delta: float = 0.0, mode: str = "auto",
                 restore_best_weights: bool = False, start_from_epoch: int = 0, baseline: Optional[float] = None,
                 verbose: int = 0) -> None:
        self.monitor = str(monitor)
        self.patience = _validate.non_negative_int(patience, "EarlyStopping patience")
        self.min_delta = abs(_validate.finite_float(min_delta, "EarlyStopping min_delta"))
        self.mode = mode
        self.maximize = _maximize(self.monitor, mode, "EarlyStopping")
        self.restore_best_weights = bool(restore_best_weights)
        self.start_from_epoch = _validate.non_negative_int(start_from_epoch, "EarlyStopping start_from_epoch")
        self.baseline = None if baseline is None else _validate.finite_float(baseline, "EarlyStopping baseline")
        self.verbose = verbose
        self._reset()

    def _reset(self) -> None:
        self.wait = 0
        self.stopped_epoch = 0
        self.best: Optional[float] = None
        self.best_epoch: Optional[int] = None
        self.best_weights: Optional[list[tuple[str, np.ndarray]]] = None

    def _improves(self, value: float, reference: Optional[float]) -> bool:
        return _improves(value, reference, self.maximize, self.min_delta)

    def on_train_begin(self, logs: Optional[Logs] = None) -> None:
        self._reset()

    def on_epoch_end(self, epoch: int, logs: Optional[Logs] = None) -> None:
        current = _monitored(self, self.monitor, logs)
        if current is None or epoch < self.start_from_epoch:
            return
        if self.restore_best_weights and self.best_weights is None:
            self.best_weights, self.best_epoch = snapshot(self.model), epoch
        self.wait += 1
        if self._improves(current, self.best):
            self.best, self.best_epoch = current, epoch
            if self.restore_best_weights:
                self.best_weights = snapshot(self.model)
            if self.baseline is None or self._improves(current, self.baseline):
                self.wait = 0
            return
        if self.wait >= self.patience and epoch > 0:
            self.stopped_epoch = epoch
            self.model.stop_training = True

    def on_train_end(self, logs: Optional[Logs] = None) -> None:
        if self.stopped_epoch > 0 and self.verbose:
            print(f"epoch {self.stopped_epoch}: early stopping")
        if self.restore_best_weights and self.best_weights is not None:
            if self.verbose:
                print(f"restoring the weights from the end of the best epoch, {self.best_epoch}")
            restore(self.model, self.best_weights)


# --------------------------------------------------------------------- checkpoints

class ModelCheckpoint(Callback):
    """Saves the model (``model.save``: atomic, with the optimizer state) after each epoch.

    ``path`` may hold ``str.format`` fields: ``{epoch}`` (the epoch *number*, from 1,
    as Keras: epoch index + 1) and any log name (``"m-{epoch:03d}-{val_loss:.3f}.fnn"``).
    With ``save_best_only`` the model is saved only when ``monitor`` improves on the
    best value so far (``mode`` as in ``EarlyStopping``); ``best`` holds that value.
    """

    def __init__(self, path: Union[str, os.PathLike], monitor: str = "val_loss", save_best_only: bool = False,
                 mode: str = "auto", verbose: int = 0) -> None:
        self.path = os.fspath(path)
        self.monitor = str(monitor)
        self.save_best_only = bool(save_best_only)
        self.maximize = _maximize(self.monitor, mode, "ModelCheckpoint")
        self.best: Optional[float] = None
        self.verbose = verbose
        self.last_saved: Optional[str] = None

    def _filename(self, epoch: int, logs: Logs) -> str:
        try:
            return self.path.format(epoch=epoch + 1, **logs)
        except (KeyError, IndexError, ValueError) as e:
            raise ConfigError(f"ModelCheckpoint path {self.path!r} cannot be formatted with epoch and the logs "
                              f"({', '.join(sorted(logs))}): {e!r}") from None

    def on_epoch_end(self, epoch: int, logs: Optional[Logs] = None) -> None:
        logs = dict(logs or {})
        if self.save_best_only:
            current = _monitored(self, self.monitor, logs)
            if current is None or not math.isfinite(current):
                return
            if not _improves(current, self.best, self.maximize, 0.0):
                return
            self.best = current
        path = self._filename(epoch, logs)
        self.model.save(path)
        self.last_saved = path
        if self.verbose:
            print(f"epoch {epoch}: saved the model to {path}")


# --------------------------------------------------------------------- logging

class CSVLogger(Callback):
    """Writes one CSV row per epoch: ``epoch`` then the logs in sorted order (as Keras).

    The file is rewritten at the start of training unless ``append=True`` (then rows
    are added, with a header only if the file is new or empty). Each row is written
    and flushed when its epoch ends, so the file is readable during training.
    """

    def __init__(self, path: Union[str, os.PathLike], separator: str = ",", append: bool = False) -> None:
        self.path = os.fspath(path)
        self.separator = str(separator)
        self.append = bool(append)
        self._keys: Optional[list[str]] = None
        self._header = True

    def on_train_begin(self, logs: Optional[Logs] = None) -> None:
        self._keys = None
        if self.append and os.path.exists(self.path) and os.path.getsize(self.path) > 0:
            self._header = False
        else:
            self._header = True
            with open(self.path, "w", newline=""):
                pass

    def on_epoch_end(self, epoch: int, logs: Optional[Logs] = None) -> None:
        logs = logs or {}
        if self._keys is None:
            self._keys = sorted(logs)
        row = [str(epoch)] + [_csv_value(logs.get(k, "NA")) for k in self._keys]
        with open(self.path, "a", newline="") as f:
            writer = csv.writer(f, delimiter=self.separator, lineterminator="\n")
            if self._header:
                writer.writerow(["epoch"] + self._keys)
                self._header = False
            writer.writerow(row)


def _csv_value(value: Any) -> str:
    if isinstance(value, (float, np.floating)):
        return repr(float(value))
    return str(value)


class LambdaCallback(Callback):
    """A callback from plain functions, as Keras':

    >>> LambdaCallback(on_epoch_end=lambda epoch, logs: print(epoch, logs["loss"]))

    ``on_train_begin(logs)``, ``on_train_end(logs)``, ``on_epoch_begin(epoch, logs)``,
    ``on_epoch_end(epoch, logs)``, ``on_batch_end(batch, logs)``; ``batch_every``
    as on ``Callback``.
    """

    def __init__(self, on_epoch_begin: Optional[Callable[..., Any]] = None,
                 on_epoch_end: Optional[Callable[..., Any]] = None,
                 on_batch_end: Optional[Callable[..., Any]] = None,
                 on_train_begin: Optional[Callable[..., Any]] = None,
                 on_train_end: Optional[Callable[..., Any]] = None,
                 batch_every: Optional[int] = None) -> None:
        for name, fn in (("on_epoch_begin", on_epoch_begin), ("on_epoch_end", on_epoch_end),
                         ("on_batch_end", on_batch_end), ("on_train_begin", on_train_begin),
                         ("on_train_end", on_train_end)):
            if fn is not None:
                if not callable(fn):
                    raise ConfigError(f"LambdaCallback {name} must be callable, got {fn!r}")
                setattr(self, name, fn)
        if batch_every is not None:
            self.batch_every = _validate.positive_int(batch_every, "batch_every")


# --------------------------------------------------------------------- learning rate

class ReduceLROnPlateau(Callback):
    """Multiplies the learning rate by ``factor`` when ``monitor`` has not improved
    (by more than ``min_delta``) for ``patience`` epochs, as Keras'.

    The rate never goes below ``min_lr``; after a reduction, ``cooldown`` epochs
    pass before counting resumes. It acts through the network's ``lr_scale``
    (which multiplies the optimizer's rate or the schedule's), so it composes with
    learning-rate schedules; ``min_lr`` bounds the rate at the time of the reduction.
    """

    def __init__(self, monitor: str = "val_loss", factor: float = 0.1, patience: int = 10, min_delta: float = 1e-4,
                 cooldown: int = 0, min_lr: float = 0.0, mode: str = "auto", verbose: int = 0) -> None:
        self.monitor = str(monitor)
        self.factor = _validate.finite_float(factor, "ReduceLROnPlateau factor", 0.0, 1.0, low_open=True,
                                             high_open=True, expected="in (0, 1)")
        self.patience = _validate.non_negative_int(patience, "ReduceLROnPlateau patience")
        self.min_delta = abs(_validate.finite_float(min_delta, "ReduceLROnPlateau min_delta"))
        self.cooldown = _validate.non_negative_int(cooldown, "ReduceLROnPlateau cooldown")
        self.min_lr = _validate.finite_float(min_lr, "ReduceLROnPlateau min_lr", low=0.0)
        self.maximize = _maximize(self.monitor, mode, "ReduceLROnPlateau")
        self.verbose = verbose
        self._reset()

    def _reset(self) -> None:
        self.best: Optional[float] = None
        self.wait = 0
        self.cooldown_counter = 0

    def on_train_begin(self, logs: Optional[Logs] = None) -> None:
        self._reset()

    def on_epoch_end(self, epoch: int, logs: Optional[Logs] = None) -> None:
        current = _monitored(self, self.monitor, logs)
        if current is None:
            return
        if self.cooldown_counter > 0:
            self.cooldown_counter -= 1
            self.wait = 0
        if _improves(current, self.best, self.maximize, self.min_delta):
            self.best, self.wait = current, 0
        elif self.cooldown_counter <= 0:
            self.wait += 1
            if self.wait >= self.patience:
                net = self.model._require_built("ReduceLROnPlateau")
                lr = float(net.current_lr)
                if lr > self.min_lr * (1 + 1e-6) and lr > 0:
                    new = max(lr * self.factor, self.min_lr)
                    net.lr_scale = float(net.lr_scale) * new / lr
                    if self.verbose:
                        print(f"epoch {epoch}: ReduceLROnPlateau lowered the learning rate to {new:.4g}")
                    self.cooldown_counter, self.wait = self.cooldown, 0
