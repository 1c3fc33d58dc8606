"""ℓ1 whose strength follows a target sparsity.

The ℓ1 strength λ that gives a sparsity depends on the model, the data, the
learning rate and the budget: calibrated on one network it lands far off on
another. :func:`adaptive_l1` sets it at every step instead: the soft
threshold of the proximal step is the magnitude below which the target
fraction of the selected weights lies, so the prox point has that sparsity
and its survivors are shrunk as ℓ1 shrinks them.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import jax
import jax.numpy as jnp

from rda_optax import pruning
from rda_optax import regularizers as regs
from rda_optax import validation
from rda_optax.constraints import Scope


@dataclasses.dataclass(frozen=True)
class AdaptiveL1(regs.Regularizer):
  """ℓ1 with its strength set at each step to reach ``sparsity``.

  :meth:`prox_tree` soft-thresholds the selected leaves at ``τ``, the
  largest magnitude among the ``round(s·n)`` smallest (one ``τ`` over all
  the selected leaves with ``scope="global"``, one per leaf with
  ``"layer"``): the proximal step of ``λ‖·‖₁`` with ``t·λ = τ``. Its
  :meth:`value` is 0: the strength is not a constant of the problem.
  """

  sparsity: regs.ScalarOrSchedule
  scope: Scope = 'global'

  def __post_init__(self):
    s = validation.concrete_float(self.sparsity)
    if s is not None and not 0 <= s < 1:
      raise ValueError(
          f'adaptive_l1 needs a sparsity in [0, 1) (the fraction of the '
          f'selected weights set to zero, e.g. 0.9) or a schedule of the '
          f'step count, got sparsity={self.sparsity!r}.'
      )
    if self.scope not in ('global', 'layer'):
      raise ValueError(
          f'adaptive_l1 scope must be "global" (one threshold over all the '
          f'selected leaves) or "layer" (each leaf reaches the sparsity), got '
          f'scope={self.scope!r}.'
      )

  def value(self, x, count=0):
    del x, count
    return jnp.zeros((), jnp.float32)

  def prox(self, x, t, count=0):
    del t  # The threshold is set by the sparsity, not the step.
    return self._shrink({'x': x}, {'x': True}, 'layer', count)['x']

  def prox_tree(self, tree, selected, t, count=0):
    del t
    return self._shrink(tree, selected, self.scope, count)

  def threshold_tree(self, tree: Any, selected: Any, count: Any = 0) -> Any:
    """The soft thresholds ``τ``: per selected leaf (the same scalar for all
    of them with ``scope="global"``), ``None`` for the others."""
    _, taus = self._keep_and_tau(tree, selected, self.scope, count)
    return taus

  def _keep_and_tau(self, tree, selected, scope, count):
    s = regs.value_at(self.sparsity, count)
    if not isinstance(s, jax.core.Tracer):
      s = float(s)
    keep = pruning.magnitude_masks(tree, s, scope=scope, mask=selected)

    def pruned_max(x, k):
      a = jnp.abs(jnp.asarray(x)).astype(jnp.float32)
      return jnp.max(jnp.where(k, 0, a), initial=0.0)

    leaf_tau = jax.tree.map(
        lambda x, k, sel: pruned_max(x, k) if sel else None,
        tree,
        keep,
        selected,
    )
    if scope == 'global':
      taus = jax.tree.leaves(leaf_tau)
      top = jnp.max(jnp.stack(taus)) if taus else jnp.zeros((), jnp.float32)
      leaf_tau = jax.tree.map(
          lambda t: None if t is None else top,
          leaf_tau,
          is_leaf=lambda t: t is None,
      )
    return keep, leaf_tau

  def _shrink(self, tree, selected, scope, count):
    keep, taus = self._keep_and_tau(tree, selected, scope, count)

    def shrink(x, k, tau):
      if tau is None:
        return x
      x = jnp.asarray(x)
      y = regs.soft_threshold(x, tau.astype(x.dtype))
      return jnp.where(k, y, jnp.zeros((), x.dtype))

    return jax.tree.map(shrink, tree, keep, taus, is_leaf=lambda t: t is None)


def adaptive_l1(
    sparsity: regs.ScalarOrSchedule, scope: Scope = 'global'
) -> AdaptiveL1:
  r"""ℓ1 whose strength is set at every step so that the prox point has the
  sparsity ``s``.

  .. math::

    \operatorname{prox}(v)_i = \begin{cases}
      \operatorname{sign}(v_i)\,(|v_i| - \tau) & |v_i| \text{ among the }
      n - \operatorname{round}(s n) \text{ largest} \\
      0 & \text{otherwise,} \end{cases}
    \qquad \tau = \max_{i \text{ pruned}} |v_i| ,

  the soft threshold of ``t·λ‖·‖₁`` with ``t·λ = τ``: exactly
  ``round(s·n)`` zeros (more only if magnitudes tie at ``τ``), the survivors
  shrunk by ``τ`` as ℓ1 shrinks them. Compared with
  :func:`rda_optax.sparsity_constraint` (which keeps the survivors as they
  are) it is ℓ1's bias toward small weights with the sparsity stated instead
  of λ. ``s`` may be a schedule of the step count, e.g. a ramp of
  :func:`rda_optax.zhu_gupta_sparsity`.

  Example:
    >>> import jax.numpy as jnp, rda_optax
    >>> reg = rda_optax.adaptive_l1(0.5)
    >>> tree = {'a': jnp.array([[3.0, -0.5]]), 'b': jnp.array([[1.0, 0.25]])}
    >>> reg.prox_tree(tree, {'a': True, 'b': True}, t=1.0)['a']
    Array([[2.5, 0. ]], dtype=float32)

  Args:
    sparsity: ``s ∈ [0, 1)``, float or schedule of the optimizer's count.
    scope: ``"global"`` (one threshold over all the selected leaves) or
      ``"layer"`` (every selected leaf at sparsity ``s``).

  Returns:
    An :class:`AdaptiveL1`, to pass as ``regularizer=``.

  References:
    Tibshirani, *Regression shrinkage and selection via the lasso*, J. R.
    Stat. Soc. B 1996 (the soft threshold).
  """
  return AdaptiveL1(sparsity, scope)
