"""ferronn against PyTorch on modern MLP architectures, in one process.

    python benches/compare_layers.py [--threads 2] [--quick]

Same protocol as benches/compare.py (same threads, same data, interleaved timed
runs on an idle machine, medians): training throughput (samples/s) of

  * a SwiGLU MLP: 784 → SwiGLU(256) → SwiGLU(128) → Dense(10);
  * a BatchNorm MLP: 784 → Dense(256) → BatchNorm → ReLU → Dense(128) → BatchNorm → ReLU → Dense(10);
  * a residual MLP: 784 → Dense(256) → 2 × Residual([LayerNorm, Dense(256, relu), Dense(256)]) → Dense(10);

each with Adam(1e-3) and cross-entropy, ferronn's ``fit`` against an idiomatic
PyTorch loop over the same model.
"""

from __future__ import annotations

import os
import statistics
import sys
from typing import Any

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import compare as cmp  # noqa: E402

import ferronn as fn  # noqa: E402

torch = cmp.torch
N_FEATURES, N_CLASSES = cmp.N_FEATURES, cmp.N_CLASSES


def ferronn_model(kind: str) -> fn.Sequential:
    if kind == "swiglu":
        layers = [fn.SwiGLU(256), fn.SwiGLU(128), fn.Dense(10)]
    elif kind == "batchnorm":
        layers = [fn.Dense(256), fn.BatchNorm(), fn.ReLU(), fn.Dense(128), fn.BatchNorm(), fn.ReLU(), fn.Dense(10)]
    else:
        block = [fn.LayerNorm(), fn.Dense(256, activation="relu"), fn.Dense(256)]
        layers = [fn.Dense(256), fn.Residual(list(block)), fn.Residual([fn.LayerNorm(), fn.Dense(256, activation="relu"),
                                                                         fn.Dense(256)]), fn.Dense(10)]
    model = fn.Sequential(layers)
    model.compile(optimizer=fn.optim.Adam(1e-3), loss="cross_entropy")
    model.build(N_FEATURES, seed=0)
    return model


def torch_model(kind: str) -> Any:
    nn = torch.nn
    torch.manual_seed(0)

    class SwiGLU(nn.Module):
        def __init__(self, d: int, units: int) -> None:
            super().__init__()
            self.proj = nn.Linear(d, 2 * units)  # gate and value in one GEMM, as ferronn

        def forward(self, x):
            gate, value = self.proj(x).chunk(2, dim=-1)
            return torch.nn.functional.silu(gate) * value

    class Residual(nn.Module):
        def __init__(self, *block) -> None:
            super().__init__()
            self.block = nn.Sequential(*block)

        def forward(self, x):
            return x + self.block(x)

    if kind == "swiglu":
        return nn.Sequential(SwiGLU(784, 256), SwiGLU(256, 128), nn.Linear(128, 10))
    if kind == "batchnorm":
        return nn.Sequential(nn.Linear(784, 256), nn.BatchNorm1d(256), nn.ReLU(), nn.Linear(256, 128),
                             nn.BatchNorm1d(128), nn.ReLU(), nn.Linear(128, 10))
    return nn.Sequential(nn.Linear(784, 256),
                         *[Residual(nn.LayerNorm(256), nn.Linear(256, 256), nn.ReLU(), nn.Linear(256, 256)) for _ in range(2)],
                         nn.Linear(256, 10))


def bench(X: np.ndarray, y: np.ndarray, reps: int, warmup: int, batch_sizes: list[int]) -> None:
    n = len(X)
    rows = []
    for kind in ("swiglu", "batchnorm", "residual"):
        for bs in batch_sizes:
            model = ferronn_model(kind)
            ferronn_fit = cmp.timed_fit_epoch(model, X, y, bs)

            torch_epoch = None
            if torch is not None:
                torch_epoch = cmp.torch_adam_epoch(torch_model(kind), torch.from_numpy(X), torch.from_numpy(y), bs)

            times = cmp.interleaved({"fit": ferronn_fit, "torch": torch_epoch}, reps, warmup)
            med = {k: n / statistics.median(v) for k, v in times.items()}
            pairs = sorted(t / f for f, t in zip(times["fit"], times.get("torch", [])))
            spread = f"{pairs[0]:.2f}-{pairs[-1]:.2f}" if pairs else "n/a"
            rows.append((f"{kind} b={bs} ({model.n_params:,} params)", cmp.fmt(med["fit"]), cmp.fmt(med.get("torch")),
                         cmp.ratio(med["fit"], med.get("torch")), spread))
    cmp.print_table(f"training throughput, samples/s (median of {reps}, {n} samples/epoch, Adam 1e-3, cross-entropy)",
                    ("case", "ferronn fit", "torch", "ferronn/torch", "per-round range"), rows)


def main() -> None:
    p = cmp.model_bench_parser(__doc__.splitlines()[0], 8192, [128])
    args = p.parse_args()
    limiter, reps, warmup, n = cmp.start_model_bench(args, 7, 2048)  # noqa: F841 (limiter kept alive)
    rng = np.random.default_rng(0)
    X = rng.standard_normal((n, N_FEATURES), dtype=np.float32)
    y = rng.integers(0, N_CLASSES, size=n, dtype=np.int64)
    bench(X, y, reps, warmup, args.batch_sizes)
    print(f"timed runs: {cmp.QUIET['runs']}; redone: {cmp.QUIET['redone']}; still disturbed: {cmp.QUIET['contaminated']}")
    if args.quick:
        print("(--quick: too few repetitions to quote these numbers)")


if __name__ == "__main__":
    main()
