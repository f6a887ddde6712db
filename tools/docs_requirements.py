"""Print the pinned requirements of pyproject.toml's ``docs`` extra, one per line: what building the website needs
and nothing else (no torch, no gymnasium: the site is built from the notebooks' stored outputs). The GitHub Pages
workflow installs them with ``pip install $(python tools/docs_requirements.py)``."""
from __future__ import annotations

import sys
import tomllib
from pathlib import Path

PYPROJECT = Path(__file__).resolve().parents[1] / "pyproject.toml"


def docs_requirements(pyproject: Path = PYPROJECT) -> list[str]:
    extras = tomllib.loads(pyproject.read_text())["project"]["optional-dependencies"]
    return list(extras["docs"])


if __name__ == "__main__":
    sys.stdout.write("\n".join(docs_requirements()) + "\n")
