"""The model as one value: ``ModelOptions``.

Everything a ``Seq2Seq`` is built from (sizes, cell, decoder style, the attention variant and
each variant's own options) is one field of one frozen dataclass. ``attnlab.config.build_model``
makes it from ``config.model`` in one place; ``Seq2Seq`` hands it whole to its ``Decoder``,
the decoder hands it whole to ``Attention``, and ``Attention`` hands it whole to the score
function and the mechanism, which read the fields they need (``self.options.local_window``).
No module in between names a variant's option, so giving a variant an option touches only
that variant (and the config's defaults).

The design, in three choices:

* Flat, not nested: each field is the ``config.model`` key of the same name, so the config
  maps onto the value key for key (``from_flat``), and ``--config.model.local_window=5``,
  ``ModelOptions(local_window=5)`` and ``self.options.local_window`` all say the same thing.
  The fields are grouped below by who reads them.
* Options no field names go in ``extra``: ``(name, value)`` pairs, sorted by name. This is
  for score functions and mechanisms added later or outside attnlab, which read theirs with a
  default: ``self.options.get("my_scale", 1.0)``. ``build_model`` passes every ``config.model``
  key that names no field as an extra option, so a new score with its own option is its own
  file plus one line in ``attnlab.config.base_config`` (``c.model.my_scale = 1.0``, then
  ``--config.model.my_scale=2``). ``get`` reads a field first, so an extra option that later
  becomes a field keeps working.
* Hashable: frozen, every value static (lists and dicts in ``extra`` become tuples), as
  linen module fields and jit's static arguments must be (decoding passes the model to jit
  as a static argument). ``replace(**changes)`` gives a modified copy.

Models never read configs. From Python: ``ModelOptions(decoder="bahdanau",
attention="additive")``, or the shorthands ``Seq2Seq.create(src_vocab_size=...,
tgt_vocab_size=..., **options)``, ``Attention.create(**options)`` and
``make_score(name, **options)``.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Hashable, Mapping
from typing import Any

import jax.numpy as jnp


@dataclasses.dataclass(frozen=True, kw_only=True)
class ModelOptions:
  """Every option of a Seq2Seq and of its attention (see the module docstring).

  Defaults are those of a small model; ``attnlab.config.base_config`` has the experiments'.
  """

  # ---- encoder and decoder (attnlab.models)
  # Recurrent cell: rnn, gru or lstm.
  cell: str = "gru"
  # Embedding width (source and target) and recurrent width (encoder per direction, decoder).
  emb_dim: int = 32
  hidden_dim: int = 64
  # Stacked recurrent layers.
  encoder_layers: int = 1
  decoder_layers: int = 1
  # Bidirectional encoder (outputs [batch, src_len, 2 * hidden_dim]).
  bidirectional: bool = False
  # Multi-head self-attention layers over the encoder outputs; causal self-attention over the
  # decoder's previous outputs; heads of both.
  encoder_self_attention_layers: int = 0
  decoder_self_attention: bool = False
  num_heads: int = 1
  # Decoder style: bahdanau, luong or none (no attention: RNNencdec).
  decoder: str = "luong"
  # Luong input feeding (h~_{t-1} joined to the next decoder input).
  input_feeding: bool = True
  # Initial decoder state: dense (projection of the encoder's final state) or zeros.
  bridge: str = "dense"
  # Pointer-generator copy attention (See et al. 2017, attnlab.models.pointer).
  copy: bool = False
  # Dropout on embeddings, between layers and before the output layer.
  dropout_rate: float = 0.0
  # Computation dtype (parameters stay float32).
  dtype: Any = jnp.float32
  # Rematerialize the scanned encoder and decoder steps in the backward pass.
  remat: bool = False

  # ---- attention (attnlab.attention): score function, mechanism, normalizer
  # Score-function name (attnlab.attention.SCORES): dot, general, additive, cosine...
  attention: str = "general"
  # Mechanism name (attnlab.attention.MECHANISMS): global, local_m, local_p, hard, monotonic.
  mechanism: str = "global"
  # Normalizer name (attnlab.attention.NORMALIZERS): softmax, sparsemax, entmax15, hardmax.
  normalizer: str = "softmax"
  # Width of every score's projection (attnlab.attention.scores): the hidden width of the
  # additive / concat scores and of local_p's position network (None = hidden_dim; read it
  # as ``attention_width``); when set, also the width dot / scaled_dot / general project
  # query and keys to first (Britz et al. 2017's multiplicative attention,
  # (W_q q) . (W_k k); None = no projection, Luong et al. 2015's raw q . k).
  attention_dim: int | None = None
  # Coverage (Tu et al. 2016; See et al. 2017): c_t fed into the scores as a per-key feature.
  coverage: bool = False

  # ---- score functions' own options (attnlab.attention.scores)
  # location: the longest source it covers (one score per position).
  max_src_len: int = 128
  # location: add a learned bias, W_a q + b (Luong et al. 2015 have none).
  location_bias: bool = False
  # cosine: the (initial) inverse temperature tau of tau * cos(q, k), and whether it is
  # learned (as log tau).
  cosine_temperature: float = 10.0
  cosine_learn_temperature: bool = True

  # ---- mechanisms' own options (attnlab.attention.local, hard, monotonic)
  # local_m / local_p: window half-width D ([p_t - D, p_t + D]; local_p's sigma = D / 2).
  local_window: int = 10
  # hard: training estimator, reinforce or gumbel; the Gumbel-softmax temperature.
  hard_estimator: str = "reinforce"
  hard_temperature: float = 1.0
  # hard + reinforce: entropy-bonus weight and reward-baseline decay (training loss only).
  hard_entropy_weight: float = 0.01
  hard_baseline_decay: float = 0.9
  # monotonic: training noise std on the energies; initial energy bias r.
  monotonic_noise: float = 1.0
  monotonic_bias: float = -1.0

  # ---- weights of the auxiliary attention losses (Seq2Seq.attention_losses; training only)
  coverage_loss_weight: float = 0.0
  guided_alignment_weight: float = 0.0

  # ---- options that no field above names: (name, value) pairs, sorted (``get``).
  # A mapping is accepted too.
  extra: tuple[tuple[str, Hashable], ...] = ()

  def __post_init__(self):
    items = self.extra.items() if isinstance(self.extra, Mapping) else self.extra
    pairs = []
    for name, value in items:
      if name in _FIELD_NAMES:
        raise ValueError(f"extra option {name!r} is a field of ModelOptions: set it as "
                         f"ModelOptions({name}=...)")
      value = _frozen(value)
      try:
        hash(value)
      except TypeError:
        raise TypeError(f"extra option {name!r}: {value!r} is not hashable") from None
      pairs.append((name, value))
    names = [name for name, _ in pairs]
    if len(set(names)) != len(names):
      raise ValueError(f"extra options named twice: {sorted(names)}")
    object.__setattr__(self, "extra", tuple(sorted(pairs)))

  @property
  def attention_width(self) -> int:
    """``attention_dim``, or ``hidden_dim`` when it is None (the additive scores' and
    local_p's width; dot / scaled_dot / general read ``attention_dim`` itself, as they
    project only when it is set)."""
    return self.attention_dim or self.hidden_dim

  def get(self, name: str, default: Any) -> Any:
    """The option ``name``: a field of that name, else the extra option, else ``default``."""
    if name in _FIELD_NAMES:
      return getattr(self, name)
    return dict(self.extra).get(name, default)

  def replace(self, **changes) -> "ModelOptions":
    """A copy with ``changes`` (field names, or ``extra=``)."""
    return dataclasses.replace(self, **changes)

  @classmethod
  def from_flat(cls, values: Mapping[str, Any]) -> "ModelOptions":
    """Options from a flat mapping of ``config.model``'s names: each name of a field sets it,
    every other name becomes an extra option."""
    fields = {k: v for k, v in values.items() if k in _FIELD_NAMES}
    return cls(**fields, extra={k: v for k, v in values.items() if k not in _FIELD_NAMES})


_FIELD_NAMES = frozenset(f.name for f in dataclasses.fields(ModelOptions)) - {"extra"}


def _frozen(value: Any) -> Any:
  """Lists / tuples -> tuples, mappings -> sorted (key, value) tuples, recursively (what a
  ConfigDict holds); anything else unchanged."""
  if isinstance(value, Mapping):
    return tuple(sorted((k, _frozen(v)) for k, v in value.items()))
  if isinstance(value, (list, tuple)):
    return tuple(_frozen(v) for v in value)
  return value
