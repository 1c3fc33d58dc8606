"""Flax (``flax.linen``) networks of the sparse-training papers.

* :func:`create` / :data:`REGISTRY` / :func:`default_input_shape`: build a
  network by name ("lenet5", "lenet300_100", "resnet18", "resnet34",
  "resnet50", "vgg11" to "vgg19", "wrn28_10", plus ``*_imagenet`` aliases).
* :class:`GPT` (``"gpt_char"``), :class:`ViT` (``"vit_cifar"``): small
  transformers; :func:`kernel_mask` selects their weight kernels for
  sparsity (the default mask would also select embeddings).
* :func:`flops`: per-layer dense and sparse multiply-accumulate counts.
* :func:`compact`: remove all-zero channels to get a smaller, equivalent model;
  :func:`coupled_scales`: the batch-norm scales that share channels.

Calling convention of every model::

  variables = model.init(key, x, train=False)
  logits, updates = model.apply(variables, x, train=True,
                                mutable=['batch_stats'],
                                rngs={'dropout': key})
  logits = model.apply(variables, x, train=False)

Inputs are NHWC floats; logits are float32 whatever the compute ``dtype``.
"""

try:
  import flax as _flax  # pylint: disable=unused-import
except ImportError:
  raise ImportError(
      'models needs Flax: install the models extra, e.g. pip install -e '
      '".[models]" in the checkout (or ".[all]").'
  ) from None  # (the cause is in the message: one traceback, not two)

from .compaction import (
    CompactionResult,
    LayerCompaction,
    compact,
    coupled_scales,
)
from .flops import FlopReport, LayerFlops, flops, trace_layers
from .layers import adaptive_avg_pool, default_kernel_init
from .lenet import LeNet5, LeNet300100
from .registry import (
    REGISTRY,
    ModelEntry,
    create,
    default_input_shape,
    get_entry,
    names,
)
from .transformer import GPT, ViT, kernel_mask
from .resnet import (
    BasicBlock,
    BottleneckBlock,
    ResNet,
    ResNet18,
    ResNet34,
    ResNet50,
    ResNetWidths,
    resolve_widths,
)
from .vgg import VGG, VGG11, VGG13, VGG16, VGG19
from .wide_resnet import WRN28_10, WideBasicBlock, WideResNet

__all__ = [
    'BasicBlock',
    'BottleneckBlock',
    'CompactionResult',
    'FlopReport',
    'GPT',
    'LayerCompaction',
    'LayerFlops',
    'LeNet300100',
    'LeNet5',
    'ModelEntry',
    'REGISTRY',
    'ResNet',
    'ResNet18',
    'ResNet34',
    'ResNet50',
    'ResNetWidths',
    'VGG',
    'VGG11',
    'VGG13',
    'VGG16',
    'VGG19',
    'ViT',
    'WRN28_10',
    'WideBasicBlock',
    'WideResNet',
    'adaptive_avg_pool',
    'compact',
    'coupled_scales',
    'create',
    'default_input_shape',
    'default_kernel_init',
    'flops',
    'get_entry',
    'kernel_mask',
    'names',
    'resolve_widths',
    'trace_layers',
]
