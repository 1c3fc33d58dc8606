"""Every proximal operator against brute-force minimisation."""

import dataclasses
import math

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from scipy import optimize

import rda_optax
from rda_optax import regularizers as regs

RNG = np.random.default_rng(0)


def np_group_norms(x, groups):
  """Per-group ℓ2 norms and group size, transcribed in NumPy."""
  if x.ndim < 2:
    return np.abs(x).ravel(), 1
  axis = x.ndim - 1 if groups == 'output' else x.ndim - 2
  moved = np.moveaxis(x, axis, 0).reshape(x.shape[axis], -1)
  return np.linalg.norm(moved, axis=1), moved.shape[1]


def np_penalty(reg, x):
  """λ·R(x) in NumPy, independent of the library's implementation."""
  x = np.asarray(x, np.float64)
  if isinstance(reg, regs.L1):
    return reg.strength * np.abs(x).sum()
  if isinstance(reg, regs.L0):
    return reg.strength * np.count_nonzero(x)
  if isinstance(reg, regs.GroupLasso):
    norms, n = np_group_norms(x, reg.groups)
    return reg.strength * math.sqrt(n) * norms.sum()
  if isinstance(reg, regs.SparseGroupLasso):
    norms, n = np_group_norms(x, reg.groups)
    return (
        reg.l1_strength * np.abs(x).sum()
        + reg.group_strength * math.sqrt(n) * norms.sum()
    )
  if isinstance(reg, regs.TransformedL1):
    norms, n = np_group_norms(x, reg.groups)
    a = reg.a
    return (
        reg.strength * ((a + 1) * np.abs(x) / (a + np.abs(x))).sum()
        + reg.group_strength * math.sqrt(n) * norms.sum()
    )
  raise TypeError(reg)


def prox_objective(reg, y, v, t):
  y = np.asarray(y, np.float64)
  return 0.5 * float(np.sum((y - np.asarray(v, np.float64)) ** 2)) + t * float(
      np_penalty(reg, y)
  )


def brute_force_scalar(reg, v, t, lo=-6.0, hi=6.0, n=120001):
  """Grid-minimises ½(y − v)² + t·R(y) elementwise (R separable)."""
  grid = np.linspace(lo, hi, n)
  # R is separable: evaluate it on the whole grid at once.
  if isinstance(reg, regs.L1):
    r = reg.strength * np.abs(grid)
  elif isinstance(reg, regs.L0):
    r = reg.strength * (grid != 0)
  else:
    r = reg.strength * (reg.a + 1) * np.abs(grid) / (reg.a + np.abs(grid))
  out = [grid[np.argmin(0.5 * (grid - vi) ** 2 + t * r)] for vi in np.ravel(v)]
  return np.reshape(out, np.shape(v))


@pytest.mark.parametrize(
    'reg',
    [
        rda_optax.l1(0.7),
        rda_optax.l0(0.7),
        rda_optax.transformed_l1(0.7, a=0.5),
        rda_optax.transformed_l1(0.3, a=3.0),
        rda_optax.transformed_l1(2.0, a=1.0),
    ],
    ids=['l1', 'l0', 'tl1_a0.5', 'tl1_a3', 'tl1_a1'],
)
@pytest.mark.parametrize('t', [0.1, 1.0, 2.5])
def test_elementwise_prox_vs_grid(reg, t):
  v = RNG.normal(scale=2.0, size=(40,))
  got = np.asarray(reg.prox(jnp.asarray(v, jnp.float32), t))
  want = brute_force_scalar(reg, v, t)
  for gi, wi, vi in zip(got, want, v):
    # Compare objectives (ties like ℓ0 at the threshold are fine), then
    # values away from ties.
    fg = prox_objective(reg, [gi], [vi], t)
    fw = prox_objective(reg, [wi], [vi], t)
    assert fg <= fw + 1e-4, (vi, gi, wi)


def test_elementwise_zero_and_sign_structure():
  v = jnp.linspace(-3, 3, 61)
  for reg in [
      rda_optax.l1(0.5),
      rda_optax.l0(0.5),
      rda_optax.transformed_l1(0.5, a=1.0),
  ]:
    y = reg.prox(v, 1.0)
    assert bool(jnp.all(jnp.sign(y) * jnp.sign(v) >= 0))
    assert bool(jnp.all(jnp.abs(y) <= jnp.abs(v) + 1e-6))
    assert int(jnp.sum(y == 0)) > 0  # Exact zeros.
  np.testing.assert_allclose(
      rda_optax.l1(0.5).prox(v, 1.0),
      np.sign(v) * np.maximum(np.abs(v) - 0.5, 0),
      atol=1e-6,
  )
  np.testing.assert_array_equal(
      rda_optax.l0(0.5).prox(v, 1.0), np.where(np.abs(v) > 1.0, v, 0)
  )


def _minimize_group(reg, v, t, starts=8, seed=0):
  """Multi-start minimisation of the prox objective (Powell, derivative free)."""
  rng = np.random.default_rng(seed)
  f = lambda y: prox_objective(reg, y.reshape(v.shape), v, t)
  best = min(
      [
          optimize.minimize(
              f,
              x0,
              method='Powell',
              options=dict(xtol=1e-7, ftol=1e-10, maxfev=20000),
          )
          for x0 in [v.ravel(), np.zeros(v.size)]
          + [rng.normal(size=v.size) * np.abs(v).max() for _ in range(starts)]
      ],
      key=lambda r: r.fun,
  )
  return min(best.fun, f(np.zeros(v.size)))


GROUP_REGS = {
    'group_out': rda_optax.group_lasso(0.4, groups='output'),
    'group_in': rda_optax.group_lasso(0.4, groups='input'),
    'sgl': rda_optax.sparse_group_lasso(0.3, 0.4),
    'sgl_in': rda_optax.sparse_group_lasso(0.3, 0.4, groups='input'),
    'tl1_group': rda_optax.transformed_l1(0.3, a=1.0, group_strength=0.3),
}


@pytest.mark.parametrize('name', list(GROUP_REGS))
@pytest.mark.parametrize('shape', [(3, 2), (2, 2, 2, 3)])
@pytest.mark.parametrize('t', [0.5, 2.0])
def test_group_prox_vs_brute_force(name, shape, t):
  reg = GROUP_REGS[name]
  v = RNG.normal(size=shape)
  y = np.asarray(reg.prox(jnp.asarray(v, jnp.float32), t), np.float64)
  got = prox_objective(reg, y, v, t)
  want = _minimize_group(reg, v, t)
  assert got <= want + 1e-4, (got, want)


def test_group_lasso_closed_form_and_zero_groups():
  w = jnp.array([[3.0, 0.1, 0.0], [4.0, 0.1, 1.0]])  # dense (in=2, out=3)
  y = rda_optax.group_lasso(0.5).prox(w, 1.0)
  np.testing.assert_allclose(
      y[:, 0], np.array([3.0, 4.0]) * (1 - 0.5 * math.sqrt(2) / 5), rtol=1e-6
  )
  np.testing.assert_array_equal(y[:, 1], 0)  # Whole output neuron removed.
  # Input groups are rows.
  y_in = rda_optax.group_lasso(0.5, groups='input').prox(w, 1.0)
  norms = np.linalg.norm(np.asarray(w), axis=1)
  np.testing.assert_allclose(
      y_in,
      np.asarray(w) * np.maximum(0, 1 - 0.5 * math.sqrt(3) / norms)[:, None],
      rtol=1e-6,
  )
  # Conv output channels: the last axis.
  k = jnp.asarray(RNG.normal(size=(3, 3, 4, 5)), jnp.float32)
  k = k.at[..., 2].multiply(0.01)
  yk = rda_optax.group_lasso(0.1).prox(k, 1.0)
  assert float(jnp.abs(yk[..., 2]).max()) == 0.0
  assert float(jnp.abs(yk[..., 0]).min()) > 0.0


def test_sparse_group_lasso_is_exact_composition():
  v = jnp.asarray(RNG.normal(size=(6, 4)), jnp.float32)
  sgl = rda_optax.sparse_group_lasso(0.2, 0.3)
  y = sgl.prox(v, 1.0)
  composed = rda_optax.group_lasso(0.3).prox(
      rda_optax.l1(0.2).prox(v, 1.0), 1.0
  )
  np.testing.assert_allclose(y, composed, rtol=1e-6)


def test_tl1_group_search_beats_composition():
  """The composition is only an approximation; the search is never worse."""
  worse = 0
  for seed in range(20):
    v = np.random.default_rng(seed).normal(size=(4, 3))
    exact = rda_optax.transformed_l1(0.4, a=0.5, group_strength=0.3)
    approx = rda_optax.transformed_l1(
        0.4, a=0.5, group_strength=0.3, group_prox='composition'
    )
    fe = prox_objective(
        exact, exact.prox(jnp.asarray(v, jnp.float32), 1.0), v, 1.0
    )
    fa = prox_objective(
        exact, approx.prox(jnp.asarray(v, jnp.float32), 1.0), v, 1.0
    )
    assert fe <= fa + 1e-5
    worse += fa > fe + 1e-4
  assert worse > 0  # The composition really is suboptimal somewhere.


def test_tl1_without_a_group_term_is_the_closed_form(monkeypatch):
  """With no group term (group_strength statically 0, the default) the
  prox is Zhang & Xin's thresholding, once per entry, not the group
  search's 48 (it took 3.8 s of an RMDA step on the ResNet-18-sized tree
  on a CPU, against 66 ms for the closed form); a scheduled group
  strength, which may become positive, keeps the search."""
  v = jnp.asarray(RNG.normal(size=(3, 3, 8, 16)), jnp.float32)
  reg = rda_optax.transformed_l1(0.3, a=0.5)
  assert reg.separable()
  np.testing.assert_allclose(
      reg.prox(v, 0.7),
      rda_optax.regularizers.tl1_threshold(v, 0.7 * 0.3, 0.5),
      rtol=1e-6,
  )
  calls = []
  threshold = rda_optax.regularizers.tl1_threshold

  def counted(*args):
    calls.append(1)
    return threshold(*args)

  monkeypatch.setattr(rda_optax.regularizers, 'tl1_threshold', counted)
  thresholdings = lambda r: (
      calls.clear(),
      jax.make_jaxpr(lambda x: r.prox(x, 0.7))(v),
      len(calls),
  )[-1]
  assert thresholdings(reg) == 1
  scheduled = rda_optax.transformed_l1(
      0.3, a=0.5, group_strength=lambda count: 0.0 * count
  )
  # (Traced once per scan body: the grid's, the refinement's two, the last.)
  assert not scheduled.separable() and thresholdings(scheduled) > 2


def test_tl1_group_search_defaults_match_a_fine_search():
  """24 grid points + 12 golden-section steps: the objective of a 400-point
  grid refined 40 times, to float32 rounding, over varied random groups."""
  rng = np.random.default_rng(0)
  coarse_worst = 0.0
  for trial in range(6):
    n = int(rng.choice([4, 25, 200]))
    scale = float(rng.choice([0.01, 0.1, 1.0]))
    a = float(rng.choice([0.1, 0.5, 1.0, 3.0]))
    v = rng.normal(size=(n, 64)) * scale * rng.uniform(0.2, 2, size=64)
    lam = float(rng.uniform(0.05, 1.0)) * scale
    lam_g = float(rng.uniform(0.0, 1.5)) * scale / math.sqrt(n)
    default = rda_optax.transformed_l1(lam, a=a, group_strength=lam_g)
    fine = dataclasses.replace(
        default, search_points=400, search_refinements=40
    )
    coarse = dataclasses.replace(
        default, search_points=12, search_refinements=8
    )
    x = jnp.asarray(v, jnp.float32)
    f = {
        name: _per_group_objective(reg, np.asarray(reg.prox(x, 1.0)), v)
        for name, reg in (
            ('default', default),
            ('fine', fine),
            ('coarse', coarse),
        )
    }
    rel = lambda g: (g - f['fine']) / np.maximum(np.abs(f['fine']), 1e-12)
    assert rel(f['default']).max() < 1e-6, (trial, rel(f['default']).max())
    coarse_worst = max(coarse_worst, rel(f['coarse']).max())
  # The test can tell: a coarser search does miss.
  assert coarse_worst > 1e-6, coarse_worst
  assert default.search_points + 2 * default.search_refinements == 48


def _per_group_objective(reg, y, v):
  """½‖y − v‖² + λΣρ_a(y) + λ_g√n‖y‖ per output group (column), float64."""
  y, v = np.asarray(y, np.float64), np.asarray(v, np.float64)
  a, n = reg.a, y.shape[0]
  per = 0.5 * (y - v) ** 2 + reg.strength * (a + 1) * np.abs(y) / (
      a + np.abs(y)
  )
  return per.sum(0) + reg.group_strength * math.sqrt(n) * np.linalg.norm(
      y, axis=0
  )


@pytest.mark.parametrize('dtype', [jnp.float32, jnp.bfloat16, jnp.float16])
def test_prox_preserves_dtype(dtype):
  v = jnp.asarray(RNG.normal(size=(3, 3, 2, 4)), dtype)
  for reg in [
      rda_optax.l1(0.1),
      rda_optax.l0(0.1),
      rda_optax.group_lasso(0.1),
      rda_optax.sparse_group_lasso(0.1, 0.1),
      rda_optax.transformed_l1(0.1, group_strength=0.1),
  ]:
    y = jax.jit(reg.prox)(v, 1.0)
    assert y.dtype == dtype
    assert reg.value(v).dtype == jnp.float32


def test_a_zero_is_never_negative_zero():
  """Every prox's zeros are +0.0: a -0.0 (a group zeroed as v·0 where v < 0)
  is a value to save_sparse, which keeps every bit: a bigger file, and no
  N:M layout for an N:M kernel."""
  v = jnp.asarray(RNG.normal(size=(6, 4)) - 0.3, jnp.float32)
  v = v.at[0, 0].set(jnp.nan)  # A NaN stays NaN.
  regs_ = [
      rda_optax.l1(0.5),
      rda_optax.l0(0.5),
      rda_optax.group_lasso(1.0),
      rda_optax.sparse_group_lasso(0.3, 0.6),
      rda_optax.transformed_l1(0.5, group_strength=0.5),
      rda_optax.nm_constraint(2, 4),
      rda_optax.sparsity_constraint(0.6),
  ]
  outs = [reg.prox(v, 1.0) for reg in regs_]
  coupled = rda_optax.coupled_group_lasso(1.0, coupled=[('a', 'b')])
  pair = coupled.prox_tree({'a': v, 'b': -v}, {'a': True, 'b': True}, t=1.0)
  outs += [pair['a'], pair['b']]
  for reg, out in zip(regs_ + ['coupled a', 'coupled b'], outs):
    out = np.asarray(out)
    zeros = out == 0
    assert zeros.any(), reg
    assert not np.signbit(out[zeros]).any(), reg
  assert np.isnan(np.asarray(outs[2])[0, 0])


def test_prox_with_zero_weight_is_identity():
  v = jnp.asarray(RNG.normal(size=(4, 5)), jnp.float32)
  for reg in GROUP_REGS.values():
    np.testing.assert_allclose(reg.prox(v, 0.0), v, rtol=1e-6)
  np.testing.assert_allclose(rda_optax.transformed_l1(1.0).prox(v, 0.0), v)


def test_schedules_are_evaluated_at_count():
  sched = optax.piecewise_constant_schedule(0.1, {5: 10.0})
  reg = rda_optax.l1(sched)
  v = jnp.array([0.5])
  np.testing.assert_allclose(reg.prox(v, 1.0, count=0), [0.4], rtol=1e-6)
  np.testing.assert_allclose(reg.prox(v, 1.0, count=6), [0.0])
  assert float(reg.value(v, count=6)) == pytest.approx(0.5)


def test_a_schedule_gone_negative_or_nan_poisons_the_update():
  """A λ (or momentum) schedule that turns negative would grow the weights
  it should shrink: the update is NaN instead, never silently wrong."""
  neg = optax.linear_schedule(1e-2, -1e-2, transition_steps=4)
  assert float(regs.value_at(neg, 1)) == pytest.approx(5e-3)
  assert np.isnan(regs.value_at(neg, 3))
  assert np.isnan(regs.value_at(lambda n: jnp.float32(jnp.nan), 0))
  params = {'w': jnp.array([[0.5, -0.001]])}
  grads = {'w': jnp.zeros((1, 2))}
  tx = rda_optax.prox_sgd(0.1, rda_optax.l1(neg))
  state = tx.init(params)
  for step in range(4):
    updates, state = tx.update(grads, state, params)
    new = optax.apply_updates(params, updates)
    if step < 3:  # λ = 1e-2, 5e-3, 0: soft thresholding.
      assert np.isfinite(new['w']).all() and float(new['w'][0, 0]) <= 0.5
    else:  # λ = -5e-3.
      assert np.isnan(new['w']).all(), step
  # The same for rmda's momentum (a schedule of the interpolation).
  tx = rda_optax.rmda(0.1, rda_optax.l1(1e-3), momentum=lambda n: -0.5)
  updates, _ = tx.update(grads, tx.init(params), params)
  assert np.isnan(optax.apply_updates(params, updates)['w']).all()


def test_penalty_sums_selected_leaves():
  params = {'k': jnp.array([[1.0, -2.0]]), 'b': jnp.array([5.0])}
  assert float(rda_optax.penalty(params, rda_optax.l1(0.5))) == 1.5
  assert (
      float(
          rda_optax.penalty(
              params, rda_optax.l1(0.5), mask=lambda p: {'k': True, 'b': True}
          )
      )
      == 4.0
  )
  assert float(rda_optax.penalty(params, None)) == 0.0


@pytest.mark.parametrize(
    'make, match',
    [
        (lambda: rda_optax.l1(-1.0), 'strength'),
        (lambda: rda_optax.l0(float('nan')), 'strength'),
        (lambda: rda_optax.group_lasso(0.1, groups='rows'), 'group axis'),
        (lambda: rda_optax.sparse_group_lasso(0.1, -0.1), 'group_strength'),
        (lambda: rda_optax.transformed_l1(0.1, a=0.0), 'a > 0'),
        (lambda: rda_optax.transformed_l1(0.1, a=-2.0), 'a > 0'),
        (
            lambda: rda_optax.transformed_l1(0.1, group_prox='exact'),
            'group_prox',
        ),
    ],
)
def test_invalid_hyperparameters(make, match):
  with pytest.raises(ValueError, match=match):
    make()


def test_regularizers_are_static_for_inject_hyperparams():
  assert not callable(rda_optax.l1(0.1))
  hash(rda_optax.group_lasso(0.1))  # Frozen dataclasses: usable as static.
