"""train/data/synthetic_source.py: the in-memory dataset of tests and benchmarks."""

import jax
import numpy as np
import pytest

from train.data import augment
from train.data import datasets
from train.data import synthetic_source


def test_names_shapes_and_classes():
  d = synthetic_source.load_synthetic('synthetic:8x6x3:4', num_train=40)
  assert d.info.image_shape == (8, 6, 3) and d.info.num_classes == 4
  assert len(d.train) == 40 and len(d.eval) == synthetic_source.NUM_EVAL
  assert d.info.augmentation == datasets.AUG_NONE
  batch = d.train.get_batch(np.arange(40))
  assert batch['image'].dtype == np.uint8 and set(batch['label']) <= set(
      range(4)
  )
  again = synthetic_source.load_synthetic('synthetic:8x6x3:4', num_train=40)
  np.testing.assert_array_equal(again.train.images, d.train.images)
  for bad in ('synthetic:8x6', 'synthetic:8x6x3:4:rotate', 'synthetics'):
    assert not synthetic_source.is_synthetic(bad)
    with pytest.raises(ValueError, match='Not a synthetic dataset'):
      synthetic_source.load_synthetic(bad)


@pytest.mark.parametrize('aug', [datasets.AUG_FLIP, datasets.AUG_CROP_FLIP])
def test_augmented_names_train_with_the_datasets_augmentation(aug):
  plain = synthetic_source.load_synthetic('synthetic:12x12x3:10')
  d = synthetic_source.load_synthetic(f'synthetic:12x12x3:10:{aug}')
  np.testing.assert_array_equal(d.train.images, plain.train.images)
  assert d.info.augmentation == aug and d.preprocess is None
  x = d.train.get_batch(np.arange(16))['image']
  key = jax.random.key(0)
  evaluated = augment.preprocess(x, key, d.info, False)
  # Evaluation: the same pixels / 255 as the plain dataset's.
  np.testing.assert_allclose(evaluated, plain.preprocess(x, key, False))
  trained = augment.preprocess(x, key, d.info, True)
  assert not np.allclose(trained, evaluated)  # Augmented.
