"""One resource envelope whoever grades (issue 46, item 1): the same attacks graded by a root teacher and by a
teacher who is not root give the same verdicts.

A red team found that an unprivileged teacher's sandbox left ``/``, ``/dev`` and ``/scratch`` writable (tmpfs that
nothing watched: 700 MB each, host shared memory 8 -> 2,108 MB), System V message queues open (480 MB of kernel
memory outside ``--memory``) and threads uncapped (2,000 started). Each answer below tries one of them and plays
the episode honestly only when the attack was refused, so ``passed`` means the sandbox held. The unprivileged
teacher is ``nobody`` (``setpriv``), grading the same notebooks with the same course.
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from pgcourse.classroom import grading
from pgcourse.classroom.grading.grader import synthetic_notebook
from pgcourse.classroom.grading.sandbox import SANDBOX, probe_sandbox
from test_grading_attacks import HONEST_PLAY  # the honest episode every attack ends with

ROOT = Path(__file__).resolve().parent.parent
pytestmark = pytest.mark.skipif(probe_sandbox()[0] != SANDBOX,
                                reason="no bubblewrap sandbox on this machine (make test installs bubblewrap as root)")
LIMITS = dict(exercise_s=30, submission_s=120)  # the default --memory (2048 MB), as the red team had
NOBODY = 65534


def play_after(attack: str) -> str:
    """An answer that runs ``attack`` (which raises when it got through) before playing honestly."""
    return f"{attack}\ndef play_episode(env, policy, seed):\n{HONEST_PLAY}"


ATTACKS = {
    "honest": "",
    # 16 files of 4 MB (each under the 8 MB a file may hold) in each folder beside the watched one: the root,
    # /dev, /usr, the runner's folder (as root the runner's sized /scratch is the scratch folder, /tmp read-only)
    "writes_everywhere": '''import os
_WROTE = []
for _folder in ("/", "/dev", "/usr", "/grading"):
    try:
        for _i in range(16):
            with open(os.path.join(_folder, f"hoard{_i}.bin"), "wb") as _f:
                _f.write(bytes(4 << 20))
        _WROTE.append(_folder)
    except OSError:
        pass
if _WROTE:
    raise RuntimeError(f"wrote 64 MB in {_WROTE}")
''',
    # kernel memory outside every limit of the process: System V queues and semaphores, a POSIX queue, a key
    "kernel_channels": '''import ctypes, os
_libc = ctypes.CDLL(None, use_errno=True)
_OPENED = []
for _name, _call in (("msgget", lambda: _libc.msgget(0, 0o1600)), ("semget", lambda: _libc.semget(0, 1, 0o1600)),
                     ("mq_open", lambda: _libc.mq_open(b"/hoard", os.O_CREAT | os.O_RDWR, 0o600, None)),
                     ("add_key", lambda: _libc.syscall({"x86_64": 248, "aarch64": 217}[os.uname().machine],
                                                      b"user", b"hoard", b"x" * 1000, 1000, -2))):
    if _call() != -1 or ctypes.get_errno() != 1:
        _OPENED.append(_name)
if _OPENED:
    raise RuntimeError(f"opened {_OPENED}")
''',
    # a thread bomb: more threads than the cap, each waiting, with stacks small enough for --memory
    "threads": '''import threading
threading.stack_size(1 << 16)  # small stacks: the address-space limit alone would stop a few hundred
_RELEASE, _STARTED = threading.Event(), 0
try:
    for _ in range(1000):
        threading.Thread(target=_RELEASE.wait, daemon=True).start()
        _STARTED += 1
except RuntimeError:
    pass
_RELEASE.set()
if _STARTED >= 1000:
    raise RuntimeError(f"started {_STARTED} threads")
''',
}


def write_class(folder: Path) -> Path:
    course = grading.load_course(ROOT)
    chapter = course.chapter(course.resolve("00"))
    folder.mkdir(parents=True, exist_ok=True)
    folder.chmod(0o777)
    for student, attack in ATTACKS.items():
        notebook = synthetic_notebook(chapter, {"ch00_play_episode": play_after(attack)})
        (folder / f"{student}.ipynb").write_text(json.dumps(notebook))
    return folder


GRADE = '''import json, sys
from pgcourse.classroom import grading
folder, out, course, limits = sys.argv[1], sys.argv[2], sys.argv[3], json.loads(sys.argv[4])
report = grading.grade_paths([folder], out=out, chapter="00", course=course, limits=grading.Limits(**limits),
                             jobs=1, progress=False)
verdicts = {name: [report.student(name).exercises["ch00_play_episode"].status,
                   report.student(name).exercises["ch00_play_episode"].feedback] for name in sys.argv[5:]}
print(json.dumps(dict(verdicts, isolation=report.isolation_detail)))
'''


def hidden_ancestor() -> tuple[Path, str] | None:
    """The first folder on the way to this interpreter that other users cannot enter (pyenv under /root), and the
    name of its child on that way; None when nobody can reach the interpreter as it is."""
    real = Path(os.path.realpath(sys.executable))
    for folder in reversed(real.parents):
        if folder != Path("/") and not folder.stat().st_mode & 0o001:
            return folder, real.relative_to(folder).parts[0]
    return None


def as_nobody(command: list[str], stash: Path) -> list[str]:
    """``command`` as an unprivileged teacher (nobody). Where the interpreter sits in a folder only root may enter,
    a private mount namespace (this command's alone) covers that folder with an empty one that holds only the way
    to the interpreter: the machine's folders are not changed, and nobody sees no more than that way."""
    drop = ["setpriv", f"--reuid={NOBODY}", f"--regid={NOBODY}", "--clear-groups", *command]
    hidden = hidden_ancestor()
    if hidden is None:
        return drop
    folder, child = hidden
    script = ('set -e; mount --bind "$1" "$2"; mount -t tmpfs -o mode=755 tmpfs "$1"; mkdir "$1/$3"; '
              'mount --bind "$2/$3" "$1/$3"; shift 3; exec "$@"')
    return ["unshare", "--mount", "--propagation", "private", "sh", "-c", script, "sh", str(folder), str(stash),
            child, *drop]


def grade_as(folder: Path, unprivileged: bool) -> dict[str, list[str]]:
    """Grade ``folder/class`` in a fresh process, as nobody or as this process's user (root)."""
    out = folder / "grades.csv"
    command = [sys.executable, "-c", GRADE, str(write_class(folder / "class")), str(out), str(ROOT),
               json.dumps(LIMITS), *ATTACKS]
    env = dict(os.environ, HOME=str(folder), SDL_VIDEODRIVER="dummy")
    if unprivileged:
        stash = folder / "stash"
        stash.mkdir()
        command = as_nobody(command, stash)
    done = subprocess.run(command, capture_output=True, text=True, env=env, timeout=900)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    return json.loads(done.stdout.splitlines()[-1])


def nobody_can_grade() -> str | None:
    """Why an unprivileged teacher cannot be tried here, or None."""
    missing = [tool for tool in ("setpriv", "unshare") if shutil.which(tool) is None]
    if os.geteuid() != 0 or missing:
        return f"needs root, setpriv and unshare to grade as an unprivileged teacher (nobody); missing {missing}"
    with tempfile.TemporaryDirectory(dir="/var/tmp") as stash:
        probe = subprocess.run(as_nobody([sys.executable, "-c", f"import pgcourse; open({str(ROOT / 'pyproject.toml')!r})"],
                                         Path(stash)), capture_output=True, text=True)
    return None if probe.returncode == 0 else f"nobody cannot run the course here ({probe.stderr.strip()[-300:]})"


@pytest.fixture(scope="module")
def verdicts():
    folders = {}
    try:
        results = {}
        for teacher in ("root", "unprivileged"):
            if teacher == "unprivileged" and nobody_can_grade():
                continue
            folder = Path(tempfile.mkdtemp(prefix=f"pgcourse-envelope-{teacher}-", dir="/var/tmp"))
            folder.chmod(0o777)
            folders[teacher] = folder
            results[teacher] = grade_as(folder, teacher == "unprivileged")
        yield results
    finally:
        for folder in folders.values():
            shutil.rmtree(folder, ignore_errors=True)


@pytest.mark.parametrize("teacher", ["root", "unprivileged"])
@pytest.mark.parametrize("attack", [name for name in ATTACKS if name != "honest"])
def test_the_sandbox_holds_for_every_teacher(verdicts, teacher, attack):
    if teacher not in verdicts:
        pytest.skip(nobody_can_grade() or "not root")
    status, feedback = verdicts[teacher][attack]
    assert status == "passed", f"{teacher} teacher, {attack}: {status}: {feedback[-600:]}"
    assert verdicts[teacher]["honest"][0] == "passed", verdicts[teacher]["honest"]


@pytest.mark.parametrize("teacher", ["root", "unprivileged"])
def test_the_teacher_is_told_which_limits_hold(verdicts, teacher):
    if teacher not in verdicts:
        pytest.skip(nobody_can_grade() or "not root")
    detail = verdicts[teacher]["isolation"]
    assert "at most 256 threads" in detail and "no System V IPC" in detail, detail
    assert ("private /scratch of --scratch MB" if teacher == "root" else "everything else read-only") in detail, detail
