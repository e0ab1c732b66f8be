"""The tidy tables of an export: their names, columns, and the SQL that builds them.

Every reader (JSON or Parquet) first presents its rows as one DuckDB relation named
``src`` with the *canonical* columns below (``metadata_items`` typed as
:data:`ITEMS_TYPE`, unknown top-level keys as extra columns); the SQL here turns
``src`` into the tidy tables. Keeping the tidy SQL in one place is what makes both
forms of an export give identical tables.

This module only holds names, types and SQL text; it runs nothing.
"""

from __future__ import annotations

import json

from vlanalyze.query._sql import quote_ident, quote_literal

# Keys of a media item that the tidy ``media`` table knows by name.
KNOWN_MEDIA_KEYS: dict[str, str] = {
    "media_id": "VARCHAR",
    "media_type": "VARCHAR",
    "file_name": "VARCHAR",
    "file_path": "VARCHAR",
    "file_size": "VARCHAR",
    "uniqueness_score": "DOUBLE",
    "height": "BIGINT",
    "width": "BIGINT",
    "url": "VARCHAR",
    "cluster_id": "VARCHAR",
    "media_status": "VARCHAR",
    "insertion_time": "VARCHAR",
}

# The properties of each known metadata item type, as JSON structures (DuckDB's
# ``from_json`` form). A batch holds each item's properties as JSON text; each tidy table
# types the properties of its own items alone (see TIDY_SQL), leniently as ``from_json``
# does: a value that is not of its type (or not there) is NULL, as in a Parquet export.
ISSUE_PROPS: dict[str, object] = {
    "issue_type": "VARCHAR",
    "confidence": "DOUBLE",
    "duplicate_group_id": "VARCHAR",
    "duplicate_threshold": "DOUBLE",
}
LABEL_PROPS: dict[str, object] = {
    "category_name": "VARCHAR",
    "source": "VARCHAR",
    "original_id": "BIGINT",
}
OBJECT_PROPS: dict[str, object] = {
    **LABEL_PROPS,
    "bbox": ["DOUBLE"],
    "uniqueness_score": "DOUBLE",
    "url": "VARCHAR",
    "metadata_items": [{"type": "VARCHAR", "properties": ISSUE_PROPS}],  # its own issues
}
TAG_PROPS: dict[str, object] = {"tag_name": "VARCHAR", "assigned_date": "VARCHAR"}
# Both video_info shapes, and both caption keys.
VIDEO_PROPS: dict[str, object] = {
    "video_name": "VARCHAR",
    "frame_timestamp": "DOUBLE",
    "video_id": "VARCHAR",
    "frame_number": "BIGINT",
    "timestamp": "VARCHAR",
}
CAPTION_PROPS: dict[str, object] = {"text": "VARCHAR", "caption": "VARCHAR", "source": "VARCHAR"}

KNOWN_ITEM_TYPES = ("issue", "image_label", "object_label", "user_tag", "video_info", "caption")

# A media item's metadata items: each one's type, and its properties as JSON text.
ITEMS_STRUCTURE = json.dumps([{"type": "VARCHAR", "properties": "JSON"}])

#: Which of an image's labels is its primary label: the most authoritative source first
#: (then any other source), ties by name. curate and materialize both follow it.
LABEL_SOURCE_PRIORITY = ("User", "Model", "Visual Layer")

TABLES = ("media", "labels", "objects", "issues", "tags", "captions", "other_metadata", "info")


def sql_type(structure: object) -> str:
    """DuckDB type text of a ``from_json`` structure (``{"a": "BIGINT"}`` -> STRUCT)."""
    if isinstance(structure, str):
        return structure
    if isinstance(structure, list):
        return f"{sql_type(structure[0])}[]"
    assert isinstance(structure, dict)
    fields = ", ".join(f"{quote_ident(k)} {sql_type(v)}" for k, v in structure.items())
    return f"STRUCT({fields})"


ITEMS_TYPE = sql_type(json.loads(ITEMS_STRUCTURE))


def _sample(structure: object) -> object:
    """A JSON value from which DuckDB's type detection infers exactly ``structure``."""
    if isinstance(structure, list):
        return [_sample(structure[0])]
    if isinstance(structure, dict):
        return {k: _sample(v) for k, v in structure.items()}
    # Negative: a positive integer would be detected as UBIGINT. "x" is no date. An
    # empty object has no fields for a STRUCT: it is detected as JSON.
    return {"VARCHAR": "x", "DOUBLE": 0.5, "BIGINT": -1, "JSON": {}}[str(structure)]


#: A media item holding every known key, with values whose detected types are the
#: canonical ones. The JSON loader writes it first in every chunk file: DuckDB, detecting
#: types from that item alone, then reads the chunk in one parse and refuses any key it
#: does not know (see :mod:`vlanalyze.query._loaders`).
SAMPLE_ITEM = json.dumps(
    {
        **{k: _sample(t) for k, t in KNOWN_MEDIA_KEYS.items()},
        "metadata_items": _sample(json.loads(ITEMS_STRUCTURE)),
    },
    separators=(",", ":"),
).encode()

_SIZE = r"^\s*([0-9]*\.?[0-9]+)\s*([A-Za-z]*)\s*$"

# Parse "48.27KB" / "3.38MB" / "512" into bytes (binary multiples, as Visual Layer shows),
# from the number and unit that one regular expression finds (see media_sql).
FILE_SIZE_SQL = """
CASE upper(_vla_fs.unit)
  WHEN '' THEN 1 WHEN 'B' THEN 1 WHEN 'KB' THEN 1024 WHEN 'KIB' THEN 1024
  WHEN 'MB' THEN 1048576 WHEN 'MIB' THEN 1048576
  WHEN 'GB' THEN 1073741824 WHEN 'GIB' THEN 1073741824
  WHEN 'TB' THEN 1099511627776 WHEN 'TIB' THEN 1099511627776
END * TRY_CAST(NULLIF(_vla_fs.num, '') AS DOUBLE)
"""
_FILE_SIZE_PARTS = (
    f"regexp_extract(CAST(file_size AS VARCHAR), '{_SIZE}', ['num', 'unit']) AS _vla_fs"
)


# Columns of the ``media`` table that vlanalyze computes or adds (``image_path`` is added
# by the Export's view): an export's own top-level key of one of these names (or of a
# known key's name in another case) is kept as ``export_<key>``. See :func:`extra_names`.
MEDIA_COLUMNS = (
    "media_id", "media_type", "file_name", "file_path", "file_size", "uniqueness_score",
    "width", "height", "cluster_id", "url", "media_status", "insertion_time", "video_name",
    "frame_timestamp", "frame_number", "caption", "image_path",
)  # fmt: skip
EXTRA_PREFIX = "export_"


def extra_column(index: int) -> str:
    """The internal column name of the ``index``-th unknown key inside a batch table."""
    return f"_vla_x{index}"


def extra_names(keys: list[str]) -> list[str]:
    """The ``media`` column name of each unknown top-level key, in order.

    A key keeps its own name unless that name (compared without case, as SQL does) is
    one of :data:`MEDIA_COLUMNS` or empty (then ``export_<key>``) or was already taken by an
    earlier key (then ``<name>_2``, ``_3``...). A name depends only on earlier keys,
    so appending keys never renames a column.
    """
    ours = {c.lower() for c in MEDIA_COLUMNS}
    taken = set(ours)
    names = []
    for key in keys:
        name = EXTRA_PREFIX + key if key.lower() in ours or not key else key
        base, n = name, 1
        while name.lower() in taken:
            n += 1
            name = f"{base}_{n}"
        taken.add(name.lower())
        names.append(name)
    return names


# A video frame without frame_number takes it from its file name, as Visual Layer's own
# parsing notebook does: output_000032.jpg is frame 32.
_FRAME_FROM_NAME = (
    r"TRY_CAST(regexp_extract(file_name, '^output_0*([0-9]+)\.[A-Za-z0-9]+$', 1) AS BIGINT)"
)


# The first video_info and caption item of each media item: derived by the loaders while
# they parse (:func:`with_derived`), so that the writer has less to do. One pass takes the
# items' types (15% less than a list_filter per type).
_DERIVED = """
SELECT * EXCLUDE (_vla_types),
  from_json(metadata_items[list_position(_vla_types, 'video_info')].properties, {video})
    AS _vla_vi,
  from_json(metadata_items[list_position(_vla_types, 'caption')].properties, {caption})
    AS _vla_cap
FROM (SELECT *, list_transform(metadata_items, lambda x: x.type) AS _vla_types FROM ({select}))
"""


def with_derived(select: str) -> str:
    """``select`` (canonical columns) plus the columns :func:`media_sql` derives from."""
    return _DERIVED.format(
        select=select, video=_structure(VIDEO_PROPS), caption=_structure(CAPTION_PROPS)
    )


def _structure(props: dict[str, object]) -> str:
    """SQL literal of a ``from_json`` structure."""
    return quote_literal(json.dumps(props))


def media_sql(extra_keys: list[str]) -> str:
    """SELECT of the ``media`` table from ``src``; ``extra_keys`` are the unknown keys,
    held in ``src`` as :func:`extra_column` columns."""
    names = extra_names(extra_keys)
    extras = "".join(f", {extra_column(i)} AS {quote_ident(name)}" for i, name in enumerate(names))
    return f"""
SELECT media_id, media_type, file_name, file_path,
       CAST(round({FILE_SIZE_SQL}) AS BIGINT) AS file_size,
       uniqueness_score, width, height, cluster_id, url, media_status,
       TRY_CAST(insertion_time AS TIMESTAMP) AS insertion_time,
       COALESCE(_vla_vi.video_name, _vla_vi.video_id) AS video_name,
       COALESCE(_vla_vi.frame_timestamp, epoch(TRY_CAST(_vla_vi."timestamp" AS INTERVAL)))
         AS frame_timestamp,
       CASE WHEN _vla_vi IS NOT NULL
         THEN COALESCE(_vla_vi.frame_number, {_FRAME_FROM_NAME}) END AS frame_number,
       COALESCE(_vla_cap.text, _vla_cap.caption) AS caption{extras}
FROM (SELECT *, {_FILE_SIZE_PARTS} FROM src)
"""


# Every batch's metadata items, unnested once, then read by each table: each item's type,
# and its properties as JSON text, typed by the one table that reads that type.
ITEMS_SQL = """
CREATE OR REPLACE TEMP TABLE items AS
SELECT media_id, it.type AS type, it.properties AS props
FROM (SELECT media_id, unnest(metadata_items) AS it FROM src)
"""
_OBJECT_ID = r"""NULLIF(regexp_extract(p.url, '[?&]object_id=([^&#]+)', 1), '')"""


def _typed(item_type: str, props: dict[str, object]) -> str:
    """The items of ``item_type``: ``media_id``, and their properties typed as ``p``."""
    return (
        f"(SELECT media_id, from_json(props, {_structure(props)}) AS p "
        f"FROM items WHERE type = {quote_literal(item_type)})"
    )


_OBJECTS = _typed("object_label", OBJECT_PROPS)

TIDY_SQL: dict[str, str] = {
    "labels": f"""
SELECT media_id, p.category_name AS category_name, p.source AS source,
       p.original_id AS original_id
FROM {_typed("image_label", LABEL_PROPS)}
""",
    "objects": f"""
SELECT {_OBJECT_ID} AS object_id, media_id,
       p.category_name AS category_name, p.source AS source, p.original_id AS original_id,
       p.bbox[1] AS bbox_x, p.bbox[2] AS bbox_y, p.bbox[3] AS bbox_w, p.bbox[4] AS bbox_h,
       p.uniqueness_score AS uniqueness_score, p.url AS url
FROM {_OBJECTS}
""",
    "issues": f"""
SELECT media_id, CAST(NULL AS VARCHAR) AS object_id,
       p.issue_type AS issue_type, p.confidence AS confidence,
       p.duplicate_group_id AS duplicate_group_id, p.duplicate_threshold AS duplicate_threshold
FROM {_typed("issue", ISSUE_PROPS)}
UNION ALL
SELECT media_id, object_id, sub.properties.issue_type, sub.properties.confidence,
       sub.properties.duplicate_group_id, sub.properties.duplicate_threshold
FROM (
  SELECT media_id, {_OBJECT_ID} AS object_id, unnest(p.metadata_items) AS sub FROM {_OBJECTS}
) WHERE sub.type = 'issue'
""",
    "tags": f"""
SELECT media_id, p.tag_name AS tag_name,
       TRY_CAST(p.assigned_date AS TIMESTAMP) AS assigned_date
FROM {_typed("user_tag", TAG_PROPS)}
""",
    "captions": f"""
SELECT media_id, COALESCE(p.text, p.caption) AS text, p.source AS source
FROM {_typed("caption", CAPTION_PROPS)}
""",
}

UNKNOWN_TYPES_SQL = f"""
SELECT count(*) FROM items
WHERE type IS NULL OR type NOT IN {KNOWN_ITEM_TYPES!r}
"""
