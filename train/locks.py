"""File locks: one run per run directory, one preparation per dataset.

A lock is a file holding its holder's PID, host and start time (for the
messages), locked with ``flock``: the kernel gives it to exactly one process
and takes it back when that process ends, however it ends, so the lock of a
killed run is simply free again (its file, still naming the dead holder, is
taken over). On a file system without ``flock`` (some network and FUSE
mounts answer ENOLCK or EOPNOTSUPP) the lock is the file's existence
instead (created with ``O_EXCL``); a holder that is gone (its PID no longer
runs on this host) is taken over under a second short-lived lock file, so
two processes can never both take it.

* :class:`RunLock` (``<workdir>/run.lock``): a second run on a run directory
  is refused at once with :class:`RunLocked` (a ConfigError: exit status 2)
  naming the PID and host of the run that holds it.
* :func:`waiting_lock`: a second preparation of a dataset waits for the
  first, saying so in one line, then finds the dataset prepared.

Nothing here imports JAX.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import socket
import sys
import time
from typing import Any, Callable, Iterator

from .config import ConfigError

try:
  import fcntl
except ImportError:  # pragma: no cover - Windows: the O_EXCL locks.
  fcntl = None

RUN_LOCK = 'run.lock'
# flock is not there (network or FUSE file systems).
_NO_FLOCK = (errno.ENOLCK, errno.EOPNOTSUPP, errno.ENOSYS, errno.EINVAL)


class RunLocked(ConfigError):
  """The run directory is in use by another run."""


def _start_ticks(pid: int) -> int | None:
  """The process's start time (Linux, clock ticks since boot): with the PID,
  it tells a process from a later one that reuses its PID."""
  try:
    with open(f'/proc/{pid}/stat', 'rb') as f:
      text = f.read().decode(errors='replace')
    return int(text[text.rindex(')') + 2 :].split()[19])
  except (OSError, ValueError, IndexError):
    return None


def holder_record() -> dict[str, Any]:
  """Who holds a lock: this process."""
  return {
      'pid': os.getpid(),
      'host': socket.gethostname(),
      'since': time.strftime('%Y-%m-%d %H:%M:%S'),
      'start_ticks': _start_ticks(os.getpid()),
  }


def describe(holder: dict[str, Any] | None) -> str:
  """``PID 123 on host h, since ...`` (or that nothing says who)."""
  if not holder or 'pid' not in holder:
    return 'a process that left no record'
  return (
      f'PID {holder.get("pid")} on host {holder.get("host", "?")}, since '
      f'{holder.get("since", "?")}'
  )


def is_gone(holder: dict[str, Any] | None) -> bool:
  """Whether the holder is known to have ended: its PID no longer runs on
  this host (or runs a later process). A holder on another host is never
  known to be gone."""
  if not holder or holder.get('host') != socket.gethostname():
    return False
  pid = holder.get('pid')
  if not isinstance(pid, int) or pid <= 0:
    return False
  try:
    os.kill(pid, 0)
  except ProcessLookupError:
    return True
  except PermissionError:
    pass  # Alive, another user's.
  ticks = holder.get('start_ticks')
  return ticks is not None and _start_ticks(pid) not in (None, ticks)


def _read(fd_or_path) -> dict[str, Any] | None:
  try:
    if isinstance(fd_or_path, int):
      os.lseek(fd_or_path, 0, os.SEEK_SET)
      data = os.read(fd_or_path, 4096)
    else:
      with open(fd_or_path, 'rb') as f:
        data = f.read(4096)
    record = json.loads(data.decode())
  except (OSError, ValueError):
    return None
  return record if isinstance(record, dict) else None


def _write(fd: int, record: dict[str, Any]) -> None:
  os.ftruncate(fd, 0)
  os.lseek(fd, 0, os.SEEK_SET)
  os.write(fd, json.dumps(record).encode())
  os.fsync(fd)


class FileLock:
  """An exclusive lock on ``path`` (a file, created if needed).

  :meth:`try_acquire` returns None when it has the lock, else the holder's
  record; :meth:`release` gives it back (and removes the file).

  Attributes:
    previous: the record found in the file when the lock was taken: a
      holder that had ended (None if the file was new).
  """

  def __init__(self, path: str, *, use_flock: bool | None = None):
    self.path = os.path.abspath(path)
    self.use_flock = fcntl is not None if use_flock is None else use_flock
    self.previous: dict[str, Any] | None = None
    self._fd: int | None = None

  @property
  def held(self) -> bool:
    return self._fd is not None

  def try_acquire(self) -> dict[str, Any] | None:
    """Takes the lock if it is free; else returns its holder's record."""
    if self._fd is not None:
      return None
    if self.use_flock:
      try:
        return self._try_flock()
      except OSError as e:
        if e.errno not in _NO_FLOCK:
          raise
        self.use_flock = False  # This file system has no flock.
    return self._try_exclusive()

  def _try_flock(self) -> dict[str, Any] | None:
    while True:
      try:
        fd, created = os.open(self.path, os.O_RDWR), False
      except FileNotFoundError:
        try:
          flags = os.O_RDWR | os.O_CREAT | os.O_EXCL
          fd, created = os.open(self.path, flags, 0o644), True
        except FileExistsError:
          continue
      try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
      except BlockingIOError:
        holder = _read(fd)
        os.close(fd)
        return holder or {}
      except OSError:
        os.close(fd)
        if created:  # No flock here: the file would look like a holder.
          os.unlink(self.path)
        raise
      # A holder that releases removes the file: the lock is only ours if
      # the file we locked is still the one at the path.
      try:
        same = os.path.samestat(os.fstat(fd), os.stat(self.path))
      except FileNotFoundError:
        same = False
      if not same:
        os.close(fd)
        continue
      self.previous = _read(fd)
      _write(fd, holder_record())
      self._fd = fd
      return None

  def _try_exclusive(self) -> dict[str, Any] | None:
    """The lock without flock: the file's existence, created O_EXCL."""
    for _ in range(10):
      try:
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o644)
      except FileExistsError:
        holder = _read(self.path)
        if not is_gone(holder):
          return holder or {}
        self._remove_if_unchanged(holder)
        continue
      _write(fd, holder_record())
      self._fd = fd
      return None
    return _read(self.path) or {}

  def _remove_if_unchanged(self, stale: dict[str, Any]) -> None:
    """Removes the lock file of a holder that is gone, under a second lock
    file, so that no process removes the lock a faster one just took."""
    mutex = self.path + '.takeover'
    deadline = time.monotonic() + 10
    while True:
      try:
        fd = os.open(mutex, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        break
      except FileExistsError:
        if time.monotonic() > deadline:
          raise RunLocked(
              f'{mutex} has been there for over 10 s: a process that was '
              f'taking over the lock {self.path} stopped; remove {mutex} '
              'if no run is starting there.'
          ) from None
        time.sleep(0.05)
    try:
      if _read(self.path) == stale:
        self.previous = stale
        with contextlib.suppress(FileNotFoundError):
          os.unlink(self.path)
    finally:
      os.close(fd)
      os.unlink(mutex)

  def release(self) -> None:
    if self._fd is None:
      return
    with contextlib.suppress(FileNotFoundError):
      os.unlink(self.path)  # Still locked: no one takes the removed file.
    os.close(self._fd)
    self._fd = None


class RunLock:
  """The lock of a run directory: ``<workdir>/run.lock``.

  Example::

    lock = RunLock(workdir)
    lock.acquire()   # RunLocked if another run holds it
    ...
    lock.release()

  Multi-host runs: only process 0 takes it (every process of one run shares
  the directory); the train loop tells the others whether it got it.
  """

  def __init__(self, workdir: str):
    self.workdir = workdir
    self.lock = FileLock(os.path.join(workdir, RUN_LOCK))
    self._made_workdir = False

  def acquire(self) -> None:
    """Takes the lock, or raises RunLocked naming the run that holds it."""
    if not os.path.isdir(self.workdir):
      os.makedirs(self.workdir, exist_ok=True)
      self._made_workdir = True
    holder = self.lock.try_acquire()
    if holder is not None:
      raise RunLocked(
          f'the run directory {self.workdir} is in use by another run '
          f'({describe(holder)}; its lock is {self.lock.path}): wait for it '
          'to end or stop it, or choose another --workdir.'
      )
    previous = self.lock.previous
    if previous and previous.get('pid') != os.getpid():
      print(
          f'note: {self.workdir} was locked by {describe(previous)}, which '
          'has ended (killed?): taken over.',
          file=sys.stderr,
      )

  def release(self) -> None:
    """Gives the lock back; a run directory it made that is still empty (the
    run stopped before any work) is removed too."""
    self.lock.release()
    if self._made_workdir:
      self._made_workdir = False
      with contextlib.suppress(OSError):
        os.rmdir(self.workdir)

  def __enter__(self):
    self.acquire()
    return self

  def __exit__(self, *exc):
    self.release()


@contextlib.contextmanager
def waiting_lock(
    path: str,
    what: str,
    *,
    poll_s: float = 0.5,
    say: Callable[[str], None] | None = None,
) -> Iterator[FileLock]:
  """Holds the lock ``path``, waiting (and saying so once) while another
  process holds it.

  Args:
    path: the lock file.
    what: what the holder is doing, for the message (``preparing mnist in
      DIR``).
    poll_s: seconds between attempts.
    say: where the one line goes (default stderr).
  """
  lock = FileLock(path)
  said = False
  while (holder := lock.try_acquire()) is not None:
    if not said:
      line = (
          f'waiting for {describe(holder)}, which is {what} (its lock: '
          f'{path}) ...'
      )
      (say or (lambda s: print(s, file=sys.stderr, flush=True)))(line)
      said = True
    time.sleep(poll_s)
  try:
    yield lock
  finally:
    lock.release()
