"""Sparsity by variable splitting (ℓ0 / TL1 with an auxiliary sparse copy)."""

from __future__ import annotations

import math
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
from rda_optax.validation import check_update_args


class SplittingState(NamedTuple):
  """State of :func:`variable_splitting`.

  Attributes:
    count: number of updates applied so far (int32).
    aux: the sparse copy ``V`` (the parameters' tree and dtypes; unselected
      leaves hold a copy of ``W``). Evaluate the sparse model with it, or take
      it with :func:`sparse_params`.
    inner_state: the wrapped optimizer's state.
    landing: the check that the updates reached the parameters unchanged
      (:class:`rda_optax.landing.LandingCheck`).
    prox_state: what the regularizer keeps between steps (``()`` for most;
      :func:`rda_optax.sparsity_constraint`'s last threshold, from which the
      next step's search starts; see
      :meth:`rda_optax.Regularizer.init_state`).
  """

  count: jax.Array
  aux: Any
  inner_state: Any
  landing: Any = None
  prox_state: Any = ()

  def holds_sparse_point(self) -> bool:
    return True

  def params_view(self) -> Any:
    return self.aux

  def sparse_point(self, params: Any = None, keep: Any = None) -> Any:
    """The sparse copy ``V`` (zero wherever the weights are: under
    :func:`rda_optax.asr` it is zero at frozen entries already)."""
    del params, keep
    return self.aux


def variable_splitting(
    inner: optax.GradientTransformation,
    regularizer: regs.Regularizer,
    beta: regs.ScalarOrSchedule,
    *,
    group_strength: regs.ScalarOrSchedule = 0.0,
    groups: regs.Groups = 'output',
    mask: selection.MaskOrFn = None,
) -> optax.GradientTransformationExtraArgs:
  r"""Variable splitting: train ``W``, keep a sparse copy ``V = prox(W)``.

  **Last in a chain.** Transforms of the gradient go before it
  (``optax.chain(optax.clip_by_global_norm(1.0),
  rda_optax.variable_splitting(...))``); nothing may change its updates after
  it (``optax.scale``, ``optax.clip``, a learning-rate scale,
  ``optax.add_decayed_weights`` placed after): they would move the weights off
  its exactly sparse points. Such a change is detected when it recurs on
  consecutive steps (the state records where each update lands and the next
  step compares): then :func:`rda_optax.sparse_params` raises
  :class:`rda_optax.ChainOrderError`. A change on isolated steps only is not
  detected.

  Solves, per selected leaf,

  .. math::

    \min_{W, V}\; L(W) + \lambda R(V)
      + \lambda_g \sum_g \sqrt{n_g}\,\|W_g\|_2 + \tfrac{\beta}{2}\|W - V\|^2

  by alternating, every step,

  .. math::

    W \leftarrow W + \mathrm{inner}\big(\nabla L(W) + \lambda_g\,
        \partial\textstyle\sum_g\sqrt{n_g}\|W_g\| + \beta (W - V)\big),
    \qquad V \leftarrow \operatorname{prox}_{(1/\beta)\lambda R}(W),

  the ℓ0 case being the hard threshold of ``W`` at ``√(2λ/β)`` (paper 001;
  the TL1 variant uses ``rda_optax.transformed_l1``). ``β`` grows during
  training (the paper multiplies it by 1.25 every K epochs): pass a schedule
  such as ``optax.exponential_decay(2.5, K * steps_per_epoch, 1.25,
  staircase=True)``. The sparse model is ``V``: read it from
  ``state.aux`` or with :func:`sparse_params`.

  Example:
    >>> import jax.numpy as jnp, optax, rda_optax
    >>> params = {'w': jnp.array([[0.05, 1.0], [-2.0, 0.1]])}
    >>> opt = rda_optax.variable_splitting(
    ...     optax.sgd(0.1), rda_optax.l0(0.01), beta=2.0)
    >>> state = opt.init(params)
    >>> updates, state = opt.update({'w': jnp.zeros((2, 2))}, state, params)
    >>> rda_optax.sparse_params(state)['w']   # |w| <= sqrt(2 * 0.01 / 2)
    Array([[ 0.,  1.],
           [-2.,  0.]], dtype=float32)

  Args:
    inner: the optimizer for ``W`` (paper 001: Adam 1e-3 for LeNet-5, SGD
      0.1 with Nesterov momentum for Wide-ResNet).
    regularizer: the penalty on ``V`` (``rda_optax.l0(λ)``,
      ``rda_optax.transformed_l1(λ, a)``, or any :class:`Regularizer`).
    beta: the coupling ``β > 0`` (float or schedule).
    group_strength: ``λ_g`` of the group term on ``W`` (0 for none).
    groups: ``"output"`` or ``"input"`` channel/neuron groups.
    mask: leaves that are split (default kernels, ``ndim > 1``); the others
      are trained by ``inner`` alone.

  References:
    Bui, Park, Zhang, Qi & Xin, *ℓ0 Regularized Structured Sparsity
    Convolutional Neural Networks*, arXiv 1912.07868.
  """
  regs.check_regularizer('variable_splitting', regularizer, allow_none=False)
  validation.check_positive('variable_splitting', 'beta', beta)
  regs.check_nonnegative('group_strength', group_strength)
  regs.check_groups(groups)
  inner = optax.with_extra_args_support(inner)

  def prox_all(params, count, prox_state):
    b = regs.value_at(beta, count)
    selected = selection.resolve_mask(mask, params)
    if regularizer.ranks_input:
      # Into memory once: a sparsity constraint's search and masks must see
      # the same bits.
      params = threshold.computed_once(lambda p: p, params, count)
    return regularizer.prox_tree_with_state(
        params, selected, 1 / b, count, prox_state
    )

  def init_fn(params):
    selection.check_selects(mask, params, 'variable_splitting')
    aux, prox_state = prox_all(
        params, jnp.zeros([], jnp.int32), regularizer.init_state(params)
    )
    return SplittingState(
        count=jnp.zeros([], jnp.int32),
        aux=aux,
        inner_state=inner.init(params),
        landing=landing.init(),
        prox_state=prox_state,
    )

  def update_fn(updates, state, params=None, **extra_args):
    check_update_args('variable_splitting', updates, params)
    check = landing.verify(state.landing, params, state.count)
    selected = selection.resolve_mask(mask, params)
    b = regs.value_at(beta, state.count)
    lam_g = regs.value_at(group_strength, state.count)

    def coupled(g, w, v, sel):
      if not sel:
        return g
      wc = w.astype(jnp.promote_types(w.dtype, jnp.float32))
      extra = b * (wc - v.astype(wc.dtype))
      norms, n_g = regs.group_norms(wc, groups)
      safe = jnp.where(norms > 0, norms, 1)
      extra += lam_g * math.sqrt(n_g) * jnp.where(norms > 0, wc / safe, 0)
      return (g + extra).astype(g.dtype)

    grads = jax.tree.map(coupled, updates, params, state.aux, selected)
    new_updates, inner_state = inner.update(
        grads, state.inner_state, params, **extra_args
    )
    new_w = optax.apply_updates(params, new_updates)
    # Returned as the difference to W (not the inner's own updates, which a
    # train step compiled with them may fuse into one multiply-add): every
    # way of applying it lands on the same bits.
    deltas = landing.as_difference(params, new_w)
    count = optax.safe_increment(state.count)
    aux, prox_state = prox_all(new_w, state.count, state.prox_state)
    return deltas, SplittingState(
        count=count,
        aux=aux,
        inner_state=inner_state,
        landing=landing.record(check, params, deltas),
        prox_state=prox_state,
    )

  return optax.GradientTransformationExtraArgs(
      init_fn, sharding.explicit_safe(update_fn)
  )
