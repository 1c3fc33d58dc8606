"""train/divergence.py: stopping a run that has gone wrong (a collapse to a
constant prediction, a schedule gone negative or NaN)."""

import pytest

from train import config as config_lib
from train import divergence


def test_a_collapse_to_chance_is_caught():
  # The ASR phase of a LeNet-5 run with sparse group lasso and ASR by SGD
  # at 0.03 (benchmarks/results/structured_lenet5): low, a spike, then the
  # loss of a constant prediction for good.
  losses = [0.0599, 0.0521, 0.0657, 0.0681, 3.56, 2.3017, 2.3018, 2.3005]
  assert not divergence.collapsed(losses, 10)  # 4 records at chance so far.
  assert divergence.collapsed(losses + [2.3025, 2.3019], 10)


@pytest.mark.parametrize(
    'losses',
    [
        [2.31, 2.305, 2.303, 2.302, 2.302, 2.301, 2.302],  # Not yet learning.
        [0.1, 0.09, 2.302, 2.302, 2.302, 2.302, 0.5],  # A spike that recovers.
        [0.1, 0.09, 2.5, 2.6, 2.55, 2.7, 2.8],  # High, but not constant.
        [0.1, 2.302, 2.302],  # Too few records.
    ],
)
def test_no_false_alarm(losses):
  assert not divergence.collapsed(losses, 10)


def test_one_class_is_never_a_collapse():
  assert not divergence.collapsed([0.0] * 10, 1)


class _Checkpoints:

  def __init__(self, latest):
    self.latest, self.waited = latest, False

  def wait(self):
    self.waited = True

  def last_good_step(self):
    return self.latest


def test_the_message_names_the_step_the_checkpoint_and_the_fix():
  cfg = config_lib.Config(workdir='/tmp/run')
  ckpts = _Checkpoints(9360)
  with pytest.raises(config_lib.Diverged) as e:
    divergence.raise_diverged(
        'loss at chance', 9650, 'lower --asr_lr', cfg, ckpts
    )
  assert ckpts.waited
  message = str(e.value)
  assert 'step 9650' in message and 'loss at chance' in message
  assert 'step 9360) is kept in /tmp/run/checkpoints' in message
  assert message.endswith('lower --asr_lr.')
  with pytest.raises(config_lib.Diverged, match='no checkpoint was written'):
    divergence.raise_diverged('x', 3, 'lower --lr', cfg, _Checkpoints(None))


def test_an_invalid_hyper_parameter_is_named():
  assert divergence.invalid_hypers({'lr': 0.1, 'lam': 0.0}) is None
  assert divergence.invalid_hypers({'lr': 0.1, 'lam': -1e-3}) == 'lam = -0.001'
  assert divergence.invalid_hypers({'gamma': float('nan')}) == 'gamma = nan'


def test_a_schedule_gone_negative_stops_the_run_naming_it(tmp_path):
  """A λ schedule that crosses zero (the command line refuses one; a
  library caller's config need not be checked) stops the run at the first
  log with the hyper-parameter named, not a silent anti-shrinkage."""
  from _train_driver import TinyBN
  from train import train as train_lib

  cfg = config_lib.get_config(
      None,
      method='rmda',
      lam=1e-3,
      lam_schedule='linear',
      lam_scales=(-1.0,),
      dataset='synthetic',
      batch_size=16,
      steps_per_epoch=4,
      epochs=2,
      asr_epochs=0,
      log_every_steps=6,
      progress=False,
      report=False,
      async_checkpointing=False,
      workdir=str(tmp_path / 'run'),
  )
  with pytest.raises(config_lib.ConfigError, match='--lam_scales'):
    train_lib.train_and_evaluate(cfg, model=TinyBN())
  with pytest.raises(config_lib.Diverged) as e:
    train_lib.train_and_evaluate(cfg, model=TinyBN(), checked=True)
  message = str(e.value)
  # λ(5) = 1e-3 - 2e-3 * 5 / 8: the first negative value, applied at update 6.
  assert 'diverged at step 6 (lam = -0.00025 from its schedule)' in message
  assert message.endswith('Fix that schedule.')
