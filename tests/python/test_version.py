"""The version lives in Cargo.toml only: the compiled core, the package metadata and the
changelog agree with it."""

from __future__ import annotations

import re
from importlib import metadata
from pathlib import Path

import ferronn as fn

ROOT = Path(__file__).resolve().parents[2]


def _cargo_version() -> str:
    text = (ROOT / "Cargo.toml").read_text(encoding="utf-8")
    package = text.split("[package]", 1)[1].split("\n[", 1)[0]
    return re.search(r'^version\s*=\s*"([^"]+)"', package, re.M).group(1)


def test_version_is_cargos():
    assert fn.__version__ == _cargo_version()
    assert re.fullmatch(r"\d+\.\d+\.\d+([.-]?\w+)*", fn.__version__)


def test_pyproject_takes_the_version_from_cargo():
    text = (ROOT / "pyproject.toml").read_text(encoding="utf-8")
    project = text.split("[project]", 1)[1].split("\n[", 1)[0]
    assert re.search(r'^dynamic\s*=\s*\[[^\]]*"version"', project, re.M)
    assert not re.search(r"^version\s*=", project, re.M), "a second copy of the version in pyproject.toml"


def test_installed_metadata_matches_when_installed():
    # When ferronn runs from an installed wheel (CI: pip install ".[test]"), the wheel's
    # metadata carries the same version; a source tree on PYTHONPATH has no metadata to check.
    try:
        dist = metadata.distribution("ferronn")
    except metadata.PackageNotFoundError:
        return
    installed = Path(dist.locate_file("ferronn")).resolve()
    if Path(fn.__file__).resolve().parent == installed:
        assert dist.version == fn.__version__


def test_changelog_has_a_section_for_this_version():
    text = (ROOT / "CHANGELOG.md").read_text(encoding="utf-8")
    assert re.search(rf"^## {re.escape(fn.__version__)}\s*$", text, re.M)
