"""Sphinx configuration of ferronn's API reference.

Build it with ``python -m ferronn docs`` or
``python -m sphinx -W -n --keep-going -b html docs/api docs/_build/html``. The build is
offline (no intersphinx) and strict: with ``-W -n`` a broken cross-reference inside ferronn,
a public object without a docstring or a docstring that does not parse fails it.
"""

from __future__ import annotations

import fnmatch
import importlib
import re

import ferronn

project = "ferronn"
author = "the ferronn authors"
copyright = "the ferronn authors"
version = release = ferronn.__version__

extensions = ["sphinx.ext.autodoc", "sphinx.ext.napoleon", "myst_parser"]
source_suffix = {".rst": "restructuredtext"}
exclude_patterns = ["_build"]
html_theme = "alabaster"
html_static_path: list[str] = []

# Docstrings are plain reST with ``code``; napoleon reads the few Args:/Returns: sections.
napoleon_google_docstring = True
napoleon_numpy_docstring = True
# Parameter types are free text ("int or None, default=None"), not names to link.
napoleon_use_param = False
autodoc_member_order = "bysource"
autodoc_typehints = "signature"
autodoc_preserve_defaults = True
# Annotations written as strings for imports under TYPE_CHECKING ("Sequential" in callbacks)
# name ferronn's model, not ferronn.keras.Sequential.
autodoc_type_aliases = {"Sequential": "ferronn.Sequential"}
autodoc_default_options = {"members": True, "undoc-members": True, "show-inheritance": True}
# README sections included into pages (the benchmark tables) keep their own anchors.
myst_heading_anchors = 3
# Included README and changelog sections start at their own heading levels.
suppress_warnings = ["myst.header"]

# Without intersphinx, names of other libraries in signatures cannot be linked: they are not
# errors. Names inside ferronn must resolve.
nitpick_ignore_regex = [
    (r"py:.*", r"(np|numpy|npt|onnx|sklearn|matplotlib|pandas|os|pathlib|collections|typing|types"
               r"|typing_extensions|datetime|io|abc|warnings|builtins|_io)(\..*)?"),
    (r"py:.*", r"(Any|Optional|Union|Callable|Sequence|Iterable|Iterator|Mapping|Literal|Figure|Axes"
               r"|InitArg|RegArg|PathArg|Logs|MetricSpec|ArrayLike|NDArray|PathLike|TextIO|Self|Number|ModuleType|dataclass|NamedTuple"
               r"|int|float|str|bool|bytes|tuple|list|dict|set|object|type|None|Exception|UserWarning"
               r"|ValueError|TypeError|RuntimeError|KeyError|IndexError|ArithmeticError|OSError)"),
]

# The modules whose ``__all__`` the reference covers (tests/python/test_docs_build.py checks it).
PUBLIC_MODULES = (
    "ferronn", "ferronn.layers", "ferronn.optim", "ferronn.schedules", "ferronn.regularizers",
    "ferronn.callbacks", "ferronn.metrics", "ferronn.datasets", "ferronn.diagnostics",
    "ferronn.perceptron", "ferronn.plot", "ferronn.torch_layout", "ferronn.onnx_export",
    "ferronn.sklearn", "ferronn.functional", "ferronn.errors", "ferronn.names", "ferronn.layers.base",
    "ferronn.utils", "ferronn.keras", "ferronn.keras.layers", "ferronn.keras.optimizers",
    "ferronn.keras.schedules", "ferronn.keras.losses", "ferronn.keras.metrics", "ferronn.keras.callbacks",
    "ferronn.keras.models", "ferronn.keras.utils", "ferronn.keras.datasets", "ferronn.keras.datasets.fashion_mnist",
    "ferronn.keras.datasets.cifar10",
)

# Objects known to lack a docstring, in modules this documentation's authors may not edit;
# each entry is a debt for that module's owner (remove it when the docstring is written).
# Patterns are fnmatch-style full names.
KNOWN_UNDOCUMENTED: tuple[str, ...] = ()


def _check_docstring(app, what, name, obj, options, lines):
    """A public object that reaches the reference without any text is a warning (an error
    under ``-W``): the reference must say what every public name does."""
    if what == "module" or any(line.strip() for line in lines):
        return
    if any(fnmatch.fnmatchcase(name, pattern) for pattern in KNOWN_UNDOCUMENTED):
        return
    if re.search(r"\.__\w+__$", name):
        return
    from sphinx.util import logging

    logging.getLogger("ferronn.docs").warning("missing docstring: %s", name, type="ferronn",
                                              subtype="docstring")


def _skip_foreign_members(app, what, name, obj, skip, options):
    """Leave out private names and what classes get from other libraries (scikit-learn's
    ``set_fit_request`` and the like, ``BaseException.args``): their docs are those libraries'."""
    if name.startswith("_"):
        return True
    module = getattr(obj, "__module__", None) or ""
    if what == "class" and callable(obj) and module and not module.startswith("ferronn"):
        return True
    if name in ("args", "with_traceback", "add_note"):
        return True
    return None


def _public_objects() -> set[int]:
    """Ids of every object named in the ``__all__`` of a documented module."""
    found: set[int] = set()
    for module_name in PUBLIC_MODULES:
        module = importlib.import_module(module_name)
        found.update(id(getattr(module, n)) for n in module.__all__)
    return found


def _public_bases(app, name, obj, options, bases):
    """"Bases:" lists only classes a reader can look up: ferronn's public ones and those of
    Python or other libraries; private helpers (``_BaseMLP``, mixins) are left out."""
    public = _public_objects()
    bases[:] = [b for b in bases if not getattr(b, "__module__", "").startswith("ferronn") or id(b) in public]


def setup(app):
    app.connect("autodoc-process-docstring", _check_docstring)
    app.connect("autodoc-skip-member", _skip_foreign_members)
    app.connect("autodoc-process-bases", _public_bases)
    # sklearn and plot are imported lazily by ``import ferronn``; autodoc imports them itself.
    for optional in ("sklearn", "matplotlib"):
        importlib.import_module(optional)
