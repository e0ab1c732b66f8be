"""A stand-in of the Visual Layer export API on loopback, for tests and offline scripts.

:class:`StandIn` serves a local export folder as one dataset: dataset, full and
selective export, status and download calls, with JWT checking, realistic task states
and knobs that make it misbehave on purpose. The API answers on ``127.0.0.1``; presigned
downloads are served as host ``localhost`` (the "storage host"), which, like S3, rejects
a request carrying an Authorization header. Every request is recorded in ``.requests``.
It never prints; ``vlanalyze stand-in`` runs it from the shell.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import secrets
import shutil
import tempfile
import threading
import time
import uuid
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any

import jwt

from vlanalyze.fetch._client import sign_token
from vlanalyze.testing._http import RecordedRequest, StandInServer

__all__ = ["DEMO_DATASET_ID", "RecordedRequest", "StandIn", "write_demo_export"]

DEMO_DATASET_ID = "0b9a8f1e-5d3c-4c2a-9e47-7f1d2c3b4a50"


@dataclass
class _Task:
    id: str
    export_format: str
    include_images: bool
    selection: list[dict[str, Any]] | None
    created_at: str
    polls: int = 0
    status: str = "INIT"
    progress: float = 0.0
    result_message: str | None = None
    archive: Path | None = None
    entities_count: int = 0  # media in the built archive, as the service reports it


@dataclass
class _Failure:
    status: int
    times: int
    retry_after: int | None
    detail: str
    path_contains: str


class StandIn:
    """The export API of one dataset, served on loopback (a context manager).

    Knobs are plain attributes, set them any time: ``dataset_status``,
    ``polls_to_complete``, ``final_status``, ``result_message``, ``start_response``
    (``"id"`` or ``"task"``), ``relative_download_uri``, ``truncate_downloads`` (how many
    downloads break off halfway), ``stale_urls`` (how many presigned URLs are issued
    already expired), ``ignore_range``, ``bad_content_range``; and :meth:`fail`.

    Args:
        export_dir: A folder holding ``metadata.json``/``metadata.parquet`` and ``images/``.
        dataset_id: The id the dataset answers to.
        api_key: Key the JWTs must name; ``None`` (with api_secret) means no auth (on-prem).
        api_secret: Secret the JWTs must be signed with.
        port: TCP port on 127.0.0.1; 0 picks a free one.
        clock: The server's time, for token and URL expiry (injected in tests).
        archive_file: Serve this file as every export's archive instead of building one.
    """

    def __init__(
        self,
        export_dir: str | Path,
        *,
        dataset_id: str = DEMO_DATASET_ID,
        api_key: str | None = "stand-in-key",
        api_secret: str | None = "stand-in-secret-for-local-testing-only",
        port: int = 0,
        clock: Callable[[], float] = time.time,
        archive_file: str | Path | None = None,
    ) -> None:
        self.export_dir = Path(export_dir)
        self.dataset_id, self.api_key, self.api_secret = dataset_id, api_key, api_secret
        self.clock = clock
        self.archive_file = Path(archive_file) if archive_file else None
        self.dataset_status = "READY"
        self.polls_to_complete = 2
        self.final_status = "COMPLETED"
        self.result_message: str | None = None
        self.start_response = "id"
        self.relative_download_uri = False
        self.truncate_downloads = 0
        self.stale_urls = 0
        self.ignore_range = False
        self.bad_content_range = False
        self.requests: list[RecordedRequest] = []
        self.errors: list[BaseException | None] = []
        self.tasks: dict[str, _Task] = {}
        self._failures: list[_Failure] = []
        self._lock = threading.Lock()
        self._url_key = secrets.token_bytes(16)
        self._tmp = Path(tempfile.mkdtemp(prefix="vla-standin-"))
        self._server = StandInServer(("127.0.0.1", port), self)
        # A short poll interval makes close() (and each test's teardown) quick.
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self._thread.start()

    @property
    def port(self) -> int:
        """The TCP port the server listens on."""
        return int(self._server.server_address[1])

    @property
    def base_url(self) -> str:
        """The API's base URL (host 127.0.0.1), e.g. for ``VL_BASE_URL``."""
        return f"http://127.0.0.1:{self.port}"

    def token(self, lifetime: int = 600) -> str:
        """A valid JWT for this stand-in, e.g. for the curl script's ``JWT_TOKEN``."""
        if not (self.api_key and self.api_secret):
            return ""
        return sign_token(self.api_key, self.api_secret, now=self.clock(), lifetime=lifetime)

    def fail(
        self,
        status: int,
        *,
        times: int = 1,
        retry_after: int | None = None,
        detail: str = "injected failure",
        path_contains: str = "",
    ) -> None:
        """Answer the next ``times`` API requests whose path contains ``path_contains``
        with ``status`` (and ``Retry-After``), before looking at them."""
        with self._lock:
            self._failures.append(_Failure(status, times, retry_after, detail, path_contains))

    def close(self) -> None:
        """Stop serving, close every connection and remove the built archives."""
        self._server.shutdown()
        self._server.close_connections()
        self._server.server_close()
        self._thread.join()
        shutil.rmtree(self._tmp, ignore_errors=True)

    def __enter__(self) -> StandIn:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    # -- behaviour, called by the handler -----------------------------------------------

    def take_failure(self, path: str) -> _Failure | None:
        with self._lock:
            for failure in self._failures:
                if failure.path_contains in path and failure.times > 0:
                    failure.times -= 1
                    return failure
        return None

    def take_truncation(self) -> bool:
        with self._lock:
            truncate, self.truncate_downloads = (
                self.truncate_downloads > 0,
                max(0, self.truncate_downloads - 1),
            )
        return truncate

    def auth_error(self, authorization: str | None) -> str | None:
        """Why a request's JWT is refused, or None when it is fine (or auth is off)."""
        if not (self.api_key and self.api_secret):
            return None
        if not authorization or not authorization.startswith("Bearer "):
            return "Not authenticated"
        token = authorization[len("Bearer ") :]
        try:
            header = jwt.get_unverified_header(token)
            claims = jwt.decode(
                token,
                self.api_secret,
                algorithms=["HS256"],
                issuer="sdk",
                options={"verify_exp": False, "verify_iat": False, "require": ["exp", "sub"]},
            )
        except jwt.PyJWTError:
            return "Invalid token"
        if header.get("kid") != self.api_key or claims.get("sub") != self.api_key:
            return "Unknown API key"
        if float(claims["exp"]) <= self.clock():
            return "Token has expired"
        return None

    def new_task(self, query: dict[str, str], selection: list[dict[str, Any]] | None) -> _Task:
        task = _Task(
            id=str(uuid.uuid4()),
            export_format=query.get("export_format", "json"),
            include_images=query.get("include_images", "false").lower() == "true",
            selection=selection,
            created_at=time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(self.clock())),
        )
        with self._lock:
            self.tasks[task.id] = task
        return task

    def poll(self, task: _Task) -> None:
        """Advance a task one step: INIT, IN_PROGRESS with progress, then the final status."""
        with self._lock:
            task.polls += 1
            if task.status in ("COMPLETED", "FAILED", "REJECTED"):
                return
            if task.polls > self.polls_to_complete:
                self._finish(task)
            elif task.polls > 1:
                task.status = "IN_PROGRESS"
                task.progress = round(100 * task.polls / (self.polls_to_complete + 1), 1)

    def _finish(self, task: _Task) -> None:
        task.status, task.result_message = self.final_status, self.result_message
        if task.status != "COMPLETED":
            return
        if self.archive_file is not None:
            task.archive, task.progress = self.archive_file, 100.0
            return
        metadata = self.export_dir / f"metadata.{task.export_format}"
        if not metadata.is_file():
            task.status = "FAILED"
            task.result_message = f"the export folder has no metadata.{task.export_format}"
            return
        task.archive, task.progress = _build_zip(self, task, metadata), 100.0

    def task_json(self, task: _Task, api_host: str) -> dict[str, Any]:
        uri = None
        if task.status == "COMPLETED":
            uri = self._download_uri(task, api_host)
        return {
            "id": task.id,
            "dataset_id": self.dataset_id,
            "created_at": task.created_at,
            "status": task.status,
            "progress": task.progress,
            "entities_count": task.entities_count,
            "result_message": task.result_message,
            "download_uri": uri,
        }

    def _download_uri(self, task: _Task, api_host: str) -> str:
        if self.relative_download_uri:
            return f"/cdn/{self.dataset_id}/images/{task.id}/{task.id}.zip"
        with self._lock:
            stale, self.stale_urls = self.stale_urls > 0, max(0, self.stale_urls - 1)
        expires = int(self.clock()) + (-60 if stale else 3600)
        path = f"/storage/{task.id}.zip"
        port = api_host.rsplit(":", 1)[-1] if ":" in api_host else str(self.port)
        query = f"X-Expires={expires}&X-Signature={self.sign(path, expires)}"
        return f"http://localhost:{port}{path}?{query}"

    def sign(self, path: str, expires: int) -> str:
        return hmac.new(self._url_key, f"{path}:{expires}".encode(), hashlib.sha256).hexdigest()


def _selected(item: dict[str, Any], selection: list[dict[str, Any]]) -> bool:
    for entry in selection:
        payload = entry.get("payload") or {}
        if item.get("media_id") in payload.get("media_ids", ()):
            return True
        if payload.get("cluster_id") and item.get("cluster_id") == payload["cluster_id"]:
            return item.get("media_id") not in payload.get("exclude_media_ids", ())
    return False


def _build_zip(stand_in: StandIn, task: _Task, metadata: Path) -> Path:
    """Zip the export as the service would: the metadata file, and images/ if asked."""
    target = stand_in._tmp / f"{task.id}.zip"
    keep: set[str] | None = None
    with zipfile.ZipFile(target, "w") as archive:
        if task.selection is not None and task.export_format == "json":
            # Unknown ids or clusters select nothing: the export completes, empty.
            data = json.loads(metadata.read_text(encoding="utf-8"))
            items = [i for i in data.get("media_items", []) if _selected(i, task.selection)]
            data["media_items"] = items
            data.setdefault("info", {})["total_media_items"] = len(items)
            keep = {str(i.get(k)) for i in items for k in ("file_name", "file_path")}
            archive.writestr("metadata.json", json.dumps(data, indent=1), zipfile.ZIP_DEFLATED)
            task.entities_count = len(items)
        else:
            archive.write(metadata, metadata.name, zipfile.ZIP_DEFLATED)
            task.entities_count = _total(metadata)
        images = stand_in.export_dir / "images"
        if task.include_images and images.is_dir():
            for path in sorted(p for p in images.rglob("*") if p.is_file()):
                rel = path.relative_to(images).as_posix()
                if keep is None or rel in keep or path.name in keep:
                    archive.write(path, f"images/{rel}", zipfile.ZIP_STORED)
    return target


def _total(metadata: Path) -> int:
    """How many media items a whole metadata file holds."""
    if metadata.suffix == ".parquet":
        import pyarrow.parquet as pq

        return int(pq.ParquetFile(metadata).metadata.num_rows)
    return len(json.loads(metadata.read_text(encoding="utf-8")).get("media_items", []))


def write_demo_export(folder: str | Path, *, items: int = 3) -> Path:
    """Write a tiny JSON export (metadata.json in the real format, and images/) to serve.

    Returns:
        ``folder``.
    """
    folder = Path(folder)
    (folder / "images").mkdir(parents=True, exist_ok=True)
    media = []
    for n in range(items):
        name = f"img_{n:03d}.jpg"
        (folder / "images" / name).write_bytes(b"\xff\xd8\xff\xe0" + bytes([n]) * 64)
        media.append(
            {
                "media_id": str(uuid.UUID(int=n + 1)),
                "media_type": "image",
                "file_name": name,
                "file_path": name,
                "file_size": "0.07KB",
                "uniqueness_score": round(1 - n / (items + 1), 3),
                "height": 8,
                "width": 8,
                "url": f"https://app.visual-layer.com/dataset/{DEMO_DATASET_ID}/data",
                "cluster_id": str(uuid.UUID(int=1000 + n % 2)),
                "metadata_items": [
                    {
                        "type": "image_label",
                        "properties": {"category_name": "cat", "source": "User", "original_id": n},
                    }
                ],
            }
        )
    info = {
        "schema_version": "1.1",
        "dataset": "stand-in demo",
        "description": "",
        "dataset_url": f"https://app.visual-layer.com/dataset/{DEMO_DATASET_ID}/data",
        "export_time": "2025-01-01T00:00:00.000000",
        "dataset_creation_time": "2025-01-01T00:00:00.000000",
        "exported_by": "stand-in",
        "total_media_items": items,
    }
    text = json.dumps({"info": info, "media_items": media}, indent=2)
    (folder / "metadata.json").write_text(text, encoding="utf-8")
    return folder
