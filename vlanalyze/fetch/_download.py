"""Download one file over HTTP, resumably and atomically.

The bytes go to ``<dest>.part``; a broken connection is resumed with ``Range`` and
``If-Range``; only a complete (and, if asked, ZIP-readable) file is renamed to ``dest``.
(The ``.part`` name is stable, not one of :mod:`vlanalyze._fs`'s random temporary names,
so that a run after an interruption finds it and resumes.)
This module knows nothing of exports or the API's endpoints and never prints.
"""

from __future__ import annotations

import errno
import os
import re
import time
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, Protocol

import requests
import urllib3.exceptions

from vlanalyze._fs import ProgressCallback, lock_fd
from vlanalyze.errors import ArchiveError, DownloadError, redact_url

__all__ = ["DEFAULT_CHUNK_SIZE", "download_file"]

#: Large reads keep Python's per-chunk overhead negligible next to the socket.
DEFAULT_CHUNK_SIZE = 4 * 1024 * 1024
_CONTENT_RANGE = re.compile(r"bytes (\d+)-(\d+)/(\d+|\*)")
_READ_ERRORS = (requests.RequestException, urllib3.exceptions.HTTPError, ConnectionError)


class _HasSession(Protocol):
    session: requests.Session

    def auth_headers(self, url: str | None = None) -> dict[str, str]: ...


class _Retryable(Exception):
    """An attempt broke off in a way that a new (resumed) attempt can fix."""


def _no_auth(request: requests.PreparedRequest) -> requests.PreparedRequest:
    # A truthy auth callable stops requests from adding ~/.netrc credentials, and any
    # Authorization header not meant for this URL is dropped.
    if request.headers.get("X-VLA-Keep-Auth") is None:
        request.headers.pop("Authorization", None)
    request.headers.pop("X-VLA-Keep-Auth", None)
    return request


@dataclass
class _State:
    url: str
    validator: str | None = None
    total: int | None = None
    failures: int = 0
    refreshes: int = 0
    restarts: int = 0


def download_file(
    source: requests.Session | _HasSession,
    url: str,
    dest: str | os.PathLike[str],
    *,
    on_progress: ProgressCallback | None = None,
    chunk_size: int = DEFAULT_CHUNK_SIZE,
    timeout: float | tuple[float, float] = (10.0, 60.0),
    max_attempts: int = 5,
    refresh_url: Callable[[], str] | None = None,
    verify_zip: bool = False,
    sleep: Callable[[float], None] = time.sleep,
) -> Path:
    """Download ``url`` to ``dest`` through ``<dest>.part``, resuming where it broke off.

    A ``.part`` file left by an earlier, interrupted run is resumed too.

    Args:
        source: A ``requests.Session``, or a client (its session, and its token only for
            URLs on its own host).
        url: What to fetch; a presigned URL is fetched with no Authorization header.
        dest: The final path; written only once the file is complete.
        on_progress: Called with ``(bytes_done, total_or_None)`` after each chunk.
        chunk_size: Bytes per read.
        timeout: Connect and read timeout, in seconds.
        max_attempts: Broken connections tolerated before giving up.
        refresh_url: Returns a fresh URL when the current one answers 403 (expired).
        verify_zip: Check that the result opens as a ZIP before renaming it into place.
        sleep: Waits between attempts (injected in tests).

    Returns:
        ``dest``.

    Raises:
        DownloadError: HTTP error, wrong ``Content-Range``, wrong size, or too many breaks.
        ArchiveError: ``verify_zip`` and the file is not a readable ZIP.
    """
    dest = Path(dest)
    part = dest.with_name(dest.name + ".part")
    state = _State(url)
    while True:
        try:
            if _attempt(source, state, part, chunk_size, timeout, on_progress, refresh_url):
                break
        except OSError as exc:
            if exc.errno not in (errno.ENOSPC, errno.EDQUOT):
                raise
            raise DownloadError(
                f"no space left on device while downloading to {part}",
                hint=f"free disk space, then run the same command again to resume from {part}",
            ) from None
        except _Retryable as exc:
            state.failures += 1
            if state.failures >= max_attempts:
                raise DownloadError(
                    f"download of {redact_url(state.url)} broke off {state.failures} times ({exc})",
                    hint=f"run the same command again to resume from {part}",
                ) from exc
            sleep(0.0 if state.failures == 1 else min(10.0, 2.0 ** (state.failures - 2)))
    if verify_zip:
        _check_zip(part)
    os.replace(part, dest)
    return dest


def _request(
    source: requests.Session | _HasSession,
    state: _State,
    have: int,
    timeout: float | tuple[float, float],
) -> requests.Response:
    session = source if isinstance(source, requests.Session) else source.session
    headers = {"Accept-Encoding": "identity"}
    if not isinstance(source, requests.Session):
        auth = source.auth_headers(state.url)
        if auth:
            headers.update(auth)
            headers["X-VLA-Keep-Auth"] = "1"
    if have:
        headers["Range"] = f"bytes={have}-"
        # Without a validator from this run (resuming an earlier run's .part) the Range
        # goes alone: a task's archive never changes, and the ZIP check catches a mix.
        if state.validator:
            headers["If-Range"] = state.validator
    try:
        return session.get(state.url, headers=headers, stream=True, timeout=timeout, auth=_no_auth)
    except requests.RequestException as exc:
        raise _Retryable(type(exc).__name__) from exc


def _attempt(
    source: requests.Session | _HasSession,
    state: _State,
    part: Path,
    chunk_size: int,
    timeout: float | tuple[float, float],
    on_progress: ProgressCallback | None,
    refresh_url: Callable[[], str] | None,
) -> bool:
    """Make one request and stream its body; True once the file is complete."""
    have = part.stat().st_size if part.exists() else 0
    with _request(source, state, have, timeout) as response:
        code = response.status_code
        if code == 403 and refresh_url is not None and state.refreshes < 3:
            state.refreshes += 1  # a presigned URL expired: ask the API for a fresh one
            state.url = refresh_url()
            return False
        if code == 416 and have and state.restarts < 2:
            state.restarts += 1  # our .part is not a prefix of this file: start over
            part.unlink()
            return False
        offset = _offset(response, state, have, part)
        with open(part, "ab" if offset else "wb") as file:
            lock_fd(file.fileno())  # "being written": a later run's cleaning leaves it be
            done = _copy(response, file, offset, chunk_size, state.total, on_progress)
    if state.total is not None and done > state.total:
        part.unlink()
        raise DownloadError(f"{redact_url(state.url)} sent {done} bytes, expected {state.total}")
    if state.total is not None and done < state.total:
        raise _Retryable(f"got {done} of {state.total} bytes")
    return True


def _offset(response: requests.Response, state: _State, have: int, part: Path) -> int:
    """Check the status and ``Content-Range``; return where the body starts."""
    code, headers = response.status_code, response.headers
    etag = headers.get("ETag")
    state.validator = etag if etag and not etag.startswith("W/") else headers.get("Last-Modified")
    if code == 200:  # a full body: the server did not (or would not) resume
        length = headers.get("Content-Length")
        state.total = int(length) if length and length.isdigit() else None
        return 0
    if code == 206 and have:
        match = _CONTENT_RANGE.fullmatch(headers.get("Content-Range", "").strip())
        if match is None or int(match.group(1)) != have:
            part.unlink()
            raise DownloadError(
                f"{redact_url(state.url)} resumed at the wrong place "
                f"(Content-Range {headers.get('Content-Range')!r}, expected byte {have})",
                hint="run again to download from the start",
            )
        state.total = int(match.group(3)) if match.group(3) != "*" else None
        return have
    raise DownloadError(
        f"download of {redact_url(state.url)} failed: HTTP {code} {response.reason}",
        hint="a presigned URL may have expired: fetch the export again" if code == 403 else None,
    )


def _copy(
    response: requests.Response,
    file: BinaryIO,
    done: int,
    chunk_size: int,
    total: int | None,
    on_progress: ProgressCallback | None,
) -> int:
    """Stream the body into ``file``; return the file's size when the body ends."""
    raw = response.raw
    write = file.write
    try:
        while True:
            chunk = raw.read(chunk_size, decode_content=False)
            if not chunk:
                return done
            write(chunk)
            done += len(chunk)
            if on_progress is not None:
                on_progress(done, total)
    except _READ_ERRORS as exc:
        file.flush()
        raise _Retryable(type(exc).__name__) from exc


def _check_zip(path: Path) -> None:
    # Opening reads the central directory, which is enough to catch a truncated or
    # foreign file; CRCs are verified by the extractor as it reads each member.
    try:
        with zipfile.ZipFile(path) as archive:
            archive.namelist()
    except (zipfile.BadZipFile, OSError) as exc:
        path.unlink(missing_ok=True)
        raise ArchiveError(
            f"the downloaded file is not a valid ZIP archive ({exc})",
            hint="run the command again to download it anew",
        ) from exc
