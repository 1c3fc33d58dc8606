"""benchmarks/frontier/: the sweep's runs share one budget, and the tables
compare methods by the rule its docstring states."""

import os

import pytest

from benchmarks import frontier as frontier_pkg


@pytest.fixture(scope='module')
def frontier():
  return frontier_pkg


def _epochs(run):
  f = list(run.flags)
  get = lambda k: float(f[f.index(k) + 1]) if k in f else 0.0
  return get('--epochs') + get('--asr_epochs')


@pytest.mark.parametrize(
    'setting', ['lenet300', 'lenet5', 'cifar_resnet8', 'cifar_resnet18_e30']
)
def test_every_method_has_the_same_budget(frontier, setting):
  s = frontier.SETTINGS[setting]
  runs = s.runs([0, 1])
  assert {r.method for r in runs} >= {'dense', 'han_global', 'gmp'}
  assert {r.method for r in runs} & {'rmda', 'rmda_target'}
  for r in runs:
    if r.method.startswith('han'):
      # Dense parent + fine-tuning = the budget.
      assert _epochs(r) + _epochs(r.needs) == s.epochs, r.name
      assert r.needs in runs and runs.index(r.needs) < runs.index(r)
    elif r.variant != 'parent':
      assert _epochs(r) == s.epochs, r.name
  names = [r.name for r in runs]
  assert len(names) == len(set(names))
  assert all('--seed' in r.flags for r in runs)


def test_levels_pick_the_best_point_at_or_above_each_level(frontier):
  recs = []

  def add(method, strength, accs, sps, variant='v'):
    for seed, (a, s) in enumerate(zip(accs, sps)):
      recs.append(
          dict(
              method=method,
              variant=variant,
              strength=strength,
              seed=seed,
              test_top1=a,
              sparsity=s,
          )
      )

  add('rmda', 1e-4, [0.98, 0.98], [0.94, 0.96])  # mean 0.95
  add('rmda', 2e-4, [0.97, 0.97], [0.97, 0.975])  # mean 0.9725
  add('rmda', 3e-4, [0.90, 0.90], [0.99, 0.99])
  add('han_global', 0.95, [0.975, 0.985], [0.95, 0.95])
  add('dense', 0.0, [0.99, 0.99], [0.0, 0.0], variant='cosine')
  add('dense', 0.0, [0.5, 0.5], [0.0, 0.0], variant='parent')
  table = frontier.at_levels(frontier.aggregate(recs), (0.95, 0.97, 0.99))
  assert table['rmda'][0.95][0] == pytest.approx(0.98)  # 1e-4 (mean 0.95)
  assert table['rmda'][0.97][4] == 2e-4  # Overshoots to 0.9725: still taken.
  assert table['rmda'][0.99][0] == pytest.approx(0.90)
  assert table['han_global'][0.95][1] == pytest.approx(0.00707, abs=1e-4)
  assert 0.97 not in table['han_global']  # Never compared below its level.
  assert table['dense'][0.95][3] == 'cosine'  # The parent is not a result.


def test_levels_prefer_points_with_more_seeds(frontier):
  # A lucky one-seed point above the level does not beat a three-seed mean.
  recs = [
      dict(
          method='rmda',
          variant='v',
          strength=s,
          seed=seed,
          test_top1=a,
          sparsity=s,
      )
      for s, accs in ((0.90, (0.990, 0.991, 0.989)), (0.98, (0.993,)))
      for seed, a in enumerate(accs)
  ]
  table = frontier.at_levels(frontier.aggregate(recs), (0.90, 0.98))
  assert table['rmda'][0.90][4] == 0.90 and table['rmda'][0.90][5] == 3
  assert table['rmda'][0.98][0] == pytest.approx(0.993)  # Its own level.


def test_levels_take_the_point_at_the_level(frontier):
  # Pruning to each level, the 95% point with more seeds than the 90% one:
  # at 90% the 90% point is taken, not the three-seed 95% one.
  recs = [
      dict(
          method='gmp',
          variant='v',
          strength=s,
          seed=seed,
          test_top1=a,
          sparsity=s,
      )
      for s, accs in ((0.90, (0.77,)), (0.95, (0.745, 0.742, 0.744)))
      for seed, a in enumerate(accs)
  ]
  table = frontier.at_levels(frontier.aggregate(recs), (0.90, 0.95, 0.97))
  assert table['gmp'][0.90][4] == 0.90 and table['gmp'][0.90][5] == 1
  assert table['gmp'][0.95][5] == 3
  assert 0.97 not in table['gmp']


def test_levels_forgive_one_weight_of_rounding(frontier):
  # Pruning to 97% of 77k weights keeps one weight too many: 96.99974%.
  recs = [
      dict(
          method='gmp',
          variant='v',
          strength=0.97,
          seed=0,
          test_top1=0.7,
          sparsity=0.9699974,
      ),
      dict(
          method='rmda',
          variant='v',
          strength=1e-3,
          seed=0,
          test_top1=0.8,
          sparsity=0.9697,
      ),
  ]
  table = frontier.at_levels(frontier.aggregate(recs), (0.97,))
  assert table['gmp'][0.97][0] == pytest.approx(0.7)
  assert 'rmda' not in table  # 0.03 points short: not at the level.


def test_markdown_and_plot(frontier, tmp_path):
  s = frontier.SETTINGS['lenet300']
  recs = [
      dict(method=m, variant='v', strength=st, seed=0, test_top1=a, sparsity=sp)
      for m, st, a, sp in (
          ('rmda', 1e-3, 0.97, 0.97),
          ('han_global', 0.97, 0.96, 0.97),
          ('dense', 0.0, 0.98, 0.0),
      )
  ]
  agg = frontier.aggregate(recs)
  md = frontier.markdown('lenet300', s, recs, agg)
  assert '| 97.0% | 97.00% ± 0.00% @ 97.00% | 96.00% ± 0.00% @ 97.00% |' in md
  assert 'seed by seed' not in md  # One seed each: nothing to show.
  frontier.plot(str(tmp_path / 'f.png'), s, agg)
  assert (tmp_path / 'f.png').stat().st_size > 1000


def test_markdown_shows_each_seed_of_a_point_run_with_several(frontier):
  s = frontier.SETTINGS['lenet300']
  recs = [
      dict(method=m, variant='v', strength=st, seed=i, test_top1=a, sparsity=st)
      for m, st, accs in (
          ('rmda_target', 0.9, (0.971, 0.972, 0.973)),
          ('han_global', 0.9, (0.961, 0.962)),
          ('gmp', 0.9, (0.95,)),
      )
      for i, a in enumerate(accs)
  ]
  md = frontier.markdown('lenet300', s, recs, frontier.aggregate(recs))
  assert '| rmda_target / v / 0.9 | 97.10% | 97.20% | 97.30% |' in md
  assert '| han_global / v / 0.9 | 96.10% | 96.20% | — |' in md
  assert 'gmp / v' not in md.split('seed by seed')[1]


@pytest.mark.parametrize(
    'setting', ['lenet300', 'lenet5', 'cifar_resnet8', 'cifar_resnet18_e30']
)
def test_rmda_target_runs_project_on_each_level(frontier, setting):
  s = frontier.SETTINGS[setting]
  runs = [r for r in s.runs([0]) if r.method == 'rmda_target']
  for variant in s.variants['rmda_target']:
    assert sorted(r.strength for r in runs if r.variant == variant) == sorted(
        s.levels
    )
  for r in runs:
    f = list(r.flags)
    assert f[f.index('--method') + 1] == 'rmda'
    assert f[f.index('--regularizer') + 1] == 'sparsity'
    assert float(f[f.index('--target_sparsity') + 1]) == r.strength
    assert float(f[f.index('--epochs') + 1]) == s.sparse_epochs


def test_a_finished_run_is_recognised_from_another_checkout(frontier, tmp_path):
  """Same flags, run directory spelled differently: finished; other flags:
  refused."""
  import json

  s = frontier.SETTINGS['lenet300']
  run = [r for r in s.runs([0]) if r.method == 'rmda_target'][0]
  out = str(tmp_path)
  folder = os.path.join(frontier.ROOT, frontier.run_dir(out, run))
  os.makedirs(folder)
  flags = ' '.join(frontier.command(out, run)).split(' --workdir ')[0]
  with open(os.path.join(folder, 'frontier_done'), 'w') as f:
    json.dump({'command': flags + ' --workdir elsewhere/run'}, f)
  with open(os.path.join(folder, 'metrics.jsonl'), 'w') as f:
    f.write(json.dumps({'type': 'eval', 'test_top1': 0.5, 'step': 1}) + '\n')
  assert frontier.finished(out, run)['test_top1'] == 0.5
  with open(os.path.join(folder, 'frontier_done'), 'w') as f:
    json.dump({'command': flags + ' --lr 9 --workdir x'}, f)
  with pytest.raises(RuntimeError, match='other flags'):
    frontier.finished(out, run)


def test_published_records_survive_a_checkout_without_run_folders(
    frontier, tmp_path
):
  # Run folders are not committed: a sweep resumed on a fresh checkout must
  # keep the published records of the runs it does not redo, and drop a
  # record whose command the sweep no longer gives.
  import json

  s = frontier.SETTINGS['lenet300']
  runs = s.runs([0], methods=['gmp'], strengths=[0.95])
  assert len(runs) >= 2
  out = str(tmp_path)
  keep = {'command': ' '.join(frontier.command(out, runs[0])), 'top': 1}
  stale = {'command': 'python -m train --lr 9 --workdir x', 'top': 2}
  with open(os.path.join(out, 'results.json'), 'w') as f:
    json.dump([keep, stale], f)
  assert frontier.collect(out, runs) == [keep]


@pytest.mark.parametrize('jobs', [1, 3])
def test_parallel_runs_start_after_their_parent(frontier, monkeypatch, jobs):
  import threading
  import time

  s = frontier.SETTINGS['cifar_resnet18_e30']
  runs = s.runs([0], methods=['han_global', 'gmp'], strengths=[0.95])
  started, finished, lock = [], [], threading.Lock()

  envs = []

  def fake_execute(out, run, env):
    envs.append(env)
    with lock:
      started.append(run)
      if run.needs is not None:
        assert run.needs in finished, run.name
    time.sleep(0.05)
    with lock:
      finished.append(run)
    return {'test_top1': 0.5, 'sparsity': run.strength}

  monkeypatch.setattr(frontier.runner, 'execute', fake_execute)
  monkeypatch.delenv('XLA_PYTHON_CLIENT_MEM_FRACTION', raising=False)
  monkeypatch.delenv('XLA_PYTHON_CLIENT_PREALLOCATE', raising=False)
  assert frontier.execute_all('out', runs, jobs) == []
  assert sorted(r.name for r in finished) == sorted(r.name for r in runs)
  # With several at once, each process gets its share of an accelerator.
  share = {'XLA_PYTHON_CLIENT_MEM_FRACTION': '0.300'} if jobs > 1 else {}
  assert envs == [share] * len(runs)
  assert 'XLA_PYTHON_CLIENT_MEM_FRACTION' not in os.environ


def test_a_failed_parent_fails_its_children_not_the_rest(frontier, monkeypatch):
  s = frontier.SETTINGS['cifar_resnet18_e30']
  runs = s.runs([0], methods=['han_global', 'gmp'], strengths=[0.95])

  def fake_execute(out, run, env):
    assert env == {}  # The user's own setting is kept.
    if run.variant == 'parent':
      raise RuntimeError('out of memory')
    if run.method.startswith('han'):
      raise AssertionError('a child of a failed run must not start')
    return {'test_top1': 0.5, 'sparsity': run.strength}

  monkeypatch.setattr(frontier.runner, 'execute', fake_execute)
  monkeypatch.setenv('XLA_PYTHON_CLIENT_MEM_FRACTION', '0.2')
  failed = frontier.execute_all('out', runs, 2)
  names = {r.name for r, _ in failed}
  han = {r.name for r in runs if r.method.startswith('han')}
  assert names == han | {r.name for r in runs if r.variant == 'parent'}
  with pytest.raises(ValueError, match='--jobs'):
    frontier.execute_all('out', runs, 0)


def test_each_record_names_its_machine_date_and_commit(frontier, tmp_path):
  """A run records where, when and from which commit it ran, and the
  report lists the machines of its runs (not only the report's own)."""
  import json
  import re

  where = frontier.provenance()
  assert re.fullmatch(r'\d{4}-\d\d-\d\d \d\d:\d\d UTC', where['date'])
  assert f'{os.cpu_count()} CPUs' in where['machine']
  assert where['commit'] is None or re.match(r'[0-9a-f]{4,}', where['commit'])

  s = frontier.SETTINGS['lenet300']
  run = s.runs([0], methods=['gmp'], strengths=[0.95])[0]
  out = str(tmp_path)
  folder = os.path.join(frontier.ROOT, frontier.run_dir(out, run))
  os.makedirs(folder)
  with open(os.path.join(folder, 'frontier_done'), 'w') as f:
    json.dump(
        {
            'wall_s': 3.0,
            'command': ' '.join(frontier.command(out, run)),
            'machine': 'box A',
            'date': '2026-12-01 02:00 UTC',
            'commit': 'abc1234',
        },
        f,
    )
  with open(os.path.join(folder, 'metrics.jsonl'), 'w') as f:
    f.write(
        json.dumps(
            {'type': 'eval', 'test_top1': 0.9, 'sparsity': 0.95, 'epoch': 12}
        )
        + '\n'
    )
  (rec,) = frontier.collect(out, [run])
  assert (rec['machine'], rec['date'], rec['commit']) == (
      'box A',
      '2026-12-01 02:00 UTC',
      'abc1234',
  )
  old = dict(rec, seed=1)
  for k in ('machine', 'date', 'commit'):
    del old[k]
  later = dict(rec, seed=2, date='2026-12-03 09:00 UTC', commit='def5678')
  lines = frontier.runs_made_on([rec, later, old])
  assert (
      '- 2 runs on box A, 2026-12-01 to 2026-12-03, commit abc1234, def5678'
      in lines
  )
  assert any(l.startswith('- 1 run made before machines') for l in lines)
  md = frontier.markdown(
      'lenet300', s, [rec, later, old], frontier.aggregate([rec, later, old])
  )
  assert '2 runs on box A' in md and 'This report: ' in md


def test_lambda_for_each_level_is_log_interpolated(frontier):
  recs = [
      dict(
          method='rmda',
          variant='v',
          strength=lam,
          seed=0,
          test_top1=0.9,
          sparsity=sp,
      )
      for lam, sp in ((1e-4, 0.80), (4e-4, 0.96), (1.6e-3, 0.99))
  ]
  lams = frontier.lambda_at_levels(frontier.aggregate(recs), (0.9, 0.98, 0.995))
  got = lams[('rmda', 'v')]
  # 0.90 lies 10/16 of the way from 0.80 to 0.96: λ = 1e-4 · 4^(10/16).
  assert got[0.9] == pytest.approx(1e-4 * 4 ** (10 / 16))
  assert got[0.98] == pytest.approx(4e-4 * 4 ** (2 / 3))
  assert 0.995 not in got  # Beyond the grid: not extrapolated.
