"""Universal approximation: one hidden layer can fit any curve, given enough units.

The universal approximation theorem (Cybenko 1989, Hornik 1991; for ReLU,
Leshno et al. 1993) says that a network with a *single* hidden layer can
approximate any continuous function on a bounded interval as closely as you
like, if the layer is wide enough. With ReLU units the reason is easy to see:

    f(x) = c + sum_k a_k · relu(w_k·x + b_k)

is a *piecewise-linear* curve. Each unit adds one kink, at ``x = -b_k / w_k``,
where the slope changes by ``a_k·|w_k|``. With ``n`` units the network can draw
a broken line of up to ``n + 1`` straight pieces, and any continuous curve
can be followed by a broken line with enough pieces. (A jump, as in a step
function, is not continuous; it is approached by a steep ramp made of two
kinks close together.)

Part 1 fits two targets on x in [-2π, 2π] (512 evenly spaced points, mean
squared error loss, Adam) with 2, 8, 32 and 128 hidden ReLU units:

* ``sin(x)``, two full periods;
* a step, 0 for x < 0 and 1 for x > 0.

The error (mean squared error on 2001 points of the interval) falls as the
width grows. For sin(x) it falls by four orders of magnitude from 2 to 128
units. For the step it drops from 2 to 8 units and then levels off: what is
left is the jump itself, drawn as a steep ramp whose steepness is set by how
large the weights grow during training rather than by the number of units.
Two practical details: the input is scaled to [-2, 2] (x/π), and the biases
start uniform in [-2, 2], so that the kinks start spread over the interval
rather than all at x = 0.

Part 2 asks whether depth or width is the better use of a fixed budget of
about 400 parameters, on a harder target, ``sin(3x)`` on [-2π, 2π] (six
periods): 1 hidden layer of 133 units against 2, 3 or 4 layers of 18, 13 or
11 units. Each extra layer can fold the pieces made by the previous one, so
the number of linear pieces can grow exponentially with depth but only
linearly with width (Telgarsky 2016; Montúfar et al. 2014). Here the deeper
networks reach a smaller error than the single wide layer after the same
training (median over five seeds): about 2 times smaller with two layers,
about 10 times with three or four. Note what this does and
does not show: 133 kinks are in principle plenty for six periods, and the
wide layer keeps improving if trained longer; what depth bought here is a
better fit for the same parameters and the same training. Depth also makes
training less predictable: now and then a seed gets stuck (the dots in the
figure). The theorem promises that a wide enough layer exists, not that it
is the cheapest or the easiest to train.

Run: python examples/10_universal_approximation.py [--fast] [--out-dir DIR]
"""

from __future__ import annotations

import os

import numpy as np
from matplotlib.figure import Figure

import ferronn as fn

WIDTHS = (2, 8, 32, 128)
DEPTHS = (1, 2, 3, 4)
BUDGET = 400
LIMIT = 2 * np.pi
TARGETS = {
    "sin(x)": lambda x: np.sin(x),
    "step": lambda x: (x > 0).astype(np.float32),
}
DEEP_TARGET = ("sin(3x)", lambda x: np.sin(3 * x))
X_TRAIN = np.linspace(-LIMIT, LIMIT, 512, dtype=np.float32)[:, None]
X_TEST = np.linspace(-LIMIT, LIMIT, 2001, dtype=np.float32)[:, None]
WIDTH_COLORS = ("tab:red", "tab:orange", "tab:green", "tab:blue")


def scale(x: np.ndarray) -> np.ndarray:
    """The network's input: x / π, in [-2, 2]."""
    return (x / np.pi).astype(np.float32)


def mlp_params(hidden: tuple[int, ...]) -> int:
    """Parameters of 1 -> hidden... -> 1 with biases."""
    sizes = (1, *hidden, 1)
    return sum(a * b + b for a, b in zip(sizes[:-1], sizes[1:]))


def width_for_budget(depth: int, budget: int = BUDGET) -> int:
    """The layer width that brings a ``depth``-layer network closest to ``budget`` parameters."""
    return min(range(1, budget), key=lambda w: abs(mlp_params((w,) * depth) - budget))


def fit(hidden: tuple[int, ...], target, epochs: int, seed: int) -> tuple[fn.Sequential, float]:
    """Trains 1 -> hidden -> 1 (ReLU) on ``target``; returns the model and its test MSE."""
    spread = {"name": "uniform", "low": -2.0, "high": 2.0}  # kinks spread over the scaled inputs
    model = fn.Sequential([fn.Dense(h, activation="relu", bias_initializer=spread) for h in hidden] + [fn.Dense(1)])
    lr = fn.schedules.CosineAnnealing(1e-2, T_max=epochs, eta_min=1e-4)
    model.compile(optimizer=fn.optim.Adam(lr), loss="mse")
    model.fit(scale(X_TRAIN), target(X_TRAIN), epochs=epochs, batch_size=64, seed=seed, verbose=0)
    error = float(np.mean((model.predict(scale(X_TEST)) - target(X_TEST)) ** 2))
    return model, error


def width_figure(fits: dict, errors: dict) -> Figure:
    fig = Figure(figsize=(15, 4.4), layout="constrained")
    axes = fig.subplots(1, 3)
    x = X_TEST.ravel()
    for ax, (name, target) in zip(axes, TARGETS.items()):
        ax.plot(x, target(X_TEST).ravel(), color="black", linewidth=3, alpha=0.35, label="target")
        for color, w in zip(WIDTH_COLORS, WIDTHS):
            ax.plot(x, fits[name][w], color=color, linewidth=1.4,
                    label=f"{w} units (MSE {errors[name][w]:.1e})")
        ax.set_xlabel("x")
        ax.set_ylabel("f(x)")
        ax.set_title(f"one hidden ReLU layer fitting {name}")
        ax.set_xticks(np.arange(-2, 3) * np.pi, ["-2π", "-π", "0", "π", "2π"])
        ax.grid(True, alpha=0.3)
        if name == "step":
            ax.legend(fontsize="small", loc="lower right")
        else:
            ax.set_ylim(-2.0, 1.45)
            ax.legend(fontsize="small", loc="lower center", ncols=2)
    ax = axes[2]
    for name, marker in zip(TARGETS, ("o", "s")):
        ax.plot(WIDTHS, [errors[name][w] for w in WIDTHS], marker=marker, label=name)
    ax.set_xscale("log", base=2)
    ax.set_yscale("log")
    ax.set_xticks(WIDTHS, [str(w) for w in WIDTHS])
    ax.set_xlabel("hidden units (one layer)")
    ax.set_ylabel("mean squared error on the interval (log scale)")
    ax.set_title("the error falls as the layer widens")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend()
    return fig


def depth_figure(deep: dict) -> Figure:
    fig = Figure(figsize=(14, 4.6), layout="constrained")
    ax_fit, ax_err = fig.subplots(1, 2, width_ratios=(1.7, 1))
    name, target = DEEP_TARGET
    x = X_TEST.ravel()
    ax_fit.plot(x, target(X_TEST).ravel(), color="black", linewidth=3, alpha=0.35, label="target")
    colors = ("tab:red", "tab:orange", "tab:green", "tab:blue")
    for color, (depth, r) in zip(colors, deep.items()):
        ax_fit.plot(x, r["fit"], color=color, linewidth=1.3,
                    label=f"{depth} × {r['width']}: MSE {r['errors'][0]:.1e}")
    ax_fit.set_xticks(np.arange(-2, 3) * np.pi, ["-2π", "-π", "0", "π", "2π"])
    ax_fit.set_xlabel("x")
    ax_fit.set_ylabel("f(x)")
    ax_fit.set_ylim(-1.5, 2.1)
    ax_fit.set_title(f"{name} with about {BUDGET} parameters: layers × units (first seed's fit)")
    ax_fit.grid(True, alpha=0.3)
    ax_fit.legend(fontsize="small", loc="upper center", ncols=5, columnspacing=1.0)
    depths = list(deep)
    ax_err.bar(depths, [deep[d]["median"] for d in depths], color=colors[:len(depths)], alpha=0.7,
               label="median over seeds")
    for d in depths:
        ax_err.plot([d] * len(deep[d]["errors"]), deep[d]["errors"], "k.", markersize=7,
                    label="one seed" if d == depths[0] else None)
    ax_err.set_yscale("log")
    ax_err.set_xticks(depths, [deep[d]["label"].replace(" (", "\n(") for d in depths], fontsize="small")
    ax_err.set_xlabel("hidden layers × units (parameters)")
    ax_err.set_ylabel("mean squared error (log scale)")
    ax_err.set_title("depth vs width at a fixed budget")
    ax_err.grid(True, axis="y", which="both", alpha=0.3)
    ax_err.legend(fontsize="small")
    return fig


def main(fast: bool = False, out_dir: str = "examples/output") -> dict:
    """Fits the targets with growing width, then compares depths at a fixed budget."""
    epochs, seeds = (600, (0,)) if fast else (2000, (0, 1, 2, 3, 4))
    print(f"x in [-2π, 2π], 512 training points, {epochs} epochs of Adam; "
          f"errors are test MSEs, the median over seeds {list(seeds)}")

    print("\npart 1: one hidden ReLU layer of growing width")
    fits: dict = {name: {} for name in TARGETS}
    errors: dict = {name: {} for name in TARGETS}
    for name, target in TARGETS.items():
        for w in WIDTHS:
            runs = [fit((w,), target, epochs, s) for s in seeds]
            errors[name][w] = float(np.median([e for _, e in runs]))
            fits[name][w] = runs[0][0].predict(scale(X_TEST)).ravel()
    print(f"{'units':>7}{'params':>8}" + "".join(f"{name + ' MSE':>14}" for name in TARGETS))
    for w in WIDTHS:
        print(f"{w:>7}{mlp_params((w,)):>8}" + "".join(f"{errors[name][w]:>14.2e}" for name in TARGETS))
    falls = {name: all(a > b for a, b in zip(
        [errors[name][w] for w in WIDTHS], [errors[name][w] for w in WIDTHS[1:]])) for name in TARGETS}
    print("the error falls at every widening:", falls)

    name, target = DEEP_TARGET
    print(f"\npart 2: {name} with about {BUDGET} parameters")
    deep: dict = {}
    for depth in DEPTHS:
        width = width_for_budget(depth)
        runs = [fit((width,) * depth, target, epochs, s) for s in seeds]
        n_params = runs[0][0].n_params
        deep[depth] = {"width": width, "n_params": n_params, "errors": [e for _, e in runs],
                       "median": float(np.median([e for _, e in runs])),
                       "fit": runs[0][0].predict(scale(X_TEST)).ravel(),
                       "label": f"{depth} × {width} ({n_params} params)"}
    print(f"{'layers':>7}{'width':>7}{'params':>8}{'MSE (median)':>14}   per seed")
    for depth, r in deep.items():
        print(f"{depth:>7}{r['width']:>7}{r['n_params']:>8}{r['median']:>14.2e}   "
              + ", ".join(f"{e:.2e}" for e in r["errors"]))

    paths = [fn.plot.save(width_figure(fits, errors), os.path.join(out_dir, "10_width.png")),
             fn.plot.save(depth_figure(deep), os.path.join(out_dir, "10_depth_vs_width.png"))]
    for p in paths:
        print(f"saved {p}")
    return {"widths": list(WIDTHS), "errors": {n: [errors[n][w] for w in WIDTHS] for n in TARGETS},
            "error_falls": falls,
            "depth": {d: {"width": r["width"], "n_params": r["n_params"], "error": r["median"]}
                      for d, r in deep.items()},
            "figures": paths}


if __name__ == "__main__":
    from _gallery import gallery_cli

    gallery_cli(main, __doc__, "fewer epochs and one seed (a few seconds)")
