"""rda-optax: sparse training with regularized dual averaging and proximal methods.

Optax gradient transformations whose proximal steps produce exact zeros:

* :func:`rda`: regularized dual averaging centred at the initial weights;
* :func:`rmda`: regularized modernized dual averaging (RDA with a learning
  rate and momentum), the fastest way here to an accurate sparse model;
* :func:`prox_sgd`: proximal SGD with optional (Nesterov) momentum;
* :func:`ramda`: regularized adaptive momentum dual averaging (RMDA with
  MADGRAD's preconditioner), for transformers and Adam-trained networks;
* :func:`prox_adamw`: proximal AdamW (ProxGen), its baseline;
* :func:`asr`: adaptive sparse retraining, freezing exact zeros;
* :func:`variable_splitting`: ℓ0 / TL1 sparsity through a sparse copy;
* regularizers :func:`l1`, :func:`l0`, :func:`group_lasso`,
  :func:`sparse_group_lasso`, :func:`transformed_l1` with their proximal
  operators, :func:`coupled_group_lasso` (channel groups spanning leaves,
  e.g. a residual stream), :func:`sparsity_constraint` (a target sparsity,
  projected), :func:`nm_constraint` (N:M sparsity, projected) and
  :func:`partitioned` (a regularizer per group of leaves, e.g. network
  slimming's ℓ1 on batch-norm scales beside the kernels' penalty);
* the RDA initializer :func:`rda_uniform`, sparsity reports and magnitude
  pruning baselines (unstructured and N:M); :func:`path_str`, a leaf's name
  in them (``'Conv_0/kernel'``);
* :func:`kth_smallest` / :func:`smallest_masks`: the exact ``k`` smallest
  entries of many arrays in a few counting passes, started from the last
  step's threshold (:class:`ThresholdState`): the global magnitude
  threshold of :func:`sparsity_constraint` and of the pruning baselines;
* :func:`save_sparse` / :func:`load_sparse`: a compressed file format for
  sparse parameter trees (about 1/12 of the dense size at 95% sparsity);
* :func:`sparse_params` / :func:`with_sparse_params`: the exactly sparse
  model in any optimizer state (``optax.chain``, ``masked``,
  ``multi_transform``, ``MultiSteps``, Flax ``TrainState``, NNX
  ``nnx.Optimizer``), and :class:`ChainOrderError` when something chained
  after one of these transforms changed its updates.
"""

from rda_optax.adaptive_l1 import adaptive_l1
from rda_optax.adaptive_l1 import AdaptiveL1
from rda_optax.asr import ASRState
from rda_optax.asr import asr
from rda_optax.asr import freeze_zeros
from rda_optax.asr import FreezeZerosState
from rda_optax.constraints import sparsity_constraint
from rda_optax.coupled import coupled_group_lasso
from rda_optax.coupled import CoupledGroupLasso
from rda_optax.constraints import SparsityConstraint
from rda_optax.initializers import rda_uniform
from rda_optax.nm import NMConstraint
from rda_optax.nm import nm_constraint
from rda_optax.nm_pruning import GradualNMState
from rda_optax.nm_pruning import gradual_nm_pruning
from rda_optax.nm_pruning import nm_fraction_schedule
from rda_optax.nm_pruning import nm_masks
from rda_optax.nm_pruning import nm_n_schedule
from rda_optax.nm_pruning import nm_violations
from rda_optax.nm_pruning import satisfies_nm
from rda_optax.partition import partitioned
from rda_optax.partition import PartitionedRegularizer
from rda_optax.prox_adamw import prox_adamw
from rda_optax.prox_adamw import ProxAdamWState
from rda_optax.prox_sgd import prox_sgd
from rda_optax.prox_sgd import ProxSGDState
from rda_optax.pruning import apply_masks
from rda_optax.pruning import gradual_magnitude_pruning
from rda_optax.pruning import GradualPruningState
from rda_optax.pruning import magnitude_masks
from rda_optax.pruning import zhu_gupta_sparsity
from rda_optax.ramda import ramda
from rda_optax.ramda import RAMDAState
from rda_optax.recipes import sparse_training
from rda_optax.rda import rda
from rda_optax.rda import RDAState
from rda_optax.rmda import rmda
from rda_optax.rmda import RMDAProx
from rda_optax.rmda import RMDAState
from rda_optax.regularizers import GroupLasso
from rda_optax.regularizers import L0
from rda_optax.regularizers import L1
from rda_optax.regularizers import Regularizer
from rda_optax.regularizers import SparseGroupLasso
from rda_optax.regularizers import TransformedL1
from rda_optax.regularizers import group_lasso
from rda_optax.regularizers import l0
from rda_optax.regularizers import l1
from rda_optax.regularizers import penalty
from rda_optax.regularizers import sparse_group_lasso
from rda_optax.regularizers import transformed_l1
from rda_optax.selection import default_mask
from rda_optax.selection import path_str
from rda_optax.sharding import with_auto_axes
from rda_optax.splitting import SplittingState
from rda_optax.threshold import kth_smallest
from rda_optax.threshold import smallest_masks
from rda_optax.threshold import threshold_state
from rda_optax.threshold import ThresholdSplit
from rda_optax.threshold import ThresholdState
from rda_optax.splitting import variable_splitting
from rda_optax.sparse_io import load_sparse
from rda_optax.sparse_io import save_sparse
from rda_optax.sparse_io import sparse_size
from rda_optax.sparse_format import SparseFormatError
from rda_optax.sparse_point import ChainOrderError
from rda_optax.sparse_point import sparse_params
from rda_optax.sparse_point import with_sparse_params
from rda_optax.sparsity import layer_sparsity
from rda_optax.sparsity import LayerSparsity
from rda_optax.sparsity import sparsity_summary
from rda_optax.sparsity import sparsity_table

__version__ = '0.1.0'
