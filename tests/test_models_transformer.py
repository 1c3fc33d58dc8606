"""The transformers (models/transformer.py): shapes, parameter counts,
causality, the kernel mask, speed, and sparse training through the library."""

import functools
import time

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import models
import rda_optax


def abstract(model, x):
  return jax.eval_shape(
      functools.partial(model.init, train=False), jax.random.key(0), x
  )


def filled(model, x, seed=0):
  """Variables with init's structure, filled by NumPy (normal, std 0.1; norm
  scales 1): no random-number compile."""
  rng = np.random.default_rng(seed)

  def fill(path, leaf):
    if path[-1].key == 'scale':
      return np.ones(leaf.shape, leaf.dtype)
    return np.asarray(rng.normal(0, 0.1, leaf.shape), leaf.dtype)

  return jax.tree_util.tree_map_with_path(fill, abstract(model, x))


def count(tree):
  return sum(leaf.size for leaf in jax.tree.leaves(tree))


TOKENS = jax.ShapeDtypeStruct((1, 128), jnp.int32)
IMAGES = jax.ShapeDtypeStruct((1, 32, 32, 3), jnp.float32)


def test_registry_entries_and_parameter_counts():
  gpt = models.create('gpt_char', num_classes=65)
  assert isinstance(gpt, models.GPT) and gpt.vocab_size == 65
  assert models.create('gpt_char').vocab_size == 256
  assert models.default_input_shape('gpt_char') == (128,)
  assert models.default_input_shape('gpt_char', context=64) == (64,)
  assert models.get_entry('gpt_char').input_dtype == 'int32'
  # 4 blocks of 12·d² + 13·d (d = 128), embeddings, positions, norms, head.
  assert count(abstract(gpt, TOKENS)['params']) == 826_368
  vit = models.create('vit_cifar')
  assert models.default_input_shape('vit_cifar') == (32, 32, 3)
  assert count(abstract(vit, IMAGES)['params']) == 1_205_898
  with pytest.raises(TypeError, match='Accepted: num_classes, context'):
    models.create('gpt_char', vocab_size=65)
  with pytest.raises(ValueError, match='positions must be one of'):
    abstract(models.create('gpt_char', positions='sinusoid'), TOKENS)


@pytest.mark.parametrize('positions', ['learned', 'rotary'])
def test_gpt_is_causal(positions):
  """The logits at position t do not depend on the tokens after t, and do
  depend on the tokens before it."""
  model = models.GPT(
      vocab_size=11, context=16, num_layers=1, d_model=32, positions=positions
  )
  x = jnp.asarray(np.random.default_rng(0).integers(0, 11, (2, 16)), jnp.int32)
  variables = filled(model, x)
  apply = jax.jit(lambda x: model.apply(variables, x))
  logits = apply(x)
  assert logits.shape == (2, 16, 11) and logits.dtype == jnp.float32
  for t in (0, 5, 14):
    later = x.at[:, t + 1 :].set((x[:, t + 1 :] + 3) % 11)
    np.testing.assert_array_equal(apply(later)[:, : t + 1], logits[:, : t + 1])
    earlier = x.at[:, t].set((x[:, t] + 1) % 11)
    assert not np.allclose(apply(earlier)[:, t:], logits[:, t:])
  if positions == 'rotary':
    assert 'positions' not in variables['params']


def test_gpt_variants_tied_head_dropout_and_bf16():
  model = models.GPT(
      vocab_size=13,
      context=8,
      num_layers=1,
      d_model=16,
      num_heads=2,
      tie_embeddings=True,
      dropout_rate=0.5,
      dtype=jnp.bfloat16,
  )
  x = jnp.zeros((2, 8), jnp.int32)
  variables = filled(model, x)
  assert 'head' not in variables['params']
  train = jax.jit(
      lambda key: model.apply(variables, x, train=True, rngs={'dropout': key})
  )
  key = functools.partial(jax.random.key, impl='rbg')  # Compiles fast.
  a, b = train(key(0)), train(key(1))
  assert a.dtype == jnp.float32 and not np.allclose(a, b)
  with pytest.raises(ValueError, match='time <= context'):
    jax.eval_shape(model.apply, variables, jnp.zeros((1, 9), jnp.int32))


def test_vit_shapes_and_patch_check():
  model = models.ViT(num_classes=7, d_model=32, num_layers=2, num_heads=2)
  x = jnp.asarray(
      np.random.default_rng(0).normal(size=(2, 32, 32, 3)), jnp.float32
  )
  variables = filled(model, x)
  params = variables['params']
  assert params['patch']['kernel'].shape == (4, 4, 3, 32)
  assert params['positions'].shape == (65, 32)
  logits = jax.jit(model.apply)(variables, x)
  assert logits.shape == (2, 7) and logits.dtype == jnp.float32
  with pytest.raises(ValueError, match='multiples of patch_size'):
    jax.eval_shape(model.apply, variables, jnp.zeros((1, 30, 30, 3)))


def test_kernel_init_initializes_kernels_only():
  """``kernel_init`` (the train job's RDA initialization) is for the kernels:
  the token and position tables keep theirs (``table_init``)."""
  half = jax.nn.initializers.constant(0.5)
  gpt = models.GPT(
      vocab_size=11,
      context=8,
      num_layers=1,
      d_model=16,
      num_heads=2,
      kernel_init=half,
  )
  params = gpt.init(jax.random.key(0), jnp.zeros((1, 8), jnp.int32))['params']
  vit = models.ViT(
      num_classes=3, d_model=16, num_layers=1, num_heads=2, kernel_init=half
  )
  vparams = vit.init(jax.random.key(0), jnp.zeros((1, 8, 8, 3)))['params']
  for kernel in (params['block0']['fc']['kernel'], vparams['patch']['kernel']):
    np.testing.assert_array_equal(kernel, 0.5)
  for table in (
      params['tokens']['embedding'],
      params['positions'],
      vparams['positions'],
  ):
    assert 0.005 < float(jnp.std(table)) < 0.05  # Normal, std 0.02.


def test_kernel_mask_leaves_embeddings_and_norms_dense():
  params = abstract(models.create('gpt_char', num_classes=65), TOKENS)['params']
  default = rda_optax.default_mask(params)
  mask = models.kernel_mask(params)
  # The default mask would select the embedding and position tables.
  assert default['tokens']['embedding'] and default['positions']
  assert not mask['tokens']['embedding'] and not mask['positions']
  for blk in (mask[f'block{i}'] for i in range(4)):
    assert blk['attn']['qkv']['kernel'] and blk['attn']['proj']['kernel']
    assert blk['fc']['kernel'] and blk['proj']['kernel']
    assert not any(jax.tree.leaves(blk['ln1'])) and not blk['fc']['bias']
  assert mask['head']['kernel'] and not any(jax.tree.leaves(mask['ln_f']))
  with_emb = models.kernel_mask(params, embeddings=True)
  assert with_emb['tokens']['embedding'] and with_emb['positions']
  vit = abstract(models.create('vit_cifar'), IMAGES)['params']
  vmask = models.kernel_mask(vit)
  assert (
      vmask['patch']['kernel'] and not vmask['cls'] and not vmask['positions']
  )
  # On a convolutional network it is the default mask.
  lenet = abstract(
      models.create('lenet5'), jax.ShapeDtypeStruct((1, 28, 28, 1), jnp.float32)
  )
  assert models.kernel_mask(lenet['params']) == rda_optax.default_mask(
      lenet['params']
  )


def test_gpt_forward_takes_milliseconds():
  model = models.create('gpt_char', num_classes=65)
  x = jnp.zeros((1, 128), jnp.int32)
  variables = filled(model, x)
  apply = jax.jit(model.apply)
  apply(variables, x).block_until_ready()
  times = []
  for _ in range(5):
    t0 = time.perf_counter()
    apply(variables, x).block_until_ready()
    times.append(time.perf_counter() - t0)
  # About 3 ms on a free core; generous for a shared machine.
  assert min(times) < 0.05, times


def test_sparse_training_of_a_small_gpt_at_2_4():
  """RAMDA with the 2:4 constraint on the kernels only: the loss falls on a
  learnable sequence, every selected kernel is 2:4, the embeddings and
  norms are dense."""
  model = models.GPT(
      vocab_size=8, context=16, num_layers=1, d_model=16, num_heads=2
  )
  x = jnp.asarray(np.tile(np.arange(8), 4)[None, :17] % 8, jnp.int32)
  inputs, targets = x[:, :16], x[:, 1:17]
  params = filled(model, inputs)['params']

  def loss(p):
    logits = model.apply({'params': p}, inputs)
    return optax.softmax_cross_entropy_with_integer_labels(
        logits, targets
    ).mean()

  opt = rda_optax.ramda(
      0.05, rda_optax.nm_constraint(2, 4), momentum=0.9, mask=models.kernel_mask
  )

  @jax.jit
  def step(p, s):
    g = jax.grad(loss)(p)
    u, s = opt.update(g, s, p)
    return optax.apply_updates(p, u), s

  state = opt.init(params)
  first = float(jax.jit(loss)(params))
  for _ in range(30):
    params, state = step(params, state)
  sparse = rda_optax.sparse_params(state)
  assert float(jax.jit(loss)(sparse)) < 0.1 * first
  mask = models.kernel_mask(sparse)
  for leaf, sel in zip(jax.tree.leaves(sparse), jax.tree.leaves(mask)):
    if sel:
      assert rda_optax.satisfies_nm(leaf, 2, 4)
      assert int((np.asarray(leaf) == 0).sum()) * 2 == leaf.size
    else:
      assert (np.asarray(leaf) != 0).mean() > 0.9
