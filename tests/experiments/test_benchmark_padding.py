"""experiments.benchmark_padding: the padding figures against a hand count, and the training
rate read from a real run's log windows (nothing here times anything against a target)."""

import json
import subprocess
import sys

import pytest

from attnlab.data import Example
from experiments import benchmark_padding
from tests.experiments.test_benchmark import REPO

# (source length, target length): buckets of 2 quantiles are (2, 2) and (4, 6) (target + EOS).
PAIRS = [(1, 1), (2, 1), (3, 5), (4, 2)]
EXAMPLES = [Example(src=("a",) * s, tgt=("b",) * t) for s, t in PAIRS]


def test_padding_counts_each_pairs_padded_bucket():
  row = benchmark_padding.padding(EXAMPLES, EXAMPLES, 2, 1.0)
  assert row["buckets"] == [[2, 2], [4, 6]] and row["pairs"] == [2, 2]
  assert row["src_len"] == 3.0 and row["tgt_len"] == 4.0  # (2+2+4+4)/4, (2+2+6+6)/4
  assert row["src_real"] == pytest.approx(10 / 12)
  assert row["tgt_real"] == pytest.approx(13 / 16)  # targets + EOS: 2+2+6+3 of 16
  assert row["tokens"] == 7.0
  one = benchmark_padding.padding(EXAMPLES, EXAMPLES, 1, 1.0)
  assert one["buckets"] == [[4, 6]] and (one["src_len"], one["tgt_len"]) == (4.0, 6.0)


def test_a_lower_target_quantile_moves_a_long_target_to_a_later_bucket():
  # The pair (1 source, 5 target) no longer pads the first bucket's targets to 6.
  pairs = [(1, 1), (1, 5), (1, 1), (1, 1), (4, 5), (4, 5)]
  examples = [Example(src=("a",) * s, tgt=("b",) * t) for s, t in pairs]
  full = benchmark_padding.padding(examples, examples, 2, 1.0)
  cut = benchmark_padding.padding(examples, examples, 2, 0.75)
  assert full["buckets"] == [[1, 6], [4, 6]] and cut["buckets"] == [[1, 2], [4, 6]]
  assert cut["pairs"] == [3, 3] and cut["tgt_len"] < full["tgt_len"]


@pytest.mark.parametrize("option", ["8", "8:x", "0:0.9", "4:1.5"])
def test_a_bad_option_is_one_line_and_exit_2(option):
  result = subprocess.run([sys.executable, "-m", "experiments.benchmark_padding", "--config",
                           "configs/date.py", "--options", option], cwd=REPO,
                          capture_output=True, text=True)
  assert result.returncode == 2
  assert result.stderr.startswith("error: --options") and len(result.stderr.splitlines()) == 1


@pytest.mark.slow
def test_the_training_rate_comes_from_the_runs_windows_after_the_warmup(tmp_path):
  out = tmp_path / "padding.json"
  subprocess.run([sys.executable, "-m", "experiments.benchmark_padding", "--config",
                  "configs/date.py", "--options", "1:1.0", "--steps", "12", "--log_every", "4",
                  "--warmup", "4", "--out", str(out)], cwd=REPO, check=True,
                 capture_output=True)
  row = json.loads(out.read_text())["rows"][0]
  assert [step for step, _ in row["windows"]] == [4, 8, 12]
  # The windows ending at 8 and 12 start at or after the warm-up: the first holds the compile.
  assert row["steps_per_s"] == pytest.approx((row["windows"][1][1] + row["windows"][2][1]) / 2)
  assert row["steps_per_s"] > 0 and row["buckets"] == [[8, 10]]
