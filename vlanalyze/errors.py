"""The one exception tree of vlanalyze.

Every error a user can cause (bad input, bad credentials, a server that says no) is a
:class:`VLAnalyzeError`. Caller bugs stay ``TypeError``/``ValueError``. Messages carry
the concrete values (path, column, task id, member name) and, where the next step is
obvious, a ``hint``; a hint that is "pass this argument" is a :class:`Fix`, which names
the Python argument (``overwrite=True``) and lets the CLI name its flag instead. Secrets
never appear in a message: redact URLs with :func:`redact_url` before putting them in
one.

::

    VLAnalyzeError
    ├── ConfigurationError          missing/invalid credentials or settings
    ├── APIError                    the export API answered with an error (.status_code, .detail)
    │   ├── AuthenticationError     401
    │   ├── APIConnectionError      could not reach the server (after retries)
    │   ├── ExportFailedError       task ended FAILED / REJECTED
    │   └── ExportTimeoutError      polling ran out of time (.task_id)
    ├── DownloadError               download broken, wrong size, bad Content-Range
    ├── ArchiveError                corrupt ZIP, no metadata inside
    │   └── UnsafeArchiveError      hostile member (path traversal, symlink, bomb)
    ├── ExportFormatError           metadata file is not a readable Visual Layer export
    ├── CacheError                  the table cache cannot be read or written
    ├── QueryError                  SQL failed (syntax, unknown column, bad parameter)
    ├── SelectionError              a selection names unknown labels, ids, ...
    └── MaterializeError            writing files would overwrite or escape the target
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from urllib.parse import urlsplit, urlunsplit


@dataclass(frozen=True)
class Fix:
    """A hint that is a caller's argument: "pass overwrite=True to replace it".

    Kept as data, not text, so that a front end names its own spelling of the argument
    (the CLI says ``--overwrite``) without rewriting messages.
    """

    argument: str  # the Python keyword argument, e.g. "overwrite"
    purpose: str  # what passing it does, e.g. "to replace it"
    value: object = True  # the value to pass; None: one of the caller's choosing
    prefix: str = ""  # what comes before "pass ...", e.g. "reopen and "

    def spell(self, flag: str | None = None) -> str:
        """The hint, naming the argument in Python, or as the command-line ``flag``."""
        if flag is None:
            shown = "..." if self.value is None else repr(self.value)
            spelled = f"{self.argument}={shown}"
        elif self.value is True:
            spelled = flag
        else:
            shown = self.argument.upper() if self.value is None else str(self.value)
            spelled = f"{flag} {shown}"
        return f"{self.prefix}pass {spelled} {self.purpose}"


class VLAnalyzeError(Exception):
    """Base class of every error vlanalyze raises on bad input or a failing service.

    ``hint`` says what to do next; when the next step is passing an argument, ``fix``
    says which (and ``hint`` is spelled from it for Python callers).
    """

    def __init__(self, message: str, *, hint: str | None = None, fix: Fix | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.fix = fix
        self.hint = fix.spell() if fix is not None and hint is None else hint

    def __str__(self) -> str:
        return self.describe()

    def describe(self, spellings: Mapping[str, str] | None = None) -> str:
        """The message and hint, naming ``fix``'s argument as ``spellings`` says (CLI flags)."""
        hint = self.hint
        if self.fix is not None and spellings and self.fix.argument in spellings:
            hint = self.fix.spell(spellings[self.fix.argument])
        return f"{self.message} ({hint})" if hint else self.message


class ConfigurationError(VLAnalyzeError):
    """Credentials or settings are missing or invalid."""


class APIError(VLAnalyzeError):
    """The export API answered with an error status."""

    def __init__(
        self,
        message: str,
        *,
        status_code: int | None = None,
        detail: str | None = None,
        hint: str | None = None,
        fix: Fix | None = None,
    ) -> None:
        super().__init__(message, hint=hint, fix=fix)
        self.status_code = status_code
        self.detail = detail


class AuthenticationError(APIError):
    """401: the token is missing, invalid or expired."""


class APIConnectionError(APIError):
    """The server could not be reached, even after retries."""


class ExportFailedError(APIError):
    """The export task ended FAILED or REJECTED."""


class ExportTimeoutError(APIError):
    """Polling an export task ran out of time."""

    def __init__(
        self, message: str, *, task_id: str, hint: str | None = None, fix: Fix | None = None
    ) -> None:
        super().__init__(message, hint=hint, fix=fix)
        self.task_id = task_id


class DownloadError(VLAnalyzeError):
    """A download broke off, had the wrong size or a wrong Content-Range."""


class ArchiveError(VLAnalyzeError):
    """A ZIP archive is corrupt or does not hold an export."""


class UnsafeArchiveError(ArchiveError):
    """A ZIP member would escape the target folder, is a link, or is a zip bomb."""


class ExportFormatError(VLAnalyzeError):
    """A metadata file is not a readable Visual Layer export."""


class CacheError(VLAnalyzeError):
    """The Parquet cache of an export cannot be read or written."""


class QueryError(VLAnalyzeError):
    """A SQL query failed."""


class SelectionError(VLAnalyzeError):
    """A selection names something the export does not have."""


class MaterializeError(VLAnalyzeError):
    """Writing files would overwrite a user's file or escape the target folder."""


def redact_url(url: str) -> str:
    """Return ``url`` without its query string and user info, safe to show in a message."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return "<url>"
    netloc = parts.hostname or ""
    if parts.port:
        netloc = f"{netloc}:{parts.port}"
    query = "<redacted>" if parts.query else ""
    return urlunsplit((parts.scheme, netloc, parts.path, query, ""))
