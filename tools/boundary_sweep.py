#!/usr/bin/env python3
"""Plant the one-line bugs fresh audits keep finding, each in turn, and run the unit tests that execute its line
(issue 45, item 5): a ``<`` that should have been ``<=`` at a threshold no test uses, a guard that checks one of its
parts, ``any`` for ``all``.

    python tools/boundary_sweep.py --out /tmp/sweep                      # the whole package
    python tools/boundary_sweep.py --out /tmp/sweep --paths pgcourse/rl  # one folder (a prefix of the file paths)
    python tools/boundary_sweep.py --out /tmp/sweep --kinds operand      # one kind of mutant (boundary, operand, any-all)
    python tools/boundary_sweep.py --out /tmp/sweep --shard 0/2 & python tools/boundary_sweep.py --out /tmp/sweep --shard 1/2

Three steps, each resumable (a step whose file exists in ``--out`` is not redone):

1. ``mutants.json``: on every line, each ``<``, ``<=``, ``>``, ``>=`` between two operands flipped at its boundary
   (``<`` <-> ``<=``, ``>`` <-> ``>=``: kind ``boundary``); each operand of an ``and``/``or`` dropped (``operand``);
   ``any(`` <-> ``all(`` (``any-all``);
2. ``covmap.json``: which unit tests run each line: the unit lane (``pytest -m unit``) under coverage with one
   context per test function, in a copy of the repository (``git archive HEAD``: commit first);
3. ``results.jsonl``: per mutant, its line changed in a second copy and its tests run (``-x``): ``killed`` (a test
   failed), ``survived`` (all passed), ``not covered`` (no unit test runs the line), ``timeout``. With ``--shard
   i/n`` a process takes every n-th mutant, in a copy and a results file of its own (``results-i.jsonl``).

A survivor is not always a gap: where no input can reach equality (a branch that excludes it, a float32 draw that
cannot equal its threshold) the flip is equivalent. The others want a test at the threshold, one below and one
above: tests/test_boundaries_sweep_*.py hold the first sweep's (2026-11-27).
"""
from __future__ import annotations

import argparse
import ast
import json
import os
import subprocess
import sys
import tarfile
import io
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
FLIPS = {ast.Lt: ("<", "<="), ast.LtE: ("<=", "<"), ast.Gt: (">", ">="), ast.GtE: (">=", ">")}


def boundary_mutants(source: str) -> list[dict]:
    """Each ordering comparison of ``source`` whose operands share a line: ``{"line", "before", "after"}``."""
    lines = source.splitlines(keepends=True)
    found = []
    for node in ast.walk(ast.parse(source)):
        if not isinstance(node, ast.Compare):
            continue
        operands = [node.left, *node.comparators]
        for op, left, right in zip(node.ops, operands, operands[1:]):
            if type(op) not in FLIPS or left.end_lineno != right.lineno:
                continue
            line = lines[right.lineno - 1]
            between = line[left.end_col_offset:right.col_offset]
            before, after = FLIPS[type(op)]
            if between.strip().strip("()").strip() != before:
                continue  # an operator inside brackets or split oddly: left alone
            start = left.end_col_offset + between.index(before)
            found.append({"line": right.lineno, "before": line.rstrip("\n"),
                          "after": (line[:start] + after + line[start + len(before):]).rstrip("\n")})
    return sorted(found, key=lambda m: (m["line"], m["after"]))


def operand_mutants(source: str) -> list[dict]:
    """Each operand of an ``and``/``or`` on one line dropped, with the operator beside it: ``a and b and c`` gives
    ``b and c``, ``a and c`` and ``a and b`` (a guard that checks one part less). Drops that leave the file
    unparsable (an operand inside brackets of its own) are left out."""
    lines = source.splitlines(keepends=True)
    found = []
    for node in ast.walk(ast.parse(source)):
        if not isinstance(node, ast.BoolOp) or node.lineno != node.end_lineno:
            continue
        line = lines[node.lineno - 1]
        spans = []  # each operand's columns, with the brackets around it: (p or q) and r
        for value in node.values:
            start, end = value.col_offset, value.end_col_offset
            while start > 0 and line[start - 1] == "(" and line[end:end + 1] == ")":
                start, end = start - 1, end + 1
            spans.append((start, end))
        for index in range(len(spans)):
            if index == 0:
                start, end = spans[0][0], spans[1][0]
            else:
                start, end = spans[index - 1][1], spans[index][1]
            after = (line[:start] + line[end:]).rstrip("\n")
            mutated = "".join(lines[:node.lineno - 1]) + after + "\n" + "".join(lines[node.lineno:])
            try:
                ast.parse(mutated)
            except SyntaxError:
                continue
            found.append({"line": node.lineno, "before": line.rstrip("\n"), "after": after, "kind": "operand"})
    return found


def any_all_mutants(source: str) -> list[dict]:
    """Each call of the builtin ``any`` or ``all`` swapped for the other."""
    lines = source.splitlines(keepends=True)
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id in ("any", "all"):
            line, col = lines[node.func.lineno - 1], node.func.col_offset
            other = "all" if node.func.id == "any" else "any"
            found.append({"line": node.func.lineno, "before": line.rstrip("\n"),
                          "after": (line[:col] + other + line[col + 3:]).rstrip("\n"), "kind": "any-all"})
    return found


KINDS = {"boundary": lambda source: [dict(m, kind="boundary") for m in boundary_mutants(source)],
         "operand": operand_mutants, "any-all": any_all_mutants}


def mutants_of(source: str, kinds=tuple(KINDS)) -> list[dict]:
    """The mutants of ``source`` of the given kinds, by line (a line with several is mutated once per mutant)."""
    found = [m for kind in kinds for m in KINDS[kind](source)]
    return sorted(found, key=lambda m: (m["line"], m["kind"], m["after"]))


def snapshot(folder: Path) -> Path:
    """``git archive HEAD`` unpacked into ``folder`` (the committed tree: the sweep never touches the work tree)."""
    if not folder.exists():
        archive = subprocess.run(["git", "archive", "HEAD"], cwd=ROOT, capture_output=True, check=True).stdout
        folder.mkdir(parents=True)
        with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
            if hasattr(tarfile, "data_filter"):  # Python 3.11.4+: refuse links and paths outside the folder
                tar.extractall(folder, filter="data")
            else:
                tar.extractall(folder)  # git archive of our own HEAD: no foreign paths
    return folder


def test_env(copy: Path) -> dict:
    return dict(os.environ, PYTHONPATH=str(copy), SDL_VIDEODRIVER="dummy")


def coverage_map(out: Path, mutants: list[dict]) -> dict[str, list[str]]:
    copy = snapshot(out / "coverage-copy")
    rc = copy / ".coveragerc-sweep"
    rc.write_text(f"[run]\ndynamic_context = test_function\nsource = pgcourse\ndata_file = {out / 'coverage.data'}\n")
    subprocess.run([sys.executable, "-m", "coverage", "run", f"--rcfile={rc}", "-m", "pytest", "-q", "-p",
                    "no:cacheprovider", "-m", "unit", "tests/"], cwd=copy, env=test_env(copy), check=False)
    import coverage
    data = coverage.CoverageData(basename=str(out / "coverage.data"))
    data.read()
    hypothesis_files = [f"tests/{p.name}" for p in (copy / "tests").glob("test_*.py") if "hypothesis" in p.read_text()]

    def nodes(context: str) -> list[str]:
        if context.startswith("hypothesis."):  # hypothesis runs the test under its own frame: its files, whole
            return hypothesis_files
        module, *names = context.split(".")
        return [f"tests/{module}.py::" + "::".join(names)] if names and (copy / "tests" / f"{module}.py").exists() \
            else []
    by_file: dict[str, dict] = {}
    result = {}
    for m in mutants:
        path = str(copy / m["file"])
        lines = by_file.setdefault(path, data.contexts_by_lineno(path))
        result[f"{m['file']}:{m['line']}"] = sorted({n for c in lines.get(m["line"], []) for n in nodes(c)})
    return result


def last_verdicts(files: list[Path]) -> dict[tuple, dict]:
    """Each mutant's last row in the results ``files`` (a timeout, on a busy machine, is tried again on the next run
    and then has two), keyed by (file, line, after)."""
    rows = {}
    for results in files:
        if results.exists():
            for row in map(json.loads, results.read_text().splitlines()):
                rows[(row["file"], row["line"], row["after"])] = row
    return rows


def run(out: Path, mutants: list[dict], covmap: dict[str, list[str]], timeout: int, shard: tuple[int, int] = (0, 1)
        ) -> None:
    index, count = shard
    copy = snapshot(out / ("mutant-copy" if count == 1 else f"mutant-copy-{index}"))
    results = out / ("results.jsonl" if count == 1 else f"results-{index}.jsonl")
    done = {key for key, row in last_verdicts([results]).items() if row["verdict"] != "timeout"}  # tried again
    for m in mutants[index::count]:
        if (m["file"], m["line"], m["after"]) in done:
            continue
        tests = covmap.get(f"{m['file']}:{m['line']}", [])
        row = dict(m, tests=len(tests), verdict="not covered")
        if tests:
            path = copy / m["file"]
            original = path.read_text()
            lines = original.splitlines(keepends=True)
            lines[m["line"] - 1] = m["after"] + "\n"
            path.write_text("".join(lines))
            try:
                done_ = subprocess.run([sys.executable, "-m", "pytest", "-x", "-q", "-p", "no:cacheprovider", "-m",
                                        "unit", *tests], cwd=copy, env=test_env(copy), capture_output=True,
                                       text=True, timeout=timeout)
                row["verdict"] = {0: "survived", 1: "killed"}.get(done_.returncode, f"exit {done_.returncode}")
                row["killer"] = next((line for line in done_.stdout.splitlines() if line.startswith("FAILED")), "")
            except subprocess.TimeoutExpired:
                row["verdict"] = "timeout"
            finally:
                path.write_text(original)
        with results.open("a") as f:
            f.write(json.dumps(row) + "\n")
        print(f"{row['verdict']:>12}  {m['file']}:{m['line']}", flush=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", required=True, help="a folder for the copies, the coverage map and the results")
    parser.add_argument("--paths", nargs="*", default=["pgcourse/"], help="file path prefixes to mutate")
    parser.add_argument("--kinds", nargs="*", default=list(KINDS), choices=list(KINDS), help="kinds of mutant")
    parser.add_argument("--timeout", type=int, default=400, help="seconds per mutant's tests")
    parser.add_argument("--shard", default="0/1", help="i/n: this process takes mutants i, i + n, i + 2n, ...")
    args = parser.parse_args(argv)
    index, count = (int(part) for part in args.shard.split("/"))
    if not 0 <= index < count:
        parser.error(f"--shard must be i/n with 0 <= i < n, not {args.shard}")
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    mutants_file = out / "mutants.json"
    if not mutants_file.exists():
        copy = snapshot(out / "mutant-copy")
        mutants = [dict(m, file=str(path.relative_to(copy))) for path in sorted((copy / "pgcourse").rglob("*.py"))
                   for m in mutants_of(path.read_text(encoding="utf-8"))]
        mutants_file.write_text(json.dumps(mutants, indent=0))
    mutants = [m for m in json.loads(mutants_file.read_text()) if any(m["file"].startswith(p) for p in args.paths)
               and m.get("kind", "boundary") in args.kinds]
    covmap_file = out / "covmap.json"
    if not covmap_file.exists():
        covmap_file.write_text(json.dumps(coverage_map(out, json.loads(mutants_file.read_text()))))
    run(out, mutants, json.loads(covmap_file.read_text()), args.timeout, (index, count))
    counts: dict[tuple[str, str], int] = {}
    rows = last_verdicts(sorted(out.glob("results*.jsonl")))
    for row in rows.values():
        key = (row.get("kind", "boundary"), row["verdict"])
        counts[key] = counts.get(key, 0) + 1
    print(f"{len(rows)} mutants: " + ", ".join(f"{n} {kind} {verdict}" for (kind, verdict), n in sorted(counts.items())))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
