"""The exception types of diffsolve: every public function, the Stepper and the CLI raise only these.

Every message names the parameter, the value received, what was expected and how to fix it.
:class:`DiffsolveError` subclasses ``ValueError`` and :class:`DiffsolveTypeError` (an argument of the wrong type)
also ``TypeError``, so callers that already catch either builtin keep working; ``except DiffsolveError`` catches
them all.  :func:`plain` formats a value for a message.
"""

import numpy as np

__all__ = ["DiffsolveError", "DiffsolveTypeError", "ModelOutputError", "DiffsolveWarning", "plain"]


class DiffsolveError(ValueError):
    """Invalid input to a diffsolve function (the message names the value, the expectation and the fix)."""


class DiffsolveTypeError(DiffsolveError, TypeError):
    """An argument of the wrong type (also a ``TypeError``)."""


class ModelOutputError(DiffsolveError):
    """A model returned an output of the wrong shape, dtype, or with NaN/inf values."""


class DiffsolveWarning(UserWarning):
    """Something diffsolve worked around (e.g. an unusable or damaged cache); the message names it and the fix."""


def plain(value, limit: int = 80) -> str:
    """``value`` as plain Python text for a message (0.5, [1.0, 2.0], 'abc'; never a NumPy repr)."""
    if isinstance(value, np.ndarray):
        text = repr(value.tolist()) if value.size <= 8 else f"an array of shape {value.shape}"
    elif isinstance(value, np.generic):
        text = repr(value.item())
    elif isinstance(value, dict) and len(value) <= 8:
        text = "{" + ", ".join(f"{k!r}: {plain(v, limit)}" for k, v in value.items()) + "}"
    elif isinstance(value, (tuple, list)) and len(value) <= 8:
        inner = ", ".join(plain(v, limit) for v in value)
        text = f"({inner}{',' if len(value) == 1 else ''})" if isinstance(value, tuple) else f"[{inner}]"
    else:
        text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."
