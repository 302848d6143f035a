"""`advise`: the command line. Thin: it parses flags, calls the API and picks a renderer.

Exit codes: 0 ok, 1 the --fail-on-gain gate tripped, 2 bad usage or bad input,
3 environment problem (missing tool, permission), 70 internal error (a bug: please report).
"""

from __future__ import annotations

import argparse
import math
import os
import stat
import sys
from pathlib import Path

from . import __version__
from .errors import AdvisorError, EnvironmentProblem, UsageError, limit_reached

EXIT_GATE = 1
EXIT_INTERNAL = 70
FORMATS = ("terminal", "json", "markdown", "script", "html")
EXPORTS = ("folded", "speedscope")


class _HelpFormatter(argparse.HelpFormatter):
    """argparse's, with the terminal's width found as shutil would find it, without importing
    shutil: argparse does that for every parser it builds, and shutil brings bz2 and lzma
    (~3.5 ms of CPU on every run, for a width that only --help uses)."""

    def __init__(self, prog: str, **kwargs):
        kwargs.setdefault("width", _terminal_columns() - 2)  # what HelpFormatter does with shutil's
        super().__init__(prog, **kwargs)


def _terminal_columns() -> int:
    """shutil.get_terminal_size().columns: $COLUMNS, else the terminal's, else 80."""
    try:
        columns = int(os.environ.get("COLUMNS", "0"))
    except ValueError:
        columns = 0
    if columns <= 0:
        try:
            columns = os.get_terminal_size(sys.__stdout__.fileno()).columns
        except (AttributeError, ValueError, OSError):
            columns = 0
    return columns or 80


class _Parser(argparse.ArgumentParser):
    """argparse, but a usage error is one line and exit 2, like every other error."""

    def __init__(self, *args, **kwargs):
        kwargs.setdefault("formatter_class", _HelpFormatter)
        super().__init__(*args, **kwargs)

    def error(self, message: str):
        raise UsageError(f"{self.prog}: {message} (see {self.prog} --help)")


def is_special(path: Path) -> bool:
    """An existing file that is not a regular one (/dev/null, a FIFO, /dev/stdout): written in
    place, never renamed over (that would replace the device with a file)."""
    try:
        mode = os.stat(path).st_mode
    except OSError:
        return False
    return stat.S_ISCHR(mode) or stat.S_ISBLK(mode) or stat.S_ISFIFO(mode) or stat.S_ISSOCK(mode)


def write_atomically(path: Path, text: str) -> None:
    """Write next to the target, then rename: a failure never leaves half a file. A device or
    FIFO is written in place: there is no half-written file to fear, and a rename would replace it.
    A failure (no such directory, no permission, disk full) is one line naming the file."""
    path = Path(path)
    try:
        _write_atomically(path, text)
    except OSError as exc:
        raise EnvironmentProblem(f"cannot write {path}: {exc.strerror or exc}") from None


def check_output_target(path: Path) -> None:
    """Refuse an --output that cannot be written before a long collection, not after it: a
    directory, or a file whose directory is missing or not writable (a device or FIFO is fine).
    Writable is asked of the kernel, by making a file there: root passes os.access in /proc and
    /sys, where no file can be made."""
    path = Path(path)
    if is_special(path):
        return
    if path.is_dir():
        raise EnvironmentProblem(f"cannot write {path}: Is a directory")
    directory = path.parent  # "." for a bare file name
    if not directory.is_dir():
        raise EnvironmentProblem(f"cannot write {path}: no directory {directory}")
    import tempfile

    try:
        with tempfile.TemporaryFile(dir=directory):
            pass
    except OSError as exc:
        raise EnvironmentProblem(f"cannot write {path}: {exc.strerror or exc}") from None


def rollback_path(output: Path) -> Path:
    """Where `--format script` writes the rollback script: next to the script."""
    return output.with_name(output.stem + ".rollback" + (output.suffix or ".sh"))


def refuse_overwriting(output: Path | None, fmt: str, recordings: list) -> None:
    """--output must not replace the recording read or written: `advise analyze rec.txt -o rec.txt`
    replaced the recording with its report, `-o BUNDLE/perf.script.gz` a bundle's samples, and
    `run --save DIR -o DIR/meta.json` would the bundle's own. A new file next to a bundle's is
    fine. (With --format script the rollback written next to the output counts too.)"""
    if output is None or is_special(output):
        return
    from .bundle import BUNDLE_FILES

    written = [output] + ([rollback_path(output)] if fmt == "script" else [])
    for recording in recordings:
        if recording is None or str(recording) == "/dev/stdin":
            continue
        whole = os.path.realpath(recording)
        for path in written:
            real = os.path.realpath(path)
            part = os.path.dirname(real) == whole and (os.path.lexists(real)
                                                       or os.path.basename(real) in BUNDLE_FILES)
            if real == whole or part:
                raise UsageError(f"--output {output}: {path} would replace {'part of ' if part else ''}"
                                 f"the recording {recording}")


def _write_atomically(path: Path, text: str) -> None:
    if is_special(path):
        with open(path, "w", encoding="utf-8") as fh:
            fh.write(text)
        return
    import tempfile  # here, not at the top: `advise analyze` starts perf before heavier imports

    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    umask = os.umask(0)
    os.umask(umask)
    os.fchmod(fd, 0o666 & ~umask)  # mkstemp makes 0600; a report is an ordinary file
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise


#: The module of advisor.report that writes each format (and --export's).
RENDERERS = {"html": "html", "json": "json_report", "markdown": "markdown", "script": "script",
             "terminal": "terminal", "export": "export"}


def renderer(fmt: str):
    """The report module for `fmt`, imported on first use (rich alone takes ~45 ms to import)."""
    import importlib

    return importlib.import_module(f".report.{RENDERERS[fmt]}", __package__)


def terminal_console(output: Path | None):
    """Where the terminal report prints: stdout, or a 100-column recording for `output`."""
    from rich.console import Console

    if output is None:
        return Console()
    return Console(record=True, width=100, file=open(os.devnull, "w"))


#: What the terminal report imports, leaves first, one step each (see report_ready): rich's
#: modules and the standard library's it needs, 0.1-3.7 ms each here, where `rich.console` with
#: all it imports is one step of ~20 ms. A name another version of rich lacks is passed over:
#: the report's own import then loads the rest.
RICH_MODULES = ("random", "datetime", "rich.color", "rich.style", "rich.theme", "rich.cells", "rich.segment",
                "rich.measure", "rich.align", "rich.control", "rich.emoji", "rich.text", "rich.highlighter",
                "rich.markup", "rich.pager", "rich.screen", "rich.styled", "tokenize", "dis", "inspect",
                "dataclasses", "rich.console", "rich.padding", "rich.box", "rich.panel", "fractions", "rich.table")


def report_ready(fmt: str, output: Path | None):
    """The report's module imported, in steps of a few ms for advisor.idle.Steps, returning for
    the terminal its console with the first rendering's one-off costs paid (report.terminal.prepare).

    `advise analyze` needs them only after perf's last line, and has time while perf writes;
    but a step must stay shorter than perf takes to fill its pipe (~8 ms), or perf waits.
    """
    import importlib

    if fmt == "terminal":
        for name in RICH_MODULES:
            try:
                importlib.import_module(name)
            except ModuleNotFoundError:
                pass
            yield
    module = renderer(fmt)
    if fmt != "terminal":
        return None
    yield
    console = terminal_console(output)
    module.prepare(console)
    return console


def render_result(result, fmt: str, output: Path | None, console=None) -> None:
    """Write an analysis Result in one format to stdout or (atomically) to `output` (a terminal
    report on `console` when given, as terminal_console(output) makes it)."""
    module = renderer(fmt)
    if fmt == "html":
        text = module.render(result)
        if output is None:
            sys.stdout.write(text)
        else:
            write_atomically(output, text)
        return
    result = result.data
    if fmt == "script":
        apply_text, rollback_text = module.render(result)
        if output is None or is_special(output):  # no place "next to" a device or FIFO
            text = apply_text + "\n# ---- rollback ----\n" + rollback_text
        else:
            write_atomically(rollback_path(output), rollback_text)
            text = apply_text
    elif fmt == "terminal":
        console = console or terminal_console(output)
        module.render(result, console)
        if output is None:
            return
        text = console.export_text()
    else:
        text = module.render(result)
    if output is None:
        sys.stdout.write(text)
    else:
        write_atomically(output, text)


def cmd_analyze(args) -> int:
    from .parse import perf_data

    if args.export and args.output is None:
        raise UsageError("--export needs --output FILE")
    output_format = "export" if args.export else args.format
    refuse_overwriting(args.output, output_format, [args.path])
    with perf_data.started_early(args.path):
        # while perf loads its symbols (~0.05 s) and writes: the analysis's imports, then the
        # report's, taken in steps by the reader whenever perf's pipe is empty, so that none of
        # them waits for perf's last line nor keeps perf waiting (see report_ready)
        from .analysis import analyze
        from .idle import Steps

        with Steps(report_ready(output_format, args.output)) as ready:
            result = analyze(args.path, comm=args.comm, pid=args.pid, event=args.event, rules_dir=args.rules)
            console = ready.result()
    if args.export:
        write_atomically(args.output, renderer("export").render(result.profile, args.export))
    else:
        render_result(result, args.format, args.output, console)
    return gate(result.data, args.fail_on_gain)


def say(message: str) -> None:
    """One line on stderr, `advise: ` first. Paths and names in it come from outside: a newline
    would break the one line, an ESC sequence act on the terminal (`advise analyze $'x\\e[2J'`
    cleared it), so both are written as escapes, as reports write names."""
    text = f"advise: {message}"
    if not text.isprintable():
        from .report import printable

        text = printable(text).replace("\n", "\\n").replace("\t", "\\t")
    print(text, file=sys.stderr)


def gate(data: dict, threshold: float | None) -> int:
    """The CI gate: exit 1 when a recommendation's estimated gain reaches the threshold."""
    if threshold is not None:
        tripped = [r for r in data["recommendations"] if r["estimated_gain_pct"] >= threshold]
        if tripped:
            names = ", ".join(f"{r['rule']} +{r['estimated_gain_pct']:.1f}%" for r in tripped)
            say(f"gate tripped: {names} reach {threshold:g}%")
            return EXIT_GATE
    return 0


def cmd_rules(args) -> int:
    from rich.console import Console
    from rich.table import Table

    from .engine.rules import load_rules

    rules = load_rules(args.rules)
    table = Table(title=f"{len(rules)} rules", show_lines=False)
    for col in ("id", "category", "model", "risk", "case study", "title"):
        table.add_column(col, overflow="fold")
    for r in rules:
        risk = r.risk + (" (weakens security)" if r.weakens_security else "")
        table.add_row(r.id, r.category, r.model, risk, f"+{r.reported_gain_pct:g}%", r.title)
    Console().print(table)
    return 0


def explain_text(rule) -> str:
    """One rule's documentation as Markdown."""
    lines = [f"# {rule.id}: {rule.title}", "",
             f"Category: {rule.category}. Estimate model: {rule.model}. Risk: {rule.risk}"
             + (" — **weakens security**." if rule.weakens_security else "."), "",
             "## What it looks for", rule.looks_for, ""]
    if rule.symbols:
        lines += [f"Symbols ({rule.mode}): " + ", ".join(f"`{s}`" for s in rule.symbols.patterns)]
        if rule.under:
            lines += ["Only under: " + ", ".join(f"`{s}`" for s in rule.under.patterns)]
        if rule.exclude_below:
            lines += ["Not counted when below it: " + ", ".join(f"`{s}`" for s in rule.exclude_below.patterns)]
        lines += [f"Reported when it takes at least {rule.min_share_pct}% of busy time.", ""]
    for name, conds in (("System state", rule.state), ("Counters", rule.counters)):
        if conds:
            req = " (required)" if conds.required else ""
            items = [f"all: `{c.path} {c.test}`" for c in conds.all] + \
                    [f"any: `{c.path} {c.test}`" for c in conds.any]
            lines += [f"{name}{req}: " + "; ".join(items), ""]
    lines += ["## Why it costs", rule.why, "", "## Estimate"]
    if rule.model == "share":
        lines += [f"gain = 1/(1 - s*r) - 1 with s the matched share of the bottleneck's busy time and "
                  f"r = {rule.removable} (range {rule.removable_range[0]}-{rule.removable_range[1]})."]
    elif rule.model in ("kernel-share", "user-share"):
        kind = rule.model.split("-")[0]
        lines += [f"A diffuse cost: modelled as {rule.fraction[0]:.1%}-{rule.fraction[1]:.1%} of {kind} "
                  f"time (low confidence)."]
    elif rule.model == "entry-rate":
        lines += [f"Kernel entries per second x {rule.cost_ns_per_entry[0]:g}-{rule.cost_ns_per_entry[1]:g} ns "
                  f"each, over busy CPU time; without entry counts {rule.fraction[0]:.1%}-"
                  f"{rule.fraction[1]:.1%} of kernel time (low confidence)."]
    else:
        lines += ["Spare capacity of the idle CPUs next to saturated ones, times "
                  f"{rule.removable} (range {rule.removable_range[0]}-{rule.removable_range[1]})."]
    lines += ["", "## Remedy", "```sh", *rule.commands, "```", "", "## Rollback", "```sh", *rule.rollback,
              "```", "", "## Risk and caveat", f"{rule.risk}: {rule.caveat}", "", "## Case study",
              f"{rule.section}: reported +{rule.reported_gain_pct:g}%"
              + (f" (range {rule.reported_range_pct[0]:g}-{rule.reported_range_pct[1]:g}%)"
                 if rule.reported_range_pct else "") + f". Observed: {rule.observed}.", ""]
    return "\n".join(lines)


def cmd_explain(args) -> int:
    from .engine.rules import get_rule

    rule = get_rule(args.rule, args.rules)
    text = explain_text(rule)
    if args.plain or not sys.stdout.isatty():
        sys.stdout.write(text)
    else:
        from rich.console import Console
        from rich.markdown import Markdown

        Console().print(Markdown(text))
    return 0


#: Commands defined in this module; the others live in advisor/cli_<name>.py.
OWN_COMMANDS = ("analyze", "rules", "explain")


def input_path(text: str) -> str:
    """A recording's path; `-` is standard input (`perf script | advise analyze -`)."""
    return "/dev/stdin" if text == "-" else str(path_arg(text))


def path_arg(text: str) -> Path:
    """A path on the command line. An empty one is refused: Path('') is '.', so `--rules ''`
    loaded the current directory's *.toml files as rules, and `advise analyze ''` read it as a
    bundle (`--rules "$DIR"` with DIR unset)."""
    if not text:
        raise argparse.ArgumentTypeError("'': give a path (an empty one would mean the current directory)")
    return Path(text)


def command_names(text: str) -> str:
    """--comm: names or globs, comma-separated. An empty one is refused: '' was taken as no
    filter at all (`--comm "$NAME"` with NAME unset collected the whole machine without a word),
    and 'nginx,' as a name that matches nothing."""
    if "" in text.split(","):
        raise argparse.ArgumentTypeError(f"{text!r}: give one or more command names (globs), "
                                         "comma-separated, none empty")
    return text


def process_id(text: str) -> int:
    """A PID (0 is the idle task); -1, which marks samples without a PID, is not one."""
    value = int(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"{text}: a process id is 0 or more")
    return value


def percent(text: str) -> float:
    """A gate's threshold: a finite number (nan would never trip it, and say nothing)."""
    value = float(text)
    if not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"{text}: give a finite percentage")
    return value


def add_sample_filters(p: argparse.ArgumentParser, where: str = "") -> None:
    """--comm, --pid, --event: which samples count (`where`: e.g. ", on both sides")."""
    p.add_argument("--comm", type=command_names,
                   help=f"only samples of these command names (globs, comma-separated: nginx,wrk){where}")
    p.add_argument("--pid", type=process_id, help=f"only samples of this process id{where}")
    p.add_argument("--event", help="which event of a multi-event recording (default: cpu-clock/cycles); "
                   "with or without its modifiers (cpu-clock:ppp)")


def add_report_options(p: argparse.ArgumentParser, formats: tuple[str, ...], written: str = "the report",
                       gate: str = "a recommendation's estimated gain reaches PCT") -> None:
    """--format, --output, --fail-on-gain, --rules: the same on every command that reports."""
    p.add_argument("--format", choices=formats, default="terminal")
    p.add_argument("--output", "-o", type=path_arg, help=f"write {written} here (atomically)")
    p.add_argument("--fail-on-gain", type=percent, metavar="PCT", help=f"exit 1 when {gate} (CI gate)")
    p.add_argument("--rules", type=path_arg, help="rules directory (default: the bundled rules/)")


class _Version(argparse.Action):
    """`--version`: looks the parser's loop up only when asked (the import costs every command)."""

    def __call__(self, parser, namespace, values, option_string=None):
        from .parse.perf_script import HOT_LOOP

        print(f"advise {__version__} (perf script parser: {HOT_LOOP} loop)")
        parser.exit()


def build_parser(command: str | None = None) -> argparse.ArgumentParser:
    """The `advise` parser. Given the `command` about to run, and it is one of OWN_COMMANDS,
    the commands of other modules are left out: importing them (the lab's pathologies) only
    slows `advise analyze` down, and no message of an own command mentions them."""
    parser = _Parser(prog="advise", description="Profiling-driven tuning advisor for Linux network servers.")
    parser.add_argument("--version", action=_Version, nargs=0, help="print the version, and which "
                        "loop reads perf script text (C, or the pure-Python one where it was not built)")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)

    p = sub.add_parser("analyze", help="analyse a recording and rank the remedies")
    p.add_argument("path", type=input_path,
                   help="bundle directory, perf script text (.gz), folded stacks or perf.data; - for stdin")
    add_sample_filters(p)
    add_report_options(p, FORMATS)
    p.add_argument("--export", choices=EXPORTS, help="write the profile as folded stacks or speedscope "
                   "JSON to --output instead of a report")
    p.set_defaults(func=cmd_analyze)

    for name in () if command in OWN_COMMANDS else ("run", "diff", "lab"):
        # Commands that live in their own module (advisor/cli_<name>.py) register themselves.
        try:
            module = __import__(f"advisor.cli_{name}", fromlist=["register"])
        except ModuleNotFoundError as exc:
            if exc.name != f"advisor.cli_{name}":
                raise
            continue
        module.register(sub)

    p = sub.add_parser("rules", help="list the rules")
    p.add_argument("--rules", type=path_arg, help="rules directory")
    p.set_defaults(func=cmd_rules)

    p = sub.add_parser("explain", help="one rule's documentation")
    p.add_argument("rule")
    p.add_argument("--plain", action="store_true", help="Markdown text even on a terminal")
    p.add_argument("--rules", type=path_arg, help="rules directory")
    p.set_defaults(func=cmd_explain)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run one command and return its exit code.

    Called without `argv`, as the `advise` program is, a successful `analyze` ends the process
    itself (see _exit_now); with `argv` it always returns.
    """
    code, command = _run(argv)
    if argv is None and command == "analyze" and code in (0, EXIT_GATE):
        _exit_now(code)
    return code


def _exit_now(code: int) -> None:
    """Flush and end the process without tearing the interpreter down.

    Freeing a large profile object by object at exit took 15-18 ms against 3-5 ms with
    os._exit (a 20 s system-wide recording). `analyze` leaves no child process, thread,
    temporary file or atexit handler behind, so skipping the teardown loses nothing.
    """
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (BrokenPipeError, ValueError):  # the reader has gone, or the stream is closed
            pass
    early = sys.modules.get("advisor.parse.perf_spawn")
    if early is not None:
        early.discard_early()  # a perf started by advisor.program for a file `analyze` did not read
    os._exit(code)


def _command_of(argv: list[str]) -> str | None:
    """The command a command line starts with; None when it starts with an option (--help)."""
    return argv[0] if argv and not argv[0].startswith("-") else None


def _run(argv: list[str] | None) -> tuple[int, str | None]:
    """(exit code, command name) of one command; errors become one line on stderr."""
    command = None
    try:
        args = build_parser(_command_of(sys.argv[1:] if argv is None else argv)).parse_args(argv)
        command = args.command
        return args.func(args), command
    except AdvisorError as exc:
        say(str(exc))
        return exc.exit_code, command
    except KeyboardInterrupt as exc:  # Ctrl-C, or SIGTERM/SIGHUP (advisor.stop_signals)
        from .stop_signals import how_it_stopped

        code, message = how_it_stopped(exc)
        say(message)
        return code, command
    except BrokenPipeError:
        return 0, command
    except Exception as exc:  # a limit of the machine (memory, open files, disk), or a bug
        problem = limit_reached(exc)
        if problem is None:  # a bug: one line, traceback only on request
            return _internal_error(exc, command)
        say(problem)
        return EnvironmentProblem.exit_code, command


def _internal_error(exc: Exception, command: str | None) -> tuple[int, str | None]:
    if os.environ.get("ADVISOR_DEBUG"):
        raise exc
    say(f"internal error: {type(exc).__name__}: {exc} (set ADVISOR_DEBUG=1 for the traceback and please "
        f"report it)")
    return EXIT_INTERNAL, command


if __name__ == "__main__":
    from .stop_signals import handle_as_interrupt

    handle_as_interrupt()
    sys.exit(main())
