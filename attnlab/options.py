"""The model as one value: ``ModelOptions``, each option's one declaration.

Everything a ``Seq2Seq`` is built from (sizes, cell, decoder style, the attention variant and
each variant's own options) is one field of one frozen dataclass, declared here once, with its
default and a comment: ``attnlab.defaults.base_config`` makes the config's ``model`` section
from these fields, and ``attnlab.config.build_model`` makes the value back from that section.
``Seq2Seq`` hands it whole to its ``Decoder``, the decoder hands it whole to ``Attention``, and
``Attention`` hands it whole to the score function and the mechanism, which read the fields
they need (``self.options.local_window``). No module in between names a variant's option.

The design, in four choices:

* Flat, not nested: each field is the ``config.model`` key of the same name, so the config
  maps onto the value key for key (``from_flat``), and ``--config.model.local_window=5``,
  ``ModelOptions(local_window=5)`` and ``self.options.local_window`` all say the same thing.
* Plain data, no JAX: every value is a Python number, string or bool (``dtype`` is a name,
  ``compute_dtype`` the JAX dtype), so config files import this module and stay light.
* Options no field names go in ``extra``: ``(name, value)`` pairs, sorted by name. This is
  for score functions and mechanisms added later or outside attnlab, which read theirs with a
  default: ``self.options.get("my_scale", 1.0)``; ``build_model`` passes every ``config.model``
  key that names no field as an extra option (``c.model.my_scale = 1.0`` in a config, then
  ``--config.model.my_scale=2``). ``get`` reads a field first, so an extra option that later
  becomes a field keeps working.
* Hashable: frozen, every value static (lists and dicts in ``extra`` become tuples), as
  linen module fields and jit's static arguments must be. ``replace(**changes)`` gives a copy.

Validity is not declared here but where it is decided, at the boundary: ``attnlab.config``
checks the generic options, and each variant's registry entry carries the checks of the
options it reads (``Mechanism.option_checks``, ``Score.option_checks``, the requirements of a
decoder style in ``attnlab.models.decoders.DECODER_STYLES``), written with the small check
values at the end of this module. Modules trust their options.

Models never read configs. From Python: ``ModelOptions(decoder="bahdanau",
attention="additive")``, or the shorthands ``Seq2Seq.create(src_vocab_size=...,
tgt_vocab_size=..., **options)``, ``Attention.create(**options)`` and
``make_score(name, **options)``.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Hashable, Mapping
from typing import Any

# model.dtype names (ModelOptions.compute_dtype: the jax.numpy dtype of that name).
DTYPES = ("float32", "bfloat16")


@dataclasses.dataclass(frozen=True, kw_only=True)
class ModelOptions:
  """Every option of a Seq2Seq and of its attention (see the module docstring); the defaults
  are those of every experiment (``attnlab.defaults.base_config``)."""

  # ---- encoder and decoder (attnlab.models)
  # Recurrent cell: rnn, gru or lstm.
  cell: str = "gru"
  # Embedding width (source and target).
  emb_dim: int = 32
  # Recurrent width (encoder per direction, and decoder).
  hidden_dim: int = 64
  # Stacked recurrent layers.
  encoder_layers: int = 1
  decoder_layers: int = 1
  # Bidirectional encoder (outputs [batch, src_len, 2 * hidden_dim]).
  bidirectional: bool = True
  # Decoder style: bahdanau, luong or none (no attention: RNNencdec).
  decoder: str = "luong"
  # Score function (attnlab.attention.SCORES): dot, scaled_dot, general, concat,
  # additive, additive_normalized, location, cosine.
  attention: str = "general"
  # Attention mechanism (attnlab.attention.MECHANISMS): global (soft, everywhere), local_m /
  # local_p (Luong 2015 windows), hard (Xu 2015, one sampled position), monotonic (Raffel 2017).
  mechanism: str = "global"
  # local_m / local_p: window half-width D, the window is [p_t - D, p_t + D]; local_p's
  # Gaussian has sigma = D / 2 (Luong et al. 2015 use D = 10).
  local_window: int = 10
  # hard: training estimator, reinforce (score function + moving-average baseline +
  # entropy bonus) or gumbel (straight-through Gumbel-softmax); evaluation takes the argmax.
  hard_estimator: str = "reinforce"
  # hard + gumbel: temperature of the relaxed sample behind the straight-through gradient.
  hard_temperature: float = 1.0
  # hard + reinforce: weight of the attention-entropy bonus (Xu et al. 2015's lambda_e).
  # Read by the training loss only (attnlab.attention.hard.reinforce_loss).
  hard_entropy_weight: float = 0.01
  # hard + reinforce: decay of the moving-average reward baseline, in [0, 1) (training only).
  hard_baseline_decay: float = 0.9
  # monotonic: std of the Gaussian noise added to the pre-sigmoid energies in training
  # (Raffel et al. 2017, Sec. 2.4: pushes the stopping probabilities towards 0 or 1).
  monotonic_noise: float = 1.0
  # monotonic: initial value of the learned energy bias r (Raffel et al. 2017: -4 for long
  # sources; negative = low stopping probabilities at first, alignments move on).
  monotonic_bias: float = -1.0
  # Attention normalizer (attnlab.attention.NORMALIZERS): softmax, sparsemax, entmax15, hardmax.
  normalizer: str = "softmax"
  # The width d_a of the attention's learned projection of query and keys (Britz et al.
  # 2017's attention_dim); 0 = no width of its own, each score's published form: the additive
  # scores (concat, additive, additive_normalized: v^T tanh(W q + U k)) and local_p's
  # position network are then hidden_dim wide (Bahdanau et al. 2015, Luong et al. 2015),
  # and dot / scaled_dot / general score the raw query and keys (Luong et al. 2015; keys
  # projected to hidden_dim only if d_k differs). When > 0, the additive scores are d_a wide
  # and dot / scaled_dot / general score (W_q q) . (W_k k) in d_a (scaled_dot by sqrt(d_a),
  # general with W_a [d_a, d_a] between them). location and cosine have no projection.
  attention_dim: int = 0
  # location: the longest source it scores (one output per position); 0 = the longest source
  # in the data (attnlab.config.build_model). Raise it to decode longer sources later.
  max_src_len: int = 0
  # location: add a bias, W_a h_t + b (Luong et al. 2015: softmax(W_a h_t), none).
  location_bias: bool = False
  # cosine: tau * cos(q, k), tau the (initial) inverse temperature, > 0; learned (as log tau)
  # unless cosine_learn_temperature=False.
  cosine_temperature: float = 10.0
  cosine_learn_temperature: bool = True
  # Luong input feeding (h~_{t-1} joined to the next decoder input).
  input_feeding: bool = True
  # Initial decoder state: dense (projection of the encoder's final state) or zeros.
  bridge: str = "dense"
  # Multi-head self-attention layers over the encoder outputs.
  encoder_self_attention_layers: int = 0
  # Causal self-attention over the decoder's previous outputs.
  decoder_self_attention: bool = False
  # Heads of both self-attentions.
  num_heads: int = 1
  # Coverage (Tu et al. 2016; See et al. 2017): the decoder carries c_t, the sum of its past
  # attention weights, and feeds it into the scores as a per-key feature (additive scores:
  # v^T tanh(W q + U k_i + w_c c_ti + b)). Needs an attention decoder.
  coverage: bool = False
  # Copy attention (pointer-generator, See et al. 2017): p_gen = sigmoid(w . [context; state;
  # input] + b) mixes the vocabulary distribution with the attention weights over the source,
  # P(w) = p_gen P_vocab(w) + (1 - p_gen) sum_{i: x_i = w} a_i, over the target vocabulary
  # extended by each example's source words outside it, so names and numbers the target
  # vocabulary lacks can be copied. Needs an attention decoder and label_smoothing = 0.
  copy: bool = False
  # Dropout rate (embeddings, between layers, before the output layer).
  dropout_rate: float = 0.0
  # Computation dtype of activations and matmuls: float32 or bfloat16 (mixed precision:
  # parameters, optimizer state, the softmax over the vocabulary and the loss stay float32).
  dtype: str = "float32"
  # Rematerialize the scanned encoder and decoder steps (jax.checkpoint on each scan body):
  # training keeps only the per-step carries and recomputes the rest in the backward pass,
  # so memory stays bounded for sources of hundreds of tokens, for ~30% more compute.
  remat: bool = False

  # ---- options that no field above names: (name, value) pairs, sorted (``get``).
  # A mapping is accepted too. Not a config key: build_model fills it.
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
  def compute_dtype(self) -> Any:
    """``dtype`` as the jax.numpy dtype of that name (``jnp.float32``, ``jnp.bfloat16``)."""
    import jax.numpy as jnp  # here: configs import this module, and never JAX
    return getattr(jnp, self.dtype)

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


def defaults() -> dict[str, Any]:
  """{field name: default} of every option, in declaration order (``extra`` left out): the
  config's model section (``attnlab.defaults.base_config``)."""
  return {f.name: f.default for f in dataclasses.fields(ModelOptions) if f.name != "extra"}


def _frozen(value: Any) -> Any:
  """Lists / tuples -> tuples, mappings -> sorted (key, value) tuples, recursively (what a
  ConfigDict holds); anything else unchanged."""
  if isinstance(value, Mapping):
    return tuple(sorted((k, _frozen(v)) for k, v in value.items()))
  if isinstance(value, (list, tuple)):
    return tuple(_frozen(v) for v in value)
  return value


# ---------------------------------------------------------------- checks
# What a registry entry and attnlab.config say about an option's values. A value check's
# ``problem(value)`` and a requirement's ``problem(options)`` return what is wrong, or None;
# attnlab.config turns that into one ConfigError naming the key.


@dataclasses.dataclass(frozen=True)
class Integer:
  """An integer >= ``low`` (never True or False)."""

  low: int

  def problem(self, value: Any) -> str | None:
    if isinstance(value, bool) or not isinstance(value, int) or value < self.low:
      return f"must be an integer >= {self.low}, got {value!r}"
    return None


@dataclasses.dataclass(frozen=True)
class Real:
  """A finite number in ``interval``, written ``"[0, 1)"`` (``inf`` for no bound; never True
  or False)."""

  interval: str

  def problem(self, value: Any) -> str | None:
    if (isinstance(value, bool) or not isinstance(value, (int, float))
        or not math.isfinite(value) or not in_interval(value, self.interval)):
      return f"must be a finite number {_describe(self.interval)}".rstrip() + f", got {value!r}"
    return None


@dataclasses.dataclass(frozen=True)
class OneOf:
  """One of ``choices``."""

  choices: tuple

  def problem(self, value: Any) -> str | None:
    if value not in self.choices:
      return f"unknown value {value!r}; valid choices: {', '.join(sorted(self.choices))}"
    return None


@dataclasses.dataclass(frozen=True)
class Flag:
  """True or False."""

  def problem(self, value: Any) -> str | None:
    return None if isinstance(value, bool) else f"must be True or False, got {value!r}"


@dataclasses.dataclass(frozen=True)
class Requires:
  """A condition on several options, of the variant that carries it: ``holds(options)`` (the
  flat model options) or ``message``, blamed on the option ``name``."""

  name: str
  holds: Callable[[Mapping[str, Any]], bool]
  message: str

  def problem(self, options: Mapping[str, Any]) -> str | None:
    return None if self.holds(options) else self.message


def in_interval(value: float, interval: str) -> bool:
  """Whether ``value`` lies in ``interval``, written as ``"[0, 1)"`` (``inf`` for no bound)."""
  low, high = (float(bound) for bound in interval[1:-1].split(","))
  above = low <= value if interval[0] == "[" else low < value
  below = value <= high if interval[-1] == "]" else value < high
  return above and below


def _describe(interval: str) -> str:
  """``"[0, inf)"`` -> ``">= 0"``, ``"(0, inf)"`` -> ``"> 0"``, else ``"in [0, 1)"``."""
  low, high = (bound.strip() for bound in interval[1:-1].split(","))
  if high == "inf" and low != "-inf":
    return (">= " if interval[0] == "[" else "> ") + low
  return "" if low == "-inf" and high == "inf" else f"in {interval}"
