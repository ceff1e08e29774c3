"""The exception types of diffsolve: every public function, the Stepper and the CLI raise only these.

Every message names the parameter, the value received, what was expected and how to fix it.
:class:`DiffsolveError` subclasses ``ValueError`` and :class:`DiffsolveTypeError` (an argument of the wrong type)
also ``TypeError``, so callers that already catch either builtin keep working; ``except DiffsolveError`` catches
them all.
"""


class DiffsolveError(ValueError):
    """Invalid input to a diffsolve function (the message names the value, the expectation and the fix)."""


class DiffsolveTypeError(DiffsolveError, TypeError):
    """An argument of the wrong type (also a ``TypeError``)."""


class ModelOutputError(DiffsolveError):
    """A model returned an output of the wrong shape, dtype, or with NaN/inf values."""


class DiffsolveWarning(UserWarning):
    """Something diffsolve worked around (e.g. an unusable or damaged cache); the message names it and the fix."""
