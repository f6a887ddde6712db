"""A memory cgroup per student process, where this machine lets the grader make one.

The address-space limit (``RLIMIT_AS``, set by :mod:`.runner`) counts mappings only: pages of a file on a
tmpfs, of an anonymous file or of a shared segment stay held after their last ``munmap``. A memory cgroup
counts every page the process charges, mapped or not, so where one can be made the student process runs in
a cgroup of its own whose limit is its memory at hello (the interpreter, torch and the course's imports,
before any student code) plus ``--memory``; past it the kernel kills the process (SIGKILL), and the
feedback says that it was killed for using too much memory.

Where the grader may write:

- **cgroup v1** (a ``memory`` hierarchy, as root on a v1 or hybrid machine): a child of the grader's own
  memory cgroup; ``memory.limit_in_bytes`` (and ``memory.memsw.limit_in_bytes`` where swap is counted).
- **cgroup v2**: a child of the grader's own cgroup when ``memory`` is enabled for its children there
  (``cgroup.subtree_control``: the root cgroup, or a delegated subtree the grader was started in);
  ``memory.max`` and ``memory.swap.max``.

Elsewhere (a teacher who is not root on a systemd machine, macOS) there is no cgroup: the sandbox's seccomp
filter and its read-only ``/dev/shm`` close the known ways around the address-space limit instead
(:mod:`.sandbox`); docs/teachers.md says what remains.
"""
from __future__ import annotations

import contextlib
import itertools
import os
import time
from dataclasses import dataclass
from pathlib import Path

V1, V2 = "v1", "v2"
PREFIX = "pgcourse-student-"
_serial = itertools.count()


@dataclass(frozen=True)
class Hierarchy:
    """Where this process may make memory cgroups: ``version`` (V1 or V2) and the parent folder."""

    version: str
    parent: Path

    @property
    def limit_files(self) -> tuple[str, ...]:
        """The files a limit is written to, memory first (v1 demands memsw >= memory)."""
        return ("memory.limit_in_bytes", "memory.memsw.limit_in_bytes") if self.version == V1 else \
            ("memory.max", "memory.swap.max")

    @property
    def usage_file(self) -> str:
        return "memory.usage_in_bytes" if self.version == V1 else "memory.current"


def _own_paths(proc_cgroup: str) -> tuple[str | None, str | None]:
    """(v1 memory path, v2 path) of this process, from the text of /proc/self/cgroup."""
    v1 = v2 = None
    for line in proc_cgroup.splitlines():
        number, _, rest = line.partition(":")
        controllers, _, path = rest.partition(":")
        if number == "0" and controllers == "":
            v2 = path
        elif "memory" in controllers.split(","):
            v1 = path
    return v1, v2


def _mounts(mountinfo: str) -> tuple[str | None, str | None]:
    """(v1 memory mount point, v2 mount point) from the text of /proc/self/mountinfo."""
    v1 = v2 = None
    for line in mountinfo.splitlines():
        fields = line.split()
        if " - " not in line or len(fields) < 5:
            continue
        after = line.split(" - ", 1)[1].split()
        fstype, options = after[0], after[2] if len(after) > 2 else ""
        if fstype == "cgroup" and "memory" in options.split(","):
            v1 = v1 or fields[4]
        elif fstype == "cgroup2":
            v2 = v2 or fields[4]
    return v1, v2


def _writable(folder: Path) -> bool:
    return folder.is_dir() and os.access(folder, os.W_OK)


def find_hierarchy(proc_cgroup: str | None = None, mountinfo: str | None = None) -> tuple[Hierarchy | None, str]:
    """(where to make memory cgroups, how it was found), or (None, why there is none here)."""
    try:
        proc_cgroup = proc_cgroup if proc_cgroup is not None else Path("/proc/self/cgroup").read_text()
        mountinfo = mountinfo if mountinfo is not None else Path("/proc/self/mountinfo").read_text()
    except OSError as error:
        return None, f"no cgroups here ({error.strerror})"
    (own_v1, own_v2), (mount_v1, mount_v2) = _own_paths(proc_cgroup), _mounts(mountinfo)
    if own_v1 is not None and mount_v1 is not None:
        parent = Path(mount_v1) / own_v1.lstrip("/")
        if _writable(parent) and (parent / "memory.limit_in_bytes").exists():
            return Hierarchy(V1, parent), f"a memory cgroup (v1) of its own under {parent}"
    if own_v2 is not None and mount_v2 is not None:
        parent = Path(mount_v2) / own_v2.lstrip("/")
        with contextlib.suppress(OSError):
            enabled = (parent / "cgroup.subtree_control").read_text().split()
            if "memory" in enabled and _writable(parent):
                return Hierarchy(V2, parent), f"a memory cgroup (v2) of its own under {parent}"
    return None, ("no memory cgroup the grader may create (not root, or cgroup v2 without the memory controller "
                  "delegated to the grader's own cgroup)")


class StudentCgroup:
    """The memory cgroup of one student process: made empty, entered by the process before it starts, limited
    once the process has said hello, removed when it has ended."""

    def __init__(self, hierarchy: Hierarchy):
        self.hierarchy = hierarchy
        self.path = hierarchy.parent / f"{PREFIX}{os.getpid()}-{next(_serial)}"
        self.path.mkdir()

    def entry_command(self, argv: list[str]) -> list[str]:
        """``argv`` started inside this cgroup: the shell writes its own pid, then becomes ``argv``."""
        return ["/bin/sh", "-c", 'echo $$ > "$0/cgroup.procs" && exec "$@"', str(self.path), *argv]

    def usage(self) -> int:
        return int((self.path / self.hierarchy.usage_file).read_text().split()[0])

    def limit(self, added_bytes: int) -> int:
        """Limit the cgroup to what it holds now plus ``added_bytes`` (memory and memory with swap);
        returns the limit in bytes."""
        limit = self.usage() + int(added_bytes)
        for name in self.hierarchy.limit_files:
            target = self.path / name
            if target.exists():
                target.write_text(f"{limit}\n" if name != "memory.swap.max" else "0\n")
        return limit

    def remove(self, wait: float = 5.0) -> None:
        """Remove the (emptied) cgroup: its processes may take a moment to be reaped after a kill."""
        end = time.monotonic() + wait
        while True:
            try:
                self.path.rmdir()
                return
            except FileNotFoundError:
                return
            except OSError:
                if time.monotonic() >= end:
                    return
                time.sleep(0.02)
