"""Plan a materialization: what goes where, and what is already there. Writes nothing.

:func:`plan_materialize` joins a selection to the export, picks labels and splits,
names every file, checks every destination (collisions, Windows names, escapes), finds
each image's source, and compares each destination with what is on disk: ``write``
(absent, or an earlier run's file that is out of date), ``skip`` (up to date by size
and mtime, as rsync's quick check), ``conflict`` (a file this tool did not write, or
one changed since it wrote it: see :mod:`vlanalyze.materialize._state`) or ``missing``
(no source). :func:`vlanalyze.materialize` then applies the plan.

What the export says of the selected items (labels, names, boxes) is read by
:mod:`vlanalyze.materialize._items`.
"""

from __future__ import annotations

import dataclasses
import json
import os
import posixpath
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import polars as pl

from vlanalyze._fs import atomic_path
from vlanalyze._version import __version__
from vlanalyze.errors import MaterializeError
from vlanalyze.materialize import _names as names_mod
from vlanalyze.materialize._items import all_labels, boxes_of, items_of
from vlanalyze.materialize._layouts import LAYOUTS, image_dests, layout_notes, side_files
from vlanalyze.materialize._selection import HasTable, SelectionTable, read_selection
from vlanalyze.materialize._sources import check_mode, resolve_sources
from vlanalyze.materialize._state import (
    FILES_FILE,
    MANIFEST_FILE,
    RECORD_FILE,
    Recorded,
    RecordStamp,
    dest_action,
    file_in_the_way,
    manifest_conflict,
    read_record,
    record_stamp,
    side_action,
    write_error,
)
from vlanalyze.query._export import Export

__all__ = ["MODES", "Plan", "plan_materialize"]

MODES = ("copy", "hardlink", "symlink", "reflink")


@dataclass
class Plan:
    """What :func:`vlanalyze.materialize` will do. ``table`` is one row per selected item:
    media_id, source, kind, dest, bytes, mtime_ns, action, label, split, uniqueness_score,
    url, file_path (the item's path in the dataset's storage). ``side_files`` are the
    layout's own files (path -> content) and their actions; ``notes`` are for people (e.g.
    why the ``hf`` metadata is Parquet, or what stands in for a YOLO split)."""

    out: Path
    layout: str
    mode: str
    table: pl.DataFrame
    side_files: dict[str, bytes]
    side_actions: dict[str, str]
    record: dict[str, Any]
    previous: dict[str, int]
    absolute_links: bool = False
    storage_options: dict[str, Any] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    stamp: RecordStamp = None  # the output folder's record when the plan was made
    mtimes: dict[str, int] = field(default_factory=dict)  # recorded mtimes of ``previous``

    def count(self, action: str) -> int:
        """How many images have ``action`` (write, skip, conflict, missing, list)."""
        return int((self.table["action"] == action).sum())

    @property
    def conflicts(self) -> list[str]:
        """Files this tool did not write, or changed since it wrote them, that are in
        the way (paths under :attr:`out`): at a destination (images, side files and the
        manifest), or where a destination needs a folder (one ``space`` file in the way
        of ``space/a.png`` and ``space/b.png`` is listed once, as ``space``)."""
        rows = self.table.filter(pl.col("action") == "conflict")["dest"].to_list()
        rows += [p for p, a in self.side_actions.items() if a == "conflict"]
        return list(dict.fromkeys(_in_the_way(self.out, rows)))

    @property
    def missing(self) -> list[str]:
        """Media ids whose image was found nowhere."""
        return list(self.table.filter(pl.col("action") == "missing")["media_id"])

    @property
    def stale(self) -> list[str]:
        """Files an earlier run wrote that this plan no longer has (what prune removes)."""
        if not self.previous:
            return []
        keep = set(self.table["dest"].drop_nulls()) | set(self.side_files)
        keep |= {MANIFEST_FILE, RECORD_FILE, FILES_FILE}
        return sorted(p for p in self.previous if p not in keep)

    def summary(self) -> dict[str, int]:
        """Counts: images to write / skip, conflicts, missing, bytes to write, side files."""
        writing = self.table.filter(pl.col("action") == "write")
        return {
            "items": self.table.height,
            "write": writing.height,
            "skip": self.count("skip"),
            "conflict": len(self.conflicts),
            "missing": self.count("missing"),
            "bytes_to_write": int(writing["bytes"].fill_null(0).sum()),
            "side_files_to_write": sum(a == "write" for a in self.side_actions.values()),
            "stale": len(self.stale),
        }

    def check(self, *, see_all: str = "plan.conflicts and plan.missing list them all") -> None:
        """Raise unless the plan can be applied: no conflicts, no missing sources.

        Args:
            see_all: where to see every one, added to the hint when the message shows
                only the first few (the CLI says ``--dry-run``).

        Raises:
            MaterializeError: naming the conflicting files or missing media.
        """
        conflicts = self.conflicts
        if conflicts:
            raise MaterializeError(
                f"{len(conflicts)} file(s) in {self.out} that vlanalyze did not write, or "
                f"that changed since it wrote them, are in the way: {_first(conflicts)}; "
                "nothing was written",
                hint=_more("move them away, or choose another output folder", conflicts, see_all),
            )
        missing = self.missing if self.layout != "csv" else []
        if missing:
            raise MaterializeError(
                f"{len(missing)} selected image(s) are not in the export or images root: "
                f"{_first(missing)}; nothing was written",
                hint=_more(
                    "give images_root= (--images-root), or fetch them (--fetch-missing DATASET_ID)",
                    missing,
                    see_all,
                ),
            )

    def with_rows(self, rows: pl.DataFrame) -> Plan:
        """This plan restricted to ``rows`` (a partition of :attr:`table`, e.g. read back
        from :meth:`write_parquet`), for ``materialize(part, images_only=True)``."""
        table = rows.select(pl.col(c).cast(t) for c, t in self.table.schema.items())
        return dataclasses.replace(self, table=table, side_files={}, side_actions={})

    def begin(self) -> None:
        """Write the output folder's record, listing every file this plan will write,
        before partitions are applied elsewhere (materialize does it itself otherwise)."""
        from vlanalyze.materialize._record import begin

        begin(self)
        self.stamp = record_stamp(self.out)  # (the record is this plan's own now)

    def write_parquet(self, path: str | os.PathLike[str], *, overwrite: bool = False) -> None:
        """Save the plan's table (with the output folder and mode as columns and in its
        metadata), atomically, for an engine that applies it in parallel partitions.

        Raises:
            MaterializeError: ``path`` exists and not ``overwrite``, or cannot be written.
        """
        import pyarrow.parquet as pq

        table = self.table.with_columns(out=pl.lit(str(self.out)), mode=pl.lit(self.mode))
        arrow = table.to_arrow()
        meta = {b"vlanalyze_plan": json.dumps({"out": str(self.out), "mode": self.mode}).encode()}
        try:
            with atomic_path(path, overwrite=overwrite) as tmp:
                pq.write_table(arrow.replace_schema_metadata(meta), tmp)
        except OSError as exc:
            raise write_error(Path(path), exc, "name a file in a folder you can write to") from exc


_SHOWN = 5  # conflicts or missing media named in an error


def _first(names: list[str]) -> str:
    more = len(names) - _SHOWN
    return ", ".join(names[:_SHOWN]) + (f" and {more} more" if more > 0 else "")


def _more(hint: str, names: list[str], see_all: str) -> str:
    return f"{hint}; {see_all}" if len(names) > _SHOWN else hint


def _in_the_way(out: Path, dests: list[str]) -> Iterator[str]:
    """Each conflicting destination, or the file in the way of its folder (found once
    per folder)."""
    blockers: dict[str, str | None] = {}
    for dest in dests:
        if os.path.lexists(out / dest):
            yield dest
            continue
        folder = posixpath.dirname(dest)
        if folder not in blockers:
            found = file_in_the_way(out / folder) if folder else None
            blockers[folder] = None if found is None else _under(out, found)
        yield blockers[folder] or dest


def _under(out: Path, path: Path) -> str:
    return path.relative_to(out).as_posix() if path.is_relative_to(out) else str(path)


def plan_materialize(
    export: Export,
    selection: str | os.PathLike[str] | pl.DataFrame | SelectionTable | HasTable,
    out: str | os.PathLike[str],
    *,
    layout: str = "flat",
    mode: str = "copy",
    name: str | None = None,
    images_root: str | os.PathLike[str] | None = None,
    extra_sources: Sequence[Export | str | os.PathLike[str]] = (),
    absolute_links: bool = False,
    storage_options: Mapping[str, Any] | None = None,
) -> Plan:
    """Plan the files for ``selection`` under ``out``; read the disk, write nothing.

    Args:
        export: the opened export.
        selection: a file with a ``media_id`` column (CSV, Parquet, NDJSON), ``"-"``,
            or a polars DataFrame; ``label`` and ``split`` columns are used if present.
        out: the output folder.
        layout: flat, by-label, imagefolder, hf, yolo, coco or csv.
        mode: copy, hardlink, symlink or reflink.
        name: a file-name template over {media_id} {file_name} {stem} {ext} {file_path}
            {label} {split} (default: ``<stem>__<media_id[:8]><ext>``).
        images_root: a folder or object-store URL the items' ``file_path``s are under.
        extra_sources: more exports (folders or ZIPs) to take images from.
        absolute_links: symlinks point at absolute paths (default: relative).
        storage_options: passed to fsspec for an object-store ``images_root``.

    Returns:
        The :class:`Plan`.

    Raises:
        SelectionError: bad selection, or media ids the export does not have.
        MaterializeError: unsafe or colliding names, or a mode the sources cannot take.
    """
    out_path = _checked(out, layout, mode, absolute_links)
    sel = read_selection(selection)
    items = items_of(export, sel)
    items = items.with_columns(name=names_mod.render_names(items, name))
    items = items.with_columns(dest=image_dests(layout, items))
    boxes = boxes_of(export, sel) if layout in ("yolo", "coco", "hf") else {}
    labels = all_labels(export, sel) if layout == "hf" else {}
    extra = side_files(layout, items, boxes, labels, out_path)
    _check_paths(items["dest"].drop_nulls().to_list(), list(extra), name)
    sources = resolve_sources(
        export,
        items.select("media_id", "file_path"),
        extra=extra_sources,
        images_root=images_root,
        storage_options=storage_options,
        mode=mode,
    )
    table = items.join(sources, on="media_id", how="left", maintain_order="left")
    check_mode(table, mode, out_path, layout)
    plan = _finish(export, sel, out_path, layout, mode, name, images_root, table, extra,
                   absolute_links)  # fmt: skip
    plan.storage_options = dict(storage_options or {})
    plan.notes = layout_notes(layout, items, extra, boxes) + _template_notes(name, items)
    return plan


def _checked(out: str | os.PathLike[str], layout: str, mode: str, absolute_links: bool) -> Path:
    """The output folder, absolute, once the arguments are checked."""
    if layout not in LAYOUTS:
        raise ValueError(f"unknown layout {layout!r}; choose one of {', '.join(LAYOUTS)}")
    if mode not in MODES:
        raise ValueError(f"unknown mode {mode!r}; choose one of {', '.join(MODES)}")
    if absolute_links and mode != "symlink":
        raise ValueError(f"absolute_links is for symlinks; mode is {mode!r}")
    if not os.fspath(out).strip():
        raise ValueError("out is empty: name the output folder (an unset variable?)")
    out_path = Path(out).expanduser().absolute()
    if out_path.is_symlink() and not out_path.exists():
        raise MaterializeError(
            f"the output folder {out_path} is a symbolic link to {os.readlink(out_path)}, "
            "which does not exist",
            hint="create that folder, or choose another output folder",
        )
    return out_path


def _finish(
    export: Export,
    sel: SelectionTable,
    out: Path,
    layout: str,
    mode: str,
    name: str | None,
    images_root: str | os.PathLike[str] | None,
    table: pl.DataFrame,
    extra: dict[str, bytes],
    absolute_links: bool,
) -> Plan:
    stamp = record_stamp(out)  # (before reading it: a change between makes a mismatch)
    recorded = read_record(out)
    previous, mtimes = recorded
    table = table.with_columns(action=_actions(table, out, mode, absolute_links, recorded))
    if layout == "csv":
        table = table.with_columns(dest=pl.lit(None, pl.String))
    side_actions = {p: side_action(out, p, data, recorded) for p, data in extra.items()}
    if manifest_conflict(out, recorded):  # someone's own manifest.csv, or edited
        side_actions[MANIFEST_FILE] = "conflict"
    if not os.path.lexists(out / RECORD_FILE) and os.path.lexists(out / FILES_FILE):
        side_actions[FILES_FILE] = "conflict"  # not ours: our record would name it
    record = {
        "tool": "vlanalyze materialize",
        "version": __version__,
        "export": {"fingerprint": export.source.fingerprint(), "info": _info(export)},
        "selection": {"source": sel.source, "sha256": sel.sha256, "rows": sel.frame.height},
        "parameters": {
            "layout": layout,
            "mode": mode,
            "name": name,
            "images_root": None if images_root is None else os.fspath(images_root),
            "absolute_links": absolute_links,
        },
    }
    columns = ["media_id", "source", "kind", "dest", "bytes", "mtime_ns", "action"]
    columns += ["label", "split", "uniqueness_score", "url", "file_path"]
    return Plan(out, layout, mode, table.select(columns), extra, side_actions, record,
                previous, absolute_links, stamp=stamp, mtimes=mtimes)  # fmt: skip


def _actions(
    table: pl.DataFrame, out: Path, mode: str, absolute: bool, recorded: Recorded
) -> pl.Series:
    """Each image's action; an output folder that does not exist yet needs no look."""
    if not os.path.lexists(out):
        return table.select(
            pl.when(pl.col("dest").is_null())
            .then(pl.lit("list"))
            .when(pl.col("source").is_null())
            .then(pl.lit("missing"))
            .otherwise(pl.lit("write"))
        ).to_series()
    rows = table.select("dest", "source", "kind", "bytes", "mtime_ns").iter_rows()
    return pl.Series(
        [
            "list"
            if dest is None
            else dest_action(out, dest, src, kind, size, mtime, mode, absolute, recorded)
            for dest, src, kind, size, mtime in rows
        ],
        dtype=pl.String,
    )


def _info(export: Export) -> dict[str, Any]:
    info = export.info
    return {**info.block, "format": info.format, "counts": info.counts}


def _check_paths(dests: list[str], extra: list[str], template: str | None) -> None:
    names_mod.check_all(dests, "the destination", names_mod.path_hint(template))
    # (a YOLO label file <stem>.txt of an image named by a template may be too long)
    names_mod.check_all(extra, "the layout file", names_mod.path_hint(template))
    reserved = [MANIFEST_FILE, RECORD_FILE, FILES_FILE]
    clashes = names_mod.find_collisions([*dests, *extra, *reserved])
    if clashes:
        a, b = clashes[0]
        reason = names_mod.clash_reason(a, b)
        # A folder is a label or split (or a template's): renaming it is the way out,
        # as for a label named manifest.csv (vlanalyze's own file) in by-label.
        folder = a.endswith("/") or b.endswith("/")
        raise MaterializeError(
            f"{len(clashes)} destination(s) collide, e.g. {a!r} and {b!r}"
            + (f" ({reason})" if reason else ""),
            hint="rename one of the labels or splits in the selection (a label or split "
            "column), or change the name template"
            if folder
            else "use the default name, or a name template with {media_id}",
        )


def _template_notes(template: str | None, items: pl.DataFrame) -> list[str]:
    """Names a template gave without an extension make files image readers skip."""
    if template is None or items["dest"].null_count() == items.height:  # (csv: no files)
        return []
    bare = items.filter(names_mod.split_names(pl.col("name"))[1] == "")
    if bare.is_empty():
        return []
    return [
        f"the name template {template!r} gives {bare.height} names without an extension "
        f"(e.g. {bare['name'][0]!r}): torchvision's ImageFolder and datasets skip such "
        "files; add {ext}"
    ]
