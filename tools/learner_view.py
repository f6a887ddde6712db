#!/usr/bin/env python3
"""A lesson as a learner first sees it in JupyterLab, as text: for independent reads (issue 47, item 5).

    python tools/learner_view.py notebooks/03_a2c_gae.ipynb OUT_FOLDER

A reader who opens the ``.ipynb`` file as JSON sees every cell in full, while a learner in JupyterLab (or on the
site, where the same cells carry ``hide-input``/``hide-output`` tags) sees the evidence collapsed: a cell whose
metadata has ``jupyter.source_hidden`` shows a collapsed bar in place of its code, ``outputs_hidden`` one in place
of its output, and a ``<details>`` fold shows its summary line only. This writes two files into OUT_FOLDER:

- ``view.md``: the lesson top to bottom as shown before anything is expanded; each collapsed part is one line,
  ``[+ code hidden, 40 lines: fold C12]``, ``[+ output hidden, 13 lines: fold C12-out]`` or
  ``[+ fold F3: <summary>]``, naming where its content is;
- ``folds.md``: every collapsed part's content under its name, for a reader who opens it when curious.

Figures (PNG outputs) are written as ``cellNN_K.png`` beside them and named in place (``[figure: cell27_0.png]``);
a GIF is named with its size. Cells tagged ``remove-cell`` (the site drops them) are kept: JupyterLab shows them.
"""
from __future__ import annotations

import base64
import json
import re
import sys
from pathlib import Path

DETAILS = re.compile(r"<details>\s*<summary>(.*?)</summary>(.*?)</details>", re.S)


def _text(value) -> str:
    return "".join(value) if isinstance(value, list) else str(value)


def _strip_tags(text: str) -> str:
    return re.sub(r"<[^>]+>", "", text).strip()


def _outputs(cell: dict, index: int, folder: Path) -> list[str]:
    lines: list[str] = []
    for k, output in enumerate(cell.get("outputs", [])):
        if "text" in output:
            lines.append(_text(output["text"]).rstrip("\n"))
        data = output.get("data", {})
        if "image/png" in data:
            name = f"cell{index:02d}_{k}.png"
            (folder / name).write_bytes(base64.b64decode(_text(data["image/png"])))
            lines.append(f"[figure: {name}]")
        elif "image/gif" in data:
            lines.append(f"[animated GIF, {len(_text(data['image/gif'])) * 3 // 4 // 1024} KB]")
        elif "text/html" in data:
            lines.append(_strip_tags(_text(data["text/html"]))[:2000])
        elif "text/plain" in data:
            lines.append(_text(data["text/plain"]).rstrip("\n"))
        if output.get("output_type") == "error":
            lines.append(f"{output.get('ename')}: {output.get('evalue')}")
    return [line for line in lines if line]


def render(notebook: Path, folder: Path) -> tuple[str, str]:
    folder.mkdir(parents=True, exist_ok=True)
    cells = json.loads(notebook.read_text(encoding="utf-8"))["cells"]
    view, folds = [f"# {notebook.name}, as JupyterLab first shows it (nothing expanded)\n"], [
        f"# {notebook.name}: the content of every collapsed part, by name\n"]
    fold_number = 0
    for index, cell in enumerate(cells):
        source = _text(cell["source"])
        if cell["cell_type"] == "markdown":
            def fold(match: re.Match) -> str:
                nonlocal fold_number
                fold_number += 1
                summary = _strip_tags(match.group(1))
                folds.append(f"## fold F{fold_number} (markdown cell {index}): {summary}\n\n{match.group(2).strip()}\n")
                return f"\n[+ fold F{fold_number}: {summary}]\n"
            view.append(DETAILS.sub(fold, source).strip() + "\n")
            continue
        hidden = cell.get("metadata", {}).get("jupyter", {})
        code_lines = source.count("\n") + 1 if source else 0
        if hidden.get("source_hidden"):
            folds.append(f"## fold C{index} (code)\n\n```python\n{source}\n```\n")
            view.append(f"[+ code hidden, {code_lines} lines: fold C{index}]")
        else:
            view.append(f"```python\n{source}\n```")
        shown = _outputs(cell, index, folder)
        if shown:
            body = "\n".join(shown)
            if hidden.get("outputs_hidden"):
                folds.append(f"## fold C{index}-out (output)\n\n```\n{body}\n```\n")
                view.append(f"[+ output hidden, {body.count(chr(10)) + 1} lines: fold C{index}-out]\n")
            else:
                view.append(f"```\n{body}\n```\n")
        else:
            view.append("")
    return "\n".join(view), "\n".join(folds)


def main(argv: list[str]) -> int:
    if len(argv) != 2:
        print(__doc__.split("\n\n")[1])
        return 2
    notebook, folder = Path(argv[0]), Path(argv[1])
    view, folds = render(notebook, folder)
    (folder / "view.md").write_text(view, encoding="utf-8")
    (folder / "folds.md").write_text(folds, encoding="utf-8")
    print(f"{folder / 'view.md'}: {len(view.split()):,} words shown; {folder / 'folds.md'}: {len(folds.split()):,} "
          f"words collapsed")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
