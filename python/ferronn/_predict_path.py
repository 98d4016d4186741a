"""The predict fast path of ``Sequential``: a float32 ndarray given to a flat model goes
straight to the core's ``predict``; anything else, or anything the core refuses, takes
the full path through ``_features``. docs/PERFORMANCE.md ("The Python around a small
predict") says what it saves."""

from __future__ import annotations

from typing import Any, Callable, Optional, cast

import numpy as np

from . import _keras_methods as _km
from ._model_data import ShapedData

# float32 in native byte order: the one dtype the core reads without a copy.
F32 = np.dtype(np.float32)

__all__ = ["F32", "PredictPath"]


class PredictPath(ShapedData):
    """Mixin of ``Sequential``: ``predict_raw`` and the ``_logits`` its predict methods
    share. It reads the model's ``_net``, ``_fused_output`` and sample shape."""

    _fused_output: Optional[str]
    _require_built: Callable[[str], Any]
    # The fast path's key and callable (see `_fast_predict_for`); a cache, not state.
    _fast_predict: Optional[tuple[Any, ...]] = None

    def _fast_predict_for(self) -> tuple[Any, ...]:
        """``(net, fused output, sample shape, predict)`` for the current network, kept
        until one of the three changes: ``predict`` is the core's ``net.predict`` when
        inputs and outputs are flat rows (a float32 ``[N, width]`` array then needs none
        of ``_features``' conversions and no reshape), else None."""
        net, shape = self._net, self._sample_shape
        flat = (net is not None and (shape is None or len(shape) == 1) and not self._variable_steps
                and len(self._built_output_shape()) <= 1)
        cached = (net, self._fused_output, shape, net.predict if flat and net is not None else None)
        self._fast_predict = cached
        return cached

    def _fast_logits(self, x: Any) -> Optional[np.ndarray]:
        """The core's outputs for a float32 ndarray ``x`` of a flat model, straight from
        the core, which checks what ``_features`` would (2-D, C-contiguous, the width, at
        least one row, finite values); None when ``x`` needs the full path, which then
        converts it or raises the error. The checks move into Rust; none is dropped."""
        if type(x) is not np.ndarray or x.dtype is not F32:
            return None
        fast = self._fast_predict
        if fast is None or fast[0] is not self._net or fast[1] is not self._fused_output or fast[2] is not self._sample_shape:
            fast = self._fast_predict_for()
        if fast[3] is not None:
            try:
                return cast(np.ndarray, fast[3](x))
            except (TypeError, ValueError):  # not rows the core reads as they are
                pass
        return None

    def _full_logits(self, x: Any) -> np.ndarray:
        """The core's outputs for ``x`` after ``_features``' conversions and checks."""
        return self._require_built("predict").predict(self._features(x))

    def _logits(self, x: Any) -> np.ndarray:
        out = self._fast_logits(x)
        return out if out is not None else self._full_logits(x)

    def predict_raw(self, x: Any) -> np.ndarray:
        """The network's outputs: logits for classification losses, unless the model ends
        with a softmax / sigmoid (then the probabilities); shaped ``[N, *output_shape]``
        when the model's output is N-D."""
        if type(x) is np.ndarray and x.dtype is F32:
            # `_fast_logits` written out: a method call more costs ~0.12 µs, a tenth of
            # a 64-64-10 call at batch 1. Flat models only, so no reshape.
            fast = self._fast_predict
            if fast is None or fast[0] is not self._net or fast[1] is not self._fused_output or fast[2] is not self._sample_shape:
                fast = self._fast_predict_for()
            if fast[3] is not None:
                try:
                    out = fast[3](x)
                except (TypeError, ValueError):  # the full path below converts or raises
                    pass
                else:
                    return out if fast[1] is None else _km.apply_output(fast[1], out)
        return _km.apply_output(self._fused_output, self._outputs(self._full_logits(x)))
