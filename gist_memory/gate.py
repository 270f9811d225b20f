"""The generation gate of a GistMemory: who may use the model at the same time."""

from __future__ import annotations

import contextlib
import threading


class Gate:
    """Many gist generations at once, or one compression or text generation. Those switch the LoRA
    adapter off for the whole model (``GistModel.base_mode``), so a gist generation beside them
    would lose its adapter."""

    def __init__(self):
        self._cond = threading.Condition()
        self._readers = 0
        self._writer = False

    @contextlib.contextmanager
    def shared(self):
        with self._cond:
            self._cond.wait_for(lambda: not self._writer)
            self._readers += 1
        try:
            yield
        finally:
            with self._cond:
                self._readers -= 1
                self._cond.notify_all()

    @contextlib.contextmanager
    def exclusive(self):
        with self._cond:
            self._cond.wait_for(lambda: not self._writer and self._readers == 0)
            self._writer = True
        try:
            yield
        finally:
            with self._cond:
                self._writer = False
                self._cond.notify_all()
