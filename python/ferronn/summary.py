"""``Sequential.summary()``: a table of layers, output shapes and parameter counts."""

from __future__ import annotations

from typing import Any

__all__ = ["table"]


def _counts(net: Any) -> dict[str, tuple[int, int]]:
    """(trainable, non-trainable) scalar counts per tensor name."""
    return {name: (a.size, 0) if trainable else (0, a.size) for name, a, trainable in net.tensors()}


def _sum(counts: dict[str, tuple[int, int]], prefix: str) -> tuple[int, int]:
    inside = [c for n, c in counts.items() if n.startswith(prefix + ".")]
    return sum(t for t, _ in inside), sum(b for _, b in inside)


def _shape_text(shape: tuple[Any, ...]) -> str:
    return f"(None, {', '.join(str(d) for d in shape)})"


def _merge(a: tuple[Any, ...], b: tuple[Any, ...]) -> tuple[Any, ...]:
    """None on the axes where two shapes differ (the time axis of sequences of any length)."""
    return tuple(None if u != v else u for u, v in zip(a, b))


def _rows(named: list, shape: tuple[int, ...], counts: dict, depth: int, out: list) -> tuple[int, ...]:
    """Appends (name, output shape, params) rows for the ``(tensor prefix, layer)``
    pairs ``named`` on inputs of per-sample ``shape``; returns the output shape."""
    for p, layer in named:
        out_shape = layer.output_shape(shape)
        trainable, buffers = _sum(counts, p)
        label = "  " * depth + f"{type(layer).__name__}"
        out.append((label, out_shape, trainable + buffers))
        subs = layer.named_sublayers(p)
        if subs and layer.parallel_sublayers:
            for sub in subs:  # each reads this layer's input (Bidirectional's directions)
                _rows([sub], shape, counts, depth + 1, out)
        elif subs:
            # A Residual's projection layers run on the block's input, beside the block.
            skip = [(n, sub) for n, sub in subs if n.startswith(p + ".projection.")]
            _rows([s for s in subs if s not in skip], shape, counts, depth + 1, out)
            if skip:
                out.append(("  " * (depth + 1) + "projection", out_shape, sum(_sum(counts, p + ".projection"))))
                _rows(skip, shape, counts, depth + 2, out)
            elif out_shape != shape:
                proj = _sum(counts, p + ".projection")
                out.append(("  " * (depth + 1) + "projection (Dense)", out_shape, sum(proj)))
        shape = out_shape
    return shape


def table(model: Any, net: Any) -> str:
    counts = _counts(net)
    named = [(f"layers.{i}", layer) for i, layer in enumerate(model.layers)]
    shape: tuple[Any, ...] = tuple(model._sample_shape or (int(net.input_dim),))
    shaped: list[tuple[str, Any, int]] = []
    variable = getattr(model, "_variable_steps", False)
    _rows(named, (3, *shape[1:]) if variable else shape, counts, 0, shaped)
    if variable:  # sequences of any length: None where the length shows
        at2: list[tuple[str, Any, int]] = []
        _rows(named, (2, *shape[1:]), counts, 0, at2)
        shaped = [(name, _merge(s, s2), n) for (name, s, n), (_, s2, _) in zip(shaped, at2)]
        shape = (None, *shape[1:])
    rows = [(name, _shape_text(s), n) for name, s, n in shaped]
    header = ("Layer (type)", "Output Shape", "Param #")
    w0 = max(len(header[0]), *(len(r[0]) for r in rows)) + 2
    w1 = max(len(header[1]), *(len(r[1]) for r in rows)) + 2
    line = "-" * (w0 + w1 + 12)
    given = f"input shape {_shape_text(tuple(shape))}" if len(shape) > 1 or variable else f"input width {net.input_dim}"
    text = [f'Model: "Sequential" ({given})', line,
            f"{header[0]:<{w0}}{header[1]:<{w1}}{header[2]:>10}", "=" * len(line)]
    text += [f"{name:<{w0}}{shape:<{w1}}{n:>10,}" for name, shape, n in rows]
    trainable = sum(t for t, _ in counts.values())
    frozen = sum(b for _, b in counts.values())
    text += ["=" * len(line), f"Total params: {trainable + frozen:,}", f"Trainable params: {trainable:,}",
             f"Non-trainable params: {frozen:,}", line]
    return "\n".join(text)
