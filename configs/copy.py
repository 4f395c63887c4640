"""Copy a random symbol sequence: `a b c` -> `a b c` (alignment: the diagonal).

    python -m attnlab.main --config configs/copy.py --workdir /tmp/copy
"""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import reverse  # noqa: E402  (configs/reverse.py: same settings, other task)


def get_config(arg: str | None = None):
  config = reverse.get_config(arg)
  config.data.task = "copy"
  return config
