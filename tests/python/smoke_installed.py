"""Smoke test of an installed ferronn, run as a script by another interpreter.

test_wheel.py runs it in a fresh virtual environment holding only the built wheel, and
test_cpu_portability.py runs it natively and under an emulated CPU. It trains an MLP on the
embedded digits, saves, loads, predicts and (with ``--onnx``) exports ONNX, checking each
step, then prints one JSON line: where ferronn was imported from, its version, the test
accuracy and a SHA-256 of the trained weights' bytes (equal digests: equal bits).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import sys
import tempfile

import numpy as np

import ferronn as fn


def _train(epochs: int) -> tuple[fn.Sequential, np.ndarray, np.ndarray]:
    X, y = fn.datasets.digits()
    (Xtr, ytr), (Xte, yte) = fn.datasets.train_test_split(X, y, test_size=0.2, seed=0, stratify=True)
    model = fn.Sequential([fn.Dense(64, activation="relu"), fn.LayerNorm(), fn.Dense(10)])
    model.compile(optimizer=fn.optim.Adam(3e-3), loss="cross_entropy", metrics=["accuracy"])
    model.fit(Xtr, ytr, epochs=epochs, batch_size=32, seed=0, verbose=0)
    return model, Xte, yte


def _check_files(model: fn.Sequential, X: np.ndarray, onnx: bool, folder: str) -> None:
    path = os.path.join(folder, "model.safetensors")
    model.save(path)
    again = fn.load(path)
    if not np.array_equal(again.predict_raw(X), model.predict_raw(X)):
        raise AssertionError("the loaded model predicts differently")
    if onnx:
        onnx_path = os.path.join(folder, "model.onnx")
        model.export_onnx(onnx_path)
        import onnxruntime

        session = onnxruntime.InferenceSession(onnx_path, providers=["CPUExecutionProvider"])
        (out,) = session.run(None, {"input": X.astype(np.float32)})
        if not np.allclose(out, model.predict_raw(X), atol=1e-5, rtol=1e-5):
            raise AssertionError("onnxruntime disagrees with predict_raw")


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--epochs", type=int, default=3)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--onnx", action="store_true", help="also export ONNX and run it with onnxruntime")
    p.add_argument("--save-weights", default=None, help="also write the trained weights to this .npz file")
    args = p.parse_args()
    fn.set_num_threads(args.threads)
    model, X, y = _train(args.epochs)
    _, accuracy = model.evaluate(X, y)
    with tempfile.TemporaryDirectory() as folder:
        _check_files(model, X, args.onnx, folder)
    if args.save_weights:
        np.savez(args.save_weights, *model.get_weights())
    digest = hashlib.sha256()
    for w in model.get_weights():
        digest.update(np.ascontiguousarray(w).tobytes())
    print(json.dumps({
        "file": os.path.abspath(fn.__file__),
        "version": fn.__version__,
        "accuracy": float(accuracy),
        "weights_sha256": digest.hexdigest(),
        "cargo": shutil.which("cargo"),
        "rustc": shutil.which("rustc"),
        "prefix": sys.prefix,
    }))
    return 0


if __name__ == "__main__":
    sys.exit(main())
