"""The scalar math of the compiled runtime, written once as plain Python and compiled for each target.

:func:`make_kernels` applies a decorator (``numba.njit`` for the CPU, ``numba.cuda.jit(device=True)`` for the
GPU, the identity for plain Python) to every function here, callees included, like
:func:`diffsolve.noise.make_noise_functions`.  Only the thin batch loops differ between the targets
(:mod:`diffsolve.kernels.cpu`, :mod:`diffsolve.kernels.cuda`).

Array conventions (the same on every target):

* a state is 2-D ``(n, d)``, addressed ``x[i, j]`` (sample ``i``, flattened coordinate ``j``);
* ``V (slots, n, d)`` is the slot stack of stage outputs ``F_s`` and history values ``H_m`` (S + M slots, one
  fewer under the in-place plan of ``advance_span``); at step ``m`` ``F_s`` lives in slot ``fslot[m, s]`` (-1:
  not stored) and ``H_q`` in ``hslot[m, q]`` (:func:`~diffsolve.kernels.plan.slot_plan`), so the history shift
  is a relabelling, not a copy;
* coefficient arrays are the whole run's ``A (N, S+1)``, ``B (N, S+1, S)``, ``E (N, S+1, M)``,
  ``C (N, S+1, Q)`` indexed by ``(m, row)``: the functions never slice (slicing in a parallel loop costs an
  atomic reference count on a shared array);
* the CUDA fused kernel passes per-thread local arrays with ``n = 1``, ``i = 0``.

The combine follows the NumPy interpreter's floating-point order (``a x``, then the ``B``, ``E`` and ``C`` terms
in index order, zero coefficients skipped), so in float64 on the CPU it is bitwise identical to it.
"""

from __future__ import annotations

import math
from types import SimpleNamespace

import numpy as np

from ..noise.philox import make_noise_functions

__all__ = ["make_kernels", "EXP_UNDERFLOW"]

# Responsibilities below exp(-708) < 2**-1021 (relative to the largest, 1) cannot change any sum they join: they are
# taken as exactly 0 (libm's exp also takes a slow path for such subnormal results).
EXP_UNDERFLOW = -708.0

# exp on (-708, 0] as plain arithmetic (so that the K exponentials of a softmax vectorise): Cody-Waite reduction
# z = n ln2 + r, |r| <= ln2/2, with ln2 split so that n * LN2_HI is exact (fdlibm's constants); Taylor polynomial
# of degree 13 (truncation < 1e-17 relative); 2**n from a table.  Within ~1 ulp of libm's exp.
_LN2_HI = 6.93147180369123816490e-01
_LN2_LO = 1.90821492927058770002e-10
_INV_LN2 = 1.44269504088896338700e00
_LN2 = 0.69314718055994530942
_POW2_NEG = np.array([2.0**-k for k in range(1024)])  # 2**-k, k = 0..1023 (all normal numbers)
_E2, _E3, _E4, _E5, _E6, _E7, _E8, _E9, _E10, _E11, _E12, _E13 = (1.0 / math.factorial(k) for k in range(2, 14))


def make_kernels(decorate, decorate_fast=None, decorate_scalar=None):
    """Compile the scalar runtime with ``decorate``; returns a namespace of the compiled functions:

    * ``combine_pair`` (one coordinate pair, accumulated in registers: the GPU's element-wise form),
      ``combine_span`` / ``combine_row`` (term by term over a run of coordinates: the CPU's and the fused
      kernels' form; the same bits per element);
    * ``convert_span`` (a model output converted to the solver's prediction type, with a non-finite count);
    * ``clip_add`` (the correction :class:`~diffsolve.corrections.ClippedMomentum`, per sample; corrections have
      the signature ``kernel(out, V, i, m, fslot, hslot, *arrays)``);
    * ``gmm_predict`` (the exact mixture model for one sample; ``gmm_predict_iso`` / ``gmm_predict_diag`` its two
      component forms) and its parts.

    ``decorate_fast`` (default ``decorate``) compiles the mixture denoiser's parts and ``decorate_scalar``
    (default ``decorate``) the Philox generator: the CPU inlines everything else at Numba-IR level but leaves
    the generator out of line, which halves compile times.  The identity decorator gives plain Python.
    """
    fast = decorate_fast or decorate
    plain = decorate_scalar or decorate
    noise = make_noise_functions(plain)
    normal_pair = noise.normal_pair
    philox = noise.philox4x32_10
    u53 = noise.uniform53

    def combine_pair(out, x, V, i, b, A, B, E, C, m, r, fslot, hslot, seed_lo, seed_hi, sidx, step):
        """Coordinates 2b, 2b+1 of sample i for tableau row r of step m:

        out = A[m,r] x + sum_{s<r} B[m,r,s] F_s + sum_q E[m,r,q] H_q + sum_q C[m,r,q] xi_q, where xi_q is the
        Philox normal pair of counter (b, sidx, step, q) (one generator call per pair and draw, the numbers of
        :func:`diffsolve.noise.standard_normal`).  ``out`` may be ``x`` (in place).
        """
        d = x.shape[1]
        j0 = 2 * b
        j1 = j0 + 1
        if j1 >= d:
            j1 = j0
        a = A[m, r]
        v0 = a * x[i, j0]
        v1 = a * x[i, j1]
        for s in range(r):  # row r < S is stage r (explicit: F_s for s < r); row S is the output
            c = B[m, r, s]
            if c != 0:
                v0 += c * V[fslot[m, s], i, j0]
                v1 += c * V[fslot[m, s], i, j1]
        for q in range(E.shape[2]):
            c = E[m, r, q]
            if c != 0:
                v0 += c * V[hslot[m, q], i, j0]
                v1 += c * V[hslot[m, q], i, j1]
        for q in range(C.shape[2]):
            c = C[m, r, q]
            if c != 0:
                z0, z1 = normal_pair(seed_lo, seed_hi, b, sidx & 0xFFFFFFFF, step, q)
                v0 += c * z0
                v1 += c * z1
        out[i, j0] = v0
        if j1 != j0:
            out[i, j1] = v1

    combine_pair_d = decorate(combine_pair)

    def scale_span(out, x, i, jlo, jhi, a, inplace):
        """out[i, j] = a x[i, j] for j = jlo..jhi-1 (the first term of a combine).  ``inplace`` says that ``out`` is
        ``x``: the pass then reads and writes one array, which LLVM vectorises (two names for one array defeat its
        overlap checks)."""
        if inplace:
            for j in range(jlo, jhi):
                out[i, j] = a * out[i, j]
        else:
            for j in range(jlo, jhi):
                out[i, j] = a * x[i, j]

    def add_slot_span(out, i, V, sl, k, jlo, jhi, c):
        """out[i, j] += c V[sl, k, j] for j = jlo..jhi-1 (one term of a combine: one vector loop)."""
        for j in range(jlo, jhi):
            out[i, j] += c * V[sl, k, j]

    def add_noise_span(out, i, jlo, jhi, jkey, c, seed_lo, seed_hi, sidx, step, q):
        """out[i, j] += c xi_j for j = jlo..jhi-1, xi the Philox normals of draw q (row i's column 0 is the
        sample's coordinate ``jkey``, even: one generator call per coordinate pair)."""
        kb = jkey // 2
        for b in range(jlo // 2, jhi // 2):
            z0, z1 = normal_pair(seed_lo, seed_hi, kb + b, sidx & 0xFFFFFFFF, step, q)
            out[i, 2 * b] += c * z0
            out[i, 2 * b + 1] += c * z1
        if jhi % 2 == 1:
            z0, z1 = normal_pair(seed_lo, seed_hi, kb + jhi // 2, sidx & 0xFFFFFFFF, step, q)
            out[i, jhi - 1] += c * z0

    scale_span_d, add_slot_span_d, add_noise_span_d = decorate(scale_span), decorate(add_slot_span), decorate(
        add_noise_span)


    def combine_span(out, x, V, i, jlo, jhi, jkey, A, B, E, C, m, r, fslot, hslot, seed_lo, seed_hi, sidx, step,
                     inplace):
        """``combine_pair`` for coordinates jlo..jhi-1 of row i, term by term: each term is one vector loop (the
        CPU's and the fused kernels' form).  Row i may be a piece of a sample: its column 0 is the sample's
        coordinate ``jkey`` (even) for the noise keys.  Every element sees the same operations in the same order
        as in ``combine_pair``, so both give the same bits (a GPU compiler may contract a*b + c in either).
        ``inplace``: ``out`` is ``x`` (``scale_span``).
        """
        scale_span_d(out, x, i, jlo, jhi, A[m, r], inplace)
        for s in range(r):
            c = B[m, r, s]
            if c != 0:
                add_slot_span_d(out, i, V, fslot[m, s], i, jlo, jhi, c)
        for q in range(E.shape[2]):
            c = E[m, r, q]
            if c != 0:
                add_slot_span_d(out, i, V, hslot[m, q], i, jlo, jhi, c)
        for q in range(C.shape[2]):
            c = C[m, r, q]
            if c != 0:
                add_noise_span_d(out, i, jlo, jhi, jkey, c, seed_lo, seed_hi, sidx, step, q)

    combine_span_d = decorate(combine_span)

    def combine_row(out, x, V, i, A, B, E, C, m, r, fslot, hslot, seed_lo, seed_hi, sidx, step, inplace):
        """Tableau row r of step m for every coordinate of sample i (``combine_span`` over the whole row)."""
        combine_span_d(out, x, V, i, 0, x.shape[1], 0, A, B, E, C, m, r, fslot, hslot, seed_lo, seed_hi, sidx,
                       step, inplace)

    def clip_term(V, i, j, KB, KE, m, fslot, hslot):
        """K_j = sum_s KB[m,s] F_s + sum_q KE[m,q] H_q at coordinate j of sample i (zero coefficients skipped)."""
        v = KB[m, 0] - KB[m, 0]
        for s in range(KB.shape[1]):
            c = KB[m, s]
            if c != 0:
                v += c * V[fslot[m, s], i, j]
        for q in range(KE.shape[1]):
            c = KE[m, q]
            if c != 0:
                v += c * V[hslot[m, q], i, j]
        return v

    clip_term_d = decorate(clip_term)

    def clip_add(out, V, i, m, fslot, hslot, KB, KE, bound):
        """out[i] += f K for the norm-capped term K of step m (:class:`~diffsolve.corrections.ClippedMomentum`):
        f = min(1, bound[m] sqrt(d) / |K|).  Returns 1 when the cap acted (a clip event), else 0."""
        d = out.shape[1]
        ss = KB[m, 0] - KB[m, 0]
        for j in range(d):
            v = clip_term_d(V, i, j, KB, KE, m, fslot, hslot)
            ss += v * v
        limit = bound[m] * math.sqrt(d)
        if ss > limit * limit:
            f = limit / math.sqrt(ss)
            for j in range(d):
                out[i, j] += f * clip_term_d(V, i, j, KB, KE, m, fslot, hslot)
            return 1
        for j in range(d):
            out[i, j] += clip_term_d(V, i, j, KB, KE, m, fslot, hslot)
        return 0

    def convert_value(v, w, fx, fd, tx, td):
        """A model output v of type P = fx u + fd D at state value w, as type P' = tx u + td D."""
        return tx * w + td * ((v - fx * w) / fd)

    convert_value_d = decorate(convert_value)

    def stage_value(v, w, fx, fd, tx, td, identity):
        """``convert_value``, or v itself for the identity conversion (a loop-invariant test: LLVM unswitches
        the loops that call this)."""
        return v if identity else convert_value_d(v, w, fx, fd, tx, td)

    stage_value_d = decorate(stage_value)

    def count_nonfinite(vals, i, jlo, jhi):
        """The number of NaN / inf values in vals[i, jlo:jhi] (v - v is 0, or NaN for inf / NaN: an integer count
        that vectorises)."""
        bad = 0
        for j in range(jlo, jhi):
            bad += (vals[i, j] - vals[i, j]) != 0
        return bad

    count_nonfinite_d = decorate(count_nonfinite)

    def convert_span(V, slot, vals, u, i, jlo, jhi, fx, fd, tx, td, identity):
        """V[slot, i, j] = model output vals[i, j] of type P = fx u + fd D as type P' = tx u + td D, for
        j = jlo..jhi-1, with the operations of :func:`diffsolve.predictions.convert` (tx = 0, td = 1 gives D
        exactly).  Returns the number of non-finite model outputs (validation)."""
        for j in range(jlo, jhi):
            V[slot, i, j] = stage_value_d(vals[i, j], u[i, j], fx, fd, tx, td, identity)
        return count_nonfinite_d(vals, i, jlo, jhi)

    def one_stage_row(out, D, k, vals, i, w, a, b, e, fx, fd, tx, td, identity, H, h, same):
        """The in-place output row of a one-stage step in one loop: f = the converted model output, then
        out[i, j] = a out[i, j] + b f + e H[h, i, j], f stored as D[k, 0, j] (the scratch row).  ``same``: D is
        the slot stack and H_0 lives in its slot k, where f is stored as D[k, i, j]: each element of H_0 is read
        just before it is overwritten (one index expression for both keeps the loop vectorisable).  ``e`` is 0
        when there is no H_0 term.  Returns whether any model output was non-finite (a flag: an integer count
        in the loop costs as much as the rest of it; :func:`count_nonfinite` counts)."""
        bad = False
        r = 0  # D's row (the scratch)
        if same:
            for j in range(w):
                v = vals[i, j]
                y = out[i, j]
                f = stage_value_d(v, y, fx, fd, tx, td, identity)
                g = D[k, i, j]
                D[k, i, j] = f
                out[i, j] = a * y + b * f + e * g
                bad |= (v - v) != 0
        elif e == 0:
            for j in range(w):
                v = vals[i, j]
                y = out[i, j]
                f = stage_value_d(v, y, fx, fd, tx, td, identity)
                D[k, r, j] = f
                out[i, j] = a * y + b * f
                bad |= (v - v) != 0
        else:
            for j in range(w):
                v = vals[i, j]
                y = out[i, j]
                f = stage_value_d(v, y, fx, fd, tx, td, identity)
                D[k, r, j] = f
                out[i, j] = a * y + b * f + e * H[h, i, j]
                bad |= (v - v) != 0
        return bad

    one_stage_row_d = decorate(one_stage_row)


    def advance_span(V, T, vals, u, out, x, i, jkey, fx, fd, tx, td, identity, A, B, E, C, m, fslot, hslot,
                     seed_lo, seed_hi, sidx, step, alias):
        """The output row of step m for row i with the last stage's model output taken straight from ``vals``
        and stored in slot ``fslot[m, S-1]`` after the row has read every term (not at all where that is -1:
        nothing reads it after the step).  This is the slot plan of :func:`~diffsolve.kernels.plan.slot_plan`
        with ``last_in_place``, where that slot is the oldest history value's: the store lands on cache lines
        the row has just loaded (no separate stream, no read-for-ownership).  Same bits as ``convert_span`` then
        ``combine_span``; returns the number of non-finite model outputs.

        ``alias``: 0 if out, x and u are distinct, 1 if ``out`` is ``x``, 2 if ``u`` is ``x`` too.  A one-stage
        row in place (alias 2: every multistep method) runs as one loop, the conversion, ``a x + b F_0 + e H_0``
        and the store together (with one history value the loop reads H_0 and overwrites it in the same
        iteration); otherwise the output is converted into the scratch row ``T[0, 0]`` and the terms follow one
        loop each.
        """
        w = x.shape[1]
        S = A.shape[1] - 1
        M = E.shape[2]
        a = A[m, S]
        b = B[m, S, S - 1]
        e = E[m, S, 0] if M > 0 else a - a
        sl = fslot[m, S - 1]
        bad = False
        q0 = 0  # E terms from q0 on are left to one loop each
        if S == 1 and alias == 2 and b != 0:
            if M == 1 and e != 0 and sl == hslot[m, 0]:  # H_0 read, then overwritten by F_0, element by element
                bad = one_stage_row_d(out, V, sl, vals, i, w, a, b, e, fx, fd, tx, td, identity, V, sl, True)
                q0, sl = 1, -1
            else:
                if M > 0 and e != 0:
                    q0 = 1
                else:
                    e = a - a
                bad = one_stage_row_d(out, T, 0, vals, i, w, a, b, e, fx, fd, tx, td, identity, V,
                                      hslot[m, 0] if M > 0 else 0, False)
        else:
            for j in range(w):
                v = vals[i, j]
                T[0, 0, j] = stage_value_d(v, u[i, j], fx, fd, tx, td, identity)
                bad |= (v - v) != 0
            scale_span_d(out, x, i, 0, w, a, alias > 0)
            for s in range(S - 1):
                c = B[m, S, s]
                if c != 0:
                    add_slot_span_d(out, i, V, fslot[m, s], i, 0, w, c)
            if b != 0:
                add_slot_span_d(out, i, T, 0, 0, 0, w, b)
        for q in range(q0, M):
            c = E[m, S, q]
            if c != 0:
                add_slot_span_d(out, i, V, hslot[m, q], i, 0, w, c)
        for q in range(C.shape[2]):
            c = C[m, S, q]
            if c != 0:
                add_noise_span_d(out, i, 0, w, jkey, c, seed_lo, seed_hi, sidx, step, q)
        if sl >= 0:
            for j in range(w):
                V[sl, i, j] = T[0, 0, j]
        return count_nonfinite_d(vals, i, 0, w) if bad else 0

    def subtract4(ll, aux, m, s, k, a0, a1, a2, a3):
        """ll[k + q] = aux[m, s, k + q] - a_q for the four components k..k+3 (a diagonal distance sweep's result)."""
        ll[k] = aux[m, s, k] - a0
        ll[k + 1] = aux[m, s, k + 1] - a1
        ll[k + 2] = aux[m, s, k + 2] - a2
        ll[k + 3] = aux[m, s, k + 3] - a3

    subtract4_d = fast(subtract4)

    def log_lik_iso(u, i, tab, aux, m, s, ll):
        """ll[k] = log w_k - 0.5 sum_j [(u_j - a m_kj)^2 / var_k + log(2 pi var_k)], isotropic components."""
        K = ll.shape[0]
        d = u.shape[1]
        k = 0
        while k + 4 <= K:  # four components per sweep: one load of u_j feeds four distances
            a0 = aux[m, s, k] - aux[m, s, k]
            a1 = a0
            a2 = a0
            a3 = a0
            for j in range(d):
                x = u[i, j]
                e0 = x - tab[m, s, 0, k, j]
                e1 = x - tab[m, s, 0, k + 1, j]
                e2 = x - tab[m, s, 0, k + 2, j]
                e3 = x - tab[m, s, 0, k + 3, j]
                a0 += e0 * e0
                a1 += e1 * e1
                a2 += e2 * e2
                a3 += e3 * e3
            ll[k] = aux[m, s, k] - tab[m, s, 1, k, 0] * a0
            ll[k + 1] = aux[m, s, k + 1] - tab[m, s, 1, k + 1, 0] * a1
            ll[k + 2] = aux[m, s, k + 2] - tab[m, s, 1, k + 2, 0] * a2
            ll[k + 3] = aux[m, s, k + 3] - tab[m, s, 1, k + 3, 0] * a3
            k += 4
        while k < K:
            acc = aux[m, s, k] - aux[m, s, k]
            for j in range(d):
                e = u[i, j] - tab[m, s, 0, k, j]
                acc += e * e
            ll[k] = aux[m, s, k] - tab[m, s, 1, k, 0] * acc
            k += 1

    def log_lik_diag(u, i, tab, aux, m, s, ll):
        """ll[k] = log w_k - 0.5 sum_j [(u_j - a m_kj)^2 / var_kj + log(2 pi var_kj)], diagonal components."""
        K = ll.shape[0]
        d = u.shape[1]
        k = 0
        while k + 4 <= K:
            a0 = aux[m, s, k] - aux[m, s, k]
            a1 = a0
            a2 = a0
            a3 = a0
            for j in range(d):
                x = u[i, j]
                e0 = x - tab[m, s, 0, k, j]
                e1 = x - tab[m, s, 0, k + 1, j]
                e2 = x - tab[m, s, 0, k + 2, j]
                e3 = x - tab[m, s, 0, k + 3, j]
                a0 += e0 * e0 * tab[m, s, 1, k, j]
                a1 += e1 * e1 * tab[m, s, 1, k + 1, j]
                a2 += e2 * e2 * tab[m, s, 1, k + 2, j]
                a3 += e3 * e3 * tab[m, s, 1, k + 3, j]
            subtract4_d(ll, aux, m, s, k, a0, a1, a2, a3)
            k += 4
        while k < K:
            acc = aux[m, s, k] - aux[m, s, k]
            for j in range(d):
                e = u[i, j] - tab[m, s, 0, k, j]
                acc += e * e * tab[m, s, 1, k, j]
            ll[k] = aux[m, s, k] - acc
            k += 1

    log_lik_iso_d = fast(log_lik_iso)
    log_lik_diag_d = fast(log_lik_diag)

    def exp_nonpositive(z):
        """exp(z) for z <= 0 within ~1 ulp, 0 below EXP_UNDERFLOW; branch-free so that loops over it vectorise."""
        zc = max(z, EXP_UNDERFLOW)
        n = math.floor(zc * _INV_LN2 + 0.5)
        r = (zc - n * _LN2_HI) - n * _LN2_LO
        p = _E13
        p = p * r + _E12
        p = p * r + _E11
        p = p * r + _E10
        p = p * r + _E9
        p = p * r + _E8
        p = p * r + _E7
        p = p * r + _E6
        p = p * r + _E5
        p = p * r + _E4
        p = p * r + _E3
        p = p * r + _E2
        p = p * r + 1.0
        p = p * r + 1.0
        e = p * _POW2_NEG[int(-n)]
        if z < EXP_UNDERFLOW:
            e = 0.0
        return e

    exp_nonpositive_d = decorate(exp_nonpositive)

    def softmax_inplace(ll):
        """ll <- exp(ll - max), flushed to 0 below 2**-(54 + b) with 2**b >= K; returns (their sum, the max): the
        log-sum-exp of the original ll is max + log(sum).

        The flushed terms, at most 2**-54 / K each next to the largest (1), sum to less than half an ulp of the
        float64 sum, so the sum and the responsibilities are those of the full softmax to rounding.  The flush
        keeps float32 responsibilities out of the subnormal range (a subnormal operand costs a microcode assist
        per instruction: the float32 kernel ran slower than the float64 one) and lets the posterior skip the
        components that cannot contribute (most of them near t = 0)."""
        K = ll.shape[0]
        b = 0
        while (1 << b) < K:
            b += 1
        cut = -(54 + b) * _LN2
        mx = ll[0]
        for k in range(1, K):
            mx = max(mx, ll[k])
        for k in range(K):
            z = ll[k] - mx
            ll[k] = exp_nonpositive_d(z) if z >= cut else z - z
        tot = ll[0]
        for k in range(1, K):
            tot += ll[k]
        return tot, mx

    softmax_d = decorate(softmax_inplace)

    def posterior_iso(V, slot, u, i, tab, m, s, ll, inv, cx, cd):
        """Isotropic components: D = sum_k r_k p0_k + (sum_k r_k g_k) u; V[slot, i] = c_x u + c_D D.

        Components go four at a time (one pass over the output row per four); blocks of zero responsibilities
        are skipped, which cannot change a bit: the row starts at 0 and a skipped block would add exact zeros
        (so the paired form below, which skips a block only when it is zero for both samples, does for each
        sample what this one does)."""
        K = ll.shape[0]
        d = u.shape[1]
        gsum = inv - inv
        for j in range(d):
            V[slot, i, j] = gsum
        k = 0
        while k < K:
            if k + 4 <= K:
                if ll[k] != 0 or ll[k + 1] != 0 or ll[k + 2] != 0 or ll[k + 3] != 0:
                    r0 = ll[k] * inv
                    r1 = ll[k + 1] * inv
                    r2 = ll[k + 2] * inv
                    r3 = ll[k + 3] * inv
                    gsum += (r0 * tab[m, s, 3, k, 0] + r1 * tab[m, s, 3, k + 1, 0]
                             + r2 * tab[m, s, 3, k + 2, 0] + r3 * tab[m, s, 3, k + 3, 0])
                    for j in range(d):
                        V[slot, i, j] += (r0 * tab[m, s, 2, k, j] + r1 * tab[m, s, 2, k + 1, j]
                                          + r2 * tab[m, s, 2, k + 2, j] + r3 * tab[m, s, 2, k + 3, j])
                k += 4
            else:
                if ll[k] != 0:
                    r = ll[k] * inv
                    gsum += r * tab[m, s, 3, k, 0]
                    for j in range(d):
                        V[slot, i, j] += r * tab[m, s, 2, k, j]
                k += 1
        gx = cx + cd * gsum
        for j in range(d):
            V[slot, i, j] = cd * V[slot, i, j] + gx * u[i, j]

    def posterior_diag(V, slot, u, i, tab, m, s, ll, inv, cx, cd):
        """Diagonal components: D = sum_k r_k (p0_k + g_k u); V[slot, i] = c_x u + c_D D (blocks as above)."""
        K = ll.shape[0]
        d = u.shape[1]
        for j in range(d):
            V[slot, i, j] = inv - inv
        k = 0
        while k < K:
            if k + 4 <= K:
                if ll[k] != 0 or ll[k + 1] != 0 or ll[k + 2] != 0 or ll[k + 3] != 0:
                    r0 = ll[k] * inv
                    r1 = ll[k + 1] * inv
                    r2 = ll[k + 2] * inv
                    r3 = ll[k + 3] * inv
                    for j in range(d):
                        x = u[i, j]
                        V[slot, i, j] += (r0 * (tab[m, s, 2, k, j] + tab[m, s, 3, k, j] * x)
                                          + r1 * (tab[m, s, 2, k + 1, j] + tab[m, s, 3, k + 1, j] * x)
                                          + r2 * (tab[m, s, 2, k + 2, j] + tab[m, s, 3, k + 2, j] * x)
                                          + r3 * (tab[m, s, 2, k + 3, j] + tab[m, s, 3, k + 3, j] * x))
                k += 4
            else:
                if ll[k] != 0:
                    r = ll[k] * inv
                    for j in range(d):
                        V[slot, i, j] += r * (tab[m, s, 2, k, j] + tab[m, s, 3, k, j] * u[i, j])
                k += 1
        for j in range(d):
            V[slot, i, j] = cx * u[i, j] + cd * V[slot, i, j]

    posterior_iso_d = fast(posterior_iso)
    posterior_diag_d = fast(posterior_diag)

    # -- several samples per sweep (the CPU fused kernel's register blocking) ---------------------------------------
    # Each table element loaded feeds several samples: four in the isotropic distance sweep (8 loads per 16
    # distance updates instead of 5 per 4), two in the diagonal one and in the posteriors (one pass over both
    # output rows per four components).  Each sample sees the operations of the one-sample functions above in the
    # same order whatever its partners, so its bits do not depend on the grouping (batch splits and thread counts
    # stay bitwise invariant).

    def column4(tab, m, s, r, k, j):
        """The table entries tab[m, s, r, k..k+3, j] (four components at coordinate j)."""
        return tab[m, s, r, k, j], tab[m, s, r, k + 1, j], tab[m, s, r, k + 2, j], tab[m, s, r, k + 3, j]

    def block(ll, ll2, k):
        """(width, live) of the block of components starting at k in the paired posteriors: four while four
        remain, else one; live when a responsibility in it is nonzero for either sample."""
        w = 4 if k + 4 <= ll.shape[0] else 1
        live = False
        for q in range(k, k + w):
            live = live or ll[q] != 0 or ll2[q] != 0
        return w, live

    def scaled4(ll, k, inv):
        """The responsibilities of components k..k+3 (weights ll times the normaliser's inverse)."""
        return ll[k] * inv, ll[k + 1] * inv, ll[k + 2] * inv, ll[k + 3] * inv

    column4_d = decorate(column4)
    block_d = decorate(block)
    scaled4_d = decorate(scaled4)

    def log_lik_iso4(u, i, i2, i3, i4, tab, aux, m, s, ll, ll2, ll3, ll4):
        """``log_lik_iso`` for samples i, i2, i3, i4 in one sweep (outputs ll..ll4): 8 loads per 16 distance
        updates."""
        K = ll.shape[0]
        d = u.shape[1]
        k = 0
        while k + 4 <= K:
            z = aux[m, s, k] - aux[m, s, k]
            a0, a1, a2, a3, b0, b1, b2, b3 = z, z, z, z, z, z, z, z
            c0, c1, c2, c3, e0, e1, e2, e3 = z, z, z, z, z, z, z, z
            for j in range(d):
                x = u[i, j]
                y = u[i2, j]
                v = u[i3, j]
                w = u[i4, j]
                t0, t1, t2, t3 = column4_d(tab, m, s, 0, k, j)
                a0 += (x - t0) * (x - t0)
                a1 += (x - t1) * (x - t1)
                a2 += (x - t2) * (x - t2)
                a3 += (x - t3) * (x - t3)
                b0 += (y - t0) * (y - t0)
                b1 += (y - t1) * (y - t1)
                b2 += (y - t2) * (y - t2)
                b3 += (y - t3) * (y - t3)
                c0 += (v - t0) * (v - t0)
                c1 += (v - t1) * (v - t1)
                c2 += (v - t2) * (v - t2)
                c3 += (v - t3) * (v - t3)
                e0 += (w - t0) * (w - t0)
                e1 += (w - t1) * (w - t1)
                e2 += (w - t2) * (w - t2)
                e3 += (w - t3) * (w - t3)
            for q, a, b, c, e in ((0, a0, b0, c0, e0), (1, a1, b1, c1, e1), (2, a2, b2, c2, e2), (3, a3, b3, c3, e3)):
                g = tab[m, s, 1, k + q, 0]
                h = aux[m, s, k + q]
                ll[k + q] = h - g * a
                ll2[k + q] = h - g * b
                ll3[k + q] = h - g * c
                ll4[k + q] = h - g * e
            k += 4
        while k < K:
            g = tab[m, s, 1, k, 0]
            h = aux[m, s, k]
            for uu, out in ((i, ll), (i2, ll2), (i3, ll3), (i4, ll4)):
                a = h - h
                for j in range(d):
                    a += (u[uu, j] - tab[m, s, 0, k, j]) * (u[uu, j] - tab[m, s, 0, k, j])
                out[k] = h - g * a
            k += 1

    def log_lik_diag2(u, i, i2, tab, aux, m, s, ll, ll2):
        """``log_lik_diag`` for samples i and i2 in one sweep (outputs ll, ll2)."""
        K = ll.shape[0]
        d = u.shape[1]
        k = 0
        while k + 4 <= K:
            a0 = aux[m, s, k] - aux[m, s, k]
            a1, a2, a3, b0, b1, b2, b3 = a0, a0, a0, a0, a0, a0, a0
            for j in range(d):
                x = u[i, j]
                y = u[i2, j]
                t0, t1, t2, t3 = column4_d(tab, m, s, 0, k, j)
                w0, w1, w2, w3 = column4_d(tab, m, s, 1, k, j)
                a0 += (x - t0) * (x - t0) * w0
                a1 += (x - t1) * (x - t1) * w1
                a2 += (x - t2) * (x - t2) * w2
                a3 += (x - t3) * (x - t3) * w3
                b0 += (y - t0) * (y - t0) * w0
                b1 += (y - t1) * (y - t1) * w1
                b2 += (y - t2) * (y - t2) * w2
                b3 += (y - t3) * (y - t3) * w3
            subtract4_d(ll, aux, m, s, k, a0, a1, a2, a3)
            subtract4_d(ll2, aux, m, s, k, b0, b1, b2, b3)
            k += 4
        while k < K:
            a = aux[m, s, k] - aux[m, s, k]
            b = a
            for j in range(d):
                t = tab[m, s, 0, k, j]
                a += (u[i, j] - t) * (u[i, j] - t) * tab[m, s, 1, k, j]
                b += (u[i2, j] - t) * (u[i2, j] - t) * tab[m, s, 1, k, j]
            ll[k] = aux[m, s, k] - a
            ll2[k] = aux[m, s, k] - b
            k += 1

    def posterior_iso2(V, slot, u, i, i2, tab, m, s, ll, ll2, inv, inv2, cx, cd):
        """``posterior_iso`` for samples i and i2, one pass over both rows per block of four components (a block
        is skipped when it is zero for both: for one of them it may add exact zeros)."""
        K = ll.shape[0]
        d = u.shape[1]
        gsum = inv - inv
        gsum2 = gsum
        for j in range(d):
            V[slot, i, j] = gsum
            V[slot, i2, j] = gsum
        k = 0
        while k < K:
            w, live = block_d(ll, ll2, k)
            if live and w == 4:
                r0, r1, r2, r3 = scaled4_d(ll, k, inv)
                p0, p1, p2, p3 = scaled4_d(ll2, k, inv2)
                g0 = tab[m, s, 3, k, 0]
                g1 = tab[m, s, 3, k + 1, 0]
                g2 = tab[m, s, 3, k + 2, 0]
                g3 = tab[m, s, 3, k + 3, 0]
                gsum += r0 * g0 + r1 * g1 + r2 * g2 + r3 * g3
                gsum2 += p0 * g0 + p1 * g1 + p2 * g2 + p3 * g3
                for j in range(d):
                    t0, t1, t2, t3 = column4_d(tab, m, s, 2, k, j)
                    V[slot, i, j] += r0 * t0 + r1 * t1 + r2 * t2 + r3 * t3
                    V[slot, i2, j] += p0 * t0 + p1 * t1 + p2 * t2 + p3 * t3
            elif live:
                r = ll[k] * inv
                p = ll2[k] * inv2
                gsum += r * tab[m, s, 3, k, 0]
                gsum2 += p * tab[m, s, 3, k, 0]
                for j in range(d):
                    V[slot, i, j] += r * tab[m, s, 2, k, j]
                    V[slot, i2, j] += p * tab[m, s, 2, k, j]
            k += w
        gx = cx + cd * gsum
        gx2 = cx + cd * gsum2
        for j in range(d):
            V[slot, i, j] = cd * V[slot, i, j] + gx * u[i, j]
            V[slot, i2, j] = cd * V[slot, i2, j] + gx2 * u[i2, j]

    def posterior_diag2(V, slot, u, i, i2, tab, m, s, ll, ll2, inv, inv2, cx, cd):
        """``posterior_diag`` for samples i and i2 (blocks as in ``posterior_iso2``)."""
        K = ll.shape[0]
        d = u.shape[1]
        for j in range(d):
            V[slot, i, j] = inv - inv
            V[slot, i2, j] = inv - inv
        k = 0
        while k < K:
            w, live = block_d(ll, ll2, k)
            if live and w == 4:
                r0, r1, r2, r3 = scaled4_d(ll, k, inv)
                p0, p1, p2, p3 = scaled4_d(ll2, k, inv2)
                for j in range(d):
                    x = u[i, j]
                    y = u[i2, j]
                    t0, t1, t2, t3 = column4_d(tab, m, s, 2, k, j)
                    g0, g1, g2, g3 = column4_d(tab, m, s, 3, k, j)
                    V[slot, i, j] += (r0 * (t0 + g0 * x) + r1 * (t1 + g1 * x) + r2 * (t2 + g2 * x)
                                      + r3 * (t3 + g3 * x))
                    V[slot, i2, j] += (p0 * (t0 + g0 * y) + p1 * (t1 + g1 * y) + p2 * (t2 + g2 * y)
                                       + p3 * (t3 + g3 * y))
            elif live:
                r = ll[k] * inv
                p = ll2[k] * inv2
                for j in range(d):
                    t = tab[m, s, 2, k, j]
                    g = tab[m, s, 3, k, j]
                    V[slot, i, j] += r * (t + g * u[i, j])
                    V[slot, i2, j] += p * (t + g * u[i2, j])
            k += w
        for j in range(d):
            V[slot, i, j] = cx * u[i, j] + cd * V[slot, i, j]
            V[slot, i2, j] = cx * u[i2, j] + cd * V[slot, i2, j]

    log_lik_iso4_d = fast(log_lik_iso4)
    log_lik_diag2_d = fast(log_lik_diag2)
    posterior_iso2_d = fast(posterior_iso2)
    posterior_diag2_d = fast(posterior_diag2)

    def predictor(log_lik, posterior):
        """The exact mixture model for one sample with one component form (isotropic or diagonal)."""

        def predict(V, slot, u, i, tab, aux, m, s, ll):
            log_lik(u, i, tab, aux, m, s, ll)
            tot, mx = softmax_d(ll)
            inv = (tot / tot) / tot  # 1/tot in the working dtype (no float64 literal on a float32 GPU path)
            K = ll.shape[0]
            posterior(V, slot, u, i, tab, m, s, ll, inv, aux[m, s, K], aux[m, s, K + 1])
            return mx + math.log(tot)  # log p_t(u): unused (and removed by the compiler) outside MALA

        return decorate(predict)

    def pair_predictor(log_lik2, posterior2):
        """The exact mixture model for samples i and i2 in one sweep (``predictor``'s pair form, CPU only)."""

        def predict2(V, slot, u, i, i2, tab, aux, m, s, ll, ll2):
            log_lik2(u, i, i2, tab, aux, m, s, ll, ll2)
            tot, _ = softmax_d(ll)
            tot2, _ = softmax_d(ll2)
            K = ll.shape[0]
            posterior2(V, slot, u, i, i2, tab, m, s, ll, ll2, (tot / tot) / tot, (tot2 / tot2) / tot2,
                       aux[m, s, K], aux[m, s, K + 1])

        return decorate(predict2)

    gmm_predict_iso = predictor(log_lik_iso_d, posterior_iso_d)
    gmm_predict_diag = predictor(log_lik_diag_d, posterior_diag_d)
    def gmm_predict_iso4(V, slot, u, i, tab, aux, m, s, ll, ll2, ll3, ll4):
        """The isotropic mixture model for samples i..i+3: one distance sweep for the four (the sweep is bound by
        loads, and four samples share each table load), then the posterior by pairs (``posterior_iso2``)."""
        log_lik_iso4_d(u, i, i + 1, i + 2, i + 3, tab, aux, m, s, ll, ll2, ll3, ll4)
        K = ll.shape[0]
        for j, la, lb in ((i, ll, ll2), (i + 2, ll3, ll4)):
            tot, _ = softmax_d(la)
            tot2, _ = softmax_d(lb)
            posterior_iso2_d(V, slot, u, j, j + 1, tab, m, s, la, lb, (tot / tot) / tot, (tot2 / tot2) / tot2,
                             aux[m, s, K], aux[m, s, K + 1])

    gmm_predict_diag2 = pair_predictor(log_lik_diag2_d, posterior_diag2_d)

    def gmm_predict(V, slot, u, i, tab, aux, m, s, ll, iso):
        """V[slot, i, :] = exact mixture model output at u[i, :] in the solver's parameterisation.

        Responsibilities r = softmax(ll) of the component log-likelihoods (log-sum-exp), posterior mean
        D = sum_k r_k (m_k + g_k (u - a m_k)), output c_x u + c_D D.  ``tab[m, s]`` is the stage table
        ``(4, K, d)`` = (a m, 0.5/var_t, m sigma^2/var_t, a v/var_t) and ``aux[m, s]`` = (log normalisers (K),
        c_x, c_D) from :func:`~diffsolve.kernels.plan.gmm_stage_tables`; ``ll`` is a scratch vector of length
        K; ``iso`` selects the isotropic-component form (columns of 0.5/var_t and a v/var_t constant),
        ``gmm_predict_iso`` / ``gmm_predict_diag`` are the two forms on their own.  Returns log p_t(u), the
        log-sum-exp of the component log-likelihoods (the exact MALA energy).
        """
        if iso:
            return gmm_predict_iso(V, slot, u, i, tab, aux, m, s, ll)
        return gmm_predict_diag(V, slot, u, i, tab, aux, m, s, ll)

    gmm_predict_d = decorate(gmm_predict)

    # -- Langevin chains (diffsolve.langevin: the NumPy reference these follow operation by operation) ----------
    # Per-sample functions of one chain: position Z, proposal P, midpoint Mid, anchor B = y / a, velocity W (all
    # (n, d)) and the score stack V (3, n, d) = (score at Z, at P, at Mid), raw model scores of p_t; the tilted
    # target's score is G = V - tilt (x - B).  Noise: normals of draw 0 (proposal, ULD position), draw 1 (ULD
    # velocity), draw 2 (velocity refresh), the Metropolis uniform from words (r0, r1) of counter (0, sample,
    # step, 1), as :func:`diffsolve.noise.standard_normal` / ``standard_uniform`` draw them.

    def tilted(V, slot, x, B, i, j, tilt):
        """The score of the tilted target at coordinate j: V[slot] - tilt (x - B) (V[slot] when tilt = 0)."""
        if tilt == 0:
            return V[slot, i, j]
        return V[slot, i, j] - tilt * (x[i, j] - B[i, j])

    tilted_d = decorate(tilted)

    def chain_start(Z, B, V, i, a, q, init):
        """B = Z / a, then the initial position: Tweedie (Z + q V[0]) / a (``init`` 0; V[0] the score at the
        segment's start time), the anchor B (1) or Z itself (2)."""
        d = Z.shape[1]
        for j in range(d):
            B[i, j] = Z[i, j] / a
        if init == 0:
            for j in range(d):
                Z[i, j] = (Z[i, j] + q * V[0, i, j]) / a
        elif init == 1:
            for j in range(d):
                Z[i, j] = B[i, j]

    def mala_propose(P, Mid, Z, V, B, i, tau, tilt, simpson, seed_lo, seed_hi, sidx, step):
        """P = Z + tau G(Z) + sqrt(2 tau) xi (normals of draw 0); Mid = (Z + P) / 2 for the Simpson energy."""
        d = Z.shape[1]
        sq = math.sqrt(2.0 * tau)
        for b in range((d + 1) // 2):
            z0, z1 = normal_pair(seed_lo, seed_hi, b, sidx & 0xFFFFFFFF, step, 0)
            j = 2 * b
            P[i, j] = Z[i, j] + tau * tilted_d(V, 0, Z, B, i, j, tilt) + sq * z0
            if j + 1 < d:
                P[i, j + 1] = Z[i, j + 1] + tau * tilted_d(V, 0, Z, B, i, j + 1, tilt) + sq * z1
        if simpson:
            for j in range(d):
                Mid[i, j] = 0.5 * (Z[i, j] + P[i, j])

    def mala_log_alpha(Z, P, V, B, i, tau, tilt, energy, dlogp):
        """(log Metropolis-Hastings ratio of Z -> P, |P - Z|^2) in the cancellation-safe form of
        :func:`diffsolve.langevin.mala_log_acceptance`; the energy difference is ``dlogp`` (``energy`` 0, exact),
        the trapezoid (1) or the Simpson (2) line integral of the scores V."""
        d = Z.shape[1]
        h1 = tau - tau
        h2 = h1
        qd = h1
        dd = h1
        e = h1
        for j in range(d):
            dl = P[i, j] - Z[i, j]
            g = tilted_d(V, 0, Z, B, i, j, tilt)
            gp = tilted_d(V, 1, P, B, i, j, tilt)
            sg = g + gp
            h1 += dl * sg
            h2 += (g - gp) * sg
            dd += dl * dl
            if tilt != 0:
                qd += dl * (P[i, j] + Z[i, j] - 2.0 * B[i, j])
            if energy == 1:
                e += dl * (V[0, i, j] + V[1, i, j])
            elif energy == 2:
                e += dl * (V[0, i, j] + 4.0 * V[2, i, j] + V[1, i, j])
        if energy == 0:
            de = dlogp
        elif energy == 1:
            de = 0.5 * e
        else:
            de = e / 6.0
        quad = h1 - h1
        if tilt != 0:
            quad = -0.5 * tilt * qd
        return de + quad + (-0.5 * h1 + 0.25 * tau * h2), dd

    mala_log_alpha_d = decorate(mala_log_alpha)

    def mala_accept(Z, P, V, B, i, tau, tilt, radius, energy, dlogp, seed_lo, seed_hi, sidx, step):
        """The Metropolis test of the move Z -> P (uniform of draw 1; rejected beyond ``radius``), as a masked
        update: on acceptance Z = P and V[0] = V[1].  Returns 1 if accepted, else 0."""
        la, dd = mala_log_alpha_d(Z, P, V, B, i, tau, tilt, energy, dlogp)
        r0, r1, r2, r3 = philox(0, sidx & 0xFFFFFFFF, step, 1, seed_lo, seed_hi)
        take = math.log(u53(r0, r1)) < la
        if radius < math.inf and not dd <= radius * radius:
            take = False
        if not take:
            return 0
        for j in range(Z.shape[1]):
            Z[i, j] = P[i, j]
            V[0, i, j] = V[1, i, j]
        return 1

    def normals_row(out, i, seed_lo, seed_hi, sidx, step, draw):
        """out[i] = the keyed normals of (step, draw) (:func:`diffsolve.noise.standard_normal`'s row)."""
        d = out.shape[1]
        for b in range((d + 1) // 2):
            z0, z1 = normal_pair(seed_lo, seed_hi, b, sidx & 0xFFFFFFFF, step, draw)
            out[i, 2 * b] = z0
            if 2 * b + 1 < d:
                out[i, 2 * b + 1] = z1

    normals_row_d = decorate(normals_row)

    def uld_refresh(W, i, seed_lo, seed_hi, sidx, step):
        """W[i] = a fresh N(0, I) velocity (normals of draw 2)."""
        normals_row_d(W, i, seed_lo, seed_hi, sidx, step, 2)

    def uld_coord(Z, W, V, B, i, j, tilt, cf, it, n1, n2):
        """One coordinate of the ULD move with gradient -G(Z) frozen; ``cf[it]`` = (tau, c_vv, c_vG, c_zv,
        c_zG, l11, l21, l22)."""
        g = -tilted_d(V, 0, Z, B, i, j, tilt)
        w = W[i, j]
        Z[i, j] = Z[i, j] + cf[it, 3] * w + cf[it, 4] * g + cf[it, 5] * n1
        W[i, j] = cf[it, 1] * w + cf[it, 2] * g + (cf[it, 6] * n1 + cf[it, 7] * n2)

    uld_coord_d = decorate(uld_coord)

    def uld_move(Z, W, V, B, i, tilt, cf, it, seed_lo, seed_hi, sidx, step):
        """The frozen-gradient ULD step of sample i: position normals of draw 0, velocity normals of draw 1."""
        d = Z.shape[1]
        for b in range((d + 1) // 2):
            z0, z1 = normal_pair(seed_lo, seed_hi, b, sidx & 0xFFFFFFFF, step, 0)
            y0, y1 = normal_pair(seed_lo, seed_hi, b, sidx & 0xFFFFFFFF, step, 1)
            uld_coord_d(Z, W, V, B, i, 2 * b, tilt, cf, it, z0, y0)
            if 2 * b + 1 < d:
                uld_coord_d(Z, W, V, B, i, 2 * b + 1, tilt, cf, it, z1, y1)

    def snr_move(Z, P, V, B, i, tilt, alpha, snr, seed_lo, seed_hi, sidx, step):
        """The SNR-rule corrector step of sample i: z (draw 0) into P, eps = 2 alpha (snr |z| / |g|)^2 (0 where
        g = 0), Z += eps g + sqrt(2 eps) z; returns eps."""
        d = Z.shape[1]
        normals_row_d(P, i, seed_lo, seed_hi, sidx, step, 0)
        g2 = alpha - alpha
        z2 = g2
        for j in range(d):
            g = tilted_d(V, 0, Z, B, i, j, tilt)
            g2 += g * g
            z2 += P[i, j] * P[i, j]
        eps = g2 - g2
        if g2 > 0:
            eps = 2.0 * alpha * snr * snr * z2 / g2
        sq = math.sqrt(2.0 * eps)
        for j in range(d):
            Z[i, j] = Z[i, j] + eps * tilted_d(V, 0, Z, B, i, j, tilt) + sq * P[i, j]
        return eps

    snr_move_d = decorate(snr_move)
    chain_start_d = decorate(chain_start)
    mala_propose_d = decorate(mala_propose)
    mala_accept_d = decorate(mala_accept)
    uld_refresh_d = decorate(uld_refresh)
    uld_move_d = decorate(uld_move)

    def langevin_chain(Z, P, Mid, B, W, V, i, ll, segs, segr, cf, tab, aux, iso, seed_lo, seed_hi, sidx,
                       step_offset, stat):
        """Every Langevin segment of a program for sample i on the exact mixture model (score and log p_t from
        ``gmm_predict`` with tables of prediction type 'score', one per distinct time).

        ``segs[g]`` = (method 0 MALA / 1 ULD, iterations, first row of ``cf``, first program step, table of t,
        table of t_init (or -1), init 0 Tweedie / 1 anchor / 2 state, energy 0 exact / 1 trapezoid / 2 simpson),
        ``segr[g]`` = (tilt, a, q, radius, snr); ``cf`` one row per iteration (see ``uld_coord``; MALA reads tau,
        the SNR corrector (method 2) reads its factor alpha there).  The noise step of program step k is
        step_offset + k + 1.  stat[i, g] = the segment's statistic: accepted MALA moves, or the sum of the SNR
        corrector's step sizes.  The score of an accepted MALA state is reused by a following Tweedie start at the
        same time (FSAL)."""
        cached = -1  # the table whose score at Z is in V[0] (-1: none)
        for g in range(segs.shape[0]):
            kind = segs[g, 0]
            first = segs[g, 3]
            ti = segs[g, 4]
            tilt = segr[g, 0]
            if segs[g, 6] == 0 and cached != segs[g, 5]:
                gmm_predict_d(V, 0, Z, i, tab, aux, segs[g, 5], 0, ll, iso)
            chain_start_d(Z, B, V, i, segr[g, 1], segr[g, 2], segs[g, 6])
            cached = -1
            if kind == 0:
                energy = segs[g, 7]
                lp = gmm_predict_d(V, 0, Z, i, tab, aux, ti, 0, ll, iso)
                count = 0
                for it in range(segs[g, 2], segs[g, 2] + segs[g, 1]):
                    tau = cf[it, 0]
                    step = step_offset + first + (it - segs[g, 2]) + 1
                    mala_propose_d(P, Mid, Z, V, B, i, tau, tilt, energy == 2, seed_lo, seed_hi, sidx, step)
                    if energy == 2:
                        gmm_predict_d(V, 2, Mid, i, tab, aux, ti, 0, ll, iso)
                    lpp = gmm_predict_d(V, 1, P, i, tab, aux, ti, 0, ll, iso)
                    took = mala_accept_d(Z, P, V, B, i, tau, tilt, segr[g, 3], energy, lpp - lp, seed_lo, seed_hi,
                                         sidx, step)
                    if took:
                        lp = lpp
                    count += took
                stat[i, g] = count
                cached = ti
            elif kind == 2:
                total = tilt - tilt
                for it in range(segs[g, 2], segs[g, 2] + segs[g, 1]):
                    gmm_predict_d(V, 0, Z, i, tab, aux, ti, 0, ll, iso)
                    total += snr_move_d(Z, P, V, B, i, tilt, cf[it, 0], segr[g, 4], seed_lo, seed_hi, sidx,
                                        step_offset + first + (it - segs[g, 2]) + 1)
                stat[i, g] = total
            else:
                uld_refresh_d(W, i, seed_lo, seed_hi, sidx, step_offset + first + 1)
                for it in range(segs[g, 2], segs[g, 2] + segs[g, 1]):
                    gmm_predict_d(V, 0, Z, i, tab, aux, ti, 0, ll, iso)
                    uld_move_d(Z, W, V, B, i, tilt, cf, it, seed_lo, seed_hi, sidx,
                               step_offset + first + (it - segs[g, 2]) + 1)

    return SimpleNamespace(
        normal_pair=normal_pair,
        combine_pair=combine_pair_d,
        combine_span=combine_span_d,
        combine_row=decorate(combine_row),
        convert_span=decorate(convert_span),
        advance_span=decorate(advance_span),
        clip_add=decorate(clip_add),
        gmm_predict=gmm_predict_d,
        mala_propose=mala_propose_d,
        mala_accept=mala_accept_d,
        uld_refresh=uld_refresh_d,
        uld_move=uld_move_d,
        snr_move=snr_move_d,
        chain_start=chain_start_d,
        langevin_chain=decorate(langevin_chain),
        gmm_predict_iso=gmm_predict_iso,
        gmm_predict_diag=gmm_predict_diag,
        gmm_predict_iso4=decorate(gmm_predict_iso4),
        gmm_predict_diag2=gmm_predict_diag2,
        log_lik_iso=log_lik_iso_d,
        log_lik_diag=log_lik_diag_d,
        softmax=softmax_d,
        exp_nonpositive=exp_nonpositive_d,
        posterior_iso=posterior_iso_d,
        posterior_diag=posterior_diag_d,
        log_lik_iso4=log_lik_iso4_d,
        log_lik_diag2=log_lik_diag2_d,
        posterior_iso2=posterior_iso2_d,
        posterior_diag2=posterior_diag2_d,
    )
