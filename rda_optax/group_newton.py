"""The exact prox of a group lasso (or sparse group lasso) in a diagonal
norm, ``argmin_w ⟨v, w − p0⟩ + ½‖w − p0‖²_D + tλR(w)``, group by group, by
Newton's method on each group's secular equation: the default solver of
:func:`rda_optax.preconditioned.solve` (``solver='newton'``) for
:func:`rda_optax.ramda` and :func:`rda_optax.prox_adamw`.
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp

from rda_optax import regularizers as regs

# Newton's iterations on a group's secular equation stop once no group's
# radius moved by more than this fraction (a few float32 ulps).
_RTOL = 2.0**-21
# A bound on them, whatever the solver's caller sets as its loop's budget
# (``max_iters`` is the proximal-gradient loop's): never reached in practice
# (at most 9 iterations over 3,000 random groups in float64 simulations),
# and the same for an update and for the point recomputed from its state.
MAX_ITERS = 100


def group_terms(reg, dp0_minus_v, t, count):
  """``(c, ‖c_g‖, τ)``: ``c = D p0 − v`` (soft-thresholded at ``tλ₁`` for
  the sparse group lasso), its group norms (kept dims) and
  ``τ = tλ√n_g``: the group is zero at the solution iff ``‖c_g‖ ≤ τ``
  (Deleu & Bengio's Theorem 1)."""
  if isinstance(reg, regs.SparseGroupLasso):
    c = regs.soft_threshold(
        dp0_minus_v, t * regs.value_at(reg.l1_strength, count)
    )
    lam = regs.value_at(reg.group_strength, count)
  else:
    c, lam = dp0_minus_v, regs.value_at(reg.strength, count)
  norms, n_g = regs.group_norms(c, reg.groups)
  return c, norms, t * lam * math.sqrt(n_g)


def solve_leaf(reg, p0, v, d, t, count):
  """The exact prox of a (sparse) group lasso in ``‖·‖_D`` on one leaf:
  ``(w, iterations)``.

  With ``c = D p0 − v`` (soft-thresholded at ``tλ₁`` for the sparse group
  lasso) and ``τ = tλ√n_g``, a group is zero iff ``‖c_g‖ ≤ τ``; otherwise
  ``w_i = c_i r / (d_i r + τ)`` where ``r = ‖w_g‖`` is the root of
  ``G(r) = (Σ_g c_i² / (d_i r + τ)²)^{−1/2} = 1``. ``G`` is concave and
  increasing in ``r`` (a power mean of order −2 of functions linear in
  ``r``; linear when ``d`` is constant on the group), so Newton's iterates
  from ``(‖c_g‖ − τ) / max_g d`` (left of the root) increase monotonically
  to it, quadratically: a handful of passes over the leaf.

  Example (one group, ``D = 1``: the block soft threshold):
    >>> import jax.numpy as jnp, rda_optax
    >>> from rda_optax import group_newton
    >>> w, _ = group_newton.solve_leaf(
    ...     rda_optax.group_lasso(1.0), jnp.array([[3.0], [4.0]]),
    ...     jnp.zeros((2, 1)), jnp.ones((2, 1)), 1.0, 0)
    >>> w.round(4)   # (1 − √2/5)·(3, 4)
    Array([[2.1515],
           [2.8686]], dtype=float32)
  """
  axes = regs.group_reduce_axes(d.ndim, reg.groups)
  c, norm, tau = group_terms(reg, d * p0 - v, t, count)
  tau = jnp.asarray(tau, jnp.float32)
  if not axes:  # One entry per group: a soft threshold of c, over d.
    return regs.soft_threshold(c, tau) / d, jnp.int32(0)
  total = lambda x: jnp.sum(x, axis=axes, keepdims=True)
  d_max = jnp.max(d, axis=axes, keepdims=True)
  active = ~(norm <= tau)  # A NaN group stays NaN, as ℓ1's threshold keeps it.
  # Inactive groups iterate on r = 1 (any positive value: kept finite).
  r0 = jnp.where(active, (norm - tau) / d_max, 1.0)

  def body(carry):
    i, r, _ = carry
    iq = 1 / (d * r + tau)  # One division per entry.
    c2 = jnp.square(c * iq)
    s0 = total(c2)
    s1 = total(c2 * (d * iq))
    # Newton on G(r) − 1: r + (G − 1)/G' = r + S0(√S0 − 1)/S1.
    step = jnp.where(active, s0 * (jnp.sqrt(s0) - 1) / s1, 0.0)
    step = jnp.maximum(step, 0.0)  # Rounding only: the iterates increase.
    r = r + step
    return i + 1, r, ~jnp.any(step > _RTOL * r)

  def cond(carry):
    i, _, done = carry
    return (i < MAX_ITERS) & ~done

  init = (jnp.int32(0), r0, ~jnp.any(active))
  steps, r, _ = jax.lax.while_loop(cond, body, init)
  w = jnp.where(active, c * (r / (d * r + tau)), jnp.zeros_like(c))
  return w, steps


def solvable(reg: regs.Regularizer) -> bool:
  """Whether :func:`solve_leaf` solves ``reg`` (exactly these two types: a
  subclass may change the prox).

  Example:
    >>> import rda_optax
    >>> from rda_optax.group_newton import solvable
    >>> solvable(rda_optax.group_lasso(0.1)), solvable(rda_optax.l1(0.1))
    (True, False)
  """
  return type(reg) in (regs.GroupLasso, regs.SparseGroupLasso)
