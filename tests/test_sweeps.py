"""benchmarks/sweeps.py: the runs of a sweep, their folders and commands, a
finished run read back (and refused when run with other flags), and runs
scheduled after their parents."""

import json
import os

import pytest

from benchmarks import sweeps


def _run(point='0.5', seed=0, needs=None, method='m'):
  return sweeps.Run(method, 'v', point, seed, ('--seed', str(seed)), needs)


def _finish(sweep, out, run, command, evals):
  folder = sweep.folder(out, run)
  os.makedirs(folder)
  with open(os.path.join(folder, sweep.done_file), 'w') as f:
    json.dump({'command': command, 'wall_s': 2.0}, f)
  with open(os.path.join(folder, 'metrics.jsonl'), 'w') as f:
    for e in evals:
      f.write(json.dumps(dict(type='eval', **e)) + '\n')


def test_a_run_folder_and_command_spell_its_name(tmp_path):
  parent = _run('dense', method='dense')
  run = _run('2:4', seed=1, needs=parent)
  assert run.name == 'm/v/2:4/seed1'
  out = str(tmp_path)
  sweep = sweeps.Sweep('done', extra=('--steps_per_epoch', '1'))
  assert sweep.run_dir(out, run) == f'{out}/runs/m_v_2-4_seed1'
  assert sweep.command(out, run) == [
      *'python -m train --seed 1 --workdir'.split(),
      f'{out}/runs/m_v_2-4_seed1',
      '--init_from',
      f'{out}/runs/dense_v_dense_seed0',
      '--steps_per_epoch',
      '1',
  ]
  # A folder inside the repository is spelled relative to it, if asked.
  inside = os.path.join(sweeps.ROOT, 'benchmarks', 'results', 'x')
  relative = sweeps.Sweep('done', relative=True)
  assert relative.run_dir(inside, run) == os.path.join(
      'benchmarks', 'results', 'x', 'runs', 'm_v_2-4_seed1'
  )
  assert relative.run_dir(out, run) == f'{out}/runs/m_v_2-4_seed1'
  assert relative.folder(inside, run) == os.path.join(
      inside, 'runs', 'm_v_2-4_seed1'
  )


def test_a_finished_run_gives_its_last_eval_and_refuses_other_flags(
    tmp_path,
):
  out, run = str(tmp_path), _run()
  sweep = sweeps.Sweep('done', extra=('--smoke_flag',))
  assert sweep.finished(out, run) is None and sweep.done(out, run) is None
  # Run from another checkout: only the flags before --workdir count.
  ran = 'python -m train --seed 0 --workdir /elsewhere/runs/x --other'
  _finish(sweep, out, run, ran, [{'top1': 0.5}, {'top1': 0.75}])
  assert sweep.finished(out, run) == {'type': 'eval', 'top1': 0.75}
  assert sweep.done(out, run) == {'command': ran, 'wall_s': 2.0}
  other = _run(seed=1)
  _finish(sweep, out, other, 'python -m train --seed 7 --workdir y', [{}])
  with pytest.raises(RuntimeError, match='other flags.*remove it'):
    sweep.finished(out, other)


def test_runs_wait_for_their_parents_and_failures_reach_their_children(
    capsys,
):
  parent = _run('dense', method='dense')
  child, lone = _run(needs=parent), _run(seed=1)
  outside = _run(seed=2, needs=_run('dense', seed=9, method='dense'))
  ran, envs = [], []

  def execute(run, env):
    ran.append(run)
    envs.append(env)
    if run is parent:
      raise RuntimeError('out of memory')
    return {'sparsity': 0.0, 'test_top1': 0.5}

  with pytest.MonkeyPatch.context() as mp:
    mp.delenv('XLA_PYTHON_CLIENT_MEM_FRACTION', raising=False)
    mp.delenv('XLA_PYTHON_CLIENT_PREALLOCATE', raising=False)
    published = []
    failed = sweeps.execute_all(
        [child, parent, lone, outside],
        2,
        execute,
        on_done=lambda: published.append(list(ran)),
    )
  assert dict((r.name, e) for r, e in failed) == {
      parent.name: 'out of memory',
      child.name: 'dense/v/dense/seed0 failed',
      outside.name: 'dense/v/dense/seed9 is not in the sweep',
  }
  assert set(ran) == {parent, lone}
  # The results are published after each run that finished (lone's).
  assert len(published) == 1 and lone in published[0]
  # Two at once: each gets its share of an accelerator.
  assert envs == [{'XLA_PYTHON_CLIENT_MEM_FRACTION': '0.450'}] * 2
  out, err = capsys.readouterr()
  assert out == '[1/4] m/v/0.5/seed1: test_top1 0.5000 sparsity 0.0000\n'
  assert err == 'FAILED dense/v/dense/seed0: out of memory\n'
  with pytest.raises(RuntimeError, match='out of memory'):
    sweeps.execute_all([parent], 1, execute, keep_going=False)
  with pytest.raises(ValueError, match='--jobs must be at least 1'):
    sweeps.execute_all([parent], 0, execute)


def test_provenance_names_machine_date_and_commit():
  where = sweeps.provenance()
  assert set(where) == {'machine', 'date', 'commit'}
  assert f'{os.cpu_count()} CPUs' in where['machine']
  assert where['commit'] == sweeps.commit()


def test_publish_writes_the_records_and_tables_and_failures_set_the_status(
    tmp_path, capsys
):
  out = str(tmp_path)
  records = [{'method': 'm', 'test_top1': 0.5}]
  sweeps.publish(out, records, 'tables.md', '| a |\n')
  with open(os.path.join(out, 'results.json')) as f:
    assert json.load(f) == records
  with open(os.path.join(out, 'tables.md')) as f:
    assert f.read() == '| a |\n'
  assert sorted(os.listdir(out)) == ['results.json', 'tables.md']
  assert sweeps.exit_status([]) == 0
  assert sweeps.exit_status([(_run(), 'boom')]) == 1
  assert capsys.readouterr().err == 'FAILED m/v/0.5/seed0: boom\n'


def test_published_runs_are_not_run_again_but_a_needed_parent_is(
    tmp_path, capsys
):
  # A sweep resumed on a fresh checkout (or a lent accelerator) from its
  # published results.json: its records are kept and their runs skipped;
  # a parent whose child is still to run is run again if its folder (the
  # checkpoint the child starts from) is absent.
  out, sweep = str(tmp_path), sweeps.Sweep('done')
  # (A run is known by its flags before --workdir: they differ here.)
  run = lambda p, n=None: sweeps.Run('m', 'v', p, 0, ('--point', p), n)
  parent = run('dense')
  child, other = run('0.9', parent), run('0.5')
  runs = [parent, child, other]
  command = lambda r: sweep.command(out, r)
  finished = lambda r: sweep.finished(out, r)
  assert sweeps.unpublished(out, runs, command, finished) == runs
  publish = lambda rs: sweeps.publish(
      out, [{'command': ' '.join(command(r))} for r in rs], 't.md', ''
  )
  publish([parent, other])
  assert sweeps.unpublished(out, runs, command, finished) == [parent, child]
  assert '1 of the 3 runs are published' in capsys.readouterr().out
  _finish(sweep, out, parent, ' '.join(command(parent)), [{'test_top1': 1}])
  assert sweeps.unpublished(out, runs, command, finished) == [child]
  publish(runs)
  assert sweeps.unpublished(out, runs, command, finished) == []
  # The records come back from results.json or from the folders.
  records = sweeps.collect(out, runs, lambda r: None, command)
  assert [r['command'] for r in records] == [' '.join(command(r)) for r in runs]
