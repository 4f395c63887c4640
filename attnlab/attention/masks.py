"""Boolean attention masks. ``True`` means "may attend"."""

from __future__ import annotations

import jax
import jax.numpy as jnp

Array = jax.Array


def length_mask(lengths: Array, max_len: int) -> Array:
  """lengths: [batch] -> mask [batch, max_len], True at positions < length."""
  return jnp.arange(max_len)[None, :] < jnp.asarray(lengths)[:, None]


def causal_mask(q_len: int, k_len: int | None = None) -> Array:
  """[q_len, k_len] mask letting query i see keys 0..i (the past and itself)."""
  k_len = q_len if k_len is None else k_len
  return jnp.arange(k_len)[None, :] <= jnp.arange(q_len)[:, None]


def as_query_key_mask(mask: Array | None, batch: int, q_len: int, k_len: int) -> Array | None:
  """Broadcasts a key mask [batch, k_len] or [batch, q_len, k_len] to [batch, q_len, k_len]."""
  if mask is None:
    return None
  mask = jnp.asarray(mask, bool)
  if mask.ndim == 2:
    mask = mask[:, None, :]
  if mask.ndim != 3:
    raise ValueError(
        f"mask must be [batch, k_len] or [batch, q_len, k_len], got shape {mask.shape}")
  return jnp.broadcast_to(mask, (batch, q_len, k_len))
