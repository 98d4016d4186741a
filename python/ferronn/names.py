"""The activations and losses the core knows, read once from its tables.

The Rust core owns one table of activations (``src/activation/table.rs``) and one of
losses (``src/loss.rs``): canonical names, aliases, defaults and properties. This
module reads them through ``_core.activation_table()`` / ``_core.loss_table()``
and answers lookups, so the Python package keeps no copy of any of it:

>>> fn.names.activation("swish").name
'silu'
>>> fn.names.activation("leaky_relu").default_alpha
0.01
>>> info = fn.names.loss("categorical_crossentropy")
>>> info.name, info.uses_labels, info.proba
('cross_entropy', True, 'softmax')

Names are matched without regard to case, as the core matches them; an unknown
name raises ``UnknownNameError`` with the message the core would give.
"""

from __future__ import annotations

from typing import Any, Optional

from . import _core
from .errors import ConfigError, UnknownNameError

__all__ = ["ActivationInfo", "LossInfo", "activation", "activations", "activation_names", "check_alpha", "loss",
           "losses", "loss_task"]

ActivationInfo = _core.ActivationInfo
LossInfo = _core.LossInfo

_ACTIVATIONS: tuple[ActivationInfo, ...] = tuple(_core.activation_table())
_LOSSES: tuple[LossInfo, ...] = tuple(_core.loss_table())


def _index(rows: tuple[Any, ...]) -> dict[str, Any]:
    """Every accepted name (canonical and aliases) -> its row."""
    return {n: row for row in rows for n in (row.name, *row.aliases)}


_BY_ACTIVATION = _index(_ACTIVATIONS)
_BY_LOSS = _index(_LOSSES)


def _lookup(what: str, name: Any, index: dict[str, Any], rows: tuple[Any, ...]) -> Any:
    row = index.get(name.lower()) if isinstance(name, str) else None
    if row is None:
        # The core's wording (src/error.rs `unknown_name`): each name with its aliases.
        known = ", ".join(r.name if not r.aliases else f"{r.name} ({', '.join(r.aliases)})" for r in rows)
        raise UnknownNameError(f"unknown {what} '{name}'; expected one of: {known}")
    return row


def activation(name: str) -> ActivationInfo:
    """The row of activation ``name`` (a canonical name or an alias, any case);
    ``UnknownNameError`` listing the known names otherwise."""
    return _lookup("activation", name, _BY_ACTIVATION, _ACTIVATIONS)


def loss(name: str) -> LossInfo:
    """The row of loss ``name`` (a canonical name or an alias such as
    "categorical_crossentropy", any case): ``.name`` (canonical), ``.uses_labels``,
    ``.proba`` ("softmax", "sigmoid", "exp" or None), ``.takes_logits``.
    ``UnknownNameError`` listing the known names otherwise."""
    return _lookup("loss", name, _BY_LOSS, _LOSSES)


def loss_task(name: str) -> str:
    """How a model with loss ``name`` reads its targets and outputs, from the table's
    properties: "labels" (integer classes, one score per class: argmax predicts),
    "binary" (0/1 targets, one logit per output: a logit > 0 predicts 1) or "values"
    (regression: the outputs are the predictions)."""
    info = loss(name)
    if info.uses_labels:
        return "labels"
    return "binary" if info.proba == "sigmoid" else "values"


def activations() -> tuple[ActivationInfo, ...]:
    """Every activation, in the core's order."""
    return _ACTIVATIONS


def losses() -> tuple[LossInfo, ...]:
    """Every loss, in the core's order."""
    return _LOSSES


def activation_names() -> tuple[str, ...]:
    """Every name an activation may be given by, aliases included, in the core's order."""
    return tuple(_BY_ACTIVATION)


def check_alpha(info: ActivationInfo, alpha: Optional[float]) -> None:
    """``ConfigError`` when ``alpha`` is given to an activation without one, as the
    core would raise it (a finite ``alpha`` is checked where it is parsed)."""
    if alpha is not None and not info.takes_alpha:
        takers = " and ".join(r.name for r in _ACTIVATIONS if r.takes_alpha)
        raise ConfigError(f"activation '{info.name}' takes no alpha, but alpha={alpha} was given; "
                          f"only {takers} have one")
