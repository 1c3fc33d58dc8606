"""A run's work around its train step: the model it trains, its records,
its checkpoints, the divergence checks.

:class:`RunRecords` is the base of the train loop's run
(:func:`train.train.train_and_evaluate`): the exactly sparse model of the
methods that keep one apart from the parameters, the train log records,
the evaluations, the checkpoints (never one with NaN weights) and the checks
that stop a diverged run. It reads what the run's set-up made: ``cfg``,
``data``, ``phases``, ``state``, ``ckpts``, ``writer``, ``losses``,
``is_main``, ``has_sparse_point`` and the pmapped ``p_*`` functions.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from . import checkpoint as ckpt_lib
from . import divergence
from . import metrics as metrics_lib
from . import methods
from . import optimizer
from . import train_state as state_lib
from . import train_step as step_lib
from .evaluation import evaluate
from .evaluation import sparsity_record
from .train_state import TrainState


class RunRecords:
  """The sparse model, records, checkpoints and divergence checks of a run
  (the train loop's :class:`train.train._Run` sets up what they read)."""

  # -- The sparse model. ----------------------------------------------------

  def model_params(self):
    """The replicated parameters of the model the run trains."""
    if not self.has_sparse_point:
      return self.state.params
    return self.p_sparse(self.state.opt_state, self.state.params)

  def with_model(self, model) -> TrainState:
    """The state with ``model`` as its parameters (BN statistics refitted)."""
    new = self.state.replace(params=model)
    if self.p_bn_step is not None and bool(
        self.p_differs(model, self.state.params)[0]
    ):
      new = step_lib.recalibrate_batch_stats(self.p_bn_step, new, self.data)
    return new

  # -- Logging, evaluation, checkpoints. ------------------------------------

  def retraining_by_sgd(self, step: int) -> bool:
    """Whether update ``step`` (0-based) is ASR's retraining by SGD."""
    return self.phases.phase(step) == 'asr' and self.cfg.asr_optimizer == 'sgd'

  def applied_hypers(self, step: int) -> dict[str, float]:
    """The lr / γ / λ that update ``step`` applied, from the optimizer state."""
    by_sgd = self.retraining_by_sgd(step)
    values = optimizer.applied_hypers(self.state.opt_state, by_sgd)
    return {k: float(np.asarray(v)[0]) for k, v in values.items()}

  def log_train(
      self,
      step: int,
      model,
      averages: dict[str, float],
      throughput: metrics_lib.Throughput,
  ) -> dict[str, Any]:
    done = step + 1
    sparsity = sparsity_record(state_lib.unreplicate(model), self.cfg)
    hypers = self.applied_hypers(step)
    if bad := divergence.invalid_hypers(hypers):
      divergence.raise_diverged(
          f'{bad} from its schedule',
          done,
          'Fix that schedule',
          self.cfg,
          self.ckpts,
      )
    record = {
        'type': 'train',
        'step': done,
        'epoch': self.phases.epoch(done),
        'phase': self.phases.phase(step),
        **self.data.task.derived(averages),
        'sparsity': sparsity['sparsity'],
        **hypers,
        **throughput.record(),
    }
    self.check_finite(record['loss'], 'training loss', done)
    self.check_not_collapsed(record['loss'], done)
    self.writer.write(record)
    return record

  def evaluate(
      self, step: int, eval_state: TrainState, train_averages: dict[str, float]
  ) -> dict[str, Any]:
    done = step + 1
    params = ckpt_lib.host_copy(state_lib.unreplicate(eval_state.params))
    record = {
        'type': 'eval',
        'step': done,
        'epoch': self.phases.epoch(done),
        'phase': self.phases.phase(step),
        **{
            f'train_{k}': v
            for k, v in self.data.task.derived(train_averages).items()
        },
        **evaluate(
            self.p_eval_step,
            eval_state,
            self.data,
            self.cfg.eval_batch,
            self.is_main and self.cfg.progress,
        ),
        **sparsity_record(params, self.cfg),
    }
    self.check_finite(record['test_loss'], 'test loss', done)
    self.writer.write(record)
    self.writer.flush()
    return record

  def save(self, done: int) -> None:
    # A checkpoint is a state to come back to: never one with NaN weights.
    if not bool(self.p_finite(self.state.params)[0]):
      self.check_finite(float('nan'), 'non-finite weights', done)
    self.ckpts.save(
        done, state_lib.state_tree(state_lib.unreplicate(self.state))
    )

  def divergence_hint(self, step: int) -> str:
    if self.retraining_by_sgd(step - 1):  # ``step`` counts updates done.
      return 'lower --asr_lr (the retraining SGD)'
    return methods.get(self.cfg.method).divergence_hint

  def check_finite(self, value: float, what: str, step: int) -> None:
    if not np.isfinite(value):
      hint = self.divergence_hint(step)
      divergence.raise_diverged(
          f'{what}: {value}', step, hint, self.cfg, self.ckpts
      )

  def check_not_collapsed(self, loss: float, step: int) -> None:
    self.losses.append(loss)
    if divergence.collapsed(self.losses, self.data.num_classes):
      chance = math.log(self.data.num_classes)
      reason = (
          f'the training loss has stayed at {chance:.3f} = ln '
          f'{self.data.num_classes}, a constant prediction, for '
          f'{divergence.COLLAPSE_RECORDS} log records after reaching '
          f'{min(self.losses):.3f}'
      )
      divergence.raise_diverged(
          reason, step, self.divergence_hint(step), self.cfg, self.ckpts
      )
