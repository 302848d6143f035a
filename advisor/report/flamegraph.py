"""Flame graph of a profile's busy samples as one self-contained SVG, recommendations highlighted.

Stacks are merged into a tree (process name, then frames root first); a frame's width is its
busy weight. A frame that made a stack count for a recommended rule (the engine's own
`match_stack`, with the rule's symbols, `under`, `exclude_below` and mode, on the same CPUs and
processes the engine counted) is drawn in that rule's colour, the frames it called in a tint of
it; every other frame is coloured by kind (kernel, user, JIT). Each rectangle carries a
<title> tooltip: symbol, samples, percent of busy time.

The SVG needs nothing from the network. `SCRIPT` (inline JavaScript, used by the HTML report
and by notebooks) adds search and click-to-zoom; without it the tooltips still work.
"""

from __future__ import annotations

import html
import zlib
from dataclasses import dataclass, field
from pathlib import Path

from ..engine.evaluate import target_program
from ..engine.match import SymbolFamily, match_stack
from ..profile import comm_family
from . import printable

WIDTH = 1200
FRAME_HEIGHT = 16
FONT_SIZE = 11
CHAR_WIDTH = FONT_SIZE * 0.59  # Verdana-ish average advance, as FlameGraph estimates it
PAD = 10
MIN_WIDTH = 0.25  # px: narrower frames (and their callees) are left out, as FlameGraph's --minwidth
LEGEND_ROW = 18
UNKNOWN = "[unknown]"

#: Strong colours for rules, in rank order; pale ones (below) are for everything else.
RULE_COLOURS = ("#d62728", "#7b3fb8", "#0b8a8a", "#c2188b", "#8c564b", "#1f5fb4", "#2b8a2b",
                "#b8860b", "#e6550d", "#393b79")
#: (hue, saturation %, lightness % low, high) per frame kind.
KIND_HSL = {"kernel": (28, 85, 68, 80), "user": (205, 60, 70, 82), "jit": (110, 45, 66, 78),
            "bpf": (275, 40, 72, 84), "inlined": (205, 60, 70, 82), "unknown": (0, 0, 78, 86),
            "comm": (45, 10, 84, 88), "root": (0, 0, 88, 88)}
KIND_LEGEND = (("kernel", "kernel"), ("user", "user"), ("jit", "JIT"), ("unknown", "unknown / other"))


@dataclass(frozen=True)
class Highlight:
    """One rule's matching, as the engine does it, and how to draw it."""

    rule: str
    symbols: SymbolFamily
    under: SymbolFamily
    exclude_below: SymbolFamily
    mode: str
    colour: str
    label: str
    cpus: frozenset | None = None  # only samples on these CPUs count (the engine's bottleneck)
    comms: SymbolFamily | None = None  # only these processes count (rules that change one program)

    @classmethod
    def from_rule(cls, rule, colour: str, label: str | None = None, cpus=None, comms=None) -> "Highlight":
        return cls(rule.id, rule.symbols, rule.under, rule.exclude_below, rule.mode, colour,
                   label or rule.id, frozenset(cpus) if cpus is not None else None,
                   comm_family(comms) if comms else None)


@dataclass
class Node:
    name: str
    kind: str
    role: str  # 'root' | 'comm' | 'frame' | 'matched' (the rule's frame) | 'under' (called by one)
    rule: str | None = None
    weight: float = 0.0
    samples: int = 0
    children: dict = field(default_factory=dict)

    def child(self, name: str, kind: str, role: str, rule: str | None) -> "Node":
        key = (name, role, rule)
        node = self.children.get(key)
        if node is None:
            node = self.children[key] = Node(name, kind, role, rule)
        return node

    @property
    def depth(self) -> int:
        """Levels below and including this node (a loop, not recursion: stacks may be deeper
        than Python's recursion limit)."""
        deepest, todo = 0, [(self, 1)]
        while todo:
            node, level = todo.pop()
            deepest = max(deepest, level)
            todo.extend((child, level + 1) for child in node.children.values())
        return deepest


def build_tree(profile, highlights: list[Highlight] = (), collapse_unknown: bool = True) -> Node:
    """Merge the profile's busy stacks into a tree, marking where each highlight matched.

    With `collapse_unknown`, a run of consecutive `[unknown]` frames (an unwinder walking
    garbage) is drawn as one frame; matching always sees the stack as recorded.
    """
    grouped = profile.busy_sums_by("stack", "comm", "cpu")  # -> [weight, samples]
    root = Node("all", "root", "root")
    matches: dict[tuple[int, int], int] = {}
    for (stack, comm, cpu), (weight, count) in grouped.items():
        weight = float(weight)
        symbols, frames = profile.stacks[stack], profile.stack_frames[stack]
        matched_at: dict[int, str] = {}
        for h_index, h in enumerate(highlights):
            if h.cpus is not None and int(cpu) not in h.cpus:
                continue
            if h.comms is not None and not h.comms.matches(comm):
                continue
            key = (int(stack), h_index)
            if key not in matches:
                matches[key] = match_stack(symbols, h.symbols, h.under, h.exclude_below, h.mode == "self")
            if matches[key] >= 0:
                matched_at.setdefault(matches[key], h.rule)
        node = root
        node.weight += weight
        node.samples += count
        node = node.child(comm, "comm", "comm", None)
        node.weight += weight
        node.samples += count
        inside = None
        previous = None
        for i, frame in enumerate(frames):
            if i in matched_at:
                role, rule = "matched", matched_at[i]
                inside = rule
            elif inside is not None:
                role, rule = "under", inside
            else:
                role, rule = "frame", None
            if collapse_unknown and frame.symbol == UNKNOWN and previous == UNKNOWN and role != "matched":
                continue
            previous = frame.symbol
            node = node.child(frame.symbol, frame.kind, role, rule)
            node.weight += weight
            node.samples += count
    return root


# ----------------------------------------------------------------------------- colours

def kind_colour(kind: str, name: str) -> str:
    """A pale colour for the frame's kind, its lightness varied by the name so neighbours differ."""
    hue, sat, low, high = KIND_HSL.get(kind, KIND_HSL["unknown"])
    jitter = (zlib.crc32(name.encode("utf-8", "surrogateescape")) % 1000) / 1000.0
    return f"hsl({hue},{sat}%,{low + (high - low) * jitter:.0f}%)"


def tint(colour: str, amount: float = 0.6) -> str:
    """Mix a #rrggbb colour with white."""
    r, g, b = (int(colour[i:i + 2], 16) for i in (1, 3, 5))
    mix = lambda c: round(c + (255 - c) * amount)
    return f"#{mix(r):02x}{mix(g):02x}{mix(b):02x}"


def rule_colours(rule_ids) -> dict[str, str]:
    """Each rule its colour, in the order given (rank order), cycling when there are many."""
    return {rule: RULE_COLOURS[i % len(RULE_COLOURS)] for i, rule in enumerate(rule_ids)}


# ----------------------------------------------------------------------------- SVG

def _fit(label: str, width: float) -> str:
    chars = int((width - 6) / CHAR_WIDTH)
    if chars < 3:
        return ""
    return label if len(label) <= chars else label[:chars - 2] + ".."


def _e(text: str) -> str:
    """For SVG text and attributes: XML holds no control character (a saved .svg would not open)."""
    return html.escape(printable(text), quote=True)


class FlameGraph:
    """A rendered flame graph: `.svg` (the SVG text), `.html()` (with search and zoom controls).

    Shows itself inline in Jupyter; `save('x.svg')` or `save('x.html')` writes a file that
    opens without network access.
    """

    def __init__(self, root: Node, highlights: list[Highlight] = (), title: str = "Flame graph",
                 width: int = WIDTH):
        self.root = root
        self.highlights = list(highlights)
        self.title = title
        self.width = width
        self.svg = self._render()

    # -- geometry and drawing
    def _render(self) -> str:
        width, root = self.width, self.root
        legend_rows = (1 if self.highlights else 0) + 1
        graph_top = 30 + legend_rows * LEGEND_ROW + 6
        depth = root.depth
        height = graph_top + depth * FRAME_HEIGHT + PAD + 16
        scale = (width - 2 * PAD) / root.weight if root.weight else 0.0
        colours = {h.rule: h.colour for h in self.highlights}
        out = [f'<svg xmlns="http://www.w3.org/2000/svg" class="advisor-flamegraph" version="1.1" '
               f'width="{width}" height="{height}" viewBox="0 0 {width} {height}" '
               f'data-width="{width}" data-pad="{PAD}" data-font="{FONT_SIZE}" '
               f'data-weight="{root.weight:.0f}" data-samples="{root.samples}" '
               f'font-family="Verdana, DejaVu Sans, sans-serif" font-size="{FONT_SIZE}">',
               "<style>.advisor-flamegraph .f:hover rect{stroke:#000;stroke-width:0.6}"
               ".advisor-flamegraph .f{cursor:pointer}.advisor-flamegraph text{pointer-events:none}"
               ".advisor-flamegraph .fg-anc{opacity:0.55}.advisor-flamegraph .fg-hide{display:none}"
               "</style>",
               f'<rect x="0" y="0" width="{width}" height="{height}" fill="#fbfbfb"/>',
               f'<text x="{width / 2:.0f}" y="20" text-anchor="middle" font-size="15">{_e(self.title)}</text>']
        out += self._legend(30)
        out.append('<g class="frames">')
        if root.weight:
            self._draw(root, PAD, 0, scale, graph_top + (depth - 1) * FRAME_HEIGHT, root.weight, colours, out)
        out.append("</g>")
        out.append(f'<text x="{PAD}" y="{height - 6}" fill="#666">{root.samples:,} busy samples; '
                   f'width = busy time; frames under {MIN_WIDTH} px are left out</text>')
        out.append("</svg>")
        return "\n".join(out)

    def _legend(self, y: float) -> list[str]:
        out = ['<g class="legend">']
        rows = []
        if self.highlights:
            rows.append([(h.colour, h.label, h.rule) for h in self.highlights])
        rows.append([(kind_colour(kind, "legend"), text, None) for kind, text in KIND_LEGEND]
                    + ([(tint(self.highlights[0].colour), "called by a rule's frame", None)]
                       if self.highlights else []))
        for row in rows:
            x = PAD
            for colour, text, rule in row:
                attr = f' data-rule="{_e(rule)}"' if rule else ""
                out.append(f'<g class="legend-item"{attr}><rect x="{x}" y="{y}" width="12" height="12" '
                           f'fill="{colour}" stroke="#444" stroke-width="0.5"/>'
                           f'<text x="{x + 16}" y="{y + 10}">{_e(text)}</text></g>')
                x += 16 + len(text) * CHAR_WIDTH + 18
            y += LEGEND_ROW
        out.append("</g>")
        return out

    def _draw(self, root: Node, x: float, d: int, scale: float, y: float, total: float,
              colours: dict, out: list) -> None:
        """Each frame, then its children left to right, depth first (in a loop, not by recursion:
        a folded stack may be 50,000 frames deep)."""
        todo = [(root, x, d, y)]
        while todo:
            node, x, d, y = todo.pop()
            children = self._draw_frame(node, x, d, scale, y, total, colours, out)
            todo.extend(reversed(children))

    def _draw_frame(self, node: Node, x: float, d: int, scale: float, y: float, total: float,
                    colours: dict, out: list) -> list[tuple]:
        """One frame's SVG; returns its children to draw, with their places, in order."""
        w = node.weight * scale
        if w < MIN_WIDTH:
            return []
        if node.role == "matched":
            fill, text_fill = colours[node.rule], "#fff"
        elif node.role == "under":
            fill, text_fill = tint(colours[node.rule]), "#000"
        else:
            fill, text_fill = kind_colour(node.kind, node.name), "#000"
        pct = 100.0 * node.weight / total
        tip = f"{node.name}\n{node.kind} · {node.samples:,} samples · {pct:.2f}% of busy time"
        if node.role == "matched":
            tip += f"\nmatched by rule {node.rule}"
        elif node.role == "under":
            tip += f"\ncalled from a frame rule {node.rule} matched"
        rule_attr = f' data-rule="{_e(node.rule)}" data-role="{node.role}"' if node.rule else ""
        label = _fit(node.name, w)
        text = (f'<text x="{x + 3:.1f}" y="{y + FRAME_HEIGHT - 4.5:.1f}" fill="{text_fill}">{_e(label)}</text>'
                if label else "")
        out.append(f'<g class="f" data-d="{d}" data-n="{_e(node.name)}"{rule_attr}><title>{_e(tip)}</title>'
                   f'<rect x="{x:.2f}" y="{y:.1f}" width="{w:.2f}" height="{FRAME_HEIGHT - 1}" '
                   f'fill="{fill}" rx="1.5"/>{text}</g>')
        placed, child_x = [], x
        for child in sorted(node.children.values(), key=lambda c: (c.name, c.role, c.rule or "")):
            placed.append((child, child_x, d + 1, y - FRAME_HEIGHT))
            child_x += child.weight * scale
        return placed

    # -- views
    def html(self) -> str:
        """The SVG with a search box, a zoom reset and the script that drives them."""
        return (f'<div class="fg-box"><div class="fg-controls">'
                f'<input type="search" class="fg-search" placeholder="search frames (regex), Enter" '
                f'aria-label="search frames"> <button type="button" class="fg-reset">reset zoom</button> '
                f'<span class="fg-status"></span></div>{self.svg}</div><script>{SCRIPT}</script>')

    def _repr_html_(self) -> str:
        return self.html()

    def save(self, path) -> Path:
        """Write `.svg` (tooltips only) or `.html` (search and zoom too)."""
        path = Path(path)
        if path.suffix == ".html":
            text = (f'<!doctype html><html><head><meta charset="utf-8"><title>{_e(self.title)}</title>'
                    f'</head><body>{self.html()}</body></html>\n')
        else:
            text = '<?xml version="1.0" encoding="utf-8"?>\n' + self.svg + "\n"
        path.write_text(text, encoding="utf-8")
        return path

    def __repr__(self) -> str:
        return f"<FlameGraph {self.root.samples} samples, {len(self.highlights)} rules highlighted>"


def for_profile(profile, rules=(), *, cpus=None, comms=None, labels: dict | None = None,
                title: str | None = None, width: int = WIDTH) -> FlameGraph:
    """A flame graph of `profile`, the frames of each rule in `rules` (Rule objects) highlighted."""
    colours = rule_colours(r.id for r in rules)
    highlights = [Highlight.from_rule(r, colours[r.id], (labels or {}).get(r.id), cpus, comms)
                  for r in rules if r.symbols]
    tree = build_tree(profile, highlights)
    return FlameGraph(tree, highlights, title or f"Busy samples of {profile.source}", width)


def for_result(result, width: int = WIDTH) -> FlameGraph:
    """The flame graph of an analysis, each recommendation that matched frames in its colour.

    Matching uses the engine's CPUs (the bottleneck) and, for rules that change one program,
    that program only: the rule-coloured frames add up to the recommendation's share.
    """
    data = result.data
    cpus = data["profile"]["bottleneck"]["cpus"] or None
    colours = rule_colours(rec["rule"] for rec in data["recommendations"])
    target = target_program(result.evidence)
    highlights = []
    for rec in data["recommendations"]:
        rule = result.rules.get(rec["rule"])
        if rule is None or not rule.symbols:
            continue
        label = f"{rule.id} +{rec['estimated_gain_pct']:.1f}%"
        comms = target if rule.scope == "target" else None
        highlights.append(Highlight.from_rule(rule, colours[rule.id], label, cpus, comms))
    tree = build_tree(result.profile, highlights)
    return FlameGraph(tree, highlights, f"Busy samples of {data['source']}", width)


#: Search and click-to-zoom for every `.fg-box` on the page. Sets `data-advisor-ready` on <html>
#: once every flame graph is initialised (tests read it), and records script errors there too.
SCRIPT = r"""
(function () {
  "use strict";
  var doc = document.documentElement;
  window.addEventListener("error", function (e) {
    doc.setAttribute("data-advisor-error", String(e.message || e));
  });
  var SVGNS = "http://www.w3.org/2000/svg";
  var SEARCH_FILL = "#e040fb";

  function fit(label, width, font) {
    var chars = Math.floor((width - 6) / (font * 0.59));
    if (chars < 3) return "";
    return label.length <= chars ? label : label.slice(0, chars - 2) + "..";
  }

  function setup(box) {
    var svg = box.querySelector("svg.advisor-flamegraph");
    if (!svg || svg.getAttribute("data-ready")) return false;
    var W = +svg.getAttribute("data-width"), pad = +svg.getAttribute("data-pad");
    var font = +svg.getAttribute("data-font"), inner = W - 2 * pad;
    var frames = Array.prototype.map.call(svg.querySelectorAll("g.f"), function (g) {
      var r = g.querySelector("rect");
      return {g: g, r: r, t: g.querySelector("text"), x: +r.getAttribute("x"), y: +r.getAttribute("y"),
              w: +r.getAttribute("width"), d: +g.getAttribute("data-d"), n: g.getAttribute("data-n"),
              fill: r.getAttribute("fill")};
    });
    var status = box.querySelector(".fg-status"), input = box.querySelector(".fg-search");
    var reset = box.querySelector(".fg-reset");

    function label(f, x, w) {
      var text = fit(f.n, w, font);
      if (!f.t) {
        if (!text) return;
        f.t = document.createElementNS(SVGNS, "text");
        f.t.setAttribute("y", (f.y + 11.5).toFixed(1));
        f.g.appendChild(f.t);
      }
      f.t.setAttribute("x", (x + 3).toFixed(1));
      f.t.textContent = text;
    }

    function place(f, x, w) {
      f.r.setAttribute("x", x.toFixed(2));
      f.r.setAttribute("width", w.toFixed(2));
      label(f, x, w);
    }

    function zoom(target) {
      var x0 = target.x, w0 = target.w, k = inner / w0, eps = 1e-6;
      frames.forEach(function (f) {
        f.g.classList.remove("fg-hide", "fg-anc");
        if (f.d >= target.d && f.x >= x0 - eps && f.x + f.w <= x0 + w0 + eps) {
          place(f, pad + (f.x - x0) * k, f.w * k);
        } else if (f.d < target.d && f.x <= x0 + eps && f.x + f.w >= x0 + w0 - eps) {
          f.g.classList.add("fg-anc");
          place(f, pad, inner);
        } else {
          f.g.classList.add("fg-hide");
        }
      });
      svg.setAttribute("data-zoomed", target.n);
      if (reset) reset.disabled = false;
    }

    function unzoom() {
      frames.forEach(function (f) {
        f.g.classList.remove("fg-hide", "fg-anc");
        place(f, f.x, f.w);
      });
      svg.removeAttribute("data-zoomed");
      if (reset) reset.disabled = true;
    }

    function search(term) {
      var re = null, hits = [];
      if (term) {
        try { re = new RegExp(term); }
        catch (err) { re = new RegExp(term.replace(/[.*+?^${}()|[\]\\]/g, "\\$&")); }
      }
      frames.forEach(function (f) {
        var hit = re !== null && re.test(f.n);
        f.r.setAttribute("fill", hit ? SEARCH_FILL : f.fill);
        if (hit) { f.g.classList.add("fg-match"); hits.push(f); } else { f.g.classList.remove("fg-match"); }
      });
      // Share of busy time under any match: merge the matched intervals (callees nest inside callers).
      hits.sort(function (a, b) { return a.x - b.x; });
      var covered = 0, end = -Infinity;
      hits.forEach(function (f) {
        var s = Math.max(f.x, end), e = f.x + f.w;
        if (e > s) { covered += e - s; end = e; }
      });
      var pct = inner > 0 ? 100 * covered / inner : 0;
      svg.setAttribute("data-search", term || "");
      svg.setAttribute("data-search-pct", pct.toFixed(2));
      if (status) status.textContent = term ? ("matched " + pct.toFixed(1) + "% of busy time in " +
                                                hits.length + " frames") : "";
    }

    frames.forEach(function (f) {
      f.g.addEventListener("click", function () { zoom(f); });
    });
    if (reset) { reset.disabled = true; reset.addEventListener("click", unzoom); }
    if (input) {
      input.addEventListener("keydown", function (e) { if (e.key === "Enter") search(input.value); });
      input.addEventListener("search", function () { search(input.value); });
    }
    svg.addEventListener("dblclick", unzoom);
    box.advisor = {search: search, zoom: function (name) {
      var best = null;
      frames.forEach(function (f) { if (f.n === name && (!best || f.w > best.w)) best = f; });
      if (best) zoom(best);
      return best !== null;
    }, unzoom: unzoom};
    svg.setAttribute("data-ready", "1");
    return true;
  }

  function fromHash(box) {
    // report.html#search=nf_hook&zoom=tcp_sendmsg: links that open the graph searched or zoomed.
    var params = new URLSearchParams(location.hash.replace(/^#/, ""));
    if (params.get("zoom")) box.advisor.zoom(params.get("zoom"));
    if (params.get("search")) {
      var input = box.querySelector(".fg-search");
      if (input) input.value = params.get("search");
      box.advisor.search(params.get("search"));
    }
  }

  var boxes = document.querySelectorAll(".fg-box"), ready = 0;
  Array.prototype.forEach.call(boxes, function (box) {
    if (setup(box)) fromHash(box);
    if (box.advisor) ready += 1;
  });
  doc.setAttribute("data-advisor-ready", String(ready));
})();
"""
