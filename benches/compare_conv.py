"""ferronn against PyTorch on convolutional networks, in one process.

    python benches/compare_conv.py [--threads 2] [--quick]

Same protocol as benches/compare.py (same threads, same synthetic data, interleaved
timed runs on an idle machine, medians). Training throughput (samples/s, Adam(1e-3),
cross-entropy, ferronn's ``fit`` against an idiomatic PyTorch loop) of

  * the issue's CNN on 28x28x1 images: Conv2D(32, 3, "same", relu) → MaxPool2D(2) →
    Conv2D(64, 3, "same", relu) → MaxPool2D(2) → Flatten → Dense(128, relu) → Dense(10),
    at batch 64 and 128; its GFLOP/s (forward + backward multiply-adds × 2) are also
    given as a percentage of ferronn's 1024³ GEMM rate;
  * a ResNet-style model on 32x32x3: Conv2D(32, 3, "same", relu) → 2 × Residual([Conv2D(32,
    3, "same", relu), Conv2D(32, 3, "same")]) → MaxPool2D(2) → GlobalAvgPool2D → Dense(10);
  * Conv1D on sequences of 128 steps × 16 features: Conv1D(32, 5, relu) → MaxPool1D(2) →
    Conv1D(64, 5, relu) → GlobalMaxPool1D → Dense(10);

and the single-image predict latency (µs) of the CNN and the ResNet-style model against
PyTorch and onnxruntime (ferronn's own ``model.export_onnx`` graph, 1 and 2 intra-op
threads; skipped with a message when onnxruntime or onnx is not installed). ferronn takes
channels_last arrays, PyTorch its NCHW ones (the same values, transposed once before timing).
"""

from __future__ import annotations

import os
import statistics
import sys
from typing import Any, Callable, Optional

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import compare as cmp  # noqa: E402

import ferronn as fn  # noqa: E402

torch = cmp.torch
N_CLASSES = 10
SHAPES = {"cnn": (28, 28, 1), "resnet": (32, 32, 3), "conv1d": (128, 16)}


def ferronn_model(kind: str) -> fn.Sequential:
    if kind == "cnn":
        layers = [fn.Conv2D(32, 3, padding="same", activation="relu"), fn.MaxPool2D(2),
                  fn.Conv2D(64, 3, padding="same", activation="relu"), fn.MaxPool2D(2), fn.Flatten(),
                  fn.Dense(128, activation="relu"), fn.Dense(N_CLASSES)]
    elif kind == "resnet":
        def block() -> fn.Residual:
            return fn.Residual([fn.Conv2D(32, 3, padding="same", activation="relu"), fn.Conv2D(32, 3, padding="same")])
        layers = [fn.Conv2D(32, 3, padding="same", activation="relu"), block(), block(), fn.MaxPool2D(2),
                  fn.GlobalAvgPool2D(), fn.Dense(N_CLASSES)]
    else:
        layers = [fn.Conv1D(32, 5, activation="relu"), fn.MaxPool1D(2), fn.Conv1D(64, 5, activation="relu"),
                  fn.GlobalMaxPool1D(), fn.Dense(N_CLASSES)]
    model = fn.Sequential(layers, input_shape=SHAPES[kind], seed=0)
    model.compile(optimizer=fn.optim.Adam(1e-3), loss="cross_entropy")
    return model


def torch_model(kind: str) -> Any:
    nn = torch.nn
    torch.manual_seed(0)

    class Residual(nn.Module):
        def __init__(self, *block: Any) -> None:
            super().__init__()
            self.block = nn.Sequential(*block)

        def forward(self, x: Any) -> Any:
            return x + self.block(x)

    if kind == "cnn":
        return nn.Sequential(nn.Conv2d(1, 32, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
                             nn.Conv2d(32, 64, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(),
                             nn.Linear(64 * 7 * 7, 128), nn.ReLU(), nn.Linear(128, N_CLASSES))
    if kind == "resnet":
        def block() -> Any:
            return Residual(nn.Conv2d(32, 32, 3, padding=1), nn.ReLU(), nn.Conv2d(32, 32, 3, padding=1))
        return nn.Sequential(nn.Conv2d(3, 32, 3, padding=1), nn.ReLU(), block(), block(), nn.MaxPool2d(2),
                             nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(32, N_CLASSES))
    return nn.Sequential(nn.Conv1d(16, 32, 5), nn.ReLU(), nn.MaxPool1d(2), nn.Conv1d(32, 64, 5), nn.ReLU(),
                         nn.AdaptiveMaxPool1d(1), nn.Flatten(), nn.Linear(64, N_CLASSES))


def to_torch_layout(X: np.ndarray) -> np.ndarray:
    """channels_last [N, H, W, C] / [N, L, C] as PyTorch's [N, C, H, W] / [N, C, L]."""
    return np.ascontiguousarray(np.moveaxis(X, -1, 1))


def cnn_train_flops() -> float:
    """Multiply-adds × 2 of one training sample of the issue's CNN: the forward products
    and the two backward ones (kernel and input gradients; none for the first layer's
    input), pooling and elementwise work not counted."""
    conv1 = 28 * 28 * 32 * 9 * 1
    conv2 = 14 * 14 * 64 * 9 * 32
    dense = 3136 * 128 + 128 * 10
    return 2.0 * (conv1 * 2 + conv2 * 3 + dense * 3)


def bench_training(reps: int, warmup: int, n: int, batch_sizes: list[int], gemm_rate: Optional[float]) -> None:
    rng = np.random.default_rng(0)
    rows = []
    cases = [("cnn", bs) for bs in batch_sizes] + [("resnet", 128), ("conv1d", 128)]
    for kind, bs in cases:
        X = rng.random((n, *SHAPES[kind]), dtype=np.float32)
        y = rng.integers(0, N_CLASSES, size=n, dtype=np.int64)
        model = ferronn_model(kind)
        runs: dict[str, Optional[Callable[[], float]]] = {"fit": cmp.timed_fit_epoch(model, X, y, bs), "torch": None}
        if torch is not None:
            runs["torch"] = cmp.torch_adam_epoch(torch_model(kind), torch.from_numpy(to_torch_layout(X)),
                                                 torch.from_numpy(y), bs)
        times = cmp.interleaved(runs, reps, warmup)
        med = {k: n / statistics.median(v) for k, v in times.items()}
        gflops = med["fit"] * cnn_train_flops() / 1e9 if kind == "cnn" else None
        share = f"{100 * gflops / gemm_rate:.0f}%" if gflops is not None and gemm_rate else "n/a"
        rows.append((f"{kind} b={bs} ({model.n_params:,} params)", cmp.fmt(med["fit"]), cmp.fmt(med.get("torch")),
                     cmp.ratio(med["fit"], med.get("torch")), cmp.fmt(gflops, ".1f"), share))
    cmp.print_table(f"training throughput, samples/s (median of {reps}, {n} samples/epoch, Adam 1e-3, cross-entropy)",
                    ("case", "ferronn fit", "torch", "ferronn/torch", "ferronn GFLOP/s", "% of GEMM"), rows)


def bench_latency(calls: int, warmup: int) -> None:
    """Single-image predict of the CNN and the ResNet-style model: ferronn's predict_raw,
    PyTorch in inference mode, and onnxruntime on ferronn's exported graph with 1 and 2
    intra-op threads; interleaved in blocks of calls, median per call."""
    block = min(calls, 100)
    rows = []

    def timed(f: Callable[[], Any]) -> Callable[[], list[int]]:
        return cmp.timed_block(f, block)

    for kind in ("cnn", "resnet"):
        model = ferronn_model(kind)
        x = np.random.default_rng(1).random((1, *SHAPES[kind]), dtype=np.float32)
        model.predict_raw(x)
        runs: dict[str, Optional[Callable[[], list[int]]]] = {"ferronn": timed(lambda: model.predict_raw(x)), "torch": None}
        if torch is not None:
            tmodel = torch_model(kind).eval()
            xt = torch.from_numpy(to_torch_layout(x))

            def torch_predict() -> Any:
                with torch.inference_mode():
                    return tmodel(xt)
            runs["torch"] = timed(torch_predict)
        for t in (1, 2):
            runs[f"ort{t}"] = cmp.peers.onnx_latency_block(cmp.peers.onnx_session(model, t), x, block)
        times = cmp.interleaved(runs, max(1, calls // block), warmup)
        med = {k: statistics.median(ns for b in v for ns in b) / 1e3 for k, v in times.items()}
        rows.append((kind, *(cmp.fmt(med.get(k), ",.1f") for k in ("ferronn", "torch", "ort1", "ort2")),
                     cmp.ratio(med.get("torch"), med["ferronn"]), cmp.ratio(med.get("ort1"), med["ferronn"])))
    cmp.print_table(f"single-image predict latency, µs (median of {calls} calls each, interleaved in blocks of {block}; "
                    "onnxruntime runs ferronn's model.export_onnx graph)",
                    ("model", "ferronn", "torch", "onnxruntime 1 thr", "onnxruntime 2 thr",
                     "torch/ferronn", "ort 1 thr/ferronn (>1: ferronn faster)"), rows)


def main() -> None:
    p = cmp.model_bench_parser(__doc__.splitlines()[0], 4096, [64, 128])
    p.add_argument("--latency-only", action="store_true", help="only the single-image latency table")
    args = p.parse_args()
    limiter, reps, warmup, n = cmp.start_model_bench(args, 5, 512)  # noqa: F841 (limiter kept alive)
    cmp.peers.onnx_session(ferronn_model("conv1d"), 1)  # notes a missing onnxruntime/onnx up front
    for pkg in cmp.peers.missing():
        print(f"skipped: {pkg} not installed (its columns read n/a)")
    if not args.latency_only:
        bench_training(reps, warmup, n, args.batch_sizes, cmp.ferronn_gemm_rate(reps))
    bench_latency(50 if args.quick else 500, warmup)
    print(f"timed runs: {cmp.QUIET['runs']}; redone: {cmp.QUIET['redone']}; still disturbed: {cmp.QUIET['contaminated']}")
    if args.quick:
        print("(--quick: too few repetitions to quote these numbers)")


if __name__ == "__main__":
    main()
