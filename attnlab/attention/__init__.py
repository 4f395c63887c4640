"""Attention variants: score functions, mechanisms, self- and multi-head attention."""

from attnlab.attention.masks import causal_mask, length_mask
from attnlab.attention.mechanisms import (MECHANISMS, NORMALIZERS, Attention,
                                          AttentionMemory, get_normalizer,
                                          global_attention, masked_softmax,
                                          mechanism_names, register_normalizer,
                                          weighted_sum)
from attnlab.attention.multihead import (MultiHeadAttention, SelfAttention,
                                         dot_product_attention)
from attnlab.attention.scores import (SCORES, Score, get_score, make_score,
                                      register_score, score_names)
