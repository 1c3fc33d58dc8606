"""Different regularizers for different leaves, in one regularizer.

Every optimizer of the library takes one ``regularizer`` and a ``mask`` of the
leaves it applies to. :func:`partitioned` gives each group of leaves its own
regularizer (or none), the way :func:`optax.multi_transform` gives each its
own transformation: the leaves carry labels, and each label names a
regularizer. For instance, sparse kernels *and* sparse batch-norm scales
(network slimming):

.. math::

  R(w) = \\sum_{\\ell \\in \\text{kernels}} \\lambda\\,\\|w_\\ell\\|_1
  + \\sum_{\\ell \\in \\text{scales}} \\lambda_s\\,\\|\\gamma_\\ell\\|_1,
  \\qquad
  \\operatorname{prox}_{tR}(v)_\\ell = \\operatorname{prox}_{tR_{c(\\ell)}}(v_\\ell),

a sum of terms on disjoint leaves, whose prox is each term's prox on its own
leaves (``c(ℓ)`` the label of leaf ``ℓ``). A zero scale ``γ_c`` of the batch
norm after a convolution makes channel ``c`` the constant shift ``β_c``
whatever its kernel, so :func:`models.compact` removes it: channel sparsity
on batch-normalised networks, where a group penalty on the kernel alone is
defeated by the normalisation's scale invariance (shrinking a channel's
kernel does not change its output; the gradient grows as the kernel
shrinks, and the group norm settles above the threshold).

Regularizers that couple leaves (:func:`rda_optax.sparsity_constraint` with
``scope="global"``) rank only the leaves of their own label.

References:
  Liu, Li, Shen, Huang, Yan & Zhang, *Learning Efficient Convolutional
  Networks through Network Slimming*, ICCV 2017.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from typing import Any

import jax
import jax.numpy as jnp

from rda_optax import regularizers as regs
from rda_optax import selection

Labels = Any | Callable[[Any], Any]


def resolve_labels(param_labels: Labels, tree: Any) -> Any:
  """One string label per leaf of ``tree`` (a tree of labels with its
  structure or a prefix of it, or a callable ``tree -> such a tree``)."""
  labels = param_labels(tree) if callable(param_labels) else param_labels
  try:
    return jax.tree.map(
        lambda l, sub: jax.tree.map(lambda _: l, sub), labels, tree
    )
  except (ValueError, TypeError) as e:
    raise ValueError(
        'partitioned: the labels do not match the parameters: pass a tree of '
        'labels with the same structure as the params (or a prefix of it), '
        'or a callable params -> such a tree. Labels structure: '
        f'{jax.tree.structure(labels)}; params structure: '
        f'{jax.tree.structure(tree)}.'
    ) from e


@dataclasses.dataclass(frozen=True)
class PartitionedRegularizer(regs.Regularizer):
  """``Σ_label R_label`` over disjoint sets of leaves (see :func:`partitioned`).

  It acts on trees: :meth:`prox_tree` and :meth:`value_tree`, which the
  optimizers and :func:`rda_optax.penalty` call. A single leaf has no label,
  so :meth:`~rda_optax.Regularizer.prox` and
  :meth:`~rda_optax.Regularizer.value` raise.
  """

  regularizers: Mapping[str, regs.Regularizer | None]
  param_labels: Labels

  def __post_init__(self):
    if not isinstance(self.regularizers, Mapping) or not self.regularizers:
      raise TypeError(
          'partitioned needs a non-empty mapping label -> regularizer (or '
          'None), e.g. {"kernels": rda_optax.l1(1e-4), "scales": '
          f'rda_optax.l1(1e-3)}}, got {self.regularizers!r}.'
      )
    for label, reg in self.regularizers.items():
      regs.check_regularizer(f'partitioned label {label!r}', reg)
      if isinstance(reg, PartitionedRegularizer):
        raise TypeError(
            f'partitioned label {label!r}: nest the labels in one partition '
            'instead of a partition inside a partition.'
        )
    # A dict is not hashable; optax.inject_hyperparams and jit need the
    # regularizer hashable (static): keep an immutable copy.
    object.__setattr__(
        self, 'regularizers', _FrozenDict(dict(self.regularizers))
    )

  @property
  def ranks_input(self) -> bool:
    return any(
        r is not None and r.ranks_input for r in self.regularizers.values()
    )

  def value(self, x, count=0):
    raise TypeError(self._leaf_error('value'))

  def prox(self, x, t, count=0):
    raise TypeError(self._leaf_error('prox'))

  def _leaf_error(self, what: str) -> str:
    return (
        f'A partitioned regularizer acts on trees (its labels name leaves): '
        f'call {what}_tree(tree, selected, ...), as the optimizers do, or '
        f'.regularizers[label].{what}(...) for one leaf.'
    )

  def _selections(self, tree: Any, selected: Any):
    labels = resolve_labels(self.param_labels, tree)
    used = set(jax.tree.leaves(labels))
    unknown = sorted(str(l) for l in used - set(self.regularizers))
    if unknown:
      raise ValueError(
          f'partitioned: labels {unknown} have no regularizer; give each '
          f'label one (None for no penalty). Known: '
          f'{sorted(self.regularizers)}.'
      )
    selected = selection.resolve_mask(selected, tree)
    for label, reg in self.regularizers.items():
      if reg is None:
        continue
      yield reg, jax.tree.map(
          lambda s, l, label=label: bool(s) and l == label, selected, labels
      )

  def prox_tree(self, tree, selected, t, count=0):
    # The terms act on disjoint leaves: applying their proxes one after the
    # other is the prox of the sum.
    for reg, sel in self._selections(tree, selected):
      tree = reg.prox_tree(tree, sel, t, count)
    return tree

  def init_state(self, params):
    """Each label's regularizer's state (see
    :meth:`rda_optax.Regularizer.init_state`), by label."""
    return {
        label: reg.init_state(params)
        for label, reg in self.regularizers.items()
        if reg is not None
    }

  def prox_tree_with_state(self, tree, selected, t, count, state):
    state = dict(state)
    labels = [l for l, r in self.regularizers.items() if r is not None]
    for label, (reg, sel) in zip(labels, self._selections(tree, selected)):
      tree, state[label] = reg.prox_tree_with_state(
          tree, sel, t, count, state[label]
      )
    return tree, state

  def value_tree(self, tree, selected, count=0):
    total = jnp.zeros((), jnp.float32)
    for reg, sel in self._selections(tree, selected):
      total = total + reg.value_tree(tree, sel, count)
    return total


class _FrozenDict(dict):
  """A dict that hashes by its items (regularizers are frozen dataclasses)."""

  def __hash__(self):
    return hash(tuple(sorted(self.items(), key=lambda kv: kv[0])))

  def _immutable(self, *args, **kwargs):
    raise TypeError('The regularizers of a partition are fixed.')

  __setitem__ = __delitem__ = update = pop = popitem = clear = _immutable
  setdefault = _immutable


def partitioned(
    regularizers: Mapping[str, regs.Regularizer | None],
    param_labels: Labels,
) -> PartitionedRegularizer:
  r"""One regularizer made of several, each on the leaves of its label.

  .. math::

    R(w) = \sum_{c} R_c(w_{\{\ell : \mathrm{label}(\ell) = c\}}), \qquad
    \operatorname{prox}_{tR}(v)_\ell = \operatorname{prox}_{tR_{\mathrm{label}(\ell)}}(v_\ell).

  The optimizer's ``mask`` still chooses which leaves are regularized at all
  (and, under :func:`rda_optax.asr`, which zeros are frozen); the labels say
  by which term. Select every leaf a label names, e.g. kernels and scales.

  Example (ℓ1 on kernels, a stronger ℓ1 on batch-norm scales):
    >>> import jax.numpy as jnp, rda_optax
    >>> params = {'conv': {'kernel': jnp.full((1, 1, 2, 2), 0.5)},
    ...           'bn': {'scale': jnp.array([1.0, 0.05])}}
    >>> reg = rda_optax.partitioned(
    ...     {'kernels': rda_optax.l1(0.1), 'scales': rda_optax.l1(0.1)},
    ...     lambda p: {'conv': {'kernel': 'kernels'}, 'bn': {'scale': 'scales'}})
    >>> out = reg.prox_tree(params, {'conv': True, 'bn': True}, t=1.0)
    >>> out['bn']['scale']
    Array([0.9, 0. ], dtype=float32)
    >>> opt = rda_optax.rmda(
    ...     0.1, regularizer=reg, mask={'conv': True, 'bn': True})

  Args:
    regularizers: label -> :class:`rda_optax.Regularizer` (None: no penalty
      on the leaves of that label).
    param_labels: a tree of labels with the structure of the parameters (or
      a prefix of it), or a callable ``params -> such a tree``, as
      :func:`optax.multi_transform` takes.

  Returns:
    A :class:`PartitionedRegularizer`, to pass as ``regularizer=``.
  """
  return PartitionedRegularizer(regularizers, param_labels)
