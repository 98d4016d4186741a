"""Optional dependencies, imported when a feature first needs them."""

from __future__ import annotations

import importlib
from typing import Any

__all__ = ["require"]


def require(module: str, feature: str, package: str) -> Any:
    """Imports ``module``, or raises ImportError saying that ``feature`` needs ``package``
    and how to install it."""
    try:
        return importlib.import_module(module)
    except ImportError as e:  # depends on the environment
        raise ImportError(f"{feature} needs the {package} package: pip install {package}") from e
