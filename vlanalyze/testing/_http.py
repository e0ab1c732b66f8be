"""The HTTP side of the stand-in (:mod:`vlanalyze.testing`): routing, wire formats, files.

Task state and knobs live in :class:`vlanalyze.testing.StandIn`, which imports this
module (never the other way: :class:`State` says what the server needs of it); this only
translates requests into calls on it and answers as the real service would (JSON
``{"detail": ...}`` errors from the API, XML errors from the storage host). Files are
sent with ``socket.sendfile`` so the server is never the bottleneck of a benchmark.
"""

from __future__ import annotations

import contextlib
import email.utils
import hmac
import json
import re
import socket
import sys
from collections.abc import Callable
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import SplitResult, parse_qs, urlsplit

_API = re.compile(r"/api/v1/dataset/([^/]+)(/[a-z_]+)?")
_RANGE = re.compile(r"bytes=(\d+)-(\d*)")


@dataclass(frozen=True)
class RecordedRequest:
    """One request the stand-in received (the Authorization value is not kept)."""

    method: str
    path: str
    query: dict[str, list[str]]
    host: str
    headers: dict[str, str]
    body: Any = None

    @property
    def hostname(self) -> str:
        """The Host header without its port."""
        return self.host.rsplit(":", 1)[0]

    @property
    def has_authorization(self) -> bool:
        """Whether the request carried an Authorization header."""
        return "authorization" in self.headers


class State(Protocol):
    """What the HTTP side needs of the stand-in's state (:class:`vlanalyze.testing.StandIn`)."""

    dataset_id: str
    dataset_status: str
    export_dir: Path
    start_response: str
    ignore_range: bool
    bad_content_range: bool
    clock: Callable[[], float]
    requests: list[RecordedRequest]
    errors: list[BaseException | None]
    tasks: dict[str, Any]

    def take_failure(self, path: str) -> Any: ...
    def take_truncation(self) -> bool: ...
    def auth_error(self, authorization: str | None) -> str | None: ...
    def new_task(self, query: dict[str, str], selection: list[dict[str, Any]] | None) -> Any: ...
    def poll(self, task: Any) -> None: ...
    def task_json(self, task: Any, api_host: str) -> dict[str, Any]: ...
    def sign(self, path: str, expires: int) -> str: ...


class StandInServer(ThreadingHTTPServer):
    """A threading HTTP server that can close its open keep-alive connections."""

    daemon_threads = False  # joined in server_close, once their sockets are shut down
    block_on_close = True

    def __init__(self, address: tuple[str, int], stand_in: State) -> None:
        self.stand_in = stand_in
        self._open: set[socket.socket] = set()
        super().__init__(address, _Handler)

    def process_request(self, request: Any, client_address: Any) -> None:
        self._open.add(request)
        super().process_request(request, client_address)

    def shutdown_request(self, request: Any) -> None:
        self._open.discard(request)
        super().shutdown_request(request)

    def handle_error(self, request: Any, client_address: Any) -> None:
        # Never print (the default writes a traceback to stderr): record it instead.
        # A client hanging up mid-download is normal, and tests can inspect the rest.
        self.stand_in.errors.append(sys.exc_info()[1])

    def close_connections(self) -> None:
        """Shut down every open connection, so that handler threads end."""
        for sock in list(self._open):
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, as clients expect of a real server
    server: StandInServer
    timeout = 30  # idle keep-alive connections end on their own

    def log_message(self, format: str, *args: Any) -> None:
        """Silence the default stderr log; requests are recorded instead."""

    def do_GET(self) -> None:
        self._handle("GET")

    def do_POST(self) -> None:
        self._handle("POST")

    def _handle(self, method: str) -> None:
        stand_in = self.server.stand_in
        parts = urlsplit(self.path)
        body = self._read_body()
        headers = {k.lower(): v for k, v in self.headers.items()}
        if "authorization" in headers:
            headers["authorization"] = "<redacted>"
        host = self.headers.get("Host", "")
        record = RecordedRequest(method, parts.path, parse_qs(parts.query), host, headers, body)
        stand_in.requests.append(record)
        try:
            if parts.path.startswith("/storage/"):
                self._storage(parts, record)
            elif parts.path.startswith("/cdn/"):
                self._cdn(parts)
            else:
                self._api(method, parts, body)
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True

    def _read_body(self) -> Any:
        length = int(self.headers.get("Content-Length") or 0)
        if not length:
            return None
        raw = self.rfile.read(length)
        try:
            return json.loads(raw)
        except ValueError:
            return raw

    # -- the API (host 127.0.0.1) ---------------------------------------------------

    def _api(self, method: str, parts: SplitResult, body: Any) -> None:
        stand_in = self.server.stand_in
        failure = stand_in.take_failure(parts.path)
        if failure is not None:
            extra = {"Retry-After": str(failure.retry_after)} if failure.retry_after else {}
            return self._json(failure.status, {"detail": failure.detail}, extra)
        error = stand_in.auth_error(self.headers.get("Authorization"))
        if error is not None:
            return self._json(401, {"detail": error})
        match = _API.fullmatch(parts.path)
        if match is None:
            return self._json(404, {"detail": "Not Found"})
        dataset_id, action = match.groups()
        if dataset_id != stand_in.dataset_id:
            return self._json(404, {"detail": f"Dataset {dataset_id} not found"})
        query = {k: v[-1] for k, v in parse_qs(parts.query).items()}
        route = (method, action)
        if route == ("GET", None):
            return self._json(200, self._dataset())
        if route == ("GET", "/export_context_async"):
            return self._start(query, None)
        if route == ("POST", "/export_entities_async"):
            selection = body.get("media_selection") if isinstance(body, dict) else None
            if not isinstance(selection, list) or not selection:
                return self._json(422, {"detail": "media_selection must be a non-empty list"})
            return self._start(query, selection)
        if route == ("GET", "/export_status"):
            task = stand_in.tasks.get(query.get("export_task_id", ""))
            if task is None:
                return self._json(404, {"detail": "Export task not found"})
            stand_in.poll(task)
            return self._json(200, stand_in.task_json(task, self.headers.get("Host", "")))
        return self._json(405, {"detail": "Method Not Allowed"})

    def _dataset(self) -> dict[str, Any]:
        stand_in = self.server.stand_in
        status = stand_in.dataset_status
        return {
            "id": stand_in.dataset_id,
            "display_name": stand_in.export_dir.name,
            "status_new": status,
            "status": "READY" if status == "READY" else "INDEXING",
        }

    def _start(self, query: dict[str, str], selection: list[dict[str, Any]] | None) -> None:
        stand_in = self.server.stand_in
        if stand_in.dataset_status != "READY":
            return self._json(409, {"detail": "Dataset is not in READY status"})
        if query.get("export_format", "json") not in ("json", "parquet"):
            msg = "Input should be 'json' or 'parquet'"
            return self._json(422, {"detail": [{"loc": ["query", "export_format"], "msg": msg}]})
        task = stand_in.new_task(query, selection)
        if stand_in.start_response == "task":
            return self._json(200, stand_in.task_json(task, self.headers.get("Host", "")))
        return self._json(200, {"id": task.id})

    # -- downloads ----------------------------------------------------------------------

    def _cdn(self, parts: SplitResult) -> None:
        """The on-premise style relative download, on the API host."""
        stand_in = self.server.stand_in
        error = stand_in.auth_error(self.headers.get("Authorization"))
        if error is not None:
            return self._json(401, {"detail": error})
        task = stand_in.tasks.get(Path(parts.path).stem)
        if task is None or task.archive is None:
            return self._json(404, {"detail": "Not Found"})
        self._send_file(task.archive)

    def _storage(self, parts: SplitResult, record: RecordedRequest) -> None:
        """The presigned download, as S3 would answer it on the storage host."""
        stand_in = self.server.stand_in
        if record.has_authorization:
            return self._xml(400, "InvalidArgument", "Only one auth mechanism allowed")
        if record.hostname != "localhost":
            return self._xml(404, "NoSuchBucket", "The specified bucket does not exist")
        query = {k: v[-1] for k, v in parse_qs(parts.query).items()}
        expires = query.get("X-Expires", "")
        good = stand_in.sign(parts.path, int(expires)) if expires.isdigit() else ""
        if not good or not hmac.compare_digest(good, query.get("X-Signature", "")):
            return self._xml(403, "SignatureDoesNotMatch", "The signature does not match")
        if int(expires) < stand_in.clock():
            return self._xml(403, "AccessDenied", "Request has expired")
        task = stand_in.tasks.get(Path(parts.path).stem)
        if task is None or task.archive is None:
            return self._xml(404, "NoSuchKey", "The specified key does not exist")
        self._send_file(task.archive)

    def _send_file(self, path: Path) -> None:
        stand_in = self.server.stand_in
        stat = path.stat()
        size, etag = stat.st_size, f'"{stat.st_size:x}-{stat.st_mtime_ns:x}"'
        start, end, status = 0, size - 1, 200
        wanted, if_range = self.headers.get("Range"), self.headers.get("If-Range")
        match = _RANGE.fullmatch(wanted.strip()) if wanted else None
        if match and not stand_in.ignore_range and if_range in (None, etag):
            start, status = int(match.group(1)), 206
            end = min(int(match.group(2)), size - 1) if match.group(2) else size - 1
            if start >= size:
                return self._empty(416, {"Content-Range": f"bytes */{size}"})
        truncate = stand_in.take_truncation()
        length = end - start + 1
        self.send_response(status)
        self.send_header("Content-Type", "application/zip")
        self.send_header("Content-Length", str(length))
        self.send_header("ETag", etag)
        self.send_header("Last-Modified", email.utils.formatdate(stat.st_mtime, usegmt=True))
        self.send_header("Accept-Ranges", "bytes")
        if status == 206:
            shown = start + 1 if stand_in.bad_content_range else start
            self.send_header("Content-Range", f"bytes {shown}-{end}/{size}")
        self.end_headers()
        with open(path, "rb") as file:
            count = length // 2 if truncate else length
            if count:
                self.connection.sendfile(file, start, count)
        if truncate:
            self.close_connection = True  # the client sees a body cut short

    # -- wire formats -------------------------------------------------------------------

    def _json(self, status: int, data: Any, headers: dict[str, str] | None = None) -> None:
        # Compact separators: the official curl script greps for '"id":"'.
        body = json.dumps(data, separators=(",", ":")).encode()
        self._send(status, body, "application/json", headers or {})

    def _xml(self, status: int, code: str, message: str) -> None:
        body = f"<Error><Code>{code}</Code><Message>{message}</Message></Error>".encode()
        self._send(status, body, "application/xml", {})

    def _empty(self, status: int, headers: dict[str, str]) -> None:
        self._send(status, b"", "text/plain", headers)

    def _send(self, status: int, body: bytes, content_type: str, headers: dict[str, str]) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        for name, value in headers.items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(body)
