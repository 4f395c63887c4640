"""A score function registered outside attnlab, as a user's own module would be: named from a
config through ``config.imports`` (tests/test_config_imports.py). Its option
``toy_plugin_scale`` is checked by its registry entry, at the config boundary."""

import flax.linen as nn
import jax.numpy as jnp

from attnlab.attention import Score, register_score
from attnlab.options import Real


@register_score("toy_plugin_dot")
class ToyPluginDot(Score):
  """toy_plugin_scale * q . k (d_q == d_k: the decoder projects the keys to fit)."""

  requires_equal_dims = True
  option_checks = {"toy_plugin_scale": Real("(0, inf)")}

  @nn.compact
  def score(self, query, projected_keys):
    """query: [batch, q_len, d], projected_keys: [batch, k_len, d] -> [batch, q_len, k_len]."""
    scale = self.options.get("toy_plugin_scale", 1.0)
    seen = self.param("seen_scale", nn.initializers.constant(scale), ())  # shows what it read
    return scale * jnp.einsum("bqd,bkd->bqk", query, projected_keys) + 0.0 * seen
