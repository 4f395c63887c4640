"""Recurrent cells and the scanned (optionally bidirectional) encoder."""

from __future__ import annotations

import functools
from typing import Any, Callable, Dict

import flax
import flax.linen as nn
import jax
import jax.numpy as jnp

from attnlab.attention import length_mask
from attnlab.attention.multihead import SelfAttention

Array = jax.Array
Carry = Any

class GRUCell(nn.GRUCell):
  """``flax.linen.GRUCell`` (same maths, parameter names and initial values) whose input
  projections can be hoisted out of a time loop: ``project_inputs(x)`` projects every
  step's input in three matmuls, and the cell then takes that tuple as its ``inputs``
  (``scan_cell`` does this), so each recurrent step only multiplies the carry.
  """

  @nn.compact
  def __call__(self, carry, inputs):
    """carry [..., features] or None; inputs x [..., d] or (W_ir x, W_iz x, W_in x).

    carry None: returns the input projections of ``inputs`` (``project_inputs``).
    """
    dense_i = functools.partial(nn.Dense, self.features, use_bias=True, dtype=self.dtype,
                                param_dtype=self.param_dtype, kernel_init=self.kernel_init,
                                bias_init=self.bias_init)
    if not isinstance(inputs, tuple):
      inputs = tuple(dense_i(name=name)(inputs) for name in ("ir", "iz", "in"))
    if carry is None:
      return inputs
    dense_h = functools.partial(nn.Dense, self.features, use_bias=False, dtype=self.dtype,
                                param_dtype=self.param_dtype,
                                kernel_init=self.recurrent_kernel_init, bias_init=self.bias_init)
    x_r, x_z, x_n = inputs
    h = carry
    r = self.gate_fn(x_r + dense_h(name="hr")(h))
    z = self.gate_fn(x_z + dense_h(name="hz")(h))
    n = self.activation_fn(x_n + r * dense_h(name="hn", use_bias=True)(h))
    new_h = (1.0 - z) * n + z * h
    return new_h, new_h

  def project_inputs(self, x: Array) -> tuple[Array, Array, Array]:
    """x [..., d] -> its three gate projections, each [..., features]."""
    return self(None, x)


CELLS: Dict[str, Callable[..., nn.RNNCellBase]] = {
    # Elman (1990) tanh RNN.
    "rnn": nn.SimpleCell,
    # Cho et al. (2014).
    "gru": GRUCell,
    # Hochreiter & Schmidhuber (1997); the fused-gate variant (same maths, faster).
    "lstm": nn.OptimizedLSTMCell,
}


def cell_names() -> tuple[str, ...]:
  return tuple(sorted(CELLS))


def make_cell(kind: str, features: int, remat: bool = False, **kwargs) -> nn.RNNCellBase:
  """The recurrent cell registered as ``kind`` with ``features`` hidden units.

  remat: wrap the cell in ``nn.remat`` (``jax.checkpoint``): scanned over time, the
    backward pass then keeps only each step's carry and recomputes the gates.
  """
  cls = cell_class(kind)
  return (nn.remat(cls) if remat else cls)(features, **kwargs)


def cell_class(kind: str) -> type[nn.RNNCellBase]:
  """The cell class registered as ``kind``; ValueError listing the valid names otherwise."""
  try:
    return CELLS[kind]
  except KeyError:
    raise ValueError(f"unknown cell {kind!r}; valid cells: {', '.join(cell_names())}") from None


def carry_hidden(carry: Carry) -> Array:
  """The hidden state h [batch, hidden] of a cell carry (LSTM carries are (c, h))."""
  return carry[1] if isinstance(carry, tuple) else carry


def scan_cell(cell: nn.RNNCellBase, x: Array, mask: Array, reverse: bool = False
              ) -> tuple[Carry, Array]:
  """Runs ``cell`` over time, skipping padding: x [batch, time, d], mask [batch, time] ->
  (final carry, outputs [batch, time, hidden]; outputs at padding are meaningless).

  The carry only advances at real positions, so the forward final carry is the one after
  each example's last token, and ``reverse=True`` reads x[length - 1], ..., x[0] from the
  initial carry, as if each example were reversed within its length. Reversal is a plain
  flip of the time axis, not the per-example gather of ``nn.RNN(seq_lengths=...)``
  (on CPU that gather, and its scatter in the backward pass, cost as much as the whole
  backward direction's recurrence). Cells with ``project_inputs`` (``GRUCell``) project
  all inputs before the loop.
  """
  if reverse:
    x, mask = jnp.flip(x, 1), jnp.flip(mask, 1)
  carry = cell.initialize_carry(jax.random.key(0), x[:, 0].shape)
  if hasattr(cell, "project_inputs"):  # hoisted: one matmul per gate for all steps
    x = cell.project_inputs(x)

  def body(cell, carry, inputs):
    x_t, real_t = inputs
    new_carry, y = cell(carry, x_t)
    keep = lambda new, old: jnp.where(real_t[:, None], new, old)  # noqa: E731
    return jax.tree.map(keep, new_carry, carry), y

  scan = nn.scan(body, variable_broadcast="params", split_rngs={"params": False},
                 in_axes=1, out_axes=1)
  carry, outputs = scan(cell, carry, (x, mask))
  return carry, jnp.flip(outputs, 1) if reverse else outputs


@flax.struct.dataclass
class EncoderOutput:
  """What the encoder hands to a decoder.

  Attributes:
    outputs: [batch, src_len, d_enc] per-step outputs (zero at padding).
    mask: [batch, src_len] bool, True at real tokens.
    final: [batch, d_enc] final hidden state (forward last true step, and for a
      bidirectional encoder the backward state at position 0, concatenated).
  """

  outputs: Array
  mask: Array
  final: Array


class Encoder(nn.Module):
  """Embedding, then ``num_layers`` recurrent layers scanned over time.

  The backward direction of a bidirectional layer reads each example from its
  last real token back to its first (``scan_cell``), never padding first.
  Optional multi-head self-attention layers (residual + layer norm) follow.

  Attributes:
    vocab_size, emb_dim, hidden_dim: sizes; outputs have width hidden_dim, or
      2 * hidden_dim when bidirectional.
    cell: a ``CELLS`` name.
    num_layers: stacked recurrent layers, dropout between them.
    bidirectional: concatenate forward and backward outputs.
    dropout_rate: on embeddings and between layers.
    self_attention_layers, num_heads: self-attention over the RNN outputs.
    dtype: computation dtype (parameters stay float32).
    remat: rematerialize each scanned step in the backward pass (``make_cell``).
  """

  vocab_size: int
  emb_dim: int = 32
  hidden_dim: int = 64
  cell: str = "gru"
  num_layers: int = 1
  bidirectional: bool = False
  dropout_rate: float = 0.0
  self_attention_layers: int = 0
  num_heads: int = 1
  dtype: Any = jnp.float32
  remat: bool = False

  @property
  def output_dim(self) -> int:
    return self.hidden_dim * (2 if self.bidirectional else 1)

  @nn.compact
  def __call__(self, src: Array, src_lengths: Array, deterministic: bool = True) -> EncoderOutput:
    """src: [batch, src_len] int ids, src_lengths: [batch] -> EncoderOutput."""
    if self.num_layers < 1:
      raise ValueError(f"encoder num_layers must be >= 1, got {self.num_layers}")
    mask = length_mask(src_lengths, src.shape[1])
    x = nn.Embed(self.vocab_size, self.emb_dim, dtype=self.dtype, name="embed")(src)
    x = nn.Dropout(self.dropout_rate)(x, deterministic=deterministic)
    cells = iter(range(2 * self.num_layers))

    def cell():  # named as flax names them without remat, so checkpoints restore either way
      return make_cell(self.cell, self.hidden_dim, self.remat, dtype=self.dtype,
                       name=f"{cell_class(self.cell).__name__}_{next(cells)}")

    for layer in range(self.num_layers):
      if layer:
        x = nn.Dropout(self.dropout_rate)(x, deterministic=deterministic)
      fwd_carry, fwd = scan_cell(cell(), x, mask)
      finals = [carry_hidden(fwd_carry)]
      outs = [fwd]
      if self.bidirectional:
        bwd_carry, bwd = scan_cell(cell(), x, mask, reverse=True)
        finals.append(carry_hidden(bwd_carry))
        outs.append(bwd)
      # where, not *: 0 * nan is nan, and padding must never leak into real positions.
      x = jnp.where(mask[..., None], jnp.concatenate(outs, axis=-1), 0.0)
    for layer in range(self.self_attention_layers):
      attended = SelfAttention(num_heads=self.num_heads, dtype=self.dtype,
                               name=f"self_attention_{layer}")(x, mask, deterministic=deterministic)
      attended = nn.Dropout(self.dropout_rate)(attended, deterministic=deterministic)
      x = nn.LayerNorm(dtype=self.dtype, name=f"self_attention_norm_{layer}")(x + attended)
      x = jnp.where(mask[..., None], x, 0.0)
    return EncoderOutput(outputs=x, mask=mask, final=jnp.concatenate(finals, axis=-1))
