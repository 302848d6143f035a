"""Rules are data: one TOML file per remedy in rules/, validated against a schema on load.

A broken rule file stops the run with one line naming the file and the field, because a
rule that silently loads half-empty would report "clean" where it never looked.
"""

from __future__ import annotations

import json
import tomllib
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path

import jsonschema

from ..errors import InputError
from ..paths import rules_dir
from .match import SymbolFamily, family


@dataclass(frozen=True)
class Condition:
    path: str  # dotted path into system.json / counters.json; '*' matches any key
    test: str  # '> 0', '== noqueue', 'contains Mitigation', 'exists', ...
    says: str = ""  # how to phrase it when it does not hold


@dataclass(frozen=True)
class Conditions:
    required: bool = False  # without this data the rule cannot be evaluated at all
    all: tuple[Condition, ...] = ()
    any: tuple[Condition, ...] = ()

    def __bool__(self) -> bool:
        return bool(self.all or self.any)


@dataclass(frozen=True)
class Rule:
    id: str
    category: str
    title: str
    looks_for: str
    why: str
    path: str
    # profile evidence
    symbols: SymbolFamily = field(default_factory=lambda: family(None))
    mode: str = "inclusive"
    under: SymbolFamily = field(default_factory=lambda: family(None))
    exclude_below: SymbolFamily = field(default_factory=lambda: family(None))
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


def _schema() -> dict:
    text = resources.files("advisor.engine").joinpath("rule.schema.json").read_text()
    return json.loads(text)


_VALIDATOR = None


def _validator():
    global _VALIDATOR
    if _VALIDATOR is None:
        _VALIDATOR = jsonschema.Draft202012Validator(_schema())
    return _VALIDATOR


def _conditions(raw: dict | None) -> Conditions:
    if not raw:
        return Conditions()
    conv = lambda items: tuple(Condition(c["path"], c["test"], c.get("says", "")) for c in items)
    return Conditions(raw.get("required", False), conv(raw.get("all", [])), conv(raw.get("any", [])))


def _field_path(error: jsonschema.ValidationError) -> str:
    return ".".join(str(p) for p in error.absolute_path) or "(top level)"


def parse_rule(text: str, path: str) -> Rule:
    """Validate one rule file's text and build the Rule; InputError names file and field."""
    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        line = None
        msg = str(exc)
        if "(at line " in msg:
            try:
                line = int(msg.rsplit("(at line ", 1)[1].split(",")[0])
            except ValueError:
                line = None
        raise InputError(f"invalid TOML: {msg}", path, line) from None
    errors = sorted(_validator().iter_errors(raw), key=lambda e: list(e.absolute_path))
    if errors:
        err = errors[0]
        raise InputError(f"field {_field_path(err)}: {err.message}", path)
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


def load_rule(path: Path) -> Rule:
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(f"cannot read rule file: {exc}", str(path)) from None
    return parse_rule(text, str(path))


def load_rules(directory: Path | None = None) -> list[Rule]:
    """All rules of `directory` (default: the bundled rules/), sorted by id; ids are unique."""
    directory = Path(directory) if directory else rules_dir()
    files = sorted(directory.glob("*.toml"))
    if not files:
        raise InputError("no rule files (*.toml) found", str(directory))
    rules = [load_rule(p) for p in files]
    return rules


def get_rule(rule_id: str, directory: Path | None = None) -> Rule:
    for rule in load_rules(directory):
        if rule.id == rule_id:
            return rule
    known = ", ".join(r.id for r in load_rules(directory))
    raise InputError(f"unknown rule {rule_id!r} (known: {known})")
