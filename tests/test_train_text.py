"""The language-model task: the Shakespeare corpus, its windows, a GPT run.

The corpus tests read the shared data folder (skipped without it); the
windows are checked in NumPy; one small GPT trains in-process on a tiny
text (a few steps, N:M by RAMDA) for the run directory, the report and a
bit-identical resume.
"""

import json
import math
import os
import shutil

import jax
import numpy as np
import pytest

import models
import rda_optax
from train import cli
from train import config as config_lib
from train import metrics as metrics_lib
from train import tasks
from train import train as train_lib
from train.data import datasets
from train.data import loader as data_loader
from train.data import text_pipeline
from train.data import text_source

from _train_driver import flat

SHARED = os.environ.get(
    'RDA_SHARED_DATA',
    os.path.join(os.path.dirname(__file__), '..', '..', 'shared', 'data'),
)
SHAKESPEARE_DIR = os.path.join(SHARED, 'shakespeare')
needs_corpus = pytest.mark.skipif(
    not os.path.exists(os.path.join(SHAKESPEARE_DIR, 'shakespeare.txt.gz')),
    reason=f'the Shakespeare corpus is not in {SHAKESPEARE_DIR} (set '
    'RDA_SHARED_DATA to the shared data folder)',
)


# ---------------------------------------------------------------------------
# The corpus.
# ---------------------------------------------------------------------------


@needs_corpus
def test_shakespeare_is_verified_and_its_last_tenth_held_out():
  c = text_source.load_text('shakespeare_char', manual_dir=SHAKESPEARE_DIR)
  assert c.vocab_size == 84 == len(datasets.SHAKESPEARE.vocabulary)
  assert (len(c.train), len(c.eval)) == (4_551_554, 505_728)
  assert len(c.eval) == datasets.SHAKESPEARE.num_eval
  assert c.train.dtype == np.uint8 and int(c.train.max()) < 84
  assert c.decode(c.train[:25]) == "ALL'S WELL THAT ENDS WELL"
  # The validation slice is the contiguous end of the text.
  assert c.decode(c.eval[:32]) == " for that; and that's one of the"
  assert c.decode(c.eval[-12:]) == '[Exeunt.]\n\n\n'
  assert c.decode(c.encode('To be, or not')) == 'To be, or not'


@needs_corpus
def test_a_damaged_corpus_is_refused(tmp_path):
  src = os.path.join(SHAKESPEARE_DIR, 'shakespeare.txt.gz')
  bad = tmp_path / 'shakespeare.txt.gz'
  bad.write_bytes(open(src, 'rb').read()[:-100])
  with pytest.raises(text_source.CorpusMismatchError, match='sha256'):
    text_source.load_text('shakespeare_char', manual_dir=str(tmp_path))


@needs_corpus
def test_a_manual_folder_without_the_corpus_is_an_error(tmp_path):
  """--manual_dir names a folder: one without the corpus is an error, not
  the shared copy used instead without a word."""
  with pytest.raises(datasets.DatasetNotFoundError, match='--manual_dir'):
    text_source.load_text('shakespeare_char', manual_dir=str(tmp_path))


def test_the_best_evaluation_says_when_and_how_sparse():
  """The report's "best" is an earlier, denser model in a ramp: it says so."""
  summary = {'steps': 16, 'best_step': 12, 'best_sparsity': 0.25}
  assert tasks.best_at(summary) == ' at step 12, sparsity 25.00%'
  assert tasks.best_at(dict(summary, best_step=16)) == ''
  assert tasks.best_at(dict(summary, best_sparsity=None)) == ' at step 12'


def test_a_missing_corpus_is_one_line_naming_where_to_put_it(
    tmp_path, monkeypatch, capsys
):
  monkeypatch.setenv(datasets.SHARED_DATA_ENV, str(tmp_path / 'nothing'))
  monkeypatch.delenv(datasets.MANUAL_DIR_ENV, raising=False)
  with pytest.raises(datasets.DatasetNotFoundError) as e:
    text_source.load_text('shakespeare_char')
  for words in ('RDA_SHARED_DATA/shakespeare/', '--manual_dir', 'sha256'):
    assert words in str(e.value)
  status = cli.main(
      [
          '--model',
          'gpt_char',
          '--dataset',
          'shakespeare_char',
          '--method',
          'adamw',
          '--lr',
          '1e-3',
          '--workdir',
          str(tmp_path / 'run'),
      ]
  )
  err = capsys.readouterr().err
  assert status == 2 and err.count('\n') == 1, err
  assert "Cannot load dataset 'shakespeare_char'" in err


@pytest.mark.parametrize(
    'model,dataset,message',
    [
        ('lenet5', 'shakespeare_char', 'use a token model (gpt_char)'),
        ('gpt_char', 'mnist', 'is a language model'),
    ],
)
def test_a_model_of_the_other_task_is_refused(
    model, dataset, message, tmp_path, capsys
):
  argv = ['--model', model, '--dataset', dataset, '--method', 'adamw']
  status = cli.main(argv + ['--lr', '1e-3', '--workdir', str(tmp_path / 'r')])
  err = capsys.readouterr().err
  assert status == 2 and message in err, err
  assert not (tmp_path / 'r').exists()


@needs_corpus
def test_eval_split_takes_the_beginning_of_the_held_out_slice():
  cfg = config_lib.get_config(
      'shakespeare_gpt_adamw', eval_split='test[:1%]', workdir='runs/x'
  )
  data = data_loader.create_data(cfg, prefetch_size=0)
  # 5,057 characters: 5,056 predictions in windows of 128.
  assert data.num_eval_examples == -(-5056 // 128) == 40
  masks = [b['mask'] for b in data.eval_batches()]
  assert sum(float(m.sum()) for m in masks) == 5056


def test_a_part_too_short_for_the_context_is_named_with_its_fix():
  cfg = config_lib.get_config(
      'shakespeare_gpt_adamw', eval_split='test[:100]', workdir='runs/x'
  )
  with pytest.raises(ValueError) as e:  # A window is 128 + 1 characters.
    data_loader.create_data(cfg, prefetch_size=0)
  assert str(e.value).endswith(  # Cannot load dataset ...: why.
      'The validation slice of shakespeare_char (--eval_split) of 100 '
      'characters has no window of --context 128 (+ 1) characters: take a '
      'longer --eval_split (e.g. test, all of it) or lower --context.'
  )
  tokens = text_source.TextCorpus.from_text('tiny', TEXT).train
  corpus = text_source.TextCorpus(
      'tiny', ''.join(sorted(set(TEXT))), tokens[:10], tokens
  )
  with pytest.raises(ValueError, match='^The training part of tiny of 10 '):
    data_loader.make_text_data(corpus, 4, context=16, prefetch_size=0)


@pytest.mark.parametrize(
    'split,message',
    [
        ('train', "a text corpus evaluates on its held-out slice, 'test'"),
        ('test[:1]', 'takes 1 of the 505728 held-out characters'),
        ('test[:101%]', 'take between 2 and all of them'),
    ],
)
def test_a_text_corpus_has_a_train_and_a_test_split(
    split, message, tmp_path, capsys
):
  assert datasets.text_eval_size('validation[:10]', 505_728) == 10
  argv = ['--preset', 'shakespeare_gpt_adamw', '--eval_split', split]
  status = cli.main(argv + ['--workdir', str(tmp_path / 'r')])
  err = capsys.readouterr().err
  assert status == 2 and message in err and err.count('\n') == 1, err
  status = cli.main(
      ['--preset', 'shakespeare_gpt_adamw', '--train_split', 'train[:5%]']
      + ['--workdir', str(tmp_path / 'r')]
  )
  assert status == 2 and "trains on its first 90% of characters, 'train'" in (
      capsys.readouterr().err
  )


# ---------------------------------------------------------------------------
# Windows.
# ---------------------------------------------------------------------------


def test_train_windows_depend_on_seed_and_step_only_and_split_over_devices():
  tokens = np.arange(1000) % 251
  batches = lambda **kw: text_pipeline.train_batches(
      tokens, 8, 12, seed=3, **kw
  )
  one = list(batches(num_steps=5, **topo(0, 1, 1)))
  resumed = list(batches(start_step=3, num_steps=2, **topo(0, 1, 1)))
  for a, b in zip(one[3:], resumed):
    np.testing.assert_array_equal(a['tokens'], b['tokens'])
  w = one[0]['tokens'][0]
  assert w.shape == (12, 9) and w.dtype == np.int32
  # Consecutive characters: each window is a slice of the text.
  assert ((w[:, 1:] - w[:, :-1]) % 251 == 1).all()
  # 2 hosts of 3 devices each: the same global batch, split in order.
  parts = [
      next(batches(num_steps=1, **topo(p, 2, 3)))['tokens'] for p in (0, 1)
  ]
  assert parts[0].shape == (3, 2, 9)
  np.testing.assert_array_equal(
      np.concatenate([p.reshape(-1, 9) for p in parts]), w
  )
  other_seed = next(text_pipeline.train_batches(tokens, 8, 12, seed=4))
  assert not np.array_equal(other_seed['tokens'][0], w)


def topo(p, processes, devices):
  return dict(
      process_index=p, process_count=processes, local_device_count=devices
  )


@pytest.mark.parametrize('processes,devices', [(1, 1), (2, 2)])
def test_eval_windows_predict_every_character_once(processes, devices):
  tokens = (np.arange(23) * 7) % 31
  targets = []
  for p in range(processes):
    for b in text_pipeline.eval_batches(
        tokens, 4, 4, **topo(p, processes, devices)
    ):
      t = b['tokens'].reshape(-1, 5)
      m = b['mask'].reshape(-1, 4)
      assert set(np.unique(m)) <= {0.0, 1.0}
      targets += list(t[:, 1:][m == 1])
  assert targets == list(tokens[1:])  # In order, each once.
  assert text_pipeline.num_eval_windows(23, 4) == 6  # ceil(22 / 4).


def test_bits_per_character():
  m = tasks.LanguageModel(16).derived({'loss': 1.5, 'top1': 0.4})
  assert m['bpc'] == pytest.approx(1.5 / math.log(2))
  assert tasks.CLASSIFICATION.derived({'loss': 1.5}) == {'loss': 1.5}
  assert tasks.for_dataset('shakespeare_char', 64) == tasks.LanguageModel(64)
  assert tasks.for_dataset('mnist') is tasks.CLASSIFICATION


# ---------------------------------------------------------------------------
# A small GPT trained in-process.
# ---------------------------------------------------------------------------

TEXT = 'the quick brown fox jumps over the lazy dog; ' * 60
CONTEXT = 16


def lm_cfg(tmp_path, name, **kw):
  values = dict(
      model='gpt_char',
      dataset='shakespeare_char',
      method='ramda',
      lr=0.01,
      momentum=0.9,
      regularizer='nm',
      nm='2:4',
      target_begin_epoch=0.0,
      target_end_epoch=1.0,
      batch_size=8,
      eval_batch_size=16,
      context=CONTEXT,
      steps_per_epoch=4,
      epochs=2,
      asr_epochs=0,
      log_every_steps=2,
      progress=False,
      async_checkpointing=False,
      workdir=str(tmp_path / name),
  )
  values.update(kw)
  return config_lib.get_config(None, **values)


def lm_run(cfg):
  corpus = text_source.TextCorpus.from_text('tiny', TEXT)
  data = data_loader.make_text_data(
      corpus,
      cfg.batch_size,
      context=cfg.context,
      eval_batch=cfg.eval_batch,
      seed=cfg.seed,
      prefetch_size=0,
  )
  model = models.GPT(
      vocab_size=data.num_classes,
      context=cfg.context,
      num_layers=1,
      d_model=16,
      num_heads=2,
  )
  return train_lib.train_and_evaluate(cfg, model=model, data=data)


def test_a_language_model_run_reports_bits_per_character_and_n_m(tmp_path):
  cfg = lm_cfg(tmp_path, 'full')
  state = lm_run(cfg)
  assert int(state.step) == 8
  evals = metrics_lib.read_records(cfg.workdir, 'eval')
  trains = metrics_lib.read_records(cfg.workdir, 'train')
  assert [r['step'] for r in evals] == [4, 8]
  last = evals[-1]
  assert last['test_bpc'] == pytest.approx(last['test_loss'] / math.log(2))
  assert last['test_loss'] < math.log(len(set(TEXT)))  # Below uniform.
  assert last['sparsity'] == pytest.approx(0.5)  # 2:4 on every kernel.
  assert trains[-1]['chars_per_sec'] > 0 and 'bpc' in trains[-1]
  assert trains[-1]['nm_n'] == 2 and trains[0]['nm_n'] > 2  # The ramp.
  # The kernels are 2:4; the embeddings, positions and norms dense.
  params = state.params
  assert rda_optax.satisfies_nm(params['block0']['fc']['kernel'], 2, 4)
  assert (np.asarray(params['tokens']['embedding']) != 0).all()
  assert (np.asarray(params['positions']) != 0).all()
  rep = os.path.join(cfg.workdir, 'report')
  assert os.path.exists(os.path.join(rep, 'loss.png'))
  assert not os.path.exists(os.path.join(rep, 'accuracy.png'))
  table = open(os.path.join(rep, 'sparsity_table.txt')).read()
  head, *rows = table.splitlines()
  assert head.split()[-1] == '2:4'
  kernel_rows = [r for r in rows if '/kernel*' in r]
  assert len(kernel_rows) == 5 and all(r.endswith(' yes') for r in kernel_rows)
  assert rows[-2].endswith('5/5 yes')
  summary = json.load(open(os.path.join(rep, 'summary.json')))
  assert summary['test_bpc'] == pytest.approx(last['test_bpc'])
  assert summary['nm'] == {
      'pattern': '2:4',
      'kernels': 5,
      'kernels_meeting': 5,
      'violating_groups': 0,
  }
  md = open(os.path.join(rep, 'report.md')).read()
  assert 'bits per character' in md and 'met by 5 of 5' in md

  # Stopped at step 3 and resumed: bit for bit the uninterrupted run.
  part = lm_cfg(tmp_path, 'part', report=False)
  assert int(lm_run(part.replace(stop_at_step=3)).step) == 3
  resumed = lm_run(part)
  a, b = flat(state.params), flat(resumed.params)
  for k in a:
    np.testing.assert_array_equal(a[k], b[k], err_msg=k)
  a, b = flat(state.opt_state), flat(resumed.opt_state)
  for k in a:
    np.testing.assert_array_equal(a[k], b[k], err_msg=k)


def test_a_gpt_export_keeps_shapes_stores_n_m_and_evaluates(
    tmp_path, monkeypatch
):
  """The export of a registry GPT (no training: the run directory of a
  2:4 gradual pruning holding a 2:4-pruned initialization, its method's
  model the checkpoint's parameters) is smaller, N:M-coded, exact, and
  evaluates."""
  from train import checkpoint as ckpt_lib
  from train import export

  cfg = lm_cfg(
      tmp_path, 'run', context=8, method='gmp_adamw', regularizer='none'
  )
  os.makedirs(cfg.workdir)
  config_lib.write_config(cfg, os.path.join(cfg.workdir, 'config.json'))
  model = models.create('gpt_char', num_classes=84, context=8)
  shapes = jax.eval_shape(
      model.init, jax.random.key(0), np.zeros((1, 8), np.int32)
  )['params']
  rng = np.random.default_rng(0)  # No init to compile: random weights.
  params = jax.tree.map(
      lambda s: (0.02 * rng.standard_normal(s.shape)).astype(np.float32),
      shapes,
  )
  params = rda_optax.apply_masks(
      params, rda_optax.nm_masks(params, 2, 4, mask=models.kernel_mask)
  )
  with ckpt_lib.Checkpoints(
      os.path.join(cfg.workdir, 'checkpoints'), async_save=False
  ) as c:
    c.save(5, {'step': 5, 'params': params, 'batch_stats': {}})
  meta = export.export_run(cfg.workdir)
  assert meta['max_abs_logit_diff'] == 0.0
  assert meta['fields'] == {'context': 8} and meta['input_dtype'] == 'int32'
  assert meta['nm'] == {'pattern': '2:4', 'kernels': 17, 'kernels_meeting': 17}
  assert meta['layouts']['nm'] == 17 and len(meta['vocabulary']) == 84
  assert meta['bytes']['exported'] < 0.6 * meta['bytes']['dense_float32']
  md = open(os.path.join(cfg.workdir, 'export', 'export.md')).read()
  assert 'not compacted' in md and 'attention heads' in md
  assert '17 of 17 selected kernels; 17 stored in the nm layout' in md
  back, variables, _ = export.load_export(os.path.join(cfg.workdir, 'export'))
  assert back.context == 8
  for a, b in zip(
      jax.tree.leaves(variables['params']), jax.tree.leaves(params)
  ):
    np.testing.assert_array_equal(a, b)

  # --eval_export: the data of its dataset, in windows of its context (a
  # random text of the corpus's 84 characters here; a random init predicts
  # about ln 84 nats).
  def fake_data(run_cfg):
    assert (run_cfg.dataset, run_cfg.context) == ('shakespeare_char', 8)
    tokens = np.random.default_rng(0).integers(0, 84, 400).astype(np.uint8)
    corpus = text_source.TextCorpus(
        'shakespeare_char', datasets.SHAKESPEARE.vocabulary, tokens, tokens
    )
    return data_loader.make_text_data(
        corpus, 8, context=8, eval_batch=64, prefetch_size=0
    )

  monkeypatch.setattr(data_loader, 'create_data', fake_data)
  got = export.evaluate_export(
      os.path.join(cfg.workdir, 'export'), config_lib.get_config()
  )
  assert abs(got['test_loss'] - math.log(84)) < 0.1
  assert got['test_bpc'] == pytest.approx(got['test_loss'] / math.log(2))
  shutil.rmtree(cfg.workdir)
