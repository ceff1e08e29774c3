"""The one exception type of diffsolve's input validation.

Every message says what was received, what was expected and how to fix it.  It subclasses ``ValueError``
so callers that already catch ``ValueError`` keep working.
"""


class DiffsolveError(ValueError):
    """Invalid input to a diffsolve function (the message names the value, the expectation and the fix)."""


class ModelOutputError(DiffsolveError):
    """A model returned an output of the wrong shape, dtype, or with NaN/inf values."""
