"""Sparse training of a Flax model: train state, pmapped steps, the loop.

Laid out like flax/examples/imagenet/train.py: model creation, loss and
metrics, the train and eval steps (one ``jax.pmap`` each, axis ``'batch'``
for gradients, metrics and batch-norm statistics), train-state creation and
the ``train_and_evaluate`` loop with evaluation, checkpoints, metrics and the
final report.

The same code runs on one CPU device, several (simulated) CPU devices, a GPU,
and several hosts after ``jax.distributed.initialize`` (each host feeds its
local devices; collectives span all devices).

Determinism: the data order depends on ``(seed, step)`` and every random key
is ``fold_in(key(seed), step)`` (then the example's index in the global batch
for augmentation, the device index for dropout), so a run resumed from a
checkpoint ends with the same parameters, bit for bit on CPU, as a run that
was never interrupted.
"""

from __future__ import annotations

import collections
import functools
import os
import time
from typing import Any, Callable

import flax
from flax import jax_utils
from flax.training import train_state
import jax
from jax import lax
import jax.numpy as jnp
import numpy as np
import optax

from train import checkpoint as ckpt_lib
from train import config as config_lib
from train import data as data_lib
from train import methods
from train import metrics as metrics_lib
from train import registry

AXIS = 'batch'
MAX_STEPS_IN_FLIGHT = 4  # Dispatched but unfinished train steps.
DTYPES = {'float32': jnp.float32, 'bfloat16': jnp.bfloat16,
          'float16': jnp.float16}


def _check_finite(value: float, what: str, step: int, cfg, ckpts) -> None:
  if np.isfinite(value):
    return
  ckpts.wait()
  good = ckpts.latest_step()
  kept = (f'the last good checkpoint (step {good}) is kept in '
          f'{cfg.workdir}/checkpoints' if good is not None else
          'no checkpoint was written before it')
  hint = registry.get(cfg.method).divergence_hint
  raise config_lib.Diverged(
      f'training diverged at step {step} ({what}: {value}); {kept}. '
      f'Start a new --workdir with a smaller step: {hint}.')


class TrainState(train_state.TrainState):
  """Flax's train state plus the models' batch-norm statistics."""
  batch_stats: Any = None


# ---------------------------------------------------------------------------
# Model.
# ---------------------------------------------------------------------------

def create_model(cfg: config_lib.Config, num_classes: int):
  """``models.create`` with the RDA kernel init and the pmap axis name."""
  import dataclasses  # pylint: disable=import-outside-toplevel
  import models  # pylint: disable=import-outside-toplevel
  kwargs = dict(num_classes=num_classes, dtype=DTYPES[cfg.dtype])
  cls = models.get_entry(cfg.model).cls
  if 'axis_name' in {f.name for f in dataclasses.fields(cls)}:
    # Batch-norm statistics over the global batch (all devices).
    kwargs['axis_name'] = AXIS
  init = methods.kernel_init(cfg)
  if init is not None:
    kwargs['kernel_init'] = init
  return models.create(cfg.model, **kwargs)


def initialized(key, image_shape, model):
  """``(params, batch_stats)`` of ``model`` for NHWC inputs of ``image_shape``."""
  @jax.jit
  def init(rng, x):
    return model.init({'params': rng, 'dropout': rng}, x, train=False)
  variables = init(key, jnp.zeros((1,) + tuple(image_shape), jnp.float32))
  variables = flax.core.unfreeze(variables)
  return variables['params'], variables.get('batch_stats', {})


# ---------------------------------------------------------------------------
# Loss and metrics.
# ---------------------------------------------------------------------------

def cross_entropy(logits, labels, label_smoothing: float = 0.0):
  """Per-example softmax cross-entropy (float32)."""
  logits = logits.astype(jnp.float32)
  if label_smoothing:
    onehot = optax.smooth_labels(
        jax.nn.one_hot(labels, logits.shape[-1]), label_smoothing)
    return optax.softmax_cross_entropy(logits, onehot)
  return optax.softmax_cross_entropy_with_integer_labels(logits, labels)


def metric_sums(logits, labels, weights, loss=None, axis_name: str = AXIS):
  """``{'loss', 'top1', 'top5', 'count'}`` summed over all devices' examples."""
  logits = logits.astype(jnp.float32)
  if loss is None:
    loss = cross_entropy(logits, labels)
  k = min(5, logits.shape[-1])
  _, top = lax.top_k(logits, k)
  hit = top == labels[:, None]
  sums = {
      'loss': jnp.sum(loss * weights),
      'top1': jnp.sum(hit[:, 0] * weights),
      'top5': jnp.sum(jnp.any(hit, axis=-1) * weights),
      'count': jnp.sum(weights),
  }
  return lax.psum(sums, axis_name)


def _variables(params, batch_stats):
  if batch_stats:
    return {'params': params, 'batch_stats': batch_stats}
  return {'params': params}


# ---------------------------------------------------------------------------
# Steps (pmapped).
# ---------------------------------------------------------------------------

def train_step(state: TrainState, batch, *, base_key, preprocess: Callable,
               label_smoothing: float = 0.0, axis_name: str = AXIS):
  """One optimizer step on a global batch (call through ``jax.pmap``).

  Keys: ``fold_in(base_key, step)``, then per example its index in the
  global batch (augmentation; the same whatever the device count) and per
  device its index (dropout).
  """
  step_key = jax.random.fold_in(base_key, state.step)
  aug_key, dropout_key = jax.random.split(step_key)
  device = lax.axis_index(axis_name)
  labels = batch['label']
  n = labels.shape[0]
  example_keys = jax.vmap(lambda i: jax.random.fold_in(aug_key, i))(
      device * n + jnp.arange(n))
  images = jax.vmap(lambda x, k: preprocess(x[None], k, True)[0])(
      batch['image'], example_keys)
  dropout_key = jax.random.fold_in(dropout_key, device)

  def loss_fn(params):
    out = state.apply_fn(
        _variables(params, state.batch_stats), images, train=True,
        mutable=['batch_stats'], rngs={'dropout': dropout_key})
    logits, new_vars = out
    per_example = cross_entropy(logits, labels, label_smoothing)
    return jnp.mean(per_example), (logits, per_example, new_vars)

  grads, (logits, per_example, new_vars) = jax.grad(loss_fn, has_aux=True)(
      state.params)
  grads = lax.pmean(grads, axis_name)
  new_state = state.apply_gradients(
      grads=grads,
      batch_stats=flax.core.unfreeze(new_vars).get('batch_stats',
                                                   state.batch_stats))
  sums = metric_sums(logits, labels, jnp.ones_like(per_example),
                     loss=per_example, axis_name=axis_name)
  return new_state, sums


def eval_step(state: TrainState, batch, *, preprocess: Callable,
              axis_name: str = AXIS):
  """Metric sums of one eval batch; padded examples have ``mask`` 0."""
  images = preprocess(batch['image'], jax.random.key(0), False)
  logits = state.apply_fn(_variables(state.params, state.batch_stats), images,
                          train=False, mutable=False)
  return metric_sums(logits, batch['label'],
                     batch['mask'].astype(jnp.float32), axis_name=axis_name)


# Train-mode forward passes that give a sparse model batch-norm statistics of
# its own (Flax's running averages decay by 0.9 a pass: 0.9^50 < 1%).
BN_RECALIBRATION_BATCHES = 50


def bn_stats_step(state: TrainState, batch, *, preprocess: Callable):
  """``state`` with the batch-norm running statistics updated by one
  train-mode forward pass of its params on ``batch`` (no other change)."""
  images = preprocess(batch['image'], jax.random.key(0), False)
  _, new_vars = state.apply_fn(
      _variables(state.params, state.batch_stats), images, train=True,
      mutable=['batch_stats'], rngs={'dropout': jax.random.key(0)})
  return state.replace(
      batch_stats=flax.core.unfreeze(new_vars)['batch_stats'])


def recalibrate_batch_stats(p_bn_step, state: TrainState,
                            data: data_lib.Data,
                            batches: int = BN_RECALIBRATION_BATCHES
                            ) -> TrainState:
  """Batch-norm statistics for ``state.params`` from the first ``batches``
  training batches (un-augmented, as evaluated), like SWA's ``bn_update``.

  A method whose model is a point other than the trained iterate (RMDA's
  prox point, variable splitting's ``V``) has weights the running statistics
  were never measured with; evaluating it with the iterate's statistics
  would misjudge it.
  """
  iterator = data.train_batches(0)
  try:
    for _ in range(batches):
      state = p_bn_step(state, next(iterator))
  finally:
    _close(iterator)
  return state


def nonzeros(params):
  """Per-leaf nonzero counts (pmapped over the replicated params)."""
  return jax.tree.map(lambda p: jnp.count_nonzero(p).astype(jnp.int32), params)


def make_p_train_step(data: data_lib.Data, cfg: config_lib.Config, base_key):
  return jax.pmap(
      functools.partial(train_step, base_key=base_key,
                        preprocess=data.preprocess,
                        label_smoothing=cfg.label_smoothing),
      axis_name=AXIS, donate_argnums=(0,))


def make_p_bn_step(data: data_lib.Data):
  return jax.pmap(functools.partial(bn_stats_step, preprocess=data.preprocess),
                  axis_name=AXIS)


def make_p_eval_step(data: data_lib.Data):
  return jax.pmap(functools.partial(eval_step, preprocess=data.preprocess),
                  axis_name=AXIS)


# ---------------------------------------------------------------------------
# Train state and checkpoints.
# ---------------------------------------------------------------------------

def create_train_state(key, cfg: config_lib.Config, model, image_shape,
                       tx: optax.GradientTransformation,
                       init_variables: dict | None = None) -> TrainState:
  """A fresh train state (on the host's default device, not replicated).

  ``init_variables`` (from ``--init_from``) replaces the initial params and
  batch statistics; method ``han`` then prunes them by magnitude.
  """
  params, batch_stats = initialized(key, image_shape, model)
  if init_variables is not None:
    params = _load_matching('params', params, init_variables['params'],
                            cfg.init_from)
    if batch_stats:
      batch_stats = _load_matching('batch_stats', batch_stats,
                                   init_variables['batch_stats'], cfg.init_from)
  if registry.get(cfg.method).from_run:
    params = methods.prune(cfg, params)
  return TrainState.create(apply_fn=model.apply, params=params, tx=tx,
                           batch_stats=batch_stats)


def load_init_variables(path: str) -> dict[str, Any]:
  """The variables of ``--init_from``; a one-line ConfigError if unusable."""
  try:
    return ckpt_lib.load_variables(path)
  except Exception as e:  # pylint: disable=broad-except
    # Orbax raises many types for a damaged checkpoint; one line says which.
    first = (str(e).strip().splitlines() or [type(e).__name__])[0][:300]
    raise config_lib.ConfigError(
        f'--init_from {path}: cannot read a checkpoint there ({first}); pass '
        'the run directory of a finished run.') from e


def _load_matching(what, template, loaded, source):
  """``loaded`` in ``template``'s structure, with a clear error if it differs."""
  flat_t = flax.traverse_util.flatten_dict(flax.core.unfreeze(template),
                                           sep='/')
  flat_l = flax.traverse_util.flatten_dict(dict(loaded), sep='/')
  missing = sorted(set(flat_t) - set(flat_l))
  extra = sorted(set(flat_l) - set(flat_t))
  shapes = [k for k in flat_t if k in flat_l and
            np.shape(flat_t[k]) != np.shape(flat_l[k])]
  if missing or extra or shapes:
    raise config_lib.ConfigError(
        f'--init_from {source}: its {what} do not fit this model '
        f'(missing {missing[:5]}, unexpected {extra[:5]}, shape mismatch '
        f'{shapes[:5]}); train the source run with the same --model and '
        '--dataset.')
  return flax.traverse_util.unflatten_dict(
      {k: jnp.asarray(flat_l[k], dtype=flat_t[k].dtype) for k in flat_t},
      sep='/')


def state_tree(state: TrainState) -> dict[str, Any]:
  """The checkpointed part of a train state (no functions)."""
  return {'step': state.step, 'params': state.params,
          'opt_state': state.opt_state, 'batch_stats': state.batch_stats}


def replace_from_tree(state: TrainState, tree: dict[str, Any]) -> TrainState:
  as_jnp = lambda t: jax.tree.map(jnp.asarray, t)
  return state.replace(step=as_jnp(tree['step']), params=as_jnp(tree['params']),
                       opt_state=as_jnp(tree['opt_state']),
                       batch_stats=as_jnp(tree['batch_stats']))


def replicate(tree):
  """Copies a pytree onto every local device (leading axis = devices).

  The sharding's mesh axis is named like the pmap axis, so the pmapped step
  sees the same input sharding as its own outputs (else it compiles twice).
  """
  return jax_utils.replicate(tree, axis_name=AXIS)


def unreplicate(tree):
  """The first local device's copy of a replicated pytree."""
  return jax_utils.unreplicate(tree)


# ---------------------------------------------------------------------------
# Checks before any work.
# ---------------------------------------------------------------------------

def check_runtime(cfg: config_lib.Config) -> None:
  """Device-dependent checks (batch divisibility)."""
  n = jax.device_count()
  for name, b in (('--batch_size', cfg.batch_size),
                  ('--eval_batch_size', cfg.eval_batch)):
    if b % n:
      raise config_lib.ConfigError(
          f'{name} {b} is not divisible by the {n} devices '
          f'({jax.process_count()} process(es) x {jax.local_device_count()} '
          f'local): use a multiple of {n}.')


def check_model(cfg: config_lib.Config) -> None:
  """The model name exists in ``models``."""
  try:
    import models  # pylint: disable=import-outside-toplevel
  except ImportError as e:
    raise config_lib.ConfigError(f'Cannot import models/: {e}') from e
  registry = getattr(models, 'REGISTRY', None)
  if registry is not None and cfg.model not in registry:
    raise config_lib.ConfigError(
        f'Unknown model {cfg.model!r}. Known models: '
        f'{", ".join(sorted(registry))}.')


# ---------------------------------------------------------------------------
# The loop.
# ---------------------------------------------------------------------------

def create_data(cfg: config_lib.Config) -> data_lib.Data:
  """The run's data; a dataset that cannot be loaded is a ConfigError."""
  try:
    return data_lib.create_data(cfg)
  except config_lib.ConfigError:
    raise
  except (ValueError, FileNotFoundError) as e:
    # The input pipeline's DatasetNotFoundError is a ValueError; its message
    # says how to pass a manual download folder.
    raise config_lib.ConfigError(
        f'Cannot load dataset {cfg.dataset!r}: {e}') from e
  except Exception as e:  # pylint: disable=broad-except
    if type(e).__name__ != 'NonMatchingChecksumError':
      raise
    # A damaged or truncated archive in the manual / download folder.
    got = [line.strip() for line in str(e).splitlines()
           if 'filename=' in line and line.strip().startswith('* Got')]
    name = got[0].split("filename='")[-1].rstrip("')") if got else 'a file'
    raise config_lib.ConfigError(
        f'Cannot prepare dataset {cfg.dataset!r}: {name} does not match '
        'its published checksum (truncated or damaged); replace it with '
        'the original archive (in --manual_dir or the TFDS download '
        'folder).') from e


def _sparsity_from_counts(counts, sizes, selected) -> float:
  nz = sum(int(c) for c, s in zip(counts, selected) if s)
  total = sum(int(n) for n, s in zip(sizes, selected) if s)
  return 1.0 - nz / total if total else 0.0


def evaluate(p_eval_step, state, data: data_lib.Data, eval_batch: int,
             progress: bool = False) -> dict[str, float]:
  """Loss / top-1 / top-5 over the whole eval split (every example once)."""
  avg = metrics_lib.Averager()
  total = -(-data.num_eval_examples // eval_batch)
  with metrics_lib.progress_bar(total, enabled=progress and total > 20,
                                desc='eval', unit='batch', leave=False) as bar:
    batches = data.eval_batches()
    try:
      in_flight: collections.deque = collections.deque()
      for batch in batches:
        sums = p_eval_step(state, batch)
        in_flight.append(sums)
        if len(in_flight) > MAX_STEPS_IN_FLIGHT:  # As in training.
          jax.block_until_ready(in_flight.popleft())
        avg.add(sums)
        bar.update(1)
    finally:
      _close(batches)
  return {f'test_{k}': v for k, v in avg.result().items()}


def sparsity_record(params, cfg: config_lib.Config) -> dict[str, Any]:
  """Sparsity of the selected leaves, of all params, and per selected layer."""
  from rda_optax import sparsity as sparsity_lib  # pylint: disable=import-outside-toplevel
  records = sparsity_lib.layer_sparsity(params, methods.leaf_mask(cfg.select))
  summary = sparsity_lib.sparsity_summary(params, records=records)
  return {
      'sparsity': summary['regularized/sparsity'],
      'total_sparsity': summary['total/sparsity'],
      'channel_sparsity': summary['regularized/channel_sparsity'],
      'layers': {r.path: r.sparsity for r in records if r.regularized},
  }


def train_and_evaluate(cfg: config_lib.Config, *, model=None,
                       data: data_lib.Data | None = None) -> TrainState:
  """Trains and evaluates; the run directory is ``cfg.workdir``.

  Resumes from the newest checkpoint of the run directory. Returns the final
  train state (host copy of one replica).

  Args:
    cfg: the run's config (validated here).
    model: a Flax module to use instead of ``models.create(cfg.model)``.
    data: a :class:`train.data.Data` instead of ``create_data(cfg)``.
  """
  config_lib.validate(cfg)
  if model is None:
    check_model(cfg)
  check_runtime(cfg)
  config_lib.check_workdir(cfg)
  is_main = jax.process_index() == 0
  workdir = cfg.workdir

  init_variables = None
  if cfg.init_from:
    init_variables = load_init_variables(cfg.init_from)

  if data is None:
    data = create_data(cfg)
  phases = methods.make_phases(cfg, data.num_train_examples)
  if model is None:
    model = create_model(cfg, data.num_classes)
  tx, hypers = methods.create_optimizer(cfg, phases)

  root = jax.random.key(cfg.seed)
  init_key, train_key = jax.random.split(root)
  state = create_train_state(init_key, cfg, model, data.image_shape, tx,
                             init_variables)

  ckpts = ckpt_lib.Checkpoints(os.path.join(workdir, 'checkpoints'),
                               keep=cfg.keep_checkpoints,
                               async_save=cfg.async_checkpointing)
  try:
    restored = ckpts.restore_latest(state_tree(state))
  except ckpt_lib.UnreadableCheckpoints as e:
    ckpts.close()
    raise config_lib.ConfigError(str(e)) from e
  if restored is not None:
    state = replace_from_tree(state, restored)
  step_offset = int(state.step)
  if is_main:
    config_lib.write_config(cfg, os.path.join(workdir, 'config.json'))
  writer = metrics_lib.MetricWriter(workdir, enabled=is_main,
                                    resume_step=step_offset)
  if step_offset == 0:
    writer.write_hparams(cfg.to_dict())

  import rda_optax  # pylint: disable=import-outside-toplevel
  selected = jax.tree.leaves(rda_optax.selection.resolve_mask(
      methods.leaf_mask(cfg.select), state.params))
  sizes = [int(np.size(p)) for p in jax.tree.leaves(state.params)]

  # Methods that keep an exactly sparse point apart from the parameters
  # (rmda with momentum) are evaluated, reported and saved as final there.
  has_sparse_point = rda_optax.sparse_point.has_sparse_point(state.opt_state)
  p_sparse = jax.pmap(rda_optax.sparse_params, axis_name=AXIS)

  def model_params(state):
    if not has_sparse_point:
      return state.params
    return p_sparse(state.opt_state, state.params)

  # A sparse point apart from the trained weights needs batch-norm
  # statistics of its own (when it differs from them: not during ASR by SGD).
  p_bn_step = (make_p_bn_step(data)
               if has_sparse_point and jax.tree.leaves(state.batch_stats)
               else None)
  p_differs = jax.pmap(lambda a, b: jnp.any(jnp.stack(
      [jnp.any(x != y) for x, y in zip(jax.tree.leaves(a),
                                       jax.tree.leaves(b))])), axis_name=AXIS)

  def with_model(state, model):
    new = state.replace(params=model)
    if p_bn_step is not None and bool(p_differs(model, state.params)[0]):
      new = recalibrate_batch_stats(p_bn_step, new, data)
    return new

  state = replicate(state)
  p_train_step = make_p_train_step(data, cfg, train_key)
  p_eval_step = make_p_eval_step(data)
  p_nonzeros = jax.pmap(nonzeros, axis_name=AXIS)

  total = phases.total_steps
  if is_main and step_offset >= total:
    print(f'{workdir} is already complete ({step_offset} of {total} steps): '
          'nothing to train. Its report follows; use another --workdir to '
          'train again.', flush=True)
  spe = phases.steps_per_epoch
  eval_every = max(int(round(cfg.eval_every_epochs * spe)), 1)
  global_batch = cfg.batch_size

  hyper_values = methods.logged_hypers(cfg, phases, hypers)

  p_finite = jax.pmap(
      lambda p: jnp.all(jnp.stack([jnp.all(jnp.isfinite(x))
                                   for x in jax.tree.leaves(p)])),
      axis_name=AXIS)

  def save(done):
    # A checkpoint is a state to come back to: never one with NaN weights.
    if not bool(p_finite(state.params)[0]):
      _check_finite(float('nan'), 'non-finite weights', done, cfg, ckpts)
    ckpts.save(done, state_tree(unreplicate(state)))

  in_flight: collections.deque = collections.deque()
  train_avg = metrics_lib.Averager()
  epoch_avg = metrics_lib.Averager()
  bar = metrics_lib.progress_bar(total, step_offset, is_main and cfg.progress)
  batches = data.train_batches(step_offset)
  t_last, steps_since = None, 0
  last_record: dict[str, Any] = {}
  end = min(total, cfg.stop_at_step) if cfg.stop_at_step else total
  try:
    for step in range(step_offset, end):
      batch = next(batches)
      state, sums = p_train_step(state, batch)
      # A bounded number of steps in flight: unbounded asynchronous dispatch
      # of pmapped steps starves XLA:CPU's collectives (an all-reduce
      # rendezvous timeout aborts the process on 4+ simulated devices).
      in_flight.append(sums)
      if len(in_flight) > MAX_STEPS_IN_FLIGHT:
        jax.block_until_ready(in_flight.popleft())
      train_avg.add(sums)
      epoch_avg.add(sums)
      done = step + 1
      if t_last is None:
        # The first step compiles: time from its end.
        jax.block_until_ready(sums)
        t_last, steps_since = time.perf_counter(), 0
      else:
        steps_since += 1
      bar.update(1)

      is_eval = done % eval_every == 0 or done == total or (
          phases.asr_steps and done == phases.main_steps)
      if done % cfg.log_every_steps == 0 or is_eval:  # (every eval logs)
        model = model_params(state)  # The exactly sparse model, once.
        counts = jax.device_get(jax.tree.map(lambda x: x[0],
                                             p_nonzeros(model)))
        now = time.perf_counter()
        record = {'type': 'train', 'step': done, 'epoch': phases.epoch(done),
                  'phase': phases.phase(step), **train_avg.result(),
                  'sparsity': _sparsity_from_counts(
                      jax.tree.leaves(counts), sizes, selected),
                  **hyper_values(step)}
        if steps_since:
          record['images_per_sec'] = steps_since * global_batch / (now - t_last)
        t_last, steps_since = now, 0
        _check_finite(record['loss'], 'training loss', done, cfg, ckpts)
        writer.write(record)
        last_record = record
        bar.set_postfix(metrics_lib.postfix(record), refresh=False)

      final_sparse = done == total and has_sparse_point
      if final_sparse:
        # The run's result is the exactly sparse model.
        state = with_model(state, model)
      if is_eval:
        eval_state = state if final_sparse else with_model(state, model)
        params = ckpt_lib.host_copy(unreplicate(eval_state.params))
        record = {'type': 'eval', 'step': done, 'epoch': phases.epoch(done),
                  'phase': phases.phase(step),
                  **{f'train_{k}': v for k, v in epoch_avg.result().items()},
                  **evaluate(p_eval_step, eval_state, data, cfg.eval_batch,
                             is_main and cfg.progress),
                  **sparsity_record(params, cfg)}
        _check_finite(record['test_loss'], 'test loss', done, cfg, ckpts)
        writer.write(record)
        writer.flush()
        if is_main:
          bar.write(_eval_line(record))
        save(done)
        t_last = time.perf_counter()  # Exclude eval and checkpoint time.
      elif (cfg.checkpoint_every_steps and
            done % cfg.checkpoint_every_steps == 0) or done == end:
        t_save = time.perf_counter()
        save(done)
        if t_last is not None:  # Exclude checkpoint time from images/s.
          t_last += time.perf_counter() - t_save
    final = ckpt_lib.host_copy(unreplicate(state))
    bar.close()  # The report starts on a line of its own, after the bar.
    if is_main and cfg.report and int(final.step) >= total:
      from train import report  # pylint: disable=import-outside-toplevel
      report.write_report(cfg, final.params, last_train=last_record)
  finally:
    # Stops the input pipeline's prefetch thread before the interpreter
    # exits (a daemon thread inside native code at exit can abort it).
    _close(batches)
    bar.close()
    ckpts.close()
    writer.close()
  return final


def _close(iterator) -> None:
  close = getattr(iterator, 'close', None)
  if close is not None:
    close()


def _eval_line(r: dict[str, Any]) -> str:
  return (f"epoch {r['epoch']:.2f} step {r['step']} ({r['phase']}): "
          f"test top-1 {r.get('test_top1', float('nan')):.4f} "
          f"top-5 {r.get('test_top5', float('nan')):.4f} "
          f"loss {r.get('test_loss', float('nan')):.4f} | "
          f"sparsity {r['sparsity']:.4f} (all params {r['total_sparsity']:.4f})")
