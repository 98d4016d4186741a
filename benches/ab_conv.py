"""Fit throughput of one ferronn build on compare_conv.py's models, for A/B runs of two builds.

    PYTHONPATH=<build A>/python python benches/ab_conv.py cnn 128
    PYTHONPATH=<build B>/python python benches/ab_conv.py cnn 128

Trains compare_conv.py's model of that kind ("cnn", "resnet" or "conv1d") on 2048
synthetic samples (256 for the heavier ResNet) at the given batch size with 2 threads (or the third argument), one
warm-up epoch then five timed ones, and prints samples/s of the median epoch and the
process CPU milliseconds per step (median): on a shared machine the wall time is noisy,
CPU time shows work added or removed. Run the two builds alternately, several rounds, and
compare the rounds: one process per build, since two builds cannot share one process.
"""

import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import ferronn as fn  # noqa: E402

from compare_conv import SHAPES, ferronn_model  # noqa: E402
from timing import wall_and_cpu  # noqa: E402


def main() -> None:
    kind, bs = sys.argv[1], int(sys.argv[2])
    fn.set_num_threads(int(sys.argv[3]) if len(sys.argv) > 3 else 2)
    n = 256 if kind == "resnet" else 2048
    rng = np.random.default_rng(0)
    X = rng.random((n, *SHAPES[kind]), dtype=np.float32)
    y = rng.integers(0, 10, n)
    model = ferronn_model(kind)
    model.fit(X, y, epochs=1, batch_size=bs, verbose=0)
    wall, cpu = wall_and_cpu(lambda: model.fit(X, y, epochs=1, batch_size=bs, verbose=0), 5)
    steps = -(-n // bs)
    print(f"{n / wall:.0f} {1e3 * cpu / steps:.2f}")


if __name__ == "__main__":
    main()
