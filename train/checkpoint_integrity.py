"""Checkpoint integrity: a CRC-32 of every array, checked when read.

Orbax does not check the arrays' bytes (its OCDBT index is checksummed, the
data is not), so a flipped bit would otherwise be read back as a different
number. :func:`checksums` records, per leaf of a host tree, its shape, dtype
and CRC-32; :func:`verify` raises :class:`DamagedCheckpoint` unless a tree
read back matches its record. :class:`train.checkpoint.Checkpoints` stores
the record beside each checkpoint (its ``integrity`` item).
"""

from __future__ import annotations

import zlib
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

CHECKSUMS_FORMAT = 'rda-optax-checkpoint-checksums'
CHECKSUMS_VERSION = 1


class DamagedCheckpoint(ValueError):
  """A checkpoint whose arrays do not match their checksums."""


def host_copy(tree: Any) -> Any:
  """A NumPy copy of a pytree of (single-device) arrays.

  ``np.array`` copies: on CPU ``np.asarray`` of a jax array may alias the
  device buffer, which a donated train step then overwrites.
  """
  return jax.tree.map(lambda x: np.array(x), tree)


def _leaf_name(path) -> str:
  """A key path as ``a/0/b``, the same for a template's tree (NamedTuple
  fields, tuples) and for Orbax's tree restored without one (dicts, lists)."""
  parts = []
  for k in path:
    for attr in ('key', 'name', 'idx'):
      if hasattr(k, attr):
        parts.append(str(getattr(k, attr)))
        break
    else:  # pragma: no cover - other key kinds of custom nodes
      parts.append(str(k))
  return '/'.join(parts)


def _crc(x: np.ndarray) -> int:
  return zlib.crc32(np.ascontiguousarray(x).reshape(-1).view(np.uint8))


def checksums(tree: Any) -> dict[str, Any]:
  """The checksum record of a host tree: per leaf, shape, dtype and CRC-32."""
  leaves = {}
  for path, x in jax.tree_util.tree_leaves_with_path(tree):
    x = np.asarray(x)
    leaves[_leaf_name(path)] = [list(x.shape), x.dtype.name, _crc(x)]
  return {
      'format': CHECKSUMS_FORMAT,
      'version': CHECKSUMS_VERSION,
      'leaves': leaves,
  }


def check_record(record: Any) -> None:
  if not (
      isinstance(record, dict)
      and record.get('format') == CHECKSUMS_FORMAT
      and record.get('version') == CHECKSUMS_VERSION
      and isinstance(record.get('leaves'), dict)
  ):
    raise DamagedCheckpoint('its checksum record is damaged')


def as_recorded(target: Any, record: dict[str, Any]) -> Any:
  """``target`` with the dtypes the checksum record names (as saved)."""

  def recorded(path, x):
    entry = record['leaves'].get(_leaf_name(path))
    if entry is None:
      return x  # verify names the difference.
    try:
      dtype = jnp.dtype(entry[1])
    except Exception as e:  # pylint: disable=broad-except
      raise DamagedCheckpoint('its checksum record is damaged') from e
    return x if x.dtype == dtype else x.astype(dtype)

  return jax.tree_util.tree_map_with_path(recorded, target)


def verify(tree: Any, record: Any) -> None:
  """Raises DamagedCheckpoint unless ``tree`` matches its checksum record."""
  check_record(record)
  want = record['leaves']
  have = {
      _leaf_name(p): np.asarray(x)
      for p, x in jax.tree_util.tree_leaves_with_path(tree)
  }
  if set(want) != set(have):
    odd = sorted(set(want) ^ set(have))
    raise DamagedCheckpoint(
        f'its arrays are not the ones it recorded ({", ".join(odd[:3])})'
    )
  for name, x in have.items():
    if want[name] != [list(x.shape), x.dtype.name, _crc(x)]:
      raise DamagedCheckpoint(f'{name} does not match its checksum')


# ---------------------------------------------------------------------------
# The checkpoints of a run directory.
