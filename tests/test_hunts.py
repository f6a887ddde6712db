"""Graded bug hunts (issue 46, item 4: a bug hunt that grades reasoning): hunts made per student from the teacher's
secret (pgcourse.classroom.hunts), checked on the learner's machine for form and evidence only, graded with the
teacher's key in the grader's trusted worker."""
from __future__ import annotations

import copy
import dataclasses
import json
import math
import os
import re
import sys
from pathlib import Path

import pytest

import pgcourse as pg
from pgcourse.classroom import hunts
from pgcourse.course import debugging as traps
from pgcourse.course.debugging import bug_hunt, evidence
from test_grading_sandbox import needs_sandbox

ROOT = Path(__file__).resolve().parent.parent
SOLUTION = ROOT / "solutions" / "06_debugging_traps.ipynb"
# shorter runs than a class gets, so that the tests make two students' hunts in seconds
SHORT = {k: {**spec, "total_steps": 4096} for k, spec in hunts.TRAINER_SETTINGS.items()}


@pytest.fixture(autouse=True)
def _outside_the_grader(monkeypatch):
    monkeypatch.delenv(bug_hunt.KEY_VARIABLE, raising=False)
    monkeypatch.delenv(bug_hunt.STUDENT_VARIABLE, raising=False)
    monkeypatch.setattr(bug_hunt, "_CURRENT", [None])


@pytest.fixture(scope="module")
def made(tmp_path_factory):
    folder = tmp_path_factory.mktemp("class")
    key_path = folder / "teacher" / "key.json"
    key_path.parent.mkdir()  # a fixed secret: the same draws in every run of the tests
    key_path.write_text(json.dumps({"format": bug_hunt.KEY_FORMAT, "secret": "5e" * 32, "students": {}}))
    key = hunts.make_hunts(["ann", "bob"], folder / "hunts", key_path, settings=SHORT, log=lambda line: None)
    return folder / "hunts", key_path, key


def right_answer(entry: dict) -> tuple[str, str, tuple[int, float]]:
    """A full answer from a key entry: the trap, a signal it acts on that parts from the twin, and the evidence."""
    for signal in sorted(bug_hunt.answerable_signals(entry["trap"], entry["settings"])):
        columns = evidence.EVIDENCE_COLUMNS.get(signal)
        parting = columns and evidence.first_parting(entry["history"], entry["twin_history"], columns)
        if parting:
            update, parted = parting
            return entry["trap"], signal, (update, entry["history"][parted[0]][update - 1])
    raise AssertionError(f"no answer for {entry['trap']}")


def test_candidates_leave_out_bugs_the_settings_or_the_action_space_would_tell():
    for k, settings in hunts.TRAINER_SETTINGS.items():
        found = hunts.candidates(settings)
        assert len(found) >= 4 and not set(found) & set(traps.PRESETS), k
        assert all(settings["algo"] in traps.TRAPS[t][0] for t in found)
        if settings["env_id"] == "CartPole-v1":
            assert not set(found) & set(traps.BOX_ONLY)
    # one setting per trainer number whatever its bug: ent_coef is 0.01 for all (entropy_wrong_sign needs a bonus)
    assert {s["ent_coef"] for s in hunts.TRAINER_SETTINGS.values()} == {0.01}


def test_evidence_is_where_a_signal_first_parts_from_the_twin():
    twin = {"env_step": [1, 2, 3], "approx_kl": [0.01, 0.02, 0.03], "clip_fraction": [0.1, 0.1, 0.1],
            **{c: [1.0, 1.0, 1.0] for c in evidence.COLUMNS if c not in ("approx_kl", "clip_fraction")}}
    mystery = copy.deepcopy(twin)
    mystery["approx_kl"] = [0.01, 0.05, 0.09]
    mystery["entropy"] = [1.0, 1.0, math.nan]
    assert evidence.first_parting(mystery, twin) == (2, ["approx_kl"])
    assert evidence.first_parting(mystery, twin, ("entropy",)) == (3, ["entropy"])
    assert evidence.judge_evidence(mystery, twin, "KL / clip fraction", (2, 0.05)) is None
    assert evidence.judge_evidence(mystery, twin, "KL / clip fraction", (2, 0.05002)) is None  # 4 figures suffice
    assert evidence.judge_evidence(mystery, twin, "KL / clip fraction", (2, 0.0502)) is not None
    assert "already parted" in evidence.judge_evidence(mystery, twin, "KL / clip fraction", (3, 0.09))
    assert "still equals" in evidence.judge_evidence(mystery, twin, "KL / clip fraction", (1, 0.01))
    assert "copy the value" in evidence.judge_evidence(mystery, twin, "KL / clip fraction", (2, 0.07))
    assert evidence.judge_evidence(mystery, twin, "entropy", (3, math.nan)) is None  # NaN is evidence too
    assert "never parts" in evidence.judge_evidence(mystery, twin, "grad norms", (1, 1.0))
    assert "read over episodes" in evidence.judge_evidence(mystery, twin, "return trend", (1, 1.0))
    for bad in (None, (0, 1.0), (1.5, 1.0), (1, "0.05"), (True, 1.0), (1, 2, 3)):
        assert evidence.judge_evidence(mystery, twin, "KL / clip fraction", bad) is not None, bad


@pytest.mark.slow
def test_a_hunt_folder_holds_no_bug_no_seed_and_a_twin_for_each_trainer(made):
    out, key_path, key = made
    assert set(key["students"]) == {"ann", "bob"} and not key_path.is_relative_to(out)
    for student in ("ann", "bob"):
        folder = out / student
        for path in folder.rglob("*"):
            if path.is_file():
                data = path.read_bytes()
                assert not [t for t in traps.TRAPS if t.encode() in data], path
                assert not any(str(e["seed"]).encode() in data for e in key["students"][student].values()), path
        hunt = bug_hunt.read_hunt(folder)
        assert hunt.student == student
        for k in bug_hunt.MYSTERIES:
            mystery, twin = hunt.runs[k], hunt.twins[k]
            assert mystery.config.seed == twin.config.seed == bug_hunt.WITHHELD_SEED
            assert mystery.config == twin.config and mystery.config.traps == ()
            other = bug_hunt.read_hunt(out / ("bob" if student == "ann" else "ann")).runs[k]
            assert other.config == mystery.config  # the same settings for every student and every bug
            assert hunts.first_lead(mystery) != key["students"][student][str(k)]["trap"]
    # each student's draw is their own
    assert [e["seed"] for e in key["students"]["ann"].values()] != [e["seed"] for e in key["students"]["bob"].values()]
    # no seconds: a bug's cost in time would tell it (the red team read joint_grad_clip's 1.1-1.5x)
    assert not any(bug_hunt.read_hunt(out / "ann").runs[1].history.updates["wall_time"])
    assert key_path.stat().st_mode & 0o077 == 0  # the key is the teacher's alone


@pytest.mark.slow
def test_a_folder_mixed_from_two_hunts_is_refused(made, tmp_path):
    import shutil

    out, _, _ = made
    mixed = tmp_path / "mixed"
    shutil.copytree(out / "bob", mixed)
    shutil.rmtree(mixed / "twins" / "5")
    shutil.copytree(out / "ann" / "twins" / "5", mixed / "twins" / "5")
    with pytest.raises(ValueError, match="not the run made for this hunt"):
        bug_hunt.load_hunt(mixed)
    with pytest.raises(TypeError, match="give its path"):
        bug_hunt.load_hunt(5)
    with pytest.raises(AssertionError, match="no mystery trainer True"):
        pg.checks.check_mystery(True, "joint_grad_clip", "grad norms", (1, 0.1))


@pytest.mark.slow
def test_on_the_learners_machine_the_check_cannot_tell_a_right_trap_from_a_wrong_one(made, capsys):
    """No oracle in the learner's reach: the check on a hunt made for a student judges the answer's form and its
    evidence, and says the same for the right trap and a wrong one; nothing replays a bug against the mysteries."""
    out, _, key = made
    bug_hunt.load_hunt(out / "ann")
    assert "hunt made for student 'ann'" in capsys.readouterr().out
    for k in bug_hunt.MYSTERIES:
        entry = key["students"]["ann"][str(k)]
        trap, signal, proof = right_answer(entry)
        wrong = next(t for t in hunts.candidates(entry["settings"]) if t != trap)
        said = []
        for guess in (trap, wrong):
            pg.checks.check_mystery(k, guess, signal, proof)
            said.append(capsys.readouterr().out.replace(repr(guess), "TRAP"))
        assert said[0] == said[1] and "your teacher's grader says" in said[0], k
        with pytest.raises(AssertionError, match="your evidence"):
            pg.checks.check_mystery(k, trap, signal, (proof[0], proof[1] * 3 + 1))
        m = bug_hunt.mystery_run(k)
        with pytest.raises(pg.config.ConfigError, match="seed is withheld"):
            bug_hunt.train_like(m)
        with pytest.raises(ValueError, match="seed is withheld"):
            bug_hunt.behaves_like(trap, m)
    bug_hunt.train_like(bug_hunt.mystery_run(1), seed=3, total_steps=256)  # a correct run at a seed of one's own


@pytest.mark.slow
def test_with_the_key_the_check_grades_each_student_on_their_own_hunt(made, monkeypatch, capsys):
    out, key_path, key = made
    monkeypatch.setenv(bug_hunt.KEY_VARIABLE, str(key_path))
    for student, other in (("ann", "bob"), ("bob", "ann")):
        monkeypatch.setenv(bug_hunt.STUDENT_VARIABLE, student)
        for k in bug_hunt.MYSTERIES:
            entry = key["students"][student][str(k)]
            trap, signal, proof = right_answer(entry)
            pg.checks.check_mystery(k, trap, signal, proof)
            assert capsys.readouterr().out.startswith(f"✓ mystery trainer {k}: {trap!r} is its bug")
            wrong = next(t for t in hunts.candidates(entry["settings"]) if t != trap)
            with pytest.raises(AssertionError, match="is not the bug planted"):
                pg.checks.check_mystery(k, wrong, signal, proof)
        # a classmate's answers: their evidence is a number of the classmate's runs, not of this student's
        copied = [right_answer(key["students"][other][str(k)]) for k in bug_hunt.MYSTERIES]
        passed = 0
        for k, answer in zip(bug_hunt.MYSTERIES, copied):
            try:
                pg.checks.check_mystery(k, *answer)
                passed += 1
            except AssertionError:
                pass
        assert passed == 0, (student, passed)
    monkeypatch.setenv(bug_hunt.STUDENT_VARIABLE, "zoe")
    with pytest.raises(AssertionError, match="no hunt made for student 'zoe'"):
        pg.checks.check_mystery(1, "joint_grad_clip", "grad norms", (1, 0.1))


@pytest.mark.slow
def test_making_hunts_again_keeps_everyone_and_overwrites_nothing(made, tmp_path):
    out, key_path, key = made
    before = key_path.read_bytes()
    again = hunts.make_hunts(["ann"], out, key_path, settings=SHORT, log=lambda line: None)
    assert json.dumps(again["students"]["ann"]) == json.dumps(key["students"]["ann"])  # (NaN != NaN in dicts)
    assert key_path.read_bytes() == before
    (out / "cat").mkdir()
    with pytest.raises(ValueError, match="nothing is overwritten"):
        hunts.make_hunts(["cat"], out, key_path, settings=SHORT, log=lambda line: None)
    with pytest.raises(ValueError, match="keep the key apart"):
        hunts.make_hunts(["dan"], tmp_path, tmp_path / "key.json", settings=SHORT, log=lambda line: None)
    with pytest.raises(ValueError, match="cannot be a student id"):
        hunts.make_hunts(["../x"], out, key_path, settings=SHORT, log=lambda line: None)
    assert hunts.main(["--out", str(out), "--key", str(out / "k.json")]) == 2  # no ids
    assert hunts.main(["--out", str(out), "--key", str(tmp_path / "k.json"), "--students", str(tmp_path / "no")]) == 2


def _with_answers(notebook: dict, answers: dict[int, tuple]) -> dict:
    """A copy of ``notebook`` whose answer cell k assigns ``answers[k]`` (trap, signal, evidence)."""
    notebook = copy.deepcopy(notebook)
    for cell in notebook["cells"]:
        found = re.fullmatch(r"ch06_mystery_(\d)", cell.get("metadata", {}).get("nbgrader", {}).get("grade_id", ""))
        if found and int(found.group(1)) in answers:
            k = int(found.group(1))
            trap, signal, proof = answers[k]
            cell["source"] = f'answer_{k} = "{trap}"\nsignal_{k} = "{signal}"\nevidence_{k} = {tuple(proof)!r}\n'
    return notebook


@pytest.mark.slow
@needs_sandbox  # a hunt key is graded only in the sandbox
def test_the_grader_grades_each_students_hunt_with_the_key(made, tmp_path):
    """ann answers her own hunt: full marks. bob hands in ann's answers: his hunt's points are lost (her evidence is
    not his runs'). Without --hunt-key the hunt is graded on the practice six and the report says so; a key the
    students' sandbox could read is refused."""
    from pgcourse.classroom import grading

    out, key_path, key = made
    solution = json.loads(SOLUTION.read_text())
    folder = tmp_path / "class"
    folder.mkdir()
    ann = {k: right_answer(key["students"]["ann"][str(k)]) for k in bug_hunt.MYSTERIES}
    for student in ("ann", "bob"):
        (folder / f"{student}.ipynb").write_text(json.dumps(_with_answers(solution, ann)))
    report = grading.grade_paths([folder], course=ROOT, progress=False, jobs=1, hunt_key=key_path)
    hunt_points = {e.id: e.points for e in report.chapter.exercises if e.id.startswith("ch06_mystery_")}
    for exercise_id, points in hunt_points.items():
        assert report.student("ann").exercises[exercise_id].points == points, report.student("ann").exercises
        assert report.student("bob").exercises[exercise_id].points == 0, report.student("bob").exercises
    assert not [n for n in report.student("ann").notes if "practice six" in n] and not report.warnings
    with pytest.raises(grading.GradingError, match="unsafe-no-sandbox"):
        grading.grade_paths([folder], course=ROOT, progress=False, jobs=1, hunt_key=key_path,
                            isolation=grading.UNSAFE)
    shown = Path(sys.prefix) / f"hunt-key-{os.getpid()}.json"  # the interpreter's prefix: the sandbox shows it
    shown.write_bytes(key_path.read_bytes())
    try:
        with pytest.raises(grading.GradingError, match="sandbox can read"):
            grading.grade_paths([folder], course=ROOT, progress=False, jobs=1, hunt_key=shown)
    finally:
        shown.unlink()


def test_the_report_says_where_the_hunt_was_graded_on_the_practice_six_or_found_no_hunt():
    from pgcourse.classroom.grading.grader import _note_hunt
    from pgcourse.classroom import grading

    chapter = grading.load_course(ROOT).chapter("06_debugging_traps")
    row = dataclasses.make_dataclass("Row", [("student", str), ("notes", list)])("ann", [])
    _note_hunt(chapter, row, None, set())
    assert row.notes and "practice six" in row.notes[0] and "--hunt-key" in row.notes[0]
    row.notes.clear()
    _note_hunt(chapter, row, Path("/keys/k.json"), {"ann"})
    assert row.notes == []
    _note_hunt(chapter, row, Path("/keys/k.json"), {"bob"})
    assert "no hunt made for student 'ann'" in row.notes[0]
    other = grading.load_course(ROOT).chapter("01_reinforce")
    row.notes.clear()
    _note_hunt(other, row, None, set())
    assert row.notes == []
