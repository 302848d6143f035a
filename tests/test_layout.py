"""report.layout: Rows and Listing lay out as rich's grid and Table do, character by character
with each character's style, at every width, on a colour terminal and without colour."""

from __future__ import annotations

import io

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from rich.console import Console
from rich.measure import Measurement
from rich.table import Column, Table
from rich.text import Text

from advisor.report import layout, terminal


def _cells(renderable, width: int, colour: bool = True, encoding: str = "utf-8") -> list[list[tuple[str, str]]]:
    """Each line of `renderable` as (character, style) pairs: what a terminal shows."""
    file = io.TextIOWrapper(io.BytesIO(), encoding=encoding)
    console = Console(width=width, file=file, force_terminal=colour, color_system="truecolor" if colour else None)
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
#: a newline, a tab, longer than any column, C++ names with spaces inside.
WORDS = ["_PyEval_EvalFrameDefault", "x", "", "a b c", "漢字漢字", "std::vector<int>::push_back(int const&)",
         "[kernel.kallsyms]", "/root/.pyenv/versions/3.11.7/lib/libpython3.11.so.1.0", "+1.1% (0.6–1.7)", "12.5%",
         " lead", "trail ", "a\nb", "tab\there", "x" * 90, "☃ snow ⚠", "[bold]not markup[/]"]
STYLES = ["", "bold", "dim", "bold red", "not bold italic"]


@st.composite
def cells(draw):
    text = Text(draw(st.sampled_from(WORDS)), style=draw(st.sampled_from(STYLES)))
    if text.plain and draw(st.booleans()):
        text.stylize(draw(st.sampled_from(STYLES[1:] + ["underline"])), 0, draw(st.integers(1, len(text.plain))))
    if draw(st.integers(0, 9)) == 0:  # a cell's own justify and overflow come before its column's
        text.justify = draw(st.sampled_from(["left", "right", "center"]))
        text.overflow = draw(st.sampled_from(["fold", "ellipsis", "crop", "ignore"]))
    return text


@st.composite
def columns(draw):
    bounds = draw(st.sampled_from([{}, {}, {}, {"width": 4}, {"min_width": 6}, {"max_width": 5},  # Table decides those
                                   {"vertical": "middle"}, {"header_style": "cyan"}]))
    return Column(Text(draw(st.sampled_from(["self", "est. gain", "#", "symbol name", "", "漢字"])), style="magenta"),
                  **bounds,
                  justify=draw(st.sampled_from(["left", "right", "center"])), no_wrap=draw(st.booleans()),
                  overflow=draw(st.sampled_from(["fold", "ellipsis", "crop", "ignore"])),
                  ratio=draw(st.sampled_from([None, None, 1, 2, 3])), style=draw(st.sampled_from(STYLES)))


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
@given(plain=st.text(alphabet="ab  漢☃-\n\t", max_size=12), style=st.sampled_from(STYLES), width=st.integers(1, 14),
       column=columns(), justify=st.sampled_from([None, None, "left", "right"]), no_wrap=st.sampled_from([None, True, False]),
       underline=st.integers(0, 12))
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
