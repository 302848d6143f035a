"""Work done while the main thread waits for perf: it reads a pipe that fills at perf's pace, and
the time between perf's lines is free for anything that does not need them (loading the rules,
~3.5 ms, mostly before perf's first line). Longer work in a thread keeps the reader from the pipe
while perf fills it: that is done in steps instead (advisor.idle: the report's imports)."""

from __future__ import annotations

import threading


class Background(threading.Thread):
    """`function(*args)` in a thread of its own; result() returns its value or raises its error."""

    def __init__(self, function, *args):
        super().__init__(name=f"advisor-{function.__name__}", daemon=True)
        self._call = (function, args)
        self._value = self._error = None
        self.start()

    def run(self) -> None:
        function, args = self._call
        try:
            self._value = function(*args)
        except BaseException as exc:  # handed to the caller by result()
            self._error = exc

    def result(self):
        self.join()
        if self._error is not None:
            raise self._error
        return self._value
