"""``vlanalyze materialize`` through CliRunner and real subprocesses (kill -9, then resume)."""

from __future__ import annotations

import contextlib
import io
import os
import shutil
import signal
import socket
import subprocess
import sys
import textwrap
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import polars as pl
import pytest
from click.testing import CliRunner, Result
from conftest import error_line, read_only
from materialize_kit import item, jpeg, tree, write_export, write_images

import vlanalyze as vla
from vlanalyze._fs import MAX_NAME_BYTES, TEMP_NAME_OVERHEAD
from vlanalyze.cli import main, materialize_cmds
from vlanalyze.materialize import _layouts, _plan
from vlanalyze.testing import DEMO_DATASET_ID, StandIn, write_demo_export

REPO = Path(__file__).resolve().parents[1]
IDS = [f"{n:08d}-0000-4000-8000-000000000000" for n in range(1, 6)]


@pytest.fixture
def export(tmp_path: Path) -> Path:
    items = [
        item(m, f"clip{n % 2}/frame.jpg" if n < 4 else f"p/{n}.jpg") for n, m in enumerate(IDS)
    ]
    return write_export(tmp_path / "export", items)


@pytest.fixture
def sel(tmp_path: Path) -> Path:
    path = tmp_path / "sel.csv"
    pl.DataFrame({"media_id": IDS[:3], "score": [1, 2, 3]}).write_csv(path)
    return path


def _cli(*args: str, **kw: object) -> Result:
    return CliRunner().invoke(main, ["materialize", *args], **kw)  # type: ignore[arg-type]


def test_choices_match_the_library() -> None:
    assert materialize_cmds.LAYOUTS == _layouts.LAYOUTS
    assert materialize_cmds.MODES == _plan.MODES


def test_run_then_nothing_to_do(export: Path, sel: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    first = _cli(str(export), str(sel), "-o", str(out), "-q")
    assert first.exit_code == 0, first.output
    assert first.stdout.startswith("Wrote 3 images") and "0 up to date" in first.stdout
    second = _cli(str(export), str(sel), "-o", str(out), "-q")
    assert second.exit_code == 0 and second.stdout.startswith("Nothing to do: 3 items")
    assert len(tree(out)) == 6  # 3 images, manifest, record (JSON and files table)


def test_dry_run_writes_nothing(export: Path, sel: Path, tmp_path: Path) -> None:
    result = _cli(str(export), str(sel), "-o", str(tmp_path / "out"), "--dry-run", "-q")
    assert result.exit_code == 0, result.output
    assert "write:     3 images" in result.stdout and "Dry run" in result.stdout
    assert not (tmp_path / "out").exists()


def test_selection_from_stdin_and_sql(export: Path, tmp_path: Path) -> None:
    sql = CliRunner().invoke(
        main, ["sql", str(export), "SELECT media_id, 'val' AS split FROM media", "-f", "csv"]
    )
    assert sql.exit_code == 0, sql.output
    out = tmp_path / "out"
    result = _cli(str(export), "-", "-o", str(out), "--layout", "yolo", "-q", input=sql.stdout)
    assert result.exit_code == 0, result.output
    assert len(list((out / "images" / "val").iterdir())) == 5
    assert "val: images/val" in (out / "data.yaml").read_text()


def test_selection_without_media_id_is_one_error_line(export: Path, tmp_path: Path) -> None:
    bad = tmp_path / "bad.csv"
    bad.write_text("id,label\nx,y\n")
    line = error_line(_cli(str(export), str(bad), "-o", str(tmp_path / "o")))
    assert "no media_id column (columns: id, label)" in line
    assert not (tmp_path / "o").exists()


def test_conflict_exits_1_and_lists_it(export: Path, sel: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    out.mkdir()
    plan = vla.plan_materialize(vla.open_export(export), sel, out)
    victim = out / plan.table["dest"][1]
    victim.write_text("mine")
    line = error_line(_cli(str(export), str(sel), "-o", str(out), "-q"))
    assert victim.name in line and "nothing was written" in line
    assert tree(out) == {victim.name: b"mine"}


def test_labels_differing_only_in_case_exit_1(export: Path, tmp_path: Path) -> None:
    """`Cat` and `cat` would be two folders here and one class on macOS and Windows."""
    sel = tmp_path / "labels.csv"
    pl.DataFrame({"media_id": IDS[:2], "label": ["Cat", "cat"]}).write_csv(sel)
    out = tmp_path / "out"
    line = error_line(_cli(str(export), str(sel), "-o", str(out), "--layout", "by-label"))
    assert "'Cat/' and 'cat/'" in line and "differing only in case" in line
    assert not out.exists()


def test_a_colon_in_a_file_name_needs_no_template(tmp_path: Path) -> None:
    """The default name makes `12:00:01.jpg` safe; a --name that keeps it says so."""
    export = write_export(tmp_path / "export", [item(IDS[0], "cam/12:00:01.jpg")])
    sel = tmp_path / "sel.csv"
    sel.write_text(f"media_id\n{IDS[0]}\n")
    out = tmp_path / "out"
    result = _cli(str(export), str(sel), "-o", str(out), "-q")
    assert result.exit_code == 0, result.output
    assert (out / f"12_00_01__{IDS[0][:8]}.jpg").read_bytes() == jpeg("cam/12:00:01.jpg")
    line = error_line(_cli(str(export), str(sel), "-o", str(tmp_path / "o2"), "--name",
                           "{file_name}"))  # fmt: skip
    assert "'12:00:01.jpg'" in line and "change the name template (--name" in line
    assert not (tmp_path / "o2").exists()


def test_names_near_255_bytes_are_written_in_every_layout_and_mode(tmp_path: Path) -> None:
    """File names of 244 to 304 bytes (Linux allows 255; an export's ``file_name`` any):
    every file is written through a temporary name 27 bytes longer than its own, so the
    default name leaves room for it, and for a YOLO label file ``<stem>.txt`` beside an
    image without extension. A YOLO run, a rewrite of out-of-date copies and symlinks
    replacing them all complete (they failed with "File name too long")."""
    names = ["x" * 300 + ".jpg", "y" * 240 + ".jpg", "\u00e9" * 140 + ".jpg", "z" * 300,
             "w" * 300 + ".ab"]  # fmt: skip
    items = [item(m, f"p/{n}.jpg", file_name=f, boxes=[("cat", (1, 2, 3, 4))])
             for n, (m, f) in enumerate(zip(IDS, names, strict=True))]  # fmt: skip
    export = write_export(tmp_path / "export", items)
    sel = tmp_path / "sel.csv"
    pl.DataFrame({"media_id": IDS}).write_csv(sel)

    def longest(out: Path) -> int:
        return max(len(path.name.encode()) for path in out.rglob("*"))

    yolo = tmp_path / "yolo"
    result = _cli(str(export), str(sel), "-o", str(yolo), "--layout", "yolo", "-q")
    assert result.exit_code == 0, result.output
    assert len(list((yolo / "labels" / "train").iterdir())) == 5
    assert longest(yolo) == MAX_NAME_BYTES == 255 - TEMP_NAME_OVERHEAD
    flat = tmp_path / "flat"
    assert _cli(str(export), str(sel), "-o", str(flat), "-q").exit_code == 0
    for source in (export / "images" / "p").iterdir():
        os.utime(source, ns=(1, 1))  # `touch`: every copy is out of date
    again = _cli(str(export), str(sel), "-o", str(flat), "-q")
    assert again.exit_code == 0, again.output
    assert again.stdout.startswith("Wrote 5 images")
    linked = _cli(str(export), str(sel), "-o", str(flat), "--mode", "symlink", "-q")
    assert linked.exit_code == 0, linked.output
    assert linked.stdout.startswith("Linked 5 images")
    images = [path for path in flat.iterdir() if not path.name.startswith(("manifest", "vla"))]
    assert len(images) == 5 and all(path.is_symlink() for path in images)
    assert longest(flat) == MAX_NAME_BYTES


def test_an_edited_file_is_never_overwritten(export: Path, sel: Path, tmp_path: Path) -> None:
    """`echo "my edit" > OUT/<image>`, then the same command: exit 1, the edit kept."""
    out = tmp_path / "out"
    assert _cli(str(export), str(sel), "-o", str(out), "-q").exit_code == 0
    victim = sorted(out.glob("*.jpg"))[0]
    victim.write_text("my edit\n")
    before = tree(out)
    line = error_line(_cli(str(export), str(sel), "-o", str(out), "-q"))
    assert victim.name in line and "changed since" in line and "nothing was written" in line
    assert tree(out) == before


def test_missing_images_exit_1(tmp_path: Path, sel: Path) -> None:
    bare = write_export(tmp_path / "bare", [item(m, f"p/{m}.jpg") for m in IDS], images=False)
    line = error_line(_cli(str(bare), str(sel), "-o", str(tmp_path / "o"), "-q"))
    assert "3 selected image(s) are not in the export" in line and IDS[0] in line
    assert "--fetch-missing" in line and not (tmp_path / "o").exists()


def test_links_are_reported_as_linked_without_a_size(export: Path, sel: Path) -> None:
    out = export.parent / "linked"
    dry = _cli(str(export), str(sel), "-o", str(out), "--mode", "symlink", "--dry-run")
    assert dry.exit_code == 0 and "  write:     3 images\n" in dry.stdout
    result = _cli(str(export), str(sel), "-o", str(out), "--mode", "symlink", "-q")
    assert result.exit_code == 0, result.output
    assert result.stdout.startswith("Linked 3 images, 0 up to date in ")
    assert all(p.is_symlink() for p in out.glob("*.jpg")) and len(list(out.glob("*.jpg"))) == 3


def test_hardlink_across_filesystems_names_mode_copy(export: Path, sel: Path) -> None:
    other = Path("/dev/shm")
    if not os.access(other, os.W_OK) or other.stat().st_dev == export.stat().st_dev:
        pytest.skip("no second writable filesystem (/dev/shm) here")
    out = other / f"vla-cli-{os.getpid()}"
    try:
        line = error_line(_cli(str(export), str(sel), "-o", str(out), "--mode", "hardlink"))
        assert "--mode copy" in line
    finally:
        shutil.rmtree(out, ignore_errors=True)


def test_images_root_and_prune(tmp_path: Path, sel: Path) -> None:
    bare = write_export(tmp_path / "bare", [item(m, f"p/{m}.jpg") for m in IDS], images=False)
    root = tmp_path / "dataset"
    write_images(root, [f"p/{m}.jpg" for m in IDS])
    out = tmp_path / "out"
    args = [str(bare), str(sel), "-o", str(out), "--images-root", str(root), "-q"]
    assert _cli(*args, "--layout", "by-label").exit_code == 0
    one = tmp_path / "one.csv"
    one.write_text(f"media_id\n{IDS[0]}\n")
    args[1] = str(one)
    result = _cli(*args, "--layout", "by-label", "--prune")
    assert result.exit_code == 0, result.output
    assert "pruned 2" in result.stdout
    assert [p for p in tree(out) if p.endswith(".jpg")] == [f"unlabeled/{IDS[0]}__{IDS[0][:8]}.jpg"]


# --- --fetch-missing: a selective export from the stand-in, then on --------------------


def test_fetch_missing_pulls_exactly_the_missing_media(tmp_path: Path) -> None:
    served = write_demo_export(tmp_path / "served", items=4)
    local = tmp_path / "local"
    local.mkdir()
    shutil.copy(served / "metadata.json", local / "metadata.json")  # metadata only
    (local / "images").mkdir()
    ex = vla.open_export(local)
    ids = ex.media.select("media_id").collect()["media_id"].to_list()
    shutil.copy(served / "images" / "img_000.jpg", local / "images" / "img_000.jpg")
    sel = tmp_path / "sel.csv"
    pl.DataFrame({"media_id": ids[:3]}).write_csv(sel)
    out = tmp_path / "out"
    with StandIn(served) as server:
        server.polls_to_complete = 0
        env = {
            "VL_BASE_URL": server.base_url,
            "VL_API_KEY": server.api_key or "",
            "VL_API_SECRET": server.api_secret or "",
            "VL_TOKEN": "",
        }
        args = [str(local), str(sel), "-o", str(out), "-q", "--fetch-missing", DEMO_DATASET_ID]
        result = _cli(*args, env=env)
        assert result.exit_code == 0, result.output
        (task,) = server.tasks.values()
    assert task.include_images
    asked = task.selection[0]["payload"]["media_ids"] if task.selection else []
    assert sorted(asked) == sorted(ids[1:3])  # the one the export had was not asked for
    files = {k: v for k, v in tree(out).items() if k.endswith(".jpg")}
    assert len(files) == 3
    served_bytes = {(served / "images" / f"img_{n:03d}.jpg").read_bytes() for n in range(3)}
    assert set(files.values()) == served_bytes
    fetched = list(tmp_path.glob("out-fetched-*"))
    assert len(fetched) == 1 and (fetched[0] / "metadata.json").is_file()
    again = _cli(*args, env={"VL_BASE_URL": "http://127.0.0.1:9"})  # no server: not needed
    assert again.exit_code == 0 and again.stdout.startswith("Nothing to do"), again.output


def test_a_broken_off_fetch_resumes_on_the_next_run(tmp_path: Path) -> None:
    """A download cut midway: the error says to run again, and the next run resumes the
    same export task (no second export), leaving no partial download behind."""
    served, sel, _ids = _half_local(tmp_path)
    local, out = tmp_path / "local", tmp_path / "out"
    args = [str(local), str(sel), "-o", str(out), "-q", "--fetch-missing", DEMO_DATASET_ID]
    with StandIn(served) as server:
        server.polls_to_complete = 0
        server.truncate_downloads = 100  # (more than the downloader's own retries)
        line = error_line(_cli(*args, env=_stand_in_env(server)))
        assert "run the same command again" in line and "--task-id" not in line
        assert list(tmp_path.glob(".out-fetched-*.part"))
        server.truncate_downloads = 0
        result = _cli(*args, env=_stand_in_env(server))
        assert result.exit_code == 0, result.output
        assert len(server.tasks) == 1  # resumed, not exported twice
    assert len([k for k in tree(out) if k.endswith(".jpg")]) == 3
    assert not list(tmp_path.glob(".out-fetched-*.part"))


def test_a_broken_off_fetch_whose_task_is_gone_starts_a_new_export(tmp_path: Path) -> None:
    """The server forgot the task (expired, restarted): the next run drops the partial
    download and exports again, instead of failing on that task forever."""
    served, sel, _ids = _half_local(tmp_path)
    local, out = tmp_path / "local", tmp_path / "out"
    args = [str(local), str(sel), "-o", str(out), "-q", "--fetch-missing", DEMO_DATASET_ID]
    with StandIn(served) as server:
        server.polls_to_complete = 0
        server.truncate_downloads = 100
        assert "run the same command again" in error_line(_cli(*args, env=_stand_in_env(server)))
        server.truncate_downloads = 0
        server.tasks.clear()
        result = _cli(*args, env=_stand_in_env(server))
        assert result.exit_code == 0, result.output
        assert "starting a new export" in result.stderr
        assert len(server.tasks) == 1
    assert len([k for k in tree(out) if k.endswith(".jpg")]) == 3
    assert not list(tmp_path.glob(".out-fetched-*"))


def test_a_fetched_archive_that_fails_to_extract_is_not_left_behind(tmp_path: Path) -> None:
    served, sel, _ids = _half_local(tmp_path)
    archive = tmp_path / "served.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        for path in sorted(served.rglob("*")):
            if path.is_file():
                zf.write(path, path.relative_to(served).as_posix())
    data = bytearray(archive.read_bytes())
    with zipfile.ZipFile(archive) as zf:
        info = zf.getinfo("images/img_001.jpg")
    data[info.header_offset + 30 + len(info.filename) + len(info.extra) + 5] ^= 0xFF
    archive.write_bytes(bytes(data))
    local, out = tmp_path / "local", tmp_path / "out"
    args = [str(local), str(sel), "-o", str(out), "-q", "--fetch-missing", DEMO_DATASET_ID]
    with StandIn(served, archive_file=archive) as server:
        server.polls_to_complete = 0
        for _ in range(2):
            line = error_line(_cli(*args, env=_stand_in_env(server)))
            assert "corrupt" in line
            assert not list(tmp_path.glob(".out-fetched-*"))  # no hidden archive piles up
    assert not out.exists()


def test_images_fetched_earlier_are_reused_when_the_selection_changes(tmp_path: Path) -> None:
    """Following the hint (leave out what Visual Layer lacks) or growing the selection
    fetches only what no earlier fetch beside OUT holds."""
    served, sel, ids = _half_local(tmp_path)
    local, out = tmp_path / "local", tmp_path / "out"
    args = [str(local), str(sel), "-o", str(out), "-q", "--fetch-missing", DEMO_DATASET_ID]
    with StandIn(served) as server:
        server.polls_to_complete = 0
        assert _cli(*args, env=_stand_in_env(server)).exit_code == 0  # ids[1:3] fetched
        pl.DataFrame({"media_id": ids[1:4]}).write_csv(sel)  # ids[3] is new
        result = _cli(*args, env=_stand_in_env(server))
        assert result.exit_code == 0, result.output
        second = [t for t in server.tasks.values() if t.selection][-1]
        assert second.selection[0]["payload"]["media_ids"] == [ids[3]]
        assert len(server.tasks) == 2
        pl.DataFrame({"media_id": ids[1:3]}).write_csv(sel)  # all fetched already
        again = _cli(*args, env={"VL_BASE_URL": "http://127.0.0.1:9"})  # no server needed
        assert again.exit_code == 0, again.output
    assert len(server.tasks) == 2


def test_an_export_that_does_not_finish_times_out(tmp_path: Path) -> None:
    served, sel, _ids = _half_local(tmp_path)
    local, out = tmp_path / "local", tmp_path / "out"
    args = [str(local), str(sel), "-o", str(out), "--fetch-missing", DEMO_DATASET_ID]
    with StandIn(served) as server:
        server.polls_to_complete = 10**9
        line = error_line(_cli(*args, "--fetch-timeout", "1", env=_stand_in_env(server)))
    assert "timeout" in line and "--fetch-timeout" in line and "--task-id" not in line
    assert not out.exists()


def test_images_the_fetched_export_lacks_are_named(tmp_path: Path) -> None:
    served, sel, ids = _half_local(tmp_path)
    (served / "images" / "img_002.jpg").unlink()  # Visual Layer's export lacks it too
    local, out = tmp_path / "local", tmp_path / "out"
    args = [str(local), str(sel), "-o", str(out), "-q", "--fetch-missing", DEMO_DATASET_ID]
    with StandIn(served) as server:
        server.polls_to_complete = 0
        line = error_line(_cli(*args, env=_stand_in_env(server)))
    assert f"not in Visual Layer's export of dataset {DEMO_DATASET_ID} either" in line
    assert ids[2] in line and "to fetch again" in line and not out.exists()


# --- kill -9 in the middle, run again: complete and byte-identical ------------------------

_CHILD = textwrap.dedent(
    """
    import os, signal, sys
    import vlanalyze as vla

    export, sel, out, kill = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4] == "kill"
    plan = vla.plan_materialize(vla.open_export(export), sel, out, layout="yolo")

    def on_progress(done, total):
        if kill and done < total:
            os.kill(os.getpid(), signal.SIGKILL)  # mid-run: other files are being written

    vla.materialize(plan, on_progress=on_progress, workers=1)
    """
)


@pytest.mark.slow
def test_resume_after_sigkill_is_complete_and_identical(tmp_path: Path) -> None:
    n = 3000
    ids = [f"{i:08x}-0000-4000-8000-000000000000" for i in range(n)]
    items = [
        item(m, f"v{i % 7}/frame_{i // 7}.jpg", boxes=[("thing", (1, 2, 3, 4))])
        for i, m in enumerate(ids)
    ]
    export = write_export(tmp_path / "export", items, images=False)
    write_images(export / "images", [str(i["file_path"]) for i in items], pad=20_000)
    sel = tmp_path / "sel.csv"
    pl.DataFrame({"media_id": ids, "split": ["train", "val"] * (n // 2)}).write_csv(sel)
    vla.open_export(export)  # build the cache once, outside the timed children
    child = tmp_path / "child.py"
    child.write_text(_CHILD)

    def run(out: Path, kill: bool) -> subprocess.CompletedProcess[str]:
        cmd = [sys.executable, str(child), str(export), str(sel), str(out), "kill" if kill else ""]
        return subprocess.run(cmd, capture_output=True, text=True, timeout=300, cwd=REPO)

    killed = run(tmp_path / "a" / "out", kill=True)
    assert killed.returncode == -signal.SIGKILL, killed.stderr
    partial = tree(tmp_path / "a" / "out")
    assert 0 < sum(p.endswith(".jpg") for p in partial) < n  # really interrupted midway
    assert run(tmp_path / "a" / "out", kill=False).returncode == 0
    assert run(tmp_path / "b" / "out", kill=False).returncode == 0
    resumed, clean = tree(tmp_path / "a" / "out"), tree(tmp_path / "b" / "out")
    tables = []
    for files in (resumed, clean):
        files.pop("vlanalyze-materialize.json")
        files.pop("data.yaml")  # names its own folder
        # (the files table holds each file's mtime as written: its paths and sizes match)
        table = pl.read_parquet(io.BytesIO(files.pop("vlanalyze-materialize-files.parquet")))
        assert table["mtime_ns"].null_count() == 0
        tables.append(table.drop("mtime_ns"))
    assert tables[0].equals(tables[1])
    assert resumed == clean and sum(p.endswith(".jpg") for p in clean) == n
    leftovers = [p for p in (tmp_path / "a").rglob("*") if ".vla-tmp-" in p.name]
    assert leftovers == []


# --- object storage: moto's S3 server on loopback -----------------------------------------


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextlib.contextmanager
def _moto_s3(monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[str, Any]]:
    """A moto S3 server on loopback (skips without moto, s3fs or boto3): its endpoint and
    a boto3 client of it, with a ``data`` bucket; stopped on leaving."""
    server_mod = pytest.importorskip("moto.server", reason="moto[server] is not installed")
    pytest.importorskip("s3fs", reason="s3fs is not installed (pip install 'vlanalyze[cloud]')")
    boto3 = pytest.importorskip("boto3", reason="boto3 is not installed")
    for key in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
        monkeypatch.setenv(key, "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    port = _free_port()
    server = server_mod.ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    try:
        endpoint = f"http://127.0.0.1:{port}"
        s3 = boto3.client("s3", endpoint_url=endpoint)
        s3.create_bucket(Bucket="data")
        yield endpoint, s3
    finally:
        server.stop()


@pytest.mark.slow
def test_images_root_on_s3(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with _moto_s3(monkeypatch) as (endpoint, s3):
        for m in IDS:
            s3.put_object(Bucket="data", Key=f"prefix/p/{m}.jpg", Body=jpeg(m))
        bare = write_export(tmp_path / "bare", [item(m, f"p/{m}.jpg") for m in IDS], images=False)
        ex = vla.open_export(bare)
        options = {"endpoint_url": endpoint}
        plan = vla.plan_materialize(
            ex, pl.DataFrame({"media_id": IDS}), tmp_path / "out",
            images_root="s3://data/prefix", storage_options=options,
        )  # fmt: skip
        assert plan.summary()["write"] == 5
        assert plan.table["source"][0] == f"s3://data/prefix/p/{IDS[0]}.jpg"
        result = vla.materialize(plan)
        assert result.written == 5
        got = {k: v for k, v in tree(tmp_path / "out").items() if k.endswith(".jpg")}
        assert sorted(got.values()) == sorted(jpeg(m) for m in IDS)
        again = vla.plan_materialize(
            ex, pl.DataFrame({"media_id": IDS}), tmp_path / "out",
            images_root="s3://data/prefix", storage_options=options,
        )  # fmt: skip
        assert again.summary()["skip"] == 5
        assert vla.materialize(again, verify=True).nothing_to_do
        with pytest.raises(vla.MaterializeError, match="inside an object store"):
            vla.plan_materialize(
                ex, pl.DataFrame({"media_id": IDS}), tmp_path / "o2", mode="symlink",
                images_root="s3://data/prefix", storage_options=options,
            )  # fmt: skip


@pytest.mark.slow
def test_object_store_gone_while_copying(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The store answers the plan's listing, then goes away: reading an image is one
    MaterializeError naming its URL, not botocore's traceback."""
    monkeypatch.setenv("AWS_MAX_ATTEMPTS", "1")  # one refused connection, no retries
    with _moto_s3(monkeypatch) as (endpoint, s3):
        s3.put_object(Bucket="data", Key=f"prefix/p/{IDS[0]}.jpg", Body=jpeg(IDS[0]))
        bare = write_export(tmp_path / "bare", [item(IDS[0], f"p/{IDS[0]}.jpg")], images=False)
        plan = vla.plan_materialize(
            vla.open_export(bare), pl.DataFrame({"media_id": IDS[:1]}), tmp_path / "out",
            images_root="s3://data/prefix", storage_options={"endpoint_url": endpoint},
        )  # fmt: skip
        assert plan.summary()["write"] == 1
    with pytest.raises(vla.MaterializeError) as caught:
        vla.materialize(plan)
    assert str(caught.value).startswith(f"cannot read s3://data/prefix/p/{IDS[0]}.jpg: ")
    assert "check the endpoint, the credentials and the URL" in str(caught.value)
    assert not list((tmp_path / "out").glob("*.jpg"))


def test_save_plan_never_replaces_a_file(export: Path, sel: Path, tmp_path: Path) -> None:
    plan_file = tmp_path / "plan.parquet"
    args = [str(export), str(sel), "-o", str(tmp_path / "out"), "--dry-run", "-q"]
    assert _cli(*args, "--save-plan", str(plan_file)).exit_code == 0
    assert pl.read_parquet(plan_file)["action"].to_list() == ["write"] * 3
    plan_file.write_text("mine")
    line = error_line(_cli(*args, "--save-plan", str(plan_file)))
    assert "already exists" in line and plan_file.read_text() == "mine"


def test_an_empty_output_is_a_usage_error(export: Path, sel: Path, tmp_path: Path) -> None:
    """``-o "$OUT"`` with OUT unset must not fill the current folder."""
    cwd = tmp_path / "cwd"
    cwd.mkdir()
    here = os.getcwd()
    os.chdir(cwd)
    try:
        result = _cli(str(export), str(sel), "-o", "")
    finally:
        os.chdir(here)
    assert result.exit_code == 2 and "--output is empty" in result.output
    assert not list(cwd.iterdir())


def test_an_output_that_is_a_dangling_symlink_is_named(
    export: Path, sel: Path, tmp_path: Path
) -> None:
    (tmp_path / "dang").symlink_to("nowhere")
    line = error_line(_cli(str(export), str(sel), "-o", str(tmp_path / "dang")))
    assert "is a symbolic link to nowhere, which does not exist" in line
    assert "create that folder" in line and not (tmp_path / "nowhere").exists()


def test_a_run_that_stops_saves_no_plan(export: Path, sel: Path, tmp_path: Path) -> None:
    """ "Nothing was written" holds for --save-plan too, so the corrected run can save it."""
    for image in (export / "images").rglob("*.jpg"):
        image.rename(image.with_suffix(".gone"))
    plan_file = tmp_path / "plan.parquet"
    args = [str(export), str(sel), "-o", str(tmp_path / "out"), "--save-plan", str(plan_file)]
    line = error_line(_cli(*args))
    assert "not in the export" in line and "nothing was written" in line
    assert not plan_file.exists()
    for image in (export / "images").rglob("*.gone"):
        image.rename(image.with_suffix(".jpg"))
    assert _cli(*args, "-q").exit_code == 0 and plan_file.is_file()


def test_absolute_links_without_symlinks_is_a_usage_error(
    export: Path, sel: Path, tmp_path: Path
) -> None:
    result = _cli(str(export), str(sel), "-o", str(tmp_path / "o"), "--absolute-links")
    assert result.exit_code == 2 and "--absolute-links is for --mode symlink" in result.output
    assert not (tmp_path / "o").exists()


def test_a_template_without_extension_is_noted(export: Path, sel: Path, tmp_path: Path) -> None:
    """ImageFolder and datasets skip files without an image extension: said on stderr."""
    args = [str(export), str(sel), "-o", str(tmp_path / "o"), "--layout", "by-label"]
    result = _cli(*args, "--name", "{media_id}")
    assert result.exit_code == 0, result.output
    assert "gives 3 names without an extension" in result.stderr
    assert "add {ext}" in result.stderr
    for i, fine_name in enumerate(("{media_id}{ext}", "{media_id}.jpg")):  # a literal one too
        fine = _cli(*args[:3], str(tmp_path / f"o{i}"), *args[4:], "--name", fine_name)
        assert fine.exit_code == 0 and "extension" not in fine.stderr


def test_save_plan_inside_out_is_refused(export: Path, sel: Path, tmp_path: Path) -> None:
    """A plan saved inside OUT would be taken for a file in the way, or written over
    (e.g. as manifest.csv): refused before anything is written."""
    out = tmp_path / "out"
    for inside in (out / "manifest.csv", out / "plans" / "p.parquet"):
        line = error_line(_cli(str(export), str(sel), "-o", str(out), "--save-plan", str(inside)))
        assert "inside the output folder" in line and not out.exists()


def test_hf_metadata_form_is_said(tmp_path: Path) -> None:
    """When the hf metadata has to be Parquet (one split has boxes, the other none), the
    dry run and the run both say so, on stderr."""
    items = [
        item(IDS[0], "a.jpg", boxes=[("cat", (1, 2, 3, 4))]),
        item(IDS[1], "b.jpg"),
    ]
    export = write_export(tmp_path / "export", items)
    sel = tmp_path / "sel.csv"
    pl.DataFrame({"media_id": IDS[:2], "split": ["train", "test"]}).write_csv(sel)
    args = [str(export), str(sel), "-o", str(tmp_path / "out"), "--layout", "hf", "-q"]
    for extra in (["--dry-run"], []):
        result = CliRunner().invoke(main, ["materialize", *args, *extra])
        assert result.exit_code == 0, result.output
        assert "Note: hf: each split's metadata is metadata.parquet" in result.stderr
    assert (tmp_path / "out" / "test" / "metadata.parquet").is_file()


def test_yolo_stand_in_val_is_said(export: Path, sel: Path, tmp_path: Path) -> None:
    """A selection without a split column: every image is in train, data.yaml's val: lists
    the training images, and the dry run and the run both say so, on stderr."""
    args = [str(export), str(sel), "-o", str(tmp_path / "out"), "--layout", "yolo", "-q"]
    for extra in (["--dry-run"], []):
        result = CliRunner().invoke(main, ["materialize", *args, *extra])
        assert result.exit_code == 0, result.output
        assert "Note: yolo: the selection has no val split" in result.stderr
        assert "split column" in result.stderr
    data = (tmp_path / "out" / "data.yaml").read_text()
    assert "\ntrain: images/train\nval: images/train\n" in data


def test_yolo_shared_label_file_is_one_error_line(export: Path, tmp_path: Path) -> None:
    """x.jpg and X.png are two images that Ultralytics would give one label file: one
    error line naming both and the label file. (x.jpg and X.jpg are one image file on
    macOS and Windows: the destinations' own collision error.)"""
    sel = tmp_path / "sel.csv"
    pl.DataFrame({"media_id": [IDS[0], IDS[4]], "label": ["x", "X"]}).write_csv(sel)
    out = tmp_path / "out"
    args = [str(export), str(sel), "-o", str(out), "--layout", "yolo", "--name", "{label}{ext}"]
    line = error_line(_cli(*args))  # IDS[0] is clip0/frame.jpg, IDS[4] p/4.jpg: both .jpg
    assert "collide" in line and not out.exists()
    bare = write_export(tmp_path / "e2", [item(IDS[0], "a/one.jpg"), item(IDS[4], "b/two.png")])
    line = error_line(_cli(str(bare), *args[1:]))
    assert "images/train/x.jpg" in line and "images/train/X.png" in line
    assert "labels/train/x.txt" in line and "{media_id}" in line and not out.exists()


# --- a failing write is one Error: line, naming the path -----------------------------------


def test_output_in_a_read_only_folder_is_one_error_line(
    export: Path, sel: Path, tmp_path: Path
) -> None:
    locked = tmp_path / "locked"
    (locked / "existing").mkdir(parents=True)
    with read_only(locked / "existing"):
        line = error_line(_cli(str(export), str(sel), "-o", str(locked / "existing"), "-q"))
        assert f"cannot write {locked / 'existing'}/vlanalyze-materialize.json" in line
        assert "choose an output folder you can write to" in line
    with read_only(locked):
        line = error_line(_cli(str(export), str(sel), "-o", str(locked / "new" / "out"), "-q"))
        assert f"cannot write {locked / 'new' / 'out'}" in line
        assert "you can write to" in line
    assert tree(locked) == {}


def test_output_at_or_under_a_file_names_the_file(export: Path, sel: Path, tmp_path: Path) -> None:
    ofile = tmp_path / "ofile"
    ofile.write_text("mine")
    for out in (ofile, ofile / "sub", ofile / "sub" / "deeper"):
        line = error_line(_cli(str(export), str(sel), "-o", str(out), "-q"))
        assert line == f"Error: {ofile} is a file, not a folder (choose a folder for the output)"
    assert ofile.read_text() == "mine"


def test_save_plan_where_it_cannot_be_written(export: Path, sel: Path, tmp_path: Path) -> None:
    ofile = tmp_path / "ofile"
    ofile.write_text("mine")
    args = [str(export), str(sel), "-o", str(tmp_path / "out"), "--dry-run", "-q"]
    nodir = tmp_path / "nodir" / "plan.parquet"
    line = error_line(_cli(*args, "--save-plan", str(nodir)))
    assert f"cannot write {nodir}: the folder {nodir.parent} does not exist" in line
    line = error_line(_cli(*args, "--save-plan", str(ofile / "plan.parquet")))
    assert f"{ofile} is a file, not a folder" in line
    locked = tmp_path / "locked"
    locked.mkdir()
    with read_only(locked):
        line = error_line(_cli(*args, "--save-plan", str(locked / "plan.parquet")))
        assert f"cannot write {locked / 'plan.parquet'}" in line
    assert not nodir.parent.exists() and tree(locked) == {} and ofile.read_text() == "mine"


def test_unreachable_object_store_is_one_error_line(tmp_path: Path, sel: Path) -> None:
    s3fs = pytest.importorskip("s3fs", reason="s3fs is not installed (vlanalyze[cloud])")
    bare = write_export(tmp_path / "bare", [item(m, f"p/{m}.jpg") for m in IDS], images=False)
    env = {
        "AWS_ENDPOINT_URL": f"http://127.0.0.1:{_free_port()}",  # nothing listens there
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_MAX_ATTEMPTS": "1",  # one refused connection, not botocore's retries
        "AWS_RETRY_MODE": "standard",
    }
    s3fs.S3FileSystem.clear_instance_cache()  # one made with another endpoint is reused
    try:
        args = [str(bare), str(sel), "-o", str(tmp_path / "o"), "--images-root", "s3://bkt/pre"]
        line = error_line(_cli(*args, "-q", env=env))
    finally:
        s3fs.S3FileSystem.clear_instance_cache()
    assert line.startswith("Error: cannot list s3://bkt/pre: EndpointConnectionError")
    assert "check the endpoint, the credentials and the URL" in line
    assert "list-type" not in line  # the request's query string is not shown
    assert not (tmp_path / "o").exists()


# --- --dry-run writes and fetches nothing, and lists every problem ------------------------


def _half_local(tmp_path: Path) -> tuple[Path, Path, list[str]]:
    """A demo export served in full, and a local copy with the metadata and one image;
    a selection of three (two of them missing locally)."""
    served = write_demo_export(tmp_path / "served", items=4)
    local = tmp_path / "local"
    (local / "images").mkdir(parents=True)
    shutil.copy(served / "metadata.json", local / "metadata.json")
    shutil.copy(served / "images" / "img_000.jpg", local / "images" / "img_000.jpg")
    ids = vla.open_export(local).media.select("media_id").collect()["media_id"].to_list()
    sel = tmp_path / "sel.csv"
    pl.DataFrame({"media_id": ids[:3]}).write_csv(sel)
    return served, sel, ids


def _stand_in_env(server: StandIn) -> dict[str, str]:
    return {
        "VL_BASE_URL": server.base_url,
        "VL_API_KEY": server.api_key or "",
        "VL_API_SECRET": server.api_secret or "",
        "VL_TOKEN": "",
    }


def test_dry_run_with_fetch_missing_fetches_nothing(tmp_path: Path) -> None:
    served, sel, ids = _half_local(tmp_path)
    out = tmp_path / "out"
    with StandIn(served) as server:
        server.polls_to_complete = 0
        args = [str(tmp_path / "local"), str(sel), "-o", str(out), "--dry-run", "-q"]
        result = _cli(*args, "--fetch-missing", DEMO_DATASET_ID, env=_stand_in_env(server))
        assert result.exit_code == 0, result.output
        assert server.tasks == {} and server.requests == []
    assert "  missing:   2 (--fetch-missing would fetch them)" in result.stdout
    assert f"\n  {ids[1]}\n  {ids[2]}\n" in result.stdout
    assert result.stdout.rstrip().endswith("Dry run: nothing was written or fetched.")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["local", "sel.csv", "served"]


def test_a_conflict_stops_fetch_missing_before_it_downloads(tmp_path: Path) -> None:
    served, sel, _ids = _half_local(tmp_path)
    out = tmp_path / "out"
    plan = vla.plan_materialize(vla.open_export(tmp_path / "local"), sel, out)
    out.mkdir()
    victim = out / plan.table["dest"][0]  # the image the export has: a conflict anyway
    victim.write_text("mine")
    with StandIn(served) as server:
        args = [str(tmp_path / "local"), str(sel), "-o", str(out), "-q"]
        line = error_line(
            _cli(*args, "--fetch-missing", DEMO_DATASET_ID, env=_stand_in_env(server))
        )
        assert server.tasks == {} and server.requests == []
    assert victim.name in line and "nothing was written" in line
    assert tree(out) == {victim.name: b"mine"} and not list(tmp_path.glob("out-fetched-*"))


def test_dry_run_lists_every_conflict_and_missing_image(tmp_path: Path) -> None:
    ids = [f"{n:08d}-0000-4000-8000-000000000000" for n in range(1, 8)]
    export = write_export(tmp_path / "e", [item(m, f"p/{m}.jpg") for m in ids], images=False)
    sel = tmp_path / "sel.csv"
    pl.DataFrame({"media_id": ids}).write_csv(sel)
    out = tmp_path / "out"
    line = error_line(_cli(str(export), str(sel), "-o", str(out), "-q"))
    assert f"7 selected image(s) are not in the export or images root: {ids[0]}" in line
    assert "and 2 more; nothing was written" in line and ids[6] not in line
    assert "--dry-run lists them all" in line
    dry = _cli(str(export), str(sel), "-o", str(out), "--dry-run", "-q")
    assert "they are listed above" in error_line(dry)
    assert "Missing (media ids whose image was found nowhere):\n" in dry.stdout
    assert [m for m in ids if f"\n  {m}\n" in dry.stdout] == ids

    write_images(export / "images", [f"p/{m}.jpg" for m in ids])
    plan = vla.plan_materialize(vla.open_export(export), sel, out)
    out.mkdir()
    dests = plan.table["dest"].to_list()
    for dest in dests:
        (out / dest).write_text("mine")
    line = error_line(_cli(str(export), str(sel), "-o", str(out), "-q"))
    assert "7 file(s)" in line and "and 2 more" in line and "--dry-run lists them all" in line
    dry = _cli(str(export), str(sel), "-o", str(out), "--dry-run", "-q")
    assert (
        "Conflicts (files vlanalyze did not write, or that changed since, in the way):\n"
        in dry.stdout
    )
    assert [d for d in dests if f"\n  {d}\n" in dry.stdout] == dests
    assert dry.exit_code == 1 and all(p.read_text() == "mine" for p in out.iterdir())


def test_a_file_in_the_way_of_a_folder_is_named(export: Path, sel: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    out.mkdir()
    (out / "unlabeled").write_text("mine")  # by-label needs the folder unlabeled/
    args = [str(export), str(sel), "-o", str(out), "--layout", "by-label", "-q"]
    line = error_line(_cli(*args))
    assert "1 file(s)" in line and "in the way: unlabeled; nothing was written" in line
    dry = _cli(*args, "--dry-run")
    assert "  conflicts: 1\n" in dry.stdout and "in the way):\n  unlabeled\n" in dry.stdout


# --- a run says what it wrote -------------------------------------------------------------


def test_csv_layout_says_it_wrote_the_manifest(export: Path, sel: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    args = [str(export), str(sel), "-o", str(out), "--layout", "csv", "-q"]
    first = _cli(*args)
    assert first.exit_code == 0, first.output
    assert first.stdout == f"Wrote manifest.csv (3 items) in {out} (csv)\n"
    assert _cli(*args).stdout.startswith("Nothing to do: 3 items")
    two = tmp_path / "two.csv"
    pl.DataFrame({"media_id": IDS[3:]}).write_csv(two)
    args[1] = str(two)
    switched = _cli(*args)
    assert switched.stdout == f"Wrote manifest.csv (2 items) in {out} (csv)\n"
    assert pl.read_csv(out / "manifest.csv")["media_id"].to_list() == IDS[3:]


def test_files_that_left_the_selection_are_mentioned(
    export: Path, sel: Path, tmp_path: Path
) -> None:
    out = tmp_path / "out"
    assert _cli(str(export), str(sel), "-o", str(out), "-q").exit_code == 0
    one = tmp_path / "one.csv"
    pl.DataFrame({"media_id": IDS[:1]}).write_csv(one)
    result = _cli(str(export), str(one), "-o", str(out), "-q")
    assert result.exit_code == 0, result.output
    assert result.stdout.startswith("Wrote manifest.csv (1 items), 1 images up to date in ")
    note = "Note: 2 files from an earlier run are no longer selected; --prune removes them"
    assert note in result.stderr
    again = _cli(str(export), str(one), "-o", str(out), "-q")
    assert again.stdout.startswith("Nothing to do") and note in again.stderr
    pruned = _cli(str(export), str(one), "-o", str(out), "-q", "--prune")
    assert "pruned 2" in pruned.stdout and "earlier run" not in pruned.stderr
