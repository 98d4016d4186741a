"""Softmax temperature: one set of scores, three different levels of confidence.

A classifier's last layer gives one raw score (a *logit*) per class. Softmax
turns the scores into probabilities that are positive and sum to 1:

    p_i = exp(z_i / T) / sum_j exp(z_j / T)

The temperature ``T`` divides every score before the exponential. It never
changes which class scores highest, only how sure the distribution is:

* ``T < 1`` stretches the gaps between the scores, so the top class takes
  almost all the probability (a sharper, more confident distribution);
* ``T = 1`` is plain softmax;
* ``T > 1`` shrinks the gaps, so the probability spreads over more classes
  (a flatter distribution). As ``T`` grows the distribution tends to uniform,
  and as ``T`` falls to 0 it tends to all the mass on the top class.

Entropy, ``H = -sum_i p_i log p_i``, measures that spread: 0 when one class has
all the probability, ``log(K)`` for a uniform distribution over ``K`` classes.
This script applies ``fn.functional.softmax(logits, temperature=T)`` to the
same logits at T = 0.5, 1 and 2, prints the probabilities and their entropy,
and draws them as bars (plus the entropy over a range of temperatures).
Temperature is how language models are made more or less adventurous when
sampling, and how knowledge distillation softens a teacher's outputs.

Run: python examples/08_softmax_temperature.py [--fast] [--out-dir DIR]
"""

from __future__ import annotations

import os

import numpy as np
from matplotlib.figure import Figure

import ferronn as fn

CLASSES = ("cat", "dog", "fox", "wolf", "bear", "owl")
LOGITS = np.array([3.0, 2.0, 1.0, 0.5, -0.5, -1.5], dtype=np.float32)
TEMPERATURES = (0.5, 1.0, 2.0)


def entropy(p: np.ndarray) -> float:
    """Shannon entropy in nats, ``-sum p log p`` (terms with p = 0 count as 0)."""
    p = np.asarray(p, dtype=np.float64)
    nz = p[p > 0]
    return float(-(nz * np.log(nz)).sum())


def figure(probs: dict[float, np.ndarray], sweep_t: np.ndarray, sweep_h: np.ndarray) -> Figure:
    fig = Figure(figsize=(12, 4.5), layout="constrained")
    ax, ax2 = fig.subplots(1, 2, width_ratios=(1.6, 1))
    k = len(CLASSES)
    width = 0.8 / len(probs)
    colors = ("tab:blue", "tab:orange", "tab:green")
    for i, (t, p) in enumerate(probs.items()):
        x = np.arange(k) + (i - (len(probs) - 1) / 2) * width
        ax.bar(x, p, width, color=colors[i], label=f"T = {t:g} (entropy {entropy(p):.2f} nats)")
    ax.set_xticks(np.arange(k), [f"{c}\nlogit {z:+.1f}" for c, z in zip(CLASSES, LOGITS)])
    ax.set_xlabel("class (and its logit)")
    ax.set_ylabel("probability")
    ax.set_ylim(0, 1)
    ax.set_title("softmax(logits / T): the same logits at three temperatures")
    ax.legend()
    ax2.plot(sweep_t, sweep_h, color="black")
    ax2.axhline(np.log(k), color="grey", linestyle="--", label=f"uniform: log {k} = {np.log(k):.2f}")
    for i, t in enumerate(probs):
        ax2.plot([t], [entropy(probs[t])], "o", color=colors[i], markersize=8, label=f"T = {t:g}")
    ax2.set_xscale("log")
    ax2.set_xlabel("temperature T (log scale)")
    ax2.set_ylabel("entropy (nats)")
    ax2.set_ylim(0, np.log(k) * 1.1)
    ax2.set_title("entropy rises with the temperature")
    ax2.legend(loc="lower right")
    return fig


def main(fast: bool = False, out_dir: str = "examples/output") -> dict:
    """Prints and plots softmax(LOGITS / T) for T = 0.5, 1, 2; returns the
    probabilities and entropies (``fast`` changes nothing here: it is instant)."""
    probs = {t: fn.functional.softmax(LOGITS, temperature=t) for t in TEMPERATURES}
    entropies = [entropy(p) for p in probs.values()]
    print("logits      " + "  ".join(f"{c:>6}" for c in CLASSES) + "   entropy (nats)")
    print("            " + "  ".join(f"{z:6.2f}" for z in LOGITS))
    for t, p in probs.items():
        print(f"T = {t:<4g}    " + "  ".join(f"{v:6.3f}" for v in p) + f"   {entropy(p):.3f}")
    print(f"uniform over {len(CLASSES)} classes: entropy log {len(CLASSES)} = {np.log(len(CLASSES)):.3f}")
    print("the top class is the same at every temperature:",
          {t: CLASSES[int(np.argmax(p))] for t, p in probs.items()})
    sweep_t = np.geomspace(0.05, 50.0, 200)
    sweep_h = np.array([entropy(fn.functional.softmax(LOGITS, temperature=float(t))) for t in sweep_t])
    path = fn.plot.save(figure(probs, sweep_t, sweep_h), os.path.join(out_dir, "08_softmax_temperature.png"))
    print(f"saved {path}")
    return {"temperatures": list(TEMPERATURES), "entropies": entropies,
            "probabilities": {t: p.tolist() for t, p in probs.items()},
            "top_class": [int(np.argmax(p)) for p in probs.values()], "figures": [path]}


if __name__ == "__main__":
    from _gallery import gallery_cli

    gallery_cli(main, __doc__, "a quick run (the same here: it takes no time)")
