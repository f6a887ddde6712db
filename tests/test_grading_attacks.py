"""A hostile class against ``pgcourse grade``: what a curious student could write in an afternoon.

Each student below is one attack of the grader-safety issue, graded with the real course (chapters 00
and 01) in the bubblewrap sandbox. Every attack must gain nothing: no points it did not earn, no file
written outside the sandbox, no secret of the teacher, nothing of another student. (Symlinks, CSV
formulas, two notebooks, huge files: tests/test_grading_submissions.py; the bug hunt: test_traps.py;
honest answers the grader rejected: test_grading_agreement.py.)
"""
from __future__ import annotations

import json
import os
import socket
import sys
import tempfile
import threading
from pathlib import Path

import pytest

from pgcourse.classroom import grading
from pgcourse.classroom.grading.grader import synthetic_notebook
from pgcourse.classroom.grading.sandbox import SANDBOX, probe_sandbox

ROOT = Path(__file__).resolve().parent.parent
pytestmark = pytest.mark.skipif(probe_sandbox()[0] != SANDBOX,
                                reason="no bubblewrap sandbox on this machine (make test installs bubblewrap as root)")
LIMITS = grading.Limits(exercise_s=20, submission_s=90, memory_mb=256)
SECRET = "teacher-token-4f9c2e"
HONEST_PLAY = '''
    obs, _ = env.reset(seed=seed)
    total, length = 0.0, 0
    while True:
        obs, reward, terminated, truncated, _ = env.step(policy(obs))
        total, length = total + float(reward), length + 1
        if terminated or truncated:
            return total, length, terminated, truncated
'''
RIGHT_RETURNS = '''import torch
def discounted_returns(rewards, gamma):
    out, running = torch.zeros_like(rewards.detach()), 0.0
    for t in range(len(rewards) - 1, -1, -1):
        running = rewards[t].detach() + gamma * running
        out[t] = running
    return out  # MARKER-alice-3a1f
'''


def play_answer(attack: str) -> str:
    return f"def play_episode(env, policy, seed):\n{attack}{HONEST_PLAY}"


@pytest.fixture(scope="module")
def outside(tmp_path_factory):
    """A folder outside /tmp (the sandbox has its own /tmp, so this is where a leak would land)."""
    folder = Path(tempfile.mkdtemp(prefix="pgcourse-attack-", dir="/var/tmp"))
    yield folder
    import shutil
    shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture(scope="module")
def listener():
    """A TCP server on 127.0.0.1 that records whether anyone connected."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen()
    server.settimeout(0.2)
    seen: list[str] = []
    stop = threading.Event()

    def serve():
        while not stop.is_set():
            try:
                connection, _ = server.accept()
            except OSError:
                continue
            seen.append(connection.recv(100).decode(errors="replace"))
            connection.close()

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    yield server.getsockname()[1], seen
    stop.set()
    thread.join()
    server.close()


def grade(folder: Path, chapter: str, answers: dict[str, dict[str, str]], jobs: int = 1, **kwargs):
    course = grading.load_course(ROOT)
    the_chapter = course.chapter(course.resolve(chapter))
    folder.mkdir(parents=True, exist_ok=True)
    for student, cells in answers.items():
        (folder / f"{student}.ipynb").write_text(json.dumps(synthetic_notebook(the_chapter, cells)))
    out = folder / "grades.csv"
    limits = kwargs.pop("limits", LIMITS)
    report = grading.grade_paths([folder], out=out, chapter=chapter, course=ROOT, limits=limits, jobs=jobs,
                                 progress=False, **kwargs)
    return report, (folder / "grades.json").read_text() + out.read_text()


@pytest.fixture(scope="module")
def chapter00(outside, listener, tmp_path_factory):
    port, _ = listener
    # Harmless names where a sitecustomize.py would do harm: a broken grader must not break this machine.
    site = next(p for p in sys.path if p.endswith("site-packages"))
    written = [outside / "from-env.bin", ROOT / "solutions" / "written-by-a-student.txt",
               Path(site) / "written-by-a-student.txt", Path(os.__file__).parent / "written-by-a-student.txt"]
    writes = "".join(f"    try:\n        env.env.np_random.choice(['x'], size=1).tofile({str(p)!r})\n"
                     f"    except Exception:\n        pass\n" for p in written)
    answers = {
        "env_writes_files": {"ch00_play_episode": play_answer(writes)},
        "env_memory": {"ch00_play_episode": play_answer("    env.env.np_random.random(size=int(2e8))\n")},
        "env_segfault": {"ch00_play_episode": play_answer(
            "    import ctypes\n    ctypes.string_at(env.env.np_random.bit_generator.ctypes.state_address * 0)\n")},
        "forks": {"ch00_play_episode": play_answer(
            "    import os\n    for _ in range(4):\n        if os.fork() == 0:\n            bytearray(200 * 2**20)\n"
            "            import time; time.sleep(30)\n")},
        "network": {"ch00_play_episode": play_answer(
            f"    import socket\n    socket.create_connection(('127.0.0.1', {port}), timeout=2).sendall(b'leak')\n")},
        "kills_everyone": {"ch00_play_episode": play_answer(
            "    import os, signal\n    for pid in [int(p) for p in os.listdir('/proc') if p.isdigit()]:\n"
            "        if pid != os.getpid():\n            try:\n                os.kill(pid, signal.SIGKILL)\n"
            "            except OSError:\n                pass\n")},
        # issue 26 item 5.1: memory that RLIMIT_AS does not count (memfd files, kept open, never mapped)
        "memfd_hoard": {"ch00_play_episode": "import os\n_HOARD = []\nfor _ in range(100):\n"
                                             "    _HOARD.append(os.memfd_create('hoard'))\n"
                                             "    os.write(_HOARD[-1], bytes(4 << 20))\n" + play_answer("")},
        "honest": {"ch00_play_episode": play_answer("")},
        "honest_too": {"ch00_play_episode": play_answer("")},
        # 2^25 booleans: 44 MB on the wire, which the check would turn into gigabytes of Python floats
        "huge_result": {"ch00_completed_returns": "import torch\n_BIG = torch.ones(1 << 25, dtype=torch.bool)\n"
                                                  "def completed_episode_returns(rewards, terminated, truncated):\n"
                                                  "    return _BIG\n"},
    }
    os.environ["PGCOURSE_TEACHER_TOKEN"] = SECRET
    try:
        report, text = grade(outside / "class00", "00", answers, jobs=2)
        os.environ.pop("PGCOURSE_TEACHER_TOKEN", None)
        yield report, text, [path for path in written if path.exists()]
    finally:
        os.environ.pop("PGCOURSE_TEACHER_TOKEN", None)
        for path in written:
            if path.exists():
                path.unlink()


def status(report, student, exercise):
    result = report.student(student).exercises[exercise]
    return result.status, result.points, result.feedback


def test_the_environment_cannot_write_outside_the_sandbox(chapter00):
    report, _, written = chapter00
    assert written == []
    assert status(report, "env_writes_files", "ch00_play_episode")[1] == 1  # the honest part still counts


def test_memory_and_crashes_stay_in_the_student_process(chapter00):
    report, _, _ = chapter00
    assert status(report, "env_memory", "ch00_play_episode")[:2] in (("error", 0), ("crashed", 0))
    segfault = status(report, "env_segfault", "ch00_play_episode")
    assert segfault[:2] == ("crashed", 0), segfault
    assert status(report, "honest", "ch00_play_episode")[:2] == ("passed", 1)


def test_memory_outside_the_address_space_is_refused(chapter00):
    """100 memfd files of 4 MB (400 MB held, --memory 256): RLIMIT_AS counts no unmapped file, so the old grader
    let the answer pass holding it (issue 26, item 5.1); memfd_create is refused, and the student is told why."""
    report, _, _ = chapter00
    state, points, feedback = status(report, "memfd_hoard", "ch00_play_episode")
    assert (state, points) == ("error", 0), (state, points, feedback)
    assert "memfd_create is not available while grading" in feedback, feedback
    assert status(report, "honest", "ch00_play_episode")[:2] == ("passed", 1)


def test_no_new_processes(chapter00):
    report, _, _ = chapter00
    state, points, feedback = status(report, "forks", "ch00_play_episode")
    assert (state, points) == ("error", 0) and "Operation not permitted" in feedback


def test_no_student_can_reach_another_students_process(chapter00):
    """With two workers grading at once, a student who kills every process it can see harms nobody."""
    report, _, _ = chapter00
    assert status(report, "kills_everyone", "ch00_play_episode")[:2] == ("passed", 1)  # it sees only itself
    assert status(report, "honest", "ch00_play_episode")[:2] == ("passed", 1)
    assert status(report, "honest_too", "ch00_play_episode")[:2] == ("passed", 1)


def test_a_huge_result_costs_only_its_exercise(chapter00):
    report, _, _ = chapter00
    state, points, feedback = status(report, "huge_result", "ch00_completed_returns")
    assert (state, points) == ("error", 0) and "more than 1,048,576 numbers" in feedback, feedback


def test_no_network(chapter00, listener):
    report, _, _ = chapter00
    _, seen = listener
    assert seen == []
    assert status(report, "network", "ch00_play_episode")[1] == 0


def test_the_teachers_environment_does_not_reach_the_gradebook(chapter00):
    _, text, _ = chapter00
    assert SECRET not in text


@pytest.fixture(scope="module")
def chapter01(outside):
    classmate = outside / "class01" / "alice.ipynb"
    solution = ROOT / "solutions" / "01_reinforce.ipynb"
    steal = '''import json, glob, os, sys, gc
def _answers(path):
    cells = json.load(open(path))["cells"]
    return ["".join(c["source"]) for c in cells if c.get("metadata", {}).get("nbgrader", {}).get("solution")]
found = []
for pattern in PATTERNS:
    for path in glob.glob(pattern, recursive=True):
        try:
            found += _answers(path)
        except Exception:
            pass
for source in found:
    try:
        exec(source)
    except Exception:
        pass
'''
    patterns = [str(solution), str(classmate), str(ROOT / "**" / "*.ipynb"), os.getcwd() + "/**/*.ipynb",
                str(outside / "**" / "*.ipynb")]
    memory = '''import gc, linecache, sys
needle = "-".join(["MARKER", "alice", "3a1f"])  # a line of alice's answer, never written whole here
found = [line for lines in linecache.cache.values() for line in (lines[2] if len(lines) > 2 else [])
         if needle in line]
for container in gc.get_objects():
    items = container.values() if isinstance(container, dict) else container if isinstance(container, list | tuple) else ()
    found += [item for item in items if isinstance(item, str) and item is not needle and needle in item]
try:
    with open("/proc/self/mem", "rb") as memory:
        memory.read(1)
except OSError:
    pass
def discounted_returns(rewards, gamma):
    if not found:
        raise RuntimeError("nothing of alice in memory")
    raise RuntimeError("found alice: " + found[0][:80])
'''
    spy = '''import os, sys
beside_the_interpreter = sorted(os.listdir(os.path.dirname(sys.prefix)))
raise RuntimeError(f"uid={os.getuid()} env={dict(os.environ)} shadow={os.path.exists('/etc/shadow')} "
                   f"beside={beside_the_interpreter}")
'''
    answers = {
        "alice": {"ch01_discounted_returns": RIGHT_RETURNS},
        "mallory_memory": {"ch01_discounted_returns": memory},
        "mallory_files": {"ch01_log_probs": steal.replace("PATTERNS", repr(patterns))},
        "mallory_imports": {"ch01_discounted_returns": "from pgcourse.returns import discounted_returns\n"},
        "mallory_spy": {"ch01_normalize": spy},
    }
    os.environ["PGCOURSE_TEACHER_TOKEN"] = SECRET
    try:
        return grade(outside / "class01", "01", answers, jobs=1)
    finally:
        os.environ.pop("PGCOURSE_TEACHER_TOKEN", None)


def test_solutions_and_classmates_are_out_of_reach(chapter01):
    report, _ = chapter01
    assert report.student("mallory_files").total == 0
    assert report.student("alice").exercises["ch01_discounted_returns"].points == 2


def test_nothing_of_an_earlier_student_is_in_memory(chapter01):
    report, _ = chapter01
    state, points, feedback = status(report, "mallory_memory", "ch01_discounted_returns")
    assert points == 0 and "nothing of alice in memory" in feedback


def test_the_reference_answers_cannot_be_imported(chapter01):
    report, _ = chapter01
    state, points, feedback = status(report, "mallory_imports", "ch01_discounted_returns")
    assert points == 0 and "not available while grading" in feedback


def test_the_student_is_an_unprivileged_user_with_a_clean_environment(chapter01):
    report, text = chapter01
    _, _, feedback = status(report, "mallory_spy", "ch01_normalize")
    uid = int(feedback.rsplit("uid=", 1)[1].split()[0])  # the message, not the source line in the traceback
    assert uid != 0  # never root, even when the teacher is
    assert uid >= 200_000 if os.getuid() == 0 else uid == os.getuid()  # a uid of its own (no account, no files)
    assert "PGCOURSE_TEACHER_TOKEN" not in feedback and SECRET not in text
    assert "shadow=False" in feedback
    # beside the interpreter's folder (the course folder, for a venv inside it) only the interpreter's folder
    assert f"beside={[Path(sys.prefix).name]}" in feedback


def test_without_a_sandbox_grading_refuses_unless_asked(outside, monkeypatch):
    monkeypatch.setenv("PATH", "/nonexistent")  # bwrap cannot be found by the grading worker
    with pytest.raises(grading.GradingError, match="unsafe-no-sandbox"):
        grade(outside / "refused", "01", {"someone": {}})
    report, _ = grade(outside / "unsafe", "01", {"someone": {}}, isolation=grading.UNSAFE)
    assert report.isolation == grading.UNSAFE


def test_cells_that_sleep_cost_their_exercises_budget_not_the_timeout(outside):
    """Four answer cells that sleep (issue 26, item 5.2: one submission took 152 s instead of ~17 s, each sleep
    costing the whole --timeout): each costs its exercise's budget (10 x the solution's own time, at least 5 s),
    its points and a message, and nothing else; the right answer beside them passes."""
    import time

    sleeper = "import time\ntime.sleep(600)\n"
    answers = {"sleepy": {"ch01_log_probs": sleeper, "ch01_normalize": sleeper, "ch01_reinforce_loss": sleeper,
                          "ch01_collect_episodes": sleeper, "ch01_discounted_returns": RIGHT_RETURNS}}
    limits = grading.Limits(exercise_s=120, submission_s=700, memory_mb=256)  # room for a loaded machine
    started = time.monotonic()
    report, _ = grade(outside / "sleepy", "01", answers, limits=limits)
    elapsed = time.monotonic() - started
    for exercise in ("ch01_log_probs", "ch01_normalize", "ch01_reinforce_loss", "ch01_collect_episodes"):
        state, points, feedback = status(report, "sleepy", exercise)
        assert (state, points) == ("timeout", 0), (exercise, state, feedback)
        assert "this exercise's budget of" in feedback and "Only this exercise lost its points" in feedback, feedback
        budget = float(feedback.split("budget of ", 1)[1].split()[0])
        assert 5 <= budget < limits.exercise_s, feedback
    assert status(report, "sleepy", "ch01_discounted_returns")[:2] == ("passed", 2)
    # the old grader slept the whole --timeout four times: at least 480 s (and started, self-tested, graded too;
    # 287 s with --timeout 40 on the shared 2-core machine, this code 129-165 s there at load 10-15)
    assert elapsed < 4 * limits.exercise_s, elapsed
