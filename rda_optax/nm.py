"""N:M structured sparsity: a constraint (projection prox) and its baselines.

A kernel is **N:M sparse** when every group of ``M`` consecutive weights
along its input dimension holds at most ``N`` nonzeros: 2:4 is the pattern
that NVIDIA's sparse tensor cores (Ampere and later) multiply at twice the
dense rate, 1:4 and 4:8 are the other common ones. Groups run along the axis
that a matrix multiplication contracts, the input axis of Flax's layouts:

* dense kernel ``(in, out)``: axis 0, the groups are ``w[4j:4j+4, o]``;
* convolution kernel ``(kh, kw, in, out)`` (or ``(k, in, out)``): the
  input-channel axis ``-2``, the groups are ``w[i, j, 4c:4c+4, o]``;
* a 1-D leaf (if a ``mask`` selects one): its only axis.

Kernels with more than two dimensions whose input is not axis ``-2``
(``nn.DenseGeneral``'s ``(d, heads, head_dim)``) need ``axis=`` given
explicitly; :mod:`models`' transformers use plain 2-D ``nn.Dense`` kernels.

**When the input dimension is not a multiple of M** the last group is
shorter (``in % M`` weights) and is held to at most ``N`` nonzeros too: the
pattern the kernel has once zero-padded to a multiple of ``M``, which is how
sparse kernels pad it (e.g. a first convolution with 3 input channels at 2:4
keeps at most 2 of its 3 channels per position and output).

**The projection.** The Euclidean projection onto the N:M set keeps, in each
group, the ``N`` entries of largest magnitude and zeroes the rest (exact: the
discarded energy ``Σ w_i²`` of a group is smallest when the kept entries are
its ``N`` largest). Under a diagonal metric ``‖x‖²_D = Σ d_i x_i²`` (the
subproblems of :func:`rda_optax.ramda` and :func:`rda_optax.prox_adamw`) the
score is ``√d_i·|w_i|`` instead. **Ties** are broken deterministically, as
:func:`rda_optax.magnitude_masks` does: among equal scores the entry that
comes first in the group is pruned first.

:func:`nm_constraint` is a :class:`rda_optax.Regularizer` whose prox is this
projection, so :func:`rda_optax.rmda`, :func:`rda_optax.ramda`,
:func:`rda_optax.prox_sgd`, :func:`rda_optax.rda` and :func:`rda_optax.asr`
take it like any other. It is reached gradually in one of two ways:

* ``n`` a schedule, ``M`` fixed: N decreases from ``M`` (dense) to its final
  value (:func:`nm_n_schedule`, Zhu & Gupta's cubic in the density ``N/M``,
  rounded to whole N). Decaying the N:M structure from dense during training
  rather than imposing it at once is the idea of the structure-decay
  schedules of Kao et al. (2022) and Bambhaniya et al. (2024);
* ``fraction`` a schedule: the fraction of groups held to N:M ramps from 0 to
  1 (:func:`nm_fraction_schedule`, Zhu & Gupta's cubic). The projection onto
  "at least a fraction ``f`` of the groups of each leaf are N:M" is exact
  too: it constrains the ``round(f·G)`` groups whose projection discards the
  least energy (ties: the groups that come first in row-major order).

The magnitude baselines are :func:`nm_masks` (one-shot: prune a trained
model to N:M, then fine-tune with :func:`rda_optax.asr` holding the pruned
weights at zero, as NVIDIA's ASP recipe does) and :func:`gradual_nm_pruning`
(chained after any optimizer, like :func:`rda_optax.gradual_magnitude_pruning`).

References:
  Mishra, Latorre, Pool, Stosic, Stosic, Venkatesh, Yu & Micikevicius,
  *Accelerating Sparse Deep Neural Networks*, arXiv 2104.08378, 2021 (2:4 on
  Ampere; one-shot magnitude pruning and fine-tuning).
  Zhou, Ma, Zhu, Liu, Zhang, Yuan, Sun & Li, *Learning N:M Fine-grained
  Structured Sparse Neural Networks From Scratch*, ICLR 2021.
  Kao, Kiamari, Yarrington, ... & Krishna, *Training Recipe for N:M
  Structured Sparsity with Decaying Pruned Weights*, arXiv 2209.07617, 2022.
  Bambhaniya, Yazdanbakhsh, Subramanian, Kao, Agrawal & Krishna,
  *Progressive Gradient Flow for Robust N:M Sparsity Training in
  Transformers*, arXiv 2402.04744, 2024.
  Zhu & Gupta, *To prune, or not to prune*, arXiv 1710.01878, 2017.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Literal, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax

from rda_optax import regularizers as regs
from rda_optax import selection
from rda_optax import validation

Axis = int | Literal['input']

__all__ = [
    'GradualNMState',
    'NMConstraint',
    'gradual_nm_pruning',
    'nm_constraint',
    'nm_fraction_schedule',
    'nm_masks',
    'nm_n_schedule',
    'nm_violations',
    'satisfies_nm',
]

# Above this group size the ranks within a group come from a sort rather
# than from all pairwise comparisons (M² per group).
_PAIRWISE_MAX_M = 16
# Scores of padding entries (below every real score, also below the -1 of
# entries a gradual transform pruned before).
_PAD = -2.0


def group_axis(ndim: int, axis: Axis) -> int:
  """The axis the groups run along (``"input"``: ``-2``, or 0 for 1-D)."""
  if axis == 'input':
    return ndim - 2 if ndim >= 2 else 0
  if isinstance(axis, (int, np.integer)) and not isinstance(axis, bool):
    if not -max(ndim, 1) <= axis < max(ndim, 1):
      raise ValueError(
          f'N:M axis {axis} is out of range for a leaf with {ndim} dimensions.'
      )
    return int(axis) % max(ndim, 1)
  raise ValueError(
      f'N:M axis must be "input" (axis -2 of a Flax kernel: the input '
      f'dimension of a dense (in, out) or conv (h, w, in, out) kernel) or an '
      f'int, got {axis!r}.'
  )


def _check_nm(owner: str, n: Any, m: Any) -> None:
  if not isinstance(m, (int, np.integer)) or isinstance(m, bool) or m < 1:
    raise ValueError(
        f'{owner} needs the group size m as an int >= 1 (4 for 2:4), got '
        f'm={m!r}.'
    )
  if callable(n) or isinstance(n, jax.core.Tracer):
    return
  if (
      isinstance(n, (jax.Array, np.ndarray))
      and n.ndim == 0
      and jnp.issubdtype(n.dtype, jnp.integer)
  ):
    # A concrete value of a schedule (optax.inject_hyperparams evaluates
    # schedules outside jit at init).
    n = int(n)
  if (
      not isinstance(n, (int, np.integer))
      or isinstance(n, bool)
      or not 0 <= n <= m
  ):
    raise ValueError(
        f'{owner} needs n, the most nonzeros per group, as an int in '
        f'[0, m] = [0, {m}] (2 for 2:4) or a schedule of the step count '
        f'such as nm_n_schedule, got n={n!r}.'
    )


def _check_fraction(owner: str, fraction: Any) -> None:
  f = validation.concrete_float(fraction)
  if f is not None and not 0 <= f <= 1:
    raise ValueError(
        f'{owner} fraction is the share of groups held to N:M, in [0, 1] '
        f'(1: all of them), or a schedule such as nm_fraction_schedule; got '
        f'fraction={fraction!r}.'
    )


def _statically_one(fraction: Any) -> bool:
  f = validation.concrete_float(fraction)
  return f is not None and f == 1.0


def _ranks(s: jax.Array, axis: int) -> jax.Array:
  """Rank of each entry within its group (along ``axis``), 0 = kept first:
  larger scores first, and among equal scores the later entry first (so
  that the earlier one is pruned first)."""
  m = s.shape[axis]
  if m <= _PAIRWISE_MAX_M:
    # All pairwise comparisons, one term per other entry j (a slice along
    # the group axis, broadcast), summed unrolled: elementwise operations
    # that XLA fuses and vectorizes (no transpose, no sort, no reduction,
    # which XLA:CPU emits as a loop per entry, 1.4 times slower at m = 4).
    i = jax.lax.broadcasted_iota(
        jnp.int32, (1,) * axis + (m,) + (1,) * (s.ndim - axis - 1), axis
    )
    ranks = None
    for j in range(m):
      sj = jax.lax.slice_in_dim(s, j, j + 1, axis=axis)
      # j beats i: a larger score, or an equal one later (j > i).
      beats = jnp.where(i < j, sj >= s, sj > s).astype(jnp.int32)
      ranks = beats if ranks is None else ranks + beats
    return ranks
  moved = jnp.moveaxis(s, axis, -1)
  rev = moved[..., ::-1]
  order = jnp.argsort(-rev, axis=-1, stable=True)
  ranks = jnp.argsort(order, axis=-1).astype(jnp.int32)[..., ::-1]
  return jnp.moveaxis(ranks, -1, axis)


def _keep_mask(
    scores: jax.Array, n: Any, m: int, axis: int, fraction: Any
) -> jax.Array:
  """Keep-mask of the N:M projection from per-entry ``scores`` (>= 0 for
  live entries; -1 for entries to prune before any live one)."""
  shape = scores.shape
  s = scores.reshape(1) if scores.ndim == 0 else scores
  s = s.astype(jnp.float32)
  length = s.shape[axis]
  pad = (-length) % m
  if pad:
    widths = [(0, 0)] * s.ndim
    widths[axis] = (0, pad)
    s = jnp.pad(s, widths, constant_values=_PAD)
  # Split the axis into (groups, m) in place: a reshape, not a transpose.
  grouped = s.shape[:axis] + ((length + pad) // m, m) + s.shape[axis + 1 :]
  g = s.reshape(grouped)
  keep = _ranks(g, axis + 1) < jnp.asarray(n, jnp.int32)
  if not _statically_one(fraction):
    real = g > _PAD
    dropped = real & ~keep
    cost = jnp.sum(
        jnp.where(dropped, jnp.square(jnp.maximum(g, 0)), 0), axis=axis + 1
    )
    # A group whose dropped entries were all pruned before (score -1) is
    # already N:M: it ranks before every other, so that the constrained
    # groups of a gradual schedule stay constrained.
    live_dropped = jnp.sum(dropped & (g >= 0), axis=axis + 1)
    any_dropped = jnp.any(dropped, axis=axis + 1)
    cost = jnp.where(any_dropped & (live_dropped == 0), -1, cost)
    flat = cost.ravel()
    k = jnp.round(
        jnp.asarray(fraction, jnp.float32) * jnp.float32(flat.size)
    ).astype(jnp.int32)
    rank = jnp.argsort(jnp.argsort(flat, stable=True))
    constrained = (rank < k).reshape(cost.shape)
    keep = keep | ~jnp.expand_dims(constrained, axis + 1)
  keep = keep.reshape(s.shape)
  if pad:
    keep = jax.lax.slice_in_dim(keep, 0, length, axis=axis)
  return keep.reshape(shape)


@dataclasses.dataclass(frozen=True)
class NMConstraint(regs.Regularizer):
  """The indicator of "at most ``n`` nonzeros in every group of ``m``".

  See :func:`nm_constraint`. :meth:`value` is 0 (the indicator on the
  constraint set, where the optimizers' prox points are); :meth:`prox` is the
  projection, whatever the step weight ``t``.
  """

  n: Any
  m: int
  fraction: regs.ScalarOrSchedule = 1.0
  axis: Axis = 'input'

  def __post_init__(self):
    _check_nm('nm_constraint', self.n, self.m)
    _check_fraction('nm_constraint', self.fraction)
    if self.axis != 'input' and (
        not isinstance(self.axis, (int, np.integer))
        or isinstance(self.axis, bool)
    ):
      group_axis(1, self.axis)  # Raises the error naming the choices.

  def value(self, x, count=0):
    del x, count
    return jnp.zeros((), jnp.float32)

  def prox(self, x, t, count=0):
    del t  # A projection does not depend on the step.
    return self.project(x, count)

  def keep_mask(
      self, x: jax.Array, count: Any = 0, metric: Any = None
  ) -> jax.Array:
    """The projection's keep-mask of one leaf; with ``metric`` ``d``
    (positive, broadcastable to ``x``) the projection in ``‖·‖_D``,
    ``D = diag(d)``, which keeps the largest ``d_i x_i²`` of each group."""
    x = jnp.asarray(x)
    xf = x.astype(jnp.promote_types(x.dtype, jnp.float32))
    scores = jnp.abs(xf) if metric is None else metric * jnp.square(xf)
    return self.mask_from_scores(scores, count)

  def mask_from_scores(self, scores: jax.Array, count: Any = 0) -> jax.Array:
    """The keep-mask that keeps the largest ``scores`` (``>= 0``, one per
    entry, e.g. ``|x|`` or ``d·x²``) of each group."""
    n = regs.value_at(self.n, count)
    fraction = (
        self.fraction
        if _statically_one(self.fraction)
        else regs.value_at(self.fraction, count)
    )
    axis = group_axis(jnp.ndim(scores), self.axis)
    return _keep_mask(scores, n, self.m, axis, fraction)

  def project(self, x: jax.Array, count: Any = 0, metric: Any = None):
    """``x`` with the entries outside :meth:`keep_mask` set to 0."""
    x = jnp.asarray(x)
    keep = self.keep_mask(x, count, metric)
    return jnp.where(keep, x, jnp.zeros((), x.dtype))


def nm_constraint(
    n: Any,
    m: int,
    *,
    fraction: regs.ScalarOrSchedule = 1.0,
    axis: Axis = 'input',
) -> NMConstraint:
  r"""Constrain the selected kernels to N:M sparsity (projection prox).

  .. math::

    C = \{\, w : \|w_g\|_0 \le N \text{ for every group } g \text{ of } M
    \text{ consecutive weights along the input axis} \,\}, \qquad
    \operatorname{prox}(v) = P_C(v),

  ``P_C`` keeping the ``N`` largest ``|v_i|`` of each group (see the module
  docstring for the axes, the shorter last group when ``in % M != 0``, ties
  and the metric used by adaptive methods). With ``fraction = f < 1`` only
  the ``round(f·G)`` groups (of the ``G`` of a leaf) that lose the least
  energy are constrained: the exact projection onto "at least a fraction
  ``f`` of the groups are N:M".

  Example:
    >>> import jax.numpy as jnp, rda_optax
    >>> w = jnp.array([[0.5], [-2.0], [0.1], [1.0]])   # dense (in=4, out=1)
    >>> rda_optax.nm_constraint(2, 4).prox(w, t=1.0)[:, 0]
    Array([ 0., -2.,  0.,  1.], dtype=float32)
    >>> opt = rda_optax.rmda(0.1, regularizer=rda_optax.nm_constraint(2, 4))

  Gradually, N from 4 down to 2 over steps 1,000 to 10,000::

    import functools
    n = functools.partial(rda_optax.nm_n_schedule, n=2, m=4,
                          begin_step=1000, end_step=10000, frequency=100)
    reg = rda_optax.nm_constraint(n, 4)

  Args:
    n: the most nonzeros per group, an int in ``[0, m]`` or a schedule of the
      optimizer's count returning one (e.g. :func:`nm_n_schedule`).
    m: the group size, an int (4 for 2:4).
    fraction: share of each leaf's groups held to N:M, in ``[0, 1]``, or a
      schedule (e.g. :func:`nm_fraction_schedule`); 1 (default): all.
    axis: ``"input"`` (axis -2; 0 for a 1-D leaf) or an int.

  Returns:
    An :class:`NMConstraint`, to pass as ``regularizer=``.

  References:
    Mishra et al., *Accelerating Sparse Deep Neural Networks*, arXiv
    2104.08378, 2021.
  """
  return NMConstraint(n, m, fraction, axis)


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
  c = NMConstraint(n, m, 1.0, axis)
  selected = selection.resolve_mask(mask, params)
  return jax.tree.map(
      lambda p, s: c.keep_mask(p) if s else jnp.ones(jnp.shape(p), bool),
      params,
      selected,
  )


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

  def init_fn(params):
    masks = jax.tree.map(lambda p: jnp.ones(jnp.shape(p), bool), params)
    return GradualNMState(count=jnp.zeros([], jnp.int32), masks=masks)

  def update_fn(updates, state, params=None, **extra_args):
    del extra_args
    validation.check_update_args('gradual_nm_pruning', updates, params)
    selected = selection.resolve_mask(mask, params)
    t = state.count
    t0 = jnp.asarray(begin_step, jnp.int32)
    t1 = jnp.asarray(end_step, jnp.int32)
    dt = jnp.maximum(jnp.asarray(frequency, jnp.int32), 1)
    prune_now = (t >= t0) & (t <= t1) & (((t - t0) % dt == 0) | (t == t1))

    def recompute():
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

      return jax.tree.map(leaf, params, updates, state.masks, selected)

    masks = jax.lax.cond(prune_now, recompute, lambda: state.masks)
    new_updates = jax.tree.map(
        lambda u, p, k: jnp.where(k, u, -p), updates, params, masks
    )
    return new_updates, GradualNMState(
        count=optax.safe_increment(t), masks=masks
    )

  return optax.GradientTransformationExtraArgs(init_fn, update_fn)
