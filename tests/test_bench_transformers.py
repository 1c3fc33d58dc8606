"""benchmarks/transformers_nm/ and transformers_accelerator.sh: every run
of the sweeps is a command the train job accepts, at one budget per setting,
and the tables pick what the docstring says."""

import importlib
import os
import subprocess

import pytest

from train import cli

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.fixture(scope='module')
def bench():
  return importlib.import_module('benchmarks.transformers_nm')


def _epochs(run):
  f = list(run.flags)
  get = lambda k: float(f[f.index(k) + 1]) if k in f else 0.0
  return get('--epochs') + get('--asr_epochs')


@pytest.mark.parametrize('name', ['gpt', 'vit', 'lenet5_2_4', 'resnet8_2_4'])
def test_every_run_is_accepted_at_the_settings_budget(bench, name, capsys):
  setting = bench.SETTINGS[name]
  runs = setting.runs([0])
  names = [r.name for r in runs]
  assert len(names) == len(set(names))
  for r in runs:
    if r.needs is not None:  # Han: the dense parent + fine-tuning.
      assert _epochs(r) + _epochs(r.needs) == setting.epochs, r.name
      assert runs.index(r.needs) < runs.index(r)
    elif r.variant != 'parent':
      assert _epochs(r) == setting.epochs, r.name
    # What python -m train would run (--init_from needs a finished parent).
    argv = list(bench.command('/tmp/x', r, smoke=setting.smoke()))[3:]
    if '--init_from' in argv:
      i = argv.index('--init_from')
      argv = argv[:i] + argv[i + 2 :]
    assert cli.main(argv + ['--print_config']) == 0, (r.name, argv)
    capsys.readouterr()
  assert set(setting.targets) <= {r.target for r in runs}
  # --smoke: one run of each method (the dense one is han's parent where
  # han runs), every one a run of the sweep.
  smoke = setting.smoke_runs()
  assert sorted(r.method for r in smoke) == sorted(setting.methods)
  assert all(r in runs for r in smoke)
  assert all(r.needs in smoke for r in smoke if r.needs is not None)


def test_the_gpt_sweep_has_every_method_of_issue_28(bench):
  runs = bench.SETTINGS['gpt'].runs([0, 1, 2])
  methods = {r.method for r in runs}
  assert methods == {
      'dense',
      'ramda_l1',
      'ramda_target',
      'rmda_target',
      'prox_adamw_target',
      'gmp_adamw',
      'han_adamw',
  }
  assert {r.seed for r in runs} == {0, 1, 2}
  gmp = {r.variant for r in runs if r.method == 'gmp_adamw'}
  ends = {v.split('_')[0] for v in gmp}
  lrs = {v.split('_')[1] for v in gmp}
  assert len(ends) >= 2 and len(lrs) >= 2  # Tuned: ramp ends × rates.
  for r in runs:
    if r.target == '2:4':
      f = ' '.join(r.flags)
      assert '--nm 2:4' in f, r.name


def rec(method, variant, target, seed, loss, sparsity, nm=None):
  return dict(
      method=method,
      variant=variant,
      target=target,
      seed=seed,
      test_loss=loss,
      sparsity=sparsity,
      nm=nm,
  )


def test_the_table_takes_the_best_variant_that_reaches_the_target(bench):
  s = bench.SETTINGS['gpt']
  ok = {'pattern': '2:4', 'kernels': 17, 'kernels_meeting': 17}
  bad = {'pattern': '2:4', 'kernels': 17, 'kernels_meeting': 16}
  records = [
      rec('dense', 'default', 'dense', 0, 1.50, 0.0),
      rec('gmp_adamw', 'a', '0.75', 0, 1.70, 0.75),
      rec('gmp_adamw', 'b', '0.75', 0, 1.65, 0.75),
      rec('gmp_adamw', 'a', '2:4', 0, 1.60, 0.5, ok),
      rec('gmp_adamw', 'b', '2:4', 0, 1.55, 0.5, bad),  # Misses 2:4.
      # RAMDA's λ points: the best one at or above each level.
      rec('ramda_l1', 'default', 'lam1e-05', 0, 1.56, 0.60),
      rec('ramda_l1', 'default', 'lam3e-05', 0, 1.62, 0.80),
      rec('ramda_l1', 'default', 'lam0.0001', 0, 1.90, 0.95),
  ]
  # Han's dense parents (a shorter budget) are not the dense reference.
  records.append(rec('dense', 'parent', 'dense', 0, 1.90, 0.0))
  lines = bench.table(s, records).splitlines()
  assert lines[0] == 'Dense reference: test_loss 1.5000 ± 0.0000 (1 seeds)'
  row = lambda t, m: next(l for l in lines if l.startswith(f'| {t} | {m} |'))
  assert '1.6500' in row('0.75', 'gmp_adamw') and '| b |' in row(
      '0.75', 'gmp_adamw'
  )
  assert '1.6000' in row('2:4', 'gmp_adamw')
  assert '1.5600' in row('0.5', 'ramda_l1')
  assert '1.6200' in row('0.75', 'ramda_l1') and 'lam3e-05' in row(
      '0.75', 'ramda_l1'
  )
  assert '1.9000' in row('0.9', 'ramda_l1')
  assert row('2:4', 'ramda_l1').endswith('| - | 0 | - | - |')


def test_the_accelerator_script_parses_and_names_its_stages():
  path = os.path.join(ROOT, 'benchmarks', 'transformers_accelerator.sh')
  subprocess.run(['bash', '-n', path], check=True)
  text = open(path).read()
  for words in (
      '-m benchmarks.optimizer_step --adaptive',
      '-m benchmarks.transformers_nm',
      'SMOKE',
      'STAGES=${STAGES:-step gpt vit}',
  ):
    assert words in text


def test_a_sweep_run_method_by_method_keeps_the_other_methods_records(
    bench, tmp_path, capsys
):
  import json

  main = importlib.import_module('benchmarks.transformers_nm.__main__').main
  out = str(tmp_path)
  runs = bench.SETTINGS['lenet5_2_4'].runs([1])
  first, other = runs[0], next(r for r in runs if r.method != runs[0].method)
  published = [
      {
          'setting': 'lenet5_2_4',
          'method': r.method,
          'variant': r.variant,
          'target': r.target,
          'seed': r.seed,
          'test_loss': 0.1,
          'test_bpc': None,
          'test_top1': 0.99,
          'sparsity': 0.5,
          'nm': None,
          'command': ' '.join(bench.command(out, r)),
      }
      for r in (first, other)
  ]
  with open(os.path.join(out, 'results.json'), 'w') as f:
    json.dump(published, f)
  argv = ['lenet5_2_4', '--out', out, '--report', '--seeds', '1']
  assert main(argv + ['--methods', first.method]) == 0
  with open(os.path.join(out, 'results.json')) as f:
    assert json.load(f) == published
  # --skip_published: a published run is not run again (no training here).
  assert bench.SETTINGS['lenet5_2_4'].runs([1], [first.method]) == [first]
  argv[argv.index('--report')] = '--skip_published'
  assert main(argv + ['--methods', first.method]) == 0
  assert 'are published in' in capsys.readouterr().out
  with open(os.path.join(out, 'results.json')) as f:
    assert json.load(f) == published
  # --list is the same from one process to the next (runs in order).
  assert main(['gpt', '--out', out, '--list']) == 0
  listed = capsys.readouterr().out.splitlines()
  assert len(listed) == len(set(listed)) > 100


def test_a_record_holds_the_run_its_final_eval_nm_check_and_provenance(
    bench, tmp_path
):
  import json

  s = bench.SETTINGS['gpt']
  smoke = s.smoke()
  run = next(r for r in s.runs([0]) if r.target == '2:4')
  out = str(tmp_path)
  assert bench.collect('gpt', out, [run], smoke) == []
  folder = bench.run_dir(out, run)
  os.makedirs(os.path.join(folder, 'report'))
  done = {
      'command': ' '.join(bench.command(out, run, smoke)),
      'wall_s': 4.0,
      'machine': 'box A',
      'date': '2026-12-01 02:00 UTC',
      'commit': 'abc1234',
  }
  with open(os.path.join(folder, 'sweep_done'), 'w') as f:
    json.dump(done, f)
  with open(os.path.join(folder, 'metrics.jsonl'), 'w') as f:
    for loss in (2.0, 1.5):
      f.write(
          json.dumps(
              {'type': 'eval', 'test_loss': loss, 'test_bpc': loss / 0.693}
              | {'sparsity': 0.5, 'epoch': 1}
          )
          + '\n'
      )
  nm = {'pattern': '2:4', 'kernels': 17, 'kernels_meeting': 17}
  with open(os.path.join(folder, 'report', 'summary.json'), 'w') as f:
    json.dump({'nm': nm}, f)
  (rec,) = bench.collect('gpt', out, [run], smoke)
  assert rec == {
      'setting': 'gpt',
      'method': run.method,
      'variant': run.variant,
      'target': '2:4',
      'seed': 0,
      'test_loss': 1.5,
      'test_bpc': 1.5 / 0.693,
      'test_top1': None,
      'sparsity': 0.5,
      'nm': nm,
      **done,
  }
  assert list(rec)[-5:] == list(done)
