"""The front door: the sparsity you ask for, from the SGD you already have.

:func:`sparse_training` turns the settings of a user's SGD (learning rate or
schedule, momentum, number of steps) and a target sparsity into one Optax
transformation that trains the model to exactly that sparsity: RMDA whose
proximal step is the projection onto the target (a cubic ramp to it), then
adaptive sparse retraining by SGD with the zeros frozen. No λ to search.
"""

from __future__ import annotations

import functools
import numbers
from typing import Any, Literal

import jax
import optax

from rda_optax.asr import asr
from rda_optax.adaptive_l1 import adaptive_l1
from rda_optax import constraints
from rda_optax import pruning
from rda_optax import regularizers as regs
from rda_optax.rmda import rmda
from rda_optax import selection
from rda_optax import validation

_STRUCTURAL = ('total_steps', 'ramp', 'retrain_fraction')


def _check_fraction(
    name: str, value: Any, upper_open: bool = True, traced_ok: bool = True
) -> Any:
  """``value`` if a fraction (a traced value passes when ``traced_ok``)."""
  if isinstance(value, jax.core.Tracer) or (
      not isinstance(value, numbers.Real) and hasattr(value, 'shape')
  ):
    if traced_ok:
      return value  # optax.inject_hyperparams: an array, checked upstream.
    raise TypeError(
        f'sparse_training got an array for {name}, which sets the number of '
        'updates of each phase: under optax.inject_hyperparams pass '
        f'static_args={_STRUCTURAL!r}.'
    )
  v = validation.concrete_float(value)
  if v is None or not (0 <= v < 1 if upper_open else 0 <= v <= 1):
    interval = '[0, 1)' if upper_open else '[0, 1]'
    raise ValueError(
        f'sparse_training needs {name} in {interval} (a fraction), got '
        f'{name}={value!r}.'
    )
  return v


def _shifted(schedule: regs.ScalarOrSchedule, steps: int):
  """``schedule`` read ``steps`` updates later (a constant stays one)."""
  if not callable(schedule):
    return schedule
  return lambda count: schedule(count + steps)


def _scaled(schedule: regs.ScalarOrSchedule, factor: Any):
  if not callable(schedule):
    return schedule * factor
  return lambda count: schedule(count) * factor


def sparse_training(
    sparsity: float,
    *,
    learning_rate: regs.ScalarOrSchedule,
    total_steps: int,
    momentum: float = 0.9,
    ramp: tuple[float, float] = (0.05, 0.75),
    retrain_fraction: float = 1 / 3,
    scope: constraints.Scope = 'global',
    mask: selection.MaskOrFn = None,
    retrain_weight_decay: float = 0.0,
    penalty: Literal['projection', 'l1'] = 'projection',
) -> optax.GradientTransformationExtraArgs:
  r"""Trains to exactly ``sparsity`` with the SGD settings you already use.

  Give it what you would give :func:`optax.sgd` (the learning rate or its
  schedule over the whole run, the momentum) plus the sparsity you need and
  the number of updates of the run. With ``S = total_steps − round(
  retrain_fraction · total_steps)`` updates of sparse training:

  1. updates ``0 … S−1``: :func:`rda_optax.rmda` with the proximal step
     :func:`rda_optax.sparsity_constraint` (the projection onto the
     ``s_k``-sparse weights, one magnitude threshold over all the selected
     leaves with ``scope="global"``), ``s_k`` the cubic ramp of
     :func:`rda_optax.zhu_gupta_sparsity` from 0 at update
     ``round(ramp[0]·S)`` to ``sparsity`` at ``round(ramp[1]·S)``, and the
     learning rate of dual averaging matched to SGD's effective step,

     .. math::

       \eta_k = \frac{\mathrm{lr}_k}{1 - \mu}

     (SGD's heavy-ball momentum multiplies its steps by ``1/(1 − μ)``;
     dual averaging's interpolation momentum does not);
  2. updates ``S …``: :func:`rda_optax.asr` retraining by
     ``optax.sgd(lr_k, momentum=μ)`` from RMDA's exactly sparse point with
     its zeros frozen, ``lr_k`` your schedule continued (at update ``S + j``
     it is ``lr(S + j)``).

  The selected leaves (``mask``, default :func:`rda_optax.default_mask`:
  the kernels) end with exactly ``round(sparsity · n)`` zeros; the others
  (biases, normalisation) train without a penalty. Evaluate and export
  :func:`rda_optax.sparse_params` (the sparse point while RMDA trains, the
  parameters during retraining).

  The defaults are those that worked across the settings of the project's
  results (LeNet-300-100 and LeNet-5 on MNIST, ResNet-8 and ResNet-18 on
  CIFAR-10; ``docs/results.md``). ``total_steps`` counts the updates the
  transformation sees: under :func:`optax.MultiSteps` that is the applied
  updates, not the micro-batches.

  Example:
    >>> import jax, jax.numpy as jnp, optax, rda_optax
    >>> params = {'w': jax.random.normal(jax.random.key(0), (40, 10)),
    ...           'b': jnp.zeros(10)}
    >>> tx = rda_optax.sparse_training(0.9, learning_rate=0.01,
    ...                                total_steps=30)
    >>> state, update = tx.init(params), jax.jit(tx.update)
    >>> loss = lambda p: jnp.sum((p['w'] - 0.5) ** 2) + jnp.sum(p['b'] ** 2)
    >>> for _ in range(30):
    ...   updates, state = update(jax.grad(loss)(params), state, params)
    ...   params = optax.apply_updates(params, updates)
    >>> int((rda_optax.sparse_params(state, params)['w'] == 0).sum())
    360

  Args:
    sparsity: the fraction of the selected weights that end at exactly zero,
      in ``[0, 1)``.
    learning_rate: SGD's learning rate, a float or an optax schedule of the
      update count over the whole run (as you would give :func:`optax.sgd`).
    total_steps: the updates of the run (sparse phase and retraining).
    momentum: SGD's momentum ``μ ∈ [0, 1)``.
    ramp: ``(begin, end)``, fractions of the sparse phase where the cubic
      ramp of the sparsity starts and ends (``0 ≤ begin ≤ end ≤ 1``).
    retrain_fraction: the fraction of ``total_steps`` spent retraining with
      the zeros frozen, in ``[0, 1)``; 0: no retraining (RMDA to the end).
    scope: ``"global"`` (one threshold over the selected leaves) or
      ``"layer"`` (each selected leaf at ``sparsity``).
    mask: the leaves to sparsify (tree of bools or a callable of the params,
      as in :func:`optax.masked`); default :func:`rda_optax.default_mask`.
    retrain_weight_decay: weight decay of the retraining SGD on the selected
      leaves (``optax.add_decayed_weights``), e.g. your SGD's.
    penalty: ``"projection"`` (:func:`rda_optax.sparsity_constraint`: keep
      the largest magnitudes as they are) or ``"l1"``
      (:func:`rda_optax.adaptive_l1`: ℓ1 whose strength is set at every
      update so that the prox point has the ramp's sparsity; the survivors
      are shrunk as ℓ1 shrinks them).

  Returns:
    An :class:`optax.GradientTransformationExtraArgs` (it needs ``params``
    in ``update``).

  References:
    Huang & Lee, *Training Structured Neural Networks Through Manifold
    Identification and Variance Reduction*, ICLR 2022 (RMDA).
    Zhu & Gupta, *To prune, or not to prune*, 2017 (the cubic ramp).
    He et al., *Make ℓ1 Regularization Effective in Training Sparse CNN*,
    2020 (adaptive sparse retraining).
  """
  s = _check_fraction('sparsity', sparsity)
  mu = _check_fraction('momentum', momentum)
  retrain_fraction = _check_fraction(
      'retrain_fraction', retrain_fraction, traced_ok=False
  )
  if not isinstance(total_steps, numbers.Integral):
    _check_fraction('total_steps', total_steps, traced_ok=False)  # An array?
  if (
      not isinstance(total_steps, numbers.Integral)
      or isinstance(total_steps, bool)
      or total_steps < 1
  ):
    raise ValueError(
        'sparse_training needs total_steps, the number of updates of the '
        f'run, as an int >= 1, got total_steps={total_steps!r}.'
    )
  try:
    begin, end = (_check_fraction('ramp', r, False, False) for r in ramp)
  except (TypeError, ValueError):
    begin = end = None
  if begin is None or not begin <= end:
    raise ValueError(
        'sparse_training needs ramp=(begin, end) with 0 <= begin <= end <= '
        '1, the fractions of the sparse phase where the sparsity ramp starts '
        f'and ends, got ramp={ramp!r}.'
    )
  validation.check_positive(
      'sparse_training',
      'learning_rate',
      learning_rate,
      "SGD's learning rate, as you would give optax.sgd.",
  )
  total_steps = int(total_steps)
  retrain_steps = int(round(retrain_fraction * total_steps))
  sparse_steps = total_steps - retrain_steps
  if sparse_steps < 1:
    raise ValueError(
        f'sparse_training: retrain_fraction={retrain_fraction} leaves no '
        f'sparse phase in total_steps={total_steps}; lower it.'
    )
  level = functools.partial(
      pruning.zhu_gupta_sparsity,
      final_sparsity=s,
      begin_step=int(round(begin * sparse_steps)),
      end_step=int(round(end * sparse_steps)),
  )
  if penalty == 'projection':
    regularizer = constraints.sparsity_constraint(level, scope=scope)
  elif penalty == 'l1':
    regularizer = adaptive_l1(level, scope=scope)
  else:
    raise ValueError(
        'sparse_training penalty must be "projection" (keep the largest '
        'weights) or "l1" (ℓ1 at the strength that gives the sparsity), got '
        f'penalty={penalty!r}.'
    )
  inner = rmda(
      _scaled(learning_rate, 1 / (1 - mu)),
      regularizer,
      momentum=mu,
      mask=mask,
  )
  if not retrain_steps:
    return inner
  retrain = optax.sgd(_shifted(learning_rate, sparse_steps), momentum=mu)
  regs.check_nonnegative('retrain_weight_decay', retrain_weight_decay)
  # Decided on the type, not the value: under optax.inject_hyperparams the
  # decay is an array (concrete at init, traced in update), and the state's
  # structure must not change between the two.
  if not (
      isinstance(retrain_weight_decay, numbers.Real)
      and retrain_weight_decay == 0
  ):
    decay_mask = selection.default_mask if mask is None else mask
    retrain = optax.chain(
        optax.add_decayed_weights(retrain_weight_decay, decay_mask), retrain
    )
  return asr(inner, mask=mask, start_step=sparse_steps, retrain=retrain)
