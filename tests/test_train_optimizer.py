"""train/optimizer.py: phases, epoch-valued schedules, the run's optimizer
(method, weight decay, ASR) and the hyper-parameters it applies."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from train import config as config_lib
from train import config_checks
from train import optimizer
from train.config import ConfigError


def test_schedules_in_epochs():
  cfg = config_lib.get_config(epochs=10, asr_epochs=0)
  phases = optimizer.make_phases(
      cfg.replace(batch_size=100), 1000
  )  # 10 / epoch
  assert (phases.steps_per_epoch, phases.total_steps) == (10, 100)
  pw = optimizer.make_schedule(0.1, 'piecewise', (3.0, 6.0), (0.1, 0.5), phases)
  assert np.isclose(pw(29), 0.1) and np.isclose(pw(30), 0.01)
  assert np.isclose(pw(60), 0.005)
  cos = optimizer.make_schedule(1.0, 'cosine', (), (), phases)
  assert (
      np.isclose(cos(0), 1.0) and np.isclose(cos(50), 0.5) and cos(100) < 1e-6
  )
  wc = optimizer.make_schedule(
      1.0, 'warmup_cosine', (), (), phases, warmup_epochs=1
  )
  assert np.isclose(wc(0), 0.0) and np.isclose(wc(10), 1.0)
  lin = optimizer.make_schedule(2.0, 'linear', (), (0.5,), phases)
  assert np.isclose(lin(100), 1.0)
  assert optimizer.make_schedule(0.3, 'constant', (), (), phases) == 0.3


def test_phases_and_asr_start():
  cfg = config_lib.get_config(epochs=2, asr_epochs=1, steps_per_epoch=7)
  ph = optimizer.make_phases(cfg, 60000)
  assert (ph.main_steps, ph.asr_steps, ph.total_steps) == (14, 7, 21)
  assert ph.phase(13) == 'main' and ph.phase(14) == 'asr'


@pytest.mark.parametrize(
    'method,regularizer,asr',
    [
        ('sgd', 'none', 0),
        ('prox_sgd', 'l1', 0),
        ('rda', 'l1', 1),
        ('rda', 'group_lasso', 0),
        ('rda', 'sparse_group_lasso', 1),
        ('prox_sgd', 'tl1', 1),
        ('gmp', 'none', 0),
        ('rda', 'l0', 0),
        ('rmda', 'l1', 1),
        ('rmda', 'group_lasso', 0),
    ],
)
def test_create_optimizer(method, regularizer, asr):
  import jax.numpy as jnp
  import optax

  cfg = config_lib.get_config(
      method=method,
      regularizer=regularizer,
      asr_epochs=asr,
      lam=1e-3,
      lam2=1e-3,
      weight_decay=1e-4,
      steps_per_epoch=5,
  )
  config_checks.validate(cfg)
  tx, hypers = optimizer.create_optimizer(cfg, optimizer.make_phases(cfg, 100))
  params = {'k': jnp.ones((3, 4)), 'b': jnp.zeros(4)}
  state = tx.init(params)
  updates, _ = tx.update(jax_tree_ones(params), state, params)
  new = optax.apply_updates(params, updates)
  assert new['k'].shape == (3, 4)
  assert set(hypers) <= {'lr', 'gamma', 'lam', 'asr_lr'}


def jax_tree_ones(tree):
  import jax
  import jax.numpy as jnp

  return jax.tree.map(jnp.ones_like, tree)


def test_epochs_that_round_to_no_sparse_phase_are_refused():
  cfg = config_lib.get_config(epochs=0.001, asr_epochs=1)
  with pytest.raises(ConfigError, match='no sparse phase before ASR'):
    optimizer.make_phases(cfg, 60000)


def _applied(cfg, phases, steps):
  """{step: the hyper-parameters logged after update ``step``}, by running
  the run's optimizer on a tiny tree (zero gradients)."""

  tx, _ = optimizer.create_optimizer(cfg, phases)
  params = {'k': jnp.ones((3, 4))}
  state = tx.init(params)
  update = jax.jit(tx.update)
  zeros = jax.tree.map(jnp.zeros_like, params)
  out = {}
  for step in range(max(steps) + 1):
    _, state = update(zeros, state, params)
    if step in steps:
      by_sgd = phases.phase(step) == 'asr' and cfg.asr_optimizer == 'sgd'
      values = optimizer.applied_hypers(state, by_sgd)
      out[step] = {k: float(v) for k, v in values.items()}
  return out


def test_logged_hyper_parameters_are_the_applied_ones():
  phases = optimizer.Phases(steps_per_epoch=10, main_steps=20, asr_steps=10)
  # ASR by SGD: its own cosine from asr_lr over the ASR phase.
  cfg = config_lib.get_config(
      None,
      method='rmda',
      lr=0.2,
      lr_schedule='cosine',
      lam=1e-3,
      epochs=2,
      asr_epochs=1,
      asr_optimizer='sgd',
      asr_lr=0.03,
      asr_lr_schedule='cosine',
  )
  values = _applied(cfg, phases, (0, 20, 25))
  assert values[0] == {'lr': pytest.approx(0.2), 'lam': pytest.approx(1e-3)}
  assert values[20] == {'lr': pytest.approx(0.03)}
  assert values[25]['lr'] == pytest.approx(0.03 * 0.5 * (1 + np.cos(np.pi / 2)))
  # ASR with the method restarted: its schedules restart with its count.
  same = cfg.replace(asr_optimizer='same', asr_restart=True)
  assert _applied(same, phases, (20,))[20]['lr'] == pytest.approx(0.2)
  # Without the restart the count runs on.
  on = same.replace(asr_restart=False)
  assert _applied(on, phases, (20,))[20]['lr'] == pytest.approx(
      0.2 * 0.5 * (1 + np.cos(np.pi * 20 / 30))
  )
  # RDA's γ and a piecewise λ, and the target sparsity's ramp.
  rda = config_lib.get_config(
      None,
      method='rda',
      gamma=2.0,
      lam=1e-3,
      lam_schedule='piecewise',
      lam_boundaries=(1.0,),
      lam_scales=(0.5,),
      epochs=3,
      asr_epochs=0,
      steps_per_epoch=10,
  )
  values = _applied(rda, optimizer.make_phases(rda, 100), (9, 10))
  assert values[9] == {'gamma': 2.0, 'lam': pytest.approx(1e-3)}
  assert values[10]['lam'] == pytest.approx(5e-4)
  target = cfg.replace(
      regularizer='sparsity',
      target_sparsity=0.9,
      target_begin_epoch=0.0,
      target_end_epoch=1.0,
  )
  values = _applied(target, phases, (0, 10))
  assert values[0]['target_sparsity'] == pytest.approx(0.0)
  assert values[10]['target_sparsity'] == pytest.approx(0.9)


@pytest.mark.parametrize('asr_wd', [0.0, 0.1])
def test_asr_weight_decay_is_the_retraining_sgds(asr_wd):
  # --weight_decay is the main phase's; ASR's SGD decays by
  # --asr_weight_decay only, and its frozen zeros stay zero.
  phases = optimizer.Phases(steps_per_epoch=2, main_steps=2, asr_steps=2)
  cfg = config_lib.get_config(
      None,
      method='rmda',
      regularizer='l1',
      lam=1e-6,
      lr=0.5,
      momentum=0.0,
      epochs=1,
      asr_epochs=1,
      asr_lr=0.5,
      asr_lr_schedule='constant',
      weight_decay=0.3,
      asr_weight_decay=asr_wd,
  )
  config_checks.validate(cfg)
  tx, _ = optimizer.create_optimizer(cfg, phases)
  params = {'k': jnp.array([[0.0, 2.0], [-4.0, 1.0]]), 'b': jnp.ones(2)}
  state = tx.init(params)
  zeros = jax.tree.map(jnp.zeros_like, params)
  for _ in range(phases.main_steps):  # The main phase, zero gradients.
    _, state = tx.update(zeros, state, params)
  updates, _ = tx.update(zeros, state, params)  # ASR's first step.
  np.testing.assert_allclose(
      updates['k'], -0.5 * asr_wd * params['k'], rtol=1e-6
  )
  np.testing.assert_array_equal(updates['b'], 0.0)  # Biases not selected.
