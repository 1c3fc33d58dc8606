"""Sparsity-inducing regularizers and their proximal operators.

A :class:`Regularizer` describes a penalty ``λ·R(x)`` on one parameter leaf and
its proximal operator

.. math::

  \\operatorname{prox}_{t\\lambda R}(v) = \\arg\\min_x \\tfrac12\\|x - v\\|_2^2
  + t\\,\\lambda\\,R(x),

where ``t`` is the step-dependent weight that the optimizer supplies (the
learning rate ``α_n`` for :func:`rda_optax.prox_sgd`, ``n / β_n`` for
:func:`rda_optax.rda`). Strengths are floats or optax schedules, evaluated at
the optimizer's step count.

Regularizers are frozen dataclasses and deliberately not callable, so that
:func:`optax.inject_hyperparams` treats them as static arguments.

Groups (for the ℓ2,1 terms) follow Flax's kernel layouts, conv
``(kh, kw, c_in, c_out)`` and dense ``(in, out)``:

* ``groups="output"``: one group per slice of the last axis: all weights that
  feed one output channel of a conv, or one output neuron of a dense layer.
* ``groups="input"``: one group per slice of axis ``-2``: all weights that read
  one input channel of a conv, or one input neuron (a row) of a dense kernel.

Leaves with fewer dimensions than the group axis needs fall back to one group
per element (the group term is then ``ℓ1``). The group weight is ``√n_g`` with
``n_g`` the group size.

References:
  Parikh & Boyd, *Proximal Algorithms*, 2014 (ℓ1, ℓ0, group closed forms).
  Zhang & Xin, *Minimization of transformed L1 penalty: closed form
  representation and iterative thresholding algorithms*, 2017 (TL1).
  Simon, Friedman, Hastie & Tibshirani, *A sparse-group lasso*, 2013.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable
from typing import Any, ClassVar, Literal

import jax
import jax.numpy as jnp
import optax

from rda_optax import selection
from rda_optax import validation
from rda_optax.tl1 import tl1_penalty
from rda_optax.tl1 import tl1_threshold

ScalarOrSchedule = optax.ScalarOrSchedule
Groups = Literal['output', 'input']
_GROUPS = ('output', 'input')


def value_at(hyper: ScalarOrSchedule, count: Any) -> jax.Array:
  """Evaluates a float-or-schedule hyper-parameter at ``count``.

  Every hyper-parameter read this way (strengths, learning rates, γ,
  momentum, target sparsity, β) is >= 0. A float value that is not (a schedule
  gone negative or NaN, which no check can see before the step runs) comes
  back NaN, so the update is NaN and the error cannot pass silently: a
  negative λ would grow the weights it should shrink. A training loop's
  divergence check then stops the run (``python -m train`` names the
  hyper-parameter).

  Example:
    >>> import optax
    >>> schedule = optax.linear_schedule(1.0, -1.0, transition_steps=10)
    >>> [round(float(value_at(schedule, n)), 3) for n in (0, 2, 8)]
    [1.0, 0.6, nan]
  """
  value = jnp.asarray(hyper(count) if callable(hyper) else hyper)
  if not jnp.issubdtype(value.dtype, jnp.floating):
    return value  # Counts (an N of N:M): their own checks; no NaN to give.
  return jnp.where(value >= 0, value, jnp.nan)


def check_nonnegative(name: str, hyper: ScalarOrSchedule) -> None:
  """Raises a ValueError naming the fix for a negative constant strength."""
  v = validation.concrete_float(hyper)
  if v is None:  # A schedule, or a traced value (inject_hyperparams).
    return
  if not v >= 0 or math.isinf(v):
    raise ValueError(
        f'{name} must be a finite number >= 0 or an optax schedule, got '
        f'{hyper!r}. Pass e.g. {name}=1e-5 or {name}=optax.constant_schedule(1e-5).'
    )


def check_groups(groups: str) -> None:
  if groups not in _GROUPS:
    raise ValueError(
        f'Unknown group axis groups={groups!r}: use "output" (a conv output '
        'channel / dense output neuron, the last axis) or "input" (a conv input '
        'channel / dense input neuron, axis -2).'
    )


def _compute_dtype(x: jax.Array) -> Any:
  return jnp.promote_types(x.dtype, jnp.float32)


def group_reduce_axes(ndim: int, groups: str) -> tuple[int, ...]:
  """The axes summed over inside one group (all but the group axis)."""
  group_axis = ndim - 1 if groups == 'output' else ndim - 2
  if group_axis < 0 or ndim < 2:
    return ()  # One group per element.
  return tuple(a for a in range(ndim) if a != group_axis)


def group_norms(x: jax.Array, groups: str) -> tuple[jax.Array, float]:
  """Per-group ℓ2 norms (kept dims, broadcastable to ``x``) and group size."""
  axes = group_reduce_axes(x.ndim, groups)
  n_g = math.prod(x.shape[a] for a in axes)
  x = x.astype(_compute_dtype(x))
  return jnp.sqrt(jnp.sum(jnp.square(x), axis=axes, keepdims=True)), n_g


def soft_threshold(v: jax.Array, thr: jax.Array) -> jax.Array:
  """``sign(v)·max(|v| − thr, 0)``, the prox of ``thr·‖·‖₁``.

  Computed as ``v − clip(v, −thr, thr)``: bitwise the same (both round
  ``v ∓ thr`` once; inside the threshold ``v − v`` is exactly zero) with
  fewer operations per element.
  """
  return v - jnp.clip(v, -thr, thr)


def hard_threshold(v: jax.Array, thr: jax.Array) -> jax.Array:
  """``v·1{|v| > thr}``."""
  return jnp.where(jnp.abs(v) > thr, v, jnp.zeros_like(v))


def unsigned_zeros(x: jax.Array) -> jax.Array:
  """``x`` with ``-0.0`` made ``+0.0`` (NaN kept): ``v·0`` is ``-0.0`` where
  ``v < 0``, which :func:`rda_optax.save_sparse` stores as a value."""
  return jnp.where(x == 0, jnp.zeros_like(x), x)


def group_shrink(v: jax.Array, thr: jax.Array, groups: str) -> jax.Array:
  """Block soft threshold: ``max(0, 1 − thr·√n_g/‖v_g‖)·v_g`` per group."""
  norms, n_g = group_norms(v, groups)
  scaled = thr * math.sqrt(n_g)
  safe = jnp.where(norms > 0, norms, 1)
  factor = jnp.where(norms > scaled, 1 - scaled / safe, 0)
  return unsigned_zeros(v * factor)


@dataclasses.dataclass(frozen=True)
class Regularizer:
  """Base class: a penalty on one leaf and its proximal operator.

  Subclasses implement :meth:`Regularizer.value` (``λ·R(x)`` as a float32
  scalar) and :meth:`Regularizer.prox` (``argmin_y ½‖y − x‖² + t·λ·R(y)``,
  same shape and dtype as ``x``). ``count`` is the optimizer step at which
  schedules are evaluated.

  A regularizer may keep a state between steps (:meth:`init_state`,
  :meth:`prox_tree_with_state`): :func:`rda_optax.sparsity_constraint` keeps
  its last threshold, so that the next step's search starts from it. The
  state changes the cost of a prox, never its value.
  """

  # Whether the prox ranks the entries of its input against each other (a
  # projection onto a sparsity level): the optimizers then compute that
  # input once into memory (rda_optax.threshold.computed_once), so that the
  # threshold search and the masks see the same bits.
  ranks_input: ClassVar[bool] = False

  def value(self, x: jax.Array, count: Any = 0) -> jax.Array:
    """The penalty ``λ·R(x)`` of one leaf, a float32 scalar.

    Args:
      x: the leaf.
      count: the optimizer step at which a scheduled strength is evaluated.
    """
    raise NotImplementedError

  def prox(self, x: jax.Array, t: Any, count: Any = 0) -> jax.Array:
    """The proximal operator ``argmin_y ½‖y − x‖² + t·λ·R(y)`` of one leaf.

    Args:
      x: the leaf.
      t: the step's weight on the penalty (a scalar).
      count: the optimizer step at which a scheduled strength is evaluated.

    Returns:
      An array of the shape and dtype of ``x``.
    """
    raise NotImplementedError

  def prox_tree(self, tree: Any, selected: Any, t: Any, count: Any = 0) -> Any:
    """:meth:`Regularizer.prox` on every leaf of ``tree`` that ``selected`` marks
    (``selected`` a tree of Python bools, see
    :func:`rda_optax.selection.resolve_mask`); the others are returned as they
    are. Optimizers call this, so that a regularizer coupling several leaves
    (:func:`rda_optax.sparsity_constraint` with ``scope="global"``) can
    override it."""
    return jax.tree.map(
        lambda x, s: self.prox(x, t, count) if s else x, tree, selected
    )

  def init_state(self, params: Any) -> Any:
    """What :meth:`prox_tree_with_state` keeps between steps (``()``: none).

    Optimizers call it from ``init`` and keep the result in their state
    (``prox_state``). It may read the structure and shapes of ``params``,
    not their values (``jax.eval_shape`` of an ``init`` gives placeholders),
    and its structure must not depend on array-valued fields of the
    regularizer (``optax.inject_hyperparams`` passes strengths as arrays and
    builds the transform anew at every step).
    """
    del params
    return ()

  def prox_tree_with_state(
      self, tree: Any, selected: Any, t: Any, count: Any, state: Any
  ) -> tuple[Any, Any]:
    """:meth:`prox_tree`, reading and returning the state of
    :meth:`init_state`: ``(prox, new_state)``. Optimizers call this. The
    prox never depends on the state, only its cost may
    (:func:`rda_optax.sparsity_constraint` starts its threshold search from
    the last step's threshold). Where :attr:`ranks_input` is True, ``tree``
    must be values in memory (see :func:`rda_optax.threshold.computed_once`).
    """
    return self.prox_tree(tree, selected, t, count), state

  def value_tree(self, tree: Any, selected: Any, count: Any = 0) -> jax.Array:
    """``Σ`` of :meth:`value` over the leaves ``selected`` marks (a float32
    scalar); :func:`penalty` calls this, so that a regularizer of several
    leaves (:func:`rda_optax.partitioned`) can override it."""
    terms = [
        self.value(x, count)
        for x, s in zip(jax.tree.leaves(tree), jax.tree.leaves(selected))
        if s
    ]
    return sum(terms, jnp.zeros((), jnp.float32))

  # Shared plumbing: compute in float32 (or wider), return the leaf's dtype.
  def _apply(
      self, fn: Callable[[jax.Array], jax.Array], x: jax.Array
  ) -> jax.Array:
    x = jnp.asarray(x)
    # Integer inputs give floats: a prox is not an integer operation.
    out = (
        x.dtype if jnp.issubdtype(x.dtype, jnp.inexact) else (_compute_dtype(x))
    )
    return fn(x.astype(_compute_dtype(x))).astype(out)


@dataclasses.dataclass(frozen=True)
class L1(Regularizer):
  """``λ‖x‖₁``; prox: soft threshold at ``tλ`` (exact zeros)."""

  strength: ScalarOrSchedule

  def __post_init__(self):
    check_nonnegative('strength', self.strength)

  def value(self, x, count=0):
    x = jnp.asarray(x)
    return value_at(self.strength, count) * jnp.sum(
        jnp.abs(x.astype(_compute_dtype(x)))
    )

  def prox(self, x, t, count=0):
    thr = t * value_at(self.strength, count)
    return self._apply(lambda v: soft_threshold(v, thr), x)


@dataclasses.dataclass(frozen=True)
class L0(Regularizer):
  """``λ‖x‖₀`` (number of nonzeros); prox: hard threshold at ``√(2tλ)``.

  At ``|v| = √(2tλ)`` both ``0`` and ``v`` are minimisers; zero is returned.
  """

  strength: ScalarOrSchedule

  def __post_init__(self):
    check_nonnegative('strength', self.strength)

  def value(self, x, count=0):
    return value_at(self.strength, count) * jnp.count_nonzero(x).astype(
        jnp.float32
    )

  def prox(self, x, t, count=0):
    thr = jnp.sqrt(2 * t * value_at(self.strength, count))
    return self._apply(lambda v: hard_threshold(v, thr), x)


@dataclasses.dataclass(frozen=True)
class GroupLasso(Regularizer):
  """``λ Σ_g √n_g ‖x_g‖₂`` (ℓ2,1); prox: block soft threshold per group."""

  strength: ScalarOrSchedule
  groups: Groups = 'output'

  def __post_init__(self):
    check_nonnegative('strength', self.strength)
    check_groups(self.groups)

  def value(self, x, count=0):
    norms, n_g = group_norms(jnp.asarray(x), self.groups)
    return value_at(self.strength, count) * math.sqrt(n_g) * jnp.sum(norms)

  def prox(self, x, t, count=0):
    thr = t * value_at(self.strength, count)
    return self._apply(lambda v: group_shrink(v, thr, self.groups), x)


@dataclasses.dataclass(frozen=True)
class SparseGroupLasso(Regularizer):
  """``λ₁‖x‖₁ + λ₂ Σ_g √n_g ‖x_g‖₂``.

  The prox is exact: the group shrinkage applied to the soft-thresholded
  vector (Simon et al. 2013, Friedman et al. 2010).
  """

  l1_strength: ScalarOrSchedule
  group_strength: ScalarOrSchedule
  groups: Groups = 'output'

  def __post_init__(self):
    check_nonnegative('l1_strength', self.l1_strength)
    check_nonnegative('group_strength', self.group_strength)
    check_groups(self.groups)

  def value(self, x, count=0):
    x = jnp.asarray(x)
    norms, n_g = group_norms(x, self.groups)
    return value_at(self.l1_strength, count) * jnp.sum(
        jnp.abs(x.astype(_compute_dtype(x)))
    ) + value_at(self.group_strength, count) * math.sqrt(n_g) * jnp.sum(norms)

  def prox(self, x, t, count=0):
    t1 = t * value_at(self.l1_strength, count)
    t2 = t * value_at(self.group_strength, count)
    return self._apply(
        lambda v: group_shrink(soft_threshold(v, t1), t2, self.groups), x
    )


@dataclasses.dataclass(frozen=True)
class TransformedL1(Regularizer):
  """Transformed ℓ1, optionally plus a group term.

  ``λ Σ_i ρ_a(x_i) + λ_g Σ_g √n_g ‖x_g‖₂`` with
  ``ρ_a(x) = (a+1)|x| / (a+|x|)``: ``a → 0`` tends to ℓ0, ``a → ∞`` to ℓ1.

  The TL1 prox alone (``group_strength`` statically 0, the default) is the
  closed-form thresholding of Zhang & Xin (2017), one per entry.
  With a group term, the prox of the sum is **not** the composition of the two
  proxes (the composition is suboptimal in about half of random cases), so
  ``group_prox`` chooses:

  * ``"search"`` (default, exact up to a tolerance): for a group, any global
    minimiser ``y`` with ``‖y‖ = r > 0`` also minimises the separable
    majorant obtained from ``‖y‖ ≤ (‖y‖²/r + r)/2``, whose minimiser is
    ``prox_{s·tλρ_a}(s·v)`` elementwise with ``s = r/(r + tλ_g√n_g)``. The
    prox is thus the best of ``y = 0`` and these candidates over
    ``s ∈ (0, 1]``, found by a grid of ``search_points`` values refined by
    golden-section search in the best cell. Costs about
    ``search_points + 2·search_refinements`` elementwise thresholdings. The
    defaults (24 + 12: 48 thresholdings) reach the objective of a 400-point
    grid refined 40 times to within float32 rounding (relative 3e-7) on
    random groups; 12 + 8 misses by up to 7e-5 (``tests/test_regularizers``).
  * ``"composition"``: group shrinkage of the TL1-thresholded vector; fast
    (one thresholding) but an approximation.
  """

  strength: ScalarOrSchedule
  a: float = 1.0
  group_strength: ScalarOrSchedule = 0.0
  groups: Groups = 'output'
  group_prox: Literal['search', 'composition'] = 'search'
  search_points: int = 24
  search_refinements: int = 12

  def __post_init__(self):
    check_nonnegative('strength', self.strength)
    check_nonnegative('group_strength', self.group_strength)
    check_groups(self.groups)
    if not (
        isinstance(self.a, (int, float))
        and self.a > 0
        and math.isfinite(self.a)
    ):
      raise ValueError(
          f'transformed_l1 needs a finite a > 0 (a → 0 approaches ℓ0, a → ∞ '
          f'approaches ℓ1), got a={self.a!r}.'
      )
    if self.group_prox not in ('search', 'composition'):
      raise ValueError(
          f'group_prox must be "search" (exact up to tolerance) or '
          f'"composition" (fast approximation), got {self.group_prox!r}.'
      )
    if self.search_points < 2 or self.search_refinements < 0:
      raise ValueError(
          'search_points must be >= 2 and search_refinements >= 0.'
      )

  def separable(self) -> bool:
    """Whether there is statically no group term (``group_strength`` 0,
    the default): the prox is then Zhang & Xin's closed-form thresholding,
    one per entry, and ``group_prox`` is not used."""
    return validation.concrete_float(self.group_strength) == 0.0

  def value(self, x, count=0):
    x = jnp.asarray(x)
    xc = x.astype(_compute_dtype(x))
    norms, n_g = group_norms(x, self.groups)
    return value_at(self.strength, count) * tl1_penalty(xc, self.a) + value_at(
        self.group_strength, count
    ) * math.sqrt(n_g) * jnp.sum(norms)

  def prox(self, x, t, count=0):
    t1 = t * value_at(self.strength, count)
    t2 = t * value_at(self.group_strength, count)

    def fn(v):
      if self.separable():
        return tl1_threshold(v, t1, self.a)
      if self.group_prox == 'composition':
        return group_shrink(tl1_threshold(v, t1, self.a), t2, self.groups)
      return self._search_prox(v, t1, t2)

    return self._apply(fn, x)

  def _search_prox(self, v, t1, t2):
    axes = group_reduce_axes(v.ndim, self.groups)
    n_g = math.prod(v.shape[a] for a in axes)
    c2 = t2 * math.sqrt(n_g)
    a = self.a

    def candidate(s):  # s broadcastable to the group shape.
      # Minimiser of ½‖y‖²/s − ⟨v, y⟩ + t1·Σρ_a(y): prox_{s·t1·ρ_a}(s·v).
      return tl1_threshold(s * v, s * t1, a)

    def objective(y):
      per = 0.5 * jnp.square(y - v) + t1 * (a + 1) * jnp.abs(y) / (
          a + jnp.abs(y)
      )
      norms = jnp.sqrt(jnp.sum(jnp.square(y), axis=axes, keepdims=True))
      return jnp.sum(per, axis=axes, keepdims=True) + c2 * norms

    shape = tuple(1 if i in axes else d for i, d in enumerate(v.shape))
    zero_obj = jnp.sum(0.5 * jnp.square(v), axis=axes, keepdims=True)
    k = self.search_points
    grid = (jnp.arange(k, dtype=v.dtype) + 1) / k  # (0, 1].

    def scan_grid(carry, s):
      best_obj, best_s = carry
      obj = objective(candidate(jnp.full(shape, s)))
      better = obj < best_obj
      return (
          jnp.where(better, obj, best_obj),
          jnp.where(better, s, best_s),
      ), None

    init = (jnp.full(shape, jnp.inf, v.dtype), jnp.ones(shape, v.dtype))
    (best_obj, best_s), _ = jax.lax.scan(scan_grid, init, grid)
    # Golden-section refinement inside [best_s - 1/k, best_s + 1/k] ∩ (0, 1].
    lo = jnp.maximum(best_s - 1 / k, 1e-6)
    hi = jnp.minimum(best_s + 1 / k, 1.0)
    ratio = (math.sqrt(5) - 1) / 2

    def refine(carry, _):
      lo, hi, best_obj, best_s = carry
      m1 = hi - ratio * (hi - lo)
      m2 = lo + ratio * (hi - lo)
      f1 = objective(candidate(m1))
      f2 = objective(candidate(m2))
      left = f1 < f2
      lo, hi = jnp.where(left, lo, m1), jnp.where(left, m2, hi)
      for s, f in ((m1, f1), (m2, f2)):
        better = f < best_obj
        best_obj = jnp.where(better, f, best_obj)
        best_s = jnp.where(better, s, best_s)
      return (lo, hi, best_obj, best_s), None

    (_, _, best_obj, best_s), _ = jax.lax.scan(
        refine, (lo, hi, best_obj, best_s), None, length=self.search_refinements
    )
    y = candidate(best_s)
    return jnp.where(zero_obj <= best_obj, jnp.zeros_like(v), y)


def l1(strength: ScalarOrSchedule) -> L1:
  """ℓ1 penalty ``λ‖x‖₁`` (soft thresholding).

  Example:
    >>> import jax.numpy as jnp, rda_optax
    >>> rda_optax.l1(0.5).prox(jnp.array([-1.0, 0.2, 2.0]), t=1.0)
    Array([-0.5,  0. ,  1.5], dtype=float32)
  """
  return L1(strength)


def l0(strength: ScalarOrSchedule) -> L0:
  """ℓ0 penalty ``λ‖x‖₀`` (hard thresholding at ``√(2tλ)``).

  Example:
    >>> import jax.numpy as jnp, rda_optax
    >>> rda_optax.l0(0.5).prox(jnp.array([-1.5, 0.9, 2.0]), t=1.0)
    Array([-1.5,  0. ,  2. ], dtype=float32)
  """
  return L0(strength)


def group_lasso(
    strength: ScalarOrSchedule, groups: Groups = 'output'
) -> GroupLasso:
  """Group lasso ``λ Σ_g √n_g ‖x_g‖₂`` over output or input channels/neurons.

  Example:
    >>> import jax.numpy as jnp, rda_optax
    >>> w = jnp.array([[3.0, 0.1], [4.0, 0.1]])  # dense (in=2, out=2)
    >>> rda_optax.group_lasso(0.5).prox(w, t=1.0)  # column 2 removed
    Array([[2.575736 , 0.       ],
           [3.4343147, 0.       ]], dtype=float32)
  """
  return GroupLasso(strength, groups)


def sparse_group_lasso(
    l1_strength: ScalarOrSchedule,
    group_strength: ScalarOrSchedule,
    groups: Groups = 'output',
) -> SparseGroupLasso:
  """Sparse group lasso ``λ₁‖x‖₁ + λ₂ Σ_g √n_g‖x_g‖₂`` with its exact prox."""
  return SparseGroupLasso(l1_strength, group_strength, groups)


def transformed_l1(
    strength: ScalarOrSchedule,
    a: float = 1.0,
    group_strength: ScalarOrSchedule = 0.0,
    groups: Groups = 'output',
    group_prox: Literal['search', 'composition'] = 'search',
) -> TransformedL1:
  """Transformed ℓ1 ``λ Σ ρ_a(x_i)`` (+ optional group term), see the class.

  Example:
    >>> import jax.numpy as jnp, rda_optax
    >>> rda_optax.transformed_l1(0.5, a=1.0).prox(jnp.array([0.5, 3.0]), 1.0)
    Array([0.       , 2.9354322], dtype=float32)
  """
  return TransformedL1(strength, a, group_strength, groups, group_prox)


def init_state(regularizer: Regularizer | None, params: Any) -> Any:
  """``regularizer.init_state(params)``; ``()`` without a regularizer."""
  return () if regularizer is None else regularizer.init_state(params)


def penalty(
    params: Any,
    regularizer: Regularizer | None,
    count: Any = 0,
    mask: selection.MaskOrFn = None,
) -> jax.Array:
  """``Σ λ·R(leaf)`` over the leaves selected by ``mask`` (default kernels).

  Use it to log the full objective ``loss + penalty``.
  """
  if regularizer is None:
    return jnp.zeros((), jnp.float32)
  mask = selection.resolve_mask(mask, params)
  return regularizer.value_tree(params, mask, count)


def check_regularizer(
    owner: str, regularizer: Any, allow_none: bool = True
) -> None:
  """Raises ``TypeError`` unless ``regularizer`` is a :class:`Regularizer`
  (or None, when allowed)."""
  if (regularizer is None and allow_none) or isinstance(
      regularizer, Regularizer
  ):
    return
  raise TypeError(
      f'{owner} needs a rda_optax.Regularizer such as rda_optax.l1(1e-5) or '
      f'rda_optax.l0(1e-4), got {type(regularizer).__name__}.'
  )
