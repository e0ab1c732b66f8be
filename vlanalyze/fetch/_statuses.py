"""An error status from the export API as one of the project's errors, with a next step.

The messages name the dataset, the URL tried (redacted) and, for a 401, the credentials
this client actually has, so the hint never talks about a variable that was not set.
"""

from __future__ import annotations

from collections.abc import Callable

import requests

from vlanalyze.errors import APIError, AuthenticationError, redact_url
from vlanalyze.fetch._http import detail_of


def status_error(
    response: requests.Response,
    dataset_id: str,
    *,
    creates_task: bool,
    base_url: str,
    credentials: str | None,
    status_of: Callable[[], str],
) -> APIError:
    """The error for ``response`` (status >= 400).

    Args:
        response: the API's answer.
        dataset_id: the dataset the call was about.
        creates_task: the call starts an export (a 5xx may have started it anyway).
        base_url: the client's base URL, shown in hints.
        credentials: ``"key"``, ``"token"`` or None: what the client sends.
        status_of: asks the dataset's status (for a 409), as a last request.
    """
    code, detail = response.status_code, detail_of(response)
    hint: str | None = None
    if code == 401:
        return auth_error(detail, base_url=base_url, credentials=credentials)
    message = f"HTTP {code} for dataset {dataset_id}: {detail}"
    if code == 403:
        message = f"403: no permission for dataset {dataset_id} ({detail})"
        hint = "check that this API key's user has access to the dataset"
    elif code == 404:
        message = f"dataset {dataset_id} not found (404 from {redact_url(response.url)})"
        hint = (
            "check the id (in the dataset's URL), that your account can see it, "
            f"and VL_BASE_URL (now {base_url})"
        )
    elif code == 409:
        status = status_of()
        if status == "READY":  # the conflict is elsewhere (an export already running?)
            message = f"409 (conflict) for dataset {dataset_id}: {detail}"
            hint = "wait for the dataset's running export to end, then retry"
        else:
            message = f"dataset {dataset_id} is not READY (status: {status})"
            hint = "wait until the dataset is READY, then retry"
    elif code == 422:
        message = f"the server rejected the request (422): {detail}"
    elif creates_task and code >= 500:
        hint = "the export may have started anyway; retry, or check the dataset's exports"
    return APIError(message, status_code=code, detail=detail, hint=hint)


def auth_error(
    detail: str | None, *, base_url: str, credentials: str | None
) -> AuthenticationError:
    """A 401, with a hint about the credentials the client actually has."""
    if credentials == "key":
        what, hint = "bad or expired credentials", "check VL_API_KEY and VL_API_SECRET"
    elif credentials == "token":
        what = "bad or expired token"
        hint = "VL_TOKEN is invalid or expired: set a fresh one, or VL_API_KEY/VL_API_SECRET"
    else:
        what = f"{redact_url(base_url)} wants credentials and none are set"
        hint = "set VL_API_KEY and VL_API_SECRET (or VL_TOKEN), or check VL_BASE_URL"
    return AuthenticationError(f"401: {what} ({detail})", status_code=401, detail=detail, hint=hint)
