"""The model a run reports, read back mid-run: RMDA's prox point (not the
dense iterate), with batch-norm statistics of its own."""

import jax
import numpy as np

from _train_driver import TinyBN, flat
from train import checkpoint as ckpt_lib
from train import config as config_lib
from train.data import loader as data_lib
from train import evaluation
from train import metrics as metrics_lib
from train import run_model
from train import train as train_lib
from train import train_state as state_lib
from train import train_step as step_lib

# tests/test_train.py's RMDA run (compiled once for both).
RMDA = dict(
    method='rmda',
    dataset='synthetic',
    batch_size=16,
    steps_per_epoch=4,
    epochs=1,
    asr_epochs=1,
    lr=0.05,
    lam=5e-2,
    momentum=0.9,
    gamma=1.0,
    init_scale=2.0,
    asr_optimizer='sgd',
    log_every_steps=2,
    progress=False,
    report=False,
    async_checkpointing=False,
)


def tiny_data(cfg):
  return data_lib.synthetic_data(
      cfg.dataset,
      global_batch=cfg.batch_size,
      eval_global_batch=cfg.eval_batch,
      seed=cfg.seed,
      num_train=256,
      num_eval=40,
  )


def nonzeros(tree):
  return sum(int(np.count_nonzero(x)) for x in jax.tree.leaves(tree))


def test_a_stopped_rmda_run_gives_the_model_it_evaluated(tmp_path):
  """Stopped at the end of the RMDA phase (step 4, an evaluation): the model
  read back is the prox point, and evaluated on the same data it gives the
  test loss the run logged there."""
  cfg = config_lib.get_config(
      None, **RMDA, workdir=str(tmp_path / 'run'), stop_at_step=4
  )
  data = tiny_data(cfg)
  train_lib.train_and_evaluate(cfg, model=TinyBN(), data=data)
  saved = ckpt_lib.load_variables(cfg.workdir)  # As saved: the iterate.
  got = run_model.load_model(cfg.workdir, data=data, model=TinyBN())
  assert got['sparse_point'] and got['step'] == 4
  assert nonzeros(got['params']) < nonzeros(saved['params'])
  for name, x in flat(got['batch_stats']).items():  # Measured anew.
    assert not np.array_equal(x, flat(saved['batch_stats'])[name]), name
  state = state_lib.TrainState.create(
      apply_fn=TinyBN().apply,
      params=got['params'],
      tx=__import__('optax').identity(),
      batch_stats=got['batch_stats'],
  )
  metrics = evaluation.evaluate(
      step_lib.make_p_eval_step(data),
      state_lib.replicate(state),
      data,
      cfg.eval_batch,
  )
  logged = metrics_lib.read_records(cfg.workdir, 'eval')[-1]
  assert logged['step'] == 4
  np.testing.assert_allclose(
      metrics['test_loss'], logged['test_loss'], rtol=1e-5
  )
  assert logged['sparsity'] > 0


def test_a_finished_run_gives_its_saved_parameters(tmp_path):
  cfg = config_lib.get_config(None, **RMDA, workdir=str(tmp_path / 'run'))
  state = train_lib.train_and_evaluate(cfg, model=TinyBN(), data=tiny_data(cfg))
  got = run_model.load_model(cfg.workdir)
  assert not got['sparse_point'] and got['step'] == 8
  for name, x in flat(state.params).items():
    np.testing.assert_array_equal(flat(got['params'])[name], x, err_msg=name)
