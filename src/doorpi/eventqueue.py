"""The gate's event queue: first in, first out, except life-safety inputs.

Readers, keypads, door inputs and the face path put events in from their own
threads; the gate takes one at a time. A fire-alarm change must not wait
behind a backlog (a busy face path, a PIN hash, a burst of taps): events of
an urgent kind (`URGENT`) are served before everything already waiting, so
the strike is released by the next event the gate handles. Same interface as
`queue.Queue` for what the gate uses (put, get, get_nowait, qsize, empty);
raises `queue.Empty`.
"""

from __future__ import annotations

import queue
import threading
import time
from collections import deque

from doorpi.core.events import Event, FireAlarmChanged

URGENT: tuple[type[Event], ...] = (FireAlarmChanged,)


class EventQueue:
    def __init__(self) -> None:
        self._urgent: deque[Event] = deque()
        self._normal: deque[Event] = deque()
        self._cond = threading.Condition()

    def put(self, event: Event) -> None:
        with self._cond:
            (self._urgent if isinstance(event, URGENT) else self._normal).append(event)
            self._cond.notify()

    def _take(self) -> Event:
        if self._urgent:
            return self._urgent.popleft()
        if self._normal:
            return self._normal.popleft()
        raise queue.Empty

    def get_nowait(self) -> Event:
        with self._cond:
            return self._take()

    def get(self, timeout: float | None = None) -> Event:
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._cond:
            while not (self._urgent or self._normal):
                left = None if deadline is None else deadline - time.monotonic()
                if left is not None and left <= 0:
                    raise queue.Empty
                self._cond.wait(left)
            return self._take()

    def qsize(self) -> int:
        with self._cond:
            return len(self._urgent) + len(self._normal)

    def empty(self) -> bool:
        return self.qsize() == 0
