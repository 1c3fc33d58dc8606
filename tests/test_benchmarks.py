"""The benchmark scripts run (tiny sizes; their figures are in the README)."""

import importlib


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
  """(The library's search against a stable sort: tests/test_pruning.py.)"""
  _load('projection').main(['--rounds', '1', '--no_sort'])
  out = capsys.readouterr().out
  assert (
      'counting passes' in out and '| bisection, 32 passes + tie ranks |' in out
  )
