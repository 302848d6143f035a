"""Work done in small steps by a reader waiting for perf, instead of in a thread of its own.

perf writes at most 1 MiB (the pipe) ahead of its reader: ~8 ms of its output here. Work in
another thread (the terminal report's imports, ~25 ms of CPU) holds Python's lock for up to the
5 ms switch interval at a time, and the reader, one of three threads by then, waits its turn
while perf fills the pipe and stops: perf was blocked on the pipe for 11-20 ms. Taken as
steps by the reader itself, each time it finds the pipe empty (perf_spawn.PolledPipe), the same
work never keeps it from the pipe for longer than a step (a few ms): perf was blocked 0.3 ms.
"""

from __future__ import annotations

#: The work whose steps a waiting reader may take (Steps blocks, innermost last).
_PENDING: list["Steps"] = []


def step() -> bool:
    """Take one step of pending work, for a reader with nothing to read; False if there is none
    (or another thread is taking it), and the reader should sleep instead."""
    for work in tuple(_PENDING):
        if work.step():
            return True
    return False


class Steps:
    """A generator's steps, taken by waiting readers (step()) inside the `with` block; result()
    takes those left, in its caller's thread, and returns the generator's value.

    An error in a step is raised by result(), not in the reader, whose parse goes on; Ctrl-C
    (or a stop signal) in a step stops the reader, as it would have stopped its sleep.
    """

    def __init__(self, steps):  # a generator: each next() is a step, its return value the result
        import threading  # here: perf_spawn imports this module before perf starts

        self._steps = steps
        self._lock = threading.Lock()  # one step at a time: every perf slice has its reader
        self._done = False
        self._value = None
        self._error: Exception | None = None

    def __enter__(self) -> "Steps":
        _PENDING.append(self)
        return self

    def __exit__(self, *exc) -> None:
        _PENDING.remove(self)
        with self._lock:  # a reader may be taking a step: it ends before the steps are closed
            self._steps.close()

    def step(self) -> bool:
        if self._done or not self._lock.acquire(blocking=False):
            return False
        try:
            if not self._done:
                self._advance()
        finally:
            self._lock.release()
        return True

    def result(self):
        with self._lock:
            while not self._done:
                self._advance()
        if self._error is not None:
            raise self._error
        return self._value

    def _advance(self) -> None:
        try:
            next(self._steps)
        except StopIteration as stop:
            self._done, self._value = True, stop.value
        except Exception as exc:
            self._done, self._error = True, exc
