"""experiments.benchmark_products on the seed's small shape: the census, each product's limit
and the bound are consistent (nothing here times anything against a target)."""

import json
import subprocess
import sys

import pytest

from experiments import benchmark_limits, benchmark_products, flops
from tests.experiments.test_benchmark import REPO


def test_the_bound_is_the_products_at_their_own_limits():
  row = benchmark_products.bound("date", "float32", steps=1, rounds=1)
  products = {(r["b"], r["m"], r["k"], r["n"]): r["per_step"] for r in row["products"]}
  assert row["gflop"] * 1e9 == pytest.approx(flops.product_flop(products))
  assert sum(r["per_step"] for r in row["products"]) == row["products_per_step"]
  for r in row["products"]:
    assert r["seconds"] == pytest.approx(r["gflop"] / r["limit_gflop_per_s"])
  assert row["products_seconds"] == pytest.approx(sum(r["seconds"] for r in row["products"]))
  assert row["bound_gflop_per_s"] == pytest.approx(row["gflop"] / row["products_seconds"])
  assert row["of_bound"] == pytest.approx(row["steps_per_s"] * row["products_seconds"])
  # The output projection, [batch * tgt_len, hidden] x [hidden, vocab], once a step forward.
  _, _, batch, _, tgt_len, _, vocab = benchmark_limits.SHAPES["date"]
  hidden = benchmark_limits.config_of("date", "float32").model.hidden_dim
  assert products[(1, batch * tgt_len, hidden, vocab)] == 1
  # The decoder's recurrent product runs once per target step: a count of tgt_len or more.
  assert max(products.values()) >= tgt_len


def test_product_limit_is_positive_and_batched():
  assert benchmark_products.product_limit((3, 16, 8, 12), "float32", rounds=1,
                                          min_flop=1e5) > 0


def test_unknown_shape_is_one_line_and_exit_2():
  result = subprocess.run([sys.executable, "-m", "experiments.benchmark_products", "--shapes",
                           "nope"], cwd=REPO, capture_output=True, text=True)
  assert result.returncode == 2
  assert result.stderr.strip().startswith("error:") and len(result.stderr.splitlines()) == 1


@pytest.mark.slow
def test_the_command_writes_its_json(tmp_path):
  out = tmp_path / "products.json"
  subprocess.run([sys.executable, "-m", "experiments.benchmark_products", "--shapes", "date",
                  "--steps", "1", "--rounds", "1", "--out", str(out)], cwd=REPO, check=True,
                 capture_output=True)
  result = json.loads(out.read_text())
  assert [r["shape"] for r in result["rows"]] == ["date"] and result["rows"][0]["products"]
