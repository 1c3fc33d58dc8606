"""Proximal AdamW against a NumPy transcription of RAMDA's reference code,
against optax.adamw without a regularizer, and under ASR."""

import numpy as np
import optax
import pytest

import rda_optax
from _optim_helpers import random_grads, random_params, run, SHAPES
from test_ramda import GROUP_AXES, np_exact_glasso, np_pgd_glasso
from test_ramda import run_with_state

F = np.float32


def np_prox_adamw(
    params,
    grads,
    lr,
    kind,
    lam,
    b1=0.9,
    b2=0.999,
    eps=1e-8,
    wd=0.0,
    rtol=1e-8,
    amsgrad=False,
    decayed=('conv', 'dense', 'bias'),
    max_iters=100,
):
  """``ProxAdamW.step`` of ismoptgroup/ramda_exp (Core/optimizer.py) in
  float32; the bias is unregularized (plain AdamW)."""
  p = {k: np.asarray(v, F) for k, v in params.items()}
  m = {k: np.zeros(s, F) for k, s in SHAPES.items()}
  v = {k: np.zeros(s, F) for k, s in SHAPES.items()}
  v_max = {k: np.zeros(s, F) for k, s in SHAPES.items()}
  traj, inner = [], []
  for n, g in enumerate(grads):
    step = n + 1
    most = 0
    for k in SHAPES:
      grad = np.asarray(g[k], F)
      if k in decayed:
        p[k] = p[k] * F(1.0 - lr * wd)
      bias_correction1 = F(1.0 - b1**step)
      bias_correction2 = F(1.0 - b2**step)
      m[k] = m[k] * F(b1) + grad * F(1 - b1)
      v[k] = v[k] * F(b2) + grad * grad * F(1 - b2)
      if amsgrad:
        v_max[k] = np.maximum(v_max[k], v[k])
      denom = np.sqrt(v_max[k] if amsgrad else v[k]) / np.sqrt(
          bias_correction2
      ) + F(eps)
      step_size = F(lr) / bias_correction1
      if k == 'bias' or kind == 'none':
        p[k] = p[k] - step_size * m[k] / denom
      elif kind == 'l1':
        u = p[k] - (m[k] * step_size) / denom
        p[k] = np.sign(u) * np.maximum(np.abs(u) - F(lr * lam) / denom, 0)
      elif kind == 'group_exact':
        p[k] = np_exact_glasso(
            p[k], m[k] * step_size, denom, lr, lam, GROUP_AXES[k]
        )
      else:
        p[k], steps = np_pgd_glasso(
            p[k],
            p[k].copy(),
            m[k] * step_size,
            denom,
            lr,
            lam,
            GROUP_AXES[k],
            rtol=rtol,
            max_iters=max_iters,
        )
        most = max(most, steps)
    traj.append({k: x.copy() for k, x in p.items()})
    inner.append(most)
  return traj, inner


@pytest.mark.parametrize('kind', ['l1', 'group', 'group_exact'])
def test_prox_adamw_matches_the_reference_code_over_100_steps(kind):
  """``group``: the reference code's loop (``solver='pgd'``), transcribed;
  ``group_exact``: the default solver against the exact subproblem
  solution in float64."""
  lam = {'l1': 0.1, 'group': 0.165, 'group_exact': 0.165}[kind]
  reg = rda_optax.l1(lam) if kind == 'l1' else rda_optax.group_lasso(lam)
  params, grads = random_params(), random_grads(100)
  opt = rda_optax.prox_adamw(
      0.01,
      reg,
      weight_decay=0.1,
      rtol=None,
      max_iters=10,
      solver='newton' if kind == 'group_exact' else 'pgd',
  )
  traj, state, inner = run_with_state(opt, params, grads)
  want, want_inner = np_prox_adamw(
      params, grads, 0.01, kind, lam, wd=0.1, rtol=None, max_iters=10
  )
  for got, ref in zip(traj, want):
    for k in SHAPES:
      np.testing.assert_allclose(got[k], ref[k], rtol=1e-5, atol=2e-6)
  conv = traj[-1]['conv']
  assert 0 < (conv == 0).sum() < conv.size  # Exact zeros in the params.
  if kind == 'l1':
    assert inner == want_inner and max(inner) == 0
    return
  if kind == 'group':
    assert inner == want_inner and max(inner) == 10
  else:  # Newton's iterations.
    assert 1 <= max(inner) <= 6
  zero = (conv == 0).all(axis=(0, 1, 2))
  assert zero.any() and not zero.all()


def test_without_a_regularizer_it_is_optax_adamw():
  params, grads = random_params(), random_grads(20)
  got, _ = run(rda_optax.prox_adamw(0.01, weight_decay=0.1), params, grads)
  want, _ = run(optax.adamw(0.01, weight_decay=0.1), params, grads)
  for a, b in zip(got, want):
    for k in SHAPES:
      np.testing.assert_allclose(a[k], b[k], rtol=2e-5, atol=1e-6)


def test_amsgrad_and_weight_decay_mask():
  params, grads = random_params(), random_grads(30)
  opt = rda_optax.prox_adamw(
      0.01,
      rda_optax.l1(0.5),
      weight_decay=0.5,
      amsgrad=True,
      weight_decay_mask={'conv': True, 'dense': True, 'bias': False},
  )
  traj, state = run(opt, params, grads)
  want, _ = np_prox_adamw(
      params,
      grads,
      0.01,
      'l1',
      0.5,
      wd=0.5,
      amsgrad=True,
      decayed=('conv', 'dense'),
  )
  for got, ref in zip(traj, want):
    for k in SHAPES:
      np.testing.assert_allclose(got[k], ref[k], rtol=1e-5, atol=2e-6)
  v, v_max = np.asarray(state.nu['conv']), np.asarray(state.nu_max['conv'])
  assert (v_max >= v).all() and (v_max > v).any()


def test_asr_keeps_zeros_and_the_sparse_model_is_the_parameters():
  params, grads = random_params(), random_grads(10)
  opt = rda_optax.asr(
      rda_optax.prox_adamw(0.01, rda_optax.l1(2.0)), start_step=5
  )
  traj, state = run(opt, params, grads)
  frozen = traj[4]['conv'] == 0
  assert frozen.any()
  for t in traj[5:]:
    assert (t['conv'][frozen] == 0).all()
  np.testing.assert_array_equal(
      rda_optax.sparse_params(state, traj[-1])['conv'], traj[-1]['conv']
  )


def test_nm_constraint_under_adam_metric():
  params, grads = random_params(), random_grads(5)
  opt = rda_optax.prox_adamw(0.01, rda_optax.nm_constraint(2, 4))
  traj, _ = run(opt, params, grads)
  for t in traj:
    assert rda_optax.satisfies_nm(t['conv'], 2, 4)
    assert rda_optax.satisfies_nm(t['dense'], 2, 4)
  assert (traj[-1]['bias'] != 0).all()


@pytest.mark.parametrize(
    'make, match',
    [
        (lambda: rda_optax.prox_adamw(0.0), 'learning_rate > 0'),
        (lambda: rda_optax.prox_adamw(0.1, b1=1.0), 'b1'),
        (lambda: rda_optax.prox_adamw(0.1, b2=-0.1), 'b2'),
        (lambda: rda_optax.prox_adamw(0.1, eps=-1.0), 'eps'),
        (lambda: rda_optax.prox_adamw(0.1, eps=0.0), 'eps > 0'),
        (lambda: rda_optax.prox_adamw(0.1, weight_decay=-1.0), 'weight_decay'),
        (lambda: rda_optax.prox_adamw(0.1, regularizer='l1'), 'Regularizer'),
        (lambda: rda_optax.prox_adamw(0.1, max_iters=1.5), 'max_iters'),
    ],
)
def test_invalid_hyperparameters(make, match):
  with pytest.raises((ValueError, TypeError), match=match):
    make()
