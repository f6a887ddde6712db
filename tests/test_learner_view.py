"""tools/learner_view.py renders a lesson as JupyterLab first shows it, for independent reads (issue 47, item 5):
collapsed code, collapsed outputs and ``<details>`` folds are one line each on the page, their content under the
same name in folds.md; visible code, outputs and figures are shown in place."""
from __future__ import annotations

import base64
import importlib.util
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
spec = importlib.util.spec_from_file_location("learner_view", ROOT / "tools" / "learner_view.py")
learner_view = importlib.util.module_from_spec(spec)
sys.modules.setdefault("learner_view", learner_view)
spec.loader.exec_module(learner_view)

PNG = base64.b64encode(b"\x89PNG\r\n\x1a\n fake").decode()


def test_collapsed_parts_are_one_line_on_the_page_and_whole_in_the_folds(tmp_path):
    cells = [
        {"cell_type": "markdown", "source": "## 1. Idea\n\nShown text.\n\n<details><summary><b>Evidence</b></summary>"
                                            "\n\nTen seeds, folded.\n</details>\n\nAfter the fold."},
        {"cell_type": "code", "metadata": {}, "source": "x = 1\nprint(x)",
         "outputs": [{"output_type": "stream", "name": "stdout", "text": ["1\n"]}]},
        {"cell_type": "code", "metadata": {"jupyter": {"source_hidden": True, "outputs_hidden": True}},
         "source": "check_everything()\nmore()", "outputs": [{"output_type": "stream", "text": "✓ a\n✓ b\n"}]},
        {"cell_type": "code", "metadata": {"jupyter": {"source_hidden": True}}, "source": "plot()",
         "outputs": [{"output_type": "display_data", "data": {"image/png": PNG, "text/plain": "<Figure>"}}]},
    ]
    notebook = tmp_path / "lesson.ipynb"
    notebook.write_text(json.dumps({"cells": cells}), encoding="utf-8")
    view, folds = learner_view.render(notebook, tmp_path / "out")
    assert "Shown text." in view and "After the fold." in view and "[+ fold F1: Evidence]" in view
    assert "Ten seeds, folded." not in view and "## fold F1 (markdown cell 0): Evidence\n\nTen seeds, folded." in folds
    assert "print(x)" in view and "```\n1\n```" in view
    assert "check_everything" not in view and "[+ code hidden, 2 lines: fold C2]" in view
    assert "✓ a" not in view and "[+ output hidden, 2 lines: fold C2-out]" in view and "✓ a\n✓ b" in folds
    assert "[+ code hidden, 1 lines: fold C3]" in view and "[figure: cell03_0.png]" in view
    assert (tmp_path / "out" / "cell03_0.png").read_bytes().startswith(b"\x89PNG")


def test_every_lesson_renders_and_hides_what_its_notebook_collapses(tmp_path):
    for path in sorted((ROOT / "notebooks").glob("0[1-8]*.ipynb")):
        view, folds = learner_view.render(path, tmp_path / path.stem)
        hidden = sum(bool(cell.get("metadata", {}).get("jupyter", {}).get("source_hidden"))
                     for cell in json.loads(path.read_text(encoding="utf-8"))["cells"])
        assert view.count("[+ code hidden") == hidden, path.name
        assert "<details>" not in view, path.name
