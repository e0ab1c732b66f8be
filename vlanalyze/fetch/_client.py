"""Talk to the Visual Layer export API: auth, the export calls, polling and retries.

This module only speaks HTTP to the API and returns values or raises the project's
errors. It does not download archives (``download``), extract them (``archive``) or
print anything.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Mapping, Sequence
from types import TracebackType
from typing import Any
from urllib.parse import urljoin, urlsplit

import requests

from vlanalyze.errors import (
    APIConnectionError,
    APIError,
    AuthenticationError,
    ConfigurationError,
    ExportFailedError,
    ExportTimeoutError,
    Fix,
    redact_url,
)
from vlanalyze.fetch._config import config_path, settings
from vlanalyze.fetch._http import make_retry, make_session
from vlanalyze.fetch._statuses import status_error
from vlanalyze.fetch._task import TERMINAL_STATUSES, ExportTask, sign_token

__all__ = [
    "DEFAULT_BASE_URL",
    "TERMINAL_STATUSES",
    "ExportTask",
    "VisualLayerClient",
    "sign_token",
]

DEFAULT_BASE_URL = "https://app.visual-layer.com"


class VisualLayerClient:
    """A client of the Visual Layer export API (cloud or on-premise).

    Args:
        base_url: The server, e.g. ``https://app.visual-layer.com`` or ``http://host:2080``.
        api_key: API key; with ``api_secret`` the client signs its own short JWTs.
        api_secret: API secret (never shown in reprs, messages or logs).
        token: A ready JWT, used as given (it cannot be renewed).
        timeout: Seconds for connecting and for each read, on every call.
        token_lifetime: Lifetime of the JWTs this client signs, in seconds.
        retries: How many times a failing idempotent call is retried.
        backoff: Back-off factor of the retries, in seconds.
        sleep: Called to wait between polls (injected in tests).
        clock: Returns the time in seconds (injected in tests).
    """

    def __init__(
        self,
        base_url: str = DEFAULT_BASE_URL,
        *,
        api_key: str | None = None,
        api_secret: str | None = None,
        token: str | None = None,
        timeout: float = 30.0,
        token_lifetime: int = 600,
        retries: int = 5,
        backoff: float = 0.5,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if bool(api_key) != bool(api_secret):
            missing = "VL_API_SECRET" if api_key else "VL_API_KEY"
            raise ConfigurationError(
                f"{missing} is missing: an API key needs its secret",
                hint="set both VL_API_KEY and VL_API_SECRET, or VL_TOKEN",
            )
        # "http://host:2080" and "http://host:2080/api/v1" mean the same server.
        self.base_url = _without_userinfo(base_url).rstrip("/").removesuffix("/api/v1").rstrip("/")
        self.timeout = timeout
        self.token_lifetime = token_lifetime
        self.sleep = sleep
        self.clock = clock
        self._api_key = api_key or None
        self._api_secret = api_secret or None
        self._token = token or None
        self._signed: tuple[str, float] | None = None
        self.session = make_session(make_retry(retries, backoff, idempotent=True))
        self._once_session = make_session(make_retry(retries, backoff, idempotent=False))

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None, **kwargs: Any) -> VisualLayerClient:
        """Build a client from VL_API_KEY/VL_API_SECRET, VL_TOKEN and VL_BASE_URL, or
        from the config file for those not set (see :mod:`vlanalyze.fetch._config`).

        Raises:
            ConfigurationError: No credentials for the cloud, a key without secret, or
                an unreadable config file.
        """
        found = settings(environ)
        base_url = found["base_url"] or DEFAULT_BASE_URL
        key, secret, token = found["api_key"], found["api_secret"], found["token"]
        cloud = base_url.rstrip("/").removesuffix("/api/v1").rstrip("/") == DEFAULT_BASE_URL
        if not (key or secret or token) and cloud:
            raise ConfigurationError(
                "no Visual Layer credentials in the environment or the config file",
                hint="set VL_API_KEY and VL_API_SECRET (or VL_TOKEN), or write api_key and "
                f"api_secret to {config_path(os.environ if environ is None else environ)}",
            )
        return cls(base_url, api_key=key, api_secret=secret, token=token, **kwargs)

    def __repr__(self) -> str:
        auth = "api_key" if self._api_key else "token" if self._token else "none"
        return f"VisualLayerClient(base_url={self.base_url!r}, auth={auth!r})"

    def __enter__(self) -> VisualLayerClient:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def close(self) -> None:
        """Close the HTTP connections."""
        self.session.close()
        self._once_session.close()

    # -- auth ------------------------------------------------------------------------

    def _bearer(self) -> str | None:
        if self._api_key and self._api_secret:
            now = self.clock()
            # Re-sign well before expiry so a request in flight never carries a dead token.
            margin = min(60.0, self.token_lifetime / 4)
            if self._signed is None or now >= self._signed[1] - margin:
                signed = sign_token(
                    self._api_key, self._api_secret, now=now, lifetime=self.token_lifetime
                )
                self._signed = (signed, float(int(now) + self.token_lifetime))
            return self._signed[0]
        return self._token

    def auth_headers(self, url: str | None = None) -> dict[str, str]:
        """Headers to send to ``url``: the bearer token, but only to the API's own host.

        A presigned storage URL must get no Authorization header: S3 rejects two auth
        mechanisms, and the token must not leak to a third party.
        """
        if url is not None and not self._same_origin(url):
            return {}
        bearer = self._bearer()
        return {"Authorization": f"Bearer {bearer}"} if bearer else {}

    def _same_origin(self, url: str) -> bool:
        a, b = urlsplit(url), urlsplit(self.base_url)
        return (a.scheme, a.hostname, a.port) == (b.scheme, b.hostname, b.port)

    def resolve_url(self, uri: str) -> str:
        """Join a relative ``download_uri`` (on-premise) to the base URL."""
        return urljoin(self.base_url + "/", uri)

    # -- HTTP ------------------------------------------------------------------------

    def _request(
        self,
        method: str,
        path: str,
        *,
        dataset_id: str,
        params: Mapping[str, str] | None = None,
        json: Any = None,
        creates_task: bool = False,
    ) -> Any:
        url = f"{self.base_url}/api/v1{path}"
        session = self._once_session if creates_task else self.session
        try:
            response = session.request(
                method,
                url,
                params=params,
                json=json,
                headers={"Accept": "application/json", **self.auth_headers()},
                timeout=self.timeout,
            )
        except requests.RequestException as exc:
            raise APIConnectionError(
                f"cannot reach {redact_url(url)} ({type(exc).__name__})",
                hint="check VL_BASE_URL and the network, then retry",
            ) from exc
        with response:
            if response.status_code >= 400:
                self._raise_for_status(response, dataset_id, creates_task=creates_task)
            try:
                return response.json()
            except ValueError as exc:
                raise APIError(
                    f"{method} {redact_url(url)} answered {response.status_code} without JSON",
                    status_code=response.status_code,
                ) from exc

    def _raise_for_status(
        self, response: requests.Response, dataset_id: str, *, creates_task: bool
    ) -> None:
        credentials = "key" if self._api_key else "token" if self._token else None
        raise status_error(
            response,
            dataset_id,
            creates_task=creates_task,
            base_url=self.base_url,
            credentials=credentials,
            status_of=lambda: self._status_of(dataset_id),
        )

    def _status_of(self, dataset_id: str) -> str:
        try:
            dataset = self.get_dataset(dataset_id)
        except APIError:
            return "unknown"
        return str(dataset.get("status_new") or dataset.get("status") or "unknown")

    # -- the export API --------------------------------------------------------------

    def get_dataset(self, dataset_id: str) -> dict[str, Any]:
        """Return the dataset's description (``status_new`` or ``status``, name, ...)."""
        data = self._request("GET", f"/dataset/{dataset_id}", dataset_id=dataset_id)
        return dict(data) if isinstance(data, Mapping) else {}

    def start_export(
        self,
        dataset_id: str,
        *,
        export_format: str = "json",
        include_images: bool = False,
        file_name: str | None = None,
    ) -> ExportTask:
        """Start a full export of a dataset (``export_context_async``).

        Raises:
            APIError: The server refused (404 unknown dataset, 409 not READY, 422, ...).
        """
        params = {
            "file_name": file_name or f"{dataset_id}.zip",
            "export_format": export_format,
            "include_images": "true" if include_images else "false",
        }
        data = self._request(
            "GET",
            f"/dataset/{dataset_id}/export_context_async",
            dataset_id=dataset_id,
            params=params,
            creates_task=True,
        )
        return self._task(data, dataset_id)

    def start_selective_export(
        self,
        dataset_id: str,
        *,
        media_ids: Sequence[str] = (),
        cluster_id: str | None = None,
        exclude_media_ids: Sequence[str] = (),
        export_format: str = "json",
        include_images: bool = False,
    ) -> ExportTask:
        """Export chosen media and/or one cluster (``export_entities_async``).

        Raises:
            ValueError: Neither media ids nor a cluster were given.
            APIError: The server refused.
        """
        selection: list[dict[str, Any]] = []
        if media_ids:
            selection.append({"type": "media", "payload": {"media_ids": list(media_ids)}})
        if cluster_id:
            payload = {
                "cluster_id": cluster_id,
                "cluster_filters": {"entity_type": "IMAGES"},
                "exclude_media_ids": list(exclude_media_ids),
            }
            selection.append({"type": "cluster", "payload": payload})
        if not selection:
            raise ValueError("a selective export needs media_ids or a cluster_id")
        params = {
            "export_format": export_format,
            "include_images": "true" if include_images else "false",
        }
        data = self._request(
            "POST",
            f"/dataset/{dataset_id}/export_entities_async",
            dataset_id=dataset_id,
            params=params,
            json={"media_selection": selection},
            creates_task=True,
        )
        return self._task(data, dataset_id)

    def _task(self, data: Any, dataset_id: str) -> ExportTask:
        task = ExportTask.from_response(data if isinstance(data, Mapping) else {}, dataset_id)
        if not task.id:
            raise APIError(f"the server started an export of {dataset_id} but sent no task id")
        return task

    def export_status(self, dataset_id: str, task_id: str) -> ExportTask:
        """Return the current state of an export task.

        Raises:
            APIError: 404 when the server no longer knows the task (e.g. it restarted).
        """
        try:
            data = self._request(
                "GET",
                f"/dataset/{dataset_id}/export_status",
                dataset_id=dataset_id,
                params={"export_task_id": task_id},
            )
        except APIError as exc:
            if exc.status_code != 404 or isinstance(exc, AuthenticationError):
                raise
            raise APIError(
                f"export task {task_id} of dataset {dataset_id} not found (404): the server "
                f"no longer knows it ({exc.detail})",
                status_code=404,
                detail=exc.detail,
                hint="the server may have restarted; start a new export (without --task-id)",
            ) from None
        mapping = data if isinstance(data, Mapping) else {}
        return ExportTask.from_response({"id": task_id, **mapping}, dataset_id)

    def wait_for_export(
        self,
        dataset_id: str,
        task_id: str,
        *,
        interval: float = 2.0,
        max_interval: float = 30.0,
        timeout: float = 3600.0,
        on_poll: Callable[[ExportTask], None] | None = None,
    ) -> ExportTask:
        """Poll an export task with back-off until it is COMPLETED.

        Raises:
            ExportFailedError: The task ended FAILED or REJECTED (with the server's reason).
            ExportTimeoutError: ``timeout`` seconds passed first (resume with the task id).
        """
        start, delay = self.clock(), interval
        while True:
            task = self.export_status(dataset_id, task_id)
            if on_poll is not None:
                on_poll(task)
            # A COMPLETED task without a download_uri yet is polled once more.
            if task.status == "COMPLETED" and task.download_uri:
                return task
            if task.status in ("FAILED", "REJECTED"):
                raise ExportFailedError(
                    f"export task {task_id} of dataset {dataset_id} ended {task.status}: "
                    f"{task.result_message or 'no reason given'}",
                    detail=task.result_message,
                    hint="start the export again; if it fails again, give Visual Layer's "
                    "support the task id and this reason",
                )
            waited = self.clock() - start
            if waited >= timeout:
                raise ExportTimeoutError(
                    f"export task {task_id} still {task.status} when the {_seconds(timeout)} "
                    "timeout ran out",
                    task_id=task_id,
                    fix=Fix("task_id", "to resume waiting later", task_id),
                )
            # The last wait is cut short so that the last poll comes at the timeout.
            self.sleep(min(delay, timeout - waited))
            delay = min(delay * 1.5, max_interval)


def _without_userinfo(base_url: str) -> str:
    """Refuse a base URL holding ``user:password@``: it would be sent as Basic auth in
    place of the bearer token, and written wherever the URL is recorded."""
    parts = urlsplit(base_url)
    if "@" not in parts.netloc:
        return base_url
    raise ConfigurationError(
        f"the base URL {redact_url(base_url)} holds a user name or password",
        hint="remove 'user:password@' from VL_BASE_URL; authenticate with VL_API_KEY and "
        "VL_API_SECRET, or VL_TOKEN",
    )


def _seconds(seconds: float) -> str:
    return f"{seconds:g}s" if seconds < 60 else f"{seconds / 60:g} min"
