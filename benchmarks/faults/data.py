"""Faults of kinds 1 and 7: a dataset prepared from another's files (fakes
in MNIST's format, and MNIST's real archives offered as fashion_mnist), and
two processes preparing one dataset at once."""

from __future__ import annotations

import contextlib
import importlib.util
import io
import os
import subprocess
import sys
import time

import numpy as np

from train.data import datasets
from train.data import tfds_source

from .bench import REPO
from .bench import Bench


def _load_fake_mnist():
  """tests/_fake_mnist.py (MNIST-format fakes), loaded from its file: the
  tests folder is not a package and stays off ``sys.path``."""
  path = os.path.join(REPO, 'tests', '_fake_mnist.py')
  spec = importlib.util.spec_from_file_location('_fake_mnist', path)
  module = importlib.util.module_from_spec(spec)
  sys.modules.setdefault('_fake_mnist', module)  # Its dataclasses look it up.
  spec.loader.exec_module(module)
  return module


_fake_mnist = _load_fake_mnist()


def datasets_cases(b: Bench) -> None:
  class Patch:  # monkeypatch's two methods, undone at the end.
    undo: list = []

    @classmethod
    def setattr(cls, obj, name, value):
      cls.undo.append(
          lambda o=obj, n=name, v=getattr(obj, name): setattr(o, n, v)
      )
      setattr(obj, name, value)

    @classmethod
    def setitem(cls, mapping, key, value):
      cls.undo.append(
          lambda m=mapping, k=key, v=mapping[key]: m.__setitem__(k, v)
      )
      mapping[key] = value

  data_dir = b.path('tfds')
  mnist = _fake_mnist.write_archives(b.path('fake_mnist'), pixel=30)
  fashion = _fake_mnist.write_archives(
      b.path('fake_fashion'), pixel=200, seed=1
  )
  try:
    _fake_mnist.accept('mnist', mnist, Patch)
    _fake_mnist.accept('fashion_mnist', fashion, Patch)
    with contextlib.redirect_stderr(io.StringIO()):
      tfds_source.prepare_tfds(
          'mnist', data_dir=data_dir, manual_dir=b.path('fake_mnist')
      )
      tfds_source.prepare_tfds(
          'fashion_mnist', data_dir=data_dir, manual_dir=b.path('fake_fashion')
      )
    means = {}
    for name in ('mnist', 'fashion_mnist'):
      ds = tfds_source.load_tfds(name, data_dir=data_dir, in_memory=True)
      means[name] = float(
          ds.eval.get_batch(np.arange(len(ds.eval)))['image'].mean()
      )
    record = tfds_source.read_provenance('fashion_mnist', data_dir)
    ok = (
        abs(means['mnist'] - 30) < 1
        and abs(means['fashion_mnist'] - 200) < 1
        and record['archives'][0]['sha256']
        == fashion[record['archives'][0]['file']][1]
    )
    b.record(
        '1 dataset',
        'mnist then fashion_mnist (same archive names) in one data folder',
        ok,
        f'test-split mean pixel {means["mnist"]:.0f} / '
        f'{means["fashion_mnist"]:.0f} (fakes made with 30 / 200); provenance '
        'recorded',
    )
  finally:
    for undo in reversed(Patch.undo):
      undo()
  mnist_dir = os.path.join(
      datasets.shared_data_dir() or '/nonexistent', 'mnist'
  )
  if os.path.isdir(mnist_dir):
    try:
      tfds_source.prepare_tfds(
          'fashion_mnist', data_dir=b.path('tfds2'), manual_dir=mnist_dir
      )
      b.record(
          '1 dataset', "MNIST's archives as fashion_mnist", False, 'accepted'
      )
    except tfds_source.ArchiveMismatch as e:
      b.record(
          '1 dataset',
          "MNIST's real archives offered as fashion_mnist",
          '\n' not in str(e),
          f'refused: {str(e)[:110]}...',
      )
  # 7: two preparations at once (separate processes; the first holds the
  # lock until the second says it waits).
  prep_dir, manual = b.path('tfds_race'), b.path('race_manual')
  marker, release = b.path('race_marker'), b.path('race_release')
  script = os.path.join(REPO, 'tests', '_fake_mnist.py')
  first = subprocess.Popen(
      [
          sys.executable,
          script,
          'mnist',
          prep_dir,
          manual,
          '30',
          release,
          marker,
      ],
      cwd=REPO,
      env=b.env,
      stderr=subprocess.PIPE,
      text=True,
  )
  while not os.path.exists(marker) and first.poll() is None:
    time.sleep(0.05)
  second = subprocess.Popen(
      [sys.executable, script, 'mnist', prep_dir, manual, '30'],
      cwd=REPO,
      env=b.env,
      stderr=subprocess.PIPE,
      text=True,
  )
  said = second.stderr.readline().strip()  # Blocks until it says something.
  open(release, 'w').close()
  rest = second.communicate(timeout=300)[1]
  first_err = first.communicate(timeout=300)[1]
  ok = (
      first.returncode == 0
      and second.returncode == 0
      and said.startswith(f'waiting for PID {first.pid} on host')
      and 'Preparing' not in rest
      and 'Traceback' not in rest + first_err
  )
  b.record(
      '7 concurrent preparation',
      'two processes prepare mnist in one data folder',
      ok,
      f'the second said "{said[:80]}...", then read it; rc {first.returncode}'
      f' / {second.returncode}',
  )
