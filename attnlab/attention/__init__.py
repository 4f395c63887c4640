"""Attention variants: score functions, mechanisms, self- and multi-head attention."""

from attnlab.attention.masks import causal_mask, length_mask
from attnlab.attention.mechanisms import (MECHANISMS, NORMALIZERS,
                                          Attention, AttentionMemory, CoverageFeature,
                                          Mechanism,
                                          get_mechanism, get_normalizer,
                                          global_attention, masked_softmax,
                                          mechanism_names, register_mechanism,
                                          register_normalizer, weighted_sum)
# The mechanism families and the sparse normalizers register themselves on import.
from attnlab.attention import hard, local, monotonic, normalizers  # noqa: E402,F401  isort: skip
from attnlab.attention.hard import HARD_ESTIMATORS  # noqa: E402  isort: skip
from attnlab.attention.multihead import (MultiHeadAttention, SelfAttention,
                                         dot_product_attention)
from attnlab.attention.scores import (SCORES, Score, get_score, make_score,
                                      register_score, score_names)
