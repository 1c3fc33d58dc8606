"""When a run has gone wrong: non-finite values, or a collapse to chance.

The loop (:mod:`train.train`) stops a run whose loss or weights are not
finite, whose schedules gave a NaN or negative hyper-parameter
(:func:`invalid_hypers`), or whose training loss has fallen to that of a
constant prediction and stayed there (:func:`collapsed`), with
:class:`train.config.Diverged`
(exit status 3 from the CLI): the message names the step, what was seen,
the last good checkpoint (kept) and what to change.
"""

from __future__ import annotations

import math

from . import config as config_lib
from .checkpoint import WriteFailed

COLLAPSE_RECORDS = 5  # Train records at chance level that stop a run.


def collapsed(losses, num_classes: int, window: int = COLLAPSE_RECORDS) -> bool:
  """Whether training fell to a constant prediction.

  True when the last ``window`` training losses are all within 1% of the
  loss of a constant (uniform) prediction, ``ln(num_classes)``, after an
  earlier one had been below half of it: a network whose units all died (a
  step too large for it) predicts the same for every input and does not
  recover, though its loss stays finite.
  """
  if num_classes < 2 or len(losses) <= window:
    return False
  chance = math.log(num_classes)
  recent, before = losses[-window:], losses[:-window]
  return min(before) < 0.5 * chance and all(
      abs(l - chance) < 0.01 * chance for l in recent
  )


def invalid_hypers(hypers: dict[str, float]) -> str | None:
  """``'lam = -0.001'``: the first applied hyper-parameter (lr, γ, λ, target
  sparsity) that is NaN or negative, which only a schedule can make; None
  when all are valid. rda_optax turns such a value into NaN updates
  (:func:`rda_optax.regularizers.value_at`): this names the cause."""
  for name, value in hypers.items():
    if not value >= 0:
      return f'{name} = {value:g}'
  return None


def raise_diverged(reason: str, step: int, hint: str, cfg, ckpts) -> None:
  """Raises Diverged after the checkpoint writes in flight have finished.

  ``hint`` is what to change: a smaller step (e.g. 'lower --lr'), or a
  sentence of its own when it starts with a capital."""
  try:
    ckpts.wait()
  except WriteFailed:
    pass  # The divergence is the news; the step below is still accurate.
  good = ckpts.last_good_step()
  kept = (
      f'the last good checkpoint (step {good}) is kept in '
      f'{cfg.workdir}/checkpoints'
      if good is not None
      else 'no checkpoint was written before it'
  )
  if not hint[:1].isupper():
    hint = f'Start a new --workdir with a smaller step: {hint}'
  raise config_lib.Diverged(
      f'training diverged at step {step} ({reason}); {kept}. {hint}.'
  )
