"""Attention decoders: Bahdanau-style, Luong-style, and the no-attention baseline.

One decoder step maps (state, previous token, encoder memory) to (next state,
logits, attention weights). The teacher-forced pass is that same step under
``nn.scan``, and decoding (``attnlab.decoding``) calls the step directly, so the
two can never disagree.

Styles (``DECODER_STYLES``):

* ``bahdanau`` (Bahdanau et al. 2015): attend with the previous state s_{t-1},
  feed [embedding; context] to the RNN, predict from [s_t; context; embedding].
* ``luong`` (Luong et al. 2015): RNN first, attend with h_t, attentional vector
  h~_t = tanh(W_c [context; h_t]), predict from h~_t; with ``input_feeding``
  h~_{t-1} is joined to the next input.
* ``none`` (RNNencdec, Cho et al. 2014 / Bahdanau et al. 2015's baseline): the
  encoder's final state initialises the decoder; no context at all.

With ``copy`` (pointer-generator, See et al. 2017; ``attnlab.models.pointer``) a
bahdanau or luong step mixes generating and copying a source token and returns
log-probabilities over the extended vocabulary (target + the example's source
OOVs) as its logits; it then needs ``src_ext``, the source in extended ids.
"""

from __future__ import annotations

from typing import Any

import flax
import flax.linen as nn
import jax
import jax.numpy as jnp

from attnlab.attention import Attention, AttentionMemory, get_mechanism, get_score
from attnlab.attention.multihead import MultiHeadAttention
from attnlab.data.vocab import UNK
from attnlab.models import pointer
from attnlab.models.rnn import (EncoderOutput, GRUWeights, carry_hidden, gru_step_from_parts,
                                 make_cell)
from attnlab.options import ModelOptions, Requires

Array = jax.Array

# The decoder styles, each with what choosing it requires of the other options (checked once,
# by attnlab.config.validate; the Decoder trusts its options).
DECODER_STYLES: dict[str, tuple[Requires, ...]] = {
    "bahdanau": (),
    "luong": (),
    "none": (
        Requires("bridge", lambda o: o.get("bridge", "dense") == "dense",
                 "the no-attention decoder needs bridge='dense' (the source reaches it only "
                 "through its initial state)"),
        Requires("coverage", lambda o: not o.get("coverage", False),
                 "coverage sums attention weights, and decoder='none' has none: use "
                 "decoder='bahdanau' or 'luong'"),
        Requires("copy", lambda o: not o.get("copy", False),
                 "copying needs attention weights over the source, and decoder='none' has "
                 "none: use decoder='bahdanau' or 'luong'"),
    ),
}
BRIDGES = ("dense", "zeros")


@flax.struct.dataclass
class DecoderState:
  """Everything a decoder carries from one step to the next.

  Attributes:
    carries: one cell carry per layer (each [batch, hidden], or (c, h) for LSTM).
    feed: [batch, hidden] Luong's h~_{t-1} for input feeding (zeros otherwise).
    history: [batch, history_len, hidden] the decoder's past top-layer outputs
      for decoder self-attention ([batch, 0, hidden] when it is off).
    t: [batch] int32, the index of the step about to run.
    attention_state: the attention mechanism's per-example state
      (``Attention.initial_state``): [batch, src_len] for ``monotonic`` (the
      previous alignment), [batch, 0] for stateless mechanisms.
    coverage: [batch, src_len] float32 c_t = sum_{t' < t} a_{t'}, the attention each
      source position has received so far (Tu et al. 2016), zeros before step 0;
      [batch, 0] when the decoder has no coverage.
  """

  carries: tuple
  feed: Array
  history: Array
  t: Array
  attention_state: Array
  coverage: Array


@flax.struct.dataclass
class StepOutputs:
  """What one decoder step computes besides its next state (``Decoder.recur``).

  Attributes:
    features: [batch, d] what ``Decoder.project`` reads out into logits: [s_t; c_t; y_{t-1}]
      (bahdanau), [s_t; y_{t-1}] (none), h~_t (luong).
    weights: [batch, src_len] the attention weights (zeros for ``none``).
    h: [batch, hidden] the top recurrent output; context: [batch, d_v] or None (``none``);
    emb: [batch, emb_dim] the embedded previous token after dropout (read by ``copy``).
  """

  features: Array
  weights: Array
  h: Array
  context: Array | None
  emb: Array


class Decoder(nn.Module):
  """A recurrent decoder of one of ``DECODER_STYLES`` over an encoder memory.

  Attributes:
    vocab_size: the target vocabulary size.
    options: the model's ``ModelOptions``, handed whole to ``Attention``. Read here:
      ``emb_dim``, ``hidden_dim``; ``decoder`` (the style: ``bahdanau``, ``luong`` or
      ``none``); ``attention`` (a score-function name, ``attnlab.attention.SCORES``) and
      ``mechanism``; ``cell`` (a ``CELLS`` name) and ``decoder_layers``
      (stacked cells); ``input_feeding`` (Luong only: join h~_{t-1} to the next input);
      ``bridge`` (``dense``: learned projection of the encoder's final state, or
      ``zeros``, for the initial decoder state); ``decoder_self_attention`` (causal
      multi-head self-attention over the decoder's own previous outputs, residual + layer
      norm, ``num_heads`` heads); ``coverage`` (carry the coverage vector c_t,
      ``DecoderState.coverage``, and feed it into the attention scores,
      ``attnlab.attention.CoverageFeature``; See et al. 2017); ``dropout_rate`` (on
      embeddings, between layers and before the output layer); ``copy`` (pointer-generator
      copy attention, See et al. 2017: each step returns log-probabilities over the
      extended vocabulary [vocab + src_len] and needs ``src_ext``; ids >= vocab_size fed
      back in are embedded as UNK); ``dtype`` (parameters stay float32; logits are
      returned as float32); ``remat`` (rematerialize each teacher-forced step in the
      backward pass, ``nn.remat`` on the scan body: memory keeps only the per-step
      carries, the rest is recomputed).
  """

  vocab_size: int
  options: ModelOptions = ModelOptions()

  @property
  def dtype(self) -> Any:
    """The computation dtype, ``options.compute_dtype``."""
    return self.options.compute_dtype

  def setup(self):
    o = self.options
    self.embed = nn.Embed(self.vocab_size, o.emb_dim, dtype=self.dtype)
    self.cells = [make_cell(o.cell, o.hidden_dim, dtype=self.dtype)
                  for _ in range(o.decoder_layers)]
    self.dropout = nn.Dropout(o.dropout_rate)
    if o.decoder != "none":
      self.attn = Attention(options=o)
      # dot / scaled_dot / cosine need d_q == d_k: project encoder outputs
      # (e.g. 2 * hidden of a bidirectional encoder) to the query width. Not with
      # attention_dim set for dot / scaled_dot: the score projects both to that width.
      self.key_projection = (nn.Dense(o.hidden_dim, use_bias=False, dtype=self.dtype)
                             if get_score(o.attention).needs_equal_dims(o) else None)
    if o.bridge == "dense":
      self.bridge_h = [nn.Dense(o.hidden_dim, dtype=self.dtype) for _ in range(o.decoder_layers)]
      if o.cell == "lstm":
        self.bridge_c = [nn.Dense(o.hidden_dim, dtype=self.dtype)
                         for _ in range(o.decoder_layers)]
    if o.decoder_self_attention:
      self.self_attn = MultiHeadAttention(num_heads=o.num_heads, dtype=self.dtype)
      self.self_attn_norm = nn.LayerNorm(dtype=self.dtype)
    if o.decoder == "luong":
      self.W_c = nn.Dense(o.hidden_dim, use_bias=False, dtype=self.dtype)
    else:
      self.readout = nn.Dense(o.hidden_dim, dtype=self.dtype)
    self.output = nn.Dense(self.vocab_size, dtype=self.dtype)
    if o.copy:
      # p_gen = sigmoid(w_c . context + w_s . state + w_x . input + b), See et al. eq. 8:
      # one Dense over their concatenation.
      self.p_gen = nn.Dense(1, dtype=self.dtype)

  # ---------------------------------------------------------------- set-up

  def prepare(self, encoded: EncoderOutput) -> AttentionMemory:
    """The per-source half of attention (projected keys), computed once.

    encoded.outputs: [batch, src_len, d_enc] -> AttentionMemory.
    """
    if self.options.decoder == "none":
      return AttentionMemory(keys=encoded.outputs, values=encoded.outputs, mask=encoded.mask)
    keys = encoded.outputs
    if self.key_projection is not None and keys.shape[-1] != self.options.hidden_dim:
      keys = self.key_projection(keys)
    memory = self.attn.prepare(keys, keys, encoded.mask)
    return memory

  def initial_state(self, encoded: EncoderOutput, history_len: int = 0) -> DecoderState:
    """The decoder state before step 0 (bridge from ``encoded.final``).

    history_len: how many steps decoder self-attention may look back over
      (the target length when teacher forcing, the maximum decode length when
      decoding).
    """
    o = self.options
    batch = encoded.final.shape[0]
    zeros = jnp.zeros((batch, o.hidden_dim), self.dtype)
    carries = []
    for layer in range(o.decoder_layers):
      if o.bridge == "dense":
        h = jnp.tanh(self.bridge_h[layer](encoded.final))
        c = self.bridge_c[layer](encoded.final) if o.cell == "lstm" else None
      else:
        h, c = zeros, zeros
      carries.append((c, h) if o.cell == "lstm" else h)
    history = jnp.zeros((batch, history_len if o.decoder_self_attention else 0, o.hidden_dim),
                        self.dtype)
    if o.decoder == "none":
      attention_state = jnp.zeros((batch, 0), jnp.float32)
    else:
      attention_state = self.attn.initial_state(encoded.mask)
    src_len = encoded.mask.shape[1]
    coverage = jnp.zeros((batch, src_len if o.coverage else 0), jnp.float32)
    return DecoderState(carries=tuple(carries), feed=zeros, history=history,
                        t=jnp.zeros((batch,), jnp.int32), attention_state=attention_state,
                        coverage=coverage)

  # ---------------------------------------------------------------- one step

  def _rnn(self, carries: tuple, x: Array, deterministic: bool,
           hoisted: tuple[Array, GRUWeights] | None = None) -> tuple[tuple, Array]:
    """Runs the stacked cells one step: x [batch, d_in] -> top output [batch, hidden].
    hoisted: this step's slice of ``hoisted_inputs`` (the first cell then multiplies only
    x[:, emb_dim:], the context or the fed-back h~, and its carry)."""
    new = []
    for layer, cell in enumerate(self.cells):
      if layer:
        x = self.dropout(x, deterministic=deterministic)
      if layer == 0 and hoisted is not None:
        e = self.options.emb_dim
        carry = x = gru_step_from_parts(carries[0], hoisted[0], x[..., e:], hoisted[1], e,
                                        cell.gate_fn, cell.activation_fn)
      else:
        carry, x = cell(carries[layer], x)
      new.append(carry)
    return tuple(new), x

  @property
  def hoists_inputs(self) -> bool:
    """Whether teacher forcing hoists ``hoisted_inputs``: a GRU first cell, and no ``copy``."""
    return not self.options.copy and hasattr(self.cells[0], "fused_weights")

  def hoisted_inputs(self, emb: Array, memory: AttentionMemory) -> tuple[Array, GRUWeights]:
    """emb [batch, tgt_len, emb_dim], dropped out -> (emb W_i[:emb_dim] + b_i [batch,
    tgt_len, 3 * hidden]: the embedding's share of the first cell's input product at every
    step, its ``GRUWeights``). The rest of that input (Bahdanau's context, Luong's fed-back
    h~) depends on the carry and stays in the loop."""
    o = self.options
    rest = {"bahdanau": memory.values.shape[-1],
            "luong": o.hidden_dim if o.input_feeding else 0}.get(o.decoder, 0)
    w = self.cells[0].fused_weights(o.emb_dim + rest)
    return jnp.dot(emb.astype(w.w_i.dtype), w.w_i[:o.emb_dim]) + w.b_i, w

  def _self_attend(self, state: DecoderState, h: Array) -> tuple[Array, Array]:
    """Causal self-attention of h_t [batch, hidden] over the outputs so far."""
    if not self.options.decoder_self_attention:
      return state.history, h
    positions = jnp.arange(state.history.shape[1])
    now = positions[None, :] == state.t[:, None]  # [batch, history_len]
    history = jnp.where(now[..., None], h[:, None, :], state.history)
    mask = (positions[None, :] <= state.t[:, None])[:, None, :]  # [batch, 1, history_len]
    attended = self.self_attn(h[:, None, :], history, mask)[:, 0]
    return history, self.self_attn_norm(h + attended)

  def _attend(self, query: Array, memory: AttentionMemory, state: DecoderState,
              deterministic: bool) -> tuple[Array, Array, Array]:
    """query [batch, d_q] -> context [batch, d_v], weights [batch, src_len], new attention state."""
    context, weights, attention_state = self.attn(
        query[:, None, :], memory, t=state.t, state=state.attention_state,
        deterministic=deterministic, return_state=True,
        coverage=state.coverage if self.options.coverage else None)
    return context[:, 0], weights[:, 0], attention_state

  def step_embedded(self, state: DecoderState, emb: Array, memory: AttentionMemory,
                    deterministic: bool = True,
                    src_ext: Array | None = None) -> tuple[DecoderState, Array, Array]:
    """One decoder step from an embedded previous token.

    Args:
      state: DecoderState (batch-leading leaves).
      emb: [batch, emb_dim] embedding of y_{t-1}.
      memory: AttentionMemory from ``prepare``.
      deterministic: evaluation mode (no dropout; hard attention takes the
        argmax, monotonic attention decodes hard). Training mode draws from the
        rng streams ``'dropout'`` and ``'sample'`` (hard / monotonic attention).
      src_ext: [batch, src_len] int source ids in the extended vocabulary
        (``copy`` only; ignored otherwise).

    Returns:
      new state, logits [batch, vocab], attention weights [batch, src_len]. With
      ``copy`` the logits are the pointer-generator's log-probabilities
      [batch, vocab + src_len] (``pointer.mixture_log_probs``).
    """
    new_state, step = self.recur(state, emb, memory, deterministic)
    logits = self.project(step.features, deterministic)
    if self.options.copy:
      if src_ext is None:
        raise ValueError("a copy decoder needs src_ext, the source in extended vocabulary ids "
                         "(attnlab.data.batching with copy=True)")
      p_gen_logit = self.p_gen(jnp.concatenate([step.context, step.h, step.emb], -1))[:, 0]
      logits = pointer.mixture_log_probs(logits, p_gen_logit, step.weights, src_ext,
                                         memory.mask)
    return new_state, logits.astype(jnp.float32), step.weights.astype(jnp.float32)

  def recur(self, state: DecoderState, emb: Array, memory: AttentionMemory,
            deterministic: bool = True,
            hoisted: tuple[Array, GRUWeights] | None = None) -> tuple[DecoderState, StepOutputs]:
    """The recurrent half of a step: everything the next step depends on.

    emb: [batch, emb_dim] embedding of y_{t-1}. Returns the new state and ``StepOutputs``,
    whose ``features`` ``project`` turns into logits; no step reads another's logits (but
    through input feeding, which ``features`` = h~_t carries in the state), so teacher
    forcing projects every step at once, outside the scan. hoisted: this step's slice of
    ``hoisted_inputs`` (teacher forcing; emb is then already dropped out).
    """
    o = self.options
    if hoisted is None:
      emb = self.dropout(emb, deterministic=deterministic)
    context = None
    if o.decoder == "bahdanau":
      context, weights, attention_state = self._attend(carry_hidden(state.carries[-1]), memory,
                                                       state, deterministic)
      carries, h = self._rnn(state.carries, jnp.concatenate([emb, context], -1), deterministic,
                             hoisted)
      history, h = self._self_attend(state, h)
      features = jnp.concatenate([h, context, emb], -1)  # read out from [s_t; c_t; y_{t-1}]
      feed = state.feed
    elif o.decoder == "luong":
      x = jnp.concatenate([emb, state.feed], -1) if o.input_feeding else emb
      carries, h = self._rnn(state.carries, x, deterministic, hoisted)
      history, h = self._self_attend(state, h)
      context, weights, attention_state = self._attend(h, memory, state, deterministic)
      features = jnp.tanh(self.W_c(jnp.concatenate([context, h], -1)))  # h~_t
      feed = features
    else:  # none
      carries, h = self._rnn(state.carries, emb, deterministic, hoisted)
      history, h = self._self_attend(state, h)
      features = jnp.concatenate([h, emb], -1)
      weights = jnp.zeros(memory.mask.shape, h.dtype)
      feed = state.feed
      attention_state = state.attention_state
    # c_{t+1} = c_t + a_t (Tu et al. 2016); without coverage it stays [batch, 0].
    coverage = state.coverage + weights.astype(jnp.float32) if o.coverage else state.coverage
    new_state = DecoderState(carries=carries, feed=feed, history=history, t=state.t + 1,
                             attention_state=attention_state, coverage=coverage)
    return new_state, StepOutputs(features=features, weights=weights, h=h, context=context,
                                  emb=emb)

  def project(self, features: Array, deterministic: bool = True) -> Array:
    """Logits from ``StepOutputs.features`` [..., d] -> [..., vocab]: Bahdanau's and the
    baseline's readout tanh(W_o [s_t; c_t; y_{t-1}]) (Luong's h~_t is its own readout),
    dropout, the output layer. Any leading axes: one step or every teacher-forced step."""
    out = features if self.options.decoder == "luong" else jnp.tanh(self.readout(features))
    return self.output(self.dropout(out, deterministic=deterministic))

  def step(self, state: DecoderState, y_prev: Array, memory: AttentionMemory,
           deterministic: bool = True,
           src_ext: Array | None = None) -> tuple[DecoderState, Array, Array]:
    """One decoder step from token ids y_prev [batch]; see ``step_embedded``.

    With ``copy``, y_prev may be an extended id (a copied OOV): it is embedded as UNK.
    """
    emb = self.embed(self._feed_ids(y_prev))
    return self.step_embedded(state, emb, memory, deterministic, src_ext)

  def _feed_ids(self, ids: Array) -> Array:
    """Ids to embed: a copy model's OOV slots (>= vocab_size) become UNK."""
    return pointer.feed_ids(ids, self.vocab_size, UNK) if self.options.copy else ids

  # ---------------------------------------------------------------- teacher forcing

  def __call__(self, tgt_in: Array, memory: AttentionMemory, state: DecoderState,
               deterministic: bool = True, src_ext: Array | None = None) -> tuple[Array, Array]:
    """Teacher-forced decoding as one scan over time.

    Args:
      tgt_in: [batch, tgt_len] BOS + target ids.
      memory: AttentionMemory; state: initial DecoderState.
      src_ext: [batch, src_len] source in extended ids (``copy`` only).

    Returns:
      logits [batch, tgt_len, vocab] (``copy``: log-probabilities
      [batch, tgt_len, vocab + src_len]), attention [batch, tgt_len, src_len].
    """
    emb = self.embed(self._feed_ids(tgt_in))  # once, outside the scan: [batch, tgt_len, emb]
    copy = self.options.copy
    emb_proj = w = None  # the per-step work that does not depend on the carry, at once:
    if self.hoists_inputs:
      emb_proj, w = self.hoisted_inputs(emb := self.dropout(emb, deterministic), memory)

    def body(module, carry, emb_t, emb_proj_t, memory, src_ext, w):
      if copy:  # the pointer mixes each step's logits with its attention: all in the scan
        carry, logits, weights = module.step_embedded(carry, emb_t, memory, deterministic,
                                                      src_ext)
        return carry, (logits, weights)
      carry, step = module.recur(carry, emb_t, memory, deterministic, w and (emb_proj_t, w))
      return carry, (step.features, step.weights.astype(jnp.float32))

    # Sown per-step values (local_p's p_t, the collections a mechanism declares: hard
    # attention's REINFORCE samples) are stacked over time on axis 1: [batch, tgt_len, ...].
    sown = ("intermediates", *get_mechanism(self.options.mechanism).sown_collections)
    scan = nn.scan(nn.remat(body) if self.options.remat else body, variable_broadcast="params",
                   variable_axes=dict.fromkeys(sown, 1),
                   split_rngs={"params": False, "dropout": True, "sample": True},
                   in_axes=(1, 1, nn.broadcast, nn.broadcast, nn.broadcast), out_axes=1)
    _, (outputs, weights) = scan(self, state, emb, emb_proj, memory, src_ext, w)
    if copy:
      return outputs, weights
    # The readout and the vocabulary projection of every step in one product
    # ([batch * tgt_len, d] x [d, vocab]) instead of one per step inside the scan.
    return self.project(outputs, deterministic).astype(jnp.float32), weights
