"""tools/boundary_sweep.py plants the audits' commonest one-line bugs, nothing else (issue 45, item 5): every ordering
comparison flipped at its boundary (``<`` <-> ``<=``, ``>`` <-> ``>=``, each operator of a chain on its own), each
operand of an ``and``/``or`` dropped, ``any`` <-> ``all``; the line otherwise unchanged."""
from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
spec = importlib.util.spec_from_file_location("boundary_sweep", ROOT / "tools" / "boundary_sweep.py")
boundary_sweep = importlib.util.module_from_spec(spec)
sys.modules.setdefault("boundary_sweep", boundary_sweep)
spec.loader.exec_module(boundary_sweep)


def test_each_ordering_operator_is_flipped_at_its_boundary_and_nothing_else():
    source = ("if a < b:\n    pass\nx = c >= d\ny = 0 <= e < f\nz = g == h or i != j\nw = [k for k in m if k > 2]\n"
              "v = 'a < b' if n <= 1 else None\n")
    found = boundary_sweep.boundary_mutants(source)
    assert [(m["line"], m["after"]) for m in found] == [
        (1, "if a <= b:"),
        (3, "x = c > d"),
        (4, "y = 0 < e < f"),
        (4, "y = 0 <= e <= f"),
        (6, "w = [k for k in m if k >= 2]"),
        (7, "v = 'a < b' if n < 1 else None"),  # the operator, not the same characters inside a string
    ]
    assert all(m["before"] == source.splitlines()[m["line"] - 1] for m in found)


def test_a_comparison_whose_operands_span_lines_is_left_alone():
    source = "ok = (first_value\n      < second_value)\n"
    assert boundary_sweep.boundary_mutants(source) == []


def test_each_operand_of_and_or_is_dropped_with_its_operator_brackets_included():
    source = ("if a and b and c:\n    pass\nx = (p or q) and r\nz = foo(a and b)\nok = f(a, b) or (\n  c)\n"
              "s = 'a and b'\n")
    found = boundary_sweep.operand_mutants(source)
    assert sorted((m["line"], m["after"]) for m in found) == [
        (1, "if a and b:"), (1, "if a and c:"), (1, "if b and c:"),
        (3, "x = (p or q)"), (3, "x = (p) and r"), (3, "x = (q) and r"), (3, "x = r"),
        (4, "z = foo(a)"), (4, "z = foo(b)"),
    ]  # line 5 spans two lines, line 7's ``and`` is inside a string: both left alone
    assert all(m["kind"] == "operand" and m["before"] == source.splitlines()[m["line"] - 1] for m in found)


def test_any_and_all_are_swapped_and_only_the_builtins():
    source = "ok = any(x) or all(y)\nz = obj.any(w)\nt = 'any('\n"
    assert [(m["line"], m["after"]) for m in boundary_sweep.any_all_mutants(source)] == [
        (1, "ok = all(x) or all(y)"), (1, "ok = any(x) or any(y)")]


def test_the_mutants_of_a_source_are_every_kind_by_line():
    found = boundary_sweep.mutants_of("if n < 1 and any(v):\n    pass\n")
    assert [(m["kind"], m["after"]) for m in found] == [
        ("any-all", "if n < 1 and all(v):"), ("boundary", "if n <= 1 and any(v):"),
        ("operand", "if any(v):"), ("operand", "if n < 1:")]
    assert boundary_sweep.mutants_of("if n < 1 and any(v):\n    pass\n", ("boundary",)) == found[1:2]


def test_a_shard_that_is_not_i_of_n_is_refused(capsys, tmp_path):
    import pytest

    with pytest.raises(SystemExit):
        boundary_sweep.main(["--out", str(tmp_path), "--shard", "2/2"])
    assert "--shard must be i/n with 0 <= i < n, not 2/2" in capsys.readouterr().err


def test_a_mutant_keeps_its_last_verdict_so_a_timeout_tried_again_counts_once(tmp_path):
    """The results are appended as the sweep goes; a timeout is tried again on the next run, so a mutant may have two
    rows: its last one is its verdict (a missing results file has none)."""
    import json

    rows = [{"file": "f.py", "line": 3, "after": "x", "verdict": "timeout"},
            {"file": "f.py", "line": 4, "after": "y", "verdict": "killed"},
            {"file": "f.py", "line": 3, "after": "x", "verdict": "survived"}]
    results = tmp_path / "results-0.jsonl"
    results.write_text("".join(json.dumps(row) + "\n" for row in rows))
    last = boundary_sweep.last_verdicts([results, tmp_path / "results-1.jsonl"])
    assert {key: row["verdict"] for key, row in last.items()} == {("f.py", 3, "x"): "survived",
                                                                  ("f.py", 4, "y"): "killed"}


def test_a_finished_sweep_prints_each_mutants_last_verdict_counted_once(capsys, tmp_path):
    """``main`` on a sweep with nothing left to run (its copy made, every mutant with a verdict) prints the summary:
    the mutants counted once each, by kind and verdict. (It raised a NameError there after the timeout change,
    at the end of every run.)"""
    import json

    mutants = [{"line": 3, "before": "a", "after": "x", "kind": "boundary", "file": "pgcourse/f.py"},
               {"line": 4, "before": "b", "after": "y", "kind": "operand", "file": "pgcourse/f.py"}]
    (tmp_path / "mutants.json").write_text(json.dumps(mutants))
    (tmp_path / "covmap.json").write_text(json.dumps({}))
    (tmp_path / "mutant-copy").mkdir()
    rows = [dict(mutants[0], verdict="timeout"), dict(mutants[1], verdict="killed"),
            dict(mutants[0], verdict="survived")]
    (tmp_path / "results.jsonl").write_text("".join(json.dumps(row) + "\n" for row in rows))
    assert boundary_sweep.main(["--out", str(tmp_path), "--paths", "pgcourse/"]) == 0
    assert capsys.readouterr().out.strip().splitlines()[-1] == "2 mutants: 1 boundary survived, 1 operand killed"
