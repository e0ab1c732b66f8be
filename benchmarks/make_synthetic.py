"""Generate synthetic Visual Layer exports shaped like the real ones.

Writes, under ``--out`` (default ``benchmarks/data/n<items>``):

* ``metadata.json``       schema 1.1: one compact object ``{"info":..., "media_items":[...]}``
* ``media_items.ndjson``  the same media items, one per line (DuckDB's reference input)
* ``metadata.parquet``    the same items, ``file_name`` renamed ``image_filename``,
                          ``metadata_items`` as list<struct<type, properties: struct<...>>>,
                          the info block as JSON in the key-value metadata under ``info``

Items are produced in independent, seeded batches (``--batch`` items each), rendered
straight to JSON text by string templates, and written as they come: memory stays
bounded whatever ``--items`` is. The Parquet form parses each batch's JSON lines with
pyarrow's JSON reader against one explicit schema, so all row groups agree.
Standard library + pyarrow only.

    python benchmarks/make_synthetic.py --items 100000 --format json parquet
"""

from __future__ import annotations

import argparse
import io
import json
import os
import random
import sys
import time
from collections import deque
from collections.abc import Iterator
from concurrent.futures import Future, ProcessPoolExecutor
from pathlib import Path

import pyarrow as pa
import pyarrow.json as pajson
import pyarrow.parquet as pq

DATASET_ID = "5f0c1e2a-8d3b-4c7e-9a61-2b7d4e9f0a13"
BASE_URL = f"http://app.visual-layer.com/dataset/{DATASET_ID}/data"
THRESHOLDS = (0.96, 0.97, 0.98, 0.985, 0.99, 0.995, 0.999, 1.0)
_WORD_TEXT = (
    "person man woman child dog cat car truck bus bicycle tree sky snow mountain road "
    "building grass water beach boat chair table bottle cup phone laptop book clock "
    "window door sign light flower bird horse cow sheep bag umbrella shoe hat shirt "
    "jacket blanket parachute snowboarder snowy sunny cloudy night indoor outdoor street "
    "field forest river lake bridge train plane kite ball skateboard surfboard pizza cake"
)
WORDS = tuple(_WORD_TEXT.split())
TAGS = ("reviewed", "to-fix", "golden", "train", "val", "holdout", "blurry?", "keep")
LABEL_SOURCES = ("Visual Layer", "Visual Layer", "Visual Layer", "User", "Model")
SINGLE_ISSUES = ("outliers", "blur", "dark", "bright", "mislabels", "label_outlier")
SIZES = ((720, 576), (1080, 1920), (480, 640), (375, 500), (500, 333), (224, 224))
DEFAULT_BATCH = 10_000
# near-duplicate family sizes, drawn uniformly: ~1 item in 4 has no duplicates at all
FAMILY_SIZES = (1,) * 12 + (2, 2, 3, 4, 5, 6, 8, 10)
# dense: objects per item (0.9 on average, as in the 2025 video export)
DENSE_OBJECTS = (0,) * 11 + (1,) * 7 + (2, 3, 3, 5)
PROFILES = ("mixed", "dense", "sparse")


def uuid4_text(rng: random.Random) -> str:
    """A random UUID in canonical text form (drawn from ``rng``: deterministic)."""
    h = f"{rng.getrandbits(128):032x}"
    return f"{h[:8]}-{h[8:12]}-4{h[13:16]}-a{h[17:20]}-{h[20:]}"


def meta(kind: str, props: str) -> str:
    return f'{{"type":"{kind}","properties":{{{props}}}}}'


def dup_issue(confidence: float, group_id: str, threshold: float) -> str:
    return meta(
        "issue",
        f'"issue_type":"duplicates","confidence":{confidence:.6f},'
        f'"duplicate_group_id":"{group_id}","duplicate_threshold":{threshold}',
    )


def family_groups(rng: random.Random, size: int, profile: str = "mixed") -> list[list[str | None]]:
    """Duplicate group ids for a family of near-identical items, per threshold level.

    Returns ``groups[member][level]``: the group id, or None when the member is not a
    duplicate at that level. Low thresholds group the whole family; higher ones split it
    into smaller groups, and members left alone drop out (a partial export can still keep
    a one-member group: kept with a small probability).
    """
    groups: list[list[str | None]] = [[] for _ in range(size)]
    if profile != "mixed":
        return _paired_groups(rng, size, profile, groups)
    for level in range(len(THRESHOLDS)):
        n_parts = 1 + level * (size - 1) // len(THRESHOLDS)
        members = [i * n_parts // size for i in range(size)]
        ids = [uuid4_text(rng) for _ in range(n_parts)]
        for i, part in enumerate(members):
            alone = members.count(part) == 1
            keep = size > 1 and (not alone or rng.random() < 0.05)
            groups[i].append(ids[part] if keep else None)
    return groups


def _paired_groups(
    rng: random.Random, size: int, profile: str, groups: list[list[str | None]]
) -> list[list[str | None]]:
    """dense and sparse: every member of a family of 2+ is a duplicate on each of the
    family's levels (dense: all 8 on most families, else 4-6; sparse: 1-4), in groups of
    at least two; a family of one has none."""
    if size == 1:
        return [[None] * len(THRESHOLDS)]
    if profile == "dense":
        levels = len(THRESHOLDS) if rng.random() < 0.7 else rng.randint(4, 6)
    else:
        levels = rng.randint(1, 4)
    for level in range(len(THRESHOLDS)):
        n_parts = 1 + level * (size // 2 - 1) // len(THRESHOLDS)
        ids = [uuid4_text(rng) for _ in range(n_parts)]
        for i in range(size):
            groups[i].append(ids[i * n_parts // size] if level < levels else None)
    return groups


def duplicate_items(rng: random.Random, groups: list[str | None]) -> list[str]:
    conf = 0.99 - rng.random() * 0.03
    out = []
    for group_id, threshold in zip(groups, THRESHOLDS, strict=True):
        if group_id is not None:
            out.append(dup_issue(conf, group_id, threshold))
            conf -= rng.random() * 0.02
    return out


def image_labels(rng: random.Random) -> list[str]:
    source = rng.choice(LABEL_SOURCES)
    count = rng.randint(1, 12)
    return [
        meta(
            "image_label",
            f'"original_id":{-1 if source == "Visual Layer" else rng.randint(0, 999)},'
            f'"category_name":"{name}","source":"{source}"',
        )
        for name in rng.sample(WORDS, count)
    ]


def object_label(
    rng: random.Random, media_id: str, height: int, width: int, nested: float = 0.3
) -> str:
    x, y = rng.randint(0, width // 2), rng.randint(0, height // 2)
    bbox = f"[{x},{y},{rng.randint(1, width - x)},{rng.randint(1, height - y)}]"
    nested_items = ""
    if rng.random() < nested:
        conf = round(rng.uniform(0.9, 0.99), 2)
        levels = THRESHOLDS[: rng.randint(1, len(THRESHOLDS))]
        nested_items = ",".join(dup_issue(conf, uuid4_text(rng), t) for t in levels)
    return meta(
        "object_label",
        f'"original_id":-1,"category_name":"{rng.choice(WORDS)}","source":"Visual Layer",'
        f'"bbox":{bbox},"uniqueness_score":{rng.random()!r},'
        f'"url":"{BASE_URL}/image/{media_id}?&object_id={uuid4_text(rng)}",'
        f'"metadata_items":[{nested_items}]',
    )


def other_items(rng: random.Random, media_id: str, height: int, width: int) -> list[str]:
    """Single-level issues, objects, user tags and captions (each on some items)."""
    out: list[str] = []
    if rng.random() < 0.08:
        issue = rng.choice(SINGLE_ISSUES)
        out.append(meta("issue", f'"issue_type":"{issue}","confidence":{rng.random():.6f}'))
    if rng.random() < 0.3:
        out += [object_label(rng, media_id, height, width) for _ in range(rng.randint(1, 3))]
    if rng.random() < 0.1:
        for tag in rng.sample(TAGS, rng.randint(1, 2)):
            day = rng.randint(1, 28)
            out.append(meta("user_tag", f'"tag_name":"{tag}","assigned_date":"2025-03-{day:02d}"'))
    if rng.random() < 0.15:
        text = " ".join(rng.choices(WORDS, k=rng.randint(5, 12)))
        out.append(meta("caption", f'"text":"A photo of {text}","source":"Model"'))
    return out


class Source:
    """Where consecutive items come from: one video (frames) or one image folder."""

    def __init__(self, rng: random.Random, index: int, profile: str = "mixed") -> None:
        self.is_video = rng.random() < 0.5
        if profile != "mixed":  # dense: every item a frame; sparse: every item an image
            self.is_video = profile == "dense"
        self.height, self.width = rng.choice(SIZES)
        stamp = f"{rng.getrandbits(63)}_{rng.getrandbits(63)}"
        if self.is_video:
            self.name = f"{stamp}_2024-12-{rng.randint(1, 28):02d}_14:28:36.mp4"
        else:
            self.name = f"n{index:08d}"
        self.frame = 0
        self.cluster_id = uuid4_text(rng)
        self.left = rng.randint(5, 200)

    def next_file(self, rng: random.Random) -> tuple[str, str]:
        self.frame += 1
        self.left -= 1
        if rng.random() < 0.1:
            self.cluster_id = uuid4_text(rng)
        if self.is_video:
            name = f"output_{self.frame:06d}.jpg"
        else:
            name = f"{self.name}_{self.frame * 37 + 11}.JPEG"
        return name, f"{self.name}/{name}"


def dense_items(rng: random.Random, media_id: str, height: int, width: int) -> list[str]:
    """Labels and objects shaped like the 2025 video export: 6-18 Visual Layer labels
    (12 on average), 0-5 objects (0.9 on average, 40% with nested duplicates)."""
    out = [
        meta("image_label", f'"original_id":-1,"category_name":"{name}","source":"Visual Layer"')
        for name in rng.sample(WORDS, rng.randint(6, 18))
    ]
    for _ in range(rng.choice(DENSE_OBJECTS)):
        out.append(object_label(rng, media_id, height, width, nested=0.4))
    return out


def sparse_items(rng: random.Random) -> list[str]:
    """Shaped like the 2026 ImageNet cluster export: one user label, one user tag, one
    outliers issue per item."""
    out = [
        meta(
            "image_label",
            f'"original_id":{rng.randint(0, 999)},"category_name":"{rng.choice(WORDS)}",'
            '"source":"User"',
        ),
        meta(
            "user_tag",
            f'"tag_name":"{rng.choice(TAGS)}","assigned_date":"2026-01-{rng.randint(1, 28):02d}"',
        ),
        meta("issue", f'"issue_type":"outliers","confidence":{rng.random():.6f}'),
    ]
    return out


def render_item(
    rng: random.Random, src: Source, groups: list[str | None], profile: str = "mixed"
) -> str:
    media_id = uuid4_text(rng)
    file_name, file_path = src.next_file(rng)
    height, width = src.height, src.width
    items: list[str] = []
    if src.is_video:
        stamp = (src.frame - 1) / 30
        items.append(meta("video_info", f'"video_name":"{src.name}","frame_timestamp":{stamp}'))
    items += duplicate_items(rng, groups)
    if profile == "dense":
        items += dense_items(rng, media_id, height, width)
    elif profile == "sparse":
        items += sparse_items(rng)
    else:
        items += image_labels(rng)
        items += other_items(rng, media_id, height, width)
    size = rng.lognormvariate(4.0, 0.8)
    size_text = f"{size:.2f}KB" if size < 1024 else f"{size / 1024:.2f}MB"
    media_type = "video_frame" if src.is_video else "image"
    score = rng.random()  # drawn before the insertion time, as the mixed data always was
    # The 2025 video export predates media_status and insertion_time.
    new_keys = (
        ""
        if profile == "dense"
        else (
            f'"media_status":"INDEXED","insertion_time":"2025-01-24T18:{rng.randint(0, 59):02d}:'
            f'{rng.randint(0, 59):02d}.{rng.randint(0, 999999):06d}",'
        )
    )
    return (
        f'{{"media_id":"{media_id}","media_type":"{media_type}","file_name":"{file_name}",'
        f'"file_path":"{file_path}","file_size":"{size_text}",'
        f'"uniqueness_score":{score!r},"height":{height},"width":{width},'
        f'"url":"{BASE_URL}/image/{media_id}","cluster_id":"{src.cluster_id}",{new_keys}'
        f'"metadata_items":[{",".join(items)}]}}'
    )


def make_batch(
    seed: int, batch_index: int, start: int, count: int, profile: str = "mixed"
) -> bytes:
    """Items ``start``.. ``start+count`` as JSON lines; depends only on the arguments."""
    rng = random.Random(seed * 1_000_003 + batch_index)
    lines: list[str] = []
    src = Source(rng, start, profile)
    while len(lines) < count:
        if src.left <= 0:
            src = Source(rng, start + len(lines), profile)
        size = min(rng.choice(FAMILY_SIZES), count - len(lines))
        for groups in family_groups(rng, size, profile):
            lines.append(render_item(rng, src, groups, profile))
    return ("\n".join(lines) + "\n").encode()


def batches(
    seed: int, total: int, batch: int, workers: int, profile: str = "mixed"
) -> Iterator[bytes]:
    """Batches in order, computed by ``workers`` processes, at most 2 per worker ahead."""
    starts = range(0, total, batch)
    if workers <= 1:
        for i, s in enumerate(starts):
            yield make_batch(seed, i, s, min(batch, total - s), profile)
        return
    with ProcessPoolExecutor(workers) as pool:
        pending: deque[Future[bytes]] = deque()
        for i, s in enumerate(starts):
            pending.append(pool.submit(make_batch, seed, i, s, min(batch, total - s), profile))
            if len(pending) >= 2 * workers:
                yield pending.popleft().result()
        while pending:
            yield pending.popleft().result()


def _issue_props() -> pa.StructType:
    return pa.struct(
        [
            ("issue_type", pa.string()),
            ("confidence", pa.float64()),
            ("duplicate_group_id", pa.string()),
            ("duplicate_threshold", pa.float64()),
        ]
    )


def properties_type() -> pa.StructType:
    """The union of every ``properties`` key, as pyarrow would infer it from the dicts."""
    nested = pa.list_(pa.struct([("type", pa.string()), ("properties", _issue_props())]))
    fields = [
        ("video_name", pa.string()),
        ("frame_timestamp", pa.float64()),
        *[(f.name, f.type) for f in _issue_props()],
        ("original_id", pa.int64()),
        ("category_name", pa.string()),
        ("source", pa.string()),
        ("bbox", pa.list_(pa.int64())),
        ("uniqueness_score", pa.float64()),
        ("url", pa.string()),
        ("metadata_items", nested),
        ("tag_name", pa.string()),
        ("assigned_date", pa.string()),
        ("text", pa.string()),
    ]
    return pa.struct(fields)


def item_schema(file_name_column: str = "file_name") -> pa.Schema:
    meta_item = pa.struct([("type", pa.string()), ("properties", properties_type())])
    text = ["media_id", "media_type", file_name_column, "file_path", "file_size"]
    return pa.schema(
        [(name, pa.string()) for name in text]
        + [
            ("uniqueness_score", pa.float64()),
            ("height", pa.int64()),
            ("width", pa.int64()),
            ("url", pa.string()),
            ("cluster_id", pa.string()),
            ("media_status", pa.string()),
            ("insertion_time", pa.string()),
            ("metadata_items", pa.list_(meta_item)),
        ]
    )


def info_block(total: int) -> dict[str, object]:
    return {
        "schema_version": "1.1",
        "dataset": "Synthetic",
        "description": "Exported from Synthetic at Visual Layer",
        "dataset_url": BASE_URL,
        "export_time": "2025-02-15T18:23:34.164184",
        "dataset_creation_time": "2025-01-24T18:35:57.719308",
        "exported_by": "vlanalyze benchmarks",
        "total_media_items": total,
    }


class JsonSink:
    """Streams batches into ``metadata.json`` (one compact object)."""

    def __init__(self, path: Path, info: dict[str, object]) -> None:
        self.f = path.open("wb")
        head = json.dumps({"info": info}, separators=(",", ":"))[:-1]
        self.f.write(f'{head},"media_items":['.encode())
        self.first = True

    def write(self, batch: bytes) -> None:
        if not self.first:
            self.f.write(b",")
        self.f.write(batch.rstrip(b"\n").replace(b"\n", b","))
        self.first = False

    def close(self) -> None:
        self.f.write(b"]}")
        self.f.close()


class NdjsonSink:
    """Writes ``media_items.ndjson``: the batches as they are."""

    def __init__(self, path: Path) -> None:
        self.f = path.open("wb")

    def write(self, batch: bytes) -> None:
        self.f.write(batch)

    def close(self) -> None:
        self.f.close()


class ParquetSink:
    """Writes ``metadata.parquet``: one row group per batch, one explicit schema."""

    def __init__(self, path: Path, info: dict[str, object]) -> None:
        self.read_schema = item_schema("file_name")
        schema = item_schema("image_filename").with_metadata({"info": json.dumps(info)})
        self.writer = pq.ParquetWriter(path, schema, compression="zstd")
        self.schema = schema

    def write(self, batch: bytes) -> None:
        table = pajson.read_json(
            io.BytesIO(batch),
            read_options=pajson.ReadOptions(block_size=max(len(batch), 1 << 20)),
            parse_options=pajson.ParseOptions(
                explicit_schema=self.read_schema, unexpected_field_behavior="error"
            ),
        )
        table = table.rename_columns(self.schema.names).cast(self.schema)
        self.writer.write_table(table, row_group_size=table.num_rows)

    def close(self) -> None:
        self.writer.close()


Sink = JsonSink | NdjsonSink | ParquetSink


def open_sinks(out: Path, formats: list[str], ndjson: bool, total: int) -> list[Sink]:
    out.mkdir(parents=True, exist_ok=True)
    info = info_block(total)
    sinks: list[Sink] = []
    if "json" in formats:
        sinks.append(JsonSink(out / "metadata.json", info))
    if ndjson:
        sinks.append(NdjsonSink(out / "media_items.ndjson"))
    if "parquet" in formats:
        sinks.append(ParquetSink(out / "metadata.parquet", info))
    return sinks


def generate(args: argparse.Namespace) -> dict[str, object]:
    """Write the requested files; return a summary (timings and sizes)."""
    ndjson = args.ndjson if args.ndjson is not None else args.items <= 1_000_000
    sinks = open_sinks(args.out, args.format, ndjson, args.items)
    t0 = time.perf_counter()
    timings = {type(s).__name__: 0.0 for s in sinks}
    raw_bytes = 0
    for batch in batches(args.seed, args.items, args.batch, args.workers, args.profile):
        raw_bytes += len(batch)
        for sink in sinks:
            ts = time.perf_counter()
            sink.write(batch)
            timings[type(sink).__name__] += time.perf_counter() - ts
    for sink in sinks:
        sink.close()
    elapsed = time.perf_counter() - t0
    files = {p.name: p.stat().st_size for p in sorted(args.out.iterdir()) if p.is_file()}
    return {
        "profile": args.profile,
        "items": args.items,
        "seconds": round(elapsed, 1),
        "items_per_second": round(args.items / elapsed),
        "avg_item_bytes": round(raw_bytes / args.items),
        "sink_seconds": {k: round(v, 1) for k, v in timings.items()},
        "files": files,
    }


def folder_name(items: int, profile: str) -> str:
    """``n<items>`` for the mixed profile, ``n<items>-<profile>`` for the others."""
    return f"n{items}" if profile == "mixed" else f"n{items}-{profile}"


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--items", type=int, default=100_000, help="media items (100000, 1000000, …)")
    p.add_argument(
        "--profile",
        choices=PROFILES,
        default="mixed",
        help="item shape: mixed (the default mix), dense (like the 2025 video export),\n"
        "sparse (like the 2026 ImageNet cluster export)",
    )
    p.add_argument("--format", nargs="+", choices=["json", "parquet"], default=["json", "parquet"])
    p.add_argument("--data-dir", type=Path, default=Path(__file__).parent / "data")
    p.add_argument("--out", type=Path, help="output folder (default: <data-dir>/n<items>)")
    ndjson = p.add_mutually_exclusive_group()
    ndjson.add_argument("--ndjson", action="store_true", default=None, help="write the twin")
    ndjson.add_argument("--no-ndjson", dest="ndjson", action="store_false")
    p.add_argument("--seed", type=int, default=20250215)
    p.add_argument("--batch", type=int, default=DEFAULT_BATCH, help="items per batch")
    p.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    args = p.parse_args(argv)
    args.out = args.out or args.data_dir / folder_name(args.items, args.profile)
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    summary = generate(args)
    json.dump(summary, sys.stdout, indent=1)
    print()
    return 0


if __name__ == "__main__":
    sys.exit(main())
