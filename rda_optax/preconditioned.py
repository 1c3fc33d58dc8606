"""Proximal subproblems under a diagonal preconditioner.

Adaptive proximal methods (:func:`rda_optax.ramda`,
:func:`rda_optax.prox_adamw`) take their step by solving, per parameter
tree,

.. math::

  \\min_w\\; Q(w) = \\langle v, w - p_0\\rangle
  + \\tfrac12 \\langle w - p_0, D\\,(w - p_0)\\rangle + t\\,\\lambda R(w)
  = \\tfrac12 \\|w - u\\|_D^2 + t\\,\\lambda R(w) + \\text{const},
  \\qquad u = p_0 - v / D,

with ``D`` a positive diagonal (the preconditioner). This is the prox of
``tλR`` in the norm ``‖x‖²_D = Σ d_i x_i²``: the ordinary prox only when ``D``
is constant. :func:`solve` computes it

* **exactly** where ``R`` is separable per coordinate (ℓ1: soft threshold at
  ``tλ/d_i``; ℓ0: hard threshold at ``√(2tλ/d_i)``; transformed ℓ1 without a
  group term: its thresholding with weight ``tλ/d_i``) or is the indicator of
  a set whose projection in ``‖·‖_D`` ranks entries by ``√d_i·|u_i|``
  (:func:`rda_optax.sparsity_constraint`, :func:`rda_optax.nm_constraint`);
* **exactly** for the group lasso and the sparse group lasso with
  ``solver='newton'`` (the default): a group is zero iff
  ``‖c_g‖ ≤ tλ√n_g`` with ``c = D p0 − v`` (soft-thresholded at ``tλ₁`` for
  the sparse group lasso), and otherwise ``w_i = c_i r/(d_i r + tλ√n_g)``
  with ``r = ‖w_g‖`` the root of a secular equation in one variable, found
  by Newton's method, which converges monotonically and quadratically on it
  (a handful of passes over the leaf, against the loop's tens of steps);
* **inexactly** otherwise (and with ``solver='pgd'``), by the
  proximal-gradient loop of Huang & Lee's
  reference code (``ismoptgroup/ramda_exp``, ``Core/solver.py``,
  ``pgd_solver_glasso``), with its stopping rule:

  - groups that are zero at the solution are found first and left out
    (Deleu & Bengio's Theorem 1: a group lasso group is zero iff
    ``‖D p0 − v‖_g ≤ tλ√n_g``; for the sparse group lasso, iff
    ``‖S_{tλ₁}(D p0 − v)‖_g ≤ tλ₂√n_g``; a group holding a NaN is kept,
    where the reference's ``>`` test zeroes it and hides the divergence);
  - the others start from ``start`` (the current weights) and take steps
    ``w ← prox_{η tλR}(w − η(v + D(w − p0)))`` with ``η_g = 1/max_{i∈g} d_i``
    per group (one step size per leaf for regularizers without groups);
  - the loop stops after ``max_iters`` steps, or at step ``j ≥ 2`` once
    ``(Q(w_{j−1}) − Q(w_j)) / (|Q(w_j)| + 1) < rtol`` (``Q`` summed over the
    groups not left out, as the reference does). The reference's
    ``rtol = 1e-8`` is below float32's resolution: the loop then stops where
    the float32 objective stalls, within about 1e-4 of the minimiser in
    ``w`` (the objective is within rounding of its minimum), at a step that
    the rounding of the sums decides. ``rtol=None`` always takes
    ``max_iters`` steps.

  Regularizers that couple leaves (:func:`rda_optax.coupled_group_lasso`, or
  any that overrides ``prox_tree``) get the same loop over the whole tree,
  with one step size ``1/max d``.

References:
  Huang & Lee, *Regularized Adaptive Momentum Dual Averaging with an
  Efficient Inexact Subproblem Solver for Training Structured Neural
  Networks*, NeurIPS 2024, arXiv 2403.14398 (§4 and the reference code).
  Yun, Lozano & Yang, *Adaptive Proximal Gradient Methods for Structured
  Neural Networks*, NeurIPS 2021 (the subproblem, their eq. (2)).
  Deleu & Bengio, *Structured Sparsity Inducing Adaptive Optimizers for Deep
  Learning*, arXiv 2102.03869, 2021 (Theorem 1).
"""

from __future__ import annotations

import math
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from rda_optax import constraints
from rda_optax import group_newton
from rda_optax import nm
from rda_optax import partition
from rda_optax import pruning
from rda_optax import regularizers as regs
from rda_optax import validation

SOLVERS = ('newton', 'pgd')


def check_solver_args(
    owner: str, max_iters: Any, rtol: Any, solver: Any = 'newton'
) -> None:
  """Raises naming the fix for a bad solver, inner-loop budget or tolerance.

  Traced values (``optax.inject_hyperparams`` injects both numbers) are not
  checked.
  """
  if solver not in SOLVERS:
    raise ValueError(
        f"{owner} needs solver='newton' (the exact prox of a group lasso or "
        f"sparse group lasso in the preconditioner's norm, by Newton's "
        f"method on each group's secular equation) or solver='pgd' (the "
        f"reference code's proximal-gradient loop), got {solver!r}."
    )
  if isinstance(max_iters, jax.core.Tracer) or isinstance(
      rtol, jax.core.Tracer
  ):
    return
  if isinstance(max_iters, (jax.Array, np.ndarray)) and jnp.issubdtype(
      max_iters.dtype, jnp.integer
  ):
    max_iters = int(max_iters)
  if (
      not isinstance(max_iters, (int, np.integer))
      or isinstance(max_iters, bool)
      or max_iters < 1
  ):
    raise ValueError(
        f'{owner} needs max_iters, the most proximal-gradient steps per '
        f'subproblem, as an int >= 1 (the reference code uses 100), got '
        f'{max_iters!r}.'
    )
  if rtol is None:
    return
  r = validation.concrete_float(rtol)
  if r is None or not 0 <= r < math.inf:
    raise ValueError(
        f'{owner} needs rtol, the relative decrease of the subproblem '
        f'objective below which its loop stops, as a number >= 0 (the '
        f'reference code uses 1e-8; None: always max_iters steps), got '
        f'{rtol!r}.'
    )


def _f32(x):
  x = jnp.asarray(x)
  return x.astype(jnp.promote_types(x.dtype, jnp.float32))


def _overrides_prox_tree(reg: regs.Regularizer) -> bool:
  return type(reg).prox_tree is not regs.Regularizer.prox_tree


def _tl1_separable(reg: regs.Regularizer) -> bool:
  return isinstance(reg, regs.TransformedL1) and reg.separable()


def solved_exactly(
    reg: regs.Regularizer | None, solver: str = 'newton'
) -> bool:
  """Whether :func:`solve` computes the minimiser exactly for ``reg`` with
  ``solver`` (in closed form, or by Newton's method on each group's
  secular equation: the solution does not depend on ``start``),
  statically.

  Example:
    >>> import rda_optax
    >>> from rda_optax import preconditioned
    >>> preconditioned.solved_exactly(rda_optax.l1(0.1))
    True
    >>> preconditioned.solved_exactly(rda_optax.group_lasso(0.1))
    True
    >>> preconditioned.solved_exactly(rda_optax.group_lasso(0.1), 'pgd')
    False
  """
  if reg is None:
    return True
  if isinstance(reg, partition.PartitionedRegularizer):
    return all(
        solved_exactly(r, solver)
        for r in reg.regularizers.values()
        if r is not None
    )
  return (
      isinstance(
          reg,
          (regs.L1, regs.L0, constraints.SparsityConstraint, nm.NMConstraint),
      )
      or _tl1_separable(reg)
      or (solver == 'newton' and group_newton.solvable(reg))
  )


def _group_axes(reg: regs.Regularizer, ndim: int):
  """Axes reduced within a block of constant step size, or None: one step
  size for the whole leaf."""
  if isinstance(reg, (regs.GroupLasso, regs.SparseGroupLasso)):
    return regs.group_reduce_axes(ndim, reg.groups)
  if isinstance(reg, regs.TransformedL1):
    return regs.group_reduce_axes(ndim, reg.groups)
  return None


def _screen(reg, dp0_minus_v, t, count):
  """Keep-dims mask of the groups that may be nonzero (Deleu & Bengio's
  Theorem 1), or None when the regularizer has no such test."""
  if isinstance(reg, (regs.GroupLasso, regs.SparseGroupLasso)):
    _, norms, tau = group_newton.group_terms(reg, dp0_minus_v, t, count)
    # ~(≤): a NaN group is kept (and stays NaN), not screened out to zero.
    return ~(norms <= tau)
  return None


def _stalled(i, prev, cur, rtol):
  """The reference's early stop: from the second step on, once the
  objective decreased by less than ``rtol·(|Q| + 1)`` (never with None)."""
  if rtol is None:
    return jnp.bool_(False)
  return (i > 0) & ((prev - cur) / (jnp.abs(cur) + 1) < rtol)


def _pgd_leaf(reg, p0, v, d, start, t, count, max_iters, rtol):
  """Huang & Lee's ``pgd_solver_glasso`` on one leaf: ``(w, steps)``."""
  axes = _group_axes(reg, d.ndim)
  if axes is None:
    eta = 1 / jnp.max(d)
  elif axes:
    eta = 1 / jnp.max(d, axis=axes, keepdims=True)
  else:
    eta = 1 / d
  active = _screen(reg, d * p0 - v, t, count)
  active = jnp.ones((), bool) if active is None else active
  w0 = jnp.where(active, start, 0)

  def objective(w):
    diff = w - p0
    smooth = jnp.where(active, diff * v + 0.5 * (diff * d) * diff, 0)
    return jnp.sum(smooth) + t * reg.value(w, count)

  def body(carry):
    i, w, prev, _ = carry
    w = reg.prox(w - eta * (v + d * (w - p0)), eta * t, count)
    w = jnp.where(active, w, 0)
    cur = objective(w)
    done = _stalled(i, prev, cur, rtol)
    return i + 1, w, cur, done

  def cond(carry):
    i, _, _, done = carry
    return (i < max_iters) & ~done

  init = (jnp.int32(0), w0, objective(w0), ~jnp.any(active))
  steps, w, _, _ = jax.lax.while_loop(cond, body, init)
  return w, steps


def _pgd_tree(reg, p0, v, d, start, selected, t, count, max_iters, rtol):
  """The same loop over all the selected leaves at once (a regularizer that
  couples leaves), one step size ``1/max d``."""
  sel = jax.tree.leaves(selected)
  ds = [x for x, s in zip(jax.tree.leaves(d), sel) if s]
  if not ds:
    return start, jnp.int32(0)
  eta = 1 / jnp.max(jnp.stack([jnp.max(x) for x in ds]))

  def objective(w):
    terms = [
        jnp.sum((wi - a) * b + 0.5 * ((wi - a) * c) * (wi - a))
        for wi, a, b, c, s in zip(
            jax.tree.leaves(w),
            jax.tree.leaves(p0),
            jax.tree.leaves(v),
            jax.tree.leaves(d),
            sel,
        )
        if s
    ]
    return sum(terms) + t * reg.value_tree(w, selected, count)

  def body(carry):
    i, w, prev, _ = carry
    y = jax.tree.map(
        lambda wi, a, b, c, s: wi - eta * (b + c * (wi - a)) if s else wi,
        w,
        p0,
        v,
        d,
        selected,
    )
    w = reg.prox_tree(y, selected, eta * t, count)
    cur = objective(w)
    done = _stalled(i, prev, cur, rtol)
    return i + 1, w, cur, done

  def cond(carry):
    i, _, _, done = carry
    return (i < max_iters) & ~done

  init = (jnp.int32(0), start, objective(start), jnp.bool_(False))
  steps, w, _, _ = jax.lax.while_loop(cond, body, init)
  return w, steps


def _soft_threshold(v, thr):
  """``sign(v)·max(|v| − thr, 0)`` as ``v − copysign(thr, v)`` outside the
  threshold: bitwise :func:`rda_optax.regularizers.soft_threshold` for
  finite ``v`` (one rounding of ``v ∓ thr``), NaN kept, in fewer operations
  than its clip, whose minimum and maximum XLA:CPU emits with NaN checks;
  here, fused with RAMDA's cube root, the pass is compute-bound."""
  return jnp.where(
      jnp.abs(v) <= thr, jnp.zeros_like(v), v - jnp.copysign(thr, v)
  )


def _leafwise(fn, u, d, selected):
  return jax.tree.map(lambda a, b, s: fn(a, b) if s else a, u, d, selected)


def _solve(
    reg,
    u,
    p0,
    v,
    d,
    inv,
    start,
    selected,
    t,
    count,
    max_iters,
    rtol,
    scores=None,
    solver='newton',
):
  """Returns ``(w, steps)``: the minimiser on the selected leaves (``u`` on
  the others) and the most inner steps taken (0 where exact). With
  ``scores`` (a list), an N:M constraint appends its per-entry scores
  ``d·u²`` of the selected leaves to it, in leaf order, and ranks them as
  they are (the caller writes them to a buffer it keeps)."""
  none = jnp.int32(0)
  if isinstance(reg, partition.PartitionedRegularizer):
    steps = none
    for sub, sel in reg._selections(u, selected):  # pylint: disable=protected-access
      u, s = _solve(
          sub,
          u,
          p0,
          v,
          d,
          inv,
          start,
          sel,
          t,
          count,
          max_iters,
          rtol,
          scores,
          solver,
      )
      steps = jnp.maximum(steps, s)
    return u, steps
  if isinstance(reg, regs.L1):
    thr = t * regs.value_at(reg.strength, count)
    return (
        _leafwise(lambda a, b: _soft_threshold(a, thr * b), u, inv, selected),
        none,
    )
  if isinstance(reg, regs.L0):
    lam = regs.value_at(reg.strength, count)
    return (
        _leafwise(
            lambda a, b: regs.hard_threshold(a, jnp.sqrt(2 * t * lam * b)),
            u,
            inv,
            selected,
        ),
        none,
    )
  if _tl1_separable(reg):
    lam = regs.value_at(reg.strength, count)
    return (
        _leafwise(
            lambda a, b: regs.tl1_threshold(a, t * lam * b, reg.a),
            u,
            inv,
            selected,
        ),
        none,
    )
  if isinstance(reg, constraints.SparsityConstraint):
    s = regs.value_at(reg.sparsity, count)
    if not isinstance(s, jax.core.Tracer):
      s = float(s)
    scores = jax.tree.map(lambda a, b: jnp.sqrt(b) * a, u, d)
    keep = pruning.magnitude_masks(scores, s, scope=reg.scope, mask=selected)
    return (
        jax.tree.map(lambda a, k: jnp.where(k, a, jnp.zeros_like(a)), u, keep),
        none,
    )
  if isinstance(reg, nm.NMConstraint):
    if scores is not None:

      def project_scored(a, c, b, e):
        # d·u² as (d·p0 − v)²/d, written by the caller to a buffer of its
        # state: a value that leaves the step is computed once into its own
        # (donated) memory, where a temporary would be new memory at every
        # step, on a CPU dearer to write than the projection itself. Not
        # from u = p0 − v/d, which the projection's pass computes again:
        # shared, u would be one more temporary (its division is not to be
        # computed twice, for XLA), where d (RAMDA's cube root) is not.
        score = jnp.square(e * c - b) / e
        scores.append(score)
        keep = reg.mask_from_scores(score, count, squared=True)
        return jnp.where(keep, a, jnp.zeros_like(a))

      return (
          jax.tree.map(
              lambda a, c, b, e, sel: project_scored(a, c, b, e) if sel else a,
              u,
              p0,
              v,
              d,
              selected,
          ),
          none,
      )

    def project(a, b):
      # Ranked by d·u² = u²/(1/d), from 1/d (b), which u needs too: XLA
      # then computes RAMDA's cube root once per step, into 1/d's buffer.
      # The barrier keeps XLA from rewriting u²/(1/d) as u²·d, which fuses
      # d (cube root included) into the pass of the scores or, worse, into
      # every comparison of the pairwise ranks; the division is an
      # operation XLA computes once into a buffer, where it would repeat
      # cheap ones in every comparison.
      b = jax.lax.optimization_barrier(b)
      keep = reg.mask_from_scores(jnp.square(a) / b, count, squared=True)
      return jnp.where(keep, a, jnp.zeros_like(a))

    return _leafwise(project, u, inv, selected), none
  if _overrides_prox_tree(reg):
    return _pgd_tree(reg, p0, v, d, start, selected, t, count, max_iters, rtol)
  out, steps = [], none
  leaves, treedef = jax.tree.flatten(u)
  for a, p, b, c, st, s in zip(
      leaves,
      jax.tree.leaves(p0),
      jax.tree.leaves(v),
      jax.tree.leaves(d),
      jax.tree.leaves(start),
      jax.tree.leaves(selected),
  ):
    if not s or a.size == 0:  # (An empty leaf: nothing to solve.)
      out.append(a)
      continue
    if solver == 'newton' and group_newton.solvable(reg):
      w, k = group_newton.solve_leaf(reg, p, b, c, t, count)
    else:
      w, k = _pgd_leaf(reg, p, b, c, st, t, count, max_iters, rtol)
    out.append(w)
    steps = jnp.maximum(steps, k)
  return treedef.unflatten(out), steps


def solve(
    regularizer: regs.Regularizer | None,
    p0: Any,
    v: Any,
    d: Any,
    selected: Any,
    t: Any,
    count: Any,
    *,
    start: Any,
    max_iters: int = 100,
    rtol: float = 1e-8,
    with_scores: bool = False,
    solver: str = 'newton',
) -> tuple[Any, ...]:
  """``argmin_w ⟨v, w − p0⟩ + ½‖w − p0‖²_D + t·λR(w)`` over a tree.

  Example (ℓ1: a soft threshold at ``tλ/d_i`` of ``p0 − v/d``):
    >>> import jax.numpy as jnp, rda_optax
    >>> from rda_optax import preconditioned
    >>> p0 = jnp.array([1.0, 1.0]); v = jnp.zeros(2); d = jnp.array([1.0, 4.0])
    >>> w, steps = preconditioned.solve(rda_optax.l1(2.0), p0, v, d, True,
    ...                                 t=1.0, count=0, start=p0)
    >>> w, int(steps)
    (Array([0. , 0.5], dtype=float32), 0)

  Args:
    regularizer: the :class:`rda_optax.Regularizer` (None: ``p0 − v/D``).
    p0: the centre (a tree).
    v: the linear term (a tree like ``p0``).
    d: the positive diagonal ``D`` (a tree like ``p0``).
    selected: a tree of Python bools: the leaves ``R`` applies to; the others
      get ``p0 − v/D``.
    t: the weight of ``λR`` (a scalar).
    count: the step at which the regularizer's schedules are evaluated.
    start: where the proximal-gradient loop starts (a tree like ``p0``).
    max_iters: the most steps of the proximal-gradient loop per subproblem
      (Newton's method stops when converged:
      ``group_newton.MAX_ITERS`` iterations at most).
    rtol: the proximal-gradient loop's relative-decrease tolerance; None:
      always ``max_iters`` steps.
    solver: ``'newton'``: a group lasso's or sparse group lasso's
      subproblem solved exactly, by Newton's method per group; ``'pgd'``:
      by the reference code's proximal-gradient loop, as every other
      regularizer without a closed form is.
    with_scores: also return the per-entry scores ``d·u²`` by which an N:M
      constraint ranks (a tuple of float32 arrays, one per selected leaf,
      in leaf order; ``()`` for other regularizers), for the caller to keep
      in a buffer of its state (see :func:`score_buffer`).

  Returns:
    ``(w, steps)``: the solution in float32 (or wider), and the most inner
    steps any leaf took (an int32: Newton's iterations or the loop's steps;
    0 when every leaf was solved in closed form);
    ``(w, steps, scores)`` with ``with_scores``.
  """
  p0 = jax.tree.map(_f32, p0)
  v = jax.tree.map(_f32, v)
  d = jax.tree.map(_f32, d)
  # One division per entry: 1/d, then products (u = p0 − v/d and the
  # thresholds tλ/d).
  inv = jax.tree.map(lambda c: 1 / c, d)
  u = jax.tree.map(lambda a, b, c: a - b * c, p0, v, inv)
  if regularizer is None:
    return (u, jnp.int32(0), ()) if with_scores else (u, jnp.int32(0))
  start = jax.tree.map(lambda s, a: _f32(s).astype(a.dtype), start, p0)
  t = jnp.asarray(t, jnp.float32)
  scores = [] if with_scores else None
  w, steps = _solve(
      regularizer,
      u,
      p0,
      v,
      d,
      inv,
      start,
      selected,
      t,
      count,
      max_iters,
      rtol,
      scores,
      solver,
  )
  return (w, steps, tuple(scores)) if with_scores else (w, steps)


def score_buffer(regularizer: Any, params: Any, selected: Any) -> tuple:
  """Zeros shaped like the scores that :func:`solve` returns
  ``with_scores`` for ``regularizer`` (float32, one array per selected leaf
  when it is an N:M constraint; ``()`` otherwise): a buffer for a state.

  Example:
    >>> import jax.numpy as jnp, rda_optax
    >>> from rda_optax import preconditioned
    >>> params = {'b': jnp.zeros(4), 'w': jnp.zeros((8, 2))}
    >>> [x.shape for x in preconditioned.score_buffer(
    ...     rda_optax.nm_constraint(2, 4), params, {'b': False, 'w': True})]
    [(8, 2)]
    >>> preconditioned.score_buffer(rda_optax.l1(0.1), params, True)
    ()
  """
  if not isinstance(regularizer, nm.NMConstraint):
    return ()
  leaves = jax.tree.leaves(params)
  chosen = (
      [selected] * len(leaves)
      if isinstance(selected, bool)
      else jax.tree.leaves(selected)
  )
  return tuple(
      jnp.zeros(
          jnp.shape(p), jnp.promote_types(jnp.asarray(p).dtype, 'float32')
      )
      for p, c in zip(leaves, chosen)
      if c
  )
