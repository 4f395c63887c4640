"""Dot-product self-attention, causal (masked) self-attention and multi-head attention.

Layouts follow ``flax.linen.MultiHeadDotProductAttention`` (the parameters of
the two modules are interchangeable):

    query:  [batch, q_len, heads, head_dim]
    key:    [batch, k_len, heads, head_dim]
    value:  [batch, k_len, heads, head_dim]
    mask:   broadcastable to [batch, heads, q_len, k_len], True = may attend
    weights [batch, heads, q_len, k_len]
"""

from __future__ import annotations

import math

import flax.linen as nn
import jax
import jax.numpy as jnp

from attnlab.attention import masks as masks_lib
from attnlab.attention.mechanisms import masked_softmax

Array = jax.Array


def dot_product_attention(query: Array, key: Array, value: Array,
                          mask: Array | None = None, *, return_weights: bool = False,
                          dropout_rate: float = 0.0, dropout_rng: Array | None = None,
                          deterministic: bool = True):
  """Scaled dot-product attention softmax(q k^T / sqrt(head_dim)) v, per head.

  Args:
    query: [batch, q_len, heads, head_dim]; key, value: [batch, k_len, heads, head_dim].
    mask: broadcastable to [batch, heads, q_len, k_len]; True = may attend.
    return_weights: also return weights [batch, heads, q_len, k_len].
    dropout_rate, dropout_rng, deterministic: dropout on the weights.

  Returns:
    out [batch, q_len, heads, head_dim] (and weights). A fully masked query row
    gives a zero output. Without weights or dropout this runs through
    ``jax.nn.dot_product_attention`` (a fused kernel where the backend has one).
  """
  batch, q_len, heads, _ = query.shape
  k_len = key.shape[1]
  if mask is not None:
    mask = jnp.broadcast_to(jnp.asarray(mask, bool), (batch, heads, q_len, k_len))
  use_dropout = dropout_rate > 0.0 and not deterministic
  if not return_weights and not use_dropout:
    out = jax.nn.dot_product_attention(query, key, value, mask=mask)
    if mask is not None:
      # jax.nn gives a fully masked row the mean of the values; the library's
      # contract is a zero context there.
      any_key = jnp.any(mask, axis=-1)  # [batch, heads, q_len]
      out = out * jnp.swapaxes(any_key, 1, 2)[..., None].astype(out.dtype)
    return out
  scores = jnp.einsum("bqhd,bkhd->bhqk", query, key) / math.sqrt(query.shape[-1])
  weights = masked_softmax(scores, mask)
  dropped = weights
  if use_dropout:
    if dropout_rng is None:
      raise ValueError("dropout_rate > 0 with deterministic=False needs dropout_rng")
    keep = jax.random.bernoulli(dropout_rng, 1.0 - dropout_rate, weights.shape)
    dropped = jnp.where(keep, weights / (1.0 - dropout_rate), 0.0)
  out = jnp.einsum("bhqk,bkhd->bqhd", dropped, value)
  return (out, weights) if return_weights else out


class MultiHeadAttention(nn.Module):
  """Multi-head attention (Vaswani et al. 2017): per-head Q/K/V projections,
  scaled dot-product attention per head, an output projection.

  Attributes:
    num_heads: number of heads h.
    qkv_features: total width of Q/K/V (h * head_dim); default: width of inputs_q.
    out_features: output width; default: width of inputs_q.
    use_bias: biases in the projections.
    dropout_rate: dropout on attention weights (needs a 'dropout' rng when not
      deterministic).
    dtype: computation dtype.
  """

  num_heads: int
  qkv_features: int | None = None
  out_features: int | None = None
  use_bias: bool = True
  dropout_rate: float = 0.0
  dtype: jnp.dtype = jnp.float32

  @nn.compact
  def __call__(self, inputs_q: Array, inputs_kv: Array | None = None,
               mask: Array | None = None, *, deterministic: bool = True,
               return_weights: bool = False):
    """Attend from inputs_q to inputs_kv.

    Args:
      inputs_q: [batch, q_len, d_model].
      inputs_kv: [batch, k_len, d_kv]; default ``inputs_q`` (self-attention).
      mask: [batch, k_len], [batch, q_len, k_len] or [batch, heads, q_len, k_len];
        True = may attend.
      deterministic: disables dropout.
      return_weights: also return weights [batch, heads, q_len, k_len].

    Returns:
      out [batch, q_len, out_features] (and the weights).
    """
    inputs_kv = inputs_q if inputs_kv is None else inputs_kv
    features = self.qkv_features or inputs_q.shape[-1]
    if self.num_heads < 1:
      raise ValueError(f"num_heads must be >= 1, got {self.num_heads}")
    if features % self.num_heads:
      raise ValueError(
          f"qkv_features={features} is not divisible by num_heads={self.num_heads}")
    head_dim = features // self.num_heads
    dense = lambda name: nn.DenseGeneral(  # noqa: E731
        (self.num_heads, head_dim), use_bias=self.use_bias, dtype=self.dtype, name=name)
    query = dense("query")(inputs_q)   # [batch, q_len, heads, head_dim]
    key = dense("key")(inputs_kv)      # [batch, k_len, heads, head_dim]
    value = dense("value")(inputs_kv)  # [batch, k_len, heads, head_dim]
    if mask is not None:
      mask = jnp.asarray(mask, bool)
      if mask.ndim == 2:
        mask = mask[:, None, None, :]
      elif mask.ndim == 3:
        mask = mask[:, None, :, :]
    dropout_rng = None
    if self.dropout_rate > 0.0 and not deterministic:
      dropout_rng = self.make_rng("dropout")
    result = dot_product_attention(
        query, key, value, mask, return_weights=return_weights,
        dropout_rate=self.dropout_rate, dropout_rng=dropout_rng,
        deterministic=deterministic)
    out, weights = result if return_weights else (result, None)
    out = nn.DenseGeneral(self.out_features or inputs_q.shape[-1], axis=(-2, -1),
                          use_bias=self.use_bias, dtype=self.dtype, name="out")(out)
    return (out, weights) if return_weights else out


class SelfAttention(MultiHeadAttention):
  """Multi-head self-attention; ``causal=True`` lets position t see only 0..t.

  With ``num_heads=1`` this is plain dot-product self-attention.
  """

  causal: bool = False

  def __call__(self, inputs: Array, mask: Array | None = None, *,
               deterministic: bool = True, return_weights: bool = False):
    """inputs: [batch, len, d_model]; mask: [batch, len] key padding mask."""
    batch, length = inputs.shape[:2]
    full = masks_lib.as_query_key_mask(mask, batch, length, length)
    if self.causal:
      causal = masks_lib.causal_mask(length)[None]
      full = causal if full is None else full & causal
    return super().__call__(inputs, inputs, full, deterministic=deterministic,
                            return_weights=return_weights)
