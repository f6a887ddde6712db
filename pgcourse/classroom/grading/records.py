"""Files a teacher keeps: written atomically, the previous version kept, an audit line per run.

Nothing the grader wrote before is lost when it writes again: a file about to be replaced is first
copied to ``<stem>.history/<UTC time>-<name>`` beside it (a file whose text would not change is left
alone), and every run that writes a gradebook appends one JSON line to ``<stem>.audit.jsonl``: when,
which course version (pgcourse's version, the course notebook's SHA-256, the course's git commit if
any), the options given, the students graded, and the files it wrote or kept.
"""
from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import subprocess
import tempfile
from datetime import datetime, timezone
from pathlib import Path
from typing import Any


def atomic_write(path: Path, text: str, overwrite: bool) -> Path:
    """Write ``text`` to ``path`` atomically; without ``overwrite`` never replace an existing file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    handle = tempfile.NamedTemporaryFile("w", encoding="utf-8", dir=path.parent, prefix=f".{path.name}.",
                                         suffix=".tmp", delete=False)
    try:
        with handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(handle.name, 0o644)
        if overwrite:
            os.replace(handle.name, path)
        else:
            try:
                os.link(handle.name, path)     # atomic "create if absent"
            except FileExistsError:
                raise FileExistsError(f"{path} already exists; pass --overwrite to replace it") from None
            os.unlink(handle.name)
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(handle.name)
    return path


def run_stamp(now: datetime | None = None) -> str:
    """This run's time, as used in history file names: ``20250314T120102Z``."""
    return (now or datetime.now(timezone.utc)).astimezone(timezone.utc).strftime("%Y%m%dT%H%M%SZ")


def history_folder(path: Path) -> Path:
    return path.parent / f"{path.stem}.history"


def keep_previous(path: Path, stamp: str) -> Path | None:
    """Copy ``path`` (if it exists) into its history folder before it is replaced; the copy's path."""
    if not path.is_file():
        return None
    folder = history_folder(path)
    folder.mkdir(parents=True, exist_ok=True)
    target = folder / f"{stamp}-{path.name}"
    number = 1
    while target.exists():  # two runs in one second: never overwrite a kept version (and list in order: '.' > '-')
        number += 1
        target = folder / f"{stamp}.{number:03d}-{path.name}"
    shutil.copy2(path, target)
    return target


def write_kept(path: Path, text: str, stamp: str) -> Path | None:
    """Write ``text`` to ``path``, keeping the previous version in the history; returns that copy (None when
    there was no previous file, or when its text is the same: then nothing is written)."""
    path = Path(path)
    if path.is_symlink() or path.is_dir():  # a link is never followed: not to read into the history, nor to write
        from .course import GradingError

        what = "a symbolic link" if path.is_symlink() else "a folder"
        raise GradingError(f"{path} is {what}; expected a file name (nothing was written there)")
    with contextlib.suppress(OSError, UnicodeDecodeError):
        if path.is_file() and path.read_text(encoding="utf-8") == text:
            return None
    kept = keep_previous(path, stamp)
    atomic_write(path, text, overwrite=True)
    return kept


def course_version(course_root: Path, notebook: Path) -> dict[str, str]:
    """What identifies the grading rules used: pgcourse's version, the course notebook's hash, the git commit."""
    from ..._version import __version__

    version = {"pgcourse": __version__}
    with contextlib.suppress(OSError):
        version["course_notebook"] = f"{notebook.name} sha256:{hashlib.sha256(notebook.read_bytes()).hexdigest()[:16]}"
    with contextlib.suppress(OSError, subprocess.SubprocessError):
        commit = subprocess.run(["git", "-C", str(course_root), "rev-parse", "--short", "HEAD"], capture_output=True,
                                text=True, timeout=10, check=False)
        if commit.returncode == 0 and commit.stdout.strip():
            dirty = subprocess.run(["git", "-C", str(course_root), "status", "--porcelain", "--", "solutions",
                                    "exercises"], capture_output=True, text=True, timeout=10, check=False)
            version["git"] = commit.stdout.strip() + ("+changes" if dirty.stdout.strip() else "")
    return version


def audit(path: Path, entry: dict[str, Any]) -> Path:
    """Append one line to ``<stem>.audit.jsonl`` beside ``path`` (never rewritten, only appended to)."""
    log = path.parent / f"{path.stem}.audit.jsonl"
    log.parent.mkdir(parents=True, exist_ok=True)
    line = {"time": datetime.now(timezone.utc).replace(microsecond=0).isoformat(), **entry}
    with open(log, "a", encoding="utf-8") as handle:
        handle.write(json.dumps(line, ensure_ascii=False, default=str) + "\n")
    return log
