"""Vanishing gradients: why deep sigmoid networks hardly learn and deep ReLU networks do.

Back-propagation computes the gradient of layer ``l`` by the chain rule, going
backwards from the loss: the error signal reaching layer ``l`` is the one at layer
``l + 1`` multiplied by that layer's weights and by the derivative of its
activation, ``δ_l = (δ_{l+1}·W_{l+1}ᵀ) ⊙ f'(z_l)``. Through ``L`` layers the signal
is multiplied ``L`` times. The sigmoid's derivative is at most 0.25 (at z = 0) and
smaller elsewhere, and with the usual (Xavier) weights the matrices do not make up
for it, so every sigmoid layer shrinks the gradient about four-fold or more: after
nine layers the first layer receives a gradient hundreds of thousands of times
smaller than the last (here about 400,000 times). Its weights barely move, and the
network learns almost nothing (Hochreiter 1991; Glorot & Bengio 2010).

ReLU's derivative is exactly 1 for every active unit, and He initialisation
(weights of variance 2 / fan_in) keeps the signal's size the same from layer to
layer, so the gradient norm stays of the same order through all ten layers.

Here two 10-layer networks (nine hidden layers of 32 units and an output layer, on
the 8x8 digits) differ only in the activation. We read each layer's gradient norm
after one training step at initialisation (``model.train_step``, then
``model._net.grads()``), then train both for a few epochs with a
``fn.diagnostics.GradientMonitor`` recording the gradients as they go.

Run: python examples/04_vanishing_gradients.py [--fast] [--out-dir DIR]
"""

from __future__ import annotations

import os

import numpy as np
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

import ferronn as fn

SEED = 0
DEPTH = 10      # weight layers: DEPTH - 1 hidden layers and the output layer
WIDTH = 32


def network(activation: str) -> fn.Sequential:
    layers = [fn.Dense(WIDTH, activation=activation) for _ in range(DEPTH - 1)] + [fn.Dense(10)]
    model = fn.Sequential(layers, seed=SEED)
    model.compile(optimizer=fn.optim.SGD(0.02, momentum=0.9), loss="cross_entropy", metrics=["accuracy"])
    model.build(64)
    return model


def layer_grad_norms(model: fn.Sequential) -> np.ndarray:
    """The L2 norm of each layer's gradient (weights and bias together) from the last step."""
    sums = np.zeros(DEPTH)
    for name, g in model._net.grads():  # ("layers.3.weight", array), ...
        sums[int(name.split(".")[1])] += float(np.sum(np.asarray(g, dtype=np.float64) ** 2))
    return np.sqrt(sums)


def main(fast: bool = False, out_dir: str = "examples/output") -> dict:
    X, y = fn.datasets.digits()
    rng = np.random.default_rng(SEED)
    batch = rng.choice(len(X), 256, replace=False)
    epochs = 5 if fast else 20

    norms, histories, monitors = {}, {}, {}
    for act in ("sigmoid", "relu"):
        model = network(act)
        model.train_step(X[batch], y[batch])          # one step at initialisation
        norms[act] = layer_grad_norms(model)
        monitors[act] = fn.diagnostics.GradientMonitor(every=10)
        monitors[act].batch_every = 10  # ask fit for a call every 10 batches (a Callback option)
        histories[act] = model.fit(X, y, epochs=epochs, batch_size=32, seed=SEED, verbose=0,
                                   callbacks=[monitors[act]]).history

    print(f"gradient norm per layer after one step at initialisation ({DEPTH} layers, digits, batch of 256):")
    print(f"  {'layer':>5} {'sigmoid':>10} {'relu':>10}")
    for i in range(DEPTH):
        print(f"  {i + 1:>5} {norms['sigmoid'][i]:>10.2e} {norms['relu'][i]:>10.2e}")
    s_first, s_last, r_first = norms["sigmoid"][0], norms["sigmoid"][-1], norms["relu"][0]
    print(f"sigmoid: first layer / last layer = {s_first / s_last:.1e}; "
          f"sigmoid first layer / ReLU first layer = {s_first / r_first:.1e}")
    for act, h in histories.items():
        print(f"after {epochs} epochs of SGD: {act:<7} loss {h['loss'][-1]:.3f}, accuracy {h['accuracy'][-1]:.1%}")

    layers_axis = np.arange(1, DEPTH + 1)
    fig = Figure(figsize=(11, 4.2), layout="constrained")
    ax = fig.add_subplot(1, 2, 1)
    ax.plot(layers_axis, norms["sigmoid"], "o-", label="sigmoid (Xavier init)")
    ax.plot(layers_axis, norms["relu"], "s-", label="ReLU (He init)")
    ax.set_yscale("log")
    ax.set_xticks(layers_axis)
    ax.set_xlabel("layer (1 = next to the input)")
    ax.set_ylabel("gradient L2 norm (log scale)")
    ax.set_title("gradient norm per layer at initialisation")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend()
    ax = fig.add_subplot(1, 2, 2)
    for act, h in histories.items():
        ax.plot(np.arange(1, epochs + 1), h["loss"], "o-" if epochs <= 20 else "-", markersize=3,
                label=f"{ {'sigmoid': 'sigmoid', 'relu': 'ReLU'}[act]}: {h['accuracy'][-1]:.0%} training accuracy")
    ax.set_xlabel("epoch")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_ylabel("training loss (cross-entropy)")
    ax.set_title(f"training the two {DEPTH}-layer networks")
    ax.grid(True, alpha=0.3)
    ax.legend()
    main_fig = fn.plot.save(fig, os.path.join(out_dir, "04_vanishing_gradients.png"))

    flow = fn.plot.gradient_flow(monitors["sigmoid"])
    flow.axes[0].set_title(f"{DEPTH}-layer sigmoid network: gradient norm per layer during training")
    flow_path = fn.plot.save(flow, os.path.join(out_dir, "04_gradient_flow_sigmoid.png"))
    print(f"saved {main_fig}\nsaved {flow_path}")
    return {"sigmoid_grad_norms": norms["sigmoid"].tolist(), "relu_grad_norms": norms["relu"].tolist(),
            "sigmoid_first": float(s_first), "sigmoid_last": float(s_last), "relu_first": float(r_first),
            "relu_last": float(norms["relu"][-1]),
            "final_loss": {a: float(h["loss"][-1]) for a, h in histories.items()},
            "final_accuracy": {a: float(h["accuracy"][-1]) for a, h in histories.items()},
            "figures": [main_fig, flow_path]}


if __name__ == "__main__":
    from _gallery import gallery_cli

    gallery_cli(main, __doc__, "a quicker run with fewer epochs")
