"""Score functions: how well a query matches each key.

Every score function is a linen Module registered under its name in ``SCORES``;
configs and sweeps select one with a string (``make_score('additive', ...)``).

Shapes (a decoder step uses ``q_len = 1``)::

    query: [batch, q_len, d_q]
    keys:  [batch, k_len, d_k]
    ->     [batch, q_len, k_len]

Each score splits into two halves so that decoders do not repeat work at every
step:

* ``project_keys(keys)`` depends on the source only and is computed once per
  source sequence (for ``additive`` this is ``U k``, Bahdanau et al. 2015, eq. A.1);
* ``score(query, projected_keys)`` runs at every decoder step.

``__call__(query, keys)`` is the two composed. Every score module has one field,
``options``: the whole ``attnlab.options.ModelOptions`` of the model, from which
each reads its own options (``attention_dim``, ``max_src_len``, ``location_bias``,
``cosine_temperature``...), so a model builds any of them the same way and nothing
between the config and the score relays an option.

``options.attention_dim`` is the width d_a of the score's learned projection of query and
keys, 0 for none of its own (each score's published form). The additive scores (``concat``,
``additive``, ``additive_normalized``) are a projection by definition: d_a wide, or
``hidden_dim`` at 0 (``projection_width``). The multiplicative scores (``dot``,
``scaled_dot``, ``general``) project only when d_a > 0: then query and keys both go to
``attention_dim`` first,
Britz et al. (2017)'s multiplicative attention, score(q, k) = (W_q q) . (W_k k) with
no bias (``W_k k`` once per source in ``project_keys``, ``W_q q`` at every step), so
the attention width varies independently of the recurrent width and d_q may differ
from d_k; ``scaled_dot`` then divides by sqrt(attention_dim) and ``general`` puts its
W_a [attention_dim, attention_dim] between them, (W_q q)^T W_a (W_k k). At 0 (the
default), they score the raw query and keys as Luong et al. (2015) do and have no
projection. (``local_p``'s position network is ``projection_width`` wide too,
``attnlab.attention.local``; ``location`` and ``cosine`` have no projection.)

Coverage (Tu et al. 2016; See et al. 2017) enters every score through the keys:
``ModelOptions(coverage=True)`` shifts each projected key by a learned vector times its
coverage, k'_i + c_i w_c (``mechanisms.CoverageFeature``), before ``score``. For
``concat`` / ``additive`` / ``additive_normalized`` that is exactly See et al.'s
e_i = v^T tanh(W q + U k_i + w_c c_i + b); for ``dot`` / ``scaled_dot`` /
``general`` / ``cosine`` it adds a query-dependent coverage term
(q . (k_i + c_i w_c) = q . k_i + c_i (q . w_c), q and k_i projected first when
``attention_dim`` is set, so w_c has the projected width); ``location`` keeps one zero
channel as its projected keys and adds it to its scores (e_i = (W_a q)_i + w_c c_i).
A new score function needs nothing extra for coverage.

Adding a score function is one Module plus one line::

    @register_score("my_score")
    class MyScore(Score):
      def score(self, query, projected_keys): ...

Its own option, if it has one, is read from the options with a default,
``self.options.get("my_score_scale", 1.0)``, and set from a config by adding
``c.model.my_score_scale = 1.0`` (every ``config.model`` key that names no ``ModelOptions``
field reaches the modules as an extra option; ``ModelOptions(extra={...})`` from Python).
Its valid values go in ``option_checks = {"my_score_scale": Real("(0, inf)")}``, checked by
``attnlab.config`` before anything is built. A score defined outside attnlab is named from a
config that lists its module in ``config.imports``.
"""

from __future__ import annotations

import math
from typing import Any, Callable, ClassVar, Dict, Mapping, Type

import flax.linen as nn
import jax
import jax.numpy as jnp

from attnlab.options import Flag, Integer, ModelOptions, Real

Array = jax.Array

SCORES: Dict[str, Type["Score"]] = {}


def register_score(name: str) -> Callable[[Type["Score"]], Type["Score"]]:
  """Class decorator: registers a ``Score`` subclass under ``name``."""

  def wrap(cls):
    if name in SCORES:
      raise ValueError(f"score function {name!r} is already registered")
    SCORES[name] = cls
    cls.registered_name = name
    return cls

  return wrap


def score_names() -> tuple[str, ...]:
  """The registered score names, sorted."""
  return tuple(sorted(SCORES))


def get_score(name: str) -> Type["Score"]:
  """The ``Score`` class registered as ``name``; ValueError listing valid names."""
  try:
    return SCORES[name]
  except KeyError:
    raise ValueError(
        f"unknown score function {name!r}; valid score functions: "
        f"{', '.join(score_names())}") from None


def projection_width(options: ModelOptions) -> int:
  """The width of a projection that a score (or local_p's position network) cannot do
  without: ``attention_dim``, or ``hidden_dim`` when it is 0 (the additive scores'
  published form, Bahdanau et al. 2015)."""
  return options.attention_dim or options.hidden_dim


def make_score(name: str, **options) -> "Score":
  """The score Module registered as ``name``, its options ``ModelOptions(**options)``
  (e.g. ``make_score("cosine", cosine_temperature=3.0)``)."""
  return get_score(name)(options=ModelOptions(attention=name, **options))


class Score(nn.Module):
  """Base class of all score functions.

  Attributes:
    options: the model's ``ModelOptions``; each score reads its own fields:
      ``attention_dim`` (hidden width of ``concat``, ``additive`` and
      ``additive_normalized``, ``hidden_dim`` at 0: ``projection_width``; when > 0, the
      width that ``dot``, ``scaled_dot`` and ``general`` project query and keys to),
      ``max_src_len`` (the longest key length ``location`` can score: it predicts
      one score per source position from the query alone), ``location_bias``,
      ``cosine_temperature`` / ``cosine_learn_temperature``, and ``dtype``
      (computation dtype; parameters stay float32).
  """

  options: ModelOptions = ModelOptions()

  # The valid values of the options this score reads ({option: attnlab.options check}),
  # checked by attnlab.config before anything is built.
  option_checks: ClassVar[Mapping[str, Any]] = {}
  # True for scores defined only when d_q == d_k (models project keys to fit), unless
  # ``needs_equal_dims(options)`` says otherwise for the options at hand.
  requires_equal_dims: ClassVar[bool] = False
  # True for scores that depend on a key's position, not only on its vector: scoring a
  # subset of the keys (local windows, one position of hard monotonic decoding) must
  # then score all keys and pick (``mechanisms.score_at``).
  position_dependent: ClassVar[bool] = False

  @classmethod
  def needs_equal_dims(cls, options: ModelOptions) -> bool:
    """Whether this score, built with ``options``, needs d_q == d_k (then a model projects
    its keys to the query width first). ``requires_equal_dims`` unless overridden."""
    del options
    return cls.requires_equal_dims

  @property
  def dtype(self) -> Any:
    """The computation dtype, ``options.compute_dtype``."""
    return self.options.compute_dtype

  def project_keys(self, keys: Array) -> Array:
    """keys: [batch, k_len, d_k] -> projected keys [batch, k_len, d'] (once per source)."""
    return keys

  def score(self, query: Array, projected_keys: Array) -> Array:
    """query: [batch, q_len, d_q], projected keys -> scores [batch, q_len, k_len]."""
    raise NotImplementedError

  def __call__(self, query: Array, keys: Array) -> Array:
    """query: [batch, q_len, d_q], keys: [batch, k_len, d_k] -> [batch, q_len, k_len]."""
    _check_ranks(query, keys)
    return self.score(query, self.project_keys(keys))


def _check_ranks(query: Array, keys: Array) -> None:
  if query.ndim != 3 or keys.ndim != 3:
    raise ValueError(
        f"expected query [batch, q_len, d_q] and keys [batch, k_len, d_k]; got "
        f"shapes {query.shape} and {keys.shape}")


def _dot(query: Array, keys: Array, name: str) -> Array:
  """[batch, q_len, d] x [batch, k_len, d] -> [batch, q_len, k_len]."""
  _check_ranks(query, keys)
  if query.shape[-1] != keys.shape[-1]:
    raise ValueError(
        f"{name!r} scores need d_q == d_k, got d_q={query.shape[-1]} and "
        f"d_k={keys.shape[-1]}; use 'general' or 'additive' for different sizes")
  return jnp.einsum("bqd,bkd->bqk", query, keys)


class _Multiplicative(Score):
  """Shared body of ``dot``, ``scaled_dot`` and ``general``: the optional projection.

  With ``options.attention_dim`` = a > 0, query and keys are projected to a first
  (Britz et al. 2017, "multiplicative attention": <W_1 h_j, W_2 s_i>): kernels ``W_q``
  [d_q, a] and ``W_k`` [d_k, a], no bias; ``project_keys`` returns W_k k [batch, k_len, a]
  once per source and ``score`` projects the query at every step. Unset, both are the
  identity (a = 0) and the module has no projection parameters (Luong et al. 2015).
  """

  requires_equal_dims = True

  @classmethod
  def needs_equal_dims(cls, options):
    # Projected to attention_dim, q and k meet at one width whatever d_q and d_k are.
    return cls.requires_equal_dims and not options.attention_dim

  @property
  def projected(self) -> bool:
    """True when query and keys are projected to ``options.attention_dim``."""
    return bool(self.options.attention_dim)

  def setup(self):
    if self.projected:
      width = self.options.attention_dim
      self.W_q = nn.Dense(width, use_bias=False, dtype=self.dtype)
      self.W_k = nn.Dense(width, use_bias=False, dtype=self.dtype)

  def project_keys(self, keys):
    """keys: [batch, k_len, d_k] -> W_k k [batch, k_len, attention_dim], or keys unchanged."""
    return self.W_k(keys) if self.projected else keys

  def project_query(self, query: Array) -> Array:
    """query: [batch, q_len, d_q] -> W_q q [batch, q_len, attention_dim], or query unchanged."""
    return self.W_q(query) if self.projected else query


@register_score("dot")
class Dot(_Multiplicative):
  """Luong et al. (2015) dot: score(q, k) = q . k; with ``attention_dim``,
  (W_q q) . (W_k k) (Britz et al. 2017's multiplicative attention)."""

  def score(self, query, projected_keys):
    return _dot(self.project_query(query).astype(self.dtype),
                projected_keys.astype(self.dtype), "dot")


@register_score("scaled_dot")
class ScaledDot(_Multiplicative):
  """Vaswani et al. (2017): score(q, k) = q . k / sqrt(d_k); with ``attention_dim`` = a,
  (W_q q) . (W_k k) / sqrt(a)."""

  def score(self, query, projected_keys):
    scores = _dot(self.project_query(query).astype(self.dtype),
                  projected_keys.astype(self.dtype), "scaled_dot")
    # The width the dot product sums over: d_k, or attention_dim when projected.
    return scores / math.sqrt(projected_keys.shape[-1])


@register_score("general")
class General(_Multiplicative):
  """Luong et al. (2015) general (bilinear): score(q, k) = q^T W_a k.

  Computed as (W_a^T q) . k: the query is projected to d_k at each step, which
  costs d_q * d_k per step and lets d_q differ from d_k. Kernel ``W_a``:
  [d_q, d_k].

  With ``attention_dim`` = a, the same bilinear form between the projected query and
  keys: score(q, k) = (W_q q)^T W_a (W_k k), ``W_a`` [a, a], costing a * a per step. As
  a function class this equals the projected ``dot`` (W_q^T W_a W_k is again a rank-a
  bilinear form); it differs by its parameterization, one more linear map, and so its
  initial score scale grows with a just as ``dot``'s does (unscaled).
  """

  requires_equal_dims = False

  @nn.compact
  def score(self, query, projected_keys):
    _check_ranks(query, projected_keys)
    w_query = nn.Dense(projected_keys.shape[-1], use_bias=False, dtype=self.dtype,
                       name="W_a")(self.project_query(query))
    return _dot(w_query, projected_keys.astype(self.dtype), "general")


@jax.checkpoint
def additive_energy(w_query: Array, projected_keys: Array, v: Array) -> Array:
  """v^T tanh(w_query + projected_keys) for every query and key: [batch, q_len, k_len].

  w_query: [batch, q_len, d]; projected_keys: [batch, k_len, d]; v: [d]. The tanh layer,
  [batch, q_len, k_len, d], is recomputed in the backward pass (``jax.checkpoint``) rather
  than kept: one elementwise pass instead of the largest activation of an additive-attention
  model (inside a decoder's scan it would be stacked over every target step).
  """
  hidden = jnp.tanh(w_query[:, :, None, :] + projected_keys[:, None, :, :])
  return jnp.einsum("bqkd,d->bqk", hidden, v)


class _Additive(Score):
  """Shared body of ``concat``, ``additive`` and ``additive_normalized``:

  score(q, k) = v^T tanh(W q + U k [+ b]); ``U k [+ b]`` is the per-source half.
  """

  use_bias: bool = True
  normalize: bool = False

  def setup(self):
    width = projection_width(self.options)
    self.W = nn.Dense(width, use_bias=False, dtype=self.dtype)
    self.U = nn.Dense(width, use_bias=self.use_bias, dtype=self.dtype)
    self.v = self.param("v", nn.initializers.lecun_normal(), (width, 1))
    if self.normalize:
      # tensorflow-addons' BahdanauAttention(normalize=True): g initialised to
      # sqrt(1 / units) (Salimans & Kingma 2016 weight normalisation).
      self.g = self.param("g", nn.initializers.constant(math.sqrt(1.0 / width)), ())

  def project_keys(self, keys):
    return self.U(keys)

  def score(self, query, projected_keys):
    _check_ranks(query, projected_keys)
    v = self.v[:, 0]
    if self.normalize:
      v = self.g * v * jax.lax.rsqrt(jnp.sum(v * v))
    return additive_energy(self.W(query), projected_keys, v.astype(self.dtype))


@register_score("concat")
class Concat(_Additive):
  """Luong et al. (2015) concat: score(q, k) = v^T tanh(W_a [q; k]).

  W_a [q; k] is split as W q + U k (no bias), so U k is computed once per source.
  """

  use_bias: bool = False


@register_score("additive")
class Additive(_Additive):
  """Bahdanau et al. (2015): score(q, k) = v^T tanh(W q + U k + b)."""


@register_score("additive_normalized")
class AdditiveNormalized(_Additive):
  """Bahdanau with weight-normalised v: v = g * v / ||v||, learned scalar g."""

  normalize: bool = True


@register_score("location")
class Location(Score):
  """Luong et al. (2015) location: scores = W_a q, one per source position.

  The keys are used only for their length: ``k_len`` must be at most
  ``max_len`` (``options.max_src_len``). Kernel ``W_a``: [d_q, max_len]; no bias, as
  in the paper, unless ``options.location_bias`` (then W_a q + b, bias [max_len]).
  The projected keys are one zero channel [batch, k_len, 1] added to the scores,
  so that coverage (which shifts projected keys by c_i w_c) gives
  e_i = (W_a q)_i + w_c c_i; without coverage it adds nothing.
  """

  position_dependent = True
  option_checks = {"max_src_len": Integer(0), "location_bias": Flag()}

  def setup(self):
    self.W_a = nn.Dense(self.options.max_src_len, use_bias=self.options.location_bias,
                        dtype=self.dtype)

  def project_keys(self, keys):
    return jnp.zeros(keys.shape[:2] + (1,), self.dtype)  # [batch, k_len, 1]

  def score(self, query, projected_keys):
    _check_ranks(query, projected_keys)
    k_len, max_len = projected_keys.shape[1], self.options.max_src_len
    if k_len > max_len:
      raise ValueError(
          f"'location' scores cover at most max_src_len={max_len} source "
          f"positions, got keys of length {k_len}; raise max_src_len")
    # projected_keys[..., 0]: zero, or w_c c_i under coverage (see the class doc).
    return self.W_a(query)[:, :, :k_len] + projected_keys[:, None, :, 0].astype(self.dtype)


@register_score("cosine")
class Cosine(Score):
  """Cosine similarity times an inverse temperature: tau * q.k / (|q| |k|).

  tau = ``options.cosine_temperature``, learned (as log tau, parameter ``log_tau`` [])
  when ``options.cosine_learn_temperature``.
  """

  requires_equal_dims = True
  option_checks = {"cosine_temperature": Real("(0, inf)"), "cosine_learn_temperature": Flag()}

  def setup(self):
    if self.options.cosine_learn_temperature:
      self.log_tau = self.param("log_tau", nn.initializers.constant(
          math.log(self.options.cosine_temperature)), ())

  def project_keys(self, keys):
    return _l2_normalize(keys.astype(self.dtype))

  def score(self, query, projected_keys):
    cos = _dot(_l2_normalize(query.astype(self.dtype)), projected_keys, "cosine")
    learn = self.options.cosine_learn_temperature
    tau = jnp.exp(self.log_tau) if learn else self.options.cosine_temperature
    return (tau * cos).astype(self.dtype)


def _l2_normalize(x: Array, eps: float = 1e-6) -> Array:
  """x / max(||x||, eps) over the last axis; a zero (padding) vector stays zero."""
  # rsqrt of the clamped squared norm keeps the gradient finite at x = 0
  # (sqrt would give 0 * inf there).
  return x * jax.lax.rsqrt(jnp.maximum(jnp.sum(x * x, axis=-1, keepdims=True), eps * eps))
