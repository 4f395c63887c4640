"""The same numbers: the date task's losses at steps 1..50 and its test metrics equal the
committed golden file bitwise (regenerate with ``python tests/golden/regenerate_date.py``
only for a change meant to change them)."""

import json
import pathlib
import sys

sys.path.insert(0, str(pathlib.Path(__file__).parent / "golden"))
import regenerate_date  # noqa: E402


def test_date_losses_and_metrics_equal_the_golden_file(tmp_path):
  golden = json.loads(regenerate_date.GOLDEN.read_text())
  result = json.loads(json.dumps(regenerate_date.run(str(tmp_path / "date"))))
  assert result["losses"] == golden["losses"]  # bitwise: floats round-trip through JSON
  assert result["test"] == golden["test"]
