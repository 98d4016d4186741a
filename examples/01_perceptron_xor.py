"""A single neuron draws one straight line; XOR needs two.

Rosenblatt's perceptron (1958) is one neuron with a step activation: it computes
``w·x + b`` and answers 1 when that is positive, 0 otherwise. The points where
``w·x + b = 0`` form a straight line (a hyperplane in more dimensions), so a
perceptron can only separate classes that some straight line separates: the data
must be *linearly separable*. Its learning rule nudges ``w`` towards every
misclassified sample, and the convergence theorem guarantees it stops making
mistakes after finitely many updates whenever such a line exists.

The inputs are coded -1 (false) and +1 (true), as in many perceptron texts (with
0/1 inputs the learned lines tend to pass exactly through a corner, which is
harder to see). AND and OR are linearly separable: a line cuts off the corner
(+1, +1), or the corner (-1, -1). XOR (true when exactly one input is true) is
not: its two positive points sit on one diagonal of the square and its negative
points on the other, and no line puts the two diagonals on different sides; the
best a line can do is 3 of the 4 points. The perceptron then never finishes an
epoch without a mistake, its line cycling from one wrong position to the next;
``fn.Perceptron`` stops at ``max_epochs`` and warns (``ConvergenceWarning``).
Minsky and Papert's 1969 book *Perceptrons* made this limitation famous.

A hidden layer removes it. Two layers of neurons with a non-linear activation
(``tanh`` here) first map the four points to a new space (each hidden unit is a
line of its own) where one more line separates them, so the network's boundary in
the input space is curved. Trained by back-propagation, a 2-4-1 network gets all
four XOR points right.

Run: python examples/01_perceptron_xor.py [--fast] [--out-dir DIR]
"""

from __future__ import annotations

import os
import warnings

import numpy as np
from matplotlib.figure import Figure

import ferronn as fn

SEED = 0


def truth_table(name: str) -> tuple[np.ndarray, np.ndarray]:
    """The four input pairs, coded -1 (false) / +1 (true), and the gate's output as a 0/1 label."""
    bits = np.array([[0, 0], [0, 1], [1, 0], [1, 1]])
    a, b = bits[:, 0], bits[:, 1]
    y = {"AND": a & b, "OR": a | b, "XOR": a ^ b}[name]
    return (2 * bits - 1).astype(np.float32), y.astype(np.int64)


def main(fast: bool = False, out_dir: str = "examples/output") -> dict:
    results: dict = {"perceptron": {}}

    # 1. The perceptron on AND, OR and XOR.
    perceptrons = {}
    for gate in ("AND", "OR", "XOR"):
        X, y = truth_table(gate)
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            clf = fn.Perceptron(max_epochs=100).fit(X, y)
        warned = any(issubclass(w.category, fn.perceptron.ConvergenceWarning) for w in caught)
        acc = clf.score(X, y)
        perceptrons[gate] = clf
        results["perceptron"][gate] = {"converged": bool(clf.converged_), "accuracy": acc,
                                       "epochs": clf.n_epochs_, "updates": clf.n_updates_, "warned": warned}
        status = (f"converged after {clf.n_epochs_} epochs ({clf.n_updates_} updates)" if clf.converged_ else
                  f"did NOT converge in {clf.n_epochs_} epochs ({clf.mistakes_[-1]} mistakes in the last one; "
                  f"ConvergenceWarning: {warned})")
        print(f"perceptron on {gate:<3}: {status}; predictions {clf.predict(X).tolist()} "
              f"for targets {y.tolist()}, accuracy {acc:.0%}")

    # 2. A two-layer network on XOR.
    X, y = truth_table("XOR")
    mlp = fn.Sequential([fn.Dense(4, activation="tanh"), fn.Dense(1)], seed=SEED)
    mlp.compile(optimizer=fn.optim.Adam(0.05), loss="binary_cross_entropy", metrics=["accuracy"])
    epochs = 300 if fast else 500
    history = mlp.fit(X, y.astype(np.float32), epochs=epochs, batch_size=4, seed=SEED, verbose=0)
    mlp_acc = float(np.mean(mlp.predict(X) == y))
    results["mlp"] = {"accuracy": mlp_acc, "final_loss": float(history.history["loss"][-1]), "epochs": epochs}
    print(f"2-4-1 tanh network on XOR: predictions {mlp.predict(X).tolist()} for targets {y.tolist()}, "
          f"accuracy {mlp_acc:.0%} (loss {history.history['loss'][-1]:.4f} after {epochs} epochs)")

    # 3. The figure: the perceptron's line on AND (works) and XOR (fails), the network's curved regions.
    res = 120 if fast else 300
    fig = Figure(figsize=(13.5, 4.3), layout="constrained")
    panels = [
        (perceptrons["AND"], "AND", f"perceptron on AND: {results['perceptron']['AND']['accuracy']:.0%} "
                                    "(a line works)"),
        (perceptrons["XOR"], "XOR", f"perceptron on XOR: {results['perceptron']['XOR']['accuracy']:.0%} "
                                    "(no line works)"),
        (mlp, "XOR", f"2-4-1 tanh network on XOR: {mlp_acc:.0%}"),
    ]
    for i, (model, gate, title) in enumerate(panels):
        ax = fig.add_subplot(1, 3, i + 1)
        Xg, yg = truth_table(gate)
        fn.plot.decision_boundary(model, Xg, yg, ax=ax, resolution=res, title=title)
    path = fn.plot.save(fig, os.path.join(out_dir, "01_perceptron_xor.png"))
    results["figures"] = [path]
    print(f"saved {path}")
    return results


if __name__ == "__main__":
    from _gallery import gallery_cli

    gallery_cli(main, __doc__, "a quicker run with fewer epochs")
