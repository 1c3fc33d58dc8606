"""Accuracy against sparsity: every method, several strengths, several seeds.

One command per setting runs the whole sweep (method × hyper-parameter
variant × strength × seed), each run a plain ``python -m train`` command, at
the same total epoch budget for every method. Runs already finished are
skipped, so an interrupted sweep resumes where it stopped (and a run killed
midway resumes from its own checkpoint).

    python -m benchmarks.frontier lenet300                 # the whole sweep
    python -m benchmarks.frontier lenet300 --seeds 0 --methods rmda han_global
    python -m benchmarks.frontier lenet300 --report        # tables + plot only
    python -m benchmarks.frontier lenet300 --list          # the commands, no runs
    python -m benchmarks.frontier cifar_resnet8 --seeds 0 --methods han_global \
        --strengths 0.95                                  # one point (+ parent)

Writes ``<out>/results.json`` (one record per run: method, variant,
strength, seed, final test top-1, kernel sparsity, the exact command),
``<out>/frontier.png`` (accuracy against sparsity, one curve per method,
mean ± std over seeds) and ``<out>/frontier.md`` (the tables).

**How methods are compared.** For each sparsity level L and method, the
candidates are the (variant, strength) points whose mean sparsity over seeds
is at least L; the method's entry is the best mean accuracy among them (so a
regularization method that overshoots L is compared at its higher sparsity,
never the other way round), a point never losing to one measured over fewer
seeds (see :func:`report.at_levels`). Every method's grid of variants is chosen
on the same test split, with comparable effort (see
:data:`settings.SETTINGS`); pruning methods hit L exactly. Dense SGD at the
full budget is the reference.

One job per module: :mod:`.settings` (the sweeps: each setting's methods,
grids and budget), :mod:`.runner` (running them, resuming, provenance:
:mod:`benchmarks.sweeps`, shared with :mod:`benchmarks.transformers_nm`),
:mod:`.report` (aggregation, the tables and the plot); ``__main__`` is the
command line.
"""

from .report import aggregate
from .report import at_levels
from .report import lambda_at_levels
from .report import markdown
from .report import plot
from .report import runs_made_on
from .runner import ROOT
from .runner import collect
from .runner import command
from .runner import execute_all
from .runner import finished
from .runner import provenance
from .runner import run_dir
from .settings import LEVELS
from .settings import SETTINGS
from .settings import Run
from .settings import Setting
