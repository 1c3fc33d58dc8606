"""The train loop: set-up, steps with their logging, evaluation, checkpoints.

Laid out like flax/examples/imagenet/train.py's ``train_and_evaluate``: it
builds the data, the optimizer of the method (:mod:`train.optimizer`) and the
train state (:mod:`train.train_state`), restores the newest checkpoint, then
runs the pmapped steps of :mod:`train.train_step`, logging every
``log_every_steps``, evaluating (and checkpointing) every
``eval_every_epochs``, and ends with the report.

The same code runs on one CPU device, several (simulated) CPU devices, a GPU,
and several hosts after ``jax.distributed.initialize`` (each host feeds its
local devices; collectives span all devices).

Determinism: the data order depends on ``(seed, step)`` and every random key
is ``fold_in(key(seed), step)`` (see :mod:`train.train_step`), so a run
resumed from a checkpoint ends with the same parameters, bit for bit on CPU,
as a run that was never interrupted.
"""

from __future__ import annotations

import collections
import errno
import os
import time
from typing import Any

import jax
from jax.experimental import multihost_utils
import numpy as np

import rda_optax
from . import checkpoint as ckpt_lib
from . import complete
from . import config as config_lib
from . import config_checks
from .data import loader as data_lib
from . import locks
from . import optimizer
from . import metrics as metrics_lib
from . import report as report_lib
from . import run_model
from . import selection
from . import train_state as state_lib
from . import train_step as step_lib
from .evaluation import MAX_STEPS_IN_FLIGHT
from .evaluation import eval_line
from .run_records import RunRecords
from .train_state import AXIS, TrainState

# ---------------------------------------------------------------------------
# Checks before any work.
# ---------------------------------------------------------------------------


def check_runtime(cfg: config_lib.Config) -> None:
  """Device-dependent checks (batch divisibility)."""
  n = jax.device_count()
  for name, b in (
      ('--batch_size', cfg.batch_size),
      ('--eval_batch_size', cfg.eval_batch),
  ):
    if b % n:
      raise config_lib.ConfigError(
          f'{name} {b} is not divisible by the {n} devices '
          f'({jax.process_count()} process(es) x {jax.local_device_count()} '
          f'local): use a multiple of {n}.'
      )


def check(cfg: config_lib.Config, *, model=None) -> None:
  """The checks of a run that need JAX, once, before any work: the devices
  (:func:`check_runtime`) and, for a registry model (``model`` None), its
  name and parameters (:func:`train.selection.check_model`)."""
  check_runtime(cfg)
  if model is None:
    selection.check_model(cfg)


# ---------------------------------------------------------------------------
# The loop.
# ---------------------------------------------------------------------------


class _Run(RunRecords):
  """One run, set up once; :meth:`train` steps, logs, evaluates and saves
  (the records, checkpoints and checks: :class:`~train.run_records.RunRecords`).
  """

  def __init__(self, cfg: config_lib.Config, model, data: data_lib.Data | None):
    self.cfg = cfg
    self.is_main = jax.process_index() == 0
    self.run_lock = locks.RunLock(cfg.workdir)
    self.lock_run_directory()
    try:
      self._setup(model, data)
    except BaseException:
      if hasattr(self, 'ckpts'):
        self.ckpts.close(quiet=True)
      self.run_lock.release()
      raise

  def lock_run_directory(self) -> None:
    """One run per run directory: process 0 takes its lock, and tells the
    other processes whether it got it (they all stop if not)."""
    error = None
    if self.is_main:
      try:
        self.run_lock.acquire()
      except locks.RunLocked as e:
        error = e
    if jax.process_count() > 1:
      got = multihost_utils.broadcast_one_to_all(np.int32(error is None))
      if not int(got) and error is None:
        error = locks.RunLocked(
            f'the run directory {self.cfg.workdir} is in use by another run '
            '(process 0 found its lock taken).'
        )
    if error is not None:
      raise error

  def _setup(self, model, data) -> None:
    """Data, model, optimizer, the state restored, the metric writer."""
    cfg = self.cfg
    init_variables = (
        run_model.load_init_variables(cfg.init_from) if cfg.init_from else None
    )
    self.data = data = data_lib.create_data(cfg) if data is None else data
    self.phases = optimizer.make_phases(cfg, data.num_train_examples)
    if model is None:
      model = step_lib.create_model(cfg, data.num_classes)
    tx, _ = optimizer.create_optimizer(cfg, self.phases)
    init_key, train_key = jax.random.split(jax.random.key(cfg.seed))
    state = state_lib.create_train_state(
        init_key,
        cfg,
        model,
        data.image_shape,
        tx,
        init_variables,
        input_dtype=data.task.input_dtype,
    )

    self.ckpts = ckpt_lib.Checkpoints(
        os.path.join(cfg.workdir, 'checkpoints'),
        keep=cfg.keep_checkpoints,
        async_save=cfg.async_checkpointing,
    )
    try:
      restored = self.ckpts.restore_latest(state_lib.state_tree(state))
    except ckpt_lib.UnreadableCheckpoints as e:
      self.ckpts.close()
      raise config_lib.ConfigError(str(e)) from e
    if restored is not None:
      state = state_lib.replace_from_tree(state, restored)
    self.step_offset = int(state.step)
    self.losses: list[float] = []  # Training losses logged by this process.
    if self.is_main:
      config_lib.write_config(cfg, os.path.join(cfg.workdir, 'config.json'))
    self.writer = metrics_lib.MetricWriter(
        cfg.workdir, enabled=self.is_main, resume_step=self.step_offset
    )
    if self.step_offset == 0:
      self.writer.write_hparams(cfg.to_dict())

    # Methods that keep an exactly sparse point apart from the parameters
    # (rmda with momentum) are evaluated, reported and saved as final there;
    # it needs batch-norm statistics of its own (when it differs from the
    # weights: not during ASR by SGD).
    self.has_sparse_point = rda_optax.sparse_point.has_sparse_point(
        state.opt_state
    )
    self.p_sparse = jax.pmap(rda_optax.sparse_params, axis_name=AXIS)
    self.p_bn_step = (
        step_lib.make_p_bn_step(data)
        if self.has_sparse_point and jax.tree.leaves(state.batch_stats)
        else None
    )
    self.p_differs = jax.pmap(step_lib.trees_differ, axis_name=AXIS)
    self.p_finite = jax.pmap(step_lib.all_finite, axis_name=AXIS)
    self.state = state_lib.replicate(state)
    self.p_train_step = step_lib.make_p_train_step(data, cfg, train_key)
    self.p_eval_step = step_lib.make_p_eval_step(data)

  # -- The loop. ------------------------------------------------------------

  def train(self) -> TrainState:
    """Steps from the restored step to the end; the final host state."""
    cfg, phases = self.cfg, self.phases
    total = phases.total_steps
    if self.is_main and self.step_offset < total:
      complete.clear(cfg.workdir)
    if self.is_main and self.step_offset >= total:
      print(
          f'{cfg.workdir} is already complete ({self.step_offset} of '
          f'{total} steps): nothing to train. Its report follows; use '
          'another --workdir to train again.',
          flush=True,
      )
    eval_every = max(
        int(round(cfg.eval_every_epochs * phases.steps_per_epoch)), 1
    )
    end = min(total, cfg.stop_at_step) if cfg.stop_at_step else total
    in_flight: collections.deque = collections.deque()
    train_avg, epoch_avg = metrics_lib.Averager(), metrics_lib.Averager()
    task = self.data.task
    throughput = metrics_lib.Throughput(
        cfg.batch_size * task.items_per_example, unit=task.unit
    )
    bar = metrics_lib.progress_bar(
        total, self.step_offset, self.is_main and cfg.progress
    )
    batches = self.data.train_batches(self.step_offset)
    last_record: dict[str, Any] = {}
    try:
      for step in range(self.step_offset, end):
        self.state, sums = self.p_train_step(self.state, next(batches))
        self.ckpts.check()  # Stops at once when a checkpoint write failed.
        # A bounded number of steps in flight: unbounded asynchronous
        # dispatch of pmapped steps starves XLA:CPU's collectives (an
        # all-reduce rendezvous timeout aborts the process on 4+ simulated
        # devices).
        in_flight.append(sums)
        if len(in_flight) > MAX_STEPS_IN_FLIGHT:
          jax.block_until_ready(in_flight.popleft())
        train_avg.add(sums)
        epoch_avg.add(sums)
        throughput.step(sums)
        bar.update(1)
        done = step + 1

        is_eval = (
            done % eval_every == 0
            or done == total
            or (phases.asr_steps and done == phases.main_steps)
        )
        if done % cfg.log_every_steps == 0 or is_eval:  # (every eval logs)
          model = self.model_params()  # The exactly sparse model, once.
          last_record = self.log_train(
              step, model, train_avg.result(), throughput
          )
          bar.set_postfix(metrics_lib.postfix(last_record), refresh=False)

        final_sparse = done == total and self.has_sparse_point
        if final_sparse:  # The run's result is the exactly sparse model.
          self.state = self.with_model(model)
        if is_eval:
          eval_state = self.state if final_sparse else self.with_model(model)
          record = self.evaluate(step, eval_state, epoch_avg.result())
          if self.is_main:
            bar.write(eval_line(record, task))
          self.save(done)
          throughput.restart()  # Exclude eval and checkpoint time.
        elif (
            cfg.checkpoint_every_steps
            and done % cfg.checkpoint_every_steps == 0
        ) or done == end:
          t_save = time.perf_counter()
          self.save(done)
          throughput.exclude(time.perf_counter() - t_save)
      final = ckpt_lib.host_copy(state_lib.unreplicate(self.state))
      bar.close()  # The report starts on a line of its own, after the bar.
      if self.is_main and int(final.step) >= total:
        if cfg.report:
          report_lib.write_report(
              cfg, final.params, last_train=last_record, step=int(final.step)
          )
        # After the final checkpoint is written (the record names it).
        self.ckpts.wait()
        complete.write(cfg, int(final.step))
    finally:
      data_lib.close(batches)
      bar.close()
    return final

  def close(self, *, quiet: bool = False) -> None:
    """Waits for the checkpoint write in flight; ``quiet``: the run is
    already stopping with an error, which a failed write must not hide."""
    try:
      self.ckpts.close(quiet=quiet)
    finally:
      try:
        self.writer.close(quiet=quiet)
      finally:
        self.run_lock.release()


def train_and_evaluate(
    cfg: config_lib.Config,
    *,
    model=None,
    data: data_lib.Data | None = None,
    checked: bool = False,
) -> TrainState:
  """Trains and evaluates; the run directory is ``cfg.workdir``.

  Resumes from the newest checkpoint of the run directory. Returns the final
  train state (host copy of one replica).

  Args:
    cfg: the run's config.
    model: a Flax module to use instead of ``models.create(cfg.model)``.
    data: a :class:`train.data.loader.Data` instead of
      ``create_data(cfg)``.
    checked: ``cfg`` has passed :func:`train.config_checks.check` and
      :func:`check` (as the command line does, once, before it calls this);
      otherwise they run here.

  Raises:
    ConfigError: a check failed, naming the option and the fix.
    Diverged: the run diverged.
  """
  if not checked:
    config_checks.check(cfg)
    check(cfg, model=model)
  try:
    run = _Run(cfg, model, data)
  except OSError as e:
    raise_if_write_failed(e, cfg, None)
    raise
  try:
    final = run.train()
    run.close()  # Raises CheckpointWriteError if the last write failed.
  except BaseException as e:
    run.close(quiet=True)
    if isinstance(e, OSError):
      raise_if_write_failed(e, cfg, run.ckpts)
    raise
  return final


# Errors of writing (a full disk, a quota, a read-only or unwritable folder):
# the run cannot go on, and says so in one line.
WRITE_ERRNOS = (
    errno.ENOSPC,
    errno.EDQUOT,
    errno.EROFS,
    errno.EFBIG,
    errno.EACCES,
    errno.EPERM,
)


def raise_if_write_failed(
    e: OSError, cfg: config_lib.Config, ckpts: ckpt_lib.Checkpoints | None
) -> None:
  """Raises WriteFailed (one line, exit status 4) for an OSError of writing
  into the run directory (the metrics, TensorBoard, the report)."""
  name = os.path.abspath(e.filename) if e.filename else ''
  inside = name.startswith(os.path.abspath(cfg.workdir) + os.sep)
  if e.errno not in WRITE_ERRNOS or (
      e.errno in (errno.EACCES, errno.EPERM) and not inside
  ):
    return
  good = ckpts.last_good_step() if ckpts is not None else None
  where = f'in {ckpts.directory}' if ckpts is not None else ''
  raise ckpt_lib.WriteFailed(
      f'cannot write {name or cfg.workdir} ({e.strerror}); '
      + ckpt_lib.after_write_failure(good, where)
  ) from e
