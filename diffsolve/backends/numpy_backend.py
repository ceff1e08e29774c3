"""The NumPy backend: a readable interpreter of a :class:`~diffsolve.tableau.StepTable` (the test oracle).

For each step n it forms the stage inputs u_i = A[i] x + sum_j B[i,j] F_j + sum_m E[i,m] H_m + sum_q C[i,q] xi_q,
calls the model F_i = model(u_i, tau_i), forms the output the same way with row S (plus the norm-capped term of
a clipped table), and shifts the history.
"""

from __future__ import annotations

import numpy as np

from ..noise import standard_normal

__all__ = ["run", "clipped_term"]


def _combine(a, x, b, F, e, H, c, xi):
    out = a * x
    for coef, val in zip(b, F):
        if coef != 0.0:
            out = out + coef * val
    for coef, val in zip(e, H):
        if coef != 0.0:
            out = out + coef * val
    for coef, val in zip(c, xi):
        if coef != 0.0:
            out = out + coef * val
    return out


def clipped_term(bound, kb, ke, F, H, events=None):
    """The norm-capped output term f K of a :class:`~diffsolve.tableau.ClipTerm` for a batch (sample first):
    K = sum_j kb[j] F_j + sum_m ke[m] H_m, f = min(1, bound sqrt(D) / |K|) per sample (D coordinates).
    ``events`` (a list) receives the boolean mask of the samples whose term was capped."""
    K = None
    for coef, val in list(zip(kb, F)) + list(zip(ke, H)):
        if coef != 0.0:
            K = coef * val if K is None else K + coef * val
    if K is None:
        K = np.zeros_like(F[0])
    n = K.shape[0]
    flat = K.reshape(n, -1)
    ss = np.ascontiguousarray((flat * flat).T).sum(axis=0)  # row by row: the kernels' order, the same bits
    limit = bound * np.sqrt(flat.shape[1])
    capped = ss > limit * limit
    if events is not None:
        events.append(capped)
    if not capped.any():
        return K
    f = np.where(capped, limit / np.sqrt(np.where(capped, ss, 1.0)), 1.0)
    return np.where(capped.reshape((n,) + (1,) * (K.ndim - 1)), f.reshape((n,) + (1,) * (K.ndim - 1)) * K, K)


def step_noise(seed, sample_index, step, draw, shape):
    """Standard normals for one (step, draw), shaped like the state (batch first)."""
    flat = standard_normal(seed, sample_index, step, draw, int(np.prod(shape[1:], dtype=np.int64)))
    return flat.reshape(shape)


def run(table, model, x, *, seed, sample_index, history=(), step_offset=0, progress=None, noise=None,
        clip_events=None):
    """Advance ``x`` through every step of ``table``; ``history`` gives initial H_1..H_M (newest first).

    ``noise(n, q)`` optionally supplies the standard normals of row n, draw q (pathwise studies build them from
    one Brownian path); by default they come from the keyed Philox stream.  A clipped table adds its norm-capped
    term to the output; ``clip_events`` (a list) then receives each step's mask of capped samples.
    """
    S, M, Q = table.stages, table.history, table.noises
    H = list(history) + [np.zeros_like(x)] * (M - len(history))
    draw = noise or (lambda n, q: step_noise(seed, sample_index, step_offset + n + 1, q, x.shape))
    for n in range(table.steps):
        step = step_offset + n + 1  # noise counter: step 0 is reserved for the initial state
        xi = [draw(n, q) if np.any(table.C[n, :, q] != 0) else None for q in range(Q)]
        F = []
        for i in range(S):
            u = _combine(table.A[n, i], x, table.B[n, i, :i], F, table.E[n, i], H, table.C[n, i], xi)
            F.append(model(u, table.tau[n, i], step - 1))
        x = _combine(table.A[n, S], x, table.B[n, S], F, table.E[n, S], H, table.C[n, S], xi)
        if table.clip is not None:
            x = x + clipped_term(table.clip.bound[n], table.clip.B[n], table.clip.E[n], F, H, clip_events)
        if M:
            H = [F[table.keep]] + H[:-1]
        if progress is not None:
            progress.update(1)
    return x
