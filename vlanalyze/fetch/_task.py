"""Value types of the export API: :class:`ExportTask`, and the JWT the service expects.

Shared by the client and the stand-in; no HTTP here. Import them from
:mod:`vlanalyze.fetch._client`.
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import jwt
from jwt.warnings import InsecureKeyLengthWarning

from vlanalyze.errors import redact_url

TERMINAL_STATUSES = frozenset({"COMPLETED", "FAILED", "REJECTED"})


@dataclass(frozen=True)
class ExportTask:
    """One export task as the server last described it."""

    id: str
    dataset_id: str
    status: str
    progress: float | None = None
    entities_count: int | None = None
    result_message: str | None = None
    download_uri: str | None = None
    created_at: str | None = None
    raw: Mapping[str, Any] = field(default_factory=dict)

    @classmethod
    def from_response(cls, data: Mapping[str, Any], dataset_id: str) -> ExportTask:
        """Build a task from a start or status response (``{"id": ...}`` or a full task)."""
        progress = data.get("progress")
        count = data.get("entities_count")
        return cls(
            id=str(data.get("id") or data.get("export_task_id") or ""),
            dataset_id=str(data.get("dataset_id") or dataset_id),
            status=str(data.get("status") or "INIT").upper(),
            progress=float(progress) if isinstance(progress, int | float) else None,
            entities_count=int(count) if isinstance(count, int | float) else None,
            result_message=data.get("result_message"),
            download_uri=data.get("download_uri") or None,
            created_at=data.get("created_at"),
            raw=dict(data),
        )

    @property
    def is_terminal(self) -> bool:
        """True once the task is COMPLETED, FAILED or REJECTED; unknown statuses are not."""
        return self.status in TERMINAL_STATUSES

    @property
    def fraction(self) -> float | None:
        """Progress as 0..1; the API sends either 0..1 or 0..100."""
        if self.progress is None:
            return None
        value = self.progress / 100 if self.progress > 1 else self.progress
        return min(max(value, 0.0), 1.0)

    def __repr__(self) -> str:
        # download_uri is a presigned URL: its query string is a credential.
        uri = redact_url(self.download_uri) if self.download_uri else None
        return (
            f"ExportTask(id={self.id!r}, dataset_id={self.dataset_id!r}, "
            f"status={self.status!r}, progress={self.progress!r}, download_uri={uri!r})"
        )


def sign_token(api_key: str, api_secret: str, *, now: float, lifetime: int = 600) -> str:
    """Sign a Visual Layer JWT: HS256, header ``kid`` = key, claims sub/iat/exp/iss="sdk"."""
    claims = {"sub": api_key, "iat": int(now), "exp": int(now) + lifetime, "iss": "sdk"}
    with warnings.catch_warnings():
        # The secret's length is Visual Layer's choice, not the user's: a warning on
        # every call would be noise they cannot act on.
        warnings.simplefilter("ignore", InsecureKeyLengthWarning)
        return jwt.encode(claims, api_secret, algorithm="HS256", headers={"kid": api_key})
