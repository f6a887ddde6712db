"""Run notebooks' code cells in a kernel that starts with the fake GPU of ``tests/fake_cuda.py`` installed.

The kernel is the ordinary ``python3`` one; an IPython startup file (in a private ``IPYTHONDIR``) puts
``tests/`` on ``sys.path`` and calls :func:`fake_cuda.install`, so ``torch.cuda.is_available()`` is true and
``device="auto"`` trains on the fake ``cuda:0``. The notebook itself is not changed: cell numbers are the
notebook's own. Every cell runs (``allow_errors``), and each error is recorded with the line of the cell
it came from, the deepest line of notebook code (a function defined in an earlier cell) and the deepest
frame overall, so a report can say where a fix goes.

As a script (prints a table and writes JSON)::

    SDL_VIDEODRIVER=dummy .venv/bin/python tests/fake_cuda_notebooks.py notebooks/*.ipynb solutions/*.ipynb \
        [--rev HEAD] [--out fake_cuda_report.json] [--jobs 2]

``--rev`` runs the notebooks as committed at that revision (``git show``) instead of the working tree's.
Notebooks run in a scratch copy of their folder (what they write stays out of the tree); the package and
``figures/`` are the installed ones.
"""
from __future__ import annotations

import argparse
import concurrent.futures
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import nbformat

ROOT = Path(__file__).resolve().parents[1]
TESTS = ROOT / "tests"
ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")

STARTUP = """\
import os, sys
os.environ.setdefault("SDL_VIDEODRIVER", "dummy")
os.environ["PGCOURSE_DEVICE"] = "cuda"
sys.path.insert(0, {tests!r})
import fake_cuda as _fake_cuda
_fake_cuda.install()
del _fake_cuda
"""


def make_ipython_dir(folder: Path, fake: bool = True) -> Path:
    """An ``IPYTHONDIR`` whose default profile installs the fake GPU at start-up (``fake=False``: a plain
    profile, to time the same notebooks without the double)."""
    startup = folder / "profile_default" / "startup"
    startup.mkdir(parents=True, exist_ok=True)
    if fake:
        (startup / "00-fake-cuda.py").write_text(STARTUP.format(tests=str(TESTS)))
    return folder


# The smallest fix of each cell that fails on a GPU (issue 32), as (code cell, old text, new text): code cells
# count from 0 (the execution count minus one). ``--with-suggested-fixes`` applies them in memory, to check
# that they suffice and to find failures the first one hid; the notebooks' owners apply them for real.
SUGGESTED_FIXES: dict[str, list[tuple[int, str, str]]] = {}  # none left: the notebooks carry their fixes (issue 32)


def apply_fixes(notebook: nbformat.NotebookNode, fixes: list[tuple[int, str, str]]) -> None:
    """Apply ``(code cell, old, new)`` replacements in memory; each ``old`` must occur in its cell."""
    code = [cell for cell in notebook.cells if cell.cell_type == "code"]
    for index, old, new in fixes:
        if old not in code[index].source:
            raise ValueError(f"code cell {index} does not contain {old!r}")
        code[index].source = code[index].source.replace(old, new)


def _frames(traceback: list[str]) -> list[tuple[str, int, str]]:
    """(where, line number, code line) of each frame in an IPython traceback (``where``: "Cell In[n]" or a path)."""
    frames = []
    for block in traceback:
        text = ANSI.sub("", block)
        header = re.search(r"(Cell In\[\d+\]|File [^\n,]+?)(?:, line (\d+))", text)
        if not header:
            continue
        where, number = header.group(1).replace("File ", ""), int(header.group(2))
        arrow = re.search(rf"^-+>\s*{number}\s(.*)$", text, re.MULTILINE)
        frames.append((where.strip(), number, arrow.group(1).rstrip() if arrow else ""))
    return frames


def run_notebook(notebook: nbformat.NotebookNode, workdir: Path, ipython_dir: Path, timeout: int = 900,
                 name: str = "") -> dict:
    """Execute every code cell; return ``{"name", "seconds", "cells": [...], "failed": [...]}``.

    ``failed`` holds, for each code cell that raised: ``cell`` (its index among all cells), ``code_cell``
    (among code cells, 0-based: the execution count minus one), ``ename``, ``evalue`` and the frames.
    """
    from nbclient import NotebookClient

    client = NotebookClient(notebook, timeout=timeout, kernel_name="python3", allow_errors=True,
                            resources={"metadata": {"path": str(workdir)}})
    env = {**os.environ, "IPYTHONDIR": str(ipython_dir), "SDL_VIDEODRIVER": "dummy"}
    cells, started = [], time.perf_counter()
    with client.setup_kernel(env=env):
        code_index = -1
        for index, cell in enumerate(notebook.cells):
            if cell.cell_type != "code":
                continue
            code_index += 1
            cell_started = time.perf_counter()
            try:
                client.execute_cell(cell, index)
            except Exception as error:  # a timeout or a dead kernel: record it and go on
                cell.outputs = [nbformat.v4.new_output("error", ename=type(error).__name__,
                                                       evalue=str(error)[:500], traceback=[])]
            record = {"cell": index, "code_cell": code_index,
                      "seconds": round(time.perf_counter() - cell_started, 2)}
            errors = [o for o in cell.get("outputs", []) if o.get("output_type") == "error"]
            if errors:
                frames = _frames(errors[0].get("traceback", []))
                cell_frames = [f for f in frames if f[0].startswith("Cell In")]
                record.update(ename=errors[0]["ename"], evalue=ANSI.sub("", errors[0]["evalue"])[:600],
                              cell_line=list(cell_frames[0]) if cell_frames else None,
                              notebook_line=list(cell_frames[-1]) if cell_frames else None,
                              deepest=list(frames[-1]) if frames else None)
            cells.append(record)
        seconds = time.perf_counter() - started
        # after the notebook's own cells: did the kernel really run on the fake GPU?
        probe = nbformat.v4.new_code_cell("import torch as _t, pgcourse as _pg\n"
                                          "print(_pg.resolve_device('auto'), 'fake' if _t.Generator is not "
                                          "_t._C.Generator else 'real')")
        notebook.cells.append(probe)
        client.execute_cell(probe, len(notebook.cells) - 1)
        notebook.cells.pop()
        device_seen = "".join(o.get("text", "") for o in probe.outputs).strip()
    return {"name": name, "seconds": round(seconds, 1), "device_seen": device_seen, "cells": cells,
            "failed": [c for c in cells if "ename" in c]}


def load(path: str, rev: str | None) -> nbformat.NotebookNode:
    if rev is None:
        return nbformat.read(ROOT / path, as_version=4)
    text = subprocess.run(["git", "show", f"{rev}:{path}"], cwd=ROOT, check=True, capture_output=True,
                          text=True).stdout
    return nbformat.reads(text, as_version=4)


def run_path(path: str, rev: str | None, scratch: Path, timeout: int, fake: bool = True,
             fixes: bool = False) -> dict:
    """Run one notebook (repository-relative ``path``) in a scratch folder of its own."""
    notebook = load(path, rev)
    if fixes:
        apply_fixes(notebook, SUGGESTED_FIXES.get(path, []))
    workdir = scratch / path.replace("/", "__")
    workdir.mkdir(parents=True, exist_ok=True)
    ipython_dir = make_ipython_dir(scratch / f"ipython-{os.getpid()}-{workdir.name}", fake)
    return run_notebook(notebook, workdir, ipython_dir, timeout, name=path)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("notebooks", nargs="+")
    parser.add_argument("--rev", default=None, help="run the notebooks as committed at this git revision")
    parser.add_argument("--out", default=None, help="write the results as JSON here")
    parser.add_argument("--jobs", type=int, default=1)
    parser.add_argument("--timeout", type=int, default=900, help="seconds per cell")
    parser.add_argument("--plain", action="store_true", help="without the double (for timing)")
    parser.add_argument("--with-suggested-fixes", action="store_true", help="apply SUGGESTED_FIXES in memory")
    args = parser.parse_args(argv)
    os.environ.setdefault("SDL_VIDEODRIVER", "dummy")
    paths = [str(Path(p).resolve().relative_to(ROOT)) if Path(p).exists() else p for p in args.notebooks]
    scratch = Path(tempfile.mkdtemp(prefix="fake-cuda-notebooks-"))
    results, started = [], time.perf_counter()
    try:
        with concurrent.futures.ThreadPoolExecutor(args.jobs) as pool:
            futures = {pool.submit(run_path, p, args.rev, scratch, args.timeout, not args.plain,
                                   args.with_suggested_fixes): p for p in paths}
            for future in concurrent.futures.as_completed(futures):
                result = future.result()
                results.append(result)
                print(f"{result['name']}: {len(result['cells'])} code cells in {result['seconds']:.0f} s, "
                      f"{len(result['failed'])} failed (kernel saw: {result['device_seen']})", flush=True)
                for cell in result["failed"]:
                    where = cell["notebook_line"] or ["?", 0, ""]
                    print(f"  code cell {cell['code_cell']} (cell {cell['cell']}): {cell['ename']}: "
                          f"{cell['evalue'][:160]}\n      at {where[0]} line {where[1]}: {where[2].strip()[:140]}",
                          flush=True)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    total = time.perf_counter() - started
    print(f"all: {total:.0f} s")
    if args.out:
        Path(args.out).write_text(json.dumps({"seconds": round(total, 1), "rev": args.rev,
                                              "notebooks": sorted(results, key=lambda r: r["name"])}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
