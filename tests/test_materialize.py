"""vla.plan_materialize / vla.materialize / vla.read_selection, on real files in tmp_path."""

from __future__ import annotations

import fcntl
import io
import json
import os
import shutil
import struct
import zipfile
from pathlib import Path
from typing import Any

import polars as pl
import pytest
import yaml
from materialize_kit import item, jpeg, tree, write_export, write_images

import vlanalyze as vla
from vlanalyze._fs import MAX_NAME_BYTES, TEMP_NAME_OVERHEAD
from vlanalyze.errors import MaterializeError, SelectionError

FILES = "vlanalyze-materialize-files.parquet"

# --- fixtures ----------------------------------------------------------------------------

A, B, C, D = (f"{n}0000000-0000-4000-8000-00000000000{n}" for n in "1234")


@pytest.fixture
def boxed(tmp_path: Path) -> Path:
    """Four images with labels and boxes; two share a file name."""
    items = [
        item(
            A,
            "v1.mp4/frame.jpg",
            labels=[("dog", "Visual Layer"), ("cat", "User")],
            boxes=[("cat", (10, 20, 30, 40)), ("dog", (0, 0, 200, 100))],
        ),
        item(
            B,
            "v2.mp4/frame.jpg",
            labels=[("zebra", "Model"), ("ant", "Visual Layer")],
            boxes=[("bird", (150, 50, 50, 50))],
            width=300,
            height=150,
        ),
        item(C, "photos/c.png", labels=[("cat", "Visual Layer")]),
        item(D, "photos/d.jpg"),
    ]
    return write_export(tmp_path / "export", items)


def _open(path: Path) -> vla.Export:
    return vla.open_export(path)


def _run(ex: vla.Export, sel: object, out: Path, **kw: object) -> vla.MaterializeResult:
    options = {k: v for k, v in kw.items() if k not in ("prune", "verify")}
    plan = vla.plan_materialize(ex, sel, out, **options)  # type: ignore[arg-type]
    return vla.materialize(plan, prune=bool(kw.get("prune")), verify=bool(kw.get("verify")))


def _sel(*ids: str, **cols: list[str]) -> pl.DataFrame:
    return pl.DataFrame({"media_id": list(ids), **cols})


def _images(out: Path) -> dict[str, bytes]:
    skip = {"manifest.csv", "vlanalyze-materialize.json", FILES}
    return {k: v for k, v in tree(out).items() if k not in skip}


# --- the real export: 56 frames, 53 sharing names ----------------------------------------


def test_real_video_frames_land_as_56_distinct_files(real_export: Path, tmp_path: Path) -> None:
    export = tmp_path / "export"
    export.mkdir()
    shutil.copy(real_export, export / "metadata.json")
    ex = _open(export)
    media = ex.media.select("media_id", "file_path").collect()
    root = tmp_path / "dataset"
    write_images(root, media["file_path"].to_list())
    result = _run(ex, media.select("media_id"), tmp_path / "out", images_root=root)
    assert result.written == 56
    files = _images(tmp_path / "out")
    assert len(files) == 56
    # each file is its own frame's bytes (the JPEG carries its file_path as a comment)
    manifest = pl.read_csv(tmp_path / "out" / "manifest.csv")
    for dest, fp in zip(manifest["dest"], media["file_path"], strict=True):
        assert files[dest] == jpeg(fp)
    assert len(set(files.values())) == 56


def test_real_export_file_path_template_is_rejected_for_windows(
    real_export: Path, tmp_path: Path
) -> None:
    export = tmp_path / "export"
    export.mkdir()
    shutil.copy(real_export, export / "metadata.json")
    ex = _open(export)
    sel = ex.media.select("media_id").collect()
    with pytest.raises(MaterializeError, match="Windows forbids"):  # the ':' of the video names
        vla.plan_materialize(ex, sel, tmp_path / "out", name="{file_path}")
    with pytest.raises(MaterializeError, match="collide"):  # output_000001.jpg, 4 times
        vla.plan_materialize(ex, sel, tmp_path / "out", name="{file_name}")
    assert not (tmp_path / "out").exists()


# --- selections --------------------------------------------------------------------------


def test_read_selection_every_form(tmp_path: Path) -> None:
    frame = _sel(A, B, A, label=["x", "y", "x"])
    csv, parquet, ndjson = tmp_path / "s.csv", tmp_path / "s.parquet", tmp_path / "s.ndjson"
    frame.write_csv(csv)
    frame.write_parquet(parquet)
    frame.write_ndjson(ndjson)
    for source in (frame, csv, parquet, ndjson, io.BytesIO(csv.read_bytes())):
        sel = vla.read_selection(source)  # type: ignore[arg-type]
        assert sel.media_ids == [A, B]
        assert sel.frame["label"].to_list() == ["x", "y"] and sel.has_label
        assert not sel.has_split and sel.frame["split"].null_count() == 2


@pytest.mark.parametrize(
    ("text", "match"),
    [
        ("id,score\nx,1\n", r"no media_id column \(columns: id, score\)"),
        ("media_id,score\n", "has no rows"),
        ("media_id,label\nx,a\nx,b\n", "twice with different labels"),
        ("", "no media_id column"),
    ],
)
def test_bad_selections(tmp_path: Path, text: str, match: str) -> None:
    path = tmp_path / "s.csv"
    path.write_text(text)
    with pytest.raises(SelectionError, match=match):
        vla.read_selection(path)


def test_unknown_media_ids_are_listed(boxed: Path, tmp_path: Path) -> None:
    with pytest.raises(SelectionError, match=r"1 media id.*not in the export: nope"):
        vla.plan_materialize(_open(boxed), _sel(A, "nope"), tmp_path / "out")


# --- names and paths ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("label", "problem"),
    [
        ("../x", "'/'"),
        ("..", "'..'"),
        ("a/b", "'/'"),
        ("CON", "Windows reserves"),
        ("COM¹", "Windows reserves"),
        ("lpt³.txt", "Windows reserves"),
        ("a:b", "Windows forbids"),
        ("x.", "ends with a dot"),
        ("a\\b", "Windows forbids"),
    ],
)
def test_hostile_labels_never_leave_out(
    boxed: Path, tmp_path: Path, label: str, problem: str
) -> None:
    out = tmp_path / "area" / "out"
    before = sorted(p for p in tmp_path.rglob("*") if ".vlanalyze-cache" not in str(p))
    with pytest.raises(MaterializeError, match=problem):
        _run(_open(boxed), _sel(A, label=[label]), out, layout="by-label")
    after = sorted(p for p in tmp_path.rglob("*") if ".vlanalyze-cache" not in str(p))
    assert after == before


@pytest.mark.parametrize("mode", ["hardlink", "symlink", "copy"])
def test_sources_found_alike_by_listing_or_stat(tmp_path: Path, mode: str) -> None:
    """Link modes find sources by listing folders (a stat each where a folder is much
    larger than what is wanted from it); copies stat each. Both find the same files:
    at the root, in a big folder, through a symlink; not a folder named like an image."""
    E = "50000000-0000-4000-8000-000000000005"
    paths = {A: "top.jpg", B: "big/b.jpg", C: "sub/c.jpg", D: "sub/dir.jpg", E: "sub/gone.jpg"}
    export = write_export(tmp_path / "e", [item(m, p) for m, p in paths.items()], images=False)
    root = tmp_path / "root"
    write_images(root, ["top.jpg", "big/b.jpg", "elsewhere/c.jpg"])
    for i in range(400):  # "big/" is far larger than the one image wanted from it
        (root / "big" / f"other_{i:04d}.jpg").write_bytes(b"x")
    assert (root / "big").stat().st_size > 4096 + 256  # so it takes the stat path
    (root / "sub").mkdir()
    (root / "sub" / "c.jpg").symlink_to(root / "elsewhere" / "c.jpg")
    (root / "sub" / "dir.jpg").mkdir()
    plan = vla.plan_materialize(_open(export), _sel(*paths), tmp_path / "o", mode=mode,
                                images_root=root)  # fmt: skip
    assert sorted(plan.missing) == sorted([D, E])
    sources = dict(plan.table.select("media_id", "source").iter_rows())
    expected = {m: f"{root}/{paths[m]}" for m in (A, B, C)}
    if mode == "hardlink":  # a hard link to the symlink itself would dangle
        expected[C] = f"{root}/elsewhere/c.jpg"
    assert {m: sources[m] for m in (A, B, C)} == expected
    ok = vla.plan_materialize(_open(export), _sel(A, B, C), tmp_path / "o", mode=mode,
                              images_root=root)  # fmt: skip
    assert vla.materialize(ok).written == 3
    assert (tmp_path / "o" / "c__30000000.jpg").read_bytes() == jpeg("elsewhere/c.jpg")
    if mode == "hardlink":
        assert (tmp_path / "o" / "c__30000000.jpg").samefile(root / "elsewhere" / "c.jpg")


def test_hostile_file_path_under_images_root_is_not_a_source(tmp_path: Path) -> None:
    (tmp_path / "secret.jpg").write_bytes(b"secret")
    export = write_export(tmp_path / "e", [item(A, "../secret.jpg")], images=False)
    (tmp_path / "root").mkdir()
    plan = vla.plan_materialize(
        _open(export), _sel(A), tmp_path / "out", images_root=tmp_path / "root"
    )
    assert plan.missing == [A]
    with pytest.raises(MaterializeError, match="not in the export or images root"):
        vla.materialize(plan)
    assert not (tmp_path / "out").exists()


def test_template_escaping_out_is_rejected(boxed: Path, tmp_path: Path) -> None:
    with pytest.raises(MaterializeError, match="not a safe path"):
        vla.plan_materialize(
            _open(boxed), _sel(A, label=[".."]), tmp_path / "o", name="{label}/{stem}"
        )


def test_case_insensitive_collisions_are_rejected(tmp_path: Path) -> None:
    export = write_export(tmp_path / "e", [item(A, "x/Photo.jpg"), item(B, "y/photo.jpg")])
    with pytest.raises(MaterializeError, match="differing only in case"):
        vla.plan_materialize(_open(export), _sel(A, B), tmp_path / "o", name="{file_name}")


@pytest.mark.parametrize(
    ("layout", "name", "label", "clash"),
    [
        ("by-label", None, "manifest.csv", ("manifest.csv", "manifest.csv/")),
        ("by-label", None, "MANIFEST.CSV", ("manifest.csv", "MANIFEST.CSV/")),
        ("flat", "{label}/{stem}{ext}", "vlanalyze-materialize.json",
         ("vlanalyze-materialize.json", "vlanalyze-materialize.json/")),
        ("flat", "{label}{ext}", "x", None),  # two files: the hint is {media_id}
    ],
)  # fmt: skip
def test_a_clash_with_a_folder_hints_at_renaming_the_label(
    tmp_path: Path, layout: str, name: str | None, label: str, clash: tuple[str, str] | None
) -> None:
    """A label named as vlanalyze's own files is a folder where the manifest is a file:
    the hint is to rename the label (a name template with {media_id} would not help)."""
    export = write_export(tmp_path / "e", [item(A, "a.jpg"), item(B, "b.jpg")])
    out = tmp_path / "o"
    with pytest.raises(MaterializeError, match="collide") as caught:
        _run(_open(export), _sel(A, B, label=[label, label]), out, layout=layout, name=name)
    hint = str(caught.value.hint)
    if clash is None:
        assert "{media_id}" in hint and "rename" not in hint
    else:
        assert f"{clash[0]!r} and {clash[1]!r}" in str(caught.value)
        assert "a file and a folder of one name" in str(caught.value)
        assert "rename one of the labels or splits" in hint and "{media_id}" not in hint
    assert not out.exists()


@pytest.mark.parametrize(
    ("layout", "name", "label", "split", "folders"),
    [
        ("by-label", None, ["Cat", "cat"], ["train", "train"], ("Cat/", "cat/")),
        ("imagefolder", None, ["Cat", "cat"], ["train", "train"], ("train/Cat/", "train/cat/")),
        ("imagefolder", None, ["cat", "cat"], ["Train", "train"], ("Train/", "train/")),
        (
            "hf",
            "{label}/{stem}{ext}",
            ["Cat", "cat"],
            ["train", "train"],
            ("train/Cat/", "train/cat/"),
        ),
        ("flat", "{label}/{stem}{ext}", ["Cat", "cat"], ["train", "train"], ("Cat/", "cat/")),
        ("flat", "{label}/{split}/{stem}{ext}", ["x", "x"], ["a", "A"], ("x/a/", "x/A/")),
    ],
)
def test_folders_differing_only_in_case_are_rejected(
    tmp_path: Path,
    layout: str,
    name: str | None,
    label: list[str],
    split: list[str],
    folders: tuple[str, str],
) -> None:
    """Two folders on Linux, one merged class on macOS and Windows: refused up front."""
    export = write_export(tmp_path / "e", [item(A, "a.jpg"), item(B, "b.jpg")])
    out = tmp_path / "o"
    sel = _sel(A, B, label=label, split=split)
    first, second = folders
    with pytest.raises(MaterializeError, match=rf"'{first}' and '{second}'.*only in case"):
        _run(_open(export), sel, out, layout=layout, name=name)
    assert not out.exists()


@pytest.mark.parametrize(
    ("names", "labels"),
    [
        (("caf\u00e9.jpg", "cafe\u0301.jpg"), None),  # é composed (NFC) and decomposed (NFD)
        (("caf\u00e9.jpg", "CAFE\u0301.jpg"), None),  # and case
        (("a.jpg", "b.jpg"), ("caf\u00e9", "cafe\u0301")),  # folders
        (("a.jpg", "b.jpg"), ("\u00c5ngstr\u00f6m", "A\u030angstro\u0308m")),
    ],
)
def test_names_equal_once_unicode_normalized_collide(
    tmp_path: Path, names: tuple[str, str], labels: tuple[str, str] | None
) -> None:
    """macOS stores names normalized: é composed and decomposed are one name there."""
    export = write_export(tmp_path / "e", [item(A, f"x/{names[0]}"), item(B, f"y/{names[1]}")])
    out = tmp_path / "o"
    if labels is None:
        with pytest.raises(MaterializeError, match="Unicode normalization"):
            _run(_open(export), _sel(A, B), out, name="{file_name}")
    else:
        with pytest.raises(MaterializeError, match=r"Unicode normalization.*one folder"):
            _run(_open(export), _sel(A, B, label=list(labels)), out, layout="by-label")
    assert not out.exists()


@pytest.mark.parametrize(
    ("paths", "clashes"),
    [
        (["a/x.jpg", "b/x.jpg", "a/b/y.jpg"], []),
        (["Cat/x.jpg", "cat/y.jpg"], [("Cat/", "cat/")]),
        (
            ["t/Cat/x", "t/cat/y", "t/CAT/z", "t/cat/w"],
            [("t/Cat/", "t/cat/"), ("t/Cat/", "t/CAT/")],
        ),
        (["A/b/x", "a/B/y"], [("A/", "a/"), ("A/b/", "a/B/")]),
        (["x.jpg", "X.JPG"], [("x.jpg", "X.JPG")]),
        (["a", "A/x"], [("a", "A/")]),  # a file where another path has a folder
        (["sub/a", "sub/a/b"], [("sub/a", "sub/a/")]),
        (["caf\u00e9/x", "cafe\u0301/y"], [("caf\u00e9/", "cafe\u0301/")]),
        (["stra\u00dfe/x", "STRASSE/y"], [("stra\u00dfe/", "STRASSE/")]),  # casefold: ß is ss
        (["\u00e9/x", "e/y"], []),  # a different letter, not another form of one
    ],
)
def test_find_collisions_files_and_folders(
    paths: list[str], clashes: list[tuple[str, str]]
) -> None:
    """The exact check, and its vectorized pre-check, find every clash in these tables."""
    from vlanalyze.materialize._names import find_collisions

    assert sorted(find_collisions(paths)) == sorted(clashes)


def test_collision_precheck_stays_fast() -> None:
    """The plan checks every destination: 20,000 ASCII paths in folders take a few
    milliseconds (a loose bound: it catches a fall back to the per-path check)."""
    import time

    from vlanalyze.materialize._names import find_collisions

    paths = [f"{('train', 'val')[i % 2]}/label{i % 20}/f_{i:06d}.jpg" for i in range(20_000)]
    times = []
    for _ in range(5):
        start = time.perf_counter()
        assert find_collisions(paths) == []
        times.append(time.perf_counter() - start)
    assert min(times) < 0.025


def test_default_names_take_the_full_id_when_short_ids_meet(tmp_path: Path) -> None:
    a, b = "abcdefgh-0000-4000-8000-000000000001", "ABCDEFGH-0000-4000-8000-000000000002"
    export = write_export(tmp_path / "e", [item(a, "x/f.jpg"), item(b, "y/F.jpg")])
    _run(_open(export), _sel(a, b), tmp_path / "o")
    assert set(_images(tmp_path / "o")) == {f"f__{a}.jpg", f"F__{b}.jpg"}


@pytest.mark.parametrize(
    ("file_name", "expected"),
    [
        ("12:00:01.jpg", "12_00_01__10000000.jpg"),
        ("back\\slash.jpg", "back_slash__10000000.jpg"),
        ('a<b>c"d|e?f*g.png', "a_b_c_d_e_f_g__10000000.png"),
        ("tab\tand\x01bell.jpg", "tab_and_bell__10000000.jpg"),
        ("trailing dot.", "trailing dot__10000000"),
        ("trailing space.jpg ", "trailing space__10000000.jpg"),
        ("at 12:00.jpg. .", "at 12_00__10000000.jpg"),  # the extension before the dots
        ("a.jpg.", "a__10000000.jpg"),
        ("ab\n.jpg", "ab___10000000.jpg"),  # a newline in the stem keeps the extension
        ("con.tar.gz", "con_.tar__10000000.gz"),
        ("LPT1.backup.jpg", "LPT1_.backup__10000000.jpg"),
        ("a:b.j:pg", "a_b__10000000.j_pg"),
        # 228 bytes, no more: the temporary name of a write is 27 bytes longer
        ("x" * 250 + ".jpg", "x" * 214 + "__10000000.jpg"),
        ("\u00e9" * 125 + ".jpg", "\u00e9" * 107 + "__10000000.jpg"),  # cut between chars
        # room for a YOLO label file <stem>.txt where the extension is shorter than .txt
        ("z" * 250, "z" * 214 + "__10000000"),
        ("w" * 250 + ".ab", "w" * 214 + "__10000000.ab"),
    ],
)
def test_default_name_is_safe_for_any_file_name(
    tmp_path: Path, file_name: str, expected: str
) -> None:
    """Ordinary Linux file names (a time with colons, a backslash, a newline, a name
    near 255 bytes) materialize under the default name: it replaces what Windows
    forbids, drops a trailing dot or space and keeps within MAX_NAME_BYTES (228), its
    YOLO label file name too."""
    export = write_export(tmp_path / "e", [item(A, f"d/{file_name}")])
    out = tmp_path / "o"
    assert _run(_open(export), _sel(A), out).written == 1
    assert _images(out) == {expected: jpeg(f"d/{file_name}")}
    assert len(expected.encode()) <= MAX_NAME_BYTES
    assert len(expected.rsplit(".", 1)[0].encode()) + len(".txt") <= MAX_NAME_BYTES


@pytest.mark.parametrize(
    "file_name",
    ["a.webp.jpg", ".hidden", "a.jpg.", "a.jpg. .", "ab\n.jpg", "a.\n", "...", "x", " .jpg",
     "a..jpg", ".a.b", "\u00e9t\u00e9.\u00e9"],
)  # fmt: skip
def test_split_name_and_its_column_form_agree(file_name: str) -> None:
    """The file names' {stem} and {ext} (a column) and the YOLO label files' stems (one
    by one) are one rule."""
    from vlanalyze.materialize._names import split_name, split_names

    stem, ext = split_names(pl.col("f"))
    got = pl.DataFrame({"f": [file_name]}).select(stem, ext.alias("ext")).row(0)
    assert got == split_name(file_name)
    assert "".join(got) == file_name.rstrip(". ")  # Windows drops trailing dots and spaces


def test_template_fields_stem_and_ext_skip_trailing_dots(tmp_path: Path) -> None:
    """{stem}{ext} of ``a.jpg.`` is ``a.jpg``; {file_name} stays as the export has it."""
    export = write_export(tmp_path / "e", [item(A, "d/a.jpg.")])
    _run(_open(export), _sel(A), tmp_path / "o", name="{stem}{ext}")
    assert set(_images(tmp_path / "o")) == {"a.jpg"}
    _run(_open(export), _sel(A), tmp_path / "o2", name="{file_name}{ext}")
    assert set(_images(tmp_path / "o2")) == {"a.jpg..jpg"}


@pytest.mark.parametrize(
    ("file_name", "layout", "name", "what"),
    [
        ("q" * 229 + ".jpg", "flat", "{stem}", "destination"),
        ("\u00e9" * 115 + ".jpg", "flat", "{stem}", "destination"),  # 230 bytes, 115 chars
        ("q" * 229 + ".jpg", "by-label", "{stem}", "destination"),
        # the image name fits, its label file q...q.txt does not
        ("q" * 226 + ".jpg", "yolo", "{stem}", "layout file"),
    ],
)
def test_a_template_name_too_long_for_the_temporary_name_is_rejected(
    tmp_path: Path, file_name: str, layout: str, name: str, what: str
) -> None:
    """A name over MAX_NAME_BYTES is refused before anything is written, saying why:
    its temporary name would be over 255 bytes ("File name too long" mid-run)."""
    items = [item(A, f"d/{file_name}", boxes=[("cat", (1, 2, 3, 4))])]
    export = write_export(tmp_path / "e", items)
    out = tmp_path / "o"
    with pytest.raises(MaterializeError) as caught:
        _run(_open(export), _sel(A), out, layout=layout, name=name)
    text = str(caught.value)
    assert f"the {what} " in text and f"longer than {MAX_NAME_BYTES} bytes" in text
    assert f"temporary name {TEMP_NAME_OVERHEAD} bytes longer" in text
    assert "--name" in str(caught.value.hint)
    assert not out.exists()
    fits = "q" * 224 + ".jpg" if layout == "yolo" else "q" * MAX_NAME_BYTES
    ok = write_export(tmp_path / "e2", [item(A, f"d/{fits}", boxes=[("cat", (1, 2, 3, 4))])])
    assert _run(_open(ok), _sel(A), tmp_path / "o2", layout=layout, name=name).written == 1


def test_a_too_long_label_is_rejected_as_a_folder_name(boxed: Path, tmp_path: Path) -> None:
    with pytest.raises(MaterializeError, match=f"longer than {MAX_NAME_BYTES} bytes"):
        _run(_open(boxed), _sel(A, label=["L" * 229]), tmp_path / "o", layout="by-label")
    assert _run(_open(boxed), _sel(A, label=["L" * 228]), tmp_path / "o", layout="by-label")


def test_default_names_meet_after_they_are_made_safe(tmp_path: Path) -> None:
    """Names that become one once made safe (or cut to 255 bytes, or normalized) take
    the full media id, as any two short names that meet."""
    ids = [f"abcdefgh-0000-4000-8000-00000000000{n}" for n in range(1, 9)]
    names = ["a:b.jpg", "a_b.jpg", "x" * 248 + "1.jpg", "x" * 248 + "2.jpg",
             "caf\u00e9.jpg", "CAFE\u0301.jpg", "q?.jpg", "other.jpg"]  # fmt: skip
    export = write_export(tmp_path / "e", [item(m, f"d{i}/{n}") for i, (m, n) in
                                           enumerate(zip(ids, names, strict=True))])  # fmt: skip
    _run(_open(export), _sel(*ids), tmp_path / "o")
    got = sorted(_images(tmp_path / "o"))
    long = MAX_NAME_BYTES - len(f"__{ids[0]}.jpg")
    assert got == sorted(
        [f"a_b__{ids[0]}.jpg", f"a_b__{ids[1]}.jpg",
         "x" * long + f"__{ids[2]}.jpg", "x" * long + f"__{ids[3]}.jpg",
         f"caf\u00e9__{ids[4]}.jpg", f"CAFE\u0301__{ids[5]}.jpg",
         "q___abcdefgh.jpg", "other__abcdefgh.jpg"]
    )  # fmt: skip


def test_a_name_template_is_checked_strictly_and_hinted_at(tmp_path: Path) -> None:
    """A --name template is used as given: the error names the value, and the hint the
    template (and the label or split only where the template uses them)."""
    export = write_export(tmp_path / "e", [item(A, "d/12:00:01.jpg")])
    with pytest.raises(MaterializeError, match=r"'12:00:01\.jpg'.*Windows forbids") as caught:
        vla.plan_materialize(_open(export), _sel(A), tmp_path / "o", name="{file_name}")
    assert "--name" in str(caught.value.hint) and "label" not in str(caught.value.hint)
    with pytest.raises(MaterializeError, match=r"'a:b/12_00_01\.jpg'") as caught:
        vla.plan_materialize(_open(export), _sel(A, label=["a:b"]), tmp_path / "o",
                             name="{label}/12_00_01{ext}")  # fmt: skip
    assert "--name" in str(caught.value.hint) and "label" in str(caught.value.hint)
    assert not (tmp_path / "o").exists()


def test_name_template_fields(boxed: Path, tmp_path: Path) -> None:
    _run(
        _open(boxed), _sel(C, split=["val"]), tmp_path / "o", name="{split}-{label}-{media_id}{ext}"
    )
    assert set(_images(tmp_path / "o")) == {f"val-cat-{C}.png"}
    with pytest.raises(MaterializeError, match="unknown field"):
        vla.plan_materialize(_open(boxed), _sel(C), tmp_path / "o2", name="{nope}")


# --- labels ------------------------------------------------------------------------------


def test_label_policy_user_first_then_model_then_name(boxed: Path, tmp_path: Path) -> None:
    _run(_open(boxed), _sel(A, B, C, D), tmp_path / "o", layout="by-label")
    folders = {p.split("/")[0] for p in _images(tmp_path / "o")}
    # A: User "cat" beats "dog"; B: Model "zebra" beats "ant"; D: none
    assert folders == {"cat", "zebra", "unlabeled"}
    manifest = pl.read_csv(tmp_path / "o" / "manifest.csv")
    assert dict(zip(manifest["media_id"], manifest["label"], strict=True)) == {
        A: "cat",
        B: "zebra",
        C: "cat",
        D: "unlabeled",
    }


def test_selection_label_and_split_win(boxed: Path, tmp_path: Path) -> None:
    sel = _sel(A, B, label=["one", "two"], split=["train", "test"])
    _run(_open(boxed), sel, tmp_path / "o", layout="imagefolder")
    assert {p.rsplit("/", 1)[0] for p in _images(tmp_path / "o")} == {"train/one", "test/two"}


# --- YOLO and COCO, checked against boxes computed here ----------------------------------


def test_yolo_layout(boxed: Path, tmp_path: Path) -> None:
    sel = _sel(A, B, C, split=["train", "val", "val"])
    out = tmp_path / "yolo"
    _run(_open(boxed), sel, out, layout="yolo")
    classes = ["bird", "cat", "dog"]  # one list for every split, sorted
    yaml = (out / "data.yaml").read_text()
    assert f'path: "{out}"' in yaml and "train: images/train\nval: images/val\n" in yaml
    assert 'names:\n  0: "bird"\n  1: "cat"\n  2: "dog"\n' in yaml
    manifest = pl.read_csv(out / "manifest.csv")
    dests = dict(zip(manifest["media_id"], manifest["dest"], strict=True))

    def rows(media_id: str) -> list[float]:
        dest = dests[media_id]
        label = out / dest.replace("images/", "labels/", 1).rsplit(".", 1)[0]
        text = label.with_suffix(".txt").read_text() if media_id != C else ""
        return [float(v) for line in text.splitlines() for v in line.split()]

    def expect(cls: str, x: float, y: float, w: float, h: float, W: float, H: float) -> list[float]:
        return [classes.index(cls), (x + w / 2) / W, (y + h / 2) / H, w / W, h / H]

    assert rows(A) == pytest.approx(
        expect("cat", 10, 20, 30, 40, 200, 100) + expect("dog", 0, 0, 200, 100, 200, 100),
        abs=1e-6,
    )
    assert rows(B) == pytest.approx(expect("bird", 150, 50, 50, 50, 300, 150), abs=1e-6)
    assert (out / dests[B]).is_file() and dests[B].startswith("images/val/")
    assert not list((out / "labels" / "val").glob(Path(dests[C]).stem + ".txt"))


def test_temporary_files_a_killed_run_left_are_removed(boxed: Path, tmp_path: Path) -> None:
    """Beside layout files and the record too, not only beside images; a user's
    hidden file that merely looks alike stays."""
    out = tmp_path / "y"
    sel = _sel(A, B, split=["train", "val"])
    _run(_open(boxed), sel, out, layout="yolo")
    (label,) = (out / "labels" / "train").iterdir()
    left = [
        label.parent / f".{label.name}.vla-tmp-part-0123456789ab",
        out / ".vlanalyze-materialize.json.vla-tmp-part-0123456789ab",
        out / f".{FILES}.vla-tmp-part-0123456789ab",
    ]
    for path in left:
        path.write_bytes(b"partial")
    # out of date at the size and mtime the record holds (not someone's edit): rewritten
    before = label.stat()
    label.write_bytes(label.read_bytes().replace(b"0.", b"9.", 1))
    os.utime(label, ns=(before.st_atime_ns, before.st_mtime_ns))
    mine = out / "labels" / "train" / ".notes.txt.vla-tmp-part-0123456789ab"
    mine.write_text("mine")
    _run(_open(boxed), sel, out, layout="yolo")
    assert [p for p in left if p.exists()] == [] and mine.read_text() == "mine"


def test_yolo_rejects_unknown_split_names(boxed: Path, tmp_path: Path) -> None:
    with pytest.raises(MaterializeError, match="train, val or test"):
        vla.plan_materialize(_open(boxed), _sel(A, split=["dev"]), tmp_path / "o", layout="yolo")


def _data_yaml(out: Path) -> dict[str, Any]:
    """OUT/data.yaml as YAML reads it, checked as Ultralytics' ``check_det_dataset`` checks
    it: ``train`` and ``val`` keys, each a folder or a list of folders under ``path``
    (which exist), and ``names`` a dict whose keys are 0..n-1."""
    data = yaml.safe_load((out / "data.yaml").read_text(encoding="utf-8"))
    assert isinstance(data, dict) and data["path"] == str(out)
    for key in ("train", "val"):
        assert key in data, f"'{key}:' key missing"
    for key in ("train", "val", "test"):
        value = data.get(key) or []
        for folder in [value] if isinstance(value, str) else value:
            assert (out / folder).is_dir(), folder
    assert isinstance(data["names"], dict)
    assert sorted(data["names"]) == list(range(len(data["names"])))
    return data


def _stem(name: str) -> str:
    return name.rsplit(".", 1)[0]  # as Ultralytics' img2label_paths


@pytest.mark.parametrize(
    ("labels", "boxes_of_b", "case"),
    [
        (["A", "A"], True, False),
        (["A", "A"], False, False),  # B has no label file, yet Ultralytics would read A's
        (["A", "a"], True, True),  # one file on macOS and Windows
        (["A", "a"], False, True),
    ],
)
def test_yolo_label_files_two_images_would_share_are_rejected(
    tmp_path: Path, labels: list[str], boxes_of_b: bool, case: bool
) -> None:
    """``--name "{label}{ext}"`` gives A.jpg and A.png (or a.png) in one split: Ultralytics
    reads both images' boxes from labels/train/A.txt. The plan refuses, naming both."""
    b_boxes = [("dog", (5, 5, 10, 10))] if boxes_of_b else []
    items = [
        item(A, "p/one.jpg", boxes=[("cat", (1, 2, 3, 4))]),
        item(B, "p/two.png", boxes=b_boxes),
    ]
    export = write_export(tmp_path / "e", items)
    out = tmp_path / "o"
    with pytest.raises(MaterializeError) as caught:
        _run(_open(export), _sel(A, B, label=labels), out, layout="yolo", name="{label}{ext}")
    text = str(caught.value)
    first, second = f"images/train/{labels[0]}.jpg", f"images/train/{labels[1]}.png"
    assert first in text and second in text and "labels/train/A.txt" in text
    assert ("case" in text) == case and "{media_id}" in text  # the hint
    assert not out.exists()


def test_yolo_same_stem_in_two_splits_is_fine(tmp_path: Path) -> None:
    items = [item(A, "p/one.jpg", boxes=[("cat", (1, 2, 3, 4))]), item(B, "p/two.png")]
    export = write_export(tmp_path / "e", items)
    out = tmp_path / "o"
    sel = _sel(A, B, label=["A", "A"], split=["train", "val"])
    _run(_open(export), sel, out, layout="yolo", name="{label}{ext}")
    assert (out / "images/train/A.jpg").is_file() and (out / "images/val/A.png").is_file()
    assert (out / "labels/train/A.txt").read_text() == "0 0.012500 0.040000 0.015000 0.040000\n"
    assert not (out / "labels" / "val").exists()


@pytest.mark.parametrize(
    ("splits", "train", "val", "test"),
    [
        (None, "images/train", "images/train", None),  # no split column: all in train
        (["train", "test"], "images/train", "images/train", "images/test"),
        (["val", "val"], "images/val", "images/val", None),
        (["test", "test"], "images/test", "images/test", "images/test"),
    ],
)
def test_yolo_data_yaml_has_train_and_val_and_says_what_stands_in(
    boxed: Path, tmp_path: Path, splits: list[str] | None, train: str, val: str, test: str | None
) -> None:
    """Ultralytics refuses a data.yaml without ``train:`` or ``val:`` ("'val:' key
    missing"): a split the selection lacks points at the images it has, with a note."""
    out = tmp_path / "y"
    sel = _sel(A, B) if splits is None else _sel(A, B, split=splits)
    plan = vla.plan_materialize(_open(boxed), sel, out, layout="yolo")
    present = set(splits or ["train"])
    missing = [k for k in ("train", "val") if k not in present]
    assert len(plan.notes) == len(missing)
    for key, note in zip(missing, plan.notes, strict=True):
        assert f"no {key} split" in note and "split column" in note
    result = vla.materialize(plan)
    assert result.notes == plan.notes
    data = _data_yaml(out)
    assert (data["train"], data["val"], data.get("test")) == (train, val, test)
    assert data["names"] == {0: "bird", 1: "cat", 2: "dog"}


def test_yolo_val_splits_under_other_names_are_merged(boxed: Path, tmp_path: Path) -> None:
    """val, valid and validation are all Ultralytics' ``val:``: one key listing the three
    folders (two ``val:`` keys would keep only the last: the others' images vanish)."""
    out = tmp_path / "y"
    sel = _sel(A, B, C, D, split=["train", "val", "validation", "valid"])
    result = _run(_open(boxed), sel, out, layout="yolo")
    assert (out / "data.yaml").read_text().count("\nval:") == 1
    data = _data_yaml(out)
    assert data["train"] == "images/train"
    assert data["val"] == ["images/val", "images/valid", "images/validation"]
    listed = {data["train"], *data["val"]}
    manifest = pl.read_csv(out / "manifest.csv")
    assert {dest.rsplit("/", 1)[0] for dest in manifest["dest"]} == listed  # none vanish
    (note,) = result.notes
    assert "val, valid, validation" in note


def test_yolo_without_boxes_writes_names_as_an_empty_dict(boxed: Path, tmp_path: Path) -> None:
    out = tmp_path / "y"
    result = _run(_open(boxed), _sel(C, D, split=["train", "val"]), out, layout="yolo")
    assert _data_yaml(out)["names"] == {}
    assert not (out / "labels").exists()
    (note,) = result.notes
    assert "no boxes" in note and "names: {}" in note


def test_yolo_data_yaml_keeps_any_class_name_and_path(tmp_path: Path) -> None:
    """Names YAML would misread unquoted (a colon, a hash, quotes) and characters outside
    the BMP (an emoji, which JSON's ASCII escapes split into surrogates) load as given."""
    names = ["😀 smile", "a: b", "# hash", 'say "hi"', "back\\slash", "猫", "𠀋"]
    boxes = [(n, (1, 2, 3, 4)) for n in names]
    export = write_export(tmp_path / "e", [item(A, "p/a.jpg", boxes=boxes)])
    out = tmp_path / "out 😀: #x"
    _run(_open(export), _sel(A, split=["train"]), out, layout="yolo")
    data = _data_yaml(out)
    assert data["names"] == dict(enumerate(sorted(names)))


def test_coco_layout(boxed: Path, tmp_path: Path) -> None:
    sel = _sel(A, B, C, split=["train", "val", "train"])
    out = tmp_path / "coco"
    _run(_open(boxed), sel, out, layout="coco")
    train = json.loads((out / "annotations" / "instances_train.json").read_text())
    val = json.loads((out / "annotations" / "instances_val.json").read_text())
    expected_cats = [{"id": 1, "name": "bird"}, {"id": 2, "name": "cat"}, {"id": 3, "name": "dog"}]
    for doc in (train, val):
        assert [{"id": c["id"], "name": c["name"]} for c in doc["categories"]] == expected_cats
    cat_id = {c["name"]: c["id"] for c in expected_cats}
    # Each split's file stands alone: its image ids and annotation ids start at 1.
    assert [(i["id"], i["media_id"]) for i in train["images"]] == [(1, A), (2, C)]
    assert [(i["id"], i["media_id"]) for i in val["images"]] == [(1, B)]
    for split, doc in (("train", train), ("val", val)):
        assert [a["id"] for a in doc["annotations"]] == list(range(1, len(doc["annotations"]) + 1))
        for image in doc["images"]:
            assert (out / "images" / split / image["file_name"]).is_file()

    def anns(doc: dict[str, Any]) -> list[tuple[object, ...]]:
        media = {i["id"]: i["media_id"] for i in doc["images"]}
        return sorted((media[a["image_id"]], a["category_id"], a["bbox"], a["area"], a["iscrowd"])
                      for a in doc["annotations"])  # fmt: skip

    assert anns(train) == sorted(
        [
            (A, cat_id["cat"], [10, 20, 30, 40], 1200, 0),
            (A, cat_id["dog"], [0, 0, 200, 100], 20000, 0),
        ]
    )
    assert anns(val) == [(B, cat_id["bird"], [150, 50, 50, 50], 2500, 0)]
    assert val["images"][0]["width"] == 300 and val["images"][0]["height"] == 150


def test_hf_layout_writes_metadata_jsonl(boxed: Path, tmp_path: Path) -> None:
    """Every split has boxes and labels: one metadata.jsonl per split, as the guides show."""
    out = tmp_path / "hf"
    result = _run(_open(boxed), _sel(A, B, split=["train", "test"]), out, layout="hf")
    assert result.notes == []
    assert sorted(p.name for p in (out / "train").glob("metadata.*")) == ["metadata.jsonl"]
    (train,) = _jsonl(out / "train" / "metadata.jsonl")
    assert (out / "train" / train["file_name"]).is_file()
    assert train["media_id"] == A and train["label"] == "cat"
    assert train["labels"] == ["cat", "dog"]
    bbox = [[10.0, 20.0, 30.0, 40.0], [0.0, 0.0, 200.0, 100.0]]
    assert train["objects"] == {"bbox": bbox, "categories": ["cat", "dog"]}
    (test,) = _jsonl(out / "test" / "metadata.jsonl")
    assert test["label"] == "zebra" and test["objects"]["categories"] == ["bird"]
    again = _run(_open(boxed), _sel(A, B, split=["train", "test"]), out, layout="hf")
    assert again.nothing_to_do


def test_hf_layout_falls_back_to_typed_parquet(boxed: Path, tmp_path: Path) -> None:
    """A split without a single box would infer null-typed lists from JSONL, unlike the
    split with boxes, and datasets would refuse both: typed Parquet instead, same columns."""
    out = tmp_path / "hf"
    result = _run(_open(boxed), _sel(A, D, split=["train", "test"]), out, layout="hf")
    assert not list(out.rglob("metadata.jsonl"))
    (note,) = result.notes  # said to the user, not a silent change of format
    assert "metadata.parquet, not metadata.jsonl" in note
    rows = pl.read_parquet(out / "train" / "metadata.parquet").to_dicts()
    assert len(rows) == 1 and (out / "train" / rows[0]["file_name"]).is_file()
    assert rows[0]["label"] == "cat" and rows[0]["labels"] == ["cat", "dog"]
    boxes = {"bbox": [[10, 20, 30, 40], [0, 0, 200, 100]], "categories": ["cat", "dog"]}
    assert rows[0]["objects"] == boxes
    features = json.loads(pq_metadata(out / "train" / "metadata.parquet")[b"huggingface"])
    features = features["info"]["features"]
    assert features["label"] == {"dtype": "string", "_type": "Value"}
    assert features["objects"]["bbox"]["_type"] == "Sequence"  # known before datasets 4.0 too
    test_rows = pl.read_parquet(out / "test" / "metadata.parquet").to_dicts()
    assert test_rows[0]["objects"] == {"bbox": [], "categories": []}
    assert test_rows[0]["label"] == "unlabeled" and test_rows[0]["labels"] == []


def _jsonl(path: Path) -> list[dict[str, object]]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def pq_metadata(path: Path) -> dict[bytes, bytes]:
    import pyarrow.parquet as pq

    return dict(pq.read_schema(path).metadata or {})


# Expected, from the fixture: A's label is its User label, B's its Model label, C's its
# only one, D has none; boxes as given, in pixels.
_LABEL_OF = {A: "cat", B: "zebra", C: "cat", D: "unlabeled"}
_BOXES_OF = {
    A: [("cat", [10, 20, 30, 40]), ("dog", [0, 0, 200, 100])],
    B: [("bird", [150, 50, 50, 50])],
    C: [],
    D: [],
}


@pytest.mark.slow
@pytest.mark.parametrize(
    ("splits", "form"),
    [
        ({A: "train", C: "train", B: "test", D: "test"}, "metadata.jsonl"),
        ({A: "train", B: "train", C: "test", D: "test"}, "metadata.parquet"),
    ],
    ids=["jsonl", "parquet-fallback"],
)
def test_hf_layout_loads_with_datasets(
    boxed: Path, tmp_path: Path, splits: dict[str, str], form: str
) -> None:
    """Both forms load with datasets, as the same columns and types."""
    datasets = pytest.importorskip("datasets", reason="datasets is not installed")
    pytest.importorskip("PIL", reason="Pillow is not installed (datasets decodes images with it)")
    out = tmp_path / "hf"
    sel = _sel(*splits, split=list(splits.values()))
    assert _run(_open(boxed), sel, out, layout="hf").written == 4
    assert (out / "train" / form).is_file() and (out / "test" / form).is_file()
    ds = datasets.load_dataset("imagefolder", data_dir=str(out), cache_dir=str(tmp_path / "c"))
    assert ds["train"].num_rows == 2 and ds["test"].num_rows == 2
    for split in ("train", "test"):
        assert ds[split].features["label"].dtype == "string"
        for row in ds[split]:
            media_id = row["media_id"]
            assert splits[media_id] == split
            assert row["label"] == _LABEL_OF[media_id]
            objects = row["objects"]
            got = list(zip(objects["categories"], objects["bbox"], strict=True))
            assert got == [(c, [float(v) for v in b]) for c, b in _BOXES_OF[media_id]]
            assert row["image"].size == (2, 2)


# --- modes -------------------------------------------------------------------------------


def test_copy_keeps_mtime_and_bytes(boxed: Path, tmp_path: Path) -> None:
    src = boxed / "images" / "photos" / "c.png"
    os.utime(src, ns=(1_600_000_000_123_456_789, 1_600_000_000_123_456_789))
    _run(_open(boxed), _sel(C), tmp_path / "o")
    (dest,) = (tmp_path / "o").glob("c__*.png")
    assert dest.read_bytes() == src.read_bytes()
    assert dest.stat().st_mtime_ns == src.stat().st_mtime_ns
    assert dest.stat().st_ino != src.stat().st_ino


def test_hardlink_shares_the_inode(boxed: Path, tmp_path: Path) -> None:
    _run(_open(boxed), _sel(C), tmp_path / "o", mode="hardlink")
    (dest,) = (tmp_path / "o").glob("c__*.png")
    assert os.path.samefile(dest, boxed / "images" / "photos" / "c.png")
    again = vla.plan_materialize(_open(boxed), _sel(C), tmp_path / "o", mode="hardlink")
    assert again.summary()["skip"] == 1


def test_hardlink_across_filesystems_names_copy(boxed: Path) -> None:
    other = Path("/dev/shm")
    if not os.access(other, os.W_OK) or other.stat().st_dev == boxed.stat().st_dev:
        pytest.skip("no second writable filesystem (/dev/shm) here")
    out = other / f"vla-test-{os.getpid()}"
    try:
        with pytest.raises(MaterializeError, match=r"another filesystem.*pass mode='copy'"):
            vla.plan_materialize(_open(boxed), _sel(C), out, mode="hardlink")
        assert not out.exists()
    finally:
        shutil.rmtree(out, ignore_errors=True)


@pytest.mark.parametrize("absolute", [False, True])
def test_symlinks_relative_by_default(boxed: Path, tmp_path: Path, absolute: bool) -> None:
    out = tmp_path / "o"
    _run(_open(boxed), _sel(C, D), out, mode="symlink", layout="by-label", absolute_links=absolute)
    links = [p for p in out.rglob("*") if p.is_symlink()]
    assert len(links) == 2
    for link in links:
        assert os.path.isabs(os.readlink(link)) == absolute
        assert link.read_bytes() == jpeg(link.resolve().relative_to(boxed / "images").as_posix())
    if not absolute:  # both trees moved together: relative links still work
        shutil.move(tmp_path, tmp_path.parent / (tmp_path.name + "-moved"))
        moved = tmp_path.parent / (tmp_path.name + "-moved") / "o"
        assert all(p.read_bytes() for p in moved.rglob("*.jpg"))
        shutil.move(tmp_path.parent / (tmp_path.name + "-moved"), tmp_path)
    again = vla.plan_materialize(_open(boxed), _sel(C, D), out, mode="symlink", layout="by-label",
                                 absolute_links=absolute)  # fmt: skip
    assert again.summary()["skip"] == 2


def test_reflink_or_copy_with_a_note(boxed: Path, tmp_path: Path) -> None:
    result = _run(_open(boxed), _sel(C, D), tmp_path / "o", mode="reflink")
    assert result.written == 2
    for note in result.notes:
        assert "copied instead" in note
    got = sorted(_images(tmp_path / "o").values())
    assert got == sorted([jpeg("photos/c.png"), jpeg("photos/d.jpg")])


def test_from_a_zip_in_place_and_links_refused(boxed: Path, tmp_path: Path) -> None:
    archive = tmp_path / "export.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        zf.write(boxed / "metadata.json", "metadata.json")
        for p in (boxed / "images").rglob("*"):
            if p.is_file():
                zf.write(p, "images/" + p.relative_to(boxed / "images").as_posix())
    ex = _open(archive)
    _run(ex, _sel(A, B, C, D), tmp_path / "o")
    assert sorted(_images(tmp_path / "o").values()) == sorted(
        jpeg(p) for p in ("v1.mp4/frame.jpg", "v2.mp4/frame.jpg", "photos/c.png", "photos/d.jpg")
    )
    assert not (tmp_path / "images").exists()  # nothing extracted beside the ZIP
    assert vla.plan_materialize(ex, _sel(A, B, C, D), tmp_path / "o").summary()["skip"] == 4
    for mode in ("hardlink", "symlink"):
        with pytest.raises(MaterializeError, match=f"cannot {mode} images that are inside a ZIP"):
            vla.plan_materialize(ex, _sel(A), tmp_path / "o2", mode=mode)


# --- nothing lost: conflicts, prune ------------------------------------------------------


def test_foreign_file_is_a_conflict_and_nothing_is_written(boxed: Path, tmp_path: Path) -> None:
    ex = _open(boxed)
    out = tmp_path / "o"
    plan = vla.plan_materialize(ex, _sel(A, B, C), out)
    victim = out / plan.table.filter(pl.col("media_id") == B)["dest"][0]
    victim.parent.mkdir(parents=True)
    victim.write_bytes(b"mine")
    plan = vla.plan_materialize(ex, _sel(A, B, C), out)
    assert plan.conflicts == [victim.name]
    with pytest.raises(
        MaterializeError, match=f"1 file.*in the way: {victim.name}; nothing was written"
    ):
        vla.materialize(plan)
    assert tree(out) == {victim.name: b"mine"}


def test_foreign_manifest_and_layout_files_are_conflicts(boxed: Path, tmp_path: Path) -> None:
    out = tmp_path / "o"
    out.mkdir()
    (out / "data.yaml").write_text("mine")
    with pytest.raises(MaterializeError, match=r"data\.yaml"):
        _run(_open(boxed), _sel(A), out, layout="yolo")
    assert tree(out) == {"data.yaml": b"mine"}
    (out / "data.yaml").unlink()
    (out / "manifest.csv").write_text("mine")
    with pytest.raises(MaterializeError, match=r"manifest\.csv"):
        _run(_open(boxed), _sel(A), out, layout="csv")
    assert tree(out) == {"manifest.csv": b"mine"}


def test_an_edited_image_is_a_conflict_not_overwritten(boxed: Path, tmp_path: Path) -> None:
    """A file an earlier run wrote, changed since (its size is not the recorded one), is
    someone's work: the rerun lists it and writes nothing, as prune spares it."""
    ex, out = _open(boxed), tmp_path / "o"
    _run(ex, _sel(A, C), out)
    dests = dict(pl.read_csv(out / "manifest.csv").select("media_id", "dest").iter_rows())
    edited = out / dests[C]
    edited.write_text("my edit\n")
    before = tree(out)
    plan = vla.plan_materialize(ex, _sel(A, B, C), out)
    assert plan.conflicts == [dests[C]]
    with pytest.raises(MaterializeError, match=rf"changed since.*{dests[C]}.*nothing was written"):
        vla.materialize(plan)
    assert tree(out) == before
    edited.unlink()  # moved away: the next run writes it again
    assert _run(ex, _sel(A, B, C), out).written == 2
    assert edited.read_bytes() == jpeg("photos/c.png")


@pytest.mark.parametrize(
    ("layout", "split", "edited"),
    [
        ("yolo", ["train", "val"], "data.yaml"),
        ("yolo", ["train", "val"], "labels/val/*.txt"),
        ("coco", ["train", "val"], "annotations/instances_val.json"),
        ("hf", ["train", "val"], "val/metadata.jsonl"),
        ("flat", ["train", "val"], "manifest.csv"),
    ],
)
def test_an_edited_layout_file_or_manifest_is_a_conflict(
    boxed: Path, tmp_path: Path, layout: str, split: list[str], edited: str
) -> None:
    """The layout's own files and the manifest, changed by someone since the run that
    wrote them, are kept and listed, even when this run would rewrite them."""
    ex, out = _open(boxed), tmp_path / "o"
    _run(ex, _sel(A, B, split=split), out, layout=layout)
    (target,) = out.glob(edited)
    target.write_bytes(target.read_bytes() + b"# my note\n")
    before = tree(out)
    plan = vla.plan_materialize(ex, _sel(A, B, C, split=[*split, "val"]), out, layout=layout)
    assert plan.conflicts == [target.relative_to(out).as_posix()]
    with pytest.raises(MaterializeError, match=r"changed since.*nothing was written"):
        vla.materialize(plan)
    assert tree(out) == before


def test_changed_selection_rewrites_layout_files_and_manifest(boxed: Path, tmp_path: Path) -> None:
    """Files at the size the record holds are ours, as written: a new selection
    rewrites them (sizes recorded for the manifest too)."""
    ex, out = _open(boxed), tmp_path / "o"
    _run(ex, _sel(A, B, split=["train", "val"]), out, layout="coco")
    files = dict(pl.read_parquet(out / FILES, columns=["path", "bytes"]).iter_rows())
    assert files["manifest.csv"] == len((out / "manifest.csv").read_bytes())
    result = _run(ex, _sel(A, B, C, split=["train", "val", "val"]), out, layout="coco")
    assert result.written == 1 and result.side_files_written == 1  # instances_val.json
    assert pl.read_csv(out / "manifest.csv").height == 3
    files = dict(pl.read_parquet(out / FILES, columns=["path", "bytes"]).iter_rows())
    assert files["manifest.csv"] == len((out / "manifest.csv").read_bytes())


def test_a_killed_rewrite_leaves_no_false_conflict(boxed: Path, tmp_path: Path) -> None:
    """A run records what it will write before writing it; killed before it rewrote a
    file at a new size, the old file (ours) must not look like someone's edit."""
    ex, out = _open(boxed), tmp_path / "o"
    _run(ex, _sel(A, B, C, split=["train", "val", "val"]), out, layout="coco")
    source = boxed / "images" / "photos" / "c.png"
    source.write_bytes(jpeg("photos/c.png", pad=100))  # the export's image grew
    moved = _sel(A, B, C, split=["train", "train", "val"])  # both COCO files change size
    vla.plan_materialize(ex, moved, out, layout="coco").begin()  # ... killed right here
    again = vla.plan_materialize(ex, moved, out, layout="coco")
    assert again.conflicts == []
    result = vla.materialize(again)
    assert result.written == 2 and result.side_files_written == 2
    dests = dict(pl.read_csv(out / "manifest.csv").select("media_id", "dest").iter_rows())
    assert (out / dests[C]).read_bytes() == source.read_bytes()


@pytest.mark.parametrize("mode", ["hardlink", "symlink"])
def test_a_link_saved_over_by_an_editor_is_someones(boxed: Path, tmp_path: Path, mode: str) -> None:
    """Links are recorded as links (no size): one replaced by a file of its own (an
    editor saving a linked image writes a new file) is someone's work, a conflict, and
    prune spares it; a link someone removed is made again."""
    ex, out = _open(boxed), tmp_path / "o"
    _run(ex, _sel(C, D), out, mode=mode)
    (dest,) = out.glob("c__*.png")
    assert (
        dict(pl.read_parquet(out / FILES, columns=["path", "bytes"]).iter_rows())[dest.name] == -2
    )
    saved = dest.read_bytes() + b"edited"
    dest.unlink()
    dest.write_bytes(saved)
    with pytest.raises(MaterializeError, match=f"changed since it wrote them.*{dest.name}"):
        _run(ex, _sel(C, D), out, mode=mode)
    assert dest.read_bytes() == saved
    _run(ex, _sel(D), out, mode=mode, prune=True)
    assert dest.read_bytes() == saved  # spared
    (other,) = out.glob("d__*.jpg")
    other.unlink()
    assert _run(ex, _sel(D), out, mode=mode).written == 1


def test_a_touched_file_or_a_copy_of_the_folder_is_not_an_edit(boxed: Path, tmp_path: Path) -> None:
    """Only the mtime changed (``touch``, ``cp -r`` without ``-p``), the bytes are the
    source's: not someone's work. The image is written again (its mtime restored); a
    touched manifest.csv or layout file does not stop the run either. (A YOLO
    data.yaml names its folder: in a copy it differs, and stops the run.)"""
    ex, out = _open(boxed), tmp_path / "o"
    _run(ex, _sel(A, B), out, layout="coco")
    copy = tmp_path / "copy"
    shutil.copytree(out, copy, copy_function=shutil.copyfile)  # new mtimes everywhere
    for folder in (out, copy):
        for path in folder.rglob("*"):
            if path.is_file() and folder == out:
                os.utime(path, ns=(path.stat().st_atime_ns, path.stat().st_mtime_ns + 10**9))
        result = _run(ex, _sel(A, B), folder, layout="coco")
        assert result.written == 2, folder
        assert _run(ex, _sel(A, B), folder, layout="coco").nothing_to_do


def test_a_manifest_edited_at_its_size_is_someones(boxed: Path, tmp_path: Path) -> None:
    ex, out = _open(boxed), tmp_path / "o"
    _run(ex, _sel(A, B), out)
    manifest = out / "manifest.csv"
    os.utime(manifest, ns=(0, manifest.stat().st_mtime_ns + 10**9))  # touched: fine
    assert _run(ex, _sel(A, B), out).written == 0
    edited = manifest.read_text().replace("train", "tRain", 1)
    manifest.write_text(edited)
    with pytest.raises(MaterializeError, match=r"changed since it wrote them.*manifest\.csv"):
        _run(ex, _sel(A, B), out)
    assert manifest.read_text() == edited


def test_files_prune_spares_stay_recorded(boxed: Path, tmp_path: Path) -> None:
    """A run killed before relinking copies (its record says -1: either file) then a
    pruning run with another selection: the copies it spares stay ours, so a later run
    selecting them again takes them back (they were refused as someone's)."""
    ex, out = _open(boxed), tmp_path / "o"
    _run(ex, _sel(A, B, C), out)
    vla.plan_materialize(ex, _sel(A, B), out, mode="hardlink").begin()  # then killed
    spared = _run(ex, _sel(C), out, mode="symlink", prune=True)
    assert spared.pruned == 0 and len(_images(out)) == 3
    again = _run(ex, _sel(A, B, C), out)
    assert (again.written, again.skipped) == (1, 2)  # the symlink of C is a copy again
    assert _run(ex, _sel(A, B, C), out).nothing_to_do


def test_an_edit_that_keeps_the_size_is_someones(boxed: Path, tmp_path: Path) -> None:
    """The record holds each file's mtime as written: a retouched image or a relabelled
    COCO file of the same size is a conflict, never rewritten, and prune spares it."""
    ex, out = _open(boxed), tmp_path / "o"
    _run(ex, _sel(A, B, split=["train", "val"]), out, layout="coco")
    dests = dict(pl.read_csv(out / "manifest.csv").select("media_id", "dest").iter_rows())
    image, coco = out / dests[B], out / "annotations" / "instances_train.json"
    image.write_bytes(bytes(reversed(image.read_bytes())))  # same size, new mtime
    coco.write_text(coco.read_text().replace('"cat"', '"cow"'))
    with pytest.raises(MaterializeError, match="changed since it wrote them") as caught:
        _run(ex, _sel(A, B, split=["train", "val"]), out, layout="coco")
    assert "instances_train.json" in caught.value.message or dests[B] in caught.value.message
    assert '"cow"' in coco.read_text()
    coco.unlink()  # moved away: written again
    edited_image = image.read_bytes()
    result = _run(ex, _sel(A, split=["train"]), out, layout="coco", prune=True)  # B left
    assert image.read_bytes() == edited_image  # spared
    assert result.pruned == 1 and not (out / "annotations" / "instances_val.json").exists()
    assert '"cat"' in coco.read_text()


def test_prune_removes_only_what_left_and_was_ours(boxed: Path, tmp_path: Path) -> None:
    ex = _open(boxed)
    out = tmp_path / "o"
    _run(ex, _sel(A, B, C, D), out, layout="by-label")
    (out / "cat" / "notes.txt").write_text("mine")
    dests = dict(pl.read_csv(out / "manifest.csv").select("media_id", "dest").iter_rows())
    (out / dests[D]).write_bytes(b"edited by hand, other size")
    kept = _run(ex, _sel(A), out, layout="by-label")
    assert kept.pruned == 0 and (out / dests[B]).exists()
    result = _run(ex, _sel(A), out, layout="by-label", prune=True)
    assert result.pruned == 2  # B and C; D was changed by hand, so it stays
    assert not (out / dests[B]).exists() and not (out / "zebra").exists()
    assert not (out / dests[C]).exists()
    assert (out / dests[D]).read_bytes() == b"edited by hand, other size"
    assert (out / "cat" / "notes.txt").read_text() == "mine" and (out / dests[A]).exists()


@pytest.mark.parametrize("mode", ["hardlink", "symlink", "copy"])
def test_symlinks_in_the_export_images(boxed: Path, tmp_path: Path, mode: str) -> None:
    """An export image that is a symlink lands as the file it points to (a hard link to
    the symlink itself would dangle); a broken symlink is a missing image in every mode,
    listed before anything is written."""
    store = tmp_path / "store"
    store.mkdir()
    frame = boxed / "images" / "v1.mp4" / "frame.jpg"
    shutil.move(frame, store / "a.jpg")
    frame.symlink_to(os.path.relpath(store / "a.jpg", frame.parent))
    d_image = boxed / "images" / "photos" / "d.jpg"
    d_image.unlink()
    d_image.symlink_to("nowhere.jpg")
    out = tmp_path / "o"
    with pytest.raises(MaterializeError, match=f"not in the export .*{D}"):
        _run(_open(boxed), _sel(A, D), out, mode=mode)
    assert not out.exists()
    _run(_open(boxed), _sel(A), out, mode=mode)
    (landed,) = [p for p in out.iterdir() if p.suffix == ".jpg"]
    assert landed.read_bytes() == jpeg("v1.mp4/frame.jpg")
    if mode == "hardlink":
        assert landed.samefile(store / "a.jpg") and not landed.is_symlink()
    assert _run(_open(boxed), _sel(A), out, mode=mode).nothing_to_do


def test_hardlink_from_an_images_root_symlink_in_a_big_folder(tmp_path: Path) -> None:
    """A folder much larger than the selection is stat-ed file by file, not listed: a
    source there that is a relative symlink still lands as the file it points to."""
    bare = write_export(tmp_path / "bare", [item("s1", "clip/x.jpg")], images=False)
    root = tmp_path / "root"
    write_images(tmp_path / "store", ["real.jpg"])
    write_images(root / "clip", [f"other{i:04d}.jpg" for i in range(300)])
    (root / "clip" / "x.jpg").symlink_to("../../store/real.jpg")
    out = tmp_path / "o"
    _run(_open(bare), _sel("s1"), out, mode="hardlink", images_root=root)
    landed = out / "x__s1.jpg"
    assert not landed.is_symlink() and landed.samefile(tmp_path / "store" / "real.jpg")
    assert _run(_open(bare), _sel("s1"), out, mode="hardlink", images_root=root).nothing_to_do


@pytest.mark.parametrize("mode", ["hardlink", "symlink"])
def test_an_image_gone_since_the_export_was_opened(boxed: Path, tmp_path: Path, mode: str) -> None:
    """Links trust the listing made when the export was opened: an image removed since
    stops the run with one clear error (never a dangling symlink); restored, a rerun
    completes."""
    ex = _open(boxed)
    assert ex.images.found == 4  # the listing, as a notebook holding the export has it
    gone = boxed / "images" / "photos" / "c.png"
    content = gone.read_bytes()
    gone.unlink()
    out = tmp_path / "o"
    with pytest.raises(MaterializeError, match=r"c\.png is gone"):
        _run(ex, _sel(A, B, C), out, mode=mode)
    assert not [p for p in out.rglob("*.png") if p.is_symlink() or p.exists()]
    gone.write_bytes(content)
    assert _run(ex, _sel(A, B, C), out, mode=mode).written == 1
    assert (out / "c__30000000.png").read_bytes() == content


def test_a_copy_after_hard_links_copies(boxed: Path, tmp_path: Path) -> None:
    """Copy mode over an earlier run's hard links replaces them: a "copy" sharing the
    export's inode would let an edit of it edit the export."""
    ex = _open(boxed)
    out = tmp_path / "o"
    _run(ex, _sel(A, B), out, mode="hardlink")
    result = _run(ex, _sel(A, B), out, mode="copy")
    assert result.written == 2
    for image in _images(out):
        assert (out / image).stat().st_nlink == 1
    assert _run(ex, _sel(A, B), out, mode="copy").nothing_to_do


def test_a_symlink_put_over_a_copy_is_a_conflict(boxed: Path, tmp_path: Path) -> None:
    ex = _open(boxed)
    out = tmp_path / "o"
    _run(ex, _sel(A), out)
    (image,) = _images(out)
    (tmp_path / "mine.jpg").write_bytes(b"mine")
    (out / image).unlink()
    (out / image).symlink_to(tmp_path / "mine.jpg")
    with pytest.raises(MaterializeError, match="changed since"):
        _run(ex, _sel(A), out)
    assert (out / image).is_symlink()


def test_a_source_changed_between_plan_and_copy_is_no_conflict_later(
    boxed: Path, tmp_path: Path
) -> None:
    """The record holds the size each copy has as written, not the planned one."""
    ex = _open(boxed)
    out = tmp_path / "o"
    plan = vla.plan_materialize(ex, _sel(A, C), out)
    source = boxed / "images" / "photos" / "c.png"
    source.write_bytes(source.read_bytes() + b"grown since the plan")
    vla.materialize(plan)
    again = vla.plan_materialize(_open(boxed), _sel(A, C), out)
    assert again.summary()["conflict"] == 0  # (it recopies C: its mtime is the planned one)
    vla.materialize(again)
    assert _run(_open(boxed), _sel(A, C), out).nothing_to_do


def test_temporary_files_of_files_not_rewritten_are_removed(boxed: Path, tmp_path: Path) -> None:
    """A killed run's temporary file beside one of our files goes on the next run, even
    when that file is not rewritten then."""
    ex = _open(boxed)
    out = tmp_path / "o"
    _run(ex, _sel(A, B), out)
    images = sorted(_images(out))
    left = out / f".{images[0]}.vla-tmp-part-0123abcd"
    left.write_bytes(b"half")
    assert _run(ex, _sel(A), out).written == 0  # A is up to date, B left the selection
    assert not left.exists()


def test_prune_keeps_a_hard_link_whose_source_is_gone(boxed: Path, tmp_path: Path) -> None:
    """Links are planned without a size (no stat per source); prune still never deletes
    the last copy of an image: a link whose source was deleted since."""
    ex = _open(boxed)
    out = tmp_path / "o"
    first = vla.plan_materialize(ex, _sel(A, B, C), out, mode="hardlink")
    assert first.table["bytes"].null_count() == 3
    vla.materialize(first)
    dests = dict(pl.read_csv(out / "manifest.csv").select("media_id", "dest").iter_rows())
    gone = boxed / "images" / "v2.mp4" / "frame.jpg"
    content = gone.read_bytes()
    gone.unlink()
    result = _run(_open(boxed), _sel(A), out, mode="hardlink", prune=True)
    assert result.pruned == 1  # C's link; B's is the only copy left
    assert (out / dests[B]).read_bytes() == content and not (out / dests[C]).exists()


def test_prune_keeps_a_folder_that_replaced_a_file(boxed: Path, tmp_path: Path) -> None:
    ex = _open(boxed)
    out = tmp_path / "o"
    _run(ex, _sel(A, C), out)
    dests = dict(pl.read_csv(out / "manifest.csv").select("media_id", "dest").iter_rows())
    (out / dests[C]).unlink()
    (out / dests[C]).mkdir()
    (out / dests[C] / "mine.txt").write_text("mine")
    result = _run(ex, _sel(A), out, prune=True)
    assert result.pruned == 0 and (out / dests[C] / "mine.txt").read_text() == "mine"


# --- idempotent, verify ------------------------------------------------------------------


def test_second_run_writes_nothing(boxed: Path, tmp_path: Path) -> None:
    ex = _open(boxed)
    out = tmp_path / "o"
    first = _run(ex, _sel(A, B, C), out, layout="coco")
    assert first.written == 3 and first.side_files_written == 1
    stamps = {p: p.stat().st_mtime_ns for p in out.rglob("*")}
    second = _run(ex, _sel(A, B, C), out, layout="coco")
    assert second.nothing_to_do and second.skipped == 3
    assert {p: p.stat().st_mtime_ns for p in out.rglob("*")} == stamps
    record = json.loads((out / "vlanalyze-materialize.json").read_text())
    assert record["status"] == "complete" and record["parameters"]["layout"] == "coco"
    assert record["selection"]["rows"] == 3 and len(record["selection"]["sha256"]) == 64
    assert record["export"]["info"]["dataset"] == "t" and record["version"] == vla.__version__
    assert record["files_table"] == FILES and record["files_count"] == 5
    files = dict(pl.read_parquet(out / FILES, columns=["path", "bytes"]).iter_rows())
    assert set(files) == {*_images(out), "manifest.csv"}
    assert files["annotations/instances_train.json"] == len(
        (out / "annotations/instances_train.json").read_bytes()
    )


def test_a_record_of_an_earlier_version_is_read(boxed: Path, tmp_path: Path) -> None:
    """Records once listed the files in the JSON: a rerun and prune still know them."""
    ex = _open(boxed)
    out = tmp_path / "o"
    _run(ex, _sel(A, B), out)
    record = json.loads((out / "vlanalyze-materialize.json").read_text())
    files = dict(pl.read_parquet(out / FILES, columns=["path", "bytes"]).iter_rows())
    del record["files_table"], record["files_count"]
    (out / "vlanalyze-materialize.json").write_text(json.dumps({**record, "files": files}))
    (out / FILES).unlink()
    dests = dict(pl.read_csv(out / "manifest.csv").select("media_id", "dest").iter_rows())
    result = _run(ex, _sel(A), out, prune=True)
    assert result.written == 0 and result.pruned == 1 and not (out / dests[B]).exists()
    assert set(dict(pl.read_parquet(out / FILES, columns=["path", "bytes"]).iter_rows())) == {
        dests[A],
        "manifest.csv",
    }


def test_a_files_table_without_a_record_is_a_conflict(boxed: Path, tmp_path: Path) -> None:
    out = tmp_path / "o"
    out.mkdir()
    (out / FILES).write_bytes(b"not ours")
    with pytest.raises(MaterializeError, match=FILES):
        _run(_open(boxed), _sel(A), out)
    assert tree(out) == {FILES: b"not ours"}


def test_verify_finds_a_changed_file_the_quick_check_misses(boxed: Path, tmp_path: Path) -> None:
    ex = _open(boxed)
    out = tmp_path / "o"
    _run(ex, _sel(C), out)
    (dest,) = out.glob("c__*.png")
    st = dest.stat()
    data = bytearray(dest.read_bytes())
    data[-3] ^= 0xFF
    dest.write_bytes(bytes(data))
    os.utime(dest, ns=(st.st_atime_ns, st.st_mtime_ns))
    assert _run(ex, _sel(C), out).nothing_to_do
    assert _run(ex, _sel(C), out, verify=True).written == 1
    assert dest.read_bytes() == jpeg("photos/c.png")


def test_changed_source_is_rewritten(boxed: Path, tmp_path: Path) -> None:
    ex = _open(boxed)
    out = tmp_path / "o"
    _run(ex, _sel(C), out)
    (boxed / "images" / "photos" / "c.png").write_bytes(b"new content")
    assert _run(ex, _sel(C), out).written == 1
    (dest,) = out.glob("c__*.png")
    assert dest.read_bytes() == b"new content"


def test_missing_images_listed_before_writing(tmp_path: Path) -> None:
    export = write_export(tmp_path / "e", [item(A, "a.jpg"), item(B, "b.jpg")], images=False)
    write_images(tmp_path / "e" / "images", ["a.jpg"])
    plan = vla.plan_materialize(_open(export), _sel(A, B), tmp_path / "o")
    assert plan.missing == [B]
    with pytest.raises(MaterializeError, match=f"1 selected image.*{B}.*images_root="):
        vla.materialize(plan)
    assert not (tmp_path / "o").exists()


def test_csv_layout_writes_only_the_manifest(tmp_path: Path) -> None:
    export = write_export(tmp_path / "e", [item(A, "a.jpg"), item(B, "b.jpg")], images=False)
    _run(_open(export), _sel(B, A), tmp_path / "o", layout="csv")
    assert set(tree(tmp_path / "o")) == {"manifest.csv", "vlanalyze-materialize.json", FILES}
    manifest = pl.read_csv(tmp_path / "o" / "manifest.csv")
    assert manifest["media_id"].to_list() == [B, A]
    assert manifest["url"][0].endswith(B)


MANIFEST_COLUMNS = ["media_id", "source", "dest", "label", "split", "uniqueness_score", "url"]


def test_csv_layout_manifest_of_a_metadata_only_export(tmp_path: Path) -> None:
    """No images folder: the manifest still lists each item's file_path in the dataset's
    storage and its Visual Layer url; source only where --images-root finds the file."""
    items = [item(A, "data/cats/a.jpg"), item(B, "data/dogs/b.jpg"), item(C, "data/c.jpg")]
    export = write_export(tmp_path / "e", items, images=False)
    sel = _sel(C, A, B)
    _run(_open(export), sel, tmp_path / "o", layout="csv")
    manifest = pl.read_csv(tmp_path / "o" / "manifest.csv", infer_schema=False)
    assert manifest.columns == [*MANIFEST_COLUMNS, "file_path"]
    assert manifest["media_id"].to_list() == [C, A, B]
    assert manifest["file_path"].to_list() == ["data/c.jpg", "data/cats/a.jpg", "data/dogs/b.jpg"]
    assert manifest["url"].to_list() == [
        f"http://app.visual-layer.com/dataset/d/data/image/{m}" for m in (C, A, B)
    ]
    assert manifest["source"].null_count() == 3 and manifest["dest"].null_count() == 3
    root = tmp_path / "bucket"
    write_images(root, ["data/dogs/b.jpg"])
    _run(_open(export), sel, tmp_path / "o2", layout="csv", images_root=root)
    manifest = pl.read_csv(tmp_path / "o2" / "manifest.csv", infer_schema=False)
    assert manifest["source"].to_list() == [None, None, str(root / "data/dogs/b.jpg")]
    assert manifest["file_path"].to_list() == ["data/c.jpg", "data/cats/a.jpg", "data/dogs/b.jpg"]


@pytest.mark.parametrize("layout", ["flat", "by-label", "imagefolder", "hf", "yolo", "coco"])
def test_image_layouts_keep_the_manifest_columns(boxed: Path, tmp_path: Path, layout: str) -> None:
    _run(_open(boxed), _sel(A, B, split=["train", "val"]), tmp_path / "o", layout=layout)
    assert pl.read_csv(tmp_path / "o" / "manifest.csv").columns == MANIFEST_COLUMNS


def test_hf_splits_are_those_datasets_loads(boxed: Path, tmp_path: Path) -> None:
    """datasets loads a split only from a folder named train/validation/test (or a
    synonym): another name (its images would be dropped) is refused before writing;
    two names of one split (datasets merges them) are said in a note."""
    out = tmp_path / "o"
    with pytest.raises(MaterializeError, match="'holdout'"):
        _run(_open(boxed), _sel(A, B, split=["train", "holdout"]), out, layout="hf")
    with pytest.raises(MaterializeError, match="'VAL'"):  # (datasets' names are lowercase)
        _run(_open(boxed), _sel(A, B, split=["train", "VAL"]), out, layout="hf")
    assert not out.exists()
    sel = _sel(A, B, C, split=["train", "val", "dev"])
    plan = vla.plan_materialize(_open(boxed), sel, out, layout="hf")
    assert any("dev, val are all datasets' validation split" in n for n in plan.notes)
    vla.materialize(plan)
    assert (out / "dev").is_dir() and (out / "val").is_dir()


def test_typed_selections_take_ids_exactly(tmp_path: Path) -> None:
    """Parquet and DataFrame values are taken as they are (an export's id may hold a
    space); a CSV's are stripped ("a, b" writes " b")."""
    odd = " lead"
    export = write_export(tmp_path / "e", [item(odd, "a.jpg"), item(A, "b.jpg")])
    ex = _open(export)
    parquet = tmp_path / "sel.parquet"
    _sel(odd).write_parquet(parquet)
    assert vla.plan_materialize(ex, parquet, tmp_path / "o").table["media_id"].to_list() == [odd]
    csv = tmp_path / "sel.csv"
    csv.write_text(f"media_id,split\n {A} , val\n")
    plan = vla.plan_materialize(ex, csv, tmp_path / "o", layout="hf")
    assert plan.table.select("media_id", "split").rows() == [(A, "val")]


def test_a_retried_partition_rewrites_its_own_files(boxed: Path, tmp_path: Path) -> None:
    """The distributed recipe: after Plan.begin, a partition applied twice (an engine's
    retry) rewrites what it wrote, never "appeared while writing"."""
    plan = vla.plan_materialize(_open(boxed), _sel(A, B, C), tmp_path / "o")
    plan.begin()
    part = plan.with_rows(plan.table.head(2))
    assert vla.materialize(part, images_only=True).written == 2
    assert vla.materialize(part, images_only=True).written == 2
    assert vla.materialize(plan.with_rows(plan.table.tail(1)), images_only=True).written == 1
    assert _run(_open(boxed), _sel(A, B, C), tmp_path / "o").written == 0


def test_zip_members_keep_their_extended_timestamp(boxed: Path, tmp_path: Path) -> None:
    """unzip sets a member's mtime from its extended timestamp (UTC, to the second) when
    it has one; the DOS time alone is local and to 2 seconds. Copies from a ZIP match."""
    archive = tmp_path / "e.zip"
    stamp = 1_700_072_021  # an odd second: the DOS time cannot hold it
    with zipfile.ZipFile(archive, "w") as zf:
        zf.write(boxed / "metadata.json", "metadata.json")
        info = zipfile.ZipInfo("images/photos/c.png", date_time=(2023, 11, 15, 18, 13, 40))
        info.extra = struct.pack("<HHBi", 0x5455, 5, 1, stamp)
        zf.writestr(info, (boxed / "images" / "photos" / "c.png").read_bytes())
    out = tmp_path / "o"
    _run(_open(archive), _sel(C), out)
    assert (out / "c__30000000.png").stat().st_mtime_ns == stamp * 1_000_000_000
    assert _run(_open(archive), _sel(C), out).nothing_to_do


def test_reflink_from_a_zip_says_it_copied(boxed: Path, tmp_path: Path) -> None:
    archive = tmp_path / "e.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        for path in boxed.rglob("*"):
            if path.is_file() and ".vlanalyze-cache" not in str(path):
                zf.write(path, path.relative_to(boxed).as_posix())
    result = _run(_open(archive), _sel(A), tmp_path / "o", mode="reflink")
    assert result.written == 1 and any("were copied" in note for note in result.notes)


def test_progress_and_plan_as_parquet(boxed: Path, tmp_path: Path) -> None:
    plan = vla.plan_materialize(_open(boxed), _sel(A, B, C, D), tmp_path / "o")
    calls: list[tuple[int, int | None]] = []
    vla.materialize(plan, on_progress=lambda d, t: calls.append((d, t)))
    assert calls[-1] == (4, 4)
    plan.write_parquet(tmp_path / "plan.parquet")
    table = pl.read_parquet(tmp_path / "plan.parquet")
    assert table["media_id"].to_list() == [A, B, C, D]
    assert set(table.columns) >= {"source", "dest", "bytes", "action", "out", "mode"}


def test_materialize_does_not_import_fetch_click_or_rich() -> None:
    import subprocess
    import sys

    code = (
        "import sys, vlanalyze.materialize._apply, vlanalyze.materialize._plan\n"
        "bad = ('vlanalyze.fetch', 'click', 'rich')\n"
        "print(sorted(m for m in sys.modules if m.startswith(bad)))"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "[]"


def test_partitions_applied_apart_then_finished(boxed: Path, tmp_path: Path) -> None:
    """The README's distributed recipe: begin, partitions from the Parquet plan, finish."""
    ex, out = _open(boxed), tmp_path / "o"
    plan = vla.plan_materialize(ex, _sel(A, B, C, D), out, layout="coco")
    plan.write_parquet(tmp_path / "plan.parquet")
    plan.begin()
    rows = pl.read_parquet(tmp_path / "plan.parquet")
    for part in (rows.head(2), rows.tail(2)):
        assert vla.materialize(plan.with_rows(part), images_only=True).written == 2
    assert not (out / "manifest.csv").exists()
    final = vla.materialize(vla.plan_materialize(ex, _sel(A, B, C, D), out, layout="coco"))
    assert final.written == 0 and final.skipped == 4 and final.side_files_written == 1
    assert (out / "manifest.csv").exists()


def test_leftover_temporary_files_are_removed_and_only_ours(boxed: Path, tmp_path: Path) -> None:
    ex, out = _open(boxed), tmp_path / "o"
    _run(ex, _sel(A), out)
    dest_b = vla.plan_materialize(ex, _sel(B), out).table["dest"][0]
    leftover = out / f".{dest_b}.vla-tmp-part-0123456789ab"  # as a killed rename-path run
    leftover.write_bytes(b"half a file")
    other = out / ".notes.txt.vla-tmp-part-0123456789ab"  # not a destination: not ours
    other.write_bytes(b"keep")
    _run(ex, _sel(A, B), out)
    assert not leftover.exists() and other.read_bytes() == b"keep"


def test_a_curate_selection_materializes_with_its_splits(
    sample_json_copy: Path, tmp_path: Path
) -> None:
    with vla.open_export(sample_json_copy) as ex:
        sel = vla.select(ex, top=6, split={"train": 0.5, "val": 0.5}, seed=1)
        result = vla.materialize(vla.plan_materialize(ex, sel, tmp_path / "out"))
    assert result.written == 6
    manifest = pl.read_csv(tmp_path / "out" / "manifest.csv")
    expected = sel.table.select("media_id", "split").sort("media_id")
    assert manifest.select("media_id", "split").sort("media_id").equals(expected)


# --- what a run reports; writes that fail ------------------------------------------------


def test_a_run_that_writes_only_the_manifest_is_not_nothing_to_do(
    boxed: Path, tmp_path: Path
) -> None:
    ex, out = _open(boxed), tmp_path / "o"
    first = _run(ex, _sel(A, B), out, layout="csv")
    assert first.manifest_written and first.record_written and not first.nothing_to_do
    again = _run(ex, _sel(A, B), out, layout="csv")
    assert again.nothing_to_do and not (again.manifest_written or again.record_written)
    fewer = _run(ex, _sel(A), out, layout="csv")
    assert fewer.manifest_written and not fewer.nothing_to_do and fewer.left == 0

    flat = tmp_path / "flat"
    _run(ex, _sel(A, B, C), flat)
    smaller = _run(ex, _sel(A), flat)
    assert smaller.written == 0 and smaller.manifest_written and not smaller.nothing_to_do
    assert smaller.left == 2  # kept: prune=True removes them
    assert _run(ex, _sel(A), flat).left == 2
    assert _run(ex, _sel(A), flat, prune=True).pruned == 2


def test_the_file_in_the_way_of_a_folder_is_the_conflict(boxed: Path, tmp_path: Path) -> None:
    ex, out = _open(boxed), tmp_path / "o"
    out.mkdir()
    (out / "unlabeled").write_bytes(b"mine")  # D has no label: by-label wants unlabeled/
    (out / "cat").mkdir()
    plan = vla.plan_materialize(ex, _sel(A, C, D), out, layout="by-label")
    cat_a = plan.table.filter(pl.col("media_id") == A)["dest"][0]
    (out / cat_a).write_bytes(b"mine too")
    plan = vla.plan_materialize(ex, _sel(A, C, D), out, layout="by-label")
    assert plan.conflicts == [cat_a, "unlabeled"]
    assert plan.summary()["conflict"] == 2
    with pytest.raises(MaterializeError, match=r"2 file.*in the way: cat/.*, unlabeled; nothing"):
        vla.materialize(plan)


def test_many_conflicts_say_how_many_more(tmp_path: Path) -> None:
    out = tmp_path / "o"
    ids = [f"{n:08d}-0000-4000-8000-000000000000" for n in range(8)]
    export = write_export(tmp_path / "e", [item(m, f"{m}.jpg") for m in ids])
    plan = vla.plan_materialize(_open(export), _sel(*ids), out)
    out.mkdir()
    for dest in plan.table["dest"]:
        (out / dest).write_bytes(b"mine")
    plan = vla.plan_materialize(_open(export), _sel(*ids), out)
    assert len(plan.conflicts) == 8
    with pytest.raises(MaterializeError) as caught:
        plan.check(see_all="see them all here")
    assert "and 3 more; nothing was written" in caught.value.message
    assert caught.value.hint == "move them away, or choose another output folder; see them all here"


def test_a_plan_made_before_another_run_wrote_is_refused(boxed: Path, tmp_path: Path) -> None:
    """Two runs into one OUT (two plans made before either applies): the second would
    record only its own files and disown the first's. It is refused, writes nothing,
    and planned again it completes with every file recorded."""
    ex, out = _open(boxed), tmp_path / "o"
    first = vla.plan_materialize(ex, _sel(A, B), out)
    second = vla.plan_materialize(ex, _sel(C, D), out)
    vla.materialize(first)
    before = tree(out)
    with pytest.raises(MaterializeError, match="changed since this plan was made"):
        vla.materialize(second)
    assert tree(out) == before
    vla.materialize(vla.plan_materialize(ex, _sel(C, D), out))
    assert len(_images(out)) == 4
    all_four = _run(ex, _sel(A, B, C, D), out)  # all four are ours: none is a conflict
    assert (all_four.written, all_four.skipped) == (0, 4)


def test_a_run_into_a_folder_another_run_is_writing_is_refused(boxed: Path, tmp_path: Path) -> None:
    out = tmp_path / "o"
    plan = vla.plan_materialize(_open(boxed), _sel(A), out)
    out.mkdir()
    fd = os.open(out, os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)  # as a run applying a plan holds it
        with pytest.raises(MaterializeError, match="another vlanalyze run is writing into"):
            vla.materialize(plan)
    finally:
        os.close(fd)
    assert not list(out.iterdir())
    assert vla.materialize(plan).written == 1


@pytest.mark.parametrize("name", ["data.yaml", "manifest.csv"])
def test_a_layout_file_that_appears_after_the_plan_is_left_alone(
    boxed: Path, tmp_path: Path, name: str
) -> None:
    out = tmp_path / "o"
    plan = vla.plan_materialize(_open(boxed), _sel(A, B), out, layout="yolo")
    out.mkdir()
    (out / name).write_text("mine")
    with pytest.raises(MaterializeError, match=f"{name} appeared while vlanalyze was writing"):
        vla.materialize(plan)
    assert (out / name).read_text() == "mine"


def test_a_record_that_cannot_be_written_is_a_materialize_error(
    boxed: Path, tmp_path: Path
) -> None:
    """The output's parent became a file between plan and apply: one error naming it."""
    ex = _open(boxed)
    parent = tmp_path / "parent"
    plan = vla.plan_materialize(ex, _sel(A), parent / "out")
    parent.write_bytes(b"mine")
    with pytest.raises(MaterializeError) as caught:
        vla.materialize(plan)
    assert caught.value.message == (
        f"cannot write {parent / 'out'}: {parent} is a file, not a folder"
    )
    assert parent.read_bytes() == b"mine"


def test_a_plan_saved_where_no_folder_is_a_materialize_error(boxed: Path, tmp_path: Path) -> None:
    plan = vla.plan_materialize(_open(boxed), _sel(A), tmp_path / "o")
    target = tmp_path / "nowhere" / "plan.parquet"
    with pytest.raises(MaterializeError, match="does not exist"):
        plan.write_parquet(target)
    assert not target.parent.exists()


def test_verify_with_nothing_changed_is_nothing_to_do(boxed: Path, tmp_path: Path) -> None:
    ex, out = _open(boxed), tmp_path / "o"
    _run(ex, _sel(A, B, C), out, layout="coco")
    stamps = {p: p.stat().st_mtime_ns for p in out.rglob("*")}
    again = _run(ex, _sel(A, B, C), out, layout="coco", verify=True)
    assert again.nothing_to_do and not again.record_written
    assert {p: p.stat().st_mtime_ns for p in out.rglob("*")} == stamps
