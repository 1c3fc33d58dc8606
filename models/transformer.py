"""Small transformers: a GPT-style decoder and a ViT, sized for CPU runs.

Both are pre-norm (``x + Attn(LN(x))``, ``x + MLP(LN(x))``) and use plain
2-D ``nn.Dense`` kernels ``(in, out)`` for the attention projections (one
fused ``qkv`` kernel ``(d, 3d)`` and an output ``proj`` ``(d, d)``) and the
MLP (``fc`` ``(d, r·d)``, ``proj`` ``(r·d, d)``): the input dimension of every
kernel is axis 0, as :func:`rda_optax.nm_constraint` and the 2:4 tensor cores
expect.

**What to sparsify.** The library's default mask (every leaf with
``ndim > 1``) would select the token embedding table ``(vocab, d)``, the
learned position table and the ViT's class token, beside the kernels.
:func:`kernel_mask` selects the weight kernels only (attention, MLP, the
untied output head, the ViT's patch projection): pass it as ``mask=`` to the
optimizers, pruning and :func:`rda_optax.asr`; ``embeddings=True`` adds the
token and position tables. Norm scales and biases are never selected.

Calling convention, as the other models::

  variables = model.init(key, x, train=False)
  logits = model.apply(variables, x, train=True, rngs={'dropout': key})

``x`` is int32 tokens ``(batch, time)`` for :class:`GPT` (``time ≤
context``; logits ``(batch, time, vocab)``) and NHWC images for
:class:`ViT` (logits ``(batch, classes)``); logits are float32 whatever the
compute ``dtype``.

References:
  Radford, Wu, Child, Luan, Amodei & Sutskever, *Language Models are
  Unsupervised Multitask Learners*, 2019 (GPT-2: pre-norm decoder).
  Su, Lu, Pan, Murtadha, Wen & Liu, *RoFormer: Enhanced Transformer with
  Rotary Position Embedding*, arXiv 2104.09864, 2021.
  Dosovitskiy et al., *An Image is Worth 16x16 Words: Transformers for Image
  Recognition at Scale*, ICLR 2021 (ViT).
"""

from __future__ import annotations

import math
from typing import Any, Callable, Optional

import jax
import jax.numpy as jnp
from flax import linen as nn

from .layers import Dtype

#: GPT-2's initialization of kernels and embeddings: normal, std 0.02.
transformer_init = nn.initializers.normal(0.02)

POSITIONS = ('learned', 'rotary')


def kernel_mask(params: Any, *, embeddings: bool = False) -> Any:
  """Selects the weight kernels (leaves named ``kernel``, ``ndim > 1``).

  Example:
    >>> import jax.numpy as jnp
    >>> params = {'tokens': {'embedding': jnp.ones((65, 8))},
    ...           'positions': jnp.ones((16, 8)),
    ...           'block0': {'ln1': {'scale': jnp.ones(8)},
    ...                      'attn': {'qkv': {'kernel': jnp.ones((8, 24)),
    ...                                       'bias': jnp.ones(24)}}}}
    >>> m = kernel_mask(params)
    >>> m['block0']['attn']['qkv'], m['tokens']['embedding'], m['positions']
    ({'bias': False, 'kernel': True}, False, False)
    >>> kernel_mask(params, embeddings=True)['positions']
    True

  Args:
    params: a parameter tree (Flax's ``variables['params']``).
    embeddings: also select the token embedding tables (``embedding``) and
      the learned position tables (``positions``).

  Returns:
    A tree of Python bools with the structure of ``params``, to pass as
    ``mask=`` (it is the library's default mask minus embeddings, positions
    and class tokens; on the convolutional models the two coincide).
  """
  names = {'kernel'} | ({'embedding', 'positions'} if embeddings else set())

  def select(path, leaf):
    last = path[-1]
    name = getattr(last, 'key', getattr(last, 'name', None))
    return name in names and len(getattr(leaf, 'shape', ())) > 1

  return jax.tree_util.tree_map_with_path(select, params)


def rotary(x: jax.Array, offset: int = 0) -> jax.Array:
  """Rotary position embedding of ``x`` ``(batch, time, heads, head_dim)``.

  The two halves of each head's features are rotated by the angles
  ``t·θ_i``, ``θ_i = 10000^{−2i/head_dim}`` (the "half-split" form of
  GPT-NeoX): the attention score of positions ``s`` and ``t`` then depends
  on ``s − t`` only.
  """
  half = x.shape[-1] // 2
  freqs = 1.0 / (10000.0 ** (jnp.arange(half, dtype=jnp.float32) / half))
  t = jnp.arange(offset, offset + x.shape[1], dtype=jnp.float32)
  angles = t[:, None] * freqs[None, :]  # (time, half)
  sin = jnp.sin(angles)[None, :, None, :].astype(x.dtype)
  cos = jnp.cos(angles)[None, :, None, :].astype(x.dtype)
  x1, x2 = x[..., :half], x[..., half : 2 * half]
  rotated = [x1 * cos - x2 * sin, x1 * sin + x2 * cos]
  if x.shape[-1] % 2:
    rotated.append(x[..., 2 * half :])
  return jnp.concatenate(rotated, axis=-1)


class SelfAttention(nn.Module):
  """Multi-head self-attention with a fused ``qkv`` kernel ``(d, 3d)``."""

  num_heads: int
  causal: bool = False
  rotary: bool = False
  dropout_rate: float = 0.0
  kernel_init: Callable = transformer_init
  out_init: Callable = transformer_init
  dtype: Dtype = jnp.float32
  param_dtype: Dtype = jnp.float32

  @nn.compact
  def __call__(self, x, train: bool = False):
    batch, time, d = x.shape
    if d % self.num_heads:
      raise ValueError(
          f'd_model {d} is not divisible by num_heads {self.num_heads}.'
      )
    head = d // self.num_heads
    dense = lambda f, name, init: nn.Dense(
        f,
        kernel_init=init,
        dtype=self.dtype,
        param_dtype=self.param_dtype,
        name=name,
    )
    qkv = dense(3 * d, 'qkv', self.kernel_init)(x)
    q, k, v = jnp.split(qkv.reshape(batch, time, 3, self.num_heads, head), 3, 2)
    q, k, v = q[:, :, 0], k[:, :, 0], v[:, :, 0]  # (batch, time, heads, head)
    if self.rotary:
      q, k = rotary(q), rotary(k)
    scores = jnp.einsum(
        'bqhd,bkhd->bhqk', q, k, preferred_element_type=jnp.float32
    ) / math.sqrt(head)
    if self.causal:
      allowed = jnp.tril(jnp.ones((time, time), bool))
      scores = jnp.where(allowed, scores, jnp.finfo(jnp.float32).min)
    probs = jax.nn.softmax(scores, axis=-1).astype(self.dtype)
    probs = nn.Dropout(self.dropout_rate)(probs, deterministic=not train)
    out = jnp.einsum('bhqk,bkhd->bqhd', probs, v).reshape(batch, time, d)
    return dense(d, 'proj', self.out_init)(out)


class Block(nn.Module):
  """Pre-norm transformer block: ``x + Attn(LN(x))``, then
  ``x + MLP(LN(x))`` (MLP ``d → mlp_ratio·d → d``, GELU)."""

  num_heads: int
  mlp_ratio: int = 4
  causal: bool = False
  rotary: bool = False
  dropout_rate: float = 0.0
  kernel_init: Callable = transformer_init
  out_init: Callable = transformer_init
  dtype: Dtype = jnp.float32
  param_dtype: Dtype = jnp.float32

  @nn.compact
  def __call__(self, x, train: bool = False):
    d = x.shape[-1]
    norm = lambda name: nn.LayerNorm(
        dtype=self.dtype, param_dtype=self.param_dtype, name=name
    )
    drop = lambda y: nn.Dropout(self.dropout_rate)(y, deterministic=not train)
    y = SelfAttention(
        self.num_heads,
        self.causal,
        self.rotary,
        self.dropout_rate,
        self.kernel_init,
        self.out_init,
        self.dtype,
        self.param_dtype,
        name='attn',
    )(norm('ln1')(x), train)
    x = x + drop(y)
    dense = lambda f, name, init: nn.Dense(
        f,
        kernel_init=init,
        dtype=self.dtype,
        param_dtype=self.param_dtype,
        name=name,
    )
    y = dense(self.mlp_ratio * d, 'fc', self.kernel_init)(norm('ln2')(x))
    y = dense(d, 'proj', self.out_init)(nn.gelu(y))
    return x + drop(y)


def _residual_init(kernel_init: Callable, num_layers: int) -> Callable:
  """GPT-2's scaling of the projections into the residual stream by
  ``1/√(2L)``."""
  scale = 1 / math.sqrt(2 * num_layers)

  def init(key, shape, dtype=jnp.float32):
    return kernel_init(key, shape, dtype) * jnp.asarray(scale, dtype)

  return init


class GPT(nn.Module):
  """A GPT-style decoder: token embedding, pre-norm causal blocks, final norm.

  ``tokens`` ``(batch, time)`` ints in ``[0, vocab_size)``, ``time ≤
  context`` → logits ``(batch, time, vocab_size)``; the logits at position
  ``t`` depend on the tokens at positions ``≤ t`` only. The defaults (4
  layers, ``d = 128``, 4 heads, context 128) have 0.83 M parameters for a
  65-character vocabulary (0.87 M for 256): a character-level language model
  that trains on a CPU.

  Parameters: ``tokens/embedding`` ``(vocab, d)``; ``positions`` ``(context,
  d)`` (learned positions only); per block ``block{i}/ln1``, ``attn/qkv``
  ``(d, 3d)``, ``attn/proj`` ``(d, d)``, ``ln2``, ``fc`` ``(d, r·d)``,
  ``proj`` ``(r·d, d)``; ``ln_f``; ``head`` ``(d, vocab)`` unless
  ``tie_embeddings`` (then the logits are ``x · embeddingᵀ``). Select what
  to sparsify with :func:`kernel_mask`.

  Attributes:
    vocab_size: number of token ids (and of logits per position).
    context: the longest sequence (the size of the learned position table).
    num_layers: transformer blocks.
    d_model: width of the residual stream.
    num_heads: attention heads (``d_model`` must be divisible by it).
    mlp_ratio: the MLP's hidden width is ``mlp_ratio·d_model``.
    positions: ``"learned"`` (a position table added to the embeddings) or
      ``"rotary"`` (RoPE on queries and keys; no table).
    tie_embeddings: use the token embedding as the output head.
    dropout_rate: dropout on attention probabilities, residual branches
      and embeddings during training.
    kernel_init: initializer of the kernels (normal, std 0.02; the train
      job's RDA initialization for ``--method rda``); the projections into
      the residual stream are scaled by ``1/√(2·layers)``.
    table_init: initializer of the token and position tables (normal, std
      0.02).
    dtype: computation dtype; logits are float32.
    param_dtype: parameter dtype.
    axis_name: accepted for a uniform interface; unused (no batch norm).
  """

  vocab_size: int = 256
  context: int = 128
  num_layers: int = 4
  d_model: int = 128
  num_heads: int = 4
  mlp_ratio: int = 4
  positions: str = 'learned'
  tie_embeddings: bool = False
  dropout_rate: float = 0.0
  kernel_init: Callable = transformer_init
  table_init: Callable = transformer_init
  dtype: Dtype = jnp.float32
  param_dtype: Dtype = jnp.float32
  axis_name: Optional[str] = None

  @nn.compact
  def __call__(self, tokens, train: bool = False):
    """Logits ``(batch, time, vocab_size)`` for int tokens ``(batch, time)``."""
    if self.positions not in POSITIONS:
      raise ValueError(
          f'GPT positions must be one of {POSITIONS}, got {self.positions!r}.'
      )
    if tokens.ndim != 2 or tokens.shape[1] > self.context:
      raise ValueError(
          f'GPT takes int tokens of shape (batch, time) with time <= context '
          f'({self.context}), got shape {tokens.shape}.'
      )
    embed = nn.Embed(
        self.vocab_size,
        self.d_model,
        embedding_init=self.table_init,
        dtype=self.dtype,
        param_dtype=self.param_dtype,
        name='tokens',
    )
    x = embed(tokens)
    if self.positions == 'learned':
      table = self.param(
          'positions',
          self.table_init,
          (self.context, self.d_model),
          self.param_dtype,
      )
      x = x + table[: tokens.shape[1]].astype(self.dtype)[None]
    x = nn.Dropout(self.dropout_rate)(x, deterministic=not train)
    for i in range(self.num_layers):
      x = Block(
          self.num_heads,
          self.mlp_ratio,
          causal=True,
          rotary=self.positions == 'rotary',
          dropout_rate=self.dropout_rate,
          kernel_init=self.kernel_init,
          out_init=_residual_init(self.kernel_init, self.num_layers),
          dtype=self.dtype,
          param_dtype=self.param_dtype,
          name=f'block{i}',
      )(x, train)
    x = nn.LayerNorm(
        dtype=self.dtype, param_dtype=self.param_dtype, name='ln_f'
    )(x)
    if self.tie_embeddings:
      logits = embed.attend(x)
    else:
      logits = nn.Dense(
          self.vocab_size,
          use_bias=False,
          kernel_init=self.kernel_init,
          dtype=self.dtype,
          param_dtype=self.param_dtype,
          name='head',
      )(x)
    return jnp.asarray(logits, jnp.float32)


class ViT(nn.Module):
  """A small Vision Transformer for 32x32 images (CIFAR-10).

  Non-overlapping ``patch_size`` patches projected by a strided convolution
  (``patch/kernel`` ``(p, p, c, d)``), a class token, learned positions, pre-
  norm blocks, a final norm and a linear head on the class token. The
  defaults (patch 4: 64 patches + 1; ``d = 128``, 6 layers, 4 heads, MLP
  4×) have 1.2 M parameters. Select what to sparsify with
  :func:`kernel_mask` (the default mask would also select the class token
  and the position table).

  Attributes:
    num_classes: number of logits.
    patch_size: side of the square patches (the image side must be a
      multiple of it).
    d_model: token width.
    num_layers: transformer blocks.
    num_heads: attention heads.
    mlp_ratio: the MLP's hidden width is ``mlp_ratio·d_model``.
    dropout_rate: dropout during training.
    kernel_init: initializer of the kernels (normal, std 0.02; the train
      job's RDA initialization for ``--method rda``).
    table_init: initializer of the position table (normal, std 0.02).
    dtype: computation dtype; logits are float32.
    param_dtype: parameter dtype.
    axis_name: accepted for a uniform interface; unused (no batch norm).
  """

  num_classes: int = 10
  patch_size: int = 4
  d_model: int = 128
  num_layers: int = 6
  num_heads: int = 4
  mlp_ratio: int = 4
  dropout_rate: float = 0.0
  kernel_init: Callable = transformer_init
  table_init: Callable = transformer_init
  dtype: Dtype = jnp.float32
  param_dtype: Dtype = jnp.float32
  axis_name: Optional[str] = None

  @nn.compact
  def __call__(self, x, train: bool = False):
    """Logits ``(batch, num_classes)`` for NHWC images ``x``."""
    p = self.patch_size
    if x.ndim != 4 or x.shape[1] % p or x.shape[2] % p:
      raise ValueError(
          f'ViT takes NHWC images whose sides are multiples of patch_size '
          f'{p}, got shape {x.shape}.'
      )
    x = nn.Conv(
        self.d_model,
        (p, p),
        strides=(p, p),
        padding='VALID',
        kernel_init=self.kernel_init,
        dtype=self.dtype,
        param_dtype=self.param_dtype,
        name='patch',
    )(jnp.asarray(x, self.dtype))
    batch = x.shape[0]
    x = x.reshape(batch, -1, self.d_model)
    cls = self.param(
        'cls', nn.initializers.zeros, (1, 1, self.d_model), self.param_dtype
    )
    x = jnp.concatenate(
        [jnp.broadcast_to(cls.astype(self.dtype), (batch, 1, self.d_model)), x],
        axis=1,
    )
    table = self.param(
        'positions', self.table_init, x.shape[1:], self.param_dtype
    )
    x = x + table.astype(self.dtype)[None]
    x = nn.Dropout(self.dropout_rate)(x, deterministic=not train)
    for i in range(self.num_layers):
      x = Block(
          self.num_heads,
          self.mlp_ratio,
          dropout_rate=self.dropout_rate,
          kernel_init=self.kernel_init,
          out_init=_residual_init(self.kernel_init, self.num_layers),
          dtype=self.dtype,
          param_dtype=self.param_dtype,
          name=f'block{i}',
      )(x, train)
    x = nn.LayerNorm(
        dtype=self.dtype, param_dtype=self.param_dtype, name='ln_f'
    )(x[:, 0])
    x = nn.Dense(
        self.num_classes,
        kernel_init=self.kernel_init,
        dtype=self.dtype,
        param_dtype=self.param_dtype,
        name='head',
    )(x)
    return jnp.asarray(x, jnp.float32)
