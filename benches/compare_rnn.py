"""ferronn's recurrent layers against PyTorch's nn.RNN / nn.LSTM / nn.GRU, in one process.

    python benches/compare_rnn.py [--threads 2] [--quick] [--batch-sizes 128 32] [--steps 28 100]
        [--kinds gru lstm rnn] [--repeat 5]

Same protocol as benches/compare.py (same threads, same data, interleaved timed
runs on an idle machine, medians): training throughput (samples/s) of
``layer(128) → Dense(10)`` on sequences of T steps of 28 features, Adam(1e-3),
cross-entropy; ferronn's ``fit`` against an idiomatic PyTorch loop over
``nn.<RNN>(28, 128, batch_first=True)`` + ``nn.Linear(128, 10)`` on the last step.
GFLOP/s count the multiply-adds × 2 of the forward and backward GEMMs: the forward
2·N·T·G·H·(F + H), the same again for the weight gradients and 2·N·T·G·H·H for the state
gradients (the input gradient of the recurrent layer, the model's first, is computed by
neither library), plus three times the Dense's 2·N·H·C; the same count for both libraries.
With ``--repeat N`` the whole comparison runs N times in this process and a last table gives
each case's N ratios with their median, minimum and maximum: one run's ratio moves by ±10%
or more on a shared machine, so a target near a ratio needs several.
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
F, H, C = 28, 128, 10
KINDS = {"lstm": (fn.LSTM, 4), "gru": (fn.GRU, 3), "rnn": (fn.SimpleRNN, 1)}


def ferronn_model(kind: str, steps: int) -> fn.Sequential:
    model = fn.Sequential([KINDS[kind][0](H), fn.Dense(C)], input_shape=(steps, F), seed=0)
    model.compile(optimizer=fn.optim.Adam(1e-3), loss="cross_entropy")
    return model


def torch_model(kind: str) -> Any:
    nn = torch.nn
    torch.manual_seed(0)
    cls = {"lstm": nn.LSTM, "gru": nn.GRU, "rnn": nn.RNN}[kind]

    class Last(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.rnn = cls(F, H, batch_first=True)
            self.out = nn.Linear(H, C)

        def forward(self, x):
            y, _ = self.rnn(x)
            return self.out(y[:, -1])

    return Last()


def flops(kind: str, n: int, steps: int) -> float:
    g = KINDS[kind][1]
    return 2.0 * n * steps * g * H * (2 * F + 3 * H) + 3.0 * 2.0 * n * H * C


def bench(reps: int, warmup: int, n: int, batch_sizes: list[int], steps_list: list[int], kinds: list[str]) -> dict[str, float]:
    """One interleaved comparison of every case; prints its table and returns ferronn / PyTorch
    per case (empty without PyTorch)."""
    rows, ratios = [], {}
    for steps in steps_list:
        rng = np.random.default_rng(0)
        X = rng.standard_normal((n, steps, F), dtype=np.float32)
        y = rng.integers(0, C, size=n, dtype=np.int64)
        for kind in kinds:
            for bs in batch_sizes:
                case = f"{kind} T={steps} b={bs}"
                model = ferronn_model(kind, steps)
                ferronn_fit = cmp.timed_fit_epoch(model, X, y, bs)
                torch_epoch = None
                if torch is not None:
                    torch_epoch = cmp.torch_adam_epoch(torch_model(kind), torch.from_numpy(X), torch.from_numpy(y), bs)
                times = cmp.interleaved({"fit": ferronn_fit, "torch": torch_epoch}, reps, warmup)
                med = {k: n / statistics.median(v) for k, v in times.items()}
                if med.get("torch"):
                    ratios[case] = med["fit"] / med["torch"]
                gf = {k: flops(kind, n, steps) / statistics.median(v) / 1e9 for k, v in times.items()}
                rows.append((case, cmp.fmt(med["fit"]), cmp.fmt(med.get("torch")),
                             cmp.ratio(med["fit"], med.get("torch")), cmp.fmt(gf["fit"], ".1f"),
                             cmp.fmt(gf.get("torch"), ".1f")))
                print("  ".join(rows[-1]), flush=True)  # as it goes: a long run shows what it has
    cmp.print_table(f"training throughput, samples/s (median of {reps}, {n} samples/epoch, F={F}, units={H}, "
                    "Adam 1e-3, cross-entropy)",
                    ("case", "ferronn fit", "torch", "ferronn/torch", "ferronn GFLOP/s", "torch GFLOP/s"), rows)
    return ratios


def print_repeats(runs: list[dict[str, float]]) -> None:
    """Each case's ferronn / PyTorch ratio over the repeated comparisons."""
    rows = []
    for case in runs[0]:
        r = [run[case] for run in runs]
        rows.append((case, " ".join(f"{x:.2f}" for x in r), f"{statistics.median(r):.2f}x", f"{min(r):.2f}x", f"{max(r):.2f}x"))
    cmp.print_table(f"ferronn / torch over {len(runs)} repeats", ("case", "ratios", "median", "min", "max"), rows)


def main() -> None:
    p = cmp.model_bench_parser(__doc__.splitlines()[0], 4096, [128])
    p.add_argument("--steps", type=int, nargs="+", default=[28], help="sequence lengths T (default 28)")
    p.add_argument("--kinds", nargs="+", choices=list(KINDS), default=list(KINDS), help="layers to compare (default all)")
    p.add_argument("--repeat", type=int, default=1, help="run the whole comparison this many times (default 1)")
    args = p.parse_args()
    if args.repeat < 1:
        p.error("--repeat must be at least 1")
    limiter, reps, warmup, n = cmp.start_model_bench(args, 5, 1024)  # noqa: F841 (limiter kept alive)
    runs = [bench(reps, warmup, n, args.batch_sizes, args.steps, args.kinds) for _ in range(args.repeat)]
    if args.repeat > 1 and runs[0]:
        print_repeats(runs)
    print(f"timed runs: {cmp.QUIET['runs']}; redone: {cmp.QUIET['redone']}; still disturbed: {cmp.QUIET['contaminated']}")
    if args.quick:
        print("(--quick: too few repetitions to quote these numbers)")


if __name__ == "__main__":
    main()
