"""A selection's rules as one value: :class:`Recipe`, its checks, and its TOML form.

A recipe says *what* to select, never how: it holds no export and runs nothing. Its
TOML form uses the same keys as :func:`vlanalyze.select`'s arguments, so a saved
recipe reads like the call that made it. Only checks that need no export live here
(a split spec's shape, a known keep policy, positive counts); names that must exist in
an export are checked by :mod:`vlanalyze.curate._rules`.
"""

from __future__ import annotations

import dataclasses
import math
import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from vlanalyze.errors import SelectionError

KEEP_POLICIES = ("uniqueness", "resolution", "labelled", "first")
GROUPS = ("duplicates", "cluster", "video", "none")
DEFAULT_BY = "uniqueness_score"
RECIPE_VERSION = 1
_SPLIT_NAME = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]*$")
_GATE = re.compile(r"^\s*([^<>=]+?)\s*(?:>=\s*([0-9]*\.?[0-9]+)\s*)?$")


@dataclass(frozen=True)
class IssueGate:
    """Drop items carrying ``issue_type`` (at or above ``min_confidence`` if set)."""

    issue_type: str
    min_confidence: float | None = None

    def __str__(self) -> str:
        if self.min_confidence is None:
            return self.issue_type
        return f"{self.issue_type}>={self.min_confidence:g}"


@dataclass(frozen=True)
class Recipe:
    """Every rule of a selection; the defaults select everything, unchanged.

    Field names are :func:`vlanalyze.select`'s argument names and the TOML keys.
    """

    where: tuple[str, ...] = ()
    labels: tuple[str, ...] = ()
    all_labels: bool = False
    no_labels: tuple[str, ...] = ()
    label_source: str | None = None
    tags: tuple[str, ...] = ()
    no_tags: tuple[str, ...] = ()
    media_type: str | None = None
    clusters: tuple[str, ...] = ()
    exclude_issues: tuple[IssueGate, ...] = ()
    exclude_object_issues: tuple[IssueGate, ...] = ()
    dedupe: float | str | None = None
    keep: str = "uniqueness"
    per_cluster: int | None = None
    per_video: int | None = None
    top: int | None = None
    by: str = DEFAULT_BY
    ascending: bool = False
    sample: int | None = None
    stratify: str | None = None
    split: tuple[tuple[str, float], ...] = ()
    group: str | None = None
    seed: int = 0

    @classmethod
    def build(cls, base: Recipe | None = None, **rules: Any) -> Recipe:
        """``base`` (or the defaults) with every rule in ``rules`` that is not None
        replaced, each checked and normalized (lists to tuples, specs parsed)."""
        base = base or cls()
        unknown = sorted(set(rules) - set(RULE_NAMES))
        if unknown:
            raise TypeError(f"unknown rule(s): {', '.join(unknown)}")
        changes = {k: _normalize(k, v) for k, v in rules.items() if v is not None}
        recipe = dataclasses.replace(base, **changes)
        recipe.check()
        return recipe

    def check(self) -> None:
        """Raise :class:`SelectionError` for a rule that is wrong whatever the export."""
        if self.keep not in KEEP_POLICIES:
            raise SelectionError(
                f"unknown keep policy {self.keep!r}", hint=f"choose {'|'.join(KEEP_POLICIES)}"
            )
        for name in ("per_cluster", "per_video", "top", "sample"):
            value = getattr(self, name)
            if value is not None and value < 1:
                raise SelectionError(f"{name} must be at least 1, not {value}")
        if self.media_type is not None and self.media_type not in ("image", "video_frame"):
            raise SelectionError(
                f"unknown media type {self.media_type!r}", hint="choose image|video_frame"
            )
        if self.group is not None:
            parse_group(self.group)
        if self.group is not None and not self.split:
            raise SelectionError("a split group needs a split", hint="add split=... (--split)")
        if self.stratify is not None and self.sample is None:
            raise SelectionError("strata need a sample", hint="add sample=N (--sample N)")

    def as_dict(self) -> dict[str, Any]:
        """The rules that differ from the defaults, as plain values (TOML-ready)."""
        out: dict[str, Any] = {}
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if value == f.default:
                continue
            if f.name in ("exclude_issues", "exclude_object_issues"):
                value = [str(g) for g in value]
            elif f.name == "split":
                value = dict(value)
            elif isinstance(value, tuple):
                value = list(value)
            out[f.name] = value
        return out

    def to_toml(self) -> str:
        """The recipe as a TOML document that :meth:`from_toml` reads back."""
        lines = [
            "# vlanalyze selection recipe: vlanalyze select EXPORT --recipe THIS_FILE",
            f"recipe_version = {RECIPE_VERSION}",
        ]
        lines += [f"{_toml_key(k)} = {_toml_value(v)}" for k, v in self.as_dict().items()]
        return "\n".join(lines) + "\n"

    @classmethod
    def from_toml(cls, text: str, *, source: str = "recipe") -> Recipe:
        """Read a recipe written by :meth:`to_toml` (or by hand)."""
        try:
            data = tomllib.loads(text)
        except tomllib.TOMLDecodeError as exc:
            raise SelectionError(f"{source} is not valid TOML: {exc}") from None
        version = data.pop("recipe_version", RECIPE_VERSION)
        if version != RECIPE_VERSION:
            raise SelectionError(f"{source}: unsupported recipe_version {version!r}")
        unknown = sorted(set(data) - set(RULE_NAMES))
        if unknown:
            raise SelectionError(
                f"{source}: unknown key(s) {', '.join(unknown)}",
                hint=f"keys: {', '.join(RULE_NAMES)}",
            )
        for key, value in data.items():
            _check_type(key, value, source)
        return cls.build(**data)


RULE_NAMES = tuple(f.name for f in dataclasses.fields(Recipe))
_LISTS = ("where", "labels", "no_labels", "tags", "no_tags", "clusters")
_INTS = ("per_cluster", "per_video", "top", "sample", "seed")
_BOOLS = ("all_labels", "ascending")


def _check_type(key: str, value: Any, source: str) -> None:
    ok: bool
    if key in _LISTS or key in ("exclude_issues", "exclude_object_issues"):
        ok = isinstance(value, list | str) and all(isinstance(v, str) for v in value)
    elif key in _INTS:
        ok = isinstance(value, int) and not isinstance(value, bool)
    elif key in _BOOLS:
        ok = isinstance(value, bool)
    elif key == "dedupe":
        ok = isinstance(value, int | float | str) and not isinstance(value, bool)
    elif key == "split":
        ok = isinstance(value, dict | str)
    else:
        ok = isinstance(value, str)
    if not ok:
        raise SelectionError(f"{source}: {key} has the wrong type ({type(value).__name__})")


def _normalize(key: str, value: Any) -> Any:
    if key in _LISTS:
        return (value,) if isinstance(value, str) else tuple(value)
    if key in ("exclude_issues", "exclude_object_issues"):
        items = [value] if isinstance(value, str | IssueGate) else list(value)
        return tuple(g if isinstance(g, IssueGate) else parse_gate(g) for g in items)
    if key == "split":
        return parse_split(value)
    if key == "dedupe":
        return parse_threshold(value)
    return value


def parse_gate(text: str) -> IssueGate:
    """``"blur"`` or ``"blur>=0.8"`` as an :class:`IssueGate`."""
    match = _GATE.match(text)
    if not match:
        raise SelectionError(
            f"bad issue rule {text!r}", hint="write TYPE or TYPE>=CONFIDENCE, e.g. blur>=0.8"
        )
    conf = float(match.group(2)) if match.group(2) else None
    return IssueGate(match.group(1), conf)


def parse_threshold(value: float | str) -> float | str:
    """A duplicate level: a number, or ``"min"``/``"max"`` (loosest/strictest)."""
    if isinstance(value, str):
        text = value.strip().lower()
        if text in ("min", "max"):
            return text
        try:
            value = float(text)
        except ValueError:
            raise SelectionError(
                f"bad duplicate threshold {value!r}", hint="give a level like 0.96, or min|max"
            ) from None
    if not math.isfinite(value):
        raise SelectionError(f"bad duplicate threshold {value!r}")
    return float(value)


def parse_group(text: str) -> tuple[str, float | str | None]:
    """``duplicates@0.96`` / ``duplicates`` / ``cluster`` / ``video`` / ``none``."""
    kind, _, level = text.strip().partition("@")
    if kind not in GROUPS or (level and kind != "duplicates"):
        raise SelectionError(
            f"unknown split group {text!r}",
            hint="choose duplicates[@THRESHOLD]|cluster|video|none",
        )
    return kind, parse_threshold(level) if level else None


def parse_split(
    spec: str | Mapping[str, float] | tuple[tuple[str, float], ...],
) -> tuple[tuple[str, float], ...]:
    """``"train=0.8,val=0.1,test=0.1"`` or a mapping, checked: names unique, fractions
    positive and summing to 1."""
    pairs: list[tuple[str, float]]
    if isinstance(spec, str):
        pairs = []
        for part in spec.split(","):
            name, eq, frac = part.partition("=")
            try:
                pairs.append((name.strip(), float(frac)))
            except ValueError:
                raise SelectionError(
                    f"bad split spec {spec!r}",
                    hint="write NAME=FRACTION,..., e.g. train=0.8,val=0.2",
                ) from None
            if not eq:
                raise SelectionError(f"bad split spec {spec!r}", hint="write train=0.8,val=0.2")
    else:
        items = spec.items() if isinstance(spec, Mapping) else spec
        pairs = [(str(k), float(v)) for k, v in items]
    names = [n for n, _ in pairs]
    bad = [n for n in names if not _SPLIT_NAME.match(n)]
    if not pairs or bad or len(set(names)) != len(names):
        raise SelectionError(
            f"bad split names in {_show(pairs)}", hint="unique names of letters, digits, _ . -"
        )
    if any(not (0 < f <= 1) for _, f in pairs) or abs(sum(f for _, f in pairs) - 1) > 1e-6:
        raise SelectionError(
            f"split fractions must be positive and sum to 1: {_show(pairs)}",
            hint="e.g. train=0.8,val=0.1,test=0.1",
        )
    return tuple(pairs)


def _show(pairs: list[tuple[str, float]]) -> str:
    return ",".join(f"{n}={f:g}" for n, f in pairs)


def _toml_key(key: str) -> str:
    return key if re.fullmatch(r"[A-Za-z0-9_-]+", key) else _toml_str(key)


def _toml_str(text: str) -> str:
    out = []
    for ch in text:
        if ch in ('"', "\\"):
            out.append("\\" + ch)
        elif ord(ch) < 0x20 or ord(ch) == 0x7F:
            out.append(f"\\u{ord(ch):04X}")
        else:
            out.append(ch)
    return '"' + "".join(out) + '"'


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return repr(value)
    if isinstance(value, str):
        return _toml_str(value)
    if isinstance(value, list):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    if isinstance(value, dict):
        body = ", ".join(f"{_toml_key(k)} = {_toml_value(v)}" for k, v in value.items())
        return "{ " + body + " }"
    raise TypeError(f"cannot write {type(value).__name__} as TOML")
