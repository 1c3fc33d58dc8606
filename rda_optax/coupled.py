"""Group lasso whose groups span several leaves (coupled output channels).

:func:`rda_optax.group_lasso` groups the weights of one output channel of one
leaf. Some channels are shared by several leaves: in a residual network, the
stem and the last convolution of every block of a stage (and its projection
shortcut) all add into the same residual stream, so stream channel ``c`` is
free of signal only when it is zero in *every* writer. Penalising each
writer's channel alone rarely empties all of them at once;
:func:`coupled_group_lasso` makes channel ``c`` of all the leaves of one
coupled set a single group,

.. math::

  R(w) = \\lambda \\sum_{S} \\sum_c \\sqrt{n_{S}}\\,
  \\Big(\\sum_{\\ell \\in S} \\|w_\\ell[\\ldots, c]\\|_2^2\\Big)^{1/2}
  + \\lambda \\sum_{\\ell \\notin \\cup S} \\sum_c \\sqrt{n_\\ell}\\,
  \\|w_\\ell[\\ldots, c]\\|_2,

whose prox is the block soft threshold of each such group:
``w_ℓ[…, c] ← max(0, 1 − tλ√n_S / ‖group_c‖₂)·w_ℓ[…, c]`` for every member
``ℓ`` (``n_S`` the number of weights in one group). Selected leaves outside
every set are ordinary output groups, as in :func:`rda_optax.group_lasso`.

With the batch-norm scales of a stream's writers as the coupled leaves (one
scale per writer and channel, see :func:`models.coupled_scales`), a group at
zero silences a whole stream channel, which :func:`models.compact` then
removes from every layer that writes or reads it.

References:
  Yuan & Lin, *Model selection and estimation in regression with grouped
  variables*, JRSS-B 2006 (group lasso).
  Wen, Wu, Wang, Chen & Li, *Learning Structured Sparsity in Deep Neural
  Networks*, NeurIPS 2016 (groups across the layers of a network).
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence
from typing import Any

import jax
import jax.numpy as jnp

from rda_optax import regularizers as regs
from rda_optax import selection


@dataclasses.dataclass(frozen=True)
class CoupledGroupLasso(regs.Regularizer):
  """Group lasso on output channels, channels coupled across leaf sets.

  :meth:`prox_tree` and :meth:`value_tree` (which the optimizers and
  :func:`rda_optax.penalty` call) see the whole tree;
  :meth:`~rda_optax.Regularizer.prox` and
  :meth:`~rda_optax.Regularizer.value` on one leaf are those of
  ``group_lasso(strength, groups="output")`` (a leaf alone has no coupling).
  """

  strength: regs.ScalarOrSchedule
  coupled: tuple[tuple[str, ...], ...]

  def __post_init__(self):
    regs.check_nonnegative('strength', self.strength)
    if isinstance(self.coupled, (str, bytes)) or not isinstance(
        self.coupled, Sequence
    ):
      raise TypeError(
          'coupled_group_lasso needs coupled= a sequence of sets of leaf '
          'paths, e.g. (("bn1/scale", "block0/bn2/scale"),), got '
          f'{self.coupled!r}.'
      )
    sets = tuple(tuple(str(p) for p in s) for s in self.coupled)
    seen = set()
    for s in sets:
      for p in s:
        if p in seen:
          raise ValueError(
              f'coupled_group_lasso: leaf {p!r} is in two coupled sets; '
              'merge the sets that share it.'
          )
        seen.add(p)
    object.__setattr__(self, 'coupled', sets)

  def value(self, x, count=0):
    return regs.GroupLasso(self.strength).value(x, count)

  def prox(self, x, t, count=0):
    return regs.GroupLasso(self.strength).prox(x, t, count)

  def _resolve(self, tree: Any, selected: Any):
    flat, treedef = jax.tree_util.tree_flatten_with_path(tree)
    paths = [selection.path_str(p) for p, _ in flat]
    leaves = [x for _, x in flat]
    sel = jax.tree.leaves(selection.resolve_mask(selected, tree))
    index = {p: i for i, p in enumerate(paths)}
    sets = []
    for s in self.coupled:
      missing = [p for p in s if p not in index]
      if missing:
        raise ValueError(
            f'coupled_group_lasso: no leaf {missing[0]!r} in the parameters '
            f'(paths look like {paths[0]!r}); build the sets from the '
            'model these parameters belong to.'
        )
      idx = [index[p] for p in s if sel[index[p]]]
      widths = {jnp.shape(leaves[i])[-1] for i in idx if jnp.ndim(leaves[i])}
      if len(widths) > 1:
        raise ValueError(
            f'coupled_group_lasso: the leaves of one set must share their '
            f'last axis (the channels), got {sorted(widths)} for {s}.'
        )
      if idx:
        sets.append(idx)
    return leaves, treedef, sel, sets

  @staticmethod
  def _set_norms(xs):
    sq = sum(
        jnp.sum(
            jnp.square(x.astype(regs._compute_dtype(x))),  # pylint: disable=protected-access
            axis=tuple(range(x.ndim - 1)),
        )
        for x in xs
    )
    n_g = sum(math.prod(x.shape[:-1]) for x in xs)
    return jnp.sqrt(sq), n_g

  def prox_tree(self, tree, selected, t, count=0):
    leaves, treedef, sel, sets = self._resolve(tree, selected)
    thr = t * regs.value_at(self.strength, count)
    out = list(leaves)
    coupled = set()
    for idx in sets:
      xs = [jnp.asarray(leaves[i]) for i in idx]
      norms, n_g = self._set_norms(xs)
      scaled = thr * math.sqrt(n_g)
      safe = jnp.where(norms > 0, norms, 1)
      factor = jnp.where(norms > scaled, 1 - scaled / safe, 0)
      for i, x in zip(idx, xs):
        out[i] = regs.unsigned_zeros(
            (x.astype(factor.dtype) * factor).astype(x.dtype)
        )
        coupled.add(i)
    for i, x in enumerate(leaves):
      if sel[i] and i not in coupled:
        out[i] = self.prox(x, t, count)
    return jax.tree.unflatten(treedef, out)

  def value_tree(self, tree, selected, count=0):
    leaves, _, sel, sets = self._resolve(tree, selected)
    lam = regs.value_at(self.strength, count)
    total = jnp.zeros((), jnp.float32)
    coupled = set()
    for idx in sets:
      norms, n_g = self._set_norms([jnp.asarray(leaves[i]) for i in idx])
      total = total + lam * math.sqrt(n_g) * jnp.sum(norms)
      coupled.update(idx)
    for i, x in enumerate(leaves):
      if sel[i] and i not in coupled:
        total = total + self.value(x, count)
    return total.astype(jnp.float32)


def coupled_group_lasso(
    strength: regs.ScalarOrSchedule,
    coupled: Sequence[Sequence[str]],
) -> CoupledGroupLasso:
  r"""Group lasso on output channels, with channels shared across leaves.

  .. math::

    \operatorname{prox}(v)_{S,c} = \max\!\Big(0,\ 1 -
    \frac{t\lambda\sqrt{n_S}}{\|v_{S,c}\|_2}\Big)\, v_{S,c},
    \qquad v_{S,c} = (v_\ell[\ldots, c])_{\ell \in S},

  for every coupled set ``S`` of leaves and channel ``c`` (the last axis);
  selected leaves in no set get the output-channel group lasso of one leaf.
  A 1-D leaf (a batch-norm scale) contributes one number per channel.

  Example (two writers of one residual stream, channel 1 silenced in both):
    >>> import jax.numpy as jnp, rda_optax
    >>> scales = {'stem': {'scale': jnp.array([1.0, 0.1])},
    ...           'block': {'scale': jnp.array([0.5, 0.05])}}
    >>> reg = rda_optax.coupled_group_lasso(
    ...     0.1, coupled=[('stem/scale', 'block/scale')])
    >>> out = reg.prox_tree(scales, {'stem': True, 'block': True}, t=1.0)
    >>> out['stem']['scale'].round(3), out['block']['scale'].round(3)
    (Array([0.874, 0.   ], dtype=float32), Array([0.437, 0.   ], dtype=float32))

  Args:
    strength: ``λ``, float or schedule of the optimizer's count.
    coupled: sets of leaf paths (``'a/b/scale'``, keys joined by ``/``) whose
      channels are shared; the leaves of one set have the same last-axis
      size. A path absent from the parameters is an error at the first step.

  Returns:
    A :class:`CoupledGroupLasso`, to pass as ``regularizer=`` (alone, or as
    one term of :func:`rda_optax.partitioned`).
  """
  if isinstance(coupled, (str, bytes)) or not isinstance(coupled, Sequence):
    return CoupledGroupLasso(strength, coupled)  # Raises with the fix.
  return CoupledGroupLasso(
      strength,
      tuple((s,) if isinstance(s, str) else tuple(s) for s in coupled),
  )
