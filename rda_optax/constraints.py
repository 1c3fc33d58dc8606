"""A sparsity constraint: the target sparsity itself, as a proximal operator.

The regularizers of :mod:`rda_optax.regularizers` reach a sparsity that
depends on their strength λ, found by search. A user who needs "95% of the
kernels at zero" can instead constrain the weights to that set,

.. math::

  C_s = \\{\\, w : \\|w\\|_0 \\le n - \\operatorname{round}(s\\,n) \\,\\},

whose indicator has, as proximal operator, the Euclidean projection onto
``C_s``: keep the ``n − round(s·n)`` entries of largest magnitude, zero the
rest (hard thresholding at a level set by the data). :func:`sparsity_constraint`
is a :class:`rda_optax.Regularizer`, so every optimizer of the library takes
it:

* with :func:`rda_optax.rmda` the prox point is the projection of the dual
  point, ``w̃_k = P_{C_{s_k}}(w0 − G_k/β_k)``. Pruned weights keep
  accumulating their gradients in ``G`` and return when they outgrow the
  smallest kept ones: dual averaging gives pruning the feedback that Lin et
  al.'s dynamic pruning (DPF) adds to SGD by hand;
* with :func:`rda_optax.prox_sgd` it is iterative hard thresholding
  (Blumensath & Davies), each step projected;
* with :func:`rda_optax.variable_splitting` the sparse copy ``V`` is the
  projection of ``W``.

A schedule for ``s`` (for instance :func:`rda_optax.zhu_gupta_sparsity`'s
cubic ramp) prunes gradually; ``scope="global"`` ranks all the selected leaves
together (one threshold), ``scope="layer"`` gives each leaf the sparsity.

References:
  Blumensath & Davies, *Iterative hard thresholding for compressed sensing*,
  Appl. Comput. Harmon. Anal. 2009.
  Lin, Stich, Barba, Dmitriev & Jaggi, *Dynamic Model Pruning with
  Feedback*, ICLR 2020.
  Zhu & Gupta, *To prune, or not to prune*, 2017 (the cubic schedule).
"""

from __future__ import annotations

import dataclasses
from typing import Any, Literal

import jax
import jax.numpy as jnp

from rda_optax import pruning
from rda_optax import regularizers as regs
from rda_optax import validation

Scope = Literal['global', 'layer']


@dataclasses.dataclass(frozen=True)
class SparsityConstraint(regs.Regularizer):
  """The indicator of ``{w : at most n − round(s·n) nonzeros}``.

  :meth:`~rda_optax.Regularizer.prox` projects one leaf (its own sparsity
  ``s``); :meth:`prox_tree`, which the optimizers call, projects the selected
  leaves together when ``scope="global"``.
  :meth:`~rda_optax.Regularizer.value` is 0: the indicator on the constraint
  set, where the optimizers' prox points always are.
  """

  sparsity: regs.ScalarOrSchedule
  scope: Scope = 'global'

  def __post_init__(self):
    s = validation.concrete_float(self.sparsity)
    if s is not None and not 0 <= s < 1:
      raise ValueError(
          f'sparsity_constraint needs a sparsity in [0, 1) (the fraction of '
          f'the selected weights set to zero, e.g. 0.9) or a schedule of the '
          f'step count, got sparsity={self.sparsity!r}.'
      )
    if self.scope not in ('global', 'layer'):
      raise ValueError(
          f'sparsity_constraint scope must be "global" (one magnitude '
          f'threshold over all the selected leaves) or "layer" (each leaf '
          f'reaches the sparsity), got scope={self.scope!r}.'
      )

  def value(self, x, count=0):
    del x, count
    return jnp.zeros((), jnp.float32)

  def prox(self, x, t, count=0):
    del t  # A projection does not depend on the step.
    return self._project({'x': x}, {'x': True}, 'layer', count)['x']

  def prox_tree(self, tree, selected, t, count=0):
    del t
    return self._project(tree, selected, self.scope, count)

  def _project(self, tree: Any, selected: Any, scope: str, count: Any) -> Any:
    s = regs.value_at(self.sparsity, count)
    if not isinstance(s, jax.core.Tracer):
      s = float(s)
    keep = pruning.magnitude_masks(tree, s, scope=scope, mask=selected)
    return jax.tree.map(
        lambda x, m: jnp.where(m, x, jnp.zeros((), jnp.asarray(x).dtype)),
        tree,
        keep,
    )


def sparsity_constraint(
    sparsity: regs.ScalarOrSchedule, scope: Scope = 'global'
) -> SparsityConstraint:
  r"""Constrain the selected weights to a sparsity ``s`` (projection prox).

  .. math::

    \operatorname{prox}(v) = P_{C_s}(v), \qquad
    [P_{C_s}(v)]_i = \begin{cases} v_i & |v_i| \text{ among the }
    n - \operatorname{round}(s n) \text{ largest} \\ 0 & \text{otherwise,}
    \end{cases}

  ties broken as in :func:`rda_optax.magnitude_masks` (exactly ``round(s·n)``
  zeros). ``s`` may be an optax-style schedule of the step count, e.g.
  ``functools.partial(rda_optax.zhu_gupta_sparsity, final_sparsity=0.95,
  begin_step=1000, end_step=20000)``.

  Example:
    >>> import jax.numpy as jnp, rda_optax
    >>> c = rda_optax.sparsity_constraint(0.5)
    >>> tree = {'a': jnp.array([[3.0, -0.5]]), 'b': jnp.array([[1.0, 0.2]])}
    >>> c.prox_tree(tree, {'a': True, 'b': True}, t=1.0)['b']  # global
    Array([[1., 0.]], dtype=float32)
    >>> opt = rda_optax.rmda(0.1, regularizer=c, momentum=0.0)

  Args:
    sparsity: ``s ∈ [0, 1)``, float or schedule of the optimizer's count.
    scope: ``"global"`` (one threshold over all the selected leaves) or
      ``"layer"`` (every selected leaf at sparsity ``s``).

  Returns:
    A :class:`SparsityConstraint`, to pass as ``regularizer=``.
  """
  return SparsityConstraint(sparsity, scope)
