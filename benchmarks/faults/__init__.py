"""Faults and bad input against the training job: no silent wrong answers.

Measures the targets of issue 25 with the real commands (``python -m
train``, ``python -m train.export``, preparation in separate processes) on
tiny runs (LeNet-5 on synthetic data, TFDS datasets faked in MNIST's format
by ``tests/_fake_mnist.py``):

* silent wrong answers, by the 7 kinds the issue found (target 0): a dataset
  prepared from another's files, two runs on one run directory, checkpoint
  bit rot read back, an unfinished RMDA run exported dense, a failed
  checkpoint write that training runs past, a damaged sparse file read, two
  preparations of one dataset at once;
* concurrency cases (target 3 of 3 clear): a second run on a busy run
  directory, a run on the directory of a killed one, two preparations;
* checkpoint corruption (target: all detected and recovered): single bit
  flips at 10 places of the newest checkpoint and truncated files, each read
  back as the job does (and one resumed end to end);
* tracebacks on write failures (target 0): full file systems of three sizes
  (a tmpfs in a user namespace; skipped where that is not allowed).

    python -m benchmarks.faults            # 2-3 minutes on 2 (shared) CPU cores

One job per module: :mod:`.bench` (the scratch folder, the commands, the
rows), the cases by kind, :mod:`.data` (1 and 7: datasets and concurrent
preparations), :mod:`.runs` (2 and 3: run directories and checkpoints),
:mod:`.files` (4, 5 and 6: export, failed writes, sparse files),
:mod:`.report` (the table and the totals); ``__main__`` is the command line.
"""

from .bench import Bench
from .data import datasets_cases
from .files import export_case
from .files import sparse_file_cases
from .files import write_failure_cases
from .report import print_report
from .runs import checkpoint_cases
from .runs import run_directory_cases
