"""Weight initialisation: why the starting weights decide whether a deep network learns.

Training starts from random weights, and their scale matters. Each layer computes
``z = h·W + b`` from the previous layer's output ``h``; with ``n`` inputs of
variance ``v`` and independent weights of variance ``σ²``, ``z`` has variance about
``n·σ²·v``. So every layer multiplies the signal's variance by ``n·σ²`` (times what
the activation does), and through many layers that factor compounds:

- zeros: every unit of a layer computes the same thing and receives the same
  gradient, so the units stay identical forever (the *symmetry* is never broken).
  With tanh or ReLU it is worse: all outputs are 0, every hidden gradient is 0, and
  the hidden weights never move at all. Only the output bias learns (the class
  frequencies), so the loss stays at ``ln 10 ≈ 2.303``.
- too small (normal, std 0.001): ``n·σ²`` is far below 1, so the activations, and the
  gradients with them, shrink by that factor at every layer: 10^-18 after eight.
- too large (normal, std 3): ``n·σ²`` is far above 1. tanh units saturate at ±1
  (their gradient is then almost 0), and ReLU activations grow by ~17x per layer
  until the first training step overflows.
- Xavier / Glorot (variance ``2 / (fan_in + fan_out)``): keeps the variance about
  constant for tanh, whose slope at 0 is 1 (Glorot & Bengio 2010).
- He / Kaiming (variance ``2 / fan_in``): the factor 2 compensates ReLU zeroing half
  of its inputs, so the variance stays constant through ReLU layers (He et al. 2015);
  with Xavier the ReLU signal halves at each layer.

We build an 8-hidden-layer network (64 units per layer, the 8x8 digits as input)
with each initialisation, measure the standard deviation of every layer's output at
initialisation (``fn.diagnostics.activation_stats``), then train it with SGD and
report the final loss, for tanh and for ReLU.

Run: python examples/05_initialisation.py [--fast] [--out-dir DIR]
"""

from __future__ import annotations

import os
import warnings

import numpy as np
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.ticker import MaxNLocator

import ferronn as fn

SEED = 0
HIDDEN = 8
WIDTH = 64
INITS = {
    "zeros": "zeros",
    "too small (std 0.001)": {"name": "normal", "mean": 0.0, "std": 1e-3},
    "too large (std 3)": {"name": "normal", "mean": 0.0, "std": 3.0},
    "Xavier": "glorot_normal",
    "He": "he_normal",
}
NAMES = {"tanh": "tanh", "relu": "ReLU"}
COLORS = {"zeros": "0.4", "too small (std 0.001)": "#1f77b4", "too large (std 3)": "#d62728",
          "Xavier": "#2ca02c", "He": "#ff7f0e"}


def network(activation: str, init) -> fn.Sequential:
    layers = [fn.Dense(WIDTH, activation=activation, kernel_initializer=init) for _ in range(HIDDEN)]
    model = fn.Sequential(layers + [fn.Dense(10, kernel_initializer=init)], seed=SEED)
    model.compile(optimizer=fn.optim.SGD(0.01, momentum=0.9), loss="cross_entropy", metrics=["accuracy"])
    model.build(64)
    return model


def main(fast: bool = False, out_dir: str = "examples/output") -> dict:
    X, y = fn.datasets.digits()
    epochs = 5 if fast else 20
    results: dict = {"std": {}, "saturated": {}, "final_loss": {}, "final_accuracy": {}, "loss_curves": {},
                     "diverged": {}, "epochs": epochs}

    for act in ("tanh", "relu"):
        for label, init in INITS.items():
            key = f"{act}/{label}"
            model = network(act, init)
            stats = fn.diagnostics.activation_stats(model, X)
            results["std"][key] = [stats[f"layers.{i}"]["std"] for i in range(HIDDEN)]
            results["saturated"][key] = stats[f"layers.{HIDDEN - 1}"]["saturated"]
            with warnings.catch_warnings(record=True) as caught:  # a diverging run warns; we report it below
                warnings.simplefilter("always")
                history = model.fit(X, y, epochs=epochs, batch_size=32, seed=SEED, verbose=0).history
            losses = list(history.get("loss", []))
            results["diverged"][key] = len(losses) < epochs or any("non-finite" in str(w.message) for w in caught)
            results["loss_curves"][key] = losses
            results["final_loss"][key] = losses[-1] if losses and not results["diverged"][key] else float("nan")
            results["final_accuracy"][key] = (history["accuracy"][-1] if losses and not results["diverged"][key]
                                              else float("nan"))
            if label == "zeros" and act == "tanh":
                W1 = model.get_weights()[0]             # the first layer's kernel, [inputs, units]
                results["zeros_column_diff"] = float(np.max(np.abs(W1 - W1[:, :1])))
                results["zeros_max_abs_w1"] = float(np.max(np.abs(W1)))

    print(f"output std of each hidden layer at initialisation ({HIDDEN} x {WIDTH} units, digits):")
    for act in ("tanh", "relu"):
        print(f"  {act}:")
        for label in INITS:
            key = f"{act}/{label}"
            stds = " ".join(f"{s:8.1e}" for s in results["std"][key])
            sat = results["saturated"][key]
            extra = f"   saturated {sat:.0%}" if sat is not None else ""
            print(f"    {label:<22} {stds}{extra}")
    print(f"after {epochs} epochs of SGD (lr 0.01, momentum 0.9): final training loss (accuracy)")
    for act in ("tanh", "relu"):
        row = []
        for label in INITS:
            key = f"{act}/{label}"
            if results["diverged"][key]:
                row.append(f"{label}: diverged (non-finite loss at the first steps)")
            else:
                row.append(f"{label}: {results['final_loss'][key]:.3f} ({results['final_accuracy'][key]:.0%})")
        print(f"  {act}: " + "; ".join(row))
    print(f"zeros (tanh): max difference between the columns of the first layer's weights after training = "
          f"{results['zeros_column_diff']:.1f} (every unit identical); max |w| = {results['zeros_max_abs_w1']:.1f}: "
          "the hidden gradients are exactly 0, so the weights never moved")

    # Figure 1: the output std per layer at initialisation (log scale).
    fig = Figure(figsize=(11.5, 4.4), layout="constrained")
    depth = np.arange(1, HIDDEN + 1)
    for j, act in enumerate(("tanh", "relu")):
        ax = fig.add_subplot(1, 2, j + 1)
        for label in INITS:
            stds = np.asarray(results["std"][f"{act}/{label}"])
            if np.all(stds == 0):
                continue  # zeros: std 0 everywhere, off the log scale (listed in the legend)
            sat = results["saturated"][f"{act}/{label}"]
            note = f", {sat:.0%} saturated" if sat is not None and sat >= 0.05 else ""
            ax.plot(depth, stds, "o-", color=COLORS[label], label=label + note)
        handles, names = ax.get_legend_handles_labels()
        handles.append(Line2D([], [], color=COLORS["zeros"], linestyle=":"))
        names.append("zeros (std exactly 0: off the scale)")
        ax.set_yscale("log")
        ax.set_xticks(depth)
        ax.set_xlabel("hidden layer")
        ax.set_ylabel("std of the layer's outputs (log scale)")
        ax.set_title(f"{NAMES[act]} network at initialisation")
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(handles, names, fontsize="small")
    std_path = fn.plot.save(fig, os.path.join(out_dir, "05_activation_std_per_layer.png"))

    # Figure 2: the training loss per epoch.
    fig = Figure(figsize=(11.5, 4.2), layout="constrained")
    for j, act in enumerate(("tanh", "relu")):
        ax = fig.add_subplot(1, 2, j + 1)
        for label in INITS:
            key = f"{act}/{label}"
            losses = results["loss_curves"][key]
            if results["diverged"][key] or not losses:
                ax.plot([], [], color=COLORS[label], label=f"{label}: diverged")
                continue
            style = dict(linestyle="--", linewidth=2.5, zorder=3) if label == "zeros" else dict(marker="o")
            ax.plot(np.arange(1, len(losses) + 1), losses, markersize=3, color=COLORS[label],
                    label=f"{label}: {losses[-1]:.3f}", **style)
        ax.set_yscale("log")
        ax.set_xlabel("epoch")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_ylabel("training loss (log scale)")
        ax.set_title(f"training the {NAMES[act]} network (legend: final loss)")
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize="small")
    loss_path = fn.plot.save(fig, os.path.join(out_dir, "05_initialisation_training.png"))
    print(f"saved {std_path}\nsaved {loss_path}")
    results["figures"] = [std_path, loss_path]
    return results


if __name__ == "__main__":
    from _gallery import gallery_cli

    gallery_cli(main, __doc__, "a quicker run with fewer epochs")
