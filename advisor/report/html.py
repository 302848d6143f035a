"""HTML report: one self-contained page (inline CSS, SVG and JavaScript; nothing from the network).

Summary (samples, utilisation, per-CPU, where it ran), a bar chart of the estimated gains with
their ranges, the ranked table, the flame graph with each recommendation's frames in its colour
(searchable, click to zoom), each recommendation in detail (evidence, commands, rollback, risk,
the case study's reference), then what was not evaluated. Every piece of text is escaped: symbols carry <>&.

The fragments (`summary_html`, `recommendation_html`, `ranking_html`) also serve the notebook
views of `Result`, `Recommendation` and `Profile`.
"""

from __future__ import annotations

import html as _html

from . import bottleneck, gain, load, pct, printable, reference, samples
from .flamegraph import for_result

TOP_ROWS = 12
PROCESS_ROWS = 8
NEUTRAL = "#5b7fa6"  # bars of recommendations that have no frames of their own

CSS = """
body{font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,"DejaVu Sans",sans-serif;color:#1d1d1f;
 margin:0;background:#f4f5f7}
main{max-width:1240px;margin:0 auto;padding:16px 20px 40px}
h1{font-size:22px;margin:8px 0 2px}h2{font-size:18px;margin:28px 0 8px;border-bottom:1px solid #ddd;
 padding-bottom:4px}h3{font-size:16px;margin:0 0 6px}
.muted{color:#666}.card{background:#fff;border:1px solid #dcdfe4;border-radius:6px;padding:12px 16px;
 margin:10px 0}
table{border-collapse:collapse;width:100%}th,td{text-align:left;padding:4px 8px;border-bottom:1px solid #eee;
 vertical-align:top}th{background:#fafafa;font-weight:600}td.num,th.num{text-align:right;
 font-variant-numeric:tabular-nums;white-space:nowrap}
code,pre{font-family:"DejaVu Sans Mono",Menlo,Consolas,monospace;font-size:12.5px}
pre{background:#1e2430;color:#e8e8e8;padding:8px 10px;border-radius:4px;overflow-x:auto;white-space:pre-wrap;
 word-break:break-all}
.facts th{width:130px;background:none;border:none;padding:2px 8px 2px 0}.facts td{border:none;padding:2px 0}
.bar{display:inline-block;height:10px;background:#5b7fa6;border-radius:2px;vertical-align:middle;margin-right:6px}
.bar.hot{background:#d62728}
.swatch{display:inline-block;width:11px;height:11px;border-radius:2px;margin-right:6px;vertical-align:-1px;
 border:1px solid rgba(0,0,0,.3)}
.pill{display:inline-block;padding:0 7px;border-radius:9px;font-size:12px;background:#eef;margin-right:4px}
.risk-high,.conf-low{background:#fde2e1}.risk-medium,.conf-medium{background:#fff3cd}
.risk-low,.conf-high{background:#e1f5e1}
.security{background:#fde2e1;border-left:4px solid #d62728;padding:6px 10px;margin:8px 0;font-weight:600}
.gain{font-size:17px;font-weight:700;float:right}
.rec ul{margin:4px 0 8px;padding-left:20px}.caveat{margin:6px 0}
.fg-box{overflow-x:auto;background:#fff;border:1px solid #dcdfe4;border-radius:6px;padding:8px}
.fg-controls{margin:0 0 6px}.fg-controls input{width:300px;padding:3px 6px}.fg-status{color:#555;margin-left:8px}
svg.gains text{font-size:12px}
"""


def e(text) -> str:
    """Escape any value for HTML text and attribute values (control characters as `\\x1b`: no
    XML holds them, and a saved page is read as text too)."""
    return _html.escape(printable("" if text is None else str(text)), quote=True)


def render(result) -> str:
    """The whole report for an analysis `Result` as one HTML document (str)."""
    data = result.data
    graph = for_result(result)
    colours = {h.rule: h.colour for h in graph.highlights}  # rules without frames of their own: neutral
    parts = [
        "<!doctype html>", '<html lang="en"><head><meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>advisor report: {e(data['source'])}</title><style>{CSS}</style></head><body><main>",
        f'<h1>advisor report</h1><p class="muted">{e(data["source"])} · {e(data["generated_by"])}</p>',
        '<section id="summary"><h2>Summary</h2>', summary_html(data, result.profile), "</section>",
        '<section id="gains"><h2>Estimated gains</h2>', gains_chart(data["recommendations"], colours),
        "</section>",
        '<section id="recommendations"><h2>Recommendations</h2>', ranking_html(data["recommendations"], colours),
        "</section>", '<section id="flamegraph"><h2>Flame graph</h2>',
        '<p class="muted">Busy samples only. Each recommendation\'s matched frames are in its colour, '
        "the frames they call in a tint of it. Hover for samples and share, click a frame to zoom "
        "(double-click or <i>reset zoom</i> to go back), search with a regular expression.</p>",
        graph.html(), "</section>", '<section id="details"><h2>Recommendations in detail</h2>',
    ]
    parts += [recommendation_html(rec, colours.get(rec["rule"])) for rec in data["recommendations"]]
    parts.append("</section>")
    parts += _rest(data)
    parts.append("</main></body></html>\n")
    return "\n".join(parts)


# ----------------------------------------------------------------------------- summary

def _bar(value: float | None, scale: float = 1.5, hot: bool = False) -> str:
    if value is None:  # unknown: no bar
        return ""
    return f'<span class="bar{" hot" if hot else ""}" style="width:{max(value, 0) * scale:.0f}px"></span>'


def summary_html(data: dict, profile=None) -> str:
    """Facts about the recording, per-CPU utilisation, where it ran, the hottest functions."""
    p = data["profile"]
    rows = [("source", e(data["source"])), ("samples", e(samples(p)))]
    if load(data):
        rows.append(("load", e(load(data))))
    rows.append(("utilisation", f"{_bar(p['busy_pct'])}<b>{pct(p['busy_pct'])}</b> busy "
                                f"({p['busy_samples']:,} busy samples)"))
    if p["cpus"]:
        cpus = "<br>".join(f"{_bar(c['busy_pct'], hot=c['saturated'])}cpu{c['cpu']} {pct(c['busy_pct'])}"
                           + (" <b>saturated</b>" if c["saturated"] else "") for c in p["cpus"])
    else:
        cpus = '<span class="muted">not recorded</span>'
    rows += [("per-CPU busy", cpus), ("bottleneck", e(bottleneck(p)))]
    if profile is not None:
        procs = profile.process_stats()[:PROCESS_ROWS]
        where = "<br>".join(f"{_bar(b)}{e(c)} {b:.1f}% ({n:,} samples)" for c, b, n in procs)
        rows.append(("where it ran", where or '<span class="muted">no busy samples</span>'))
    filters = [f"{k}={v}" for k, v in p["filters"].items() if v is not None]
    if filters:
        rows.append(("filters", e(" ".join(filters))))
    facts = "".join(f"<tr><th>{name}</th><td>{value}</td></tr>" for name, value in rows)
    out = [f'<div class="card"><table class="facts">{facts}</table></div>']
    if p["top"]:
        out.append(top_html(p["top"]))
    return "\n".join(out)


def top_html(top: list[dict]) -> str:
    rows = "".join(f'<tr><td class="num">{pct(t["self_pct"])}</td><td class="num">{pct(t["inclusive_pct"])}</td>'
                   f'<td class="num">{t["samples"]:,}</td><td><code>{e(t["symbol"])}</code></td>'
                   f'<td class="muted">{e(t["dso"])}</td></tr>' for t in top[:TOP_ROWS])
    return ('<div class="card"><h3>Hottest functions</h3><table id="top"><thead><tr><th class="num">self</th>'
            '<th class="num">inclusive</th><th class="num">samples</th><th>symbol</th><th>dso</th></tr></thead>'
            f"<tbody>{rows}</tbody></table></div>")


# ----------------------------------------------------------------------------- recommendations

def ranking_html(recs: list[dict], colours: dict | None = None) -> str:
    """The ranked table, one row per recommendation, linking to its section."""
    if not recs:
        return "<p><b>No recommendation:</b> no rule found a remedy in this profile.</p>"
    colours = colours or {}
    rows = []
    for rec in recs:
        swatch = f'<span class="swatch" style="background:{colours[rec["rule"]]}"></span>' \
            if rec["rule"] in colours else ""
        security = '<span class="pill risk-high">weakens security</span>' if rec["weakens_security"] else ""
        rows.append(f'<tr><td class="num">{rec["rank"]}</td><td>{swatch}<a href="#rec-{e(rec["rule"])}">'
                    f'<code>{e(rec["rule"])}</code></a></td><td>{e(rec["title"])}</td>'
                    f'<td class="num"><b>{e(gain(rec))}</b></td>'
                    f'<td><span class="pill conf-{e(rec["confidence"])}">{e(rec["confidence"])}</span></td>'
                    f'<td><span class="pill risk-{e(rec["risk"])}">{e(rec["risk"])}</span>{security}</td>'
                    f'<td class="num">{pct(rec["share_pct"])}</td></tr>')
    return ('<table id="ranking"><thead><tr><th class="num">#</th><th>rule</th><th>title</th>'
            '<th class="num">est. gain (range)</th><th>confidence</th><th>risk</th><th class="num">share</th>'
            f'</tr></thead><tbody>{"".join(rows)}</tbody></table>')


def _commands(label: str, commands: list[str]) -> str:
    if not commands:
        return f'<p><b>{label}</b> <span class="muted">none</span></p>'
    return f"<p><b>{label}</b></p><pre>{e(chr(10).join(commands))}</pre>"


def recommendation_html(rec: dict, colour: str | None = None) -> str:
    """One recommendation as a card: gain, evidence, matched frames, commands, rollback, risk."""
    swatch = f'<span class="swatch" style="background:{colour}"></span>' if colour else ""
    basis = rec["basis"].replace("_", " ")
    out = [f'<article class="card rec" id="rec-{e(rec["rule"])}">',
           f'<span class="gain">{e(gain(rec))}</span>',
           f'<h3>{swatch}{rec["rank"]}. <code>{e(rec["rule"])}</code> {e(rec["title"])}</h3>',
           f'<p class="muted">{e(rec["category"])} · {e(basis)} · tier {e(rec["tier"])} · '
           f'<span class="pill conf-{e(rec["confidence"])}">confidence {e(rec["confidence"])}</span>'
           f'<span class="pill risk-{e(rec["risk"])}">risk {e(rec["risk"])}</span> · '
           f'share {pct(rec["share_pct"])}, '
           f'removable fraction r = {rec["removable"]:g} · model {e(rec["model"])}</p>']
    if rec["weakens_security"]:
        out.append('<div class="security">⚠ Weakens security: read the caveat and the commands before '
                   "applying.</div>")
    out.append("<p><b>Evidence</b></p><ul>" + "".join(f"<li>{e(item)}</li>" for item in rec["evidence"]) + "</ul>")
    if rec["matched"]:
        out.append("<p><b>Matched frames</b> " + ", ".join(
            f'<code>{e(m["symbol"])}</code> {pct(m["share_pct"])}' for m in rec["matched"]) + "</p>")
    out += [_commands("Commands", rec["commands"]), _commands("Rollback", rec["rollback"])]
    if rec["caveat"]:
        out.append(f'<p class="caveat"><b>Caveat</b> {e(rec["caveat"])}</p>')
    out.append(f'<p class="muted"><b>Case study</b> {e(reference(rec))}</p></article>')
    return "\n".join(out)


def _rest(data: dict) -> list[str]:
    out = []
    for title, key, text in (("Not evaluated", "not_evaluated", lambda x: x["reason"]),
                             ("Clean", "clean", lambda x: ("" if x["share_pct"] is None else
                                                           f"share {pct(x['share_pct'])}: ") + x["reason"])):
        if data[key]:
            items = "".join(f"<li><code>{e(x['rule'])}</code>: {e(text(x))}</li>" for x in data[key])
            out.append(f'<section id="{key.replace("_", "-")}"><h2>{title}</h2><ul>{items}</ul></section>')
    if data["warnings"]:
        items = "".join(f"<li>{e(w)}</li>" for w in data["warnings"])
        out.append(f'<section id="warnings"><h2>Warnings</h2><ul>{items}</ul></section>')
    return out


# ----------------------------------------------------------------------------- notebook views

def scoped_css(scope: str) -> str:
    """CSS with every selector inside `scope`, so a notebook page keeps its own styles."""
    rules = []
    for block in CSS.split("}"):
        if "{" not in block:
            continue
        selectors, body = block.split("{", 1)
        scoped = ",".join(scope if s.strip() == "body" else f"{scope} {s.strip()}" for s in selectors.split(","))
        rules.append(f"{scoped}{{{body}}}")
    return "".join(rules)


def notebook_view(inner: str) -> str:
    """Wrap a fragment for Jupyter: its styles apply inside it only."""
    return f'<div class="advisor-nb"><style>{scoped_css(".advisor-nb")}</style>{inner}</div>'


def result_view(result, details: int = 3) -> str:
    """An analysis in a notebook: summary, gains chart, ranking, the first recommendations."""
    data = result.data
    recs = data["recommendations"]
    parts = [summary_html(data, result.profile), gains_chart(recs), ranking_html(recs)]
    parts += [recommendation_html(rec) for rec in recs[:details]]
    if len(recs) > details:
        parts.append(f'<p class="muted">{len(recs) - details} more: result.recommendation("rule id"); '
                     "the flame graph: result.flamegraph()</p>")
    if data["not_evaluated"]:
        items = "".join(f"<li><code>{e(x['rule'])}</code>: {e(x['reason'])}</li>" for x in data["not_evaluated"])
        parts.append(f"<p><b>Not evaluated</b></p><ul>{items}</ul>")
    return notebook_view("\n".join(parts))


def profile_view(profile, top: int = 10) -> str:
    """A profile in a notebook: utilisation, per CPU, where it ran, the hottest functions."""
    cpu_text = ", ".join(f"cpu{c} {b:.1f}%" + (" saturated" if s else "")
                         for c, _n, b, s in profile.cpu_stats()) or "not recorded"
    where = ", ".join(f"{c} {b:.1f}%" for c, b, _n in profile.process_stats()[:5])
    facts = [("source", profile.source), ("event", profile.event),
             ("samples", f"{profile.samples:,} ({profile.busy_samples:,} busy)"),
             ("utilisation", f"{profile.busy_pct:.1f}% busy"), ("per-CPU busy", cpu_text), ("where it ran", where)]
    rows = "".join(f"<tr><th>{e(k)}</th><td>{e(v)}</td></tr>" for k, v in facts)
    listing = [{"symbol": r.symbol, "dso": r.dso, "self_pct": r.self_pct, "inclusive_pct": r.inclusive_pct,
                "samples": r.self_samples} for r in profile.top_symbols(top)]
    return notebook_view(f'<div class="card"><table class="facts">{rows}</table></div>' + top_html(listing))


# ----------------------------------------------------------------------------- gains chart

def _ticks(top: float) -> list[float]:
    """Round tick values from 0 to at least `top` (about five of them)."""
    top = max(top, 1.0)
    raw = top / 5
    magnitude = 10 ** len(str(int(raw))) / 10 if raw >= 1 else 0.1
    step = next(m * magnitude for m in (1, 2, 2.5, 5, 10) if m * magnitude >= raw)
    count = int(-(-top // step))
    return [round(i * step, 6) for i in range(count + 1)]


def gains_chart(recs: list[dict], colours: dict | None = None, width: int = 900) -> str:
    """Horizontal bars of the estimated gains with their low–high ranges (inline SVG)."""
    if not recs:
        return '<p class="muted">No recommendation, so no gain to chart.</p>'
    colours = colours or {}
    label_w, value_w, row_h, top = 190, 130, 26, 8
    ticks = _ticks(max(max(r["gain_high_pct"], r["estimated_gain_pct"]) for r in recs))
    span = ticks[-1] or 1.0
    plot_w = width - label_w - value_w
    height = top + len(recs) * row_h + 28
    x = lambda v: label_w + max(v, 0.0) / span * plot_w
    out = [f'<svg xmlns="http://www.w3.org/2000/svg" class="gains" role="img" viewBox="0 0 {width} {height}" '
           f'width="100%" style="max-width:{width}px" font-family="system-ui, DejaVu Sans, sans-serif">',
           "<title>Estimated gain per recommendation, with its range</title>"]
    for t in ticks:
        out.append(f'<line x1="{x(t):.1f}" x2="{x(t):.1f}" y1="{top}" y2="{height - 22}" stroke="#e3e3e3"/>'
                   f'<text x="{x(t):.1f}" y="{height - 8}" text-anchor="middle" fill="#666">{t:g}%</text>')
    for i, rec in enumerate(recs):
        y = top + i * row_h
        colour = colours.get(rec["rule"], NEUTRAL)
        g, lo, hi = rec["estimated_gain_pct"], rec["gain_low_pct"], rec["gain_high_pct"]
        mid = y + row_h / 2
        out.append(f'<g class="gain-row" data-rule="{e(rec["rule"])}"><title>{e(rec["rule"])}: {e(gain(rec))}'
                   f"</title>"
                   f'<text x="{label_w - 8}" y="{mid + 4:.1f}" text-anchor="end">{e(rec["rule"])}</text>'
                   f'<rect x="{label_w}" y="{y + 5}" width="{max(x(g) - label_w, 1):.1f}" height="{row_h - 10}" '
                   f'fill="{colour}" rx="2"/>'
                   f'<line x1="{x(lo):.1f}" x2="{x(hi):.1f}" y1="{mid:.1f}" y2="{mid:.1f}" stroke="#222" '
                   f'stroke-width="1.5"/>'
                   f'<line x1="{x(lo):.1f}" x2="{x(lo):.1f}" y1="{mid - 5:.1f}" y2="{mid + 5:.1f}" stroke="#222"/>'
                   f'<line x1="{x(hi):.1f}" x2="{x(hi):.1f}" y1="{mid - 5:.1f}" y2="{mid + 5:.1f}" stroke="#222"/>'
                   f'<text x="{width - value_w + 8}" y="{mid + 4:.1f}">{e(gain(rec))}</text></g>')
    out.append("</svg>")
    return "".join(out)
