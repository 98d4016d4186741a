"""Hands-on project: a Fashion-MNIST clothing classifier, from data to error analysis.

Fashion-MNIST (Xiao et al. 2017) has 70,000 greyscale images of 28x28 pixels,
each one of ten kinds of clothing: T-shirt/top, trouser, pullover, dress,
coat, sandal, shirt, sneaker, bag, ankle boot. It was made as a harder drop-in
replacement for the MNIST digits. This script goes through the steps of a
small real project:

1. **Data.** 60,000 training images (the last 5,000 held out for validation,
   to watch training) and 10,000 test images, used once, at the end. Each image
   is flattened to 784 pixel values scaled to [0, 1].
2. **Model.** An MLP, 784 -> 256 -> 128 -> 10, ReLU hidden layers, trained
   with AdamW and a cosine learning-rate schedule (the rate glides from 1e-3
   down to 0 over the 15 epochs), batches of 128.
3. **Evaluation.** Test accuracy (close to 90%), then where the errors are:
   the *confusion matrix* counts, for every true class (rows), how often each
   class was predicted (columns); the diagonal holds the correct answers.
   It sums to the number of test images.
4. **Error analysis.** A grid of misclassified test images, titled
   true/predicted. Most mistakes are among the upper-body garments, which
   look alike at 28x28 pixels: shirt, T-shirt/top, pullover and coat (shirts
   are the hardest class, about 70% right); the footwear classes are confused
   with each other far less. An MLP sees the pixels as an unordered list; a
   convolutional network, which knows which pixels are neighbours, does
   better (above 91%).

With ``--fast``, or when the Fashion-MNIST files are not installed (Debian
package ``dataset-fashion-mnist``), the same steps run on the 8x8 digits that
ship with ferronn (1,797 images, 10 classes), in a second.

Run: python examples/11_fashion_mnist.py [--fast] [--out-dir DIR]
"""

from __future__ import annotations

import os
import time

import numpy as np

import ferronn as fn


def load(fast: bool) -> dict:
    """The data set: Fashion-MNIST, or the embedded digits in fast mode or when it is missing."""
    if not fast:
        try:
            (Xtr, ytr), (Xte, yte) = fn.datasets.fashion_mnist()
            return {"name": "Fashion-MNIST", "train": (Xtr, ytr), "test": (Xte, yte), "image_shape": (28, 28),
                    "classes": list(fn.datasets.FASHION_MNIST_CLASSES), "hidden": (256, 128), "epochs": 15,
                    "batch_size": 128}
        except fn.DatasetNotFoundError as e:
            print(f"Fashion-MNIST is not available ({e}); using the embedded 8x8 digits instead")
    X, y = fn.datasets.digits()
    train, test = fn.datasets.train_test_split(X, y, test_size=0.25, seed=0, stratify=True)
    return {"name": "digits (8x8)", "train": train, "test": test, "image_shape": (8, 8),
            "classes": [str(d) for d in range(10)], "hidden": (64,), "epochs": 20, "batch_size": 32}


def main(fast: bool = False, out_dir: str = "examples/output") -> dict:
    """Trains the classifier; returns its test accuracy and confusion matrix."""
    data = load(fast)
    (Xtr, ytr), (Xte, yte) = data["train"], data["test"]
    classes, epochs = data["classes"], data["epochs"]
    print(f"{data['name']}: {len(Xtr)} training images (1/12 held out for validation), {len(Xte)} test images, "
          f"{Xtr.shape[1]} pixels each, {len(classes)} classes")

    model = fn.Sequential([fn.Dense(h, activation="relu") for h in data["hidden"]] + [fn.Dense(len(classes))],
                          seed=0)
    schedule = fn.schedules.CosineAnnealing(1e-3 if data["image_shape"] == (28, 28) else 3e-3, T_max=epochs)
    model.compile(optimizer=fn.optim.AdamW(schedule, weight_decay=1e-4), loss="cross_entropy",
                  metrics=["accuracy"])
    start = time.perf_counter()
    history = model.fit(Xtr, ytr, epochs=epochs, batch_size=data["batch_size"], validation_split=1 / 12, seed=0,
                        verbose=0)
    seconds = time.perf_counter() - start
    print(f"MLP {' -> '.join(str(d) for d in (Xtr.shape[1], *data['hidden'], len(classes)))} "
          f"({model.n_params} parameters), {epochs} epochs in {seconds:.1f} s")
    h = history.history
    for e in sorted({0, epochs // 3, 2 * epochs // 3, epochs - 1}):
        print(f"  epoch {e + 1:2d}: loss {h['loss'][e]:.3f}, training accuracy {h['accuracy'][e]:.3f}, "
              f"validation accuracy {h['val_accuracy'][e]:.3f}")

    pred = model.predict(Xte)
    test_acc = fn.metrics.accuracy(yte, pred)
    cm = fn.metrics.confusion_matrix(yte, pred, num_classes=len(classes))
    print(f"test accuracy: {test_acc:.2%} ({int(np.trace(cm))} of {len(yte)} test images)")
    print("per-class accuracy (recall):")
    recall = np.diag(cm) / cm.sum(axis=1)
    for name, r in sorted(zip(classes, recall), key=lambda t: t[1]):
        print(f"  {name:<12} {r:.1%}")
    off = cm.copy()
    np.fill_diagonal(off, 0)
    pairs = np.dstack(np.unravel_index(np.argsort(off, axis=None)[::-1][:5], off.shape))[0]
    print("most frequent mistakes (true -> predicted: count):")
    for i, j in pairs:
        print(f"  {classes[i]} -> {classes[j]}: {off[i, j]}")

    wrong = np.flatnonzero(pred != yte)
    rng = np.random.default_rng(0)
    shown = np.sort(rng.choice(wrong, size=min(24, len(wrong)), replace=False)) if len(wrong) else wrong
    prefix = "11_fashion_mnist" if data["image_shape"] == (28, 28) else "11_digits"
    figures = {f"{prefix}_learning_curves.png": fn.plot.learning_curves(history),
               f"{prefix}_confusion_matrix.png": fn.plot.confusion_matrix(yte, pred, class_names=classes)}
    figures[f"{prefix}_confusion_matrix.png"].axes[0].set_title(
        f"{data['name']} test set: confusion matrix ({test_acc:.1%} correct)")
    if len(shown):
        grid = fn.plot.image_grid(Xte[shown], true=yte[shown], pred=pred[shown], image_shape=data["image_shape"],
                                  ncols=6, class_names=[c.replace("T-shirt/top", "T-shirt") for c in classes],
                                  max_images=24)
        grid.suptitle(f"{len(shown)} of the {len(wrong)} misclassified test images (title: true/predicted)")
        figures[f"{prefix}_misclassified.png"] = grid
    paths = [fn.plot.save(fig, os.path.join(out_dir, name)) for name, fig in figures.items()]
    for p in paths:
        print(f"saved {p}")
    return {"dataset": data["name"], "test_accuracy": float(test_acc), "n_test": int(len(yte)),
            "confusion_matrix": cm, "n_params": model.n_params, "seconds": seconds,
            "val_accuracy": h["val_accuracy"][-1], "figures": paths}


if __name__ == "__main__":
    from _gallery import gallery_cli

    gallery_cli(main, __doc__, "the embedded 8x8 digits instead (about a second)")
