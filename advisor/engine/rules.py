"""Rules are data: one TOML file per remedy in rules/, validated against a schema on load.

A broken rule file stops the run with one line naming the file and the field, because a
rule that silently loads half-empty would report "clean" where it never looked.

jsonschema takes longer to import than advisor takes to evaluate every rule, and tomllib takes
~25 ms to read the 18 files, so a file whose exact text already passed the exact same schema is
neither parsed nor validated again: each file that passed is kept, as its parsed content in JSON
(read back in C), under the SHA-256 of (cache format, schema, file text), in
`$XDG_CACHE_HOME/advisor/valid-rules`. Parsing and validation are pure functions of those texts,
so a hit is what the file would give again; any change to the file or to the schema is a miss,
and failures are never cached. The checks after the schema's (`parse_rule`) always run.
"""

from __future__ import annotations

import json
import math
import os
from pathlib import Path
from typing import TYPE_CHECKING, NamedTuple

from .. import input_lines
from ..errors import InputError, unreadable
from ..paths import not_a_regular_file, rules_dir
from ..report import unprintable_in
from .match import SymbolFamily, family

if TYPE_CHECKING:
    import jsonschema

try:  # the interpreter's own SHA-256: hashlib would load OpenSSL first (~4 ms) for 18 small files
    from _sha256 import sha256 as _sha256  # Python 3.11
except ImportError:
    try:
        from _sha2 import sha256 as _sha256  # Python 3.12 and later
    except ImportError:
        from hashlib import sha256 as _sha256

#: The cache of validated rule files keeps at most this many files (then starts afresh).
CACHE_MAX_ENTRIES = 200
CACHE_FORMAT = b"advisor-valid-rules/3"  # in every digest: new checks or layout miss the old lines


#: A rule without a family of its own (no symbols, no `under`): matches nothing.
NO_SYMBOLS = family(None)


# NamedTuples and plain classes, not dataclasses, on `advise analyze`'s path (here and in
# conditions, estimate, evaluate, evidence, bundle, profile): importing dataclasses (and inspect,
# which it imports) and decorating ten classes took ~12 ms of CPU, which a short recording's
# analysis, CPU-bound beside perf, paid in wall time.
class Condition(NamedTuple):
    path: str  # dotted path into system.json / counters.json; '*' matches any key
    test: str  # '> 0', '== noqueue', 'contains Mitigation', 'exists', ...
    says: str = ""  # how to phrase it when it does not hold


class Conditions(NamedTuple):
    required: bool = False  # without this data the rule cannot be evaluated at all
    all: tuple[Condition, ...] = ()
    any: tuple[Condition, ...] = ()

    def __bool__(self) -> bool:
        return bool(self.all or self.any)


class Rule(NamedTuple):
    id: str
    category: str
    title: str
    looks_for: str
    why: str
    path: str
    # profile evidence
    symbols: SymbolFamily = NO_SYMBOLS
    mode: str = "inclusive"
    under: SymbolFamily = NO_SYMBOLS
    exclude_below: SymbolFamily = NO_SYMBOLS
    min_share_pct: float = 0.5
    kernel_symbols: bool = True
    scope: str = "all"  # 'target': only the target process's samples count (code changes)
    requires: Conditions = Conditions()  # preconditions: when false the remedy does not apply
    state: Conditions = Conditions()  # corroboration: when false, samples still decide
    counters: Conditions = Conditions()
    # estimate
    model: str = "share"
    removable: float = 1.0
    removable_range: tuple[float, float] = (1.0, 1.0)
    fraction: tuple[float, float] | None = None  # of kernel or user time
    cost_ns_per_entry: tuple[float, float] | None = None
    # remedy
    commands: tuple[str, ...] = ()
    rollback: tuple[str, ...] = ()
    risk: str = "low"
    weakens_security: bool = False
    caveat: str = ""
    # case study
    section: str = ""
    reported_gain_pct: float = 0.0
    reported_range_pct: tuple[float, float] | None = None
    observed: str = ""

    @property
    def uses_profile(self) -> bool:
        return bool(self.symbols)


_SCHEMA_TEXT: str | None = None
_SCHEMA_DIGEST = None  # SHA-256 fed with the format, the schema and NULs, copied per rule file


def _schema_text() -> str:
    global _SCHEMA_TEXT
    if _SCHEMA_TEXT is None:
        # package data next to this module (see advisor.report.json_report.load_schema)
        _SCHEMA_TEXT = Path(__file__).with_name("rule.schema.json").read_text(encoding="utf-8")
    return _SCHEMA_TEXT


def _schema() -> dict:
    return json.loads(_schema_text())


_VALIDATOR = None


def _validator():
    global _VALIDATOR
    if _VALIDATOR is None:
        import jsonschema

        _VALIDATOR = jsonschema.Draft202012Validator(_schema())
    return _VALIDATOR


class ValidatedCache:
    """Rule files that passed validation: one line each, `DIGEST JSON` (the parsed file).

    Best effort: an unreadable, unwritable or damaged cache (or line) only means parsing and
    validating again.
    """

    def __init__(self, path: Path | None):
        self.path = path
        self._known: dict[str, str] | None = None  # digest -> JSON text of the parsed file
        self._added: dict[str, str] = {}  # the same, for what is not in the file yet

    @staticmethod
    def default_path() -> Path | None:
        base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
        return None if base.startswith("~") else Path(base) / "advisor" / "valid-rules"

    @staticmethod
    def digest(text: str) -> str:
        """SHA-256 of format, NUL, schema, NUL, rule text (the prefix hashed once, not per file)."""
        global _SCHEMA_DIGEST
        if _SCHEMA_DIGEST is None:
            _SCHEMA_DIGEST = _sha256(CACHE_FORMAT + b"\0" + _schema_text().encode() + b"\0")
        digest = _SCHEMA_DIGEST.copy()
        digest.update(text.encode("utf-8", "surrogateescape"))
        return digest.hexdigest()

    def _entries(self) -> dict[str, str]:
        if self._known is None:
            self._known = {}
            if self.path is not None and not_a_regular_file(self.path) is None:
                try:
                    text = self.path.read_text(encoding="ascii")
                except (OSError, UnicodeDecodeError):
                    text = ""
                for line in text.splitlines():
                    digest, _, content = line.partition(" ")
                    if content:
                        self._known[digest] = content
        return self._known

    def get(self, digest: str) -> dict | None:
        """The parsed file that passed under `digest`, or None (never seen, or a damaged line)."""
        content = self._entries().get(digest)
        if content is None:
            return None
        try:
            raw = json.loads(content, parse_constant=input_lines.refuse_constant)
        except ValueError:  # NotFinite too: never written there, so a damaged line
            return None
        return raw if isinstance(raw, dict) else None

    def add(self, digest: str, raw: dict) -> None:
        try:  # JSON in ASCII, on one line; a value JSON cannot hold (a TOML date) is not kept
            content = json.dumps(raw, ensure_ascii=True, separators=(",", ":"), allow_nan=False)
        except (TypeError, ValueError):
            return
        if self._entries().get(digest) != content:
            self._known[digest] = self._added[digest] = content

    def save(self) -> None:
        """Write the files added since loading (a fresh cache when the old one is full)."""
        if self.path is None or not self._added:
            return
        if os.path.lexists(self.path) and not_a_regular_file(self.path) is not None:
            return  # not ours to replace, and opening a FIFO to write would wait for a reader
        added, self._added = self._added, {}
        text = "".join(f"{digest} {content}\n" for digest, content in added.items())
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            if len(self._known) > CACHE_MAX_ENTRIES:
                import tempfile

                fd, tmp = tempfile.mkstemp(prefix=".valid-rules.", dir=self.path.parent)
                with os.fdopen(fd, "w", encoding="ascii") as fh:
                    fh.write(text)
                os.replace(tmp, self.path)
                self._known = added
            else:  # one write(2) in append mode: concurrent runs do not cut into each other's lines
                fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
                try:
                    os.write(fd, text.encode("ascii"))
                finally:
                    os.close(fd)
        except OSError:
            pass


def _conditions(raw: dict | None) -> Conditions:
    if not raw:
        return Conditions()
    conv = lambda items: tuple(Condition(c["path"], c["test"], c.get("says", "")) for c in items)
    return Conditions(raw.get("required", False), conv(raw.get("all", [])), conv(raw.get("any", [])))


def _field_path(error: jsonschema.ValidationError) -> str:
    return ".".join(str(p) for p in error.absolute_path) or "(top level)"


def _first_flagged(value, judge, where: tuple = ()) -> tuple[tuple, object] | None:
    """(field path, what `judge` says of it) of the first value of a parsed rule file that `judge`
    flags (anything but None), depth first; None when it flags none."""
    said = judge(value)
    if said is not None:
        return where, said
    items = value.items() if isinstance(value, dict) else enumerate(value) if isinstance(value, list) else ()
    for key, item in items:
        found = _first_flagged(item, judge, where + (key,))
        if found is not None:
            return found
    return None


def _non_finite(value) -> float | None:
    """A nan or inf (TOML has them, and they pass a schema's bounds)."""
    return value if isinstance(value, float) and not math.isfinite(value) else None


def _unprintable(value) -> str | None:
    """The escape of the first control or invisible character (ESC, U+202E...) of a string: rule
    text goes into every report and onto terminals."""
    return unprintable_in(value) if isinstance(value, str) else None


def _parse_toml(text: str, path: str) -> dict:
    import tomllib  # only for a file not in the cache

    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        line = None
        msg = str(exc)
        if "(at line " in msg:
            try:
                line = int(msg.rsplit("(at line ", 1)[1].split(",")[0])
            except ValueError:
                line = None
        raise InputError(f"invalid TOML: {msg}", path, line) from None
    except RecursionError:
        raise InputError("invalid TOML: nested too deeply to read (deepest here)", path,
                         input_lines.toml_deepest(text)) from None
    except ValueError:  # not a TOMLDecodeError: an integer of over 4300 digits, which Python refuses
        raise InputError("invalid TOML: a number too long to read", path,
                         input_lines.toml_long_number(text)) from None


def parse_rule(text: str, path: str, cache: ValidatedCache | None = None) -> Rule:
    """Validate one rule file's text and build the Rule; InputError names file and field.

    With a `cache`, text that passed the same schema before is taken from it, neither parsed nor
    validated again (the checks below the schema's always run), and text that passes now is
    added to it.
    """
    digest = ValidatedCache.digest(text) if cache is not None else None
    raw = cache.get(digest) if cache is not None else None
    if raw is None:
        raw = _parse_toml(text, path)
        errors = sorted(_validator().iter_errors(raw), key=lambda e: list(e.absolute_path))
        if errors:
            err = errors[0]
            raise InputError(f"field {_field_path(err)}: {err.message}", path)
        where = _first_flagged(raw, _non_finite)
        if where is not None:
            raise InputError(f"field {'.'.join(map(str, where[0]))}: {where[1]} is not a finite number",
                             path)
        hidden = _first_flagged(raw, _unprintable)
        if hidden is not None:  # newline and tab are fine; TOML's \u escapes can hold anything else
            raise InputError(f"field {'.'.join(map(str, hidden[0]))}: holds the control or invisible "
                             f"character {hidden[1]}, which a terminal would act on", path)
        if cache is not None:
            cache.add(digest, raw)
    stem = Path(path).stem
    if raw["id"] != stem:
        raise InputError(f"field id: {raw['id']!r} must equal the file name {stem!r}", path)
    est, match, remedy, ref = raw["estimate"], raw.get("match", {}), raw["remedy"], raw["reference"]
    model = est["model"]
    if model == "share" and not match:
        raise InputError("field match: model 'share' needs [match] symbols", path)
    if model == "share" and "removable" not in est:
        raise InputError("field estimate.removable: model 'share' needs it", path)
    if model in ("kernel-share", "user-share", "entry-rate") and "fraction" not in est:
        raise InputError(f"field estimate.fraction: model {model!r} needs it", path)
    if model == "entry-rate" and "cost_ns_per_entry" not in est:
        raise InputError("field estimate.cost_ns_per_entry: model 'entry-rate' needs it", path)
    removable = est.get("removable", 1.0)
    lo, hi = est.get("removable_range", [removable, removable])
    if not lo <= removable <= hi:
        raise InputError(f"field estimate.removable_range: {removable} is outside [{lo}, {hi}]", path)
    for name in ("fraction", "cost_ns_per_entry"):
        pair = est.get(name)
        if pair and pair[0] > pair[1]:
            raise InputError(f"field estimate.{name}: low {pair[0]} is above high {pair[1]}", path)
    return Rule(
        id=raw["id"], category=raw["category"], title=raw["title"], looks_for=raw["looks_for"],
        why=raw["why"], path=path,
        symbols=family(match.get("symbols")), mode=match.get("mode", "inclusive"),
        under=family(match.get("under")), exclude_below=family(match.get("exclude_below")),
        min_share_pct=match.get("min_share_pct", 0.5), kernel_symbols=match.get("kernel", True),
        scope=match.get("scope", "all"), requires=_conditions(raw.get("requires")),
        state=_conditions(raw.get("state")), counters=_conditions(raw.get("counters")),
        model=model, removable=removable, removable_range=(lo, hi),
        fraction=tuple(est["fraction"]) if "fraction" in est else None,
        cost_ns_per_entry=tuple(est["cost_ns_per_entry"]) if "cost_ns_per_entry" in est else None,
        commands=tuple(remedy["commands"]), rollback=tuple(remedy["rollback"]), risk=remedy["risk"],
        weakens_security=remedy.get("weakens_security", False), caveat=remedy["caveat"],
        section=ref["section"], reported_gain_pct=ref["reported_gain_pct"],
        reported_range_pct=tuple(ref["reported_range_pct"]) if "reported_range_pct" in ref else None,
        observed=ref["observed"],
    )


def load_rule(path: Path, cache: ValidatedCache | None = None) -> Rule:
    problem = not_a_regular_file(path)
    if problem is not None:
        raise InputError(f"cannot read rule file: {problem}", str(path))
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise InputError(f"cannot read rule file: {exc}", str(path)) from None
    except OSError as exc:
        raise unreadable(exc, str(path), "cannot read rule file") from None
    return parse_rule(text, str(path), cache)


def load_rules(directory: Path | None = None) -> list[Rule]:
    """All rules of `directory` (default: the bundled rules/), sorted by id; ids are unique."""
    directory = Path(directory) if directory else rules_dir()
    if not directory.is_dir():
        why = "no such directory" if not os.path.lexists(directory) else "not a directory"
        raise InputError(f"{why}: rules are read from a directory of rule files (*.toml)", str(directory))
    files = sorted(directory.glob("*.toml"))
    if not files:
        raise InputError("no rule files (*.toml) found", str(directory))
    cache = ValidatedCache(ValidatedCache.default_path())
    try:
        return [load_rule(p, cache) for p in files]
    finally:
        cache.save()  # also what passed before a broken file stopped the loading


def get_rule(rule_id: str, directory: Path | None = None) -> Rule:
    for rule in load_rules(directory):
        if rule.id == rule_id:
            return rule
    known = ", ".join(r.id for r in load_rules(directory))
    raise InputError(f"unknown rule {rule_id!r} (known: {known})")
