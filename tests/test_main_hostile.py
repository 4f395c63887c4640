"""The command line against a careless or hostile user's workdir and inputs (issue 22): a
checkpoint of another model is a config error that moves nothing; decode never writes over what
it reads; an edited vocab.json is refused by eval and decode alike; a damaged checkpoint falls
back in one line; SIGTERM outside the training loop, long and non-UTF-8 input lines, and a
user's index.html each end in one line. All through `python -m attnlab.main` on date:quick."""

import json
import os
import pathlib
import signal
import subprocess
import sys
import time

sys.path.insert(0, str(pathlib.Path(__file__).parent))
from test_main import ENV, REPO, run_main  # noqa: E402
from test_main_daily_use import (DATE, assert_one_line_error, copy_run,  # noqa: E402,F401
                                 trained)


def _edit_json(path, edit):
  data = json.loads(path.read_text())
  edit(data)
  path.write_text(json.dumps(data))


def _snapshot(folder):
  """{relative path: bytes} of every file under ``folder``."""
  return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*"))
          if p.is_file()}


def test_a_checkpoint_of_another_model_is_a_config_error_and_nothing_is_moved(trained, tmp_path):
  workdir = copy_run(trained, tmp_path)
  original = (workdir / "config.json").read_text()
  _edit_json(workdir / "config.json", lambda c: c["model"].update(hidden_dim=48))
  checkpoints = _snapshot(workdir / "checkpoints")
  for mode in ("eval", "decode"):
    proc = run_main("--workdir", str(workdir), f"--mode={mode}", stdin="98-03-23\n",
                    check=False)
    assert_one_line_error(proc, "checkpoint 20 in")
    assert "holds another model than the config describes" in proc.stderr
    assert "is (96, 32) in the checkpoint, (144, 48) for the config" in proc.stderr
  (workdir / "summary.json").unlink()  # not finished: training restores a checkpoint
  proc = run_main("--config", DATE, "--workdir", str(workdir), "--config.model.hidden_dim=48",
                  check=False)  # training with the edited config: the same error
  assert_one_line_error(proc, "holds another model than the config describes")
  assert _snapshot(workdir / "checkpoints") == checkpoints
  assert not (workdir / "checkpoints_corrupted").exists()
  # With the run's own config back, training resumes from its checkpoint.
  (workdir / "config.json").write_text(original)
  proc = run_main("--config", DATE, "--workdir", str(workdir))
  assert "resumed from step 20" in proc.stderr
  assert json.loads((workdir / "summary.json").read_text())["step"] == 20


def test_decode_never_writes_over_the_files_it_reads(trained, tmp_path):
  before = _snapshot(trained)
  inputs = tmp_path / "in.txt"
  inputs.write_text("98-03-23\n")
  for args, needle in [
      ([f"--alignments={trained / 'config.json'}"], "is a file of --workdir"),
      ([f"--alignment_weights={trained / 'vocab.json'}"], "is a file of --workdir"),
      ([f"--alignments={trained / 'checkpoints' / '20' / '_CHECKPOINT_METADATA'}"],
       "is a file of --workdir"),
      ([f"--input={inputs}", f"--alignments={inputs}"], "is the --input file"),
      ([f"--alignments={tmp_path / 'a'}", f"--alignment_weights={tmp_path / 'a'}"],
       "name the same file"),
      ([f"--heatmaps={trained}"], "is the run's own folder"),
      ([f"--heatmaps={trained / 'checkpoints' / 'x'}"], "inside its checkpoints"),
  ]:
    proc = run_main("--workdir", str(trained), "--mode=decode", *args, stdin="98-03-23\n",
                    check=False)
    assert_one_line_error(proc, needle)
  assert _snapshot(trained) == before and inputs.read_text() == "98-03-23\n"
  assert not (tmp_path / "a").exists()


def test_decode_opens_its_outputs_only_once_the_model_is_restored(trained, tmp_path):
  workdir = copy_run(trained, tmp_path)
  _edit_json(workdir / "config.json", lambda c: c["model"].update(hidden_dim=48))
  outputs = {name: tmp_path / name for name in ("align.txt", "weights.jsonl")}
  for path in outputs.values():
    path.write_text("a user's file\n")
  proc = run_main("--workdir", str(workdir), "--mode=decode",
                  f"--alignments={outputs['align.txt']}",
                  f"--alignment_weights={outputs['weights.jsonl']}", stdin="98-03-23\n",
                  check=False)
  assert_one_line_error(proc, "holds another model")
  assert all(path.read_text() == "a user's file\n" for path in outputs.values())


def test_eval_and_decode_refuse_an_edited_vocab_alike(trained, tmp_path):
  workdir = copy_run(trained, tmp_path)
  assert len(json.loads((workdir / "vocab.json").read_text())["sha256"]) == 64

  def swap_two_target_tokens(vocab):
    tgt = vocab["tgt"]
    i, j = tgt.index("1"), tgt.index("2")
    tgt[i], tgt[j] = tgt[j], tgt[i]

  _edit_json(workdir / "vocab.json", swap_two_target_tokens)
  for mode in ("eval", "decode"):
    proc = run_main("--workdir", str(workdir), f"--mode={mode}", stdin="98-03-23\n",
                    check=False)
    assert_one_line_error(proc, "vocab.json was changed after training")
    assert proc.stdout == ""
  # A workdir written before checksums were recorded still loads (eval still compares it with
  # the vocabularies the config's data builds).
  old = copy_run(trained, tmp_path, "old")
  _edit_json(old / "vocab.json", lambda vocab: vocab.pop("sha256"))
  expected = run_main("--workdir", str(trained), "--mode=decode", stdin="98-03-23\n").stdout
  assert run_main("--workdir", str(old), "--mode=decode", stdin="98-03-23\n").stdout == expected
  run_main("--workdir", str(old), "--mode=eval")
  _edit_json(old / "vocab.json", swap_two_target_tokens)
  assert_one_line_error(run_main("--workdir", str(old), "--mode=eval", check=False),
                        "another tgt vocabulary")


def _garble(step_dir: pathlib.Path) -> None:
  """A torn manifest and flipped bytes in the array data: a checkpoint that does not read."""
  manifest = step_dir / "default" / "manifest.ocdbt"
  manifest.write_bytes(manifest.read_bytes()[:len(manifest.read_bytes()) // 2])
  for path in (step_dir / "default" / "d").iterdir():
    data = path.read_bytes()
    path.write_bytes(data[:len(data) // 2] + bytes(b ^ 0xFF for b in data[len(data) // 2:]))


def test_a_checkpoint_that_does_not_read_falls_back_in_one_line(trained, tmp_path):
  workdir = copy_run(trained, tmp_path)
  _garble(workdir / "checkpoints" / "20")
  proc = run_main("--workdir", str(workdir), "--mode=eval")
  assert json.loads(proc.stdout)["step"] == 10
  lines = proc.stderr.splitlines()
  assert len(lines) == 1, proc.stderr  # no task report, traceback or tensorstore spec
  assert "checkpoints/20 is corrupted or partial" in lines[0] and "trying step 10" in lines[0]
  assert len(lines[0]) < 600
  assert len(list((workdir / "checkpoints_corrupted").iterdir())) == 1


def test_sigterm_outside_the_training_loop_exits_143_in_one_line(trained, tmp_path):
  # Decoding from a pipe: SIGTERM while it waits for the next line.
  proc = subprocess.Popen([sys.executable, "-m", "attnlab.main", "--workdir", str(trained),
                           "--mode=decode"], env=ENV, cwd=REPO, stdin=subprocess.PIPE,
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
  proc.stdin.write("98-03-23\n")
  proc.stdin.flush()
  assert proc.stdout.readline().strip()  # decoded: the process is inside main
  proc.send_signal(signal.SIGTERM)
  _, stderr = proc.communicate(timeout=120)
  assert proc.returncode == 143 and stderr == "stopped by SIGTERM; run the same command " \
                                             "again to resume\n", (proc.returncode, stderr)
  # Start-up: SIGTERM while the config file loads (it blocks on a FIFO no one writes).
  fifo, ready = tmp_path / "fifo", tmp_path / "ready"
  os.mkfifo(fifo)
  (tmp_path / "slow.py").write_text(
      f"def get_config(arg=None):\n  open({str(ready)!r}, 'w').close()\n"
      f"  open({str(fifo)!r}).read()\n")
  proc = subprocess.Popen([sys.executable, "-m", "attnlab.main", "--config",
                           str(tmp_path / "slow.py"), "--workdir", str(tmp_path / "w")],
                          env=ENV, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                          text=True)
  deadline = time.time() + 300  # however slow the machine: the signal lands in start-up
  while not ready.exists():
    assert proc.poll() is None and time.time() < deadline, proc.communicate()
    time.sleep(0.05)
  proc.send_signal(signal.SIGTERM)
  _, stderr = proc.communicate(timeout=120)
  assert proc.returncode == 143, stderr
  assert stderr.splitlines() == ["stopped by SIGTERM; run the same command again to resume"]
  assert not (tmp_path / "w").exists()


def test_a_long_input_line_names_a_flag_that_works_with_the_workdir_alone(trained):
  proc = run_main("--workdir", str(trained), "--mode=decode", stdin="98-03-23-11-11-11\n",
                  check=False)
  assert_one_line_error(proc, "input line 1 has 17 tokens; the model's longest source is 8")
  flag = "--config.eval.on_long_input=truncate"
  assert f"add {flag} to cut such lines" in proc.stderr
  proc = run_main("--workdir", str(trained), "--mode=decode", flag,
                  stdin="98-03-23-11-11-11\n01-02-03\n")
  assert len(proc.stdout.splitlines()) == 2
  assert "input line 1 has 17 tokens" in proc.stderr and "truncated" in proc.stderr
  assert_one_line_error(run_main("--workdir", str(trained), "--mode=decode",
                                 "--config.eval.on_long_inpt=truncate", stdin="x\n",
                                 check=False), "unknown key")


def test_heatmaps_never_replace_an_index_html_decode_did_not_write(trained, tmp_path):
  mine = tmp_path / "mine"
  mine.mkdir()
  (mine / "index.html").write_text("<html>my own page</html>")
  proc = run_main("--workdir", str(trained), "--mode=decode", f"--heatmaps={mine}",
                  stdin="98-03-23\n", check=False)
  assert_one_line_error(proc, "already holds an index.html that decode did not write")
  assert (mine / "index.html").read_text() == "<html>my own page</html>"
  assert sorted(os.listdir(mine)) == ["index.html"] and proc.stdout == ""
  ours = tmp_path / "ours"
  for line in ("98-03-23", "01-12-05"):  # the second decode replaces the first one's page
    run_main("--workdir", str(trained), "--mode=decode", f"--heatmaps={ours}",
             stdin=line + "\n")
    assert line in (ours / "index.html").read_text()


def test_non_utf8_input_names_the_file_and_line_before_writing_anything(trained, tmp_path):
  inputs = tmp_path / "in.txt"
  inputs.write_bytes(b"98-03-23\n01-0\xff-03\n")
  align = tmp_path / "align.txt"
  proc = run_main("--workdir", str(trained), "--mode=decode", f"--input={inputs}",
                  f"--alignments={align}", check=False)
  assert_one_line_error(proc, f"--input '{inputs}' line 2 is not UTF-8 text")
  assert proc.stdout == "" and not align.exists()
