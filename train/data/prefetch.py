"""Background prefetching of batches, and their placement on the devices.

* :func:`prefetch` runs a batch generator in a background thread with a
  bounded queue (:class:`Prefetcher`);
* :func:`prefetch_to_device` also places each batch on the local devices,
  sharded along the leading axis with a ``NamedSharding`` over
  ``jax.local_devices()``: what ``pmap`` consumes without another copy, on
  one host or many (``pmap`` assembles the global array from the hosts'
  local arrays itself).
"""

from __future__ import annotations

import queue
import threading
from typing import Any, Callable, Iterable

import jax
import numpy as np

_END = object()


class _Raised:

  def __init__(self, error: BaseException):
    self.error = error


def _put(q: queue.Queue, stop: threading.Event, item) -> bool:
  while not stop.is_set():
    try:
      q.put(item, timeout=0.1)
      return True
    except queue.Full:
      continue
  return False


def _produce(
    iterator, q: queue.Queue, stop: threading.Event, transform
) -> None:
  # A plain function (not a method), so the thread holds no reference to the
  # Prefetcher and dropping the Prefetcher stops the thread (see
  # Prefetcher.__del__).
  try:
    for item in iterator:
      if stop.is_set():
        return
      if transform is not None:
        item = transform(item)
      if not _put(q, stop, item):
        return
  except BaseException as e:  # noqa: BLE001 - handed to the consumer.
    _put(q, stop, _Raised(e))
    return
  _put(q, stop, _END)


class Prefetcher:
  """Iterates ``iterator`` in a daemon thread, ``buffer_size`` items ahead.

  ``transform`` (e.g. device placement) runs in the thread as well.
  Exceptions are re-raised in the consumer. ``close()``, leaving a ``with``
  block, or dropping the last reference stops the thread (and frees the
  buffered batches).

  Args:
    iterator: the items.
    buffer_size: the bound of the queue.
    transform: applied to each item in the thread.
  """

  def __init__(
      self,
      iterator: Iterable,
      buffer_size: int = 2,
      transform: Callable[[Any], Any] | None = None,
  ):
    if buffer_size < 1:
      raise ValueError('buffer_size must be >= 1')
    self._queue: queue.Queue = queue.Queue(maxsize=buffer_size)
    self._stop = threading.Event()
    self._done = False
    self._thread = threading.Thread(
        target=_produce,
        args=(iter(iterator), self._queue, self._stop, transform),
        daemon=True,
        name='rda-prefetch',
    )
    self._thread.start()

  def __iter__(self):
    return self

  def __next__(self):
    if self._done:
      raise StopIteration
    item = self._queue.get()
    if item is _END:
      self._done = True
      raise StopIteration
    if isinstance(item, _Raised):
      self._done = True
      raise item.error
    return item

  def close(self):
    """Stops the thread and drops the buffered items."""
    self._stop.set()
    self._done = True
    while True:
      try:
        self._queue.get_nowait()
      except queue.Empty:
        break
    if self._thread is not threading.current_thread():
      self._thread.join(timeout=5.0)

  def __enter__(self):
    return self

  def __exit__(self, *exc):
    self.close()

  def __del__(self):
    stop = getattr(self, '_stop', None)
    if stop is not None:
      stop.set()


def prefetch(iterator: Iterable, buffer_size: int = 2) -> Prefetcher:
  """Host-side background prefetching of any iterator (see Prefetcher)."""
  return Prefetcher(iterator, buffer_size)


def device_sharding(devices=None, axis_name: str = 'batch'):
  """A ``NamedSharding`` splitting the leading axis over ``devices``.

  Args:
    devices: the devices (default: the local devices).
    axis_name: the mesh axis's name.

  Returns:
    The sharding.
  """
  devices = list(jax.local_devices() if devices is None else devices)
  mesh = jax.sharding.Mesh(np.array(devices), (axis_name,))
  return jax.sharding.NamedSharding(mesh, jax.sharding.PartitionSpec(axis_name))


def shard_to_devices(batch, devices=None, axis_name: str = 'batch'):
  """Places a host-local batch on the devices, one leading slice each.

  Returns ``jax.Array`` leaves with a ``NamedSharding`` over the local
  devices: the input sharding ``pmap`` uses, so it consumes them without
  copying. (``jax.device_put_sharded`` / ``device_put_replicated`` and
  ``PmapSharding`` are gone from current JAX.) In a multi-host run each host
  passes its own local array to ``pmap``, which builds the global one.

  Args:
    batch: a pytree whose leaves' leading axis is the local devices.
    devices: the devices (default: the local devices).
    axis_name: the mesh axis's name.

  Returns:
    The batch on the devices.
  """
  sharding = device_sharding(devices, axis_name)
  return jax.tree.map(lambda x: jax.device_put(x, sharding), batch)


def prefetch_to_device(
    iterator: Iterable,
    buffer_size: int = 2,
    devices=None,
    axis_name: str = 'batch',
) -> Prefetcher:
  """A thread that builds batches AND copies them to the devices.

  Args:
    iterator: host-local batches (leading axis: the local devices).
    buffer_size: batches ahead.
    devices: the devices (default: the local devices).
    axis_name: the mesh axis's name.

  Returns:
    The iterator of device-placed batches.
  """
  sharding = device_sharding(devices, axis_name)

  def put(batch):
    return jax.tree.map(lambda x: jax.device_put(x, sharding), batch)

  return Prefetcher(iterator, buffer_size, transform=put)
