"""configs/date.py:quick with a score function defined outside attnlab
(tests/plugins/toy_plugin_score.py), named through ``config.imports``: like every config file
this one imports ml_collections and attnlab.defaults only, never JAX or the plug-in itself."""

import pathlib

from attnlab.defaults import load_config_file


def get_config(arg=None):
  del arg
  date = load_config_file(pathlib.Path(__file__).resolve().parents[2] / "configs" / "date.py")
  config = date.get_config("quick")
  config.imports = ("toy_plugin_score",)
  config.model.attention = "toy_plugin_dot"
  config.model.toy_plugin_scale = 2.0  # the score's own option (an extra option)
  return config
