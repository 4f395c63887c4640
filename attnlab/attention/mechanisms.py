"""How scores become attention weights and a context vector.

A *normalizer* turns scores [batch, q_len, k_len] and a mask into weights (the
``NORMALIZERS`` registry; ``softmax`` is the default). A *mechanism* decides where
a query may look (``MECHANISMS``; ``global`` soft attention looks everywhere the
mask allows). ``Attention`` composes a registered score function, a mechanism
and a normalizer, and splits the work into a per-source half
(``Attention.prepare``, run once per source sentence) and a per-query half
(``Attention.__call__``, run at every decoder step).
"""

from __future__ import annotations

from typing import Callable, Dict

import flax
import flax.linen as nn
import jax
import jax.numpy as jnp

from attnlab.attention import masks as masks_lib
from attnlab.attention import scores as scores_lib

Array = jax.Array


def _registry_get(registry: dict, kind: str, name: str):
  try:
    return registry[name]
  except KeyError:
    raise ValueError(f"unknown {kind} {name!r}; valid {kind}s: "
                     f"{', '.join(sorted(registry))}") from None


def masked_softmax(scores: Array, mask: Array | None) -> Array:
  """Softmax over the last axis restricted to ``mask``.

  Args:
    scores: [..., k_len].
    mask: broadcastable to ``scores``; True = may attend. ``None``: no mask.

  Returns:
    weights like ``scores``: non-negative, summing to 1 over allowed keys, exactly
    0 at masked keys; a fully masked row is all zeros, with finite gradients (masked
    scores are replaced by the most negative finite number, never -inf).
  """
  if mask is None:
    return jax.nn.softmax(scores, axis=-1)
  mask = jnp.broadcast_to(mask, scores.shape)
  filled = jnp.where(mask, scores, jnp.finfo(scores.dtype).min)
  return jax.nn.softmax(filled, axis=-1) * mask


NORMALIZERS: Dict[str, Callable[[Array, Array | None], Array]] = {
    "softmax": masked_softmax,
}


def register_normalizer(name: str):
  """Function decorator: registers ``fn(scores, mask) -> weights`` as ``name``."""

  def wrap(fn):
    NORMALIZERS[name] = fn
    return fn

  return wrap


def get_normalizer(name: str) -> Callable[[Array, Array | None], Array]:
  return _registry_get(NORMALIZERS, "normalizer", name)


def weighted_sum(weights: Array, values: Array) -> Array:
  """weights: [batch, q_len, k_len], values: [batch, k_len, d_v] -> [batch, q_len, d_v]."""
  return jnp.einsum("bqk,bkd->bqd", weights, values.astype(weights.dtype))


def global_attention(scores: Array, values: Array, mask: Array | None,
                     normalizer: str = "softmax") -> tuple[Array, Array]:
  """Global soft attention (Bahdanau 2015; Luong 2015 "global").

  Args:
    scores: [batch, q_len, k_len].
    values: [batch, k_len, d_v].
    mask: [batch, k_len] or [batch, q_len, k_len], True = may attend.
    normalizer: a ``NORMALIZERS`` name.

  Returns:
    context [batch, q_len, d_v] and weights [batch, q_len, k_len].
  """
  batch, q_len, k_len = scores.shape
  mask = masks_lib.as_query_key_mask(mask, batch, q_len, k_len)
  weights = get_normalizer(normalizer)(scores, mask)
  return weighted_sum(weights, values), weights


MECHANISMS: Dict[str, Callable[..., tuple[Array, Array]]] = {
    "global": global_attention,
}


def mechanism_names() -> tuple[str, ...]:
  return tuple(sorted(MECHANISMS))


@flax.struct.dataclass
class AttentionMemory:
  """The per-source half of attention, computed once per source sentence.

  Attributes:
    keys: projected keys [batch, k_len, d'] (``Score.project_keys``).
    values: [batch, k_len, d_v].
    mask: [batch, k_len] bool, True = may attend.
  """

  keys: Array
  values: Array
  mask: Array


class Attention(nn.Module):
  """A registered score function + mechanism + normalizer.

  Attributes:
    score: a ``scores.SCORES`` name (``dot``, ``additive``...).
    mechanism: a ``MECHANISMS`` name (``global``).
    normalizer: a ``NORMALIZERS`` name (``softmax``).
    attention_dim, max_len, learn_temperature, temperature: passed to the score.
    dtype: computation dtype.
  """

  score: str = "dot"
  mechanism: str = "global"
  normalizer: str = "softmax"
  attention_dim: int = 128
  max_len: int = 128
  learn_temperature: bool = True
  temperature: float = 10.0
  dtype: jnp.dtype = jnp.float32

  def setup(self):
    _registry_get(MECHANISMS, "mechanism", self.mechanism)
    get_normalizer(self.normalizer)
    self.score_fn = scores_lib.make_score(
        self.score, attention_dim=self.attention_dim, max_len=self.max_len,
        learn_temperature=self.learn_temperature, temperature=self.temperature,
        dtype=self.dtype)

  def prepare(self, keys: Array, values: Array | None = None,
              mask: Array | None = None) -> AttentionMemory:
    """keys: [batch, k_len, d_k], values: [batch, k_len, d_v] (default: keys),
    mask: [batch, k_len] (default: all True) -> AttentionMemory."""
    values = keys if values is None else values
    if mask is None:
      mask = jnp.ones(keys.shape[:2], bool)
    return AttentionMemory(keys=self.score_fn.project_keys(keys), values=values,
                           mask=jnp.asarray(mask, bool))

  def __call__(self, query: Array, memory: AttentionMemory) -> tuple[Array, Array]:
    """query: [batch, q_len, d_q] -> context [batch, q_len, d_v], weights [batch, q_len, k_len]."""
    scores = self.score_fn.score(query, memory.keys)
    return MECHANISMS[self.mechanism](scores, memory.values, memory.mask,
                                      normalizer=self.normalizer)

  def attend(self, query: Array, keys: Array, values: Array | None = None,
             mask: Array | None = None) -> tuple[Array, Array]:
    """``prepare`` then ``__call__`` in one go (keys used once)."""
    return self(query, self.prepare(keys, values, mask))
