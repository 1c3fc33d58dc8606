"""Regularized modernized dual averaging (RMDA): dual averaging with momentum."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax

from rda_optax import landing
from rda_optax import regularizers as regs
from rda_optax import selection
from rda_optax import sharding
from rda_optax import validation
from rda_optax.rda import dual_point_with_state
from rda_optax.rda import pinned_sum
from rda_optax.rda import prox_buffer
from rda_optax.rda import opaque_zero
from rda_optax.validation import check_update_args

# The state's prox spec lives in its own module; the names stay importable
# here (and pickles made before the move, which name them here, load).
from rda_optax.prox_spec import _ARG  # pylint: disable=unused-import
from rda_optax.prox_spec import _prox_from  # pylint: disable=unused-import
from rda_optax.prox_spec import prox_spec
from rda_optax.prox_spec import RMDAProx


class RMDAState(NamedTuple):
  """State of :func:`rmda`: two parameter-sized trees (three with a
  regularizer that ranks its input but cannot project a computed point,
  such as a partition holding a sparsity constraint: ``prox_buffer``).

  Attributes:
    count: number of updates applied so far (int32); schedules of the
      learning rate, the momentum and the regularizer strength are evaluated
      at it (0 at the first step), and restarts do not reset it.
    k: updates since the last (re)start (int32), ``k − 1`` during step ``k``.
    alpha: ``α_k = Σ_{i≤k} s_i`` (float32).
    inv_beta: ``1/β_k = 1/√k`` as the last update computed it (float32; 0
      before the first), so that the prox point is recomputed from the very
      scalars the update used.
    init_params: the proximal centre ``w0`` (the initial weights, or the
      weights at the last restart), in the parameters' dtypes.
    grad_sum: the weighted gradient sum ``G_k = Σ_{i≤k} s_i g_i``, in
      ``grad_sum_dtype`` (float32 by default).
    prox: the regularizer and mask (an :class:`RMDAProx`, no arrays) with
      which :meth:`sparse_point` recomputes the exactly sparse prox point
      ``w̃_k = prox(w0 − G_k/β_k)`` from the fields above; ``None`` when
      ``momentum`` is statically 0, since the parameters are then ``w̃_k``
      themselves. Read the point with :func:`rda_optax.sparse_params`.
    landing: the check that the updates reached the parameters unchanged
      (:class:`rda_optax.landing.LandingCheck`).
    prox_state: what the regularizer keeps between steps (``()`` for most;
      :func:`rda_optax.sparsity_constraint`'s last threshold, a
      :class:`rda_optax.ThresholdState`, from which the next step's search
      starts). Restarts reset it. It changes the cost of the prox, never
      the prox point.
    prox_buffer: with a regularizer that ranks its input and has no
      ``prox_computed`` (a partition holding a sparsity constraint; a
      sparsity constraint itself recomputes the point), room for the dual
      point ``w0 − G_k/β_k`` of the selected
      leaves (float32), which each update writes there (a buffer donated
      with the state, not new memory: on a CPU, new memory costs more to
      write than the whole search); its content between steps is not used.
      ``()`` for other regularizers.
  """

  count: jax.Array
  k: jax.Array
  alpha: jax.Array
  inv_beta: jax.Array
  init_params: Any
  grad_sum: Any
  prox: Any
  landing: Any
  prox_state: Any = ()
  prox_buffer: Any = ()

  def holds_sparse_point(self) -> bool:
    return self.prox is not None

  def params_view(self) -> Any:
    return self.init_params

  def sparse_point(self, params: Any = None, keep: Any = None) -> Any:
    """``w̃_k = prox_{(α_k/β_k)λR}(w0 − G_k/β_k)``, or ``params`` when
    momentum is 0.

    Recomputed from the state as the last update computed it: the same
    operations on the same values (``w0``, ``G``, ``α_k``, ``1/β_k``, the
    regularizer's strengths), so equal to it up to float rounding (a
    compiler fuses multiply-adds differently in two programs: an ulp);
    before the first update, ``w0``.
    ``keep`` (booleans like the parameters, from :func:`rda_optax.asr`)
    zeroes ``w0`` and ``G`` where weights are frozen, as ``asr`` does before
    every step.
    """
    if self.prox is None:
      if params is None:
        raise ValueError(
            'rmda(momentum=0) keeps no separate prox point: it is the '
            'parameters; pass params=.'
        )
      return params
    w0, grad_sum = self.init_params, self.grad_sum
    if keep is not None:
      zero = lambda x, k: jnp.where(k, x, jnp.zeros_like(x))
      w0 = jax.tree.map(zero, w0, keep)
      grad_sum = jax.tree.map(zero, grad_sum, keep)
    started = self.k > 0
    regularizer = self.prox.regularizer
    v, _, _ = dual_point_with_state(
        w0,
        grad_sum,
        self.inv_beta,
        regularizer,
        selection.resolve_mask(self.prox.mask, w0),
        self.alpha * self.inv_beta,
        jnp.maximum(self.count - 1, 0),
        # The last update's search state: the search starts where that
        # update's ended (the same answer as a cold start, in fewer passes).
        self.prox_state
        if _same_structure(self.prox_state, regs.init_state(regularizer, w0))
        else regs.init_state(regularizer, w0),
        # The count as read from the state (see rda.opaque_zero).
        token=self.count,
    )
    return jax.tree.map(
        lambda x, p: jnp.where(started, x.astype(p.dtype), p),
        v,
        w0,
    )


def _same_structure(a: Any, b: Any) -> bool:
  return jax.tree.structure(a) == jax.tree.structure(b)


def _statically_zero(momentum: Any) -> bool:
  # Only a Python number: optax.inject_hyperparams passes arrays, whose value
  # may change, so the state must then keep the prox point.
  return momentum is None or (
      isinstance(momentum, (int, float))
      and not isinstance(momentum, bool)
      and momentum == 0
  )


def rmda(
    learning_rate: regs.ScalarOrSchedule,
    regularizer: regs.Regularizer | None = None,
    momentum: regs.ScalarOrSchedule | None = 0.9,
    *,
    mask: selection.MaskOrFn = None,
    restart_steps: Sequence[int] = (),
    grad_sum_dtype: Any = 'float32',
) -> optax.GradientTransformationExtraArgs:
  r"""Regularized modernized dual averaging (RMDA), centred at ``w0``.

  **Last in a chain.** Transforms of the gradient go before it
  (``optax.chain(optax.clip_by_global_norm(1.0), rda_optax.rmda(...))``);
  nothing may change its updates after it (``optax.scale``, ``optax.clip``, a
  learning-rate scale, ``optax.add_decayed_weights`` placed after): they would
  move the weights off its exactly sparse points. Such a change is detected
  when it recurs on consecutive steps (the state records where each update
  lands and the next step compares): then :func:`rda_optax.sparse_params`
  raises :class:`rda_optax.ChainOrderError`. A change on isolated steps only
  is not detected.

  Dual averaging whose gradient sum is weighted by the learning rate, with
  momentum by interpolation (Jelassi & Defazio's MDA) and a proximal step
  (Huang & Lee's RMDA). With learning rate ``η_k`` and ``c_k = 1 − μ_k``
  (``μ_k`` the ``momentum``), step ``k`` is

  .. math::

    s_k &= \eta_k\sqrt{k}, \qquad \alpha_k = \textstyle\sum_{i\le k} s_i,
    \qquad \beta_k = \sqrt{k}, \qquad
    G_k = \textstyle\sum_{i\le k} s_i\, g_i, \\
    \tilde w_k &= \operatorname{prox}_{(\alpha_k/\beta_k)\lambda R}
                  \big(w_0 - G_k/\beta_k\big), \\
    w_k &= (1 - c_k)\, w_{k-1} + c_k\, \tilde w_k ,

  with ``g_k`` the gradient at ``w_{k−1}``. Unlike :func:`rda_optax.rda`,
  where every gradient in the sum weighs the same and the newest moves the
  weights by only ``1/(γ√n)``, the newest gradient moves ``w̃`` by ``η_k``, as
  in SGD, and for ℓ1 the threshold ``λα_k/β_k ≈ (2/3)ηλk`` grows linearly in
  ``k``: RMDA trains as fast as SGD with momentum and still produces exact
  zeros.

  **Exact zeros.** The prox point ``w̃_k`` is exactly sparse; the
  interpolated ``w_k`` (the parameters) is not when ``μ > 0``: it reaches
  zero only geometrically where ``w̃`` stays zero. Evaluate, report and
  export ``w̃_k`` with :func:`rda_optax.sparse_params`;
  :func:`rda_optax.asr` starts retraining from it. The state does not store
  it: it holds ``w0`` and ``G`` (two parameter-sized trees, as Adam's two
  moments) and the regularizer and mask (:class:`rda_optax.RMDAProx`, no
  arrays but a strength passed as one), from which ``w̃_k`` is recomputed
  by the update's own operations (to an ulp of float rounding). With
  ``momentum=0`` (``c = 1``) the parameters are ``w̃_k``.

  **With a sparsity constraint** (:func:`rda_optax.sparsity_constraint`)
  the state also keeps the threshold search's state (``prox_state``: each
  step's search starts from the last step's level, one counting pass). The
  dual point ``w0 − G_k/β_k`` is never stored: each counting pass and the
  loop that writes the parameters recompute it from ``w0`` and ``G_k``,
  its rounding pinned (:func:`rda_optax.rda.pin`) so that all see the same
  bits; :func:`rda_optax.sparse_params` recomputes it the same way and
  zeroes exactly the entries the update zeroed.

  **Restarts.** At each update count in ``restart_steps`` (for instance where
  the learning rate drops) the method restarts from the current weights:
  ``w0 ← w_{k−1}``, ``G ← 0``, ``α ← 0``, ``k ← 0``, as Huang & Lee do.

  Leaves not selected by ``mask`` (default: ``ndim ≤ 1``) take the same
  method with ``λ = 0``. The transform returns ``w_k − w_{k−1}``, so
  :func:`optax.apply_updates` lands exactly on ``w_k``; chain nothing after
  it that rescales the updates.

  **Non-finite gradients.** The gradient sum remembers every gradient: one
  NaN or infinite gradient poisons its entries of ``G`` for the rest of the
  run. Wrap the transform in ``optax.apply_if_finite(...,
  max_consecutive_errors=N)`` to skip such steps (tested).

  Example:
    >>> import jax, jax.numpy as jnp, optax, rda_optax
    >>> params = {'w': jnp.array([[0.5, -0.25], [0.25, 0.125]]),
    ...           'b': jnp.zeros(2)}
    >>> opt = rda_optax.rmda(learning_rate=1.0, momentum=0.0,
    ...                      regularizer=rda_optax.l1(0.125))
    >>> state = opt.init(params)
    >>> grads = {'w': jnp.array([[0.125, 0.0], [0.0, 0.25]]), 'b': jnp.ones(2)}
    >>> updates, state = opt.update(grads, state, params)
    >>> optax.apply_updates(params, updates)['w']  # S_0.125(w0 - g)
    Array([[ 0.25 , -0.125],
           [ 0.125,  0.   ]], dtype=float32)

  Args:
    learning_rate: ``η_k > 0`` (float or optax schedule); as in SGD.
    regularizer: a :class:`rda_optax.Regularizer` (e.g.
      ``rda_optax.l1(1e-4)``); ``None`` gives MDA (no sparsity).
    momentum: ``μ_k ∈ [0, 1)`` (float or schedule), ``c_k = 1 − μ_k``; 0 or
      ``None``: no momentum, the parameters are exactly sparse at every step.
    mask: leaves the regularizer applies to (tree of bools or a callable, as
      in :func:`optax.masked`); default :func:`rda_optax.default_mask`.
    restart_steps: update counts (0 = the first update) at which to restart
      the dual averaging from the current weights.
    grad_sum_dtype: dtype of ``G`` (``'float32'`` by default; ``None`` keeps each
      parameter's dtype).

  Returns:
    An :class:`optax.GradientTransformationExtraArgs`.

  References:
    Jelassi & Defazio, *Dual Averaging is Surprisingly Effective for Deep
    Learning Optimization*, arXiv 2010.10502, 2020.
    Huang & Lee, *Training Structured Neural Networks Through Manifold
    Identification and Variance Reduction*, ICLR 2022 (Algorithm 1).
  """
  validation.check_positive(
      'rmda',
      'learning_rate',
      learning_rate,
      'The newest gradient moves the weights by learning_rate, as in SGD.',
  )
  mu = validation.concrete_float(momentum) if momentum is not None else 0.0
  if mu is not None and not 0 <= mu < 1:
    raise ValueError(
        f'rmda needs momentum in [0, 1) (c = 1 - momentum is the weight of '
        f'the new prox point; 0.9 is typical, 0 gives exact zeros at every '
        f'step), got momentum={momentum!r}.'
    )
  regs.check_regularizer('rmda', regularizer)
  restarts = tuple(restart_steps)
  if any(
      not isinstance(r, (int, np.integer)) or isinstance(r, bool) or r < 0
      for r in restarts
  ):
    raise ValueError(
        f'rmda restart_steps must be update counts (ints >= 0), '
        f'got {restart_steps!r}.'
    )
  restarts = tuple(sorted({int(r) for r in restarts}))
  keep_prox = not _statically_zero(momentum)
  spec = prox_spec(regularizer, mask) if keep_prox else None
  sum_dt = validation.dtype_arg('rmda', 'grad_sum_dtype', grad_sum_dtype)

  def init_fn(params):
    if regularizer is not None:
      selection.check_selects(mask, params, 'rmda')
    sum_dtype = lambda p: sum_dt or jnp.asarray(p).dtype
    return RMDAState(
        count=jnp.zeros([], jnp.int32),
        k=jnp.zeros([], jnp.int32),
        alpha=jnp.zeros([], jnp.float32),
        inv_beta=jnp.zeros([], jnp.float32),
        # A copy, not an alias: train steps donate params and state together.
        init_params=jax.tree.map(lambda p: jnp.array(p, copy=True), params),
        grad_sum=jax.tree.map(
            lambda p: jnp.zeros_like(p, sum_dtype(p)), params
        ),
        prox=spec,
        landing=landing.init(),
        prox_state=regs.init_state(regularizer, params),
        prox_buffer=prox_buffer(
            regularizer, params, selection.resolve_mask(mask, params)
        ),
    )

  def restart(state, params):
    fresh = init_fn(params)
    return fresh._replace(
        count=state.count,
        landing=state.landing,
        prox_buffer=state.prox_buffer,
    )

  def update_fn(updates, state, params=None, **extra_args):
    del extra_args
    check_update_args('rmda', updates, params)
    check = landing.verify(state.landing, params, state.count)
    selected = selection.resolve_mask(mask, params)
    if restarts:
      state = jax.lax.cond(
          jnp.isin(state.count, jnp.asarray(restarts, jnp.int32)),
          lambda s: restart(s, params),
          lambda s: s,
          state,
      )
    k = optax.safe_increment(state.k)
    sqrt_k = jnp.sqrt(k.astype(jnp.float32))
    s = regs.value_at(learning_rate, state.count).astype(jnp.float32) * sqrt_k
    alpha = state.alpha + s
    inv_beta = 1 / sqrt_k
    t = alpha * inv_beta  # Weight of λR in the prox.
    if regularizer is not None and regularizer.ranks_input:
      # The dual point is recomputed in each loop that reads it (see
      # rda.pinned_dual_point), and so is G when XLA fuses its update into
      # them: its product is rounded on its own, the same bits everywhere.
      zero = opaque_zero(state.count)
      grad_sum = jax.tree.map(
          lambda gs, g: pinned_sum(gs, g, s, zero), state.grad_sum, updates
      )

    else:
      grad_sum = jax.tree.map(
          lambda gs, g: gs + s * g.astype(gs.dtype), state.grad_sum, updates
      )

    c = 1.0 if not keep_prox else 1 - regs.value_at(momentum, state.count)

    def interpolate(p, v):
      p = jnp.asarray(p)
      if not keep_prox:
        return v.astype(p.dtype)
      return ((1 - c) * p.astype(v.dtype) + c * v).astype(p.dtype)

    # The prox point w̃_k; RMDAState.sparse_point recomputes it from the
    # state (the same operations on the same values), so it is not stored.
    v, prox_state, buffer = dual_point_with_state(
        state.init_params,
        grad_sum,
        inv_beta,
        regularizer,
        selected,
        t,
        state.count,
        state.prox_state,
        state.prox_buffer,
    )
    new_params = jax.tree.map(interpolate, params, v)
    deltas = jax.tree.map(
        lambda w, p: (w - jnp.asarray(p)).astype(jnp.asarray(p).dtype),
        new_params,
        params,
    )
    return deltas, RMDAState(
        count=optax.safe_increment(state.count),
        k=k,
        alpha=alpha,
        inv_beta=inv_beta,
        init_params=state.init_params,
        grad_sum=grad_sum,
        prox=spec,
        landing=landing.record(check, params, deltas),
        prox_state=prox_state,
        prox_buffer=buffer,
    )

  return optax.GradientTransformationExtraArgs(
      init_fn, sharding.explicit_safe(update_fn)
  )
