"""train/config_checks.py: the checks of a config that need no JAX (option
values, each table entry's own checks, the run directory)."""

import json

import pytest

from train import cli
from train import config as config_lib
from train import config_checks
from train import methods
from train.config import ConfigError
from _train_driver import run_cli


def test_every_preset_is_valid():
  for name in config_lib.PRESETS:
    cfg = config_lib.get_config(name)
    if methods.get(cfg.method).from_run:  # han, han_adamw
      cfg = cfg.replace(init_from='')
      with pytest.raises(ConfigError, match='init_from'):
        config_checks.validate(cfg)
      continue
    config_checks.validate(cfg)


def test_run_directory_of_another_config(capsys, tmp_path):
  run = tmp_path / 'run'
  cfg = config_lib.get_config(workdir=str(run), dataset='synthetic')
  config_lib.write_config(cfg, str(run / 'config.json'))
  # Same config (and non-semantic changes) pass.
  assert config_checks.check_workdir(cfg.replace(progress=False)) == cfg
  status, err = run_cli(
      ['--workdir', str(run), '--dataset', 'synthetic', '--lam', '0.0123'],
      capsys,
  )
  assert status == 2
  assert 'holds a run of a different config' in err and '--lam' in err
  assert json.loads((run / 'config.json').read_text())['lam'] == cfg.lam


@pytest.mark.parametrize('method', ['sgd', 'gmp', 'han'])
def test_other_methods_run_with_the_default_preset(method, tmp_path):
  """The default preset's ASR phase belongs to its sparse method: choosing
  sgd / gmp / han alone gives a valid config without ASR."""
  argv = ['--method', method, '--workdir', str(tmp_path / 'w')]
  if method == 'han':
    argv += ['--init_from', str(tmp_path)]
  cfg, explicit, _ = cli.parse_config(argv)
  config_checks.validate(cfg, explicit)
  assert cfg.asr_epochs == 0


def test_rmda_flags_and_their_checks():
  cfg, explicit, _ = cli.parse_config(
      [
          '--method',
          'rmda',
          '--lr',
          '0.1',
          '--momentum',
          '0.9',
          '--lam',
          '1e-3',
          '--asr_optimizer',
          'sgd',
          '--asr_lr',
          '0.02',
          '--restart_epochs',
          '4',
      ]
  )
  config_checks.validate(cfg, explicit)
  assert cfg.asr_epochs > 0 and cfg.restart_epochs == (4.0,)
  for argv, match in (
      (['--asr_optimizer', 'adam'], 'asr_optimizer'),
      (['--asr_lr', '0'], 'asr_lr'),
      (['--restart_epochs', '-1'], 'restart_epochs'),
  ):
    cfg, explicit, _ = cli.parse_config(['--method', 'rmda', *argv])
    with pytest.raises(config_lib.ConfigError, match=match):
      config_checks.validate(cfg, explicit)
  cfg, explicit, _ = cli.parse_config(['--method', 'rmda', '--gamma', '2'])
  with pytest.raises(config_lib.ConfigError, match='does not use --gamma'):
    config_checks.validate(cfg, explicit)


def test_checkpoints_without_config_are_refused(tmp_path, capsys):
  run = tmp_path / 'run'
  (run / 'checkpoints' / '4').mkdir(parents=True)
  status, err = run_cli(['--workdir', str(run)], capsys)
  assert status == 2 and 'has checkpoints but no config.json' in err


def test_a_different_config_is_refused_with_a_resume_hint(tmp_path, capsys):
  run = tmp_path / 'run'
  cfg = config_lib.get_config(workdir=str(run), stop_at_step=5)
  config_lib.write_config(cfg, str(run / 'config.json'))
  status, err = run_cli(['--workdir', str(run), '--lam', '1e-3'], capsys)
  assert status == 2 and '--stop_at_step 0' in err
  # The hint works: the stored config with the stop lifted is accepted.
  status, err = run_cli(
      [
          '--config',
          str(run / 'config.json'),
          '--stop_at_step',
          '0',
          '--print_config',
      ],
      capsys,
  )
  assert status == 0


def test_asr_weight_decay_needs_asr_by_sgd():
  cfg = config_lib.get_config(
      None, method='rmda', asr_optimizer='same', asr_weight_decay=1e-4
  )
  with pytest.raises(ConfigError, match='--weight_decay'):
    config_checks.validate(cfg)
  cfg = config_lib.get_config(None, method='rmda', asr_weight_decay=-1.0)
  with pytest.raises(ConfigError, match='asr_weight_decay must be >= 0'):
    config_checks.validate(cfg)
