"""The benchmark scripts run (tiny sizes; their figures are in the README)."""

import importlib

import pytest


def _load(name):
  return importlib.import_module(f'benchmarks.{name}')


def test_mask_read_cost_runs(capsys):
  _load('mask_read_cost').main(['--rounds', '2', '--shape', '8', '8'])
  out = capsys.readouterr().out
  assert '| asr |' in out and '| rda | ' in out


def test_mask_read_cost_asr_keeps_zeros_frozen():
  import jax.numpy as jnp

  bench = _load('mask_read_cost')
  w = jnp.array([0.0, 1.0, -2.0, 0.0])
  g = jnp.ones(4)
  for fn in (bench.asr, bench.asr_new_value):
    out, _, _, g_sum = fn(w, jnp.int32(1), w, jnp.zeros(4), g)
    assert float(out[0]) == 0.0 and float(out[3]) == 0.0
    assert float(g_sum[0]) == 0.0 and float(g_sum[1]) == 1.0


def test_models_forward_runs(capsys):
  """Throughput table and the compaction table (half the channels zeroed):
  the compacted model's outputs match and XLA's byte count is reported."""
  _load('models_forward').main(
      [
          '--models',
          'lenet5',
          '--compact',
          'lenet5',
          '--batch',
          '2',
          '--repeats',
          '1',
          '--width_multiple',
          '8',
      ]
  )
  out = capsys.readouterr().out
  row = [l for l in out.splitlines() if l.startswith('| lenet5 |')][-1]
  cells = [c.strip() for c in row.strip('|').split('|')]
  mac_ratio, bytes_ratio, diff = float(cells[3]), float(cells[4]), cells[-1]
  assert mac_ratio > 1.5 and bytes_ratio > 1.0
  assert float(diff) < 1e-4


def test_projection_runs(capsys):
  """Cold and warm searches agree round by round (the script checks); the
  warm one takes no more passes. (The search against a stable sort:
  tests/test_threshold.py.)"""
  _, passes = _load('projection').main(['--rounds', '3', '--no_sort'])
  out = capsys.readouterr().out
  assert '| kth_smallest, warm |' in out and '| kth_smallest, cold |' in out
  assert max(passes['kth_smallest, warm']) <= min(passes['kth_smallest, cold'])


def test_optimizer_step_adaptive_runs(capsys, monkeypatch):
  """RAMDA and the 2:4 projection against AdamW (a tiny tree here; the
  ResNet-18-sized one in the benchmark)."""
  bench = _load('optimizer_step')
  # Every mode reads the tree's shapes from the trees module, at each call.
  monkeypatch.setattr(
      _load('optimizer_step.trees'),
      'resnet18_shapes',
      lambda: {
          'conv/kernel': (3, 3, 8, 8),
          'fc/kernel': (8, 4),
          'fc/bias': (4,),
      },
  )
  bench.adaptive_main(['--rounds', '2', '--steps', '1', '--only', 'ramda(l1)'])
  out = capsys.readouterr().out
  assert ' 612 parameters (float32)' in out  # The tiny tree was timed.
  assert '| optax.adamw | ' in out and '| ramda(l1) | ' in out
  assert 'The 2:4 projection of every kernel alone' in out
  assert "with half of each kernel's groups held to 2:4" in out


def test_nm_sparse_size_runs(capsys):
  rows = _load('nm_sparse_size').main(
      ['--models', 'lenet300_100', '--patterns', '2:4']
  )
  (row,) = rows
  # The N:M layout beats the bitmask (3 bits per group of 4 against 4) and
  # halves the dense size; the file adds only the header and framing.
  assert row['with_nm'] < row['without'] < 0.55 * row['dense']
  assert row['codes_with'].get('nm') == 3
  assert row['file'] < row['with_nm'] + 8192
  assert '| lenet300_100 | 2:4 |' in capsys.readouterr().out


def test_optimizer_step_state_memory(capsys):
  """The state-memory table: RMDA keeps two parameter-sized trees (w0 and
  G; its prox point is recomputed), as Adam; SGD with momentum one. With a
  sparsity constraint too: its dual point is recomputed in each pass of the
  threshold search and in the loop that writes the parameters, never
  stored (a few scalars of search state more): 2 times the parameters."""
  bench = _load('optimizer_step')
  rows = bench.state_memory()
  per_param = {k: round(r['bytes_per_param'], 3) for k, r in rows.items()}
  assert per_param['optax.sgd(momentum=0.9)'] == 4.0
  assert per_param['optax.adam'] == 8.0
  assert per_param['rmda(l1, momentum=0.9)'] == 8.0
  assert rows['rmda(l1, momentum=0.9)']['with_params'] < 3.001
  for name in (
      'rmda(sparsity_constraint(0.95))',
      'rmda(sparsity_constraint(0.95)), cold search',
  ):
    assert per_param[name] == 8.0, name
    assert rows[name]['with_params'] < 3.001
  bench.main(['--state_only'])
  assert '| optax.adam | 8.00 |' in capsys.readouterr().out


def _tiny_resnet(monkeypatch):
  # Every mode reads the tree's shapes from the trees module, at each call.
  monkeypatch.setattr(
      _load('optimizer_step.trees'),
      'resnet18_shapes',
      lambda: {
          'conv/kernel': (3, 3, 16, 32),
          'fc/kernel': (32, 4),
          'fc/bias': (4,),
      },
  )


def test_optimizer_step_sparsity_rows_and_breakdown_run(capsys, monkeypatch):
  """The constraint's warm and cold rows with their passes column, and the
  breakdown (a tiny tree here; the ResNet-18-sized one in the benchmark)."""
  bench = _load('optimizer_step')
  _tiny_resnet(monkeypatch)
  runs = bench.main(
      ['--rounds', '2', '--steps', '2', '--only', 'sparsity', '--clock', 'cpu']
  )
  out = capsys.readouterr().out
  assert ' 4,740 parameters (float32)' in out  # The tiny tree was timed.
  assert '| threshold passes |' in out
  assert set(runs) == {
      'optax.sgd(momentum=0.9)',
      'prox_sgd(sparsity_constraint(0.95), momentum=0.9)',
      'rmda(sparsity_constraint(0.95))',
      'rmda(sparsity_constraint(0.95)), cold search',
  }
  warm = runs['rmda(sparsity_constraint(0.95))']['passes']
  cold = runs['rmda(sparsity_constraint(0.95)), cold search']['passes']
  assert max(warm) <= min(cold)
  timed = bench.breakdown_main(['--rounds', '2', '--steps', '1'])
  assert 'rmda(constraint), level known (no search)' in timed
  assert '| the search alone (warm, 1 pass) |' in capsys.readouterr().out
  # One step's timeline: the search's counting loop among its operations.
  bench.profile_main(['--steps', '4', '--min_ms', '0'])
  out = capsys.readouterr().out
  assert '| start (ms) | duration (ms) | thread | operation |' in out
  assert any('| while' in line for line in out.splitlines()), out


def test_optimizer_step_grid_runs(capsys, monkeypatch):
  """Every optimizer with every regularizer as a ratio to SGD (a tiny tree
  and two of each here); an unknown name is refused with the choices."""
  bench = _load('optimizer_step')
  _tiny_resnet(monkeypatch)
  table = bench.grid_main(
      [
          '--rounds',
          '1',
          '--only',
          'rmda',
          'prox_sgd',
          '--regularizers',
          'l1',
          'sparsity_constraint(0.9)',
      ]
  )
  assert set(table) == {'rmda', 'prox_sgd'}
  assert all(
      set(row) == {'l1', 'sparsity_constraint(0.9)'} and min(row.values()) > 0
      for row in table.values()
  )
  out = capsys.readouterr().out
  assert '| optimizer | SGD ms | l1 | sparsity_constraint(0.9) |' in out
  with pytest.raises(SystemExit, match='choose among'):
    bench.grid_main(['--regularizers', 'l2'])


def test_threshold_passes_runs_and_the_predictor_changes_no_answer(capsys):
  """A real (tiny) training run per predictor: the same losses step by
  step (the search is exact whatever it starts from), only its passes and
  misses may differ."""
  runs = _load('threshold_passes').main(
      [
          '--model',
          'lenet300_100',
          '--dataset',
          'synthetic:28x28x1:10',
          '--steps',
          '8',
          '--batch_size',
          '8',
      ]
  )
  out = capsys.readouterr().out
  assert '| smoothed | ' in out and '| raw | ' in out
  assert (runs['smoothed']['losses'] == runs['raw']['losses']).all()
  assert (runs['smoothed']['passes'][3:] == 1).all()
