"""The bug hunt's pool (issue 26, item 4): each student's six mystery trainers are drawn from a pool of saved runs by
their student id, none of them settled by pg.diagnose's first lead, and the grader grades a student's answers on
that student's draw, as the notebook's check does."""
from __future__ import annotations

import importlib.util
import json
from collections import Counter
from pathlib import Path

import pytest

from bug_hunt_key import LazyPoolKey
import pgcourse as pg
from pgcourse.course import debugging as traps
from pgcourse.course.debugging import bug_hunt, pool
from pgcourse.course.debugging.signals import diagnose, top_causes

ROOT = Path(__file__).resolve().parent.parent
SOLUTION = ROOT / "solutions" / "06_debugging_traps.ipynb"


def _tool():
    spec = importlib.util.spec_from_file_location("make_mysteries", ROOT / "tools" / "make_mysteries.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


POOL_ANSWERS = LazyPoolKey()  # pool id -> its trap, found by replay (no file stores it)
# The signal the solution would give for each bug of the pool (one of the signals it acts on).
SIGNAL_OF = {"joint_grad_clip": "KL / clip fraction", "entropy_wrong_sign": "entropy",
             "log_prob_not_summed": "policy std", "clipped_action_log_prob": "policy std",
             "truncation_as_termination": "explained variance"}


@pytest.fixture(autouse=True)
def _no_student(tmp_path, monkeypatch):
    """Each test starts on the default draw, with its own record of tries."""
    monkeypatch.delenv(pool.STUDENT_VARIABLE, raising=False)
    monkeypatch.setenv(bug_hunt.RECORD_VARIABLE, str(tmp_path / "tries.json"))
    monkeypatch.setattr(bug_hunt, "_KERNEL_TRIES", {})
    pool.choose_student(None)
    yield
    pool.choose_student(None)


def test_diagnose_first_lead_never_names_a_pool_runs_bug():
    """pg.diagnose's first lead named the answer of mysteries 1, 2 and 4 of the six fixed ones (stale_old_log_probs,
    advantage_sign_flipped, log_prob_not_summed: measured on the old runs), so reading its report solved them. No run
    of the pool is settled that way: the first trap its most alarming finding names is never the run's own."""
    assert len(POOL_ANSWERS) >= 12
    for pool_id, answer in POOL_ANSWERS.items():
        run = bug_hunt.pool_run(pool_id)
        assert top_causes(diagnose(run), 1)[:1] != [answer], pool_id
        assert bug_hunt.first_lead(run) != answer, pool_id


def test_write_mysteries_refuses_a_run_whose_first_lead_names_its_trap(tmp_path):
    """The pool's new rule, enforced where runs are written: stale_old_log_probs pins approx-KL and the clip fraction
    at 0, and pg.diagnose's first lead says so; such a run is refused and nothing is written."""
    spec = {1: dict(algo="ppo", env_id="CartPole-v1", total_steps=2048)}
    with pytest.raises(ValueError, match="first lead names its trap"):
        bug_hunt.write_mysteries({1: "stale_old_log_probs"}, {1: 0}, tmp_path, specs=spec)
    assert list(tmp_path.iterdir()) == []


def test_each_student_gets_a_balanced_draw_of_their_own():
    """Three CartPole and three Pendulum runs per student, the same six every time for the same (term, id),
    different six for most students, every run of the pool but the solution's six in some draws, and a new term
    reshuffles."""
    ids = pool.pool_ids()
    assert ids == tuple(sorted(POOL_ANSWERS)) and len(ids) >= 12
    envs = {i: pool.pool_env(i) for i in ids}
    students = [f"s{n:03d}" for n in range(200)]
    draws = {s: pool.draw(s) for s in students}
    for student, chosen in draws.items():
        assert pool.draw(student) == chosen  # deterministic
        assert len(set(chosen)) == 6
        assert [envs[i] for i in chosen] == ["CartPole-v1"] * 3 + ["Pendulum-v1"] * 3, student
    assert len(set(draws.values())) >= 150  # C(10, 3) x C(5, 3) = 1200 possible draws
    counts = Counter(i for chosen in draws.values() for i in chosen)
    assert set(counts) == set(ids) - set(pool.DEFAULT_DRAW)
    assert sum(pool.draw(s, term="another term") != draws[s] for s in students) >= 150
    assert pool.draw(" s001 ") == draws["s001"]  # spaces around an id do not change it
    with pytest.raises(ValueError, match="non-empty string"):
        pool.draw("")


def test_the_notebook_learns_the_student_and_the_grader_wins(monkeypatch, capsys):
    """my_mysteries(id) switches mystery_run to that student's draw; the grader's variable, when set, wins over what
    the notebook said (a student cannot pick an easier draw by typing another id)."""
    default = [bug_hunt.mystery_run(k).config.seed for k in bug_hunt.MYSTERIES]
    assert default == [bug_hunt.pool_run(i).config.seed for i in pool.DEFAULT_DRAW]
    described = bug_hunt.my_mysteries("s042")
    assert list(described) == list(bug_hunt.MYSTERIES)
    mine = pool.draw("s042")
    assert [bug_hunt.mystery_run(k).config.seed for k in bug_hunt.MYSTERIES] == [
        bug_hunt.pool_run(i).config.seed for i in mine]
    assert described[1].endswith("on CartPole-v1") and described[6].endswith("on Pendulum-v1")
    monkeypatch.setenv(pool.STUDENT_VARIABLE, "s007")
    bug_hunt.my_mysteries("s042")
    assert "grades as student 's007'" in capsys.readouterr().out
    assert pool.current_draw() == pool.draw("s007")
    bug_hunt.my_mysteries(None)
    monkeypatch.delenv(pool.STUDENT_VARIABLE)
    assert pool.current_draw() == pool.DEFAULT_DRAW


def test_the_grading_worker_grades_each_submission_as_its_student(monkeypatch):
    """The worker sets the student variable to the key of the submission it grades (its student), and clears it for
    the self-test, which grades the solution's answers on the default draw."""
    from pgcourse.classroom.grading import worker

    monkeypatch.setenv(pool.STUDENT_VARIABLE, "left over")
    worker._bug_hunt_student("ann")
    assert pool.current_draw() == pool.draw("ann")
    worker._bug_hunt_student("\0selftest")
    assert pool.current_draw() == pool.DEFAULT_DRAW


def test_the_check_grades_a_students_answers_on_that_students_draw(capsys):
    """The notebook's check (tries recorded) and the grader's (record off, student from the variable) give the same
    verdicts on a student's answers: her draw's answers pass both, the solution's answers fail both where her draw's
    bug differs."""
    student = "s042"
    chosen = pool.draw(student)
    right = {k: (POOL_ANSWERS[i], SIGNAL_OF[POOL_ANSWERS[i]]) for k, i in zip(bug_hunt.MYSTERIES, chosen)}
    solution = {k: (POOL_ANSWERS[i], SIGNAL_OF[POOL_ANSWERS[i]]) for k, i in zip(bug_hunt.MYSTERIES, pool.DEFAULT_DRAW)}
    differs = [k for k in bug_hunt.MYSTERIES if right[k][0] != solution[k][0]]
    assert differs  # the solution's answers are not this student's
    k = differs[0]

    def verdicts(grader: bool) -> tuple[bool, bool]:
        with pytest.MonkeyPatch.context() as patch:
            if grader:
                patch.setenv(bug_hunt.RECORD_VARIABLE, "off")
                patch.setenv(pool.STUDENT_VARIABLE, student)
            else:
                bug_hunt.my_mysteries(student)
            try:
                pg.checks.check_mystery(k, *right[k])
                good = True
            except AssertionError:
                good = False
            try:
                pg.checks.check_mystery(k, *solution[k])
                bad = True
            except AssertionError:
                bad = False
            bug_hunt.my_mysteries(None)
        return good, bad

    assert verdicts(grader=False) == verdicts(grader=True) == (True, False)
    capsys.readouterr()


def test_no_file_of_the_course_publishes_the_pools_answer_key():
    """Issue 26: the solution notebook held the whole pool's key (pool_answers = {id: trap, ...}), so with the
    public pg.traps.pool.draw(student_id) any student read their six answers in the published solution. The
    solution now answers its own six only (the default draw, which no student gets)."""
    for folder in ("solutions", "exercises", "notebooks", "docs", "pgcourse", "tools", "site"):
        for path in (ROOT / folder).rglob("*"):
            if path.suffix in (".ipynb", ".py", ".md", ".json", ".txt") and path.is_file():
                text = path.read_text(errors="ignore")
                assert "pool_answers" not in text, path
    exercise = (ROOT / "exercises" / "06_debugging_traps.ipynb").read_text()
    assert not [trap for trap in traps.TRAPS if f'"{trap}"' in exercise]


def test_no_student_draws_a_run_the_solution_answers():
    """The solution's six (DEFAULT_DRAW) recurred in students' draws: a student with one of them read its answer in
    the published solution. Over 300 student ids, none draws one, and the draws still differ between students."""
    draws = [pool.draw(f"s{n:04d}") for n in range(300)]
    assert not [d for d in draws if set(d) & set(pool.DEFAULT_DRAW)]
    assert len(set(draws)) > 100
    cartpole = {i for d in draws for i in d[:3]}
    assert len(cartpole) >= 6, cartpole  # students' CartPole runs come from six or more runs


def test_a_runs_hint_text_does_not_map_to_its_bug():
    """Same-bug runs shared a hint text no other bug had, so the solution's six mapped a student's hint to its answer.
    Every hint text is now shown for runs with different bugs."""
    bugs_of_text = {}
    for pool_id, trap in POOL_ANSWERS.items():
        bugs_of_text.setdefault(bug_hunt.EVIDENCE[pool_id], set()).add(trap)
    assert all(len(bugs) >= 2 for bugs in bugs_of_text.values()), bugs_of_text


def _notebook_with_outputs(texts: dict[int, str]) -> str:
    """A saved notebook whose check cell of trainer k printed ``texts[k]``."""
    cells = [{"cell_type": "code", "source": f"pg.checks.check_mystery({k}, answer_{k}, signal_{k})", "metadata": {},
              "outputs": [{"output_type": "stream", "name": "stdout", "text": text.splitlines(keepends=True)}]}
             for k, text in texts.items()]
    return json.dumps({"cells": cells, "metadata": {}, "nbformat": 4, "nbformat_minor": 5})


def test_the_check_writes_its_tries_into_the_notebook_and_the_grade_counts_the_first(capsys, tmp_path):
    """Issue 26, item 4: tries were recorded only in a file on the student's machine, and the grader graded whatever
    the answer cell held last: two wrong tries, the record file deleted, then the right answer scored full points.
    Now each check prints its record of tries into its cell's output (stored with the notebook); the grade counts
    the first MAX_TRIES answers recorded there (a right answer after them scores 0) and the teacher's report notes a
    notebook with no record, or a record made on another student's draw."""
    from types import SimpleNamespace

    from pgcourse.classroom.grading import grader
    from pgcourse.classroom.grading.gradebook import ExerciseResult

    k = 2
    answer = POOL_ANSWERS[pool.DEFAULT_DRAW[k - 1]]
    algo = bug_hunt.mystery_run(k).config.algo
    wrongs = [t for t in traps.TRAPS if t != answer and algo in traps.TRAPS[t][0]][:2]
    for trap in wrongs:
        with pytest.raises(AssertionError, match="does not behave like it"):
            pg.checks.check_mystery(k, trap, "grad norms")
    printed = capsys.readouterr().out
    records = bug_hunt.records_in_notebook(_notebook_with_outputs({k: printed}))
    assert records[k]["tries"] == [{"trap": t, "signal": "grad norms", "right": False} for t in wrongs]
    assert "pool" not in records[k] and records[k]["student"] is None  # no pool id printed (it would map to the solution)
    counts, note = bug_hunt.first_answers_verdict(records[k], None)
    assert not counts and "first 2 answers wrong" in note
    assert bug_hunt.first_answers_verdict(None, "ann")[0] and "no record" in bug_hunt.first_answers_verdict(None, "ann")[1]
    right = {"student": "ann", "pool": 7, "tries": [{"trap": wrongs[0], "signal": "grad norms", "right": False},
                                                   {"trap": answer, "signal": "grad norms", "right": True}]}
    assert bug_hunt.first_answers_verdict(right, "ann") == (True, None)
    assert "another" not in (bug_hunt.first_answers_verdict(right, "bob")[1] or "") and \
        "'ann'" in bug_hunt.first_answers_verdict(right, "bob")[1]
    # the grader: the answer cell now holds the right answer (the check passed), the record says two wrong first
    path = tmp_path / "ann.ipynb"
    path.write_text(_notebook_with_outputs({k: printed, 3: "✓ mystery trainer 3\n"}))
    submission = SimpleNamespace(path=path, problem=None, student=None)
    chapter = SimpleNamespace(auto_exercises=[SimpleNamespace(id=f"ch06_mystery_{j}") for j in (2, 3)])
    row = SimpleNamespace(notes=[], exercises={f"ch06_mystery_{j}": ExerciseResult(2, 2, "passed", "✓")
                                               for j in (2, 3)})
    grader._count_first_bug_hunt_answers(submission, chapter, row)
    assert row.exercises["ch06_mystery_2"].points == 0 and row.exercises["ch06_mystery_2"].status == "failed"
    assert "Not counted" in row.exercises["ch06_mystery_2"].feedback
    assert row.exercises["ch06_mystery_3"].points == 2  # no record: graded, and noted for the teacher
    assert any(n.startswith("ch06_mystery_3: no record of tries") for n in row.notes), row.notes
    # a record that is not well formed is no record
    assert bug_hunt.records_in_notebook(_notebook_with_outputs({k: f"{bug_hunt.RECORD_LINE}: {{broken\n"})) == {}


def test_without_a_student_id_the_notebook_says_these_are_not_yours(capsys):
    """A student who leaves STUDENT_ID = None works the default six, and the grader grades their own: the cell says
    so, and says nothing of the kind once an id is given."""
    bug_hunt.my_mysteries(None)
    assert "no student id given" in capsys.readouterr().out
    bug_hunt.my_mysteries("s001")
    assert "no student id given" not in capsys.readouterr().out


def test_the_printed_record_names_no_pool_run(capsys):
    """A learner's record of tries, printed into the notebook, must not carry the pool id of the trainer: beside the
    published solution's output it would say which of the solution's trainers (and so which answer) it is. Found by
    an independent learner's try of exercise 06."""
    from pgcourse.course.debugging import bug_hunt

    bug_hunt._print_record(1, [{"trap": "joint_grad_clip", "signal": "grad norms", "right": False}])
    line = capsys.readouterr().out
    assert bug_hunt.RECORD_LINE in line
    assert '"pool"' not in line, line


def test_log_prob_not_summed_is_accepted_on_the_signals_it_acts_on():
    """log_prob_not_summed leaves the actor's gradient ~1e7 times smaller (A2C on Pendulum: the [B, B] mean is
    mean(log-prob) x mean(advantages) = 0) and freezes log_std, hence the Gaussian's entropy: 'grad norms' and
    'entropy' are signals it acts on, and the check refused them (an independent learner lost a try on it)."""
    from pgcourse.course.debugging.signals import SHOWS_IN

    assert {"grad norms", "entropy"} <= set(SHOWS_IN["log_prob_not_summed"])


def test_every_pool_run_has_a_signal_an_answer_can_name():
    """An answer is a trap and a signal the trap moves in that trainer (measured there, and able to move in its
    settings). A pool run whose trap has no such signal could not be answered at all; none is in the pool."""
    for pool_id, answer in POOL_ANSWERS.items():
        config = json.loads((pool.MYSTERY_DIR / str(pool_id) / "config.json").read_text())
        assert bug_hunt.answerable_signals(answer, config), (pool_id, answer)
    # in an A2C trainer with the critic clipped at the actor's norm, joint_grad_clip has no KL and an inert
    # 'explained variance': only its gradient norms are left
    assert bug_hunt.answerable_signals("joint_grad_clip", {"algo": "a2c", "env_id": "Pendulum-v1"}) == {"grad norms"}


def test_write_mysteries_refuses_a_trap_no_signal_of_which_can_be_named(tmp_path, monkeypatch):
    """The guard, before any training: with a table that left joint_grad_clip only the KL and the critic's fit (as
    it stood for part of this session), an A2C run of it could not be answered, and write_mysteries says so
    (fourteenth-round read of exercise 06)."""
    from pgcourse.course.debugging import signals

    monkeypatch.setitem(signals.SHOWS_IN, "joint_grad_clip", ("KL / clip fraction", "explained variance"))
    monkeypatch.setattr(bug_hunt, "SHOWS_IN", signals.SHOWS_IN)
    spec = {1: dict(algo="a2c", env_id="Pendulum-v1", total_steps=2048)}
    with pytest.raises(ValueError, match="no signal of 'joint_grad_clip'"):
        bug_hunt.write_mysteries({1: "joint_grad_clip"}, {1: 0}, tmp_path, specs=spec)
    assert list(tmp_path.iterdir()) == []


def test_clipped_action_log_prob_is_accepted_on_the_actors_gradient(capsys):
    """Storing the clipped action shrinks z = (a - mu) / sigma for every out-of-bounds sample, so the actor's gradient
    changes from the first update (mystery 6 of the default draw logs 0.093 at update 1 where its near-twin, the same
    seed and settings with another bug, logs 0.133): 'grad norms' counts by the exercise's rule, and was refused
    (fourteenth-round read of exercise 06)."""
    k = next(k for k, i in zip(bug_hunt.MYSTERIES, pool.DEFAULT_DRAW) if POOL_ANSWERS[i] == "clipped_action_log_prob")
    pg.checks.check_mystery(k, "clipped_action_log_prob", "grad norms")
    assert capsys.readouterr().out.startswith(f"✓ mystery trainer {k}")
