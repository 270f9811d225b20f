"""The generation gate of a GistMemory: who may use the model at the same time."""

from __future__ import annotations

import contextlib
import threading

from .errors import InputError

#: Seconds a query or an ingest waits for the model before it gives up with an error.
DEFAULT_TIMEOUT_S = 600.0


class Gate:
    """Many gist generations at once, or one compression or text generation. Those switch the LoRA
    adapter off for the whole model (``GistModel.base_mode``), so a gist generation beside them
    would lose its adapter.

    A thread that holds the gate (say, in a stream it has not finished reading) and asks for it in
    a way that must wait for itself gets an error at once instead of a deadlock; any other wait
    ends with an error after ``timeout_s``.
    """

    def __init__(self, timeout_s: float = DEFAULT_TIMEOUT_S):
        self._cond = threading.Condition()
        self._readers: dict[int, int] = {}  # thread id -> shared holds
        self._writer: int | None = None  # thread id of the exclusive holder
        self.timeout_s = timeout_s

    def _wait(self, ready, what: str) -> None:
        me = threading.get_ident()
        if self._writer == me or (what == "exclusive" and self._readers.get(me)):
            raise InputError("this thread is still reading an answer stream from this memory; read it to the end "
                             "or call its close() before asking for another answer or adding documents")
        if not self._cond.wait_for(ready, timeout=self.timeout_s):
            raise InputError(f"waited {self.timeout_s:g} s for the model (another thread holds it, perhaps in an "
                             "unfinished answer stream); close that stream, or give GistMemory a longer "
                             "gate_timeout_s")

    @contextlib.contextmanager
    def shared(self):
        me = threading.get_ident()
        with self._cond:
            self._wait(lambda: self._writer is None, "shared")
            self._readers[me] = self._readers.get(me, 0) + 1
        try:
            yield
        finally:
            with self._cond:
                self._readers[me] -= 1
                if not self._readers[me]:
                    del self._readers[me]
                self._cond.notify_all()

    @contextlib.contextmanager
    def exclusive(self):
        with self._cond:
            self._wait(lambda: self._writer is None and not self._readers, "exclusive")
            self._writer = threading.get_ident()
        try:
            yield
        finally:
            with self._cond:
                self._writer = None
                self._cond.notify_all()
