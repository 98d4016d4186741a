"""Six activation functions on the same task: how fast does each network learn?

The activation ``f`` is what makes a network non-linear; it also decides how
gradients flow back through it, because back-propagation multiplies by ``f'`` at
every layer:

- sigmoid ``1 / (1 + e^-z)``: outputs in (0, 1), never centred on 0; its slope is
  at most 0.25 and nearly 0 for |z| > 5 ("saturation"), so each layer shrinks the
  gradient. The classic activation, and the slowest learner here.
- tanh: a rescaled sigmoid with outputs in (-1, 1), centred on 0, slope up to 1.
  Better, but it still saturates.
- ReLU ``max(0, z)``: slope exactly 1 for every positive input, so gradients pass
  unchanged through active units; cheap, and the default since about 2012. A unit
  whose input is negative for every sample passes no gradient at all ("dead").
- Leaky ReLU ``max(αz, z)`` (α = 0.01): a small slope for z < 0 keeps units alive.
- GELU ``z·Φ(z)`` (Φ the normal CDF) and SiLU / swish ``z·sigmoid(z)``: smooth
  versions of ReLU used in transformers; slightly negative for small negative z.

Every network here has the same architecture (2-32-32-32-2), the same seed, the
same optimizer (Adam, lr 3e-3, batches of 32) and the same data: two interleaved
spirals (``fn.datasets.spirals``), standardised. Only the activation differs. The
figure shows the training loss per epoch; the gallery shows each function and its
derivative. The ReLU family learns the spirals within a few dozen epochs, GELU and
SiLU as fast, tanh after a plateau, and sigmoid sits on a plateau far longer.

Run: python examples/03_activations_compared.py [--fast] [--out-dir DIR]
"""

from __future__ import annotations

import os

import numpy as np
from matplotlib.figure import Figure

import ferronn as fn

SEED = 0
ACTIVATIONS = ("sigmoid", "tanh", "relu", "leaky_relu", "gelu", "silu")


def main(fast: bool = False, out_dir: str = "examples/output") -> dict:
    X, y = fn.datasets.spirals(n=200, noise=0.05, seed=SEED)
    X = (X - X.mean(axis=0)) / X.std(axis=0)
    epochs = 100 if fast else 300

    histories = {}
    for act in ACTIVATIONS:
        model = fn.Sequential([fn.Dense(32, activation=act) for _ in range(3)] + [fn.Dense(2)], seed=SEED)
        model.compile(optimizer=fn.optim.Adam(3e-3), loss="cross_entropy", metrics=["accuracy"])
        histories[act] = model.fit(X, y, epochs=epochs, batch_size=32, seed=SEED, verbose=0).history

    checkpoints = [e for e in (10, 50, 100, 300) if e <= epochs]
    print(f"training loss (and final accuracy) on the spirals, {epochs} epochs, same net and seed:")
    print(f"  {'activation':<11}" + "".join(f"{'epoch ' + str(e):>11}" for e in checkpoints) + "   accuracy")
    final_loss, final_acc = {}, {}
    for act, h in histories.items():
        final_loss[act], final_acc[act] = float(h["loss"][-1]), float(h["accuracy"][-1])
        print(f"  {act:<11}" + "".join(f"{h['loss'][e - 1]:>11.3f}" for e in checkpoints)
              + f"{final_acc[act]:>11.1%}")

    fig = Figure(figsize=(11, 4.2), layout="constrained")
    ax_loss, ax_acc = fig.add_subplot(1, 2, 1), fig.add_subplot(1, 2, 2)
    epochs_axis = np.arange(1, epochs + 1)
    for act, h in histories.items():
        ax_loss.plot(epochs_axis, h["loss"], label=act, linewidth=1.6)
        ax_acc.plot(epochs_axis, h["accuracy"], label=act, linewidth=1.6)
    ax_loss.set_yscale("log")
    ax_loss.set_xlabel("epoch")
    ax_loss.set_ylabel("training loss (cross-entropy, log scale)")
    ax_loss.set_title("loss per epoch, same network, 6 activations")
    ax_acc.set_xlabel("epoch")
    ax_acc.set_ylabel("training accuracy")
    ax_acc.set_title("accuracy per epoch")
    ax_acc.set_ylim(0.3, 1.01)
    for ax in (ax_loss, ax_acc):
        ax.grid(True, which="both", alpha=0.3)
    ax_loss.legend(fontsize="small", loc="lower left")
    ax_acc.legend(fontsize="small", loc="lower center", ncol=3)
    curves = fn.plot.save(fig, os.path.join(out_dir, "03_activations_learning_curves.png"))
    gallery = fn.plot.save(fn.plot.activation_gallery(), os.path.join(out_dir, "03_activation_gallery.png"))
    print(f"saved {curves}\nsaved {gallery}")
    return {"final_loss": final_loss, "final_accuracy": final_acc, "epochs": epochs,
            "loss_curves": {a: list(h["loss"]) for a, h in histories.items()}, "figures": [curves, gallery]}


if __name__ == "__main__":
    from _gallery import gallery_cli

    gallery_cli(main, __doc__, "a quicker run with fewer epochs")
