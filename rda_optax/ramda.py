"""Regularized adaptive momentum dual averaging (RAMDA)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax

from rda_optax import nm
from rda_optax import preconditioned
from rda_optax import regularizers as regs
from rda_optax import selection
from rda_optax import sharding
from rda_optax import validation
from rda_optax.prox_spec import prox_spec
from rda_optax.validation import check_update_args


def _statically_zero(momentum: Any) -> bool:
  # Only a Python number: optax.inject_hyperparams passes arrays, whose value
  # may change, so the state must then keep the prox point (as rmda does).
  return momentum is None or (
      isinstance(momentum, (int, float))
      and not isinstance(momentum, bool)
      and momentum == 0
  )


def cube_root(v: jax.Array) -> jax.Array:
  """``∛v`` for ``v ≥ 0`` in float32, without a division.

  XLA's ``cbrt`` is a scalar library call on CPUs (about five times the
  cost of a whole AdamW step on a ResNet-18), and even this version is
  compute-bound there (its operations, not its bytes, set its time), so it
  takes as few as reach float32 rounding: the inverse cube root ``r`` from
  the exponent-thirding bit trick (relative error below 3.2e-2), one Newton
  step ``r ← r + r h/3`` and one third-order step
  ``r ← r + r (h/3 + 2h²/9)``, with ``h = 1 − v r³`` (the series of
  ``r (1 − h)^{−1/3}``; multiplications only), then ``∛v = v r²``: relative
  error below 3.4e-7 (about 3 ulp; measured over float32's normal range,
  against 4.2e-7 for the three Newton steps this replaces, which cost a
  fifth more); 0, a negative ``v`` and a denormal (which XLA flushes to
  zero on CPUs) give 0.
  Other dtypes go to ``jnp.cbrt``.
  """
  if v.dtype != jnp.float32:
    return jnp.cbrt(v)
  bits = jax.lax.bitcast_convert_type(v, jnp.int32)
  # bits / 3 by a float multiply: an integer division is costly, and XLA
  # repeats these cheap operations wherever it fuses them (e.g. 16 times
  # into the pairwise ranks of an N:M projection).
  third = (bits.astype(jnp.float32) * (1 / 3)).astype(jnp.int32)
  r = jax.lax.bitcast_convert_type(0x54A21D2A - third, jnp.float32)
  h = 1 - (v * r) * (r * r)  # (v r)(r r): no overflow.
  r = r + r * (h * (1 / 3))
  h = 1 - (v * r) * (r * r)
  r = r + r * (h * ((1 / 3) + h * (2 / 9)))
  return jnp.where(v > 0, (v * r) * r, jnp.zeros_like(v))


class RAMDAState(NamedTuple):
  """State of :func:`ramda`: three parameter-sized trees (``w0``, ``U``,
  ``V``), a fourth (``prox_params``) only where the subproblem is solved
  by the inner loop.

  Attributes:
    count: number of updates applied so far (int32); schedules are evaluated
      at it (0 at the first step), and restarts do not reset it.
    k: updates since the last (re)start (int32).
    alpha: ``α_k = Σ_{i≤k} s_i`` (float32).
    epsilon: ``ε`` as the last update used it (float32; 0 before the
      first), so that the prox point is recomputed from the very scalars the
      update used.
    init_params: the centre ``w0`` (the initial weights, or the weights at
      the last restart), in the parameters' dtypes.
    grad_sum: ``U_k = Σ_{i≤k} s_i g_i``, in ``grad_sum_dtype``.
    sq_sum: ``V_k = Σ_{i≤k} s_i g_i ∘ g_i``, in ``grad_sum_dtype``.
    prox: where the subproblem is solved exactly (no regularizer, ℓ1, ℓ0,
      transformed ℓ1, the sparsity and N:M constraints, and with
      ``solver='newton'`` the group lasso and sparse group lasso;
      :func:`rda_optax.preconditioned.solved_exactly`), the regularizer and
      mask (an :class:`rda_optax.RMDAProx`, no arrays but a strength passed
      as one) with which :meth:`sparse_point` recomputes the exactly sparse
      ``w̃_k`` from the fields above, by the update's own operations (to an
      ulp of float rounding), so that it is not stored; ``None`` otherwise
      and when ``momentum`` is statically 0.
    prox_params: where the subproblem is solved by the inner loop (whose
      solution depends on the weights it starts from, which the state does
      not keep), the subproblem's solution ``w̃_k``, exactly sparse, in the
      parameters' dtypes; ``None`` otherwise and when ``momentum`` is
      statically 0 (the parameters are then ``w̃_k``). Read ``w̃_k`` with
      :func:`rda_optax.sparse_params` in every case.
    inner_steps: the most inner steps a leaf's subproblem took at the last
      update (int32: Newton's iterations or the proximal-gradient loop's
      steps; 0 when every subproblem was solved in closed form).
    prox_buffer: with an N:M constraint (:func:`rda_optax.nm_constraint`),
      room for the scores ``P_k·(w0 − U_k/P_k)²`` by which the projection
      ranks the entries of the selected leaves (float32, one array per
      selected leaf, in leaf order), which each update writes there (a
      buffer donated with the state, not new memory: on a CPU, new memory
      at every step costs more to write than the projection); its content
      between steps (the last update's scores) is not used. ``()`` for
      other regularizers.
  """

  count: jax.Array
  k: jax.Array
  alpha: jax.Array
  epsilon: jax.Array
  init_params: Any
  grad_sum: Any
  sq_sum: Any
  prox: Any
  prox_params: Any
  inner_steps: jax.Array
  prox_buffer: Any = ()

  def holds_sparse_point(self) -> bool:
    return self.prox_params is not None or self.prox is not None

  def params_view(self) -> Any:
    """A tree with the structure of the parameters this state trains."""
    return self.init_params

  def sparse_point(self, params: Any = None, keep: Any = None) -> Any:
    """``w̃_k``: the kept subproblem solution, the one recomputed from the
    state (before the first update, ``w0``), or ``params`` when momentum
    is 0; ``keep`` (booleans like the parameters, from
    :func:`rda_optax.asr`) zeroes the frozen entries."""
    if self.prox_params is not None:
      point = self.prox_params
    elif self.prox is not None:
      w0 = self.init_params
      v, _, _ = _prox_point(
          self.prox.regularizer,
          w0,
          self.grad_sum,
          self.sq_sum,
          self.epsilon,
          self.alpha,
          selection.resolve_mask(self.prox.mask, w0),
          jnp.maximum(self.count - 1, 0),
          start=w0,
      )
      started = self.k > 0
      point = jax.tree.map(
          lambda x, p: jnp.where(started, x.astype(p.dtype), p), v, w0
      )
    else:
      if params is None:
        raise ValueError(
            'ramda(momentum=0) keeps no copy of its prox point: it '
            'is the parameters; pass params=.'
        )
      return params
    if keep is None:
      return point
    return jax.tree.map(
        lambda x, k: jnp.where(k, x, jnp.zeros_like(x)), point, keep
    )


def _prox_point(
    regularizer,
    init_params,
    grad_sum,
    sq_sum,
    eps,
    alpha,
    selected,
    count,
    *,
    start,
    max_iters=100,
    rtol=1e-8,
    solver='newton',
):
  """``(w̃_k, inner steps, scores)`` from the state's sums: the update's
  operations, which :meth:`RAMDAState.sparse_point` repeats; ``scores``:
  an N:M constraint's (``()`` for other regularizers)."""
  # P_k = ∛V_k + ε (denom = grad_sum_sq.pow(1/3).add(epsilon)).
  denom = jax.tree.map(
      lambda v: cube_root(v.astype(jnp.promote_types(v.dtype, jnp.float32)))
      + eps,
      sq_sum,
  )
  # w̃_k = argmin ⟨U_k, w − w0⟩ + ½‖w − w0‖²_{P_k} + α_k λR(w) (the
  # solver's p0 = w0, v = U_k, alpha = α_k; started from the weights).
  scored = isinstance(regularizer, nm.NMConstraint)
  out = preconditioned.solve(
      regularizer,
      init_params,
      grad_sum,
      denom,
      selected,
      alpha,
      count,
      start=start,
      max_iters=max_iters,
      rtol=rtol,
      with_scores=scored,
      solver=solver,
  )
  return out if scored else (*out, ())


def ramda(
    learning_rate: regs.ScalarOrSchedule,
    regularizer: regs.Regularizer | None = None,
    momentum: regs.ScalarOrSchedule | None = 0.9,
    *,
    epsilon: regs.ScalarOrSchedule = 1e-6,
    mask: selection.MaskOrFn = None,
    restart_steps: Sequence[int] = (),
    max_iters: int = 100,
    rtol: float | None = 1e-8,
    solver: str = 'newton',
    grad_sum_dtype: Any = 'float32',
) -> optax.GradientTransformationExtraArgs:
  r"""Regularized adaptive momentum dual averaging (RAMDA, Huang & Lee 2024).

  :func:`rda_optax.rmda` with MADGRAD's diagonal preconditioner: the cube
  root of a weighted sum of squared gradients. With learning rate ``η_k``,
  ``c_k = 1 − μ_k`` (``μ_k`` the ``momentum``) and ``g_k`` the gradient at
  ``w_{k−1}``, step ``k`` is (the paper's Algorithm 1)

  .. math::

    s_k &= \eta_k\sqrt{k}, \qquad \alpha_k = \textstyle\sum_{i\le k} s_i,
    \qquad U_k = \textstyle\sum_{i\le k} s_i\, g_i, \qquad
    V_k = \textstyle\sum_{i\le k} s_i\, g_i \circ g_i, \\
    P_k &= \operatorname{Diag}\big(\sqrt[3]{V_k} + \epsilon\big), \\
    \tilde w_k &\approx \arg\min_w\; \langle U_k, w\rangle
      + \tfrac12 \langle w - w_0, P_k (w - w_0)\rangle
      + \alpha_k \lambda R(w), \\
    w_k &= (1 - c_k)\, w_{k-1} + c_k\, \tilde w_k .

  ``ε`` is added after the cube root (``Core/optimizer.py`` of the reference
  code: ``denom = grad_sum_sq.pow(1/3).add(epsilon)``). Without a regularizer
  ``w̃_k = w0 − U_k / P_k``: the method is then MADGRAD. The
  subproblem is the prox of ``α_k λR`` in the norm ``‖·‖_{P_k}`` at
  ``w0 − U_k/P_k``; it is solved

  * exactly where ``R`` is separable under the diagonal: for ℓ1 a soft
    threshold per coordinate, ``w̃_k = S_{α_kλ/P_k}(w0 − U_k/P_k)``; ℓ0 and
    transformed ℓ1 likewise; the projections of
    :func:`rda_optax.sparsity_constraint` and :func:`rda_optax.nm_constraint`
    rank ``√P_k·|w0 − U_k/P_k|``;
  * exactly for the group lasso and the sparse group lasso
    (``solver='newton'``, the default): a group is zero iff
    ``‖P_k w0 − U_k‖_g ≤ α_kλ√n_g`` (soft-thresholded first for the sparse
    group lasso), and the others are ``P_k``-weighted shrinkages whose
    common radius Newton's method finds on the group's secular equation, in
    a handful of passes;
  * otherwise (and with ``solver='pgd'``, the paper's inexact solver) by the
    reference code's proximal-gradient loop from the current weights, with
    its screening of zero groups, per-group step ``1/max P`` and stopping
    rule: at most ``max_iters`` steps, stop once the subproblem objective
    decreases by less than ``rtol·(|Q| + 1)`` (see
    :mod:`rda_optax.preconditioned`). On the ResNet-18-sized tree of
    ``benchmarks/optimizer_step`` the loop takes about 55 steps, and a
    step of ``ramda(group_lasso, solver='pgd')`` costs about 100 AdamW
    steps on a CPU. With transformed ℓ1 and a group term each of the loop's
    steps is that regularizer's group search (48 thresholdings): a step
    took 49 s there on a 2-core CPU (9,400 SGD steps; 240 with
    ``group_prox='composition'``; ``python -m benchmarks.optimizer_step
    --grid``), where :func:`rda_optax.rmda` takes 133 SGD steps.

  As for :func:`rda_optax.rmda`, ``w̃_k`` is exactly sparse: evaluate,
  report and export it with :func:`rda_optax.sparse_params`;
  :func:`rda_optax.asr` retrains from it. Where the subproblem has a closed
  form the state does not store it (three parameter-sized trees, ``w0``,
  ``U`` and ``V``, against Adam's two): it is recomputed from them by the
  update's own operations; the inner loop's solution is stored
  (``prox_params``). With ``momentum=0`` the parameters are ``w̃_k``.

  **Restarts.** At each update count in ``restart_steps`` the method
  restarts from the current weights: ``w0 ← w_{k−1}``, ``U, V ← 0``,
  ``α ← 0``, ``k ← 0`` (the reference code does this where it divides the
  learning rate, and multiplies ``ε`` by the same factor: pass ``epsilon`` a
  schedule, e.g. ``optax.piecewise_constant_schedule``, to do the same).

  Leaves not selected by ``mask`` (default: ``ndim > 1`` selected) take the
  same method with ``λ = 0``. The transform returns ``w_k − w_{k−1}``: chain
  nothing after it that rescales the updates. ``learning_rate``,
  ``momentum``, ``epsilon`` and the regularizer's strengths may be
  schedules.

  Example:
    >>> import jax.numpy as jnp, optax, rda_optax
    >>> params = {'w': jnp.array([[1.0, -0.5], [0.25, 2.0]]),
    ...           'b': jnp.zeros(2)}
    >>> opt = rda_optax.ramda(learning_rate=1.0, momentum=0.0,
    ...                       regularizer=rda_optax.l1(0.5))
    >>> state = opt.init(params)
    >>> grads = {'w': jnp.array([[1.0, 8.0], [-1.0, 1.0]]), 'b': jnp.ones(2)}
    >>> updates, state = opt.update(grads, state, params)
    >>> optax.apply_updates(params, updates)['w'].round(5)  # S_{0.5/P}(w0 - g/P)
    Array([[ 0.   , -2.375],
           [ 0.75 ,  0.5  ]], dtype=float32)

  Args:
    learning_rate: ``η_k > 0`` (float or optax schedule); the reference
      code's default is 1e-2 (1e-3 in its experiments' variant).
    regularizer: a :class:`rda_optax.Regularizer`; ``None`` gives the
      unregularized method.
    momentum: ``μ_k ∈ [0, 1)`` (float or schedule), ``c_k = 1 − μ_k`` (the
      reference code's ``momentum`` argument is ``c``; its default 0.1 is
      ``μ = 0.9``); 0 or ``None``: the parameters are exactly sparse at
      every step.
    epsilon: ``ε > 0`` added to the cube root (float or schedule; default
      1e-6 as in the reference code). Not 0: a weight whose gradient has
      been zero at every step (an embedding row no input used) would get
      ``0/0``.
    mask: leaves the regularizer applies to (tree of bools or a callable, as
      in :func:`optax.masked`); default :func:`rda_optax.default_mask`.
    restart_steps: update counts (0 = the first update) at which to restart.
    max_iters: the most steps of the proximal-gradient loop per
      subproblem (100, as the reference code). Newton's method
      (``solver='newton'``) is not bounded by it: it stops when converged,
      after a handful of iterations (100 at most).
    rtol: the proximal-gradient loop's relative-decrease tolerance (1e-8,
      as the reference code); None: always ``max_iters`` steps.
    solver: ``'newton'`` (default): the group lasso's and sparse group
      lasso's subproblems solved exactly; ``'pgd'``: by the reference
      code's proximal-gradient loop, as the paper's experiments did (other
      regularizers without a closed form always take the loop).
    grad_sum_dtype: dtype of ``U`` and ``V`` (``'float32'`` by default;
      ``None`` keeps each parameter's dtype).

  Returns:
    An :class:`optax.GradientTransformationExtraArgs`.

  References:
    Huang & Lee, *Regularized Adaptive Momentum Dual Averaging with an
    Efficient Inexact Subproblem Solver for Training Structured Neural
    Networks*, NeurIPS 2024, arXiv 2403.14398 (Algorithm 1; reference code
    ``ismoptgroup/RAMDA`` and ``ismoptgroup/ramda_exp``).
    Defazio & Jelassi, *A Momentumized, Adaptive, Dual Averaged Gradient
    Method*, JMLR 2022 (MADGRAD).
  """
  validation.check_positive(
      'ramda',
      'learning_rate',
      learning_rate,
      'The step s_k = learning_rate·√k weighs the newest gradient.',
  )
  mu = validation.concrete_float(momentum) if momentum is not None else 0.0
  if mu is not None and not 0 <= mu < 1:
    raise ValueError(
        f'ramda needs momentum in [0, 1) (c = 1 - momentum is the weight of '
        f"the new prox point; 0.9 is the reference code's c = 0.1; 0 gives "
        f'exact zeros at every step), got momentum={momentum!r}.'
    )
  eps = validation.concrete_float(epsilon)
  if eps is not None and not 0 < eps < float('inf'):
    raise ValueError(
        f'ramda needs epsilon > 0 (added to the cube root of the weighted '
        f'squared-gradient sum, 1e-6 in the reference code: with 0, a '
        f'weight whose gradient has been zero at every step, such as an '
        f'embedding row no input used, is 0/0 = NaN), got '
        f'epsilon={epsilon!r}.'
    )
  regs.check_regularizer('ramda', regularizer)
  preconditioned.check_solver_args('ramda', max_iters, rtol, solver)
  restarts = tuple(restart_steps)
  if any(
      not isinstance(r, (int, np.integer)) or isinstance(r, bool) or r < 0
      for r in restarts
  ):
    raise ValueError(
        f'ramda restart_steps must be update counts (ints >= 0), '
        f'got {restart_steps!r}.'
    )
  restarts = tuple(sorted({int(r) for r in restarts}))
  keep_prox = not _statically_zero(momentum)
  # Where the subproblem has a closed form, w̃_k is a function of the
  # state: RAMDAState.sparse_point recomputes it, and the update neither
  # stores it nor reads it back (a parameter-sized tree fewer, and a pass
  # fewer: the interpolation fuses with the prox).
  recompute = keep_prox and preconditioned.solved_exactly(regularizer, solver)
  spec = prox_spec(regularizer, mask) if recompute else None
  sum_dt = validation.dtype_arg('ramda', 'grad_sum_dtype', grad_sum_dtype)

  def init_fn(params):
    if regularizer is not None:
      selection.check_selects(mask, params, 'ramda')
    sum_dtype = lambda p: sum_dt or jnp.asarray(p).dtype
    copy = lambda t: jax.tree.map(lambda p: jnp.array(p, copy=True), t)
    zeros = lambda: jax.tree.map(
        lambda p: jnp.zeros_like(p, sum_dtype(p)), params
    )
    return RAMDAState(
        count=jnp.zeros([], jnp.int32),
        k=jnp.zeros([], jnp.int32),
        alpha=jnp.zeros([], jnp.float32),
        epsilon=jnp.zeros([], jnp.float32),
        # Copies, not aliases: train steps donate params and state together.
        init_params=copy(params),
        grad_sum=zeros(),
        sq_sum=zeros(),
        prox=spec,
        prox_params=copy(params) if keep_prox and not recompute else None,
        inner_steps=jnp.zeros([], jnp.int32),
        prox_buffer=preconditioned.score_buffer(
            regularizer, params, selection.resolve_mask(mask, params)
        ),
    )

  def update_fn(updates, state, params=None, **extra_args):
    del extra_args
    check_update_args('ramda', updates, params)
    selected = selection.resolve_mask(mask, params)
    if restarts:
      state = jax.lax.cond(
          jnp.isin(state.count, jnp.asarray(restarts, jnp.int32)),
          lambda s: init_fn(params)._replace(
              count=s.count, prox_buffer=s.prox_buffer
          ),
          lambda s: s,
          state,
      )
    k = optax.safe_increment(state.k)
    # s_k = η_k √k, α_k = α_{k−1} + s_k (Algorithm 1; optimizer.py:
    # step_size = lr*step**0.5; state['alpha'] += step_size).
    s = regs.value_at(learning_rate, state.count).astype(
        jnp.float32
    ) * jnp.sqrt(k.astype(jnp.float32))
    alpha = state.alpha + s

    def accumulate(total, g, square):
      g = g.astype(total.dtype)
      return total + s.astype(total.dtype) * (g * g if square else g)

    # U_k = U_{k−1} + s_k g_k; V_k = V_{k−1} + s_k g_k ∘ g_k
    # (grad_sum.add_(grad, alpha=step_size); grad_sum_sq.add_(grad.square(),
    # alpha=step_size)).
    grad_sum = jax.tree.map(
        lambda u, g: accumulate(u, g, False), state.grad_sum, updates
    )
    sq_sum = jax.tree.map(
        lambda v, g: accumulate(v, g, True), state.sq_sum, updates
    )
    eps_k = regs.value_at(epsilon, state.count).astype(jnp.float32)
    v, inner_steps, scores = _prox_point(
        regularizer,
        state.init_params,
        grad_sum,
        sq_sum,
        eps_k,
        alpha,
        selected,
        state.count,
        start=params,
        max_iters=max_iters,
        rtol=rtol,
        solver=solver,
    )
    # w_k = (1 − c_k) w_{k−1} + c_k w̃_k (p.mul_(1-momentum).add_(p_tilde,
    # alpha=momentum), the reference's momentum being c).
    c = 1.0 if not keep_prox else 1 - regs.value_at(momentum, state.count)

    def interpolate(p, x):
      p = jnp.asarray(p)
      if not keep_prox:
        return x.astype(p.dtype)
      return ((1 - c) * p.astype(x.dtype) + c * x).astype(p.dtype)

    new_params = jax.tree.map(interpolate, params, v)
    prox_params = (
        jax.tree.map(lambda x, p: x.astype(jnp.asarray(p).dtype), v, params)
        if keep_prox and not recompute
        else None
    )
    deltas = jax.tree.map(
        lambda w, p: (w - jnp.asarray(p)).astype(jnp.asarray(p).dtype),
        new_params,
        params,
    )
    return deltas, RAMDAState(
        count=optax.safe_increment(state.count),
        k=k,
        alpha=alpha,
        epsilon=eps_k,
        init_params=state.init_params,
        grad_sum=grad_sum,
        sq_sum=sq_sum,
        prox=spec,
        prox_params=prox_params,
        inner_steps=inner_steps,
        prox_buffer=scores,
    )

  return optax.GradientTransformationExtraArgs(
      init_fn, sharding.explicit_safe(update_fn)
  )
