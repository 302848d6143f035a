"""report.layout: Rows and Listing lay out as rich's grid and Table do, character by character
with each character's style, at every width, on a colour terminal and without colour."""

from __future__ import annotations

import io

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st
from rich.console import Console
from rich.measure import Measurement
from rich.table import Column, Table
from rich.text import Text

from advisor.report import layout, terminal


def _cells(renderable, width: int, colour: bool = True, encoding: str = "utf-8",
           **console_options) -> list[list[tuple[str, str]]]:
    """Each line of `renderable` as (character, style) pairs: what a terminal shows."""
    file = io.TextIOWrapper(io.BytesIO(), encoding=encoding)
    console = Console(width=width, file=file, force_terminal=colour, color_system="truecolor" if colour else None,
                      **console_options)
    lines: list[list[tuple[str, str]]] = [[]]
    for segment in console.render(renderable):
        for char in segment.text:
            if char == "\n":
                lines.append([])
            else:
                lines[-1].append((char, str(segment.style or "")))
    return lines


ROWS = [("source", "samples/jsonsrv-baseline/perf.script.gz"), ("a label\nof two lines", "one"), ("empty", ""),
        ("bottleneck", "every CPU is saturated — all CPUs saturated (cpu0 99%, cpu1 98%) " * 2),
        ("  mitigation-spectre-v1:", "needs system state: no system.json\nsecond line, then an unbreakable "
                                     "word: " + "x" * 70),
        ("•", "[bold]not markup[/] ⚠ wide ☃ characters 漢字漢字")]


@pytest.mark.parametrize("width", [30, 41, 80, 100, 160])
@pytest.mark.parametrize("gap, label_style, text_style", [(1, "dim bold", "dim"), (2, "bold", ""), (1, "", "yellow")])
def test_rows_lay_out_as_a_two_column_grid(width, gap, label_style, text_style):
    """Rows replaced rich's Table.grid (~2x its speed): the same characters in the same
    styles, wrapped, cut with an ellipsis, or padded the same way, at every width."""
    grid = Table.grid(padding=(0, gap))
    grid.add_column(no_wrap=True, style=label_style)
    grid.add_column(style=text_style)
    for label, text in ROWS:
        grid.add_row(Text(label), Text(text))
    rows = layout.Rows([(Text(label), Text(text)) for label, text in ROWS], gap=gap, label_style=label_style,
                       text_style=text_style)
    assert _cells(rows, width) == _cells(grid, width)


@pytest.mark.parametrize("gap", [1, 2])
def test_rows_ask_a_container_for_the_room_a_grid_asks(gap):
    """In a table cell or a fitted panel, Rows measures as the grid does (one-word labels: the
    grid's minimum counts a label's longest word, Rows its whole label)."""
    short = [("source", "a.data"), ("per-CPU", "cpu0 99% saturated, cpu1 12%"), ("x", "")]
    grid = Table.grid(padding=(0, gap))
    grid.add_column(no_wrap=True)
    grid.add_column()
    for label, text in short:
        grid.add_row(Text(label), Text(text))
    rows = layout.Rows([(Text(label), Text(text)) for label, text in short], gap=gap)
    console = Console(width=100, file=io.StringIO())
    measured = [Measurement.get(console, console.options, r) for r in (rows, grid)]
    assert measured[0] == measured[1] == Measurement(7 + gap + 10, 7 + gap + 28)


@pytest.mark.parametrize("width", [3, 12, 20])
def test_rows_narrower_than_their_labels_stay_within_the_width(width):
    """There a grid drops the texts; Rows cuts the labels and keeps a column of text."""
    rows = layout.Rows([(Text(label), Text(text)) for label, text in ROWS], gap=2)
    lines = _cells(rows, width)
    assert max(len(line) for line in lines) == width
    assert lines[0][-1][0] == "…"  # 'samples/...', cut to its one column


#: Cell texts that take every path: empty, wide characters, markup-like, spaces at either end,
#: a newline, a tab, longer than any column, C++ names with spaces inside, and characters whose
#: width is not their count: combining marks, zero-width joiners, variation selectors, flags.
WORDS = ["_PyEval_EvalFrameDefault", "x", "", "a b c", "漢字漢字", "std::vector<int>::push_back(int const&)",
         "[kernel.kallsyms]", "/root/.pyenv/versions/3.11.7/lib/libpython3.11.so.1.0", "+1.1% (0.6–1.7)", "12.5%",
         " lead", "trail ", "a\nb", "tab\there", "x" * 90, "☃ snow ⚠", "[bold]not markup[/]",
         "e\u0301\u0301\u0301 ", "x\u2028", "\u200d", "\ufe0f👨\u200d👩\u200d👧👨\u200d👩\u200d👧", "nb\xa0", "🇫🇷 ｱ"]
STYLES = ["", "bold", "dim", "bold red", "not bold italic"]
#: A cell's own style may name a style rich does not know: rich prints the text unstyled.
CELL_STYLES = STYLES + ["no.such.style"]


@st.composite
def cells(draw):
    text = Text(draw(st.sampled_from(WORDS)), style=draw(st.sampled_from(CELL_STYLES)))
    if text.plain and draw(st.booleans()):
        text.stylize(draw(st.sampled_from(STYLES[1:] + ["underline"])), 0, draw(st.integers(1, len(text.plain))))
    if draw(st.integers(0, 9)) == 0:  # a cell's own justify and overflow come before its column's
        text.justify = draw(st.sampled_from(["left", "right", "center"]))
        text.overflow = draw(st.sampled_from(["fold", "ellipsis", "crop", "ignore"]))
    if draw(st.integers(0, 19)) == 0:  # what the report never sets: an end, a tab size (0: rich's 8)
        text.end = draw(st.sampled_from(["", "\n\n"]))
        text.tab_size = draw(st.sampled_from([0, 2]))
    return text


@st.composite
def columns(draw):
    bounds = draw(st.sampled_from([{}, {}, {}, {"width": 4}, {"min_width": 6}, {"max_width": 5},  # Table decides those
                                   {"vertical": "middle"}, {"header_style": "cyan"}]))
    header = Text(draw(st.sampled_from(["self", "est. gain", "#", "symbol name", "", "漢字"])), style="magenta",
                  overflow=draw(st.sampled_from([None, None, None, "ignore"])))
    return Column(header, **bounds,
                  justify=draw(st.sampled_from(["left", "right", "center"])), no_wrap=draw(st.booleans()),
                  overflow=draw(st.sampled_from(["fold", "ellipsis", "crop", "ignore"])),
                  ratio=draw(st.sampled_from([None, None, 0, 1, 2, 3])), style=draw(st.sampled_from(STYLES)))


@settings(max_examples=400, deadline=None)
@given(spec=st.lists(columns(), min_size=1, max_size=7), data=st.data(), title=st.sampled_from([None, "Recommendations"]),
       show_edge=st.booleans(), collapse=st.booleans(),
       width=st.one_of(st.integers(1, 40), st.integers(40, 170)), colour=st.booleans())
def test_a_listing_lays_out_as_the_table_it_describes(spec, data, title, show_edge, collapse, width, colour):
    """Any columns, any cells, any width: the Table's characters in the Table's styles (where the
    cells do not fit, Table's collapsing decides: the Listing is then its Table)."""
    rows = data.draw(st.lists(st.tuples(*[cells() for _ in spec]), max_size=9))
    listing = layout.Listing(spec, rows, title=Text(title, style="bold") if title else None, show_edge=show_edge,
                             collapse_padding=collapse)
    assert _cells(listing, width, colour) == _cells(listing.table(), width, colour)


@pytest.mark.parametrize("case", ["str title", "str cell", "short row", "console tab size 0"])
def test_what_a_listing_leaves_to_its_table_prints_as_the_table(case):
    """Inputs the report never makes, which a Table takes: the Listing is that Table there."""
    columns = [Column(Text("a"), ratio=1), Column(Text("b"), justify="right")]
    rows = [(Text("x\ty"), Text("1.0%"))]
    title = "[bold]Ranking[/]" if case == "str title" else None  # a str title is markup, in table.title's style
    if case == "str cell":
        rows.append(("plain [b]str[/b]", Text("2")))
    if case == "short row":
        rows.append((Text("only one"),))
    listing = layout.Listing(columns, rows, title=title)
    tab_size = {"tab_size": 0} if case == "console tab size 0" else {}
    assert _cells(listing, 30, **tab_size) == _cells(listing.table(), 30, **tab_size)


def _spanned(plain: str, start: int, end: int, **options) -> Text:
    text = Text(plain, **options)
    text.stylize("bold", start, end)
    return text


FAMILY = "👨\u200d👩\u200d👧"
#: Differences a review found, each a Listing that printed otherwise than its Table (or raised).
REVIEWED = {
    "a column of ratio 0": ([Column(Text("a"), ratio=1), Column(Text("b"), ratio=0)],
                            [(Text("x"), Text("y")), (Text("x"), _spanned("ab", 0, 1, justify="right"))], 20),
    "a header let run past the width": ([Column(Text("a long header", overflow="ignore"), ratio=1),
                                         Column(Text("k"), ratio=5)], [(Text("v"), Text("w"))], 30),
    "a span inside a cluster of characters": ([Column(Text("h")), Column(Text("k"))],
                                              [(_spanned("\u200d", 0, 1), Text("b"))], 7),
    "a span cutting a family emoji": ([Column(Text("h")), Column(Text("k"))],
                                      [(_spanned("\ufe0f" + FAMILY + FAMILY, 0, 5), Text("b"))], 9),
    "combining marks before a space": ([Column(Text("h"), ratio=1)], [(_spanned("e\u0301\u0301\u0301 ", 0, 5),)], 5),
    "a line separator at the end": ([Column(Text("h"), ratio=1)], [(Text("x\u2028"),)], 7),
    "a cell ending in two newlines": ([Column(Text("h")), Column(Text("k"))], [(Text("a", end="\n\n"), Text("b"))], 9),
}


@pytest.mark.parametrize("name", REVIEWED)
@pytest.mark.parametrize("colour", [True, False])
def test_what_a_review_found_prints_as_the_table(name, colour):
    columns, rows, width = REVIEWED[name]
    listing = layout.Listing(columns, rows)
    for each in range(max(1, width - 6), width + 7):
        assert _cells(listing, each, colour) == _cells(listing.table(), each, colour), each


def _report_tables(width_of_names: int = 12) -> list[layout.Listing]:
    """The report's two Listings, on entries as a profile and an analysis give them."""
    top = [{"self_pct": 19.4 / (i + 1), "inclusive_pct": 40.0 / (i + 1), "symbol": f"sym_{'x' * width_of_names}_{i}",
            "dso": "/root/.pyenv/versions/3.11.7/lib/libpython3.11.so.1.0" if i % 2 else "[kernel.kallsyms]"}
           for i in range(8)]
    recs = [{"rank": i + 1, "rule": name, "estimated_gain_pct": 22.0 / (i + 1), "gain_low_pct": 1.0,
             "gain_high_pct": 30.0, "confidence": conf, "risk": risk, "share_pct": 18.0 / (i + 1),
             "weakens_security": i == 1}
            for i, (name, conf, risk) in enumerate([("netfilter", "high", "medium"),
                                                    ("mitigation-spectre-v2", "low", "high"), ("gro", "medium", "low")])]
    return [terminal._top(top), terminal._ranking(recs)]


@pytest.mark.parametrize("width", [20, 40, 60, 80, 100, 132])
@pytest.mark.parametrize("encoding", ["utf-8", "ascii"])  # ascii: Table's box becomes ASCII, the Listing's too
def test_the_reports_tables_are_laid_out_as_rich_tables(width, encoding):
    for listing in _report_tables():
        assert _cells(listing, width, encoding=encoding) == _cells(listing.table(), width, encoding=encoding)


def test_long_symbols_fold_in_their_column_as_in_a_table():
    listing = _report_tables(width_of_names=70)[0]
    lines = _cells(listing, 80)
    assert lines == _cells(listing.table(), 80)
    assert len(lines) > 8 + 5  # symbols of 76 characters fold onto second lines


def test_cells_that_fit_are_laid_out_without_rich_wrapping_them(monkeypatch):
    """The speed of a Listing: the report's cells fit their columns, and only the title is
    wrapped by rich (a Table wraps every cell)."""
    wrapped = []
    original = Text.wrap
    monkeypatch.setattr(Text, "wrap", lambda self, *a, **k: wrapped.append(self.plain) or original(self, *a, **k))
    for listing in _report_tables():
        wrapped.clear()
        _cells(listing, 100)
        assert wrapped == [listing.title.plain]
        _cells(listing.table(), 100)
        assert len(wrapped) > 1 + len(listing.rows) * len(listing.columns)


def test_a_listing_asks_a_container_for_the_room_its_table_asks():
    console = Console(width=100, file=io.StringIO())
    for listing in _report_tables():
        assert Measurement.get(console, console.options, listing) == \
               Measurement.get(console, console.options, listing.table())


@settings(max_examples=500, deadline=None)
@given(plain=st.text(alphabet=list("ab  漢☃-\n\t") + ["\u0301", "\u200d", "\ufe0f", "\xa0", "\u2028", "👨"], max_size=12),
       style=st.sampled_from(STYLES), width=st.integers(1, 14),
       column=columns(), justify=st.sampled_from([None, None, "left", "right"]), no_wrap=st.sampled_from([None, True, False]),
       underline=st.integers(0, 12))
@example(plain="a\u0301\u0301 ", style="", width=3, column=Column(Text("h")), justify=None, no_wrap=None, underline=0)
def test_a_cell_on_one_line_is_what_text_wrap_makes_of_it(plain, style, width, column, justify, no_wrap, underline):
    """The Listing's hand-made line of a cell (one that fits, or one cut) against what rich's
    Text.__rich_console__ asks of Text.wrap: the same characters and the same spans."""
    cell = Text(plain, style=style, justify=justify, no_wrap=no_wrap)
    cell.stylize("underline", 0, underline)
    console = Console(width=80, file=io.StringIO())
    wrapped = cell.wrap(console, width, justify=cell.justify or column.justify, overflow=cell.overflow or column.overflow,
                        tab_size=console.tab_size, no_wrap=column.no_wrap if no_wrap is None else no_wrap)
    made = layout._cell_lines(console, cell, width, column)
    assert [(line.plain, line.style, line.spans) for line in made] == \
           [(line.plain, line.style, line.spans) for line in wrapped]
