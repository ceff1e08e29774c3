"""The compiled runtime: scalar math written once (:mod:`.scalar`), compiled for the CPU (:mod:`.cpu`) and the
GPU (:mod:`.cuda`, imported lazily), with the per-run preparation shared by both (:mod:`.plan`).

* ``combine``: u = A x + sum B F + sum E H + sum C xi per coordinate pair, the normals drawn in-kernel from
  Philox4x32-10 keyed by (seed, sample index, step, draw, coordinate) exactly like
  :func:`diffsolve.noise.standard_normal`;
* ``gmm_predict``: the exact denoiser of a diagonal Gaussian mixture for one sample (log-sum-exp
  responsibilities, posterior means), returned in the solver's parameterisation;
* ``convert``: a model output of one prediction type as another, with a non-finite count for validation.
"""

from .scalar import make_kernels

__all__ = ["make_kernels"]
