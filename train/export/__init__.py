"""Export a trained sparse model: physically smaller, compressed, checked.

``python -m train.export RUN_DIR`` takes the final model of a run (the
exactly sparse one the run reports), removes every all-zero output channel
and neuron with :func:`models.compact` (folding their constant outputs into
the layers that read them), and writes to ``RUN_DIR/export/`` (or
``--out DIR``):

* ``model.json``: how to rebuild the smaller network --
  ``models.create(model, num_classes=..., **fields)`` -- plus its input
  shape, the run it came from, and the numbers below;
* ``variables.npz``: its ``params`` and ``batch_stats`` in
  :func:`rda_optax.save_sparse`'s compressed format;
* ``export.md``: weight and channel sparsity per layer, dense and remaining
  multiply-accumulates (MACs), file sizes against the dense float32
  variables, and the largest difference between the exported model's
  outputs and the sparse model's on a fixed batch (it must be float
  rounding; the export fails otherwise). ``--time`` adds measured CPU
  inference times of both.

``load_export(DIR)`` (:mod:`train.export.reader`) returns ``(model, variables, meta)``;
``python -m train --eval_export DIR`` evaluates an export on its dataset's
test split (or on ``--dataset``).
"""

from .reader import evaluate_export
from .reader import ExportError
from .reader import FORMAT
from .reader import load_export
from .reader import VERSION
from .writer import export_run
from .writer import main

__all__ = [
    'ExportError',
    'FORMAT',
    'VERSION',
    'evaluate_export',
    'export_run',
    'load_export',
    'main',
]
