"""What the gallery tests share: running an example's fast mode, and checking that the
figures it wrote are real PNG files."""

import importlib.util
import pathlib

EXAMPLES = pathlib.Path(__file__).resolve().parents[2] / "examples"
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
FASHION_DIR = pathlib.Path("/usr/share/datasets/fashion-mnist")


def load_example(name):
    """Imports examples/<name>.py (its name starts with a digit, so not by `import`)."""
    spec = importlib.util.spec_from_file_location(f"gallery_{name}", EXAMPLES / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def run_example(name, out_dir):
    """Runs examples/<name>.py's main(fast=True), writing its figures into out_dir."""
    return load_example(name).main(fast=True, out_dir=str(out_dir))


def assert_png(path, min_bytes=2000):
    data = pathlib.Path(path).read_bytes()
    assert data[:8] == PNG_MAGIC and len(data) > min_bytes, f"{path} is not a real PNG"


def assert_figures(result, out_dir, names):
    """The example reported exactly `names` as its figures, and wrote each into out_dir."""
    assert sorted(pathlib.Path(p).name for p in result["figures"]) == sorted(names)
    for name in names:
        path = pathlib.Path(out_dir) / name
        assert path.is_file(), f"{name} was not written"
        assert_png(path)
