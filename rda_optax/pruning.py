"""Magnitude pruning: one-shot (Han et al. 2015), gradual (Zhu & Gupta 2017).

Every comparison of a regularization method needs these baselines at the
same sparsity.

**One-shot pruning + fine-tuning (Han et al. 2015).** Train dense, prune the
smallest-magnitude weights (per layer or globally), then fine-tune with the
pruned weights held at zero. The fine-tuning reuses :func:`rda_optax.asr`,
which freezes every exact zero of the selected leaves::

  masks = magnitude_masks(trained_params, 0.9, scope='layer')
  params = apply_masks(trained_params, masks)      # pruned weights are 0.0
  tx = rda_optax.asr(optax.sgd(0.01, momentum=0.9))  # keeps them at 0.0
  opt_state = tx.init(params)

(``asr`` freezes *every* exact zero of the selected leaves, including weights
that happened to be zero before pruning, which is what fine-tuning wants;
give it the same ``mask`` as :func:`magnitude_masks`. Without ``asr``,
``gradual_magnitude_pruning(s, begin_step=0, end_step=0, frequency=1)``
chained after the optimizer is one-shot pruning at the first step, with the
masks then held fixed.)

**Gradual magnitude pruning (Zhu & Gupta 2017).**
:func:`gradual_magnitude_pruning` is chained after any optimizer; it raises
the sparsity along the cubic schedule :func:`zhu_gupta_sparsity`, recomputing
the masks every ``frequency`` steps from the magnitudes of the updated
weights, and lands the pruned weights exactly on zero::

  tx = optax.chain(
      optax.sgd(0.1, momentum=0.9),
      gradual_magnitude_pruning(0.9, begin_step=2000, end_step=20000,
                                frequency=100))

Leaf selection (``mask``) follows :mod:`rda_optax.selection`: by default every
leaf with ``ndim > 1`` (conv and dense kernels) is pruned, biases and
normalization parameters never are.

**Exact counts.** Pruning a fraction ``s`` of ``n`` weights removes exactly
``round(s·n)`` of them (round half to even), the ones with the smallest
``|w|``; ties are broken deterministically: among equal magnitudes the
entries that come first in row-major (C) order — and, with ``scope="global"``,
in :func:`jax.tree.leaves` order — are pruned first (magnitudes below the
smallest normal float32 count as zero, as XLA:CPU compares them). The
threshold is found without a sort, in a few counting passes over the
weights (:func:`rda_optax.kth_smallest`).
"""

from __future__ import annotations

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import optax

from rda_optax import selection
from rda_optax import sharding
from rda_optax import threshold
from rda_optax import validation

__all__ = [
    'GradualPruningState',
    'apply_masks',
    'gradual_magnitude_pruning',
    'magnitude_masks',
    'zhu_gupta_sparsity',
]

_SCOPES = ('layer', 'global')


# ---------------------------------------------------------------------------
# Validation helpers (they skip traced values, e.g. under inject_hyperparams).


def _check_sparsity(name: str, value: Any) -> None:
  v = validation.static_number(name, value)
  if v is not None and not 0.0 <= v < 1.0:
    raise ValueError(f'{name} must lie in [0, 1), got {value!r}.')


def _check_scope(scope: Any) -> None:
  if scope not in _SCOPES:
    raise ValueError(
        f'Unknown pruning scope {scope!r}: use "layer" (prune each selected '
        'leaf to the sparsity) or "global" (rank all selected leaves '
        'together).'
    )


def _check_schedule(
    final_sparsity, begin_step, end_step, initial_sparsity, frequency
) -> None:
  _check_sparsity('final_sparsity', final_sparsity)
  _check_sparsity('initial_sparsity', initial_sparsity)
  s_f = validation.static_number('final_sparsity', final_sparsity)
  s_i = validation.static_number('initial_sparsity', initial_sparsity)
  if s_f is not None and s_i is not None and s_i > s_f:
    raise ValueError(
        f'initial_sparsity ({initial_sparsity!r}) must not exceed '
        f'final_sparsity ({final_sparsity!r}).'
    )
  t0 = validation.static_number('begin_step', begin_step)
  t1 = validation.static_number('end_step', end_step)
  dt = validation.static_number('frequency', frequency)
  for name, v in (('begin_step', t0), ('end_step', t1), ('frequency', dt)):
    if v is not None and v != int(v):
      raise ValueError(f'{name} must be an integer, got {v!r}.')
  if t0 is not None and t0 < 0:
    raise ValueError(f'begin_step must be >= 0, got {begin_step!r}.')
  if t0 is not None and t1 is not None and t0 > t1:
    raise ValueError(
        f'begin_step ({begin_step!r}) must not exceed end_step ({end_step!r}).'
    )
  if dt is not None and dt <= 0:
    raise ValueError(
        f'frequency must be a positive integer, got {frequency!r}.'
    )


# ---------------------------------------------------------------------------
# Mask computation (works with static or traced sparsity).


def _keep_largest(xs: list[Any], sparsity: Any, magnitude: bool) -> list[Any]:
  """Keep-masks of ``xs`` ranked together: all but the ``round(s·n)``
  smallest (by ``|x|`` with ``magnitude``), found by
  :func:`rda_optax.threshold.kth_smallest` (ties by position). The values
  are first computed into memory (:func:`rda_optax.threshold.computed_once`),
  so that the search and the masks see the same bits."""
  xs = threshold.computed_once(list, [jnp.asarray(x) for x in xs])
  k = threshold.fraction_count(sparsity, sum(x.size for x in xs))
  split, _ = threshold.kth_smallest(xs, k, magnitude=magnitude)
  pruned = threshold.smallest_masks(xs, split, magnitude=magnitude)
  return [~m for m in pruned]


def _masks_from_scores(
    scores: Any,
    selected: Any,
    sparsity: Any,
    scope: str,
    *,
    per_leaf: bool = False,
    magnitude: bool = False,
) -> Any:
  """Keep-masks with the structure of ``scores`` (one bool array per leaf).

  ``sparsity`` is a scalar, or with ``per_leaf=True`` a list with one value
  per leaf of ``scores`` (``scope="layer"`` only). With ``magnitude`` the
  scores are the leaves' magnitudes.
  """
  leaves, treedef = jax.tree.flatten(scores)
  sel = treedef.flatten_up_to(selected)
  sparsities = sparsity if per_leaf else [sparsity] * len(leaves)
  out = [jnp.ones(jnp.shape(x), bool) for x in leaves]
  idx = [i for i, s in enumerate(sel) if s]
  if scope == 'layer':
    for i in idx:
      (out[i],) = _keep_largest([leaves[i]], sparsities[i], magnitude)
  elif idx:
    keep = _keep_largest([leaves[i] for i in idx], sparsity, magnitude)
    for i, m in zip(idx, keep):
      out[i] = m
  return treedef.unflatten(out)


def _broadcast_prefix(prefix: Any, tree: Any, what: str) -> Any:
  try:
    return jax.tree.map(
        lambda v, sub: jax.tree.map(lambda _: v, sub), prefix, tree
    )
  except (ValueError, TypeError) as e:
    raise ValueError(
        f'The per-leaf {what} tree does not match the parameters: pass a '
        'number or a tree with the structure of the params (or a prefix of '
        f'it). ({e})'
    ) from e


def magnitude_masks(
    params: Any,
    sparsity: Any,
    *,
    scope: str = 'layer',
    mask: Any = None,
) -> Any:
  r"""Magnitude-pruning keep-masks (``True`` = keep), Han et al. (2015).

  For each selected leaf ``w`` with ``n`` entries (``scope="layer"``), or for
  all selected leaves ranked together (``scope="global"``, ``n`` = their total
  size), the mask removes the ``k = round(s·n)`` entries of smallest ``|w|``:

  .. math::

    m_i = \begin{cases} 0 & \text{if } i \text{ is among the } k
    \text{ smallest } |w_i| \\ 1 & \text{otherwise,} \end{cases}

  with ties broken in row-major / leaf order (earliest entries pruned
  first), so exactly ``k`` entries are pruned. Unselected leaves get an
  all-``True`` mask. Works under :func:`jax.jit` (``sparsity`` may then be a
  traced scalar).

  Example:
    >>> import jax.numpy as jnp
    >>> params = {'w': jnp.array([[0.3, -0.1], [2.0, 0.05]]),
    ...           'b': jnp.array([0.0, 1.0])}
    >>> masks = magnitude_masks(params, 0.5)
    >>> masks['w']
    Array([[ True, False],
           [ True, False]], dtype=bool)
    >>> masks['b']
    Array([ True,  True], dtype=bool)
    >>> apply_masks(params, masks)['w']
    Array([[0.3, 0. ],
           [2. , 0. ]], dtype=float32)

  Args:
    params: a pytree of arrays.
    sparsity: fraction in ``[0, 1)`` of the selected weights to prune. With
      ``scope="layer"`` it may also be a tree of per-leaf fractions with the
      structure of ``params`` (or a prefix of it).
    scope: ``"layer"`` (each selected leaf reaches the sparsity) or
      ``"global"`` (one magnitude threshold over all selected leaves; layers
      end up with different sparsities).
    mask: which leaves to prune: ``None`` (kernels, ``ndim > 1``), a tree of
      booleans (or prefix), or a callable ``params -> tree``.

  Returns:
    A tree with the structure of ``params`` of boolean arrays of the leaves'
    shapes.

  Raises:
    ValueError: for a sparsity outside ``[0, 1)``, an unknown scope, a
      per-leaf sparsity tree with ``scope="global"``, or a mask that does not
      fit the params.

  References:
    Han, Pool, Tran & Dally, `Learning both Weights and Connections for
    Efficient Neural Networks <https://arxiv.org/abs/1506.02626>`_, 2015.
  """
  _check_scope(scope)
  selection.check_selects(mask, params, 'magnitude_masks')
  selected = selection.resolve_mask(mask, params)
  per_leaf = not jax.tree_util.treedef_is_leaf(jax.tree.structure(sparsity))
  if per_leaf:
    if scope == 'global':
      raise ValueError(
          'A per-leaf sparsity tree needs scope="layer"; scope="global" takes '
          'one sparsity for all the selected leaves.'
      )
    full = _broadcast_prefix(sparsity, params, 'sparsity')
    sparsity = jax.tree.structure(params).flatten_up_to(full)
    for s in sparsity:
      _check_sparsity('sparsity', s)
  else:
    _check_sparsity('sparsity', sparsity)
  masks = lambda p: _masks_from_scores(
      p, selected, sparsity, scope, per_leaf=per_leaf, magnitude=True
  )
  return sharding.call(masks, (params,), lambda: params)


def apply_masks(params: Any, masks: Any) -> Any:
  """Zeroes the pruned entries: ``where(mask, w, 0)``, dtype preserved.

  Example:
    >>> import jax.numpy as jnp
    >>> w = jnp.array([1.0, -2.0, 3.0], jnp.bfloat16)
    >>> apply_masks(w, jnp.array([True, False, True]))
    Array([1, 0, 3], dtype=bfloat16)

  Args:
    params: a pytree of arrays.
    masks: boolean keep-masks with the structure of ``params`` (e.g. from
      :func:`magnitude_masks`).

  Returns:
    ``params`` with every masked-out entry exactly ``0`` (of the leaf's dtype).
  """
  return jax.tree.map(
      lambda p, m: jnp.where(m, p, jnp.zeros((), jnp.asarray(p).dtype)),
      params,
      masks,
  )


# ---------------------------------------------------------------------------
# Zhu & Gupta gradual pruning.


def _zhu_gupta(
    step, final_sparsity, begin_step, end_step, initial_sparsity, frequency
) -> jax.Array:
  t = jnp.asarray(step, jnp.int32)
  t0 = jnp.asarray(begin_step, jnp.int32)
  t1 = jnp.asarray(end_step, jnp.int32)
  dt = jnp.maximum(jnp.asarray(frequency, jnp.int32), 1)
  s_f = jnp.asarray(final_sparsity).astype(jnp.float32)
  s_i = jnp.asarray(initial_sparsity).astype(jnp.float32)
  # The step of the last mask update at or before t.
  t_q = t0 + ((jnp.clip(t, t0, t1) - t0) // dt) * dt
  t_q = jnp.where(t >= t1, t1, t_q)
  span = jnp.maximum(t1 - t0, 1).astype(jnp.float32)
  progress = jnp.where(t >= t1, 1.0, (t_q - t0).astype(jnp.float32) / span)
  return s_f + (s_i - s_f) * (1.0 - progress) ** 3


def zhu_gupta_sparsity(
    step: jax.typing.ArrayLike,
    *,
    final_sparsity: float,
    begin_step: int,
    end_step: int,
    initial_sparsity: float = 0.0,
    frequency: int = 1,
) -> jax.Array:
  r"""Zhu & Gupta's cubic sparsity schedule, the sparsity in force at ``step``.

  .. math::

    s_t = s_f + (s_i - s_f)\left(1 - \frac{\tau(t) - t_0}{t_1 - t_0}\right)^3,

  where ``t0 = begin_step``, ``t1 = end_step`` (``= t0 + n·Δt`` in the
  paper), ``Δt = frequency`` and ``τ(t)`` is the step of the last mask
  update at or before ``t``: ``τ(t) = t0 + ⌊(t − t0)/Δt⌋·Δt`` for
  ``t0 <= t < t1``, ``τ(t) = t1`` for ``t >= t1`` (the final update always
  happens at ``t1``, even when ``t1 − t0`` is not a multiple of ``Δt``), and
  ``τ(t) = t0`` for ``t < t0``. So ``s_t = s_i`` up to ``t0`` and ``s_f``
  from ``t1`` on; with ``frequency=1`` it is the smooth cubic. A
  ``begin_step == end_step`` jumps from ``s_i`` to ``s_f`` at that step.

  Traceable in ``step`` (and in every hyper-parameter); returns a float32
  scalar. ``functools.partial(zhu_gupta_sparsity, final_sparsity=...,
  begin_step=..., end_step=...)`` is an Optax-style schedule of the count.

  Example:
    >>> kw = dict(final_sparsity=0.8, begin_step=10, end_step=20)
    >>> s = [float(zhu_gupta_sparsity(t, **kw)) for t in (0, 10, 15, 20, 99)]
    >>> [round(v, 4) for v in s]
    [0.0, 0.0, 0.7, 0.8, 0.8]

  Args:
    step: the step count ``t`` (0-based).
    final_sparsity: ``s_f`` in ``[0, 1)``.
    begin_step: ``t0 >= 0``, the first pruning step.
    end_step: ``t1 >= t0``, the step at which ``s_f`` is reached.
    initial_sparsity: ``s_i`` in ``[0, s_f]``.
    frequency: ``Δt > 0``, steps between mask updates.

  Returns:
    The scheduled sparsity, a float32 scalar.

  Raises:
    ValueError: for concrete hyper-parameters out of range.

  References:
    Zhu & Gupta, `To prune, or not to prune: exploring the efficacy of
    pruning for model compression <https://arxiv.org/abs/1710.01878>`_, 2017.
  """
  _check_schedule(
      final_sparsity, begin_step, end_step, initial_sparsity, frequency
  )
  return _zhu_gupta(
      step, final_sparsity, begin_step, end_step, initial_sparsity, frequency
  )


class GradualPruningState(NamedTuple):
  """State of :func:`gradual_magnitude_pruning`.

  Attributes:
    count: number of updates applied so far (int32); the current update is
      step ``count``.
    masks: boolean keep-masks with the structure of the params (``True`` =
      weight is alive); all ``True`` before ``begin_step``.
  """

  count: jax.Array
  masks: optax.Params


def gradual_magnitude_pruning(
    final_sparsity: float,
    *,
    begin_step: int,
    end_step: int,
    frequency: int,
    initial_sparsity: float = 0.0,
    scope: str = 'layer',
    mask: Any = None,
) -> optax.GradientTransformationExtraArgs:
  r"""Gradual magnitude pruning (Zhu & Gupta 2017), chained after an optimizer.

  At update ``t`` (``t = state.count``), with incoming updates ``u_t`` from
  the optimizer before it in the chain and params ``w_t``:

  .. math::

    \tilde w &= w_t + u_t, \\
    M_t &= \begin{cases}
      \operatorname{magnitude\_masks}(\tilde w,\ s_t) &
        \text{if } t_0 \le t \le t_1 \text{ and }
        ((t - t_0) \bmod \Delta t = 0 \text{ or } t = t_1), \\
      M_{t-1} & \text{otherwise } (M_{-1} = \mathbf{1}),
    \end{cases} \\
    u'_t &= M_t \odot u_t - (1 - M_t) \odot w_t,

  where ``s_t`` is :func:`zhu_gupta_sparsity`. So ``w_{t+1} = w_t + u'_t``
  equals ``w̃`` on kept entries and exactly ``0`` on pruned ones, and a pruned
  weight stays exactly ``0`` afterwards (its update is ``−0``). Weights pruned
  at an earlier update rank below every live weight when the masks are
  recomputed, so the pruned set only grows and each selected leaf
  (``scope="layer"``) or the selected leaves together (``scope="global"``)
  hold exactly ``round(s_t·n)`` pruned weights from step ``t`` on (see
  :mod:`rda_optax.pruning` for the tie rule). The final update happens at
  ``t1`` even when ``t1 − t0`` is not a multiple of ``Δt``.

  This must be the LAST transform of a chain: anything after it that rescales
  the updates would move the pruned weights off zero. The updates keep their
  dtype when it is the params' (otherwise ``where(M, u, -w)`` promotes it, so
  that pruned entries cancel exactly). Under
  :class:`optax.MultiSteps` the count is the number of optimizer steps, not of
  mini-batches. Everything is traced (``lax.cond`` on the step), so it works
  under ``jit`` and ``pmap`` with no host synchronisation. Under
  :func:`optax.inject_hyperparams`, the numeric hyper-parameters become
  injectable; pass ``hyperparam_dtype=jnp.float32`` for bf16 params (else the
  sparsity is rounded to bf16) and ``static_args=('mask',)`` for a callable
  mask (else it is taken for a schedule).

  Example:
    >>> import jax, jax.numpy as jnp, optax
    >>> params = {'w': jnp.arange(1.0, 11.0).reshape(2, 5), 'b': jnp.ones(5)}
    >>> tx = optax.chain(optax.sgd(0.1),
    ...                  gradual_magnitude_pruning(0.6, begin_step=0,
    ...                                            end_step=4, frequency=2))
    >>> state = tx.init(params)
    >>> grad_fn = jax.grad(lambda p: 0.01 * sum(jnp.sum(x**2)
    ...                                         for x in jax.tree.leaves(p)))
    >>> @jax.jit
    ... def step(params, state):
    ...   updates, state = tx.update(grad_fn(params), state, params)
    ...   return optax.apply_updates(params, updates), state
    >>> for _ in range(6):
    ...   params, state = step(params, state)
    >>> int(jnp.sum(params['w'] == 0)), int(jnp.sum(params['b'] == 0))
    (6, 0)

  Args:
    final_sparsity: ``s_f`` in ``[0, 1)``, reached at ``end_step``.
    begin_step: ``t0``, the first mask update (0-based update count).
    end_step: ``t1 >= t0``, the last mask update.
    frequency: ``Δt > 0``, updates between mask recomputations.
    initial_sparsity: ``s_i`` in ``[0, s_f]``, the sparsity at ``t0``.
    scope: ``"layer"`` or ``"global"`` (see :func:`magnitude_masks`).
    mask: which leaves to prune: ``None`` (kernels, ``ndim > 1``), a tree of
      booleans (or prefix), or a callable ``params -> tree``.

  Returns:
    An :class:`optax.GradientTransformationExtraArgs` whose ``update`` needs
    ``params``.

  Raises:
    ValueError: at construction, for a sparsity outside ``[0, 1)``,
      ``initial_sparsity > final_sparsity``, ``begin_step > end_step``,
      ``frequency <= 0`` or an unknown scope; at update, when ``params`` is
      not passed.

  References:
    Zhu & Gupta, `To prune, or not to prune: exploring the efficacy of
    pruning for model compression <https://arxiv.org/abs/1710.01878>`_, 2017.
  """
  _check_scope(scope)
  _check_schedule(
      final_sparsity, begin_step, end_step, initial_sparsity, frequency
  )

  def recompute(t, params, updates, masks, selected):
    s = _zhu_gupta(
        t, final_sparsity, begin_step, end_step, initial_sparsity, frequency
    )
    # Magnitudes after this update (as optax.apply_updates computes them);
    # already-pruned entries rank first, so the pruned set only grows.
    scores = jax.tree.map(
        lambda p, u, m: jnp.where(
            m, jnp.abs((p + u).astype(jnp.asarray(p).dtype)), -1
        ),
        params,
        updates,
        masks,
    )
    return _masks_from_scores(scores, selected, s, scope)

  return gradual_masks(
      'gradual_magnitude_pruning',
      GradualPruningState,
      recompute,
      begin_step=begin_step,
      end_step=end_step,
      frequency=frequency,
      mask=mask,
  )


def gradual_masks(
    owner: str,
    state_type: Any,
    recompute: Any,
    *,
    begin_step: Any,
    end_step: Any,
    frequency: Any,
    mask: Any,
) -> optax.GradientTransformationExtraArgs:
  """The transform of a gradual pruning (shared by
  :func:`gradual_magnitude_pruning` and
  :func:`rda_optax.gradual_nm_pruning`): masks of ones at first; at update
  ``t0 + j·Δt`` up to ``t1`` (and at ``t1``), ``recompute(t, params,
  updates, masks, selected)`` gives the new masks (the pruned set given
  only grows if ``recompute`` ranks the pruned entries first); a pruned
  weight's update is ``−w``, so it lands on exactly zero. ``state_type``
  is a ``(count, masks)`` NamedTuple."""

  def init_fn(params):
    selection.check_selects(mask, params, owner)
    masks = jax.tree.map(lambda p: jnp.ones_like(p, bool), params)
    return state_type(count=jnp.zeros([], jnp.int32), masks=masks)

  def update_fn(updates, state, params=None, **extra_args):
    del extra_args
    validation.check_update_args(owner, updates, params)
    selected = selection.resolve_mask(mask, params)
    t = state.count
    t0 = jnp.asarray(begin_step, jnp.int32)
    t1 = jnp.asarray(end_step, jnp.int32)
    dt = jnp.maximum(jnp.asarray(frequency, jnp.int32), 1)
    prune_now = (t >= t0) & (t <= t1) & (((t - t0) % dt == 0) | (t == t1))
    masks = jax.lax.cond(
        prune_now,
        lambda: recompute(t, params, updates, state.masks, selected),
        lambda: state.masks,
    )
    new_updates = jax.tree.map(
        lambda u, p, m: jnp.where(m, u, -p), updates, params, masks
    )
    return new_updates, state_type(count=optax.safe_increment(t), masks=masks)

  return optax.GradientTransformationExtraArgs(
      init_fn, sharding.explicit_safe(update_fn)
  )
