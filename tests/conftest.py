"""Fixtures shared by the test modules (the helpers they use live in tests.helpers)."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, settings

from tests.helpers.proxies import RunningProxy, running_proxy

# CI machines are shared and noisy: a property is judged by what it checks, never by how
# long one example took, so no per-example deadline and no "too slow" health check.
settings.register_profile("shardproxy", deadline=None, suppress_health_check=[HealthCheck.too_slow])
settings.load_profile("shardproxy")


@pytest.fixture
def proxy() -> RunningProxy:
    """``async with proxy(backend_url, **settings) as url:`` runs a proxy for one test."""
    return running_proxy


@pytest.fixture(params=["asyncio", "uvloop"])
def loop_kind(request: pytest.FixtureRequest) -> str:
    """The event loop a scenario runs on: production's uvloop and the standard one."""
    return str(request.param)
