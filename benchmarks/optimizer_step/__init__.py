"""Optimizer step cost on a ResNet-18-sized parameter tree, against optax SGD.

Times one jitted ``update + apply_updates`` (parameters and state donated,
as in a real train step) for each optimizer, alternating the optimizers
within each round so that machine noise hits them alike, and reports the
median time per step, the ratio to ``optax.sgd(lr, momentum=0.9)``, the
optimizer-state bytes per parameter byte, and what XLA's cost analysis of the
compiled step says it moves: bytes accessed per parameter and the number of
fusions (the floor a memory-bound step cannot go under).

    python -m benchmarks.optimizer_step            # CPU here, GPU if present
    python -m benchmarks.optimizer_step --rounds 40 --steps 10 --dtype bfloat16
    python -m benchmarks.optimizer_step --adaptive   # RAMDA against AdamW
    python -m benchmarks.optimizer_step --state_only   # state memory only
    python -m benchmarks.optimizer_step --only sparsity --clock cpu
    python -m benchmarks.optimizer_step --breakdown   # where its time goes
    python -m benchmarks.optimizer_step --profile     # one step's timeline
    python -m benchmarks.optimizer_step --grid   # every optimizer x regularizer

The two ``sparsity_constraint`` rows compare the projection's threshold
search started from the last step's threshold (the library's) with the
same search started cold at every step; the last column gives the counting
passes each took.

A second table gives the optimizer-state memory of every method (and of
``optax.adam``): bytes per parameter, from ``jax.eval_shape``.

One job per module: :mod:`.trees` (the ResNet-18-sized tree),
:mod:`.timing` (the timing loop every mode shares, XLA's cost of a step,
the threshold passes), :mod:`.sgd_family` (the default table's methods),
:mod:`.table` (the default table), :mod:`.memory` (the state-memory table),
:mod:`.breakdown` (``--breakdown``), :mod:`.profile` (``--profile``: the
timeline of one step), :mod:`.adaptive` (``--adaptive``), :mod:`.grid`
(``--grid``: every optimizer with every regularizer);
``__main__`` is the command line.
"""

from .adaptive import adaptive_main
from .adaptive import adaptive_optimizers
from .breakdown import KnownLevelConstraint
from .breakdown import breakdown_main
from .grid import grid_main
from .memory import print_state_memory
from .profile import profile_main
from .profile import step_events
from .memory import state_memory
from .sgd_family import ColdSparsityConstraint
from .sgd_family import optimizers
from .table import main
from .timing import compiled_cost
from .timing import threshold_passes
from .timing import time_steps
from .trees import make_tree
from .trees import resnet18_shapes
from .trees import tree_bytes
