"""The same numbers: the date task's losses at steps 1..50 and its test metrics, against the
committed golden file (regenerate with ``python tests/golden/regenerate_date.py`` only for a
change meant to change them).

Exact where it is exact: two runs in one process (one machine, one XLA build) are equal
bitwise. Across machines they need not be: on a second 2-core machine (jax/jaxlib 0.10.2), 25
of the 50 logged training losses differed from the golden file by 1-2 float32 ulps (at most
6.6e-7 relative; step 9: 3.168107509613037 vs 3.168107271194458) while the test metrics after
step 50 were equal bitwise (so were the parameters, it seems: only the reported loss's sum
was rounded differently); hence ``RTOL`` against the file. On that machine no run differed
from another by a bit: under load (four busy processes beside it), on one core (``taskset
-c 0``), or with the XLA CPU flags tried (``--xla_cpu_multi_thread_eigen=false``,
``--xla_cpu_max_isa=AVX2``, ``--xla_cpu_prefer_vector_width=256``,
``--xla_cpu_enable_platform_dependent_math=true``); ``--xla_cpu_use_fusion_emitters=false``
changes the numbers (another code path), not towards the file's.
"""

import json
import pathlib
import sys

import pytest

sys.path.insert(0, str(pathlib.Path(__file__).parent / "golden"))
import regenerate_date  # noqa: E402

# Tolerance against the golden file, made on another machine: over 10x the largest difference
# measured between two machines (6.6e-7 to 8.2e-7), far below what a change to the model, the data
# order or the optimizer moves (the losses fall by ~1% a step).
RTOL = 1e-5


def test_date_losses_and_metrics_equal_the_golden_file(tmp_path):
  golden = json.loads(regenerate_date.GOLDEN.read_text())
  result = json.loads(json.dumps(regenerate_date.run(str(tmp_path / "date"))))
  again = json.loads(json.dumps(regenerate_date.run(str(tmp_path / "again"))))
  assert again == result  # bitwise: floats round-trip through JSON
  assert len(result["losses"]) == len(golden["losses"]) == regenerate_date.STEPS
  assert result["losses"] == pytest.approx(golden["losses"], rel=RTOL, abs=0)
  assert result["test"].keys() == golden["test"].keys()
  assert result["test"] == pytest.approx(golden["test"], rel=RTOL, abs=1e-12)
