"""Vocabulary and special tokens: the single source of truth for token ids.

Every part of attnlab (batching, models, decoding, metrics) takes PAD/BOS/EOS/UNK from here.
PAD is 0 so that zero-initialised arrays are already padding.
"""

from __future__ import annotations

import collections
import dataclasses
import json
from collections.abc import Iterable, Sequence

PAD, BOS, EOS, UNK = 0, 1, 2, 3
SPECIALS = ("<pad>", "<s>", "</s>", "<unk>")


@dataclasses.dataclass(frozen=True)
class Vocab:
  """An immutable token <-> id mapping whose first entries are `SPECIALS`.

  Attributes:
    tokens: all tokens, `tokens[i]` has id `i`; `tokens[:4] == SPECIALS` (PAD, BOS, EOS, UNK).
  """

  tokens: tuple[str, ...]
  _ids: dict[str, int] = dataclasses.field(init=False, repr=False, compare=False)

  def __post_init__(self):
    tokens = tuple(self.tokens)
    if tokens[: len(SPECIALS)] != SPECIALS:
      raise ValueError(f"a Vocab must start with the special tokens {SPECIALS}, got {tokens[:4]}")
    if not all(isinstance(t, str) for t in tokens):
      raise ValueError("every vocabulary token must be a str")
    ids = {token: i for i, token in enumerate(tokens)}
    if len(ids) != len(tokens):
      duplicates = sorted(t for t, n in collections.Counter(tokens).items() if n > 1)
      raise ValueError(f"duplicate vocabulary tokens: {duplicates[:10]}")
    object.__setattr__(self, "tokens", tokens)
    object.__setattr__(self, "_ids", ids)

  @classmethod
  def build(
      cls,
      token_lists: Iterable[Sequence[str]],
      min_freq: int = 1,
      max_size: int | None = None,
  ) -> Vocab:
    """Builds a vocabulary from tokenized sentences.

    Order: the specials, then tokens by frequency descending, ties broken alphabetically, so the
    result depends only on the token counts.

    Args:
      token_lists: sentences, each a sequence of tokens. Special-token strings in the data are
        not counted (they are always present).
      min_freq: tokens seen fewer times are left out (they encode to UNK).
      max_size: largest total size, specials included; None for no limit.

    Returns:
      The vocabulary.
    """
    if min_freq < 1:
      raise ValueError(f"min_freq must be >= 1, got {min_freq}")
    if max_size is not None and max_size < len(SPECIALS):
      raise ValueError(f"max_size must be >= {len(SPECIALS)} (the specials), got {max_size}")
    counts = collections.Counter(token for tokens in token_lists for token in tokens)
    for special in SPECIALS:
      counts.pop(special, None)
    kept = sorted((t for t, n in counts.items() if n >= min_freq), key=lambda t: (-counts[t], t))
    if max_size is not None:
      kept = kept[: max_size - len(SPECIALS)]
    return cls(SPECIALS + tuple(kept))

  def __len__(self) -> int:
    return len(self.tokens)

  def __contains__(self, token: object) -> bool:
    return token in self._ids

  def index(self, token: str) -> int:
    """The id of `token`; raises ValueError when it is not in the vocabulary."""
    try:
      return self._ids[token]
    except KeyError:
      raise ValueError(f"token {token!r} is not in the vocabulary") from None

  def encode(self, tokens: Iterable[str]) -> list[int]:
    """Maps tokens `[len]` to ids `[len]`; unknown tokens become UNK. Adds no BOS/EOS."""
    return [self._ids.get(token, UNK) for token in tokens]

  def decode(self, ids: Iterable[int], oovs: Sequence[str] | None = None) -> list[str]:
    """Maps ids `[len]` (a list or a 1-D array) back to tokens.

    Stops at the first EOS and skips PAD and BOS, so a decoder's padded output row decodes to
    the sentence alone. UNK decodes to "<unk>".

    Args:
      ids: token ids; with `oovs`, ids of the extended vocabulary (see `token`).
      oovs: a copy model's per-example source OOVs (`source_oovs`); None: ids must be in range.
    """
    tokens = []
    for i in ids:
      i = int(i)
      if i == EOS:
        break
      if i in (PAD, BOS):
        continue
      tokens.append(self.token(i, oovs))
    return tokens

  # ------------------------------------------------------------ extended vocabulary (copying)
  # A copy model (pointer-generator, See et al. 2017) predicts over this vocabulary extended by
  # the source words of one example that it lacks: id len(self) + k is that example's k-th OOV.

  def source_oovs(self, tokens: Iterable[str]) -> tuple[str, ...]:
    """The distinct tokens of one source sentence `[src_len]` that this vocabulary lacks, in
    order of first appearance: the example's extended-vocabulary slots (at most src_len)."""
    return tuple(dict.fromkeys(t for t in tokens if t not in self._ids))

  def encode_extended(self, tokens: Iterable[str], oovs: Sequence[str]) -> list[int]:
    """Maps tokens `[len]` to extended ids `[len]`: a token of the vocabulary keeps its id, the
    k-th of `oovs` gets `len(self) + k`, any other token is UNK."""
    slots = {token: len(self.tokens) + k for k, token in enumerate(oovs)}
    return [self._ids.get(token, slots.get(token, UNK)) for token in tokens]

  def token(self, i: int, oovs: Sequence[str] | None = None) -> str:
    """The token of id `i`; with `oovs`, of extended id `i` (an unused slot reads "<unk>")."""
    i = int(i)
    if 0 <= i < len(self.tokens):
      return self.tokens[i]
    if oovs is not None and i >= len(self.tokens):
      k = i - len(self.tokens)
      return oovs[k] if k < len(oovs) else SPECIALS[UNK]
    raise ValueError(f"id {i} is out of range for a vocabulary of size {len(self.tokens)}")

  def to_json(self) -> str:
    """Serialises to a JSON string (UTF-8 text kept readable)."""
    return json.dumps({"tokens": list(self.tokens)}, ensure_ascii=False)

  @classmethod
  def from_json(cls, s: str) -> Vocab:
    """Inverse of `to_json`."""
    try:
      data = json.loads(s)
      tokens = data["tokens"]
    except (json.JSONDecodeError, KeyError, TypeError) as e:
      raise ValueError(f"not a serialised Vocab (expected {{\"tokens\": [...]}}): {e}") from None
    return cls(tuple(tokens))
