"""``keras.models``: ``Sequential`` and ``load_model`` (ferronn's safetensors model files)."""

from __future__ import annotations

import os
from typing import Any, Union, cast

from .. import _core
from ._common import missing_attr
from ._sequential import Sequential

__all__ = ["Sequential", "load_model"]


def load_model(filepath: Union[str, os.PathLike], custom_objects: Any = None, compile: bool = True,
               safe_mode: bool = True) -> Sequential:
    """A model saved by ``model.save(path)`` (ferronn's safetensors file, not a ``.keras``
    archive), as a ``keras.Sequential``, compiled as it was saved (``compile=False``
    only skips nothing: ferronn's files always hold the compile settings)."""
    from ._common import check_default
    check_default("load_model", "custom_objects", custom_objects, None)
    return cast(Sequential, Sequential._from_net(*_core.Network.load(os.fspath(filepath))))


def __getattr__(name: str) -> Any:
    missing_attr("models", name, {"Model": "the Functional API and subclassed models have no ferronn "
                                           "counterpart; use Sequential", "clone_model": "",
                                  "model_from_json": "use Sequential.from_config"})
