"""Stopping a run that has gone wrong: a collapse to a constant prediction."""

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
