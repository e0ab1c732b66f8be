"""Images read in place from a damaged or hostile export ZIP: one clear line, never a
traceback, never a non-image presented as an image; a member named with ``::`` is read."""

from __future__ import annotations

import stat
import zipfile
from pathlib import Path

import polars as pl
import pytest
from click.testing import CliRunner
from materialize_kit import item, jpeg, tree, write_export

import vlanalyze as vla
from vlanalyze.cli import main
from vlanalyze.errors import MaterializeError

ITEMS = [item("a", "p/a.jpg"), item("b", "p/b.jpg"), item("c", "p/12::00.jpg")]


def _zip(tmp_path: Path, change: str = "") -> Path:
    """The export as a ZIP of stored members; ``change`` damages p/b.jpg's member."""
    folder = write_export(tmp_path / "folder", ITEMS)
    archive = tmp_path / f"export{change}.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        zf.write(folder / "metadata.json", "metadata.json")
        for it in ITEMS:
            rel = "images/" + it["file_path"]
            if it["media_id"] == "b" and change == "symlink":
                info = zipfile.ZipInfo(rel)
                info.external_attr = (stat.S_IFLNK | 0o777) << 16
                zf.writestr(info, "/etc/passwd")
            else:
                zf.write(folder / rel, rel)
    if change in ("crc", "encrypted", "method"):
        data = bytearray(archive.read_bytes())
        with zipfile.ZipFile(archive) as zf:
            info = zf.getinfo("images/p/b.jpg")
        local = info.header_offset
        if change == "crc":  # a flipped byte in the member's data
            start = local + 30 + len(info.filename.encode()) + len(info.extra)
            data[start + 10] ^= 0xFF
        else:  # the central directory's flag bits (+8) or method (+10) for that member
            central = _central_record(data, info.filename)
            if change == "encrypted":
                data[central + 8] |= 0x1
            else:
                data[central + 10 : central + 12] = (93).to_bytes(2, "little")
        archive.write_bytes(bytes(data))
    return archive


def _central_record(data: bytearray, name: str) -> int:
    at = 0
    while (at := data.find(b"PK\x01\x02", at)) >= 0:
        length = int.from_bytes(data[at + 28 : at + 30], "little")
        if data[at + 46 : at + 46 + length] == name.encode():
            return at
        at += 4
    raise AssertionError(name)


def _plan(archive: Path, out: Path) -> vla.Plan:
    with vla.open_export(archive, cache_dir=archive.parent / "cache") as ex:
        return vla.plan_materialize(ex, pl.DataFrame({"media_id": ["a", "b", "c"]}), out)


def test_a_member_named_with_double_colons_is_read(tmp_path: Path) -> None:
    archive = _zip(tmp_path)
    result = vla.materialize(_plan(archive, tmp_path / "o"))
    assert result.written == 3
    assert tree(tmp_path / "o")["12__00__c.jpg"] == jpeg("p/12::00.jpg")
    again = vla.materialize(_plan(archive, tmp_path / "o"), verify=True)
    assert again.nothing_to_do


@pytest.mark.parametrize(
    ("change", "said"),
    [
        ("symlink", "as a symbolic link"),
        ("encrypted", "encrypted"),
        ("method", "compressed with method 93"),
    ],
)
def test_members_that_are_not_images_are_refused_by_the_plan(
    tmp_path: Path, change: str, said: str
) -> None:
    archive = _zip(tmp_path, change)
    with pytest.raises(MaterializeError, match=f"holds the image 'images/p/b.jpg' {said}"):
        _plan(archive, tmp_path / "o")
    assert not (tmp_path / "o").exists()


def test_a_damaged_member_is_one_clear_line_and_no_file(tmp_path: Path) -> None:
    archive = _zip(tmp_path, "crc")
    out = tmp_path / "o"
    result = CliRunner().invoke(main, ["materialize", str(archive), "-", "-o", str(out), "-q"],
                                input="media_id\na\nb\nc\n")  # fmt: skip
    assert result.exit_code == 1, result.output
    assert "Traceback" not in result.output
    last = result.output.strip().splitlines()[-1]
    assert "images/p/b.jpg" in last and "is damaged" in last and "download the export" in last
    assert not (out / "b__b.jpg").exists()  # never presented as complete
    assert not [p for p in out.rglob("*") if ".vlanalyze" in p.name and "tmp" in p.name]


def test_utf8_names_without_the_utf8_flag_are_found(tmp_path: Path) -> None:
    """Info-ZIP's ``zip -r`` on Linux stores UTF-8 names without the UTF-8 flag (Python
    reads them as cp437): the image is found in place and extracted under its name, as
    ``unzip`` does."""
    name = "p/café.jpg"
    folder = write_export(tmp_path / "folder", [item("u", name)])
    archive = tmp_path / "export.zip"
    stand_in = "p/cafXX.jpg"  # ASCII, as many bytes as the UTF-8 name: no flag is set
    assert len(stand_in) == len(name.encode())
    with zipfile.ZipFile(archive, "w") as zf:
        zf.write(folder / "metadata.json", "metadata.json")
        zf.write(folder / "images" / name, "images/" + stand_in)
    data = archive.read_bytes().replace(stand_in.encode(), name.encode())
    archive.write_bytes(data)
    with zipfile.ZipFile(archive) as zf:
        assert "images/p/caf├⌐.jpg" in zf.namelist()  # what Python makes of it
    with vla.open_export(archive, cache_dir=tmp_path / "cache") as ex:
        assert ex.info.images.found == 1
        vla.materialize(vla.plan_materialize(ex, pl.DataFrame({"media_id": ["u"]}), tmp_path / "o"))
    assert tree(tmp_path / "o")["café__u.jpg"] == jpeg(name)
    vla.extract_archive(archive, tmp_path / "x")
    assert (tmp_path / "x/images/p/café.jpg").read_bytes() == jpeg(name)
