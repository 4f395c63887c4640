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

class DenseParams(nn.Module):
  """The kernel [in_features, features] and bias [features] (None without) that an
  ``nn.Dense`` of the same name creates, under the same names and in the same order (so with
  the same initial values), returned instead of applied: several can then be fused into one
  product."""

  features: int
  use_bias: bool
  kernel_init: Callable[..., Array]
  bias_init: Callable[..., Array]
  param_dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, in_features: int) -> tuple[Array, Array | None]:
    kernel = self.param("kernel", self.kernel_init, (in_features, self.features),
                        self.param_dtype)
    bias = (self.param("bias", self.bias_init, (self.features,), self.param_dtype)
            if self.use_bias else None)
    return kernel, bias


@flax.struct.dataclass
class GRUWeights:
  """A GRU's six products fused into two: gates in the order r, z, n.

  Attributes:
    w_i: [d, 3 * hidden] input kernels; b_i: [3 * hidden] their biases.
    w_h: [hidden, 3 * hidden] recurrent kernels; b_hn: [hidden] the n gate's recurrent bias.
  """

  w_i: Array
  b_i: Array
  w_h: Array
  b_hn: Array


def gru_step(h: Array, x_proj: Array, w_h: Array, b_hn: Array,
             gate_fn: Callable[[Array], Array] = jax.nn.sigmoid,
             activation_fn: Callable[[Array], Array] = jnp.tanh) -> Array:
  """One GRU step (Cho et al. 2014, flax's and PyTorch's form) from projected inputs:
  h [..., hidden], x_proj = x W_i + b_i [..., 3 * hidden] (gates r, z, n) -> new h.

  r = gate(x_r + h W_hr), z = gate(x_z + h W_hz), n = act(x_n + r * (h W_hn + b_hn)),
  h' = (1 - z) * n + z * h; the three recurrent products are one [hidden, 3 * hidden] product,
  in ``w_h``'s dtype (h' is in the wider of h's and that, as in flax).
  """
  x_r, x_z, x_n = jnp.split(x_proj, 3, axis=-1)
  h_r, h_z, h_n = jnp.split(jnp.dot(h.astype(w_h.dtype), w_h), 3, axis=-1)
  r = gate_fn(x_r + h_r)
  z = gate_fn(x_z + h_z)
  n = activation_fn(x_n + r * (h_n + b_hn))
  return (1.0 - z) * n + z * h


def gru_step_from_parts(h: Array, lead_proj: Array, rest: Array, w: GRUWeights, d_lead: int,
                        gate_fn: Callable[[Array], Array] = jax.nn.sigmoid,
                        activation_fn: Callable[[Array], Array] = jnp.tanh) -> Array:
  """``gru_step`` for an input x = [lead; rest] whose lead [..., d_lead] was projected
  beforehand (lead_proj = lead W_i[:d_lead] + b_i [..., 3 * hidden]): only rest
  [..., d - d_lead] and h are multiplied here."""
  x_proj = lead_proj + jnp.dot(rest.astype(w.w_i.dtype), w.w_i[d_lead:])
  return gru_step(h, x_proj, w.w_h, w.b_hn, gate_fn, activation_fn)


class GRUCell(nn.GRUCell):
  """``flax.linen.GRUCell`` (same maths, parameter names and initial values) with each
  group of three gate products fused into one (``GRUWeights``: [d, 3 * hidden] and
  [hidden, 3 * hidden]), and whose input projection can be hoisted out of a time loop:
  ``project_inputs(x)`` projects every step's input in one product and returns the fused
  ``GRUWeights`` (``scan_cell`` does this), and ``gru_step`` then only multiplies the carry.
  """

  @nn.compact
  def __call__(self, carry, inputs):
    """carry [..., features] or None, inputs x [..., d] -> (new carry, output), both
    [..., features]; carry None: ``project_inputs(inputs)``; inputs an int d (carry None):
    ``fused_weights(d)``."""
    def dense(name, recurrent=False, use_bias=True):
      return DenseParams(self.features, use_bias, param_dtype=self.param_dtype, name=name,
                         kernel_init=self.recurrent_kernel_init if recurrent else self.kernel_init,
                         bias_init=self.bias_init)
    d = inputs if isinstance(inputs, int) else inputs.shape[-1]
    (k_ir, b_ir), (k_iz, b_iz), (k_in, b_in) = (dense(n)(d) for n in ("ir", "iz", "in"))
    (k_hr, _), (k_hz, _) = (dense(n, True, False)(self.features) for n in ("hr", "hz"))
    k_hn, b_hn = dense("hn", True)(self.features)
    cast = lambda x: jnp.asarray(x, self.dtype)  # noqa: E731
    w = GRUWeights(w_i=cast(jnp.concatenate([k_ir, k_iz, k_in], 1)),
                   b_i=cast(jnp.concatenate([b_ir, b_iz, b_in])),
                   w_h=cast(jnp.concatenate([k_hr, k_hz, k_hn], 1)), b_hn=cast(b_hn))
    if isinstance(inputs, int):
      return w
    x_proj = jnp.dot(cast(inputs), w.w_i) + w.b_i
    if carry is None:
      return x_proj, w
    new_h = gru_step(carry, x_proj, w.w_h, w.b_hn, self.gate_fn, self.activation_fn)
    return new_h, new_h

  def project_inputs(self, x: Array) -> tuple[Array, GRUWeights]:
    """x [..., d] -> (x W_i + b_i [..., 3 * features], the cell's parameters fused per kind
    and cast to ``dtype``: ``GRUWeights``)."""
    return self(None, x)

  def fused_weights(self, in_features: int) -> GRUWeights:
    """The cell's parameters for inputs of width ``in_features``, fused per kind and cast to
    ``dtype`` (``GRUWeights``), without a product: a caller that knows part of every step's
    input in advance projects that part itself (``attnlab.models.decoders``)."""
    return self(None, in_features)


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


def scan_cell(cell: nn.RNNCellBase, x: Array, mask: Array, reverse: bool = False,
              remat: bool = False) -> tuple[Carry, Array]:
  """Runs ``cell`` over time, skipping padding: x [batch, time, d], mask [batch, time] ->
  (final carry, outputs [batch, time, hidden]; outputs at padding are meaningless).

  The carry only advances at real positions, so the forward final carry is the one after
  each example's last token, and ``reverse=True`` reads x[length - 1], ..., x[0] from the
  initial carry, as if each example were reversed within its length. Reversal is a plain
  flip of the time axis, not the per-example gather of ``nn.RNN(seq_lengths=...)``
  (on CPU that gather, and its scatter in the backward pass, cost as much as the whole
  backward direction's recurrence). A ``GRUCell`` projects all inputs before the loop, in
  one product, and the loop is ``jax.lax.scan`` of ``gru_step`` (rematerialized per step with
  ``remat``: pass the cell's own ``remat``); other cells run under ``nn.scan``.
  """
  if reverse:
    x, mask = jnp.flip(x, 1), jnp.flip(mask, 1)
  carry = cell.initialize_carry(jax.random.key(0), x[:, 0].shape)
  keep = lambda real_t, new, old: jnp.where(real_t[:, None], new, old)  # noqa: E731
  if hasattr(cell, "project_inputs"):  # GRUCell: one input product for every step
    x_proj, w = cell.project_inputs(x)

    def step(h, inputs):
      x_t, real_t = inputs
      new_h = gru_step(h, x_t, w.w_h, w.b_hn, cell.gate_fn, cell.activation_fn)
      return keep(real_t, new_h, h), new_h

    carry, outputs = jax.lax.scan(jax.checkpoint(step) if remat else step, carry,
                                  (jnp.swapaxes(x_proj, 0, 1), jnp.swapaxes(mask, 0, 1)))
    outputs = jnp.swapaxes(outputs, 0, 1)
  else:
    def body(cell, carry, inputs):
      x_t, real_t = inputs
      new_carry, y = cell(carry, x_t)
      return jax.tree.map(functools.partial(keep, real_t), new_carry, carry), y

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
      fwd_carry, fwd = scan_cell(cell(), x, mask, remat=self.remat)
      finals = [carry_hidden(fwd_carry)]
      outs = [fwd]
      if self.bidirectional:
        bwd_carry, bwd = scan_cell(cell(), x, mask, reverse=True, remat=self.remat)
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
