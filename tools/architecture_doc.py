"""Write docs/architecture.md's list of the package's folders and modules from the package itself.

One line per folder and per module: its path and the first sentence of its docstring. tests/test_architecture.py
checks that the document holds exactly what this prints, so the list is never out of date. Run from anywhere:

    python tools/architecture_doc.py          # rewrites the list between the markers in docs/architecture.md
"""
from __future__ import annotations

import ast
import re
import sys
from pathlib import Path

BEGIN = "<!-- the module list: written by tools/architecture_doc.py, checked by tests/test_architecture.py -->"
END = "<!-- end of the module list -->"


def first_sentence(path: Path) -> str:
    docstring = ast.get_docstring(ast.parse(path.read_text())) or ""
    text = " ".join(docstring.split()).replace("``", "`")
    for match in re.finditer(r"[.?](\s|$)", text):  # the first period (or question mark) that ends a sentence
        before = text[:match.start()]
        if before.endswith((".", " al", "e.g", "i.e", "etc", " vs", "Fig")) or before.count("`") % 2 \
                or before.count("(") > before.count(")"):
            continue  # an ellipsis, an abbreviation, inside code or parentheses
        return before + text[match.start()]
    return text or "(no docstring)"


def module_table(package: Path) -> str:
    """The list, as markdown: each folder (with its ``__init__``'s sentence), then its modules, indented."""
    lines = []
    folders = sorted({path.parent for path in package.rglob("*.py") if "__pycache__" not in path.parts},
                     key=lambda folder: folder.relative_to(package.parent).parts)
    for folder in folders:
        relative = folder.relative_to(package.parent).as_posix()
        depth = len(folder.relative_to(package).parts)
        init = folder / "__init__.py"
        about = first_sentence(init) if init.exists() else "(a folder)"
        lines.append(f"{'  ' * depth}- **`{relative}/`** {about}")
        for path in sorted(folder.glob("*.py")):
            if path.name == "__init__.py":
                continue
            lines.append(f"{'  ' * (depth + 1)}- `{path.name}` {first_sentence(path)}")
    return "\n".join([BEGIN, "", *lines, "", END])


def main() -> None:
    root = Path(__file__).resolve().parents[1]
    document = root / "docs" / "architecture.md"
    text = document.read_text()
    table = module_table(root / "pgcourse")
    if BEGIN in text and END in text:
        text = text[:text.index(BEGIN)] + table + text[text.index(END) + len(END):]
    else:
        sys.exit(f"{document} has no markers {BEGIN!r} ... {END!r}: put them where the list goes")
    document.write_text(text)
    print(f"wrote the module list of {document}")


if __name__ == "__main__":
    main()
