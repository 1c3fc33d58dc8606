"""Config, presets, schedules and bad-input errors of `python -m train`.

Fast: nothing here compiles a model (runs the CLI in-process up to the
checks that precede any work).
"""

import json
import os

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from train import cli
from train import config as config_lib
from train import config_checks
from train import optimizer
from train.config import ConfigError

PAPER_S = {  # Paper 002, Table 3.
    'cifar10_resnet18': 10,
    'cifar10_vgg16': 20,
    'cifar10_vgg19': 10,
    'cifar100_resnet18': 2,
    'cifar100_vgg16': 60,
    'cifar100_vgg19': 40,
    'imagenet_resnet18': 2,
}


def test_every_preset_is_valid():
  from train import methods

  for name in config_lib.PRESETS:
    cfg = config_lib.get_config(name)
    if methods.get(cfg.method).from_run:
      cfg = cfg.replace(init_from='')
      with pytest.raises(ConfigError, match='init_from'):
        config_checks.validate(cfg)
      continue
    config_checks.validate(cfg)


def test_paper_presets():
  for name, s in PAPER_S.items():
    cfg = config_lib.get_config(name)
    assert cfg.init_scale == s and cfg.effective_init_scale == s, name
    assert cfg.batch_size == 128 and cfg.method == 'rda', name
    assert cfg.asr_epochs > 0, name
  assert config_lib.get_config('mnist_lenet5').model == 'lenet5'
  # RDA's init applies to rda only (the paper initialises Prox-SGD like SGD).
  sgd = config_lib.get_config('cifar10_resnet18', method='sgd')
  assert sgd.effective_init_scale == 0
  assert (
      config_lib.get_config(method='rda', init_scale=0).effective_init_scale
      == 2
  )


def test_transformer_presets():
  """The GPT's presets share one budget (1 epoch) and reach 75% or 2:4;
  the ViT's train on the CIFAR-10 JPEG copy."""
  names = [n for n in config_lib.PRESETS if n.startswith('shakespeare_gpt_')]
  assert {n.removeprefix('shakespeare_gpt_') for n in names} >= {
      'adamw',
      'ramda',
      'ramda_target',
      'rmda',
      'prox_adamw',
      'gmp_adamw',
      'han_adamw',
      'ramda_2_4',
      'rmda_2_4',
      'prox_adamw_2_4',
      'gmp_adamw_2_4',
      'han_adamw_2_4',
  }
  for name in names:
    cfg = config_lib.get_config(name)
    assert (cfg.model, cfg.dataset, cfg.context) == (
        'gpt_char',
        'shakespeare_char',
        128,
    )
    # Han fine-tunes a 0.75-epoch dense run: 1 epoch in all.
    assert cfg.epochs == (0.25 if cfg.method == 'han_adamw' else 1.0), name
    assert cfg.asr_epochs == 0
    if name.endswith('_2_4'):
      assert cfg.nm == '2:4', name
      if cfg.method in ('ramda', 'rmda', 'prox_adamw'):
        assert cfg.regularizer == 'nm', name
    elif cfg.method in ('ramda', 'rmda', 'prox_adamw') and name != (
        'shakespeare_gpt_ramda'
    ):
      assert cfg.target_sparsity == 0.75 and cfg.regularizer == 'sparsity'
  for name in [n for n in config_lib.PRESETS if n.startswith('cifar10_vit_')]:
    cfg = config_lib.get_config(name)
    assert (cfg.model, cfg.dataset) == ('vit_cifar', 'cifar10_jpg'), name
  assert optimizer.selection(config_lib.get_config('cifar10_vit_adamw')) is (
      __import__('models').kernel_mask
  )
  assert optimizer.selection(config_lib.get_config()) is None


def test_default_is_short_mnist_rmda_asr():
  cfg = config_lib.get_config()
  assert cfg.model in ('lenet5', 'lenet300_100')
  assert (cfg.dataset, cfg.method) == ('mnist', 'rmda')
  assert cfg.asr_optimizer == 'sgd'
  assert 0 < cfg.epochs <= 10 and 0 < cfg.asr_epochs <= 5
  assert cfg.lam > 0


def test_cli_overrides_and_types():
  cfg, explicit, _ = cli.parse_config(
      [
          '--model',
          'resnet18',
          '--dataset',
          'cifar10',
          '--method',
          'rda',
          '--asr_epochs',
          '2',
          '--lam',
          '1e-6',
          '--gamma',
          '1.0',
          '--init_scale',
          '10',
          '--epochs',
          '10',
          '--batch_size',
          '128',
          '--regularizer',
          'l1',
          '--workdir',
          'runs/x',
          '--no-progress',
          '--lam_schedule',
          'piecewise',
          '--lam_boundaries',
          '5,8',
          '--lam_scales',
          '2,0.5',
      ]
  )
  assert cfg.model == 'resnet18' and cfg.asr_epochs == 2.0
  assert cfg.lam == 1e-6 and cfg.batch_size == 128 and cfg.progress is False
  assert cfg.lam_boundaries == (5.0, 8.0) and cfg.lam_scales == (2.0, 0.5)
  assert {'model', 'lam', 'progress'} <= explicit
  config_checks.validate(cfg, explicit)


def test_config_json_round_trip(tmp_path):
  cfg = config_lib.get_config(
      'cifar10_resnet18',
      lr_boundaries=(1.0, 2.0),
      lr_scales=(0.1, 0.1),
      lr_schedule='piecewise',
  )
  path = tmp_path / 'config.json'
  config_lib.write_config(cfg, str(path))
  assert config_lib.load_config(str(path)) == cfg
  assert config_lib.load_config(str(tmp_path)) == cfg
  cfg2, _, _ = cli.parse_config(['--config', str(path), '--epochs', '3'])
  assert cfg2 == cfg.replace(epochs=3.0)


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


def test_leaf_selection():
  params = {
      'Conv_0': {'kernel': np.ones((3, 3, 1, 2)), 'bias': np.ones(2)},
      'Dense_0': {'kernel': np.ones((4, 2)), 'bias': np.ones(2)},
  }
  assert optimizer.leaf_mask('kernels') is None
  conv = optimizer.leaf_mask('conv')(params)
  assert conv['Conv_0']['kernel'] and not conv['Dense_0']['kernel']
  dense = optimizer.leaf_mask('dense')(params)
  assert dense['Dense_0']['kernel'] and not dense['Conv_0']['kernel']
  rx = optimizer.leaf_mask('Dense_0/kernel')(params)
  assert rx['Dense_0']['kernel'] and not rx['Conv_0']['kernel']
  with pytest.raises(ConfigError, match='regular expression'):
    optimizer.leaf_mask('([')


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


# ---------------------------------------------------------------------------
# Bad input: clear errors, exit status 2, before any work.
# ---------------------------------------------------------------------------


def run_cli(argv, capsys):
  status = cli.main(argv)
  err = capsys.readouterr().err
  return status, err


@pytest.mark.parametrize(
    'argv,message',
    [
        (['--preset', 'nope'], "Unknown preset 'nope'"),
        (['--method', 'adam'], "Unknown method 'adam'"),
        (['--regularizer', 'l3'], "Unknown regularizer 'l3'"),
        (['--lr_schedule', 'step'], "Unknown lr_schedule 'step'"),
        (['--epochs', 'ten'], "--epochs: cannot read 'ten'"),
        (['--method', 'sgd', '--asr_epochs', '1'], 'ASR'),
        (['--epochs', '0', '--asr_epochs', '1'], 'ASR without a sparse phase'),
        (['--lam', '0', '--asr_epochs', '1'], 'makes no zeros to freeze'),
        (['--method', 'han', '--asr_epochs', '0'], '--init_from'),
        (
            ['--method', 'sgd', '--asr_epochs', '0', '--gamma', '2'],
            'does not use --gamma',
        ),
        (
            ['--method', 'prox_sgd', '--init_scale', '5'],
            'does not use --init_scale',
        ),
        (['--lr_schedule', 'piecewise', '--method', 'prox_sgd'], 'piecewise'),
        (
            ['--method', 'sgd', '--asr_epochs', '0', '--scale_lam', '0.1'],
            'does not use --scale_lam',
        ),
        (['--scale_lam', '-1'], '--scale_lam must be >= 0'),
        (['--scale_lam', '1e-3'], 'this model has none'),  # LeNet-300-100
        (
            ['--scale_lam', '1e-3', '--scale_penalty', 'channel'],
            'this model has none',
        ),
        (
            ['--scale_penalty', 'l2'],
            '--scale_penalty must be one of l1, channel',
        ),
        (['--keep_checkpoints', '1'], 'keep_checkpoints'),
        (['--batch_size', '0'], 'batch_size'),
        (['--num_processes', '2'], 'Multi-host'),
        (['--method', 'rda', '--gamma', 'nan'], '--gamma must be a finite'),
        (['--lam', 'inf'], '--lam must be a finite'),
        (['--lam2', 'nan'], '--lam2 must be a finite'),
        (['--init_scale', 'nan'], '--init_scale must be a finite'),
        (['--tl1_a', 'nan'], '--tl1_a must be a finite'),
        (['--epochs', 'inf'], '--epochs must be a finite'),
        (
            [
                '--lr_schedule',
                'piecewise',
                '--lr_boundaries',
                '1,nan',
                '--lr_scales',
                '0.1,0.1',
            ],
            '--lr_boundaries must be a finite',
        ),
        # N:M and the transformer methods.
        (['--regularizer', 'nm'], '--regularizer nm needs the pattern'),
        (['--regularizer', 'nm', '--nm', '4:4'], '--nm must be N:M'),
        (['--regularizer', 'nm', '--nm', 'two:four'], '--nm must be N:M'),
        (
            ['--regularizer', 'nm', '--nm', '2:4', '--lam', '1e-3'],
            'no strength: drop --lam',
        ),
        (['--nm', '2:4'], 'add --regularizer nm'),
        (
            ['--regularizer', 'nm', '--nm', '2:4', '--nm_schedule', 'cubic'],
            '--nm_schedule must be one of n, fraction',
        ),
        (
            ['--regularizer', 'nm', '--nm', '2:4', '--target_end_epoch', '9'],
            '--target_end_epoch (9) <= --epochs (8)',
        ),
        (
            ['--method', 'gmp', '--asr_epochs', '0', '--nm', '2:4']
            + [
                '--gmp_sparsity',
                '0.5',
            ],
            'which replaces --gmp_sparsity',
        ),
        (
            ['--method', 'sgd', '--asr_epochs', '0', '--nm', '2:4'],
            'does not use --nm',
        ),
        (['--method', 'adamw', '--lam', '1e-3'], 'does not use --lam'),
        (
            ['--method', 'gmp_adamw', '--gmp_end_epoch', '20'],
            'gmp_adamw needs 0 <= --gmp_begin_epoch',
        ),
        (['--method', 'ramda', '--init_scale', '2'], 'does not use'),
    ],
)
def test_bad_options(argv, message, capsys, tmp_path):
  status, err = run_cli(argv + ['--workdir', str(tmp_path / 'run')], capsys)
  assert status == 2
  assert message in err, err
  assert not (tmp_path / 'run').exists()  # No work started.


def test_unknown_model(capsys, tmp_path):
  pytest.importorskip('models')
  status, err = run_cli(
      ['--model', 'resnet19', '--workdir', str(tmp_path)], capsys
  )
  assert status == 2 and "Unknown model 'resnet19'" in err and 'resnet18' in err


def test_unknown_dataset(capsys, tmp_path):
  status, err = run_cli(
      ['--dataset', 'mnistt', '--workdir', str(tmp_path)], capsys
  )
  assert status == 2 and "Unknown dataset 'mnistt'" in err


def test_batch_not_divisible(monkeypatch):
  import jax
  from train import train as train_lib

  monkeypatch.setattr(jax, 'device_count', lambda: 8)
  with pytest.raises(ConfigError, match='not divisible by the 8 devices'):
    train_lib.check_runtime(config_lib.get_config(batch_size=100))
  train_lib.check_runtime(config_lib.get_config(batch_size=128))


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


def test_print_config(capsys):
  assert cli.main(['--preset', 'cifar10_vgg16', '--print_config']) == 0
  out = json.loads(capsys.readouterr().out)
  assert out['model'] == 'vgg16' and out['init_scale'] == 20


def test_print_config_shows_the_data_folders_in_effect(
    capsys, monkeypatch, tmp_path
):
  monkeypatch.setenv('RDA_MANUAL_DIR', str(tmp_path / 'manual'))
  monkeypatch.setenv('TFDS_DATA_DIR', str(tmp_path / 'tfds'))
  assert cli.main(['--print_config']) == 0
  printed = json.loads(capsys.readouterr().out)
  assert printed['manual_dir'] == str(tmp_path / 'manual')
  assert printed['data_dir'] == str(tmp_path / 'tfds')
  # Given flags win over the environment.
  assert cli.main(['--print_config', '--manual_dir', '/given']) == 0
  assert json.loads(capsys.readouterr().out)['manual_dir'] == '/given'


def test_print_config_of_a_han_preset_needs_no_init_from(capsys):
  assert cli.main(['--preset', 'cifar10_resnet18_han', '--print_config']) == 0
  out, err = capsys.readouterr()
  assert json.loads(out)['method'] == 'han'
  assert 'needs --init_from RUN_DIR' in err


def test_print_config_refuses_an_unknown_model(capsys):
  assert cli.main(['--model', 'resnet99', '--print_config']) == 2
  assert "Unknown model 'resnet99'" in capsys.readouterr().err


def test_list_presets(capsys):
  assert cli.main(['--list_presets']) == 0
  out = capsys.readouterr().out
  for name in PAPER_S:
    assert name in out
  line = [l for l in out.splitlines() if l.startswith('mnist_lenet300_100 ')][0]
  assert '20 + 10 ASR epochs' in line and '--gamma 1.0' in line


def test_help_mentions_fields():
  text = cli.build_parser().format_help()
  for flag in (
      '--asr_epochs',
      '--init_scale',
      '--coordinator_address',
      '--manual_dir',
      '--select',
  ):
    assert flag in text
  assert os.path.basename(cli.__file__) == 'cli.py'


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


def test_every_option_has_help_beyond_its_name():
  parser = cli.build_parser()
  for action in parser._actions:  # pylint: disable=protected-access
    name = action.dest
    if name in config_lib.FIELDS:
      text = (action.help or '').split(' (default')[0]
      assert text and text != name and len(text.split()) >= 3, name
  assert "'(none)'" not in parser.format_help()


@pytest.mark.parametrize(
    'code, message',
    [
        (
            "import runpy; runpy.run_module('train', run_name='__main__')",
            'install the train extra',
        ),
        ('import models', 'install the models extra'),
    ],
)
def test_missing_extras_name_the_extra(code, message):
  import subprocess
  import sys

  hide = "import sys; sys.modules['flax'] = None; "
  proc = subprocess.run(
      [sys.executable, '-c', hide + code],
      capture_output=True,
      text=True,
      cwd=os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
  )
  assert proc.returncode != 0
  assert message in proc.stderr, proc.stderr[-2000:]


def test_tfds_is_needed_by_tfds_datasets_only():
  # An accelerator machine with JAX and Flax but no TFDS trains on an image
  # folder; a TFDS dataset there says which extra to install.
  import subprocess
  import sys

  code = (
      "import sys; sys.modules['tensorflow_datasets'] = None\n"
      'import runpy\n'
      "m = runpy.run_module('train.__main__', run_name='not_main')\n"
      "assert m['_missing']() == [], m['_missing']()\n"
      'from train.data import tfds_source\n'
      'try:\n'
      '  tfds_source._tfds()\n'
      'except ImportError as e:\n'
      '  print(e)\n'
  )
  proc = subprocess.run(
      [sys.executable, '-c', code],
      capture_output=True,
      text=True,
      cwd=os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
  )
  assert proc.returncode == 0, proc.stderr[-2000:]
  assert 'install the train extra' in proc.stdout
  assert 'cifar10_jpg do not need it' in proc.stdout


def test_bad_paths_are_one_line_errors_before_any_work(tmp_path, capsys):
  afile = tmp_path / 'afile'
  afile.write_text('x')
  garbage = tmp_path / 'garbage' / 'checkpoints' / '5'
  garbage.mkdir(parents=True)
  (garbage / 'x').write_text('junk')
  empty = tmp_path / 'empty'
  empty.mkdir()
  cases = [
      (['--workdir', str(afile)], 'is a file, not a directory'),
      (['--workdir', str(afile / 'sub')], 'is a file, so the run directory'),
      (['--workdir', '/proc/rda_optax_test/x'], 'cannot be created'),
      (
          [
              '--method',
              'han',
              '--init_from',
              str(empty),
              '--workdir',
              str(tmp_path / 'w1'),
          ],
          'cannot read a checkpoint there',
      ),
      (
          [
              '--method',
              'han',
              '--init_from',
              str(tmp_path / 'garbage'),
              '--workdir',
              str(tmp_path / 'w2'),
          ],
          'cannot read a checkpoint there',
      ),
  ]
  for argv, message in cases:
    status, err = run_cli(argv, capsys)
    assert status == 2, argv
    assert message in err and len(err.strip().splitlines()) == 1, err
  assert not (tmp_path / 'w1').exists() and not (tmp_path / 'w2').exists()


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


def test_epochs_that_round_to_no_sparse_phase_are_refused():
  cfg = config_lib.get_config(epochs=0.001, asr_epochs=1)
  with pytest.raises(ConfigError, match='no sparse phase before ASR'):
    optimizer.make_phases(cfg, 60000)


def test_divergence_exits_with_status_3_and_one_line(tmp_path, capsys):
  status, err = run_cli(
      [
          '--method',
          'rda',
          '--gamma',
          '1e-38',
          '--dataset',
          'synthetic',
          '--model',
          'lenet300_100',
          '--steps_per_epoch',
          '10',
          '--epochs',
          '2',
          '--asr_epochs',
          '1',
          '--batch_size',
          '16',
          '--log_every_steps',
          '1',
          '--no-progress',
          '--no-report',
          '--workdir',
          str(tmp_path / 'run'),
      ],
      capsys,
  )
  assert status == 3
  line = [l for l in err.splitlines() if l.startswith('python -m train:')]
  assert line and 'training diverged at step' in line[0]
  assert 'raise --gamma' in line[0]


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


def test_asr_weight_decay_needs_asr_by_sgd():
  cfg = config_lib.get_config(
      None, method='rmda', asr_optimizer='same', asr_weight_decay=1e-4
  )
  with pytest.raises(ConfigError, match='--weight_decay'):
    config_checks.validate(cfg)
  cfg = config_lib.get_config(None, method='rmda', asr_weight_decay=-1.0)
  with pytest.raises(ConfigError, match='asr_weight_decay must be >= 0'):
    config_checks.validate(cfg)


def test_one_source_of_defaults():
  # The default job is the dataclass defaults; presets add their own values.
  assert config_lib.PRESETS['default'] == {}
  assert config_lib.get_config() == config_lib.Config()
  assert config_lib.Config().model == 'lenet300_100'
  assert config_lib.Config().method == 'rmda'
