"""Dying ReLU: how ReLU units stop learning for good, how to see it, and two fixes.

A ReLU unit outputs ``max(0, z)`` where ``z = w·x + b`` is its input. When
``z <= 0`` the output is 0 *and so is its gradient*: nothing flows back to
``w`` or ``b``. If a unit's ``z`` is negative for every training example, it
outputs 0 for all of them, gets no gradient from any of them, and so can never
change again. It is *dead*: the network has lost it, and if most units die the
network can no longer learn at all (its accuracy falls to chance).

Two common ways to kill units:

* **A learning rate that is too large.** One big step can push a unit's
  weights and bias so far that ``z < 0`` everywhere. Here plain SGD with
  ``lr=1.0`` kills most hidden units within a few epochs.
* **A large negative bias.** Start every bias at -2 and almost every unit is
  dead before training even begins.

``fn.diagnostics.dead_units(model, X)`` detects this: for each ReLU-family
layer, the fraction of units whose input is ``<= 0`` on every sample of ``X``.
This script records it after every epoch (a small callback) for four runs on
the 8x8 digits, with a 64-64 hidden-unit MLP:

1. broken, ReLU with SGD ``lr=1.0``;           fixed: the same with ``lr=0.1``;
2. broken, ReLU with every bias at -2 (Adam);  fixed: the same with
   ``LeakyReLU(0.1)``, which outputs ``0.1·z`` for ``z < 0``. Its gradient is
   never exactly 0, so a unit pushed into the negative region still learns and
   can come back: the counted fraction falls from 96% to a few percent.

(For LeakyReLU, ``dead_units`` counts units that are inactive on every sample;
they are not truly dead, since they still receive a small gradient.)
Figures: the dead fraction over the epochs, and the learning curves.

Run: python examples/06_dying_relu.py [--fast] [--out-dir DIR]
"""

from __future__ import annotations

import os

import numpy as np
from matplotlib.figure import Figure

import ferronn as fn

HIDDEN = (64, 64)
# Each run's colour; broken runs are drawn dashed, fixed ones solid.
COLORS = {"broken: ReLU, SGD lr=1.0": "tab:red", "fixed: ReLU, SGD lr=0.1": "tab:green",
          "broken: ReLU, bias -2": "tab:orange", "fixed: LeakyReLU(0.1), bias -2": "tab:blue"}


class DeadUnitTracker(fn.callbacks.Callback):
    """Records the fraction of dead hidden units (all hidden layers together) before
    training and after every epoch."""

    def __init__(self, X: np.ndarray) -> None:
        self.X = X
        self.fractions: list[float] = []
        self.per_layer: list[dict[str, float]] = []

    def _record(self) -> None:
        dead = fn.diagnostics.dead_units(self.model, self.X)  # {"layers.0": 0.03, "layers.1": 0.0}
        self.per_layer.append(dead)
        self.fractions.append(float(np.mean(list(dead.values()))))  # the layers have the same width

    def on_train_begin(self, logs=None) -> None:
        self._record()

    def on_epoch_end(self, epoch, logs=None) -> None:
        self._record()


def run(activation, optimizer, bias, data, epochs: int) -> dict:
    """Trains one MLP and returns its dead fractions, learning curves and accuracy."""
    (Xtr, ytr), (Xva, yva) = data
    init = "zeros" if bias == 0 else {"name": "constant", "value": bias}
    model = fn.Sequential([fn.Dense(h, activation=activation, bias_initializer=init) for h in HIDDEN]
                          + [fn.Dense(10)], seed=0)
    model.compile(optimizer=optimizer, loss="cross_entropy", metrics=["accuracy"])
    tracker = DeadUnitTracker(Xtr)
    history = model.fit(Xtr, ytr, epochs=epochs, batch_size=32, validation_data=(Xva, yva), seed=0, verbose=0,
                        callbacks=[tracker])
    _, acc = model.evaluate(Xva, yva)
    return {"dead": tracker.fractions, "dead_per_layer": tracker.per_layer[-1], "history": history.history,
            "val_accuracy": float(acc)}


def learning_curves(runs: dict[str, dict]) -> Figure:
    fig = Figure(figsize=(12, 4.2), layout="constrained")
    ax_loss, ax_acc = fig.subplots(1, 2)
    for label, r in runs.items():
        style = "--" if "broken" in label else "-"
        h = r["history"]
        epochs = np.arange(1, len(h["loss"]) + 1)
        ax_loss.plot(epochs, h["loss"], style, color=COLORS[label], marker=".", label=label)
        ax_acc.plot(epochs, h["val_accuracy"], style, color=COLORS[label], marker=".", label=label)
    ax_loss.set_yscale("log")
    ax_loss.set_xlabel("epoch")
    ax_loss.set_ylabel("training loss (cross-entropy, log scale)")
    ax_loss.set_title("training loss: the broken runs stay at log(10) = 2.3")
    ax_acc.axhline(0.1, color="grey", linestyle=":", label="chance (10 classes)")
    ax_acc.set_xlabel("epoch")
    ax_acc.set_ylabel("validation accuracy")
    ax_acc.set_ylim(0, 1.02)
    ax_acc.set_title("validation accuracy")
    for ax in (ax_loss, ax_acc):
        ax.grid(True, alpha=0.3)
    ax_acc.legend(loc="center right", fontsize="small")
    return fig


def main(fast: bool = False, out_dir: str = "examples/output") -> dict:
    """Runs the four trainings; returns the final dead fractions and accuracies."""
    epochs = 8 if fast else 30
    X, y = fn.datasets.digits()
    data = fn.datasets.train_test_split(X, y, test_size=0.25, seed=0, stratify=True)
    settings = {
        "broken: ReLU, SGD lr=1.0": ("relu", fn.optim.SGD(1.0), 0.0),
        "fixed: ReLU, SGD lr=0.1": ("relu", fn.optim.SGD(0.1), 0.0),
        "broken: ReLU, bias -2": ("relu", fn.optim.Adam(1e-2), -2.0),
        "fixed: LeakyReLU(0.1), bias -2": (fn.LeakyReLU(0.1), fn.optim.Adam(1e-2), -2.0),
    }
    runs = {label: run(act, opt, bias, data, epochs) for label, (act, opt, bias) in settings.items()}

    print(f"digits, MLP 64-{HIDDEN[0]}-{HIDDEN[1]}-10, {epochs} epochs; dead = fraction of hidden units "
          "whose input is <= 0 on every training sample")
    print(f"{'run':<34}{'dead at start':>14}{'dead at end':>13}{'val accuracy':>14}")
    for label, r in runs.items():
        print(f"{label:<34}{r['dead'][0]:>14.1%}{r['dead'][-1]:>13.1%}{r['val_accuracy']:>14.1%}")
    print("per layer at the end:", {label: {k: round(v, 3) for k, v in r["dead_per_layer"].items()}
                                    for label, r in runs.items()})

    steps = list(range(epochs + 1))
    fig = fn.plot.dead_units_over_time(steps, {label: r["dead"] for label, r in runs.items()})
    ax = fig.axes[0]
    for line, label in zip(ax.lines, runs):
        line.set_color(COLORS[label])
        line.set_linestyle("--" if "broken" in label else "-")
    ax.axhline(0.5, color="grey", linestyle=":", linewidth=1, label="half the units")
    ax.set_xlabel("epoch (0 = before training)")
    ax.set_ylabel("fraction of dead hidden units")
    ax.set_title("dying ReLU: dead units over training, broken vs fixed")
    ax.legend(fontsize="small", loc="center right")
    paths = [fn.plot.save(fig, os.path.join(out_dir, "06_dead_units.png")),
             fn.plot.save(learning_curves(runs), os.path.join(out_dir, "06_learning_curves.png"))]
    for p in paths:
        print(f"saved {p}")

    def final(label: str) -> dict:
        return {"dead_fraction": runs[label]["dead"][-1], "dead_fraction_start": runs[label]["dead"][0],
                "val_accuracy": runs[label]["val_accuracy"]}

    return {
        "large_lr": {"broken": final("broken: ReLU, SGD lr=1.0"), "fixed": final("fixed: ReLU, SGD lr=0.1")},
        "negative_bias": {"broken": final("broken: ReLU, bias -2"), "fixed": final("fixed: LeakyReLU(0.1), bias -2")},
        "dead_over_epochs": {label: r["dead"] for label, r in runs.items()},
        "figures": paths,
    }


if __name__ == "__main__":
    from _gallery import gallery_cli

    gallery_cli(main, __doc__, "fewer epochs (a few seconds)")
