"""The `advise` program: `advise analyze perf.data` starts `perf script` first, then imports.

perf spends ~0.15 s loading symbols before it prints anything; the command line's imports take
~40 ms before it could be started from there. Started here (advisor.parse.perf_spawn: nothing
but `os`), perf loads its symbols while Python imports, and `analyze` takes the running process
over. Anything unusual (not a perf.data file, several candidates, no perf) and nothing is
started early: `analyze` then starts perf itself and reports what is wrong.
"""

from __future__ import annotations

import sys


def main() -> int:
    from .stop_signals import handle_as_interrupt

    handle_as_interrupt()  # before anything is started: SIGTERM cleans up as Ctrl-C does
    words = sys.argv[1:]
    early = None
    if words[:1] == ["analyze"]:
        from .parse import perf_spawn

        candidates = [w for w in words[1:] if not w.startswith("-") and perf_spawn.is_perf_data(w)]
        if len(candidates) == 1:  # the file to analyse (an option's value is never a perf.data)
            early = perf_spawn.start_early(candidates[0])
    try:
        from .cli import main as run_command

        return run_command()
    finally:
        if early is not None:
            perf_spawn.discard_early(early)  # when `analyze` did not take it (an error)


if __name__ == "__main__":
    sys.exit(main())
