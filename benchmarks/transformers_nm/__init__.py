"""Sparse transformers and N:M: the sweeps behind issue 28's results.

Three settings, each a grid of plain ``python -m train`` runs at one budget
per setting (runs already finished are skipped, so an interrupted sweep
resumes; a run killed midway resumes from its own checkpoint):

* ``gpt``: the small GPT (``gpt_char``: 4 layers, width 128, context 128)
  on the Shakespeare corpus (``shakespeare_char``), at 50 / 75 / 90% kernel
  sparsity and at 2:4, for dense AdamW, RAMDA (ℓ1 with a λ grid, and
  projected on the level), RMDA projected, proximal AdamW projected,
  gradual magnitude pruning with AdamW (two ramp ends × two learning rates)
  and one-shot magnitude pruning of a dense AdamW run + fine-tuning with
  AdamW (two rates); 3 seeds. Judged by the validation loss (nats per
  character; bits per character = loss / ln 2), lower is better.
* ``lenet5_2_4``, ``resnet8_2_4``: LeNet-5 on MNIST and ResNet-8 on the
  CIFAR-10 JPEG copy at 2:4: RMDA projected on 2:4 (then ASR) against
  gradual N:M magnitude pruning and one-shot N:M pruning + fine-tuning,
  with dense SGD as the reference, the recipes of ``benchmarks.frontier``'s
  ``lenet5`` and ``cifar_resnet8`` settings; judged by test top-1.

::

    python -m benchmarks.transformers_nm gpt --list       # the commands
    python -m benchmarks.transformers_nm gpt              # the whole sweep
    python -m benchmarks.transformers_nm gpt --seeds 0 --methods ramda_target
    python -m benchmarks.transformers_nm gpt --report     # tables only
    python -m benchmarks.transformers_nm gpt --smoke      # a few steps each

For each target (a level or ``2:4``) and method the table gives the best
mean over seeds among the method's variants that reach the target (at least
the level's sparsity; every selected kernel N:M for ``2:4``), with the
spread over seeds, the sparsity reached and the variant. ``--smoke`` runs
one run of every method (seed 0, its first variant, at 2:4 where it has
targets; han's dense parent too) for a few steps (1 per epoch, 4 for the
GPT; the epoch-valued options unchanged; one evaluation, for the GPT on the
first 2% of the validation slice) in ``<out>/smoke``, to check that every
kind of command works end to end (about 2 minutes for the GPT on the
shared 2-core machine).

Writes ``<out>/results.json`` (one record per run: setting, method,
variant, target, seed, the final evaluation, sparsity, N:M check, the exact
command, wall time, machine, date and commit) and ``<out>/results.md``.
Default ``<out>``: ``benchmarks/results/transformers_nm/<setting>``.

One job per module: :mod:`.sweep` (a setting's runs: the ``Run`` and
``Setting`` types, the flags that reach a target), :mod:`.settings` (the
sweeps: gpt, vit, lenet5_2_4, resnet8_2_4), :mod:`.runner` (running them,
resuming: :mod:`benchmarks.sweeps`, shared with :mod:`benchmarks.frontier`;
the record of each run), :mod:`.report` (the tables);
``__main__`` is the command line.
"""

from .report import markdown
from .report import meets
from .report import table
from .runner import ROOT
from .runner import collect
from .runner import command
from .runner import execute
from .runner import execute_all
from .runner import finished
from .runner import machine
from .runner import record
from .runner import run_dir
from .settings import GPT_BASE
from .settings import GPT_EPOCHS
from .settings import SETTINGS
from .sweep import NM
from .sweep import Run
from .sweep import Setting
from .sweep import target_flags
