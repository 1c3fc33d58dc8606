"""Model registry: build the papers' networks by name.

>>> import models
>>> model = models.create('resnet18', num_classes=10)
>>> model.stem, model.num_classes
('cifar', 10)
>>> models.create('resnet18', stem='imagenet').num_classes
1000
>>> models.default_input_shape('resnet18'), models.default_input_shape('lenet5')
((32, 32, 3), (28, 28, 1))
>>> models.create('gpt_char', num_classes=65).vocab_size  # a token model
65
>>> models.default_input_shape('gpt_char'), models.get_entry('gpt_char').input_dtype
((128,), 'int32')
>>> models.create('resnet19')
Traceback (most recent call last):
...
ValueError: Unknown model 'resnet19'. Did you mean 'resnet18', ...? Valid names: ...

Initialise with a batch axis prepended::

  shape = models.default_input_shape(name)   # or the dataset's (H, W, C)
  variables = model.init(key, jnp.zeros((1,) + shape), train=False)
"""

import dataclasses
import difflib
from typing import Any, Callable, Dict, Mapping, Optional, Tuple

from flax import linen as nn

from . import lenet, resnet, transformer, vgg, wide_resnet

_IMAGENET_SHAPE = (224, 224, 3)
_CIFAR_SHAPE = (32, 32, 3)
_MNIST_SHAPE = (28, 28, 1)


@dataclasses.dataclass(frozen=True)
class ModelEntry:
  """A registered model.

  Attributes:
    name: registry name.
    cls: the ``flax.linen`` module class.
    fixed: constructor arguments that define the architecture (e.g.
      ``stage_sizes``); they cannot be overridden through :func:`create`.
    defaults: default constructor arguments that may be overridden (e.g.
      ``stem``).
    description: one line for listings.
    variant_field: the field that selects the input form (``"stem"`` or
      ``"variant"``), or None.
    classes_field: the constructor field that :func:`create`'s
      ``num_classes`` sets (``"vocab_size"`` for a language model).
    default_classes: ``num_classes`` when not given (None: 1000 for the
      ImageNet forms, 10 otherwise).
    input_dtype: dtype of the inputs (``"int32"`` tokens for a language
      model, ``"float32"`` images otherwise).
    shape_fn: the input shape from the merged constructor arguments, for
      models whose input is not an image (None: the image rules).
  """

  name: str
  cls: type
  fixed: Mapping[str, Any]
  defaults: Mapping[str, Any]
  description: str
  variant_field: Optional[str] = None
  classes_field: str = 'num_classes'
  default_classes: Optional[int] = None
  input_dtype: str = 'float32'
  shape_fn: Optional[Callable[[Mapping[str, Any]], Tuple[int, ...]]] = None

  def variant(self, kwargs: Mapping[str, Any]) -> Optional[str]:
    """The stem/variant (``"cifar"`` or ``"imagenet"``) selected by kwargs."""
    if self.variant_field is None:
      return None
    return kwargs.get(
        self.variant_field, self.defaults.get(self.variant_field, 'cifar')
    )

  def input_shape(self, kwargs: Mapping[str, Any] = None) -> Tuple[int, ...]:
    """Default shape (H, W, C) of one input example for these kwargs
    (``(time,)`` for a language model)."""
    if self.shape_fn is not None:
      return self.shape_fn({**self.defaults, **(kwargs or {})})
    if self.cls in (lenet.LeNet5, lenet.LeNet300100):
      return _MNIST_SHAPE
    return (
        _IMAGENET_SHAPE
        if self.variant(kwargs or {}) == 'imagenet'
        else _CIFAR_SHAPE
    )


def _entries():
  entries = {}

  def add(name, cls, description, fixed=None, variant_field=None, **defaults):
    entries[name] = ModelEntry(
        name, cls, dict(fixed or {}), defaults, description, variant_field
    )

  def add_entry(name, cls, description, **fields):
    entries[name] = ModelEntry(name, cls, {}, {}, description, **fields)

  add(
      'lenet5',
      lenet.LeNet5,
      'LeNet-5-Caffe (conv 20, conv 50, dense 500) for 28x28x1 inputs',
  )
  add('lenet300_100', lenet.LeNet300100, 'LeNet-300-100 multilayer perceptron')
  blocks = {
      18: ((2, 2, 2, 2), resnet.BasicBlock),
      34: ((3, 4, 6, 3), resnet.BasicBlock),
      50: ((3, 4, 6, 3), resnet.BottleneckBlock),
  }
  for depth, (stages, block) in blocks.items():
    fixed = dict(stage_sizes=stages, block_cls=block)
    add(
        f'resnet{depth}',
        resnet.ResNet,
        f'ResNet-{depth} (stem="cifar": 3x3 stem, or "imagenet")',
        fixed,
        'stem',
        stem='cifar',
    )
    add(
        f'resnet{depth}_imagenet',
        resnet.ResNet,
        f'ResNet-{depth} with the ImageNet stem (7x7/2 conv + max-pool)',
        fixed,
        'stem',
        stem='imagenet',
    )
  # He et al.'s CIFAR ResNets (6n + 2 layers; widths 16, 32, 64) with
  # projection shortcuts where the shape changes: small enough for CPUs
  # (ResNet-8, n = 1, trains 30 CIFAR-10 epochs in about 25 min on 2 cores).
  for depth in (8, 20, 32, 44, 56):
    n = (depth - 2) // 6
    add(
        f'resnet{depth}',
        resnet.ResNet,
        f'CIFAR ResNet-{depth} (3 stages of {n} basic blocks, 16/32/64 wide)',
        dict(
            stage_sizes=(n, n, n), block_cls=resnet.BasicBlock, num_filters=16
        ),
        'stem',
        stem='cifar',
    )
  for depth, cfg in vgg.CONFIGS.items():
    add(
        f'vgg{depth}',
        vgg.VGG,
        f'VGG-{depth} with batch norm (variant="cifar" or "imagenet")',
        dict(cfg=cfg),
        'variant',
        variant='cifar',
    )
    add(
        f'vgg{depth}_imagenet',
        vgg.VGG,
        f'VGG-{depth} with batch norm, torchvision ImageNet classifier',
        dict(cfg=cfg),
        'variant',
        variant='imagenet',
    )
  add(
      'wrn28_10',
      wide_resnet.WideResNet,
      'Wide-ResNet-28-10 (pre-activation; dropout_rate option)',
      dict(depth=28, widen_factor=10),
  )
  # Transformers (models/transformer.py); sparsify them with
  # models.kernel_mask, not the default mask (it selects embeddings too).
  add_entry(
      'gpt_char',
      transformer.GPT,
      'GPT-style decoder for character-level text (4 layers, d=128, 4 heads, '
      'context 128; num_classes = vocabulary size)',
      classes_field='vocab_size',
      default_classes=256,
      input_dtype='int32',
      shape_fn=lambda kw: (kw.get('context', 128),),
  )
  add_entry(
      'vit_cifar',
      transformer.ViT,
      'Vision Transformer for 32x32 images (patch 4, d=128, 6 layers, 4 '
      'heads)',
  )
  return entries


#: All registered models by name.
REGISTRY: Dict[str, ModelEntry] = _entries()

_CHOICES = {'stem': resnet.STEMS, 'variant': vgg.VARIANTS}


def names() -> Tuple[str, ...]:
  """The registered model names."""
  return tuple(REGISTRY)


def get_entry(name: str) -> ModelEntry:
  """The :class:`ModelEntry` of ``name``; ValueError listing names if unknown."""
  try:
    return REGISTRY[name]
  except KeyError:
    close = difflib.get_close_matches(str(name), REGISTRY, n=3)
    hint = f' Did you mean {", ".join(map(repr, close))}?' if close else ''
    raise ValueError(
        f'Unknown model {name!r}.{hint} Valid names: {", ".join(REGISTRY)}.'
    ) from None


def _constructor_fields(cls) -> Tuple[str, ...]:
  return tuple(
      f.name
      for f in dataclasses.fields(cls)
      if f.init and f.name not in ('parent', 'name')
  )


def create(name: str, num_classes: Optional[int] = None, **kwargs) -> nn.Module:
  """Builds a registered model.

  Args:
    name: one of :func:`names` (e.g. ``"resnet18"``, ``"vgg16_imagenet"``).
    num_classes: number of logits; defaults to 1000 for the ImageNet
      stem/variant and 10 otherwise.
    **kwargs: constructor arguments of the model class, e.g. ``kernel_init``,
      ``dtype``, ``param_dtype``, ``axis_name``, ``stem="cifar"|"imagenet"``
      (ResNets), ``variant="cifar"|"imagenet"`` (VGG), ``dropout_rate``.

  Returns:
    An unbound ``flax.linen`` module. Call it as
    ``model.init(key, x, train=False)`` and
    ``model.apply(variables, x, train=True, mutable=['batch_stats'],
    rngs={'dropout': key})``.

  Raises:
    ValueError: unknown name or invalid stem/variant value.
    TypeError: an argument the model does not accept (the message lists the
      accepted ones).
  """
  entry = get_entry(name)
  accepted = [
      f
      for f in _constructor_fields(entry.cls)
      if f not in entry.fixed and f != entry.classes_field
  ]
  for key in kwargs:
    if key in entry.fixed:
      raise TypeError(
          f'{name!r} fixes {key}={entry.fixed[key]!r}; build '
          f'models.{entry.cls.__name__}(...) directly for another value.'
      )
    if key not in accepted:
      raise TypeError(
          f'{name!r} ({entry.cls.__name__}) got an unexpected argument '
          f'{key!r}. Accepted: num_classes, {", ".join(accepted)}.'
      )
  merged = {**entry.defaults, **kwargs}
  for key, choices in _CHOICES.items():
    if key in merged and merged[key] not in choices:
      raise ValueError(
          f'{name!r}: {key} must be one of {choices}, got {merged[key]!r}.'
      )
  if num_classes is None:
    num_classes = entry.default_classes or (
        1000 if entry.variant(merged) == 'imagenet' else 10
    )
  return entry.cls(
      **{entry.classes_field: num_classes}, **entry.fixed, **merged
  )


def default_input_shape(name: str, **kwargs) -> Tuple[int, ...]:
  """Shape (H, W, C) of the input example a model is designed for.

  The models take any input shape their layers accept (e.g. ResNet-18 on
  MNIST's 28x28x1); a dataset's shape is the data layer's to know.

  Args:
    name: registered model name.
    **kwargs: the :func:`create` arguments (``stem``/``variant`` select 32x32
      or 224x224 inputs).

  Returns:
    ``(H, W, C)``; prepend a batch dimension to initialise, e.g.
    ``jnp.zeros((1,) + shape)``.
  """
  entry = get_entry(name)
  unknown = sorted(set(kwargs) - set(_constructor_fields(entry.cls)))
  if unknown:
    raise TypeError(
        f'default_input_shape({name!r}) got {", ".join(unknown)}: it takes '
        "the model's create() arguments; a dataset's shape is its loader's "
        '(e.g. train.data.datasets.DATASETS[name].image_shape).'
    )
  return entry.input_shape({**entry.defaults, **kwargs})
