"""tools/boundary_sweep.py finds every ordering comparison and flips it at its boundary, nothing else (issue 45,
item 5): ``<`` <-> ``<=`` and ``>`` <-> ``>=``, each operator of a chain on its own, the line otherwise unchanged."""
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
