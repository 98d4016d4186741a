"""``keras.callbacks``: ferronn's callbacks, with Keras' names and arguments.

``EarlyStopping``, ``ModelCheckpoint``, ``CSVLogger``, ``LambdaCallback``,
``ReduceLROnPlateau``, ``TerminateOnNaN``, ``History`` and the ``Callback`` base
are ferronn's own (their arguments follow Keras'). ``ModelCheckpoint`` takes
Keras' ``filepath`` as its first argument and writes ferronn's safetensors format.
``LearningRateScheduler`` is here in Keras' form.
"""

from __future__ import annotations

from typing import Any, Callable

from .. import callbacks as _fc
from ..callbacks import (  # noqa: F401
    Callback, CSVLogger, EarlyStopping, History, LambdaCallback, ReduceLROnPlateau, TerminateOnNaN,
)
from ._common import check_default, missing_attr

__all__ = ["Callback", "CSVLogger", "EarlyStopping", "History", "LambdaCallback", "ModelCheckpoint",
           "ReduceLROnPlateau", "TerminateOnNaN", "LearningRateScheduler"]


class ModelCheckpoint(_fc.ModelCheckpoint):
    """Keras' ``ModelCheckpoint(filepath, monitor="val_loss", verbose=0, save_best_only=False, ...)``;
    the file is ferronn's safetensors model (``keras.models.load_model`` reads it)."""

    def __init__(self, filepath: Any, monitor: str = "val_loss", verbose: int = 0, save_best_only: bool = False,
                 save_weights_only: bool = False, mode: str = "auto", save_freq: Any = "epoch",
                 initial_value_threshold: Any = None) -> None:
        check_default("ModelCheckpoint", "save_weights_only", save_weights_only, False,
                      "ferronn saves the whole model")
        check_default("ModelCheckpoint", "save_freq", save_freq, "epoch")
        check_default("ModelCheckpoint", "initial_value_threshold", initial_value_threshold, None)
        super().__init__(filepath, monitor=monitor, save_best_only=save_best_only, mode=mode, verbose=verbose)


class LearningRateScheduler(Callback):
    """Keras' ``LearningRateScheduler(schedule)``: before each epoch the model's rate
    becomes ``schedule(epoch, lr)`` (``lr`` the current one). It sets the optimizer's
    ``learning_rate``, so it does not combine with a ``fn.schedules`` schedule."""

    def __init__(self, schedule: Callable[[int, float], float], verbose: int = 0) -> None:
        self.schedule, self.verbose = schedule, verbose

    def on_epoch_begin(self, epoch: int, logs: Any = None) -> None:
        lr = float(self.schedule(epoch, float(self.model.optimizer.learning_rate)))
        self.model.optimizer.learning_rate = lr
        if self.verbose:
            print(f"\nEpoch {epoch + 1}: LearningRateScheduler setting learning rate to {lr}.")


def __getattr__(name: str) -> Any:
    missing_attr("callbacks", name, {"TensorBoard": "ferronn writes no TensorBoard logs; CSVLogger writes the "
                                                    "epoch logs", "BackupAndRestore": "use ModelCheckpoint",
                                     "RemoteMonitor": "", "ProgbarLogger": "fit(verbose=1) shows a progress bar",
                                     "SwapEMAWeights": ""})
