"""train/regularizers.py: every regularizer declared once (builder, options,
exact zeros, checks, what its schedule drives), read by validation, the
optimizer, --method splitting and the help; adding one is one entry."""

import dataclasses
import re

import pytest

import rda_optax
from train import cli
from train import config as config_lib
from train import config_checks
from train import optimizer
from train import regularizers

BUILT = {
    'none': type(None),
    'l1': rda_optax.L1,
    'l0': rda_optax.L0,
    'group_lasso': rda_optax.GroupLasso,
    'sparse_group_lasso': rda_optax.SparseGroupLasso,
    'tl1': rda_optax.TransformedL1,
    'sparsity': rda_optax.SparsityConstraint,
    'nm': rda_optax.NMConstraint,
}


def _cfg(name, **fields):
  return config_lib.get_config(
      None,
      method='rmda',
      regularizer=name,
      lam=1e-3,
      lam2=1e-3 if name == 'sparse_group_lasso' else 0.0,
      nm='2:4' if name == 'nm' else '',
      asr_epochs=0.0,
      workdir='runs/x',
      **fields,
  )


def test_the_table_is_every_regularizer():
  assert set(regularizers.REGULARIZERS) == set(BUILT)
  with pytest.raises(ValueError, match="Unknown regularizer 'l3'. Choose"):
    regularizers.get('l3')


@pytest.mark.parametrize('name', list(BUILT))
def test_each_entry_builds_what_it_declares(name):
  reg = regularizers.get(name)
  cfg = _cfg(name)
  config_checks.validate(cfg)
  hypers = optimizer.hyper_schedules(cfg, optimizer.make_phases(cfg, 1280))
  # Its schedule drives λ, or (sparsity, nm) the constraint's ramp instead.
  assert reg.driven(cfg) in hypers
  assert ('lam' in hypers) == (reg.driven(cfg) == 'lam')
  built = optimizer.build_context(cfg, hypers, None, 10).regularizer()
  assert type(built) is BUILT[name]  # pylint: disable=unidiomatic-typecheck
  # Exact zeros (so ASR may follow) with a positive strength only.
  assert reg.makes_zeros(cfg) == (name != 'none')
  off = cfg.replace(lam=0.0, lam2=0.0, target_sparsity=0.0, nm='')
  assert not reg.makes_zeros(off)
  if name != 'none':
    with pytest.raises(config_lib.ConfigError, match='makes no zeros'):
      config_checks.validate(off.replace(asr_epochs=1.0))


def test_the_constraint_drives_its_ramp_not_lambda():
  cfg = _cfg('sparsity', target_sparsity=0.8, target_end_epoch=2.0)
  ramp = regularizers.get('sparsity').schedule(cfg, 10, rda_optax)
  assert float(ramp(0)) == 0.0 and float(ramp(20)) == pytest.approx(0.8)
  assert 0 < float(ramp(10)) < 0.8


@pytest.mark.parametrize('schedule', ['n', 'fraction'])
def test_n_m_drives_n_or_the_share_of_groups_along_its_ramp(schedule):
  cfg = _cfg('nm', nm_schedule=schedule, target_end_epoch=2.0)
  reg = regularizers.get('nm')
  assert reg.driven(cfg) == {'n': 'nm_n', 'fraction': 'nm_fraction'}[schedule]
  ramp = reg.schedule(cfg, 10, rda_optax)
  start, end = {'n': (4, 2), 'fraction': (0.0, 1.0)}[schedule]
  assert float(ramp(0)) == start and float(ramp(20)) == end
  assert min(start, end) <= float(ramp(10)) <= max(start, end)
  hypers = optimizer.hyper_schedules(cfg, optimizer.make_phases(cfg, 1280))
  values = {k: v(20) for k, v in hypers.items() if callable(v)}
  built = optimizer.build_context(cfg, values, None, 10).regularizer()
  assert isinstance(built, rda_optax.NMConstraint)


def test_splitting_takes_the_entries_with_an_elementwise_penalty():
  assert regularizers.splittable() == ('l1', 'l0', 'tl1')
  for name in BUILT:
    cfg = _cfg(name).replace(method='splitting')
    if name in regularizers.splittable():
      config_checks.validate(cfg)
      optimizer.create_optimizer(cfg, optimizer.make_phases(cfg, 1280))
    else:
      with pytest.raises(
          config_lib.ConfigError,
          match=re.escape('(--regularizer l1 | l0 | tl1), not'),
      ):
        config_checks.validate(cfg)


def test_a_regularizer_checks_only_with_a_method_that_reads_it():
  # sgd reads no regularizer: the preset's sparsity target is not its.
  cfg = config_lib.get_config(
      'mnist_lenet300_target', method='sgd', epochs=4, workdir='runs/x'
  )
  config_checks.validate(cfg)
  with pytest.raises(config_lib.ConfigError, match='--target_end_epoch'):
    config_checks.validate(cfg.replace(method='rmda'))


def test_a_new_regularizer_is_one_entry(monkeypatch):
  """Half-strength ℓ1, added to the table only: a choice, in the help,
  built by every method that reads a regularizer, and by splitting."""
  half = regularizers.Regularizer(
      'half_l1',
      'ℓ1 at half the strength',
      lambda ctx: ctx.rda_optax.l1(ctx.hypers['lam'] / 2),
      frozenset({'lam'}),
      split=lambda ctx: ctx.rda_optax.l1(ctx.hypers['lam'] / 2),
  )
  monkeypatch.setitem(regularizers.REGULARIZERS, 'half_l1', half)
  text = ' '.join(cli.build_parser().format_help().split())
  assert 'half_l1: ℓ1 at half the strength' in text
  for method in ('prox_sgd', 'rda', 'rmda', 'splitting'):
    cfg = _cfg('half_l1').replace(method=method)
    config_checks.validate(cfg, {'regularizer', 'lam'})
    hypers = optimizer.hyper_schedules(cfg, optimizer.make_phases(cfg, 1280))
    reg = optimizer.build_context(cfg, hypers, None, 10).regularizer()
    assert reg.strength == pytest.approx(cfg.lam / 2)
    optimizer.create_optimizer(cfg, optimizer.make_phases(cfg, 1280))


def test_entries_are_frozen_records():
  with pytest.raises(dataclasses.FrozenInstanceError):
    regularizers.get('l1').drives = 'x'  # type: ignore[misc]
