"""The bug hunt pool's answer key for the tests, found by replay (``tools/make_mysteries.py``'s ``identify_pool``).

No file of the course stores the key (issue 26: the solution notebook published it, which answered every student's
draw); the tests find it as the maintainer's tool does, once per test process (about 1 s of CPU per pool run)."""
from __future__ import annotations

import functools
import importlib.util
from collections.abc import Iterator, Mapping
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def make_mysteries_tool():
    spec = importlib.util.spec_from_file_location("make_mysteries", ROOT / "tools" / "make_mysteries.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@functools.lru_cache(maxsize=1)
def pool_key() -> dict[int, str]:
    return make_mysteries_tool().identify_pool()


class LazyPoolKey(Mapping):
    """``{pool id: trap}``, found on first use (collecting the tests costs nothing)."""

    def __getitem__(self, pool_id: int) -> str:
        return pool_key()[pool_id]

    def __iter__(self) -> Iterator[int]:
        return iter(pool_key())

    def __len__(self) -> int:
        return len(pool_key())
