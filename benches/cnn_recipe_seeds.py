"""Issue 12's Fashion-MNIST CNN recipe at the model seeds given on the command line:
Conv2D(32, 3, same, relu) → MaxPool2D(2) → Conv2D(64, 3, same, relu) → MaxPool2D(2) →
Flatten → Dense(128, relu) → Dense(10), Adam(1e-3), batch 128, 10 epochs, pixels/255.

    python benches/cnn_recipe_seeds.py 0 1 2

prints each seed's test accuracy and training time (examples/12_cnn_fashion_mnist.py runs
seed 0 beside an MLP). Needs the Debian package dataset-fashion-mnist."""

import sys
import time

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


if __name__ == "__main__":
    main([int(a) for a in sys.argv[1:]] or [0])
