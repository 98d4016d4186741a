"""The API reference (docs/api) builds with Sphinx offline, with warnings as errors and
nitpicky cross-references, and documents every name in the ``__all__`` of each public
module. One build per session (about ten seconds), into a temporary folder."""

from __future__ import annotations

import importlib
import importlib.util
import inspect
import os
import re
import subprocess
import sys
import zlib
from pathlib import Path

import pytest

import ferronn as fn

ROOT = Path(__file__).resolve().parents[2]
SOURCE = ROOT / "docs" / "api"
PAGES = ["getting_started", "model", "layers", "optim", "callbacks", "metrics", "datasets", "diagnostics",
         "files", "sklearn", "performance", "from_keras", "keras", "from_pytorch", "from_sklearn", "changelog"]

pytestmark = pytest.mark.skipif(
    any(importlib.util.find_spec(m) is None for m in ("sphinx", "myst_parser", "sklearn", "matplotlib")),
    reason="the docs build needs sphinx, myst-parser, scikit-learn and matplotlib (the test extra)")


def _conf():
    spec = importlib.util.spec_from_file_location("ferronn_docs_conf", SOURCE / "conf.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def built(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("html")
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(
        [str(Path(fn.__file__).resolve().parents[1]), os.environ.get("PYTHONPATH", "")]))
    done = subprocess.run([sys.executable, "-m", "sphinx", "-E", "-W", "-n", "--keep-going", "-q", "-b", "html",
                           str(SOURCE), str(out)], capture_output=True, text=True, env=env, cwd=ROOT)
    assert done.returncode == 0, f"the docs build failed:\n{done.stderr[-6000:]}"
    assert done.stderr.strip() == "", done.stderr
    return out


def _inventory(html: Path) -> dict[str, str]:
    """Documented name -> its role ("py:class", ...), read from Sphinx's objects.inv."""
    raw = (html / "objects.inv").read_bytes()
    header_end = 0
    for _ in range(4):  # four text lines, then the zlib-compressed entries
        header_end = raw.index(b"\n", header_end) + 1
    names = {}
    for line in zlib.decompress(raw[header_end:]).decode().splitlines():
        m = re.match(r"(\S+)\s+(py:\w+)\s+-?\d+\s", line)
        if m:
            names[m.group(1)] = m.group(2)
    return names


def _resolve(name: str):
    parts = name.split(".")
    for cut in range(len(parts), 0, -1):
        try:
            obj = importlib.import_module(".".join(parts[:cut]))
        except ImportError:
            continue
        try:
            for attr in parts[cut:]:
                obj = getattr(obj, attr)
        except AttributeError:
            return None
        return obj
    return None


def test_every_page_is_built(built):
    for page in PAGES:
        assert (built / f"{page}.html").is_file(), page
    performance = (built / "performance.html").read_text(encoding="utf-8")
    assert "samples/s" in performance and "GFLOP/s" in performance  # the README's tables came through
    start = re.sub(r"<[^>]+>", "", (built / "getting_started.html").read_text(encoding="utf-8"))
    assert "python -m pytest -q tests/python" in start  # the README's two commands


def test_the_public_modules_are_all_covered():
    listed = set(_conf().PUBLIC_MODULES)
    exported = {f"ferronn.{n}" for n in fn.__all__ if inspect.ismodule(getattr(fn, n))}
    assert exported | {"ferronn", "ferronn.sklearn", "ferronn.plot"} <= listed


def test_every_public_name_is_documented(built):
    documented = _inventory(built)
    # classes, functions and modules may be documented where they are defined and re-exported
    # elsewhere (fn.Dense is ferronn.layers.Dense); constants must be documented by name
    aliases = {id(obj) for name, role in documented.items()
               if role in ("py:class", "py:function", "py:exception", "py:module")
               for obj in [_resolve(name)] if obj is not None}
    missing = []
    for module_name in _conf().PUBLIC_MODULES:
        module = importlib.import_module(module_name)
        assert module_name in documented, f"module {module_name} has no page"
        for name in module.__all__:
            obj = getattr(module, name)
            by_alias = (inspect.isclass(obj) or inspect.isroutine(obj) or inspect.ismodule(obj)) and id(obj) in aliases
            if f"{module_name}.{name}" not in documented and not by_alias:
                missing.append(f"{module_name}.{name}")
    assert not missing, f"public names missing from the reference: {missing}"
