"""A grader-like handle for tests that play checks the way the grader does: only data crosses the wire.

Used by tests/test_grading_loops.py (the loop stages) and tests/test_lesson07.py (chapter 07's trust-region cases).
"""
from __future__ import annotations

import json
import socket

from pgcourse.classroom.sandboxed import loops
from pgcourse.classroom.sandboxed.link import Link
from pgcourse.classroom.sandboxed.wire import _Dec, _Enc

_LINK = Link(socket.socketpair()[0], trusted=True)


def wire(value):
    """``value`` after the trip through the wire's encoding (what crosses between the worker and the sandbox)."""
    return _LINK.dec(json.loads(json.dumps(_LINK.enc(value, _Enc()))), _Dec())


class WireHandle:
    """A grader-like handle on ``fn``: called with data only; live arguments are built by :func:`loops.play`."""

    def __init__(self, fn):
        self._fn = fn
        self.cases = 0

    @property
    def __name__(self):
        return self._fn.__name__

    def __call__(self, *args):  # a check whose arguments are data calls it directly
        return wire(self._fn(*wire(list(args))))

    def play_case(self, spec):
        self.cases += 1
        return wire(loops.play(self._fn, wire(spec)))
