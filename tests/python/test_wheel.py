"""The release artifacts: scripts/build_wheels.sh builds the manylinux2014 abi3 wheel and the
sdist once per session (into a temporary folder, sharing ./target with other builds through
CARGO_TARGET_DIR), then the wheel is checked (tags, size, dependencies, glibc symbols) and
installed into a fresh virtual environment that has no Rust toolchain on PATH, where the smoke
test trains, saves, loads, predicts and exports ONNX.

Set FERRONN_WHEELHOUSE to a folder holding already-built artifacts of this checkout to skip
the build (it takes minutes).
"""

from __future__ import annotations

import email.parser
import json
import os
import re
import shutil
import subprocess
import sys
import tarfile
import time
import venv
import zipfile
from pathlib import Path

import pytest

import ferronn as fn

ROOT = Path(__file__).resolve().parents[2]
SMOKE = Path(__file__).resolve().parent / "smoke_installed.py"
MAX_WHEEL_BYTES = 4 * 1024 * 1024
TAG = "cp39-abi3-manylinux2014_x86_64.manylinux_2_17_x86_64"

pytestmark = pytest.mark.slow


def _can_build() -> "str | None":
    if shutil.which("maturin") is None:
        return "maturin is not installed (pip install maturin)"
    if shutil.which("zig") is None:
        try:
            import ziglang  # noqa: F401
        except ImportError:
            return "zig is not installed (pip install ziglang)"
    return None


@pytest.fixture(scope="session")
def wheelhouse(tmp_path_factory) -> Path:
    given = os.environ.get("FERRONN_WHEELHOUSE")
    if given:
        return Path(given)
    why = _can_build()
    if why:
        pytest.skip(why)
    out = tmp_path_factory.mktemp("wheelhouse")
    env = dict(os.environ, CARGO_TARGET_DIR=str(ROOT / "target"))
    start = time.perf_counter()
    done = subprocess.run([str(ROOT / "scripts" / "build_wheels.sh"), str(out)], cwd=ROOT, env=env,
                          capture_output=True, text=True)
    assert done.returncode == 0, f"build_wheels.sh failed:\n{done.stdout[-2000:]}\n{done.stderr[-4000:]}"
    print(f"\nbuild_wheels.sh took {time.perf_counter() - start:.0f} s")
    return out


def _one(folder: Path, pattern: str) -> Path:
    found = sorted(folder.glob(pattern))
    assert len(found) == 1, f"expected one {pattern} in {folder}, found {found}"
    return found[0]


@pytest.fixture(scope="session")
def wheel(wheelhouse) -> Path:
    return _one(wheelhouse, "ferronn-*.whl")


def _metadata(wheel: Path) -> email.message.Message:
    with zipfile.ZipFile(wheel) as z:
        name = next(n for n in z.namelist() if n.endswith(".dist-info/METADATA"))
        return email.parser.Parser().parsestr(z.read(name).decode())


def test_wheel_name_tags_and_size(wheel):
    assert wheel.name == f"ferronn-{fn.__version__}-{TAG}.whl"
    with zipfile.ZipFile(wheel) as z:
        info = next(n for n in z.namelist() if n.endswith(".dist-info/WHEEL"))
        tags = re.findall(r"^Tag: (\S+)$", z.read(info).decode(), re.M)
        names = z.namelist()
    assert sorted(tags) == ["cp39-abi3-manylinux2014_x86_64", "cp39-abi3-manylinux_2_17_x86_64"]
    assert wheel.stat().st_size < MAX_WHEEL_BYTES, f"{wheel.stat().st_size} bytes"
    # the package, its typing files and the embedded data; nothing from the build tree
    assert {"ferronn/__init__.py", "ferronn/_core.pyi", "ferronn/py.typed"} <= set(names)
    assert [n for n in names if n.startswith("ferronn/_core") and n.endswith(".so")] == ["ferronn/_core.abi3.so"]
    assert any(n.startswith("ferronn/data/") for n in names)
    assert not [n for n in names if n.startswith(("tests/", "src/", "target/")) or "__pycache__" in n]


def test_wheel_declares_exactly_its_runtime_dependencies(wheel):
    meta = _metadata(wheel)
    assert meta["Version"] == fn.__version__
    assert meta["Requires-Python"] == ">=3.9"
    requires = meta.get_all("Requires-Dist") or []
    runtime = sorted(r for r in requires if "extra ==" not in r)
    assert runtime == ["numpy>=1.21", "tqdm>=4.60"]
    extras = set(meta.get_all("Provides-Extra") or [])
    assert {"export", "sklearn", "plot"} <= extras


def test_extension_needs_no_glibc_newer_than_2_17(wheel):
    with zipfile.ZipFile(wheel) as z:
        binary = z.read("ferronn/_core.abi3.so")
    versions = {tuple(int(p) for p in v.split(b".")) for v in re.findall(rb"GLIBC_(\d+(?:\.\d+)+)", binary)}
    assert versions, "no versioned glibc symbols found"
    assert max(versions) <= (2, 17), f"needs glibc {'.'.join(map(str, max(versions)))}"


def test_sdist_holds_what_a_source_build_needs(wheelhouse):
    sdist = _one(wheelhouse, "ferronn-*.tar.gz")
    assert sdist.name == f"ferronn-{fn.__version__}.tar.gz"
    with tarfile.open(sdist) as t:
        names = {n.split("/", 1)[1] for n in t.getnames() if "/" in n}
    assert {"Cargo.toml", "Cargo.lock", "pyproject.toml", "src/lib.rs", "python/ferronn/__init__.py",
            "README.md"} <= names
    assert not [n for n in names if n.startswith(("target/", "docs/"))]


def _path_without_rust() -> str:
    keep = [d for d in os.environ.get("PATH", "").split(os.pathsep)
            if d and not any(os.path.exists(os.path.join(d, tool)) for tool in ("cargo", "rustc", "rustup"))]
    return os.pathsep.join(keep)


@pytest.fixture(scope="session")
def fresh_venv(wheel, tmp_path_factory) -> tuple[Path, dict]:
    """A new virtual environment with the wheel installed. It sees the system's site-packages
    for numpy, tqdm and onnx (no network needed), but ferronn comes from the wheel."""
    folder = tmp_path_factory.mktemp("venv")
    venv.EnvBuilder(system_site_packages=True, with_pip=True).create(folder)
    python = folder / "bin" / "python"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTHON", "CARGO", "RUSTUP", "VIRTUAL_ENV"))}
    env["PATH"] = os.pathsep.join([str(folder / "bin"), _path_without_rust()])
    install = subprocess.run([str(python), "-m", "pip", "install", "--no-index", "--no-deps", "--force-reinstall",
                              "--disable-pip-version-check", str(wheel)],
                             capture_output=True, text=True, env=env, cwd=folder)
    assert install.returncode == 0, install.stdout + install.stderr
    return python, env


def test_wheel_installs_and_trains_without_rust(fresh_venv):
    python, env = fresh_venv
    done = subprocess.run([str(python), str(SMOKE), "--onnx"], capture_output=True, text=True, env=env,
                          cwd=python.parent.parent, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    report = json.loads(done.stdout.strip().splitlines()[-1])
    venv_root = python.parent.parent.resolve()
    assert report["cargo"] is None and report["rustc"] is None, "a Rust toolchain was on PATH"
    assert Path(report["prefix"]).resolve() == venv_root
    assert venv_root in Path(report["file"]).resolve().parents, f"ferronn imported from {report['file']}"
    assert report["version"] == fn.__version__
    assert report["accuracy"] > 0.9
