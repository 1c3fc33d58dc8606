"""The values of a config's fields: read as the field's type, and the
error of a config that cannot run.

:func:`coerce` reads a command-line word or a JSON value as a
:class:`train.config.Config` field's type (``0.1,0.2`` as a tuple,
``yes`` as True, ...), raising :class:`ConfigError`, which names the option;
:class:`ScheduleSpec` is one hyper-parameter's schedule
(:meth:`train.config.Config.schedule`). Their names are
:mod:`train.config`'s too.
"""

from __future__ import annotations

import dataclasses
from typing import Any, NamedTuple


class ScheduleSpec(NamedTuple):
  """One hyper-parameter's schedule: ``--{name}`` and its three options.

  The CLI keeps flat flags (``--lr_schedule piecewise --lr_boundaries
  100,150 --lr_scales 0.1,0.1``); code reads them as one value through
  :meth:`Config.schedule`.
  """

  name: str  # 'lr', 'gamma' or 'lam'.
  base: float  # --{name}: the value at step 0.
  kind: str  # --{name}_schedule.
  boundaries: tuple[float, ...]  # --{name}_boundaries (epochs).
  scales: tuple[float, ...]  # --{name}_scales.


class ConfigError(ValueError):
  """A config that cannot run; the message says which option and the fix."""


def coerce(field: dataclasses.Field, value: Any) -> Any:
  """Converts a JSON / CLI value to the field's type.

  Raises:
    ConfigError: the value does not parse as the field's type.
  """
  try:
    return _coerce(field, value)
  except (TypeError, ValueError) as e:
    if isinstance(e, ConfigError):
      raise
    raise ConfigError(
        f'--{field.name}: cannot read {value!r} as {field.type} ({e}).'
    ) from e


def _coerce(field: dataclasses.Field, value: Any) -> Any:
  kind = str(field.type)
  if value is None:
    return field.default
  if kind.startswith('tuple'):
    if isinstance(value, str):
      value = [v for v in value.replace(' ', '').split(',') if v]
    return tuple(float(v) for v in value)
  if kind.startswith('bool'):
    if isinstance(value, str):
      if value.lower() in ('1', 'true', 'yes', 'on'):
        return True
      if value.lower() in ('0', 'false', 'no', 'off'):
        return False
      raise ConfigError(f'--{field.name}: expected true/false, got {value!r}')
    return bool(value)
  if kind.startswith('int'):
    if isinstance(value, float) and not value.is_integer():
      raise ConfigError(f'--{field.name}: expected an integer, got {value}')
    return int(value)
  if kind.startswith('float'):
    return float(value)
  return value if value is None else str(value)
