"""The parameter tree every mode times: ResNet-18's shapes (CIFAR stem),
random parameters and gradients of those shapes, and a tree's bytes."""

from __future__ import annotations

import jax


def resnet18_shapes(num_classes: int = 10) -> dict[str, tuple[int, ...]]:
  """Parameter shapes of ResNet-18 with a CIFAR stem (11,173,962 params)."""
  shapes = {
      'conv1/kernel': (3, 3, 3, 64),
      'bn1/scale': (64,),
      'bn1/bias': (64,),
  }
  c_in = 64
  for stage, c in enumerate((64, 128, 256, 512), start=1):
    for block in range(2):
      name = f'layer{stage}_block{block}'
      first_in = c_in if block == 0 else c
      shapes[f'{name}/conv1/kernel'] = (3, 3, first_in, c)
      shapes[f'{name}/conv2/kernel'] = (3, 3, c, c)
      for bn in ('bn1', 'bn2'):
        shapes[f'{name}/{bn}/scale'] = (c,)
        shapes[f'{name}/{bn}/bias'] = (c,)
      if block == 0 and first_in != c:
        shapes[f'{name}/shortcut/kernel'] = (1, 1, first_in, c)
        shapes[f'{name}/shortcut_bn/scale'] = (c,)
        shapes[f'{name}/shortcut_bn/bias'] = (c,)
    c_in = c
  shapes['fc/kernel'] = (512, num_classes)
  shapes['fc/bias'] = (num_classes,)
  return shapes


def make_tree(shapes, dtype, seed):
  keys = jax.random.split(jax.random.PRNGKey(seed), len(shapes))
  return {
      name: (0.05 * jax.random.normal(k, s)).astype(dtype)
      for k, (name, s) in zip(keys, shapes.items())
  }


def tree_bytes(tree) -> int:
  return sum(x.nbytes for x in jax.tree.leaves(tree))


def step_inputs(dtype):
  """The parameters (seed 0) and gradients (seed 1) of every timed step, on
  :func:`resnet18_shapes` (looked up here at each call, so that a test can
  put a tiny tree in its place)."""
  shapes = resnet18_shapes()
  return make_tree(shapes, dtype, 0), make_tree(shapes, dtype, 1)


def n_params(tree) -> int:
  """The number of parameters of ``tree``."""
  return sum(x.size for x in jax.tree.leaves(tree))
