"""attnlab.training.workdir: usable workdirs, the exclusive lock, the same-model check, and
vocab.json's checksum."""

import json
import os

import pytest

from attnlab.config import base_config
from attnlab.data import SPECIALS, TaskData, Vocab
from attnlab.training import workdir


def test_check_rejects_files_and_files_as_parents(tmp_path):
  file = tmp_path / "file"
  file.write_text("x")
  with pytest.raises(workdir.WorkdirError, match="is a file"):
    workdir.check(str(file), create=True)
  with pytest.raises(workdir.WorkdirError, match="cannot create"):
    workdir.check(str(file / "sub"), create=True)


def test_check_without_create_creates_nothing(tmp_path):
  with pytest.raises(workdir.WorkdirError, match="does not exist"):
    workdir.check(str(tmp_path / "missing"), create=False)
  assert not (tmp_path / "missing").exists()
  workdir.check(str(tmp_path / "new"), create=True)
  assert (tmp_path / "new").is_dir()


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into read-only folders")
def test_check_rejects_a_read_only_workdir(tmp_path):
  (tmp_path / "ro").mkdir(mode=0o555)
  with pytest.raises(workdir.WorkdirError, match="not writable"):
    workdir.check(str(tmp_path / "ro"), create=True)


def test_lock_is_exclusive_and_names_its_holder(tmp_path):
  with workdir.lock(str(tmp_path)):
    with pytest.raises(workdir.WorkdirError, match=f"in use by PID {os.getpid()} on host"):
      with workdir.lock(str(tmp_path)):
        pass
  with workdir.lock(str(tmp_path)):  # released on exit
    pass


def test_same_model_check_names_the_differing_keys(tmp_path):
  config = base_config("date")
  workdir.check_same_model(config, str(tmp_path))  # no config.json yet: nothing to compare
  (tmp_path / "config.json").write_text(json.dumps(config.to_dict()))
  other = config.copy_and_resolve_references()
  other.train.num_steps, other.eval.length_boundaries = 5, (3, 6)  # not model keys
  workdir.check_same_model(other, str(tmp_path))
  other.model.hidden_dim, other.num_seeds = 7, 3
  with pytest.raises(workdir.WorkdirError,
                     match=r"model.hidden_dim \(64 in the workdir, 7 now\).*num_seeds"):
    workdir.check_same_model(other, str(tmp_path))


def _task(tgt=("a", "b", "c")):
  return TaskData("toy", (), (), (), Vocab(SPECIALS + ("x", "y")), Vocab(SPECIALS + tgt),
                  is_text=True, has_alignment=False)


def test_vocab_is_written_with_its_checksum_and_read_back(tmp_path):
  workdir.write_vocab(str(tmp_path), _task())
  vocab = workdir.read_vocab(str(tmp_path))
  assert vocab["tgt"][-3:] == ["a", "b", "c"] and len(vocab[workdir.VOCAB_CHECKSUM]) == 64
  workdir.check_same_vocab(_task(), str(tmp_path))
  with pytest.raises(workdir.WorkdirError, match="another tgt vocabulary"):
    workdir.check_same_vocab(_task(("a", "c", "b")), str(tmp_path))


def test_an_edited_vocab_is_refused_and_an_old_one_without_checksum_still_reads(tmp_path):
  workdir.write_vocab(str(tmp_path), _task())
  path = tmp_path / "vocab.json"
  vocab = json.loads(path.read_text())
  vocab["tgt"][-1], vocab["tgt"][-2] = vocab["tgt"][-2], vocab["tgt"][-1]  # still valid JSON
  path.write_text(json.dumps(vocab))
  with pytest.raises(workdir.WorkdirError, match="was changed after training"):
    workdir.read_vocab(str(tmp_path))
  with pytest.raises(workdir.WorkdirError, match="was changed after training"):
    workdir.check_same_vocab(_task(), str(tmp_path))  # eval's check reads it the same way
  del vocab[workdir.VOCAB_CHECKSUM]  # a workdir from before checksums: nothing to check
  path.write_text(json.dumps(vocab))
  assert workdir.read_vocab(str(tmp_path))["tgt"][-1] == "b"
  path.write_text(json.dumps(["not", "a", "vocabulary"]))
  with pytest.raises(workdir.WorkdirError, match="is damaged"):
    workdir.read_vocab(str(tmp_path))
