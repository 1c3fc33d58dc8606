"""N:M schedules and magnitude baselines: the schedules of N and of the
fraction of groups, gradual and one-shot N:M pruning, and the pattern check
(nm_violations, satisfies_nm) along the axes."""

import jax.numpy as jnp
import numpy as np
import optax
import pytest

import rda_optax
from rda_optax import nm as nm_lib
from _optim_helpers import random_grads, random_params, run


def reaches_pattern(tree, n, m, keys=('conv', 'dense')):
  return all(rda_optax.satisfies_nm(tree[k], n, m) for k in keys)


def test_schedules():
  kw = dict(begin_step=100, end_step=1100, frequency=100)
  n = [
      int(rda_optax.nm_n_schedule(t, n=2, m=4, **kw))
      for t in range(0, 1300, 50)
  ]
  assert n[0] == 4 and n[-1] == 2 and n == sorted(n, reverse=True)
  assert set(n) == {2, 3, 4}
  assert [
      int(rda_optax.nm_n_schedule(t, n=1, m=8, **kw)) for t in (0, 1100)
  ] == [8, 1]
  f = [
      float(rda_optax.nm_fraction_schedule(t, **kw)) for t in range(0, 1300, 50)
  ]
  assert f[0] == 0.0 and f[-1] == 1.0 and f == sorted(f)
  # Constant between mask updates.
  assert float(rda_optax.nm_fraction_schedule(150, **kw)) == float(
      rda_optax.nm_fraction_schedule(100, **kw)
  )


@pytest.mark.parametrize('schedule', ['n', 'fraction'])
def test_gradual_nm_pruning(schedule):
  params, grads = random_params(), random_grads(14)
  tx = optax.chain(
      optax.sgd(0.05, momentum=0.9),
      rda_optax.gradual_nm_pruning(
          2, 4, begin_step=2, end_step=10, frequency=2, schedule=schedule
      ),
  )
  traj, state = run(tx, params, grads)
  assert not (traj[1]['dense'] == 0).any()
  zeros = [int((t['dense'] == 0).sum()) for t in traj]
  assert zeros == sorted(zeros)  # The pruned set only grows,
  for a, b in zip(traj, traj[1:]):  # and pruned weights stay exactly 0.
    assert (b['dense'][a['dense'] == 0] == 0).all()
  assert 0 < zeros[5] < 10  # Partly pruned mid-way.
  for t in traj[10:]:
    assert reaches_pattern(t, 2, 4)
  assert zeros[-1] == 10
  assert (traj[-1]['bias'] != 0).all()
  np.testing.assert_array_equal(
      np.asarray(state[1].masks['dense']), traj[-1]['dense'] != 0
  )


def test_one_shot_then_fine_tuning_with_frozen_masks():
  params, grads = random_params(), random_grads(5)
  masks = rda_optax.nm_masks(params, 2, 4)
  pruned = rda_optax.apply_masks(params, masks)
  assert reaches_pattern(pruned, 2, 4)
  np.testing.assert_array_equal(np.asarray(masks['bias']), True)
  traj, _ = run(rda_optax.asr(optax.adamw(1e-2)), pruned, grads)
  for t in traj:
    assert reaches_pattern(t, 2, 4)
    np.testing.assert_array_equal(t['dense'] != 0, np.asarray(masks['dense']))
  # The same through gradual_nm_pruning in one shot at the first update.
  tx = optax.chain(
      optax.adamw(1e-2),
      rda_optax.gradual_nm_pruning(2, 4, begin_step=0, end_step=0, frequency=1),
  )
  traj, _ = run(tx, params, grads)
  first = traj[0]['dense'] != 0
  for t in traj:
    np.testing.assert_array_equal(t['dense'] != 0, first)


def test_violations_and_axes():
  w = np.zeros((6, 2))
  w[:3, 0] = 1.0  # 3 nonzeros in the first group of column 0.
  w[4:6, 1] = 1.0  # 2 in the short last group of column 1.
  assert rda_optax.nm_violations(w, 2, 4) == 1
  assert rda_optax.nm_violations(w, 3, 4) == 0
  assert rda_optax.nm_violations(w, 1, 4) == 2
  assert rda_optax.satisfies_nm(w.T, 2, 4, axis=1) is False
  assert (
      nm_lib.group_axis(4, 'input') == 2 and nm_lib.group_axis(1, 'input') == 0
  )
  c = rda_optax.nm_constraint(1, 2, axis=1)
  np.testing.assert_array_equal(
      np.asarray(c.prox(jnp.array([[1.0, -3.0]]), 1.0)), [[0.0, -3.0]]
  )


@pytest.mark.parametrize(
    'make, match',
    [
        (
            lambda: rda_optax.gradual_nm_pruning(
                2, 4, begin_step=5, end_step=1, frequency=1
            ),
            'must not exceed',
        ),
        (
            lambda: rda_optax.gradual_nm_pruning(
                2, 4, begin_step=0, end_step=1, frequency=1, schedule='cubic'
            ),
            'schedule',
        ),
    ],
)
def test_invalid_arguments(make, match):
  with pytest.raises(ValueError, match=match):
    make()
