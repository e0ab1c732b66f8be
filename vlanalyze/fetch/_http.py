"""HTTP plumbing of the client: retry policies, sessions, error details.

No knowledge of the export API's calls here; see :mod:`vlanalyze.fetch._client`.
"""

from __future__ import annotations

import requests
from requests.adapters import HTTPAdapter
from urllib3.util.retry import Retry

_RETRY_STATUSES = (429, 500, 502, 503, 504)


def make_retry(total: int, backoff: float, *, idempotent: bool) -> Retry:
    """The retry policy of a session: idempotent calls, or calls that create a task."""
    if idempotent:
        return Retry(
            total=total,
            backoff_factor=backoff,
            backoff_jitter=backoff,
            status_forcelist=_RETRY_STATUSES,
            allowed_methods=frozenset({"GET", "HEAD"}),
            respect_retry_after_header=True,
            raise_on_status=False,
        )
    # Calls that create an export task: a request that may have reached the server is
    # not repeated, because a second export would start beside the first (costly, and
    # the first one's id would be lost). Only failures where the server provably did
    # nothing are retried: connection refused, and 429 (explicitly rejected).
    return Retry(
        total=total,
        connect=total,
        read=0,
        other=0,
        status=total,
        backoff_factor=backoff,
        backoff_jitter=backoff,
        status_forcelist=(429,),
        allowed_methods=None,
        respect_retry_after_header=True,
        raise_on_status=False,
    )


def make_session(retry: Retry) -> requests.Session:
    """A session that retries by ``retry`` over http and https."""
    session = requests.Session()
    adapter = HTTPAdapter(max_retries=retry)
    session.mount("http://", adapter)
    session.mount("https://", adapter)
    return session


def detail_of(response: requests.Response) -> str:
    """The server's ``detail`` text of an error response (or its reason phrase)."""
    try:
        detail = response.json().get("detail")
    except (ValueError, AttributeError):
        return response.reason or ""
    if isinstance(detail, list):  # FastAPI validation errors: [{"msg": ...}, ...]
        return "; ".join(str(d.get("msg", d)) if isinstance(d, dict) else str(d) for d in detail)
    return str(detail) if detail is not None else (response.reason or "")
