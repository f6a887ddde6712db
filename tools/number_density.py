#!/usr/bin/env python3
"""How many words of a lesson's prose a reader gets per number, outside the folded ``<details>`` blocks.

    python tools/number_density.py notebooks/01_reinforce.ipynb [more notebooks]

Issue 27 asks each lesson to layer its evidence: a few bold takeaways in the text, the per-seed tables and
second-order numbers folded into ``<details>`` a learner opens on demand. The target is at most one number
per 35 words of markdown outside ``<details>``, i.e. ``words / numbers >= 35``.

What is counted, in markdown cells only:
    removed first   ``<details>...</details>`` blocks, fenced code, inline code, LaTeX (``$...$``, ``$$...$$``:
                    a formula's digits are notation, not measurements), HTML tags, link targets ``](...)``,
                    and the section number of a heading (``## 7. ...``);
    a number        a run of digits, with decimals, thousands separators or a % sign: ``20``, ``0.902``,
                    ``1,400``, ``95%`` each count once (an interval ``[400.6, 473.6]`` counts twice);
    a word          a whitespace-separated token with a letter or a digit in it (numbers are words too).
"""
from __future__ import annotations

import json
import re
import sys
from dataclasses import dataclass

FOLDED = re.compile(r"<details\b.*?</details\s*>", re.S | re.I)
HIDDEN = [
    re.compile(r"```.*?```", re.S),            # fenced code
    re.compile(r"\$\$.*?\$\$", re.S),          # display math
    re.compile(r"\$[^$\n]*\$"),                # inline math
    re.compile(r"`[^`\n]*`"),                  # inline code
    re.compile(r"\]\([^)]*\)"),                # link targets (the link text stays)
    re.compile(r"<[^>\n]+>"),                  # HTML tags
    re.compile(r"^(#+\s*)\d+[.:]", re.M),      # a heading's section number
]
NUMBER = re.compile(r"(?<![\w.])\d+(?:[.,]\d+)*%?")
WORD = re.compile(r"\S*[A-Za-z0-9]\S*")


@dataclass(frozen=True)
class Density:
    """Counts of the visible prose: ``words / numbers`` words per number (``inf`` with no number)."""

    words: int
    numbers: int

    @property
    def words_per_number(self) -> float:
        return self.words / self.numbers if self.numbers else float("inf")

    def __str__(self) -> str:
        return f"{self.words} words, {self.numbers} numbers: {self.words_per_number:.1f} words per number"


def visible_prose(markdown: str) -> str:
    """``markdown`` without the folded ``<details>`` blocks and the parts whose digits are not numbers."""
    text = FOLDED.sub(" ", markdown)
    for pattern in HIDDEN:
        text = pattern.sub(" ", text)
    return text


def density(markdown: str) -> Density:
    """Words and numbers of ``markdown`` outside ``<details>`` (see the module docstring for the rules)."""
    text = visible_prose(markdown)
    return Density(words=len(WORD.findall(text)), numbers=len(NUMBER.findall(text)))


def notebook_density(path) -> Density:
    """:func:`density` of all markdown cells of the notebook at ``path``, together."""
    with open(path, encoding="utf-8") as handle:
        cells = json.load(handle)["cells"]
    sources = ["".join(c["source"]) if isinstance(c["source"], list) else c["source"]
               for c in cells if c["cell_type"] == "markdown"]
    return density("\n\n".join(sources))


def main(paths: list[str]) -> int:
    if not paths:
        print(__doc__)
        return 2
    for path in paths:
        print(f"{path}: {notebook_density(path)}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
