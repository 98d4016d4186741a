"""Overfitting: when a network learns its training set by heart, and four cures.

A model *overfits* when it fits the particular examples it was trained on,
noise included, instead of the pattern behind them. It then does much better
on the training set than on new data. The difference between the two, the
*generalisation gap*, is what this script measures:

    gap = validation loss - training loss

(both cross-entropy, computed after training in inference mode; the
accuracy gap, training accuracy - validation accuracy, is printed too).

The data: 60 training points of the two-moons problem with a lot of noise
(``noise=0.3``, so the classes overlap and no boundary can be perfect), and
540 validation points from the same distribution.

Part 1, capacity. MLPs of width 4, 16, 64, 256 with 1 or 3 hidden layers, all
trained the same way. Small networks cannot follow the noise, so their gap is
near 0; the wide, deep ones have enough parameters (about 130,000 for 3x256,
against 60 points) to bend their boundary around every noisy point: training
loss near 0, a large validation loss, a large gap.

Part 2, cures, each applied to the 3x256 network:

* **Dropout(0.5)** after each hidden layer: in training, every unit is switched
  off at random half of the time, so no unit can rely on a few others to
  memorise a point.
* **Weight decay** (``fn.optim.AdamW(weight_decay=5.0)``): every step shrinks
  all weights a little towards 0 (by ``lr·wd`` = 0.5% here), which keeps the
  function smooth unless the data insist.
* **Early stopping** (``EarlyStopping(patience=20, restore_best_weights=True)``):
  watch the validation loss and keep the weights from the epoch where it was
  lowest, before memorisation begins.
* **Batch normalisation** after each hidden Dense layer: it standardises each
  unit over the batch; with batches of 16, the batch statistics are noisy,
  which acts as a mild regulariser (its main job is faster, steadier training).

Every cure gives a smaller gap than the bare network. Figures: the gap
against width and depth; train and validation loss per epoch for each
variant (the training curve is the running loss *in training mode*, i.e.
with dropout active); the final gaps as bars; and each variant's decision
boundary (the overfitted one is wiggly).

Run: python examples/07_overfitting.py [--fast] [--out-dir DIR]
"""

from __future__ import annotations

import os

import numpy as np
from matplotlib.figure import Figure

import ferronn as fn

N_TRAIN = 60
WIDTHS = (4, 16, 64, 256)
DEPTHS = (1, 3)
BIG = (3, 256)  # depth, width of the network that the cures are applied to
VARIANT_COLORS = {"no cure": "tab:red", "dropout 0.5": "tab:blue", "weight decay (AdamW)": "tab:purple",
                  "early stopping": "tab:green", "batch norm": "tab:orange"}


def dataset():
    X, y = fn.datasets.moons(n=300, noise=0.3, seed=0)
    return fn.datasets.train_test_split(X, y, test_size=len(X) - N_TRAIN, seed=0, stratify=True)


def mlp(width: int, depth: int, extra=None) -> list:
    """``depth`` hidden layers of ``width`` ReLU units; ``extra`` decides what follows each Dense."""
    layers: list = []
    for _ in range(depth):
        if extra == "batch norm":
            layers += [fn.Dense(width), fn.BatchNorm(), fn.ReLU()]
        else:
            layers.append(fn.Dense(width, activation="relu"))
            if extra == "dropout":
                layers.append(fn.Dropout(0.5))
    return layers + [fn.Dense(2)]


def train(layers, data, epochs: int, optimizer=None, callbacks=()) -> dict:
    (Xtr, ytr), (Xva, yva) = data
    model = fn.Sequential(layers, seed=0)
    model.compile(optimizer=optimizer or fn.optim.Adam(1e-3), loss="cross_entropy", metrics=["accuracy"])
    history = model.fit(Xtr, ytr, epochs=epochs, batch_size=16, validation_data=(Xva, yva), seed=0, verbose=0,
                        callbacks=list(callbacks))
    tr = model.evaluate(Xtr, ytr, return_dict=True)
    va = model.evaluate(Xva, yva, return_dict=True)
    stopper = next((cb for cb in callbacks if isinstance(cb, fn.callbacks.EarlyStopping)), None)
    return {"model": model, "history": history.history, "n_params": model.n_params, "epochs": len(history.epoch),
            "best_epoch": None if stopper is None else stopper.best_epoch + 1,
            "train_loss": tr["loss"], "val_loss": va["loss"], "train_acc": tr["accuracy"], "val_acc": va["accuracy"],
            "gap": va["loss"] - tr["loss"], "acc_gap": tr["accuracy"] - va["accuracy"]}


def capacity_figure(sweep: dict) -> Figure:
    fig = Figure(figsize=(11, 4.2), layout="constrained")
    ax_gap, ax_acc = fig.subplots(1, 2)
    for depth, marker, color in zip(DEPTHS, ("o", "s"), ("tab:blue", "tab:orange")):
        rows = [sweep[(w, depth)] for w in WIDTHS]
        label = f"{depth} hidden layer{'s' if depth > 1 else ''}"
        ax_gap.plot(WIDTHS, [r["gap"] for r in rows], marker=marker, color=color, label=label)
        ax_acc.plot(WIDTHS, [r["train_acc"] for r in rows], marker=marker, color=color, linestyle="-",
                    label=f"{label}: training")
        ax_acc.plot(WIDTHS, [r["val_acc"] for r in rows], marker=marker, color=color, linestyle="--",
                    label=f"{label}: validation")
    for ax in (ax_gap, ax_acc):
        ax.set_xscale("log", base=2)
        ax.set_xticks(WIDTHS, [str(w) for w in WIDTHS])
        ax.set_xlabel("hidden units per layer")
        ax.grid(True, alpha=0.3)
    ax_gap.legend(fontsize="small")
    ax_acc.legend(fontsize="small", loc="lower right", ncols=2)
    ax_acc.set_ylim(0.7, 1.02)
    ax_gap.set_ylabel("gap = validation loss - training loss")
    ax_gap.set_title("bigger networks overfit more")
    ax_acc.set_ylabel("accuracy")
    ax_acc.set_title("training accuracy climbs to 100%, validation does not")
    return fig


def curves_figure(variants: dict) -> Figure:
    """One panel per variant (training and validation loss), and a last panel with
    every variant's validation loss."""
    fig = Figure(figsize=(13, 7.6), layout="constrained")
    axes = fig.subplots(2, 3, sharey=True).ravel()
    for ax, (name, r) in zip(axes, variants.items()):
        h = r["history"]
        epochs = np.arange(1, len(h["loss"]) + 1)
        color = VARIANT_COLORS[name]
        ax.plot(epochs, h["loss"], color=color, linewidth=1, label="training")
        ax.plot(epochs, h["val_loss"], "--", color="black", linewidth=1.5, label="validation")
        title = f"{name}: gap {r['gap']:.2f}"
        if name == "early stopping":
            title += f"\n(stopped after epoch {r['epochs']}, kept epoch {r['best_epoch']})"
        ax.set_title(title)
    last = axes[len(variants)]
    for name, r in variants.items():
        h = r["history"]
        last.plot(np.arange(1, len(h["val_loss"]) + 1), h["val_loss"], color=VARIANT_COLORS[name], label=name)
    last.set_title("validation loss of every variant")
    for i, ax in enumerate(axes[:len(variants) + 1]):
        ax.set_yscale("log")
        ax.set_xlabel("epoch")
        ax.grid(True, alpha=0.3)
        ax.legend(fontsize="small", loc="lower left")
        if i % 3 == 0:
            ax.set_ylabel("cross-entropy loss (log scale)")
    return fig


def gaps_figure(variants: dict) -> Figure:
    fig = Figure(figsize=(11, 4.0), layout="constrained")
    ax_loss, ax_acc = fig.subplots(1, 2)
    names = list(variants)
    colors = [VARIANT_COLORS[n] for n in names]
    for ax, key, label in ((ax_loss, "gap", "validation loss - training loss"),
                           (ax_acc, "acc_gap", "training accuracy - validation accuracy")):
        values = [variants[n][key] for n in names]
        bars = ax.bar(range(len(names)), values, color=colors)
        ax.bar_label(bars, fmt="%.3f", fontsize="small")
        ax.set_xticks(range(len(names)), [n.replace(" (", "\n(") for n in names], fontsize="small")
        ax.set_ylabel(label)
        ax.axhline(0, color="black", linewidth=0.8)
        ax.grid(True, axis="y", alpha=0.3)
    ax_loss.set_title("loss gap (what the learning curves show)")
    ax_acc.set_title("accuracy gap")
    return fig


def main(fast: bool = False, out_dir: str = "examples/output") -> dict:
    """Trains the capacity sweep and the four cures; returns the gaps."""
    epochs = 100 if fast else 500
    data = dataset()
    (Xtr, ytr), (Xva, yva) = data
    print(f"two moons, noise 0.3: {len(Xtr)} training points, {len(Xva)} validation points; {epochs} epochs of Adam")

    print("\npart 1: capacity (gap = validation loss - training loss)")
    print(f"{'hidden layers':>14}{'width':>7}{'params':>9}{'train acc':>11}{'val acc':>9}{'gap':>8}")
    sweep = {}
    for depth in DEPTHS:
        for width in WIDTHS:
            r = sweep[(width, depth)] = train(mlp(width, depth), data, epochs)
            print(f"{depth:>14}{width:>7}{r['n_params']:>9}{r['train_acc']:>11.3f}{r['val_acc']:>9.3f}"
                  f"{r['gap']:>8.3f}")

    depth, width = BIG
    variants = {"no cure": sweep[(width, depth)]}
    variants["dropout 0.5"] = train(mlp(width, depth, "dropout"), data, epochs)
    variants["weight decay (AdamW)"] = train(mlp(width, depth), data, epochs,
                                             optimizer=fn.optim.AdamW(1e-3, weight_decay=5.0))
    stopper = fn.callbacks.EarlyStopping(monitor="val_loss", patience=20, restore_best_weights=True)
    variants["early stopping"] = train(mlp(width, depth), data, epochs, callbacks=[stopper])
    variants["batch norm"] = train(mlp(width, depth, "batch norm"), data, epochs)

    print(f"\npart 2: cures for the {depth}x{width} network")
    print(f"{'variant':<22}{'epochs':>7}{'train loss':>11}{'val loss':>10}{'gap':>8}{'train acc':>11}{'val acc':>9}"
          f"{'acc gap':>9}")
    for name, r in variants.items():
        print(f"{name:<22}{r['epochs']:>7}{r['train_loss']:>11.3f}{r['val_loss']:>10.3f}{r['gap']:>8.3f}"
              f"{r['train_acc']:>11.3f}{r['val_acc']:>9.3f}{r['acc_gap']:>9.3f}")
    print(f"early stopping kept the weights of epoch {variants['early stopping']['best_epoch']}")
    base = variants["no cure"]["gap"]
    print("every cure shrinks the gap:", all(r["gap"] < base for n, r in variants.items() if n != "no cure"))

    figs = {
        "07_capacity.png": capacity_figure(sweep),
        "07_learning_curves.png": curves_figure(variants),
        "07_gaps.png": gaps_figure(variants),
        "07_decision_boundaries.png": fn.plot.decision_boundary_grid(
            [(f"{n}\nval acc {r['val_acc']:.2f}, gap {r['gap']:.2f}", r["model"]) for n, r in variants.items()],
            Xtr, ytr, ncols=5),
    }
    paths = [fn.plot.save(fig, os.path.join(out_dir, name)) for name, fig in figs.items()]
    for p in paths:
        print(f"saved {p}")

    def summary(r: dict) -> dict:
        return {k: r[k] for k in ("gap", "acc_gap", "train_loss", "val_loss", "train_acc", "val_acc", "n_params",
                                  "epochs")}

    return {"capacity": {f"{d}x{w}": summary(r) for (w, d), r in sweep.items()},
            "variants": {n: summary(r) for n, r in variants.items()},
            "gaps": {n: r["gap"] for n, r in variants.items()},
            "accuracy_gaps": {n: r["acc_gap"] for n, r in variants.items()},
            "figures": paths}


if __name__ == "__main__":
    from _gallery import gallery_cli

    gallery_cli(main, __doc__, "fewer epochs (a few seconds)")
