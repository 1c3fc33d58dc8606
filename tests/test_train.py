"""The training loop in-process on synthetic data (1 CPU device).

Each test trains a few steps of a small model: the run directory's contents,
every method, resume, and --init_from (Han et al.'s prune + fine-tune).
"""

import json
import os
import shutil

import jax
import numpy as np
import pytest

import rda_optax
from train import checkpoint as ckpt_lib
from train import config as config_lib
from train import config_checks
from train.data import loader as data_lib
from train import metrics as metrics_lib
from train import report
from train import train as train_lib
from train import train_state as state_lib
from train import train_step as step_lib

from _train_driver import TinyBN, flat

BASE = dict(
    method='rda',
    dataset='synthetic',
    batch_size=16,
    steps_per_epoch=4,
    epochs=1,
    asr_epochs=1,
    lam=1e-3,
    gamma=1.0,
    init_scale=2.0,
    log_every_steps=2,
    progress=False,
    async_checkpointing=False,
)


def make_cfg(tmp_path, name='run', **kw):
  values = dict(BASE, workdir=str(tmp_path / name))
  values.update(kw)
  return config_lib.get_config(None, **values)


def tiny_data(cfg):
  return data_lib.synthetic_data(
      cfg.dataset,
      global_batch=cfg.batch_size,
      eval_global_batch=cfg.eval_batch,
      seed=cfg.seed,
      num_train=256,
      num_eval=40,
  )


def run(cfg, model=None):
  return train_lib.train_and_evaluate(
      cfg, model=model or TinyBN(), data=tiny_data(cfg)
  )


def test_two_steps_change_params_and_report_metrics(tmp_path):
  cfg = make_cfg(tmp_path, epochs=0.5, asr_epochs=0, report=False)
  model = TinyBN()
  data = tiny_data(cfg)
  init_params, _ = state_lib.initialized(
      jax.random.split(jax.random.key(cfg.seed))[0], data.image_shape, model
  )
  state = train_lib.train_and_evaluate(cfg, model=model, data=data)
  assert int(state.step) == 2
  moved = jax.tree.map(
      lambda a, b: float(np.abs(np.asarray(a) - b).max()),
      init_params,
      state.params,
  )
  assert all(v > 0 for v in jax.tree.leaves(moved))
  assert state.batch_stats  # Updated batch-norm statistics are kept.
  train_rec = metrics_lib.read_records(cfg.workdir, 'train')
  assert train_rec and np.isfinite(train_rec[-1]['loss'])
  for key in ('top1', 'top5', 'gamma', 'lam', 'sparsity', 'phase', 'epoch'):
    assert key in train_rec[-1], key


def test_run_directory_contents(tmp_path):
  cfg = make_cfg(tmp_path)
  state = run(cfg)
  wd = cfg.workdir
  assert int(state.step) == 8
  assert config_lib.load_config(wd) == cfg
  evals = metrics_lib.read_records(wd, 'eval')
  assert [r['step'] for r in evals] == [4, 8]
  assert [r['phase'] for r in evals] == ['main', 'asr']
  last = evals[-1]
  for key in (
      'test_top1',
      'test_top5',
      'test_loss',
      'train_top1',
      'sparsity',
      'total_sparsity',
      'layers',
  ):
    assert key in last, key
  assert 0 < last['sparsity'] < 1  # l1 with lam 1e-3 makes zeros.
  assert set(last['layers']) == {
      'Conv_0/kernel',
      'Conv_1/kernel',
      'Dense_0/kernel',
  }
  trains = metrics_lib.read_records(wd, 'train')
  assert any(r.get('images_per_sec', 0) > 0 for r in trains)
  assert os.listdir(os.path.join(wd, 'tensorboard'))
  assert ckpt_lib.Checkpoints(
      os.path.join(wd, 'checkpoints'), read_only=True
  ).all_steps() == [4, 8]
  rep = os.path.join(wd, 'report')
  for f in (
      'sparsity_table.txt',
      'summary.json',
      'report.md',
      'accuracy.png',
      'sparsity.png',
      'layer_sparsity.png',
  ):
    assert os.path.getsize(os.path.join(rep, f)) > 0, f
  summary = json.load(open(os.path.join(rep, 'summary.json')))
  assert summary['sparsity'] == pytest.approx(last['sparsity'])
  assert (
      'Dense_0/kernel*' in open(os.path.join(rep, 'sparsity_table.txt')).read()
  )
  # `python -m train.report RUN_DIR` rebuilds the report from the run dir.
  shutil.rmtree(rep)
  assert report.main([wd]) == 0
  assert os.path.getsize(os.path.join(rep, 'layer_sparsity.png')) > 0
  assert json.load(open(os.path.join(rep, 'summary.json')))['sparsity'] == (
      pytest.approx(last['sparsity'])
  )
  # The rebuilt report keeps the run's last hyper-parameters.
  assert (
      '- last hyper-parameters: ' in open(os.path.join(rep, 'report.md')).read()
  )


def test_rerunning_a_finished_run_says_so(tmp_path, capsys):
  cfg = make_cfg(tmp_path, epochs=0.5, asr_epochs=0)
  run(cfg)
  capsys.readouterr()
  state = run(cfg)
  out = capsys.readouterr().out
  assert int(state.step) == 2
  assert out.startswith(f'{cfg.workdir} is already complete (2 of 2 steps)')
  assert '# Report' in out and '- last hyper-parameters: ' in out


def test_report_of_a_missing_or_foreign_directory_is_one_line(tmp_path, capsys):
  assert report.main([str(tmp_path / 'nowhere')]) == 2
  err = capsys.readouterr().err
  assert err.count('\n') == 1 and 'is not a run directory' in err
  assert report.main([str(tmp_path)]) == 2
  err = capsys.readouterr().err
  assert err.count('\n') == 1 and 'cannot rebuild the report' in err


def test_asr_freezes_zeros_of_the_rda_phase(tmp_path):
  cfg = make_cfg(
      tmp_path,
      epochs=1,
      asr_epochs=1,
      checkpoint_every_steps=1,
      keep_checkpoints=10,
      report=False,
      lam=1e-2,
  )
  run(cfg)
  c = ckpt_lib.Checkpoints(
      os.path.join(cfg.workdir, 'checkpoints'), read_only=True
  )
  for name in ('Conv_1', 'Dense_0'):
    k4 = c.restore_raw(4)['params'][name]['kernel']
    k8 = c.restore_raw(8)['params'][name]['kernel']
    assert (k4 == 0).any(), name
    assert np.all(k8[k4 == 0] == 0), name  # Zeros at the ASR start stay zero.
  c.close()


@pytest.fixture(scope='module')
def base_full(tmp_path_factory):
  """The BASE job run to its end (no report): the reference the resume
  tests compare with (flat params, flat optimizer state)."""
  state = run(make_cfg(tmp_path_factory.mktemp('base'), 'full', report=False))
  return flat(state.params), flat(state.opt_state)


def test_resume_is_bit_identical(tmp_path, base_full):
  part_cfg = make_cfg(tmp_path, 'part', report=False)
  stopped = run(part_cfg.replace(stop_at_step=3))
  assert int(stopped.step) == 3
  # Records after the checkpoint would be dropped on resume; the rerun with
  # the same run directory continues from step 3.
  resumed = run(part_cfg)
  assert int(resumed.step) == 8
  a, b = base_full[0], flat(resumed.params)
  for k in a:
    np.testing.assert_array_equal(a[k], b[k], err_msg=k)
  a, b = base_full[1], flat(resumed.opt_state)
  for k in a:
    np.testing.assert_array_equal(a[k], b[k], err_msg=k)
  steps = [
      r['step'] for r in metrics_lib.read_records(part_cfg.workdir, 'eval')
  ]
  assert steps == [4, 8]


@pytest.mark.parametrize(
    'method,extra',
    [
        ('sgd', dict(asr_epochs=0, lr=0.05)),
        ('prox_sgd', dict(lr=0.05, lam=1e-2)),
        ('rda', dict(regularizer='group_lasso', lam=0.5)),
        ('rda', dict(regularizer='tl1', lam=1e-2, asr_restart=True)),
        (
            'gmp',
            dict(
                asr_epochs=0,
                lr=0.05,
                gmp_sparsity=0.5,
                gmp_frequency=1,
                gmp_end_epoch=0.5,
                epochs=1,
                prune_scope='layer',
            ),
        ),
        ('rmda', dict(lr=0.05, lam=5e-2, momentum=0.9)),
        ('rmda', dict(lr=0.05, lam=5e-2, momentum=0.0, asr_optimizer='sgd')),
        ('rmda', dict(lr=0.05, lam=5e-2, asr_epochs=0, restart_epochs=(0.5,))),
        # The Adam-type methods of the transformers, and N:M.
        ('adamw', dict(asr_epochs=0, lr=1e-2, adamw_weight_decay=0.1)),
        (
            'prox_adamw',
            dict(lr=1e-2, regularizer='nm', nm='2:4', target_end_epoch=0.5),
        ),
        (
            'rmda',
            dict(
                lr=0.05,
                regularizer='nm',
                nm='1:4',
                nm_schedule='fraction',
                asr_epochs=0,
            ),
        ),
        (
            'gmp_adamw',
            dict(
                asr_epochs=0,
                lr=1e-2,
                nm='2:4',
                gmp_frequency=1,
                gmp_end_epoch=0.5,
            ),
        ),
    ],
)
def test_methods(tmp_path, method, extra):
  kw = dict(method=method, report=False)
  kw.update(extra)
  if method in ('sgd', 'gmp'):
    kw['lam'] = 0.0
  cfg = make_cfg(tmp_path, **kw)
  config_checks.validate(cfg)
  state = run(cfg)
  kernels = [
      np.asarray(p) for p in jax.tree.leaves(state.params) if np.ndim(p) > 1
  ]
  assert all(np.all(np.isfinite(k)) for k in kernels)
  zeros = sum(int((k == 0).sum()) for k in kernels)
  if cfg.nm:  # Every kernel meets the pattern, and it is not vacuous.
    n, m = (int(v) for v in cfg.nm.split(':'))
    assert all(rda_optax.satisfies_nm(k, n, m) for k in kernels)
    assert not rda_optax.satisfies_nm(kernels[-1], n - 1, m)
  if method in ('sgd', 'adamw'):
    assert zeros == 0
  elif method == 'gmp':
    for k in kernels:  # Per-layer scope.
      assert float((k == 0).mean()) == pytest.approx(0.5, abs=0.02)
  else:
    assert zeros > 0


def test_rmda_is_evaluated_reported_and_saved_at_its_sparse_point(tmp_path):
  """With momentum, RMDA's iterate is not sparse, its prox point is: the
  logged sparsity, the evals and the final state are the prox point's."""
  cfg = make_cfg(
      tmp_path,
      method='rmda',
      lr=0.05,
      lam=5e-2,
      momentum=0.9,
      asr_epochs=0,
      epochs=2,
      report=False,
  )
  state = run(cfg)
  import rda_optax

  kernels = [
      np.asarray(p) for p in jax.tree.leaves(state.params) if np.ndim(p) > 1
  ]
  zeros = sum(int((k == 0).sum()) for k in kernels)
  size = sum(k.size for k in kernels)
  evals = metrics_lib.read_records(cfg.workdir, 'eval')
  assert zeros > 0
  assert evals[-1]['sparsity'] == pytest.approx(zeros / size)
  # The final checkpoint holds the sparse model (what --init_from reads).
  saved = ckpt_lib.load_variables(cfg.workdir)['params']
  for a, b in zip(jax.tree.leaves(saved), jax.tree.leaves(state.params)):
    np.testing.assert_array_equal(a, b)
  # Mid-run, the parameters themselves are the (dense) interpolated iterate.
  c = ckpt_lib.Checkpoints(
      os.path.join(cfg.workdir, 'checkpoints'), read_only=True
  )
  mid = c.restore_raw(4)
  c.close()
  mid_kernels = [p for p in jax.tree.leaves(mid['params']) if np.ndim(p) > 1]
  assert (
      sum(int((k == 0).sum()) for k in mid_kernels)
      < evals[0]['sparsity'] * size
  )
  assert 'lr' in metrics_lib.read_records(cfg.workdir, 'train')[-1]
  del rda_optax


def test_rmda_asr_with_sgd_retraining_freezes_the_prox_points_zeros(tmp_path):
  cfg = make_cfg(
      tmp_path,
      method='rmda',
      lr=0.05,
      lam=5e-2,
      momentum=0.9,
      asr_optimizer='sgd',
      asr_lr=0.01,
      asr_lr_schedule='cosine',
      checkpoint_every_steps=1,
      keep_checkpoints=10,
      report=False,
  )
  state = run(cfg)
  evals = metrics_lib.read_records(cfg.workdir, 'eval')
  assert evals[0]['sparsity'] > 0
  # ASR starts at the prox point: its zeros (the end-of-phase sparsity) stay.
  assert evals[1]['sparsity'] >= evals[0]['sparsity']
  trains = metrics_lib.read_records(cfg.workdir, 'train')
  assert trains[-1]['lr'] == pytest.approx(
      0.01 * 0.5 * (1 + np.cos(np.pi * 3 / 4))
  )  # Cosine over the 4 ASR steps.
  kernels = [
      np.asarray(p) for p in jax.tree.leaves(state.params) if np.ndim(p) > 1
  ]
  size = sum(k.size for k in kernels)
  assert evals[1]['sparsity'] == pytest.approx(
      sum(int((k == 0).sum()) for k in kernels) / size
  )


def test_rmda_resume_is_bit_identical(tmp_path):
  kw = dict(
      method='rmda',
      lr=0.05,
      lam=5e-2,
      momentum=0.9,
      asr_optimizer='sgd',
      report=False,
  )
  full = run(make_cfg(tmp_path, 'full', **kw))
  part_cfg = make_cfg(tmp_path, 'part', **kw)
  run(part_cfg.replace(stop_at_step=5))
  resumed = run(part_cfg)
  a, b = flat(full.params), flat(resumed.params)
  for k in a:
    np.testing.assert_array_equal(a[k], b[k], err_msg=k)


def test_han_prunes_and_fine_tunes_from_a_run(tmp_path):
  dense = make_cfg(
      tmp_path,
      'dense',
      method='sgd',
      asr_epochs=0,
      lam=0.0,
      lr=0.05,
      report=False,
  )
  run(dense)
  han = make_cfg(
      tmp_path,
      'han',
      method='han',
      asr_epochs=0,
      lam=0.0,
      lr=0.01,
      init_from=dense.workdir,
      prune_sparsity=0.8,
      prune_scope='layer',
      report=False,
  )
  config_checks.validate(han)
  state = run(han)
  for name in ('Conv_1', 'Dense_0'):
    k = np.asarray(state.params[name]['kernel'])
    assert float((k == 0).mean()) == pytest.approx(0.8, abs=0.01), name
  glob = run(
      han.replace(workdir=str(tmp_path / 'han_global'), prune_scope='global')
  )
  kernels = [
      np.asarray(p) for p in jax.tree.leaves(glob.params) if np.ndim(p) > 1
  ]
  zeros = sum(int((k == 0).sum()) for k in kernels)
  assert zeros / sum(k.size for k in kernels) == pytest.approx(0.8, abs=0.01)
  src = ckpt_lib.load_variables(dense.workdir)
  # Fine-tuning moved the kept weights.
  assert not np.array_equal(
      src['params']['Dense_0']['bias'], state.params['Dense_0']['bias']
  )
  # han_adamw --nm 2:4: pruned to 2:4 by magnitude, fine-tuned by AdamW with
  # the pattern's zeros frozen.
  nm = make_cfg(
      tmp_path,
      'han_nm',
      method='han_adamw',
      asr_epochs=0,
      lr=1e-2,
      init_from=dense.workdir,
      nm='2:4',
      report=False,
  )
  config_checks.validate(nm, {'nm', 'lr'})
  state = run(nm)
  for name in ('Conv_1', 'Dense_0'):
    k = np.asarray(state.params[name]['kernel'])
    assert rda_optax.satisfies_nm(k, 2, 4), name
    assert float((k == 0).mean()) == pytest.approx(0.5), name
    want = np.asarray(
        rda_optax.nm_masks({'k': src['params'][name]['kernel']}, 2, 4)['k']
    )
    np.testing.assert_array_equal(k != 0, want)  # The largest 2 of 4 kept.


def test_init_from_a_different_model_is_a_clear_error(tmp_path):
  dense = make_cfg(
      tmp_path,
      'dense',
      method='sgd',
      asr_epochs=0,
      lam=0.0,
      report=False,
      epochs=0.5,
  )
  run(dense)
  other = make_cfg(tmp_path, 'other', init_from=dense.workdir, report=False)
  with pytest.raises(config_lib.ConfigError, match='do not fit this model'):
    run(other, model=TinyBN(num_classes=7))


def test_init_from_names_the_option_that_differs(tmp_path):
  """Parameters of another --context: the error names it, not --model."""
  source = make_cfg(tmp_path, 'source', model='gpt_char', context=16)
  os.makedirs(source.workdir)
  config_lib.write_config(source, os.path.join(source.workdir, 'config.json'))
  here = source.replace(context=32, workdir=str(tmp_path / 'here'))
  with pytest.raises(config_lib.ConfigError, match=r'--context 16 \(here 32\)'):
    state_lib._load_matching(  # pylint: disable=protected-access
        'params',
        {'positions': np.zeros((32, 4))},
        {'positions': np.zeros((16, 4))},
        source.workdir,
        here,
    )


def test_lenet5_from_models(tmp_path):
  models = pytest.importorskip('models')
  assert 'lenet5' in models.REGISTRY
  cfg = make_cfg(
      tmp_path,
      model='lenet5',
      report=False,
      epochs=3,
      asr_epochs=1,
      lam=1e-4,
      gamma=10,
      init_scale=1,
  )
  state = train_lib.train_and_evaluate(cfg, data=tiny_data(cfg))
  assert int(state.step) == 16
  assert not state.batch_stats
  # Synthetic classes (a template per class plus noise) are easy to learn.
  last = metrics_lib.read_records(cfg.workdir, 'eval')[-1]
  assert last['test_top1'] > 0.5, last


def test_divergence_stops_with_a_clear_error_and_keeps_the_good_checkpoint(
    tmp_path,
):
  """γ tiny: RDA's step 1/(γ√n) explodes; the run stops, exit 3 from the CLI,
  and no checkpoint of the diverged state is written."""
  cfg = make_cfg(
      tmp_path,
      gamma=1e-38,
      epochs=2,
      asr_epochs=0,
      report=False,
      log_every_steps=1,
      checkpoint_every_steps=1,
  )
  with pytest.raises(config_lib.Diverged, match='raise --gamma') as e:
    run(cfg)
  assert 'training diverged at step' in str(e.value)
  c = ckpt_lib.Checkpoints(
      os.path.join(cfg.workdir, 'checkpoints'), read_only=True
  )
  for step in c.all_steps():
    tree = c.restore_raw(step)
    assert all(
        np.isfinite(np.asarray(x)).all()
        for x in jax.tree.leaves(tree['params'])
    )
  c.close()


def _corrupt(path):
  """Truncates the largest file under ``path``."""
  files = [os.path.join(d, f) for d, _, fs in os.walk(path) for f in fs]
  big = max(files, key=os.path.getsize)
  with open(big, 'r+b') as f:
    f.truncate(max(os.path.getsize(big) // 3, 1))


@pytest.mark.parametrize('damage', ['truncated', 'empty'])
def test_resume_skips_an_unreadable_checkpoint(
    tmp_path, damage, capsys, base_full
):
  cfg = make_cfg(
      tmp_path,
      'part',
      report=False,
      checkpoint_every_steps=1,
      keep_checkpoints=10,
  )
  run(cfg.replace(stop_at_step=5))
  newest = os.path.join(cfg.workdir, 'checkpoints', '5')
  if damage == 'truncated':
    _corrupt(newest)
  else:
    shutil.rmtree(newest)
    os.makedirs(newest)
  with open(os.path.join(cfg.workdir, 'metrics.jsonl'), 'ab') as f:
    f.write(b'\xff\xfe not utf-8\n')  # A damaged record is skipped too.
  resumed = run(cfg)
  err = capsys.readouterr().err
  assert 'checkpoint step 5' in err and 'unreadable' in err
  assert int(resumed.step) == 8
  a, b = base_full[0], flat(resumed.params)
  for k in a:
    np.testing.assert_array_equal(a[k], b[k], err_msg=k)


def test_resume_with_no_readable_checkpoint_is_one_clear_error(tmp_path):
  cfg = make_cfg(
      tmp_path, report=False, checkpoint_every_steps=1, keep_checkpoints=2
  )
  run(cfg.replace(stop_at_step=3))
  ckdir = os.path.join(cfg.workdir, 'checkpoints')
  for step in os.listdir(ckdir):
    if step.isdigit():
      _corrupt(os.path.join(ckdir, step))
  with pytest.raises(config_lib.ConfigError, match='remove that folder'):
    run(cfg)


def test_batch_norm_statistics_are_recalibrated_for_the_sparse_model(tmp_path):
  """RMDA's prox point is not the trained iterate: its running statistics
  are measured anew (first conv's BN mean = the batch mean of its inputs)."""
  import optax

  cfg = make_cfg(
      tmp_path,
      method='rmda',
      lr=0.05,
      momentum=0.9,
      lam=1e-3,
      asr_epochs=0,
      report=False,
  )
  data = tiny_data(cfg)
  model = TinyBN()
  params, stats = state_lib.initialized(
      jax.random.key(0), data.image_shape, model
  )
  wrong = jax.tree.map(lambda x: x + 3.0, stats)  # Someone else's statistics.
  state = state_lib.TrainState.create(
      apply_fn=model.apply,
      params=params,
      tx=optax.identity(),
      batch_stats=wrong,
  )
  out = state_lib.unreplicate(
      step_lib.recalibrate_batch_stats(
          step_lib.make_p_bn_step(data), state_lib.replicate(state), data
      )
  )
  # The first conv's outputs on the same batches, averaged as Flax's
  # BatchNorm does (decay 0.9 a pass), from the wrong statistics.
  expected = np.asarray(wrong['BatchNorm_0']['mean'], np.float64)
  conv = params['Conv_0']['kernel']
  batches = data.train_batches(0)
  for _ in range(step_lib.BN_RECALIBRATION_BATCHES):
    batch = next(batches)
    images = data.preprocess(batch['image'][0], jax.random.key(0), False)
    y = jax.lax.conv_general_dilated(
        images, conv, (1, 1), 'SAME', dimension_numbers=('NHWC', 'HWIO', 'NHWC')
    )
    expected = 0.9 * expected + 0.1 * np.asarray(y.mean(axis=(0, 1, 2)))
  np.testing.assert_allclose(
      out.batch_stats['BatchNorm_0']['mean'], expected, rtol=1e-4, atol=1e-5
  )
  # The training run itself: with momentum the final (sparse) model is saved
  # with statistics of its own, different from the iterate's.
  run(cfg)
  final = ckpt_lib.load_variables(cfg.workdir)
  assert final['batch_stats'] and all(
      np.all(np.isfinite(x)) for x in jax.tree.leaves(final['batch_stats'])
  )


def test_batch_not_divisible(monkeypatch):
  monkeypatch.setattr(jax, 'device_count', lambda: 8)
  with pytest.raises(
      config_lib.ConfigError, match='not divisible by the 8 devices'
  ):
    train_lib.check_runtime(config_lib.get_config(batch_size=100))
  train_lib.check_runtime(config_lib.get_config(batch_size=128))
