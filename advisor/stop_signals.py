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

STOP_SIGNALS = (_signal.SIGTERM, _signal.SIGHUP)


class Terminated(KeyboardInterrupt):
    """A stop signal, handled as Ctrl-C is."""

    def __init__(self, signum: int):
        super().__init__(signum)
        self.signum = signum


def handle_as_interrupt() -> None:
    for signum in STOP_SIGNALS:
        if _signal.getsignal(signum) != _signal.SIG_IGN:
            _signal.signal(signum, _raise_terminated)


def _raise_terminated(signum, frame) -> None:
    raise Terminated(signum)


def how_it_stopped(exc: KeyboardInterrupt) -> tuple[int, str]:
    """(exit code, what to say) for Ctrl-C or a stop signal: 128 + the signal, as a shell says."""
    signum = getattr(exc, "signum", _signal.SIGINT)
    return 128 + signum, "interrupted" if signum == _signal.SIGINT else f"stopped by signal {signum}"
