"""train/data/input_pipeline.py: the order of the training examples
(deterministic, resumable, independent of the host count), the batches of
each host and device, and every eval example once.

Tests of the pipeline's parts are those of their modules (test_sources.py,
test_tfds_source.py, test_augment.py, test_prefetch.py, ...).
"""

from __future__ import annotations

import numpy as np
import pytest

from train.data import input_pipeline as ip
from _data_helpers import index_source
from _data_helpers import topo

# ---------------------------------------------------------------------------------------------
# Train order: deterministic, resumable, host-count independent
# ---------------------------------------------------------------------------------------------


def _labels(it, k):
  return [next(it)["label"].copy() for _ in range(k)]


def test_train_order_deterministic_and_resumable():
  src = index_source(100)
  kw = dict(seed=3, **topo(ldc=2))
  full = _labels(
      ip.train_batches(src, 16, **kw), 20
  )  # 6 steps/epoch: crosses 3 epochs
  again = _labels(ip.train_batches(src, 16, **kw), 20)
  np.testing.assert_array_equal(np.stack(full), np.stack(again))
  for start in (1, 5, 6, 13):
    resumed = _labels(
        ip.train_batches(src, 16, start_step=start, **kw), 20 - start
    )
    np.testing.assert_array_equal(np.stack(full[start:]), np.stack(resumed))
  other_seed = _labels(ip.train_batches(src, 16, seed=4, **topo(ldc=2)), 6)
  assert not np.array_equal(np.stack(full[:6]), np.stack(other_seed))
  # Each epoch: 6 * 16 distinct examples; the 4 dropped ones differ between epochs.
  epochs = [
      np.concatenate([b.ravel() for b in full[6 * e : 6 * e + 6]])
      for e in range(3)
  ]
  assert all(len(set(e.tolist())) == 96 for e in epochs)
  assert (
      len({tuple(sorted(set(range(100)) - set(e.tolist()))) for e in epochs})
      == 3
  )
  assert ip.steps_per_epoch(100, 16) == 6
  np.testing.assert_array_equal(
      full[7].ravel(), ip.global_batch_indices(100, 16, 3, 7)
  )
  it = ip.train_batches(src, 16, num_steps=4, **kw)
  assert len(list(it)) == 4


def test_train_hosts_split_the_global_batch():
  src = index_source(64)
  single = _labels(ip.train_batches(src, 16, seed=0, **topo(ldc=4)), 5)
  hosts = [
      _labels(ip.train_batches(src, 16, seed=0, **topo(pi=p, pc=2, ldc=2)), 5)
      for p in (0, 1)
  ]
  for step in range(5):
    joined = np.concatenate([hosts[0][step].ravel(), hosts[1][step].ravel()])
    np.testing.assert_array_equal(joined, single[step].ravel())


def test_batch_not_divisible_by_devices():
  src = index_source(64)
  with pytest.raises(ValueError, match="multiple of the total device count 6"):
    next(ip.train_batches(src, 16, seed=0, **topo(pc=2, ldc=3)))
  with pytest.raises(ValueError, match="device count"):
    next(ip.eval_batches(src, 10, **topo(ldc=4)))
  with pytest.raises(ValueError, match="train examples"):
    next(ip.train_batches(src, 128, seed=0, **topo()))


# ---------------------------------------------------------------------------------------------
# Eval: padding + mask, every example exactly once across hosts
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "n,batch,pc,ldc",
    [
        (103, 20, 2, 2),
        (10, 8, 2, 2),
        (7, 16, 2, 4),
        (1, 4, 2, 2),
        (96, 32, 1, 2),
    ],
)
def test_eval_counts_every_example_once(n, batch, pc, ldc):
  src = index_source(n)
  seen, steps = [], []
  for p in range(pc):
    host = list(ip.eval_batches(src, batch, **topo(pi=p, pc=pc, ldc=ldc)))
    steps.append(len(host))
    for b in host:
      assert (
          b["image"].shape[:2]
          == b["label"].shape
          == b["mask"].shape
          == (ldc, batch // pc // ldc)
      )
      assert b["mask"].dtype == np.float32
      real = b["mask"].ravel() == 1
      seen += b["label"].ravel()[real].tolist()
      assert (b["image"].reshape(-1, *src.image_shape)[~real] == 0).all()
  assert len(set(steps)) == 1 and steps[0] == ip.num_eval_steps(n, batch, pc)
  assert sorted(seen) == list(range(n))
