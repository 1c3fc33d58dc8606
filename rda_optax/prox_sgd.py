"""Proximal stochastic gradient descent (forward-backward splitting)."""

from __future__ import annotations

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import optax

from rda_optax import landing
from rda_optax import regularizers as regs
from rda_optax import selection
from rda_optax import sharding
from rda_optax import threshold
from rda_optax import validation
from rda_optax.rda import dual_point_with_state
from rda_optax.rda import opaque_zero
from rda_optax.rda import pinned_sum
from rda_optax.validation import check_update_args


class ProxSGDState(NamedTuple):
  """State of :func:`prox_sgd`.

  Attributes:
    count: number of updates applied so far (int32).
    momentum: the momentum buffer ``d_{n−1}`` (in the parameters' dtypes), or
      ``optax.EmptyState``-like ``()`` when ``momentum`` is ``None``.
    landing: the check that the updates reached the parameters unchanged
      (:class:`rda_optax.landing.LandingCheck`).
    prox_state: what the regularizer keeps between steps (``()`` for most;
      :func:`rda_optax.sparsity_constraint`'s last threshold, from which the
      next step's search starts; see
      :meth:`rda_optax.Regularizer.init_state`).
  """

  count: jax.Array
  momentum: Any
  landing: Any
  prox_state: Any = ()


def prox_sgd(
    learning_rate: regs.ScalarOrSchedule,
    regularizer: regs.Regularizer | None = None,
    momentum: float | None = None,
    nesterov: bool = False,
    *,
    mask: selection.MaskOrFn = None,
    accumulator_dtype: Any | None = None,
) -> optax.GradientTransformationExtraArgs:
  r"""Proximal SGD: a gradient (or momentum) step, then the prox.

  **Last in a chain.** Transforms of the gradient go before it
  (``optax.chain(optax.clip_by_global_norm(1.0), rda_optax.prox_sgd(...))``);
  nothing may change its updates after it (``optax.scale``, ``optax.clip``, a
  learning-rate scale, ``optax.add_decayed_weights`` placed after): they would
  move the weights off its exactly sparse points. Such a change is detected
  when it recurs on consecutive steps (the state records where each update
  lands and the next step compares): then :func:`rda_optax.sparse_params`
  raises :class:`rda_optax.ChainOrderError`. A change on isolated steps only
  is not detected.

  .. math::

    d_n = \mu\,d_{n-1} + g_n \quad(\text{or } d_n = g_n \text{ without momentum}),
    \qquad
    w_n = \operatorname{prox}_{\alpha_n\lambda R}\big(w_{n-1} - \alpha_n\,u_n\big),

  with ``u_n = d_n`` (heavy ball) or ``u_n = g_n + μ d_n`` (Nesterov), as in
  :func:`optax.sgd`. The threshold ``α_n λ`` shrinks with the learning rate,
  which is why proximal SGD finds less sparsity than :func:`rda_optax.rda`.
  Leaves not selected by ``mask`` (default: ``ndim ≤ 1``) take the plain
  (momentum) SGD step. The update is ``w_n − w_{n−1}``, so
  :func:`optax.apply_updates` lands exactly on the zeros of the prox.

  Example:
    >>> import jax.numpy as jnp, optax, rda_optax
    >>> params = {'w': jnp.array([[0.5, -0.05], [0.2, 0.1]])}
    >>> opt = rda_optax.prox_sgd(learning_rate=0.1, regularizer=rda_optax.l1(1.0))
    >>> state = opt.init(params)
    >>> grads = {'w': jnp.ones((2, 2))}
    >>> updates, state = opt.update(grads, state, params)
    >>> optax.apply_updates(params, updates)['w']
    Array([[ 0.3 , -0.05],
           [ 0.  ,  0.  ]], dtype=float32)

  Args:
    learning_rate: ``α_n`` (float or optax schedule).
    regularizer: a :class:`rda_optax.Regularizer`; ``None`` gives (momentum)
      SGD.
    momentum: ``μ ∈ [0, 1)`` or ``None`` for none.
    nesterov: use Nesterov momentum.
    mask: leaves the regularizer applies to (tree of bools or callable, as in
      :func:`optax.masked`); default :func:`rda_optax.default_mask`.
    accumulator_dtype: dtype of the momentum buffer (default: the params').

  References:
    Duchi & Singer, *Efficient Online and Batch Learning Using Forward
    Backward Splitting*, JMLR 2009.
    He et al., *Make ℓ1 Regularization Effective in Training Sparse CNN*,
    2020 (Algorithm 1).
  """
  validation.check_positive('prox_sgd', 'learning_rate', learning_rate)
  mu = None if momentum is None else validation.concrete_float(momentum)
  if mu is not None and not 0 <= mu < 1:
    raise ValueError(f'momentum must be in [0, 1) or None, got {momentum!r}.')
  if nesterov and momentum is None:
    raise ValueError('nesterov=True needs a momentum value, e.g. momentum=0.9.')
  regs.check_regularizer('prox_sgd', regularizer)

  acc_dt = validation.dtype_arg(
      'prox_sgd', 'accumulator_dtype', accumulator_dtype
  )

  def init_fn(params):
    if regularizer is not None:
      selection.check_selects(mask, params, 'prox_sgd')
    if momentum is None:
      buf = ()
    else:
      buf = jax.tree.map(
          lambda p: jnp.zeros_like(p, acc_dt or jnp.asarray(p).dtype),
          params,
      )
    return ProxSGDState(
        count=jnp.zeros([], jnp.int32),
        momentum=buf,
        landing=landing.init(),
        prox_state=regs.init_state(regularizer, params),
    )

  def update_fn(updates, state, params=None, **extra_args):
    del extra_args
    check_update_args('prox_sgd', updates, params)
    check = landing.verify(state.landing, params, state.count)
    selected = selection.resolve_mask(mask, params)
    lr = regs.value_at(learning_rate, state.count)
    ranks = regularizer is not None and regularizer.ranks_input
    # A sparsity constraint projects the point p − η·d without its being
    # written out (the form of dual averaging's w0 − G/β): its search and
    # its masks recompute it from p and d, which must then be in memory (a
    # Nesterov direction is not) and computed alike in every loop (the
    # momentum's product rounded on its own).
    computed = ranks and hasattr(regularizer, 'prox_computed') and not nesterov
    if momentum is None:
      direction, buf = updates, ()
    elif computed:
      zero = opaque_zero(state.count)
      buf = jax.tree.map(
          lambda d, g: pinned_sum(
              jnp.asarray(g).astype(d.dtype), d, momentum, zero
          ),
          state.momentum,
          updates,
      )
      direction = buf
    else:
      buf = jax.tree.map(
          lambda d, g: (momentum * d + g).astype(d.dtype),
          state.momentum,
          updates,
      )
      if nesterov:
        direction = jax.tree.map(lambda g, d: g + momentum * d, updates, buf)
      else:
        direction = buf

    def step(p, d):
      p = jnp.asarray(p)
      pc = p.astype(jnp.promote_types(p.dtype, jnp.float32))
      return pc - lr * d.astype(pc.dtype)

    prox_state = state.prox_state
    if computed:
      v, prox_state, _ = dual_point_with_state(
          params,
          direction,
          lr,
          regularizer,
          selected,
          lr,
          state.count,
          prox_state,
      )
    elif ranks:
      # Computed once into memory: the threshold search and the masks of a
      # sparsity constraint must see the same bits.
      v = threshold.computed_once(
          lambda ops: jax.tree.map(step, *ops), (params, direction), state.count
      )
    else:
      v = jax.tree.map(step, params, direction)
    if regularizer is not None and not computed:
      v, prox_state = regularizer.prox_tree_with_state(
          v, selected, lr, state.count, prox_state
      )
    deltas = jax.tree.map(
        lambda x, p: (x.astype(jnp.asarray(p).dtype) - jnp.asarray(p)).astype(
            jnp.asarray(p).dtype
        ),
        v,
        params,
    )
    return deltas, ProxSGDState(
        count=optax.safe_increment(state.count),
        momentum=buf,
        landing=landing.record(check, params, deltas),
        prox_state=prox_state,
    )

  return optax.GradientTransformationExtraArgs(
      init_fn, sharding.explicit_safe(update_fn)
  )
