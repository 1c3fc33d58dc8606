"""train/methods.py: every method declared once, read by CLI, validation and
the optimizer; adding a method is one entry."""

import dataclasses

import jax
import jax.numpy as jnp
import optax
import pytest

from train import config as config_lib
from train import config_checks
from train import optimizer
from train import methods
from train import train as train_lib


def test_every_option_a_method_reads_is_accepted_and_the_rest_refused():
  for name, method in methods.METHODS.items():
    base = dict(method=name, asr_epochs=0.0, workdir='runs/x')
    if method.from_run:
      base['init_from'] = '.'
    cfg = config_lib.get_config(None, **base)
    # All its own: fine (the target options go with --regularizer sparsity,
    # λ with the others, the N:M options with --nm).
    target = {'target_sparsity', 'target_begin_epoch', 'target_end_epoch'}
    nm_opts = {'nm', 'nm_schedule'}
    config_checks.validate(cfg, set(method.reads) - target - nm_opts)
    if target <= method.reads and name != 'splitting':
      config_checks.validate(
          cfg.replace(regularizer='sparsity'),
          set(method.reads) - {'lam', 'lam2'} - nm_opts,
      )
    if nm_opts <= method.reads and 'regularizer' in method.reads:
      if name != 'splitting':  # Its regularizer is l0 / l1 / tl1.
        config_checks.validate(
            cfg.replace(regularizer='nm', nm='2:4'),
            set(method.reads) - {'lam', 'lam2', 'target_sparsity'},
        )
    elif 'nm' in method.reads:  # The pruning methods: --nm replaces the level.
      config_checks.validate(
          cfg.replace(nm='2:4'),
          set(method.reads) - {'gmp_sparsity', 'prune_sparsity'},
      )
    for option in method.ignores:
      with pytest.raises(
          config_lib.ConfigError,
          match=f'--method {name} does not use --{option}',
      ):
        config_checks.validate(cfg, {option})


def test_schedules_and_asr_follow_the_table():
  assert methods.get('rda').schedules == ('gamma', 'lam')
  assert methods.get('rmda').schedules == ('lr', 'lam')
  assert methods.get('sgd').schedules == ('lr',)
  assert methods.get('ramda').schedules == ('lr', 'lam')
  assert methods.get('adamw').schedules == ('lr',)
  assert {m.name for m in methods.METHODS.values() if m.sparse} == {
      'prox_sgd',
      'rda',
      'rmda',
      'splitting',
      'ramda',
      'prox_adamw',
  }
  assert {m.name for m in methods.METHODS.values() if m.from_run} == {
      'han',
      'han_adamw',
  }
  with pytest.raises(
      ValueError,
      match='Unknown method .adam.. Choose one ' 'of: sgd, prox_sgd',
  ):
    methods.get('adam')


def test_help_lists_each_method_with_its_summary(capsys):
  from train import cli

  with pytest.raises(SystemExit):
    cli.main(['--help'])
  out = ' '.join(capsys.readouterr().out.split())
  for m in methods.METHODS.values():
    assert f'{m.name}: {" ".join(m.summary.split())}' in out


def test_a_new_method_is_one_entry(monkeypatch, tmp_path):
  """A dense Adam method, added to the table only, trains end to end."""

  def build(ctx):
    return optax.adam(ctx.hypers['lr'])

  adam = methods.Method(
      'adam', 'dense Adam', frozenset({'lr', 'lr_schedule'}), build
  )
  monkeypatch.setitem(methods.METHODS, 'adam', adam)
  cfg = config_lib.get_config(
      None,
      method='adam',
      lr=1e-3,
      dataset='synthetic',
      batch_size=16,
      steps_per_epoch=4,
      epochs=1,
      log_every_steps=2,
      progress=False,
      report=False,
      async_checkpointing=False,
      workdir=str(tmp_path / 'run'),
  )
  assert cfg.asr_epochs == 0  # Not sparse: the preset's ASR is dropped.
  config_checks.validate(cfg, {'lr'})
  with pytest.raises(config_lib.ConfigError, match='does not use --lam'):
    config_checks.validate(cfg, {'lam'})
  phases = optimizer.make_phases(cfg, 64)
  tx, hypers = optimizer.create_optimizer(cfg, phases)
  assert set(hypers) == {'lr'}
  from _train_driver import TinyBN

  state = train_lib.train_and_evaluate(cfg, model=TinyBN())
  assert int(state.step) == 4
  assert cfg.effective_init_scale == 0.0


def test_methods_are_frozen_records():
  with pytest.raises(dataclasses.FrozenInstanceError):
    methods.get('rda').sparse = False  # type: ignore[misc]


def test_variable_splitting_trains_and_reports_its_sparse_copy(tmp_path):
  """--method splitting: V (exactly sparse) is evaluated, saved and retrained."""
  import numpy as np
  from _train_driver import TinyBN
  from train import checkpoint as ckpt_lib
  from train import metrics as metrics_lib

  cfg = config_lib.get_config(
      None,
      method='splitting',
      regularizer='l0',
      lam=0.05,
      lam2=1e-3,
      split_optimizer='adam',
      lr=1e-2,
      beta=1.0,
      beta_growth=2.0,
      beta_every_epochs=1,
      dataset='synthetic',
      batch_size=16,
      steps_per_epoch=4,
      epochs=2,
      asr_epochs=1,
      asr_optimizer='sgd',
      asr_lr=0.01,
      log_every_steps=2,
      progress=False,
      report=False,
      async_checkpointing=False,
      workdir=str(tmp_path / 'run'),
  )
  config_checks.validate(cfg, {'method', 'regularizer', 'lam', 'lam2', 'beta'})
  state = train_lib.train_and_evaluate(cfg, model=TinyBN())
  assert int(state.step) == 12
  evals = metrics_lib.read_records(cfg.workdir, 'eval')
  assert [r['phase'] for r in evals] == ['main', 'main', 'asr']
  assert 0 < evals[-1]['sparsity'] < 1
  # The final checkpoint holds V's exact zeros, frozen through ASR.
  final = ckpt_lib.load_variables(cfg.workdir)['params']
  kernels = [np.asarray(p) for p in jax.tree.leaves(final) if np.ndim(p) > 1]
  zeros = sum(int((k == 0).sum()) for k in kernels)
  assert zeros / sum(k.size for k in kernels) == pytest.approx(
      evals[-1]['sparsity'], abs=1e-6
  )
  assert evals[1]['sparsity'] == pytest.approx(evals[-1]['sparsity'])


def test_splitting_refuses_what_it_cannot_use():
  base = dict(method='splitting', asr_epochs=0.0, workdir='runs/x')
  with pytest.raises(config_lib.ConfigError, match='--regularizer l0 | l1'):
    config_checks.validate(
        config_lib.get_config(None, regularizer='group_lasso', **base)
    )
  with pytest.raises(config_lib.ConfigError, match='--beta must be > 0'):
    config_checks.validate(config_lib.get_config(None, beta=0.0, **base))
  with pytest.raises(config_lib.ConfigError, match='--split_optimizer'):
    config_checks.validate(
        config_lib.get_config(None, split_optimizer='lamb', **base)
    )
  with pytest.raises(
      config_lib.ConfigError, match='--method rmda does not use --beta'
  ):
    config_checks.validate(
        config_lib.get_config(None, method='rmda', workdir='runs/x'), {'beta'}
    )


@pytest.mark.parametrize('method', ['prox_sgd', 'rda', 'rmda'])
def test_transformed_l1_with_groups_through_each_proximal_method(method):
  """Paper 003's TL1 + group lasso, by flags, through every proximal method."""
  cfg = config_lib.get_config(
      None,
      method=method,
      regularizer='tl1',
      lam=1e-4,
      lam2=1e-4,
      tl1_a=0.5,
      tl1_group_prox='composition',
      asr_epochs=0.0,
      workdir='runs/x',
  )
  config_checks.validate(cfg, {'regularizer', 'lam', 'lam2'})
  ctx = optimizer.build_context(cfg, {'lam': cfg.lam}, None, 10)
  reg = ctx.regularizer()
  assert (reg.a, reg.group_strength, reg.group_prox) == (
      0.5,
      1e-4,
      'composition',
  )
  optimizer.create_optimizer(cfg, optimizer.make_phases(cfg, 1000))
  with pytest.raises(config_lib.ConfigError, match='tl1_group_prox'):
    config_checks.validate(cfg.replace(tl1_group_prox='exact'))


def test_a_target_sparsity_trains_to_it_exactly_then_retrains(tmp_path):
  """--regularizer sparsity: rmda projected on the Zhu & Gupta ramp reaches
  the target exactly (global ranking), and ASR keeps those zeros."""
  import numpy as np
  from _train_driver import TinyBN
  from train import checkpoint as ckpt_lib
  from train import metrics as metrics_lib

  cfg = config_lib.get_config(
      None,
      method='rmda',
      regularizer='sparsity',
      target_sparsity=0.75,
      target_begin_epoch=0.0,
      target_end_epoch=1.0,
      prune_scope='global',
      lr=0.05,
      dataset='synthetic',
      batch_size=16,
      steps_per_epoch=4,
      epochs=2,
      asr_epochs=1,
      asr_optimizer='sgd',
      asr_lr=0.01,
      log_every_steps=2,
      progress=False,
      report=False,
      async_checkpointing=False,
      workdir=str(tmp_path / 'run'),
  )
  config_checks.validate(
      cfg, {'method', 'regularizer', 'target_sparsity', 'target_end_epoch'}
  )
  state = train_lib.train_and_evaluate(cfg, model=TinyBN())
  assert int(state.step) == 12
  evals = metrics_lib.read_records(cfg.workdir, 'eval')
  assert [r['phase'] for r in evals] == ['main', 'main', 'asr']
  final = ckpt_lib.load_variables(cfg.workdir)['params']
  kernels = [np.asarray(p) for p in jax.tree.leaves(final) if np.ndim(p) > 1]
  n = sum(k.size for k in kernels)
  assert sum(int((k == 0).sum()) for k in kernels) == round(0.75 * n)
  # The ramp's last step (update 4, as gmp's end_step) is the first of
  # epoch 2: the first epoch ends just below the target.
  assert 0.7 < evals[0]['sparsity'] < 0.75
  assert [r['sparsity'] for r in evals[1:]] == pytest.approx(
      [round(0.75 * n) / n] * 2
  )


def test_a_target_sparsity_is_checked():
  base = dict(
      method='rmda',
      regularizer='sparsity',
      workdir='runs/x',
      epochs=10.0,
      asr_epochs=0.0,
  )
  with pytest.raises(
      config_lib.ConfigError, match=r'--target_sparsity must be in \[0, 1\)'
  ):
    config_checks.validate(
        config_lib.get_config(None, target_sparsity=1.0, **base)
    )
  with pytest.raises(config_lib.ConfigError, match='--target_end_epoch'):
    config_checks.validate(
        config_lib.get_config(None, target_end_epoch=12.0, **base)
    )
  with pytest.raises(config_lib.ConfigError, match='makes no zeros to freeze'):
    config_checks.validate(
        config_lib.get_config(
            None, **dict(base, asr_epochs=2.0), target_sparsity=0.0
        )
    )
  with pytest.raises(
      config_lib.ConfigError,
      match='--method sgd does not use --target_sparsity',
  ):
    config_checks.validate(
        config_lib.get_config(None, method='sgd', workdir='runs/x'),
        {'target_sparsity'},
    )
  with pytest.raises(config_lib.ConfigError, match='has no strength'):
    config_checks.validate(config_lib.get_config(None, **base), {'lam'})
  with pytest.raises(
      config_lib.ConfigError, match='add --regularizer sparsity'
  ):
    config_checks.validate(
        config_lib.get_config(None, method='rmda', workdir='runs/x'),
        {'target_sparsity'},
    )
  cfg = config_lib.get_config(None, **base)
  hypers = optimizer.hyper_schedules(cfg, optimizer.make_phases(cfg, 1280))
  assert 'lam' not in hypers  # No λ to log: the ramp is the strength.
  reg = optimizer.build_context(cfg, hypers, None, 10).regularizer()
  assert reg.scope == 'global'
  # The ramp: 0 at the start, the target from 3/4 of the epochs (step 75).
  assert float(reg.sparsity(0)) == 0.0
  assert float(reg.sparsity(75)) == pytest.approx(0.9)


@pytest.mark.parametrize('method', ['ramda', 'prox_adamw'])
def test_group_solver_reaches_the_adaptive_methods(method):
  """--group_solver: Newton's exact solve by default (RAMDA then keeps no
  copy of its prox point), the reference's loop with pgd; refused where no
  method reads it, and for an unknown value."""
  params = {'w': jnp.ones((4, 3)), 'b': jnp.zeros(3)}
  base = dict(
      method=method,
      regularizer='group_lasso',
      lam=1e-3,
      asr_epochs=0.0,
      lr_schedule='constant',
      workdir='runs/x',
  )
  for solver in ('newton', 'pgd'):
    cfg = config_lib.get_config(None, group_solver=solver, **base)
    config_checks.validate(cfg, {'group_solver'})
    ctx = optimizer.build_context(cfg, {'lr': 0.01, 'lam': 1e-3}, None, 10)
    tx = methods.METHODS[method].build(ctx)
    state = jax.eval_shape(tx.init, params)
    if method == 'ramda':
      assert (state.prox_params is None) == (solver == 'newton')
    _, state = tx.update(params, tx.init(params), params)
    assert int(state.inner_steps) >= 1
  with pytest.raises(config_lib.ConfigError, match='group_solver'):
    config_checks.validate(cfg.replace(group_solver='exact'))
  with pytest.raises(
      config_lib.ConfigError, match='--method rmda does not use --group_solver'
  ):
    config_checks.validate(
        config_lib.get_config(None, method='rmda', workdir='runs/x'),
        {'group_solver'},
    )
