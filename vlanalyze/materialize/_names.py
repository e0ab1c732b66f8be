"""File names of materialized images, and the checks every destination must pass.

The default name ``<stem>__<media_id[:8]><ext>`` keeps names readable and unique
(video frames all share ``output_00000N.jpg``); where two short names still meet
(case-insensitively), those items take the full media id. A ``--name`` template is
used as given, and the plan rejects what it would break: collisions, names Windows
cannot hold, and anything that would land outside OUT. Names collide as macOS and
Windows compare them, case folded and Unicode normalized (``Cat/`` and ``cat/`` are one
folder there, ``café`` composed and decomposed one name on macOS), files and folders
alike. Pure string work: nothing here touches a disk.
"""

from __future__ import annotations

import re
import string
import unicodedata
from collections.abc import Sequence

import polars as pl

from vlanalyze.errors import MaterializeError

__all__ = [
    "FIELDS",
    "check_all",
    "check_component",
    "check_relative",
    "clash_reason",
    "find_collisions",
    "name_key",
    "render_names",
    "split_name",
]

FIELDS = ("media_id", "file_name", "stem", "ext", "file_path", "label", "split")

_WINDOWS_ILLEGAL = re.compile(r'[<>:"|?*\\\x00-\x1f]')
_WINDOWS_RESERVED = {
    "con",
    "prn",
    "aux",
    "nul",
    *(f"com{i}" for i in range(1, 10)),
    *(f"lpt{i}" for i in range(1, 10)),
}


def split_name(file_name: str) -> tuple[str, str]:
    """``("a.webp", ".jpg")`` for ``"a.webp.jpg"``: the stem and the last extension."""
    dot = file_name.rfind(".")
    if dot <= 0:
        return file_name, ""
    return file_name[:dot], file_name[dot:]


def check_template(template: str) -> None:
    """Raise unless ``template`` uses only the known ``{fields}``."""
    try:
        fields = [f for _t, f, _s, _c in string.Formatter().parse(template) if f is not None]
    except ValueError as exc:
        raise MaterializeError(f"bad name template {template!r}: {exc}") from None
    unknown = [f for f in fields if f not in FIELDS]
    if unknown or not fields:
        raise MaterializeError(
            f"bad name template {template!r}"
            + (f": unknown field {{{unknown[0]}}}" if unknown else ": it uses no field"),
            hint="use " + ", ".join(f"{{{f}}}" for f in FIELDS),
        )


def render_names(frame: pl.DataFrame, template: str | None) -> pl.Series:
    """One name per row of ``frame`` (which holds the FIELDS as text columns, and
    ``media_id8``); the default name when there is no template."""
    if template is not None:
        check_template(template)
        rows = frame.select(FIELDS).to_dicts()
        return pl.Series("name", [template.format_map(row) for row in rows], dtype=pl.String)
    stem, ext = pl.col("stem"), pl.col("ext")
    short = pl.concat_str(stem, pl.lit("__"), pl.col("media_id8"), ext)
    full = pl.concat_str(stem, pl.lit("__"), pl.col("media_id"), ext)
    names = frame.select(short.alias("name"))
    # Two short names that meet, case ignored: both take the full media id.
    met = names["name"].str.to_lowercase().is_duplicated()
    return frame.select(pl.when(met).then(full).otherwise(short).alias("name"))["name"]


def check_component(part: str, what: str) -> None:
    """Raise unless ``part`` is one safe path component (a label, a split, a file name)."""
    problem = _component_problem(part)
    if problem:
        raise MaterializeError(
            f"{what} {part!r} cannot be a file or folder name: {problem}",
            hint="rename it in the selection (a label or split column), or choose another name",
        )


def check_relative(path: str, what: str) -> None:
    """Raise unless ``path`` (posix, relative) stays inside its folder and suits Windows."""
    if not path or path.startswith("/") or re.match(r"^[A-Za-z]:", path):
        raise MaterializeError(
            f"{what} {path!r} is not a relative path inside the output folder",
            hint="fix the name template or the selection's label/split",
        )
    for part in path.split("/"):
        problem = _component_problem(part)
        if problem:
            raise MaterializeError(
                f"{what} {path!r} is not a safe path: {part!r} {problem}",
                hint="fix the name template (--name / name=) or the selection's label/split",
            )


# One pass over every path for what _component_problem looks for; only paths it flags
# are checked one by one (to name the problem). Keep the two in step.
_SUSPECT = (
    r'(?i)^/|^[A-Za-z]:|[<>:"|?*\\\x00-\x1f]|(^|/)\.{0,2}(/|$)|[. ](/|$)'
    r"|(^|/)(con|prn|aux|nul|com[1-9]|lpt[1-9])(\.|/|$)|[^/]{256}"
)


def check_all(paths: Sequence[str], what: str) -> None:
    """:func:`check_relative` for many paths, vectorized (the common case: all fine)."""
    series = pl.Series(paths, dtype=pl.String)
    # (a path over 255 bytes may hold a component over 255 bytes: check those too)
    flagged = series.filter(series.str.contains(_SUSPECT) | (series.str.len_bytes() > 255))
    for path in flagged:
        check_relative(path, what)


def _component_problem(part: str) -> str | None:
    if part in ("", ".", ".."):
        return "is empty, '.' or '..'"
    if "/" in part:
        return "holds '/'"
    if _WINDOWS_ILLEGAL.search(part):
        return 'holds a character Windows forbids (<>:"|?*\\ or a control character)'
    if part.endswith((".", " ")):
        return "ends with a dot or space (Windows drops them)"
    if part.split(".", 1)[0].casefold() in _WINDOWS_RESERVED:
        return "is a name Windows reserves (CON, NUL, COM1, ...)"
    if len(part.encode("utf-8")) > 255:
        return "is longer than 255 bytes"
    return None


def find_collisions(paths: Sequence[str]) -> list[tuple[str, str]]:
    """Pairs of paths that would land on one file or folder where names are compared
    case-insensitively and normalized (macOS, Windows): two files, two spellings of a
    folder (shown with a trailing ``/``), or a file and a folder of one name."""
    if not _may_collide(paths):
        return []
    files: dict[str, str] = {}  # key -> the first path with it
    folders: dict[str, str] = {}  # key -> the first spelling of that folder
    spellings: set[str] = set()  # every folder spelling seen
    seen_dirs: set[str] = set()  # folders whose ancestors are all in ``folders`` already
    clashes: list[tuple[str, str]] = []
    for path in paths:
        key = name_key(path)
        if key in files:
            clashes.append((files[key], path))
        else:
            files[key] = path
        folder = path.rpartition("/")[0]
        if not folder or folder in seen_dirs:
            continue
        seen_dirs.add(folder)
        # Keys keep every "/" where it was (NFC and case folding never make or take one).
        parts, key_parts = folder.split("/"), key.split("/")
        for i in range(1, len(parts) + 1):
            spelling = "/".join(parts[:i])
            if spelling in spellings:
                continue
            spellings.add(spelling)
            first = folders.setdefault("/".join(key_parts[:i]), spelling)
            if first != spelling:
                clashes.append((first + "/", spelling + "/"))
    clashes.extend((files[k], folders[k] + "/") for k in files.keys() & folders.keys())
    return clashes


def name_key(path: str) -> str:
    """What macOS and Windows compare of a name: case folded, Unicode normalized
    (the canonical caseless match of the Unicode standard)."""
    if path.isascii():
        return path.lower()
    return unicodedata.normalize("NFD", unicodedata.normalize("NFD", path).casefold())


def clash_reason(a: str, b: str) -> str:
    """Why paths ``a`` and ``b`` (a pair from :func:`find_collisions`) are one name."""
    if a.endswith("/") != b.endswith("/"):
        return "a file and a folder of one name"
    if a == b:
        return ""
    what = "folder" if a.endswith("/") else "file"
    if a.casefold() == b.casefold():
        return f"{what} names differing only in case are one {what} on macOS and Windows"
    if unicodedata.normalize("NFC", a) == unicodedata.normalize("NFC", b):
        why = "only in Unicode normalization (é composed or decomposed)"
    else:
        why = "only in case and Unicode normalization (é composed or decomposed)"
    return f"{what} names differing {why} are one {what} on macOS"


def _may_collide(paths: Sequence[str]) -> bool:
    """False when no two ``paths`` meet, case ignored, none is another's folder, and no
    two folders differ only in case: the common case, vectorized (ASCII paths only;
    others take the exact check)."""
    series = pl.Series(paths, dtype=pl.String)
    if (series.str.len_bytes() != series.str.len_chars()).any():
        return True  # beyond ASCII, casefold and normalization decide (e.g. "ß" and "ss")
    keys = series.str.to_lowercase()
    if keys.n_unique() != keys.len():
        return True
    nested = series.filter(series.str.contains("/", literal=True))
    if nested.is_empty():
        return False
    # Every folder, as spelled: the few distinct parents first, then their ancestors.
    level = nested.str.replace(r"/[^/]*$", "").unique()
    found = [level]
    while True:
        level = level.filter(level.str.contains("/", literal=True))
        if level.is_empty():
            break
        level = level.str.replace(r"/[^/]*$", "").unique()
        found.append(level)
    folders = pl.concat(found).unique()
    lowered = folders.str.to_lowercase()
    return lowered.n_unique() != folders.len() or bool(keys.is_in(lowered).any())
