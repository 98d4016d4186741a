"""Sequence classification: Fashion-MNIST images read row by row by an LSTM.

A recurrent network reads its input one step at a time and carries what it has
seen in its hidden state. Here each 28x28 image becomes a sequence of T = 28
steps, one row of 28 pixels per step, and an ``LSTM(128)`` reads them top to
bottom; its last hidden state goes to a ``Dense(10)`` classifier. Nothing tells
it that the rows form an image: whatever it knows about the shape of a sleeve
or a sole it has to remember across the steps.

The recipe (the target of issue 14): ``LSTM(128) → Dense(10)``, Adam (learning
rate 1e-3), batches of 128, 10 epochs on the 60,000 training images, pixels
scaled to [0, 1] (``fn.datasets.fashion_mnist`` divides by 255). For scale, an
MLP of about the same size (784 → 100 → 10, ReLU: 79,510 parameters against
the LSTM's 82,186) trains with the same recipe on the same images seen as 784
numbers at once. The test accuracies measured are in the README's gallery.

The figure shows both test-accuracy curves, and how much gradient the trained
LSTM's loss sends back to each row (``fn.diagnostics.time_step_gradients`` on
1,000 test images): ``‖∂L/∂h_t‖`` for the hidden state after row ``t``.

With ``--fast`` the same comparison runs on a subset (5,000 training and 1,000
test images, 3 epochs). Without the Fashion-MNIST files (Debian package
``dataset-fashion-mnist``) it runs on the 8x8 digits that ship with ferronn (8
rows of 8 pixels, 20 epochs).

Run: python examples/14_sequence_classification.py [--fast] [--out-dir DIR]
"""

from __future__ import annotations

import os
import time

import numpy as np
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

import ferronn as fn

FAST_TRAIN, FAST_TEST, FAST_EPOCHS = 5000, 1000, 3
UNITS, MLP_HIDDEN = 128, 100


def load(fast: bool) -> dict:
    """Images as sequences ``[n, rows, pixels]`` in [0, 1]: Fashion-MNIST (a subset in fast mode), else digits."""
    try:
        (Xtr, ytr), (Xte, yte) = fn.datasets.fashion_mnist()
        name, side, epochs = "Fashion-MNIST", 28, FAST_EPOCHS if fast else 10
        if fast:
            Xtr, ytr, Xte, yte = Xtr[:FAST_TRAIN], ytr[:FAST_TRAIN], Xte[:FAST_TEST], yte[:FAST_TEST]
            name += f" (subset: {FAST_TRAIN} train, {FAST_TEST} test)"
    except fn.DatasetNotFoundError as e:
        print(f"Fashion-MNIST is not available ({e}); using the embedded 8x8 digits instead")
        X, y = fn.datasets.digits()
        (Xtr, ytr), (Xte, yte) = fn.datasets.train_test_split(X / np.float32(16.0), y, test_size=0.25, seed=0,
                                                              stratify=True)
        name, side, epochs = "digits (8x8)", 8, 20
    seq = lambda a: np.ascontiguousarray(a.reshape(len(a), side, side), dtype=np.float32)  # noqa: E731
    return {"name": name, "train": (seq(Xtr), ytr), "test": (seq(Xte), yte), "epochs": epochs}


def lstm() -> list:
    return [fn.LSTM(UNITS), fn.Dense(10)]


def mlp() -> list:
    return [fn.Flatten(), fn.Dense(MLP_HIDDEN, activation="relu"), fn.Dense(10)]


def train(layers: list, data: dict) -> dict:
    """Trains one model with the shared recipe; its accuracy curve, time and size."""
    (Xtr, ytr), (Xte, yte) = data["train"], data["test"]
    model = fn.Sequential([fn.Input(shape=Xtr.shape[1:]), *layers], seed=0)
    model.compile(optimizer=fn.optim.Adam(1e-3), loss="cross_entropy", metrics=["accuracy"])
    start = time.perf_counter()
    history = model.fit(Xtr, ytr, epochs=data["epochs"], batch_size=128, seed=0, verbose=0,
                        validation_data=(Xte, yte))
    seconds = time.perf_counter() - start
    accuracy = float(fn.metrics.accuracy(yte, model.predict(Xte)))
    return {"model": model, "test_accuracy": accuracy, "seconds": seconds, "n_params": model.n_params,
            "curve": [float(a) for a in history.history["val_accuracy"]]}


def main(fast: bool = False, out_dir: str = "examples/output") -> dict:
    """Trains the LSTM and the MLP; returns their accuracies, times, sizes, the per-row gradients and the figure."""
    data = load(fast)
    (Xtr, _), (Xte, yte) = data["train"], data["test"]
    steps = Xtr.shape[1]
    print(f"{data['name']}: {len(Xtr)} training sequences of {steps} steps x {Xtr.shape[2]} pixels, "
          f"{len(Xte)} test; Adam 1e-3, batch 128, {data['epochs']} epochs")
    results = {"lstm": train(lstm(), data), "mlp": train(mlp(), data)}
    for key, r in results.items():
        print(f"  {key.upper()}: test accuracy {r['test_accuracy']:.2%}, {r['n_params']:,} parameters, "
              f"trained in {r['seconds']:.1f} s")

    probe = slice(0, min(1000, len(Xte)))
    per_row = fn.diagnostics.time_step_gradients(results["lstm"]["model"], Xte[probe], yte[probe])["layers.0"]
    print("trained LSTM, ‖∂L/∂h_t‖ per row t: " + " ".join(f"{v:.1e}" for v in per_row))

    fig = Figure(figsize=(11, 4.2), layout="constrained")
    ax = fig.add_subplot(1, 2, 1)
    epochs = np.arange(1, data["epochs"] + 1)
    for key, label in (("lstm", f"LSTM({UNITS}) over {steps} rows"), ("mlp", f"MLP {steps * steps}-{MLP_HIDDEN}-10")):
        r = results[key]
        ax.plot(epochs, r["curve"], "o-", markersize=3, label=f"{label}: {r['test_accuracy']:.1%} ({r['n_params']:,} params)")
    ax.set_xlabel("epoch")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_ylabel("test accuracy")
    ax.set_title(f"{data['name']}: test accuracy per epoch")
    ax.grid(True, alpha=0.3)
    ax.legend()
    ax = fig.add_subplot(1, 2, 2)
    ax.plot(np.arange(steps), per_row, "o-", markersize=3, color="C0")
    ax.set_yscale("log")
    ax.set_xlabel("row t (the step the LSTM reads it)")
    ax.set_ylabel("‖∂L/∂h_t‖ (log scale)")
    ax.set_title(f"trained LSTM: gradient per row ({probe.stop} test images)")
    ax.grid(True, which="both", alpha=0.3)
    path = fn.plot.save(fig, os.path.join(out_dir, "14_sequence_classification.png"))
    print(f"saved {path}")
    return {"dataset": data["name"], "epochs": data["epochs"], "steps": steps, "figures": [path],
            "lstm_row_grad_norms": per_row.tolist(),
            **{f"{key}_{what}": r[what] for key, r in results.items()
               for what in ("test_accuracy", "seconds", "n_params", "curve")}}


if __name__ == "__main__":
    from _gallery import gallery_cli

    gallery_cli(main, __doc__, f"a subset ({FAST_TRAIN} train, {FAST_TEST} test sequences, {FAST_EPOCHS} epochs)")
