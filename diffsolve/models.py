"""Model adapters: a target or a user callable ``(x, t) -> prediction`` seen in the solver's parameterisation.

Outputs are checked on every call (shape, dtype, finiteness) so that a NaN or a wrong shape is reported at the
step where it happened instead of being passed on silently.
"""

from __future__ import annotations

import numpy as np

from . import predictions
from .errors import DiffsolveError, ModelOutputError
from .targets import Target

__all__ = ["ModelAdapter"]


class ModelAdapter:
    """Wraps ``model`` so that ``adapter(x, t)`` returns the solver's prediction type (``data`` or ``eps``)."""

    def __init__(self, model, schedule, solver_prediction: str, prediction: str | None = None):
        self.schedule = schedule
        self.solver_prediction = solver_prediction
        if isinstance(model, Target):  # a target produces every type exactly
            self.target = model
            self.native = solver_prediction
            self._fn = lambda x, t: model.predict(x, t, schedule, solver_prediction)
            return
        if not callable(model):
            raise DiffsolveError(
                f"model must be a diffsolve target or a callable (x, t) -> prediction, got {type(model).__name__}"
            )
        declared = prediction if prediction is not None else getattr(model, "prediction", None)
        if declared is None:
            raise DiffsolveError(
                "a model callable needs a declared prediction type: pass prediction='eps' (or 'data', 'v', "
                "'score', 'flow') to sample(), or give the callable a .prediction attribute"
            )
        self.native = predictions.check_prediction(declared)
        self.target = None
        self._fn = model

    @property
    def model(self):
        """The raw callable ``(x, t) -> prediction`` (its native type is ``self.native``)."""
        return self._fn

    def __call__(self, x: np.ndarray, t: float, step: int | None = None) -> np.ndarray:
        out = self._fn(x, t)
        out = self._validate(out, x, t, step)
        if self.native != self.solver_prediction:
            out = predictions.convert(out, x, t, self.schedule, self.native, self.solver_prediction)
        return out

    def _validate(self, out, x, t, step):
        where = f"at t = {float(t)!r}" + (f" (step {step})" if step is not None else "")
        if out is None or isinstance(out, (str, bytes, dict)):
            raise ModelOutputError(f"the model returned {type(out).__name__} {where}; return an array shaped like x")
        if not isinstance(out, np.ndarray):
            if hasattr(out, "detach") and hasattr(out, "cpu"):  # a torch tensor on the numpy backend
                out = out.detach().cpu().numpy()
            else:
                try:
                    out = np.asarray(out)
                except Exception:
                    raise ModelOutputError(f"the model returned {type(out).__name__} {where}; return an array like x") from None
        if out.shape != x.shape:
            raise ModelOutputError(
                f"the model returned shape {out.shape} {where} for an input of shape {x.shape}; it must return an "
                "array of the same shape as x"
            )
        if not np.issubdtype(out.dtype, np.floating):
            raise ModelOutputError(
                f"the model returned dtype {out.dtype} {where}; return floating-point values (float32 or float64)"
            )
        if not np.isfinite(out).all():
            bad = int(np.count_nonzero(~np.isfinite(out)))
            raise ModelOutputError(
                f"the model returned {bad} NaN/inf value(s) {where}; check the model (and its time "
                "conditioning) at this noise level; diffsolve never passes non-finite outputs on"
            )
        return out
