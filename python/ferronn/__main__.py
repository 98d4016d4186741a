"""``python -m ferronn train``: the main job.

Trains an MLP on the embedded digits (or Fashion-MNIST), shows progress, prints
the test accuracy and where the model was saved. ``python -m ferronn docs`` builds the
API reference from a source checkout (docs/api) with Sphinx, warnings as errors.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from typing import Any

import ferronn as fn
from ferronn import _validate

DEFAULTS: dict[str, dict[str, Any]] = {"digits": {"hidden": "64", "epochs": 30}, "fashion-mnist": {"hidden": "256,128", "epochs": 10}}


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m ferronn", description="Train an MLP with ferronn.")
    sub = p.add_subparsers(dest="command", required=True)
    t = sub.add_parser("train", help="train a classifier and report test accuracy")
    t.add_argument("--dataset", choices=sorted(DEFAULTS), default="digits")
    t.add_argument("--epochs", type=int, default=None, help="default: 30 (digits), 10 (fashion-mnist)")
    t.add_argument("--hidden", default=None, help="hidden widths, e.g. 256,128 (default: 64 / 256,128)")
    t.add_argument("--activation", default="relu")
    t.add_argument("--batch-size", type=int, default=None, help="default: 32 (digits), 128 (fashion-mnist)")
    t.add_argument("--lr", type=float, default=1e-3, help="Adam learning rate")
    t.add_argument("--threads", type=int, default=None, help="default: every core")
    t.add_argument("--seed", type=int, default=0)
    t.add_argument("--out", default=None, help="where to save the model (default: runs/<dataset>-mlp.safetensors)")
    t.add_argument("--quiet", action="store_true", help="no progress bar")
    d = sub.add_parser("docs", help="build the API reference (needs a source checkout and sphinx)")
    d.add_argument("--source", default=None, help="the Sphinx sources (default: docs/api of the checkout)")
    d.add_argument("--out", default=os.path.join("docs", "_build", "html"), help="where to write the HTML")
    return p


def docs(args: argparse.Namespace) -> int:
    """Runs ``python -m sphinx -W -n --keep-going -E -b html <source> <out>``."""
    import subprocess

    checkout = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    source = args.source or os.path.join(checkout, "docs", "api")
    if not os.path.isfile(os.path.join(source, "conf.py")):
        print(f"error: no Sphinx sources at {source}: run from a source checkout of ferronn or pass --source",
              file=sys.stderr)
        return 2
    command = [sys.executable, "-m", "sphinx", "-W", "-n", "--keep-going", "-E", "-q", "-b", "html",
               source, args.out]
    done = subprocess.run(command)
    if done.returncode == 0:
        print(f"API reference written to {os.path.abspath(os.path.join(args.out, 'index.html'))}")
    return done.returncode


def _load(name: str):
    if name == "digits":
        X, y = fn.datasets.digits()
        return fn.datasets.train_test_split(X, y, test_size=0.2, seed=0, stratify=True)
    return fn.datasets.fashion_mnist()


def _widths(text: str) -> list[int]:
    """``--hidden 256,128`` as [256, 128]; a typo is a ConfigError (main prints it), not a traceback."""
    try:
        widths = [int(h) for h in text.split(",") if h.strip()]
    except ValueError:
        raise fn.ConfigError(f"--hidden must be comma-separated positive integers such as 256,128, "
                             f"got {text!r}") from None
    return [_validate.positive_int(w, "--hidden width") for w in widths]


def train(args: argparse.Namespace) -> int:
    if args.threads is not None:
        fn.set_num_threads(args.threads)
    hidden = _widths(args.hidden or DEFAULTS[args.dataset]["hidden"])
    epochs = args.epochs if args.epochs is not None else DEFAULTS[args.dataset]["epochs"]
    batch = args.batch_size or (32 if args.dataset == "digits" else 128)
    (Xtr, ytr), (Xte, yte) = _load(args.dataset)
    n_classes = int(max(ytr.max(), yte.max())) + 1
    model = fn.Sequential([fn.Dense(h, activation=args.activation) for h in hidden] + [fn.Dense(n_classes)])
    model.compile(optimizer=fn.optim.Adam(args.lr), loss="cross_entropy", metrics=["accuracy"])
    arch = "-".join(str(w) for w in [Xtr.shape[1], *hidden, n_classes])
    print(f"ferronn {fn.__version__}: {args.dataset}, {len(Xtr)} train / {len(Xte)} test, MLP {arch}, "
          f"Adam({args.lr}), batch {batch}, {fn.get_num_threads()} threads")
    start = time.perf_counter()
    model.fit(Xtr, ytr, epochs=epochs, batch_size=batch, seed=args.seed, verbose=0 if args.quiet else 1,
              validation_data=(Xte, yte))
    seconds = time.perf_counter() - start
    loss, acc = model.evaluate(Xte, yte)  # type: ignore[misc]  # compiled with one metric: [loss, accuracy]
    out = args.out or os.path.join("runs", f"{args.dataset}-mlp.safetensors")
    os.makedirs(os.path.dirname(out) or ".", exist_ok=True)
    model.save(out)
    print(f"trained {epochs} epochs in {seconds:.1f} s; test loss {loss:.4f}, test accuracy {acc:.2%}")
    print(f"model saved to {os.path.abspath(out)}")
    return 0


def main(argv: "list[str] | None" = None) -> int:
    args = _parser().parse_args(argv)
    if args.command == "docs":
        return docs(args)
    try:
        return train(args)
    except fn.FerronnError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
