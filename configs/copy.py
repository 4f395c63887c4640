"""Copy a random symbol sequence: `a b c` -> `a b c` (alignment: the diagonal).

    python -m attnlab.main --config configs/copy.py --workdir /tmp/copy

The settings of `configs/reverse.py` (same arguments: `:quick`), with the copy task.
"""

import os

from attnlab.defaults import load_config_file

reverse = load_config_file(os.path.join(os.path.dirname(os.path.abspath(__file__)), "reverse.py"))


def get_config(arg: str | None = None):
  config = reverse.get_config(arg)
  config.data.task = "copy"
  return config
