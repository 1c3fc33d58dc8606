"""The N:M constraint: the projection against brute force, ties, the
fraction of groups, scheduled and injected N, and the optimizers that take
it (the schedules and baselines: test_nm_pruning.py)."""

import functools
import itertools

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import rda_optax
from _optim_helpers import random_grads, random_params, run


def groups_of(x, m, axis):
  """The groups of ``x`` (a NumPy array) as lists of flat indices."""
  idx = np.arange(x.size).reshape(x.shape)
  idx = np.moveaxis(idx, axis, -1).reshape(-1, x.shape[axis])
  return [
      list(row[j : j + m]) for row in idx for j in range(0, x.shape[axis], m)
  ]


def brute_force_cost(x, n, m, axis, weights=None):
  """The least discarded energy ``Σ_dropped w_i x_i²`` of each group over
  every subset of at most ``n`` kept entries."""
  flat = np.asarray(x, np.float64).ravel()
  wts = np.ones_like(flat) if weights is None else np.asarray(weights).ravel()
  costs = []
  for group in groups_of(np.asarray(x), m, axis):
    energy = {i: wts[i] * flat[i] ** 2 for i in group}
    best = min(
        sum(energy.values()) - sum(energy[i] for i in keep)
        for keep in itertools.combinations(group, min(n, len(group)))
    )
    costs.append(best)
  return np.array(costs)


def dropped_cost(x, kept, m, axis, weights=None):
  flat = np.asarray(x, np.float64).ravel()
  wts = np.ones_like(flat) if weights is None else np.asarray(weights).ravel()
  k = np.asarray(kept).ravel()
  return np.array(
      [
          sum(wts[i] * flat[i] ** 2 for i in g if not k[i])
          for g in groups_of(np.asarray(x), m, axis)
      ]
  )


CASES = [
    ((10, 3), 2, 4),  # Dense, in % 4 = 2: a shorter last group.
    ((2, 2, 8, 3), 2, 4),  # Conv: groups along the input channels.
    ((12, 2), 1, 4),
    ((16, 2), 4, 8),
    ((9, 2), 3, 8),
    ((3, 5), 2, 4),  # in < M: one group per column.
    ((64, 2), 2, 32),  # The sort path (M > 16).
]


@pytest.mark.parametrize(
    'shape, n, m, metric',
    [c + (False,) for c in CASES] + [c + (True,) for c in CASES[:3]],
)
def test_projection_is_exact_against_brute_force(shape, n, m, metric):
  rng = np.random.default_rng(sum(shape) + n + m)
  x = rng.normal(size=shape).astype(np.float32)
  weights = (
      rng.uniform(0.1, 3.0, size=shape).astype(np.float32) if metric else None
  )
  c = rda_optax.nm_constraint(n, m)
  metric = None if weights is None else jnp.asarray(weights)
  keep = np.asarray(c.keep_mask(jnp.asarray(x), metric=metric))
  axis = len(shape) - 2
  want = brute_force_cost(x, n, m, axis, weights)
  got = dropped_cost(x, keep, m, axis, weights)
  np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-9)
  # Exactly min(n, group size) kept per group (continuous values: no ties).
  counts = [keep.ravel()[g].sum() for g in groups_of(x, m, axis)]
  assert counts == [min(n, len(g)) for g in groups_of(x, m, axis)]
  proj = np.asarray(c.project(jnp.asarray(x), metric=metric))
  np.testing.assert_array_equal(proj, np.where(keep, x, 0))
  if weights is None:
    np.testing.assert_array_equal(np.asarray(c.prox(jnp.asarray(x), 1.0)), proj)
  assert rda_optax.satisfies_nm(proj, n, m)
  if n < m:
    assert not rda_optax.satisfies_nm(x, n, m)


def test_ties_prune_the_earlier_entries_first():
  x = jnp.array([[1.0, 2.0], [1.0, 2.0], [-1.0, 5.0], [1.0, 2.0]])
  keep = rda_optax.nm_constraint(2, 4).keep_mask(x)
  # Column 0: four equal magnitudes, the last two kept. Column 1: 5 and
  # the last of the three 2s.
  np.testing.assert_array_equal(
      np.asarray(keep),
      [[False, False], [False, False], [True, True], [True, True]],
  )
  # The sort path (M > 16) breaks ties the same way.
  y = jnp.ones((32, 1))
  keep = rda_optax.nm_constraint(3, 32).keep_mask(y)
  np.testing.assert_array_equal(np.flatnonzero(np.asarray(keep)), [29, 30, 31])
  z = jnp.zeros((4, 1))  # Zeros stay zeros whatever is kept.
  np.testing.assert_array_equal(rda_optax.nm_constraint(2, 4).prox(z, 1.0), z)


@pytest.mark.parametrize('metric', [False, True])
@pytest.mark.parametrize('fraction', [0.0, 0.4, 0.5, 1.0])
def test_fraction_of_groups_is_an_exact_projection(fraction, metric):
  """Constraining the round(f·G) cheapest groups minimises the discarded
  energy (in ‖·‖_D with a metric: RAMDA's and proximal AdamW's projection)
  over every choice of round(f·G) groups (brute force)."""
  rng = np.random.default_rng(24)
  x = rng.normal(size=(12, 4)).astype(np.float32)  # 12 groups of 4.
  # With the metric, ranking the groups by Σ(d·x²)² instead of Σd·x² picks
  # other groups here at f = 0.4 and 0.5.
  weights = np.exp(rng.uniform(-2, 2, size=x.shape)).astype(np.float32)
  weights = weights if metric else None
  c = rda_optax.nm_constraint(2, 4, fraction=fraction)
  keep = np.asarray(
      c.keep_mask(jnp.asarray(x), metric=None if weights is None else weights)
  )
  costs = brute_force_cost(x, 2, 4, 0, weights)
  k = int(round(fraction * 12))
  best = min(
      (sum(costs[list(s)]) for s in itertools.combinations(range(12), k)),
      default=0.0,
  )
  got = dropped_cost(x, keep, 4, 0, weights)
  assert got.sum() == pytest.approx(best, rel=1e-6, abs=1e-12)
  assert int((got > 0).sum()) == k  # Exactly k groups constrained.
  assert rda_optax.nm_violations(np.where(keep, x, 0), 2, 4) == 12 - k


def test_fraction_on_a_large_leaf_takes_the_first_k_of_a_stable_argsort():
  """Above the size the search sorts (2,048 groups), the constrained groups
  are still exactly the first round(f·G) of a stable argsort of the groups'
  costs (NumPy's, here), with the fraction traced (a schedule's value):
  repeated costs tie by position, and the groups already N:M (their
  dropped entries pruned before, score -1) come first. The ends of a ramp
  (f = 0, f = 1) constrain no group and every group."""
  rng = np.random.default_rng(7)
  # 512 x 64 along axis 0: 128 groups per column, 8,192 groups.
  x = rng.normal(size=(512, 64)).astype(np.float32)
  x[:64] = x[64:128]  # Columns' first 16 groups repeat the next 16: ties.
  scores = np.abs(x)
  scores[256:260, :8] = -1.0  # Two entries pruned before in these groups:
  scores[256:258, :8] = 0.5  # the groups are N:M, their cost is -1.
  fraction = jax.jit(lambda s, f: rda_optax.nm_groups._keep_mask(s, 2, 4, 0, f))
  groups = scores.reshape(128, 4, 64)  # (group, entry, column)
  top2 = -np.sort(-groups, axis=1)[:, 2:, :]
  cost = np.sum(np.square(np.maximum(top2, 0)), axis=1)
  cost[64:65, :8] = -1.0
  order = np.argsort(cost.ravel(), kind='stable')
  ranked = cost.ravel()[order]
  # A share whose last constrained group ties with the first free one.
  ties = np.flatnonzero(ranked[1:] == ranked[:-1])
  tie = int(ties[len(ties) // 2]) + 1
  assert ranked[tie - 1] == ranked[tie]
  for f in (0.0, 0.3, tie / cost.size, 0.5, 1.0):
    keep = np.asarray(fraction(jnp.asarray(scores), jnp.float32(f)))
    k = int(np.round(np.float32(f) * np.float32(cost.size)))
    chosen = np.zeros(cost.size, bool)
    chosen[order[:k]] = True
    # A group is held to 2:4 exactly where it was chosen.
    held = keep.reshape(128, 4, 64).sum(axis=1) <= 2
    np.testing.assert_array_equal(held.ravel(), chosen)
    assert int(held.sum()) == k


def test_a_scheduled_n_is_traced_under_jit():
  x = jnp.asarray(np.random.default_rng(0).normal(size=(8, 4)), jnp.float32)
  sched = functools.partial(
      rda_optax.nm_n_schedule, n=1, m=4, begin_step=0, end_step=10
  )
  c = rda_optax.nm_constraint(sched, 4)
  prox = jax.jit(lambda x, count: c.prox(x, 1.0, count))
  assert rda_optax.satisfies_nm(prox(x, 0), 4, 4)
  assert not rda_optax.satisfies_nm(prox(x, 0), 3, 4)
  assert rda_optax.satisfies_nm(prox(x, 10), 1, 4)


def test_an_injected_n_is_a_concrete_int_array_at_init():
  """optax.inject_hyperparams evaluates a schedule of n outside jit at
  init: the factory gets a concrete int32 array, which must be taken (and
  checked) like an int."""
  x = jnp.asarray(np.random.default_rng(0).normal(size=(8, 4)), jnp.float32)
  sched = functools.partial(
      rda_optax.nm_n_schedule, n=2, m=4, begin_step=0, end_step=2
  )
  opt = optax.inject_hyperparams(
      lambda n: rda_optax.rmda(0.1, rda_optax.nm_constraint(n, 4), momentum=0.0)
  )(n=sched)
  params = {'w': x}
  state = opt.init(params)
  assert state.hyperparams['n'].dtype == jnp.int32
  for _ in range(3):
    updates, state = opt.update({'w': jnp.ones_like(x)}, state, params)
    params = optax.apply_updates(params, updates)
  assert rda_optax.satisfies_nm(params['w'], 2, 4)
  assert int(state.hyperparams['n']) == 2
  with pytest.raises(ValueError, match='in \\[0, m\\]'):
    rda_optax.nm_constraint(jnp.asarray(5, jnp.int32), 4)
  with pytest.raises(ValueError, match='as an int'):
    rda_optax.nm_constraint(jnp.asarray(2.0), 4)


def reaches_pattern(tree, n, m, keys=('conv', 'dense')):
  return all(rda_optax.satisfies_nm(tree[k], n, m) for k in keys)


@pytest.mark.parametrize(
    'make',
    [
        lambda r: rda_optax.rmda(0.05, r, momentum=0.9),
        lambda r: rda_optax.ramda(0.05, r, momentum=0.9),
        lambda r: rda_optax.prox_sgd(0.05, r, momentum=0.9),
        lambda r: rda_optax.rda(1.0, r),
        lambda r: rda_optax.asr(rda_optax.rmda(0.05, r), start_step=3),
    ],
    ids=['rmda', 'ramda', 'prox_sgd', 'rda', 'asr_rmda'],
)
def test_every_proximal_method_takes_it(make):
  params, grads = random_params(), random_grads(6)
  traj, state = run(make(rda_optax.nm_constraint(2, 4)), params, grads)
  sparse = rda_optax.sparse_params(state, traj[-1])
  assert reaches_pattern(sparse, 2, 4)
  assert (np.asarray(sparse['bias']) != 0).all()  # Not selected.
  # Exactly 2 of every 4: the dense (6, 5) kernel keeps 2 of its first 4
  # inputs and its last 2 (a short group); the conv (3, 3, 2, 4) has 2
  # input channels, one short group that 2:4 leaves whole.
  assert int((np.asarray(sparse['dense']) != 0).sum()) == 20
  assert int((np.asarray(sparse['conv']) != 0).sum()) == 72


def test_a_gradual_constraint_with_rmda():
  params, grads = random_params(), random_grads(12)
  n = functools.partial(
      rda_optax.nm_n_schedule, n=1, m=4, begin_step=2, end_step=8, frequency=2
  )
  traj, state = run(
      rda_optax.rmda(0.05, rda_optax.nm_constraint(n, 4), momentum=0.0),
      params,
      grads,
  )
  assert not reaches_pattern(traj[1], 3, 4)  # Dense before begin_step.
  assert reaches_pattern(traj[-1], 1, 4)


@pytest.mark.parametrize(
    'make, match',
    [
        (lambda: rda_optax.nm_constraint(3, 2), 'in \\[0, m\\]'),
        (lambda: rda_optax.nm_constraint(2, 0), 'group size m'),
        (lambda: rda_optax.nm_constraint(2.0, 4), 'as an int'),
        (lambda: rda_optax.nm_constraint(2, 4, fraction=1.5), 'fraction'),
        (lambda: rda_optax.nm_constraint(2, 4, axis='output'), 'axis'),
    ],
)
def test_invalid_arguments(make, match):
  with pytest.raises(ValueError, match=match):
    make()
