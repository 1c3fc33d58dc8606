"""benchmarks.target_sparsity and its CIFAR ResNet-20 loop: the augmentation
is a crop of the padded image (flipped or not), the λ rule and the report."""

import json

import numpy as np
import pytest

pytest.importorskip('flax')

from benchmarks import cifar_resnet_loop  # noqa: E402
from benchmarks import target_sparsity  # noqa: E402


def test_augment_is_a_random_crop_of_the_padded_image_flipped_or_not():
  rng = np.random.default_rng(0)
  images = rng.integers(0, 256, size=(64, 32, 32, 3), dtype=np.uint8)
  out = cifar_resnet_loop.augment(images, np.random.default_rng(1))
  assert out.shape == images.shape and out.dtype == np.uint8
  padded = np.pad(images, ((0, 0), (4, 4), (4, 4), (0, 0)))
  offsets, flips = set(), 0
  for i in range(len(images)):
    found = [
        (dy, dx, flip)
        for dy in range(9)
        for dx in range(9)
        for flip in (False, True)
        if np.array_equal(
            out[i],
            padded[i, dy : dy + 32, dx : dx + 32][:, ::-1]
            if flip
            else padded[i, dy : dy + 32, dx : dx + 32],
        )
    ]
    assert found, i
    offsets.add(found[0][:2])
    flips += found[0][2]
  assert len(offsets) > 20 and 10 < flips < 54  # Random, not fixed.


def test_predicted_lambda_keeps_lambda_eta_steps():
  lam = target_sparsity.predicted_lambda(0.95, 1.0, 1000)
  assert lam == pytest.approx(
      3.1e-4 * target_sparsity.LENET300_ETA_STEPS / 1000
  )
  assert target_sparsity.predicted_lambda(0.95, 2.0, 1000) == pytest.approx(
      lam / 2
  )


def test_report_has_a_table_per_model(tmp_path):
  record = dict(
      level=0.95,
      method='target',
      lam=None,
      sparsity=0.95,
      test_accuracy=0.9,
      seed=0,
      epochs=3,
      train_examples=10000,
      machine='m',
      date='2026-12-07T00:00:00',
      commit='c',
  )
  for model in ('mnist_cnn', 'resnet20_cifar'):
    (tmp_path / f'{model}.jsonl').write_text(
        json.dumps({**record, 'model': model}) + '\n'
    )
  text = target_sparsity.report(str(tmp_path))
  assert "## The Flax MNIST example's CNN" in text
  assert '## ResNet-20 on the CIFAR-10 JPEG copy' in text
  assert text.count('| 95% | target | — | 95.00% | 90.00% |') == 2
