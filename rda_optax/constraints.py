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
from typing import Any, ClassVar, Literal

import jax
import jax.numpy as jnp

from rda_optax import regularizers as regs
from rda_optax import threshold
from rda_optax import validation

Scope = Literal['global', 'layer']


@dataclasses.dataclass(frozen=True)
class SparsityConstraint(regs.Regularizer):
  """The indicator of ``{w : at most n − round(s·n) nonzeros}``.

  :meth:`~rda_optax.Regularizer.prox` projects one leaf (its own sparsity
  ``s``); :meth:`prox_tree` projects the selected leaves together when
  ``scope="global"``. The optimizers call
  :meth:`prox_tree_with_state`, the same projection whose threshold search
  starts from the last step's threshold (:meth:`init_state`: a
  :class:`rda_optax.ThresholdState`, one entry for ``"global"``, one per
  leaf for ``"layer"``); the answer is the same, only its cost differs.
  :meth:`~rda_optax.Regularizer.value` is 0: the indicator on the constraint
  set, where the optimizers' prox points always are.
  """

  sparsity: regs.ScalarOrSchedule
  scope: Scope = 'global'
  # The projection ranks its input: optimizers compute it once
  # (threshold.computed_once), so that counts and masks see the same bits.
  ranks_input: ClassVar[bool] = True

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
    return self.prox_tree({'x': x}, {'x': True}, 1.0, count)['x']

  def prox_tree(self, tree, selected, t, count=0):
    """The projection of the ``selected`` leaves (a cold search; the values
    are first computed into memory, see
    :func:`rda_optax.threshold.computed_once`)."""
    del t
    leaves, treedef = jax.tree.flatten(tree)
    chosen = [i for i, b in enumerate(treedef.flatten_up_to(selected)) if b]
    if not chosen:
      return tree
    xs = [jnp.asarray(leaves[i]) for i in chosen]
    flat = threshold.computed_once(threshold.flatten, xs)
    views = list(leaves)
    for i, x in zip(chosen, threshold.flat_view(flat, [x.shape for x in xs])):
      views[i] = x
    out, _ = self._project(
        treedef.unflatten(views), selected, self.scope, count, None
    )
    return jax.tree.map(lambda y, x: y.astype(jnp.asarray(x).dtype), out, tree)

  def init_state(self, params):
    """A cold :class:`rda_optax.ThresholdState`: one group for
    ``scope="global"``, one per leaf of ``params`` for ``"layer"``."""
    groups = 1 if self.scope == 'global' else len(jax.tree.leaves(params))
    return threshold.threshold_state(max(groups, 1))

  def prox_tree_with_state(self, tree, selected, t, count, state):
    """:meth:`prox_tree`, its search started from ``state`` (the last
    step's :class:`rda_optax.ThresholdState`), and the new state. ``tree``
    must be in memory (a jitted function's argument, or computed by
    :func:`rda_optax.threshold.computed_once`), as the optimizers give it."""
    del t
    return self._project(tree, selected, self.scope, count, state)

  def prox_computed(
      self,
      operands: Any,
      compute: Any,
      args: Any,
      zero: Any,
      count: Any,
      state: Any,
      index: Any = None,
  ) -> tuple[list[Any], Any]:
    """The projection of values computed, never written out: leaf ``i`` is
    ``compute(operands[i], args, zero)`` (elementwise; a module's function
    that gives the same bits in every fusion, ``zero`` a uint32 0 the
    compiler cannot know; see :func:`rda_optax.rda.pinned_dual_point`), all of them
    selected (``index``: their places among the tree's leaves, which the
    state of ``scope="layer"`` is indexed by; default ``0, 1, …``). The
    search reads the operands in its passes
    (:func:`rda_optax.kth_smallest`'s ``compute``) and the masks compute
    the values again, in the loop that writes the result.

    Returns ``(projected leaves, state)``, the state as in
    :meth:`prox_tree_with_state`."""
    s = regs.value_at(self.sparsity, count)
    if not isinstance(s, jax.core.Tracer):
      s = float(s)
    values = [compute(ops, args, zero) for ops in operands]
    index = list(range(len(operands))) if index is None else list(index)
    layer = self.scope == 'layer'
    if state is None:
      state = threshold.threshold_state(max(index) + 1 if layer else 1)
    if layer and state.value.shape[0] <= max(index, default=0):
      raise ValueError(
          f'sparsity_constraint(scope="layer") got a state for '
          f'{state.value.shape[0]} leaves and values at leaves {index}: make '
          'the state with init_state on the same parameters.'
      )
    n_ops = len(operands)
    groups = [[i] for i in range(n_ops)] if layer else [list(range(n_ops))]
    out = list(values)
    for group in groups:
      if not group:
        continue
      n = sum(values[i].size for i in group)
      split, state = threshold.kth_smallest(
          [operands[i] for i in group],
          threshold.fraction_count(s, n),
          state=state,
          group=index[group[0]] if layer else 0,
          magnitude=True,
          compute=compute,
          args=args,
          zero=zero,
      )
      pruned = threshold.smallest_masks(
          [values[i] for i in group], split, magnitude=True
      )
      for i, m in zip(group, pruned):
        out[i] = jnp.where(m, jnp.zeros((), values[i].dtype), values[i])
    return out, state

  def _project(
      self, tree: Any, selected: Any, scope: str, count: Any, state: Any
  ) -> tuple[Any, Any]:
    s = regs.value_at(self.sparsity, count)
    if not isinstance(s, jax.core.Tracer):
      s = float(s)
    leaves, treedef = jax.tree.flatten(tree)
    chosen = [i for i, b in enumerate(treedef.flatten_up_to(selected)) if b]
    if state is not None and scope == 'layer':
      if state.value.shape[0] < len(leaves):
        raise ValueError(
            f'sparsity_constraint(scope="layer") got a state for '
            f'{state.value.shape[0]} leaves and a tree of {len(leaves)}: '
            'make the state with init_state on the same parameters (the '
            "optimizer's init does)."
        )
    groups = [chosen] if scope == 'global' else [[i] for i in chosen]
    out = list(leaves)
    for group in groups:
      if not group:
        continue
      xs = [jnp.asarray(leaves[i]) for i in group]
      # One array: the search is one loop per pass. (Views of one buffer,
      # as the optimizers give them, are that buffer again: no copy.)
      flat = threshold.flatten(xs)
      k = threshold.fraction_count(s, flat.size)
      g = group[0] if scope == 'layer' and state is not None else 0
      split, new = threshold.kth_smallest(
          [flat], k, state=state, group=g, magnitude=True
      )
      if state is not None:
        state = new
      (pruned,) = threshold.smallest_masks([flat], split, magnitude=True)
      zero = jnp.zeros((), flat.dtype)
      values = jnp.where(pruned, zero, flat)
      shapes = [x.shape for x in xs]
      for i, x, y in zip(group, xs, threshold.flat_view(values, shapes)):
        out[i] = y.astype(x.dtype)
    return treedef.unflatten(out), state


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

  **Cost.** The level is found without a sort, exactly, by counting passes
  over the magnitudes (:func:`rda_optax.kth_smallest`): each pass reads the
  selected weights once and counts, in one loop, those below six pivots;
  when a few hundred are left between two pivots, the rows holding them are
  gathered and sorted. The optimizers keep the last step's search in their
  state (:meth:`init_state`, a :class:`rda_optax.ThresholdState`: the level,
  its drift and acceleration per step, smoothed, the density of magnitudes
  around it) and start the next step's search from the level it predicts:
  one pass per step once the drift is known (3 to 4 from a cold start, at a
  jump of ``s`` or at a restart). The answer never depends on that state.
  :func:`rda_optax.rmda` and :func:`rda_optax.rda` never write out the
  point they project (``w0 − G/β``): each pass and the loop that writes
  the parameters recompute it from ``w0`` and ``G``
  (:meth:`prox_computed`), with its rounding pinned so that all see the
  same bits (no state buffer: the state stays two parameter-sized trees).
  On the ResNet-18-sized tree of ``benchmarks/optimizer_step``, on a
  2-core CPU, an ``rmda(sparsity_constraint(0.95))`` step costs about 2.5
  to 2.8 SGD-with-momentum steps (17 before the warm start; see the
  performance page for what the rest is).

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
