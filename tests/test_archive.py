"""Tests of safe extraction on real ZIPs built in tmp_path, hostile ones crafted byte by byte."""

from __future__ import annotations

import functools
import io
import os
import random
import stat
import struct
import warnings
import zipfile
from collections.abc import Callable
from pathlib import Path, PurePosixPath
from typing import Any

import pytest
from conftest import read_only

from vlanalyze.errors import ArchiveError, MaterializeError, UnsafeArchiveError
from vlanalyze.fetch._archive import _ensure_inside, _plan, extract_archive, safe_member_path

MB = 1024**2
Member = tuple[str | zipfile.ZipInfo, bytes]


# --- helpers -------------------------------------------------------------------------


def _info(name: str, *, mode: int | None = None, deflate: bool = False) -> zipfile.ZipInfo:
    info = zipfile.ZipInfo(name)
    info.compress_type = zipfile.ZIP_DEFLATED if deflate else zipfile.ZIP_STORED
    if mode is not None:
        info.external_attr = mode << 16
    return info


def _write_zip(path: Path, members: list[Member]) -> Path:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # zipfile warns on the duplicates we write on purpose
        with zipfile.ZipFile(path, "w") as zf:
            for name, data in members:
                zf.writestr(name, data)
    return path


def _snapshot(root: Path) -> dict[str, tuple[str, bytes]]:
    """Every path under root, with its kind and (for files) its bytes."""
    tree: dict[str, tuple[str, bytes]] = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            path = Path(dirpath, name)
            rel = str(path.relative_to(root))
            if path.is_symlink():
                tree[rel] = ("link", os.readlink(path).encode())
            elif path.is_dir():
                tree[rel] = ("dir", b"")
            else:
                tree[rel] = ("file", path.read_bytes())
    return tree


def _set_declared_size(path: Path, size: int) -> None:
    """Make the (only) member declare ``size`` uncompressed bytes, local header and directory."""
    raw = bytearray(path.read_bytes())
    struct.pack_into("<I", raw, 22, size)  # local file header at offset 0
    struct.pack_into("<I", raw, raw.rfind(b"PK\x01\x02") + 24, size)
    path.write_bytes(bytes(raw))


def _data_offset(path: Path, name: str) -> tuple[int, int]:
    """Where the (compressed) data of member ``name`` starts, and its length."""
    with zipfile.ZipFile(path) as zf:
        info = zf.getinfo(name)
    raw = path.read_bytes()
    name_len, extra_len = struct.unpack_from("<HH", raw, info.header_offset + 26)
    return info.header_offset + 30 + name_len + extra_len, info.compress_size


@functools.cache
def _zeros_bomb() -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr(_info("zeros.bin", deflate=True), bytes(50 * MB))
    return buf.getvalue()


def _random_bytes(size: int, seed: int = 0) -> bytes:
    return random.Random(seed).randbytes(size)


# --- hostile archives ----------------------------------------------------------------

Builder = Callable[[Path], None]


def _members(*members: Member) -> Builder:
    def build(path: Path) -> None:
        _write_zip(path, list(members))

    return build


def _nul_name(path: Path) -> None:
    _write_zip(path, [("ev@l.txt", b"x")])
    path.write_bytes(path.read_bytes().replace(b"ev@l", b"ev\x00l"))


def _bomb(path: Path) -> None:
    path.write_bytes(_zeros_bomb())


def _lying(declared: int, *, deflate: bool) -> Builder:
    def build(path: Path) -> None:
        _write_zip(path, [(_info("liar.bin", deflate=deflate), _random_bytes(1000))])
        _set_declared_size(path, declared)

    return build


def _case(
    case_id: str, build: Builder, shown: str, error: type[Exception] = UnsafeArchiveError, **kw: int
) -> Any:
    """One hostile row: what to build, the error, and the text its message must contain."""
    return pytest.param(build, kw, error, shown, id=case_id)


def _one(name: str | zipfile.ZipInfo, data: bytes = b"x") -> Builder:
    return _members((name, data))


LINK = stat.S_IFLNK | 0o777
HOSTILE = [
    _case("dotdot", _one("../evil.txt"), "'../evil.txt'"),
    _case("inner-dotdot", _one("a/../../evil.txt"), "'a/../../evil.txt'"),
    _case(
        "sibling-prefix",
        _members(("ok.txt", b"1"), ("../outside/evil.txt", b"x")),
        "'../outside/evil.txt'",
    ),
    _case("absolute", _one("/abs/evil.txt"), "'/abs/evil.txt'"),
    _case("unc", _one("//server/share/x"), "'//server/share/x'"),
    _case("drive-backslash", _one("C:\\evil.txt"), repr("C:\\evil.txt")),
    _case("drive-relative", _one("C:evil.txt"), "'C:evil.txt'"),
    _case("drive-slash", _one("C:/evil.txt"), "'C:/evil.txt'"),
    _case("backslash-dotdot", _one("..\\evil.txt"), repr("..\\evil.txt")),
    _case("backslash-inner", _one("a\\..\\..\\evil.txt"), repr("a\\..\\..\\evil.txt")),
    _case("empty-name", _one(_info("")), "''"),
    _case("dot-only", _one("./", b""), "'./'"),
    _case("nul-byte", _nul_name, repr("ev\x00l.txt")),
    _case("symlink", _one(_info("link", mode=LINK), b"../../etc/passwd"), "'link'"),
    _case(
        "symlink-then-through",
        _members((_info("d/link", mode=LINK), b"/"), ("d/link/evil", b"x")),
        "'d/link'",
    ),
    _case("fifo", _one(_info("fifo", mode=stat.S_IFIFO | 0o644), b""), "'fifo'"),
    _case("duplicate", _members(("a.txt", b"1"), ("a.txt", b"2")), "'a.txt'"),
    _case("dup-double-slash", _members(("a/b.txt", b"1"), ("a//b.txt", b"2")), "'a//b.txt'"),
    _case("dup-dot-slash", _members(("a.txt", b"1"), ("./a.txt", b"2")), "'./a.txt'"),
    _case("dup-case", _members(("Readme.txt", b"1"), ("README.TXT", b"2")), "'README.TXT'"),
    _case("dup-dir-case", _members(("img/A/x.jpg", b"1"), ("img/a/y.jpg", b"2")), "'img/a/y.jpg'"),
    _case(
        "dup-unicode-nfd",
        _members(("caf\u00e9.txt", b"1"), ("cafe\u0301.txt", b"2")),
        repr("cafe\u0301.txt"),
    ),
    _case("file-then-dir", _members(("a", b"1"), ("a/b.txt", b"2")), "'a/b.txt'"),
    _case("dir-then-file", _members(("a/b.txt", b"1"), ("a", b"2")), "'a'"),
    _case("dup-dir-member", _members(("d/", b""), ("d/", b"")), "'d/'"),
    _case("bomb-total-size", _bomb, "'zeros.bin'", max_total_size=MB),
    _case("bomb-ratio", _bomb, "'zeros.bin'"),
    _case(
        "too-many-members",
        _members(*[(f"f{i}.txt", b"x") for i in range(11)]),
        "11 members",
        max_members=10,
    ),
    _case("declared-smaller-stored", _lying(10, deflate=False), "'liar.bin'", ArchiveError),
    _case("declared-smaller-deflated", _lying(10, deflate=True), "'liar.bin'", ArchiveError),
    _case("declared-larger", _lying(10_000, deflate=False), "'liar.bin'", ArchiveError),
]


@pytest.fixture
def site(tmp_path: Path) -> Path:
    """A parent folder with a sibling whose name has dest's name as a prefix."""
    (tmp_path / "outside").mkdir()
    (tmp_path / "outside" / "keep.txt").write_bytes(b"keep")
    return tmp_path


@pytest.mark.parametrize(("build", "kwargs", "error", "shown"), HOSTILE)
def test_hostile_archive_is_rejected_and_nothing_written(
    site: Path, build: Builder, kwargs: dict[str, Any], error: type[Exception], shown: str
) -> None:
    archive = site / "hostile.zip"
    build(archive)
    before = _snapshot(site)
    with pytest.raises(error) as excinfo:
        extract_archive(archive, site / "out", **kwargs)
    assert shown in str(excinfo.value)
    assert _snapshot(site) == before


@pytest.mark.parametrize(("build", "kwargs", "error", "shown"), HOSTILE)
def test_hostile_archive_leaves_overwritten_dest_untouched(
    site: Path, build: Builder, kwargs: dict[str, Any], error: type[Exception], shown: str
) -> None:
    archive = site / "hostile.zip"
    build(archive)
    (site / "out").mkdir()
    (site / "out" / "old.txt").write_bytes(b"old")
    before = _snapshot(site)
    with pytest.raises(error):
        extract_archive(archive, site / "out", overwrite=True, **kwargs)
    assert _snapshot(site) == before


def test_member_producing_more_than_declared_is_stopped(
    site: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # zipfile itself caps output at the declared size; prove our own count does too.
    archive = _write_zip(site / "a.zip", [("big.bin", b"12345")])
    monkeypatch.setattr(
        zipfile.ZipFile, "open", lambda self, info: io.BytesIO(b"x" * (info.file_size + 1))
    )
    before = _snapshot(site)
    with pytest.raises(UnsafeArchiveError, match=r"'big\.bin' produced more than"):
        extract_archive(archive, site / "out")
    assert _snapshot(site) == before


# --- member names and the plan, no disk ----------------------------------------------


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("a.txt", "a.txt"),
        ("images/x.jpg", "images/x.jpg"),
        ("./a", "a"),
        ("a//b", "a/b"),
        ("a/./b", "a/b"),
        ("dir/", "dir"),
        ("..a/b..", "..a/b.."),
        ("with space/é.jpg", "with space/é.jpg"),
    ],
)
def test_safe_member_path_normalises(name: str, expected: str) -> None:
    assert safe_member_path(name) == PurePosixPath(expected)


@pytest.mark.parametrize(
    ("name", "reason"),
    [
        ("../x", "'..'"),
        ("a/../../x", "'..'"),
        ("a/..", "'..'"),
        ("/abs", "absolute"),
        ("C:\\x", "drive letter"),
        ("C:x", "drive letter"),
        ("..\\x", "backslash"),
        ("a\\..\\..\\x", "backslash"),
        ("", "empty"),
        (".", "empty"),
        ("a\x00b", "NUL"),
    ],
)
def test_safe_member_path_rejects(name: str, reason: str) -> None:
    with pytest.raises(UnsafeArchiveError, match=reason) as excinfo:
        safe_member_path(name)
    assert repr(name) in str(excinfo.value)


def test_plan_creates_each_directory_once_parents_first() -> None:
    infos = [zipfile.ZipInfo(n) for n in ("b/c/x.jpg", "a/", "b/y.jpg", "b/c/z.jpg", "m.json")]
    for offset, info in enumerate(infos):
        info.header_offset = offset
        info.file_size = info.compress_size = 10
    plan = _plan(infos, max_members=10, max_total_size=100)
    assert plan.dirs == [("a",), ("b",), ("b", "c")]
    assert [parts for _, parts in plan.files] == [
        ("b", "c", "x.jpg"),
        ("b", "y.jpg"),
        ("b", "c", "z.jpg"),
        ("m.json",),
    ]
    assert plan.total_size == 40


def test_containment_is_not_a_string_prefix_check(tmp_path: Path) -> None:
    out, outside = tmp_path / "out", tmp_path / "outside"
    out.mkdir()
    outside.mkdir()
    (out / "sub").mkdir()
    (out / "link").symlink_to(outside)
    root = out.resolve()
    _ensure_inside(root, out / "sub", "sub")
    for escaping in (outside, outside / "x", out / "link", out / "sub" / ".." / ".." / "outside"):
        with pytest.raises(UnsafeArchiveError, match="outside"):
            _ensure_inside(root, escaping, "m")


# --- the happy path and dest handling -------------------------------------------------


def _export_members() -> list[Member]:
    return [
        ("metadata.json", b'{"images": [{"image_id": "a"}]}' * 50),
        (_info("images/a.jpg", deflate=True), _random_bytes(50_000, seed=1)),
        (_info("images/sub/b.jpg"), _random_bytes(20_000, seed=2)),
        ("empty_dir/", b""),
        ("empty.txt", b""),
        (_info("tool.sh", mode=stat.S_IFREG | stat.S_ISUID | 0o777), b"#!/bin/sh\n"),
    ]


def _expected_files(members: list[Member]) -> dict[str, bytes]:
    names = {(m.filename if isinstance(m, zipfile.ZipInfo) else m): data for m, data in members}
    return {name: data for name, data in names.items() if not name.endswith("/")}


def test_round_trip_is_byte_identical(site: Path, capsys: pytest.CaptureFixture[str]) -> None:
    members = _export_members()
    archive = _write_zip(site / "export.zip", members)
    result = extract_archive(archive, site / "out")
    assert result == site / "out"
    for name, data in _expected_files(members).items():
        assert (result / name).read_bytes() == data
    assert (result / "empty_dir").is_dir()
    assert sorted(p.name for p in site.iterdir()) == ["export.zip", "out", "outside"]
    assert capsys.readouterr() == ("", "")


def test_no_dangerous_permission_bits(site: Path) -> None:
    archive = _write_zip(site / "export.zip", _export_members())
    result = extract_archive(archive, site / "out")
    mode = (result / "tool.sh").stat().st_mode
    assert not mode & (stat.S_ISUID | stat.S_ISGID | stat.S_IWOTH)
    assert not (result.stat().st_mode & stat.S_IWOTH)


def test_relative_paths_and_missing_parents(site: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _write_zip(site / "export.zip", [("a.txt", b"a")])
    monkeypatch.chdir(site)
    result = extract_archive("export.zip", "deep/er/out")
    assert result == site / "deep" / "er" / "out"
    assert result.is_absolute()
    assert (result / "a.txt").read_bytes() == b"a"


def test_empty_existing_dest_is_fine(site: Path) -> None:
    archive = _write_zip(site / "export.zip", [("a.txt", b"a")])
    (site / "out").mkdir()
    extract_archive(archive, site / "out")
    assert (site / "out" / "a.txt").read_bytes() == b"a"


def test_non_empty_dest_is_refused_without_overwrite(site: Path) -> None:
    archive = _write_zip(site / "export.zip", [("a.txt", b"a")])
    (site / "out").mkdir()
    (site / "out" / "mine.txt").write_bytes(b"mine")
    before = _snapshot(site)
    with pytest.raises(MaterializeError) as excinfo:
        extract_archive(archive, site / "out")
    assert str(site / "out") in str(excinfo.value)
    assert excinfo.value.hint is not None and "overwrite=True" in excinfo.value.hint
    assert _snapshot(site) == before


def test_overwrite_replaces_dest(site: Path) -> None:
    archive = _write_zip(site / "export.zip", [("a.txt", b"new")])
    (site / "out" / "old").mkdir(parents=True)
    (site / "out" / "old" / "x.txt").write_bytes(b"old")
    (site / "out" / "a.txt").write_bytes(b"old")
    extract_archive(archive, site / "out", overwrite=True)
    assert _snapshot(site / "out") == {"a.txt": ("file", b"new")}
    assert sorted(p.name for p in site.iterdir()) == ["export.zip", "out", "outside"]


@pytest.mark.parametrize("overwrite", [False, True])
def test_dest_that_is_a_file_is_refused(site: Path, overwrite: bool) -> None:
    archive = _write_zip(site / "export.zip", [("a.txt", b"a")])
    (site / "out").write_bytes(b"a file")
    before = _snapshot(site)
    with pytest.raises(MaterializeError, match="not a folder"):
        extract_archive(archive, site / "out", overwrite=overwrite)
    assert _snapshot(site) == before


def test_dest_that_is_a_symlink_is_refused(site: Path) -> None:
    archive = _write_zip(site / "export.zip", [("a.txt", b"a")])
    (site / "out").symlink_to(site / "outside")
    before = _snapshot(site)
    with pytest.raises(MaterializeError, match="not a folder"):
        extract_archive(archive, site / "out", overwrite=True)
    assert _snapshot(site) == before


# --- broken archives -----------------------------------------------------------------


def _valid_zip_bytes(tmp_path: Path) -> bytes:
    return _write_zip(tmp_path / "valid.zip", _export_members()).read_bytes()


@pytest.mark.parametrize(
    "corrupt",
    [
        pytest.param(lambda raw: b"this is not a zip file\n", id="not-a-zip"),
        pytest.param(lambda raw: b"", id="empty-file"),
        pytest.param(lambda raw: raw[: len(raw) // 2], id="truncated-half"),
        pytest.param(lambda raw: raw[:-10], id="truncated-tail"),
        pytest.param(lambda raw: raw[:-100], id="truncated-directory"),
    ],
)
def test_corrupt_archive(site: Path, corrupt: Callable[[bytes], bytes]) -> None:
    archive = site / "broken.zip"
    archive.write_bytes(corrupt(_valid_zip_bytes(site)))
    before = _snapshot(site)
    with pytest.raises(ArchiveError) as excinfo:
        extract_archive(archive, site / "out")
    assert "broken.zip" in str(excinfo.value)
    assert "re-download" in str(excinfo.value)
    assert _snapshot(site) == before


def test_missing_archive(site: Path) -> None:
    with pytest.raises(ArchiveError, match=r"nope\.zip"):
        extract_archive(site / "nope.zip", site / "out")
    assert not (site / "out").exists()


@pytest.mark.parametrize("deflate", [False, True], ids=["stored", "deflated"])
@pytest.mark.parametrize("overwrite", [False, True], ids=["new-dest", "overwritten-dest"])
def test_crc_corrupted_member(site: Path, deflate: bool, overwrite: bool) -> None:
    text = b"".join(b"line %d of a metadata file\n" % i for i in range(5000))
    archive = _write_zip(
        site / "export.zip", [("good.txt", b"fine"), (_info("bad.json", deflate=deflate), text)]
    )
    start, length = _data_offset(archive, "bad.json")
    raw = bytearray(archive.read_bytes())
    raw[start + length // 2] ^= 0xFF
    archive.write_bytes(bytes(raw))
    if overwrite:
        (site / "out").mkdir()
        (site / "out" / "old.txt").write_bytes(b"old")
    before = _snapshot(site)
    with pytest.raises(ArchiveError, match=r"'bad\.json'"):
        extract_archive(archive, site / "out", overwrite=overwrite)
    assert _snapshot(site) == before


# --- progress and interruption -------------------------------------------------------


def test_progress_reaches_the_total(site: Path) -> None:
    members = _export_members()
    archive = _write_zip(site / "export.zip", members)
    total = sum(len(data) for data in _expected_files(members).values())
    calls: list[tuple[int, int]] = []
    extract_archive(archive, site / "out", on_progress=lambda done, tot: calls.append((done, tot)))
    assert calls[0] == (0, total)
    assert calls[-1] == (total, total)
    assert [done for done, _ in calls] == sorted(done for done, _ in calls)


@pytest.mark.parametrize("interrupt", [KeyboardInterrupt, RuntimeError])
@pytest.mark.parametrize("overwrite", [False, True], ids=["new-dest", "overwritten-dest"])
def test_interrupted_extraction_leaves_nothing(
    site: Path, interrupt: type[BaseException], overwrite: bool
) -> None:
    archive = _write_zip(site / "export.zip", _export_members())
    if overwrite:
        (site / "out").mkdir()
        (site / "out" / "old.txt").write_bytes(b"old")
    before = _snapshot(site)
    calls = 0

    def on_progress(done: int, total: int) -> None:
        nonlocal calls
        calls += 1
        if calls == 3:
            raise interrupt("stop")

    with pytest.raises(interrupt):
        extract_archive(archive, site / "out", overwrite=overwrite, on_progress=on_progress)
    assert _snapshot(site) == before


def _patch_member_header(
    path: Path, *, flags: int | None = None, method: int | None = None
) -> None:
    """Rewrite the (only) member's flag bits or compression method in both headers."""
    raw = bytearray(path.read_bytes())
    central = raw.rfind(b"PK\x01\x02")
    for field, local_at, central_at in ((flags, 6, 8), (method, 8, 10)):
        if field is not None:
            struct.pack_into("<H", raw, local_at, field)
            struct.pack_into("<H", raw, central + central_at, field)
    path.write_bytes(bytes(raw))


@pytest.mark.parametrize(
    ("patch", "reason"),
    [({"flags": 0x1}, "is encrypted"), ({"method": 99}, "cannot be read")],
    ids=["encrypted", "unknown-method"],
)
def test_unreadable_member(site: Path, patch: dict[str, int], reason: str) -> None:
    archive = _write_zip(site / "export.zip", [("secret.bin", b"data")])
    _patch_member_header(archive, **patch)
    before = _snapshot(site)
    with pytest.raises(ArchiveError, match=rf"'secret\.bin' {reason}"):
        extract_archive(archive, site / "out")
    assert _snapshot(site) == before


def test_dest_filled_during_extraction_is_not_replaced(site: Path) -> None:
    archive = _write_zip(site / "export.zip", _export_members())
    (site / "out").mkdir()

    def someone_else_writes(done: int, total: int) -> None:
        (site / "out" / "theirs.txt").write_bytes(b"theirs")

    with pytest.raises(MaterializeError, match="not empty"):
        extract_archive(archive, site / "out", on_progress=someone_else_writes)
    assert _snapshot(site / "out") == {"theirs.txt": ("file", b"theirs")}
    assert sorted(p.name for p in site.iterdir()) == ["export.zip", "out", "outside"]


def test_unwritable_target_is_one_clear_error(tmp_path: Path) -> None:
    """A folder the extraction cannot write into (immutable for root, 0o555 otherwise)."""
    archive = tmp_path / "a.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        zf.writestr("metadata.json", "{}")
    parent = tmp_path / "locked"
    parent.mkdir()
    with read_only(parent), pytest.raises(MaterializeError, match="cannot extract into"):
        extract_archive(archive, parent / "out")
    assert list(parent.iterdir()) == []
