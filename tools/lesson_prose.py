#!/usr/bin/env python3
"""How a lesson reads: its visible words, sentence lengths and bookkeeping words (issue 47, item 2).

    python tools/lesson_prose.py notebooks/0[1-8]*.ipynb        # the table
    python tools/lesson_prose.py --long notebooks/07_trpo.ipynb  # also every visible sentence over 45 words

The goals per lesson 01-08: visible words <= 3,500; median sentence <= 18 words; no visible sentence over 45 words;
bookkeeping words <= 2 per 1,000 visible words. ``--check`` exits 1 when a lesson misses one.

What is counted, in markdown cells only:
    visible         what a learner sees without opening a fold: ``<details>...</details>`` blocks removed first
                    (the summary line of a fold is hidden with it: it is a label, not a sentence)
    a word          a whitespace-separated token with a letter or a digit; a formula (``$...$``) or inline code
                    counts as one word in its sentence, a display formula (``$$...$$``), fenced code, HTML tags and
                    link targets count as none
    a sentence      prose ended by ``.``, ``!`` or ``?`` before a space and a word that does not start in lower case;
                    a blank line, a heading and a list item end one too (a paragraph's source lines are joined
                    first); a table's rows are not prose and are not counted
    bookkeeping     the words that describe the checking rather than the RL: "assert*", "claim*", "printed",
                    "not measured", "this machine" (each occurrence once)
"""
from __future__ import annotations

import argparse
import json
import re
import statistics
import sys
from dataclasses import dataclass, field

FOLDED = re.compile(r"<details\b.*?</details\s*>", re.S | re.I)
REMOVED = [
    re.compile(r"```.*?```", re.S),            # fenced code
    re.compile(r"\$\$.*?\$\$", re.S),          # display math
    re.compile(r"\]\([^)]*\)"),                # link targets (the link text stays)
    re.compile(r"<[^>\n]+>"),                  # HTML tags
]
ONE_WORD = [
    re.compile(r"\$[^$\n]*\$"),                # inline math
    re.compile(r"`[^`\n]*`"),                  # inline code
]
WORD = re.compile(r"\S*[A-Za-z0-9]\S*")
SENTENCE_END = re.compile(r"(?<=[.!?])[*_)\"']*\s+(?=[^a-z])")
BLOCK_START = re.compile(r"^\s*(#+\s|[-*+]\s|\d+[.)]\s|>)")
BOOKKEEPING = re.compile(r"\bassert\w*|\bclaims?\b|\bclaimed\b|\bprinted\b|\bnot measured\b|\bthis machine\b", re.I)
GOALS = {"visible words": 3500, "median sentence": 18, "longest sentence": 45, "bookkeeping / 1,000": 2.0}


@dataclass
class Prose:
    path: str
    words: int = 0
    sentences: list[int] = field(default_factory=list)   # the word count of each visible sentence
    long: list[str] = field(default_factory=list)        # the visible sentences over 45 words
    bookkeeping: int = 0

    @property
    def median(self) -> float:
        return statistics.median(self.sentences) if self.sentences else 0.0

    @property
    def longest(self) -> int:
        return max(self.sentences, default=0)

    @property
    def bookkeeping_rate(self) -> float:
        return 1000.0 * self.bookkeeping / self.words if self.words else 0.0

    def misses(self) -> list[str]:
        return [name for name, value in (("visible words", self.words), ("median sentence", self.median),
                                         ("longest sentence", self.longest),
                                         ("bookkeeping / 1,000", self.bookkeeping_rate))
                if value > GOALS[name]]


def visible_text(markdown: str) -> str:
    """The markdown a learner sees unfolded, with formulas and inline code as one token each."""
    text = FOLDED.sub("\n", markdown)
    for pattern in REMOVED:
        text = pattern.sub(" ", text)
    for pattern in ONE_WORD:
        text = pattern.sub(" X ", text)
    return text


def sentences_of(text: str) -> list[str]:
    """The prose sentences of visible markdown: paragraphs and list items joined over their source lines, table
    rows dropped, markup marks stripped."""
    blocks: list[list[str]] = []
    for line in text.splitlines():
        if not line.strip() or line.lstrip().startswith("|"):
            blocks.append([])
        elif BLOCK_START.match(line) or not blocks:
            blocks.append([line])
        else:
            blocks[-1].append(line)
    sentences = []
    for block in blocks:
        joined = " ".join(line.strip() for line in block)
        joined = re.sub(r"^(#+|[-*+]|\d+[.)]|>)\s*", "", joined)
        sentences += [part.strip() for part in SENTENCE_END.split(joined) if WORD.search(part)]
    return sentences


def measure(path: str) -> Prose:
    with open(path, encoding="utf-8") as f:
        notebook = json.load(f)
    prose = Prose(path)
    for cell in notebook["cells"]:
        if cell["cell_type"] != "markdown":
            continue
        text = visible_text("".join(cell["source"]))
        prose.words += len(WORD.findall(text))
        prose.bookkeeping += len(BOOKKEEPING.findall(text))
        for sentence in sentences_of(text):
            length = len(WORD.findall(sentence))
            prose.sentences.append(length)
            if length > GOALS["longest sentence"]:
                prose.long.append(" ".join(sentence.split()))
    return prose


def table(measured: list[Prose]) -> str:
    rows = ["| lesson | visible words | sentences | median sentence | longest | over 45 words | bookkeeping / 1,000 |",
            "|---|---:|---:|---:|---:|---:|---:|"]
    for prose in measured:
        name = prose.path.rsplit("/", 1)[-1].removesuffix(".ipynb")
        rows.append(f"| {name} | {prose.words:,} | {len(prose.sentences)} | {prose.median:g} | {prose.longest} | "
                    f"{len(prose.long)} | {prose.bookkeeping_rate:.1f} |")
    rows.append(f"| goal | <= {GOALS['visible words']:,} | | <= {GOALS['median sentence']} | "
                f"<= {GOALS['longest sentence']} | 0 | <= {GOALS['bookkeeping / 1,000']:g} |")
    return "\n".join(rows)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("notebooks", nargs="+")
    parser.add_argument("--long", action="store_true", help="list every visible sentence over 45 words")
    parser.add_argument("--check", action="store_true", help="exit 1 when a lesson misses a goal")
    args = parser.parse_args(argv)
    measured = [measure(path) for path in args.notebooks]
    print(table(measured))
    if args.long:
        for prose in measured:
            for sentence in prose.long:
                print(f"\n{prose.path} ({len(WORD.findall(sentence))} words): {sentence}")
    missing = [(prose.path, prose.misses()) for prose in measured if prose.misses()]
    if args.check and missing:
        for path, misses in missing:
            print(f"{path}: misses {', '.join(misses)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
