"""models.registry: reference parameter counts, names, input shapes, errors."""

import os
import math

import pytest
from flax import traverse_util

import models
from _models_helpers import _abstract_variables, _count

# --------------------------------------------------------------------------
# Parameter counts (reference figures) and registry.

PARAMETER_COUNTS = [
    # name, create kwargs, expected trainable parameters.
    ('lenet5', {}, 431_080),
    ('lenet300_100', {}, 266_610),
    ('resnet18', {}, 11_173_962),  # CIFAR stem, 10 classes
    ('resnet8', {}, 78_042),  # He et al.'s 6n+2, n=1
    ('resnet20', {}, 272_474),  # He et al.'s 0.27M
    ('resnet56', {}, 855_770),  # He et al.'s 0.85M
    ('resnet18', {'stem': 'imagenet'}, 11_689_512),  # torchvision resnet18
    ('resnet34_imagenet', {}, 21_797_672),  # torchvision resnet34
    ('resnet50_imagenet', {}, 25_557_032),  # torchvision resnet50
    ('vgg16', {}, 14_728_266),  # CIFAR VGG-16bn
    ('vgg11', {'variant': 'imagenet'}, 132_868_840),  # torchvision vgg11_bn
    ('vgg13_imagenet', {}, 133_053_736),  # torchvision vgg13_bn
    ('vgg16_imagenet', {}, 138_365_992),  # torchvision vgg16_bn
    ('vgg19_imagenet', {}, 143_678_248),  # torchvision vgg19_bn
    ('wrn28_10', {}, 36_479_194),  # Zagoruyko's WRN-28-10
    # CIFAR forms of the other depths (kuangliu/pytorch-cifar layouts).
    ('resnet34', {}, 21_282_122),
    ('resnet50', {}, 23_520_842),
    ('vgg11', {}, 9_231_114),
    ('vgg13', {}, 9_416_010),
    ('vgg19', {}, 20_040_522),
]


@pytest.mark.parametrize('name,kwargs,expected', PARAMETER_COUNTS)
def test_parameter_counts(name, kwargs, expected):
  model = models.create(name, **kwargs)
  variables = _abstract_variables(
      model, models.default_input_shape(name, **kwargs)
  )
  assert _count(variables['params']) == expected


def test_wrn_count_breakdown():
  # 36,479,194 = conv kernels 36,454,832 + BN 17,952 + fc 6,410.
  variables = _abstract_variables(models.create('wrn28_10'), (32, 32, 3))
  flat = traverse_util.flatten_dict(variables['params'], sep='/')
  conv = sum(
      math.prod(v.shape)
      for k, v in flat.items()
      if k.endswith('kernel') and not k.startswith('fc')
  )
  bn = sum(
      math.prod(v.shape)
      for k, v in flat.items()
      if k.rsplit('/', 2)[-2].startswith('bn')
  )
  assert (conv, bn) == (36_454_832, 17_952)
  assert 'batch_stats' in variables and _count(variables['batch_stats']) == bn


def test_vgg16_cifar_layout():
  variables = _abstract_variables(models.create('vgg16'), (32, 32, 3))
  params = variables['params']
  assert sorted(k for k in params if k.startswith('conv')) == sorted(
      f'conv{k}' for k in range(1, 14)
  )
  assert len([k for k in params if k.startswith('bn')]) == 13
  assert params['fc']['kernel'].shape == (512, 10)


def test_registry_docstring_examples():
  import doctest  # pylint: disable=import-outside-toplevel
  from models import registry  # pylint: disable=import-outside-toplevel

  result = doctest.testmod(registry, optionflags=doctest.ELLIPSIS)
  assert result.attempted > 0 and result.failed == 0


def test_default_input_shapes():
  assert models.default_input_shape('lenet5') == (28, 28, 1)
  assert models.default_input_shape('lenet300_100') == (28, 28, 1)
  assert models.default_input_shape('resnet18') == (32, 32, 3)
  assert models.default_input_shape('resnet18', stem='imagenet') == (
      224,
      224,
      3,
  )
  assert models.default_input_shape('resnet50_imagenet') == (224, 224, 3)
  assert models.default_input_shape('vgg16', variant='imagenet') == (
      224,
      224,
      3,
  )
  assert models.default_input_shape('wrn28_10') == (32, 32, 3)
  # The models take an input shape; datasets are not theirs to know.
  assert not hasattr(models, 'DATASET_INPUT_SHAPES')
  with pytest.raises(TypeError, match="a dataset's shape is its loader's"):
    models.default_input_shape('resnet18', dataset='mnist')


def test_registry_names_and_num_classes():
  for name in (
      'lenet5',
      'lenet300_100',
      'resnet18',
      'resnet34',
      'resnet50',
      'vgg11',
      'vgg13',
      'vgg16',
      'vgg19',
      'wrn28_10',
  ):
    assert name in models.names() and name in models.REGISTRY
  assert models.create('resnet18').num_classes == 10
  assert models.create('resnet18_imagenet').num_classes == 1000
  assert models.create('resnet18', stem='imagenet').num_classes == 1000
  assert models.create('vgg16', num_classes=100).num_classes == 100


def test_registry_errors():
  with pytest.raises(ValueError, match='Valid names: lenet5, lenet300_100'):
    models.create('resnet19')
  with pytest.raises(ValueError, match="Did you mean 'resnet18'"):
    models.create('resnet_18')
  with pytest.raises(
      TypeError,
      match=r"unexpected argument 'dropout'.*" r'Accepted: num_classes, stem',
  ):
    models.create('resnet18', dropout=0.5)
  with pytest.raises(TypeError, match='fixes stage_sizes'):
    models.create('resnet18', stage_sizes=(1, 1))
  with pytest.raises(ValueError, match='stem must be one of'):
    models.create('resnet18', stem='mnist')
  with pytest.raises(ValueError, match='variant must be one of'):
    models.create('vgg16', variant='tiny')
  with pytest.raises(ValueError, match='Valid names'):
    models.default_input_shape('alexnet')


def test_without_flax_the_import_error_names_the_extra():
  """Without the models extra, ``import models`` fails with one error (not
  two chained tracebacks) whose message names the install command."""
  import subprocess  # pylint: disable=import-outside-toplevel
  import sys  # pylint: disable=import-outside-toplevel

  repo = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
  proc = subprocess.run(
      [
          sys.executable,
          '-c',
          "import sys; sys.modules['flax'] = None; " 'import models',
      ],
      cwd=repo,
      capture_output=True,
      text=True,
      timeout=60,
  )
  lines = proc.stderr.strip().splitlines()
  assert proc.returncode == 1
  assert lines[-1].startswith(
      'ImportError: models needs Flax: install the ' 'models extra'
  ), lines
  assert 'direct cause' not in proc.stderr and len(lines) <= 6, lines
