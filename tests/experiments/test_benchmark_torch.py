"""experiments.benchmark_torch: PyTorch eager against attnlab, side by side. PyTorch is not a
dependency: without it the command is one line saying how to install it (exit 2), and the
tests that run it skip (pip install -e .[torch] to run them)."""

import json
import subprocess
import sys

import pytest

from tests.experiments.test_benchmark import REPO

# The command as it runs where PyTorch is not installed: importing torch fails (an import hook;
# sys.modules["torch"] = None would break scipy, which looks torch up there).
HIDE_TORCH = """
import runpy, sys
class NoTorch:
  def find_spec(self, name, path=None, target=None):
    if name.split(".")[0] == "torch":
      raise ImportError("No module named 'torch'")
sys.meta_path.insert(0, NoTorch())
sys.argv[1:] = ["--quick"]
runpy.run_module("experiments.benchmark_torch", run_name="__main__")
"""


def test_without_torch_is_one_line_saying_how_to_install_it():
  result = subprocess.run([sys.executable, "-c", HIDE_TORCH], cwd=REPO, capture_output=True,
                          text=True)
  assert result.returncode == 2, result.stderr
  assert len(result.stderr.splitlines()) == 1
  assert result.stderr.startswith("error: PyTorch is not installed: pip install torch")


@pytest.mark.slow
def test_quick_run_writes_its_json(tmp_path):
  pytest.importorskip("torch", reason="PyTorch is optional (pip install -e .[torch])")
  from experiments import benchmark_torch
  out = tmp_path / "torch.json"
  result = benchmark_torch.main(["--quick", "--out", str(out)])
  assert json.loads(out.read_text()) == result
  assert result["torch"] and result["torch_threads"] >= 1 and result["jax"] and result["cpu"]
  (row,) = result["rows"]
  assert (row["shape"], row["dtype"], row["batch"]) == ("date", "float32", 8)
  assert row["torch_steps_per_s"] > 0 and row["attnlab_steps_per_s"] > 0
  assert row["ratio"] == pytest.approx(row["attnlab_steps_per_s"] / row["torch_steps_per_s"])
  # --bf16's PyTorch side: autocast to bfloat16 runs (attnlab's bfloat16 step is
  # benchmark_limits', tested there).
  benchmark_torch.torch_step("date", "bfloat16", batch=4)(2)


def test_bad_shape_or_existing_out_is_one_line_and_exit_2(tmp_path, capsys):
  pytest.importorskip("torch", reason="PyTorch is optional (pip install -e .[torch])")
  from experiments import benchmark_torch
  existing = tmp_path / "there.json"
  existing.write_text("{}")
  for args in (["--shapes", "nope"], ["--quick", "--out", str(existing)]):
    with pytest.raises(SystemExit) as exit_:
      benchmark_torch.main(args)
    stderr = capsys.readouterr().err
    assert exit_.value.code == 2 and len(stderr.splitlines()) == 1, stderr
    assert stderr.startswith("error: --")
  assert existing.read_text() == "{}"


def test_the_twin_is_the_configs_model():
  """The PyTorch model follows each shape's config: its output layer is [hidden, tgt vocab],
  its attention the config's score; it trains (the loss falls on one repeated batch)."""
  torch = pytest.importorskip("torch", reason="PyTorch is optional (pip install -e .[torch])")
  from experiments import benchmark_limits, benchmark_torch
  for name in ("multi30k", "kjv", "date"):
    model = benchmark_limits.config_of(name, "float32").model
    _, _, _, _, _, src_vocab, tgt_vocab = benchmark_limits.SHAPES[name]
    twin = benchmark_torch.Seq2Seq(model, src_vocab, tgt_vocab)
    assert tuple(twin.decoder.out.weight.shape) == (tgt_vocab, model.hidden_dim)
    assert hasattr(twin.decoder, "v") == (model.attention == "additive")
  torch.manual_seed(0)
  twin = benchmark_torch.Seq2Seq(benchmark_limits.config_of("date", "float32").model, 14, 24)
  src, tgt = torch.randint(4, 14, (4, 8)), torch.randint(4, 24, (4, 6))
  optimizer = torch.optim.Adam(twin.parameters(), lr=1e-2)
  losses = []
  for _ in range(20):
    optimizer.zero_grad()
    loss = torch.nn.functional.cross_entropy(twin(src, tgt).reshape(-1, 24), tgt.reshape(-1))
    loss.backward()
    optimizer.step()
    losses.append(loss.item())
  assert losses[-1] < 0.5 * losses[0]
