"""attnlab: attention variants in recurrent sequence-to-sequence models (JAX/Flax)."""

__version__ = "0.1.0"
