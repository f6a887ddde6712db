"""Tests that pin the definitions of the code that runs inside the grader's sandbox (issue 45, item 5).

The slow grading tests run this code only through whole sandboxed gradings, which test paths, not definitions: a
one-line bug in a limit, a guard or a loss term could pass them. Each test below states one definition of
``pgcourse.classroom.sandboxed.runner`` (limits and rlimits computed from the config, the course-package block),
``student`` (the student process's requests and what crosses back), ``episode_cases`` (the episode guard, the
cases, the probes) and ``ppo_proof`` (the reference PPO gradient) on small objects built here: no sandbox, no
worker process, no training. What needs the operating system (mount, setuid, prctl, dup2) is replaced by fakes
that record the calls, so that the values the code computes are what is checked.
"""
from __future__ import annotations

import builtins
import copy
import errno
import io
import json
import linecache
import math
import os
import random
import signal
import socket
import statistics
import sys
import types
import warnings
from types import SimpleNamespace

import gymnasium as gym
import numpy as np
import pytest
import torch
from torch import nn

from pgcourse.classroom.sandboxed import episode_cases, loops, ppo_proof, runner, student
from pgcourse.classroom.sandboxed import link as link_module
from pgcourse.classroom.sandboxed import wire as wire_module
from pgcourse.classroom.sandboxed.link import Link
from pgcourse.classroom.sandboxed.wire import MAX_TEXT, NotData, ProtocolError, TooLarge, _Dec, _Enc, _rng_get

HERE = os.path.dirname(runner.__file__)


class Exited(BaseException):
    """What a faked ``os._exit`` raises, carrying the exit code (the real one would end the test process)."""


def fake_exit(code):
    raise Exited(code)


# ==================================================================================================================
# runner.py
# ==================================================================================================================

def test_the_runners_constants_are_the_grading_sides_and_the_kernels():
    """The runner cannot import the grading side, so it repeats its constants: the sandbox's scratch folder and the
    nobody group are the grading side's; the prctl options are Linux's PR_SET_PDEATHSIG (1) and
    PR_SET_NO_NEW_PRIVS (38); a student process may hold 256 tasks (threads)."""
    from pgcourse.classroom.grading import sandbox
    assert runner.SANDBOX_SCRATCH == sandbox.SANDBOX_SCRATCH == "/scratch"
    assert runner.NOBODY == sandbox.NOBODY == 65534
    assert (runner._PR_SET_PDEATHSIG, runner._PR_SET_NO_NEW_PRIVS) == (1, 38)
    assert runner.THREADS == 256


@pytest.mark.parametrize("name", ["rl", "course", "_private", "x__y", "rl_losses", "Ünïcode"])
def test_every_attribute_of_the_blocked_course_package_is_an_import_error_naming_it(name):
    """``import pgcourse`` in the sandbox gives a module whose every attribute (a private one too) raises an
    ImportError that names ``pgcourse.<attribute>`` and says why the package is kept out."""
    blocked = runner._CourseBlocked("pgcourse", "blocked")
    with pytest.raises(ImportError) as info:
        getattr(blocked, name)
    assert str(info.value).startswith(f"pgcourse.{name} is not available while grading")
    assert "reference answers" in str(info.value) and "torch and numpy" in str(info.value)


@pytest.mark.parametrize("name", ["__file__", "__wrapped__", "__all__", "__"])
def test_dunder_attributes_of_the_blocked_package_are_plainly_missing(name):
    """A dunder name (what ``hasattr`` probes, pickling, IPython's completer) is an AttributeError, not the policy's
    ImportError, so the machinery that probes modules is not broken by it."""
    blocked = runner._CourseBlocked("pgcourse", "blocked")
    with pytest.raises(AttributeError):
        getattr(blocked, name)


@pytest.mark.parametrize("fullname, refused", [
    ("pgcourse.rl", True), ("pgcourse.rl.losses", True), ("pgcourse.", True),
    ("pgcourse", False), ("pgcourse_extra", False), ("pgcoursex.rl", False), ("numpy", False),
    ("PGCOURSE.rl", False), ("my.pgcourse.rl", False)])
def test_the_course_finder_refuses_exactly_the_course_packages_submodules(fullname, refused):
    """The finder refuses every ``pgcourse.<...>`` submodule with an ImportError naming it (``import pgcourse``
    alone is answered by the blocked module); any other name, a look-alike or another case, is left to the other
    finders (None)."""
    finder = runner._BlockCourse()
    if refused:
        with pytest.raises(ImportError) as info:
            finder.find_spec(fullname)
        assert str(info.value).startswith(f"{fullname} is not available while grading")
    else:
        assert finder.find_spec(fullname) is None


def test_memfd_create_is_refused_with_the_memory_policy(monkeypatch):
    """Where Python offers ``os.memfd_create`` (memory the --memory limit would not count), it is replaced by a
    function that raises PermissionError(EPERM) saying why, whatever the arguments."""
    monkeypatch.setattr(os, "memfd_create", lambda *args, **kwargs: 3, raising=False)
    runner._refuse_outside_memory()
    for args, kwargs in ((("x",), {}), (("x", 0), {}), ((), {"name": "x", "flags": 1})):
        with pytest.raises(PermissionError) as info:
            os.memfd_create(*args, **kwargs)
        assert info.value.errno == errno.EPERM
        assert info.value.strerror.startswith("memfd_create is not available while grading")
        assert "--memory" in info.value.strerror


def test_no_memfd_create_is_added_where_python_has_none(monkeypatch):
    """On a platform without ``os.memfd_create`` nothing is added (a student's hasattr check stays truthful)."""
    monkeypatch.delattr(os, "memfd_create", raising=False)
    runner._refuse_outside_memory()
    assert not hasattr(os, "memfd_create")


class FakeResource:
    """``resource`` with one limit whose hard value is ``hard``; records setrlimit."""
    RLIM_INFINITY = -1
    RLIMIT_FSIZE = 7

    def __init__(self, hard):
        self.hard, self.set = hard, []

    def getrlimit(self, kind):
        return (12345, self.hard)

    def setrlimit(self, kind, pair):
        self.set.append((kind, pair))


@pytest.mark.parametrize("hard, value, expected", [
    (-1, 100, 100),       # no hard limit: the value
    (50, 100, 50),        # a lower hard limit: the hard limit (an unprivileged process cannot raise it)
    (100, 100, 100),      # equal
    (200, 100, 100),      # a higher hard limit: the value
    (-1, 0, 0)])
def test_a_limit_is_set_soft_and_hard_to_the_value_capped_by_the_hard_limit(monkeypatch, hard, value, expected):
    """``_set_limit`` sets both the soft and the hard limit to the value, or to the existing hard limit when that is
    finite and lower; the soft limit already in place plays no part."""
    fake = FakeResource(hard)
    monkeypatch.setattr(runner, "resource", fake)
    runner._set_limit("RLIMIT_FSIZE", value)
    assert fake.set == [(7, (expected, expected))]


def test_a_limit_the_platform_lacks_is_skipped(monkeypatch):
    """A limit the platform's ``resource`` does not have, or no ``resource`` module at all, sets nothing."""
    fake = FakeResource(-1)
    monkeypatch.setattr(runner, "resource", fake)
    runner._set_limit("RLIMIT_NOT_HERE", 5)
    assert fake.set == []
    monkeypatch.setattr(runner, "resource", None)
    runner._set_limit("RLIMIT_FSIZE", 5)  # no error


def fake_open(text=None, error=None, opened=None):
    def opener(path, *args, **kwargs):
        if opened is not None:
            opened.append(path)
        if error is not None:
            raise error
        return io.StringIO(text)
    return opener


@pytest.mark.parametrize("status, size", [
    ("Name:\tpython\nVmPeak:\t  9000 kB\nVmSize:\t  1234 kB\nVmRSS:\t 55 kB\n", 1234 * 1024),
    ("VmSize:\t0 kB\n", 0),
    ("Name:\tpython\nVmPeak:\t 9000 kB\n", 0),                # no VmSize line
    (" VmSize:\t 77 kB\nVmSize:\t 5 kB\n", 5 * 1024)])        # only a line that starts with it
def test_the_vm_size_is_the_kb_of_the_vmsize_line_in_bytes(monkeypatch, status, size):
    """The process's virtual size is read from /proc/self/status: the number on the line that starts with
    ``VmSize:``, in kB, times 1024; 0 when there is no such line."""
    opened = []
    monkeypatch.setattr(runner, "open", fake_open(status, opened=opened), raising=False)
    assert runner._vm_size() == size
    assert opened == ["/proc/self/status"]


def test_the_vm_size_is_0_when_the_status_file_cannot_be_read(monkeypatch):
    """No /proc (macOS) or an unreadable file: 0 (the address-space limit is then the memory limit alone)."""
    monkeypatch.setattr(runner, "open", fake_open(error=FileNotFoundError(2, "no /proc")), raising=False)
    assert runner._vm_size() == 0


class FakeLibc:
    def __init__(self, log, result=0):
        self.log, self.result = log, result

    def mount(self, *args):
        self.log.append(("mount",) + tuple(a.value if hasattr(a, "value") else a for a in args))
        return self.result

    def prctl(self, *args):
        self.log.append(("prctl",) + args)
        return 0


def test_a_mount_passes_its_arguments_to_libc(monkeypatch):
    """``_mount`` calls libc's mount(source, target, fstype, flags as an unsigned long, options); 0 is success."""
    log = []
    monkeypatch.setattr(runner, "_libc", lambda: FakeLibc(log, 0))
    runner._mount(b"tmpfs", b"/scratch", b"tmpfs", 6, b"size=1m")
    assert log == [("mount", b"tmpfs", b"/scratch", b"tmpfs", 6, b"size=1m")]


@pytest.mark.parametrize("result", [-1, 1])
def test_a_failed_mount_is_an_os_error_naming_the_target_and_the_errno(monkeypatch, result):
    """Any non-zero result of mount is an OSError carrying errno and naming the target folder."""
    monkeypatch.setattr(runner, "_libc", lambda: FakeLibc([], result))
    monkeypatch.setattr(runner.ctypes, "get_errno", lambda: errno.EPERM)
    with pytest.raises(OSError) as info:
        runner._mount(b"tmpfs", b"/scr\xc3\xa4tch", None, 0, None)
    assert info.value.errno == errno.EPERM
    assert str(info.value.strerror) == f"mount /scrätch: {os.strerror(errno.EPERM)}"


@pytest.mark.parametrize("scratch_mb, size", [(64, b"size=64m"), (1, b"size=1m"), (2.9, b"size=2m")])
def test_the_private_scratch_is_a_sized_tmpfs_and_tmp_is_made_read_only(monkeypatch, scratch_mb, size):
    """The scratch folder is a tmpfs of ``int(scratch_mb)`` MB, sticky and world-writable (mode 1777), mounted
    nosuid and nodev; then /tmp is remounted read-only, nosuid and nodev (MS_RDONLY 1, MS_NOSUID 2, MS_NODEV 4,
    MS_REMOUNT 32)."""
    calls = []
    monkeypatch.setattr(runner, "_mount", lambda *args: calls.append(args))
    runner._private_scratch("/scratch", scratch_mb)
    assert calls == [(b"tmpfs", b"/scratch", b"tmpfs", 2 | 4, size + b",mode=1777"),
                     (b"tmpfs", b"/tmp", None, 32 | 1 | 2 | 4, None)]


class BecomeOS:
    """What ``_become`` calls of os, recorded; ``after`` is (uid, euid) once setuid ran."""

    def __init__(self, after):
        self.log, self.after, self.switched = [], after, False

    def setgroups(self, groups):
        self.log.append(("setgroups", list(groups)))

    def setgid(self, gid):
        self.log.append(("setgid", gid))

    def setuid(self, uid):
        self.log.append(("setuid", uid))
        self.switched = True

    def getuid(self):
        return self.after[0] if self.switched else 0

    def geteuid(self):
        return self.after[1] if self.switched else 0


def test_becoming_the_student_drops_groups_then_sets_nobodys_group_then_the_uid(monkeypatch):
    """The switch away from root: no supplementary groups, the nobody group, then the student's uid (in that order:
    setuid first would leave no right to change the groups)."""
    fake = BecomeOS((200_001, 200_001))
    monkeypatch.setattr(runner, "os", fake)
    runner._become(200_001)
    assert fake.log == [("setgroups", []), ("setgid", 65534), ("setuid", 200_001)]


@pytest.mark.parametrize("uid, euid", [(0, 0), (0, 5), (5, 0)])
def test_still_root_after_the_switch_is_an_error(monkeypatch, uid, euid):
    """If either the real or the effective uid is still 0 after setuid, the runner refuses to go on."""
    monkeypatch.setattr(runner, "os", BecomeOS((uid, euid)))
    with pytest.raises(RuntimeError, match="could not leave the root user"):
        runner._become(5)


def test_warm_imports_try_every_module_and_go_on_past_a_missing_one(monkeypatch):
    """Every module of WARM_MODULES is imported, in order, before student code; one that fails to import (an
    optional package missing) does not stop the others."""
    import importlib
    real, tried = importlib.import_module, []

    def import_module(name, *args, **kwargs):
        if sys._getframe(1).f_code is runner._warm_imports.__code__:  # the runner's calls, not torch's own
            tried.append(name)
            if name in ("numpy.testing", "matplotlib"):
                raise ImportError(name)
            return types.ModuleType(name)
        return real(name, *args, **kwargs)
    monkeypatch.setattr(importlib, "import_module", import_module)
    grads, optimisers = [], []

    class Adam:
        def __init__(self, params, lr):
            optimisers.append([list(params), lr, 0])

        def step(self):
            optimisers[-1][2] += 1
    monkeypatch.setattr(torch.autograd, "grad", lambda *args, **kwargs: grads.append((args, kwargs)))
    monkeypatch.setattr(torch.optim, "Adam", Adam)
    runner._warm_imports()
    assert tried == list(runner.WARM_MODULES)
    # what a check's gradient and a loop's first optimiser import lazily is imported here: a VJP with grad_outputs,
    # a gradient of a sum, and one step of an Adam optimiser
    assert len(grads) == 2 and len(grads[0][0]) == 3 and grads[0][1]["retain_graph"] is True
    assert len(optimisers) == 1 and optimisers[0][1:] == [1e-3, 1]
    assert {"torch", "numpy", "gymnasium", "matplotlib.pyplot", "IPython.display", "socket", "tempfile"} <= \
        set(runner.WARM_MODULES)


@pytest.mark.parametrize("uid_map, release, counts", [
    ("0 0 4294967295", "6.1.0", False),                          # the initial namespace: every process counted
    ("         0          0 4294967295\n", "6.1.0", False),       # as the kernel prints it
    ("0 1000 1\n", "5.14.0", True),                               # a namespace of its own, on 5.14
    ("0 1000 1\n", "5.13.19-generic", False),                     # ... on 5.13
    ("0 1000 1\n", "5.15.0-91-generic", True),
    ("0 1000 1\n", "4.19.0", False),
    ("0 1000 1\n", "6.0", True),
    ("0 1000 1\n", "10.1.0", True),                               # compared as numbers, not text
    ("0 0 4294967294\n", "6.8.0", True),                          # another map is a namespace of its own
    ("0 1000 1\n", "6", False),                                   # no minor version: unknown
    ("0 1000 1\n", "6.x.1", False)])
def test_nproc_counts_only_the_sandbox_in_its_own_user_namespace_on_linux_5_14_or_later(
        monkeypatch, uid_map, release, counts):
    """RLIMIT_NPROC counts only the sandbox's tasks when its uid_map is not the initial namespace's identity map
    (0 0 4294967295) and the kernel is 5.14 or later; an unreadable release is "no"."""
    opened = []
    monkeypatch.setattr(runner, "open", fake_open(uid_map, opened=opened), raising=False)
    monkeypatch.setattr(os, "uname", lambda: SimpleNamespace(release=release))
    assert runner._counts_own_namespace() is counts
    assert opened == ["/proc/self/uid_map"]


def test_nproc_is_not_known_to_count_the_sandbox_alone_without_a_uid_map(monkeypatch):
    """No /proc/self/uid_map (not Linux): False."""
    monkeypatch.setattr(runner, "open", fake_open(error=OSError(2, "none")), raising=False)
    monkeypatch.setattr(os, "uname", lambda: SimpleNamespace(release="6.1.0"))
    assert runner._counts_own_namespace() is False


class EnterOS:
    """The os functions ``_enter`` calls, recorded in ``log``; file descriptors from 10 up."""
    path, devnull = os.path, os.devnull
    O_RDONLY, O_WRONLY, O_CREAT, O_TRUNC = os.O_RDONLY, os.O_WRONLY, os.O_CREAT, os.O_TRUNC

    def __init__(self, log, uid):
        self.log, self.uid, self.next_fd = log, uid, 10
        self.environ = {"PATH": "/usr/bin", "SECRET": "s3cret"}

    def geteuid(self):
        return self.uid

    def getuid(self):
        return self.uid

    def chdir(self, path):
        self.log.append(("chdir", path))

    def open(self, path, flags, mode=0o777):
        self.next_fd += 1
        self.log.append(("open", path, flags, mode, self.next_fd - 1))
        return self.next_fd - 1

    def chmod(self, path, mode):
        self.log.append(("chmod", path, mode))

    def fchown(self, fd, uid, gid):
        self.log.append(("fchown", fd, uid, gid))

    def dup2(self, fd, to):
        self.log.append(("dup2", fd, to))

    def close(self, fd):
        self.log.append(("close", fd))

    def closerange(self, low, high):
        self.log.append(("closerange", low, high))


class EnterSignal:
    SIGALRM, SIGINT, SIGTERM, SIGXFSZ, SIGKILL = (signal.SIGALRM, signal.SIGINT, signal.SIGTERM, signal.SIGXFSZ,
                                                 signal.SIGKILL)
    SIG_DFL, SIG_IGN = signal.SIG_DFL, signal.SIG_IGN

    def __init__(self, log):
        self.log = log

    def signal(self, number, handler):
        self.log.append(("signal", number, handler))


LIMITS = {"exercise_s": 30.0, "submission_s": 300.0, "memory_mb": 2048, "output_mb": 8, "scratch_mb": 64}


def enter(monkeypatch, config, uid=0, platform="linux", own_namespace=False):
    """``runner._enter(config)`` with every effect on the process faked; (result, log, limits set, the fake os)."""
    log, limits = [], {}
    fake_os = EnterOS(log, uid)

    def become(to):
        log.append(("become", to))
        fake_os.uid = to
    monkeypatch.setattr(runner, "os", fake_os)
    monkeypatch.setattr(runner, "sys", SimpleNamespace(platform=platform))
    monkeypatch.setattr(runner, "signal", EnterSignal(log))
    monkeypatch.setattr(runner, "_libc", lambda: FakeLibc(log))
    monkeypatch.setattr(runner, "_warm_imports", lambda: log.append(("warm",)))
    monkeypatch.setattr(runner, "_private_scratch", lambda folder, mb: log.append(("private_scratch", folder, mb)))
    monkeypatch.setattr(runner, "_become", become)
    monkeypatch.setattr(runner, "_counts_own_namespace", lambda: own_namespace)
    monkeypatch.setattr(runner, "_set_limit", lambda name, value: limits.__setitem__(name, value))
    result = runner._enter(config)
    return result, log, limits, fake_os


def config_of(mode="sandbox", uid=200_001, fd=5, scratch="/home/t/scratch", **limits):
    return {"fd": fd, "limits": {**LIMITS, **limits}, "mode": mode, "scratch": scratch, "uid": uid}


@pytest.mark.parametrize("output_mb, submission_s, fsize, cpu", [
    (8, 300.0, 8 * 1024 * 1024, 310), (1, 1.0, 1024 * 1024, 11), (0.5, 12.7, 512 * 1024, 22),
    (100, 3600, 100 * 1024 * 1024, 3610)])
def test_the_rlimits_come_from_the_config(monkeypatch, output_mb, submission_s, fsize, cpu):
    """No core files (0); a file (and the output) at most output_mb MiB (output_mb * 2**20 bytes); 256 open files;
    CPU seconds: the submission's budget (whole seconds) plus 10."""
    _, _, limits, _ = enter(monkeypatch, config_of(output_mb=output_mb, submission_s=submission_s))
    assert {k: limits[k] for k in ("RLIMIT_CORE", "RLIMIT_FSIZE", "RLIMIT_NOFILE", "RLIMIT_CPU")} == {
        "RLIMIT_CORE": 0, "RLIMIT_FSIZE": fsize, "RLIMIT_NOFILE": 256, "RLIMIT_CPU": cpu}


@pytest.mark.parametrize("mode, euid, own_namespace, config_uid, nproc", [
    ("sandbox", 0, False, 200_001, True),                # root: switched to the worker's own uid
    ("sandbox", 1000, True, 200_001, True),              # a teacher who is not root, in a namespace of its own
    ("sandbox", 1000, False, 200_001, False),            # ... where the kernel would count all the teacher's tasks
    ("unsafe-no-sandbox", 1000, True, 200_001, False),   # never outside the sandbox, for the teacher's own user
    ("unsafe-no-sandbox", 1000, False, 1000, True),      # unless the process already is the configured user
    ("unsafe-no-sandbox", 0, False, 200_001, True)])     # root outside the sandbox: switched, then limited
def test_the_thread_limit_applies_only_where_it_counts_the_students_tasks_alone(
        monkeypatch, mode, euid, own_namespace, config_uid, nproc):
    """RLIMIT_NPROC (THREADS tasks) is set when the process runs as the configured uid (after the switch from root)
    or in a sandbox whose user namespace the kernel counts on its own; never for the teacher's own user."""
    _, _, limits, _ = enter(monkeypatch, config_of(mode=mode, uid=config_uid), uid=euid, own_namespace=own_namespace)
    assert limits.get("RLIMIT_NPROC") == (256 if nproc else None)


@pytest.mark.parametrize("config_uid, becomes", [(200_001, 200_001), (None, 65534), (0, 65534), (12, 12)])
def test_root_becomes_the_configured_uid_or_nobody_never_root(monkeypatch, config_uid, becomes):
    """As root, the runner makes the scratch folder sticky and world-writable (1777), gives the output file to the
    student (uid, nobody's group) and switches to the configured uid; a missing uid, or 0, is nobody (65534)."""
    (fd, scratch), log, _, _ = enter(monkeypatch, config_of(uid=config_uid), uid=0)
    output = next(entry[4] for entry in log if entry[0] == "open" and entry[1].endswith("output.log"))
    assert ("chmod", "/scratch", 0o1777) in log
    assert ("fchown", output, becomes, 65534) in log
    assert [entry for entry in log if entry[0] == "become"] == [("become", becomes)]


@pytest.mark.parametrize("mode, euid, scratch, private", [
    ("sandbox", 0, "/scratch", True), ("sandbox", 1000, "/tmp", False),
    ("unsafe-no-sandbox", 1000, "/home/t/scratch", False), ("unsafe-no-sandbox", 0, "/home/t/scratch", False)])
def test_the_scratch_folder_depends_on_the_mode_and_on_root(monkeypatch, mode, euid, scratch, private):
    """In the sandbox as root: /scratch, a private sized tmpfs (scratch_mb); in the sandbox otherwise: bwrap's /tmp;
    outside it: the config's own scratch folder. It is the working folder, HOME, TMPDIR and MPLCONFIGDIR."""
    (fd, folder), log, _, fake_os = enter(monkeypatch, config_of(mode=mode), uid=euid)
    assert folder == scratch and ("chdir", scratch) in log
    assert [e for e in log if e[0] == "private_scratch"] == ([("private_scratch", "/scratch", 64)] if private else [])
    assert fake_os.environ["HOME"] == fake_os.environ["TMPDIR"] == fake_os.environ["MPLCONFIGDIR"] == scratch
    assert any(e[0] == "chmod" for e in log) is (euid == 0)


def test_the_output_goes_to_a_private_log_and_every_other_descriptor_is_closed(monkeypatch):
    """stdin reads /dev/null; stdout and stderr write scratch/output.log (created, truncated, mode 600); every
    descriptor from 3 to 1023 is closed except the socket's; the socket's descriptor is returned."""
    (fd, scratch), log, _, _ = enter(monkeypatch, config_of(mode="sandbox", fd=7), uid=1000)
    opens = [e for e in log if e[0] == "open"]
    assert opens == [("open", os.devnull, os.O_RDONLY, 0o777, 10),
                     ("open", "/tmp/output.log", os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600, 11)]
    assert fd == 7
    assert [e for e in log if e[0] in ("dup2", "close", "closerange")] == [
        ("dup2", 10, 0), ("dup2", 11, 1), ("dup2", 11, 2), ("close", 10), ("close", 11),
        ("closerange", 3, 7), ("closerange", 8, 1024)]


def test_the_environment_is_replaced_not_extended(monkeypatch):
    """The student's environment is exactly: HOME, TMPDIR and MPLCONFIGDIR the scratch folder, matplotlib's Agg
    backend, one OpenMP thread, hash seed 0, SDL's dummy video driver; nothing of the teacher's (PATH, secrets)."""
    _, _, _, fake_os = enter(monkeypatch, config_of(mode="sandbox"), uid=1000)
    assert fake_os.environ == {"HOME": "/tmp", "TMPDIR": "/tmp", "MPLCONFIGDIR": "/tmp", "MPLBACKEND": "Agg",
                               "OMP_NUM_THREADS": "1", "PYTHONHASHSEED": "0", "SDL_VIDEODRIVER": "dummy"}


@pytest.mark.parametrize("platform, prctl", [("linux", True), ("darwin", False)])
def test_signals_and_prctl_before_any_course_code(monkeypatch, platform, prctl):
    """First (on Linux) the process dies with its parent (PR_SET_PDEATHSIG SIGKILL); the alarm, interrupt and
    terminate signals get their default action; a too-large write fails (SIGXFSZ ignored) instead of killing; the
    warm imports run as the starting user, before the switch; no new privileges (Linux) after it."""
    _, log, _, _ = enter(monkeypatch, config_of(mode="sandbox"), uid=0, platform=platform)
    signals = [e for e in log if e[0] == "signal"]
    assert signals == [("signal", signal.SIGALRM, signal.SIG_DFL), ("signal", signal.SIGINT, signal.SIG_DFL),
                       ("signal", signal.SIGTERM, signal.SIG_DFL), ("signal", signal.SIGXFSZ, signal.SIG_IGN)]
    prctls = [e for e in log if e[0] == "prctl"]
    if prctl:
        assert prctls == [("prctl", 1, signal.SIGKILL, 0, 0, 0), ("prctl", 38, 1, 0, 0, 0)]
        assert log[0] == ("prctl", 1, signal.SIGKILL, 0, 0, 0)
        assert log.index(("warm",)) < log.index(("become", 200_001)) < log.index(("prctl", 38, 1, 0, 0, 0))
    else:
        assert prctls == []
    assert log.index(("warm",)) < log.index(("become", 200_001))
    assert log.index(("chmod", "/scratch", 0o1777)) < log.index(("become", 200_001))


# -- runner.main, with the process's effects faked -------------------------------------------------------------------
def run_main(monkeypatch, config_json, *, mode="sandbox", platform="linux", vm_size=5000, serve_error=None):
    """``runner.main(config_json)`` with _enter, the socket, the link and the server faked; (exit code, log)."""
    import tempfile
    log = []
    fake_sys = SimpleNamespace(platform=platform, meta_path=[], modules={})

    class FakeLink:
        def __init__(self, sock, trusted):
            log.append(("link", sock, trusted))

        def send(self, message):
            log.append(("send", message))

    class FakeServer:
        def __init__(self, link):
            log.append(("server", type(link).__name__))

        def serve_forever(self):
            log.append(("serve",))
            if serve_error is not None:
                raise serve_error

    monkeypatch.setattr(runner, "_enter", lambda config: (log.append(("enter", config)), (9, "/scr"))[1])
    monkeypatch.setattr(runner, "_refuse_outside_memory", lambda: log.append(("refuse_memory",)))
    monkeypatch.setattr(runner, "_set_limit", lambda name, value: log.append(("limit", name, value)))
    monkeypatch.setattr(runner, "_vm_size", lambda: vm_size)
    monkeypatch.setattr(runner, "sys", fake_sys)
    monkeypatch.setattr(runner, "os", SimpleNamespace(_exit=fake_exit, getpid=lambda: 4242, getuid=lambda: 200_001))
    monkeypatch.setattr(socket, "socket", lambda fileno: ("socket", fileno))
    monkeypatch.setattr(tempfile, "tempdir", tempfile.tempdir)
    monkeypatch.setattr(episode_cases, "warm_up", lambda: log.append(("warm_up_episodes",)))
    monkeypatch.setattr(link_module, "Link", FakeLink)
    monkeypatch.setattr(student, "StudentServer", FakeServer)
    monkeypatch.setattr(student, "install_student_serving", lambda link: log.append(("install", type(link).__name__)))
    monkeypatch.setattr(wire_module, "_seed_everything", lambda seed=0: log.append(("seed", seed)))
    with pytest.raises(Exited) as info:
        runner.main(config_json)
    log.append(("tempdir", tempfile.tempdir))
    return info.value.args[0], log, fake_sys


def test_main_starts_the_server_in_the_sandbox_with_every_guard(monkeypatch):
    """In the sandbox: the memory policy, the course block (a finder first on sys.meta_path; ``pgcourse`` a blocked
    package with an empty __path__), temporary files in the scratch folder, the address space limited to the
    current size plus memory_mb MiB, the RNGs seeded with 0, the link on the socket's descriptor (untrusted: the
    student side), then the hello message and the server; a server that returns exits 0."""
    config = {"fd": 9, "limits": {**LIMITS, "memory_mb": 3}, "mode": "sandbox", "scratch": None, "uid": 200_001}
    code, log, fake_sys = run_main(monkeypatch, json.dumps(config))
    assert code == 0
    assert log[0] == ("enter", config)
    assert ("refuse_memory",) in log and ("warm_up_episodes",) in log and ("seed", 0) in log
    assert ("limit", "RLIMIT_AS", 5000 + 3 * 1024 * 1024) in log
    assert ("link", ("socket", 9), False) in log and ("install", "FakeLink") in log and ("server", "FakeLink") in log
    assert ("send", {"k": "hello", "isolation": "sandbox", "pid": 4242, "uid": 200_001}) in log
    assert log.index(("send", {"k": "hello", "isolation": "sandbox", "pid": 4242, "uid": 200_001})) < \
        log.index(("serve",))
    assert ("tempdir", "/scr") in log
    assert isinstance(fake_sys.meta_path[0], runner._BlockCourse)
    blocked = fake_sys.modules["pgcourse"]
    assert isinstance(blocked, runner._CourseBlocked) and blocked.__path__ == [] and blocked.__name__ == "pgcourse"


def test_main_outside_the_sandbox_keeps_memfd_and_says_its_isolation(monkeypatch):
    """Outside the sandbox (mode unsafe-no-sandbox) the memory policy is not installed; the hello message names the
    mode; off Linux no address-space limit is set."""
    config = {"fd": 9, "limits": LIMITS, "mode": "unsafe-no-sandbox", "scratch": "/s", "uid": 1}
    code, log, _ = run_main(monkeypatch, json.dumps(config), platform="darwin")
    assert code == 0 and ("refuse_memory",) not in log
    assert not any(e[0] == "limit" for e in log)
    assert ("send", {"k": "hello", "isolation": "unsafe-no-sandbox", "pid": 4242, "uid": 200_001}) in log


@pytest.mark.parametrize("config_json, error", [
    ("not json", None), (json.dumps({"fd": 9, "limits": LIMITS}), None),
    (json.dumps({"fd": 9, "limits": LIMITS, "mode": "sandbox"}), KeyboardInterrupt()),
    (json.dumps({"fd": 9, "limits": LIMITS, "mode": "sandbox"}), SystemExit(0))])
def test_main_exits_71_on_any_failure(monkeypatch, config_json, error):
    """Whatever goes wrong (a malformed config, a missing key, even a BaseException from the server), the student
    process ends with exit code 71, never returns and never reports (nothing can be trusted from here)."""
    code, _, _ = run_main(monkeypatch, config_json, serve_error=error)
    assert code == 71


# ==================================================================================================================
# student.py
# ==================================================================================================================

_PAIR = socket.socketpair()
_WORKER = Link(_PAIR[0], trusted=True)  # encodes and decodes as the grading worker does (never sends here)


def worker_link() -> Link:
    return _WORKER


def to_wire(value):
    """``value`` as the worker sends it (encoded, through JSON)."""
    return json.loads(json.dumps(worker_link().enc(value, _Enc())))


def from_wire(data):
    return worker_link().dec(json.loads(json.dumps(data)), _Dec())


@pytest.fixture
def server():
    """A student server on one end of a socket pair (``server.peer``: the worker's end)."""
    ours, peer = socket.socketpair()
    link = Link(ours, trusted=False)
    srv = student.StudentServer(link)
    srv.peer = Link(peer, trusted=True)
    yield srv
    ours.close()
    peer.close()


@pytest.fixture
def saved_rng():
    """The global RNGs restored after the test."""
    saved = torch.get_rng_state(), np.random.get_state(), random.getstate()
    yield
    torch.set_rng_state(saved[0])
    np.random.set_state(saved[1])
    random.setstate(saved[2])


def test_the_machinery_files_are_the_sandboxed_modules_that_serve_the_student():
    """The frames dropped from the front of a student's traceback are those of wire, link, student, runner,
    episode_cases and loops (the files of this folder, full paths)."""
    assert student._MACHINERY_FILES == {os.path.join(HERE, f"{name}.py") for name in
                                        ("wire", "link", "student", "runner", "episode_cases", "loops")}


def test_a_new_server_has_a_main_namespace_and_every_handler(server):
    """The student's cells run in a namespace named ``__main__`` with the builtins and a display() that does
    nothing; the link serves exactly the requests exec, lookup, call, vjp, release, episode, stage, kit and ping
    (which answers "pong"); call ids start at 1."""
    assert server.ns == {"__name__": "__main__", "__builtins__": builtins, "display": student._noop_display}
    assert student._noop_display(1, 2, end="") is None
    assert set(server.link.handlers) == {"exec", "lookup", "call", "vjp", "release", "episode", "stage", "kit",
                                         "ping"}
    assert server.link.handlers["ping"]({"k": "q"}) == "pong"
    assert server._next_call == 1 and server.calls == {}


def test_the_server_serves_requests_until_a_message_that_is_not_one(monkeypatch):
    """``serve_forever`` serves every message of kind "q" and ends the process (exit 0) at the first message of
    any other kind (or of none): the worker is gone or broke the protocol."""
    served = []
    messages = iter([{"k": "q", "id": 1}, {"k": "q", "id": 2}, {"k": "r", "id": 3}, {"k": "q", "id": 4}])
    fake = SimpleNamespace(handlers=None, recv=lambda: next(messages), serve=served.append)
    srv = student.StudentServer(fake)
    monkeypatch.setattr(os, "_exit", fake_exit)
    with pytest.raises(Exited) as info:
        srv.serve_forever()
    assert info.value.args == (0,) and [m["id"] for m in served] == [1, 2]
    messages = iter([{"id": 5}])  # no kind: not a request either (a second recv would be a bug: it raises)
    with pytest.raises(Exited):
        srv.serve_forever()
    assert [m["id"] for m in served] == [1, 2]


# -- exec ---------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("message", [{}, {"source": "x = 1"}, {"filename": "<cell>"},
                                     {"source": b"x = 1", "filename": "<cell>"},
                                     {"source": "x = 1", "filename": None}, {"source": ["x"], "filename": "<c>"}])
def test_an_exec_request_needs_text_source_and_filename(server, message):
    """An exec request whose source or filename is not text is a protocol error ("bad exec"); nothing runs."""
    with pytest.raises(ProtocolError, match="bad exec"):
        server._h_exec(message)
    assert "x" not in server.ns


def test_a_cell_runs_in_the_namespace_with_its_source_in_linecache(server, monkeypatch):
    """A cell is compiled under its filename and run in the server's namespace (its names stay for later cells);
    its lines are put in linecache under that filename (so tracebacks show them); the answer is {} and the
    output is flushed."""
    flushed = []
    monkeypatch.setattr(student, "_flush_output", lambda: flushed.append(1))
    monkeypatch.setattr(linecache, "cache", {})
    source = "x = 2\ny = x * 21\n"
    assert server._h_exec({"source": source, "filename": "<cell 1>"}) == {}
    assert server._h_exec({"source": "z = y + 1", "filename": "<cell 2>"}) == {}
    assert (server.ns["x"], server.ns["y"], server.ns["z"]) == (2, 42, 43)
    assert linecache.cache["<cell 1>"] == (len(source), None, ["x = 2\n", "y = x * 21\n"], "<cell 1>")
    assert flushed == [1, 1]


def test_a_cell_does_not_inherit_the_servers_future_imports(server):
    """The cell is compiled without the server module's ``from __future__`` flags: annotations are evaluated, as
    in a notebook."""
    server._h_exec({"source": "def f(x: int) -> int:\n    return x\nann = f.__annotations__", "filename": "<c>"})
    assert server.ns["ann"] == {"x": int, "return": int}


@pytest.mark.parametrize("source, error, note", [
    ("1 / 0", "ZeroDivisionError: division by zero", None),
    ("raise SystemExit(3)", "SystemExit: 3", "sys.exit() or exit() ends the notebook's kernel"),
    ("raise KeyboardInterrupt", "KeyboardInterrupt", None),
    ("def f(:\n  pass", "SyntaxError", None)])
def test_a_failing_cell_answers_its_traceback_without_the_servers_frames(server, monkeypatch, source, error, note):
    """A cell that raises anything (SystemExit and KeyboardInterrupt too, or a syntax error) answers
    ``{"error": traceback}``: the student's own frames only (the server's frame is dropped), the error's line, and
    the output is still flushed."""
    flushed = []
    monkeypatch.setattr(student, "_flush_output", lambda: flushed.append(1))
    monkeypatch.setattr(linecache, "cache", {})
    answer = server._h_exec({"source": source, "filename": "<cell 7>"})
    assert list(answer) == ["error"] and error in answer["error"]
    assert "student.py" not in answer["error"] and '"<cell 7>"' in answer["error"]
    assert (note in answer["error"]) if note else "(sys.exit()" not in answer["error"]
    assert flushed == [1]


# -- lookup -------------------------------------------------------------------------------------------------------
class Thing:
    pass


class CallableThing:
    def __call__(self):
        return 1


def test_a_lookup_answers_functions_by_name_data_as_data_and_anything_else_by_its_type(server):
    """Each name asked for that the namespace holds: a callable that is not a class is ``{"function": name}``; any
    other value is ``{"data": value}`` when it is data, else ``{"unavailable": its type's name}`` (a class, an
    object, data too deep to send). Names the namespace lacks, modules and names that are not text are left out;
    the answer keeps the order asked."""
    deep = []
    for _ in range(60):
        deep = [deep]
    server.ns.update(f=lambda x: x, g=len, c=CallableThing(), K=Thing, obj=Thing(), x=[1, 2.5, "a"],
                     t=torch.arange(3), np=np, deep=deep, none=None)
    raw = server._h_lookup({"names": ["x", "f", "missing", "np", 5, "g", "c", "K", "obj", "t", "deep", "none"]})
    assert isinstance(raw, student._Raw)
    found = from_wire(raw.data)
    assert list(found) == ["x", "f", "g", "c", "K", "obj", "t", "deep", "none"]
    assert found["x"] == {"data": [1, 2.5, "a"]}
    assert found["f"] == {"function": "f"} and found["g"] == {"function": "g"} and found["c"] == {"function": "c"}
    assert found["K"] == {"unavailable": "type"} and found["obj"] == {"unavailable": "Thing"}
    assert torch.equal(found["t"]["data"], torch.arange(3))
    assert found["deep"] == {"unavailable": "list"} and found["none"] == {"data": None}


def test_an_unavailable_values_type_name_is_cut_to_100_characters(server):
    """The type name that stands for a value that is not data is at most 100 characters."""
    long_type = type("T" * 150, (), {})
    server.ns["v"] = long_type()
    assert from_wire(server._h_lookup({"names": ["v"]}).data) == {"v": {"unavailable": "T" * 100}}


@pytest.mark.parametrize("names", [None, "x", ("x",), {"x": 1}, 3])
def test_a_lookup_needs_a_list_of_names(server, names):
    """A lookup whose ``names`` is not a list is a protocol error ("bad lookup")."""
    with pytest.raises(ProtocolError, match="bad lookup"):
        server._h_lookup({"names": names})


def test_an_empty_lookup_finds_nothing(server):
    """No names asked: an empty answer."""
    assert from_wire(server._h_lookup({"names": []}).data) == {}


# -- call ---------------------------------------------------------------------------------------------------------
def call(server, name, *args, rng=None, **kwargs):
    message = {"function": name, "args": to_wire(tuple(args)), "kwargs": to_wire(kwargs)}
    if rng is not None:
        message["rng"] = rng
    return server._h_call_student(message).data


@pytest.mark.parametrize("message", [{}, {"function": None}, {"function": 5}, {"function": "missing"},
                                     {"function": "x"}, {"function": "np"}])
def test_only_a_callable_the_namespace_holds_can_be_called(server, message):
    """A call names a function of the namespace by its name (text): a missing name, a name that is not text, or a
    value that cannot be called is a protocol error ("unknown function")."""
    server.ns.update(x=3, np=np)
    with pytest.raises(ProtocolError, match="unknown function"):
        server._h_call_student({**message, "args": to_wire(()), "kwargs": to_wire({})})


def test_a_call_passes_the_arguments_and_answers_the_value_with_a_new_call_id(server, monkeypatch):
    """The student's function gets the decoded positional and keyword arguments; the answer carries its encoded
    value and a call id counting from 1; the output is flushed."""
    flushed = []
    monkeypatch.setattr(student, "_flush_output", lambda: flushed.append(1))
    server.ns["f"] = lambda a, b=0, *, c=1: [a, b, c, a + b * c]
    first = call(server, "f", 2, b=3, c=4)
    second = call(server, "f", 1)
    assert from_wire(first["value"]) == [2, 3, 4, 14] and first["call"] == 1
    assert from_wire(second["value"]) == [1, 0, 1, 1] and second["call"] == 2
    assert server._next_call == 3 and flushed == [1, 1]


def test_a_call_remembers_the_inputs_and_outputs_that_require_grad(server):
    """For a later vector-Jacobian product, a call keeps the argument tensors that require grad (the leaves) and
    the returned tensors that require grad (the outputs), in order; the others are not kept."""
    server.ns["f"] = lambda a, b, d: (a * 2.0, b + 1.0, (a * d).sum(), 3)
    a, b, d = torch.ones(2, requires_grad=True), torch.zeros(2), torch.full((2,), 2.0, requires_grad=True)
    answer = call(server, "f", a, b, d=d)
    leaves, outputs = server.calls[answer["call"]]
    assert [leaf.tolist() for leaf in leaves] == [[1.0, 1.0], [2.0, 2.0]]
    assert [out.tolist() for out in outputs] == [[2.0, 2.0], 4.0]


def mutate_shape(t):
    t.data = torch.zeros(3)


def mutate_dtype(t):
    t.data = t.data.double()


@pytest.mark.parametrize("change, mutated", [
    (lambda t: None, False), (lambda t: t.add_(1.0), True), (lambda t: t.mul_(1.0), False),
    (lambda t: t[1:].fill_(9.0), True), (mutate_shape, True), (mutate_dtype, True)])
def test_a_tensor_argument_changed_in_place_is_sent_back(server, change, mutated):
    """An argument tensor whose values, shape or dtype the function changed comes back in ``mutated`` as
    [its index among the tensor arguments, its new value]; one left as it was (or rewritten with the same values)
    does not."""
    server.ns["f"] = lambda first, t: change(t)
    answer = call(server, "f", torch.zeros(1), torch.tensor([1.0, 2.0]))
    if mutated:
        assert len(answer["mutated"]) == 1 and answer["mutated"][0][0] == 1
        expected = torch.tensor([1.0, 2.0])
        change(expected)
        back = from_wire(answer["mutated"][0][1])
        assert back.dtype == expected.dtype and torch.equal(back, expected)
    else:
        assert answer["mutated"] == []


@pytest.mark.parametrize("start, change, mutated", [
    ([1.0, 2.0], lambda a: None, False), ([1.0, 2.0], lambda a: a.__setitem__(0, 9.0), True),
    ([np.nan, 2.0], lambda a: None, False),                       # NaN equals NaN here: not a change
    ([np.nan, 2.0], lambda a: a.__setitem__(1, 3.0), True),
    ([1.0, 2.0], lambda a: setattr(a, "shape", (2, 1)), True)])
def test_an_array_argument_changed_in_place_is_sent_back(server, start, change, mutated):
    """An argument array whose shape or values changed (NaN counted equal to NaN) comes back in
    ``mutated_arrays`` as [its index among the array arguments, its new value]."""
    server.ns["f"] = lambda other, a: change(a)
    answer = call(server, "f", np.zeros(1), np.array(start))
    if mutated:
        expected = np.array(start)
        change(expected)
        assert [index for index, _ in answer["mutated_arrays"]] == [1]
        np.testing.assert_array_equal(from_wire(answer["mutated_arrays"][0][1]), expected)
    else:
        assert answer["mutated_arrays"] == []


def test_a_generator_argument_comes_back_with_its_new_state(server):
    """Every generator argument comes back as [index, its state after the call], drawn from or not."""
    server.ns["f"] = lambda g1, g2: torch.rand(3, generator=g2).sum()
    g1, g2 = torch.Generator().manual_seed(1), torch.Generator().manual_seed(2)
    answer = call(server, "f", g1, g2)
    twin = torch.Generator().manual_seed(2)
    torch.rand(3, generator=twin)
    assert [index for index, _ in answer["generators"]] == [0, 1]
    assert answer["generators"][1][1] == wire_module._b64(twin.get_state().numpy().tobytes())
    assert answer["generators"][0][1] == wire_module._b64(torch.Generator().manual_seed(1).get_state().numpy()
                                                          .tobytes())


def draws():
    return [random.random(), float(np.random.rand()), float(torch.rand(1))]


def test_a_call_runs_on_the_rng_state_sent_and_answers_the_state_it_left(server, saved_rng):
    """With "rng" in the request, the global RNGs (Python, numpy, torch) are set to it before the call; without,
    they are left as they are. The answer's "rng" is the state after the call."""
    wire_module._seed_everything(123)
    sent = _rng_get()
    expected = draws()
    after = _rng_get()
    server.ns["f"] = draws
    wire_module._seed_everything(7)
    answer = call(server, "f", rng=sent)
    assert from_wire(answer["value"]) == expected and answer["rng"] == after
    wire_module._seed_everything(7)
    expected_unsent = draws()
    wire_module._seed_everything(7)
    assert from_wire(call(server, "f")["value"]) == expected_unsent


def test_a_call_that_raises_is_reported_as_the_students_error(server, monkeypatch):
    """The function's exception, whatever it is (a BaseException too), is reported as theirs (_Reported holding
    it); the output is flushed; no call id is used."""
    flushed = []
    monkeypatch.setattr(student, "_flush_output", lambda: flushed.append(1))
    for error in (KeyError("k"), SystemExit(2), KeyboardInterrupt()):
        def f(error=error):
            raise error
        server.ns["f"] = f
        with pytest.raises(student._Reported) as info:
            call(server, "f")
        assert info.value.error is error
    assert flushed == [1, 1, 1] and server._next_call == 1


def test_a_calls_warnings_are_silenced(server):
    """Warnings the student's function raises are ignored (they are not graded and would reach the worker's log)."""
    def f():
        warnings.warn("noisy", UserWarning)
        return 1
    server.ns["f"] = f
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        call(server, "f")
    assert [w for w in caught if "noisy" in str(w.message)] == []


@pytest.mark.parametrize("value, what", [(object(), "object"), (lambda: 1, "a function"), ("deep", "too deeply")])
def test_a_return_value_that_is_not_data_is_the_students_value_error(server, value, what):
    """A return value that cannot cross (not data, or too large or deep) is reported as the student's ValueError
    saying that their function's return value cannot be graded, and why."""
    if value == "deep":
        value = []
        for _ in range(60):
            value = [value]
    server.ns["f"] = lambda: value
    with pytest.raises(student._Reported) as info:
        call(server, "f")
    assert isinstance(info.value.error, ValueError)
    assert str(info.value.error).startswith("your function's return value cannot be graded: ")
    assert what in str(info.value.error)


# -- vjp ----------------------------------------------------------------------------------------------------------
def test_a_vjp_is_the_gradient_of_one_output_for_every_leaf_none_for_an_unused_one(server):
    """A vjp of output ``out`` of a call with vector ``grad`` is, for every leaf of the call in order, grad times
    the output's Jacobian for it, or None for a leaf the output does not use; it can be asked again."""
    server.ns["f"] = lambda a, b: (a * 3.0, (a * b).sum())
    a, b = torch.tensor([1.0, 2.0], requires_grad=True), torch.tensor([5.0, 7.0], requires_grad=True)
    answer = call(server, "f", a, b)
    first = server._h_vjp({"call": answer["call"], "out": 0, "grad": to_wire(torch.tensor([1.0, 10.0]))})
    assert first[0].tolist() == [3.0, 30.0] and first[1] is None
    again = server._h_vjp({"call": answer["call"], "out": 1, "grad": to_wire(torch.tensor(2.0))})
    assert [g.tolist() for g in again] == [[10.0, 14.0], [2.0, 4.0]]
    assert server._h_vjp({"call": answer["call"], "out": 0, "grad": to_wire(torch.ones(2))})[0].tolist() == [3.0, 3.0]


def test_a_vjp_of_a_call_without_leaves_is_empty(server):
    """A call none of whose arguments requires grad has no leaves: its vjp is an empty list."""
    server.ns["f"] = lambda x: torch.ones(2, requires_grad=True) * x
    answer = call(server, "f", 2.0)
    assert server._h_vjp({"call": answer["call"], "out": 0, "grad": to_wire(torch.ones(2))}) == []


@pytest.mark.parametrize("message", [{"call": 99, "out": 0}, {"out": 0}, {"call": 1, "out": None},
                                     {"call": 1, "out": 1}, {"call": 1, "out": 0.0}])
def test_a_vjp_of_an_unknown_call_or_output_is_a_protocol_error(server, message):
    """A vjp names a call this server answered and an output index (an int) of it; anything else is a protocol
    error ("unknown call")."""
    server.ns["f"] = lambda a: a * 2.0
    call(server, "f", torch.ones(2, requires_grad=True))
    with pytest.raises(ProtocolError, match="unknown call"):
        server._h_vjp({**message, "grad": to_wire(torch.ones(2))})


def test_a_vjp_that_fails_is_the_students_error(server):
    """A gradient that autograd cannot compute (here a vector of the wrong shape) is reported as theirs."""
    server.ns["f"] = lambda a: a * 2.0
    answer = call(server, "f", torch.ones(2, requires_grad=True))
    with pytest.raises(student._Reported) as info:
        server._h_vjp({"call": answer["call"], "out": 0, "grad": to_wire(torch.ones(5))})
    assert isinstance(info.value.error, RuntimeError)


def test_release_forgets_the_calls_and_empties_the_output(server, monkeypatch):
    """A release forgets every call (their vjps are refused after it) and empties the output log (truncated to 0,
    written from its start again): the output limit counts per exercise."""
    done = []
    monkeypatch.setattr(os, "ftruncate", lambda fd, size: done.append(("ftruncate", fd, size)))
    monkeypatch.setattr(os, "lseek", lambda fd, pos, how: done.append(("lseek", fd, pos, how)))
    server.calls[1] = ([], [])
    assert server._h_release({}) is None
    assert server.calls == {} and done == [("ftruncate", 1, 0), ("lseek", 1, 0, os.SEEK_SET)]


def test_release_goes_on_when_the_output_is_not_a_file(server, monkeypatch):
    """An output that cannot be truncated (a pipe: OSError) is left as it is; the calls are still forgotten."""
    def refuse(*args):
        raise OSError(errno.EINVAL, "not a file")
    monkeypatch.setattr(os, "ftruncate", refuse)
    server.calls[1] = ([], [])
    assert server._h_release({}) is None and server.calls == {}


# -- episode, stage, kit ------------------------------------------------------------------------------------------
OUTCOME = {"result": (1.5, 2, True, False), "reset_seed": 0, "stepped_past_end": False, "steps": 2}


@pytest.mark.parametrize("env_id, controller, seed", [
    ("CartPole-v1", "push_left", 0), ("CartPole-v1", "balance", 1), ("Pendulum-v1", "zero_torque", 0),
    ("Pendulum-v1", "push_left", -3)])
def test_an_episode_case_is_played_with_the_named_env_controller_and_seed(server, monkeypatch, env_id, controller,
                                                                          seed):
    """An episode request names an env of the cases, a controller of CONTROLLERS and an int seed (any pairing of
    them); the outcome of ``episode_cases.play`` is answered as data."""
    played = []
    monkeypatch.setattr(episode_cases, "play", lambda *args: played.append(args) or OUTCOME)
    server.ns["play_episode"] = fn = lambda env, policy, seed: None
    raw = server._h_episode({"function": "play_episode", "env_id": env_id, "controller": controller, "seed": seed})
    assert played == [(fn, env_id, controller, seed)]
    assert from_wire(raw.data) == OUTCOME


@pytest.mark.parametrize("env_id, controller, seed", [
    ("MountainCar-v0", "push_left", 0), ("cartpole-v1", "push_left", 0), (None, "push_left", 0),
    ("CartPole-v1", "push_right", 0), ("CartPole-v1", "PUSH_LEFT", 0), ("CartPole-v1", None, 0),
    ("CartPole-v1", "push_left", True), ("CartPole-v1", "push_left", 1.0), ("CartPole-v1", "push_left", "0"),
    ("CartPole-v1", "push_left", None)])
def test_an_episode_case_outside_the_cases_is_a_protocol_error(server, monkeypatch, env_id, controller, seed):
    """Another env id (a case differs), another controller, or a seed that is not exactly an int (a bool, a float,
    text) is a protocol error ("bad episode case"); nothing is played."""
    monkeypatch.setattr(episode_cases, "play", lambda *args: pytest.fail("played"))
    server.ns["play_episode"] = lambda env, policy, seed: None
    with pytest.raises(ProtocolError, match="bad episode case"):
        server._h_episode({"function": "play_episode", "env_id": env_id, "controller": controller, "seed": seed})


def test_an_episode_of_an_unknown_function_or_with_an_outcome_that_is_not_data(server, monkeypatch):
    """An episode of a name that is not a function is a protocol error; an outcome that cannot cross is the
    student's ValueError ("your function's return value cannot be graded")."""
    message = {"function": "nope", "env_id": "CartPole-v1", "controller": "push_left", "seed": 0}
    with pytest.raises(ProtocolError, match="unknown function"):
        server._h_episode(message)
    server.ns["nope"] = lambda env, policy, seed: None
    monkeypatch.setattr(episode_cases, "play", lambda *args: {"result": object()})
    with pytest.raises(student._Reported) as info:
        server._h_episode(message)
    assert isinstance(info.value.error, ValueError)
    assert str(info.value.error).startswith("your function's return value cannot be graded: ")


def test_an_episodes_warnings_are_silenced(server, monkeypatch):
    """Warnings raised while the case is played are ignored."""
    def play(*args):
        warnings.warn("noisy")
        return OUTCOME
    monkeypatch.setattr(episode_cases, "play", play)
    server.ns["f"] = lambda env, policy, seed: None
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        server._h_episode({"function": "f", "env_id": "CartPole-v1", "controller": "balance", "seed": 0})
    assert [w for w in caught if "noisy" in str(w.message)] == []


def test_a_stage_is_played_on_the_decoded_spec(server, monkeypatch):
    """A stage request's spec is decoded and played with the named function by ``loops.play``; its outcome is
    answered as data; warnings are ignored meanwhile."""
    played = []

    def play(fn, spec):
        warnings.warn("noisy")
        played.append((fn, spec))
        return {"calls": [1, 2]}
    monkeypatch.setattr(loops, "play", play)
    server.ns["train"] = fn = lambda *args: None
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        raw = server._h_stage({"function": "train", "spec": to_wire({"stage": "x", "n": (1, 2)})})
    assert played == [(fn, {"stage": "x", "n": (1, 2)})] and from_wire(raw.data) == {"calls": [1, 2]}
    assert [w for w in caught if "noisy" in str(w.message)] == []


def test_a_stages_spec_error_is_the_checks_and_any_other_error_the_students(server, monkeypatch):
    """A SpecError (the check's description is wrong) propagates as it is; any other exception of the stage,
    a BaseException too, is reported as the student's; an outcome that cannot cross is the student's ValueError
    ("your function's result cannot be graded")."""
    server.ns["train"] = lambda *args: None
    message = {"function": "train", "spec": to_wire({})}
    for error in (loops.SpecError("bad spec"),):
        monkeypatch.setattr(loops, "play", lambda fn, spec: (_ for _ in ()).throw(error))
        with pytest.raises(loops.SpecError, match="bad spec"):
            server._h_stage(message)
    for error in (ValueError("theirs"), KeyboardInterrupt()):
        monkeypatch.setattr(loops, "play", lambda fn, spec: (_ for _ in ()).throw(error))
        with pytest.raises(student._Reported) as info:
            server._h_stage(message)
        assert info.value.error is error
    monkeypatch.setattr(loops, "play", lambda fn, spec: {"calls": [object()]})
    with pytest.raises(student._Reported) as info:
        server._h_stage(message)
    assert str(info.value.error).startswith("your function's result cannot be graded: ")


@pytest.mark.parametrize("names", [None, "rl", ("rl",), ["rl", 3], [None]])
def test_a_kit_request_needs_a_list_of_names(server, monkeypatch, names):
    """A kit request's names must be a list of text; anything else is a protocol error ("bad kit")."""
    monkeypatch.setattr(loops, "install_kit", lambda names: pytest.fail("installed"))
    with pytest.raises(ProtocolError, match="bad kit"):
        server._h_kit({"names": names})


@pytest.mark.parametrize("names", [[], ["a"], ["a", "b"]])
def test_a_kit_request_installs_the_names_asked(server, monkeypatch, names):
    """A list of names (empty too) is handed to ``loops.install_kit`` and its answer returned."""
    monkeypatch.setattr(loops, "install_kit", lambda asked: ["installed", *asked])
    assert server._h_kit({"names": names}) == ["installed", *names]


# -- tracebacks and serving ---------------------------------------------------------------------------------------
def machinery_function(name: str, body: str, file: str) -> types.FunctionType:
    """A function whose frames count as the machinery's (compiled under ``file`` of this folder)."""
    namespace: dict = {}
    exec(compile(f"def {name}(*args):\n{body}\n", os.path.join(HERE, file), "exec"), namespace)  # noqa: S102
    return namespace[name]


def caught_from(*chain):
    """The exception of calling chain[0](chain[1], ...) from a machinery frame (so the traceback starts there)."""
    catch = machinery_function("machinery_catch", "    try:\n        args[0](*args[1:])\n"
                                                  "    except BaseException as error:\n        return error", "link.py")
    return catch(*chain)


def test_only_the_machinerys_leading_frames_are_dropped_from_a_students_traceback():
    """Every frame at the front of the traceback that is the grading machinery's is dropped (however many); the
    student's frame and every frame after it are kept, a machinery frame the student's code called too."""
    outer = machinery_function("machinery_outer", "    return args[0](*args[1:])", "wire.py")
    called = machinery_function("machinery_called", "    raise ValueError('deep')", "loops.py")
    namespace: dict = {}
    exec(compile("def student_fn(g):\n    return g()\n", "<cell 3>", "exec"), namespace)  # noqa: S102
    error = caught_from(outer, namespace["student_fn"], called)
    text = student._student_traceback(error)
    assert text.startswith("Traceback (most recent call last):\n")
    assert "machinery_catch" not in text and "machinery_outer" not in text
    assert "student_fn" in text and "machinery_called" in text and text.endswith("ValueError: deep\n")


def test_an_error_raised_in_the_machinery_alone_has_no_frames_and_a_type_error_says_why():
    """When every frame is the machinery's, the traceback is the error's line alone; a TypeError there is the check
    calling the student's function with parameters it does not take, and says so."""
    raise_type = machinery_function("machinery_type", "    raise TypeError('f() takes 1 argument')", "student.py")
    text = student._student_traceback(caught_from(raise_type))
    assert text == ("TypeError: f() takes 1 argument\n"
                    "(raised when the check called your function: check its parameters)\n")
    raise_value = machinery_function("machinery_value", "    raise ValueError('v')", "student.py")
    assert student._student_traceback(caught_from(raise_value)) == "ValueError: v\n"


def test_a_type_error_in_the_students_own_frames_has_no_parameter_note():
    """A TypeError raised by the student's own code is theirs: no note about the check's call."""
    namespace: dict = {}
    exec(compile("def student_fn():\n    return 1 + 'a'\n", "<cell 4>", "exec"), namespace)  # noqa: S102
    text = student._student_traceback(caught_from(namespace["student_fn"]))
    assert "TypeError" in text and "check its parameters" not in text


@pytest.mark.parametrize("error, note", [
    (OSError(errno.EFBIG, "File too large"), "(your code printed or wrote more output than the grader allows)"),
    (OSError(errno.ENOSPC, "No space left"), None), (ValueError(errno.EFBIG), None),
    (SystemExit(0), "(sys.exit() or exit() ends the notebook's kernel; an answer cell must not call it)"),
    (KeyboardInterrupt(), None)])
def test_a_traceback_explains_too_much_output_and_sys_exit(error, note):
    """A write that failed with EFBIG (the output limit) and SystemExit each add a line saying what happened;
    another errno or another exception adds nothing."""
    text = student._student_traceback(error)
    notes = [line for line in text.splitlines() if line.startswith("(")]
    assert notes == ([note] if note else [])
    assert text.endswith("\n")


def test_a_traceback_that_cannot_be_formatted_falls_back_to_the_type(monkeypatch):
    """If formatting raises (their exception's machinery is broken), the text is the type's name and a note."""
    def broken(*args):
        raise KeyboardInterrupt
    monkeypatch.setattr(student, "traceback", SimpleNamespace(format_exception=broken))

    class Weird(Exception):
        pass
    assert student._student_traceback(Weird("x")) == "Weird (its message could not be shown)\n"


def test_a_long_traceback_is_cut_in_its_middle():
    """A traceback longer than MAX_TEXT characters keeps its first and last MAX_TEXT // 2 characters."""
    text = student._student_traceback(ValueError("é" * 30_000))
    assert text.startswith("ValueError: éé") and text.endswith("éé\n") and "[… cut …]" in text
    assert len(text) == MAX_TEXT + len("\n[… cut …]\n")


def test_flushing_flushes_stdout_and_stderr_whatever_either_raises(monkeypatch):
    """Both streams are flushed; a stream whose flush raises (even a BaseException) does not stop the other."""
    flushed = []

    class Stream:
        def __init__(self, name, error=None):
            self.name, self.error = name, error

        def flush(self):
            flushed.append(self.name)
            if self.error:
                raise self.error
    monkeypatch.setattr(sys, "stdout", Stream("out", KeyboardInterrupt()))
    monkeypatch.setattr(sys, "stderr", Stream("err", OSError()))
    student._flush_output()
    assert flushed == ["out", "err"]


def test_a_reported_error_carries_the_students_exception_and_its_message():
    """_Reported holds the student's exception and reads as its message."""
    error = KeyError("k")
    reported = student._Reported(error)
    assert reported.error is error and str(reported) == str(error) == "'k'"


@pytest.fixture
def serving(server, monkeypatch):
    """The server's link with the student-side serving installed; ``answer(message)`` serves and returns the
    response the worker reads."""
    student.install_student_serving(server.link)
    monkeypatch.setattr(os, "_exit", fake_exit)

    def answer(message):
        server.link.serve(message)
        return server.peer.recv()
    server.answer = answer
    return server


def test_the_student_side_serving_is_installed_on_the_link(server):
    """``install_student_serving`` binds the student-side serve to that link (not to the class)."""
    student.install_student_serving(server.link)
    assert server.link.serve.__func__ is student._student_serve and server.link.serve.__self__ is server.link
    assert Link.serve is not student._student_serve


def test_a_served_value_is_encoded_and_an_already_encoded_one_sent_as_it_is(serving):
    """A handler's plain value is encoded as data; a _Raw value (already encoded) is sent as it is."""
    serving.link.handlers = {"plain": lambda m: (1, "a"), "raw": lambda m: student._Raw({"list": [7]})}
    assert serving.answer({"k": "q", "id": 3, "op": "plain"}) == {"k": "r", "id": 3, "ok": {"tuple": [1, "a"]}}
    assert serving.answer({"k": "q", "id": 4, "op": "raw"}) == {"k": "r", "id": 4, "ok": {"list": [7]}}


@pytest.mark.parametrize("error", [ValueError("bad value"), KeyboardInterrupt(), NotData("not data")])
def test_a_handlers_error_is_answered_with_its_type_message_and_traceback(serving, error):
    """Any exception of a handler (a BaseException too) is answered as an error with its type's name, its message
    and its traceback; a _Reported error is answered as the student's exception it holds."""
    def raise_(message):
        raise error
    serving.link.handlers = {"direct": raise_, "reported": lambda m: (_ for _ in ()).throw(student._Reported(error))}
    for op in ("direct", "reported"):
        response = serving.answer({"k": "q", "id": 5, "op": op})
        assert response["k"] == "r" and response["id"] == 5 and "ok" not in response
        assert response["err"]["type"] == type(error).__name__ and response["err"]["message"] == str(error)
        assert response["err"]["traceback"].rstrip().endswith(type(error).__name__ + (f": {error}" if str(error)
                                                                                         else ""))


def test_a_value_that_is_not_data_is_answered_as_an_error(serving):
    """A handler value that cannot be encoded is answered as its NotData error."""
    serving.link.handlers = {"obj": lambda m: object()}
    assert serving.answer({"k": "q", "id": 1, "op": "obj"})["err"]["type"] == "NotData"


@pytest.mark.parametrize("message", [{"k": "q", "id": 1, "op": "nope"}, {"k": "q", "id": 1},
                                     {"k": "q", "id": 1, "op": 5}, {"k": "q", "op": "ping"},
                                     {"k": "q", "id": True, "op": "ping"}, {"k": "q", "id": "1", "op": "ping"},
                                     {"k": "q", "id": 1.0, "op": "ping"}])
def test_an_unknown_request_or_one_without_an_int_id_ends_the_student_process(serving, message):
    """A request for an op the server does not have, or whose id is not exactly an int (a bool is not), ends the
    process (exit 0): the worker broke the protocol; nothing is answered."""
    serving.link.handlers = {"ping": lambda m: "pong"}
    with pytest.raises(Exited) as info:
        serving.link.serve(message)
    assert info.value.args == (0,)


def test_a_response_too_large_to_send_is_answered_as_a_value_error(serving, monkeypatch):
    """A response the link refuses as too large is replaced by a ValueError saying the result is too large."""
    sent = []

    def send(message):
        if not sent:
            sent.append("refused")
            raise TooLarge("too big")
        sent.append(message)
    monkeypatch.setattr(serving.link, "send", send)
    serving.link.handlers = {"big": lambda m: student._Raw("x")}
    serving.link.serve({"k": "q", "id": 8, "op": "big"})
    assert sent == ["refused", {"k": "r", "id": 8, "err": {"type": "ValueError", "message": "result too large",
                                                          "traceback": "ValueError: your result is too large to "
                                                                       "grade\n"}}]


def test_an_error_message_is_cut_to_2000_characters_and_a_broken_one_is_its_type():
    """The message sent with an error is at most 2000 characters (its two ends kept); one whose str() raises is
    the type's name."""
    message = student._safe_str(ValueError("a" * 1000 + "b" * 3000))
    assert message == "a" * 1000 + "\n[… cut …]\n" + "b" * 1000
    assert student._safe_str(ValueError("x" * 2000)) == "x" * 2000

    class Broken(Exception):
        def __str__(self):
            raise RuntimeError("no")
    assert student._safe_str(Broken()) == "Broken"


# ==================================================================================================================
# episode_cases.py
# ==================================================================================================================

def test_the_episode_cases_are_three_with_their_envs_controllers_and_seeds():
    """The play_episode check plays CartPole pushed left (seed 0, ends by termination), CartPole balanced (seed 1,
    truncated at 500 steps) and Pendulum with zero torque (seed 0, truncated at 200)."""
    assert [case[1:] for case in episode_cases.CASES] == [("CartPole-v1", "push_left", 0),
                                                          ("CartPole-v1", "balance", 1),
                                                          ("Pendulum-v1", "zero_torque", 0)]
    assert set(episode_cases.CONTROLLERS) == {"push_left", "balance", "zero_torque"}


@pytest.mark.parametrize("obs, action", [
    ([0.0, 0.0, 0.1, 0.0], 1), ([0.0, 0.0, 0.0, 0.1], 1), ([0.0, 0.0, 0.0, 0.0], 0), ([0.0, 0.0, -0.1, 0.1], 0),
    ([0.0, 0.0, -0.1, 0.05], 0), ([5.0, 5.0, -0.1, 0.05], 0), ([-5.0, -5.0, 0.1, -0.05], 1)])
def test_the_balancing_controller_pushes_right_when_the_pole_angle_plus_its_velocity_is_positive(obs, action):
    """``balance`` pushes right (1) when angle + angular velocity (observation 2 and 3) is strictly positive,
    left (0) otherwise, 0 included; the cart's position and velocity play no part. An int."""
    got = episode_cases.CONTROLLERS["balance"](np.array(obs, dtype=np.float32))
    assert got == action and type(got) is int


def test_push_left_is_always_0_and_zero_torque_a_float32_zero_of_shape_1():
    """``push_left`` is action 0 whatever it sees; ``zero_torque`` a float32 array [0.0] (Pendulum's Box)."""
    for obs in (np.zeros(4), np.ones(4), -np.ones(4)):
        assert episode_cases.CONTROLLERS["push_left"](obs) == 0
    torque = episode_cases.CONTROLLERS["zero_torque"](np.ones(3))
    assert torque.dtype == np.float32 and torque.shape == (1,) and torque[0] == 0.0


class ScriptedEnv:
    """An env whose steps give the (terminated, truncated) pairs of ``ends``, in turn; records its calls."""

    def __init__(self, ends=((False, False),) * 10):
        self.ends, self.calls, self.closed = list(ends), [], False
        self.action_space, self.observation_space = gym.spaces.Discrete(2), gym.spaces.Box(-1.0, 1.0, (1,))

    def reset(self, *, seed=None, options=None):
        self.calls.append(("reset", seed, options))
        return np.zeros(1, np.float32), {"seed": seed}

    def step(self, action):
        self.calls.append(("step", action))
        terminated, truncated = self.ends.pop(0)
        return np.zeros(1, np.float32), 1.0, terminated, truncated, {}

    def close(self):
        self.closed = True


def test_a_new_guard_has_the_envs_spaces_and_no_reset_yet():
    """A guard shows the env's spaces; before a reset its seed is "never reset"; nothing ended, no step."""
    env = ScriptedEnv()
    guard = episode_cases.EpisodeGuard(env)
    assert guard.action_space is env.action_space and guard.observation_space is env.observation_space
    assert (guard.reset_seed, guard.ended, guard.stepped_past_end, guard.steps) == ("never reset", False, False, 0)


@pytest.mark.parametrize("seed", [0, 7, None, -1])
def test_a_guards_reset_records_the_seed_and_passes_it_on(seed):
    """reset(seed=..., options=...) passes both to the env, returns its answer, and records the seed (None too)."""
    env = ScriptedEnv()
    guard = episode_cases.EpisodeGuard(env)
    assert guard.reset(seed=seed, options={"x": 1})[1] == {"seed": seed}
    assert env.calls == [("reset", seed, {"x": 1})] and guard.reset_seed == seed


@pytest.mark.parametrize("terminated, truncated, ends", [
    (False, False, False), (True, False, True), (False, True, True), (True, True, True),
    (np.bool_(True), np.bool_(False), True), (0, 1, True)])
def test_an_episode_ends_when_a_step_is_terminated_or_truncated(terminated, truncated, ends):
    """A step ends the episode when it is terminated, truncated, or both (a time limit ends it as much as a
    termination); each step that reached the env is counted."""
    guard = episode_cases.EpisodeGuard(ScriptedEnv([(terminated, truncated), (False, False)]))
    guard.reset(seed=0)
    result = guard.step(1)
    assert result[2:4] == (terminated, truncated) and guard.ended is ends and guard.steps == 1


def test_stepping_past_the_end_raises_and_is_recorded_and_a_reset_starts_again():
    """A step after the episode ended raises RuntimeError (so a loop that ignores ``truncated`` cannot run
    forever), is recorded, and does not reach the env nor count; a reset starts a new episode."""
    env = ScriptedEnv([(False, False), (False, True), (False, False)])
    guard = episode_cases.EpisodeGuard(env)
    guard.reset(seed=1)
    guard.step(0)
    guard.step(0)
    with pytest.raises(RuntimeError, match=r"env.step\(\) called after the episode ended \(terminated or "
                                           r"truncated\)"):
        guard.step(0)
    assert guard.stepped_past_end and guard.steps == 2 and [c[0] for c in env.calls] == ["reset", "step", "step"]
    guard.reset(seed=2)
    assert not guard.ended and guard.reset_seed == 2
    guard.step(1)
    assert [c[0] for c in env.calls][-1] == "step" and guard.stepped_past_end  # the record stays


@pytest.mark.parametrize("value, expected", [
    (np.float32(1.5), 1.5), (np.int64(3), 3), (np.bool_(True), True), (5, 5), (None, None), ("x", "x"),
    ((np.float64(1.0), [np.int32(2), "a"]), (1.0, [2, "a"])), ((), ()), ([], [])])
def test_numpy_scalars_become_python_numbers_and_containers_keep_their_type(value, expected):
    """``_plain`` turns numpy scalars (in tuples and lists too, nested) into Python numbers of the same kind;
    a tuple stays a tuple and a list a list; anything else is left as it is."""
    got = episode_cases._plain(value)
    assert got == expected and type(got) is type(expected)
    if isinstance(expected, tuple | list) and expected:
        assert [type(item) for item in got] == [type(item) for item in expected]
        if isinstance(expected[-1], list):
            assert [type(item) for item in got[-1]] == [int, str]


def test_plain_leaves_an_array_as_it_is():
    """An array is not a numpy scalar: it is left as the same array."""
    array = np.arange(3)
    assert episode_cases._plain(array) is array


def play_with(monkeypatch, fn, ends=((False, False), (False, True)), controller="balance", seed=4):
    env = ScriptedEnv(ends)
    made = []
    monkeypatch.setattr(gym, "make", lambda env_id: made.append(env_id) or env)
    return episode_cases.play(fn, "CartPole-v1", controller, seed), env, made


def test_play_calls_the_function_with_the_guarded_env_the_named_controller_and_the_seed(monkeypatch):
    """``play`` builds the env by id, guards it, calls fn(guard, controller, seed) and returns the result as plain
    data with the seed of the learner's reset, whether it stepped past the end, and its step count; the env is
    closed."""
    seen = []

    def fn(env, policy, seed):
        seen.append((type(env), policy, seed))
        env.reset(seed=seed)
        env.step(0)
        env.step(0)
        return (np.float32(2.0), np.int64(2), np.bool_(False), True)
    outcome, env, made = play_with(monkeypatch, fn)
    assert made == ["CartPole-v1"]
    assert seen == [(episode_cases.EpisodeGuard, episode_cases.CONTROLLERS["balance"], 4)]
    assert outcome == {"result": (2.0, 2, False, True), "reset_seed": 4, "stepped_past_end": False, "steps": 2}
    assert type(outcome["result"][1]) is int and env.closed


def test_play_reports_the_learners_exception_as_data_without_plays_frame(monkeypatch):
    """When the learner's function raises, the outcome has no result but the error's type name and its traceback
    from the learner's frame on (play's own frame dropped); the seed, the step past the end and the steps are still
    reported and the env is closed."""
    def learner_loop(env, policy, seed):
        env.reset(seed=seed)
        while True:
            env.step(policy(np.zeros(4)))
    outcome, env, _ = play_with(monkeypatch, learner_loop)
    assert set(outcome) == {"error_type", "error", "reset_seed", "stepped_past_end", "steps"}
    assert outcome["error_type"] == "RuntimeError" and outcome["stepped_past_end"] is True and outcome["steps"] == 2
    assert outcome["reset_seed"] == 4 and env.closed
    assert "learner_loop" in outcome["error"] and "in play\n" not in outcome["error"]
    assert outcome["error"].startswith("Traceback (most recent call last):\n")
    assert outcome["error"].rstrip().endswith("RuntimeError: env.step() called after the episode ended "
                                              "(terminated or truncated)")


def test_play_lets_a_keyboard_interrupt_through_and_still_closes_the_env(monkeypatch):
    """Only the learner's Exception is data; a KeyboardInterrupt (the teacher's Ctrl-C) propagates, the env
    closed."""
    env = ScriptedEnv()
    monkeypatch.setattr(gym, "make", lambda env_id: env)

    def fn(env, policy, seed):
        raise KeyboardInterrupt
    with pytest.raises(KeyboardInterrupt):
        episode_cases.play(fn, "CartPole-v1", "push_left", 0)
    assert env.closed


@pytest.mark.parametrize("seed, reported", [
    (None, None), (3, 3), (True, True), ("abc", "abc"), (np.int64(3), repr(np.int64(3))), (1.5, "1.5"),
    ((1, 2), "(1, 2)"), ("never", "never")])
def test_the_reset_seed_is_reported_as_data(monkeypatch, seed, reported):
    """The seed of the learner's reset is reported as it was when None, an int (a bool is one) or text; as its
    repr otherwise (a numpy integer, a float, a tuple); "never reset" when they never reset."""
    def fn(env, policy, _):
        if seed != "never":
            env.reset(seed=seed)
    outcome, _, _ = play_with(monkeypatch, fn)
    assert outcome["reset_seed"] == (reported if seed != "never" else "never reset")
    assert type(outcome["reset_seed"]) is type(reported if seed != "never" else "never reset")


def reference_play(env, policy, seed):
    obs, _ = env.reset(seed=seed)
    total, length = 0.0, 0
    while True:
        obs, reward, terminated, truncated, _ = env.step(policy(obs))
        total, length = total + float(reward), length + 1
        if terminated or truncated:
            return total, length, terminated, truncated


@pytest.mark.parametrize("case", episode_cases.CASES, ids=[case[2] for case in episode_cases.CASES])
def test_each_real_case_ends_as_its_description_says(case):
    """Played with gymnasium: pushing left terminates CartPole early; the balancing controller is truncated at
    CartPole's 500 steps; Pendulum is truncated at 200 steps (it never terminates)."""
    description, env_id, controller, seed = case
    outcome = episode_cases.play(reference_play, env_id, controller, seed)
    _, length, terminated, truncated = outcome["result"]
    assert outcome["steps"] == length and outcome["reset_seed"] == seed and not outcome["stepped_past_end"]
    expected = {"push_left": (True, False), "balance": (False, True), "zero_torque": (False, True)}[controller]
    assert (terminated, truncated) == expected
    if controller == "push_left":
        assert 0 < length < 50
    else:
        assert length == {"balance": 500, "zero_torque": 200}[controller]


def test_warm_up_builds_and_closes_each_cases_env_once(monkeypatch):
    """``warm_up`` builds each distinct env of the cases once and closes it (CartPole and Pendulum)."""
    made = []

    class Env:
        def __init__(self, env_id):
            self.env_id = env_id
            made.append(self)

        def close(self):
            self.closed = True
    monkeypatch.setattr(gym, "make", Env)
    episode_cases.warm_up()
    assert sorted(env.env_id for env in made) == ["CartPole-v1", "Pendulum-v1"]
    assert all(getattr(env, "closed", False) for env in made)


def test_the_two_state_probe_alternates_and_is_truncated_after_three_steps():
    """The probe starts in A ([1.0]); it alternates A, B ([-1.0]) whatever the action; A's step pays 1, B's 0; the
    third step is truncated (never terminated); a reset starts in A again. Its spaces: Box(-2, 2, (1,)),
    Discrete(2)."""
    env = episode_cases.TwoStateTimeLimitProbe()
    assert env.LENGTH == 3
    assert env.observation_space == gym.spaces.Box(-2.0, 2.0, (1,), np.float32)
    assert env.action_space == gym.spaces.Discrete(2)
    for action in (0, 1):
        obs, info = env.reset(seed=0)
        assert obs.tolist() == [1.0] and obs.dtype == np.float32 and info == {}
        steps = [env.step(action) for _ in range(3)]
        assert [(o.tolist(), r, te, tr) for o, r, te, tr, _ in steps] == [
            ([-1.0], 1.0, False, False), ([1.0], 0.0, False, False), ([-1.0], 1.0, False, True)]


@pytest.mark.parametrize("gamma, from_reset, values", [
    (0.5, False, (4 / 3, 2 / 3)), (0.5, True, (1.6, 0.8)), (0.0, False, (1.0, 0.0)), (0.0, True, (1.0, 0.0)),
    (0.9, False, (1 / 0.19, 0.9 / 0.19)), (0.9, True, (1 / 0.145, 0.9 / 0.145))])
def test_the_two_state_values_are_the_td_fixed_point(gamma, from_reset, values):
    """V(A) = 1 / (1 - gamma^2), V(B) = gamma V(A); a loop that bootstraps the truncated step from the reset
    observation (A) has V(A) = 1 / (1 - gamma (1 + gamma) / 2). Checked by hand and against iterating the
    mean-of-targets equations."""
    got = episode_cases.two_state_values(gamma, bootstrap_from_reset=from_reset)
    assert got == pytest.approx(values, rel=1e-12, abs=1e-12)
    value_a = value_b = 0.0
    for _ in range(2000):
        truncated_target = 1 + gamma * (value_a if from_reset else value_b)
        value_a, value_b = ((1 + gamma * value_b) + truncated_target) / 2, gamma * value_a
    assert got == pytest.approx((value_a, value_b), rel=1e-9)


@pytest.mark.parametrize("terminates", [True, False, 1, 0])
@pytest.mark.parametrize("length", [1, 3, 10, 3.0])
def test_the_one_state_probe_ends_after_length_steps_by_termination_or_time_limit(terminates, length):
    """The one-state probe pays 1 each step and shows [1.0]; the step number ``length`` (10 by default) ends the
    episode: terminated when it terminates, else truncated; never both, never earlier; a reset starts again."""
    env = episode_cases.OneStateProbe(terminates, length=length)
    for _ in range(2):
        obs, info = env.reset(seed=1)
        assert obs.tolist() == [1.0] and obs.dtype == np.float32 and info == {}
        steps = [env.step(0) for _ in range(int(length))]
        assert [s[1] for s in steps] == [1.0] * int(length) and all(s[0].tolist() == [1.0] for s in steps)
        assert [(s[2], s[3]) for s in steps[:-1]] == [(False, False)] * (int(length) - 1)
        assert (steps[-1][2], steps[-1][3]) == ((True, False) if terminates else (False, True))
        assert type(steps[-1][2]) is bool and type(steps[-1][3]) is bool
    assert episode_cases.OneStateProbe(True).length == 10


def test_the_probes_are_registered_by_id_with_their_kwargs():
    """Importing the module registers the two-state probe and Part B's two one-state probes (the terminating one
    with terminates=True, the time-limited one with False); registering again keeps the existing specs."""
    assert episode_cases.PART_B_PROBES == {"probe-terminates": "OneStateTerminatingProbe-v0",
                                           "probe-time-limit": "OneStateTimeLimitProbe-v0"}
    assert gym.spec(episode_cases.TWO_STATE_PROBE_ID).entry_point is episode_cases.TwoStateTimeLimitProbe
    assert episode_cases.TWO_STATE_PROBE_ID == "TwoStateTimeLimitProbe-v0"
    assert gym.spec("OneStateTerminatingProbe-v0").kwargs == {"terminates": True}
    assert gym.spec("OneStateTimeLimitProbe-v0").kwargs == {"terminates": False}
    assert gym.spec("OneStateTimeLimitProbe-v0").entry_point is episode_cases.OneStateProbe
    specs = [gym.registry[i] for i in (episode_cases.TWO_STATE_PROBE_ID, *episode_cases.PART_B_PROBES.values())]
    episode_cases._register()
    assert [gym.registry[i] for i in (episode_cases.TWO_STATE_PROBE_ID, *episode_cases.PART_B_PROBES.values())] \
        == specs and all(a is b for a, b in zip(specs, [gym.registry[s.id] for s in specs]))
    made = gym.make("OneStateTerminatingProbe-v0")
    assert made.unwrapped.terminates is True and made.unwrapped.length == 10
    made.close()


# ==================================================================================================================
# ppo_proof.py
# ==================================================================================================================

def test_the_gradient_tolerance_is_one_thousandth():
    """A step is PPO's when its gradient is within 1e-3 of PPO's, relative to its size."""
    assert ppo_proof.GRADIENT_TOLERANCE == 1e-3


def test_load_flat_writes_the_vector_into_the_parameters_in_order_and_their_dtype():
    """A flat vector is written into the module's parameters in their order (weight then bias), cast to their
    dtype; the parameters are returned."""
    module = nn.Linear(2, 1).double()
    params = ppo_proof._load_flat(module, torch.tensor([1.5, -2.0, 0.25]))
    assert params == list(module.parameters())
    assert module.weight.tolist() == [[1.5, -2.0]] and module.bias.tolist() == [0.25]
    assert module.weight.dtype == torch.float64


# rewards 1, values 0.5, next values 2, gamma 0.5, lambda 0.8: every delta is 1 + 0.5 * 2 - 0.5 = 1.5 (0.5 when
# the step terminated), and the trace decays by gamma * lambda = 0.4
@pytest.mark.parametrize("terminated, truncated, expected", [
    ([0, 0, 0], [0, 0, 0], [2.34, 2.1, 1.5]),     # 1.5 + 0.4 * 2.1, 1.5 + 0.4 * 1.5, 1.5
    ([0, 1, 0], [0, 0, 0], [1.7, 0.5, 1.5]),      # a termination: no bootstrap, and the trace cut
    ([0, 0, 0], [0, 1, 0], [2.1, 1.5, 1.5]),      # a truncation: the bootstrap kept, the trace cut
    ([0, 0, 1], [0, 0, 0], [2.18, 1.7, 0.5]),     # 1.5 + 0.4 * 1.7, 1.5 + 0.4 * 0.5
    ([0, 0, 0], [0, 0, 1], [2.34, 2.1, 1.5]),     # a truncation at the last step changes nothing
    ([1, 1, 1], [1, 1, 1], [0.5, 0.5, 0.5])])
def test_gae_bootstraps_unless_terminated_and_cuts_the_trace_at_every_end(terminated, truncated, expected):
    """GAE: delta_t = r_t + gamma V(s'_t) (the bootstrap dropped when the step terminated) - V(s_t);
    A_t = delta_t + gamma lambda A_{t+1}, the trace cut after any end (terminated or truncated); each env's column
    on its own."""
    T = 3
    column = lambda values: np.array(values, dtype=bool)[:, None]  # noqa: E731
    both = lambda values: np.concatenate([column(values), np.zeros((T, 1), bool)], 1)  # noqa: E731
    advantages = ppo_proof._gae(np.ones((T, 2), np.float32), torch.full((T, 2), 0.5), torch.full((T, 2), 2.0),
                                both(terminated), both(truncated), 0.5, 0.8)
    assert advantages[:, 0].tolist() == pytest.approx(expected, abs=1e-6)
    assert advantages[:, 1].tolist() == pytest.approx([2.34, 2.1, 1.5], abs=1e-6)  # the other env never ends


def test_gae_uses_each_steps_own_reward_value_and_next_value():
    """A hand case with different numbers at every step (gamma 0.9, lambda 0.5, no end):
    deltas 1 + 0.9 * 3 - 2 = 1.7, 0 + 0.9 * 1 - 3 = -2.1; A_1 = -2.1, A_0 = 1.7 + 0.45 * -2.1 = 0.755."""
    advantages = ppo_proof._gae(np.array([[1.0], [0.0]], np.float32), torch.tensor([[2.0], [3.0]]),
                                torch.tensor([[3.0], [1.0]]), np.zeros((2, 1), bool), np.zeros((2, 1), bool),
                                0.9, 0.5)
    assert advantages[:, 0].tolist() == pytest.approx([0.755, -2.1], abs=1e-6)


def optimiser(params):
    """What the proof reads of an optimiser: its param groups (a real one's first construction imports
    torch._dynamo, seconds on a small machine)."""
    return SimpleNamespace(param_groups=[{"params": list(params), "lr": 0.1}])


def test_the_module_an_optimiser_steps_is_the_one_with_exactly_its_parameters():
    """The module whose parameters are, in order, exactly those of the optimiser's param groups; None when no module
    has them (a subset, another order, another module's)."""
    a, b = nn.Linear(2, 2), nn.Linear(2, 1)
    record = lambda params: {"optimizer": optimiser(params)}  # noqa: E731
    modules = {id(a): a, id(b): b}
    assert ppo_proof._module_with(modules, record(b.parameters())) is b
    assert ppo_proof._module_with(modules, record(a.parameters())) is a
    assert ppo_proof._module_with(modules, record([b.bias, b.weight])) is None
    assert ppo_proof._module_with(modules, record([a.weight])) is None
    assert ppo_proof._module_with({}, record(a.parameters())) is None
    two_groups = {"optimizer": SimpleNamespace(param_groups=[{"params": [a.weight]}, {"params": [a.bias]}])}
    assert ppo_proof._module_with(modules, two_groups) is a


@pytest.mark.parametrize("how, expected", [
    ("population", [(x - 2.5) / (math.sqrt(1.25) + 1e-8) for x in (1, 2, 3, 4)]),
    ("sample", [(x - 2.5) / (math.sqrt(5 / 3) + 1e-8) for x in (1, 2, 3, 4)]),
    ("none", [1.0, 2.0, 3.0, 4.0])])
def test_advantages_are_standardised_with_the_population_or_the_sample_std(how, expected):
    """Standardised: (A - mean) / (std + 1e-8), std the population's or the sample's as asked; "none" leaves them."""
    got = ppo_proof._standardised(torch.tensor([1.0, 2.0, 3.0, 4.0]), how)
    assert got.tolist() == pytest.approx(expected, rel=1e-6)


@pytest.mark.parametrize("how", ["population", "sample"])
def test_one_advantage_or_equal_ones_standardise_to_zero_and_the_epsilon_is_1e_8(how):
    """A single advantage (whose sample std is undefined) or equal ones standardise to 0, never NaN; the 1e-8 in
    the denominator shows on a tiny spread: [0, 2e-8] has population std 1e-8, so (A - mean) / 2e-8 = -+0.5."""
    assert ppo_proof._standardised(torch.tensor([3.0]), how).tolist() == [0.0]
    assert ppo_proof._standardised(torch.tensor([2.0, 2.0, 2.0]), how).tolist() == [0.0, 0.0, 0.0]
    tiny = ppo_proof._standardised(torch.tensor([0.0, 2e-8], dtype=torch.float64), how)
    std = 1e-8 if how == "population" else math.sqrt(2) * 1e-8
    assert tiny.tolist() == pytest.approx([-1e-8 / (std + 1e-8), 1e-8 / (std + 1e-8)], rel=1e-6)


def gap(applied, max_grad_norm=None, weights=(3.0, 4.0), dtype=torch.float32):
    w = torch.tensor([1.0, 2.0], requires_grad=True, dtype=dtype)
    loss = (w * torch.tensor(weights, dtype=dtype)).sum()  # gradient: weights
    return ppo_proof._relative_gap(torch.tensor(applied, dtype=dtype), loss, [w], max_grad_norm)


@pytest.mark.parametrize("applied, max_grad_norm, expected", [
    ([3.0, 4.0], None, 0.0), ([6.0, 8.0], None, 1.0), ([0.0, 0.0], None, 1.0), ([-3.0, -4.0], None, 2.0),
    ([3.0, 0.0], None, 0.8),
    ([1.5, 2.0], None, 0.5),                      # half the gradient, no clipping allowed
    ([1.5, 2.0], 2.5, 0.0),                       # ... the gradient clipped to norm 2.5 (norm 5): a match
    ([3.0, 4.0], 2.5, 0.0),                       # the unclipped gradient is accepted too
    ([1.5, 2.0], 10.0, 0.5),                      # a clip above the norm leaves the gradient: no match
    ([0.0, 0.0], 2.5, 1.0)])
def test_the_relative_gap_is_to_the_gradient_clipped_or_not_whichever_is_closer(applied, max_grad_norm, expected):
    """|applied - g| / |g|, the smaller of g PPO's gradient and (with max_grad_norm) g scaled by
    min(1, max_grad_norm / (|g| + 1e-6)), as clip_grad_norm_ scales it."""
    assert gap(applied, max_grad_norm) == pytest.approx(expected, abs=1e-6)


def test_the_relative_gap_at_a_clip_equal_to_the_norm_uses_clip_grad_norms_epsilon():
    """At max_grad_norm equal to the norm (5), the clipped gradient is scaled by 5 / (5 + 1e-6): applying exactly
    that is a gap of ~0, applying the unclipped one a gap of 2e-7."""
    scale = 5.0 / (5.0 + 1e-6)
    clipped = [3.0 * scale, 4.0 * scale]
    assert gap(clipped, 5.0, dtype=torch.float64) == pytest.approx(0.0, abs=1e-12)
    assert gap(clipped, None, dtype=torch.float64) == pytest.approx(2e-7, rel=1e-3)
    assert gap([3.0, 4.0], 5.0, dtype=torch.float64) == 0.0


def test_the_relative_gap_of_a_zero_gradient_is_the_applied_norm_over_1e_12():
    """A zero gradient divides by 1e-12: applying zero is a gap of 0, anything else an enormous gap."""
    assert gap([0.0, 0.0], None, weights=(0.0, 0.0)) == 0.0
    assert gap([1e-6, 0.0], None, weights=(0.0, 0.0)) == pytest.approx(1e6, rel=1e-3)


def test_the_relative_gap_keeps_the_graph_for_the_next_variant():
    """The loss's graph is kept: the proof measures several losses sharing the policy's forward pass."""
    w = torch.tensor([1.0, 2.0], requires_grad=True)
    shared = (w * w).sum()
    first = ppo_proof._relative_gap(torch.tensor([2.0, 4.0]), shared * 1.0, [w], None)
    second = ppo_proof._relative_gap(torch.tensor([2.0, 4.0]), shared * 2.0, [w], None)
    assert (first, second) == (0.0, pytest.approx(0.5))


# -- ppo_gradient_proof on a tiny recorded rollout ----------------------------------------------------------------
OBS_DIM, N_ACTIONS, N_ENVS = 2, 2, 2
POLICY_W = [0.3, -0.2, -0.1, 0.4, 0.05, -0.05]
CRITIC_W = [0.5, -0.3, 0.2]
# theta of a later step: the ratios to pi_old on MINI_2 are 1.12 (A > 0: inside a 0.2 clip range, outside 0.1),
# 1.21 (A < 0: the unclipped term is the minimum) and 1.31 (A > 0: clipped)
MOVED = [0.48, -0.35, 0.11, 0.61, -0.205, 0.115]
# ... and the other way: on MINI_2 the ratios are 0.81 (A > 0), 0.69 (A < 0: below a 0.2 clip range, so clipped)
# and 0.58 (A > 0, tiny: the unclipped term is the minimum)
MOVED_DOWN = [0.0, 0.05, -0.45, 0.05, 0.475, -0.325]


def config_for(**changes):
    base = dict(gamma=0.9, gae_lambda=0.8, clip_eps=0.2, ent_coef=0.05, max_grad_norm=None,
                normalize_advantages=True, normalize_per_minibatch=False)
    return SimpleNamespace(**{**base, **changes})


def make_steps(T, terminated=(), truncated=(), start=0):
    """T env steps of N_ENVS envs: distinct observations; ``terminated``/``truncated``: (t, n) that end there (the
    next observation of an ended env is its reset observation, its final one another)."""
    steps = []

    def obs_at(t, n):
        return [0.1 + 0.37 * t + 0.21 * n, -0.4 + 0.13 * t - 0.29 * n]
    for t in range(start, start + T):
        obs = torch.tensor([obs_at(t, n) for n in range(N_ENVS)], dtype=torch.float32)
        actions = np.array([(t + n) % 2 for n in range(N_ENVS)])
        rewards = np.array([1.0 - 0.3 * n + 0.1 * t for n in range(N_ENVS)], dtype=np.float32)
        term = np.array([(t, n) in terminated for n in range(N_ENVS)])
        trunc = np.array([(t, n) in truncated for n in range(N_ENVS)])
        nxt = np.array([[o + 0.5 for o in obs_at(t + 1, n)] if term[n] or trunc[n] else obs_at(t + 1, n)
                        for n in range(N_ENVS)], dtype=np.float32)
        steps.append((obs, actions, rewards, term, trunc, nxt))
    return steps


def linear(weights, out):
    module = nn.Linear(OBS_DIM, out)
    torch.nn.utils.vector_to_parameters(torch.tensor(weights, dtype=torch.float32), module.parameters())
    return module


def reference_advantages(steps, start, end, critic_w, gamma, lam, cut_truncations=False):
    """GAE written out per env with Python floats: {(t, n): advantage} for t in [start, end)."""
    critic = linear(critic_w, 1)
    value = lambda x: float(critic(torch.as_tensor(x, dtype=torch.float32)).detach())  # noqa: E731
    advantages = {}
    for n in range(N_ENVS):
        running = 0.0
        for t in reversed(range(start, end)):
            obs, _, rewards, term, trunc, nxt = steps[t]
            terminated = bool(term[n]) or (cut_truncations and bool(trunc[n]))
            delta = float(rewards[n]) + (0.0 if terminated else gamma * value(nxt[n])) - value(obs[n])
            running = delta if (term[n] or trunc[n]) else delta + gamma * lam * running
            advantages[(t, n)] = running
    return advantages


def valid_rows(steps, start, end):
    """(t, n) in [t, n] order, leaving out the step right after an env's episode ended (it only resets)."""
    return [(t, n) for t in range(start, end) for n in range(N_ENVS)
            if t == 0 or not (steps[t - 1][3][n] or steps[t - 1][4][n])]


def standardise(values, how):
    if how == "none":
        return list(values)
    std = 0.0 if len(values) < 2 else (statistics.pstdev(values) if how == "population" else statistics.stdev(values))
    mean = sum(values) / len(values)
    return [(v - mean) / (std + 1e-8) for v in values]


def reference_grad(steps, window, theta, theta_old, minibatch, config, *, norm="population", surrogate_sign=-1.0,
                   ent_sign=-1.0, stale=False, cut=False, clip_eps=None, use_max=False, clip_to=None,
                   critic_w=CRITIC_W, lower_clip=True):
    """The actor gradient of PPO's loss, written out sample by sample: -mean(min(r A, clip(r) A)) - c H, r the ratio
    to pi_old (theta_old), A the rollout's GAE standardised over the valid rows (or the minibatch); the keyword
    arguments make the mistakes."""
    start, end = window
    advantages = reference_advantages(steps, start, end, critic_w, config.gamma, config.gae_lambda, cut)
    rows = valid_rows(steps, start, end)
    if config.normalize_advantages and not config.normalize_per_minibatch:
        table = dict(zip(rows, standardise([advantages[r] for r in rows], norm)))
    else:
        table = {r: advantages[r] for r in rows}
    adv = [table[r] for r in minibatch]
    if config.normalize_advantages and config.normalize_per_minibatch:
        adv = standardise(adv, norm)
    old, policy = linear(theta_old, N_ACTIONS), linear(theta, N_ACTIONS)
    eps = config.clip_eps if clip_eps is None else clip_eps
    terms, entropies = [], []
    for (t, n), a in zip(minibatch, adv):
        obs, actions = steps[t][0][n], steps[t][1]
        log_p = torch.log_softmax(policy(obs), -1)
        with torch.no_grad():
            old_log_p = torch.log_softmax(old(obs), -1)[actions[n]]
        ratio = torch.exp(log_p[actions[n]] - (log_p[actions[n]].detach() if stale else old_log_p))
        pick = torch.max if use_max else torch.min
        terms.append(pick(ratio * a, torch.clamp(ratio, 1 - eps if lower_clip else None, 1 + eps) * a))
        entropies.append(-(log_p.exp() * log_p).sum())
    loss = surrogate_sign * torch.stack(terms).mean() + ent_sign * config.ent_coef * torch.stack(entropies).mean()
    params = list(policy.parameters())
    grads = torch.autograd.grad(loss, params)
    if clip_to is not None:
        for p, g in zip(params, grads):
            p.grad = g.clone()
        torch.nn.utils.clip_grad_norm_(params, clip_to)
        grads = [p.grad for p in params]
    return torch.cat([g.reshape(-1) for g in grads]).detach()


class Recorder:
    """What loops.py's glue recorder holds after a train_ppo run, built by hand."""

    def __init__(self, steps, actor_steps, critic_at, critic_first=False):
        self.policy, self.critic = linear(POLICY_W, N_ACTIONS), linear(CRITIC_W, 1)
        actor_opt, critic_opt = optimiser(self.policy.parameters()), optimiser(self.critic.parameters())
        records = [{"optimizer": opt, "shapes": [list(p.shape) for p in module.parameters()]}
                   for opt, module in ((actor_opt, self.policy), (critic_opt, self.critic))]
        self.optimizers = {i: r for i, r in enumerate(records[::-1] if critic_first else records)}
        self.n_actions, self.obs_dim = N_ACTIONS, OBS_DIM
        self.env_steps, self.actor_steps, self.critic_at = steps, actor_steps, critic_at
        self.obs_modules = {id(self.policy): self.policy, id(self.critic): self.critic}


def rows_obs(steps, rows):
    return torch.stack([steps[t][0][n] for t, n in rows])


def actor_step(steps, clock, theta, rows, grad):
    return {"clock": clock, "theta": torch.tensor(theta, dtype=torch.float32), "grad": grad,
            "inputs": [rows_obs(steps, rows)]}


# A rollout of 4 steps of 2 envs: env 0 terminates at t=1, env 1 is truncated at t=2; so (2, 0) and (3, 1) only
# reset their env and are not in the batch. Two actor steps, on two minibatches of the 6 valid rows.
ENDS = dict(terminated={(1, 0)}, truncated={(2, 1)})
MINI_1, MINI_2 = [(0, 0), (1, 1), (2, 1)], [(0, 1), (1, 0), (3, 0)]


def one_update(config, first=None, second=None, steps=None, clip_to=None, moved=MOVED, **mistake):
    """The proof's verdict on one update of two actor steps (the second one at ``moved``); each step's gradient is
    PPO's unless ``first``/``second`` give it (or ``mistake`` applies to both)."""
    steps = steps or make_steps(4, **ENDS)
    grad_1 = first if first is not None else reference_grad(steps, (0, 4), POLICY_W, POLICY_W, MINI_1, config,
                                                            clip_to=clip_to, **mistake)
    grad_2 = second if second is not None else reference_grad(steps, (0, 4), moved, POLICY_W, MINI_2, config,
                                                              clip_to=clip_to, **mistake)
    recorder = Recorder(steps, [actor_step(steps, 4, POLICY_W, MINI_1, grad_1),
                                actor_step(steps, 4, moved, MINI_2, grad_2)],
                        {4: torch.tensor(CRITIC_W)})
    return ppo_proof.ppo_gradient_proof(recorder, config)


def test_the_rollouts_valid_rows_leave_out_the_steps_after_an_end():
    """(Of the test's own rollout.) The steps right after env 0's termination and env 1's truncation are left out."""
    assert valid_rows(make_steps(4, **ENDS), 0, 4) == [(0, 0), (0, 1), (1, 0), (1, 1), (2, 1), (3, 0)]


@pytest.mark.parametrize("norm", ["population", "sample"])
@pytest.mark.parametrize("changes", [{}, {"normalize_per_minibatch": True}, {"normalize_advantages": False},
                                     {"normalize_advantages": False, "normalize_per_minibatch": True},
                                     {"ent_coef": 0.0}, {"clip_eps": 0.1}, {"gamma": 0.5, "gae_lambda": 0.95}],
                         ids=["batch", "per-minibatch", "raw", "raw-per-minibatch-ignored", "no-entropy", "eps-0.1",
                              "other-gae"])
def test_ppos_own_gradient_is_accepted_at_every_step(norm, changes):
    """Steps whose gradients are PPO's (standardised over the batch's valid rows or per minibatch, by the
    population or the sample std, or not at all) are all checked and matched: worst gap far below the tolerance,
    no mistake named, the truncation counted."""
    verdict = one_update(config_for(**changes), norm=norm)
    assert verdict["checked"] == 2 and verdict["unmatched"] == 0 and verdict["worst"] < 1e-5
    assert (verdict["ratio_always_one"], verdict["truncation_as_termination"], verdict["surrogate_sign_flipped"]) \
        == (False, False, False)
    assert verdict["truncations"] == 1


@pytest.mark.parametrize("clip_eps", [0.2, 0.25])
def test_the_ratio_is_clipped_below_at_1_minus_eps_too(clip_eps):
    """The clip range is [1 - eps, 1 + eps]: at a step whose ratio fell below 1 - eps for a negative advantage,
    PPO's gradient (that sample clipped: no gradient) is accepted, one without the lower bound is not."""
    config = config_for(clip_eps=clip_eps)
    steps = make_steps(4, **ENDS)
    right = reference_grad(steps, (0, 4), MOVED_DOWN, POLICY_W, MINI_2, config)
    unbounded = reference_grad(steps, (0, 4), MOVED_DOWN, POLICY_W, MINI_2, config, lower_clip=False)
    assert (unbounded - right).norm() / right.norm() > 0.05
    assert one_update(config, moved=MOVED_DOWN)["worst"] < 1e-5
    verdict = one_update(config, second=unbounded, moved=MOVED_DOWN)
    assert verdict["worst"] > 1e-3 and verdict["worst_at"] == [1, 2]


def test_a_gradient_clipped_to_max_grad_norm_is_accepted():
    """With config.max_grad_norm, a step whose gradient was clipped to it (clip_grad_norm_) is PPO's."""
    config = config_for(max_grad_norm=0.05)
    verdict = one_update(config, clip_to=0.05)
    assert verdict["checked"] == 2 and verdict["worst"] < 1e-5
    assert one_update(config_for(max_grad_norm=None), clip_to=0.05)["worst"] > 1e-3


@pytest.mark.parametrize("mistake", [dict(surrogate_sign=1.0), dict(ent_sign=1.0), dict(use_max=True),
                                     dict(clip_eps=0.05), dict(norm_other=True)],
                         ids=["surrogate-sign", "entropy-sign", "max-not-min", "another-clip", "other-gae"])
def test_another_loss_is_not_ppos(mistake):
    """A gradient of another loss (the surrogate's sign flipped, the entropy's sign flipped, max for min, another
    clip range, advantages of another gamma and lambda) is far from PPO's: worst above the tolerance, at the step
    where it shows."""
    config = config_for()
    steps = make_steps(4, **ENDS)
    if mistake.pop("norm_other", False):
        other = config_for(gamma=config.gae_lambda, gae_lambda=config.gamma)  # gamma and lambda swapped
        grads = [reference_grad(steps, (0, 4), POLICY_W, POLICY_W, MINI_1, other),
                 reference_grad(steps, (0, 4), MOVED, POLICY_W, MINI_2, other)]
    else:
        grads = [reference_grad(steps, (0, 4), POLICY_W, POLICY_W, MINI_1, config, **mistake),
                 reference_grad(steps, (0, 4), MOVED, POLICY_W, MINI_2, config, **mistake)]
    right = reference_grad(steps, (0, 4), MOVED, POLICY_W, MINI_2, config)
    assert (grads[1] - right).norm() / right.norm() > 0.005  # the mistake changes the second step's gradient
    verdict = one_update(config, first=grads[0], second=grads[1], steps=steps)
    assert verdict["checked"] == 2 and verdict["worst"] > 1e-3 and verdict["worst_at"] in ([1, 1], [1, 2])


def test_a_flipped_surrogate_is_named():
    """A loop that ascends PPO's loss (the surrogate's sign flipped, the entropy bonus kept) is named:
    surrogate_sign_flipped, and not the other mistakes."""
    verdict = one_update(config_for(), surrogate_sign=1.0)
    assert verdict["worst"] > 1e-3 and verdict["surrogate_sign_flipped"] is True
    assert verdict["ratio_always_one"] is False and verdict["truncation_as_termination"] is False


def test_a_ratio_that_is_always_one_is_named():
    """A loop whose ratio's pi_old is the policy being updated: its first step of an update is PPO's (the two
    agree there), its later steps are explained only by that ratio: ratio_always_one, at update 1 step 2."""
    verdict = one_update(config_for(), stale=True)
    assert verdict["checked"] == 2 and verdict["worst"] > 1e-3 and verdict["worst_at"] == [1, 2]
    assert verdict["ratio_always_one"] is True
    assert verdict["surrogate_sign_flipped"] is False and verdict["truncation_as_termination"] is False


def test_a_truncation_treated_as_a_termination_is_named():
    """A loop that drops the bootstrap of a truncated step (as at a termination) is named
    truncation_as_termination when the rollout had a truncation."""
    verdict = one_update(config_for(), cut=True)
    assert verdict["worst"] > 1e-3 and verdict["truncation_as_termination"] is True and verdict["truncations"] == 1
    assert verdict["ratio_always_one"] is False and verdict["surrogate_sign_flipped"] is False


@pytest.mark.parametrize("first, second", [("surrogate_sign", "cut"), ("cut", "surrogate_sign"),
                                           ("surrogate_sign", "stale"), ("cut", "stale")])
def test_a_mistake_is_named_only_when_it_explains_every_step_ppo_does_not(first, second):
    """Each mistake is named only if it explains every step that PPO's gradient does not: two steps of two different
    mistakes (in either order) name neither."""
    config = config_for()
    mistakes = {"surrogate_sign": dict(surrogate_sign=1.0), "cut": dict(cut=True), "stale": dict(stale=True)}
    steps = make_steps(4, **ENDS)
    grad_1 = reference_grad(steps, (0, 4), POLICY_W, POLICY_W, MINI_1, config, **mistakes[first])
    grad_2 = reference_grad(steps, (0, 4), MOVED, POLICY_W, MINI_2, config, **mistakes[second])
    verdict = one_update(config, first=grad_1, second=grad_2, steps=steps)
    assert verdict["checked"] == 2 and verdict["worst"] > 1e-3
    assert (verdict["ratio_always_one"], verdict["truncation_as_termination"], verdict["surrogate_sign_flipped"]) \
        == (False, False, False)


def test_a_step_on_rows_outside_the_batch_is_unmatched_not_checked():
    """A step whose every candidate minibatch holds a row the batch has not (here the observation an env reset
    to after its end, or one never played) cannot be recomputed: unmatched, not checked."""
    steps = make_steps(4, **ENDS)
    good = reference_grad(steps, (0, 4), POLICY_W, POLICY_W, MINI_1, config_for())
    outside = actor_step(steps, 4, MOVED, MINI_2 + [(2, 0)], torch.ones(6))
    never = {**actor_step(steps, 4, MOVED, MINI_2, torch.ones(6)), "inputs": [torch.full((2, OBS_DIM), 9.0)]}
    empty = {**actor_step(steps, 4, MOVED, MINI_2, torch.ones(6)), "inputs": []}
    recorder = Recorder(steps, [actor_step(steps, 4, POLICY_W, MINI_1, good), outside, never, empty],
                        {4: torch.tensor(CRITIC_W)})
    verdict = ppo_proof.ppo_gradient_proof(recorder, config_for())
    assert (verdict["checked"], verdict["unmatched"]) == (1, 3) and verdict["worst"] < 1e-5


def test_any_candidate_minibatch_that_explains_the_step_counts():
    """A step may carry several candidate minibatches (the policy's calls since the last step): the best one is
    its gap."""
    steps = make_steps(4, **ENDS)
    grad = reference_grad(steps, (0, 4), POLICY_W, POLICY_W, MINI_1, config_for())
    step = actor_step(steps, 4, POLICY_W, MINI_1, grad)
    step["inputs"] = [rows_obs(steps, MINI_2), rows_obs(steps, MINI_1), rows_obs(steps, [(0, 0)])]
    verdict = ppo_proof.ppo_gradient_proof(Recorder(steps, [step], {4: torch.tensor(CRITIC_W)}), config_for())
    assert verdict["checked"] == 1 and verdict["worst"] < 1e-5


def counted_gaps(monkeypatch):
    """Every gradient the proof computes, as (variant, candidate rows), the real gap returned."""
    asked, gap = [], ppo_proof._relative_gap

    def counted(applied, loss, params, max_grad_norm):
        frame = sys._getframe(1).f_locals
        asked.append((frame["variant"], len(frame["idx"])))
        return gap(applied, loss, params, max_grad_norm)
    monkeypatch.setattr(ppo_proof, "_relative_gap", counted)
    return asked


def test_the_latest_call_ppo_explains_ends_the_search_so_a_rollouts_calls_cost_no_gradient(monkeypatch):
    """An update's first actor step sees the rollout's calls of the policy (one per env step) before the minibatch's:
    the latest call is tried first and, when PPO's loss explains it, no other gradient is computed (searched from
    the first call, the check's 10,000-step run spent 93% of the proof's gradients on the rollout's calls)."""
    asked = counted_gaps(monkeypatch)
    steps = make_steps(4, **ENDS)
    grad = reference_grad(steps, (0, 4), POLICY_W, POLICY_W, MINI_1, config_for())
    step = actor_step(steps, 4, POLICY_W, MINI_1, grad)
    step["inputs"] = [rows_obs(steps, [(t, 0), (t, 1)]) for t in (0, 1)] + [rows_obs(steps, MINI_1)]
    verdict = ppo_proof.ppo_gradient_proof(Recorder(steps, [step], {4: torch.tensor(CRITIC_W)}), config_for())
    assert verdict["checked"] == 1 and verdict["worst"] < 1e-5
    assert asked == [("ppo", len(MINI_1))]


def test_a_mistake_ruled_out_on_one_step_is_not_computed_on_the_next(monkeypatch):
    """A mistake is named only when it explains every step PPO does not; once a step rules it out, later steps do
    not compute its gradient (a loop on another loss pays PPO's gradients and little more). Two steps whose gradients
    no loss explains: the first computes every variant, the second only PPO's."""
    asked = counted_gaps(monkeypatch)
    verdict = one_update(config_for(), first=torch.ones(6), second=torch.ones(6))
    assert verdict["checked"] == 2 and verdict["worst"] > 1e-3 and not verdict["ratio_always_one"]
    first = {variant for variant, _ in asked[:len(asked) - 2]}
    assert first == {"ppo", "stale", "cut", "flipped"} and asked[-2:] == [("ppo", 3), ("ppo", 3)], repr(asked)


def test_updates_are_windows_between_actor_clocks_each_with_its_critic_and_pi_old():
    """Actor steps are grouped by the env step they were taken at; each group is an update on the rollout since the
    previous group (the first from step 0), with the critic's weights recorded at its clock and pi_old its first
    step's weights. The worst step is named [update, step] counting from 1; a wrong step in update 2 is [2, 1]."""
    config = config_for()
    steps = make_steps(8, terminated={(1, 0), (3, 1)}, truncated={(5, 0)})
    critic_2 = [0.1, 0.7, -0.4]
    theta_2 = [0.2, 0.1, -0.3, 0.2, 0.0, 0.1]

    def grad(window, theta, theta_old, rows, critic_w, **mistake):
        return reference_grad(steps, window, theta, theta_old, rows, config, critic_w=critic_w, **mistake)
    rows_1, rows_2 = valid_rows(steps, 0, 4), valid_rows(steps, 4, 8)
    assert (4, 0) in rows_2 and (4, 1) not in rows_2  # env 1 ended at t=3, the end of update 1
    good = [actor_step(steps, 4, POLICY_W, rows_1[:3], grad((0, 4), POLICY_W, POLICY_W, rows_1[:3], CRITIC_W)),
            actor_step(steps, 4, MOVED, rows_1[3:], grad((0, 4), MOVED, POLICY_W, rows_1[3:], CRITIC_W)),
            actor_step(steps, 8, theta_2, rows_2[:3], grad((4, 8), theta_2, theta_2, rows_2[:3], critic_2)),
            actor_step(steps, 8, MOVED, rows_2[3:], grad((4, 8), MOVED, theta_2, rows_2[3:], critic_2))]
    critic_at = {4: torch.tensor(CRITIC_W), 8: torch.tensor(critic_2)}
    recorder = Recorder(steps, good, critic_at)
    recorder.critic.weight.data.fill_(5.0)  # the live critic has moved on: the recorded weights count
    verdict = ppo_proof.ppo_gradient_proof(recorder, config)
    assert verdict["checked"] == 4 and verdict["worst"] < 1e-5 and verdict["truncations"] == 1
    wrong = copy.copy(good)
    wrong[2] = actor_step(steps, 8, theta_2, rows_2[:3],
                          grad((4, 8), theta_2, theta_2, rows_2[:3], critic_2, surrogate_sign=1.0))
    verdict = ppo_proof.ppo_gradient_proof(Recorder(steps, wrong, critic_at), config)
    assert verdict["worst"] > 1e-3 and verdict["worst_at"] == [2, 1]
    verdict = ppo_proof.ppo_gradient_proof(Recorder(steps, good, {8: torch.tensor(critic_2)}), config)
    assert verdict["checked"] == 2 and verdict["worst"] < 1e-5  # update 1 has no recorded critic: skipped


def test_truncations_count_every_truncated_env_step_of_the_checked_updates():
    """``truncations`` is the number of truncated (t, n) steps in the updates' windows, several in one update
    counted each; an update skipped for want of its critic's weights does not count."""
    steps = make_steps(8, truncated={(0, 1), (1, 0), (2, 1), (5, 0)})
    rows = valid_rows(steps, 0, 4)
    grad = reference_grad(steps, (0, 4), POLICY_W, POLICY_W, rows[:3], config_for())
    recorder = Recorder(steps, [actor_step(steps, 4, POLICY_W, rows[:3], grad),
                                actor_step(steps, 8, POLICY_W, valid_rows(steps, 4, 8)[:2], torch.ones(6))],
                        {4: torch.tensor(CRITIC_W)})
    verdict = ppo_proof.ppo_gradient_proof(recorder, config_for())
    assert verdict["truncations"] == 3 and verdict["checked"] == 1 and verdict["worst"] < 1e-5


def test_an_actor_step_before_any_env_step_is_skipped():
    """An actor step taken at env step 0 has no rollout before it: skipped (not checked, not unmatched)."""
    steps = make_steps(4, **ENDS)
    grad = reference_grad(steps, (0, 4), POLICY_W, POLICY_W, MINI_1, config_for())
    early = actor_step(steps, 0, POLICY_W, MINI_1, torch.ones(6))
    recorder = Recorder(steps, [early, actor_step(steps, 4, POLICY_W, MINI_1, grad)],
                        {0: torch.tensor(CRITIC_W), 4: torch.tensor(CRITIC_W)})
    verdict = ppo_proof.ppo_gradient_proof(recorder, config_for())
    assert (verdict["checked"], verdict["unmatched"]) == (1, 0) and verdict["worst"] < 1e-5


def test_the_proof_finds_actor_and_critic_by_their_output_shapes_and_leaves_the_live_networks_alone():
    """The actor's optimiser is the one whose last parameter has shape [n_actions], the critic's [1], in whatever
    order they were recorded; the proof works on copies (the learner's networks keep their weights)."""
    steps = make_steps(4, **ENDS)
    grad = reference_grad(steps, (0, 4), POLICY_W, POLICY_W, MINI_1, config_for())
    recorder = Recorder(steps, [actor_step(steps, 4, POLICY_W, MINI_1, grad)], {4: torch.tensor(CRITIC_W)},
                        critic_first=True)
    with torch.no_grad():  # the learner's networks have moved on since (the recorded weights are what count)
        for p in (*recorder.policy.parameters(), *recorder.critic.parameters()):
            p.fill_(0.7)
    verdict = ppo_proof.ppo_gradient_proof(recorder, config_for())
    assert verdict["checked"] == 1 and verdict["worst"] < 1e-5
    assert all(bool((p == 0.7).all()) for p in (*recorder.policy.parameters(), *recorder.critic.parameters()))


def test_nothing_to_check_is_none():
    """No actor optimiser (no [n_actions] output), no critic ([1]), no actor step or no env step: None (the glue
    rules report that)."""
    steps = make_steps(4, **ENDS)
    make = lambda: Recorder(steps, [actor_step(steps, 4, POLICY_W, MINI_1, torch.ones(6))],  # noqa: E731
                            {4: torch.tensor(CRITIC_W)})
    assert ppo_proof.ppo_gradient_proof(make(), config_for()) is not None
    no_actor = make()
    no_actor.n_actions = 3
    no_critic = make()
    no_critic.optimizers = {0: no_critic.optimizers[0]}
    empty_shapes = make()
    empty_shapes.optimizers[1]["shapes"] = []
    no_steps, no_env = make(), make()
    no_steps.actor_steps, no_env.env_steps = [], []
    for recorder in (no_actor, no_critic, empty_shapes, no_steps, no_env):
        assert ppo_proof.ppo_gradient_proof(recorder, config_for()) is None


def test_networks_never_called_on_observations_are_an_error():
    """When the optimisers' networks are not among the modules called on observations, the proof says so."""
    steps = make_steps(4, **ENDS)
    for keep in ("policy", "critic"):
        recorder = Recorder(steps, [actor_step(steps, 4, POLICY_W, MINI_1, torch.ones(6))],
                            {4: torch.tensor(CRITIC_W)})
        module = getattr(recorder, keep)
        recorder.obs_modules = {id(module): module}
        assert ppo_proof.ppo_gradient_proof(recorder, config_for()) == {
            "error": "the networks the optimisers step were never called on observations"}
