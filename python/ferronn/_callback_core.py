"""The callback interface and the machinery every ``fit`` runs.

``Callback`` (its hooks are described in the docstring of ``ferronn.callbacks``),
``ProgressBar``, ``TerminateOnNaN`` and ``CallbackList``, the list one ``fit`` call
runs. ``ferronn.callbacks`` exports them with ``History`` and the monitoring
callbacks; import them from there.
"""

from __future__ import annotations

import math
import time
from typing import TYPE_CHECKING, Any, Optional

from ._warnings import warn_user
from .errors import ConfigError

if TYPE_CHECKING:
    from .callbacks import History
    from .model import Sequential

Logs = dict[str, Any]


class Callback:
    """Base class of callbacks (see the module docstring for when each hook runs)."""

    #: Call ``on_batch_end`` at least every this many batches (None: no requirement).
    batch_every: Optional[int] = None
    #: Call ``on_batch_end`` about this often, in seconds.
    batch_interval: float = 0.2

    model: Any = None
    params: dict[str, Any] = {}

    def set_model(self, model: "Sequential") -> None:
        """Called first by ``fit``: the model being trained becomes ``self.model``."""
        self.model = model

    def set_params(self, params: dict[str, Any]) -> None:
        """Called by ``fit`` after ``set_model``: the fit settings become ``self.params``."""
        self.params = params

    def on_train_begin(self, logs: Optional[Logs] = None) -> None:
        """Runs once when a ``fit`` call starts training."""
        pass

    def on_train_end(self, logs: Optional[Logs] = None) -> None:
        """Runs once when a ``fit`` call ends, also after an early stop; ``logs`` are the last epoch's."""
        pass

    def on_epoch_begin(self, epoch: int, logs: Optional[Logs] = None) -> None:
        """Runs before epoch ``epoch`` (0-based)."""
        pass

    def on_epoch_end(self, epoch: int, logs: Optional[Logs] = None) -> None:
        """Runs after each completed epoch with its logs (loss, metrics, "val_*", "lr")."""
        pass

    def on_batch_end(self, batch: int, logs: Optional[Logs] = None) -> None:
        """Runs after each chunk of batches (see the module docstring for how often)."""
        pass




# --------------------------------------------------------------------- progress

def _fmt(value: Any) -> str:
    return f"{value:.4g}" if isinstance(value, float) else str(value)


class ProgressBar(Callback):
    """A tqdm bar over the epochs, showing the running loss and each epoch's logs.
    ``fit(verbose=1)`` adds one unless ``callbacks`` has one already."""

    #: Seconds between redraws of the running loss during an epoch.
    refresh_interval = 0.25

    def __init__(self, leave: bool = True) -> None:
        self.leave = leave
        self._bar: Any = None
        self._drawn = 0.0

    def on_train_begin(self, logs: Optional[Logs] = None) -> None:
        from tqdm.auto import tqdm

        total = self.params.get("epochs", 0) - self.params.get("initial_epoch", 0)
        self._bar = tqdm(total=max(total, 0), unit="epoch", leave=self.leave, dynamic_ncols=True)
        self._last: Logs = {}
        self._drawn = time.monotonic()

    def on_batch_end(self, batch: int, logs: Optional[Logs] = None) -> None:
        now = time.monotonic()
        if self._bar is not None and logs and "loss" in logs and now - self._drawn >= self.refresh_interval:
            post = {k: _fmt(v) for k, v in self._last.items()}
            post["loss"] = _fmt(logs["loss"])
            self._bar.set_postfix(post, refresh=False)
            self._bar.refresh()
            self._drawn = now

    def on_epoch_end(self, epoch: int, logs: Optional[Logs] = None) -> None:
        if self._bar is not None:
            self._last = {k: v for k, v in (logs or {}).items() if k != "lr"}
            self._bar.set_postfix({k: _fmt(v) for k, v in self._last.items()}, refresh=False)
            self._bar.update(1)

    def on_train_end(self, logs: Optional[Logs] = None) -> None:
        if self._bar is not None:
            self._bar.close()
            self._bar = None


class EpochLines(Callback):
    """Keras' ``verbose=2`` output: ``Epoch 1/5``, then one line per epoch,
    ``N/N - 2s - loss: 0.4321 - accuracy: 0.8765`` (steps, seconds, the epoch's logs).
    ``fit(verbose=2)`` adds one unless ``callbacks`` has one already."""

    def __init__(self, print_fn: Any = print) -> None:
        self.print_fn = print_fn
        self._start = 0.0

    def on_epoch_begin(self, epoch: int, logs: Optional[Logs] = None) -> None:
        self._start = time.monotonic()
        self.print_fn(f"Epoch {epoch + 1}/{self.params.get('epochs', epoch + 1)}")

    def on_epoch_end(self, epoch: int, logs: Optional[Logs] = None) -> None:
        from ._keras_methods import format_logs
        steps = self.params.get("steps", 0)
        seconds = round(time.monotonic() - self._start)
        self.print_fn(f"{steps}/{steps} - {seconds}s{format_logs(dict(logs or {}))}")


# --------------------------------------------------------------------- divergence

class TerminateOnNaN(Callback):
    """Stops training when the loss becomes NaN or infinite, with a warning that names
    the epoch and batch.

    Always active in ``fit`` (added when ``callbacks`` has none). The core refuses
    a step whose loss or gradients are not finite, so the weights left are those
    from before that step, all finite. ``fit`` stops on such a step in any case;
    this callback reports it (subclass it to react differently).
    """

    def __init__(self) -> None:
        self._epoch = 0
        self.stopped: Optional[tuple[int, int]] = None  # (epoch, batch) of the bad step

    def on_train_begin(self, logs: Optional[Logs] = None) -> None:
        self.stopped = None

    def on_epoch_begin(self, epoch: int, logs: Optional[Logs] = None) -> None:
        self._epoch = epoch

    def on_batch_end(self, batch: int, logs: Optional[Logs] = None) -> None:
        loss = (logs or {}).get("loss")
        if loss is not None and not math.isfinite(loss):
            self.stopped = (self._epoch, batch)
            self.model.stop_training = True
            warn_user(f"training stopped: the loss or its gradients became non-finite (NaN or inf) at epoch "
                      f"{self._epoch}, batch {batch}. That step was not applied: the weights are those from "
                      "before it. A lower learning rate (or standardised inputs) usually avoids this.")


# --------------------------------------------------------------------- the list a fit call runs

def user_callback_list(callbacks: Any) -> list[Callback]:
    """The ``callbacks=`` argument of ``fit`` as a list, every item checked
    (``ConfigError`` naming what is not a ``Callback``)."""
    if callbacks is None:
        return []
    if isinstance(callbacks, Callback):
        callbacks = [callbacks]
    if not isinstance(callbacks, (list, tuple)):
        raise ConfigError(f"callbacks must be a list of Callback objects, got {type(callbacks).__name__}")
    for cb in callbacks:
        if not isinstance(cb, Callback):
            raise ConfigError(f"callbacks must be ferronn.callbacks.Callback objects, got {cb!r}")
    return list(callbacks)


class CallbackList:
    """The callbacks of one ``fit`` call, run in order through explicit hooks.

    Made from the user's callbacks: a ``ProgressBar`` first when ``verbose`` asks
    for one and none is given, a ``TerminateOnNaN`` unless one is given, and the
    ``History`` last (so it records what the others added to the logs). Every
    callback gets the model and the fit settings (``params``) before training.
    """

    def __init__(self, callbacks: list[Callback], *, model: Any, params: dict[str, Any], verbose: int,
                 history: History) -> None:
        user = list(callbacks)
        if verbose == 1 and not any(isinstance(cb, ProgressBar) for cb in user):
            user.insert(0, ProgressBar())
        elif verbose == 2 and not any(isinstance(cb, EpochLines) for cb in user):
            user.insert(0, EpochLines())
        if not any(isinstance(cb, TerminateOnNaN) for cb in user):
            user.append(TerminateOnNaN())
        self.callbacks = user + [history]
        for cb in self.callbacks:
            cb.set_model(model)
            cb.set_params(params)

    def max_chunk(self) -> Optional[int]:
        """The most batches a core call may train: the smallest ``batch_every`` asked
        for (None: no callback asks)."""
        asked = [int(cb.batch_every) for cb in self.callbacks if cb.batch_every is not None]
        return min(asked) if asked else None

    def chunk_seconds(self) -> float:
        """How long a core call should last so that ``on_batch_end`` runs about every
        ``batch_interval`` seconds of the most demanding callback."""
        return 0.6 * min(float(cb.batch_interval) for cb in self.callbacks)

    def on_train_begin(self, logs: Logs) -> None:
        """Runs ``on_train_begin`` of every callback, in order."""
        for cb in self.callbacks:
            cb.on_train_begin(logs)

    def on_train_end(self, logs: Logs) -> None:
        """Runs ``on_train_end`` of every callback, in order."""
        for cb in self.callbacks:
            cb.on_train_end(logs)

    def on_epoch_begin(self, epoch: int, logs: Logs) -> None:
        """Runs ``on_epoch_begin`` of every callback, in order."""
        for cb in self.callbacks:
            cb.on_epoch_begin(epoch, logs)

    def on_epoch_end(self, epoch: int, logs: Logs) -> None:
        """Runs ``on_epoch_end`` of every callback, in order."""
        for cb in self.callbacks:
            cb.on_epoch_end(epoch, logs)

    def on_batch_end(self, batch: int, logs: Logs) -> None:
        """Runs ``on_batch_end`` of every callback, in order."""
        for cb in self.callbacks:
            cb.on_batch_end(batch, logs)

    def close_displays(self) -> None:
        """Closes progress bars after an error (the other callbacks' ``on_train_end`` does not run)."""
        for cb in self.callbacks:
            if isinstance(cb, ProgressBar):
                cb.on_train_end({})
