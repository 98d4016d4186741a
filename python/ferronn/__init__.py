"""ferronn: neural networks on the CPU, with a Rust core and a Keras-like API.

>>> import ferronn as fn
>>> X, y = fn.datasets.digits()
>>> model = fn.Sequential([fn.Dense(64, activation="relu"), fn.Dense(10)])
>>> model.compile(optimizer=fn.optim.Adam(1e-3), loss="cross_entropy", metrics=["accuracy"])
>>> history = model.fit(X, y, epochs=20, batch_size=32, seed=0)
"""

from . import _core, callbacks, datasets, errors, functional, layers, metrics, names, optim, regularizers, schedules
from .threads import get_num_threads, set_num_threads
from .errors import *  # noqa: F401,F403  (every named exception, listed in errors.__all__)
from .layers import *  # noqa: F401,F403  (every layer class, listed in layers.__all__)
from .model import Sequential, load
from . import onnx_export, torch_layout
from .torch_layout import load_torch_weights
from .training import History
from . import diagnostics, perceptron, utils
from .perceptron import Perceptron

__version__ = _core.__version__

__all__ = [
    "Sequential",
    # every layer class (fn.Dense, fn.ReLU, ...); spec parsing stays fn.layers.from_spec
    *(name for name in layers.__all__ if name != "from_spec"),
    "History",
    "load",
    "load_torch_weights",
    "torch_layout",
    "onnx_export",
    "layers",
    "callbacks",
    "metrics",
    "optim",
    "schedules",
    "regularizers",
    "datasets",
    "functional",
    "names",
    "errors",
    "Perceptron",
    "perceptron",
    "diagnostics",
    "utils",
    "set_num_threads",
    "get_num_threads",
    "__version__",
    *errors.__all__,
]


# Submodules imported on first use (``fn.sklearn``, ``fn.plot``, ``fn.keras``): the first two
# need optional packages (scikit-learn, matplotlib) that ``import ferronn`` must not pull in;
# ``fn.keras`` is a namespace most users never load.
_LAZY_MODULES = ("sklearn", "plot", "keras")


def __getattr__(name: str):
    if name in _LAZY_MODULES:
        import importlib

        return importlib.import_module(f".{name}", __name__)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
