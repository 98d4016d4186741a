"""Handwritten digits with a one-hidden-layer MLP: the README example, runnable.

Trains 64-64-10 (ReLU) with Adam on the 8x8 digits shipped in the package,
prints the learning curve and the test accuracy, and saves and reloads the model.
Run: python examples/digits.py
"""

import os
import tempfile

import numpy as np

import ferronn as fn

X, y = fn.datasets.digits()
(Xtr, ytr), (Xte, yte) = fn.datasets.train_test_split(X, y, test_size=0.2, seed=0)

model = fn.Sequential([fn.Dense(64, activation="relu"), fn.Dense(10)])
model.compile(optimizer=fn.optim.Adam(1e-3), loss="cross_entropy", metrics=["accuracy"])
history = model.fit(Xtr, ytr, epochs=20, batch_size=32, validation_data=(Xte, yte), seed=0, verbose=0)

for epoch in range(0, 20, 4):
    h = history.history
    print(f"epoch {epoch + 1:2d}: loss {h['loss'][epoch]:.3f}  val_accuracy {h['val_accuracy'][epoch]:.3f}")
loss, acc = model.evaluate(Xte, yte)
print(f"test accuracy {acc:.2%}")

path = os.path.join(tempfile.mkdtemp(), "digits.safetensors")
model.save(path)
same = fn.load(path)
print("reloaded model predicts identically:", bool(np.array_equal(same.predict(Xte), model.predict(Xte))))
