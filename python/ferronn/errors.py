"""Named exceptions.

Every error ferronn raises on purpose is one of these. Each also derives from the
built-in exception a Python user would expect (``ValueError`` for a bad value,
``TypeError`` for a bad type), so ``except ValueError`` keeps working.
The Rust core raises the same classes: ``src/python/errors.rs`` looks them up here.
"""

from __future__ import annotations

__all__ = [
    "FerronnError",
    "ShapeError",
    "DTypeError",
    "NonFiniteError",
    "LabelError",
    "EmptyInputError",
    "UnknownNameError",
    "ConfigError",
    "NotFittedError",
    "ModelFileError",
    "DatasetNotFoundError",
    "InternalError",
    "AllocationError",
    "DataFormatError",
    "ExportError",
    "NotSupportedError",
    "MaskWarning",
]


class FerronnError(Exception):
    """Base class of every error ferronn raises on purpose."""


class ShapeError(FerronnError, ValueError):
    """An array has the wrong number of dimensions, rows or columns."""


class DTypeError(FerronnError, TypeError):
    """An array has a dtype ferronn cannot use (e.g. strings, or floats as class labels)."""


class NonFiniteError(FerronnError, ValueError):
    """An input or target holds NaN or infinity."""


class LabelError(FerronnError, ValueError):
    """A class label is negative or not below the number of outputs."""


class EmptyInputError(FerronnError, ValueError):
    """An array has no samples where at least one is needed."""


class UnknownNameError(FerronnError, ValueError):
    """An activation, loss, initialiser or optimizer name that ferronn does not know."""


class ConfigError(FerronnError, ValueError):
    """A hyperparameter is out of range, or the model is configured inconsistently."""


class NotFittedError(FerronnError, ValueError, AttributeError):
    """The model was used before it was built (compiled and fitted, or given input_dim)."""


class ModelFileError(FerronnError, ValueError):
    """A model file is corrupt, truncated, or was not written by ferronn."""


class DatasetNotFoundError(FerronnError, FileNotFoundError):
    """A dataset's files are not where they were looked for."""


class DataFormatError(FerronnError, ValueError):
    """A data file is corrupt, truncated, or not in the expected format."""


class ExportError(FerronnError, ValueError):
    """A model cannot be written in a foreign format (ONNX, PyTorch's layout): a layer has no
    equivalent there, or an export option is out of range."""


class NotSupportedError(FerronnError, NotImplementedError):
    """A feature of the API being followed (Keras' layers, arguments, models) that
    ferronn has no counterpart for; the message names it."""


class AllocationError(FerronnError, MemoryError):
    """Memory for a model, a workspace or an output could not be reserved: the size asked
    for (it is in the message) is too large for this machine. Nothing was changed."""


class InternalError(FerronnError, RuntimeError):
    """A bug in ferronn itself (the Rust core failed in a way it should not). Please report it."""


class MaskWarning(UserWarning):
    """The step mask of padded sequences reaches a layer that does not support masking
    (Keras 3 warns the same): the mask ends there and padded steps reach its output."""
