"""Models as the driver sees them: a target or a user callable ``(x, t) -> prediction`` with its declared type.

The driver (:class:`diffsolve.stepper.Stepper`) converts every output into the solver's parameterisation exactly
(:mod:`diffsolve.predictions`) and checks it (type, shape, dtype, finiteness), so that a NaN or a wrong shape is
reported at the step where it happened instead of being passed on.
"""

from __future__ import annotations

from collections.abc import Mapping

from . import predictions
from .errors import DiffsolveError, DiffsolveTypeError, ModelOutputError
from .targets import Target

__all__ = ["ModelAdapter", "check_model_kwargs", "check_output_type"]


class ModelAdapter:
    """``model`` seen by the driver: ``fn(x, t)`` returns predictions of type ``native``; ``target`` is the
    analytic target when there is one (it predicts the solver's type directly; backends may fuse it);
    ``log_density(x, t)`` gives log p_t(x) per sample where the model has it (a target, or a callable with a
    ``log_density`` attribute), else None (MALA with the exact energy needs it).  ``model_kwargs`` (a mapping)
    are passed to every call of a callable (and of its ``log_density``) as keyword arguments."""

    def __init__(self, model, schedule, solver_prediction: str, prediction: str | None = None, model_kwargs=None):
        self.schedule = schedule
        self.solver_prediction = solver_prediction
        self.kwargs = check_model_kwargs(model_kwargs)
        if isinstance(model, Target):  # a target produces every type exactly
            if self.kwargs:
                raise DiffsolveError(f"model_kwargs ({', '.join(self.kwargs)}) were passed, but the model is a "
                                     f"diffsolve target ({type(model).__name__}), which takes no conditioning; drop "
                                     "model_kwargs or pass a model callable")
            self.target = model
            self.native = solver_prediction
            self.fn = lambda x, t: model.predict(x, t, schedule, solver_prediction)
            self.log_density = lambda x, t: model.logpdf(x, t, schedule)
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
        self.fn = model
        self.log_density = getattr(model, "log_density", None)
        if self.kwargs:
            kw, log_density = self.kwargs, self.log_density
            self.fn = lambda x, t: model(x, t, **kw)
            if log_density is not None:
                self.log_density = lambda x, t: log_density(x, t, **kw)


def check_model_kwargs(model_kwargs) -> dict:
    """``model_kwargs`` as a dict (None: empty), refusing what is not a mapping with string keys."""
    if model_kwargs is None:
        return {}
    if not isinstance(model_kwargs, Mapping):
        raise DiffsolveTypeError(f"model_kwargs must be a mapping of keyword arguments passed to every model call "
                                 f"(e.g. dict(y=labels)), got {type(model_kwargs).__name__}")
    bad = [k for k in model_kwargs if not isinstance(k, str)]
    if bad:
        raise DiffsolveTypeError(f"model_kwargs keys must be strings (keyword argument names), got {bad[0]!r}; "
                                 "pass e.g. model_kwargs=dict(y=labels)")
    return dict(model_kwargs)


def check_output_type(out, where: str):
    """Refuse model outputs that are not arrays at all (None, strings, mappings) before any conversion."""
    if out is None or isinstance(out, (str, bytes, dict)):
        raise ModelOutputError(f"the model returned {type(out).__name__} {where}; return an array shaped like x")
    return out
