"""The `advise` program: `advise analyze perf.data` starts `perf script` first, then imports.

perf spends ~0.15 s loading symbols before it prints anything; the command line's imports take
~40 ms before it could be started from there. Started here (advisor.parse.perf_spawn: nothing
but `os`), perf loads its symbols while Python imports, and `analyze` takes the running process
over. Anything unusual (not a perf.data file, several candidates, no perf) and nothing is
started early: `analyze` then starts perf itself and reports what is wrong.
"""

from __future__ import annotations

import os
import sys


def main() -> int:
    from .stop_signals import handle_as_interrupt, how_it_stopped

    handle_as_interrupt()  # before anything is started: SIGTERM cleans up as Ctrl-C does
    words = sys.argv[1:]
    try:
        if words[:1] == ["analyze"]:
            from .parse import perf_spawn

            candidates = [w for w in words[1:] if not w.startswith("-") and perf_spawn.is_perf_data(w)]
            if len(candidates) == 1:  # the file to analyse (an option's value is never a perf.data)
                perf_spawn.start_early(candidates[0])
        from .cli import main as run_command

        return run_command()
    except KeyboardInterrupt as exc:  # Ctrl-C or a stop signal before the command took over
        code, message = how_it_stopped(exc)
        os.write(2, f"advise: {message}\n".encode())
        return code
    except (MemoryError, OSError, ImportError) as exc:  # a limit of the machine, met while importing
        from .errors import EnvironmentProblem, limit_reached

        problem = limit_reached(exc)
        if problem is None:
            raise
        os.write(2, f"advise: {problem}\n".encode())
        return EnvironmentProblem.exit_code
    finally:
        spawn = sys.modules.get("advisor.parse.perf_spawn")
        if spawn is not None:
            spawn.discard_early()  # what `analyze` did not take: an error, an interrupt


if __name__ == "__main__":
    sys.exit(main())
