"""N:M structured sparsity: the constraint (a projection prox).

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
take it like any other. Its ``n`` (N from ``M`` down to its final value) or
its ``fraction`` can be schedules of the optimizer's count, so that the
pattern is reached gradually; with ``fraction = f`` the projection onto "at
least a fraction ``f`` of the groups of each leaf are N:M" is exact too: it
constrains the ``round(f·G)`` groups whose projection discards the least
energy (ties: the groups that come first in row-major order; costs below
the smallest normal float32 count as zero, as in
:func:`rda_optax.kth_smallest`, which finds those groups without a sort).

The schedules (:func:`nm_n_schedule`, :func:`nm_fraction_schedule`), the
magnitude baselines (:func:`nm_masks`, :func:`gradual_nm_pruning`) and the
pattern checks (:func:`nm_violations`, :func:`satisfies_nm`) are in
:mod:`rda_optax.nm_pruning` (re-exported here); the groups' keep-mask that
both modules use is in :mod:`rda_optax.nm_groups`.

References:
  Mishra, Latorre, Pool, Stosic, Stosic, Venkatesh, Yu & Micikevicius,
  *Accelerating Sparse Deep Neural Networks*, arXiv 2104.08378, 2021 (2:4 on
  Ampere).
  Zhou, Ma, Zhu, Liu, Zhang, Yuan, Sun & Li, *Learning N:M Fine-grained
  Structured Sparse Neural Networks From Scratch*, ICLR 2021.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import jax
import jax.numpy as jnp

from rda_optax import regularizers as regs
from rda_optax import validation
from rda_optax.nm_groups import Axis
from rda_optax.nm_groups import _check_axis
from rda_optax.nm_groups import _check_nm
from rda_optax.nm_groups import _keep_mask
from rda_optax.nm_groups import _magnitude_scores
from rda_optax.nm_groups import _statically_one
from rda_optax.nm_groups import group_axis

# Re-exported: the schedules, baselines and checks, where they were first
# defined (``rda_optax.nm.nm_masks`` and the like keep working).
from rda_optax.nm_pruning import GradualNMState  # noqa: F401
from rda_optax.nm_pruning import gradual_nm_pruning  # noqa: F401
from rda_optax.nm_pruning import nm_fraction_schedule  # noqa: F401
from rda_optax.nm_pruning import nm_masks  # noqa: F401
from rda_optax.nm_pruning import nm_n_schedule  # noqa: F401
from rda_optax.nm_pruning import nm_violations  # noqa: F401
from rda_optax.nm_pruning import satisfies_nm  # noqa: F401

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


def _check_fraction(owner: str, fraction: Any) -> None:
  f = validation.concrete_float(fraction)
  if f is not None and not 0 <= f <= 1:
    raise ValueError(
        f'{owner} fraction is the share of groups held to N:M, in [0, 1] '
        f'(1: all of them), or a schedule such as nm_fraction_schedule; got '
        f'fraction={fraction!r}.'
    )


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
    _check_axis(self.axis)

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
    return self.mask_from_scores(
        _magnitude_scores(x, metric), count, squared=metric is not None
    )

  def mask_from_scores(
      self, scores: jax.Array, count: Any = 0, squared: bool = False
  ) -> jax.Array:
    """The keep-mask that keeps the largest ``scores`` (``>= 0``, one per
    entry) of each group: magnitudes ``|x|``, or with ``squared`` the
    squared distances that removing each entry costs (``d·x²`` for the
    projection in ``‖·‖_D``). With ``fraction < 1`` the groups left free
    are those whose projection costs most: the sum of the squared
    magnitudes, or of the ``squared`` scores, of the entries it drops."""
    n = regs.value_at(self.n, count)
    fraction = (
        self.fraction
        if _statically_one(self.fraction)
        else regs.value_at(self.fraction, count)
    )
    axis = group_axis(jnp.ndim(scores), self.axis)
    return _keep_mask(scores, n, self.m, axis, fraction, squared)

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

  Gradually, N from 4 down to 2 over steps 1,000 to 10,000:

    >>> import functools
    >>> n = functools.partial(rda_optax.nm_n_schedule, n=2, m=4,
    ...                       begin_step=1000, end_step=10000, frequency=100)
    >>> reg = rda_optax.nm_constraint(n, 4)
    >>> int(n(0)), int(n(20000))
    (4, 2)

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
