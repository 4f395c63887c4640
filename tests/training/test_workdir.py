"""attnlab.training.workdir: usable workdirs, the exclusive lock, and the same-model check."""

import json
import os

import pytest

from attnlab.training import workdir
from attnlab.config import base_config


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
