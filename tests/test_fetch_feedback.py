"""What fetch tells its user: empty or short selective exports, errors that match the
configuration, and the small things (counts, units, timeouts) it reports."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from click.testing import CliRunner, Result
from conftest import FakeClock, error_line

from vlanalyze import AuthenticationError, SelectionError, VisualLayerClient, pull_export
from vlanalyze.cli import main
from vlanalyze.cli.fetch_cmds import human_bytes
from vlanalyze.errors import APIError, ExportTimeoutError
from vlanalyze.fetch._pull import PROVENANCE_FILE
from vlanalyze.materialize._selection import read_media_ids
from vlanalyze.testing import StandIn


def _fetch(stand_in: StandIn, *args: str, env: dict[str, str] | None = None) -> Result:
    base = {
        "VL_BASE_URL": stand_in.base_url,
        "VL_API_KEY": stand_in.api_key or "",
        "VL_API_SECRET": stand_in.api_secret or "",
        "VL_TOKEN": "",
        "VL_CONFIG": "/nonexistent/vlanalyze.toml",
    }
    return CliRunner().invoke(main, ["fetch", *args], env={**base, **(env or {})})


def _ids(folder: Path) -> list[str]:
    data = json.loads((folder / "metadata.json").read_text(encoding="utf-8"))
    return [item["media_id"] for item in data["media_items"]]


@pytest.fixture(autouse=True)
def _fast(stand_in: StandIn) -> None:
    stand_in.polls_to_complete = 0  # the CLI polls with real sleeps


# --- 4. silently empty exports -------------------------------------------------------------


def test_a_csv_whose_column_is_not_media_id_is_refused(
    stand_in: StandIn, demo_export: Path, tmp_path: Path
) -> None:
    selection = tmp_path / "ids.csv"
    selection.write_text("id\n" + "\n".join(_ids(demo_export)) + "\n", encoding="utf-8")
    out = tmp_path / "picked"
    line = error_line(
        _fetch(stand_in, stand_in.dataset_id, "-o", str(out), "--media-ids", str(selection))
    )
    assert "ids.csv" in line and "no media_id column" in line and "'id'" in line
    assert stand_in.requests == [] and not out.exists()


def test_one_id_a_line_still_works(stand_in: StandIn, demo_export: Path, tmp_path: Path) -> None:
    ids = _ids(demo_export)
    assert read_media_ids([f"{ids[0]}\n", f"{ids[1]}\n"]) == ids[:2]
    assert read_media_ids(["media_id\n", f"{ids[0]}\n"]) == ids[:1]
    with pytest.raises(SelectionError, match="no media_id column"):
        read_media_ids(["uuid\n", f"{ids[0]}\n"], source="x.txt")


def test_an_unknown_cluster_is_an_error_and_extracts_nothing(
    stand_in: StandIn, tmp_path: Path
) -> None:
    out = tmp_path / "cl"
    line = error_line(_fetch(stand_in, stand_in.dataset_id, "-o", str(out), "--cluster", "nope"))
    assert "cluster nope" in line and "no media" in line
    assert not out.exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["served-export"]  # no archive left


def test_ids_that_match_nothing_are_an_error(
    client: VisualLayerClient, stand_in: StandIn, tmp_path: Path
) -> None:
    with pytest.raises(SelectionError, match=r"2 media ids \(gone-1, gone-2\)"):
        pull_export(client, stand_in.dataset_id, tmp_path / "x", media_ids=["gone-1", "gone-2"])
    assert not (tmp_path / "x").exists()


def test_fewer_media_than_asked_for_is_a_warning(
    stand_in: StandIn, demo_export: Path, client: VisualLayerClient, tmp_path: Path
) -> None:
    ids = _ids(demo_export)
    pulled = pull_export(client, stand_in.dataset_id, tmp_path / "lib", media_ids=[ids[0], "gone"])
    assert pulled.media_count == 1 and _ids(pulled.path) == [ids[0]]
    (warning,) = pulled.warnings
    assert "asked for 2 media, the export holds 1" in warning
    record = json.loads((pulled.path / PROVENANCE_FILE).read_text(encoding="utf-8"))
    assert record["warnings"] == [warning] and record["entities_count"] == 1

    selection = tmp_path / "sel.txt"
    selection.write_text(f"{ids[1]}\ngone\n", encoding="utf-8")
    result = _fetch(
        stand_in, stand_in.dataset_id, "-o", str(tmp_path / "cli"), "--media-ids", str(selection)
    )
    assert result.exit_code == 0, result.output
    assert "Warning: asked for 2 media, the export holds 1" in result.stderr
    assert "(1 media item)" in result.stdout


# --- 5. errors that match the configuration --------------------------------------------------


def test_401_without_credentials_does_not_blame_vl_token(stand_in: StandIn, tmp_path: Path) -> None:
    env = {"VL_API_KEY": "", "VL_API_SECRET": ""}
    line = error_line(_fetch(stand_in, stand_in.dataset_id, "-o", str(tmp_path / "o"), env=env))
    assert "401" in line and "none are set" in line and "VL_TOKEN is invalid" not in line
    with (
        VisualLayerClient(stand_in.base_url, token="not.a.jwt", retries=0) as client,
        pytest.raises(AuthenticationError) as err,
    ):
        client.get_dataset(stand_in.dataset_id)
    assert err.value.hint is not None and "VL_TOKEN is invalid" in err.value.hint


@pytest.mark.parametrize("suffix", ["", "/", "/api/v1", "/api/v1/"])
def test_base_url_with_or_without_api_v1(stand_in: StandIn, suffix: str) -> None:
    with VisualLayerClient(
        stand_in.base_url + suffix, api_key=stand_in.api_key, api_secret=stand_in.api_secret
    ) as client:
        assert client.get_dataset(stand_in.dataset_id)["status"] == "READY"


def test_404_shows_the_url_it_tried(stand_in: StandIn, tmp_path: Path) -> None:
    env = {"VL_BASE_URL": stand_in.base_url + "/v2"}  # a wrong base URL
    line = error_line(_fetch(stand_in, stand_in.dataset_id, "-o", str(tmp_path / "o"), env=env))
    assert f"{stand_in.base_url}/v2/api/v1/dataset/{stand_in.dataset_id}" in line
    assert "stand-in-secret" not in line
    with (
        VisualLayerClient(
            stand_in.base_url, api_key=stand_in.api_key, api_secret=stand_in.api_secret
        ) as client,
        pytest.raises(APIError) as err,
    ):
        client.start_export("no-such-dataset")
    assert "?<redacted>" in str(err.value)  # the query string is not shown
    assert "no-such-dataset.zip" not in str(err.value)


# --- 9. small ones -------------------------------------------------------------------------


def test_timeout_shorter_than_the_poll_interval_still_waits(
    client: VisualLayerClient, stand_in: StandIn, clock: FakeClock
) -> None:
    stand_in.final_status = "QUEUED"
    task = client.start_export(stand_in.dataset_id)
    with pytest.raises(ExportTimeoutError) as err:
        client.wait_for_export(stand_in.dataset_id, task.id, interval=2, timeout=1)
    assert clock.slept == [1]
    assert "still QUEUED when the 1s timeout ran out" in str(err.value)


@pytest.mark.parametrize(
    ("n", "text"),
    [(0, "0 B"), (999, "999 B"), (177_208, "177.2 KB"), (3_400_000, "3.4 MB"), (2**30, "1.1 GB")],
)
def test_download_sizes_in_human_units(n: int, text: str) -> None:
    assert human_bytes(n) == text


def test_full_export_records_its_media_count(
    client: VisualLayerClient, stand_in: StandIn, tmp_path: Path
) -> None:
    pulled = pull_export(client, stand_in.dataset_id, tmp_path / "out")
    record = json.loads((pulled.path / PROVENANCE_FILE).read_text(encoding="utf-8"))
    assert record["entities_count"] == 3 == pulled.media_count
    assert record["warnings"] == [] and pulled.warnings == ()
    assert pulled / "metadata.json" == pulled.path / "metadata.json"  # path-like
    assert os.fspath(pulled) == str(tmp_path / "out")
