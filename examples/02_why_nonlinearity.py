"""Why neural networks need non-linear activations.

A Dense layer without an activation computes ``h = x·W + b``, an *affine* map.
Stacking such layers gains nothing: ``(x·W1 + b1)·W2 + b2 = x·(W1·W2) + (b1·W2 + b2)``
is again one affine map, so a "deep" linear network of any depth computes exactly
what a single layer with the matrix ``W = W1·W2···Wn`` and the bias
``b = (((b1·W2 + b2)·W3 + b3)···)·Wn + bn`` computes. Here we train a 2-32-32-32-2
linear network, multiply its four weight matrices together, and check that
``x·W + b`` reproduces the network's outputs to float32 rounding. As a classifier
it can therefore only draw one straight line through the plane, and on two
interleaved spirals (``fn.datasets.spirals``) it stays near chance (50%):
no straight line does better than about 65% here (the example checks every
direction), and the trained linear network lands close to that best line.

Put a non-linear function between the layers (ReLU: ``max(0, z)``) and the
composition no longer collapses: each ReLU unit folds the space along a line, and
a few dozen folds, combined by the next layers, bend the decision boundary around
the spirals. The same architecture with ReLU activations fits them almost
perfectly.

Run: python examples/02_why_nonlinearity.py [--fast] [--out-dir DIR]
"""

from __future__ import annotations

import os

import numpy as np
from matplotlib.figure import Figure

import ferronn as fn

SEED = 0
WIDTH = 32


def network(activation, seed: int) -> fn.Sequential:
    hidden = [fn.Dense(WIDTH, activation=activation) for _ in range(3)]
    model = fn.Sequential([*hidden, fn.Dense(2)], seed=seed)
    model.compile(optimizer=fn.optim.Adam(0.01), loss="cross_entropy", metrics=["accuracy"])
    return model


def collapse(model: fn.Sequential) -> tuple[np.ndarray, np.ndarray]:
    """The one matrix W and bias b that a stack of linear Dense layers amounts to (float64)."""
    weights = model.get_weights()  # kernel, bias, kernel, bias, ...
    W = np.eye(model.input_dim)
    b = np.zeros(model.input_dim)
    for kernel, bias in zip(weights[0::2], weights[1::2]):
        W = W @ kernel.astype(np.float64)
        b = b @ kernel.astype(np.float64) + bias.astype(np.float64)
    return W, b


def best_line_accuracy(X: np.ndarray, y: np.ndarray, directions: int = 720) -> float:
    """The best training accuracy any straight line reaches on 2-D two-class data (brute force
    over ``directions`` normal directions and every threshold between the projected points)."""
    best = 0.0
    n = len(y)
    for angle in np.linspace(0.0, 2 * np.pi, directions, endpoint=False):
        order = np.argsort(X @ np.array([np.cos(angle), np.sin(angle)]))
        ys = y[order]
        # threshold after the k-th point: class 0 below, class 1 above
        zeros_below = np.concatenate([[0], np.cumsum(ys == 0)])
        ones_above = np.concatenate([[0], np.cumsum((ys == 1)[::-1])])[::-1]
        best = max(best, float(np.max(zeros_below + ones_above)) / n)
    return best


def main(fast: bool = False, out_dir: str = "examples/output") -> dict:
    X, y = fn.datasets.spirals(n=200, noise=0.05, seed=SEED)
    epochs = 120 if fast else 400

    linear = network(None, SEED)
    linear.fit(X, y, epochs=epochs, batch_size=32, seed=SEED, verbose=0)
    relu = network("relu", SEED)
    relu.fit(X, y, epochs=epochs, batch_size=32, seed=SEED, verbose=0)

    W, b = collapse(linear)
    outputs = linear.predict_raw(X).astype(np.float64)
    one_layer = X.astype(np.float64) @ W + b
    max_diff = float(np.max(np.abs(outputs - one_layer)))
    rel_diff = max_diff / float(np.max(np.abs(outputs)))
    linear_acc = float(np.mean(linear.predict(X) == y))
    relu_acc = float(np.mean(relu.predict(X) == y))

    print(f"deep linear network 2-{WIDTH}-{WIDTH}-{WIDTH}-2: {linear.n_params} parameters, "
          f"equivalent to one 2x2 matrix plus a bias:")
    print(f"  W = W1·W2·W3·W4 = {np.array2string(W, precision=4, suppress_small=True).replace(chr(10), '')}")
    print(f"  max |predict_raw(X) - (X·W + b)| = {max_diff:.2e} "
          f"({rel_diff:.1e} of the largest output: float32 rounding)")
    best_line = best_line_accuracy(X.astype(np.float64), y)
    print(f"  accuracy on the spirals: {linear_acc:.1%} (chance is 50%; the best possible straight line: "
          f"{best_line:.1%})")
    print(f"ReLU network, same architecture and seed: accuracy {relu_acc:.1%}")

    res = 120 if fast else 250
    fig = Figure(figsize=(10.5, 4.6), layout="constrained")
    ax = fig.add_subplot(1, 2, 1)
    fn.plot.decision_boundary(linear, X, y, ax=ax, resolution=res,
                              title=f"3 hidden layers, no activation: {linear_acc:.0%}")
    ax = fig.add_subplot(1, 2, 2)
    fn.plot.decision_boundary(relu, X, y, ax=ax, resolution=res,
                              title=f"3 hidden layers, ReLU: {relu_acc:.0%}")
    path = fn.plot.save(fig, os.path.join(out_dir, "02_why_nonlinearity.png"))
    print(f"saved {path}")
    return {"linear_accuracy": linear_acc, "relu_accuracy": relu_acc, "best_line_accuracy": best_line,
            "max_abs_diff": max_diff, "rel_diff": rel_diff, "collapsed_matrix": W, "collapsed_bias": b, "epochs": epochs,
            "figures": [path]}


if __name__ == "__main__":
    from _gallery import gallery_cli

    gallery_cli(main, __doc__, "a quicker run with fewer epochs")
