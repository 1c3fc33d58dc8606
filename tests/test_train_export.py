"""python -m train.export: compacted, compressed models that compute what the
sparse model computes, and python -m train --eval_export."""

import json
import os
import shutil

import numpy as np
import pytest

pytest.importorskip('models')

import flax  # noqa: E402
import jax  # noqa: E402
import models  # noqa: E402
import rda_optax  # noqa: E402
from train import checkpoint as ckpt_lib  # noqa: E402
from train import cli  # noqa: E402
from train import config as config_lib  # noqa: E402
from train import export  # noqa: E402
from train import metrics as metrics_lib  # noqa: E402
from train import report as report_lib  # noqa: E402
from train import train as train_lib  # noqa: E402


def train_structured(tmp_path, model, dataset, lam, name='run', **kw):
  """A few steps of RMDA with group lasso on output channels (zero channels)."""
  options = dict(
      model=model,
      dataset=dataset,
      method='rmda',
      lr=0.05,
      momentum=0.9,
      regularizer='group_lasso',
      groups='output',
      lam=lam,
      batch_size=32,
      steps_per_epoch=8,
      epochs=2,
      asr_epochs=1,
      asr_optimizer='sgd',
      asr_lr=0.01,
      log_every_steps=4,
      progress=False,
      report=False,
      async_checkpointing=False,
      workdir=str(tmp_path / name),
  )
  cfg = config_lib.get_config(None, **{**options, **kw})
  train_lib.train_and_evaluate(cfg)
  return cfg


@pytest.fixture(scope='module')
def lenet5_run(tmp_path_factory):
  return train_structured(
      tmp_path_factory.mktemp('lenet5'),
      'lenet5',
      'synthetic:28x28x1:10',
      lam=0.15,
  )


def test_export_is_smaller_and_computes_the_same_logits(lenet5_run, tmp_path):
  out = str(tmp_path / 'export')
  meta = export.export_run(lenet5_run.workdir, out)
  assert sorted(os.listdir(out)) == ['export.md', 'model.json', 'variables.npz']
  assert meta['channel_sparsity'] > 0.3
  assert meta['macs']['exported'] < meta['macs']['dense'] / 2
  assert meta['parameters']['exported'] < meta['parameters']['dense'] / 2
  assert meta['bytes']['exported'] < meta['bytes']['dense_float32'] / 4
  # Rebuilt from the files alone: the same outputs as the run's final
  # (sparse) model, in eval mode.
  model, variables, loaded_meta = export.load_export(out)
  assert loaded_meta == json.load(open(os.path.join(out, 'model.json')))
  import models

  sparse = ckpt_lib.load_variables(lenet5_run.workdir)
  original = models.create('lenet5', num_classes=10)
  x = np.random.default_rng(1).uniform(size=(16, 28, 28, 1)).astype(np.float32)
  want = original.apply({'params': sparse['params']}, x, train=False)
  got = model.apply(variables, x, train=False)
  np.testing.assert_allclose(got, want, atol=1e-4, rtol=1e-4)
  text = open(os.path.join(out, 'export.md')).read()
  for needle in (
      'weight sparsity',
      'MACs per example',
      'dense float32',
      '## Channels per layer',
      'conv1',
  ):
    assert needle in text, needle


def test_export_width_multiple_rounds_widths_and_stays_exact(
    lenet5_run, tmp_path, capsys
):
  plain = export.export_run(
      lenet5_run.workdir, str(tmp_path / 'plain'), width_multiple=1
  )
  out = str(tmp_path / 'padded')
  assert export.main([lenet5_run.workdir, '--out', out]) == 0  # default 8
  meta = json.load(open(os.path.join(out, 'model.json')))
  assert meta['width_multiple'] == 8 and plain['width_multiple'] == 1
  dense = (20, 50, 500)
  widths = meta['fields'].get('features', dense)
  for w, d in zip(widths, dense):
    assert w % 8 == 0 or w == d, widths
  assert meta['macs']['exported'] >= plain['macs']['exported']
  assert meta['max_abs_logit_diff'] < 1e-4
  assert 'rounded up to multiples of 8' in capsys.readouterr().out
  with pytest.raises(SystemExit) as e:
    export.main([lenet5_run.workdir, '--width_multiple', '0'])
  assert e.value.code == 2
  assert '--width_multiple must be >= 1' in capsys.readouterr().err


def test_eval_export_matches_the_runs_own_evaluation(
    lenet5_run, tmp_path, capsys
):
  """The export folder or the run directory holding it (its export/, where
  python -m train.export RUN_DIR writes) give the run's own test metrics; a
  run directory without an export is a one-line error naming the fix."""
  run = tmp_path / 'run'
  os.makedirs(run)
  shutil.copy(os.path.join(lenet5_run.workdir, 'config.json'), run)
  assert cli.main(['--eval_export', str(run)]) == 2
  assert 'without an export; make one with python -m train.export' in (
      capsys.readouterr().err
  )
  out = str(run / 'export')
  export.export_run(lenet5_run.workdir, out)
  last = metrics_lib.read_records(lenet5_run.workdir, 'eval')[-1]
  for given in (out, str(run)):
    capsys.readouterr()
    assert cli.main(['--eval_export', given]) == 0
    line = capsys.readouterr().out.strip().splitlines()[-1]
    assert f'test top-1 {last["test_top1"]:.4f}' in line, line
    assert 'on synthetic:28x28x1:10' in line


def test_resnet_with_batch_norm_exports_exactly(tmp_path):
  cfg = train_structured(tmp_path, 'resnet8', 'synthetic:32x32x3:10', lam=0.05)
  meta = export.export_run(cfg.workdir, time_batch=4)
  assert meta['max_abs_logit_diff'] < 1e-3
  assert meta['cpu_inference']['speedup'] > 0
  model, variables, _ = export.load_export(os.path.join(cfg.workdir, 'export'))
  assert 'batch_stats' in variables
  assert model.num_classes == 10


@pytest.mark.parametrize('penalty', ['l1', 'channel'])
def test_scale_lam_zeros_batch_norm_scales_and_export_removes_channels(
    tmp_path, penalty
):
  """--scale_lam (network slimming): its penalty on the batch-norm scales
  makes exact zeros in them (kernels untouched by it), ASR keeps them at
  zero, and the export removes the channels they silence, logits
  unchanged. With --scale_penalty channel a silenced channel's shifts are
  zero too, in every writer of its space (a residual stream's channel in
  the stem and every block at once), so every such channel goes."""
  cfg = train_structured(
      tmp_path,
      'resnet8',
      'synthetic:32x32x3:10',
      lam=1e-4,
      regularizer='l1',
      lr=0.5,
      scale_lam=0.2,
      scale_penalty=penalty,
  )
  params = ckpt_lib.load_variables(cfg.workdir)['params']
  flat = flax.traverse_util.flatten_dict(params, sep='/')
  scales = np.concatenate(
      [np.asarray(v).ravel() for k, v in flat.items() if k.endswith('/scale')]
  )
  assert np.mean(scales == 0) > 0
  # The zero scales were made during the sparse phase and kept by ASR.
  evals = metrics_lib.read_records(cfg.workdir, 'eval')
  assert any(r.get('phase') == 'asr' for r in evals)
  assert evals[-1]['zero_scales'] == pytest.approx(np.mean(scales == 0))
  meta = export.export_run(cfg.workdir, width_multiple=1)
  assert meta['max_abs_logit_diff'] < 1e-3
  assert meta['channels']['no_signal'] > 0
  assert meta['channels']['removed'] > 0
  assert meta['parameters']['exported'] < meta['parameters']['dense']
  if penalty == 'channel':
    for group in models.coupled_scales(models.create('resnet8'), shifts=True):
      members = np.stack([np.asarray(flat[p]) for p in group])
      zero = np.all(members == 0, axis=0)
      # A group is all zero or has no zero scale (no partly silenced one).
      scale_zero = np.stack(
          [np.asarray(flat[p]) == 0 for p in group if p.endswith('/scale')]
      )
      np.testing.assert_array_equal(scale_zero.any(axis=0), zero)


def test_export_errors_are_one_line(tmp_path, capsys):
  assert export.main([str(tmp_path / 'missing')]) == 2
  assert 'is not a run directory' in capsys.readouterr().err
  assert export.main([str(tmp_path)]) == 2  # No config.json.
  err = capsys.readouterr().err
  assert err.startswith('error: Cannot export') and err.count('\n') == 1
  with pytest.raises(export.ExportError, match='not a readable export'):
    export.load_export(str(tmp_path))


def test_a_damaged_export_is_refused(lenet5_run, tmp_path, capsys):
  out = str(tmp_path / 'export')
  export.export_run(lenet5_run.workdir, out)
  meta_path = os.path.join(out, 'model.json')
  meta = json.load(open(meta_path))
  json.dump(dict(meta, version=99), open(meta_path, 'w'))
  with pytest.raises(export.ExportError, match='version 99'):
    export.load_export(out)
  json.dump(dict(meta, fields={}), open(meta_path, 'w'))  # Wrong widths.
  with pytest.raises(export.ExportError, match='does not match the template'):
    export.load_export(out)
  json.dump(meta, open(meta_path, 'w'))
  path = os.path.join(out, 'variables.npz')
  data = open(path, 'rb').read()
  open(path, 'wb').write(data[: len(data) // 3])
  with pytest.raises(export.ExportError, match='truncated or corrupted'):
    export.load_export(out)
  assert cli.main(['--eval_export', out]) == 2
  assert 'truncated or corrupted' in capsys.readouterr().err
  assert isinstance(rda_optax.SparseFormatError('x'), ValueError)


def test_an_unfinished_rmda_run_exports_its_prox_point(lenet5_run, tmp_path):
  """--stop_at_step mid-RMDA, then export: the prox point (the sparsity the
  run logged), not the dense iterate the checkpoint's parameters hold."""
  cfg = train_structured(
      tmp_path, 'lenet5', 'synthetic:28x28x1:10', lam=0.15, stop_at_step=12
  )
  del lenet5_run  # (Its steps are compiled: the same options.)
  iterate = ckpt_lib.load_variables(cfg.workdir)['params']
  meta = export.export_run(cfg.workdir)
  logged = metrics_lib.read_records(cfg.workdir, 'train')[-1]
  assert logged['step'] == meta['source']['step'] == 12
  assert logged['sparsity'] > 0.05
  assert meta['weight_sparsity'] == pytest.approx(logged['sparsity'])
  dense_nonzero = sum(
      int(np.count_nonzero(x)) for x in jax.tree.leaves(iterate)
  )
  assert meta['parameters']['nonzero'] < dense_nonzero
  # python -m train.report of the unfinished run: the same sparse model,
  # and the evaluation (step 8, the last) said to be of an earlier one.
  assert report_lib.main([cfg.workdir]) == 0
  with open(os.path.join(cfg.workdir, 'report', 'summary.json')) as f:
    summary = json.load(f)
  assert summary['sparsity'] == pytest.approx(logged['sparsity'])
  assert (summary['steps'], summary['model_step']) == (8, 12)
  with open(os.path.join(cfg.workdir, 'report', 'report.md')) as f:
    assert 'unfinished run' in f.read()


def test_evaluating_a_stale_export_says_so(lenet5_run, capsys):
  """An export of step 12 evaluated after its run went on: the line names
  its step, and a note the newer checkpoint and how to export it."""
  src = export.export_run(lenet5_run.workdir)['source']
  with open(os.path.join(lenet5_run.workdir, 'export', 'model.json')) as f:
    meta = json.load(f)
  meta['source']['step'] = src['step'] - 4  # As if exported 4 steps ago.
  with open(os.path.join(lenet5_run.workdir, 'export', 'model.json'), 'w') as f:
    json.dump(meta, f)
  capsys.readouterr()
  export.evaluate_export(lenet5_run.workdir, lenet5_run)
  out = capsys.readouterr().out
  assert f'of step {src["step"] - 4}' in out
  assert f'newer checkpoint, step {src["step"]}' in out
  assert f'python -m train.export {src["run"]}' in out
