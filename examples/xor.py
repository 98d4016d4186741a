"""XOR: the problem a single neuron cannot solve and one hidden layer can.

XOR's two classes are not linearly separable, so no line (one neuron) splits
them; a hidden layer of 8 tanh units bends the input space until one does.
Run: python examples/xor.py
"""

import numpy as np

import ferronn as fn

X, y = fn.datasets.xor()

linear = fn.Sequential([fn.Dense(1)])
linear.compile(optimizer=fn.optim.Adam(0.05), loss="bce", metrics=["accuracy"])
linear.fit(X, y.astype(np.float32), epochs=500, batch_size=4, seed=0, verbose=0)

mlp = fn.Sequential([fn.Dense(8, activation="tanh"), fn.Dense(1)])
mlp.compile(optimizer=fn.optim.Adam(0.05), loss="bce", metrics=["accuracy"])
mlp.fit(X, y.astype(np.float32), epochs=500, batch_size=4, seed=0, verbose=0)

print("inputs      ", X.tolist())
print("targets     ", y.tolist())
print("one neuron  ", linear.predict(X).tolist(), f"accuracy {np.mean(linear.predict(X) == y):.0%}")
print("2-8-1 tanh  ", mlp.predict(X).tolist(), f"accuracy {np.mean(mlp.predict(X) == y):.0%}")
