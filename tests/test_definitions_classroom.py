"""Tests that pin what the classroom code's choices are, not only that it makes one (issue 45, item 5).

A mutation audit found one-line bugs in the classroom code that every path test let through: which of a student's
files counts, which answer cell a student's own cell runs with, which tables of a hunt's published run are cleared
of wall time, and which answer cells count as a learner's work. Each test below states the definition on small
objects built here (no worker processes, no sandbox), so that any bug of its class fails, not only the one found.
"""
from __future__ import annotations

import copy
import itertools
from datetime import datetime, timezone
from pathlib import Path

import nbformat
import pytest

from pgcourse.classroom.grading.course import Chapter, Course, Exercise
from pgcourse.classroom.grading.gradebook import Submission
from pgcourse.classroom.grading.timing import choose
from pgcourse.classroom.notebook_format import Cell
from pgcourse.rl.history import History, Table


def code_cell(index: int, source: str, grade_id: str | None = None) -> Cell:
    return Cell(index, "code", source, {"nbgrader": {"grade_id": grade_id}} if grade_id else {})


def handed_in(path: str, day: int, *grade_ids: str) -> Submission:
    """A student's file handed in on March ``day``, holding answer cells of ``grade_ids``."""
    return Submission("s", Path(path), path, cells=[code_cell(i, "x = 1", g) for i, g in enumerate(grade_ids)],
                      submitted_at=datetime(2025, 3, day, tzinfo=timezone.utc), time_source="--timestamps")


# -- 1. which of a student's files counts ---------------------------------------------------------------------------
@pytest.mark.parametrize("other_ids", [(), ("ch07_answer",)], ids=["no-answer-cells", "another-chapters"])
@pytest.mark.parametrize("order", [0, 1], ids=["work-first", "other-first"])
def test_the_file_with_the_chapters_answer_cells_beats_a_later_file_without_them(other_ids, order):
    """Among a student's files for a chapter, one holding that chapter's answer cells is chosen over a later file
    holding none of them (another notebook), in whatever order the files come; between two files that both hold
    them, the later one."""
    course = Course(root=Path("."), notebooks={}, _grade_ids={"06": frozenset({"ch06_answer", "ch06_check"})})
    work = handed_in("06_mine.ipynb", 1, "ch06_answer")
    other = handed_in("notes.ipynb", 2, *other_ids)  # later, by the most trusted time
    group = [work, other] if order == 0 else [other, work]
    chosen, why = choose(course, "06", group)
    assert chosen is work, why
    newer = handed_in("06_mine_v2.ipynb", 3, "ch06_answer")
    for group in itertools.permutations([work, other, newer]):
        assert choose(course, "06", list(group))[0] is newer


# -- 2. which answer cell a student's own cell runs with ------------------------------------------------------------
@pytest.mark.parametrize("has", [("a1", "a2", "a3"), ("a1", "a2"), ("a1", "a3"), ("a1",)])
def test_a_cell_added_before_a_check_runs_with_the_last_answer_cell_the_student_has(has):
    """A code cell the student added between an exercise's answer cells and its check is attached to the exercise's
    last answer cell that the student's notebook holds (the nearest one above the check), after its source."""
    exercise = Exercise(id="ch06_e1", check_grade_id="ch06_e1_check", points=1.0, check_source="assert True",
                        answer_ids=("a1", "a2", "a3"))
    chapter = Chapter(name="06", path=Path("06.ipynb"), context=[], exercises=[exercise],
                      answer_order=["a1", "a2", "a3"], grade_ids=frozenset({"a1", "a2", "a3", "ch06_e1_check"}),
                      reference=None, stubs={})
    cells = [code_cell(i, f"{g} = {i}", g) for i, g in enumerate(has)]
    cells += [code_cell(len(cells), "helper = 3"), code_cell(len(cells) + 1, "assert True", "ch06_e1_check")]
    answers, _ = Submission("s", Path("06.ipynb"), "x", cells=cells).answers(chapter)
    added_to = [g for g, sources in answers.items() if any(isinstance(s, dict) for s in sources)]
    assert added_to == [has[-1]]
    assert answers[has[-1]] == [f"{has[-1]} = {len(has) - 1}", {"added": len(has) + 1, "source": "helper = 3"}]


# -- 3. a hunt's published run carries no wall time -----------------------------------------------------------------
TABLES = [name for name, value in vars(History()).items() if isinstance(value, Table)]  # every table a run has


@pytest.fixture(scope="module")
def published_run():
    """A hunt's run as it is published, trained (shortly) with the settings of the hunts' first trainer."""
    from pgcourse.classroom.hunts import TRAINER_SETTINGS, _train, _withheld

    run = _train({**TRAINER_SETTINGS[1], "total_steps": 512, "eval_every": 256, "eval_episodes": 1}, seed=0, trap=None)
    timed = {name: any(getattr(run.history, name)[c].any() for c in getattr(run.history, name) if "time" in c)
             for name in TABLES}
    assert all(timed.values())  # before: wall time in every table (evaluations too: settings= may ask for them)
    return _withheld(run)


@pytest.mark.parametrize("table", TABLES)
def test_no_table_of_a_hunts_published_run_carries_wall_time(published_run, table):
    """A bug's cost in seconds would be a side channel: in every table of a published run (updates, episodes, and
    any table a run holds), every time column is zero or absent."""
    columns = getattr(published_run.history, table)
    assert {c: columns[c].tolist() for c in columns if "time" in c and columns[c].any()} == {}


# -- 4. which answer cells count as a learner's work ----------------------------------------------------------------
def notebook_text(*answers: tuple[str, str]) -> str:
    notebook = nbformat.v4.new_notebook()
    for grade_id, source in answers:
        cell = nbformat.v4.new_code_cell(source)
        cell.metadata["nbgrader"] = {"grade_id": grade_id, "solution": True}
        notebook.cells.append(cell)
    return nbformat.writes(notebook)


STUB = "def f():\n    raise NotImplementedError()"
ANSWER = "def f():\n    return 42  # the learner's answer"


@pytest.mark.parametrize("current, regenerated, work", [
    ((("a", STUB),), (("a", STUB),), False),                          # as handed out
    ((("a", ANSWER),), (("a", STUB),), True),                         # answered
    ((("a", STUB), ("b", ANSWER)), (("a", STUB), ("b", STUB)), True),  # one of two answered
    ((("old", ANSWER),), (("new", STUB),), True),                     # the exercise's grade_id was renamed
    ((("old", STUB),), (("new", STUB),), True),                       # ... even an untouched stub: it is not the new one's
    ((("a", "b_stub"), ("b", "a_stub")), (("a", "a_stub"), ("b", "b_stub")), True),  # another grade_id's stub
], ids=["stub", "answered", "one-of-two", "renamed-answered", "renamed-stub", "swapped-stubs"])
def test_an_answer_cell_is_learner_work_unless_it_is_the_new_stub_of_its_grade_id(current, regenerated, work):
    """An answer cell is the learner's work (so the notebook is copied before it is replaced) unless its text is the
    stub of the same grade_id in the regenerated notebook; one whose grade_id that notebook no longer has is work."""
    from pgcourse.classroom.exercisegen import holds_learner_work

    assert holds_learner_work(notebook_text(*current), notebook_text(*regenerated)) is work


# -- the fifth audit's classroom survivors ----------------------------------------------------------------------------
def test_a_late_penalty_is_kept_in_the_gradebook_json_even_without_late_seconds():
    """The gradebook JSON keeps a student's late fields whenever a penalty was taken, also one with no seconds
    recorded (units given by hand): the total read back is the total graded."""
    from pgcourse.classroom.grading.gradebook import ExerciseResult, StudentResult, _student_json
    student = StudentResult("s", "s.ipynb", None, {"e": ExerciseResult(8.0, 10.0, "passed", "")}, penalty=2.0)
    found = _student_json(student)
    assert found["penalty"] == 2 and found["total"] == 6


@pytest.mark.parametrize("link_to", ["empty folder", "nowhere"])
def test_a_handout_target_that_is_a_link_is_refused(tmp_path, link_to):
    """A handout is written only into a real new or empty folder: a symbolic link (to an empty folder, or dangling)
    is refused, since writing through it would land somewhere the teacher did not name."""
    from pgcourse.classroom.handout import HandoutError, check_target
    destination = tmp_path / "elsewhere"
    if link_to == "empty folder":
        destination.mkdir()
    link = tmp_path / "handout"
    link.symlink_to(destination, target_is_directory=True)
    with pytest.raises(HandoutError, match="not a folder"):
        check_target(link, tmp_path / "course")


def test_a_forced_late_unit_count_costs_points_even_without_late_seconds():
    """``units`` forces the count (a Canvas LATE flag carries no time): two forced days at 10% a day take 2 of 10
    points although ``late_s`` is 0; with no forced count, 0 seconds late costs nothing."""
    from pgcourse.classroom.grading.assignment import LatePolicy
    policy = LatePolicy(deadline=datetime(2026, 1, 1, tzinfo=timezone.utc), amount=10.0, percent=True, unit_s=86400.0)
    assert policy.penalty(0.0, max_points=10.0, units=2) == (2.0, 2)
    assert policy.penalty(0.0, max_points=10.0) == (0.0, 0)


# -- the fifth audit's last classroom survivors -----------------------------------------------------------------------
def sized_answer(tokens: int) -> str:
    """A function whose normalised form has exactly ``tokens`` tokens (long names: far more characters than that)."""
    from pgcourse.classroom.grading.similarity import normalised_tokens
    for plus, times, attributes in itertools.product(range(30), range(30), range(3)):
        source = (f"def discounted_return_of(rewards_of_the_episode):\n"
                  f"    running_total_so_far = rewards_of_the_episode{'.total' * attributes}{' + 1' * plus}\n"
                  f"    return running_total_so_far{' * rewards_of_the_episode' * times}\n")
        if len(normalised_tokens(source)) == tokens:
            return source
    raise AssertionError(f"no answer of {tokens} tokens in the family")


def one_answer(student: str, grade_id: str, source: str) -> Submission:
    return Submission(student, Path(f"{student}.ipynb"), "x", cells=[code_cell(0, source, grade_id)])


def test_the_similarity_floor_counts_tokens_and_includes_min_tokens():
    """Two identical answers of exactly MIN_TOKENS normalised tokens are compared (a pair); of one token fewer they
    are not, however many characters they have (the floor is in tokens, not characters)."""
    from types import SimpleNamespace

    from pgcourse.classroom.grading.similarity import MIN_TOKENS, similar_pairs
    chapter = SimpleNamespace(answer_order=["e"], stubs={"e": []})
    at_floor, below = sized_answer(MIN_TOKENS), sized_answer(MIN_TOKENS - 1)
    assert len(below) > 2 * MIN_TOKENS  # characters
    assert [(p.first, p.second) for p in similar_pairs(chapter, [one_answer(s, "e", at_floor) for s in "ab"])] \
        == [("a", "b")]
    assert similar_pairs(chapter, [one_answer(s, "e", below) for s in "ab"]) == []


@pytest.mark.parametrize("stub_tokens", [0, 12])
def test_a_reference_copy_needs_at_least_min_own_tokens_of_the_solutions_own(stub_tokens):
    """A student's answer equal to the course's solution is reported when the solution adds MIN_OWN_TOKENS or more
    normalised tokens to the stub (exactly MIN_OWN_TOKENS included), not when it adds one fewer."""
    from pgcourse.classroom.grading.copies import MIN_OWN_TOKENS, reference_copies
    from pgcourse.classroom.grading.similarity import normalised_tokens
    stub = ["def helper(x):\n    return x.mean() + x.std()\n"] if stub_tokens else []
    stub_size = len(normalised_tokens("\n".join(stub)))  # no stub: 1, the syntax tree's root, no code of its own
    for own, reported in ((MIN_OWN_TOKENS, True), (MIN_OWN_TOKENS - 1, False)):
        reference = sized_answer(own + stub_size)
        chapter = Chapter(name="03", path=Path("03.ipynb"), context=[], exercises=[], answer_order=["e"],
                          grade_ids=frozenset({"e"}), reference={"e": [reference]}, stubs={"e": stub})
        found = reference_copies(chapter, [one_answer("ann", "e", reference)])
        assert [(c.student, c.tokens) for c in found] == ([("ann", own)] if reported else []), own


def test_a_hunt_reuses_a_bug_once_every_bug_of_its_kind_is_used(monkeypatch, tmp_path):
    """Bugs do not repeat within a kind of run while an unused one is left; once all are used (more trainers of a
    kind than it has bugs), drawing goes on from all of them rather than failing."""
    from pgcourse.classroom import hunts

    base = hunts._train({**hunts.TRAINER_SETTINGS[1], "total_steps": 256, "n_steps": 128}, seed=0, trap=None)
    monkeypatch.setattr(hunts, "candidates", lambda settings: ["stale_old_log_probs", "advantage_sign_flipped"])
    monkeypatch.setattr(hunts, "_train", lambda settings, seed, trap: copy.deepcopy(base))
    monkeypatch.setattr(hunts, "sound", lambda trap, settings, mystery, twin: None)
    entry = hunts.make_student_hunt("ann", "5e" * 32, tmp_path / "ann")
    drawn = [entry[str(k)]["trap"] for k in hunts.MYSTERIES]
    kinds = [f"{s['algo']}/{s['env_id']}" for s in (hunts.TRAINER_SETTINGS[k] for k in hunts.MYSTERIES)]
    for kind in set(kinds):
        of_kind = [trap for trap, k in zip(drawn, kinds) if k == kind]
        assert len(set(of_kind[:2])) == min(2, len(of_kind)), (kind, of_kind)  # no repeat while one is unused
    assert len(drawn) == len(hunts.MYSTERIES) and (tmp_path / "ann" / "hunt.json").exists()


@pytest.mark.parametrize("out", [1, 2, -1, True, "0"])
def test_a_vjp_asks_for_an_output_the_call_returned_or_is_a_protocol_error(out):
    """The student process answers a vector-Jacobian product only for an output index of that call (0 <= out <
    number of outputs, an int): any other index is refused as a protocol error before anything is computed."""
    from types import SimpleNamespace

    import torch

    from pgcourse.classroom.sandboxed.student import StudentServer
    from pgcourse.classroom.sandboxed.wire import ProtocolError
    server = StudentServer(SimpleNamespace(handlers={}, dec=lambda data, dec: torch.ones(2)))
    leaf = torch.zeros(2, requires_grad=True)
    server.calls[1] = ([leaf], [leaf * 3.0])  # one output
    assert torch.equal(server._h_vjp({"call": 1, "out": 0, "grad": None})[0], torch.full((2,), 3.0))
    with pytest.raises(ProtocolError):
        server._h_vjp({"call": 1, "out": out, "grad": None})


# -- the sixth audit's classroom survivors (and kills that only slower lanes made) -------------------------------------
@pytest.mark.parametrize("source", ["y = 1", "y = f(x)", "y = f(x, z)", "def f(x):\n    return x + 1",
                                    "def f(x):\n    return x + 1 + 2 + 3 + 4"])
def test_a_short_text_still_has_one_fingerprint_the_smallest_of_its_hashes(source):
    """Winnowing keeps the smallest hash of every window of W hashes; a text with fewer than W hashes (fewer than
    K + W - 1 tokens; fewer than K give one hash of all of them) is one window: one fingerprint, never none. So a
    short starter stub is still subtracted from the students' fingerprints."""
    from pgcourse.classroom.grading.similarity import W, _hashes, fingerprints, normalised_tokens
    hashes = _hashes(normalised_tokens(source))
    expected = {min(hashes[i:i + W]) for i in range(len(hashes) - W + 1)} if len(hashes) >= W else {min(hashes)}
    assert hashes and fingerprints(source) == expected, (source, len(hashes))


@pytest.mark.parametrize("shape, dtype", [([0, 3], "float32"), ([2, 0], "bool"), ([0], "int64")])
def test_a_tensor_with_an_empty_dimension_crosses_the_wire(shape, dtype):
    """A size-0 dimension is a valid shape (a student's function may return an empty batch): it is encoded and
    decoded to the same empty tensor, not refused as a protocol error."""
    import torch

    from pgcourse.classroom.sandboxed.wire import _Enc, _tensor_from, _tensor_payload
    tensor = torch.zeros(shape, dtype=getattr(torch, dtype))
    back = _tensor_from(_tensor_payload(tensor, _Enc()))
    assert back.shape == tensor.shape and back.dtype == tensor.dtype


def test_three_kept_copies_in_one_second_are_three_files(monkeypatch, tmp_path):
    """Regenerating an exercise copies the learner's notebook first, never over an earlier copy: three copies
    made within one second are three files, each with the content it was made from."""
    import datetime as real_datetime

    from pgcourse.classroom import exercisegen

    class Frozen(real_datetime.datetime):
        @classmethod
        def now(cls, tz=None):
            return cls(2026, 1, 2, 3, 4, 5)
    monkeypatch.setattr(real_datetime, "datetime", Frozen)
    notebook = tmp_path / "03_a2c_gae.ipynb"
    kept = []
    for version in range(3):
        notebook.write_text(f"version {version}")
        kept.append(exercisegen.keep_learner_copy(notebook))
    assert len(set(kept)) == 3 and [k.read_text() for k in kept] == [f"version {v}" for v in range(3)]


@pytest.mark.parametrize("late_s, units", [(1.0, 1), (3600.0, 1), (86400.0, 1), (86401.0, 2)])
def test_a_late_unit_started_is_a_unit_charged(late_s, units):
    """Late units are counted up: an hour late under a per-day penalty is one day late, a day and a second two."""
    from pgcourse.classroom.grading.assignment import LatePolicy
    policy = LatePolicy(deadline=datetime(2026, 1, 1, tzinfo=timezone.utc), amount=10.0, percent=True, unit_s=86400.0)
    assert policy.penalty(late_s, max_points=10.0) == (float(units), units)


@pytest.mark.parametrize("page", ["html", "markdown"])
def test_both_feedback_formats_hide_expected_values_when_asked(page):
    """With hide_expected, a failed check's expected values are hidden on the HTML page as on the Markdown page (the
    received values stay: they are the student's own)."""
    from types import SimpleNamespace

    from pgcourse.classroom.grading import feedback
    message = "double: wrong result.\n  expected: 6\n  received: 4"
    result = SimpleNamespace(points=0.0, max_points=2.0, status="failed", feedback=message, answer="", comment="",
                             teacher_points=None)
    exercise = SimpleNamespace(id="e", label="double")
    report = SimpleNamespace(name="01", chapter=SimpleNamespace(exercises=[exercise]))
    row = SimpleNamespace(file="s.ipynb", student="s", total=0.0, max_total=2.0, penalty=0.0, no_submission=False,
                          problem=None, exercises={"e": result}, notes=[])
    render = feedback.html_page if page == "html" else feedback.markdown
    shown, hidden = render(report, row), render(report, row, hide_expected=True)
    assert "expected: 6" in shown
    assert "expected: 6" not in hidden and "(hidden)" in hidden and "received: 4" in hidden


def test_a_published_hunt_run_withholds_its_seed_and_its_bug(published_run):
    """The run a student gets names neither its bug nor its seed (a seed would let them replay every bug against it)."""
    from pgcourse.course.debugging.bug_hunt import WITHHELD_SEED
    assert published_run.config.seed == WITHHELD_SEED and published_run.config.traps == ()


def test_making_hunts_again_keeps_a_student_the_key_already_has(tmp_path):
    """Re-running make_hunts for a student in the key whose folder exists keeps both (no training, no refusal);
    only a folder the key does not know is refused."""
    import json

    from pgcourse.classroom import hunts
    from pgcourse.course.debugging.bug_hunt import KEY_FORMAT
    out, key_path = tmp_path / "hunts", tmp_path / "teacher" / "key.json"
    key_path.parent.mkdir()
    (out / "ann").mkdir(parents=True)
    entry = {"1": {"trap": "stale_old_log_probs", "seed": 7}}
    key_path.write_text(json.dumps({"format": KEY_FORMAT, "secret": "5e" * 32, "students": {"ann": entry}}))
    lines = []
    key = hunts.make_hunts(["ann"], out, key_path, log=lines.append)
    assert key["students"]["ann"] == entry and any("already in the key, kept" in line for line in lines)
    (out / "bob").mkdir()
    with pytest.raises(ValueError, match="the key has no entry"):
        hunts.make_hunts(["bob"], out, key_path, log=lines.append)


# -- the seventh audit's classroom survivors ---------------------------------------------------------------------------
@pytest.mark.parametrize("size, whole", [(0, True), (9, True), (10, True), (11, False)])
def test_a_file_of_exactly_the_size_limit_is_read_whole(tmp_path, size, whole):
    """``read_limited`` refuses only a file larger than its limit: a file of exactly ``limit`` bytes (or fewer) is
    read whole, one byte more is too large (issue 45, seventh audit #22)."""
    from pgcourse.classroom.grading.gradebook import _NotRead, read_limited
    path = tmp_path / "s.ipynb"
    path.write_bytes(b"x" * size)
    if whole:
        assert read_limited(path, limit=10)[0] == b"x" * size
    else:
        with pytest.raises(_NotRead, match="too large"):
            read_limited(path, limit=10)


def test_a_late_penalty_of_100_percent_is_valid_and_leaves_0_points():
    """``--late-penalty 100%`` is the documented "a late submission gets nothing": it is accepted and a late
    submission loses all its points; above 100% is refused (issue 45, seventh audit #23)."""
    from pgcourse.classroom.grading.assignment import GradingError, LatePolicy
    for penalty in ("100%", "100%/day"):
        policy = LatePolicy.parse("2026-01-01T00:00:00Z", penalty, None)
        assert policy.penalty(1.0, max_points=7.0) == (7.0, 1), penalty
    with pytest.raises(GradingError, match="above 100%"):
        LatePolicy.parse("2026-01-01T00:00:00Z", "100.5%", None)


@pytest.mark.parametrize("entry, student", [(".ipynb", ".ipynb"), ("ann.ipynb", "ann"), ("ann", "ann"),
                                            ("x.ipynb.ipynb", "x.ipynb")])
def test_a_submission_entry_drops_its_ipynb_suffix_only_when_a_name_is_left(entry, student):
    """The student of a plain entry is its name without ``.ipynb``, dropped only when something is left: an entry
    named just ``.ipynb`` is student ``.ipynb``, never the empty name (issue 45, seventh audit #24)."""
    from pgcourse.classroom.grading.identity import identity_of
    assert identity_of(entry).student == student


def test_canvass_points_possible_and_test_student_rows_are_not_students(tmp_path):
    """A Canvas gradebook export carries two rows that are no student: "Points Possible" and the course's "Test
    Student" (the teacher's student view); the roster holds the real students only (issue 45, seventh audit #25)."""
    from pgcourse.classroom.grading.lms import read_roster
    (tmp_path / "r.csv").write_text("Student,ID,SIS User ID,SIS Login ID,Section\n    Points Possible,,,,\n"
                                    "Test Student,98,,,A\n"
                                    "\"Smith, Alice\",777,S9,asmith,A\n")
    assert [entry.name for entry in read_roster(tmp_path / "r.csv").entries] == ["Smith, Alice"]


def test_a_bug_refused_twice_is_not_drawn_again(monkeypatch, tmp_path, published_run):
    """A drawn bug whose run is not sound (it shows too little) counts a refusal for its kind of run; refused twice,
    it is not drawn again for that kind (issue 45, seventh audit #26): with one bug always refused and one sound,
    every kind of run with two or more trainers draws the refused one exactly twice, and no kind more often."""
    from pgcourse.classroom import hunts
    refused, sound_one = "stale_old_log_probs", "advantage_sign_flipped"
    draws = []

    def train(settings, seed, trap):
        if trap is not None:
            draws.append((f"{settings['algo']}/{settings['env_id']}", trap))
        return copy.deepcopy(published_run)
    monkeypatch.setattr(hunts, "candidates", lambda settings: [refused, sound_one])
    monkeypatch.setattr(hunts, "_train", train)
    monkeypatch.setattr(hunts, "sound", lambda trap, settings, mystery, twin: "too quiet" if trap == refused else None)
    hunts.make_student_hunt("ann", "5e" * 32, tmp_path / "ann")
    kinds = [f"{s['algo']}/{s['env_id']}" for s in (hunts.TRAINER_SETTINGS[k] for k in hunts.MYSTERIES)]
    for kind in set(kinds):
        times = draws.count((kind, refused))
        assert times == 2 if kinds.count(kind) >= 2 else times <= 2, (kind, draws)


def test_the_numpy_state_right_after_seeding_crosses_the_wire():
    """numpy's MT19937 position runs from 0 to 624 inclusive: 624 is the state right after seeding (the next draw
    regenerates the 624 words). A state at any position in [0, 624] is set on the other side as it was sent; 625 is
    a protocol error (issue 45, seventh audit #27)."""
    import json
    import random

    import numpy as np
    import torch

    from pgcourse.classroom.sandboxed.wire import MT_WORDS, ProtocolError, _rng_get, _rng_set
    saved = torch.get_rng_state(), np.random.get_state(), random.getstate()
    try:
        for doubles, pos in ((0, MT_WORDS), (1, 2), (100, 200)):  # a double takes two words
            np.random.seed(5)
            np.random.random(doubles)
            state, expected = json.loads(json.dumps(_rng_get())), np.random.get_state()
            assert state["np"][1] == pos
            np.random.seed(6)
            _rng_set(state)
            now = np.random.get_state()
            assert now[2] == expected[2] and np.array_equal(now[1], expected[1])
        state["np"][1] = MT_WORDS + 1
        with pytest.raises(ProtocolError, match="numpy position 625"):
            _rng_set(state)
    finally:
        torch.set_rng_state(saved[0])
        np.random.set_state(saved[1])
        random.setstate(saved[2])


@pytest.mark.parametrize("step", [1.0, 0.3])
def test_work_that_waits_longer_than_the_window_is_idle(monkeypatch, step):
    """``idle`` compares the work done over the last IDLE_WINDOW_S wall seconds with that window's share: the clock
    keeps, with the samples of the window, the newest sample at least a window old, so a worker that computes
    nothing for longer than the window is idle (for as long as it has waited), and one that computes is not (issue
    45, seventh audit #28)."""
    from types import SimpleNamespace

    from pgcourse.classroom.sandboxed import clock
    for share, idle in ((0.0, True), (0.5, False)):
        now = [0.0]
        monkeypatch.setattr(clock, "time", SimpleNamespace(monotonic=lambda: now[0],
                                                           process_time=lambda: share * now[0]))
        work = clock.WorkClock()
        work.measures = "cpu"
        while now[0] <= 2 * clock.IDLE_WINDOW_S:
            work.sample()
            now[0] += step
        waited = work._samples[-1][0]
        assert work.idle(since_wall=0.0) == (waited if idle else None), (share, work._samples)


@pytest.mark.parametrize("hidden", [".git", ".env"])
def test_a_folder_holding_only_dotfiles_is_not_empty(tmp_path, hidden):
    """A handout is written only into a new or empty folder; a folder that holds only a hidden entry (a .git
    folder, a .env file) is not empty and is refused, as nothing of the teacher's is overwritten (issue 45, seventh
    audit #29)."""
    from pgcourse.classroom.handout import HandoutError, check_target
    target = tmp_path / "handout"
    target.mkdir()
    check_target(target, tmp_path / "course")  # empty: fine
    (target / hidden).mkdir() if hidden == ".git" else (target / hidden).write_text("KEY=1\n")
    with pytest.raises(HandoutError, match="not empty"):
        check_target(target, tmp_path / "course")


def test_a_folder_that_cannot_be_listed_is_not_taken_as_empty(tmp_path, monkeypatch):
    """Emptiness is read from the folder's own listing: a folder whose entries cannot be listed (write and search
    permission without read) is refused with an error, never taken as empty and written into over a README.md of the
    teacher's it may hold (issue 45, seventh audit #29: ``glob("*")`` reads such a folder as empty). The listing is
    refused here by the test, since root reads any folder."""
    import os

    from pgcourse.classroom.handout import HandoutError, check_target
    target = tmp_path / "handout"
    target.mkdir()
    (target / "README.md").write_text("the teacher's own\n")

    def refusing(real):
        def listing(path=".", *args, **kwargs):
            if isinstance(path, (str, os.PathLike)) and Path(path) == target:
                raise PermissionError(13, "Permission denied", str(path))
            return real(path, *args, **kwargs)
        return listing
    monkeypatch.setattr(os, "scandir", refusing(os.scandir))
    monkeypatch.setattr(os, "listdir", refusing(os.listdir))
    with pytest.raises((HandoutError, OSError)):
        check_target(target, tmp_path / "course")


# -- the eighth audit's classroom survivors ----------------------------------------------------------------------------
@pytest.mark.parametrize("roster_email, given", [("ana.lopez@uni.edu", "Ana.Lopez@UNI.edu"),
                                                 ("Ana.Lopez@Uni.Edu", "ana.lopez@uni.edu"),
                                                 ("ANA.LOPEZ@UNI.EDU", "Ana.Lopez@uni.EDU")])
def test_an_email_matches_its_roster_row_whatever_the_case_on_either_side(roster_email, given):
    """An email address names its roster row whatever the letter case, on the roster's side or on the submission's
    (issue 45, eighth audit #22): the student is found by the email alone (no name of the roster's matches)."""
    from pgcourse.classroom.grading.lms import Roster, RosterEntry
    ana = RosterEntry({"email address": roster_email, "student": "Ana Lopez"})
    other = RosterEntry({"email address": "bo.chen@uni.edu", "student": "Bo Chen"})
    roster = Roster([other, ana], header=["Student", "Email address"], source="test")
    assert roster.match("s123", {"email": given}) is ana


@pytest.mark.parametrize("text", [" x ", "  x  ", " x", "x ", "`x", "x`", " `x` ", "a`b", "x y"])
def test_a_code_span_shows_its_text_as_written_also_with_spaces_at_both_ends(text):
    """``md_code(text)`` renders as ``text`` exactly: CommonMark drops one space at each end of a code span's content
    when both ends have one (and the content is not all spaces), so a text that begins or ends with a space or a
    backtick is padded with one space each side, and the text read back by that rule is the text given (issue 45,
    eighth audit #24)."""
    from pgcourse.classroom.grading.feedback import md_code
    span = md_code(text)
    fence = len(span) - len(span.lstrip("`"))
    assert span[:fence] == span[-fence:] == "`" * fence and "`" * fence not in span[fence:-fence]
    content = span[fence:-fence]
    if content.startswith(" ") and content.endswith(" ") and content.strip(" "):
        content = content[1:-1]
    assert content == text, span


def _report_worth(points: float):
    from pgcourse.classroom.grading.gradebook import ExerciseResult, GradeReport, StudentResult
    from pgcourse.classroom.grading.sandbox import Limits
    exercise = Exercise(id="ch02_why", check_grade_id="ch02_why", points=points, check_source="", answer_ids=("a",),
                        kind="manual")
    chapter = Chapter(name="02", path=Path("02.ipynb"), context=[], exercises=[exercise], answer_order=["a"],
                      grade_ids=frozenset({"a"}), reference=None, stubs={})
    student = StudentResult("ann", "ann.ipynb", None, {"ch02_why": ExerciseResult(0, points, "manual", "")})
    return GradeReport(chapter, [student], Limits(), "none", "", 0.0)


def test_the_teacher_may_give_full_marks_but_not_more():
    """A manual file's points for an exercise are at most what it is worth: exactly its worth (full marks) and 0
    are applied, a quarter point more is refused and nothing is applied (issue 45, eighth audit #25)."""
    from pgcourse.classroom.grading.course import GradingError
    from pgcourse.classroom.grading.manual import ManualEntry, apply_manual
    for given in (2.0, 0.0):
        report = _report_worth(2.0)
        assert apply_manual(report, [ManualEntry("ann", "why", given, "", 2)], "--manual m.csv") == 1
        assert report.student("ann").exercises["ch02_why"].points == given
    report = _report_worth(2.0)
    with pytest.raises(GradingError, match="worth 2; give at most 2"):
        apply_manual(report, [ManualEntry("ann", "ch02_why", 2.25, "", 2)], "--manual m.csv")
    assert report.student("ann").exercises["ch02_why"].points == 0


@pytest.mark.parametrize("shape, dtype", [([3], "float32"), ([2, 2], "int64"), ([4], "bool"), ([0, 3], "float32")])
@pytest.mark.parametrize("change", [-1, 1, 8])
def test_a_tensor_payloads_data_is_exactly_its_shapes_bytes(shape, dtype, change):
    """A tensor payload's data is exactly ``numel * itemsize`` bytes: a byte short, a byte over or whole elements
    over is a protocol error (a corrupt or forged message, refused at the door), never a tensor read from part of
    it nor a crash further on (issue 45, eighth audit #26)."""
    import base64

    import torch

    from pgcourse.classroom.sandboxed.wire import ProtocolError, _Enc, _tensor_from, _tensor_payload
    payload = _tensor_payload(torch.ones(shape, dtype=getattr(torch, dtype)), _Enc())
    assert _tensor_from(payload).shape == tuple(shape)
    raw = base64.b64decode(payload["data"])
    if change < 0 and not raw:
        return  # nothing to take a byte from: the over-long payloads cover the empty tensor
    payload["data"] = base64.b64encode(raw[:change] if change < 0 else raw + b"\x01" * change).decode()
    with pytest.raises(ProtocolError, match="wrong size"):
        _tensor_from(payload)


def test_idleness_is_judged_only_on_work_after_the_check_began(monkeypatch):
    """``idle(since_wall)`` measures the last IDLE_WINDOW_S wall seconds, all after ``since_wall``: a worker that
    did nothing for two windows is idle for a check that began before them, and not (yet) for one that began less
    than a window ago, since the samples before that check say nothing of it (issue 45, eighth audit #27)."""
    from types import SimpleNamespace

    from pgcourse.classroom.sandboxed import clock
    now = [0.0]
    monkeypatch.setattr(clock, "time", SimpleNamespace(monotonic=lambda: now[0], process_time=lambda: 0.0))
    work = clock.WorkClock()
    work.measures = "cpu"
    while now[0] <= 2 * clock.IDLE_WINDOW_S:
        work.sample()
        now[0] += 0.5
    last = work._samples[-1][0]
    assert work.idle(since_wall=0.0) == last
    recent = last - clock.IDLE_WINDOW_S / 2
    assert work.idle(since_wall=recent) is None
    assert work.idle(since_wall=last - clock.IDLE_WINDOW_S) == clock.IDLE_WINDOW_S  # exactly a window: judged


def test_only_moodle_participants_who_share_a_name_get_their_number():
    """Moodle participants are told apart by their number only when two or more of them share a name: a name
    alone in the class (one participant, even with several files) stays the student id as it is (issue 45, eighth
    audit #28)."""
    from pgcourse.classroom.grading.identity import attribute_files, identity_of
    names = ["Alice Smith_123456", "Alice Smith_654321", "Bob Jones_111111", "Bob Jones_111111"]
    owned = [(identity_of(f"{name}_assignsubmission_file_ch01.ipynb"), Path(f"{name}_{i}.ipynb"), False)
             for i, name in enumerate(names)]
    found = attribute_files(owned)
    assert [owner.student for owner in found] == ["Alice Smith_123456", "Alice Smith_654321", "Bob Jones", "Bob Jones"]
    assert [owner.namesake for owner in found] == [True, True, False, False]


@pytest.mark.parametrize("closed", [True, False], ids=["closing-pipe", "no-closing-pipe"])
def test_the_handout_drops_exactly_the_solutions_column_of_start_heres_table(closed):
    """START_HERE's table loses its last column (the solutions links) and nothing else, whether its rows end with a
    pipe or not: every row keeps its other cells, and no row mentions solutions/ (issue 45, eighth audit #29)."""
    from pgcourse.classroom.handout import start_here_without_solutions
    end = " |" if closed else ""
    rows = ["| Lesson | Notebook | Solution" + end, "|---|---|---" + ("|" if closed else ""),
            "| 01 | [01](notebooks/01.ipynb) | [sol](solutions/01.ipynb)" + end]
    notebook = {"cells": [{"cell_type": "markdown", "metadata": {}, "source": "\n".join(["Intro", *rows, "End"])}]}
    text = start_here_without_solutions(notebook)["cells"][0]["source"]
    assert text.split("\n") == ["Intro", "| Lesson | Notebook |", "|---|---|", "| 01 | [01](notebooks/01.ipynb) |",
                                "End"]


# -- bugs the tenth session's test writers found ----------------------------------------------------------------------
@pytest.mark.parametrize("pair", [("a" * 130 + " x", "a" * 130 + "!x"), ("a" * 121, "a" * 122), ("a" * 200, "a" * 201)])
def test_two_students_never_share_a_feedback_file_name_however_long_their_ids(pair):
    """A student's feedback file is named after the id, cut to a length every file system takes, and carries a short
    hash of the id whenever the name is not the id itself (cut, or with characters replaced): two ids never share a
    file name, so one student's feedback never overwrites another's."""
    from pgcourse.classroom.grading.feedback import file_stem
    first, second = (file_stem(student) for student in pair)
    assert first != second and len(first) <= 120 and len(second) <= 120, (first, second)
    assert file_stem("ann") == "ann" and file_stem("a" * 120) == "a" * 120  # short plain ids keep their names


@pytest.mark.parametrize("blank", ["\n", "\n\n", " , ,\n"])
def test_a_bad_row_of_a_manual_file_is_named_by_its_line_in_the_file(tmp_path, blank):
    """A manual file's error names the line of the file the bad row is on, blank lines above it counted."""
    from pgcourse.classroom.grading.course import GradingError
    from pgcourse.classroom.grading.manual import read_manual
    path = tmp_path / "manual.csv"
    path.write_text("student,exercise,points\n" + blank + "ann,e,x\n", encoding="utf-8")
    line = 2 + blank.count("\n")
    with pytest.raises(GradingError, match=rf"line {line}: points 'x' is not a number"):
        read_manual(path)


def test_a_bad_time_in_a_timestamps_file_is_named_by_its_line_in_the_file(tmp_path):
    """A timestamps file's error names the line of the file the bad time is on (blank lines and a quoted field that
    spans two lines above it counted)."""
    from pgcourse.classroom.grading.course import GradingError
    from pgcourse.classroom.grading.identity import read_timestamps
    path = tmp_path / "times.csv"
    path.write_text('student,submitted_at\n\n"bob\nsmith",2025-03-01T10:00:00+00:00\nann,not a time\n',
                    encoding="utf-8")
    with pytest.raises(GradingError, match=r"line 5"):
        read_timestamps(path)


@pytest.mark.parametrize("name", ["Иван Петров", "Zoé Li", "李 小龙"])
def test_a_roster_matches_names_in_any_script_as_the_term_does(name):
    """The LMS roster matches a name on the same keys as the term's identities (letters of any script): a name
    outside ASCII keeps its letters, so 'Zoé Li' and 'Zoë Li' are two people and 'Иван Петров' has keys."""
    from pgcourse.classroom.grading.identity import person_keys
    from pgcourse.classroom.grading.lms import name_keys
    assert name_keys(name) and name_keys(name) == person_keys(name)
    assert not name_keys("Zoé Li") & name_keys("Zoë Li")


def test_a_timestamps_row_shorter_than_its_header_is_refused_with_its_line(tmp_path):
    """A timestamps row with no student (shorter than the header) is a GradingError naming its line, not a crash."""
    from pgcourse.classroom.grading.course import GradingError
    from pgcourse.classroom.grading.identity import read_timestamps
    path = tmp_path / "times.csv"
    path.write_text("time,student\n2025-03-14T10:00Z\n", encoding="utf-8")
    with pytest.raises(GradingError, match=r"line 2: no student"):
        read_timestamps(path)


@pytest.mark.parametrize("assignment", ["lab2", "HW2", "Week3", "exercise1", "Assignment4", "ex5", "02", "ch02"])
def test_a_file_named_like_the_chapter_belongs_to_the_folder_above_any_assignment_folder(tmp_path, assignment):
    """A file named like the chapter, alone in an assignment's folder (any name the grader reads as an assignment's,
    in any case), is the student's whose folder holds that assignment folder."""
    from pgcourse.classroom.grading.identity import owners_of_files
    path = tmp_path / "submitted" / "alice" / assignment / "02_reinforce.ipynb"
    path.parent.mkdir(parents=True)
    path.write_text("{}", encoding="utf-8")
    [(owner, in_folder)] = owners_of_files([path], ["02_reinforce"])
    assert owner.student == "alice" and in_folder


@pytest.mark.parametrize("row, kept", [
    ("|04c|[lesson](notebooks/04c.ipynb)|no exercises||", "|04c|[lesson](notebooks/04c.ipynb)|no exercises|"),
    ("| 04 | [lesson](a.ipynb) | [solutions](b.ipynb) |", "| 04 | [lesson](a.ipynb) |"),
    ("| 04 | a | b", "| 04 | a |"),
])
def test_the_handout_drops_only_the_last_column_of_a_row_even_an_empty_one(row, kept):
    """Dropping START_HERE's last column (the solutions) removes exactly one cell, also when that cell is empty and
    written without a space ('||'), and also from a row written without its closing pipe."""
    from pgcourse.classroom.handout import _drop_last_column
    assert _drop_last_column(row) == kept


@pytest.mark.parametrize("grace", ["2w", "1234567s", "1000000s", "0.1234567s", "90m"])
def test_an_update_rereads_the_stored_grace_whatever_its_size(grace):
    """The grace an --update takes from the gradebook is written so that it reads back as the same number of seconds
    (no exponent that --grace would refuse, no digits lost), also for two weeks and for odd seconds."""
    from pgcourse.classroom.grading.assignment import LatePolicy, parse_duration
    from pgcourse.classroom.grading import timing
    policy = LatePolicy.parse("2025-03-14T23:59+00:00", "10%/day", grace)
    text = timing.settings_for_update(policy, {}, {})[0]["grace"]  # (the settings to grade with, the changes)
    assert parse_duration(text, "--grace") == policy.grace_s
