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

import hashlib
import re
import string
import unicodedata
from collections.abc import Sequence

import polars as pl

from vlanalyze._fs import MAX_NAME_BYTES, TEMP_NAME_OVERHEAD
from vlanalyze.errors import MaterializeError

__all__ = [
    "FIELDS",
    "check_all",
    "check_component",
    "check_relative",
    "clash_reason",
    "find_collisions",
    "name_key",
    "path_hint",
    "render_names",
    "split_name",
    "split_names",
]

FIELDS = ("media_id", "file_name", "stem", "ext", "file_path", "label", "split")

_WINDOWS_ILLEGAL = re.compile(r'[<>:"|?*\\\x00-\x1f]')
_WINDOWS_RESERVED = {
    "con",
    "prn",
    "aux",
    "nul",
    *(f"com{i}" for i in "123456789¹²³"),  # (Windows reserves the superscripts too)
    *(f"lpt{i}" for i in "123456789¹²³"),
}


def split_name(file_name: str) -> tuple[str, str]:
    """``("a.webp", ".jpg")`` for ``"a.webp.jpg"``: the stem and the last extension of
    the name without its trailing dots and spaces (Windows drops them: ``"a.jpg. "`` is
    ``("a", ".jpg")``); no extension for ``".hidden"``. :func:`split_names` is the same
    rule over a column."""
    name = file_name.rstrip(". ")
    dot = name.rfind(".")
    if dot <= 0:
        return name, ""
    return name[:dot], name[dot:]


def split_names(column: pl.Expr) -> tuple[pl.Expr, pl.Expr]:
    """:func:`split_name` of every value of ``column``: the stem and extension columns."""
    name = column.str.strip_chars_end(". ")
    # (?s): a name may hold a newline (Linux allows it), which "." does not match without
    ext = name.str.extract(r"(?s).(\.[^.]*)$", 1).fill_null("")
    return name.str.head(name.str.len_chars() - ext.str.len_chars()), ext


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
    ``media_id8``); the default name when there is no template.

    The default name suits every system whatever the export's file names (Linux allows
    ``12:00:01.jpg``): characters Windows forbids become ``_``, a trailing dot or space
    of the stem or extension goes, a stem Windows reserves (``con.tar``) takes a ``_``,
    and a name over ``MAX_NAME_BYTES`` is cut in its stem (see :func:`_joined`). Names
    are made safe first, then compared: names that meet (as :func:`name_key` compares
    them) take the full id, and those that still meet (ids differing only in case, or in
    characters made safe) the full id and a digest of it.
    """
    if template is not None:
        check_template(template)
        rows = frame.select(FIELDS).to_dicts()
        return pl.Series("name", [template.format_map(row) for row in rows], dtype=pl.String)
    short = _joined(frame, "media_id8")  # (long names are cut there, safe or not)
    safe = frame
    if short.str.contains(_NEEDS_CARE).any():
        safe = _safe_parts(frame)  # (rare: one scan above keeps the common case fast)
        short = _joined(safe, "media_id8")
    # Two short names that meet, case and normalization ignored: both take the full id.
    met = _keys(short).is_duplicated()
    if not met.any():
        return short
    safe = _safe_parts(safe)
    names = short.zip_with(~met, _joined(safe, "media_id")).alias("name")
    still = _keys(names).is_duplicated()  # ids that differ only in case or unsafe characters
    if not still.any():
        return names
    return names.zip_with(~still, _joined(_digested(safe, frame["media_id"]), "media_id"))


def _digested(safe: pl.DataFrame, ids: pl.Series) -> pl.DataFrame:
    """``safe`` with each (safe) media id followed by a digest of the id as given."""
    digests = [hashlib.sha256(m.encode("utf-8")).hexdigest()[:8] for m in ids]
    return safe.with_columns(media_id=pl.col("media_id") + "-" + pl.Series(digests))


# Characters Windows forbids in a name, and "/" (a file name is one path component).
_UNSAFE = r'[<>:"/|?*\\\x00-\x1f]'
# A stem whose first dot-separated part Windows reserves: "con.tar" -> "con_.tar"
# (a stem without a dot is followed by "__<id>", which no reserved name holds).
_RESERVED_STEM = r"(?i)^(con|prn|aux|nul|com[1-9¹²³]|lpt[1-9¹²³])\."
# Any short name that _safe_parts would change matches (and a few it would not).
_NEEDS_CARE = rf"{_UNSAFE}|[. ](__|$)|{_RESERVED_STEM}"
# A YOLO label file is named <image stem>.txt: an image name whose extension is shorter
# than this leaves room for it.
_LABEL_EXT_BYTES = len(".txt")


def _safe_parts(frame: pl.DataFrame) -> pl.DataFrame:
    """The stem, extension and ids of the default name, made safe for every system."""
    return frame.select(
        stem=_safe(pl.col("stem")).str.strip_chars_end(". ").str.replace(_RESERVED_STEM, "${1}_."),
        ext=_safe(pl.col("ext")).str.strip_chars_end(". "),
        # (an id ends the name where there is no extension)
        media_id8=_safe(pl.col("media_id8")).str.strip_chars_end(". "),
        media_id=_safe(pl.col("media_id")).str.strip_chars_end(". "),
    )


def _safe(column: pl.Expr) -> pl.Expr:
    return column.str.replace_all(_UNSAFE, "_")


def _joined(parts: pl.DataFrame, id_column: str) -> pl.Series:
    """``<stem>__<id><ext>``, each within ``MAX_NAME_BYTES`` (where ``parts`` are safe),
    and so is a YOLO label file ``<stem>__<id>.txt`` of it: vlanalyze writes each file
    through a temporary name longer than its own (see ``vlanalyze._fs``)."""
    name = pl.concat_str(pl.col("stem"), pl.lit("__"), pl.col(id_column), pl.col("ext"))
    room = pl.min_horizontal(pl.col("ext").str.len_bytes(), _LABEL_EXT_BYTES)
    limit = MAX_NAME_BYTES - _LABEL_EXT_BYTES + room
    checked = parts.select(name.alias("name"), long=name.str.len_bytes() > limit)
    names = checked["name"]
    long = checked["long"].arg_true()
    if long.len() == 0:
        return names
    fixed = names.to_list()
    rows = parts.select("stem", id_column, "ext").rows()
    for i in long.to_list():
        stem, media_id, ext = rows[i]
        fixed[i] = _fit(stem, f"__{media_id}{ext}", _limit(ext))
    return pl.Series("name", fixed, dtype=pl.String)


def _limit(ext: str) -> int:
    """The longest default name with extension ``ext``, as :func:`_joined` computes it."""
    return MAX_NAME_BYTES - _LABEL_EXT_BYTES + min(len(ext.encode("utf-8")), _LABEL_EXT_BYTES)


def _fit(stem: str, tail: str, limit: int) -> str:
    """``stem + tail`` cut to ``limit`` bytes: the stem first, whole characters only
    (the tail too where it alone is longer: an extension of hundreds of bytes)."""
    room = limit - len(tail.encode("utf-8"))
    if room < 0:
        stem, tail, room = "", tail.encode("utf-8")[:limit].decode("utf-8", "ignore"), 0
    return (stem.encode("utf-8")[:room].decode("utf-8", "ignore") + tail).rstrip(". ")


def _keys(names: pl.Series) -> pl.Series:
    """:func:`name_key` of each name: vectorized for ASCII names, the others one by one."""
    keys = names.str.to_lowercase()
    wide = (names.str.len_bytes() != names.str.len_chars()).arg_true()
    if wide.len() == 0:
        return keys
    values = keys.to_list()
    for i in wide.to_list():
        values[i] = name_key(names[i])
    return pl.Series(keys.name, values, dtype=pl.String)


def check_component(part: str, what: str) -> None:
    """Raise unless ``part`` is one safe path component (a label, a split, a file name)."""
    problem = _component_problem(part)
    if problem:
        raise MaterializeError(
            f"{what} {part!r} cannot be a file or folder name: {problem}",
            hint="rename it in the selection (a label or split column), or choose another name",
        )


def check_relative(path: str, what: str, hint: str | None = None) -> None:
    """Raise unless ``path`` (posix, relative) stays inside its folder and suits Windows
    (``hint``: what to change, from :func:`path_hint`)."""
    hint = hint or path_hint(None)
    if not path or path.startswith("/") or re.match(r"^[A-Za-z]:", path):
        raise MaterializeError(
            f"{what} {path!r} is not a relative path inside the output folder", hint=hint
        )
    for part in path.split("/"):
        problem = _component_problem(part)
        if problem:
            raise MaterializeError(
                f"{what} {path!r} is not a safe path: {part!r} {problem}", hint=hint
            )


def path_hint(template: str | None) -> str:
    """What to change when a destination made with ``template`` is unsafe."""
    if template is None:  # the default name is safe: the value is a label or split
        return "rename it in the selection (a label or split column)"
    fields = {f for _t, f, _s, _c in string.Formatter().parse(template) if f is not None}
    values = " or the selection's label/split values" if fields & {"label", "split"} else ""
    return (
        f"change the name template (--name / name=){values}, or leave the template out: "
        "the default name is safe on every system"
    )


# One pass over every path for what _component_problem looks for; only paths it flags
# are checked one by one (to name the problem). Keep the two in step.
_SUSPECT = (
    r'(?i)^/|^[A-Za-z]:|[<>:"|?*\\\x00-\x1f]|(^|/)\.{0,2}(/|$)|[. ](/|$)'
    r"|(^|/)(con|prn|aux|nul|com[1-9¹²³]|lpt[1-9¹²³])(\.|/|$)"
    rf"|[^/]{{{MAX_NAME_BYTES + 1}}}"
)


def check_all(paths: Sequence[str], what: str, hint: str | None = None) -> None:
    """:func:`check_relative` for many paths, vectorized (the common case: all fine)."""
    series = pl.Series(paths, dtype=pl.String)
    suspect = series.str.contains(_SUSPECT)
    for path in series.filter(suspect):
        check_relative(path, what, hint)
    # _SUSPECT counts characters: a path over the limit in bytes may hold a name over it
    # in bytes (é is two): measure the names of those few.
    long = series.filter(series.str.len_bytes() > MAX_NAME_BYTES)
    if long.len():
        widest = long.str.split("/").list.eval(pl.element().str.len_bytes()).list.max()
        for path in long.filter(widest > MAX_NAME_BYTES):
            check_relative(path, what, hint)


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
    if len(part.encode("utf-8")) > MAX_NAME_BYTES:
        return (
            f"is longer than {MAX_NAME_BYTES} bytes (vlanalyze writes each file through a "
            f"temporary name {TEMP_NAME_OVERHEAD} bytes longer, and a name holds at most 255)"
        )
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
    return lowered.n_unique() != folders.len() or bool(keys.is_in(lowered.implode()).any())
