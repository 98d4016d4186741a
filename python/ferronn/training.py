"""The training loop behind ``Sequential.fit``, and its ``History``.

One Rust call trains a whole epoch (shuffle, mini-batches, forward, loss,
backward, update); this loop only records what each epoch reports, runs the
validation pass and drives the progress bar.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Optional

from tqdm.auto import tqdm

if TYPE_CHECKING:
    from .model import Sequential


class History:
    """Per-epoch logs of a ``fit`` call, as Keras' ``History``.

    ``history`` maps each name ("loss", "accuracy", "val_loss", ...) to a list with
    one value per epoch; ``epoch`` lists the epoch indices.
    """

    def __init__(self, params: dict[str, Any]) -> None:
        self.history: dict[str, list[float]] = {}
        self.epoch: list[int] = []
        self.params = params

    def record(self, epoch: int, logs: dict[str, float]) -> None:
        self.epoch.append(epoch)
        for key, value in logs.items():
            self.history.setdefault(key, []).append(value)

    def __repr__(self) -> str:
        return f"History(epochs={len(self.epoch)}, keys={list(self.history)})"


def _format(logs: dict[str, float]) -> dict[str, str]:
    return {k: f"{v:.4f}" for k, v in logs.items()}


def fit_loop(model: "Sequential", x, y, *, epochs: int, batch_size: int, shuffle: bool, seed: int,
             validation: Optional[tuple], verbose: int) -> History:
    """Trains ``model`` for ``epochs`` epochs on prepared arrays and returns the History."""
    history = History({"epochs": epochs, "batch_size": batch_size, "samples": len(x)})
    bar = tqdm(total=epochs, unit="epoch", disable=verbose == 0, leave=True, dynamic_ncols=True)
    try:
        for _ in range(epochs):
            epoch = model._epochs_trained
            stats = model._net.train_epoch(x, y, batch_size, shuffle, seed, epoch)
            model._epochs_trained += 1
            logs = model._logs_from_stats(stats)
            if validation is not None:
                val = model._logs_from_stats(model._net.evaluate(*validation))
                logs.update({f"val_{k}": v for k, v in val.items()})
            history.record(epoch, logs)
            bar.set_postfix(_format(logs), refresh=False)
            bar.update(1)
    finally:
        bar.close()
    return history
