"""SIGTERM and SIGHUP stop a command the way Ctrl-C does.

`timeout`, systemd, a CI runner cancelling a job, `kill`, or a closed terminal send these. Their
default action ends Python on the spot, and the children advisor starts in sessions of their own
(perf record, the BPF tools, the lab's nginx) outlived it: `timeout 5 advise run --duration 30`
left perf recording into a temporary directory nobody removed. Raised as a KeyboardInterrupt
(`Terminated`), the signal takes every cleanup path Ctrl-C takes; the exit code is 128 + the
signal's number, as a shell reports it. A signal set to be ignored (`nohup`) stays ignored.
Only the `advise` program installs this, never a notebook importing advisor.
"""

from __future__ import annotations

import _signal  # the C part of `signal` (which imports enum, ~6 ms): this runs before perf starts
import sys

STOP_SIGNALS = (_signal.SIGTERM, _signal.SIGHUP)
RETRY_S = 0.005  # how soon a signal that came during an import is looked at again


class Terminated(KeyboardInterrupt):
    """A stop signal, handled as Ctrl-C is."""

    def __init__(self, signum: int):
        super().__init__(signum)
        self.signum = signum


def handle_as_interrupt() -> None:
    """Ctrl-C and the stop signals raise KeyboardInterrupt (Terminated) in the main thread, but
    never inside an import (see _interrupt)."""
    if _signal.getsignal(_signal.SIGINT) is _signal.default_int_handler:
        _signal.signal(_signal.SIGINT, _interrupt)
    for signum in STOP_SIGNALS:
        if _signal.getsignal(signum) != _signal.SIG_IGN:
            _signal.signal(signum, _interrupt)
    _signal.signal(_signal.SIGALRM, _look_again)


_deferred: list[int] = []  # signals that came during an import, to act on when it has ended


def _interrupt(signum: int, frame) -> None:
    """Raise the signal as an interrupt where the main thread is, unless that is inside the import
    system: there an exception is lost (an import lock's weakref callback prints and drops it) or
    becomes another (Python 3.11 turns one raised in a class's __set_name__ into a RuntimeError:
    a traceback, exit 1, found with SIGTERM at random moments of `advise analyze`'s start-up).
    Then it is acted on RETRY_S later (SIGALRM), or later still if an import is still under way."""
    if _importing(frame):
        _deferred.append(signum)
        _signal.setitimer(_signal.ITIMER_REAL, RETRY_S)
        return
    raise KeyboardInterrupt() if signum == _signal.SIGINT else Terminated(signum)


def _look_again(signum: int, frame) -> None:
    """Send the deferred signal again: the handler in place now decides (_interrupt, which defers
    it again if an import is still under way, or a StopSignalsHeld block entered meanwhile)."""
    if _deferred:
        _signal.raise_signal(_deferred.pop(0))


def _importing(frame) -> bool:
    while frame is not None:
        if frame.f_code.co_filename.startswith("<frozen importlib"):
            return True
        frame = frame.f_back
    return False


def how_it_stopped(exc: KeyboardInterrupt) -> tuple[int, str]:
    """(exit code, what to say) for Ctrl-C or a stop signal: 128 + the signal, as a shell says."""
    signum = getattr(exc, "signum", _signal.SIGINT)
    return 128 + signum, "interrupted" if signum == _signal.SIGINT else f"stopped by signal {signum}"


class StopSignalsHeld:
    """Hold Ctrl-C (SIGINT) and the stop signals back for a few statements, then act on them as
    they would have acted: between posix_spawn's return and the statement that keeps its
    result, a KeyboardInterrupt would lose the only handle on a running perf. Only the main
    thread is ever interrupted, and only there can handlers change: elsewhere this does nothing."""

    def __enter__(self) -> "StopSignalsHeld":
        self.caught: list[int] = []
        self.previous: dict[int, object] = {}
        for signum in (_signal.SIGINT, *STOP_SIGNALS):
            try:
                self.previous[signum] = _signal.signal(signum, self._hold)
            except ValueError:  # not the main thread
                break
        return self

    def _hold(self, signum: int, frame) -> None:
        self.caught.append(signum)

    def __exit__(self, *exc) -> None:
        import os

        for signum, handler in self.previous.items():
            _signal.signal(signum, handler)
        for signum in self.caught:
            handler = self.previous[signum]
            if callable(handler):  # where the block ends (for _interrupt: is an import under way?)
                handler(signum, sys._getframe())  # Python's default for SIGINT raises KeyboardInterrupt
            elif handler != _signal.SIG_IGN:
                os.kill(os.getpid(), signum)  # the default action (SIGTERM: end), now
