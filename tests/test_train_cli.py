"""train/cli.py: the command line of `python -m train`: flags, help, and
one-line errors (exit status 2) before any work.

Fast: nothing here compiles a model (the CLI runs in-process up to the
checks that precede any work), except the divergence run.
"""

import json
import os
import sys

import pytest

from train import cli
from train import config as config_lib
from train import config_checks
from _train_driver import run_cli


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
        (
            ['--method', 'rda', '--gamma_schedule', 'linear'],
            '--gamma_schedule linear takes one end factor',
        ),
        (
            [
                '--method',
                'rda',
                '--gamma_schedule',
                'linear',
                '--gamma_scales',
                '0',
            ],
            '--gamma_scales must be positive factors',
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
        (['--regularizer', 'nm'], '--nm N:M (--regularizer nm) or --asr'),
        (
            ['--regularizer', 'nm', '--asr_epochs', '0'],
            '--regularizer nm needs the pattern: --nm N:M (2:4)',
        ),
        (['--regularizer', 'nm', '--nm', '4:4'], '--nm must be N:M'),
        (['--regularizer', 'nm', '--nm', 'two:four'], '--nm must be N:M'),
        (
            ['--regularizer', 'nm', '--nm', '2:4', '--lam', '1e-3'],
            'no strength: drop --lam',
        ),
        (['--nm', '2:4'], 'add --regularizer nm'),
        (
            ['--regularizer', 'sparsity', '--nm_schedule', 'fraction'],
            'add --regularizer nm',
        ),
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
            + ['--gmp_sparsity', '0.5'],
            'which replaces --gmp_sparsity',
        ),
        (
            ['--method', 'gmp', '--asr_epochs', '0', '--nm_schedule', 'n'],
            '--nm_schedule is the ramp of --nm N:M: set --nm too',
        ),
        (
            ['--method', 'sgd', '--asr_epochs', '0', '--nm', '2:4'],
            'does not use --nm',
        ),
        (['--method', 'adamw', '--lam', '1e-3'], 'does not use --lam'),
        (
            ['--method', 'gmp_adamw', '--gmp_end_epoch', '20'],
            'gmp_adamw needs --gmp_begin_epoch',
        ),
        (['--method', 'ramda', '--init_scale', '2'], 'does not use'),
        (
            ['--method', 'rmda', '--lr_schedule', 'warmup_cosine'],
            "starts the rate at 0, which rmda's proximal step does not take",
        ),
        (['--context', '0'], '--context must be positive'),
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


def test_list_presets(capsys):
  assert cli.main(['--list_presets']) == 0
  out = capsys.readouterr().out
  for name in config_lib.PRESETS:
    assert name in out
  line = [l for l in out.splitlines() if l.startswith('mnist_lenet300_100 ')][0]
  assert '20 + 10 ASR epochs' in line and '--gamma 1.0' in line


@pytest.mark.parametrize('name', sorted(config_lib.PRESETS))
def test_each_listed_preset_line_is_a_command_that_gives_the_preset(name):
  """The flags --list_presets prints for a preset parse (a boolean as
  --nesterov, not '--nesterov True') and, given on top of the preset,
  change nothing; a preset without an ASR phase lists no ASR option."""
  line = cli.describe_preset(name)
  words = line.split(' epochs: ', 1)[1].split()
  cfg, _, _ = cli.parse_config(['--preset', name] + words)
  assert cfg == config_lib.get_config(name)
  if not cfg.asr_epochs:
    assert '--asr_' not in line


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
  # Each default stated once, in one spelling (not 'None' beside 'none').
  assert 'None' not in text
  data_dir = cli.option_help('data_dir')
  assert data_dir.count('(default: ') == 1
  assert '~/tensorflow_datasets' in data_dir and 'MB' in data_dir


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


# ---------------------------------------------------------------------------
# Every value check answers before JAX, once, naming the flag.
# ---------------------------------------------------------------------------

_BEFORE_JAX = r"""
import contextlib, io, json, sys, time
t = time.perf_counter()
from train import cli
out = []
for argv in json.loads(sys.argv[1]):
  err = io.StringIO()
  with contextlib.redirect_stderr(err):
    status = cli.main(argv)
  out.append([status, err.getvalue(), time.perf_counter() - t])
print(json.dumps({'runs': out, 'loaded': sorted(
    m for m in ('jax', 'optax', 'flax', 'tensorflow') if m in sys.modules)}))
"""


def test_value_errors_answer_in_one_line_before_jax(tmp_path):
  """#25: each bad value is one line naming its flag, from a process that
  never imported JAX, in well under a second."""
  afile = tmp_path / 'afile'
  afile.write_text('x')
  work = ['--workdir', str(tmp_path / 'run')]
  cases = [
      (['--lr', '-1'], '--lr must be positive, got -1.0'),
      (['--eval_batch_size=-64'], '--eval_batch_size must be >= 0, got -64'),
      (['--lam', '-1e-3'], '--lam must be >= 0, got -0.001'),
      (['--seed', '-1'], '--seed must be >= 0, got -1'),
      (['--label_smoothing', '2'], '--label_smoothing must be in [0, 1)'),
      (['--label_smoothing', '1'], '--label_smoothing must be in [0, 1)'),
      (['--select', '(('], 'not kernels, conv, dense or a valid regular'),
      (['--lam_schedule', 'linear', '--lam_scales', '-1'], '--lam_scales'),
      (['--epochs', '-inf'], '--epochs must be a finite number'),
      (['--dataset', 'mnistt'], "Unknown dataset 'mnistt'"),
      (['--method', 'adam'], "Unknown method 'adam'"),
      (['--workdir', str(afile)], 'is a file, not a directory'),
  ]
  import subprocess
  import sys

  argvs = [argv if '--workdir' in argv else argv + work for argv, _ in cases]
  for attempt in range(2):  # One retry: the time is of a shared machine.
    proc = subprocess.run(
        [sys.executable, '-c', _BEFORE_JAX, json.dumps(argvs)],
        capture_output=True,
        text=True,
        cwd=os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    result = json.loads(proc.stdout)
    if result['runs'][0][2] < 1.0:
      break
  assert result['loaded'] == []  # Not even imported.
  for (argv, message), (status, err, _) in zip(cases, result['runs']):
    assert status == 2, argv
    assert message in err and len(err.strip().splitlines()) == 1, (argv, err)
  # Importing the CLI and refusing the first: well under a second.
  assert result['runs'][0][2] < 1.0, result['runs'][0][2]
  assert not (tmp_path / 'run').exists()


def test_negative_values_after_a_space_reach_the_checks():
  """``--lam -1e-3`` is the value -0.001 (argparse alone takes it for an
  option and prints its usage), for every option that takes a number."""
  for name, field in config_lib.FIELDS.items():
    kind = str(field.type)
    value = {'int': '-2', 'float': '-1e-3', 'tuple': '-1e-3,2'}.get(
        kind.split('[')[0]
    )
    if value is None:
      continue
    cfg, explicit, _ = cli.parse_config([f'--{name}', value])
    got = getattr(cfg, name)
    assert (got[0] if isinstance(got, tuple) else got) < 0, name
    assert name in explicit
  # A string option keeps a value that merely starts with '-'.
  cfg, _, _ = cli.parse_config(['--select=-bias'])
  assert cfg.select == '-bias'


def test_a_select_that_matches_nothing_is_refused(capsys, tmp_path):
  status, err = run_cli(
      ['--select', 'Dense_0', '--workdir', str(tmp_path / 'run')], capsys
  )
  assert status == 2 and len(err.strip().splitlines()) == 1
  assert "--select 'Dense_0' matches no parameter of lenet300_100" in err
  assert 'fc1/kernel' in err  # The names it could match.
  assert not (tmp_path / 'run').exists()


def test_each_check_runs_once(monkeypatch, tmp_path):
  """The command line checks once, in one place, and the run trusts it; a
  library caller's train_and_evaluate checks once too."""
  import collections

  from train import selection
  from train import train as train_lib

  calls = collections.Counter()

  def count(module, name):
    real = getattr(module, name)

    def counted(*args, **kwargs):
      calls[name] += 1
      return real(*args, **kwargs)

    monkeypatch.setattr(module, name, counted)

  for module, name in (
      (config_checks, 'validate'),
      (config_checks, 'check_workdir_path'),
      (config_checks, 'check_workdir'),
      (train_lib, 'check_runtime'),
      (selection, 'check_model'),
  ):
    count(module, name)

  class Run:  # The run itself is not this test's: only what precedes it.

    def __init__(self, cfg, model, data):
      calls['run'] += 1

    def train(self):
      return None

    def close(self):
      pass

  monkeypatch.setattr(train_lib, '_Run', Run)
  once = dict.fromkeys(
      (
          'validate',
          'check_workdir_path',
          'check_workdir',
          'check_runtime',
          'check_model',
          'run',
      ),
      1,
  )
  argv = ['--dataset', 'synthetic', '--workdir', str(tmp_path / 'run')]
  assert cli.main(argv) == 0
  assert calls == once
  calls.clear()
  cfg, _, _ = cli.parse_config(argv)
  train_lib.train_and_evaluate(cfg)  # Not told it was checked.
  assert calls == once
  calls.clear()
  train_lib.train_and_evaluate(cfg, checked=True)
  assert calls == {'run': 1}


def test_help_lists_every_entry_of_the_tables_and_who_reads_each_option():
  from train import methods
  from train import regularizers

  parser = cli.build_parser()
  text = ' '.join(parser.format_help().split())
  for table in (methods.METHODS, regularizers.REGULARIZERS):
    for entry in table.values():
      assert f'{entry.name}: {" ".join(entry.summary.split())}' in text
  helps = {a.dest: ' '.join(a.help.split()) for a in parser._actions}
  assert (
      '[--method sgd | prox_sgd | rmda | han | splitting | gmp | adamw | '
      'ramda | prox_adamw | gmp_adamw | han_adamw]'
  ) in helps['lr']
  assert '[--method gmp | gmp_adamw]' in helps['gmp_sparsity']
  assert '[--regularizer tl1]' in helps['tl1_a']
  assert 'splitting' in helps['lam2'] and 'sparse_group_lasso' in helps['lam2']


def test_rerunning_a_finished_run_answers_before_jax(
    tiny_one_device_run, monkeypatch, capsys
):
  """The same command on a finished run directory says so from its
  complete.json, before train.launch (JAX, the data, the model) is
  imported; a changed option is refused as before."""
  from _train_driver import TINY_ARGS  # pylint: disable=import-outside-toplevel

  args = [*TINY_ARGS, '--workdir', tiny_one_device_run]
  monkeypatch.setitem(sys.modules, 'train.launch', None)  # import fails
  assert cli.main(args) == 0
  out = capsys.readouterr().out
  assert out.startswith(f'{tiny_one_device_run} is already complete (4 steps)')
  # Another option is refused by the run directory's own check, as before.
  assert cli.main(args + ['--lam', '1e-3']) == 2
  assert 'run has 0.003, now 0.001' in capsys.readouterr().err


def test_the_complete_record_needs_its_final_checkpoint(tmp_path):
  from train import complete  # pylint: disable=import-outside-toplevel

  cfg = config_lib.get_config(workdir=str(tmp_path))
  complete.write(cfg, 7)
  assert complete.finished(cfg) is None  # no checkpoints/7
  os.makedirs(tmp_path / 'checkpoints' / '7')
  assert complete.finished(cfg) == 7
  assert complete.finished(cfg.replace(lam=cfg.lam * 2)) is None
  (tmp_path / complete.FILE).write_text('{"version": 1, "steps": ')
  assert complete.finished(cfg) is None  # unreadable: the normal path
  complete.clear(str(tmp_path))
  assert not (tmp_path / complete.FILE).exists()
