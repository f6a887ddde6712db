"""Ctrl-C during training: the first press asks the loop to stop after the update it is in; a second
press stops at once.

Stopping between updates keeps a run that can be resumed exactly (weights, optimisers, random
generators and environments are all at an update boundary). A second press raises
``KeyboardInterrupt`` inside the update; the trainer then keeps the weights of the last complete
update and the run can be resumed only from its last checkpoint.

The handler is installed only in the main thread and only where Ctrl-C is not ignored: a sweep's
worker processes ignore SIGINT (their driver stops them), and they keep ignoring it.
"""
from __future__ import annotations

import signal
import sys
import threading
from types import FrameType


class InterruptGuard:
    """Context manager: while active, Ctrl-C sets :attr:`requested` instead of raising (the first time).

    Attributes:
        requested: a stop was asked for (the loop checks it between updates).
        active: the handler is installed (main thread, SIGINT not ignored); when False, Ctrl-C behaves
            as it would without the guard.
    """

    def __init__(self, message: str = "Ctrl-C: training stops after the current update "
                                      "(press Ctrl-C again to stop at once)"):
        self.message = message
        self.requested = False
        self.active = False
        self._previous: signal.Handlers | object | None = None

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        if self.requested:
            raise KeyboardInterrupt
        self.requested = True
        print(f"\n{self.message}", file=sys.stderr, flush=True)

    def __enter__(self) -> InterruptGuard:
        if threading.current_thread() is not threading.main_thread():
            return self
        previous = signal.getsignal(signal.SIGINT)
        if previous == signal.SIG_IGN:
            return self
        signal.signal(signal.SIGINT, self._handle)
        self._previous, self.active = previous, True
        return self

    def __exit__(self, *exc_info: object) -> None:
        if self.active:
            # a handler installed outside Python reads back as None: put Python's default back then
            signal.signal(signal.SIGINT, self._previous if self._previous is not None else signal.default_int_handler)
            self.active = False
