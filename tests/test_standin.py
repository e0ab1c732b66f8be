"""The stand-in itself: the seed's curl script against it, auth, storage host, the log."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest
import requests

from vlanalyze.fetch._client import sign_token
from vlanalyze.testing import StandIn

# The automation script of Visual Layer's official export page (the seed), with only the
# scrape's broken spacing mended. The test substitutes DATASET_ID, JWT_TOKEN and the host.
SEED_SCRIPT = r"""#!/bin/bash
DATASET_ID="your-dataset-id"
JWT_TOKEN="your-jwt-token"
FILENAME="export.zip"
echo "Initiating export..."
EXPORT_TASK_RESPONSE=$(curl -s -G \
-H "Authorization: Bearer $JWT_TOKEN" \
-H "Accept: application/json" \
--data-urlencode "file_name=$FILENAME" \
--data-urlencode "export_format=json" \
--data-urlencode "include_images=false" \
"https://app.visual-layer.com/api/v1/dataset/$DATASET_ID/export_context_async")
EXPORT_TASK_ID=$(echo $EXPORT_TASK_RESPONSE | grep -o '"id":"[^"]*' | cut -d ':' -f2 | tr -d '"')
echo "Export Task ID: $EXPORT_TASK_ID"
echo "Polling for completion..."
STATUS="PENDING"
while [ "$STATUS" != "COMPLETED" ]; do
STATUS_RESPONSE=$(curl -s \
-H "Authorization: Bearer $JWT_TOKEN" \
"https://app.visual-layer.com/api/v1/dataset/$DATASET_ID/export_status?export_task_id=$EXPORT_TASK_ID")
STATUS=$(echo $STATUS_RESPONSE | grep -o '"status":"[^"]*' | cut -d ':' -f2 | tr -d '"')
echo "Status: $STATUS"
[ "$STATUS" = "FAILED" ] && echo "Export failed." && exit 1
[ "$STATUS" != "COMPLETED" ] && sleep 5
done
DOWNLOAD_URI=$(echo $STATUS_RESPONSE | grep -o '"download_uri":"[^"]*' | cut -d ':' -f2- | sed 's/^"//' | sed 's/"$//' | sed 's/\\//g')
echo "Downloading..."
curl -L "$DOWNLOAD_URI" --output $FILENAME
echo "Extracting..."
unzip $FILENAME -d exported_dataset
echo "Done."
"""  # noqa: E501


def _seed_script(stand_in: StandIn, token: str) -> str:
    return (
        SEED_SCRIPT.replace('"your-dataset-id"', f'"{stand_in.dataset_id}"')
        .replace('"your-jwt-token"', f'"{token}"')
        .replace("https://app.visual-layer.com", stand_in.base_url)
    )


def _run_seed(stand_in: StandIn, tmp_path: Path) -> subprocess.CompletedProcess[str]:
    for tool in ("bash", "curl", "unzip"):
        if shutil.which(tool) is None:
            pytest.skip(f"the seed script needs {tool}, which is not installed")
    script = tmp_path / "export.sh"
    script.write_text(_seed_script(stand_in, stand_in.token()), encoding="utf-8")
    # The script's "sleep 5" between polls would slow the suite: a no-op sleep on PATH
    # keeps the script itself unchanged.
    shim = tmp_path / "bin"
    shim.mkdir()
    (shim / "sleep").write_text("#!/bin/sh\nexit 0\n", encoding="utf-8")
    (shim / "sleep").chmod(0o755)
    env = {**os.environ, "PATH": f"{shim}{os.pathsep}{os.environ['PATH']}"}
    return subprocess.run(
        ["bash", str(script)], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60
    )


def test_the_seed_curl_script_works_against_the_stand_in(demo_export: Path, tmp_path: Path) -> None:
    with StandIn(demo_export) as stand_in:
        result = _run_seed(stand_in, tmp_path)
        assert result.returncode == 0, result.stdout + result.stderr
        assert "Status: IN_PROGRESS" in result.stdout and "Done." in result.stdout
        extracted = tmp_path / "exported_dataset" / "metadata.json"
        assert extracted.read_bytes() == (demo_export / "metadata.json").read_bytes()
        storage = [r for r in stand_in.requests if r.path.startswith("/storage/")]
        assert len(storage) == 1 and storage[0].hostname == "localhost"


def test_the_seed_script_stops_on_a_failed_export(demo_export: Path, tmp_path: Path) -> None:
    with StandIn(demo_export) as stand_in:
        stand_in.final_status = "FAILED"
        result = _run_seed(stand_in, tmp_path)
    assert result.returncode == 1 and "Export failed." in result.stdout


@pytest.mark.parametrize(
    ("key", "secret", "lifetime"),
    [
        ("stand-in-key", "a-different-secret-of-enough-length", 600),
        ("someone-else", "stand-in-secret-for-local-testing-only", 600),
        ("stand-in-key", "stand-in-secret-for-local-testing-only", -10),
    ],
)
def test_bad_tokens_get_401(
    stand_in: StandIn, clock: object, key: str, secret: str, lifetime: int
) -> None:
    token = sign_token(key, secret, now=stand_in.clock(), lifetime=lifetime)
    url = f"{stand_in.base_url}/api/v1/dataset/{stand_in.dataset_id}"
    with requests.Session() as session:
        assert session.get(url, timeout=5).status_code == 401
        response = session.get(url, headers={"Authorization": f"Bearer {token}"}, timeout=5)
    assert response.status_code == 401 and "detail" in response.json()


def test_no_auth_mode_is_like_on_premise(demo_export: Path) -> None:
    with (
        StandIn(demo_export, api_key=None, api_secret=None) as stand_in,
        requests.Session() as session,
    ):
        url = f"{stand_in.base_url}/api/v1/dataset/{stand_in.dataset_id}"
        assert session.get(url, timeout=5).json()["status_new"] == "READY"


def test_storage_host_rejects_authorization_and_bad_signatures(stand_in: StandIn) -> None:
    stand_in.polls_to_complete = 0
    headers = {"Authorization": f"Bearer {stand_in.token()}"}
    api = f"{stand_in.base_url}/api/v1/dataset/{stand_in.dataset_id}"
    with requests.Session() as session:
        task_id = session.get(f"{api}/export_context_async", headers=headers, timeout=5).json()
        status = session.get(
            f"{api}/export_status", params={"export_task_id": task_id["id"]}, headers=headers
        ).json()
        uri = status["download_uri"]
        assert uri.startswith("http://localhost:")
        two_auth = session.get(uri, headers=headers, timeout=5)
        assert two_auth.status_code == 400 and "Only one auth mechanism" in two_auth.text
        forged = session.get(uri.replace("X-Signature=", "X-Signature=0"), timeout=5)
        assert forged.status_code == 403
        wrong_host = session.get(uri.replace("localhost", "127.0.0.1"), timeout=5)
        assert wrong_host.status_code == 404
        assert session.get(uri, timeout=5).content[:2] == b"PK"
    assert [r.has_authorization for r in stand_in.requests if r.hostname == "localhost"] == [
        True,
        False,
        False,
    ]
    assert all(r.headers.get("authorization") in (None, "<redacted>") for r in stand_in.requests)


def test_unknown_task_and_bad_selection(stand_in: StandIn) -> None:
    headers = {"Authorization": f"Bearer {stand_in.token()}"}
    api = f"{stand_in.base_url}/api/v1/dataset/{stand_in.dataset_id}"
    with requests.Session() as session:
        missing = session.get(f"{api}/export_status?export_task_id=x", headers=headers)
        assert missing.status_code == 404
        bad = session.post(f"{api}/export_entities_async", json={}, headers=headers, timeout=5)
        assert bad.status_code == 422
