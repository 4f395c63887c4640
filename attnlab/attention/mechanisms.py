"""How scores become attention weights and a context vector.

A *normalizer* turns scores [batch, q_len, k_len] and a mask into weights (the
``NORMALIZERS`` registry; ``softmax`` is the default). A *mechanism* decides where
a query may look and how (``MECHANISMS``, one registered name each):

* ``global`` soft attention looks everywhere the mask allows (this module);
* ``local_m`` / ``local_p`` look inside a window around a position p_t
  (``attnlab.attention.local``, Luong et al. 2015);
* ``hard`` attends to one sampled source position (``attnlab.attention.hard``,
  Xu et al. 2015);
* ``monotonic`` moves left to right through the source (``attnlab.attention.monotonic``,
  Raffel et al. 2017).

``Attention`` composes a registered score function, a mechanism and a
normalizer, and splits the work into a per-source half (``Attention.prepare``,
run once per source sentence) and a per-query half (``Attention.__call__``, run
at every decoder step). Mechanisms may carry a per-example state from one decoder
step to the next (``Attention.initial_state``; the monotonic alignment) and use
the step index t, an rng stream ``'sample'`` and a train/eval switch
(``deterministic``).

Scores and mechanisms get the model's whole ``attnlab.options.ModelOptions`` and
read their own options from it (``self.options.local_window``); ``Attention``
passes it on untouched.

Adding a mechanism is one Module plus one line::

    @register_mechanism("my_mechanism")
    class MyMechanism(Mechanism):
      def __call__(self, score_fn, query, memory, *, t, state, deterministic):
        scores = score_fn.score(query, memory.keys)  # [batch, q_len, k_len]
        ...
        return context, weights, state

An option of its own is read with a default, ``self.options.get("my_option", 1.0)``,
and set from a config by one line (``c.model.my_option = 1.0``, as for scores). Its valid
values go in the class's ``option_checks`` (``{"my_option": Real("(0, inf)")}``, the check
values of ``attnlab.options``): ``attnlab.config`` checks them once, before anything is built,
and the mechanism trusts what it reads.
"""

from __future__ import annotations

from typing import Any, Callable, ClassVar, Dict, Mapping, Type

import flax
import flax.linen as nn
import jax
import jax.numpy as jnp

from attnlab.attention import masks as masks_lib
from attnlab.attention import scores as scores_lib
from attnlab.options import ModelOptions

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


def score_at(score_fn: scores_lib.Score, query: Array, keys: Array, positions: Array) -> Array:
  """Scores of each query against the keys at chosen positions only.

  Args:
    score_fn: a (bound) ``Score`` module.
    query: [batch, q_len, d_q].
    keys: projected keys [batch, k_len, d'].
    positions: [batch, q_len, n] int in [0, k_len): the keys each query scores.

  Returns:
    scores [batch, q_len, n]; equal to ``score_fn.score(query, keys)`` taken at
    ``positions``. Costs O(n) per query instead of O(k_len), except for
    position-dependent scores (``location``), which are computed in full and
    gathered.
  """
  if score_fn.position_dependent:
    return jnp.take_along_axis(score_fn.score(query, keys), positions, axis=-1)
  batch, q_len, n = positions.shape
  picked = jax.vmap(lambda k, p: k[p])(keys, positions)  # [batch, q_len, n, d']
  # Each (example, query) pair becomes a batch row with one query and its n keys.
  scores = score_fn.score(query.reshape(batch * q_len, 1, query.shape[-1]),
                          picked.reshape(batch * q_len, n, keys.shape[-1]))
  return scores.reshape(batch, q_len, n)


def gather_values(values: Array, positions: Array) -> Array:
  """values: [batch, k_len, d_v], positions: [batch, q_len, n] -> [batch, q_len, n, d_v]."""
  return jax.vmap(lambda v, p: v[p])(values, positions)


def scatter_weights(weights: Array, positions: Array, k_len: int) -> Array:
  """Weights at distinct positions [batch, q_len, n] -> dense weights [batch, q_len, k_len]
  (zero at every position not listed)."""
  batch, q_len, _ = positions.shape
  rows = jnp.arange(batch)[:, None, None]
  cols = jnp.arange(q_len)[None, :, None]
  return jnp.zeros((batch, q_len, k_len), weights.dtype).at[rows, cols, positions].set(weights)


# ---------------------------------------------------------------- mechanisms

MECHANISMS: Dict[str, Type["Mechanism"]] = {}


def register_mechanism(name: str) -> Callable[[Type["Mechanism"]], Type["Mechanism"]]:
  """Class decorator: registers a ``Mechanism`` subclass under ``name``."""

  def wrap(cls):
    if name in MECHANISMS:
      raise ValueError(f"mechanism {name!r} is already registered")
    MECHANISMS[name] = cls
    cls.registered_name = name
    return cls

  return wrap


def mechanism_names() -> tuple[str, ...]:
  """The registered mechanism names, sorted."""
  return tuple(sorted(MECHANISMS))


def get_mechanism(name: str) -> Type["Mechanism"]:
  """The ``Mechanism`` class registered as ``name``; ValueError listing valid names."""
  return _registry_get(MECHANISMS, "mechanism", name)


class Mechanism(nn.Module):
  """Base class of attention mechanisms: where a query looks, given its scores.

  Every mechanism has the one field ``options`` and reads the options it needs:

  Attributes:
    options: the model's ``ModelOptions``. Read here: ``normalizer`` (a
      ``NORMALIZERS`` name; global, local, hard), ``attention_dim`` (hidden
      width of local_p's position network, ``scores.projection_width``),
      ``local_window`` (D, the half-width
      of local windows [p_t - D, p_t + D]; local_p's Gaussian has sigma = D / 2),
      ``hard_estimator`` (hard attention's training estimator, ``reinforce``:
      score function, Williams 1992, or ``gumbel``: straight-through
      Gumbel-softmax, Jang et al. 2017), ``hard_temperature`` (the
      Gumbel-softmax temperature), ``monotonic_noise`` (std of the Gaussian noise
      added to the pre-sigmoid energies while training, Raffel et al. 2017,
      Sec. 2.4; 0 = none), ``monotonic_bias`` (initial value of the learned
      scalar r added to the energies: Raffel et al. 2017 use -4 for long
      sources; negative values lower the initial stopping probabilities, so that
      early alignments do not stick to the first positions) and ``dtype``.
  """

  options: ModelOptions = ModelOptions()

  # The valid values of the options this mechanism reads ({option: attnlab.options check}),
  # checked by attnlab.config before anything is built.
  option_checks: ClassVar[Mapping[str, Any]] = {}
  # Collections this mechanism sows a value into at every decoder step (``self.sow``), which
  # the decoder's scan stacks over time ([batch, tgt_len, ...]).
  sown_collections: ClassVar[tuple[str, ...]] = ()

  # True for mechanisms that carry a per-example state across decoder steps.
  stateful: ClassVar[bool] = False
  # True: under differentiation, recompute the read in the backward pass rather than keep
  # its intermediates (``nn.remat``). Local attention gathers a [2D + 1, d] window of
  # keys and values per step; storing them for every step would cost more memory than
  # global attention's weights, recomputing them costs O(D) per step.
  recompute_in_backward: ClassVar[bool] = False

  @property
  def dtype(self) -> Any:
    """The computation dtype, ``options.compute_dtype``."""
    return self.options.compute_dtype

  def initial_state(self, mask: Array) -> Array:
    """mask [batch, k_len] -> the state before decoder step 0.

    [batch, k_len] float for stateful mechanisms; [batch, 0] for the others
    (nothing to carry, nothing to gather in beam search).
    """
    return jnp.zeros((mask.shape[0], 0), jnp.float32)

  def __call__(self, score_fn: scores_lib.Score, query: Array, memory: AttentionMemory, *,
               t: Array, state: Array, deterministic: bool) -> tuple[Array, Array, Array]:
    """One attention read.

    Args:
      score_fn: the (bound) ``Score`` module; ``score_fn.score(query, memory.keys)``
        gives scores [batch, q_len, k_len], ``score_at`` scores chosen positions only.
      query: [batch, q_len, d_q]; query i is decoder step t + i.
      memory: AttentionMemory (keys [batch, k_len, d'], values [batch, k_len, d_v],
        mask [batch, k_len]).
      t: [batch] int32, the decoder step of the first query.
      state: the mechanism's state (``initial_state``'s shape).
      deterministic: evaluation (no sampling or noise) when True.

    Returns:
      context [batch, q_len, d_v], weights [batch, q_len, k_len], new state.
    """
    raise NotImplementedError


@register_mechanism("global")
class Global(Mechanism):
  """Global soft attention (Bahdanau 2015; Luong 2015 "global"): ``global_attention``."""

  def __call__(self, score_fn, query, memory, *, t, state, deterministic):
    context, weights = global_attention(score_fn.score(query, memory.keys), memory.values,
                                        memory.mask, normalizer=self.options.normalizer)
    return context, weights, state


# ---------------------------------------------------------------- coverage

class CoverageFeature(nn.Module):
  """Feeds the coverage vector into the scores through the projected keys.

  k'_i = k_i + c_i w_c with a learned w_c [d'] (``d'`` the projected key width),
  where c_i = sum_{t' < t} a_{t', i} is the attention key i has received so far
  (Tu et al. 2016; See et al. 2017, eq. 11). For the additive scores this is
  See et al.'s e_i = v^T tanh(W q + U k_i + w_c c_i + b); ``scores`` documents
  what it means for the others. ``w_c`` starts at zero: a coverage model starts
  out scoring exactly as the same model without coverage.
  """

  @nn.compact
  def __call__(self, projected_keys: Array, coverage: Array) -> Array:
    """projected_keys: [batch, k_len, d'], coverage: [batch, k_len] -> [batch, k_len, d']."""
    w_c = self.param("w_c", nn.initializers.zeros, (projected_keys.shape[-1],))
    return projected_keys + coverage[..., None].astype(projected_keys.dtype) * w_c.astype(
        projected_keys.dtype)


# ---------------------------------------------------------------- Attention

class Attention(nn.Module):
  """A registered score function + mechanism + normalizer.

  Attributes:
    options: the model's ``ModelOptions``, handed whole to the score and the
      mechanism. Read here: ``attention`` (a ``scores.SCORES`` name: ``dot``,
      ``additive``...), ``mechanism`` (a ``MECHANISMS`` name: ``global``,
      ``local_m``, ``local_p``, ``hard``, ``monotonic``), ``normalizer`` (a
      ``NORMALIZERS`` name) and ``coverage`` (score with the coverage vector as an
      extra per-key feature, ``CoverageFeature``; ``__call__`` then takes
      ``coverage=`` [batch, k_len]).

  ``Attention.create(attention="additive", mechanism="local_p", local_window=4)`` is
  ``Attention(options=ModelOptions(...))`` in one go.
  """

  options: ModelOptions = ModelOptions()

  @classmethod
  def create(cls, **options) -> "Attention":
    """``Attention(options=ModelOptions(**options))``."""
    return cls(options=ModelOptions(**options))

  def setup(self):
    o = self.options
    self.score_fn = scores_lib.get_score(o.attention)(options=o)
    self.mechanism_fn = get_mechanism(o.mechanism)(options=o)
    self.coverage_feature = CoverageFeature() if o.coverage else None

  def prepare(self, keys: Array, values: Array | None = None,
              mask: Array | None = None) -> AttentionMemory:
    """keys: [batch, k_len, d_k], values: [batch, k_len, d_v] (default: keys),
    mask: [batch, k_len] (default: all True) -> AttentionMemory."""
    values = keys if values is None else values
    if mask is None:
      mask = jnp.ones(keys.shape[:2], bool)
    return AttentionMemory(keys=self.score_fn.project_keys(keys), values=values,
                           mask=jnp.asarray(mask, bool))

  def initial_state(self, mask: Array) -> Array:
    """mask [batch, k_len] -> the mechanism's state before the first query
    ([batch, k_len] for ``monotonic``, [batch, 0] for stateless mechanisms)."""
    return self.mechanism_fn.initial_state(jnp.asarray(mask, bool))

  def __call__(self, query: Array, memory: AttentionMemory, *, t: Array | None = None,
               state: Array | None = None, deterministic: bool = True,
               return_state: bool = False, coverage: Array | None = None):
    """Attend with ``query`` over ``memory``.

    Args:
      query: [batch, q_len, d_q]; query i is decoder step t + i.
      memory: AttentionMemory from ``prepare``.
      t: [batch] int, the decoder step of the first query (default 0; local_m).
      state: the mechanism's state (default ``initial_state(memory.mask)``).
      coverage: [batch, k_len] float, the attention each key has received so far
        (``coverage=True`` only; default zeros). All q_len queries see the same one.
      deterministic: evaluation mode: hard attention takes the argmax, monotonic
        attention decodes hard; training mode samples (rng stream ``'sample'``).
      return_state: also return the new state.

    Returns:
      context [batch, q_len, d_v], weights [batch, q_len, k_len] (and the new state).
    """
    if t is None:
      t = jnp.zeros(query.shape[:1], jnp.int32)
    if state is None:
      state = self.initial_state(memory.mask)
    if self.options.coverage:
      if coverage is None:
        coverage = jnp.zeros(memory.mask.shape, jnp.float32)
      # Per step O(k_len * d'): the keys shift by c_i w_c (the U k half stays per source).
      memory = memory.replace(keys=self.coverage_feature(memory.keys, coverage))
    elif coverage is not None and coverage.shape[-1]:
      raise ValueError("coverage given to an Attention built with coverage=False")
    def read(module, query, memory, t, state):
      return module.mechanism_fn(module.score_fn, query, memory, t=t, state=state,
                                 deterministic=deterministic)

    if self.mechanism_fn.recompute_in_backward and not self.is_initializing():
      read = nn.remat(read)
    context, weights, state = read(self, query, memory, jnp.asarray(t, jnp.int32), state)
    return (context, weights, state) if return_state else (context, weights)

  def attend(self, query: Array, keys: Array, values: Array | None = None,
             mask: Array | None = None, **kwargs) -> tuple[Array, Array]:
    """``prepare`` then ``__call__`` in one go (keys used once); kwargs go to ``__call__``."""
    return self(query, self.prepare(keys, values, mask), **kwargs)
