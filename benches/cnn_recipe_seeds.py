"""Issue 12's Fashion-MNIST CNN recipe at the model seeds given on the command line:
Conv2D(32, 3, same, relu) → MaxPool2D(2) → Conv2D(64, 3, same, relu) → MaxPool2D(2) →
Flatten → Dense(128, relu) → Dense(10), Adam(1e-3), batch 128, 10 epochs, pixels/255.

    python benches/cnn_recipe_seeds.py 0 1 2
    python benches/cnn_recipe_seeds.py --torch 0 1 2

prints each seed's test accuracy and training time (examples/12_cnn_fashion_mnist.py runs
seed 0 beside an MLP). ``--torch`` trains the same recipe in PyTorch instead (its default
initialisation, a seeded shuffle each epoch), to compare the spread over seeds. Needs the
Debian package dataset-fashion-mnist."""

import sys
import time

import numpy as np

import ferronn as fn


def cnn(seed: int) -> fn.Sequential:
    return fn.Sequential([fn.Input(shape=(28, 28, 1)),
                          fn.layers.Conv2D(32, 3, padding="same", activation="relu"), fn.layers.MaxPool2D(2),
                          fn.layers.Conv2D(64, 3, padding="same", activation="relu"), fn.layers.MaxPool2D(2),
                          fn.layers.Flatten(), fn.Dense(128, activation="relu"), fn.Dense(10)], seed=seed)


def main(seeds: list[int]) -> None:
    (Xtr, ytr), (Xte, yte) = fn.datasets.fashion_mnist(images=True)  # already scaled by 1/255
    for seed in seeds:
        model = cnn(seed)
        model.compile(optimizer=fn.optim.Adam(1e-3), loss="cross_entropy", metrics=["accuracy"])
        start = time.perf_counter()
        model.fit(Xtr, ytr, epochs=10, batch_size=128, seed=seed, verbose=0)
        accuracy = float(fn.metrics.accuracy(yte, model.predict(Xte)))
        print(f"seed {seed}: test accuracy {accuracy:.4f}, {time.perf_counter() - start:.0f} s", flush=True)


def main_torch(seeds: list[int]) -> None:
    import torch
    from torch import nn
    (Xtr, ytr), (Xte, yte) = fn.datasets.fashion_mnist(images=True)
    def to_nchw(X: np.ndarray) -> "torch.Tensor":
        return torch.from_numpy(np.ascontiguousarray(X.transpose(0, 3, 1, 2)))
    xtr, xte, labels = to_nchw(Xtr), to_nchw(Xte), torch.from_numpy(ytr.astype(np.int64))
    for seed in seeds:
        torch.manual_seed(seed)
        model = nn.Sequential(nn.Conv2d(1, 32, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
                              nn.Conv2d(32, 64, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(),
                              nn.Linear(64 * 7 * 7, 128), nn.ReLU(), nn.Linear(128, 10))
        opt = torch.optim.Adam(model.parameters(), lr=1e-3)
        order = torch.Generator().manual_seed(seed)
        start = time.perf_counter()
        for _ in range(10):
            for idx in torch.randperm(len(xtr), generator=order).split(128):
                opt.zero_grad()
                nn.functional.cross_entropy(model(xtr[idx]), labels[idx]).backward()
                opt.step()
        with torch.no_grad():
            predicted = torch.cat([model(xte[i:i + 1000]).argmax(1) for i in range(0, len(xte), 1000)]).numpy()
        accuracy = float((predicted == yte).mean())
        print(f"torch seed {seed}: test accuracy {accuracy:.4f}, {time.perf_counter() - start:.0f} s", flush=True)


if __name__ == "__main__":
    args = sys.argv[1:]
    torch_run = "--torch" in args
    seeds = [int(a) for a in args if a != "--torch"] or [0]
    main_torch(seeds) if torch_run else main(seeds)
