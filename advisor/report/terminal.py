"""Terminal report with rich: header panel, ranked table, one compact panel per recommendation.

Every piece of text, labels and numbers too, is rich Text, never a markup string: symbol names
like '[kernel.kallsyms]' or '[/]' must print as they are, not be parsed as markup (and a str cell
pays for rich's markup and emoji parsing: ~4 ms of the report's first rendering).
On a console without colour (a pipe, a file) the same layout prints as plain text.
"""

from __future__ import annotations

from rich import box
from rich.console import Console, Group, RenderableType
from rich.panel import Panel
from rich.table import Column
from rich.text import Text

from advisor.report import bottleneck, gain, load, pct, printable_data, reference, samples
from advisor.report.layout import Listing, Rows

LEVEL_STYLE = {"low": "green", "medium": "yellow", "high": "bold red"}
STATUS_STYLE = {"ok": "green", "unavailable": "yellow", "failed": "bold red"}
CONFIDENCE_STYLE = {"high": "bold", "medium": "", "low": "dim"}
SECURITY = "weakens"
TOP_ROWS = 8
#: The commands' highlighting on a colour terminal, in order (a later style wins where two meet:
#: a comment's words stay a comment). A few regular expressions over the same Text as without
#: colour, so the layout cannot change: pygments' bash lexer (rich.syntax) cost ~30 ms of CPU
#: to import and build, shared with the parse while perf writes (one GIL), for these commands.
SHELL_STYLES = (
    (r"(?m)^[ \t]*[\w./-]+", "bold"),  # the command: a line's first word
    (r"(?<![\w-])--?[A-Za-z][\w.-]*", "cyan"),  # an option
    (r"\|\||&&|[|;]", "bold yellow"),  # what joins commands
    (r"<[\w-]+>|\{[\w-]+\}", "bold magenta"),  # a placeholder to fill in
    (r"\$\(\(?|\$\{?\w+\}?", "magenta"),  # a variable, a substitution's start
    (r"'[^'\n]*'|\"(?:[^\"\\\n]|\\.)*\"", "green"),  # a quoted word
    (r"(?m)(?:^|(?<=\s))#.*$", "not bold italic bright_black"),  # a comment: its colour, no other
)


def render(result: dict, console: Console) -> None:
    """Print the report on `console` (a terminal or not; keep it within 100 columns to read well).

    Without colour (a pipe, a file) the commands' highlighting cannot show: they are plain text.
    """
    console.print(renderable(result, highlight=console.color_system is not None))


def renderable(result: dict, highlight: bool = True) -> RenderableType:
    """The report as one rich renderable, for callers that compose or capture output."""
    result = printable_data(result)  # names from the system: no escape sequence reaches the terminal
    parts: list[RenderableType] = [_header(result)]
    recs = result["recommendations"]
    if recs:
        parts.append(_ranking(recs))
        parts.extend(_panel(rec, highlight) for rec in recs)
    else:
        parts.append(Text("No recommendation: no rule found a remedy in this profile.", style="bold"))
    parts.extend(_dim_list("Not evaluated", [(e["rule"], e["reason"]) for e in result["not_evaluated"]]))
    parts.extend(_collectors(result.get("collectors") or {}))
    parts.extend(_dim_list("Clean", [(e["rule"], _clean_reason(e)) for e in result["clean"]]))
    if result["warnings"]:
        warnings = Rows([(Text(" "), Text(warning)) for warning in result["warnings"]], text_style="yellow")
        parts += [Text("Warnings", style="bold yellow"), warnings]
    return Group(*parts)


def _clean_reason(entry: dict) -> str:
    share = "" if entry["share_pct"] is None else f"share {pct(entry['share_pct'])}: "
    return share + entry["reason"]


def _header(result: dict) -> Panel:
    profile = result["profile"]
    facts = [("source", Text(result["source"])), ("samples", Text(samples(profile)))]
    if load(result):
        facts.append(("load", Text(load(result))))
    facts.append(("utilisation", Text(f"{pct(profile['busy_pct'])} busy")))
    facts.append(("per-CPU busy", _cpus(profile["cpus"])))
    facts.append(("bottleneck", Text(bottleneck(profile))))
    filters = [f"{key}={value}" for key, value in profile["filters"].items() if value is not None]
    if filters:
        facts.append(("filters", Text(" ".join(filters))))
    parts: list[RenderableType] = [Rows([(Text(label), value) for label, value in facts], gap=2,
                                        label_style="bold")]
    if profile["top"]:
        parts.append(_top(profile["top"]))
    return Panel(Group(*parts), title=Text(f"advisor · {result['generated_by']}"), title_align="left",
                 box=box.ROUNDED)


def _cpus(cpus: list[dict]) -> Text:
    if not cpus:
        return Text("not recorded", style="dim")
    text = Text()
    for index, cpu in enumerate(cpus):
        text.append(", " if index else "")
        text.append(f"cpu{cpu['cpu']} {pct(cpu['busy_pct'])}", style="bold red" if cpu["saturated"] else "")
        text.append(" saturated" if cpu["saturated"] else "")
    return text


def _top(top: list[dict]) -> Listing:
    columns = [Column(Text("self"), justify="right", no_wrap=True), Column(Text("incl."), justify="right", no_wrap=True),
               Column(Text("symbol"), overflow="fold", ratio=3),
               Column(Text("dso"), overflow="ellipsis", no_wrap=True, ratio=2, style="dim")]
    rows = [(Text(pct(entry["self_pct"])), Text(pct(entry["inclusive_pct"])), Text(entry["symbol"]), Text(entry["dso"]))
            for entry in top[:TOP_ROWS]]
    return Listing(columns, rows, title=Text("hottest functions", style="bold"))


def _ranking(recs: list[dict]) -> Listing:
    columns = [Column(Text("#"), justify="right"), Column(Text("rule"), no_wrap=True, style="bold cyan"),
               Column(Text("est. gain"), justify="right", no_wrap=True), Column(Text("conf.")), Column(Text("risk")),
               Column(Text("share"), justify="right"), Column(Text("security"), no_wrap=True)]
    # titles are in each recommendation's panel: the table stays one line per rule at 80 columns
    rows = [(Text(str(rec["rank"])), Text(rec["rule"]), Text(gain(rec), style="bold"),
             Text(rec["confidence"], style=CONFIDENCE_STYLE[rec["confidence"]]),
             Text(rec["risk"], style=LEVEL_STYLE[rec["risk"]]), Text(pct(rec["share_pct"])),
             Text(SECURITY, style="bold red") if rec["weakens_security"] else Text(""))
            for rec in recs]
    return Listing(columns, rows, title=Text("Recommendations", style="bold"), show_edge=False, collapse_padding=True)


def recommendation(rec: dict, highlight: bool = True) -> Panel:
    """One recommendation as a panel (also what a notebook shows for a Recommendation)."""
    return _panel(printable_data(rec), highlight)


def _panel(rec: dict, highlight: bool) -> Panel:
    parts: list[RenderableType] = []
    facts = Text()
    facts.append(f"{rec['category']} · {rec['basis'].replace('_', ' ')} · tier {rec['tier']}")
    facts.append(" · confidence ")
    facts.append(rec["confidence"], style=CONFIDENCE_STYLE[rec["confidence"]])
    facts.append(" · risk ").append(rec["risk"], style=LEVEL_STYLE[rec["risk"]])
    facts.append(f" · share {pct(rec['share_pct'])} × removable fraction r = {rec['removable']:g}")
    parts.append(facts)
    if rec["weakens_security"]:
        # ASCII '!', not U+26A0: terminals disagree on the width of the warning sign and break the border
        parts.append(Text("! weakens security: read the caveat and the commands before applying",
                          style="bold red"))
    parts.append(Rows([(Text("•"), Text(item)) for item in rec["evidence"]], label_style="dim"))
    parts += _shell("commands", rec["commands"], highlight)
    parts += _shell("rollback", rec["rollback"], highlight)
    if rec["caveat"]:
        parts.append(Text.assemble(("caveat ", "bold"), rec["caveat"]))
    parts.append(Text.assemble(("case study ", "dim bold"), (reference(rec), "dim")))
    title = Text.assemble((f"{rec['rank']}. ", "bold"), (rec["rule"], "bold cyan"), " ", rec["title"])
    subtitle = Text(gain(rec), style="bold")
    border = "red" if rec["weakens_security"] else "blue"
    return Panel(Group(*parts), title=title, title_align="left", subtitle=subtitle, subtitle_align="right",
                 border_style=border, box=box.ROUNDED)


def _shell(label: str, commands: list[str], highlight: bool) -> list[RenderableType]:
    heading = Text(label, style="bold")
    if not commands:
        return [heading.append(" none", style="dim")]
    text = Text("\n".join(commands))
    if highlight:
        for pattern, style in SHELL_STYLES:
            text.highlight_regex(pattern, style)
    return [heading, text]


def prepare(console: Console) -> None:
    """Pay now the one-off cost of the report's first rendering on `console`, for a caller with
    time to spare before the result exists (`advise analyze`, while perf is still writing): the
    table of character widths (~1 ms) and the highlighting's regular expressions."""
    import io

    scratch = Console(file=io.StringIO(), color_system=console.color_system, width=40)
    widths = Text("tier 1 · share 5.0% × r = 0.5 – •")  # the report's non-ASCII characters
    scratch.print(widths, *_shell("x", ["sysctl -w a.b=$((1)) -x '<y>' | z   # c"], console.color_system is not None))


def _collectors(collectors: dict) -> list[RenderableType]:
    """One line per collector of a live run (cut to the width: the JSON report has every word)."""
    if not collectors:
        return []
    width = max(len(name) for name in collectors) + 1
    lines: list[RenderableType] = [Text("Collectors", style="bold")]
    for name, entry in collectors.items():
        lines.append(Text.assemble((f"  {name + ':':<{width}} ", "bold"),
                                   (f"{entry['status']:<11} ", STATUS_STYLE.get(entry["status"], "")),
                                   (entry["detail"], "dim"), no_wrap=True, overflow="ellipsis"))
    return lines


def _dim_list(heading: str, entries: list[tuple[str, str]]) -> list[RenderableType]:
    if not entries:
        return []
    listing = Rows([(Text(f"  {rule}:"), Text(reason)) for rule, reason in entries], label_style="dim bold",
                   text_style="dim")
    return [Text(heading, style="dim bold"), listing]
