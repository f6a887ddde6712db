"""Similarity hints: answer cells that are near-identical across students, for the teacher to look at.

Never a penalty, never in a student's points or feedback: a hint that two students (or a group) may
have worked together or copied, which the teacher judges by reading the notebooks.

How (issue 26, item 5.3):

1. **Normalise** each student's code answer cells (per exercise) through Python's own parser: the
   syntax tree, pre-order, as a list of node kinds (:func:`normalised_tokens`). Every variable,
   argument and function name becomes ``v0``, ``v1``, … by order of first use; every literal
   (number, string) becomes ``C``; attribute names stay (``.mean`` is what the code does, not what the
   student called something). Statements that have no effect are dropped (:class:`_Effects`): ``pass``,
   docstrings and any other pure expression (``...``, ``0``, ``x + 1``, ``int()``), a pure value stored in a
   name the cell never reads (``_ = 0``), ``assert True`` and the branch a constant condition never takes
   (``if 0: ...``, ``while False: ...``). Comments and layout are not in the tree. So a copy padded with such
   statements, or with other names and comments, has the same tokens as the original.
   A cell that does not parse is compared by its words.
2. **Fingerprint** by winnowing: hashes of every :data:`K` consecutive tokens, and of every :data:`W`
   consecutive hashes the smallest (:func:`fingerprints`): two answers that share a run of at least
   ``K + W - 1`` tokens share a fingerprint. The handout's starter code is dropped (every one of its
   ``K``-token hashes): only the student's own part counts.
3. **Report** two students' answers to one exercise when they share at least :data:`THRESHOLD` of the
   smaller set of fingerprints, and groups of any size (students linked by such pairs). How many others
   wrote the same thing does not hide a pair: a group of three copiers in a class of seven is three pairs
   and one group.
4. **Size floor**: an answer of fewer than :data:`MIN_TOKENS` normalised tokens is not compared at all.
   Short answers have few ways to be written (``return 2 * x``, ``return (x - x.mean()) / (x.std() +
   eps)``): students who wrote them on their own get identical trees, so a match there says nothing.
   :data:`MIN_TOKENS` (36) is above every one-statement answer of the course's solutions (``normalize``:
   31 tokens, the concept questions' answers: 25–29, ``approx_kl``: 35) and below a function of a few
   statements (a seven-line loop: 38). Pairs are listed by overlap, then by the fingerprints they share:
   a short answer shares few, so a match there weighs less.
"""
from __future__ import annotations

import ast
import csv
import hashlib
import io
from dataclasses import dataclass

from .course import Chapter
from .gradebook import Submission, csv_text_cell

K = 6                # tokens per hashed window
W = 4                # winnowing window: the smallest of every W consecutive hashes is kept
THRESHOLD = 0.8      # shared share of the smaller answer's fingerprints
MIN_TOKENS = 36      # answers shorter than this (normalised tokens) are not compared


# builtins whose call on effect-free arguments has no effect (unless the cell binds the name itself)
PURE_BUILTINS = frozenset({"int", "float", "str", "bool", "complex", "bytes", "len", "abs", "min", "max", "round",
                           "tuple", "list", "dict", "set", "frozenset", "range", "type", "isinstance", "repr", "hash",
                           "id", "sorted", "sum", "any", "all", "divmod", "pow", "chr", "ord", "hex", "oct", "bin"})


class _Effects:
    """Which statements of one cell have no effect (issue 46, item 6: a copy padded with ``_ = 0``, ``int()`` or
    ``if 0: _ = 1`` hid from the fingerprints): a pure expression as a statement (constants, names, operators,
    literal containers, a pure builtin called on pure arguments), ``pass``, a store of a pure value into a name the
    cell never reads, ``assert`` of a true constant, and the branch a constant condition never takes (``if 0:``,
    ``while False:``, ``for _ in ():``)."""

    def __init__(self, tree: ast.AST):
        self.read = {node.id for node in ast.walk(tree) if isinstance(node, ast.Name) and isinstance(node.ctx, ast.Load)}
        bound = {node.id for node in ast.walk(tree) if isinstance(node, ast.Name) and not isinstance(node.ctx, ast.Load)}
        bound |= {node.name for node in ast.walk(tree) if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef
                                                                           | ast.ClassDef)}
        bound |= {alias.asname or alias.name.split(".")[0] for node in ast.walk(tree)
                  if isinstance(node, ast.Import | ast.ImportFrom) for alias in node.names}
        self.pure_calls = PURE_BUILTINS - bound

    def pure(self, node: ast.AST | None) -> bool:
        if node is None or isinstance(node, ast.Constant | ast.Name):
            return True
        if isinstance(node, ast.UnaryOp):
            return self.pure(node.operand)
        if isinstance(node, ast.BinOp):
            return self.pure(node.left) and self.pure(node.right)
        if isinstance(node, ast.BoolOp):
            return all(self.pure(value) for value in node.values)
        if isinstance(node, ast.Compare):
            return self.pure(node.left) and all(self.pure(value) for value in node.comparators)
        if isinstance(node, ast.Tuple | ast.List | ast.Set):
            return all(self.pure(element) for element in node.elts)
        if isinstance(node, ast.Dict):
            return all(self.pure(part) for part in [*node.keys, *node.values])
        if isinstance(node, ast.Call):
            return (isinstance(node.func, ast.Name) and node.func.id in self.pure_calls and not node.keywords
                    and all(self.pure(argument) for argument in node.args))
        return False

    def unread_store(self, target: ast.AST) -> bool:
        return isinstance(target, ast.Name) and target.id not in self.read

    def statements(self, body: list[ast.stmt]) -> list[ast.stmt]:
        """``body`` without its statements that have no effect (nested bodies cleaned too)."""
        kept: list[ast.stmt] = []
        for node in body:
            kept += self.statement(node)
        return kept

    def statement(self, node: ast.stmt) -> list[ast.stmt]:
        constant = getattr(node, "test", None)
        if isinstance(node, ast.Pass) or (isinstance(node, ast.Expr) and self.pure(node.value)):
            return []
        if isinstance(node, ast.Assign) and all(self.unread_store(t) for t in node.targets) and self.pure(node.value):
            return []
        if isinstance(node, ast.AnnAssign | ast.AugAssign) and self.unread_store(node.target) and self.pure(node.value):
            return []
        if isinstance(node, ast.Assert) and isinstance(constant, ast.Constant) and constant.value:
            return []
        if isinstance(node, ast.If | ast.While) and isinstance(constant, ast.Constant):
            if not constant.value:
                return self.statements(node.orelse)
            if isinstance(node, ast.If):
                return self.statements(node.body)
        if isinstance(node, ast.For) and isinstance(node.iter, ast.Tuple | ast.List | ast.Set | ast.Dict | ast.Constant) \
                and not (node.iter.elts if isinstance(node.iter, ast.Tuple | ast.List | ast.Set) else
                         node.iter.keys if isinstance(node.iter, ast.Dict) else node.iter.value):
            return self.statements(node.orelse)
        for field in ("body", "orelse", "finalbody"):
            if isinstance(getattr(node, field, None), list):
                setattr(node, field, self.statements(getattr(node, field)))
        for handler in getattr(node, "handlers", []):
            handler.body = self.statements(handler.body)
        if isinstance(node, ast.If) and not node.body and not node.orelse and self.pure(node.test):
            return []
        return [node]


def normalised_tokens(source: str) -> list[str]:
    """The syntax tree of ``source`` pre-order as node kinds, names renamed by first use (``v0``, ``v1``, …),
    literals as ``C``, attribute names kept, no-op statements dropped; the words of a cell that does not parse."""
    try:
        tree = ast.parse(source)
    except (SyntaxError, ValueError):
        return source.split()
    tree.body = _Effects(tree).statements(tree.body)
    names: dict[str, str] = {}
    tokens: list[str] = []

    def name(identifier: str) -> str:
        return names.setdefault(identifier, f"v{len(names)}")

    def visit(node: ast.AST) -> None:
        if isinstance(node, ast.expr_context):
            return
        if isinstance(node, ast.Name):
            tokens.append(name(node.id))
            return
        if isinstance(node, ast.Constant):
            tokens.append("C")
            return
        tokens.append(type(node).__name__)
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            tokens.append(name(node.name))
        elif isinstance(node, ast.arg):
            tokens.append(name(node.arg))
        elif isinstance(node, ast.Attribute):
            tokens.append("." + node.attr)
        elif isinstance(node, ast.keyword) and node.arg is not None:
            tokens.append(node.arg + "=")
        for field, value in ast.iter_fields(node):
            children = value if isinstance(value, list) else [value]
            for child in children:
                if isinstance(child, ast.AST):
                    visit(child)
        if isinstance(node, ast.stmt):
            tokens.append("end")

    visit(tree)
    return tokens


def _hashes(tokens: list[str]) -> list[int]:
    """A hash of every K consecutive tokens (of all the tokens when there are fewer)."""
    windows = [tokens[i:i + K] for i in range(max(1, len(tokens) - K + 1))] if tokens else []
    return [int.from_bytes(hashlib.sha1(" ".join(window).encode()).digest()[:8], "big") for window in windows]


def fingerprints(source: str) -> set[int]:
    """Winnowed fingerprints of ``source``: the smallest hash of every W consecutive K-token hashes."""
    hashes = _hashes(normalised_tokens(source))
    return {min(hashes[i:i + W]) for i in range(max(1, len(hashes) - W + 1))} if hashes else set()


@dataclass(frozen=True)
class Pair:
    exercise: str
    first: str
    second: str
    overlap: float
    shared: int


def similar_pairs(chapter: Chapter, submissions: list[Submission]) -> list[Pair]:
    """Pairs of students whose answers to one exercise look alike (see the module's docstring), sorted."""
    pairs: list[Pair] = []
    for grade_id in chapter.answer_order:
        handout = set().union(*(_hashes(normalised_tokens(source)) for source in chapter.stubs.get(grade_id, [])))
        prints: dict[str, set[int]] = {}
        for submission in submissions:
            if submission.problem is not None:
                continue
            sources = [c.source for c in submission.cells if c.grade_id == grade_id and c.cell_type == "code"]
            source = "\n".join(sources)
            if sources and len(normalised_tokens(source)) >= MIN_TOKENS:
                prints[submission.student] = fingerprints(source) - handout
        students = sorted(student for student, found in prints.items() if found)
        for i, first in enumerate(students):
            for second in students[i + 1:]:
                smaller = min(len(prints[first]), len(prints[second]))
                shared = len(prints[first] & prints[second])
                if shared / smaller >= THRESHOLD:
                    pairs.append(Pair(grade_id, first, second, round(shared / smaller, 3), shared))
    return sorted(pairs, key=lambda pair: (-pair.overlap, -pair.shared, pair.exercise, pair.first, pair.second))


def groups(pairs: list[Pair]) -> list[tuple[str, list[str]]]:
    """(exercise, students) for every group of students linked by similar pairs in one exercise, largest first."""
    found: list[tuple[str, list[str]]] = []
    for exercise in sorted({pair.exercise for pair in pairs}):
        links: dict[str, set[str]] = {}
        for pair in pairs:
            if pair.exercise == exercise:
                links.setdefault(pair.first, set()).add(pair.second)
                links.setdefault(pair.second, set()).add(pair.first)
        seen: set[str] = set()
        for start in sorted(links):
            if start in seen:
                continue
            group, todo = set(), [start]
            while todo:
                student = todo.pop()
                if student not in group:
                    group.add(student)
                    todo += links[student] - group
            seen |= group
            found.append((exercise, sorted(group)))
    return sorted(found, key=lambda item: (-len(item[1]), item[0], item[1]))


def report_csv(pairs: list[Pair]) -> str:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n", quoting=csv.QUOTE_NONNUMERIC)
    writer.writerow(["exercise", "student", "other_student", "overlap", "shared_fingerprints"])
    for pair in pairs:
        writer.writerow([pair.exercise, csv_text_cell(pair.first), csv_text_cell(pair.second), pair.overlap,
                         pair.shared])
    return buffer.getvalue()


def summary_lines(pairs: list[Pair], limit: int = 10) -> list[str]:
    if not pairs:
        return [f"similarity: no two students' answers look alike (answers under {MIN_TOKENS} tokens are not "
                "compared: too short to tell copying from the natural way to write them)"]
    linked = groups(pairs)
    lines = [f"similarity (a hint to read the notebooks, never a verdict): {len(pairs)} pair(s) in {len(linked)} "
             "group(s)"]
    for exercise, students in linked[:limit]:
        inside = [pair for pair in pairs if pair.exercise == exercise and pair.first in students]
        low, high = min(pair.overlap for pair in inside), max(pair.overlap for pair in inside)
        share = f"{high:.0%}" if low == high else f"{low:.0%}–{high:.0%}"
        lines.append(f"  {exercise}: {' ~ '.join(students)} ({share} of fingerprints shared)")
    if len(linked) > limit:
        lines.append(f"  … {len(linked) - limit} more group(s) in the similarity file")
    return lines
