"""N:M sparsity reached gradually, and its magnitude baselines.

The constraint of :mod:`rda_optax.nm` is reached gradually in one of two
ways, each a schedule of the optimizer's count:

* ``n`` a schedule, ``M`` fixed: N decreases from ``M`` (dense) to its final
  value (:func:`nm_n_schedule`, Zhu & Gupta's cubic in the density ``N/M``,
  rounded to whole N). Decaying the N:M structure from dense during training
  rather than imposing it at once is the idea of the structure-decay
  schedules of Kao et al. (2022) and Bambhaniya et al. (2024);
* ``fraction`` a schedule: the fraction of groups held to N:M ramps from 0 to
  1 (:func:`nm_fraction_schedule`, Zhu & Gupta's cubic).

The magnitude baselines are :func:`nm_masks` (one-shot: prune a trained
model to N:M, then fine-tune with :func:`rda_optax.asr` holding the pruned
weights at zero, as NVIDIA's ASP recipe does) and :func:`gradual_nm_pruning`
(chained after any optimizer, like :func:`rda_optax.gradual_magnitude_pruning`).
:func:`nm_violations` and :func:`satisfies_nm` check the pattern of any
array. The groups, the axes and the ties are those of :mod:`rda_optax.nm`.

References:
  Mishra, Latorre, Pool, Stosic, Stosic, Venkatesh, Yu & Micikevicius,
  *Accelerating Sparse Deep Neural Networks*, arXiv 2104.08378, 2021 (2:4 on
  Ampere; one-shot magnitude pruning and fine-tuning).
  Kao, Kiamari, Yarrington, ... & Krishna, *Training Recipe for N:M
  Structured Sparsity with Decaying Pruned Weights*, arXiv 2209.07617, 2022.
  Bambhaniya, Yazdanbakhsh, Subramanian, Kao, Agrawal & Krishna,
  *Progressive Gradient Flow for Robust N:M Sparsity Training in
  Transformers*, arXiv 2402.04744, 2024.
  Zhu & Gupta, *To prune, or not to prune*, arXiv 1710.01878, 2017.
"""

from __future__ import annotations

from typing import Any, Literal, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax

from rda_optax import selection
from rda_optax import validation
from rda_optax.nm_groups import Axis
from rda_optax.nm_groups import _check_axis
from rda_optax.nm_groups import _check_nm
from rda_optax.nm_groups import _keep_mask
from rda_optax.nm_groups import _magnitude_scores
from rda_optax.nm_groups import group_axis
from rda_optax.pruning import gradual_masks

__all__ = [
    'GradualNMState',
    'gradual_nm_pruning',
    'nm_fraction_schedule',
    'nm_masks',
    'nm_n_schedule',
    'nm_violations',
    'satisfies_nm',
]


def _progress(step, begin_step, end_step, frequency) -> jax.Array:
  """Zhu & Gupta's progress ``(τ(t) − t0)/(t1 − t0)`` in [0, 1], ``τ(t)``
  the step of the last update at or before ``t`` (1 from ``t1`` on)."""
  t = jnp.asarray(step, jnp.int32)
  t0 = jnp.asarray(begin_step, jnp.int32)
  t1 = jnp.asarray(end_step, jnp.int32)
  dt = jnp.maximum(jnp.asarray(frequency, jnp.int32), 1)
  t_q = t0 + ((jnp.clip(t, t0, t1) - t0) // dt) * dt
  span = jnp.maximum(t1 - t0, 1).astype(jnp.float32)
  return jnp.where(
      t >= t1, 1.0, jnp.clip((t_q - t0).astype(jnp.float32) / span, 0, 1)
  )


def _check_steps(owner, begin_step, end_step, frequency):
  t0 = validation.static_number('begin_step', begin_step)
  t1 = validation.static_number('end_step', end_step)
  dt = validation.static_number('frequency', frequency)
  if t0 is not None and t0 < 0:
    raise ValueError(f'{owner}: begin_step must be >= 0, got {begin_step!r}.')
  if t0 is not None and t1 is not None and t0 > t1:
    raise ValueError(
        f'{owner}: begin_step ({begin_step!r}) must not exceed end_step '
        f'({end_step!r}).'
    )
  if dt is not None and dt <= 0:
    raise ValueError(
        f'{owner}: frequency must be a positive integer, got {frequency!r}.'
    )


def nm_n_schedule(
    step: jax.typing.ArrayLike,
    *,
    n: int,
    m: int,
    begin_step: int,
    end_step: int,
    frequency: int = 1,
) -> jax.Array:
  r"""N decreasing from ``m`` to ``n`` along Zhu & Gupta's cubic.

  .. math::

    N_t = \operatorname{round}\Big(M - (M - N)\big(1 - (1 - p_t)^3\big)\Big),
    \qquad p_t = \frac{\tau(t) - t_0}{t_1 - t_0},

  the density ``N_t/M`` following the cubic of
  :func:`rda_optax.zhu_gupta_sparsity` (``τ(t)`` the step of the last update,
  every ``frequency`` steps), rounded to a whole N: ``M`` (dense) up to
  ``begin_step``, ``n`` from ``end_step`` on. An int32 scalar; with
  ``functools.partial`` a schedule for :func:`nm_constraint`'s ``n``.

  Example:
    >>> kw = dict(n=2, m=4, begin_step=0, end_step=100)
    >>> [int(nm_n_schedule(t, **kw)) for t in (0, 5, 20, 50, 100)]
    [4, 4, 3, 2, 2]
  """
  _check_nm('nm_n_schedule', n, m)
  _check_steps('nm_n_schedule', begin_step, end_step, frequency)
  p = _progress(step, begin_step, end_step, frequency)
  ramp = 1.0 - (1.0 - p) ** 3
  value = jnp.round(m - (m - n) * ramp)
  return jnp.clip(value, n, m).astype(jnp.int32)


def nm_fraction_schedule(
    step: jax.typing.ArrayLike,
    *,
    begin_step: int,
    end_step: int,
    frequency: int = 1,
) -> jax.Array:
  r"""The fraction of groups held to N:M, ``1 − (1 − p_t)^3`` (0 → 1).

  Zhu & Gupta's cubic (``p_t`` as in :func:`nm_n_schedule`); a float32
  scalar, with ``functools.partial`` a schedule for :func:`nm_constraint`'s
  ``fraction``.

  Example:
    >>> kw = dict(begin_step=10, end_step=20)
    >>> [round(float(nm_fraction_schedule(t, **kw)), 3) for t in (0, 15, 30)]
    [0.0, 0.875, 1.0]
  """
  _check_steps('nm_fraction_schedule', begin_step, end_step, frequency)
  p = _progress(step, begin_step, end_step, frequency)
  return (1.0 - (1.0 - p) ** 3).astype(jnp.float32)


def nm_masks(
    params: Any,
    n: int,
    m: int,
    *,
    axis: Axis = 'input',
    mask: selection.MaskOrFn = None,
) -> Any:
  """N:M magnitude keep-masks (``True`` = keep): one-shot N:M pruning.

  In each group of ``m`` consecutive weights along the input axis of each
  selected leaf, keep the ``n`` largest ``|w|`` (ties: the earlier entry is
  pruned first). Unselected leaves get all-``True`` masks. With
  :func:`rda_optax.apply_masks` and :func:`rda_optax.asr` it is the one-shot
  baseline (prune a trained model, fine-tune with the pruned weights held at
  zero)::

    masks = rda_optax.nm_masks(trained, 2, 4)
    params = rda_optax.apply_masks(trained, masks)
    tx = rda_optax.asr(optax.adamw(1e-4))   # pruned weights stay 0.0

  Example:
    >>> import jax.numpy as jnp
    >>> p = {'w': jnp.array([[1.0], [-3.0], [2.0], [0.5]]), 'b': jnp.ones(1)}
    >>> nm_masks(p, 2, 4)['w'][:, 0]
    Array([False,  True,  True, False], dtype=bool)

  Args:
    params: a pytree of arrays.
    n: the most nonzeros kept per group.
    m: the group size.
    axis: ``"input"`` (axis -2 of each kernel) or an int.
    mask: which leaves to prune (default: ``ndim > 1``), as in
      :func:`rda_optax.magnitude_masks`.

  Returns:
    A tree of boolean arrays with the structure and shapes of ``params``.
  """
  _check_nm('nm_masks', n, m)
  _check_axis(axis)
  selection.check_selects(mask, params, 'nm_masks')
  selected = selection.resolve_mask(mask, params)

  def leaf(p, s):
    if not s:
      return jnp.ones(jnp.shape(p), bool)
    axis_p = group_axis(jnp.ndim(p), axis)
    return _keep_mask(_magnitude_scores(p), n, m, axis_p, 1.0)

  return jax.tree.map(leaf, params, selected)


def nm_violations(x: Any, n: int, m: int, *, axis: Axis = 'input') -> int:
  """How many groups of ``x`` hold more than ``n`` nonzeros (0: N:M met).

  Example:
    >>> import numpy as np
    >>> nm_violations(np.array([[1.0, 0.0], [1.0, 2.0], [1.0, 0.0],
    ...                         [0.0, 3.0]]), 2, 4)
    1
  """
  _check_nm('nm_violations', n, m)
  x = np.asarray(jax.device_get(x))
  if x.ndim == 0:
    x = x.reshape(1)
  x = np.moveaxis(x != 0, group_axis(x.ndim, axis), -1)
  pad = (-x.shape[-1]) % m
  x = np.pad(x, [(0, 0)] * (x.ndim - 1) + [(0, pad)])
  counts = x.reshape(x.shape[:-1] + (-1, m)).sum(-1)
  return int((counts > n).sum())


def satisfies_nm(x: Any, n: int, m: int, *, axis: Axis = 'input') -> bool:
  """Whether every group of ``m`` along ``axis`` has at most ``n`` nonzeros.

  Example:
    >>> import numpy as np
    >>> satisfies_nm(np.array([[1.0], [0.0], [2.0], [0.0]]), 2, 4)
    True
  """
  return nm_violations(x, n, m, axis=axis) == 0


class GradualNMState(NamedTuple):
  """State of :func:`gradual_nm_pruning`.

  Attributes:
    count: number of updates applied so far (int32).
    masks: boolean keep-masks with the structure of the params (all True
      before ``begin_step``).
  """

  count: jax.Array
  masks: Any


def gradual_nm_pruning(
    n: int,
    m: int,
    *,
    begin_step: int,
    end_step: int,
    frequency: int,
    schedule: Literal['n', 'fraction'] = 'n',
    axis: Axis = 'input',
    mask: selection.MaskOrFn = None,
) -> optax.GradientTransformationExtraArgs:
  r"""Gradual N:M magnitude pruning, chained after an optimizer.

  As :func:`rda_optax.gradual_magnitude_pruning`, with N:M masks: at update
  ``t`` (``t0 ≤ t ≤ t1``, every ``frequency`` updates and at ``t1``) the
  masks are recomputed from the magnitudes ``|w_t + u_t|`` the update would
  land on,

  .. math::

    M_t = \mathrm{NM}\big(|w_t + u_t| \text{ (−1 where } M_{t-1} = 0),\;
    N_t, M, f_t\big), \qquad u'_t = M_t \odot u_t - (1 - M_t) \odot w_t,

  with ``schedule="n"``: ``N_t`` = :func:`nm_n_schedule` (M fixed, N from M
  down to ``n``) and ``f_t = 1``; ``schedule="fraction"``: ``N_t = n`` and
  ``f_t`` = :func:`nm_fraction_schedule` (the share of N:M groups from 0 to
  1). Weights pruned earlier rank below every live weight, so the pruned set
  only grows and from ``t1`` on every selected kernel is exactly N:M (pruned
  weights are exactly 0 and stay there). ``begin_step == end_step`` prunes
  in one shot at that update and then holds the masks: one-shot pruning with
  masks frozen during fine-tuning.

  This must be the LAST transform of a chain (see
  :func:`rda_optax.gradual_magnitude_pruning`).

  Example:
    >>> import jax, jax.numpy as jnp, optax, rda_optax
    >>> params = {'w': jnp.arange(1.0, 17.0).reshape(8, 2)}
    >>> tx = optax.chain(optax.sgd(0.1),
    ...                  rda_optax.gradual_nm_pruning(2, 4, begin_step=0,
    ...                                               end_step=4, frequency=2))
    >>> state = tx.init(params)
    >>> for _ in range(5):
    ...   updates, state = tx.update({'w': jnp.ones((8, 2))}, state, params)
    ...   params = optax.apply_updates(params, updates)
    >>> rda_optax.satisfies_nm(params['w'], 2, 4), int((params['w'] == 0).sum())
    (True, 8)

  Args:
    n: the final most nonzeros per group.
    m: the group size.
    begin_step: first mask update (0-based update count).
    end_step: the update at which the pattern is reached.
    frequency: updates between mask recomputations.
    schedule: ``"n"`` or ``"fraction"`` (above).
    axis: ``"input"`` (axis -2 of each kernel) or an int.
    mask: which leaves to prune (default: ``ndim > 1``).

  Returns:
    An :class:`optax.GradientTransformationExtraArgs` whose ``update`` needs
    ``params``.

  References:
    Zhu & Gupta, *To prune, or not to prune*, arXiv 1710.01878, 2017.
    Kao et al., *Training Recipe for N:M Structured Sparsity with Decaying
    Pruned Weights*, arXiv 2209.07617, 2022.
  """
  _check_nm('gradual_nm_pruning', n, m)
  _check_steps('gradual_nm_pruning', begin_step, end_step, frequency)
  if schedule not in ('n', 'fraction'):
    raise ValueError(
        f'gradual_nm_pruning schedule must be "n" (N from m down to n) or '
        f'"fraction" (the share of N:M groups from 0 to 1), got '
        f'{schedule!r}.'
    )

  def recompute(t, params, updates, masks, selected):
    kw = dict(begin_step=begin_step, end_step=end_step, frequency=frequency)
    if schedule == 'n':
      n_t, f_t = nm_n_schedule(t, n=n, m=m, **kw), 1.0
    else:
      n_t, f_t = n, nm_fraction_schedule(t, **kw)

    def leaf(p, u, keep, sel):
      if not sel:
        return keep
      p = jnp.asarray(p)
      landed = jnp.abs((p + u).astype(p.dtype)).astype(jnp.float32)
      scores = jnp.where(keep, landed, -1.0)
      return _keep_mask(scores, n_t, m, group_axis(p.ndim, axis), f_t)

    return jax.tree.map(leaf, params, updates, masks, selected)

  return gradual_masks(
      'gradual_nm_pruning',
      GradualNMState,
      recompute,
      begin_step=begin_step,
      end_step=end_step,
      frequency=frequency,
      mask=mask,
  )
