"""Generate the sample export in ``sample_data/``: a small, realistic Visual Layer export.

One export, in every form a user can open (a real export holds one metadata file):
``export-json/`` (``metadata.json`` in the real layout, schema 1.1, and an ``images/``
folder that mirrors each item's ``file_path``), ``export-parquet/`` (``metadata.parquet``
with the same items, no images, to keep the repository small) and ``export.zip`` (the
``metadata.json`` as the service zips it, without images).
Photos come from scikit-image's bundled, permissively licensed sample images; crops,
resizes, blurred/darkened/brightened variants and "video frames" are derived from them.

The script is deterministic: every id is derived from a name, every random number from a
seeded ``random.Random``. Running it twice gives byte-identical metadata files, and
identical images for the same Pillow version. It is a dev-time tool: scikit-image and
Pillow are not runtime dependencies of vlanalyze.

Usage::

    python sample_data/make_sample.py            # writes sample_data/export-json/, ...
    python sample_data/make_sample.py --out DIR  # writes DIR/export-json/, ...
"""

from __future__ import annotations

import argparse
import hashlib
import io
import json
import random
import shutil
import uuid
import zipfile
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from functools import cache
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
from PIL import Image, ImageEnhance, ImageFilter
from skimage import data as skdata

SEED = "vlanalyze-sample-v1"
DATASET_NAME = "vlanalyze sample"
DATASET_ID = "5a3c1e2f-7b9d-4c61-9e0a-2f4b6d8c1a37"
DATASET_URL = f"http://app.visual-layer.com/dataset/{DATASET_ID}/data"
DATASET_CREATED = datetime(2026, 1, 27, 9, 12, 44, 905117)
EXPORT_TIME = datetime(2026, 2, 3, 14, 7, 52, 318406)
THRESHOLDS = (0.96, 0.97, 0.98, 0.99, 1.0)
JPEG_QUALITY = 80
STILL_MAX_SIDE = 448
Box = tuple[float, float, float, float]  # x0, y0, x1, y1 as fractions of the source
JSON = dict[str, Any]


# --------------------------------------------------------------------------- specs


@dataclass(frozen=True)
class ObjectSpec:
    """An object in a source photo; ``box`` is fractional in the source image."""

    category: str
    box: Box
    source: str = "Visual Layer"
    original_id: int = -1
    outlier: bool = False


@dataclass(frozen=True)
class SourceSpec:
    """A scikit-image photo and what Visual Layer "knows" about it."""

    user_label: tuple[str, int]
    vl_labels: tuple[str, ...]
    model_labels: tuple[str, ...]
    caption: str
    objects: tuple[ObjectSpec, ...] = ()


@dataclass(frozen=True)
class VideoRef:
    """Where a frame sits in its video; ``shape`` is "real" or "doc" (video_info keys)."""

    name: str
    index: int
    seconds: float
    shape: str


@dataclass(frozen=True)
class ItemSpec:
    """One media item to render and describe."""

    file_path: str
    source: str
    family: str
    sim: float = 1.0
    role: str = "rep"  # rep | derived | outlier | single
    window: Box = (0.0, 0.0, 1.0, 1.0)
    size: tuple[int, int] | None = None  # exact output size (frames); else fit max_side
    max_side: int = STILL_MAX_SIDE
    effect: str | None = None  # blur | dark | bright
    fmt: str = "JPEG"
    video: VideoRef | None = None
    phantom_sim: float | None = None  # a duplicate partner that is not in the export
    tags: tuple[str, ...] = ()
    extra: JSON = field(default_factory=dict)


SOURCES: dict[str, SourceSpec] = {
    "astronaut": SourceSpec(
        ("person", 0),
        ("person", "woman", "astronaut", "space suit", "flag", "smile"),
        ("astronaut",),
        "An astronaut in an orange flight suit smiling in front of an American flag.",
        (
            ObjectSpec("person", (0.03, 0.0, 0.72, 1.0), "User", 0),
            ObjectSpec("face", (0.30, 0.03, 0.60, 0.33)),
            ObjectSpec("flag", (0.0, 0.0, 0.18, 0.95), outlier=True),
            ObjectSpec("space shuttle", (0.70, 0.0, 0.92, 0.55)),
            ObjectSpec("helmet", (0.55, 0.65, 1.0, 1.0)),
        ),
    ),
    "coffee": SourceSpec(
        ("cup", 2),
        ("coffee", "cup", "saucer", "spoon", "table", "espresso"),
        ("espresso",),
        "A cup of espresso on a red saucer with a spoon, on a wooden table.",
        (
            ObjectSpec("cup", (0.30, 0.02, 0.70, 0.55), "User", 2),
            ObjectSpec("saucer", (0.12, 0.12, 0.85, 0.95)),
            ObjectSpec("spoon", (0.50, 0.45, 0.68, 0.80)),
        ),
    ),
    "chelsea": SourceSpec(
        ("cat", 1),
        ("cat", "tabby", "whiskers", "eye"),
        ("tabby cat",),
        "Close-up of a tabby cat looking into the camera.",
        (
            ObjectSpec("cat", (0.20, 0.0, 1.0, 1.0), "User", 1),
            ObjectSpec("eye", (0.35, 0.25, 0.48, 0.45)),
            ObjectSpec("eye", (0.65, 0.25, 0.78, 0.45)),
        ),
    ),
    "rocket": SourceSpec(
        ("rocket", 3),
        ("rocket", "launch pad", "night", "tower", "light"),
        (),
        "A rocket on its launch pad at dusk, lit by floodlights.",
        (
            ObjectSpec("rocket", (0.47, 0.28, 0.53, 0.95), "User", 3),
            ObjectSpec("tower", (0.0, 0.0, 0.12, 0.90)),
            ObjectSpec("tower", (0.88, 0.0, 1.0, 0.90)),
        ),
    ),
    "camera": SourceSpec(
        ("camera", 4),
        ("man", "camera", "tripod", "grass", "coat"),
        ("photographer",),
        "A black and white photo of a man looking through a camera on a tripod.",
        (
            ObjectSpec("person", (0.0, 0.10, 0.62, 1.0)),
            ObjectSpec("camera", (0.58, 0.25, 0.68, 0.45), "User", 4),
            ObjectSpec("tripod", (0.45, 0.55, 0.80, 1.0)),
        ),
    ),
    "hubble_deep_field": SourceSpec(
        ("space", 5),
        ("galaxy", "star", "night sky"),
        (),
        "Thousands of distant galaxies on a black sky.",
    ),
    "retina": SourceSpec(
        ("medical", 7),
        ("eye", "retina", "blood vessel"),
        ("fundus photograph",),
        "A fundus photograph of a healthy human retina.",
    ),
    "gravel": SourceSpec(
        ("texture", 6),
        ("gravel", "stone", "rock"),
        (),
        "A grey gravel texture.",
    ),
    "brick": SourceSpec(
        ("texture", 6),
        ("brick", "wall"),
        (),
        "A grey brick wall seen at an angle.",
    ),
    "clock": SourceSpec(
        ("clock", 8),
        ("clock", "wall"),
        ("wall clock",),
        "A motion-blurred wall clock.",
        (ObjectSpec("clock", (0.38, 0.38, 0.68, 0.72)),),
    ),
}

# Third-party clients read a caption from a "caption" key; these items use it.
THIRD_PARTY_CAPTIONS = ("photos/brick.jpg", "uploads/coffee.jpg")
EMBEDDING_REFS = ("photos/astronaut.jpg", "espresso_2025-03-07_07-55-31.mp4/output_000002.jpg")


P = "photos/"
CAMERA = {"capture_device": "digital camera"}
# Photos, their near-duplicates and variants, and a few loners. Arguments: file_path,
# source photo, near-duplicate family, similarity to the family's representative, role.
STILLS = (
    ItemSpec(P + "coffee.jpg", "coffee", "coffee", tags=("hero",), extra=CAMERA),
    ItemSpec("uploads/coffee.jpg", "coffee", "coffee", 1.0, "derived", tags=("re-upload",)),
    ItemSpec(P + "coffee_crop1.jpg", "coffee", "coffee", 0.988, "derived", (0.05, 0.0, 0.95, 0.9)),
    ItemSpec(P + "coffee_crop2.jpg", "coffee", "coffee", 0.972, "derived", (0.2, 0.0, 0.8, 0.7),
             tags=("to-delete",)),
    ItemSpec(P + "coffee_small.jpg", "coffee", "coffee", 0.996, "derived", max_side=224),
    ItemSpec(P + "astronaut.jpg", "astronaut", "astronaut", tags=("hero", "reviewed"),
             extra=CAMERA),
    ItemSpec(P + "astronaut_small.jpg", "astronaut", "astronaut", 0.995, "derived", max_side=256),
    ItemSpec(P + "astronaut_crop1.jpg", "astronaut", "astronaut", 0.981, "derived",
             (0.1, 0.0, 0.9, 0.85)),
    ItemSpec(P + "astronaut_dark.jpg", "astronaut", "astronaut", 0.968, "derived", effect="dark"),
    ItemSpec(P + "astronaut_bright.jpg", "astronaut", "astronaut", 0.973, "derived",
             effect="bright"),
    ItemSpec(P + "chelsea.jpg", "chelsea", "chelsea", extra=CAMERA),
    ItemSpec(P + "chelsea_crop1.jpg", "chelsea", "chelsea", 0.984, "derived", (0.15, 0, 1, 1)),
    ItemSpec(P + "chelsea_small.jpg", "chelsea", "chelsea", 0.997, "derived", max_side=200),
    ItemSpec(P + "chelsea_blur.jpg", "chelsea", "chelsea", 0.962, "derived", effect="blur"),
    ItemSpec(P + "rocket.jpg", "rocket", "rocket", extra=CAMERA),
    ItemSpec(P + "rocket_crop1.jpg", "rocket", "rocket", 0.978, "derived", (0.25, 0.1, 0.75, 1)),
    ItemSpec(P + "rocket_blur.jpg", "rocket", "rocket", 0.965, "derived", effect="blur",
             tags=("to-delete",)),
    ItemSpec(P + "rocket_dark.jpg", "rocket", "rocket", 0.971, "derived", effect="dark"),
    ItemSpec(P + "camera.jpg", "camera", "camera", extra=CAMERA),
    ItemSpec(P + "camera_small.jpg", "camera", "camera", 0.993, "derived", max_side=240),
    ItemSpec(P + "camera_bright.jpg", "camera", "camera", 0.966, "derived", effect="bright"),
    ItemSpec(P + "hubble_deep_field.png", "hubble_deep_field", "hubble", role="outlier",
             max_side=840, fmt="PNG", extra={"capture_device": "Hubble ACS/WFC"}),
    ItemSpec(P + "retina.jpg", "retina", "retina", role="outlier", tags=("needs-review",),
             extra={"capture_device": "fundus camera"}),
    ItemSpec(P + "gravel.jpg", "gravel", "gravel", role="outlier"),
    ItemSpec(P + "brick.jpg", "brick", "brick", role="single", phantom_sim=0.974),
    ItemSpec(P + "clock.jpg", "clock", "clock", role="single", effect="motion"),
)  # fmt: skip


@dataclass(frozen=True)
class VideoSpec:
    """A video whose frames are windows sliding over one source photo."""

    name: str
    source: str
    shape: str
    frame_size: tuple[int, int]
    frames: tuple[int, ...]  # output_<index>.jpg numbers present in the export
    sims: tuple[float, ...]  # similarity of each frame to the first
    path: tuple[tuple[float, float, float], ...]  # (cx, cy, scale) at first and last frame
    interval: float = 1.633333
    blurred: tuple[int, ...] = ()


VIDEOS = (
    VideoSpec("launch_cam_2025-03-02_09-14-07.mp4", "rocket", "real", (240, 320), (1, 2, 3, 4),
              (1.0, 0.992, 0.983, 0.969), ((0.5, 0.5, 1.0), (0.5, 0.6, 0.6))),
    VideoSpec("catcam_2025-03-05_18-40-12.mp4", "chelsea", "real", (240, 320), (1, 2, 5, 12),
              (1.0, 0.994, 0.964, 0.97), ((0.35, 0.5, 1.0), (0.7, 0.5, 0.9)), 1.5, (5,)),
    VideoSpec("catcam_2025-03-06_08-02-55.mp4", "chelsea", "real", (240, 320), (1, 2),
              (1.0, 0.987), ((0.55, 0.4, 0.8), (0.55, 0.4, 0.6))),
    VideoSpec("espresso_2025-03-07_07-55-31.mp4", "coffee", "doc", (320, 180), (1, 2, 3),
              (1.0, 0.991, 0.978), ((0.5, 0.3, 1.0), (0.5, 0.6, 0.8)), 0.567),
    VideoSpec("press_2025-03-09_22-03-48.mp4", "astronaut", "doc", (320, 180), (1, 2, 3, 4),
              (1.0, 0.989, 0.975, 0.961), ((0.5, 0.2, 1.0), (0.5, 0.8, 1.0)), 2.1),
    VideoSpec("film_set_2025-03-11_16-20-05.mp4", "camera", "doc", (320, 180), (1, 2, 3),
              (1.0, 0.995, 0.986), ((0.4, 0.4, 0.9), (0.6, 0.4, 0.9)), 1.2),
)  # fmt: skip


def window_at(src: tuple[int, int], cx: float, cy: float, scale: float, aspect: float) -> Box:
    """The largest ``aspect`` window, times ``scale``, centred near (cx, cy), inside src."""
    sw, sh = src
    w, h = (sh * aspect, sh) if sw / sh > aspect else (sw, sw / aspect)
    w, h = w * scale, h * scale
    x0 = min(max(cx * sw - w / 2, 0.0), sw - w)
    y0 = min(max(cy * sh - h / 2, 0.0), sh - h)
    return (x0 / sw, y0 / sh, (x0 + w) / sw, (y0 + h) / sh)


def frame_specs(video: VideoSpec) -> list[ItemSpec]:
    """The exported frames of one video."""
    (ax, ay, az), (bx, by, bz) = video.path
    first, last = video.frames[0], video.frames[-1]
    src = source_image(video.source).size
    aspect = video.frame_size[0] / video.frame_size[1]
    specs = []
    for index, sim in zip(video.frames, video.sims, strict=True):
        f = (index - first) / max(last - first, 1)
        box = window_at(src, ax + (bx - ax) * f, ay + (by - ay) * f, az + (bz - az) * f, aspect)
        ref = VideoRef(video.name, index, round((index - 1) * video.interval, 6), video.shape)
        blurred = index in video.blurred
        specs.append(
            ItemSpec(
                f"{video.name}/output_{index:06d}.jpg",
                video.source,
                video.name,
                sim,
                "rep" if index == first else "derived",
                box,
                video.frame_size,
                effect="motion" if blurred else None,
                video=ref,
                tags=("blurry-frame",) if blurred else (),
            )
        )
    return specs


def all_specs() -> list[ItemSpec]:
    """Every item, in a fixed shuffled order (real exports are not sorted)."""
    specs = list(STILLS) + [s for v in VIDEOS for s in frame_specs(v)]
    random.Random(f"{SEED}:order").shuffle(specs)
    return specs


# --------------------------------------------------------------------------- ids, numbers


def make_id(*parts: object) -> str:
    """A deterministic UUID (version-4 shaped, like the real export's) from a name."""
    digest = hashlib.sha256(":".join([SEED, *map(str, parts)]).encode()).digest()
    return str(uuid.UUID(bytes=digest[:16], version=4))


def rng_for(*parts: object) -> random.Random:
    """A random generator seeded by a name, so values do not depend on item order."""
    return random.Random(":".join([SEED, *map(str, parts)]))


def human_size(n_bytes: int) -> str:
    """File size as the export writes it: "48.27KB", "1.02MB" (1 KB = 1024 bytes)."""
    if n_bytes >= 1024 * 1024:
        return f"{n_bytes / (1024 * 1024):.2f}MB"
    return f"{n_bytes / 1024:.2f}KB"


def iso(moment: datetime) -> str:
    """ISO time with microseconds and no time zone, as in the real ``info`` block."""
    return moment.isoformat(timespec="microseconds")


def hms(seconds: float) -> str:
    """The documented video timestamp form, "00:00:00.567"."""
    millis = round(seconds * 1000)
    h, rem = divmod(millis, 3_600_000)
    m, rem = divmod(rem, 60_000)
    return f"{h:02d}:{m:02d}:{rem // 1000:02d}.{rem % 1000:03d}"


# --------------------------------------------------------------------------- images


@cache
def source_image(name: str) -> Image.Image:
    """A scikit-image sample photo as a Pillow image (RGB or greyscale)."""
    return Image.fromarray(getattr(skdata, name)())


def pixel_window(spec: ItemSpec) -> tuple[int, int, int, int]:
    """The item's crop window in source pixels."""
    sw, sh = source_image(spec.source).size
    x0, y0, x1, y1 = spec.window
    return (round(x0 * sw), round(y0 * sh), round(x1 * sw), round(y1 * sh))


def output_size(spec: ItemSpec) -> tuple[int, int]:
    """Frames have a fixed size; stills keep their crop's aspect within ``max_side``."""
    if spec.size is not None:
        return spec.size
    x0, y0, x1, y1 = pixel_window(spec)
    w, h = x1 - x0, y1 - y0
    scale = min(1.0, spec.max_side / max(w, h))
    return (round(w * scale), round(h * scale))


def apply_effect(image: Image.Image, effect: str | None) -> Image.Image:
    """Blur, darken or brighten a variant."""
    if effect == "blur":
        return image.filter(ImageFilter.GaussianBlur(4))
    if effect == "motion":
        return image.filter(ImageFilter.BoxBlur(3))
    if effect == "dark":
        return ImageEnhance.Brightness(image).enhance(0.25)
    if effect == "bright":
        return ImageEnhance.Brightness(image).enhance(1.9)
    return image


def render(spec: ItemSpec) -> bytes:
    """The item's image file content."""
    image = source_image(spec.source).crop(pixel_window(spec))
    image = image.resize(output_size(spec), Image.Resampling.LANCZOS)
    image = apply_effect(image, spec.effect)
    buffer = io.BytesIO()
    if spec.fmt == "PNG":
        image.save(buffer, "PNG")
    else:
        image.save(buffer, "JPEG", quality=JPEG_QUALITY)
    return buffer.getvalue()


def object_bbox(spec: ItemSpec, obj: ObjectSpec) -> list[int] | None:
    """The object's [x, y, w, h] in the item's pixels, or None when mostly cropped away."""
    sw, sh = source_image(spec.source).size
    wx0, wy0, wx1, wy1 = pixel_window(spec)
    ox0, oy0, ox1, oy1 = (obj.box[0] * sw, obj.box[1] * sh, obj.box[2] * sw, obj.box[3] * sh)
    ix0, iy0, ix1, iy1 = max(ox0, wx0), max(oy0, wy0), min(ox1, wx1), min(oy1, wy1)
    if ix1 <= ix0 or iy1 <= iy0:
        return None
    if (ix1 - ix0) * (iy1 - iy0) < 0.5 * (ox1 - ox0) * (oy1 - oy0):
        return None
    width, height = output_size(spec)
    fx, fy = width / (wx1 - wx0), height / (wy1 - wy0)
    x, y = int((ix0 - wx0) * fx), int((iy0 - wy0) * fy)
    w, h = min(int((ix1 - ix0) * fx), width - x), min(int((iy1 - iy0) * fy), height - y)
    return [x, y, w, h] if min(w, h) >= 4 else None


# --------------------------------------------------------------------------- metadata items


def family_index(specs: list[ItemSpec]) -> dict[str, list[ItemSpec]]:
    """Items grouped by near-duplicate family."""
    families: dict[str, list[ItemSpec]] = {}
    for spec in specs:
        families.setdefault(spec.family, []).append(spec)
    return families


def duplicate_levels(spec: ItemSpec, family: list[ItemSpec]) -> list[tuple[float, float]]:
    """(threshold, best similarity to another member) for every level grouping the item.

    At threshold t a family's group is its representative plus the members whose
    similarity to it is at least t; a stricter threshold keeps fewer members.
    """
    levels = []
    for threshold in THRESHOLDS:
        members = [s for s in family if s.sim >= threshold]
        others = [s.sim for s in members if s is not spec]
        if spec.phantom_sim is not None and spec.phantom_sim >= threshold:
            others.append(spec.phantom_sim)
        if spec in members and others:
            best = max(others) if spec.role == "rep" else spec.sim
            levels.append((threshold, best))
    return levels


def issue(issue_type: str, confidence: float, **extra: Any) -> JSON:
    """An ``issue`` metadata item."""
    return {
        "type": "issue",
        "properties": {"issue_type": issue_type, "confidence": confidence, **extra},
    }


def duplicate_issues(key: tuple[str, ...], levels: list[tuple[float, float]]) -> list[JSON]:
    """One ``duplicates`` issue per threshold level, each with its own group id."""
    rng = rng_for("dup-confidence", *key)
    return [
        issue(
            "duplicates",
            round(min(sim, 1.0) - rng.uniform(0.0, 0.004), 6),
            duplicate_group_id=make_id("dup-group", *key[:-1], threshold),
            duplicate_threshold=threshold,
        )
        for threshold, sim in levels
    ]


def quality_issues(spec: ItemSpec) -> list[JSON]:
    """Outlier, blur, dark and bright issues of the whole image."""
    rng = rng_for("quality", spec.file_path)
    issues = []
    if spec.role == "outlier":
        issues.append(issue("outliers", round(rng.uniform(0.9, 0.99), 3)))
    kind = {"blur": "blur", "motion": "blur", "dark": "dark", "bright": "bright"}
    if spec.effect in kind:
        issues.append(issue(kind[spec.effect], round(rng.uniform(0.8, 0.99), 7)))
    return issues


def image_labels(spec: ItemSpec) -> list[JSON]:
    """Labels from the user (stills only), Visual Layer and a model."""
    src = SOURCES[spec.source]
    labels: list[tuple[str, str, int]] = []
    if spec.video is None:
        labels.append((src.user_label[0], "User", src.user_label[1]))
    labels += [(name, "Visual Layer", -1) for name in src.vl_labels]
    labels += [(name, "Model", -1) for name in src.model_labels]
    return [
        {
            "type": "image_label",
            "properties": {"original_id": oid, "category_name": name, "source": source},
        }
        for name, source, oid in labels
    ]


def object_labels(spec: ItemSpec, media_id: str, family: list[ItemSpec]) -> list[JSON]:
    """Boxes of the source's objects still visible in this item, with nested issues."""
    labels = []
    for number, obj in enumerate(SOURCES[spec.source].objects):
        bbox = object_bbox(spec, obj)
        if bbox is None:
            continue
        object_id = make_id("object", spec.file_path, number)
        rng = rng_for("object", object_id)
        nested = duplicate_issues(
            (spec.family, obj.category, str(number), spec.file_path),
            duplicate_levels(spec, family),
        )
        if spec.effect in ("blur", "motion"):
            nested.append(issue("blur", round(rng.uniform(0.8, 0.98), 7)))
        if obj.outlier and spec.role == "rep":
            nested.append(issue("outliers", round(rng.uniform(0.9, 0.98), 3)))
        properties = {
            "original_id": obj.original_id,
            "category_name": obj.category,
            "source": obj.source,
            "bbox": bbox,
            "uniqueness_score": rng.uniform(0.05, 0.95),
            "url": f"{DATASET_URL}/image/{media_id}?&object_id={object_id}",
            "metadata_items": nested,
        }
        labels.append({"type": "object_label", "properties": properties})
    return labels


def video_info(ref: VideoRef) -> JSON:
    """Real exports say video_name + frame_timestamp; the docs say video_id, frame_number."""
    if ref.shape == "real":
        properties: JSON = {"video_name": ref.name, "frame_timestamp": ref.seconds}
    else:
        properties = {
            "video_id": make_id("video", ref.name),
            "frame_number": round(ref.seconds * 30),
            "timestamp": hms(ref.seconds),
        }
    return {"type": "video_info", "properties": properties}


def extras(spec: ItemSpec) -> list[JSON]:
    """Captions, user tags and an item type no reader knows about (``embedding_ref``)."""
    items: list[JSON] = []
    is_first_frame = spec.video is not None and spec.role == "rep"
    if spec.video is None or is_first_frame:
        text = SOURCES[spec.source].caption
        if spec.file_path in THIRD_PARTY_CAPTIONS:
            items.append({"type": "caption", "properties": {"caption": text}})
        else:
            items.append(
                {"type": "caption", "properties": {"text": text, "source": "Visual Layer"}}
            )
    rng = rng_for("tags", spec.file_path)
    for tag in spec.tags:
        when = DATASET_CREATED + timedelta(days=rng.uniform(1, 6))
        items.append(
            {"type": "user_tag", "properties": {"tag_name": tag, "assigned_date": iso(when)}}
        )
    if spec.file_path in EMBEDDING_REFS:
        ref = {"model": "vl-embed-v3", "vector_id": make_id("vector", spec.file_path), "dim": 768}
        items.append({"type": "embedding_ref", "properties": ref})
    return items


# --------------------------------------------------------------------------- media items


def uniqueness(spec: ItemSpec) -> float:
    """Outliers and loners high, representatives middling, near-duplicates low."""
    rng = rng_for("uniqueness", spec.file_path)
    if spec.role == "outlier":
        return rng.uniform(0.95, 0.995)
    if spec.role == "single":
        return rng.uniform(0.8, 0.92)
    if spec.role == "rep":
        return rng.uniform(0.55, 0.8)
    return min((1.0 - spec.sim) * 6 + rng.uniform(0.005, 0.06), 1.0)


def cluster_id(spec: ItemSpec) -> str:
    """Everything made from one photo (stills and frames) shares a similarity cluster."""
    return make_id("cluster", spec.source)


def media_item(spec: ItemSpec, content: bytes, family: list[ItemSpec]) -> JSON:
    """One ``media_items`` entry, keys in the real export's order plus 2026 keys."""
    media_id = make_id("media", spec.file_path)
    width, height = output_size(spec)
    inserted = DATASET_CREATED + timedelta(seconds=rng_for("ins", spec.file_path).uniform(5, 900))
    metadata = [video_info(spec.video)] if spec.video else []
    metadata += duplicate_issues((spec.family, spec.file_path), duplicate_levels(spec, family))
    metadata += quality_issues(spec) + image_labels(spec)
    metadata += object_labels(spec, media_id, family) + extras(spec)
    return {
        "media_id": media_id,
        "media_type": "video_frame" if spec.video else "image",
        "file_name": spec.file_path.rsplit("/", 1)[-1],
        "file_path": spec.file_path,
        "file_size": human_size(len(content)),
        "uniqueness_score": uniqueness(spec),
        "height": height,
        "width": width,
        "url": f"{DATASET_URL}/image/{media_id}",
        "cluster_id": cluster_id(spec),
        "media_status": "ACTIVE",
        "insertion_time": iso(inserted),
        "metadata_items": metadata,
        **spec.extra,
    }


def info_block(total: int) -> JSON:
    """The export's ``info`` block, with every key of the real one."""
    return {
        "schema_version": "1.1",
        "dataset": DATASET_NAME,
        "description": f"Exported from {DATASET_NAME} at Visual Layer",
        "dataset_url": DATASET_URL,
        "export_time": iso(EXPORT_TIME),
        "dataset_creation_time": iso(DATASET_CREATED),
        "exported_by": "vlanalyze maintainers",
        "total_media_items": total,
    }


# --------------------------------------------------------------------------- writers


def parquet_table(info: JSON, items: list[JSON]) -> pa.Table:
    """One row per item; ``file_name`` becomes ``image_filename``; ``info`` in metadata.

    Every row gets every column (None where an item lacks the key) because
    ``pa.Table.from_pylist`` takes its columns from the first row only.
    """
    columns: dict[str, None] = {}
    for item in items:
        columns.update(dict.fromkeys(item))
    rename = {"file_name": "image_filename"}
    rows = [{rename.get(c, c): item.get(c) for c in columns} for item in items]
    table = pa.Table.from_pylist(rows)
    return table.replace_schema_metadata({"info": json.dumps(info, separators=(",", ":"))})


JSON_FORM, PARQUET_FORM, ZIP_FORM = "export-json", "export-parquet", "export.zip"


def fresh_folder(folder: Path, metadata: str) -> None:
    """Empty ``folder`` for a new form; only ever wipe a previous form of the sample."""
    if folder.exists():
        if any(folder.iterdir()) and not (folder / metadata).exists():
            raise SystemExit(f"{folder} exists and is not a sample export; refusing to replace it")
        shutil.rmtree(folder)
    folder.mkdir(parents=True)


def write_export(out: Path) -> tuple[JSON, list[JSON]]:
    """Render every image and write the three forms of the sample into ``out``."""
    specs = all_specs()
    families = family_index(specs)
    json_dir, parquet_dir = out / JSON_FORM, out / PARQUET_FORM
    fresh_folder(json_dir, "metadata.json")
    fresh_folder(parquet_dir, "metadata.parquet")
    items = []
    for spec in specs:
        content = render(spec)
        target = json_dir / "images" / spec.file_path
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(content)
        items.append(media_item(spec, content, families[spec.family]))
    info = info_block(len(items))
    document = {"info": info, "media_items": items}
    # Compact, one line, no trailing newline: byte for byte the real export's layout.
    text = json.dumps(document, separators=(",", ":"))
    (json_dir / "metadata.json").write_text(text, "utf-8")
    pq.write_table(parquet_table(info, items), parquet_dir / "metadata.parquet")
    write_zip(out / ZIP_FORM, text.encode())
    return info, items


def write_zip(target: Path, metadata: bytes) -> None:
    """The export as downloaded without images: metadata.json at the archive's root.

    A fixed date and mode, so two runs give byte-identical archives.
    """
    member = zipfile.ZipInfo("metadata.json", date_time=EXPORT_TIME.timetuple()[:6])
    member.compress_type = zipfile.ZIP_DEFLATED
    member.create_system = 3
    member.external_attr = 0o644 << 16
    with zipfile.ZipFile(target, "w") as archive:
        archive.writestr(member, metadata)


def drop_nulls(value: Any) -> Any:
    """Remove the nulls Parquet adds for keys an item or a metadata item lacks."""
    if isinstance(value, dict):
        return {k: drop_nulls(v) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [drop_nulls(v) for v in value]
    return value


def check_same_items(out: Path) -> None:
    """Fail unless the three forms hold exactly the same items."""
    document = json.loads((out / JSON_FORM / "metadata.json").read_text("utf-8"))
    table = pq.read_table(out / PARQUET_FORM / "metadata.parquet")
    with zipfile.ZipFile(out / ZIP_FORM) as archive:
        if json.loads(archive.read("metadata.json")) != document:
            raise SystemExit(f"{ZIP_FORM}: metadata.json differs from {JSON_FORM}/")
    if json.loads(table.schema.metadata[b"info"]) != document["info"]:
        raise SystemExit("metadata.parquet: info differs from metadata.json")
    rows = [drop_nulls(row) for row in table.to_pylist()]
    for row in rows:
        row["file_name"] = row.pop("image_filename")
    if [dict(sorted(r.items())) for r in rows] != [
        dict(sorted(i.items())) for i in document["media_items"]
    ]:
        raise SystemExit("metadata.parquet: items differ from metadata.json")


# --------------------------------------------------------------------------- summary


def walk(metadata: list[JSON]) -> list[JSON]:
    """Metadata items including those nested in object labels."""
    found = []
    for entry in metadata:
        found.append(entry)
        found += walk(entry["properties"].get("metadata_items", []))
    return found


def summary(items: list[JSON]) -> Counter[str]:
    """Counts for the README table."""
    counts: Counter[str] = Counter()
    groups: set[tuple[float, str]] = set()
    for item in items:
        counts[f"media: {item['media_type']}"] += 1
        for entry in item["metadata_items"]:
            props = entry["properties"]
            counts[f"item-level {entry['type']}"] += 1
            if entry["type"] == "issue":
                counts[f"item-level issue {props['issue_type']}"] += 1
            if props.get("issue_type") == "duplicates":
                groups.add((props["duplicate_threshold"], props["duplicate_group_id"]))
            if entry["type"] in ("image_label", "object_label"):
                counts[f"{entry['type']} source {props['source']}"] += 1
        for entry in walk(item["metadata_items"]):
            if entry["type"] == "issue" and entry not in item["metadata_items"]:
                counts[f"object-level issue {entry['properties']['issue_type']}"] += 1
    for threshold, _ in groups:
        counts[f"duplicate groups at {threshold}"] += 1
    counts["clusters"] = len({item["cluster_id"] for item in items})
    counts["videos"] = len(
        {item["file_path"].split("/")[0] for item in items if ".mp4/" in item["file_path"]}
    )
    return counts


def main() -> None:
    """Parse arguments, write the export, print counts."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    default = Path(__file__).resolve().parent
    parser.add_argument("--out", type=Path, default=default, help="folder to write the forms into")
    args = parser.parse_args()
    _, items = write_export(args.out)
    check_same_items(args.out)
    for key, value in sorted(summary(items).items()):
        print(f"{key}: {value}")


if __name__ == "__main__":
    main()
