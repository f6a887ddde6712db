"""Static checks on every committed notebook: no mangled LaTeX, no stray control characters."""
from __future__ import annotations

import re
from pathlib import Path

import nbformat
import pytest

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted(p for folder in ("notebooks", "solutions", "exercises") for p in (ROOT / folder).glob("*.ipynb"))

# A LaTeX command written in a non-raw Python string turns "\a", "\b", "\f", "\n", "\r", "\t", "\v"
# into control characters ("\approx" -> BEL + "pprox", "\nabla" -> newline + "abla").
CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\r]")
BROKEN_LATEX = re.compile(r"\n(abla|eq|eta|ext|imes|heta|ho|ight|ightarrow|rac|orall)\b|\t(imes|heta|ext|au)\b")


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_cells_have_no_control_characters_or_mangled_latex(path):
    notebook = nbformat.read(path, as_version=4)
    for index, cell in enumerate(notebook.cells):
        assert not CONTROL.search(cell.source), f"{path.name} cell {index}: control character in source"
        if cell.cell_type == "markdown":
            match = BROKEN_LATEX.search(cell.source)
            assert match is None, f"{path.name} cell {index}: LaTeX command eaten by an escape: {match.group(0)!r}"
