"""The export API client against the stand-in, over real HTTP on loopback."""

from __future__ import annotations

import socket
import time
from pathlib import Path

import jwt
import pytest
from conftest import FakeClock

from vlanalyze.errors import (
    APIConnectionError,
    APIError,
    AuthenticationError,
    ConfigurationError,
    ExportFailedError,
    ExportTimeoutError,
)
from vlanalyze.fetch._client import DEFAULT_BASE_URL, ExportTask, VisualLayerClient
from vlanalyze.fetch._config import settings
from vlanalyze.testing import StandIn


def _calls(stand_in: StandIn, suffix: str) -> int:
    return sum(1 for r in stand_in.requests if r.path.endswith(suffix))


def test_repr_never_shows_secrets() -> None:
    client = VisualLayerClient(api_key="the-key", api_secret="s3cr3t-value-" * 3)
    with client:
        assert "s3cr3t" not in repr(client)
        assert "s3cr3t" not in repr(client.auth_headers())  # a JWT, not the secret
    task = ExportTask(
        id="t", dataset_id="d", status="COMPLETED", download_uri="https://s3/x.zip?X-Sig=abc"
    )
    assert "X-Sig" not in repr(task)
    assert "<redacted>" in repr(task)


def test_signed_token_has_the_documented_claims(clock: FakeClock) -> None:
    secret = "x" * 32
    with VisualLayerClient(api_key="k", api_secret=secret, clock=clock, token_lifetime=90) as c:
        token = c.auth_headers()["Authorization"].removeprefix("Bearer ")
    assert jwt.get_unverified_header(token)["kid"] == "k"
    claims = jwt.decode(token, secret, algorithms=["HS256"], options={"verify_exp": False})
    assert (claims["sub"], claims["iss"], claims["exp"] - claims["iat"]) == ("k", "sdk", 90)


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({}, "VL_API_KEY and VL_API_SECRET"),
        ({"VL_API_KEY": "k"}, "VL_API_SECRET is missing"),
        ({"VL_API_SECRET": "s"}, "VL_API_KEY is missing"),
    ],
)
def test_from_env_reports_missing_credentials(env: dict[str, str], message: str) -> None:
    with pytest.raises(ConfigurationError, match=message):
        VisualLayerClient.from_env(env)


def test_from_env_on_premise_and_ready_token() -> None:
    with VisualLayerClient.from_env({"VL_BASE_URL": "http://host:2080/"}) as on_prem:
        assert on_prem.base_url == "http://host:2080"
        assert on_prem.auth_headers() == {}
    with VisualLayerClient.from_env({"VL_TOKEN": "abc"}) as ready:
        assert ready.base_url == DEFAULT_BASE_URL
        assert ready.auth_headers() == {"Authorization": "Bearer abc"}
        assert ready.auth_headers("https://bucket.s3.amazonaws.com/x.zip?sig") == {}


def test_full_export_polls_through_the_states(
    client: VisualLayerClient, stand_in: StandIn, clock: FakeClock
) -> None:
    stand_in.polls_to_complete = 3
    assert client.get_dataset(stand_in.dataset_id)["status_new"] == "READY"
    task = client.start_export(stand_in.dataset_id, export_format="json", include_images=True)
    seen: list[ExportTask] = []
    done = client.wait_for_export(stand_in.dataset_id, task.id, interval=2, on_poll=seen.append)
    assert [t.status for t in seen] == ["INIT", "IN_PROGRESS", "IN_PROGRESS", "COMPLETED"]
    assert done.download_uri and done.download_uri.startswith("http://localhost:")
    assert clock.slept == [2, 3, 4.5]  # back-off
    start = next(r for r in stand_in.requests if r.path.endswith("export_context_async"))
    assert start.query["include_images"] == ["true"]
    assert start.query["export_format"] == ["json"]


def test_start_accepts_a_whole_task_object(client: VisualLayerClient, stand_in: StandIn) -> None:
    stand_in.start_response = "task"
    task = client.start_export(stand_in.dataset_id)
    assert task.status == "INIT" and task.id in stand_in.tasks


def test_selective_export_sends_the_documented_body(
    client: VisualLayerClient, stand_in: StandIn
) -> None:
    client.start_selective_export(
        stand_in.dataset_id,
        media_ids=["m1", "m2"],
        cluster_id="c1",
        exclude_media_ids=["m3"],
        include_images=True,
    )
    (request,) = [r for r in stand_in.requests if r.method == "POST"]
    assert request.body == {
        "media_selection": [
            {"type": "media", "payload": {"media_ids": ["m1", "m2"]}},
            {
                "type": "cluster",
                "payload": {
                    "cluster_id": "c1",
                    "cluster_filters": {"entity_type": "IMAGES"},
                    "exclude_media_ids": ["m3"],
                },
            },
        ]
    }
    with pytest.raises(ValueError, match="media_ids or a cluster_id"):
        client.start_selective_export(stand_in.dataset_id)


def test_401_names_the_variables_and_hides_the_secret(stand_in: StandIn) -> None:
    wrong = "wrong-secret-but-long-enough-for-hs256"
    with (
        VisualLayerClient(stand_in.base_url, api_key=stand_in.api_key, api_secret=wrong) as c,
        pytest.raises(AuthenticationError, match="VL_API_KEY and VL_API_SECRET") as info,
    ):
        c.start_export(stand_in.dataset_id)
    assert info.value.status_code == 401
    assert wrong not in str(info.value)


@pytest.mark.parametrize(
    ("setup", "status", "message"),
    [
        ("forbidden", 403, "403: no permission for dataset"),
        ("unknown", 404, "dataset nope not found"),
        ("indexing", 409, "is not READY (status: INDEXING)"),
        ("running", 409, "409 (conflict) for dataset {id}: an export is already running"),
        ("bad-format", 422, "Input should be 'json' or 'parquet'"),
    ],
)
def test_error_statuses(
    client: VisualLayerClient, stand_in: StandIn, setup: str, status: int, message: str
) -> None:
    dataset, export_format = stand_in.dataset_id, "json"
    if setup == "forbidden":
        stand_in.fail(403, detail="Forbidden")
    elif setup == "unknown":
        dataset = "nope"
    elif setup == "indexing":
        stand_in.dataset_status = "INDEXING"
    elif setup == "running":  # READY, but the server says no: its reason is shown
        stand_in.fail(409, detail="an export is already running", path_contains="export")
    else:
        export_format = "xml"
    message = message.format(id=dataset)
    with pytest.raises(APIError, match=message.replace("(", r"\(").replace(")", r"\)")) as info:
        client.start_export(dataset, export_format=export_format)
    assert info.value.status_code == status
    assert info.value.hint or status == 422


@pytest.mark.parametrize("final", ["FAILED", "REJECTED"])
def test_failed_and_rejected_raise_with_the_servers_reason(
    client: VisualLayerClient, stand_in: StandIn, final: str
) -> None:
    stand_in.final_status, stand_in.result_message = final, "quota exceeded"
    task = client.start_export(stand_in.dataset_id)
    with pytest.raises(ExportFailedError, match=f"ended {final}: quota exceeded") as info:
        client.wait_for_export(stand_in.dataset_id, task.id)
    assert info.value.hint and "start the export again" in info.value.hint


def test_unknown_status_is_not_terminal_and_timeout_says_how_to_resume(
    client: VisualLayerClient, stand_in: StandIn, clock: FakeClock
) -> None:
    stand_in.final_status = "SOMETHING_NEW"
    task = client.start_export(stand_in.dataset_id)
    with pytest.raises(ExportTimeoutError, match=f"pass task_id='{task.id}' to resume") as info:
        client.wait_for_export(stand_in.dataset_id, task.id, interval=10, timeout=100)
    assert info.value.task_id == task.id
    assert sum(clock.slept) <= 100


def test_token_is_re_signed_before_it_expires_mid_poll(stand_in: StandIn, clock: FakeClock) -> None:
    stand_in.polls_to_complete = 8
    with VisualLayerClient(
        stand_in.base_url,
        api_key=stand_in.api_key,
        api_secret=stand_in.api_secret,
        token_lifetime=60,
        sleep=clock.sleep,
        clock=clock,
    ) as client:
        task = client.start_export(stand_in.dataset_id)
        done = client.wait_for_export(stand_in.dataset_id, task.id, interval=30, max_interval=30)
    assert done.status == "COMPLETED" and sum(clock.slept) > 3 * 60


def test_a_ready_token_that_expires_mid_poll_is_reported(
    stand_in: StandIn, clock: FakeClock
) -> None:
    stand_in.polls_to_complete = 8
    token = stand_in.token(lifetime=60)
    with VisualLayerClient(stand_in.base_url, token=token, sleep=clock.sleep, clock=clock) as c:
        task = c.start_export(stand_in.dataset_id)
        with pytest.raises(AuthenticationError, match="VL_TOKEN") as info:
            c.wait_for_export(stand_in.dataset_id, task.id, interval=30, max_interval=30)
    assert token not in str(info.value)


def test_status_calls_are_retried_on_5xx(client: VisualLayerClient, stand_in: StandIn) -> None:
    task = client.start_export(stand_in.dataset_id)
    stand_in.fail(503, times=2, path_contains="export_status")
    assert client.export_status(stand_in.dataset_id, task.id).status == "INIT"
    assert _calls(stand_in, "export_status") == 3


def test_retry_after_is_honoured(client: VisualLayerClient, stand_in: StandIn) -> None:
    stand_in.fail(429, retry_after=1, path_contains="/dataset/")
    started = time.monotonic()
    client.get_dataset(stand_in.dataset_id)
    assert time.monotonic() - started >= 0.9
    assert len(stand_in.requests) == 2


def test_the_call_that_creates_a_task_is_not_retried_on_5xx(
    client: VisualLayerClient, stand_in: StandIn
) -> None:
    stand_in.fail(503, path_contains="export_context_async")
    with pytest.raises(APIError, match="HTTP 503") as info:
        client.start_export(stand_in.dataset_id)
    assert "may have started" in str(info.value)
    assert _calls(stand_in, "export_context_async") == 1
    stand_in.fail(429, path_contains="export_entities_async")  # refused: safe to retry
    client.start_selective_export(stand_in.dataset_id, media_ids=["m"])
    assert _calls(stand_in, "export_entities_async") == 2


def test_unreachable_server_is_a_connection_error() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    url = f"http://127.0.0.1:{port}"
    with (
        VisualLayerClient(url, token="t", retries=1, backoff=0) as client,
        pytest.raises(APIConnectionError, match="cannot reach") as info,
    ):
        client.get_dataset("d")
    assert "VL_BASE_URL" in str(info.value)


def test_config_file_fills_what_the_environment_does_not_set(tmp_path: Path) -> None:
    config = tmp_path / "config.toml"
    config.write_text('api_key = "file-key"\napi_secret = "file-secret"\n', encoding="utf-8")
    with VisualLayerClient.from_env({"VL_CONFIG": str(config)}) as client:
        assert "file-secret" not in repr(client)
        assert client.auth_headers()["Authorization"].startswith("Bearer ")
    env = {"VL_CONFIG": str(config), "VL_TOKEN": "env-token", "VL_API_KEY": "env-key"}
    assert settings(env)["api_key"] == "env-key"  # the environment wins
    assert settings(env)["api_secret"] == "file-secret"
    xdg = {"XDG_CONFIG_HOME": str(tmp_path / "xdg")}
    (tmp_path / "xdg" / "vlanalyze").mkdir(parents=True)
    config.rename(tmp_path / "xdg" / "vlanalyze" / "config.toml")
    assert settings(xdg)["api_key"] == "file-key"


@pytest.mark.parametrize(
    ("text", "message"),
    [("api_key = ", "not valid TOML"), ('apikey = "x"', "unknown settings: apikey")],
)
def test_bad_config_file_is_a_configuration_error(tmp_path: Path, text: str, message: str) -> None:
    config = tmp_path / "config.toml"
    config.write_text(text, encoding="utf-8")
    with pytest.raises(ConfigurationError, match=message) as info:
        VisualLayerClient.from_env({"VL_CONFIG": str(config)})
    assert str(config) in str(info.value)
