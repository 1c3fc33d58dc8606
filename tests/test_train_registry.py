"""train.registry: every method declared once, read by CLI, validation and
the optimizer; adding a method is one entry."""

import dataclasses

import optax
import pytest

from train import config as config_lib
from train import methods
from train import registry
from train import train as train_lib


def test_every_option_a_method_reads_is_accepted_and_the_rest_refused():
  for name, method in registry.METHODS.items():
    base = dict(method=name, asr_epochs=0.0, workdir='runs/x')
    if method.from_run:
      base['init_from'] = '.'
    cfg = config_lib.get_config(None, **base)
    config_lib.validate(cfg, set(method.reads))  # All its own: fine.
    for option in method.ignores:
      with pytest.raises(config_lib.ConfigError,
                         match=f'--method {name} does not use --{option}'):
        config_lib.validate(cfg, {option})


def test_schedules_and_asr_follow_the_table():
  assert registry.get('rda').schedules == ('gamma', 'lam')
  assert registry.get('rmda').schedules == ('lr', 'lam')
  assert registry.get('sgd').schedules == ('lr',)
  assert {m.name for m in registry.METHODS.values() if m.sparse} == {
      'prox_sgd', 'rda', 'rmda'}
  with pytest.raises(ValueError, match='Unknown method .adamw.. Choose one '
                     'of: sgd, prox_sgd'):
    registry.get('adamw')


def test_help_lists_each_method_with_its_summary(capsys):
  from train import cli
  with pytest.raises(SystemExit):
    cli.main(['--help'])
  out = ' '.join(capsys.readouterr().out.split())
  for m in registry.METHODS.values():
    assert f'{m.name}: {" ".join(m.summary.split())}' in out


def test_a_new_method_is_one_entry(monkeypatch, tmp_path):
  """A dense Adam method, added to the table only, trains end to end."""
  def build(ctx):
    return optax.adam(ctx.hypers['lr'])
  adam = registry.Method('adam', 'dense Adam', frozenset({'lr',
                                                          'lr_schedule'}),
                         build)
  monkeypatch.setitem(registry.METHODS, 'adam', adam)
  cfg = config_lib.get_config(
      None, method='adam', lr=1e-3, dataset='synthetic', batch_size=16,
      steps_per_epoch=4, epochs=1, log_every_steps=2, progress=False,
      report=False, async_checkpointing=False, workdir=str(tmp_path / 'run'))
  assert cfg.asr_epochs == 0  # Not sparse: the preset's ASR is dropped.
  config_lib.validate(cfg, {'lr'})
  with pytest.raises(config_lib.ConfigError, match='does not use --lam'):
    config_lib.validate(cfg, {'lam'})
  phases = methods.make_phases(cfg, 64)
  tx, hypers = methods.create_optimizer(cfg, phases)
  assert set(hypers) == {'lr'}
  from _train_driver import TinyBN
  state = train_lib.train_and_evaluate(cfg, model=TinyBN())
  assert int(state.step) == 4
  assert cfg.effective_init_scale == 0.0


def test_methods_are_frozen_records():
  with pytest.raises(dataclasses.FrozenInstanceError):
    registry.get('rda').sparse = False  # type: ignore[misc]
