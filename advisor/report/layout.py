"""Two of rich's layouts, laid out by hand: the same lines in the same styles, at less cost.

The terminal report is laid out after perf's last line, when every millisecond is paid in wall
time (`advise analyze` on a short recording is CPU-bound). rich's grid and Table measure every
cell and render each one through a Padding into lines of its own; these take the report's
cells, which are short Texts, straight to a line. The tests compare them with rich's own
layout, character by character with its style, at many widths.
"""

from __future__ import annotations

from rich import box
from rich.cells import cell_len
from rich.console import Console, ConsoleOptions, RenderResult
from rich.measure import Measurement
from rich.segment import Segment
from rich.style import Style
from rich.table import Column, Table
from rich.text import Text


class Rows:
    """Labels and the texts beside them, each text wrapping under itself: the layout of a
    two-column Table.grid (the same lines, the same styles) without the grid's measuring of
    every cell. The clean rules' list took 2.3 ms as a grid, 1.0-1.3 ms as Rows."""

    def __init__(self, rows: list[tuple[Text, Text]], gap: int = 1, label_style: str = "", text_style: str = ""):
        self.rows = rows
        self.gap = gap
        self.label_style = label_style
        self.text_style = text_style

    def _label_width(self, options: ConsoleOptions) -> int:
        """As wide as the widest label; on a console narrower than that, the labels are cut and
        a column of the text is kept."""
        widest = max((label.cell_len for label, _ in self.rows), default=0)
        return max(0, min(widest, options.max_width - self.gap - 1))

    def __rich_console__(self, console: Console, options: ConsoleOptions) -> RenderResult:
        label_width = self._label_width(options)
        widest_text = max((Measurement.get(console, options, text).maximum for _, text in self.rows), default=0)
        text_width = max(1, min(widest_text, options.max_width - label_width - self.gap))
        label_style, text_style = console.get_style(self.label_style), console.get_style(self.text_style)
        gap, new_line = Segment(" " * self.gap, label_style), Segment.line()
        label_options = options.update(width=label_width, no_wrap=True, overflow="ellipsis")
        text_options = options.update(width=text_width, overflow="ellipsis")
        for label, text in self.rows:
            left = console.render_lines(label, label_options, style=label_style, pad=True)
            right = console.render_lines(text, text_options, style=text_style, pad=True)
            for index in range(max(len(left), len(right))):
                yield from left[index] if index < len(left) else [Segment(" " * label_width, label_style)]
                yield gap
                yield from right[index] if index < len(right) else [Segment(" " * text_width, text_style)]
                yield new_line

    def __rich_measure__(self, console: Console, options: ConsoleOptions) -> Measurement:
        fixed = self._label_width(options) + self.gap
        texts = [Measurement.get(console, options, text) for _, text in self.rows]
        return Measurement(fixed + max((m.minimum for m in texts), default=0),
                           fixed + max((m.maximum for m in texts), default=0))


class Listing:
    """A table of Text cells with a title and a header, laid out as rich's Table with the
    SIMPLE_HEAD box, `expand` and no padding at its edges lays it out (table()), each row's
    cells taken straight to one line each instead of through a Padding and lines of their own.
    The hottest functions' table: 2.5 ms as a Table, 0.75-0.9 ms as a Listing; the ranking 1.7 -> 0.5 ms.

    Where the columns do not fit side by side (a console narrower than the cells' minimum),
    Table's collapsing of columns decides, and the Listing is the Table it describes.
    """

    def __init__(self, columns: list[Column], rows: list[tuple[Text, ...]], title: Text | None = None,
                 show_edge: bool = True, collapse_padding: bool = False):
        self.columns = columns
        self.rows = rows
        self.title = title
        self.show_edge = show_edge
        self.collapse_padding = collapse_padding

    def table(self) -> Table:
        """The rich Table this lays out."""
        table = Table(box=box.SIMPLE_HEAD, title=self.title, title_justify="left", expand=True, pad_edge=False,
                      show_edge=self.show_edge, collapse_padding=self.collapse_padding)
        for index, column in enumerate(self.columns):
            table.columns.append(column.copy())
            table.columns[-1]._index = index
        for row in self.rows:
            table.add_row(*row)
        return table

    def _table_decides(self) -> bool:
        """What the Listing leaves to its Table: what the report never asks for. No columns; a
        title, header or cell that is not a Text, or a row of another length; a column of fixed
        or bounded width, or not aligned to the top; text let run past the width (overflow
        "ignore") or ending otherwise than with one newline (`Text.end`)."""
        if not self.columns or (self.title is not None and not isinstance(self.title, Text)):
            return True
        if any(not isinstance(column.header, Text) or column.overflow == "ignore" or column.vertical != "top" or
               (column.width, column.min_width, column.max_width) != (None, None, None) for column in self.columns):
            return True
        cells = [column.header for column in self.columns]
        for row in self.rows:
            if len(row) != len(self.columns):
                return True
            cells.extend(row)
        return any(not isinstance(cell, Text) or cell.overflow == "ignore" or cell.end != "\n" for cell in cells)

    def _paddings(self) -> list[tuple[int, int]]:
        """(left, right) spaces of each column's cells (Table's padding (0, 1), no edge padding)."""
        last = len(self.columns) - 1
        return [(0 if index == 0 or self.collapse_padding else 1, 0 if index == last else 1)
                for index in range(len(self.columns))]

    def _widths(self, max_width: int, paddings: list[tuple[int, int]]) -> list[int] | None:
        """Each column's width, padding included, as Table's _calculate_column_widths gives it;
        None when the cells do not fit and Table would collapse columns."""
        from rich._ratio import ratio_distribute

        if max_width < 3:  # narrower than a cell's padding and one character: Table's own rules
            return None
        maxima = []
        for index, (left, right) in enumerate(paddings):
            cells = [self.columns[index].header, *(row[index] for row in self.rows)]
            widest = max(max(cell_len(line) for line in (cell.plain.splitlines() or [""])) for cell in cells)
            maxima.append(min(widest + left + right, max_width))
        widths = [width or 1 for width in maxima]
        ratios = [column.ratio or 0 for column in self.columns if column.flexible]
        if any(ratios):
            fixed = [0 if column.flexible else width for column, width in zip(self.columns, maxima)]
            minima = [1 + left + right for column, (left, right) in zip(self.columns, paddings) if column.flexible]
            flexible = iter(ratio_distribute(max_width - sum(fixed), ratios, minima))
            widths = [fixed[i] + next(flexible) if column.flexible else widths[i]
                      for i, column in enumerate(self.columns)]
        if sum(widths) > max_width or any(width <= left + right for width, (left, right) in zip(widths, paddings)):
            return None  # Table collapses the columns, or leaves one no room (a ratio of 0)
        if sum(widths) < max_width:
            widths = [width + extra for width, extra in zip(widths, ratio_distribute(max_width - sum(widths), widths))]
        return widths

    def __rich_console__(self, console: Console, options: ConsoleOptions) -> RenderResult:
        edges = 2 if self.show_edge else 0
        paddings = self._paddings()
        widths = None if self._table_decides() else \
            self._widths(options.max_width - edges - (len(self.columns) - 1), paddings)
        if widths is None:
            yield self.table()
            return
        table_width = sum(widths) + edges + len(self.columns) - 1
        plain = box.SIMPLE_HEAD.substitute(options, safe=console.safe_box)
        border = Style.null()
        if self.title:
            yield from console.render(self.title, options.update(width=table_width, height=None, highlight=False,
                                                                 justify="left"))
        if self.show_edge:
            yield Segment(plain.get_top(widths), border)
            yield Segment.line()
        headers = [console.get_style("table.header") + console.get_style(column.header_style or "")
                   for column in self.columns]
        yield from self._row(console, widths, paddings, [column.header for column in self.columns], headers,
                             (plain.head_left, plain.head_vertical, plain.head_right))
        yield Segment(plain.get_row(widths, "head", edge=self.show_edge), border)
        yield Segment.line()
        for index, row in enumerate(self.rows):
            last = index == len(self.rows) - 1
            yield from self._row(console, widths, paddings, list(row), None,
                                 (plain.foot_left, plain.foot_vertical, plain.foot_right) if last else
                                 (plain.mid_left, plain.mid_vertical, plain.mid_right))
        if self.show_edge:
            yield Segment(plain.get_bottom(widths), border)
            yield Segment.line()

    def _row(self, console: Console, widths: list[int], paddings: list[tuple[int, int]], cells: list[Text],
             headers: list[Style] | None, box_parts: tuple[str, str, str]) -> RenderResult:
        """One row's lines (the header's when given its styles): each cell wrapped (or cut) in
        its column, padded, in its style; cells aligned to the top, headers to the bottom."""
        null = Style.null()
        rendered: list[list[list[Segment]]] = []
        styles = []
        for index, (column, cell, width) in enumerate(zip(self.columns, cells, widths)):
            pad_left, pad_right = paddings[index]
            style = headers[index] if headers is not None else console.get_style(column.style or "")
            inner = width - pad_left - pad_right
            lines = []
            for line in _cell_lines(console, cell, inner, column):
                # render() leaves a Text's own style out where it has no spans (Text.__rich_console__
                # adds it by joining the lines); a second time where it has them changes nothing
                own = style + console.get_style(line.style, default=null)
                segments = Segment.apply_style(line.render(console), own)
                # cut or padded by its segments' widths, as rich does (not the line's: a span may
                # split a cluster of characters, which then measure otherwise)
                fitted = Segment.adjust_line_length(list(segments), inner, style=style, pad=True)
                lines.append([Segment(" " * pad_left, style), *fitted, Segment(" " * pad_right, style)])
            rendered.append(lines)
            styles.append(style)
        height = max(1, *(len(lines) for lines in rendered))
        for lines, width, style in zip(rendered, widths, styles):  # a header at the bottom, cells at the top
            blanks = [[Segment(" " * width, style)]] * (height - len(lines))
            at = 0 if headers is not None else len(lines)
            lines[at:at] = blanks
        left, divider, right = (Segment(part, null) for part in box_parts)
        for line_no in range(height):
            if self.show_edge:
                yield left
            for index, lines in enumerate(rendered):
                if index:
                    yield divider
                yield from lines[line_no]
            if self.show_edge:
                yield right
            yield Segment.line()

    def __rich_measure__(self, console: Console, options: ConsoleOptions) -> Measurement:
        return Measurement.get(console, options, self.table())


def _cell_lines(console: Console, cell: Text, width: int, column: Column) -> list[Text]:
    """A cell's lines as Text.__rich_console__ wraps it in its column (the cell's own justify,
    overflow and no_wrap first). One line, the common case, is done by hand as Text.wrap does it:
    a cell that fits, or one cut (no_wrap), padded to the width."""
    justify = cell.justify or column.justify or "default"
    overflow = cell.overflow or column.overflow or "fold"
    no_wrap = column.no_wrap if cell.no_wrap is None else cell.no_wrap
    plain = cell.plain
    if "\n" in plain or "\t" in plain or justify not in ("left", "right") or overflow == "ignore" or \
            (not no_wrap and cell_len(plain) > width):
        tab_size = console.tab_size if cell.tab_size is None else cell.tab_size
        return list(cell.wrap(console, width, justify=justify, overflow=overflow, tab_size=tab_size or 8,
                              no_wrap=no_wrap))
    line = cell.copy()
    if not no_wrap:  # Text.wrap trims what lies past the width by len(), not by cells: combining marks
        line.rstrip_end(width)
    if justify == "right":
        line.rstrip()
        line.truncate(width, overflow=overflow)
        line.pad_left(width - cell_len(line.plain))
    else:
        line.truncate(width, overflow=overflow, pad=True)
    line.truncate(width, overflow=overflow)
    return [line]
