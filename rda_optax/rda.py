"""Regularized dual averaging (RDA) centred at the initial weights."""

from __future__ import annotations

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax

from rda_optax import landing
from rda_optax import regularizers as regs
from rda_optax import selection
from rda_optax import sharding
from rda_optax import threshold
from rda_optax import validation
from rda_optax.validation import check_update_args


class RDAState(NamedTuple):
  """State of :func:`rda`.

  Attributes:
    count: number of updates applied so far, ``n − 1`` during step ``n``
      (int32).
    init_params: the proximal centre ``w0`` (the initial weights, frozen), in
      the parameters' dtypes.
    grad_sum: the running sum of gradients ``G_n``, in ``grad_sum_dtype``
      (float32 by default, also for bfloat16 parameters, so that millions of
      small gradients add up without losing precision).
    landing: the check that the updates reached the parameters unchanged
      (:class:`rda_optax.landing.LandingCheck`).
    prox_state: what the regularizer keeps between steps (``()`` for most;
      :func:`rda_optax.sparsity_constraint`'s last threshold, from which the
      next step's search starts; see
      :meth:`rda_optax.Regularizer.init_state`).
  """

  count: jax.Array
  init_params: Any
  grad_sum: Any
  landing: Any
  prox_state: Any = ()


def dual_point(
    init_params, grad_sum, inv_beta, regularizer, selected, t, count
):
  """``prox_{tλR}(w0 − G/β)`` in float32 (or wider), over a whole tree: the
  closed form that RDA and RMDA share. The prox applies to the ``selected``
  leaves (all of them together, so that a regularizer coupling leaves can);
  none when ``regularizer`` is None. A regularizer with a state starts from
  a fresh one (:func:`dual_point_with_state` takes and returns it)."""
  state = regs.init_state(regularizer, init_params)
  return dual_point_with_state(
      init_params, grad_sum, inv_beta, regularizer, selected, t, count, state
  )[0]


def pin(x: jax.Array, zero: jax.Array) -> jax.Array:
  """``x`` itself, its bits xor ``zero`` (a uint32 0 that XLA cannot know):
  no fused multiply-add reaches across it, so the operation that made ``x``
  is rounded on its own in every loop that computes it."""
  ut = {2: jnp.uint16, 4: jnp.uint32, 8: jnp.uint64}[
      jnp.dtype(x.dtype).itemsize
  ]
  bits = jax.lax.bitcast_convert_type(x, ut) ^ zero.astype(ut)
  return jax.lax.bitcast_convert_type(bits, x.dtype)


def pinned_dual_point(operands: Any, args: Any, zero: jax.Array) -> jax.Array:
  """``w0 − G·(1/β)`` of ``operands = (w0, G)``, ``args = (1/β,)``, in
  float32 (or wider), every operation rounded on its own (:func:`pin`):
  the same bits in every fusion that computes it, so that the threshold
  search counts it, the masks compare it and
  :meth:`rda_optax.RMDAState.sparse_point` recomputes it without its ever
  being written out."""
  w0, gsum = operands
  (inv_beta,) = args
  wc = jnp.promote_types(w0.dtype, jnp.float32)
  ib = pin(jnp.asarray(inv_beta).astype(wc), zero)
  return w0.astype(wc) - pin(gsum.astype(wc) * ib, zero)


def pinned_sum(gsum: jax.Array, g: Any, s: Any, zero: jax.Array) -> jax.Array:
  """``G + s·g`` in ``G``'s dtype, its product rounded on its own
  (:func:`pin`): RMDA's weighted gradient sum, which the loops that
  recompute the dual point from the last step's ``G`` compute alike."""
  s = jnp.asarray(s).astype(gsum.dtype)
  return gsum + pin(s * jnp.asarray(g).astype(gsum.dtype), zero)


def opaque_zero(count: Any) -> jax.Array:
  """A uint32 0 that the compiler cannot know (see :func:`pin`): whether
  ``count``, a step count read from an optimizer's state (a runtime value
  ``>= 0``), is negative. (Not from a value whose range XLA or LLVM can
  deduce: LLVM knows that a population count or ``max(x, 0)`` is not
  negative, folds the zero and contracts the multiply-add again.)"""
  return (jnp.asarray(count) < 0).astype(jnp.uint32)


def prox_buffer(regularizer: Any, params: Any, selected: Any) -> Any:
  """Room for ``w0 − G/β`` of the ``selected`` leaves, end to end in one
  1-D array (float32, or wider), when ``regularizer`` ranks its input
  (``()`` otherwise): kept in the optimizer's state and donated with it, so
  that each step writes the dual point there rather than into new memory
  (see :func:`dual_point_with_state`)."""
  if (
      regularizer is None
      or not regularizer.ranks_input
      or hasattr(regularizer, 'prox_computed')
  ):
    return ()
  leaves, treedef = jax.tree.flatten(params)
  chosen = [p for p, s in zip(leaves, treedef.flatten_up_to(selected)) if s]
  if not chosen:
    return ()
  dtype = jnp.result_type(
      *[jnp.promote_types(p.dtype, jnp.float32) for p in chosen]
  )
  return jnp.zeros((sum(int(np.prod(p.shape)) for p in chosen),), dtype)


def dual_point_with_state(
    init_params,
    grad_sum,
    inv_beta,
    regularizer,
    selected,
    t,
    count,
    state,
    buffer=None,
    token=None,
):
  """:func:`dual_point` with the regularizer's state (see
  :meth:`rda_optax.Regularizer.prox_tree_with_state`):
  ``(point, state, buffer)``.

  For a regularizer that ranks its input (``ranks_input``: a sparsity
  constraint), ``w0 − G/β`` of the selected leaves is computed once into
  memory, end to end in one array (:func:`rda_optax.threshold.computed_once`,
  ``count`` its token; into ``buffer``, a :func:`prox_buffer` of the state,
  when given: the new buffer is returned), so that the threshold search and
  the masks see the same bits, and so that a recomputation from the same
  ``w0``, ``G`` and ``1/β`` (RMDA's :meth:`~rda_optax.RMDAState.sparse_point`)
  gives the same bits, hence the same zeros.

  A regularizer with ``prox_computed`` (a sparsity constraint) gets instead
  the dual point as a computation (:func:`pinned_dual_point`), never written
  out: its search reads ``w0`` and ``G`` and its masks recompute it in the
  loop that writes the result; its rounding is pinned by
  :func:`opaque_zero` of ``token`` (default ``count``): a step count read
  from the optimizer's state, not one computed from it."""

  def one(w0, gsum):
    wc = jnp.promote_types(w0.dtype, jnp.float32)
    return w0.astype(wc) - gsum.astype(wc) * inv_beta

  w0s, treedef = jax.tree.flatten(init_params)
  gsums = treedef.flatten_up_to(grad_sum)
  chosen = [i for i, s in enumerate(treedef.flatten_up_to(selected)) if s]
  ranks = regularizer is not None and regularizer.ranks_input and chosen
  if ranks and hasattr(regularizer, 'prox_computed'):
    # The dual point is never written out: the search and the masks
    # recompute it, with its rounding pinned (the same bits everywhere).
    zero = opaque_zero(count if token is None else token)
    out = [
        None if i in chosen else one(w0, g)
        for i, (w0, g) in enumerate(zip(w0s, gsums))
    ]
    inv_beta = jnp.asarray(inv_beta, jnp.float32)
    projected, state = regularizer.prox_computed(
        [(w0s[i], gsums[i]) for i in chosen],
        pinned_dual_point,
        (inv_beta,),
        zero,
        count,
        state,
        index=chosen,
    )
    for i, y in zip(chosen, projected):
      out[i] = y
    return treedef.unflatten(out), state, buffer
  out = [
      None if ranks and i in chosen else one(w0, g)
      for i, (w0, g) in enumerate(zip(w0s, gsums))
  ]
  if ranks:
    shapes = [jnp.shape(w0s[i]) for i in chosen]
    if not isinstance(buffer, jax.Array):
      buffer = prox_buffer(regularizer, init_params, selected)
      keep = False
    else:
      keep = True

    def fill(ops, buf):
      offset = 0
      for w0, g in zip(*ops):
        v = one(w0, g).reshape(-1).astype(buf.dtype)
        buf = jax.lax.dynamic_update_slice(buf, v, (offset,))
        offset += v.size
      return buf

    flat = threshold.computed_into(
        fill,
        ([w0s[i] for i in chosen], [gsums[i] for i in chosen]),
        buffer,
        count,
    )
    for i, x in zip(chosen, threshold.flat_view(flat, shapes)):
      out[i] = x.astype(jnp.promote_types(w0s[i].dtype, jnp.float32))
    buffer = flat if keep else None
  v = treedef.unflatten(out)
  if regularizer is None:
    return v, state, buffer
  v, state = regularizer.prox_tree_with_state(v, selected, t, count, state)
  return v, state, buffer


def rda(
    gamma: regs.ScalarOrSchedule,
    regularizer: regs.Regularizer | None = None,
    *,
    mask: selection.MaskOrFn = None,
    grad_sum_dtype: Any = 'float32',
) -> optax.GradientTransformationExtraArgs:
  r"""Regularized dual averaging with the proximal centre at ``w0``.

  **Last in a chain.** Transforms of the gradient go before it
  (``optax.chain(optax.clip_by_global_norm(1.0), rda_optax.rda(...))``);
  nothing may change its updates after it (``optax.scale``, ``optax.clip``, a
  learning-rate scale, ``optax.add_decayed_weights`` placed after): they would
  move the weights off its exactly sparse points. Such a change is detected
  when it recurs on consecutive steps (the state records where each update
  lands and the next step compares): then :func:`rda_optax.sparse_params`
  raises :class:`rda_optax.ChainOrderError`. A change on isolated steps only
  is not detected.

  With ``G_n = Σ_{i≤n} g_i`` the running sum of gradients and
  ``β_n = γ√n``, step ``n`` moves to the closed-form solution

  .. math::

    w_n = \arg\min_w \langle G_n, w\rangle + n\lambda R(w)
          + \tfrac{\beta_n}{2}\|w - w_0\|^2
        = \operatorname{prox}_{(n/\beta_n)\lambda R}\big(w_0 - G_n/\beta_n\big),

  for ℓ1 the soft threshold ``S_{λ√n/γ}(w0 − G_n/(γ√n))``. The threshold
  grows like ``√n``, which is why RDA finds far more sparsity than proximal
  SGD. ``w0`` is the random initial weights (not zero: a ReLU network whose
  kernels all start at zero cannot leave it).

  Leaves not selected by ``mask`` (default: biases and batch-norm
  parameters, i.e. ``ndim ≤ 1``) take the same dual averaging with
  ``λ = 0``: ``w_n = w0 − G_n/β_n``.

  The transform returns ``w_n − w_{n−1}`` so that :func:`optax.apply_updates`
  lands exactly on zero wherever ``w_n`` is zero. Do not chain anything after
  it that rescales the updates. ``γ`` and the regularizer strengths may be
  schedules, evaluated at the step count (0 at the first step); changing
  them mid-run re-weights the whole history, as in the paper's §5.2.

  **Non-finite gradients.** The gradient sum remembers every gradient: one
  NaN or infinite gradient poisons its entries of ``G`` for the rest of the
  run. Wrap the transform in ``optax.apply_if_finite(...,
  max_consecutive_errors=N)`` to skip such steps (tested).

  Example:
    >>> import jax, jax.numpy as jnp, optax, rda_optax
    >>> params = {'w': jnp.array([[0.5, -0.25], [0.25, 0.125]]),
    ...           'b': jnp.zeros(2)}
    >>> opt = rda_optax.rda(gamma=1.0, regularizer=rda_optax.l1(0.125))
    >>> state = opt.init(params)
    >>> grads = {'w': jnp.array([[0.125, 0.0], [0.0, 0.25]]), 'b': jnp.ones(2)}
    >>> updates, state = opt.update(grads, state, params)
    >>> optax.apply_updates(params, updates)['w']  # S_0.125(w0 - G)
    Array([[ 0.25 , -0.125],
           [ 0.125,  0.   ]], dtype=float32)

  Args:
    gamma: ``γ > 0`` (float or schedule); the step behaves like ``1/(γ√n)``.
    regularizer: a :class:`rda_optax.Regularizer` (e.g.
      ``rda_optax.l1(1e-5)``); ``None`` gives plain dual averaging.
    mask: leaves the regularizer applies to (tree of bools or a callable, as
      in :func:`optax.masked`); default :func:`rda_optax.default_mask`.
    grad_sum_dtype: dtype of the gradient sum (``'float32'`` by default; ``None``
      keeps each parameter's dtype).

  Returns:
    An :class:`optax.GradientTransformationExtraArgs`.

  References:
    Xiao, *Dual Averaging Methods for Regularized Stochastic Learning and
    Online Optimization*, JMLR 2010.
    He, Jia, Xu, Zhang & Zhao, *Make ℓ1 Regularization Effective in Training
    Sparse CNN*, Comput. Optim. Appl. 2020 (Algorithm 2).
  """
  validation.check_positive(
      'rda',
      'gamma',
      gamma,
      'β_n = γ√n; typical values are 0.1 to 10, and a schedule may change it '
      'during training.',
  )
  regs.check_regularizer('rda', regularizer)
  sum_dt = validation.dtype_arg('rda', 'grad_sum_dtype', grad_sum_dtype)

  def init_fn(params):
    if regularizer is not None:
      selection.check_selects(mask, params, 'rda')
    sum_dtype = lambda p: sum_dt or jnp.asarray(p).dtype
    return RDAState(
        count=jnp.zeros([], jnp.int32),
        # A copy, not an alias: train steps donate params and state together.
        init_params=jax.tree.map(lambda p: jnp.array(p, copy=True), params),
        grad_sum=jax.tree.map(
            lambda p: jnp.zeros_like(p, sum_dtype(p)), params
        ),
        landing=landing.init(),
        prox_state=regs.init_state(regularizer, params),
    )

  def update_fn(updates, state, params=None, **extra_args):
    del extra_args
    check_update_args('rda', updates, params)
    check = landing.verify(state.landing, params, state.count)
    selected = selection.resolve_mask(mask, params)
    count_inc = optax.safe_increment(state.count)
    n = count_inc.astype(jnp.float32)
    beta = regs.value_at(gamma, state.count) * jnp.sqrt(n)
    inv_beta = 1 / beta
    t = n * inv_beta  # Weight of λR in the prox.
    grad_sum = jax.tree.map(
        lambda s, g: s + g.astype(s.dtype), state.grad_sum, updates
    )

    v, prox_state, _ = dual_point_with_state(
        state.init_params,
        grad_sum,
        inv_beta,
        regularizer,
        selected,
        t,
        state.count,
        state.prox_state,
    )
    new_params = jax.tree.map(
        lambda x, w0: x.astype(w0.dtype), v, state.init_params
    )
    deltas = jax.tree.map(
        lambda w, p: (w - jnp.asarray(p)).astype(jnp.asarray(p).dtype),
        new_params,
        params,
    )
    return deltas, RDAState(
        count=count_inc,
        init_params=state.init_params,
        grad_sum=grad_sum,
        landing=landing.record(check, params, deltas),
        prox_state=prox_state,
    )

  return optax.GradientTransformationExtraArgs(
      init_fn, sharding.explicit_safe(update_fn)
  )
