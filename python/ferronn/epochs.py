"""The one epoch driver: how training epochs reach the Rust core.

``Sequential.fit`` and the ``ferronn.sklearn`` estimators both train through an
``EpochDriver``. The core trains a run of mini-batches per call (shuffle order,
forward, loss, backward, update); the driver calls it in chunks of an epoch,
sized from the time the previous chunk took so that each call lasts about
``chunk_seconds``. That bounds how long a callback, a progress bar or Ctrl-C
waits. Chunked calls give exactly the result of one call per epoch: the shuffle
order depends only on ``(seed, epoch)``.

The driver owns:

- chunk sizing (``FIRST_CHUNK`` batches first, then sized by time, at most
  ``max_chunk`` batches);
- the *trusted* flag: the data are checked in full (finiteness included) by the
  first call only, or by none when the caller checked them (``checked``); later
  calls check shapes;
- divergence: a step whose loss or gradients are not finite is refused by the
  core, which reports the batch; the epoch ends there (``EpochResult.diverged_at``);
- Ctrl-C: while the driver is entered (``with driver:``), the first SIGINT only
  sets a flag, checked between core calls, so the weights stay consistent; the
  epoch ends (``EpochResult.interrupted``). A second SIGINT interrupts at once;
  that KeyboardInterrupt, too, ends the epoch as interrupted.

What an epoch's result means (stop, warn, raise) is the caller's business.
"""

from __future__ import annotations

import signal
import threading
import time
from dataclasses import dataclass
from typing import Any, Callable, Optional

import numpy as np

from . import _core

__all__ = ["EpochDriver", "EpochResult", "FIRST_CHUNK"]

#: Number of batches in the first call of a run (its timing sizes the next ones).
FIRST_CHUNK = 4
#: Bounds on the time one core call aims for, in seconds.
MIN_CHUNK_SECONDS, MAX_CHUNK_SECONDS = 0.005, 0.12


@dataclass(frozen=True)
class EpochResult:
    """What one ``EpochDriver.run_epoch`` call trained."""

    #: Sums over the batches whose update was applied.
    stats: Any
    #: Batches whose update was applied (numbered from 0 within the epoch).
    batches: int
    #: Every batch of the epoch was trained.
    complete: bool
    #: The batch whose step was refused as non-finite (the epoch stopped there), or None.
    diverged_at: Optional[int] = None
    #: Ctrl-C ended the epoch.
    interrupted: bool = False


class _Interrupts:
    """Turns the first SIGINT into a flag. Installed only in the main thread and only
    over Python's default handler (a handler the user set is left alone; a
    KeyboardInterrupt it raises still ends the epoch as interrupted)."""

    def __init__(self) -> None:
        self.fired = False
        self._previous: Any = None

    def _handler(self, signum: int, frame: Any) -> None:
        if self.fired:
            raise KeyboardInterrupt
        self.fired = True

    def install(self) -> None:
        if (threading.current_thread() is threading.main_thread()
                and signal.getsignal(signal.SIGINT) is signal.default_int_handler):
            self._previous = signal.signal(signal.SIGINT, self._handler)

    def uninstall(self) -> None:
        if self._previous is not None:
            signal.signal(signal.SIGINT, self._previous)
            self._previous = None


class EpochDriver:
    """Trains epochs of a core ``Network`` on fixed, prepared data, in time-sized chunks.

    ``x``, ``y`` (and ``sample_weight``) must be what the core takes (float32
    C-contiguous features; int64 labels or float32 targets). ``chunk_seconds`` is
    the time a core call aims for; ``max_chunk`` caps the batches per call (a
    callback that wants ``on_batch_end`` every k batches sets it to k). ``checked=True``
    says the caller already passed the same arrays through ``net.check``.
    """

    def __init__(self, net: Any, x: np.ndarray, y: np.ndarray, *, batch_size: int, shuffle: bool, seed: int,
                 sample_weight: Optional[np.ndarray] = None, chunk_seconds: float = MAX_CHUNK_SECONDS,
                 max_chunk: Optional[int] = None, training: Optional[bool] = None, checked: bool = False) -> None:
        self.net, self.x, self.y, self.sample_weight = net, x, y, sample_weight
        # The mode of the epochs (None: the network's own); passed per call, so other
        # threads using the network meanwhile never see its mode changed.
        self.training = training
        self.batch_size, self.shuffle, self.seed = int(batch_size), bool(shuffle), int(seed)
        self.steps = -(-len(x) // self.batch_size)
        self.max_chunk = self.steps if max_chunk is None else max(1, int(max_chunk))
        self.chunk_seconds = min(max(float(chunk_seconds), MIN_CHUNK_SECONDS), MAX_CHUNK_SECONDS)
        self._chunk = max(1, min(FIRST_CHUNK, self.max_chunk))
        # ``checked``: the caller already ran ``net.check`` on exactly these arrays, so even
        # the first call skips the finiteness scans (a second pass over all the data).
        self._trusted = bool(checked)
        self._interrupts = _Interrupts()

    def __enter__(self) -> "EpochDriver":
        self._interrupts.install()
        return self

    def __exit__(self, *exc: Any) -> None:
        self._interrupts.uninstall()

    @property
    def interrupted(self) -> bool:
        """Whether a Ctrl-C arrived while the driver was entered."""
        return self._interrupts.fired

    def start_epoch(self, epoch: int) -> None:
        """Makes ``epoch`` the one per-epoch schedules see (``run_epoch`` does it too;
        call it first when code before the training, such as callbacks, reads the rate)."""
        self.net.epoch = epoch

    def run_epoch(self, epoch: int, after_chunk: Optional[Callable[[int, Any], bool]] = None) -> EpochResult:
        """Trains epoch ``epoch`` (0-based; it seeds the shuffle and per-epoch schedules).

        ``after_chunk(batches_done, running_stats)`` runs after each core call that
        applied its batches; returning False stops the epoch there (it is then
        incomplete unless that was its last batch)."""
        self.start_epoch(epoch)
        stats, batch = _core.LossStats(), 0
        try:
            while batch < self.steps:
                take = min(self._chunk, self.steps - batch)
                start = time.perf_counter()
                report = self.net.train_epoch(
                    self.x, self.y, self.batch_size, self.shuffle, self.seed, epoch, sample_weight=self.sample_weight,
                    start_batch=batch, max_batches=take, trusted=self._trusted,
                    training=self.training)
                elapsed = time.perf_counter() - start
                self._trusted = True
                stats, batch = stats + report.stats, batch + report.batches
                if report.diverged_at is not None:
                    return EpochResult(stats, batch, False, diverged_at=int(report.diverged_at))
                go_on = after_chunk(batch, stats) if after_chunk is not None else True
                if self.interrupted:
                    return EpochResult(stats, batch, False, interrupted=True)
                if not go_on:
                    return EpochResult(stats, batch, batch == self.steps)
                if report.batches > 0 and elapsed > 0:
                    self._chunk = max(1, min(int(self.chunk_seconds * report.batches / elapsed), 4 * self._chunk,
                                             self.max_chunk))
        except KeyboardInterrupt:
            return EpochResult(stats, batch, False, interrupted=True)
        return EpochResult(stats, batch, True)
