"""Markdown report: a summary, the ranked table, one section per recommendation, then the rest.

Meant for tickets and pull requests: commands sit in ```sh blocks so they can be copied as they are.
Free text (titles, evidence, reasons) is escaped so symbol names never turn into emphasis or links.
"""

from __future__ import annotations

import re

from advisor.report import bottleneck, gain, load, one_line, pct, printable, reference, samples

TOP_ROWS = 10


def render(result: dict) -> str:
    """The whole report as Markdown text ending with a newline."""
    profile, recs = result["profile"], result["recommendations"]
    out = ["# advisor report", ""]
    out += _summary(result, profile)
    out += _top(profile["top"])
    out += ["## Recommendations", ""]
    if recs:
        out += _table(recs)
        for rec in recs:
            out += _section(rec)
    else:
        out += ["No recommendation: no rule found a remedy in this profile.", ""]
    out += _listing("Not evaluated", [f"{_code(e['rule'])}: {_text(e['reason'])}"
                                      for e in result["not_evaluated"]])
    out += _listing("Collectors", [f"{_code(name)} **{entry['status']}**: {_text(entry['detail'])}"
                                   for name, entry in (result.get("collectors") or {}).items()])
    out += _listing("Clean", [_clean_item(entry) for entry in result["clean"]])
    out += _listing("Warnings", [_text(warning) for warning in result["warnings"]])
    return "\n".join(out).rstrip("\n") + "\n"


def _clean_item(entry: dict) -> str:
    share = "" if entry["share_pct"] is None else f" (share {pct(entry['share_pct'])})"
    return f"{_code(entry['rule'])}{share}: {_text(entry['reason'])}"


def _summary(result: dict, profile: dict) -> list[str]:
    lines = [f"**Source:** {_code(result['source'])} · {_text(samples(profile))} · "
             f"**busy {pct(profile['busy_pct'])}** · {_text(bottleneck(profile))}", ""]
    if profile["cpus"]:
        cpus = ", ".join(f"CPU {c['cpu']} {pct(c['busy_pct'])}" + (" (saturated)" if c["saturated"] else "")
                         for c in profile["cpus"])
        lines += [f"Per-CPU busy: {cpus}", ""]
    if load(result):
        lines += [f"Load during the recording: {_text(load(result))}", ""]
    filters = [f"{key} {_code(str(value))}" for key, value in profile["filters"].items() if value is not None]
    if filters:
        lines += ["Samples filtered to " + ", ".join(filters) + ".", ""]
    return lines


def _top(top: list[dict]) -> list[str]:
    if not top:
        return []
    lines = ["## Hottest functions", "", "| symbol | dso | self | inclusive |", "|---|---|---:|---:|"]
    for entry in top[:TOP_ROWS]:
        lines.append(_row([_code(entry["symbol"], in_table=True), _text(entry["dso"]),
                           pct(entry["self_pct"]), pct(entry["inclusive_pct"])]))
    return lines + [""]


def _table(recs: list[dict]) -> list[str]:
    lines = ["| # | rule | title | est. gain | confidence | risk | share |",
             "|---:|---|---|---:|---|---|---:|"]
    for rec in recs:
        lines.append(_row([str(rec["rank"]), _code(rec["rule"], in_table=True), _text(rec["title"]),
                           gain(rec), rec["confidence"],
                           rec["risk"] + (" ⚠ security" if rec["weakens_security"] else ""),
                           pct(rec["share_pct"])]))
    return lines + [""]


def _section(rec: dict) -> list[str]:
    lines = [f"### {rec['rank']}. {_text(rec['title'])} ({_code(rec['rule'])})", ""]
    lines += [f"Estimated gain **{gain(rec)}** of {rec['basis'].replace('_', ' ')} "
              f"(tier {rec['tier']}, confidence {rec['confidence']}) · risk **{rec['risk']}** · "
              f"share {pct(rec['share_pct'])} × removable fraction r = {rec['removable']:g} · "
              f"{_text(rec['category'])}", ""]
    if rec["weakens_security"]:
        lines += ["**⚠ Weakens security: read the caveat and the commands before applying this.**", ""]
    lines += ["Evidence:", ""] + [f"- {_text(item)}" for item in rec["evidence"]] + [""]
    if rec["matched"]:
        matched = ", ".join(f"{_code(m['symbol'])} {pct(m['share_pct'])}" for m in rec["matched"])
        lines += [f"Matched: {matched}", ""]
    lines += [f"Model: {_text(rec['model'])}", ""]
    lines += ["Commands:", ""] + _shell(rec["commands"])
    lines += ["Rollback:", ""] + _shell(rec["rollback"])
    if rec["caveat"]:
        lines += [f"Caveat: {_text(rec['caveat'])}", ""]
    lines += [f"Case study: {_text(reference(rec))}", ""]
    return lines


def _shell(commands: list[str]) -> list[str]:
    """A ```sh block whose fence is longer than any backtick run inside (so it cannot close early)."""
    if not commands:
        return ["(none)", ""]
    body = printable("\n".join(commands))
    fence = "`" * max(3, _longest_run(body, "`") + 1)
    return [f"{fence}sh", body, fence, ""]


def _listing(heading: str, items: list[str]) -> list[str]:
    if not items:
        return []
    return [f"## {heading}", ""] + [f"- {item}" for item in items] + [""]


def _row(cells: list[str]) -> str:
    return "| " + " | ".join(cells) + " |"


def _text(text: str) -> str:
    """Free text on one line, with what Markdown would read as markup escaped (also '|', for tables).

    '_' is escaped only where it could open or close emphasis (not between two letters or digits),
    so symbol names such as tcp_sendmsg stay readable in the raw file.
    """
    text = re.sub(r"([\\`*\[\]<>~|])", r"\\\1", one_line(printable(text)))
    return re.sub(r"(?<![A-Za-z0-9])_|_(?![A-Za-z0-9])", r"\\_", text)


def _code(text: str, in_table: bool = False) -> str:
    """An inline code span that survives backticks in the text, and '|' inside a table.

    In a table GFM splits cells before reading code spans, so '|' needs its backslash even there.
    """
    text = one_line(printable(text))
    if in_table:
        text = text.replace("|", "\\|")
    ticks = "`" * (_longest_run(text, "`") + 1)
    pad = " " if text.startswith("`") or text.endswith("`") else ""
    return f"{ticks}{pad}{text}{pad}{ticks}"


def _longest_run(text: str, char: str) -> int:
    return max((len(run) for run in re.findall(f"{re.escape(char)}+", text)), default=0)
