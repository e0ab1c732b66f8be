"""Shared pytest fixtures."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest

# --- fetch: the export API stand-in and a client of it -----------------------------------
from vlanalyze.client import VisualLayerClient
from vlanalyze.testing import StandIn, write_demo_export


class FakeClock:
    """A clock that only moves when something sleeps on it: polling never really waits."""

    def __init__(self) -> None:
        self.now = time.time()
        self.slept: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def demo_export(tmp_path: Path) -> Path:
    """A tiny JSON export (3 media, 3 images) to serve."""
    return write_demo_export(tmp_path / "served-export")


@pytest.fixture
def stand_in(demo_export: Path, clock: FakeClock) -> Iterator[StandIn]:
    """The stand-in serving ``demo_export``, on the fake clock."""
    with StandIn(demo_export, clock=clock) as server:
        yield server


@pytest.fixture
def client(stand_in: StandIn, clock: FakeClock) -> Iterator[VisualLayerClient]:
    """A client of ``stand_in`` with its key and secret, on the fake clock, no back-off."""
    with VisualLayerClient(
        stand_in.base_url,
        api_key=stand_in.api_key,
        api_secret=stand_in.api_secret,
        sleep=clock.sleep,
        clock=clock,
        retries=3,
        backoff=0.0,
    ) as api:
        yield api


# --- end of fetch fixtures ---------------------------------------------------------------
