"""`advise diff BEFORE AFTER`: compare two recordings; `--fail-on-gain PCT` gates CI on a regression.

Exit 1 when a recommendation appears in AFTER, or grows there, and reaches PCT.
"""

from __future__ import annotations

import os
import sys

from .cli import add_report_options, add_sample_filters, input_path

FORMATS = ("terminal", "json", "markdown")


def register(sub) -> None:
    p = sub.add_parser("diff", help="compare two recordings (before/after a change)")
    p.add_argument("before", type=input_path, help="bundle directory or samples file recorded before "
                   "the change; - for stdin")
    p.add_argument("after", type=input_path, help="bundle directory or samples file recorded after it")
    add_sample_filters(p, ", on both sides")
    add_report_options(p, FORMATS, "the comparison", "a recommendation appears or grows in AFTER and reaches PCT")
    p.add_argument("--top", type=int, default=15, metavar="N", help="how many top movers to list (default 15)")
    p.set_defaults(func=cmd_diff)


def cmd_diff(args) -> int:
    from .cli import EXIT_GATE, refuse_overwriting, say, write_atomically
    from .diff import diff

    from .errors import UsageError

    if args.top < 1:
        raise UsageError("advise diff: --top must be at least 1")
    if args.before == args.after == "/dev/stdin":  # the second would read nothing: all of it "gone"
        raise UsageError("advise diff: only one side can be standard input (-)")
    refuse_overwriting(args.output, args.format, [args.before, args.after])
    result = diff(args.before, args.after, comm=args.comm, pid=args.pid, event=args.event, rules_dir=args.rules)
    if args.format == "json":
        text = result.to_json(args.top)
    elif args.format == "markdown":
        text = result.to_markdown(args.top)
    else:
        from rich.console import Console

        if args.output is None:
            Console().print(result)
            text = None
        else:
            console = Console(record=True, width=110, file=open(os.devnull, "w"))
            console.print(result)
            text = console.export_text()
    if text is not None:
        if args.output is None:
            sys.stdout.write(text)
        else:
            write_atomically(args.output, text)
    if args.fail_on_gain is not None:
        worse = result.regressions(args.fail_on_gain)
        if worse:
            names = ", ".join(f"{r['rule']} {r['status']} +{r['gain_after']:.1f}%" for r in worse)
            say(f"gate tripped: {names} reach {args.fail_on_gain:g}% in {args.after}")
            return EXIT_GATE
    return 0
