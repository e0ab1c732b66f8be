"""Resumable, atomic downloads from the stand-in's storage host, over real HTTP."""

from __future__ import annotations

import os
import zipfile
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
from conftest import FakeClock

from vlanalyze.errors import ArchiveError, DownloadError
from vlanalyze.fetch._client import VisualLayerClient
from vlanalyze.fetch._download import download_file
from vlanalyze.testing import StandIn

CHUNK = 64 * 1024


@pytest.fixture
def big_zip(tmp_path: Path) -> Path:
    """A 1 MiB ZIP of random bytes, served as every export's archive."""
    path = tmp_path / "served.zip"
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("metadata.json", os.urandom(1024 * 1024))
    return path


@pytest.fixture
def storage(big_zip: Path, demo_export: Path, clock: FakeClock) -> Iterator[StandIn]:
    with StandIn(demo_export, clock=clock, archive_file=big_zip) as server:
        server.polls_to_complete = 0
        yield server


@pytest.fixture
def api(storage: StandIn, clock: FakeClock) -> Iterator[VisualLayerClient]:
    with VisualLayerClient(
        storage.base_url,
        api_key=storage.api_key,
        api_secret=storage.api_secret,
        sleep=clock.sleep,
        clock=clock,
        backoff=0,
    ) as client:
        yield client


def _url(api: VisualLayerClient, storage: StandIn) -> str:
    task = api.start_export(storage.dataset_id)
    done = api.wait_for_export(storage.dataset_id, task.id)
    assert done.download_uri
    return api.resolve_url(done.download_uri)


def _downloads(storage: StandIn) -> list[dict[str, str]]:
    return [r.headers for r in storage.requests if r.path.endswith(".zip")]


def test_download_is_byte_identical_and_reports_progress(
    api: VisualLayerClient, storage: StandIn, big_zip: Path, tmp_path: Path
) -> None:
    progress: list[tuple[int, int | None]] = []
    dest = tmp_path / "out.zip"
    download_file(
        api,
        _url(api, storage),
        dest,
        chunk_size=CHUNK,
        on_progress=lambda d, t: progress.append((d, t)),
    )
    assert dest.read_bytes() == big_zip.read_bytes()
    assert progress[-1] == (big_zip.stat().st_size, big_zip.stat().st_size)
    assert not (tmp_path / "out.zip.part").exists()
    storage_hits = [r for r in storage.requests if r.path.startswith("/storage/")]
    assert storage_hits and all(r.hostname == "localhost" for r in storage_hits)
    assert not any(r.has_authorization for r in storage_hits)


def test_truncated_download_is_resumed_to_an_identical_file(
    api: VisualLayerClient, storage: StandIn, big_zip: Path, tmp_path: Path
) -> None:
    storage.truncate_downloads = 1
    dest = download_file(api, _url(api, storage), tmp_path / "out.zip", verify_zip=True)
    assert dest.read_bytes() == big_zip.read_bytes()
    first, second = _downloads(storage)
    half = big_zip.stat().st_size // 2
    assert "range" not in first
    assert second["range"] == f"bytes={half}-" and second["if-range"].startswith('"')


def test_refused_resume_restarts_from_the_beginning(
    api: VisualLayerClient, storage: StandIn, big_zip: Path, tmp_path: Path
) -> None:
    storage.truncate_downloads, storage.ignore_range = 1, True
    dest = download_file(api, _url(api, storage), tmp_path / "out.zip")
    assert dest.read_bytes() == big_zip.read_bytes()
    assert len(_downloads(storage)) == 2


def test_wrong_content_range_fails_and_drops_the_part(
    api: VisualLayerClient, storage: StandIn, tmp_path: Path
) -> None:
    storage.truncate_downloads, storage.bad_content_range = 1, True
    with pytest.raises(DownloadError, match="resumed at the wrong place") as info:
        download_file(api, _url(api, storage), tmp_path / "out.zip")
    assert "X-Signature" not in str(info.value)
    assert not list(tmp_path.glob("out.zip*"))


def test_ctrl_c_leaves_a_part_that_the_next_run_resumes(
    api: VisualLayerClient, storage: StandIn, big_zip: Path, tmp_path: Path
) -> None:
    def interrupt(done: int, total: int | None) -> None:
        raise KeyboardInterrupt

    url, dest = _url(api, storage), tmp_path / "out.zip"
    with pytest.raises(KeyboardInterrupt):
        download_file(api, url, dest, chunk_size=CHUNK, on_progress=interrupt)
    part = tmp_path / "out.zip.part"
    assert part.stat().st_size == CHUNK and not dest.exists()
    download_file(api, url, dest, chunk_size=CHUNK)
    assert dest.read_bytes() == big_zip.read_bytes()
    assert _downloads(storage)[-1]["range"] == f"bytes={CHUNK}-"


def test_expired_url_is_refreshed(
    api: VisualLayerClient, storage: StandIn, big_zip: Path, tmp_path: Path
) -> None:
    storage.stale_urls = 1
    stale, fresh = _url(api, storage), _url(api, storage)
    dest = download_file(api, stale, tmp_path / "out.zip", refresh_url=lambda: fresh)
    assert dest.read_bytes() == big_zip.read_bytes()
    codes = [r.query["X-Expires"][0] for r in storage.requests if r.path.startswith("/storage")]
    assert len(codes) == 2 and codes[0] != codes[1]


def test_expired_url_without_refresh_is_a_clear_error(
    api: VisualLayerClient, storage: StandIn, tmp_path: Path
) -> None:
    storage.stale_urls = 1
    with pytest.raises(DownloadError, match="HTTP 403") as info:
        download_file(api, _url(api, storage), tmp_path / "out.zip")
    assert "?<redacted>" in str(info.value) and "X-Signature" not in str(info.value)


def test_an_authorization_header_never_reaches_the_storage_host(
    api: VisualLayerClient, storage: StandIn, big_zip: Path, tmp_path: Path
) -> None:
    url = _url(api, storage)
    with requests.Session() as session:
        session.headers["Authorization"] = "Bearer leaked"
        download_file(session, url, tmp_path / "out.zip")
    assert (tmp_path / "out.zip").read_bytes() == big_zip.read_bytes()
    assert not any(r.has_authorization for r in storage.requests if r.hostname == "localhost")


def test_relative_download_uri_is_joined_and_authorised(
    api: VisualLayerClient, storage: StandIn, big_zip: Path, tmp_path: Path
) -> None:
    storage.relative_download_uri = True
    url = _url(api, storage)
    assert url.startswith(storage.base_url + "/cdn/")
    dest = download_file(api, url, tmp_path / "out.zip")
    assert dest.read_bytes() == big_zip.read_bytes()
    assert storage.requests[-1].has_authorization


def test_a_file_that_is_not_a_zip_is_refused(
    demo_export: Path, clock: FakeClock, tmp_path: Path
) -> None:
    junk = tmp_path / "junk.zip"
    junk.write_bytes(b"<html>not a zip</html>")
    with (
        StandIn(demo_export, clock=clock, archive_file=junk, api_key=None, api_secret=None) as srv,
        VisualLayerClient(srv.base_url, sleep=clock.sleep, clock=clock) as client,
    ):
        srv.polls_to_complete = 0
        url = _url(client, srv)
        with pytest.raises(ArchiveError, match="not a valid ZIP"):
            download_file(client, url, tmp_path / "out.zip", verify_zip=True)
    assert not list(tmp_path.glob("out.zip*"))


def test_http_errors_are_download_errors(api: VisualLayerClient, tmp_path: Path) -> None:
    url = api.resolve_url("/storage/none.zip?X-Expires=1&X-Signature=secret")
    with pytest.raises(DownloadError, match="HTTP 404") as info:
        download_file(api.session, url, tmp_path / "out.zip")
    assert "secret" not in str(info.value)
