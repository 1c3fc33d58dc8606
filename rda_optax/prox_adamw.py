"""Proximal AdamW (ProxGen): an AdamW step whose prox uses Adam's metric."""

from __future__ import annotations

import math
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import optax

from rda_optax import preconditioned
from rda_optax import regularizers as regs
from rda_optax import selection
from rda_optax import sharding
from rda_optax import validation
from rda_optax.validation import check_update_args


class ProxAdamWState(NamedTuple):
  """State of :func:`prox_adamw`.

  Attributes:
    count: number of updates applied so far (int32).
    mu: the first moment ``m_k`` (in ``mu_dtype``, default the params').
    nu: the second moment ``v_k`` (in the params' dtypes).
    nu_max: ``max_{i≤k} v_i`` with ``amsgrad=True``, else ``None``.
    inner_steps: the most inner steps a leaf's subproblem took at the last
      update (Newton's iterations or the proximal-gradient loop's steps; 0
      when every subproblem was solved in closed form).
  """

  count: jax.Array
  mu: Any
  nu: Any
  nu_max: Any
  inner_steps: jax.Array


def _one_minus_power(b: Any, k: jax.Array) -> jax.Array:
  """``1 − b**k`` in float32 without the cancellation of ``1 − b**k``."""
  if isinstance(b, (int, float)):
    if b == 0:
      return jnp.ones_like(k)
    return -jnp.expm1(k * jnp.float32(math.log(b)))
  b = jnp.asarray(b, jnp.float32)
  return jnp.where(b > 0, -jnp.expm1(k * jnp.log1p(b - 1)), 1.0)


def prox_adamw(
    learning_rate: regs.ScalarOrSchedule,
    regularizer: regs.Regularizer | None = None,
    b1: float = 0.9,
    b2: float = 0.999,
    eps: float = 1e-8,
    weight_decay: float = 0.0,
    *,
    amsgrad: bool = False,
    mask: selection.MaskOrFn = None,
    weight_decay_mask: selection.MaskOrFn = None,
    max_iters: int = 100,
    rtol: float | None = 1e-8,
    solver: str = 'newton',
    mu_dtype: Any = None,
) -> optax.GradientTransformationExtraArgs:
  r"""Proximal AdamW (ProxGen with Adam's preconditioner), as in RAMDA's code.

  The ``ProxAdamW`` of Huang & Lee's reference code (``Core/optimizer.py``),
  the baseline of their transformer experiments: decoupled weight decay,
  Adam's moments, and the proximal step taken in the metric of Adam's
  diagonal preconditioner (Yun, Lozano & Yang's ProxGen). With
  ``η_k = learning_rate`` and ``g_k`` the gradient at ``w_{k−1}``:

  .. math::

    w' &= (1 - \eta_k \omega)\, w_{k-1}, \qquad
    m_k = \beta_1 m_{k-1} + (1 - \beta_1) g_k, \qquad
    v_k = \beta_2 v_{k-1} + (1 - \beta_2) g_k^2, \\
    D_k &= \operatorname{Diag}\Big(\sqrt{v_k}\,/\sqrt{1 - \beta_2^k}
      + \epsilon\Big), \qquad
    \delta_k = \frac{\eta_k}{1 - \beta_1^k}, \\
    w_k &\approx \arg\min_w\; \langle \delta_k m_k, w - w'\rangle
      + \tfrac12 \langle w - w', D_k (w - w')\rangle + \eta_k \lambda R(w),

  (``v_k`` replaced by ``max_{i≤k} v_i`` with ``amsgrad``). Without ``R``
  this is exactly AdamW (PyTorch's form: the decay multiplies the weights
  before the step). For ℓ1 the subproblem is solved in closed form,
  ``w_k = S_{η_kλ/D_k}(w' − δ_k m_k / D_k)``; for the group lasso and the
  sparse group lasso exactly, by Newton's method on each group's secular
  equation (``solver='newton'``, the default), or with ``solver='pgd'`` by
  the reference code's proximal-gradient loop (from ``w'``, with its
  screening and stopping rule; see :mod:`rda_optax.preconditioned`), which
  other regularizers without a closed form always take (transformed ℓ1
  with a group term: each loop step is its group search, a step of 70 s on
  the ResNet-18-sized tree on a 2-core CPU, ``python -m
  benchmarks.optimizer_step --grid``); the projections of
  :func:`rda_optax.sparsity_constraint` and :func:`rda_optax.nm_constraint`
  rank ``√D_k·|·|``. Its threshold ``η_kλ`` shrinks with the learning rate,
  as proximal SGD's does. The parameters are exactly sparse at every step.

  Leaves not selected by ``mask`` (default: ``ndim > 1``) take the AdamW
  step. ``weight_decay_mask`` chooses the leaves the decay applies to
  (default: all, as in the reference code and :func:`optax.adamw`).

  Example:
    >>> import jax.numpy as jnp, optax, rda_optax
    >>> params = {'w': jnp.array([[1.0, 0.1], [0.5, 0.125]])}
    >>> opt = rda_optax.prox_adamw(0.1, rda_optax.l1(0.5))
    >>> state = opt.init(params)
    >>> updates, state = opt.update({'w': jnp.ones((2, 2))}, state, params)
    >>> new = optax.apply_updates(params, updates)['w']
    >>> new[:, 1]   # S_{0.05}(w − 0.1) (D = 1 at the first step): exact zeros
    Array([0., 0.], dtype=float32)
    >>> bool(jnp.allclose(new[:, 0], jnp.array([0.85, 0.35]), atol=1e-6))
    True

  Args:
    learning_rate: ``η_k > 0`` (float or schedule).
    regularizer: a :class:`rda_optax.Regularizer`; ``None`` gives AdamW.
    b1: ``β₁``, the first moment's decay.
    b2: ``β₂``, the second moment's decay.
    eps: ``ε > 0``, added to the bias-corrected ``√v``.
    weight_decay: ``ω ≥ 0``, decoupled weight decay (``w ← (1 − η_kω)w``).
    amsgrad: use ``max_{i≤k} v_i`` (AMSGrad).
    mask: leaves the regularizer applies to (default
      :func:`rda_optax.default_mask`).
    weight_decay_mask: leaves the weight decay applies to (default: all).
    max_iters: the most steps of the proximal-gradient loop per
      subproblem (100, as the reference code). Newton's method
      (``solver='newton'``) is not bounded by it: it stops when converged,
      after a handful of iterations (100 at most).
    rtol: the proximal-gradient loop's relative-decrease tolerance (1e-8,
      as the reference code); None: always ``max_iters`` steps.
    solver: ``'newton'`` (default): group lasso and sparse group lasso
      subproblems solved exactly; ``'pgd'``: by the reference code's loop.
    mu_dtype: dtype of the first moment (default: the params').

  Returns:
    An :class:`optax.GradientTransformationExtraArgs`.

  References:
    Yun, Lozano & Yang, *Adaptive Proximal Gradient Methods for Structured
    Neural Networks*, NeurIPS 2021 (ProxGen).
    Huang & Lee, *Regularized Adaptive Momentum Dual Averaging with an
    Efficient Inexact Subproblem Solver for Training Structured Neural
    Networks*, NeurIPS 2024, arXiv 2403.14398 (the baseline and its solver;
    code ``ismoptgroup/ramda_exp``).
    Loshchilov & Hutter, *Decoupled Weight Decay Regularization*, ICLR 2019.
  """
  validation.check_positive('prox_adamw', 'learning_rate', learning_rate)
  for name, b in (('b1', b1), ('b2', b2)):
    v = validation.concrete_float(b)
    if v is not None and not 0 <= v < 1:
      raise ValueError(f'prox_adamw needs {name} in [0, 1), got {b!r}.')
  e = validation.concrete_float(eps)
  if e is not None and not 0 < e < float('inf'):
    raise ValueError(
        f'prox_adamw needs eps > 0 (added to the bias-corrected √v; with 0, '
        f'a weight whose gradient has been zero at every step, such as an '
        f'embedding row no input used, is 0/0 = NaN), got {eps!r}.'
    )
  wd = validation.concrete_float(weight_decay)
  if wd is not None and not 0 <= wd < float('inf'):
    raise ValueError(
        f'prox_adamw needs weight_decay >= 0, got {weight_decay!r}.'
    )
  regs.check_regularizer('prox_adamw', regularizer)
  preconditioned.check_solver_args('prox_adamw', max_iters, rtol, solver)
  mu_dt = validation.dtype_arg('prox_adamw', 'mu_dtype', mu_dtype)

  def init_fn(params):
    if regularizer is not None:
      selection.check_selects(mask, params, 'prox_adamw')
    zeros = lambda dt: jax.tree.map(
        lambda p: jnp.zeros_like(p, dt or jnp.asarray(p).dtype), params
    )
    return ProxAdamWState(
        count=jnp.zeros([], jnp.int32),
        mu=zeros(mu_dt),
        nu=zeros(None),
        nu_max=zeros(None) if amsgrad else None,
        inner_steps=jnp.zeros([], jnp.int32),
    )

  def update_fn(updates, state, params=None, **extra_args):
    del extra_args
    check_update_args('prox_adamw', updates, params)
    selected = selection.resolve_mask(mask, params)
    decayed = (
        selection.resolve_mask(weight_decay_mask, params)
        if weight_decay_mask is not None
        else jax.tree.map(lambda _: True, params)
    )
    count = optax.safe_increment(state.count)
    k = count.astype(jnp.float32)
    lr = regs.value_at(learning_rate, state.count).astype(jnp.float32)
    f32 = lambda x: jnp.asarray(x).astype(
        jnp.promote_types(jnp.asarray(x).dtype, jnp.float32)
    )
    # p.mul_(1.0 - lr*weight_decay)
    shrunk = jax.tree.map(
        lambda p, dec: f32(p) * (1 - lr * weight_decay) if dec else f32(p),
        params,
        decayed,
    )
    # exp_avg.mul_(beta1).add_(grad, alpha=1-beta1);
    # exp_avg_sq.mul_(beta2).addcmul_(grad, grad, value=1-beta2)
    mu = jax.tree.map(
        lambda m, g: (b1 * f32(m) + (1 - b1) * f32(g)).astype(m.dtype),
        state.mu,
        updates,
    )
    nu = jax.tree.map(
        lambda v, g: (b2 * f32(v) + (1 - b2) * jnp.square(f32(g))).astype(
            v.dtype
        ),
        state.nu,
        updates,
    )
    nu_max = jax.tree.map(jnp.maximum, state.nu_max, nu) if amsgrad else None
    # 1 − β^k as −expm1(k·log β), log β in float64 for a Python β: float32's
    # 1 − β^k is off by 1e-5 (relative) at k = 1 for β = 0.999; the
    # reference computes it in Python floats.
    bc1 = _one_minus_power(b1, k)
    bc2 = _one_minus_power(b2, k)
    # denom = (exp_avg_sq.sqrt() / math.sqrt(bias_correction2)).add_(eps)
    denom = jax.tree.map(
        lambda v: jnp.sqrt(f32(v)) / jnp.sqrt(bc2) + eps,
        nu_max if amsgrad else nu,
    )
    step = lr / bc1
    # argmin ⟨step·m, w − p⟩ + ½‖w − p‖²_D + lr·λR(w), from p (the solver's
    # p0 = p, v = exp_avg·step_size, alpha = lr); unregularized leaves
    # p − step·m/D (p.addcdiv_(exp_avg, denom, value=-step_size)).
    new, inner_steps = preconditioned.solve(
        regularizer,
        shrunk,
        jax.tree.map(lambda m: step * f32(m), mu),
        denom,
        selected,
        lr,
        state.count,
        start=shrunk,
        max_iters=max_iters,
        rtol=rtol,
        solver=solver,
    )
    deltas = jax.tree.map(
        lambda w, p: (w.astype(jnp.asarray(p).dtype) - jnp.asarray(p)).astype(
            jnp.asarray(p).dtype
        ),
        new,
        params,
    )
    return deltas, ProxAdamWState(
        count=count, mu=mu, nu=nu, nu_max=nu_max, inner_steps=inner_steps
    )

  return optax.GradientTransformationExtraArgs(
      init_fn, sharding.explicit_safe(update_fn)
  )
