"""``pg.train``'s checkpoint folder and ``pg.resume``'s checkpoints, pinned on the cases that tell each part of their
folder checks apart (issue 45, item 5).

A mechanical sweep dropped each operand of every ``and``/``or`` in turn and swapped ``any`` <-> ``all``; in
``rl/api.py`` the mutants below survived the unit tests. Each test states what the check means and runs it on the
case where the full condition and the mutated one disagree: a checkpoint folder that exists but is empty (an empty
folder "holds" nothing, though ``all`` of an empty listing is true), and a resumed run whose checkpoint folder is gone
(it is no folder at all, so it cannot be listed). Every expected value is worked out by hand.

One mutant is not tested, since no caller can tell it apart: ``_Checkpoints``'s ``outputs or {}`` (as ``outputs``):
both callers (``run_training`` and ``train_many``) always pass a dict holding at least ``checkpoint_every``, never
None, and the class is private.
"""
from __future__ import annotations

import json
import shutil

import pytest

import pgcourse as pg
from pgcourse.rl.config import ConfigError

TINY = dict(seed=0, progress=False, total_steps=128, num_envs=4, n_steps=16)  # a2c: two updates of 64 env steps


# -- pg.train: checkpoints go to a new or empty folder, never over a saved run --------------------------------------
@pytest.mark.parametrize("state, refused", [
    ("missing", False),  # a new folder: made by the first checkpoint
    ("empty", False),  # an existing empty folder holds no run: checkpoints may go there
    ("saved run", True),  # a folder holding a saved run (not the one resumed): checkpoints would replace it
])
def test_checkpoints_go_to_a_new_or_empty_folder_never_over_a_saved_run(tmp_path, state, refused):
    """``checkpoint_dir`` may be new or an existing empty folder (``holds_run`` is "a folder with anything in it",
    false for an empty one); a folder that holds a saved run is refused unless that run is the one being resumed."""
    folder = tmp_path / "checkpoints"
    if state == "empty":
        folder.mkdir()
    elif state == "saved run":
        folder.mkdir()
        (folder / "meta.json").write_text(json.dumps({"format": "pgcourse-run"}))
    if refused:
        with pytest.raises(ConfigError, match=r"already holds a saved run; checkpoints would replace it"):
            pg.train("a2c", "CartPole-v1", checkpoint_every=64, checkpoint_dir=folder, **TINY)
        assert sorted(entry.name for entry in folder.iterdir()) == ["meta.json"]  # left as it was
        return
    run = pg.train("a2c", "CartPole-v1", checkpoint_every=64, checkpoint_dir=folder, **TINY)
    assert run.outputs == {"checkpoint_every": 64, "checkpoint_dir": str(folder.resolve())}
    saved = pg.load(folder)  # the last checkpoint: the end of training
    assert list(saved.history.updates["env_step"]) == list(run.history.updates["env_step"])


# -- pg.resume: a run goes on checkpointing where it did, unless that folder holds another copy of it ---------------
@pytest.mark.parametrize("resumed_from, original, checkpoints", [
    ("own", "kept", True),  # resumed from its checkpoint folder itself: checkpoints go back into it
    ("copy", "missing", True),  # resumed from a copy, the checkpoint folder gone: nothing there to replace
    ("copy", "empty", True),  # resumed from a copy, the checkpoint folder emptied: nothing there to replace
    ("copy", "kept", False),  # resumed from a copy, the original still there: checkpoints would replace it
])
def test_a_resumed_run_checkpoints_where_it_did_unless_that_folder_holds_another_copy(tmp_path, capsys, resumed_from,
                                                                                      original, checkpoints):
    """A run trained with ``checkpoint_every=64, checkpoint_dir=A`` and resumed without checkpoint arguments goes on
    checkpointing every 64 env steps to A when it was loaded from A itself, or when A is not a folder with anything
    in it (gone, or empty); when it was loaded from a copy and A still holds the original, it takes no checkpoints
    (they would replace the original) and says so on stderr."""
    own = tmp_path / "checkpoints"
    trained = len(pg.train("a2c", "CartPole-v1", checkpoint_every=64, checkpoint_dir=own, **TINY).history.updates)
    folder = own
    if resumed_from == "copy":
        folder = tmp_path / "copy"
        shutil.copytree(own, folder)
    if original == "missing":
        shutil.rmtree(own)
    elif original == "empty":
        shutil.rmtree(own)
        own.mkdir()
    before = (own / "weights.pt").read_bytes() if original == "kept" else None
    capsys.readouterr()

    resumed = pg.resume(folder, total_steps=256, progress=False)

    stderr = capsys.readouterr().err
    updates = list(resumed.history.updates["env_step"])
    assert len(updates) > trained  # it trained on
    if checkpoints:
        assert resumed.outputs == {"checkpoint_every": 64, "checkpoint_dir": str(own.resolve())}
        assert f"resuming as the run trained: a checkpoint every 64 env steps to {own.resolve()}" in stderr
        assert list(pg.load(own).history.updates["env_step"]) == updates  # the resumed run's last checkpoint
    else:
        assert resumed.outputs == {}
        assert f"no checkpoints (it checkpointed to {own.resolve()}, which holds another copy of it" in stderr
        assert (own / "weights.pt").read_bytes() == before  # the original is left alone
        assert len(pg.load(own).history.updates) == trained
