"""Every ``>>>`` example in the docstrings of the ferronn package runs.

Each module found by walking the package with ``pkgutil`` is one test: its docstring
examples (module, classes, functions, methods) run with ``doctest`` in a temporary
working directory (examples save files such as ``best.fnn``), in a namespace that
provides what the examples take for granted:

- ``fn`` (``import ferronn as fn``) and the package's public names (``Sequential``,
  ``Dense``, ``optim``, ... as after ``from ferronn import *``), below the module's own;
- ``X``, ``y``: 200 embedded digits; ``model``: a small MLP fitted on them;
  ``history``: that fit's ``History`` (with validation curves);
- for ``ferronn.plot`` (whose decision boundaries need 2-D inputs): the same names
  for a model fitted on the two moons;
- for ``ferronn.torch_layout``: ``path``, the model saved with ``layout="torch"``, and
  ``torch_model``, the equivalent PyTorch model built from ``torch_source(model)``.

Shown output is compared as doctest does (with ``...`` as an ellipsis). An example
that shows no output is a call written for its effect or to name a value: it must run
without raising, whatever it returns. No module is excluded (EXCLUDED is empty and
says why a module would be listed there).
"""

from __future__ import annotations

import doctest
import importlib
import pkgutil
import warnings

import numpy as np
import pytest

import ferronn as fn

# module name -> why its examples are not run (none today; a module listed here must say why)
EXCLUDED: dict[str, str] = {}

# the package itself (its docstring has the quick-start example) and every module below it
MODULES = ["ferronn"] + sorted(m.name for m in pkgutil.walk_packages(fn.__path__, "ferronn."))


class _CallsNeedNotBeSilent(doctest.OutputChecker):
    """doctest's checker, except that an example showing no output passes whatever it
    prints: ``>>> fn.diagnostics.dead_units(model, X)   # {"layers.0": 0.03, ...}`` shows
    a call, not its exact result."""

    def check_output(self, want: str, got: str, optionflags: int) -> bool:
        return want == "" or super().check_output(want, got, optionflags)


def _fitted(X: np.ndarray, y: np.ndarray, classes: int) -> tuple[fn.Sequential, fn.History]:
    model = fn.Sequential([fn.Dense(16, activation="relu"), fn.Dense(classes)], seed=0)
    model.compile(optimizer=fn.optim.Adam(1e-2), loss="cross_entropy", metrics=["accuracy"])
    history = model.fit(X, y, epochs=3, batch_size=32, validation_split=0.2, seed=0, verbose=0)
    return model, history


def _digits_names() -> dict:
    X, y = fn.datasets.digits()
    X, y = X[:200], y[:200]
    model, history = _fitted(X, y, 10)
    return {"X": X, "y": y, "model": model, "history": history}


def _moons_names() -> dict:
    X, y = fn.datasets.moons(200, noise=0.1, seed=0)
    model, history = _fitted(X, y, 2)
    return {"X": X, "y": y, "model": model, "history": history}


def _torch_names(tmp_path) -> dict:
    """The torch_layout example loads a torch-layout file into the equivalent torch model."""
    torch = pytest.importorskip("torch")
    pytest.importorskip("safetensors.torch")
    names = _digits_names()
    path = str(tmp_path / "model.safetensors")
    names["model"].save(path, layout="torch")
    scope = {"torch": torch, "nn": torch.nn}
    exec(fn.torch_layout.torch_source(names["model"]), scope)
    torch_model = next(v for v in scope.values() if isinstance(v, torch.nn.Module))
    names.update(path=path, torch_model=torch_model, safetensors=importlib.import_module("safetensors"))
    return names


def _namespace(module, tmp_path) -> dict:
    globs = dict(vars(module))
    for name in fn.__all__:
        globs.setdefault(name, getattr(fn, name))
    globs["fn"] = fn
    if module.__name__ == "ferronn.plot":
        globs.update(_moons_names())
    elif module.__name__ == "ferronn.torch_layout":
        globs.update(_torch_names(tmp_path))
    else:
        globs.update(_digits_names())
    return globs


def _examples(module) -> list[doctest.DocTest]:
    tests = doctest.DocTestFinder(exclude_empty=True).find(module, module.__name__)
    return [t for t in tests if t.examples]


def test_the_walk_finds_the_package_and_its_examples():
    assert {"ferronn.model", "ferronn.layers.dense", "ferronn.sklearn.estimators"} <= set(MODULES)
    assert set(EXCLUDED) <= set(MODULES)
    with_examples = [name for name in MODULES if _examples(importlib.import_module(name))]
    assert len(with_examples) >= 10, with_examples


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples_run(name, tmp_path, monkeypatch):
    if name in EXCLUDED:
        pytest.skip(EXCLUDED[name])
    module = importlib.import_module(name)
    tests = _examples(module)
    if not tests:
        return
    monkeypatch.chdir(tmp_path)
    globs = _namespace(module, tmp_path)
    runner = doctest.DocTestRunner(checker=_CallsNeedNotBeSilent(), optionflags=doctest.ELLIPSIS)
    report: list[str] = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # e.g. ConvergenceWarning from a short example fit
        for test in tests:
            test.globs = dict(globs)  # examples of one docstring share names, docstrings do not
            runner.run(test, out=report.append, clear_globs=True)
    failed, attempted = runner.summarize(verbose=False)
    assert attempted > 0
    assert failed == 0, "".join(report)
