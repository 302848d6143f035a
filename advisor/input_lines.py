"""What Python's json reads and advisor refuses, and the line to name when a text is refused.

Every rejection of an input names its file and line. json.loads names the line of a syntax
error, but not of a NaN or Infinity it was told to refuse (`refuse_constant`), and neither json
nor tomllib says
where a text was nested too deeply for them: they parse arrays and tables by recursion and
raise RecursionError a few hundred levels down. These scans find that place. They run only
after a refusal, on the text that was refused (and compile their patterns only then).
"""

from __future__ import annotations

import re

# Possessive (*+): an unterminated string is given up at once, never backtracked into.
_JSON_STRING = r'"(?:[^"\\]|\\.)*+"'
#: JSON: strings (whose brackets and words do not count), brackets, the constants.
_JSON_TOKENS = _JSON_STRING + r"|[\[\]{}]|(-?Infinity|NaN)"
#: TOML: multi-line and one-line strings, comments, brackets (a table header counts as one level).
_TOML_TOKENS = (r'"""(?:[^"\\]|\\.|"(?!""))*+"""|\'\'\'(?:[^\']|\'(?!\'\'))*+\'\'\''
                r'|"(?:[^"\\\n]|\\.)*+"|\'[^\'\n]*+\'|#[^\n]*+|[\[\]{}]')


class NotFinite(ValueError):
    """NaN or Infinity in JSON text: Python's json reads them, JSON has no such numbers, and no
    figure can be computed from them (a report holding one could not even be written)."""


def refuse_constant(name: str):
    """json.loads(..., parse_constant=refuse_constant): NaN, Infinity and -Infinity raise NotFinite."""
    raise NotFinite(name)


def json_constant(text: str) -> int | None:
    """The line of the first NaN or Infinity outside a string."""
    for m in re.finditer(_JSON_TOKENS, text):
        if m.group(1):
            return _line(text, m.start())
    return None


def json_long_number(text: str) -> int | None:
    """The line of the first number outside a string with more digits than Python reads
    (sys.get_int_max_str_digits(), 4300): json raises a plain ValueError for it."""
    return _long_number(text, _JSON_STRING)


def toml_long_number(text: str) -> int | None:
    """The same for TOML text (tomllib too raises a plain ValueError), comments skipped."""
    return _long_number(text, _TOML_TOKENS)


def _long_number(text: str, skipped: str) -> int | None:
    import sys

    for m in re.finditer(skipped + rf"|([0-9_]{{{sys.get_int_max_str_digits() + 1},}})", text):
        if m.group(m.re.groups):
            return _line(text, m.start())
    return None


def json_deepest(text: str) -> int:
    """The line where a JSON text is first nested deepest."""
    return _deepest(text, _JSON_TOKENS)


def toml_deepest(text: str) -> int:
    """The line where a TOML text is first nested deepest."""
    return _deepest(text, _TOML_TOKENS)


def _deepest(text: str, tokens: str) -> int:
    depth = deepest = at = 0
    for m in re.finditer(tokens, text):
        token = m.group()
        if token == "[" or token == "{":
            depth += 1
            if depth > deepest:
                deepest, at = depth, m.start()
        elif token == "]" or token == "}":
            depth -= 1
    return _line(text, at)


def _line(text: str, offset: int) -> int:
    return text.count("\n", 0, offset) + 1
