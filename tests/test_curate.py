"""vla.select / vla.top (issue #7) on the sample (both forms) and the real export:
determinism, dedupe invariants, splits (stable, no group across splits), the funnel,
samples, primary labels, the seed's pandas recipe, recipes. Caches live in tmp_path."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import polars as pl
import pyarrow.parquet as pq
import pytest
from conftest import REAL_EXPORT as _REAL
from conftest import SAMPLE_EXPORT, SAMPLE_PARQUET

import vlanalyze as vla
from vlanalyze import Export, Recipe, Selection, SelectionError

# VLA_REAL_EXPORT: run the real-export tests from a worktree whose ../shared is elsewhere.
REAL_EXPORT = Path(os.environ.get("VLA_REAL_EXPORT", _REAL))
FORMS = {"metadata.json": SAMPLE_EXPORT / "metadata.json", "metadata.parquet": SAMPLE_PARQUET}
SPLIT = {"train": 0.8, "val": 0.1, "test": 0.1}
FULL = {
    "exclude_issues": ["blur"],
    "dedupe": 0.96,
    "per_cluster": 5,
    "top": 30,
    "split": SPLIT,
    "seed": 0,
}


@pytest.fixture(scope="module", params=list(FORMS))
def sample(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Export]:
    """The sample export, opened from each form's file directly."""
    cache = tmp_path_factory.mktemp("curate") / "cache"
    with vla.open_export(FORMS[request.param], cache_dir=cache) as ex:
        yield ex


@pytest.fixture(scope="module")
def real(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Export]:
    if not REAL_EXPORT.is_file():
        pytest.skip(f"real export fixture not found at {REAL_EXPORT} (not in a user's clone)")
    with vla.open_export(REAL_EXPORT, cache_dir=tmp_path_factory.mktemp("real") / "c") as ex:
        yield ex


def _groups(ex: Export, level: float) -> pl.DataFrame:
    """media_id -> gid at ``level`` (image-level), computed with polars, not our SQL."""
    return (
        ex.issues.filter(
            (pl.col("issue_type") == "duplicates")
            & pl.col("object_id").is_null()
            & ((pl.col("duplicate_threshold") - level).abs() < 1e-9)
        )
        .select("media_id", gid=pl.col("duplicate_group_id"))
        .unique()
        .collect()
    )


def _levels(ex: Export) -> list[float]:
    issues = ex.issues.filter(pl.col("issue_type") == "duplicates", pl.col("object_id").is_null())
    return sorted(issues.select("duplicate_threshold").unique().collect().to_series().to_list())


# --- determinism ---------------------------------------------------------------------------


@pytest.mark.parametrize("suffix", [".json", ".parquet", ".csv"])
def test_same_inputs_same_bytes(sample: Export, tmp_path: Path, suffix: str) -> None:
    outs = []
    for i in range(2):
        with vla.select(sample, **FULL) as sel:  # type: ignore[arg-type]
            sel.write(tmp_path / f"{i}{suffix}")
        outs.append((tmp_path / f"{i}{suffix}").read_bytes())
    assert outs[0] == outs[1]
    assert len(outs[0]) > 100


def test_both_forms_give_the_same_selection(tmp_path: Path) -> None:
    """Both metadata files, each in a folder with the sample's images: the same bytes."""
    texts = []
    for form, source in FORMS.items():
        folder = tmp_path / f"export-{form}"
        shutil.copytree(SAMPLE_EXPORT / "images", folder / "images")
        shutil.copy2(source, folder / form)
        with (
            vla.open_export(folder / form) as ex,
            vla.select(ex, **FULL) as sel,  # type: ignore[arg-type]
        ):
            sel.write(tmp_path / f"{form}.json")
            sel.write(tmp_path / f"{form}.parquet")
            funnel = sel.funnel
        texts.append((tmp_path / f"{form}.json").read_bytes())
        assert funnel.height == 5
    assert texts[0] == texts[1]
    tables = [pl.read_parquet(tmp_path / f"{form}.parquet") for form in FORMS]
    assert tables[0].equals(tables[1])


def test_parquet_selection_says_how_it_was_made(sample: Export, tmp_path: Path) -> None:
    with vla.select(sample, **FULL) as sel:  # type: ignore[arg-type]
        sel.write(tmp_path / "s.parquet")
    meta = pq.read_schema(tmp_path / "s.parquet").metadata
    recipe = Recipe.from_toml(meta[b"vlanalyze.recipe"].decode())
    assert recipe == Recipe.build(**FULL)
    export = json.loads(meta[b"vlanalyze.export"])
    assert export["fingerprint"] == sample.source.fingerprint()
    assert export["dataset"] == "vlanalyze sample" and export["media"] == 46
    assert json.loads(meta[b"vlanalyze.funnel"])[0]["step"] == "issues"


def test_columns_and_rank(sample: Export) -> None:
    with vla.select(sample, **FULL) as sel:  # type: ignore[arg-type]
        table = sel.table
    assert table.columns[0] == "media_id" and table.columns[-1] == "rank"
    for col in ("file_path", "image_path", "uniqueness_score", "cluster_id", "label", "split"):
        assert col in table.columns
    assert table["rank"].to_list() == list(range(1, table.height + 1))
    expected = table.sort(["uniqueness_score", "media_id"], descending=[True, False])
    assert table["media_id"].to_list() == expected["media_id"].to_list()
    if sample.format == "json":  # export-json/ ships every image, export-parquet/ none
        assert table["image_path"].null_count() == 0


# --- the funnel ------------------------------------------------------------------------------


def test_funnel_adds_up(sample: Export) -> None:
    with vla.select(sample, where="width > 100", labels=["cat", "eye", "person"], **FULL) as sel:  # type: ignore[arg-type]
        funnel, removed, n = sel.funnel, sel.removed, len(sel)
    assert funnel["step"].to_list() == [
        "filters",
        "issues",
        "dedupe",
        "per_cluster",
        "top",
        "split",
    ]
    for row in funnel.iter_rows(named=True):
        assert row["rows_in"] == row["rows_out"] + row["removed"]
        assert removed.filter(pl.col("step") == row["step"]).height == row["removed"]
    assert funnel["rows_out"].to_list()[:-1] == funnel["rows_in"].to_list()[1:]
    assert funnel["rows_in"][0] == 46 and funnel["rows_out"][-1] == n
    assert removed.height + n == 46
    assert removed["media_id"].n_unique() == removed.height


# --- dedupe ----------------------------------------------------------------------------------


KEEP_KEYS = {
    "uniqueness": ([pl.col("uniqueness_score")], [True]),
    "resolution": ([pl.col("width") * pl.col("height"), pl.col("uniqueness_score")], [True, True]),
    "first": ([pl.col("file_path")], [False]),
}


@pytest.mark.parametrize("keep", sorted(KEEP_KEYS))
def test_dedupe_keeps_one_per_group_the_one_the_policy_names(sample: Export, keep: str) -> None:
    media = sample.media.select("media_id", "uniqueness_score", "width", "height", "file_path")
    for level in _levels(sample):
        with vla.select(sample, dedupe=level, keep=keep) as sel:
            kept, removed = set(sel.table["media_id"]), sel.removed
        rows = media.collect().join(_groups(sample, level), on="media_id", how="left")
        rows = rows.with_columns(g=pl.coalesce("gid", "media_id"))
        keys, desc = KEEP_KEYS[keep]
        best = (
            rows.sort([*keys, pl.col("media_id")], descending=[*desc, False], nulls_last=True)
            .group_by("g", maintain_order=True)
            .first()
        )
        assert kept == set(best["media_id"]), level
        assert len(kept) == rows["g"].n_unique()
        # every removed row names its group's survivor
        survivor = dict(zip(best["g"], best["media_id"], strict=True))
        group = dict(zip(rows["media_id"], rows["g"], strict=True))
        for mid, dup in zip(removed["media_id"], removed["duplicate_of"], strict=True):
            assert dup == survivor[group[mid]] and dup != mid
        # an image without a duplicates issue at this level is a group of one: kept
        assert set(rows.filter(pl.col("gid").is_null())["media_id"]) <= kept


def test_dedupe_keep_labelled_prefers_labelled_images(real: Export) -> None:
    with vla.select(real, dedupe="min", keep="labelled") as sel:
        kept = set(sel.table["media_id"])
    labelled = set(real.labels.select("media_id").collect()["media_id"])
    rows = (
        real.media.select("media_id")
        .collect()
        .join(_groups(real, _levels(real)[0]), on="media_id", how="left")
    )
    for _, grp in rows.filter(pl.col("gid").is_not_null()).group_by("gid"):
        members = set(grp["media_id"])
        assert len(members & kept) == 1
        if members & labelled:
            assert members & kept & labelled


def test_min_and_max_name_the_loosest_and_strictest(real: Export) -> None:
    levels = _levels(real)
    for name, level in (("min", levels[0]), ("max", levels[-1])):
        with vla.select(real, dedupe=name) as a, vla.select(real, dedupe=level) as b:
            assert a.table.equals(b.table)
    with vla.select(real, dedupe="min") as loose, vla.select(real, dedupe="max") as strict:
        assert len(loose) < len(strict)


# --- splits ----------------------------------------------------------------------------------


def _draw(seed: int, key: str) -> float:
    return int(hashlib.md5(f"{seed}:{key}".encode()).hexdigest()[:13], 16) / 2**52


@pytest.mark.parametrize("group", ["duplicates", "duplicates@0.99", "cluster", "video", "none"])
def test_no_group_crosses_splits(sample: Export, group: str) -> None:
    with vla.select(sample, split=SPLIT, group=group, seed=3) as sel:
        table = sel.table
    assert table.height == 46 and set(table["split"]) <= set(SPLIT)
    kind, _, level = group.partition("@")
    if kind == "duplicates":
        gids = _groups(sample, float(level) if level else _levels(sample)[0])
        keyed = table.join(gids, on="media_id", how="left")
        key = pl.coalesce(pl.lit("dup:") + pl.col("gid"), pl.lit("media:") + pl.col("media_id"))
    elif kind == "none":
        keyed, key = table, pl.lit("media:") + pl.col("media_id")
    else:
        col = {"cluster": "cluster_id", "video": "video_name"}[kind]
        keyed = table
        key = pl.coalesce(pl.lit(f"{kind}:") + pl.col(col), pl.lit("media:") + pl.col("media_id"))
    keyed = keyed.with_columns(key=key)
    assert keyed.group_by("key").agg(pl.col("split").n_unique())["split"].max() == 1
    # the documented draw: md5 of "seed:key", first 13 hex digits / 2**52
    for k, split in zip(keyed["key"], keyed["split"], strict=True):
        u = _draw(3, k)
        assert split == ("train" if u < 0.8 else "val" if u < 0.9 else "test")


def test_removing_rows_never_moves_a_row(sample: Export) -> None:
    with vla.select(sample, split=SPLIT, seed=1) as full:
        everything = dict(zip(full.table["media_id"], full.table["split"], strict=True))
    for where in ("uniqueness_score > 0.3", "media_type = 'image'", "width < 400"):
        with vla.select(sample, where=where, split=SPLIT, seed=1) as part:
            assert 0 < len(part) < 46
            for mid, split in zip(part.table["media_id"], part.table["split"], strict=True):
                assert everything[mid] == split


def test_leakage_report(real: Export) -> None:
    with vla.select(real, split={"a": 0.5, "b": 0.5}, group="none", seed=0) as weak:
        leak = weak.leakage
    assert leak is not None and leak["group"] == "none"
    assert leak["loosest_level"] == _levels(real)[0]
    assert isinstance(leak["duplicate_groups_across_splits"], int)
    assert leak["duplicate_groups_across_splits"] > 0  # 16 groups of frames, split by frame
    assert isinstance(leak["videos_across_splits"], int) and leak["videos_across_splits"] > 0
    with vla.select(real, split={"a": 0.5, "b": 0.5}, seed=0) as safe:
        assert safe.leakage is not None
        assert safe.leakage["duplicate_groups_across_splits"] == 0
    with vla.select(real, top=5) as no_split:
        assert no_split.leakage is None


# --- top, sample, labels -------------------------------------------------------------------


def test_top_is_the_seed_pandas_recipe(tmp_path: Path) -> None:
    pd = pytest.importorskip("pandas")
    df = pd.read_parquet(SAMPLE_PARQUET)
    for n in (1, 10, 46, 100):
        expected = df.sort_values(by="uniqueness_score", ascending=False).head(n)
        with (
            vla.open_export(SAMPLE_PARQUET, cache_dir=tmp_path / "c") as ex,
            vla.top(ex, n) as sel,
        ):
            got = sel.table
        assert got["media_id"].to_list() == expected["media_id"].tolist()
        assert got["file_name"].to_list() == expected["image_filename"].tolist()


def test_top_real_export_and_ascending(real: Export) -> None:
    pd = pytest.importorskip("pandas")
    items = json.loads(REAL_EXPORT.read_text())["media_items"]
    df = pd.DataFrame(items)
    for ascending in (False, True):
        expected = df.sort_values(by="uniqueness_score", ascending=ascending).head(20)
        with vla.top(real, 20, ascending=ascending) as sel:
            assert sel.table["media_id"].to_list() == expected["media_id"].tolist()


def test_ties_break_by_media_id(tmp_path: Path, export_kit: type) -> None:
    items = [export_kit.item(f"m{i}", uniqueness_score=0.5) for i in (3, 1, 2)]
    items.append(export_kit.item("m0", uniqueness_score=0.9))
    path = export_kit.write_json(tmp_path / "e" / "metadata.json", items)
    with vla.open_export(path) as ex, vla.top(ex, 3) as sel:
        assert sel.table["media_id"].to_list() == ["m0", "m1", "m2"]
    with vla.open_export(path) as ex, vla.top(ex, 2, ascending=True) as sel:
        assert sel.table["media_id"].to_list() == ["m1", "m2"]


def test_sample_is_seeded_and_proportional(real: Export) -> None:
    with vla.select(real, sample=10, seed=7, stratify="media_type") as a:
        first = a.table["media_id"].to_list()
    with vla.select(real, sample=10, seed=7, stratify="media_type") as b:
        assert b.table["media_id"].to_list() == first
    with vla.select(real, sample=10, seed=8, stratify="media_type") as c:
        assert c.table["media_id"].to_list() != first
    with vla.select(real, sample=30, seed=1, stratify="cluster_id") as d:
        counts = dict(d.table.group_by("cluster_id").len().iter_rows())
    total = dict(real.media.group_by("cluster_id").len().collect().iter_rows())
    for cluster, n in total.items():
        assert abs(counts.get(cluster, 0) - 30 * n / 56) < 1, cluster


def test_sample_by_primary_label(sample: Export) -> None:
    with vla.select(sample, sample=12, stratify="label", seed=0) as sel:
        table = sel.table
    assert table.height == 12
    assert table["label"].null_count() == 0


def test_primary_label_policy(tmp_path: Path, export_kit: type) -> None:
    def label(name: str, source: str) -> dict[str, object]:
        props = {"category_name": name, "source": source, "original_id": -1}
        return {"type": "image_label", "properties": props}

    items = [
        export_kit.item("a", metadata_items=[label("zebra", "User"), label("ant", "Model")]),
        export_kit.item("b", metadata_items=[label("yak", "Visual Layer"), label("ox", "Model")]),
        export_kit.item(
            "c", metadata_items=[label("yak", "Visual Layer"), label("eel", "Visual Layer")]
        ),
        export_kit.item("d"),
    ]
    path = export_kit.write_json(tmp_path / "e" / "metadata.json", items)
    with vla.open_export(path) as ex:
        with vla.select(ex) as sel:
            got = dict(zip(sel.table["media_id"], sel.table["label"], strict=True))
        assert got == {"a": "zebra", "b": "ox", "c": "eel", "d": None}
        with vla.select(ex, label_source="Visual Layer") as sel:
            assert sorted(sel.table["media_id"]) == ["b", "c"]
            assert dict(zip(sel.table["media_id"], sel.table["label"], strict=True)) == {
                "b": "yak",
                "c": "eel",
            }
        with vla.select(ex, labels=["yak", "ox"], all_labels=True) as sel:
            assert sel.table["media_id"].to_list() == ["b"]
        with vla.select(ex, no_labels=["yak"]) as sel:
            assert sorted(sel.table["media_id"]) == ["a", "d"]


def test_filters_and_gates(sample: Export) -> None:
    media = sample.media.collect()
    with vla.select(sample, tags=["hero"]) as sel:
        assert len(sel) == 2
    with vla.select(sample, no_tags=["hero", "to-delete"]) as sel:
        assert len(sel) == 42
    with vla.select(sample, media_type="video_frame") as sel:
        assert len(sel) == 20
    cluster = media["cluster_id"][0]
    with vla.select(sample, clusters=[cluster]) as sel:
        assert len(sel) == media.filter(pl.col("cluster_id") == cluster).height
    blur = sample.issues.filter(pl.col("issue_type") == "blur", pl.col("object_id").is_null())
    blur_ids = set(blur.collect()["media_id"])
    with vla.select(sample, exclude_issues="blur") as sel:
        assert not set(sel.table["media_id"]) & blur_ids and len(sel) == 46 - len(blur_ids)
    confs = sorted(blur.collect()["confidence"])
    with vla.select(sample, exclude_issues=[f"blur>={confs[-1]}"]) as sel:
        assert len(sel) == 45
    with vla.select(sample, exclude_object_issues=["blur"]) as sel:
        assert len(sel) == 46 - 4  # sample README: 10 object-level blur issues on 4 images


# --- recipes ---------------------------------------------------------------------------------


def test_recipe_round_trip() -> None:
    recipe = Recipe.build(
        where=["file_path LIKE '%\"q\"\\\\%'", "width > 1\n"],
        labels=["ca\tt", 'd"og', "été"],
        all_labels=True,
        no_labels=["x"],
        label_source="User",
        tags=["a b"],
        no_tags=["c"],
        media_type="image",
        clusters=["k"],
        exclude_issues=["blur>=0.5", "dark"],
        exclude_object_issues=["outliers"],
        dedupe="min",
        keep="first",
        per_cluster=2,
        per_video=3,
        top=4,
        by="width",
        ascending=True,
        sample=5,
        stratify="label",
        split={"train": 0.7, "va-l.1": 0.3},
        group="duplicates@0.97",
        seed=9,
    )
    assert Recipe.from_toml(recipe.to_toml()) == recipe
    assert Recipe.from_toml(Recipe().to_toml()) == Recipe()


def test_recipe_and_overrides(sample: Export) -> None:
    recipe = Recipe.build(**FULL)  # type: ignore[arg-type]
    with vla.select(sample, recipe, top=5) as sel:
        assert len(sel) == 5 and sel.recipe.top == 5 and sel.recipe.dedupe == 0.96


@pytest.mark.parametrize(
    ("text", "needle"),
    [
        ("top = 'x'", "top has the wrong type"),
        ("bogus = 1", "unknown key(s) bogus"),
        ("top = ", "not valid TOML"),
        ("recipe_version = 99", "unsupported recipe_version"),
    ],
)
def test_bad_recipe_files(text: str, needle: str) -> None:
    with pytest.raises(SelectionError) as info:
        Recipe.from_toml(text)
    assert needle in str(info.value)


def test_selection_is_a_context_and_closes(sample: Export) -> None:
    sel: Selection = vla.top(sample, 3)
    table = sel.table
    sel.close()
    assert sel.table is table and len(sel) == 3
    with pytest.raises(ValueError, match="closed"):
        sel.removed  # noqa: B018


@pytest.mark.parametrize(
    "rules",
    [
        FULL,
        {"where": "width > 100", "exclude_issues": ["dark"], "dedupe": "max", "keep": "first"},
        {"labels": ["cat"], "dedupe": 0.97, "keep": "resolution", "per_video": 1, "top": 5},
        {"dedupe": "min", "by": "width", "split": SPLIT, "group": "duplicates@0.99"},
        {"dedupe": "min", "keep": "labelled", "split": SPLIT, "group": "video", "sample": 9},
    ],
)
def test_without_removed_rows_the_same_selection(sample: Export, rules: dict[str, object]) -> None:
    with vla.select(sample, **rules) as a, vla.select(sample, **rules, keep_removed=False) as b:  # type: ignore[arg-type]
        assert a.table.equals(b.table)
        assert a.funnel.equals(b.funnel)
        assert a.leakage == b.leakage
        with pytest.raises(ValueError, match="keep_removed"):
            b.removed  # noqa: B018


def test_write_refuses_to_replace_and_names_the_argument(sample: Export, tmp_path: Path) -> None:
    target = tmp_path / "s.csv"
    target.write_text("mine\n")
    with vla.top(sample, 3) as sel:
        with pytest.raises(vla.MaterializeError) as info:
            sel.write(target)
        assert "overwrite=True" in str(info.value)
        assert target.read_text() == "mine\n"
        assert sel.write(target, overwrite=True) == 3
        with pytest.raises(SelectionError, match="extension"):
            sel.write(tmp_path / "s.xlsx")
        assert sel.write(tmp_path / "s.txt", format="tsv") == 3
    assert sorted(p.name for p in tmp_path.iterdir()) == ["s.csv", "s.txt"]


def test_an_export_without_issues(tmp_path: Path, export_kit: type) -> None:
    items = [export_kit.item(f"m{i}", uniqueness_score=i / 10) for i in range(10)]
    path = export_kit.write_json(tmp_path / "e" / "metadata.json", items)
    with vla.open_export(path) as ex:
        with vla.select(ex, split=SPLIT, seed=2) as sel:
            assert sel.leakage is not None and sel.leakage["group"] == "none"
            assert sel.leakage["loosest_level"] is None
            assert set(sel.table["split"]) <= set(SPLIT)
        with pytest.raises(SelectionError, match="no image-level duplicates"):
            vla.select(ex, dedupe="min")
        with pytest.raises(SelectionError, match="unknown issue type 'blur'"):
            vla.select(ex, exclude_issues="blur")
        with pytest.raises(SelectionError, match="has no labels"):
            vla.select(ex, labels="cat")
