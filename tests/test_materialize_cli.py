"""``vlanalyze materialize`` through CliRunner and real subprocesses (kill -9, then resume)."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import textwrap
from pathlib import Path

import polars as pl
import pytest
from click.testing import CliRunner, Result
from conftest import error_line
from materialize_kit import item, jpeg, tree, write_export, write_images

import vlanalyze as vla
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
    for files in (resumed, clean):
        files.pop("vlanalyze-materialize.json")
        files.pop("data.yaml")  # names its own folder
    assert resumed == clean and sum(p.endswith(".jpg") for p in clean) == n
    leftovers = [p for p in (tmp_path / "a").rglob("*") if ".vla-tmp-" in p.name]
    assert leftovers == []


# --- object storage: moto's S3 server on loopback -----------------------------------------


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.mark.slow
def test_images_root_on_s3(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
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
    finally:
        server.stop()


def test_save_plan_never_replaces_a_file(export: Path, sel: Path, tmp_path: Path) -> None:
    plan_file = tmp_path / "plan.parquet"
    args = [str(export), str(sel), "-o", str(tmp_path / "out"), "--dry-run", "-q"]
    assert _cli(*args, "--save-plan", str(plan_file)).exit_code == 0
    assert pl.read_parquet(plan_file)["action"].to_list() == ["write"] * 3
    plan_file.write_text("mine")
    line = error_line(_cli(*args, "--save-plan", str(plan_file)))
    assert "already exists" in line and plan_file.read_text() == "mine"


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
